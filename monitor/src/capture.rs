//! The capture stage: ring-buffer records -> decode -> enrich -> phase -> sinks (session file,
//! live view), one direction. Loss counters and leftover read aggregates are pulled from the kernel here too.
use crate::event::LossReason;
use std::collections::HashSet;

use anyhow::Result;
use aya::maps::{HashMap, MapData, PerCpuArray};
use chrono::Utc;
use monitor_common::file::{FdKey, ReadAgg};

use crate::{
    decode::{Raw, decode},
    enrich::Enricher,
    event::{Body, Event, FlushedAt, Lost, Marker, Phase, PhaseReason, ProcOp},
    live::LiveView,
    phase::PhaseTracker,
    session::SessionWriter,
};

pub struct Capture {
    pub enricher: Enricher,
    pub writer: SessionWriter,
    pub live: LiveView,
    pub phases: PhaseTracker,
    /// The kernel's per-fd read totals and loss counters (None: records fed by a test or the
    /// reader benchmark, with no kernel behind them).
    maps: Option<KernelMaps>,
    /// Last per-CPU totals seen, per loss reason.
    lost_seen: Vec<Vec<u64>>,
    /// Target processes alive as far as events tell (for "stop when the tree has exited").
    pub live_pids: HashSet<u32>,
    /// The command emuwatch started and every process forked from it (as events tell): what
    /// is stopped when the recording ends. Never a `--pid` target or anything else.
    pub started: HashSet<u32>,
    buf: Vec<Event>,
    /// Phase changes made by `emit`, reused across calls.
    stamped: Vec<Event>,
    /// The kernel programs' diagnostics (`--kernel-log`), read on every poll.
    pub kernel_log: Option<aya_log::EbpfLogger<crate::kernel::kernel_log::KernelLog>>,
}

/// The kernel maps the capture stage reads besides the ring buffer.
struct KernelMaps {
    fd_reads: HashMap<MapData, FdKey, ReadAgg>,
    lost: PerCpuArray<MapData, u64>,
}

impl Capture {
    pub fn new(
        enricher: Enricher,
        writer: SessionWriter,
        live: LiveView,
        fd_reads: HashMap<MapData, FdKey, ReadAgg>,
        lost: PerCpuArray<MapData, u64>,
    ) -> Self {
        let mut c = Self::without_kernel(enricher, writer, live);
        c.maps = Some(KernelMaps { fd_reads, lost });
        c
    }

    /// A capture stage fed records by hand (tests, the reader benchmark): no read totals
    /// held in the kernel, no loss counters.
    pub fn without_kernel(enricher: Enricher, writer: SessionWriter, live: LiveView) -> Self {
        Capture {
            enricher,
            writer,
            live,
            phases: PhaseTracker::default(),
            maps: None,
            lost_seen: vec![Vec::new(); LossReason::ALL.len()],
            live_pids: HashSet::new(),
            started: HashSet::new(),
            buf: Vec::new(),
            stamped: Vec::new(),
            kernel_log: None,
        }
    }

    /// Move the kernel's log records (`--kernel-log`) to kernel.log.
    pub fn flush_kernel_log(&mut self) {
        if let Some(l) = self.kernel_log.as_mut() {
            l.flush();
        }
    }

    /// One ring-buffer record.
    pub fn ingest(&mut self, bytes: &[u8]) -> Result<()> {
        match decode(bytes) {
            Ok(raw) => self.raw(raw),
            Err(e) => {
                self.writer.info.lost.undecodable += 1;
                if self.writer.info.lost.undecodable == 1 {
                    eprintln!(
                        "emuwatch: warning: undecodable ring-buffer record ({e}); counted in session.json"
                    );
                }
                Ok(())
            }
        }
    }

    pub fn raw(&mut self, raw: Raw) -> Result<()> {
        let mut out = std::mem::take(&mut self.buf);
        if let Raw::Fork(h, f) = &raw {
            self.live_pids.insert(f.child_tgid);
            if self.started.contains(&h.tgid) {
                self.started.insert(f.child_tgid);
            }
        }
        let exited = match &raw {
            Raw::Exit(h, _) => Some(h.tgid),
            _ => None,
        };
        self.enricher.enrich(&raw, &mut out);
        if let Some(tgid) = exited {
            self.live_pids.remove(&tgid);
            self.started.remove(&tgid);
            self.flush_reads(Some(tgid), FlushedAt::Exit, &mut out)?;
            self.enricher.fds.forget_process(tgid);
        }
        let r = out.iter_mut().try_for_each(|ev| self.emit(ev));
        out.clear();
        self.buf = out;
        r
    }

