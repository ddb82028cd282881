//! The plan: which alternatives this kernel gets, chosen by feature detection (tracefs event
//! directories, BTF), never by kernel version.
use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::{Hook::*, Needs, Needs::*, PROBES};

/// `--syscall-probes`: which syscall hooks to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SyscallProbes {
    /// Per-syscall tracepoints where the kernel has them, else the raw path.
    #[default]
    Auto,
    /// `raw_syscalls` sys_enter/sys_exit, dispatching on the syscall number.
    Raw,
    /// `syscalls:sys_enter_*` / `sys_exit_*` tracepoints (kernels with CONFIG_FTRACE_SYSCALLS).
    PerSyscall,
}

/// `--btf`: use kernel BTF (tp_btf programs) when present, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BtfUse {
    #[default]
    Auto,
    /// Classic tracepoints only, as on kernels without BTF (for testing that path).
    Off,
}

/// `--names`: capture the bytes that name destinations (auto) or not (off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NameCapture {
    #[default]
    Auto,
    Off,
}

/// `--cgroup-hooks`: attach the cgroup connect hooks (auto) or not (off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupHooks {
    #[default]
    Auto,
    Off,
}

/// What this kernel gets, and why; written to `session.json` and shown by `doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `per-syscall` or `raw`.
    pub syscall_probes: SyscallProbes,
    pub syscall_probes_reason: String,
    /// tp_btf programs in use (kernel BTF present and not turned off).
    pub btf: bool,
    pub btf_reason: String,
    /// Arguments `sched_process_exit` passes to tp_btf programs (1 or 2; 0 without BTF).
    pub exit_tracepoint_args: u32,
    /// The cgroup connect hooks are tried (not turned off with `--cgroup-hooks off`).
    #[serde(default = "yes")]
    pub cgroup_hooks: bool,
    /// Name capture (DNS, TLS server names, HTTP requests) is on (`--names auto`).
    #[serde(default)]
    pub names: bool,
}

fn yes() -> bool {
    true
}

/// The per-syscall tracepoints that the per-syscall path cannot do without.
pub fn required_syscall_tracepoints() -> impl Iterator<Item = &'static str> {
    PROBES.iter().filter_map(|p| match (p.needs, p.hook) {
        (PerSyscall, Tracepoint("syscalls", name)) if p.required => Some(name),
        _ => None,
    })
}

