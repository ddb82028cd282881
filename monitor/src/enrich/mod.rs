//! Enrichment: kernel records become userspace events with parent, app, absolute paths,
//! device classes and band names.
pub mod android;
pub mod binder;
pub mod files;
pub mod live_proc;
pub mod names;
pub mod process;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use monitor_common::{
    Header,
    connect::{AF_INET, AF_INET6},
    file::{
        AT_FDCWD, PATH_AT_EXIT, PATH_FAULT, PATH_LEN, SYS_FCHDIR, SYS_OPEN, SYS_OPENAT, SYS_OPENAT2,
    },
};

use crate::{
    decode::{Raw, cstr},
    event::{
        self, AddrFamily, Body, DeviceOp, Event, FlushedAt, PathOrigin, ProcOp, Proto, StateSource,
        Writer, error_of,
    },
    geo::Geo,
};
use files::{DeviceClass, DevicePatterns, FdTable, open_flags_text};
use live_proc::ProcSource;
use process::ProcessTable;

pub struct Enricher {
    pub procs: ProcessTable,
    /// Country / ASN of destinations (empty databases: scope only).
    geo: Geo,
    pub fds: FdTable,
    devices: DevicePatterns,
    /// Connection ids and each app's DNS answers.
    names: names::Names,
    /// Added to kernel monotonic timestamps to get wall-clock time.
    clock_offset_ns: i128,
    /// Binder rules, the Android API level they are read for, and the handles each process
    /// looked up.
    binder_rules: binder::Rules,
    android_api: u32,
    handles: binder::Handles,
}

/// A live process's current oom_score_adj.
pub fn read_oom_score_adj(tgid: u32) -> Option<i32> {
    ProcSource::Live.oom_score_adj(tgid)
}

pub fn wall_time(offset_ns: i128, mono_ns: u64) -> DateTime<Utc> {
    let ns = offset_ns + mono_ns as i128;
    DateTime::from_timestamp_nanos(ns.clamp(0, i64::MAX as i128) as i64)
}

impl Enricher {
    pub fn new(
        procs: ProcessTable,
        devices: DevicePatterns,
        geo: Geo,
        clock_offset_ns: i128,
    ) -> Self {
        Enricher {
            procs,
            geo,
            fds: FdTable::default(),
            devices,
            names: names::Names::default(),
            clock_offset_ns,
            android_api: 0,
            binder_rules: binder::Rules::builtin(),
            handles: binder::Handles::default(),
        }
        .with_binder(None, None)
    }

    /// Binder rules (default: the built-in ones) and the API level whose method tables apply
    /// (default: the rules' `default_api`).
    pub fn with_binder(mut self, rules: Option<binder::Rules>, api: Option<u32>) -> Self {
        if let Some(r) = rules {
            self.binder_rules = r;
        }
        self.android_api = api.unwrap_or(self.binder_rules.default_api);
        self
    }

