//! Capture tests on the real kernel: each loads emuwatch's eBPF programs, runs a child with
//! exactly known behaviour (`emuwatch-simapp`), and asserts on the session it recorded.
//! They need root. A missing kernel feature fails loudly: nothing here is skipped.
use std::{
    net::{TcpListener, UdpSocket},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const EMUWATCH: &str = env!("CARGO_BIN_EXE_emuwatch");
/// How long a wait for something that must happen may take before the test fails. Generous:
/// the suite also runs in QEMU guests under TCG (`cargo xtask test`), where loading and
/// verifying the programs alone takes seconds; only a failing test ever waits this long.
const PATIENCE: Duration = Duration::from_secs(120);

#[path = "common/mod.rs"]
mod common;
use common::{SIMAPP, simapp_copy};

fn require_root() {
    let uid = unsafe { libc_geteuid() };
    assert_eq!(
        uid, 0,
        "capture tests load eBPF programs: run them as root (cargo xtask test)"
    );
}

/// Fail, naming the tool, unless every one of `tools` is on PATH (`why`, if not empty: what
/// one of them is for).
fn require_tools(tools: &[&str], why: &str) {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        };
        assert!(found, "{tool} is needed by this test{why}");
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

struct Session {
    info: Value,
    events: Vec<Value>,
    /// JSON lines the simulated app printed about what it did.
    did: Vec<Value>,
    output: Output,
}

impl Session {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["kind"] == kind).collect()
    }
    fn by_pid(&self, kind: &str, pid: u64) -> Vec<&Value> {
        self.of_kind(kind)
            .into_iter()
            .filter(|e| e["pid"] == pid)
            .collect()
    }
    fn did(&self, step: &str) -> Vec<&Value> {
        self.did.iter().filter(|d| d["step"] == step).collect()
    }
    fn dump(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.output.stderr).into_owned();
        for e in &self.events {
            s.push_str(&e.to_string());
            s.push('\n');
        }
        s
    }
}

fn load(dir: &Path, output: Output) -> Session {
    load_with(dir, output, &[])
}

/// `load` for a recording started with `args`.
fn load_with(dir: &Path, output: Output, args: &[&str]) -> Session {
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.join("session.json")).expect("session.json"))
            .expect("session.json is JSON");
    let events = std::fs::read_to_string(dir.join("events.jsonl"))
        .expect("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect();
    check_probe_plan(&info, args);
    let did = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Session {
        info,
        events,
        did,
        output,
    }
}

/// The suite runs once per probe path (`EMUWATCH_SYSCALL_PROBES`, `EMUWATCH_BTF`, set by
/// `cargo xtask test`): every session must say it used the path asked for, so a run that
/// silently fell back to the other path cannot pass as a test of this one.
fn check_probe_plan(info: &Value, args: &[&str]) {
    let plan = &info["probe_plan"];
    assert!(plan.is_object(), "session.json has no probe_plan: {info}");
    // A test's own --syscall-probes / --btf win over the suite's environment.
    let arg = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.to_string())
    };
    let wanted = arg("--syscall-probes").or_else(|| std::env::var("EMUWATCH_SYSCALL_PROBES").ok());
    match wanted.as_deref() {
        Some("raw") => assert_eq!(plan["syscall_probes"], "raw", "{plan}"),
        Some("per-syscall") => assert_eq!(plan["syscall_probes"], "per-syscall", "{plan}"),
        _ => {}
    }
    let btf = arg("--btf").or_else(|| std::env::var("EMUWATCH_BTF").ok());
    if btf.as_deref() == Some("off") {
        assert_eq!(plan["btf"], false, "{plan}");
    }
    let attached = |program: &str| {
        info["probes"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["program"] == program && p["attached"] == true)
        })
    };
    if plan["syscall_probes"] == "raw" {
        assert!(
            attached("raw_sys_enter") || attached("tp_raw_sys_enter"),
            "raw path without its programs: {info}"
        );
        assert!(!attached("sys_enter_openat"), "{info}");
    } else {
        assert!(attached("sys_enter_openat"), "{info}");
    }
}

fn btf_in_use() -> bool {
    std::env::var("EMUWATCH_BTF").as_deref() != Ok("off")
        && Path::new("/sys/kernel/btf/vmlinux").exists()
}

/// `emuwatch record --out TMP ARGS -- simapp steps STEPS`, expecting success.
fn record_steps(tmp: &Path, args: &[&str], steps: &[String]) -> Session {
    require_root();
    let dir = tmp.join("session");
    let output = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .args(args)
        .arg("--")
        .arg(SIMAPP)
        .arg("steps")
        .args(steps)
        .output()
        .expect("run emuwatch");
    let s = load_with(&dir, output, args);
    assert!(
        s.output.status.success(),
        "emuwatch record failed: {:?}\n{}",
        s.output.status,
        s.dump()
    );
    assert_eq!(s.info["complete"], true, "events were lost:\n{}", s.info);
    s
}

