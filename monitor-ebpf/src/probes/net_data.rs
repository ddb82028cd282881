//! Bounded copies of the bytes that name a target's destinations (`monitor_common::net_data`).
//!
//! `connect()` gives each inet socket a target connects (and each unix socket connected to
//! Android's dnsproxyd) a connection id and a `SOCK_CONNS` entry keyed by (tgid, fd). The send
//! calls (write, writev, sendto, sendmsg, sendmmsg) then copy, at entry, up to `DATA_LEN` bytes
//! of: the first send on a stream connection (a TLS ClientHello or an HTTP request), every send
//! to port 53 (DNS queries, also unconnected `sendto`/`sendmsg` with an address) and the first
//! command written to dnsproxyd. The receive calls (read, recvfrom, recvmsg) on a port-53
//! socket copy the answer at exit. Every other task stops at the target pre-filter; a target
//! pays one `SOCK_CONNS` lookup per send (and per receive on fds that are not tracked files).
//! The copy goes straight into the ring-buffer record: no stack, no scratch map.
use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_probe_read_user, generated},
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{
    config,
    connect::{AF_INET, AF_INET6},
    file::FdKey,
    kind,
    net_data::{
        CONN_DNSPROXY, CONN_INET, ConnState, DATA_LEN, DIR_RECV, DIR_SEND, FLAG_RESOLVER, NetData,
        PendingRecv, SYS_READ, SYS_RECVFROM, SYS_RECVMSG, SYS_SENDMMSG, SYS_SENDMSG, SYS_SENDTO,
        SYS_WRITE, SYS_WRITEV, WHY_DNS, WHY_DNSPROXY, WHY_FIRST,
    },
};

use crate::{
    args::{SysArgs, TpArgs},
    emit::{Ids, current_ids, field, reserve, submit},
    filter::{is_known_target, is_resolver, maybe_target},
    maps::{CONN_SEQ, PENDING_RECV, SOCK_CONNS, config as cfg, count_loss, loss},
};

pub const DNS_PORT: u16 = 53;
const SOCK_DGRAM: u8 = 2;

/// Is name capture on (`--names`)?
#[inline(always)]
pub fn enabled() -> bool {
    cfg(config::NAMES) != 0
}

/// A new connection id: a per-CPU sequence number with the CPU in the low 10 bits, so ids
/// never collide across CPUs without atomics.
#[inline(always)]
pub fn next_conn_id() -> u64 {
    let cpu = unsafe { bpf_get_smp_processor_id() } as u64 & 0x3ff;
    let Some(seq) = CONN_SEQ.get_ptr_mut(0) else {
        return 0;
    };
    unsafe {
        *seq += 1;
        (*seq << 10) | cpu
    }
}

/// Remember a connected socket (called at connect exit, for targets).
#[inline(always)]
pub fn track(tgid: u32, fd: u32, state: &ConnState) {
    let key = FdKey { tgid, fd };
    let _ = SOCK_CONNS.insert(&key, state, 0);
}

/// Forget a socket at close.
#[inline(always)]
pub fn forget(tgid: u32, fd: u32) {
    let _ = SOCK_CONNS.remove(&FdKey { tgid, fd });
}

