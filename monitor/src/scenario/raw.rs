//! The scenario file as TOML has it (`Raw*`, positions kept) and its checked conversion into
//! steps and expectations, with the rules that involve several fields of one table.
use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) app: Option<String>,
    pub(super) target: Spanned<RawTarget>,
    #[serde(default)]
    pub(super) record: RecordSection,
    #[serde(default)]
    pub(super) setup: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub(super) step: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub(super) expect: Vec<Spanned<RawExpect>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) package: Option<String>,
    pub(super) uid: Option<u32>,
    pub(super) comm: Option<String>,
    pub(super) pid_file: Option<Template>,
    pub(super) command: Option<Cmd>,
    /// Run the scenario's commands as this user (like `run --run-as`).
    pub(super) user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) name: Option<String>,
    pub(super) run: Option<Cmd>,
    pub(super) background: Option<bool>,
    pub(super) allow_failure: Option<bool>,
    pub(super) sleep: Option<Dur>,
    pub(super) wait_for: Option<WaitKind>,
    pub(super) band: Option<Band>,
    pub(super) path: Option<Template>,
    pub(super) until: Option<Cmd>,
    pub(super) phase: Option<Phase>,
    pub(super) marker: Option<String>,
    pub(super) label: Option<String>,
    pub(super) app: Option<String>,
    pub(super) timeout: Option<Dur>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum WaitKind {
    Running,
    Exited,
    Band,
    File,
    Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    pub(super) name: Option<String>,
    pub(super) kind: Capability,
    pub(super) phases: Option<Vec<Phase>>,
    pub(super) app: Option<String>,
    pub(super) countries: Option<Vec<String>>,
    pub(super) allowed_countries: Option<Vec<String>>,
    pub(super) asns: Option<Vec<u32>>,
    pub(super) allowed_asns: Option<Vec<u32>>,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) hosts: Option<Vec<String>>,
    pub(super) category: Option<String>,
    pub(super) categories: Option<Vec<String>>,
    pub(super) path: Option<Glob>,
    pub(super) ops: Option<Vec<String>>,
    pub(super) max: Option<u64>,
    pub(super) max_bytes: Option<u64>,
}

pub(super) fn step(r: RawStep, line: usize) -> Result<Step, String> {
    check_step_fields(&r)?;
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

/// A step has exactly one action, and only the fields that action takes.
fn check_step_fields(r: &RawStep) -> Result<(), String> {
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
    Ok(())
}

pub(super) fn wait_name(k: WaitKind) -> &'static str {
    match k {
        WaitKind::Running => "running",
        WaitKind::Exited => "exited",
        WaitKind::Band => "band",
        WaitKind::File => "file",
        WaitKind::Command => "command",
    }
}

pub(super) fn expectation(r: RawExpect, line: usize) -> Result<Expectation, String> {
    check_fields(&r)?;
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
        scopes: one_of(r.scopes, "scopes", "scope", Scope::ALL, |x| x.as_str())?,
        hosts: r
            .hosts
            .map(|v| v.iter().map(|h| HostPattern::parse(h)).collect())
            .transpose()?,
        categories: r.category.map(|c| vec![c]).or(r.categories),
        path: r.path.map(|g| g.0),
        ops: one_of(r.ops, "ops", "operation", &DeviceOp::DOC_ORDER, |d| {
            d.as_str()
        })?,
    };
    let mut e = Expectation {
        name: String::new(),
        line,
        kind: r.kind,
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

/// Every field given applies to the expectation's kind, and no two exclude each other.
fn check_fields(r: &RawExpect) -> Result<(), String> {
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
    Ok(())
}

/// Two-letter ISO country codes, upper-cased.
fn countries(v: Option<Vec<String>>, field: &str) -> Result<Option<Vec<String>>, String> {
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
}

/// Each name in `list` as one of `all` (by `name`), or an error that lists them.
fn one_of<T: Copy>(
    list: Option<Vec<String>>,
    field: &str,
    what: &str,
    all: &[T],
    name: impl Fn(&T) -> &'static str,
) -> Result<Option<Vec<T>>, String> {
    list.map(|list| {
        list.iter()
            .map(|s| {
                all.iter().copied().find(|x| name(x) == s).ok_or_else(|| {
                    format!(
                        "`{field}`: unknown {what} {s:?} (one of {})",
                        all.iter().map(&name).collect::<Vec<_>>().join(", ")
                    )
                })
            })
            .collect()
    })
    .transpose()
}
