//! Binder calls of targets. `ioctl(fd, BINDER_WRITE_READ, &bwr)` at entry: the write buffer is
//! walked (a bounded number of commands) for the first `BC_TRANSACTION(_SG)`, which is parsed
//! into this thread's pending slot with the first bytes of its parcel (the interface token;
//! userspace decodes it). `binder/binder_transaction`, where the kernel has it, fires inside
//! the same ioctl in the caller's context and adds the callee. At ioctl exit the call is sent;
//! for calls to handle 0 (the service manager) the reply's first bytes go with it, so userspace
//! learns which handle names which service. Every other task pays the `cmd` comparison in
//! `device::ioctl_enter` and, for binder ioctls, the target check (`is_current_target`).
use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated},
    programs::TracePointContext,
};
use monitor_common::{
    binder::{
        BC_TRANSACTION, BC_TRANSACTION_SG, BR_DEAD_REPLY, BR_FAILED_REPLY, BR_REPLY, BinderCall,
        MAX_COMMANDS, MAX_REPLY_WAITS, PARCEL_COPY, REPLY_COPY, STATE_AWAIT_REPLY, STATE_NONE,
        STATE_PENDING, TF_ONE_WAY, btd, bwr,
    },
    kind,
};

use crate::{
    emit::{Ids, copy_payload, current_ids, reserve, submit},
    filter::is_current_target,
    maps::{BINDER_SCRATCH, PENDING_BINDER, count_loss, loss},
};

#[inline(always)]
fn user_u64(p: u64) -> u64 {
    unsafe { bpf_probe_read_user(p as *const u64) }.unwrap_or(0)
}

#[inline(always)]
fn user_u32(p: u64) -> u32 {
    unsafe { bpf_probe_read_user(p as *const u32) }.unwrap_or(0)
}

/// `_IOC_SIZE(cmd)`: the payload bytes after a binder command word.
#[inline(always)]
fn ioc_size(cmd: u32) -> u64 {
    ((cmd >> 16) & 0x3fff) as u64
}

/// The first transaction of the write buffer at `[start, end)` and how many more follow it.
#[inline(always)]
fn find_transaction(start: u64, end: u64) -> (u64, u32) {
    let mut p = start;
    let mut first = 0u64;
    let mut more = 0u32;
    for _ in 0..MAX_COMMANDS {
        if p + 4 > end {
            break;
        }
        let cmd = user_u32(p);
        if cmd == BC_TRANSACTION || cmd == BC_TRANSACTION_SG {
            if first == 0 {
                first = p;
            } else {
                more += 1;
            }
        }
        p += 4 + ioc_size(cmd);
    }
    (first, more)
}

/// `ioctl(fd, BINDER_WRITE_READ, arg)` entry of a possible target.
#[inline(always)]
pub fn write_read_enter(arg: u64, enter_ns: u64) {
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return;
    }
    let Ok(b) = (unsafe { bpf_probe_read_user(arg as *const [u64; 6]) }) else {
        aya_log_ebpf::debug!(
            &(),
            "binder: BINDER_WRITE_READ argument {:x} unreadable: pid {}",
            arg,
            task.tgid
        );
        return;
    };
    let (size, consumed, buf) = (
        b[bwr::WRITE_SIZE / 8],
        b[bwr::WRITE_CONSUMED / 8],
        b[bwr::WRITE_BUFFER / 8],
    );
    if size <= consumed || buf == 0 {
        return;
    }
    let (at, more) = find_transaction(buf + consumed, buf + size);
    if let Some(p) = PENDING_BINDER.get_ptr_mut(&task.tid)
        && unsafe { (*p).state } == STATE_AWAIT_REPLY
    {
        if at == 0 {
            // Still waiting for a lookup's reply: this ioctl's read buffer may have it.
            unsafe { (*p).bwr = arg };
            return;
        }
        // A new call before the reply came: send the lookup without it.
        emit(&task, p);
    }
    if at == 0 {
        return;
    }
    let Some(slot) = slot(&task) else {
        return;
    };
    let tr = at + 4;
    unsafe {
        let c = &mut *slot;
        c.command = user_u32(at);
        c.handle = user_u32(tr + btd::HANDLE as u64);
        c.code = user_u32(tr + btd::CODE as u64);
        c.flags = user_u32(tr + btd::FLAGS as u64);
        c.data_size = user_u64(tr + btd::DATA_SIZE as u64);
        c.offsets_size = user_u64(tr + btd::OFFSETS_SIZE as u64);
        c.to_proc = 0;
        c.to_thread = 0;
        c.result = 0;
        c.more = more;
        c.waits = 0;
        c.reply_copied = 0;
        c.enter_ns = enter_ns;
        c.bwr = arg;
        let data = user_u64(tr + btd::BUFFER as u64);
        let mut n = c.data_size;
        if n > PARCEL_COPY as u64 {
            n = PARCEL_COPY as u64;
        }
        let n = (n as u32) & (2 * PARCEL_COPY as u32 - 1);
        c.copied = 0;
        if n > 0
            && n <= PARCEL_COPY as u32
            && generated::bpf_probe_read_user(c.data.as_mut_ptr().cast(), n, data as *const _) == 0
        {
            c.copied = n;
        } else if n > 0 {
            aya_log_ebpf::debug!(
                &(),
                "binder: parcel of {} bytes at {:x} not copied: pid {}",
                c.data_size,
                data,
                task.tgid
            );
        }
        c.state = STATE_PENDING;
    }
}

