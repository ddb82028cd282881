//! The session's events as facts about apps: who (app), when (phase) and what (a destination,
//! a device operation, a file access in a category). Scenario expectations and baselines are
//! queries over these; they use the same attribution (`AppOf`, `phase_of`), file categories and
//! endpoints as the report, so a finding in the report and a failed expectation agree.
use super::{
    history::phase_of,
    summary::{Endpoint, endpoint},
};
use crate::{
    capability::Capability,
    event::{Body, DeviceOp, Event, Phase},
};

pub enum What<'a> {
    Connect(Endpoint),
    /// `camera` or `microphone`.
    Device {
        kind: Capability,
        path: Option<&'a str>,
        op: DeviceOp,
    },
    /// A file open (an attempt: failed ones count too) or a `file_read` total.
    File {
        /// Index into `Categories::all()`.
        category: usize,
        path: Option<&'a str>,
        open: bool,
        bytes: u64,
    },
}

pub struct Fact<'a> {
    pub app: &'a str,
    pub phase: Phase,
    pub ev: &'a Event,
    pub what: What<'a>,
}

/// The fact an event of `app` is, if any; `category` classifies a file path (an index into
/// `Categories::all()`), asked only for file events.
pub fn fact<'a>(
    ev: &'a Event,
    app: &'a str,
    category: impl FnOnce(Option<&str>) -> usize,
) -> Option<Fact<'a>> {
    let what = match &ev.body {
        Body::Connect(c) => What::Connect(endpoint(c)),
        b if b.device().is_some() => {
            let d = b.device().expect("checked");
            What::Device {
                kind: ev.body.capability().expect("a device event"),
                path: d.path.as_deref(),
                op: d.op,
            }
        }
        Body::FileOpen(_) | Body::FileRead(_) => {
            let (path, open, bytes) = match &ev.body {
                Body::FileOpen(o) => (o.path.as_deref(), true, 0),
                Body::FileRead(r) => (r.path.as_deref(), false, r.bytes),
                _ => unreachable!("matched above"),
            };
            What::File {
                category: category(path),
                path,
                open,
                bytes,
            }
        }
        _ => return None,
    };
    Some(Fact {
        app,
        phase: phase_of(ev),
        ev,
        what,
    })
}
