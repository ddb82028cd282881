//! The conditions a workload is run under: no tracer, emuwatch in its configurations, no-op
//! floors on emuwatch's hooks, and the other tools it is compared with; and the sets of them
//! each bench section runs.
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cond {
    /// No tracer.
    None,
    /// `emuwatch record --pid WORKLOAD`.
    Emuwatch,
    /// The same with a ring buffer sized for the burst (`Ctx::big_ring`).
    EmuwatchBigRing,
    /// `emuwatch record --pid OTHER` while the workload runs untargeted.
    EmuwatchOther,
    /// `emuwatch record --all`.
    EmuwatchAll,
    /// No-op programs on emuwatch's hooks.
    Floor,
    /// libbpf-tools `opensnoop -p WORKLOAD` (system-wide for multi-process workloads).
    Opensnoop,
    /// `bpftrace` running the equivalent script on the workload's process tree.
    Bpftrace,
    /// `strace -f -p WORKLOAD`.
    Strace,
    /// `emuwatch record --syscall-probes raw --pid WORKLOAD` (the Android-kernel path).
    EmuwatchRaw,
    /// The same with `Ctx::big_ring`.
    EmuwatchRawBigRing,
    /// `emuwatch record --syscall-probes raw --pid OTHER`: the workload is not a target.
    EmuwatchRawOther,
    /// No-op programs on the raw path's hooks (`Ctx::raw_hooks`).
    FloorRaw,
    /// No-op raw_tp programs on `sys_enter` and `sys_exit` only (hook-type comparison).
    FloorRawTp,
    /// No-op programs on the classic `raw_syscalls/sys_enter` and `sys_exit` tracepoints only.
    FloorTpRawSyscalls,
    /// `emuwatch record --names off --pid WORKLOAD`: everything but name capture.
    EmuwatchNamesOff,
}

/// The hooks of the classic-tracepoint variant of the raw path, and of its raw_tp default.
pub const TP_RAW_SYSCALLS_HOOKS: [&str; 2] = [
    "tracepoint raw_syscalls/sys_enter",
    "tracepoint raw_syscalls/sys_exit",
];
pub const RAW_TP_HOOKS: [&str; 2] = ["raw_tp sys_enter", "raw_tp sys_exit"];

impl Cond {
    /// The overhead section: emuwatch (per-syscall path) next to the other tools.
    pub const OVERHEAD: [Cond; 9] = [
        Cond::None,
        Cond::Emuwatch,
        Cond::EmuwatchBigRing,
        Cond::EmuwatchOther,
        Cond::EmuwatchAll,
        Cond::Floor,
        Cond::Opensnoop,
        Cond::Bpftrace,
        Cond::Strace,
    ];

    /// The raw section: both syscall paths, each with its own floor, in one run.
    pub const RAW: [Cond; 9] = [
        Cond::None,
        Cond::Floor,
        Cond::Emuwatch,
        Cond::EmuwatchBigRing,
        Cond::EmuwatchOther,
        Cond::FloorRaw,
        Cond::EmuwatchRaw,
        Cond::EmuwatchRawBigRing,
        Cond::EmuwatchRawOther,
    ];

    /// The hook-type section: empty programs on each candidate hook of the raw path (and the
    /// per-syscall floor for reference), emuwatch's raw path where the workload's syscalls are
    /// ones it does not capture.
    pub const HOOK_TYPE: [Cond; 6] = [
        Cond::None,
        Cond::Floor,
        Cond::FloorRawTp,
        Cond::FloorTpRawSyscalls,
        Cond::EmuwatchRawOther,
        Cond::EmuwatchRaw,
    ];

    /// The names section: what name capture (`--names auto`, the default) adds to a
    /// connect-and-send workload over the same recording with `--names off`.
    pub const NAMES: [Cond; 4] = [
        Cond::None,
        Cond::Floor,
        Cond::EmuwatchNamesOff,
        Cond::Emuwatch,
    ];

    pub const EVERY: [Cond; 16] = [
        Cond::None,
        Cond::Emuwatch,
        Cond::EmuwatchBigRing,
        Cond::EmuwatchOther,
        Cond::EmuwatchAll,
        Cond::Floor,
        Cond::Opensnoop,
        Cond::Bpftrace,
        Cond::Strace,
        Cond::EmuwatchRaw,
        Cond::EmuwatchRawBigRing,
        Cond::EmuwatchRawOther,
        Cond::FloorRaw,
        Cond::FloorRawTp,
        Cond::FloorTpRawSyscalls,
        Cond::EmuwatchNamesOff,
    ];

    pub fn from_key(key: &str) -> Option<Cond> {
        Cond::EVERY.into_iter().find(|c| c.key() == key)
    }

