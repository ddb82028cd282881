//! Time and phase bookkeeping shared by the analysis and the timeline: which app an
//! event belongs to, the session's time frame, and each app's phase history.
use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// The app of events that carry none (and whose process no other event names).
pub const UNATTRIBUTED: &str = "(unattributed)";

use crate::{
    event::{Event, Phase, PhaseChange, PhaseReason},
    session::SessionInfo,
};

/// RFC 3339 UTC with nanoseconds, as in events.jsonl.
pub fn format_ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Seconds between two instants, to the millisecond.
pub fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let ns = (to - from).num_nanoseconds().unwrap_or(i64::MAX);
    (ns as f64 / 1e6).round() / 1e3
}

/// Which app every event belongs to: its own `app`, else the app another event of the same
/// process names, else `(unattributed)`.
pub struct AppOf {
    by_pid: HashMap<u32, String>,
}

impl AppOf {
    #[cfg(test)]
    pub fn new(events: &[Event]) -> AppOf {
        let mut by_pid = HashMap::new();
        for ev in events {
            if let Some(a) = &ev.app {
                by_pid.entry(ev.pid).or_insert_with(|| a.clone());
            }
        }
        AppOf { by_pid }
    }

    /// From a pid -> app table learnt while reading a session (the first app each pid names).
    pub fn from_map(by_pid: HashMap<u32, String>) -> AppOf {
        AppOf { by_pid }
    }

    pub fn get<'a>(&'a self, ev: &'a Event) -> &'a str {
        self.resolve(ev.app.as_deref(), ev.pid)
    }

    /// The app of an event that names `app` (or none) from process `pid`.
    pub fn resolve<'a>(&'a self, app: Option<&'a str>, pid: u32) -> &'a str {
        app.or_else(|| self.by_pid.get(&pid).map(String::as_str))
            .unwrap_or(UNATTRIBUTED)
    }
}

pub fn phase_of(ev: &Event) -> Phase {
    ev.phase.unwrap_or(Phase::Foreground)
}

