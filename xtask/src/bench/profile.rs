//! Profiles behind the figures (with `perf`): where the workload's kernel time goes under
//! emuwatch, where emuwatch's own time goes per event, and where `emuwatch report` spends its
//! time on the largest synthetic session. Flat profiles by symbol, top entries only. Beside
//! them, what each BPF program costs per run on both probe paths (`progcost`).
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::Ctx;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Profile {
    pub title: String,
    pub command: String,
    pub top: Vec<String>,
}

fn perf_record(ctx: &Ctx, data: &std::path::Path, cmd: &[String]) -> Result<()> {
    let st = Command::new("perf")
        .args(["record", "-q", "-F", "4000", "-o"])
        .arg(data)
        .arg("--")
        .args(cmd)
        .current_dir(&ctx.work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("run perf record")?;
    // emuwatch record exits 3 when it lost events: still a good profile.
    if !st.success() && st.code() != Some(3) {
        bail!("perf record {cmd:?} failed ({st})");
    }
    Ok(())
}

fn top(data: &std::path::Path, comm: &str, n: usize) -> Result<Vec<String>> {
    let out = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "--percentage",
            "relative",
        ])
        .args(["--sort", "dso,symbol", "--comm", comm, "-i"])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .context("run perf report")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .take(n)
        .map(tidy)
        .collect())
}

/// One `perf report` line with its runs of spaces and empty trailing columns (`-`) removed.
pub fn tidy(line: &str) -> String {
    let mut w: Vec<&str> = line.split_whitespace().collect();
    while w.last() == Some(&"-") {
        w.pop();
    }
    w.join(" ")
}

pub fn run(ctx: &Ctx, open_n: u64, report_events: u64) -> Result<Vec<Profile>> {
    let mut out = Vec::new();
    let data = ctx.work.join("perf.data");
    let session = ctx.work.join("profile-session");
    let _ = std::fs::remove_dir_all(&session);
    let s = |x: &str| x.to_string();
    let cmd = vec![
        ctx.emuwatch.display().to_string(),
        s("record"),
        s("--quiet"),
        s("--ring-buffer"),
        ctx.big_ring.clone(),
        s("--out"),
        session.display().to_string(),
        s("--"),
        ctx.benchload.display().to_string(),
        s("open"),
        s("--file"),
        ctx.small_file.display().to_string(),
        s("--n"),
        open_n.to_string(),
    ];
    perf_record(ctx, &data, &cmd)?;
    let shown = format!(
        "perf record -F 4000 -- emuwatch record --quiet --ring-buffer {} --out DIR -- emuwatch-benchload open --file F --n {open_n}",
        ctx.big_ring
    );
    out.push(Profile {
        title: "workload (a) under emuwatch: the workload's CPU time (mostly kernel)".into(),
        command: format!("{shown}; perf report --comm emuwatch-benchl --sort dso,symbol"),
        top: top(&data, "emuwatch-benchl", 25)?,
    });
    out.push(Profile {
        title: "the same run: emuwatch's own CPU time (reading, enriching, writing events)".into(),
        command: format!("{shown}; perf report --comm emuwatch --sort dso,symbol"),
        top: top(&data, "emuwatch", 25)?,
    });
    let _ = std::fs::remove_dir_all(&session);
    // The same workload, with the kernel timing each program: per-syscall path, then raw.
    for (path, extra) in [
        ("per-syscall path", &["--syscall-probes", "per-syscall"]),
        ("raw path", &["--syscall-probes", "raw"]),
    ] {
        match super::progcost::run(ctx, open_n, path, extra) {
            Ok(p) => out.push(p),
            Err(e) => eprintln!("bench: warning: no program costs on the {path} ({e:#})"),
        }
    }
    let synth = ctx.work.join("profile-synthetic");
    let _ = std::fs::remove_dir_all(&synth);
    let st = Command::new(&ctx.benchload)
        .arg("synth-session")
        .arg(&synth)
        .args(["--events", &report_events.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("synth-session failed");
    }
    let cmd = vec![
        ctx.emuwatch.display().to_string(),
        s("report"),
        synth.display().to_string(),
        s("--out"),
        ctx.work.join("profile-report.txt").display().to_string(),
    ];
    perf_record(ctx, &data, &cmd)?;
    out.push(Profile {
        title: format!("emuwatch report (text) on {report_events} synthetic events"),
        command: "perf record -F 4000 -- emuwatch report SESSION --out FILE; perf report --comm emuwatch --sort dso,symbol".to_string(),
        top: top(&data, "emuwatch", 25)?,
    });
    let _ = std::fs::remove_dir_all(&synth);
    let _ = std::fs::remove_file(&data);
    Ok(out)
}
