//! emuwatch-benchload: the workloads `cargo xtask bench` times. Each is a tight loop of the
//! syscalls emuwatch traces, built in release so the loop is syscall-bound, and talks only to
//! loopback addresses.
//!
//! Every workload can be held (`--hold`): it waits for one byte on stdin before starting, so a
//! tracer can attach to its pid first. It times itself from that byte to the end and prints one
//! JSON line on stdout: `elapsed_s`, `user_s`, `sys_s` (its own CPU time), what it made
//! (`opens`, `reads`, `connects`, `device_opens`, `connect_errors`) and `pids` (itself and any
//! children).
//!
//! ```text
//! emuwatch-benchload open --file F --n N [--chunk BYTES] [--no-read] [--rate OPS_PER_S]
//!                         [--seconds S]
//!     N x (open F, one read of CHUNK bytes, close); --no-read: open+close only; --seconds:
//!     stop after S seconds if N has not been reached
//! emuwatch-benchload syscall --call getppid|write-null --n N
//!     N x one syscall emuwatch does not capture (getppid(2), or a 1-byte write(2) to
//!     /dev/null opened once beforehand): what a tracer on every syscall costs the syscalls it
//!     does not record
//! emuwatch-benchload connect --addr 127.0.0.1:PORT --n N [--rate OPS_PER_S] [--send]
//!     N x (socket, connect, close) to a loopback listener; `--send`: one write of an HTTP
//!     request head (about 110 bytes) before the close
//! emuwatch-benchload mix --procs K --rounds R --data DIR --device PATH --addr 127.0.0.1:PORT
//!     K child processes, each R rounds of: 8 connects, open+read+close of every file in DIR,
//!     open+close of a device node; plus oom_score_adj writes at start and end (app-like)
//! emuwatch-benchload serve --port-file F
//!     a loopback listener that accepts and closes until stdin closes; writes its port to F
//! ```
//!
//! It also does the bench's heavy lifting that should not run in a debug build: `count`
//! (events a tracer delivered, from its output) and `synth-session` (sessions for timing
//! `emuwatch report`).
mod count;
mod synth;

use std::{
    ffi::CString,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| die(&format!("bad value for {name}: {v}")))
        })
}

