//! Maps shared by all probe families. Userspace finds them by these names.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use monitor_common::{
    COMM_LEN, Event, TARGET_FILTER_SLOTS,
    binder::BinderCall,
    config,
    connect::Connect,
    device::Ioctl,
    file::{FdKey, FileOpen, ReadAgg},
    net_data::{ConnState, PendingRecv},
    syscall::SYSCALL_SLOTS,
};

/// The one event channel to userspace. Userspace resizes it (`--ring-buffer`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Per-CPU loss counters, one slot per `loss::*` reason.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(loss::SLOTS, 0);

pub use monitor_common::loss;

/// Runtime settings, indexed by `monitor_common::config::*`.
#[map]
pub static CONFIG: Array<u64> = Array::with_max_entries(config::SLOTS, 0);

/// Target processes (tgid) -> `tgid_role::TARGET`, and resolver processes that are not targets
/// -> `tgid_role::RESOLVER`. Children of targets are added at fork, so whole trees stay targets.
#[map]
pub static TARGET_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// The fast pre-filter in front of `TARGET_TGIDS` (see `monitor_common::TARGET_FILTER_SLOTS`).
/// An array lookup is inlined by the verifier into a bounds check and a load.
#[map]
pub static TARGET_FILTER: Array<u8> = Array::with_max_entries(TARGET_FILTER_SLOTS, 0);
#[map]
pub static TARGET_UIDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);
/// Android app ids (`uid % 100000`): the app in every Android user (`--package`).
#[map]
pub static TARGET_APP_IDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);
#[map]
pub static TARGET_COMMS: HashMap<[u8; COMM_LEN], u8> = HashMap::with_max_entries(256, 0);
/// Names (comm) of resolver processes (`--resolver`): a process that execs or renames to one
/// becomes a resolver.
#[map]
pub static RESOLVER_COMMS: HashMap<[u8; COMM_LEN], u8> = HashMap::with_max_entries(16, 0);
#[map]
pub static TARGET_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(1024, 0);

/// connect() in flight, by thread id: filled at entry (and by the cgroup hook), sent at exit.
#[map]
pub static PENDING_CONNECT: HashMap<u32, Connect> = HashMap::with_max_entries(16384, 0);

/// open() (or chdir) in flight, by thread id. Each thread keeps its slot and the probes write
/// it in place (`payload.syscall` 0 = nothing pending): an insert and a delete per open cost
/// more than two lookups. LRU, so slots of threads that have gone are recycled. The whole
/// event is built here, header included, and sent as far as its path goes.
#[map]
pub static PENDING_OPEN: LruHashMap<u32, Event<FileOpen>> = LruHashMap::with_max_entries(16384, 0);

/// A zeroed `Event<FileOpen>` to create a thread's `PENDING_OPEN` slot from (too large for the
/// 512-byte BPF stack); never written.
#[map]
pub static OPEN_SCRATCH: PerCpuArray<Event<FileOpen>> = PerCpuArray::with_max_entries(1, 0);

/// read() in flight on a tracked fd, by thread id -> `READ_PENDING | fd` (0: none). Per-thread
/// slots written in place, like `PENDING_OPEN`.
#[map]
pub static PENDING_READ: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// Marks a `PENDING_READ` slot as holding an fd.
pub const READ_PENDING: u64 = 1 << 32;

/// Bytes and read calls per (tgid, fd) of files opened by targets while recording.
#[map]
pub static FD_READS: HashMap<FdKey, ReadAgg> = HashMap::with_max_entries(65536, 0);

/// Threads of targets inside execve/execveat: the kernel renames the task during exec, and
/// that rename is part of the exec event, not a `rename` of its own.
#[map]
pub static IN_EXEC: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

/// Interesting ioctl() in flight, by thread id.
#[map]
pub static PENDING_IOCTL: HashMap<u32, Ioctl> = HashMap::with_max_entries(4096, 0);

/// Binder call of a target in flight (`BINDER_WRITE_READ` ioctl), by thread id: written in
/// place (`state` says whether it holds one), like `PENDING_OPEN`.
#[map]
pub static PENDING_BINDER: LruHashMap<u32, BinderCall> = LruHashMap::with_max_entries(4096, 0);

/// A zeroed `BinderCall` to create a thread's `PENDING_BINDER` slot from; never written.
#[map]
pub static BINDER_SCRATCH: PerCpuArray<BinderCall> = PerCpuArray::with_max_entries(1, 0);

/// socket() in flight, by thread id -> the socket type asked for.
#[map]
pub static PENDING_SOCKET: HashMap<u32, u32> = HashMap::with_max_entries(4096, 0);

/// Types of inet sockets targets created while recording, by (tgid, fd).
#[map]
pub static SOCK_TYPES: LruHashMap<FdKey, u32> = LruHashMap::with_max_entries(16384, 0);

/// Sockets targets connected while recording (and unconnected DNS sockets), by (tgid, fd):
/// their connection id and whether their first bytes were copied (`net_data`).
#[map]
pub static SOCK_CONNS: LruHashMap<FdKey, ConnState> = LruHashMap::with_max_entries(16384, 0);

/// A receive in flight on a DNS socket, by thread id.
#[map]
pub static PENDING_RECV: LruHashMap<u32, PendingRecv> = LruHashMap::with_max_entries(4096, 0);

/// Per-CPU sequence of connection ids (`net_data::next_conn_id`).
#[map]
pub static CONN_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The raw-syscalls path's dispatch table: syscall number -> `monitor_common::syscall::op`,
/// filled by userspace for the running architecture.
#[map]
pub static SYSCALL_OPS: Array<u8> = Array::with_max_entries(SYSCALL_SLOTS, 0);

/// Exit status given to exit_group()/exit() by targets, by tgid: the exit code on kernels
/// where the exit probe cannot read `task_struct` (no BTF).
#[map]
pub static EXIT_STATUS: HashMap<u32, i32> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
pub fn config(slot: u32) -> u64 {
    CONFIG.get(slot).copied().unwrap_or(0)
}

/// Count one event lost for the reason in `slot` (`loss::*`). With `--kernel-log` the reason
/// is also logged (off: the verifier removes the log call, see docs/kernel-log.md).
#[inline(always)]
pub fn count_loss(slot: u32) {
    if let Some(p) = LOST.get_ptr_mut(slot) {
        unsafe { *p += 1 };
    }
    aya_log_ebpf::warn!(&(), "event lost: loss slot {}", slot);
}
