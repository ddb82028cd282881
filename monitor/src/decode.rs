//! Turning ring-buffer records into typed kernel structs. The only place that reads raw bytes.
use monitor_common::{
    Event, Header, app_state::AppState, binder::BinderCall, connect::Connect, device::Ioctl,
    file::FileOpen, file::FileRead, kind, net_data::NetData, process::Exec, process::Exit,
    process::Fork, process::Rename, process::Setuid,
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
    /// Bytes a target sent (first bytes of a connection, DNS query, dnsproxyd command).
    NetSend(Header, NetData),
    /// Bytes a target received on a DNS socket.
    NetRecv(Header, NetData),
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

/// An event the kernel sends only as far as it uses (`FileOpen`: up to the end of its path):
/// at least `min` bytes, the rest of `Event<T>` read as zeros.
fn read_prefix<T: Copy>(bytes: &[u8], min: usize) -> Result<Event<T>, DecodeError> {
    let full = std::mem::size_of::<Event<T>>();
    if bytes.len() >= full {
        return read::<T>(bytes);
    }
    if bytes.len() < min {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need: min,
        });
    }
    let mut ev = std::mem::MaybeUninit::<Event<T>>::zeroed();
    // SAFETY: bytes.len() < size_of::<Event<T>>(), so the copy stays inside `ev`; every field
    // of these #[repr(C)] structs is valid for any bits, zeros included.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ev.as_mut_ptr().cast::<u8>(), bytes.len());
        Ok(ev.assume_init())
    }
}

/// The shortest open (or chdir) record: the header and `FileOpen` up to its path.
const FILE_OPEN_MIN: usize = std::mem::size_of::<Header>() + monitor_common::file::PATH_OFFSET;

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
        kind::FILE_OPEN => {
            let e = read_prefix::<FileOpen>(bytes, FILE_OPEN_MIN)?;
            Ok(Raw::FileOpen(e.header, e.payload))
        }
        kind::FILE_READ => as_!(FileRead, FileRead),
        kind::IOCTL => as_!(Ioctl, Ioctl),
        kind::APP_STATE => as_!(AppState, AppState),
        kind::CHDIR => {
            let e = read_prefix::<FileOpen>(bytes, FILE_OPEN_MIN)?;
            Ok(Raw::Chdir(e.header, e.payload))
        }
        kind::BINDER_CALL => {
            let e = read::<BinderCall>(bytes)?;
            Ok(Raw::BinderCall(e.header, Box::new(e.payload)))
        }
        kind::RENAME => as_!(Rename, Rename),
        kind::SETUID => as_!(Setuid, Setuid),
        kind::NET_SEND => as_!(NetSend, NetData),
        kind::NET_RECV => as_!(NetRecv, NetData),
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
        assert_eq!(std::mem::size_of::<Connect>(), 48);
        assert_eq!(std::mem::size_of::<Event<Connect>>(), 104);
        assert_eq!(
            std::mem::size_of::<NetData>(),
            48 + monitor_common::net_data::DATA_LEN
        );
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
                conn_id: 5,
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
    fn an_open_is_read_as_far_as_the_kernel_sent_it() {
        use monitor_common::file::{PATH_LEN, PATH_OFFSET, PATH_OK, SYS_OPENAT};
        let mut path = [0u8; PATH_LEN];
        path[..12].copy_from_slice(b"/etc/hosts\0\0");
        // Bytes after the NUL are whatever a longer path of the same thread left there.
        path[11..20].copy_from_slice(b"leftover!");
        let ev = Event {
            header: header(kind::FILE_OPEN),
            payload: FileOpen {
                result: 3,
                dfd: -100,
                flags: 0,
                path_len: 11,
                syscall: SYS_OPENAT,
                path_status: PATH_OK,
                _pad: [0; 6],
                user_path: 0x1000,
                path,
            },
        };
        let all = bytes_of(&ev);
        let sent = std::mem::size_of::<Header>() + PATH_OFFSET + 11;
        let Raw::FileOpen(h, o) = decode(&all[..sent]).unwrap() else {
            panic!("not an open")
        };
        assert_eq!((h.tgid, o.result, o.path_len), (10, 3, 11));
        assert_eq!(cstr(&o.path), "/etc/hosts");
        assert!(
            o.path[11..].iter().all(|&b| b == 0),
            "the unsent tail reads as zeros"
        );
        // The whole record still decodes, and so does a chdir sent without a path.
        assert!(matches!(decode(&all), Ok(Raw::FileOpen(..))));
        let mut chdir = all.clone();
        chdir[0..4].copy_from_slice(&kind::CHDIR.to_ne_bytes());
        let Raw::Chdir(_, o) = decode(&chdir[..sent - 11]).unwrap() else {
            panic!("not a chdir")
        };
        assert_eq!(o.path[0], 0);
        // One byte short of the fixed part is refused.
        assert_eq!(
            decode(&all[..sent - 12]).unwrap_err(),
            DecodeError::Short {
                len: sent - 12,
                need: sent - 11
            }
        );
    }

    #[test]
    fn cstr_stops_at_nul_and_survives_bad_utf8() {
        assert_eq!(cstr(b"abc\0def"), "abc");
        assert_eq!(cstr(b"abc"), "abc");
        assert_eq!(cstr(&[0xff, b'x', 0]), "\u{fffd}x");
    }
}
