//! The timeline picture of one app as inline SVG: one lane per process (pid + comm), the
//! app's phases shaded behind the lanes, events as marks coloured by kind. Each mark has an
//! SVG `<title>` (shown on hover; the page's script shows it in a panel on click). Marks that
//! fall on the same few pixels of one lane are merged into one mark, so the picture stays small
//! for any session length.
use std::{collections::BTreeMap, fmt::Write};

pub use crate::analysis::marks::MarkKind;

use super::text::secs_text;
use crate::{
    analysis::{
        categories::CategoryInfo,
        history::Frame,
        lifecycle::LifecycleKind,
        marks::{AppMarks, Bucket, PLOT_W, WIDTH, X0, per_mark, x_of},
        summary::{AppReport, MarkerItem, ProcessSummary, human_bytes},
    },
    capability::Category,
    escape::{ellipsize, esc, escape},
    event::{Body, Event, Phase, ProcOp},
};

const TOP: f64 = 40.0;
const LANE_H: f64 = 28.0;
pub use crate::analysis::marks::MAX_LANES;

impl MarkKind {
    pub fn class(self) -> &'static str {
        match self {
            MarkKind::Capability(c) => c.spec().mark_class,
            MarkKind::File => "k-file",
            MarkKind::Process => "k-proc",
            MarkKind::State => "k-state",
        }
    }

    /// The shape, centred on (x, y).
    pub fn shape(self, x: f64, y: f64) -> String {
        match self {
            MarkKind::Capability(c) if c.spec().category == Category::Network => {
                format!(r#"<circle cx="{x:.1}" cy="{:.1}" r="4.5"/>"#, y - 5.0)
            }
            MarkKind::Capability(c) if c.spec().category != Category::Files => {
                let y = y - 5.0;
                format!(
                    r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
                    x,
                    y - 6.5,
                    x + 6.5,
                    y,
                    x,
                    y + 6.5,
                    x - 6.5,
                    y
                )
            }
            MarkKind::File => format!(
                r#"<rect x="{:.1}" y="{:.1}" width="3" height="9" rx="1"/>"#,
                x - 1.5,
                y + 1.0
            ),
            MarkKind::Capability(_) => {
                format!(
                    r#"<rect x="{:.1}" y="{:.1}" width="5" height="11" rx="1"/>"#,
                    x - 2.5,
                    y
                )
            }
            MarkKind::Process => {
                format!(
                    r#"<rect x="{:.1}" y="{:.1}" width="2" height="20"/>"#,
                    x - 1.0,
                    y - 10.0
                )
            }
            MarkKind::State => format!(r#"<circle cx="{x:.1}" cy="{:.1}" r="2.5"/>"#, y + 9.0),
        }
    }
}

pub fn phase_class(p: Phase) -> &'static str {
    match p {
        Phase::Foreground => "ph-fg",
        Phase::Background => "ph-bg",
        Phase::Closed => "ph-closed",
    }
}

/// Seconds between axis ticks: a round step giving at most about 10 ticks.
fn tick_step(duration: f64) -> f64 {
    const STEPS: [f64; 22] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ];
    STEPS
        .into_iter()
        .find(|s| duration / s <= 10.0)
        .unwrap_or((duration / 10.0 / 3600.0).ceil() * 3600.0)
}

fn tick_label(s: f64, step: f64) -> String {
    if step >= 60.0 {
        format!(
            "+{}:{:02}",
            (s / 60.0).floor() as u64,
            (s % 60.0).round() as u64
        )
    } else if step >= 1.0 {
        format!("+{s:.0}s")
    } else {
        let digits = (-step.log10()).ceil() as usize;
        format!("+{s:.digits$}s")
    }
}

