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

#[path = "common/mod.rs"]
mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const FAKE_ADB: &str = r#"#!/bin/bash
# Fake adb: logs its arguments, keeps a guest file system under $FAKE_ADB_ROOT: properties in
# .props/NAME, the SELinux mode in .selinux, `uname -r` in .uname, tracefs/BTF as directories.
# FAKE_UID is what `id -u` says after `adb root` (2000: a Google Play image, no root).
echo "$*" >> "$FAKE_ADB_LOG"
[ "$1" = -s ] && shift 2
g="$FAKE_ADB_ROOT"
uid="${FAKE_UID:-0}"
case "$1" in
  root) if [ "$uid" = 0 ]; then echo "restarting adbd as root"
        else echo "adbd cannot run as root in production builds"; fi ;;
  wait-for-device) ;;
  push) mkdir -p "$g$(dirname "$3")"; cp -r "$2" "$g$3"; echo "$2: 1 file pushed" ;;
  pull) [ -e "$g$2" ] || { echo "adb: error: remote object '$2' does not exist" >&2; exit 1; }
        cp -r "$g$2" "$3" ;;
  shell) shift
    # Like the guest: adb joins the words with spaces and the guest's sh splits the line again.
    eval "set -- $*" || { echo "/system/bin/sh: syntax error: $*" >&2; exit 2; }
    case "$1" in
      getprop) cat "$g/.props/$2" 2>/dev/null || echo ;;
      id) echo "$uid" ;;
      uname) cat "$g/.uname" ;;
      getenforce) cat "$g/.selinux" ;;
      setenforce)
        [ "$uid" = 0 ] || { echo "setenforce: Couldn't set enforcing status to '$2': Permission denied" >&2; exit 1; }
        case "$2" in 0) echo Permissive ;; 1) echo Enforcing ;; esac > "$g/.selinux" ;;
      test) test "$2" "$g$3" ;;
      cat) cat "$g$2" ;;
      pidof) echo "${FAKE_PIDOF:-4242}" ;;
      mkdir) shift; for d in "$@"; do [ "$d" = -p ] || mkdir -p "$g$d"; done ;;
      rm) shift; for d in "$@"; do case "$d" in -*) ;; *) rm -rf "$g$d" ;; esac; done ;;
      chmod) ;;
      */emuwatch)
        [ -x "$g$1" ] || { echo "/system/bin/sh: $1: not found" >&2; exit 127; }
        case "$2" in
          doctor)
            echo "kernel      $(cat "$g/.uname") (x86_64)"
            if [ "${FAKE_DOCTOR_EXIT:-0}" = 0 ]; then
              echo "base probe set works: 21/23 probes attached (19 required)"
            else
              echo "  FAIL file       raw_syscalls/sys_enter                       sys_enter"
              echo "base probe set INCOMPLETE: 20/23 probes attached (19 required)"
            fi
            exit "${FAKE_DOCTOR_EXIT:-0}" ;;
          run)
            # `emuwatch run SCENARIO --out DIR` in the guest: a canned session, exit 1
            # (violation). With FAKE_RUN_STARTED it says it started, then runs until killed.
            [ -z "${FAKE_RUN_ARGS:-}" ] || printf '%s\n' "$@" > "$FAKE_RUN_ARGS"
            out=""; prev=""; for a in "$@"; do [ "$prev" = --out ] && out="$a"; prev="$a"; done
            mkdir -p "$g$out"; cp -r "$FAKE_SESSION"/. "$g$out"/
            if [ -n "${FAKE_RUN_STARTED:-}" ]; then : > "$FAKE_RUN_STARTED"; sleep 30; fi
            echo "result: FAIL — 1 expectation(s) violated (exit 1)"; exit 1 ;;
          *) echo "fake adb: unexpected emuwatch command: $*" >&2; exit 127 ;;
        esac ;;
      *) echo "fake adb: unexpected shell command: $*" >&2; exit 127 ;;
    esac ;;
  *) echo "fake adb: unexpected command: $*" >&2; exit 127 ;;
esac
"#;

