//! A session directory: `events.jsonl` written as events arrive, and `session.json`
//! describing the recording. Both are documented in docs/events.md.
use crate::event::{LossReason, SCHEMA_VERSION, StopReason};
use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
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
    /// Resolver processes by name (`--resolver`): not targets; their DNS answers name the
    /// targets' connects (docs/events.md, names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolvers: Vec<String>,
}

/// The resolver processes `--resolver` defaults to: Android's netd, which sends the DNS
/// packets for every app's `getaddrinfo`.
pub const DEFAULT_RESOLVERS: &[&str] = &["netd"];

/// `--resolver` values as given (default: [`DEFAULT_RESOLVERS`]) -> the names; `none` alone
/// turns resolvers off.
pub fn resolvers_from_args(given: &[String]) -> anyhow::Result<Vec<String>> {
    if given.iter().any(|r| r == "none") {
        if given.len() > 1 {
            anyhow::bail!("--resolver none cannot be combined with resolver names");
        }
        return Ok(Vec::new());
    }
    if given.is_empty() {
        return Ok(DEFAULT_RESOLVERS.iter().map(|r| r.to_string()).collect());
    }
    for r in given {
        if r.is_empty() {
            anyhow::bail!("--resolver \"\": a process name cannot be empty");
        }
    }
    Ok(given.to_vec())
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
    /// File opens whose path was longer than the kernel copies (`path_truncated` events):
    /// their file is unknown, so the session is not complete.
    #[serde(default)]
    pub truncated_paths: u64,
}

impl Lost {
    /// Nothing lost, nothing undecodable, no path cut: every event is whole.
    pub fn none(&self) -> bool {
        self.total == 0 && self.undecodable == 0 && self.truncated_paths == 0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub schema_version: u32,
    /// Unique id of the recording (`<UTC start>-<16 random hex digits>`); absent in sessions
    /// recorded before it existed ([`SessionInfo::id`] derives one for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `--label key=value` of record/run (app version, Android API level, device, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
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
    /// The Android API level binder calls were decoded for, and where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_api: Option<crate::enrich::binder::AndroidApi>,
    /// The command emuwatch started, stopped when the recording ended (absent when it had
    /// already exited, or with `--leave-running`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_stopped: Option<CommandStopped>,
    /// Line numbers of events.jsonl skipped when the session was read back (invalid UTF-8);
    /// not part of the file.
    #[serde(skip)]
    pub unreadable_lines: Vec<usize>,
}

impl SessionInfo {
    /// The session's id: `session_id`, or for a session recorded without one an id derived
    /// from what identifies it — its start time, and a hash of its hostname, target and
    /// directory name (`dir`) — the same at every read while the directory keeps its name.
    /// Only `[A-Za-z0-9._-]` (a directory name in exported tables); other characters become
    /// `_`.
    pub fn id(&self, dir: &Path) -> String {
        let raw = match &self.session_id {
            Some(id) => id.clone(),
            None => {
                let name = std::fs::canonicalize(dir)
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_default();
                let target = serde_json::to_string(&self.target).unwrap_or_default();
                // FNV-1a: stable across builds and platforms (std's hasher is not promised to be).
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in [self.hostname.as_bytes(), target.as_bytes(), name.as_bytes()].join(&0u8) {
                    h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
                format!("{}-{h:016x}", self.started_at.format("%Y%m%dT%H%M%SZ"))
            }
        };
        let mut id: String = raw
            .chars()
            .take(128)
            .map(|c| match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '_',
            })
            .collect();
        if id.is_empty() || id.starts_with('.') {
            id.insert(0, '_');
        }
        id
    }
}

/// A new unique session id: the UTC start time and 64 random bits.
pub fn new_session_id(started_at: DateTime<Utc>) -> String {
    use std::io::Read;
    let mut b = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map(|_| u64::from_le_bytes(b))
        // Without /dev/urandom: the time's nanoseconds and the pid, still unique per machine.
        .unwrap_or_else(|_| {
            (started_at.timestamp_subsec_nanos() as u64) << 32 | std::process::id() as u64
        });
    format!("{}-{random:016x}", started_at.format("%Y%m%dT%H%M%SZ"))
}

/// Parse `key=value` labels (`--label`): keys of letters, digits, `_`, `.`, `-`; at most 64
/// labels of 256 bytes each.
pub fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    if args.len() > 64 {
        bail!("at most 64 --label options");
    }
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("--label {a:?}: expected KEY=VALUE");
        };
        if k.is_empty()
            || k.len() > 64
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            bail!("--label {a:?}: the key must be 1-64 letters, digits, '_', '.' or '-'");
        }
        if v.len() > 256 {
            bail!("--label {k}: the value is longer than 256 bytes");
        }
        if labels.insert(k.to_string(), v.to_string()).is_some() {
            bail!("--label {k}: given twice");
        }
    }
    Ok(labels)
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

pub mod line;
mod parse;
mod read;
mod writer;

pub use parse::parse_event;
pub use read::*;
pub use writer::*;
