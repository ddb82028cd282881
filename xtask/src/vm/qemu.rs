//! One boot: QEMU with the kernel, the initramfs and the repository over 9p; no network device
//! (`-nodefaults`, no `-netdev`: the guest has loopback only). The serial console is streamed
//! to the terminal with a prefix and saved; the guest's last word is `VMBED_RC=<code>`.
use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::Arch;
use crate::describe;

pub struct Boot<'a> {
    pub arch: Arch,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub repo: &'a Path,
    /// Shell script (inside the repository) the guest runs.
    pub script: &'a Path,
    pub log: &'a Path,
    /// Printed before every console line.
    pub prefix: &'a str,
    pub timeout: Duration,
}

pub struct Outcome {
    /// The guest command's exit code; None when the guest never said (crash, timeout).
    pub rc: Option<i32>,
    pub timed_out: bool,
    /// `uname -r` in the guest.
    pub uname: Option<String>,
    pub btf: Option<bool>,
    /// From QEMU's start to the guest command's start.
    pub boot_secs: Option<f64>,
    pub secs: f64,
    pub lines: Vec<String>,
}

impl Outcome {
    /// The last `n` console lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        match self.lines.len() {
            0 => "(no console output)".into(),
            len => self.lines[len.saturating_sub(n)..].join("\n"),
        }
    }
}

/// KVM only when it is the real thing. These CI machines expose `/dev/kvm` from `kvm_pvm`, a
/// paravirtual nested KVM under which stock kernels hang in early boot; KVM backed by
/// `kvm_intel`/`kvm_amd` (hardware virtualization, nested or not) is used. Anything else, or a
/// foreign architecture, is TCG. `EMUWATCH_VM_ACCEL=tcg|kvm` overrides.
pub fn accel(arch: Arch) -> &'static str {
    match std::env::var("EMUWATCH_VM_ACCEL").as_deref() {
        Ok("kvm") => return "kvm",
        Ok("tcg") => return "tcg",
        _ => {}
    }
    let module = |m: &str| Path::new("/sys/module").join(m).exists();
    let usable = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if arch == Arch::host()
        && usable
        && !module("kvm_pvm")
        && (module("kvm_intel") || module("kvm_amd"))
    {
        "kvm"
    } else {
        "tcg"
    }
}

/// The `-accel` value. An x86 guest under TCG runs its vCPUs in one host thread
/// (`thread=single`) unless `EMUWATCH_VM_TCG_THREAD=multi`: x86 kernels patch live code
/// (static calls and jump labels, each time a tracepoint gains or loses a program) with
/// `text_poke_bp`, which relies on an int3 that other CPUs stop seeing once `sync_core` has run
/// on them. QEMU 7.2's multi-threaded TCG does not honour that: the Debian 6.12 and 5.10 guests
/// died in CI with `Oops: int3` in `syscall_trace_enter` (a syscall taken while emuwatch
/// attached or detached), right after `do_sync_core`. With one thread no vCPU runs while
/// another rewrites code. (docs/kernels.md has the details.) arm64 kernels patch under `stop_machine` and keep multi-threaded TCG.
fn accel_arg(arch: Arch, accel: &str) -> String {
    let single = match std::env::var("EMUWATCH_VM_TCG_THREAD").as_deref() {
        Ok("multi") => false,
        Ok("single") => true,
        _ => arch == Arch::Amd64,
    };
    if accel == "tcg" && single {
        "tcg,thread=single".into()
    } else {
        accel.into()
    }
}

fn command(b: &Boot) -> Command {
    let accel = accel(b.arch);
    // Serial console, plus (x86) no legacy keyboard probing and no clocksource
    // recalibration: both cost seconds under TCG.
    let x86 = "console=ttyS0 i8042.noaux i8042.nokbd i8042.nopnp tsc=reliable no_timer_check";
    let (program, machine, cpu, cmdline) = match (b.arch, accel) {
        (Arch::Amd64, "kvm") => ("qemu-system-x86_64", None, "host", x86),
        (Arch::Amd64, _) => ("qemu-system-x86_64", None, "max", x86),
        // pauth-impdef: QEMU's own pointer-auth hash, much cheaper to emulate than QARMA.
        (Arch::Arm64, _) => (
            "qemu-system-aarch64",
            Some("virt"),
            "max,pauth-impdef=on",
            "console=ttyAMA0",
        ),
    };
    let mut c = Command::new(program);
    if let Some(m) = machine {
        c.args(["-M", m]);
    }
    c.args(["-accel", &accel_arg(b.arch, accel), "-cpu", cpu])
        .args(["-m", "2G", "-smp", "2"])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(b.kernel)
        .arg("-initrd")
        .arg(b.initrd)
        .arg("-append")
        .arg(format!(
            "{cmdline} quiet panic=-1 oops=panic softlockup_panic=1 mitigations=off VMBED_REPO={} VMBED_CMD={}",
            b.repo.display(),
            b.script.display()
        ))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=repo,security_model=none,id=repo",
            b.repo.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Boot, stream the console until the guest powers off or `timeout` passes, and say what
/// happened. Errors only when QEMU cannot be started or the log cannot be written.
pub fn boot(b: &Boot) -> Result<Outcome> {
    for p in [b.repo, b.script] {
        anyhow::ensure!(
            !p.to_string_lossy().contains(char::is_whitespace),
            "{} contains whitespace: it cannot go on the kernel command line",
            p.display()
        );
    }
    let mut cmd = command(b);
    eprintln!("xtask: $ {}", describe(&cmd));
    let t = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", describe(&cmd)))?;
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf);
                let _ = tx.send(line.trim_end_matches(['\r', '\n']).to_string());
                buf.clear();
            }
        });
    }
    drop(tx);

    let mut log = fs::File::create(b.log).with_context(|| format!("create {}", b.log.display()))?;
    let mut o = Outcome {
        rc: None,
        timed_out: false,
        uname: None,
        btf: None,
        boot_secs: None,
        secs: 0.0,
        lines: Vec::new(),
    };
    let deadline = t + b.timeout;
    loop {
        let line = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                o.timed_out = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        writeln!(log, "{line}")?;
        println!("{} {line}", b.prefix);
        if let Some(v) = line.strip_prefix("VMBED_UNAME=") {
            o.uname = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("VMBED_BTF=") {
            o.btf = Some(v == "yes");
        } else if line == "VMBED_START" {
            o.boot_secs = Some(t.elapsed().as_secs_f64());
        } else if let Some(v) = line.strip_prefix("VMBED_RC=") {
            o.rc = v.trim().parse().ok();
        }
        o.lines.push(line);
    }
    let _ = child.wait();
    o.secs = t.elapsed().as_secs_f64();
    Ok(o)
}

/// The per-run directory `target/vm/<name>/<run>/` (console log, guest script).
pub fn run_dir(repo: &Path, kernel: &str, run: &str) -> Result<PathBuf> {
    let d = repo.join("target/vm").join(kernel).join(run);
    fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    Ok(d)
}
