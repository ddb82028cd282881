//! `emuwatch sessions DIR...`: many sessions side by side — per app, phase and capability, how
//! often each session saw it — grouped by scenario and labels, with what is new or gone in
//! each group's newest session against the run before it; an exit status for a fleet-wide
//! gate (`--fail-on new`). Counts are the analysis's facts (`analysis::facts`), the ones
//! `report`, scenario expectations and baselines use. docs/fleet.md.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::{
    analysis::{
        self,
        categories::Categories,
        facts::{Fact, What},
    },
    escape::{esc, escape},
    event::Phase,
    geo::Geo,
    session::{self, RunInfo},
};

/// Version of the JSON document (docs/fleet.md).
pub const SCHEMA_VERSION: u32 = 1;
/// How deep below a DIR sessions are looked for (DIR/avd/run/session.json is depth 2).
const MAX_DEPTH: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Html,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailOn {
    /// Something (app, phase, kind) in a group's newest session that the run before it did
    /// not have.
    New,
    /// Something the run before had that the newest session has not.
    Gone,
    /// A session that is not complete (events lost, or still recording).
    Incomplete,
}

#[derive(Args, Debug)]
pub struct SessionsArgs {
    /// Session directories, or directories holding sessions (searched 3 levels deep).
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the table to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The labels that make runs comparable: sessions of the same scenario with the same
    /// values of these labels form a group, in start order (default: all their labels).
    /// E.g. `--group-by api` compares app versions on each API level. Repeatable.
    #[arg(long, value_name = "LABEL")]
    pub group_by: Vec<String>,
    /// Exit 1 when this happens in any group (new, gone) or session (incomplete). Repeatable.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub fail_on: Vec<FailOn>,
    /// Country database (.mmdb), as for `report`.
    #[arg(long, value_name = "DB")]
    pub geoip_country: Option<PathBuf>,
    /// ASN database, as for `report`.
    #[arg(long, value_name = "DB")]
    pub geoip_asn: Option<PathBuf>,
    /// File category rules (TOML) instead of the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub categories: Option<PathBuf>,
}

/// One session's facts.
#[derive(Serialize)]
pub struct SessionRow {
    pub id: String,
    pub dir: String,
    pub scenario: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub started_at: String,
    pub complete: bool,
    /// Index into `groups`.
    pub group: usize,
    #[serde(skip)]
    started: DateTime<Utc>,
    #[serde(skip)]
    counts: BTreeMap<Key, u64>,
}

/// (app, phase, kind).
type Key = (String, Phase, String);

#[derive(Serialize)]
pub struct Row {
    pub app: String,
    pub phase: Phase,
    pub kind: String,
    /// Per session id (the group's sessions), the number of facts; absent: none.
    pub counts: BTreeMap<String, u64>,
    /// `new` or `gone` in the group's newest session against the one before.
    pub change: Option<&'static str>,
}

#[derive(Serialize)]
pub struct Group {
    pub scenario: Option<String>,
    /// The values of the grouping labels.
    pub labels: BTreeMap<String, String>,
    /// Session ids, oldest first.
    pub sessions: Vec<String>,
    pub latest: String,
    pub previous: Option<String>,
    pub new: u64,
    pub gone: u64,
    pub rows: Vec<Row>,
}

#[derive(Serialize)]
pub struct Gate {
    pub fail_on: Vec<FailOn>,
    pub failed: bool,
    pub reasons: Vec<String>,
}

#[derive(Serialize)]
pub struct Fleet {
    pub schema_version: u32,
    pub sessions: Vec<SessionRow>,
    pub groups: Vec<Group>,
    pub gate: Gate,
}