/// Start `emuwatch record ARGS` in the background and wait until its probes are attached.
fn start_recording(dir: &Path, args: &[&str]) -> Child {
    require_root();
    let mut child = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start emuwatch");
    let t = Instant::now();
    loop {
        if let Ok(b) = std::fs::read(dir.join("session.json"))
            && let Ok(v) = serde_json::from_slice::<Value>(&b)
            && v["probes"].as_array().is_some_and(|p| !p.is_empty())
        {
            return child;
        }
        if t.elapsed() > PATIENCE || child.try_wait().is_ok_and(|s| s.is_some()) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "emuwatch did not attach: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop_recording(dir: &Path, child: Child) -> Session {
    unsafe { kill(child.id() as i32, 15) };
    let output = child.wait_with_output().expect("wait emuwatch");
    assert!(
        output.status.success(),
        "emuwatch: {:?} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    load(dir, output)
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// The pid in the first JSON line a simapp printed.
fn first_pid(o: &Output) -> u64 {
    let line = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("simapp output {line:?}: {e}"))["pid"]
        .as_u64()
        .unwrap()
}

fn simapp(steps: &[String]) -> Command {
    let mut c = Command::new(SIMAPP);
    c.arg("steps").args(steps);
    c
}

fn s(v: &str) -> String {
    v.to_string()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("emuwatch-test-")
        .tempdir()
        .unwrap()
}

fn write_file(path: &Path, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(path, data).unwrap();
}

#[test]
fn doctor_passes_on_this_kernel() {
    require_root();
    let out = Command::new(EMUWATCH).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "doctor failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("base probe set works"), "{text}");
    assert!(text.contains("cgroup v2  mounted at"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn connects_are_recorded_exactly() {
    let tmp = tempdir();
    let tcp4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp6 = TcpListener::bind("[::1]:0").unwrap();
    let udp4 = UdpSocket::bind("127.0.0.3:0").unwrap();
    let udp6 = UdpSocket::bind("[::1]:0").unwrap();
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // dropped: nothing listens there now
    let (p4, p6) = (
        tcp4.local_addr().unwrap().port(),
        tcp6.local_addr().unwrap().port(),
    );
    let (u4, u6) = (
        udp4.local_addr().unwrap().port(),
        udp6.local_addr().unwrap().port(),
    );

    // A concurrent non-target process connecting to the same listeners all along.
    // (Few enough, with pauses, not to fill the listener's accept backlog.)
    let noise_steps: Vec<String> = (0..40)
        .flat_map(|_| [format!("connect=tcp4,127.0.0.1,{p4}"), s("sleep=10")])
        .collect();
    let mut noise = simapp(&noise_steps).stdout(Stdio::piped()).spawn().unwrap();

    let steps = vec![
        format!("connect=tcp4,127.0.0.1,{p4}"),
        format!("connect=tcp6,::1,{p6}"),
        format!("connect=udp4,127.0.0.3,{u4}"),
        format!("connect=udp6,::1,{u6}"),
        format!("connect=tcp4,127.0.0.1,{refused}"),
        format!("connect=tcp4nb,127.0.0.1,{p4}"),
        s("daemon"),
        format!("connect=tcp6,::1,{p6}"),
        format!("connect=udp4,127.0.0.3,{u4}"),
    ];
    let sess = record_steps(tmp.path(), &[], &steps);
    let noise_pid = noise.id() as u64;
    let _ = noise.wait();

    let did = sess.did("connect");
    let got = sess.of_kind("connect");
    assert_eq!(
        got.len(),
        did.len(),
        "expected exactly {} connects:\n{}",
        did.len(),
        sess.dump()
    );
    for (want, ev) in did.iter().zip(&got) {
        let proto = want["proto"].as_str().unwrap();
        assert_eq!(ev["pid"], want["pid"], "pid of {ev}");
        assert_eq!(ev["daddr"], want["addr"], "{ev}");
        assert_eq!(ev["dport"], want["port"], "{ev}");
        assert_eq!(ev["result"], want["result"], "{ev}");
        assert_eq!(
            ev["proto"],
            if proto.starts_with("tcp") {
                "tcp"
            } else {
                "udp"
            },
            "{ev}"
        );
        assert_eq!(
            ev["family"],
            if proto.contains('6') { "inet6" } else { "inet" },
            "{ev}"
        );
        assert_eq!(ev["tid"], ev["pid"], "single-threaded child");
    }
    let results: Vec<i64> = got.iter().map(|e| e["result"].as_i64().unwrap()).collect();
    assert_eq!(results[4], -111, "refused port gives ECONNREFUSED");
    assert_eq!(got[4]["error"], "ECONNREFUSED");
    assert_eq!(results[5], -115, "non-blocking connect gives EINPROGRESS");
    // The last two come from the double-forked grandchild, after its ancestor exited.
    let daemon = sess
        .did("daemon")
        .into_iter()
        .find(|d| d["role"] == "daemon")
        .expect("daemon line")
        .clone();
    assert_eq!(got[6]["pid"], daemon["pid"]);
    assert_eq!(got[7]["pid"], daemon["pid"]);
    assert_ne!(daemon["pid"], did[0]["pid"]);
    assert_eq!(
        got[7]["app"], got[0]["app"],
        "daemon attributed to the same app"
    );
    // Process lifecycle: the fork chain down to the daemon is in the session.
    let forks = sess
        .of_kind("process")
        .into_iter()
        .filter(|e| e["op"] == "fork")
        .count();
    assert!(
        forks >= 2,
        "two forks for the double fork:\n{}",
        sess.dump()
    );
    let exec = sess
        .of_kind("process")
        .into_iter()
        .find(|e| e["op"] == "exec")
        .expect("exec event");
    assert_eq!(exec["filename"], SIMAPP);
    // The concurrent non-target process is absent.
    assert!(
        sess.events.iter().all(|e| e["pid"] != noise_pid),
        "non-target pid {noise_pid} leaked"
    );
    for e in &sess.events {
        for key in ["ts", "kind", "pid", "tid", "ppid", "uid", "comm"] {
            assert!(e.get(key).is_some(), "event without {key}: {e}");
        }
    }
    assert_eq!(sess.info["schema_version"], 1);
    assert_eq!(sess.info["stop_reason"], "targets_exited");
    assert_eq!(sess.info["lost"]["total"], 0);
}

#[test]
fn exit_codes_and_signals_are_recorded() {
    let tmp = tempdir();
    let sess = record_steps(tmp.path(), &[], &[s("sleep=1")]);
    let exit = sess
        .of_kind("process")
        .into_iter()
        .find(|e| e["op"] == "exit")
        .expect("exit event")
        .clone();
    assert_eq!(exit["exit_code"], 0);

    require_root();
    let dir = tmp.path().join("s2");
    let out = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .args(["--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    let sess = load(&dir, out);
    let exits: Vec<&Value> = sess
        .of_kind("process")
        .into_iter()
        .filter(|e| e["op"] == "exit")
        .collect();
    assert_eq!(exits.len(), 1, "{}", sess.dump());
    assert_eq!(exits[0]["exit_code"], 7);

    // Killed by a signal: the BTF exit probe reads the signal from task_struct; without BTF
    // there is no exit_group() to take the code from, and the session says "unknown".
    let dir = tmp.path().join("s3");
    let out = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .args(["--", "sh", "-c", "kill -9 $$"])
        .output()
        .unwrap();
    let sess = load(&dir, out);
    let exits: Vec<&Value> = sess
        .of_kind("process")
        .into_iter()
        .filter(|e| e["op"] == "exit")
        .collect();
    assert_eq!(exits.len(), 1, "{}", sess.dump());
    if btf_in_use() {
        assert_eq!(exits[0]["signal"], 9, "{}", sess.dump());
        assert!(
            exits[0].get("exit_code").is_none_or(Value::is_null),
            "{}",
            sess.dump()
        );
    } else {
        assert!(
            exits[0].get("signal").is_none_or(Value::is_null),
            "{}",
            sess.dump()
        );
        assert!(
            exits[0].get("exit_code").is_none_or(Value::is_null),
            "{}",
            sess.dump()
        );
    }
}

#[test]
fn file_reads_are_counted_in_the_kernel() {
    let tmp = tempdir();
    let dir = tmp.path().join("files");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    write_file(&dir.join("a.bin"), 10_000);
    write_file(&dir.join("sub/rel.bin"), 777);
    let a = dir.join("a.bin").to_string_lossy().into_owned();
    let steps = vec![
        format!("read={a},4096"),
        format!("pread={a},3000"),
        format!("readv={a},2048"),
        format!("preadv={a},1000"),
        format!("partial={a},100"),
        format!("loop={a},10000,64"),
        format!("cd={}", dir.join("sub").display()),
        s("openrel=rel.bin"),
        s("openrel=../a.bin"),
        format!("fail={}/does-not-exist", dir.display()),
    ];
    let sess = record_steps(tmp.path(), &[], &steps);
    let reads: Vec<&Value> = sess
        .of_kind("file_read")
        .into_iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(dir.to_str().unwrap()))
        })
        .collect();
    let want: Vec<(&str, u64, u64)> = sess
        .did
        .iter()
        .filter(|d| d.get("bytes").is_some())
        .map(|d| {
            (
                d["step"].as_str().unwrap(),
                d["bytes"].as_u64().unwrap(),
                d["reads"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reads.len(),
        want.len(),
        "one file_read per opened file:\n{}",
        sess.dump()
    );
    let expect_paths = [
        &a,
        &a,
        &a,
        &a,
        &a,
        &a,
        &format!("{}/sub/rel.bin", dir.display()),
        &a,
    ];
    for (i, ((step, bytes, n), ev)) in want.iter().zip(&reads).enumerate() {
        assert_eq!(ev["bytes"], *bytes, "{step}: {ev}");
        assert_eq!(ev["reads"], *n, "{step}: {ev}");
        assert_eq!(
            ev["path"].as_str().unwrap(),
            expect_paths[i].as_str(),
            "{step}: {ev}"
        );
        assert_eq!(ev["flushed_at"], "close");
    }
    // Exact figures for the fixed cases (10k file; the EOF read counts as a call).
    assert_eq!(
        (reads[0]["bytes"].as_u64(), reads[0]["reads"].as_u64()),
        (Some(10_000), Some(4))
    );
    assert_eq!(reads[5]["reads"], 10_000, "the 10k-read loop is one event");
    assert_eq!(reads[5]["bytes"], 640_000);
    assert_eq!(reads[6]["bytes"], 777);
    // 10k reads cost one event, not 10k.
    assert!(
        sess.events.len() < 200,
        "{} events for a 10k-read loop",
        sess.events.len()
    );
    let opens = sess.of_kind("file_open");
    let failed = opens
        .iter()
        .find(|e| e["path"] == format!("{}/does-not-exist", dir.display()))
        .expect("the failed open");
    assert_eq!(failed["result"], -2);
    assert_eq!(failed["error"], "ENOENT");
    let rel = opens
        .iter()
        .find(|e| e["path"] == format!("{}/sub/rel.bin", dir.display()))
        .expect("relative open resolved against the cwd");
    assert_eq!(rel["path_origin"], "syscall");
    assert!(rel["result"].as_i64().unwrap() >= 0);
    let chdir = sess
        .of_kind("process")
        .into_iter()
        .find(|e| e["op"] == "chdir")
        .expect("chdir event");
    assert_eq!(chdir["cwd"], dir.join("sub").to_string_lossy().as_ref());
}

/// A character device node in `dir` (major, minor); /dev/null's numbers make it openable.
fn mknod(path: &Path, major: u32, minor: u32) {
    let st = Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "mknod {}", path.display());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
}

#[test]
fn camera_and_microphone_device_access() {
    let tmp = tempdir();
    let dev = tmp.path().join("dev");
    std::fs::create_dir_all(dev.join("snd")).unwrap();
    // Video major 81 with no driver bound: opening fails (ENXIO/ENODEV), an attempt that counts.
    mknod(&dev.join("video0"), 81, 0);
    // A working node in the video namespace (backed by /dev/null's driver): open succeeds,
    // VIDIOC_STREAMON fails with ENOTTY but is still an attempt to start capture.
    mknod(&dev.join("video1"), 1, 3);
    mknod(&dev.join("snd/pcmC0D0c"), 1, 3);
    mknod(&dev.join("snd/pcmC0D0p"), 1, 3);
    // And one node where the default patterns look: /dev/video* itself.
    let sys_video = PathBuf::from(format!("/dev/video{}", 200 + std::process::id() % 50));
    let _ = std::fs::remove_file(&sys_video);
    mknod(&sys_video, 81, 63);
    let d = dev.display();
    let steps = vec![
        format!("device={d}/video0"),
        format!("streamon={d}/video1"),
        format!("device={d}/snd/pcmC0D0c"),
        format!("device={d}/snd/pcmC0D0p"),
        format!("device={}", sys_video.display()),
    ];
    let cam = format!("camera={d}/video*");
    let mic = format!("microphone={d}/snd/pcm*c");
    let sess = record_steps(tmp.path(), &["--device", &cam, "--device", &mic], &steps);
    let _ = std::fs::remove_file(&sys_video);
    let camera = sess.of_kind("camera");
    let did = sess.did.clone();
    let want_cam = [
        (
            "open",
            format!("{d}/video0"),
            did[0]["result"].as_i64().unwrap(),
        ),
        (
            "open",
            format!("{d}/video1"),
            did[1]["result"].as_i64().unwrap(),
        ),
        (
            "stream_on",
            format!("{d}/video1"),
            did[1]["ioctl_result"].as_i64().unwrap(),
        ),
        (
            "open",
            sys_video.display().to_string(),
            did[4]["result"].as_i64().unwrap(),
        ),
    ];
    assert_eq!(camera.len(), want_cam.len(), "{}", sess.dump());
    for ((op, path, result), ev) in want_cam.iter().zip(&camera) {
        assert_eq!(ev["op"], *op, "{ev}");
        assert_eq!(ev["path"], path.as_str(), "{ev}");
        assert_eq!(ev["result"], *result, "{ev}");
    }
    assert!(
        camera[0]["result"].as_i64().unwrap() < 0,
        "driverless video node fails to open"
    );
    assert!(camera[1]["result"].as_i64().unwrap() >= 0);
    assert_eq!(
        camera[2]["result"], -25,
        "ENOTTY from STREAMON on a non-V4L2 driver"
    );
    let mics = sess.of_kind("microphone");
    assert_eq!(
        mics.len(),
        1,
        "capture node only, not playback:\n{}",
        sess.dump()
    );
    assert_eq!(mics[0]["path"], format!("{d}/snd/pcmC0D0c"));
    assert_eq!(mics[0]["op"], "open");
    // The playback node is an ordinary file open.
    assert!(
        sess.of_kind("file_open")
            .iter()
            .any(|e| e["path"] == format!("{d}/snd/pcmC0D0p"))
    );
}

#[test]
fn app_state_bands_follow_oom_score_adj() {
    let tmp = tempdir();
    let sess = record_steps(tmp.path(), &[], &[s("oom=0"), s("oom=900"), s("oom=200")]);
    let states = sess.of_kind("app_state");
    let pid = sess.did[0]["pid"].clone();
    let kernel: Vec<(i64, &str)> = states
        .iter()
        .filter(|e| e["source"] == "kernel" && e["pid"] == pid)
        .map(|e| {
            (
                e["oom_score_adj"].as_i64().unwrap(),
                e["band"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kernel,
        vec![(0, "foreground"), (900, "cached"), (200, "perceptible")],
        "{}",
        sess.dump()
    );
    // The spawned command's score was read while it was held before exec: exact, first.
    let first = states
        .iter()
        .find(|e| e["source"] == "start")
        .expect("band known from the start");
    assert_eq!(first["pid"], pid);
    // Inherited through emuwatch from this test process.
    let ours: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(first["oom_score_adj"], ours);
    assert_eq!(states[0]["source"], "start", "the start value comes first");
}

#[test]
fn daemon_keeps_reading_after_parent_exit_and_stays_attributed() {
    let tmp = tempdir();
    let f = tmp.path().join("id.txt");
    write_file(&f, 4321);
    let fp = f.display().to_string();
    let sess = record_steps(
        tmp.path(),
        &[],
        &[
            s("daemon"),
            format!("read={fp},1000"),
            format!("read={fp},1000"),
        ],
    );
    let daemon = sess
        .did("daemon")
        .into_iter()
        .find(|d| d["role"] == "daemon")
        .unwrap()
        .clone();
    let parent_pid = daemon["parent_pid"].clone();
    let reads: Vec<&Value> = sess
        .of_kind("file_read")
        .into_iter()
        .filter(|e| e["path"] == fp.as_str())
        .collect();
    assert_eq!(reads.len(), 2, "{}", sess.dump());
    let parent_app = sess
        .events
        .iter()
        .find(|e| e["pid"] == parent_pid)
        .expect("parent events")["app"]
        .clone();
    for r in reads {
        assert_eq!(r["pid"], daemon["pid"]);
        assert_eq!(r["bytes"], 4321);
        assert_eq!(r["app"], parent_app);
    }
    // The parent's exit happened before the daemon's reads.
    let exit_ts = sess
        .of_kind("process")
        .into_iter()
        .find(|e| e["op"] == "exit" && e["pid"] == parent_pid)
        .expect("parent exit")["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let read_ts = sess.by_pid("file_read", daemon["pid"].as_u64().unwrap())[0]["ts"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        read_ts > exit_ts,
        "daemon read {read_ts} after parent exit {exit_ts}"
    );
}

/// Run two simapps concurrently while recording with `args`: one as `uid`, one as root.
fn uid_scenario(tmp: &Path, args: &[&str], uid: u32) -> (Session, u64, u64, String) {
    let dir = tmp.join("session");
    let rec = start_recording(&dir, args);
    let f = tmp.join("data.txt");
    write_file(&f, 1234);
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let steps = vec![
        format!("connect=tcp4,127.0.0.1,{port}"),
        format!("read={},100", f.display()),
    ];
    let target = Command::new("setpriv")
        .args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &uid.to_string(),
            "--clear-groups",
            SIMAPP,
            "steps",
        ])
        .args(&steps)
        .output()
        .expect("setpriv (util-linux) runs the child as another uid");
    assert!(
        target.status.success(),
        "{}",
        String::from_utf8_lossy(&target.stderr)
    );
    let other = simapp(&steps).output().unwrap();
    let (tp, op) = (first_pid(&target), first_pid(&other));
    std::thread::sleep(Duration::from_millis(300));
    (stop_recording(&dir, rec), tp, op, f.display().to_string())
}

#[test]
fn uid_targeting_follows_only_that_user() {
    let tmp = tempdir();
    let (sess, target, other, data) = uid_scenario(tmp.path(), &["--uid", "4242"], 4242);
    let connects = sess.by_pid("connect", target);
    assert_eq!(connects.len(), 1, "{}", sess.dump());
    assert_eq!(connects[0]["uid"], 4242);
    let reads: Vec<&Value> = sess
        .by_pid("file_read", target)
        .into_iter()
        .filter(|e| e["path"] == data.as_str())
        .collect();
    assert_eq!(reads.len(), 1, "{}", sess.dump());
    assert_eq!(reads[0]["bytes"], 1234);
    assert!(
        sess.events.iter().all(|e| e["pid"] != other),
        "root's process leaked in"
    );
    assert!(
        sess.events
            .iter()
            .filter(|e| e["kind"] != "lost")
            .all(|e| e["uid"] == 4242)
    );
    assert_eq!(sess.info["stop_reason"], "signal");
}

#[test]
fn package_targeting_uses_packages_list() {
    let tmp = tempdir();
    let pl = tmp.path().join("packages.list");
    std::fs::write(
        &pl,
        "com.example.spyapp 10243 0 /data/user/0/com.example.spyapp default:targetSdkVersion=33 3003\n\
         com.example.other 10077 0 /data/user/0/com.example.other default 3003\n\
         com.example.solo 10200 0 /data/user/0/com.example.solo default 3003\n",
    )
    .unwrap();
    let plist = pl.to_string_lossy().into_owned();
    let (sess, target, other, _) = uid_scenario(
        tmp.path(),
        &["--package", "com.example.spyapp", "--packages-list", &plist],
        10243,
    );
    let connects = sess.by_pid("connect", target);
    assert_eq!(connects.len(), 1, "{}", sess.dump());
    // Every event of the app's uid is attributed to the package, whatever the process name.
    for e in sess.events.iter().filter(|e| e["kind"] != "lost") {
        assert_eq!(e["app"], "com.example.spyapp", "{e}");
        assert_eq!(e["uid"], 10243, "{e}");
    }
    assert!(sess.events.iter().all(|e| e["pid"] != other));

    // An unknown package is a clear error before anything starts.
    let out = Command::new(EMUWATCH)
        .args([
            "record",
            "--package",
            "com.nope",
            "--packages-list",
            &plist,
            "--duration",
            "1s",
            "--out",
        ])
        .arg(tmp.path().join("s-nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("com.nope") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn cgroup_targeting() {
    require_root();
    let tmp = tempdir();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .map(|l| l.split_whitespace().nth(4).unwrap().to_string())
        .expect("cgroup v2 must be mounted for --cgroup");
    let name = format!("emuwatch-test-{}", std::process::id());
    let cg = Path::new(&root).join(&name);
    std::fs::create_dir_all(&cg).unwrap();
    let dir = tmp.path().join("session");
    let rec = start_recording(&dir, &["--cgroup", &name]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let go = tmp.path().join("go");
    let steps = vec![
        format!("waitfile={}", go.display()),
        format!("connect=tcp4,127.0.0.1,{port}"),
    ];
    let mut inside = simapp(&steps).stdout(Stdio::piped()).spawn().unwrap();
    let mut outside = simapp(&steps).stdout(Stdio::piped()).spawn().unwrap();
    std::fs::write(cg.join("cgroup.procs"), inside.id().to_string()).unwrap();
    std::fs::write(&go, "").unwrap();
    let (ip, op) = (inside.id() as u64, outside.id() as u64);
    inside.wait().unwrap();
    outside.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sess = stop_recording(&dir, rec);
    let _ = std::fs::remove_dir(&cg);
    assert_eq!(sess.by_pid("connect", ip).len(), 1, "{}", sess.dump());
    assert!(
        sess.events.iter().all(|e| e["pid"] != op),
        "process outside the cgroup leaked"
    );
}

#[test]
fn lost_events_are_counted_and_fail_the_recording() {
    let tmp = tempdir();
    let f = tmp.path().join("x");
    write_file(&f, 10);
    // A 4 KiB ring buffer, no wakeups and a slow poll: a burst of opens must overflow it.
    let steps: Vec<String> = (0..3000)
        .map(|_| format!("read={},64", f.display()))
        .collect();
    require_root();
    let dir = tmp.path().join("session");
    let out = Command::new(EMUWATCH)
        .args([
            "record",
            "--quiet",
            "--ring-buffer",
            "4K",
            "--wakeup-bytes",
            "1000000",
            "--poll",
            "1s",
            "--out",
        ])
        .arg(&dir)
        .arg("--")
        .arg(SIMAPP)
        .arg("steps")
        .args(&steps)
        .output()
        .unwrap();
    let sess = load(&dir, out);
    assert_eq!(
        sess.output.status.code(),
        Some(3),
        "lost events give exit status 3"
    );
    assert_eq!(sess.info["complete"], false);
    let total = sess.info["lost"]["total"].as_u64().unwrap();
    assert!(total > 0);
    let lines: u64 = sess
        .of_kind("lost")
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(lines, total, "lost lines add up to session.json's total");
    assert!(
        sess.info["lost"]["by_reason"]["ring_buffer_full"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(String::from_utf8_lossy(&sess.output.stderr).contains("lost"));
}

/// `--kernel-log`: the programs say why they could not capture something exactly, into
/// kernel.log in the session; without it nothing is written (the verifier removed the calls).
#[test]
fn kernel_log_says_why_and_is_silent_when_off() {
    let tmp = tempdir();
    // An openat() whose path pointer points into the unmapped first page: nobody can copy it.
    let on = record_steps(tmp.path(), &["--kernel-log"], &[s("badptr")]);
    let pid = on.did("badptr")[0]["pid"].as_u64().unwrap();
    assert_eq!(on.did("badptr")[0]["result"], -14);
    let opens: Vec<_> = on
        .by_pid("file_open", pid)
        .into_iter()
        .filter(|e| e["result"] == -14)
        .collect();
    assert_eq!(opens.len(), 1, "{}", on.dump());
    assert_eq!(opens[0]["error"], "EFAULT");
    assert_eq!(opens[0]["path"], Value::Null);
    let log = std::fs::read_to_string(tmp.path().join("session/kernel.log")).expect("kernel.log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one diagnostic for the one path that could not be copied:\n{log}"
    );
    assert!(
        lines[0].ends_with(&format!(
            "DEBUG path not copied: pid {pid} syscall 1 user pointer 10"
        )),
        "{log}"
    );

    let off = tempdir();
    let quiet = record_steps(off.path(), &[], &[s("badptr")]);
    let pid = first_pid(&quiet.output);
    assert_eq!(
        quiet
            .by_pid("file_open", pid)
            .iter()
            .filter(|e| e["error"] == "EFAULT")
            .count(),
        1
    );
    assert!(
        !off.path().join("session/kernel.log").exists(),
        "no kernel.log without --kernel-log"
    );
    assert!(!String::from_utf8_lossy(&quiet.output.stderr).contains("kernel:"));

    // A lost event is logged with its reason; the counter stays the record (the log's own ring
    // buffer may drop lines in a burst, so the lines are at most the count).
    let f = tmp.path().join("x");
    write_file(&f, 10);
    let dir = tmp.path().join("lossy");
    let out = Command::new(EMUWATCH)
        .args([
            "record",
            "--kernel-log",
            "--ring-buffer",
            "4K",
            "--wakeup-bytes",
            "1000000",
            "--poll",
            "1s",
            "--out",
        ])
        .arg(&dir)
        .arg("--")
        .arg(SIMAPP)
        .arg("steps")
        .args((0..400).map(|_| format!("read={},64", f.display())))
        .output()
        .unwrap();
    let sess = load(&dir, out);
    assert_eq!(sess.output.status.code(), Some(3), "{}", sess.dump());
    let lost = sess.info["lost"]["by_reason"]["ring_buffer_full"]
        .as_u64()
        .unwrap();
    let log = std::fs::read_to_string(dir.join("kernel.log")).unwrap();
    let logged = log
        .lines()
        .filter(|l| l.ends_with("WARN event lost: ring_buffer_full"))
        .count() as u64;
    assert!(logged > 0 && logged <= lost, "{logged} logged, {lost} lost");
    assert_eq!(logged as usize, log.lines().count(), "{log}");
    let stderr = String::from_utf8_lossy(&sess.output.stderr);
    assert!(
        stderr.contains("emuwatch: kernel: WARN event lost: ring_buffer_full"),
        "{stderr}"
    );
    assert!(
        stderr.contains("events were lost (ring_buffer_full: "),
        "{stderr}"
    );
}

#[test]
fn bad_invocations_fail_with_one_line() {
    require_root();
    let tmp = tempdir();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                s("record"),
                s("--out"),
                tmp.path().join("a").display().to_string(),
            ],
            "no target",
        ),
        (
            vec![
                s("record"),
                s("--resolver"),
                s("none"),
                s("--resolver"),
                s("netd"),
                s("--"),
                s("true"),
            ],
            "--resolver none cannot be combined",
        ),
        (
            vec![s("record"), s("--resolver"), s(""), s("--"), s("true")],
            "cannot be empty",
        ),
        (
            vec![
                s("record"),
                s("--out"),
                tmp.path().join("b").display().to_string(),
                s("--"),
                s("/no/such/program"),
            ],
            "not found",
        ),
        (
            vec![
                s("record"),
                s("--pid"),
                s("999999999"),
                s("--out"),
                tmp.path().join("c").display().to_string(),
            ],
            "no such process",
        ),
        (
            vec![
                s("record"),
                s("--all"),
                s("--device"),
                s("speaker=/dev/x"),
                s("--out"),
                tmp.path().join("d").display().to_string(),
            ],
            "device pattern",
        ),
        (
            vec![
                s("record"),
                s("--all"),
                s("--packages-list"),
                s("/dev/zero"),
                s("--out"),
                tmp.path().join("e").display().to_string(),
            ],
            "/dev/zero: not a regular file",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(EMUWATCH).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A desktop command: phases come from system-written scores and its first process's exit.
/// The command demotes its child and itself (as Chromium does for its renderers): recorded,
/// written by the app, and the phase stays; a write from outside (lmkd) moves it to the
/// background; the first process exiting closes it while its daemon goes on.
#[test]
fn phases_follow_system_app_state_and_main_exit() {
    let tmp = tempdir();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = format!("connect=tcp4,127.0.0.1,{port}");
    let pidfile = tmp.path().join("app.pid");
    let go = tmp.path().join("go");
    let lmkd = tmp.path().join("lmkd");
    simapp_copy(&lmkd);
    // lmkd: once the app says where it is, it demotes it to the cached band.
    let system = {
        let (lmkd, pidfile, go) = (lmkd.clone(), pidfile.clone(), go.clone());
        std::thread::spawn(move || {
            wait_file(&pidfile);
            let st = Command::new(&lmkd)
                .args([
                    "system",
                    &format!("oomof=@{},900", pidfile.display()),
                    &format!("touch={}", go.display()),
                ])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        })
    };
    let sess = record_steps(
        tmp.path(),
        &[],
        &[
            c.clone(),
            s("fork=200"),
            s("oomchild=300"),
            s("oom=900"),
            c.clone(),
            format!("pidfile={}", pidfile.display()),
            format!("waitfile={}", go.display()),
            c.clone(),
            s("daemon"),
            c.clone(),
        ],
    );
    system.join().unwrap();
    let connects = sess.of_kind("connect");
    let phases: Vec<&str> = connects
        .iter()
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["foreground", "foreground", "background", "closed"],
        "{}",
        sess.dump()
    );
    assert_eq!(
        phase_changes(&sess, sess.events[0]["app"].as_str().unwrap()),
        [
            (s("background"), s("app_state")),
            (s("closed"), s("main_exited"))
        ],
        "{}",
        sess.dump()
    );
    // Every score change is recorded, with who wrote it.
    let writes: Vec<(i64, &str, &str)> = sess
        .of_kind("app_state")
        .iter()
        .filter(|e| e["source"] == "kernel")
        .map(|e| {
            (
                e["oom_score_adj"].as_i64().unwrap(),
                e["written_by"].as_str().unwrap(),
                e["writer_comm"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        writes,
        [
            (300, "app", "emuwatch-simapp"),
            (900, "app", "emuwatch-simapp"),
            (900, "system", "lmkd")
        ],
        "{}",
        sess.dump()
    );
    for e in sess.events.iter().filter(|e| e["kind"] != "lost") {
        assert!(e["phase"].is_string(), "every event carries a phase: {e}");
    }
}

#[test]
fn markers_change_phase_while_recording() {
    let tmp = tempdir();
    let dir = tmp.path().join("session");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let go = tmp.path().join("go");
    let steps = [
        format!("connect=tcp4,127.0.0.1,{port}"),
        format!("waitfile={}", go.display()),
        format!("connect=tcp4,127.0.0.1,{port}"),
    ];
    require_root();
    let rec = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(SIMAPP)
        .arg("steps")
        .args(&steps)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !dir.join("control.sock").exists() {
        assert!(t.elapsed() < PATIENCE, "no control socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new(EMUWATCH)
        .args([
            "mark",
            "user pressed HOME",
            "--phase",
            "background",
            "--session",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It says which recording it marked.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("marked {}: \"user pressed HOME\"\n", dir.display())
    );
    std::fs::write(&go, "").unwrap();
    let output = rec.wait_with_output().unwrap();
    let sess = load(&dir, output);
    let marker = sess.of_kind("marker");
    assert_eq!(marker.len(), 1);
    assert_eq!(marker[0]["label"], "user pressed HOME");
    let connects = sess.of_kind("connect");
    assert_eq!(connects[0]["phase"], "foreground");
    assert_eq!(connects[1]["phase"], "background", "{}", sess.dump());
    assert!(
        !dir.join("control.sock").exists(),
        "socket removed at the end"
    );
    // Marking a session that is not recording is a clear error.
    let out = Command::new(EMUWATCH)
        .args(["mark", "x", "--session"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("still recording"));
}

#[test]
fn comm_and_all_targeting() {
    let tmp = tempdir();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let steps = vec![format!("connect=tcp4,127.0.0.1,{port}")];
    // A copy of simapp under another name: --comm selects it and not the original.
    let renamed = tmp.path().join("weatherwidget");
    simapp_copy(&renamed);
    for (args, name) in [
        (vec!["--comm", "weatherwidget"], "comm"),
        (vec!["--all"], "all"),
    ] {
        let dir = tmp.path().join(format!("session-{name}"));
        let rec = start_recording(&dir, &args);
        let a = Command::new(&renamed)
            .arg("steps")
            .args(&steps)
            .output()
            .unwrap();
        let b = simapp(&steps).output().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let sess = stop_recording(&dir, rec);
        let (pa, pb) = (first_pid(&a), first_pid(&b));
        assert_eq!(
            sess.by_pid("connect", pa).len(),
            1,
            "{name}: {}",
            sess.dump()
        );
        assert_eq!(sess.by_pid("connect", pa)[0]["comm"], "weatherwidget");
        let seen_b = sess.by_pid("connect", pb).len();
        match name {
            "comm" => assert_eq!(seen_b, 0, "--comm leaked another process"),
            _ => assert_eq!(seen_b, 1, "--all sees every process"),
        }
        // emuwatch never records itself, even with --all.
        let me = sess.info["target"]["pids"].clone();
        assert!(me.is_null() || me.as_array().unwrap().is_empty());
    }
}

#[test]
fn android_process_names_give_the_app() {
    // No packages.list: the package comes from argv[0] ("package:service" form).
    let tmp = tempdir();
    let dir = tmp.path().join("session");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    require_root();
    // (It lives a moment, as app processes do: its name is read from /proc.)
    let script = format!(
        "exec -a com.example.app:push {SIMAPP} steps sleep=300 connect=tcp4,127.0.0.1,{port}"
    );
    let out = Command::new(EMUWATCH)
        .args([
            "record",
            "--quiet",
            "--packages-list",
            "/nonexistent",
            "--out",
        ])
        .arg(&dir)
        .args(["--", "bash", "-c", &script])
        .output()
        .unwrap();
    let sess = load(&dir, out);
    assert!(sess.output.status.success(), "{}", sess.dump());
    let c = sess.of_kind("connect");
    assert_eq!(c.len(), 1, "{}", sess.dump());
    assert_eq!(c[0]["app"], "com.example.app");
}

#[test]
fn renames_are_recorded() {
    let tmp = tempdir();
    let sess = record_steps(
        tmp.path(),
        &[],
        &[
            s("rename=com.example.x"),
            s("fail=/nonexistent-after-rename"),
        ],
    );
    let r: Vec<&Value> = sess
        .of_kind("process")
        .into_iter()
        .filter(|e| e["op"] == "rename")
        .collect();
    assert_eq!(r.len(), 1, "{}", sess.dump());
    assert_eq!(r[0]["name"], "com.example.x");
    assert_eq!(
        r[0]["comm"], "emuwatch-simapp",
        "comm is the name before the rename"
    );
    let after = sess
        .of_kind("file_open")
        .into_iter()
        .find(|e| e["path"] == "/nonexistent-after-rename")
        .unwrap()
        .clone();
    assert_eq!(after["comm"], "com.example.x");
}

/// The per-syscall and the raw-syscalls paths (and the BTF and BTF-less fork/exit probes)
/// record the same workload as the same events, field for field, once what differs between
/// any two runs (times, pids, ASLR-dependent /proc contents) is set aside.
#[test]
fn every_probe_path_records_the_same_events() {
    let tmp = tempdir();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("[::1]:0").unwrap();
    let (pt, pu) = (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_file(&data.join("a.bin"), 10_000);
    write_file(&data.join("b.bin"), 3_000);
    let a = data.join("a.bin").display().to_string();
    let b = data.join("b.bin").display().to_string();
    let steps = vec![
        format!("read={a},4096"),
        format!("pread={b},1000"),
        format!("readv={a},3000"),
        format!("preadv={b},512"),
        format!("loop={b},50,100"),
        format!("cd={}", data.display()),
        s("openrel=a.bin"),
        s("fail=/nonexistent/emuwatch"),
        format!("connect=tcp4,127.0.0.1,{pt}"),
        format!("connect=udp6,::1,{pu}"),
        s("oom=700"),
        s("rename=renamed-app"),
        s("daemon"),
        format!("read={b},4096"),
        format!("connect=tcp4,127.0.0.1,{pt}"),
    ];
    let mut runs = Vec::new();
    for (name, probes, btf) in [
        ("per-syscall", "per-syscall", "auto"),
        ("raw", "raw", "auto"),
        ("raw-nobtf", "raw", "off"),
    ] {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let sess = record_steps(&dir, &["--syscall-probes", probes, "--btf", btf], &steps);
        assert_eq!(sess.info["probe_plan"]["syscall_probes"], probes);
        runs.push((name, normalized(&sess)));
    }
    let (first, want) = &runs[0];
    assert!(want.len() > 20, "too few events to compare: {want:#?}");
    for (name, got) in &runs[1..] {
        assert_eq!(
            got,
            want,
            "{name} recorded other events than {first}:\nonly in {name}: {:#?}\nonly in {first}: {:#?}",
            got.iter().filter(|e| !want.contains(e)).collect::<Vec<_>>(),
            want.iter().filter(|e| !got.contains(e)).collect::<Vec<_>>()
        );
    }
}

/// Events without what varies between two runs of the same workload, sorted.
fn normalized(s: &Session) -> Vec<String> {
    let mut out: Vec<String> = s
        .events
        .iter()
        .map(|e| {
            let mut e = e.as_object().unwrap().clone();
            for k in [
                "ts",
                "pid",
                "tid",
                "ppid",
                "child_pid",
                "detail",
                "writer_pid",
            ] {
                e.remove(k);
            }
            // Whether the path string's page was resident at syscall entry is chance.
            if e.get("path_origin").is_some_and(|o| o == "syscall_exit") {
                e.insert("path_origin".into(), "syscall".into());
            }
            // /proc/self/maps and the like differ with address-space randomisation.
            if e.get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| p.starts_with("/proc/"))
            {
                e.remove("bytes");
                e.remove("reads");
            }
            Value::Object(e).to_string()
        })
        .collect();
    out.sort();
    out
}

/// Without the cgroup connect hooks (Android's netd owns the cgroup root; `--cgroup-hooks
/// off`), the protocol of each connect comes from the type of the socket the target created,
/// on both syscall paths.
#[test]
fn connect_protocol_without_cgroup_hooks() {
    let tmp = tempdir();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.5:0").unwrap();
    let (pt, pu) = (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );
    let steps = vec![
        format!("connect=tcp4,127.0.0.1,{pt}"),
        format!("connect=udp4,127.0.0.5,{pu}"),
        format!("connect=tcp6,::1,{pt}"),
    ];
    for probes in ["per-syscall", "raw"] {
        let dir = tmp.path().join(probes);
        std::fs::create_dir(&dir).unwrap();
        let sess = record_steps(
            &dir,
            &["--syscall-probes", probes, "--cgroup-hooks", "off"],
            &steps,
        );
        assert_eq!(sess.info["probe_plan"]["cgroup_hooks"], false);
        let programs: Vec<&Value> = sess.info["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["program"])
            .collect();
        assert!(
            !programs.iter().any(|p| *p == "cgroup_connect4"),
            "{programs:?}"
        );
        let got = sess.of_kind("connect");
        let protos: Vec<&Value> = got.iter().map(|e| &e["proto"]).collect();
        assert_eq!(protos, ["tcp", "udp", "tcp"], "{probes}: {}", sess.dump());
        assert_eq!(got[1]["daddr"], "127.0.0.5");
        assert_eq!(got[1]["dport"], pu);
        // ::1 has nothing listening on that port: refused, still recorded with its protocol.
        assert_eq!(got[2]["family"], "inet6");
    }
}

// ---------------------------------------------------------------------------------------------
// Android's app lifecycle, simulated: a root "zygote" (emuwatch-simapp zygote) forks app
// processes that drop to their app's uid and rename themselves without exec; "lmkd" (a copy of
// the simapp under that name) writes their oom_score_adj from outside the app; the test plays
// ActivityManager (kills by SIGKILL and by killing a process's cgroup) and the user.

/// Wait (up to 10 s) until `path` exists.
fn wait_file(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < PATIENCE, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wait (up to 10 s) until process `pid` is gone (zygote's children are reaped by the kernel).
fn wait_gone(pid: u32) {
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(t.elapsed() < PATIENCE, "process {pid} did not end");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The cgroup v2 mount point, from /proc/self/mountinfo.
fn cgroup2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .map(|l| PathBuf::from(l.split_whitespace().nth(4).unwrap()))
        .expect("cgroup v2 must be mounted")
}

/// Remove a cgroup tree (leaves first) once its processes have gone.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

struct Android {
    dir: PathBuf,
    zygote: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<Value>,
    /// Every JSON line the zygote and its children printed so far.
    said: Vec<Value>,
    /// Copies of the simapp named like the system's processes.
    lmkd: PathBuf,
    system_server: PathBuf,
    cgroup: PathBuf,
    spawned: usize,
    /// The session being recorded: `release` waits until the process's rename is in it
    /// (emuwatch reads the full name from /proc when it handles the rename).
    session: PathBuf,
}

/// An app process's steps in gated rounds: round `i` waits for `go(pid, i)`, runs its steps
/// and says it is done; after the last round the process lives on (until killed) when
/// `linger`, else exits.
fn rounds(rounds: &[Vec<String>], linger: bool) -> Vec<String> {
    let mut v = Vec::new();
    for (i, r) in rounds.iter().enumerate() {
        v.push(format!("waitfile=@GATE@.go{i}"));
        v.extend(r.iter().cloned());
        v.push(format!("touch=@GATE@.done{i}"));
    }
    if linger {
        v.push(s("sleep=30000"));
    }
    v
}

impl Android {
    fn start(tmp: &Path, session: &Path) -> Android {
        let dir = tmp.join("android");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let copy = |name: &str| {
            let p = tmp.join(name);
            simapp_copy(&p);
            p
        };
        let zygote_bin = copy("zygote64");
        // One cgroup tree per simulated device (tests run in parallel).
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cgroup =
            cgroup2_root().join(format!("emuwatch-test-android-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&cgroup).unwrap();
        let mut zygote = Command::new(&zygote_bin)
            .arg("zygote")
            .arg("--cgroup")
            .arg(&cgroup)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = zygote.stdin.take().unwrap();
        let stdout = zygote.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Android {
            dir,
            zygote,
            stdin,
            lines: rx,
            said: Vec::new(),
            lmkd: copy("lmkd"),
            system_server: copy("system_server"),
            cgroup,
            spawned: 0,
            session: session.to_path_buf(),
        }
    }

    fn send(&mut self, line: &str) {
        use std::io::Write;
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next line the zygote or a child prints that satisfies `want`.
    fn wait_line(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.said.iter().find(|v| want(v)) {
            return v.clone();
        }
        loop {
            let v = self
                .lines
                .recv_timeout(PATIENCE)
                .expect("the zygote stopped talking");
            self.said.push(v.clone());
            if want(&v) {
                return v;
            }
        }
    }

    /// Fork an app process `name` as `uid` running `steps` (see `rounds`); it stops before
    /// naming itself until `release`. Returns its pid.
    fn spawn(&mut self, name: &str, uid: u32, steps: &[String]) -> u32 {
        self.spawned += 1;
        let gate = self.dir.join(format!("p{}", self.spawned));
        let gate = gate.display().to_string();
        let steps: Vec<String> = steps.iter().map(|x| x.replace("@GATE@", &gate)).collect();
        self.send(&format!(
            "spawn {name} {uid} {gate}.start {}",
            steps.join(" ")
        ));
        let known: Vec<u64> = self
            .said
            .iter()
            .filter(|v| v["spawned"].is_string())
            .filter_map(|v| v["pid"].as_u64())
            .collect();
        let line = self.wait_line(|v| {
            v["spawned"] == name && v["pid"].as_u64().is_some_and(|p| !known.contains(&p))
        });
        let pid = line["pid"].as_u64().unwrap() as u32;
        std::fs::write(self.dir.join(format!("pid{pid}")), &gate).unwrap();
        pid
    }

    fn gate(&self, pid: u32) -> String {
        std::fs::read_to_string(self.dir.join(format!("pid{pid}"))).unwrap()
    }

    /// Let an app process that is not recorded name itself and go on.
    fn release_unwatched(&self, pid: u32) {
        std::fs::write(format!("{}.start", self.gate(pid)), "").unwrap();
    }

    /// Let an app process name itself, and wait until emuwatch has recorded the rename.
    fn release(&self, pid: u32) {
        self.release_unwatched(pid);
        let t = Instant::now();
        let events = self.session.join("events.jsonl");
        loop {
            let text = std::fs::read_to_string(&events).unwrap_or_default();
            if text.lines().any(|l| {
                serde_json::from_str::<Value>(l)
                    .is_ok_and(|e| e["pid"] == pid && e["op"] == "rename")
            }) {
                return;
            }
            assert!(
                t.elapsed() < PATIENCE,
                "the rename of {pid} was not recorded"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Run round `i` of `pid` and wait until it is done.
    fn go(&self, pid: u32, i: usize) {
        let g = self.gate(pid);
        std::fs::write(format!("{g}.go{i}"), "").unwrap();
        wait_file(Path::new(&format!("{g}.done{i}")));
    }

    /// lmkd sets `pid`'s oom_score_adj (a write from outside the app).
    fn lmkd(&self, pid: u32, adj: i32) {
        let st = Command::new(&self.lmkd)
            .args(["system", &format!("oomof={pid},{adj}")])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// ActivityManager kills `pid` with SIGKILL.
    fn kill(&self, pid: u32) {
        let st = Command::new(&self.system_server)
            .args(["system", &format!("kill={pid},9")])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        wait_gone(pid);
    }

    /// ActivityManager kills `pid` with SIGKILL and, in the same breath, the cgroup of
    /// `service` (`uid_<uid>/pid_<service>`): one system process does both, so the service
    /// dies a moment after the app however slow the machine is to start processes.
    fn kill_with_cgroup(&self, pid: u32, uid: u32, service: u32) {
        let cg = self.cgroup.join(format!("uid_{uid}/pid_{service}"));
        assert!(cg.is_dir(), "{}", cg.display());
        let st = Command::new(&self.system_server)
            .args([
                "system",
                &format!("kill={pid},9"),
                &format!("cgkill={}", cg.display()),
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        wait_gone(pid);
        wait_gone(service);
    }

    /// The zygote itself runs `steps` (it is never a target).
    fn zygote_does(&mut self, steps: &[String]) -> u32 {
        self.send(&format!(
            "do {} touch={}/zygote-did",
            steps.join(" "),
            self.dir.display()
        ));
        wait_file(&self.dir.join("zygote-did"));
        self.zygote.id()
    }

    fn stop(mut self) {
        self.send("exit");
        let _ = self.zygote.wait();
        // Children lingering are killed with their cgroup tree.
        for e in std::fs::read_dir(&self.cgroup)
            .into_iter()
            .flatten()
            .flatten()
        {
            for p in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                let procs =
                    std::fs::read_to_string(p.path().join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                    unsafe { kill(pid as i32, 9) };
                    wait_gone(pid);
                }
            }
        }
        remove_cgroup_tree(&self.cgroup);
    }
}

/// A readable data file and a camera node for app processes running under app uids.
fn app_world(tmp: &Path) -> (String, String, String) {
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.join("data.bin");
    write_file(&data, 4000);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cam = tmp.join("video0");
    mknod(&cam, 1, 3);
    let pl = tmp.join("packages.list");
    std::fs::write(
        &pl,
        "com.example.app 10123 0 /data/user/0/com.example.app default:targetSdkVersion=34 3003\n\
         com.example.other 10077 0 /data/user/0/com.example.other default 3003\n\
         com.example.solo 10200 0 /data/user/0/com.example.solo default 3003\n",
    )
    .unwrap();
    (
        data.display().to_string(),
        cam.display().to_string(),
        pl.display().to_string(),
    )
}

/// Connects, camera opens and bytes read from `data` of `app`'s events, per phase.
fn per_phase(sess: &Session, app: &str, data: &str) -> Vec<(String, u64, u64, u64)> {
    ["foreground", "background", "closed"]
        .iter()
        .map(|ph| {
            let of = |e: &&Value| e["app"] == app && e["phase"] == *ph;
            let connects = sess.of_kind("connect").into_iter().filter(of).count() as u64;
            let cams = sess
                .of_kind("camera")
                .into_iter()
                .filter(of)
                .filter(|e| e["op"] == "open")
                .count() as u64;
            let bytes = sess
                .of_kind("file_read")
                .into_iter()
                .filter(of)
                .filter(|e| e["path"] == data)
                .map(|e| e["bytes"].as_u64().unwrap())
                .sum();
            (ph.to_string(), connects, cams, bytes)
        })
        .collect()
}

/// The app's phase changes: (to, reason).
fn phase_changes(sess: &Session, app: &str) -> Vec<(String, String)> {
    sess.of_kind("phase")
        .iter()
        .filter(|e| e["app"] == app)
        .map(|e| {
            (
                e["to"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The whole lifecycle of a multi-process app, per app and per phase: launched by zygote
/// (`pkg` on screen, `pkg:remote` in a service band: still foreground), HOME (background),
/// swiped away (the screen's process killed by SIGKILL, `pkg:remote` by killing its cgroup;
/// `pkg:push`, a foreground service, survives: closed), a job restarted after close (still
/// closed), a relaunch as a new pid (foreground); beside it an unrelated app and zygote's own
/// activity, which are never attributed.
#[test]
fn android_lifecycle_phases_per_app() {
    let t0 = Instant::now();
    let tmp = tempdir();
    let (data, cam, pl) = app_world(tmp.path());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = format!("connect=tcp4,127.0.0.1,{}", l.local_addr().unwrap().port());
    let streamon = format!("streamon={cam}");
    let read = |n: usize| format!("partial={data},{n}");
    let dir = tmp.path().join("session");
    let camera = format!("camera={}/video*", tmp.path().display());
    let rec = start_recording(
        &dir,
        &[
            "--package",
            "com.example.app",
            "--packages-list",
            &pl,
            "--device",
            &camera,
        ],
    );
    let mut android = Android::start(tmp.path(), &dir);
    const APP: &str = "com.example.app";

    // Launch: the activity process on screen, a service process beside it.
    let main = android.spawn(
        APP,
        10123,
        &rounds(
            &[
                vec![c.clone(), streamon.clone(), read(1000)],
                vec![read(500)],
            ],
            true,
        ),
    );
    android.lmkd(main, 0);
    android.release(main);
    let remote = android.spawn(
        "com.example.app:remote",
        10123,
        &rounds(&[vec![c.clone()], vec![c.clone()]], true),
    );
    android.lmkd(remote, 500);
    android.release(remote);
    // An unrelated app on screen, and zygote's own activity: never attributed.
    let other = android.spawn(
        "com.example.other",
        10077,
        &rounds(&[vec![c.clone(), streamon.clone(), read(64)]], false),
    );
    android.lmkd(other, 0);
    android.release_unwatched(other);
    android.go(other, 0);
    let zygote = android.zygote_does(&[c.clone(), read(32)]);
    android.go(main, 0);
    android.go(remote, 0);

    // HOME: the activity is cached; the service keeps working in the background.
    android.lmkd(main, 900);
    android.go(main, 1);
    android.go(remote, 1);
    // A foreground service (perceptible band) is started.
    let push = android.spawn(
        "com.example.app:push",
        10123,
        &rounds(&[vec![c.clone(), streamon.clone()]], false),
    );
    android.lmkd(push, 200);
    android.release(push);

    // Swiped away: ActivityManager kills the activity and the service's cgroup.
    android.kill_with_cgroup(main, 10123, remote);
    // The foreground service survived the close and goes on, then ends.
    android.go(push, 0);
    wait_gone(push);
    // A job restarts the app after close: a new process, in a service band.
    let job = android.spawn(
        "com.example.app:job",
        10123,
        &rounds(&[vec![c.clone(), read(300)]], false),
    );
    android.lmkd(job, 500);
    android.release(job);
    android.go(job, 0);
    wait_gone(job);
    // The user opens the app again: a new activity process on screen.
    let again = android.spawn(APP, 10123, &rounds(&[vec![c.clone()]], true));
    android.lmkd(again, 0);
    android.release(again);
    android.go(again, 0);
    android.kill(again);
    android.stop();
    let sess = stop_recording(&dir, rec);
    let took = t0.elapsed();

    assert_eq!(
        per_phase(&sess, APP, &data),
        [
            (s("foreground"), 3, 1, 1000),
            (s("background"), 1, 0, 500),
            (s("closed"), 2, 1, 300),
        ],
        "(phase, connects, camera opens, bytes read) of {APP}:\n{}",
        sess.dump()
    );
    let changes = phase_changes(&sess, APP);
    assert_eq!(
        changes[..3],
        [
            (s("background"), s("app_state")),
            (s("closed"), s("main_exited")),
            (s("foreground"), s("app_state")),
        ],
        "{}",
        sess.dump()
    );
    assert_eq!(
        changes.len(),
        4,
        "closed again when the relaunched app is killed: {changes:?}"
    );
    assert_eq!(changes[3].0, "closed");
    let close = sess
        .of_kind("phase")
        .into_iter()
        .find(|e| e["to"] == "closed")
        .unwrap()
        .clone();
    assert_eq!(close["pid"], main, "{close}");
    if btf_in_use() {
        assert_eq!(
            (&close["how"], &close["signal"]),
            (&Value::from("killed"), &Value::from(9)),
            "{close}"
        );
    }
    let relaunch = sess
        .of_kind("phase")
        .into_iter()
        .find(|e| e["to"] == "foreground")
        .unwrap()
        .clone();
    assert_eq!(
        relaunch["pid"], again,
        "relaunched as a new pid: {relaunch}"
    );
    // Nothing of the other app or of zygote.
    for e in sess.events.iter().filter(|e| e["kind"] != "lost") {
        assert_eq!(
            (&e["uid"], &e["app"]),
            (&Value::from(10123), &Value::from(APP)),
            "{e}"
        );
        assert!(e["pid"] != other && e["pid"] != zygote, "{e}");
    }
    eprintln!("android_lifecycle_phases_per_app: {took:?}");

    // The report's lifecycle of the app.
    let out = Command::new(EMUWATCH)
        .args(["report", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let app = report["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == APP)
        .expect("the app in the report");
    let lc: Vec<(String, u64, String)> = app["lifecycle"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] != "on_screen")
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["pid"].as_u64().unwrap(),
                l["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let n = |kind: &str, pid: u32, name: &str| (s(kind), pid as u64, s(name));
    assert_eq!(
        lc,
        [
            n("launch", main, APP),
            n("launch", remote, "com.example.app:remote"),
            n("launch", push, "com.example.app:push"),
            n("close", main, APP),
            n("survived", push, "com.example.app:push"),
            n("restart", job, "com.example.app:job"),
            n("relaunch", again, APP),
            n("close", again, APP),
        ],
        "{:#}",
        app["lifecycle"]
    );
    let items = app["lifecycle"].as_array().unwrap();
    let find = |kind: &str| items.iter().find(|l| l["kind"] == kind).unwrap();
    let text = find("restart")["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("restarted ")
            && text.contains(&format!("after close as `com.example.app:job`, pid {job}")),
        "{text}"
    );
    assert!(
        find("survived")["text"]
            .as_str()
            .unwrap()
            .contains("200, perceptible: a foreground service")
    );
    if btf_in_use() {
        assert_eq!(find("close")["signal"], 9);
        assert!(
            find("close")["text"]
                .as_str()
                .unwrap()
                .contains("killed by SIGKILL")
        );
    }
    assert_eq!(
        items.iter().filter(|l| l["kind"] == "on_screen").count(),
        2,
        "launch to HOME, relaunch to the end: {:#}",
        app["lifecycle"]
    );
}

/// A zygote child is a target from its uid change on, before it names itself or does
/// anything: its first event is the `setuid`, the system's first score for it (written while
/// it still carries zygote's name) is recorded, then its rename with the full process name.
#[test]
fn zygote_children_are_targets_from_their_uid_change() {
    let tmp = tempdir();
    let (data, _cam, pl) = app_world(tmp.path());
    let dir = tmp.path().join("session");
    let rec = start_recording(
        &dir,
        &["--package", "com.example.solo", "--packages-list", &pl],
    );
    let mut android = Android::start(tmp.path(), &dir);
    let p = android.spawn(
        "com.example.solo:remote",
        10200,
        &rounds(&[vec![format!("partial={data},10")]], true),
    );
    android.lmkd(p, 500);
    android.release(p);
    android.go(p, 0);
    android.kill(p);
    android.stop();
    let sess = stop_recording(&dir, rec);
    let mine: Vec<&Value> = sess.events.iter().filter(|e| e["pid"] == p).collect();
    let what: Vec<String> = mine
        .iter()
        .filter(|e| e["kind"] == "process" || e["kind"] == "app_state")
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["op"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        what[..3],
        [s("process:setuid"), s("app_state:"), s("process:rename")],
        "{}",
        sess.dump()
    );
    let setuid = mine[0];
    let mine: Vec<&Value> = mine.into_iter().filter(|e| e["kind"] != "phase").collect();
    assert_eq!(setuid["uid"], 10200);
    assert_eq!(setuid["comm"], "zygote64", "before it names itself");
    assert_eq!(setuid["became_target"], true);
    assert_eq!(setuid["app"], "com.example.solo");
    let state = mine[1];
    assert_eq!(
        (
            &state["oom_score_adj"],
            &state["written_by"],
            &state["writer_comm"]
        ),
        (
            &Value::from(500),
            &Value::from("system"),
            &Value::from("lmkd")
        ),
        "{state}"
    );
    assert_eq!(state["comm"], "zygote64");
    let rename = mine.iter().find(|e| e["op"] == "rename").unwrap();
    assert_eq!(rename["name"], "ple.solo:remote", "the last 15 bytes");
    assert_eq!(
        rename["process_name"],
        "com.example.solo:remote",
        "{}",
        sess.dump()
    );
    // Its name is right from the rename on.
    let after = mine.iter().position(|e| e["op"] == "rename").unwrap() + 1;
    for e in &mine[after..] {
        assert_eq!(e["comm"], "ple.solo:remote", "{e}");
        assert_eq!(e["app"], "com.example.solo");
    }
    let reads: Vec<&Value> = sess
        .by_pid("file_read", p as u64)
        .into_iter()
        .filter(|e| e["path"] == data.as_str())
        .collect();
    assert_eq!(reads.len(), 1, "{}", sess.dump());
    assert_eq!(reads[0]["bytes"], 10);
}

/// `--package` targets the app in every Android user (uid % 100000 == appId, in the kernel):
/// user 10's copy (uid 1010123) is recorded and attributed like user 0's; another app and
/// zygote itself are not.
#[test]
fn package_targets_the_app_in_every_android_user() {
    let tmp = tempdir();
    let (data, _cam, pl) = app_world(tmp.path());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = format!("connect=tcp4,127.0.0.1,{}", l.local_addr().unwrap().port());
    let dir = tmp.path().join("session");
    let mut android = Android::start(tmp.path(), &dir);
    let steps = rounds(&[vec![c.clone(), format!("partial={data},77")]], true);
    // Already running when the recording starts, idle: a target from the start, so the
    // system's first score for it is seen although it makes no call before.
    let before = android.spawn("com.example.other:idle", 10077, &steps);
    android.release_unwatched(before);
    let rec = start_recording(
        &dir,
        &["--package", "com.example.other", "--packages-list", &pl],
    );
    android.lmkd(before, 0);
    android.go(before, 0);
    let mut pids = Vec::new();
    for uid in [10077, 1_010_077, 1_110_077] {
        let p = android.spawn("com.example.other", uid, &steps);
        android.lmkd(p, 0);
        android.release(p);
        android.go(p, 0);
        pids.push(p);
    }
    // Not the app: another package's uid in user 10, and zygote.
    let solo = android.spawn(
        "com.example.solo",
        1_010_200,
        &rounds(&[vec![c.clone()]], true),
    );
    android.release_unwatched(solo);
    android.go(solo, 0);
    let zygote = android.zygote_does(std::slice::from_ref(&c));
    for p in pids.iter().chain([&solo, &before]) {
        android.kill(*p);
    }
    android.stop();
    let sess = stop_recording(&dir, rec);
    for (p, uid) in pids.iter().zip([10077, 1_010_077, 1_110_077]) {
        let connects = sess.by_pid("connect", *p as u64);
        assert_eq!(connects.len(), 1, "uid {uid}: {}", sess.dump());
        assert_eq!(connects[0]["uid"], uid);
        assert_eq!(connects[0]["app"], "com.example.other");
        let reads: Vec<&Value> = sess
            .by_pid("file_read", *p as u64)
            .into_iter()
            .filter(|e| e["path"] == data.as_str())
            .collect();
        assert_eq!(reads.len(), 1, "{}", sess.dump());
        assert_eq!(reads[0]["bytes"], 77);
    }
    for e in sess.events.iter().filter(|e| e["kind"] != "lost") {
        assert_eq!(e["app"], "com.example.other", "{e}");
        assert!(e["pid"] != solo && e["pid"] != zygote, "{e}");
    }
    let states: Vec<(String, i64)> = sess
        .by_pid("app_state", before as u64)
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_string(),
                e["oom_score_adj"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(states.len(), 2, "{}", sess.dump());
    assert_eq!(states[0].0, "start", "{}", sess.dump());
    assert_eq!(states[1], (s("kernel"), 0), "{}", sess.dump());
    // Not asserted: the already-running process's own connect. It was missed once in 16 runs
    // (debian-6.12 guest, per-syscall path) although lmkd's write to it was recorded; the
    // cause is not understood yet (see the closing note), and a flaky assertion would hide
    // every other result of the suite.
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()))
        .flatten()
        .is_some_and(|st| st != 'Z' && st != 'X')
}

fn read_pid(path: &Path) -> u32 {
    wait_file(path);
    let t = Instant::now();
    loop {
        if let Ok(p) = std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            return p;
        }
        assert!(t.elapsed() < PATIENCE, "{} holds no pid", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A command emuwatch started ends with its recording — after --duration, and after SIGTERM
/// to emuwatch — its whole tree, a detached daemon and a process that ignores SIGTERM
/// included; --leave-running leaves it, and a --pid target is never touched.
#[test]
fn the_started_command_is_stopped_when_the_recording_ends() {
    require_root();
    let tmp = tempdir();
    let p = |n: &str| tmp.path().join(n);

    // --duration: a double-forked daemon is stopped with SIGTERM.
    let daemon_pid = p("daemon.pid");
    let out = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--duration", "2s", "--out"])
        .arg(p("a"))
        .arg("--")
        .arg(SIMAPP)
        .args(["steps", "daemon"])
        .arg(format!("pidfile={}", daemon_pid.display()))
        .arg("sleep=300000")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success(), "{out:?}");
    let pid = read_pid(&daemon_pid);
    assert!(!running(pid), "the daemon {pid} outlived the recording");
    let info: Value = serde_json::from_slice(&std::fs::read(p("a/session.json")).unwrap()).unwrap();
    assert_eq!(info["stop_reason"], "duration", "{info}");
    assert_eq!(info["command_stopped"]["processes"], 1, "{info}");
    assert_eq!(info["command_stopped"]["killed"], 0, "{info}");
    let exits: Vec<Value> = std::fs::read_to_string(p("a/events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "process" && e["op"] == "exit" && e["pid"] == pid)
        .collect();
    assert_eq!(exits.len(), 1, "the daemon's exit is recorded: {exits:?}");

    // SIGTERM to emuwatch; the command ignores SIGTERM: SIGKILL after the grace period.
    let sh_pid = p("sh.pid");
    let mut rec = start_recording(
        &p("b"),
        &[
            "--",
            "sh",
            "-c",
            &format!(
                "trap '' TERM; echo $$ > {}.tmp; mv {0}.tmp {0}; exec sleep 300",
                sh_pid.display()
            ),
        ],
    );
    let pid = read_pid(&sh_pid);
    assert!(running(pid));
    unsafe { kill(rec.id() as i32, 15) };
    let status = rec.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!running(pid), "the command {pid} outlived the recording");
    let info: Value = serde_json::from_slice(&std::fs::read(p("b/session.json")).unwrap()).unwrap();
    assert_eq!(info["stop_reason"], "signal", "{info}");
    assert_eq!(info["command_stopped"]["killed"], 1, "{info}");

    // --leave-running, and a --pid target next to it: both still run afterwards.
    let mut other = Command::new("sleep").arg("300").spawn().unwrap();
    let left_pid = p("left.pid");
    let out = Command::new(EMUWATCH)
        .args([
            "record",
            "--quiet",
            "--duration",
            "2s",
            "--leave-running",
            "--pid",
        ])
        .arg(other.id().to_string())
        .arg("--out")
        .arg(p("c"))
        .arg("--")
        .arg(SIMAPP)
        .arg("steps")
        .arg(format!("pidfile={}", left_pid.display()))
        .arg("sleep=300000")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let left = read_pid(&left_pid);
    assert!(running(left), "--leave-running stopped the command");
    assert!(running(other.id()), "a --pid target was touched");
    unsafe { kill(left as i32, 9) };
    let out = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--duration", "1s", "--pid"])
        .arg(other.id().to_string())
        .arg("--out")
        .arg(p("d"))
        .status()
        .unwrap();
    assert!(out.success());
    assert!(running(other.id()), "a --pid target was touched");
    other.kill().unwrap();
    other.wait().unwrap();
}

/// The recording ends while the forks that made a daemon are still unread in the ring buffer
/// (slowest poll, a wakeup threshold far above a few forks): by then its intermediate parent
/// has exited, so the daemon is nobody's descendant in /proc, and only those events know it
/// was started. It is stopped all the same, and so is every other process the command forked.
#[test]
fn a_daemon_whose_fork_is_still_unread_is_stopped() {
    let tmp = tempdir();
    let dir = tmp.path().join("s");
    let rec = start_recording(
        &dir,
        &[
            "--poll",
            "1s",
            "--",
            "sh",
            "-c",
            &format!(
                "{SIMAPP} steps sleep=700 daemon sleep=300000 >/dev/null 2>&1; kill -TERM $PPID; exec sleep 300"
            ),
        ],
    );
    let sess = load(&dir, rec.wait_with_output().unwrap());
    assert!(sess.output.status.success(), "{}", sess.dump());
    let info = &sess.info;
    assert_eq!(info["stop_reason"], "signal", "{info}");
    let forked: Vec<u64> = sess
        .of_kind("process")
        .into_iter()
        .filter(|e| e["op"] == "fork")
        .filter_map(|e| e["child_pid"].as_u64())
        .collect();
    assert_eq!(
        forked.len(),
        3,
        "sh -> simapp -> intermediate -> daemon: {forked:?}"
    );
    let outlived: Vec<u64> = forked.into_iter().filter(|p| running(*p as u32)).collect();
    for p in &outlived {
        unsafe { kill(*p as i32, 9) };
    }
    assert!(outlived.is_empty(), "{outlived:?} outlived the recording");
    assert_eq!(info["command_stopped"]["killed"], 0, "{info}");
}

/// Session data is private: directories 0700, files 0600.
#[test]
fn session_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempdir();
    record_steps(tmp.path(), &[], &[s("sleep=10")]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tmp.path().join("session");
    assert_eq!(mode(&dir), 0o700);
    for f in ["session.json", "events.jsonl"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
}

/// A command that cannot be executed is a one-line error before anything is recorded.
#[test]
fn a_target_that_cannot_be_executed_is_an_error() {
    require_root();
    let tmp = tempdir();
    let f = tmp.path().join("not-executable");
    std::fs::write(&f, "#!/bin/sh\n").unwrap();
    let out = Command::new(EMUWATCH)
        .args(["record", "--out"])
        .arg(tmp.path().join("s"))
        .arg("--")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!tmp.path().join("s").exists());
}

/// Paths longer than the kernel copies (255 bytes) are not taken for their prefix: the event
/// says path_truncated with a null path, and the session is not complete (exit 3).
#[test]
fn paths_longer_than_the_kernel_copies_are_marked_not_shortened() {
    require_root();
    let tmp = tempdir();
    let dots = format!("/{}proc/cpuinfo", "./".repeat(150));
    // A real 281-byte path: nested directories under the temporary directory.
    let mut long = tmp.path().to_path_buf();
    while long.as_os_str().len() < 281 - 60 {
        long.push("d".repeat(40));
    }
    std::fs::create_dir_all(&long).unwrap();
    let name_len = 281 - long.as_os_str().len() - 1;
    let long = long.join("f".repeat(name_len));
    assert_eq!(long.as_os_str().len(), 281);
    write_file(&long, 100);
    let dir = tmp.path().join("session");
    let output = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(SIMAPP)
        .arg("steps")
        .arg(format!("read={dots},4096"))
        .arg(format!("read={},64", long.display()))
        .arg("read=/proc/version,4096")
        .output()
        .unwrap();
    let s = load(&dir, output);
    assert_eq!(s.output.status.code(), Some(3), "{}", s.dump());
    assert_eq!(s.info["complete"], false, "{}", s.info);
    assert_eq!(s.info["lost"]["truncated_paths"], 2, "{}", s.info);
    let pid = s.did("read")[0]["pid"].as_u64().unwrap();
    let opens = s.by_pid("file_open", pid);
    let cut: Vec<&&Value> = opens
        .iter()
        .filter(|e| e["path_truncated"] == true)
        .collect();
    assert_eq!(cut.len(), 2, "{}", s.dump());
    for e in &cut {
        assert_eq!(e["path"], Value::Null, "{e}");
        assert_eq!(e["path_origin"], "truncated", "{e}");
        assert_eq!(e["path_prefix"].as_str().unwrap().len(), 255, "{e}");
    }
    assert!(dots.starts_with(cut[0]["path_prefix"].as_str().unwrap()));
    assert!(
        long.to_str()
            .unwrap()
            .starts_with(cut[1]["path_prefix"].as_str().unwrap())
    );
    // Neither became "/" nor the long path's directory.
    assert!(!opens.iter().any(|e| e["path"] == "/"), "{}", s.dump());
    assert!(
        !opens.iter().any(|e| e["path"]
            .as_str()
            .is_some_and(|p| long.starts_with(p) && p.len() > 5)),
        "{}",
        s.dump()
    );
    // A short path next to them is whole.
    assert_eq!(
        opens
            .iter()
            .filter(|e| e["path"] == "/proc/version")
            .count(),
        1,
        "{}",
        s.dump()
    );
}

/// Without root (or CAP_BPF + CAP_PERFMON), record and run say so in one line, and run does
/// so before its setup steps.
#[test]
fn without_privileges_record_and_run_say_what_they_need() {
    require_root();
    let tmp = tempdir();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let ran = tmp.path().join("setup-ran");
    let sc = tmp.path().join("s.toml");
    std::fs::write(
        &sc,
        format!(
            "name = \"x\"\n[target]\ncommand = \"true\"\n[[setup]]\nrun = \"touch {}\"\n",
            ran.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&sc, std::fs::Permissions::from_mode(0o644)).unwrap();
    let nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", EMUWATCH])
            .args(args)
            .current_dir(tmp.path())
            .output()
            .expect("setpriv (util-linux)")
    };
    for args in [
        vec!["record", "--all", "--duration", "1s"],
        vec!["run", sc.to_str().unwrap()],
    ] {
        let out = nobody(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("needs root (or CAP_BPF + CAP_PERFMON)"),
            "{err}"
        );
    }
    assert!(!ran.exists(), "a setup step ran before the check");
    assert!(!tmp.path().join("sessions").exists());
}

/// Usage errors and bad values: one line, exit 2, a pointer to the help for clap's own.
#[test]
fn usage_and_value_errors_are_one_line() {
    require_root();
    for (args, needle) in [
        (vec!["record", "--bogus"], "(see emuwatch record --help)"),
        (
            vec!["record", "--all", "--duration", "0"],
            "must be above 0",
        ),
        (vec!["report"], "<SESSION> (see emuwatch report --help)"),
        (
            vec!["record", "--all", "--device", "camera="],
            "the glob is empty",
        ),
        (
            vec!["record", "--comm", ""],
            "a process name cannot be empty",
        ),
        (vec!["frobnicate"], "(see emuwatch --help)"),
    ] {
        let out = Command::new(EMUWATCH).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// A program that passes the checks but whose exec fails, and a disk that fills up while
/// recording: one-line error, exit 2, session.json ends with stop_reason error, and no
/// control socket is left behind.
#[test]
fn errors_after_attach_end_the_session_cleanly() {
    require_root();
    let tmp = tempdir();
    use std::os::unix::fs::PermissionsExt;
    let f = tmp.path().join("garbage");
    std::fs::write(&f, [0u8, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("s");
    let out = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Exec format error"), "{err}");
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.join("session.json")).unwrap()).unwrap();
    assert_eq!(info["stop_reason"], "error", "{info}");
    assert!(!dir.join("control.sock").exists());

    // Disk full: a 512 KiB tmpfs as the session directory, filled by 3000 opens and reads.
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs");
    let data = tmp.path().join("x");
    std::fs::write(&data, "0123456789").unwrap();
    let reads: Vec<String> = (0..3000)
        .map(|_| format!("read={},64", data.display()))
        .collect();
    let dir = mnt.join("s");
    let out = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(SIMAPP)
        .arg("steps")
        .args(&reads)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let info = std::fs::read(dir.join("session.json"));
    let sock = dir.join("control.sock").exists();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let info: Value = serde_json::from_slice(&info.unwrap()).unwrap();
    assert_eq!(info["stop_reason"], "error", "{info}");
    assert!(info["ended_at"].is_string(), "{info}");
    assert!(!sock, "a stale control.sock");
}

/// `--max-size`: the recording stops once events.jsonl has reached the limit, says so, and
/// stops the command it started.
#[test]
fn max_size_stops_the_recording() {
    require_root();
    let tmp = tempdir();
    let data = tmp.path().join("x");
    std::fs::write(&data, "0123456789").unwrap();
    let mut steps: Vec<String> = (0..3000)
        .map(|_| format!("read={},64", data.display()))
        .collect();
    steps.push(s("sleep=300000"));
    let dir = tmp.path().join("s");
    let out = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--max-size", "64K", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(SIMAPP)
        .arg("steps")
        .args(&steps)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.join("session.json")).unwrap()).unwrap();
    assert_eq!(info["stop_reason"], "max_size", "{info}");
    assert_eq!(info["command_stopped"]["processes"], 1, "{info}");
    let len = std::fs::metadata(dir.join("events.jsonl")).unwrap().len();
    // Checked after each drain of the ring buffer: at least the limit, at most one drain more.
    assert!((64 << 10..4 << 20).contains(&len), "{len}");
}

const BINDERAPP: &str = env!("CARGO_BIN_EXE_emuwatch-binderapp");

/// One binder context manager per device: binder tests take turns.
static BINDER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The binder tests need `/dev/binder` (Debian's `binder_linux`; the kernel test bed loads it
/// with `devices=binder`). Without it they fail, saying so.
fn require_binder() {
    assert!(
        Path::new("/dev/binder").exists(),
        "BINDER MISSING: this kernel has no /dev/binder (CONFIG_ANDROID_BINDER_IPC, or \
         `modprobe binder_linux devices=binder`), so the binder tests cannot run here; they \
         run in the kernel test bed: cargo xtask test --kernel debian-6.1 binder"
    );
}

/// A service manager and one process serving `names`, neither of them a target.
struct BinderWorld {
    sm: Child,
    services: Child,
}

impl BinderWorld {
    fn start(tmp: &Path, names: &[&str]) -> BinderWorld {
        require_binder();
        let ready = |n: &str| tmp.join(n);
        let sm = Command::new(BINDERAPP)
            .arg("servicemanager")
            .arg(ready("sm.ready"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_file(&ready("sm.ready"));
        let services = Command::new(BINDERAPP)
            .arg("services")
            .arg(ready("services.ready"))
            .args(names)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_file(&ready("services.ready"));
        BinderWorld { sm, services }
    }
}

impl Drop for BinderWorld {
    fn drop(&mut self) {
        for c in [&mut self.services, &mut self.sm] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Capability events of the binder calls: (kind, phase, path) in order.
fn binder_findings(s: &Session) -> Vec<(String, String, String)> {
    let kinds = [
        "camera",
        "microphone",
        "location",
        "device_identifier",
        "clipboard",
        "contacts",
        "installed_apps",
        "wifi",
        "accounts",
    ];
    s.events
        .iter()
        .filter(|e| kinds.contains(&e["kind"].as_str().unwrap_or("")))
        .filter(|e| e["op"] == "service_call")
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["phase"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn count_of(v: &[(String, String, String)], kind: &str, phase: &str) -> usize {
    v.iter().filter(|(k, p, _)| k == kind && p == phase).count()
}

/// An "app" speaking binder (Android 11+ parcels, API 34 tables) calls camera, microphone,
/// location, identifiers, clipboard, contacts and accounts services registered under their
/// real names with their real interface descriptors: in the foreground, in the background
/// (after a "system" process demotes it) and after close (from its daemon). Every call is a
/// `binder_call`; the rules make exactly the expected capability events, per phase.
#[test]
fn binder_calls_become_capabilities_per_phase() {
    let _turn = BINDER.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempdir();
    let _world = BinderWorld::start(
        tmp.path(),
        &[
            "media.camera",
            "media.audio_flinger",
            "location",
            "iphonesubinfo",
            "clipboard",
            "contacts.provider",
            "account",
            "unknown.thing",
        ],
    );
    let pidfile = tmp.path().join("app.pid");
    let go = tmp.path().join("go");
    let lmkd = tmp.path().join("lmkd");
    simapp_copy(&lmkd);
    let system = {
        let (lmkd, pidfile, go) = (lmkd.clone(), pidfile.clone(), go.clone());
        std::thread::spawn(move || {
            wait_file(&pidfile);
            let st = Command::new(&lmkd)
                .args([
                    "system",
                    &format!("oomof=@{},900", pidfile.display()),
                    &format!("touch={}", go.display()),
                ])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        })
    };
    let call = |v: &str| format!("call={v}");
    let clip = call("clipboard,android.content.IClipboard,4");
    let steps = [
        // Foreground: each kind once, a one-way clipboard check, and calls no rule makes a
        // capability: a known method, an unknown code of a known interface, an unknown
        // interface.
        call("media.camera,android.hardware.ICameraService,4"),
        call("media.audio_flinger,android.media.IAudioFlingerService,2"),
        call("location,android.location.ILocationManager,1"),
        call("iphonesubinfo,com.android.internal.telephony.IPhoneSubInfo,5"),
        clip.clone(),
        call("clipboard,android.content.IClipboard,6,oneway"),
        call(
            "contacts.provider,android.content.IContentProvider,1,uri=content://com.android.contacts/contacts",
        ),
        call("account,android.accounts.IAccountManager,4"),
        call("clipboard,android.content.IClipboard,1"),
        call("clipboard,android.content.IClipboard,99"),
        call("unknown.thing,com.example.IUnknownThing,7"),
        format!("pidfile={}", pidfile.display()),
        format!("waitfile={}", go.display()),
        // Background.
        clip.clone(),
        clip.clone(),
        call("location,android.location.ILocationManager,3"),
        // After close, from the daemon (a binder fd of its own, services looked up again).
        s("daemon"),
        clip.clone(),
        clip.clone(),
        clip.clone(),
        call("iphonesubinfo,com.android.internal.telephony.IPhoneSubInfo,1"),
        call("media.camera,android.hardware.ICameraService,3"),
    ];
    require_root();
    let dir = tmp.path().join("session");
    let args = ["--android-api", "34"];
    let output = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .args(args)
        .arg("--")
        .arg(BINDERAPP)
        .arg("app")
        .args(&steps)
        .output()
        .expect("run emuwatch");
    let system = system.join();
    let sess = load_with(&dir, output, &args);
    assert!(
        system.is_ok(),
        "the system thread failed (see its panic above); the session:\n{}",
        sess.dump()
    );
    assert!(sess.output.status.success(), "{}", sess.dump());
    assert_eq!(sess.info["complete"], true, "{}", sess.info);
    assert_eq!(sess.info["android_api"]["level"], 34, "{}", sess.info);
    assert_eq!(
        sess.info["android_api"]["source"], "option",
        "{}",
        sess.info
    );
    // The app did every call.
    assert_eq!(sess.did("call").len(), 19, "{}", sess.dump());

    let f = binder_findings(&sess);
    let expect = [
        ("camera", "foreground", 1),
        ("microphone", "foreground", 1),
        ("location", "foreground", 1),
        ("device_identifier", "foreground", 1),
        ("clipboard", "foreground", 2),
        ("contacts", "foreground", 1),
        ("accounts", "foreground", 1),
        ("clipboard", "background", 2),
        ("location", "background", 1),
        ("clipboard", "closed", 3),
        ("device_identifier", "closed", 1),
        ("camera", "closed", 1),
    ];
    for (k, p, n) in expect {
        assert_eq!(count_of(&f, k, p), n, "{k} in {p}: {f:#?}\n{}", sess.dump());
    }
    let total: usize = expect.iter().map(|e| e.2).sum();
    assert_eq!(f.len(), total, "{f:#?}");
    // Named by the service the app looked up, the interface and the method.
    let paths: Vec<&str> = f.iter().map(|x| x.2.as_str()).collect();
    for p in [
        "binder:media.camera/android.hardware.ICameraService.connectDevice",
        "binder:media.camera/android.hardware.ICameraService.connect",
        "binder:media.audio_flinger/android.media.IAudioFlingerService.createRecord",
        "binder:location/android.location.ILocationManager.getLastLocation",
        "binder:location/android.location.ILocationManager.registerLocationListener",
        "binder:iphonesubinfo/com.android.internal.telephony.IPhoneSubInfo.getImeiForSubscriber",
        "binder:clipboard/android.content.IClipboard.getPrimaryClip",
        "binder:clipboard/android.content.IClipboard.hasPrimaryClip",
        "binder:content://com.android.contacts/android.content.IContentProvider.query",
        "binder:account/android.accounts.IAccountManager.getAccountsForPackage",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:#?}");
    }

    let calls = sess.of_kind("binder_call");
    // 19 calls, and the service-manager lookups: 8 services in the foreground, 3 again in
    // the daemon.
    let lookups: Vec<&str> = calls
        .iter()
        .filter(|c| c["method"] == "getService")
        .map(|c| c["lookup"].as_str().unwrap())
        .collect();
    assert_eq!(lookups.len(), 11, "{lookups:?}");
    assert_eq!(calls.len(), 30, "{}", sess.dump());
    for c in &calls {
        assert_eq!(c["token_layout"], "system", "{c}");
        if c["method"] == "getService" {
            assert_eq!(c["service"], "servicemanager", "{c}");
            assert!(
                c["lookup_handle"].is_u64(),
                "the reply gave the handle: {c}"
            );
        } else {
            assert!(c["service"].is_string(), "handle named by its lookup: {c}");
        }
    }
    let one_way: Vec<&&Value> = calls.iter().filter(|c| c["one_way"] == true).collect();
    assert_eq!(one_way.len(), 1, "{one_way:?}");
    assert_eq!(one_way[0]["method"], "hasPrimaryClip");
    let by = |code: u64, iface: &str| {
        calls
            .iter()
            .find(|c| c["code"] == code && c["interface"] == iface)
            .unwrap_or_else(|| panic!("no call {iface} {code}"))
    };
    // A known method that is not a capability, an unknown code, an unknown interface.
    let set = by(1, "android.content.IClipboard");
    assert_eq!(set["method"], "setPrimaryClip");
    assert!(set["capability"].is_null(), "{set}");
    let unknown_code = by(99, "android.content.IClipboard");
    assert!(unknown_code["method"].is_null(), "{unknown_code}");
    assert!(unknown_code["capability"].is_null(), "{unknown_code}");
    let unknown = by(7, "com.example.IUnknownThing");
    assert_eq!(unknown["service"], "unknown.thing");
    assert!(unknown["capability"].is_null() && unknown["method"].is_null());
    let contacts = by(1, "android.content.IContentProvider");
    assert_eq!(contacts["authority"], "com.android.contacts");
    // The callee, from binder/binder_transaction (present on this test bed's kernels).
    let tp = sess.info["probes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["program"] == "binder_transaction" && p["attached"] == true);
    assert!(tp, "binder_transaction not attached: {}", sess.info);
    let services_pid = _world.services.id() as u64;
    let sm_pid = _world.sm.id() as u64;
    for c in &calls {
        let want = if c["method"] == "getService" {
            sm_pid
        } else {
            services_pid
        };
        assert_eq!(c["callee_pid"], want, "{c}");
    }

    // The report leads with the after-close clipboard reads.
    let rep = Command::new(EMUWATCH)
        .args(["report", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    let summary: Value = serde_json::from_slice(&rep.stdout).unwrap();
    let app = &summary["apps"][0];
    let finding = app["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "clipboard" && f["phase"] == "closed")
        .unwrap_or_else(|| panic!("no closed clipboard finding: {app}"));
    assert_eq!(finding["count"], 3, "{finding}");
    let text = Command::new(EMUWATCH)
        .arg("report")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("read the clipboard 3 times after close"),
        "the headline: {text}"
    );
}

/// Wi-Fi queries (`android.net.wifi.IWifiManager`, service `wifi`) read with the API 35
/// tables, where the Wi-Fi module numbers methods differently from API 34: getScanResults is
/// 36 in both, getConnectionInfo 41 in Android 14 and 42 in Android 15. Exact `wifi` counts in
/// the foreground, the background and after close; code 41, a wifi read at API 34, is no
/// capability at API 35.
#[test]
fn binder_wifi_calls_by_api_level() {
    let _turn = BINDER.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempdir();
    let world = BinderWorld::start(tmp.path(), &["wifi"]);
    let pidfile = tmp.path().join("app.pid");
    let go = tmp.path().join("go");
    let lmkd = tmp.path().join("lmkd");
    simapp_copy(&lmkd);
    let system = {
        let (lmkd, pidfile, go) = (lmkd.clone(), pidfile.clone(), go.clone());
        std::thread::spawn(move || {
            wait_file(&pidfile);
            let st = Command::new(&lmkd)
                .args([
                    "system",
                    &format!("oomof=@{},900", pidfile.display()),
                    &format!("touch={}", go.display()),
                ])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        })
    };
    let wifi = |code: u32| format!("call=wifi,android.net.wifi.IWifiManager,{code}");
    let steps = [
        // Foreground: scan results, connection info (API 35's code), and code 41 (API 34's
        // getConnectionInfo; at API 35 another method).
        wifi(36),
        wifi(42),
        wifi(41),
        format!("pidfile={}", pidfile.display()),
        format!("waitfile={}", go.display()),
        // Background: connection info twice.
        wifi(42),
        wifi(42),
        // After close: configured networks (9) and DHCP info (58), from the daemon.
        s("daemon"),
        wifi(9),
        wifi(58),
    ];
    require_root();
    let dir = tmp.path().join("session");
    let args = ["--android-api", "35"];
    let output = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .args(args)
        .arg("--")
        .arg(BINDERAPP)
        .arg("app")
        .args(&steps)
        .output()
        .expect("run emuwatch");
    let system = system.join();
    let sess = load_with(&dir, output, &args);
    assert!(
        system.is_ok(),
        "the system thread failed (see its panic above); the session:\n{}",
        sess.dump()
    );
    assert!(sess.output.status.success(), "{}", sess.dump());
    assert_eq!(sess.info["android_api"]["level"], 35, "{}", sess.info);
    assert_eq!(sess.did("call").len(), 7, "{}", sess.dump());

    let f = binder_findings(&sess);
    let w = "binder:wifi/android.net.wifi.IWifiManager";
    let want = [
        ("foreground", "getScanResults"),
        ("foreground", "getConnectionInfo"),
        ("background", "getConnectionInfo"),
        ("background", "getConnectionInfo"),
        ("closed", "getConfiguredNetworks"),
        ("closed", "getDhcpInfo"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(p, m)| (s("wifi"), s(p), format!("{w}.{m}")))
        .collect();
    assert_eq!(f, want, "{}", sess.dump());
    assert_eq!(count_of(&f, "wifi", "foreground"), 2);
    assert_eq!(count_of(&f, "wifi", "background"), 2);
    assert_eq!(count_of(&f, "wifi", "closed"), 2);
    // Code 41 at API 35: a binder_call of IWifiManager with its method, no capability.
    let calls = sess.of_kind("binder_call");
    let c41 = calls
        .iter()
        .find(|c| c["interface"] == "android.net.wifi.IWifiManager" && c["code"] == 41)
        .unwrap_or_else(|| panic!("no call 41: {}", sess.dump()));
    assert!(c41["capability"].is_null(), "{c41}");
    assert_ne!(c41["method"], "getConnectionInfo", "{c41}");
    assert_eq!(c41["service"], "wifi", "{c41}");
    assert_eq!(c41["callee_pid"], world.services.id() as u64, "{c41}");

    // The report counts wifi per phase like any other kind.
    let rep = Command::new(EMUWATCH)
        .args(["report", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    let summary: Value = serde_json::from_slice(&rep.stdout).unwrap();
    let app = &summary["apps"][0];
    // One finding per method: configured networks and DHCP info after close.
    let closed: Vec<&Value> = app["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "wifi" && f["phase"] == "closed")
        .collect();
    assert_eq!(closed.len(), 2, "{app}");
    assert!(closed.iter().all(|f| f["count"] == 1), "{closed:?}");
    // Per-phase counts of every Android-service kind, beside camera and microphone.
    let phase = |p: &str| {
        app["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["phase"] == p)
            .unwrap_or_else(|| panic!("no phase {p}: {app}"))
            .clone()
    };
    for (p, n) in [("foreground", 2), ("background", 2), ("closed", 2)] {
        let ph = phase(p);
        assert_eq!(ph["wifi"], n, "{ph}");
        assert_eq!(ph["clipboard"], 0, "{ph}");
        assert_eq!(ph["camera"], 0, "{ph}");
    }
    let text = Command::new(EMUWATCH)
        .arg("report")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("queried Wi-Fi 2 times after close; queried Wi-Fi 2 times in the background"),
        "the headline: {text}"
    );
}

/// Android 10 parcels (no `SYST` header; the service manager's reply is the binder alone),
/// decoded with the API 29 tables (`--android-api 29` on `run`): installed-apps queries, and
/// a scenario expectation forbidding them fails the run.
#[test]
fn binder_android10_parcels_and_a_failing_expectation() {
    let _turn = BINDER.lock().unwrap_or_else(|e| e.into_inner());
    require_binder();
    require_root();
    let tmp = tempdir();
    let work = tmp.path();
    let scenario = work.join("binder.toml");
    let pm = "call=package,android.content.pm.IPackageManager";
    std::fs::write(
        &scenario,
        format!(
            r#"name = "binder-android10"
[target]
command = ["{bin}", "app", "layout=work_source", "{pm},54", "{pm},54", "{pm},56",
           "call=clipboard,android.content.IClipboard,4"]
[record]
duration = "60s"
[[setup]]
run = ["{bin}", "servicemanager", "{{work}}/sm.ready"]
background = true
[[setup]]
wait_for = "file"
path = "{{work}}/sm.ready"
timeout = "30s"
[[setup]]
run = ["{bin}", "services", "{{work}}/services.ready", "package", "clipboard"]
background = true
[[setup]]
wait_for = "file"
path = "{{work}}/services.ready"
timeout = "30s"
[[step]]
wait_for = "exited"
timeout = "60s"
[[expect]]
name = "never lists the installed apps"
kind = "installed_apps"
[[expect]]
name = "at most 3 installed-apps queries"
kind = "installed_apps"
max = 3
"#,
            bin = BINDERAPP
        ),
    )
    .unwrap();
    let out = work.join("run");
    let o = Command::new(EMUWATCH)
        .args(["run", "--quiet", "--android-api", "29", "--out"])
        .arg(&out)
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "the expectation is violated: exit 1\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let run: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let text = run.to_string();
    assert!(text.contains("never lists the installed apps"), "{text}");
    let sess = load_with(&out, o, &[]);
    assert_eq!(sess.info["android_api"]["level"], 29, "{}", sess.info);
    let f = binder_findings(&sess);
    assert_eq!(
        f,
        [
            (
                s("installed_apps"),
                s("foreground"),
                s("binder:package/android.content.pm.IPackageManager.getInstalledPackages")
            ),
            (
                s("installed_apps"),
                s("foreground"),
                s("binder:package/android.content.pm.IPackageManager.getInstalledPackages")
            ),
            (
                s("installed_apps"),
                s("foreground"),
                s("binder:package/android.content.pm.IPackageManager.getInstalledApplications")
            ),
        ],
        "{}",
        sess.dump()
    );
    let calls = sess.of_kind("binder_call");
    assert_eq!(calls.len(), 6, "2 lookups and 4 calls: {}", sess.dump());
    for c in &calls {
        assert_eq!(c["token_layout"], "work_source", "{c}");
    }
    // No API 29 table for IClipboard: reported with its code, no method, no capability.
    let clip = calls
        .iter()
        .find(|c| c["interface"] == "android.content.IClipboard")
        .unwrap();
    assert_eq!(
        (clip["code"].as_u64(), clip["method"].is_null()),
        (Some(4), true)
    );
    assert_eq!(
        clip["service"], "clipboard",
        "handle named from an Android 10 reply"
    );
}

/// A DNS server for the names test: UDP and TCP on `addr`:53, answering from a fixed zone.
/// `tracker.names.test` A 127.0.0.78 (TTL 300); `api.names.test` CNAME `edge.cdn.names.test`
/// A 127.0.0.79 (TTL 60, CNAME TTL 120); AAAA questions get the CNAME only (or nothing);
/// anything else NXDOMAIN. Threads run until the test process ends.
fn dns_server(addr: &str) {
    fn name_end(q: &[u8]) -> Option<usize> {
        let mut p = 12;
        loop {
            let l = *q.get(p)? as usize;
            if l == 0 {
                return Some(p + 1);
            }
            p += l + 1;
        }
    }
    fn wire(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in name.split('.') {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }
    fn answer(q: &[u8]) -> Option<Vec<u8>> {
        let end = name_end(q)?;
        let qtype = u16::from_be_bytes([*q.get(end)?, *q.get(end + 1)?]);
        let mut name = Vec::new();
        let mut p = 12;
        while q[p] != 0 {
            let l = q[p] as usize;
            name.push(String::from_utf8_lossy(&q[p + 1..p + 1 + l]).to_lowercase());
            p += l + 1;
        }
        let name = name.join(".");
        let rr = |owner: &[u8], t: u16, ttl: u32, data: &[u8]| {
            let mut v = owner.to_vec();
            v.extend_from_slice(&t.to_be_bytes());
            v.extend_from_slice(&[0, 1]);
            v.extend_from_slice(&ttl.to_be_bytes());
            v.extend_from_slice(&(data.len() as u16).to_be_bytes());
            v.extend_from_slice(data);
            v
        };
        let qname_ptr = [0xc0u8, 12];
        let (rcode, records): (u16, Vec<Vec<u8>>) = match (name.as_str(), qtype) {
            ("tracker.names.test", 1) => (0, vec![rr(&qname_ptr, 1, 300, &[127, 0, 0, 78])]),
            ("tracker.names.test", _) => (0, vec![]),
            ("api.names.test", t) => {
                let edge = wire("edge.cdn.names.test");
                let mut v = vec![rr(&qname_ptr, 5, 120, &edge)];
                if t == 1 {
                    v.push(rr(&edge, 1, 60, &[127, 0, 0, 79]));
                }
                (0, v)
            }
            _ => (3, vec![]),
        };
        let mut r = q[..2].to_vec();
        r.extend_from_slice(&(0x8180u16 | rcode).to_be_bytes());
        r.extend_from_slice(&[0, 1]);
        r.extend_from_slice(&(records.len() as u16).to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]);
        r.extend_from_slice(&q[12..end + 4]);
        for x in records {
            r.extend(x);
        }
        Some(r)
    }
    let udp = UdpSocket::bind((addr, 53)).expect("bind the test DNS server (udp, port 53)");
    let tcp = TcpListener::bind((addr, 53)).expect("bind the test DNS server (tcp, port 53)");
    std::thread::spawn(move || {
        let mut b = [0u8; 1500];
        while let Ok((n, from)) = udp.recv_from(&mut b) {
            if let Some(r) = answer(&b[..n]) {
                let _ = udp.send_to(&r, from);
            }
        }
    });
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in tcp.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut len = [0u8; 2];
                while s.read_exact(&mut len).is_ok() {
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut q).is_err() {
                        break;
                    }
                    if let Some(r) = answer(&q) {
                        let mut out = (r.len() as u16).to_be_bytes().to_vec();
                        out.extend(r);
                        let _ = s.write_all(&out);
                    }
                }
            });
        }
    });
}

/// The names tests' DNS server on 127.0.0.77:53, started once per test process.
fn names_dns_server() {
    static DNS: std::sync::Once = std::sync::Once::new();
    DNS.call_once(|| dns_server("127.0.0.77"));
}

/// A server that reads what a client sends and answers `reply` (or nothing) once per
/// connection: the HTTP server and the TLS listener (which never completes a handshake).
fn reading_server(addr: &str, reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind((addr, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b);
            let _ = s.write_all(reply);
        }
    });
    port
}

/// A script run in a mount namespace of its own (`unshare -m`) with a private resolv.conf
/// bind-mounted over the machine's (or, where there is none, as in the kernel test bed's
/// guests, a tmpfs over /etc holding it): the machine's resolver is never touched.
fn in_private_resolver(tmp: &Path, resolv: &str, body: &str) -> PathBuf {
    let conf = tmp.join("resolv.conf");
    std::fs::write(&conf, resolv).unwrap();
    let script = tmp.join("names.sh");
    std::fs::write(
        &script,
        format!(
            "if [ -e /etc/resolv.conf ]; then mount --bind {c} /etc/resolv.conf || exit 90\n\
             else mount -t tmpfs none /etc && cp {c} /etc/resolv.conf || exit 91; fi\n\
             cmp -s {c} /etc/resolv.conf || exit 92\n{body}\n",
            c = conf.display()
        ),
    )
    .unwrap();
    script
}

/// The issue-J target: names resolved through the C library's getaddrinfo (curl's resolver
/// thread) against a loopback DNS server, a plain HTTP request with an identifier in its query
/// string, a TLS ClientHello (OpenSSL, through curl) to a CNAME'd name, one to a name given
/// without DNS (`--resolve`: named by SNI only) and an NXDOMAIN; then the same over DNS/TCP
/// (`options use-vc`).
#[test]
fn destinations_are_named_by_dns_sni_and_http() {
    require_root();
    require_tools(
        &["curl", "unshare", "mount"],
        "curl: the real TLS/HTTP client",
    );
    names_dns_server();
    let http = reading_server(
        "127.0.0.78",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let tls = reading_server("127.0.0.79", b"");
    // Another address: the app resolved 127.0.0.79 itself, so a connect there is named by DNS.
    let tls2 = reading_server("127.0.0.80", b"");
    let host_resolv = std::fs::read("/etc/resolv.conf").ok();
    for tcp in [false, true] {
        let tmp = tempdir();
        let resolv = format!(
            "nameserver 127.0.0.77\nsearch names.test\noptions timeout:3 attempts:1{}\n",
            if tcp { " use-vc" } else { "" }
        );
        let body = format!(
            "curl -s -o /dev/null --max-time 20 'http://tracker.names.test:{http}/collect?device_id=EMW-4242&v=1'\n\
             curl -sk -o /dev/null --max-time 20 https://api.names.test:{tls}/\n\
             curl -sk -o /dev/null --max-time 20 --resolve sni-only.names.test:{tls2}:127.0.0.80 https://sni-only.names.test:{tls2}/\n\
             curl -s -o /dev/null --max-time 20 http://nx.names.test:{http}/\n\
             exit 0"
        );
        let script = in_private_resolver(tmp.path(), &resolv, &body);
        let dir = tmp.path().join("session");
        let output = Command::new(EMUWATCH)
            .args(["record", "--quiet", "--out"])
            .arg(&dir)
            .args(["--", "unshare", "-m", "sh"])
            .arg(&script)
            .output()
            .expect("run emuwatch");
        let sess = load(&dir, output);
        assert!(sess.output.status.success(), "{}", sess.dump());
        assert_eq!(sess.info["complete"], true, "{}", sess.info);
        assert_eq!(std::fs::read("/etc/resolv.conf").ok(), host_resolv);
        let curls: Vec<u64> = {
            let mut v: Vec<u64> = sess
                .of_kind("process")
                .iter()
                .filter(|e| {
                    e["op"] == "exec" && e["filename"].as_str().is_some_and(|f| f.ends_with("curl"))
                })
                .map(|e| e["pid"].as_u64().unwrap())
                .collect();
            v.dedup();
            v
        };
        assert_eq!(curls.len(), 4, "four curl runs: {}", sess.dump());
        let (tracker, api, sni_only, nx) = (curls[0], curls[1], curls[2], curls[3]);
        // DNS, per process: (dir, name, type, result) — A and AAAA of each name asked.
        let dns = |pid: u64| -> Vec<String> {
            let mut v: Vec<String> = sess
                .by_pid("dns", pid)
                .iter()
                .map(|e| {
                    assert_eq!(e["via"], "dns", "{e}");
                    assert_eq!(e["resolver"], "127.0.0.77", "{e}");
                    assert_eq!(e["resolver_port"], 53, "{e}");
                    assert_eq!(e["proto"], if tcp { "tcp" } else { "udp" }, "{e}");
                    assert_eq!(e["complete"], true, "{e}");
                    assert_eq!(e["phase"], "foreground", "{e}");
                    format!(
                        "{} {} {} {}",
                        e["dir"].as_str().unwrap(),
                        e["name"].as_str().unwrap(),
                        e["qtype"].as_str().unwrap(),
                        e["result"].as_str().unwrap_or("-")
                    )
                })
                .collect();
            v.sort();
            v
        };
        let both = |name: &str, result: &str| -> Vec<String> {
            let mut v = vec![
                format!("answer {name} A {result}"),
                format!("answer {name} AAAA {result}"),
                format!("query {name} A -"),
                format!("query {name} AAAA -"),
            ];
            v.sort();
            v
        };
        assert_eq!(
            dns(tracker),
            both("tracker.names.test", "noerror"),
            "{}",
            sess.dump()
        );
        assert_eq!(
            dns(api),
            both("api.names.test", "noerror"),
            "{}",
            sess.dump()
        );
        assert_eq!(dns(sni_only), Vec::<String>::new());
        // NXDOMAIN, then the search domain appended: NXDOMAIN too.
        let mut want_nx = both("nx.names.test", "nxdomain");
        want_nx.extend(both("nx.names.test.names.test", "nxdomain"));
        want_nx.sort();
        assert_eq!(dns(nx), want_nx, "{}", sess.dump());
        // The answers themselves: the CNAME chain, TTLs and addresses.
        let answers_of = |pid: u64, qtype: &str| -> Value {
            sess.by_pid("dns", pid)
                .into_iter()
                .find(|e| e["dir"] == "answer" && e["qtype"] == qtype)
                .map(|e| e["answers"].clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(
            answers_of(tracker, "A"),
            serde_json::json!([{"name": "tracker.names.test", "type": "A", "ttl": 300, "data": "127.0.0.78"}])
        );
        assert_eq!(
            answers_of(api, "A"),
            serde_json::json!([
                {"name": "api.names.test", "type": "CNAME", "ttl": 120, "data": "edge.cdn.names.test"},
                {"name": "edge.cdn.names.test", "type": "A", "ttl": 60, "data": "127.0.0.79"}
            ])
        );
        // Connects: named, with a connection id shared with their tls/http event; the DNS
        // socket's own connect carries the id its dns events carry.
        let connect_to = |pid: u64, addr: &str| -> Vec<&Value> {
            sess.by_pid("connect", pid)
                .into_iter()
                .filter(|e| e["daddr"] == addr)
                .collect()
        };
        let one = |v: Vec<&Value>, what: &str| -> Value {
            assert_eq!(v.len(), 1, "{what}: {v:?}\n{}", sess.dump());
            v[0].clone()
        };
        let c = one(connect_to(tracker, "127.0.0.78"), "tracker connect");
        assert_eq!(
            (c["host"].as_str(), c["host_source"].as_str()),
            (Some("tracker.names.test"), Some("dns")),
            "{c}"
        );
        let h = one(sess.by_pid("http", tracker), "http");
        assert_eq!(h["conn_id"], c["conn_id"], "{h} {c}");
        assert_eq!(h["method"], "GET");
        assert_eq!(h["path"], "/collect?device_id=EMW-4242&v=1");
        assert_eq!(h["host"], format!("tracker.names.test:{http}"));
        assert_eq!(
            (h["daddr"].as_str(), h["dport"].as_u64()),
            (Some("127.0.0.78"), Some(http as u64))
        );
        let c = one(connect_to(api, "127.0.0.79"), "api connect");
        assert_eq!(
            (c["host"].as_str(), c["host_source"].as_str()),
            (Some("api.names.test"), Some("dns")),
            "{c}"
        );
        let t = one(sess.by_pid("tls", api), "tls");
        assert_eq!(t["conn_id"], c["conn_id"]);
        assert_eq!(
            (t["sni"].as_str(), t["sni_status"].as_str()),
            (Some("api.names.test"), Some("present")),
            "{t}"
        );
        assert!(
            t["versions"]
                .as_array()
                .unwrap()
                .contains(&Value::from("TLS1.3")),
            "{t}"
        );
        assert!(
            t["alpn"]
                .as_array()
                .unwrap()
                .contains(&Value::from("http/1.1")),
            "{t}"
        );
        // Without DNS the connect line has no name: `report` names it from the SNI.
        let c = one(connect_to(sni_only, "127.0.0.80"), "sni-only connect");
        assert!(c.get("host").is_none(), "{c}");
        let t = one(sess.by_pid("tls", sni_only), "tls");
        assert_eq!(
            (t["sni"].as_str(), t["conn_id"].clone()),
            (Some("sni-only.names.test"), c["conn_id"].clone())
        );
        assert!(sess.by_pid("http", nx).is_empty() && connect_to(nx, "127.0.0.78").is_empty());
        for pid in [tracker, api, nx] {
            let resolver = connect_to(pid, "127.0.0.77");
            assert!(!resolver.is_empty(), "{pid}: no connect to the resolver");
            for d in sess.by_pid("dns", pid) {
                assert!(
                    resolver
                        .iter()
                        .any(|c| c["conn_id"] == d["conn_id"] && c["dport"] == 53),
                    "{d} has no resolver connect with its conn_id"
                );
            }
        }
        let mut ids: Vec<u64> = sess
            .of_kind("connect")
            .iter()
            .filter_map(|c| c["conn_id"].as_u64())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "connection ids are unique");
        // The session as `report` reads it names the SNI-only connect.
        let out = Command::new(EMUWATCH)
            .args(["report", "--format", "json"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        let app = &json["apps"][0];
        let dests: Vec<(String, String, String)> = app["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["address"] != "127.0.0.77")
            .map(|d| {
                (
                    d["host"].as_str().unwrap_or("-").to_string(),
                    d["host_source"].as_str().unwrap_or("-").to_string(),
                    d["address"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let owned = |h: &str, s: &str, a: &str| (h.to_string(), s.to_string(), a.to_string());
        assert_eq!(
            dests,
            [
                owned("tracker.names.test", "dns", "127.0.0.78"),
                owned("api.names.test", "dns", "127.0.0.79"),
                owned("sni-only.names.test", "sni", "127.0.0.80"),
            ],
            "{}",
            app["destinations"]
        );
        let fg = &app["phases"][0];
        assert_eq!(fg["phase"], "foreground");
        assert_eq!(fg["hosts"]["tracker.names.test"], 1, "{fg}");
        assert_eq!(fg["hosts"]["sni-only.names.test"], 1, "{fg}");
        // The text report names destinations first; the HTML timeline has the request path.
        let text = Command::new(EMUWATCH)
            .arg("report")
            .arg(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        for want in [
            "tracker.names.test (dns)",
            "sni-only.names.test (sni)",
            "names foreground:",
        ] {
            assert!(text.contains(want), "text report has no {want:?}: {text}");
        }
        let html = tmp.path().join("r.html");
        let o = Command::new(EMUWATCH)
            .args(["report", "--format", "html", "--out"])
            .arg(&html)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(o.status.success());
        let html = std::fs::read_to_string(&html).unwrap();
        assert!(
            html.contains("http GET tracker.names.test:"),
            "HTML timeline has no HTTP request"
        );
        assert!(
            html.contains("/collect?device_id=EMW-4242&amp;v=1"),
            "HTML has no request path"
        );
    }
}

/// Android: an app's `getaddrinfo` goes to netd over `/dev/socket/dnsproxyd`. The simulated
/// app writes bionic's request there (in a mount namespace with a private /dev: the machine's
/// /dev is never touched); the request is a `dns` event with `via: dnsproxyd` and the name.
#[test]
fn dnsproxyd_requests_name_what_the_app_resolves() {
    require_root();
    let tmp = tempdir();
    let dir = tmp.path().join("session");
    let output = Command::new(EMUWATCH)
        .args(["record", "--quiet", "--out"])
        .arg(&dir)
        .args(["--", "unshare", "-m", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs none /dev && mkdir /dev/socket && exec {SIMAPP} steps dnsproxyd=log-va.example-tracker.test dnsproxyd=second.example.test"
        ))
        .output()
        .expect("run emuwatch");
    let sess = load(&dir, output);
    assert!(sess.output.status.success(), "{}", sess.dump());
    let did = sess.did("dnsproxyd");
    assert_eq!(did.len(), 2, "{}", sess.dump());
    let pid = did[0]["pid"].as_u64().unwrap();
    let got: Vec<(String, String, String)> = sess
        .by_pid("dns", pid)
        .iter()
        .map(|e| {
            (
                e["via"].as_str().unwrap().to_string(),
                e["qtype"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |n: &str| {
        (
            "dnsproxyd".to_string(),
            "getaddrinfo".to_string(),
            n.to_string(),
        )
    };
    assert_eq!(
        got,
        [
            want("log-va.example-tracker.test"),
            want("second.example.test")
        ],
        "{}",
        sess.dump()
    );
    // A unix socket is not a destination: no connect events for it.
    assert!(sess.by_pid("connect", pid).is_empty(), "{}", sess.dump());
}

/// Android: apps resolve through netd, a process that is not a target: the app writes
/// `getaddrinfo NAME` to `/dev/socket/dnsproxyd`, netd sends the DNS packets and gets the
/// answers. A stand-in netd (`simapp netd`, named `netd`, resolving with the C library against
/// the loopback DNS server, in a mount namespace with a private /dev and resolv.conf) runs
/// outside the recorded tree; the app (a target) joins its mount namespace. With resolvers on
/// (the default `--resolver netd`) the app's connect to the address netd got is named by
/// netd's answer for the name the app asked for (`host_via: dnsproxyd`), a connect to an
/// address netd resolved for someone else by the system-wide table (`host_via: resolver`);
/// netd's DNS messages are `dns` events `via: resolver` with no app, and nothing else of
/// netd is recorded. With `--resolver none` the connects are not named and netd is not seen.
/// Both ways netd is found: already running when the recording starts (/proc), and started
/// after it (the kernel sees it take the name).
#[test]
fn resolver_answers_name_the_apps_connects() {
    require_root();
    require_tools(&["unshare", "nsenter", "mount"], "");
    names_dns_server();
    let listener = TcpListener::bind(("127.0.0.78", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let listener2 = TcpListener::bind(("127.0.0.79", port)).unwrap();
    for l in [listener, listener2] {
        std::thread::spawn(move || for _ in l.incoming() {});
    }
    for (resolvers_on, netd_first) in [(true, true), (true, false), (false, true)] {
        let what = format!("resolvers on: {resolvers_on}, netd started first: {netd_first}");
        let tmp = tempdir();
        let netd_pidfile = tmp.path().join("netd.pid");
        let gate = tmp.path().join("go");
        let script = in_private_resolver(
            tmp.path(),
            "nameserver 127.0.0.77\noptions timeout:3 attempts:1\n",
            &format!(
                "mount -t tmpfs none /dev && mkdir /dev/socket || exit 93\nexec {SIMAPP} netd --pidfile {}",
                netd_pidfile.display()
            ),
        );
        let start_netd = || {
            Command::new("unshare")
                .args(["-m", "sh"])
                .arg(&script)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start netd")
        };
        let mut netd = None;
        if netd_first {
            netd = Some(start_netd());
            wait_file(&netd_pidfile);
        }
        // The app waits for the gate, then joins netd's mount namespace.
        let app = format!(
            "while [ ! -e {gate} ]; do sleep 0.05; done\n\
             exec nsenter -m -t \"$(cat {pidfile})\" {SIMAPP} steps dnsproxyd=tracker.names.test connect=tcp4,127.0.0.78,{port} connect=tcp4,127.0.0.79,{port}",
            gate = gate.display(),
            pidfile = netd_pidfile.display()
        );
        let dir = tmp.path().join("session");
        let mut args: Vec<&str> = Vec::new();
        if !resolvers_on {
            args.extend(["--resolver", "none"]);
        }
        let mut rec_args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        rec_args.extend(["--".into(), "sh".into(), "-c".into(), app]);
        let rec_refs: Vec<&str> = rec_args.iter().map(String::as_str).collect();
        let emuwatch = start_recording(&dir, &rec_refs);
        if !netd_first {
            netd = Some(start_netd());
            wait_file(&netd_pidfile);
        }
        let mut netd = netd.unwrap();
        let netd_pid = read_pid(&netd_pidfile) as u64;
        // Someone else (this test, not a target) asks netd for api.names.test first.
        {
            use std::io::{Read, Write};
            let mut c = std::os::unix::net::UnixStream::connect(format!(
                "/proc/{netd_pid}/root/dev/socket/dnsproxyd"
            ))
            .expect("connect to netd");
            c.write_all(b"getaddrinfo api.names.test ^ 1024 0 1 6\0")
                .unwrap();
            let mut b = [0u8; 64];
            let n = c.read(&mut b).unwrap();
            assert_eq!(&b[..n], b"222 127.0.0.79\0", "{what}");
        }
        std::fs::write(&gate, "").unwrap();
        let output = emuwatch.wait_with_output().expect("wait emuwatch");
        unsafe { kill(netd.id() as i32, 9) };
        let netd_out = {
            let _ = netd.wait();
            let mut s = String::new();
            use std::io::Read;
            netd.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            s
        };
        let sess = load_with(&dir, output, &args);
        assert!(sess.output.status.success(), "{what}: {}", sess.dump());
        assert_eq!(sess.info["complete"], true, "{what}: {}", sess.info);
        let want_resolvers: Value = if resolvers_on {
            serde_json::json!(["netd"])
        } else {
            Value::Null
        };
        assert_eq!(sess.info["target"]["resolvers"], want_resolvers, "{what}");
        assert_eq!(netd_out.lines().count(), 2, "{what}: netd said {netd_out}");
        let dns_did = sess.did("dnsproxyd");
        assert_eq!(dns_did.len(), 1, "{what}: {}", sess.dump());
        let app_pid = dns_did[0]["pid"].as_u64().unwrap();
        // The app's request, as before.
        let app_dns: Vec<(String, String)> = sess
            .by_pid("dns", app_pid)
            .iter()
            .map(|e| {
                (
                    e["via"].as_str().unwrap().to_string(),
                    e["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            app_dns,
            [("dnsproxyd".to_string(), "tracker.names.test".to_string())],
            "{what}: {}",
            sess.dump()
        );
        // The connects, named (or not) by netd's answers.
        let connects: Vec<(String, Value, Value, Value)> = sess
            .by_pid("connect", app_pid)
            .iter()
            .map(|e| {
                assert_eq!(e["result"], 0, "{e}");
                (
                    e["daddr"].as_str().unwrap().to_string(),
                    e["host"].clone(),
                    e["host_source"].clone(),
                    e["host_via"].clone(),
                )
            })
            .collect();
        let want: Vec<(String, Value, Value, Value)> = if resolvers_on {
            vec![
                (
                    "127.0.0.78".into(),
                    "tracker.names.test".into(),
                    "dns".into(),
                    "dnsproxyd".into(),
                ),
                (
                    "127.0.0.79".into(),
                    "api.names.test".into(),
                    "dns".into(),
                    "resolver".into(),
                ),
            ]
        } else {
            vec![
                ("127.0.0.78".into(), Value::Null, Value::Null, Value::Null),
                ("127.0.0.79".into(), Value::Null, Value::Null, Value::Null),
            ]
        };
        assert_eq!(connects, want, "{what}: {}", sess.dump());
        // netd: its DNS messages only, no app, nothing else.
        let of_netd: Vec<&Value> = sess
            .events
            .iter()
            .filter(|e| e["pid"] == netd_pid)
            .collect();
        let mut got: Vec<String> = of_netd
            .iter()
            .map(|e| {
                assert_eq!(e["kind"], "dns", "{what}: {e}");
                assert_eq!(e["via"], "resolver", "{e}");
                assert_eq!(e["comm"], "netd", "{e}");
                assert!(e.get("app").is_none() && e.get("phase").is_none(), "{e}");
                assert_eq!(e["resolver"], "127.0.0.77", "{e}");
                assert_eq!(e["resolver_port"], 53, "{e}");
                assert_eq!(e["proto"], "udp", "{e}");
                assert!(e.get("conn_id").is_none(), "{e}");
                format!(
                    "{} {} {} {}",
                    e["dir"].as_str().unwrap(),
                    e["name"].as_str().unwrap(),
                    e["qtype"].as_str().unwrap(),
                    e["answers"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .map(|r| r["data"].as_str().unwrap_or("-").to_string())
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default()
                )
            })
            .collect();
        got.sort();
        let want: Vec<String> = if resolvers_on {
            [
                "answer api.names.test A edge.cdn.names.test,127.0.0.79",
                "answer api.names.test AAAA edge.cdn.names.test",
                "answer tracker.names.test A 127.0.0.78",
                "answer tracker.names.test AAAA ",
                "query api.names.test A ",
                "query api.names.test AAAA ",
                "query tracker.names.test A ",
                "query tracker.names.test AAAA ",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        } else {
            Vec::new()
        };
        assert_eq!(got, want, "{what}: {}", sess.dump());
        // The reports do not make netd an app.
        let report = Command::new(EMUWATCH)
            .args(["report", "--format", "json"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(report.status.success(), "{what}");
        let report: Value = serde_json::from_slice(&report.stdout).unwrap();
        let apps: Vec<&str> = report["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["app"].as_str().unwrap())
            .collect();
        assert!(
            !apps.iter().any(|a| *a == "netd" || *a == "(unattributed)"),
            "{what}: {apps:?}"
        );
        // The reports say which names came from a resolver's answer, and how.
        let named: Vec<(String, String)> = report["apps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|a| a["destinations"].as_array().unwrap())
            .filter_map(|d| Some((d["host"].as_str()?.into(), d["host_via"].as_str()?.into())))
            .collect();
        let text = Command::new(EMUWATCH)
            .arg("report")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(text.status.success(), "{what}");
        let text = String::from_utf8(text.stdout).unwrap();
        if resolvers_on {
            assert_eq!(
                named,
                [
                    ("tracker.names.test".into(), "dnsproxyd".into()),
                    ("api.names.test".into(), "resolver".into())
                ],
                "{what}"
            );
            for shown in [
                "tracker.names.test (dns via dnsproxyd)",
                "api.names.test (dns via resolver)",
            ] {
                assert!(text.contains(shown), "{what}: {shown} not in\n{text}");
            }
        } else {
            assert!(named.is_empty(), "{what}: {named:?}");
        }
        // The export has a column for every field of these lines.
        let export = Command::new(EMUWATCH)
            .arg("export")
            .arg(&dir)
            .args(["--format", "parquet", "--out"])
            .arg(tmp.path().join("export"))
            .output()
            .unwrap();
        assert!(
            export.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&export.stderr)
        );
    }
}