/// The session's time frame: its start, and its end (or the last event).
#[derive(Clone, Copy)]
pub struct Frame {
    pub t0: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Frame {
    #[cfg(test)]
    pub fn new(info: &SessionInfo, events: &[Event]) -> Frame {
        let mut b = Bounds::new(info);
        for e in events {
            b.add(e.ts);
        }
        Frame::from_bounds(info, b)
    }

    /// The frame from the bounds of a session's event times.
    pub fn from_bounds(info: &SessionInfo, b: Bounds) -> Frame {
        let (first, last) = (b.first, b.last);
        let t0 = first.map_or(info.started_at, |f| f.min(info.started_at));
        let end = [info.ended_at, last]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(t0);
        Frame { t0, end }
    }

    pub fn s(&self, t: DateTime<Utc>) -> f64 {
        secs(self.t0, t)
    }
}

/// The first and last event times of a session that lie inside its recording (give or take a
/// minute), gathered event by event.
#[derive(Clone, Copy)]
pub struct Bounds {
    lo: DateTime<Utc>,
    hi: Option<DateTime<Utc>>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Bounds {
    pub fn new(info: &SessionInfo) -> Bounds {
        // Events are stamped from the kernel clock during the recording: one dated far outside
        // it (1970, a corrupted line) must not move every relative time. A minute of slack
        // covers clock steps and a start-up race.
        let slack = chrono::Duration::seconds(60);
        Bounds {
            lo: info.started_at - slack,
            hi: info.ended_at.map(|e| e + slack),
            first: None,
            last: None,
        }
    }

    pub fn add(&mut self, t: DateTime<Utc>) {
        if t >= self.lo && self.hi.is_none_or(|h| t <= h) {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
    }
}

/// One phase change of an app.
#[derive(Clone)]
pub struct Change {
    pub at: DateTime<Utc>,
    /// From the event, or else the phase before it.
    pub from: Phase,
    pub to: Phase,
    pub reason: PhaseReason,
    pub detail: Option<String>,
}

/// The phase history of one app, from its `phase` events.
#[derive(Clone)]
pub struct PhaseTrack {
    /// In time order.
    pub changes: Vec<Change>,
    initial: Phase,
}

impl PhaseTrack {
    pub fn new(mut raw: Vec<(DateTime<Utc>, &PhaseChange)>) -> PhaseTrack {
        raw.sort_by_key(|r| r.0);
        let initial = raw
            .first()
            .and_then(|r| r.1.from)
            .unwrap_or(Phase::Foreground);
        let mut cur = initial;
        let mut changes = Vec::new();
        for (at, p) in raw {
            changes.push(Change {
                at,
                from: p.from.unwrap_or(cur),
                to: p.to,
                reason: p.reason,
                detail: p.detail.clone(),
            });
            cur = p.to;
        }
        PhaseTrack { changes, initial }
    }

    /// (phase, start, end) stretches covering the frame.
    pub fn spans(&self, frame: Frame) -> Vec<(Phase, DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        let (mut cur, mut since) = (self.initial, frame.t0);
        for c in &self.changes {
            let t = c.at.clamp(frame.t0, frame.end);
            if c.to == cur {
                continue;
            }
            if t > since {
                out.push((cur, since, t));
            }
            cur = c.to;
            since = t;
        }
        if frame.end > since || out.is_empty() {
            out.push((cur, since, frame.end));
        }
        out
    }

    /// When the app last left the foreground, at or before `t`.
    pub fn left_foreground_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.changes
            .iter()
            .rev()
            .find(|c| c.at <= t && c.from == Phase::Foreground && c.to != Phase::Foreground)
            .map(|c| c.at)
    }

    /// When the app was last closed, at or before `t`.
    pub fn closed_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.changes
            .iter()
            .rev()
            .find(|c| c.at <= t && c.to == Phase::Closed)
            .map(|c| c.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(1_700_000_000_000_000_000 + (s * 1e9) as i64)
    }

    #[test]
    fn phase_track_spans_and_offsets() {
        let change = |from, to, reason| PhaseChange {
            to,
            from,
            reason,
            detail: None,
            how: None,
            signal: None,
            exit_code: None,
        };
        let (a, b) = (
            change(
                Some(Phase::Foreground),
                Phase::Background,
                PhaseReason::AppState,
            ),
            change(None, Phase::Closed, PhaseReason::MainExited),
        );
        let track = PhaseTrack::new(vec![(t(10.0), &a), (t(25.0), &b)]);
        let frame = Frame {
            t0: t(0.0),
            end: t(40.0),
        };
        let spans: Vec<(Phase, f64, f64)> = track
            .spans(frame)
            .into_iter()
            .map(|(p, a, b)| (p, frame.s(a), frame.s(b)))
            .collect();
        assert_eq!(
            spans,
            [
                (Phase::Foreground, 0.0, 10.0),
                (Phase::Background, 10.0, 25.0),
                (Phase::Closed, 25.0, 40.0)
            ]
        );
        assert_eq!(track.left_foreground_before(t(30.0)), Some(t(10.0)));
        assert_eq!(track.closed_before(t(30.0)), Some(t(25.0)));
        assert_eq!(track.closed_before(t(20.0)), None);
        assert_eq!(track.left_foreground_before(t(5.0)), None);
        // `from` missing on the second change: filled from the first.
        assert_eq!(track.changes[1].from, Phase::Background);
    }

    #[test]
    fn no_phase_events_means_one_foreground_span() {
        let track = PhaseTrack::new(Vec::new());
        let frame = Frame {
            t0: t(0.0),
            end: t(5.0),
        };
        let spans = track.spans(frame);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].0, Phase::Foreground);
    }

    /// One event dated 1970 (or 2099) does not move the session's time frame.
    #[test]
    fn an_event_far_outside_the_recording_does_not_move_the_frame() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/sessions/spyapp");
        let (info, mut events) = crate::session::load(&dir).unwrap();
        let before = Frame::new(&info, &events);
        for ts in [DateTime::from_timestamp_nanos(0), t(4e9)] {
            let mut odd = events[0].clone();
            odd.ts = ts;
            events.push(odd);
        }
        let after = Frame::new(&info, &events);
        assert_eq!((after.t0, after.end), (before.t0, before.end));
    }
}
