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
use serde_json::Value;

mod figures;
mod procs;
mod verdict;

use procs::{Sampled, loadavg, sample_until_exit, start_listener, timed};
use verdict::{Expected, Found, rss_failures, rss_verdict, session_failures};

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

/// The soak's files and plan: the workload's data file, the listener's port file, the
/// session directory and the exact operation counts the rate and duration ask for.
struct Plan {
    session: PathBuf,
    data: PathBuf,
    port_file: PathBuf,
    exp: Expected,
    offered: u64,
    file_rate: f64,
    connect_rate: f64,
}

fn plan(o: &Opts) -> Result<Plan> {
    std::fs::create_dir_all(&o.out).with_context(|| format!("create {}", o.out.display()))?;
    let session = o.out.join("session");
    let _ = std::fs::remove_dir_all(&session);
    let data = o.out.join("data");
    std::fs::write(&data, [b'x'; 100]).context("write the workload's file")?;
    let data = data.canonicalize()?;
    let port_file = o.out.join("port");
    let _ = std::fs::remove_file(&port_file);
    let secs = o.duration.as_secs_f64();
    let connect_rate = o.rate * CONNECT_SHARE;
    let file_rate = o.rate * (1.0 - CONNECT_SHARE) / 2.0;
    let exp = Expected {
        file_ops: (file_rate * secs).round() as u64,
        connects: (connect_rate * secs).round() as u64,
    };
    Ok(Plan {
        session,
        data,
        port_file,
        offered: 2 * exp.file_ops + exp.connects,
        exp,
        file_rate,
        connect_rate,
    })
}

/// What one recording gave: the sampled recorder, its wall time, the load before and after,
/// and the workload's own JSON lines (what it made).
struct Recording {
    sampled: Sampled,
    wall: f64,
    load_start: String,
    load_end: String,
    made: Vec<Value>,
}

/// `emuwatch record -- sh -c '<the two benchload loops>'`, sampled until it exits.
fn record(o: &Opts, p: &Plan, emuwatch: &Path, benchload: &Path, port: u16) -> Result<Recording> {
    let b = shell_quote(benchload);
    let script = format!(
        "{b} open --file {} --n {} --rate {} & {b} connect --addr 127.0.0.1:{port} --n {} --rate {} & wait",
        shell_quote(&p.data),
        p.exp.file_ops,
        p.file_rate,
        p.exp.connects,
        p.connect_rate
    );
    let load_start = loadavg();
    eprintln!(
        "soak: {:.0} s at {:.0} events/s offered ({} file open+read, {} loopback connects: {} events); load {load_start}",
        o.duration.as_secs_f64(),
        o.rate,
        p.exp.file_ops,
        p.exp.connects,
        p.offered
    );
    let started = Instant::now();
    let mut rec = Command::new(emuwatch);
    rec.args(["record", "--quiet", "--out"]).arg(&p.session);
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
    let sampled = sample_until_exit(pid, &p.session, started, limit)?;
    Ok(Recording {
        sampled,
        wall: started.elapsed().as_secs_f64(),
        load_start,
        load_end: loadavg(),
        made: reader.join().unwrap_or_default(),
    })
}

/// The workload's own counts: it must have made exactly what it was asked to. (A connect
/// the listener refused is still a connect, and still an event: it is only reported.)
/// Returns the failures, the workload's time and its refused connects.
fn check_workload(made: &[Value], exp: Expected) -> Result<(Vec<String>, f64, u64)> {
    let made_sum = |k: &str| made.iter().filter_map(|v| v[k].as_u64()).sum::<u64>();
    let workload_s = made
        .iter()
        .filter_map(|v| v["elapsed_s"].as_f64())
        .fold(0.0, f64::max);
    let mut failures = Vec::new();
    if made.len() != 2 || made_sum("opens") != exp.file_ops || made_sum("connects") != exp.connects
    {
        failures.push(format!(
            "the workload did not make what it was asked: {}",
            serde_json::to_string(made)?
        ));
    }
    Ok((failures, workload_s, made_sum("connect_errors")))
}

