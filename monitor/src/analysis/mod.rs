//! One pass from a recorded session to what it shows: which app each event belongs to and in
//! which phase (`history`), per-app findings, destinations, devices, file categories and
//! processes (`summary`, whose `Summary` is also the `summary.json` document), each app's
//! lifecycle (`lifecycle`), file categories (`categories`), and the events as (app, phase, what)
//! facts for scenario expectations and baselines (`facts`). The sentences people read are
//! written here, once; the renderers in `report` only lay them out.
pub mod categories;
pub mod facts;
pub mod history;
pub mod lifecycle;
pub mod summary;

use std::path::Path;

use anyhow::{Result, bail};

use crate::{event::Body, event::Event, geo::Geo, session};
use categories::Categories;

/// Everything the renderers need.
pub struct Analysis {
    pub summary: summary::Summary,
    /// The session's events, connects re-annotated with the geo databases.
    pub events: Vec<Event>,
    pub frame: history::Frame,
}

/// Load a session, annotate its destinations and analyse it.
pub fn analyse(dir: &Path, geo: &Geo, cats: &Categories) -> Result<Analysis> {
    if !dir.exists() {
        bail!("session directory {} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!("{} is not a session directory", dir.display());
    }
    let (info, mut events) = session::load(dir)?;
    // Scope is always recomputed; country/ASN only where a database is loaded (otherwise the
    // recorded values stay).
    for ev in &mut events {
        if let Body::Connect(c) = &mut ev.body {
            geo.annotate(c);
        }
    }
    let cx = summary::Context {
        dir: &dir.display().to_string(),
        info: &info,
        events: &events,
        geo_enriched: geo.has_data(),
        geo_sources: geo.sources().to_vec(),
        geo_attribution: geo.attribution(),
        categories: cats,
    };
    let summary = summary::build(&cx);
    let frame = history::Frame::new(&info, &events);
    Ok(Analysis {
        summary,
        events,
        frame,
    })
}
