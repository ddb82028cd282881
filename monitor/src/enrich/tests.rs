//! The enricher on recorded raw records, with recorded /proc answers (`ProcSource::Recorded`):
//! no /proc read, whatever processes exist on the machine running the tests.
use std::{collections::HashMap, sync::Arc};

use monitor_common::{
    Header, connect, file,
    file::{AT_FDCWD, PATH_FAULT, PATH_LEN, PATH_OK, SYS_OPENAT},
    kind, process,
};

use super::{
    Enricher,
    android::PackagesList,
    files::DevicePatterns,
    live_proc::{ProcSource, Recorded},
    process::ProcessTable,
};
use crate::{
    decode::Raw,
    event::{AddrFamily, Body, DeviceOp, Event, FlushedAt, PathOrigin, ProcOp, Proto, StateSource},
    geo::Geo,
};

/// pids far above any pid_max: a /proc read for them could only fail.
pub(crate) const APP: u32 = 4_000_000_001;
pub(crate) const CHILD: u32 = 4_000_000_002;

pub(crate) fn header(kind: u32, tgid: u32, comm: &str) -> Header {
    let mut c = [0u8; 16];
    c[..comm.len()].copy_from_slice(comm.as_bytes());
    Header {
        kind,
        tid: tgid,
        tgid,
        uid: 10123,
        gid: 10123,
        _pad: 0,
        ts_ns: 1_000,
        cgroup_id: 1,
        comm: c,
    }
}

pub(crate) fn enricher(recorded: Recorded) -> Enricher {
    let packages = PackagesList::parse(
        "com.example.app 10123 0 /data/user/0/com.example.app default:targetSdkVersion=34 3003\n",
    )
    .unwrap();
    Enricher::new(
        ProcessTable::new(packages),
        DevicePatterns::new(&[]).unwrap(),
        Geo::default(),
        0,
    )
    .with_proc_source(ProcSource::Recorded(Arc::new(recorded)))
}

fn run(e: &mut Enricher, raw: Raw) -> Vec<Event> {
    let mut out = Vec::new();
    e.enrich(&raw, &mut out);
    out
}

fn open(tgid: u32, path: &str, result: i32, status: u8) -> Raw {
    let mut p = [0u8; PATH_LEN];
    p[..path.len()].copy_from_slice(path.as_bytes());
    Raw::FileOpen(
        header(kind::FILE_OPEN, tgid, "app"),
        file::FileOpen {
            result,
            dfd: AT_FDCWD,
            flags: 0,
            path_len: path.len() as u32,
            syscall: SYS_OPENAT,
            path_status: status,
            _pad: [0; 6],
            user_path: 0,
            path: p,
        },
    )
}

#[test]
fn a_process_first_seen_by_an_open_gets_its_app_cwd_and_score_from_proc() {
    let mut e = enricher(Recorded {
        ppid: HashMap::from([(APP, 1)]),
        argv0: HashMap::from([(APP, "com.example.app".into())]),
        cwd: HashMap::from([(APP, "/data/user/0/com.example.app".into())]),
        oom_score_adj: HashMap::from([(APP, 0)]),
        ..Recorded::default()
    });
    let out = run(&mut e, open(APP, "databases/app.db", 5, PATH_OK));
    // The score found for a process seen for the first time, then the open.
    let Body::AppState(s) = &out[0].body else {
        panic!("{out:?}")
    };
    assert_eq!(
        (s.oom_score_adj, s.band.as_str(), s.source),
        (0, "foreground", StateSource::Proc)
    );
    let Body::FileOpen(o) = &out[1].body else {
        panic!("{out:?}")
    };
    assert_eq!(
        o.path.as_deref(),
        Some("/data/user/0/com.example.app/databases/app.db")
    );
    assert_eq!(o.path_origin, PathOrigin::Syscall);
    assert_eq!(out[1].app.as_deref(), Some("com.example.app"));
    assert_eq!((out[1].pid, out[1].ppid), (APP, 1));
}

#[test]
fn a_forked_child_inherits_app_and_cwd_and_its_reads_get_the_path() {
    let mut e = enricher(Recorded {
        argv0: HashMap::from([(APP, "com.example.app".into())]),
        cwd: HashMap::from([(APP, "/data/app".into())]),
        ..Recorded::default()
    });
    run(
        &mut e,
        Raw::Fork(
            header(kind::FORK, APP, "app"),
            process::Fork {
                child_tgid: CHILD,
                _pad: 0,
            },
        ),
    );
    let out = run(&mut e, open(CHILD, "cache/x", 7, PATH_OK));
    let Body::FileOpen(o) = &out[0].body else {
        panic!("{out:?}")
    };
    assert_eq!(o.path.as_deref(), Some("/data/app/cache/x"));
    assert_eq!(
        (out[0].app.as_deref(), out[0].ppid),
        (Some("com.example.app"), APP)
    );
    let out = run(
        &mut e,
        Raw::FileRead(
            header(kind::FILE_READ, CHILD, "app"),
            file::FileRead {
                fd: 7,
                reason: file::FLUSH_CLOSE,
                _pad: [0; 3],
                bytes: 4096,
                reads: 2,
            },
        ),
    );
    let Body::FileRead(r) = &out[0].body else {
        panic!("{out:?}")
    };
    assert_eq!(
        (r.path.as_deref(), r.bytes, r.flushed_at),
        (Some("/data/app/cache/x"), 4096, FlushedAt::Close)
    );
}