const GUEST_KERNEL: &str = "6.1.23-android14-4-00257-g7e35917775b8-ab9964412";

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
        let f = Fake { dir };
        // An x86_64 "Google APIs" image of API 34 (userdebug, adbd can be root) on a GKI
        // kernel: SELinux enforcing, tracefs at /sys/kernel/tracing with raw_syscalls but no
        // syscalls events, BTF present.
        for (k, v) in [
            ("ro.build.type", "userdebug"),
            ("ro.product.cpu.abi", "x86_64"),
            ("ro.build.version.sdk", "34"),
            ("sys.boot_completed", "1"),
        ] {
            f.set_prop(k, v);
        }
        f.set_selinux("Enforcing");
        std::fs::write(guest.join(".uname"), format!("{GUEST_KERNEL}\n")).unwrap();
        f.guest_dir("sys/kernel/tracing/events/raw_syscalls", true);
        f.guest_dir("sys/kernel/btf/vmlinux", true);
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn set_prop(&self, name: &str, value: &str) {
        let d = self.path("guest/.props");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), format!("{value}\n")).unwrap();
    }

    fn set_selinux(&self, mode: &str) {
        std::fs::write(self.path("guest/.selinux"), format!("{mode}\n")).unwrap();
    }

    fn selinux(&self) -> String {
        std::fs::read_to_string(self.path("guest/.selinux"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Creates (or, `present` false, removes) a directory in the fake guest.
    fn guest_dir(&self, p: &str, present: bool) {
        let d = self.path("guest").join(p);
        if present {
            std::fs::create_dir_all(d).unwrap();
        } else if d.exists() {
            std::fs::remove_dir_all(d).unwrap();
        }
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

    /// `guest-run.sh SCENARIO --binary EMUWATCH --out OUT --permissive REST...` with the fakes.
    fn guest_run(&self, scenario: &Path, out: &Path, rest: &[&str]) -> Command {
        let mut c = self.script("guest-run.sh", &[], true);
        c.arg(scenario)
            .args(["--binary", EMUWATCH, "--out"])
            .arg(out)
            .arg("--permissive")
            .args(rest);
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

/// The adb calls of a preflight on the default fake guest (x86_64, API 34, root, GKI kernel
/// with tracefs at /sys/kernel/tracing, raw_syscalls only, BTF), up to the getenforce.
fn preflight_start(s: &str) -> Vec<String> {
    [
        "root",
        "wait-for-device",
        "shell getprop ro.build.type",
        "shell getprop ro.product.cpu.abi",
        "shell getprop ro.build.version.sdk",
        "shell id -u",
    ]
    .iter()
    .map(|c| format!("{s}{c}"))
    .collect()
}

/// The kernel checks after getenforce on the default fake guest.
fn kernel_checks(s: &str) -> Vec<String> {
    [
        "shell uname -r",
        "shell test -d /sys/kernel/tracing/events",
        "shell test -d /sys/kernel/tracing/events/syscalls",
        "shell test -d /sys/kernel/tracing/events/raw_syscalls",
        "shell test -e /sys/kernel/btf/vmlinux",
    ]
    .iter()
    .map(|c| format!("{s}{c}"))
    .collect()
}

/// The one error line (exit 2): the last line of stderr, and the only one saying "error:".
fn error_line(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", text(o));
    assert_eq!(err.lines().last(), Some(errors[0]), "{}", text(o));
    errors[0]
        .strip_prefix("guest-run.sh: error: ")
        .unwrap_or_else(|| panic!("not an error line of guest-run.sh: {}", errors[0]))
        .to_string()
}

#[test]
fn guest_run_pushes_runs_and_pulls_the_session() {
    let f = Fake::new();
    let scenario = root().join("scenarios/android-background.toml");
    let out = f.path("pulled");
    let o = f
        .guest_run(&scenario, &out, &["--serial", "emulator-5554"])
        .output()
        .unwrap();
    // The run in the guest found a violation: its exit status comes through.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let calls = f.adb_calls();
    let d = "/data/local/tmp/emuwatch";
    let s = "-s emulator-5554 ";
    let mut want = preflight_start(s);
    want.push(format!("{s}shell cat /data/system/packages.list"));
    want.push(format!("{s}shell getenforce"));
    want.extend(kernel_checks(s));
    want.extend([
        format!("{s}shell mkdir -p {d}/sessions"),
        format!("{s}push {EMUWATCH} {d}/emuwatch"),
        format!("{s}shell chmod 755 {d}/emuwatch"),
        format!("{s}shell rm -rf {d}/sessions/android-background"),
        format!("{s}push {} {d}/android-background.toml", scenario.display()),
        format!(
            "{s}push {} {d}/demo-categories.toml",
            root().join("scenarios/demo-categories.toml").display()
        ),
        // SELinux permissive only around the doctor and the run, enforcing again before
        // the pull although the run failed (exit 1).
        format!("{s}shell setenforce 0"),
        format!("{s}shell {d}/emuwatch doctor"),
        format!(
            "{s}shell {d}/emuwatch run {d}/android-background.toml --out {d}/sessions/android-background"
        ),
        format!("{s}shell setenforce 1"),
        format!("{s}pull {d}/sessions/android-background {}", out.display()),
    ]);
    assert_eq!(calls, want, "{}", text(&o));
    assert_eq!(f.selinux(), "Enforcing");
    // The doctor's output comes first, then the run's.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let doctor = stdout.find("base probe set works").expect("doctor output");
    let result = stdout.find("result: FAIL").expect("run output");
    assert!(doctor < result, "{}", text(&o));
    // What the preflight found is said.
    let err = String::from_utf8_lossy(&o.stderr);
    for needle in [
        "guest: userdebug build, ABI x86_64, API 34; adbd runs as root",
        "selinux: Enforcing: set to Permissive for the doctor and the run, restored afterwards",
        &format!("kernel: {GUEST_KERNEL}"),
        "tracefs: /sys/kernel/tracing",
        "no events/syscalls (GKI kernel, no CONFIG_FTRACE_SYSCALLS): the raw-syscalls path will be used",
        "btf: /sys/kernel/btf/vmlinux present",
        "doctor: passed",
        "SELinux restored to Enforcing",
        &format!("session: {}", out.display()),
    ] {
        assert!(err.contains(needle), "{needle:?} missing:\n{}", text(&o));
    }
    // The pulled session is a session: it can be reported on here.
    assert!(out.join("session.json").exists() && out.join("events.jsonl").exists());
    let r = Command::new(EMUWATCH)
        .args(["report", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", text(&r));
}

/// `adb shell` hands the guest's sh one line: a scenario whose file name has a space, a quote
/// and a `;`, and labels with spaces after `--`, reach `emuwatch run` in the guest as the same
/// words, and nothing in them runs as a command there (the fake guest splits the line as sh).
#[test]
fn guest_run_passes_names_and_labels_as_whole_words() {
    let f = Fake::new();
    let name = "my app's run;touch pwned";
    let scenario = f.path(&format!("{name}.toml"));
    std::fs::copy(root().join("scenarios/android-background.toml"), &scenario).unwrap();
    let out = f.path("pulled");
    let cwd = f.path("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let run_args = f.path("run-args");
    let extra = [
        "--",
        "--label",
        "device=Pixel 7 Pro",
        "--label=note=it's $HOME; `id`",
    ];
    let o = f
        .guest_run(&scenario, &out, &extra)
        .current_dir(&cwd)
        .env("FAKE_RUN_ARGS", &run_args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let d = "/data/local/tmp/emuwatch";
    let got: Vec<String> = std::fs::read_to_string(&run_args)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let want = [
        format!("{d}/emuwatch"),
        "run".into(),
        format!("{d}/{name}.toml"),
        "--out".into(),
        format!("{d}/sessions/{name}"),
        "--label".into(),
        "device=Pixel 7 Pro".into(),
        "--label=note=it's $HOME; `id`".into(),
    ];
    assert_eq!(got, want, "{}", text(&o));
    // The scenario and the session went to and came back from the guest under that name.
    assert!(f.path(&format!("guest{d}/{name}.toml")).exists());
    assert!(out.join("session.json").exists(), "{}", text(&o));
    // No word was run as a command: no `pwned` file, in the script's directory or the fake's.
    for dir in [&cwd, &f.path(""), &f.path("guest")] {
        assert!(
            !dir.join("pwned").exists(),
            "{}: {}",
            dir.display(),
            text(&o)
        );
    }
}

/// A Google Play image: adbd stays uid 2000. One line names an image that has root, for the
/// guest's API level and ABI; nothing is pushed and SELinux is not touched.
#[test]
fn guest_run_without_root_names_an_image_with_root() {
    let scenario = root().join("scenarios/android-background.toml");
    for (abi, sdk, image) in [
        (
            "x86_64",
            "34",
            "system-images;android-34;google_apis;x86_64",
        ),
        (
            "arm64-v8a",
            "35",
            "system-images;android-35;google_apis;arm64-v8a",
        ),
    ] {
        let f = Fake::new();
        f.set_prop("ro.build.type", "user");
        f.set_prop("ro.product.cpu.abi", abi);
        f.set_prop("ro.build.version.sdk", sdk);
        let o = f
            .script(
                "guest-run.sh",
                &[
                    scenario.to_str().unwrap(),
                    "--binary",
                    EMUWATCH,
                    "--permissive",
                ],
                true,
            )
            .env("FAKE_UID", "2000")
            .output()
            .unwrap();
        assert_eq!(
            error_line(&o),
            format!(
                "adbd cannot run as root on this image (ro.build.type=user, uid 2000): Google Play \
                 system images have no root; use a \"Google APIs\" or AOSP image instead, e.g. {image}"
            )
        );
        assert_eq!(f.adb_calls(), preflight_start(""), "{}", text(&o));
        assert_eq!(f.selinux(), "Enforcing");
    }
}

#[test]
fn guest_run_enforcing_selinux_needs_permissive() {
    let f = Fake::new();
    let scenario = root().join("scenarios/android-background.toml");
    let out = f.path("pulled");
    let args = [
        scenario.to_str().unwrap(),
        "--binary",
        EMUWATCH,
        "--out",
        out.to_str().unwrap(),
    ];
    // Enforcing, no --permissive: stop before anything is pushed or changed.
    let o = f.script("guest-run.sh", &args, true).output().unwrap();
    assert_eq!(
        error_line(&o),
        "SELinux is Enforcing in the guest, which blocks loading BPF programs outside \
         bpfloader: rerun with --permissive (setenforce 0 for the run, setenforce 1 afterwards)"
    );
    let mut want = preflight_start("");
    want.push("shell cat /data/system/packages.list".into());
    want.push("shell getenforce".into());
    assert_eq!(f.adb_calls(), want, "{}", text(&o));
    assert_eq!(f.selinux(), "Enforcing");
    // Permissive already: said, and no setenforce at all (with or without --permissive).
    for permissive in [false, true] {
        let f = Fake::new();
        f.set_selinux("Permissive");
        let mut a = args.to_vec();
        if permissive {
            a.push("--permissive");
        }
        let o = f.script("guest-run.sh", &a, true).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let calls = f.adb_calls();
        assert!(
            !calls.iter().any(|c| c.contains("setenforce")),
            "{calls:#?}"
        );
        assert!(
            calls.iter().any(|c| c.contains("emuwatch run")),
            "{calls:#?}"
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("selinux: Permissive already: left as is"),
            "{}",
            text(&o)
        );
        assert_eq!(f.selinux(), "Permissive");
    }
}

/// The doctor fails in the guest: its output is shown, one line says so, the scenario is not
/// run, and SELinux is enforcing again.
#[test]
fn guest_run_restores_selinux_when_doctor_fails() {
    let f = Fake::new();
    let scenario = root().join("scenarios/android-background.toml");
    let o = f
        .script(
            "guest-run.sh",
            &[
                scenario.to_str().unwrap(),
                "--binary",
                EMUWATCH,
                "--permissive",
            ],
            true,
        )
        .env("FAKE_DOCTOR_EXIT", "1")
        .output()
        .unwrap();
    assert_eq!(
        error_line(&o),
        "emuwatch doctor failed in the guest (exit 1): its FAIL lines above say what is \
         missing; nothing was run"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("FAIL file       raw_syscalls/sys_enter")
            && stdout.contains("base probe set INCOMPLETE"),
        "{}",
        text(&o)
    );
    let calls = f.adb_calls();
    let d = "/data/local/tmp/emuwatch";
    assert_eq!(
        calls[calls.len() - 3..],
        [
            "shell setenforce 0".to_string(),
            format!("shell {d}/emuwatch doctor"),
            "shell setenforce 1".to_string(),
        ],
        "{}",
        text(&o)
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(" run ") || c.starts_with("pull"))
    );
    assert_eq!(f.selinux(), "Enforcing");
}

/// Ctrl-C while the scenario runs in the guest: SELinux is set back to enforcing, exit 130.
#[test]
fn guest_run_restores_selinux_on_ctrl_c() {
    use std::os::unix::process::CommandExt;
    let f = Fake::new();
    let scenario = root().join("scenarios/android-background.toml");
    let started = f.path("run-started");
    let mut c = f.script(
        "guest-run.sh",
        &[
            scenario.to_str().unwrap(),
            "--binary",
            EMUWATCH,
            "--permissive",
            "--out",
            f.path("pulled").to_str().unwrap(),
        ],
        true,
    );
    c.env("FAKE_RUN_STARTED", &started)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A terminal's Ctrl-C reaches a shell whose SIGINT is not ignored (a test harness started
    // in the background may have it ignored, and bash cannot trap an inherited SIG_IGN).
    unsafe {
        c.pre_exec(|| {
            signal(2, 0);
            Ok(())
        });
    }
    let child = c.spawn().unwrap();
    let t = Instant::now();
    while !started.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the run did not start: {:?}",
            f.adb_calls()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Ctrl-C: SIGINT to the whole foreground process group.
    assert_eq!(unsafe { kill(-(child.id() as i32), 2) }, 0);
    let o = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "not interrupted");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let calls = f.adb_calls();
    let d = "/data/local/tmp/emuwatch";
    assert_eq!(
        calls[calls.len() - 4..],
        [
            "shell setenforce 0".to_string(),
            format!("shell {d}/emuwatch doctor"),
            format!(
                "shell {d}/emuwatch run {d}/android-background.toml --out {d}/sessions/android-background"
            ),
            "shell setenforce 1".to_string(),
        ],
        "{}",
        text(&o)
    );
    assert_eq!(f.selinux(), "Enforcing");
}

/// --preflight-only: every check and the doctor (with --syscall-probes passed on), a summary,
/// exit 0; no scenario needed and nothing run.
#[test]
fn guest_preflight_only_checks_and_runs_nothing() {
    let f = Fake::new();
    let o = f
        .script(
            "guest-run.sh",
            &[
                "--preflight-only",
                "--binary",
                EMUWATCH,
                "--permissive",
                "--syscall-probes",
                "raw",
            ],
            true,
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let d = "/data/local/tmp/emuwatch";
    let mut want = preflight_start("");
    want.push("shell getenforce".into());
    want.extend(kernel_checks(""));
    want.extend([
        format!("shell mkdir -p {d}/sessions"),
        format!("push {EMUWATCH} {d}/emuwatch"),
        format!("shell chmod 755 {d}/emuwatch"),
        "shell setenforce 0".to_string(),
        format!("shell {d}/emuwatch doctor --syscall-probes raw"),
        "shell setenforce 1".to_string(),
    ]);
    assert_eq!(f.adb_calls(), want, "{}", text(&o));
    assert_eq!(f.selinux(), "Enforcing");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let summary = &stdout[stdout.find("preflight passed:").expect("summary")..];
    for line in [
        "  guest      userdebug build, ABI x86_64, API 34; adbd runs as root",
        &format!("  binary     {EMUWATCH}"),
        "  selinux    Enforcing: set to Permissive for the doctor, restored afterwards (--permissive)",
        &format!("  kernel     {GUEST_KERNEL}"),
        "  tracefs    /sys/kernel/tracing",
        "  syscalls   no events/syscalls (GKI kernel, no CONFIG_FTRACE_SYSCALLS): the raw-syscalls path will be used",
        "  btf        /sys/kernel/btf/vmlinux present",
        "  doctor     passed",
    ] {
        assert!(summary.lines().any(|l| l == line), "{line:?}:\n{summary}");
    }
}

#[test]
fn guest_preflight_reports_the_tracefs_layout() {
    let preflight = |f: &Fake, extra: &[&str]| {
        let mut a = vec!["--preflight-only", "--binary", EMUWATCH, "--permissive"];
        a.extend(extra);
        f.script("guest-run.sh", &a, true).output().unwrap()
    };
    // tracefs only under debugfs, with per-syscall tracepoints; no BTF.
    let f = Fake::new();
    f.guest_dir("sys/kernel/tracing", false);
    f.guest_dir("sys/kernel/debug/tracing/events/syscalls", true);
    f.guest_dir("sys/kernel/debug/tracing/events/raw_syscalls", true);
    f.guest_dir("sys/kernel/btf", false);
    let o = preflight(&f, &["--syscall-probes", "per-syscall"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let calls = f.adb_calls();
    let checks = [
        "shell test -d /sys/kernel/tracing/events",
        "shell test -d /sys/kernel/debug/tracing/events",
        "shell test -d /sys/kernel/debug/tracing/events/syscalls",
        "shell test -d /sys/kernel/debug/tracing/events/raw_syscalls",
        "shell test -e /sys/kernel/btf/vmlinux",
    ];
    let at = calls
        .iter()
        .position(|c| c == checks[0])
        .expect("tracefs check");
    assert_eq!(calls[at..at + checks.len()], checks, "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for line in [
        "  tracefs    /sys/kernel/debug/tracing",
        "  syscalls   events/syscalls present (per-syscall tracepoints); events/raw_syscalls present",
        "  btf        /sys/kernel/btf/vmlinux missing (CONFIG_DEBUG_INFO_BTF): the doctor will say which probes need it",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?}:\n{}", text(&o));
    }
    assert!(
        calls
            .iter()
            .any(|c| c.ends_with("doctor --syscall-probes per-syscall"))
    );

    // Each failing layout: one line, exit 2, no doctor, SELinux untouched.
    let cases: [(&[&str], &[&str], &str); 4] = [
        (
            &["sys/kernel/tracing"],
            &[],
            "no tracefs in the guest (neither /sys/kernel/tracing/events nor \
             /sys/kernel/debug/tracing/events): mount it with adb shell mount -t tracefs \
             tracefs /sys/kernel/tracing",
        ),
        (
            &["sys/kernel/tracing/events/raw_syscalls"],
            &[],
            "the guest kernel has neither syscalls nor raw_syscalls tracepoints (no \
             /sys/kernel/tracing/events/syscalls or events/raw_syscalls): emuwatch cannot see \
             its file and network syscalls",
        ),
        (
            &[],
            &["--syscall-probes", "per-syscall"],
            "--syscall-probes per-syscall needs events/syscalls, which this guest kernel does \
             not have: use --syscall-probes raw or auto",
        ),
        (
            &[],
            &["--syscall-probes", "bogus"],
            "--syscall-probes takes auto, raw or per-syscall, not bogus",
        ),
    ];
    for (remove, extra, want) in cases {
        let f = Fake::new();
        for d in remove {
            f.guest_dir(d, false);
        }
        let o = preflight(&f, extra);
        assert_eq!(error_line(&o), want);
        let calls = f.adb_calls();
        assert!(
            !calls
                .iter()
                .any(|c| c.contains("doctor") || c.contains("setenforce")),
            "{calls:#?}"
        );
        assert_eq!(f.selinux(), "Enforcing");
    }
}

/// The binary follows the guest's ABI: arm64-v8a takes the aarch64 build (or an aarch64
/// --binary), an x86_64 binary is refused there, other ABIs are refused.
#[test]
fn guest_run_picks_the_binary_by_abi() {
    let scenario = root().join("scenarios/android-background.toml");
    let arm_default = root().join("target/aarch64-unknown-linux-gnu/release/emuwatch");
    let f = Fake::new();
    f.set_prop("ro.product.cpu.abi", "arm64-v8a");
    let o = f
        .script("guest-run.sh", &["--preflight-only", "--permissive"], true)
        .output()
        .unwrap();
    if arm_default.exists() {
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(f.adb_calls().iter().any(|c| c
            == &format!(
                "push {} /data/local/tmp/emuwatch/emuwatch",
                arm_default.display()
            )));
    } else {
        assert_eq!(
            error_line(&o),
            format!(
                "no emuwatch for the arm64-v8a guest at {}: build it with scripts/build-guest.sh \
                 --arch arm64 (or give --binary)",
                arm_default.display()
            )
        );
    }
    // An x86_64 binary for an arm64 guest.
    let f = Fake::new();
    f.set_prop("ro.product.cpu.abi", "arm64-v8a");
    let o = f
        .script(
            "guest-run.sh",
            &["--preflight-only", "--permissive", "--binary", EMUWATCH],
            true,
        )
        .output()
        .unwrap();
    assert_eq!(
        error_line(&o),
        format!(
            "{EMUWATCH} is built for x86_64, not for the arm64-v8a guest: build it with \
             scripts/build-guest.sh --arch arm64 (or give --binary)"
        )
    );
    assert!(!f.adb_calls().iter().any(|c| c.starts_with("push")));
    // An aarch64 ELF (header only: the fake guest does not execute it) is pushed, and
    // --syscall-probes reaches both the doctor and the run.
    let f = Fake::new();
    f.set_prop("ro.product.cpu.abi", "arm64-v8a");
    let arm = f.path("emuwatch-aarch64");
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(&arm, elf).unwrap();
    std::fs::set_permissions(&arm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = f
        .script(
            "guest-run.sh",
            &[
                scenario.to_str().unwrap(),
                "--binary",
                arm.to_str().unwrap(),
                "--permissive",
                "--syscall-probes",
                "auto",
                "--out",
                f.path("pulled").to_str().unwrap(),
                "--",
                "--quiet",
            ],
            true,
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let d = "/data/local/tmp/emuwatch";
    let calls = f.adb_calls();
    for want in [
        format!("push {} {d}/emuwatch", arm.display()),
        format!("shell {d}/emuwatch doctor --syscall-probes auto"),
        format!(
            "shell {d}/emuwatch run {d}/android-background.toml --out {d}/sessions/android-background --syscall-probes auto --quiet"
        ),
    ] {
        assert!(calls.contains(&want), "{want:?} not in {calls:#?}");
    }
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ABI arm64-v8a, API 34"),
        "{}",
        text(&o)
    );
    // A 32-bit x86 image.
    let f = Fake::new();
    f.set_prop("ro.product.cpu.abi", "x86");
    let o = f
        .script(
            "guest-run.sh",
            &["--preflight-only", "--permissive", "--binary", EMUWATCH],
            true,
        )
        .output()
        .unwrap();
    assert_eq!(
        error_line(&o),
        "guest ABI x86 is not supported: emuwatch runs in x86_64 and arm64-v8a images"
    );
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

/// A real guest lists hundreds of packages: the installed one is found wherever it is in the
/// list (reading the list is not cut short), and only an exact name matches.
#[test]
fn guest_run_finds_the_package_in_a_long_packages_list() {
    let scenario = root().join("scenarios/android-background.toml");
    let others: String = (0..20000)
        .map(|i| {
            format!(
                "com.other.app{i} 1{i} 0 /data/user/0/com.other.app{i} default:targetSdkVersion=34 3003\n"
            )
        })
        .collect();
    let target = "com.example.app 10123 0 /data/user/0/com.example.app default 3003\n";
    for (list, installed) in [
        (format!("{target}{others}"), true),
        (format!("{others}{target}"), true),
        (
            format!(
                "com.example.app.extra 10200 0 /data default 3003\ncom.example.apps 10201 0 /data default 3003\n{others}"
            ),
            false,
        ),
    ] {
        let f = Fake::new();
        f.set_selinux("Permissive");
        std::fs::write(f.path("guest/data/system/packages.list"), list).unwrap();
        let o = f
            .script(
                "guest-run.sh",
                &[
                    scenario.to_str().unwrap(),
                    "--preflight-only",
                    "--binary",
                    EMUWATCH,
                ],
                true,
            )
            .output()
            .unwrap();
        if installed {
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        } else {
            assert_eq!(
                error_line(&o),
                "package com.example.app is not installed in the guest (adb install it first)"
            );
        }
    }
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
    fn signal(sig: i32, handler: usize) -> usize;
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
    // host-record.sh takes the oldest qemu-system-* process: another one (a VM of the kernel
    // matrix, a real emulator) would be chosen instead of ours. Say so rather than fail on pids.
    let others = Command::new("pgrep")
        .args(["-f", "(^|/)qemu-system-[a-z0-9_]+"])
        .output()
        .unwrap();
    let others = String::from_utf8_lossy(&others.stdout).replace('\n', " ");
    assert!(
        others.trim().is_empty(),
        "another qemu-system-* process is running (pids {}): host-record.sh would record it, \
         not this test's engine; run this test when no VM or emulator is up",
        others.trim()
    );
    let f = Fake::new();
    let qemu = f.path("qemu-system-x86_64");
    common::simapp_copy(&qemu);
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
