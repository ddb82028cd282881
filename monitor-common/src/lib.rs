//! Event types shared by emuwatch's eBPF programs (`monitor-ebpf`) and userspace (`monitor`).
//!
//! Every record in the ring buffer is an [`Event<T>`]: a [`Header`] filled in one place for
//! all probes, followed by one payload struct. Each payload lives in its own module, named after
//! its probe family. All structs are `#[repr(C)]` with explicit padding so both sides agree
//! byte for byte; `tests` in userspace check the sizes.
#![no_std]

pub mod app_state;
pub mod binder;
pub mod connect;
pub mod device;
pub mod file;
pub mod net_data;
pub mod process;
pub mod syscall;

/// Length of the kernel's `task_struct.comm` (TASK_COMM_LEN).
pub const COMM_LEN: usize = 16;

/// Slots of the `TARGET_FILTER` array: slot `tgid % TARGET_FILTER_SLOTS` is non-zero once a
/// process whose tgid falls there has been a target. Zero means "certainly not a target", so
/// the probes of every other task stop at one array load instead of a hash lookup. Whoever adds
/// a tgid to `TARGET_TGIDS` (userspace or the kernel) sets its slot; slots are never cleared
/// (a stale slot only costs the hash lookup it would have cost anyway).
pub const TARGET_FILTER_SLOTS: u32 = 65536;

/// Android puts user `u`'s copy of app `appId` at uid `u * PER_USER_RANGE + appId`.
pub const PER_USER_RANGE: u32 = 100_000;

/// Kinds of ring-buffer records (`Header::kind`).
pub mod kind {
    pub const FORK: u32 = 1;
    pub const EXEC: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const CONNECT: u32 = 4;
    pub const FILE_OPEN: u32 = 5;
    pub const FILE_READ: u32 = 6;
    pub const IOCTL: u32 = 7;
    pub const APP_STATE: u32 = 8;
    /// chdir/fchdir of a target, with a `file::FileOpen` payload (path or `dfd` = the fd).
    pub const CHDIR: u32 = 9;
    // 10 was `BINDER` (binder/binder_transaction records of their own); the tracepoint now
    // completes `BINDER_CALL` records instead.
    /// A target thread renamed itself (`task/task_rename`), `process::Rename` payload.
    pub const RENAME: u32 = 11;
    /// A task took a new uid (setuid/setreuid/setresuid returned 0) and is a target after it,
    /// `process::Setuid` payload. A zygote child becomes its app's process this way.
    pub const SETUID: u32 = 12;
    /// Bytes a target sent: the first send on a stream connection, a DNS query, a dnsproxyd
    /// command (`net_data::NetData` payload).
    pub const NET_SEND: u32 = 14;
    /// Bytes a target received on a DNS socket (`net_data::NetData` payload).
    pub const NET_RECV: u32 = 15;
    /// A binder transaction (`BC_TRANSACTION(_SG)`) of a target, `binder::BinderCall` payload.
    pub const BINDER_CALL: u32 = 13;
}

/// Common part of every event: who did it and when.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// One of [`kind`].
    pub kind: u32,
    /// Kernel "pid" of the task: the thread id.
    pub tid: u32,
    /// Kernel "tgid": the process id userspace sees.
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// cgroup v2 id of the task (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Event<T> {
    pub header: Header,
    pub payload: T,
}

/// Slots of the `LOST` per-CPU counter array: why the kernel could not deliver an event.
/// Userspace names them (`LossReason` in monitor/src/capability.rs; a test keeps both in step).
pub mod loss {
    /// The ring buffer was full: an event was not delivered.
    pub const RINGBUF_FULL: u32 = 0;
    /// A per-thread pending-syscall map was full: the syscall's event was not delivered.
    pub const PENDING_FULL: u32 = 1;
    /// The per-fd read aggregate map was full: reads on that file are not counted.
    pub const FD_TABLE_FULL: u32 = 2;
    /// A syscall emuwatch captures, made by a 32-bit (compat) target, seen on the raw path
    /// only: its number belongs to another table, so it was not decoded.
    pub const COMPAT_SYSCALL: u32 = 3;
    pub const SLOTS: u32 = 4;
}

/// Slots of the `CONFIG` array map (userspace writes them before attaching).
pub mod config {
    /// Non-zero: every process is a target (`--all`).
    pub const TARGET_ALL: u32 = 0;
    /// Non-zero: the `TARGET_UIDS` map has entries worth looking up.
    pub const HAVE_UIDS: u32 = 1;
    /// Non-zero: the `TARGET_COMMS` map has entries worth looking up.
    pub const HAVE_COMMS: u32 = 2;
    /// Non-zero: the `TARGET_CGROUPS` map has entries worth looking up.
    pub const HAVE_CGROUPS: u32 = 3;
    /// Ring-buffer bytes pending above which the producer wakes the reader.
    pub const WAKEUP_BYTES: u32 = 4;
    /// tgid of emuwatch itself, never a target.
    pub const SELF_TGID: u32 = 5;
    /// Non-zero: the `TARGET_APP_IDS` map has entries worth looking up (`uid % 100000`,
    /// Android's app id: `--package` targets the app in every Android user).
    pub const HAVE_APP_IDS: u32 = 6;
    /// Non-zero: copy the bytes that name destinations (DNS, first bytes of connections,
    /// dnsproxyd commands); `--names off` leaves it 0.
    pub const NAMES: u32 = 8;
    /// Non-zero: the `RESOLVER_COMMS` map has entries worth looking up (`--resolver`, name
    /// capture on).
    pub const HAVE_RESOLVERS: u32 = 9;
    pub const SLOTS: u32 = 16;
}

/// Values of the `TARGET_TGIDS` map: what the kernel copies of a process.
pub mod tgid_role {
    /// A target: everything emuwatch records.
    pub const TARGET: u8 = 1;
    /// A resolver process that is not a target (`--resolver`, e.g. Android's netd): only its
    /// port-53 DNS messages are copied, so names are learnt from the answers it gets for apps.
    pub const RESOLVER: u8 = 2;
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    unsafe impl aya::Pod for Header {}
    unsafe impl aya::Pod for file::FdKey {}
    unsafe impl aya::Pod for file::ReadAgg {}
    unsafe impl aya::Pod for net_data::ConnState {}
}
