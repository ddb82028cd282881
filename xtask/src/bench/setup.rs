//! What the bench needs on the machine: the tools it compares against (installed from Debian
//! when missing, so a second run installs nothing), release builds of emuwatch and the
//! workloads, and a description of the machine for the results.
use std::{os::unix::process::CommandExt, path::PathBuf, process::Command};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// (command, Debian package) of everything the comparison runs.
const TOOLS: &[(&str, &str)] = &[
    ("bpftrace", "bpftrace"),
    ("opensnoop", "libbpf-tools"),
    ("strace", "strace"),
    ("perf", "linux-perf"),
    ("bpftool", "bpftool"),
    ("mknod", "coreutils"),
];

pub fn install() -> Result<()> {
    crate::apt_install(TOOLS)
}

/// The release build of emuwatch-benchload (the bench's and the soak's workload).
pub fn build_benchload() -> Result<()> {
    crate::run(crate::cargo().args([
        "build",
        "--release",
        "--package",
        "xtask",
        "--bin",
        "emuwatch-benchload",
    ]))
}

/// Release builds: emuwatch (with its eBPF object) and emuwatch-benchload. Returns the
/// directory holding both.
pub fn build() -> Result<PathBuf> {
    let bin = crate::build_release()?;
    build_benchload()?;
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

/// How loaded the machine was around a run (it may be shared: the figures are ratios measured
/// side by side, but the reader should know).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Load {
    /// `/proc/loadavg` as read.
    pub loadavg: String,
    /// Share of all CPUs busy over one second.
    pub busy: f64,
    /// Other processes that used at least 10 % of a CPU over that second:
    /// `comm (pid): NN % of a CPU`.
    pub others: Vec<String>,
    /// Other processes holding BPF programs or links (other tracers: their hooks are on
    /// every condition's syscalls too, "no tracer" included): `comm (pid)`.
    #[serde(default)]
    pub tracers: Vec<String>,
}

impl Load {
    pub fn others_text(&self) -> String {
        if self.others.is_empty() {
            "none".into()
        } else {
            self.others.join(", ")
        }
    }

    pub fn tracers_text(&self) -> String {
        if self.tracers.is_empty() {
            "none".into()
        } else {
            self.tracers.join(", ")
        }
    }
}

/// Processes other than this one with a BPF program or link open.
pub fn bpf_holders(me: u32) -> Vec<String> {
    let mut out = Vec::new();
    for (pid, comm, _) in process_ticks() {
        if pid == me {
            continue;
        }
        let holds = std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
            d.flatten().any(|e| {
                std::fs::read_link(e.path()).is_ok_and(|l| {
                    let l = l.to_string_lossy();
                    l.contains("bpf-prog") || l.contains("bpf_link")
                })
            })
        });
        if holds {
            out.push(format!("{comm} ({pid})"));
        }
    }
    out
}

/// utime + stime (ticks) and comm of every process.
fn process_ticks() -> Vec<(u32, String, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (s.find('('), s.rfind(')')) else {
            continue;
        };
        let comm = s[open + 1..close].to_string();
        let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.push((pid, comm, t(11) + t(12)));
    }
    out
}

fn cpu_totals() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (idle, f.iter().sum())
}

/// The machine's load now: loadavg, and who is busy over the next second (not this process).
pub fn load() -> Load {
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string();
    let before = process_ticks();
    let (idle0, total0) = cpu_totals();
    let window = std::time::Duration::from_secs(1);
    std::thread::sleep(window);
    let (idle1, total1) = cpu_totals();
    let after = process_ticks();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let me = std::process::id();
    let mut others: Vec<(f64, String)> = after
        .iter()
        .filter(|(pid, _, _)| *pid != me)
        .filter_map(|(pid, comm, t)| {
            let (_, _, t0) = before.iter().find(|(p, c, _)| p == pid && c == comm)?;
            let share = t.saturating_sub(*t0) as f64 / hz / window.as_secs_f64();
            (share >= 0.10).then(|| {
                (
                    share,
                    format!("{comm} ({pid}): {:.0} % of a CPU", share * 100.0),
                )
            })
        })
        .collect();
    others.sort_by(|a, b| b.0.total_cmp(&a.0));
    Load {
        tracers: bpf_holders(me),
        loadavg,
        busy: 1.0
            - idle1.saturating_sub(idle0) as f64 / total1.saturating_sub(total0).max(1) as f64,
        others: others.into_iter().map(|(_, s)| s).collect(),
    }
}

/// With `nice`, start `cmd` in a session of its own at that niceness. Linux groups tasks for
/// the scheduler by session (autogroups, `kernel.sched_autogroup_enabled`): a process's own
/// niceness only weighs against its session, and a CPU-bound job in another session gets an
/// equal share whatever the niceness. In its own session, with the session's autogroup set to
/// the same niceness, the measured process outweighs other jobs.
pub fn boost(cmd: &mut Command, nice: Option<i32>) {
    let Some(n) = nice else {
        return;
    };
    // Formatted before fork: nothing is allocated in the child.
    let text = format!("{n}\n");
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            let fd = libc::open(c"/proc/self/autogroup".as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, text.as_ptr().cast(), text.len());
                libc::close(fd);
            }
            if libc::setpriority(libc::PRIO_PROCESS, 0, n) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
