//! `emuwatch run SCENARIO`: run the setup, record while the steps run, write the session and
//! its reports, evaluate the expectations, compare with a baseline, write JUnit XML.
//! Exit status: 0 everything holds, 1 a violation or regression, 2 an error (bad scenario,
//! failed step, probes missing, events lost: a run with lost events cannot pass).
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::{
    Scenario, Vars,
    expect::{self, Outcome},
    junit::{Case, CaseResult, Suite},
    outcome::{RUN_CASE, check_recording, junit_cases, print_outcome},
    prepare::{Checked, baseline_path, check_before_recording, resolve, resolve_target},
    steps::{self, AppWatch, Runner, StepResult},
};
use crate::{
    analysis::{self, categories::Categories},
    baseline::{self, Baseline, DEFAULT_THRESHOLD_PCT, parse_pct},
    control::{self, MarkRequest},
    escape::escape,
    geo::Geo,
    record::{self, RecordOptions},
    report::{self, Format},
    session::{RunInfo, SessionInfo},
};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario file (TOML, docs/scenarios.md).
    pub scenario: PathBuf,
    /// Compare with a baseline: a baseline file, a session directory, or a directory holding
    /// `<scenario name>.json`.
    #[arg(long, value_name = "FILE|DIR")]
    pub baseline: Option<PathBuf>,
    /// Also write the JUnit XML here (it is always written to SESSION/junit.xml).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Session directory to create (default: sessions/<UTC time>).
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Volume threshold of the baseline comparison, in percent.
    #[arg(long, value_name = "PCT", default_value_t = DEFAULT_THRESHOLD_PCT, value_parser = parse_pct)]
    pub threshold: f64,
    /// Print only the result, the failures and where the reports are.
    #[arg(long, short)]
    pub quiet: bool,
    /// Only check the scenario (and the baseline, category rules and GeoIP databases it
    /// names): record nothing. Exit 0 when it is valid, 2 otherwise.
    #[arg(long)]
    pub check: bool,
    /// Run the scenario's commands (setup, steps, the command target) as this user, not as
    /// root: a scenario file is then not root code. The run's scratch directory ({work})
    /// belongs to that user.
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    #[command(flatten)]
    pub probes: crate::kernel::ProbeChoice,
    #[command(flatten)]
    pub binder: crate::enrich::binder::BinderChoice,
    /// A label for session.json's `labels` (app version, Android API level, device ...), e.g.
    /// `--label app_version=1.4.2`. Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
}

