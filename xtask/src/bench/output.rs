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
    overhead::{Summary, syscalls_per_op},
    profile::Profile,
    reportcost::ReportRun,
    runner::{Cond, Sample},
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

pub fn targets(r: &Results) -> Vec<Target> {
    let mut t = Vec::new();
    let a = |c| summary(r, "open", c);
    // Full capture: the default configuration if it lost nothing, else the larger ring.
    let full = |x: &&Summary| lossless(x);
    let capture = a(Cond::Emuwatch)
        .filter(full)
        .or_else(|| a(Cond::EmuwatchBigRing).filter(full));
    let config = |x: &Summary| {
        if x.cond == Cond::EmuwatchBigRing.key() {
            format!(
                "with --ring-buffer {} (the default ring lost up to {} events)",
                r.big_ring,
                a(Cond::Emuwatch).and_then(|d| d.lost_worst).unwrap_or(0)
            )
        } else {
            "default settings".to_string()
        }
    };
    // 1. targeted full capture of (a) <= 1.10x the floor
    const G1: &str = "targeted full capture of (a) <= 1.10x the no-op floor";
    t.push(match (capture, a(Cond::Floor)) {
        (Some(e), Some(f)) => {
            let ratio = e.median_s / f.median_s;
            Target {
                goal: G1.into(),
                measured: format!(
                    "{ratio:.2}x the floor ({:.3} s vs {:.3} s), nothing lost, {}",
                    e.median_s,
                    f.median_s,
                    config(e)
                ),
                met: Some(ratio <= 1.10),
                section: String::new(),
            }
        }
        (None, Some(_)) if a(Cond::Emuwatch).is_some() => Target {
            goal: G1.into(),
            measured: "no configuration captured everything".into(),
            met: Some(false),
            section: String::new(),
        },
        _ => not_run(G1),
    });
    // 2. >= 4x faster than opensnoop on (a)
    const G2: &str = "(a) >= 4x faster than opensnoop";
    t.push(match (capture, a(Cond::Opensnoop)) {
        (Some(e), Some(o)) => {
            let ratio = o.median_s / e.median_s;
            Target {
                goal: G2.into(),
                measured: format!(
                    "{ratio:.2}x faster ({:.3} s vs {:.3} s, full capture {})",
                    e.median_s,
                    o.median_s,
                    config(e)
                ),
                met: Some(ratio >= 4.0),
                section: String::new(),
            }
        }
        _ => not_run(G2),
    });
    // 3. zero loss at >= 200k offered events/s
    let em: Vec<&Point> = r.sweep.iter().filter(|p| p.tool == "emuwatch").collect();
    t.push(if em.is_empty() {
        not_run("zero lost events at >= 200k offered events/s")
    } else {
        // A point counts at the rate requested when the workload reached it (within 5 %).
        let rate = |p: &Point| match p.target_per_s {
            Some(t) if p.offered_per_s >= 0.95 * t => t.max(p.offered_per_s),
            _ => p.offered_per_s,
        };
        let best = em
            .iter()
            .filter(|p| p.lost == 0)
            .map(|p| rate(p))
            .fold(0.0, f64::max);
        let first_loss = em
            .iter()
            .filter(|p| p.lost > 0)
            .map(|p| rate(p))
            .fold(f64::INFINITY, f64::min);
        // Met when every rate up to 200k/s offered was lossless and some rate >= 200k/s was.
        let lossless_200k = best >= 200e3 && em.iter().all(|p| p.lost == 0 || rate(p) > 200e3);
        Target {
            goal: "zero lost events at >= 200k offered events/s".into(),
            measured: format!(
                "lossless up to {:.0}k/s offered{}",
                best / 1e3,
                if first_loss.is_finite() {
                    format!("; first loss at {:.0}k/s", first_loss / 1e3)
                } else {
                    "; no loss at any rate tried".into()
                }
            ),
            met: Some(lossless_200k),
            section: String::new(),
        }
    });
    // 4. untargeted workloads pay no more than the floor
    let mut ratios = Vec::new();
    let mut ok = true;
    for w in ["open", "connect", "mix"] {
        if let (Some(o), Some(f)) = (
            summary(r, w, Cond::EmuwatchOther),
            summary(r, w, Cond::Floor),
        ) {
            let ratio = o.median_s / f.median_s;
            ok &= ratio <= 1.0 + floor_band(f);
            ratios.push(format!("{w} {ratio:.2}x"));
        }
    }
    t.push(if ratios.is_empty() {
        not_run("untargeted workloads pay no more than the floor")
    } else {
        Target {
            goal: "untargeted workloads pay no more than the floor".into(),
            measured: format!(
                "untargeted / floor: {} (noise band: half the floor's spread, >= 3 %)",
                ratios.join(", ")
            ),
            met: Some(ok),
            section: String::new(),
        }
    });
    // 5. userspace <= 0.3 core at 50k events/s, peak RSS <= 64 MiB
    let at50 = em
        .iter()
        .filter(|p| p.target_per_s == Some(50e3))
        .min_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
    t.push(match at50 {
        Some(p) => {
            let cores = p.tracer_cores.unwrap_or(f64::NAN);
            let rss = p.tracer_peak_rss_mib.unwrap_or(f64::NAN);
            let max_rss = r
                .summaries
                .iter()
                .filter(|s| s.cond == Cond::Emuwatch.key())
                .filter_map(|s| s.tracer_peak_rss_mib)
                .chain(em.iter().filter_map(|p| p.tracer_peak_rss_mib))
                .fold(rss, f64::max);
            Target {
                goal: "userspace <= 0.3 core at 50k events/s, peak RSS <= 64 MiB".into(),
                measured: format!(
                    "{cores:.2} core and {rss:.0} MiB at {:.0}k/s; peak RSS over all targeted runs {max_rss:.0} MiB",
                    p.offered_per_s / 1e3
                ),
                met: Some(cores <= 0.3 && rss <= 64.0),
                section: String::new(),
            }
        }
        None => not_run("userspace <= 0.3 core at 50k events/s, peak RSS <= 64 MiB"),
    });
    // 6. report on 1M events <= 3 s
    let big = r
        .report
        .iter()
        .filter(|x| x.format == "text")
        .max_by_key(|x| x.events);
    t.push(match big {
        Some(x) if x.events >= 1_000_000 => Target {
            goal: "`report` on 1M events <= 3 s, peak RSS <= 128 MiB".into(),
            measured: format!(
                "{:.2} s (text), peak RSS {:.0} MiB, on {} events",
                x.median_s, x.peak_rss_mib, x.events
            ),
            met: Some(x.median_s <= 3.0 && x.peak_rss_mib <= 128.0),
            section: String::new(),
        },
        Some(x) => Target {
            goal: "`report` on 1M events <= 3 s, peak RSS <= 128 MiB".into(),
            measured: format!(
                "only {} events in this run: {:.2} s (text)",
                x.events, x.median_s
            ),
            met: None,
            section: String::new(),
        },
        None => not_run("`report` on 1M events <= 3 s, peak RSS <= 128 MiB"),
    });
    // 7. raw path: targeted full capture <= 1.20x its own floor, on every workload
    const G7: &str = "raw path: targeted full capture <= 1.20x its own no-op floor (a, b, c)";
    let raw_keys: Vec<&str> = r.raw_workloads.iter().map(|(k, _)| k.as_str()).collect();
    let mut parts = Vec::new();
    let mut ok = true;
    for w in &raw_keys {
        let floor = find(&r.raw_summaries, w, Cond::FloorRaw);
        match (raw_capture(r, w), floor) {
            (Some(e), Some(f)) => {
                let ratio = e.median_s / f.median_s;
                ok &= ratio <= RAW_TARGETED_MAX;
                parts.push(format!(
                    "{w} {ratio:.2}x (CPU {}x){}",
                    cpu_ratio(e),
                    if e.cond == Cond::EmuwatchRawBigRing.key() {
                        format!(" (--ring-buffer {}: the default lost events)", r.big_ring)
                    } else {
                        String::new()
                    }
                ));
            }
            (None, Some(_)) => {
                ok = false;
                parts.push(format!("{w}: no configuration captured everything"));
            }
            _ => {}
        }
    }
    t.push(if parts.is_empty() {
        not_run(G7)
    } else {
        Target {
            goal: G7.into(),
            measured: format!(
                "targeted / raw floor, wall-clock (workload CPU time): {}",
                parts.join(", ")
            ),
            met: Some(ok),
            section: String::new(),
        }
    });
    // 8. raw path: untargeted <= 1.05x its own floor
    const G8: &str = "raw path: untargeted workloads <= 1.05x the raw path's no-op floor";
    let mut parts = Vec::new();
    let mut ok = true;
    for w in &raw_keys {
        if let (Some(o), Some(f)) = (
            find(&r.raw_summaries, w, Cond::EmuwatchRawOther),
            find(&r.raw_summaries, w, Cond::FloorRaw),
        ) {
            let ratio = o.median_s / f.median_s;
            ok &= ratio <= RAW_UNTARGETED_MAX;
            parts.push(format!("{w} {ratio:.2}x (CPU {}x)", cpu_ratio(o)));
        }
    }
    t.push(if parts.is_empty() {
        not_run(G8)
    } else {
        Target {
            goal: G8.into(),
            measured: format!(
                "untargeted / raw floor, wall-clock (workload CPU time): {}",
                parts.join(", ")
            ),
            met: Some(ok),
            section: String::new(),
        }
    });
    // 9. the raw path's default hook type is the cheaper one
    const G9: &str =
        "raw path's default hook (raw_tp) costs no more than the classic raw_syscalls tracepoints";
    let mut parts = Vec::new();
    let mut ok = true;
    for (w, _) in &r.hook_type_workloads {
        let raw = find(&r.hook_type_summaries, w, Cond::FloorRawTp);
        let tp = find(&r.hook_type_summaries, w, Cond::FloorTpRawSyscalls);
        if let (Some(raw), Some(tp)) = (raw, tp) {
            ok &= raw.median_s <= tp.median_s;
            let ns =
                |x, cpu| extra_ns_per_syscall(r, x, cpu).map_or("?".into(), |v| format!("{v:+.0}"));
            parts.push(format!(
                "{w}: {} vs {} ns per syscall over no tracer ({:.3} s vs {:.3} s; workload CPU time: {} vs {} ns)",
                ns(raw, false),
                ns(tp, false),
                raw.median_s,
                tp.median_s,
                ns(raw, true),
                ns(tp, true),
            ));
        }
    }
    t.push(if parts.is_empty() {
        not_run(G9)
    } else {
        Target {
            goal: G9.into(),
            measured: format!("empty raw_tp vs empty classic: {}", parts.join("; ")),
            met: Some(ok),
            section: String::new(),
        }
    });
    // The section each target is judged on, in the order above.
    let sections = [
        "overhead", "overhead", "sweep", "overhead", "sweep", "report", "raw", "raw", "hooktype",
    ];
    for (t, s) in t.iter_mut().zip(sections) {
        t.section = s.into();
    }
    t
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

/// `cargo xtask bench --render JSON`: BENCHMARKS.md again from a results file (next to it),
/// e.g. after editing the analysis block; the targets are re-evaluated from the figures.
pub fn render(json_path: &Path) -> Result<()> {
    let mut r = read(json_path)?;
    resummarize(&mut r);
    r.targets = targets(&r);
    let md = json_path.with_file_name("BENCHMARKS.md");
    write(&r, &md, json_path)?;
    eprintln!("bench: wrote {} from {}", md.display(), json_path.display());
    Ok(())
}

pub fn write(r: &Results, md_path: &Path, json_path: &Path) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(r)?;
    json.push(b'\n');
    std::fs::write(json_path, json)?;
    let analysis = kept_analysis(md_path);
    std::fs::write(md_path, markdown(r, &analysis))?;
    Ok(())
}

