//! Phase tracking: each app is `foreground`, `background` or `closed`, decided from its
//! processes' oom_score_adj bands, its main process exiting, and explicit markers. Phase
//! changes become timeline events, and every event is stamped with its app's phase.
use std::collections::{HashMap, HashSet};

use crate::{
    enrich::android::band_is_foreground,
    event::{Body, Event, Phase, PhaseChange, ProcOp},
};

#[derive(Debug)]
struct AppPhase {
    phase: Phase,
    /// The app's main process: the first of its processes seen.
    main: u32,
    live: HashSet<u32>,
}

#[derive(Default)]
pub struct PhaseTracker {
    apps: HashMap<String, AppPhase>,
}

impl PhaseTracker {
    pub fn phase_of(&self, app: &str) -> Option<Phase> {
        self.apps.get(app).map(|a| a.phase)
    }

    /// Stamp `ev` with its app's phase, first applying any phase change it causes (pushed to
    /// `out` before the event itself).
    pub fn process(&mut self, mut ev: Event, out: &mut Vec<Event>) {
        let Some(app) = ev.app.clone() else {
            out.push(ev);
            return;
        };
        let state = self.apps.entry(app.clone()).or_insert_with(|| AppPhase {
            phase: Phase::Foreground,
            main: ev.pid,
            live: HashSet::new(),
        });
        let mut change = None;
        match &ev.body {
            Body::Process(p) if p.op == ProcOp::Fork => {
                state.live.insert(ev.pid);
                if let Some(c) = p.child_pid {
                    state.live.insert(c);
                }
            }
            Body::Process(p) if p.op == ProcOp::Exit => {
                state.live.remove(&ev.pid);
                if ev.pid == state.main && state.phase != Phase::Closed {
                    let others = state.live.len();
                    change = Some((
                        Phase::Closed,
                        "main_exited",
                        format!(
                            "main process {} exited; {others} other process(es) of the app alive",
                            ev.pid
                        ),
                    ));
                }
            }
            Body::AppState(s) => {
                state.live.insert(ev.pid);
                let fg = band_is_foreground(&s.band);
                let to = match (state.phase, fg) {
                    (Phase::Background, true) => Some(Phase::Foreground),
                    // A closed app comes back only when its (new) main process is on screen.
                    (Phase::Closed, true) if ev.pid == state.main => Some(Phase::Foreground),
                    (Phase::Foreground, false) if s.oom_score_adj >= 0 => Some(Phase::Background),
                    _ => None,
                };
                if let Some(to) = to {
                    change = Some((
                        to,
                        "app_state",
                        format!(
                            "pid {} oom_score_adj {} ({})",
                            ev.pid, s.oom_score_adj, s.band
                        ),
                    ));
                }
            }
            _ => {
                state.live.insert(ev.pid);
            }
        }
        if let Some((to, reason, detail)) = change {
            out.push(self.change(&app, to, reason, Some(detail), &ev));
        }
        ev.phase = self.phase_of(&app);
        out.push(ev);
    }

    /// Set `app`'s phase (a marker or scenario step); returns the phase event, if it changed.
    pub fn set(
        &mut self,
        app: &str,
        to: Phase,
        reason: &str,
        detail: Option<String>,
        like: &Event,
    ) -> Option<Event> {
        let state = self
            .apps
            .entry(app.to_string())
            .or_insert_with(|| AppPhase {
                phase: Phase::Foreground,
                main: like.pid,
                live: HashSet::new(),
            });
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
        reason: &str,
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
                reason: reason.into(),
                detail,
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
    use crate::event::{AppState, Connect, Process};

    fn ev(pid: u32, body: Body) -> Event {
        Event {
            ts: Utc::now(),
            body,
            pid,
            tid: pid,
            ppid: 1,
            uid: 10123,
            comm: "app".into(),
            app: Some("com.example.app".into()),
            phase: None,
        }
    }

    fn proc_(op: ProcOp, child: Option<u32>) -> Body {
        Body::Process(Process {
            child_pid: child,
            ..Process::op(op)
        })
    }

    fn state(adj: i32) -> Body {
        Body::AppState(AppState {
            oom_score_adj: adj,
            band: crate::enrich::android::band(adj).into(),
            source: "kernel".into(),
        })
    }

    fn connect() -> Body {
        Body::Connect(Connect {
            family: "inet".into(),
            proto: "tcp".into(),
            daddr: "127.0.0.1".parse().unwrap(),
            dport: 1,
            result: 0,
            error: None,
            scope: None,
            country: None,
            asn: None,
            as_org: None,
        })
    }

    fn run(t: &mut PhaseTracker, e: Event) -> Vec<Event> {
        let mut out = Vec::new();
        t.process(e, &mut out);
        out
    }

    #[test]
    fn foreground_background_closed() {
        let mut t = PhaseTracker::default();
        let o = run(&mut t, ev(10, connect()));
        assert_eq!(o[0].phase, Some(Phase::Foreground));
        run(&mut t, ev(10, proc_(ProcOp::Fork, Some(11))));
        let o = run(&mut t, ev(10, state(100)));
        assert_eq!(o.len(), 1, "visible is still foreground");
        let o = run(&mut t, ev(10, state(900)));
        assert!(
            matches!(&o[0].body, Body::Phase(p) if p.to == Phase::Background && p.reason == "app_state")
        );
        assert_eq!(o[1].phase, Some(Phase::Background));
        let o = run(&mut t, ev(11, connect()));
        assert_eq!(o[0].phase, Some(Phase::Background));
        let o = run(&mut t, ev(10, proc_(ProcOp::Exit, None)));
        assert!(
            matches!(&o[0].body, Body::Phase(p) if p.to == Phase::Closed && p.reason == "main_exited" && p.from == Some(Phase::Background))
        );
        let o = run(&mut t, ev(11, connect()));
        assert_eq!(
            o[0].phase,
            Some(Phase::Closed),
            "the daemon's connect after close"
        );
        // A child's band does not reopen a closed app.
        let o = run(&mut t, ev(11, state(0)));
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].phase, Some(Phase::Closed));
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
            .set("com.example.app", Phase::Closed, "marker", None, &like)
            .unwrap();
        assert_eq!(e.phase, Some(Phase::Closed));
        assert!(
            t.set("com.example.app", Phase::Closed, "marker", None, &like)
                .is_none(),
            "no change, no event"
        );
    }
}
