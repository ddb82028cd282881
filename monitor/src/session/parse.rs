//! One event line parsed without serde's buffering of the internally tagged, flattened `Body`
//! (which copies every field of a line into an intermediate tree first): the common fields
//! and `kind` are read in one pass, then the line again as the one body struct `kind` names
//! (both passes borrow, skip what they do not need and allocate only the fields kept).
use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::event::{Body, Event, Phase};

/// The fields of every event line.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(with = "crate::event::rfc3339_nanos")]
    ts: DateTime<Utc>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    comm: String,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    phase: Option<Phase>,
}

/// An event line, as `serde_json::from_str::<Event>` reads it. The fast path is taken only
/// where it succeeds; anything it refuses (an unknown kind, a missing field, a line that is
/// not JSON) is read by the derived parser, so results and error messages stay the same.
pub fn parse_event(line: &str) -> serde_json::Result<Event> {
    match fast(line) {
        Some(ev) => Ok(ev),
        None => serde_json::from_str::<Event>(line),
    }
}

fn fast(line: &str) -> Option<Event> {
    let h: Head = serde_json::from_str(line).ok()?;
    macro_rules! body {
        ($($kind:literal => $variant:ident),* $(,)?) => {
            match &*h.kind {
                $($kind => Body::$variant(serde_json::from_str(line).ok()?),)*
                _ => return None,
            }
        };
    }
    let body = body! {
        "process" => Process,
        "connect" => Connect,
        "file_open" => FileOpen,
        "file_read" => FileRead,
        "camera" => Camera,
        "microphone" => Microphone,
        "dns" => Dns,
        "tls" => Tls,
        "http" => Http,
        "location" => Location,
        "device_identifier" => DeviceIdentifier,
        "clipboard" => Clipboard,
        "contacts" => Contacts,
        "installed_apps" => InstalledApps,
        "wifi" => Wifi,
        "accounts" => Accounts,
        "binder_call" => BinderCall,
        "app_state" => AppState,
        "lost" => Lost,
        "phase" => Phase,
        "marker" => Marker,
    };
    Some(Event {
        ts: h.ts,
        body,
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        comm: h.comm,
        app: h.app,
        phase: h.phase,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of the fixture sessions reads the same as with the derived parser, and a
    /// refused line gives the derived parser's error.
    #[test]
    fn same_as_the_derived_parser() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sessions");
        let mut kinds = std::collections::BTreeSet::new();
        for d in std::fs::read_dir(&root).unwrap() {
            let p = d.unwrap().path().join("events.jsonl");
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            for l in text.lines().filter(|l| !l.trim().is_empty()) {
                let want = serde_json::from_str::<Event>(l);
                let got = parse_event(l);
                match (want, got) {
                    (Ok(w), Ok(g)) => {
                        kinds.insert(w.body.kind());
                        assert_eq!(w, g, "{l}");
                    }
                    (Err(w), Err(g)) => assert_eq!(w.to_string(), g.to_string()),
                    (w, g) => panic!("{l}: {w:?} / {g:?}"),
                }
            }
        }
        assert!(kinds.len() >= 10, "{kinds:?}");
        for bad in [
            r#"{"ts":"2026-11-20T10:00:00Z","kind":"nope","pid":1,"tid":1,"ppid":0,"uid":0,"comm":"x"}"#,
            r#"{"ts":"2026-11-20T10:00:00Z","kind":"marker","pid":1,"tid":1,"ppid":0,"uid":0,"comm":"x"}"#,
            r#"{"ts":"2026-11-20T10:00:00Z","kind":"marker","label":"a","pid":1}"#,
            "{not json",
        ] {
            let want = serde_json::from_str::<Event>(bad).unwrap_err().to_string();
            assert_eq!(parse_event(bad).unwrap_err().to_string(), want);
        }
    }
}
