//! The target verdicts of BENCHMARKS.md, one function per target, each judged from the
//! figures of the section it is measured in.
use super::*;

pub fn targets(r: &Results) -> Vec<Target> {
    let em: Vec<&Point> = r.sweep.iter().filter(|p| p.tool == "emuwatch").collect();
    let judged = [
        ("overhead", full_capture(r)),
        ("overhead", vs_opensnoop(r)),
        ("sweep", zero_loss(&em)),
        ("overhead", untargeted(r)),
        ("sweep", userspace_cost(r, &em)),
        ("report", report_time(r)),
        ("raw", raw_targeted(r)),
        ("raw", raw_untargeted(r)),
        ("hooktype", hook_type(r)),
    ];
    judged
        .into_iter()
        .map(|(section, t)| Target {
            section: section.into(),
            ..t
        })
        .collect()
}

/// Full capture: the default configuration if it lost nothing, else the larger ring.
fn capture(r: &Results) -> Option<&Summary> {
    let a = |c| summary(r, "open", c);
    let full = |x: &&Summary| lossless(x);
    a(Cond::Emuwatch)
        .filter(full)
        .or_else(|| a(Cond::EmuwatchBigRing).filter(full))
}

/// Which configuration of `capture` the figure comes from.
fn config(r: &Results, x: &Summary) -> String {
    if x.cond == Cond::EmuwatchBigRing.key() {
        format!(
            "with --ring-buffer {} (the default ring lost up to {} events)",
            r.big_ring,
            summary(r, "open", Cond::Emuwatch)
                .and_then(|d| d.lost_worst)
                .unwrap_or(0)
        )
    } else {
        "default settings".to_string()
    }
}

/// targeted full capture of (a) <= 1.10x the floor
fn full_capture(r: &Results) -> Target {
    const G1: &str = "targeted full capture of (a) <= 1.10x the no-op floor";
    let a = |c| summary(r, "open", c);
    match (capture(r), a(Cond::Floor)) {
        (Some(e), Some(f)) => {
            let ratio = e.median_s / f.median_s;
            Target {
                goal: G1.into(),
                measured: format!(
                    "{ratio:.2}x the floor ({:.3} s vs {:.3} s), nothing lost, {}",
                    e.median_s,
                    f.median_s,
                    config(r, e)
                ),
                met: Some(ratio <= 1.10),
                section: String::new(),
            }
        }
        (None, Some(_)) if a(Cond::Emuwatch).is_some() => Target {
            goal: G1.into(),
            measured: "no configuration captured everything".into(),
            met: Some(false),
            section: String::new(),
        },
        _ => not_run(G1),
    }
}

/// >= 4x faster than opensnoop on (a)
fn vs_opensnoop(r: &Results) -> Target {
    const G2: &str = "(a) >= 4x faster than opensnoop";
    match (capture(r), summary(r, "open", Cond::Opensnoop)) {
        (Some(e), Some(o)) => {
            let ratio = o.median_s / e.median_s;
            Target {
                goal: G2.into(),
                measured: format!(
                    "{ratio:.2}x faster ({:.3} s vs {:.3} s, full capture {})",
                    e.median_s,
                    o.median_s,
                    config(r, e)
                ),
                met: Some(ratio >= 4.0),
                section: String::new(),
            }
        }
        _ => not_run(G2),
    }
}

