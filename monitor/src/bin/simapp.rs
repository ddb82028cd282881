//! emuwatch-simapp: a small program with exactly known behaviour, used by the tests and the
//! demo. It only ever talks to loopback addresses.
//!
//! `emuwatch-simapp steps STEP...` runs steps in order and prints one JSON line per step
//! (`{"pid":..,"step":..,...}`) on stdout. Steps:
//!   connect=PROTO,ADDR,PORT   PROTO: tcp4 tcp6 udp4 udp6 tcp4nb (non-blocking: EINPROGRESS)
//!   read=PATH,CHUNK           read() the whole file in CHUNK-byte calls (plus the EOF read)
//!   pread=PATH,CHUNK          the same with pread64()
//!   readv=PATH,CHUNK          the same with readv() (two iovecs of CHUNK/2)
//!   preadv=PATH,CHUNK         the same with preadv()
//!   partial=PATH,LEN          one read() of LEN bytes, then close
//!   loop=PATH,N,CHUNK         open once, N x pread(CHUNK, offset 0), close
//!   cd=DIR                    chdir
//!   openrel=PATH              openat(AT_FDCWD, relative PATH) and read it all with read(4096)
//!   fail=PATH                 open a path that must fail
//!   device=PATH               open a device node read-write, close it
//!   streamon=PATH             open a device node, ioctl(VIDIOC_STREAMON), close
//!   oom=N                     write N to /proc/self/oom_score_adj
//!   rename=NAME               prctl(PR_SET_NAME, NAME) (what Android app processes do)
//!   sleep=MS                  sleep
//!   daemon                    double-fork: the remaining steps run in a grandchild whose
//!                             parent has exited; the original process exits once the
//!                             intermediate child has (like a detached app service)
//!   waitfile=PATH             wait (up to 10 s) until PATH exists
//!   touch=PATH                create PATH (a gate another process waits for)
//!   dnsproxyd=NAME            `getaddrinfo NAME ...` to /dev/socket/dnsproxyd (Android's netd
//!                             resolver socket; a listener stands in for netd if none)
//!   pidfile=PATH              write this process's pid to PATH (whole, by rename)
//!   fork=MS                   fork a child that sleeps MS milliseconds and exits
//!   oomchild=N                write N to the last forked child's oom_score_adj (what Chromium
//!                             does for its renderers: the app adjusting its own processes)
//!   oomof=PID,N               write N to /proc/PID/oom_score_adj (PID or @FILE: the pid in
//!                             FILE): what lmkd / ActivityManager do for an app's processes
//!   kill=PID,SIG              send SIG to PID (or @FILE)
//!   cgkill=DIR                kill every process of the cgroup DIR: `cgroup.kill` where the
//!                             kernel has it (5.14+), else SIGKILL to each pid in
//!                             `cgroup.procs` (as Android's libprocessgroup does)
//!
//! `emuwatch-simapp system STEP...` runs the same steps in the role of the system (a process
//! outside the app: ActivityManager, lmkd), e.g. `system oomof=@app.pid,900`.
//!
//! `emuwatch-simapp zygote [--cgroup DIR]` plays Android's zygote: it sets its own
//! oom_score_adj to -1000 (where the host allows it) and reads commands from stdin, one per
//! line:
//!   spawn NAME UID GATE STEP...   fork a child that (still root) joins the cgroup
//!                                 DIR/uid_UID/pid_PID when --cgroup is given, drops to UID
//!                                 (setgroups, setresgid, setresuid), prints
//!                                 `{"pid":..,"spawned":NAME,"uid":UID}`, waits for the file GATE
//!                                 (`-`: no wait), takes NAME as argv[0] and the last 15 bytes of
//!                                 NAME as its thread name (prctl PR_SET_NAME) — never exec'ing —
//!                                 then runs the steps and exits 0
//!   do STEP...                    the zygote itself runs the steps
//!   exit                          (or end of input) the zygote exits
//! (Android renames the thread before rewriting argv[0]; the simulator does it the other way
//! round so that the full name is already there when emuwatch reads it for the rename.)
//!
//! `emuwatch-simapp serve --ports-file FILE [--seconds N]` runs loopback TCP listeners (the
//! "servers" of the demo) and writes their addresses to FILE.
//! `emuwatch-simapp prepare --data DIR [--camera PATH]` creates the app's data under DIR
//! (contacts, photos, a MAC address, build.prop) and, with --camera, a camera device node
//! (needs root; backed by /dev/null's driver, so opening works and VIDIOC_STREAMON fails).
//! `emuwatch-simapp app --ports-file FILE --data DIR [--camera PATH] [--rounds N]
//! [--am-dir DIR] [--without BEHAVIOUR]...` behaves like the apps under study: foreground
//! activity, then "close" (its main process exits) while a detached service keeps collecting.
//! It never writes its own oom_score_adj. With `--am-dir DIR` a separate process plays
//! ActivityManager: the app writes DIR/app.pid, waits for DIR/on-screen (the system has put it
//! on screen), works, creates DIR/leaving and waits for DIR/home (the system has demoted it)
//! before it closes.
//! `--without` turns one behaviour of the service off (`service-connect`, `service-camera`,
//! `service-identifiers`), so two runs can differ in exactly one behaviour.
use std::{
    ffi::CString,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

fn out(line: String) {
    let mut so = std::io::stdout().lock();
    let _ = writeln!(so, "{line}");
    let _ = so.flush();
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn open_path(path: &str, flags: i32) -> i32 {
    let c = CString::new(path).expect("path without NUL");
    unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) }
}

