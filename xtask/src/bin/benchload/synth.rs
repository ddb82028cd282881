//! `emuwatch-benchload synth-session DIR --events N [--seed S]`: a realistic session directory
//! (session.json + events.jsonl in the documented schema, docs/events.md) for timing
//! `emuwatch report`. Three apps over an hour, each foreground, then background, then closed
//! with a detached service still collecting; opens and read totals of app data, media, system
//! and identifier files; connects to a few hundred destinations (documentation and GeoIP
//! test-database addresses: nothing here is ever connected to); camera and microphone use,
//! app_state changes, markers, forks and exits. Deterministic for a given seed.
use std::{
    collections::BTreeMap,
    io::{BufWriter, Write},
    path::Path,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

struct App {
    package: &'static str,
    comm: &'static str,
    uid: u32,
    main_pid: u32,
    service_pid: u32,
}

const APPS: [App; 3] = [
    App {
        package: "com.example.spyapp",
        comm: "example.spyapp",
        uid: 10123,
        main_pid: 4242,
        service_pid: 4301,
    },
    App {
        package: "com.example.notes",
        comm: "example.notes",
        uid: 10140,
        main_pid: 5100,
        service_pid: 5188,
    },
    App {
        package: "com.example.maps",
        comm: "example.maps",
        uid: 10155,
        main_pid: 6010,
        service_pid: 6077,
    },
];

fn paths(app: &App, rng: &mut Rng) -> Vec<String> {
    let mut v: Vec<String> = [
        "/proc/cpuinfo",
        "/proc/meminfo",
        "/proc/sys/kernel/random/boot_id",
        "/sys/class/net/eth0/address",
        "/sys/class/net/wlan0/address",
        "/system/build.prop",
        "/system/lib64/libc.so",
        "/system/lib64/libssl.so",
        "/system/fonts/Roboto-Regular.ttf",
        "/apex/com.android.runtime/lib64/bionic/libm.so",
        "/data/system/packages.list",
        "/data/data/com.android.providers.contacts/databases/contacts2.db",
        "/data/data/com.android.providers.telephony/databases/mmssms.db",
        "/data/misc/wifi/WifiConfigStore.xml",
        "/data/data/com.whatsapp/databases/msgstore.db",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..60 {
        v.push(format!(
            "/data/data/{}/shared_prefs/pref_{i}.xml",
            app.package
        ));
        v.push(format!(
            "/data/data/{}/cache/http/{:016x}",
            app.package,
            rng.next()
        ));
    }
    for i in 0..120 {
        v.push(format!("/storage/emulated/0/DCIM/Camera/IMG_{i:04}.jpg"));
    }
    for i in 0..40 {
        v.push(format!("/sdcard/Download/document_{i}.pdf"));
        v.push(format!(
            "/storage/emulated/0/Pictures/Screenshots/shot_{i}.png"
        ));
    }
    v
}

/// A destination: address, family, port, scope.
type Dest = (String, &'static str, u16, &'static str);

fn destinations(rng: &mut Rng) -> Vec<Dest> {
    let mut v = Vec::new();
    // GeoIP test-database ranges (tests/fixtures/geoip) and documentation ranges.
    for i in 0..64 {
        v.push((format!("89.160.20.{}", 100 + i), "inet", 443, "public"));
        v.push((format!("81.2.69.{}", 140 + i % 40), "inet", 443, "public"));
        v.push((
            format!("216.160.83.{}", 50 + i % 10),
            "inet",
            8443,
            "public",
        ));
        v.push((format!("203.0.113.{}", 1 + i), "inet", 443, "public"));
        v.push((
            format!("2001:db8::{:x}", 1 + rng.below(4096)),
            "inet6",
            443,
            "public",
        ));
    }
    v.push(("10.0.2.3".into(), "inet", 53, "private"));
    v.push(("127.0.0.1".into(), "inet", 8080, "loopback"));
    v
}

fn ts(base_ns: i64, offset_ns: i64) -> String {
    let t = base_ns + offset_ns;
    let secs = t.div_euclid(1_000_000_000);
    let nanos = t.rem_euclid(1_000_000_000);
    // 2026-11-20T10:00:00Z + secs (within one day: the session lasts an hour)
    let (h, m, s) = (10 + secs / 3600, (secs / 60) % 60, secs % 60);
    format!("2026-11-20T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
}

fn phase_at(frac: f64) -> &'static str {
    if frac < 0.4 {
        "foreground"
    } else if frac < 0.7 {
        "background"
    } else {
        "closed"
    }
}

/// The session being written: events.jsonl, the count per kind, and the generator.
struct Synth {
    w: BufWriter<std::fs::File>,
    kinds: BTreeMap<&'static str, u64>,
    written: u64,
    rng: Rng,
}

impl Synth {
    fn emit(&mut self, kind: &'static str, line: String) {
        self.w
            .write_all(line.as_bytes())
            .expect("write events.jsonl");
        self.w.write_all(b"\n").expect("write events.jsonl");
        *self.kinds.entry(kind).or_default() += 1;
        self.written += 1;
    }

    /// Each app starts in the foreground and forks its service.
    fn start(&mut self, i: usize, app: &App) {
        let t = ts(0, i as i64 * 1000);
        let c = common(app, app.main_pid, "foreground");
        self.emit(
            "phase",
            format!(
                "{{\"ts\":\"{t}\",\"kind\":\"phase\",\"to\":\"foreground\",\"reason\":\"start\",\"detail\":\"oom_score_adj 0 (foreground) when first seen\",{c}}}"
            ),
        );
        self.emit(
            "app_state",
            format!(
                "{{\"ts\":\"{t}\",\"kind\":\"app_state\",\"oom_score_adj\":0,\"band\":\"foreground\",\"source\":\"proc\",{c}}}"
            ),
        );
        self.emit(
            "process",
            format!(
                "{{\"ts\":\"{t}\",\"kind\":\"process\",\"op\":\"fork\",\"child_pid\":{},{c}}}",
                app.service_pid
            ),
        );
    }

    /// An app moves from `last` to `phase`: pressed HOME (a marker and its app_state), or its
    /// main process exited; then the phase event.
    fn phase_change(&mut self, t: &str, app: &App, last: &str, phase: &str) {
        let (from, reason, detail, adj) = match phase {
            "background" => (
                "foreground",
                "app_state",
                "oom_score_adj 0 -> 700 (previous)",
                700,
            ),
            _ => ("background", "main_exited", "main process exited", 900),
        };
        let c = common(app, app.main_pid, last);
        if phase == "background" {
            self.emit(
                "marker",
                format!(
                    "{{\"ts\":\"{t}\",\"kind\":\"marker\",\"label\":\"scenario: press HOME in {}\",\"pid\":0,\"tid\":0,\"ppid\":0,\"uid\":0,\"comm\":\"emuwatch\"}}",
                    app.package
                ),
            );
            self.emit(
                "app_state",
                format!(
                    "{{\"ts\":\"{t}\",\"kind\":\"app_state\",\"oom_score_adj\":{adj},\"band\":\"previous\",\"source\":\"kernel\",{c}}}"
                ),
            );
        } else {
            self.emit(
                "process",
                format!(
                    "{{\"ts\":\"{t}\",\"kind\":\"process\",\"op\":\"exit\",\"exit_code\":0,{c}}}"
                ),
            );
        }
        let c = common(app, app.main_pid, phase);
        self.emit(
            "phase",
            format!(
                "{{\"ts\":\"{t}\",\"kind\":\"phase\",\"to\":\"{phase}\",\"from\":\"{from}\",\"reason\":\"{reason}\",\"detail\":\"{detail}\",{c}}}"
            ),
        );
    }

    /// An open, usually followed by its read total (not when denied, or when the session is
    /// full). `fd` cycles through 21..=201.
    fn open(&mut self, e: &At, paths: &[String], fd: &mut i32, n: u64) {
        let p = self.rng.pick(paths).clone();
        *fd = if *fd > 200 { 20 } else { *fd + 1 };
        let denied = self.rng.below(20) == 0;
        let (result, err) = if denied {
            (-13, ",\"error\":\"EACCES\"")
        } else {
            (*fd, "")
        };
        let (t, c) = (&e.t, &e.c);
        self.emit(
            "file_open",
            format!(
                "{{\"ts\":\"{t}\",\"kind\":\"file_open\",\"path\":\"{p}\",\"path_origin\":\"syscall\",\"flags\":524288,\"flags_text\":\"O_RDONLY|O_CLOEXEC\",\"result\":{result}{err},\"syscall\":\"openat\",{c}}}"
            ),
        );
        if !denied && self.written < n {
            let reads = 1 + self.rng.below(64);
            let bytes = reads * 4096 - self.rng.below(4096);
            let t2 = ts(0, e.off + e.step / 2);
            self.emit(
                "file_read",
                format!(
                    "{{\"ts\":\"{t2}\",\"kind\":\"file_read\",\"path\":\"{p}\",\"fd\":{},\"bytes\":{bytes},\"reads\":{reads},\"flushed_at\":\"close\",{c}}}",
                    *fd
                ),
            );
        }
    }

    fn connect(&mut self, e: &At, dests: &[Dest]) {
        let (addr, family, port, scope) = self.rng.pick(dests);
        let proto = if *port == 53 { "udp" } else { "tcp" };
        let (result, err) = match self.rng.below(10) {
            0 => (-115, ",\"error\":\"EINPROGRESS\""),
            1 => (-111, ",\"error\":\"ECONNREFUSED\""),
            _ => (0, ""),
        };
        let (t, c) = (&e.t, &e.c);
        let line = format!(
            "{{\"ts\":\"{t}\",\"kind\":\"connect\",\"family\":\"{family}\",\"proto\":\"{proto}\",\"daddr\":\"{addr}\",\"dport\":{port},\"result\":{result}{err},\"scope\":\"{scope}\",{c}}}"
        );
        self.emit("connect", line);
    }

    fn device(&mut self, e: &At, camera: bool) {
        let (t, c) = (&e.t, &e.c);
        if camera {
            let op = if self.rng.below(2) == 0 {
                "open"
            } else {
                "stream_on"
            };
            self.emit(
                "camera",
                format!(
                    "{{\"ts\":\"{t}\",\"kind\":\"camera\",\"op\":\"{op}\",\"path\":\"/dev/video0\",\"result\":0,{c}}}"
                ),
            );
        } else {
            self.emit(
                "microphone",
                format!(
                    "{{\"ts\":\"{t}\",\"kind\":\"microphone\",\"op\":\"open\",\"path\":\"/dev/snd/pcmC0D0c\",\"result\":9,{c}}}"
                ),
            );
        }
    }

    /// An oom_score_adj change within the app's phase (always 0 in the foreground).
    fn app_state(&mut self, e: &At, phase: &str) {
        let adj = *self.rng.pick(&[700, 800, 900, 905, 910]);
        let band = match adj {
            _ if phase == "foreground" => "foreground",
            900.. => "cached",
            800..900 => "service_b",
            _ => "previous",
        };
        let adj = if phase == "foreground" { 0 } else { adj };
        let (t, c) = (&e.t, &e.c);
        self.emit(
            "app_state",
            format!(
                "{{\"ts\":\"{t}\",\"kind\":\"app_state\",\"oom_score_adj\":{adj},\"band\":\"{band}\",\"source\":\"kernel\",{c}}}"
            ),
        );
    }

    fn fork(&mut self, e: &At) {
        let child = 7000 + self.rng.below(20000) as u32;
        let (t, c) = (&e.t, &e.c);
        self.emit(
            "process",
            format!(
                "{{\"ts\":\"{t}\",\"kind\":\"process\",\"op\":\"fork\",\"child_pid\":{child},{c}}}"
            ),
        );
    }

    /// session.json for what was written.
    fn session_json(&self) -> (u64, String) {
        let total: u64 = self.kinds.values().sum();
        let events: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let info = format!(
            r##"{{
  "schema_version": 1,
  "tool": "emuwatch",
  "tool_version": "0.1.0",
  "kernel": {{"release": "6.1.23-android14", "version": "#1 SMP PREEMPT", "machine": "x86_64"}},
  "hostname": "synthetic",
  "started_at": "2026-11-20T10:00:00.000000000Z",
  "ended_at": "2026-11-20T11:00:00.000000000Z",
  "stop_reason": "duration",
  "target": {{"uids": [10123, 10140, 10155], "packages": ["com.example.spyapp", "com.example.notes", "com.example.maps"]}},
  "probes": [],
  "events": {{{}}},
  "events_total": {total},
  "lost": {{"total": 0, "by_reason": {{}}, "per_cpu": [0, 0], "undecodable": 0}},
  "complete": true,
  "ring_buffer_bytes": 8388608
}}
"##,
            events.join(",")
        );
        (total, info)
    }
}

