//! The raw-syscalls path: for kernels without `syscalls:*` tracepoints (Android's GKI kernels
//! are built without CONFIG_FTRACE_SYSCALLS). One program on `sys_enter` and one on
//! `sys_exit` look the syscall number up in `SYSCALL_OPS` and call the same capture logic the
//! per-syscall tracepoints call, so both paths produce the same events.
//!
//! Two hook types, one dispatch: `raw_tp` (the default: no record is built and a syscall
//! emuwatch does not capture costs one array load; arguments are read from `pt_regs`, which
//! also tells 32-bit tasks apart) and the classic `raw_syscalls` tracepoints (arguments in the
//! record; the fallback where raw_tp cannot attach). docs/BENCHMARKS.md has the measurement.
use aya_ebpf::{
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use monitor_common::{file, process::setuid, syscall::op};

use super::{connect, device, file as files, net_data, process};
use crate::{
    args::{RegsArgs, SysArgs, TpArgs},
    emit::{current_ids, field},
    filter::maybe_target,
    maps::{SYSCALL_OPS, count_loss, loss},
};

#[inline(always)]
fn op_of(nr: u64) -> u8 {
    // Negative numbers (-1: no syscall, e.g. a seccomp-skipped one) are out of range too.
    SYSCALL_OPS.get(nr as u32).map_or(op::NONE, |o| *o)
}

#[inline(always)]
fn enter(op: u8, a: &impl SysArgs) {
    match op {
        op::OPENAT => files::open_family_enter(file::SYS_OPENAT, a),
        op::OPENAT2 => files::open_family_enter(file::SYS_OPENAT2, a),
        op::OPEN => files::open_family_enter(file::SYS_OPEN, a),
        op::CHDIR => files::open_family_enter(file::SYS_CHDIR, a),
        op::FCHDIR => files::open_family_enter(file::SYS_FCHDIR, a),
        op::READ => files::read_enter(a, false),
        op::READ_NET => files::read_enter(a, true),
        op::WRITE => net_data::write_enter(a),
        op::WRITEV => net_data::writev_enter(a),
        op::SENDTO => net_data::sendto_enter(a),
        op::SENDMSG => net_data::sendmsg_enter(a),
        op::SENDMMSG => net_data::sendmmsg_enter(a),
        op::RECVFROM => net_data::recvfrom_enter(a),
        op::RECVMSG => net_data::recvmsg_enter(a),
        op::CLOSE => files::close_enter(a),
        op::CONNECT => connect::connect_enter(a),
        op::IOCTL => device::ioctl_enter(a),
        op::EXECVE => process::exec_enter(),
        op::EXIT | op::EXIT_GROUP => process::exit_enter(a.arg(0)),
        op::SOCKET => connect::socket_enter(a),
        op::SETUID | op::SETREUID | op::SETRESUID => process::setuid_enter(),
        _ => {}
    }
}

#[inline(always)]
fn exit(op: u8, ret: i64) {
    match op {
        op::OPENAT | op::OPENAT2 | op::OPEN | op::CHDIR | op::FCHDIR => files::open_exit(ret),
        op::READ => {
            files::read_exit(ret);
        }
        op::READ_NET => {
            if !files::read_exit(ret) {
                net_data::recv_exit(ret);
            }
        }
        op::RECVFROM | op::RECVMSG => net_data::recv_exit(ret),
        op::CONNECT => connect::connect_exit(ret),
        op::IOCTL => device::ioctl_exit(ret),
        op::EXECVE => process::exec_exit(),
        op::SOCKET => connect::socket_exit(ret),
        op::SETUID => process::setuid_exit(ret, setuid::SETUID),
        op::SETREUID => process::setuid_exit(ret, setuid::SETREUID),
        op::SETRESUID => process::setuid_exit(ret, setuid::SETRESUID),
        _ => {}
    }
}

/// A 32-bit task's numbers belong to another table: count the syscall as not decoded.
#[inline(always)]
fn compat_target(regs: &RegsArgs) -> bool {
    if !maybe_target(current_ids().tgid) || !regs.is_compat() {
        return false;
    }
    count_loss(loss::COMPAT_SYSCALL);
    true
}

/// raw_tp sys_enter(struct pt_regs *regs, long id).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn raw_sys_enter(ctx: RawTracePointContext) -> i32 {
    let op = op_of(ctx.arg::<u64>(1));
    if op == op::NONE {
        return 0;
    }
    let regs = RegsArgs(ctx.arg(0));
    if compat_target(&regs) {
        return 0;
    }
    enter(op, &regs);
    0
}

/// raw_tp sys_exit(struct pt_regs *regs, long ret). The number comes from `pt_regs`, read only
/// for possible targets.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn raw_sys_exit(ctx: RawTracePointContext) -> i32 {
    if !maybe_target(current_ids().tgid) {
        return 0;
    }
    let regs = RegsArgs(ctx.arg(0));
    let op = op_of(regs.nr());
    if op == op::NONE || regs.is_compat() {
        return 0;
    }
    exit(op, ctx.arg::<u64>(1) as i64);
    0
}

/// raw_syscalls/sys_enter: `id`@8, `args[6]`@16.
#[tracepoint(category = "raw_syscalls", name = "sys_enter")]
pub fn tp_raw_sys_enter(ctx: TracePointContext) -> u32 {
    let op = op_of(field::<u64>(&ctx, 8));
    if op != op::NONE {
        enter(op, &TpArgs(&ctx));
    }
    0
}

/// raw_syscalls/sys_exit: `id`@8, `ret`@16.
#[tracepoint(category = "raw_syscalls", name = "sys_exit")]
pub fn tp_raw_sys_exit(ctx: TracePointContext) -> u32 {
    let op = op_of(field::<u64>(&ctx, 8));
    if op != op::NONE {
        exit(op, field(&ctx, 16));
    }
    0
}
