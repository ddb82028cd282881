//! `cargo xtask bench`: emuwatch's overhead and throughput side by side with strace, bpftrace,
//! libbpf-tools opensnoop and a no-op floor, and the cost of `emuwatch report`; the
//! raw-syscalls path (`--syscall-probes raw`) next to the per-syscall one, each against its own
//! floor; and the raw path's candidate hook types (raw_tp vs the classic `raw_syscalls`
//! tracepoints). Installs what it compares against, builds emuwatch in release, runs every
//! condition with interleaved repetitions, and writes `docs/BENCHMARKS.md` +
//! `docs/benchmarks.json`.
//!
//! ```text
//! cargo xtask bench [--quick] [--reps N] [--out DIR]
//!                   [--only overhead,sweep,report,profile,raw,hooktype,startstop,names]
//!                   [--no-install] [--keep-runs] [--ring-buffer SIZE] [--big-ring SIZE]
//!                   [--nice N]
//! cargo xtask bench floor SESSION_DIR -- CMD ARGS   (CMD with the no-op floor attached to
//!                                                    the hooks SESSION_DIR's recording used)
//! cargo xtask bench --render docs/benchmarks.json [--out DIR]   (BENCHMARKS.md again from the results)
//! ```
//! `--quick` (smaller workloads, 2 repetitions, a short sweep) writes to `target/bench/`
//! unless `--out` says otherwise, so it never replaces the published figures. With `--only`,
//! the sections not run are kept from the `benchmarks.json` already in the output directory
//! (which must come from a run of the same mode), and the results say which run measured
//! which section, with the machine's load at the start and end of each. `--nice N` starts
//! every workload, tracer and the loopback listener at that niceness, each in its own session
//! (its own scheduler autogroup): on a machine shared with other CPU-bound jobs, `--nice -20`
//! keeps them from taking the measured processes' CPU.
//! Not part of `cargo xtask test`: the figures depend on the machine and take minutes.
mod cond;
mod floor;
mod machine;
mod output;
mod overhead;
mod profile;
mod progcost;
mod reportcost;
mod runner;
pub(crate) mod setup;
mod startstop;
mod stats;
mod sweep;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything a run needs to know about the machine set-up.
pub struct Ctx {
    pub emuwatch: PathBuf,
    pub benchload: PathBuf,
    pub work: PathBuf,
    /// emuwatch's attach points, as its session.json lists them (the floor uses the same).
    pub hooks: Vec<String>,
    /// The same with `--syscall-probes raw` (empty unless the raw section runs).
    pub raw_hooks: Vec<String>,
    /// The process `emuwatch record --pid` targets while the workload runs untargeted.
    pub other_pid: u32,
    pub port: u16,
    pub small_file: PathBuf,
    pub data_dir: PathBuf,
    pub device: PathBuf,
    pub device_glob: String,
    pub bpftrace_script: PathBuf,
    pub emuwatch_args: Vec<String>,
    /// `--ring-buffer` of the "larger ring buffer" condition.
    pub big_ring: String,
    pub keep_runs: bool,
    /// `--nice`: the niceness (in its own session) of every process the bench measures.
    pub nice: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Sizes {
    pub reps: usize,
    /// strace makes workload (a) take minutes: it runs in the first `strace_reps` repetitions.
    pub strace_reps: usize,
    pub open_n: u64,
    pub connect_n: u64,
    pub mix_procs: u32,
    pub mix_rounds: u64,
    pub sweep_rates: Vec<Option<f64>>,
    pub sweep_seconds: f64,
    pub report_events: Vec<u64>,
    pub report_runs: usize,
    /// Iterations of the uncaptured-syscall loop (hook-type section).
    #[serde(default)]
    pub syscall_n: u64,
    /// Repetitions of the hook-type section (cheap runs, small differences: more of them).
    #[serde(default)]
    pub hook_type_reps: usize,
    /// Repetitions of each start/stop row.
    #[serde(default)]
    pub startstop_reps: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            reps: 5,
            strace_reps: 2,
            open_n: 200_000,
            connect_n: 20_000,
            mix_procs: 4,
            mix_rounds: 300,
            sweep_rates: [25e3, 50e3, 100e3, 200e3, 300e3, 400e3]
                .into_iter()
                .map(Some)
                .chain([None])
                .collect(),
            sweep_seconds: 2.0,
            report_events: vec![100_000, 1_000_000],
            report_runs: 3,
            syscall_n: 2_000_000,
            hook_type_reps: 7,
            startstop_reps: 7,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            reps: 2,
            strace_reps: 1,
            open_n: 20_000,
            connect_n: 2_000,
            mix_procs: 4,
            mix_rounds: 30,
            sweep_rates: vec![Some(50e3), Some(200e3), None],
            sweep_seconds: 1.0,
            report_events: vec![10_000, 100_000],
            report_runs: 1,
            syscall_n: 200_000,
            hook_type_reps: 2,
            startstop_reps: 2,
        }
    }
}