/// One line describing an event for the mark's tooltip; every app string escaped.
fn describe(ev: &Event, t_s: f64, category: Option<&str>) -> String {
    let what = match &ev.body {
        Body::Http(h) => format!(
            "http {} {}{}{} ({}:{})",
            escape(&h.method),
            h.host.as_deref().map(escape).unwrap_or_default(),
            escape(&h.path),
            if h.path_truncated { "..." } else { "" },
            h.daddr,
            h.dport
        ),
        Body::Tls(t) => format!(
            "tls {} ({}:{}, {})",
            t.sni
                .as_deref()
                .map(escape)
                .unwrap_or_else(|| format!("(server name {})", t.sni_status)),
            t.daddr,
            t.dport,
            t.versions.join("/")
        ),
        Body::Dns(d) => format!(
            "dns {} {} {}{}",
            d.dir,
            d.qtype.as_deref().map(escape).unwrap_or_default(),
            d.name.as_deref().map(escape).unwrap_or_default(),
            d.result
                .as_deref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        ),
        Body::Connect(c) => connect_words(c),
        Body::FileOpen(o) => format!(
            "open {}{}{}",
            escape(o.path.as_deref().unwrap_or("(unknown path)")),
            category
                .map(|c| format!(" [{}]", escape(c)))
                .unwrap_or_default(),
            o.error
                .as_deref()
                .map(|e| format!(" {}", escape(e)))
                .unwrap_or_default()
        ),
        Body::FileRead(r) => format!(
            "read {} {} in {} calls{}",
            escape(r.path.as_deref().unwrap_or("(unknown path)")),
            human_bytes(r.bytes),
            r.reads,
            category
                .map(|c| format!(" [{}]", escape(c)))
                .unwrap_or_default()
        ),
        b if b.device().is_some() => {
            let d = b.device().expect("checked");
            format!(
                "{} {} {}{}",
                ev.body.kind(),
                d.op,
                escape(d.path.as_deref().unwrap_or("(unknown device)")),
                d.error
                    .as_deref()
                    .map(|e| format!(" {}", escape(e)))
                    .unwrap_or_default()
            )
        }
        Body::Process(p) => process_words(p),
        Body::AppState(a) => format!(
            "oom_score_adj {} ({}, {})",
            a.oom_score_adj,
            escape(&a.band),
            a.source
        ),
        other => other.kind().to_string(),
    };
    format!(
        "{} {} | pid {} {} | {}",
        secs_text(t_s),
        what,
        ev.pid,
        escape(&ev.comm),
        ev.phase.unwrap_or(Phase::Foreground).as_str()
    )
}

/// A connect: name or address, port, protocol, country, network and error.
fn connect_words(c: &crate::event::Connect) -> String {
    let mut s = match &c.host {
        Some(h) => format!("connect {} {}:{}/{}", escape(h), c.daddr, c.dport, c.proto),
        None => format!("connect {}:{}/{}", c.daddr, c.dport, c.proto),
    };
    if let Some(cc) = &c.country {
        let _ = write!(s, " {}", escape(cc));
    }
    if let Some(n) = c.asn {
        let _ = write!(s, " AS{n}");
    }
    if let Some(o) = &c.as_org {
        let _ = write!(s, " {}", escape(o));
    }
    if let Some(e) = &c.error {
        let _ = write!(s, " [{}]", escape(e));
    }
    s
}

/// A fork, exec or exit.
fn process_words(p: &crate::event::Process) -> String {
    match p.op {
        ProcOp::Fork => format!(
            "fork: child {}",
            p.child_pid.map(|c| c.to_string()).unwrap_or_default()
        ),
        ProcOp::Exec => format!("exec {}", escape(p.filename.as_deref().unwrap_or("?"))),
        ProcOp::Exit => match (p.exit_code, p.signal) {
            (_, Some(s)) => format!("exit: killed by signal {s}"),
            (c, None) => format!("exit {}", c.unwrap_or(0)),
        },
        _ => format!("{:?}", p.op).to_lowercase(),
    }
}

/// The SVG for one app from its marks; `categories` names the file categories of the marks'
/// examples.
pub fn svg(
    app: &AppReport,
    marks: Option<&AppMarks>,
    frame: Frame,
    markers: &[&MarkerItem],
    categories: &[CategoryInfo],
) -> String {
    let lanes: Vec<_> = app.processes.iter().take(MAX_LANES).collect();
    let g = Plot {
        frame,
        plot_h: lanes.len().max(1) as f64 * LANE_H,
        lane_of: lanes.iter().enumerate().map(|(i, p)| (p.pid, i)).collect(),
    };
    let height = TOP + g.plot_h + 30.0;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="Timeline of {}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(&escape(&app.app))
    );

    phase_bands(&mut o, app, &g);
    lanes_layer(&mut o, &lanes, &g);
    marks_layer(&mut o, marks, categories, &g);
    lifecycle_layer(&mut o, app, &g);
    changes_layer(&mut o, app, markers, &g);
    time_axis(&mut o, &g);
    o.push_str("</svg>");
    o
}

/// Where things go on the picture: the time frame, the plot's height and each pid's lane.
struct Plot {
    frame: Frame,
    plot_h: f64,
    lane_of: BTreeMap<u32, usize>,
}

impl Plot {
    fn x(&self, s: f64) -> f64 {
        x_of(self.frame, s)
    }
}