/// This thread's pending slot, created from the zeroed per-CPU scratch value the first time.
#[inline(always)]
fn slot(task: &Ids) -> Option<*mut BinderCall> {
    if let Some(p) = PENDING_BINDER.get_ptr_mut(&task.tid) {
        return Some(p);
    }
    let scratch = BINDER_SCRATCH.get_ptr(0)?;
    if PENDING_BINDER
        .insert(&task.tid, unsafe { &*scratch }, 0)
        .is_err()
    {
        count_loss(loss::PENDING_FULL);
        return None;
    }
    let p = PENDING_BINDER.get_ptr_mut(&task.tid);
    if p.is_none() {
        count_loss(loss::PENDING_FULL);
    }
    p
}

/// binder/binder_transaction of a target (not a reply): the callee of this thread's pending
/// call. Offsets from the tracepoint's format file (userspace).
#[inline(always)]
pub fn transaction(ctx: &TracePointContext, to_proc_off: usize, to_thread_off: usize) {
    let task = current_ids();
    let Some(slot) = PENDING_BINDER.get_ptr_mut(&task.tid) else {
        return;
    };
    unsafe {
        let c = &mut *slot;
        if c.state != STATE_PENDING || c.to_proc != 0 {
            return;
        }
        c.to_proc = ctx.read_at::<i32>(to_proc_off).unwrap_or(0);
        if to_thread_off != 0 {
            c.to_thread = ctx.read_at::<i32>(to_thread_off).unwrap_or(0);
        }
    }
}

/// ioctl exit of a possible target: send this thread's pending call, if any. A sync call to
/// the service manager waits for its reply (`STATE_AWAIT_REPLY`) when this ioctl returned
/// before it.
#[inline(always)]
pub fn write_read_exit(task: &Ids, ret: i64) {
    let Some(slot) = PENDING_BINDER.get_ptr_mut(&task.tid) else {
        return;
    };
    unsafe {
        let c = &mut *slot;
        if c.state == STATE_PENDING {
            c.result = ret as i32;
            if c.handle != 0 || ret != 0 || c.flags & TF_ONE_WAY != 0 {
                emit(task, slot);
                return;
            }
        } else if c.state != STATE_AWAIT_REPLY {
            return;
        }
        let done = ret != 0 || read_reply(c) || c.waits >= MAX_REPLY_WAITS;
        if done {
            emit(task, slot);
        } else {
            c.state = STATE_AWAIT_REPLY;
            c.waits += 1;
        }
    }
}

/// Send the call in `slot` and free the slot. The record's time is the ioctl entry's.
#[inline(always)]
fn emit(task: &Ids, slot: *mut BinderCall) {
    unsafe {
        if let Some(mut entry) = reserve::<BinderCall>(kind::BINDER_CALL, task) {
            let ev = entry.as_mut_ptr();
            copy_payload(&raw mut (*ev).payload, slot);
            (*ev).payload.state = STATE_PENDING;
            (*ev).header.ts_ns = (*slot).enter_ns;
            submit(entry);
        }
        (*slot).state = STATE_NONE;
    }
}

/// The first bytes of the `BR_REPLY` parcel in the read buffer the driver just filled. True
/// when the call is over: its reply (or its failure) was there.
#[inline(always)]
fn read_reply(c: &mut BinderCall) -> bool {
    let Ok(b) = (unsafe { bpf_probe_read_user(c.bwr as *const [u64; 6]) }) else {
        return false;
    };
    let (consumed, buf) = (b[bwr::READ_CONSUMED / 8], b[bwr::READ_BUFFER / 8]);
    if consumed == 0 || buf == 0 {
        return false;
    }
    let end = buf + consumed;
    let mut p = buf;
    let mut at = 0u64;
    for _ in 0..MAX_COMMANDS {
        if p + 4 > end {
            break;
        }
        let cmd = user_u32(p);
        if cmd == BR_REPLY {
            at = p + 4;
            break;
        }
        if cmd == BR_DEAD_REPLY || cmd == BR_FAILED_REPLY {
            return true;
        }
        p += 4 + ioc_size(cmd);
    }
    if at == 0 {
        return false;
    }
    let size = user_u64(at + btd::DATA_SIZE as u64);
    let data = user_u64(at + btd::BUFFER as u64);
    let mut n = size;
    if n > REPLY_COPY as u64 {
        n = REPLY_COPY as u64;
    }
    let n = (n as u32) & 63;
    if n > 0
        && n <= REPLY_COPY as u32
        && unsafe {
            generated::bpf_probe_read_user(c.reply.as_mut_ptr().cast(), n, data as *const _)
        } == 0
    {
        c.reply_copied = n;
    }
    true
}
