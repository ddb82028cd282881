//! The probe set: which kernel program attaches where, which are required, and which of the
//! alternatives this kernel gets. The plan is decided by feature detection, never by kernel
//! version: per-syscall tracepoints where tracefs has `events/syscalls`, else the raw-syscalls
//! path; BTF tracepoints where the kernel has BTF, else classic tracepoints; the
//! `sched_process_exit` variant from its BTF prototype.
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr, RawTracePoint, TracePoint},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy)]
pub enum Hook {
    Tracepoint(&'static str, &'static str),
    BtfTracepoint(&'static str),
    /// `raw_tp`: BPF_PROG_TYPE_RAW_TRACEPOINT, no BTF needed.
    RawTracepoint(&'static str),
    /// cgroup v2 sock_addr hook, attached at the cgroup v2 root.
    CgroupSockAddr(&'static str),
}

/// When a probe is part of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Always,
    /// The per-syscall path (`syscalls:sys_enter_*` / `sys_exit_*`).
    PerSyscall,
    /// The raw-syscalls path (raw_tp `sys_enter` / `sys_exit`).
    Raw,
    /// The raw-syscalls path through the classic `raw_syscalls` tracepoints, attached only
    /// when the raw_tp programs could not be.
    RawFallback,
    /// The kernel has BTF (tp_btf programs).
    Btf,
    /// BTF, and `sched_process_exit` passes `group_dead`.
    BtfExitGroupDead,
    /// BTF, and `sched_process_exit` passes the task only.
    BtfExitTaskOnly,
    /// No BTF: classic tracepoints stand in for the tp_btf programs.
    NoBtf,
    /// No BTF on the per-syscall path (exit status from exit_group/exit).
    PerSyscallNoBtf,
    /// cgroup connect hooks not turned off.
    Cgroup,
}

/// What a probe serves: the `family` of a probe in `doctor` and `session.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Process,
    /// `network` in sessions from before the families were named after the capabilities.
    #[serde(alias = "network")]
    Connect,
    File,
    Camera,
    AppState,
    /// The raw-syscalls programs: every syscall family at once.
    Syscalls,
}

impl Family {
    #[cfg(test)]
    pub const ALL: [Family; 6] = [
        Family::Process,
        Family::Connect,
        Family::File,
        Family::Camera,
        Family::AppState,
        Family::Syscalls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Process => "process",
            Family::Connect => "connect",
            Family::File => "file",
            Family::Camera => "camera",
            Family::AppState => "app_state",
            Family::Syscalls => "syscalls",
        }
    }

