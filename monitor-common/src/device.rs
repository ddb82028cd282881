//! Device control payload: `ioctl()` commands worth reporting on any fd of a target
//! (`VIDIOC_STREAMON`: a video capture stream was started).

/// `VIDIOC_STREAMON` = `_IOW('V', 18, int)` from `<linux/videodev2.h>`.
pub const VIDIOC_STREAMON: u32 = 0x4004_5612;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ioctl {
    pub fd: i32,
    pub cmd: u32,
    pub result: i32,
    pub _pad: u32,
}

/// A binder transaction (not a reply) sent by a target: on Android an app reaches the camera by
/// calling `cameraserver` over binder; userspace decides whether `to_proc` is a camera service.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Binder {
    /// Process the transaction goes to (tracepoint field `to_proc`).
    pub to_proc: i32,
    /// Transaction code (the method number of the binder interface).
    pub code: u32,
}
