//! Device control: `VIDIOC_STREAMON` ioctls of targets (a video capture stream starting).
//! Device *opens* arrive as file opens; userspace classifies camera/microphone nodes by path.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use monitor_common::{
    device::{Ioctl, VIDIOC_STREAMON},
    kind,
};

use crate::{
    emit::{current, reserve, submit},
    filter::is_target,
    maps::{PENDING_IOCTL, count_loss, loss},
};

/// syscalls/sys_enter_ioctl: `fd`@16, `cmd`@24, `arg`@32.
#[tracepoint(category = "syscalls", name = "sys_enter_ioctl")]
pub fn sys_enter_ioctl(ctx: TracePointContext) -> u32 {
    let cmd: u64 = unsafe { ctx.read_at(24) }.unwrap_or(0);
    if cmd as u32 != VIDIOC_STREAMON {
        return 0;
    }
    let task = current();
    if !is_target(task.tgid, task.uid) {
        return 0;
    }
    let fd: u64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    let io = Ioctl {
        fd: fd as i32,
        cmd: cmd as u32,
        result: 0,
        _pad: 0,
    };
    if PENDING_IOCTL.insert(&task.tid, &io, 0).is_err() {
        count_loss(loss::PENDING_FULL);
    }
    0
}

/// syscalls/sys_exit_ioctl: `ret`@16.
#[tracepoint(category = "syscalls", name = "sys_exit_ioctl")]
pub fn sys_exit_ioctl(ctx: TracePointContext) -> u32 {
    let task = current();
    let Some(pending) = (unsafe { PENDING_IOCTL.get(&task.tid) }).copied() else {
        return 0;
    };
    let _ = PENDING_IOCTL.remove(&task.tid);
    let ret: i64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    if let Some(mut entry) = reserve::<Ioctl>(kind::IOCTL, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Ioctl {
                result: ret as i32,
                ..pending
            };
        }
        submit(entry);
    }
    0
}