    /// Served by the raw-syscalls programs as well as by its own.
    pub fn is_syscall(self) -> bool {
        matches!(
            self,
            Family::Process | Family::Connect | Family::File | Family::Camera
        )
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    /// Program (function) name in monitor-ebpf.
    pub program: &'static str,
    /// What it serves (the raw path serves process, connect, file and camera at once).
    pub family: Family,
    pub needs: Needs,
    pub hook: Hook,
    /// Recording refuses to start without it (when it is part of the plan).
    pub required: bool,
    /// What is lost without it and how to get it, shown by `doctor`.
    pub hint: &'static str,
}

use Hook::*;
use Needs::*;

const TP_HINT: &str = "needs tracepoints and tracefs (CONFIG_FTRACE_SYSCALLS for syscalls:*); run as root; `--syscall-probes raw` avoids syscalls:*";
const BTF_HINT: &str = "needs kernel BTF (/sys/kernel/btf/vmlinux); without it emuwatch uses classic tracepoints (`--btf off` forces that)";
const CG_HINT: &str = "costs: connects get their protocol from socket() of sockets created while recording only (others: \"unknown\"), and the address from user memory only. Needs cgroup v2 and CONFIG_CGROUP_BPF (on Android, netd's programs at the cgroup root may refuse a second one)";
const SOCKET_HINT: &str = "costs: connect protocol unknown where the cgroup hooks are also missing";
const RAW_HINT: &str = "needs BPF raw tracepoints (Linux 4.17+); the classic raw_syscalls tracepoints are tried instead";

pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        program: "sched_process_fork",
        family: Family::Process,
        needs: Btf,
        hook: BtfTracepoint("sched_process_fork"),
        required: true,
        hint: BTF_HINT,
    },
    ProbeSpec {
        program: "sched_process_exec",
        family: Family::Process,
        needs: Always,
        hook: Tracepoint("sched", "sched_process_exec"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sched_process_exit",
        family: Family::Process,
        needs: BtfExitGroupDead,
        hook: BtfTracepoint("sched_process_exit"),
        required: true,
        hint: BTF_HINT,
    },
    ProbeSpec {
        program: "sys_exit_execve",
        family: Family::Process,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_execve"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_execveat",
        family: Family::Process,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_execveat"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_execve",
        family: Family::Process,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_execve"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_execveat",
        family: Family::Process,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_execveat"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "task_rename",
        family: Family::Process,
        needs: Always,
        hook: Tracepoint("task", "task_rename"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_setuid",
        family: Family::Process,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_setuid"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_setreuid",
        family: Family::Process,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_setreuid"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_setresuid",
        family: Family::Process,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_setresuid"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_connect",
        family: Family::Connect,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_connect"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "cgroup_connect4",
        family: Family::Connect,
        needs: Cgroup,
        hook: CgroupSockAddr("connect4"),
        required: false,
        hint: CG_HINT,
    },
    ProbeSpec {
        program: "cgroup_connect6",
        family: Family::Connect,
        needs: Cgroup,
        hook: CgroupSockAddr("connect6"),
        required: false,
        hint: CG_HINT,
    },
    ProbeSpec {
        program: "sys_enter_connect",
        family: Family::Connect,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_connect"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_openat",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_openat"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_openat",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_openat"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_openat2",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_openat2"),
        required: false,
        hint: "openat2 exists from Linux 5.6",
    },
    ProbeSpec {
        program: "sys_enter_openat2",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_openat2"),
        required: false,
        hint: "openat2 exists from Linux 5.6",
    },
    ProbeSpec {
        program: "sys_exit_open",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_open"),
        required: false,
        hint: "open(2) does not exist on arm64",
    },
    ProbeSpec {
        program: "sys_enter_open",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_open"),
        required: false,
        hint: "open(2) does not exist on arm64",
    },
    ProbeSpec {
        program: "sys_exit_chdir",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_chdir"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_chdir",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_chdir"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_fchdir",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_fchdir"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_fchdir",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_fchdir"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_read",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_read"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_read",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_read"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_pread64",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_pread64"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_pread64",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_pread64"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_readv",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_readv"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_readv",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_readv"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_preadv",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_preadv"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_preadv",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_preadv"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_preadv2",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_preadv2"),
        required: false,
        hint: "preadv2 exists from Linux 4.6",
    },
    ProbeSpec {
        program: "sys_enter_preadv2",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_preadv2"),
        required: false,
        hint: "preadv2 exists from Linux 4.6",
    },
    ProbeSpec {
        program: "sys_enter_close",
        family: Family::File,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_close"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_exit_ioctl",
        family: Family::Camera,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_ioctl"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_ioctl",
        family: Family::Camera,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_ioctl"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "binder_transaction",
        family: Family::Camera,
        needs: Always,
        hook: Tracepoint("binder", "binder_transaction"),
        required: false,
        hint: "binder tracepoints exist where the kernel has binder (Android, binder_linux): they add the callee to binder calls",
    },
    ProbeSpec {
        program: "oom_score_adj_update",
        family: Family::AppState,
        needs: Always,
        hook: Tracepoint("oom", "oom_score_adj_update"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_socket",
        family: Family::Connect,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_enter_socket"),
        required: false,
        hint: SOCKET_HINT,
    },
    ProbeSpec {
        program: "sys_exit_socket",
        family: Family::Connect,
        needs: PerSyscall,
        hook: Tracepoint("syscalls", "sys_exit_socket"),
        required: false,
        hint: SOCKET_HINT,
    },
    ProbeSpec {
        program: "sched_process_exit_1arg",
        family: Family::Process,
        needs: BtfExitTaskOnly,
        hook: BtfTracepoint("sched_process_exit"),
        required: true,
        hint: BTF_HINT,
    },
    ProbeSpec {
        program: "task_newtask",
        family: Family::Process,
        needs: NoBtf,
        hook: Tracepoint("task", "task_newtask"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sched_process_exit_tp",
        family: Family::Process,
        needs: NoBtf,
        hook: Tracepoint("sched", "sched_process_exit"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "sys_enter_exit_group",
        family: Family::Process,
        needs: PerSyscallNoBtf,
        hook: Tracepoint("syscalls", "sys_enter_exit_group"),
        required: false,
        hint: "without it, exit codes are unknown on kernels without BTF",
    },
    ProbeSpec {
        program: "sys_enter_exit",
        family: Family::Process,
        needs: PerSyscallNoBtf,
        hook: Tracepoint("syscalls", "sys_enter_exit"),
        required: false,
        hint: "without it, exit codes are unknown on kernels without BTF",
    },
    ProbeSpec {
        program: "raw_sys_enter",
        family: Family::Syscalls,
        needs: Raw,
        hook: RawTracepoint("sys_enter"),
        required: true,
        hint: RAW_HINT,
    },
    ProbeSpec {
        program: "raw_sys_exit",
        family: Family::Syscalls,
        needs: Raw,
        hook: RawTracepoint("sys_exit"),
        required: true,
        hint: RAW_HINT,
    },
    ProbeSpec {
        program: "tp_raw_sys_enter",
        family: Family::Syscalls,
        needs: RawFallback,
        hook: Tracepoint("raw_syscalls", "sys_enter"),
        required: true,
        hint: TP_HINT,
    },
    ProbeSpec {
        program: "tp_raw_sys_exit",
        family: Family::Syscalls,
        needs: RawFallback,
        hook: Tracepoint("raw_syscalls", "sys_exit"),
        required: true,
        hint: TP_HINT,
    },
];

/// `--syscall-probes`: which syscall hooks to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SyscallProbes {
    /// Per-syscall tracepoints where the kernel has them, else the raw path.
    #[default]
    Auto,
    /// `raw_syscalls` sys_enter/sys_exit, dispatching on the syscall number.
    Raw,
    /// `syscalls:sys_enter_*` / `sys_exit_*` tracepoints (kernels with CONFIG_FTRACE_SYSCALLS).
    PerSyscall,
}

/// `--btf`: use kernel BTF (tp_btf programs) when present, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BtfUse {
    #[default]
    Auto,
    /// Classic tracepoints only, as on kernels without BTF (for testing that path).
    Off,
}

/// `--cgroup-hooks`: attach the cgroup connect hooks (auto) or not (off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupHooks {
    #[default]
    Auto,
    Off,
}

/// What this kernel gets, and why; written to `session.json` and shown by `doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `per-syscall` or `raw`.
    pub syscall_probes: SyscallProbes,
    pub syscall_probes_reason: String,
    /// tp_btf programs in use (kernel BTF present and not turned off).
    pub btf: bool,
    pub btf_reason: String,
    /// Arguments `sched_process_exit` passes to tp_btf programs (1 or 2; 0 without BTF).
    pub exit_tracepoint_args: u32,
    /// The cgroup connect hooks are tried (not turned off with `--cgroup-hooks off`).
    #[serde(default = "yes")]
    pub cgroup_hooks: bool,
}

