//! Kernel test bed: the capture suite, unchanged, inside real Debian kernels under QEMU.
//!
//! Each kernel comes from Debian's archive by package name (`vm/kernels.rs`), boots with a
//! busybox initramfs (`vm/initramfs.rs`) and sees the repository over 9p at the same absolute
//! path as on the host, so the test binary and the `CARGO_BIN_EXE_*` paths compiled into it
//! work as they are (`vm/qemu.rs`). The guest has no network device, only loopback. The capture
//! suite is run and its output read back in `vm/capture.rs`.
//!
//! `cargo xtask test` runs the matrix below after the host suite; `cargo xtask test --kernel
//! NAME` only that kernel's runs; `cargo xtask vm boot NAME [-- CMD...]` one boot, any command.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{apt_install, cargo, root};

mod capture;
mod initramfs;
mod kernels;
mod qemu;
mod smoke;

use capture::{Row, capture_binary, run_capture, summary};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// Debian's name for it.
    fn debian(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
    fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::Amd64
        }
    }
}

pub struct Kernel {
    pub name: &'static str,
    /// Debian suite whose `linux-image-<arch>` is booted (and its `-security` suite).
    pub suite: &'static str,
    pub arch: Arch,
    /// `EMUWATCH_SYSCALL_PROBES` values the capture suite runs with, one boot each. Empty: not
    /// in the test matrix (`vm boot` only).
    pub probe_paths: &'static [&'static str],
    /// More environment for every capture run on this kernel.
    pub env: &'static [(&'static str, &'static str)],
}

const BOTH: &[&str] = &["per-syscall", "raw"];

/// The kernel matrix, in one place.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "debian-5.10",
        suite: "bullseye",
        arch: Arch::Amd64,
        probe_paths: BOTH,
        // The BTF-less probe path, exercised on one kernel.
        env: &[("EMUWATCH_BTF", "off")],
    },
    Kernel {
        name: "debian-6.1",
        suite: "bookworm",
        arch: Arch::Amd64,
        probe_paths: BOTH,
        env: &[],
    },
    Kernel {
        name: "debian-6.12",
        suite: "trixie",
        arch: Arch::Amd64,
        probe_paths: BOTH,
        env: &[],
    },
    // aarch64: the smoke test (`vm/smoke.rs`: the static aarch64 build, doctor and one
    // recording on the raw path); `vm boot` gives a shell-less look around.
    Kernel {
        name: "debian-6.12-arm64",
        suite: "trixie",
        arch: Arch::Arm64,
        probe_paths: &[],
        env: &[],
    },
];

/// Test threads inside the guest unless the arguments say (`--test-threads=N`). Measured on
/// 6.1 under TCG: 1 thread 421 s, 2 threads 177 s (the tests mostly wait), 4 threads 140 s
/// but `emuwatch did not attach` within the suite's 30 s.
const TEST_THREADS: &str = "2";
/// Per boot, unless `EMUWATCH_VM_TIMEOUT` (seconds) says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub fn find(name: &str) -> Result<&'static Kernel> {
    KERNELS.iter().find(|k| k.name == name).with_context(|| {
        let known: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        format!("unknown kernel {name:?} (known: {})", known.join(", "))
    })
}

/// What `cargo xtask test` was asked for.
pub struct TestArgs {
    /// `--kernel NAME` (repeatable): only these kernels' capture runs.
    pub kernels: Vec<&'static Kernel>,
    /// `--no-vm`: only the host part.
    pub no_vm: bool,
    /// Everything else: for `cargo test` (host), or for the capture binary (with `--kernel`).
    pub rest: Vec<String>,
}

pub fn parse_test_args(args: &[String]) -> Result<TestArgs> {
    let mut t = TestArgs {
        kernels: Vec::new(),
        no_vm: false,
        rest: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => {
                t.rest.push(a.clone());
                t.rest.extend(it.by_ref().cloned());
            }
            "--no-vm" => t.no_vm = true,
            "--kernel" => {
                let name = it.next().context("--kernel needs a kernel name")?;
                t.kernels.push(find(name)?);
            }
            _ => match a.strip_prefix("--kernel=") {
                Some(name) => t.kernels.push(find(name)?),
                None => t.rest.push(a.clone()),
            },
        }
    }
    if t.no_vm && !t.kernels.is_empty() {
        bail!("--no-vm and --kernel contradict each other");
    }
    for k in &t.kernels {
        if k.probe_paths.is_empty() && k.arch != Arch::Arm64 {
            bail!(
                "{} has no capture runs in the matrix; boot it with `cargo xtask vm boot {}`",
                k.name,
                k.name
            );
        }
    }
    Ok(t)
}

