//! The report's content, computed once from a session and rendered as text, JSON or HTML.
//! `Summary` serialises to the stable `summary.json` schema documented in docs/report.md:
//! add fields freely, but bump `SCHEMA_VERSION` when one is renamed, removed or changes meaning.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    categories::{AppCategories, Categories, CategoryInfo},
    history::{AppOf, Frame, PhaseTrack, format_ts, phase_of, phase_tracks, secs},
};
use crate::{
    capability::{Capability, Category},
    event::{Body, DeviceOp, Event, Phase, PhaseReason, ProcOp, Proto, Scope},
    geo::SourceInfo,
    session::{SessionInfo, TargetSpec},
};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Summary {
    pub schema_version: u32,
    pub generator: Generator,
    pub session: SessionSummary,
    pub completeness: Completeness,
    pub geo: GeoSummary,
    pub categories: CategoriesSummary,
    pub markers: Vec<MarkerItem>,
    pub apps: Vec<AppReport>,
}

#[derive(Serialize)]
pub struct Generator {
    pub tool: &'static str,
    pub version: &'static str,
    pub generated_at: String,
}

#[derive(Serialize)]
pub struct SessionSummary {
    pub dir: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_s: f64,
    pub stop_reason: Option<String>,
    pub hostname: String,
    pub kernel: String,
    pub machine: String,
    pub tool_version: String,
    pub event_schema_version: u32,
    pub target: TargetSpec,
    /// Events in events.jsonl, by kind.
    pub events: BTreeMap<String, u64>,
    pub events_total: u64,
}

