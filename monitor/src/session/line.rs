//! One event as one line of events.jsonl, written into a reused buffer: byte for byte what
//! `serde_json::to_writer` writes for the `Event`, without its per-event costs (the
//! timestamp's `String`, escaping every string byte by byte through the writer). The kinds a
//! busy app makes most (`file_open`, `file_read`, `connect`) are written here; every other
//! kind goes through serde_json into the same buffer. The tests compare both on hostile
//! strings, so the schema cannot drift apart.
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::event::{Body, Event};

/// Append `ev` and a newline to `out`.
pub fn write_line(out: &mut Vec<u8>, ev: &Event) -> serde_json::Result<()> {
    // Room for a typical line at once: the pieces below then never grow the buffer.
    out.reserve(512);
    let fields = match &ev.body {
        Body::FileOpen(o) => {
            head(out, ev);
            out.extend_from_slice(b",\"path\":");
            opt_str(out, o.path.as_deref());
            key(out, "path_origin");
            str(out, o.path_origin.as_str());
            if o.path_truncated {
                out.extend_from_slice(b",\"path_truncated\":true");
            }
            if let Some(p) = &o.path_prefix {
                key(out, "path_prefix");
                str(out, p);
            }
            key(out, "flags");
            int(out, o.flags);
            key(out, "flags_text");
            str(out, &o.flags_text);
            key(out, "result");
            int(out, o.result);
            if let Some(e) = &o.error {
                key(out, "error");
                str(out, e);
            }
            key(out, "syscall");
            str(out, &o.syscall);
            true
        }
        Body::FileRead(r) => {
            head(out, ev);
            out.extend_from_slice(b",\"path\":");
            opt_str(out, r.path.as_deref());
            key(out, "fd");
            int(out, r.fd);
            key(out, "bytes");
            int(out, r.bytes);
            key(out, "reads");
            int(out, r.reads);
            key(out, "flushed_at");
            str(out, r.flushed_at.as_str());
            true
        }
        Body::Connect(c) => {
            head(out, ev);
            key(out, "family");
            str(out, c.family.as_str());
            key(out, "proto");
            str(out, c.proto.as_str());
            key(out, "daddr");
            ip(out, &c.daddr);
            key(out, "dport");
            int(out, c.dport);
            key(out, "result");
            int(out, c.result);
            if let Some(e) = &c.error {
                key(out, "error");
                str(out, e);
            }
            if let Some(s) = c.scope {
                key(out, "scope");
                str(out, s.as_str());
            }
            if let Some(s) = &c.country {
                key(out, "country");
                str(out, s);
            }
            if let Some(n) = c.asn {
                key(out, "asn");
                int(out, n);
            }
            if let Some(s) = &c.as_org {
                key(out, "as_org");
                str(out, s);
            }
            if let Some(n) = c.conn_id {
                key(out, "conn_id");
                int(out, n);
            }
            if let Some(s) = &c.host {
                key(out, "host");
                str(out, s);
            }
            if let Some(s) = c.host_source {
                key(out, "host_source");
                str(out, s.as_str());
            }
            true
        }
        _ => false,
    };
    if fields {
        key(out, "pid");
        int(out, ev.pid);
        key(out, "tid");
        int(out, ev.tid);
        key(out, "ppid");
        int(out, ev.ppid);
        key(out, "uid");
        int(out, ev.uid);
        key(out, "comm");
        str(out, &ev.comm);
        if let Some(a) = &ev.app {
            key(out, "app");
            str(out, a);
        }
        if let Some(p) = ev.phase {
            key(out, "phase");
            str(out, p.as_str());
        }
        out.push(b'}');
    } else {
        serde_json::to_writer(&mut *out, ev)?;
    }
    out.push(b'\n');
    Ok(())
}

/// `{"ts":"...","kind":"..."` (the flattened body's tag follows the time, as serde writes it).
fn head(out: &mut Vec<u8>, ev: &Event) {
    out.extend_from_slice(b"{\"ts\":");
    ts(out, &ev.ts);
    key(out, "kind");
    str(out, ev.body.kind());
}

/// `,"name":` (names are the schema's: nothing to escape).
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn int<I: itoa::Integer>(out: &mut Vec<u8>, n: I) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn ip(out: &mut Vec<u8>, a: &IpAddr) {
    use std::io::Write;
    // IpAddr's text has nothing to escape; serde writes it as a string the same way.
    out.push(b'"');
    let _ = write!(out, "{a}");
    out.push(b'"');
}

/// A JSON string as serde_json escapes it: `"` and `\`, the control characters (short forms
/// for \b \t \n \f \r, `\u00XX` for the rest, lower-case hex); everything else as it is. Most
/// strings need none of that and are copied whole.
pub fn str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.push(b'"');
    if !needs_escape(b) {
        out.extend_from_slice(b);
    } else {
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..0x20 => &[],
                _ => continue,
            };
            out.extend_from_slice(&b[start..i]);
            start = i + 1;
            if esc.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 0xf) as usize]);
            } else {
                out.extend_from_slice(esc);
            }
        }
        out.extend_from_slice(&b[start..]);
    }
    out.push(b'"');
}

