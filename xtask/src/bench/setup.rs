//! What the bench needs on the machine: the tools it compares against (installed from Debian
//! when missing, so a second run installs nothing), release builds of emuwatch and the
//! workloads, and a description of the machine for the results.
use std::{path::PathBuf, process::Command};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// (command, Debian package) of everything the comparison runs.
const TOOLS: &[(&str, &str)] = &[
    ("bpftrace", "bpftrace"),
    ("opensnoop", "libbpf-tools"),
    ("strace", "strace"),
    ("perf", "linux-perf"),
    ("mknod", "coreutils"),
];

pub fn install() -> Result<()> {
    crate::apt_install(TOOLS)
}

/// Release builds: emuwatch (with its eBPF object) and emuwatch-benchload. Returns the
/// directory holding both.
pub fn build() -> Result<PathBuf> {
    let bin = crate::build_release()?;
    crate::run(crate::cargo().args([
        "build",
        "--release",
        "--package",
        "xtask",
        "--bin",
        "emuwatch-benchload",
    ]))?;
    for b in ["emuwatch", "emuwatch-benchload"] {
        if !bin.join(b).is_file() {
            bail!("{} was not built", bin.join(b).display());
        }
    }
    Ok(bin)
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| {
            let s = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&s).trim().to_string()
        })
        .unwrap_or_default()
}

fn first_line(s: String) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Machine {
    pub date_utc: String,
    pub hostname: String,
    pub cpu: String,
    pub cpus: usize,
    pub memory: String,
    pub virtualization: String,
    pub os: String,
    pub kernel: String,
    pub kernel_version: String,
    pub lockdown: String,
    pub git_commit: String,
    pub tools: Vec<(String, String)>,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let hypervisor = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.contains(" hypervisor"));
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .map(|k| k.parse::<f64>().unwrap_or(0.0))
        })
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or("")
        .trim_matches('"')
        .to_string();
    let dirty = if sh("git status --porcelain --untracked-files=no | head -1").is_empty() {
        ""
    } else {
        " (with uncommitted changes)"
    };
    let tools = vec![
        (
            "emuwatch".to_string(),
            sh("./target/release/emuwatch --version"),
        ),
        ("bpftrace".to_string(), first_line(sh("bpftrace --version"))),
        (
            "libbpf-tools (opensnoop)".to_string(),
            sh("dpkg-query -W -f='${Version}' libbpf-tools"),
        ),
        ("strace".to_string(), first_line(sh("strace -V"))),
        ("perf".to_string(), first_line(sh("perf --version"))),
        ("rustc".to_string(), first_line(sh("rustc --version"))),
    ];
    Machine {
        date_utc: sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        hostname: sh("hostname"),
        cpu,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory: mem,
        virtualization: if hypervisor {
            "virtual machine (cpuinfo: hypervisor)".into()
        } else {
            "none detected".into()
        },
        os,
        kernel: sh("uname -r"),
        kernel_version: sh("uname -v"),
        lockdown: std::fs::read_to_string("/sys/kernel/security/lockdown")
            .unwrap_or_else(|_| "unknown".into())
            .trim()
            .to_string(),
        git_commit: format!("{}{dirty}", sh("git rev-parse --short HEAD")),
        tools,
    }
}

/// Runs from the repository root (relative paths above, and in the docs).
pub fn chdir_root() -> Result<()> {
    std::env::set_current_dir(crate::root())?;
    Ok(())
}
