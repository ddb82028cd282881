//! `emuwatch export SESSION... --format parquet --out DIR`: sessions as Parquet tables for
//! the engines people already have (DuckDB, Spark, Trino, ClickHouse, BigQuery). The columns
//! are in `tables` and docs/export.md.
//!
//! Layout: one directory per table, one partition per session:
//! `DIR/{events,findings,sessions}/session=<id>/part-0.parquet`. Exporting a session writes
//! only its own partition (written as a temporary file and renamed into place, `sessions`
//! last), so adding a session never rewrites another's files, and exporting one again replaces
//! its files with the same content. Events are read in one streamed pass (the report's
//! analysis) and written in row groups of [`ROW_GROUP`] rows: memory stays bounded whatever the
//! session's size.
pub mod tables;

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use arrow_schema::SchemaRef;
use clap::{Args, ValueEnum};
use parquet::{
    arrow::ArrowWriter,
    basic::Compression,
    file::{metadata::KeyValue, properties::WriterProperties},
};
use serde_json::Value;

use crate::{
    analysis::{self, categories::Categories},
    geo::Geo,
    session::{self, RunInfo},
};
use tables::{EVENT_COLUMNS, EXPORT_SCHEMA_VERSION, FINDING_COLUMNS, SESSION_COLUMNS, schema};

/// Rows decoded at a time (memory: this many JSON rows at most).
const BATCH: usize = 8192;
/// Rows per Parquet row group (memory: one row group's encoded columns at most).
pub const ROW_GROUP: usize = 65_536;
/// The one file of each partition.
pub const PART: &str = "part-0.parquet";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Parquet,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Session directories to export.
    #[arg(value_name = "SESSION", required = true)]
    pub sessions: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: ExportFormat,
    /// Directory of the tables (created if missing; other sessions' files in it are left as
    /// they are).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Country database (.mmdb), as for `report`.
    #[arg(long, value_name = "DB")]
    pub geoip_country: Option<PathBuf>,
    /// ASN database (.mmdb or ip-location-db ASN .csv), as for `report`.
    #[arg(long, value_name = "DB")]
    pub geoip_asn: Option<PathBuf>,
    /// File category rules (TOML, docs/categories.md) instead of the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub categories: Option<PathBuf>,
    /// Say nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The `export` subcommand.
pub fn run(a: ExportArgs) -> Result<ExitCode> {
    let cats = match &a.categories {
        Some(p) => Categories::load(p)?,
        None => Categories::builtin(),
    };
    let geo = Geo::from_env_and_defaults(a.geoip_country.clone(), a.geoip_asn.clone())?;
    crate::safefs::create_dir_private(&a.out)?;
    // Two directories of one session (a copy) would write the same partition: refused first.
    let mut ids = std::collections::BTreeMap::new();
    for s in &a.sessions {
        let id = session::read_info(s)
            .with_context(|| format!("{} is not a readable session", s.display()))?
            .id(s);
        if let Some(prev) = ids.insert(id.clone(), s) {
            bail!(
                "{} and {} are the same session ({id})",
                prev.display(),
                s.display()
            );
        }
    }
    for s in &a.sessions {
        let done = export_session(s, &a.out, &geo, &cats)?;
        if !a.quiet {
            eprintln!(
                "emuwatch: exported {} ({} events, {} findings) as session {}",
                crate::live::printable(&s.display().to_string()),
                done.events,
                done.findings,
                done.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What one session's export wrote.
pub struct Exported {
    pub id: String,
    pub events: u64,
    pub findings: u64,
}

/// A table's partition directory of a session, created if missing; nothing on the way may be
/// a symlink (the files are written into it as root).
fn partition(out: &Path, table: &str, id: &str) -> Result<PathBuf> {
    let dir = out.join(table).join(format!("session={id}"));
    crate::safefs::create_dir_private(&dir)?;
    for p in [out.join(table), dir.clone()] {
        let md = std::fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
        if !md.is_dir() {
            bail!("{} is not a directory (a symlink?)", p.display());
        }
    }
    Ok(dir)
}

/// A Parquet file being written into a partition under a temporary name.
struct TableFile {
    writer: ArrowWriter<File>,
    tmp: tempfile::TempPath,
    dest: PathBuf,
    decoder: arrow_json::reader::Decoder,
    rows: Vec<Value>,
    count: u64,
}

impl TableFile {
    fn create(out: &Path, table: &str, id: &str, schema: SchemaRef) -> Result<TableFile> {
        let dir = partition(out, table, id)?;
        let dest = dir.join(PART);
        let (file, tmp) = tempfile::Builder::new()
            .prefix(".part-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("create a file in {}", dir.display()))?
            .into_parts();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .set_created_by(format!("emuwatch {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(
                    "emuwatch.export_schema_version".into(),
                    EXPORT_SCHEMA_VERSION.to_string(),
                ),
                KeyValue::new("emuwatch.table".into(), table.to_string()),
            ]))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
        let decoder = arrow_json::ReaderBuilder::new(schema)
            .with_batch_size(BATCH)
            .build_decoder()?;
        Ok(TableFile {
            writer,
            tmp,
            dest,
            decoder,
            rows: Vec::with_capacity(BATCH),
            count: 0,
        })
    }

    fn push(&mut self, row: Value) -> Result<()> {
        self.rows.push(row);
        self.count += 1;
        if self.rows.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.decoder
            .serialize(&self.rows)
            .with_context(|| format!("{}: a row does not fit the table", self.dest.display()))?;
        self.rows.clear();
        while let Some(batch) = self.decoder.flush()? {
            self.writer.write(&batch)?;
        }
        Ok(())
    }

    /// Finish the file and rename it into place.
    fn commit(mut self) -> Result<u64> {
        self.flush()?;
        let file = self.writer.into_inner()?;
        file.sync_all()?;
        drop(file);
        self.tmp
            .persist(&self.dest)
            .map_err(|e| e.error)
            .with_context(|| format!("write {}", self.dest.display()))?;
        Ok(self.count)
    }
}

/// Export one session into `out`.
pub fn export_session(dir: &Path, out: &Path, geo: &Geo, cats: &Categories) -> Result<Exported> {
    if !dir.join("session.json").exists() {
        bail!(
            "{} is not a session directory (no session.json)",
            dir.display()
        );
    }
    let info = session::read_info(dir)?;
    let id = info.id(dir);
    let mut events = TableFile::create(out, "events", &id, schema(EVENT_COLUMNS))?;
    let analysis = analysis::analyse_each(dir, geo, cats, false, |ev, app, _| {
        events.push(tables::event_row(&id, ev, app)?)
    })?;
    let mut findings = TableFile::create(out, "findings", &id, schema(FINDING_COLUMNS))?;
    let mut apps = Vec::new();
    for a in &analysis.summary.apps {
        apps.push(a.app.clone());
        for r in tables::finding_rows(&id, a)? {
            findings.push(r)?;
        }
    }
    let mut sessions = TableFile::create(out, "sessions", &id, schema(SESSION_COLUMNS))?;
    let dir_name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    sessions.push(tables::session_row(
        &id,
        &dir_name,
        &info,
        RunInfo::read(dir).as_ref(),
        &apps,
    )?)?;
    // The session's row last: a reader that sees it sees its events and findings too.
    let n_events = events.commit()?;
    let n_findings = findings.commit()?;
    sessions.commit()?;
    Ok(Exported {
        id,
        events: n_events,
        findings: n_findings,
    })
}
