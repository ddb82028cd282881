//! Loading and attaching the planned probes, one outcome per probe for `session.json`.
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr, RawTracePoint, TracePoint},
};
use serde::{Deserialize, Serialize};

use super::{Family, Hook, Hook::*, Needs::*, PROBES, Plan, ProbeSpec};

/// Outcome of loading and attaching one probe; written to `session.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub program: String,
    pub family: Family,
    /// e.g. `tracepoint syscalls/sys_enter_connect`.
    pub attach_point: String,
    pub required: bool,
    pub attached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Hook {
    pub fn describe(&self) -> String {
        match self {
            Tracepoint(c, n) => format!("tracepoint {c}/{n}"),
            BtfTracepoint(n) => format!("tp_btf {n}"),
            RawTracepoint(n) => format!("raw_tp {n}"),
            CgroupSockAddr(a) => format!("cgroup_sock_addr {a}"),
        }
    }
}

/// An attached program's link, owned: dropping it detaches the program.
pub type Link = Box<dyn Send>;

fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    btf: Option<&Btf>,
    cgroup2: Option<&Path>,
) -> Result<Link> {
    let prog = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| anyhow!("program {} missing from the eBPF object", spec.program))?;
    match spec.hook {
        Tracepoint(category, name) => {
            let p: &mut TracePoint = prog.try_into()?;
            p.load().context("load")?;
            let id = p.attach(category, name).context("attach")?;
            Ok(Box::new(p.take_link(id)?))
        }
        BtfTracepoint(name) => {
            let btf = btf.ok_or_else(|| anyhow!("kernel BTF unavailable"))?;
            let p: &mut BtfTracePoint = prog.try_into()?;
            p.load(name, btf).context("load")?;
            let id = p.attach().context("attach")?;
            Ok(Box::new(p.take_link(id)?))
        }
        RawTracepoint(name) => {
            let p: &mut RawTracePoint = prog.try_into()?;
            p.load().context("load")?;
            let id = p.attach(name).context("attach")?;
            Ok(Box::new(p.take_link(id)?))
        }
        CgroupSockAddr(_) => {
            let root = cgroup2.ok_or_else(|| anyhow!("no cgroup v2 hierarchy is mounted"))?;
            let dir =
                std::fs::File::open(root).with_context(|| format!("open {}", root.display()))?;
            let p: &mut CgroupSockAddr = prog.try_into()?;
            p.load().context("load")?;
            // aya attaches through a bpf_link where the kernel has them; cgroup links refuse
            // attach flags (EINVAL) and always coexist with other programs, so other emuwatch
            // sessions and tools keep their own hooks.
            let id = p.attach(dir, CgroupAttachMode::Single).context("attach")?;
            Ok(Box::new(p.take_link(id)?))
        }
    }
}

fn status(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    btf: Option<&Btf>,
    cgroup2: Option<&Path>,
    links: &mut Vec<Link>,
) -> ProbeStatus {
    let attach_point = match spec.hook {
        CgroupSockAddr(a) => format!(
            "cgroup_sock_addr {a} at {}",
            cgroup2
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(no cgroup v2)".into())
        ),
        h => h.describe(),
    };
    let r = attach_one(ebpf, spec, btf, cgroup2).map(|link| links.push(link));
    ProbeStatus {
        program: spec.program.to_string(),
        family: spec.family,
        attach_point,
        required: spec.required,
        attached: r.is_ok(),
        hint: r.is_err().then(|| spec.hint.to_string()),
        error: r.err().map(|e| format!("{e:#}")),
    }
}

/// Load and attach the probes of `plan`, in `PROBES` order, recording each outcome. The
/// classic raw_syscalls programs are attached only if a raw_tp one failed; then the failed
/// raw_tp programs are no longer required.
pub fn attach_all(
    ebpf: &mut Ebpf,
    plan: &Plan,
    btf: Option<&Btf>,
    cgroup2: Option<&Path>,
    links: &mut Vec<Link>,
) -> Vec<ProbeStatus> {
    let mut out: Vec<ProbeStatus> = PROBES
        .iter()
        .filter(|s| s.needs != RawFallback && plan.wants(s.needs))
        .map(|spec| status(ebpf, spec, btf, cgroup2, links))
        .collect();
    let raw_failed = PROBES
        .iter()
        .filter(|s| s.needs == Raw)
        .any(|s| out.iter().any(|p| p.program == s.program && !p.attached));
    if raw_failed {
        let fallback: Vec<ProbeStatus> = PROBES
            .iter()
            .filter(|s| s.needs == RawFallback)
            .map(|spec| status(ebpf, spec, btf, cgroup2, links))
            .collect();
        if fallback.iter().all(|p| p.attached) {
            for p in out.iter_mut().filter(|p| !p.attached) {
                if PROBES
                    .iter()
                    .any(|s| s.program == p.program && s.needs == Raw)
                {
                    p.required = false;
                }
            }
        }
        out.extend(fallback);
    }
    out
}
