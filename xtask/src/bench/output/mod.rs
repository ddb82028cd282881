//! The results: `benchmarks.json` (everything, every repetition) and `BENCHMARKS.md` (tables,
//! target verdicts, profiles). A hand-written block between `<!-- analysis:begin -->` and
//! `<!-- analysis:end -->` in an existing BENCHMARKS.md is kept when the file is regenerated.
//! A file can hold sections from several runs (`--only` keeps the others): `runs` says which
//! run measured which section, on which commit, under what load.
use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    SECTIONS, Sizes,
    cond::Cond,
    overhead::{Summary, syscalls_per_op},
    profile::Profile,
    reportcost::ReportRun,
    runner::Sample,
    setup::{Load, Machine},
    startstop::StartStop,
    sweep::Point,
};

#[derive(Serialize, Deserialize)]
pub struct Results {
    pub mode: String,
    pub command: String,
    pub machine: Machine,
    pub sizes: Sizes,
    pub hooks: Vec<String>,
    /// `--ring-buffer` of the "larger ring buffer" condition.
    pub big_ring: String,
    pub workloads: Vec<(String, String)>,
    pub samples: Vec<Sample>,
    pub summaries: Vec<Summary>,
    pub sweep: Vec<Point>,
    pub report: Vec<ReportRun>,
    pub profiles: Vec<Profile>,
    pub targets: Vec<Target>,
    pub duration_s: f64,
    /// The raw-syscalls path's attach points (`emuwatch record --syscall-probes raw`).
    #[serde(default)]
    pub raw_hooks: Vec<String>,
    /// The per-syscall attach points in the run that measured the raw section (its
    /// per-syscall floor); `hooks` are the overhead section's.
    #[serde(default)]
    pub raw_reference_hooks: Vec<String>,
    #[serde(default)]
    pub raw_workloads: Vec<(String, String)>,
    #[serde(default)]
    pub raw_samples: Vec<Sample>,
    #[serde(default)]
    pub raw_summaries: Vec<Summary>,
    #[serde(default)]
    pub hook_type_workloads: Vec<(String, String)>,
    #[serde(default)]
    pub hook_type_samples: Vec<Sample>,
    #[serde(default)]
    pub hook_type_summaries: Vec<Summary>,
    #[serde(default)]
    pub startstop: Vec<StartStop>,
    /// The names section: connect workloads with name capture on and off.
    #[serde(default)]
    pub names_workloads: Vec<(String, String)>,
    #[serde(default)]
    pub names_samples: Vec<Sample>,
    #[serde(default)]
    pub names_summaries: Vec<Summary>,
    /// The runs these results come from, oldest first; the top-level `command`, `mode`,
    /// `machine` and `duration_s` are the last one's.
    #[serde(default)]
    pub runs: Vec<RunInfo>,
}

/// One run of the bench and the sections of these results it measured.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RunInfo {
    pub sections: Vec<String>,
    pub command: String,
    pub mode: String,
    pub machine: Machine,
    pub sizes: Sizes,
    pub duration_s: f64,
    #[serde(default)]
    pub load_start: Option<Load>,
    #[serde(default)]
    pub load_end: Option<Load>,
}

/// Read a results file; one written before `runs` existed gets its one run from the
/// top-level fields.
pub fn read(json_path: &Path) -> Result<Results> {
    let r: Results = serde_json::from_slice(
        &std::fs::read(json_path).with_context(|| format!("read {}", json_path.display()))?,
    )
    .with_context(|| format!("parse {}", json_path.display()))?;
    Ok(with_runs(r))
}

fn with_runs(mut r: Results) -> Results {
    if r.runs.is_empty() {
        let has = |s: &str| match s {
            "overhead" => !r.samples.is_empty(),
            "sweep" => !r.sweep.is_empty(),
            "report" => !r.report.is_empty(),
            "profile" => !r.profiles.is_empty(),
            "raw" => !r.raw_samples.is_empty(),
            "hooktype" => !r.hook_type_samples.is_empty(),
            "startstop" => !r.startstop.is_empty(),
            "names" => !r.names_samples.is_empty(),
            _ => false,
        };
        r.runs.push(RunInfo {
            sections: SECTIONS
                .iter()
                .filter(|s| has(s))
                .map(|s| s.to_string())
                .collect(),
            command: r.command.clone(),
            mode: r.mode.clone(),
            machine: r.machine.clone(),
            sizes: r.sizes.clone(),
            duration_s: r.duration_s,
            load_start: None,
            load_end: None,
        });
    }
    r
}