/// Copy `len` bytes of user memory at `buf` into a `NetData` record and send it. `tail`: a
/// second iovec sent after a 2-byte first one (the length prefix of DNS over TCP, which
/// glibc writes as its own iovec); copied after those 2 bytes.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn emit(
    task: &Ids,
    fd: u32,
    s: &ConnState,
    dir: u8,
    why: u8,
    syscall: u8,
    buf: u64,
    len: u64,
    tail: Option<(u64, u64)>,
) {
    let Some(mut entry) = reserve::<NetData>(
        if dir == DIR_SEND {
            kind::NET_SEND
        } else {
            kind::NET_RECV
        },
        task,
    ) else {
        return;
    };
    unsafe {
        let ev = entry.as_mut_ptr();
        let p = &raw mut (*ev).payload;
        (*p).conn_id = s.conn_id;
        (*p).fd = fd as i32;
        let total = len + tail.map_or(0, |t| t.1);
        (*p).len = if total > u32::MAX as u64 {
            u32::MAX
        } else {
            total as u32
        };
        (*p).dport = s.dport;
        (*p).family = s.family;
        (*p).dir = dir;
        (*p).why = why;
        (*p).sock_type = s.sock_type;
        (*p).syscall = syscall;
        (*p).flags = s.flags;
        (*p)._pad = [0; 3];
        (*p).daddr = s.daddr;
        let data = (&raw mut (*p).data).cast::<u8>();
        let mut captured = read_user_upto::<{ DATA_LEN as u64 }>(data, len, buf);
        if let Some((tbuf, tlen)) = tail
            && captured == 2
        {
            captured += read_user_upto::<{ DATA_LEN as u64 - 2 }>(data.add(2), tlen, tbuf);
        }
        (*p).captured = captured;
    }
    submit(entry);
}

/// Copy at most `CAP` (and at most `len`) bytes of user memory at `src` to `dst`; returns the
/// bytes copied (0 when the memory could not be read). A function of its own (a BPF-to-BPF
/// call): the clamped length stays in a register from the check to the helper call, which
/// older verifiers (Linux 6.1) need to accept the size; inlined, LLVM reloaded it from a stack
/// slot the verifier does not track.
#[inline(never)]
fn read_user_upto<const CAP: u64>(dst: *mut u8, len: u64, src: u64) -> u32 {
    if len == 0 || src == 0 {
        return 0;
    }
    let n = if len > CAP { CAP } else { len };
    let r = unsafe {
        generated::bpf_probe_read_user(dst.cast(), n as u32, src as *const core::ffi::c_void)
    };
    if r == 0 { n as u32 } else { 0 }
}

/// The port of a user `sockaddr` (inet families only), with its address.
#[inline(always)]
fn user_addr(sa: u64) -> Option<(u16, u16, [u8; 16])> {
    if sa == 0 {
        return None;
    }
    let b: [u8; 24] = unsafe { bpf_probe_read_user(sa as *const [u8; 24]) }.ok()?;
    let family = u16::from_ne_bytes([b[0], b[1]]);
    let port = u16::from_be_bytes([b[2], b[3]]);
    let mut addr = [0u8; 16];
    if family == AF_INET {
        addr[..4].copy_from_slice(&b[4..8]);
    } else if family == AF_INET6 {
        addr.copy_from_slice(&b[8..24]);
    } else {
        return None;
    }
    Some((family, port, addr))
}

/// A send of `len` bytes at `buf` on `fd`; `dest` is the `sockaddr` a sendto/sendmsg named;
/// `tail`: see `emit`.
#[inline(always)]
fn send(syscall: u8, fd: u64, buf: u64, len: u64, dest: u64, tail: Option<(u64, u64)>) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    let key = FdKey {
        tgid: task.tgid,
        fd: fd as u32,
    };
    if let Some(s) = SOCK_CONNS.get_ptr_mut(&key) {
        let st = unsafe { &mut *s };
        let why = if st.kind == CONN_DNSPROXY {
            if st.sent != 0 {
                return;
            }
            WHY_DNSPROXY
        } else if st.dport == DNS_PORT {
            WHY_DNS
        } else if st.sent == 0 && st.sock_type != SOCK_DGRAM {
            WHY_FIRST
        } else {
            return;
        };
        st.sent = 1;
        let copy = *st;
        emit(
            &task, fd as u32, &copy, DIR_SEND, why, syscall, buf, len, tail,
        );
        return;
    }
    // An unconnected datagram to port 53: a DNS query. Track the socket so its answer is read.
    if dest == 0 || !enabled() {
        return;
    }
    let Some((family, port, daddr)) = user_addr(dest) else {
        return;
    };
    if port != DNS_PORT {
        return;
    }
    // The pre-filter let a target or a resolver (or a process sharing a slot) through.
    let flags = if is_known_target(task.tgid) {
        0
    } else if is_resolver(task.tgid) {
        FLAG_RESOLVER
    } else {
        return;
    };
    let st = ConnState {
        conn_id: 0,
        daddr,
        family,
        dport: port,
        kind: CONN_INET,
        sock_type: SOCK_DGRAM,
        sent: 1,
        flags,
    };
    track(task.tgid, fd as u32, &st);
    emit(
        &task, fd as u32, &st, DIR_SEND, WHY_DNS, syscall, buf, len, None,
    );
}

