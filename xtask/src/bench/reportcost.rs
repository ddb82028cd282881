//! Report generation cost: `emuwatch report` (text, JSON, HTML), `baseline save` and `diff` on
//! synthetic sessions (made by `emuwatch-benchload synth-session`, docs/events.md schema), time
//! and peak memory.
use std::{
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{Ctx, stats};

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ReportRun {
    pub events: u64,
    pub events_jsonl_mib: f64,
    pub format: String,
    pub runs: usize,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub peak_rss_mib: f64,
}

pub fn timed(cmd: &mut Command) -> Result<(f64, f64)> {
    let t = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run emuwatch report")?;
    let pid = child.id() as i32;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let secs = t.elapsed().as_secs_f64();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("emuwatch report failed (status {status})");
    }
    Ok((secs, ru.ru_maxrss as f64 / 1024.0))
}

pub fn run(ctx: &Ctx, sizes: &[u64], formats: &[&str], runs: usize) -> Result<Vec<ReportRun>> {
    let mut out = Vec::new();
    for &n in sizes {
        let dir = ctx.work.join(format!("synthetic-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let st = Command::new(&ctx.benchload)
            .args(["synth-session"])
            .arg(&dir)
            .args(["--events", &n.to_string()])
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("synth-session failed");
        }
        let mib = std::fs::metadata(dir.join("events.jsonl"))?.len() as f64 / 1048576.0;
        for format in formats {
            let mut times = Vec::new();
            let mut rss: f64 = 0.0;
            // The first run reads the file into the page cache: it is not timed.
            let report_to = ctx.work.join(format!("report-{n}.{format}"));
            let mk = || {
                let mut c = Command::new(&ctx.emuwatch);
                c.arg("report")
                    .arg(&dir)
                    .args(["--format", format, "--out"])
                    .arg(&report_to)
                    // Geo databases installed on the machine would change the cost; the
                    // session's own country/ASN fields are used.
                    .env_remove("EMUWATCH_GEOIP_COUNTRY")
                    .env_remove("EMUWATCH_GEOIP_ASN");
                super::setup::boost(&mut c, ctx.nice);
                c
            };
            timed(&mut mk())?;
            for _ in 0..runs {
                super::machine::settle();
                let (t, r) = timed(&mut mk())?;
                eprintln!("bench: report {n} events {format}: {t:.2} s, peak RSS {r:.0} MiB");
                times.push(t);
                rss = rss.max(r);
            }
            let _ = std::fs::remove_file(&report_to);
            let (lo, hi) = stats::min_max(&times);
            out.push(ReportRun {
                events: n,
                events_jsonl_mib: mib,
                format: format.to_string(),
                runs,
                median_s: stats::median(&times),
                min_s: lo,
                max_s: hi,
                peak_rss_mib: rss,
            });
        }
        // Baselines read the session the same way: `baseline save`, then `diff` of the session
        // against that baseline (no change: exit 0).
        let base = ctx.work.join(format!("baseline-{n}.json"));
        for what in ["baseline save", "diff"] {
            let mk = || {
                let mut c = Command::new(&ctx.emuwatch);
                match what {
                    "diff" => c.arg("diff").arg(&base).arg(&dir),
                    _ => c.args(["baseline", "save"]).arg(&dir).arg(&base),
                };
                c.env_remove("EMUWATCH_GEOIP_COUNTRY")
                    .env_remove("EMUWATCH_GEOIP_ASN");
                super::setup::boost(&mut c, ctx.nice);
                c
            };
            timed(&mut mk())?;
            let mut times = Vec::new();
            let mut rss: f64 = 0.0;
            for _ in 0..runs {
                super::machine::settle();
                let (t, r) = timed(&mut mk())?;
                eprintln!("bench: {what} {n} events: {t:.2} s, peak RSS {r:.0} MiB");
                times.push(t);
                rss = rss.max(r);
            }
            let (lo, hi) = stats::min_max(&times);
            out.push(ReportRun {
                events: n,
                events_jsonl_mib: mib,
                format: what.to_string(),
                runs,
                median_s: stats::median(&times),
                min_s: lo,
                max_s: hi,
                peak_rss_mib: rss,
            });
        }
        let _ = std::fs::remove_file(&base);
        if !ctx.keep_runs {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(out)
}
