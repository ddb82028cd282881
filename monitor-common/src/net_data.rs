//! Bytes a target sends or receives on a socket, copied (bounded) for naming its destinations:
//! the first bytes of each stream connection (a TLS ClientHello, an HTTP request line and
//! headers), every DNS query sent to port 53 and every DNS answer read from it, and the command
//! an Android app writes to netd's `dnsproxyd` socket. Parsing happens in userspace.

/// Bytes of payload copied per event (the rest of a longer send is counted in `len` only).
pub const DATA_LEN: usize = 512;

/// `dir`: the target sent the bytes.
pub const DIR_SEND: u8 = 1;
/// `dir`: the target received them.
pub const DIR_RECV: u8 = 2;

/// `why`: the first send on a stream (TCP) connection.
pub const WHY_FIRST: u8 = 1;
/// `why`: a DNS message (peer port 53), sent or received.
pub const WHY_DNS: u8 = 2;
/// `why`: the first send on a unix socket connected to Android's `/dev/socket/dnsproxyd`.
pub const WHY_DNSPROXY: u8 = 3;

/// `syscall`: which call moved the bytes.
pub const SYS_WRITE: u8 = 1;
pub const SYS_WRITEV: u8 = 2;
pub const SYS_SENDTO: u8 = 3;
pub const SYS_SENDMSG: u8 = 4;
pub const SYS_SENDMMSG: u8 = 5;
pub const SYS_READ: u8 = 6;
pub const SYS_RECVFROM: u8 = 7;
pub const SYS_RECVMSG: u8 = 8;

/// `ConnState::kind`: an inet (TCP/UDP) connection.
pub const CONN_INET: u8 = 1;
/// `ConnState::kind`: a unix socket connected to netd's dnsproxyd.
pub const CONN_DNSPROXY: u8 = 2;

/// `NetData::flags` / `ConnState::flags`: a resolver process's socket, not a target's
/// (`tgid_role::RESOLVER`): only its DNS messages are copied.
pub const FLAG_RESOLVER: u8 = 1;

/// Path of netd's resolver socket on Android (what `getaddrinfo` in bionic connects to).
pub const DNSPROXYD_PATH: &[u8; 22] = b"/dev/socket/dnsproxyd\0";

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetData {
    /// The connection's id, as on its `connect` event (0: a socket not connected while
    /// recording, e.g. a DNS query sent with `sendto` and an address).
    pub conn_id: u64,
    pub fd: i32,
    /// Bytes the call sent (asked to send) or received.
    pub len: u32,
    /// Bytes copied into `data` (0 when user memory could not be read).
    pub captured: u32,
    /// Peer port, host byte order.
    pub dport: u16,
    /// AF_INET / AF_INET6 (AF_UNIX for dnsproxyd).
    pub family: u16,
    /// `DIR_*`.
    pub dir: u8,
    /// `WHY_*`.
    pub why: u8,
    /// SOCK_STREAM / SOCK_DGRAM when known, 0 otherwise.
    pub sock_type: u8,
    /// `SYS_*`.
    pub syscall: u8,
    /// `FLAG_*`.
    pub flags: u8,
    pub _pad: [u8; 3],
    /// Peer address, network byte order (IPv4 in the first 4 bytes).
    pub daddr: [u8; 16],
    pub data: [u8; DATA_LEN],
}

/// What the kernel keeps per (tgid, fd) of a socket a target connected while recording.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnState {
    pub conn_id: u64,
    pub daddr: [u8; 16],
    pub family: u16,
    pub dport: u16,
    /// `CONN_*`.
    pub kind: u8,
    pub sock_type: u8,
    /// Non-zero once the first send was copied.
    pub sent: u8,
    /// `FLAG_*`.
    pub flags: u8,
}

/// A receive in flight on a DNS socket, by thread id.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PendingRecv {
    /// Non-zero when a receive is pending.
    pub active: u64,
    /// The user buffer (first iovec for recvmsg).
    pub buf: u64,
    /// Its size.
    pub cap: u64,
    pub state: ConnState,
    pub fd: i32,
    pub syscall: u8,
    pub _pad: [u8; 3],
}