fn yes() -> bool {
    true
}

/// The per-syscall tracepoints that the per-syscall path cannot do without.
pub fn required_syscall_tracepoints() -> impl Iterator<Item = &'static str> {
    PROBES.iter().filter_map(|p| match (p.needs, p.hook) {
        (PerSyscall, Tracepoint("syscalls", name)) if p.required => Some(name),
        _ => None,
    })
}

/// Choose the syscall path: per-syscall tracepoints where tracefs lists every required one.
pub fn choose_syscall_probes(
    requested: SyscallProbes,
    tracefs: &Path,
) -> Result<(SyscallProbes, String)> {
    let events = tracefs.join("events");
    let missing: Vec<&str> = required_syscall_tracepoints()
        .filter(|n| !events.join("syscalls").join(n).is_dir())
        .collect();
    let raw_present = events.join("raw_syscalls").is_dir();
    Ok(match requested {
        SyscallProbes::PerSyscall if !missing.is_empty() => bail!(
            "--syscall-probes per-syscall: this kernel has no {} tracepoint{} under {} (built without CONFIG_FTRACE_SYSCALLS, like Android's GKI kernels); use --syscall-probes raw or auto",
            missing
                .iter()
                .map(|n| format!("syscalls:{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() == 1 { "" } else { "s" },
            events.join("syscalls").display()
        ),
        SyscallProbes::PerSyscall => (
            SyscallProbes::PerSyscall,
            "requested with --syscall-probes per-syscall".into(),
        ),
        SyscallProbes::Raw => (
            SyscallProbes::Raw,
            "requested with --syscall-probes raw".into(),
        ),
        SyscallProbes::Auto if missing.is_empty() => (
            SyscallProbes::PerSyscall,
            "auto: the kernel has syscalls:* tracepoints".into(),
        ),
        SyscallProbes::Auto => (
            SyscallProbes::Raw,
            format!(
                "auto: no syscalls:* tracepoints ({} of {} missing; kernel built without CONFIG_FTRACE_SYSCALLS, as Android's GKI kernels are){}",
                missing.len(),
                required_syscall_tracepoints().count(),
                if raw_present {
                    ""
                } else {
                    "; raw_syscalls is not listed in tracefs either"
                }
            ),
        ),
    })
}

impl Plan {
    fn wants(&self, needs: Needs) -> bool {
        let per_syscall = self.syscall_probes == SyscallProbes::PerSyscall;
        match needs {
            Always => true,
            PerSyscall => per_syscall,
            Raw | RawFallback => !per_syscall,
            Btf => self.btf,
            BtfExitGroupDead => self.btf && self.exit_tracepoint_args >= 2,
            BtfExitTaskOnly => self.btf && self.exit_tracepoint_args == 1,
            NoBtf => !self.btf,
            PerSyscallNoBtf => per_syscall && !self.btf,
            Cgroup => self.cgroup_hooks,
        }
    }
}

/// Outcome of loading and attaching one probe; written to `session.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub program: String,
    pub family: Family,
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
            RawTracepoint(n) => format!("raw_tp {n}"),
            CgroupSockAddr(a) => format!("cgroup_sock_addr {a}"),
        }
    }
}

