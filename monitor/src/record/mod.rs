//! `emuwatch record`: choose targets, load and attach the probes, run the capture until the
//! targets have exited, the duration is over, or Ctrl-C / SIGTERM.
use crate::event::StopReason;
use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use aya::maps::{MapData, RingBuf};
use chrono::Utc;
use tokio::io::unix::AsyncFd;

use crate::{
    capture::Capture,
    enrich::{
        Enricher,
        android::{PER_USER_RANGE, PackagesList},
        files::DevicePatterns,
        process::ProcessTable,
    },
    event::SCHEMA_VERSION,
    geo::Geo,
    kernel::{Kernel, LoadOptions, ProbeChoice, TargetMaps, system},
    live::LiveView,
    session::{Lost, SessionInfo, SessionWriter, TargetSpec, hostname},
};

mod args;
mod command;
mod event_loop;
mod procs;

pub use args::{parse_duration, parse_max_size, parse_poll, parse_record_duration, parse_size};
pub use command::check_program;
use command::{start_command, stop_started};
use event_loop::{Signals, drain, event_loop};
pub(crate) use procs::alive;
use procs::{cgroup_id, descendants, processes_named, processes_with_uids};
pub use procs::{check_privileges, lookup_user};

#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub target: TargetSpec,
    pub packages_list: PathBuf,
    pub out: Option<PathBuf>,
    pub duration: Option<Duration>,
    pub ring_bytes: u32,
    pub wakeup_bytes: Option<u64>,
    pub poll: Duration,
    pub quiet: bool,
    pub device_patterns: Vec<String>,
    pub geoip_country: Option<PathBuf>,
    pub geoip_asn: Option<PathBuf>,
    /// Stop when a `command` / `pid` target tree has exited (`emuwatch record`). `emuwatch run`
    /// turns this off: its steps decide when the recording ends (a stop request on the
    /// control socket).
    pub stop_when_targets_exit: bool,
    /// Where the target command's stdout and stderr go (default: inherited).
    pub command_output: Option<PathBuf>,
    pub probes: ProbeChoice,
    /// Leave the command emuwatch started running when the recording ends (default: stop its
    /// whole tree, SIGTERM then SIGKILL after [`STOP_GRACE`]).
    pub leave_running: bool,
    /// Run the command as this (uid, gid), supplementary groups dropped (`run --run-as`).
    pub run_as: Option<(u32, u32)>,
    /// Stop when events.jsonl has reached this many bytes (`--max-size`).
    pub max_size: Option<u64>,
    pub binder: crate::enrich::binder::BinderChoice,
    /// `--label key=value`: recorded in session.json's `labels`.
    pub labels: BTreeMap<String, String>,
}

/// How long the started command's processes get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

pub struct RecordOutcome {
    pub dir: PathBuf,
    pub info: SessionInfo,
}

pub fn default_session_dir() -> PathBuf {
    PathBuf::from("sessions").join(Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string())
}

pub async fn record(opts: RecordOptions) -> Result<RecordOutcome> {
    let mut target = opts.target.clone();
    // Resolvers are part of name capture; with --all every process is a target already.
    if opts.probes.names == crate::kernel::NameCapture::Off || target.all {
        target.resolvers.clear();
    }
    check_selectors(&target)?;
    check_privileges("emuwatch record")?;
    // From here on, SIGINT / SIGTERM end the recording cleanly (a signal that arrives while the
    // probes attach is seen by the loop at once): the default action would leave a half-written
    // session and the command running.
    let signals = Signals::install()?;
    let packages = load_packages(&opts)?;
    let mut maps = target_maps(&target, &packages, &opts)?;
    let devices = DevicePatterns::new(&opts.device_patterns)?;
    let (binder_rules, android_api) = opts.binder.resolve()?;
    let geo = Geo::from_env_and_defaults(opts.geoip_country.clone(), opts.geoip_asn.clone())?;
    if !target.command.is_empty() {
        check_program(&target.command)?;
    }

    let dir = opts.out.clone().unwrap_or_else(default_session_dir);
    let mut kernel = Kernel::load(&LoadOptions {
        ring_bytes: opts.ring_bytes,
        wakeup_bytes: opts.wakeup_bytes.unwrap_or(opts.ring_bytes as u64 / 4),
        probes: opts.probes,
    })?;
    for cg in &target.cgroups {
        maps.cgroup_ids
            .push(cgroup_id(cg, kernel.cgroup2.as_deref())?);
    }
    kernel.set_targets(&maps)?;

    let info = session_info(&opts, &target, &kernel, &android_api);
    let mut writer = SessionWriter::create(&dir, info)?;
    let attached = kernel.attach();
    writer.info.probes = kernel.probes.clone();
    if let Err(e) = attached {
        writer.info.stop_reason = Some(StopReason::Error);
        writer.info.ended_at = Some(Utc::now());
        writer.write_info()?;
        return Err(e);
    }

    let ring = kernel.take_ring()?;
    let fd_reads = kernel.take_fd_reads()?;
    let lost = kernel.take_lost()?;
    let enricher = Enricher::new(
        ProcessTable::new(packages),
        devices,
        geo,
        system::monotonic_to_realtime_offset(),
    )
    .with_binder(Some(binder_rules), Some(android_api.level))
    .with_resolvers(&target.resolvers);
    let mut capture = Capture::new(enricher, writer, LiveView::new(opts.quiet), fd_reads, lost);
    if opts.probes.kernel_log {
        let dir = capture.writer.dir().to_path_buf();
        let loss_name = |slot| {
            crate::capability::LossReason::ALL
                .iter()
                .find(|r| r.slot() == slot)
                .map(|r| r.as_str())
        };
        match crate::kernel::kernel_log::start(&mut kernel.ebpf, &dir, !opts.quiet, loss_name) {
            Ok(l) => capture.kernel_log = Some(l),
            Err(e) => return Err(fail(capture, kernel, e)),
        }
    }
    capture.live_pids.extend(maps.tgids.iter().copied());
    for &tgid in &maps.tgids {
        if let Some(adj) = crate::enrich::read_oom_score_adj(tgid) {
            capture.enricher.procs.seed_adj(tgid, adj);
        }
    }

    // Spawn the command only now: everything is attached, and it becomes a target before exec.
    let mut child = None;
    if !target.command.is_empty() {
        match start_command(&mut capture, &mut kernel, &mut target, &opts) {
            Ok(pid) => child = Some(pid),
            Err(e) => return Err(fail(capture, kernel, e)),
        }
    }
    capture.writer.write_info()?;
    let stop_when_exited =
        opts.stop_when_targets_exit && (!target.command.is_empty() || !target.pids.is_empty());

    capture_until_stop(
        capture,
        kernel,
        ring,
        child,
        signals,
        stop_when_exited,
        &opts,
    )
    .await
}