fn markdown(r: &Results, analysis: &str) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# emuwatch benchmarks\n");
    if r.runs.len() > 1 {
        let _ = writeln!(
            s,
            "Generated by {} runs of `cargo xtask bench` ({} mode) on this machine, listed under \
             Runs: a run with `--only` re-measures some sections and keeps the others. Each \
             section comes from one run, so figures compared with each other (a condition and \
             its floor, one tool and another) were always measured side by side, with \
             interleaved repetitions. `benchmarks.json` next to this file has every repetition. \
             Regenerate with `cargo xtask bench` (as root; about 25 minutes) or \
             `cargo xtask bench --quick` (a few minutes, written to `target/bench/`).\n",
            r.runs.len(),
            r.mode
        );
    } else {
        let _ = writeln!(
            s,
            "Generated by `{}` ({} mode, {:.0} s) on {}. Every figure below comes from that run; \
             `benchmarks.json` next to this file has every repetition. Regenerate with \
             `cargo xtask bench` (as root; about 25 minutes) or `cargo xtask bench --quick` \
             (a few minutes, written to `target/bench/`).\n",
            r.command, r.mode, r.duration_s, m.date_utc
        );
    }
    let _ = writeln!(s, "## Runs\n");
    let _ = writeln!(
        s,
        "The machine may be shared (it has {} CPUs): absolute times move with other load, ratios \
         measured side by side much less. *Load* is `/proc/loadavg` when the run started and \
         ended; *other busy processes* are those that used at least 10 % of a CPU over one \
         second at those moments (the bench itself excluded); *other BPF holders* are other \
         processes with BPF programs loaded (other tracers: their hooks were on the workloads' \
         syscalls in every condition, \"no tracer\" included). Each repetition also waits up to \
         3 s for the machine to calm down (`busy_before` in the JSON). A run with `--nice N` \
         ran its workloads and tracers at that niceness (`--nice -20`: other jobs at the \
         default niceness get little of the CPU they need), the same for every condition.\n",
        m.cpus
    );
    let _ = writeln!(
        s,
        "| run | command | date (UTC) | emuwatch commit | kernel | sections | duration | load at start | load at end | other busy processes (start; end) | other BPF holders (start; end) |\n| ---: | --- | --- | --- | --- | --- | ---: | --- | --- | --- | --- |"
    );
    for (i, run) in r.runs.iter().enumerate() {
        let load = |l: &Option<Load>| {
            l.as_ref()
                .map_or("not recorded".into(), |l| format!("`{}`", l.loadavg))
        };
        let others = |l: &Option<Load>| {
            l.as_ref()
                .map_or("not recorded".into(), |l| l.others_text())
        };
        let tracers = |l: &Option<Load>| {
            l.as_ref()
                .map_or("not recorded".into(), |l| l.tracers_text())
        };
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {:.0} s | {} | {} | {}; {} | {}; {} |",
            i + 1,
            run.command,
            run.machine.date_utc,
            run.machine.git_commit,
            run.machine.kernel,
            run.sections.join(", "),
            run.duration_s,
            load(&run.load_start),
            load(&run.load_end),
            others(&run.load_start),
            others(&run.load_end),
            tracers(&run.load_start),
            tracers(&run.load_end),
        );
    }
    s.push('\n');
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(s, "| | |\n| --- | --- |");
    for (k, v) in [
        ("date (UTC)", m.date_utc.clone()),
        ("CPU", format!("{} x {}", m.cpus, m.cpu)),
        ("memory", m.memory.clone()),
        ("virtualization", m.virtualization.clone()),
        ("OS", m.os.clone()),
        ("kernel", format!("{} ({})", m.kernel, m.kernel_version)),
        ("lockdown", m.lockdown.clone()),
        ("emuwatch commit", m.git_commit.clone()),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    for (k, v) in &m.tools {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s.push('\n');

    let _ = writeln!(s, "## Targets\n");
    if r.runs.len() > 1 {
        let _ = writeln!(
            s,
            "| target | measured | verdict | run |\n| --- | --- | --- | ---: |"
        );
    } else {
        let _ = writeln!(s, "| target | measured | verdict |\n| --- | --- | --- |");
    }
    for t in &r.targets {
        let run = r
            .runs
            .iter()
            .position(|run| run.sections.contains(&t.section))
            .map_or("—".to_string(), |i| (i + 1).to_string());
        if r.runs.len() > 1 {
            let _ = writeln!(
                s,
                "| {} | {} | **{}** | {run} |",
                t.goal,
                t.measured,
                t.verdict()
            );
        } else {
            let _ = writeln!(s, "| {} | {} | **{}** |", t.goal, t.measured, t.verdict());
        }
    }
    s.push('\n');

    let _ = writeln!(s, "## How it was measured\n");
    let _ = writeln!(
        s,
        "Each workload is `emuwatch-benchload` (xtask/src/bin/benchload, release build), a \
         syscall-bound loop that talks to loopback only. It starts *held*: the tracer is \
         attached to its pid and confirmed attached (emuwatch: session.json lists its probes; \
         BPF tools: asleep in epoll with programs loaded; strace: `attached`), then the \
         workload is released and times itself from release to its last operation, so tracer \
         start-up and shutdown are not in the figures. The tracers' own CPU time and peak RSS \
         come from `wait4(2)`. Repetitions are interleaved: each repetition runs every \
         workload under every condition, the order rotated per repetition, after waiting for \
         the machine to be idle (other load shows in `busy_before` in the JSON).\n"
    );
    let _ = writeln!(s, "| condition | command |\n| --- | --- |");
    for (c, cmd) in [
        (Cond::None, "the workload alone".to_string()),
        (
            Cond::Emuwatch,
            format!(
                "`emuwatch record --quiet --out DIR --device camera=GLOB{} --pid PID` (stops when the target has exited)",
                ring_note(r)
            ),
        ),
        (
            Cond::EmuwatchBigRing,
            format!(
                "the same with `--ring-buffer {}`: room for a whole burst of workload (a) while userspace catches up",
                r.big_ring
            ),
        ),
        (
            Cond::EmuwatchOther,
            "`emuwatch record ... --pid OTHER` (a `sleep`): the workload is not a target".into(),
        ),
        (Cond::EmuwatchAll, "`emuwatch record ... --all`".into()),
        (
            Cond::Floor,
            "`cargo xtask bench floor SESSION -- CMD`: a 2-instruction program (`r0 = 0; exit`, `r0 = 1` for the cgroup hooks) on every hook emuwatch attached, listed below".into(),
        ),
        (
            Cond::Opensnoop,
            "`opensnoop -p PID` (libbpf-tools, CO-RE; system-wide for the multi-process mix, which it cannot follow); stdout to a file".into(),
        ),
        (
            Cond::Bpftrace,
            "`bpftrace -o FILE equivalent.bt PID` (xtask/src/bench/equivalent.bt: opens, per-fd read totals printed at close, connects, process tree followed through fork)".into(),
        ),
        (
            Cond::Strace,
            format!(
                "`strace -f -o FILE -p PID` (in {} of the {} repetitions: it is two orders of magnitude slower)",
                r.sizes.strace_reps.min(r.sizes.reps),
                r.sizes.reps
            ),
        ),
    ] {
        let _ = writeln!(s, "| {} | {} |", c.label(), cmd);
    }
    let _ = writeln!(
        s,
        "\n**Why this floor.** A syscall tracepoint with any program attached sends every \
         syscall of every task through the kernel's tracing slow path; that cost is paid by \
         any tool on these tracepoints, whatever its program does. The floor measures exactly \
         that: the same {} hooks as emuwatch, each running a program that returns at once, \
         loaded with raw `bpf(2)` calls (xtask/src/bench/floor.rs). An empty-bodied bpftrace \
         script would also run bpftrace's own prologue, and a second aya object would need a \
         second eBPF build. emuwatch's `tp_btf` sched hooks are matched by raw tracepoints on \
         the same kernel tracepoints.\n",
        r.hooks.len()
    );
    let _ = writeln!(
        s,
        "**Events made vs delivered.** An event is an open (device opens included) or a \
         connect the workload made (it counts them itself); *delivered* is how many of them the \
         tool's output contains (`emuwatch-benchload count`), *lost* = made - delivered (worst \
         repetition), *reported lost* is what the tool itself said (emuwatch's session.json, \
         `Lost N events` lines). opensnoop records opens only. emuwatch and the bpftrace \
         script also deliver one read total per file opened and read (`file_read`), shown as \
         *read totals*.\n"
    );
    let _ = writeln!(
        s,
        "Not used: hyperfine, because it times whole commands (tracer start-up included) and \
         cannot hold a workload until a tracer has attached to its pid.\n"
    );

    for (key, desc) in &r.workloads {
        let _ = writeln!(s, "## Overhead: {desc}\n");
        if let Some(m) = measured_in(r, "overhead") {
            let _ = writeln!(s, "{m}");
        }
        detail_table(&mut s, &r.summaries, &r.samples, key, &|x| x.label.clone());
        if key == "connect" {
            let _ = writeln!(
                s,
                "\nopensnoop does not trace connects: on this workload it only shows what being attached costs."
            );
        }
        if key == "mix" {
            let _ = writeln!(
                s,
                "\nopensnoop traces system-wide here (it follows one pid, not a process tree), so it also handles every other process's opens; its figures count only the workload's. The bpftrace script's read totals carry no path, so they also count the libraries each child process reads while it starts."
            );
        }
        s.push('\n');
    }

    raw_section(&mut s, r);
    hook_type_section(&mut s, r);

    startstop_section(&mut s, r);

    if !r.sweep.is_empty() {
        let _ = writeln!(
            s,
            "## Throughput sweep: open + close at a fixed offered rate\n"
        );
        if let Some(m) = measured_in(r, "sweep") {
            let _ = writeln!(s, "{m}");
        }
        let _ = writeln!(
            s,
            "One open event per iteration for every tool (no read: the read total would be a \
             second emuwatch event). Each point lasts about {:.0} s; *unpaced* runs as fast as \
             the workload can under that tool. *Offered* is the rate the workload achieved; a \
             tool that slows the workload down offers itself less. Tracer CPU is the tracer's \
             CPU time over the workload's time: the share of one core it needed.\n",
            r.sizes.sweep_seconds
        );
        let _ = writeln!(
            s,
            "| requested/s | tool | offered/s | made | delivered | lost | reported lost | tracer CPU (cores) | tracer peak RSS MiB |"
        );
        let _ = writeln!(
            s,
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for p in &r.sweep {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                p.target_per_s
                    .map_or("unpaced".into(), |t| format!("{t:.0}")),
                p.tool,
                p.offered_per_s,
                p.made,
                p.delivered,
                p.lost,
                opt_u(p.lost_reported),
                opt_f(p.tracer_cores, 2),
                opt_f(p.tracer_peak_rss_mib, 1),
            );
        }
        s.push('\n');
    }

    if !r.report.is_empty() {
        let _ = writeln!(s, "## Report generation cost\n");
        if let Some(m) = measured_in(r, "report") {
            let _ = writeln!(s, "{m}");
        }
        let _ = writeln!(
            s,
            "`emuwatch report SESSION --format F --out FILE` on synthetic sessions \
             (`emuwatch-benchload synth-session DIR --events N`: three apps over an hour through \
             foreground, background and closed, in the documented schema); the rows `baseline save` \
             and `diff` time `emuwatch baseline save SESSION FILE` and `emuwatch diff FILE SESSION`. \
             Page cache warm (one untimed run first); {} timed runs each; no GeoIP database.\n",
            r.sizes.report_runs
        );
        let _ = writeln!(
            s,
            "| events | events.jsonl MiB | format | median s | min-max s | peak RSS MiB |"
        );
        let _ = writeln!(s, "| ---: | ---: | --- | ---: | ---: | ---: |");
        for x in &r.report {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} | {:.2} | {:.2}-{:.2} | {:.0} |",
                x.events,
                x.events_jsonl_mib,
                x.format,
                x.median_s,
                x.min_s,
                x.max_s,
                x.peak_rss_mib
            );
        }
        s.push('\n');
    }

    if !r.profiles.is_empty() {
        let _ = writeln!(s, "## Profiles\n");
        if let Some(m) = measured_in(r, "profile") {
            let _ = writeln!(s, "{m}");
        }
        for p in &r.profiles {
            let _ = writeln!(s, "### {}\n\n`{}`\n\n```", p.title, p.command);
            for l in &p.top {
                let _ = writeln!(s, "{}", super::profile::tidy(l));
            }
            let _ = writeln!(s, "```\n");
        }
    }

    let _ = writeln!(s, "## Analysis\n\n{analysis}\n");

    let _ = writeln!(s, "## Reproduce\n");
    let _ = writeln!(
        s,
        "```sh\ncargo xtask bench            # everything above (installs bpftrace, libbpf-tools, strace, linux-perf when missing)\n\
         cargo xtask bench --quick    # smaller, 2 repetitions, into target/bench/\n\
         cargo xtask bench --only sweep --out /tmp/b   # one section\n\
         cargo xtask bench --only raw,hooktype   # re-measure these two, keep the rest of docs/benchmarks.json\n\
         cargo xtask bench --render docs/benchmarks.json   # this file again from the JSON (keeps the analysis block)\n\
         # one condition by hand, e.g. the floor around a workload:\n\
         cargo build --release -p monitor -p xtask\n\
         target/release/emuwatch record --quiet --out /tmp/s -- true\n\
         cargo xtask bench floor /tmp/s -- target/release/emuwatch-benchload open --file /etc/hostname --n 200000\n```\n"
    );
    let _ = writeln!(s, "Hooks emuwatch attached (and the floor used):\n");
    for h in &r.hooks {
        let _ = writeln!(s, "- `{h}`");
    }
    if !r.raw_reference_hooks.is_empty() && r.raw_reference_hooks != r.hooks {
        let _ = writeln!(
            s,
            "\nHooks emuwatch attached on the per-syscall path in the run that measured the raw section (and the per-syscall floor there used):\n"
        );
        for h in &r.raw_reference_hooks {
            let _ = writeln!(s, "- `{h}`");
        }
    }
    if !r.raw_hooks.is_empty() {
        let _ = writeln!(
            s,
            "\nHooks emuwatch attached with `--syscall-probes raw` (and the raw path's floor used):\n"
        );
        for h in &r.raw_hooks {
            let _ = writeln!(s, "- `{h}`");
        }
    }
    s
}

