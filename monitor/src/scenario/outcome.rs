//! How a run ends: whether its recording can be trusted, its JUnit cases, and what a person
//! reads.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    Scenario,
    expect::Outcome,
    junit::{Case, CaseResult},
    steps::{self, StepResult},
};
use crate::{
    baseline::{self, Baseline, RULES},
    escape::escape,
    event::StopReason,
    kernel::probes::Family,
    session::SessionInfo,
};

/// Whether the recording can be trusted: every step ran and passed, it ended because the steps
/// asked it to, no probe the expectations need was missing, nothing was lost or cut short.
pub(super) fn check_recording(
    file: &str,
    sc: &Scenario,
    info: &SessionInfo,
    step_results: Option<Vec<StepResult>>,
    max: Duration,
    results: &mut Vec<StepResult>,
    errors: &mut Vec<String>,
) {
    match step_results {
        Some(r) => {
            if let Some(f) = r.iter().find(|r| !r.ok) {
                errors.push(format!(
                    "{file}:{}: step {} ({}) failed: {}",
                    f.line,
                    f.index,
                    f.what,
                    f.error.as_deref().unwrap_or("")
                ));
            } else if r.len() < sc.steps.len() {
                errors.push("not every step ran".into());
            }
            results.extend(r);
        }
        None => errors.push("the recording ended before the steps could start".into()),
    }
    match info.stop_reason {
        // A signal that came while the probes were attaching (before the recorder listened
        // for it) made the steps give up, and they stopped the recording.
        Some(StopReason::StopRequest) if steps::interrupted() => {
            errors.push(steps::INTERRUPTED_MSG.into())
        }
        Some(StopReason::StopRequest) => {}
        Some(StopReason::Duration) => errors.push(format!(
            "the recording reached its maximum duration ([record] duration = {max:?}) before the steps finished"
        )),
        Some(StopReason::Signal) => errors.push(steps::INTERRUPTED_MSG.into()),
        other => errors.push(format!(
            "the recording stopped unexpectedly ({})",
            other.map_or("unknown", StopReason::as_str)
        )),
    }
    let missing = missing_probes(info, sc);
    if !missing.is_empty() {
        errors.push(format!("probes missing: {}", missing.join("; ")));
    }
    if info.lost.truncated_paths > 0 {
        errors.push(format!(
            "{} file open(s) passed a path longer than the kernel copies: their files are unknown, so expectations about files cannot be trusted",
            info.lost.truncated_paths
        ));
    }
    if !info.complete && (info.lost.total > 0 || info.lost.undecodable > 0) {
        errors.push(format!(
            "{} events were lost and {} records could not be decoded: a run with lost events cannot pass (try [record] ring_buffer = \"32M\")",
            info.lost.total, info.lost.undecodable
        ));
    }
}

/// The JUnit cases: one for the run, one per expectation, one per (app, baseline rule); and
/// how many baseline rules regressed.
pub(super) fn junit_cases(
    file: &str,
    sc: &Scenario,
    info: &SessionInfo,
    errors: &[String],
    outcomes: &[Outcome],
    diff: Option<&baseline::Diff>,
    baseline: Option<&(Baseline, PathBuf)>,
) -> (Vec<Case>, usize) {
    let class = format!("emuwatch.{}", sc.name);
    let mut cases = vec![Case {
        name: RUN_CASE.into(),
        classname: format!("{class}.run"),
        result: if errors.is_empty() {
            CaseResult::Pass
        } else {
            CaseResult::Error {
                message: errors[0].clone(),
                text: errors.join("\n"),
            }
        },
        output: format!(
            "{} events recorded, {} lost",
            info.events_total, info.lost.total
        ),
    }];
    for o in outcomes {
        cases.push(Case {
            name: o.name.clone(),
            classname: format!("{class}.expect"),
            result: if o.passed {
                CaseResult::Pass
            } else {
                CaseResult::Failure {
                    message: o.message.clone(),
                    text: format!("{file}:{}: {}\n{}", o.line, o.message, o.details.join("\n")),
                }
            },
            output: if o.passed {
                o.message.clone()
            } else {
                String::new()
            },
        });
    }
    let mut baseline_failures = 0;
    if let Some(d) = diff {
        let mut apps: Vec<String> = baseline
            .map(|(b, _)| b.apps.keys().cloned().collect())
            .unwrap_or_default();
        apps.extend(d.apps.iter().map(|a| a.app.clone()));
        apps.sort();
        apps.dedup();
        for app in &apps {
            for rule in RULES {
                let (bad, other) = d.by_rule(app, rule);
                if !bad.is_empty() {
                    baseline_failures += 1;
                }
                cases.push(Case {
                    name: format!("baseline: {app}: {}", rule.description()),
                    classname: format!("{class}.baseline"),
                    result: if bad.is_empty() {
                        CaseResult::Pass
                    } else {
                        CaseResult::Failure {
                            message: format!("{} regression(s): {}", bad.len(), bad[0]),
                            text: bad
                                .iter()
                                .chain(&other)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("\n"),
                        }
                    },
                    output: other.join("\n"),
                });
            }
        }
    }
    (cases, baseline_failures)
}

