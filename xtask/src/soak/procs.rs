//! The processes of a soak: the recorder sampled once a second, the loopback listener, and
//! wait4 for exit code, peak RSS and CPU time.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// (VmRSS, RssAnon) of a process in KiB.
fn rss_kib(pid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

/// Runs `cmd`, waits with wait4 and returns (exit code, peak RSS KiB, CPU s, wall s).
pub fn timed(cmd: &mut Command) -> Result<(i32, u64, f64, f64)> {
    let t = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("start {}", crate::describe(cmd)))?;
    let (code, ru) = wait4(child.id() as i32, false)?.context("wait4")?;
    Ok((code, ru.0, ru.1, t.elapsed().as_secs_f64()))
}

/// wait4 on one child: `Some((exit code, (peak RSS KiB, CPU s)))` once it has exited
/// (128 + signal when killed), `None` while it runs (`nohang`).
#[allow(clippy::type_complexity)]
fn wait4(pid: i32, nohang: bool) -> Result<Option<(i32, (u64, f64))>> {
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if nohang { libc::WNOHANG } else { 0 };
    let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
    if r == 0 {
        return Ok(None);
    }
    if r != pid {
        bail!("wait4 {pid}: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    Ok(Some((
        code,
        (ru.ru_maxrss as u64, t(ru.ru_utime) + t(ru.ru_stime)),
    )))
}

/// The loopback listener of the workload's connects (not a target): it stops when its stdin
/// closes. Returns it and its port.
pub fn start_listener(benchload: &Path, port_file: &Path) -> Result<(std::process::Child, u16)> {
    let mut server = Command::new(benchload)
        .args(["serve", "--port-file"])
        .arg(port_file)
        .stdin(Stdio::piped())
        .spawn()
        .context("start the loopback listener")?;
    let t = Instant::now();
    let port: u16 = loop {
        if let Some(p) = std::fs::read_to_string(port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = server.kill();
            bail!("the loopback listener did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((server, port))
}

/// What sampling the recorder until it exits gave: its exit code, peak RSS and CPU time from
/// wait4, and VmRSS / RssAnon once a second.
pub struct Sampled {
    pub code: i32,
    pub peak_kib: u64,
    pub rec_cpu: f64,
    pub samples: Vec<u64>,
    pub anon: Vec<u64>,
}

/// Sample emuwatch's memory once a second until it exits (SIGTERM after `limit`), with a
/// progress line a minute.
pub fn sample_until_exit(
    pid: i32,
    session: &Path,
    started: Instant,
    limit: Duration,
) -> Result<Sampled> {
    let mut samples: Vec<u64> = Vec::new();
    let mut anon: Vec<u64> = Vec::new();
    let mut next = Instant::now();
    let mut last_progress = Instant::now();
    let (code, (peak_kib, rec_cpu)) = loop {
        if let Some(r) = wait4(pid, true)? {
            break r;
        }
        if let Some((rss, a)) = rss_kib(pid) {
            samples.push(rss);
            anon.push(a);
        }
        if last_progress.elapsed() >= Duration::from_secs(60) {
            last_progress = Instant::now();
            let size = std::fs::metadata(session.join("events.jsonl")).map_or(0, |m| m.len());
            eprintln!(
                "soak: {:.0} s: VmRSS {} KiB, RssAnon {} KiB, events.jsonl {} MB, load {}",
                started.elapsed().as_secs_f64(),
                samples.last().copied().unwrap_or(0),
                anon.last().copied().unwrap_or(0),
                size / 1_000_000,
                loadavg()
            );
        }
        if started.elapsed() > limit {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    };
    Ok(Sampled {
        code,
        peak_kib,
        rec_cpu,
        samples,
        anon,
    })
}
