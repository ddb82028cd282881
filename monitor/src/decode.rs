//! Turning ring-buffer records into typed kernel structs. The only place that reads raw bytes.
use monitor_common::{
    Event, Header, app_state::AppState, binder::BinderCall, connect::Connect, device::Ioctl,
    file::FileOpen, file::FileRead, kind, process::Exec, process::Exit, process::Fork,
    process::Rename, process::Setuid,
};

#[derive(Debug, Clone)]
pub enum Raw {
    Fork(Header, Fork),
    Exec(Header, Exec),
    Exit(Header, Exit),
    Connect(Header, Connect),
    FileOpen(Header, FileOpen),
    FileRead(Header, FileRead),
    Ioctl(Header, Ioctl),
    AppState(Header, AppState),
    /// chdir (path) or fchdir (`dfd`) of a target.
    Chdir(Header, FileOpen),
    /// A binder transaction of a target (`BC_TRANSACTION(_SG)`).
    BinderCall(Header, Box<BinderCall>),
    Rename(Header, Rename),
    /// A target's uid change (the header has the new uid).
    Setuid(Header, Setuid),
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    Short { len: usize, need: usize },
    UnknownKind(u32),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Short { len, need } => write!(f, "record of {len} bytes, expected {need}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown event kind {k}"),
        }
    }
}

fn read<T: Copy>(bytes: &[u8]) -> Result<Event<T>, DecodeError> {
    let need = std::mem::size_of::<Event<T>>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: length checked; every field of these #[repr(C)] structs is valid for any bits.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event<T>>()) })
}

pub fn decode(bytes: &[u8]) -> Result<Raw, DecodeError> {
    let need = std::mem::size_of::<Header>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need,
        });
    }
    let k = u32::from_ne_bytes(bytes[0..4].try_into().unwrap());
    macro_rules! as_ {
        ($variant:ident, $t:ty) => {{
            let e = read::<$t>(bytes)?;
            Ok(Raw::$variant(e.header, e.payload))
        }};
    }
    match k {
        kind::FORK => as_!(Fork, Fork),
        kind::EXEC => as_!(Exec, Exec),
        kind::EXIT => as_!(Exit, Exit),
        kind::CONNECT => as_!(Connect, Connect),
        kind::FILE_OPEN => as_!(FileOpen, FileOpen),
        kind::FILE_READ => as_!(FileRead, FileRead),
        kind::IOCTL => as_!(Ioctl, Ioctl),
        kind::APP_STATE => as_!(AppState, AppState),
        kind::CHDIR => as_!(Chdir, FileOpen),
        kind::BINDER_CALL => {
            let e = read::<BinderCall>(bytes)?;
            Ok(Raw::BinderCall(e.header, Box::new(e.payload)))
        }
        kind::RENAME => as_!(Rename, Rename),
        kind::SETUID => as_!(Setuid, Setuid),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// A NUL-terminated kernel string as lossy UTF-8.
pub fn cstr(b: &[u8]) -> String {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use monitor_common::connect::{AF_INET6, SEEN_BY_CGROUP};

    pub fn header(kind: u32) -> Header {
        Header {
            kind,
            tid: 11,
            tgid: 10,
            uid: 1000,
            gid: 1000,
            _pad: 0,
            ts_ns: 123,
            cgroup_id: 1,
            comm: *b"simapp\0\0\0\0\0\0\0\0\0\0",
        }
    }

    pub fn bytes_of<T>(v: &T) -> Vec<u8> {
        let p = (v as *const T).cast::<u8>();
        unsafe { std::slice::from_raw_parts(p, std::mem::size_of::<T>()) }.to_vec()
    }

    #[test]
    fn layout_matches_the_kernel_side() {
        // The kernel writes these exact sizes; a change here must be made on both sides.
        assert_eq!(std::mem::size_of::<Header>(), 56);
        assert_eq!(std::mem::size_of::<Connect>(), 36);
        assert_eq!(std::mem::size_of::<Event<Connect>>(), 96);
        assert_eq!(
            std::mem::size_of::<FileOpen>(),
            32 + monitor_common::file::PATH_LEN
        );
    }

    #[test]
    fn decodes_a_connect() {
        let mut daddr = [0u8; 16];
        daddr[15] = 1;
        let ev = Event {
            header: header(kind::CONNECT),
            payload: Connect {
                fd: 3,
                result: -111,
                family: AF_INET6,
                dport: 8080,
                protocol: 6,
                sock_type: 1,
                flags: SEEN_BY_CGROUP,
                _pad: 0,
                addrlen: 28,
                daddr,
            },
        };
        match decode(&bytes_of(&ev)).unwrap() {
            Raw::Connect(h, c) => {
                assert_eq!((h.tgid, h.tid, h.uid), (10, 11, 1000));
                assert_eq!(cstr(&h.comm), "simapp");
                assert_eq!((c.dport, c.result, c.family), (8080, -111, AF_INET6));
                assert_eq!(c.daddr, daddr);
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(matches!(decode(&[0u8; 8]), Err(DecodeError::Short { .. })));
        let h = header(kind::CONNECT);
        assert!(matches!(
            decode(&bytes_of(&h)),
            Err(DecodeError::Short { .. })
        ));
        let h = header(999);
        assert_eq!(
            decode(&bytes_of(&h)).unwrap_err(),
            DecodeError::UnknownKind(999)
        );
    }

    #[test]
    fn cstr_stops_at_nul_and_survives_bad_utf8() {
        assert_eq!(cstr(b"abc\0def"), "abc");
        assert_eq!(cstr(b"abc"), "abc");
        assert_eq!(cstr(&[0xff, b'x', 0]), "\u{fffd}x");
    }
}
