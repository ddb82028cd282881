//! One app's sections of the terminal report: findings, phases, lifecycle, destinations,
//! devices, files and processes.
use std::fmt::Write;

use super::*;
use crate::{
    analysis::summary::{AppReport, human_bytes},
    escape::escape,
    event::Phase,
};

pub(super) fn render_app(o: &mut String, a: &AppReport) {
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
                crate::report::services_cell(p),
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
