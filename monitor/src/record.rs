//! `emuwatch record`: choose targets, load and attach the probes, run the capture until the
//! targets have exited, the duration is over, or Ctrl-C / SIGTERM.
use crate::event::StopReason;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

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
}

/// A user name or number as (uid, gid), from the passwd database.
pub fn lookup_user(user: &str) -> Result<(u32, u32)> {
    let c = std::ffi::CString::new(user).context("user name contains a NUL byte")?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    let r = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if r == 0 && !res.is_null() {
        return Ok((pw.pw_uid, pw.pw_gid));
    }
    if let Ok(uid) = user.parse::<u32>() {
        let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
        if r == 0 && !res.is_null() {
            return Ok((pw.pw_uid, pw.pw_gid));
        }
        return Ok((uid, uid));
    }
    bail!("no user {user:?}")
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

/// The pids of `root` and all its current descendants, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(all) = procfs::process::all_processes() {
        for p in all.flatten() {
            if let Ok(st) = p.stat() {
                children
                    .entry(st.ppid as u32)
                    .or_default()
                    .push(st.pid as u32);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// (pid, real uid) of every process, from /proc (emuwatch itself left out).
fn processes_with_uids() -> Vec<(u32, u32)> {
    let me = std::process::id();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| Some((p.pid as u32, p.status().ok()?.ruid)))
        .filter(|(pid, _)| *pid != me)
        .collect()
}

pub(crate) fn alive(pid: u32) -> bool {
    match procfs::process::Process::new(pid as i32).and_then(|p| p.stat()) {
        Ok(st) => st.state != 'Z' && st.state != 'X',
        Err(_) => false,
    }
}

/// cgroup v2 id of a cgroup directory: the kernel uses the directory's inode number.
fn cgroup_id(path: &str, cgroup2: Option<&Path>) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let p = Path::new(path);
    let full = if p.is_absolute() && p.exists() {
        p.to_path_buf()
    } else {
        let root = cgroup2.context("--cgroup needs a cgroup v2 hierarchy, and none is mounted")?;
        root.join(path.trim_start_matches('/'))
    };
    let md = std::fs::metadata(&full).with_context(|| format!("cgroup {}", full.display()))?;
    if !md.is_dir() {
        bail!("cgroup {} is not a directory", full.display());
    }
    Ok(md.ino())
}

/// Find `prog` the way execvp would, so a typo is a clear error before anything starts.
fn resolve_program(prog: &str) -> Option<PathBuf> {
    if prog.contains('/') {
        return Path::new(prog).is_file().then(|| PathBuf::from(prog));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// The command's program, resolved and checked to be executable: a one-line error otherwise,
/// before any probe is loaded.
pub fn check_program(argv: &[String]) -> Result<PathBuf> {
    let first = argv.first().context("empty command")?;
    if first.is_empty() {
        bail!("cannot run the command: its program name is empty");
    }
    let prog =
        resolve_program(first).with_context(|| format!("cannot run {first:?}: not found"))?;
    let c = std::ffi::CString::new(prog.as_os_str().as_encoded_bytes())
        .with_context(|| format!("cannot run {first:?}: the path contains a NUL byte"))?;
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        bail!(
            "cannot run {first:?} ({}): {}",
            prog.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(prog)
}

/// Fork a child that waits until it has been made a target, then execs `argv` (with stdout and
/// stderr sent to `output` when given). (std's spawn cannot do this: it blocks until the child
/// has exec'd.) Returns (pid, release capture).
fn spawn_held(
    argv: &[String],
    output: Option<&Path>,
    run_as: Option<(u32, u32)>,
) -> Result<(u32, Held)> {
    use std::{ffi::CString, os::fd::AsRawFd};
    let prog = check_program(argv)?;
    let cstr =
        |s: &str| CString::new(s).with_context(|| format!("argument {s:?} contains a NUL byte"));
    let path = cstr(&prog.to_string_lossy())?;
    let args: Vec<CString> = argv.iter().map(|a| cstr(a)).collect::<Result<_>>()?;
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let output = output
        .map(|p| {
            crate::safefs::open_append_private(p).with_context(|| format!("open {}", p.display()))
        })
        .transpose()?;
    let out_fd = output.as_ref().map_or(-1, |f| f.as_raw_fd());
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    let (rd, wr) = (fds[0], fds[1]);
    // A second pipe reports a failed exec: it closes on a successful one (O_CLOEXEC).
    let mut efds = [0; 2];
    if unsafe { libc::pipe2(efds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    let (erd, ewr) = (efds[0], efds[1]);
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // Child: only async-signal-safe calls from here to exec.
        unsafe {
            libc::close(wr);
            libc::close(erd);
            let mut b = 0u8;
            while libc::read(rd, (&mut b as *mut u8).cast(), 1) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
            libc::close(rd);
            if out_fd >= 0 {
                libc::dup2(out_fd, 1);
                libc::dup2(out_fd, 2);
            }
            if let Some((uid, gid)) = run_as
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0)
            {
                let err = *libc::__errno_location();
                libc::write(ewr, (&err as *const i32).cast(), 4);
                libc::_exit(127);
            }
            libc::execv(path.as_ptr(), ptrs.as_ptr());
            let err = *libc::__errno_location();
            libc::write(ewr, (&err as *const i32).cast(), 4);
            libc::_exit(127);
        }
    }
    unsafe {
        libc::close(rd);
        libc::close(ewr);
    }
    use std::os::fd::FromRawFd;
    let held = Held {
        release: unsafe { std::fs::File::from_raw_fd(wr) },
        exec_error: unsafe { std::fs::File::from_raw_fd(erd) },
    };
    Ok((pid as u32, held))
}

/// A forked command waiting for its go.
struct Held {
    release: std::fs::File,
    exec_error: std::fs::File,
}

impl Held {
    /// Let the command exec; the exec's error, if it failed.
    fn go(mut self) -> Result<()> {
        use std::io::{Read, Write};
        self.release.write_all(b"g").context("release child")?;
        drop(self.release);
        let mut errno = [0u8; 4];
        match self.exec_error.read(&mut errno) {
            Ok(4) => Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)).into()),
            _ => Ok(()),
        }
    }
}

/// Stop the processes emuwatch started: SIGTERM to each of `started` and their current
/// descendants, SIGKILL to whatever is left after `grace`. `between` runs while waiting (it
/// drains the ring buffer). Returns (processes signalled, processes that needed SIGKILL).
fn stop_started(
    started: &std::collections::HashSet<u32>,
    child: Option<u32>,
    grace: Duration,
    mut between: impl FnMut() -> Result<()>,
) -> Result<(usize, usize)> {
    let me = std::process::id();
    let tree = || -> Vec<u32> {
        let mut v: Vec<u32> = started
            .iter()
            .chain(child.iter())
            .filter(|p| alive(**p))
            .flat_map(|p| descendants(*p))
            .filter(|p| *p != me && alive(*p))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let reap = || {
        if let Some(c) = child {
            reaped(c);
        }
    };
    let first = tree();
    for p in &first {
        unsafe { libc::kill(*p as i32, libc::SIGTERM) };
    }
    let t = std::time::Instant::now();
    let mut left = first.clone();
    while !left.is_empty() && t.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(20));
        between()?;
        reap();
        left = tree();
    }
    let killed = left.len();
    for p in &left {
        unsafe { libc::kill(*p as i32, libc::SIGKILL) };
    }
    let t = std::time::Instant::now();
    while !left.is_empty() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        reap();
        left = tree();
        for p in &left {
            unsafe { libc::kill(*p as i32, libc::SIGKILL) };
        }
    }
    between()?;
    let signalled = first.len().max(killed);
    Ok((signalled, killed))
}

