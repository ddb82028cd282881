//! The pass over a session's events that fills the accumulators and turns them into a
//! [`Summary`].
use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;

use super::{accumulate::*, findings::findings, *};
use crate::{
    analysis::{
        categories::{AppCategories, Categories},
        history::{Frame, PhaseTrack, format_ts, phase_of, secs},
        lifecycle::{self, PhaseEvent},
    },
    capability::{Capability, Category},
    event::{Body, Event, Phase, Scope},
    geo::SourceInfo,
    session::SessionInfo,
};

pub struct Context<'a> {
    pub dir: &'a str,
    pub info: &'a SessionInfo,
    pub geo_enriched: bool,
    pub geo_sources: Vec<SourceInfo>,
    pub geo_attribution: String,
    pub categories: &'a Categories,
}

/// The summary of events in memory (tests; the reports stream through [`Builder`]).
#[cfg(test)]
pub fn build(cx: &Context, events: &[Event]) -> Summary {
    let frame = Frame::new(cx.info, events);
    let app_of = crate::analysis::history::AppOf::new(events);
    let mut phases: BTreeMap<String, Vec<PhaseEvent>> = BTreeMap::new();
    for ev in events {
        if let Body::Phase(p) = &ev.body {
            phases
                .entry(app_of.get(ev).to_string())
                .or_default()
                .push(PhaseEvent {
                    ts: ev.ts,
                    pid: ev.pid,
                    change: p.clone(),
                });
        }
    }
    let mut b = Builder::new(frame, &phases, cx.categories);
    for ev in events {
        b.add(ev, app_of.get(ev));
    }
    b.finish(cx)
}

/// The per-app phase histories from each app's phase events (file order).
pub fn tracks(phases: &BTreeMap<String, Vec<PhaseEvent>>) -> BTreeMap<String, PhaseTrack> {
    phases
        .iter()
        .map(|(app, evs)| {
            let raw = evs.iter().map(|e| (e.ts, &e.change)).collect();
            (app.clone(), PhaseTrack::new(raw))
        })
        .collect()
}

/// The summary gathered event by event: counts per app, not events. Needs what only a whole
/// session tells (its time frame, each app's phase events), learnt before.
pub struct Builder<'c> {
    frame: Frame,
    cats: &'c Categories,
    phases: &'c BTreeMap<String, Vec<PhaseEvent>>,
    tracks: BTreeMap<String, PhaseTrack>,
    empty_track: PhaseTrack,
    apps: BTreeMap<String, AppAcc>,
    /// Looked up for every event (foldhash: see phase.rs), as are `matchers` and the marks.
    lives: foldhash::HashMap<String, lifecycle::Acc>,
    matchers: foldhash::HashMap<String, AppCategories<'c>>,
    kinds: BTreeMap<&'static str, u64>,
    markers: Vec<MarkerItem>,
    lost_in_timeline: u64,
    total: u64,
}

