//! Scenario files: a TOML description of a scripted run — the target, setup commands, ordered
//! steps (commands, sleeps, waits, phase changes, markers) and expectations about what the app
//! may do in each phase. Documented in docs/scenarios.md; `emuwatch run` executes them.
//!
//! Every error in a scenario file names the file, line and column. Values are checked while
//! the TOML is read (toml attaches the value's position); rules that involve several fields
//! of one table are checked afterwards against the table's position.
pub mod expect;
pub mod junit;
mod outcome;
mod prepare;
mod raw;
pub mod run;
pub mod steps;
mod values;

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use crate::{
    capability::{Capability, ExpectField},
    event::{DeviceOp, Phase, Scope},
};
use raw::{RawFile, expectation, step};
pub use values::*;

/// A scenario file error: `file:line:column: message`.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ScenarioError {}

/// Where each line of a text starts, so that positions are found in log time (a scenario
/// of 100k steps asks for 100k of them).
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut at = offset.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= at);
        let start = self.starts[line - 1];
        let column = self.text[start..at].chars().count() + 1;
        (line, column)
    }
}

/// `[target] user`: the user the scenario's commands run as, found in the passwd database
/// when the scenario is read.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// What to record.
#[derive(Debug, Clone)]
pub enum Target {
    /// An Android package (its uid from packages.list).
    Package(String),
    Uid(u32),
    /// Processes by kernel name (first 15 bytes).
    Comm(String),
    /// The process whose pid the file holds when the run starts, and its descendants.
    PidFile(Template),
    /// A command started when the probes are attached.
    Command(Cmd),
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Package(p) => format!("package {p}"),
            Target::Uid(u) => format!("uid {u}"),
            Target::Comm(c) => format!("comm {c}"),
            Target::PidFile(f) => format!("pid in {}", f.raw()),
            Target::Command(c) => format!("command {}", c.text()),
        }
    }
}

/// `[record]`: how to record.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSection {
    /// The longest the recording may run (default 10m): a safety net for steps that hang.
    pub duration: Option<RecordDur>,
    /// Extra camera/microphone device patterns (`camera=GLOB`, `microphone=GLOB`).
    #[serde(default)]
    pub devices: Vec<Template>,
    pub ring_buffer: Option<Size>,
    /// How often to poll the ring buffer (default 5ms), as `emuwatch record --poll`.
    pub poll: Option<PollDur>,
    /// Pending bytes that wake the reader (default: a quarter of the ring buffer).
    pub wakeup_bytes: Option<u64>,
    /// Android's packages.list (default /data/system/packages.list).
    pub packages_list: Option<Template>,
    /// File category rules (docs/categories.md); relative to the scenario's directory.
    pub categories: Option<Template>,
    pub geoip_country: Option<Template>,
    pub geoip_asn: Option<Template>,
    /// `auto`, `raw` or `per-syscall`, as `emuwatch record --syscall-probes` (the command
    /// line wins when it is given there).
    pub syscall_probes: Option<crate::kernel::SyscallProbes>,
}

impl RecordSection {
    /// The probe choice of the run: the scenario's `syscall_probes` unless the command line
    /// (or its environment variable) asked for something other than auto.
    pub fn probes(&self, cli: crate::kernel::ProbeChoice) -> crate::kernel::ProbeChoice {
        use crate::kernel::SyscallProbes;
        match (cli.syscall_probes, self.syscall_probes) {
            (SyscallProbes::Auto, Some(s)) => crate::kernel::ProbeChoice {
                syscall_probes: s,
                ..cli
            },
            _ => cli,
        }
    }
}

/// What a `wait_for` step waits for.
#[derive(Debug, Clone)]
pub enum Wait {
    /// A process of the app is alive.
    Running,
    /// Every process of the app has exited.
    Exited,
    /// A live process of the app has an oom_score_adj in this band or a higher one.
    Band(Band),
    /// A file exists.
    File(Template),
    /// A command exits 0 (retried every half second).
    Command(Cmd),
}

