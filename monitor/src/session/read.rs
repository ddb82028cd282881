//! Reading a session back: session.json checked, events.jsonl in chunks of whole lines parsed
//! on every CPU, in bounded memory, bad lines named by number.
use super::*;

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
                match fill(&mut src, &mut buf, chunk) {
                    Ok(at_end) => eof = at_end,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
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
                let lines = split_lines(&buf[..cut], partial_last);
                let n = lines.len();
                let part = n.div_ceil(threads).max(1024);
                let parts: Vec<Parsed<T>> = std::thread::scope(|ps| {
                    let handles: Vec<_> = lines
                        .chunks(part)
                        .enumerate()
                        .map(|(c, ls)| {
                            ps.spawn(move || {
                                parse_part(
                                    ls,
                                    first_line + c * part,
                                    partial_last && (c + 1) * part >= n,
                                    parse,
                                )
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
    if warn {
        warn_skipped(ev_path, &invalid, partial_dropped);
    }
    Ok(invalid)
}

/// Read up to `chunk` more bytes onto the end of `buf`; true at the end of the input.
fn fill(src: &mut impl std::io::Read, buf: &mut Vec<u8>, chunk: usize) -> std::io::Result<bool> {
    let start = buf.len();
    buf.resize(start + chunk, 0);
    let mut got = start;
    let mut eof = false;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(eof)
}

/// The lines of `buf` (complete lines, and a last piece without its newline when
/// `partial_last`).
fn split_lines(buf: &[u8], partial_last: bool) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = Vec::with_capacity(buf.len() / 128);
    let mut at = 0;
    for nl in memchr::memchr_iter(b'\n', buf) {
        lines.push(&buf[at..nl]);
        at = nl + 1;
    }
    if partial_last {
        lines.push(&buf[at..]);
    }
    lines
}

/// Parse one part of a chunk's lines; `first` is the number (0-based) of its first line, and
/// when `has_last` its last line is the file's partial last line (dropped, not an error).
fn parse_part<T>(
    ls: &[&[u8]],
    first: usize,
    has_last: bool,
    parse: &(dyn Fn(&str) -> serde_json::Result<T> + Sync),
) -> Parsed<T> {
    let mut out = Parsed {
        items: Vec::with_capacity(ls.len()),
        invalid: Vec::new(),
        error: None,
        partial_dropped: None,
    };
    for (k, l) in ls.iter().enumerate() {
        let i = first + k;
        let last = has_last && k + 1 == ls.len();
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
}

/// Say which lines were skipped (invalid UTF-8) and whether a partial last line was dropped.
fn warn_skipped(ev_path: &Path, invalid: &[usize], partial_dropped: Option<usize>) {
    if !invalid.is_empty() {
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
    if let Some(n) = partial_dropped {
        eprintln!(
            "emuwatch: note: {}:{n}: ignoring a partial last line (the recording was interrupted)",
            ev_path.display(),
        );
    }
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
