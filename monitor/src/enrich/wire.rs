//! Parsers for the bytes the kernel copies to name destinations (`net_data`): DNS messages,
//! TLS ClientHello records, HTTP/1.x request heads and Android dnsproxyd commands.
//!
//! Every input is hostile and may be cut short (the kernel copies at most
//! `monitor_common::net_data::DATA_LEN` bytes), so each parser works on a prefix, never panics,
//! never loops on its input and returns bounded, escaped strings: DNS names are at most 255
//! wire bytes with labels of at most 63 (anything else is refused), compression pointers must
//! point strictly backwards (no loops) and at most [`MAX_POINTERS`] are followed; bytes other
//! than letters, digits, `-`, `_` and `*` in a name are written `\DDD` (decimal, as in zone
//! files), and a `.` inside a label `\.`. HTTP paths are cut at [`PATH_MAX`] characters.
//!
//! Hand-written rather than taken from a crate: the general DNS, TLS and HTTP parsers refuse
//! a message cut short, and a cut-short copy is what the kernel delivers.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Compression pointers followed in one name.
pub const MAX_POINTERS: usize = 16;
/// Characters of an HTTP request target kept (the rest is cut, `path_truncated`).
pub const PATH_MAX: usize = 256;
/// Characters of an HTTP method or Host value kept.
const FIELD_MAX: usize = 255;
/// Resource records read from one message.
const MAX_RECORDS: usize = 64;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;

/// Name of a DNS record type (`TYPE123` for the ones without one here).
pub fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        t => format!("TYPE{t}"),
    }
}

/// Name of a DNS response code.
pub fn rcode_name(r: u8) -> String {
    match r {
        0 => "noerror".into(),
        1 => "formerr".into(),
        2 => "servfail".into(),
        3 => "nxdomain".into(),
        4 => "notimp".into(),
        5 => "refused".into(),
        r => format!("rcode{r}"),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RData {
    Addr(IpAddr),
    Name(String),
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    pub data: RData,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsMessage {
    pub id: u16,
    pub response: bool,
    pub rcode: u8,
    /// The first question (a stub resolver asks one).
    pub question: Option<(String, u16)>,
    /// Answer records read (the ones cut off by the copy are missing: `complete` is false).
    pub answers: Vec<Record>,
    /// Every section the header announced was read.
    pub complete: bool,
}

/// Append one label byte in presentation form.
fn push_label_byte(out: &mut String, b: u8) {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'*' => out.push(b as char),
        b'.' => out.push_str("\\."),
        b => out.push_str(&format!("\\{b:03}")),
    }
}

/// Read a (possibly compressed) name at `pos`; returns it and the position after it in the
/// original (uncompressed) stream.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut wire_len = 0usize;
    let mut after: Option<usize> = None;
    let mut pointers = 0usize;
    // Pointers must go strictly backwards from the label they replace: no loops.
    let mut limit = pos;
    loop {
        let len = *msg.get(pos)? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    if out.is_empty() {
                        out.push('.');
                    }
                    return Some((out, after.unwrap_or(pos + 1)));
                }
                let label = msg.get(pos + 1..pos + 1 + len)?;
                wire_len += len + 1;
                if wire_len > 255 {
                    return None;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                for &b in label {
                    push_label_byte(&mut out, b);
                }
                pos += len + 1;
            }
            0xc0 => {
                let target = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
                pointers += 1;
                if pointers > MAX_POINTERS || target >= limit {
                    return None;
                }
                after.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => return None, // 0x40 / 0x80: extended label types, obsolete
        }
    }
}

fn u16_at(b: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(p)?, *b.get(p + 1)?]))
}

fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(p..p + 4)?.try_into().ok()?))
}