#[test]
fn an_unreadable_path_is_recovered_from_the_fd_or_marked_unrecovered() {
    let mut e = enricher(Recorded {
        fds: HashMap::from([((APP, 9), "/sdcard/DCIM/a.jpg".into())]),
        ..Recorded::default()
    });
    let out = run(&mut e, open(APP, "", 9, PATH_FAULT));
    let o = out
        .iter()
        .find_map(|e| match &e.body {
            Body::FileOpen(o) => Some(o),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (o.path.as_deref(), o.path_origin),
        (Some("/sdcard/DCIM/a.jpg"), PathOrigin::ProcFd)
    );
    let out = run(&mut e, open(APP, "", 10, PATH_FAULT));
    let Body::FileOpen(o) = &out[0].body else {
        panic!("{out:?}")
    };
    assert_eq!(
        (o.path.as_deref(), o.path_origin),
        (None, PathOrigin::Unrecovered)
    );
}

#[test]
fn a_camera_node_open_is_a_camera_event_and_a_connect_gets_proto_and_scope() {
    let mut e = enricher(Recorded::default());
    let out = run(&mut e, open(APP, "/dev/video0", 4, PATH_OK));
    let Body::Camera(d) = &out[0].body else {
        panic!("{out:?}")
    };
    assert_eq!(
        (d.op, d.path.as_deref()),
        (DeviceOp::Open, Some("/dev/video0"))
    );
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&[192, 0, 2, 1]);
    let out = run(
        &mut e,
        Raw::Connect(
            header(kind::CONNECT, APP, "app"),
            connect::Connect {
                fd: 3,
                result: -111,
                family: connect::AF_INET,
                dport: 443,
                protocol: 0,
                sock_type: 2,
                flags: 0,
                _pad: 0,
                addrlen: 16,
                daddr,
                conn_id: 0,
            },
        ),
    );
    let Body::Connect(c) = &out[0].body else {
        panic!("{out:?}")
    };
    assert_eq!(
        (c.family, c.proto, c.daddr.to_string(), c.dport),
        (AddrFamily::Inet, Proto::Udp, "192.0.2.1".to_string(), 443)
    );
    assert_eq!(
        (c.error.as_deref(), c.scope),
        (Some("ECONNREFUSED"), Some(crate::geo::Scope::Documentation))
    );
}

#[test]
fn exit_status_decodes_code_and_signal() {
    let mut e = enricher(Recorded::default());
    let exit = |code| {
        Raw::Exit(
            header(kind::EXIT, APP, "app"),
            process::Exit {
                exit_code: code,
                _pad: 0,
            },
        )
    };
    let ev = run(&mut e, exit(7 << 8));
    let ev = ev.last().unwrap();
    let Body::Process(p) = &ev.body else {
        panic!("{ev:?}")
    };
    assert_eq!((p.op, p.exit_code, p.signal), (ProcOp::Exit, Some(7), None));
    let ev = run(&mut e, exit(9));
    let Body::Process(p) = &ev.last().unwrap().body else {
        panic!()
    };
    assert_eq!((p.exit_code, p.signal), (None, Some(9)));
}

/// A path that filled the kernel's buffer may go on: it is not taken for its prefix (which
/// `..` / `.` resolution would turn into another real file, here `/`), it is unknown.
#[test]
fn a_path_cut_by_the_kernel_is_unknown_not_its_prefix() {
    let mut e = enricher(Recorded::default());
    let full = format!("/{}proc/cpuinfo", "./".repeat(150));
    let cut = &full[..PATH_LEN - 1];
    let Raw::FileOpen(h, mut o) = open(APP, cut, 3, PATH_OK) else {
        unreachable!()
    };
    o.path_len = PATH_LEN as u32; // 255 bytes and the NUL: the buffer is full
    let out = run(&mut e, Raw::FileOpen(h, o));
    let o = out
        .iter()
        .find_map(|ev| match &ev.body {
            Body::FileOpen(o) => Some(o),
            _ => None,
        })
        .expect("a file_open");
    assert_eq!(o.path, None);
    assert_eq!(o.path_origin, PathOrigin::Truncated);
    assert!(o.path_truncated);
    assert_eq!(o.path_prefix.as_deref(), Some(cut));
    // A path one byte shorter is whole.
    let whole = &full[..PATH_LEN - 2];
    let out = run(&mut e, open(APP, whole, 4, PATH_OK));
    let Some(Body::FileOpen(o)) = out.last().map(|e| &e.body) else {
        panic!("{out:?}")
    };
    assert!(!o.path_truncated);
    assert_eq!(o.path.as_deref(), Some("/"));
}