/// Into `new` (this run, which measured `ran`), every other section of `old`, and the runs
/// that measured them.
pub fn keep_sections(new: &mut Results, old: Results, ran: &[String]) {
    let kept = |s: &str| !ran.iter().any(|r| r == s);
    if kept("overhead") {
        new.hooks = old.hooks;
        new.workloads = old.workloads;
        new.samples = old.samples;
        new.summaries = old.summaries;
    }
    if kept("sweep") {
        new.sweep = old.sweep;
    }
    if kept("startstop") {
        new.startstop = old.startstop;
    }
    if kept("report") {
        new.report = old.report;
    }
    if kept("profile") {
        new.profiles = old.profiles;
    }
    if kept("raw") {
        new.raw_hooks = old.raw_hooks;
        new.raw_reference_hooks = old.raw_reference_hooks;
        new.raw_workloads = old.raw_workloads;
        new.raw_samples = old.raw_samples;
        new.raw_summaries = old.raw_summaries;
    }
    if kept("names") {
        new.names_workloads = old.names_workloads;
        new.names_samples = old.names_samples;
        new.names_summaries = old.names_summaries;
    }
    if kept("hooktype") {
        new.hook_type_workloads = old.hook_type_workloads;
        new.hook_type_samples = old.hook_type_samples;
        new.hook_type_summaries = old.hook_type_summaries;
    }
    new.runs = old
        .runs
        .into_iter()
        .filter_map(|mut run| {
            run.sections.retain(|s| kept(s));
            (!run.sections.is_empty()).then_some(run)
        })
        .collect();
}

/// The summaries again from the samples (figures a newer bench derives, e.g. paired ratios,
/// for results an older one wrote; the same figures otherwise).
fn resummarize(r: &mut Results) {
    let keys =
        |ws: &[(String, String)]| -> Vec<String> { ws.iter().map(|(k, _)| k.clone()).collect() };
    let again = |samples: &[Sample], ws: &[(String, String)], conds: &[Cond]| {
        let k = keys(ws);
        let k: Vec<&str> = k.iter().map(String::as_str).collect();
        super::overhead::summarize(samples, &k, conds)
    };
    if !r.samples.is_empty() {
        r.summaries = again(&r.samples, &r.workloads, &Cond::OVERHEAD);
    }
    if !r.raw_samples.is_empty() {
        r.raw_summaries = again(&r.raw_samples, &r.raw_workloads, &Cond::RAW);
    }
    if !r.names_samples.is_empty() {
        r.names_summaries = again(&r.names_samples, &r.names_workloads, &Cond::NAMES);
    }
    if !r.hook_type_samples.is_empty() {
        r.hook_type_summaries = again(
            &r.hook_type_samples,
            &r.hook_type_workloads,
            &Cond::HOOK_TYPE,
        );
    }
}

/// Which run measured `section` (1-based, with its description), when there are several.
fn measured_in(r: &Results, section: &str) -> Option<String> {
    if r.runs.len() < 2 {
        return None;
    }
    let (i, run) = r
        .runs
        .iter()
        .enumerate()
        .find(|(_, run)| run.sections.iter().any(|s| s == section))?;
    Some(format!(
        "_Measured in run {} ({}, commit {}; see Runs)._\n",
        i + 1,
        run.machine.date_utc,
        run.machine.git_commit
    ))
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Target {
    pub goal: String,
    pub measured: String,
    /// None: not measured in this run.
    pub met: Option<bool>,
    /// The section of the results it is judged on.
    #[serde(default)]
    pub section: String,
}

impl Target {
    pub fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not run",
        }
    }
}

fn summary<'a>(r: &'a Results, w: &str, c: Cond) -> Option<&'a Summary> {
    find(&r.summaries, w, c)
}

fn find<'a>(summaries: &'a [Summary], w: &str, c: Cond) -> Option<&'a Summary> {
    summaries
        .iter()
        .find(|s| s.workload == w && s.cond == c.key())
}

/// Nothing lost: delivered all it was made, and reported no loss.
fn lossless(x: &Summary) -> bool {
    x.lost_worst == Some(0) && x.lost_reported_worst == Some(0)
}

pub const RAW_TARGETED_MAX: f64 = 1.20;
pub const RAW_UNTARGETED_MAX: f64 = 1.05;