#[derive(Debug, Clone)]
pub enum Action {
    Run {
        cmd: Cmd,
        /// Keep it running while the next steps run; stopped at the end of the run.
        background: bool,
        /// A non-zero exit status does not end the run.
        allow_failure: bool,
    },
    Sleep(Duration),
    Wait(Wait),
    Phase {
        phase: Phase,
        label: Option<String>,
        app: Option<String>,
    },
    Marker {
        label: String,
        app: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: Option<String>,
    pub action: Action,
    /// For `run` and `wait_for`.
    pub timeout: Duration,
    /// Line of the step in the scenario file.
    pub line: usize,
}

pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);

impl Step {
    /// One line for people: the step's name, or what it does.
    pub fn describe(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.action {
            Action::Run {
                cmd, background, ..
            } => format!(
                "run {}{}",
                cmd.text(),
                if *background { " (background)" } else { "" }
            ),
            Action::Sleep(d) => format!("sleep {d:?}"),
            Action::Wait(w) => match w {
                Wait::Running => "wait until the app is running".into(),
                Wait::Exited => "wait until the app has exited".into(),
                Wait::Band(b) => format!("wait until the app reaches band {}", b.name),
                Wait::File(f) => format!("wait until {} exists", f.raw()),
                Wait::Command(c) => format!("wait until `{}` succeeds", c.text()),
            },
            Action::Phase { phase, label, .. } => match label {
                Some(l) => format!("phase {} ({l})", phase.as_str()),
                None => format!("phase {}", phase.as_str()),
            },
            Action::Marker { label, .. } => format!("marker {label:?}"),
        }
    }
}

/// Which events an expectation counts, besides kind, phase and app.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub countries: Option<Vec<String>>,
    pub allowed_countries: Option<Vec<String>>,
    pub asns: Option<Vec<u32>>,
    pub allowed_asns: Option<Vec<u32>>,
    pub scopes: Option<Vec<Scope>>,
    /// Destination names: `name` (exactly, any case) or `*.suffix` (any name below it).
    pub hosts: Option<Vec<HostPattern>>,
    pub categories: Option<Vec<String>>,
    pub path: Option<glob::Pattern>,
    pub ops: Option<Vec<DeviceOp>>,
}

/// "At most `max` (default 0) events of `kind` matching the filter in `phases`", or for files
/// with `max_bytes`, "at most that many bytes read".
#[derive(Debug, Clone)]
pub struct Expectation {
    pub name: String,
    pub line: usize,
    pub kind: Capability,
    pub phases: Vec<Phase>,
    pub app: Option<String>,
    pub filter: Filter,
    pub max: u64,
    pub max_bytes: Option<u64>,
}

const ALL_PHASES: [Phase; 3] = [Phase::Foreground, Phase::Background, Phase::Closed];

