//! Running one workload under one condition: start the workload held, attach the tracer to its
//! pid, wait until the tracer is really attached, release the workload (which times itself),
//! stop the tracer, and count what it delivered from its own output.
use std::{
    fs::File,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, floor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cond {
    /// No tracer.
    None,
    /// `emuwatch record --pid WORKLOAD`.
    Emuwatch,
    /// The same with a ring buffer sized for the burst (`Ctx::big_ring`).
    EmuwatchBigRing,
    /// `emuwatch record --pid OTHER` while the workload runs untargeted.
    EmuwatchOther,
    /// `emuwatch record --all`.
    EmuwatchAll,
    /// No-op programs on emuwatch's hooks.
    Floor,
    /// libbpf-tools `opensnoop -p WORKLOAD` (system-wide for multi-process workloads).
    Opensnoop,
    /// `bpftrace` running the equivalent script on the workload's process tree.
    Bpftrace,
    /// `strace -f -p WORKLOAD`.
    Strace,
    /// `emuwatch record --syscall-probes raw --pid WORKLOAD` (the Android-kernel path).
    EmuwatchRaw,
    /// The same with `Ctx::big_ring`.
    EmuwatchRawBigRing,
    /// `emuwatch record --syscall-probes raw --pid OTHER`: the workload is not a target.
    EmuwatchRawOther,
    /// No-op programs on the raw path's hooks (`Ctx::raw_hooks`).
    FloorRaw,
    /// No-op raw_tp programs on `sys_enter` and `sys_exit` only (hook-type comparison).
    FloorRawTp,
    /// No-op programs on the classic `raw_syscalls/sys_enter` and `sys_exit` tracepoints only.
    FloorTpRawSyscalls,
    /// `emuwatch record --names off --pid WORKLOAD`: everything but name capture.
    EmuwatchNamesOff,
}

/// The hooks of the classic-tracepoint variant of the raw path, and of its raw_tp default.
pub const TP_RAW_SYSCALLS_HOOKS: [&str; 2] = [
    "tracepoint raw_syscalls/sys_enter",
    "tracepoint raw_syscalls/sys_exit",
];
pub const RAW_TP_HOOKS: [&str; 2] = ["raw_tp sys_enter", "raw_tp sys_exit"];

impl Cond {
    /// The overhead section: emuwatch (per-syscall path) next to the other tools.
    pub const OVERHEAD: [Cond; 9] = [
        Cond::None,
        Cond::Emuwatch,
        Cond::EmuwatchBigRing,
        Cond::EmuwatchOther,
        Cond::EmuwatchAll,
        Cond::Floor,
        Cond::Opensnoop,
        Cond::Bpftrace,
        Cond::Strace,
    ];

    /// The raw section: both syscall paths, each with its own floor, in one run.
    pub const RAW: [Cond; 9] = [
        Cond::None,
        Cond::Floor,
        Cond::Emuwatch,
        Cond::EmuwatchBigRing,
        Cond::EmuwatchOther,
        Cond::FloorRaw,
        Cond::EmuwatchRaw,
        Cond::EmuwatchRawBigRing,
        Cond::EmuwatchRawOther,
    ];

    /// The hook-type section: empty programs on each candidate hook of the raw path (and the
    /// per-syscall floor for reference), emuwatch's raw path where the workload's syscalls are
    /// ones it does not capture.
    pub const HOOK_TYPE: [Cond; 6] = [
        Cond::None,
        Cond::Floor,
        Cond::FloorRawTp,
        Cond::FloorTpRawSyscalls,
        Cond::EmuwatchRawOther,
        Cond::EmuwatchRaw,
    ];

    /// The names section: what name capture (`--names auto`, the default) adds to a
    /// connect-and-send workload over the same recording with `--names off`.
    pub const NAMES: [Cond; 4] = [
        Cond::None,
        Cond::Floor,
        Cond::EmuwatchNamesOff,
        Cond::Emuwatch,
    ];

    pub const EVERY: [Cond; 16] = [
        Cond::None,
        Cond::Emuwatch,
        Cond::EmuwatchBigRing,
        Cond::EmuwatchOther,
        Cond::EmuwatchAll,
        Cond::Floor,
        Cond::Opensnoop,
        Cond::Bpftrace,
        Cond::Strace,
        Cond::EmuwatchRaw,
        Cond::EmuwatchRawBigRing,
        Cond::EmuwatchRawOther,
        Cond::FloorRaw,
        Cond::FloorRawTp,
        Cond::FloorTpRawSyscalls,
        Cond::EmuwatchNamesOff,
    ];

    pub fn from_key(key: &str) -> Option<Cond> {
        Cond::EVERY.into_iter().find(|c| c.key() == key)
    }

    pub fn key(self) -> &'static str {
        match self {
            Cond::None => "none",
            Cond::Emuwatch => "emuwatch",
            Cond::EmuwatchBigRing => "emuwatch_big_ring",
            Cond::EmuwatchOther => "emuwatch_other",
            Cond::EmuwatchAll => "emuwatch_all",
            Cond::Floor => "floor",
            Cond::Opensnoop => "opensnoop",
            Cond::Bpftrace => "bpftrace",
            Cond::Strace => "strace",
            Cond::EmuwatchRaw => "emuwatch_raw",
            Cond::EmuwatchRawBigRing => "emuwatch_raw_big_ring",
            Cond::EmuwatchRawOther => "emuwatch_raw_other",
            Cond::FloorRaw => "floor_raw",
            Cond::FloorRawTp => "floor_raw_tp",
            Cond::FloorTpRawSyscalls => "floor_tp_raw_syscalls",
            Cond::EmuwatchNamesOff => "emuwatch_names_off",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Cond::None => "no tracer",
            Cond::Emuwatch => "emuwatch, workload is the target",
            Cond::EmuwatchBigRing => "emuwatch, workload is the target, larger ring buffer",
            Cond::EmuwatchOther => "emuwatch, another target (workload untargeted)",
            Cond::EmuwatchAll => "emuwatch --all",
            Cond::Floor => "no-op floor (same hooks, empty programs)",
            Cond::Opensnoop => "libbpf-tools opensnoop",
            Cond::Bpftrace => "bpftrace, equivalent script",
            Cond::Strace => "strace -f",
            Cond::EmuwatchRaw => "emuwatch raw path, workload is the target",
            Cond::EmuwatchRawBigRing => {
                "emuwatch raw path, workload is the target, larger ring buffer"
            }
            Cond::EmuwatchRawOther => "emuwatch raw path, another target (workload untargeted)",
            Cond::FloorRaw => "raw-path no-op floor (the raw path's hooks, empty programs)",
            Cond::FloorRawTp => "empty raw_tp programs on sys_enter + sys_exit",
            Cond::FloorTpRawSyscalls => {
                "empty programs on tracepoints raw_syscalls/sys_enter + sys_exit"
            }
            Cond::EmuwatchNamesOff => "emuwatch --names off, workload is the target",
        }
    }

    /// The floor this condition is compared with: the no-op programs on its own hooks.
    pub fn floor(self) -> Cond {
        match self {
            Cond::EmuwatchRaw | Cond::EmuwatchRawBigRing | Cond::EmuwatchRawOther => Cond::FloorRaw,
            Cond::FloorRaw | Cond::FloorRawTp | Cond::FloorTpRawSyscalls => self,
            _ => Cond::Floor,
        }
    }

    /// emuwatch on the raw-syscalls path (`--syscall-probes raw`).
    pub fn raw_path(self) -> bool {
        matches!(
            self,
            Cond::EmuwatchRaw | Cond::EmuwatchRawBigRing | Cond::EmuwatchRawOther
        )
    }

    /// emuwatch with the workload as its target (stops by itself when the target exits).
    pub fn targeted(self) -> bool {
        matches!(
            self,
            Cond::Emuwatch
                | Cond::EmuwatchBigRing
                | Cond::EmuwatchRaw
                | Cond::EmuwatchRawBigRing
                | Cond::EmuwatchNamesOff
        )
    }

    pub fn big_ring(self) -> bool {
        matches!(self, Cond::EmuwatchBigRing | Cond::EmuwatchRawBigRing)
    }

    /// Does this condition record the workload's events (so delivered/lost mean something)?
    pub fn captures(self) -> bool {
        matches!(
            self,
            Cond::Emuwatch
                | Cond::EmuwatchBigRing
                | Cond::EmuwatchAll
                | Cond::EmuwatchRaw
                | Cond::EmuwatchRawBigRing
                | Cond::EmuwatchNamesOff
                | Cond::Opensnoop
                | Cond::Bpftrace
                | Cond::Strace
        )
    }

    pub fn is_emuwatch(self) -> bool {
        matches!(
            self,
            Cond::Emuwatch
                | Cond::EmuwatchBigRing
                | Cond::EmuwatchOther
                | Cond::EmuwatchAll
                | Cond::EmuwatchRaw
                | Cond::EmuwatchRawBigRing
                | Cond::EmuwatchRawOther
                | Cond::EmuwatchNamesOff
        )
    }

    /// Which of the workload's event kinds the tool records at all.
    pub fn records_connects(self) -> bool {
        !matches!(self, Cond::Opensnoop)
    }

    pub fn records_reads(self) -> bool {
        matches!(
            self,
            Cond::Emuwatch
                | Cond::EmuwatchBigRing
                | Cond::EmuwatchAll
                | Cond::EmuwatchRaw
                | Cond::EmuwatchRawBigRing
                | Cond::EmuwatchNamesOff
                | Cond::Bpftrace
        )
    }
}