/// Parse a DNS message (UDP payload, or a TCP one without its 2-byte length). `None` when not
/// even the header and question could be read.
pub fn parse_dns(msg: &[u8]) -> Option<DnsMessage> {
    let id = u16_at(msg, 0)?;
    let flags = u16_at(msg, 2)?;
    let qd = u16_at(msg, 4)? as usize;
    let an = u16_at(msg, 6)? as usize;
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if opcode != 0 || qd > 4 {
        return None; // only standard queries; a stub asks one question
    }
    let rcode = (flags & 0xf) as u8;
    let mut pos = 12;
    let mut question = None;
    for _ in 0..qd {
        let (name, p) = read_name(msg, pos)?;
        let qtype = u16_at(msg, p)?;
        pos = p + 4;
        question.get_or_insert((name, qtype));
    }
    let mut answers = Vec::new();
    let mut complete = true;
    for _ in 0..an.min(MAX_RECORDS) {
        let Some(r) = read_record(msg, &mut pos) else {
            complete = false;
            break;
        };
        answers.push(r);
    }
    if an > MAX_RECORDS {
        complete = false;
    }
    Some(DnsMessage {
        id,
        response,
        rcode,
        question,
        answers,
        complete,
    })
}

fn read_record(msg: &[u8], pos: &mut usize) -> Option<Record> {
    let (name, p) = read_name(msg, *pos)?;
    let rtype = u16_at(msg, p)?;
    let ttl = u32_at(msg, p + 4)?;
    let rdlen = u16_at(msg, p + 8)? as usize;
    let rd = p + 10;
    let rdata = msg.get(rd..rd + rdlen)?;
    let data = match (rtype, rdlen) {
        (TYPE_A, 4) => RData::Addr(IpAddr::V4(Ipv4Addr::new(
            rdata[0], rdata[1], rdata[2], rdata[3],
        ))),
        (TYPE_AAAA, 16) => {
            let a: [u8; 16] = rdata.try_into().ok()?;
            RData::Addr(IpAddr::V6(Ipv6Addr::from(a)))
        }
        (TYPE_CNAME, _) => RData::Name(read_name(msg, rd)?.0),
        _ => RData::Other,
    };
    *pos = rd + rdlen;
    Some(Record {
        name,
        rtype,
        ttl,
        data,
    })
}

/// What a ClientHello offers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientHello {
    /// `server_name` (host_name entry), escaped.
    pub sni: Option<String>,
    /// An `encrypted_client_hello` extension is present (the SNI above is then the outer,
    /// public name).
    pub ech: bool,
    pub alpn: Vec<String>,
    /// Versions offered: `supported_versions` when present, else the legacy version.
    pub versions: Vec<String>,
    /// The extensions were read to their end (false: the copy was cut short).
    pub complete: bool,
}

pub fn tls_version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        v if v & 0x0f0f == 0x0a0a => "GREASE".into(),
        v => format!("0x{v:04x}"),
    }
}

/// Escape a string from the wire (SNI, ALPN, HTTP fields): printable ASCII other than `\`
/// stays, anything else becomes `\xNN`; at most `max` input bytes are kept.
pub fn escape_bytes(b: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'\\' => out.push_str("\\\\"),
            0x21..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out
}

/// Parse a TLS record holding a ClientHello. `None`: these bytes are not a ClientHello.
pub fn parse_client_hello(b: &[u8]) -> Option<ClientHello> {
    // Record header: type 22 (handshake), version 3.x, length; then handshake type 1.
    if b.len() < 9 || b[0] != 22 || b[1] != 3 || b[5] != 1 {
        return None;
    }
    let body = &b[9..];
    let legacy = u16_at(body, 0)?;
    let mut p = 2 + 32; // version, random
    let sid = *body.get(p)? as usize;
    p += 1 + sid;
    let suites = u16_at(body, p)? as usize;
    p += 2 + suites;
    let comp = *body.get(p)? as usize;
    p += 1 + comp;
    let mut hello = ClientHello::default();
    let mut supported = Vec::new();
    let Some(ext_len) = u16_at(body, p) else {
        hello.versions.push(tls_version_name(legacy));
        return Some(hello);
    };
    p += 2;
    let end = p + ext_len as usize;
    hello.complete = end <= body.len();
    let end = end.min(body.len());
    while p + 4 <= end {
        let et = u16_at(body, p)?;
        let el = u16_at(body, p + 2)? as usize;
        let data = body.get(p + 4..(p + 4 + el).min(end))?;
        match et {
            0 => {
                // server_name_list: len, then (type, len, name)*
                let mut q = 2;
                while q + 3 <= data.len() {
                    let nt = data[q];
                    let nl = u16_at(data, q + 1)? as usize;
                    let Some(name) = data.get(q + 3..q + 3 + nl) else {
                        break;
                    };
                    if nt == 0 && hello.sni.is_none() {
                        hello.sni = Some(escape_bytes(name, FIELD_MAX));
                    }
                    q += 3 + nl;
                }
            }
            16 => {
                let mut q = 2;
                while q < data.len() && hello.alpn.len() < 16 {
                    let l = data[q] as usize;
                    let Some(proto) = data.get(q + 1..q + 1 + l) else {
                        break;
                    };
                    hello.alpn.push(escape_bytes(proto, 64));
                    q += 1 + l;
                }
            }
            43 => {
                let n = *data.first()? as usize;
                let mut q = 1;
                while q + 2 <= data.len().min(1 + n) {
                    let v = u16_at(data, q)?;
                    if v & 0x0f0f != 0x0a0a {
                        supported.push(tls_version_name(v));
                    }
                    q += 2;
                }
            }
            0xfe0d => hello.ech = true,
            _ => {}
        }
        p += 4 + el;
    }
    hello.versions = if supported.is_empty() {
        vec![tls_version_name(legacy)]
    } else {
        supported
    };
    Some(hello)
}

