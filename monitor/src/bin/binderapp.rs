//! `emuwatch-binderapp`: real binder traffic for the capture tests, at the ioctl level
//! (`<linux/android/binder.h>`, protocol 8), on a kernel with `/dev/binder` (Debian's
//! `binder_linux`).
//!
//! ```text
//! emuwatch-binderapp servicemanager READY            context manager on handle 0: addService,
//!                                                    getService/checkService (codes 3, 1, 2)
//! emuwatch-binderapp services READY NAME...          one process registering NAME... and
//!                                                    answering every call with status 0
//! emuwatch-binderapp app STEP...                     the "app": calls services, step by step
//! ```
//!
//! App steps: `layout=system|work_source` (the interface-token layout of Android 11+ or of
//! Android 10; default system), `get=NAME` (getService on handle 0), `call=NAME,INTERFACE,CODE`
//! with optional `,oneway` and `,uri=content://...` (a String16 after the token),
//! `repeat=N,NAME,INTERFACE,CODE` (N synchronous calls, timed: prints `ns_per_call` and the
//! caller's CPU time `cpu_ns_per_call`),
//! `pidfile=PATH`, `waitfile=PATH`, `daemon` (double fork; the daemon goes on once the first
//! process has gone, on a binder fd of its own), `sleep=MS`. Each step prints one JSON line.
//! The service manager replies to Android 11+ (`SYST`) lookups as the AIDL service manager
//! does (status, then the binder) and to older ones as Android 10's did (the binder alone).
use std::{
    collections::HashMap,
    io::Write,
    path::Path,
    time::{Duration, Instant},
};

const BINDER_WRITE_READ: u64 = 0xc030_6201;
/// `_IOW('b', 7, __s32)`.
const BINDER_SET_CONTEXT_MGR: u64 = 0x4004_6207;
const BC_TRANSACTION: u32 = 0x4040_6300;
const BC_REPLY: u32 = 0x4040_6301;
/// `_IOW('c', 3, binder_uintptr_t)`.
const BC_FREE_BUFFER: u32 = 0x4008_6303;
/// `_IOW('c', 9, struct binder_ptr_cookie)` / `_IOW('c', 8, ...)`.
const BC_INCREFS_DONE: u32 = 0x4010_6308;
const BC_ACQUIRE_DONE: u32 = 0x4010_6309;
/// `_IOW('c', 4, __u32)` / `_IOW('c', 5, __u32)`: take a weak / strong reference on a handle.
const BC_INCREFS: u32 = 0x4004_6304;
const BC_ACQUIRE: u32 = 0x4004_6305;
/// `_IO('c', 12)`.
const BC_ENTER_LOOPER: u32 = 0x0000_630c;
const BR_TRANSACTION: u32 = 0x8040_7202;
const BR_REPLY: u32 = 0x8040_7203;
const BR_TRANSACTION_COMPLETE: u32 = 0x0000_7206;
const BR_INCREFS: u32 = 0x8010_7207;
const BR_ACQUIRE: u32 = 0x8010_7208;
const BR_DEAD_REPLY: u32 = 0x0000_7205;
const BR_FAILED_REPLY: u32 = 0x0000_7211;
const TF_ONE_WAY: u32 = 1;
const BINDER_TYPE_BINDER: u32 = 0x7362_2a85;
const BINDER_TYPE_HANDLE: u32 = 0x7368_2a85;
const SYST: u32 = 0x5359_5354;
const MAP_SIZE: usize = 1 << 20;
const SERVICE_MANAGER: &str = "android.os.IServiceManager";

fn die(msg: &str) -> ! {
    eprintln!("emuwatch-binderapp: {msg}");
    std::process::exit(2)
}

fn out(line: String) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn pid() -> u32 {
    std::process::id()
}

/// An open binder fd, mapped (the driver puts received parcels in the mapping).
struct Binder {
    fd: i32,
}

