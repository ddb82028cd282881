//! Process lifecycle: fork (BTF tracepoint, to tell processes from threads), exec (tracepoint,
//! for the filename) and exit (BTF tracepoint, for `exit_code`). Kernels without BTF get
//! classic tracepoints instead: `task/task_newtask` (its `clone_flags` tell threads apart) and
//! `sched/sched_process_exit`, with the exit code taken from the exit_group()/exit() call.
use core::ptr::read_volatile;

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_comm, bpf_probe_read_kernel_str_bytes},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::{
    kind,
    process::{Exec, Exit, Fork, Rename, Setuid, setuid},
};

use crate::{
    args::{SysArgs, TpArgs},
    emit::{current, current_ids, field, reserve, submit},
    filter::{
        adopt, forget, forget_resolver, have_uid_targets, is_known_target, is_target, maybe_target,
        name_resolver, open_filter_slot,
    },
    maps::{EXIT_STATUS, IN_EXEC, count_loss, loss},
};

/// `task_struct` member offsets for the running kernel, looked up by userspace in
/// `/sys/kernel/btf/vmlinux` and frozen into .rodata before load (aya-ebpf has no CO-RE).
#[unsafe(no_mangle)]
static TASK_PID_OFF: u32 = 0;
#[unsafe(no_mangle)]
static TASK_TGID_OFF: u32 = 0;
#[unsafe(no_mangle)]
static TASK_EXIT_CODE_OFF: u32 = 0;
/// `task_struct.signal` and `signal_struct.live`: whether the thread group died, for kernels
/// whose `sched_process_exit` has no `group_dead` argument (before 6.16 or so).
#[unsafe(no_mangle)]
static TASK_SIGNAL_OFF: u32 = 0;
#[unsafe(no_mangle)]
static SIGNAL_LIVE_OFF: u32 = 0;
/// Offsets in the classic tracepoints' records, from their format files (0: absent).
#[unsafe(no_mangle)]
static NEWTASK_PID_OFF: u32 = 0;
#[unsafe(no_mangle)]
static NEWTASK_FLAGS_OFF: u32 = 0;
#[unsafe(no_mangle)]
static EXIT_TP_PID_OFF: u32 = 0;
#[unsafe(no_mangle)]
static EXIT_TP_GROUP_DEAD_OFF: u32 = 0;

const CLONE_THREAD: u64 = 0x10000;

#[inline(always)]
fn rodata(v: &u32) -> usize {
    unsafe { read_volatile(v) as usize }
}

/// A new process of a target: make it a target before it runs, and say so.
#[inline(always)]
fn new_process(task: &crate::emit::Task, child_tgid: u32) {
    adopt(child_tgid);
    if let Some(mut entry) = reserve::<Fork>(kind::FORK, task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Fork {
                child_tgid,
                _pad: 0,
            };
        }
        submit(entry);
    }
}

/// A target process ended.
#[inline(always)]
fn process_exit(task: &crate::emit::Task, exit_code: i32) {
    if let Some(mut entry) = reserve::<Exit>(kind::EXIT, task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Exit { exit_code, _pad: 0 };
        }
        submit(entry);
    }
    forget(task.tgid);
}

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
    new_process(&task, child_tgid as u32);
    0
}

/// task/task_newtask (`pid`, `clone_flags`; offsets from the format), run by the parent before
/// the child first runs. The fork probe of kernels without BTF.
#[tracepoint(category = "task", name = "task_newtask")]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let pid_off = rodata(&NEWTASK_PID_OFF);
    let flags_off = rodata(&NEWTASK_FLAGS_OFF);
    if pid_off == 0 || flags_off == 0 {
        return 0;
    }
    let task = current();
    if !is_target(task.tgid, task.uid) {
        return 0;
    }
    let flags: u64 = unsafe { ctx.read_at(flags_off) }.unwrap_or(CLONE_THREAD);
    if flags & CLONE_THREAD != 0 {
        return 0;
    }
    let child: i32 = unsafe { ctx.read_at(pid_off) }.unwrap_or(0);
    if child > 0 {
        new_process(&task, child as u32);
    }
    0
}

