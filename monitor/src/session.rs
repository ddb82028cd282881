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
/// naming the file and line. (Holds every event: the reports read sessions with
/// [`read_info`] and [`for_each_line`] instead, in bounded memory.)
#[cfg(test)]
pub fn load(dir: &Path) -> Result<(SessionInfo, Vec<Event>)> {
    let mut info = read_info(dir)?;
    let mut events = Vec::new();
    (info.unreadable_lines, _) = for_each_line(
        &events_path(dir),
        true,
        None,
        |l| serde_json::from_str::<Event>(l),
        |ev| {
            events.push(ev.clone());
            Ok(())
        },
    )?;
    // Connects named by the TLS server name or HTTP Host sent after them.
    crate::enrich::names::annotate(&mut events);
    Ok((info, events))
}

/// events.jsonl of a session directory.
pub fn events_path(dir: &Path) -> PathBuf {
    dir.join("events.jsonl")
}

/// A session's session.json.
pub fn read_info(dir: &Path) -> Result<SessionInfo> {
    use crate::safefs::{TEXT_LIMIT, read_regular};
    let info_path = dir.join("session.json");
    let info_bytes = read_regular(&info_path, TEXT_LIMIT)?;
    parse_info(&info_bytes, &info_path)
}

fn parse_info(info_bytes: &[u8], info_path: &Path) -> Result<SessionInfo> {
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
    serde_json::from_slice(info_bytes).with_context(|| format!("parse {}", info_path.display()))
}

/// A session from the bytes of its session.json and events.jsonl (paths for messages);
/// `warn`: say on stderr which lines were skipped.
#[cfg(test)]
pub fn parse(
    info_bytes: &[u8],
    bytes: &[u8],
    info_path: &Path,
    ev_path: &Path,
    warn: bool,
) -> Result<(SessionInfo, Vec<Event>)> {
    let mut info = parse_info(info_bytes, info_path)?;
    let mut events = Vec::new();
    info.unreadable_lines = lines_from(
        bytes,
        CHUNK,
        ev_path,
        warn,
        &|l: &str| serde_json::from_str::<Event>(l),
        &mut |ev: &mut Event| {
            events.push(ev.clone());
            Ok(())
        },
    )?;
    crate::enrich::names::annotate(&mut events);
    Ok((info, events))
}

/// Bytes of events.jsonl read (and parsed, on all CPUs) at a time: what a pass over a session
/// holds besides its own aggregates.
const CHUNK: usize = 4 << 20;

/// Every line of events.jsonl, in file order, through `parse` (on up to 8 threads) and then
/// `each` (on this thread; the items are freed elsewhere), in bounded memory: the file is read in chunks of [`CHUNK`] bytes,
/// at most two parsed chunks wait for `each`. A line with invalid UTF-8 is skipped (its number
/// is returned; `warn`: said on stderr); a line `parse` refuses is an error naming the file and
/// line, except a partial last line (the recording was interrupted mid-write), which is
/// skipped. Blank lines are skipped.
///
/// `upto`: read only the first that many bytes (a second read of a session that is still being
/// written sees what the first saw). Returns the numbers of the skipped lines and the bytes read.
pub fn for_each_line<T: Send>(
    ev_path: &Path,
    warn: bool,
    upto: Option<u64>,
    parse: impl Fn(&str) -> serde_json::Result<T> + Sync,
    mut each: impl FnMut(&mut T) -> Result<()>,
) -> Result<(Vec<usize>, u64)> {
    use std::io::Read;
    let f = crate::safefs::open_regular(ev_path, crate::safefs::EVENTS_LIMIT)?;
    let mut counted = Counted(f.take(upto.unwrap_or(u64::MAX)), 0);
    let bad = lines_from(&mut counted, CHUNK, ev_path, warn, &parse, &mut each)?;
    Ok((bad, counted.1))
}

/// A reader that counts the bytes read through it.
struct Counted<R>(R, u64);

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// One chunk of complete lines, parsed.
struct Parsed<T> {
    items: Vec<T>,
    /// Numbers (1-based) of the lines with invalid UTF-8.
    invalid: Vec<usize>,
    /// (line index, error) of the first line the parser refused.
    error: Option<(usize, serde_json::Error)>,
    /// A refused partial last line (the note is said once, at the end).
    partial_dropped: Option<usize>,
}