impl Binder {
    fn open() -> Binder {
        let fd = unsafe { libc::open(c"/dev/binder".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            die(&format!(
                "open /dev/binder: {} (this kernel has no binder: `modprobe binder_linux devices=binder`)",
                std::io::Error::last_os_error()
            ));
        }
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_SIZE,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_NORESERVE,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            die(&format!("mmap binder: {}", std::io::Error::last_os_error()));
        }
        Binder { fd }
    }

    /// Close the fd inherited from the parent. Its mapping was not: the kernel marks binder
    /// mappings VM_DONTCOPY, and the new fd's mapping may now sit at the same address.
    fn close_inherited(self) {
        unsafe { libc::close(self.fd) };
    }

    /// One BINDER_WRITE_READ: writes `w`, reads into `r`; returns the bytes read.
    fn write_read(&self, w: &[u8], r: &mut [u8]) -> usize {
        let mut bwr = [0u64; 6];
        bwr[0] = w.len() as u64;
        bwr[2] = w.as_ptr() as u64;
        bwr[3] = r.len() as u64;
        bwr[5] = r.as_mut_ptr() as u64;
        loop {
            let rc = unsafe { libc::ioctl(self.fd, BINDER_WRITE_READ as _, bwr.as_mut_ptr()) };
            if rc == 0 {
                return bwr[4] as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                die(&format!("BINDER_WRITE_READ: {e}"));
            }
        }
    }
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend(v.to_le_bytes());
}
fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend(v.to_le_bytes());
}
fn get32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn get64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A parcel being written, with the offsets of the binder objects in it.
#[derive(Default)]
struct Parcel {
    data: Vec<u8>,
    offsets: Vec<u64>,
}

impl Parcel {
    fn i32(&mut self, v: i32) -> &mut Self {
        self.data.extend(v.to_le_bytes());
        self
    }
    fn string16(&mut self, s: &str) -> &mut Self {
        let units: Vec<u16> = s.encode_utf16().collect();
        put32(&mut self.data, units.len() as u32);
        for u in units {
            self.data.extend(u.to_le_bytes());
        }
        self.data.extend([0, 0]);
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
        self
    }
    /// `writeInterfaceToken` as libbinder writes it: Android 11+ (`system`) or Android 10.
    fn token(&mut self, layout: &str, interface: &str) -> &mut Self {
        self.i32(0x4000_0000u32 as i32); // strict-mode policy
        self.i32(-1); // work-source uid: none
        if layout == "system" {
            self.i32(SYST as i32);
        }
        self.string16(interface)
    }
    /// A `flat_binder_object`: a local object (`binder` = its address) or a handle.
    fn object(&mut self, ty: u32, value: u64) -> &mut Self {
        self.offsets.push(self.data.len() as u64);
        put32(&mut self.data, ty);
        put32(&mut self.data, 0x17f); // FLAT_BINDER_FLAG_ACCEPTS_FDS | priority 0x7f
        put64(&mut self.data, value);
        put64(
            &mut self.data,
            if ty == BINDER_TYPE_BINDER { value } else { 0 },
        );
        self
    }
}

/// `struct binder_transaction_data` for BC_TRANSACTION / BC_REPLY.
fn transaction(cmd: u32, handle: u32, code: u32, flags: u32, p: &Parcel) -> Vec<u8> {
    let mut w = Vec::new();
    put32(&mut w, cmd);
    put64(&mut w, handle as u64); // target (union with ptr)
    put64(&mut w, 0); // cookie
    put32(&mut w, code);
    put32(&mut w, flags);
    put32(&mut w, 0); // sender_pid
    put32(&mut w, 0); // sender_euid
    put64(&mut w, p.data.len() as u64);
    put64(&mut w, (p.offsets.len() * 8) as u64);
    put64(&mut w, p.data.as_ptr() as u64);
    put64(&mut w, p.offsets.as_ptr() as u64);
    w
}

