//! The capture suite in a booted kernel: the test binary found, run per probe path, its
//! libtest output read back into rows, and the matrix summary.
use super::*;

pub(super) fn capture_binary() -> Result<(PathBuf, Vec<PathBuf>)> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--no-run",
        "--package",
        "monitor",
        "--test",
        "capture",
    ])
    .arg("--message-format=json")
    .stderr(Stdio::inherit());
    eprintln!("xtask: $ {}", crate::describe(&cmd));
    let out = cmd.output().context("run cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the capture tests failed ({})", out.status);
    }
    let mut capture = None;
    let mut all = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(exe) = v["executable"].as_str() {
            let exe = PathBuf::from(exe);
            if v["target"]["name"] == "capture" && v["profile"]["test"] == true {
                capture = Some(exe.clone());
            }
            all.push(exe);
        }
    }
    let capture = capture.context("cargo built no capture test executable")?;
    for exe in &all {
        if !exe.starts_with(root()) {
            bail!(
                "{} is outside the repository, which is all the guest sees (CARGO_TARGET_DIR?)",
                exe.display()
            );
        }
    }
    Ok((capture, all))
}

/// One capture run's result.
pub(super) struct Row {
    pub(super) kernel: &'static str,
    pub(super) uname: String,
    pub(super) btf: String,
    pub(super) path: String,
    pub(super) passed: Option<u64>,
    pub(super) failed: Option<u64>,
    pub(super) failures: Vec<String>,
    pub(super) boot_secs: Option<f64>,
    pub(super) secs: f64,
    pub(super) ok: bool,
    pub(super) why: String,
    pub(super) log: PathBuf,
}

/// `test result: FAILED. 20 passed; 3 failed; ...` → (passed, failed).
pub(super) fn test_counts(lines: &[String]) -> Option<(u64, u64)> {
    let l = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("test result: "))?;
    let count = |what: &str| {
        l.split(';').find_map(|part| {
            let mut w = part.split_whitespace().rev();
            (w.next()? == what).then(|| w.next()?.parse().ok())?
        })
    };
    Some((count("passed")?, count("failed")?))
}

/// Each failed test with a line of its panic message (shortened): the first that mentions an
/// error (the cause behind "emuwatch record failed: ..."), else the first.
pub(super) fn failures(lines: &[String]) -> Vec<String> {
    let reason = |name: &str| {
        let start = lines.iter().position(|l| {
            l.strip_prefix(&format!("thread '{name}' "))
                .is_some_and(|r| r.contains("panicked at "))
        })?;
        let msg: Vec<&String> = lines[start + 1..]
            .iter()
            .take_while(|l| !l.starts_with("---- ") && *l != "failures:")
            .filter(|l| !l.trim().is_empty())
            .collect();
        let line = msg
            .iter()
            .find(|l| l.to_lowercase().contains("error"))
            .or(msg.first())?
            .trim();
        let short: String = line.chars().take(150).collect();
        Some(if short.len() < line.len() {
            short + "…"
        } else {
            short
        })
    };
    // libtest's closing list: "failures:" then one indented name per line.
    let Some(list) = lines.iter().rposition(|l| l == "failures:") else {
        return Vec::new();
    };
    lines[list + 1..]
        .iter()
        .map_while(|l| l.strip_prefix("    "))
        .map(|name| match reason(name) {
            Some(r) => format!("{name}: {r}"),
            None => name.to_string(),
        })
        .collect()
}