fn need<T: std::str::FromStr>(args: &[String], name: &str) -> T {
    arg(args, name).unwrap_or_else(|| die(&format!("missing {name}")))
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn die(msg: &str) -> ! {
    eprintln!("emuwatch-benchload: {msg}");
    std::process::exit(2);
}

/// What a workload made, in the units the tracers report.
#[derive(Default, Clone, Copy)]
struct Made {
    opens: u64,
    reads: u64,
    connects: u64,
    connect_errors: u64,
    device_opens: u64,
}

impl Made {
    fn add(&mut self, o: &Made) {
        self.opens += o.opens;
        self.reads += o.reads;
        self.connects += o.connects;
        self.connect_errors += o.connect_errors;
        self.device_opens += o.device_opens;
    }
}

fn cpu_times(who: i32) -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

fn hold(args: &[String]) {
    if flag(args, "--hold") {
        let mut b = [0u8; 1];
        let _ = std::io::stdin().read(&mut b);
    }
}

fn report(elapsed: Duration, made: &Made, pids: &[u32], ops: u64) {
    let (u, s) = cpu_times(libc::RUSAGE_SELF);
    let (cu, cs) = cpu_times(libc::RUSAGE_CHILDREN);
    let secs = elapsed.as_secs_f64();
    let pids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    println!(
        "{{\"elapsed_s\":{secs:.6},\"user_s\":{:.6},\"sys_s\":{:.6},\"ops\":{ops},\"ops_per_s\":{:.1},\"opens\":{},\"reads\":{},\"connects\":{},\"connect_errors\":{},\"device_opens\":{},\"pids\":[{}]}}",
        u + cu,
        s + cs,
        ops as f64 / secs.max(1e-9),
        made.opens,
        made.reads,
        made.connects,
        made.connect_errors,
        made.device_opens,
        pids.join(",")
    );
    let _ = std::io::stdout().flush();
}

/// Runs `op` `n` times (or until `seconds` have passed), at most `rate` per second when given
/// (paced in 0.5 ms slices, so the offered rate is steady rather than bursty). Returns the
/// elapsed time and how many times `op` ran.
fn paced(n: u64, rate: Option<f64>, seconds: Option<f64>, mut op: impl FnMut()) -> (Duration, u64) {
    let start = Instant::now();
    let limit = seconds.map(Duration::from_secs_f64);
    let mut done = 0u64;
    while done < n {
        let due = match rate {
            Some(r) => ((start.elapsed().as_secs_f64() * r) as u64 + 1).min(n),
            // Unpaced: check the clock every 256 operations.
            None => (done + 256).min(n),
        };
        // A tracer that slows the workload leaves it behind schedule: catching up must not
        // run past the time limit either.
        let mut over = false;
        while done < due && !over {
            op();
            done += 1;
            over = done.is_multiple_of(256) && limit.is_some_and(|l| start.elapsed() >= l);
        }
        if over || limit.is_some_and(|l| start.elapsed() >= l) {
            break;
        }
        if rate.is_some() && done < n {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    (start.elapsed(), done)
}

fn cpath(p: &str) -> CString {
    CString::new(p).unwrap_or_else(|_| die("path contains NUL"))
}

/// open + one read + close, with the raw calls: exactly three syscalls per iteration.
fn open_loop(args: &[String]) {
    let file: String = need(args, "--file");
    let n: u64 = need(args, "--n");
    let chunk: usize = arg(args, "--chunk").unwrap_or(4096);
    let no_read = flag(args, "--no-read");
    let rate: Option<f64> = arg(args, "--rate");
    let seconds: Option<f64> = arg(args, "--seconds");
    let path = cpath(&file);
    let mut buf = vec![0u8; chunk];
    let mut made = Made::default();
    hold(args);
    let (elapsed, n) = paced(n, rate, seconds, || {
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            if !no_read {
                unsafe { libc::read(fd, buf.as_mut_ptr().cast(), chunk) };
            }
            unsafe { libc::close(fd) };
        }
        made.opens += 1;
    });
    if !no_read {
        made.reads = made.opens;
    }
    report(elapsed, &made, &[std::process::id()], n);
}

/// One uncaptured syscall per iteration, with the raw call (no libc caching, no buffering).
fn syscall_loop(args: &[String]) {
    let call: String = need(args, "--call");
    let n: u64 = need(args, "--n");
    let null = cpath("/dev/null");
    let fd = match call.as_str() {
        "getppid" => -1,
        "write-null" => unsafe { libc::open(null.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) },
        other => die(&format!(
            "--call: unknown syscall {other} (getppid, write-null)"
        )),
    };
    if call == "write-null" && fd < 0 {
        die("open /dev/null");
    }
    let byte = [0u8; 1];
    hold(args);
    let (elapsed, n) = paced(n, None, None, || {
        if fd < 0 {
            unsafe { libc::syscall(libc::SYS_getppid) };
        } else {
            unsafe { libc::syscall(libc::SYS_write, fd, byte.as_ptr(), 1usize) };
        }
    });
    report(elapsed, &Made::default(), &[std::process::id()], n);
}

/// Close with a reset (SO_LINGER 0): no TIME_WAIT on either side. Tens of thousands of
/// connects per run otherwise reuse ephemeral ports still in TIME_WAIT, and a SYN that meets
/// one is answered with an ACK instead of a SYN-ACK and retried after 1 s.
fn close_with_reset(fd: i32) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
}

fn connect_once(addr: &SocketAddr, made: &mut Made) {
    connect_send_once(addr, None, made)
}

/// A connect, then (`send`) one write of an HTTP request line and headers: what name capture
/// copies (the first bytes of a connection).
fn connect_send_once(addr: &SocketAddr, send: Option<&[u8]>, made: &mut Made) {
    match TcpStream::connect(addr) {
        Ok(mut s) => {
            if let Some(b) = send {
                use std::io::Write;
                let _ = s.write_all(b);
            }
            close_with_reset(std::os::fd::AsRawFd::as_raw_fd(&s));
            drop(s)
        }
        Err(_) => made.connect_errors += 1,
    }
    made.connects += 1;
}

fn connect_loop(args: &[String]) {
    let addr: SocketAddr = need(args, "--addr");
    if !addr.ip().is_loopback() {
        die("--addr must be a loopback address");
    }
    let n: u64 = need(args, "--n");
    let rate: Option<f64> = arg(args, "--rate");
    let send = args.iter().any(|a| a == "--send").then(|| {
        format!("GET /collect?id=0123456789abcdef HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: emuwatch-benchload\r\nAccept: */*\r\n\r\n")
            .into_bytes()
    });
    let mut made = Made::default();
    hold(args);
    let (elapsed, n) = paced(n, rate, None, || {
        connect_send_once(&addr, send.as_deref(), &mut made)
    });
    report(elapsed, &made, &[std::process::id()], n);
}

fn set_oom(v: &str, made: &mut Made) {
    let _ = std::fs::write("/proc/self/oom_score_adj", v);
    made.opens += 1;
}

/// One app-like process: bursts of connects, file reads and a device open.
fn mix_child(args: &[String]) {
    let rounds: u64 = need(args, "--rounds");
    let data: String = need(args, "--data");
    let device: String = need(args, "--device");
    let addr: SocketAddr = need(args, "--addr");
    if !addr.ip().is_loopback() {
        die("--addr must be a loopback address");
    }
    let mut files: Vec<CString> = std::fs::read_dir(&data)
        .unwrap_or_else(|e| die(&format!("{data}: {e}")))
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| cpath(&e.path().to_string_lossy()))
        .collect();
    files.sort();
    let dev = cpath(&device);
    let mut buf = vec![0u8; 16384];
    let mut made = Made::default();
    set_oom("0", &mut made);
    for _ in 0..rounds {
        for _ in 0..8 {
            connect_once(&addr, &mut made);
        }
        for f in &files {
            let fd = unsafe { libc::open(f.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            made.opens += 1;
            if fd >= 0 {
                while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
                made.reads += 1;
                unsafe { libc::close(fd) };
            }
        }
        let fd = unsafe { libc::open(dev.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        made.device_opens += 1;
        if fd >= 0 {
            unsafe { libc::close(fd) };
        }
    }
    set_oom("900", &mut made);
    println!(
        "{} {} {} {} {} {}",
        std::process::id(),
        made.opens,
        made.reads,
        made.connects,
        made.connect_errors,
        made.device_opens
    );
}

fn mix(args: &[String]) {
    let procs: u32 = need(args, "--procs");
    let rounds: u64 = need(args, "--rounds");
    let pass = ["--rounds", "--data", "--device", "--addr"];
    let mut child_args = vec!["mix-child".to_string()];
    for p in pass {
        let v: String = need(args, p);
        child_args.push(p.into());
        child_args.push(v);
    }
    let me = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
    hold(args);
    let start = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|_| {
            Command::new(&me)
                .args(&child_args)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| die(&format!("spawn: {e}")))
        })
        .collect();
    let mut made = Made::default();
    let mut pids = vec![std::process::id()];
    for c in children {
        let out = c
            .wait_with_output()
            .unwrap_or_else(|e| die(&format!("wait: {e}")));
        let f: Vec<u64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() != 6 {
            die("a mix child failed");
        }
        pids.push(f[0] as u32);
        made.add(&Made {
            opens: f[1],
            reads: f[2],
            connects: f[3],
            connect_errors: f[4],
            device_opens: f[5],
        });
    }
    report(start.elapsed(), &made, &pids, rounds * procs as u64);
}

fn serve(args: &[String]) {
    let port_file: String = need(args, "--port-file");
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(&format!("bind: {e}")));
    // A deep accept queue: if this process is not scheduled for a few milliseconds (2 CPUs,
    // one running the workload), a full queue drops SYNs and a connect waits 1 s to retry.
    unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&l), 4096) };
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    std::fs::write(&port_file, format!("{port}\n")).unwrap_or_else(|e| die(&format!("{e}")));
    // Stop when the parent closes our stdin (or dies).
    std::thread::spawn(|| {
        let mut b = [0u8; 1];
        let _ = std::io::stdin().read(&mut b);
        std::process::exit(0);
    });
    for s in l.incoming().flatten() {
        close_with_reset(std::os::fd::AsRawFd::as_raw_fd(&s));
        drop(s);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        Some("open") => open_loop(rest),
        Some("syscall") => syscall_loop(rest),
        Some("connect") => connect_loop(rest),
        Some("mix") => mix(rest),
        Some("mix-child") => mix_child(rest),
        Some("serve") => serve(rest),
        Some("count") => count::main(rest),
        Some("synth-session") => synth::main(rest),
        _ => die(
            "usage: emuwatch-benchload open|syscall|connect|mix|serve|count|synth-session ... (see the source header)",
        ),
    }
}