/// An attached program's link, owned: dropping it detaches the program.
pub type Link = Box<dyn Send>;

fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    btf: Option<&Btf>,
    cgroup2: Option<&Path>,
) -> Result<Link> {
    let prog = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| anyhow!("program {} missing from the eBPF object", spec.program))?;
    match spec.hook {
        Tracepoint(category, name) => {
            let p: &mut TracePoint = prog.try_into()?;
            p.load().context("load")?;
            let id = p.attach(category, name).context("attach")?;
            Ok(Box::new(p.take_link(id)?))
        }
        BtfTracepoint(name) => {
            let btf = btf.ok_or_else(|| anyhow!("kernel BTF unavailable"))?;
            let p: &mut BtfTracePoint = prog.try_into()?;
            p.load(name, btf).context("load")?;
            let id = p.attach().context("attach")?;
            Ok(Box::new(p.take_link(id)?))
        }
        RawTracepoint(name) => {
            let p: &mut RawTracePoint = prog.try_into()?;
            p.load().context("load")?;
            let id = p.attach(name).context("attach")?;
            Ok(Box::new(p.take_link(id)?))
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
            let id = p.attach(dir, CgroupAttachMode::Single).context("attach")?;
            Ok(Box::new(p.take_link(id)?))
        }
    }
}

fn status(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    btf: Option<&Btf>,
    cgroup2: Option<&Path>,
    links: &mut Vec<Link>,
) -> ProbeStatus {
    let attach_point = match spec.hook {
        CgroupSockAddr(a) => format!(
            "cgroup_sock_addr {a} at {}",
            cgroup2
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(no cgroup v2)".into())
        ),
        h => h.describe(),
    };
    let r = attach_one(ebpf, spec, btf, cgroup2).map(|link| links.push(link));
    ProbeStatus {
        program: spec.program.to_string(),
        family: spec.family,
        attach_point,
        required: spec.required,
        attached: r.is_ok(),
        hint: r.is_err().then(|| spec.hint.to_string()),
        error: r.err().map(|e| format!("{e:#}")),
    }
}

