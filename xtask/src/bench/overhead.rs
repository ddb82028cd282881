//! Overhead: the three workloads under every condition, repetitions interleaved (each
//! repetition runs every workload under every condition, in an order rotated per repetition,
//! so drift on the machine spreads over all conditions instead of biasing one).
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    Ctx, Sizes,
    cond::Cond,
    runner::{Sample, Workload, run_one},
    stats,
};

pub fn workloads(ctx: &Ctx, sizes: &Sizes) -> Vec<Workload> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let file = ctx.small_file.display().to_string();
    let data = ctx.data_dir.display().to_string();
    let dev = ctx.device.display().to_string();
    let addr = format!("127.0.0.1:{}", ctx.port);
    let port = ctx.port.to_string();
    vec![
        Workload {
            key: "open",
            args: s(&["open", "--file", &file, "--n", &sizes.open_n.to_string()]),
            filter: s(&["--path", &file]),
            multi_process: false,
        },
        Workload {
            key: "connect",
            args: s(&[
                "connect",
                "--addr",
                &addr,
                "--n",
                &sizes.connect_n.to_string(),
            ]),
            filter: s(&["--port", &port]),
            multi_process: false,
        },
        Workload {
            key: "mix",
            args: s(&[
                "mix",
                "--procs",
                &sizes.mix_procs.to_string(),
                "--rounds",
                &sizes.mix_rounds.to_string(),
                "--data",
                &data,
                "--device",
                &dev,
                "--addr",
                &addr,
            ]),
            filter: s(&[
                "--prefix",
                &format!("{data}/"),
                "--path",
                &dev,
                "--suffix",
                "/oom_score_adj",
                "--port",
                &port,
            ]),
            multi_process: true,
        },
    ]
}

/// The hook-type section's workloads: (a), and a loop of a syscall emuwatch does not capture.
pub fn hook_type_workloads(ctx: &Ctx, sizes: &Sizes) -> Vec<Workload> {
    let mut ws: Vec<Workload> = workloads(ctx, sizes)
        .into_iter()
        .filter(|w| w.key == "open")
        .collect();
    ws.push(Workload {
        key: "getppid",
        args: ["syscall", "--call", "getppid", "--n"]
            .iter()
            .map(|s| s.to_string())
            .chain([sizes.syscall_n.to_string()])
            .collect(),
        filter: Vec::new(),
        multi_process: false,
    });
    ws
}

/// The names section's workloads: (b) as it is, and each connect followed by one write of an
/// HTTP request head (what name capture copies: the first bytes of a connection).
pub fn names_workloads(ctx: &Ctx, sizes: &Sizes) -> Vec<Workload> {
    let mut ws: Vec<Workload> = workloads(ctx, sizes)
        .into_iter()
        .filter(|w| w.key == "connect")
        .collect();
    let mut send = ws[0].clone();
    send.key = "connect_send";
    send.args.push("--send".into());
    ws.push(send);
    ws
}

/// Syscalls per iteration of a workload (for the cost per syscall), where it is fixed.
pub fn syscalls_per_op(key: &str) -> Option<f64> {
    match key {
        "open" => Some(3.0),
        "getppid" => Some(1.0),
        _ => None,
    }
}

