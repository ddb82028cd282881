//! connect(): the destination is copied from user memory at the syscall's entry, the cgroup
//! `connect4`/`connect6` hook (which runs inside the syscall) adds the socket's protocol and the
//! kernel's own copy of the address, and the exit sends it with the result. Where the cgroup
//! hooks cannot attach, the type of sockets created while recording (`socket()`) stands in for
//! the protocol.
use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{cgroup_sock_addr, tracepoint},
    programs::{SockAddrContext, TracePointContext},
};
use monitor_common::{
    connect::{AF_INET, AF_INET6, AF_UNIX, Connect, RESOLVER_DNS, SEEN_BY_CGROUP},
    file::FdKey,
    kind,
    net_data::{CONN_DNSPROXY, CONN_INET, ConnState, FLAG_RESOLVER},
};

use super::net_data;

use crate::{
    args::{SysArgs, TpArgs},
    emit::{copy_payload, current_ids, field, reserve, submit},
    filter::{is_current_target, is_resolver, maybe_target},
    maps::{PENDING_CONNECT, PENDING_SOCKET, SOCK_TYPES, count_loss, loss},
};

#[repr(C)]
#[derive(Clone, Copy)]
struct SockaddrIn6 {
    family: u16,
    port_be: u16,
    flowinfo: u32,
    addr: [u8; 16],
}

/// `connect(fd, uservaddr, addrlen)` entry. A resolver process (`--resolver`, not a target)
/// gets only its connects to port 53 followed, without `connect` records.
#[inline(always)]
pub fn connect_enter(a: &impl SysArgs) {
    let task = current_ids();
    let resolver = if is_current_target(task.tgid) {
        false
    } else if net_data::enabled() && is_resolver(task.tgid) {
        true
    } else {
        return;
    };
    let fd = a.arg(0);
    let sa = a.arg(1) as *const u8;
    let addrlen = a.arg(2);
    let family: u16 = unsafe { bpf_probe_read_user(sa as *const u16) }.unwrap_or(0);
    // A unix socket is followed only to Android's dnsproxyd (with name capture on): the
    // app's `getaddrinfo` request names what it is about to connect to.
    let dnsproxy =
        !resolver && family == AF_UNIX && net_data::enabled() && net_data::is_dnsproxyd(sa);
    if family != AF_INET && family != AF_INET6 && !dnsproxy {
        return; // other unix sockets, AF_UNSPEC disconnects, unreadable addresses
    }
    // The socket's type, if it was created while recording: the protocol when the cgroup
    // hooks are missing (the hook overwrites it with the kernel's own view when it runs).
    let key = FdKey {
        tgid: task.tgid,
        fd: fd as u32,
    };
    let sock_type = unsafe { SOCK_TYPES.get(&key) }.map_or(0, |t| *t as u8);
    let mut c = Connect {
        fd: fd as i32,
        result: 0,
        family,
        dport: 0,
        protocol: 0,
        sock_type,
        flags: 0,
        _pad: 0,
        addrlen: addrlen as u32,
        daddr: [0; 16],
        conn_id: 0,
    };
    // sockaddr_in6 is a superset of sockaddr_in's prefix; read what the family needs.
    if family == AF_INET {
        if let Ok(s) = unsafe { bpf_probe_read_user(sa as *const [u8; 8]) } {
            c.dport = u16::from_be_bytes([s[2], s[3]]);
            c.daddr[..4].copy_from_slice(&s[4..8]);
        }
    } else if let Ok(s) = unsafe { bpf_probe_read_user(sa as *const SockaddrIn6) } {
        c.dport = u16::from_be(s.port_be);
        c.daddr = s.addr;
    }
    if resolver {
        if c.dport != net_data::DNS_PORT {
            return;
        }
        c.flags = RESOLVER_DNS;
    }
    if PENDING_CONNECT.insert(&task.tid, &c, 0).is_err() {
        count_loss(loss::PENDING_FULL);
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    connect_enter(&TpArgs(&ctx));
    0
}

/// cgroup connect4/connect6: runs in the connecting task, between entry and exit. Always allows.
#[inline(always)]
fn note_protocol(ctx: &SockAddrContext, v6: bool) -> i32 {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return 1;
    }
    let Some(c) = PENDING_CONNECT.get_ptr_mut(&task.tid) else {
        return 1;
    };
    let sa = unsafe { &*ctx.sock_addr };
    let c = unsafe { &mut *c };
    c.protocol = sa.protocol as u8;
    c.sock_type = sa.type_ as u8;
    c.flags |= SEEN_BY_CGROUP;
    // The kernel's copy is authoritative (the user page may have been unreadable at entry).
    c.dport = u16::from_be(sa.user_port as u16);
    if v6 {
        let mut a = [0u8; 16];
        for i in 0..4 {
            a[i * 4..i * 4 + 4].copy_from_slice(&sa.user_ip6[i].to_ne_bytes());
        }
        c.daddr = a;
    } else {
        c.daddr[..4].copy_from_slice(&sa.user_ip4.to_ne_bytes());
    }
    1
}