fn pid() -> u32 {
    std::process::id()
}

/// connect() with the raw syscall so the result (0 / -errno) is exactly what the kernel said.
fn connect(proto: &str, addr: &str, port: u16) -> i32 {
    let ip: std::net::IpAddr = addr.parse().expect("address");
    let sa = SocketAddr::new(ip, port);
    let (domain, ty) = match proto {
        "tcp4" | "tcp4nb" => (libc::AF_INET, libc::SOCK_STREAM),
        "tcp6" => (libc::AF_INET6, libc::SOCK_STREAM),
        "udp4" => (libc::AF_INET, libc::SOCK_DGRAM),
        "udp6" => (libc::AF_INET6, libc::SOCK_DGRAM),
        p => panic!("unknown proto {p}"),
    };
    let nb = if proto.ends_with("nb") {
        libc::SOCK_NONBLOCK
    } else {
        0
    };
    let fd = unsafe { libc::socket(domain, ty | nb | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    let r = match sa {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            unsafe {
                libc::connect(
                    fd,
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of_val(&sin) as u32,
                )
            }
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            unsafe {
                libc::connect(
                    fd,
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of_val(&sin6) as u32,
                )
            }
        }
    };
    let res = if r == 0 { 0 } else { -errno() };
    if ty == libc::SOCK_DGRAM && res == 0 {
        unsafe { libc::send(fd, b"ping".as_ptr().cast(), 4, 0) };
    }
    unsafe { libc::close(fd) };
    res
}

/// Read an fd to EOF with `f` (returns bytes per call); returns (bytes, calls).
fn read_all(fd: i32, chunk: usize, mut f: impl FnMut(i32, &mut [u8], i64) -> isize) -> (u64, u64) {
    let mut buf = vec![0u8; chunk.max(1)];
    let (mut total, mut calls) = (0u64, 0u64);
    loop {
        let n = f(fd, &mut buf, total as i64);
        calls += 1;
        if n <= 0 {
            break;
        }
        total += n as u64;
    }
    (total, calls)
}

fn read_step(kind: &str, path: &str, chunk: usize) -> String {
    let fd = open_path(path, libc::O_RDONLY);
    if fd < 0 {
        return format!(
            "{{\"pid\":{},\"step\":\"{kind}\",\"path\":{},\"fd\":{},\"bytes\":0,\"reads\":0}}",
            pid(),
            json_str(path),
            -errno()
        );
    }
    let (bytes, reads) = match kind {
        "read" => read_all(fd, chunk, |fd, b, _| unsafe {
            libc::read(fd, b.as_mut_ptr().cast(), b.len())
        }),
        "pread" => read_all(fd, chunk, |fd, b, off| unsafe {
            libc::pread(fd, b.as_mut_ptr().cast(), b.len(), off)
        }),
        "readv" | "preadv" => read_all(fd, chunk, |fd, b, off| {
            let half = b.len() / 2;
            let (a, c) = b.split_at_mut(half.max(1).min(b.len()));
            let iov = [
                libc::iovec {
                    iov_base: a.as_mut_ptr().cast(),
                    iov_len: a.len(),
                },
                libc::iovec {
                    iov_base: c.as_mut_ptr().cast(),
                    iov_len: c.len(),
                },
            ];
            unsafe {
                if kind == "readv" {
                    libc::readv(fd, iov.as_ptr(), 2)
                } else {
                    libc::preadv(fd, iov.as_ptr(), 2, off)
                }
            }
        }),
        _ => unreachable!(),
    };
    unsafe { libc::close(fd) };
    format!(
        "{{\"pid\":{},\"step\":\"{kind}\",\"path\":{},\"fd\":{fd},\"bytes\":{bytes},\"reads\":{reads}}}",
        pid(),
        json_str(path)
    )
}

fn step(s: &str) -> String {
    let (op, arg) = s.split_once('=').unwrap_or((s, ""));
    let args: Vec<&str> = arg.split(',').collect();
    match op {
        "connect" => {
            let port: u16 = args[2].parse().expect("port");
            let r = connect(args[0], args[1], port);
            format!(
                "{{\"pid\":{},\"step\":\"connect\",\"proto\":\"{}\",\"addr\":\"{}\",\"port\":{port},\"result\":{r}}}",
                pid(),
                args[0],
                args[1]
            )
        }
        "read" | "pread" | "readv" | "preadv" => {
            read_step(op, args[0], args[1].parse().expect("chunk"))
        }
        "partial" => {
            let len: usize = args[1].parse().expect("len");
            let fd = open_path(args[0], libc::O_RDONLY);
            let mut buf = vec![0u8; len];
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), len) };
            unsafe { libc::close(fd) };
            format!(
                "{{\"pid\":{},\"step\":\"partial\",\"path\":{},\"bytes\":{n},\"reads\":1}}",
                pid(),
                json_str(args[0])
            )
        }
        "loop" => {
            let n: u64 = args[1].parse().expect("n");
            let chunk: usize = args[2].parse().expect("chunk");
            let fd = open_path(args[0], libc::O_RDONLY);
            let mut buf = vec![0u8; chunk];
            let mut total = 0u64;
            for _ in 0..n {
                let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), chunk, 0) };
                total += r.max(0) as u64;
            }
            unsafe { libc::close(fd) };
            format!(
                "{{\"pid\":{},\"step\":\"loop\",\"path\":{},\"bytes\":{total},\"reads\":{n}}}",
                pid(),
                json_str(args[0])
            )
        }
        "cd" => {
            std::env::set_current_dir(arg).expect("chdir");
            format!(
                "{{\"pid\":{},\"step\":\"cd\",\"dir\":{}}}",
                pid(),
                json_str(arg)
            )
        }
        "openrel" => {
            let c = CString::new(arg).unwrap();
            let fd = unsafe {
                libc::openat(libc::AT_FDCWD, c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
            };
            let (bytes, reads) = if fd >= 0 {
                read_all(fd, 4096, |fd, b, _| unsafe {
                    libc::read(fd, b.as_mut_ptr().cast(), b.len())
                })
            } else {
                (0, 0)
            };
            unsafe { libc::close(fd) };
            format!(
                "{{\"pid\":{},\"step\":\"openrel\",\"path\":{},\"fd\":{fd},\"bytes\":{bytes},\"reads\":{reads}}}",
                pid(),
                json_str(arg)
            )
        }
        "fail" => {
            let fd = open_path(arg, libc::O_RDONLY);
            let r = if fd < 0 { -errno() } else { fd };
            format!(
                "{{\"pid\":{},\"step\":\"fail\",\"path\":{},\"result\":{r}}}",
                pid(),
                json_str(arg)
            )
        }
        "device" | "streamon" => {
            let fd = open_path(arg, libc::O_RDWR);
            let open_r = if fd < 0 { -errno() } else { fd };
            let mut ioctl_r = None;
            if op == "streamon" && fd >= 0 {
                let mut ty: libc::c_int = 1; // V4L2_BUF_TYPE_VIDEO_CAPTURE
                // VIDIOC_STREAMON = _IOW('V', 18, int)
                let r = unsafe { libc::ioctl(fd, 0x4004_5612, &mut ty) };
                ioctl_r = Some(if r < 0 { -errno() } else { r });
            }
            if fd >= 0 {
                unsafe { libc::close(fd) };
            }
            format!(
                "{{\"pid\":{},\"step\":\"{op}\",\"path\":{},\"result\":{open_r}{}}}",
                pid(),
                json_str(arg),
                ioctl_r
                    .map(|r| format!(",\"ioctl_result\":{r}"))
                    .unwrap_or_default()
            )
        }
        "oom" => {
            std::fs::write("/proc/self/oom_score_adj", arg).expect("write oom_score_adj");
            format!("{{\"pid\":{},\"step\":\"oom\",\"value\":{arg}}}", pid())
        }
        "rename" => {
            let name = CString::new(arg).expect("name");
            let r =
                unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
            format!("{{\"pid\":{},\"step\":\"rename\",\"result\":{r}}}", pid())
        }
        "sleep" => {
            std::thread::sleep(Duration::from_millis(arg.parse().expect("ms")));
            format!("{{\"pid\":{},\"step\":\"sleep\"}}", pid())
        }
        "waitfile" => {
            for _ in 0..1000 {
                if std::path::Path::new(arg).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            format!("{{\"pid\":{},\"step\":\"waitfile\"}}", pid())
        }
        "dnsproxyd" => {
            // Android's resolver client: bionic's getaddrinfo writes its request to netd's
            // /dev/socket/dnsproxyd. Stands in for netd too (a listener thread) when no one
            // listens there; tests run it in a mount namespace with a private /dev.
            use std::os::unix::net::{UnixListener, UnixStream};
            let path = "/dev/socket/dnsproxyd";
            if !std::path::Path::new(path).exists() {
                let l = UnixListener::bind(path).expect("bind /dev/socket/dnsproxyd");
                std::thread::spawn(move || {
                    for mut c in l.incoming().flatten() {
                        let mut b = [0u8; 512];
                        let _ = c.read(&mut b);
                        let _ = c.write_all(b"222 0\0");
                    }
                });
            }
            let mut c = UnixStream::connect(path).expect("connect dnsproxyd");
            c.write_all(format!("getaddrinfo {arg} ^ 1024 0 1 6\0").as_bytes())
                .expect("write dnsproxyd");
            let mut b = [0u8; 64];
            let _ = c.read(&mut b);
            format!(
                "{{\"pid\":{},\"step\":\"dnsproxyd\",\"name\":{}}}",
                pid(),
                json_str(arg)
            )
        }
        "touch" => {
            std::fs::write(arg, "").expect("touch");
            format!("{{\"pid\":{},\"step\":\"touch\"}}", pid())
        }
        "pidfile" => {
            let tmp = format!("{arg}.tmp");
            std::fs::write(&tmp, pid().to_string()).expect("write pid file");
            std::fs::rename(&tmp, arg).expect("rename pid file");
            format!("{{\"pid\":{},\"step\":\"pidfile\"}}", pid())
        }
        "fork" => {
            let ms: u64 = arg.parse().expect("ms");
            let child = unsafe { libc::fork() };
            if child == 0 {
                std::thread::sleep(Duration::from_millis(ms));
                unsafe { libc::_exit(0) };
            }
            LAST_CHILD.store(child, std::sync::atomic::Ordering::Relaxed);
            format!("{{\"pid\":{},\"step\":\"fork\",\"child\":{child}}}", pid())
        }
        "oomchild" => {
            let child = LAST_CHILD.load(std::sync::atomic::Ordering::Relaxed);
            std::fs::write(format!("/proc/{child}/oom_score_adj"), arg)
                .expect("write the child's oom_score_adj");
            format!(
                "{{\"pid\":{},\"step\":\"oomchild\",\"child\":{child},\"value\":{arg}}}",
                pid()
            )
        }
        "oomof" => {
            let target = pid_arg(args[0]);
            std::fs::write(format!("/proc/{target}/oom_score_adj"), args[1])
                .unwrap_or_else(|e| panic!("write oom_score_adj of {target}: {e}"));
            format!(
                "{{\"pid\":{},\"step\":\"oomof\",\"target\":{target},\"value\":{}}}",
                pid(),
                args[1]
            )
        }
        "kill" => {
            let target = pid_arg(args[0]);
            let sig: i32 = args[1].parse().expect("signal");
            let r = unsafe { libc::kill(target as i32, sig) };
            format!(
                "{{\"pid\":{},\"step\":\"kill\",\"target\":{target},\"result\":{r}}}",
                pid()
            )
        }
        "cgkill" => {
            let dir = std::path::Path::new(arg);
            let how = if dir.join("cgroup.kill").exists() {
                std::fs::write(dir.join("cgroup.kill"), "1").expect("write cgroup.kill");
                "cgroup.kill"
            } else {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
                "cgroup.procs"
            };
            format!(
                "{{\"pid\":{},\"step\":\"cgkill\",\"how\":\"{how}\"}}",
                pid()
            )
        }
        other => panic!("unknown step {other:?}"),
    }
}