/// A received transaction (BR_TRANSACTION / BR_REPLY payload).
struct Received {
    code: u32,
    flags: u32,
    data: Vec<u8>,
    buffer: u64,
}

fn received(r: &[u8], at: usize) -> Received {
    let code = get32(r, at + 16);
    let flags = get32(r, at + 20);
    let size = get64(r, at + 32) as usize;
    let buffer = get64(r, at + 48);
    let data = if size > 0 {
        unsafe { std::slice::from_raw_parts(buffer as *const u8, size) }.to_vec()
    } else {
        Vec::new()
    };
    Received {
        code,
        flags,
        data,
        buffer,
    }
}

/// Keep a handle received in a parcel: its reference goes with the buffer otherwise (an
/// `sp<IBinder>` does this in libbinder).
fn acquire(w: &mut Vec<u8>, handle: u32) {
    put32(w, BC_INCREFS);
    put32(w, handle);
    put32(w, BC_ACQUIRE);
    put32(w, handle);
}

fn free_buffer(w: &mut Vec<u8>, buffer: u64) {
    put32(w, BC_FREE_BUFFER);
    put64(w, buffer);
}

/// The commands in a read buffer: (command, offset of its payload).
fn commands(r: &[u8], n: usize) -> Vec<(u32, usize)> {
    let mut v = Vec::new();
    let mut o = 0;
    while o + 4 <= n {
        let cmd = get32(r, o);
        v.push((cmd, o + 4));
        o += 4 + ((cmd >> 16) & 0x3fff) as usize;
    }
    v
}

/// A call and, unless one-way, its reply. `pending` (BC_FREE_BUFFER of the last reply) goes
/// in the same write, before the transaction, as libbinder does.
fn call(
    b: &Binder,
    pending: &mut Vec<u8>,
    handle: u32,
    code: u32,
    flags: u32,
    p: &Parcel,
) -> Option<Vec<u8>> {
    let mut w = std::mem::take(pending);
    w.extend(transaction(BC_TRANSACTION, handle, code, flags, p));
    let mut r = [0u8; 256];
    let mut first = true;
    loop {
        let n = b.write_read(if first { &w } else { &[] }, &mut r);
        first = false;
        for (cmd, at) in commands(&r, n) {
            match cmd {
                BR_TRANSACTION_COMPLETE if flags & TF_ONE_WAY != 0 => return None,
                BR_REPLY => {
                    let rep = received(&r, at);
                    free_buffer(pending, rep.buffer);
                    return Some(rep.data);
                }
                BR_DEAD_REPLY | BR_FAILED_REPLY => die(&format!(
                    "call to handle {handle} (code {code}) failed: {}",
                    if cmd == BR_DEAD_REPLY {
                        "BR_DEAD_REPLY"
                    } else {
                        "BR_FAILED_REPLY"
                    }
                )),
                _ => {}
            }
        }
    }
}

/// A server loop: `answer` gets each transaction and returns the reply parcel.
fn serve(b: &Binder, mut answer: impl FnMut(&Received) -> Parcel) -> ! {
    let mut w = Vec::new();
    put32(&mut w, BC_ENTER_LOOPER);
    let mut r = [0u8; 512];
    loop {
        let n = b.write_read(&w, &mut r);
        w.clear();
        for (cmd, at) in commands(&r, n) {
            match cmd {
                BR_TRANSACTION => {
                    let t = received(&r, at);
                    let reply = answer(&t);
                    free_buffer(&mut w, t.buffer);
                    if t.flags & TF_ONE_WAY == 0 {
                        w.extend(transaction(BC_REPLY, 0, 0, 0, &reply));
                        // The reply parcel must live until the write: send it now (nothing
                        // read: BR_TRANSACTION_COMPLETE waits for the next read).
                        b.write_read(&w, &mut []);
                        w.clear();
                        drop(reply);
                    }
                }
                BR_INCREFS | BR_ACQUIRE => {
                    // Acknowledge references to our nodes: binder_ptr_cookie.
                    put32(
                        &mut w,
                        if cmd == BR_INCREFS {
                            BC_INCREFS_DONE
                        } else {
                            BC_ACQUIRE_DONE
                        },
                    );
                    w.extend_from_slice(&r[at..at + 16]);
                }
                _ => {}
            }
        }
    }
}