pub(super) fn run_capture(
    k: &'static Kernel,
    capture: &Path,
    initrd: &Path,
    image: &Path,
    path: &str,
    filter: &[String],
) -> Result<Row> {
    let repo = root();
    let dir = qemu::run_dir(&repo, k.name, path)?;
    let mut env = vec![("EMUWATCH_SYSCALL_PROBES", path)];
    env.extend(k.env.iter().copied());
    let mut body = String::new();
    for (key, value) in &env {
        writeln!(body, "export {key}={}", sh_quote(value))?;
    }
    // Where cargo runs integration tests: the package's directory.
    writeln!(
        body,
        "cd {}",
        sh_quote(&repo.join("monitor").to_string_lossy())
    )?;
    write!(body, "exec {}", sh_quote(&capture.to_string_lossy()))?;
    if !filter.iter().any(|a| a.starts_with("--test-threads")) {
        write!(body, " --test-threads={TEST_THREADS}")?;
    }
    for f in filter {
        write!(body, " {}", sh_quote(f))?;
    }
    let script = dir.join("guest-cmd.sh");
    write_script(&script, &body)?;

    let label = k
        .env
        .iter()
        .fold(path.to_string(), |s, (key, v)| format!("{s} {key}={v}"));
    let prefix = format!("[{} {label}]", k.name);
    eprintln!("\nxtask: ==== {prefix} ====");
    let log = dir.join("console.log");
    let mut o = boot_with(k, image, initrd, &script, &log, &prefix)?;
    if kernel_died(&o) {
        // Said loudly and booted once more; a second crash fails the run.
        eprintln!(
            "xtask: WARNING: the {} guest kernel crashed during the {path} run; booting it once more",
            k.name
        );
        o = boot_with(k, image, initrd, &script, &log, &prefix)?;
    }
    let counts = test_counts(&o.lines);
    let failures = failures(&o.lines);
    let why = match (o.rc, counts) {
        (Some(0), _) => String::new(),
        _ if o.timed_out => format!("timed out after {:.0}s", o.secs),
        (None, _) => "the guest stopped before the command finished (crash?)".into(),
        (Some(rc), Some((_, failed))) => format!("{failed} tests failed (exit {rc})"),
        (Some(rc), None) => format!("exit {rc} without a test result"),
    };
    if !why.is_empty() && counts.is_none() {
        eprintln!(
            "xtask: {prefix} {why}; console tail ({}):\n{}",
            log.display(),
            o.tail(30)
        );
    }
    Ok(Row {
        kernel: k.name,
        uname: o.uname.unwrap_or_else(|| "?".into()),
        btf: match o.btf {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => "?".into(),
        },
        path: label,
        passed: counts.map(|c| c.0),
        failed: counts.map(|c| c.1),
        failures,
        boot_secs: o.boot_secs,
        secs: o.secs,
        ok: why.is_empty(),
        why,
        log,
    })
}

/// Did the guest kernel itself die (rather than the command fail or time out)?
fn kernel_died(o: &qemu::Outcome) -> bool {
    o.rc.is_none() && !o.timed_out && o.lines.iter().any(|l| l.contains("Kernel panic"))
}

pub(super) fn summary(rows: &[Row]) -> String {
    let opt = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
    let mut s = format!(
        "{:<13} {:<24} {:<4} {:<34} {:>6} {:>6} {:>6} {:>7}  result\n",
        "kernel", "uname -r (guest)", "BTF", "path", "passed", "failed", "boot s", "total s"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<13} {:<24} {:<4} {:<34} {:>6} {:>6} {:>6} {:>7.0}  {}",
            r.kernel,
            r.uname,
            r.btf,
            r.path,
            opt(r.passed),
            opt(r.failed),
            r.boot_secs.map_or("-".into(), |b| format!("{b:.1}")),
            r.secs,
            if r.ok { "ok" } else { &r.why }
        );
    }
    for r in rows.iter().filter(|r| !r.ok) {
        let _ = writeln!(
            s,
            "\n[{} {}] failed ({}):",
            r.kernel,
            r.path,
            r.log.display()
        );
        for f in &r.failures {
            let _ = writeln!(s, "  {f}");
        }
    }
    s
}

/// The capture suite in each of `kernels`, once per probe path; a summary at the end.
#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    #[test]
    fn reads_libtest_output() {
        let out = lines(
            "running 3 tests
test a ... ok
test b ... emuwatch: error: stray stderr
FAILED
test c ... FAILED

failures:

---- b stdout ----

thread 'b' (108) panicked at monitor/../tests/capture.rs:98:5:
emuwatch record failed: ExitStatus(unix_wait_status(512))
emuwatch: error: required probes failed to attach: tp_btf sched_process_exit

---- c stdout ----

thread 'c' (109) panicked at monitor/../tests/capture.rs:9:5:
assertion `left == right` failed
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

failures:
    b
    c

test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 2.00s
",
        );
        assert_eq!(test_counts(&out), Some((1, 2)));
        assert_eq!(
            failures(&out),
            [
                "b: emuwatch: error: required probes failed to attach: tp_btf sched_process_exit",
                "c: assertion `left == right` failed"
            ]
        );
        assert_eq!(test_counts(&lines("VMBED_RC=0")), None);
    }
}