/// The last child `fork=` started.
static LAST_CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// A pid given as a number or as `@FILE` (waiting up to 10 s for FILE).
fn pid_arg(a: &str) -> u32 {
    match a.strip_prefix('@') {
        Some(file) => {
            for _ in 0..1000 {
                if let Ok(t) = std::fs::read_to_string(file)
                    && let Ok(p) = t.trim().parse()
                {
                    return p;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("no pid in {file}");
        }
        None => a.parse().expect("pid"),
    }
}

/// Overwrite argv[0] in place (the whole argument block, as Android's `setArgv0` does), so
/// /proc/PID/cmdline shows `name`.
fn set_argv0(name: &str) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    // Fields from the 3rd on; arg_start and arg_end are the 48th and 49th.
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let (Some(&start), Some(&end)) = (f.get(45), f.get(46)) else {
        return;
    };
    if start == 0 || end <= start {
        return;
    }
    let len = (end - start) as usize;
    let bytes = name.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: [arg_start, arg_end) is this process's own argument block, writable stack
    // memory; the program has read its arguments already.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, len);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
    }
}

/// The last 15 bytes of a process name: Android's thread name for it.
fn thread_name(name: &str) -> &str {
    let mut start = name.len().saturating_sub(15);
    while !name.is_char_boundary(start) {
        start += 1;
    }
    &name[start..]
}

