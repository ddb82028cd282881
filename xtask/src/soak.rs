//! `cargo xtask soak`: a long recording of a steady, count-exact loopback and file workload,
//! checked for zero loss, flat memory and a session that reads back whole.
//!
//! ```text
//! cargo xtask soak [--duration 10m] [--rate 10000] [--out DIR] [--ring-buffer SIZE]
//!                  [--emuwatch BIN] [--benchload BIN] [--keep-session]
//! ```
//!
//! The target (`emuwatch record -- sh -c ...`) is two `emuwatch-benchload` loops run side by
//! side: 90 % of `--rate` events/s as open + read(100 bytes) + close of one file (two events
//! each: `file_open`, `file_read`), 10 % as TCP connects to a listener on 127.0.0.1 (one
//! `connect` event each; the listener is not a target). Both loops are paced (0.5 ms slices)
//! and make an exact number of operations, so the session must hold exactly that many
//! events of each kind. Every second, emuwatch's VmRSS is read from /proc/PID/status.
//!
//! The soak passes when: `emuwatch record` exits 0; session.json says nothing was lost
//! (`lost.total`, `undecodable`, `truncated_paths` all 0, `complete: true`, stopped because
//! the targets exited); `events_total` equals the lines in events.jsonl; the workload's events
//! in events.jsonl are exactly what it made; `emuwatch report --format json` reads the session
//! (exit 0, valid JSON); and memory is flat. Flat means: after a warm-up (the first 10 % of
//! the samples, at least 5), the median of the last third of the samples is at most 10 % above
//! the median of the first third, for both `VmRSS` and `RssAnon` (the process's own private
//! memory: heap and stacks, what a leak grows; `VmRSS` also counts the binary and the ring
//! buffer's mapping). The figures are printed and written to `OUT/soak.json`.
//!
//! Without `--emuwatch`, emuwatch and the workload are built in release first. The session
//! (about 1.6 GB for 10 minutes at 10k events/s) is deleted after a passing run unless
//! `--keep-session`. Traffic goes to 127.0.0.1 only.
use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// RSS may grow by this fraction between the first and the last third of the samples.
pub const RSS_GROWTH_LIMIT: f64 = 0.10;
/// Share of the offered events that are connects (the rest are file opens and reads).
const CONNECT_SHARE: f64 = 0.10;

struct Opts {
    duration: Duration,
    rate: f64,
    out: PathBuf,
    emuwatch: Option<PathBuf>,
    benchload: Option<PathBuf>,
    keep_session: bool,
    /// `emuwatch record --ring-buffer` (default: emuwatch's default).
    ring_buffer: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| format!("--duration: bad value {s:?} (e.g. 10m, 20s)"))?;
    let mult = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => bail!("--duration: bad unit in {s:?} (s, m or h)"),
    };
    if v * mult > 24.0 * 3600.0 {
        bail!("--duration: at most 24h");
    }
    Ok(Duration::from_secs_f64(v * mult))
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        duration: Duration::from_secs(600),
        rate: 10_000.0,
        out: crate::root().join("target/soak"),
        emuwatch: None,
        benchload: None,
        keep_session: false,
        ring_buffer: None,
    };
    let mut i = 0;
    while i < args.len() {
        let val = || {
            args.get(i + 1)
                .cloned()
                .with_context(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--duration" => o.duration = parse_duration(&val()?)?,
            "--rate" => {
                o.rate = val()?
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 20.0 && *r <= 1e6)
                    .context("--rate: events per second, 20 to 1000000")?
            }
            "--out" => o.out = PathBuf::from(val()?),
            "--ring-buffer" => o.ring_buffer = Some(val()?),
            "--emuwatch" => o.emuwatch = Some(PathBuf::from(val()?)),
            "--benchload" => o.benchload = Some(PathBuf::from(val()?)),
            "--keep-session" => {
                o.keep_session = true;
                i += 1;
                continue;
            }
            other => bail!(
                "soak: unknown argument {other} (usage: cargo xtask soak [--duration 10m] [--rate 10000] [--out DIR] [--ring-buffer SIZE] [--emuwatch BIN] [--benchload BIN] [--keep-session])"
            ),
        }
        i += 2;
    }
    Ok(o)
}

fn loadavg() -> String {
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

fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => 0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    }
}

