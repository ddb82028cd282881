//! Loading the eBPF object, writing the target maps and attaching the probe set.
pub mod btf;
pub mod kernel_log;
pub mod probes;
pub mod system;
pub mod tpformat;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
};
use monitor_common::{
    COMM_LEN, TARGET_FILTER_SLOTS, config,
    file::{FdKey, ReadAgg},
    syscall, tgid_role,
};

pub use probes::{BtfUse, CgroupHooks, NameCapture, Plan, ProbeStatus, SyscallProbes};

/// The compiled kernel programs (built by build.rs from ../monitor-ebpf).
pub(crate) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor.bpf.o"));

/// Which hooks to use, on `record`, `doctor` and `run` (environment variables give the
/// defaults, so a whole test suite can be run on either path).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct ProbeChoice {
    /// Syscall hooks: per-syscall tracepoints where the kernel has them (auto), the
    /// raw_syscalls path, or per-syscall tracepoints only.
    #[arg(
        long,
        value_enum,
        env = "EMUWATCH_SYSCALL_PROBES",
        default_value = "auto"
    )]
    pub syscall_probes: SyscallProbes,
    /// Kernel BTF for the fork/exit probes when present (auto), or classic tracepoints only
    /// (off), as on kernels without BTF.
    #[arg(long, value_enum, env = "EMUWATCH_BTF", default_value = "auto")]
    pub btf: BtfUse,
    /// cgroup v2 connect hooks (the protocol and the kernel's copy of each address) at the
    /// cgroup root (auto), or none (off): on Android that root belongs to netd's programs;
    /// without them the protocol comes from the type of sockets created while recording.
    #[arg(
        long,
        value_enum,
        env = "EMUWATCH_CGROUP_HOOKS",
        default_value = "auto"
    )]
    pub cgroup_hooks: CgroupHooks,
    /// Name capture: bounded copies of DNS messages, of the first bytes of each connection (TLS
    /// ClientHello, HTTP request) and of dnsproxyd commands (auto), or none (off).
    #[arg(long, value_enum, env = "EMUWATCH_NAMES", default_value = "auto")]
    pub names: NameCapture,
    /// The kernel programs' own diagnostics (a path or binder parcel not copied, an event lost
    /// and why) into `kernel.log` in the session and on stderr. Off: the verifier removes them.
    #[arg(long, env = "EMUWATCH_KERNEL_LOG")]
    pub kernel_log: bool,
}

pub struct LoadOptions {
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Pending bytes above which the kernel wakes the reader (0: wake on every event).
    pub wakeup_bytes: u64,
    pub probes: ProbeChoice,
}

pub struct Kernel {
    pub ebpf: Ebpf,
    pub probes: Vec<ProbeStatus>,
    pub tracefs: PathBuf,
    pub tracefs_mounted_by_us: bool,
    pub cgroup2: Option<PathBuf>,
    pub plan: Plan,
    /// The attached programs' links, detached when the `Kernel` is dropped.
    links: Vec<probes::Link>,
    /// The kernel BTF as aya reads it, being parsed (`None`: `--btf off`).
    aya_btf: Option<std::thread::JoinHandle<Option<Btf>>>,
}

impl Drop for Kernel {
    /// Detach the programs, one thread per link, so that the kernel's grace-period waits
    /// (one per perf tracepoint, 35-80 ms each) overlap where the kernel lets them.
    /// `EMUWATCH_DETACH=sequential` detaches one after another instead (for comparison in
    /// benchmarks and as a fallback). Threads were withdrawn once after a soft lockup in the
    /// Debian 5.10 test guest; that guest then ran QEMU's multi-threaded TCG, which also crashed
    /// x86 guests while they patched tracepoints (docs/kernels.md), and with one TCG thread the
    /// lockup has not come back.
    fn drop(&mut self) {
        let links = std::mem::take(&mut self.links);
        if std::env::var_os("EMUWATCH_DETACH").is_some_and(|v| v == "sequential") {
            links.into_iter().for_each(drop);
            return;
        }
        std::thread::scope(|s| {
            for link in links {
                // A thread that cannot be made (a tight task limit) drops its closure, and
                // with it the link, right here: detached in line.
                let _ = std::thread::Builder::new().spawn_scoped(s, move || drop(link));
            }
        });
    }
}

