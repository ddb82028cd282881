//! Per-app accumulators filled event by event while `build` walks the session.
use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use chrono::{DateTime, Utc};

use super::{Endpoint, Occurrence, endpoint, endpoint_label};
use crate::{
    analysis::{
        categories::{AppCategories, Categories},
        history::{Frame, format_ts, phase_of},
    },
    capability::{Capability, Category},
    event::{Body, DeviceOp, DnsDir, Event, Phase, ProcOp, Proto},
};

/// How a result is counted: `ok`, the error name recorded, or the errno's name.
fn result_key(result: i32, error: Option<&str>) -> Cow<'_, str> {
    if result >= 0 {
        Cow::Borrowed("ok")
    } else {
        error.map_or_else(|| crate::event::errno_name(-result).into(), Cow::Borrowed)
    }
}

/// Add one to `key`'s count; a key already counted costs no allocation (this runs for every
/// event of a session).
fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

/// Count one result, as [`result_key`] names it.
pub(super) fn count_result(results: &mut BTreeMap<String, u64>, result: i32, error: Option<&str>) {
    bump(results, &result_key(result, error));
}

#[derive(Default, Clone)]
pub(super) struct Seen {
    pub(super) count: u64,
    pub(super) first: Option<DateTime<Utc>>,
    pub(super) last: Option<DateTime<Utc>>,
    pub(super) by_phase: BTreeMap<Phase, u64>,
    pub(super) pids: BTreeSet<u32>,
    pub(super) comms: BTreeSet<String>,
    last_pid: Option<u32>,
}

impl Seen {
    pub(super) fn add(&mut self, ev: &Event) {
        self.count += 1;
        self.first = Some(self.first.map_or(ev.ts, |f| f.min(ev.ts)));
        self.last = Some(self.last.map_or(ev.ts, |l| l.max(ev.ts)));
        *self.by_phase.entry(phase_of(ev)).or_default() += 1;
        // Runs of events from one process are the rule: the set needs no look-up then.
        if self.last_pid != Some(ev.pid) {
            self.pids.insert(ev.pid);
            self.last_pid = Some(ev.pid);
        }
        // Most have one name: checked without a tree search.
        let only = self.comms.len() == 1 && self.comms.first() == Some(&ev.comm);
        if !only && !self.comms.contains(&ev.comm) {
            self.comms.insert(ev.comm.clone());
        }
    }

    pub(super) fn out(&self, frame: Frame) -> Occurrence {
        let first = self.first.unwrap_or(frame.t0);
        let last = self.last.unwrap_or(frame.t0);
        Occurrence {
            count: self.count,
            first: format_ts(&first),
            last: format_ts(&last),
            first_s: frame.s(first),
            last_s: frame.s(last),
            by_phase: self.by_phase.clone(),
            pids: self.pids.iter().copied().collect(),
            comms: self.comms.iter().cloned().collect(),
        }
    }
}

#[derive(Default)]
pub(super) struct DestAcc {
    pub(super) endpoint: Option<Endpoint>,
    pub(super) seen: Seen,
    pub(super) results: BTreeMap<String, u64>,
}

#[derive(Default)]
pub(super) struct DevAcc {
    pub(super) ops: BTreeSet<DeviceOp>,
    pub(super) seen: Seen,
    pub(super) results: BTreeMap<String, u64>,
}

#[derive(Default)]
pub(super) struct FileAcc {
    pub(super) category: usize,
    pub(super) path: Option<String>,
    pub(super) opens: u64,
    pub(super) failed_opens: u64,
    pub(super) read_records: u64,
    pub(super) read_calls: u64,
    pub(super) bytes: u64,
    pub(super) seen: Seen,
    pub(super) results: BTreeMap<String, u64>,
}

impl FileAcc {
    pub(super) fn add(&mut self, ev: &Event) {
        self.seen.add(ev);
        match &ev.body {
            Body::FileOpen(o) => {
                count_result(&mut self.results, o.result, o.error.as_deref());
                if o.result >= 0 {
                    self.opens += 1;
                } else {
                    self.failed_opens += 1;
                }
            }
            Body::FileRead(r) => {
                self.read_records += 1;
                self.read_calls = self.read_calls.saturating_add(r.reads);
                self.bytes = self.bytes.saturating_add(r.bytes);
            }
            _ => {}
        }
    }
}

