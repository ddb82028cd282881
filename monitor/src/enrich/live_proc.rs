//! What the enricher learns about live processes from /proc (argv[0], parent, working
//! directory, open fds, oom_score_adj, uid), behind one type: `ProcSource::Live` reads /proc;
//! `ProcSource::Recorded` answers from a recorded table, so the enricher can be tested with
//! recorded raw records and no /proc reads.
use std::{collections::HashMap, sync::Arc};

/// Facts about processes, as /proc would give them.
#[derive(Default, Debug, Clone)]
pub struct Recorded {
    pub argv0: HashMap<u32, String>,
    pub ppid: HashMap<u32, u32>,
    pub uid: HashMap<u32, u32>,
    pub cwd: HashMap<u32, String>,
    pub fds: HashMap<(u32, i32), String>,
    pub oom_score_adj: HashMap<u32, i32>,
}

#[derive(Default, Debug, Clone)]
pub enum ProcSource {
    /// The running system's /proc.
    #[default]
    Live,
    /// Recorded answers (tests); anything not recorded is a process that is gone.
    #[cfg_attr(not(test), allow(dead_code))]
    Recorded(Arc<Recorded>),
}

fn readlink(p: String) -> Option<String> {
    std::fs::read_link(p)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

impl ProcSource {
    /// argv[0] and ppid of a live process.
    pub fn facts(&self, tgid: u32) -> (Option<String>, Option<u32>) {
        match self {
            ProcSource::Live => {
                let Ok(p) = procfs::process::Process::new(tgid as i32) else {
                    return (None, None);
                };
                let argv0 = p.cmdline().ok().and_then(|c| c.into_iter().next());
                let ppid = p.stat().ok().map(|s| s.ppid as u32);
                (argv0, ppid)
            }
            ProcSource::Recorded(r) => (r.argv0.get(&tgid).cloned(), r.ppid.get(&tgid).copied()),
        }
    }

    pub fn argv0(&self, tgid: u32) -> Option<String> {
        self.facts(tgid).0
    }

    pub fn uid(&self, tgid: u32) -> Option<u32> {
        match self {
            ProcSource::Live => procfs::process::Process::new(tgid as i32)
                .and_then(|p| p.uid())
                .ok(),
            ProcSource::Recorded(r) => r.uid.get(&tgid).copied(),
        }
    }

    pub fn cwd(&self, tgid: u32) -> Option<String> {
        match self {
            ProcSource::Live => readlink(format!("/proc/{tgid}/cwd")),
            ProcSource::Recorded(r) => r.cwd.get(&tgid).cloned(),
        }
    }

    /// What an open fd of a live process points at now.
    pub fn fd_path(&self, tgid: u32, fd: i32) -> Option<String> {
        match self {
            ProcSource::Live => readlink(format!("/proc/{tgid}/fd/{fd}")),
            ProcSource::Recorded(r) => r.fds.get(&(tgid, fd)).cloned(),
        }
    }

    /// A live process's current oom_score_adj.
    pub fn oom_score_adj(&self, tgid: u32) -> Option<i32> {
        match self {
            ProcSource::Live => std::fs::read_to_string(format!("/proc/{tgid}/oom_score_adj"))
                .ok()?
                .trim()
                .parse()
                .ok(),
            ProcSource::Recorded(r) => r.oom_score_adj.get(&tgid).copied(),
        }
    }
}
