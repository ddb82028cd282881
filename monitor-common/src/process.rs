//! Process lifecycle payloads: `sched_process_fork` / `_exec` / `_exit`.

/// Longest exec filename copied from the `sched_process_exec` tracepoint.
pub const FILENAME_LEN: usize = 256;

/// A target created a new process (threads are not reported).
/// The header describes the parent; the child becomes a target in the kernel at once.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Fork {
    pub child_tgid: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Exec {
    /// Previous thread id (`old_pid` field): differs from the header when a non-leader thread
    /// called exec.
    pub old_tid: u32,
    /// Bytes copied into `filename`, including the NUL; 0 when the kernel could not read it.
    pub filename_len: u32,
    pub filename: [u8; FILENAME_LEN],
}

/// The last thread of a target process exited (`group_dead`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    /// `task_struct.exit_code`: `(status << 8) | signal`, as wait(2) encodes it.
    pub exit_code: i32,
    pub _pad: u32,
}

/// A target thread changed its name (prctl PR_SET_NAME, or exec). Android app processes are
/// forked from zygote without exec and then name themselves after their package.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Rename {
    pub new_comm: [u8; 16],
}

/// Which call changed the uid (`Setuid::syscall`).
pub mod setuid {
    pub const SETUID: u32 = 1;
    pub const SETREUID: u32 = 2;
    pub const SETRESUID: u32 = 3;
}

/// A task's setuid/setreuid/setresuid returned 0 and the task is a target after it (the
/// header carries the new uid). Android's zygote forks app processes as root; each drops to
/// its app's uid before running any app code, and becomes a target here when that uid is one.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Setuid {
    /// One of [`setuid`].
    pub syscall: u32,
    /// 1 when this call made the process a target (it was not one before).
    pub became_target: u32,
}