/// Android's zygote: forks app processes that drop to their app's uid and rename themselves,
/// never exec'ing (see the module documentation).
fn zygote(args: &[String]) {
    // Room for the children's names in the argument block (Android's zygote has plenty):
    // run again with padding when it is short.
    let block: usize = std::env::args().map(|a| a.len() + 1).sum();
    if block < 128
        && let Ok(exe) = std::env::current_exe()
    {
        let exe = CString::new(exe.as_os_str().as_encoded_bytes()).expect("path");
        let mut argv: Vec<CString> = std::env::args()
            .map(|a| CString::new(a).expect("arg"))
            .collect();
        argv.push(CString::new("--pad").unwrap());
        argv.push(CString::new("-".repeat(128)).unwrap());
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        unsafe { libc::execv(exe.as_ptr(), ptrs.as_ptr()) };
    }
    let cgroup = arg_value(args, "--cgroup");
    // Android's zygote runs at -1000 (some hosts refuse negative scores: then it keeps its own).
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    // Children are reaped by the kernel.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut line = String::new();
    loop {
        line.clear();
        if std::io::stdin().read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        match words.first().map(String::as_str) {
            Some("spawn") if words.len() >= 4 => {
                let name = words[1].clone();
                let uid: u32 = words[2].parse().expect("uid");
                let gate = words[3].clone();
                let child = unsafe { libc::fork() };
                if child == 0 {
                    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
                    app_process(&name, uid, &gate, cgroup.as_deref(), &words[4..]);
                    std::process::exit(0);
                }
            }
            Some("do") => steps(&words[1..]),
            Some("exit") => break,
            None => {}
            Some(other) => panic!("zygote: unknown command {other:?}"),
        }
    }
}