/// write(fd, buf, count), sendto(fd, buf, len, flags, addr, addrlen).
#[inline(always)]
pub fn write_enter(a: &impl SysArgs) {
    send(SYS_WRITE, a.arg(0), a.arg(1), a.arg(2), 0, None);
}

#[inline(always)]
pub fn sendto_enter(a: &impl SysArgs) {
    send(SYS_SENDTO, a.arg(0), a.arg(1), a.arg(2), a.arg(4), None);
}

/// writev(fd, iov, iovcnt): the first iovec (and the second after a 2-byte first one). glibc
/// sends its A and AAAA queries over TCP in one writev of four iovecs (length, query, length,
/// query): the second pair is a message of its own.
#[inline(always)]
pub fn writev_enter(a: &impl SysArgs) {
    if !maybe_target(current_ids().tgid) {
        return;
    }
    let iov = a.arg(1);
    let cnt = a.arg(2);
    let Ok(v) = (unsafe { bpf_probe_read_user(iov as *const [u64; 4]) }) else {
        return;
    };
    let tail = (cnt >= 2 && v[1] == 2).then_some((v[2], v[3]));
    send(SYS_WRITEV, a.arg(0), v[0], v[1], 0, tail);
    if cnt >= 4
        && v[1] == 2
        && let Ok(w) = (unsafe { bpf_probe_read_user((iov + 32) as *const [u64; 4]) })
        && w[1] == 2
    {
        send(SYS_WRITEV, a.arg(0), w[0], w[1], 0, Some((w[2], w[3])));
    }
}

/// `struct user_msghdr`: msg_name @0, msg_iov @16 (the first iovec is sent).
#[inline(always)]
fn msg_parts(msg: u64) -> Option<(u64, u64, u64)> {
    let m: [u64; 4] = unsafe { bpf_probe_read_user(msg as *const [u64; 4]) }.ok()?;
    let iov: [u64; 2] = unsafe { bpf_probe_read_user(m[2] as *const [u64; 2]) }.ok()?;
    Some((m[0], iov[0], iov[1]))
}

/// sendmsg(fd, msg, flags).
#[inline(always)]
pub fn sendmsg_enter(a: &impl SysArgs) {
    if !maybe_target(current_ids().tgid) {
        return;
    }
    if let Some((name, buf, len)) = msg_parts(a.arg(1)) {
        send(SYS_SENDMSG, a.arg(0), buf, len, name, None);
    }
}

/// sendmmsg(fd, msgvec, vlen, flags): the first two messages (glibc's resolver sends the A and
/// AAAA queries in one call); `struct mmsghdr` is 64 bytes.
#[inline(always)]
pub fn sendmmsg_enter(a: &impl SysArgs) {
    if !maybe_target(current_ids().tgid) {
        return;
    }
    let vec = a.arg(1);
    let vlen = a.arg(2);
    if vlen >= 1
        && let Some((name, buf, len)) = msg_parts(vec)
    {
        send(SYS_SENDMMSG, a.arg(0), buf, len, name, None);
    }
    if vlen >= 2
        && let Some((name, buf, len)) = msg_parts(vec + 64)
    {
        send(SYS_SENDMMSG, a.arg(0), buf, len, name, None);
    }
}

