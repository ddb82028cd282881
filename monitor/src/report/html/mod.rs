//! `--format html`: one self-contained page (inline CSS, a few lines of inline script, inline
//! SVG; nothing is fetched). Every string from the monitored app is HTML-escaped in text and in
//! attribute values (after control characters were made visible), and the script never embeds
//! event data: it only copies a mark's SVG `<title>` text into a panel with `textContent`. A
//! Content-Security-Policy forbids any fetch and any script but the page's own (by nonce).
use std::{
    collections::BTreeMap,
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
        summary::{AppReport, Endpoint, Finding, Occurrence, Summary, human_bytes},
    },
    escape::{esc, escape},
    event::{Phase, Scope},
};

mod app;
mod assets;
mod cells;

use app::app_section;
use assets::{CSS, SCRIPT, capability_css};
use cells::*;

fn nonce() -> String {
    // Unpredictable per page: std's RandomState is seeded from the OS.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    let a = h.finish();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
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
                (Some(_), Some(r)) => format!("stopped: {r}"),
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
                .map(|(k, v)| format!("{k} {v}"))
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
<style>{CSS}{caps}</style></head><body><main>
<h1>emuwatch report</h1><p class="sub">{apps} · session <code>{dir}</code></p>
"#,
        caps = capability_css(),
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
            let countries = country_names(a);
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

    let markers: Vec<_> = s.markers.iter().collect();
    for (i, a) in s.apps.iter().enumerate() {
        let app_markers: Vec<_> = markers
            .iter()
            .copied()
            .filter(|m| m.app.as_deref().is_none_or(|x| x == a.app))
            .collect();
        let svg = timeline::svg(
            a,
            r.marks.get(&a.app),
            r.frame,
            &app_markers,
            &s.categories.categories,
        );
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