/// The kernels `cargo xtask test` runs when none is named.
pub fn matrix() -> Vec<&'static Kernel> {
    KERNELS
        .iter()
        .filter(|k| !k.probe_paths.is_empty() || k.arch == Arch::Arm64)
        .collect()
}

fn host_packages(kernels: &[&Kernel]) -> Result<()> {
    let mut pkgs = vec![
        ("busybox", "busybox-static"),
        ("xz", "xz-utils"),
        ("zstd", "zstd"),
        ("depmod", "kmod"),
        ("setpriv", "util-linux"),
        // The names capture test's real TLS/HTTP client, copied into the guests.
        ("curl", "curl"),
    ];
    if kernels.iter().any(|k| k.arch == Arch::Amd64) {
        pkgs.push(("qemu-system-x86_64", "qemu-system-x86"));
    }
    if kernels.iter().any(|k| k.arch == Arch::Arm64) {
        pkgs.push(("qemu-system-aarch64", "qemu-system-arm"));
    }
    apt_install(&pkgs)
}

fn timeout() -> Result<Duration> {
    match std::env::var("EMUWATCH_VM_TIMEOUT") {
        Ok(s) => Ok(Duration::from_secs(s.parse().with_context(|| {
            format!("EMUWATCH_VM_TIMEOUT={s:?}: want seconds")
        })?)),
        Err(_) => Ok(DEFAULT_TIMEOUT),
    }
}

/// Boot `k` from `image` + `initrd` with the repository shared, running `script`; the console
/// goes to `log`, each line printed after `prefix`.
fn boot_with(
    k: &Kernel,
    image: &Path,
    initrd: &Path,
    script: &Path,
    log: &Path,
    prefix: &str,
) -> Result<qemu::Outcome> {
    qemu::boot(&qemu::Boot {
        arch: k.arch,
        kernel: image,
        initrd,
        repo: &root(),
        script,
        log,
        prefix,
        timeout: timeout()?,
    })
}

/// Single-quoted for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn write_script(path: &Path, body: &str) -> Result<()> {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n"))
        .with_context(|| format!("write {}", path.display()))
}

/// The capture test binary (and every executable built with it), built now if needed.
/// `args` go to the capture binary (a test name filter, `--exact`, ...).
pub fn test(kernels: &[&'static Kernel], args: &[String]) -> Result<()> {
    let filter = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    };
    host_packages(kernels)?;
    let (capture, executables) = capture_binary()?;
    let t = Instant::now();
    let mut rows = Vec::new();
    for k in kernels.iter().filter(|k| !k.probe_paths.is_empty()) {
        let p = kernels::prepare(k, false)?;
        let dir = root().join("target/vm").join(k.name);
        let initrd = initramfs::build(k, &p, &dir, &executables)?;
        // The kernel's probe paths boot side by side: with one TCG thread per guest (see
        // `qemu::accel_arg`) two guests keep this machine's two cores busy.
        let image = p.image();
        let runs: Vec<Result<Row>> = std::thread::scope(|s| {
            let handles: Vec<_> = k
                .probe_paths
                .iter()
                .map(|path| {
                    let (capture, initrd, image) = (&capture, &initrd, &image);
                    s.spawn(move || run_capture(k, capture, initrd, image, path, filter))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a kernel run's thread panicked"))
                .collect()
        });
        for r in runs {
            rows.push(r?);
        }
    }
    println!(
        "\nxtask: kernel matrix ({:.0}s)\n{}",
        t.elapsed().as_secs_f64(),
        summary(&rows)
    );
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{} {}", r.kernel, r.path))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} kernel runs failed: {}",
            failed.len(),
            rows.len(),
            failed.join("; ")
        );
    }
    for k in kernels.iter().filter(|k| k.arch == Arch::Arm64) {
        smoke::run(k)?;
    }
    Ok(())
}

const USAGE: &str = "usage: cargo xtask vm boot NAME [-- CMD...]   boot NAME, run CMD (sh words, cwd = repository) in it
       cargo xtask vm fetch [--refresh] [NAME...]  download and unpack kernels (--refresh: again)";

