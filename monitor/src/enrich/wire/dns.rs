//! DNS messages: header, question, answers (A, AAAA, CNAME), loop-safe name decompression.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{u16_at, u32_at};

/// Compression pointers followed in one name.
pub const MAX_POINTERS: usize = 16;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::wire::{parse_client_hello, parse_dnsproxyd, parse_http};

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
}
