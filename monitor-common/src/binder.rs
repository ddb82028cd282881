//! Binder calls of targets: the `BC_TRANSACTION(_SG)` commands a target writes with
//! `ioctl(fd, BINDER_WRITE_READ, &bwr)`, with the first bytes of the parcel (the interface
//! token, and for service-manager calls the service name) and, for calls to handle 0 (the
//! service manager), the first bytes of the reply (the handle of the service asked for).
//! Layouts from the kernel UAPI header `<linux/android/binder.h>` (64-bit binder protocol 8).

/// `BINDER_WRITE_READ` = `_IOWR('b', 1, struct binder_write_read)` (48 bytes).
pub const BINDER_WRITE_READ: u32 = 0xc030_6201;
/// `BC_TRANSACTION` = `_IOW('c', 0, struct binder_transaction_data)` (64 bytes).
pub const BC_TRANSACTION: u32 = 0x4040_6300;
/// `BC_TRANSACTION_SG` = `_IOW('c', 17, struct binder_transaction_data_sg)` (72 bytes).
pub const BC_TRANSACTION_SG: u32 = 0x4048_6311;
/// `BR_REPLY` = `_IOR('r', 3, struct binder_transaction_data)`.
pub const BR_REPLY: u32 = 0x8040_7203;
/// `TF_ONE_WAY` in `binder_transaction_data.flags`.
pub const TF_ONE_WAY: u32 = 1;
/// `BINDER_TYPE_HANDLE` = `B_PACK_CHARS('s', 'h', '*', 0x85)`: a flat_binder_object holding a
/// handle (how a reply hands a service to the caller).
pub const BINDER_TYPE_HANDLE: u32 = 0x7368_2a85;

/// Offsets in `struct binder_write_read`.
pub mod bwr {
    pub const WRITE_SIZE: usize = 0;
    pub const WRITE_CONSUMED: usize = 8;
    pub const WRITE_BUFFER: usize = 16;
    pub const READ_SIZE: usize = 24;
    pub const READ_CONSUMED: usize = 32;
    pub const READ_BUFFER: usize = 40;
    pub const SIZE: usize = 48;
}

/// Offsets in `struct binder_transaction_data` (64 bytes on 64-bit).
pub mod btd {
    pub const HANDLE: usize = 0;
    pub const CODE: usize = 16;
    pub const FLAGS: usize = 20;
    pub const DATA_SIZE: usize = 32;
    pub const OFFSETS_SIZE: usize = 40;
    pub const BUFFER: usize = 48;
    pub const SIZE: usize = 64;
}

/// Bytes of the parcel copied: enough for the interface token of the longest AOSP interface
/// names emuwatch's rules know, a service name after the service manager's token and, in
/// most content-provider queries, the `content://` URI after the caller's attribution.
pub const PARCEL_COPY: usize = 512;
/// Bytes of a service-manager reply copied: status and the flat_binder_object after it.
pub const REPLY_COPY: usize = 48;
/// Commands of one write buffer (or read buffer) looked at before giving up.
pub const MAX_COMMANDS: u32 = 8;

/// `BinderCall::state` in the per-thread pending slot.
pub const STATE_NONE: u32 = 0;
pub const STATE_PENDING: u32 = 1;
/// A service-manager lookup whose ioctl returned before its reply: the thread's next
/// `BINDER_WRITE_READ` ioctls (up to `MAX_REPLY_WAITS`) are searched for it.
pub const STATE_AWAIT_REPLY: u32 = 2;
pub const MAX_REPLY_WAITS: u32 = 4;
/// `BR_DEAD_REPLY` / `BR_FAILED_REPLY`: the call failed, no reply will come.
pub const BR_DEAD_REPLY: u32 = 0x7205;
pub const BR_FAILED_REPLY: u32 = 0x7211;

/// One `BC_TRANSACTION` / `BC_TRANSACTION_SG` of a target. Parsed at ioctl entry, kept per
/// thread, completed with the callee by `binder/binder_transaction` where that tracepoint
/// exists, and sent at ioctl exit (with the reply's first bytes for service-manager calls).
/// The header's `ts_ns` is the ioctl entry time.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BinderCall {
    /// `STATE_*` (the pending slot only; `STATE_PENDING` in records).
    pub state: u32,
    /// `BC_TRANSACTION` or `BC_TRANSACTION_SG`.
    pub command: u32,
    /// `target.handle`: 0 is the service manager.
    pub handle: u32,
    pub code: u32,
    pub flags: u32,
    /// Callee process (tracepoint `to_proc`), 0 when unknown.
    pub to_proc: i32,
    /// Callee thread (tracepoint `to_thread`), 0 when unknown or any thread.
    pub to_thread: i32,
    /// The ioctl's result (0 or -errno).
    pub result: i32,
    pub data_size: u64,
    pub offsets_size: u64,
    /// Bytes of `data` copied from the parcel (min(data_size, PARCEL_COPY)).
    pub copied: u32,
    /// Bytes of `reply` copied (0: no reply seen or not a service-manager call).
    pub reply_copied: u32,
    /// Further transactions in the same write buffer, not decoded.
    pub more: u32,
    /// Ioctls waited for the reply (`STATE_AWAIT_REPLY`).
    pub waits: u32,
    /// Monotonic time at ioctl entry.
    pub enter_ns: u64,
    /// The caller's `struct binder_write_read *` (to find the reply at exit).
    pub bwr: u64,
    pub data: [u8; PARCEL_COPY],
    pub reply: [u8; REPLY_COPY],
}
