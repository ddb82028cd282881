//! `emuwatch report` on fixture sessions (tests/fixtures/sessions/): background collection
//! first, phases, geo from the MaxMind test databases (tests/fixtures/geoip/), file categories,
//! the summary.json schema, escaping of hostile names in text and HTML (HTML checked in real
//! headless Chromium), and clean one-line errors.
//!
//! The public addresses in the fixtures are only read from files; nothing connects anywhere.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

fn session(name: &str) -> PathBuf {
    fixture(&format!("sessions/{name}"))
}

fn country_db() -> PathBuf {
    fixture("geoip/GeoIP2-Country-Test.mmdb")
}

fn asn_db() -> PathBuf {
    fixture("geoip/GeoLite2-ASN-Test.mmdb")
}

/// Run emuwatch with no geo database found by default (the empty variables turn the default
/// search off), so a database installed on this machine cannot change the results.
fn emuwatch(args: &[&str]) -> Output {
    emuwatch_env(args, &[])
}

fn emuwatch_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emuwatch"));
    cmd.args(args)
        .env("EMUWATCH_GEOIP_COUNTRY", "")
        .env("EMUWATCH_GEOIP_ASN", "");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run emuwatch")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "emuwatch failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn report(name: &str, format: &str) -> String {
    let (c, a, dir) = (country_db(), asn_db(), session(name));
    ok(&emuwatch(&[
        "report",
        s(&dir),
        "--format",
        format,
        "--geoip-country",
        s(&c),
        "--geoip-asn",
        s(&a),
    ]))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&report(name, "json")).expect("valid JSON")
}

fn pos(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{hay}"))
}

#[test]
fn text_report_puts_background_collection_first() {
    let out = report("spyapp", "text");
    // The app that collected in the background comes first, and its findings before anything else.
    let spy = pos(&out, "App com.example.spyapp");
    let notes = pos(&out, "App com.example.notes");
    assert!(spy < notes);
    let findings = pos(
        &out,
        "BACKGROUND COLLECTION: 15 findings (6 while in background, 9 after close)",
    );
    for later in [
        "\nPhases",
        "\nDestinations (9)",
        "\nCamera, microphone and Android services",
        "\nFiles by category",
        "\nProcesses (2)",
    ] {
        assert!(
            findings < spy + pos(&out[spy..], later),
            "{later} before the findings"
        );
    }
    assert!(findings > spy);
    // Summary line at the top.
    assert!(out.contains(
        "com.example.spyapp: 15 background-collection findings (6 in background, 9 after close): \
         10 connects to 7 destinations (GB, JP, SE, US); camera x2; microphone x1; \
         files: device_identifiers, media, other_apps_data"
    ));
    assert!(out.contains("com.example.notes: no background collection"));
    assert!(out.contains("BACKGROUND COLLECTION: none"));

    // Findings in time order, with geo from the test databases and the delay after the phase change.
    let order = [
        "1. [background] connect to 149.101.100.5:443/tcp (US, AS6167 CELLCO-PART)  x3",
        "2. [background] read /sys/class/net/eth0/address [device_identifiers]: 1 open, 18 B read  x1",
        "3. [background] read /proc/cpuinfo [device_identifiers]: 1 open, 3.1 KiB read  x1",
        "4. [background] microphone /dev/snd/pcmC0D0c (open)  x1",
        "5. [background] open /data/data/com.whatsapp/databases/msgstore.db [other_apps_data]: 1 open, 1 failed  x1",
        "6. [background] connect to [2001:218::10]:443/tcp (JP)  x1",
        "7. [closed] connect to 216.160.83.56:443/tcp (US, AS209)  x2",
        "8. [closed] connect to 81.2.69.160:443/tcp (GB)  x1",
        "11. [closed] camera /dev/video0 (open, stream_on)  x2",
        "12. [closed] connect to 1.128.0.1:443/tcp (AS1221 Telstra Pty Ltd)  x1",
        "13. [closed] connect to [::ffff:89.160.20.113]:443/tcp (SE, AS29518 Bredband2 AB)  x1",
        "14. [closed] read /storage/emulated/0/DCIM/Camera/IMG_0002.jpg [media]: 1 open, 1.2 MiB read  x1",
    ];
    let mut last = 0;
    for line in order {
        let p = pos(&out, line);
        assert!(p > last, "{line} out of order");
        last = p;
    }
    assert!(out.contains("first +31.500s (1.5 s after leaving the foreground), last +40.000s; pid 4242 (example.spyapp)"));
    assert!(out.contains("first +62.000s (2.0 s after close, 32.0 s after leaving the foreground), last +92.000s; pid 4301 (spyd)"));
    assert!(out.contains("result EACCES 1"));
    // Foreground activity is in the tables, not in the findings.
    assert!(!out.contains("[foreground]"));
    assert!(out.contains("111.235.160.10        8443  tcp    CN"));

    // Phases and their changes.
    assert!(out.contains("  foreground  +0.000s..+30.000s      30.0 s      20         4      3      6  368.2 KiB       2    0  0             2"));
    assert!(out.contains("  background  +30.000s..+60.000s     30.0 s"));
    assert!(out.contains("  closed      +60.000s..+120.000s    60.0 s"));
    assert!(out.contains(
        "+30.000s foreground -> background (app_state: oom_score_adj 0 -> 700 (previous))"
    ));
    assert!(out.contains("+60.000s background -> closed (main_exited: pid 4242 exited)"));

    // Destinations: repeated connects to one (address, port, proto) are one row.
    assert_eq!(
        out.matches("149.101.100.5 ").count(),
        1,
        "one destinations row:\n{out}"
    );
    assert!(out.contains(
        "149.101.100.5          443  tcp    US         AS6167   CELLCO-PART          3  bg 3"
    ));
    assert!(out.contains(
        "89.160.20.112          443  tcp    SE         AS29518  Bredband2 AB         2  fg 2"
    ));
    assert!(out.contains("10.0.2.3                53  udp    (private)"));

    // Files by category, with bytes.
    assert!(out.contains("device_identifiers (sensitive): 2 paths, 5 opens, 9.3 KiB read"));
    assert!(out.contains("media (sensitive): 2 paths, 2 opens, 1.4 MiB read"));
    assert!(out.contains("own_app_data: 2 paths, 2 opens, 64.8 KiB read"));
    assert!(out.contains("other_apps_data (sensitive): 1 path, 0 opens (1 failed), 0 B read"));
    assert!(out.contains("system_libraries_fonts (noise): 3 paths, 3 opens, 164.3 KiB read"));

    // Header: completeness, geo credit, markers.
    assert!(out.contains("Lost        0 (complete: every event the probes produced is here)"));
    assert!(out.contains("Geo data    MaxMind DB test data (fake records)"));
    assert!(out.contains("+29.500s scenario: press HOME"));
    assert!(!out.contains("!!"), "a complete session has no warning");
}