    /// Facts about live processes from `src` instead of /proc (tests: recorded answers).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn with_proc_source(mut self, src: ProcSource) -> Self {
        self.procs.proc = src.clone();
        self.fds.proc = src;
        self
    }

    /// The process of `h`; one seen for the first time gets its start score line first.
    fn known(&mut self, h: &Header, out: &mut Vec<Event>) -> process::ProcInfo {
        let comm = cstr(&h.comm);
        let (info, first_seen) = self.procs.lookup(h.tgid, h.uid, &comm);
        if first_seen {
            self.first_seen(h.tgid, h.tid, h.uid, &comm, h.ts_ns, out);
        }
        info
    }

    /// An event about the task in `h`.
    fn event(&mut self, h: &Header, body: Body, out: &mut Vec<Event>) {
        let comm = cstr(&h.comm);
        let info = self.known(h, out);
        out.push(Event {
            ts: wall_time(self.clock_offset_ns, h.ts_ns),
            body,
            pid: h.tgid,
            tid: h.tid,
            ppid: info.ppid,
            uid: h.uid,
            comm,
            app: Some(info.app),
            phase: None,
        });
    }

    /// When a process is first seen, its app state is reported, so every process has a known
    /// band from the start: the value read when recording started (`start`) or, for processes
    /// that became targets later, read from /proc now (`proc`). Forked children inherit their
    /// parent's score and band, and get no line of their own.
    fn first_seen(
        &mut self,
        tgid: u32,
        tid: u32,
        uid: u32,
        comm: &str,
        ts_ns: u64,
        out: &mut Vec<Event>,
    ) {
        let (adj, source) = match self.procs.take_seeded_adj(tgid) {
            Some(adj) => (adj, StateSource::Start),
            None => match self.procs.proc.oom_score_adj(tgid) {
                Some(adj) => (adj, StateSource::Proc),
                None => return,
            },
        };
        let info = self.procs.get(tgid).cloned();
        out.push(Event {
            ts: wall_time(self.clock_offset_ns, ts_ns),
            body: Body::AppState(event::AppState {
                oom_score_adj: adj,
                band: android::band(adj).to_string(),
                source,
                written_by: None,
                writer_pid: None,
                writer_comm: None,
            }),
            pid: tgid,
            tid,
            ppid: info.as_ref().map(|i| i.ppid).unwrap_or(0),
            uid,
            comm: comm.to_string(),
            app: info.map(|i| i.app),
            phase: None,
        });
    }

    pub fn enrich(&mut self, raw: Raw, out: &mut Vec<Event>) {
        match raw {
            Raw::Fork(h, f) => {
                // Make sure the parent is known before the child inherits from it.
                let comm = cstr(&h.comm);
                self.known(&h, out);
                self.procs.fork(h.tgid, f.child_tgid, h.uid, &comm);
                let body = Body::Process(event::Process {
                    child_pid: Some(f.child_tgid),
                    ..event::Process::op(ProcOp::Fork)
                });
                self.event(&h, body, out);
            }
            Raw::Exec(h, e) => {
                let filename = (e.filename_len > 0).then(|| cstr(&e.filename));
                let body = Body::Process(event::Process {
                    filename,
                    ..event::Process::op(ProcOp::Exec)
                });
                self.event(&h, body, out);
                self.procs.exec(h.tgid, h.uid, &cstr(&h.comm));
                self.handles.forget(h.tgid);
            }
            Raw::Exit(h, e) => {
                // wait(2) encoding: low 7 bits = terminating signal, bits 8-15 = exit status.
                // Negative: unknown (a kernel without BTF, and a process killed by a signal).
                let (exit_code, signal) = if e.exit_code < 0 {
                    (None, None)
                } else if e.exit_code & 0x7f != 0 {
                    (None, Some(e.exit_code & 0x7f))
                } else {
                    (Some((e.exit_code >> 8) & 0xff), None)
                };
                let body = Body::Process(event::Process {
                    exit_code,
                    signal,
                    ..event::Process::op(ProcOp::Exit)
                });
                self.event(&h, body, out);
                self.procs.exit(h.tgid);
                self.handles.forget(h.tgid);
            }
            Raw::Connect(h, c) => {
                let (family, daddr) = match c.family {
                    AF_INET => (
                        AddrFamily::Inet,
                        IpAddr::V4(Ipv4Addr::new(
                            c.daddr[0], c.daddr[1], c.daddr[2], c.daddr[3],
                        )),
                    ),
                    AF_INET6 => (AddrFamily::Inet6, IpAddr::V6(Ipv6Addr::from(c.daddr))),
                    _ => return,
                };
                // IPPROTO_TCP = 6, IPPROTO_UDP = 17; SOCK_STREAM = 1, SOCK_DGRAM = 2.
                let proto = match (c.protocol, c.sock_type) {
                    (6, _) | (0, 1) => Proto::Tcp,
                    (17, _) | (0, 2) => Proto::Udp,
                    _ => Proto::Unknown,
                };
                let app = self.known(&h, out).app;
                let host = self.names.host_for(&app, daddr, h.ts_ns);
                let mut connect = event::Connect {
                    family,
                    proto,
                    daddr,
                    dport: c.dport,
                    result: c.result,
                    error: error_of(c.result),
                    scope: None,
                    country: None,
                    asn: None,
                    as_org: None,
                    conn_id: self.names.conn_id(c.conn_id),
                    host_source: host.as_ref().map(|_| event::HostSource::Dns),
                    host,
                };
                self.geo.annotate(&mut connect);
                let body = Body::Connect(connect);
                self.event(&h, body, out);
            }
            Raw::FileOpen(h, o) => self.file_open(h, o, out),
            Raw::Chdir(h, c) => {
                let info = self.known(&h, out);
                let new_cwd = if c.syscall == SYS_FCHDIR {
                    self.fds.path_of(h.tgid, c.dfd)
                } else if c.path_status != PATH_FAULT
                    && c.path_len > 0
                    && (c.path_len as usize) < PATH_LEN
                {
                    // (A cut path is not resolved: the cwd comes from /proc below.)
                    self.fds
                        .absolute(h.tgid, AT_FDCWD, &cstr(&c.path), info.cwd.as_deref())
                } else {
                    None
                };
                let new_cwd = new_cwd.or_else(|| self.procs.proc.cwd(h.tgid));
                if c.result == 0
                    && let Some(cwd) = &new_cwd
                {
                    self.procs.set_cwd(h.tgid, cwd.clone());
                }
                let body = Body::Process(event::Process {
                    cwd: new_cwd,
                    result: (c.result != 0).then_some(c.result),
                    ..event::Process::op(ProcOp::Chdir)
                });
                self.event(&h, body, out);
            }
            Raw::FileRead(h, r) => {
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
            Raw::Ioctl(h, i) => {
                let path = self.fds.path_of(h.tgid, i.fd);
                // VIDIOC_STREAMON only exists on V4L2 devices: this is a camera stream.
                let body = Body::Camera(event::Device::new(DeviceOp::StreamOn, path, i.result));
                self.event(&h, body, out);
            }
            Raw::Rename(h, r) => {
                let name = cstr(&r.new_comm);
                // Android: the thread name is the last 15 bytes of the process name, argv[0]
                // the whole name (`pkg:remote`).
                let process_name = (h.tid == h.tgid)
                    .then(|| self.procs.proc.argv0(h.tgid))
                    .flatten()
                    .filter(|a| !name.is_empty() && a.ends_with(name.as_str()));
                let body = Body::Process(event::Process {
                    name: Some(name.clone()),
                    process_name,
                    ..event::Process::op(ProcOp::Rename)
                });
                self.event(&h, body, out);
                if h.tid == h.tgid {
                    // An Android app process names itself after its package once forked from
                    // zygote: identify it again.
                    self.procs.exec(h.tgid, h.uid, &name);
                }
            }
            Raw::Setuid(h, u) => {
                // A zygote child taking its app's uid: from here on it is the app's process.
                // Its oom_score_adj is still zygote's (the system scores it next): no band
                // is read for it when it is first seen here.
                if u.became_target != 0 {
                    let _ = self.procs.lookup(h.tgid, h.uid, &cstr(&h.comm));
                }
                self.procs.setuid(h.tgid, h.uid);
                let syscall = match u.syscall {
                    monitor_common::process::setuid::SETUID => "setuid",
                    monitor_common::process::setuid::SETREUID => "setreuid",
                    _ => "setresuid",
                };
                let body = Body::Process(event::Process {
                    syscall: Some(syscall.into()),
                    became_target: Some(u.became_target != 0),
                    ..event::Process::op(ProcOp::Setuid)
                });
                self.event(&h, body, out);
            }
            Raw::NetSend(h, d) | Raw::NetRecv(h, d) => {
                let app = self.known(&h, out).app;
                if let Some(body) = self.names.body(&app, h.ts_ns, &d) {
                    self.event(&h, body, out);
                }
            }
            Raw::BinderCall(h, c) => self.binder_call(h, &c, out),
            Raw::AppState(h, a) => {
                // Attribute to the process whose score changed; the header is the writer.
                let target = Header {
                    tgid: a.target_tgid,
                    tid: a.target_tgid,
                    comm: a.target_comm,
                    uid: self
                        .procs
                        .get(a.target_tgid)
                        .map(|p| p.uid)
                        .or_else(|| self.procs.proc.uid(a.target_tgid))
                        .unwrap_or(h.uid),
                    ..h
                };
                // Written by the app itself (the process, or another process of its app) or
                // by the system (lmkd, system_server: processes outside the app).
                let target_app = self.procs.get(target.tgid).map(|p| p.app.clone());
                let by_app = h.tgid == target.tgid
                    || self.procs.get(h.tgid).is_some_and(|w| {
                        !w.exited && target_app.as_deref() == Some(w.app.as_str())
                    });
                let body = Body::AppState(event::AppState {
                    oom_score_adj: a.oom_score_adj,
                    band: android::band(a.oom_score_adj).to_string(),
                    source: StateSource::Kernel,
                    written_by: Some(if by_app { Writer::App } else { Writer::System }),
                    writer_pid: Some(h.tgid),
                    writer_comm: Some(cstr(&h.comm)),
                });
                self.event(&target, body, out);
            }
        }
    }

    fn file_open(&mut self, h: Header, o: monitor_common::file::FileOpen, out: &mut Vec<Event>) {
        let info = self.known(&h, out);
        let cwd = info.cwd;
        let raw_path = (o.path_status != PATH_FAULT && o.path_len > 0).then(|| cstr(&o.path));
        // The kernel filled its whole buffer: the path may go on. Its prefix is not the file
        // (and `..` in it could resolve to another one): the path is unknown.
        let truncated = raw_path.is_some() && o.path_len as usize >= PATH_LEN;
        let path_prefix = truncated.then(|| raw_path.clone()).flatten();
        let (path, origin) = match raw_path.as_deref().filter(|p| !p.is_empty()) {
            Some(_) if truncated => (None, PathOrigin::Truncated),
            Some(p) => match self.fds.absolute(h.tgid, o.dfd, p, cwd.as_deref()) {
                Some(abs) if o.path_status == PATH_AT_EXIT => (Some(abs), PathOrigin::SyscallExit),
                Some(abs) => (Some(abs), PathOrigin::Syscall),
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
                flags_text: open_flags_text(o.flags),
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
        self.event(&h, body, out);
    }

    /// A binder transaction: a `binder_call` event, and the capability event the rules give it.
    fn binder_call(
        &mut self,
        h: Header,
        c: &monitor_common::binder::BinderCall,
        out: &mut Vec<Event>,
    ) {
        use monitor_common::binder::{PARCEL_COPY, REPLY_COPY, TF_ONE_WAY};
        let data = &c.data[..(c.copied as usize).min(PARCEL_COPY)];
        let tok = binder::token(data);
        let interface = tok.as_ref().map(|t| t.interface.clone());
        let authority = tok
            .as_ref()
            .filter(|t| t.interface == "android.content.IContentProvider")
            .and_then(|t| binder::content_authority(data, t.end));
        let meaning = interface.as_deref().map(|i| {
            self.binder_rules
                .meaning(i, c.code, self.android_api, authority.as_deref())
        });
        let method = meaning.as_ref().and_then(|m| m.method.clone());
        let (mut lookup, mut lookup_handle) = (None, None);
        if let Some(t) = &tok
            && t.interface == binder::SERVICE_MANAGER
            && c.handle == 0
            && matches!(method.as_deref(), Some("getService" | "checkService"))
        {
            lookup = binder::string16_at(data, t.end).map(|(s, _)| s);
            let reply = &c.reply[..(c.reply_copied as usize).min(REPLY_COPY)];
            lookup_handle = binder::reply_handle(reply);
            if let (Some(name), Some(handle)) = (&lookup, lookup_handle) {
                self.handles.learn(h.tgid, handle, name.clone());
            }
        }
        let service = self.handles.name(h.tgid, c.handle).map(str::to_string);
        let callee_pid = u32::try_from(c.to_proc).ok().filter(|&p| p > 0);
        let callee = callee_pid.and_then(|p| self.procs.proc.argv0(p));
        let mut capability = meaning.as_ref().and_then(|m| m.capability);
        if capability.is_none()
            && !interface
                .as_deref()
                .is_some_and(|i| self.binder_rules.knows(i))
            && callee
                .as_deref()
                .is_some_and(|a| self.devices.is_camera_service(a))
        {
            // `--device camera-service=NAME`: any call of an interface the rules do not know
            // to a camera service process counts as camera use.
            capability = Some(event::Capability::Camera);
        }
        let body = Body::BinderCall(event::BinderCall {
            interface: interface.clone(),
            method: method.clone(),
            code: c.code,
            one_way: c.flags & TF_ONE_WAY != 0,
            handle: c.handle,
            service: service.clone(),
            callee_pid,
            callee: callee.clone(),
            data_size: c.data_size,
            token_layout: tok.as_ref().map(|t| t.layout),
            capability,
            lookup,
            lookup_handle,
            authority: authority.clone(),
            result: c.result,
            error: error_of(c.result),
        });
        self.event(&h, body, out);
        let Some(cap) = capability else {
            return;
        };
        let what = match (&interface, &method) {
            (Some(i), Some(m)) => format!("{i}.{m}"),
            (Some(i), None) => format!("{i}#{}", c.code),
            (None, _) => format!("{}#{}", callee.as_deref().unwrap_or("?"), c.code),
        };
        let place = authority
            .as_deref()
            .map(|a| format!("content://{a}"))
            .or_else(|| service.clone());
        let path = match place {
            Some(p) => format!("binder:{p}/{what}"),
            None => format!("binder:{what}"),
        };
        let d = event::Device {
            interface,
            method,
            code: Some(c.code),
            service,
            ..event::Device::new(DeviceOp::ServiceCall, Some(path), c.result)
        };
        if let Some(body) = Body::of_device(cap, d) {
            self.event(&h, body, out);
        }
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

#[cfg(test)]
pub(crate) mod tests;
