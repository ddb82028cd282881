//! The longer sections of BENCHMARKS.md: raw path, hook types, start/stop, and the shared
//! per-workload table.
use super::*;

/// How many runs of a section had other tracers' BPF programs on the machine.
pub(super) fn other_tracers_note(s: &mut String, samples: &[Sample]) {
    let with = samples
        .iter()
        .filter(|x| x.other_bpf_holders.is_some_and(|n| n > 0))
        .count();
    let most = samples
        .iter()
        .filter_map(|x| x.other_bpf_holders)
        .max()
        .unwrap_or(0);
    if with > 0 {
        let _ = writeln!(
            s,
            "**Other tracers were attached**: in {with} of these {} runs, other processes on the \
             machine held BPF programs (up to {most} at once; `other_bpf_holders` in the JSON). \
             Their hooks were on the workloads' syscalls in every condition, \"no tracer\" \
             included, so the absolute cost of a hook over no tracer reads low wherever theirs \
             had already put syscalls on the tracing slow path; conditions measured side by side \
             still compare.\n",
            samples.len()
        );
    }
}

/// The per-workload table of the overhead and raw sections.
pub(super) fn detail_table(
    s: &mut String,
    summaries: &[Summary],
    samples: &[Sample],
    key: &str,
    label: &dyn Fn(&Summary) -> String,
) {
    let _ = writeln!(
        s,
        "| condition | median s | min-max s | spread | x no tracer | x floor | events made | delivered | lost | reported lost | read totals delivered/made | tracer CPU s | tracer peak RSS MiB |"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for x in summaries.iter().filter(|x| x.workload == key) {
        let made = if x.delivered.is_some() {
            x.made.to_string()
        } else {
            "—".into()
        };
        let reads = match x.delivered_reads {
            Some(d) => format!("{d}/{}", x.made_reads),
            None => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3}-{:.3} | {:.1} % | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            label(x),
            x.median_s,
            x.min_s,
            x.max_s,
            x.spread_pct,
            x.vs_no_tracer,
            x.vs_floor,
            made,
            opt_u(x.delivered),
            opt_u(x.lost_worst),
            opt_u(x.lost_reported_worst),
            reads,
            opt_f(x.tracer_cpu_s, 2),
            opt_f(x.tracer_peak_rss_mib, 1),
        );
    }
    let stalled = samples
        .iter()
        .filter(|x| x.workload == key && x.syn_retransmits > 0)
        .count();
    if stalled > 0 {
        let _ = writeln!(
            s,
            "\n{stalled} run(s) of this workload saw a TCP SYN retransmitted on the machine (a connect stalled ~1 s); see `syn_retransmits` in the JSON. Medians absorb single outliers; min-max shows them."
        );
    }
}

/// A condition's name in the raw section, where both syscall paths appear.
fn raw_label(x: &Summary) -> String {
    match Cond::from_key(&x.cond) {
        Some(c) if c.raw_path() || c == Cond::FloorRaw || c == Cond::None => x.label.clone(),
        Some(Cond::Floor) => "per-syscall no-op floor (same hooks, empty programs)".into(),
        _ => format!("per-syscall path: {}", x.label),
    }
}