/// A receive on `fd` into `buf` (`cap` bytes): pending when the socket is a DNS one.
#[inline(always)]
fn recv_enter(task: &Ids, syscall: u8, fd: u64, buf: u64, cap: u64) {
    let key = FdKey {
        tgid: task.tgid,
        fd: fd as u32,
    };
    let Some(st) = (unsafe { SOCK_CONNS.get(&key) }) else {
        return;
    };
    if st.dport != DNS_PORT || st.kind != CONN_INET {
        return;
    }
    let p = PendingRecv {
        active: 1,
        buf,
        cap,
        state: *st,
        fd: fd as i32,
        syscall,
        _pad: [0; 3],
    };
    if PENDING_RECV.insert(&task.tid, &p, 0).is_err() {
        count_loss(loss::PENDING_FULL);
    }
}

/// read(fd, buf, count): called by the file probes after the fd proved not to be a tracked
/// file.
#[inline(always)]
pub fn read_enter(task: &Ids, a: &impl SysArgs) {
    recv_enter(task, SYS_READ, a.arg(0), a.arg(1), a.arg(2));
}

#[inline(always)]
pub fn recvfrom_enter(a: &impl SysArgs) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    recv_enter(&task, SYS_RECVFROM, a.arg(0), a.arg(1), a.arg(2));
}

#[inline(always)]
pub fn recvmsg_enter(a: &impl SysArgs) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    if let Some((_, buf, len)) = msg_parts(a.arg(1)) {
        recv_enter(&task, SYS_RECVMSG, a.arg(0), buf, len);
    }
}

/// Exit of read/recvfrom/recvmsg: copy what arrived.
#[inline(always)]
pub fn recv_exit(ret: i64) {
    let task = current_ids();
    if !maybe_target(task.tgid) {
        return;
    }
    let Some(p) = (unsafe { PENDING_RECV.get(&task.tid) }).copied() else {
        return;
    };
    let _ = PENDING_RECV.remove(&task.tid);
    if ret <= 0 {
        return;
    }
    let mut n = ret as u64;
    if n > p.cap {
        n = p.cap;
    }
    emit(
        &task,
        p.fd as u32,
        &p.state,
        DIR_RECV,
        WHY_DNS,
        p.syscall,
        p.buf,
        n,
        None,
    );
}

/// Unix-socket connect: is it netd's dnsproxyd? (`sun_path` after the 2-byte family.)
#[inline(always)]
pub fn is_dnsproxyd(sa: *const u8) -> bool {
    let Ok(b) = (unsafe { bpf_probe_read_user(sa.add(2) as *const [u8; 22]) }) else {
        return false;
    };
    b == *monitor_common::net_data::DNSPROXYD_PATH
}

macro_rules! enter_tp {
    ($($name:ident, $tp:literal, $f:path;)*) => {$(
        #[tracepoint(category = "syscalls", name = $tp)]
        pub fn $name(ctx: TracePointContext) -> u32 {
            $f(&TpArgs(&ctx));
            0
        }
    )*};
}

enter_tp! {
    sys_enter_write, "sys_enter_write", write_enter;
    sys_enter_writev, "sys_enter_writev", writev_enter;
    sys_enter_sendto, "sys_enter_sendto", sendto_enter;
    sys_enter_sendmsg, "sys_enter_sendmsg", sendmsg_enter;
    sys_enter_sendmmsg, "sys_enter_sendmmsg", sendmmsg_enter;
    sys_enter_recvfrom, "sys_enter_recvfrom", recvfrom_enter;
    sys_enter_recvmsg, "sys_enter_recvmsg", recvmsg_enter;
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvfrom")]
pub fn sys_exit_recvfrom(ctx: TracePointContext) -> u32 {
    recv_exit(field(&ctx, 16));
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvmsg")]
pub fn sys_exit_recvmsg(ctx: TracePointContext) -> u32 {
    recv_exit(field(&ctx, 16));
    0
}
