//! Reserving ring-buffer records and filling the shared header.
use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_ktime_get_ns, generated,
    },
    maps::ring_buf::RingBufEntry,
    programs::TracePointContext,
};
use monitor_common::{COMM_LEN, Event, Header, config};

use crate::maps::{EVENTS, config, count_loss, loss};

// include/uapi/linux/bpf.h
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// The current task as the header describes it.
#[derive(Clone, Copy)]
pub struct Task {
    pub tid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
}

#[inline(always)]
pub fn current() -> Task {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    Task {
        tid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
    }
}

/// Thread and process id of the current task, without its credentials: the hot probes
/// (read-family, close, syscall exits) run for every task on the machine, and most of them
/// return before they need more.
#[derive(Clone, Copy)]
pub struct Ids {
    pub tid: u32,
    pub tgid: u32,
}

#[inline(always)]
pub fn current_ids() -> Ids {
    let pid_tgid = bpf_get_current_pid_tgid();
    Ids {
        tid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
    }
}

/// What `reserve` needs to know about the task an event is about.
pub trait Thread {
    fn tid(&self) -> u32;
    fn tgid(&self) -> u32;
}

impl Thread for Task {
    fn tid(&self) -> u32 {
        self.tid
    }
    fn tgid(&self) -> u32 {
        self.tgid
    }
}

impl Thread for Ids {
    fn tid(&self) -> u32 {
        self.tid
    }
    fn tgid(&self) -> u32 {
        self.tgid
    }
}

/// A field of the tracepoint record at `off`, read with a direct load (the verifier checks
/// ctx accesses) instead of `TracePointContext::read_at`, which costs a `bpf_probe_read`
/// helper call per field. `off` must be a constant aligned to the size of `T`.
#[inline(always)]
pub fn field<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(off) as *const T) }
}

/// Reserve an `Event<T>` with the header filled for the current task; counts a loss and
/// returns `None` when the ring buffer is full.
#[inline(always)]
pub fn reserve<T: 'static>(kind: u32, task: &impl Thread) -> Option<RingBufEntry<Event<T>>> {
    let Some(mut entry) = EVENTS.reserve::<Event<T>>(0) else {
        count_loss(loss::RINGBUF_FULL);
        return None;
    };
    unsafe { fill_header(&raw mut (*entry.as_mut_ptr()).header, kind, task) };
    Some(entry)
}

/// Fill the header at `h` for the current task.
///
/// The header is written field by field in place (the comm by the helper itself): building a
/// `Header` value first made LLVM assemble it byte by byte on the stack and copy it with calls
/// to the byte-loop `memset`/`memmove` that BPF code links in.
#[inline(always)]
pub unsafe fn fill_header(h: *mut Header, kind: u32, task: &impl Thread) {
    unsafe {
        // Every event is about the current task: its credentials come from the helper here.
        let uid_gid = bpf_get_current_uid_gid();
        (*h).kind = kind;
        (*h).tid = task.tid();
        (*h).tgid = task.tgid();
        (*h).uid = uid_gid as u32;
        (*h).gid = (uid_gid >> 32) as u32;
        (*h)._pad = 0;
        (*h).ts_ns = bpf_ktime_get_ns();
        (*h).cgroup_id = bpf_get_current_cgroup_id();
        // Fills all COMM_LEN bytes (zeroed on failure).
        generated::bpf_get_current_comm((&raw mut (*h).comm).cast(), COMM_LEN as u32);
    }
}

/// Send the first `len` bytes of an event built in a map value (`len` at most the size of
/// `Event<T>`, larger values are cut to it): records whose tail is a mostly empty buffer (a
/// path) go out at the length they use. One copy, made by the helper; counts a loss when the
/// ring buffer is full.
#[inline(always)]
pub fn output_prefix<T>(ev: *const Event<T>, len: usize) {
    let full = core::mem::size_of::<Event<T>>();
    // A bound the verifier can see: the helper may read only inside the map value.
    let len = if len > full { full } else { len };
    let bytes = unsafe { core::slice::from_raw_parts(ev.cast::<u8>(), len) };
    let flags = wakeup_flags(len as u64);
    if EVENTS.output::<[u8]>(bytes, flags).is_err() {
        count_loss(loss::RINGBUF_FULL);
    }
}

/// Copy a payload kept in a map into a ring-buffer record. `copy_nonoverlapping` becomes
/// `llvm.memcpy` of a constant size, which the BPF backend inlines as word loads and stores;
/// a plain assignment through these pointers became a call to a byte-by-byte `memmove` loop
/// (288 iterations for a `FileOpen`).
#[inline(always)]
pub unsafe fn copy_payload<T>(dst: *mut T, src: *const T) {
    unsafe { core::ptr::copy_nonoverlapping(src, dst, 1) }
}

/// Submit, waking the reader only when this record takes the pending bytes across a multiple
/// of `WAKEUP_BYTES` (userspace also polls on a short timer), so a busy target costs a few
/// wakeups per ring-buffer fill, not one per event.
///
/// Waking only on the crossing matters: a wakeup is an irq_work, i.e. a self-IPI, which in a
/// VM is an APIC write that exits to the hypervisor (several microseconds). Forcing one for
/// every record while a backlog is above the threshold made a busy target 3-5x slower.
/// Two CPUs crossing the same boundary at once may both miss it; the next boundary or the
/// reader's timer covers that.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    entry.submit(wakeup_flags(core::mem::size_of::<T>() as u64));
}

/// The wakeup flag for a record of `sample_len` bytes that was just reserved (see `submit`).
#[inline(always)]
fn wakeup_flags(sample_len: u64) -> u64 {
    let threshold = config(config::WAKEUP_BYTES);
    if threshold == 0 {
        return 0;
    }
    // Pending bytes, this record included (the producer position moves at reserve time).
    let pending = EVENTS.query(BPF_RB_AVAIL_DATA);
    let before = pending.saturating_sub(record_bytes(sample_len));
    if pending / threshold != before / threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Bytes a record of `sample_len` bytes takes in the ring: an 8-byte header, then the sample,
/// rounded to 8.
#[inline(always)]
const fn record_bytes(sample_len: u64) -> u64 {
    (sample_len + 8 + 7) & !7
}
