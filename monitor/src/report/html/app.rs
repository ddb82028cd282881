//! One app's section of the page: its findings, timeline, phases, lifecycle, destinations,
//! devices, files and processes, each laid out by its own function.
use super::{cells::*, *};
use crate::analysis::summary::host_source_words;

/// Rows per file category in the page (the JSON report has every path).
pub(super) const MAX_FILE_ROWS: usize = 500;

pub(super) fn app_section(
    o: &mut String,
    idx: usize,
    a: &AppReport,
    timeline_svg: &str,
    lanes_hidden: usize,
    cats: &[CategoryInfo],
) {
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
    let _ = write!(
        o,
        r#"<section class="app" id="app-{idx}"><h2>App <code>{}</code></h2><p class="headline{}">{}</p>"#,
        t(&a.app),
        if a.findings.is_empty() { "" } else { " alert" },
        t(&a.headline())
    );

    let countries = country_names(a);
    let sensitive_files: u64 = a
        .files
        .iter()
        .filter(|c| c.sensitive)
        .map(|c| c.paths)
        .fold(0, u64::saturating_add);
    let devices: u64 = a
        .devices
        .iter()
        .map(|d| d.seen.count)
        .fold(0, u64::saturating_add);
    let _ = write!(
        o,
        r#"<div class="cards"><div class="card{alert}"><div class="n">{nf}</div><div class="l">background-collection findings ({bg} in background, {closed} after close)</div></div><div class="card"><div class="n">{nd}</div><div class="l">destinations{cs}</div></div><div class="card{dev_alert}"><div class="n">{devices}</div><div class="l">camera / microphone / Android-service accesses</div></div><div class="card"><div class="n">{sensitive_files}</div><div class="l">files in sensitive categories</div></div></div>"#,
        alert = if a.findings.is_empty() { "" } else { " alert" },
        nf = a.findings.len(),
        nd = a.destinations.len(),
        cs = if countries.is_empty() {
            String::new()
        } else {
            format!(" · countries {}", countries.join(", "))
        },
        dev_alert = if devices > 0 { " alert" } else { "" },
    );

    o.push_str("<h3>Background collection</h3>");
    findings_table(o, &a.findings);
    timeline(o, timeline_svg, lanes_hidden);
    phases(o, a);
    lifecycle(o, a);
    destinations(o, a);
    device_accesses(o, a);
    files(o, a, cats);
    processes(o, a);
}

