//! File opens and bytes read. Opens are sent at syscall exit with the path copied at entry.
//! Reads are not events: each read-family exit adds to the (tgid, fd) aggregate in `FD_READS`,
//! and one `FileRead` is sent when the fd is closed (userspace flushes the rest when a process
//! exits or the recording stops), so a read loop costs map updates, not events.
use aya_ebpf::{
    helpers::{bpf_probe_read_user, bpf_probe_read_user_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{
    file::{
        FLUSH_CLOSE, FdKey, FileOpen, FileRead, PATH_AT_EXIT, PATH_FAULT, PATH_OK, ReadAgg,
        SYS_CHDIR, SYS_FCHDIR, SYS_OPEN, SYS_OPENAT, SYS_OPENAT2,
    },
    kind,
};

use crate::{
    emit::{Ids, copy_payload, current_ids, field, reserve, submit},
    filter::{is_current_target, maybe_target},
    maps::{FD_READS, OPEN_SCRATCH, PENDING_OPEN, PENDING_READ, READ_PENDING, count_loss, loss},
};

#[inline(always)]
fn open_enter(task: &Ids, syscall: u8, dfd: i32, filename: *const u8, flags: u32) {
    // This thread's slot, written in place; its first open creates it from the (zeroed)
    // per-CPU scratch value.
    let slot = match PENDING_OPEN.get_ptr_mut(&task.tid) {
        Some(p) => p,
        None => {
            let Some(scratch) = OPEN_SCRATCH.get_ptr(0) else {
                return;
            };
            if PENDING_OPEN
                .insert(&task.tid, unsafe { &*scratch }, 0)
                .is_err()
            {
                count_loss(loss::PENDING_FULL);
                return;
            }
            let Some(p) = PENDING_OPEN.get_ptr_mut(&task.tid) else {
                count_loss(loss::PENDING_FULL);
                return;
            };
            p
        }
    };
    unsafe {
        let o = &mut *slot;
        o.result = 0;
        o.dfd = dfd;
        o.flags = flags;
        o.syscall = syscall;
        o.user_path = filename as u64;
        match bpf_probe_read_user_str_bytes(filename, &mut o.path) {
            Ok(s) => {
                o.path_len = s.len() as u32 + 1;
                o.path_status = PATH_OK;
            }
            Err(_) => {
                o.path_len = 0;
                o.path[0] = 0;
                o.path_status = PATH_FAULT;
            }
        }
    }
}

#[inline(always)]
fn open_exit(ctx: &TracePointContext) -> u32 {
    syscall_exit(ctx, kind::FILE_OPEN)
}

/// Send the pending open (or chdir) of this thread with the syscall's result.
#[inline(always)]
fn syscall_exit(ctx: &TracePointContext, event_kind: u32) -> u32 {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return 0;
    }
    let Some(pending) = PENDING_OPEN.get_ptr_mut(&task.tid) else {
        return 0;
    };
    if unsafe { (*pending).syscall } == 0 {
        return 0; // this thread has nothing in flight
    }
    // sys_exit_*: `ret`@16
    let ret: i64 = field(ctx, 16);
    if let Some(mut entry) = reserve::<FileOpen>(event_kind, &task) {
        unsafe {
            let ev = entry.as_mut_ptr();
            copy_payload(&raw mut (*ev).payload, pending);
            (*ev).payload.result = ret as i32;
            let p = &mut (*ev).payload;
            if p.path_status == PATH_FAULT && p.user_path != 0 {
                // The string's page was not resident at entry; the syscall has since faulted
                // it in, so the copy usually works now.
                if let Ok(s) = bpf_probe_read_user_str_bytes(p.user_path as *const u8, &mut p.path)
                {
                    p.path_len = s.len() as u32 + 1;
                    p.path_status = PATH_AT_EXIT;
                }
            }
        }
        submit(entry);
    }
    unsafe { (*pending).syscall = 0 };
    if event_kind == kind::FILE_OPEN && ret >= 0 {
        let key = FdKey {
            tgid: task.tgid,
            fd: ret as u32,
        };
        if FD_READS.insert(&key, &ReadAgg::default(), 0).is_err() {
            count_loss(loss::FD_TABLE_FULL);
        }
    }
    0
}

/// syscalls/sys_enter_openat: `dfd`@16, `filename`@24, `flags`@32.
#[tracepoint(category = "syscalls", name = "sys_enter_openat")]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return 0;
    }
    let dfd: u64 = field(&ctx, 16);
    let filename: *const u8 = field(&ctx, 24);
    let flags: u64 = field(&ctx, 32);
    open_enter(&task, SYS_OPENAT, dfd as i32, filename, flags as u32);
    0
}

/// syscalls/sys_enter_openat2: `dfd`@16, `filename`@24, `how`@32 (`struct open_how`, whose
/// first member is `__u64 flags`).
#[tracepoint(category = "syscalls", name = "sys_enter_openat2")]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return 0;
    }
    let dfd: u64 = field(&ctx, 16);
    let filename: *const u8 = field(&ctx, 24);
    let how: *const u64 = field(&ctx, 32);
    let flags = unsafe { bpf_probe_read_user(how) }.unwrap_or(0);
    open_enter(&task, SYS_OPENAT2, dfd as i32, filename, flags as u32);
    0
}