/// The flat-memory verdict over samples taken once a second: drop the warm-up (10 % of the
/// samples, at least 5), then compare the medians of the first and last thirds of the rest;
/// flat when the last is at most [`RSS_GROWTH_LIMIT`] above the first.
#[derive(Debug, PartialEq)]
pub struct RssVerdict {
    pub first_third_median_kib: u64,
    pub last_third_median_kib: u64,
    pub max_kib: u64,
    pub growth: f64,
    pub flat: bool,
}

pub fn rss_verdict(samples: &[u64]) -> Option<RssVerdict> {
    let warm = (samples.len() / 10).max(5);
    let rest = samples.get(warm..)?;
    if rest.len() < 3 {
        return None;
    }
    let third = rest.len() / 3;
    let first = median(&rest[..third]);
    let last = median(&rest[rest.len() - third..]);
    let growth = (last as f64 - first as f64) / first.max(1) as f64;
    Some(RssVerdict {
        first_third_median_kib: first,
        last_third_median_kib: last,
        max_kib: samples.iter().copied().max().unwrap_or(0),
        growth,
        flat: growth <= RSS_GROWTH_LIMIT,
    })
}

/// What the workload made (its own counts) and what the session must therefore hold.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub file_ops: u64,
    pub connects: u64,
}

/// What `emuwatch-benchload count` found in events.jsonl.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    pub opens: u64,
    pub reads: u64,
    pub connects: u64,
    pub lines: u64,
}

/// The failures of a session, from its session.json and what was counted in its
/// events.jsonl; empty when it is whole and holds exactly what the workload made.
pub fn session_failures(info: &Value, exp: Expected, found: Found) -> Vec<String> {
    let mut f = Vec::new();
    let n = |p: &str| info.pointer(p).and_then(Value::as_u64);
    for p in ["/lost/total", "/lost/undecodable", "/lost/truncated_paths"] {
        match n(p) {
            Some(0) => {}
            Some(v) => f.push(format!("session.json {p} = {v}, not 0")),
            None if p == "/lost/truncated_paths" => {}
            None => f.push(format!("session.json has no {p}")),
        }
    }
    if info.get("complete") != Some(&Value::Bool(true)) {
        f.push("session.json: complete is not true".into());
    }
    let stop = info.get("stop_reason").and_then(Value::as_str);
    if stop != Some("targets_exited") {
        f.push(format!(
            "session.json: stop_reason {stop:?}, expected \"targets_exited\""
        ));
    }
    match n("/events_total") {
        Some(t) if t == found.lines => {}
        t => f.push(format!(
            "session.json events_total {t:?} but events.jsonl has {} lines",
            found.lines
        )),
    }
    for (what, got, want) in [
        (
            "file_open events of the workload's file",
            found.opens,
            exp.file_ops,
        ),
        (
            "file_read events of the workload's file",
            found.reads,
            exp.file_ops,
        ),
        (
            "connect events to the workload's port",
            found.connects,
            exp.connects,
        ),
    ] {
        if got != want {
            f.push(format!("{what}: {got} in the session, {want} made"));
        }
    }
    f
}

