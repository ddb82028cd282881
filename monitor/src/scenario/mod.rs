//! Scenario files: a TOML description of a scripted run — the target, setup commands, ordered
//! steps (commands, sleeps, waits, phase changes, markers) and expectations about what the app
//! may do in each phase. Documented in docs/scenarios.md; `emuwatch run` executes them.
//!
//! Every error in a scenario file names the file, line and column. Values are checked while
//! the TOML is read (toml attaches the value's position); rules that involve several fields
//! of one table are checked afterwards against the table's position.
pub mod expect;
pub mod junit;
pub mod run;
pub mod steps;

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

/// Placeholders a string in a scenario may use.
pub const PLACEHOLDERS: &[&str] = &["work", "session", "bin_dir", "scenario_dir"];

/// Values for the placeholders of one run.
#[derive(Debug, Clone)]
pub struct Vars {
    /// A scratch directory created for the run and removed at its end.
    pub work: PathBuf,
    /// The session directory.
    pub session: PathBuf,
    /// The directory of the running `emuwatch` (where `emuwatch-simapp` is installed too).
    pub bin_dir: PathBuf,
    /// The directory holding the scenario file.
    pub scenario_dir: PathBuf,
}

/// Expand `{name}` placeholders with `var`; `{{` and `}}` are literal braces.
fn expand_with(
    s: &str,
    mut var: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err(format!(
                "unmatched `}}` in {s:?} (write `}}}}` for a literal brace)"
            ));
        } else {
            let end = tail.find('}').ok_or_else(|| {
                format!("unclosed `{{` in {s:?} (write `{{{{` for a literal brace)")
            })?;
            out.push_str(&var(&tail[1..end])?);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn env_name(name: &str) -> Option<&str> {
    let n = name.strip_prefix("env:")?;
    (!n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(n)
}

/// A string with placeholders (`{work}`, `{session}`, `{bin_dir}`, `{scenario_dir}`,
/// `{env:NAME}`), checked when the scenario is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Template(String);

impl TryFrom<String> for Template {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        expand_with(&s, |name| {
            if PLACEHOLDERS.contains(&name) || env_name(name).is_some() {
                Ok(String::new())
            } else {
                Err(format!(
                    "unknown placeholder {{{name}}} (known: {}, {{env:NAME}}; write {{{{ for a literal brace)",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        })?;
        Ok(Template(s))
    }
}

impl Template {
    pub fn expand(&self, vars: &Vars) -> anyhow::Result<String> {
        expand_with(&self.0, |name| {
            let p = match name {
                "work" => &vars.work,
                "session" => &vars.session,
                "bin_dir" => &vars.bin_dir,
                "scenario_dir" => &vars.scenario_dir,
                _ => {
                    let n = env_name(name).expect("checked when the scenario was read");
                    return std::env::var(n)
                        .map_err(|_| format!("environment variable {n} is not set ({{{name}}})"));
                }
            };
            Ok(p.to_string_lossy().into_owned())
        })
        .map_err(anyhow::Error::msg)
    }

    /// The text as written in the scenario.
    pub fn raw(&self) -> &str {
        &self.0
    }
}

/// `"30s"`, `"500ms"`, `"2m"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct Dur(pub Duration);

impl TryFrom<String> for Dur {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::record::parse_duration(&s).map(Dur)
    }
}

/// A recording's maximum duration: a `Dur` above zero.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct RecordDur(pub Duration);

impl TryFrom<String> for RecordDur {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::record::parse_record_duration(&s).map(RecordDur)
    }
}

/// A poll period: a `Dur` above zero, at most 1s.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct PollDur(pub Duration);

impl TryFrom<String> for PollDur {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::record::parse_poll(&s).map(PollDur)
    }
}

/// A ring buffer size: `"8M"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct Size(pub u32);

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::record::parse_size(&s).map(Size)
    }
}

/// An ActivityManager band name (docs/events.md), with its lowest oom_score_adj.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Band {
    pub name: String,
    pub floor: i32,
}

impl TryFrom<String> for Band {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        use crate::enrich::android::band;
        // The lowest score in the band, from the one table of bands.
        let floor = (-1000..=1000).find(|adj| band(*adj) == s).ok_or_else(|| {
            let mut names: Vec<&str> = (-1000..=1000).map(band).collect();
            names.dedup();
            format!("unknown band {s:?} (one of {})", names.join(", "))
        })?;
        Ok(Band { name: s, floor })
    }
}

/// A path glob (`*`, `?`, `[...]`, `**`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Glob(pub glob::Pattern);

