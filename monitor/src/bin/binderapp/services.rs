//! The service manager (handle 0) and the services registered with it.
use super::*;

/// `EMUWATCH_BINDERAPP_DEBUG=1`: say what the servers do, on stderr.
pub(crate) fn debug(msg: &str) {
    if std::env::var_os("EMUWATCH_BINDERAPP_DEBUG").is_some() {
        eprintln!("emuwatch-binderapp[{}]: {msg}", pid());
    }
}

pub(crate) fn ready(path: &str) {
    std::fs::write(path, pid().to_string()).unwrap_or_else(|e| die(&format!("{path}: {e}")));
}

pub(crate) fn servicemanager(ready_file: &str) -> ! {
    let b = Binder::open();
    let zero: i32 = 0;
    // The previous service manager's release is deferred by the kernel: retry a while.
    let t = Instant::now();
    while unsafe { libc::ioctl(b.fd, BINDER_SET_CONTEXT_MGR as _, &zero) } != 0 {
        if t.elapsed() > Duration::from_secs(10) {
            die(&format!(
                "BINDER_SET_CONTEXT_MGR: {} (is another service manager running?)",
                std::io::Error::last_os_error()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ready(ready_file);
    let mut names: HashMap<String, u32> = HashMap::new();
    serve(&b, |t| {
        let mut reply = Parcel::default();
        let Some((layout, end)) = token_end(&t.data) else {
            reply.i32(0);
            return reply;
        };
        let Some((name, after)) = string16(&t.data, end) else {
            reply.i32(-1);
            return reply;
        };
        debug(&format!(
            "servicemanager: code {} name {name:?} layout {layout}",
            t.code
        ));
        match t.code {
            // addService(name, binder, ...): the kernel turned the binder into our handle.
            3 => {
                let o = after;
                if t.data.len() >= o + 16 && get32(&t.data, o) == BINDER_TYPE_HANDLE {
                    let h = get32(&t.data, o + 8);
                    debug(&format!("addService {name:?} -> handle {h}"));
                    // Before the buffer (and the reference it holds) is freed.
                    let mut w = Vec::new();
                    acquire(&mut w, h);
                    b.write_read(&w, &mut []);
                    names.insert(name, h);
                } else {
                    debug(&format!(
                        "addService {name:?}: no handle at {o}: {:x?}",
                        &t.data
                    ));
                }
                reply.i32(0);
            }
            1 | 2 => {
                let aidl = layout == "system";
                if aidl {
                    reply.i32(0); // status OK
                }
                match names.get(&name) {
                    Some(&h) => {
                        reply.object(BINDER_TYPE_HANDLE, h as u64);
                    }
                    None => {
                        // A null binder, as libbinder writes it: no entry in the offsets.
                        put32(&mut reply.data, BINDER_TYPE_BINDER);
                        reply.data.extend([0u8; 20]);
                    }
                }
                if aidl {
                    reply.i32(0x0c); // stability: system
                }
            }
            _ => {
                reply.i32(0);
            }
        }
        reply
    })
}

/// The layout and the end of the interface token of a received parcel.
pub(crate) fn token_end(d: &[u8]) -> Option<(&'static str, usize)> {
    if d.len() >= 12 && get32(d, 8) == SYST {
        string16(d, 12).map(|(_, e)| ("system", e))
    } else {
        string16(d, 8).map(|(_, e)| ("work_source", e))
    }
}

pub(crate) fn string16(d: &[u8], o: usize) -> Option<(String, usize)> {
    let len = get32(d.get(o..o + 4)?, 0) as usize;
    let units: Vec<u16> = d
        .get(o + 4..o + 4 + 2 * len)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some((
        String::from_utf16_lossy(&units),
        (o + 4 + 2 * len + 2 + 3) & !3,
    ))
}

pub(crate) fn services(ready_file: &str, names: &[String]) -> ! {
    let b = Binder::open();
    let mut pending = Vec::new();
    // Each service is a local object; its address is the index + 1, times 0x100.
    for (i, name) in names.iter().enumerate() {
        let mut p = Parcel::default();
        p.token("system", SERVICE_MANAGER)
            .string16(name)
            .object(BINDER_TYPE_BINDER, (i as u64 + 1) * 0x100)
            .i32(0) // allowIsolated
            .i32(8); // dumpPriority: default
        call(&b, &mut pending, 0, 3, 0, &p);
    }
    ready(ready_file);
    if !pending.is_empty() {
        b.write_read(&pending, &mut []);
    }
    serve(&b, |_| {
        let mut reply = Parcel::default();
        reply.i32(0);
        reply
    })
}