/// How many runs of a section had other tracers' BPF programs on the machine.
fn other_tracers_note(s: &mut String, samples: &[Sample]) {
    let with = samples
        .iter()
        .filter(|x| x.other_bpf_holders.is_some_and(|n| n > 0))
        .count();
    let most = samples
        .iter()
        .filter_map(|x| x.other_bpf_holders)
        .max()
        .unwrap_or(0);
    if with > 0 {
        let _ = writeln!(
            s,
            "**Other tracers were attached**: in {with} of these {} runs, other processes on the \
             machine held BPF programs (up to {most} at once; `other_bpf_holders` in the JSON). \
             Their hooks were on the workloads' syscalls in every condition, \"no tracer\" \
             included, so the absolute cost of a hook over no tracer reads low wherever theirs \
             had already put syscalls on the tracing slow path; conditions measured side by side \
             still compare.\n",
            samples.len()
        );
    }
}

/// The per-workload table of the overhead and raw sections.
fn detail_table(
    s: &mut String,
    summaries: &[Summary],
    samples: &[Sample],
    key: &str,
    label: &dyn Fn(&Summary) -> String,
) {
    let _ = writeln!(
        s,
        "| condition | median s | min-max s | spread | x no tracer | x floor | events made | delivered | lost | reported lost | read totals delivered/made | tracer CPU s | tracer peak RSS MiB |"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for x in summaries.iter().filter(|x| x.workload == key) {
        let made = if x.delivered.is_some() {
            x.made.to_string()
        } else {
            "—".into()
        };
        let reads = match x.delivered_reads {
            Some(d) => format!("{d}/{}", x.made_reads),
            None => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3}-{:.3} | {:.1} % | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            label(x),
            x.median_s,
            x.min_s,
            x.max_s,
            x.spread_pct,
            x.vs_no_tracer,
            x.vs_floor,
            made,
            opt_u(x.delivered),
            opt_u(x.lost_worst),
            opt_u(x.lost_reported_worst),
            reads,
            opt_f(x.tracer_cpu_s, 2),
            opt_f(x.tracer_peak_rss_mib, 1),
        );
    }
    let stalled = samples
        .iter()
        .filter(|x| x.workload == key && x.syn_retransmits > 0)
        .count();
    if stalled > 0 {
        let _ = writeln!(
            s,
            "\n{stalled} run(s) of this workload saw a TCP SYN retransmitted on the machine (a connect stalled ~1 s); see `syn_retransmits` in the JSON. Medians absorb single outliers; min-max shows them."
        );
    }
}

