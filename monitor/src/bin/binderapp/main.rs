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

mod app;
mod proto;
mod services;

use app::app;
use proto::*;
use services::{servicemanager, services};

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
