//! One pass from a recorded session to what it shows: which app each event belongs to and in
//! which phase (`history`), per-app findings, destinations, devices, file categories and
//! processes (`summary`, whose `Summary` is also the `summary.json` document), each app's
//! lifecycle (`lifecycle`), file categories (`categories`), the timeline's marks (`marks`), and
//! the events as (app, phase, what) facts for scenario expectations and baselines (`facts`).
//! The sentences people read are written here, once; the renderers in `report` only lay them
//! out.
//!
//! A session is read in bounded memory: events.jsonl is streamed twice, never held. The first
//! read (`prescan`, a light parse of a few fields) learns what an event's meaning depends on
//! from elsewhere in the session: the app of each process, the names of connections (the TLS
//! server name or HTTP Host sent after the connect), the time frame, each app's phase events
//! and which processes get a lane in the timeline. The second parses every event fully and
//! counts it into per-app aggregates; what is kept grows with apps, processes, destinations,
//! paths and phase changes, not with events.
pub mod categories;
pub mod facts;
pub mod history;
pub mod lifecycle;
pub mod marks;
pub mod summary;

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{
    enrich::names::ConnNames,
    event::{Body, Event},
    geo::Geo,
    session::{self, SessionInfo},
};
use categories::Categories;
use history::{AppOf, Bounds, Frame, format_ts};
use lifecycle::PhaseEvent;

/// Everything the renderers need.
pub struct Analysis {
    pub summary: summary::Summary,
    pub frame: Frame,
    /// Per app, the timeline's marks (empty unless asked for).
    pub marks: foldhash::HashMap<String, marks::AppMarks>,
}

/// Load a session, annotate its destinations and analyse it (with the timeline's marks).
#[cfg(test)]
pub fn analyse(dir: &Path, geo: &Geo, cats: &Categories) -> Result<Analysis> {
    analyse_with(dir, geo, cats, true, |_| {})
}

/// [`analyse`], giving every fact (`facts`) to `on_fact` as it is read; `marks`: gather the
/// timeline's marks (the HTML report).
pub fn analyse_with(
    dir: &Path,
    geo: &Geo,
    cats: &Categories,
    with_marks: bool,
    mut on_fact: impl FnMut(facts::Fact),
) -> Result<Analysis> {
    analyse_each(dir, geo, cats, with_marks, |_, _, fact| {
        if let Some(f) = fact {
            on_fact(f);
        }
        Ok(())
    })
}

/// [`analyse_with`], giving every event as the report reads it (connects named and
/// geo-annotated), its app (`AppOf`) and its fact, if any, to `on_event` (`emuwatch export`);
/// an error from `on_event` ends the read.
pub fn analyse_each(
    dir: &Path,
    geo: &Geo,
    cats: &Categories,
    with_marks: bool,
    mut on_event: impl FnMut(&Event, &str, Option<facts::Fact>) -> Result<()>,
) -> Result<Analysis> {
    if !dir.exists() {
        bail!("session directory {} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!("{} is not a session directory", dir.display());
    }
    let mut info = session::read_info(dir)?;
    let ev_path = session::events_path(dir);
    let pre = prescan(&ev_path, &info)?;
    let mut builder = summary::Builder::new(pre.frame, &pre.phases, cats);
    let mut marks: foldhash::HashMap<String, marks::AppMarks> = Default::default();
    let mut lanes = pre.lanes;
    let frame = pre.frame;
    (info.unreadable_lines, _) = session::for_each_line(
        &ev_path,
        true,
        Some(pre.bytes),
        session::parse_event,
        |ev: &mut Event| {
            // A resolver process's own DNS messages (`via: resolver`) are no app's: they named
            // connects when recorded, and count nowhere.
            if matches!(&ev.body, Body::Dns(d) if d.via == crate::event::DnsVia::Resolver) {
                return Ok(());
            }
            let ev = &*{
                if let Body::Connect(c) = &mut ev.body {
                    // Connects named by the TLS server name or HTTP Host sent after them.
                    pre.names.name(c);
                    // Scope is always recomputed; country/ASN only where a database is loaded
                    // (otherwise the recorded values stay).
                    geo.annotate(c);
                }
                ev
            };
            let app = pre.app_of.get(ev);
            let category = builder.add(ev, app);
            if with_marks {
                let m = match marks.get_mut(app) {
                    Some(m) => m,
                    None => marks.entry(app.to_string()).or_insert_with(|| {
                        marks::AppMarks::new(lanes.remove(app).unwrap_or_default())
                    }),
                };
                m.add(frame, ev, category);
            }
            let fact = facts::fact(ev, app, |_| category.expect("a file event").0);
            on_event(ev, app, fact)
        },
    )?;
    let cx = summary::Context {
        dir: &dir.display().to_string(),
        info: &info,
        geo_enriched: geo.has_data(),
        geo_sources: geo.sources().to_vec(),
        geo_attribution: geo.attribution(),
        categories: cats,
    };
    let summary = builder.finish(&cx);
    Ok(Analysis {
        summary,
        frame,
        marks,
    })
}

/// What the first read of a session learns.
struct Prescan {
    /// Bytes of events.jsonl read: the second read stops there (a session still being
    /// recorded grows meanwhile).
    bytes: u64,
    app_of: AppOf,
    names: ConnNames,
    frame: Frame,
    /// Per app, its phase events in file order.
    phases: BTreeMap<String, Vec<PhaseEvent>>,
    /// Per app, the processes that get a lane in its timeline.
    lanes: HashMap<String, HashSet<u32>>,
}

/// The few fields of an event line the first read needs.
#[derive(Deserialize)]
struct Light<'a> {
    #[serde(with = "crate::event::rfc3339_nanos")]
    ts: DateTime<Utc>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    pid: u32,
    #[serde(default, borrow)]
    app: Option<Cow<'a, str>>,
    #[serde(default)]
    conn_id: Option<u64>,
    #[serde(default, borrow)]
    sni: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    via: Option<Cow<'a, str>>,
}

