//! The marks of each app's timeline picture, gathered while the session is read: per process
//! lane, mark kind and few pixels of time one bucket with its exact count, first and last time,
//! and the first few events as examples. The picture has at most [`MAX_LANES`] lanes and a
//! fixed width, so the buckets are bounded whatever the session's length; the examples kept
//! per bucket shrink as buckets grow (at most [`MAX_EXAMPLES`] in all, or one per bucket), so
//! memory does not grow with the events.
use std::collections::HashSet;

use super::history::Frame;
use crate::{
    capability::Capability,
    event::{Body, Event},
};

/// Width of the picture and where the plot starts and ends (SVG units).
pub const WIDTH: f64 = 1080.0;
pub const X0: f64 = 206.0;
pub const PLOT_W: f64 = WIDTH - X0 - 18.0;
/// Marks within this many units of one lane and kind are one mark.
pub const BUCKET_PX: f64 = 4.0;
/// Lanes drawn at most; the rest are counted under the picture.
pub const MAX_LANES: usize = 60;
/// Example events kept per mark at most.
pub const PER_MARK: usize = 8;
/// Example events kept in one picture (beyond it: one per mark).
pub const MAX_EXAMPLES: usize = 30_000;

/// Kinds of marks, in drawing order (later ones on top).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum MarkKind {
    /// An event of a capability (files: a sensitive file).
    Capability(Capability),
    /// A file that is not sensitive.
    File,
    Process,
    State,
}

impl MarkKind {
    /// In legend order: the capabilities first.
    pub fn all() -> impl Iterator<Item = MarkKind> {
        Capability::ALL
            .into_iter()
            .map(MarkKind::Capability)
            .chain([MarkKind::File, MarkKind::Process, MarkKind::State])
    }

    pub fn label(self) -> &'static str {
        match self {
            MarkKind::Capability(Capability::File) => "sensitive file",
            MarkKind::Capability(c) => c.as_str(),
            MarkKind::File => "file open/read",
            MarkKind::Process => "fork/exec/exit",
            MarkKind::State => "app state",
        }
    }

    fn of(ev: &Event, sensitive: bool) -> Option<MarkKind> {
        if let Some(c) = ev.body.capability()
            && (c != Capability::File || sensitive)
        {
            return Some(MarkKind::Capability(c));
        }
        Some(match &ev.body {
            Body::FileOpen(_) | Body::FileRead(_) if !sensitive => MarkKind::File,
            Body::Process(_) => MarkKind::Process,
            Body::AppState(_) => MarkKind::State,
            _ => return None,
        })
    }
}

/// The x position of a time (seconds since the frame's start) in the picture.
pub fn x_of(frame: Frame, s: f64) -> f64 {
    let duration = frame.s(frame.end).max(0.001);
    X0 + (s.clamp(0.0, duration) / duration) * PLOT_W
}

/// One mark: events of one lane and kind within a few pixels.
pub struct Bucket {
    pub count: u64,
    pub first_s: f64,
    pub last_s: f64,
    /// The first events (file order), with their file category (index into
    /// `Categories::all()`) for files.
    pub examples: Vec<(Event, Option<usize>)>,
}

/// The marks of one app.
#[derive(Default)]
pub struct AppMarks {
    /// The processes that get a lane (the first `MAX_LANES` of the app's processes).
    lanes: HashSet<u32>,
    /// By (kind, pid, column).
    pub buckets: foldhash::HashMap<(MarkKind, u32, i64), Bucket>,
    /// Examples kept per bucket now.
    cap: usize,
}

/// Examples worth keeping per mark when a picture has `n` marks.
pub fn per_mark(n: usize) -> usize {
    (MAX_EXAMPLES / n.max(1)).clamp(1, PER_MARK)
}

impl AppMarks {
    pub fn new(lanes: HashSet<u32>) -> AppMarks {
        AppMarks {
            lanes,
            buckets: Default::default(),
            cap: PER_MARK,
        }
    }

    /// Count an event of this app; `category`: its file category and whether it is sensitive.
    pub fn add(&mut self, frame: Frame, ev: &Event, category: Option<(usize, bool)>) {
        if !self.lanes.contains(&ev.pid) {
            return;
        }
        let Some(kind) = MarkKind::of(ev, category.is_some_and(|c| c.1)) else {
            return;
        };
        let t_s = frame.s(ev.ts);
        let col = (x_of(frame, t_s) / BUCKET_PX).floor() as i64;
        let n = self.buckets.len();
        let b = self
            .buckets
            .entry((kind, ev.pid, col))
            .or_insert_with(|| Bucket {
                count: 0,
                first_s: t_s,
                last_s: t_s,
                examples: Vec::new(),
            });
        b.count += 1;
        b.first_s = b.first_s.min(t_s);
        b.last_s = b.last_s.max(t_s);
        if b.examples.len() < self.cap {
            b.examples.push((ev.clone(), category.map(|c| c.0)));
        }
        if self.buckets.len() > n {
            // More marks: fewer examples each are shown, so fewer are kept.
            let cap = per_mark(self.buckets.len());
            if cap < self.cap {
                self.cap = cap;
                for b in self.buckets.values_mut() {
                    b.examples.truncate(cap);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many events over many columns and lanes: counts stay exact, examples stay bounded (at
    /// most `PER_MARK` per mark and about `MAX_EXAMPLES` in all), and every mark keeps at
    /// least the examples the picture shows.
    #[test]
    fn examples_are_bounded_and_counts_exact() {
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let frame = Frame {
            t0,
            end: t0 + chrono::Duration::seconds(1000),
        };
        let ev: Event = serde_json::from_str(
            r#"{"ts":"2023-11-14T22:13:20Z","kind":"process","op":"exec","filename":"/x","pid":1,"tid":1,"ppid":0,"uid":0,"comm":"c"}"#,
        )
        .unwrap();
        let mut m = AppMarks::new((1..=60).collect());
        let n = 200_000u64;
        for i in 0..n {
            let mut e = ev.clone();
            e.pid = 1 + (i % 60) as u32;
            e.ts = t0 + chrono::Duration::milliseconds((i * 5) as i64);
            m.add(frame, &e, None);
        }
        let total: u64 = m.buckets.values().map(|b| b.count).sum();
        assert_eq!(total, n);
        let kept: usize = m.buckets.values().map(|b| b.examples.len()).sum();
        let shown = per_mark(m.buckets.len());
        assert!(m.buckets.len() > 3750, "{} marks", m.buckets.len());
        assert!(kept <= MAX_EXAMPLES.max(m.buckets.len()) + m.buckets.len());
        assert!(
            m.buckets
                .values()
                .all(|b| b.examples.len() >= shown.min(b.count as usize))
        );
    }
}