/// Reap `pid` if it has exited; true when it is gone.
fn reaped(pid: u32) -> bool {
    let mut status = 0;
    let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    r == pid as i32 || r < 0
}

/// Loading and attaching the probes needs root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN
/// covers both): checked first, so the error says so instead of naming a map the loader
/// could not create.
pub fn check_privileges(what: &str) -> Result<()> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    let has = |cap: u32| eff.is_some_and(|e| e & (1 << cap) != 0);
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    bail!("{what} needs root (or CAP_BPF + CAP_PERFMON) to load its eBPF probes");
}

pub async fn record(opts: RecordOptions) -> Result<RecordOutcome> {
    let mut target = opts.target.clone();
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
    check_privileges("emuwatch record")?;
    // From here on, SIGINT / SIGTERM end the recording cleanly (a signal that arrives while the
    // probes attach is seen by the loop at once): the default action would leave a half-written
    // session and the command running.
    let mut signals = Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
    };
    let packages = if target.packages.is_empty() && !opts.packages_list.exists() {
        PackagesList::default()
    } else if opts.packages_list.exists() {
        PackagesList::load(&opts.packages_list)?
    } else {
        bail!(
            "--package needs {} (Android's packages.list; set --packages-list)",
            opts.packages_list.display()
        );
    };
    let mut maps = TargetMaps {
        all: target.all,
        uids: target.uids.clone(),
        comms: target.comms.clone(),
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
    let devices = DevicePatterns::new(&opts.device_patterns)?;
    let (binder_rules, android_api) = opts.binder.resolve()?;
    let geo = Geo::from_env_and_defaults(opts.geoip_country.clone(), opts.geoip_asn.clone())?;

    if !target.command.is_empty() {
        check_program(&target.command)?;
    }

    let dir = opts.out.clone().unwrap_or_else(default_session_dir);
    let wakeup_bytes = opts.wakeup_bytes.unwrap_or(opts.ring_bytes as u64 / 4);
    let mut kernel = Kernel::load(&LoadOptions {
        ring_bytes: opts.ring_bytes,
        wakeup_bytes,
        probes: opts.probes,
    })?;
    for cg in &target.cgroups {
        maps.cgroup_ids
            .push(cgroup_id(cg, kernel.cgroup2.as_deref())?);
    }
    kernel.set_targets(&maps)?;

    let info = SessionInfo {
        schema_version: SCHEMA_VERSION,
        tool: "emuwatch".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        kernel: system::kernel_info(),
        hostname: hostname(),
        started_at: Utc::now(),
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
    };
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
    .with_binder(Some(binder_rules), Some(android_api.level));
    let mut capture = Capture::new(enricher, writer, LiveView::new(opts.quiet), fd_reads, lost);
    capture.live_pids.extend(maps.tgids.iter().copied());
    for &tgid in &maps.tgids {
        if let Some(adj) = crate::enrich::read_oom_score_adj(tgid) {
            capture.enricher.procs.seed_adj(tgid, adj);
        }
    }

    // Spawn the command only now: everything is attached, and it becomes a target before exec.
    let mut child = None;
    if !target.command.is_empty() {
        let (pid, held) = spawn_held(&target.command, opts.command_output.as_deref(), opts.run_as)?;
        // The child is held before exec: its score now is its score at its first event.
        if let Some(adj) = crate::enrich::read_oom_score_adj(pid) {
            capture.enricher.procs.seed_adj(pid, adj);
        }
        if let Ok(cwd) = std::env::current_dir() {
            capture
                .enricher
                .procs
                .seed_cwd(pid, cwd.to_string_lossy().into_owned());
        }
        kernel.add_target_tgid(pid)?;
        capture.live_pids.insert(pid);
        target.pids.push(pid);
        capture.writer.info.target.pids.push(pid);
        capture.started.insert(pid);
        child = Some(pid);
        if let Err(e) = held.go() {
            unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
            let e = e.context(format!("cannot run {:?}", target.command[0]));
            return Err(fail(capture, kernel, e));
        }
    }
    capture.writer.write_info()?;
    let stop_when_exited =
        opts.stop_when_targets_exit && (!target.command.is_empty() || !target.pids.is_empty());

    let sock_path = capture.writer.dir().join(crate::control::SOCKET);
    let _ = std::fs::remove_file(&sock_path);
    let control = match tokio::net::UnixListener::bind(&sock_path)
        .with_context(|| format!("create the control socket {}", sock_path.display()))
    {
        Ok(c) => c,
        Err(e) => {
            stop_command(&mut capture, None, child, &opts);
            return Err(fail(capture, kernel, e));
        }
    };
    // SAFETY: the RingBuf owns its map fd for as long as the AsyncFd owns the RingBuf.
    let mut ring =
        match unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) } {
            Ok(r) => r,
            Err(e) => {
                stop_command(&mut capture, None, child, &opts);
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
        &opts,
    )
    .await;
    drop(control);
    let _ = std::fs::remove_file(&sock_path);
    // The command emuwatch started ends with the recording (its exits are still recorded).
    stop_command(&mut capture, Some(ring.get_mut()), child, &opts);
    let stop_reason = match looped {
        Ok(r) => r,
        Err(e) => return Err(fail(capture, kernel, e)),
    };
    let finished = (|| -> Result<()> {
        // Everything the targets did is in the ring buffer by now: take the rest.
        drain(ring.get_mut(), &mut capture)?;
        capture.flush_all_reads()?;
        capture.check_lost()?;
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
    let started = std::mem::take(&mut capture.started);
    // Draining while waiting keeps the ring buffer from filling; after a write error (a full
    // disk) it stops, and the error already being reported is the one that counts.
    let mut draining = true;
    let r = stop_started(&started, child, STOP_GRACE, || {
        if let Some(r) = ring.as_deref_mut()
            && draining
            && drain(r, capture).is_err()
        {
            draining = false;
        }
        Ok(())
    });
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

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

async fn event_loop(
    signals: &mut Signals,
    capture: &mut Capture,
    ring: &mut AsyncFd<aya::maps::RingBuf<aya::maps::MapData>>,
    control: &tokio::net::UnixListener,
    child: &mut Option<u32>,
    stop_when_exited: bool,
    opts: &RecordOptions,
) -> Result<StopReason> {
    // The command's exit wakes the loop at once (no waiting for the next sweep).
    let mut sigchld = signal(SignalKind::child())?;
    let mut sweep_now = false;
    let mut tick = tokio::time::interval(opts.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut last_sweep = tokio::time::Instant::now();
    let mut last_lost = tokio::time::Instant::now();

    let stop_reason = loop {
        let sleep_until = deadline
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400 * 365));
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), capture)?;
                guard.clear_ready();
            }
            _ = tick.tick() => {
                drain(ring.get_mut(), capture)?;
            }
            conn = control.accept() => {
                if let Ok((stream, _)) = conn
                    && crate::control::serve(stream, capture).await
                {
                    break StopReason::StopRequest;
                }
            }
            _ = signals.term.recv() => break StopReason::Signal,
            _ = signals.int.recv() => break StopReason::Signal,
            _ = sigchld.recv() => sweep_now = true,
            _ = tokio::time::sleep_until(sleep_until) => break StopReason::Duration,
        }
        capture.writer.flush()?;
        if opts
            .max_size
            .is_some_and(|max| capture.writer.events_len() >= max)
        {
            break StopReason::MaxSize;
        }
        capture.live.tick();
        let now = tokio::time::Instant::now();
        if now.duration_since(last_lost) >= Duration::from_secs(1) {
            last_lost = now;
            capture.check_lost()?;
        }
        if (stop_when_exited || child.is_some())
            && (sweep_now || now.duration_since(last_sweep) >= Duration::from_millis(200))
        {
            last_sweep = now;
            sweep_now = false;
            if child.is_some_and(reaped) {
                *child = None; // the rest of its tree is followed through events
            }
            // Exits seen as events remove pids; this catches processes whose exit was lost.
            // Whatever a dead process forked before it died is in the ring buffer by now:
            // read it before dropping the dead, or a daemon it left behind is not yet known
            // and the recording would stop under it.
            let dead: Vec<u32> = capture
                .live_pids
                .iter()
                .copied()
                .filter(|p| !alive(*p))
                .collect();
            drain(ring.get_mut(), capture)?;
            for p in dead {
                capture.live_pids.remove(&p);
            }
            capture.started.retain(|p| alive(*p));
            if stop_when_exited && capture.live_pids.is_empty() && child.is_none() {
                break StopReason::TargetsExited;
            }
        }
    };
    Ok(stop_reason)
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, capture: &mut Capture) -> Result<()> {
    while let Some(item) = ring.next() {
        capture.ingest(&item)?;
    }
    Ok(())
}

