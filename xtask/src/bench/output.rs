//! The results: `benchmarks.json` (everything, every repetition) and `BENCHMARKS.md` (tables,
//! target verdicts, profiles). A hand-written block between `<!-- analysis:begin -->` and
//! `<!-- analysis:end -->` in an existing BENCHMARKS.md is kept when the file is regenerated.
use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    Sizes,
    overhead::Summary,
    profile::Profile,
    reportcost::ReportRun,
    runner::{Cond, Sample},
    setup::Machine,
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
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Target {
    pub goal: String,
    pub measured: String,
    /// None: not measured in this run.
    pub met: Option<bool>,
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
    r.summaries
        .iter()
        .find(|s| s.workload == w && s.cond == c.key())
}

/// Noise band for "no more than the floor": half the floor's own spread, at least 3 %.
fn floor_band(floor: &Summary) -> f64 {
    (floor.spread_pct / 200.0).max(0.03)
}

pub fn targets(r: &Results) -> Vec<Target> {
    let mut t = Vec::new();
    let a = |c| summary(r, "open", c);
    // Full capture: the default configuration if it lost nothing, else the larger ring.
    let full = |x: &&Summary| x.lost_worst == Some(0) && x.lost_reported_worst == Some(0);
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
            }
        }
        (None, Some(_)) if a(Cond::Emuwatch).is_some() => Target {
            goal: G1.into(),
            measured: "no configuration captured everything".into(),
            met: Some(false),
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
            goal: "`report` on 1M events <= 3 s".into(),
            measured: format!(
                "{:.2} s (text), peak RSS {:.0} MiB, on {} events",
                x.median_s, x.peak_rss_mib, x.events
            ),
            met: Some(x.median_s <= 3.0),
        },
        Some(x) => Target {
            goal: "`report` on 1M events <= 3 s".into(),
            measured: format!(
                "only {} events in this run: {:.2} s (text)",
                x.events, x.median_s
            ),
            met: None,
        },
        None => not_run("`report` on 1M events <= 3 s"),
    });
    t
}

fn not_run(goal: &str) -> Target {
    Target {
        goal: goal.into(),
        measured: "not measured in this run".into(),
        met: None,
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
    let mut r: Results = serde_json::from_slice(
        &std::fs::read(json_path).with_context(|| format!("read {}", json_path.display()))?,
    )
    .with_context(|| format!("parse {}", json_path.display()))?;
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
    let _ = writeln!(
        s,
        "Generated by `{}` ({} mode, {:.0} s) on {}. Every figure below comes from that run; \
         `benchmarks.json` next to this file has every repetition. Regenerate with \
         `cargo xtask bench` (as root; about 10-15 minutes) or `cargo xtask bench --quick` \
         (about 3 minutes, written to `target/bench/`).\n",
        r.command, r.mode, r.duration_s, m.date_utc
    );
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
    let _ = writeln!(s, "| target | measured | verdict |\n| --- | --- | --- |");
    for t in &r.targets {
        let _ = writeln!(s, "| {} | {} | **{}** |", t.goal, t.measured, t.verdict());
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
        let _ = writeln!(
            s,
            "| condition | median s | min-max s | spread | x no tracer | x floor | events made | delivered | lost | reported lost | read totals delivered/made | tracer CPU s | tracer peak RSS MiB |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for x in r.summaries.iter().filter(|x| &x.workload == key) {
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
                x.label,
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
        let stalled = r
            .samples
            .iter()
            .filter(|x| &x.workload == key && x.syn_retransmits > 0)
            .count();
        if stalled > 0 {
            let _ = writeln!(
                s,
                "\n{stalled} run(s) of this workload saw a TCP SYN retransmitted on the machine (a connect stalled ~1 s); see `syn_retransmits` in the JSON. Medians absorb single outliers; min-max shows them."
            );
        }
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

    if !r.sweep.is_empty() {
        let _ = writeln!(
            s,
            "## Throughput sweep: open + close at a fixed offered rate\n"
        );
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
        let _ = writeln!(
            s,
            "`emuwatch report SESSION --format F --out FILE` on synthetic sessions \
             (`emuwatch-benchload synth-session DIR --events N`: three apps over an hour through \
             foreground, background and closed, in the documented schema). Page cache warm \
             (one untimed run first); {} timed runs each; no GeoIP database.\n",
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
    s
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
