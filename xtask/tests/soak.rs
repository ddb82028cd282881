//! The soak script itself (`cargo xtask soak`, xtask/src/soak.rs), run for 20 seconds at
//! 10k events/s on the real kernel with the debug build of emuwatch: it must pass (no loss,
//! exact counts, a session `emuwatch report` reads, flat RSS) and write its figures.
//! Needs root (it loads eBPF programs); without root it fails, loudly.
//!
//! It takes 30-45 s on this 2-CPU machine (20 s of workload, probe attach and stop, and
//! `emuwatch report` of 200,000 events in a debug build), so a plain `cargo test` leaves it
//! out (ignored); `cargo xtask test` runs it (`cargo test -p xtask --test soak -- --ignored`).
use std::{path::PathBuf, process::Command};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The debug `emuwatch` next to this test's xtask binary, built if missing or stale (cargo
/// builds only the xtask package's binaries for these tests).
fn emuwatch() -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--package", "monitor", "--bin", "emuwatch"])
        .current_dir(root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p monitor failed");
    PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
        .with_file_name("emuwatch")
        .canonicalize()
        .expect("target/debug/emuwatch")
}

#[test]
#[ignore = "30-45 s: cargo test -p xtask --test soak -- --ignored"]
fn a_short_soak_loses_nothing_keeps_memory_flat_and_reads_back() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the soak test loads eBPF programs: run it as root"
    );
    let out = tempfile_dir();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["soak", "--duration", "20s", "--rate", "10000", "--out"])
        .arg(&out)
        .arg("--emuwatch")
        .arg(emuwatch())
        .arg("--benchload")
        .arg(env!("CARGO_BIN_EXE_emuwatch-benchload"))
        .output()
        .expect("run xtask soak");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "soak failed:\n{text}");
    assert!(text.contains("soak: PASSED"), "{text}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("soak.json")).unwrap()).unwrap();
    // 20 s x (4500 open+read pairs + 1000 connects) per second.
    assert_eq!(r["workload_events"], 200_000, "{r}");
    assert_eq!(r["lost"]["total"], 0, "{r}");
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(r["report_exit"], 0, "{r}");
    assert_eq!(r["rss_flat"], true, "{r}");
    assert_eq!(r["anon_flat"], true, "{r}");
    assert!(r["events_total"].as_u64().unwrap() >= 200_000, "{r}");
    assert!(r["failures"].as_array().unwrap().is_empty(), "{r}");
    // A passing soak removes its session (it is large for a long run).
    assert!(!out.join("session").exists());
    std::fs::remove_dir_all(&out).ok();
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("emuwatch-soak-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
