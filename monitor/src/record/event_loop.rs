//! The recording's loop: ring buffer, control socket, signals, the duration and the sweep for
//! targets that have exited.
use std::time::Duration;

use anyhow::Result;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use super::{RecordOptions, command::reaped, procs::alive};
use crate::{capture::Capture, event::StopReason};

/// SIGTERM and SIGINT, caught: they end the recording instead of the process.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

pub(super) async fn event_loop(
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
                capture.flush_kernel_log();
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

pub(super) fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    capture: &mut Capture,
) -> Result<()> {
    while let Some(item) = ring.next() {
        capture.ingest(&item)?;
    }
    Ok(())
}
