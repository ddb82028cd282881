//! HTTP/1.x request heads (never bodies) and Android dnsproxyd commands.
use super::{FIELD_MAX, escape_bytes};

/// Characters of an HTTP request target kept (the rest is cut, `path_truncated`).
pub const PATH_MAX: usize = 256;
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
