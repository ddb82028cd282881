//! `connect()` payload: address from `sys_enter_connect`, result from `sys_exit_connect`,
//! socket protocol from the cgroup `connect4`/`connect6` hook that runs in between.

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// What the cgroup hook saw of this connect, if it ran.
pub const SEEN_BY_CGROUP: u8 = 1;
/// A resolver process's connect to port 53 (`tgid_role::RESOLVER`): its socket is followed
/// for DNS messages, and no `connect` record is sent.
pub const RESOLVER_DNS: u8 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Connect {
    pub fd: i32,
    /// The syscall's return value: 0 or -errno (e.g. -115 EINPROGRESS).
    pub result: i32,
    /// `sa_family` as the caller passed it (AF_INET, AF_INET6, AF_UNIX, ...).
    pub family: u16,
    /// Destination port, host byte order.
    pub dport: u16,
    /// `IPPROTO_TCP`/`IPPROTO_UDP` from the cgroup hook; 0 when unknown.
    pub protocol: u8,
    /// `SOCK_STREAM`/`SOCK_DGRAM` from the cgroup hook; 0 when unknown.
    pub sock_type: u8,
    /// Bit set of `SEEN_BY_CGROUP`, `RESOLVER_DNS`.
    pub flags: u8,
    pub _pad: u8,
    pub addrlen: u32,
    /// IPv4 in the first 4 bytes, or IPv6; network byte order.
    pub daddr: [u8; 16],
    /// Kernel-side connection id (unique per recording; 0: not tracked), carried by the
    /// `NetData` events of the same socket.
    pub conn_id: u64,
}