/// What to watch; written into the kernel's target maps before anything attaches.
#[derive(Debug, Default, Clone)]
pub struct TargetMaps {
    pub all: bool,
    pub tgids: Vec<u32>,
    pub uids: Vec<u32>,
    /// Android app ids (`uid % 100000`): every Android user's copy of an app (`--package`).
    pub app_ids: Vec<u32>,
    pub comms: Vec<String>,
    pub cgroup_ids: Vec<u64>,
    /// Names of resolver processes (`--resolver`): their DNS messages are copied although
    /// they are not targets.
    pub resolvers: Vec<String>,
    /// Resolver processes already running (not targets).
    pub resolver_tgids: Vec<u32>,
}

pub fn comm_key(name: &str) -> [u8; COMM_LEN] {
    // The kernel keeps the first 15 bytes of the name plus a NUL.
    let mut k = [0u8; COMM_LEN];
    for (d, s) in k.iter_mut().zip(name.as_bytes().iter().take(COMM_LEN - 1)) {
        *d = *s;
    }
    k
}

impl Kernel {
    /// Load the object with this kernel's `task_struct` offsets. Does not attach anything.
    pub fn load(opts: &LoadOptions) -> Result<Kernel> {
        // Fails without CAP_SYS_RESOURCE; harmless on >= 5.11 kernels, which account BPF
        // memory to the cgroup instead (doctor reports it).
        let _ = system::raise_memlock();
        // aya's parse of the kernel BTF, for the tp_btf programs at attach, runs beside the
        // rest of loading (the loader below parses its own copy).
        let aya_btf = (opts.probes.btf == BtfUse::Auto)
            .then(|| std::thread::spawn(|| Btf::from_sys_fs().ok()));
        let (tracefs, tracefs_mounted_by_us) = system::ensure_tracefs()?;
        let cgroup2 = system::cgroup2_mount()?;
        let (syscall_probes, syscall_probes_reason) =
            probes::choose_syscall_probes(opts.probes.syscall_probes, &tracefs)?;
        let (plan, offsets) = plan(opts, syscall_probes, syscall_probes_reason);
        let (ebpf, table) = load_object(opts, &plan, offsets, &tracefs)?;
        let mut ebpf = ebpf;
        if let Some(t) = table {
            fill_syscall_ops(&mut ebpf, t, &plan)?;
        }
        write_config(&mut ebpf, opts, &plan)?;
        Ok(Kernel {
            ebpf,
            probes: Vec::new(),
            tracefs,
            tracefs_mounted_by_us,
            cgroup2,
            plan,
            links: Vec::new(),
            aya_btf,
        })
    }

    /// Write the target maps. Call before `attach`, so no target event is missed.
    pub fn set_targets(&mut self, t: &TargetMaps) -> Result<()> {
        self.mark_target_filter(&t.tgids)?;
        // Resolvers only with name capture on, and never with --all (every process a target).
        let names = self.plan.names && !t.all;
        let resolvers: Vec<u32> = t
            .resolver_tgids
            .iter()
            .copied()
            .filter(|p| names && !t.tgids.contains(p))
            .collect();
        self.mark_target_filter(&resolvers)?;
        let mut tgids: HashMap<_, u32, u8> =
            HashMap::try_from(self.ebpf.map_mut("TARGET_TGIDS").context("TARGET_TGIDS")?)?;
        for p in &t.tgids {
            tgids.insert(p, tgid_role::TARGET, 0)?;
        }
        for p in &resolvers {
            tgids.insert(p, tgid_role::RESOLVER, 0)?;
        }
        let mut resolver_comms: HashMap<_, [u8; COMM_LEN], u8> = HashMap::try_from(
            self.ebpf
                .map_mut("RESOLVER_COMMS")
                .context("RESOLVER_COMMS")?,
        )?;
        if names {
            for c in &t.resolvers {
                resolver_comms.insert(comm_key(c), 1, 0)?;
            }
        }
        let mut uids: HashMap<_, u32, u8> =
            HashMap::try_from(self.ebpf.map_mut("TARGET_UIDS").context("TARGET_UIDS")?)?;
        for u in &t.uids {
            uids.insert(u, 1, 0)?;
        }
        let mut app_ids: HashMap<_, u32, u8> = HashMap::try_from(
            self.ebpf
                .map_mut("TARGET_APP_IDS")
                .context("TARGET_APP_IDS")?,
        )?;
        for a in &t.app_ids {
            app_ids.insert(a, 1, 0)?;
        }
        let mut comms: HashMap<_, [u8; COMM_LEN], u8> =
            HashMap::try_from(self.ebpf.map_mut("TARGET_COMMS").context("TARGET_COMMS")?)?;
        for c in &t.comms {
            comms.insert(comm_key(c), 1, 0)?;
        }
        let mut cgs: HashMap<_, u64, u8> = HashMap::try_from(
            self.ebpf
                .map_mut("TARGET_CGROUPS")
                .context("TARGET_CGROUPS")?,
        )?;
        for c in &t.cgroup_ids {
            cgs.insert(c, 1, 0)?;
        }
        let mut cfg: Array<_, u64> =
            Array::try_from(self.ebpf.map_mut("CONFIG").context("CONFIG")?)?;
        cfg.set(config::TARGET_ALL, t.all as u64, 0)?;
        cfg.set(config::HAVE_UIDS, !t.uids.is_empty() as u64, 0)?;
        cfg.set(config::HAVE_APP_IDS, !t.app_ids.is_empty() as u64, 0)?;
        cfg.set(config::HAVE_COMMS, !t.comms.is_empty() as u64, 0)?;
        cfg.set(config::HAVE_CGROUPS, !t.cgroup_ids.is_empty() as u64, 0)?;
        cfg.set(
            config::HAVE_RESOLVERS,
            (names && !t.resolvers.is_empty()) as u64,
            0,
        )?;
        Ok(())
    }