/// One line as the first read keeps it.
struct Seen {
    ts: DateTime<Utc>,
    pid: u32,
    app: Option<String>,
    what: SeenWhat,
}

enum SeenWhat {
    Phase(crate::event::PhaseChange),
    Sni(Option<u64>, Option<String>),
    HttpHost(Option<u64>, Option<String>),
    /// A lost or marker event, or a resolver's DNS message: no process lane.
    Context,
    Other,
}

fn seen(line: &str) -> serde_json::Result<Seen> {
    let from_event = |ev: Event| {
        let what = match ev.body {
            Body::Phase(p) => SeenWhat::Phase(p),
            Body::Tls(t) => SeenWhat::Sni(t.conn_id, t.sni),
            Body::Http(h) => SeenWhat::HttpHost(h.conn_id, h.host),
            Body::Lost(_) | Body::Marker(_) => SeenWhat::Context,
            Body::Dns(d) if d.via == crate::event::DnsVia::Resolver => SeenWhat::Context,
            _ => SeenWhat::Other,
        };
        Seen {
            ts: ev.ts,
            pid: ev.pid,
            app: ev.app,
            what,
        }
    };
    let l: Light = match serde_json::from_str(line) {
        Ok(l) => l,
        // A line the light parse refuses: the full parse says why (or reads it after all).
        Err(_) => return serde_json::from_str::<Event>(line).map(from_event),
    };
    let what = match &*l.kind {
        // Rare, and the whole change is kept: parsed fully.
        "phase" => return serde_json::from_str::<Event>(line).map(from_event),
        "tls" => SeenWhat::Sni(l.conn_id, l.sni.map(Cow::into_owned)),
        "http" => SeenWhat::HttpHost(l.conn_id, l.host.map(Cow::into_owned)),
        "lost" | "marker" => SeenWhat::Context,
        // A resolver process's DNS message: no app's, no lane.
        "dns" if l.via.as_deref() == Some("resolver") => SeenWhat::Context,
        _ => SeenWhat::Other,
    };
    Ok(Seen {
        ts: l.ts,
        pid: l.pid,
        app: l.app.map(Cow::into_owned),
        what,
    })
}

