//! File and device records (opens, read totals, ioctls) become events.
use super::*;

impl Enricher {
    /// A file's read total, flushed at close.
    pub(super) fn on_file_read(
        &mut self,
        h: Header,
        r: monitor_common::file::FileRead,
        out: &mut Vec<Event>,
    ) {
        let path = self.fds.closed(h.tgid, r.fd);
        let body = Body::FileRead(event::FileRead {
            path,
            fd: r.fd,
            bytes: r.bytes,
            reads: r.reads,
            flushed_at: FlushedAt::Close,
        });
        self.event(&h, body, out);
    }

    /// VIDIOC_STREAMON: a camera stream starts.
    pub(super) fn on_ioctl(
        &mut self,
        h: Header,
        i: monitor_common::device::Ioctl,
        out: &mut Vec<Event>,
    ) {
        let path = self.fds.path_of(h.tgid, i.fd);
        // VIDIOC_STREAMON only exists on V4L2 devices: this is a camera stream.
        let body = Body::Camera(event::Device::new(DeviceOp::StreamOn, path, i.result));
        self.event(&h, body, out);
    }

    pub(super) fn file_open(
        &mut self,
        h: Header,
        o: &monitor_common::file::FileOpen,
        out: &mut Vec<Event>,
    ) {
        let comm = cstr(&h.comm);
        self.seen(&h, &comm, out);
        let cwd = self.procs.get(h.tgid).and_then(|i| i.cwd.as_deref());
        let mut raw_path = (o.path_status != PATH_FAULT && o.path_len > 0).then(|| cstr(&o.path));
        // The kernel filled its whole buffer: the path may go on. Its prefix is not the file
        // (and `..` in it could resolve to another one): the path is unknown.
        let truncated = raw_path.is_some() && o.path_len as usize >= PATH_LEN;
        let path_prefix = truncated.then(|| raw_path.clone()).flatten();
        let origin_ok = if o.path_status == PATH_AT_EXIT {
            PathOrigin::SyscallExit
        } else {
            PathOrigin::Syscall
        };
        let (path, origin) = match raw_path.as_deref().filter(|p| !p.is_empty()) {
            Some(_) if truncated => (None, PathOrigin::Truncated),
            // Already absolute and normal (most opens): the copied path is the path.
            Some(p) if files::is_normal_absolute(p) => (raw_path.take(), origin_ok),
            Some(p) => match self.fds.absolute(h.tgid, o.dfd, p, cwd) {
                Some(abs) => (Some(abs), origin_ok),
                // Relative path whose base is gone: keep what the process passed.
                None => (Some(p.to_string()), PathOrigin::SyscallRelative),
            },
            None if o.result >= 0 => match self.procs.proc.fd_path(h.tgid, o.result) {
                Some(p) => (Some(p), PathOrigin::ProcFd),
                None => (None, PathOrigin::Unrecovered),
            },
            None => (None, PathOrigin::Unrecovered),
        };
        if o.result >= 0
            && let Some(p) = &path
        {
            self.fds.opened(h.tgid, o.result, p.clone());
        }
        let device = path.as_deref().and_then(|p| self.devices.classify(p));
        let body = match device {
            Some(class) => {
                let d = event::Device::new(DeviceOp::Open, path, o.result);
                match class {
                    DeviceClass::Camera => Body::Camera(d),
                    DeviceClass::Microphone => Body::Microphone(d),
                }
            }
            None => Body::FileOpen(event::FileOpen {
                path,
                path_origin: origin,
                path_truncated: truncated,
                path_prefix,
                flags: o.flags,
                flags_text: self.flags_text(o.flags),
                result: o.result,
                error: error_of(o.result),
                syscall: match o.syscall {
                    SYS_OPENAT => "openat",
                    SYS_OPENAT2 => "openat2",
                    SYS_OPEN => "open",
                    _ => "unknown",
                }
                .into(),
            }),
        };
        self.event_of(&h, comm, body, out);
    }

    /// `open_flags_text`, remembered for the last flags seen (a process opens most of its
    /// files with the same flags).
    fn flags_text(&mut self, flags: u32) -> String {
        if self.last_flags.as_ref().is_none_or(|(f, _)| *f != flags) {
            self.last_flags = Some((flags, open_flags_text(flags)));
        }
        self.last_flags.as_ref().expect("set above").1.clone()
    }

    /// A read aggregate the kernel still held when its process exited or the recording stopped.
    pub fn flushed_read(
        &mut self,
        tgid: u32,
        fd: i32,
        bytes: u64,
        reads: u64,
        why: FlushedAt,
        out: &mut Vec<Event>,
    ) {
        let path = self.fds.closed(tgid, fd);
        let info = self.procs.get(tgid).cloned();
        out.push(Event {
            ts: Utc::now(),
            body: Body::FileRead(event::FileRead {
                path,
                fd,
                bytes,
                reads,
                flushed_at: why,
            }),
            pid: tgid,
            tid: tgid,
            ppid: info.as_ref().map(|i| i.ppid).unwrap_or(0),
            uid: info.as_ref().map(|i| i.uid).unwrap_or(0),
            comm: info.as_ref().map(|i| i.comm.clone()).unwrap_or_default(),
            app: info.map(|i| i.app),
            phase: None,
        });
    }
}