/// A zygote child: cgroup (as root), uid, then name, then the app's code.
fn app_process(name: &str, uid: u32, gate: &str, cgroup: Option<&str>, app_steps: &[String]) {
    let me = pid();
    if let Some(root) = cgroup {
        let dir = std::path::Path::new(root)
            .join(format!("uid_{uid}"))
            .join(format!("pid_{me}"));
        std::fs::create_dir_all(&dir).expect("create the process's cgroup");
        std::fs::write(dir.join("cgroup.procs"), me.to_string()).expect("join the cgroup");
    }
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setresgid(uid, uid, uid), 0, "setresgid");
        assert_eq!(libc::setresuid(uid, uid, uid), 0, "setresuid");
    }
    out(format!(
        "{{\"pid\":{me},\"spawned\":{},\"uid\":{uid}}}",
        json_str(name)
    ));
    if gate != "-" {
        out(step(&format!("waitfile={gate}")));
    }
    set_argv0(name);
    let c = CString::new(thread_name(name)).expect("name");
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
    steps(app_steps);
}

/// Double fork: returns in the grandchild; the original and intermediate processes exit.
fn daemonize() {
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
    let grandchild = unsafe { libc::fork() };
    if grandchild > 0 {
        unsafe { libc::_exit(0) };
    }
    // Wait until the original process has gone, so what follows happens "after close".
    while unsafe { libc::kill(first as i32, 0) } == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    out(format!(
        "{{\"pid\":{},\"step\":\"daemon\",\"role\":\"daemon\",\"parent_pid\":{first}}}",
        pid()
    ));
}

