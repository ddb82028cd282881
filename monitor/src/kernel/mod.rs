//! Loading the eBPF object, writing the target maps and attaching the probe set.
pub mod btf;
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
};

pub use probes::ProbeStatus;

/// The compiled kernel programs (built by build.rs from ../monitor-ebpf).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor.bpf.o"));

/// Loss counter slots, as monitor-ebpf's `maps::loss` numbers them.
pub const LOSS_REASONS: [(u32, &str); 3] = [
    (0, "ring_buffer_full"),
    (1, "pending_map_full"),
    (2, "fd_table_full"),
];

pub struct LoadOptions {
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Pending bytes above which the kernel wakes the reader (0: wake on every event).
    pub wakeup_bytes: u64,
}

pub struct Kernel {
    pub ebpf: Ebpf,
    pub probes: Vec<ProbeStatus>,
    pub tracefs: PathBuf,
    pub tracefs_mounted_by_us: bool,
    pub cgroup2: Option<PathBuf>,
}

/// What to watch; written into the kernel's target maps before anything attaches.
#[derive(Debug, Default, Clone)]
pub struct TargetMaps {
    pub all: bool,
    pub tgids: Vec<u32>,
    pub uids: Vec<u32>,
    pub comms: Vec<String>,
    pub cgroup_ids: Vec<u64>,
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
        let (tracefs, tracefs_mounted_by_us) = system::ensure_tracefs()?;
        let cgroup2 = system::cgroup2_mount()?;
        let offsets = std::fs::read("/sys/kernel/btf/vmlinux")
            .ok()
            .and_then(|b| btf::task_offsets(&b));
        let (pid, tgid, exit_code) = offsets
            .map(|o| (o.pid, o.tgid, o.exit_code))
            .unwrap_or((0, 0, 0));
        if !opts.ring_bytes.is_power_of_two() || opts.ring_bytes < 4096 {
            bail!(
                "ring buffer size {} is not a power of two >= 4096",
                opts.ring_bytes
            );
        }
        // binder_transaction exists on Android kernels only; its offsets come from its format.
        let binder = tpformat::read(&tracefs, "binder", "binder_transaction").unwrap_or_default();
        let boff = |f: &str| binder.get(f).copied().unwrap_or(0);
        let (to_proc, reply, code) = (boff("to_proc"), boff("reply"), boff("code"));
        let mut ebpf = EbpfLoader::new()
            .override_global("BINDER_TO_PROC_OFF", &to_proc, true)
            .override_global("BINDER_REPLY_OFF", &reply, true)
            .override_global("BINDER_CODE_OFF", &code, true)
            .override_global("TASK_PID_OFF", &pid, true)
            .override_global("TASK_TGID_OFF", &tgid, true)
            .override_global("TASK_EXIT_CODE_OFF", &exit_code, true)
            .map_max_entries("EVENTS", opts.ring_bytes)
            .load(EBPF_OBJECT)
            .context("loading the eBPF object into the kernel")?;
        let mut cfg: Array<_, u64> =
            Array::try_from(ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
        cfg.set(config::WAKEUP_BYTES, opts.wakeup_bytes, 0)?;
        cfg.set(config::SELF_TGID, std::process::id() as u64, 0)?;
        Ok(Kernel {
            ebpf,
            probes: Vec::new(),
            tracefs,
            tracefs_mounted_by_us,
            cgroup2,
        })
    }

    /// Write the target maps. Call before `attach`, so no target event is missed.
    pub fn set_targets(&mut self, t: &TargetMaps) -> Result<()> {
        self.mark_target_filter(&t.tgids)?;
        let mut tgids: HashMap<_, u32, u8> =
            HashMap::try_from(self.ebpf.map_mut("TARGET_TGIDS").context("TARGET_TGIDS")?)?;
        for p in &t.tgids {
            tgids.insert(p, 1, 0)?;
        }
        let mut uids: HashMap<_, u32, u8> =
            HashMap::try_from(self.ebpf.map_mut("TARGET_UIDS").context("TARGET_UIDS")?)?;
        for u in &t.uids {
            uids.insert(u, 1, 0)?;
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
        cfg.set(config::HAVE_COMMS, !t.comms.is_empty() as u64, 0)?;
        cfg.set(config::HAVE_CGROUPS, !t.cgroup_ids.is_empty() as u64, 0)?;
        Ok(())
    }

    /// Add one process to the target set while recording.
    pub fn add_target_tgid(&mut self, tgid: u32) -> Result<()> {
        self.mark_target_filter(&[tgid])?;
        let mut tgids: HashMap<_, u32, u8> =
            HashMap::try_from(self.ebpf.map_mut("TARGET_TGIDS").context("TARGET_TGIDS")?)?;
        tgids.insert(tgid, 1, 0)?;
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
        let btf = Btf::from_sys_fs().ok();
        self.probes = probes::attach_all(&mut self.ebpf, btf.as_ref(), self.cgroup2.as_deref());
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