pub(super) struct FindAcc {
    pub(super) target: String,
    pub(super) endpoint: Option<Endpoint>,
    pub(super) category: Option<String>,
    pub(super) ops: BTreeSet<DeviceOp>,
    pub(super) file: FileAcc,
    pub(super) seen: Seen,
    pub(super) results: BTreeMap<String, u64>,
}

impl FindAcc {
    pub(super) fn new(target: String) -> FindAcc {
        FindAcc {
            target,
            endpoint: None,
            category: None,
            ops: BTreeSet::new(),
            file: FileAcc::default(),
            seen: Seen::default(),
            results: BTreeMap::new(),
        }
    }
}

#[derive(Default)]
pub(super) struct ProcAcc {
    pub(super) ppid: u32,
    pub(super) uid: u32,
    pub(super) comms: Vec<String>,
    pub(super) exec: Vec<String>,
    pub(super) exit_code: Option<i32>,
    pub(super) signal: Option<i32>,
    pub(super) seen: Seen,
}

#[derive(Default)]
pub(super) struct AppAcc {
    pub(super) dests: BTreeMap<(Option<String>, IpAddr, u16, Proto), DestAcc>,
    pub(super) devices: BTreeMap<(Capability, Option<String>), DevAcc>,
    pub(super) files: BTreeMap<Option<String>, FileAcc>,
    pub(super) findings: BTreeMap<(Phase, Capability, String), FindAcc>,
    pub(super) procs: BTreeMap<u32, ProcAcc>,
    pub(super) phase_events: BTreeMap<Phase, PhaseCounts>,
}

#[derive(Default)]
pub(super) struct PhaseCounts {
    pub(super) events: u64,
    pub(super) connects: u64,
    pub(super) destinations: BTreeSet<(IpAddr, u16, Proto)>,
    /// Connects per destination name.
    pub(super) hosts: BTreeMap<String, u64>,
    /// Names looked up (DNS queries, dnsproxyd requests).
    pub(super) lookups: BTreeSet<String>,
    pub(super) file_opens: u64,
    pub(super) files_read: u64,
    pub(super) bytes_read: u64,
    pub(super) camera: u64,
    pub(super) microphone: u64,
    /// Android-service capabilities (location, clipboard, ...) asked over binder.
    pub(super) services: BTreeMap<Capability, u64>,
    pub(super) pids: BTreeSet<u32>,
}

