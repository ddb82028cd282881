//! Many sessions: `emuwatch export --format parquet`, `emuwatch sessions` and the DuckDB query
//! of docs/fleet.md, on the fixture sessions and on scenario runs recorded here (real kernel,
//! the bundled simulated app; needs root, like scenario.rs). DuckDB is the `duckdb` Python
//! package in `.tools/duckdb-venv` (scripts/install-duckdb.sh; `cargo xtask test` installs it):
//! without it the DuckDB tests fail, saying how to install it.
use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

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

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/sessions").join(name)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("emuwatch-fleet-")
        .tempdir()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn emuwatch(args: &[&str]) -> Output {
    Command::new(EMUWATCH)
        // The fixtures' GeoIP facts are what their session files say: no installed databases.
        .env("EMUWATCH_GEOIP_COUNTRY", "")
        .env("EMUWATCH_GEOIP_ASN", "")
        .env("XDG_DATA_HOME", "/nonexistent")
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn report_json(session: &Path) -> Value {
    serde_json::from_str(&ok(&emuwatch(&["report", s(session), "--format", "json"]))).unwrap()
}

fn session_info(session: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(session.join("session.json")).unwrap()).unwrap()
}

/// Rows and key-value metadata of a Parquet file.
fn parquet_meta(path: &Path) -> (i64, BTreeMap<String, String>) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let m = r.metadata().file_metadata();
    let kv = m
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    (m.num_rows(), kv)
}

/// The partition files of a table: session id -> file.
fn partitions(out: &Path, table: &str) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(out.join(table))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let id = name
                .strip_prefix("session=")
                .expect("session=<id>")
                .to_string();
            let files: Vec<String> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(files, ["part-0.parquet"], "{}", p.display());
            (id, p.join("part-0.parquet"))
        })
        .collect()
}

