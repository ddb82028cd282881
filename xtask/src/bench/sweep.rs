//! Throughput: open+close at fixed offered rates (one event per open for every tool), each
//! tool at each rate, to find where events start being lost.
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    Ctx,
    cond::Cond,
    runner::{Workload, run_one},
};

pub const TOOLS: [Cond; 3] = [Cond::Emuwatch, Cond::Opensnoop, Cond::Bpftrace];

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Point {
    pub tool: String,
    /// Requested opens per second (None: as fast as the workload can go).
    pub target_per_s: Option<f64>,
    /// What the workload managed under this tool.
    pub offered_per_s: f64,
    pub elapsed_s: f64,
    pub made: u64,
    pub delivered: u64,
    pub lost: u64,
    pub lost_reported: Option<u64>,
    pub tracer_cpu_s: Option<f64>,
    /// Tracer CPU time / workload time: the share of one core the tracer used.
    pub tracer_cores: Option<f64>,
    pub tracer_peak_rss_mib: Option<f64>,
}

fn workload(ctx: &Ctx, rate: Option<f64>, n: u64, seconds: f64) -> Workload {
    let file = ctx.small_file.display().to_string();
    let mut args: Vec<String> = [
        "open",
        "--file",
        &file,
        "--no-read",
        "--n",
        &n.to_string(),
        "--seconds",
        &seconds.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(r) = rate {
        args.push("--rate".into());
        args.push(format!("{r}"));
    }
    Workload {
        key: "openclose",
        args,
        filter: vec!["--path".into(), file],
        multi_process: false,
    }
}

/// `rates`: requested opens/s (None = unpaced). Each point lasts `seconds` (a tool that slows
/// the workload down makes it offer fewer events in that time, not run longer).
pub fn run(ctx: &Ctx, rates: &[Option<f64>], seconds: f64) -> Result<Vec<Point>> {
    let mut out = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        let n = rate.map_or(u64::MAX, |r| (r * seconds) as u64);
        let w = workload(ctx, *rate, n, seconds);
        let mut tools = TOOLS.to_vec();
        tools.rotate_left(i % TOOLS.len());
        for tool in tools {
            let s = run_one(ctx, tool, &w, i)?;
            let delivered = s.delivered_opens.unwrap_or(0);
            let p = Point {
                tool: tool.key().into(),
                target_per_s: *rate,
                offered_per_s: s.made_opens as f64 / s.elapsed_s.max(1e-9),
                elapsed_s: s.elapsed_s,
                made: s.made_opens,
                delivered,
                lost: s.made_opens.saturating_sub(delivered),
                lost_reported: s.lost_reported,
                tracer_cpu_s: s.tracer_cpu_s,
                tracer_cores: s.tracer_cpu_s.map(|c| c / s.elapsed_s.max(1e-9)),
                tracer_peak_rss_mib: s.tracer_peak_rss_mib,
            };
            eprintln!(
                "bench: sweep {:>9} {:10} offered {:>9.0}/s delivered {}/{} lost {}",
                rate.map_or("unpaced".into(), |r| format!("{r:.0}/s")),
                p.tool,
                p.offered_per_s,
                p.delivered,
                p.made,
                p.lost
            );
            out.push(p);
        }
    }
    Ok(out)
}