pub const SECTIONS: [&str; 8] = [
    "overhead",
    "sweep",
    "report",
    "profile",
    "raw",
    "hooktype",
    "startstop",
    "names",
];

struct Options {
    quick: bool,
    reps: Option<usize>,
    out: Option<PathBuf>,
    only: Vec<String>,
    install: bool,
    keep_runs: bool,
    emuwatch_args: Vec<String>,
    big_ring: String,
    nice: Option<i32>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        quick: false,
        reps: None,
        out: None,
        only: SECTIONS.iter().map(|s| s.to_string()).collect(),
        install: true,
        keep_runs: false,
        emuwatch_args: Vec::new(),
        big_ring: "64M".into(),
        nice: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--reps" => o.reps = Some(value()?.parse().context("--reps")?),
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--only" => {
                o.only = value()?.split(',').map(str::to_string).collect();
                if let Some(bad) = o.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    bail!(
                        "--only: unknown section {bad} (sections: {})",
                        SECTIONS.join(",")
                    );
                }
            }
            "--no-install" => o.install = false,
            "--keep-runs" => o.keep_runs = true,
            "--ring-buffer" => {
                o.emuwatch_args.push("--ring-buffer".into());
                o.emuwatch_args.push(value()?.clone());
            }
            "--big-ring" => o.big_ring = value()?.clone(),
            "--nice" => o.nice = Some(value()?.parse().context("--nice")?),
            "-h" | "--help" => {
                eprintln!("{}", USAGE);
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(o)
}

const USAGE: &str = "usage: cargo xtask bench [--quick] [--reps N] [--out DIR] [--only overhead,sweep,report,profile,raw,hooktype,startstop,names] [--no-install] [--keep-runs] [--ring-buffer SIZE] [--big-ring SIZE] [--nice N]
       cargo xtask bench floor SESSION_DIR -- CMD ARGS
       cargo xtask bench --render docs/benchmarks.json [--out DIR]";

/// Processes the bench keeps running in the background; ended when dropped.
struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn attach_points(session: &Path) -> Result<Vec<String>> {
    let v: Value = serde_json::from_slice(
        &std::fs::read(session.join("session.json"))
            .with_context(|| format!("read {}/session.json", session.display()))?,
    )?;
    Ok(v["probes"]
        .as_array()
        .context("session.json has no probes")?
        .iter()
        .filter(|p| p["attached"] == true)
        .filter_map(|p| p["attach_point"].as_str().map(str::to_string))
        .collect())
}

/// `cargo xtask bench floor SESSION_DIR -- CMD ARGS`: run one command with the floor attached.
fn floor_passthrough(args: &[String]) -> Result<()> {
    let (Some(session), Some(sep)) = (args.first(), args.get(1)) else {
        bail!("{USAGE}");
    };
    if sep != "--" || args.len() < 3 {
        bail!("{USAGE}");
    }
    let f = floor::attach(&attach_points(Path::new(session))?)?;
    eprintln!("bench: no-op floor attached to {} hooks", f.hooks.len());
    let st = Command::new(&args[2]).args(&args[3..]).status()?;
    drop(f);
    if !st.success() {
        bail!("{} failed ({st})", args[2]);
    }
    Ok(())
}

