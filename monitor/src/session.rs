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

    /// Bytes of events.jsonl on disk (after a flush).
    pub fn events_len(&self) -> u64 {
        self.events.get_ref().metadata().map_or(0, |m| m.len())
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
        let path = self.dir.join("session.json");
        match crate::safefs::write_replace(&path, &data) {
            Ok(()) => Ok(()),
            // A full disk has no room for a new file; the old one's blocks can take the final
            // state (`stop_reason: error`) in place.
            Err(e) => crate::safefs::overwrite_in_place(&path, &data).map_err(|_| e),
        }
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
    use crate::safefs::{EVENTS_LIMIT, TEXT_LIMIT, read_regular};
    let info_path = dir.join("session.json");
    let info_bytes = read_regular(&info_path, TEXT_LIMIT)?;
    let ev_path = dir.join("events.jsonl");
    let bytes = read_regular(&ev_path, EVENTS_LIMIT)?;
    parse(&info_bytes, &bytes, &info_path, &ev_path, true)
}

/// A session from the bytes of its session.json and events.jsonl (paths for messages);
/// `warn`: say on stderr which lines were skipped.
pub fn parse(
    info_bytes: &[u8],
    bytes: &[u8],
    info_path: &Path,
    ev_path: &Path,
    warn: bool,
) -> Result<(SessionInfo, Vec<Event>)> {
    // The version first: a session of a newer schema gets one clear line, not a parse error
    // about some field.
    #[derive(Deserialize)]
    struct Version {
        schema_version: u32,
    }
    let v: Version = serde_json::from_slice(info_bytes)
        .with_context(|| format!("parse {}", info_path.display()))?;
    if v.schema_version > SCHEMA_VERSION {
        bail!(
            "{}: schema version {} is newer than this emuwatch reads ({}): use a newer emuwatch",
            info_path.display(),
            v.schema_version,
            SCHEMA_VERSION
        );
    }
    let mut info: SessionInfo = serde_json::from_slice(info_bytes)
        .with_context(|| format!("parse {}", info_path.display()))?;
    // A recorder that crashed mid-write leaves a partial last line without its newline: that is
    // the documented worst case, not corruption.
    let partial_last = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let mut raw: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if !partial_last {
        raw.pop(); // the empty piece after the last newline
    }
    // A line with invalid UTF-8 (a cut multi-byte character, a corrupted byte) is skipped and
    // counted with its number; the rest of the session stays readable.
    let mut invalid = Vec::new();
    let n_raw = raw.len();
    let lines: Vec<&str> = raw
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            std::str::from_utf8(l).unwrap_or_else(|_| {
                if !(partial_last && i + 1 == n_raw) {
                    invalid.push(i + 1);
                }
                ""
            })
        })
        .collect();
    if warn && !invalid.is_empty() {
        let shown: Vec<String> = invalid.iter().take(10).map(|n| n.to_string()).collect();
        eprintln!(
            "emuwatch: warning: {}: skipped {} line(s) with invalid UTF-8 (line{} {}{})",
            ev_path.display(),
            invalid.len(),
            if invalid.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if invalid.len() > 10 { ", …" } else { "" }
        );
    }
    info.unreadable_lines = invalid;
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
    if warn && last_dropped {
        eprintln!(
            "emuwatch: note: {}:{}: ignoring a partial last line (the recording was interrupted)",
            ev_path.display(),
            lines.len()
        );
    }
    // Connects named by the TLS server name or HTTP Host sent after them.
    crate::enrich::names::annotate(&mut events);
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

    /// One invalid UTF-8 byte costs its line (counted, with its number), not the session; a
    /// last line cut inside a multi-byte character is the documented partial last line.
    #[test]
    fn invalid_utf8_costs_one_line() {
        let lines: Vec<String> = (0..5).map(line).collect();
        let dir = session(&lines, true);
        let p = dir.path().join("events.jsonl");
        let mut b = std::fs::read(&p).unwrap();
        let second = b.iter().position(|c| *c == b'\n').unwrap() + 1;
        let at = second + b[second..].windows(2).position(|w| w == b"m1").unwrap();
        b[at] = 0xff;
        // A last line cut after the first byte of "é" (0xc3 0xa9).
        b.extend_from_slice(
            b"{\"ts\":\"2026-11-20T10:00:00.000000000Z\",\"kind\":\"marker\",\"label\":\"\xc3",
        );
        std::fs::write(&p, &b).unwrap();
        let (info, events) = load(dir.path()).unwrap();
        assert_eq!(labels(&events), ["m0", "m2", "m3", "m4"]);
        assert_eq!(info.unreadable_lines, [2]);
    }

    #[test]
    fn newer_schema_and_non_regular_files_are_one_line_errors() {
        let dir = session(&[line(0)], true);
        std::fs::write(
            dir.path().join("session.json"),
            INFO.replace("\"schema_version\":1", "\"schema_version\":2"),
        )
        .unwrap();
        let e = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(
            e.contains("schema version 2 is newer than this emuwatch reads (1)"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);

        let dir = session(&[line(0)], true);
        let p = dir.path().join("events.jsonl");
        std::fs::remove_file(&p).unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(e.ends_with("events.jsonl: not a regular file"), "{e}");
    }
}