/// Does `b` hold a byte that JSON strings escape (`"`, `\`, below 0x20)? Eight bytes at a
/// time: a zero byte of `x ^ c` is a byte equal to `c`, and `x - 0x20` borrows from a byte
/// below 0x20 (the usual "has a byte less than n" test).
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        if below(x, 0x20) | below(x ^ (ONES * b'"' as u64), 1) | below(x ^ (ONES * b'\\' as u64), 1)
            != 0
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// RFC 3339, UTC, nanoseconds, `Z`: what `to_rfc3339_opts(SecondsFormat::Nanos, true)` gives,
/// without building a `String`. Times chrono would write otherwise (years outside 0-9999, a
/// leap second) are left to chrono.
fn ts(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    let (secs, ns) = (t.timestamp(), t.timestamp_subsec_nanos());
    // 0000-03-01 to 9999-12-31 (the civil-from-days arithmetic below starts its years in
    // March), no leap second: anything else is left to chrono.
    if !(-62_162_035_200..=253_402_300_799).contains(&secs) || ns >= 1_000_000_000 {
        str(out, &t.to_rfc3339_opts(SecondsFormat::Nanos, true));
        return;
    }
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    let (year, month, day) = civil_from_days(days);
    let mut b = *b"\"0000-00-00T00:00:00.000000000Z\"";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(1, 4, year);
    put(6, 2, month);
    put(9, 2, day);
    put(12, 2, sod / 3600);
    put(15, 2, sod / 60 % 60);
    put(18, 2, sod % 60);
    put(21, 9, ns);
    out.extend_from_slice(&b);
}

