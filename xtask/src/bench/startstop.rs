//! Start-up and shutdown: `emuwatch record -- CMD` for a command that exits at once, on each
//! syscall probe path, beside bpftrace attaching the same tracepoints (`-c CMD`). *Start* is
//! from launching the tool to the command running (the command writes the time); *total* is
//! from launching the tool to its exit, detaching included.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::Ctx;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StartStop {
    /// `emuwatch` or `bpftrace`.
    pub tool: String,
    /// The emuwatch probe path (`per-syscall`, `raw`) or what bpftrace attached.
    pub path: String,
    /// Programs attached (emuwatch: as its session.json lists them).
    pub probes: usize,
    pub start_s: Vec<f64>,
    pub total_s: Vec<f64>,
    /// A variant measured for comparison (not the default behaviour; no target verdict).
    #[serde(default)]
    pub comparison: bool,
}

impl StartStop {
    pub fn start_median(&self) -> f64 {
        median(&self.start_s)
    }
    pub fn total_median(&self) -> f64 {
        median(&self.total_s)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The command the tools run, a script that writes the wall-clock time it started into
/// `stamp` (bpftrace's `-c` splits its argument at spaces, without quoting).
fn stamp_script(dir: &Path, stamp: &Path) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("startstop-stamp.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ndate +%s.%N > {}\n", stamp.display()),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

/// Run `c` once: (start, total) in seconds.
fn time_one(mut c: Command, stamp: &Path) -> Result<(f64, f64)> {
    let _ = std::fs::remove_file(stamp);
    let launched = now_s();
    let t = Instant::now();
    let st = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("run the tool")?;
    let total = t.elapsed().as_secs_f64();
    if !st.success() {
        bail!("{c:?} exited with {st}");
    }
    let started: f64 = std::fs::read_to_string(stamp)
        .with_context(|| {
            format!(
                "{} was not written: the command did not run",
                stamp.display()
            )
        })?
        .trim()
        .parse()
        .context("parse the command's start time")?;
    Ok(started - launched).map(|s| (s, total))
}

/// The tracefs category of tracepoint `name` (`sys_enter` → `raw_syscalls`).
fn category_of(name: &str) -> Option<String> {
    std::fs::read_dir("/sys/kernel/tracing/events")
        .ok()?
        .flatten()
        .find(|d| d.path().join(name).is_dir())
        .map(|d| d.file_name().to_string_lossy().into_owned())
}

/// The bpftrace script attaching empty programs to the tracepoints among `hooks` (emuwatch's
/// attach points, `tracepoint cat/name`, `raw_tp name`, `tp_btf name`); cgroup hooks have no
/// bpftrace equivalent and are left out.
fn bpftrace_script(hooks: &[String]) -> (String, usize) {
    let mut probes = Vec::new();
    for h in hooks {
        let mut w = h.split_whitespace();
        match (w.next(), w.next()) {
            (Some("tracepoint"), Some(p)) => {
                probes.push(format!("tracepoint:{}", p.replace('/', ":")))
            }
            // bpftrace 0.17 has no raw tracepoints: the classic tracepoint of that name.
            (Some("raw_tp" | "tp_btf"), Some(p)) => {
                if let Some(cat) = category_of(p) {
                    probes.push(format!("tracepoint:{cat}:{p}"));
                }
            }
            _ => {}
        }
    }
    let n = probes.len();
    (probes.iter().map(|p| format!("{p} {{ }}\n")).collect(), n)
}

pub fn run(ctx: &Ctx, reps: usize) -> Result<Vec<StartStop>> {
    let stamp = ctx.work.join("startstop.stamp");
    let cmd = stamp_script(&ctx.work, &stamp)?;
    let mut rows = Vec::new();
    for (path, hooks) in [("per-syscall", &ctx.hooks), ("raw", &ctx.raw_hooks)] {
        // On the per-syscall path, beside it: the links detached one after another, as before
        // issue L.1.
        let envs: &[Option<(&str, &str)>] = match path {
            "per-syscall" => &[None, Some(("EMUWATCH_DETACH", "sequential"))],
            _ => &[None],
        };
        for env in envs {
            rows.push(emuwatch_row(
                ctx,
                &cmd,
                &stamp,
                path,
                hooks.len(),
                *env,
                reps,
            )?);
        }
        if hooks.is_empty() {
            continue;
        }
        let (script, n) = bpftrace_script(hooks);
        let file = ctx.work.join(format!("startstop-{path}.bt"));
        std::fs::write(&file, script)?;
        let mut row = StartStop {
            tool: "bpftrace".into(),
            path: format!("emuwatch's {path} tracepoints"),
            probes: n,
            start_s: Vec::new(),
            total_s: Vec::new(),
            comparison: false,
        };
        for _ in 0..reps {
            let mut c = Command::new("bpftrace");
            // bpftrace 0.17 runs only ELF files with -c.
            c.arg(&file)
                .arg("-c")
                .arg(format!("/bin/sh {}", cmd.display()));
            let (s, t) = time_one(c, &stamp)?;
            row.start_s.push(s);
            row.total_s.push(t);
        }
        eprintln!(
            "bench: startstop bpftrace ({path} tracepoints): start {:.3} s, total {:.3} s ({n} probes)",
            row.start_median(),
            row.total_median()
        );
        rows.push(row);
    }
    let _ = std::fs::remove_dir_all(ctx.work.join("startstop-session"));
    Ok(rows)
}

/// `record -- CMD` on probe path `path` (`probes` attach points), `reps` times (`env`: a
/// variable set for emuwatch, which makes the row a comparison).
fn emuwatch_row(
    ctx: &Ctx,
    cmd: &Path,
    stamp: &Path,
    path: &str,
    probes: usize,
    env: Option<(&str, &str)>,
    reps: usize,
) -> Result<StartStop> {
    let out = ctx.work.join("startstop-session");
    let label = match env {
        None => path.to_string(),
        Some((k, v)) => format!("{path}, `{k}={v}`"),
    };
    let mut row = StartStop {
        tool: "emuwatch".into(),
        path: label,
        probes,
        start_s: Vec::new(),
        total_s: Vec::new(),
        comparison: env.is_some(),
    };
    for _ in 0..reps {
        let _ = std::fs::remove_dir_all(&out);
        let mut c = Command::new(&ctx.emuwatch);
        c.args(["record", "--quiet", "--syscall-probes", path, "--out"])
            .arg(&out)
            .arg("--")
            .arg(cmd);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        let (s, t) = time_one(c, stamp)?;
        row.start_s.push(s);
        row.total_s.push(t);
    }
    eprintln!(
        "bench: startstop emuwatch {}: start {:.3} s, total {:.3} s ({} probes)",
        row.path,
        row.start_median(),
        row.total_median(),
        row.probes
    );
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftrace_script_names_the_tracepoints() {
        let hooks: Vec<String> = [
            "tracepoint syscalls/sys_enter_openat",
            "raw_tp sys_enter",
            "tp_btf sched_process_fork",
            "cgroup_sock_addr connect4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (s, n) = bpftrace_script(&hooks);
        assert_eq!(n, 3);
        assert_eq!(
            s,
            "tracepoint:syscalls:sys_enter_openat { }\ntracepoint:raw_syscalls:sys_enter { }\ntracepoint:sched:sched_process_fork { }\n"
        );
    }
}
