//! The raw-syscalls probe path: one program on `raw_syscalls:sys_enter` and one on `sys_exit`
//! dispatch on the syscall number to the capture logic the per-syscall tracepoints use.
//!
//! Userspace fills the `SYSCALL_OPS` array (syscall number -> [`op`]) from the table of the
//! architecture it runs on; the kernel side is architecture-neutral. The numbers below come
//! from `arch/x86/entry/syscalls/syscall_64.tbl` and `include/uapi/asm-generic/unistd.h`
//! (arm64); a userspace test checks them against the kernel headers installed on the build
//! machine.

/// Slots of `SYSCALL_OPS`: every x86_64 and arm64 syscall number is below this.
pub const SYSCALL_SLOTS: u32 = 1024;

/// What a syscall number means to emuwatch (`SYSCALL_OPS` values). 0: nothing to capture.
pub mod op {
    pub const NONE: u8 = 0;
    pub const OPENAT: u8 = 1;
    pub const OPENAT2: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CHDIR: u8 = 4;
    pub const FCHDIR: u8 = 5;
    /// read, pread64, readv, preadv, preadv2: all take the fd first and return bytes.
    pub const READ: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CONNECT: u8 = 8;
    pub const IOCTL: u8 = 9;
    pub const EXECVE: u8 = 10;
    pub const EXIT: u8 = 11;
    pub const EXIT_GROUP: u8 = 12;
    pub const SOCKET: u8 = 13;
    /// setuid, setreuid, setresuid: at exit, a task that took a target uid becomes a target.
    pub const SETUID: u8 = 14;
    pub const SETREUID: u8 = 15;
    pub const SETRESUID: u8 = 16;
    /// Socket sends and receives that may carry a name (DNS, TLS ClientHello, HTTP request):
    /// `net_data` capture. With `--names off` userspace leaves them out of the table.
    pub const WRITE: u8 = 17;
    pub const WRITEV: u8 = 18;
    pub const SENDTO: u8 = 19;
    pub const SENDMSG: u8 = 20;
    pub const SENDMMSG: u8 = 21;
    pub const RECVFROM: u8 = 22;
    pub const RECVMSG: u8 = 23;
    /// read(2) itself: a file read (as `READ`) that may also be a DNS answer read from a TCP
    /// resolver connection. Userspace maps it to `READ` with `--names off`.
    pub const READ_NET: u8 = 24;

    /// The ops of name capture (`--names off` drops them; `READ_NET` becomes `READ`).
    pub const NAMES: [u8; 7] = [WRITE, WRITEV, SENDTO, SENDMSG, SENDMMSG, RECVFROM, RECVMSG];
}

/// One architecture's syscall numbers for the ops emuwatch captures.
#[derive(Debug, Clone, Copy)]
pub struct SyscallTable {
    /// `uname -m` of the architecture.
    pub machine: &'static str,
    /// (syscall name, number, op).
    pub entries: &'static [(&'static str, u32, u8)],
    /// `struct pt_regs` byte offsets of the six syscall arguments, of the syscall number as
    /// the exit sees it, and of the register that tells a 32-bit (compat) task.
    pub regs: PtRegs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtRegs {
    pub args: [u32; 6],
    pub nr: u32,
    /// Offset of the register checked for compat mode, its mask and the compat value.
    pub compat_off: u32,
    pub compat_mask: u64,
    pub compat_value: u64,
}

/// x86_64: `arch/x86/entry/syscalls/syscall_64.tbl`; `arch/x86/include/asm/ptrace.h`
/// (di, si, dx, r10, r8, r9; orig_ax; cs == __USER32_CS for ia32 tasks).
pub const X86_64: SyscallTable = SyscallTable {
    machine: "x86_64",
    entries: &[
        ("read", 0, op::READ_NET),
        ("write", 1, op::WRITE),
        ("open", 2, op::OPEN),
        ("close", 3, op::CLOSE),
        ("ioctl", 16, op::IOCTL),
        ("pread64", 17, op::READ),
        ("readv", 19, op::READ),
        ("writev", 20, op::WRITEV),
        ("socket", 41, op::SOCKET),
        ("connect", 42, op::CONNECT),
        ("sendto", 44, op::SENDTO),
        ("recvfrom", 45, op::RECVFROM),
        ("sendmsg", 46, op::SENDMSG),
        ("recvmsg", 47, op::RECVMSG),
        ("execve", 59, op::EXECVE),
        ("exit", 60, op::EXIT),
        ("setuid", 105, op::SETUID),
        ("setreuid", 113, op::SETREUID),
        ("setresuid", 117, op::SETRESUID),
        ("chdir", 80, op::CHDIR),
        ("fchdir", 81, op::FCHDIR),
        ("exit_group", 231, op::EXIT_GROUP),
        ("openat", 257, op::OPENAT),
        ("preadv", 295, op::READ),
        ("sendmmsg", 307, op::SENDMMSG),
        ("execveat", 322, op::EXECVE),
        ("preadv2", 327, op::READ),
        ("openat2", 437, op::OPENAT2),
    ],
    regs: PtRegs {
        args: [112, 104, 96, 56, 72, 64],
        nr: 120,
        compat_off: 136,
        compat_mask: 0xffff,
        compat_value: 0x23,
    },
};

/// arm64 (aarch64): `include/uapi/asm-generic/unistd.h` (no open(2));
/// `arch/arm64/include/asm/ptrace.h` (regs[0..5]; syscallno; pstate & PSR_MODE32_BIT).
pub const AARCH64: SyscallTable = SyscallTable {
    machine: "aarch64",
    entries: &[
        ("ioctl", 29, op::IOCTL),
        ("chdir", 49, op::CHDIR),
        ("fchdir", 50, op::FCHDIR),
        ("openat", 56, op::OPENAT),
        ("close", 57, op::CLOSE),
        ("read", 63, op::READ_NET),
        ("write", 64, op::WRITE),
        ("readv", 65, op::READ),
        ("writev", 66, op::WRITEV),
        ("pread64", 67, op::READ),
        ("preadv", 69, op::READ),
        ("exit", 93, op::EXIT),
        ("exit_group", 94, op::EXIT_GROUP),
        ("setreuid", 145, op::SETREUID),
        ("setuid", 146, op::SETUID),
        ("setresuid", 147, op::SETRESUID),
        ("socket", 198, op::SOCKET),
        ("connect", 203, op::CONNECT),
        ("sendto", 206, op::SENDTO),
        ("recvfrom", 207, op::RECVFROM),
        ("sendmsg", 211, op::SENDMSG),
        ("recvmsg", 212, op::RECVMSG),
        ("execve", 221, op::EXECVE),
        ("sendmmsg", 269, op::SENDMMSG),
        ("execveat", 281, op::EXECVE),
        ("preadv2", 286, op::READ),
        ("openat2", 437, op::OPENAT2),
    ],
    regs: PtRegs {
        args: [0, 8, 16, 24, 32, 40],
        nr: 280,
        compat_off: 264,
        compat_mask: 0x10,
        compat_value: 0x10,
    },
};

/// The table for a `uname -m` machine name.
pub fn table_for(machine: &str) -> Option<&'static SyscallTable> {
    match machine {
        "x86_64" => Some(&X86_64),
        "aarch64" | "arm64" => Some(&AARCH64),
        _ => None,
    }
}
