//! The live view on the terminal while recording: a status line with counts per kind and
//! the newest destinations. Quiet when stderr is not a terminal (or with --quiet).
use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    time::Instant,
};

use crate::event::{Body, Event};

pub struct LiveView {
    enabled: bool,
    counts: BTreeMap<&'static str, u64>,
    newest: Vec<String>,
    last_draw: Instant,
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
        }
    }

    pub fn event(&mut self, ev: &Event) {
        *self.counts.entry(ev.body.kind()).or_default() += 1;
        if let Body::Connect(c) = &ev.body {
            let d = format!("{}:{}", c.daddr, c.dport);
            self.newest.retain(|x| *x != d);
            self.newest.push(d);
            if self.newest.len() > 3 {
                self.newest.remove(0);
            }
        }
    }

    pub fn tick(&mut self) {
        if !self.enabled || self.last_draw.elapsed().as_millis() < 500 {
            return;
        }
        self.last_draw = Instant::now();
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let line = format!(
            "recording: {}{}",
            if counts.is_empty() {
                "no events yet".to_string()
            } else {
                counts.join(", ")
            },
            if self.newest.is_empty() {
                String::new()
            } else {
                format!(" | newest: {}", self.newest.join(" "))
            }
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", printable(&line));
        let _ = err.flush();
    }

    pub fn finish(&mut self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
