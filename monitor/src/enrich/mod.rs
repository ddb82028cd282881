//! Enrichment: kernel records become userspace events with parent, app, absolute paths,
//! device classes and band names.
pub mod android;
pub mod binder;
mod file_events;
pub mod files;
pub mod live_proc;
pub mod names;
mod net_events;
pub mod process;
mod process_events;
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
    /// The last open flags and their names.
    last_flags: Option<(u32, String)>,
    /// Parent pids of resolver processes (not targets, not in the process table).
    resolver_ppids: std::collections::HashMap<u32, u32>,
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
            last_flags: None,
            resolver_ppids: Default::default(),
        }
        .with_binder(None, None)
    }

    /// Resolver processes by name (`--resolver`): their DNS answers name the targets' connects.
    pub fn with_resolvers(mut self, comms: &[String]) -> Self {
        self.names.set_resolvers(comms);
        self
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
        self.seen(h, &cstr(&h.comm), out).clone()
    }

    /// `known` without copying the process's facts (the per-event path).
    fn seen(&mut self, h: &Header, comm: &str, out: &mut Vec<Event>) -> &process::ProcInfo {
        if self.procs.ensure(h.tgid, h.uid, comm) {
            self.first_seen(h.tgid, h.tid, h.uid, comm, h.ts_ns, out);
        }
        self.procs.get(h.tgid).expect("ensured above")
    }

    /// An event about the task in `h`.
    fn event(&mut self, h: &Header, body: Body, out: &mut Vec<Event>) {
        self.event_of(h, cstr(&h.comm), body, out);
    }

    /// `event` with the task's name already decoded.
    fn event_of(&mut self, h: &Header, comm: String, body: Body, out: &mut Vec<Event>) {
        let info = self.seen(h, &comm, out);
        let (ppid, app) = (info.ppid, info.app.clone());
        out.push(self.header_event(h, comm, body, ppid, Some(app)));
    }

    /// An event of the task in a record's header (phase stamped later).
    fn header_event(
        &self,
        h: &Header,
        comm: String,
        body: Body,
        ppid: u32,
        app: Option<String>,
    ) -> Event {
        Event {
            ts: wall_time(self.clock_offset_ns, h.ts_ns),
            body,
            pid: h.tgid,
            tid: h.tid,
            ppid,
            uid: h.uid,
            comm,
            app,
            phase: None,
        }
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

    /// Events for one record. Taken by reference: a `Raw` is as large as its largest
    /// variant (the name-capture bytes), and only the record's own payload is copied.
    pub fn enrich(&mut self, raw: &Raw, out: &mut Vec<Event>) {
        match raw {
            Raw::Fork(h, f) => self.on_fork(*h, *f, out),
            Raw::Exec(h, e) => self.on_exec(*h, *e, out),
            Raw::Exit(h, e) => self.on_exit(*h, *e, out),
            Raw::Connect(h, c) => self.on_connect(*h, *c, out),
            Raw::FileOpen(h, o) => self.file_open(*h, o, out),
            Raw::Chdir(h, c) => self.on_chdir(*h, *c, out),
            Raw::FileRead(h, r) => self.on_file_read(*h, *r, out),
            Raw::Ioctl(h, i) => self.on_ioctl(*h, *i, out),
            Raw::Rename(h, r) => self.on_rename(*h, *r, out),
            Raw::Setuid(h, u) => self.on_setuid(*h, *u, out),
            Raw::NetSend(h, d) | Raw::NetRecv(h, d) => self.on_net_data(*h, d, out),
            Raw::BinderCall(h, c) => self.binder_call(*h, c, out),
            Raw::AppState(h, a) => self.on_app_state(*h, *a, out),
        }
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
}

#[cfg(test)]
pub(crate) mod tests;
