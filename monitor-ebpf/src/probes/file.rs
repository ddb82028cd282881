//! File opens and bytes read. Opens are sent at syscall exit with the path copied at entry,
//! each record only as long as its path.
//! Reads are not events: each read-family exit adds to the (tgid, fd) aggregate in `FD_READS`,
//! and one `FileRead` is sent when the fd is closed (userspace flushes the rest when a process
//! exits or the recording stops), so a read loop costs map updates, not events.
use aya_ebpf::{
    helpers::{bpf_probe_read_user, bpf_probe_read_user_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{
    Header,
    file::{
        AT_FDCWD, FLUSH_CLOSE, FdKey, FileRead, PATH_AT_EXIT, PATH_FAULT, PATH_OFFSET, PATH_OK,
        ReadAgg, SYS_CHDIR, SYS_FCHDIR, SYS_OPEN, SYS_OPENAT, SYS_OPENAT2,
    },
    kind,
};

use crate::{
    args::{SysArgs, TpArgs},
    emit::{Ids, current_ids, field, fill_header, output_prefix, reserve, submit},
    filter::{is_current_target, maybe_target},
    maps::{
        FD_READS, OPEN_SCRATCH, PENDING_OPEN, PENDING_READ, READ_PENDING, SOCK_TYPES, count_loss,
        loss,
    },
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
        let o = &mut (*slot).payload;
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

/// Send the pending open (or chdir) of this thread with the syscall's result.
#[inline(always)]
pub fn open_exit(ret: i64) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    let Some(slot) = PENDING_OPEN.get_ptr_mut(&task.tid) else {
        return;
    };
    let p = unsafe { &mut (*slot).payload };
    if p.syscall == 0 {
        return; // this thread has nothing in flight
    }
    let event_kind = if p.syscall == SYS_CHDIR || p.syscall == SYS_FCHDIR {
        kind::CHDIR
    } else {
        kind::FILE_OPEN
    };
    p.result = ret as i32;
    if p.path_status == PATH_FAULT && p.user_path != 0 {
        // The string's page was not resident at entry; the syscall has since faulted it in,
        // so the copy usually works now.
        if let Ok(s) =
            unsafe { bpf_probe_read_user_str_bytes(p.user_path as *const u8, &mut p.path) }
        {
            p.path_len = s.len() as u32 + 1;
            p.path_status = PATH_AT_EXIT;
        } else {
            aya_log_ebpf::debug!(
                &(),
                "path not copied: pid {} syscall {} user pointer {:x}",
                task.tgid,
                p.syscall,
                p.user_path
            );
        }
    }
    unsafe { fill_header(&raw mut (*slot).header, event_kind, &task) };
    // Sent as far as the path goes: most paths are far shorter than the buffer.
    output_prefix(
        slot,
        size_of::<Header>() + PATH_OFFSET + p.path_len as usize,
    );
    p.syscall = 0;
    if event_kind == kind::FILE_OPEN && ret >= 0 {
        let key = FdKey {
            tgid: task.tgid,
            fd: ret as u32,
        };
        if FD_READS.insert(&key, &ReadAgg::default(), 0).is_err() {
            count_loss(loss::FD_TABLE_FULL);
        }
    }
}

/// The entry of an open-family syscall or chdir/fchdir (`syscall` = `SYS_*`): `openat(dfd,
/// filename, flags)`, `openat2(dfd, filename, how)` (`struct open_how` starts with `u64
/// flags`), `open(filename, flags)`, `chdir(filename)`, `fchdir(fd)` (sent as `dfd`, no path).
/// Userspace follows each target's working directory so relative paths stay resolvable after
/// the process has gone.
#[inline(always)]
pub fn open_family_enter(syscall: u8, a: &impl SysArgs) {
    let task = current_ids();
    if !is_current_target(task.tgid) {
        return;
    }
    let (dfd, filename, flags) = match syscall {
        SYS_OPENAT => (a.arg(0) as i32, a.arg(1), a.arg(2) as u32),
        SYS_OPENAT2 => {
            let how = a.arg(2) as *const u64;
            let flags = unsafe { bpf_probe_read_user(how) }.unwrap_or(0);
            (a.arg(0) as i32, a.arg(1), flags as u32)
        }
        SYS_OPEN => (AT_FDCWD, a.arg(0), a.arg(1) as u32),
        SYS_CHDIR => (AT_FDCWD, a.arg(0), 0),
        _ => (a.arg(0) as i32, 0, 0), // SYS_FCHDIR
    };
    open_enter(&task, syscall, dfd, filename as *const u8, flags);
}

macro_rules! open_family {
    ($($syscall:ident, $enter:ident, $exit:ident, $enter_tp:literal, $exit_tp:literal;)*) => {$(
        #[tracepoint(category = "syscalls", name = $enter_tp)]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            open_family_enter($syscall, &TpArgs(&ctx));
            0
        }
        #[tracepoint(category = "syscalls", name = $exit_tp)]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            open_exit(field(&ctx, 16));
            0
        }
    )*};
}