/// `EMUWATCH_BINDERAPP_DEBUG=1`: say what the servers do, on stderr.
fn debug(msg: &str) {
    if std::env::var_os("EMUWATCH_BINDERAPP_DEBUG").is_some() {
        eprintln!("emuwatch-binderapp[{}]: {msg}", pid());
    }
}

fn ready(path: &str) {
    std::fs::write(path, pid().to_string()).unwrap_or_else(|e| die(&format!("{path}: {e}")));
}

fn servicemanager(ready_file: &str) -> ! {
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
fn token_end(d: &[u8]) -> Option<(&'static str, usize)> {
    if d.len() >= 12 && get32(d, 8) == SYST {
        string16(d, 12).map(|(_, e)| ("system", e))
    } else {
        string16(d, 8).map(|(_, e)| ("work_source", e))
    }
}

fn string16(d: &[u8], o: usize) -> Option<(String, usize)> {
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

fn services(ready_file: &str, names: &[String]) -> ! {
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

struct App {
    binder: Binder,
    pending: Vec<u8>,
    layout: String,
    handles: HashMap<String, u32>,
}

impl App {
    fn get(&mut self, name: &str) -> u32 {
        let mut p = Parcel::default();
        p.token(&self.layout, SERVICE_MANAGER).string16(name);
        let layout = self.layout.clone();
        let reply = call(&self.binder, &mut self.pending, 0, 1, 0, &p).unwrap_or_default();
        let at = if layout == "system" { 4 } else { 0 };
        if reply.len() < at + 16 || get32(&reply, at) != BINDER_TYPE_HANDLE {
            die(&format!("getService({name}): no such service"));
        }
        let h = get32(&reply, at + 8);
        // Before the reply's buffer is freed (BC_FREE_BUFFER is pending).
        let mut w = Vec::new();
        acquire(&mut w, h);
        w.append(&mut self.pending);
        self.pending = w;
        self.handles.insert(name.to_string(), h);
        h
    }
}

fn daemonize(app: &mut App) {
    let first = pid();
    let child = unsafe { libc::fork() };
    if child > 0 {
        let mut st = 0;
        unsafe { libc::waitpid(child, &mut st, 0) };
        out(format!(
            "{{\"pid\":{first},\"step\":\"daemon\",\"role\":\"parent\"}}"
        ));
        std::process::exit(0);
    }
    unsafe { libc::setsid() };
    if unsafe { libc::fork() } > 0 {
        unsafe { libc::_exit(0) };
    }
    while unsafe { libc::kill(first as i32, 0) } == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // A process of its own needs a binder fd of its own.
    let old = std::mem::replace(&mut app.binder, Binder::open());
    old.close_inherited();
    app.pending.clear();
    app.handles.clear();
    out(format!(
        "{{\"pid\":{},\"step\":\"daemon\",\"role\":\"daemon\",\"parent_pid\":{first}}}",
        pid()
    ));
}

fn app(steps: &[String]) {
    let mut app = App {
        binder: Binder::open(),
        pending: Vec::new(),
        layout: "system".into(),
        handles: HashMap::new(),
    };
    for s in steps {
        if s == "daemon" {
            daemonize(&mut app);
            continue;
        }
        let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
        match k {
            "layout" if v == "system" || v == "work_source" => app.layout = v.to_string(),
            "get" => {
                let h = app.get(v);
                out(format!(
                    "{{\"pid\":{},\"step\":\"get\",\"service\":\"{v}\",\"handle\":{h}}}",
                    pid()
                ));
            }
            "call" => {
                let parts: Vec<&str> = v.split(',').collect();
                if parts.len() < 3 {
                    die(&format!(
                        "bad step {s:?}: call=NAME,INTERFACE,CODE[,oneway][,uri=U]"
                    ));
                }
                let code: u32 = parts[2]
                    .parse()
                    .unwrap_or_else(|_| die(&format!("bad code in {s:?}")));
                let oneway = parts[3..].contains(&"oneway");
                let uri = parts[3..].iter().find_map(|p| p.strip_prefix("uri="));
                let handle = match app.handles.get(parts[0]) {
                    Some(&h) => h,
                    None => app.get(parts[0]),
                };
                let mut p = Parcel::default();
                p.token(&app.layout, parts[1]);
                if let Some(u) = uri {
                    // Roughly what a query writes first: the caller's package, then the URI.
                    p.string16("com.example.app").i32(1).string16(u);
                }
                let flags = if oneway { TF_ONE_WAY } else { 0 };
                call(&app.binder, &mut app.pending, handle, code, flags, &p);
                out(format!(
                    "{{\"pid\":{},\"step\":\"call\",\"service\":\"{}\",\"interface\":\"{}\",\"code\":{code},\"handle\":{handle},\"oneway\":{oneway}}}",
                    pid(),
                    parts[0],
                    parts[1]
                ));
            }
            "repeat" => {
                // N synchronous calls, timed: the binder hot path for the benchmark
                // (scripts/bench-binder.sh).
                let parts: Vec<&str> = v.split(',').collect();
                let (Some(n), [name, iface, code]) = (
                    parts.first().and_then(|n| n.parse::<u32>().ok()),
                    parts.get(1..).unwrap_or(&[]),
                ) else {
                    die(&format!("bad step {s:?}: repeat=N,NAME,INTERFACE,CODE"));
                };
                let code: u32 = code
                    .parse()
                    .unwrap_or_else(|_| die(&format!("bad code in {s:?}")));
                let handle = match app.handles.get(*name) {
                    Some(&h) => h,
                    None => app.get(name),
                };
                let mut p = Parcel::default();
                p.token(&app.layout, iface);
                // The caller's own CPU time (user + system: the kernel's binder code and any
                // probe on its ioctls run in its context), besides the wall time, which also
                // holds the callee's and the wake-ups'.
                let cpu = || {
                    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
                    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
                    let us = |t: libc::timeval| t.tv_sec as u128 * 1_000_000 + t.tv_usec as u128;
                    (us(u.ru_utime) + us(u.ru_stime)) * 1000
                };
                let (t, c) = (Instant::now(), cpu());
                for _ in 0..n {
                    call(&app.binder, &mut app.pending, handle, code, 0, &p);
                }
                let ns = t.elapsed().as_nanos() / u128::from(n.max(1));
                let cpu_ns = (cpu() - c) / u128::from(n.max(1));
                out(format!(
                    "{{\"pid\":{},\"step\":\"repeat\",\"n\":{n},\"ns_per_call\":{ns},\"cpu_ns_per_call\":{cpu_ns}}}",
                    pid()
                ));
            }
            "pidfile" => {
                std::fs::write(v, pid().to_string()).unwrap_or_else(|e| die(&format!("{v}: {e}")));
            }
            "waitfile" => {
                let t = Instant::now();
                while !Path::new(v).exists() {
                    if t.elapsed() > Duration::from_secs(120) {
                        die(&format!("waited 120 s for {v}"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            "sleep" => std::thread::sleep(Duration::from_millis(v.parse().unwrap_or(0))),
            _ => die(&format!("unknown step {s:?}")),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("servicemanager") if args.len() == 2 => servicemanager(&args[1]),
        Some("services") if args.len() >= 3 => services(&args[1], &args[2..]),
        Some("app") => app(&args[1..]),
        _ => die(
            "usage: emuwatch-binderapp servicemanager READY | services READY NAME... | app STEP...",
        ),
    }
}