impl TryFrom<String> for Glob {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        glob::Pattern::new(&s)
            .map(Glob)
            .map_err(|e| format!("bad path pattern {s:?}: {e}"))
    }
}

/// A command: a string (run with `sh -c`) or an array (program and arguments, no shell).
#[derive(Debug, Clone)]
pub enum Cmd {
    Shell(Template),
    Argv(Vec<Template>),
}

impl<'de> Deserialize<'de> for Cmd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Cmd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: a string (run with sh -c) or an array of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cmd, E> {
                if s.trim().is_empty() {
                    return Err(E::custom("empty command"));
                }
                Template::try_from(s.to_string())
                    .map(Cmd::Shell)
                    .map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cmd, A::Error> {
                let mut v = Vec::new();
                while let Some(t) = seq.next_element::<Template>()? {
                    v.push(t);
                }
                if v.is_empty() {
                    return Err(de::Error::custom("empty command"));
                }
                Ok(Cmd::Argv(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Cmd {
    /// The argv to execute.
    pub fn argv(&self, vars: &Vars) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Cmd::Shell(t) => vec!["sh".into(), "-c".into(), t.expand(vars)?],
            Cmd::Argv(v) => v.iter().map(|t| t.expand(vars)).collect::<Result<_, _>>()?,
        })
    }

    /// The command as written, for messages.
    pub fn text(&self) -> String {
        match self {
            Cmd::Shell(t) => t.raw().to_string(),
            Cmd::Argv(v) => v.iter().map(Template::raw).collect::<Vec<_>>().join(" "),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    app: Option<String>,
    target: Spanned<RawTarget>,
    #[serde(default)]
    record: RecordSection,
    #[serde(default)]
    setup: Vec<Spanned<RawStep>>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
    #[serde(default)]
    expect: Vec<Spanned<RawExpect>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    package: Option<String>,
    uid: Option<u32>,
    comm: Option<String>,
    pid_file: Option<Template>,
    command: Option<Cmd>,
    /// Run the scenario's commands as this user (like `run --run-as`).
    user: Option<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    run: Option<Cmd>,
    background: Option<bool>,
    allow_failure: Option<bool>,
    sleep: Option<Dur>,
    wait_for: Option<WaitKind>,
    band: Option<Band>,
    path: Option<Template>,
    until: Option<Cmd>,
    phase: Option<Phase>,
    marker: Option<String>,
    label: Option<String>,
    app: Option<String>,
    timeout: Option<Dur>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum WaitKind {
    Running,
    Exited,
    Band,
    File,
    Command,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    name: Option<String>,
    kind: Capability,
    phases: Option<Vec<Phase>>,
    app: Option<String>,
    countries: Option<Vec<String>>,
    allowed_countries: Option<Vec<String>>,
    asns: Option<Vec<u32>>,
    allowed_asns: Option<Vec<u32>>,
    scopes: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
    category: Option<String>,
    categories: Option<Vec<String>>,
    path: Option<Glob>,
    ops: Option<Vec<String>>,
    max: Option<u64>,
    max_bytes: Option<u64>,
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

/// A destination name pattern of `hosts`: `name` matches that name, `*.suffix` any name
/// ending in `.suffix` (not `suffix` itself); both ignore case and a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let t = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let body = t.strip_prefix("*.").unwrap_or(&t);
        if body.is_empty()
            || body.contains('*')
            || !body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "`hosts`: {s:?} is not a host name or `*.domain` pattern"
            ));
        }
        Ok(HostPattern(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, host: &str) -> bool {
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(suffix) => h
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => h == self.0,
        }
    }
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

fn step(r: RawStep, line: usize) -> Result<Step, String> {
    let mut actions = Vec::new();
    if r.run.is_some() {
        actions.push("run");
    }
    if r.sleep.is_some() {
        actions.push("sleep");
    }
    if r.wait_for.is_some() {
        actions.push("wait_for");
    }
    if r.phase.is_some() {
        actions.push("phase");
    }
    if r.marker.is_some() {
        actions.push("marker");
    }
    if actions.len() != 1 {
        return Err(format!(
            "a step needs exactly one of run, sleep, wait_for, phase, marker (found {})",
            if actions.is_empty() {
                "none".to_string()
            } else {
                actions.join(", ")
            }
        ));
    }
    let action = actions[0];
    // Fields that only some actions take.
    let only = |field: &str, present: bool, allowed: &[&str]| -> Result<(), String> {
        if present && !allowed.contains(&action) {
            return Err(format!(
                "`{field}` does not apply to a `{action}` step (only to {})",
                allowed.join(", ")
            ));
        }
        Ok(())
    };
    only("background", r.background.is_some(), &["run"])?;
    only("allow_failure", r.allow_failure.is_some(), &["run"])?;
    only("timeout", r.timeout.is_some(), &["run", "wait_for"])?;
    only("band", r.band.is_some(), &["wait_for"])?;
    only("path", r.path.is_some(), &["wait_for"])?;
    only("until", r.until.is_some(), &["wait_for"])?;
    only("label", r.label.is_some(), &["phase"])?;
    only("app", r.app.is_some(), &["phase", "marker"])?;
    let wait_field = |kind: WaitKind, field: &str, present: bool| -> Result<(), String> {
        let needs = r.wait_for == Some(kind);
        match (needs, present) {
            (true, false) => Err(format!(
                "wait_for = \"{}\" needs `{field}`",
                wait_name(kind)
            )),
            (false, true) => Err(format!(
                "`{field}` only goes with wait_for = \"{}\"",
                wait_name(kind)
            )),
            _ => Ok(()),
        }
    };
    if r.wait_for.is_some() {
        wait_field(WaitKind::Band, "band", r.band.is_some())?;
        wait_field(WaitKind::File, "path", r.path.is_some())?;
        wait_field(WaitKind::Command, "until", r.until.is_some())?;
    }
    let background = r.background.unwrap_or(false);
    if background && r.timeout.is_some() {
        return Err("a background command has no timeout (it runs until the run ends)".into());
    }
    let action = if let Some(cmd) = r.run {
        Action::Run {
            cmd,
            background,
            allow_failure: r.allow_failure.unwrap_or(false),
        }
    } else if let Some(d) = r.sleep {
        Action::Sleep(d.0)
    } else if let Some(w) = r.wait_for {
        Action::Wait(match w {
            WaitKind::Running => Wait::Running,
            WaitKind::Exited => Wait::Exited,
            WaitKind::Band => Wait::Band(r.band.expect("checked")),
            WaitKind::File => Wait::File(r.path.expect("checked")),
            WaitKind::Command => Wait::Command(r.until.expect("checked")),
        })
    } else if let Some(phase) = r.phase {
        Action::Phase {
            phase,
            label: r.label,
            app: r.app,
        }
    } else {
        let label = r.marker.expect("one action");
        if label.trim().is_empty() {
            return Err("a marker needs a label".into());
        }
        Action::Marker { label, app: r.app }
    };
    let timeout = r.timeout.map(|d| d.0).unwrap_or(match action {
        Action::Wait(_) => DEFAULT_WAIT_TIMEOUT,
        _ => DEFAULT_RUN_TIMEOUT,
    });
    Ok(Step {
        name: r.name,
        action,
        timeout,
        line,
    })
}

fn wait_name(k: WaitKind) -> &'static str {
    match k {
        WaitKind::Running => "running",
        WaitKind::Exited => "exited",
        WaitKind::Band => "band",
        WaitKind::File => "file",
        WaitKind::Command => "command",
    }
}

fn expectation(r: RawExpect, line: usize) -> Result<Expectation, String> {
    let kind = r.kind;
    let only = |field: ExpectField, present: bool| -> Result<(), String> {
        if present && !kind.takes(field) {
            return Err(format!(
                "`{}` does not apply to kind = \"{}\" (only to {})",
                field.name(),
                kind.as_str(),
                Capability::taking(field)
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    };
    only(ExpectField::Countries, r.countries.is_some())?;
    only(ExpectField::AllowedCountries, r.allowed_countries.is_some())?;
    only(ExpectField::Asns, r.asns.is_some())?;
    only(ExpectField::AllowedAsns, r.allowed_asns.is_some())?;
    only(ExpectField::Scopes, r.scopes.is_some())?;
    only(ExpectField::Hosts, r.hosts.is_some())?;
    only(ExpectField::Category, r.category.is_some())?;
    only(ExpectField::Categories, r.categories.is_some())?;
    only(ExpectField::MaxBytes, r.max_bytes.is_some())?;
    only(ExpectField::Ops, r.ops.is_some())?;
    only(ExpectField::Path, r.path.is_some())?;
    if r.max.is_some() && r.max_bytes.is_some() {
        return Err("give `max` (a count) or `max_bytes`, not both".into());
    }
    if r.category.is_some() && r.categories.is_some() {
        return Err("give `category` or `categories`, not both".into());
    }
    let countries = |v: Option<Vec<String>>, field: &str| -> Result<Option<Vec<String>>, String> {
        v.map(|v| {
            v.into_iter()
                .map(|c| {
                    if c.len() == 2 && c.chars().all(|x| x.is_ascii_alphabetic()) {
                        Ok(c.to_ascii_uppercase())
                    } else {
                        Err(format!(
                            "`{field}`: {c:?} is not a two-letter ISO country code"
                        ))
                    }
                })
                .collect()
        })
        .transpose()
    };
    let scopes = match r.scopes {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|s| {
                    Scope::ALL
                        .iter()
                        .copied()
                        .find(|x| x.as_str() == s)
                        .ok_or_else(|| {
                            format!(
                                "`scopes`: unknown scope {s:?} (one of {})",
                                Scope::ALL
                                    .iter()
                                    .map(|x| x.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let ops = match r.ops {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|o| {
                    DeviceOp::DOC_ORDER
                        .into_iter()
                        .find(|d| d.as_str() == o)
                        .ok_or_else(|| {
                            format!(
                                "`ops`: unknown operation {o:?} (one of {})",
                                DeviceOp::DOC_ORDER.map(DeviceOp::as_str).join(", ")
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let phases = match r.phases {
        Some(p) if p.is_empty() => return Err("`phases` is empty".into()),
        Some(mut p) => {
            p.sort();
            p.dedup();
            p
        }
        None => ALL_PHASES.to_vec(),
    };
    let filter = Filter {
        countries: countries(r.countries, "countries")?,
        allowed_countries: countries(r.allowed_countries, "allowed_countries")?,
        asns: r.asns,
        allowed_asns: r.allowed_asns,
        scopes,
        hosts: r
            .hosts
            .map(|v| v.iter().map(|h| HostPattern::parse(h)).collect())
            .transpose()?,
        categories: r.category.map(|c| vec![c]).or(r.categories),
        path: r.path.map(|g| g.0),
        ops,
    };
    let mut e = Expectation {
        name: String::new(),
        line,
        kind,
        phases,
        app: r.app,
        filter,
        max: r.max.unwrap_or(0),
        max_bytes: r.max_bytes,
    };
    e.name = match r.name {
        Some(n) if !n.trim().is_empty() => n,
        _ => e.default_name(),
    };
    Ok(e)
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
mod tests {
    #[test]
    fn host_patterns_match_names_and_domain_suffixes() {
        let p = super::HostPattern::parse("*.Example-Tracker.com").unwrap();
        assert!(p.matches("log-va.example-tracker.com"));
        assert!(p.matches("A.B.EXAMPLE-TRACKER.COM."));
        assert!(!p.matches("example-tracker.com"));
        assert!(!p.matches("badexample-tracker.com"));
        let p = super::HostPattern::parse("api.example.test").unwrap();
        assert!(p.matches("API.example.test") && !p.matches("x.api.example.test"));
        for bad in ["", "*", "*.", "a.*.b", "a b", "a/b", "x\u{1b}"] {
            assert!(super::HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, Path::new("t.toml"))
    }

    const GOOD: &str = r#"
name = "example"
app = "com.example.app"

[target]
package = "com.example.app"

[record]
duration = "2m"
devices = ["camera={work}/video*"]

[[step]]
run = "am start -W -n com.example.app/.Main"
timeout = "20s"

[[step]]
wait_for = "band"
band = "cached"

[[step]]
phase = "closed"
label = "force-stop"

[[expect]]
kind = "connect"
phases = ["closed"]

[[expect]]
kind = "file"
category = "media"
max_bytes = 1048576
"#;

    #[test]
    fn good_scenario() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.name, "example");
        assert!(matches!(s.target, Target::Package(ref p) if p == "com.example.app"));
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[0].timeout, Duration::from_secs(20));
        assert_eq!(s.steps[0].line, 12);
        assert!(matches!(&s.steps[1].action, Action::Wait(Wait::Band(b)) if b.floor == 900));
        assert_eq!(s.expect[0].name, "no connect in closed");
        assert_eq!(s.expect[1].name, "at most 1.0 MiB read from file [media]");
    }

    #[test]
    fn hosts_expectations_parse_and_apply_to_connects_only() {
        let base = "name = \"x\"\n[target]\npackage = \"a\"\n[[expect]]\n";
        let s = parse(&format!(
            "{base}kind = \"connect\"\nhosts = [\"*.example-tracker.com\", \"api.example.test\"]\n"
        ))
        .unwrap();
        assert_eq!(
            s.expect[0].name,
            "no connect to *.example-tracker.com, api.example.test"
        );
        let hosts = s.expect[0].filter.hosts.as_ref().unwrap();
        assert!(hosts[0].matches("log-va.example-tracker.com"));
        let e = parse(&format!("{base}kind = \"file\"\nhosts = [\"a.test\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`hosts` does not apply"), "{e}");
        let e = parse(&format!("{base}kind = \"connect\"\nhosts = [\"a b\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a host name"), "{e}");
    }

    #[test]
    fn errors_have_line_and_column() {
        for (text, line, col, needle) in [
            (
                "name = \"x\"\n[target]\npackage = \"a\"\n[[step]]\nsleeep = \"1s\"\n",
                5,
                1,
                "unknown field `sleeep`",
            ),
            (
                "name = \"x\"\n[target]\npackage = \"a\"\n[[step]]\nsleep = \"5 parsecs\"\n",
                5,
                9,
                "unknown unit",
            ),
            (
                "name = \"x\"\n[target]\npackage = \"a\"\ncomm = \"b\"\n",
                2,
                1,
                "exactly one of",
            ),
            (
                "name = \"x\"\n[target]\npackage = \"a\"\n\n[[step]]\nrun = \"x\"\nsleep = \"1s\"\n",
                5,
                1,
                "exactly one of run",
            ),
            (
                "name = \"x\"\n[target]\ncommand = [\"{nope}/x\"]\n",
                3,
                11,
                "unknown placeholder {nope}",
            ),
            (
                "name = \"x\"\n[target]\npackage = \"a\"\n[[expect]]\nkind = \"connect\"\nphases = [\"closd\"]\n",
                6,
                11,
                "unknown variant `closd`",
            ),
            (
                "name = \"x\"\n[target]\npackage = \"a\"\n[[expect]]\nkind = \"connect\"\ncategory = \"media\"\n",
                4,
                1,
                "does not apply",
            ),
            (
                "name = \"x\"\n[target]\npackage = \"a\"\n[[step]]\nwait_for = \"band\"\nband = \"sleepy\"\n",
                6,
                8,
                "unknown band",
            ),
            (
                "name = \"x\"\n[target]\npackage = \"a\"\n[[step]]\nwait_for = \"band\"\n",
                4,
                1,
                "needs `band`",
            ),
            (
                "name = \"x\"\n[target]\npackage = \"a\"\n[[setup]]\nphase = \"closed\"\n",
                4,
                1,
                "before recording",
            ),
            ("name = \"x\"\n[target\n", 2, 8, "unclosed table"),
            ("[target]\npackage = \"a\"\n", 1, 1, "missing field `name`"),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!((e.line, e.column), (line, col), "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
            assert!(
                e.to_string().starts_with(&format!("t.toml:{line}:{col}: ")),
                "{e}"
            );
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn templates_expand() {
        let vars = Vars {
            work: "/w".into(),
            session: "/s".into(),
            bin_dir: "/b".into(),
            scenario_dir: "/d".into(),
        };
        let t = Template::try_from(
            "{bin_dir}/x {work} {{literal}} {env:EMUWATCH_TEST_UNSET_VAR}".to_string(),
        )
        .unwrap();
        assert!(
            t.expand(&vars)
                .unwrap_err()
                .to_string()
                .contains("EMUWATCH_TEST_UNSET_VAR")
        );
        let t = Template::try_from("{bin_dir}/x {work} {{literal}}".to_string()).unwrap();
        assert_eq!(t.expand(&vars).unwrap(), "/b/x /w {literal}");
        assert!(Template::try_from("a } b".to_string()).is_err());
        assert!(Template::try_from("a { b".to_string()).is_err());
    }

    /// `run --check` on 100k steps: positions are found through a line index (it was
    /// quadratic: > 30 s).
    #[test]
    fn many_steps_parse_in_linear_time() {
        let mut text = String::from("name = \"many\"\n[target]\ncommand = \"true\"\n");
        for _ in 0..100_000 {
            text.push_str("[[step]]\nsleep = \"1ms\"\n");
        }
        let t = std::time::Instant::now();
        let sc = Scenario::parse(&text, Path::new("many.toml")).unwrap();
        assert_eq!(sc.steps.len(), 100_000);
        assert_eq!(sc.steps[99_999].line, 4 + 2 * 99_999);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn a_zero_recording_duration_is_an_error() {
        let e = Scenario::parse(
            "name = \"x\"\n[target]\ncommand = \"true\"\n[record]\nduration = \"0s\"\n",
            Path::new("z.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("must be above 0"), "{e}");
    }
}