/// A workload: emuwatch-benchload arguments, plus how to recognise its events in a tracer's
/// output (paths it opens, the listener port it connects to).
#[derive(Clone, Debug)]
pub struct Workload {
    pub key: &'static str,
    pub args: Vec<String>,
    pub filter: Vec<String>,
    /// The workload forks: tools that filter by one pid must trace system-wide.
    pub multi_process: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Sample {
    pub workload: String,
    pub cond: String,
    pub rep: usize,
    /// The workload's own timing, from release to its last operation.
    pub elapsed_s: f64,
    pub workload_cpu_s: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    pub made_opens: u64,
    pub made_reads: u64,
    pub made_connects: u64,
    pub delivered_opens: Option<u64>,
    pub delivered_reads: Option<u64>,
    pub delivered_connects: Option<u64>,
    /// Losses the tool itself reported (emuwatch's session.json, "Lost N events" lines).
    pub lost_reported: Option<u64>,
    /// All events emuwatch wrote (with --all, everything on the machine).
    pub tracer_events_total: Option<u64>,
    /// The tracer's CPU time while the workload ran and until it had written everything.
    pub tracer_cpu_s: Option<f64>,
    pub tracer_peak_rss_mib: Option<f64>,
    /// Share of both CPUs busy just before the run (other load on the machine).
    pub busy_before: f64,
    /// TCP SYNs retransmitted on the machine during the run: each one stalled a connect for
    /// a second (a dropped SYN), which no tracer causes.
    pub syn_retransmits: u64,
    /// Other processes holding BPF programs just before the run (other tracers on the
    /// machine, whose hooks every condition's syscalls also went through).
    /// (None: not recorded, by an older bench.)
    #[serde(default)]
    pub other_bpf_holders: Option<usize>,
}

/// The tracer side of one run.
struct Tracer {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
    _floor: Option<floor::Floor>,
}

fn spawn_logged(ctx: &Ctx, cmd: &mut Command, out: &Path, err: &Path) -> Result<Child> {
    super::setup::boost(cmd, ctx.nice);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(File::create(out)?))
        .stderr(Stdio::from(File::create(err)?))
        .spawn()
        .with_context(|| format!("start {:?}", cmd.get_program()))
}

