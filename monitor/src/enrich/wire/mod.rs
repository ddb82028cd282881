//! Parsers for the bytes the kernel copies to name destinations (`net_data`): DNS messages,
//! TLS ClientHello records, HTTP/1.x request heads and Android dnsproxyd commands.
//!
//! Every input is hostile and may be cut short (the kernel copies at most
//! `monitor_common::net_data::DATA_LEN` bytes), so each parser works on a prefix, never panics,
//! never loops on its input and returns bounded, escaped strings: DNS names are at most 255
//! wire bytes with labels of at most 63 (anything else is refused), compression pointers must
//! point strictly backwards (no loops) and at most [`dns::MAX_POINTERS`] are followed; bytes other
//! than letters, digits, `-`, `_` and `*` in a name are written `\DDD` (decimal, as in zone
//! files), and a `.` inside a label `\.`. HTTP paths are cut at [`http::PATH_MAX`] characters.
//!
//! Hand-written rather than taken from a crate: the general DNS, TLS and HTTP parsers refuse
//! a message cut short, and a cut-short copy is what the kernel delivers.
mod dns;
mod http;
mod tls;

pub use dns::{RData, Record, parse_dns, rcode_name, type_name};
pub use http::{host_without_port, parse_dnsproxyd, parse_http};
pub use tls::parse_client_hello;

/// Characters of an HTTP method or Host value kept.
const FIELD_MAX: usize = 255;

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

/// Big-endian integers at `p`, `None` past the end.
pub(super) fn u16_at(b: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(p)?, *b.get(p + 1)?]))
}

pub(super) fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(p..p + 4)?.try_into().ok()?))
}
