//! Phase tracking: each app is `foreground`, `background` or `closed`, decided from its
//! processes' oom_score_adj bands as the system (lmkd, system_server) writes them, the process
//! hosting its screen exiting, its last process exiting, and explicit markers. Phase changes
//! become timeline events, and every event is stamped with its app's phase.
//!
//! The rules (docs/events.md, phases):
//! - `foreground` while a live process of the app is in a foreground or visible band
//!   (0 <= oom_score_adj < 200), `background` while it has live processes and none is visible;
//! - `closed` once the process hosting its screen dies (the first process seen, for a desktop
//!   command; on Android the process the system last put on screen) or all its processes
//!   have; it stays closed until the system puts one of its processes on screen again (a
//!   relaunch, whatever the pid). A service restarted after close does not reopen it;
//! - only scores written by a process outside the app count (and the values found when a
//!   process is first seen, which never reopen a closed app): an app adjusting its own or its
//!   children's scores is recorded but moves nothing.
// Looked up for every event: foldhash's hasher instead of SipHash (keys are pids and app
// names; its per-process random seed keeps hostile names from aiming at one bucket).
use foldhash::{HashMap, HashSet};

use crate::{
    enrich::android::{band, band_is_foreground},
    event::{
        AppState, Body, Event, ExitHow, Phase, PhaseChange, PhaseReason, ProcOp, Process,
        StateSource,
    },
};

/// A score in the foreground or visible bands (0-199): the app is on screen.
fn visible(adj: i32) -> bool {
    band_is_foreground(band(adj))
}

#[derive(Debug)]
struct AppPhase {
    phase: Phase,
    /// Live processes and their last counted score (`None`: unknown, or a negative "system"
    /// score, which says nothing about the screen).
    live: HashMap<u32, Option<i32>>,
    /// The process hosting the app's screen: the app's first process until the system puts a
    /// process on screen (then that one, `host_confirmed`).
    host: Option<u32>,
    host_confirmed: bool,
}

/// What changed an app's phase.
struct Change {
    to: Phase,
    reason: PhaseReason,
    detail: String,
    /// How the process behind a close ended: (`how`, signal, exit code).
    how: Option<(ExitHow, Option<i32>, Option<i32>)>,
}

#[derive(Default)]
pub struct PhaseTracker {
    apps: HashMap<String, AppPhase>,
    /// Processes that exited: late events about them (read totals flushed at exit) do not make
    /// them live again; a fork or uid change naming the pid again does.
    dead: HashSet<u32>,
    /// The app each process was last seen in (a zygote child moves to its package's app when
    /// it takes the package's uid).
    app_of: HashMap<u32, String>,
}

fn how_ended(p: &Process) -> (ExitHow, Option<i32>, Option<i32>) {
    match (p.signal, p.exit_code) {
        (Some(sig), _) => (ExitHow::Killed, Some(sig), None),
        (None, Some(code)) => (ExitHow::Exited, None, Some(code)),
        (None, None) => (ExitHow::Unknown, None, None),
    }
}

fn how_text(how: (ExitHow, Option<i32>, Option<i32>)) -> String {
    match how {
        (ExitHow::Killed, Some(sig), _) => format!("killed by signal {sig}"),
        (ExitHow::Exited, _, Some(code)) => format!("exited with code {code}"),
        _ => "ended (how is unknown)".into(),
    }
}

impl AppPhase {
    fn new(first: Option<u32>) -> AppPhase {
        AppPhase {
            phase: Phase::Foreground,
            live: HashMap::default(),
            host: first,
            host_confirmed: false,
        }
    }

    /// Foreground or background from the live processes' scores (unchanged when none is known).
    fn phase_by_scores(&self) -> Phase {
        if self.live.values().flatten().any(|a| visible(*a)) {
            Phase::Foreground
        } else if self.live.values().any(Option::is_some) {
            Phase::Background
        } else {
            self.phase
        }
    }
}

impl PhaseTracker {
    pub fn phase_of(&self, app: &str) -> Option<Phase> {
        self.apps.get(app).map(|a| a.phase)
    }