/// Files, device node, listener and the untargeted "other" process the workloads use.
fn prepare(bin: &Path, opts: &Options) -> Result<(Ctx, Background)> {
    let work = crate::root().join("target/bench/work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let files = workload_files(&work)?;
    let benchload = bin.join("emuwatch-benchload");
    let (bg, port, other_pid) = background(&benchload, &work, opts.nice)?;
    let mut ctx = Ctx {
        emuwatch: bin.join("emuwatch"),
        benchload,
        work: work.clone(),
        hooks: Vec::new(),
        raw_hooks: Vec::new(),
        other_pid,
        port,
        small_file: files.small_file,
        data_dir: files.data_dir,
        device: files.device,
        device_glob: files.device_glob,
        bpftrace_script: files.bpftrace_script,
        emuwatch_args: opts.emuwatch_args.clone(),
        big_ring: opts.big_ring.clone(),
        keep_runs: opts.keep_runs,
        nice: opts.nice,
    };
    // One short recording: warms up, and tells which hooks emuwatch attaches here (and one
    // on the raw path when that is measured).
    let probe = |name: &str, extra: &[&str]| -> Result<Vec<String>> {
        let dir = work.join(name);
        let st = Command::new(&ctx.emuwatch)
            .args(["record", "--quiet"])
            .args(extra)
            .arg("--out")
            .arg(&dir)
            .args(["--", "true"])
            .status()
            .context("run emuwatch")?;
        if !st.success() {
            bail!("emuwatch record {extra:?} failed ({st}): run `emuwatch doctor`");
        }
        attach_points(&dir)
    };
    ctx.hooks = probe("probe-session", &[])?;
    if opts
        .only
        .iter()
        .any(|s| s == "raw" || s == "hooktype" || s == "startstop")
    {
        ctx.raw_hooks = probe("probe-session-raw", &["--syscall-probes", "raw"])?;
    }
    Ok((ctx, bg))
}

/// The files the workloads open: a small file, app-like data files, a camera device node,
/// and the bpftrace script.
struct WorkloadFiles {
    small_file: PathBuf,
    data_dir: PathBuf,
    device: PathBuf,
    device_glob: String,
    bpftrace_script: PathBuf,
}

fn workload_files(work: &Path) -> Result<WorkloadFiles> {
    let small_file = work.join("small.txt");
    std::fs::write(&small_file, "x".repeat(100))?;
    let data_dir = work.join("data");
    std::fs::create_dir_all(&data_dir)?;
    for (name, size) in [
        ("contacts2.db", 16384),
        ("IMG_0001.jpg", 65536),
        ("build.prop", 2048),
        ("address", 18),
    ] {
        std::fs::write(data_dir.join(name), vec![b'd'; size])?;
    }
    // A character device node with /dev/null's numbers, matched as a camera by a
    // --device pattern (as tests/capture.rs does).
    let dev_dir = work.join("dev");
    std::fs::create_dir_all(&dev_dir)?;
    let device = dev_dir.join("video0");
    crate::run(Command::new("mknod").arg(&device).args(["c", "1", "3"]))?;
    let bpftrace_script = work.join("equivalent.bt");
    std::fs::write(&bpftrace_script, include_str!("bench/equivalent.bt"))?;
    Ok(WorkloadFiles {
        small_file,
        data_dir,
        device,
        device_glob: format!("{}/video*", dev_dir.display()),
        bpftrace_script,
    })
}

/// The loopback listener the connect workloads use, and the "other" target (`sleep`) of the
/// untargeted conditions. Returns them, the listener's port and the other target's pid.
fn background(benchload: &Path, work: &Path, nice: Option<i32>) -> Result<(Background, u16, u32)> {
    let mut bg = Background(Vec::new());
    let port_file = work.join("port");
    let mut serve = Command::new(benchload);
    serve
        .args(["serve", "--port-file"])
        .arg(&port_file)
        .stdin(Stdio::piped());
    setup::boost(&mut serve, nice);
    bg.0.push(serve.spawn().context("start the loopback listener")?);
    let t = Instant::now();
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && let Ok(p) = p.trim().parse::<u16>()
        {
            break p;
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!("the loopback listener did not start");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    bg.0.push(
        Command::new("sleep")
            .arg("1000000")
            .spawn()
            .context("start the other target")?,
    );
    let other_pid = bg.0[1].id();
    Ok((bg, port, other_pid))
}

/// Sections not run this time are kept from the results already in `json` (checked before
/// minutes of measuring, not after): a quick run and a full one never mix in one file.
fn kept_results(opts: &Options, json: &Path, mode: &str) -> Result<Option<output::Results>> {
    if !SECTIONS.iter().any(|s| !opts.only.iter().any(|o| o == s)) || !json.is_file() {
        return Ok(None);
    }
    let old = output::read(json)?;
    if old.mode != mode {
        bail!(
            "{} holds a {} run; a {mode} run with --only would mix sizes in one file: use --out DIR",
            json.display(),
            old.mode
        );
    }
    Ok(Some(old))
}

/// One line per target with its verdict, and where the results are.
fn print_verdicts(results: &output::Results, md: &Path, json: &Path) {
    for t in &results.targets {
        eprintln!(
            "bench: target {:<60} {:>10}  {}",
            t.goal,
            t.verdict(),
            t.measured
        );
    }
    eprintln!(
        "bench: wrote {} and {} in {:.0} s",
        md.display(),
        json.display(),
        results.duration_s
    );
}

pub fn run(args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) == Some("floor") {
        return floor_passthrough(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--render") {
        return match &args[1..] {
            [json] => output::render(Path::new(json), None),
            [json, o, dir] if o == "--out" => output::render(Path::new(json), Some(Path::new(dir))),
            _ => bail!("usage: cargo xtask bench --render benchmarks.json [--out DIR]"),
        };
    }
    let opts = parse(args)?;
    if !crate::is_root() {
        bail!("the bench loads eBPF programs and runs tracers: run it as root");
    }
    let started = Instant::now();
    setup::chdir_root()?;
    let mode = if opts.quick { "quick" } else { "full" };
    let out_dir = opts.out.clone().unwrap_or_else(|| {
        if opts.quick {
            crate::root().join("target/bench")
        } else {
            crate::root().join("docs")
        }
    });
    let md = out_dir.join("BENCHMARKS.md");
    let json = out_dir.join("benchmarks.json");
    let kept = kept_results(&opts, &json, mode)?;
    let load_start = setup::load();
    eprintln!(
        "bench: load at start: {} (other busy processes: {}; other processes with BPF programs: {})",
        load_start.loadavg,
        load_start.others_text(),
        load_start.tracers_text()
    );
    if opts.install {
        setup::install()?;
    }
    let bin = setup::build()?;
    let mut sizes = if opts.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(r) = opts.reps {
        sizes.reps = r.max(1);
    }
    let (ctx, _bg) = prepare(&bin, &opts)?;
    let machine = setup::machine();
    let want = |s: &str| opts.only.iter().any(|o| o == s);

    let mut results = new_results(mode, args, machine, &sizes, &ctx, want("raw"));
    measure(&ctx, &sizes, &want, &mut results)?;
    results.duration_s = started.elapsed().as_secs_f64();
    let load_end = setup::load();
    eprintln!(
        "bench: load at end: {} (other busy processes: {}; other processes with BPF programs: {})",
        load_end.loadavg,
        load_end.others_text(),
        load_end.tracers_text()
    );
    let this_run = output::RunInfo {
        sections: SECTIONS
            .iter()
            .filter(|s| want(s))
            .map(|s| s.to_string())
            .collect(),
        command: results.command.clone(),
        mode: results.mode.clone(),
        machine: results.machine.clone(),
        sizes: sizes.clone(),
        duration_s: results.duration_s,
        load_start: Some(load_start),
        load_end: Some(load_end),
    };
    if let Some(old) = kept {
        output::keep_sections(&mut results, old, &this_run.sections);
    }
    results.runs.push(this_run);
    results.targets = output::targets(&results);
    std::fs::create_dir_all(&out_dir)?;
    output::write(&results, &md, &json)?;
    print_verdicts(&results, &md, &json);
    if !ctx.keep_runs {
        let _ = std::fs::remove_dir_all(&ctx.work);
    }
    Ok(())
}

/// Empty results for this run: what it is, where, with which sizes and hooks.
fn new_results(
    mode: &str,
    args: &[String],
    machine: setup::Machine,
    sizes: &Sizes,
    ctx: &Ctx,
    raw: bool,
) -> output::Results {
    output::Results {
        mode: mode.into(),
        command: std::iter::once("cargo xtask bench".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        machine,
        sizes: sizes.clone(),
        hooks: ctx.hooks.clone(),
        big_ring: ctx.big_ring.clone(),
        workloads: Vec::new(),
        samples: Vec::new(),
        summaries: Vec::new(),
        sweep: Vec::new(),
        report: Vec::new(),
        profiles: Vec::new(),
        targets: Vec::new(),
        duration_s: 0.0,
        raw_hooks: ctx.raw_hooks.clone(),
        raw_reference_hooks: if raw { ctx.hooks.clone() } else { Vec::new() },
        raw_workloads: Vec::new(),
        raw_samples: Vec::new(),
        raw_summaries: Vec::new(),
        hook_type_workloads: Vec::new(),
        hook_type_samples: Vec::new(),
        hook_type_summaries: Vec::new(),
        startstop: Vec::new(),
        names_workloads: Vec::new(),
        names_samples: Vec::new(),
        names_summaries: Vec::new(),
        runs: Vec::new(),
    }
}

/// Measure the sections asked for, each with its workloads and conditions interleaved.
fn measure(
    ctx: &Ctx,
    sizes: &Sizes,
    want: &dyn Fn(&str) -> bool,
    results: &mut output::Results,
) -> Result<()> {
    let describe = |ws: &[runner::Workload]| -> Vec<(String, String)> {
        ws.iter()
            .map(|w| (w.key.to_string(), overhead::describe(w.key, sizes)))
            .collect()
    };
    let no_skip = |_: &runner::Workload, _: cond::Cond| false;
    let keys = |ws: &[runner::Workload]| ws.iter().map(|w| w.key).collect::<Vec<_>>();
    if want("overhead") {
        let ws = overhead::workloads(ctx, sizes);
        results.workloads = describe(&ws);
        let conds = cond::Cond::OVERHEAD;
        results.samples = overhead::run(ctx, &ws, &conds, &no_skip, sizes.reps, sizes.strace_reps)?;
        results.summaries = overhead::summarize(&results.samples, &keys(&ws), &conds);
    }
    if want("raw") {
        let ws = overhead::workloads(ctx, sizes);
        results.raw_workloads = describe(&ws);
        let conds = cond::Cond::RAW;
        results.raw_samples = overhead::run(ctx, &ws, &conds, &no_skip, sizes.reps, 0)?;
        results.raw_summaries = overhead::summarize(&results.raw_samples, &keys(&ws), &conds);
    }
    if want("hooktype") {
        let ws = overhead::hook_type_workloads(ctx, sizes);
        results.hook_type_workloads = describe(&ws);
        let conds = cond::Cond::HOOK_TYPE;
        // emuwatch itself only where the workload's syscalls are all uncaptured ones: on (a)
        // the raw section has it.
        let skip = |w: &runner::Workload, c: cond::Cond| c.is_emuwatch() && w.key == "open";
        results.hook_type_samples =
            overhead::run(ctx, &ws, &conds, &skip, sizes.hook_type_reps.max(1), 0)?;
        results.hook_type_summaries =
            overhead::summarize(&results.hook_type_samples, &keys(&ws), &conds);
    }
    if want("names") {
        let ws = overhead::names_workloads(ctx, sizes);
        results.names_workloads = describe(&ws);
        let conds = cond::Cond::NAMES;
        results.names_samples = overhead::run(ctx, &ws, &conds, &no_skip, sizes.reps, 0)?;
        results.names_summaries = overhead::summarize(&results.names_samples, &keys(&ws), &conds);
    }
    if want("startstop") {
        results.startstop = startstop::run(ctx, sizes.startstop_reps.max(1))?;
    }
    if want("sweep") {
        results.sweep = sweep::run(ctx, &sizes.sweep_rates, sizes.sweep_seconds)?;
    }
    if want("report") {
        results.report = reportcost::run(
            ctx,
            &sizes.report_events,
            &["text", "json", "html"],
            sizes.report_runs,
        )?;
    }
    if want("profile") {
        match profile::run(
            ctx,
            sizes.open_n,
            *sizes.report_events.last().unwrap_or(&100_000),
        ) {
            Ok(p) => results.profiles = p,
            Err(e) => eprintln!("bench: warning: no profiles ({e:#})"),
        }
    }
    Ok(())
}