/// Parse `10`, `10s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    // Far beyond any recording, and far below where Duration and Instant arithmetic overflow.
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{s:?} is longer than the longest duration emuwatch takes (366 days)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// How long a recording may run: a duration above zero.
pub fn parse_record_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: a recording's duration must be above 0"));
    }
    Ok(d)
}

/// The ring buffer's poll period: a duration above zero, at most a second.
pub fn parse_poll(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(1) {
        return Err(format!("poll period {s:?} must be above 0 and at most 1s"));
    }
    Ok(d)
}

/// `--max-size`: `500M`, `2G`, `64K` or bytes; above 0.
pub fn parse_max_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 500M, 2G)"))?;
    match n.checked_mul(mult) {
        Some(0) => Err(format!("{s:?}: the size limit must be above 0")),
        Some(b) => Ok(b),
        None => Err(format!("{s:?} is too large")),
    }
}

/// Parse `4M`, `256K`, `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4M, 256K)"))?;
    let bytes = n
        .checked_mul(mult)
        .filter(|b| *b <= 1 << 30)
        .ok_or_else(|| format!("{s:?} is too large (max 1G)"))?;
    if !bytes.is_power_of_two() || bytes < 4096 {
        return Err(format!(
            "{s:?}: the ring buffer size must be a power of two of at least 4K"
        ));
    }
    Ok(bytes as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        // Huge values are errors, not a panic in Duration::from_secs_f64 or Instant + d.
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_duration("366d").is_err(), "no day unit");
        assert_eq!(
            parse_duration("8784h").unwrap(),
            Duration::from_secs(366 * 24 * 3600)
        );
        assert!(parse_duration("8785h").is_err());
    }

    #[test]
    fn record_durations_are_above_zero() {
        assert!(parse_record_duration("0").is_err());
        assert!(parse_record_duration("0ms").is_err());
        assert_eq!(
            parse_record_duration("1ms").unwrap(),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn poll_periods() {
        assert_eq!(parse_poll("5ms").unwrap(), Duration::from_millis(5));
        for bad in ["0", "0ms", "2s", "99999999999999999999h"] {
            assert!(parse_poll(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_sizes() {
        assert_eq!(parse_max_size("64K").unwrap(), 65536);
        assert_eq!(parse_max_size("2G").unwrap(), 2 << 30);
        assert!(parse_max_size("0").is_err());
        assert!(parse_max_size("99999999999T").is_err());
        assert!(parse_max_size("x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M").unwrap(), 4 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("3M").is_err());
        assert!(parse_size("2G").is_err());
        assert!(parse_size("x").is_err());
    }
}