/// zero loss at >= 200k offered events/s
fn zero_loss(em: &[&Point]) -> Target {
    if em.is_empty() {
        not_run("zero lost events at >= 200k offered events/s")
    } else {
        // A point counts at the rate requested when the workload reached it (within 5 %).
        let rate = |p: &Point| match p.target_per_s {
            Some(t) if p.offered_per_s >= 0.95 * t => t.max(p.offered_per_s),
            _ => p.offered_per_s,
        };
        let best = em
            .iter()
            .filter(|p| p.lost == 0)
            .map(|p| rate(p))
            .fold(0.0, f64::max);
        let first_loss = em
            .iter()
            .filter(|p| p.lost > 0)
            .map(|p| rate(p))
            .fold(f64::INFINITY, f64::min);
        // Met when every rate up to 200k/s offered was lossless and some rate >= 200k/s was.
        let lossless_200k = best >= 200e3 && em.iter().all(|p| p.lost == 0 || rate(p) > 200e3);
        Target {
            goal: "zero lost events at >= 200k offered events/s".into(),
            measured: format!(
                "lossless up to {:.0}k/s offered{}",
                best / 1e3,
                if first_loss.is_finite() {
                    format!("; first loss at {:.0}k/s", first_loss / 1e3)
                } else {
                    "; no loss at any rate tried".into()
                }
            ),
            met: Some(lossless_200k),
            section: String::new(),
        }
    }
}

/// untargeted workloads pay no more than the floor
fn untargeted(r: &Results) -> Target {
    let mut ratios = Vec::new();
    let mut ok = true;
    for w in ["open", "connect", "mix"] {
        if let (Some(o), Some(f)) = (
            summary(r, w, Cond::EmuwatchOther),
            summary(r, w, Cond::Floor),
        ) {
            let ratio = o.median_s / f.median_s;
            ok &= ratio <= 1.0 + floor_band(f);
            ratios.push(format!("{w} {ratio:.2}x"));
        }
    }
    if ratios.is_empty() {
        not_run("untargeted workloads pay no more than the floor")
    } else {
        Target {
            goal: "untargeted workloads pay no more than the floor".into(),
            measured: format!(
                "untargeted / floor: {} (noise band: half the floor's spread, >= 3 %)",
                ratios.join(", ")
            ),
            met: Some(ok),
            section: String::new(),
        }
    }
}

/// userspace <= 0.3 core at 50k events/s, peak RSS <= 64 MiB
fn userspace_cost(r: &Results, em: &[&Point]) -> Target {
    let at50 = em
        .iter()
        .filter(|p| p.target_per_s == Some(50e3))
        .min_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
    match at50 {
        Some(p) => {
            let cores = p.tracer_cores.unwrap_or(f64::NAN);
            let rss = p.tracer_peak_rss_mib.unwrap_or(f64::NAN);
            let max_rss = r
                .summaries
                .iter()
                .filter(|s| s.cond == Cond::Emuwatch.key())
                .filter_map(|s| s.tracer_peak_rss_mib)
                .chain(em.iter().filter_map(|p| p.tracer_peak_rss_mib))
                .fold(rss, f64::max);
            Target {
                goal: "userspace <= 0.3 core at 50k events/s, peak RSS <= 64 MiB".into(),
                measured: format!(
                    "{cores:.2} core and {rss:.0} MiB at {:.0}k/s; peak RSS over all targeted runs {max_rss:.0} MiB",
                    p.offered_per_s / 1e3
                ),
                met: Some(cores <= 0.3 && rss <= 64.0),
                section: String::new(),
            }
        }
        None => not_run("userspace <= 0.3 core at 50k events/s, peak RSS <= 64 MiB"),
    }
}

/// report on 1M events <= 3 s, peak RSS <= 128 MiB
fn report_time(r: &Results) -> Target {
    let big = r
        .report
        .iter()
        .filter(|x| x.format == "text")
        .max_by_key(|x| x.events);
    match big {
        Some(x) if x.events >= 1_000_000 => Target {
            goal: "`report` on 1M events <= 3 s, peak RSS <= 128 MiB".into(),
            measured: format!(
                "{:.2} s (text), peak RSS {:.0} MiB, on {} events",
                x.median_s, x.peak_rss_mib, x.events
            ),
            met: Some(x.median_s <= 3.0 && x.peak_rss_mib <= 128.0),
            section: String::new(),
        },
        Some(x) => Target {
            goal: "`report` on 1M events <= 3 s, peak RSS <= 128 MiB".into(),
            measured: format!(
                "only {} events in this run: {:.2} s (text)",
                x.events, x.median_s
            ),
            met: None,
            section: String::new(),
        },
        None => not_run("`report` on 1M events <= 3 s, peak RSS <= 128 MiB"),
    }
}

