//! The emulator workflow scripts (scripts/emulator-start.sh, guest-run.sh, host-record.sh)
//! against a fake `adb` and a fake `emulator` placed on PATH: they record every call and
//! serve canned answers (packages.list, pidof, boot state, a session made "in the guest").
//! Host mode records a real process named like the emulator's engine on the real kernel.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const EMUWATCH: &str = env!("CARGO_BIN_EXE_emuwatch");
const SIMAPP: &str = env!("CARGO_BIN_EXE_emuwatch-simapp");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const FAKE_ADB: &str = r#"#!/bin/bash
# Fake adb: logs its arguments, keeps a guest file system under $FAKE_ADB_ROOT.
echo "$*" >> "$FAKE_ADB_LOG"
[ "$1" = -s ] && shift 2
g="$FAKE_ADB_ROOT"
case "$1" in
  root) echo "restarting adbd as root" ;;
  wait-for-device) ;;
  push) mkdir -p "$g$(dirname "$3")"; cp -r "$2" "$g$3"; echo "$2: 1 file pushed" ;;
  pull) [ -e "$g$2" ] || { echo "adb: error: remote object '$2' does not exist" >&2; exit 1; }
        cp -r "$g$2" "$3" ;;
  shell) shift
    case "$1" in
      getprop) echo 1 ;;
      id) echo 0 ;;
      cat) cat "$g$2" ;;
      pidof) echo "${FAKE_PIDOF:-4242}" ;;
      mkdir) shift; for d in "$@"; do [ "$d" = -p ] || mkdir -p "$g$d"; done ;;
      rm) shift; for d in "$@"; do case "$d" in -*) ;; *) rm -rf "$g$d" ;; esac; done ;;
      chmod) ;;
      */emuwatch)
        # `emuwatch run SCENARIO --out DIR` in the guest: a canned session, exit 1 (violation).
        [ -x "$g$1" ] || { echo "/system/bin/sh: $1: not found" >&2; exit 127; }
        out=""; prev=""; for a in "$@"; do [ "$prev" = --out ] && out="$a"; prev="$a"; done
        mkdir -p "$g$out"; cp -r "$FAKE_SESSION"/. "$g$out"/
        echo "result: FAIL — 1 expectation(s) violated (exit 1)"; exit 1 ;;
      *) echo "fake adb: unexpected shell command: $*" >&2; exit 127 ;;
    esac ;;
  *) echo "fake adb: unexpected command: $*" >&2; exit 127 ;;
esac
"#;