#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// The app that phase steps and expectations are about (default: every app recorded).
    pub app: Option<String>,
    pub target: Target,
    /// `[target] user`: the scenario's commands (setup, steps, a command target) run as this
    /// user, not as root.
    pub user: Option<User>,
    pub record: RecordSection,
    pub setup: Vec<Step>,
    pub steps: Vec<Step>,
    pub expect: Vec<Expectation>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text =
            crate::safefs::read_regular_text(path, crate::safefs::TEXT_LIMIT).map_err(|e| {
                ScenarioError {
                    file: path.display().to_string(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read the scenario: {e:#}"),
                }
            })?;
        Scenario::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let index = LineIndex::new(text);
        let err_at = |offset: usize, message: String| {
            let (line, column) = index.line_col(offset);
            ScenarioError {
                file: file.clone(),
                line,
                column,
                message,
            }
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            err_at(e.span().map_or(0, |s| s.start), msg)
        })?;
        if raw.name.trim().is_empty() {
            return Err(err_at(0, "`name` is empty".into()));
        }
        let target_at = raw.target.span().start;
        let t = raw.target.into_inner();
        let user = match t.user {
            Some(name) => {
                let (uid, gid) = crate::record::lookup_user(&name)
                    .map_err(|e| err_at(target_at, format!("[target] user: {e:#}")))?;
                Some(User { name, uid, gid })
            }
            None => None,
        };
        let mut targets = Vec::new();
        if let Some(p) = t.package {
            targets.push(Target::Package(p));
        }
        if let Some(u) = t.uid {
            targets.push(Target::Uid(u));
        }
        if let Some(c) = t.comm {
            targets.push(Target::Comm(c));
        }
        if let Some(f) = t.pid_file {
            targets.push(Target::PidFile(f));
        }
        if let Some(c) = t.command {
            targets.push(Target::Command(c));
        }
        if targets.len() != 1 {
            return Err(err_at(
                target_at,
                format!(
                    "[target] needs exactly one of package, uid, comm, pid_file, command (found {})",
                    targets.len()
                ),
            ));
        }
        let target = targets.remove(0);
        let mut setup = Vec::new();
        for s in raw.setup {
            let at = s.span().start;
            let step = step(s.into_inner(), index.line_col(at).0).map_err(|m| err_at(at, m))?;
            if matches!(step.action, Action::Phase { .. } | Action::Marker { .. })
                || matches!(
                    step.action,
                    Action::Wait(Wait::Running | Wait::Exited | Wait::Band(_))
                )
            {
                return Err(err_at(
                    at,
                    "a [[setup]] step runs before recording starts: use run, sleep or wait_for = \"file\" / \"command\" there".into(),
                ));
            }
            setup.push(step);
        }
        let mut steps = Vec::new();
        for s in raw.step {
            let at = s.span().start;
            steps.push(step(s.into_inner(), index.line_col(at).0).map_err(|m| err_at(at, m))?);
        }
        let mut expect = Vec::new();
        for e in raw.expect {
            let at = e.span().start;
            expect.push(
                expectation(e.into_inner(), index.line_col(at).0).map_err(|m| err_at(at, m))?,
            );
        }
        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            app: raw.app,
            target,
            user,
            record: raw.record,
            setup,
            steps,
            expect,
        })
    }
}

impl Expectation {
    /// "no connect in closed", "at most 1.0 MiB read from file [media]", ...
    fn default_name(&self) -> String {
        let f = &self.filter;
        let mut what = self.kind.as_str().to_string();
        if let Some(c) = &f.categories {
            what.push_str(&format!(" [{}]", c.join(", ")));
        }
        if let Some(o) = &f.ops {
            let o: Vec<&str> = o.iter().map(|x| x.as_str()).collect();
            what.push_str(&format!(" ({})", o.join(", ")));
        }
        if let Some(p) = &f.path {
            what.push_str(&format!(" matching {}", p.as_str()));
        }
        if let Some(c) = &f.countries {
            what.push_str(&format!(" to countries {}", c.join(", ")));
        }
        if let Some(c) = &f.allowed_countries {
            what.push_str(&format!(" to countries outside {}", c.join(", ")));
        }
        if let Some(a) = &f.asns {
            what.push_str(&format!(" to {}", asn_list(a)));
        }
        if let Some(a) = &f.allowed_asns {
            what.push_str(&format!(" to an ASN outside {}", asn_list(a)));
        }
        if let Some(s) = &f.scopes {
            let s: Vec<&str> = s.iter().map(|x| x.as_str()).collect();
            what.push_str(&format!(" to {} addresses", s.join("/")));
        }
        if let Some(h) = &f.hosts {
            let h: Vec<&str> = h.iter().map(|x| x.as_str()).collect();
            what.push_str(&format!(" to {}", h.join(", ")));
        }
        let mut name = match self.max_bytes {
            Some(b) => format!(
                "at most {} read from {what}",
                crate::analysis::summary::human_bytes(b)
            ),
            None if self.max == 0 => format!("no {what}"),
            None => format!("at most {} {what}", self.max),
        };
        if self.phases.len() < ALL_PHASES.len() {
            let p: Vec<&str> = self.phases.iter().map(|p| p.as_str()).collect();
            name.push_str(&format!(" in {}", p.join(" or ")));
        }
        if let Some(a) = &self.app {
            name.push_str(&format!(" ({a})"));
        }
        name
    }
}

fn asn_list(a: &[u32]) -> String {
    a.iter()
        .map(|n| format!("AS{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod parse_tests;