/// The process a binder call goes to: above pid_max (2^22), and within the kernel's i32.
const SERVER: u32 = 4_194_305;

/// A kernel binder record: a call on `handle` with `parcel`, and for lookups the reply.
fn binder_call(handle: u32, code: u32, parcel: &[u8], reply: &[u8]) -> Raw {
    use monitor_common::binder::{BC_TRANSACTION, BinderCall, PARCEL_COPY, REPLY_COPY};
    let mut data = [0u8; PARCEL_COPY];
    data[..parcel.len()].copy_from_slice(parcel);
    let mut r = [0u8; REPLY_COPY];
    r[..reply.len()].copy_from_slice(reply);
    Raw::BinderCall(
        header(kind::BINDER_CALL, APP, "app"),
        Box::new(BinderCall {
            state: 1,
            command: BC_TRANSACTION,
            handle,
            code,
            flags: 0,
            to_proc: SERVER as i32,
            to_thread: 0,
            result: 0,
            data_size: parcel.len() as u64,
            offsets_size: 0,
            copied: parcel.len() as u32,
            reply_copied: reply.len() as u32,
            more: 0,
            waits: 0,
            enter_ns: 1_000,
            bwr: 0,
            data,
            reply: r,
        }),
    )
}

#[test]
fn binder_lookups_name_handles_and_rules_make_capabilities() {
    use super::binder::tests::parcel;
    use crate::event::{Capability, TokenLayout};
    let mut rec = Recorded::default();
    rec.argv0.insert(SERVER, "system_server".into());
    let mut e = enricher(rec);
    // getService("clipboard") -> handle 7 (an AIDL reply: status, flat_binder_object).
    let mut reply = 0u32.to_le_bytes().to_vec();
    reply.extend(monitor_common::binder::BINDER_TYPE_HANDLE.to_le_bytes());
    reply.extend(0x17fu32.to_le_bytes());
    reply.extend(7u64.to_le_bytes());
    let lookup = parcel(
        TokenLayout::System,
        "android.os.IServiceManager",
        Some("clipboard"),
    );
    let out = run(&mut e, binder_call(0, 1, &lookup, &reply));
    let Body::BinderCall(c) = &out.last().unwrap().body else {
        panic!("{out:?}")
    };
    assert_eq!(
        (c.method.as_deref(), c.lookup.as_deref(), c.lookup_handle),
        (Some("getService"), Some("clipboard"), Some(7))
    );
    assert_eq!(c.service.as_deref(), Some("servicemanager"));
    assert_eq!(c.callee.as_deref(), Some("system_server"));
    // getPrimaryClip (code 4 at API 34) on handle 7: a binder_call, then a clipboard event.
    let get = parcel(TokenLayout::System, "android.content.IClipboard", None);
    let out = run(&mut e, binder_call(7, 4, &get, &[]));
    let n = out.len();
    let Body::BinderCall(c) = &out[n - 2].body else {
        panic!("{out:?}")
    };
    assert_eq!(c.capability, Some(Capability::Clipboard));
    assert_eq!(c.service.as_deref(), Some("clipboard"));
    let Body::Clipboard(d) = &out[n - 1].body else {
        panic!("{out:?}")
    };
    assert_eq!(
        (d.op, d.path.as_deref()),
        (
            DeviceOp::ServiceCall,
            Some("binder:clipboard/android.content.IClipboard.getPrimaryClip")
        )
    );
    // An unknown code of a known interface: reported with its code, no capability.
    let out = run(&mut e, binder_call(7, 99, &get, &[]));
    let Body::BinderCall(c) = &out.last().unwrap().body else {
        panic!("{out:?}")
    };
    assert_eq!(
        (c.method.as_deref(), c.code, c.capability),
        (None, 99, None)
    );
    // Not a parcel with a token: a binder_call without interface.
    let out = run(&mut e, binder_call(7, 4, &[0xff; 40], &[]));
    let Body::BinderCall(c) = &out.last().unwrap().body else {
        panic!("{out:?}")
    };
    assert_eq!((c.interface.as_deref(), c.token_layout), (None, None));
}
