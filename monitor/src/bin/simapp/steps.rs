//! The steps (`steps STEP...`): each does one exactly known thing and prints one JSON line.
use super::*;

/// How long `waitfile` waits before the process fails.
const WAITFILE_LIMIT: Duration = Duration::from_secs(300);

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

/// Runs one step (`OP=ARG,...`) and returns its JSON line.
pub(super) fn step(s: &str) -> String {
    let (op, arg) = s.split_once('=').unwrap_or((s, ""));
    let args: Vec<&str> = arg.split(',').collect();
    file_step(op, arg, &args)
        .or_else(|| net_step(op, arg, &args))
        .or_else(|| device_step(op, arg))
        .or_else(|| process_step(op, arg, &args))
        .unwrap_or_else(|| panic!("unknown step {op:?}"))
}

/// Opening and reading files: whole, in chunks, partially, relative to a changed directory, failing, or with a path the kernel cannot copy.
fn file_step(op: &str, arg: &str, args: &[&str]) -> Option<String> {
    Some(match op {
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
        "badptr" => {
            // openat() with a path pointer into the unmapped first page: the kernel cannot copy
            // the path (EFAULT), so emuwatch cannot either.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    16usize as *const libc::c_char,
                    libc::O_RDONLY,
                )
            };
            let r = if r < 0 { -errno() } else { r as i32 };
            format!("{{\"pid\":{},\"step\":\"badptr\",\"result\":{r}}}", pid())
        }
        _ => return None,
    })
}

/// Network: a connect, and a request to Android's resolver socket.
fn net_step(op: &str, arg: &str, args: &[&str]) -> Option<String> {
    Some(match op {
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
        _ => return None,
    })
}

/// Camera and microphone device nodes: an open, and V4L2 STREAMON.
fn device_step(op: &str, arg: &str) -> Option<String> {
    Some(match op {
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
        _ => return None,
    })
}

/// Process life: oom_score_adj, names, pauses, files to sync with the test, forks, signals and cgroup kills.
fn process_step(op: &str, arg: &str, args: &[&str]) -> Option<String> {
    Some(match op {
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
            // Long enough for a loaded emulated guest; never a silent go-ahead: an app that
            // went on by itself would do its steps unrecorded or out of order.
            let t = std::time::Instant::now();
            while !std::path::Path::new(arg).exists() {
                if t.elapsed() > WAITFILE_LIMIT {
                    panic!("waitfile: {arg} did not appear in {WAITFILE_LIMIT:?}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            format!("{{\"pid\":{},\"step\":\"waitfile\"}}", pid())
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
        _ => return None,
    })
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
