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
    /// Looked up for every event (foldhash: see phase.rs).
    procs: foldhash::HashMap<u32, ProcInfo>,
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
            procs: Default::default(),
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
        let first_seen = self.ensure(tgid, uid, comm);
        (self.procs[&tgid].clone(), first_seen)
    }

    /// Make sure `tgid` is in the table (loading it from /proc the first time); true when it
    /// was not there yet. Nothing is copied for a known process.
    pub fn ensure(&mut self, tgid: u32, uid: u32, comm: &str) -> bool {
        if self.procs.contains_key(&tgid) {
            return false;
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
        self.procs.insert(tgid, info);
        true
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

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Arc};

    use super::*;
    use crate::enrich::live_proc::Recorded;

    const PKG_UID: u32 = 10123;

    /// A table whose /proc answers are recorded (pids above any pid_max).
    fn table(r: Recorded) -> ProcessTable {
        let packages = PackagesList::parse(
            "com.example.app 10123 0 /data/user/0/com.example.app default:targetSdkVersion=34 3003\n",
        )
        .unwrap();
        let mut t = ProcessTable::new(packages);
        t.proc = ProcSource::Recorded(Arc::new(r));
        t
    }

    #[test]
    fn first_seen_processes_are_identified_by_uid_argv0_or_comm() {
        let mut t = table(Recorded {
            argv0: HashMap::from([(4_000_000_002, "com.other.app:push".into())]),
            ..Recorded::default()
        });
        let (p, first) = t.lookup(4_000_000_001, PKG_UID, "app");
        assert!(first);
        assert_eq!(p.app, "com.example.app", "the package of its uid");
        assert!(!t.lookup(4_000_000_001, PKG_UID, "app").1, "seen once");
        assert_eq!(t.lookup(4_000_000_002, 2000, "push").0.app, "com.other.app");
        assert_eq!(t.lookup(4_000_000_003, 1000, "curl").0.app, "curl");
        assert_eq!(
            t.lookup(4_000_000_004, 99_000, "iso").0.app,
            "isolated:99000"
        );
    }

    #[test]
    fn children_inherit_app_and_cwd_unless_their_uid_names_a_package() {
        let mut t = table(Recorded {
            ppid: HashMap::from([(4_000_000_003, 4_000_000_001)]),
            cwd: HashMap::from([(4_000_000_001, "/work".into())]),
            ..Recorded::default()
        });
        t.lookup(4_000_000_001, 1000, "daemon");
        t.fork(4_000_000_001, 4_000_000_002, 1000, "daemon");
        let child = t.get(4_000_000_002).unwrap();
        assert_eq!(
            (child.app.as_str(), child.ppid, child.cwd.as_deref()),
            ("daemon", 4_000_000_001, Some("/work"))
        );
        // First seen without its fork: the recorded parent is known, so it inherits too.
        let (p, _) = t.lookup(4_000_000_003, 1000, "worker");
        assert_eq!(
            (p.app.as_str(), p.cwd.as_deref()),
            ("daemon", Some("/work"))
        );
        // A zygote-like fork into a package uid is the package's.
        t.fork(4_000_000_001, 4_000_000_005, PKG_UID, "app");
        assert_eq!(t.get(4_000_000_005).unwrap().app, "com.example.app");
    }

    #[test]
    fn setuid_to_a_package_uid_moves_the_process_to_that_app() {
        let mut t = table(Recorded::default());
        t.lookup(4_000_000_001, 0, "zygote64");
        t.setuid(4_000_000_001, PKG_UID);
        let p = t.get(4_000_000_001).unwrap();
        assert_eq!((p.app.as_str(), p.uid), ("com.example.app", PKG_UID));
        t.exit(4_000_000_001);
        assert!(t.get(4_000_000_001).unwrap().exited);
    }
}
