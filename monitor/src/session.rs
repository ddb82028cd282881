//! A session directory: `events.jsonl` written as events arrive, and `session.json`
//! describing the recording. Both are documented in docs/events.md.
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
    pub by_reason: BTreeMap<String, u64>,
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
    /// Why the recording ended: `targets_exited`, `duration`, `signal`, `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
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
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create session directory {}", dir.display()))?;
        let path = dir.join("events.jsonl");
        let f = File::options()
            .create_new(true)
            .write(true)
            .open(&path)
            .with_context(|| {
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
        *self
            .info
            .events
            .entry(ev.body.kind().to_string())
            .or_default() += 1;
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
        let tmp = self.dir.join(".session.json.tmp");
        let data = serde_json::to_vec_pretty(&self.info)?;
        std::fs::write(&tmp, data).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join("session.json")).context("rename session.json")?;
        Ok(())
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
    let mut events = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(ev) => events.push(ev),
            // A recorder that crashed mid-write leaves a partial last line without its newline:
            // that is the documented worst case, not corruption.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                eprintln!(
                    "emuwatch: note: {}:{}: ignoring a partial last line (the recording was interrupted)",
                    ev_path.display(),
                    i + 1
                );
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "{}:{}: bad event line: {e}",
                    ev_path.display(),
                    i + 1
                ));
            }
        }
    }
    Ok((info, events))
}
