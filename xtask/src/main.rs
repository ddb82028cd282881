//! Project tasks: `cargo xtask <setup|build|test|demo|bench|vm|soak>`. Each does its own set-up, so a
//! fresh machine needs nothing installed by hand (see README).
use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{Context, Result, bail};

mod bench;
mod soak;
mod vm;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn has(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Debian packages some tasks need besides the eBPF toolchain.
fn apt_install(pkgs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .filter(|(cmd, _)| !has(cmd))
        .map(|(_, p)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "need root to install Debian packages: {}",
            missing.join(" ")
        );
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn setup() -> Result<()> {
    run(Command::new("bash").arg(root().join("scripts/setup.sh")))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// `cargo xtask test [--no-vm | --kernel NAME...] [ARGS]`: formatting, lints and the host
/// suite (ARGS go to `cargo test`), then the capture suite in each kernel of the VM matrix.
/// `--kernel NAME` runs only that kernel's part (ARGS go to the capture binary, e.g. a test
/// name); `--no-vm` only the host part.
fn test(args: &[String]) -> Result<()> {
    let opts = vm::parse_test_args(args)?;
    if !is_root() {
        bail!("the tests load eBPF programs into the kernel: run them as root");
    }
    setup()?;
    let t = Instant::now();
    if opts.kernels.is_empty() {
        // chromium: the HTML report is checked in a real browser; setpriv (util-linux): run
        // test children under other uids; curl: the names capture test's TLS/HTTP client.
        apt_install(&[
            ("chromium", "chromium"),
            ("setpriv", "util-linux"),
            ("curl", "curl"),
        ])?;
        // DuckDB (the `duckdb` package from PyPI, in .tools/duckdb-venv): tests/fleet.rs runs
        // docs/fleet.md's query on exported sessions with it.
        run(Command::new("bash").arg(root().join("scripts/install-duckdb.sh")))?;
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
        let skip = host_binder_skips(opts.no_vm);
        let with_skips = |c: &mut Command| {
            if !skip.is_empty() {
                c.arg("--").args(&skip);
            }
        };
        let mut c = cargo();
        c.args(["test", "--workspace"]).args(&opts.rest);
        with_skips(&mut c);
        run(&mut c)?;
        // The host kernel has syscalls:* tracepoints, so the run above took the per-syscall
        // path (auto); the capture suite again on the raw-syscalls path, as Android's kernels
        // need it. Each session is checked to have used the path asked for.
        eprintln!("xtask: the capture suite again on the raw-syscalls path");
        let mut c = cargo();
        c.args(["test", "--package", "monitor", "--test", "capture"])
            .args(&opts.rest)
            .env("EMUWATCH_SYSCALL_PROBES", "raw");
        with_skips(&mut c);
        run(&mut c)?;
        if opts.rest.is_empty() {
            // The soak script itself, for 20 s (`cargo xtask soak` runs it for 10 minutes):
            // ignored by a plain `cargo test` for its length, run here.
            eprintln!("xtask: a 20-second soak (cargo xtask soak --duration 20s)");
            run(cargo().args([
                "test",
                "--package",
                "xtask",
                "--test",
                "soak",
                "--",
                "--ignored",
            ]))?;
        }
        eprintln!("xtask: host checks passed in {:.0?}", t.elapsed());
    }
    if !opts.no_vm {
        let (kernels, filter) = match opts.kernels.is_empty() {
            true => (vm::matrix(), &[][..]),
            false => (opts.kernels, &opts.rest[..]),
        };
        vm::test(&kernels, filter)?;
    }
    eprintln!("xtask: all checks passed in {:.0?}", t.elapsed());
    Ok(())
}

/// The capture tests that need `/dev/binder` (tests/capture.rs `require_binder`).
const BINDER_CAPTURE_TESTS: [&str; 3] = [
    "binder_calls_become_capabilities_per_phase",
    "binder_android10_parcels_and_a_failing_expectation",
    "binder_wifi_calls_by_api_level",
];

/// `cargo test` arguments that leave the binder capture tests out on a host kernel without
/// binder (after trying `modprobe binder_linux`), said loudly: they run in the kernel matrix,
/// whose Debian kernels have it. Empty when the host has binder.
fn host_binder_skips(no_vm: bool) -> Vec<String> {
    if !Path::new("/dev/binder").exists() {
        let _ = Command::new("modprobe")
            .args(["binder_linux", "devices=binder"])
            .stderr(std::process::Stdio::null())
            .status();
    }
    if Path::new("/dev/binder").exists() {
        return Vec::new();
    }
    eprintln!(
        "xtask: NOTE: this kernel has no binder (no /dev/binder; `modprobe binder_linux` failed): \
         the binder capture tests ({}) are NOT run on the host{}",
        BINDER_CAPTURE_TESTS.join(", "),
        if no_vm {
            ", and --no-vm skips the kernel matrix where they run: they do not run at all"
        } else {
            "; they run in every kernel of the matrix below"
        }
    );
    BINDER_CAPTURE_TESTS
        .iter()
        .flat_map(|t| ["--skip".to_string(), t.to_string()])
        .collect()
}

fn build_release() -> Result<PathBuf> {
    setup()?;
    run(cargo().args(["build", "--release", "--package", "monitor"]))?;
    Ok(root().join("target/release"))
}

/// The main job, shown on the bundled simulated app: `emuwatch run scenarios/demo.toml`. Its
/// expectations forbid background collection and the simulated app does it, so the run fails
/// (exit 1) on purpose; the demo succeeds when exactly that happens.
fn demo() -> Result<()> {
    if !is_root() {
        bail!("emuwatch loads eBPF programs: run the demo as root");
    }
    let bin = build_release()?;
    let session = root().join("sessions/demo");
    let _ = std::fs::remove_dir_all(&session);
    println!(
        "\nxtask: running scenarios/demo.toml. The simulated app keeps collecting after it is closed,\n\
         xtask: and the scenario forbids that: `emuwatch run` should FAIL (exit 1) — that is the catch.\n"
    );
    let t = Instant::now();
    let status = Command::new(bin.join("emuwatch"))
        .args(["run", "scenarios/demo.toml", "--out"])
        .arg(&session)
        .current_dir(root())
        .status()
        .context("run emuwatch")?;
    match status.code() {
        Some(1) => {}
        Some(0) => bail!(
            "every expectation held: emuwatch did not catch the simulated app's background collection"
        ),
        _ => bail!("emuwatch run failed ({status}); see the messages above"),
    }
    let text = session.join("report.txt");
    let report = std::fs::read_to_string(&text).context("read the text report")?;
    println!("\nThe report's summary:");
    for line in report
        .lines()
        .skip_while(|l| *l != "Summary")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
    {
        println!("{line}");
    }
    println!(
        "\nDemo worked as intended in {:.1?}: exit 1 above is emuwatch catching the background collection.",
        t.elapsed()
    );
    println!("session:     {}", session.display());
    println!("JUnit:       {}", session.join("junit.xml").display());
    println!("text report: {}", text.display());
    println!("HTML report: {}", session.join("report.html").display());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("build") => build_release().map(|_| ()),
        Some("test") => test(&args[1..]),
        Some("demo") => demo(),
        Some("bench") => bench::run(&args[1..]),
        Some("vm") => vm::main(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <setup|build|test|demo|bench|vm|soak>");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