    /// Stamp `ev` with its app's phase, first applying any phase change it causes (pushed to
    /// `out` before the event itself).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn process(&mut self, mut ev: Event, out: &mut Vec<Event>) {
        self.stamp(&mut ev, out);
        out.push(ev);
    }

    /// `process` in place: stamps `ev`, and pushes the phase change it causes, if any, to
    /// `changes` (it goes before `ev`). Runs for every event: an app and process already
    /// known cost no allocation, and the event is not moved.
    pub fn stamp(&mut self, ev: &mut Event, changes: &mut Vec<Event>) {
        // Taken out while the event is looked at (no copy), put back at the end.
        let Some(app) = ev.app.take() else {
            return;
        };
        let pid = ev.pid;
        match &ev.body {
            Body::Process(p) if p.op == ProcOp::Setuid => {
                self.dead.remove(&pid);
            }
            Body::Process(p) if p.op == ProcOp::Fork => {
                if let Some(c) = p.child_pid {
                    self.dead.remove(&c);
                }
            }
            _ => {}
        }
        // A process that moved to another app (a zygote child taking its package's uid)
        // leaves the old one quietly, taking its score along.
        let mut carried = None;
        let prev = self.app_of.get(&pid);
        let same_app = prev == Some(&app);
        if let Some(prev) = prev
            && !same_app
            && let Some(old) = self.apps.get_mut(prev)
        {
            carried = old.live.remove(&pid).flatten();
            if old.host == Some(pid) {
                old.host = None;
            }
        }
        let alive = !self.dead.contains(&pid);
        if alive && !same_app {
            self.app_of.insert(pid, app.clone());
        }
        if !self.apps.contains_key(&app) {
            self.apps
                .insert(app.clone(), AppPhase::new(alive.then_some(pid)));
        }
        let state = self.apps.get_mut(&app).expect("inserted above");
        let is_exit = matches!(&ev.body, Body::Process(p) if p.op == ProcOp::Exit);
        if alive && !is_exit {
            state.live.entry(pid).or_insert(carried);
        }
        let change = match &ev.body {
            Body::Process(p) if p.op == ProcOp::Fork => {
                if let Some(c) = p.child_pid {
                    // The child inherits its parent's score in the kernel, but that says
                    // nothing the system decided about it: unknown until the system scores it.
                    state.live.insert(c, None);
                    self.app_of.insert(c, app.clone());
                }
                None
            }
            Body::Process(p) if p.op == ProcOp::Exit => {
                state.live.remove(&pid);
                self.dead.insert(pid);
                self.app_of.remove(&pid);
                Self::after_exit(state, pid, p)
            }
            Body::AppState(s) if s.counts() && alive => Self::after_state(state, pid, s),
            _ => None,
        };
        let unchanged = state.phase;
        let phase = change.as_ref().map_or(unchanged, |c| c.to);
        if let Some(c) = change {
            let how = c.how;
            let mut e = self.change(&app, c.to, c.reason, Some(c.detail), ev);
            if let (Body::Phase(p), Some((how, signal, exit_code))) = (&mut e.body, how) {
                p.how = Some(how);
                p.signal = signal;
                p.exit_code = exit_code;
            }
            changes.push(e);
        }
        ev.phase = Some(phase);
        debug_assert_eq!(ev.phase, self.phase_of(&app));
        ev.app = Some(app);
    }

    fn after_exit(state: &mut AppPhase, pid: u32, p: &Process) -> Option<Change> {
        if state.phase == Phase::Closed {
            return None;
        }
        let how = how_ended(p);
        let others = state.live.len();
        if state.host == Some(pid) {
            return Some(Change {
                to: Phase::Closed,
                reason: PhaseReason::MainExited,
                detail: format!(
                    "pid {pid}, the process hosting the app's screen, {}; {others} other process(es) of the app alive",
                    how_text(how)
                ),
                how: Some(how),
            });
        }
        if state.live.is_empty() {
            return Some(Change {
                to: Phase::Closed,
                reason: PhaseReason::AllExited,
                detail: format!("pid {pid}, the app's last process, {}", how_text(how)),
                how: Some(how),
            });
        }
        let to = state.phase_by_scores();
        (to != state.phase).then(|| Change {
            to,
            reason: PhaseReason::AppState,
            detail: format!("pid {pid} {}", how_text(how)),
            how: None,
        })
    }

    fn after_state(state: &mut AppPhase, pid: u32, s: &AppState) -> Option<Change> {
        let adj = s.oom_score_adj;
        let kernel = s.source == StateSource::Kernel;
        state.live.insert(pid, (adj >= 0).then_some(adj));
        // Which process hosts the screen: the one the system put on screen (the lowest score
        // when several are visible).
        if visible(adj) {
            let host_adj = state
                .host
                .and_then(|h| state.live.get(&h).copied())
                .flatten();
            let take = match (state.host, host_adj) {
                (None, _) => true,
                (Some(h), _) if h == pid => true,
                (Some(h), _) if !state.live.contains_key(&h) => true,
                _ if !state.host_confirmed => true,
                (_, Some(h)) => !visible(h) || adj < h,
                (_, None) => true,
            };
            if take {
                state.host = Some(pid);
                state.host_confirmed = true;
            }
        } else if kernel && state.host == Some(pid) && !state.host_confirmed {
            // The system says the app's first process is not on screen: it hosts no screen.
            state.host = None;
        }
        let by = match (&s.writer_comm, s.writer_pid) {
            (Some(c), Some(w)) => format!(" written by {c} (pid {w})"),
            _ => format!(" ({})", s.source),
        };
        let to = if state.phase == Phase::Closed {
            // Only the system putting a process on screen reopens a closed app.
            if !(kernel && visible(adj)) {
                return None;
            }
            return Some(Change {
                to: Phase::Foreground,
                reason: PhaseReason::AppState,
                detail: format!(
                    "relaunched: pid {pid} on screen, oom_score_adj {adj} ({}){by}",
                    s.band
                ),
                how: None,
            });
        } else {
            state.phase_by_scores()
        };
        (to != state.phase).then(|| Change {
            to,
            reason: PhaseReason::AppState,
            detail: format!("pid {pid} oom_score_adj {adj} ({}){by}", s.band),
            how: None,
        })
    }

    /// Set `app`'s phase (a marker or scenario step); returns the phase event, if it changed.
    pub fn set(
        &mut self,
        app: &str,
        to: Phase,
        reason: PhaseReason,
        detail: Option<String>,
        like: &Event,
    ) -> Option<Event> {
        let state = self
            .apps
            .entry(app.to_string())
            .or_insert_with(|| AppPhase::new(None));
        (state.phase != to).then(|| self.change(app, to, reason, detail, like))
    }

    pub fn apps(&self) -> Vec<String> {
        let mut v: Vec<String> = self.apps.keys().cloned().collect();
        v.sort();
        v
    }

    fn change(
        &mut self,
        app: &str,
        to: Phase,
        reason: PhaseReason,
        detail: Option<String>,
        like: &Event,
    ) -> Event {
        let state = self.apps.get_mut(app).expect("known app");
        let from = state.phase;
        state.phase = to;
        Event {
            ts: like.ts,
            body: Body::Phase(PhaseChange {
                to,
                from: Some(from),
                reason,
                detail,
                how: None,
                signal: None,
                exit_code: None,
            }),
            pid: like.pid,
            tid: like.tid,
            ppid: like.ppid,
            uid: like.uid,
            comm: like.comm.clone(),
            app: Some(app.to_string()),
            phase: Some(to),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::event::{AppState, Connect, Process, Writer};

    const APP: &str = "com.example.app";

    fn ev(pid: u32, body: Body) -> Event {
        Event {
            ts: Utc::now(),
            body,
            pid,
            tid: pid,
            ppid: 1,
            uid: 10123,
            comm: "app".into(),
            app: Some(APP.into()),
            phase: None,
        }
    }

    fn proc_(op: ProcOp, child: Option<u32>) -> Body {
        Body::Process(Process {
            child_pid: child,
            ..Process::op(op)
        })
    }

    fn killed(sig: i32) -> Body {
        Body::Process(Process {
            signal: Some(sig),
            ..Process::op(ProcOp::Exit)
        })
    }

    /// A score written by `by` (the system or the app), or found at start (`None`).
    fn state_by(adj: i32, by: Option<Writer>) -> Body {
        let kernel = by.is_some();
        Body::AppState(AppState {
            oom_score_adj: adj,
            band: crate::enrich::android::band(adj).into(),
            source: if kernel {
                StateSource::Kernel
            } else {
                StateSource::Start
            },
            written_by: by,
            writer_pid: kernel.then_some(1),
            writer_comm: kernel.then(|| "lmkd".into()),
        })
    }

    fn state(adj: i32) -> Body {
        state_by(adj, Some(Writer::System))
    }

    fn connect() -> Body {
        Body::Connect(Connect {
            family: crate::event::AddrFamily::Inet,
            proto: crate::event::Proto::Tcp,
            daddr: "127.0.0.1".parse().unwrap(),
            dport: 1,
            result: 0,
            error: None,
            scope: None,
            country: None,
            asn: None,
            as_org: None,
            conn_id: None,
            host: None,
            host_source: None,
        })
    }

    fn run(t: &mut PhaseTracker, e: Event) -> Vec<Event> {
        let mut out = Vec::new();
        t.process(e, &mut out);
        out
    }

    /// The phase a connect by `pid` is stamped with now.
    fn phase_now(t: &mut PhaseTracker, pid: u32) -> Phase {
        run(t, ev(pid, connect())).last().unwrap().phase.unwrap()
    }

    fn change(o: &[Event]) -> Option<&PhaseChange> {
        o.iter().find_map(|e| match &e.body {
            Body::Phase(p) => Some(p),
            _ => None,
        })
    }

    #[test]
    fn desktop_command_foreground_background_closed() {
        let mut t = PhaseTracker::default();
        let o = run(&mut t, ev(10, connect()));
        assert_eq!(o[0].phase, Some(Phase::Foreground));
        run(&mut t, ev(10, proc_(ProcOp::Fork, Some(11))));
        let o = run(&mut t, ev(10, state(100)));
        assert_eq!(o.len(), 1, "visible is still foreground");
        let o = run(&mut t, ev(10, state(900)));
        let c = change(&o).unwrap();
        assert_eq!((c.to, c.reason.as_str()), (Phase::Background, "app_state"));
        assert_eq!(o[1].phase, Some(Phase::Background));
        assert_eq!(phase_now(&mut t, 11), Phase::Background);
        // The first process (it hosts the "screen") exits: closed, the daemon lives on.
        let o = run(&mut t, ev(10, proc_(ProcOp::Exit, None)));
        let c = change(&o).unwrap();
        assert_eq!(
            (c.to, c.reason.as_str(), c.from),
            (Phase::Closed, "main_exited", Some(Phase::Background))
        );
        assert_eq!(
            phase_now(&mut t, 11),
            Phase::Closed,
            "the daemon after close"
        );
        // The app's own writes never reopen it (nor move it at all).
        let o = run(&mut t, ev(11, state_by(0, Some(Writer::App))));
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].phase, Some(Phase::Closed));
    }

    #[test]
    fn the_apps_own_score_writes_do_not_move_the_phase() {
        let mut t = PhaseTracker::default();
        run(&mut t, ev(10, state_by(0, None)));
        run(&mut t, ev(10, proc_(ProcOp::Fork, Some(11))));
        // Chromium-like: the browser demotes its child and itself.
        for o in [
            run(&mut t, ev(11, state_by(300, Some(Writer::App)))),
            run(&mut t, ev(10, state_by(900, Some(Writer::App)))),
        ] {
            assert!(change(&o).is_none(), "{o:?}");
        }
        assert_eq!(phase_now(&mut t, 10), Phase::Foreground);
        let o = run(&mut t, ev(10, state(900)));
        assert_eq!(change(&o).unwrap().to, Phase::Background);
    }

    #[test]
    fn a_service_band_beside_a_visible_process_stays_foreground() {
        let mut t = PhaseTracker::default();
        run(&mut t, ev(10, state(0)));
        let o = run(&mut t, ev(20, state(500)));
        assert!(change(&o).is_none(), "{o:?}");
        assert_eq!(phase_now(&mut t, 20), Phase::Foreground);
        let o = run(&mut t, ev(10, state(900)));
        assert_eq!(change(&o).unwrap().to, Phase::Background);
    }

    #[test]
    fn swipe_restart_relaunch() {
        let mut t = PhaseTracker::default();
        // A zygote child whose score is inherited from zygote (-1000: no information).
        run(&mut t, ev(10, state_by(-1000, None)));
        run(&mut t, ev(10, state(0)));
        run(&mut t, ev(20, state(500))); // pkg:remote
        run(&mut t, ev(30, state(200))); // pkg:push, a foreground service
        run(&mut t, ev(10, state(900)));
        assert_eq!(phase_now(&mut t, 20), Phase::Background);
        // Swiped away: the screen's process killed, the service survives.
        let o = run(&mut t, ev(10, killed(9)));
        let c = change(&o).unwrap();
        assert_eq!((c.to, c.reason.as_str()), (Phase::Closed, "main_exited"));
        assert_eq!(
            (c.how, c.signal, c.exit_code),
            (Some(ExitHow::Killed), Some(9), None)
        );
        run(&mut t, ev(20, killed(9)));
        assert_eq!(phase_now(&mut t, 30), Phase::Closed);
        // The service's exit and a restarted job process leave it closed.
        run(&mut t, ev(30, proc_(ProcOp::Exit, None)));
        run(&mut t, ev(40, state_by(0, None)));
        let o = run(&mut t, ev(40, state(500)));
        assert!(change(&o).is_none());
        assert_eq!(phase_now(&mut t, 40), Phase::Closed);
        // Nor does a value found when a process is first seen; the system putting a new
        // process on screen does (a relaunch, whatever its pid).
        run(&mut t, ev(50, state_by(0, None)));
        assert_eq!(phase_now(&mut t, 50), Phase::Closed);
        let o = run(&mut t, ev(50, state(0)));
        let c = change(&o).unwrap();
        assert_eq!((c.to, c.reason.as_str()), (Phase::Foreground, "app_state"));
        assert!(c.detail.as_deref().unwrap().contains("relaunched"), "{c:?}");
        // And the relaunched process now hosts the screen: its death closes the app again.
        let o = run(&mut t, ev(50, proc_(ProcOp::Exit, None)));
        assert_eq!(change(&o).unwrap().to, Phase::Closed);
    }

    #[test]
    fn all_processes_gone_closes() {
        let mut t = PhaseTracker::default();
        run(&mut t, ev(10, state(500))); // a service, never on screen
        run(&mut t, ev(20, state(500)));
        let o = run(&mut t, ev(20, proc_(ProcOp::Exit, None)));
        assert!(
            change(&o).is_none(),
            "the first process, never on screen, hosts nothing"
        );
        let o = run(&mut t, ev(10, killed(9)));
        let c = change(&o).unwrap();
        assert_eq!((c.to, c.reason.as_str()), (Phase::Closed, "all_exited"));
        // A read total flushed after the exit does not bring the process back.
        run(&mut t, ev(10, connect()));
        run(&mut t, ev(10, proc_(ProcOp::Exit, None)));
        assert_eq!(t.phase_of(APP), Some(Phase::Closed));
    }

    #[test]
    fn back_to_foreground_and_markers() {
        let mut t = PhaseTracker::default();
        run(&mut t, ev(10, state(0)));
        run(&mut t, ev(10, state(700)));
        let o = run(&mut t, ev(10, state(0)));
        assert!(matches!(&o[0].body, Body::Phase(p) if p.to == Phase::Foreground));
        let like = ev(10, connect());
        let e = t
            .set(APP, Phase::Closed, PhaseReason::Marker, None, &like)
            .unwrap();
        assert_eq!(e.phase, Some(Phase::Closed));
        assert!(
            t.set(APP, Phase::Closed, PhaseReason::Marker, None, &like)
                .is_none(),
            "no change, no event"
        );
    }
}