/// Choose the syscall path: per-syscall tracepoints where tracefs lists every required one.
pub fn choose_syscall_probes(
    requested: SyscallProbes,
    tracefs: &Path,
) -> Result<(SyscallProbes, String)> {
    let events = tracefs.join("events");
    let missing: Vec<&str> = required_syscall_tracepoints()
        .filter(|n| !events.join("syscalls").join(n).is_dir())
        .collect();
    let raw_present = events.join("raw_syscalls").is_dir();
    Ok(match requested {
        SyscallProbes::PerSyscall if !missing.is_empty() => bail!(
            "--syscall-probes per-syscall: this kernel has no {} tracepoint{} under {} (built without CONFIG_FTRACE_SYSCALLS, like Android's GKI kernels); use --syscall-probes raw or auto",
            missing
                .iter()
                .map(|n| format!("syscalls:{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() == 1 { "" } else { "s" },
            events.join("syscalls").display()
        ),
        SyscallProbes::PerSyscall => (
            SyscallProbes::PerSyscall,
            "requested with --syscall-probes per-syscall".into(),
        ),
        SyscallProbes::Raw => (
            SyscallProbes::Raw,
            "requested with --syscall-probes raw".into(),
        ),
        SyscallProbes::Auto if missing.is_empty() => (
            SyscallProbes::PerSyscall,
            "auto: the kernel has syscalls:* tracepoints".into(),
        ),
        SyscallProbes::Auto => (
            SyscallProbes::Raw,
            format!(
                "auto: no syscalls:* tracepoints ({} of {} missing; kernel built without CONFIG_FTRACE_SYSCALLS, as Android's GKI kernels are){}",
                missing.len(),
                required_syscall_tracepoints().count(),
                if raw_present {
                    ""
                } else {
                    "; raw_syscalls is not listed in tracefs either"
                }
            ),
        ),
    })
}

impl Plan {
    pub(super) fn wants(&self, needs: Needs) -> bool {
        let per_syscall = self.syscall_probes == SyscallProbes::PerSyscall;
        match needs {
            Always => true,
            PerSyscall => per_syscall,
            Raw | RawFallback => !per_syscall,
            Btf => self.btf,
            BtfExitGroupDead => self.btf && self.exit_tracepoint_args >= 2,
            BtfExitTaskOnly => self.btf && self.exit_tracepoint_args == 1,
            NoBtf => !self.btf,
            PerSyscallNoBtf => per_syscall && !self.btf,
            Cgroup => self.cgroup_hooks,
            PerSyscallNames => per_syscall && self.names,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake tracefs: `events/<category>/<name>/` directories.
    fn tracefs(events: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for e in events {
            std::fs::create_dir_all(d.path().join("events").join(e)).unwrap();
        }
        d
    }

    #[test]
    fn auto_picks_raw_without_syscalls_tracepoints() {
        let t = tracefs(&[
            "raw_syscalls/sys_enter",
            "raw_syscalls/sys_exit",
            "sched/sched_process_exec",
        ]);
        let (path, why) = choose_syscall_probes(SyscallProbes::Auto, t.path()).unwrap();
        assert_eq!(path, SyscallProbes::Raw);
        assert!(why.contains("CONFIG_FTRACE_SYSCALLS"), "{why}");
    }

    #[test]
    fn auto_picks_per_syscall_where_all_exist() {
        let names: Vec<String> = required_syscall_tracepoints()
            .map(|n| format!("syscalls/{n}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let t = tracefs(&refs);
        let (path, _) = choose_syscall_probes(SyscallProbes::Auto, t.path()).unwrap();
        assert_eq!(path, SyscallProbes::PerSyscall);
        // One missing required tracepoint is enough to fall back to raw.
        std::fs::remove_dir(t.path().join("events/syscalls/sys_enter_connect")).unwrap();
        let (path, _) = choose_syscall_probes(SyscallProbes::Auto, t.path()).unwrap();
        assert_eq!(path, SyscallProbes::Raw);
    }

    #[test]
    fn forcing_per_syscall_without_them_is_one_clear_line() {
        let t = tracefs(&["raw_syscalls/sys_enter"]);
        let e = choose_syscall_probes(SyscallProbes::PerSyscall, t.path())
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("syscalls:sys_enter_openat"), "{e}");
        assert!(e.contains("syscalls:sys_exit_connect"), "{e}");
        assert!(e.contains("--syscall-probes raw"), "{e}");
    }

    #[test]
    fn no_program_has_two_rows() {
        let mut seen = std::collections::HashSet::new();
        for p in PROBES {
            assert!(seen.insert(p.program), "{} twice", p.program);
        }
    }

    #[test]
    fn each_plan_has_one_fork_and_one_exit_probe() {
        for syscall_probes in [SyscallProbes::PerSyscall, SyscallProbes::Raw] {
            for (btf, args) in [(true, 2), (true, 1), (false, 0)] {
                let plan = Plan {
                    syscall_probes,
                    syscall_probes_reason: String::new(),
                    btf,
                    btf_reason: String::new(),
                    exit_tracepoint_args: args,
                    cgroup_hooks: true,
                    names: true,
                };
                let hooks: Vec<String> = PROBES
                    .iter()
                    .filter(|p| plan.wants(p.needs) && p.needs != RawFallback)
                    .map(|p| p.hook.describe())
                    .collect();
                let count = |needle: &str| hooks.iter().filter(|h| h.contains(needle)).count();
                assert_eq!(count("sched_process_exit"), 1, "{plan:?}: {hooks:?}");
                assert_eq!(
                    count("sched_process_fork") + count("task_newtask"),
                    1,
                    "{plan:?}"
                );
                let raw = count("raw_tp sys_");
                let per = count("tracepoint syscalls/");
                if syscall_probes == SyscallProbes::Raw {
                    assert_eq!((raw, per), (2, 0), "{plan:?}");
                } else {
                    assert_eq!(raw, 0, "{plan:?}");
                    assert!(per > 20, "{plan:?}");
                }
            }
        }
    }
}