/// Phase bands behind everything, with a labelled strip on top.
fn phase_bands(o: &mut String, app: &AppReport, g: &Plot) {
    for p in &app.phases {
        for s in &p.spans {
            let (x1, x2) = (g.x(s.start_s), g.x(s.end_s));
            let w = (x2 - x1).max(0.5);
            let title = format!(
                "{}: {}..{}",
                p.phase.as_str(),
                secs_text(s.start_s),
                secs_text(s.end_s)
            );
            let _ = write!(
                o,
                r#"<g class="band {c}"><title>{t}</title><rect x="{x1:.1}" y="{TOP}" width="{w:.1}" height="{ph}"/><rect class="strip" x="{x1:.1}" y="{sy}" width="{w:.1}" height="12"/>"#,
                c = phase_class(p.phase),
                t = esc(&title),
                sy = TOP - 14.0,
                ph = g.plot_h,
            );
            if w > 70.0 {
                let _ = write!(
                    o,
                    r#"<text class="strip-label" x="{:.1}" y="{:.1}">{}</text>"#,
                    x1 + 5.0,
                    TOP - 5.0,
                    p.phase.as_str()
                );
            }
            o.push_str("</g>");
        }
    }
}

/// Lanes: separator, label, lifetime.
fn lanes_layer(o: &mut String, lanes: &[&ProcessSummary], g: &Plot) {
    for (i, p) in lanes.iter().enumerate() {
        let y0 = TOP + i as f64 * LANE_H;
        let cy = y0 + LANE_H / 2.0;
        let comm = p.comms.last().map(String::as_str).unwrap_or("");
        let full = format!(
            "pid {} (ppid {}, uid {}) {}{}",
            p.pid,
            p.ppid,
            p.uid,
            escape(&p.comms.join(", ")),
            p.exec
                .last()
                .map(|e| format!(" | exec {}", escape(e)))
                .unwrap_or_default()
        );
        let label = ellipsize(&format!("{} {}", p.pid, escape(comm)), 28);
        let _ = write!(
            o,
            r#"<line class="lane-sep" x1="0" y1="{y1:.1}" x2="{WIDTH}" y2="{y1:.1}"/><g class="lane-label"><title>{t}</title><text x="8" y="{ty:.1}">{l}</text></g><line class="life" x1="{a:.1}" y1="{cy:.1}" x2="{b:.1}" y2="{cy:.1}"/>"#,
            y1 = y0 + LANE_H,
            t = esc(&full),
            ty = cy + 4.0,
            l = esc(&label),
            a = g.x(p.first_s),
            b = g.x(p.last_s).max(g.x(p.first_s) + 1.0),
        );
    }
    let _ = write!(
        o,
        r#"<line class="axis" x1="{X0}" y1="{TOP}" x2="{X0}" y2="{:.1}"/>"#,
        TOP + g.plot_h
    );
}

/// Event marks, merged per lane, kind and few pixels (analysis::marks).
fn marks_layer(o: &mut String, marks: Option<&AppMarks>, categories: &[CategoryInfo], g: &Plot) {
    let mut buckets: Vec<((MarkKind, usize, i64), &Bucket)> = marks
        .map(|m| {
            m.buckets
                .iter()
                .filter_map(|((kind, pid, col), b)| Some(((*kind, *g.lane_of.get(pid)?, *col), b)))
                .collect()
        })
        .unwrap_or_default();
    buckets.sort_by_key(|b| b.0);
    // Keep the page small for big sessions: fewer example lines per mark when there are many.
    let per_mark = per_mark(buckets.len());
    for ((kind, lane, _), b) in &buckets {
        let cy = TOP + *lane as f64 * LANE_H + LANE_H / 2.0;
        let mx = g.x((b.first_s + b.last_s) / 2.0);
        let mut detail = String::new();
        if b.count > 1 {
            let _ = writeln!(
                detail,
                "{} {} events, {}..{}:",
                b.count,
                kind.label(),
                secs_text(b.first_s),
                secs_text(b.last_s)
            );
        }
        let shown: Vec<String> = b
            .examples
            .iter()
            .take(per_mark)
            .map(|(ev, cat)| {
                let cat = cat.and_then(|c| categories.get(c)).map(|c| c.name.as_str());
                describe(ev, g.frame.s(ev.ts), cat)
            })
            .collect();
        detail.push_str(&shown.join("\n"));
        if b.count as usize > shown.len() {
            let _ = write!(detail, "\n... and {} more", b.count as usize - shown.len());
        }
        let _ = write!(
            o,
            r#"<g class="mk {c}" tabindex="0"><title>{d}</title>{s}</g>"#,
            d = esc(&detail),
            c = kind.class(),
            s = kind.shape(mx, cy)
        );
    }
}