#[derive(Serialize)]
pub struct Completeness {
    /// session.json's `complete`: nothing was lost.
    pub complete: bool,
    /// The recording ended normally (session.json has an end time).
    pub ended: bool,
    pub lost_total: u64,
    pub lost_by_reason: BTreeMap<String, u64>,
    pub undecodable: u64,
    /// Sum of the `lost` events in the timeline.
    pub lost_in_timeline: u64,
    /// What a reader must know before trusting the report; empty for a complete session.
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
pub struct GeoSummary {
    /// Countries / ASNs were looked up now (a database was given or found); otherwise they
    /// are as recorded.
    pub enriched: bool,
    pub sources: Vec<SourceInfo>,
    pub attribution: String,
}

#[derive(Serialize)]
pub struct CategoriesSummary {
    pub source: String,
    pub categories: Vec<CategoryInfo>,
}

#[derive(Serialize, Clone)]
pub struct MarkerItem {
    pub ts: String,
    pub t_s: f64,
    pub label: String,
    pub app: Option<String>,
}

/// How often something happened, when, in which phases and by whom.
#[derive(Serialize, Clone, Default)]
pub struct Occurrence {
    pub count: u64,
    pub first: String,
    pub last: String,
    /// Seconds since the session started.
    pub first_s: f64,
    pub last_s: f64,
    pub by_phase: BTreeMap<Phase, u64>,
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
}

#[derive(Serialize)]
pub struct AppReport {
    pub app: String,
    /// Anything happened while the app was in background or closed.
    pub background_collection: bool,
    /// Background-collection findings, oldest first.
    pub findings: Vec<Finding>,
    pub phases: Vec<PhaseSummary>,
    pub transitions: Vec<Transition>,
    /// Launches, on-screen periods, closes (and how), survivors, restarts and relaunches.
    pub lifecycle: Vec<super::lifecycle::LifecycleItem>,
    pub destinations: Vec<Destination>,
    pub countries: Vec<CountryRow>,
    pub devices: Vec<DeviceAccess>,
    pub files: Vec<FileCategory>,
    pub processes: Vec<ProcessSummary>,
}

#[derive(Serialize)]
pub struct Finding {
    /// `background` or `closed`.
    pub phase: Phase,
    /// `connect`, `camera`, `microphone` or `file`.
    pub kind: Capability,
    /// One line for people.
    pub what: String,
    /// What is known besides the target: country / ASN / organisation (or the scope) of a
    /// destination, opens and bytes of a file, operations on a device.
    pub detail: String,
    /// `address:port/proto`, a device path or a file path.
    pub target: String,
    #[serde(flatten)]
    pub seen: Occurrence,
    /// Seconds from the app leaving the foreground to the first occurrence.
    pub after_left_foreground_s: Option<f64>,
    /// Seconds from the app being closed to the first occurrence (phase `closed` only).
    pub after_closed_s: Option<f64>,
    /// Syscall results: `ok` or an errno name, with counts.
    pub results: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<DeviceOp>>,
}

#[derive(Serialize, Clone)]
pub struct Endpoint {
    pub address: IpAddr,
    pub port: u16,
    pub proto: Proto,
    pub scope: Option<Scope>,
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

#[derive(Serialize)]
pub struct Span {
    pub start: String,
    pub end: String,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Serialize)]
pub struct PhaseSummary {
    pub phase: Phase,
    pub spans: Vec<Span>,
    pub duration_s: f64,
    pub events: u64,
    pub connects: u64,
    pub destinations: u64,
    pub file_opens: u64,
    pub files_read: u64,
    pub bytes_read: u64,
    pub camera: u64,
    pub microphone: u64,
    pub processes: u64,
}

#[derive(Serialize)]
pub struct Transition {
    pub ts: String,
    pub t_s: f64,
    pub from: Phase,
    pub to: Phase,
    pub reason: PhaseReason,
    pub detail: Option<String>,
}

impl Transition {
    /// `foreground -> background`, or `starts in foreground` for the first phase event.
    pub fn change_text(&self) -> String {
        if self.from == self.to {
            format!("starts in {}", self.to.as_str())
        } else {
            format!("{} -> {}", self.from.as_str(), self.to.as_str())
        }
    }
}

impl AppReport {
    /// One line saying what the app did while in background or closed.
    pub fn headline(&self) -> String {
        if self.findings.is_empty() {
            return "no background collection".to_string();
        }
        let bg = self
            .findings
            .iter()
            .filter(|f| f.phase == Phase::Background)
            .count();
        let closed = self.findings.len() - bg;
        let mut parts = Vec::new();
        for cap in Capability::ALL {
            let found: Vec<&Finding> = self.findings.iter().filter(|f| f.kind == cap).collect();
            if found.is_empty() {
                continue;
            }
            parts.push(match cap.spec().category {
                Category::Network => destinations_words(&found),
                Category::Devices => {
                    let n: u64 = found.iter().map(|f| f.seen.count).sum();
                    format!("{cap} x{n}")
                }
                Category::Files => {
                    let mut cats: Vec<&str> =
                        found.iter().filter_map(|f| f.category.as_deref()).collect();
                    cats.sort_unstable();
                    cats.dedup();
                    if cats.is_empty() {
                        continue;
                    }
                    format!("files: {}", cats.join(", "))
                }
            });
        }
        format!(
            "{} background-collection finding{} ({bg} in background, {closed} after close): {}",
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" },
            parts.join("; ")
        )
    }
}

/// "3 connects to 2 destinations (CN, US)".
fn destinations_words(connects: &[&Finding]) -> String {
    let n: u64 = connects.iter().map(|f| f.seen.count).sum();
    let mut dests: Vec<&str> = connects.iter().map(|f| f.target.as_str()).collect();
    dests.sort_unstable();
    dests.dedup();
    let mut countries: Vec<&str> = connects
        .iter()
        .filter_map(|f| f.destination.as_ref()?.country.as_deref())
        .collect();
    countries.sort_unstable();
    countries.dedup();
    format!(
        "{n} connect{} to {} destination{}{}",
        if n == 1 { "" } else { "s" },
        dests.len(),
        if dests.len() == 1 { "" } else { "s" },
        if countries.is_empty() {
            String::new()
        } else {
            format!(" ({})", countries.join(", "))
        }
    )
}

#[derive(Serialize)]
pub struct Destination {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    #[serde(flatten)]
    pub seen: Occurrence,
    pub results: BTreeMap<String, u64>,
}

#[derive(Serialize)]
pub struct CountryRow {
    /// ISO code, or `null` for public destinations with no country.
    pub country: Option<String>,
    pub connects: u64,
    pub destinations: u64,
    pub asns: Vec<u32>,
}

#[derive(Serialize)]
pub struct DeviceAccess {
    /// `camera` or `microphone`.
    pub kind: Capability,
    pub path: Option<String>,
    pub ops: Vec<DeviceOp>,
    #[serde(flatten)]
    pub seen: Occurrence,
    pub results: BTreeMap<String, u64>,
}

#[derive(Serialize)]
pub struct FileCategory {
    pub category: String,
    pub sensitive: bool,
    pub noise: bool,
    pub paths: u64,
    pub opens: u64,
    pub failed_opens: u64,
    pub bytes_read: u64,
    pub files: Vec<FileAccess>,
}

#[derive(Serialize)]
pub struct FileAccess {
    pub path: Option<String>,
    /// Successful opens.
    pub opens: u64,
    pub failed_opens: u64,
    /// `file_read` records (one per closed fd) and the read calls and bytes they count.
    pub read_records: u64,
    pub read_calls: u64,
    pub bytes_read: u64,
    #[serde(flatten)]
    pub seen: Occurrence,
    pub results: BTreeMap<String, u64>,
}

#[derive(Serialize)]
pub struct ProcessSummary {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comms: Vec<String>,
    pub exec: Vec<String>,
    pub first: String,
    pub last: String,
    pub first_s: f64,
    pub last_s: f64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub events: u64,
    pub by_phase: BTreeMap<Phase, u64>,
}

fn result_key(result: i32, error: Option<&str>) -> String {
    if result >= 0 {
        "ok".to_string()
    } else {
        error
            .map(str::to_string)
            .unwrap_or_else(|| crate::event::errno_name(-result))
    }
}

#[derive(Default, Clone)]
struct Seen {
    count: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    by_phase: BTreeMap<Phase, u64>,
    pids: BTreeSet<u32>,
    comms: BTreeSet<String>,
}

impl Seen {
    fn add(&mut self, ev: &Event) {
        self.count += 1;
        self.first = Some(self.first.map_or(ev.ts, |f| f.min(ev.ts)));
        self.last = Some(self.last.map_or(ev.ts, |l| l.max(ev.ts)));
        *self.by_phase.entry(phase_of(ev)).or_default() += 1;
        self.pids.insert(ev.pid);
        if !self.comms.contains(&ev.comm) {
            self.comms.insert(ev.comm.clone());
        }
    }

