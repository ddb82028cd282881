//! Reserving ring-buffer records and filling the shared header.
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    maps::ring_buf::RingBufEntry,
};
use monitor_common::{Event, Header, config};

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

/// Reserve an `Event<T>` with the header filled for the current task; counts a loss and
/// returns `None` when the ring buffer is full.
#[inline(always)]
pub fn reserve<T: 'static>(kind: u32, task: &Task) -> Option<RingBufEntry<Event<T>>> {
    let Some(mut entry) = EVENTS.reserve::<Event<T>>(0) else {
        count_loss(loss::RINGBUF_FULL);
        return None;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = Header {
            kind,
            tid: task.tid,
            tgid: task.tgid,
            uid: task.uid,
            gid: task.gid,
            _pad: 0,
            ts_ns: bpf_ktime_get_ns(),
            cgroup_id: bpf_get_current_cgroup_id(),
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
        };
    }
    Some(entry)
}

/// Submit, waking the reader only once `WAKEUP_BYTES` are pending (userspace also polls on a
/// short timer), so a busy target does not cost a wakeup per event.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    let threshold = config(config::WAKEUP_BYTES);
    let flags = if threshold == 0 {
        0
    } else if EVENTS.query(BPF_RB_AVAIL_DATA) >= threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags);
}
