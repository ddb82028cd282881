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
//!   badptr                    openat() with an unreadable path pointer (EFAULT)
//!   device=PATH               open a device node read-write, close it
//!   streamon=PATH             open a device node, ioctl(VIDIOC_STREAMON), close
//!   oom=N                     write N to /proc/self/oom_score_adj
//!   rename=NAME               prctl(PR_SET_NAME, NAME) (what Android app processes do)
//!   sleep=MS                  sleep
//!   daemon                    double-fork: the remaining steps run in a grandchild whose
//!                             parent has exited; the original process exits once the
//!                             intermediate child has (like a detached app service)
//!   waitfile=PATH             wait until PATH exists (more than 5 minutes: the process panics)
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
//! `emuwatch-simapp netd --pidfile FILE` plays Android's netd: a resolver on
//! /dev/socket/dnsproxyd that sends the DNS packets for the apps' requests (netd.rs).
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
mod demo;
mod netd;
mod steps;
mod zygote;

use std::{
    ffi::CString,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use demo::{app, prepare, serve};
use steps::step;
use zygote::zygote;

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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("steps") | Some("system") => steps(&args[1..]),
        Some("zygote") => zygote(&args[1..]),
        Some("netd") => netd::netd(&args[1..]),
        Some("serve") => serve(&args[1..]),
        Some("app") => app(&args[1..]),
        Some("prepare") => prepare(&args[1..]),
        _ => {
            eprintln!(
                "usage: emuwatch-simapp steps STEP... | system STEP... | zygote [--cgroup DIR] | netd --pidfile F | serve --ports-file F | prepare --data DIR [--camera DEV] | app --ports-file F --data DIR [--camera DEV] [--rounds N] [--am-dir DIR] [--without BEHAVIOUR]"
            );
            std::process::exit(2);
        }
    }
}