    /// Add one process to the target set while recording.
    pub fn add_target_tgid(&mut self, tgid: u32) -> Result<()> {
        self.mark_target_filter(&[tgid])?;
        let mut tgids: HashMap<_, u32, u8> =
            HashMap::try_from(self.ebpf.map_mut("TARGET_TGIDS").context("TARGET_TGIDS")?)?;
        tgids.insert(tgid, tgid_role::TARGET, 0)?;
        Ok(())
    }

    /// Open the kernel's pre-filter for these tgids (see `TARGET_FILTER_SLOTS`): every tgid in
    /// `TARGET_TGIDS` must have its slot set, or its probes never look it up.
    fn mark_target_filter(&mut self, tgids: &[u32]) -> Result<()> {
        let mut filter: Array<_, u8> = Array::try_from(
            self.ebpf
                .map_mut("TARGET_FILTER")
                .context("TARGET_FILTER")?,
        )?;
        for t in tgids {
            filter.set(t % TARGET_FILTER_SLOTS, 1, 0)?;
        }
        Ok(())
    }

    /// Attach every probe; fails (with the per-probe table kept in `self.probes`) when a
    /// required probe could not attach.
    pub fn attach(&mut self) -> Result<()> {
        let btf = self
            .aya_btf
            .take()
            .and_then(|h| h.join().ok().flatten())
            .filter(|_| self.plan.btf);
        self.probes = probes::attach_all(
            &mut self.ebpf,
            &self.plan,
            btf.as_ref(),
            self.cgroup2.as_deref(),
            &mut self.links,
        );
        let missing: Vec<String> = self
            .probes
            .iter()
            .filter(|p| p.required && !p.attached)
            .map(|p| format!("{} ({})", p.attach_point, p.error.as_deref().unwrap_or("?")))
            .collect();
        if !missing.is_empty() {
            bail!(
                "required probes failed to attach: {} — run `emuwatch doctor`",
                missing.join("; ")
            );
        }
        Ok(())
    }

    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let m = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| anyhow!("EVENTS map missing"))?;
        Ok(RingBuf::try_from(m)?)
    }

    pub fn take_fd_reads(&mut self) -> Result<HashMap<MapData, FdKey, ReadAgg>> {
        let m = self
            .ebpf
            .take_map("FD_READS")
            .ok_or_else(|| anyhow!("FD_READS map missing"))?;
        Ok(HashMap::try_from(m)?)
    }

    pub fn take_lost(&mut self) -> Result<PerCpuArray<MapData, u64>> {
        let m = self
            .ebpf
            .take_map("LOST")
            .ok_or_else(|| anyhow!("LOST map missing"))?;
        Ok(PerCpuArray::try_from(m)?)
    }
}

