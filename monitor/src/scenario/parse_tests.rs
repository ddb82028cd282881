//! Scenario files: parsing, positions in errors, and every rule of docs/scenarios.md.
#[test]
fn host_patterns_match_names_and_domain_suffixes() {
    let p = super::HostPattern::parse("*.Example-Tracker.com").unwrap();
    assert!(p.matches("log-va.example-tracker.com"));
    assert!(p.matches("A.B.EXAMPLE-TRACKER.COM."));
    assert!(!p.matches("example-tracker.com"));
    assert!(!p.matches("badexample-tracker.com"));
    let p = super::HostPattern::parse("api.example.test").unwrap();
    assert!(p.matches("API.example.test") && !p.matches("x.api.example.test"));
    for bad in ["", "*", "*.", "a.*.b", "a b", "a/b", "x\u{1b}"] {
        assert!(super::HostPattern::parse(bad).is_err(), "{bad:?}");
    }
}

use super::*;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, Path::new("t.toml"))
}

const GOOD: &str = r#"
name = "example"
app = "com.example.app"

[target]
package = "com.example.app"

[record]
duration = "2m"
devices = ["camera={work}/video*"]

[[step]]
run = "am start -W -n com.example.app/.Main"
timeout = "20s"

[[step]]
wait_for = "band"
band = "cached"

[[step]]
phase = "closed"
label = "force-stop"

[[expect]]
kind = "connect"
phases = ["closed"]

[[expect]]
kind = "file"
category = "media"
max_bytes = 1048576
"#;

#[test]
fn good_scenario() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.name, "example");
    assert!(matches!(s.target, Target::Package(ref p) if p == "com.example.app"));
    assert_eq!(s.steps.len(), 3);
    assert_eq!(s.steps[0].timeout, Duration::from_secs(20));
    assert_eq!(s.steps[0].line, 12);
    assert!(matches!(&s.steps[1].action, Action::Wait(Wait::Band(b)) if b.floor == 900));
    assert_eq!(s.expect[0].name, "no connect in closed");
    assert_eq!(s.expect[1].name, "at most 1.0 MiB read from file [media]");
}

#[test]
fn hosts_expectations_parse_and_apply_to_connects_only() {
    let base = "name = \"x\"\n[target]\npackage = \"a\"\n[[expect]]\n";
    let s = parse(&format!(
        "{base}kind = \"connect\"\nhosts = [\"*.example-tracker.com\", \"api.example.test\"]\n"
    ))
    .unwrap();
    assert_eq!(
        s.expect[0].name,
        "no connect to *.example-tracker.com, api.example.test"
    );
    let hosts = s.expect[0].filter.hosts.as_ref().unwrap();
    assert!(hosts[0].matches("log-va.example-tracker.com"));
    let e = parse(&format!("{base}kind = \"file\"\nhosts = [\"a.test\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`hosts` does not apply"), "{e}");
    let e = parse(&format!("{base}kind = \"connect\"\nhosts = [\"a b\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a host name"), "{e}");
}

#[test]
fn errors_have_line_and_column() {
    for (text, line, col, needle) in [
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n[[step]]\nsleeep = \"1s\"\n",
            5,
            1,
            "unknown field `sleeep`",
        ),
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n[[step]]\nsleep = \"5 parsecs\"\n",
            5,
            9,
            "unknown unit",
        ),
        (
            "name = \"x\"\n[target]\npackage = \"a\"\ncomm = \"b\"\n",
            2,
            1,
            "exactly one of",
        ),
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n\n[[step]]\nrun = \"x\"\nsleep = \"1s\"\n",
            5,
            1,
            "exactly one of run",
        ),
        (
            "name = \"x\"\n[target]\ncommand = [\"{nope}/x\"]\n",
            3,
            11,
            "unknown placeholder {nope}",
        ),
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n[[expect]]\nkind = \"connect\"\nphases = [\"closd\"]\n",
            6,
            11,
            "unknown variant `closd`",
        ),
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n[[expect]]\nkind = \"connect\"\ncategory = \"media\"\n",
            4,
            1,
            "does not apply",
        ),
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n[[step]]\nwait_for = \"band\"\nband = \"sleepy\"\n",
            6,
            8,
            "unknown band",
        ),
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n[[step]]\nwait_for = \"band\"\n",
            4,
            1,
            "needs `band`",
        ),
        (
            "name = \"x\"\n[target]\npackage = \"a\"\n[[setup]]\nphase = \"closed\"\n",
            4,
            1,
            "before recording",
        ),
        ("name = \"x\"\n[target\n", 2, 8, "unclosed table"),
        ("[target]\npackage = \"a\"\n", 1, 1, "missing field `name`"),
    ] {
        let e = parse(text).expect_err(text);
        assert_eq!((e.line, e.column), (line, col), "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
        assert!(
            e.to_string().starts_with(&format!("t.toml:{line}:{col}: ")),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}

#[test]
fn templates_expand() {
    let vars = Vars {
        work: "/w".into(),
        session: "/s".into(),
        bin_dir: "/b".into(),
        scenario_dir: "/d".into(),
    };
    let t = Template::try_from(
        "{bin_dir}/x {work} {{literal}} {env:EMUWATCH_TEST_UNSET_VAR}".to_string(),
    )
    .unwrap();
    assert!(
        t.expand(&vars)
            .unwrap_err()
            .to_string()
            .contains("EMUWATCH_TEST_UNSET_VAR")
    );
    let t = Template::try_from("{bin_dir}/x {work} {{literal}}".to_string()).unwrap();
    assert_eq!(t.expand(&vars).unwrap(), "/b/x /w {literal}");
    assert!(Template::try_from("a } b".to_string()).is_err());
    assert!(Template::try_from("a { b".to_string()).is_err());
}

/// `run --check` on 100k steps: positions are found through a line index (it was
/// quadratic: > 30 s).
#[test]
fn many_steps_parse_in_linear_time() {
    let mut text = String::from("name = \"many\"\n[target]\ncommand = \"true\"\n");
    for _ in 0..100_000 {
        text.push_str("[[step]]\nsleep = \"1ms\"\n");
    }
    let t = std::time::Instant::now();
    let sc = Scenario::parse(&text, Path::new("many.toml")).unwrap();
    assert_eq!(sc.steps.len(), 100_000);
    assert_eq!(sc.steps[99_999].line, 4 + 2 * 99_999);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_zero_recording_duration_is_an_error() {
    let e = Scenario::parse(
        "name = \"x\"\n[target]\ncommand = \"true\"\n[record]\nduration = \"0s\"\n",
        Path::new("z.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("must be above 0"), "{e}");
}