impl AppAcc {
    /// Count one event of this app (seen in `phase`) into its phase, process, destination,
    /// device, file and finding accumulators. Returns the category of a file event (with
    /// whether it is sensitive).
    pub(super) fn add<'c>(
        &mut self,
        ev: &Event,
        phase: Phase,
        app: &str,
        matchers: &mut foldhash::HashMap<String, AppCategories<'c>>,
        cats: &'c Categories,
    ) -> Option<(usize, bool)> {
        let pc = self.phase_events.entry(phase).or_default();
        pc.events += 1;
        pc.pids.insert(ev.pid);
        self.add_process(ev);
        match &ev.body {
            Body::Connect(c) => self.add_connect(ev, c, phase),
            Body::Dns(d) if d.dir == DnsDir::Query => {
                if let Some(n) = &d.name {
                    let pc = self.phase_events.entry(phase).or_default();
                    pc.lookups.insert(n.clone());
                }
            }
            b if b.device().is_some() => self.add_device(ev, phase),
            Body::FileOpen(_) | Body::FileRead(_) => {
                return Some(self.add_file(ev, phase, app, matchers, cats));
            }
            _ => {}
        }
        None
    }

    /// The event's process: first seen, names, exec'd files, how it exited.
    fn add_process(&mut self, ev: &Event) {
        let p = self.procs.entry(ev.pid).or_default();
        if p.seen.count == 0 {
            p.ppid = ev.ppid;
            p.uid = ev.uid;
        }
        p.seen.add(ev);
        if !p.comms.contains(&ev.comm) {
            p.comms.push(ev.comm.clone());
        }
        if let Body::Process(pr) = &ev.body {
            match pr.op {
                ProcOp::Exec => {
                    if let Some(f) = &pr.filename {
                        p.exec.push(f.clone());
                    }
                }
                ProcOp::Exit => {
                    p.exit_code = pr.exit_code;
                    p.signal = pr.signal;
                }
                _ => {}
            }
        }
    }

    /// A connect: its phase's counts and names, its destination, and a finding outside the
    /// foreground.
    fn add_connect(&mut self, ev: &Event, c: &crate::event::Connect, phase: Phase) {
        let pc = self.phase_events.entry(phase).or_default();
        pc.connects += 1;
        pc.destinations.insert((c.daddr, c.dport, c.proto));
        if let Some(h) = &c.host {
            bump(&mut pc.hosts, h);
        }
        let d = self
            .dests
            .entry((c.host.clone(), c.daddr, c.dport, c.proto))
            .or_default();
        d.endpoint = Some(endpoint(c));
        d.seen.add(ev);
        count_result(&mut d.results, c.result, c.error.as_deref());
        if phase != Phase::Foreground {
            let e = endpoint(c);
            let f = self.finding(phase, Capability::Connect, endpoint_label(&e));
            f.endpoint = Some(e);
            f.seen.add(ev);
            count_result(&mut f.results, c.result, c.error.as_deref());
        }
    }

    /// A device or service capability (camera, microphone, location, clipboard, ...): its
    /// phase's count, its device, and a finding outside the foreground.
    fn add_device(&mut self, ev: &Event, phase: Phase) {
        let d = ev.body.device().expect("a device event");
        let kind = ev.body.capability().expect("a device event");
        let pc = self.phase_events.entry(phase).or_default();
        if kind == Capability::Camera {
            pc.camera += 1;
        } else if kind == Capability::Microphone {
            pc.microphone += 1;
        } else if kind.spec().category == Category::Services {
            *pc.services.entry(kind).or_default() += 1;
        }
        let a = self.devices.entry((kind, d.path.clone())).or_default();
        a.ops.insert(d.op);
        a.seen.add(ev);
        count_result(&mut a.results, d.result, d.error.as_deref());
        if phase != Phase::Foreground {
            let target = d
                .path
                .clone()
                .unwrap_or_else(|| kind.spec().unknown_target.into());
            let f = self.finding(phase, kind, target);
            f.ops.insert(d.op);
            f.seen.add(ev);
            count_result(&mut f.results, d.result, d.error.as_deref());
        }
    }

    /// A file open or read total: its phase's counts, its file (classified once per path and
    /// app), and a finding outside the foreground when its category is sensitive. Returns the
    /// category and whether it is sensitive.
    fn add_file<'c>(
        &mut self,
        ev: &Event,
        phase: Phase,
        app: &str,
        matchers: &mut foldhash::HashMap<String, AppCategories<'c>>,
        cats: &'c Categories,
    ) -> (usize, bool) {
        let pc = self.phase_events.entry(phase).or_default();
        let path: &Option<String> = match &ev.body {
            Body::FileOpen(o) => {
                pc.file_opens += 1;
                &o.path
            }
            Body::FileRead(r) => {
                pc.files_read += 1;
                pc.bytes_read = pc.bytes_read.saturating_add(r.bytes);
                &r.path
            }
            _ => &None,
        };
        // Looked up by the event's own path: a file already seen costs no copy of its path.
        if !self.files.contains_key(path) {
            let m = match matchers.get_mut(app) {
                Some(m) => m,
                None => matchers
                    .entry(app.to_string())
                    .or_insert_with(|| cats.for_app(app)),
            };
            let acc = FileAcc {
                category: m.classify(path.as_deref()),
                path: path.clone(),
                ..FileAcc::default()
            };
            self.files.insert(path.clone(), acc);
        }
        let f = self.files.get_mut(path).expect("inserted above");
        f.add(ev);
        let category = f.category;
        let cat = &cats.all()[category];
        if phase != Phase::Foreground && cat.sensitive {
            let target = path
                .clone()
                .unwrap_or_else(|| Capability::File.spec().unknown_target.into());
            let fa = self.finding(phase, Capability::File, target);
            fa.category = Some(cat.name.clone());
            fa.file.add(ev);
            fa.seen.add(ev);
            if let Body::FileOpen(o) = &ev.body {
                count_result(&mut fa.results, o.result, o.error.as_deref());
            }
        }
        (category, cat.sensitive)
    }

    /// The finding of `kind` on `target` in `phase`, created on first use.
    fn finding(&mut self, phase: Phase, kind: Capability, target: String) -> &mut FindAcc {
        self.findings
            .entry((phase, kind, target.clone()))
            .or_insert_with(|| FindAcc::new(target))
    }
}