/// An HTTP/1.x request head.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent (path and query), cut at [`PATH_MAX`] characters.
    pub path: String,
    pub path_truncated: bool,
    pub version: String,
    /// The `Host` header (absent when the copy ended before it or there was none).
    pub host: Option<String>,
}

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// Parse the start of an HTTP/1.x request. `None` when it does not start like one. Bodies are
/// never looked at: parsing stops at the blank line ending the headers.
pub fn parse_http(b: &[u8]) -> Option<HttpRequest> {
    let line_end = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
    let line = b[..line_end].strip_suffix(b"\r").unwrap_or(&b[..line_end]);
    let mut parts = line.splitn(3, |&c| c == b' ');
    let method = parts.next()?;
    if !METHODS.iter().any(|m| m.as_bytes() == method) {
        return None;
    }
    let target = parts.next()?;
    let version = parts.next().unwrap_or(b"");
    let complete_line = line_end < b.len();
    if complete_line && !version.starts_with(b"HTTP/") {
        return None;
    }
    let path_truncated = target.len() > PATH_MAX || !complete_line;
    let mut host = None;
    if complete_line {
        for h in b[line_end + 1..].split(|&c| c == b'\n') {
            let h = h.strip_suffix(b"\r").unwrap_or(h);
            if h.is_empty() {
                break; // end of the headers: the body is never read
            }
            if let Some(colon) = h.iter().position(|&c| c == b':') {
                let (name, value) = h.split_at(colon);
                if name.eq_ignore_ascii_case(b"host") {
                    let v = value[1..].trim_ascii();
                    host = Some(escape_bytes(v, FIELD_MAX));
                    break;
                }
            }
        }
    }
    Some(HttpRequest {
        method: escape_bytes(method, 16),
        path: escape_bytes(target, PATH_MAX),
        path_truncated,
        version: escape_bytes(version, 16),
        host,
    })
}

/// The host of a `Host` value: without its port (`[v6]:port` kept bracket-free).
pub fn host_without_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|c| c.is_ascii_digit()) => host,
        _ => h,
    }
}