    /// Phase-stamp an event and hand it (and any phase change it caused, first) to the sinks.
    /// Stamped in place, phase changes in a reused buffer: this runs for every event.
    fn emit(&mut self, ev: &mut Event) -> Result<()> {
        if let Body::Process(p) = &ev.body
            && p.op == ProcOp::Exit
        {
            self.live_pids.remove(&ev.pid);
        }
        let mut changes = std::mem::take(&mut self.stamped);
        self.phases.stamp(ev, &mut changes);
        let r = changes.drain(..).try_for_each(|c| self.sink(&c));
        self.stamped = changes;
        r?;
        self.sink(ev)
    }

    fn sink(&mut self, ev: &Event) -> Result<()> {
        if let Body::FileOpen(o) = &ev.body
            && o.path_truncated
        {
            self.writer.info.lost.truncated_paths += 1;
            if self.writer.info.lost.truncated_paths == 1 {
                eprintln!(
                    "emuwatch: warning: a path longer than the kernel copies ({} bytes) was opened; its file is unknown and the session is marked incomplete",
                    monitor_common::file::PATH_LEN - 1
                );
            }
        }
        self.writer.write(ev)?;
        self.live.event(ev);
        Ok(())
    }

    /// A marker (from `emuwatch mark` or a scenario step), optionally changing the phase of
    /// one app or, with `app` None, of every app seen so far.
    pub fn marker(&mut self, label: &str, phase: Option<Phase>, app: Option<&str>) -> Result<()> {
        let base = Event {
            ts: Utc::now(),
            body: Body::Marker(Marker {
                label: label.to_string(),
            }),
            pid: 0,
            tid: 0,
            ppid: 0,
            uid: 0,
            comm: String::new(),
            app: app.map(str::to_string),
            phase: app.and_then(|a| self.phases.phase_of(a)),
        };
        self.sink(&base)?;
        if let Some(to) = phase {
            let apps = match app {
                Some(a) => vec![a.to_string()],
                None => self.phases.apps(),
            };
            for a in apps {
                if let Some(ev) =
                    self.phases
                        .set(&a, to, PhaseReason::Marker, Some(label.to_string()), &base)
                {
                    self.sink(&ev)?;
                }
            }
        }
        self.writer.flush()
    }

    /// Emit the read totals the kernel still holds for `tgid` (or every process).
    pub fn flush_reads(
        &mut self,
        tgid: Option<u32>,
        why: FlushedAt,
        out: &mut Vec<Event>,
    ) -> Result<()> {
        let Some(maps) = &mut self.maps else {
            return Ok(());
        };
        let keys: Vec<FdKey> = maps
            .fd_reads
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| tgid.is_none_or(|t| k.tgid == t))
            .collect();
        for k in keys {
            if let Ok(agg) = maps.fd_reads.get(&k, 0) {
                let _ = maps.fd_reads.remove(&k);
                if agg.reads > 0 {
                    let why = if tgid.is_none()
                        && self.enricher.procs.get(k.tgid).is_some_and(|p| p.exited)
                    {
                        FlushedAt::Exit
                    } else {
                        why
                    };
                    self.enricher
                        .flushed_read(k.tgid, k.fd as i32, agg.bytes, agg.reads, why, out);
                }
            }
        }
        Ok(())
    }

    /// At the end of a recording: every read total still in the kernel.
    pub fn flush_all_reads(&mut self) -> Result<()> {
        let mut out = Vec::new();
        self.flush_reads(None, FlushedAt::Stop, &mut out)?;
        for mut ev in out {
            self.emit(&mut ev)?;
        }
        Ok(())
    }

    /// Compare the kernel's loss counters with what was already reported; a `lost` line per
    /// reason that grew. Returns the number newly lost.
    pub fn check_lost(&mut self) -> Result<u64> {
        let mut new_total = 0;
        for (i, reason) in LossReason::ALL.iter().copied().enumerate() {
            let Some(maps) = &self.maps else {
                return Ok(0);
            };
            let per_cpu: Vec<u64> = match maps.lost.get(&reason.slot(), 0) {
                Ok(v) => v.iter().copied().collect(),
                Err(_) => continue,
            };
            let seen = &mut self.lost_seen[i];
            seen.resize(per_cpu.len(), 0);
            let delta: Vec<u64> = per_cpu
                .iter()
                .zip(seen.iter())
                .map(|(n, s)| n - s)
                .collect();
            let count: u64 = delta.iter().sum();
            if count == 0 {
                continue;
            }
            *seen = per_cpu.clone();
            new_total += count;
            let lost = &mut self.writer.info.lost;
            lost.total += count;
            *lost.by_reason.entry(reason).or_default() += count;
            lost.per_cpu.resize(per_cpu.len(), 0);
            for (t, d) in lost.per_cpu.iter_mut().zip(&delta) {
                *t += d;
            }
            let mut ev = Event {
                ts: Utc::now(),
                body: Body::Lost(Lost {
                    count,
                    reason,
                    per_cpu: delta,
                }),
                pid: 0,
                tid: 0,
                ppid: 0,
                uid: 0,
                comm: String::new(),
                app: None,
                phase: None,
            };
            self.emit(&mut ev)?;
        }
        Ok(new_total)
    }
}