/// CPU seconds (user + system) a live process has used so far.
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let u: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((u + st) / ticks)
}

/// Wait for a child and take its resource usage: (cpu seconds, peak RSS MiB). Sends `signal`
/// first when given (again every 3 s: bpftrace has been seen to miss one), SIGKILL if it is
/// still there after `timeout`.
fn reap(child: &mut Child, signal: Option<i32>, timeout: Duration) -> Result<(f64, f64)> {
    let pid = child.id() as i32;
    let t = Instant::now();
    let mut signalled: Option<Instant> = None;
    loop {
        if let Some(sig) = signal
            && signalled.is_none_or(|at| at.elapsed() > Duration::from_secs(3))
        {
            unsafe { libc::kill(pid, sig) };
            signalled = Some(Instant::now());
        }
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return Ok((
                tv(ru.ru_utime) + tv(ru.ru_stime),
                ru.ru_maxrss as f64 / 1024.0,
            ));
        }
        if r < 0 {
            bail!("wait4 {pid}: {}", std::io::Error::last_os_error());
        }
        if t.elapsed() > timeout {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// A BPF tool is attached once it sleeps in (e)poll with its programs loaded.
fn bpf_tool_ready(pid: u32) -> bool {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    if !wchan.contains("poll") {
        return false;
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten().any(|e| {
                std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("bpf-prog"))
            })
        })
        .unwrap_or(false)
}

