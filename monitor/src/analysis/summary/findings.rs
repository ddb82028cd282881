//! An app's findings (what it did outside the foreground) and how each one reads.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{accumulate::*, *};
use crate::{
    analysis::history::{Frame, PhaseTrack, secs},
    capability::Capability,
    event::{DeviceOp, Phase},
};

/// Background-collection findings, oldest first.
pub(super) fn findings(
    acc: BTreeMap<(Phase, Capability, String), FindAcc>,
    track: &PhaseTrack,
    frame: Frame,
) -> Vec<Finding> {
    let after = |first: Option<DateTime<Utc>>, phase: Phase| {
        let Some(first) = first else {
            return (None, None);
        };
        let left = track.left_foreground_before(first).map(|t| secs(t, first));
        let closed = (phase == Phase::Closed)
            .then(|| track.closed_before(first).map(|t| secs(t, first)))
            .flatten();
        (left, closed)
    };
    let mut findings: Vec<Finding> = acc
        .into_iter()
        .map(|((phase, kind, _), f)| {
            let (after_left, after_closed) = after(f.seen.first, phase);
            let Wording {
                what,
                detail,
                bytes,
                ops,
            } = wording(kind, &f);
            let mut seen = f.seen.out(frame);
            if kind == Capability::File {
                // One access is one open (or, when the open was not seen, one read record).
                seen.count = (f.file.opens + f.file.failed_opens).max(f.file.read_records);
            }
            Finding {
                phase,
                kind,
                what,
                detail,
                target: f.target,
                seen,
                after_left_foreground_s: after_left,
                after_closed_s: after_closed,
                results: f.results,
                destination: f.endpoint,
                category: f.category,
                bytes,
                ops,
            }
        })
        .collect();
    findings.sort_by(|a, b| {
        a.seen
            .first
            .cmp(&b.seen.first)
            .then(a.phase.cmp(&b.phase))
            .then(a.target.cmp(&b.target))
    });
    findings
}

/// How a finding reads: its sentence, its detail, and the bytes or operations it carries.
struct Wording {
    what: String,
    detail: String,
    bytes: Option<u64>,
    ops: Option<Vec<DeviceOp>>,
}

/// The words of a finding of `kind`: a destination with its country and network, a file
/// with its category and what was done to it, a device or service with its operations.
fn wording(kind: Capability, f: &FindAcc) -> Wording {
    match kind {
        Capability::Connect => {
            let e = f
                .endpoint
                .as_ref()
                .expect("connect findings carry an endpoint");
            let detail = geo_words(e);
            let what = if detail.is_empty() {
                kind.subject(Some(&endpoint_label(e)))
            } else {
                format!("{} ({detail})", kind.subject(Some(&endpoint_label(e))))
            };
            Wording {
                what,
                detail,
                bytes: None,
                ops: None,
            }
        }
        Capability::File => {
            let fa = &f.file;
            let verb = if fa.bytes > 0 || fa.read_records > 0 {
                "read"
            } else {
                "open"
            };
            let tries = fa.opens + fa.failed_opens;
            let mut parts = Vec::new();
            if tries > 0 {
                parts.push(format!("{tries} open{}", if tries == 1 { "" } else { "s" }));
            }
            if fa.failed_opens > 0 {
                parts.push(format!("{} failed", fa.failed_opens));
            }
            if fa.read_records > 0 {
                parts.push(format!("{} read", human_bytes(fa.bytes)));
            }
            let detail = parts.join(", ");
            let what = format!(
                "{verb} {} [{}]: {detail}",
                f.target,
                f.category.as_deref().unwrap_or("")
            );
            Wording {
                what,
                detail,
                bytes: Some(fa.bytes),
                ops: None,
            }
        }
        Capability::Camera
        | Capability::Microphone
        | Capability::Location
        | Capability::DeviceIdentifier
        | Capability::Clipboard
        | Capability::Contacts
        | Capability::InstalledApps
        | Capability::Wifi
        | Capability::Accounts => {
            let ops: Vec<DeviceOp> = f.ops.iter().copied().collect();
            let detail = ops
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            Wording {
                what: format!("{} ({detail})", kind.subject(Some(&f.target))),
                detail,
                bytes: None,
                ops: Some(ops),
            }
        }
    }
}
