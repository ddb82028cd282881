//! Baselines and diffs (docs/scenarios.md#baselines-and-diffs). A baseline is what each app did
//! in each phase — destinations, file categories and their notable paths, camera/microphone
//! operations, with volumes — reduced to what stays the same from run to run: no timestamps,
//! pids or loopback ports, and paths under a run's scratch directory written as `{work}/...`.
//! `emuwatch diff` compares two of them (each a saved baseline or a session directory).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{
        self,
        categories::Categories,
        facts::{Fact, What},
    },
    capability::Capability,
    escape::escape,
    event::{DeviceOp, Phase, Proto, Scope},
    geo::Geo,
    session::RunInfo,
};

/// Version of the baseline file format.
pub const FORMAT: u32 = 1;
/// Default volume threshold: a count or byte total more than doubling is a regression.
pub const DEFAULT_THRESHOLD_PCT: f64 = 100.0;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub emuwatch_baseline: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// app -> phase -> what it did.
    pub apps: BTreeMap<String, BTreeMap<Phase, Profile>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<Dest>,
    /// category -> opens, bytes read and (sensitive categories) the paths.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileCat>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Dev>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dest {
    /// The destination's name where it has one: then it is compared by name (and port and
    /// protocol), not by address, which churns on CDNs; `address` is the first one seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub address: IpAddr,
    /// Absent for loopback destinations: test servers listen on random ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub proto: Proto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
    pub connects: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct FileCat {
    /// Open attempts (failed ones included).
    pub opens: u64,
    pub bytes_read: u64,
    /// Sensitive categories only: every path (notable paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dev {
    /// `camera` or `microphone`.
    pub kind: Capability,
    pub path: String,
    /// operation (`open`, `stream_on`, `service_call`) -> count.
    pub ops: BTreeMap<DeviceOp, u64>,
}

impl Dest {
    /// `127.0.0.1/tcp (loopback)`, `216.160.83.56:443/tcp (US, AS209 Qwest)`; a named one by
    /// its name only: `api.example.com:443/tcp`.
    pub fn label(&self) -> String {
        if let Some(h) = &self.host {
            return match self.port {
                Some(p) => format!("{h}:{p}/{}", self.proto),
                None => format!("{h}/{}", self.proto),
            };
        }
        let addr = match (self.address, self.port) {
            (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
            (a, Some(p)) => format!("{a}:{p}"),
            (a, None) => a.to_string(),
        };
        let mut geo = Vec::new();
        if let Some(c) = &self.country {
            geo.push(c.clone());
        }
        match (self.asn, &self.as_org) {
            (Some(n), Some(o)) => geo.push(format!("AS{n} {o}")),
            (Some(n), None) => geo.push(format!("AS{n}")),
            _ => {}
        }
        if geo.is_empty()
            && let Some(s) = self.scope
        {
            geo.push(s.to_string());
        }
        if geo.is_empty() {
            format!("{addr}/{}", self.proto)
        } else {
            format!("{addr}/{} ({})", self.proto, geo.join(", "))
        }
    }
}

/// `path` with the run's scratch directory written as `{work}`.
fn normalize(path: &str, work: Option<&str>) -> String {
    if let Some(w) = work.filter(|w| !w.is_empty())
        && let Some(rest) = path.strip_prefix(w)
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return format!("{{work}}{rest}");
    }
    path.to_string()
}

type DestKey = (Option<String>, Option<IpAddr>, Option<u16>, Proto);

#[derive(Default)]
struct PhaseAcc {
    dests: BTreeMap<DestKey, Dest>,
    files: BTreeMap<String, (u64, u64, BTreeSet<String>)>,
    devices: BTreeMap<(Capability, String), BTreeMap<DeviceOp, u64>>,
}

/// A baseline gathered fact by fact while a session is read.
pub struct BaselineAcc<'c> {
    cats: &'c Categories,
    work: Option<String>,
    apps: BTreeMap<String, BTreeMap<Phase, PhaseAcc>>,
}