/// Load and attach the probes of `plan`, in `PROBES` order, recording each outcome. The
/// classic raw_syscalls programs are attached only if a raw_tp one failed; then the failed
/// raw_tp programs are no longer required.
pub fn attach_all(
    ebpf: &mut Ebpf,
    plan: &Plan,
    btf: Option<&Btf>,
    cgroup2: Option<&Path>,
    links: &mut Vec<Link>,
) -> Vec<ProbeStatus> {
    let mut out: Vec<ProbeStatus> = PROBES
        .iter()
        .filter(|s| s.needs != RawFallback && plan.wants(s.needs))
        .map(|spec| status(ebpf, spec, btf, cgroup2, links))
        .collect();
    let raw_failed = PROBES
        .iter()
        .filter(|s| s.needs == Raw)
        .any(|s| out.iter().any(|p| p.program == s.program && !p.attached));
    if raw_failed {
        let fallback: Vec<ProbeStatus> = PROBES
            .iter()
            .filter(|s| s.needs == RawFallback)
            .map(|spec| status(ebpf, spec, btf, cgroup2, links))
            .collect();
        if fallback.iter().all(|p| p.attached) {
            for p in out.iter_mut().filter(|p| !p.attached) {
                if PROBES
                    .iter()
                    .any(|s| s.program == p.program && s.needs == Raw)
                {
                    p.required = false;
                }
            }
        }
        out.extend(fallback);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake tracefs: `events/<category>/<name>/` directories.
    fn tracefs(events: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for e in events {
            std::fs::create_dir_all(d.path().join("events").join(e)).unwrap();
        }
        d
    }

    #[test]
    fn auto_picks_raw_without_syscalls_tracepoints() {
        let t = tracefs(&[
            "raw_syscalls/sys_enter",
            "raw_syscalls/sys_exit",
            "sched/sched_process_exec",
        ]);
        let (path, why) = choose_syscall_probes(SyscallProbes::Auto, t.path()).unwrap();
        assert_eq!(path, SyscallProbes::Raw);
        assert!(why.contains("CONFIG_FTRACE_SYSCALLS"), "{why}");
    }

    #[test]
    fn auto_picks_per_syscall_where_all_exist() {
        let names: Vec<String> = required_syscall_tracepoints()
            .map(|n| format!("syscalls/{n}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let t = tracefs(&refs);
        let (path, _) = choose_syscall_probes(SyscallProbes::Auto, t.path()).unwrap();
        assert_eq!(path, SyscallProbes::PerSyscall);
        // One missing required tracepoint is enough to fall back to raw.
        std::fs::remove_dir(t.path().join("events/syscalls/sys_enter_connect")).unwrap();
        let (path, _) = choose_syscall_probes(SyscallProbes::Auto, t.path()).unwrap();
        assert_eq!(path, SyscallProbes::Raw);
    }

    #[test]
    fn forcing_per_syscall_without_them_is_one_clear_line() {
        let t = tracefs(&["raw_syscalls/sys_enter"]);
        let e = choose_syscall_probes(SyscallProbes::PerSyscall, t.path())
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("syscalls:sys_enter_openat"), "{e}");
        assert!(e.contains("syscalls:sys_exit_connect"), "{e}");
        assert!(e.contains("--syscall-probes raw"), "{e}");
    }

    #[test]
    fn no_program_has_two_rows() {
        let mut seen = std::collections::HashSet::new();
        for p in PROBES {
            assert!(seen.insert(p.program), "{} twice", p.program);
        }
    }

    #[test]
    fn each_plan_has_one_fork_and_one_exit_probe() {
        for syscall_probes in [SyscallProbes::PerSyscall, SyscallProbes::Raw] {
            for (btf, args) in [(true, 2), (true, 1), (false, 0)] {
                let plan = Plan {
                    syscall_probes,
                    syscall_probes_reason: String::new(),
                    btf,
                    btf_reason: String::new(),
                    exit_tracepoint_args: args,
                    cgroup_hooks: true,
                };
                let hooks: Vec<String> = PROBES
                    .iter()
                    .filter(|p| plan.wants(p.needs) && p.needs != RawFallback)
                    .map(|p| p.hook.describe())
                    .collect();
                let count = |needle: &str| hooks.iter().filter(|h| h.contains(needle)).count();
                assert_eq!(count("sched_process_exit"), 1, "{plan:?}: {hooks:?}");
                assert_eq!(
                    count("sched_process_fork") + count("task_newtask"),
                    1,
                    "{plan:?}"
                );
                let raw = count("raw_tp sys_");
                let per = count("tracepoint syscalls/");
                if syscall_probes == SyscallProbes::Raw {
                    assert_eq!((raw, per), (2, 0), "{plan:?}");
                } else {
                    assert_eq!(raw, 0, "{plan:?}");
                    assert!(per > 20, "{plan:?}");
                }
            }
        }
    }
}