fn steps(list: &[String]) {
    for s in list {
        if s == "daemon" {
            daemonize();
            continue;
        }
        out(step(s));
    }
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn serve(args: &[String]) {
    let ports_file = arg_value(args, "--ports-file").expect("--ports-file");
    let seconds: u64 = arg_value(args, "--seconds")
        .map(|s| s.parse().expect("seconds"))
        .unwrap_or(60);
    let addrs = ["127.0.0.1:0", "127.0.0.1:0", "127.0.0.2:0", "[::1]:0"];
    let listeners: Vec<TcpListener> = addrs
        .iter()
        .map(|a| TcpListener::bind(a).expect("bind loopback"))
        .collect();
    let ports: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    // Written whole, then renamed: a reader never sees half a file.
    let tmp = format!("{ports_file}.tmp");
    std::fs::write(&tmp, ports.join("\n") + "\n").expect("write ports file");
    std::fs::rename(&tmp, &ports_file).expect("rename ports file");
    for l in listeners {
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            loop {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"ok\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
    }
    std::thread::sleep(Duration::from_secs(seconds));
}

fn talk(addr: &str) {
    if let Ok(mut s) = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)) {
        let mut b = [0u8; 8];
        let _ = s.read(&mut b);
    }
}

/// Files the simulated app reads, relative to its data directory.
const DATA: &[(&str, &str)] = &[
    (
        "contacts/contacts2.db",
        "Alice +44 20 7946 0000\nBob +1 202 555 0100\n",
    ),
    ("DCIM/Camera/IMG_0001.jpg", "JPEG holiday photo"),
    ("Pictures/screenshot.png", "PNG screenshot"),
    ("sys/class/net/eth0/address", "02:00:00:44:55:66\n"),
    (
        "build.prop",
        "ro.product.model=emu64x\nro.serialno=EMULATOR35X1X11X0\n",
    ),
];

fn prepare(args: &[String]) {
    let data = arg_value(args, "--data").expect("--data");
    for (p, content) in DATA {
        let f = std::path::Path::new(&data).join(p);
        std::fs::create_dir_all(f.parent().unwrap()).expect("create data directory");
        std::fs::write(&f, content).expect("write data file");
    }
    if let Some(cam) = arg_value(args, "--camera") {
        let p = std::path::Path::new(&cam);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("create device directory");
        }
        let _ = std::fs::remove_file(p);
        let c = CString::new(cam.as_str()).expect("path without NUL");
        // Character device 1:3 (/dev/null's driver): opens succeed, V4L2 ioctls fail.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        if r != 0 {
            eprintln!(
                "emuwatch-simapp: mknod {cam}: {} (creating a device node needs root)",
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
    }
    out(format!("{{\"prepared\":{}}}", json_str(&data)));
}