/// The raw path's full-capture condition on `w`: the default ring if it lost nothing, else
/// the larger one if that lost nothing.
fn raw_capture<'a>(r: &'a Results, w: &str) -> Option<&'a Summary> {
    find(&r.raw_summaries, w, Cond::EmuwatchRaw)
        .filter(|x| lossless(x))
        .or_else(|| find(&r.raw_summaries, w, Cond::EmuwatchRawBigRing).filter(|x| lossless(x)))
}

/// Extra nanoseconds per syscall over no tracer, from a hook-type summary: of wall-clock
/// time, or (`cpu`) of the workload's CPU time.
fn extra_ns_per_syscall(r: &Results, x: &Summary, cpu: bool) -> Option<f64> {
    let base = find(&r.hook_type_summaries, &x.workload, Cond::None)?;
    let per_op = syscalls_per_op(&x.workload)?;
    let ops = r
        .hook_type_samples
        .iter()
        .find(|s| s.workload == x.workload)
        .map(|s| s.ops)
        .filter(|&o| o > 0)?;
    let (t, b) = if cpu {
        (x.cpu_median_s?, base.cpu_median_s?)
    } else {
        (x.median_s, base.median_s)
    };
    Some((t - b) / (ops as f64 * per_op) * 1e9)
}

fn cpu_ratio(x: &Summary) -> String {
    opt_f(x.cpu_vs_floor, 2)
}

/// Noise band for "no more than the floor": half the floor's own spread, at least 3 %.
fn floor_band(floor: &Summary) -> f64 {
    (floor.spread_pct / 200.0).max(0.03)
}

fn not_run(goal: &str) -> Target {
    Target {
        goal: goal.into(),
        measured: "not measured in this run".into(),
        met: None,
        section: String::new(),
    }
}

fn opt_u(v: Option<u64>) -> String {
    v.map_or("—".into(), |v| v.to_string())
}

fn opt_f(v: Option<f64>, prec: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.prec$}"))
}

const ANALYSIS_BEGIN: &str = "<!-- analysis:begin -->";
const ANALYSIS_END: &str = "<!-- analysis:end -->";

fn kept_analysis(md: &Path) -> String {
    let old = std::fs::read_to_string(md).unwrap_or_default();
    match (old.find(ANALYSIS_BEGIN), old.find(ANALYSIS_END)) {
        (Some(b), Some(e)) if e > b => old[b..e + ANALYSIS_END.len()].to_string(),
        _ => format!(
            "{ANALYSIS_BEGIN}\n_No analysis written yet: this block is kept when the file is regenerated._\n{ANALYSIS_END}"
        ),
    }
}

/// `cargo xtask bench --render JSON [--out DIR]`: BENCHMARKS.md again from a results file,
/// e.g. after editing the analysis block; the targets are re-evaluated from the figures. Written
/// next to JSON, or to DIR (BENCHMARKS.md and benchmarks.json), keeping the analysis block of
/// the BENCHMARKS.md next to JSON.
pub fn render(json_path: &Path, out: Option<&Path>) -> Result<()> {
    let mut r = read(json_path)?;
    resummarize(&mut r);
    r.targets = targets(&r);
    let analysis = kept_analysis(&json_path.with_file_name("BENCHMARKS.md"));
    let (md, json) = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            (dir.join("BENCHMARKS.md"), dir.join("benchmarks.json"))
        }
        None => (
            json_path.with_file_name("BENCHMARKS.md"),
            json_path.to_path_buf(),
        ),
    };
    write_with(&r, &md, &json, &analysis)?;
    eprintln!("bench: wrote {} from {}", md.display(), json_path.display());
    Ok(())
}

pub fn write(r: &Results, md_path: &Path, json_path: &Path) -> Result<()> {
    write_with(r, md_path, json_path, &kept_analysis(md_path))
}

fn write_with(r: &Results, md_path: &Path, json_path: &Path, analysis: &str) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(r)?;
    json.push(b'\n');
    std::fs::write(json_path, json)?;
    std::fs::write(md_path, markdown(r, analysis))?;
    Ok(())
}

mod markdown;
mod sections;
mod targets;

