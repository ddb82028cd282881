//! The "app": looks services up and calls them, step by step.
use super::*;

pub(crate) struct App {
    pub(crate) binder: Binder,
    pub(crate) pending: Vec<u8>,
    pub(crate) layout: String,
    pub(crate) handles: HashMap<String, u32>,
}

impl App {
    pub(crate) fn get(&mut self, name: &str) -> u32 {
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

    /// `call=NAME,INTERFACE,CODE[,oneway][,uri=U]`: one call on the service's handle.
    fn call_step(&mut self, s: &str, v: &str) {
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
        let handle = match self.handles.get(parts[0]) {
            Some(&h) => h,
            None => self.get(parts[0]),
        };
        let mut p = Parcel::default();
        p.token(&self.layout, parts[1]);
        if let Some(u) = uri {
            // Roughly what a query writes first: the caller's package, then the URI.
            p.string16("com.example.app").i32(1).string16(u);
        }
        let flags = if oneway { TF_ONE_WAY } else { 0 };
        call(&self.binder, &mut self.pending, handle, code, flags, &p);
        out(format!(
            "{{\"pid\":{},\"step\":\"call\",\"service\":\"{}\",\"interface\":\"{}\",\"code\":{code},\"handle\":{handle},\"oneway\":{oneway}}}",
            pid(),
            parts[0],
            parts[1]
        ));
    }

    /// `repeat=N,NAME,INTERFACE,CODE`: N synchronous calls, timed.
    fn repeat_step(&mut self, s: &str, v: &str) {
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
        let handle = match self.handles.get(*name) {
            Some(&h) => h,
            None => self.get(name),
        };
        let mut p = Parcel::default();
        p.token(&self.layout, iface);
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
            call(&self.binder, &mut self.pending, handle, code, 0, &p);
        }
        let ns = t.elapsed().as_nanos() / u128::from(n.max(1));
        let cpu_ns = (cpu() - c) / u128::from(n.max(1));
        out(format!(
            "{{\"pid\":{},\"step\":\"repeat\",\"n\":{n},\"ns_per_call\":{ns},\"cpu_ns_per_call\":{cpu_ns}}}",
            pid()
        ));
    }
}

pub(crate) fn daemonize(app: &mut App) {
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

pub(crate) fn app(steps: &[String]) {
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
            "call" => app.call_step(s, v),
            "repeat" => app.repeat_step(s, v),
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
