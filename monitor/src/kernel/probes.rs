//! The probe set: which kernel program attaches where, and which are required (the base set
//! must work with tracepoints, BTF tracepoints and cgroup hooks alone).
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr, TracePoint},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy)]
pub enum Hook {
    Tracepoint(&'static str, &'static str),
    BtfTracepoint(&'static str),
    /// cgroup v2 sock_addr hook, attached at the cgroup v2 root.
    CgroupSockAddr(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    /// Program (function) name in monitor-ebpf.
    pub program: &'static str,
    /// Capability it serves: process, connect, file, camera, app_state.
    pub family: &'static str,
    pub hook: Hook,
    /// Part of the base set: recording refuses to start without it.
    pub required: bool,
    /// Why it might be missing and what to do, shown by `doctor`.
    pub hint: &'static str,
}

use Hook::*;

const TP_HINT: &str = "needs CONFIG_FTRACE_SYSCALLS / tracepoints and tracefs; run as root";
const BTF_HINT: &str = "needs kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y)";
const CG_HINT: &str =
    "needs cgroup v2 mounted (mount -t cgroup2 none /sys/fs/cgroup/unified) and CONFIG_CGROUP_BPF";

pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        program: "sched_process_fork",
        family: "process",
        hook: BtfTracepoint("sched_process_fork"),
        required: true,
        hint: BTF_HINT,
    },
    ProbeSpec {
        program: "sched_process_exec",
        family: "process",
        hook: Tracepoint("sched", "sched_process_exec"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sched_process_exit",
        family: "process",
        hook: BtfTracepoint("sched_process_exit"),
        required: true,
        hint: BTF_HINT,
    },
    ProbeSpec {
        program: "sys_exit_execve",
        family: "process",
        hook: Tracepoint("syscalls", "sys_exit_execve"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_execveat",
        family: "process",
        hook: Tracepoint("syscalls", "sys_exit_execveat"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_execve",
        family: "process",
        hook: Tracepoint("syscalls", "sys_enter_execve"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_execveat",
        family: "process",
        hook: Tracepoint("syscalls", "sys_enter_execveat"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "task_rename",
        family: "process",
        hook: Tracepoint("task", "task_rename"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_connect",
        family: "connect",
        hook: Tracepoint("syscalls", "sys_exit_connect"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "cgroup_connect4",
        family: "connect",
        hook: CgroupSockAddr("connect4"),
        required: true,
        hint: CG_HINT,
    },
    ProbeSpec {
        program: "cgroup_connect6",
        family: "connect",
        hook: CgroupSockAddr("connect6"),
        required: true,
        hint: CG_HINT,
    },
    ProbeSpec {
        program: "sys_enter_connect",
        family: "connect",
        hook: Tracepoint("syscalls", "sys_enter_connect"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_openat",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_openat"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_openat",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_openat"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_openat2",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_openat2"),
        required: false,
        hint: "openat2 exists from Linux 5.6",
    },
    ProbeSpec {
        program: "sys_enter_openat2",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_openat2"),
        required: false,
        hint: "openat2 exists from Linux 5.6",
    },
    ProbeSpec {
        program: "sys_exit_open",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_open"),
        required: false,
        hint: "open(2) does not exist on arm64",
    },
    ProbeSpec {
        program: "sys_enter_open",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_open"),
        required: false,
        hint: "open(2) does not exist on arm64",
    },
    ProbeSpec {
        program: "sys_exit_chdir",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_chdir"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_chdir",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_chdir"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_fchdir",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_fchdir"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_fchdir",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_fchdir"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_read",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_read"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_read",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_read"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_pread64",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_pread64"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_pread64",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_pread64"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_readv",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_readv"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_readv",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_readv"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_preadv",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_preadv"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_preadv",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_preadv"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_preadv2",
        family: "file",
        hook: Tracepoint("syscalls", "sys_exit_preadv2"),
        required: false,
        hint: "preadv2 exists from Linux 4.6",
    },
    ProbeSpec {
        program: "sys_enter_preadv2",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_preadv2"),
        required: false,
        hint: "preadv2 exists from Linux 4.6",
    },
    ProbeSpec {
        program: "sys_enter_close",
        family: "file",
        hook: Tracepoint("syscalls", "sys_enter_close"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_ioctl",
        family: "camera",
        hook: Tracepoint("syscalls", "sys_exit_ioctl"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_ioctl",
        family: "camera",
        hook: Tracepoint("syscalls", "sys_enter_ioctl"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "binder_transaction",
        family: "camera",
        hook: Tracepoint("binder", "binder_transaction"),
        required: false,
        hint: "binder tracepoints exist on Android kernels only: there, Android apps' camera service calls are seen",
    },
    ProbeSpec {
        program: "oom_score_adj_update",
        family: "app_state",
        hook: Tracepoint("oom", "oom_score_adj_update"),
        required: true,
        hint: TP_HINT,
    },
];

/// Outcome of loading and attaching one probe; written to `session.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub program: String,
    pub family: String,
    /// e.g. `tracepoint syscalls/sys_enter_connect`.
    pub attach_point: String,
    pub required: bool,
    pub attached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Hook {
    pub fn describe(&self) -> String {
        match self {
            Tracepoint(c, n) => format!("tracepoint {c}/{n}"),
            BtfTracepoint(n) => format!("tp_btf {n}"),
            CgroupSockAddr(a) => format!("cgroup_sock_addr {a}"),
        }
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    btf: Option<&Btf>,
    cgroup2: Option<&Path>,
) -> Result<()> {
    let prog = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| anyhow!("program {} missing from the eBPF object", spec.program))?;
    match spec.hook {
        Tracepoint(category, name) => {
            let p: &mut TracePoint = prog.try_into()?;
            p.load().context("load")?;
            p.attach(category, name).context("attach")?;
        }
        BtfTracepoint(name) => {
            let btf = btf.ok_or_else(|| anyhow!("kernel BTF unavailable"))?;
            let p: &mut BtfTracePoint = prog.try_into()?;
            p.load(name, btf).context("load")?;
            p.attach().context("attach")?;
        }
        CgroupSockAddr(_) => {
            let root = cgroup2.ok_or_else(|| anyhow!("no cgroup v2 hierarchy is mounted"))?;
            let dir =
                std::fs::File::open(root).with_context(|| format!("open {}", root.display()))?;
            let p: &mut CgroupSockAddr = prog.try_into()?;
            p.load().context("load")?;
            // aya attaches through a bpf_link where the kernel has them; cgroup links refuse
            // attach flags (EINVAL) and always coexist with other programs, so other emuwatch
            // sessions and tools keep their own hooks.
            p.attach(dir, CgroupAttachMode::Single).context("attach")?;
        }
    }
    Ok(())
}

/// Load and attach every probe of `PROBES`, in order, recording each outcome.
pub fn attach_all(ebpf: &mut Ebpf, btf: Option<&Btf>, cgroup2: Option<&Path>) -> Vec<ProbeStatus> {
    PROBES
        .iter()
        .map(|spec| {
            let attach_point = match spec.hook {
                CgroupSockAddr(a) => format!(
                    "cgroup_sock_addr {a} at {}",
                    cgroup2
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "(no cgroup v2)".into())
                ),
                h => h.describe(),
            };
            let r = attach_one(ebpf, spec, btf, cgroup2);
            ProbeStatus {
                program: spec.program.to_string(),
                family: spec.family.to_string(),
                attach_point,
                required: spec.required,
                attached: r.is_ok(),
                hint: r.is_err().then(|| spec.hint.to_string()),
                error: r.err().map(|e| format!("{e:#}")),
            }
        })
        .collect()
}
