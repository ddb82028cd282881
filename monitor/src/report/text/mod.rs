//! The terminal report. Every string that came from the monitored app (paths, process names,
//! app names, labels) goes through `escape`, so it cannot move the cursor, change colours or
//! fake report lines.
use std::fmt::Write;

use crate::{
    analysis::summary::{Endpoint, Finding, Occurrence, Summary, host_source_words},
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
    match (&e.host, host_source_words(e)) {
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
    session_header(&mut o, s);

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

/// What the analysis used: the GeoIP databases, the file categories, the markers.
fn sources(o: &mut String, s: &Summary) {
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
}

/// The session's facts: where and how it was recorded, what was lost, the GeoIP and
/// category sources, the markers.
fn session_header(o: &mut String, s: &Summary) {
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
    sources(o, s);
    let _ = writeln!(o, "Times       +s = seconds since the session started");
}

mod app;
use app::render_app;
