//! A session directory: `events.jsonl` written as events arrive, and `session.json`
//! describing the recording. Both are documented in docs/events.md.
use crate::event::{LossReason, StopReason};
use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    event::Event,
    kernel::{ProbeStatus, system::KernelInfo},
};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TargetSpec {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comms: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Lost {
    /// Events the kernel could not deliver, all reasons.
    pub total: u64,
    pub by_reason: BTreeMap<LossReason, u64>,
    /// Totals per CPU (index = CPU).
    pub per_cpu: Vec<u64>,
    /// Ring-buffer records userspace could not decode.
    pub undecodable: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub schema_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub kernel: KernelInfo,
    pub hostname: String,
    #[serde(with = "crate::event::rfc3339_nanos")]
    pub started_at: DateTime<Utc>,
    #[serde(default, with = "opt_ts", skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Why the recording ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    pub target: TargetSpec,
    pub probes: Vec<ProbeStatus>,
    /// Events written, by kind.
    pub events: BTreeMap<String, u64>,
    pub events_total: u64,
    pub lost: Lost,
    /// True when nothing was lost: every event the probes produced is in events.jsonl.
    pub complete: bool,
    pub ring_buffer_bytes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracefs_mounted_by_emuwatch: Option<bool>,
    /// Which syscall path and fork/exit hooks this kernel got, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_plan: Option<crate::kernel::Plan>,
    /// The command emuwatch started, stopped when the recording ended (absent when it had
    /// already exited, or with `--leave-running`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_stopped: Option<CommandStopped>,
}

/// How the started command's processes were stopped at the end of the recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandStopped {
    /// Processes of its tree still running, sent SIGTERM.
    pub processes: u64,
    /// Of those, the ones still running after the grace period, sent SIGKILL.
    pub killed: u64,
}

mod opt_ts {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => crate::event::rfc3339_nanos::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

/// `run.json` in the session: what the run did, and what `baseline save` needs to make the
/// session's baseline independent of the run's scratch directory.
#[derive(Serialize, Deserialize)]
pub struct RunInfo {
    pub scenario: String,
    pub scenario_file: String,
    /// The `{work}` directory of the run (removed at its end).
    pub work_dir: String,
    /// The file category rules the run used (`[record] categories`), if not the built-in ones.
    #[serde(default)]
    pub categories: Option<String>,
    #[serde(default)]
    pub steps: Vec<serde_json::Value>,
    #[serde(default)]
    pub expectations: Vec<serde_json::Value>,
    #[serde(default)]
    pub baseline: Option<serde_json::Value>,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub exit_code: u8,
}

impl RunInfo {
    pub const FILE: &str = "run.json";