/// When and by whom an event happens: its timestamp, its offset and the session's step (for
/// the read total that follows an open), and the common fields of its process.
struct At {
    t: String,
    off: i64,
    step: i64,
    c: String,
}

/// The fields every event of an app's process has.
fn common(app: &App, pid: u32, phase: &str) -> String {
    let (ppid, comm) = if pid == app.main_pid {
        (612, app.comm)
    } else {
        (app.main_pid, "collector")
    };
    format!(
        "\"pid\":{pid},\"tid\":{pid},\"ppid\":{ppid},\"uid\":{},\"comm\":\"{comm}\",\"app\":\"{}\",\"phase\":\"{phase}\"",
        app.uid, app.package
    )
}

pub fn main(args: &[String]) {
    let Some(dir) = args.first() else {
        super::die("usage: synth-session DIR --events N [--seed S]");
    };
    let n: u64 = super::need(args, "--events");
    let seed: u64 = super::arg(args, "--seed").unwrap_or(0x5eed);
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| super::die(&format!("{e}")));
    let mut rng = Rng(seed | 1);
    let dests = destinations(&mut rng);
    let app_paths: Vec<Vec<String>> = APPS.iter().map(|a| paths(a, &mut rng)).collect();
    let f = std::fs::File::create(dir.join("events.jsonl"))
        .unwrap_or_else(|e| super::die(&format!("{e}")));
    let mut s = Synth {
        w: BufWriter::with_capacity(1 << 20, f),
        kinds: BTreeMap::new(),
        written: 0,
        rng,
    };
    let duration_ns: i64 = 3600 * 1_000_000_000;
    let step = duration_ns / n.max(1) as i64;
    for (i, app) in APPS.iter().enumerate() {
        s.start(i, app);
    }
    let mut last_phase = ["foreground"; 3];
    let mut fd = 20i32;
    let mut i = 0u64;
    while s.written < n {
        i += 1;
        let off = (i as i64) * step;
        let t = ts(0, off);
        let ai = s.rng.below(3) as usize;
        let app = &APPS[ai];
        let phase = phase_at(off as f64 / duration_ns as f64);
        if phase != last_phase[ai] {
            s.phase_change(&t, app, last_phase[ai], phase);
            last_phase[ai] = phase;
            continue;
        }
        let pid = if phase == "closed" || s.rng.below(3) == 0 {
            app.service_pid
        } else {
            app.main_pid
        };
        let e = At {
            t,
            off,
            step,
            c: common(app, pid, phase),
        };
        match s.rng.below(1000) {
            0..420 => s.open(&e, &app_paths[ai], &mut fd, n),
            420..900 => s.connect(&e, &dests),
            900..940 => s.device(&e, true),
            940..960 => s.device(&e, false),
            960..985 => s.app_state(&e, phase),
            _ => s.fork(&e),
        }
    }
    s.w.flush().expect("write events.jsonl");
    let (total, info) = s.session_json();
    std::fs::write(dir.join("session.json"), info).unwrap_or_else(|e| super::die(&format!("{e}")));
    println!("{{\"events\":{total}}}");
}
