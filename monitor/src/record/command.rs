//! The command `record` starts: resolved and checked before anything loads, forked and held
//! until it is a target, stopped with its whole tree when the recording ends.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::{
    RecordOptions,
    procs::{alive, descendants},
};
use crate::{capture::Capture, kernel::Kernel, session::TargetSpec};

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

/// Stop the processes emuwatch started: SIGTERM to each of them and their current
/// descendants, SIGKILL to whatever is left after `grace`. `refresh` drains the ring buffer
/// and returns the started set as the events read so far know it; it runs before the first
/// signal and between every wait, so a process whose fork was still in the ring when the
/// recording ended (a daemon whose intermediate parent already exited is nobody's
/// descendant in /proc) is signalled too, as is anything forked while stopping.
/// Returns (processes signalled, processes that needed SIGKILL).
pub(super) fn stop_started(
    child: Option<u32>,
    grace: Duration,
    mut refresh: impl FnMut() -> Result<std::collections::HashSet<u32>>,
) -> Result<(usize, usize)> {
    let me = std::process::id();
    let tree = |started: &std::collections::HashSet<u32>| -> Vec<u32> {
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
    // SIGTERM to each process once, as it appears; after `grace`, SIGKILL to what is left,
    // every round, for at most 2 s more. `kill`: (processes left at `grace`, when SIGKILL began).
    let mut signalled = std::collections::HashSet::new();
    let mut kill: Option<(usize, std::time::Instant)> = None;
    let t = std::time::Instant::now();
    let mut left = tree(&refresh()?);
    while !left.is_empty() && kill.is_none_or(|(_, k)| k.elapsed() < Duration::from_secs(2)) {
        let sig = if t.elapsed() < grace {
            libc::SIGTERM
        } else {
            kill.get_or_insert((left.len(), std::time::Instant::now()));
            libc::SIGKILL
        };
        for p in &left {
            if signalled.insert(*p) || sig == libc::SIGKILL {
                unsafe { libc::kill(*p as i32, sig) };
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        let started = refresh()?;
        reap();
        left = tree(&started);
    }
    refresh()?;
    Ok((signalled.len(), kill.map_or(0, |(n, _)| n)))
}

/// Reap `pid` if it has exited; true when it is gone.
pub(super) fn reaped(pid: u32) -> bool {
    let mut status = 0;
    let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    r == pid as i32 || r < 0
}

/// Fork the command held before exec, make it a target, then let it run: its pid.
pub(super) fn start_command(
    capture: &mut Capture,
    kernel: &mut Kernel,
    target: &mut TargetSpec,
    opts: &RecordOptions,
) -> Result<u32> {
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
    if let Err(e) = held.go() {
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
        return Err(e.context(format!("cannot run {:?}", target.command[0])));
    }
    Ok(pid)
}