/// The simulated app: what the apps under study are accused of doing.
fn app(args: &[String]) {
    let ports_file = arg_value(args, "--ports-file").expect("--ports-file");
    let data = arg_value(args, "--data").expect("--data");
    let camera = arg_value(args, "--camera");
    let rounds: u32 = arg_value(args, "--rounds")
        .map(|s| s.parse().unwrap())
        .unwrap_or(3);
    let without: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--without")
        .map(|w| w[1].as_str())
        .collect();
    for w in &without {
        if !["service-connect", "service-camera", "service-identifiers"].contains(w) {
            eprintln!("emuwatch-simapp: unknown behaviour {w:?} for --without");
            std::process::exit(2);
        }
    }
    let service_does = |b: &str| !without.contains(&b);
    let servers: Vec<String> = std::fs::read_to_string(&ports_file)
        .expect("ports file")
        .lines()
        .map(str::to_string)
        .collect();
    let read = |p: &str| {
        let _ = std::fs::read(format!("{data}/{p}"));
    };
    let touch_camera = || {
        if let Some(c) = &camera {
            out(step(&format!("streamon={c}")));
        }
    };
    // With --am-dir, a separate process plays ActivityManager (the scenario's steps): the app
    // says where it is, waits to be put on screen, and later to be sent to the background.
    // The app never writes its own oom_score_adj: on Android the system does.
    let am = arg_value(args, "--am-dir");
    let am_file = |name: &str| format!("{}/{name}", am.as_deref().unwrap_or("."));
    if am.is_some() {
        std::fs::create_dir_all(am_file("")).expect("create the --am-dir directory");
        let _ = step(&format!("pidfile={}", am_file("app.pid")));
        out(step(&format!("waitfile={}", am_file("on-screen"))));
    }
    out(format!("{{\"pid\":{},\"phase\":\"foreground\"}}", pid()));
    // Foreground: the user is looking at the app.
    for s in &servers {
        talk(s);
    }
    read("contacts/contacts2.db");
    read("DCIM/Camera/IMG_0001.jpg");
    read("Pictures/screenshot.png");
    touch_camera();
    std::thread::sleep(Duration::from_millis(200));
    // The user leaves the app: ActivityManager demotes it, then its main process exits.
    if am.is_some() {
        let _ = step(&format!("touch={}", am_file("leaving")));
        out(step(&format!("waitfile={}", am_file("home"))));
    }
    out(format!("{{\"pid\":{},\"phase\":\"background\"}}", pid()));
    std::thread::sleep(Duration::from_millis(200));
    let first = pid();
    let child = unsafe { libc::fork() };
    if child > 0 {
        let mut st = 0;
        unsafe { libc::waitpid(child, &mut st, 0) };
        out(format!("{{\"pid\":{first},\"phase\":\"closed\"}}"));
        std::process::exit(0);
    }
    unsafe { libc::setsid() };
    if unsafe { libc::fork() } > 0 {
        unsafe { libc::_exit(0) };
    }
    while unsafe { libc::kill(first as i32, 0) } == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The detached service keeps collecting after close.
    for _ in 0..rounds {
        if service_does("service-connect") {
            for s in &servers {
                talk(s);
            }
        }
        if service_does("service-identifiers") {
            let _ = std::fs::read("/proc/cpuinfo");
            let _ = std::fs::read("/proc/sys/kernel/random/boot_id");
            read("sys/class/net/eth0/address");
            read("build.prop");
        }
        if service_does("service-camera") {
            touch_camera();
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    out(format!("{{\"pid\":{},\"service\":\"done\"}}", pid()));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("steps") | Some("system") => steps(&args[1..]),
        Some("zygote") => zygote(&args[1..]),
        Some("serve") => serve(&args[1..]),
        Some("app") => app(&args[1..]),
        Some("prepare") => prepare(&args[1..]),
        _ => {
            eprintln!(
                "usage: emuwatch-simapp steps STEP... | system STEP... | zygote [--cgroup DIR] | serve --ports-file F | prepare --data DIR [--camera DEV] | app --ports-file F --data DIR [--camera DEV] [--rounds N] [--am-dir DIR] [--without BEHAVIOUR]"
            );
            std::process::exit(2);
        }
    }
}