pub(super) fn raw_section(s: &mut String, r: &Results) {
    if r.raw_summaries.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Raw-syscalls path (Android kernels)\n");
    if let Some(m) = measured_in(r, "raw") {
        let _ = writeln!(s, "{m}");
    }
    let _ = writeln!(
        s,
        "Android's GKI kernels have no `syscalls:*` tracepoints, so there emuwatch attaches one \
         raw_tp program to `sys_enter` and one to `sys_exit` and dispatches on the syscall \
         number (`--syscall-probes raw`; `auto` picks it where `syscalls:*` is missing). This \
         kernel has both, so both paths are measured here side by side, in one run, with \
         interleaved repetitions, each against **its own floor**: the per-syscall conditions \
         against empty programs on the per-syscall hooks, the raw path against empty programs \
         on the raw path's hooks (raw_tp `sys_enter`/`sys_exit` plus the same sched, task, \
         cgroup and oom hooks; listed at the end). The raw conditions are the same commands as \
         in the overhead section with `--syscall-probes raw` added (the larger ring: \
         `--ring-buffer {}`). *Full capture* is the default ring if it lost nothing on that \
         workload, else the larger ring; a configuration that lost events does not count as \
         full capture.\n",
        r.big_ring
    );
    other_tracers_note(s, &r.raw_samples);
    let _ = writeln!(
        s,
        "| workload | condition | median s | min-max s | x no tracer | ratio to its floor | per-repetition ratio, median (min-max) | workload CPU s | CPU ratio to its floor | target | met? |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    );
    for (key, _) in &r.raw_workloads {
        let capture = raw_capture(r, key);
        for x in r.raw_summaries.iter().filter(|x| &x.workload == key) {
            let c = Cond::from_key(&x.cond);
            let (target, met) = match c {
                Some(Cond::EmuwatchRaw | Cond::EmuwatchRawBigRing) => {
                    let t = format!("<= {RAW_TARGETED_MAX:.2}x (full capture)");
                    if !lossless(x) {
                        (
                            t,
                            format!(
                                "no: lost {} events",
                                x.lost_worst
                                    .unwrap_or(0)
                                    .max(x.lost_reported_worst.unwrap_or(0))
                            ),
                        )
                    } else if capture.is_some_and(|k| k.cond != x.cond) {
                        (t, "— (judged on the default ring: it lost nothing)".into())
                    } else {
                        let ok = x.vs_floor <= RAW_TARGETED_MAX;
                        (t, if ok { "**yes**" } else { "**no**" }.into())
                    }
                }
                Some(Cond::EmuwatchRawOther) => {
                    let ok = x.vs_floor <= RAW_UNTARGETED_MAX;
                    (
                        format!("<= {RAW_UNTARGETED_MAX:.2}x"),
                        if ok { "**yes**" } else { "**no**" }.into(),
                    )
                }
                _ => ("—".into(), "—".into()),
            };
            let (ratio, cpu) = match c {
                Some(Cond::None) => ("—".into(), "—".into()),
                _ => (format!("{:.2}", x.vs_floor), cpu_ratio(x)),
            };
            let paired = match (c, x.paired_vs_floor) {
                (Some(Cond::None), _) | (_, None) => "—".into(),
                (Some(c), _) if c.floor() == c => "—".into(),
                (_, Some([m, lo, hi])) => format!("{m:.2} ({lo:.2}-{hi:.2})"),
            };
            let _ = writeln!(
                s,
                "| {key} | {} | {:.3} | {:.3}-{:.3} | {:.2} | {ratio} | {paired} | {} | {cpu} | {target} | {met} |",
                raw_label(x),
                x.median_s,
                x.min_s,
                x.max_s,
                x.vs_no_tracer,
                opt_f(x.cpu_median_s, 3),
            );
        }
    }
    let _ = writeln!(
        s,
        "\nTargets are judged on the ratio of wall-clock medians (the workload's own timing, as \
         everywhere in this file). *Per-repetition ratio*: each repetition of a condition against \
         its floor's run in the same repetition (the two ran within a minute or so of each \
         other); its range shows how far one pair can be from the median on this machine. *Workload CPU s* is the median of the workload's own CPU time (user + \
         system, its children included): the hooks run inside its syscalls and are charged to \
         it, while time spent waiting for a CPU that another job holds is not, so on a loaded \
         machine it is the steadier measure of what the hooks cost; it does not show what \
         emuwatch's userspace takes from the workload by competing for the CPUs. The \
         per-syscall rows are the reference, measured in the same run; their own targets \
         (1.10x on (a) targeted, no more than the floor untargeted) are evaluated in Targets \
         from the overhead section. Details per workload:\n"
    );
    for (key, desc) in &r.raw_workloads {
        let _ = writeln!(s, "### Raw path: {desc}\n");
        detail_table(s, &r.raw_summaries, &r.raw_samples, key, &raw_label);
        s.push('\n');
    }
}

pub(super) fn hook_type_section(s: &mut String, r: &Results) {
    if r.hook_type_summaries.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Hook type for the raw path: raw_tp vs classic raw_syscalls tracepoints\n"
    );
    if let Some(m) = measured_in(r, "hooktype") {
        let _ = writeln!(s, "{m}");
    }
    let reps = r
        .runs
        .iter()
        .find(|run| run.sections.iter().any(|x| x == "hooktype"))
        .map_or(r.sizes.hook_type_reps, |run| run.sizes.hook_type_reps);
    let _ = writeln!(
        s,
        "The raw path can hang off `sys_enter`/`sys_exit` in two ways: raw_tp programs \
         (BPF_PROG_TYPE_RAW_TRACEPOINT, called with the tracepoint's arguments, no record \
         built) or programs on the classic `raw_syscalls/sys_enter`/`sys_exit` tracepoints \
         (through perf: the record is built for every syscall, then the program runs). \
         Either hook runs on every syscall of every task, captured or not. Here each is \
         measured with empty programs only (floor.rs), next to no tracer and the per-syscall \
         floor, on workload (a) and on (d), a loop of a syscall emuwatch does not capture; on \
         (d) also emuwatch's raw path itself, untargeted and targeted (what its dispatch costs \
         a syscall it does not record). {reps} interleaved repetitions. *Extra ns per syscall* \
         is (median - no tracer's median) / syscalls made ((a) makes 3 per iteration).\n"
    );
    other_tracers_note(s, &r.hook_type_samples);
    let _ = writeln!(
        s,
        "| workload | condition | median s | min-max s | spread | x no tracer | extra ns per syscall | workload CPU s | extra CPU ns per syscall |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (key, _) in &r.hook_type_workloads {
        for x in r.hook_type_summaries.iter().filter(|x| &x.workload == key) {
            let label = if x.cond == Cond::Floor.key() {
                "per-syscall no-op floor (for reference)".to_string()
            } else {
                x.label.clone()
            };
            let _ = writeln!(
                s,
                "| {key} | {label} | {:.3} | {:.3}-{:.3} | {:.1} % | {:.2} | {} | {} | {} |",
                x.median_s,
                x.min_s,
                x.max_s,
                x.spread_pct,
                x.vs_no_tracer,
                opt_f(extra_ns_per_syscall(r, x, false), 0),
                opt_f(x.cpu_median_s, 3),
                opt_f(extra_ns_per_syscall(r, x, true), 0),
            );
        }
    }
    s.push('\n');
    for (key, desc) in &r.hook_type_workloads {
        let raw = find(&r.hook_type_summaries, key, Cond::FloorRawTp);
        let tp = find(&r.hook_type_summaries, key, Cond::FloorTpRawSyscalls);
        if let (Some(raw), Some(tp)) = (raw, tp) {
            let ns = |x, cpu| opt_f(extra_ns_per_syscall(r, x, cpu), 0);
            let verdict = |a: f64, b: f64| {
                if a.is_nan() || b.is_nan() {
                    "not measured"
                } else if a <= b {
                    "raw_tp cheaper"
                } else {
                    "classic cheaper"
                }
            };
            let _ = writeln!(
                s,
                "- {desc}: wall-clock, empty raw_tp {:.3} s vs empty classic {:.3} s ({:.2}x), extra per syscall {} vs {} ns ({}); workload CPU time, {} vs {} s, extra per syscall {} vs {} ns ({}).",
                raw.median_s,
                tp.median_s,
                raw.median_s / tp.median_s,
                ns(raw, false),
                ns(tp, false),
                verdict(raw.median_s, tp.median_s),
                opt_f(raw.cpu_median_s, 3),
                opt_f(tp.cpu_median_s, 3),
                ns(raw, true),
                ns(tp, true),
                verdict(
                    raw.cpu_median_s.unwrap_or(f64::NAN),
                    tp.cpu_median_s.unwrap_or(f64::NAN)
                ),
            );
        }
    }
    s.push('\n');
}