fn emuwatch_ready(dir: &Path) -> bool {
    std::fs::read(dir.join("session.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v["probes"].as_array().is_some_and(|p| !p.is_empty()))
}

impl Tracer {
    fn start(ctx: &Ctx, cond: Cond, w: &Workload, wpid: u32, run_dir: &Path) -> Result<Tracer> {
        let out = run_dir.join("tracer.out");
        let err = run_dir.join("tracer.err");
        let mut t = Tracer {
            child: None,
            out: out.clone(),
            err: err.clone(),
            _floor: None,
        };
        let session = run_dir.join("session");
        let emuwatch = |target: Vec<String>| -> Result<Child> {
            let mut c = Command::new(&ctx.emuwatch);
            c.args(["record", "--quiet", "--out"])
                .arg(&session)
                .arg("--device")
                .arg(format!("camera={}", ctx.device_glob))
                .args(&ctx.emuwatch_args);
            if cond == Cond::EmuwatchNamesOff {
                c.args(["--names", "off"]);
            }
            if cond.raw_path() {
                c.args(["--syscall-probes", "raw"]);
            }
            if cond.big_ring() {
                c.args(["--ring-buffer", &ctx.big_ring]);
            }
            c.args(target);
            spawn_logged(ctx, &mut c, &out, &err)
        };
        let pid_s = wpid.to_string();
        t.child = match cond {
            Cond::None => None,
            Cond::Floor | Cond::FloorRaw | Cond::FloorRawTp | Cond::FloorTpRawSyscalls => {
                let hooks: Vec<String> = match cond {
                    Cond::Floor => ctx.hooks.clone(),
                    Cond::FloorRaw => ctx.raw_hooks.clone(),
                    Cond::FloorRawTp => RAW_TP_HOOKS.map(String::from).to_vec(),
                    _ => TP_RAW_SYSCALLS_HOOKS.map(String::from).to_vec(),
                };
                if hooks.is_empty() {
                    bail!("{}: no hooks to attach to", cond.key());
                }
                t._floor = Some(floor::attach(&hooks)?);
                None
            }
            Cond::Emuwatch
            | Cond::EmuwatchBigRing
            | Cond::EmuwatchRaw
            | Cond::EmuwatchRawBigRing
            | Cond::EmuwatchNamesOff => Some(emuwatch(vec!["--pid".into(), pid_s])?),
            Cond::EmuwatchOther | Cond::EmuwatchRawOther => {
                Some(emuwatch(vec!["--pid".into(), ctx.other_pid.to_string()])?)
            }
            Cond::EmuwatchAll => Some(emuwatch(vec!["--all".into()])?),
            Cond::Opensnoop => {
                let mut c = Command::new("opensnoop");
                if !w.multi_process {
                    c.args(["-p", &pid_s]);
                }
                Some(spawn_logged(ctx, &mut c, &out, &err)?)
            }
            Cond::Bpftrace => {
                let mut c = Command::new("bpftrace");
                c.arg("-o").arg(&out).arg(&ctx.bpftrace_script).arg(&pid_s);
                Some(spawn_logged(
                    ctx,
                    &mut c,
                    &run_dir.join("bpftrace.stdout"),
                    &err,
                )?)
            }
            Cond::Strace => {
                let mut c = Command::new("strace");
                c.args(["-f", "-o"]).arg(&out).args(["-p", &pid_s]);
                Some(spawn_logged(
                    ctx,
                    &mut c,
                    &run_dir.join("strace.stdout"),
                    &err,
                )?)
            }
        };
        // Wait until it is attached.
        let t0 = Instant::now();
        if let Some(child) = &mut t.child {
            let pid = child.id();
            loop {
                let ready = match cond {
                    c if c.is_emuwatch() => emuwatch_ready(&session),
                    Cond::Opensnoop | Cond::Bpftrace => bpf_tool_ready(pid),
                    Cond::Strace => {
                        std::fs::read_to_string(&err).is_ok_and(|s| s.contains("attached"))
                    }
                    _ => true,
                };
                if ready {
                    break;
                }
                if let Some(st) = child.try_wait()? {
                    bail!(
                        "{} exited before attaching ({st}): {}",
                        cond.key(),
                        tail(&err)
                    );
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    bail!("{} did not attach within 60 s: {}", cond.key(), tail(&err));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Output and poll loops are set up right after the last attach.
            std::thread::sleep(Duration::from_millis(150));
        }
        Ok(t)
    }
}

/// The machine's count of retransmitted SYNs (/proc/net/netstat, TcpExt TCPSynRetrans).
fn syn_retransmits() -> u64 {
    let s = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = s.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPSynRetrans")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Share of both CPUs that was busy over a short window (idle+iowait vs the rest).
fn busy_fraction(window: Duration) -> f64 {
    fn read() -> Option<(u64, u64)> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let f: Vec<u64> = s
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = f.get(3)? + f.get(4)?;
        Some((idle, f.iter().sum()))
    }
    let a = read();
    std::thread::sleep(window);
    let (Some(a), Some(b)) = (a, read()) else {
        return 0.0;
    };
    let total = (b.1 - a.1).max(1) as f64;
    1.0 - (b.0 - a.0) as f64 / total
}

/// Wait (up to 3 s) for other activity on the machine to calm down; returns the busy share
/// last seen (kept with each sample).
pub fn settle() -> f64 {
    let t = Instant::now();
    loop {
        let b = busy_fraction(Duration::from_millis(200));
        if b < 0.2 || t.elapsed() > Duration::from_secs(3) {
            return b;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn count(
    ctx: &Ctx,
    format: &str,
    file: &Path,
    pids: &[u32],
    w: &Workload,
    diag: &[&Path],
) -> Result<Value> {
    let mut c = Command::new(&ctx.benchload);
    c.args(["count", format]).arg(file);
    c.arg("--pids").arg(
        pids.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    c.args(&w.filter);
    for d in diag {
        c.arg("--diag").arg(d);
    }
    let out = c.output().context("run emuwatch-benchload count")?;
    if !out.status.success() {
        bail!("count failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Run `w` once under `cond`.
pub fn run_one(ctx: &Ctx, cond: Cond, w: &Workload, rep: usize) -> Result<Sample> {
    let run_dir = ctx
        .work
        .join("runs")
        .join(format!("{}-{}-{rep}", w.key, cond.key()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let busy_before = settle();
    let other_bpf_holders = Some(super::setup::bpf_holders(std::process::id()).len());
    let mut wl = Command::new(&ctx.benchload);
    wl.args(&w.args)
        .arg("--hold")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    super::setup::boost(&mut wl, ctx.nice);
    let mut wl = wl.spawn().context("start the workload")?;
    let wpid = wl.id();
    let mut tracer = match Tracer::start(ctx, cond, w, wpid, &run_dir) {
        Ok(t) => t,
        Err(e) => {
            let _ = wl.kill();
            let _ = wl.wait();
            return Err(e);
        }
    };
    let cpu_at_release = tracer.child.as_ref().and_then(|c| proc_cpu_s(c.id()));
    let syn_before = syn_retransmits();
    // Release the workload and read its own measurement.
    {
        let mut stdin = wl.stdin.take().context("workload stdin")?;
        stdin.write_all(b"g")?;
    }
    let mut out = String::new();
    wl.stdout
        .take()
        .context("workload stdout")?
        .read_to_string(&mut out)?;
    let st = wl.wait()?;
    let syn_during = syn_retransmits().saturating_sub(syn_before);
    if !st.success() {
        bail!("workload {} failed under {} ({st})", w.key, cond.key());
    }
    let r: Value =
        serde_json::from_str(out.trim()).with_context(|| format!("workload output {out:?}"))?;
    let mut s = Sample {
        workload: w.key.into(),
        cond: cond.key().into(),
        rep,
        elapsed_s: r["elapsed_s"].as_f64().unwrap_or(0.0),
        workload_cpu_s: r["user_s"].as_f64().unwrap_or(0.0) + r["sys_s"].as_f64().unwrap_or(0.0),
        ops: r["ops"].as_u64().unwrap_or(0),
        ops_per_s: r["ops_per_s"].as_f64().unwrap_or(0.0),
        made_opens: r["opens"].as_u64().unwrap_or(0) + r["device_opens"].as_u64().unwrap_or(0),
        made_reads: r["reads"].as_u64().unwrap_or(0),
        made_connects: r["connects"].as_u64().unwrap_or(0),
        busy_before,
        other_bpf_holders,
        syn_retransmits: syn_during,
        ..Default::default()
    };
    let pids: Vec<u32> = r["pids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_u64().map(|p| p as u32))
                .collect()
        })
        .unwrap_or_default();
    // Stop the tracer.
    if let Some(child) = &mut tracer.child {
        let (signal, timeout) = match cond {
            // Stops by itself once its targets have exited (and has drained everything).
            c if c.targeted() => (None, Duration::from_secs(300)),
            c if c.is_emuwatch() => (Some(libc::SIGTERM), Duration::from_secs(300)),
            Cond::Opensnoop | Cond::Bpftrace => (Some(libc::SIGINT), Duration::from_secs(30)),
            // Detaches when its tracee exits.
            _ => (None, Duration::from_secs(120)),
        };
        if matches!(cond, Cond::Opensnoop | Cond::Bpftrace) {
            // Let the tool drain its buffers before it is told to stop.
            std::thread::sleep(Duration::from_millis(300));
        }
        let (cpu, rss) = reap(child, signal, timeout)?;
        s.tracer_cpu_s = Some(cpu - cpu_at_release.unwrap_or(0.0));
        s.tracer_peak_rss_mib = Some(rss);
    }
    tracer.child = None;
    drop(tracer._floor.take());
    // Count what it delivered.
    let counted = match cond {
        c if c.is_emuwatch() => {
            let dir = run_dir.join("session");
            let info: Value = serde_json::from_slice(
                &std::fs::read(dir.join("session.json")).context("emuwatch session.json")?,
            )?;
            s.lost_reported = info["lost"]["total"].as_u64();
            s.tracer_events_total = info["events_total"].as_u64();
            Some(count(ctx, "emuwatch", &dir, &pids, w, &[])?)
        }
        Cond::Opensnoop => Some(count(
            ctx,
            "opensnoop",
            &tracer.out,
            &pids,
            w,
            &[&tracer.err],
        )?),
        Cond::Bpftrace => {
            let so = run_dir.join("bpftrace.stdout");
            Some(count(
                ctx,
                "bpftrace",
                &tracer.out,
                &pids,
                w,
                &[&tracer.err, &so],
            )?)
        }
        Cond::Strace => Some(count(ctx, "strace", &tracer.out, &pids, w, &[])?),
        _ => None,
    };
    if let Some(c) = counted {
        s.delivered_opens = c["opens"].as_u64();
        s.delivered_reads = c["reads"].as_u64();
        s.delivered_connects = c["connects"].as_u64();
        if !cond.is_emuwatch() {
            s.lost_reported = c["lost_reported"].as_u64();
        }
    }
    if !ctx.keep_runs {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    Ok(s)
}