impl<'c> BaselineAcc<'c> {
    /// `work` is the scratch directory of the run that recorded the session (run.json), if any.
    pub fn new(cats: &'c Categories, work: Option<&str>) -> BaselineAcc<'c> {
        BaselineAcc {
            cats,
            work: work.map(str::to_string),
            apps: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, f: &Fact) {
        let (cats, work, apps) = (self.cats, self.work.as_deref(), &mut self.apps);
        let acc = match apps.get_mut(f.app) {
            Some(a) => a,
            None => apps.entry(f.app.to_string()).or_default(),
        }
        .entry(f.phase)
        .or_default();
        match &f.what {
            What::Connect(ep) => {
                let port = (ep.scope != Some(Scope::Loopback)).then_some(ep.port);
                let by_addr = ep.host.is_none().then_some(ep.address);
                let d = acc
                    .dests
                    .entry((ep.host.clone(), by_addr, port, ep.proto))
                    .or_insert_with(|| Dest {
                        host: ep.host.clone(),
                        address: ep.address,
                        port,
                        proto: ep.proto,
                        scope: ep.scope,
                        country: ep.country.clone(),
                        asn: ep.asn,
                        as_org: ep.as_org.clone(),
                        connects: 0,
                    });
                d.connects += 1;
            }
            What::Device { kind, path, op } => {
                let path =
                    path.map_or_else(|| kind.spec().unknown_target.into(), |p| normalize(p, work));
                *acc.devices
                    .entry((*kind, path))
                    .or_default()
                    .entry(*op)
                    .or_default() += 1;
            }
            What::File {
                category,
                path,
                open,
                bytes,
                ..
            } => {
                let cat = &cats.all()[*category];
                let e = acc.files.entry(cat.name.clone()).or_default();
                e.0 += u64::from(*open);
                e.1 = e.1.saturating_add(*bytes);
                if cat.sensitive {
                    e.2.insert(path.map_or_else(
                        || Capability::File.spec().unknown_target.into(),
                        |p| normalize(p, work),
                    ));
                }
            }
        }
    }

    pub fn finish(self, scenario: Option<String>) -> Baseline {
        let apps = self.apps;
        Baseline {
            emuwatch_baseline: FORMAT,
            scenario,
            apps: apps
                .into_iter()
                .map(|(app, phases)| {
                    let phases = phases
                        .into_iter()
                        .map(|(ph, acc)| {
                            let p = Profile {
                                destinations: acc.dests.into_values().collect(),
                                files: acc
                                    .files
                                    .into_iter()
                                    .map(|(c, (opens, bytes, paths))| {
                                        (
                                            c,
                                            FileCat {
                                                opens,
                                                bytes_read: bytes,
                                                paths: paths.into_iter().collect(),
                                            },
                                        )
                                    })
                                    .collect(),
                                devices: acc
                                    .devices
                                    .into_iter()
                                    .map(|((kind, path), ops)| Dev { kind, path, ops })
                                    .collect(),
                            };
                            (ph, p)
                        })
                        .collect();
                    (app, phases)
                })
                .collect(),
        }
    }
}

impl Baseline {
    /// Pretty JSON, keys and lists sorted, with a final newline: stable under version control.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a baseline serialises");
        s.push('\n');
        s
    }

    pub fn parse(text: &str, file: &Path) -> Result<Baseline> {
        let b: Baseline = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}:{}: not a baseline file: {e}",
                file.display(),
                e.line(),
                e.column()
            )
        })?;
        if b.emuwatch_baseline != FORMAT {
            bail!(
                "{}: baseline format {} is not supported (this emuwatch reads format {FORMAT})",
                file.display(),
                b.emuwatch_baseline
            );
        }
        Ok(b)
    }

    /// A baseline file, or a session directory (made into a baseline now, with `cats`, else
    /// the categories of the scenario run that recorded it, else the built-in ones).
    pub fn load(path: &Path, geo: &Geo, cats: Option<&Categories>) -> Result<Baseline> {
        if path.is_dir() {
            let run = RunInfo::read(path);
            let (work, scenario, run_cats) = match run {
                Some(r) => (Some(r.work_dir), Some(r.scenario), r.categories),
                None => (None, None, None),
            };
            let own;
            let cats = match (cats, run_cats) {
                (Some(c), _) => c,
                (None, Some(f)) => {
                    own = Categories::load(Path::new(&f)).with_context(|| {
                        format!(
                            "the categories of the run that recorded {} (give --categories)",
                            path.display()
                        )
                    })?;
                    &own
                }
                (None, None) => {
                    own = Categories::builtin();
                    &own
                }
            };
            let mut acc = BaselineAcc::new(cats, work.as_deref());
            analysis::analyse_with(path, geo, cats, false, |f| acc.add(&f))?;
            return Ok(acc.finish(scenario));
        }
        let text = crate::safefs::read_regular_text(path, crate::safefs::BASELINE_LIMIT)
            .with_context(|| format!("read baseline {}", path.display()))?;
        Baseline::parse(&text, path)
    }
}

