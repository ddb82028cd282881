//! What each of emuwatch's BPF programs costs per run, measured by the kernel itself: with
//! `BPF_ENABLE_STATS` the kernel times every program run (run time and run count per program,
//! kept while the returned fd is open). The tracepoint's own dispatch (what the no-op floor
//! pays) is not in these figures; the program bodies are: map operations, ring-buffer records,
//! helper calls, copies.
//!
//! The snapshot is taken by `bpftool prog show -j` from inside the recorded command, after the
//! workload and before emuwatch stops (its programs are gone after that). emuwatch's programs
//! are the ones that were not loaded before it started.
use std::{collections::BTreeSet, process::Command};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::{Ctx, profile::Profile};

const BPF_ENABLE_STATS: i64 = 32;
const BPF_STATS_RUN_TIME: u32 = 0;

#[derive(Deserialize)]
struct Prog {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    run_time_ns: u64,
    #[serde(default)]
    run_cnt: u64,
}

fn programs(json: &[u8]) -> Result<Vec<Prog>> {
    serde_json::from_slice(json).context("parse `bpftool prog show -j`")
}

fn loaded_ids() -> Result<BTreeSet<u64>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .context("run bpftool")?;
    if !out.status.success() {
        bail!("bpftool prog show failed ({})", out.status);
    }
    Ok(programs(&out.stdout)?.into_iter().map(|p| p.id).collect())
}

/// Workload (a) (`open_n` open+read+close) under `emuwatch record` with `extra` arguments;
/// per-program run time for the programs emuwatch loaded, as profile lines.
pub fn run(ctx: &Ctx, open_n: u64, path: &str, extra: &[&str]) -> Result<Profile> {
    #[repr(C)]
    struct EnableStats {
        kind: u32,
    }
    let _stats = super::floor::bpf(
        BPF_ENABLE_STATS,
        &mut EnableStats {
            kind: BPF_STATS_RUN_TIME,
        },
    )
    .context("BPF_ENABLE_STATS (kernel 5.8 or later)")?;
    let before = loaded_ids()?;
    let snap = ctx.work.join("progcost.json");
    let session = ctx.work.join("progcost-session");
    let _ = std::fs::remove_file(&snap);
    let _ = std::fs::remove_dir_all(&session);
    // Paths go in as positional parameters, never into the script text.
    let script = r#""$1" open --file "$2" --n "$3" >/dev/null && exec bpftool prog show -j > "$4""#;
    let st = Command::new(&ctx.emuwatch)
        .args(["record", "--quiet", "--ring-buffer", &ctx.big_ring])
        .args(extra)
        .arg("--out")
        .arg(&session)
        .args(["--", "sh", "-c", script, "sh"])
        .arg(&ctx.benchload)
        .arg(&ctx.small_file)
        .arg(open_n.to_string())
        .arg(&snap)
        .stdout(std::process::Stdio::null())
        .status()
        .context("run emuwatch record")?;
    // 3: events were lost (counted); the program costs are still what they were.
    if !st.success() && st.code() != Some(3) {
        bail!("emuwatch record failed ({st})");
    }
    let json = std::fs::read(&snap).with_context(|| format!("read {}", snap.display()))?;
    let _ = std::fs::remove_file(&snap);
    let _ = std::fs::remove_dir_all(&session);
    let mut mine: Vec<Prog> = programs(&json)?
        .into_iter()
        .filter(|p| !before.contains(&p.id) && p.run_cnt > 0)
        .collect();
    if mine.is_empty() {
        bail!("no program of emuwatch's ran (were BPF statistics enabled?)");
    }
    mine.sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
    Ok(Profile {
        title: format!(
            "workload (a) under emuwatch ({path}): run time of each BPF program, from the kernel's BPF statistics"
        ),
        command: format!(
            "BPF_ENABLE_STATS; emuwatch record --quiet --ring-buffer {}{} -- sh -c 'emuwatch-benchload open --file F --n {open_n}; bpftool prog show -j'",
            ctx.big_ring,
            extra.iter().map(|a| format!(" {a}")).collect::<String>()
        ),
        top: lines(&mine, open_n),
    })
}

/// A total line (per open+read+close iteration), then one line per program, costliest first.
fn lines(progs: &[Prog], iterations: u64) -> Vec<String> {
    let total: u64 = progs.iter().map(|p| p.run_time_ns).sum();
    let mut out = vec![format!(
        "all {} programs that ran: {:.1} ms, {} ns per open+read+close iteration of the workload",
        progs.len(),
        total as f64 / 1e6,
        total / iterations.max(1)
    )];
    out.extend(progs.iter().take(12).map(|p| {
        format!(
            "{:.1} % {}: {} runs, {} ns per run, {:.1} ms",
            100.0 * p.run_time_ns as f64 / total.max(1) as f64,
            p.name,
            p.run_cnt,
            p.run_time_ns / p.run_cnt.max(1),
            p.run_time_ns as f64 / 1e6
        )
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_total_and_share_per_program() {
        let progs = programs(
            br#"[{"id":1,"name":"sys_exit_openat","run_time_ns":60000000,"run_cnt":200000},
                {"id":2,"name":"sys_enter_close","run_time_ns":40000000,"run_cnt":200000,"jited":true}]"#,
        )
        .unwrap();
        let l = lines(&progs, 200_000);
        assert_eq!(
            l[0],
            "all 2 programs that ran: 100.0 ms, 500 ns per open+read+close iteration of the workload"
        );
        assert_eq!(
            l[1],
            "60.0 % sys_exit_openat: 200000 runs, 300 ns per run, 60.0 ms"
        );
        assert_eq!(l.len(), 3);
    }
}
