//! An app's lifecycle from its events: launches (a process started from outside the app:
//! forked by zygote and taking the app's uid, or the recorded command), on-screen periods,
//! closes and how they happened, processes that survived a close, restarts after a close and
//! relaunches. For the reports (text, JSON, HTML timeline).
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::history::{Frame, PhaseTrack, format_ts, secs};
use crate::{
    enrich::android::band,
    event::{Body, Event, ExitHow, FlushedAt, Phase, PhaseReason, ProcOp},
};

crate::capability::values! {
    /// What a lifecycle item is about.
    LifecycleKind {
        /// A process started from outside the app (zygote child taking its uid, the command).
        Launch => "launch",
        /// A period on screen.
        OnScreen => "on_screen",
        /// The app was closed.
        Close => "close",
        /// A process alive at the close that went on.
        Survived => "survived",
        /// A process started after the close (a service, job or alarm).
        Restart => "restart",
        /// The system put the app on screen again after a close.
        Relaunch => "relaunch",
    }
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct LifecycleItem {
    pub ts: String,
    /// Seconds since the session started.
    pub t_s: f64,
    pub kind: LifecycleKind,
    /// The process it is about (`on_screen`: the one put on screen, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its name: the full process name (`pkg:remote`) where known, else its thread name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `on_screen`: how long (to the next phase change or the end of the session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// `restart`, `relaunch`, `survived`: seconds since the app was closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_close_s: Option<f64>,
    /// `close`: `killed` (with `signal`), `exited` (with `exit_code`), `unknown`, or `marker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `survived`: the process's last score before the close, and its band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// One line for people (the process name in it is the app's own string: escape it).
    pub text: String,
}

#[derive(Default)]
struct Proc {
    first: Option<DateTime<Utc>>,
    exit: Option<DateTime<Utc>>,
    /// Started from outside the app (zygote child taking its uid, the command, or first seen
    /// without a fork by the app), and how.
    launched: Option<&'static str>,
    forked_by_app: bool,
    comm: String,
    /// Full name (rename's `process_name`) or thread name from a rename.
    name: Option<String>,
    /// (time, score) of each counted score.
    scores: Vec<(DateTime<Utc>, i32)>,
    uid: u32,
}

impl Proc {
    fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.comm.clone())
    }
    fn alive_at(&self, t: DateTime<Utc>) -> bool {
        self.first.is_some_and(|f| f <= t) && self.exit.is_none_or(|e| e > t)
    }
    fn score_before(&self, t: DateTime<Utc>) -> Option<i32> {
        self.scores
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|s| s.1)
    }
}

fn item(frame: Frame, at: DateTime<Utc>, kind: LifecycleKind, text: String) -> LifecycleItem {
    LifecycleItem {
        ts: format_ts(&at),
        t_s: frame.s(at),
        kind,
        pid: None,
        name: None,
        duration_s: None,
        after_close_s: None,
        how: None,
        signal: None,
        exit_code: None,
        oom_score_adj: None,
        text,
    }
}