/// (year, month, day) of a day counted from 1970-01-01, for years 0-9999 (H. Hinnant's
/// `civil_from_days`: eras of 400 years, years starting on 1 March).
fn civil_from_days(days: i64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..365, from 1 March
    let mp = (5 * doy + 2) / 153; // 0..11, March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as u32, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        AddrFamily, DeviceOp, FlushedAt, HostSource, PathOrigin, Phase, Proto, Scope, error_of,
    };
    use crate::event::{Connect, Device, FileOpen, FileRead, Marker};
    use proptest::prelude::*;

    fn serde_line(ev: &Event) -> Vec<u8> {
        let mut v = serde_json::to_vec(ev).unwrap();
        v.push(b'\n');
        v
    }

    fn fast_line(ev: &Event) -> Vec<u8> {
        let mut v = Vec::new();
        write_line(&mut v, ev).unwrap();
        v
    }

    fn assert_same(ev: &Event) {
        let (fast, serde) = (fast_line(ev), serde_line(ev));
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&serde),
            "{ev:?}"
        );
        assert_eq!(fast, serde);
        // And it reads back as the same event.
        let back: Event = serde_json::from_slice(&fast).unwrap();
        assert_eq!(&back, ev);
    }

    /// Strings a hostile process can put in a path, comm or app name: every control
    /// character, quotes, backslashes, invalid UTF-8 (as the lossy decoding of kernel bytes
    /// leaves it), HTML, non-ASCII.
    fn hostile() -> Vec<String> {
        let mut v: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "/data/user/0/com.example.app/files/x.txt".into(),
            "quote\"inside".into(),
            "back\\slash\\".into(),
            "\"".into(),
            "\\".into(),
            "line\nbreak\r\ttab\u{8}bs\u{c}ff".into(),
            "\u{0}nul\u{1}\u{1f}\u{7f}del".into(),
            "</script><script>alert(1)</script>&amp;".into(),
            "ünïcödé ✓ 日本語 🐍 \u{2028}\u{2029}\u{feff}".into(),
            String::from_utf8_lossy(b"bad\xff\xfeutf8\xc3(").into_owned(),
            crate::decode::cstr(b"\xe2\x82comm\0rest"),
        ];
        v.push((0u8..0x80).map(char::from).collect());
        v
    }

    fn base(body: Body, comm: &str, app: Option<&str>, phase: Option<Phase>) -> Event {
        Event {
            ts: DateTime::from_timestamp_nanos(1_764_201_369_000_000_123),
            body,
            pid: 4_000_000_001,
            tid: u32::MAX,
            ppid: 0,
            uid: 10123,
            comm: comm.into(),
            app: app.map(str::to_string),
            phase,
        }
    }

    fn open(path: Option<&str>, prefix: Option<&str>, text: &str, result: i32) -> Body {
        Body::FileOpen(FileOpen {
            path: path.map(str::to_string),
            path_origin: PathOrigin::SyscallRelative,
            path_truncated: prefix.is_some(),
            path_prefix: prefix.map(str::to_string),
            flags: 0o2_100_002,
            flags_text: text.into(),
            result,
            error: error_of(result),
            syscall: "openat".into(),
        })
    }

    fn connect(s: Option<&str>, n: Option<u64>, daddr: &str) -> Body {
        Body::Connect(Connect {
            family: AddrFamily::Inet6,
            proto: Proto::Tcp,
            daddr: daddr.parse().unwrap(),
            dport: 65535,
            result: -111,
            error: error_of(-111),
            scope: s.map(|_| Scope::Public),
            country: s.map(str::to_string),
            asn: n.map(|n| n as u32),
            as_org: s.map(str::to_string),
            conn_id: n,
            host: s.map(str::to_string),
            host_source: s.map(|_| HostSource::Sni),
        })
    }

    #[test]
    fn hostile_strings_are_written_as_serde_json_writes_them() {
        for s in hostile() {
            for (app, phase) in [
                (None, None),
                (Some(s.as_str()), Some(Phase::Closed)),
                (Some("app"), Some(Phase::Background)),
            ] {
                for body in [
                    open(Some(&s), None, &s, 3),
                    open(None, Some(&s), "O_RDONLY", -2),
                    Body::FileRead(FileRead {
                        path: Some(s.clone()),
                        fd: -1,
                        bytes: u64::MAX,
                        reads: 0,
                        flushed_at: FlushedAt::Exit,
                    }),
                    Body::FileRead(FileRead {
                        path: None,
                        fd: 3,
                        bytes: 100,
                        reads: 1,
                        flushed_at: FlushedAt::Close,
                    }),
                    connect(Some(&s), Some(u64::MAX), "2001:db8::1"),
                    connect(None, None, "127.0.0.1"),
                    // Kinds serde_json writes, through the same function.
                    Body::Marker(Marker { label: s.clone() }),
                    Body::Camera(Device::new(DeviceOp::Open, Some(s.clone()), -13)),
                ] {
                    assert_same(&base(body, &s, app, phase));
                }
            }
        }
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        for ns in [
            0i64,
            1,
            999_999_999,
            1_000_000_000,
            951_782_400_000_000_000, // 2000-02-29
            1_764_201_369_123_456_789,
            4_102_444_799_999_999_999, // 2099-12-31T23:59:59.999999999
            i64::MAX,
            -1,
            i64::MIN, // 1677
        ] {
            let t = DateTime::from_timestamp_nanos(ns);
            let mut v = Vec::new();
            ts(&mut v, &t);
            let want = serde_json::to_vec(&t.to_rfc3339_opts(SecondsFormat::Nanos, true)).unwrap();
            assert_eq!(
                String::from_utf8(v).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
        // Every day of 1969-2100 at a few times of day, and the edges of the years written
        // here.
        let day = 86_400_000_000_000i64;
        for d in -366..47_500 {
            for t in [0, 1, day - 1] {
                check_ts(DateTime::from_timestamp_nanos(d * day + t));
            }
        }
        for secs in [
            -62_162_035_201i64,
            -62_162_035_200,
            253_402_300_799,
            253_402_300_800,
        ] {
            check_ts(DateTime::from_timestamp(secs, 999_999_999).unwrap());
            check_ts(DateTime::from_timestamp(secs, 0).unwrap());
        }
        // A leap second.
        check_ts(DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap());
        // Outside the years written by hand: chrono's own text.
        let far = DateTime::<Utc>::MAX_UTC;
        let mut v = Vec::new();
        ts(&mut v, &far);
        let want = serde_json::to_vec(&far.to_rfc3339_opts(SecondsFormat::Nanos, true)).unwrap();
        assert_eq!(v, want);
    }

    fn check_ts(t: DateTime<Utc>) {
        let mut v = Vec::new();
        ts(&mut v, &t);
        let want = serde_json::to_vec(&t.to_rfc3339_opts(SecondsFormat::Nanos, true)).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    #[test]
    fn the_escape_test_finds_every_byte_that_needs_it_at_every_position() {
        for len in 0..20 {
            for at in 0..len {
                for c in 0u8..=255 {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    let want = c < 0x20 || c == b'"' || c == b'\\';
                    assert_eq!(needs_escape(&b), want, "{c:#x} at {at} of {len}");
                }
            }
        }
        let multibyte = "ünïcödé ✓ 日本語 🐍 \u{7f}\u{80}\u{ff}".repeat(3);
        assert!(!needs_escape(multibyte.as_bytes()));
    }

    proptest! {
        #[test]
        fn any_strings_and_numbers_match_serde(
            path in proptest::option::of(any::<String>()),
            comm in any::<String>(),
            app in proptest::option::of(any::<String>()),
            bytes in proptest::collection::vec(any::<u8>(), 0..40),
            ns in any::<i64>(),
            fd in any::<i32>(),
            n in any::<u64>(),
        ) {
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            let mut ev = base(open(path.as_deref(), None, &lossy, fd), &comm, app.as_deref(), None);
            ev.ts = DateTime::from_timestamp_nanos(ns);
            prop_assert_eq!(fast_line(&ev), serde_line(&ev));
            ev.body = Body::FileRead(FileRead { path: Some(lossy.clone()), fd, bytes: n, reads: n / 3, flushed_at: FlushedAt::Stop });
            prop_assert_eq!(fast_line(&ev), serde_line(&ev));
            ev.body = connect(Some(&lossy), Some(n), "::ffff:10.0.0.1");
            prop_assert_eq!(fast_line(&ev), serde_line(&ev));
        }
    }
}
