//! The processes a recording starts from: /proc walks, liveness, cgroup ids, users and
//! this process's privileges.
use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result, bail};

/// A user name or number as (uid, gid), from the passwd database.
pub fn lookup_user(user: &str) -> Result<(u32, u32)> {
    let c = std::ffi::CString::new(user).context("user name contains a NUL byte")?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    let r = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if r == 0 && !res.is_null() {
        return Ok((pw.pw_uid, pw.pw_gid));
    }
    if let Ok(uid) = user.parse::<u32>() {
        let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
        if r == 0 && !res.is_null() {
            return Ok((pw.pw_uid, pw.pw_gid));
        }
        return Ok((uid, uid));
    }
    bail!("no user {user:?}")
}

/// The pids of `root` and all its current descendants, from /proc.
pub(super) fn descendants(root: u32) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(all) = procfs::process::all_processes() {
        for p in all.flatten() {
            if let Ok(st) = p.stat() {
                children
                    .entry(st.ppid as u32)
                    .or_default()
                    .push(st.pid as u32);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// (pid, real uid) of every process, from /proc (emuwatch itself left out).
pub(super) fn processes_with_uids() -> Vec<(u32, u32)> {
    let me = std::process::id();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| Some((p.pid as u32, p.status().ok()?.ruid)))
        .filter(|(pid, _)| *pid != me)
        .collect()
}

/// Running processes whose name (comm) is one of `names` (first 15 bytes, as the kernel keeps
/// them), other than this one.
pub(super) fn processes_named(names: &[String]) -> Vec<u32> {
    if names.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let short = |n: &str| n.as_bytes()[..n.len().min(15)].to_vec();
    let wanted: Vec<Vec<u8>> = names.iter().map(|n| short(n)).collect();
    all.flatten()
        .filter(|p| p.pid as u32 != me)
        .filter_map(|p| {
            let comm = std::fs::read(format!("/proc/{}/comm", p.pid)).ok()?;
            let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
            wanted
                .iter()
                .any(|w| w.as_slice() == comm)
                .then_some(p.pid as u32)
        })
        .collect()
}

pub(crate) fn alive(pid: u32) -> bool {
    match procfs::process::Process::new(pid as i32).and_then(|p| p.stat()) {
        Ok(st) => st.state != 'Z' && st.state != 'X',
        Err(_) => false,
    }
}

/// cgroup v2 id of a cgroup directory: the kernel uses the directory's inode number.
pub(super) fn cgroup_id(path: &str, cgroup2: Option<&Path>) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let p = Path::new(path);
    let full = if p.is_absolute() && p.exists() {
        p.to_path_buf()
    } else {
        let root = cgroup2.context("--cgroup needs a cgroup v2 hierarchy, and none is mounted")?;
        root.join(path.trim_start_matches('/'))
    };
    let md = std::fs::metadata(&full).with_context(|| format!("cgroup {}", full.display()))?;
    if !md.is_dir() {
        bail!("cgroup {} is not a directory", full.display());
    }
    Ok(md.ino())
}

/// Loading and attaching the probes needs root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN
/// covers both): checked first, so the error says so instead of naming a map the loader
/// could not create.
pub fn check_privileges(what: &str) -> Result<()> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    let has = |cap: u32| eff.is_some_and(|e| e & (1 << cap) != 0);
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    bail!("{what} needs root (or CAP_BPF + CAP_PERFMON) to load its eBPF probes");
}
