//! Device control: `VIDIOC_STREAMON` ioctls of targets (a video capture stream starting).
//! Device *opens* arrive as file opens; userspace classifies camera/microphone nodes by path.
use core::ptr::read_volatile;

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use monitor_common::{
    device::{Binder, Ioctl, VIDIOC_STREAMON},
    kind,
};

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

/// Offsets of `to_proc`, `reply` and `code` in binder/binder_transaction. The tracepoint only
/// exists on Android kernels and its layout has changed between versions, so userspace reads
/// the offsets from the tracepoint's format file; 0 = unknown, the program does nothing.
#[unsafe(no_mangle)]
static BINDER_TO_PROC_OFF: u32 = 0;
#[unsafe(no_mangle)]
static BINDER_REPLY_OFF: u32 = 0;
#[unsafe(no_mangle)]
static BINDER_CODE_OFF: u32 = 0;

/// binder/binder_transaction: a target calling another process (e.g. cameraserver).
#[tracepoint(category = "binder", name = "binder_transaction")]
pub fn binder_transaction(ctx: TracePointContext) -> u32 {
    let to_off = unsafe { read_volatile(&BINDER_TO_PROC_OFF) } as usize;
    let reply_off = unsafe { read_volatile(&BINDER_REPLY_OFF) } as usize;
    let code_off = unsafe { read_volatile(&BINDER_CODE_OFF) } as usize;
    if to_off == 0 || reply_off == 0 {
        return 0;
    }
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return 0;
    }
    let reply: i32 = unsafe { ctx.read_at(reply_off) }.unwrap_or(1);
    if reply != 0 {
        return 0;
    }
    let to_proc: i32 = unsafe { ctx.read_at(to_off) }.unwrap_or(0);
    let code: u32 = if code_off != 0 {
        unsafe { ctx.read_at(code_off) }.unwrap_or(0)
    } else {
        0
    };
    if let Some(mut entry) = reserve::<Binder>(kind::BINDER, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Binder { to_proc, code };
        }
        submit(entry);
    }
    0
}
