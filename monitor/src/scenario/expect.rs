//! Evaluating a scenario's expectations on a recorded session (docs/scenarios.md). Every
//! expectation is a query over the report's facts: it counts the events of one kind, in some
//! phases, of the scenario's app, that pass its filters, and fails above its limit.
use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::Expectation;
use crate::{
    analysis::{
        categories::Categories,
        facts::{Fact, What},
        history::Frame,
        summary::{endpoint_label, geo_words, human_bytes},
    },
    capability::Capability,
    escape::escape,
    event::{Phase, Scope},
};

/// Offending items listed per expectation, at most.
const MAX_DETAILS: usize = 20;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub name: String,
    /// Line of the expectation in the scenario file.
    pub line: usize,
    pub passed: bool,
    /// Events counted (opens for files).
    pub count: u64,
    /// Bytes read (files).
    pub bytes: u64,
    /// One line: what was found against the limit.
    pub message: String,
    /// The matching items: phase, what, how often, first time; at most 20.
    pub details: Vec<String>,
}

/// Every category an expectation names must exist in the rules in use.
pub fn check_categories(exps: &[Expectation], cats: &Categories, file: &str) -> Result<()> {
    for e in exps {
        for c in e.filter.categories.iter().flatten() {
            if !cats.all().iter().any(|k| &k.name == c) {
                let known: Vec<&str> = cats.all().iter().map(|k| k.name.as_str()).collect();
                bail!(
                    "{file}:{}: expectation {:?}: unknown file category {c:?} (the categories in use: {})",
                    e.line,
                    e.name,
                    known.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// `app` names the app itself or one of its `app:service` processes.
pub fn app_matches(app: &str, want: &str) -> bool {
    app == want
        || app
            .strip_prefix(want)
            .is_some_and(|rest| rest.starts_with(':'))
}

#[derive(Default)]
struct Item {
    count: u64,
    bytes: u64,
    first_s: f64,
    first: Option<chrono::DateTime<chrono::Utc>>,
}

/// What one fact contributes to an expectation: (target, detail, count, bytes).
fn contribution(
    e: &Expectation,
    f: &Fact,
    cats: &Categories,
) -> Option<(String, String, u64, u64)> {
    let flt = &e.filter;
    match (&f.what, e.kind) {
        (What::Connect(ep), Capability::Connect) => {
            let public = ep.scope == Some(Scope::Public);
            if let Some(c) = &flt.countries
                && !ep.country.as_ref().is_some_and(|x| c.contains(x))
            {
                return None;
            }
            if let Some(c) = &flt.allowed_countries
                && (!public || ep.country.as_ref().is_some_and(|x| c.contains(x)))
            {
                return None;
            }
            if let Some(a) = &flt.asns
                && !ep.asn.is_some_and(|x| a.contains(&x))
            {
                return None;
            }
            if let Some(a) = &flt.allowed_asns
                && (!public || ep.asn.is_some_and(|x| a.contains(&x)))
            {
                return None;
            }
            if let Some(s) = &flt.scopes
                && !ep.scope.is_some_and(|x| s.contains(&x))
            {
                return None;
            }
            if let Some(h) = &flt.hosts
                && !ep
                    .host
                    .as_deref()
                    .is_some_and(|x| h.iter().any(|p| p.matches(x)))
            {
                return None;
            }
            let geo = geo_words(ep);
            let detail = if geo.is_empty() {
                "no country or ASN known".to_string()
            } else {
                geo
            };
            Some((
                Capability::Connect.subject(Some(&endpoint_label(ep))),
                detail,
                1,
                0,
            ))
        }
        (What::Device { kind, path, op }, _) if *kind == e.kind => {
            if let Some(o) = &flt.ops
                && !o.contains(op)
            {
                return None;
            }
            if let Some(p) = &flt.path
                && !path.is_some_and(|x| p.matches(x))
            {
                return None;
            }
            Some((kind.subject(*path), op.to_string(), 1, 0))
        }
        (
            What::File {
                category,
                path,
                open,
                bytes,
                ..
            },
            Capability::File,
        ) => {
            let cat = &cats.all()[*category].name;
            if let Some(c) = &flt.categories
                && !c.contains(cat)
            {
                return None;
            }
            if let Some(p) = &flt.path
                && !path.is_some_and(|x| p.matches(x))
            {
                return None;
            }
            Some((
                Capability::File.subject(*path),
                cat.clone(),
                u64::from(*open),
                *bytes,
            ))
        }
        _ => None,
    }
}

/// Expectations evaluated fact by fact while a session is read.
pub struct Evaluator<'a> {
    exps: &'a [Expectation],
    default_app: Option<&'a str>,
    cats: &'a Categories,
    items: Vec<BTreeMap<(Phase, String, String), Item>>,
}

impl<'a> Evaluator<'a> {
    /// `default_app` is the scenario's `app` (None: every app).
    pub fn new(
        exps: &'a [Expectation],
        default_app: Option<&'a str>,
        cats: &'a Categories,
    ) -> Evaluator<'a> {
        Evaluator {
            exps,
            default_app,
            cats,
            items: exps.iter().map(|_| BTreeMap::new()).collect(),
        }
    }

    pub fn add(&mut self, f: &Fact) {
        let (cats, default_app) = (self.cats, self.default_app);
        for (e, acc) in self.exps.iter().zip(self.items.iter_mut()) {
            if let Some(app) = e.app.as_deref().or(default_app)
                && !app_matches(f.app, app)
            {
                continue;
            }
            if !e.phases.contains(&f.phase) {
                continue;
            }
            let Some((target, detail, count, bytes)) = contribution(e, f, cats) else {
                continue;
            };
            let relevant = if e.max_bytes.is_some() {
                bytes > 0
            } else {
                count > 0
            };
            if !relevant {
                continue;
            }
            let it = acc
                .entry((f.phase, target, detail))
                .or_insert_with(|| Item {
                    first: Some(f.ev.ts),
                    ..Item::default()
                });
            it.count += count;
            it.bytes += bytes;
        }
    }

    /// The outcomes; `frame` gives the times (the session's, known once it is read).
    pub fn finish(self, frame: Frame) -> Vec<Outcome> {
        self.exps
            .iter()
            .zip(self.items)
            .map(|(e, mut acc)| {
                for it in acc.values_mut() {
                    it.first_s = it.first.map_or(0.0, |t| frame.s(t));
                }
                outcome(e, acc)
            })
            .collect()
    }
}

fn outcome(e: &Expectation, acc: BTreeMap<(Phase, String, String), Item>) -> Outcome {
    let count: u64 = acc.values().map(|i| i.count).sum();
    let bytes: u64 = acc.values().map(|i| i.bytes).sum();
    let (passed, message) = match e.max_bytes {
        Some(limit) => (
            bytes <= limit,
            format!("{} read (limit {})", human_bytes(bytes), human_bytes(limit)),
        ),
        None => (
            count <= e.max,
            format!("{} (limit {})", e.kind.count_text(count), e.max),
        ),
    };
    let mut list: Vec<((Phase, String, String), Item)> = acc.into_iter().collect();
    list.sort_by(|a, b| {
        a.0.0
            .cmp(&b.0.0)
            .then(a.1.first_s.total_cmp(&b.1.first_s))
            .then(a.0.1.cmp(&b.0.1))
    });
    let total = list.len();
    let mut details: Vec<String> = list
        .into_iter()
        .take(MAX_DETAILS)
        .map(|((phase, target, detail), it)| {
            let amount = if e.max_bytes.is_some() {
                human_bytes(it.bytes)
            } else {
                format!("x{}", it.count)
            };
            format!(
                "[{}] {} ({}) {amount}, first at +{:.3}s",
                phase.as_str(),
                escape(&target),
                escape(&detail),
                it.first_s
            )
        })
        .collect();
    if total > MAX_DETAILS {
        details.push(format!("... and {} more", total - MAX_DETAILS));
    }
    Outcome {
        name: e.name.clone(),
        line: e.line,
        passed,
        count,
        bytes,
        message,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::summary::Endpoint,
        event::{Body, Event, HostSource, Proto},
    };

    fn connect_fact<'a>(ev: &'a Event, host: Option<&str>) -> Fact<'a> {
        Fact {
            app: "app",
            phase: Phase::Closed,
            ev,
            what: What::Connect(Endpoint {
                host: host.map(str::to_string),
                host_source: host.map(|_| HostSource::Dns),
                host_via: None,
                address: "192.0.2.7".parse().unwrap(),
                port: 443,
                proto: Proto::Tcp,
                scope: Some(Scope::Documentation),
                country: None,
                asn: None,
                as_org: None,
            }),
        }
    }

    #[test]
    fn hosts_filter_counts_only_matching_names() {
        let s = crate::scenario::Scenario::parse(
            "name = \"x\"\n[target]\npackage = \"a\"\n[[expect]]\nkind = \"connect\"\nhosts = [\"*.example-tracker.com\"]\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let e = &s.expect[0];
        let cats = Categories::builtin();
        let ev = Event {
            ts: chrono::Utc::now(),
            body: Body::Marker(crate::event::Marker { label: "x".into() }),
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 0,
            comm: "app".into(),
            app: Some("app".into()),
            phase: Some(Phase::Closed),
        };
        let hit = contribution(
            e,
            &connect_fact(&ev, Some("log-va.example-tracker.com")),
            &cats,
        );
        assert_eq!(
            hit.map(|h| h.0),
            Some("connect to log-va.example-tracker.com (192.0.2.7:443/tcp)".to_string())
        );
        assert!(contribution(e, &connect_fact(&ev, Some("example.com")), &cats).is_none());
        assert!(contribution(e, &connect_fact(&ev, None), &cats).is_none());
    }
}
