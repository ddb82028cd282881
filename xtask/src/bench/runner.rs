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

use super::{
    Ctx,
    cond::{Cond, RAW_TP_HOOKS, TP_RAW_SYSCALLS_HOOKS},
    floor,
    machine::{settle, syn_retransmits},
};

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
        let mut t = Tracer {
            child: None,
            out: run_dir.join("tracer.out"),
            err: run_dir.join("tracer.err"),
            _floor: None,
        };
        let session = run_dir.join("session");
        if cond.is_floor() {
            t._floor = Some(floor::attach(&floor_hooks(ctx, cond)?)?);
        } else {
            t.child = t.spawn(ctx, cond, w, wpid, run_dir, &session)?;
        }
        t.wait_attached(cond, &session)?;
        Ok(t)
    }

    /// Start the tracer process of `cond` (none for `Cond::None`).
    fn spawn(
        &self,
        ctx: &Ctx,
        cond: Cond,
        w: &Workload,
        wpid: u32,
        run_dir: &Path,
        session: &Path,
    ) -> Result<Option<Child>> {
        let (out, err) = (&self.out, &self.err);
        let emuwatch = |target: Vec<String>| -> Result<Child> {
            let mut c = Command::new(&ctx.emuwatch);
            c.args(["record", "--quiet", "--out"])
                .arg(session)
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
            spawn_logged(ctx, &mut c, out, err)
        };
        let pid_s = wpid.to_string();
        Ok(Some(match cond {
            Cond::Emuwatch
            | Cond::EmuwatchBigRing
            | Cond::EmuwatchRaw
            | Cond::EmuwatchRawBigRing
            | Cond::EmuwatchNamesOff => emuwatch(vec!["--pid".into(), pid_s])?,
            Cond::EmuwatchOther | Cond::EmuwatchRawOther => {
                emuwatch(vec!["--pid".into(), ctx.other_pid.to_string()])?
            }
            Cond::EmuwatchAll => emuwatch(vec!["--all".into()])?,
            Cond::Opensnoop => {
                let mut c = Command::new("opensnoop");
                if !w.multi_process {
                    c.args(["-p", &pid_s]);
                }
                spawn_logged(ctx, &mut c, out, err)?
            }
            Cond::Bpftrace => {
                let mut c = Command::new("bpftrace");
                c.arg("-o").arg(out).arg(&ctx.bpftrace_script).arg(&pid_s);
                spawn_logged(ctx, &mut c, &run_dir.join("bpftrace.stdout"), err)?
            }
            Cond::Strace => {
                let mut c = Command::new("strace");
                c.args(["-f", "-o"]).arg(out).args(["-p", &pid_s]);
                spawn_logged(ctx, &mut c, &run_dir.join("strace.stdout"), err)?
            }
            _ => return Ok(None),
        }))
    }

    /// Wait until the tracer is attached (up to 60 s).
    fn wait_attached(&mut self, cond: Cond, session: &Path) -> Result<()> {
        let Some(child) = &mut self.child else {
            return Ok(());
        };
        let t0 = Instant::now();
        let pid = child.id();
        loop {
            let ready = match cond {
                c if c.is_emuwatch() => emuwatch_ready(session),
                Cond::Opensnoop | Cond::Bpftrace => bpf_tool_ready(pid),
                Cond::Strace => {
                    std::fs::read_to_string(&self.err).is_ok_and(|s| s.contains("attached"))
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
                    tail(&self.err)
                );
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                bail!(
                    "{} did not attach within 60 s: {}",
                    cond.key(),
                    tail(&self.err)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Output and poll loops are set up right after the last attach.
        std::thread::sleep(Duration::from_millis(150));
        Ok(())
    }

    /// Stop the tracer the way it stops (by itself, or by a signal after the workload
    /// exited) and detach the floor: its CPU seconds and peak RSS, if it was a process.
    fn stop(&mut self, cond: Cond) -> Result<Option<(f64, f64)>> {
        let mut r = None;
        if let Some(child) = &mut self.child {
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
            r = Some(reap(child, signal, timeout)?);
        }
        self.child = None;
        drop(self._floor.take());
        Ok(r)
    }
}

/// The hooks a floor condition attaches its no-op programs to.
fn floor_hooks(ctx: &Ctx, cond: Cond) -> Result<Vec<String>> {
    let hooks: Vec<String> = match cond {
        Cond::Floor => ctx.hooks.clone(),
        Cond::FloorRaw => ctx.raw_hooks.clone(),
        Cond::FloorRawTp => RAW_TP_HOOKS.map(String::from).to_vec(),
        _ => TP_RAW_SYSCALLS_HOOKS.map(String::from).to_vec(),
    };
    if hooks.is_empty() {
        bail!("{}: no hooks to attach to", cond.key());
    }
    Ok(hooks)
}

/// `emuwatch-benchload count FORMAT FILE`: what a tracer's output holds of the workload.
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
    let mut tracer = match Tracer::start(ctx, cond, w, wl.id(), &run_dir) {
        Ok(t) => t,
        Err(e) => {
            let _ = wl.kill();
            let _ = wl.wait();
            return Err(e);
        }
    };
    let cpu_at_release = tracer.child.as_ref().and_then(|c| proc_cpu_s(c.id()));
    let (mut s, pids) = release(wl, cond, w)?;
    s.rep = rep;
    s.busy_before = busy_before;
    s.other_bpf_holders = other_bpf_holders;
    if let Some((cpu, rss)) = tracer.stop(cond)? {
        s.tracer_cpu_s = Some(cpu - cpu_at_release.unwrap_or(0.0));
        s.tracer_peak_rss_mib = Some(rss);
    }
    delivered(ctx, cond, w, &tracer, &run_dir, &pids, &mut s)?;
    if !ctx.keep_runs {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    Ok(s)
}

/// Release the held workload and read its own measurement: the sample's workload half, and
/// the pids it ran as.
fn release(mut wl: Child, cond: Cond, w: &Workload) -> Result<(Sample, Vec<u32>)> {
    let syn_before = syn_retransmits();
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
    let s = Sample {
        workload: w.key.into(),
        cond: cond.key().into(),
        elapsed_s: r["elapsed_s"].as_f64().unwrap_or(0.0),
        workload_cpu_s: r["user_s"].as_f64().unwrap_or(0.0) + r["sys_s"].as_f64().unwrap_or(0.0),
        ops: r["ops"].as_u64().unwrap_or(0),
        ops_per_s: r["ops_per_s"].as_f64().unwrap_or(0.0),
        made_opens: r["opens"].as_u64().unwrap_or(0) + r["device_opens"].as_u64().unwrap_or(0),
        made_reads: r["reads"].as_u64().unwrap_or(0),
        made_connects: r["connects"].as_u64().unwrap_or(0),
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
    Ok((s, pids))
}

/// Count what the tracer delivered, from its own output, into `s`.
fn delivered(
    ctx: &Ctx,
    cond: Cond,
    w: &Workload,
    tracer: &Tracer,
    run_dir: &Path,
    pids: &[u32],
    s: &mut Sample,
) -> Result<()> {
    let counted = match cond {
        c if c.is_emuwatch() => {
            let dir = run_dir.join("session");
            let info: Value = serde_json::from_slice(
                &std::fs::read(dir.join("session.json")).context("emuwatch session.json")?,
            )?;
            s.lost_reported = info["lost"]["total"].as_u64();
            s.tracer_events_total = info["events_total"].as_u64();
            Some(count(ctx, "emuwatch", &dir, pids, w, &[])?)
        }
        Cond::Opensnoop => Some(count(
            ctx,
            "opensnoop",
            &tracer.out,
            pids,
            w,
            &[&tracer.err],
        )?),
        Cond::Bpftrace => {
            let so = run_dir.join("bpftrace.stdout");
            Some(count(
                ctx,
                "bpftrace",
                &tracer.out,
                pids,
                w,
                &[&tracer.err, &so],
            )?)
        }
        Cond::Strace => Some(count(ctx, "strace", &tracer.out, pids, w, &[])?),
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
    Ok(())
}
