//! `--format html`: one self-contained page (inline CSS, a few lines of inline script, inline
//! SVG; nothing is fetched). Every string from the monitored app is HTML-escaped in text and in
//! attribute values (after control characters were made visible), and the script never embeds
//! event data: it only copies a mark's SVG `<title>` text into a panel with `textContent`. A
//! Content-Security-Policy forbids any fetch and any script but the page's own (by nonce).
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write,
    hash::{BuildHasher, Hasher},
};

use super::{
    text::{pretty_ts, secs_text},
    timeline::{self, MarkKind},
};
use crate::{
    analysis::{
        Analysis,
        categories::CategoryInfo,
        history::AppOf,
        summary::{AppReport, Endpoint, Finding, Occurrence, Summary, human_bytes},
    },
    escape::{esc, escape},
    event::{Phase, Scope},
};

/// Rows per file category in the page (the JSON report has every path).
const MAX_FILE_ROWS: usize = 500;

/// A string from the monitored app, for HTML: control characters visible, then escaped.
fn t(s: &str) -> String {
    esc(&escape(s))
}

fn nonce() -> String {
    // Unpredictable per page: std's RandomState is seeded from the OS.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    let a = h.finish();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

const CSS: &str = r#"
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#ffffff;--panel:#f9fafb;--accent:#1d4ed8;
--ph-fg:#dcfce7;--ph-fg-d:#15803d;--ph-bg:#fef3c7;--ph-bg-d:#b45309;--ph-closed:#fee2e2;--ph-closed-d:#b91c1c}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:20px;margin:36px 0 8px;padding-top:16px;border-top:2px solid var(--fg)}
h3{font-size:15px;margin:26px 0 8px;text-transform:uppercase;letter-spacing:.04em;color:#374151}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.sub{color:var(--muted);margin:0 0 16px}
.banner{padding:12px 16px;border-radius:8px;margin:12px 0;font-weight:600}
.banner.bad{background:#fee2e2;color:#7f1d1d;border:1px solid #fca5a5}
.banner.ok{background:#ecfdf5;color:#065f46;border:1px solid #a7f3d0}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:12px 0}
.facts dt{color:var(--muted)}.facts dd{margin:0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;margin:12px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:var(--panel)}
.card .n{font-size:26px;font-weight:700}.card .l{color:var(--muted);font-size:12.5px}
.card.alert{background:#fff7ed;border-color:#fdba74}.card.alert .n{color:#c2410c}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600;white-space:nowrap;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.path{word-break:break-all}td.what{min-width:320px;overflow-wrap:anywhere}.nowrap{white-space:nowrap}
tbody tr:nth-child(even){background:#fcfcfd}
.findings tbody tr.closed{background:#fff5f5}.findings tbody tr.background{background:#fffbeb}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap}
.badge.foreground{background:var(--ph-fg);color:var(--ph-fg-d)}
.badge.background{background:var(--ph-bg);color:var(--ph-bg-d)}
.badge.closed{background:var(--ph-closed);color:var(--ph-closed-d)}
.badge.kind{background:#e0e7ff;color:#3730a3}
.badge.sens{background:#ede9fe;color:#5b21b6}.badge.noise{background:#f3f4f6;color:var(--muted)}
.none{color:var(--muted);font-style:italic}
.muted{color:var(--muted)}
details{margin:6px 0}summary{cursor:pointer;color:#374151}
.tl-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:8px;padding:6px;background:#fff}
svg.timeline{display:block;font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .band rect{opacity:.85}svg .band.ph-fg rect{fill:var(--ph-fg)}svg .band.ph-bg rect{fill:var(--ph-bg)}svg .band.ph-closed rect{fill:var(--ph-closed)}
svg .band.ph-fg rect.strip{fill:var(--ph-fg-d)}svg .band.ph-bg rect.strip{fill:var(--ph-bg-d)}svg .band.ph-closed rect.strip{fill:var(--ph-closed-d)}
svg .strip-label{fill:#fff;font-weight:600;font-size:10px}
svg .lane-sep{stroke:#e5e7eb}svg .lane-label text{fill:#111827}svg .life{stroke:#9ca3af;stroke-width:2}
svg .axis{stroke:#6b7280}svg .tick{stroke:#6b7280}svg .tick-label{fill:#4b5563;text-anchor:middle}
svg .change line{stroke-width:2;stroke-dasharray:4 3}svg .change.ph-fg line{stroke:var(--ph-fg-d)}svg .change.ph-bg line{stroke:var(--ph-bg-d)}svg .change.ph-closed line{stroke:var(--ph-closed-d)}
svg .marker line{stroke:#374151;stroke-dasharray:2 3}svg .marker text{fill:#374151;font-size:10px}
svg .lc polygon{fill:#16a34a;stroke:#14532d;stroke-width:1}svg .lc-restart polygon{fill:#dc2626;stroke:#7f1d1d}svg .lc-relaunch polygon{fill:#2563eb;stroke:#1e3a8a}svg .lc-close path{stroke:#111827;stroke-width:2.5}svg .lc-survived circle{fill:none;stroke:#dc2626;stroke-width:2}
table.lifecycle tr.lc-restart td,table.lifecycle tr.lc-survived td{color:#991b1b}
svg .mk{cursor:pointer}svg .mk:hover,svg .mk:focus{outline:none;filter:drop-shadow(0 0 2px #111)}
.k-conn{fill:#2563eb;background:#2563eb}.k-cam{fill:#dc2626;background:#dc2626}.k-mic{fill:#ea580c;background:#ea580c}.k-sfile{fill:#7c3aed;background:#7c3aed}
.k-file{fill:#9ca3af;background:#9ca3af}.k-proc{fill:#111827;background:#111827}.k-state{fill:#0d9488;background:#0d9488}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:8px 2px;color:#374151;font-size:12.5px}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px}
#detail{position:sticky;bottom:0;margin-top:8px;background:#111827;color:#f9fafb;border-radius:8px;padding:10px 14px;white-space:pre-wrap;font:12.5px ui-monospace,Menlo,Consolas,monospace;max-height:40vh;overflow:auto}
footer{margin-top:40px;padding-top:12px;border-top:1px solid var(--line);color:var(--muted);font-size:12.5px}
footer a{color:var(--accent)}
@media print{#detail{display:none}th{position:static}}
"#;

const SCRIPT: &str = r#"
(function(){
  var panel=document.getElementById('detail');
  function show(el){var t=el.querySelector('title');panel.textContent=t?t.textContent:'';panel.hidden=false;}
  document.querySelectorAll('.mk').forEach(function(el){
    el.addEventListener('click',function(){show(el);});
    el.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();show(el);}});
  });
  document.addEventListener('keydown',function(e){if(e.key==='Escape'){panel.hidden=true;}});
  document.documentElement.setAttribute('data-ready','1');
})();
"#;

fn badge_phase(p: Phase) -> String {
    format!(r#"<span class="badge {p}">{p}</span>"#, p = p.as_str())
}

fn phases_cell(o: &Occurrence) -> String {
    o.by_phase
        .iter()
        .map(|(p, n)| {
            format!(
                r#"<span class="badge {}">{} {n}</span>"#,
                p.as_str(),
                p.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn procs_cell(o: &Occurrence) -> String {
    let mut s = o
        .pids
        .iter()
        .take(6)
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if o.pids.len() > 6 {
        let _ = write!(s, " +{}", o.pids.len() - 6);
    }
    let comms: Vec<String> = o.comms.iter().take(4).map(|c| t(c)).collect();
    format!(r#"{s} <span class="mono">{}</span>"#, comms.join(", "))
}

fn results_cell(r: &BTreeMap<String, u64>) -> String {
    if r.len() == 1 && r.contains_key("ok") {
        return "ok".into();
    }
    r.iter()
        .map(|(k, n)| format!("{} {n}", t(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt(s: Option<&str>) -> String {
    s.map(t)
        .unwrap_or_else(|| r#"<span class="muted">-</span>"#.into())
}

fn country_cell(e: &Endpoint) -> String {
    match (&e.country, e.scope) {
        (Some(c), _) => t(c),
        (None, Some(s)) if s != Scope::Public => {
            format!(r#"<span class="muted">{}</span>"#, s.as_str())
        }
        _ => r#"<span class="muted">-</span>"#.into(),
    }
}

fn after(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s"))
        .unwrap_or_else(|| r#"<span class="muted">-</span>"#.into())
}

/// The finding's subject, structured: what was touched, then what is known about it.
fn finding_what(f: &Finding) -> String {
    let target = format!(r#"<code>{}</code>"#, t(&f.target));
    match (&f.destination, &f.category) {
        (Some(e), _) => {
            let mut geo = Vec::new();
            if let Some(c) = &e.country {
                geo.push(format!("<b>{}</b>", t(c)));
            }
            if let Some(n) = e.asn {
                geo.push(format!("AS{n}"));
            }
            if let Some(o) = &e.as_org {
                geo.push(t(o));
            }
            if geo.is_empty() {
                let scope = match e.scope {
                    Some(Scope::Public) => "public, no geo data".to_string(),
                    Some(s) => s.to_string(),
                    None => "unknown scope".to_string(),
                };
                geo.push(format!(r#"<span class="muted">{scope}</span>"#));
            }
            format!("{target}<br>{}", geo.join(" · "))
        }
        (None, Some(cat)) => {
            format!(
                r#"{target} <span class="badge sens">{}</span><br><span class="muted">{}</span>"#,
                t(cat),
                t(&f.detail)
            )
        }
        (None, None) => format!(r#"{target}<br><span class="muted">{}</span>"#, t(&f.detail)),
    }
}

fn findings_table(o: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        o.push_str(r#"<p class="none">No background collection: nothing was recorded while this app was in background or closed.</p>"#);
        return;
    }
    o.push_str(r#"<table class="findings"><thead><tr><th class="num">#</th><th>Phase</th><th>What</th><th class="num">Count</th><th>When</th><th>Delay</th><th>Processes</th><th>Result</th></tr></thead><tbody>"#);
    for (i, f) in findings.iter().enumerate() {
        let when = if f.seen.first_s == f.seen.last_s {
            secs_text(f.seen.first_s)
        } else {
            format!(
                "{} &rarr;<br>{}",
                secs_text(f.seen.first_s),
                secs_text(f.seen.last_s)
            )
        };
        let mut delay = Vec::new();
        if let Some(c) = f.after_closed_s {
            delay.push(format!("<b>{c:.1} s</b> after close"));
        }
        if let Some(l) = f.after_left_foreground_s {
            delay.push(format!("{l:.1} s after leaving foreground"));
        }
        let _ = write!(
            o,
            r#"<tr class="{ph}"><td class="num">{n}</td><td>{badge}</td><td class="what"><span class="badge kind">{kind}</span> {what}</td><td class="num">{count}</td><td class="nowrap">{when}</td><td>{delay}</td><td>{procs}</td><td>{res}</td></tr>"#,
            ph = f.phase.as_str(),
            n = i + 1,
            badge = badge_phase(f.phase),
            kind = t(f.kind.as_str()),
            what = finding_what(f),
            count = f.seen.count,
            delay = if delay.is_empty() {
                after(None)
            } else {
                delay.join("<br>")
            },
            procs = procs_cell(&f.seen),
            res = results_cell(&f.results),
        );
    }
    o.push_str("</tbody></table>");
}

fn app_section(
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
        r#"<section class="app" id="app-{idx}"><h2>App <code>{}</code></h2>"#,
        t(&a.app)
    );

    let countries: Vec<String> = a
        .countries
        .iter()
        .map(|c| {
            c.country
                .as_deref()
                .map(t)
                .unwrap_or_else(|| "unknown".into())
        })
        .collect();
    let sensitive_files: u64 = a
        .files
        .iter()
        .filter(|c| c.sensitive)
        .map(|c| c.paths)
        .sum();
    let devices: u64 = a.devices.iter().map(|d| d.seen.count).sum();
    let _ = write!(
        o,
        r#"<div class="cards"><div class="card{alert}"><div class="n">{nf}</div><div class="l">background-collection findings ({bg} in background, {closed} after close)</div></div><div class="card"><div class="n">{nd}</div><div class="l">destinations{cs}</div></div><div class="card{dev_alert}"><div class="n">{devices}</div><div class="l">camera / microphone accesses</div></div><div class="card"><div class="n">{sensitive_files}</div><div class="l">files in sensitive categories</div></div></div>"#,
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

    o.push_str("<h3>Timeline</h3>");
    let _ = write!(
        o,
        r#"<div class="tl-wrap">{timeline_svg}</div><div class="legend">"#
    );
    for k in MarkKind::ALL {
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

    o.push_str("<h3>Phases</h3>");
    o.push_str(r#"<table><thead><tr><th>Phase</th><th>When</th><th class="num">Duration</th><th class="num">Events</th><th class="num">Connects</th><th class="num">Destinations</th><th class="num">File opens</th><th class="num">Read</th><th class="num">Camera</th><th class="num">Mic</th><th class="num">Processes</th></tr></thead><tbody>"#);
    for p in &a.phases {
        let spans: Vec<String> = p
            .spans
            .iter()
            .map(|s| format!("{}..{}", secs_text(s.start_s), secs_text(s.end_s)))
            .collect();
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{:.1} s</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
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
            p.processes
        );
    }
    o.push_str("</tbody></table>");
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

    let _ = write!(o, "<h3>Destinations ({})</h3>", a.destinations.len());
    if a.destinations.is_empty() {
        o.push_str(r#"<p class="none">No connects.</p>"#);
    } else {
        o.push_str(r#"<table><thead><tr><th>Address</th><th class="num">Port</th><th>Proto</th><th>Country</th><th>ASN</th><th>Organisation</th><th class="num">Count</th><th>Phases</th><th class="num">First</th><th class="num">Last</th><th>Result</th></tr></thead><tbody>"#);
        for d in &a.destinations {
            let e = &d.endpoint;
            let _ = write!(
                o,
                r#"<tr><td class="mono">{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
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

    o.push_str("<h3>Camera and microphone</h3>");
    if a.devices.is_empty() {
        o.push_str(r#"<p class="none">No camera or microphone access.</p>"#);
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

/// Attribution text with its https links made clickable (a link fetches nothing until followed).
fn linkify(s: &str) -> String {
    let mut out = String::new();
    for (i, word) in s.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let trimmed = word.trim_end_matches([',', ';', ')', '.']);
        let is_url = trimmed.starts_with("https://")
            && trimmed.len() > 8
            && trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~/:?#=&%+".contains(c));
        if is_url {
            let _ = write!(
                out,
                r#"<a href="{u}" rel="noreferrer noopener">{u}</a>{}"#,
                esc(&word[trimmed.len()..]),
                u = esc(trimmed)
            );
        } else {
            out.push_str(&t(word));
        }
    }
    out
}

fn head_facts(o: &mut String, s: &Summary) {
    let ss = &s.session;
    o.push_str(r#"<dl class="facts">"#);
    let mut fact = |k: &str, v: String| {
        let _ = write!(o, "<dt>{k}</dt><dd>{v}</dd>");
    };
    fact(
        "Session",
        format!(
            "started {} · {:.1} s · {}",
            esc(&pretty_ts(&ss.started_at)),
            ss.duration_s,
            match (&ss.ended_at, &ss.stop_reason) {
                (Some(_), Some(r)) => format!("stopped: {}", t(r)),
                (Some(_), None) => "ended".into(),
                (None, _) => "<b>not finished</b>".into(),
            }
        ),
    );
    fact(
        "Recorded on",
        format!(
            "{} · Linux {} {} · emuwatch {} · event schema {}",
            t(&ss.hostname),
            t(&ss.kernel),
            t(&ss.machine),
            t(&ss.tool_version),
            ss.event_schema_version
        ),
    );
    let kinds: Vec<String> = ss
        .events
        .iter()
        .map(|(k, n)| format!("{} {n}", t(k)))
        .collect();
    fact(
        "Events",
        format!("{} ({})", ss.events_total, kinds.join(", ")),
    );
    let c = &s.completeness;
    fact(
        "Lost events",
        if c.complete {
            "0 — complete".into()
        } else {
            let reasons: Vec<String> = c
                .lost_by_reason
                .iter()
                .map(|(k, v)| format!("{} {v}", t(k)))
                .collect();
            format!(
                "<b>{}</b>{} · undecodable {} — <b>incomplete</b>",
                c.lost_total,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                },
                c.undecodable
            )
        },
    );
    fact(
        "Geo",
        if s.geo.sources.is_empty() {
            "no GeoIP database: countries and ASNs as recorded".into()
        } else {
            s.geo
                .sources
                .iter()
                .map(|g| {
                    format!(
                        "{} <code>{}</code>{}",
                        g.role,
                        t(&g.path.display().to_string()),
                        g.database_type
                            .as_deref()
                            .map(|d| format!(" ({})", t(d)))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
    );
    fact("File categories", t(&s.categories.source));
    if !s.markers.is_empty() {
        let m: Vec<String> = s
            .markers
            .iter()
            .map(|m| format!("{} {}", secs_text(m.t_s), t(&m.label)))
            .collect();
        fact("Markers", m.join(", "));
    }
    fact("Times", "+s = seconds since the session started".into());
    o.push_str("</dl>");
}

pub fn render(r: &Analysis) -> String {
    let s = &r.summary;
    let nonce = nonce();
    let apps: Vec<String> = s.apps.iter().map(|a| escape(&a.app)).collect();
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="emuwatch {ver}">
<title>emuwatch report: {title}</title>
<style>{CSS}</style></head><body><main>
<h1>emuwatch report</h1><p class="sub">{apps} · session <code>{dir}</code></p>
"#,
        ver = esc(s.generator.version),
        title = esc(&apps.join(", ")),
        apps = esc(&apps.join(", ")),
        dir = t(&s.session.dir),
    );
    if s.completeness.warnings.is_empty() {
        o.push_str(r#"<div class="banner ok">Complete session: every event the probes produced was recorded.</div>"#);
    }
    for w in &s.completeness.warnings {
        let _ = write!(o, r#"<div class="banner bad">{}</div>"#, t(w));
    }
    head_facts(&mut o, s);

    // Background collection of every app first: it is the headline.
    if s.apps.len() > 1 {
        o.push_str("<h3>Apps</h3><table><thead><tr><th>App</th><th class=\"num\">Findings</th><th class=\"num\">Destinations</th><th>Countries</th></tr></thead><tbody>");
        for (i, a) in s.apps.iter().enumerate() {
            let countries: Vec<String> = a
                .countries
                .iter()
                .map(|c| {
                    c.country
                        .as_deref()
                        .map(t)
                        .unwrap_or_else(|| "unknown".into())
                })
                .collect();
            let _ = write!(
                o,
                r##"<tr><td><a href="#app-{i}"><code>{}</code></a></td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"##,
                t(&a.app),
                a.findings.len(),
                a.destinations.len(),
                countries.join(", ")
            );
        }
        o.push_str("</tbody></table>");
    }

    let app_of = AppOf::new(&r.events);
    let markers: Vec<_> = s.markers.iter().collect();
    for (i, a) in s.apps.iter().enumerate() {
        let events: Vec<_> = r.events.iter().filter(|e| app_of.get(e) == a.app).collect();
        let app_markers: Vec<_> = markers
            .iter()
            .copied()
            .filter(|m| m.app.as_deref().is_none_or(|x| x == a.app))
            .collect();
        let mut paths: HashMap<Option<&str>, (String, bool)> = HashMap::new();
        for c in &a.files {
            for f in c.files.iter().take(MAX_FILE_ROWS) {
                paths.insert(f.path.as_deref(), (c.category.clone(), c.sensitive));
            }
        }
        let category = |p: Option<&str>| {
            paths
                .get(&p)
                .cloned()
                .unwrap_or_else(|| ("other".into(), false))
        };
        let svg = timeline::svg(a, &events, r.frame, &app_markers, &category);
        let hidden = a.processes.len().saturating_sub(timeline::MAX_LANES);
        app_section(&mut o, i, a, &svg, hidden, &s.categories.categories);
    }
    if s.apps.is_empty() {
        o.push_str(r#"<p class="none">No events from any app in this session.</p>"#);
    }

    o.push_str(r#"<div id="detail" hidden></div><footer>"#);
    if !s.geo.attribution.is_empty() {
        let _ = write!(
            o,
            "<p>Geolocation data: {}</p>",
            linkify(&s.geo.attribution)
        );
    }
    let _ = write!(
        o,
        "<p>Generated by emuwatch {} at {} from <code>{}</code> (summary schema version {}).</p></footer></main>",
        esc(s.generator.version),
        esc(&pretty_ts(&s.generator.generated_at)),
        t(&s.session.dir),
        s.schema_version,
    );
    let _ = write!(
        o,
        r#"<script nonce="{nonce}">{SCRIPT}</script></body></html>"#
    );
    o.push('\n');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<img src=x onerror="alert(1)">"#),
            "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
        );
        assert_eq!(esc("</script>&'"), "&lt;/script&gt;&amp;&#39;");
        assert_eq!(t("a\nb\x1b[0m"), "a\\nb\\x1b[0m");
    }

    #[test]
    fn links_only_plain_https_urls() {
        assert_eq!(
            linkify("IP Geolocation by DB-IP, https://db-ip.com (CC BY 4.0)"),
            r#"IP Geolocation by DB-IP, <a href="https://db-ip.com" rel="noreferrer noopener">https://db-ip.com</a> (CC BY 4.0)"#
        );
        assert!(!linkify(r#"https://x.com/"onmouseover="a"#).contains("<a "));
        assert!(!linkify("javascript:alert(1)").contains("<a "));
    }
}