open_family! {
    SYS_OPENAT, sys_enter_openat, sys_exit_openat, "sys_enter_openat", "sys_exit_openat";
    SYS_OPENAT2, sys_enter_openat2, sys_exit_openat2, "sys_enter_openat2", "sys_exit_openat2";
    SYS_OPEN, sys_enter_open, sys_exit_open, "sys_enter_open", "sys_exit_open";
    SYS_CHDIR, sys_enter_chdir, sys_exit_chdir, "sys_enter_chdir", "sys_exit_chdir";
    SYS_FCHDIR, sys_enter_fchdir, sys_exit_fchdir, "sys_enter_fchdir", "sys_exit_fchdir";
}

/// Entry of any read-family syscall (the fd is the first argument). Remember the fd if it is
/// tracked. The argument is read only for possible targets (on the raw path, reading it is a
/// helper call, and read() is the hottest syscall of every other task).
#[inline(always)]
pub fn read_enter(a: &impl SysArgs, net: bool) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    let fd = a.arg(0);
    let key = FdKey {
        tgid: task.tgid,
        fd: fd as u32,
    };
    // Only fds opened by a target while recording are in FD_READS: this one lookup is the filter.
    if unsafe { FD_READS.get(&key) }.is_none() {
        // read(2) on a socket: a DNS answer on a TCP resolver connection?
        if net {
            super::net_data::read_enter(&task, a);
        }
        return;
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
}

/// Exit of a read-family syscall: add what a tracked file's read returned to its aggregate.
/// True if this was such a read (then it was not a socket read: `read_enter` chose one or the
/// other, so the caller skips the socket side's lookup).
#[inline(always)]
pub fn read_exit(ret: i64) -> bool {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return false;
    }
    let Some(slot) = PENDING_READ.get_ptr_mut(&task.tid) else {
        return false;
    };
    let v = unsafe { *slot };
    if v & READ_PENDING == 0 {
        return false;
    }
    unsafe { *slot = 0 };
    let fd = v as u32;
    if ret < 0 {
        return true;
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
    true
}

macro_rules! read_family {
    ($($enter:ident, $exit:ident, $enter_tp:literal, $exit_tp:literal, $net:literal;)*) => {$(
        #[tracepoint(category = "syscalls", name = $enter_tp)]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            read_enter(&TpArgs(&ctx), $net);
            0
        }
        #[tracepoint(category = "syscalls", name = $exit_tp)]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            let ret = field(&ctx, 16);
            if !read_exit(ret) && $net {
                super::net_data::recv_exit(ret);
            }
            0
        }
    )*};
}

read_family! {
    sys_enter_read, sys_exit_read, "sys_enter_read", "sys_exit_read", true;
    sys_enter_pread64, sys_exit_pread64, "sys_enter_pread64", "sys_exit_pread64", false;
    sys_enter_readv, sys_exit_readv, "sys_enter_readv", "sys_exit_readv", false;
    sys_enter_preadv, sys_exit_preadv, "sys_enter_preadv", "sys_exit_preadv", false;
    sys_enter_preadv2, sys_exit_preadv2, "sys_enter_preadv2", "sys_exit_preadv2", false;
}

/// close(fd): sends the fd's read aggregate, if it was read; for any other fd, forgets its
/// socket state. An fd in `FD_READS` was opened as a file while recording, so the socket maps
/// have nothing of it: a file's close costs two map operations, not four.
#[inline(always)]
pub fn close_enter(a: &impl SysArgs) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    let fd = a.arg(0);
    let key = FdKey {
        tgid: task.tgid,
        fd: fd as u32,
    };
    let Some(agg) = (unsafe { FD_READS.get(&key) }).copied() else {
        let _ = SOCK_TYPES.remove(&key);
        super::net_data::forget(task.tgid, fd as u32);
        return;
    };
    let _ = FD_READS.remove(&key);
    if agg.reads == 0 {
        return;
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
}

#[tracepoint(category = "syscalls", name = "sys_enter_close")]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    close_enter(&TpArgs(&ctx));
    0
}
