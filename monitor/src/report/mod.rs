//! `emuwatch report SESSION`: what each app did, split by phase, background collection first.
//! Works offline on a session directory; see docs/report.md.
//!
//! The renderers only render what `analysis` found: `text`, `json` (the `summary.json`
//! document), `html` (+ `timeline`, the SVG picture).
pub mod html;
pub mod json;
pub mod text;
pub mod timeline;

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::{
    analysis::{self, Analysis, categories::Categories},
    geo::Geo,
};

/// A phase's Android-service capabilities asked over binder, for a table cell:
/// `clipboard 3, wifi 2`, or `0`.
pub fn services_cell(p: &analysis::summary::PhaseSummary) -> String {
    let parts: Vec<String> = p
        .services
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "0".to_string()
    } else {
        parts.join(", ")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Html,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Session directory (holds session.json and events.jsonl).
    #[arg(value_name = "SESSION")]
    pub session: PathBuf,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Country database (.mmdb). Default: $EMUWATCH_GEOIP_COUNTRY, then country.mmdb in the
    /// default geo directories (docs/geo.md).
    #[arg(long, value_name = "DB")]
    pub geoip_country: Option<PathBuf>,
    /// ASN database (.mmdb, or ip-location-db ASN .csv). Default: $EMUWATCH_GEOIP_ASN, then
    /// asn.mmdb / asn.csv in the default geo directories.
    #[arg(long, value_name = "DB")]
    pub geoip_asn: Option<PathBuf>,
    /// File category rules (TOML, docs/categories.md) instead of the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub categories: Option<PathBuf>,
}

pub fn render(r: &Analysis, format: Format) -> Result<String> {
    Ok(match format {
        Format::Text => text::render(&r.summary),
        Format::Json => json::render(&r.summary)?,
        Format::Html => html::render(r),
    })
}

/// The `report` subcommand.
pub fn run(a: ReportArgs) -> Result<ExitCode> {
    let cats = match &a.categories {
        Some(p) => Categories::load(p)?,
        None => Categories::builtin(),
    };
    let geo = Geo::from_env_and_defaults(a.geoip_country.clone(), a.geoip_asn.clone())?;
    // The timeline's marks only for the page that draws them.
    let report = analysis::analyse_with(&a.session, &geo, &cats, a.format == Format::Html, |_| {})?;
    let out = render(&report, a.format)?;
    match &a.out {
        Some(p) if p.as_os_str() != "-" => {
            crate::safefs::write_replace(p, out.as_bytes())?;
            eprintln!(
                "emuwatch: wrote {} report to {}",
                format_name(a.format),
                p.display()
            );
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            match stdout
                .write_all(out.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.context("write report to standard output")?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Text => "text",
        Format::Json => "JSON",
        Format::Html => "HTML",
    }
}
