//! The aarch64 smoke test: the static aarch64 `emuwatch` and `emuwatch-simapp`
//! (`scripts/build-guest.sh --arch arm64 --with-simapp`) in Debian's arm64 kernel under
//! `qemu-system-aarch64` (TCG). In the guest: `emuwatch doctor` and one recording, on the
//! raw-syscalls path, of a workload with exactly known behaviour; the session is checked here
//! on the host (it is written to the 9p share).
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::{Kernel, boot_with, initramfs, kernels, qemu, sh_quote, write_script};
use crate::root;

/// Bytes of the file the workload reads, and the loopback port nothing listens on.
const DATA_LEN: usize = 10_000;
const CLOSED_PORT: u16 = 9;

fn build_binaries() -> Result<(PathBuf, PathBuf)> {
    let script = root().join("scripts/build-guest.sh");
    eprintln!("xtask: $ {} --arch arm64 --with-simapp", script.display());
    let out = Command::new("bash")
        .arg(&script)
        .args(["--arch", "arm64", "--with-simapp"])
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("run scripts/build-guest.sh")?;
    ensure!(
        out.status.success(),
        "scripts/build-guest.sh --arch arm64 failed ({})",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let paths: Vec<PathBuf> = text.lines().map(PathBuf::from).collect();
    match &paths[..] {
        [emuwatch, simapp] => Ok((emuwatch.clone(), simapp.clone())),
        _ => bail!("scripts/build-guest.sh printed {text:?}, not two binary paths"),
    }
}

fn events(session: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(session.join("events.jsonl"))
        .with_context(|| format!("read {}/events.jsonl", session.display()))?;
    text.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad event line {l:?}")))
        .collect()
}

/// What the recording must hold, exactly.
fn check(session: &Path, data: &Path, simapp_pid: Option<u64>) -> Result<()> {
    let info: Value = serde_json::from_slice(
        &std::fs::read(session.join("session.json")).context("read session.json")?,
    )?;
    ensure!(
        info["kernel"]["machine"] == "aarch64",
        "not an aarch64 guest: {}",
        info["kernel"]
    );
    ensure!(
        info["probe_plan"]["syscall_probes"] == "raw",
        "the recording did not use the raw path: {}",
        info["probe_plan"]
    );
    ensure!(
        info["complete"] == true,
        "events were lost: {}",
        info["lost"]
    );
    let evs = events(session)?;
    let data = data.display().to_string();
    let pid = simapp_pid.context("the workload did not print its pid")?;
    let mine = |kind: &str| -> Vec<&Value> {
        evs.iter()
            .filter(|e| e["kind"] == kind && e["pid"] == pid)
            .collect()
    };
    let opens: Vec<&Value> = mine("file_open")
        .into_iter()
        .filter(|e| e["path"] == data.as_str())
        .collect();
    let reads = mine("file_read");
    let read = reads
        .iter()
        .find(|e| e["path"] == data.as_str())
        .with_context(|| format!("no file_read of {data}: {reads:?}"))?;
    ensure!(
        opens.len() == 1 && opens[0]["result"].as_i64().is_some_and(|r| r >= 0),
        "want one successful open of {data}: {opens:?}"
    );
    ensure!(
        read["bytes"] == DATA_LEN as u64,
        "want {DATA_LEN} bytes read: {read}"
    );
    let connects = mine("connect");
    ensure!(
        connects.len() == 1
            && connects[0]["daddr"] == "127.0.0.1"
            && connects[0]["dport"] == CLOSED_PORT
            && connects[0]["result"] == -111
            && connects[0]["proto"] == "tcp",
        "want one refused tcp connect to 127.0.0.1:{CLOSED_PORT}: {connects:?}"
    );
    let failed: Vec<&Value> = mine("file_open")
        .into_iter()
        .filter(|e| e["path"] == "/nonexistent/emuwatch")
        .collect();
    ensure!(
        failed.len() == 1 && failed[0]["result"] == -2,
        "want one ENOENT open of /nonexistent/emuwatch: {failed:?}"
    );
    let exits: Vec<&Value> = mine("process")
        .into_iter()
        .filter(|e| e["op"] == "exit")
        .collect();
    ensure!(
        exits.len() == 1 && exits[0]["exit_code"] == 0,
        "want one exit with code 0: {exits:?}"
    );
    Ok(())
}

/// Build, boot, record, check. Fails with the reason (and the console tail) on any miss.
pub fn run(k: &'static Kernel) -> Result<()> {
    let (emuwatch, simapp) = build_binaries()?;
    let p = kernels::prepare(k, false)?;
    let repo = root();
    let dir = repo.join("target/vm").join(k.name);
    let initrd = initramfs::build(k, &p, &dir, &[])?;
    let run = qemu::run_dir(&repo, k.name, "smoke")?;
    let data = run.join("data.bin");
    let bytes: Vec<u8> = (0..DATA_LEN).map(|i| (i % 251) as u8).collect();
    std::fs::write(&data, bytes)?;
    let session = run.join("session");
    let _ = std::fs::remove_dir_all(&session);
    let q = |p: &Path| sh_quote(&p.display().to_string());
    let script = run.join("guest-cmd.sh");
    write_script(
        &script,
        &format!(
            // The session is written to the guest's tmpfs (its control socket cannot live on
            // 9p) and copied to the share for the checks here.
            "set -e\n{emu} doctor --syscall-probes raw\n\
             {emu} record --quiet --syscall-probes raw --out /tmp/smoke -- {simapp} steps \
             read={data},4096 connect=tcp4,127.0.0.1,{CLOSED_PORT} fail=/nonexistent/emuwatch > {out}\n\
             mkdir -p {session}\ncp /tmp/smoke/session.json /tmp/smoke/events.jsonl {session}/\n",
            emu = q(&emuwatch),
            simapp = q(&simapp),
            session = q(&session),
            data = data.display(),
            out = q(&run.join("workload.jsonl")),
        ),
    )?;
    let log = run.join("console.log");
    let o = boot_with(
        k,
        &p.image(),
        &initrd,
        &script,
        &log,
        &format!("[{} smoke]", k.name),
    )?;
    if o.rc != Some(0) {
        bail!(
            "{} smoke: the guest command failed (rc {:?}{}); console tail:\n{}",
            k.name,
            o.rc,
            if o.timed_out { ", timed out" } else { "" },
            o.tail(30)
        );
    }
    let pid = std::fs::read_to_string(run.join("workload.jsonl"))
        .ok()
        .and_then(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|v| v["pid"].as_u64())
        });
    check(&session, &data, pid).with_context(|| format!("{} smoke", k.name))?;
    eprintln!(
        "xtask: {} smoke passed: uname {}, BTF {}, boot {}, total {:.1}s (session {})",
        k.name,
        o.uname.as_deref().unwrap_or("?"),
        o.btf.map_or("?", |b| if b { "yes" } else { "no" }),
        o.boot_secs
            .map_or_else(|| "?".into(), |s| format!("{s:.1}s")),
        o.secs,
        session.display()
    );
    Ok(())
}
