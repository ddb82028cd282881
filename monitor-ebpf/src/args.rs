//! Syscall arguments, wherever they come from: the per-syscall tracepoints and the classic
//! `raw_syscalls` tracepoints put them in the record (`args[i]` at 16 + 8 i in every
//! `sys_enter*` format); the `raw_tp` programs read them from the task's `struct pt_regs` at
//! offsets userspace sets per architecture. The capture logic only sees `SysArgs`.
use core::ptr::read_volatile;

use aya_ebpf::{helpers::bpf_probe_read_kernel, programs::TracePointContext};

use crate::emit::field;

pub trait SysArgs {
    fn arg(&self, i: usize) -> u64;
}

/// Arguments in a `sys_enter*` tracepoint record.
pub struct TpArgs<'a>(pub &'a TracePointContext);

impl SysArgs for TpArgs<'_> {
    #[inline(always)]
    fn arg(&self, i: usize) -> u64 {
        // `i` is a constant at every call site once inlined: a direct ctx load.
        field(self.0, 16 + 8 * i)
    }
}

/// `struct pt_regs` offsets of the six arguments, of the syscall number at exit, and of the
/// compat-mode register (`monitor_common::syscall::PtRegs`), set by userspace before load.
#[unsafe(no_mangle)]
static PT_REGS_ARG_OFF: [u32; 6] = [0; 6];
#[unsafe(no_mangle)]
static PT_REGS_NR_OFF: u32 = 0;
#[unsafe(no_mangle)]
static PT_REGS_COMPAT_OFF: u32 = 0;
#[unsafe(no_mangle)]
static PT_REGS_COMPAT_MASK: u64 = 0;
#[unsafe(no_mangle)]
static PT_REGS_COMPAT_VALUE: u64 = 0;

/// Arguments in the saved user registers of the current task (raw_tp programs).
pub struct RegsArgs(pub *const u8);

#[inline(always)]
fn reg(regs: *const u8, off: u32) -> u64 {
    unsafe { bpf_probe_read_kernel(regs.add(off as usize) as *const u64) }.unwrap_or(0)
}

impl SysArgs for RegsArgs {
    #[inline(always)]
    fn arg(&self, i: usize) -> u64 {
        let off = unsafe { read_volatile(&PT_REGS_ARG_OFF[i]) };
        reg(self.0, off)
    }
}

impl RegsArgs {
    /// The syscall number as the exit path sees it (`orig_ax` / `syscallno`).
    #[inline(always)]
    pub fn nr(&self) -> u64 {
        reg(self.0, unsafe { read_volatile(&PT_REGS_NR_OFF) })
    }

    /// A 32-bit task (ia32 on x86_64, AArch32 on arm64): its syscall numbers are another table.
    #[inline(always)]
    pub fn is_compat(&self) -> bool {
        let mask = unsafe { read_volatile(&PT_REGS_COMPAT_MASK) };
        if mask == 0 {
            return false;
        }
        let v = reg(self.0, unsafe { read_volatile(&PT_REGS_COMPAT_OFF) });
        v & mask == unsafe { read_volatile(&PT_REGS_COMPAT_VALUE) }
    }
}
