//! What else the machine is doing around a run: how busy its CPUs are, SYNs retransmitted.
use std::time::{Duration, Instant};

/// The machine's count of retransmitted SYNs (/proc/net/netstat, TcpExt TCPSynRetrans).
pub fn syn_retransmits() -> u64 {
    let s = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = s.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPSynRetrans")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Share of both CPUs that was busy over a short window (idle+iowait vs the rest).
fn busy_fraction(window: Duration) -> f64 {
    fn read() -> Option<(u64, u64)> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let f: Vec<u64> = s
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = f.get(3)? + f.get(4)?;
        Some((idle, f.iter().sum()))
    }
    let a = read();
    std::thread::sleep(window);
    let (Some(a), Some(b)) = (a, read()) else {
        return 0.0;
    };
    let total = (b.1 - a.1).max(1) as f64;
    1.0 - (b.0 - a.0) as f64 / total
}

/// Wait (up to 3 s) for other activity on the machine to calm down; returns the busy share
/// last seen (kept with each sample).
pub fn settle() -> f64 {
    let t = Instant::now();
    loop {
        let b = busy_fraction(Duration::from_millis(200));
        if b < 0.2 || t.elapsed() > Duration::from_secs(3) {
            return b;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