pub(super) fn ring_note(r: &Results) -> String {
    let ring: Vec<&str> = r
        .command
        .split_whitespace()
        .skip_while(|w| *w != "--ring-buffer")
        .take(2)
        .collect();
    if ring.len() == 2 {
        format!(" --ring-buffer {}", ring[1])
    } else {
        String::new()
    }
}

pub(super) fn startstop_section(s: &mut String, r: &Results) {
    if r.startstop.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Start and stop: `record -- CMD` of a command that exits at once\n"
    );
    if let Some(m) = measured_in(r, "startstop") {
        let _ = writeln!(s, "{m}");
    }
    let _ = writeln!(
        s,
        "*Start*: from launching the tool to the command running (it writes the time). *Total*: \
         from launching the tool to its exit, probes detached. Medians of {} runs. bpftrace \
         attaches empty programs to the same tracepoints (`-c CMD`; cgroup hooks left out). \
         Targets: total <= 0.5 s, start <= 0.3 s.\n",
        r.sizes.startstop_reps
    );
    let _ = writeln!(
        s,
        "| tool | probes | attached | start s | total s | target |"
    );
    let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | --- |");
    for row in &r.startstop {
        let (start, total) = (row.start_median(), row.total_median());
        let verdict = if row.tool != "emuwatch" || row.comparison {
            String::new()
        } else if start <= 0.3 && total <= 0.5 {
            "met".into()
        } else {
            "MISSED".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {start:.3} | {total:.3} | {verdict} |",
            row.tool, row.path, row.probes
        );
    }
    s.push('\n');
}

/// What name capture costs: the connect workloads with `--names auto` (the default) and off.
pub(super) fn names_section(s: &mut String, r: &Results) {
    if r.names_summaries.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Name capture: connects with and without `--names`\n");
    if let Some(m) = measured_in(r, "names") {
        let _ = writeln!(s, "{m}");
    }
    let _ = writeln!(
        s,
        "Name capture (`--names auto`, the default) copies the first bytes a target sends on each \
         TCP connection (TLS ClientHello, HTTP request head), DNS messages and dnsproxyd \
         commands. Here it is measured on the per-syscall path against the same recording with \
         `--names off`, on (b) and on (e), where every connection sends a request head that is \
         copied and becomes an `http` event. Repetitions interleaved as in the overhead section.\n"
    );
    for (key, desc) in &r.names_workloads {
        let _ = writeln!(s, "### {desc}\n");
        detail_table(s, &r.names_summaries, &r.names_samples, key, &|x| {
            x.label.clone()
        });
        let on = find(&r.names_summaries, key, Cond::Emuwatch);
        let off = find(&r.names_summaries, key, Cond::EmuwatchNamesOff);
        if let (Some(on), Some(off)) = (on, off) {
            let _ = writeln!(
                s,
                "\nName capture on / off: {:.2}x wall-clock ({:.3} s vs {:.3} s).",
                on.median_s / off.median_s,
                on.median_s,
                off.median_s
            );
        }
        s.push('\n');
    }
}