fn lines(session: &Path) -> i64 {
    std::fs::read_to_string(session.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as i64
}

fn findings(report: &Value) -> Vec<(String, Value)> {
    report["apps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            let app = a["app"].as_str().unwrap().to_string();
            a["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |f| (app.clone(), f.clone()))
        })
        .collect()
}

/// The Python of `.tools/duckdb-venv`, with duckdb importable.
fn duckdb_python() -> PathBuf {
    let py = root().join(".tools/duckdb-venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "DuckDB is not installed: run scripts/install-duckdb.sh (cargo xtask test does), \
         which puts the duckdb package from PyPI into .tools/duckdb-venv"
    );
    py
}

/// Run SQL in DuckDB; the rows as JSON arrays.
fn duckdb(sql: &str) -> Vec<Vec<Value>> {
    let script = r#"
import duckdb, json, sys
rows = duckdb.sql(sys.stdin.read()).fetchall()
print(json.dumps([[v if v is None or isinstance(v, (int, float, str, bool)) else str(v) for v in r] for r in rows]))
"#;
    let mut child = Command::new(duckdb_python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "duckdb failed on\n{sql}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The query of docs/fleet.md marked `-- NAME`, reading `out` instead of `exported/`.
fn doc_query(name: &str, out: &Path) -> String {
    let doc = std::fs::read_to_string(root().join("docs/fleet.md")).unwrap();
    let start = doc
        .find(&format!("```sql\n-- {name}\n"))
        .unwrap_or_else(|| panic!("docs/fleet.md has no ```sql block starting with -- {name}"));
    let body = &doc[start + 7..];
    let body = &body[..body.find("```").unwrap()];
    body.replace("'exported/", &format!("'{}/", s(out)))
}

/// The doc's camera-after-close query against the reports: per (android_api, app), the
/// camera events after close and the sessions they were in.
fn check_camera_after_close(out: &Path, sessions: &[&Path]) -> Vec<Vec<Value>> {
    let got = duckdb(&doc_query("camera-after-close", out));
    // DuckDB sorts nulls last.
    let mut want: BTreeMap<(bool, Option<u64>, String), (u64, u64)> = BTreeMap::new();
    for sess in sessions {
        let api = session_info(sess)["android_api"]["level"].as_u64();
        let mut per_app: BTreeMap<String, u64> = BTreeMap::new();
        for (app, f) in findings(&report_json(sess)) {
            if f["kind"] == "camera" && f["phase"] == "closed" {
                *per_app.entry(app).or_default() += f["count"].as_u64().unwrap();
            }
        }
        for (app, n) in per_app {
            let e = want.entry((api.is_none(), api, app)).or_default();
            e.0 += n;
            e.1 += 1;
        }
    }
    let want: Vec<Vec<Value>> = want
        .into_iter()
        .map(|((_, api, app), (n, k))| vec![api.into(), app.into(), n.into(), k.into()])
        .collect();
    assert_eq!(got, want, "DuckDB against the reports");
    got
}

/// The fixture sessions export to three tables, one partition per session: as many event
/// rows as lines, the report's findings, one session row; the DuckDB query of docs/fleet.md
/// gives the reports' numbers.
#[test]
fn fixture_sessions_export_to_parquet_and_duckdb_agrees_with_the_reports() {
    let tmp = tempdir();
    let out = tmp.path().join("exported");
    let names = ["spyapp", "binder", "hostile", "incomplete"];
    let dirs: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    let mut args = vec!["export"];
    args.extend(dirs.iter().map(|d| s(d)));
    args.extend(["--format", "parquet", "--out", s(&out)]);
    let o = emuwatch(&args);
    ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.lines().count(), 4, "{stderr}");

    let events = partitions(&out, "events");
    let finding_files = partitions(&out, "findings");
    let session_files = partitions(&out, "sessions");
    assert_eq!(events.len(), 4);
    assert_eq!(
        events.keys().collect::<Vec<_>>(),
        session_files.keys().collect::<Vec<_>>()
    );
    for d in &dirs {
        // The id: derived (the fixtures have none), named on stderr.
        let id = events
            .keys()
            .find(|id| {
                stderr.contains(&format!("exported {} (", s(d)))
                    && stderr.contains(&format!("as session {id}"))
                    && stderr
                        .lines()
                        .any(|l| l.contains(s(d)) && l.ends_with(id.as_str()))
            })
            .unwrap_or_else(|| panic!("{stderr}"));
        let (rows, kv) = parquet_meta(&events[id]);
        assert_eq!(rows, lines(d), "{}", d.display());
        assert_eq!(kv["emuwatch.export_schema_version"], "1");
        assert_eq!(kv["emuwatch.table"], "events");
        let (rows, _) = parquet_meta(&finding_files[id]);
        assert_eq!(rows as usize, findings(&report_json(d)).len());
        assert_eq!(parquet_meta(&session_files[id]).0, 1);
    }
    let py = duckdb(&format!(
        "SELECT session_id, count(*), count(DISTINCT kind) FROM read_parquet('{}/events/*/*.parquet') GROUP BY 1 ORDER BY 1",
        s(&out)
    ));
    assert_eq!(py.len(), 4);
    // Typed columns, nested values and hostile names come back as written.
    let rows = duckdb(&format!(
        "SELECT typeof(ts), typeof(pid), typeof(dport), typeof(answers), app FROM read_parquet('{}/events/*/*.parquet') \
         WHERE kind = 'connect' AND app LIKE 'com.evil%' LIMIT 1",
        s(&out)
    ));
    assert_eq!(
        rows,
        [[
            Value::from("TIMESTAMP WITH TIME ZONE"),
            "UINTEGER".into(),
            "USMALLINT".into(),
            "STRUCT(\"name\" VARCHAR, \"type\" VARCHAR, ttl UINTEGER, \"data\" VARCHAR)[]".into(),
            "com.evil\"><svg onload=alert(3)>".into()
        ]]
    );
    let spy = report_json(&fixture("spyapp"));
    let rows = duckdb(&format!(
        "SELECT sum(count) FROM read_parquet('{}/findings/*/*.parquet') WHERE app = 'com.example.spyapp' \
         AND kind = 'connect' AND phase = 'closed' AND session_id IN \
         (SELECT session_id FROM read_parquet('{0}/sessions/*/*.parquet') WHERE complete)",
        s(&out)
    ));
    let want: u64 = findings(&spy)
        .iter()
        .filter(|(a, f)| {
            a == "com.example.spyapp" && f["kind"] == "connect" && f["phase"] == "closed"
        })
        .map(|(_, f)| f["count"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, [[Value::from(want)]]);
    let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let got = check_camera_after_close(&out, &dirs);
    assert!(
        !got.is_empty(),
        "the spyapp fixture uses the camera after close"
    );
}

/// Exporting another session adds its partitions and leaves the others' files alone;
/// exporting a session again gives the same bytes and leaves no temporary file.
#[test]
fn export_appends_without_rewriting_and_is_idempotent() {
    let tmp = tempdir();
    let out = tmp.path().join("exported");
    ok(&emuwatch(&[
        "export",
        s(&fixture("spyapp")),
        "--out",
        s(&out),
        "-q",
    ]));
    let snapshot = |out: &Path| -> BTreeMap<PathBuf, (u64, i64, i64, Vec<u8>)> {
        let mut m = BTreeMap::new();
        for t in ["events", "findings", "sessions"] {
            for (_, f) in partitions(out, t) {
                let md = std::fs::metadata(&f).unwrap();
                m.insert(
                    f.clone(),
                    (
                        md.ino(),
                        md.mtime(),
                        md.mtime_nsec(),
                        std::fs::read(&f).unwrap(),
                    ),
                );
            }
        }
        m
    };
    let first = snapshot(&out);
    assert_eq!(first.len(), 3);
    ok(&emuwatch(&[
        "export",
        s(&fixture("binder")),
        "--out",
        s(&out),
        "-q",
    ]));
    let second = snapshot(&out);
    assert_eq!(second.len(), 6);
    for (f, v) in &first {
        assert_eq!(&second[f], v, "{} was rewritten", f.display());
    }
    ok(&emuwatch(&[
        "export",
        s(&fixture("spyapp")),
        "--out",
        s(&out),
        "-q",
    ]));
    let third = snapshot(&out);
    assert_eq!(third.len(), 6);
    for (f, v) in &second {
        assert_eq!(third[f].3, v.3, "{} changed on re-export", f.display());
    }
    // Files are private, like sessions.
    for f in third.keys() {
        assert_eq!(std::fs::metadata(f).unwrap().mode() & 0o777, 0o600);
    }
}

/// Bad input is one line and exit 2.
#[test]
fn bad_exports_and_fleets_are_one_line_errors() {
    let tmp = tempdir();
    let out = tmp.path().join("exported");
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["session.json", "events.jsonl"] {
        std::fs::copy(fixture("binder").join(f), copy.join(f)).unwrap();
    }
    // `copy` has another directory name, so its derived id differs; a session with its own
    // id copied elsewhere is the same session.
    let mut info = session_info(&copy);
    info["session_id"] = "20261121T090000Z-0123456789abcdef".into();
    std::fs::write(copy.join("session.json"), info.to_string()).unwrap();
    let copy2 = tmp.path().join("copy2");
    std::fs::create_dir(&copy2).unwrap();
    for f in ["session.json", "events.jsonl"] {
        std::fs::copy(copy.join(f), copy2.join(f)).unwrap();
    }
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (args, want) in [
        (
            vec!["export", s(&empty), "--out", s(&out)],
            "is not a readable session",
        ),
        (
            vec!["export", s(&copy), s(&copy2), "--out", s(&out)],
            "are the same session (20261121T090000Z-0123456789abcdef)",
        ),
        (
            vec!["export", s(&copy), "--format", "csv", "--out", s(&out)],
            "invalid value 'csv'",
        ),
        (
            vec!["sessions", s(&empty)],
            "no sessions (session.json) under",
        ),
        (
            vec!["sessions", s(&copy), s(&copy2)],
            "are the same session",
        ),
        (
            vec!["sessions", s(&copy), "--fail-on", "bogus"],
            "invalid value 'bogus'",
        ),
        (
            vec!["record", "--label", "no-equals", "--", "true"],
            "--label \"no-equals\": expected KEY=VALUE",
        ),
        (
            vec!["record", "--label", "a b=c", "--", "true"],
            "the key must be",
        ),
    ] {
        let o = emuwatch(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `emuwatch sessions` on the fixtures: the table in text, JSON and HTML (hostile names
/// escaped), and the gate's exit status.
#[test]
fn sessions_table_and_gate_on_the_fixtures() {
    let tmp = tempdir();
    let fleet = tmp.path().join("fleet");
    // Two runs of one "scenario" (the same labels): spyapp, then binder a day later.
    for (name, labels) in [("spyapp", "a"), ("binder", "a"), ("hostile", "b")] {
        let d = fleet.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(fixture(name).join("events.jsonl"), d.join("events.jsonl")).unwrap();
        let mut info = session_info(&fixture(name));
        info["labels"] = serde_json::json!({ "set": labels, "device": name });
        std::fs::write(d.join("session.json"), info.to_string()).unwrap();
    }
    let o = emuwatch(&[
        "sessions",
        s(&fleet),
        "--group-by",
        "set",
        "--format",
        "json",
    ]);
    let j: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["sessions"].as_array().unwrap().len(), 3);
    let groups = j["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{j:#}");
    let g = groups.iter().find(|g| g["labels"]["set"] == "a").unwrap();
    assert_eq!(g["sessions"].as_array().unwrap().len(), 2);
    // Counts are the report's: the spyapp's camera after close (open + stream_on).
    let spy_id = g["previous"].as_str().unwrap();
    let row = |app: &str, phase: &str, kind: &str| {
        g["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["app"] == app && r["phase"] == phase && r["kind"] == kind)
            .unwrap_or_else(|| panic!("{app} {phase} {kind}: {g:#}"))
            .clone()
    };
    let cam = row("com.example.spyapp", "closed", "camera");
    let spy = report_json(&fixture("spyapp"));
    let want: u64 = findings(&spy)
        .iter()
        .filter(|(_, f)| f["kind"] == "camera" && f["phase"] == "closed")
        .map(|(_, f)| f["count"].as_u64().unwrap())
        .sum();
    assert_eq!(cam["counts"][spy_id], want);
    assert_eq!(cam["change"], "gone");
    let clip = row("com.example.clipspy", "closed", "clipboard");
    assert_eq!(clip["counts"][g["latest"].as_str().unwrap()], 3);
    assert_eq!(clip["change"], "new");
    assert_eq!(g["new"], 6, "{g:#}");
    assert_eq!(j["gate"]["failed"], false, "no --fail-on: no gate");

    // The gate.
    let o = emuwatch(&[
        "sessions",
        s(&fleet),
        "--group-by",
        "set",
        "--fail-on",
        "new",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("gate: FAILED"), "{text}");
    assert!(
        text.contains("scenario, set=a: 6 new in") || text.contains("no scenario, set=a: 6 new in"),
        "{text}"
    );
    assert!(text.contains("com.example.clipspy"), "{text}");
    // Grouped by every label (the default), each session is its own group: nothing to compare.
    let o = emuwatch(&[
        "sessions",
        s(&fleet),
        "--fail-on",
        "new",
        "--fail-on",
        "gone",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // HTML: one page, the hostile app name escaped.
    let page = tmp.path().join("fleet.html");
    ok(&emuwatch(&[
        "sessions",
        s(&fleet),
        "--format",
        "html",
        "--out",
        s(&page),
    ]));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("com.evil&quot;&gt;&lt;svg onload=alert(3)&gt;"),
        "{html}"
    );
    assert!(!html.contains("<svg"), "{html}");
    // The same page in a real browser: no console message (script error, CSP violation), and
    // the hostile name is text in the DOM Chromium built, not an element.
    let shot = tmp.path().join("fleet-html");
    let out = Command::new("bash")
        .arg(root().join("scripts/check-html.sh"))
        .arg(&page)
        .arg(&shot)
        .output()
        .expect("run scripts/check-html.sh");
    assert!(
        out.status.success(),
        "check-html.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let console = std::fs::read_to_string(shot.join("console.log")).unwrap();
    assert!(console.trim().is_empty(), "console messages:\n{console}");
    let dom = std::fs::read_to_string(shot.join("dom.html")).unwrap();
    assert!(
        !dom.contains("<svg"),
        "a hostile name became an element: {dom}"
    );
    assert!(
        dom.contains("com.evil\"&gt;&lt;svg onload=alert(3)&gt;")
            || dom.contains("com.evil&quot;&gt;&lt;svg onload=alert(3)&gt;"),
        "the hostile name is not shown as text: {dom}"
    );
    assert!(dom.contains("com.example.clipspy"), "{dom}");
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

/// A small scenario of the simulated app; `with_camera`: its service touches the camera
/// after close (the "new version" that regressed).
fn scenario(dir: &Path, with_camera: bool) -> PathBuf {
    let without = (!with_camera).then_some("service-camera");
    common::simapp_app_scenario(
        dir,
        &format!("app-{with_camera}.toml"),
        "fleet app",
        without,
    )
}

/// The issue's "done when": scenario runs recorded here with labels (two app versions on API
/// 33, one on API 34) export to Parquet, the DuckDB query of docs/fleet.md gives the reports'
/// counts, and `emuwatch sessions --group-by api --fail-on new` catches the version that
/// started using the camera after close.
#[test]
fn recorded_runs_export_query_and_gate() {
    require_root();
    let tmp = tempdir();
    let fleet = tmp.path().join("fleet");
    std::fs::create_dir(&fleet).unwrap();
    let old = scenario(tmp.path(), false);
    let new = scenario(tmp.path(), true);
    let runs = [
        ("v1.0-api33", &old, "1.0", "33"),
        ("v1.1-api33", &new, "1.1", "33"),
        ("v1.1-api34", &new, "1.1", "34"),
    ];
    let mut dirs = Vec::new();
    for (name, file, version, api) in runs {
        let d = fleet.join(name);
        let o = Command::new(EMUWATCH)
            .args(["run", s(file), "--out", s(&d), "--android-api", api])
            .args(["--label", &format!("app_version={version}")])
            .args(["--label", &format!("api={api}")])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let info = session_info(&d);
        assert_eq!(info["labels"]["app_version"], version);
        assert_eq!(info["labels"]["api"], api);
        assert_eq!(info["android_api"]["level"], api.parse::<u32>().unwrap());
        assert_eq!(info["complete"], true, "{name}");
        let id = info["session_id"].as_str().unwrap();
        assert!(id.len() == 33 && id.as_bytes()[16] == b'-', "{id}");
        dirs.push(d);
    }
    let ids: std::collections::BTreeSet<String> = dirs
        .iter()
        .map(|d| session_info(d)["session_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "unique session ids");

    // Export the whole fleet; every event is there.
    let out = tmp.path().join("exported");
    let mut args = vec!["export", "--out", s(&out), "-q"];
    args.extend(dirs.iter().map(|d| s(d)));
    ok(&emuwatch(&args));
    for d in &dirs {
        let info = session_info(d);
        let id = info["session_id"].as_str().unwrap();
        let (rows, _) = parquet_meta(&out.join(format!("events/session={id}/part-0.parquet")));
        assert_eq!(rows, lines(d));
        assert_eq!(rows as u64, info["events_total"].as_u64().unwrap());
    }
    let got = duckdb(&format!(
        "SELECT s.labels['app_version'], s.scenario, count(*) FROM read_parquet('{0}/events/*/*.parquet') e \
         JOIN read_parquet('{0}/sessions/*/*.parquet') s ON s.session_id = e.session_id \
         WHERE e.kind = 'camera' AND e.phase = 'closed' GROUP BY ALL ORDER BY ALL",
        s(&out)
    ));
    assert_eq!(
        got.len(),
        1,
        "only version 1.1 uses the camera after close: {got:?}"
    );
    assert_eq!(got[0][0], "1.1");
    assert_eq!(got[0][1], "fleet app");
    // The documented query, against the reports: API 33 and 34 each have one session with
    // camera use after close.
    let paths: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let rows = check_camera_after_close(&out, &paths);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], 33);
    assert_eq!(rows[1][0], 34);
    assert!(rows.iter().all(|r| r[3] == 1), "{rows:?}");

    // The gate: on API 33, version 1.1 has camera use after close that 1.0 had not.
    let o = emuwatch(&[
        "sessions",
        s(&fleet),
        "--group-by",
        "api",
        "--fail-on",
        "new",
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let g33 = j["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["api"] == "33")
        .unwrap();
    let new: Vec<(String, String, String)> = g33["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["change"] == "new")
        .map(|r| {
            (
                r["app"].as_str().unwrap().to_string(),
                r["phase"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        new,
        [(
            "emuwatch-simapp".to_string(),
            "closed".to_string(),
            "camera".to_string()
        )],
        "{g33:#}"
    );
    assert_eq!(j["gate"]["reasons"].as_array().unwrap().len(), 1, "{j:#}");
    // The same fleet without the regressed run passes.
    let o = emuwatch(&[
        "sessions",
        s(&dirs[0]),
        s(&dirs[2]),
        "--group-by",
        "api",
        "--fail-on",
        "new",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A synthetic session of `n` events (file reads and loopback connects of one app, 1 ms
/// apart), from the spyapp fixture's session.json.
fn synthetic_session(dir: &Path, n: usize) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let mut info = session_info(&fixture("spyapp"));
    info["session_id"] = format!("20261120T100000Z-{n:016x}").into();
    std::fs::write(dir.join("session.json"), info.to_string()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("events.jsonl")).unwrap());
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap();
    for i in 0..n {
        let ts = (t0 + chrono::Duration::milliseconds(i as i64))
            .to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let common = r#""pid":4242,"tid":4242,"ppid":612,"uid":10123,"comm":"example.spyapp","app":"com.example.spyapp","phase":"foreground""#;
        if i % 2 == 0 {
            writeln!(
                f,
                r#"{{"ts":"{ts}","kind":"file_read","path":"/data/data/com.example.spyapp/files/f{}","fd":33,"bytes":{i},"reads":2,"flushed_at":"close",{common}}}"#,
                i % 7
            )
        } else {
            writeln!(
                f,
                r#"{{"ts":"{ts}","kind":"connect","family":"inet","proto":"tcp","daddr":"127.0.0.1","dport":8080,"result":0,"scope":"loopback","conn_id":{i},{common}}}"#
            )
        }
        .unwrap();
    }
    f.flush().unwrap();
}

/// `export` of a session, and the peak resident memory (KiB) of that process.
// The child is reaped by wait4 (which gives its own rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn export_peak_kib(session: &Path, out: &Path) -> i64 {
    let child = Command::new(EMUWATCH)
        .args(["export", s(session), "--out", s(out), "-q"])
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "export failed: {status}"
    );
    usage.ru_maxrss
}

/// Streaming: five times the events, the same memory (within a few MiB; holding the events
/// would take hundreds), and every event is in the table, in row groups.
#[test]
fn export_memory_does_not_grow_with_the_session() {
    let tmp = tempdir();
    let (small, big) = (tmp.path().join("small"), tmp.path().join("big"));
    synthetic_session(&small, 40_000);
    synthetic_session(&big, 200_000);
    let out = tmp.path().join("exported");
    let a = export_peak_kib(&small, &out);
    let b = export_peak_kib(&big, &out);
    eprintln!("peak RSS: 40,000 events {a} KiB, 200,000 events {b} KiB");
    assert!(
        b < a + 24 * 1024,
        "40,000 events: {a} KiB; 200,000: {b} KiB"
    );
    let file = out.join("events/session=20261120T100000Z-0000000000030d40/part-0.parquet");
    assert_eq!(parquet_meta(&file).0, 200_000);
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(
        r.metadata().num_row_groups(),
        4,
        "row groups of 65,536 rows"
    );
}