#[test]
fn json_summary_schema_and_values() {
    let j = json("spyapp");
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["generator"]["tool"], "emuwatch");
    assert_eq!(j["session"]["duration_s"], 120.0);
    assert_eq!(j["session"]["events_total"], 56);
    assert_eq!(j["session"]["events"]["connect"], 15);
    assert_eq!(j["completeness"]["complete"], true);
    assert_eq!(j["completeness"]["warnings"].as_array().unwrap().len(), 0);
    assert_eq!(j["geo"]["enriched"], true);
    assert_eq!(j["geo"]["sources"][0]["role"], "country");
    assert_eq!(j["geo"]["sources"][0]["database_type"], "GeoIP2-Country");
    assert_eq!(j["geo"]["sources"][1]["role"], "asn");
    assert!(
        j["geo"]["attribution"]
            .as_str()
            .unwrap()
            .contains("MaxMind DB test data")
    );
    assert_eq!(j["categories"]["source"], "built-in");
    assert_eq!(
        j["markers"][1]["label"],
        "scenario: am force-stop com.example.spyapp"
    );

    let apps = j["apps"].as_array().unwrap();
    assert_eq!(apps[0]["app"], "com.example.spyapp");
    assert_eq!(apps[0]["background_collection"], true);
    assert_eq!(apps[1]["app"], "com.example.notes");
    assert_eq!(apps[1]["background_collection"], false);
    let a = &apps[0];

    let findings = a["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 15);
    let phases: Vec<&str> = findings
        .iter()
        .map(|f| f["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases.iter().filter(|p| **p == "background").count(), 6);
    assert_eq!(phases.iter().filter(|p| **p == "closed").count(), 9);
    assert!(phases.iter().all(|p| *p != "foreground"));
    let firsts: Vec<f64> = findings
        .iter()
        .map(|f| f["first_s"].as_f64().unwrap())
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {firsts:?}"
    );

    let f = findings
        .iter()
        .find(|f| f["target"] == "216.160.83.56:443/tcp")
        .unwrap();
    assert_eq!(f["kind"], "connect");
    assert_eq!(f["phase"], "closed");
    assert_eq!(f["count"], 2);
    assert_eq!(f["after_closed_s"], 2.0);
    assert_eq!(f["after_left_foreground_s"], 32.0);
    assert_eq!(f["first"], "2026-11-20T10:01:02.000000000Z");
    assert_eq!(f["last"], "2026-11-20T10:01:32.000000000Z");
    assert_eq!(f["destination"]["country"], "US");
    assert_eq!(f["destination"]["asn"], 209);
    assert_eq!(f["destination"]["as_org"], Value::Null);
    assert_eq!(f["pids"], serde_json::json!([4301]));
    assert_eq!(f["comms"], serde_json::json!(["spyd"]));
    assert_eq!(f["results"], serde_json::json!({"ok": 2}));

    let f = findings
        .iter()
        .find(|f| f["target"] == "149.101.100.5:443/tcp")
        .unwrap();
    assert_eq!(f["after_closed_s"], Value::Null);
    assert_eq!(f["after_left_foreground_s"], 1.5);
    assert_eq!(f["destination"]["as_org"], "CELLCO-PART");

    let f = findings
        .iter()
        .find(|f| f["target"] == "/proc/cpuinfo" && f["phase"] == "closed")
        .unwrap();
    assert_eq!(f["kind"], "file");
    assert_eq!(f["category"], "device_identifiers");
    assert_eq!(f["bytes"], 3174);
    assert_eq!(f["detail"], "1 open, 3.1 KiB read");
    let f = findings.iter().find(|f| f["kind"] == "camera").unwrap();
    assert_eq!(f["ops"], serde_json::json!(["open", "stream_on"]));
    assert_eq!(f["target"], "/dev/video0");
    let f = findings.iter().find(|f| f["kind"] == "microphone").unwrap();
    assert_eq!(f["results"], serde_json::json!({"EACCES": 1}));

    // Phases.
    let ph = a["phases"].as_array().unwrap();
    let durations: Vec<(&str, f64)> = ph
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().unwrap(),
                p["duration_s"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        durations,
        [("foreground", 30.0), ("background", 30.0), ("closed", 60.0)]
    );
    assert_eq!(ph[2]["connects"], 6);
    assert_eq!(ph[2]["camera"], 2);
    assert_eq!(ph[2]["bytes_read"], 3174 + 18 + 65536 + 1258291);
    let tr = a["transitions"].as_array().unwrap();
    assert_eq!(tr.len(), 3);
    assert_eq!(
        (tr[1]["from"].as_str(), tr[1]["to"].as_str()),
        (Some("foreground"), Some("background"))
    );
    assert_eq!(tr[2]["t_s"], 60.0);

    // Destinations grouped by (address, port, proto).
    let d = a["destinations"].as_array().unwrap();
    assert_eq!(d.len(), 9);
    let row = |addr: &str| {
        d.iter()
            .find(|r| r["address"] == addr)
            .unwrap_or_else(|| panic!("{addr}"))
    };
    assert_eq!(row("149.101.100.5")["count"], 3);
    assert_eq!(
        row("149.101.100.5")["by_phase"],
        serde_json::json!({"background": 3})
    );
    assert_eq!(
        row("89.160.20.112")["results"],
        serde_json::json!({"EINPROGRESS": 2})
    );
    assert_eq!(row("89.160.20.112")["asn"], 29518);
    assert_eq!(row("::ffff:89.160.20.113")["country"], "SE");
    assert_eq!(row("2001:218::10")["country"], "JP");
    assert_eq!(row("111.235.160.10")["country"], "CN");
    assert_eq!(row("1.128.0.1")["as_org"], "Telstra Pty Ltd");
    assert_eq!(row("1.128.0.1")["country"], Value::Null);
    assert_eq!(row("10.0.2.3")["scope"], "private");
    assert_eq!(
        row("10.0.2.3")["by_phase"],
        serde_json::json!({"foreground": 1, "closed": 1})
    );
    let countries: Vec<&str> = a["countries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["country"].as_str())
        .collect();
    assert_eq!(countries[0], "US");
    assert!(countries.contains(&"CN") && countries.contains(&"GB"));

    // Devices and files.
    let dev = a["devices"].as_array().unwrap();
    assert_eq!(dev[0]["kind"], "camera");
    assert_eq!(dev[0]["count"], 4);
    assert_eq!(dev[0]["pids"], serde_json::json!([4242, 4301]));
    let files = a["files"].as_array().unwrap();
    let cats: Vec<&str> = files
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        cats,
        [
            "device_identifiers",
            "media",
            "own_app_data",
            "other_apps_data",
            "system_libraries_fonts"
        ]
    );
    assert_eq!(files[0]["sensitive"], true);
    assert_eq!(files[4]["noise"], true);
    let cpu = files[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/proc/cpuinfo")
        .unwrap();
    assert_eq!(cpu["bytes_read"], 3 * 3174);
    assert_eq!(cpu["opens"], 3);
    assert_eq!(cpu["read_calls"], 6);
    assert_eq!(files[3]["failed_opens"], 1);

    let procs = a["processes"].as_array().unwrap();
    assert_eq!(procs[1]["pid"], 4301);
    assert_eq!(
        procs[1]["exec"],
        serde_json::json!(["/data/data/com.example.spyapp/files/spyd"])
    );
    assert_eq!(procs[0]["exit_code"], 0);
}

/// Every field of summary.json is documented in docs/report.md.
#[test]
fn json_fields_are_documented() {
    let doc = std::fs::read_to_string(root().join("docs/report.md")).expect("docs/report.md");
    let j = json("spyapp");
    let mut missing = Vec::new();
    let mut check = |v: &Value, what: &str| {
        for k in v
            .as_object()
            .unwrap_or_else(|| panic!("{what} is an object"))
            .keys()
        {
            if !doc.contains(&format!("`{k}`")) {
                missing.push(format!("{what}.{k}"));
            }
        }
    };
    check(&j, "summary");
    for k in ["generator", "session", "completeness", "geo", "categories"] {
        check(&j[k], k);
    }
    check(&j["geo"]["sources"][0], "geo.sources[]");
    check(&j["categories"]["categories"][0], "categories.categories[]");
    check(&j["markers"][0], "markers[]");
    let a = &j["apps"][0];
    check(a, "apps[]");
    for k in [
        "phases",
        "transitions",
        "lifecycle",
        "destinations",
        "countries",
        "devices",
        "files",
        "processes",
    ] {
        check(&a[k][0], &format!("apps[].{k}[]"));
    }
    for f in a["findings"].as_array().unwrap() {
        check(f, "apps[].findings[]");
        if f["destination"].is_object() {
            check(&f["destination"], "apps[].findings[].destination");
        }
    }
    check(&a["phases"][0]["spans"][0], "apps[].phases[].spans[]");
    check(&a["files"][0]["files"][0], "apps[].files[].files[]");
    assert!(missing.is_empty(), "not in docs/report.md: {missing:?}");
}

/// Binder capabilities (the `binder` fixture) in the text and JSON reports: headline, findings
/// and per-phase counts of every Android-service kind beside camera and microphone.
#[test]
fn binder_kinds_in_text_and_json() {
    let out = report("binder", "text");
    assert!(
        out.contains(
            "4 background-collection findings (2 in background, 2 after close): asked for the \
             location 1 time in the background; read a device identifier 1 time after close; \
             read the clipboard 3 times after close; queried Wi-Fi 2 times in the background"
        ),
        "{out}"
    );
    assert!(
        out.contains("\nCamera, microphone and Android services"),
        "{out}"
    );
    assert!(out.contains("device_identifier 1, clipboard 3"), "{out}");
    let j = json("binder");
    let a = &j["apps"][0];
    let want = [
        (
            "foreground",
            [("clipboard", 1), ("wifi", 1), ("location", 0)],
        ),
        (
            "background",
            [("clipboard", 0), ("wifi", 2), ("location", 1)],
        ),
        ("closed", [("clipboard", 3), ("wifi", 0), ("location", 0)]),
    ];
    for (phase, counts) in want {
        let p = a["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["phase"] == phase)
            .unwrap();
        for (k, n) in counts {
            assert_eq!(p[k], n, "{phase} {k}: {p}");
        }
        for k in [
            "contacts",
            "installed_apps",
            "accounts",
            "camera",
            "microphone",
        ] {
            assert_eq!(p[k], 0, "{phase} {k}: {p}");
        }
    }
    let closed = &a["phases"].as_array().unwrap()[2];
    assert_eq!(closed["device_identifier"], 1, "{closed}");
    let kinds: Vec<(&str, &str, u64)> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap(),
                f["phase"].as_str().unwrap(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("location", "background", 1),
            ("wifi", "background", 2),
            ("clipboard", "closed", 3),
            ("device_identifier", "closed", 1),
        ]
    );
    // A call of an interface no rule knows is a binder_call, not a finding.
    assert_eq!(j["session"]["events"]["binder_call"], 16);
}

#[test]
fn without_geo_databases_the_recorded_values_stay() {
    let out = emuwatch(&["report", s(&session("spyapp")), "--format", "json"]);
    let j: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(j["geo"]["enriched"], false);
    assert_eq!(j["geo"]["attribution"], "");
    let d = j["apps"][0]["destinations"].as_array().unwrap();
    assert!(
        d.iter()
            .all(|r| r["country"].is_null() && r["asn"].is_null())
    );
    // Scope is always computed (the fixture records none for the mapped address).
    let mapped = d
        .iter()
        .find(|r| r["address"] == "::ffff:89.160.20.113")
        .unwrap();
    assert_eq!(mapped["scope"], "public");
    let text = ok(&emuwatch(&["report", s(&session("spyapp"))]));
    assert!(text.contains("Geo         no GeoIP database"));
    assert!(text.contains("connect to 149.101.100.5:443/tcp  x3"));
}

#[test]
fn geo_databases_from_environment() {
    let out = emuwatch_env(
        &["report", s(&session("spyapp")), "--format", "json"],
        &[("EMUWATCH_GEOIP_COUNTRY", &country_db())],
    );
    let j: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(j["geo"]["sources"].as_array().unwrap().len(), 1);
    let d = j["apps"][0]["destinations"].as_array().unwrap();
    let r = d.iter().find(|r| r["address"] == "81.2.69.160").unwrap();
    assert_eq!(r["country"], "GB");
    assert!(r["asn"].is_null());
    // A flag wins over the variable.
    let broken = fixture("geoip/GeoIP2-City-Test-Invalid-Node-Count.mmdb");
    let out = emuwatch_env(
        &[
            "report",
            s(&session("spyapp")),
            "--geoip-country",
            s(&country_db()),
        ],
        &[("EMUWATCH_GEOIP_COUNTRY", &broken)],
    );
    ok(&out);
    // Default locations: $XDG_DATA_HOME/emuwatch/geo/country.mmdb.
    let home = tempfile::tempdir().unwrap();
    let geo = home.path().join("emuwatch/geo");
    std::fs::create_dir_all(&geo).unwrap();
    std::fs::copy(country_db(), geo.join("country.mmdb")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emuwatch"));
    let out = cmd
        .args(["report", s(&session("spyapp")), "--format", "json"])
        .env_remove("EMUWATCH_GEOIP_COUNTRY")
        .env("EMUWATCH_GEOIP_ASN", "")
        .env("XDG_DATA_HOME", home.path())
        .output()
        .unwrap();
    let j: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(j["geo"]["sources"][0]["path"], s(&geo.join("country.mmdb")));
}

#[test]
fn incomplete_session_says_so_at_the_top() {
    let out = report("incomplete", "text");
    let first: Vec<&str> = out.lines().take(4).collect();
    assert!(
        first[2].starts_with("!! INCOMPLETE SESSION: 12 events were lost (ring_buffer_full 12)"),
        "{out}"
    );
    assert!(
        first[3].starts_with("!! the recording did not finish cleanly"),
        "{out}"
    );
    assert!(out.contains("Lost        12 (ring_buffer_full 12; undecodable 0) - INCOMPLETE"));
    assert!(out.contains("NOT FINISHED"));
    let j = json("incomplete");
    assert_eq!(j["completeness"]["complete"], false);
    assert_eq!(j["completeness"]["ended"], false);
    assert_eq!(j["completeness"]["lost_total"], 12);
    assert_eq!(j["completeness"]["lost_in_timeline"], 12);
    assert_eq!(j["completeness"]["lost_by_reason"]["ring_buffer_full"], 12);
    let html = report("incomplete", "html");
    let banner = pos(
        &html,
        r#"<div class="banner bad">INCOMPLETE SESSION: 12 events were lost"#,
    );
    assert!(banner < pos(&html, "<section class=\"app\""));
    assert!(!html.contains("banner ok"));
}

#[test]
fn hostile_names_are_escaped_in_text() {
    let out = report("hostile", "text");
    assert!(!out.contains('\x1b'), "raw ESC in the output");
    assert!(!out.contains('\x07'));
    assert!(!out.contains('\u{202e}'));
    assert!(
        !out.lines().any(|l| l.starts_with("fake line")),
        "a newline in a name made a line"
    );
    assert!(out.contains(
        "/data/data/victim.app/line1\\nline2\\x1b[31mRED\\x1b[0m\\u{202e}gpj.exe [other_apps_data]"
    ));
    assert!(out.contains("pid 4444 (cam\\x1b]0;pwned\\x07\\x1b[2J)"));
    assert!(out.contains("pid 4444 (evil\\nfake line: 0 findings)"));
    assert!(out.contains("App com.evil\"><svg onload=alert(3)>"));
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn hostile_names_are_escaped_in_html() {
    let html = report("hostile", "html");
    // The page's own markup only.
    assert_eq!(count(&html, "<script"), 1, "one script element");
    assert_eq!(
        count(&html, "</script>"),
        1,
        "a name closed the script element"
    );
    assert_eq!(count(&html, "<img"), 0);
    assert_eq!(count(&html, "<svg"), 1, "one SVG: the timeline");
    assert!(!html.contains("onerror=alert(1)>"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;&quot;&#39;.db"));
    assert!(html.contains("com.evil&quot;&gt;&lt;svg onload=alert(3)&gt;"));
    assert!(html.contains("host&lt;script&gt;alert(6)&lt;/script&gt;"));
    assert!(html.contains("line1\\nline2\\x1b[31mRED"));
    assert!(!html.contains('\x1b'));
    // Self-contained: nothing to fetch, and a policy that forbids fetching anyway.
    assert!(html.contains("default-src 'none'"));
    for bad in [
        "<link", "<iframe", "<object", "<embed", "url(", "@import", " src=\"", "src='",
    ] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://"));
}

fn chromium() -> PathBuf {
    if let Some(c) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(c);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "Chromium is needed to check the HTML report in a real browser and is not installed. \
         Install it with `apt-get install -y chromium` (Debian; scripts/check-html.sh does this \
         when run as root) or set CHROMIUM=/path/to/chromium."
    );
}

/// Render a report in headless Chromium (scripts/check-html.sh) and check what the browser built.
fn render_in_chromium(name: &str, out_dir: &Path) -> (String, String) {
    let browser = chromium();
    std::fs::create_dir_all(out_dir).unwrap();
    let html = out_dir.join("report.html");
    std::fs::write(&html, report(name, "html")).unwrap();
    let out = Command::new("bash")
        .arg(root().join("scripts/check-html.sh"))
        .arg(&html)
        .arg(out_dir)
        .env("CHROMIUM", &browser)
        .env("CHECK_HTML_WINDOW", "1280,3200")
        .output()
        .expect("run scripts/check-html.sh");
    assert!(
        out.status.success(),
        "check-html.sh failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = std::fs::read_to_string(out_dir.join("dom.html")).unwrap();
    let console = std::fs::read_to_string(out_dir.join("console.log")).unwrap();
    let png = std::fs::read(out_dir.join("screenshot.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    assert!(
        png.len() > 20_000,
        "screenshot too small to hold the report ({} bytes)",
        png.len()
    );
    eprintln!("screenshot: {}", out_dir.join("screenshot.png").display());
    (dom, console)
}

#[test]
fn html_report_renders_in_chromium() {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html");

    let (dom, console) = render_in_chromium("spyapp", &base.join("spyapp"));
    assert!(
        console.trim().is_empty(),
        "console messages (script error or CSP violation):\n{console}"
    );
    assert!(
        dom.contains(r#"data-ready="1""#),
        "the page's script did not run"
    );
    let findings = pos(&dom, "<h3>Background collection</h3>");
    assert!(findings < pos(&dom, "<h3>Timeline</h3>"));
    assert!(findings < pos(&dom, "<h3>Destinations (9)</h3>"));
    for text in [
        "background-collection findings (6 in background, 9 after close)",
        "<code>149.101.100.5:443/tcp</code><br><b>US</b> · AS6167 · CELLCO-PART",
        "<code>216.160.83.56:443/tcp</code><br><b>US</b> · AS209",
        "<b>2.0 s</b> after close<br>32.0 s after leaving foreground",
        "<code>/proc/cpuinfo</code> <span class=\"badge sens\">device_identifiers</span>",
        "<code>/dev/video0</code><br><span class=\"muted\">open, stream_on</span>",
        "Telstra Pty Ltd",
        "Complete session",
    ] {
        assert!(dom.contains(text), "{text:?} not in the DOM");
    }
    // The timeline: one lane per process, phases shaded, marks with details.
    assert!(dom.contains(r#"<svg class="timeline""#));
    assert!(dom.contains(">4242 example.spyapp</text>") && dom.contains(">4301 spyd</text>"));
    assert!(dom.contains(r#"<g class="band ph-closed">"#));
    assert!(dom.contains("connect 216.160.83.56:443/tcp US AS209 | pid 4301 spyd | closed"));

    // Android services asked over binder (the `binder` fixture): findings, the per-phase
    // column, the device/service table.
    let (dom, console) = render_in_chromium("binder", &base.join("binder"));
    assert!(console.trim().is_empty(), "console messages:\n{console}");
    assert!(dom.contains(r#"data-ready="1""#));
    for text in [
        "background-collection findings (2 in background, 2 after close)",
        // The headline leads the app's section, as in the text report.
        r#"<h2>App <code>com.example.clipspy</code></h2><p class="headline alert">4 background-collection findings (2 in background, 2 after close): asked for the location 1 time in the background; read a device identifier 1 time after close; read the clipboard 3 times after close; queried Wi-Fi 2 times in the background</p>"#,
        r#"<span class="badge kind">clipboard</span> <code>binder:clipboard/android.content.IClipboard.getPrimaryClip</code><br><span class="muted">service_call</span></td><td class="num">3</td>"#,
        r#"<span class="badge kind">wifi</span> <code>binder:wifi/android.net.wifi.IWifiManager.getConnectionInfo</code><br><span class="muted">service_call</span></td><td class="num">2</td>"#,
        r#"<span class="badge kind">location</span> <code>binder:location/android.location.ILocationManager.getLastLocation</code>"#,
        "<b>2.0 s</b> after close",
        "<h3>Camera, microphone and Android services</h3>",
        "binder:clipboard/android.content.IClipboard.getPrimaryClip",
        "binder:iphonesubinfo/com.android.internal.telephony.IPhoneSubInfo.getImeiForSubscriber",
        "<th>Android services</th>",
        "<td>clipboard 1, wifi 1</td>",
        "<td>location 1, wifi 2</td>",
        "<td>device_identifier 1, clipboard 3</td>",
    ] {
        assert!(dom.contains(text), "{text:?} not in the binder DOM");
    }

    let (dom, console) = render_in_chromium("hostile", &base.join("hostile"));
    assert!(console.trim().is_empty(), "console messages:\n{console}");
    assert!(dom.contains(r#"data-ready="1""#));
    assert_eq!(count(&dom, "<img"), 0, "a name became an img element");
    assert_eq!(count(&dom, "<script"), 1, "a name became a script element");
    assert_eq!(count(&dom, "<svg"), 1);
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the hostile comm shown as text"
    );
    assert!(dom.contains("&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
    assert!(dom.contains("read /proc/cpuinfo") || dom.contains("<code>/proc/cpuinfo</code>"));
}

fn error_line(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("emuwatch: error: "), "{err}");
    assert!(out.stdout.is_empty());
    err
}

#[test]
fn missing_session_is_a_clean_error() {
    let err = error_line(&emuwatch(&["report", "/nonexistent/emuwatch-session"]));
    assert!(
        err.contains("session directory /nonexistent/emuwatch-session does not exist"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = error_line(&emuwatch(&["report", s(dir.path())]));
    assert!(err.contains("session.json"), "{err}");
}

#[test]
fn corrupt_event_line_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = session("spyapp");
    std::fs::copy(src.join("session.json"), dir.path().join("session.json")).unwrap();
    let events = std::fs::read_to_string(src.join("events.jsonl")).unwrap();
    let mut lines: Vec<&str> = events.lines().collect();
    lines[4] = r#"{"ts":"2026-11-20T10:00:01Z","kind":"connect","daddr":"not an address"#;
    std::fs::write(dir.path().join("events.jsonl"), lines.join("\n")).unwrap();
    let err = error_line(&emuwatch(&["report", s(dir.path())]));
    assert!(err.contains("events.jsonl:5: bad event line"), "{err}");
}

#[test]
fn broken_geo_databases_are_clean_errors() {
    for name in [
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "GeoIP2-City-Test-Broken-Double-Format.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
        "MaxMind-DB-test-pointer-decoder-dos.mmdb",
    ] {
        let db = fixture(&format!("geoip/{name}"));
        let err = error_line(&emuwatch(&[
            "report",
            s(&session("spyapp")),
            "--geoip-country",
            s(&db),
        ]));
        assert!(
            err.contains(&format!("GeoIP country database {}", db.display())),
            "{err}"
        );
        assert!(err.contains("MaxMind DB"), "{err}");
        let err = error_line(&emuwatch(&[
            "report",
            s(&session("spyapp")),
            "--geoip-asn",
            s(&db),
        ]));
        assert!(err.contains("ASN database"), "{err}");
    }
    let err = error_line(&emuwatch(&[
        "report",
        s(&session("spyapp")),
        "--geoip-asn",
        "/nonexistent/asn.mmdb",
    ]));
    assert!(err.contains("/nonexistent/asn.mmdb"), "{err}");
}

#[test]
fn categories_can_be_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[category]]\nname = \"cpu_probe\"\ndescription = \"CPU details\"\nsensitive = true\npatterns = [\"/proc/cpuinfo\"]\n",
    )
    .unwrap();
    let out = emuwatch(&[
        "report",
        s(&session("spyapp")),
        "--format",
        "json",
        "--categories",
        s(&rules),
    ]);
    let j: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(j["categories"]["source"], s(&rules));
    let cats: Vec<&str> = j["apps"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(cats, ["cpu_probe", "other"]);
    let targets: Vec<&str> = j["apps"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "file")
        .map(|f| f["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["/proc/cpuinfo", "/proc/cpuinfo"]);

    std::fs::write(
        &rules,
        "[[category]]\nname = \"x\"\npatterns = [\"relative\"]\n",
    )
    .unwrap();
    let err = error_line(&emuwatch(&[
        "report",
        s(&session("spyapp")),
        "--categories",
        s(&rules),
    ]));
    assert!(err.contains("must be an absolute path pattern"), "{err}");
}

#[test]
fn out_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.json");
    let out = emuwatch(&[
        "report",
        s(&session("spyapp")),
        "-f",
        "json",
        "-o",
        s(&path),
    ]);
    assert!(ok(&out).is_empty());
    let j: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(j["schema_version"], 1);
}

/// Shell completions and the man page come from the CLI definition itself.
#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    for shell in ["bash", "zsh", "fish"] {
        let out = emuwatch(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        for word in ["record", "report", "leave-running", "baseline"] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = emuwatch(&["man"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(".TH emuwatch 1"), "{text}");
    assert!(text.contains("record"), "{text}");
    let out = emuwatch(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

/// A hostile or damaged session: byte counts near u64::MAX saturate instead of wrapping or
/// panicking, and a line with invalid UTF-8 costs that line (named on stderr), not the report.
#[test]
fn huge_counts_saturate_and_a_bad_line_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let src = session("spyapp");
    for f in ["session.json", "events.jsonl"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let events = tmp.path().join("events.jsonl");
    let text = std::fs::read_to_string(&events).unwrap();
    let read = text
        .lines()
        .find(|l| l.contains("\"kind\":\"file_read\""))
        .expect("a file_read in the fixture");
    let mut v: Value = serde_json::from_str(read).unwrap();
    v["bytes"] = Value::from(u64::MAX - 1);
    let mut bytes = text.into_bytes();
    for _ in 0..2 {
        bytes.extend_from_slice(v.to_string().as_bytes());
        bytes.push(b'\n');
    }
    let bad_line = bytes.iter().filter(|b| **b == b'\n').count() + 1;
    bytes.extend_from_slice(b"{\"ts\":\"\xff\"}\n");
    std::fs::write(&events, bytes).unwrap();
    let out = emuwatch(&["report", s(tmp.path()), "--format", "json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "skipped 1 line(s) with invalid UTF-8 (line {bad_line})"
        )),
        "{err}"
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        j.to_string().contains(&u64::MAX.to_string()),
        "the sum saturates at u64::MAX"
    );
}

/// A session of the spyapp fixture's events, its context events (phases, markers) once and
/// the rest repeated to `n` lines: the same apps, processes, destinations and paths, only more
/// events.
fn repeated_session(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = session("spyapp");
    std::fs::copy(src.join("session.json"), dir.path().join("session.json")).unwrap();
    let text = std::fs::read_to_string(src.join("events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let repeat: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.contains(r#""kind":"phase""#) && !l.contains(r#""kind":"marker""#))
        .collect();
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(dir.path().join("events.jsonl")).unwrap());
    use std::io::Write;
    for l in &lines {
        writeln!(out, "{l}").unwrap();
    }
    for l in repeat.iter().cycle().take(n.saturating_sub(lines.len())) {
        writeln!(out, "{l}").unwrap();
    }
    out.flush().unwrap();
    dir
}

/// Peak RSS (KiB) of `emuwatch ARGS`, from the kernel's accounting of the child.
// The child is reaped by wait4 (for its rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
fn peak_rss_kib(args: &[&str]) -> i64 {
    let child = Command::new(env!("CARGO_BIN_EXE_emuwatch"))
        .args(args)
        .env("EMUWATCH_GEOIP_COUNTRY", "")
        .env("EMUWATCH_GEOIP_ASN", "")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run emuwatch");
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as i32;
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut ru) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "emuwatch {args:?} failed (status {status})"
    );
    ru.ru_maxrss
}

/// `report` (HTML: the most it keeps) and `baseline save` read a session in bounded memory:
/// ten times the events cost about the same peak memory. Holding the events (as before) made
/// the larger session cost several times more.
#[test]
fn memory_does_not_grow_with_the_session() {
    let (small, big) = (repeated_session(10_000), repeated_session(100_000));
    let out = tempfile::tempdir().unwrap();
    let html = out.path().join("r.html");
    let base = out.path().join("b.json");
    for args in [
        vec!["report", "--format", "html", "--out", s(&html)],
        vec!["baseline", "save"],
    ] {
        let run = |dir: &Path| {
            let mut a = args.clone();
            a.insert(if a[0] == "report" { 1 } else { 2 }, s(dir));
            if a[0] == "baseline" {
                a.push(s(&base));
            }
            peak_rss_kib(&a)
        };
        let (rs, rb) = (run(small.path()), run(big.path()));
        // 100k events of this session are ~30 MB of JSON lines and several times that parsed
        // (held whole, the larger session cost ~95 MiB against ~25 MiB).
        assert!(
            rb < rs + rs / 2 + 16 * 1024,
            "{}: peak RSS {rs} KiB on 10k events but {rb} KiB on 100k events",
            args[0]
        );
    }
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("com.example.spyapp"));
}