fn secs_words(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// The lifecycle of an app from its events (in timeline order), in time order.
pub fn for_app(events: &[&Event], track: &PhaseTrack, frame: Frame) -> Vec<LifecycleItem> {
    let mut procs: BTreeMap<u32, Proc> = BTreeMap::new();
    // Children forked by the app's own processes are part of it, not launches.
    // (When they were forked: a daemon may do nothing of its own until after a close.)
    let mut app_children = std::collections::HashMap::new();
    for ev in events {
        if let Body::Process(p) = &ev.body
            && p.op == ProcOp::Fork
            && let Some(c) = p.child_pid
        {
            app_children.entry(c).or_insert(ev.ts);
        }
    }
    for ev in events {
        if matches!(ev.body, Body::Phase(_) | Body::Marker(_) | Body::Lost(_)) {
            continue;
        }
        let p = procs.entry(ev.pid).or_default();
        if p.first.is_none() {
            p.first = Some(app_children.get(&ev.pid).copied().unwrap_or(ev.ts));
            p.comm = ev.comm.clone();
            p.uid = ev.uid;
            p.forked_by_app = app_children.contains_key(&ev.pid);
            if !p.forked_by_app {
                p.launched = Some("started");
            }
        }
        match &ev.body {
            Body::Process(pr) => match pr.op {
                ProcOp::Setuid if pr.became_target == Some(true) && !p.forked_by_app => {
                    p.launched = Some("zygote");
                    p.uid = ev.uid;
                }
                ProcOp::Rename if ev.pid == ev.tid => {
                    p.name = pr.process_name.clone().or_else(|| pr.name.clone());
                }
                ProcOp::Exit => p.exit = Some(ev.ts),
                _ => {}
            },
            Body::AppState(s) if s.counts() => p.scores.push((ev.ts, s.oom_score_adj)),
            _ => {}
        }
    }

    let mut out = Vec::new();
    // On-screen periods and closes, from the phase history.
    let spans = track.spans(frame);
    // The first span starts with the session; the app's screen with its first process.
    let app_start = procs.values().filter_map(|p| p.first).min();
    for (phase, start, end) in &spans {
        let start = &match app_start {
            Some(a) if a > *start && a < *end => a,
            _ => *start,
        };
        if *phase == Phase::Foreground {
            let who = phase_pid(events, Phase::Foreground, *start);
            let mut it = item(
                frame,
                *start,
                LifecycleKind::OnScreen,
                format!(
                    "on screen for {} (to {})",
                    secs_words(secs(*start, *end)),
                    if *end >= frame.end {
                        "the end of the recording".to_string()
                    } else {
                        format!("+{:.3}s", frame.s(*end))
                    }
                ),
            );
            it.pid = who;
            it.duration_s = Some(secs(*start, *end));
            out.push(it);
        }
    }
    let mut closes: Vec<DateTime<Utc>> = Vec::new();
    for c in &track.changes {
        if c.to == Phase::Closed && c.from != Phase::Closed {
            closes.push(c.at);
            let pid = phase_pid(events, Phase::Closed, c.at);
            let proc_ = pid.and_then(|p| procs.get(&p));
            let name = proc_.map(Proc::name);
            // `None`: closed by a marker.
            let (how, signal, exit_code) = match c.reason {
                PhaseReason::Marker => (None, None, None),
                _ => {
                    let (h, s, e) = close_how(events, pid, c.at);
                    (Some(h), s, e)
                }
            };
            let what = match (&name, pid) {
                (Some(n), Some(p)) => format!("`{n}` (pid {p})"),
                _ => "the app".to_string(),
            };
            let text = match (how, signal, exit_code) {
                (None, ..) => format!(
                    "closed by a marker{}",
                    c.detail
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
                (Some(ExitHow::Killed), Some(9), _) => format!(
                    "closed: {what} killed by SIGKILL (swiped away, or killed by the system){}",
                    which(c.reason)
                ),
                (Some(ExitHow::Killed), Some(s), _) => {
                    format!("closed: {what} killed by signal {s}{}", which(c.reason))
                }
                (Some(ExitHow::Exited), _, Some(code)) => {
                    format!("closed: {what} exited with code {code}{}", which(c.reason))
                }
                _ => format!("closed: {what} ended{}", which(c.reason)),
            };
            let mut it = item(frame, c.at, LifecycleKind::Close, text);
            it.pid = pid;
            it.name = name;
            it.how = Some(how.map_or("marker", ExitHow::as_str).to_string());
            it.signal = signal;
            it.exit_code = exit_code;
            out.push(it);
            // Processes alive at the close that went on: did something after it, or lived a
            // second or more past it (not those killed along with the app a moment later).
            let active_after: std::collections::HashSet<u32> = events
                .iter()
                .filter(|e| e.ts > c.at && is_activity(e))
                .map(|e| e.pid)
                .collect();
            for (&spid, p) in &procs {
                let lived_on = p.exit.is_none_or(|e| secs(c.at, e) >= 1.0);
                if Some(spid) == pid
                    || !p.alive_at(c.at)
                    || !(active_after.contains(&spid) || lived_on)
                {
                    continue;
                }
                let adj = p.score_before(c.at);
                let band_words = adj
                    .map(|a| {
                        let b = band(a);
                        let fgs = if b == "perceptible" {
                            ": a foreground service"
                        } else {
                            ""
                        };
                        format!(" (oom_score_adj {a}, {b}{fgs})")
                    })
                    .unwrap_or_default();
                let mut it = item(
                    frame,
                    c.at,
                    LifecycleKind::Survived,
                    format!("survived the close: `{}`, pid {spid}{band_words}", p.name()),
                );
                it.pid = Some(spid);
                it.name = Some(p.name());
                it.oom_score_adj = adj;
                it.after_close_s = Some(0.0);
                out.push(it);
            }
        }
    }
    // Launches: before any close, launches; after a close, restarts, or the relaunch when the
    // process is the one the system put on screen again.
    let relaunch_of = |pid: u32| {
        track.changes.iter().find(|c| {
            c.from == Phase::Closed
                && c.to == Phase::Foreground
                && c.reason == PhaseReason::AppState
                && phase_pid(events, Phase::Foreground, c.at) == Some(pid)
        })
    };
    for (&pid, p) in &procs {
        let (Some(how), Some(first)) = (p.launched, p.first) else {
            continue;
        };
        let origin = match how {
            "zygote" => format!("forked by zygote, uid {}", p.uid),
            _ => format!("uid {}", p.uid),
        };
        let closed_before = closes.iter().rev().find(|t| **t <= first).copied();
        let reopened = closed_before.and_then(|cl| {
            track
                .changes
                .iter()
                .find(|c| c.at >= cl && c.at <= first && c.to != Phase::Closed)
        });
        let mut it = match (closed_before, reopened) {
            (Some(cl), None) => {
                let after = secs(cl, first);
                if let Some(rl) = relaunch_of(pid) {
                    let mut it = item(
                        frame,
                        rl.at,
                        LifecycleKind::Relaunch,
                        format!(
                            "relaunched {} after close as `{}`, pid {pid} ({origin})",
                            secs_words(secs(cl, rl.at)),
                            p.name()
                        ),
                    );
                    it.after_close_s = Some(secs(cl, rl.at));
                    it
                } else {
                    let mut it = item(
                        frame,
                        first,
                        LifecycleKind::Restart,
                        format!(
                            "restarted {} after close as `{}`, pid {pid} ({origin})",
                            secs_words(after),
                            p.name()
                        ),
                    );
                    it.after_close_s = Some(after);
                    it
                }
            }
            _ => item(
                frame,
                first,
                LifecycleKind::Launch,
                format!("launched `{}`, pid {pid} ({origin})", p.name()),
            ),
        };
        it.pid = Some(pid);
        it.name = Some(p.name());
        out.push(it);
    }
    out.sort_by(|a, b| {
        a.ts.cmp(&b.ts)
            .then(order(a.kind).cmp(&order(b.kind)))
            .then(a.pid.cmp(&b.pid))
    });
    out
}

/// Something a process did (not its exit, a score change or a total flushed at its end).
fn is_activity(e: &Event) -> bool {
    match &e.body {
        Body::Process(p) => p.op != ProcOp::Exit,
        Body::FileRead(r) => r.flushed_at == FlushedAt::Close,
        Body::AppState(_) | Body::Phase(_) | Body::Marker(_) | Body::Lost(_) => false,
        _ => true,
    }
}

fn which(reason: PhaseReason) -> &'static str {
    match reason {
        PhaseReason::MainExited => ", the process hosting its screen",
        PhaseReason::AllExited => ", its last process",
        _ => "",
    }
}

/// Of items at the same instant, which comes first.
fn order(kind: LifecycleKind) -> u8 {
    match kind {
        LifecycleKind::Launch | LifecycleKind::Restart => 0,
        LifecycleKind::Close => 1,
        LifecycleKind::Survived => 2,
        LifecycleKind::Relaunch => 3,
        LifecycleKind::OnScreen => 4,
    }
}

/// The pid of the app's phase event to `to` at `at`.
fn phase_pid(events: &[&Event], to: Phase, at: DateTime<Utc>) -> Option<u32> {
    events.iter().find_map(|e| match &e.body {
        Body::Phase(p) if p.to == to && e.ts == at => Some(e.pid),
        _ => None,
    })
}

/// How the close at `at` happened: from the phase event, else from the process's exit.
fn close_how(
    events: &[&Event],
    pid: Option<u32>,
    at: DateTime<Utc>,
) -> (ExitHow, Option<i32>, Option<i32>) {
    let from_phase = events.iter().find_map(|e| match &e.body {
        Body::Phase(p) if p.to == Phase::Closed && e.ts == at && Some(e.pid) == pid => {
            p.how.map(|h| (h, p.signal, p.exit_code))
        }
        _ => None,
    });
    if let Some(h) = from_phase {
        return h;
    }
    // Sessions from before `how` was recorded: the exit event itself.
    events
        .iter()
        .find_map(|e| match &e.body {
            Body::Process(p) if p.op == ProcOp::Exit && Some(e.pid) == pid && e.ts <= at => {
                Some(match (p.signal, p.exit_code) {
                    (Some(s), _) => (ExitHow::Killed, Some(s), None),
                    (None, Some(c)) => (ExitHow::Exited, None, Some(c)),
                    _ => (ExitHow::Unknown, None, None),
                })
            }
            _ => None,
        })
        .unwrap_or((ExitHow::Unknown, None, None))
}
