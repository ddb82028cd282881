//! The soak's verdicts: is the session whole, and is memory flat.
use serde_json::Value;

/// RSS may grow by this fraction between the first and the last third of the samples.
pub const RSS_GROWTH_LIMIT: f64 = 0.10;

fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => 0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    }
}

/// The flat-memory verdict over samples taken once a second: drop the warm-up (10 % of the
/// samples, at least 5), then compare the medians of the first and last thirds of the rest;
/// flat when the last is at most [`RSS_GROWTH_LIMIT`] above the first.
#[derive(Debug, PartialEq)]
pub struct RssVerdict {
    pub first_third_median_kib: u64,
    pub last_third_median_kib: u64,
    pub max_kib: u64,
    pub growth: f64,
    pub flat: bool,
}

pub fn rss_verdict(samples: &[u64]) -> Option<RssVerdict> {
    let warm = (samples.len() / 10).max(5);
    let rest = samples.get(warm..)?;
    if rest.len() < 3 {
        return None;
    }
    let third = rest.len() / 3;
    let first = median(&rest[..third]);
    let last = median(&rest[rest.len() - third..]);
    let growth = (last as f64 - first as f64) / first.max(1) as f64;
    Some(RssVerdict {
        first_third_median_kib: first,
        last_third_median_kib: last,
        max_kib: samples.iter().copied().max().unwrap_or(0),
        growth,
        flat: growth <= RSS_GROWTH_LIMIT,
    })
}

/// What the workload made (its own counts) and what the session must therefore hold.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub file_ops: u64,
    pub connects: u64,
}

/// What `emuwatch-benchload count` found in events.jsonl.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    pub opens: u64,
    pub reads: u64,
    pub connects: u64,
    pub lines: u64,
}

/// The failures of a session, from its session.json and what was counted in its
/// events.jsonl; empty when it is whole and holds exactly what the workload made.
pub fn session_failures(info: &Value, exp: Expected, found: Found) -> Vec<String> {
    let mut f = Vec::new();
    let n = |p: &str| info.pointer(p).and_then(Value::as_u64);
    for p in ["/lost/total", "/lost/undecodable", "/lost/truncated_paths"] {
        match n(p) {
            Some(0) => {}
            Some(v) => f.push(format!("session.json {p} = {v}, not 0")),
            None if p == "/lost/truncated_paths" => {}
            None => f.push(format!("session.json has no {p}")),
        }
    }
    if info.get("complete") != Some(&Value::Bool(true)) {
        f.push("session.json: complete is not true".into());
    }
    let stop = info.get("stop_reason").and_then(Value::as_str);
    if stop != Some("targets_exited") {
        f.push(format!(
            "session.json: stop_reason {stop:?}, expected \"targets_exited\""
        ));
    }
    match n("/events_total") {
        Some(t) if t == found.lines => {}
        t => f.push(format!(
            "session.json events_total {t:?} but events.jsonl has {} lines",
            found.lines
        )),
    }
    for (what, got, want) in [
        (
            "file_open events of the workload's file",
            found.opens,
            exp.file_ops,
        ),
        (
            "file_read events of the workload's file",
            found.reads,
            exp.file_ops,
        ),
        (
            "connect events to the workload's port",
            found.connects,
            exp.connects,
        ),
    ] {
        if got != want {
            f.push(format!("{what}: {got} in the session, {want} made"));
        }
    }
    f
}

/// A memory series that is not flat, or too short to judge, is a failure.
pub fn rss_failures(
    rss: &Option<RssVerdict>,
    anon_v: &Option<RssVerdict>,
    n: usize,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (what, v) in [("VmRSS", &rss), ("RssAnon", &anon_v)] {
        match v {
            Some(v) if !v.flat => failures.push(format!(
                "{what} not flat: last-third median {} KiB is {:+.1} % of the first-third median {} KiB (limit +{:.0} %)",
                v.last_third_median_kib,
                v.growth * 100.0,
                v.first_third_median_kib,
                RSS_GROWTH_LIMIT * 100.0
            )),
            Some(_) => {}
            None => failures.push(format!(
                "too few memory samples ({}) to judge {what}",
                n
            )),
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn whole() -> Value {
        json!({"events_total": 10, "complete": true, "stop_reason": "targets_exited",
               "lost": {"total": 0, "undecodable": 0, "truncated_paths": 0}})
    }
    const EXP: Expected = Expected {
        file_ops: 4,
        connects: 1,
    };
    const FOUND: Found = Found {
        opens: 4,
        reads: 4,
        connects: 1,
        lines: 10,
    };

    #[test]
    fn a_whole_session_passes() {
        assert_eq!(session_failures(&whole(), EXP, FOUND), Vec::<String>::new());
    }

    #[test]
    fn loss_or_a_missing_event_fails() {
        let mut lost = whole();
        lost["lost"]["total"] = json!(3);
        lost["complete"] = json!(false);
        let f = session_failures(&lost, EXP, FOUND);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("/lost/total = 3"), "{f:?}");
        let short = Found { reads: 3, ..FOUND };
        let f = session_failures(&whole(), EXP, short);
        assert_eq!(
            f,
            ["file_read events of the workload's file: 3 in the session, 4 made"]
        );
        let mut cut = whole();
        cut["events_total"] = json!(11);
        assert_eq!(session_failures(&cut, EXP, FOUND).len(), 1);
    }

    #[test]
    fn rss_is_flat_unless_it_grows_more_than_the_limit() {
        // 5 warm-up samples, then three thirds of 5.
        let mut s = vec![1000, 30000, 40000, 40000, 40000];
        s.extend([40000; 5]);
        s.extend([41000; 5]);
        s.extend([43000; 5]);
        let v = rss_verdict(&s).unwrap();
        assert_eq!(
            (v.first_third_median_kib, v.last_third_median_kib, v.max_kib),
            (40000, 43000, 43000)
        );
        assert!(v.flat);
        *s.last_mut().unwrap() = 60000;
        s.extend([60000; 3]);
        let v = rss_verdict(&s).unwrap();
        assert!(!v.flat, "{v:?}");
        assert_eq!(rss_verdict(&[1, 2, 3, 4, 5, 6]), None);
    }
}