/// What a baseline rule checks; one JUnit test case per app and rule.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Destinations,
    Countries,
    Asns,
    FileCategories,
    Paths,
    Devices,
    Volumes,
}

pub const RULES: [Rule; 7] = [
    Rule::Destinations,
    Rule::Countries,
    Rule::Asns,
    Rule::FileCategories,
    Rule::Paths,
    Rule::Devices,
    Rule::Volumes,
];

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Destinations => "destinations",
            Rule::Countries => "countries",
            Rule::Asns => "asns",
            Rule::FileCategories => "file_categories",
            Rule::Paths => "paths",
            Rule::Devices => "devices",
            Rule::Volumes => "volumes",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Rule::Destinations => "no new destination (address, port, protocol)",
            Rule::Countries => "no new destination country",
            Rule::Asns => "no new destination ASN",
            Rule::FileCategories => "no new file category",
            Rule::Paths => "no new path in a sensitive file category",
            Rule::Devices => "no new camera/microphone/Android-service use",
            Rule::Volumes => "no volume growth beyond the threshold",
        }
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Item {
    pub rule: Rule,
    pub what: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Change {
    pub rule: Rule,
    pub what: String,
    pub from: String,
    pub to: String,
    /// An increase beyond the threshold (or a destination's new country/ASN).
    pub regression: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct PhaseDiff {
    pub phase: Phase,
    pub new: Vec<Item>,
    pub gone: Vec<Item>,
    pub changed: Vec<Change>,
}

#[derive(Serialize, Debug, Clone)]
pub struct AppDiff {
    pub app: String,
    /// `new` (not in the baseline), `gone` (only in the baseline) or `both`.
    pub status: &'static str,
    pub phases: Vec<PhaseDiff>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Diff {
    pub baseline: String,
    pub session: String,
    pub threshold_pct: f64,
    /// New items plus volume increases beyond the threshold.
    pub regressions: usize,
    pub apps: Vec<AppDiff>,
}

/// Items of one profile, per rule, keyed for comparison, with their volumes.
fn items(p: &Profile) -> BTreeMap<(Rule, String), Vec<(String, u64)>> {
    let mut m: BTreeMap<(Rule, String), Vec<(String, u64)>> = BTreeMap::new();
    for d in &p.destinations {
        m.insert(
            (Rule::Destinations, d.label()),
            vec![("connects".into(), d.connects)],
        );
        if d.scope == Some(Scope::Public) {
            m.insert(
                (
                    Rule::Countries,
                    d.country
                        .clone()
                        .unwrap_or_else(|| "(unknown country)".into()),
                ),
                vec![],
            );
            m.insert(
                (
                    Rule::Asns,
                    d.asn
                        .map_or_else(|| "(unknown ASN)".into(), |a| format!("AS{a}")),
                ),
                vec![],
            );
        }
    }
    for (cat, f) in &p.files {
        m.insert(
            (Rule::FileCategories, cat.clone()),
            vec![
                ("opens".into(), f.opens),
                ("bytes read".into(), f.bytes_read),
            ],
        );
        for path in &f.paths {
            m.insert((Rule::Paths, format!("{path} [{cat}]")), vec![]);
        }
    }
    for d in &p.devices {
        for (op, n) in &d.ops {
            m.insert(
                (Rule::Devices, format!("{} {} {op}", d.kind, d.path)),
                vec![("count".into(), *n)],
            );
        }
    }
    m
}

fn grew(from: u64, to: u64, threshold_pct: f64) -> bool {
    to > from && (to as f64) > (from as f64) * (1.0 + threshold_pct / 100.0)
}

/// Compare `cur` with `base`.
pub fn diff(
    base: &Baseline,
    cur: &Baseline,
    base_name: &str,
    cur_name: &str,
    threshold_pct: f64,
) -> Diff {
    let empty = BTreeMap::new();
    let names: BTreeSet<&String> = base.apps.keys().chain(cur.apps.keys()).collect();
    let mut apps = Vec::new();
    let mut regressions = 0;
    for app in names {
        let (b, c) = (base.apps.get(app), cur.apps.get(app));
        let status = match (b, c) {
            (None, _) => "new",
            (_, None) => "gone",
            _ => "both",
        };
        let (b, c) = (b.unwrap_or(&empty), c.unwrap_or(&empty));
        let phases: BTreeSet<&Phase> = b.keys().chain(c.keys()).collect();
        let mut pds = Vec::new();
        for ph in phases {
            let none = Profile::default();
            let bi = items(b.get(ph).unwrap_or(&none));
            let ci = items(c.get(ph).unwrap_or(&none));
            let mut pd = PhaseDiff {
                phase: *ph,
                new: Vec::new(),
                gone: Vec::new(),
                changed: Vec::new(),
            };
            for ((rule, what), vols) in &ci {
                match bi.get(&(*rule, what.clone())) {
                    None => pd.new.push(Item {
                        rule: *rule,
                        what: what.clone(),
                    }),
                    Some(old) => {
                        for ((field, to), (_, from)) in vols.iter().zip(old) {
                            let up = grew(*from, *to, threshold_pct);
                            if up || grew(*to, *from, threshold_pct) {
                                pd.changed.push(Change {
                                    rule: Rule::Volumes,
                                    what: format!("{what}: {field}"),
                                    from: from.to_string(),
                                    to: to.to_string(),
                                    regression: up,
                                });
                            }
                        }
                    }
                }
            }
            for (rule, what) in bi.keys() {
                if !ci.contains_key(&(*rule, what.clone())) {
                    pd.gone.push(Item {
                        rule: *rule,
                        what: what.clone(),
                    });
                }
            }
            regressions += pd.new.len() + pd.changed.iter().filter(|c| c.regression).count();
            if !(pd.new.is_empty() && pd.gone.is_empty() && pd.changed.is_empty()) {
                pds.push(pd);
            }
        }
        if !pds.is_empty() || status != "both" {
            apps.push(AppDiff {
                app: app.clone(),
                status,
                phases: pds,
            });
        }
    }
    Diff {
        baseline: base_name.to_string(),
        session: cur_name.to_string(),
        threshold_pct,
        regressions,
        apps,
    }
}

impl Diff {
    /// Per app and rule: the regressions (failures) and the other differences, as lines.
    pub fn by_rule(&self, app: &str, rule: Rule) -> (Vec<String>, Vec<String>) {
        let (mut bad, mut other) = (Vec::new(), Vec::new());
        for a in self.apps.iter().filter(|a| a.app == app) {
            for p in &a.phases {
                let ph = p.phase.as_str();
                for i in p.new.iter().filter(|i| i.rule == rule) {
                    bad.push(format!("new in {ph}: {}", escape(&i.what)));
                }
                for i in p.gone.iter().filter(|i| i.rule == rule) {
                    other.push(format!("gone from {ph}: {}", escape(&i.what)));
                }
                for c in p.changed.iter().filter(|c| c.rule == rule) {
                    let line = format!("{ph}: {} {} -> {}", escape(&c.what), c.from, c.to);
                    if c.regression {
                        bad.push(line);
                    } else {
                        other.push(line);
                    }
                }
            }
        }
        (bad, other)
    }

    pub fn render_text(&self) -> String {
        let mut out = format!(
            "emuwatch diff: {} -> {} (volume threshold {}%)\n",
            escape(&self.baseline),
            escape(&self.session),
            self.threshold_pct
        );
        if self.apps.is_empty() {
            out.push_str("no differences\n");
            return out;
        }
        for a in &self.apps {
            let status = match a.status {
                "new" => " (new app: not in the baseline)",
                "gone" => " (gone: only in the baseline)",
                _ => "",
            };
            out.push_str(&format!("{}{status}\n", escape(&a.app)));
            for p in &a.phases {
                out.push_str(&format!("  {}\n", p.phase.as_str()));
                for i in &p.new {
                    out.push_str(&format!(
                        "    + {:<15} {}\n",
                        i.rule.as_str(),
                        escape(&i.what)
                    ));
                }
                for i in &p.gone {
                    out.push_str(&format!(
                        "    - {:<15} {}\n",
                        i.rule.as_str(),
                        escape(&i.what)
                    ));
                }
                for c in &p.changed {
                    out.push_str(&format!(
                        "    {} {:<15} {} {} -> {}\n",
                        if c.regression { "!" } else { "~" },
                        c.rule.as_str(),
                        escape(&c.what),
                        c.from,
                        c.to
                    ));
                }
            }
        }
        out.push_str(&format!(
            "{} regression{} (+ new, ! grew beyond the threshold; - gone and ~ shrank are not regressions)\n",
            self.regressions,
            if self.regressions == 1 { "" } else { "s" }
        ));
        out
    }
}

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// File category rules (TOML, docs/categories.md). Default: those of the scenario run that
    /// recorded the session (run.json), else the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub categories: Option<PathBuf>,
    /// Country database (.mmdb) to re-annotate session destinations (docs/geo.md).
    #[arg(long, value_name = "DB")]
    pub geoip_country: Option<PathBuf>,
    /// ASN database (.mmdb or .csv).
    #[arg(long, value_name = "DB")]
    pub geoip_asn: Option<PathBuf>,
}

impl SourceArgs {
    fn open(&self) -> Result<(Geo, Option<Categories>)> {
        let cats = self
            .categories
            .as_ref()
            .map(|p| Categories::load(p))
            .transpose()?;
        let geo = Geo::from_env_and_defaults(self.geoip_country.clone(), self.geoip_asn.clone())?;
        Ok((geo, cats))
    }
}

#[derive(Subcommand, Debug)]
pub enum BaselineCmd {
    /// Save a session's baseline to FILE (JSON, stable: no timestamps, pids or loopback ports).
    Save {
        /// Session directory.
        session: PathBuf,
        /// Baseline file to write.
        file: PathBuf,
        #[command(flatten)]
        src: SourceArgs,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The baseline: a baseline file or a session directory.
    pub baseline: PathBuf,
    /// The session to compare: a session directory or a baseline file.
    pub session: PathBuf,
    #[arg(long, short, value_enum, default_value = "text")]
    pub format: DiffFormat,
    /// Volume changes (connects, opens, bytes, device operations) beyond this percentage are
    /// reported; growth beyond it is a regression.
    #[arg(long, value_name = "PCT", default_value_t = DEFAULT_THRESHOLD_PCT, value_parser = parse_pct)]
    pub threshold: f64,
    #[command(flatten)]
    pub src: SourceArgs,
}

pub fn parse_pct(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (e.g. 50)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?}: the threshold must be 0 or more"));
    }
    Ok(v)
}

pub fn run_baseline(cmd: BaselineCmd) -> Result<ExitCode> {
    match cmd {
        BaselineCmd::Save { session, file, src } => {
            if !session.is_dir() {
                bail!("{} is not a session directory", session.display());
            }
            let (geo, cats) = src.open()?;
            let b = Baseline::load(&session, &geo, cats.as_ref())?;
            crate::safefs::write_replace(&file, b.to_json().as_bytes())?;
            let phases: usize = b.apps.values().map(|p| p.len()).sum();
            eprintln!(
                "emuwatch: baseline of {} ({} app{}, {phases} app phase{}) written to {}",
                session.display(),
                b.apps.len(),
                if b.apps.len() == 1 { "" } else { "s" },
                if phases == 1 { "" } else { "s" },
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn run_diff(a: DiffArgs) -> Result<ExitCode> {
    let (geo, cats) = a.src.open()?;
    let base = Baseline::load(&a.baseline, &geo, cats.as_ref())?;
    let cur = Baseline::load(&a.session, &geo, cats.as_ref())?;
    let d = diff(
        &base,
        &cur,
        &a.baseline.display().to_string(),
        &a.session.display().to_string(),
        a.threshold,
    );
    match a.format {
        DiffFormat::Text => print!("{}", d.render_text()),
        DiffFormat::Json => println!("{}", serde_json::to_string_pretty(&d)?),
    }
    Ok(if d.regressions == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(addr: &str, port: Option<u16>, country: Option<&str>, connects: u64) -> Dest {
        Dest {
            host: None,
            address: addr.parse().unwrap(),
            port,
            proto: Proto::Tcp,
            scope: Some(if port.is_none() {
                Scope::Loopback
            } else {
                Scope::Public
            }),
            country: country.map(str::to_string),
            asn: None,
            as_org: None,
            connects,
        }
    }

    fn base(dests: Vec<Dest>, phase: Phase) -> Baseline {
        let mut phases = BTreeMap::new();
        phases.insert(
            phase,
            Profile {
                destinations: dests,
                ..Profile::default()
            },
        );
        let mut apps = BTreeMap::new();
        apps.insert("app".to_string(), phases);
        Baseline {
            emuwatch_baseline: FORMAT,
            scenario: None,
            apps,
        }
    }

    #[test]
    fn new_gone_and_volume() {
        let a = base(
            vec![
                dest("127.0.0.1", None, None, 4),
                dest("216.160.83.56", Some(443), Some("US"), 2),
            ],
            Phase::Closed,
        );
        let b = base(
            vec![
                dest("127.0.0.1", None, None, 9),
                dest("111.235.160.10", Some(443), Some("CN"), 1),
            ],
            Phase::Closed,
        );
        let d = diff(&a, &b, "a", "b", 100.0);
        let p = &d.apps[0].phases[0];
        let new: Vec<&str> = p.new.iter().map(|i| i.what.as_str()).collect();
        assert!(
            new.contains(&"111.235.160.10:443/tcp (CN)") && new.contains(&"CN"),
            "{new:?}"
        );
        assert!(p.gone.iter().any(|i| i.what == "US"));
        assert_eq!(p.changed.len(), 1);
        assert!(p.changed[0].regression, "4 -> 9 is more than double");
        assert_eq!(d.regressions, 3, "{}", d.render_text());
        // Identical: nothing.
        let same = diff(&a, &a, "a", "a", 100.0);
        assert_eq!(same.regressions, 0);
        assert!(same.apps.is_empty());
        assert!(same.render_text().contains("no differences"));
    }

    #[test]
    fn named_destinations_compare_by_name_not_address() {
        let named = |addr: &str, host: &str| Dest {
            host: Some(host.into()),
            ..dest(addr, Some(443), Some("US"), 2)
        };
        let a = base(
            vec![named("216.160.83.56", "cdn.example.test")],
            Phase::Closed,
        );
        // The CDN answered with another address: no difference.
        let b = base(
            vec![named("216.160.83.57", "cdn.example.test")],
            Phase::Closed,
        );
        let d = diff(&a, &b, "a", "b", 100.0);
        assert_eq!(d.regressions, 0, "{}", d.render_text());
        // Another name on the same address: new.
        let c = base(
            vec![named("216.160.83.56", "log.tracker.test")],
            Phase::Closed,
        );
        let d = diff(&a, &c, "a", "c", 100.0);
        let new: Vec<&str> = d.apps[0].phases[0]
            .new
            .iter()
            .map(|i| i.what.as_str())
            .collect();
        assert_eq!(new, ["log.tracker.test:443/tcp"], "{}", d.render_text());
    }

    #[test]
    fn work_paths_are_normalised() {
        assert_eq!(
            normalize("/tmp/run-x/dev/video0", Some("/tmp/run-x")),
            "{work}/dev/video0"
        );
        assert_eq!(
            normalize("/tmp/run-xy/a", Some("/tmp/run-x")),
            "/tmp/run-xy/a"
        );
        assert_eq!(normalize("/proc/cpuinfo", None), "/proc/cpuinfo");
    }

    #[test]
    fn parse_errors_have_positions() {
        let e = Baseline::parse(
            "{\n  \"emuwatch_baseline\": 1,\n  \"appz\": {}\n}",
            Path::new("b.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("b.json:3:"), "{e}");
        let e = Baseline::parse(
            "{\"emuwatch_baseline\": 9, \"apps\": {}}",
            Path::new("b.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("format 9"), "{e}");
    }
}
