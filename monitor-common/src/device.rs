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
