//! `emuwatch run`, `baseline save` and `diff` end to end: real kernel, real child processes
//! (the bundled simulated app), scenario files written here. Needs root, like capture.rs.
//! Traffic stays on loopback; connects to public test addresses are made inside a network
//! namespace of their own (`unshare -n`, loopback down), where they fail at once and nothing
//! leaves the machine — emuwatch still records the attempt.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use quick_xml::events::Event;
use serde_json::Value;

const EMUWATCH: &str = env!("CARGO_BIN_EXE_emuwatch");

#[path = "common/mod.rs"]
mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn require_root() {
    assert_eq!(
        unsafe { geteuid() },
        0,
        "scenario runs load eBPF programs: run the tests as root (cargo xtask test)"
    );
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("emuwatch-test-")
        .tempdir()
        .unwrap()
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn emuwatch(args: &[&str]) -> Out {
    let o = Command::new(EMUWATCH).args(args).output().unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn run_scenario(file: &Path, out: &Path, extra: &[&str]) -> Out {
    require_root();
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    emuwatch(&args)
}

/// One `<testcase>`: name, classname, and `failure` / `error` with its message, if any.
#[derive(Debug)]
struct Case {
    name: String,
    classname: String,
    outcome: Option<(String, String)>,
}

/// Parse JUnit XML (checking it is well-formed) into its test cases and the root's counts.
fn junit(path: &Path) -> (Vec<Case>, Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut r = quick_xml::Reader::from_str(&text);
    let mut cases: Vec<Case> = Vec::new();
    let mut root = serde_json::Map::new();
    let attrs = |e: &quick_xml::events::BytesStart| -> Vec<(String, String)> {
        e.attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    a.key.as_ref().to_string(),
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .expect("escaped value")
                        .into_owned(),
                )
            })
            .collect()
    };
    loop {
        match r.read_event().expect("well-formed JUnit XML") {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let a = attrs(&e);
                let get = |k: &str| {
                    a.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                match e.name().as_ref() {
                    "testsuites" => {
                        for (k, v) in &a {
                            root.insert(k.clone(), Value::String(v.clone()));
                        }
                    }
                    "testcase" => cases.push(Case {
                        name: get("name"),
                        classname: get("classname"),
                        outcome: None,
                    }),
                    "failure" | "error" => {
                        let kind = e.name().as_ref().to_string();
                        cases.last_mut().unwrap().outcome = Some((kind, get("message")));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    (cases, Value::Object(root))
}

fn case<'a>(cases: &'a [Case], name: &str) -> &'a Case {
    cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no test case {name:?} in {cases:#?}"))
}

#[test]
fn bad_scenarios_are_one_line_errors_with_position() {
    let tmp = tempdir();
    for (text, pos, needle) in [
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n\n[[step]]\nsleep = \"ten\"\n",
            ":6:9:",
            "not a duration",
        ),
        (
            "name = \"x\"\n[target]\ncommand = \"true\"\n[[expect]]\nkind = \"camera\"\ncountries = [\"CN\"]\n",
            ":4:1:",
            "`countries` does not apply to kind = \"camera\"",
        ),
        (
            "name = \"x\"\n[target]\ncommand = \"true\"\n[[expect]]\nkind = \"phone\"\n",
            ":5:8:",
            "unknown variant `phone`",
        ),
        (
            "name = \"x\"\n\n[target]\n",
            ":3:1:",
            "exactly one of package",
        ),
        (
            "name = 'x'\n[target]\npackage = \"a\"\n[[stepp]]\n",
            ":4:3:",
            "unknown field `stepp`",
        ),
        (
            "name = 'x'\n[target]\ncommand = \"true\"\n[record]\nsyscall_probes = \"fast\"\n",
            ":5:18:",
            "unknown variant `fast`, expected one of `auto`, `raw`, `per-syscall`",
        ),
        (
            "name = 'x'\n[target]\ncommand = \"true\"\n[[expect]]\nkind = \"connect\"\nscopes = [\"public\", \"moon\"]\n",
            ":4:1:",
            "`scopes`: unknown scope \"moon\" (one of ",
        ),
        (
            "name = 'x'\n[target]\ncommand = \"true\"\n[[expect]]\nkind = \"camera\"\nops = [\"zoom\"]\n",
            ":4:1:",
            "`ops`: unknown operation \"zoom\" (one of open, ",
        ),
        (
            "name = 'x'\n[target]\ncommand = \"true\"\n[record]\npoll = \"0ms\"\n",
            ":5:8:",
            "must be above 0",
        ),
        (
            "name = 'x'\n[target]\ncommand = \"true\"\n[record]\nduration = \"99999999999999999999h\"\n",
            ":5:12:",
            "longest duration",
        ),
    ] {
        let f = tmp.path().join("bad.toml");
        std::fs::write(&f, text).unwrap();
        let o = emuwatch(&[
            "run",
            f.to_str().unwrap(),
            "--out",
            tmp.path().join("s").to_str().unwrap(),
        ]);
        assert_eq!(o.code, Some(2), "{text:?}: {}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "one line: {}", o.stderr);
        assert!(
            o.stderr.contains(&format!("bad.toml{pos}")) && o.stderr.contains(needle),
            "{text:?}: {}",
            o.stderr
        );
        assert!(!o.stderr.contains("panicked"));
    }
    // An unknown category is found before anything is recorded.
    let f = tmp.path().join("cat.toml");
    std::fs::write(
        &f,
        "name = \"x\"\n[target]\ncommand = \"true\"\n\n[[expect]]\nkind = \"file\"\ncategory = \"secrets\"\n",
    )
    .unwrap();
    let o = emuwatch(&[
        "run",
        f.to_str().unwrap(),
        "--out",
        tmp.path().join("t").to_str().unwrap(),
    ]);
    assert_eq!(o.code, Some(2));
    assert!(
        o.stderr.contains("cat.toml:5: expectation")
            && o.stderr.contains("unknown file category \"secrets\""),
        "{}",
        o.stderr
    );
    // Every bundled scenario is valid (and names only categories that exist).
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") && !p.to_string_lossy().contains("categories")
        {
            let o = emuwatch(&["run", "--check", p.to_str().unwrap()]);
            assert_eq!(o.code, Some(0), "{}: {}", p.display(), o.stderr);
            assert!(o.stdout.contains("is valid"), "{}", o.stdout);
            checked += 1;
        }
    }
    assert!(checked >= 3, "demo and the Android examples");
}

/// The README's main job: the demo catches the background collection (exit 1, readable JUnit),
/// and passes the baseline rules against a baseline saved from an identical run.
#[test]
fn demo_catches_background_collection_and_matches_its_own_baseline() {
    let tmp = tempdir();
    let demo = root().join("scenarios/demo.toml");
    let s1 = tmp.path().join("s1");
    let o = run_scenario(
        &demo,
        &s1,
        &["--junit", tmp.path().join("j.xml").to_str().unwrap()],
    );
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains("FAIL  no connections after the app is closed"),
        "{}",
        o.stdout
    );
    for f in [
        "report.txt",
        "report.html",
        "summary.json",
        "junit.xml",
        "run.json",
        "events.jsonl",
    ] {
        assert!(s1.join(f).exists(), "{f}");
    }
    assert!(
        o.stdout.contains("report.html"),
        "where the report is: {}",
        o.stdout
    );
    let (cases, root_attrs) = junit(&tmp.path().join("j.xml"));
    assert_eq!(root_attrs["tests"], "7", "{cases:#?}");
    assert_eq!(root_attrs["failures"], "3");
    assert_eq!(root_attrs["errors"], "0");
    assert!(
        case(&cases, "run: steps, probes and a complete recording")
            .outcome
            .is_none()
    );
    let c = case(&cases, "no connections after the app is closed");
    assert_eq!(c.classname, "emuwatch.demo.expect");
    assert_eq!(
        c.outcome.as_ref().unwrap(),
        &("failure".to_string(), "12 connects (limit 0)".to_string())
    );
    let c = case(&cases, "no camera once the app has left the screen");
    assert_eq!(c.outcome.as_ref().unwrap().1, "6 camera accesses (limit 0)");
    let c = case(&cases, "no device identifiers read after close");
    assert_eq!(c.outcome.as_ref().unwrap().1, "12 file opens (limit 0)");
    for ok in [
        "no servers in China",
        "contacts are read only in the foreground",
        "at most 64 KiB of photos read",
    ] {
        assert!(case(&cases, ok).outcome.is_none(), "{ok}");
    }
    // The report agrees: background collection first.
    let report = std::fs::read_to_string(s1.join("report.txt")).unwrap();
    assert!(
        report.contains("emuwatch-simapp: 9 background-collection findings"),
        "{report}"
    );

    // Baseline from run 1; run 2 is identical: every baseline rule passes.
    let base = tmp.path().join("demo.json");
    let o = emuwatch(&[
        "baseline",
        "save",
        s1.to_str().unwrap(),
        base.to_str().unwrap(),
    ]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let text = std::fs::read_to_string(&base).unwrap();
    assert!(
        !text.contains("emuwatch-run-") && text.contains("{work}/dev/video0"),
        "{text}"
    );
    assert!(
        !text.contains("\"port\""),
        "loopback ports are left out: {text}"
    );
    let s2 = tmp.path().join("s2");
    // A directory of baselines: <scenario name>.json is picked.
    let o = run_scenario(&demo, &s2, &["--baseline", tmp.path().to_str().unwrap()]);
    assert_eq!(
        o.code,
        Some(1),
        "expectations still fail: {}\n{}",
        o.stdout,
        o.stderr
    );
    assert!(o.stdout.contains("no regressions"), "{}", o.stdout);
    let (cases, _) = junit(&s2.join("junit.xml"));
    let baseline_cases: Vec<&Case> = cases
        .iter()
        .filter(|c| c.classname == "emuwatch.demo.baseline")
        .collect();
    assert_eq!(
        baseline_cases.len(),
        7,
        "one per rule for the one app: {cases:#?}"
    );
    assert!(
        baseline_cases.iter().all(|c| c.outcome.is_none()),
        "{baseline_cases:#?}"
    );
    // And the two baselines are byte for byte the same.
    let base2 = tmp.path().join("again.json");
    emuwatch(&[
        "baseline",
        "save",
        s2.to_str().unwrap(),
        base2.to_str().unwrap(),
    ]);
    assert_eq!(text, std::fs::read_to_string(&base2).unwrap());
    let o = emuwatch(&["diff", s1.to_str().unwrap(), s2.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{}", o.stdout);
    assert!(o.stdout.contains("no differences"), "{}", o.stdout);
}

const COUNTRY_DB: &str = "tests/fixtures/geoip/GeoIP2-Country-Test.mmdb";
const ASN_DB: &str = "tests/fixtures/geoip/GeoLite2-ASN-Test.mmdb";

/// A target that does one thing of each kind, in known phases: in the foreground it connects
/// to a CN address (no ASN in the test database: it counts as outside any allow-list) and a
/// US one (AS209), starts the camera, opens the microphone and
/// reads 4 KiB of photos; in the background (the system demotes it) it reads /proc/cpuinfo;
/// after close (its service)
/// it connects to loopback and reads boot_id.
fn kinds_scenario(dir: &Path, name: &str, expectations: &str) -> PathBuf {
    let r = root();
    std::fs::write(
        dir.join("cats.toml"),
        "include_builtin = true\n[[category]]\nname = \"media\"\nsensitive = true\npatterns = [\"/**/DCIM/**\"]\n",
    )
    .unwrap();
    let text = format!(
        r#"name = "{name}"

[target]
command = ["unshare", "-n", "{{bin_dir}}/emuwatch-simapp", "steps",
  "connect=tcp4,111.235.160.10,443", "connect=tcp4,216.160.83.56,443",
  "streamon={{work}}/video0", "device={{work}}/snd/pcmC0D0c", "read={{work}}/DCIM/a.jpg,1024",
  "pidfile={{work}}/app.pid", "waitfile={{work}}/home", "read=/proc/cpuinfo,4096",
  "daemon", "connect=tcp4,127.0.0.1,9", "read=/proc/sys/kernel/random/boot_id,64"]

[record]
devices = ["camera={{work}}/video*", "microphone={{work}}/snd/pcm*c"]
categories = "cats.toml"
geoip_country = "{country}"
geoip_asn = "{asn}"

[[setup]]
run = "mkdir -p {{work}}/snd {{work}}/DCIM && mknod {{work}}/video0 c 1 3 && mknod {{work}}/snd/pcmC0D0c c 1 3 && head -c 4096 /dev/zero > {{work}}/DCIM/a.jpg"

[[step]]
wait_for = "running"

[[step]]
name = "HOME: the system (lmkd's stand-in) demotes the app"
run = ["{{bin_dir}}/emuwatch-simapp", "system", "oomof=@{{work}}/app.pid,900", "touch={{work}}/home"]

[[step]]
wait_for = "exited"
timeout = "20s"

[[step]]
marker = "all done"

{expectations}
"#,
        country = r.join(COUNTRY_DB).display(),
        asn = r.join(ASN_DB).display(),
    );
    let f = dir.join(format!("{name}.toml"));
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn every_kind_of_expectation_passes_and_fails() {
    let tmp = tempdir();
    let pass = kinds_scenario(
        tmp.path(),
        "holds",
        r#"
[[expect]]
kind = "connect"
phases = ["background"]

[[expect]]
kind = "connect"
countries = ["RU"]

[[expect]]
kind = "connect"
countries = ["US"]
allowed_asns = [209]

[[expect]]
kind = "connect"
allowed_countries = ["CN", "US"]

[[expect]]
kind = "camera"
phases = ["background", "closed"]

[[expect]]
kind = "microphone"
phases = ["closed"]

[[expect]]
kind = "file"
category = "device_identifiers"
phases = ["foreground"]

[[expect]]
kind = "file"
category = "media"
max_bytes = 8192

[[expect]]
kind = "connect"
max = 3
"#,
    );
    let o = run_scenario(&pass, &tmp.path().join("pass"), &[]);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    let (cases, attrs) = junit(&tmp.path().join("pass/junit.xml"));
    assert_eq!(attrs["tests"], "10", "{cases:#?}");
    assert_eq!(attrs["failures"], "0", "{cases:#?}");
    assert!(cases.iter().all(|c| c.outcome.is_none()), "{cases:#?}");
    assert!(o.stdout.contains("result: PASS"), "{}", o.stdout);

    let fail = kinds_scenario(
        tmp.path(),
        "violated",
        r#"
[[expect]]
kind = "connect"
phases = ["closed"]

[[expect]]
kind = "connect"
countries = ["CN"]

[[expect]]
kind = "connect"
allowed_asns = [209]

[[expect]]
kind = "camera"
ops = ["stream_on"]
phases = ["foreground"]

[[expect]]
kind = "microphone"

[[expect]]
kind = "file"
category = "device_identifiers"
phases = ["background"]

[[expect]]
kind = "file"
category = "media"
max_bytes = 1024
"#,
    );
    let o = run_scenario(&fail, &tmp.path().join("fail"), &[]);
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    let (cases, attrs) = junit(&tmp.path().join("fail/junit.xml"));
    assert_eq!(attrs["failures"], "7", "{cases:#?}");
    let want = [
        ("no connect in closed", "1 connect (limit 0)"),
        ("no connect to countries CN", "1 connect (limit 0)"),
        ("no connect to an ASN outside AS209", "1 connect (limit 0)"),
        (
            "no camera (stream_on) in foreground",
            "1 camera access (limit 0)",
        ),
        ("no microphone", "1 microphone access (limit 0)"),
        (
            "no file [device_identifiers] in background",
            "1 file open (limit 0)",
        ),
        (
            "at most 1.0 KiB read from file [media]",
            "4.0 KiB read (limit 1.0 KiB)",
        ),
    ];
    for (name, message) in want {
        let c = case(&cases, name);
        assert_eq!(
            c.outcome.as_ref(),
            Some(&("failure".to_string(), message.to_string())),
            "{name}: {cases:#?}"
        );
    }
    // The failures name what broke them.
    assert!(
        o.stdout
            .contains("[foreground] connect to 111.235.160.10:443/tcp (CN)"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("[closed] connect to 127.0.0.1:9/tcp (loopback)"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("[background] file /proc/cpuinfo (device_identifiers)"),
        "{}",
        o.stdout
    );
    // run.json keeps the outcome for tools.
    let run: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("fail/run.json")).unwrap()).unwrap();
    assert_eq!(run["exit_code"], 1);
    assert_eq!(run["expectations"].as_array().unwrap().len(), 7);
}

#[test]
fn a_failed_step_or_lost_events_make_the_run_an_error() {
    let tmp = tempdir();
    let f = tmp.path().join("step.toml");
    std::fs::write(
        &f,
        "name = \"broken step\"\n[target]\ncommand = [\"{bin_dir}/emuwatch-simapp\", \"steps\", \"sleep=300\"]\n\n[[step]]\nrun = \"echo about to fail; exit 3\"\n\n[[step]]\nsleep = \"1s\"\n\n[[expect]]\nkind = \"connect\"\n",
    )
    .unwrap();
    let o = run_scenario(&f, &tmp.path().join("s"), &[]);
    assert_eq!(o.code, Some(2), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("step.toml:5: step 1 (run echo about to fail; exit 3) failed: sh exited with exit status: 3"), "{}", o.stderr);
    let (cases, _) = junit(&tmp.path().join("s/junit.xml"));
    let run = case(&cases, "run: steps, probes and a complete recording");
    assert_eq!(run.outcome.as_ref().unwrap().0, "error");
    assert!(
        std::fs::read_to_string(tmp.path().join("s/steps.log"))
            .unwrap()
            .contains("about to fail")
    );

    // A 4 KiB ring buffer the reader never drains in time: events are lost, the run cannot pass.
    let data = tmp.path().join("x");
    std::fs::write(&data, "0123456789").unwrap();
    let reads: Vec<String> = (0..3000)
        .map(|_| format!("\"read={},64\"", data.display()))
        .collect();
    let f = tmp.path().join("lost.toml");
    std::fs::write(
        &f,
        format!(
            "name = \"lossy\"\n[target]\ncommand = [\"{{bin_dir}}/emuwatch-simapp\", \"steps\", {}]\n[record]\nring_buffer = \"4K\"\nwakeup_bytes = 1000000\npoll = \"1s\"\n[[step]]\nwait_for = \"exited\"\n",
            reads.join(", ")
        ),
    )
    .unwrap();
    let o = run_scenario(&f, &tmp.path().join("l"), &[]);
    assert_eq!(o.code, Some(2), "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("events were lost") && o.stderr.contains("cannot pass"),
        "{}",
        o.stderr
    );
}

/// Two recordings that differ in exactly one behaviour (the service's camera use after
/// close): the diff shows exactly that, and the baseline rule for devices fails.
#[test]
fn baseline_diff_shows_the_one_behaviour_that_changed() {
    let tmp = tempdir();
    let scenario = |file: &str, without: Option<&str>| {
        common::simapp_app_scenario(tmp.path(), file, "one change", without)
    };
    let before = scenario("before.toml", Some("service-camera"));
    let after = scenario("after.toml", None);
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let o = run_scenario(&before, &a, &[]);
    assert_eq!(
        o.code,
        Some(0),
        "no expectations, no baseline: {}\n{}",
        o.stdout,
        o.stderr
    );
    let base = tmp.path().join("base.json");
    assert_eq!(
        emuwatch(&[
            "baseline",
            "save",
            a.to_str().unwrap(),
            base.to_str().unwrap()
        ])
        .code,
        Some(0)
    );

    let o = run_scenario(&after, &b, &["--baseline", base.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "a regression: {}\n{}", o.stdout, o.stderr);
    let (cases, _) = junit(&b.join("junit.xml"));
    let failed: Vec<&Case> = cases.iter().filter(|c| c.outcome.is_some()).collect();
    assert_eq!(failed.len(), 1, "{cases:#?}");
    assert_eq!(
        failed[0].name,
        "baseline: emuwatch-simapp: no new camera/microphone/Android-service use"
    );
    assert_eq!(
        failed[0].outcome.as_ref().unwrap().1,
        "2 regression(s): new in closed: camera {work}/dev/video0 open"
    );

    let o = emuwatch(&[
        "diff",
        base.to_str().unwrap(),
        b.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let d: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(d["regressions"], 2, "{d:#}");
    let apps = d["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 1, "{d:#}");
    assert_eq!(apps[0]["status"], "both");
    let phases = apps[0]["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 1, "only the closed phase changed: {d:#}");
    assert_eq!(phases[0]["phase"], "closed");
    let new: Vec<(&str, &str)> = phases[0]["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["rule"].as_str().unwrap(), i["what"].as_str().unwrap()))
        .collect();
    assert_eq!(
        new,
        [
            ("devices", "camera {work}/dev/video0 open"),
            ("devices", "camera {work}/dev/video0 stream_on")
        ],
        "{d:#}"
    );
    assert!(phases[0]["gone"].as_array().unwrap().is_empty(), "{d:#}");
    assert!(phases[0]["changed"].as_array().unwrap().is_empty(), "{d:#}");
    let text = emuwatch(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]).stdout;
    assert!(
        text.contains("+ devices         camera {work}/dev/video0 stream_on"),
        "{text}"
    );

    // The same behaviour again, against the session that has it: passes.
    let o = run_scenario(&after, &c, &["--baseline", b.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
}

fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()))
        .flatten()
        .is_some_and(|st| st != 'Z' && st != 'X')
}

fn target_pid(session: &Path) -> u64 {
    let info: Value =
        serde_json::from_slice(&std::fs::read(session.join("session.json")).unwrap()).unwrap();
    info["target"]["pids"][0].as_u64().unwrap()
}

/// A run ends at `[record] duration` and on SIGTERM even while a `wait_for = "file"` step is
/// still waiting; its target is stopped; run.json and the JUnit XML are written anyway.
#[test]
fn a_run_stops_on_duration_and_signals_and_stops_its_target() {
    require_root();
    let tmp = tempdir();
    let f = tmp.path().join("wait.toml");
    std::fs::write(
        &f,
        "name = \"waits forever\"\n[target]\ncommand = [\"{bin_dir}/emuwatch-simapp\", \"steps\", \"sleep=300000\"]\n[record]\nduration = \"2s\"\n[[step]]\nwait_for = \"file\"\npath = \"{work}/never\"\ntimeout = \"300s\"\n",
    )
    .unwrap();
    let t = std::time::Instant::now();
    let s = tmp.path().join("s");
    let o = run_scenario(&f, &s, &[]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(o.code, Some(2), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("maximum duration"), "{}", o.stderr);
    assert!(!running(target_pid(&s)), "the target outlived the run");
    let run: Value = serde_json::from_slice(&std::fs::read(s.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["exit_code"], 2);
    let (cases, _) = junit(&s.join("junit.xml"));
    assert_eq!(
        case(&cases, "run: steps, probes and a complete recording")
            .outcome
            .as_ref()
            .unwrap()
            .0,
        "error"
    );

    // SIGTERM while the step waits.
    let f2 = tmp.path().join("wait2.toml");
    std::fs::write(
        &f2,
        std::fs::read_to_string(&f)
            .unwrap()
            .replace("duration = \"2s\"", "duration = \"10m\""),
    )
    .unwrap();
    let s2 = tmp.path().join("s2");
    let child = Command::new(EMUWATCH)
        .args(["run", f2.to_str().unwrap(), "--out", s2.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !s2.join("steps.log").exists() || !s2.join("control.sock").exists() {
        assert!(t.elapsed().as_secs() < 120, "the run never attached");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    unsafe { kill(child.id() as i32, 15) };
    let t = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed().as_secs() < 30, "SIGTERM took {:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(!running(target_pid(&s2)), "the target outlived the run");
    assert!(s2.join("run.json").exists() && s2.join("junit.xml").exists());
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// SIGTERM or SIGINT while `run` executes its setup steps (before the recording starts) ends
/// the run as a signal during the recording does: the setup commands' process trees (a
/// background one and the one running in the foreground) are stopped, run.json and the JUnit
/// XML say the run was interrupted, exit 2, no control socket left behind.
#[test]
fn a_signal_during_the_setup_steps_stops_them_and_writes_the_run_files() {
    require_root();
    let tmp = tempdir();
    for (sig, name) in [(15, "SIGTERM"), (2, "SIGINT")] {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let (bg, fg) = (dir.join("bg.pid"), dir.join("fg.pid"));
        let f = dir.join("setup.toml");
        std::fs::write(
            &f,
            format!(
                "name = \"slow setup\"\n[target]\ncommand = \"true\"\n\
                 [[setup]]\nrun = [\"sh\", \"-c\", \"sleep 300 & echo $! > {}; wait\"]\nbackground = true\n\
                 [[setup]]\nrun = [\"sh\", \"-c\", \"sleep 300 & echo $! > {}; wait\"]\ntimeout = \"600s\"\n\
                 [[step]]\nsleep = \"1s\"\n",
                bg.display(),
                fg.display()
            ),
        )
        .unwrap();
        let s = dir.join("s");
        let child = Command::new(EMUWATCH)
            .args(["run", f.to_str().unwrap(), "--out", s.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid_in = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
        };
        let t = std::time::Instant::now();
        let (bg_pid, fg_pid) = loop {
            if let (Some(b), Some(f)) = (pid_in(&bg), pid_in(&fg)) {
                break (b, f);
            }
            assert!(
                t.elapsed().as_secs() < 60,
                "{name}: the setup never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(running(bg_pid) && running(fg_pid));
        unsafe { kill(child.id() as i32, sig) };
        let t = std::time::Instant::now();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(t.elapsed().as_secs() < 30, "{name} took {:?}", t.elapsed());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: {:?} {stderr}",
            out.status
        );
        assert!(stderr.contains("interrupted"), "{name}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(
            !running(fg_pid),
            "{name}: the setup step's process outlived the run"
        );
        assert!(
            !running(bg_pid),
            "{name}: the background setup command outlived the run"
        );
        let run: Value =
            serde_json::from_slice(&std::fs::read(s.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["exit_code"], 2, "{name}: {run}");
        assert!(
            run["errors"][0].as_str().unwrap().contains("interrupted"),
            "{name}: {run}"
        );
        let (cases, _) = junit(&s.join("junit.xml"));
        let (kind, message) = case(&cases, "run: steps, probes and a complete recording")
            .outcome
            .clone()
            .unwrap();
        assert_eq!(kind, "error", "{name}");
        assert!(message.contains("interrupted"), "{name}: {message}");
        assert!(
            !s.join("control.sock").exists(),
            "{name}: stale control.sock"
        );
    }
}

/// A run that fails before recording (a setup step) still writes run.json and JUnit; `--out`
/// must be new or empty; `--junit` replaces a symlink instead of writing through it.
#[test]
fn run_outputs_are_written_on_error_and_never_through_symlinks() {
    let tmp = tempdir();
    let f = tmp.path().join("setup.toml");
    std::fs::write(
        &f,
        "name = \"bad setup\"\n[target]\ncommand = \"true\"\n[[setup]]\nrun = \"exit 4\"\n",
    )
    .unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let junit_link = tmp.path().join("junit.xml");
    std::os::unix::fs::symlink(&victim, &junit_link).unwrap();
    let s = tmp.path().join("s");
    let o = run_scenario(&f, &s, &["--junit", junit_link.to_str().unwrap()]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("setup step 1"), "{}", o.stderr);
    let run: Value = serde_json::from_slice(&std::fs::read(s.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["exit_code"], 2);
    assert!(
        run["errors"][0].as_str().unwrap().contains("setup step 1"),
        "{run}"
    );
    let (cases, _) = junit(&junit_link);
    assert_eq!(
        case(&cases, "run: steps, probes and a complete recording")
            .outcome
            .as_ref()
            .unwrap()
            .0,
        "error"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&s).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(s.join("run.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // An existing, non-empty --out is refused before anything runs.
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::os::unix::fs::symlink(&victim, full.join("report.txt")).unwrap();
    let o = run_scenario(&f, &full, &[]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("not empty"), "{}", o.stderr);
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);
}

/// `--run-as USER`: the setup, the steps and the command target run as that user, not root.
#[test]
fn run_as_runs_the_scenario_commands_unprivileged() {
    require_root();
    let tmp = tempdir();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = tmp.path().join("nobody.toml");
    std::fs::write(
        &f,
        "name = \"as nobody\"\n[target]\ncommand = [\"sh\", \"-c\", \"echo target=$(id -u); touch {work}/done\"]\n[[setup]]\nrun = \"echo setup=$(id -u)\"\n[[step]]\nrun = \"echo step=$(id -u)\"\n[[step]]\nwait_for = \"file\"\npath = \"{work}/done\"\n[[step]]\nwait_for = \"exited\"\n",
    )
    .unwrap();
    let s = tmp.path().join("s");
    let o = run_scenario(&f, &s, &["--run-as", "nobody"]);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    let steps = std::fs::read_to_string(s.join("steps.log")).unwrap();
    assert!(
        steps.contains("setup=65534") && steps.contains("step=65534"),
        "{steps}"
    );
    let target = std::fs::read_to_string(s.join("target.log")).unwrap();
    assert_eq!(target.trim(), "target=65534");
    let o = run_scenario(
        &f,
        &tmp.path().join("t"),
        &["--run-as", "no-such-user-here"],
    );
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("no user"), "{}", o.stderr);
}

/// `[target] user = "nobody"` in the scenario runs its commands as that user, as `--run-as`
/// does: the recorded events of the target carry uid 65534. An unknown user is a one-line
/// error with its position when the scenario is read; `--run-as` naming another user is
/// refused, the same user accepted.
#[test]
fn target_user_runs_the_scenario_commands_as_that_user() {
    require_root();
    let tmp = tempdir();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = tmp.path().join("user.toml");
    std::fs::write(
        &f,
        "name = \"as nobody\"\n[target]\nuser = \"nobody\"\ncommand = [\"sh\", \"-c\", \"cat /etc/hostname > /dev/null; touch {work}/done\"]\n[[setup]]\nrun = \"echo setup=$(id -u)\"\n[[step]]\nrun = \"echo step=$(id -u)\"\n[[step]]\nwait_for = \"file\"\npath = \"{work}/done\"\n[[step]]\nwait_for = \"exited\"\n",
    )
    .unwrap();
    let s = tmp.path().join("s");
    let o = run_scenario(&f, &s, &[]);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    let steps = std::fs::read_to_string(s.join("steps.log")).unwrap();
    assert!(
        steps.contains("setup=65534") && steps.contains("step=65534"),
        "{steps}"
    );
    // The target's own events, as the kernel saw them.
    let events = std::fs::read_to_string(s.join("events.jsonl")).unwrap();
    let reads: Vec<Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "file_open" && e["path"] == "/etc/hostname")
        .collect();
    assert_eq!(reads.len(), 1, "{events}");
    assert_eq!(reads[0]["uid"], 65534, "{}", reads[0]);
    let procs: Vec<u64> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "process")
        .filter_map(|e| e["uid"].as_u64())
        .collect();
    assert!(
        !procs.is_empty() && procs.iter().all(|u| *u == 65534),
        "{procs:?}"
    );

    // The same user on the command line is accepted; another one is refused.
    let f = f.to_str().unwrap();
    let o = emuwatch(&["run", "--check", f, "--run-as", "nobody"]);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("uid 65534"), "{}", o.stdout);
    let o = emuwatch(&["run", "--check", f, "--run-as", "root"]);
    assert_eq!(o.code, Some(2), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("disagree"), "{}", o.stderr);
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);

    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[target]\nuser = \"no-such-user-here\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let o = emuwatch(&["run", "--check", bad.to_str().unwrap()]);
    assert_eq!(o.code, Some(2), "{}\n{}", o.stdout, o.stderr);
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("bad.toml:2:")
            && o.stderr
                .contains("[target] user: no user \"no-such-user-here\""),
        "{}",
        o.stderr
    );
}