/// `cargo xtask vm ...`
pub fn main(args: &[String]) -> Result<()> {
    let names = || {
        KERNELS
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match args.first().map(String::as_str) {
        Some("boot") => {
            let name = args
                .get(1)
                .with_context(|| format!("{USAGE}\nkernels: {}", names()))?;
            let cmd = match args.get(2).map(String::as_str) {
                Some("--") | None => &args[args.len().min(3)..],
                Some(other) => bail!("unexpected {other:?}\n{USAGE}"),
            };
            boot(find(name)?, cmd)
        }
        Some("fetch") => {
            let refresh = args.get(1).is_some_and(|a| a == "--refresh");
            let named = &args[1 + usize::from(refresh)..];
            let kernels: Vec<&Kernel> = if named.is_empty() {
                KERNELS.iter().collect()
            } else {
                named.iter().map(|n| find(n)).collect::<Result<_>>()?
            };
            host_packages(&kernels)?;
            for k in kernels {
                let p = kernels::prepare(k, refresh)?;
                println!(
                    "{}: {} {} (uname -r {}) in {}",
                    k.name,
                    p.package,
                    p.version,
                    p.release,
                    p.dir.display()
                );
            }
            Ok(())
        }
        _ => bail!("{USAGE}\nkernels: {}", names()),
    }
}

/// Boot `k` and run `cmd` (words joined for the guest's sh, as ssh does) from the repository.
fn boot(k: &'static Kernel, cmd: &[String]) -> Result<()> {
    host_packages(&[k])?;
    let p = kernels::prepare(k, false)?;
    let repo = root();
    let dir = repo.join("target/vm").join(k.name);
    // Host programs named in the command, and emuwatch's own builds, get their shared
    // libraries into the guest.
    let built = ["debug", "release"]
        .iter()
        .flat_map(|p| ["emuwatch", "emuwatch-simapp"].map(|b| format!("target/{p}/{b}")));
    let programs: Vec<PathBuf> = cmd
        .iter()
        .flat_map(|w| w.split([' ', ';', '&', '|']))
        .map(String::from)
        .chain(built)
        .map(|w| repo.join(w))
        .filter(|p| p.is_file())
        .collect();
    let initrd = initramfs::build(k, &p, &dir, &programs)?;
    let run = qemu::run_dir(&repo, k.name, "boot")?;
    let script = run.join("guest-cmd.sh");
    let body = if cmd.is_empty() {
        "uname -a; ls /sys/kernel/tracing/events/raw_syscalls; ls -l /dev/binder".to_string()
    } else {
        cmd.join(" ")
    };
    write_script(&script, &body)?;
    let log = run.join("console.log");
    let o = boot_with(
        k,
        &p.image(),
        &initrd,
        &script,
        &log,
        &format!("[{}]", k.name),
    )?;
    eprintln!(
        "xtask: {} ({} {}): uname {}, BTF {}, boot {}, total {:.1}s, console log {}",
        k.name,
        p.package,
        p.version,
        o.uname.as_deref().unwrap_or("?"),
        o.btf.map_or("?", |b| if b { "yes" } else { "no" }),
        o.boot_secs.map_or("-".into(), |b| format!("{b:.1}s")),
        o.secs,
        log.display()
    );
    match o.rc {
        Some(0) => Ok(()),
        Some(rc) => bail!("the guest command exited {rc}"),
        None if o.timed_out => bail!("timed out after {:.0}s:\n{}", o.secs, o.tail(30)),
        None => bail!(
            "the guest stopped before the command finished:\n{}",
            o.tail(30)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_args() {
        let args =
            |a: &[&str]| parse_test_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let t = args(&["--kernel", "debian-6.1", "--kernel=debian-5.10", "connects"]).unwrap();
        let names: Vec<_> = t.kernels.iter().map(|k| k.name).collect();
        assert_eq!(names, ["debian-6.1", "debian-5.10"]);
        assert_eq!(t.rest, ["connects"]);
        let e = args(&["--kernel", "debian-9"]).err().unwrap().to_string();
        assert!(e.contains("known: debian-5.10, debian-6.1"), "{e}");
        // arm64 has no capture runs, but its smoke test runs by name.
        let t = args(&["--kernel", "debian-6.12-arm64"]).unwrap();
        assert_eq!(t.kernels[0].arch, Arch::Arm64);
        assert!(args(&["--no-vm", "--kernel", "debian-6.1"]).is_err());
        let t = args(&["--no-vm", "--", "--nocapture"]).unwrap();
        assert!(t.no_vm && t.kernels.is_empty());
        assert_eq!(t.rest, ["--", "--nocapture"]);
    }
}