/// session.json and what `emuwatch-benchload count` finds in events.jsonl.
fn check_session(p: &Plan, benchload: &Path, port: u16) -> Result<(Value, Vec<String>)> {
    let info: Value = serde_json::from_slice(
        &std::fs::read(p.session.join("session.json")).context("read session.json")?,
    )
    .context("parse session.json")?;
    let counted = Command::new(benchload)
        .args(["count", "emuwatch"])
        .arg(&p.session)
        .arg("--path")
        .arg(&p.data)
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
    let failures = session_failures(&info, p.exp, found);
    Ok((info, failures))
}

/// The session must read back: `emuwatch report --format json` exits 0 with valid JSON.
/// Returns (exit code, peak RSS KiB, wall s) and the failures.
fn check_report(
    o: &Opts,
    emuwatch: &Path,
    session: &Path,
) -> Result<((i32, u64, f64), Vec<String>)> {
    let summary = o.out.join("summary.json");
    let _ = std::fs::remove_file(&summary);
    let (rc, report_kib, _, report_s) = timed(
        Command::new(emuwatch)
            .args(["report", "--format", "json", "--out"])
            .arg(&summary)
            .arg(session)
            .stdout(Stdio::null()),
    )?;
    let mut failures = Vec::new();
    if rc != 0 {
        failures.push(format!("emuwatch report exited {rc}"));
    } else {
        let mut s = String::new();
        std::fs::File::open(&summary)?.read_to_string(&mut s)?;
        if serde_json::from_str::<Value>(&s).is_err() {
            failures.push("emuwatch report wrote invalid JSON".into());
        }
    }
    Ok(((rc, report_kib, report_s), failures))
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse_args(args)?;
    if !crate::is_root() {
        bail!("the soak loads eBPF programs: run it as root");
    }
    let (emuwatch, benchload) = binaries(&o)?;
    let p = plan(&o)?;
    let (mut server, port) = start_listener(&benchload, &p.port_file)?;
    let rec = record(&o, &p, &emuwatch, &benchload, port);
    drop(server.stdin.take());
    let _ = server.wait();
    let rec = rec?;

    let mut failures = Vec::new();
    if rec.sampled.code != 0 {
        failures.push(format!(
            "emuwatch record exited {}, not 0",
            rec.sampled.code
        ));
    }
    let (f, workload_s, connect_errors) = check_workload(&rec.made, p.exp)?;
    failures.extend(f);
    let (info, f) = check_session(&p, &benchload, port)?;
    failures.extend(f);
    let (report, f) = check_report(&o, &emuwatch, &p.session)?;
    failures.extend(f);
    let rss = rss_verdict(&rec.sampled.samples);
    let anon = rss_verdict(&rec.sampled.anon);
    failures.extend(rss_failures(&rss, &anon, rec.sampled.samples.len()));

    let measured = figures::Measured {
        o_rate: o.rate,
        secs: o.duration.as_secs_f64(),
        offered: p.offered,
        workload_s,
        connect_errors,
        events_jsonl_bytes: std::fs::metadata(p.session.join("events.jsonl"))
            .map_or(0, |m| m.len()),
        report,
    };
    let result = figures::result(&measured, &rec, &info, (&rss, &anon), &failures);
    let file = o.out.join("soak.json");
    std::fs::write(&file, serde_json::to_string_pretty(&result)? + "\n")?;
    figures::print_result(&result, &file);
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("soak: FAILED: {f}");
        }
        bail!(
            "soak failed ({} checks); session kept in {}",
            failures.len(),
            p.session.display()
        );
    }
    if !o.keep_session {
        std::fs::remove_dir_all(&p.session).ok();
    }
    println!("soak: PASSED");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