/// The recording proper: control socket, event loop, stopping the command, the last drain and
/// session.json's final state. Any error ends the session with `stop_reason: error`.
async fn capture_until_stop(
    mut capture: Capture,
    kernel: Kernel,
    ring: RingBuf<MapData>,
    mut child: Option<u32>,
    mut signals: Signals,
    stop_when_exited: bool,
    opts: &RecordOptions,
) -> Result<RecordOutcome> {
    let sock_path = capture.writer.dir().join(crate::control::SOCKET);
    let _ = std::fs::remove_file(&sock_path);
    let control = match tokio::net::UnixListener::bind(&sock_path)
        .with_context(|| format!("create the control socket {}", sock_path.display()))
    {
        Ok(c) => c,
        Err(e) => {
            stop_command(&mut capture, None, child, opts);
            return Err(fail(capture, kernel, e));
        }
    };
    // SAFETY: the RingBuf owns its map fd for as long as the AsyncFd owns the RingBuf.
    let mut ring =
        match unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) } {
            Ok(r) => r,
            Err(e) => {
                stop_command(&mut capture, None, child, opts);
                let e = anyhow::anyhow!("register the ring buffer with the event loop: {e}");
                return Err(fail(capture, kernel, e));
            }
        };
    let looped = event_loop(
        &mut signals,
        &mut capture,
        &mut ring,
        &control,
        &mut child,
        stop_when_exited,
        opts,
    )
    .await;
    drop(control);
    let _ = std::fs::remove_file(&sock_path);
    // The command emuwatch started ends with the recording (its exits are still recorded).
    stop_command(&mut capture, Some(ring.get_mut()), child, opts);
    let stop_reason = match looped {
        Ok(r) => r,
        Err(e) => return Err(fail(capture, kernel, e)),
    };
    let finished = (|| -> Result<()> {
        // Everything the targets did is in the ring buffer by now: take the rest.
        drain(ring.get_mut(), &mut capture)?;
        capture.flush_all_reads()?;
        capture.check_lost()?;
        capture.flush_kernel_log();
        Ok(())
    })();
    if let Err(e) = finished {
        return Err(fail(capture, kernel, e));
    }
    capture.live.finish();
    drop(kernel); // detach probes before the final write
    let mut writer = capture.writer;
    writer.info.ended_at = Some(Utc::now());
    writer.info.stop_reason = Some(stop_reason);
    writer.info.complete = writer.info.lost.none();
    let dir = writer.dir().to_path_buf();
    let info = writer.finish()?;
    Ok(RecordOutcome { dir, info })
}

/// At least one way of choosing targets was given.
fn check_selectors(target: &TargetSpec) -> Result<()> {
    let selectors = target.all as usize
        + target.pids.len()
        + target.comms.len()
        + target.uids.len()
        + target.cgroups.len()
        + target.packages.len()
        + (!target.command.is_empty()) as usize;
    if selectors == 0 {
        bail!("no target: give -- CMD ARGS, --pid, --comm, --uid, --package, --cgroup or --all");
    }
    Ok(())
}