/// The SVG timeline with its legend.
fn timeline(o: &mut String, timeline_svg: &str, lanes_hidden: usize) {
    o.push_str("<h3>Timeline</h3>");
    let _ = write!(
        o,
        r#"<div class="tl-wrap">{timeline_svg}</div><div class="legend">"#
    );
    for k in MarkKind::all() {
        let _ = write!(
            o,
            r#"<span><i class="{}"></i>{}</span>"#,
            k.class(),
            k.label()
        );
    }
    o.push_str(r#"<span><i style="background:var(--ph-fg)"></i>foreground</span><span><i style="background:var(--ph-bg)"></i>background</span><span><i style="background:var(--ph-closed)"></i>closed</span><span><i style="background:#16a34a"></i>&#9656; launch</span><span><i style="background:#dc2626"></i>&#9656; restart after close</span><span><i style="background:#2563eb"></i>&#9656; relaunch</span><span>&#10005; close</span><span>&#9711; survived the close</span></div>"#);
    if lanes_hidden > 0 {
        let _ = write!(
            o,
            r#"<p class="muted">{lanes_hidden} more processes are not drawn (see Processes).</p>"#
        );
    }
    o.push_str(r#"<p class="muted">Hover a mark for details, click it to show them below; marks a few pixels apart in one lane are merged.</p>"#);
}

/// What happened in each phase, and the phase changes.
fn phases(o: &mut String, a: &AppReport) {
    o.push_str("<h3>Phases</h3>");
    o.push_str(r#"<table><thead><tr><th>Phase</th><th>When</th><th class="num">Duration</th><th class="num">Events</th><th class="num">Connects</th><th class="num">Destinations</th><th class="num">File opens</th><th class="num">Read</th><th class="num">Camera</th><th class="num">Mic</th><th>Android services</th><th class="num">Processes</th></tr></thead><tbody>"#);
    for p in &a.phases {
        let spans: Vec<String> = p
            .spans
            .iter()
            .map(|s| format!("{}..{}", secs_text(s.start_s), secs_text(s.end_s)))
            .collect();
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{:.1} s</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td></tr>"#,
            badge_phase(p.phase),
            if spans.is_empty() {
                "-".to_string()
            } else {
                spans.join(", ")
            },
            p.duration_s,
            p.events,
            p.connects,
            p.destinations,
            p.file_opens,
            human_bytes(p.bytes_read),
            p.camera,
            p.microphone,
            t(&crate::report::services_cell(p)),
            p.processes
        );
    }
    o.push_str("</tbody></table>");
    let named: Vec<_> = a
        .phases
        .iter()
        .filter(|p| !p.hosts.is_empty() || !p.dns_lookups.is_empty())
        .collect();
    if !named.is_empty() {
        o.push_str(r#"<table class="names"><thead><tr><th>Phase</th><th>Names connected to (connects)</th><th>Names looked up</th></tr></thead><tbody>"#);
        for p in named {
            let hosts: Vec<String> = p
                .hosts
                .iter()
                .map(|(h, n)| format!(r#"<span class="mono">{}</span> ({n})"#, t(h)))
                .collect();
            let lookups: Vec<String> = p
                .dns_lookups
                .iter()
                .map(|h| format!(r#"<span class="mono">{}</span>"#, t(h)))
                .collect();
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                badge_phase(p.phase),
                if hosts.is_empty() {
                    "-".into()
                } else {
                    hosts.join(", ")
                },
                if lookups.is_empty() {
                    "-".into()
                } else {
                    lookups.join(", ")
                }
            );
        }
        o.push_str("</tbody></table>");
    }
    if !a.transitions.is_empty() {
        o.push_str(r#"<table><thead><tr><th class="num">When</th><th>Change</th><th>Reason</th></tr></thead><tbody>"#);
        for tr in &a.transitions {
            let _ = write!(
                o,
                r#"<tr><td class="num">{}</td><td>{}</td><td>{}{}</td></tr>"#,
                secs_text(tr.t_s),
                if tr.from == tr.to {
                    format!("starts in {}", badge_phase(tr.to))
                } else {
                    format!("{} &rarr; {}", badge_phase(tr.from), badge_phase(tr.to))
                },
                t(tr.reason.as_str()),
                tr.detail
                    .as_deref()
                    .map(|d| format!(": {}", t(d)))
                    .unwrap_or_default()
            );
        }
        o.push_str("</tbody></table>");
    }
}

/// Launches, closes, survivors and restarts.
fn lifecycle(o: &mut String, a: &AppReport) {
    if !a.lifecycle.is_empty() {
        o.push_str("<h3>Lifecycle</h3>");
        o.push_str(r#"<table class="lifecycle"><thead><tr><th class="num">When</th><th>What</th><th>Details</th></tr></thead><tbody>"#);
        for l in &a.lifecycle {
            let _ = write!(
                o,
                r#"<tr class="lc-{k}"><td class="num">{w}</td><td>{k}</td><td>{d}</td></tr>"#,
                w = secs_text(l.t_s),
                k = l.kind,
                d = t(&l.text)
            );
        }
        o.push_str("</tbody></table>");
    }
}

/// Every destination, first seen first.
fn destinations(o: &mut String, a: &AppReport) {
    let _ = write!(o, "<h3>Destinations ({})</h3>", a.destinations.len());
    if a.destinations.is_empty() {
        o.push_str(r#"<p class="none">No connects.</p>"#);
    } else {
        o.push_str(r#"<table><thead><tr><th>Name</th><th>Address</th><th class="num">Port</th><th>Proto</th><th>Country</th><th>ASN</th><th>Organisation</th><th class="num">Count</th><th>Phases</th><th class="num">First</th><th class="num">Last</th><th>Result</th></tr></thead><tbody>"#);
        for d in &a.destinations {
            let e = &d.endpoint;
            let _ = write!(
                o,
                r#"<tr><td class="mono">{}</td><td class="mono">{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                match (&e.host, host_source_words(e)) {
                    (Some(h), Some(src)) =>
                        format!(r#"{} <span class="muted">({})</span>"#, t(h), t(&src)),
                    (Some(h), None) => t(h),
                    _ => r#"<span class="muted">-</span>"#.into(),
                },
                e.address,
                e.port,
                t(e.proto.as_str()),
                country_cell(e),
                e.asn
                    .map(|n| format!("AS{n}"))
                    .unwrap_or_else(|| r#"<span class="muted">-</span>"#.into()),
                opt(e.as_org.as_deref()),
                d.seen.count,
                phases_cell(&d.seen),
                secs_text(d.seen.first_s),
                secs_text(d.seen.last_s),
                results_cell(&d.results)
            );
        }
        o.push_str("</tbody></table>");
    }
}

/// Camera and microphone accesses, and Android services asked over binder.
fn device_accesses(o: &mut String, a: &AppReport) {
    o.push_str("<h3>Camera, microphone and Android services</h3>");
    if a.devices.is_empty() {
        o.push_str(r#"<p class="none">No camera, microphone or Android-service access.</p>"#);
    } else {
        o.push_str(r#"<table><thead><tr><th>Device</th><th>Path</th><th>Operations</th><th class="num">Count</th><th>Phases</th><th class="num">First</th><th class="num">Last</th><th>Processes</th><th>Result</th></tr></thead><tbody>"#);
        for d in &a.devices {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td class="path mono">{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
                d.kind,
                opt(d.path.as_deref()),
                d.ops
                    .iter()
                    .map(|x| t(x.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
                d.seen.count,
                phases_cell(&d.seen),
                secs_text(d.seen.first_s),
                secs_text(d.seen.last_s),
                procs_cell(&d.seen),
                results_cell(&d.results)
            );
        }
        o.push_str("</tbody></table>");
    }
}

/// File accesses by category (at most `MAX_FILE_ROWS` paths each).
fn files(o: &mut String, a: &AppReport, cats: &[CategoryInfo]) {
    o.push_str("<h3>Files by category</h3>");
    if a.files.is_empty() {
        o.push_str(r#"<p class="none">No file opens or reads.</p>"#);
    }
    for c in &a.files {
        let desc = cats
            .iter()
            .find(|i| i.name == c.category)
            .map(|i| i.description.as_str())
            .unwrap_or("");
        let flag = if c.sensitive {
            r#" <span class="badge sens">sensitive</span>"#
        } else if c.noise {
            r#" <span class="badge noise">noise</span>"#
        } else {
            ""
        };
        let head = format!(
            r#"<b>{}</b>{flag} — {} path{}, {} open{}{}, {} read <span class="muted">{}</span>"#,
            t(&c.category),
            c.paths,
            if c.paths == 1 { "" } else { "s" },
            c.opens,
            if c.opens == 1 { "" } else { "s" },
            if c.failed_opens > 0 {
                format!(" ({} failed)", c.failed_opens)
            } else {
                String::new()
            },
            human_bytes(c.bytes_read),
            esc(desc)
        );
        let _ = write!(
            o,
            "<details{}><summary>{head}</summary>",
            if c.noise { "" } else { " open" }
        );
        o.push_str(r#"<table><thead><tr><th>Path</th><th class="num">Opens</th><th class="num">Failed</th><th class="num">Read</th><th class="num">Read calls</th><th>Phases</th><th class="num">First</th><th class="num">Last</th><th>Processes</th></tr></thead><tbody>"#);
        for f in c.files.iter().take(MAX_FILE_ROWS) {
            let _ = write!(
                o,
                r#"<tr><td class="path mono">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                opt(f.path.as_deref()),
                f.opens,
                f.failed_opens,
                human_bytes(f.bytes_read),
                f.read_calls,
                phases_cell(&f.seen),
                secs_text(f.seen.first_s),
                secs_text(f.seen.last_s),
                procs_cell(&f.seen)
            );
        }
        o.push_str("</tbody></table>");
        if c.files.len() > MAX_FILE_ROWS {
            let _ = write!(
                o,
                r#"<p class="muted">{} more paths in this category: see the JSON report.</p>"#,
                c.files.len() - MAX_FILE_ROWS
            );
        }
        o.push_str("</details>");
    }
}

/// Every process of the app; closes the section.
fn processes(o: &mut String, a: &AppReport) {
    let _ = write!(o, "<h3>Processes ({})</h3>", a.processes.len());
    o.push_str(r#"<table><thead><tr><th class="num">PID</th><th class="num">PPID</th><th class="num">UID</th><th>Name</th><th>Exec</th><th class="num">First</th><th class="num">Last</th><th>End</th><th class="num">Events</th><th>Phases</th></tr></thead><tbody>"#);
    for p in &a.processes {
        let phases: Vec<String> = p
            .by_phase
            .iter()
            .map(|(ph, n)| {
                format!(
                    r#"<span class="badge {}">{} {n}</span>"#,
                    ph.as_str(),
                    ph.as_str()
                )
            })
            .collect();
        let _ = write!(
            o,
            r#"<tr><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="mono">{}</td><td class="path mono">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            p.pid,
            p.ppid,
            p.uid,
            p.comms.iter().map(|c| t(c)).collect::<Vec<_>>().join(", "),
            opt(p.exec.last().map(String::as_str)),
            secs_text(p.first_s),
            secs_text(p.last_s),
            match (p.exit_code, p.signal) {
                (_, Some(s)) => format!("signal {s}"),
                (Some(c), None) => format!("exit {c}"),
                (None, None) => r#"<span class="muted">no exit seen</span>"#.into(),
            },
            p.events,
            phases.join(" ")
        );
    }
    o.push_str("</tbody></table></section>");
}
