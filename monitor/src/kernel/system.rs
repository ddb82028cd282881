//! Facts about the running system that decide what can be attached: kernel release, BTF,
//! tracefs, the cgroup v2 mount (from mountinfo, never hard-coded) and lockdown.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelInfo {
    pub release: String,
    pub version: String,
    pub machine: String,
}

pub fn kernel_info() -> KernelInfo {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    KernelInfo {
        release: s(&u.release),
        version: s(&u.version),
        machine: s(&u.machine),
    }
}

fn mounts() -> Result<Vec<procfs::process::MountInfo>> {
    let mi = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .context("read /proc/self/mountinfo")?;
    Ok(mi.into_iter().collect())
}

/// Mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup` or, in hybrid layouts,
/// `/sys/fs/cgroup/unified`).
pub fn cgroup2_mount() -> Result<Option<PathBuf>> {
    Ok(mounts()?
        .into_iter()
        .find(|m| m.fs_type == "cgroup2")
        .map(|m| m.mount_point))
}

pub fn tracefs_mount() -> Result<Option<PathBuf>> {
    Ok(mounts()?
        .into_iter()
        .find(|m| m.fs_type == "tracefs")
        .map(|m| m.mount_point))
}

/// Where tracefs is, mounting it at /sys/kernel/tracing if it is not mounted anywhere
/// (tracepoint attach reads event ids from it). Returns (path, mounted_by_us).
pub fn ensure_tracefs() -> Result<(PathBuf, bool)> {
    if let Some(p) = tracefs_mount()? {
        return Ok((p, false));
    }
    let target = Path::new("/sys/kernel/tracing");
    let r = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!(
            "tracefs is not mounted and mounting it at {} failed: {e} (run as root, or: mount -t tracefs nodev /sys/kernel/tracing)",
            target.display()
        );
    }
    Ok((target.to_path_buf(), true))
}

/// Kernel lockdown mode (`none`, `integrity`, `confidentiality`), if securityfs shows it.
pub fn lockdown() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/security/lockdown").ok()?;
    s.split_whitespace()
        .find(|w| w.starts_with('['))
        .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
}

pub fn btf_present() -> bool {
    Path::new("/sys/kernel/btf/vmlinux").is_file()
}

/// Whether binder tracepoints exist (Android kernels, binder_linux): the callee of binder calls.
pub fn has_binder_tracepoints(tracefs: &Path) -> bool {
    tracefs.join("events/binder/binder_transaction").is_dir()
}

/// (realtime - monotonic) in nanoseconds: adds to `bpf_ktime_get_ns()` to give wall time.
pub fn monotonic_to_realtime_offset() -> i128 {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
    };
    let m1 = now(libc::CLOCK_MONOTONIC);
    let r = now(libc::CLOCK_REALTIME);
    let m2 = now(libc::CLOCK_MONOTONIC);
    r - (m1 + m2) / 2
}

pub fn raise_memlock() -> bool {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) == 0 }
}