    fn out(&self, frame: Frame) -> Occurrence {
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
struct DestAcc {
    endpoint: Option<Endpoint>,
    seen: Seen,
    results: BTreeMap<String, u64>,
}

#[derive(Default)]
struct DevAcc {
    ops: BTreeSet<DeviceOp>,
    seen: Seen,
    results: BTreeMap<String, u64>,
}

#[derive(Default)]
struct FileAcc {
    category: usize,
    path: Option<String>,
    opens: u64,
    failed_opens: u64,
    read_records: u64,
    read_calls: u64,
    bytes: u64,
    seen: Seen,
    results: BTreeMap<String, u64>,
}

impl FileAcc {
    fn add(&mut self, ev: &Event) {
        self.seen.add(ev);
        match &ev.body {
            Body::FileOpen(o) => {
                *self
                    .results
                    .entry(result_key(o.result, o.error.as_deref()))
                    .or_default() += 1;
                if o.result >= 0 {
                    self.opens += 1;
                } else {
                    self.failed_opens += 1;
                }
            }
            Body::FileRead(r) => {
                self.read_records += 1;
                self.read_calls += r.reads;
                self.bytes += r.bytes;
            }
            _ => {}
        }
    }
}

struct FindAcc {
    target: String,
    endpoint: Option<Endpoint>,
    category: Option<String>,
    ops: BTreeSet<DeviceOp>,
    file: FileAcc,
    seen: Seen,
    results: BTreeMap<String, u64>,
}

impl FindAcc {
    fn new(target: String) -> FindAcc {
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
struct ProcAcc {
    ppid: u32,
    uid: u32,
    comms: Vec<String>,
    exec: Vec<String>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    seen: Seen,
}

#[derive(Default)]
struct AppAcc {
    dests: BTreeMap<(IpAddr, u16, Proto), DestAcc>,
    devices: BTreeMap<(Capability, Option<String>), DevAcc>,
    files: BTreeMap<Option<String>, FileAcc>,
    findings: BTreeMap<(Phase, Capability, String), FindAcc>,
    procs: BTreeMap<u32, ProcAcc>,
    phase_events: BTreeMap<Phase, PhaseCounts>,
}

#[derive(Default)]
struct PhaseCounts {
    events: u64,
    connects: u64,
    destinations: BTreeSet<(IpAddr, u16, Proto)>,
    file_opens: u64,
    files_read: u64,
    bytes_read: u64,
    camera: u64,
    microphone: u64,
    pids: BTreeSet<u32>,
}

pub fn endpoint(c: &crate::event::Connect) -> Endpoint {
    Endpoint {
        address: c.daddr,
        port: c.dport,
        proto: c.proto,
        scope: c.scope,
        country: c.country.clone(),
        asn: c.asn,
        as_org: c.as_org.clone(),
    }
}

pub fn endpoint_label(e: &Endpoint) -> String {
    match e.address {
        IpAddr::V6(a) => format!("[{a}]:{}/{}", e.port, e.proto),
        IpAddr::V4(a) => format!("{a}:{}/{}", e.port, e.proto),
    }
}

/// Bytes for people: 512 B, 3.1 KiB, 12.0 MiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Country and AS of a destination (or its scope when it has neither): `US, AS209 Qwest`.
pub fn geo_words(e: &Endpoint) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &e.country {
        parts.push(c.clone());
    }
    match (e.asn, &e.as_org) {
        (Some(n), Some(o)) => parts.push(format!("AS{n} {o}")),
        (Some(n), None) => parts.push(format!("AS{n}")),
        (None, Some(o)) => parts.push(o.clone()),
        (None, None) => {}
    }
    if parts.is_empty()
        && let Some(s) = e.scope.filter(|s| *s != Scope::Public)
    {
        parts.push(s.to_string());
    }
    parts.join(", ")
}

pub struct Context<'a> {
    pub dir: &'a str,
    pub info: &'a SessionInfo,
    pub events: &'a [Event],
    pub geo_enriched: bool,
    pub geo_sources: Vec<SourceInfo>,
    pub geo_attribution: String,
    pub categories: &'a Categories,
}

pub fn build(cx: &Context) -> Summary {
    let info = cx.info;
    let events = cx.events;
    let frame = Frame::new(info, events);
    let app_of = AppOf::new(events);
    let tracks = phase_tracks(events, &app_of);

    let mut apps: BTreeMap<String, AppAcc> = BTreeMap::new();
    let mut matchers: HashMap<String, AppCategories> = HashMap::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut markers = Vec::new();
    let mut lost_in_timeline = 0u64;

    for ev in events {
        *kinds.entry(ev.body.kind().to_string()).or_default() += 1;
        let app = app_of.get(ev);
        let phase = phase_of(ev);
        match &ev.body {
            Body::Lost(l) => {
                lost_in_timeline += l.count;
                continue;
            }
            Body::Marker(m) => {
                markers.push(MarkerItem {
                    ts: format_ts(&ev.ts),
                    t_s: frame.s(ev.ts),
                    label: m.label.clone(),
                    app: ev.app.clone(),
                });
                continue;
            }
            Body::Phase(_) => {
                apps.entry(app.to_string()).or_default();
                continue;
            }
            _ => {}
        }
        let acc = apps.entry(app.to_string()).or_default();
        let pc = acc.phase_events.entry(phase).or_default();
        pc.events += 1;
        pc.pids.insert(ev.pid);

        let p = acc.procs.entry(ev.pid).or_default();
        if p.seen.count == 0 {
            p.ppid = ev.ppid;
            p.uid = ev.uid;
        }
        p.seen.add(ev);
        if !p.comms.contains(&ev.comm) {
            p.comms.push(ev.comm.clone());
        }

        match &ev.body {
            Body::Process(pr) => match pr.op {
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
            },
            Body::Connect(c) => {
                let key = (c.daddr, c.dport, c.proto);
                pc.connects += 1;
                pc.destinations.insert(key);
                let d = acc.dests.entry(key).or_default();
                d.endpoint = Some(endpoint(c));
                d.seen.add(ev);
                *d.results
                    .entry(result_key(c.result, c.error.as_deref()))
                    .or_default() += 1;
                if phase != Phase::Foreground {
                    let e = endpoint(c);
                    let target = endpoint_label(&e);
                    let f = acc
                        .findings
                        .entry((phase, Capability::Connect, target.clone()))
                        .or_insert_with(|| FindAcc::new(target));
                    f.endpoint = Some(e);
                    f.seen.add(ev);
                    *f.results
                        .entry(result_key(c.result, c.error.as_deref()))
                        .or_default() += 1;
                }
            }
            Body::Camera(d) | Body::Microphone(d) => {
                let kind = ev.body.capability().expect("a device event");
                if kind == Capability::Camera {
                    pc.camera += 1;
                } else {
                    pc.microphone += 1;
                }
                let a = acc.devices.entry((kind, d.path.clone())).or_default();
                a.ops.insert(d.op);
                a.seen.add(ev);
                *a.results
                    .entry(result_key(d.result, d.error.as_deref()))
                    .or_default() += 1;
                if phase != Phase::Foreground {
                    let target = d
                        .path
                        .clone()
                        .unwrap_or_else(|| kind.spec().unknown_target.into());
                    let f = acc
                        .findings
                        .entry((phase, kind, target.clone()))
                        .or_insert_with(|| FindAcc::new(target));
                    f.ops.insert(d.op);
                    f.seen.add(ev);
                    *f.results
                        .entry(result_key(d.result, d.error.as_deref()))
                        .or_default() += 1;
                }
            }
            Body::FileOpen(_) | Body::FileRead(_) => {
                let path = match &ev.body {
                    Body::FileOpen(o) => o.path.clone(),
                    Body::FileRead(r) => r.path.clone(),
                    _ => None,
                };
                match &ev.body {
                    Body::FileOpen(_) => pc.file_opens += 1,
                    Body::FileRead(r) => {
                        pc.files_read += 1;
                        pc.bytes_read += r.bytes;
                    }
                    _ => {}
                }
                // Classified once per path and app.
                let f = acc.files.entry(path.clone()).or_insert_with(|| {
                    let m = matchers
                        .entry(app.to_string())
                        .or_insert_with(|| cx.categories.for_app(app));
                    FileAcc {
                        category: m.classify(path.as_deref()),
                        path: path.clone(),
                        ..FileAcc::default()
                    }
                });
                f.add(ev);
                let cat = &cx.categories.all()[f.category];
                if phase != Phase::Foreground && cat.sensitive {
                    let target = path
                        .clone()
                        .unwrap_or_else(|| Capability::File.spec().unknown_target.into());
                    let fa = acc
                        .findings
                        .entry((phase, Capability::File, target.clone()))
                        .or_insert_with(|| FindAcc::new(target));
                    fa.category = Some(cat.name.clone());
                    fa.file.add(ev);
                    fa.seen.add(ev);
                    if let Body::FileOpen(o) = &ev.body {
                        *fa.results
                            .entry(result_key(o.result, o.error.as_deref()))
                            .or_default() += 1;
                    }
                }
            }
            _ => {}
        }
    }

    let empty_track = PhaseTrack::new(Vec::new());
    let mut by_app: HashMap<&str, Vec<&Event>> = HashMap::new();
    for ev in events {
        by_app.entry(app_of.get(ev)).or_default().push(ev);
    }
    let mut app_reports: Vec<AppReport> = apps
        .into_iter()
        .map(|(name, acc)| {
            let track = tracks.get(&name).unwrap_or(&empty_track);
            let lifecycle = super::lifecycle::for_app(
                by_app.get(name.as_str()).map_or(&[][..], Vec::as_slice),
                track,
                frame,
            );
            let mut r = app_report(name, acc, track, frame, cx.categories);
            r.lifecycle = lifecycle;
            r
        })
        .collect();
    // Apps with background collection first, the most findings first.
    app_reports.sort_by(|a, b| {
        b.findings
            .len()
            .cmp(&a.findings.len())
            .then(a.app.cmp(&b.app))
    });

    let lost = &info.lost;
    let mut warnings = Vec::new();
    if !info.complete || lost.total > 0 || lost.undecodable > 0 {
        let reasons: Vec<String> = lost
            .by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        warnings.push(format!(
            "INCOMPLETE SESSION: {} events were lost{}{}; the timeline misses events and findings may be incomplete",
            lost.total,
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
            if lost.undecodable > 0 { format!(" and {} records could not be decoded", lost.undecodable) } else { String::new() },
        ));
    }
    if info.ended_at.is_none() {
        warnings.push(
            "the recording did not finish cleanly (session.json has no end time): events after the last flush are missing"
                .to_string(),
        );
    }
    let total = events.len() as u64;
    if info.events_total != total && info.ended_at.is_some() {
        warnings.push(format!(
            "session.json counts {} events but events.jsonl holds {total}",
            info.events_total
        ));
    }

    Summary {
        schema_version: SCHEMA_VERSION,
        generator: Generator {
            tool: "emuwatch",
            version: env!("CARGO_PKG_VERSION"),
            generated_at: format_ts(&Utc::now()),
        },
        session: SessionSummary {
            dir: cx.dir.to_string(),
            started_at: format_ts(&info.started_at),
            ended_at: info.ended_at.as_ref().map(format_ts),
            duration_s: secs(info.started_at, info.ended_at.unwrap_or(frame.end)),
            stop_reason: info.stop_reason.clone(),
            hostname: info.hostname.clone(),
            kernel: info.kernel.release.clone(),
            machine: info.kernel.machine.clone(),
            tool_version: info.tool_version.clone(),
            event_schema_version: info.schema_version,
            target: info.target.clone(),
            events: kinds,
            events_total: total,
        },
        completeness: Completeness {
            complete: info.complete && lost.total == 0 && lost.undecodable == 0,
            ended: info.ended_at.is_some(),
            lost_total: lost.total,
            lost_by_reason: lost.by_reason.clone(),
            undecodable: lost.undecodable,
            lost_in_timeline,
            warnings,
        },
        geo: GeoSummary {
            enriched: cx.geo_enriched,
            sources: cx.geo_sources.clone(),
            attribution: cx.geo_attribution.clone(),
        },
        categories: CategoriesSummary {
            source: cx.categories.source.clone(),
            categories: cx.categories.all().to_vec(),
        },
        markers,
        apps: app_reports,
    }
}

fn app_report(
    name: String,
    acc: AppAcc,
    track: &PhaseTrack,
    frame: Frame,
    cats: &Categories,
) -> AppReport {
    let after = |first: Option<DateTime<Utc>>, phase: Phase| {
        let Some(first) = first else {
            return (None, None);
        };
        let left = track.left_foreground_before(first).map(|t| secs(t, first));
        let closed = (phase == Phase::Closed)
            .then(|| track.closed_before(first).map(|t| secs(t, first)))
            .flatten();
        (left, closed)
    };

    let mut findings: Vec<Finding> = acc
        .findings
        .into_iter()
        .map(|((phase, kind, _), f)| {
            let (after_left, after_closed) = after(f.seen.first, phase);
            let (what, detail, bytes, ops) = match kind {
                Capability::Connect => {
                    let e = f
                        .endpoint
                        .as_ref()
                        .expect("connect findings carry an endpoint");
                    let detail = geo_words(e);
                    let what = if detail.is_empty() {
                        kind.subject(Some(&endpoint_label(e)))
                    } else {
                        format!("{} ({detail})", kind.subject(Some(&endpoint_label(e))))
                    };
                    (what, detail, None, None)
                }
                Capability::File => {
                    let fa = &f.file;
                    let verb = if fa.bytes > 0 || fa.read_records > 0 {
                        "read"
                    } else {
                        "open"
                    };
                    let tries = fa.opens + fa.failed_opens;
                    let mut parts = Vec::new();
                    if tries > 0 {
                        parts.push(format!("{tries} open{}", if tries == 1 { "" } else { "s" }));
                    }
                    if fa.failed_opens > 0 {
                        parts.push(format!("{} failed", fa.failed_opens));
                    }
                    if fa.read_records > 0 {
                        parts.push(format!("{} read", human_bytes(fa.bytes)));
                    }
                    let detail = parts.join(", ");
                    let what = format!(
                        "{verb} {} [{}]: {detail}",
                        f.target,
                        f.category.as_deref().unwrap_or("")
                    );
                    (what, detail, Some(fa.bytes), None)
                }
                Capability::Camera | Capability::Microphone => {
                    let ops: Vec<DeviceOp> = f.ops.iter().copied().collect();
                    let detail = ops
                        .iter()
                        .map(|o| o.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    (
                        format!("{} ({detail})", kind.subject(Some(&f.target))),
                        detail,
                        None,
                        Some(ops),
                    )
                }
            };
            let mut seen = f.seen.out(frame);
            if kind == Capability::File {
                // One access is one open (or, when the open was not seen, one read record).
                seen.count = (f.file.opens + f.file.failed_opens).max(f.file.read_records);
            }
            Finding {
                phase,
                kind,
                what,
                detail,
                target: f.target,
                seen,
                after_left_foreground_s: after_left,
                after_closed_s: after_closed,
                results: f.results,
                destination: f.endpoint,
                category: f.category,
                bytes,
                ops,
            }
        })
        .collect();
    findings.sort_by(|a, b| {
        a.seen
            .first
            .cmp(&b.seen.first)
            .then(a.phase.cmp(&b.phase))
            .then(a.target.cmp(&b.target))
    });

    let spans = track.spans(frame);
    let phases = [Phase::Foreground, Phase::Background, Phase::Closed]
        .into_iter()
        .filter_map(|ph| {
            let sp: Vec<Span> = spans
                .iter()
                .filter(|s| s.0 == ph)
                .map(|s| Span {
                    start: format_ts(&s.1),
                    end: format_ts(&s.2),
                    start_s: frame.s(s.1),
                    end_s: frame.s(s.2),
                })
                .collect();
            let counts = acc.phase_events.get(&ph);
            if sp.is_empty() && counts.is_none() {
                return None;
            }
            let d = PhaseCounts::default();
            let c = counts.unwrap_or(&d);
            Some(PhaseSummary {
                phase: ph,
                duration_s: ((sp.iter().map(|s| s.end_s - s.start_s).sum::<f64>()) * 1e3).round()
                    / 1e3,
                spans: sp,
                events: c.events,
                connects: c.connects,
                destinations: c.destinations.len() as u64,
                file_opens: c.file_opens,
                files_read: c.files_read,
                bytes_read: c.bytes_read,
                camera: c.camera,
                microphone: c.microphone,
                processes: c.pids.len() as u64,
            })
        })
        .collect();

    let transitions = track
        .changes
        .iter()
        .map(|c| Transition {
            ts: format_ts(&c.at),
            t_s: frame.s(c.at),
            from: c.from,
            to: c.to,
            reason: c.reason,
            detail: c.detail.clone(),
        })
        .collect();

    let mut destinations: Vec<Destination> = acc
        .dests
        .into_values()
        .map(|d| Destination {
            endpoint: d.endpoint.expect("set with the first connect"),
            seen: d.seen.out(frame),
            results: d.results,
        })
        .collect();
    destinations.sort_by(|a, b| {
        a.seen
            .first
            .cmp(&b.seen.first)
            .then(b.seen.count.cmp(&a.seen.count))
    });

    let mut countries: BTreeMap<Option<String>, (u64, u64, BTreeSet<u32>)> = BTreeMap::new();
    for d in destinations
        .iter()
        .filter(|d| d.endpoint.scope == Some(Scope::Public))
    {
        let row = countries.entry(d.endpoint.country.clone()).or_default();
        row.0 += d.seen.count;
        row.1 += 1;
        row.2.extend(d.endpoint.asn);
    }
    let mut countries: Vec<CountryRow> = countries
        .into_iter()
        .map(|(country, (connects, dests, asns))| CountryRow {
            country,
            connects,
            destinations: dests,
            asns: asns.into_iter().collect(),
        })
        .collect();
    countries.sort_by(|a, b| b.connects.cmp(&a.connects).then(a.country.cmp(&b.country)));

    let mut devices: Vec<DeviceAccess> = acc
        .devices
        .into_iter()
        .map(|((kind, path), d)| DeviceAccess {
            kind,
            path,
            ops: d.ops.into_iter().collect(),
            seen: d.seen.out(frame),
            results: d.results,
        })
        .collect();
    devices.sort_by(|a, b| a.seen.first.cmp(&b.seen.first));

    let mut by_cat: BTreeMap<usize, Vec<FileAcc>> = BTreeMap::new();
    for f in acc.files.into_values() {
        by_cat.entry(f.category).or_default().push(f);
    }
    let files = by_cat
        .into_iter()
        .map(|(idx, mut list)| {
            list.sort_by(|a, b| {
                b.bytes
                    .cmp(&a.bytes)
                    .then(a.seen.first.cmp(&b.seen.first))
                    .then(a.path.cmp(&b.path))
            });
            let info = &cats.all()[idx];
            FileCategory {
                category: info.name.clone(),
                sensitive: info.sensitive,
                noise: info.noise,
                paths: list.len() as u64,
                opens: list.iter().map(|f| f.opens).sum(),
                failed_opens: list.iter().map(|f| f.failed_opens).sum(),
                bytes_read: list.iter().map(|f| f.bytes).sum(),
                files: list
                    .into_iter()
                    .map(|f| FileAccess {
                        path: f.path,
                        opens: f.opens,
                        failed_opens: f.failed_opens,
                        read_records: f.read_records,
                        read_calls: f.read_calls,
                        bytes_read: f.bytes,
                        seen: f.seen.out(frame),
                        results: f.results,
                    })
                    .collect(),
            }
        })
        .collect();

    let mut processes: Vec<ProcessSummary> = acc
        .procs
        .into_iter()
        .map(|(pid, p)| {
            let o = p.seen.out(frame);
            ProcessSummary {
                pid,
                ppid: p.ppid,
                uid: p.uid,
                comms: p.comms,
                exec: p.exec,
                first: o.first,
                last: o.last,
                first_s: o.first_s,
                last_s: o.last_s,
                exit_code: p.exit_code,
                signal: p.signal,
                events: o.count,
                by_phase: o.by_phase,
            }
        })
        .collect();
    processes.sort_by(|a, b| a.first.cmp(&b.first).then(a.pid.cmp(&b.pid)));

    AppReport {
        app: name,
        background_collection: !findings.is_empty(),
        findings,
        phases,
        transitions,
        lifecycle: Vec::new(),
        destinations,
        countries,
        devices,
        files,
        processes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(3174), "3.1 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