const FAKE_EMULATOR: &str = r#"#!/bin/bash
echo "$*" >> "$FAKE_EMULATOR_LOG"
exec sleep 30
"#;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::Builder::new()
            .prefix("emuwatch-test-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, text) in [("adb", FAKE_ADB), ("emulator", FAKE_EMULATOR)] {
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let guest = dir.path().join("guest");
        std::fs::create_dir_all(guest.join("data/system")).unwrap();
        std::fs::write(
            guest.join("data/system/packages.list"),
            "com.example.app 10123 0 /data/user/0/com.example.app default:targetSdkVersion=34 3003\n",
        )
        .unwrap();
        Fake { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A script run with the fakes first on PATH (or, `with_fakes` false, with no SDK tools).
    fn script(&self, name: &str, args: &[&str], with_fakes: bool) -> Command {
        let mut c = Command::new("bash");
        c.arg(root().join("scripts").join(name)).args(args);
        let path = if with_fakes {
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                self.path("bin").display()
            )
        } else {
            "/usr/sbin:/usr/bin:/sbin:/bin".to_string()
        };
        c.env("PATH", path)
            .env("FAKE_ADB_LOG", self.path("adb.log"))
            .env("FAKE_EMULATOR_LOG", self.path("emulator.log"))
            .env("FAKE_ADB_ROOT", self.path("guest"))
            .env(
                "FAKE_SESSION",
                root().join("tests/fixtures/sessions/spyapp"),
            )
            .env_remove("ANDROID_HOME")
            .env_remove("ANDROID_SDK_ROOT")
            .env_remove("ANDROID_SERIAL")
            .env_remove("ADB")
            .env_remove("EMULATOR")
            .stdin(Stdio::null());
        c
    }

    fn adb_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("adb.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn guest_run_pushes_runs_and_pulls_the_session() {
    let f = Fake::new();
    let scenario = root().join("scenarios/android-background.toml");
    let out = f.path("pulled");
    let o = f
        .script(
            "guest-run.sh",
            &[
                scenario.to_str().unwrap(),
                "--binary",
                EMUWATCH,
                "--out",
                out.to_str().unwrap(),
                "--serial",
                "emulator-5554",
            ],
            true,
        )
        .output()
        .unwrap();
    // The run in the guest found a violation: its exit status comes through.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let calls = f.adb_calls();
    let d = "/data/local/tmp/emuwatch";
    let want = vec![
        "-s emulator-5554 root".to_string(),
        "-s emulator-5554 wait-for-device".to_string(),
        "-s emulator-5554 shell id -u".to_string(),
        "-s emulator-5554 shell cat /data/system/packages.list".to_string(),
        format!("-s emulator-5554 shell mkdir -p {d}/sessions"),
        format!("-s emulator-5554 shell rm -rf {d}/sessions/android-background"),
        format!("-s emulator-5554 push {EMUWATCH} {d}/emuwatch"),
        format!("-s emulator-5554 shell chmod 755 {d}/emuwatch"),
        format!(
            "-s emulator-5554 push {} {d}/android-background.toml",
            scenario.display()
        ),
        format!(
            "-s emulator-5554 push {} {d}/demo-categories.toml",
            root().join("scenarios/demo-categories.toml").display()
        ),
        format!(
            "-s emulator-5554 shell {d}/emuwatch run {d}/android-background.toml --out {d}/sessions/android-background"
        ),
        format!(
            "-s emulator-5554 pull {d}/sessions/android-background {}",
            out.display()
        ),
    ];
    assert_eq!(calls, want, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("result: FAIL"));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("session: {}", out.display())));
    // The pulled session is a session: it can be reported on here.
    assert!(out.join("session.json").exists() && out.join("events.jsonl").exists());
    let r = Command::new(EMUWATCH)
        .args(["report", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", text(&r));
}

#[test]
fn guest_run_fails_clearly() {
    let f = Fake::new();
    let scenario = root().join("scenarios/android-background.toml");
    let args = [scenario.to_str().unwrap(), "--binary", EMUWATCH];
    // No adb anywhere.
    let o = f.script("guest-run.sh", &args, false).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("adb not found") && err.contains("platform-tools"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The package is not installed in the guest: nothing is pushed.
    std::fs::write(
        f.path("guest/data/system/packages.list"),
        "com.other 10001 0 /data default 3003\n",
    )
    .unwrap();
    let o = f.script("guest-run.sh", &args, true).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("package com.example.app is not installed"),
        "{}",
        text(&o)
    );
    assert!(!f.adb_calls().iter().any(|c| c.contains("push")));
    // No guest binary built.
    let o = f
        .script(
            "guest-run.sh",
            &[
                scenario.to_str().unwrap(),
                "--binary",
                "/nonexistent/emuwatch",
            ],
            true,
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("scripts/build-guest.sh"),
        "{}",
        text(&o)
    );
}

#[test]
fn emulator_start_boots_headless_and_restarts_adbd_as_root() {
    let f = Fake::new();
    let o = f
        .script(
            "emulator-start.sh",
            &[
                "--avd",
                "test_avd",
                "--timeout",
                "20",
                "--log",
                f.path("emu.log").to_str().unwrap(),
            ],
            true,
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let pid: i32 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("the emulator's pid");
    let emu = std::fs::read_to_string(f.path("emulator.log")).unwrap();
    unsafe { kill(pid, 9) };
    assert!(
        emu.starts_with("-avd test_avd -no-window -no-audio"),
        "{emu}"
    );
    let calls = f.adb_calls();
    assert_eq!(
        calls,
        [
            "wait-for-device",
            "shell getprop sys.boot_completed",
            "root",
            "wait-for-device",
            "shell id -u"
        ],
        "{}",
        text(&o)
    );
    // Without the SDK tools, or without an AVD name: one clear line, exit 2.
    for (args, with_fakes, needle) in [
        (vec!["--avd", "x"], false, "emulator not found"),
        (vec![], true, "--avd NAME"),
    ] {
        let o = f
            .script("emulator-start.sh", &args, with_fakes)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{}",
            text(&o)
        );
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn geteuid() -> u32;
}

/// Host mode on the real kernel: a process named like the emulator's engine is found and
/// recorded with its children.
#[test]
fn host_record_finds_the_emulator_process_and_records_it() {
    assert_eq!(
        unsafe { geteuid() },
        0,
        "recording needs root (cargo xtask test)"
    );
    let f = Fake::new();
    let qemu = f.path("qemu-system-x86_64");
    std::fs::copy(SIMAPP, &qemu).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let go = f.path("go");
    let mut engine = Command::new(&qemu)
        .arg("steps")
        .arg(format!("waitfile={}", go.display()))
        .arg(format!("connect=tcp4,127.0.0.1,{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let out = f.path("session");
    let mut rec = f
        .script(
            "host-record.sh",
            &[
                "--duration",
                "30s",
                "--out",
                out.to_str().unwrap(),
                "--",
                "--quiet",
            ],
            true,
        )
        .env("EMUWATCH", EMUWATCH)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !out.join("control.sock").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the recording did not start"
        );
        if let Ok(Some(_)) = rec.try_wait() {
            panic!(
                "host-record.sh ended early: {}",
                text(&rec.wait_with_output().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&go, "").unwrap();
    let _ = engine.wait();
    let o = rec.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("pid {}", engine.id())),
        "{}",
        text(&o)
    );
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    let connect = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["kind"] == "connect")
        .unwrap_or_else(|| panic!("no connect recorded:\n{events}"));
    assert_eq!(connect["dport"], port);
    assert_eq!(connect["comm"], "qemu-system-x86");
    // No emulator running: a clear error.
    let o = f
        .script("host-record.sh", &[], true)
        .env("EMUWATCH", EMUWATCH)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no running emulator"),
        "{}",
        text(&o)
    );
}

/// build-guest.sh refuses what it cannot build with one line and exit 2, before it installs or
/// builds anything.
#[test]
fn build_guest_rejects_unknown_arguments() {
    let f = Fake::new();
    for (args, needle) in [
        (&["--arch", "sparc"][..], "unsupported --arch sparc"),
        (&["--arch=mips"][..], "unsupported --arch mips"),
        (&["--arch"][..], "--arch needs x86_64 or arm64"),
        (&["--static"][..], "unknown argument --static"),
    ] {
        let o = f.script("build-guest.sh", args, false).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {}", text(&o));
        assert_eq!(err.lines().count(), 1, "{args:?}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{args:?}: {}", text(&o));
    }
}

/// The arm64 guest binaries, cross-built from Debian packages and run under qemu-user.
/// Slow on a cold cache (a full aarch64 release build; it may apt-install the cross
/// toolchain): `cargo test --test emulator_scripts -- --ignored build_guest_arm64`.
#[test]
#[ignore = "cross-builds aarch64 emuwatch (minutes on a cold cache); needs root and qemu-user-static"]
fn build_guest_arm64_runs_under_qemu_user() {
    let qemu = ["qemu-aarch64-static", "qemu-aarch64"]
        .into_iter()
        .find(|q| {
            Command::new(q)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("qemu-aarch64-static not found (apt-get install qemu-user-static)");
    let o = Command::new("bash")
        .arg(root().join("scripts/build-guest.sh"))
        .args(["--arch", "arm64", "--with-simapp"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let paths: Vec<&str> = out.lines().collect();
    let dir = root().join("target/aarch64-unknown-linux-gnu/release");
    assert_eq!(
        paths,
        [
            dir.join("emuwatch").to_str().unwrap(),
            dir.join("emuwatch-simapp").to_str().unwrap()
        ],
        "{}",
        text(&o)
    );
    for p in &paths {
        let o = Command::new("file").arg("-b").arg(p).output().unwrap();
        let desc = String::from_utf8_lossy(&o.stdout);
        assert!(desc.contains("ARM aarch64"), "{p}: {desc}");
        assert!(desc.contains("statically linked"), "{p}: {desc}");
    }
    // The report of a recorded session is the same as the host build's.
    let session = root().join("tests/fixtures/sessions/spyapp");
    let arm = Command::new(qemu)
        .arg(paths[0])
        .arg("report")
        .arg(&session)
        .output()
        .unwrap();
    assert!(arm.status.success(), "{}", text(&arm));
    let host = Command::new(EMUWATCH)
        .arg("report")
        .arg(&session)
        .output()
        .unwrap();
    assert!(host.status.success(), "{}", text(&host));
    assert_eq!(
        String::from_utf8_lossy(&arm.stdout),
        String::from_utf8_lossy(&host.stdout)
    );
    // The workload runs: a read and a loopback connect (refused).
    let o = Command::new(qemu)
        .arg(paths[1])
        .args([
            "steps",
            "read=/proc/self/comm,64",
            "connect=tcp4,127.0.0.1,9",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", text(&o));
    assert_eq!(lines[0]["step"], "read");
    assert_eq!(lines[1]["step"], "connect");
    // qemu-user has no bpf(2): doctor gets as far as loading and says so.
    let o = Command::new(qemu)
        .arg(paths[0])
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("(aarch64)"), "{}", text(&o));
    assert!(
        out.contains("FAIL load") && out.contains("Function not implemented"),
        "{}",
        text(&o)
    );
}