/// Runs `cmd`, waits with wait4 and returns (exit code, peak RSS KiB, CPU s, wall s).
fn timed(cmd: &mut Command) -> Result<(i32, u64, f64, f64)> {
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

fn binaries(o: &Opts) -> Result<(PathBuf, PathBuf)> {
    let built = |name: &str| crate::root().join("target/release").join(name);
    let emuwatch = match &o.emuwatch {
        Some(p) => p.clone(),
        None => {
            crate::build_release()?;
            built("emuwatch")
        }
    };
    let benchload = match &o.benchload {
        Some(p) => p.clone(),
        None => {
            crate::bench::setup::build_benchload()?;
            built("emuwatch-benchload")
        }
    };
    for p in [&emuwatch, &benchload] {
        if !p.is_file() {
            bail!("{}: no such binary", p.display());
        }
    }
    Ok((emuwatch, benchload))
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// The loopback listener of the workload's connects (not a target): it stops when its stdin
/// closes. Returns it and its port.
fn start_listener(benchload: &Path, port_file: &Path) -> Result<(std::process::Child, u16)> {
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
struct Sampled {
    code: i32,
    peak_kib: u64,
    rec_cpu: f64,
    samples: Vec<u64>,
    anon: Vec<u64>,
}

/// Sample emuwatch's memory once a second until it exits (SIGTERM after `limit`), with a
/// progress line a minute.
fn sample_until_exit(
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

/// A memory series that is not flat, or too short to judge, is a failure.
fn rss_failures(rss: &Option<RssVerdict>, anon_v: &Option<RssVerdict>, n: usize) -> Vec<String> {
    let mut failures = Vec::new();
    for (what, v) in [("VmRSS", &rss), ("RssAnon", &anon_v)] {
        match v {
            Some(v) if !v.flat => failures.push(format!(
                "{what} not flat: last-third median {} KiB is {:+.1} % of the first-third median {} KiB (limit +{:.0} %)",
                v.last_third_median_kib,
                v.growth * 100.0,
                v.first_third_median_kib,
                RSS_GROWTH_LIMIT * 100.0
            )),
            Some(_) => {}
            None => failures.push(format!(
                "too few memory samples ({}) to judge {what}",
                n
            )),
        }
    }
    failures
}

/// The soak's figures, one line each, from the result written to soak.json.
fn print_result(r: &Value, file: &Path) {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let u = |k: &str| r[k].as_u64().unwrap_or(0);
    let mib = |k: &str| {
        r[k].as_u64()
            .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
    };
    println!(
        "soak: workload      {} events in {:.1} s = {:.0} events/s (offered {:.0}/s; {} connects refused)",
        u("workload_events"),
        f("workload_s"),
        f("achieved_events_per_s"),
        f("offered_rate"),
        u("workload_connect_errors")
    );
    println!(
        "soak: session       {} events, lost {} (undecodable {}, truncated paths {}), complete {}",
        u("events_total"),
        r["lost"]["total"],
        r["lost"]["undecodable"],
        r["lost"]["truncated_paths"],
        r["complete"]
    );
    for (what, p) in [("VmRSS  ", "rss"), ("RssAnon", "anon")] {
        println!(
            "soak: {what}      first {} MiB, last {} MiB, max {} MiB; medians first third {} MiB, last third {} MiB ({:+.1} %, limit +{:.0} %); {} samples",
            mib(&format!("{p}_first_kib")),
            mib(&format!("{p}_last_kib")),
            mib(&format!("{p}_max_kib")),
            mib(&format!("{p}_first_third_median_kib")),
            mib(&format!("{p}_last_third_median_kib")),
            f(&format!("{p}_growth")) * 100.0,
            RSS_GROWTH_LIMIT * 100.0,
            u("rss_samples")
        );
    }
    println!(
        "soak: emuwatch CPU  {:.1} s over {:.1} s ({:.1} % of one CPU)",
        f("record_cpu_s"),
        f("recording_wall_s"),
        100.0 * f("record_cpu_share")
    );
    println!(
        "soak: size          events.jsonl {} bytes, {:.1} bytes/event: {:.2} GB/hour at the achieved rate, {:.2} GB/hour at 10k events/s",
        u("events_jsonl_bytes"),
        f("bytes_per_event"),
        f("gb_per_hour_achieved"),
        f("gb_per_hour_at_10k")
    );
    println!(
        "soak: report        exit {} in {:.1} s, peak RSS {} MiB",
        r["report_exit"],
        f("report_s"),
        mib("report_peak_rss_kib")
    );
    println!(
        "soak: load          start {}; end {}",
        r["load_start"].as_str().unwrap_or("?"),
        r["load_end"].as_str().unwrap_or("?")
    );
    println!("soak: figures in    {}", file.display());
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse_args(args)?;
    if !crate::is_root() {
        bail!("the soak loads eBPF programs: run it as root");
    }
    let (emuwatch, benchload) = binaries(&o)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("create {}", o.out.display()))?;
    let session = o.out.join("session");
    let _ = std::fs::remove_dir_all(&session);
    let data = o.out.join("data");
    std::fs::write(&data, [b'x'; 100]).context("write the workload's file")?;
    let data = data.canonicalize()?;
    let port_file = o.out.join("port");
    let _ = std::fs::remove_file(&port_file);

    let (mut server, port) = start_listener(&benchload, &port_file)?;

    let secs = o.duration.as_secs_f64();
    let connect_rate = o.rate * CONNECT_SHARE;
    let file_rate = o.rate * (1.0 - CONNECT_SHARE) / 2.0;
    let exp = Expected {
        file_ops: (file_rate * secs).round() as u64,
        connects: (connect_rate * secs).round() as u64,
    };
    let offered = 2 * exp.file_ops + exp.connects;
    let b = shell_quote(&benchload);
    let script = format!(
        "{b} open --file {} --n {} --rate {file_rate} & {b} connect --addr 127.0.0.1:{port} --n {} --rate {connect_rate} & wait",
        shell_quote(&data),
        exp.file_ops,
        exp.connects
    );
    let load_start = loadavg();
    eprintln!(
        "soak: {:.0} s at {:.0} events/s offered ({} file open+read, {} loopback connects: {offered} events); load {load_start}",
        secs, o.rate, exp.file_ops, exp.connects
    );
    let started = Instant::now();
    let mut rec = Command::new(&emuwatch);
    rec.args(["record", "--quiet", "--out"]).arg(&session);
    if let Some(r) = &o.ring_buffer {
        rec.args(["--ring-buffer", r]);
    }
    let mut rec = rec
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .context("start emuwatch record")?;
    let pid = rec.id() as i32;
    // The workload's own JSON lines (what it made), read as they come.
    let stdout = rec.stdout.take().context("emuwatch stdout")?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .collect::<Vec<Value>>()
    });
    let limit = o.duration * 2 + Duration::from_secs(120);
    let Sampled {
        code,
        peak_kib,
        rec_cpu,
        samples,
        anon,
    } = sample_until_exit(pid, &session, started, limit)?;
    let wall = started.elapsed().as_secs_f64();
    let load_end = loadavg();
    drop(server.stdin.take());
    let _ = server.wait();
    let made = reader.join().unwrap_or_default();

    let mut failures = Vec::new();
    if code != 0 {
        failures.push(format!("emuwatch record exited {code}, not 0"));
    }
    // The workload's own counts: it must have made exactly what it was asked to. (A connect
    // the listener refused is still a connect, and still an event: it is only reported.)
    let made_sum = |k: &str| made.iter().filter_map(|v| v[k].as_u64()).sum::<u64>();
    let workload_s = made
        .iter()
        .filter_map(|v| v["elapsed_s"].as_f64())
        .fold(0.0, f64::max);
    let connect_errors = made_sum("connect_errors");
    if made.len() != 2 || made_sum("opens") != exp.file_ops || made_sum("connects") != exp.connects
    {
        failures.push(format!(
            "the workload did not make what it was asked: {}",
            serde_json::to_string(&made)?
        ));
    }

    let info: Value = serde_json::from_slice(
        &std::fs::read(session.join("session.json")).context("read session.json")?,
    )
    .context("parse session.json")?;
    let counted = Command::new(&benchload)
        .args(["count", "emuwatch"])
        .arg(&session)
        .arg("--path")
        .arg(&data)
        .args(["--port", &port.to_string()])
        .output()
        .context("count the session's events")?;
    let c: Value = serde_json::from_slice(&counted.stdout).context("parse the count")?;
    let found = Found {
        opens: c["opens"].as_u64().unwrap_or(0),
        reads: c["reads"].as_u64().unwrap_or(0),
        connects: c["connects"].as_u64().unwrap_or(0),
        lines: c["lines"].as_u64().unwrap_or(0),
    };
    failures.extend(session_failures(&info, exp, found));

    // The session must read back: `emuwatch report`.
    let summary = o.out.join("summary.json");
    let _ = std::fs::remove_file(&summary);
    let (rc, report_kib, _, report_s) = timed(
        Command::new(&emuwatch)
            .args(["report", "--format", "json", "--out"])
            .arg(&summary)
            .arg(&session)
            .stdout(Stdio::null()),
    )?;
    if rc != 0 {
        failures.push(format!("emuwatch report exited {rc}"));
    } else {
        let mut s = String::new();
        std::fs::File::open(&summary)?.read_to_string(&mut s)?;
        if serde_json::from_str::<Value>(&s).is_err() {
            failures.push("emuwatch report wrote invalid JSON".into());
        }
    }

    let rss = rss_verdict(&samples);
    let anon_v = rss_verdict(&anon);
    failures.extend(rss_failures(&rss, &anon_v, samples.len()));

    let bytes = std::fs::metadata(session.join("events.jsonl")).map_or(0, |m| m.len());
    let events_total = info["events_total"].as_u64().unwrap_or(0);
    let bytes_per_event = bytes as f64 / events_total.max(1) as f64;
    let achieved = offered as f64 / workload_s.max(1e-9);
    let gb_per_hour = |rate: f64| rate * bytes_per_event * 3600.0 / 1e9;
    let result = json!({
        "duration_s": secs,
        "offered_rate": o.rate,
        "workload_events": offered,
        "workload_s": workload_s,
        "achieved_events_per_s": achieved,
        "workload_connect_errors": connect_errors,
        "recording_wall_s": wall,
        "events_total": events_total,
        "events": info["events"],
        "lost": info["lost"],
        "complete": info["complete"],
        "record_exit": code,
        "record_cpu_s": rec_cpu,
        "record_cpu_share": rec_cpu / wall.max(1e-9),
        "rss_samples": samples.len(),
        "rss_first_kib": samples.first(),
        "rss_last_kib": samples.last(),
        "rss_max_kib": rss.as_ref().map(|v| v.max_kib),
        "rss_peak_wait4_kib": peak_kib,
        "rss_first_third_median_kib": rss.as_ref().map(|v| v.first_third_median_kib),
        "rss_last_third_median_kib": rss.as_ref().map(|v| v.last_third_median_kib),
        "rss_growth": rss.as_ref().map(|v| v.growth),
        "rss_flat": rss.as_ref().map(|v| v.flat),
        "anon_first_kib": anon.first(),
        "anon_last_kib": anon.last(),
        "anon_max_kib": anon_v.as_ref().map(|v| v.max_kib),
        "anon_first_third_median_kib": anon_v.as_ref().map(|v| v.first_third_median_kib),
        "anon_last_third_median_kib": anon_v.as_ref().map(|v| v.last_third_median_kib),
        "anon_growth": anon_v.as_ref().map(|v| v.growth),
        "anon_flat": anon_v.as_ref().map(|v| v.flat),
        "events_jsonl_bytes": bytes,
        "bytes_per_event": bytes_per_event,
        "gb_per_hour_achieved": gb_per_hour(achieved),
        "gb_per_hour_at_10k": gb_per_hour(10_000.0),
        "report_exit": rc,
        "report_s": report_s,
        "report_peak_rss_kib": report_kib,
        "load_start": load_start,
        "load_end": load_end,
        "failures": failures,
    });
    std::fs::write(
        o.out.join("soak.json"),
        serde_json::to_string_pretty(&result)? + "\n",
    )?;
    print_result(&result, &o.out.join("soak.json"));
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("soak: FAILED: {f}");
        }
        bail!(
            "soak failed ({} checks); session kept in {}",
            failures.len(),
            session.display()
        );
    }
    if !o.keep_session {
        std::fs::remove_dir_all(&session).ok();
    }
    println!("soak: PASSED");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole() -> Value {
        json!({"events_total": 10, "complete": true, "stop_reason": "targets_exited",
               "lost": {"total": 0, "undecodable": 0, "truncated_paths": 0}})
    }
    const EXP: Expected = Expected {
        file_ops: 4,
        connects: 1,
    };
    const FOUND: Found = Found {
        opens: 4,
        reads: 4,
        connects: 1,
        lines: 10,
    };

    #[test]
    fn a_whole_session_passes() {
        assert_eq!(session_failures(&whole(), EXP, FOUND), Vec::<String>::new());
    }

    #[test]
    fn loss_or_a_missing_event_fails() {
        let mut lost = whole();
        lost["lost"]["total"] = json!(3);
        lost["complete"] = json!(false);
        let f = session_failures(&lost, EXP, FOUND);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("/lost/total = 3"), "{f:?}");
        let short = Found { reads: 3, ..FOUND };
        let f = session_failures(&whole(), EXP, short);
        assert_eq!(
            f,
            ["file_read events of the workload's file: 3 in the session, 4 made"]
        );
        let mut cut = whole();
        cut["events_total"] = json!(11);
        assert_eq!(session_failures(&cut, EXP, FOUND).len(), 1);
    }

    #[test]
    fn rss_is_flat_unless_it_grows_more_than_the_limit() {
        // 5 warm-up samples, then three thirds of 5.
        let mut s = vec![1000, 30000, 40000, 40000, 40000];
        s.extend([40000; 5]);
        s.extend([41000; 5]);
        s.extend([43000; 5]);
        let v = rss_verdict(&s).unwrap();
        assert_eq!(
            (v.first_third_median_kib, v.last_third_median_kib, v.max_kib),
            (40000, 43000, 43000)
        );
        assert!(v.flat);
        *s.last_mut().unwrap() = 60000;
        s.extend([60000; 3]);
        let v = rss_verdict(&s).unwrap();
        assert!(!v.flat, "{v:?}");
        assert_eq!(rss_verdict(&[1, 2, 3, 4, 5, 6]), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("99999h").is_err());
    }
}
