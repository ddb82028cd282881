//! The no-op floor: a BPF program that returns at once, attached to every hook emuwatch
//! attaches to (the same tracepoints, the same two sched hooks, the same cgroup connect hooks).
//! Whatever a tracer costs above this is its own work; this much any tracer on these hooks
//! pays, because enabling a syscall tracepoint sends every syscall of every task through the
//! kernel's tracing slow path.
//!
//! It is loaded with raw bpf(2) calls rather than with bpftrace (whose empty probes still run
//! bpftrace's own prologue) or a second aya object (a second eBPF build), so it is exactly
//! `r0 = 0; exit` per hook and nothing else. emuwatch's `tp_btf` sched hooks are matched by
//! raw tracepoints on the same kernel tracepoints (same invocation path, no BTF needed), and
//! its `raw_tp` hooks (the raw-syscalls path: `sys_enter`/`sys_exit`) by the same.
use std::{
    ffi::CString,
    fs::File,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

const BPF_PROG_LOAD: i64 = 5;
const BPF_RAW_TRACEPOINT_OPEN: i64 = 17;
const BPF_LINK_CREATE: i64 = 28;

const PROG_TYPE_TRACEPOINT: u32 = 5;
const PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const ATTACH_CGROUP_INET4_CONNECT: u32 = 10;
const ATTACH_CGROUP_INET6_CONNECT: u32 = 11;
const ATTACH_PERF_EVENT: u32 = 41;

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: u64 = 8;

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`, zero-padded.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u64; 8],
}

pub(super) fn bpf<T>(cmd: i64, attr: &mut T) -> Result<OwnedFd> {
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// `r0 = ret; exit`.
fn load(prog_type: u32, expected_attach_type: u32, ret: i32, name: &str) -> Result<OwnedFd> {
    let mut insns = [0u8; 16];
    insns[0] = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K, dst r0
    insns[4..8].copy_from_slice(&ret.to_le_bytes());
    insns[8] = 0x95; // BPF_JMP | BPF_EXIT
    let license = b"GPL\0";
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut attr = ProgLoad {
        prog_type,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type,
        _rest: [0; 8],
    };
    bpf(BPF_PROG_LOAD, &mut attr).with_context(|| format!("load no-op program {name}"))
}

fn link_create(prog: &OwnedFd, target_fd: i32, attach_type: u32) -> Result<OwnedFd> {
    #[repr(C)]
    struct LinkCreate {
        prog_fd: u32,
        target_fd: u32,
        attach_type: u32,
        flags: u32,
        _rest: [u64; 6],
    }
    let mut attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: target_fd as u32,
        attach_type,
        flags: 0,
        _rest: [0; 6],
    };
    bpf(BPF_LINK_CREATE, &mut attr)
}

pub fn tracefs() -> Result<PathBuf> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(p).join("events").is_dir() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!(
        "tracefs is not mounted (run emuwatch once, or mount -t tracefs nodev /sys/kernel/tracing)"
    )
}

fn tracepoint(prog: &OwnedFd, tracefs: &Path, category: &str, name: &str) -> Result<Vec<OwnedFd>> {
    let id_path = tracefs.join("events").join(category).join(name).join("id");
    let id: u64 = std::fs::read_to_string(&id_path)
        .with_context(|| format!("read {}", id_path.display()))?
        .trim()
        .parse()
        .context("tracepoint id")?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&PERF_TYPE_TRACEPOINT.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&id.to_ne_bytes());
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1i32,
            0i32,
            -1i32,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("perf_event_open {category}/{name}"));
    }
    let pfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let link = link_create(prog, pfd.as_raw_fd(), ATTACH_PERF_EVENT)
        .with_context(|| format!("attach {category}/{name}"))?;
    Ok(vec![pfd, link])
}

fn raw_tracepoint(prog: &OwnedFd, name: &str) -> Result<OwnedFd> {
    #[repr(C)]
    struct RawTp {
        name: u64,
        prog_fd: u32,
        _pad: u32,
        _rest: [u64; 2],
    }
    let c = CString::new(name)?;
    let mut attr = RawTp {
        name: c.as_ptr() as u64,
        prog_fd: prog.as_raw_fd() as u32,
        _pad: 0,
        _rest: [0; 2],
    };
    bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr).with_context(|| format!("raw tracepoint {name}"))
}

/// The floor, attached. Dropping it detaches everything.
pub struct Floor {
    _fds: Vec<OwnedFd>,
    pub hooks: Vec<String>,
}

/// Attach a no-op program to each of `attach_points`, written the way emuwatch's session.json
/// names them: `tracepoint CAT/NAME`, `tp_btf NAME`, `raw_tp NAME`,
/// `cgroup_sock_addr connect4 at DIR`.
pub fn attach(attach_points: &[String]) -> Result<Floor> {
    let tracefs = tracefs()?;
    let tp = load(PROG_TYPE_TRACEPOINT, 0, 0, "floor_tp")?;
    let raw = load(PROG_TYPE_RAW_TRACEPOINT, 0, 0, "floor_raw_tp")?;
    let mut fds = Vec::new();
    let mut hooks = Vec::new();
    for ap in attach_points {
        let mut w = ap.split_whitespace();
        match (w.next(), w.next()) {
            (Some("tracepoint"), Some(cat_name)) => {
                let (cat, name) = cat_name.split_once('/').context("tracepoint CAT/NAME")?;
                fds.extend(tracepoint(&tp, &tracefs, cat, name)?);
            }
            // emuwatch's raw_tp programs (the raw-syscalls path) and its tp_btf ones both run
            // from the tracepoint's BPF hook without a record: a raw tracepoint matches either.
            (Some("tp_btf" | "raw_tp"), Some(name)) => fds.push(raw_tracepoint(&raw, name)?),
            (Some("cgroup_sock_addr"), Some(hook)) => {
                let dir = ap
                    .split(" at ")
                    .nth(1)
                    .context("cgroup_sock_addr ... at DIR")?;
                let attach_type = match hook {
                    "connect4" => ATTACH_CGROUP_INET4_CONNECT,
                    "connect6" => ATTACH_CGROUP_INET6_CONNECT,
                    other => bail!("no floor program for cgroup hook {other}"),
                };
                // A sock_addr program returns 1 to allow the connect.
                let prog = load(PROG_TYPE_CGROUP_SOCK_ADDR, attach_type, 1, "floor_sock")?;
                let cg = File::open(dir).with_context(|| format!("open {dir}"))?;
                fds.push(link_create(&prog, cg.as_raw_fd(), attach_type)?);
                fds.push(prog);
            }
            _ => bail!("unknown attach point {ap:?}"),
        }
        hooks.push(ap.clone());
    }
    fds.push(tp);
    fds.push(raw);
    Ok(Floor { _fds: fds, hooks })
}