/// Wait until the recording's control socket answers (probes attached, command started).
fn wait_attached(session: &Path, ended: &AtomicBool) -> bool {
    let sock = session.join(control::SOCKET);
    loop {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            return true;
        }
        if ended.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The (uid, gid) the scenario's commands run as: `--run-as USER` or the scenario's
/// `[target] user`. Both may be given only when they name the same user: a scenario that asks
/// for an unprivileged user is not run as another one by accident.
fn run_as(a: &RunArgs, sc: &Scenario) -> Result<Option<(u32, u32)>> {
    let cli = a
        .run_as
        .as_deref()
        .map(record::lookup_user)
        .transpose()
        .context("--run-as")?;
    let file = sc.user.as_ref().map(|u| (u.uid, u.gid));
    match (cli, &sc.user) {
        (Some(c), Some(u)) if Some(c) != file => bail!(
            "--run-as {} (uid {}) and the scenario's [target] user = {:?} (uid {}) disagree: give one of them, or the same user",
            a.run_as.as_deref().unwrap_or_default(),
            c.0,
            u.name,
            u.uid
        ),
        _ => Ok(cli.or(file)),
    }
}

/// `--check`: everything `run` checks before recording, with placeholders that need a run
/// (`{work}`, `{session}`) pointing at a scratch directory.
fn check_only(a: &RunArgs, sc: &Scenario, file: &str, scenario_dir: &Path) -> Result<ExitCode> {
    let tmp = tempfile::Builder::new()
        .prefix("emuwatch-check-")
        .tempdir()?;
    let vars = Vars {
        work: tmp.path().to_path_buf(),
        session: tmp.path().to_path_buf(),
        bin_dir: std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        scenario_dir: scenario_dir.to_path_buf(),
    };
    let path = |t: &Option<super::Template>| -> Result<Option<PathBuf>> {
        t.as_ref()
            .map(|t| Ok(resolve(&t.expand(&vars)?, scenario_dir)))
            .transpose()
    };
    let cats = match path(&sc.record.categories)? {
        Some(p) => Categories::load(&p)?,
        None => Categories::builtin(),
    };
    expect::check_categories(&sc.expect, &cats, file)?;
    let geo =
        Geo::from_env_and_defaults(path(&sc.record.geoip_country)?, path(&sc.record.geoip_asn)?)?;
    if let Some(p) = &a.baseline {
        Baseline::load(&baseline_path(p, &sc.name)?, &geo, Some(&cats))?;
    }
    let user = match run_as(a, sc)? {
        Some((uid, _)) => format!(" (commands run as uid {uid})"),
        None => String::new(),
    };
    println!(
        "{file}: scenario {:?} is valid: target {}{user}, {} setup step(s), {} step(s), {} expectation(s)",
        sc.name,
        sc.target.describe(),
        sc.setup.len(),
        sc.steps.len(),
        sc.expect.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let t0 = Instant::now();
    let sc = Scenario::load(&a.scenario)?;
    // Bad labels are refused before anything runs (and by --check).
    crate::session::parse_labels(&a.label)?;
    let file = a.scenario.display().to_string();
    let scenario_dir = a
        .scenario
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .context("the scenario's directory")?;
    let bin_dir = std::env::current_exe()
        .context("find the emuwatch executable")?
        .parent()
        .context("the emuwatch executable's directory")?
        .to_path_buf();
    if a.check {
        return check_only(&a, &sc, &file, &scenario_dir);
    }
    // From here on SIGINT/SIGTERM end the run cleanly, setup steps included.
    super::steps::catch_interrupts();
    // Before anything runs (setup steps included) or is written.
    record::check_privileges("emuwatch run")?;
    let out = a.out.clone().unwrap_or_else(record::default_session_dir);
    if out.join("events.jsonl").exists() {
        bail!(
            "{} is already a session (choose another --out)",
            out.display()
        );
    }
    // The run writes several files into --out: an existing directory must be empty, so no
    // planted file or symlink is there to be written through or mistaken for the run's.
    match std::fs::symlink_metadata(&out) {
        Ok(md) if !md.is_dir() => bail!("--out {} exists and is not a directory", out.display()),
        Ok(_) => {
            let mut entries = std::fs::read_dir(&out)
                .with_context(|| format!("read directory {}", out.display()))?;
            if entries.next().is_some() {
                bail!(
                    "--out {} exists and is not empty (choose another --out)",
                    out.display()
                );
            }
        }
        Err(_) => {}
    }
    crate::safefs::create_dir_private(&out)
        .with_context(|| format!("create session directory {}", out.display()))?;
    let out = out.canonicalize()?;
    let started_at = chrono::Utc::now();
    match run_in(&a, &sc, &file, &scenario_dir, bin_dir, &out, t0) {
        Ok(code) => Ok(code),
        Err(e) => {
            // Even a run that failed leaves its run.json and JUnit XML, saying why.
            write_error_artifacts(&a, &sc, &file, &out, &format!("{e:#}"), t0, started_at);
            Err(e)
        }
    }
}

/// run.json and the JUnit XML of a run that ended in an error (best effort).
fn write_error_artifacts(
    a: &RunArgs,
    sc: &Scenario,
    file: &str,
    out: &Path,
    error: &str,
    t0: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
) {
    let run_info = RunInfo {
        scenario: sc.name.clone(),
        scenario_file: file.to_string(),
        work_dir: String::new(),
        categories: None,
        steps: Vec::new(),
        expectations: Vec::new(),
        baseline: None,
        errors: vec![error.to_string()],
        exit_code: 2,
    };
    if let Ok(j) = serde_json::to_string_pretty(&run_info) {
        let _ = crate::safefs::write_replace(&out.join(RunInfo::FILE), (j + "\n").as_bytes());
    }
    let suite = Suite {
        name: sc.name.clone(),
        timestamp: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        hostname: crate::session::hostname(),
        time_s: t0.elapsed().as_secs_f64(),
        properties: vec![
            ("scenario".into(), file.to_string()),
            ("session".into(), out.display().to_string()),
            ("target".into(), sc.target.describe()),
        ],
        cases: vec![Case {
            name: RUN_CASE.into(),
            classname: format!("emuwatch.{}.run", sc.name),
            result: CaseResult::Error {
                message: error.to_string(),
                text: error.to_string(),
            },
            output: String::new(),
        }],
    };
    let xml = suite.render();
    let _ = crate::safefs::write_replace(&out.join("junit.xml"), xml.as_bytes());
    if let Some(j) = &a.junit {
        let _ = crate::safefs::write_replace(j, xml.as_bytes());
    }
}

fn run_in(
    a: &RunArgs,
    sc: &Scenario,
    file: &str,
    scenario_dir: &Path,
    bin_dir: PathBuf,
    out: &Path,
    t0: Instant,
) -> Result<ExitCode> {
    let run_as = run_as(a, sc)?;
    let work = scratch_dir(run_as)?;
    let vars = Vars {
        work: work.path().to_path_buf(),
        session: out.to_path_buf(),
        bin_dir,
        scenario_dir: scenario_dir.to_path_buf(),
    };
    // Everything that can be checked before recording is checked now.
    let checked = check_before_recording(a.baseline.as_deref(), sc, file, &vars, scenario_dir)?;
    if !a.quiet {
        announce(sc, out);
    }
    let log =
        crate::safefs::create_new_private(&out.join("steps.log")).context("create steps.log")?;
    let ended = AtomicBool::new(false);
    let mut runner = Runner {
        vars: &vars,
        session: out,
        ended: &ended,
        log,
        background: Vec::new(),
        watch: None,
        app: sc.app.clone(),
        quiet: a.quiet,
        run_as,
    };
    let mut results = run_setup(&mut runner, sc, file)?;

    // The target is resolved after the setup (which may write the pid file).
    let (target, watch) = resolve_target(sc, &vars, scenario_dir, out, &checked.packages_list)?;
    let opts = record_options(a, sc, target, &checked, out, run_as);
    let max = opts.duration.unwrap_or(super::DEFAULT_MAX_DURATION);
    let (step_results, recorded) = record_during_steps(&mut runner, sc, watch, opts, out, &ended)?;
    runner.stop_background();
    let info = recorded?.info;
    let mut errors: Vec<String> = Vec::new();
    check_recording(
        file,
        sc,
        &info,
        step_results,
        max,
        &mut results,
        &mut errors,
    );

    let work_dir = work.path().to_string_lossy().into_owned();
    let ev = evaluate(a, sc, out, &checked, &work_dir)?;
    // JUnit: one case per expectation and per (app, baseline rule), and one for the run.
    let (cases, baseline_failures) = junit_cases(
        file,
        sc,
        &info,
        &errors,
        &ev.outcomes,
        ev.diff.as_ref(),
        checked.baseline.as_ref(),
    );
    let junit = write_junit(a, sc, file, out, &info, t0, cases)?;
    let failed = ev.outcomes.iter().any(|o| !o.passed);
    let code: u8 = if !errors.is_empty() {
        2
    } else if failed || baseline_failures > 0 {
        1
    } else {
        0
    };
    write_run_info(
        out,
        RunInfo {
            scenario: sc.name.clone(),
            scenario_file: file.to_string(),
            work_dir,
            categories: checked.cats_file.map(|p| p.display().to_string()),
            steps: json_values(&results),
            expectations: json_values(&ev.outcomes),
            baseline: ev.diff.as_ref().and_then(|d| serde_json::to_value(d).ok()),
            errors: errors.clone(),
            exit_code: code,
        },
    )?;
    print_outcome(
        a.quiet,
        &info,
        &ev.outcomes,
        ev.diff.as_ref(),
        &errors,
        (code, baseline_failures),
        (&junit, &ev.reports),
    );
    Ok(ExitCode::from(code))
}

/// Each item as a JSON value (run.json's steps and expectations).
fn json_values<T: serde::Serialize>(items: &[T]) -> Vec<serde_json::Value> {
    items
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}

fn write_run_info(out: &Path, run_info: RunInfo) -> Result<()> {
    crate::safefs::write_replace(
        &out.join(RunInfo::FILE),
        (serde_json::to_string_pretty(&run_info)? + "\n").as_bytes(),
    )
}

/// The run's scratch directory (`{work}`), owned by the user the commands run as.
fn scratch_dir(run_as: Option<(u32, u32)>) -> Result<tempfile::TempDir> {
    let work = tempfile::Builder::new()
        .prefix("emuwatch-run-")
        .tempdir()
        .context("create the run's scratch directory")?;
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(work.path(), Some(uid), Some(gid))
            .context("give the scratch directory to the user the commands run as")?;
    }
    Ok(work)
}

/// The scenario's name, description, target and session, before anything runs.
fn announce(sc: &Scenario, out: &Path) {
    println!(
        "emuwatch run: {}{}",
        escape(&sc.name),
        sc.description
            .as_deref()
            .map(|d| format!(" — {}", escape(d.trim())))
            .unwrap_or_default()
    );
    println!("  target:  {}", escape(&sc.target.describe()));
    println!("  session: {}", out.display());
}

/// The setup steps: a failed one, or a signal meanwhile, ends the run before it records.
fn run_setup(runner: &mut Runner, sc: &Scenario, file: &str) -> Result<Vec<StepResult>> {
    let results = runner.run_all("setup", &sc.setup);
    if let Some(f) = results.iter().find(|r| !r.ok) {
        runner.stop_background();
        bail!(
            "{file}:{}: setup step {} ({}) failed: {}",
            f.line,
            f.index,
            f.what,
            f.error.as_deref().unwrap_or("")
        );
    }
    if steps::interrupted() {
        runner.stop_background();
        bail!("{} before the recording started", steps::INTERRUPTED_MSG);
    }
    Ok(results)
}

/// The recording the scenario's `[record]` table and the command line ask for.
fn record_options(
    a: &RunArgs,
    sc: &Scenario,
    target: crate::session::TargetSpec,
    checked: &Checked,
    out: &Path,
    run_as: Option<(u32, u32)>,
) -> RecordOptions {
    RecordOptions {
        target,
        packages_list: checked.packages_list.clone(),
        out: Some(out.to_path_buf()),
        duration: Some(
            sc.record
                .duration
                .map_or(super::DEFAULT_MAX_DURATION, |d| d.0),
        ),
        ring_bytes: sc.record.ring_buffer.map_or(8 << 20, |s| s.0),
        wakeup_bytes: sc.record.wakeup_bytes,
        poll: sc.record.poll.map_or(Duration::from_millis(5), |d| d.0),
        quiet: true,
        device_patterns: checked.devices.clone(),
        geoip_country: checked.geoip_country.clone(),
        geoip_asn: checked.geoip_asn.clone(),
        stop_when_targets_exit: false,
        command_output: Some(out.join("target.log")),
        probes: sc.record.probes(a.probes),
        leave_running: false,
        run_as,
        max_size: None,
        binder: a.binder.clone(),
        // Checked when the run started.
        labels: crate::session::parse_labels(&a.label).unwrap_or_default(),
    }
}

/// What one pass over the recorded session gave: the reports written, the expectations'
/// outcomes and the comparison with the baseline.
struct Evaluated {
    reports: Vec<PathBuf>,
    outcomes: Vec<Outcome>,
    diff: Option<baseline::Diff>,
}

/// Reports, expectations and the baseline comparison, from one pass over the session.
fn evaluate(
    a: &RunArgs,
    sc: &Scenario,
    out: &Path,
    checked: &Checked,
    work_dir: &str,
) -> Result<Evaluated> {
    let mut evaluator = expect::Evaluator::new(&sc.expect, sc.app.as_deref(), &checked.cats);
    let mut current = checked
        .baseline
        .as_ref()
        .map(|_| baseline::BaselineAcc::new(&checked.cats, Some(work_dir)));
    let rep = analysis::analyse_with(out, &checked.geo, &checked.cats, true, |f| {
        evaluator.add(&f);
        if let Some(c) = &mut current {
            c.add(&f);
        }
    })?;
    let reports = write_reports(out, &rep)?;
    let outcomes = evaluator.finish(rep.frame);
    let diff = checked
        .baseline
        .as_ref()
        .zip(current)
        .map(|((b, path), cur)| {
            let cur = cur.finish(Some(sc.name.clone()));
            baseline::diff(
                b,
                &cur,
                &path.display().to_string(),
                &out.display().to_string(),
                a.threshold,
            )
        });
    Ok(Evaluated {
        reports,
        outcomes,
        diff,
    })
}

/// The reports a run leaves in its session: report.txt, report.html, summary.json.
fn write_reports(out: &Path, rep: &analysis::Analysis) -> Result<Vec<PathBuf>> {
    let mut reports = Vec::new();
    for (fmt, name) in [
        (Format::Text, "report.txt"),
        (Format::Html, "report.html"),
        (Format::Json, "summary.json"),
    ] {
        let p = out.join(name);
        crate::safefs::write_replace(&p, report::render(rep, fmt)?.as_bytes())?;
        reports.push(p);
    }
    Ok(reports)
}

/// junit.xml in the session (and at `--junit`): the run's cases in one suite.
fn write_junit(
    a: &RunArgs,
    sc: &Scenario,
    file: &str,
    out: &Path,
    info: &SessionInfo,
    t0: Instant,
    cases: Vec<Case>,
) -> Result<PathBuf> {
    let suite = Suite {
        name: sc.name.clone(),
        timestamp: info
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        hostname: info.hostname.clone(),
        time_s: t0.elapsed().as_secs_f64(),
        properties: vec![
            ("scenario".into(), file.to_string()),
            ("session".into(), out.display().to_string()),
            ("target".into(), sc.target.describe()),
        ],
        cases,
    };
    let xml = suite.render();
    let junit = out.join("junit.xml");
    crate::safefs::write_replace(&junit, xml.as_bytes())?;
    if let Some(j) = &a.junit {
        crate::safefs::write_replace(j, xml.as_bytes())?;
    }
    Ok(junit)
}

/// Record while the steps run in a second thread; the steps start once the probes are
/// attached and end the recording (a stop request) when they are done.
fn record_during_steps(
    runner: &mut Runner,
    sc: &Scenario,
    mut watch: AppWatch,
    opts: RecordOptions,
    out: &Path,
    ended: &AtomicBool,
) -> Result<(Option<Vec<StepResult>>, Result<record::RecordOutcome>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(std::thread::scope(|s| {
        let steps = &sc.steps;
        let h = s.spawn(move || {
            if !wait_attached(out, ended) {
                return None;
            }
            if let Some(info) = std::fs::read(out.join("session.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<SessionInfo>(&b).ok())
            {
                watch.roots = info.target.pids.clone();
            }
            runner.watch = Some(watch);
            let r = runner.run_all("step", steps);
            // The steps are done (or one failed): end the recording.
            let _ = control::mark(
                out,
                &MarkRequest {
                    label: String::new(),
                    phase: None,
                    app: None,
                    stop: true,
                },
            );
            Some(r)
        });
        let rec = rt.block_on(record::record(opts));
        ended.store(true, Ordering::Relaxed);
        let r = h.join().unwrap_or(None);
        (r, rec)
    }))
}