/// raw path: targeted full capture <= 1.20x its own floor, on every workload
fn raw_targeted(r: &Results) -> Target {
    const G7: &str = "raw path: targeted full capture <= 1.20x its own no-op floor (a, b, c)";
    let mut parts = Vec::new();
    let mut ok = true;
    for (w, _) in &r.raw_workloads {
        let floor = find(&r.raw_summaries, w, Cond::FloorRaw);
        match (raw_capture(r, w), floor) {
            (Some(e), Some(f)) => {
                let ratio = e.median_s / f.median_s;
                ok &= ratio <= RAW_TARGETED_MAX;
                parts.push(format!(
                    "{w} {ratio:.2}x (CPU {}x){}",
                    cpu_ratio(e),
                    if e.cond == Cond::EmuwatchRawBigRing.key() {
                        format!(" (--ring-buffer {}: the default lost events)", r.big_ring)
                    } else {
                        String::new()
                    }
                ));
            }
            (None, Some(_)) => {
                ok = false;
                parts.push(format!("{w}: no configuration captured everything"));
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        not_run(G7)
    } else {
        Target {
            goal: G7.into(),
            measured: format!(
                "targeted / raw floor, wall-clock (workload CPU time): {}",
                parts.join(", ")
            ),
            met: Some(ok),
            section: String::new(),
        }
    }
}

/// raw path: untargeted <= 1.05x its own floor
fn raw_untargeted(r: &Results) -> Target {
    const G8: &str = "raw path: untargeted workloads <= 1.05x the raw path's no-op floor";
    let mut parts = Vec::new();
    let mut ok = true;
    for (w, _) in &r.raw_workloads {
        if let (Some(o), Some(f)) = (
            find(&r.raw_summaries, w, Cond::EmuwatchRawOther),
            find(&r.raw_summaries, w, Cond::FloorRaw),
        ) {
            let ratio = o.median_s / f.median_s;
            ok &= ratio <= RAW_UNTARGETED_MAX;
            parts.push(format!("{w} {ratio:.2}x (CPU {}x)", cpu_ratio(o)));
        }
    }
    if parts.is_empty() {
        not_run(G8)
    } else {
        Target {
            goal: G8.into(),
            measured: format!(
                "untargeted / raw floor, wall-clock (workload CPU time): {}",
                parts.join(", ")
            ),
            met: Some(ok),
            section: String::new(),
        }
    }
}

/// the raw path's default hook type is the cheaper one
fn hook_type(r: &Results) -> Target {
    const G9: &str =
        "raw path's default hook (raw_tp) costs no more than the classic raw_syscalls tracepoints";
    let mut parts = Vec::new();
    let mut ok = true;
    for (w, _) in &r.hook_type_workloads {
        let raw = find(&r.hook_type_summaries, w, Cond::FloorRawTp);
        let tp = find(&r.hook_type_summaries, w, Cond::FloorTpRawSyscalls);
        if let (Some(raw), Some(tp)) = (raw, tp) {
            ok &= raw.median_s <= tp.median_s;
            let ns =
                |x, cpu| extra_ns_per_syscall(r, x, cpu).map_or("?".into(), |v| format!("{v:+.0}"));
            parts.push(format!(
                "{w}: {} vs {} ns per syscall over no tracer ({:.3} s vs {:.3} s; workload CPU time: {} vs {} ns)",
                ns(raw, false),
                ns(tp, false),
                raw.median_s,
                tp.median_s,
                ns(raw, true),
                ns(tp, true),
            ));
        }
    }
    if parts.is_empty() {
        not_run(G9)
    } else {
        Target {
            goal: G9.into(),
            measured: format!("empty raw_tp vs empty classic: {}", parts.join("; ")),
            met: Some(ok),
            section: String::new(),
        }
    }
}
