//! `emuwatch doctor`: what this kernel supports and whether every probe loads and attaches.
use anyhow::Result;

use crate::{
    kernel::{Kernel, LoadOptions, ProbeChoice, SyscallProbes, TargetMaps, system},
    live::printable,
};

pub struct DoctorReport {
    pub lines: Vec<String>,
    pub ok: bool,
}

fn check(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

pub fn doctor(choice: ProbeChoice) -> Result<DoctorReport> {
    let mut lines = Vec::new();
    let mut ok = true;
    system_lines(&mut lines);
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        lines.push(format!("FAIL root       running as uid {euid}: loading eBPF needs root (or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN)"));
        return Ok(DoctorReport { lines, ok: false });
    }
    if !system::raise_memlock() {
        lines.push("     memlock    setrlimit(RLIMIT_MEMLOCK) refused; harmless on Linux >= 5.11 (memcg accounting)".into());
    }
    let cg = system::cgroup2_mount()?;
    lines.push(format!(
        "{} cgroup v2  {}",
        check(cg.is_some()),
        cg.as_ref()
            .map(|p| format!("mounted at {} (from /proc/self/mountinfo)", p.display()))
            .unwrap_or_else(|| "not mounted: connect protocol and --cgroup need it (mount -t cgroup2 none /sys/fs/cgroup)".into())
    ));
    let mut kernel = match Kernel::load(&LoadOptions {
        ring_bytes: 1 << 16,
        wakeup_bytes: 0,
        probes: choice,
    }) {
        Ok(k) => k,
        Err(e) => {
            lines.push(format!("FAIL load      {}", printable(&format!("{e:#}"))));
            return Ok(DoctorReport { lines, ok: false });
        }
    };
    plan_lines(&kernel, &mut lines);
    // An empty target set: probes attach but nothing is a target, so nothing is emitted.
    kernel.set_targets(&TargetMaps::default())?;
    let _ = kernel.attach();
    ok &= probe_lines(&kernel, &mut lines);
    Ok(DoctorReport { lines, ok })
}

/// The kernel, its BTF and lockdown mode.
fn system_lines(lines: &mut Vec<String>) {
    let k = system::kernel_info();
    lines.push(format!(
        "kernel      {} ({}) {}",
        k.release, k.machine, k.version
    ));
    let btf = system::btf_present();
    lines.push(format!(
        "     BTF        {}",
        if btf {
            "/sys/kernel/btf/vmlinux present".to_string()
        } else {
            "missing (no CONFIG_DEBUG_INFO_BTF): classic tracepoints for fork/exit; exit codes of processes killed by a signal are unknown".to_string()
        }
    ));
    let lockdown = system::lockdown();
    lines.push(format!(
        "     lockdown   {}",
        match lockdown.as_deref() {
            Some("confidentiality") =>
                "confidentiality: kernel memory reads are refused; tracepoints still work"
                    .to_string(),
            Some(m) => m.to_string(),
            None => "unknown (securityfs not mounted or no lockdown LSM)".to_string(),
        }
    ));
}

/// The plan this kernel gets: tracefs, syscall path, fork/exit hooks, cgroup hooks, binder.
fn plan_lines(kernel: &Kernel, lines: &mut Vec<String>) {
    lines.push(format!(
        "ok   tracefs    {}{}",
        kernel.tracefs.display(),
        if kernel.tracefs_mounted_by_us {
            " (was not mounted; emuwatch mounted it)"
        } else {
            ""
        }
    ));
    let plan = &kernel.plan;
    lines.push(format!(
        "ok   syscalls   {} path: {}",
        match plan.syscall_probes {
            SyscallProbes::Raw => "raw-syscalls",
            _ => "per-syscall",
        },
        plan.syscall_probes_reason
    ));
    if plan.syscall_probes == SyscallProbes::Raw {
        lines.push(
            "     compat     32-bit processes' syscalls are counted as not decoded (lost: compat_syscall_not_decoded), not guessed"
                .into(),
        );
    }
    lines.push(format!("ok   fork/exit  {}", plan.btf_reason));
    if !plan.cgroup_hooks {
        lines.push("     connect    cgroup hooks off (--cgroup-hooks off): the protocol comes from socket() of sockets created while recording, the address from user memory".into());
    }
    let binder = system::has_binder_tracepoints(&kernel.tracefs);
    lines.push(format!(
        "     binder     {}",
        if binder {
            "binder tracepoints present (the callee of each binder call is known)"
        } else {
            "no binder tracepoints on this kernel: binder calls are still decoded from BINDER_WRITE_READ ioctls, without their callee"
        }
    ));
}

/// One line per probe and the verdict; false when a required probe did not attach.
fn probe_lines(kernel: &Kernel, lines: &mut Vec<String>) -> bool {
    let mut ok = true;
    lines.push("probes:".into());
    for p in &kernel.probes {
        let status = match (p.attached, p.required) {
            (true, _) => "ok  ",
            (false, true) => "FAIL",
            (false, false) => "skip",
        };
        ok &= p.attached || !p.required;
        lines.push(format!(
            "  {status} {:<10} {:<44} {}",
            p.family, p.attach_point, p.program
        ));
        if let Some(e) = &p.error {
            lines.push(format!("         error: {}", printable(e)));
            if let Some(h) = &p.hint {
                lines.push(format!("         note:  {h}"));
            }
        }
    }
    let required = kernel.probes.iter().filter(|p| p.required).count();
    let attached = kernel.probes.iter().filter(|p| p.attached).count();
    lines.push(format!(
        "{}: {attached}/{} probes attached ({required} required)",
        if ok {
            "base probe set works"
        } else {
            "base probe set INCOMPLETE"
        },
        kernel.probes.len()
    ));
    ok
}
