//! The demo's pieces: loopback servers, the app's data, and the app itself.
use super::*;

pub(super) fn serve(args: &[String]) {
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

pub(super) fn prepare(args: &[String]) {
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
pub(super) fn app(args: &[String]) {
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