fn lines_from<T: Send>(
    mut src: impl std::io::Read + Send,
    chunk: usize,
    ev_path: &Path,
    warn: bool,
    parse: &(dyn Fn(&str) -> serde_json::Result<T> + Sync),
    each: &mut dyn FnMut(&mut T) -> Result<()>,
) -> Result<Vec<usize>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut invalid = Vec::new();
    let mut partial_dropped = None;
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Parsed<T>>>(2);
        // Items `each` is done with come back here to be freed off the consumer's thread.
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<T>>();
        s.spawn(move || {
            // Reads chunks ending at a newline; the rest waits for the next read.
            let mut buf: Vec<u8> = Vec::with_capacity(chunk + 4096);
            let mut first_line = 0usize;
            let mut eof = false;
            while !eof {
                let start = buf.len();
                buf.resize(start + chunk, 0);
                let mut got = start;
                while got < buf.len() {
                    match src.read(&mut buf[got..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                buf.truncate(got);
                // The complete lines of this chunk; at the end, everything (a last piece
                // without its newline is the partial last line).
                let cut = if eof {
                    buf.len()
                } else {
                    match buf.iter().rposition(|b| *b == b'\n') {
                        Some(i) => i + 1,
                        // One line longer than a chunk: read on.
                        None => continue,
                    }
                };
                let partial_last = eof && cut > 0 && !buf[..cut].ends_with(b"\n");
                let mut lines: Vec<&[u8]> = Vec::with_capacity(cut / 128);
                let mut at = 0;
                for nl in memchr::memchr_iter(b'\n', &buf[..cut]) {
                    lines.push(&buf[at..nl]);
                    at = nl + 1;
                }
                if partial_last {
                    lines.push(&buf[at..cut]);
                }
                let n = lines.len();
                let part = n.div_ceil(threads).max(1024);
                let parts: Vec<Parsed<T>> = std::thread::scope(|ps| {
                    let handles: Vec<_> = lines
                        .chunks(part)
                        .enumerate()
                        .map(|(c, ls)| {
                            ps.spawn(move || {
                                let mut out = Parsed {
                                    items: Vec::with_capacity(ls.len()),
                                    invalid: Vec::new(),
                                    error: None,
                                    partial_dropped: None,
                                };
                                for (k, l) in ls.iter().enumerate() {
                                    let i = first_line + c * part + k;
                                    let last = partial_last && c * part + k + 1 == n;
                                    let l = l.strip_suffix(b"\r").unwrap_or(l);
                                    let Ok(l) = std::str::from_utf8(l) else {
                                        if !last {
                                            out.invalid.push(i + 1);
                                        }
                                        continue;
                                    };
                                    if l.trim().is_empty() {
                                        continue;
                                    }
                                    match parse(l) {
                                        Ok(t) => out.items.push(t),
                                        Err(_) if last => out.partial_dropped = Some(i + 1),
                                        Err(e) => {
                                            out.error = Some((i, e));
                                            break;
                                        }
                                    }
                                }
                                out
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("event parser thread panicked"))
                        .collect()
                });
                first_line += n;
                buf.drain(..cut);
                while let Ok(done) = back_rx.try_recv() {
                    drop(done);
                }
                for p in parts {
                    let stop = p.error.is_some();
                    if tx.send(Ok(p)).is_err() || stop {
                        return;
                    }
                }
            }
        });
        for p in rx {
            let p = p.with_context(|| format!("read {}", ev_path.display()))?;
            invalid.extend(p.invalid);
            let mut items = p.items;
            for t in items.iter_mut() {
                each(t)?;
            }
            if let Err(std::sync::mpsc::SendError(items)) = back_tx.send(items) {
                drop(items);
            }
            // Parts are in file order: the first error met is the first bad line.
            if let Some((i, e)) = p.error {
                bail!("{}:{}: bad event line: {e}", ev_path.display(), i + 1);
            }
            partial_dropped = partial_dropped.or(p.partial_dropped);
        }
        Ok(())
    })?;
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
    if warn && let Some(n) = partial_dropped {
        eprintln!(
            "emuwatch: note: {}:{n}: ignoring a partial last line (the recording was interrupted)",
            ev_path.display(),
        );
    }
    Ok(invalid)
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

    /// Read in chunks far smaller than the file (and than some lines): every line once, in
    /// order, with its number in messages; a partial last line is still tolerated.
    #[test]
    fn small_chunks_keep_lines_whole_and_numbered() {
        let mut lines: Vec<String> = (0..3000).map(line).collect();
        lines[1234] = lines[1234].replace("m1234", &"x".repeat(5000));
        let text = lines.join("\n") + "\n";
        let parse = |l: &str| serde_json::from_str::<Event>(l);
        for chunk in [100, 1000, 4096, 1 << 20] {
            let mut got = Vec::new();
            let bad = lines_from(
                text.as_bytes(),
                chunk,
                Path::new("e"),
                false,
                &parse,
                &mut |e| {
                    got.push(e.clone());
                    Ok(())
                },
            )
            .unwrap();
            assert!(bad.is_empty());
            assert_eq!(got.len(), 3000, "chunk {chunk}");
            let l = labels(&got);
            assert_eq!(l[2999], "m2999");
            assert_eq!(l[1234].len(), 5000);

            let mut cut = text.clone() + r#"{"ts":"2026-11-20T1"#;
            let n = lines_from(
                cut.as_bytes(),
                chunk,
                Path::new("e"),
                false,
                &parse,
                &mut |_| Ok(()),
            );
            assert!(n.is_ok(), "chunk {chunk}");
            cut.push('\n');
            let e = lines_from(
                cut.as_bytes(),
                chunk,
                Path::new("e"),
                false,
                &parse,
                &mut |_| Ok(()),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("e:3001: bad event line"),
                "chunk {chunk}: {e}"
            );
        }
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