/// An Android app's request to netd over `/dev/socket/dnsproxyd` (bionic's resolver client):
/// `getaddrinfo <name> <service> <flags> <family> <socktype> <protocol>`, or
/// `gethostbyname <netid> <name> <af>`. Returns the command word and the name asked for.
pub fn parse_dnsproxyd(b: &[u8]) -> Option<(String, Option<String>)> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let words: Vec<&[u8]> = b[..end]
        .split(|&c| c == b' ')
        .filter(|w| !w.is_empty())
        .take(4)
        .collect();
    let cmd = *words.first()?;
    if cmd.is_empty() || !cmd.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
        return None;
    }
    let name = match cmd {
        b"getaddrinfo" => words.get(1),
        b"gethostbyname" => words.get(2),
        _ => None,
    }
    .filter(|w| *w != b"^")
    .map(|w| escape_bytes(w, FIELD_MAX));
    Some((escape_bytes(cmd, 32), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query or answer built by hand: `name` in wire form.
    fn wire_name(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in name.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    fn header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [id, flags, qd, an, 0, 0] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }

    #[test]
    fn reads_an_answer_with_a_cname_chain_and_compression() {
        let mut m = header(7, 0x8180, 1, 3);
        m.extend(wire_name("www.example.test"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        // www.example.test CNAME edge.cdn.test (question name by pointer 12)
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60]);
        let target = wire_name("edge.cdn.test");
        m.extend_from_slice(&(target.len() as u16).to_be_bytes());
        let edge_at = m.len();
        m.extend(target);
        // edge.cdn.test A 192.0.2.7, AAAA 2001:db8::7 (name by pointer to the CNAME target)
        m.extend_from_slice(&[
            0xc0,
            edge_at as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            1,
            44,
            0,
            4,
            192,
            0,
            2,
            7,
        ]);
        m.extend_from_slice(&[0xc0, edge_at as u8, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16]);
        m.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        let d = parse_dns(&m).unwrap();
        assert!(d.response && d.complete);
        assert_eq!(d.question, Some(("www.example.test".into(), TYPE_A)));
        assert_eq!(d.answers.len(), 3);
        assert_eq!(d.answers[0].data, RData::Name("edge.cdn.test".into()));
        assert_eq!(d.answers[1].name, "edge.cdn.test");
        assert_eq!(d.answers[1].ttl, 300);
        assert_eq!(d.answers[1].data, RData::Addr("192.0.2.7".parse().unwrap()));
        assert_eq!(
            d.answers[2].data,
            RData::Addr("2001:db8::7".parse().unwrap())
        );
    }

    #[test]
    fn nxdomain_and_cut_short_answers() {
        let mut m = header(9, 0x8183, 1, 0);
        m.extend(wire_name("nope.test"));
        m.extend_from_slice(&[0, 28, 0, 1]);
        let d = parse_dns(&m).unwrap();
        assert_eq!(rcode_name(d.rcode), "nxdomain");
        assert_eq!(d.question.unwrap().1, TYPE_AAAA);
        // Announces an answer that is not there.
        let mut m = header(9, 0x8180, 1, 1);
        m.extend(wire_name("a.test"));
        m.extend_from_slice(&[0, 1, 0, 1, 0xc0, 12, 0, 1]);
        let d = parse_dns(&m).unwrap();
        assert!(!d.complete && d.answers.is_empty());
    }

    #[test]
    fn compression_loops_and_forward_pointers_are_refused() {
        // The question name points at itself.
        let mut m = header(1, 0x0100, 1, 0);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_dns(&m), None);
        // Two labels pointing at each other.
        let mut m = header(1, 0x8180, 1, 1);
        m.extend(wire_name("a.test"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        let at = m.len() as u8;
        m.extend_from_slice(&[1, b'x', 0xc0, at, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
        let d = parse_dns(&m).unwrap();
        assert!(!d.complete);
        // A pointer forward.
        let mut m = header(1, 0x0100, 1, 0);
        m.extend_from_slice(&[0xc0, 14, 1, b'a', 0, 0, 1, 0, 1]);
        assert_eq!(parse_dns(&m), None);
    }

    #[test]
    fn hostile_labels_are_escaped_and_bounded() {
        let mut m = header(1, 0x0100, 1, 0);
        m.push(8);
        m.extend_from_slice(b"a\nb\x1b[.\"<");
        m.push(3);
        m.extend_from_slice(b"t\\t");
        m.push(0);
        m.extend_from_slice(&[0, 1, 0, 1]);
        let (name, _) = parse_dns(&m).unwrap().question.unwrap();
        assert_eq!(name, "a\\010b\\027\\091\\.\\034\\060.t\\092t");
        assert!(name.chars().all(|c| c.is_ascii_graphic()));
        // A label of 64 bytes (a type-1 length byte) and a name over 255 bytes: refused.
        let mut m = header(1, 0x0100, 1, 0);
        m.push(64);
        m.extend_from_slice(&[b'a'; 64]);
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_dns(&m), None);
        let mut m = header(1, 0x0100, 1, 0);
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'a'; 63]);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_dns(&m), None);
        // Garbage of every length never panics.
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let _ = parse_dns(&junk);
            let _ = parse_client_hello(&junk);
            let _ = parse_http(&junk);
            let _ = parse_dnsproxyd(&junk);
        }
    }

    /// A ClientHello with the given extensions (type, data).
    pub fn client_hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0x11; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        let mut e = Vec::new();
        for (t, d) in exts {
            e.extend_from_slice(&t.to_be_bytes());
            e.extend_from_slice(&(d.len() as u16).to_be_bytes());
            e.extend_from_slice(d);
        }
        body.extend_from_slice(&(e.len() as u16).to_be_bytes());
        body.extend(e);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend(body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    pub fn sni_ext(name: &[u8]) -> (u16, Vec<u8>) {
        let mut d = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        d.push(0);
        d.extend_from_slice(&(name.len() as u16).to_be_bytes());
        d.extend_from_slice(name);
        (0, d)
    }

    #[test]
    fn client_hello_sni_alpn_versions() {
        let ch = client_hello(&[
            sni_ext(b"api.example.test"),
            (
                16,
                vec![
                    0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
                ],
            ),
            (43, vec![6, 0x2a, 0x2a, 3, 4, 3, 3]),
        ]);
        let h = parse_client_hello(&ch).unwrap();
        assert_eq!(h.sni.as_deref(), Some("api.example.test"));
        assert_eq!(h.alpn, ["h2", "http/1.1"]);
        assert_eq!(h.versions, ["TLS1.3", "TLS1.2"]);
        assert!(h.complete && !h.ech);
        // No SNI, ECH, hostile name.
        let h = parse_client_hello(&client_hello(&[(0xfe0d, vec![0; 8])])).unwrap();
        assert_eq!((h.sni, h.ech), (None, true));
        assert_eq!(h.versions, ["TLS1.2"]);
        let h = parse_client_hello(&client_hello(&[sni_ext(b"x\n<b>\\")])).unwrap();
        assert_eq!(h.sni.as_deref(), Some("x\\x0a<b>\\\\"));
        // Cut short in the middle of the extensions: what was read is kept.
        let ch = client_hello(&[sni_ext(b"a.test"), (21, vec![0; 300])]);
        let h = parse_client_hello(&ch[..ch.len() - 100]).unwrap();
        assert_eq!((h.sni.as_deref(), h.complete), (Some("a.test"), false));
        assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn http_request_line_and_host_never_the_body() {
        let r = parse_http(
            b"GET /collect?id=ABC123&x=1 HTTP/1.1\r\nUser-Agent: t\r\nHost: t.example.test:8080\r\n\r\nHost: body.test\r\n",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/collect?id=ABC123&x=1");
        assert_eq!(r.host.as_deref(), Some("t.example.test:8080"));
        assert_eq!(
            host_without_port(r.host.as_deref().unwrap()),
            "t.example.test"
        );
        assert!(!r.path_truncated);
        // Host after the blank line is body: not a header.
        let r = parse_http(b"POST /up HTTP/1.1\r\n\r\nHost: body.test\r\n").unwrap();
        assert_eq!(r.host, None);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(400));
        let r = parse_http(long.as_bytes()).unwrap();
        assert_eq!((r.path.len(), r.path_truncated), (PATH_MAX, true));
        let r = parse_http(b"GET /a?\x1b[31m HTTP/1.1\r\nHost: \x07h\r\n").unwrap();
        assert_eq!(r.path, "/a?\\x1b[31m");
        assert_eq!(r.host.as_deref(), Some("\\x07h"));
        assert_eq!(parse_http(b"\x16\x03\x01"), None);
        assert_eq!(parse_http(b"HELLO / HTTP/1.1\r\n"), None);
        assert_eq!(host_without_port("[2001:db8::1]:443"), "2001:db8::1");
    }

    #[test]
    fn dnsproxyd_commands() {
        assert_eq!(
            parse_dnsproxyd(b"getaddrinfo log.example.test ^ 1024 0 1 6\0"),
            Some(("getaddrinfo".into(), Some("log.example.test".into())))
        );
        assert_eq!(
            parse_dnsproxyd(b"gethostbyname 100 a.test 2\0"),
            Some(("gethostbyname".into(), Some("a.test".into())))
        );
        assert_eq!(
            parse_dnsproxyd(b"resnsend 0 AAAB\0"),
            Some(("resnsend".into(), None))
        );
        assert_eq!(parse_dnsproxyd(b"\x01\x02"), None);
    }
}
