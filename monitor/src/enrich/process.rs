//! The process table: parent and app of every target process, from fork events or, for
//! processes that existed before the recording, from /proc.
use std::collections::HashMap;

use super::android::{PackagesList, is_isolated_uid, package_from_argv0};

#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub ppid: u32,
    pub app: String,
    pub exited: bool,
}

#[derive(Default)]
pub struct ProcessTable {
    procs: HashMap<u32, ProcInfo>,
    pub packages: PackagesList,
}

/// argv[0] and ppid of a live process, from /proc.
fn proc_facts(tgid: u32) -> (Option<String>, Option<u32>) {
    let Ok(p) = procfs::process::Process::new(tgid as i32) else {
        return (None, None);
    };
    let argv0 = p.cmdline().ok().and_then(|c| c.into_iter().next());
    let ppid = p.stat().ok().map(|s| s.ppid as u32);
    (argv0, ppid)
}

impl ProcessTable {
    pub fn new(packages: PackagesList) -> Self {
        ProcessTable {
            procs: HashMap::new(),
            packages,
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
        let (argv0, ppid) = proc_facts(tgid);
        let ppid = ppid.unwrap_or(0);
        // A child of a known process inherits its app (double-forked daemons included).
        let app = match self.procs.get(&ppid) {
            Some(parent) if self.packages.package_of_uid(uid).is_none() => parent.app.clone(),
            _ => self.identify(uid, argv0.as_deref(), comm),
        };
        let info = ProcInfo { ppid, app, exited: false };
        self.procs.insert(tgid, info.clone());
        (info, true)
    }

    /// A target forked `child`: it inherits the parent's app (unless its uid names a package).
    pub fn fork(&mut self, parent: u32, child: u32, uid: u32) {
        let app = match self.procs.get(&parent) {
            Some(p) if self.packages.package_of_uid(uid).is_none() => p.app.clone(),
            _ => self.identify(uid, None, ""),
        };
        self.procs.insert(child, ProcInfo { ppid: parent, app, exited: false });
    }

    /// After exec an Android app process may now carry its package name in argv[0].
    pub fn exec(&mut self, tgid: u32, uid: u32) {
        let (argv0, _) = proc_facts(tgid);
        if let Some(pkg) = argv0.as_deref().and_then(package_from_argv0)
            && self.packages.package_of_uid(uid).is_none()
            && let Some(p) = self.procs.get_mut(&tgid)
        {
            p.app = pkg.to_string();
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