pub fn describe(key: &str, sizes: &Sizes) -> String {
    match key {
        "getppid" => format!(
            "(d) getppid(2), a syscall emuwatch does not capture, x{}",
            sizes.syscall_n
        ),
        "open" => format!(
            "(a) open + read(4 KiB) + close of a 100-byte file, x{}",
            sizes.open_n
        ),
        "connect" => format!(
            "(b) TCP connect to a loopback listener (socket, connect, close), x{}",
            sizes.connect_n
        ),
        "connect_send" => format!(
            "(e) (b) plus one write of a ~110-byte HTTP request head per connection, x{}",
            sizes.connect_n
        ),
        "mix" => format!(
            "(c) app-like mix: {} processes x {} rounds of 8 loopback connects, open+read of 4 data files, a camera device open; oom_score_adj writes",
            sizes.mix_procs, sizes.mix_rounds
        ),
        "openclose" => "open + close (no read), paced at a fixed rate".into(),
        _ => key.into(),
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Summary {
    pub workload: String,
    pub cond: String,
    pub label: String,
    pub reps: usize,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub spread_pct: f64,
    pub vs_no_tracer: f64,
    pub vs_floor: f64,
    pub made: u64,
    pub made_reads: u64,
    pub delivered: Option<u64>,
    pub delivered_reads: Option<u64>,
    /// Worst repetition: made - delivered.
    pub lost_worst: Option<u64>,
    pub lost_reported_worst: Option<u64>,
    pub tracer_cpu_s: Option<f64>,
    pub tracer_peak_rss_mib: Option<f64>,
    /// The workload's own CPU time (user + system, children included): the hooks run in its
    /// syscalls and are charged to it, while time spent waiting for a CPU is not.
    #[serde(default)]
    pub cpu_median_s: Option<f64>,
    #[serde(default)]
    pub cpu_vs_floor: Option<f64>,
    /// Each repetition against the floor's run in the same repetition (measured minutes
    /// apart at most): median, min, max of those ratios.
    #[serde(default)]
    pub paired_vs_floor: Option<[f64; 3]>,
}

/// Medians per workload and condition, in `conds` order; `x floor` is against each
/// condition's own floor (`Cond::floor`).
pub fn summarize(samples: &[Sample], workloads: &[&str], conds: &[Cond]) -> Vec<Summary> {
    let mut out = Vec::new();
    for &key in workloads {
        out.extend(conds.iter().filter_map(|&c| summary(samples, key, c)));
    }
    out
}

/// The median of `f` over the samples of `key` under `c`.
fn med_of(samples: &[Sample], key: &str, c: Cond, f: fn(&Sample) -> f64) -> f64 {
    let v: Vec<f64> = samples
        .iter()
        .filter(|s| s.workload == key && s.cond == c.key())
        .map(f)
        .collect();
    stats::median(&v)
}

/// One row: workload `key` under `c`, against no tracer and against its floor (None when
/// `c` was not run on it).
fn summary(samples: &[Sample], key: &str, c: Cond) -> Option<Summary> {
    let med = |c: Cond| med_of(samples, key, c, |s| s.elapsed_s);
    let base = med(Cond::None);
    let floor = med(c.floor());
    let cpu_floor = med_of(samples, key, c.floor(), |s| s.workload_cpu_s);
    let cpu = med_of(samples, key, c, |s| s.workload_cpu_s);
    let ss: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.workload == key && s.cond == c.key())
        .collect();
    if ss.is_empty() {
        return None;
    }
    let t: Vec<f64> = ss.iter().map(|s| s.elapsed_s).collect();
    let m = stats::median(&t);
    let (lo, hi) = stats::min_max(&t);
    let opt_med = |f: &dyn Fn(&Sample) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = ss.iter().filter_map(|s| f(s)).collect();
        (!v.is_empty()).then(|| stats::median(&v))
    };
    let delivered_of = |s: &Sample| -> Option<u64> {
        let opens = s.delivered_opens?;
        let connects = if c.records_connects() {
            s.delivered_connects.unwrap_or(0)
        } else {
            0
        };
        Some(opens + connects)
    };
    let made_of = |s: &Sample| {
        s.made_opens
            + if c.records_connects() {
                s.made_connects
            } else {
                0
            }
    };
    let captures = c.captures() && (c.records_connects() || ss[0].made_opens > 0);
    Some(Summary {
        workload: key.into(),
        cond: c.key().into(),
        label: c.label().into(),
        reps: ss.len(),
        median_s: m,
        min_s: lo,
        max_s: hi,
        spread_pct: if m > 0.0 { (hi - lo) / m * 100.0 } else { 0.0 },
        vs_no_tracer: if base > 0.0 { m / base } else { 0.0 },
        vs_floor: if floor > 0.0 { m / floor } else { 0.0 },
        made: made_of(ss[0]),
        made_reads: ss[0].made_reads,
        delivered: if captures {
            opt_med(&|s| delivered_of(s).map(|d| d as f64)).map(|d| d as u64)
        } else {
            None
        },
        delivered_reads: if c.records_reads() {
            opt_med(&|s| s.delivered_reads.map(|d| d as f64)).map(|d| d as u64)
        } else {
            None
        },
        lost_worst: if captures {
            ss.iter()
                .filter_map(|s| delivered_of(s).map(|d| made_of(s).saturating_sub(d)))
                .max()
        } else {
            None
        },
        lost_reported_worst: ss.iter().filter_map(|s| s.lost_reported).max(),
        tracer_cpu_s: opt_med(&|s| s.tracer_cpu_s),
        tracer_peak_rss_mib: ss
            .iter()
            .filter_map(|s| s.tracer_peak_rss_mib)
            .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b)))),
        cpu_median_s: Some(cpu),
        cpu_vs_floor: (cpu_floor > 0.0).then(|| cpu / cpu_floor),
        paired_vs_floor: paired_vs_floor(samples, key, c, &ss),
    })
}