    pub fn key(self) -> &'static str {
        match self {
            Cond::None => "none",
            Cond::Emuwatch => "emuwatch",
            Cond::EmuwatchBigRing => "emuwatch_big_ring",
            Cond::EmuwatchOther => "emuwatch_other",
            Cond::EmuwatchAll => "emuwatch_all",
            Cond::Floor => "floor",
            Cond::Opensnoop => "opensnoop",
            Cond::Bpftrace => "bpftrace",
            Cond::Strace => "strace",
            Cond::EmuwatchRaw => "emuwatch_raw",
            Cond::EmuwatchRawBigRing => "emuwatch_raw_big_ring",
            Cond::EmuwatchRawOther => "emuwatch_raw_other",
            Cond::FloorRaw => "floor_raw",
            Cond::FloorRawTp => "floor_raw_tp",
            Cond::FloorTpRawSyscalls => "floor_tp_raw_syscalls",
            Cond::EmuwatchNamesOff => "emuwatch_names_off",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Cond::None => "no tracer",
            Cond::Emuwatch => "emuwatch, workload is the target",
            Cond::EmuwatchBigRing => "emuwatch, workload is the target, larger ring buffer",
            Cond::EmuwatchOther => "emuwatch, another target (workload untargeted)",
            Cond::EmuwatchAll => "emuwatch --all",
            Cond::Floor => "no-op floor (same hooks, empty programs)",
            Cond::Opensnoop => "libbpf-tools opensnoop",
            Cond::Bpftrace => "bpftrace, equivalent script",
            Cond::Strace => "strace -f",
            Cond::EmuwatchRaw => "emuwatch raw path, workload is the target",
            Cond::EmuwatchRawBigRing => {
                "emuwatch raw path, workload is the target, larger ring buffer"
            }
            Cond::EmuwatchRawOther => "emuwatch raw path, another target (workload untargeted)",
            Cond::FloorRaw => "raw-path no-op floor (the raw path's hooks, empty programs)",
            Cond::FloorRawTp => "empty raw_tp programs on sys_enter + sys_exit",
            Cond::FloorTpRawSyscalls => {
                "empty programs on tracepoints raw_syscalls/sys_enter + sys_exit"
            }
            Cond::EmuwatchNamesOff => "emuwatch --names off, workload is the target",
        }
    }

    /// The floor this condition is compared with: the no-op programs on its own hooks.
    /// No-op programs on hooks, no tracer process.
    pub fn is_floor(self) -> bool {
        matches!(
            self,
            Cond::Floor | Cond::FloorRaw | Cond::FloorRawTp | Cond::FloorTpRawSyscalls
        )
    }

    pub fn floor(self) -> Cond {
        match self {
            Cond::EmuwatchRaw | Cond::EmuwatchRawBigRing | Cond::EmuwatchRawOther => Cond::FloorRaw,
            Cond::FloorRaw | Cond::FloorRawTp | Cond::FloorTpRawSyscalls => self,
            _ => Cond::Floor,
        }
    }

    /// emuwatch on the raw-syscalls path (`--syscall-probes raw`).
    pub fn raw_path(self) -> bool {
        matches!(
            self,
            Cond::EmuwatchRaw | Cond::EmuwatchRawBigRing | Cond::EmuwatchRawOther
        )
    }

    /// emuwatch with the workload as its target (stops by itself when the target exits).
    pub fn targeted(self) -> bool {
        matches!(
            self,
            Cond::Emuwatch
                | Cond::EmuwatchBigRing
                | Cond::EmuwatchRaw
                | Cond::EmuwatchRawBigRing
                | Cond::EmuwatchNamesOff
        )
    }

    pub fn big_ring(self) -> bool {
        matches!(self, Cond::EmuwatchBigRing | Cond::EmuwatchRawBigRing)
    }

    /// Does this condition record the workload's events (so delivered/lost mean something)?
    pub fn captures(self) -> bool {
        matches!(
            self,
            Cond::Emuwatch
                | Cond::EmuwatchBigRing
                | Cond::EmuwatchAll
                | Cond::EmuwatchRaw
                | Cond::EmuwatchRawBigRing
                | Cond::EmuwatchNamesOff
                | Cond::Opensnoop
                | Cond::Bpftrace
                | Cond::Strace
        )
    }

    pub fn is_emuwatch(self) -> bool {
        matches!(
            self,
            Cond::Emuwatch
                | Cond::EmuwatchBigRing
                | Cond::EmuwatchOther
                | Cond::EmuwatchAll
                | Cond::EmuwatchRaw
                | Cond::EmuwatchRawBigRing
                | Cond::EmuwatchRawOther
                | Cond::EmuwatchNamesOff
        )
    }

    /// Which of the workload's event kinds the tool records at all.
    pub fn records_connects(self) -> bool {
        !matches!(self, Cond::Opensnoop)
    }

    pub fn records_reads(self) -> bool {
        matches!(
            self,
            Cond::Emuwatch
                | Cond::EmuwatchBigRing
                | Cond::EmuwatchAll
                | Cond::EmuwatchRaw
                | Cond::EmuwatchRawBigRing
                | Cond::EmuwatchNamesOff
                | Cond::Bpftrace
        )
    }
}
