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
    comm: String,
    /// Full name (rename's `process_name`) or thread name from a rename.
    name: Option<String>,
    /// Per close of the app (in `Acc::closes` order): its last counted score at or before it.
    score_at_close: Vec<Option<i32>>,
    uid: u32,
}

impl Proc {
    fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.comm.clone())
    }
    fn alive_at(&self, t: DateTime<Utc>) -> bool {
        self.first.is_some_and(|f| f <= t) && self.exit.is_none_or(|e| e > t)
    }
}

/// An exit event: (time, signal, exit code).
type Exit = (DateTime<Utc>, Option<i32>, Option<i32>);

/// What the lifecycle needs of one process, gathered event by event.
#[derive(Default)]
struct ProcAcc {
    /// Time of its first event (file order).
    first: Option<DateTime<Utc>>,
    comm: String,
    /// uid of its first event.
    uid: u32,
    /// uid of its last setuid that made it a target.
    zygote_uid: Option<u32>,
    name: Option<String>,
    exit: Option<DateTime<Utc>>,
    score_at_close: Vec<Option<i32>>,
    /// Its last activity (see `is_activity`).
    last_activity: Option<DateTime<Utc>>,
    /// Its exit events, in file order: (time, signal, exit code).
    exits: Vec<Exit>,
}

/// One `phase` event of an app.
pub struct PhaseEvent {
    pub ts: DateTime<Utc>,
    pub pid: u32,
    pub change: crate::event::PhaseChange,
}

/// An app's lifecycle gathered event by event (in timeline order): per process its first and
/// last moments, names, exits and scores at the app's closes, and the app's forks. Its size
/// grows with the app's processes and closes, not with its events.
pub struct Acc {
    /// The app's closes (from its phase history), in time order.
    closes: Vec<DateTime<Utc>>,
    procs: BTreeMap<u32, ProcAcc>,
    /// Children forked by the app's own processes: when first.
    app_children: std::collections::HashMap<u32, DateTime<Utc>>,
}

impl Acc {
    pub fn new(track: &PhaseTrack) -> Acc {
        Acc {
            closes: closes(track),
            procs: BTreeMap::new(),
            app_children: std::collections::HashMap::new(),
        }
    }

    pub fn add(&mut self, ev: &Event) {
        if let Body::Process(p) = &ev.body
            && p.op == ProcOp::Fork
            && let Some(c) = p.child_pid
        {
            self.app_children.entry(c).or_insert(ev.ts);
        }
        if matches!(ev.body, Body::Phase(_) | Body::Marker(_) | Body::Lost(_)) {
            return;
        }
        let n = self.closes.len();
        let p = self.procs.entry(ev.pid).or_default();
        if p.first.is_none() {
            p.first = Some(ev.ts);
            p.comm = ev.comm.clone();
            p.uid = ev.uid;
            p.score_at_close = vec![None; n];
        }
        if is_activity(ev) {
            p.last_activity = Some(p.last_activity.map_or(ev.ts, |l| l.max(ev.ts)));
        }
        match &ev.body {
            Body::Process(pr) => match pr.op {
                ProcOp::Setuid if pr.became_target == Some(true) => p.zygote_uid = Some(ev.uid),
                ProcOp::Rename if ev.pid == ev.tid => {
                    p.name = pr.process_name.clone().or_else(|| pr.name.clone());
                }
                ProcOp::Exit => {
                    p.exit = Some(ev.ts);
                    p.exits.push((ev.ts, pr.signal, pr.exit_code));
                }
                _ => {}
            },
            Body::AppState(s) if s.counts() => {
                for (i, c) in self.closes.iter().enumerate() {
                    if ev.ts <= *c {
                        p.score_at_close[i] = Some(s.oom_score_adj);
                    }
                }
            }
            _ => {}
        }
    }