/// Each repetition against the floor's repetition of the same number: [median, min, max].
fn paired_vs_floor(samples: &[Sample], key: &str, c: Cond, ss: &[&Sample]) -> Option<[f64; 3]> {
    let r: Vec<f64> = ss
        .iter()
        .filter_map(|s| {
            let f = samples
                .iter()
                .find(|f| f.workload == key && f.cond == c.floor().key() && f.rep == s.rep)?;
            (f.elapsed_s > 0.0).then(|| s.elapsed_s / f.elapsed_s)
        })
        .collect();
    (!r.is_empty()).then(|| {
        let (lo, hi) = stats::min_max(&r);
        [stats::median(&r), lo, hi]
    })
}

/// Every workload under every condition of `conds` (except the pairs `skip` names), `reps`
/// times, interleaved (strace only in the first `strace_reps`).
pub fn run(
    ctx: &Ctx,
    workloads: &[Workload],
    conds: &[Cond],
    skip: &dyn Fn(&Workload, Cond) -> bool,
    reps: usize,
    strace_reps: usize,
) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let runs = |w: &Workload, c: Cond, rep: usize| {
        !(skip(w, c) || (c == Cond::Strace && rep >= strace_reps))
    };
    let total = (0..reps)
        .map(|rep| {
            workloads
                .iter()
                .map(|w| conds.iter().filter(|&&c| runs(w, c, rep)).count())
                .sum::<usize>()
        })
        .sum::<usize>();
    let mut done = 0;
    for rep in 0..reps {
        for w in workloads {
            let mut order = conds.to_vec();
            order.rotate_left(rep % conds.len());
            for c in order {
                if !runs(w, c, rep) {
                    continue;
                }
                done += 1;
                let t = std::time::Instant::now();
                let s = run_one(ctx, c, w, rep)?;
                eprintln!(
                    "bench: [{done}/{total}] {:8} {:21} rep {rep}: {:.3} s{} ({:.1} s)",
                    w.key,
                    c.key(),
                    s.elapsed_s,
                    match (s.delivered_opens, s.delivered_connects) {
                        (Some(o), Some(cn)) if c.captures() => format!(
                            "  delivered {}/{}",
                            o + if c.records_connects() { cn } else { 0 },
                            s.made_opens
                                + if c.records_connects() {
                                    s.made_connects
                                } else {
                                    0
                                }
                        ),
                        _ => String::new(),
                    },
                    t.elapsed().as_secs_f64()
                );
                samples.push(s);
            }
        }
    }
    Ok(samples)
}
