//! The report's content, computed once from a session and rendered as text, JSON or HTML.
//! `Summary` serialises to the stable `summary.json` schema documented in docs/report.md:
//! add fields freely, but bump `SCHEMA_VERSION` when one is renamed, removed or changes meaning.
use std::{collections::BTreeMap, net::IpAddr};

use serde::Serialize;

use super::categories::CategoryInfo;
use crate::{
    capability::{Capability, Category},
    event::{
        DeviceOp, HostSource, HostVia, LossReason, Phase, PhaseReason, Proto, Scope, StopReason,
    },
    geo::SourceInfo,
    session::TargetSpec,
};

mod accumulate;
mod build;
mod findings;

#[cfg(test)]
pub use build::build;
pub use build::{Builder, Context};

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
    pub stop_reason: Option<StopReason>,
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
    pub lost_by_reason: BTreeMap<LossReason, u64>,
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
    /// The destination's name (docs/events.md `host`), shown before the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_source: Option<HostSource>,
    /// With `host_source: dns`: a resolver process's answer, not the app's own (`host_via`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_via: Option<HostVia>,
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
    /// Destination names connected to in this phase, with their connects.
    pub hosts: BTreeMap<String, u64>,
    /// Names looked up in this phase (DNS queries, dnsproxyd requests).
    pub dns_lookups: Vec<String>,
    pub file_opens: u64,
    pub files_read: u64,
    pub bytes_read: u64,
    pub camera: u64,
    pub microphone: u64,
    /// One count per Android-service capability (`location`, `device_identifier`,
    /// `clipboard`, ...: every capability of category `Services`, zero included), as fields
    /// beside `camera` and `microphone`.
    #[serde(flatten)]
    pub services: BTreeMap<Capability, u64>,
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
        // Android services asked over binder lead: "read the clipboard 3 times after close".
        let services = Capability::ALL
            .into_iter()
            .filter(|c| c.spec().category == Category::Services);
        let others = Capability::ALL
            .into_iter()
            .filter(|c| c.spec().category != Category::Services);
        for cap in services.chain(others) {
            let found: Vec<&Finding> = self.findings.iter().filter(|f| f.kind == cap).collect();
            if found.is_empty() {
                continue;
            }
            parts.push(match cap.spec().category {
                Category::Network => destinations_words(&found),
                Category::Services => {
                    let when = |phase: Phase, words: &str| {
                        let n: u64 = found
                            .iter()
                            .filter(|f| f.phase == phase)
                            .map(|f| f.seen.count)
                            .sum();
                        (n > 0).then(|| {
                            format!(
                                "{} {n} time{} {words}",
                                cap.action(),
                                if n == 1 { "" } else { "s" }
                            )
                        })
                    };
                    [
                        when(Phase::Closed, "after close"),
                        when(Phase::Background, "in the background"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ")
                }
                Category::Devices => {
                    let n: u64 = found
                        .iter()
                        .map(|f| f.seen.count)
                        .fold(0, u64::saturating_add);
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
    let n: u64 = connects
        .iter()
        .map(|f| f.seen.count)
        .fold(0, u64::saturating_add);
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

pub fn endpoint(c: &crate::event::Connect) -> Endpoint {
    Endpoint {
        host: c.host.clone(),
        host_source: c.host_source,
        host_via: c.host_via,
        address: c.daddr,
        port: c.dport,
        proto: c.proto,
        scope: c.scope,
        country: c.country.clone(),
        asn: c.asn,
        as_org: c.as_org.clone(),
    }
}

/// How a destination's name was learnt, as the reports show it: `dns`, `sni`, `http`, or
/// `dns via dnsproxyd` / `dns via resolver` when a resolver process's answer named it.
pub fn host_source_words(e: &Endpoint) -> Option<String> {
    let src = e.host_source?;
    Some(match e.host_via {
        Some(via) => format!("{src} via {via}"),
        None => src.to_string(),
    })
}

/// `name (address:port/proto)` when the destination has a name, else `address:port/proto`.
pub fn endpoint_label(e: &Endpoint) -> String {
    let addr = match e.address {
        IpAddr::V6(a) => format!("[{a}]:{}/{}", e.port, e.proto),
        IpAddr::V4(a) => format!("{a}:{}/{}", e.port, e.proto),
    };
    match &e.host {
        Some(h) => format!("{h} ({addr})"),
        None => addr,
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