/// This kernel's plan: the syscall path chosen, and tp_btf fork/exit where the kernel BTF has
/// the task_struct members the programs read (their offsets, for the loader).
fn plan(
    opts: &LoadOptions,
    syscall_probes: SyscallProbes,
    syscall_probes_reason: String,
) -> (Plan, Option<btf::TaskOffsets>) {
    let vmlinux = match opts.probes.btf {
        BtfUse::Auto => std::fs::read("/sys/kernel/btf/vmlinux").ok(),
        BtfUse::Off => None,
    };
    let parsed = vmlinux.as_deref().and_then(btf::Vmlinux::parse);
    let offsets = parsed.as_ref().and_then(btf::task_offsets);
    let exit_args = parsed
        .as_ref()
        .and_then(|v| v.tracepoint_args("sched_process_exit"))
        .unwrap_or(0) as u32;
    drop(parsed);
    let plan = Plan {
        syscall_probes,
        syscall_probes_reason,
        btf: offsets.is_some(),
        btf_reason: match (opts.probes.btf, &vmlinux, offsets) {
            (BtfUse::Off, _, _) => "off (--btf off): classic tracepoints only".into(),
            (_, None, _) => {
                "no /sys/kernel/btf/vmlinux: classic tracepoints for fork and exit".into()
            }
            (_, Some(_), None) => {
                "kernel BTF lacks task_struct members emuwatch reads: classic tracepoints".into()
            }
            (_, Some(_), Some(_)) => format!(
                "kernel BTF: tp_btf fork/exit (sched_process_exit passes {exit_args} argument{})",
                if exit_args == 1 { "" } else { "s" }
            ),
        },
        exit_tracepoint_args: if offsets.is_some() { exit_args } else { 0 },
        cgroup_hooks: opts.probes.cgroup_hooks == CgroupHooks::Auto,
        names: opts.probes.names == NameCapture::Auto,
    };
    (plan, offsets)
}

/// Load the eBPF object with this kernel's offsets in its read-only globals (BTF task offsets,
/// tracepoint formats, pt_regs layout, the log level); the raw path's syscall table with it.
fn load_object(
    opts: &LoadOptions,
    plan: &Plan,
    offsets: Option<btf::TaskOffsets>,
    tracefs: &std::path::Path,
) -> Result<(Ebpf, Option<&'static syscall::SyscallTable>)> {
    let o = offsets;
    let (pid, tgid, exit_code, signal, live) = o
        .map(|o| (o.pid, o.tgid, o.exit_code, o.signal, o.signal_live))
        .unwrap_or((0, 0, 0, 0, 0));
    if !opts.ring_bytes.is_power_of_two() || opts.ring_bytes < 4096 {
        bail!(
            "ring buffer size {} is not a power of two >= 4096",
            opts.ring_bytes
        );
    }
    let machine = system::kernel_info().machine;
    let table = syscall::table_for(&machine);
    if plan.syscall_probes == SyscallProbes::Raw && table.is_none() {
        bail!("the raw-syscalls path has no syscall table for {machine} (x86_64 and aarch64 only)");
    }
    let regs = table.map(|t| t.regs);
    // binder_transaction exists where binder does; its offsets come from its format.
    let binder = tpformat::read(tracefs, "binder", "binder_transaction").unwrap_or_default();
    let boff = |f: &str| binder.get(f).copied().unwrap_or(0);
    let (to_proc, to_thread, reply) = (boff("to_proc"), boff("to_thread"), boff("reply"));
    let newtask = tpformat::read(tracefs, "task", "task_newtask").unwrap_or_default();
    let exit_tp = tpformat::read(tracefs, "sched", "sched_process_exit").unwrap_or_default();
    let field =
        |m: &std::collections::HashMap<String, u32>, f: &str| m.get(f).copied().unwrap_or(0);
    let ebpf = EbpfLoader::new()
        .override_global(
            aya_log::LEVEL,
            &kernel_log::level(opts.probes.kernel_log),
            true,
        )
        .override_global("BINDER_TO_PROC_OFF", &to_proc, true)
        .override_global("BINDER_TO_THREAD_OFF", &to_thread, true)
        .override_global("BINDER_REPLY_OFF", &reply, true)
        .override_global("TASK_PID_OFF", &pid, true)
        .override_global("TASK_TGID_OFF", &tgid, true)
        .override_global("TASK_EXIT_CODE_OFF", &exit_code, true)
        .override_global("TASK_SIGNAL_OFF", &signal, true)
        .override_global("SIGNAL_LIVE_OFF", &live, true)
        .override_global("NEWTASK_PID_OFF", &field(&newtask, "pid"), true)
        .override_global("NEWTASK_FLAGS_OFF", &field(&newtask, "clone_flags"), true)
        .override_global("EXIT_TP_PID_OFF", &field(&exit_tp, "pid"), true)
        .override_global(
            "EXIT_TP_GROUP_DEAD_OFF",
            &field(&exit_tp, "group_dead"),
            true,
        )
        .override_global(
            "PT_REGS_ARG_OFF",
            &regs.map(|r| r.args).unwrap_or([0; 6]),
            true,
        )
        .override_global("PT_REGS_NR_OFF", &regs.map(|r| r.nr).unwrap_or(0), true)
        .override_global(
            "PT_REGS_COMPAT_OFF",
            &regs.map(|r| r.compat_off).unwrap_or(0),
            true,
        )
        .override_global(
            "PT_REGS_COMPAT_MASK",
            &regs.map(|r| r.compat_mask).unwrap_or(0),
            true,
        )
        .override_global(
            "PT_REGS_COMPAT_VALUE",
            &regs.map(|r| r.compat_value).unwrap_or(0),
            true,
        )
        .map_max_entries("EVENTS", opts.ring_bytes)
        .load(EBPF_OBJECT)
        .context("loading the eBPF object into the kernel")?;
    Ok((ebpf, table))
}