    /// The lifecycle, in time order. `phases`: the app's phase events, in file order.
    pub fn finish(
        self,
        phases: &[PhaseEvent],
        track: &PhaseTrack,
        frame: Frame,
    ) -> Vec<LifecycleItem> {
        let Acc {
            closes: close_times,
            procs: accs,
            app_children,
        } = self;
        let mut exits: BTreeMap<u32, Vec<Exit>> = BTreeMap::new();
        let mut last_activity: BTreeMap<u32, DateTime<Utc>> = BTreeMap::new();
        let procs: BTreeMap<u32, Proc> = accs
            .into_iter()
            .map(|(pid, a)| {
                // Children forked by the app's own processes are part of it, not launches.
                // (When they were forked: a daemon may do nothing of its own until after a
                // close.)
                let forked = app_children.get(&pid).copied();
                let (launched, uid) = match (forked, a.zygote_uid) {
                    (Some(_), _) => (None, a.uid),
                    (None, Some(u)) => (Some("zygote"), u),
                    (None, None) => (Some("started"), a.uid),
                };
                exits.insert(pid, a.exits);
                if let Some(t) = a.last_activity {
                    last_activity.insert(pid, t);
                }
                let p = Proc {
                    first: forked.or(a.first),
                    exit: a.exit,
                    launched,
                    comm: a.comm,
                    name: a.name,
                    score_at_close: a.score_at_close,
                    uid,
                };
                (pid, p)
            })
            .collect();
        build(
            &procs,
            &exits,
            &last_activity,
            &close_times,
            phases,
            track,
            frame,
        )
    }
}

/// The times the app was closed (a change to `closed` from another phase), in time order.
fn closes(track: &PhaseTrack) -> Vec<DateTime<Utc>> {
    track
        .changes
        .iter()
        .filter(|c| c.to == Phase::Closed && c.from != Phase::Closed)
        .map(|c| c.at)
        .collect()
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

fn build(
    procs: &BTreeMap<u32, Proc>,
    exits: &BTreeMap<u32, Vec<Exit>>,
    last_activity: &BTreeMap<u32, DateTime<Utc>>,
    close_times: &[DateTime<Utc>],
    events: &[PhaseEvent],
    track: &PhaseTrack,
    frame: Frame,
) -> Vec<LifecycleItem> {
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
                    let (h, s, e) = close_how(events, exits, pid, c.at);
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
            let active_after = |pid: u32| last_activity.get(&pid).is_some_and(|t| *t > c.at);
            let nth = closes.len() - 1;
            debug_assert_eq!(close_times.get(nth), Some(&c.at));
            for (&spid, p) in procs {
                let lived_on = p.exit.is_none_or(|e| secs(c.at, e) >= 1.0);
                if Some(spid) == pid || !p.alive_at(c.at) || !(active_after(spid) || lived_on) {
                    continue;
                }
                let adj = p.score_at_close.get(nth).copied().flatten();
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
    for (&pid, p) in procs {
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
fn phase_pid(events: &[PhaseEvent], to: Phase, at: DateTime<Utc>) -> Option<u32> {
    events
        .iter()
        .find(|e| e.change.to == to && e.ts == at)
        .map(|e| e.pid)
}

/// How the close at `at` happened: from the phase event, else from the process's exit.
fn close_how(
    events: &[PhaseEvent],
    exits: &BTreeMap<u32, Vec<Exit>>,
    pid: Option<u32>,
    at: DateTime<Utc>,
) -> (ExitHow, Option<i32>, Option<i32>) {
    let from_phase = events.iter().find_map(|e| {
        let p = &e.change;
        (p.to == Phase::Closed && e.ts == at && Some(e.pid) == pid)
            .then_some(p.how.map(|h| (h, p.signal, p.exit_code)))
            .flatten()
    });
    if let Some(h) = from_phase {
        return h;
    }
    // Sessions from before `how` was recorded: the exit event itself.
    pid.and_then(|p| exits.get(&p))
        .and_then(|x| x.iter().find(|(ts, ..)| *ts <= at))
        .map(|(_, signal, code)| match (signal, code) {
            (Some(s), _) => (ExitHow::Killed, Some(*s), None),
            (None, Some(c)) => (ExitHow::Exited, None, Some(*c)),
            _ => (ExitHow::Unknown, None, None),
        })
        .unwrap_or((ExitHow::Unknown, None, None))
}
