//! TLS ClientHello records: server name (or why there is none), ALPN, versions offered.
use super::{FIELD_MAX, escape_bytes, u16_at};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
