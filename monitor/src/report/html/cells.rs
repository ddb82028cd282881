//! Table cells and small pieces shared by the page's sections.
use super::*;

/// A string from the monitored app, for HTML: control characters visible, then escaped.
pub(super) fn t(s: &str) -> String {
    esc(&escape(s))
}

pub(super) fn badge_phase(p: Phase) -> String {
    format!(r#"<span class="badge {p}">{p}</span>"#, p = p.as_str())
}

pub(super) fn phases_cell(o: &Occurrence) -> String {
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

pub(super) fn procs_cell(o: &Occurrence) -> String {
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

pub(super) fn results_cell(r: &BTreeMap<String, u64>) -> String {
    if r.len() == 1 && r.contains_key("ok") {
        return "ok".into();
    }
    r.iter()
        .map(|(k, n)| format!("{} {n}", t(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn opt(s: Option<&str>) -> String {
    s.map(t)
        .unwrap_or_else(|| r#"<span class="muted">-</span>"#.into())
}

pub(super) fn country_cell(e: &Endpoint) -> String {
    match (&e.country, e.scope) {
        (Some(c), _) => t(c),
        (None, Some(s)) if s != Scope::Public => {
            format!(r#"<span class="muted">{}</span>"#, s.as_str())
        }
        _ => r#"<span class="muted">-</span>"#.into(),
    }
}

pub(super) fn after(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s"))
        .unwrap_or_else(|| r#"<span class="muted">-</span>"#.into())
}

/// The finding's subject, structured: what was touched, then what is known about it.
pub(super) fn finding_what(f: &Finding) -> String {
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

pub(super) fn findings_table(o: &mut String, findings: &[Finding]) {
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

/// The app's destination countries, escaped (`unknown` for public ones without a country).
pub(super) fn country_names(a: &AppReport) -> Vec<String> {
    a.countries
        .iter()
        .map(|c| {
            c.country
                .as_deref()
                .map(t)
                .unwrap_or_else(|| "unknown".into())
        })
        .collect()
}