#[cgroup_sock_addr(connect4)]
pub fn cgroup_connect4(ctx: SockAddrContext) -> i32 {
    note_protocol(&ctx, false)
}

#[cgroup_sock_addr(connect6)]
pub fn cgroup_connect6(ctx: SockAddrContext) -> i32 {
    note_protocol(&ctx, true)
}

#[inline(always)]
pub fn connect_exit(ret: i64) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    let Some(pending) = (unsafe { PENDING_CONNECT.get(&task.tid) }) else {
        return;
    };
    // A connection that is (or is becoming) established gets an id and is followed for its
    // first bytes (`net_data`); EINPROGRESS: a non-blocking connect under way.
    let follow = net_data::enabled() && (ret == 0 || ret == -115);
    let resolver = pending.flags & RESOLVER_DNS != 0;
    // A resolver's DNS socket has no connection id: it has no `connect` event to share it.
    let conn_id = if follow && !resolver {
        net_data::next_conn_id()
    } else {
        0
    };
    if follow {
        let state = ConnState {
            conn_id,
            daddr: pending.daddr,
            family: pending.family,
            dport: pending.dport,
            kind: if pending.family == AF_UNIX {
                CONN_DNSPROXY
            } else {
                CONN_INET
            },
            sock_type: pending.sock_type,
            sent: 0,
            flags: if resolver { FLAG_RESOLVER } else { 0 },
        };
        net_data::track(task.tgid, pending.fd as u32, &state);
    }
    if pending.family != AF_UNIX
        && !resolver
        && let Some(mut entry) = reserve::<Connect>(kind::CONNECT, &task)
    {
        unsafe {
            let ev = entry.as_mut_ptr();
            copy_payload(&raw mut (*ev).payload, pending);
            (*ev).payload.result = ret as i32;
            (*ev).payload.conn_id = conn_id;
        }
        submit(entry);
    }
    let _ = PENDING_CONNECT.remove(&task.tid);
}

#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    connect_exit(field(&ctx, 16));
    0
}

/// `socket(family, type, protocol)` entry: remember the type of inet sockets a target creates
/// (the connect protocol where the cgroup hooks cannot attach, e.g. under Android's netd).
#[inline(always)]
pub fn socket_enter(a: &impl SysArgs) {
    let task = current_ids();
    if !is_current_target(task.tgid) && !(net_data::enabled() && is_resolver(task.tgid)) {
        return;
    }
    let family = a.arg(0) as u16;
    if family != AF_INET && family != AF_INET6 {
        return;
    }
    // SOCK_NONBLOCK / SOCK_CLOEXEC share the argument; the type is the low nibble.
    let sock_type = (a.arg(1) & 0xf) as u32;
    if PENDING_SOCKET.insert(&task.tid, &sock_type, 0).is_err() {
        count_loss(loss::PENDING_FULL);
    }
}

#[inline(always)]
pub fn socket_exit(ret: i64) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    let Some(sock_type) = (unsafe { PENDING_SOCKET.get(&task.tid) }).copied() else {
        return;
    };
    let _ = PENDING_SOCKET.remove(&task.tid);
    if ret < 0 {
        return;
    }
    let key = FdKey {
        tgid: task.tgid,
        fd: ret as u32,
    };
    let _ = SOCK_TYPES.insert(&key, &sock_type, 0);
}

#[tracepoint(category = "syscalls", name = "sys_enter_socket")]
pub fn sys_enter_socket(ctx: TracePointContext) -> u32 {
    socket_enter(&TpArgs(&ctx));
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_socket")]
pub fn sys_exit_socket(ctx: TracePointContext) -> u32 {
    socket_exit(field(&ctx, 16));
    0
}
