//! The soak's figures: one line each on stdout, from the result written to soak.json.
use std::path::Path;

use serde_json::{Value, json};

use super::{
    Recording,
    verdict::{RSS_GROWTH_LIMIT, RssVerdict},
};

/// Figures measured outside the recording itself.
pub struct Measured {
    pub o_rate: f64,
    pub secs: f64,
    pub offered: u64,
    pub workload_s: f64,
    pub connect_errors: u64,
    pub events_jsonl_bytes: u64,
    /// `emuwatch report`: (exit code, peak RSS KiB, wall s).
    pub report: (i32, u64, f64),
}

/// soak.json: every figure of the run and its failures.
pub fn result(
    m: &Measured,
    rec: &Recording,
    info: &Value,
    (rss, anon_v): (&Option<RssVerdict>, &Option<RssVerdict>),
    failures: &[String],
) -> Value {
    let s = &rec.sampled;
    let (rc, report_kib, report_s) = m.report;
    let events_total = info["events_total"].as_u64().unwrap_or(0);
    let bytes_per_event = m.events_jsonl_bytes as f64 / events_total.max(1) as f64;
    let achieved = m.offered as f64 / m.workload_s.max(1e-9);
    let gb_per_hour = |rate: f64| rate * bytes_per_event * 3600.0 / 1e9;
    json!({
        "duration_s": m.secs,
        "offered_rate": m.o_rate,
        "workload_events": m.offered,
        "workload_s": m.workload_s,
        "achieved_events_per_s": achieved,
        "workload_connect_errors": m.connect_errors,
        "recording_wall_s": rec.wall,
        "events_total": events_total,
        "events": info["events"],
        "lost": info["lost"],
        "complete": info["complete"],
        "record_exit": s.code,
        "record_cpu_s": s.rec_cpu,
        "record_cpu_share": s.rec_cpu / rec.wall.max(1e-9),
        "rss_samples": s.samples.len(),
        "rss_first_kib": s.samples.first(),
        "rss_last_kib": s.samples.last(),
        "rss_max_kib": rss.as_ref().map(|v| v.max_kib),
        "rss_peak_wait4_kib": s.peak_kib,
        "rss_first_third_median_kib": rss.as_ref().map(|v| v.first_third_median_kib),
        "rss_last_third_median_kib": rss.as_ref().map(|v| v.last_third_median_kib),
        "rss_growth": rss.as_ref().map(|v| v.growth),
        "rss_flat": rss.as_ref().map(|v| v.flat),
        "anon_first_kib": s.anon.first(),
        "anon_last_kib": s.anon.last(),
        "anon_max_kib": anon_v.as_ref().map(|v| v.max_kib),
        "anon_first_third_median_kib": anon_v.as_ref().map(|v| v.first_third_median_kib),
        "anon_last_third_median_kib": anon_v.as_ref().map(|v| v.last_third_median_kib),
        "anon_growth": anon_v.as_ref().map(|v| v.growth),
        "anon_flat": anon_v.as_ref().map(|v| v.flat),
        "events_jsonl_bytes": m.events_jsonl_bytes,
        "bytes_per_event": bytes_per_event,
        "gb_per_hour_achieved": gb_per_hour(achieved),
        "gb_per_hour_at_10k": gb_per_hour(10_000.0),
        "report_exit": rc,
        "report_s": report_s,
        "report_peak_rss_kib": report_kib,
        "load_start": rec.load_start,
        "load_end": rec.load_end,
        "failures": failures,
    })
}

/// The soak's figures, one line each, from the result written to soak.json.
pub fn print_result(r: &Value, file: &Path) {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let u = |k: &str| r[k].as_u64().unwrap_or(0);
    let mib = |k: &str| {
        r[k].as_u64()
            .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
    };
    println!(
        "soak: workload      {} events in {:.1} s = {:.0} events/s (offered {:.0}/s; {} connects refused)",
        u("workload_events"),
        f("workload_s"),
        f("achieved_events_per_s"),
        f("offered_rate"),
        u("workload_connect_errors")
    );
    println!(
        "soak: session       {} events, lost {} (undecodable {}, truncated paths {}), complete {}",
        u("events_total"),
        r["lost"]["total"],
        r["lost"]["undecodable"],
        r["lost"]["truncated_paths"],
        r["complete"]
    );
    for (what, p) in [("VmRSS  ", "rss"), ("RssAnon", "anon")] {
        println!(
            "soak: {what}      first {} MiB, last {} MiB, max {} MiB; medians first third {} MiB, last third {} MiB ({:+.1} %, limit +{:.0} %); {} samples",
            mib(&format!("{p}_first_kib")),
            mib(&format!("{p}_last_kib")),
            mib(&format!("{p}_max_kib")),
            mib(&format!("{p}_first_third_median_kib")),
            mib(&format!("{p}_last_third_median_kib")),
            f(&format!("{p}_growth")) * 100.0,
            RSS_GROWTH_LIMIT * 100.0,
            u("rss_samples")
        );
    }
    println!(
        "soak: emuwatch CPU  {:.1} s over {:.1} s ({:.1} % of one CPU)",
        f("record_cpu_s"),
        f("recording_wall_s"),
        100.0 * f("record_cpu_share")
    );
    println!(
        "soak: size          events.jsonl {} bytes, {:.1} bytes/event: {:.2} GB/hour at the achieved rate, {:.2} GB/hour at 10k events/s",
        u("events_jsonl_bytes"),
        f("bytes_per_event"),
        f("gb_per_hour_achieved"),
        f("gb_per_hour_at_10k")
    );
    println!(
        "soak: report        exit {} in {:.1} s, peak RSS {} MiB",
        r["report_exit"],
        f("report_s"),
        mib("report_peak_rss_kib")
    );
    println!(
        "soak: load          start {}; end {}",
        r["load_start"].as_str().unwrap_or("?"),
        r["load_end"].as_str().unwrap_or("?")
    );
    println!("soak: figures in    {}", file.display());
}
