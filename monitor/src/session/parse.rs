//! One event line parsed in a single pass, without serde's buffering of the internally tagged,
//! flattened `Body` (which copies every field of a line into an intermediate tree first). The
//! writer puts `ts` and `kind` first: once `kind` is read, the rest of the line goes straight
//! to the one body struct `kind` names, through a map view that takes the common fields
//! (`pid`, `comm`, ...) out as they pass. Every byte is scanned once; strings are borrowed
//! where kept fields allow.
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, MapAccess, Visitor,
    value::{BorrowedStrDeserializer, MapAccessDeserializer},
};

use crate::event::{Body, Event, Phase};

/// An event line, as `serde_json::from_str::<Event>` reads it. The fast path is taken only
/// where it succeeds; anything it refuses (fields in another order, an unknown kind, a missing
/// or repeated field, a line that is not JSON) is read by the derived parser, so results and
/// error messages stay the same.
pub fn parse_event(line: &str) -> serde_json::Result<Event> {
    match serde_json::from_str::<Fast>(line) {
        Ok(Fast(ev)) => Ok(ev),
        Err(_) => serde_json::from_str::<Event>(line),
    }
}

/// `ts` as the event's own field reads it.
struct Ts(DateTime<Utc>);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::event::rfc3339_nanos::deserialize(d).map(Ts)
    }
}

/// The common fields after `ts` and `kind`, as they pass by the body.
#[derive(Default)]
struct Rest {
    pid: Option<u32>,
    tid: Option<u32>,
    ppid: Option<u32>,
    uid: Option<u32>,
    comm: Option<String>,
    app: Option<Option<String>>,
    phase: Option<Option<Phase>>,
}

/// The line's map seen by the body struct: the common fields are kept in `rest` and hidden.
struct BodyView<'r, A> {
    map: A,
    rest: &'r mut Rest,
}

/// Read a common field into `slot`, once: a repeated one is an error (the derived parser's
/// own message comes from the slow path).
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::custom("repeated field"));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for BodyView<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            // A key with escapes is not borrowable: the slow path reads that line.
            let Some(key) = self.map.next_key::<&'de str>()? else {
                return Ok(None);
            };
            let r = &mut *self.rest;
            match key {
                "pid" => once(&mut self.map, &mut r.pid)?,
                "tid" => once(&mut self.map, &mut r.tid)?,
                "ppid" => once(&mut self.map, &mut r.ppid)?,
                "uid" => once(&mut self.map, &mut r.uid)?,
                "comm" => once(&mut self.map, &mut r.comm)?,
                "app" => once(&mut self.map, &mut r.app)?,
                "phase" => once(&mut self.map, &mut r.phase)?,
                "ts" | "kind" => return Err(de::Error::custom("repeated field")),
                _ => {
                    return seed
                        .deserialize(BorrowedStrDeserializer::new(key))
                        .map(Some);
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// An event read by the single pass.
struct Fast(Event);

impl<'de> Deserialize<'de> for Fast {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FastVisitor)
    }
}

struct FastVisitor;

impl<'de> Visitor<'de> for FastVisitor {
    type Value = Fast;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event line starting with ts and kind")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fast, A::Error> {
        let order = || de::Error::custom("not in the writer's order");
        if map.next_key::<&'de str>()? != Some("ts") {
            return Err(order());
        }
        let Ts(ts) = map.next_value()?;
        if map.next_key::<&'de str>()? != Some("kind") {
            return Err(order());
        }
        let kind: &'de str = map.next_value()?;
        let mut rest = Rest::default();
        let view = MapAccessDeserializer::new(BodyView {
            map: &mut map,
            rest: &mut rest,
        });
        macro_rules! body {
            ($($kind:literal => $variant:ident),* $(,)?) => {
                match kind {
                    $($kind => Body::$variant(Deserialize::deserialize(view)?),)*
                    _ => return Err(de::Error::custom("unknown kind")),
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
        let missing = || de::Error::custom("missing field");
        Ok(Fast(Event {
            ts,
            body,
            pid: rest.pid.ok_or_else(missing)?,
            tid: rest.tid.ok_or_else(missing)?,
            ppid: rest.ppid.ok_or_else(missing)?,
            uid: rest.uid.ok_or_else(missing)?,
            comm: rest.comm.ok_or_else(missing)?,
            app: rest.app.flatten(),
            phase: rest.phase.flatten(),
        }))
    }
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
                // Lines as the writer writes them take the single pass.
                if let Err(e) = serde_json::from_str::<Fast>(l) {
                    panic!("not read by the fast path ({e}): {l}");
                }
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
            // Refused by the fast path: a repeated common field, one repeated after the body,
            // `ts`/`kind` again, a missing common field, trailing text.
            r#"{"ts":"2026-11-20T10:00:00Z","kind":"marker","label":"a","pid":1,"pid":2,"tid":1,"ppid":0,"uid":0,"comm":"x"}"#,
            r#"{"ts":"2026-11-20T10:00:00Z","kind":"marker","label":"a","kind":"marker","pid":1,"tid":1,"ppid":0,"uid":0,"comm":"x"}"#,
            r#"{"ts":"2026-11-20T10:00:00Z","kind":"marker","label":"a","pid":1,"tid":1,"ppid":0,"comm":"x"}"#,
            r#"{"ts":"2026-11-20T10:00:00Z","kind":"marker","label":"a","pid":1,"tid":1,"ppid":0,"uid":0,"comm":"x"} x"#,
        ] {
            let want = serde_json::from_str::<Event>(bad).unwrap_err().to_string();
            assert_eq!(parse_event(bad).unwrap_err().to_string(), want);
        }
    }

    /// Lines in another order than the writer's (`kind` first, common fields before the body,
    /// an escaped key, `app: null`) are read exactly as the derived parser reads them.
    #[test]
    fn other_orders_read_the_same() {
        let body = r#""kind":"file_open","path":"/data/a","path_origin":"syscall","flags":0,"flags_text":"O_RDONLY","result":3,"syscall":"openat""#;
        let head = r#""pid":7,"tid":8,"ppid":1,"uid":10123,"comm":"c\"x","app":"com.a""#;
        let ts = r#""ts":"2026-11-20T10:00:00.000000001Z""#;
        for l in [
            format!("{{{ts},{body},{head}}}"),
            format!("{{{body},{ts},{head}}}"),
            format!("{{{ts},{head},{body}}}"),
            format!("{{{ts},{body},{head},\"phase\":\"closed\"}}"),
            format!("{{{ts},{body},{},\"app\":null}}", &head[..head.len() - 14]),
            format!(
                "{{{ts},{body},{}}}",
                head.replace("\"pid\"", "\"p\\u0069d\"")
            ),
        ] {
            let want = serde_json::from_str::<Event>(&l).unwrap();
            assert_eq!(parse_event(&l).unwrap(), want, "{l}");
        }
    }
}
