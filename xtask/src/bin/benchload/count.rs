//! `emuwatch-benchload count FORMAT FILE [filters]`: how many of the workload's events a tracer
//! delivered, read from the tracer's own output. Prints one JSON object:
//! `{"opens":N,"reads":N,"connects":N,"lines":N,"lost_reported":N}`.
//!
//! FORMAT: `emuwatch` (a session directory's events.jsonl), `opensnoop` (its default columns),
//! `bpftrace` (the bench's equivalent script: `O pid ret path`, `R pid fd bytes reads`,
//! `C pid ret addr port`), `strace` (`strace -f -o` lines: `PID syscall(args) = ret`).
//! Filters: `--pids 1,2,3` (the workload's processes), `--path P` (exact; repeatable),
//! `--prefix P` / `--suffix S` (repeatable), `--port N` (connect destination port).
use std::collections::HashSet;

use serde::Deserialize;

#[derive(Default)]
struct Filter {
    pids: HashSet<u32>,
    paths: Vec<String>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    port: Option<u16>,
}

impl Filter {
    fn pid(&self, pid: u32) -> bool {
        self.pids.is_empty() || self.pids.contains(&pid)
    }
    fn path(&self, p: &str) -> bool {
        (self.paths.is_empty() && self.prefixes.is_empty() && self.suffixes.is_empty())
            || self.paths.iter().any(|x| x == p)
            || self.prefixes.iter().any(|x| p.starts_with(x.as_str()))
            || self.suffixes.iter().any(|x| p.ends_with(x.as_str()))
    }
    fn port(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

#[derive(Default)]
struct Counts {
    opens: u64,
    reads: u64,
    connects: u64,
    lines: u64,
    lost_reported: u64,
}

#[derive(Deserialize)]
struct EmuEvent<'a> {
    kind: &'a str,
    #[serde(default)]
    pid: u32,
    #[serde(default, borrow)]
    path: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    op: Option<&'a str>,
    #[serde(default)]
    dport: Option<u16>,
    #[serde(default)]
    reads: Option<u64>,
    #[serde(default)]
    count: Option<u64>,
}

fn emuwatch(text: &str, f: &Filter, c: &mut Counts) {
    for line in text.lines() {
        c.lines += 1;
        let Ok(ev) = serde_json::from_str::<EmuEvent>(line) else {
            continue;
        };
        if ev.kind == "lost" {
            c.lost_reported += ev.count.unwrap_or(0);
            continue;
        }
        if !f.pid(ev.pid) {
            continue;
        }
        let path_ok = ev.path.as_deref().is_some_and(|p| f.path(p));
        match ev.kind {
            "file_open" if path_ok => c.opens += 1,
            "camera" | "microphone" if path_ok && ev.op == Some("open") => c.opens += 1,
            "file_read" if path_ok && ev.reads.unwrap_or(0) > 0 => c.reads += 1,
            "connect" if ev.dport.is_some_and(|p| f.port(p)) => c.connects += 1,
            _ => {}
        }
    }
}

/// `PID COMM FD ERR PATH` (libbpf-tools opensnoop's default columns).
fn opensnoop(text: &str, f: &Filter, c: &mut Counts) {
    for line in text.lines() {
        c.lines += 1;
        let mut w = line.split_whitespace();
        let (Some(pid), Some(_comm), Some(_fd), Some(_err)) =
            (w.next(), w.next(), w.next(), w.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let path = w.collect::<Vec<_>>().join(" ");
        if f.pid(pid) && f.path(&path) {
            c.opens += 1;
        }
    }
}

fn bpftrace(text: &str, f: &Filter, c: &mut Counts) {
    for line in text.lines() {
        c.lines += 1;
        let w: Vec<&str> = line.splitn(5, ' ').collect();
        if !w
            .get(1)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| f.pid(p))
        {
            continue;
        }
        match (w.first().copied(), w.len()) {
            (Some("O"), 4) if f.path(w[3]) => c.opens += 1,
            (Some("R"), 5) if w[4].trim().parse::<u64>().is_ok_and(|r| r > 0) => c.reads += 1,
            (Some("C"), 5) if w[4].trim().parse::<u16>().is_ok_and(|p| f.port(p)) => {
                c.connects += 1
            }
            _ => {}
        }
    }
}

/// `PID openat(AT_FDCWD, "PATH", ...) = FD` and `PID connect(FD, {..., sin_port=htons(PORT), ...`.
/// A call interrupted by another process's line is printed `<unfinished ...>` with its
/// arguments, then `<... NAME resumed>`: counting the first form counts every call once.
fn strace(text: &str, f: &Filter, c: &mut Counts) {
    for line in text.lines() {
        c.lines += 1;
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !f.pid(pid) {
            continue;
        }
        let rest = rest.trim_start();
        if rest.starts_with("openat(") || rest.starts_with("open(") || rest.starts_with("openat2(")
        {
            let path = rest.split('"').nth(1).unwrap_or("");
            if f.path(path) {
                c.opens += 1;
            }
        } else if rest.starts_with("connect(") {
            let port = rest
                .split("htons(")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .and_then(|p| p.parse::<u16>().ok());
            if port.is_some_and(|p| f.port(p)) {
                c.connects += 1;
            }
        }
    }
}

/// `Lost N events` / `lost N events` in a tool's diagnostics (bpftrace, libbpf-tools).
pub fn lost_in(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let l = l.to_ascii_lowercase();
            let i = l.find("lost ")?;
            l[i + 5..].split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

pub fn main(args: &[String]) {
    let (Some(format), Some(file)) = (args.first(), args.get(1)) else {
        super::die(
            "usage: count FORMAT FILE [--pids ..] [--path P] [--prefix P] [--suffix S] [--port N] [--diag FILE]",
        );
    };
    let mut f = Filter::default();
    let mut diag = Vec::new();
    let mut i = 2;
    while i + 1 < args.len() {
        let v = args[i + 1].clone();
        match args[i].as_str() {
            "--pids" => f
                .pids
                .extend(v.split(',').filter_map(|p| p.parse::<u32>().ok())),
            "--path" => f.paths.push(v),
            "--prefix" => f.prefixes.push(v),
            "--suffix" => f.suffixes.push(v),
            "--port" => f.port = v.parse().ok(),
            "--diag" => diag.push(v),
            other => super::die(&format!("count: unknown option {other}")),
        }
        i += 2;
    }
    let path = if format == "emuwatch" {
        std::path::Path::new(file).join("events.jsonl")
    } else {
        std::path::PathBuf::from(file)
    };
    let bytes = std::fs::read(&path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let mut c = Counts::default();
    match format.as_str() {
        "emuwatch" => emuwatch(&text, &f, &mut c),
        "opensnoop" => opensnoop(&text, &f, &mut c),
        "bpftrace" => bpftrace(&text, &f, &mut c),
        "strace" => strace(&text, &f, &mut c),
        other => super::die(&format!("count: unknown format {other}")),
    }
    for d in diag {
        let b = std::fs::read(&d).unwrap_or_default();
        c.lost_reported += lost_in(&String::from_utf8_lossy(&b));
    }
    println!(
        "{{\"opens\":{},\"reads\":{},\"connects\":{},\"lines\":{},\"lost_reported\":{}}}",
        c.opens, c.reads, c.connects, c.lines, c.lost_reported
    );
}
