//! Executing scenario steps. They run on their own thread while the recorder's event loop owns
//! the main thread; they talk to the recording through its control socket (markers, phases,
//! the final stop) and learn about the app's processes from the session's events (forks and
//! exits as they are flushed) and from /proc.
use std::{
    collections::HashMap,
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::{Action, Step, Vars, Wait, expect::app_matches};
use crate::{
    control::{self, MarkRequest},
    event::{Body, Event, ProcOp},
    record::alive,
};

/// How a step ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepResult {
    /// `setup` or `step`.
    pub stage: &'static str,
    /// 1-based, within its stage.
    pub index: usize,
    pub line: usize,
    pub what: String,
    pub ok: bool,
    pub secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The processes of the target app, for `wait_for` running / exited / band.
pub struct AppWatch {
    events: PathBuf,
    offset: u64,
    partial: String,
    /// pid -> still alive as far as events tell.
    seen: HashMap<u32, bool>,
    app: Option<String>,
    /// Processes of these uids count (package and uid targets).
    pub uids: Vec<u32>,
    /// Processes with this kernel name count (comm targets).
    pub comm: Option<String>,
    /// Processes named in session.json's target pids (the command, a pid-file pid).
    pub roots: Vec<u32>,
}

impl AppWatch {
    pub fn new(session: &Path, app: Option<String>) -> AppWatch {
        AppWatch {
            events: session.join("events.jsonl"),
            offset: 0,
            partial: String::new(),
            seen: HashMap::new(),
            app,
            uids: Vec::new(),
            comm: None,
            roots: Vec::new(),
        }
    }

    /// Read the events flushed since the last call.
    fn poll(&mut self) {
        let Ok(mut f) = File::open(&self.events) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let complete = match self.partial.rfind('\n') {
            Some(i) => {
                let rest = self.partial.split_off(i + 1);
                std::mem::replace(&mut self.partial, rest)
            }
            None => return,
        };
        for line in complete.lines() {
            let Ok(ev) = serde_json::from_str::<Event>(line) else {
                continue;
            };
            if ev.pid == 0 {
                continue;
            }
            if let Some(want) = &self.app
                && !ev.app.as_deref().is_some_and(|a| app_matches(a, want))
            {
                continue;
            }
            match &ev.body {
                Body::Process(p) if p.op == ProcOp::Exit => {
                    self.seen.insert(ev.pid, false);
                }
                Body::Process(p) if p.op == ProcOp::Fork => {
                    self.seen.entry(ev.pid).or_insert(true);
                    if let Some(c) = p.child_pid {
                        self.seen.entry(c).or_insert(true);
                    }
                }
                _ => {
                    self.seen.entry(ev.pid).or_insert(true);
                }
            }
        }
    }

    /// The app's live processes.
    pub fn live(&mut self) -> Vec<u32> {
        self.poll();
        let mut pids: Vec<u32> = self
            .seen
            .iter()
            .filter(|(_, alive)| **alive)
            .map(|(p, _)| *p)
            .chain(self.roots.iter().copied())
            .collect();
        if !self.uids.is_empty() || self.comm.is_some() {
            let comm = self.comm.as_deref().map(|c| &c[..c.len().min(15)]);
            for p in procfs::process::all_processes()
                .into_iter()
                .flatten()
                .flatten()
            {
                let uid_hit =
                    !self.uids.is_empty() && p.status().is_ok_and(|s| self.uids.contains(&s.ruid));
                let comm_hit = comm.is_some_and(|c| p.stat().is_ok_and(|s| s.comm == c));
                if uid_hit || comm_hit {
                    pids.push(p.pid as u32);
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids.retain(|p| alive(*p));
        pids
    }
}

pub struct Runner<'a> {
    pub vars: &'a Vars,
    pub session: &'a Path,
    /// Set when the recording has ended: waiting steps give up at once.
    pub ended: &'a AtomicBool,
    /// Command output (steps.log in the session).
    pub log: File,
    /// Commands started with `background = true`, stopped at the end of the run.
    pub background: Vec<Child>,
    pub watch: Option<AppWatch>,
    /// The scenario's app: the default app of phase and marker steps.
    pub app: Option<String>,
    pub quiet: bool,
    /// `run --run-as USER`: the (uid, gid) every command of the scenario runs as.
    pub run_as: Option<(u32, u32)>,
}

const TICK: Duration = Duration::from_millis(20);

/// Set by SIGINT/SIGTERM once [`catch_interrupts`] has run: from the start of `emuwatch run`,
/// setup steps included, so a signal before the recording starts ends the run like one during
/// it (the step's processes stopped, run.json and JUnit written, exit 2) instead of killing
/// emuwatch with the default action.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Catch SIGINT and SIGTERM for the rest of the process (`emuwatch run`). The recorder's own
/// handlers (tokio's, installed when the recording starts) chain to this one, so the flag is
/// also set by a signal during the recording.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether SIGINT or SIGTERM has arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

pub const INTERRUPTED_MSG: &str = "interrupted (SIGINT/SIGTERM)";

impl Runner<'_> {
    /// The recording has ended, or the run was interrupted: waiting steps give up.
    fn over(&self) -> bool {
        self.ended.load(Ordering::Relaxed) || interrupted()
    }

    /// Why a step gave up when [`Self::over`].
    fn over_why(&self) -> String {
        if interrupted() {
            INTERRUPTED_MSG.into()
        } else {
            "the recording ended first".into()
        }
    }

    /// Run `steps` in order; stop at the first that fails. Returns one result per step run.
    pub fn run_all(&mut self, stage: &'static str, steps: &[Step]) -> Vec<StepResult> {
        let mut out = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let t = Instant::now();
            let what = s.describe();
            let r = self.run(s);
            let res = StepResult {
                stage,
                index: i + 1,
                line: s.line,
                what: what.clone(),
                ok: r.is_ok(),
                secs: (t.elapsed().as_secs_f64() * 1e3).round() / 1e3,
                error: r.err(),
            };
            if !self.quiet {
                let status = match &res.error {
                    None => "ok".to_string(),
                    Some(e) => format!("FAILED: {e}"),
                };
                println!(
                    "  {stage} {}/{}  {}  {status} ({:.1}s)",
                    i + 1,
                    steps.len(),
                    crate::escape::escape(&what),
                    res.secs
                );
            }
            let ok = res.ok;
            out.push(res);
            if !ok {
                break;
            }
        }
        out
    }

    fn run(&mut self, s: &Step) -> Result<(), String> {
        if interrupted() {
            return Err(INTERRUPTED_MSG.into());
        }
        match &s.action {
            Action::Run {
                cmd,
                background,
                allow_failure,
            } => {
                let argv = cmd.argv(self.vars).map_err(|e| format!("{e:#}"))?;
                let _ = writeln!(self.log, "== line {}: {}", s.line, argv.join(" "));
                let mut c = Command::new(&argv[0]);
                if let Some((uid, gid)) = self.run_as {
                    // (std drops the supplementary groups when root sets a uid.)
                    c.uid(uid).gid(gid);
                }
                c.args(&argv[1..])
                    .stdin(Stdio::null())
                    .current_dir(&self.vars.scenario_dir)
                    .env("EMUWATCH_SESSION", self.session)
                    .process_group(0);
                if let Ok(f) = self.log.try_clone() {
                    c.stdout(f);
                }
                if let Ok(f) = self.log.try_clone() {
                    c.stderr(f);
                }
                let mut child = c
                    .spawn()
                    .map_err(|e| format!("cannot run {:?}: {e}", argv[0]))?;
                if *background {
                    self.background.push(child);
                    return Ok(());
                }
                let t = Instant::now();
                loop {
                    match child.try_wait() {
                        Ok(Some(st)) if st.success() || *allow_failure => return Ok(()),
                        Ok(Some(st)) => {
                            return Err(format!(
                                "{} exited with {st} (output in steps.log)",
                                argv[0]
                            ));
                        }
                        Ok(None) => {}
                        Err(e) => return Err(format!("wait for {}: {e}", argv[0])),
                    }
                    if t.elapsed() >= s.timeout || self.over() {
                        stop(&mut child);
                        return Err(if self.over() {
                            self.over_why()
                        } else {
                            format!("timed out after {:?}", s.timeout)
                        });
                    }
                    std::thread::sleep(TICK);
                }
            }
            Action::Sleep(d) => {
                let t = Instant::now();
                while t.elapsed() < *d {
                    if self.over() {
                        return Err(self.over_why());
                    }
                    std::thread::sleep(TICK.min(*d - t.elapsed().min(*d)));
                }
                Ok(())
            }
            Action::Wait(w) => self.wait(w, s.timeout),
            Action::Phase { phase, label, app } => self.mark(MarkRequest {
                label: label
                    .clone()
                    .unwrap_or_else(|| format!("scenario: {}", phase.as_str())),
                phase: Some(*phase),
                app: app.clone().or_else(|| self.app.clone()),
                stop: false,
            }),
            Action::Marker { label, app } => self.mark(MarkRequest {
                label: label.clone(),
                phase: None,
                app: app.clone().or_else(|| self.app.clone()),
                stop: false,
            }),
        }
    }

    fn mark(&self, req: MarkRequest) -> Result<(), String> {
        control::mark(self.session, &req).map_err(|e| format!("{e:#}"))
    }

    fn wait(&mut self, w: &Wait, timeout: Duration) -> Result<(), String> {
        let t = Instant::now();
        let mut last_try = None::<Instant>;
        // "exited" must hold twice in a row: a daemon's fork event may still be on its way
        // from the kernel when its parent has just gone.
        let mut exited_once = false;
        loop {
            let done = match w {
                Wait::Running | Wait::Exited | Wait::Band(_) => {
                    let watch = self
                        .watch
                        .as_mut()
                        .ok_or("this wait needs a recording (it is not a setup step)")?;
                    let live = watch.live();
                    match w {
                        Wait::Running => !live.is_empty(),
                        Wait::Exited => {
                            let gone = live.is_empty();
                            let twice = gone && exited_once;
                            exited_once = gone;
                            twice
                        }
                        Wait::Band(b) => live.iter().any(|p| {
                            std::fs::read_to_string(format!("/proc/{p}/oom_score_adj"))
                                .ok()
                                .and_then(|s| s.trim().parse::<i32>().ok())
                                .is_some_and(|adj| adj >= b.floor)
                        }),
                        _ => unreachable!("matched above"),
                    }
                }
                Wait::File(f) => {
                    let p = f.expand(self.vars).map_err(|e| format!("{e:#}"))?;
                    Path::new(&p).exists()
                }
                Wait::Command(c) => {
                    // At most every half second: the command may be `adb shell ...`.
                    if last_try.is_some_and(|l| l.elapsed() < Duration::from_millis(500)) {
                        false
                    } else {
                        last_try = Some(Instant::now());
                        let argv = c.argv(self.vars).map_err(|e| format!("{e:#}"))?;
                        let mut cmd = Command::new(&argv[0]);
                        if let Some((uid, gid)) = self.run_as {
                            cmd.uid(uid).gid(gid);
                        }
                        let mut child = cmd
                            .args(&argv[1..])
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .current_dir(&self.vars.scenario_dir)
                            .process_group(0)
                            .spawn()
                            .map_err(|e| format!("cannot run {:?}: {e}", argv[0]))?;
                        // Polled, so that the end of the recording or the step's timeout
                        // stops a command that hangs.
                        loop {
                            match child.try_wait() {
                                Ok(Some(st)) => break st.success(),
                                Ok(None) => {}
                                Err(e) => return Err(format!("wait for {}: {e}", argv[0])),
                            }
                            if self.over() || t.elapsed() >= timeout {
                                stop(&mut child);
                                break false;
                            }
                            std::thread::sleep(TICK);
                        }
                    }
                }
            };
            if done {
                return Ok(());
            }
            // Every wait gives up when the recording has ended (duration, SIGINT/SIGTERM):
            // nothing it waits for can be recorded any more.
            if self.over() {
                return Err(self.over_why());
            }
            if t.elapsed() >= timeout {
                return Err(format!("timed out after {timeout:?}"));
            }
            std::thread::sleep(TICK * 5);
        }
    }

    /// Stop every background command (SIGTERM to its process group, then SIGKILL).
    pub fn stop_background(&mut self) {
        for mut c in self.background.drain(..) {
            stop(&mut c);
        }
    }
}

impl Drop for Runner<'_> {
    /// However the run ends (an error included), its background commands do not outlive it.
    fn drop(&mut self) {
        self.stop_background();
    }
}

/// SIGTERM the child's process group, SIGKILL after a second, and reap it.
fn stop(child: &mut Child) {
    let pgid = child.id() as i32;
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(TICK);
    }
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}