impl<'c> Builder<'c> {
    pub fn new(
        frame: Frame,
        phases: &'c BTreeMap<String, Vec<PhaseEvent>>,
        cats: &'c Categories,
    ) -> Builder<'c> {
        Builder {
            frame,
            cats,
            phases,
            tracks: tracks(phases),
            empty_track: PhaseTrack::new(Vec::new()),
            apps: BTreeMap::new(),
            lives: Default::default(),
            matchers: Default::default(),
            kinds: BTreeMap::new(),
            markers: Vec::new(),
            lost_in_timeline: 0,
            total: 0,
        }
    }

    /// Count one event of `app`. Returns the category of a file event (index into
    /// `Categories::all()`).
    pub fn add(&mut self, ev: &Event, app: &str) -> Option<(usize, bool)> {
        self.total += 1;
        *self.kinds.entry(ev.body.kind()).or_default() += 1;
        match self.lives.get_mut(app) {
            Some(l) => l.add(ev),
            None => {
                let track = self.tracks.get(app).unwrap_or(&self.empty_track);
                let mut l = lifecycle::Acc::new(track);
                l.add(ev);
                self.lives.insert(app.to_string(), l);
            }
        }
        let phase = phase_of(ev);
        match &ev.body {
            Body::Lost(l) => {
                self.lost_in_timeline = self.lost_in_timeline.saturating_add(l.count);
                return None;
            }
            Body::Marker(m) => {
                self.markers.push(MarkerItem {
                    ts: format_ts(&ev.ts),
                    t_s: self.frame.s(ev.ts),
                    label: m.label.clone(),
                    app: ev.app.clone(),
                });
                return None;
            }
            _ => {}
        }
        if !self.apps.contains_key(app) {
            self.apps.insert(app.to_string(), AppAcc::default());
        }
        let acc = self.apps.get_mut(app).expect("inserted above");
        if let Body::Phase(_) = &ev.body {
            return None;
        }
        acc.add(ev, phase, app, &mut self.matchers, self.cats)
    }

    pub fn finish(self, cx: &Context) -> Summary {
        let Builder {
            frame,
            phases,
            tracks,
            empty_track,
            apps,
            mut lives,
            kinds,
            markers,
            lost_in_timeline,
            total,
            ..
        } = self;
        let info = cx.info;
        let no_phases = Vec::new();
        let mut app_reports: Vec<AppReport> = apps
            .into_iter()
            .map(|(name, acc)| {
                let track = tracks.get(&name).unwrap_or(&empty_track);
                let lifecycle = lives.remove(&name).map_or_else(Vec::new, |l| {
                    l.finish(phases.get(&name).unwrap_or(&no_phases), track, frame)
                });
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
        let kinds: BTreeMap<String, u64> =
            kinds.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        let lost = &info.lost;
        let warnings = completeness_warnings(info, total);
        Summary {
            schema_version: SCHEMA_VERSION,
            generator: Generator {
                tool: "emuwatch",
                version: env!("CARGO_PKG_VERSION"),
                generated_at: format_ts(&Utc::now()),
            },
            session: session_summary(cx, frame, kinds, total),
            completeness: Completeness {
                complete: info.complete && lost.none(),
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
}

/// What the report says first when the session is not whole: paths cut, events lost or
/// undecodable, a recording that did not finish, a count that does not match.
fn completeness_warnings(info: &SessionInfo, total: u64) -> Vec<String> {
    let lost = &info.lost;
    let mut warnings = Vec::new();
    if lost.truncated_paths > 0 {
        warnings.push(format!(
            "INCOMPLETE SESSION: {} file open(s) passed a path longer than the kernel copies ({} bytes); their files are unknown (path_truncated) and may be anything, identifiers included",
            lost.truncated_paths,
            monitor_common::file::PATH_LEN - 1
        ));
    }
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
    if info.events_total != total && info.ended_at.is_some() {
        warnings.push(format!(
            "session.json counts {} events but events.jsonl holds {total}",
            info.events_total
        ));
    }
    warnings
}

/// The session's own facts, from session.json and the events counted.
fn session_summary(
    cx: &Context,
    frame: Frame,
    kinds: BTreeMap<String, u64>,
    total: u64,
) -> SessionSummary {
    let info = cx.info;
    SessionSummary {
        dir: cx.dir.to_string(),
        started_at: format_ts(&info.started_at),
        ended_at: info.ended_at.as_ref().map(format_ts),
        duration_s: secs(info.started_at, info.ended_at.unwrap_or(frame.end)),
        stop_reason: info.stop_reason,
        hostname: info.hostname.clone(),
        kernel: info.kernel.release.clone(),
        machine: info.kernel.machine.clone(),
        tool_version: info.tool_version.clone(),
        event_schema_version: info.schema_version,
        target: info.target.clone(),
        events: kinds,
        events_total: total,
    }
}

fn app_report(
    name: String,
    acc: AppAcc,
    track: &PhaseTrack,
    frame: Frame,
    cats: &Categories,
) -> AppReport {
    let findings = findings(acc.findings, track, frame);
    let phases = phase_summaries(&acc.phase_events, track, frame);
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
    let countries = countries(&destinations);
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
    let files = file_categories(acc.files, cats, frame);
    let processes = processes(acc.procs, frame);
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

/// Per phase: its spans and what happened in it.
fn phase_summaries(
    counts: &BTreeMap<Phase, PhaseCounts>,
    track: &PhaseTrack,
    frame: Frame,
) -> Vec<PhaseSummary> {
    let spans = track.spans(frame);
    [Phase::Foreground, Phase::Background, Phase::Closed]
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
            let counts = counts.get(&ph);
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
                hosts: c.hosts.clone(),
                dns_lookups: c.lookups.iter().cloned().collect(),
                file_opens: c.file_opens,
                files_read: c.files_read,
                bytes_read: c.bytes_read,
                camera: c.camera,
                microphone: c.microphone,
                services: Capability::ALL
                    .into_iter()
                    .filter(|k| k.spec().category == Category::Services)
                    .map(|k| (k, c.services.get(&k).copied().unwrap_or(0)))
                    .collect(),
                processes: c.pids.len() as u64,
            })
        })
        .collect()
}

/// Public destinations by country, the most connects first.
fn countries(destinations: &[Destination]) -> Vec<CountryRow> {
    let mut countries: BTreeMap<Option<String>, (u64, u64, BTreeSet<u32>)> = BTreeMap::new();
    for d in destinations
        .iter()
        .filter(|d| d.endpoint.scope == Some(Scope::Public))
    {
        let row = countries.entry(d.endpoint.country.clone()).or_default();
        row.0 = row.0.saturating_add(d.seen.count);
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
    countries
}

/// File accesses by category, the most bytes first within each.
fn file_categories(
    files: BTreeMap<Option<String>, FileAcc>,
    cats: &Categories,
    frame: Frame,
) -> Vec<FileCategory> {
    let mut by_cat: BTreeMap<usize, Vec<FileAcc>> = BTreeMap::new();
    for f in files.into_values() {
        by_cat.entry(f.category).or_default().push(f);
    }
    by_cat
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
                opens: list.iter().map(|f| f.opens).fold(0, u64::saturating_add),
                failed_opens: list
                    .iter()
                    .map(|f| f.failed_opens)
                    .fold(0, u64::saturating_add),
                bytes_read: list.iter().map(|f| f.bytes).fold(0, u64::saturating_add),
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
        .collect()
}

fn processes(procs: BTreeMap<u32, ProcAcc>, frame: Frame) -> Vec<ProcessSummary> {
    let mut processes: Vec<ProcessSummary> = procs
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
    processes
}