fn prescan(ev_path: &Path, info: &SessionInfo) -> Result<Prescan> {
    let mut by_pid: HashMap<u32, String> = HashMap::new();
    let mut names = ConnNames::default();
    let mut bounds = Bounds::new(info);
    let mut phases: Vec<(Option<String>, PhaseEvent)> = Vec::new();
    // Per pid, per app named (or none): its first time.
    type Firsts = Vec<(Option<String>, DateTime<Utc>)>;
    let mut firsts: HashMap<u32, Firsts> = HashMap::new();
    let (_, bytes) = session::for_each_line(ev_path, false, None, seen, |s| {
        let s = std::mem::replace(
            s,
            Seen {
                ts: s.ts,
                pid: s.pid,
                app: None,
                what: SeenWhat::Other,
            },
        );
        bounds.add(s.ts);
        if let Some(a) = &s.app
            && !by_pid.contains_key(&s.pid)
        {
            by_pid.insert(s.pid, a.clone());
        }
        let lane = matches!(
            s.what,
            SeenWhat::Other | SeenWhat::Sni(..) | SeenWhat::HttpHost(..)
        );
        if lane {
            let f = firsts.entry(s.pid).or_default();
            match f.iter_mut().find(|(a, _)| *a == s.app) {
                Some((_, t)) => *t = (*t).min(s.ts),
                None => f.push((s.app.clone(), s.ts)),
            }
        }
        match s.what {
            SeenWhat::Phase(change) => phases.push((
                s.app,
                PhaseEvent {
                    ts: s.ts,
                    pid: s.pid,
                    change,
                },
            )),
            SeenWhat::Sni(id, n) => names.sni(id, n.as_deref()),
            SeenWhat::HttpHost(id, h) => names.http_host(id, h.as_deref()),
            SeenWhat::Context | SeenWhat::Other => {}
        }
        Ok(())
    })?;
    let app_of = AppOf::from_map(by_pid);
    let mut by_app: BTreeMap<String, Vec<PhaseEvent>> = BTreeMap::new();
    for (app, p) in phases {
        by_app
            .entry(app_of.resolve(app.as_deref(), p.pid).to_string())
            .or_default()
            .push(p);
    }
    // An app's processes in the report's order (first seen, then pid); the first ones get lanes.
    let mut procs: HashMap<String, HashMap<u32, DateTime<Utc>>> = HashMap::new();
    for (pid, list) in firsts {
        for (app, t) in list {
            let m = procs
                .entry(app_of.resolve(app.as_deref(), pid).to_string())
                .or_default();
            let e = m.entry(pid).or_insert(t);
            *e = (*e).min(t);
        }
    }
    let lanes = procs
        .into_iter()
        .map(|(app, m)| {
            let mut v: Vec<(String, u32)> =
                m.into_iter().map(|(p, t)| (format_ts(&t), p)).collect();
            v.sort();
            let set = v.into_iter().take(marks::MAX_LANES).map(|x| x.1).collect();
            (app, set)
        })
        .collect();
    Ok(Prescan {
        bytes,
        app_of,
        names,
        frame: Frame::from_bounds(info, bounds),
        phases: by_app,
        lanes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an event means can depend on a later line: the first read learns it. A connect of
    /// a process that names its app only later belongs to that app, and is named by the TLS
    /// server name sent after it; a second, unrelated process stays unattributed.
    #[test]
    fn later_lines_attribute_and_name_earlier_events() {
        let dir = tempfile::tempdir().unwrap();
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sessions/spyapp");
        std::fs::copy(
            fixture.join("session.json"),
            dir.path().join("session.json"),
        )
        .unwrap();
        let head = r#""pid":77,"tid":77,"ppid":1,"uid":10200,"comm":"late""#;
        let lines = [
            format!(
                r#"{{"ts":"2026-11-20T10:00:02.000000000Z","kind":"connect","family":"inet","proto":"tcp","daddr":"203.0.113.9","dport":443,"result":0,"conn_id":5,{head},"phase":"background"}}"#
            ),
            format!(
                r#"{{"ts":"2026-11-20T10:00:02.100000000Z","kind":"tls","conn_id":5,"daddr":"203.0.113.9","dport":443,"sni":"late.example","sni_status":"present","versions":["1.3"],"complete":true,{head},"phase":"background"}}"#
            ),
            format!(
                r#"{{"ts":"2026-11-20T10:00:03.000000000Z","kind":"process","op":"exec","filename":"/bin/late",{head},"app":"com.late","phase":"background"}}"#
            ),
            r#"{"ts":"2026-11-20T10:00:04.000000000Z","kind":"process","op":"exit","exit_code":0,"pid":78,"tid":78,"ppid":1,"uid":0,"comm":"other"}"#.to_string(),
        ];
        std::fs::write(dir.path().join("events.jsonl"), lines.join("\n") + "\n").unwrap();
        let a = analyse(dir.path(), &Geo::default(), &Categories::builtin()).unwrap();
        let app = a.summary.apps.iter().find(|x| x.app == "com.late").unwrap();
        assert_eq!(app.destinations.len(), 1);
        assert_eq!(
            app.destinations[0].endpoint.host.as_deref(),
            Some("late.example")
        );
        assert_eq!(app.findings.len(), 1, "the background connect");
        assert_eq!(app.processes.len(), 1);
        assert!(
            a.summary
                .apps
                .iter()
                .any(|x| x.app == history::UNATTRIBUTED)
        );
        assert_eq!(a.summary.session.events_total, 4);
        // Its marks: the connect and the TLS hello (network), the exec.
        let m = &a.marks["com.late"];
        assert_eq!(m.buckets.values().map(|b| b.count).sum::<u64>(), 3);
    }
}