/// A condition's name in the raw section, where both syscall paths appear.
fn raw_label(x: &Summary) -> String {
    match Cond::from_key(&x.cond) {
        Some(c) if c.raw_path() || c == Cond::FloorRaw || c == Cond::None => x.label.clone(),
        Some(Cond::Floor) => "per-syscall no-op floor (same hooks, empty programs)".into(),
        _ => format!("per-syscall path: {}", x.label),
    }
}

fn raw_section(s: &mut String, r: &Results) {
    if r.raw_summaries.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Raw-syscalls path (Android kernels)\n");
    if let Some(m) = measured_in(r, "raw") {
        let _ = writeln!(s, "{m}");
    }
    let _ = writeln!(
        s,
        "Android's GKI kernels have no `syscalls:*` tracepoints, so there emuwatch attaches one \
         raw_tp program to `sys_enter` and one to `sys_exit` and dispatches on the syscall \
         number (`--syscall-probes raw`; `auto` picks it where `syscalls:*` is missing). This \
         kernel has both, so both paths are measured here side by side, in one run, with \
         interleaved repetitions, each against **its own floor**: the per-syscall conditions \
         against empty programs on the per-syscall hooks, the raw path against empty programs \
         on the raw path's hooks (raw_tp `sys_enter`/`sys_exit` plus the same sched, task, \
         cgroup and oom hooks; listed at the end). The raw conditions are the same commands as \
         in the overhead section with `--syscall-probes raw` added (the larger ring: \
         `--ring-buffer {}`). *Full capture* is the default ring if it lost nothing on that \
         workload, else the larger ring; a configuration that lost events does not count as \
         full capture.\n",
        r.big_ring
    );
    other_tracers_note(s, &r.raw_samples);
    let _ = writeln!(
        s,
        "| workload | condition | median s | min-max s | x no tracer | ratio to its floor | per-repetition ratio, median (min-max) | workload CPU s | CPU ratio to its floor | target | met? |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    );
    for (key, _) in &r.raw_workloads {
        let capture = raw_capture(r, key);
        for x in r.raw_summaries.iter().filter(|x| &x.workload == key) {
            let c = Cond::from_key(&x.cond);
            let (target, met) = match c {
                Some(Cond::EmuwatchRaw | Cond::EmuwatchRawBigRing) => {
                    let t = format!("<= {RAW_TARGETED_MAX:.2}x (full capture)");
                    if !lossless(x) {
                        (
                            t,
                            format!(
                                "no: lost {} events",
                                x.lost_worst
                                    .unwrap_or(0)
                                    .max(x.lost_reported_worst.unwrap_or(0))
                            ),
                        )
                    } else if capture.is_some_and(|k| k.cond != x.cond) {
                        (t, "— (judged on the default ring: it lost nothing)".into())
                    } else {
                        let ok = x.vs_floor <= RAW_TARGETED_MAX;
                        (t, if ok { "**yes**" } else { "**no**" }.into())
                    }
                }
                Some(Cond::EmuwatchRawOther) => {
                    let ok = x.vs_floor <= RAW_UNTARGETED_MAX;
                    (
                        format!("<= {RAW_UNTARGETED_MAX:.2}x"),
                        if ok { "**yes**" } else { "**no**" }.into(),
                    )
                }
                _ => ("—".into(), "—".into()),
            };
            let (ratio, cpu) = match c {
                Some(Cond::None) => ("—".into(), "—".into()),
                _ => (format!("{:.2}", x.vs_floor), cpu_ratio(x)),
            };
            let paired = match (c, x.paired_vs_floor) {
                (Some(Cond::None), _) | (_, None) => "—".into(),
                (Some(c), _) if c.floor() == c => "—".into(),
                (_, Some([m, lo, hi])) => format!("{m:.2} ({lo:.2}-{hi:.2})"),
            };
            let _ = writeln!(
                s,
                "| {key} | {} | {:.3} | {:.3}-{:.3} | {:.2} | {ratio} | {paired} | {} | {cpu} | {target} | {met} |",
                raw_label(x),
                x.median_s,
                x.min_s,
                x.max_s,
                x.vs_no_tracer,
                opt_f(x.cpu_median_s, 3),
            );
        }
    }
    let _ = writeln!(
        s,
        "\nTargets are judged on the ratio of wall-clock medians (the workload's own timing, as \
         everywhere in this file). *Per-repetition ratio*: each repetition of a condition against \
         its floor's run in the same repetition (the two ran within a minute or so of each \
         other); its range shows how far one pair can be from the median on this machine. *Workload CPU s* is the median of the workload's own CPU time (user + \
         system, its children included): the hooks run inside its syscalls and are charged to \
         it, while time spent waiting for a CPU that another job holds is not, so on a loaded \
         machine it is the steadier measure of what the hooks cost; it does not show what \
         emuwatch's userspace takes from the workload by competing for the CPUs. The \
         per-syscall rows are the reference, measured in the same run; their own targets \
         (1.10x on (a) targeted, no more than the floor untargeted) are evaluated in Targets \
         from the overhead section. Details per workload:\n"
    );
    for (key, desc) in &r.raw_workloads {
        let _ = writeln!(s, "### Raw path: {desc}\n");
        detail_table(s, &r.raw_summaries, &r.raw_samples, key, &raw_label);
        s.push('\n');
    }
}

fn hook_type_section(s: &mut String, r: &Results) {
    if r.hook_type_summaries.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Hook type for the raw path: raw_tp vs classic raw_syscalls tracepoints\n"
    );
    if let Some(m) = measured_in(r, "hooktype") {
        let _ = writeln!(s, "{m}");
    }
    let reps = r
        .runs
        .iter()
        .find(|run| run.sections.iter().any(|x| x == "hooktype"))
        .map_or(r.sizes.hook_type_reps, |run| run.sizes.hook_type_reps);
    let _ = writeln!(
        s,
        "The raw path can hang off `sys_enter`/`sys_exit` in two ways: raw_tp programs \
         (BPF_PROG_TYPE_RAW_TRACEPOINT, called with the tracepoint's arguments, no record \
         built) or programs on the classic `raw_syscalls/sys_enter`/`sys_exit` tracepoints \
         (through perf: the record is built for every syscall, then the program runs). \
         Either hook runs on every syscall of every task, captured or not. Here each is \
         measured with empty programs only (floor.rs), next to no tracer and the per-syscall \
         floor, on workload (a) and on (d), a loop of a syscall emuwatch does not capture; on \
         (d) also emuwatch's raw path itself, untargeted and targeted (what its dispatch costs \
         a syscall it does not record). {reps} interleaved repetitions. *Extra ns per syscall* \
         is (median - no tracer's median) / syscalls made ((a) makes 3 per iteration).\n"
    );
    other_tracers_note(s, &r.hook_type_samples);
    let _ = writeln!(
        s,
        "| workload | condition | median s | min-max s | spread | x no tracer | extra ns per syscall | workload CPU s | extra CPU ns per syscall |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (key, _) in &r.hook_type_workloads {
        for x in r.hook_type_summaries.iter().filter(|x| &x.workload == key) {
            let label = if x.cond == Cond::Floor.key() {
                "per-syscall no-op floor (for reference)".to_string()
            } else {
                x.label.clone()
            };
            let _ = writeln!(
                s,
                "| {key} | {label} | {:.3} | {:.3}-{:.3} | {:.1} % | {:.2} | {} | {} | {} |",
                x.median_s,
                x.min_s,
                x.max_s,
                x.spread_pct,
                x.vs_no_tracer,
                opt_f(extra_ns_per_syscall(r, x, false), 0),
                opt_f(x.cpu_median_s, 3),
                opt_f(extra_ns_per_syscall(r, x, true), 0),
            );
        }
    }
    s.push('\n');
    for (key, desc) in &r.hook_type_workloads {
        let raw = find(&r.hook_type_summaries, key, Cond::FloorRawTp);
        let tp = find(&r.hook_type_summaries, key, Cond::FloorTpRawSyscalls);
        if let (Some(raw), Some(tp)) = (raw, tp) {
            let ns = |x, cpu| opt_f(extra_ns_per_syscall(r, x, cpu), 0);
            let verdict = |a: f64, b: f64| {
                if a.is_nan() || b.is_nan() {
                    "not measured"
                } else if a <= b {
                    "raw_tp cheaper"
                } else {
                    "classic cheaper"
                }
            };
            let _ = writeln!(
                s,
                "- {desc}: wall-clock, empty raw_tp {:.3} s vs empty classic {:.3} s ({:.2}x), extra per syscall {} vs {} ns ({}); workload CPU time, {} vs {} s, extra per syscall {} vs {} ns ({}).",
                raw.median_s,
                tp.median_s,
                raw.median_s / tp.median_s,
                ns(raw, false),
                ns(tp, false),
                verdict(raw.median_s, tp.median_s),
                opt_f(raw.cpu_median_s, 3),
                opt_f(tp.cpu_median_s, 3),
                ns(raw, true),
                ns(tp, true),
                verdict(
                    raw.cpu_median_s.unwrap_or(f64::NAN),
                    tp.cpu_median_s.unwrap_or(f64::NAN)
                ),
            );
        }
    }
    s.push('\n');
}