/// What a person reads at the end of a run.
pub(super) fn print_outcome(
    quiet: bool,
    info: &SessionInfo,
    outcomes: &[Outcome],
    diff: Option<&baseline::Diff>,
    errors: &[String],
    (code, baseline_failures): (u8, usize),
    (junit, reports): (&Path, &[PathBuf]),
) {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.passed).collect();
    let rel = |p: &Path| -> String {
        std::env::current_dir()
            .ok()
            .and_then(|c| p.strip_prefix(c).ok().map(|r| r.display().to_string()))
            .unwrap_or_else(|| p.display().to_string())
    };
    if !quiet {
        println!(
            "  recorded {} events in {:.1}s, {}",
            info.events_total,
            info.ended_at
                .map(|e| (e - info.started_at).num_milliseconds() as f64 / 1e3)
                .unwrap_or(0.0),
            if info.complete {
                "nothing lost".to_string()
            } else {
                format!("{} LOST", info.lost.total + info.lost.undecodable)
            }
        );
    }
    if !outcomes.is_empty() {
        println!(
            "expectations: {} passed, {} failed",
            outcomes.len() - failed.len(),
            failed.len()
        );
        for o in outcomes {
            if o.passed && quiet {
                continue;
            }
            println!(
                "  {}  {} — {}",
                if o.passed { "PASS" } else { "FAIL" },
                escape(&o.name),
                o.message
            );
            if !o.passed {
                for d in &o.details {
                    println!("          {d}");
                }
            }
        }
    }
    if let Some(d) = diff {
        println!(
            "baseline {}: {}",
            escape(&d.baseline),
            if d.regressions == 0 {
                "no regressions".to_string()
            } else {
                format!("{} regression(s)", d.regressions)
            }
        );
        if d.regressions > 0 || !quiet {
            for line in d.render_text().lines().skip(1) {
                println!("  {line}");
            }
        }
    }
    for e in errors {
        eprintln!("emuwatch: error: {}", escape(e));
    }
    println!(
        "result: {} (exit {code})",
        match code {
            0 => "PASS — every expectation holds".to_string(),
            1 => format!(
                "FAIL — {} expectation(s) violated, {} baseline rule(s) regressed",
                failed.len(),
                baseline_failures
            ),
            _ => "ERROR — the run cannot be trusted (see above)".to_string(),
        }
    );
    println!("junit:  {}", rel(junit));
    for p in reports {
        println!("report: {}", rel(p));
    }
}

pub(super) const RUN_CASE: &str = "run: steps, probes and a complete recording";

/// Required probes that did not attach, and probe families an expectation needs of which no
/// probe attached.
pub(super) fn missing_probes(info: &SessionInfo, sc: &Scenario) -> Vec<String> {
    let mut missing: Vec<String> = info
        .probes
        .iter()
        .filter(|p| p.required && !p.attached)
        .map(|p| {
            format!(
                "{} ({}){}",
                p.program,
                p.attach_point,
                p.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    for e in &sc.expect {
        for &fam in e.kind.spec().families {
            // The raw-syscalls programs serve every syscall family at once.
            let attached = info.probes.iter().any(|p| {
                (p.family == fam || (p.family == Family::Syscalls && fam.is_syscall()))
                    && p.attached
            });
            let line = format!(
                "no {fam} probe attached (needed by expectation {:?})",
                e.name
            );
            if !attached && !missing.contains(&line) {
                missing.push(line);
            }
        }
    }
    missing
}