    /// The run.json of a session, if it has one.
    pub fn read(session: &Path) -> Option<RunInfo> {
        let b = std::fs::read(session.join(Self::FILE)).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub struct SessionWriter {
    dir: PathBuf,
    events: BufWriter<File>,
    pub info: SessionInfo,
}

impl SessionWriter {
    pub fn create(dir: &Path, info: SessionInfo) -> Result<SessionWriter> {
        crate::safefs::create_dir_private(dir)
            .with_context(|| format!("create session directory {}", dir.display()))?;
        let path = dir.join("events.jsonl");
        let f = crate::safefs::create_new_private(&path).with_context(|| {
                format!(
                    "create {} (is this directory already a session?)",
                    path.display()
                )
            })?;
        let w = SessionWriter {
            dir: dir.to_path_buf(),
            events: BufWriter::with_capacity(1 << 16, f),
            info,
        };
        w.write_info()?;
        Ok(w)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one event line. serde_json escapes every string, so hostile names cannot break
    /// the line structure.
    pub fn write(&mut self, ev: &Event) -> Result<()> {
        serde_json::to_writer(&mut self.events, ev)?;
        self.events.write_all(b"\n")?;
        // Counted without allocating a key for every event.
        let kind = ev.body.kind();
        match self.info.events.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.info.events.insert(kind.to_string(), 1);
            }
        }
        self.info.events_total += 1;
        Ok(())
    }

    /// Push buffered lines to the file (called after every ring-buffer drain), so a crash
    /// loses at most a partial last line.
    pub fn flush(&mut self) -> Result<()> {
        self.events.flush().context("write events.jsonl")
    }

    /// (Re)write session.json atomically.
    pub fn write_info(&self) -> Result<()> {
        let data = serde_json::to_vec_pretty(&self.info)?;
        crate::safefs::write_replace(&self.dir.join("session.json"), &data)
    }

    pub fn finish(mut self) -> Result<SessionInfo> {
        self.flush()?;
        self.events.get_ref().sync_all().ok();
        self.write_info()?;
        Ok(self.info)
    }
}

/// Read a session directory back: its info and every event. A malformed line is an error
/// naming the file and line.
pub fn load(dir: &Path) -> Result<(SessionInfo, Vec<Event>)> {
    let info_path = dir.join("session.json");
    let info: SessionInfo = serde_json::from_slice(
        &std::fs::read(&info_path).with_context(|| format!("read {}", info_path.display()))?,
    )
    .with_context(|| format!("parse {}", info_path.display()))?;
    let ev_path = dir.join("events.jsonl");
    let text =
        std::fs::read_to_string(&ev_path).with_context(|| format!("read {}", ev_path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    // A recorder that crashed mid-write leaves a partial last line without its newline: that is
    // the documented worst case, not corruption.
    let partial_last = !text.is_empty() && !text.ends_with('\n');
    // Parsing dominates `report` on large sessions: split the lines over the CPUs, in order.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = lines.len().div_ceil(threads).max(4096);
    let parsed: Vec<Result<Vec<Event>, (usize, serde_json::Error)>> = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let lines = &lines;
                s.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for (k, line) in part.iter().enumerate() {
                        let i = c * chunk + k;
                        if line.trim().is_empty() {
                            continue;
                        }
                        match serde_json::from_str::<Event>(line) {
                            Ok(ev) => out.push(ev),
                            Err(_) if partial_last && i + 1 == lines.len() => {}
                            Err(e) => return Err((i, e)),
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("event parser thread panicked"))
            .collect()
    });
    let mut events = Vec::with_capacity(lines.len());
    for part in parsed {
        match part {
            Ok(mut evs) => events.append(&mut evs),
            // Chunks are in file order: the first error met is the first bad line.
            Err((i, e)) => {
                return Err(anyhow::anyhow!(
                    "{}:{}: bad event line: {e}",
                    ev_path.display(),
                    i + 1
                ));
            }
        }
    }
    let last_dropped = partial_last
        && lines
            .last()
            .is_some_and(|l| !l.trim().is_empty() && serde_json::from_str::<Event>(l).is_err());
    if last_dropped {
        eprintln!(
            "emuwatch: note: {}:{}: ignoring a partial last line (the recording was interrupted)",
            ev_path.display(),
            lines.len()
        );
    }
    Ok((info, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Body;

    const INFO: &str = r##"{"schema_version":1,"tool":"emuwatch","tool_version":"0.1.0",
        "kernel":{"release":"6.1","version":"#1","machine":"x86_64"},"hostname":"h",
        "started_at":"2026-11-20T10:00:00.000000000Z","target":{},"probes":[],"events":{},
        "events_total":0,"lost":{"total":0,"by_reason":{},"per_cpu":[],"undecodable":0},
        "complete":true,"ring_buffer_bytes":8388608}"##;

    fn line(i: usize) -> String {
        format!(
            r#"{{"ts":"2026-11-20T10:00:00.000000000Z","kind":"marker","label":"m{i}","pid":0,"tid":0,"ppid":0,"uid":0,"comm":""}}"#
        )
    }

    fn session(lines: &[String], trailing_newline: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("session.json"), INFO).unwrap();
        let mut text = lines.join("\n");
        if trailing_newline {
            text.push('\n');
        }
        std::fs::write(dir.path().join("events.jsonl"), text).unwrap();
        dir
    }

    fn labels(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.body {
                Body::Marker(m) => m.label.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// Enough lines to be parsed in several chunks: order, the first bad line and the partial
    /// last line behave as with one parser.
    #[test]
    fn parallel_load_keeps_order_and_errors() {
        let n = 20_000;
        let lines: Vec<String> = (0..n).map(line).collect();
        let dir = session(&lines, true);
        let (_, events) = load(dir.path()).unwrap();
        let want: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        assert_eq!(labels(&events), want);

        let mut bad = lines.clone();
        bad[3_000] = "{not json".into();
        bad[15_000] = "{nor this".into();
        let dir = session(&bad, true);
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("events.jsonl:3001:"), "{err}");

        let mut partial = lines.clone();
        partial.push(r#"{"ts":"2026-11-20T10:00:00.0"#.into());
        let dir = session(&partial, false);
        let (_, events) = load(dir.path()).unwrap();
        assert_eq!(events.len(), n);
        // The same cut line followed by a newline is corruption, not an interrupted write.
        let dir = session(&partial, true);
        assert!(load(dir.path()).is_err());
    }
}