use markdown::markdown;
pub use targets::targets;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A results file as an older bench wrote it (no raw sections, no `runs`).
    fn old_results() -> Results {
        let machine = json!({
            "date_utc": "2026-11-25T10:55:09Z", "hostname": "vm", "cpu": "x", "cpus": 2,
            "memory": "1 GiB", "virtualization": "vm", "os": "Debian", "kernel": "6.18",
            "kernel_version": "#1", "lockdown": "none", "git_commit": "bc78095", "tools": []
        });
        let sizes = json!({
            "reps": 5, "strace_reps": 2, "open_n": 1, "connect_n": 1, "mix_procs": 1,
            "mix_rounds": 1, "sweep_rates": [null], "sweep_seconds": 1.0,
            "report_events": [1], "report_runs": 1
        });
        serde_json::from_value(json!({
            "mode": "full", "command": "cargo xtask bench", "machine": machine,
            "sizes": sizes, "hooks": ["tracepoint syscalls/sys_enter_openat"],
            "big_ring": "64M", "workloads": [["open", "(a)"]],
            "samples": [{"workload": "open", "cond": "none", "rep": 0, "elapsed_s": 0.2,
                         "workload_cpu_s": 0.2, "ops": 1, "ops_per_s": 1.0, "made_opens": 1,
                         "made_reads": 1, "made_connects": 0, "busy_before": 0.0,
                         "syn_retransmits": 0}],
            "summaries": [], "sweep": [], "report": [], "profiles": [], "targets": [],
            "duration_s": 723.0
        }))
        .unwrap()
    }

    fn summary(w: &str, c: Cond, median_s: f64, floor_s: f64, lost: Option<u64>) -> Summary {
        Summary {
            workload: w.into(),
            cond: c.key().into(),
            label: c.label().into(),
            reps: 5,
            median_s,
            min_s: median_s,
            max_s: median_s,
            spread_pct: 0.0,
            vs_no_tracer: 1.0,
            vs_floor: median_s / floor_s,
            made: 10,
            made_reads: 0,
            delivered: lost.map(|l| 10 - l),
            delivered_reads: None,
            lost_worst: lost,
            lost_reported_worst: lost,
            tracer_cpu_s: None,
            tracer_peak_rss_mib: None,
            cpu_median_s: Some(median_s),
            cpu_vs_floor: Some(median_s / floor_s),
            paired_vs_floor: None,
        }
    }

    #[test]
    fn an_old_file_gets_its_run_from_the_top_level_fields() {
        let r = with_runs(old_results());
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.runs[0].sections, ["overhead"]);
        assert_eq!(r.runs[0].machine.git_commit, "bc78095");
        assert!(r.runs[0].load_start.is_none());
    }

    #[test]
    fn only_keeps_the_sections_it_did_not_run() {
        let old = with_runs(old_results());
        let mut new = old_results();
        new.samples.clear();
        new.machine.git_commit = "new".into();
        new.raw_workloads = vec![("open".into(), "(a)".into())];
        new.raw_summaries = vec![summary("open", Cond::FloorRaw, 1.0, 1.0, None)];
        keep_sections(&mut new, old, &["raw".to_string()]);
        assert_eq!(new.samples.len(), 1, "overhead kept from the old run");
        assert_eq!(new.raw_summaries.len(), 1, "raw from this run");
        assert_eq!(new.runs.len(), 1);
        assert_eq!(new.runs[0].sections, ["overhead"]);
        // Re-running a section drops it from the run that measured it before.
        let mut again = old_results();
        keep_sections(
            &mut again,
            with_runs(old_results()),
            &["overhead".to_string()],
        );
        assert!(again.runs.is_empty());
    }

    #[test]
    fn raw_targets_judge_full_capture_against_the_raw_floor() {
        let mut r = with_runs(old_results());
        r.raw_workloads = vec![("open".into(), "(a)".into())];
        r.raw_summaries = vec![
            summary("open", Cond::Floor, 0.5, 0.5, None),
            summary("open", Cond::FloorRaw, 1.0, 1.0, None),
            // The default ring lost events: the larger ring is the full capture.
            summary("open", Cond::EmuwatchRaw, 1.1, 1.0, Some(3)),
            summary("open", Cond::EmuwatchRawBigRing, 1.3, 1.0, Some(0)),
            summary("open", Cond::EmuwatchRawOther, 1.04, 1.0, None),
        ];
        let t = targets(&r);
        let full = t
            .iter()
            .find(|t| t.goal.starts_with("raw path: targeted"))
            .unwrap();
        assert_eq!(full.met, Some(false), "{}", full.measured);
        assert!(full.measured.contains("1.30x"), "{}", full.measured);
        assert!(
            full.measured.contains("--ring-buffer 64M"),
            "{}",
            full.measured
        );
        let other = t
            .iter()
            .find(|t| t.goal.starts_with("raw path: untargeted"))
            .unwrap();
        assert_eq!(other.met, Some(true), "{}", other.measured);
        let hook = t.iter().find(|t| t.goal.contains("raw_tp")).unwrap();
        assert_eq!(hook.met, None);
    }
}
