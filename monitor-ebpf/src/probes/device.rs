//! Device control: `VIDIOC_STREAMON` ioctls of targets (a video capture stream starting) and
//! `BINDER_WRITE_READ` ioctls (binder calls, `binder.rs`). Device *opens* arrive as file opens;
//! userspace classifies camera/microphone nodes by path.
use core::ptr::read_volatile;

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};
use monitor_common::{
    binder::BINDER_WRITE_READ,
    device::{Ioctl, VIDIOC_STREAMON},
    kind,
};

use super::binder;

use crate::{
    args::{SysArgs, TpArgs},
    emit::{current_ids, field, reserve, submit},
    filter::{is_current_target, maybe_target},
    maps::{PENDING_IOCTL, count_loss, loss},
};

/// `ioctl(fd, cmd, arg)` entry.
#[inline(always)]
pub fn ioctl_enter(a: &impl SysArgs) {
    let cmd = a.arg(1);
    if cmd as u32 != VIDIOC_STREAMON {
        if cmd as u32 == BINDER_WRITE_READ {
            binder::write_read_enter(a.arg(2), unsafe { bpf_ktime_get_ns() });
        }
        return;
    }
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return;
    }
    let fd = a.arg(0);
    let io = Ioctl {
        fd: fd as i32,
        cmd: cmd as u32,
        result: 0,
        _pad: 0,
    };
    if PENDING_IOCTL.insert(&task.tid, &io, 0).is_err() {
        count_loss(loss::PENDING_FULL);
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_ioctl")]
pub fn sys_enter_ioctl(ctx: TracePointContext) -> u32 {
    ioctl_enter(&TpArgs(&ctx));
    0
}

#[inline(always)]
pub fn ioctl_exit(ret: i64) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    binder::write_read_exit(&task, ret);
    let Some(pending) = (unsafe { PENDING_IOCTL.get(&task.tid) }).copied() else {
        return;
    };
    let _ = PENDING_IOCTL.remove(&task.tid);
    if let Some(mut entry) = reserve::<Ioctl>(kind::IOCTL, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Ioctl {
                result: ret as i32,
                ..pending
            };
        }
        submit(entry);
    }
}

#[tracepoint(category = "syscalls", name = "sys_exit_ioctl")]
pub fn sys_exit_ioctl(ctx: TracePointContext) -> u32 {
    ioctl_exit(field(&ctx, 16));
    0
}

/// Offsets of `to_proc`, `to_thread` and `reply` in binder/binder_transaction. The tracepoint
/// exists where the kernel has binder (Android, Debian's `binder_linux`) and its layout has
/// changed between versions, so userspace reads the offsets from the tracepoint's format file;
/// 0 = unknown, the program does nothing.
#[unsafe(no_mangle)]
static BINDER_TO_PROC_OFF: u32 = 0;
#[unsafe(no_mangle)]
static BINDER_TO_THREAD_OFF: u32 = 0;
#[unsafe(no_mangle)]
static BINDER_REPLY_OFF: u32 = 0;

/// binder/binder_transaction: the callee of a target's binder call in flight (`binder.rs`).
#[tracepoint(category = "binder", name = "binder_transaction")]
pub fn binder_transaction(ctx: TracePointContext) -> u32 {
    let to_off = unsafe { read_volatile(&BINDER_TO_PROC_OFF) } as usize;
    let thread_off = unsafe { read_volatile(&BINDER_TO_THREAD_OFF) } as usize;
    let reply_off = unsafe { read_volatile(&BINDER_REPLY_OFF) } as usize;
    if to_off == 0 || reply_off == 0 {
        return 0;
    }
    if !maybe_target(current_ids().tgid) {
        return 0;
    }
    let reply: i32 = unsafe { ctx.read_at(reply_off) }.unwrap_or(1);
    if reply != 0 {
        return 0;
    }
    binder::transaction(&ctx, to_off, thread_off);
    0
}
