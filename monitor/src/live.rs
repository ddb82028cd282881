//! The live view on the terminal while recording: one status line with counts per kind (split
//! by phase once anything happens outside the foreground) and the newest destinations. Quiet
//! when stderr is not a terminal (or with --quiet).
use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    time::Instant,
};

use crate::event::{Body, Event, Phase};

pub struct LiveView {
    enabled: bool,
    /// kind -> [foreground, background, closed] (events without an app count as foreground).
    counts: BTreeMap<&'static str, [u64; 3]>,
    newest: Vec<String>,
    last_draw: Instant,
    started: Instant,
}

/// Make any string from the monitored app safe for a terminal (no escape sequences).
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl LiveView {
    pub fn new(quiet: bool) -> Self {
        LiveView {
            enabled: !quiet && std::io::stderr().is_terminal(),
            counts: BTreeMap::new(),
            newest: Vec::new(),
            last_draw: Instant::now(),
            started: Instant::now(),
        }
    }

    pub fn event(&mut self, ev: &Event) {
        let slot = match ev.phase {
            Some(Phase::Background) => 1,
            Some(Phase::Closed) => 2,
            _ => 0,
        };
        self.counts.entry(ev.body.kind()).or_default()[slot] += 1;
        if let Body::Connect(c) = &ev.body {
            let addr = std::net::SocketAddr::new(c.daddr, c.dport);
            let d = match &c.country {
                Some(cc) => format!("{addr} {cc}"),
                None => addr.to_string(),
            };
            self.newest.retain(|x| *x != d);
            self.newest.push(d);
            if self.newest.len() > 3 {
                self.newest.remove(0);
            }
        }
    }

    /// The status line (without terminal control), e.g.
    /// `12s connect 9 (bg 3, closed 4) | file_read 40 | newest: 127.0.0.1:443`.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("{}s", self.started.elapsed().as_secs())];
        for (kind, [fg, bg, closed]) in &self.counts {
            if matches!(*kind, "process" | "app_state" | "phase") {
                continue;
            }
            let total = fg + bg + closed;
            let mut s = format!("{kind} {total}");
            if bg + closed > 0 {
                s.push_str(&format!(" (bg {bg}, closed {closed})"));
            }
            parts.push(s);
        }
        if self.counts.is_empty() {
            parts.push("waiting for events".into());
        }
        let mut line = parts.join(" | ");
        if !self.newest.is_empty() {
            line.push_str(&format!(" | newest: {}", self.newest.join(", ")));
        }
        line
    }

    pub fn tick(&mut self) {
        if !self.enabled || self.last_draw.elapsed().as_millis() < 500 {
            return;
        }
        self.last_draw = Instant::now();
        let width = terminal_width().saturating_sub(1).max(20);
        let line: String = printable(&self.line()).chars().take(width).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    pub fn finish(&mut self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

fn terminal_width() -> usize {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0
    {
        ws.ws_col as usize
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::event::Connect;

    #[test]
    fn line_counts_by_kind_and_phase() {
        let mut v = LiveView::new(true);
        let mut ev = Event {
            ts: Utc::now(),
            body: Body::Connect(Connect {
                family: crate::event::AddrFamily::Inet,
                proto: crate::event::Proto::Tcp,
                daddr: "127.0.0.1".parse().unwrap(),
                dport: 443,
                result: 0,
                error: None,
                scope: None,
                country: None,
                asn: None,
                as_org: None,
                conn_id: None,
                host: None,
                host_source: None,
                host_via: None,
            }),
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 0,
            comm: "x".into(),
            app: Some("x".into()),
            phase: Some(Phase::Foreground),
        };
        v.event(&ev);
        assert!(
            v.line().ends_with("connect 1 | newest: 127.0.0.1:443"),
            "{}",
            v.line()
        );
        ev.phase = Some(Phase::Closed);
        v.event(&ev);
        assert!(
            v.line().contains("connect 2 (bg 0, closed 1)"),
            "{}",
            v.line()
        );
        assert_eq!(printable("a\x1b[31mb\n"), "a?[31mb?");
    }
}
