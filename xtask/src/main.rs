//! Project tasks: `cargo xtask <setup|build|test|demo|bench>`. Each does its own set-up, so a
//! fresh machine needs nothing installed by hand (see README).
use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

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

fn test(extra: &[String]) -> Result<()> {
    if !is_root() {
        bail!("the tests load eBPF programs into the kernel: run them as root");
    }
    setup()?;
    // chromium: the HTML report is checked in a real browser; setpriv (util-linux): run test
    // children under other uids.
    apt_install(&[("chromium", "chromium"), ("setpriv", "util-linux")])?;
    let t = Instant::now();
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace"]).args(extra))?;
    eprintln!("xtask: all checks passed in {:.0?}", t.elapsed());
    Ok(())
}

fn build_release() -> Result<PathBuf> {
    setup()?;
    run(cargo().args(["build", "--release", "--package", "monitor"]))?;
    Ok(root().join("target/release"))
}

/// A short recording of the bundled simulated app against loopback "servers".
fn demo() -> Result<()> {
    if !is_root() {
        bail!("emuwatch loads eBPF programs: run the demo as root");
    }
    let bin = build_release()?;
    let work = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&work);
    let data = work.join("device");
    for (p, content) in [
        (
            "contacts/contacts2.db",
            "Alice +44 20 7946 0000\nBob +1 202 555 0100\n",
        ),
        ("DCIM/Camera/IMG_0001.jpg", "JPEG holiday photo"),
        ("Pictures/screenshot.png", "PNG screenshot"),
        ("sys/class/net/eth0/address", "02:00:00:44:55:66\n"),
        (
            "build.prop",
            "ro.product.model=emu64x\nro.serialno=EMULATOR35X1X11X0\n",
        ),
    ] {
        let f = data.join(p);
        std::fs::create_dir_all(f.parent().unwrap())?;
        std::fs::write(&f, content)?;
    }
    let ports = work.join("ports.txt");
    let mut servers = Command::new(bin.join("emuwatch-simapp"))
        .args(["serve", "--seconds", "60", "--ports-file"])
        .arg(&ports)
        .spawn()
        .context("start the loopback servers")?;
    let t = Instant::now();
    while !ports.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let session = root().join("sessions/demo");
    let _ = std::fs::remove_dir_all(&session);
    let status = Command::new(bin.join("emuwatch"))
        .args(["record", "--out"])
        .arg(&session)
        .arg("--")
        .arg(bin.join("emuwatch-simapp"))
        .args(["app", "--ports-file"])
        .arg(&ports)
        .arg("--data")
        .arg(&data)
        .status();
    let _ = servers.kill();
    let _ = servers.wait();
    let status = status.context("run emuwatch")?;
    if !status.success() {
        bail!("emuwatch record failed ({status})");
    }
    println!("\nThe simulated app made loopback connects, read contacts and media, then 'closed'");
    println!(
        "(oom_score_adj 0 -> 900, main process exited) while a detached service kept collecting."
    );
    println!("session directory: {}", session.display());
    println!(
        "timeline:          {}",
        session.join("events.jsonl").display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("build") => build_release().map(|_| ()),
        Some("test") => test(&args[1..]),
        Some("demo") => demo(),
        _ => {
            eprintln!("usage: cargo xtask <setup|build|test|demo>");
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
