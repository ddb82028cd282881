//! The process table: parent and app of every target process, from fork events or, for
//! processes that existed before the recording, from /proc.
use std::collections::HashMap;

use super::{
    android::{PackagesList, is_isolated_uid, package_from_argv0},
    live_proc::ProcSource,
};

#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub ppid: u32,
    pub app: String,
    pub uid: u32,
    pub comm: String,
    /// Working directory as far as we know it (from /proc when first seen, inherited at fork,
    /// followed through chdir events), for resolving relative paths after the process is gone.
    pub cwd: Option<String>,
    pub exited: bool,
}

#[derive(Default)]
pub struct ProcessTable {
    procs: HashMap<u32, ProcInfo>,
    pub packages: PackagesList,
    /// Working directories known before a process's first event (processes emuwatch starts).
    seeded_cwd: HashMap<u32, String>,
    /// oom_score_adj read when recording started (targets by pid, the spawned command while it
    /// was still held): exact, unlike a /proc read when the first event is processed.
    seeded_adj: HashMap<u32, i32>,
    /// Where facts about processes first seen come from (/proc).
    pub proc: ProcSource,
}

impl ProcessTable {
    pub fn new(packages: PackagesList) -> Self {
        ProcessTable {
            procs: HashMap::new(),
            packages,
            seeded_cwd: HashMap::new(),
            seeded_adj: HashMap::new(),
            proc: ProcSource::Live,
        }
    }

    /// The app a process of `uid` named `comm` (argv[0] `argv0`) belongs to when nothing is
    /// inherited: the package for Android app uids, else the package-like argv[0], else comm.
    pub fn identify(&self, uid: u32, argv0: Option<&str>, comm: &str) -> String {
        if let Some(pkg) = self.packages.package_of_uid(uid) {
            return pkg.to_string();
        }
        if let Some(pkg) = argv0.and_then(package_from_argv0) {
            return pkg.to_string();
        }
        if is_isolated_uid(uid) {
            return format!("isolated:{uid}");
        }
        comm.to_string()
    }

    /// Info for `tgid`, loading it from /proc when this is the first time it is seen.
    /// Returns (info, first_seen).
    pub fn lookup(&mut self, tgid: u32, uid: u32, comm: &str) -> (ProcInfo, bool) {
        if let Some(p) = self.procs.get(&tgid) {
            return (p.clone(), false);
        }
        let (argv0, ppid) = self.proc.facts(tgid);
        let ppid = ppid.unwrap_or(0);
        // A child of a known process inherits its app (double-forked daemons included).
        let app = match self.procs.get(&ppid) {
            Some(parent) if self.packages.package_of_uid(uid).is_none() => parent.app.clone(),
            _ => self.identify(uid, argv0.as_deref(), comm),
        };
        let cwd = self
            .seeded_cwd
            .remove(&tgid)
            .or_else(|| self.proc.cwd(tgid))
            .or_else(|| self.procs.get(&ppid).and_then(|p| p.cwd.clone()));
        let info = ProcInfo {
            ppid,
            app,
            uid,
            comm: comm.to_string(),
            cwd,
            exited: false,
        };
        self.procs.insert(tgid, info.clone());
        (info, true)
    }

    /// A target forked `child`: it inherits the parent's app (unless its uid names a package).
    pub fn fork(&mut self, parent: u32, child: u32, uid: u32, comm: &str) {
        let p = self.procs.get(&parent);
        let app = match p {
            Some(p) if self.packages.package_of_uid(uid).is_none() => p.app.clone(),
            _ => self.identify(uid, None, comm),
        };
        let cwd = p.and_then(|p| p.cwd.clone());
        self.procs.insert(
            child,
            ProcInfo {
                ppid: parent,
                app,
                uid,
                comm: comm.to_string(),
                cwd,
                exited: false,
            },
        );
    }

    /// A process about to be started by emuwatch itself: its parent is us, its working
    /// directory is ours.
    pub fn seed_adj(&mut self, tgid: u32, adj: i32) {
        self.seeded_adj.insert(tgid, adj);
    }

    /// The oom_score_adj known for `tgid` before its first event, if any (taken once).
    pub fn take_seeded_adj(&mut self, tgid: u32) -> Option<i32> {
        self.seeded_adj.remove(&tgid)
    }

    pub fn seed_cwd(&mut self, tgid: u32, cwd: String) {
        self.seeded_cwd.insert(tgid, cwd);
    }

    pub fn set_cwd(&mut self, tgid: u32, cwd: String) {
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.cwd = Some(cwd);
        }
    }

    /// After exec an Android app process may now carry its package name in argv[0].
    pub fn exec(&mut self, tgid: u32, uid: u32, comm: &str) {
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.comm = comm.to_string();
        }
        let (argv0, _) = self.proc.facts(tgid);
        if let Some(pkg) = argv0.as_deref().and_then(package_from_argv0)
            && self.packages.package_of_uid(uid).is_none()
            && let Some(p) = self.procs.get_mut(&tgid)
        {
            p.app = pkg.to_string();
        }
    }

    /// The process took `uid`: where it names a package (a zygote child taking its app's
    /// uid), the process is that app's from now on.
    pub fn setuid(&mut self, tgid: u32, uid: u32) {
        let pkg = self.packages.package_of_uid(uid).map(str::to_string);
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.uid = uid;
            if let Some(pkg) = pkg {
                p.app = pkg;
            }
        }
    }

    pub fn exit(&mut self, tgid: u32) {
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.exited = true;
        }
    }

    pub fn get(&self, tgid: u32) -> Option<&ProcInfo> {
        self.procs.get(&tgid)
    }
}