/// Android's packages.list: needed for `--package`, used for app names whenever it exists.
fn load_packages(opts: &RecordOptions) -> Result<PackagesList> {
    if opts.packages_list.exists() {
        PackagesList::load(&opts.packages_list)
    } else if opts.target.packages.is_empty() {
        Ok(PackagesList::default())
    } else {
        bail!(
            "--package needs {} (Android's packages.list; set --packages-list)",
            opts.packages_list.display()
        )
    }
}

/// What the kernel matches on: uids, app ids, names, and the pids that already run.
fn target_maps(
    target: &TargetSpec,
    packages: &PackagesList,
    opts: &RecordOptions,
) -> Result<TargetMaps> {
    let mut maps = TargetMaps {
        all: target.all,
        uids: target.uids.clone(),
        comms: target.comms.clone(),
        resolvers: target.resolvers.clone(),
        // Resolvers running now (Android's netd runs from boot); later ones are recognised
        // in the kernel when they exec or take the name.
        resolver_tgids: processes_named(&target.resolvers),
        ..Default::default()
    };
    for name in &target.packages {
        let uid = packages.uid_of(name).with_context(|| {
            format!(
                "package {name:?} is not in {}",
                opts.packages_list.display()
            )
        })?;
        // The app in every Android user: uid % 100000 is its app id (matched in the kernel).
        maps.app_ids.push(uid % PER_USER_RANGE);
    }
    // Processes of target uids that already run: targets from the start, so the system's
    // oom_score_adj writes for them are seen before they make a probed call.
    if !maps.uids.is_empty() || !maps.app_ids.is_empty() {
        for (pid, uid) in processes_with_uids() {
            if maps.uids.contains(&uid) || maps.app_ids.contains(&(uid % PER_USER_RANGE)) {
                maps.tgids.push(pid);
            }
        }
    }
    for pid in &target.pids {
        if !alive(*pid) {
            bail!("--pid {pid}: no such process");
        }
        maps.tgids.extend(descendants(*pid));
    }
    for c in &target.comms {
        if c.is_empty() {
            bail!("--comm \"\": a process name cannot be empty");
        }
        if c.len() > 15 {
            eprintln!(
                "emuwatch: note: --comm {c:?} is longer than the kernel keeps (15 bytes); matching its first 15"
            );
        }
    }
    Ok(maps)
}

/// session.json as it is written when the recording starts.
fn session_info(
    opts: &RecordOptions,
    target: &TargetSpec,
    kernel: &Kernel,
    android_api: &crate::enrich::binder::AndroidApi,
) -> SessionInfo {
    let started_at = Utc::now();
    SessionInfo {
        schema_version: SCHEMA_VERSION,
        session_id: Some(crate::session::new_session_id(started_at)),
        labels: opts.labels.clone(),
        tool: "emuwatch".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        kernel: system::kernel_info(),
        hostname: hostname(),
        started_at,
        ended_at: None,
        stop_reason: None,
        target: target.clone(),
        probes: Vec::new(),
        events: BTreeMap::new(),
        events_total: 0,
        lost: Lost::default(),
        complete: false,
        ring_buffer_bytes: opts.ring_bytes,
        tracefs_mounted_by_emuwatch: Some(kernel.tracefs_mounted_by_us),
        probe_plan: Some(kernel.plan.clone()),
        command_stopped: None,
        unreadable_lines: Vec::new(),
        android_api: Some(android_api.clone()),
    }
}

/// The recording failed after its session was created: detach, remove the control socket,
/// and end session.json with `stop_reason: error` (best effort: the disk may be full).
fn fail(capture: Capture, kernel: Kernel, e: anyhow::Error) -> anyhow::Error {
    drop(kernel);
    let mut writer = capture.writer;
    let _ = std::fs::remove_file(writer.dir().join(crate::control::SOCKET));
    writer.info.ended_at = Some(Utc::now());
    writer.info.stop_reason = Some(StopReason::Error);
    writer.info.complete = false;
    let _ = writer.flush();
    let _ = writer.write_info();
    e
}

/// Stop the command emuwatch started (unless --leave-running), noting it in session.json.
fn stop_command(
    capture: &mut Capture,
    mut ring: Option<&mut aya::maps::RingBuf<aya::maps::MapData>>,
    child: Option<u32>,
    opts: &RecordOptions,
) {
    if opts.leave_running || (capture.started.is_empty() && child.is_none()) {
        return;
    }
    // Draining while waiting keeps the ring buffer from filling and brings in the forks not
    // yet read; after a write error (a full disk) it stops, and the error already being
    // reported is the one that counts.
    let mut draining = true;
    let r = stop_started(child, STOP_GRACE, || {
        if let Some(r) = ring.as_deref_mut()
            && draining
            && drain(r, capture).is_err()
        {
            draining = false;
        }
        Ok(capture.started.clone())
    });
    capture.started.clear();
    match r {
        Ok((0, _)) => {}
        Ok((n, killed)) => {
            capture.writer.info.command_stopped = Some(crate::session::CommandStopped {
                processes: n as u64,
                killed: killed as u64,
            });
        }
        Err(e) => eprintln!("emuwatch: warning: while stopping the command: {e:#}"),
    }
}