/// The raw path's dispatch table: syscall number → what the programs do with it.
fn fill_syscall_ops(ebpf: &mut Ebpf, t: &syscall::SyscallTable, plan: &Plan) -> Result<()> {
    let mut ops: Array<_, u8> =
        Array::try_from(ebpf.map_mut("SYSCALL_OPS").context("SYSCALL_OPS map")?)?;
    for &(_, nr, op) in t.entries {
        // exit/exit_group only matter where the exit probe cannot read the exit code.
        if plan.btf && (op == syscall::op::EXIT || op == syscall::op::EXIT_GROUP) {
            continue;
        }
        // Without name capture, socket sends/receives are not dispatched at all.
        let op = match op {
            syscall::op::READ_NET if !plan.names => syscall::op::READ,
            o if !plan.names && syscall::op::NAMES.contains(&o) => continue,
            o => o,
        };
        ops.set(nr, op, 0)?;
    }
    Ok(())
}

/// The programs' run-time settings (`monitor_common::config`).
fn write_config(ebpf: &mut Ebpf, opts: &LoadOptions, plan: &Plan) -> Result<()> {
    let mut cfg: Array<_, u64> = Array::try_from(ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
    cfg.set(config::WAKEUP_BYTES, opts.wakeup_bytes, 0)?;
    cfg.set(config::SELF_TGID, std::process::id() as u64, 0)?;
    cfg.set(config::NAMES, plan.names as u64, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use monitor_common::syscall::{AARCH64, SyscallTable, X86_64};

    /// `#define __NR_<name> <number>` lines of a kernel UAPI header.
    fn numbers(header: &str) -> std::collections::HashMap<String, u32> {
        let text = std::fs::read_to_string(header).unwrap_or_else(|e| {
            panic!("{header}: {e} (Debian's linux-libc-dev has the kernel's syscall tables)")
        });
        text.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "#define").then_some(())?;
                let name = w.next()?.strip_prefix("__NR_")?;
                Some((name.to_string(), w.next()?.parse().ok()?))
            })
            .collect()
    }

    fn check(t: &SyscallTable, header: &str) {
        let nr = numbers(header);
        for (name, n, _) in t.entries {
            assert_eq!(nr.get(*name), Some(n), "{} {name} in {header}", t.machine);
        }
        // Every number indexes the dispatch array.
        assert!(
            t.entries
                .iter()
                .all(|(_, n, _)| *n < monitor_common::syscall::SYSCALL_SLOTS)
        );
    }

    #[test]
    fn syscall_tables_match_the_kernel_headers() {
        check(&X86_64, "/usr/include/x86_64-linux-gnu/asm/unistd_64.h");
        // arm64 uses the generic table (include/uapi/asm-generic/unistd.h).
        check(&AARCH64, "/usr/include/asm-generic/unistd.h");
        assert!(!AARCH64.entries.iter().any(|(n, _, _)| *n == "open"));
    }
}