/// sched/sched_process_exec: `__data_loc char[] filename`@8, `pid`@12, `old_pid`@16.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let task = current();
    if !is_target(task.tgid, task.uid) {
        // exec gave the task its new name: a resolver (`--resolver`) from now on?
        if let Ok(comm) = bpf_get_current_comm() {
            name_resolver(task.tgid, &comm);
        }
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
    btf_exit(ctx.arg(0));
    0
}

/// `sched_process_exit(struct task_struct *p)`: kernels whose tracepoint has no `group_dead`
/// (userspace reads the prototype from BTF). The group is dead when `p->signal->live`, which
/// do_exit() decremented before the tracepoint, is 0.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit_1arg(ctx: BtfTracePointContext) -> i32 {
    let signal_off = rodata(&TASK_SIGNAL_OFF);
    let live_off = rodata(&SIGNAL_LIVE_OFF);
    if signal_off == 0 {
        return 0;
    }
    let p: *const u8 = ctx.arg(0);
    let live: i32 = unsafe {
        let sig = *(p.add(signal_off) as *const *const u8);
        *(sig.add(live_off) as *const i32)
    };
    if live != 0 {
        return 0;
    }
    btf_exit(p);
    0
}

#[inline(always)]
fn btf_exit(p: *const u8) {
    let task = current();
    if !is_target(task.tgid, task.uid) {
        forget_resolver(task.tgid);
        return;
    }
    let off = rodata(&TASK_EXIT_CODE_OFF);
    let exit_code: i32 = if off != 0 {
        unsafe { *(p.add(off) as *const i32) }
    } else {
        -1
    };
    process_exit(&task, exit_code);
}

/// sched/sched_process_exit (offsets from the format), the exit probe of kernels without BTF.
/// Without a `group_dead` field the group leader's exit stands for the process's.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit_tp(ctx: TracePointContext) -> u32 {
    let task = current();
    let group_dead_off = rodata(&EXIT_TP_GROUP_DEAD_OFF);
    let group_dead = if group_dead_off != 0 {
        unsafe { ctx.read_at::<u8>(group_dead_off) }.unwrap_or(0) != 0
    } else {
        task.tid == task.tgid
    };
    if !group_dead {
        return 0;
    }
    if !is_target(task.tgid, task.uid) {
        forget_resolver(task.tgid);
        return 0;
    }
    // exit_group()/exit() recorded the status; a process killed by a signal made no such call
    // and its exit code is unknown here (-1).
    let exit_code = match unsafe { EXIT_STATUS.get(&task.tgid) }.copied() {
        Some(status) => (status & 0xff) << 8,
        None => -1,
    };
    let _ = EXIT_STATUS.remove(&task.tgid);
    process_exit(&task, exit_code);
    0
}