/// syscalls/sys_enter_open: `filename`@16, `flags`@24.
#[tracepoint(category = "syscalls", name = "sys_enter_open")]
pub fn sys_enter_open(ctx: TracePointContext) -> u32 {
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return 0;
    }
    let filename: *const u8 = field(&ctx, 16);
    let flags: u64 = field(&ctx, 24);
    open_enter(
        &task,
        SYS_OPEN,
        monitor_common::file::AT_FDCWD,
        filename,
        flags as u32,
    );
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_openat")]
pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    open_exit(&ctx)
}

#[tracepoint(category = "syscalls", name = "sys_exit_openat2")]
pub fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
    open_exit(&ctx)
}

#[tracepoint(category = "syscalls", name = "sys_exit_open")]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    open_exit(&ctx)
}

/// syscalls/sys_enter_chdir: `filename`@16. Userspace follows each target's working directory
/// so relative paths stay resolvable after the process has gone.
#[tracepoint(category = "syscalls", name = "sys_enter_chdir")]
pub fn sys_enter_chdir(ctx: TracePointContext) -> u32 {
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return 0;
    }
    let filename: *const u8 = field(&ctx, 16);
    open_enter(
        &task,
        SYS_CHDIR,
        monitor_common::file::AT_FDCWD,
        filename,
        0,
    );
    0
}

/// syscalls/sys_enter_fchdir: `fd`@16 (sent as `dfd`, with an empty path).
#[tracepoint(category = "syscalls", name = "sys_enter_fchdir")]
pub fn sys_enter_fchdir(ctx: TracePointContext) -> u32 {
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return 0;
    }
    let fd: u64 = field(&ctx, 16);
    open_enter(&task, SYS_FCHDIR, fd as i32, core::ptr::null(), 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_chdir")]
pub fn sys_exit_chdir(ctx: TracePointContext) -> u32 {
    syscall_exit(&ctx, kind::CHDIR)
}

#[tracepoint(category = "syscalls", name = "sys_exit_fchdir")]
pub fn sys_exit_fchdir(ctx: TracePointContext) -> u32 {
    syscall_exit(&ctx, kind::CHDIR)
}

/// Entry of any read-family syscall: all have `fd`@16. Remember the fd if it is tracked.
#[inline(always)]
fn read_enter(ctx: &TracePointContext) -> u32 {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return 0;
    }
    let fd: u64 = field(ctx, 16);
    let key = FdKey {
        tgid: task.tgid,
        fd: fd as u32,
    };
    // Only fds opened by a target while recording are in FD_READS: this one lookup is the filter.
    if unsafe { FD_READS.get(&key) }.is_none() {
        return 0;
    }
    let v = READ_PENDING | fd as u32 as u64;
    match PENDING_READ.get_ptr_mut(&task.tid) {
        Some(p) => unsafe { *p = v },
        None => {
            if PENDING_READ.insert(&task.tid, &v, 0).is_err() {
                count_loss(loss::PENDING_FULL);
            }
        }
    }
    0
}

#[inline(always)]
fn read_exit(ctx: &TracePointContext) -> u32 {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return 0;
    }
    let Some(slot) = PENDING_READ.get_ptr_mut(&task.tid) else {
        return 0;
    };
    let v = unsafe { *slot };
    if v & READ_PENDING == 0 {
        return 0;
    }
    unsafe { *slot = 0 };
    let fd = v as u32;
    let ret: i64 = field(ctx, 16);
    if ret < 0 {
        return 0;
    }
    let key = FdKey {
        tgid: task.tgid,
        fd,
    };
    if let Some(agg) = FD_READS.get_ptr_mut(&key) {
        unsafe {
            // Not atomic: the bpfel core has no atomics API. Two threads of one process
            // reading the same fd at the same instant could lose one update.
            (*agg).bytes += ret as u64;
            (*agg).reads += 1;
        }
    }
    0
}

macro_rules! read_family {
    ($($enter:ident, $exit:ident, $enter_tp:literal, $exit_tp:literal;)*) => {$(
        #[tracepoint(category = "syscalls", name = $enter_tp)]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            read_enter(&ctx)
        }
        #[tracepoint(category = "syscalls", name = $exit_tp)]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            read_exit(&ctx)
        }
    )*};
}

read_family! {
    sys_enter_read, sys_exit_read, "sys_enter_read", "sys_exit_read";
    sys_enter_pread64, sys_exit_pread64, "sys_enter_pread64", "sys_exit_pread64";
    sys_enter_readv, sys_exit_readv, "sys_enter_readv", "sys_exit_readv";
    sys_enter_preadv, sys_exit_preadv, "sys_enter_preadv", "sys_exit_preadv";
    sys_enter_preadv2, sys_exit_preadv2, "sys_enter_preadv2", "sys_exit_preadv2";
}

/// syscalls/sys_enter_close: `fd`@16. Sends the fd's read aggregate, if it was read.
#[tracepoint(category = "syscalls", name = "sys_enter_close")]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return 0;
    }
    let fd: u64 = field(&ctx, 16);
    let key = FdKey {
        tgid: task.tgid,
        fd: fd as u32,
    };
    let Some(agg) = (unsafe { FD_READS.get(&key) }).copied() else {
        return 0;
    };
    let _ = FD_READS.remove(&key);
    if agg.reads == 0 {
        return 0;
    }
    if let Some(mut entry) = reserve::<FileRead>(kind::FILE_READ, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = FileRead {
                fd: fd as i32,
                reason: FLUSH_CLOSE,
                _pad: [0; 3],
                bytes: agg.bytes,
                reads: agg.reads,
            };
        }
        submit(entry);
    }
    0
}