/// Session directories under `dir` (itself if it is one), sorted; symlinks are not followed.
fn find_sessions(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join("session.json").is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    if depth == MAX_DEPTH {
        return Ok(());
    }
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read directory {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subs.sort();
    for s in subs {
        find_sessions(&s, depth + 1, out)?;
    }
    Ok(())
}

fn fact_kind(f: &Fact) -> String {
    match &f.what {
        What::Connect(_) => "connect".into(),
        What::Device { kind, .. } => kind.to_string(),
        What::File { .. } => "file".into(),
    }
}

/// Read every session under `dirs` and compare them.
pub fn build(
    dirs: &[PathBuf],
    group_by: &[String],
    fail_on: &[FailOn],
    geo: &Geo,
    cats: &Categories,
) -> Result<Fleet> {
    let mut sessions = load_sessions(dirs, geo, cats)?;
    let keys = assign_groups(&mut sessions, group_by);
    let mut groups = Vec::new();
    let mut reasons = Vec::new();
    for (gi, (scenario, labels)) in keys.into_iter().enumerate() {
        let members: Vec<&SessionRow> = sessions.iter().filter(|s| s.group == gi).collect();
        let g = compare_group(scenario, labels, &members);
        let name = group_name(&g.scenario, &g.labels);
        if fail_on.contains(&FailOn::New) && g.new > 0 {
            reasons.push(format!("{name}: {} new in {}", g.new, g.latest));
        }
        if fail_on.contains(&FailOn::Gone) && g.gone > 0 {
            reasons.push(format!("{name}: {} gone in {}", g.gone, g.latest));
        }
        groups.push(g);
    }
    if fail_on.contains(&FailOn::Incomplete) {
        for s in sessions.iter().filter(|s| !s.complete) {
            reasons.push(format!("{}: incomplete", s.id));
        }
    }
    let mut fail_on = fail_on.to_vec();
    fail_on.sort();
    fail_on.dedup();
    Ok(Fleet {
        schema_version: SCHEMA_VERSION,
        sessions,
        groups,
        gate: Gate {
            fail_on,
            failed: !reasons.is_empty(),
            reasons,
        },
    })
}

/// Every session under `dirs`, each counted once by the report's facts (app, phase, kind).
fn load_sessions(dirs: &[PathBuf], geo: &Geo, cats: &Categories) -> Result<Vec<SessionRow>> {
    let mut paths = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            bail!("{} is not a directory", d.display());
        }
        let before = paths.len();
        find_sessions(d, 0, &mut paths)?;
        if paths.len() == before {
            bail!("no sessions (session.json) under {}", d.display());
        }
    }
    let mut sessions = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for p in &paths {
        let info = session::read_info(p)?;
        let id = info.id(p);
        if let Some(prev) = seen.insert(id.clone(), p.clone()) {
            bail!(
                "{} and {} are the same session ({id})",
                prev.display(),
                p.display()
            );
        }
        let mut counts: BTreeMap<Key, u64> = BTreeMap::new();
        analysis::analyse_with(p, geo, cats, false, |f| {
            *counts
                .entry((f.app.to_string(), f.phase, fact_kind(&f)))
                .or_default() += 1;
        })
        .with_context(|| format!("session {}", p.display()))?;
        sessions.push(SessionRow {
            id,
            dir: p.display().to_string(),
            scenario: RunInfo::read(p).map(|r| r.scenario),
            labels: info.labels.clone(),
            started_at: analysis::history::format_ts(&info.started_at),
            complete: info.complete,
            group: 0,
            started: info.started_at,
            counts,
        });
    }
    Ok(sessions)
}

type GroupKey = (Option<String>, BTreeMap<String, String>);

/// Groups: the same scenario and grouping labels (all labels without `group_by`); sessions
/// sorted by start, each given its group's index. Returns the groups' keys.
fn assign_groups(sessions: &mut [SessionRow], group_by: &[String]) -> Vec<GroupKey> {
    sessions.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    let mut keys: Vec<GroupKey> = Vec::new();
    for s in sessions.iter_mut() {
        let labels: BTreeMap<String, String> = if group_by.is_empty() {
            s.labels.clone()
        } else {
            group_by
                .iter()
                .map(|k| (k.clone(), s.labels.get(k).cloned().unwrap_or_default()))
                .collect()
        };
        let key = (s.scenario.clone(), labels);
        s.group = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                keys.len() - 1
            }
        };
    }
    keys
}

/// One group's table: every (app, phase, kind) any member has, with each member's count, and
/// what is new or gone in the newest member against the one before.
fn compare_group(
    scenario: Option<String>,
    labels: BTreeMap<String, String>,
    members: &[&SessionRow],
) -> Group {
    let latest = *members.last().expect("a group has a session");
    let previous = members.len().checked_sub(2).map(|i| members[i]);
    let all: BTreeSet<&Key> = members.iter().flat_map(|s| s.counts.keys()).collect();
    let mut rows = Vec::new();
    let (mut new, mut gone) = (0, 0);
    for k in all {
        let change = previous.and_then(|p| {
            match (p.counts.contains_key(k), latest.counts.contains_key(k)) {
                (false, true) => Some("new"),
                (true, false) => Some("gone"),
                _ => None,
            }
        });
        match change {
            Some("new") => new += 1,
            Some(_) => gone += 1,
            None => {}
        }
        rows.push(Row {
            app: k.0.clone(),
            phase: k.1,
            kind: k.2.clone(),
            counts: members
                .iter()
                .filter_map(|s| s.counts.get(k).map(|n| (s.id.clone(), *n)))
                .collect(),
            change,
        });
    }
    Group {
        scenario,
        labels,
        sessions: members.iter().map(|s| s.id.clone()).collect(),
        latest: latest.id.clone(),
        previous: previous.map(|p| p.id.clone()),
        new,
        gone,
        rows,
    }
}

/// `scenario "x", api=34` (escaped for a terminal by the caller).
fn group_name(scenario: &Option<String>, labels: &BTreeMap<String, String>) -> String {
    let mut parts = vec![match scenario {
        Some(s) => format!("scenario {s:?}"),
        None => "no scenario".to_string(),
    }];
    parts.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(", ")
}