/// exit_group(status) / exit(status) entry: remember the status for the BTF-less exit probe.
#[inline(always)]
pub fn exit_enter(status: u64) {
    let task = current();
    if is_target(task.tgid, task.uid)
        && EXIT_STATUS.insert(&task.tgid, &(status as i32), 0).is_err()
    {
        count_loss(loss::PENDING_FULL);
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_exit_group")]
pub fn sys_enter_exit_group(ctx: TracePointContext) -> u32 {
    exit_enter(TpArgs(&ctx).arg(0));
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_exit")]
pub fn sys_enter_exit(ctx: TracePointContext) -> u32 {
    exit_enter(TpArgs(&ctx).arg(0));
    0
}

#[inline(always)]
pub fn exec_enter() {
    let task = current();
    if is_target(task.tgid, task.uid) {
        let _ = IN_EXEC.insert(&task.tid, &1, 0);
    }
}

#[inline(always)]
pub fn exec_exit() {
    // Reached when exec failed (on success sched_process_exec already cleared the flag).
    let task = current_ids();
    if maybe_target(task.tgid) {
        let _ = IN_EXEC.remove(&task.tid);
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn sys_enter_execve(_ctx: TracePointContext) -> u32 {
    exec_enter();
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_execveat")]
pub fn sys_enter_execveat(_ctx: TracePointContext) -> u32 {
    exec_enter();
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_execve")]
pub fn sys_exit_execve(_ctx: TracePointContext) -> u32 {
    exec_exit();
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_execveat")]
pub fn sys_exit_execveat(_ctx: TracePointContext) -> u32 {
    exec_exit();
    0
}

/// task/task_rename: `pid`@8, `oldcomm[16]`@12, `newcomm[16]`@28. Runs in the renaming task.
/// Renames done by exec itself are skipped (the exec event reports them).
#[tracepoint(category = "task", name = "task_rename")]
pub fn task_rename(ctx: TracePointContext) -> u32 {
    let task = current();
    let new_comm: [u8; 16] = unsafe { ctx.read_at(28) }.unwrap_or([0; 16]);
    if !is_target(task.tgid, task.uid) {
        // A process naming itself after a resolver (`--resolver`) becomes one. Only the
        // process's main thread names it (Android's netd names its threads otherwise).
        if task.tid == task.tgid {
            // The tracepoint copies the name with strscpy: the bytes after its NUL are
            // whatever the buffer held; the map's keys are zero-padded.
            let mut key = [0u8; 16];
            let mut end = false;
            for i in 0..16 {
                end = end || new_comm[i] == 0;
                key[i] = if end { 0 } else { new_comm[i] };
            }
            name_resolver(task.tgid, &key);
        }
        return 0;
    }
    if unsafe { IN_EXEC.get(&task.tid) }.is_some() {
        return 0;
    }
    if let Some(mut entry) = reserve::<Rename>(kind::RENAME, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Rename { new_comm };
        }
        submit(entry);
    }
    0
}

/// setuid/setreuid/setresuid entry on the raw path: with uid targets, open the caller's
/// pre-filter slot so the raw exit program looks at the call's result (a zygote child is not a
/// target until its uid changes). Rare calls: the cost is nil.
#[inline(always)]
pub fn setuid_enter() {
    if have_uid_targets() {
        open_filter_slot(current_ids().tgid);
    }
}

/// setuid/setreuid/setresuid returned `ret`. A task whose new uid is a target uid becomes a
/// target now, before it runs another instruction of its own (an Android app process forked
/// from zygote: uid 0 until here, its app's uid from here on); every target's uid change is
/// reported.
#[inline(always)]
pub fn setuid_exit(ret: i64, syscall: u32) {
    if ret != 0 {
        return;
    }
    let task = current();
    let was_target = is_known_target(task.tgid);
    if !is_target(task.tgid, task.uid) {
        return;
    }
    if let Some(mut entry) = reserve::<Setuid>(kind::SETUID, &task) {
        unsafe {
            (*entry.as_mut_ptr()).payload = Setuid {
                syscall,
                became_target: !was_target as u32,
            };
        }
        submit(entry);
    }
}

/// syscalls/sys_exit_setuid: `ret`@16.
#[tracepoint(category = "syscalls", name = "sys_exit_setuid")]
pub fn sys_exit_setuid(ctx: TracePointContext) -> u32 {
    setuid_exit(field(&ctx, 16), setuid::SETUID);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_setreuid")]
pub fn sys_exit_setreuid(ctx: TracePointContext) -> u32 {
    setuid_exit(field(&ctx, 16), setuid::SETREUID);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_setresuid")]
pub fn sys_exit_setresuid(ctx: TracePointContext) -> u32 {
    setuid_exit(field(&ctx, 16), setuid::SETRESUID);
    0
}