fn ring_note(r: &Results) -> String {
    let ring: Vec<&str> = r
        .command
        .split_whitespace()
        .skip_while(|w| *w != "--ring-buffer")
        .take(2)
        .collect();
    if ring.len() == 2 {
        format!(" --ring-buffer {}", ring[1])
    } else {
        String::new()
    }
}

fn startstop_section(s: &mut String, r: &Results) {
    if r.startstop.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Start and stop: `record -- CMD` of a command that exits at once\n"
    );
    if let Some(m) = measured_in(r, "startstop") {
        let _ = writeln!(s, "{m}");
    }
    let _ = writeln!(
        s,
        "*Start*: from launching the tool to the command running (it writes the time). *Total*: \
         from launching the tool to its exit, probes detached. Medians of {} runs. bpftrace \
         attaches empty programs to the same tracepoints (`-c CMD`; cgroup hooks left out). \
         Targets: total <= 0.5 s, start <= 0.3 s.\n",
        r.sizes.startstop_reps
    );
    let _ = writeln!(
        s,
        "| tool | probes | attached | start s | total s | target |"
    );
    let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | --- |");
    for row in &r.startstop {
        let (start, total) = (row.start_median(), row.total_median());
        let verdict = if row.tool != "emuwatch" {
            String::new()
        } else if start <= 0.3 && total <= 0.5 {
            "met".into()
        } else {
            "MISSED".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {start:.3} | {total:.3} | {verdict} |",
            row.tool, row.path, row.probes
        );
    }
    s.push('\n');
}

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
