//! The terminal report. Every string that came from the monitored app (paths, process names,
//! app names, labels) goes through `escape`, so it cannot move the cursor, change colours or
//! fake report lines.
use std::fmt::Write;

use crate::{
    analysis::summary::{AppReport, Endpoint, Finding, Occurrence, Summary, human_bytes},
    escape::{ellipsize, escape},
    event::{Phase, Scope},
};

fn phase_short(p: Phase) -> &'static str {
    match p {
        Phase::Foreground => "fg",
        Phase::Background => "bg",
        Phase::Closed => "closed",
    }
}

pub fn phases_text(o: &Occurrence) -> String {
    o.by_phase
        .iter()
        .map(|(p, n)| format!("{} {n}", phase_short(*p)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn procs_text(o: &Occurrence) -> String {
    let pids: Vec<String> = o.pids.iter().take(4).map(|p| p.to_string()).collect();
    let comms: Vec<String> = o.comms.iter().take(3).map(|c| escape(c)).collect();
    let more = if o.pids.len() > 4 {
        format!(" +{}", o.pids.len() - 4)
    } else {
        String::new()
    };
    format!("{}{} ({})", pids.join(","), more, comms.join(","))
}

fn results_text(r: &std::collections::BTreeMap<String, u64>) -> String {
    if r.len() == 1 && r.contains_key("ok") {
        return "ok".into();
    }
    r.iter()
        .map(|(k, n)| format!("{} {n}", escape(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name (source)` of a destination, `-` without one.
fn host_cell(e: &Endpoint) -> String {
    match (&e.host, e.host_source) {
        (Some(h), Some(s)) => format!("{} ({s})", escape(h)),
        (Some(h), None) => escape(h),
        _ => "-".into(),
    }
}

fn geo_cells(e: &Endpoint) -> (String, String, String) {
    let country = e
        .country
        .as_deref()
        .map(escape)
        .unwrap_or_else(|| match e.scope {
            Some(Scope::Public) | None => "-".into(),
            Some(s) => format!("({s})"),
        });
    let asn = e
        .asn
        .map(|n| format!("AS{n}"))
        .unwrap_or_else(|| "-".into());
    let org = e
        .as_org
        .as_deref()
        .map(escape)
        .unwrap_or_else(|| "-".into());
    (country, asn, org)
}

/// An RFC 3339 time for people: `2026-11-20 10:00:00.000 UTC`.
pub fn pretty_ts(s: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S%.3f UTC")
                .to_string()
        })
        .unwrap_or_else(|_| escape(s))
}

pub fn secs_text(s: f64) -> String {
    format!("+{s:.3}s")
}

fn after_text(f: &Finding) -> String {
    let mut parts = Vec::new();
    if let Some(c) = f.after_closed_s {
        parts.push(format!("{c:.1} s after close"));
    }
    if let Some(l) = f.after_left_foreground_s {
        parts.push(format!("{l:.1} s after leaving the foreground"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// A plain table: left-aligned columns (right-aligned where `right`), cells already escaped.
fn table(
    out: &mut String,
    indent: &str,
    headers: &[&str],
    right: &[usize],
    rows: &[Vec<String>],
    max: usize,
) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| ellipsize(c, max)).collect())
        .collect();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |out: &mut String, r: &[String]| {
        let mut l = String::from(indent);
        for (i, c) in r.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            if right.contains(&i) {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                if i + 1 < r.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < r.len() {
                l.push_str("  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(
        out,
        &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    );
    for r in &cells {
        line(out, r);
    }
}

pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    let title = format!("emuwatch report: {}", escape(&s.session.dir));
    let _ = writeln!(o, "{title}\n{}", "=".repeat(title.chars().count().min(100)));
    for w in &s.completeness.warnings {
        let _ = writeln!(o, "!! {}", escape(w));
    }
    if !s.completeness.warnings.is_empty() {
        o.push('\n');
    }
    let ss = &s.session;
    let _ = writeln!(
        o,
        "Session     started {}, {:.1} s{}",
        pretty_ts(&ss.started_at),
        ss.duration_s,
        match (&ss.ended_at, &ss.stop_reason) {
            (Some(_), Some(r)) => format!(", stopped: {r}"),
            (Some(_), None) => String::new(),
            (None, _) => ", NOT FINISHED".to_string(),
        }
    );
    let _ = writeln!(
        o,
        "Recorded    on {} (Linux {} {}), emuwatch {}, event schema {}",
        escape(&ss.hostname),
        escape(&ss.kernel),
        escape(&ss.machine),
        escape(&ss.tool_version),
        ss.event_schema_version
    );
    let kinds: Vec<String> = ss
        .events
        .iter()
        .map(|(k, n)| format!("{} {n}", escape(k)))
        .collect();
    let _ = writeln!(
        o,
        "Events      {}{}",
        ss.events_total,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(": {}", kinds.join(", "))
        }
    );
    let c = &s.completeness;
    let _ = writeln!(
        o,
        "Lost        {}{}",
        c.lost_total,
        if c.complete {
            " (complete: every event the probes produced is here)".to_string()
        } else {
            let reasons: Vec<String> = c
                .lost_by_reason
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            format!(
                " ({}undecodable {}) - INCOMPLETE",
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!("{}; ", reasons.join(", "))
                },
                c.undecodable
            )
        }
    );
    if s.geo.sources.is_empty() {
        let _ = writeln!(
            o,
            "Geo         no GeoIP database: countries and ASNs as recorded (see docs/geo.md)"
        );
    } else {
        let srcs: Vec<String> = s
            .geo
            .sources
            .iter()
            .map(|g| {
                format!(
                    "{} {}{}",
                    g.role,
                    escape(&g.path.display().to_string()),
                    g.database_type
                        .as_deref()
                        .map(|t| format!(" ({})", escape(t)))
                        .unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(o, "Geo         {}", srcs.join("; "));
        let _ = writeln!(o, "Geo data    {}", escape(&s.geo.attribution));
    }
    let _ = writeln!(o, "Categories  {}", escape(&s.categories.source));
    if !s.markers.is_empty() {
        let m: Vec<String> = s
            .markers
            .iter()
            .map(|m| format!("{} {}", secs_text(m.t_s), escape(&m.label)))
            .collect();
        let _ = writeln!(o, "Markers     {}", m.join(", "));
    }
    let _ = writeln!(o, "Times       +s = seconds since the session started");

    if s.apps.is_empty() {
        let _ = writeln!(o, "\nNo events from any app in this session.");
    } else {
        let _ = writeln!(o, "\nSummary");
        for a in &s.apps {
            let _ = writeln!(o, "  {}: {}", escape(&a.app), escape(&a.headline()));
        }
    }
    for app in &s.apps {
        render_app(&mut o, app);
    }
    o
}

fn render_app(o: &mut String, a: &AppReport) {
    let head = format!("App {}", escape(&a.app));
    let _ = writeln!(o, "\n{head}\n{}", "-".repeat(head.chars().count().min(100)));

    app_findings(o, a);
    app_phases(o, a);
    app_lifecycle(o, a);
    app_destinations(o, a);
    app_devices(o, a);
    app_files(o, a);
    app_processes(o, a);
}

/// Background collection first (the headline), then every finding.
fn app_findings(o: &mut String, a: &AppReport) {
    // Background collection first: it is the headline.
    let bg = a
        .findings
        .iter()
        .filter(|f| f.phase == Phase::Background)
        .count();
    let closed = a
        .findings
        .iter()
        .filter(|f| f.phase == Phase::Closed)
        .count();
    if a.findings.is_empty() {
        let _ = writeln!(
            o,
            "BACKGROUND COLLECTION: none (nothing was recorded while the app was in background or closed)"
        );
    } else {
        let _ = writeln!(
            o,
            "BACKGROUND COLLECTION: {} finding{} ({bg} while in background, {closed} after close)",
            a.findings.len(),
            if a.findings.len() == 1 { "" } else { "s" }
        );
        for (i, f) in a.findings.iter().enumerate() {
            let _ = writeln!(
                o,
                "{:>3}. [{}] {}  x{}",
                i + 1,
                f.phase.as_str(),
                escape(&f.what),
                f.seen.count
            );
            let res = if f.results.is_empty() {
                String::new()
            } else {
                format!("; result {}", results_text(&f.results))
            };
            let _ = writeln!(
                o,
                "     first {}{}, last {}; pid {}{res}",
                secs_text(f.seen.first_s),
                after_text(f),
                secs_text(f.seen.last_s),
                procs_text(&f.seen)
            );
        }
    }
}

/// The phase table, the names per phase and the transitions.
fn app_phases(o: &mut String, a: &AppReport) {
    let _ = writeln!(o, "\nPhases");
    let rows: Vec<Vec<String>> = a
        .phases
        .iter()
        .map(|p| {
            let spans: Vec<String> = p
                .spans
                .iter()
                .map(|s| format!("{}..{}", secs_text(s.start_s), secs_text(s.end_s)))
                .collect();
            vec![
                p.phase.as_str().to_string(),
                if spans.is_empty() {
                    "-".into()
                } else {
                    spans.join(" ")
                },
                format!("{:.1} s", p.duration_s),
                p.events.to_string(),
                p.connects.to_string(),
                p.destinations.to_string(),
                p.file_opens.to_string(),
                human_bytes(p.bytes_read),
                p.camera.to_string(),
                p.microphone.to_string(),
                super::services_cell(p),
                p.processes.to_string(),
            ]
        })
        .collect();
    table(
        o,
        "  ",
        &[
            "phase", "when", "duration", "events", "connects", "dests", "opens", "read", "camera",
            "mic", "services", "procs",
        ],
        &[2, 3, 4, 5, 6, 7, 8, 9, 11],
        &rows,
        60,
    );
    for p in &a.phases {
        if p.hosts.is_empty() && p.dns_lookups.is_empty() {
            continue;
        }
        let hosts: Vec<String> = p
            .hosts
            .iter()
            .map(|(h, n)| format!("{} ({n})", escape(h)))
            .collect();
        let _ = writeln!(
            o,
            "  names {}: {}{}",
            p.phase.as_str(),
            if hosts.is_empty() {
                "-".to_string()
            } else {
                hosts.join(", ")
            },
            if p.dns_lookups.is_empty() {
                String::new()
            } else {
                format!(
                    "; looked up: {}",
                    p.dns_lookups
                        .iter()
                        .map(|n| escape(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    for t in &a.transitions {
        let _ = writeln!(
            o,
            "  {} {} ({}{})",
            secs_text(t.t_s),
            t.change_text(),
            t.reason,
            t.detail
                .as_deref()
                .map(|d| format!(": {}", escape(d)))
                .unwrap_or_default()
        );
    }
}

/// Launches, closes, survivors and restarts.
fn app_lifecycle(o: &mut String, a: &AppReport) {
    if !a.lifecycle.is_empty() {
        let _ = writeln!(o, "\nLifecycle");
        for l in &a.lifecycle {
            let _ = writeln!(
                o,
                "  {} {:<9} {}",
                secs_text(l.t_s),
                l.kind,
                escape(&l.text)
            );
        }
    }
}

/// Destinations, names first, and the countries of public ones.
fn app_destinations(o: &mut String, a: &AppReport) {
    let _ = writeln!(o, "\nDestinations ({})", a.destinations.len());
    if a.destinations.is_empty() {
        let _ = writeln!(o, "  none");
    } else {
        let rows: Vec<Vec<String>> = a
            .destinations
            .iter()
            .map(|d| {
                let (country, asn, org) = geo_cells(&d.endpoint);
                vec![
                    host_cell(&d.endpoint),
                    d.endpoint.address.to_string(),
                    d.endpoint.port.to_string(),
                    d.endpoint.proto.to_string(),
                    country,
                    asn,
                    org,
                    d.seen.count.to_string(),
                    phases_text(&d.seen),
                    secs_text(d.seen.first_s),
                    secs_text(d.seen.last_s),
                    results_text(&d.results),
                ]
            })
            .collect();
        table(
            o,
            "  ",
            &[
                "name",
                "address",
                "port",
                "proto",
                "country",
                "ASN",
                "organisation",
                "count",
                "phases",
                "first",
                "last",
                "result",
            ],
            &[2, 7],
            &rows,
            40,
        );
        if !a.countries.is_empty() {
            let cs: Vec<String> = a
                .countries
                .iter()
                .map(|c| {
                    format!(
                        "{} {} connect{} to {} destination{}",
                        c.country
                            .as_deref()
                            .map(escape)
                            .unwrap_or_else(|| "unknown".into()),
                        c.connects,
                        if c.connects == 1 { "" } else { "s" },
                        c.destinations,
                        if c.destinations == 1 { "" } else { "s" }
                    )
                })
                .collect();
            let _ = writeln!(o, "  Countries (public destinations): {}", cs.join("; "));
        }
    }
}

/// Camera, microphone and Android-service accesses.
fn app_devices(o: &mut String, a: &AppReport) {
    let _ = writeln!(o, "\nCamera, microphone and Android services");
    if a.devices.is_empty() {
        let _ = writeln!(o, "  none");
    } else {
        let rows: Vec<Vec<String>> = a
            .devices
            .iter()
            .map(|d| {
                vec![
                    d.kind.to_string(),
                    escape(d.path.as_deref().unwrap_or("(unknown)")),
                    d.ops
                        .iter()
                        .map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    d.seen.count.to_string(),
                    phases_text(&d.seen),
                    secs_text(d.seen.first_s),
                    secs_text(d.seen.last_s),
                    results_text(&d.results),
                    procs_text(&d.seen),
                ]
            })
            .collect();
        table(
            o,
            "  ",
            &[
                "device", "path", "ops", "count", "phases", "first", "last", "result", "pids",
            ],
            &[3],
            &rows,
            60,
        );
    }
}

/// Files by category.
fn app_files(o: &mut String, a: &AppReport) {
    let _ = writeln!(o, "\nFiles by category");
    if a.files.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for c in &a.files {
        let _ = writeln!(
            o,
            "  {}{}: {} path{}, {} open{}{}, {} read",
            escape(&c.category),
            if c.sensitive {
                " (sensitive)"
            } else if c.noise {
                " (noise)"
            } else {
                ""
            },
            c.paths,
            if c.paths == 1 { "" } else { "s" },
            c.opens,
            if c.opens == 1 { "" } else { "s" },
            if c.failed_opens > 0 {
                format!(" ({} failed)", c.failed_opens)
            } else {
                String::new()
            },
            human_bytes(c.bytes_read)
        );
        let shown = if c.noise { 0 } else { c.files.len().min(50) };
        let rows: Vec<Vec<String>> = c.files[..shown]
            .iter()
            .map(|f| {
                vec![
                    escape(f.path.as_deref().unwrap_or("(unknown path)")),
                    f.opens.to_string(),
                    f.failed_opens.to_string(),
                    human_bytes(f.bytes_read),
                    phases_text(&f.seen),
                    secs_text(f.seen.first_s),
                    secs_text(f.seen.last_s),
                ]
            })
            .collect();
        if !rows.is_empty() {
            table(
                o,
                "    ",
                &["path", "opens", "failed", "read", "phases", "first", "last"],
                &[1, 2, 3],
                &rows,
                70,
            );
        }
        if shown < c.files.len() {
            let _ = writeln!(
                o,
                "    ... {} more path{} (full list: --format json or html)",
                c.files.len() - shown,
                if c.files.len() - shown == 1 { "" } else { "s" }
            );
        }
    }
}

/// The app's processes.
fn app_processes(o: &mut String, a: &AppReport) {
    let _ = writeln!(o, "\nProcesses ({})", a.processes.len());
    let rows: Vec<Vec<String>> = a
        .processes
        .iter()
        .map(|p| {
            vec![
                p.pid.to_string(),
                p.ppid.to_string(),
                p.uid.to_string(),
                p.comms
                    .iter()
                    .map(|c| escape(c))
                    .collect::<Vec<_>>()
                    .join(","),
                p.exec
                    .last()
                    .map(|e| escape(e))
                    .unwrap_or_else(|| "-".into()),
                secs_text(p.first_s),
                secs_text(p.last_s),
                match (p.exit_code, p.signal) {
                    (_, Some(s)) => format!("signal {s}"),
                    (Some(c), None) => format!("exit {c}"),
                    (None, None) => "-".into(),
                },
                p.events.to_string(),
                p.by_phase
                    .iter()
                    .map(|(ph, n)| format!("{} {n}", phase_short(*ph)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    table(
        o,
        "  ",
        &[
            "pid", "ppid", "uid", "comm", "exec", "first", "last", "end", "events", "phases",
        ],
        &[0, 1, 2, 8],
        &rows,
        50,
    );
}
