//! The probe set: which kernel program attaches where, which are required, and which of the
//! alternatives this kernel gets. The plan is decided by feature detection, never by kernel
//! version: per-syscall tracepoints where tracefs has `events/syscalls`, else the raw-syscalls
//! path; BTF tracepoints where the kernel has BTF, else classic tracepoints; the
//! `sched_process_exit` variant from its BTF prototype.
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
    /// The per-syscall path with name capture on (`--names auto`): the socket send/receive
    /// tracepoints (on the raw path the same calls are entries of the dispatch table).
    PerSyscallNames,
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

mod attach;
mod plan;
mod table;

pub use attach::{Link, ProbeStatus, attach_all};
pub use plan::{BtfUse, CgroupHooks, NameCapture, Plan, SyscallProbes, choose_syscall_probes};
pub use table::PROBES;
