//! File payloads: opens (`openat`, `openat2`, `open`) and bytes read per (process, fd),
//! aggregated in the kernel and flushed on `close`.

/// Bytes of path copied from user memory (including the NUL).
pub const PATH_LEN: usize = 256;

/// Which syscall opened the file.
pub const SYS_OPENAT: u8 = 1;
pub const SYS_OPENAT2: u8 = 2;
pub const SYS_OPEN: u8 = 3;
pub const SYS_CHDIR: u8 = 4;
pub const SYS_FCHDIR: u8 = 5;

/// `path_status`: the path was copied.
pub const PATH_OK: u8 = 0;
/// `path_status`: reading the user string failed at entry and again at exit.
pub const PATH_FAULT: u8 = 1;
/// `path_status`: the user page was not resident at entry; copied at syscall exit instead
/// (the kernel had faulted it in to read the path itself).
pub const PATH_AT_EXIT: u8 = 2;

/// `AT_FDCWD` as the kernel passes it in `dfd`.
pub const AT_FDCWD: i32 = -100;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileOpen {
    /// The new fd, or -errno.
    pub result: i32,
    pub dfd: i32,
    pub flags: u32,
    /// Bytes copied into `path` including the NUL (PATH_LEN means it may be truncated).
    pub path_len: u32,
    pub syscall: u8,
    pub path_status: u8,
    pub _pad: [u8; 6],
    /// The caller's path pointer (user memory), kept for the retry at exit.
    pub user_path: u64,
    pub path: [u8; PATH_LEN],
}

/// Bytes of `FileOpen` before `path`. The kernel sends an open's record only as far as its
/// path goes (header, these bytes, `path_len` bytes of path); userspace fills the rest with
/// zeros.
pub const PATH_OFFSET: usize = core::mem::offset_of!(FileOpen, path);
const _: () = assert!(PATH_OFFSET == 32);

/// Why a read aggregate was emitted.
pub const FLUSH_CLOSE: u8 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileRead {
    pub fd: i32,
    pub reason: u8,
    pub _pad: [u8; 3],
    pub bytes: u64,
    pub reads: u64,
}

/// Key of the in-kernel `FD_READS` aggregate map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdKey {
    pub tgid: u32,
    pub fd: u32,
}

/// Value of the `FD_READS` map: bytes and read calls since the fd was opened.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadAgg {
    pub bytes: u64,
    pub reads: u64,
}
