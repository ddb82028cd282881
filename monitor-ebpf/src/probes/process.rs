//! Process lifecycle: fork (BTF tracepoint, to tell processes from threads), exec (tracepoint,
//! for the filename) and exit (BTF tracepoint, for `exit_code`).
use core::ptr::read_volatile;

use aya_ebpf::{
    EbpfContext,
    helpers::bpf_probe_read_kernel_str_bytes,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::{
    kind,
    process::{Exec, Exit, Fork, Rename},
};

use crate::{
    emit::{current, reserve, submit},
    filter::{adopt, forget, is_target},
    maps::IN_EXEC,
};

/// `task_struct` member offsets for the running kernel, looked up by userspace in
/// `/sys/kernel/btf/vmlinux` and frozen into .rodata before load (aya-ebpf has no CO-RE).
#[unsafe(no_mangle)]
static TASK_PID_OFF: u32 = 0;
#[unsafe(no_mangle)]
static TASK_TGID_OFF: u32 = 0;
#[unsafe(no_mangle)]
static TASK_EXIT_CODE_OFF: u32 = 0;

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`, run by the parent.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    let task = current();
    if !is_target(task.tgid, task.uid) {
        return 0;
    }
    let pid_off = unsafe { read_volatile(&TASK_PID_OFF) } as usize;
    let tgid_off = unsafe { read_volatile(&TASK_TGID_OFF) } as usize;
    if pid_off == 0 || tgid_off == 0 {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    let child_pid: i32 = unsafe { *(child.add(pid_off) as *const i32) };
    let child_tgid: i32 = unsafe { *(child.add(tgid_off) as *const i32) };
    if child_pid != child_tgid {
        return 0; // a new thread of an existing target
    }
    adopt(child_tgid as u32);
    if let Some(mut entry) = reserve::<Fork>(kind::FORK, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Fork {
                child_tgid: child_tgid as u32,
                _pad: 0,
            };
        }
        submit(entry);
    }
    0
}

/// sched/sched_process_exec: `__data_loc char[] filename`@8, `pid`@12, `old_pid`@16.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let task = current();
    if !is_target(task.tgid, task.uid) {
        return 0;
    }
    let loc: u32 = unsafe { ctx.read_at::<u32>(8) }.unwrap_or(0);
    let old_tid: i32 = unsafe { ctx.read_at::<i32>(16) }.unwrap_or(0);
    let _ = IN_EXEC.remove(&(old_tid as u32));
    let Some(mut entry) = reserve::<Exec>(kind::EXEC, &task) else {
        return 0;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).payload.old_tid = old_tid as u32;
        // __data_loc: low 16 bits = offset of the string from the start of the record.
        let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
        let buf = &mut (*ev).payload.filename;
        (*ev).payload.filename_len = match bpf_probe_read_kernel_str_bytes(src, buf) {
            Ok(s) => s.len() as u32 + 1,
            Err(_) => 0,
        };
    }
    submit(entry);
    0
}

/// `sched_process_exit(struct task_struct *p, bool group_dead)`, run by the exiting thread.
/// Reported once per process, by the thread that ends the thread group.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    let group_dead: u8 = ctx.arg::<u64>(1) as u8;
    if group_dead == 0 {
        return 0;
    }
    let task = current();
    if !is_target(task.tgid, task.uid) {
        return 0;
    }
    let off = unsafe { read_volatile(&TASK_EXIT_CODE_OFF) } as usize;
    let p: *const u8 = ctx.arg(0);
    let exit_code: i32 = if off != 0 {
        unsafe { *(p.add(off) as *const i32) }
    } else {
        -1
    };
    if let Some(mut entry) = reserve::<Exit>(kind::EXIT, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Exit { exit_code, _pad: 0 };
        }
        submit(entry);
    }
    forget(task.tgid);
    0
}

#[inline(always)]
fn exec_enter() -> u32 {
    let task = current();
    if is_target(task.tgid, task.uid) {
        let _ = IN_EXEC.insert(&task.tid, &1, 0);
    }
    0
}

#[inline(always)]
fn exec_exit() -> u32 {
    // Reached when exec failed (on success sched_process_exec already cleared the flag).
    let _ = IN_EXEC.remove(&current().tid);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn sys_enter_execve(_ctx: TracePointContext) -> u32 {
    exec_enter()
}

#[tracepoint(category = "syscalls", name = "sys_enter_execveat")]
pub fn sys_enter_execveat(_ctx: TracePointContext) -> u32 {
    exec_enter()
}

#[tracepoint(category = "syscalls", name = "sys_exit_execve")]
pub fn sys_exit_execve(_ctx: TracePointContext) -> u32 {
    exec_exit()
}

#[tracepoint(category = "syscalls", name = "sys_exit_execveat")]
pub fn sys_exit_execveat(_ctx: TracePointContext) -> u32 {
    exec_exit()
}

/// task/task_rename: `pid`@8, `oldcomm[16]`@12, `newcomm[16]`@28. Runs in the renaming task.
/// Renames done by exec itself are skipped (the exec event reports them).
#[tracepoint(category = "task", name = "task_rename")]
pub fn task_rename(ctx: TracePointContext) -> u32 {
    let task = current();
    if !is_target(task.tgid, task.uid) || unsafe { IN_EXEC.get(&task.tid) }.is_some() {
        return 0;
    }
    let new_comm: [u8; 16] = unsafe { ctx.read_at(28) }.unwrap_or([0; 16]);
    if let Some(mut entry) = reserve::<Rename>(kind::RENAME, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Rename { new_comm };
        }
        submit(entry);
    }
    0
}