fn labels_text(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "-".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render_text(f: &Fleet) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} session(s) in {} group(s) (same scenario and labels, oldest first)",
        f.sessions.len(),
        f.groups.len()
    );
    for g in &f.groups {
        let _ = writeln!(o, "\n{}", escape(&group_name(&g.scenario, &g.labels)));
        let members: Vec<&SessionRow> = g
            .sessions
            .iter()
            .filter_map(|id| f.sessions.iter().find(|s| s.id == *id))
            .collect();
        for (i, s) in members.iter().enumerate() {
            let _ = writeln!(
                o,
                "  #{} {}  {}  {}{}",
                i + 1,
                escape(&s.id),
                s.started_at,
                escape(&labels_text(&s.labels)),
                if s.complete { "" } else { "  (incomplete)" }
            );
        }
        let wa = g
            .rows
            .iter()
            .map(|r| escape(&r.app).chars().count())
            .max()
            .unwrap_or(3)
            .max(3);
        let mut head = format!("  {:<wa$}  {:<10}  {:<17}", "app", "phase", "kind");
        for i in 0..members.len() {
            let _ = write!(head, "  {:>6}", format!("#{}", i + 1));
        }
        let _ = writeln!(o, "{head}  change");
        for r in &g.rows {
            let mut line = format!(
                "  {:<wa$}  {:<10}  {:<17}",
                escape(&r.app),
                r.phase.as_str(),
                r.kind
            );
            for s in &members {
                let _ = write!(line, "  {:>6}", r.counts.get(&s.id).copied().unwrap_or(0));
            }
            let _ = writeln!(line, "  {}", r.change.unwrap_or(""));
            o.push_str(&line);
        }
        if g.rows.is_empty() {
            let _ = writeln!(o, "  (no connects, devices, services or files)");
        }
        match &g.previous {
            Some(_) => {
                let _ = writeln!(
                    o,
                    "  newest (#{}) against the run before: {} new, {} gone",
                    members.len(),
                    g.new,
                    g.gone
                );
            }
            None => {
                let _ = writeln!(o, "  one run: nothing to compare");
            }
        }
    }
    if !f.gate.fail_on.is_empty() {
        let _ = writeln!(
            o,
            "\ngate: {}",
            if f.gate.failed { "FAILED" } else { "passed" }
        );
        for r in &f.gate.reasons {
            let _ = writeln!(o, "  {}", escape(r));
        }
    }
    o
}

pub fn render_html(f: &Fleet) -> String {
    let mut o = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>emuwatch sessions</title><style>\
         body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
         td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}td.n{text-align:right}\
         .new{background:#fdd}.gone{background:#ddf}</style></head><body>\n",
    );
    let _ = writeln!(
        o,
        "<h1>{} session(s) in {} group(s)</h1>",
        f.sessions.len(),
        f.groups.len()
    );
    if !f.gate.fail_on.is_empty() {
        let _ = write!(
            o,
            "<p>gate: <strong>{}</strong></p><ul>",
            if f.gate.failed { "FAILED" } else { "passed" }
        );
        for r in &f.gate.reasons {
            let _ = write!(o, "<li>{}</li>", esc(r));
        }
        o.push_str("</ul>\n");
    }
    for g in &f.groups {
        let _ = writeln!(o, "<h2>{}</h2>", esc(&group_name(&g.scenario, &g.labels)));
        o.push_str("<table><tr><th>#</th><th>session</th><th>started</th><th>labels</th><th>complete</th></tr>");
        for (i, id) in g.sessions.iter().enumerate() {
            if let Some(s) = f.sessions.iter().find(|s| s.id == *id) {
                let _ = write!(
                    o,
                    "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    i + 1,
                    esc(&s.id),
                    esc(&s.started_at),
                    esc(&labels_text(&s.labels)),
                    if s.complete { "yes" } else { "no" }
                );
            }
        }
        o.push_str("</table>\n<table><tr><th>app</th><th>phase</th><th>kind</th>");
        for i in 0..g.sessions.len() {
            let _ = write!(o, "<th>#{}</th>", i + 1);
        }
        o.push_str("<th>change</th></tr>");
        for r in &g.rows {
            let class = r.change.unwrap_or("");
            let _ = write!(
                o,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td>",
                esc(&r.app),
                r.phase.as_str(),
                esc(&r.kind)
            );
            for id in &g.sessions {
                let _ = write!(
                    o,
                    "<td class=\"n\">{}</td>",
                    r.counts.get(id).copied().unwrap_or(0)
                );
            }
            let _ = write!(o, "<td>{class}</td></tr>");
        }
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}

/// The `sessions` subcommand: 0 when the gate holds (or none was asked for), 1 when it fails.
pub fn run(a: SessionsArgs) -> Result<ExitCode> {
    let cats = match &a.categories {
        Some(p) => Categories::load(p)?,
        None => Categories::builtin(),
    };
    let geo = Geo::from_env_and_defaults(a.geoip_country.clone(), a.geoip_asn.clone())?;
    let fleet = build(&a.dirs, &a.group_by, &a.fail_on, &geo, &cats)?;
    let out = match a.format {
        Format::Text => render_text(&fleet),
        Format::Json => serde_json::to_string_pretty(&fleet)? + "\n",
        Format::Html => render_html(&fleet),
    };
    match &a.out {
        Some(p) if p.as_os_str() != "-" => crate::safefs::write_replace(p, out.as_bytes())?,
        _ => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.context("write to standard output")?,
            }
        }
    }
    Ok(if fleet.gate.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