/// Lifecycle: launches, restarts and relaunches (a flag on the process's lane), closes (a
/// cross on the lane of the process whose end closed the app).
fn lifecycle_layer(o: &mut String, app: &AppReport, g: &Plot) {
    for l in &app.lifecycle {
        let (Some(pid), false) = (l.pid, l.kind == LifecycleKind::OnScreen) else {
            continue;
        };
        let Some(&lane) = g.lane_of.get(&pid) else {
            continue;
        };
        let lx = g.x(l.t_s);
        let cy = TOP + lane as f64 * LANE_H + LANE_H / 2.0;
        let shape = match l.kind {
            LifecycleKind::Close => format!(
                r#"<path d="M{a:.1},{b:.1}L{c:.1},{d:.1}M{a:.1},{d:.1}L{c:.1},{b:.1}"/>"#,
                a = lx - 5.0,
                b = cy - 5.0,
                c = lx + 5.0,
                d = cy + 5.0
            ),
            LifecycleKind::Survived => format!(r#"<circle cx="{lx:.1}" cy="{cy:.1}" r="6"/>"#),
            _ => format!(
                r#"<polygon points="{lx:.1},{:.1} {:.1},{:.1} {lx:.1},{:.1}"/>"#,
                cy - 7.0,
                lx + 8.0,
                cy - 3.5,
                cy
            ),
        };
        let _ = write!(
            o,
            r#"<g class="lc lc-{k}" tabindex="0"><title>{t}</title>{shape}</g>"#,
            k = l.kind,
            t = esc(&format!("{} {}", secs_text(l.t_s), escape(&l.text)))
        );
    }
}

/// Phase changes and markers on top of the marks.
fn changes_layer(o: &mut String, app: &AppReport, markers: &[&MarkerItem], g: &Plot) {
    for t in &app.transitions {
        let tx = g.x(t.t_s);
        let title = format!(
            "{} {} ({}{})",
            secs_text(t.t_s),
            t.change_text(),
            t.reason,
            t.detail
                .as_deref()
                .map(|d| format!(": {}", escape(d)))
                .unwrap_or_default()
        );
        let _ = write!(
            o,
            r#"<g class="change {c}"><title>{t}</title><line x1="{tx:.1}" y1="{y1:.1}" x2="{tx:.1}" y2="{y2:.1}"/></g>"#,
            c = phase_class(t.to),
            t = esc(&title),
            y1 = TOP - 16.0,
            y2 = TOP + g.plot_h,
        );
    }
    for m in markers {
        let mx = g.x(m.t_s);
        let label = ellipsize(&escape(&m.label), 24);
        let _ = write!(
            o,
            r#"<g class="marker"><title>{t}</title><line x1="{mx:.1}" y1="12" x2="{mx:.1}" y2="{y2:.1}"/><text x="{tx:.1}" y="10">{l}</text></g>"#,
            t = esc(&format!(
                "marker {}: {}",
                secs_text(m.t_s),
                escape(&m.label)
            )),
            y2 = TOP + g.plot_h,
            tx = mx + 3.0,
            l = esc(&label),
        );
    }
}

/// The time axis and its ticks.
fn time_axis(o: &mut String, g: &Plot) {
    let duration = g.frame.s(g.frame.end).max(0.001);
    let step = tick_step(duration);
    let ay = TOP + g.plot_h;
    let _ = write!(
        o,
        r#"<line class="axis" x1="{X0}" y1="{ay:.1}" x2="{:.1}" y2="{ay:.1}"/>"#,
        X0 + PLOT_W
    );
    let mut s = 0.0;
    while s <= duration + 1e-9 {
        let tx = g.x(s);
        let _ = write!(
            o,
            r#"<line class="tick" x1="{tx:.1}" y1="{ay:.1}" x2="{tx:.1}" y2="{:.1}"/><text class="tick-label" x="{tx:.1}" y="{:.1}">{}</text>"#,
            ay + 5.0,
            ay + 18.0,
            tick_label(s, step)
        );
        s += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(95.0), 10.0);
        assert_eq!(tick_step(9.0), 1.0);
        assert_eq!(tick_step(0.3), 0.05);
        assert_eq!(tick_step(3000.0), 300.0);
        assert_eq!(tick_label(70.0, 60.0), "+1:10");
        assert_eq!(tick_label(20.0, 10.0), "+20s");
        assert_eq!(tick_label(0.25, 0.05), "+0.25s");
    }
}
