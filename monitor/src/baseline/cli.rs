//! The `baseline save|show` and `diff` commands: where a baseline comes from, and the output.
use super::*;

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// File category rules (TOML, docs/categories.md). Default: those of the scenario run that
    /// recorded the session (run.json), else the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub categories: Option<PathBuf>,
    /// Country database (.mmdb) to re-annotate session destinations (docs/geo.md).
    #[arg(long, value_name = "DB")]
    pub geoip_country: Option<PathBuf>,
    /// ASN database (.mmdb or .csv).
    #[arg(long, value_name = "DB")]
    pub geoip_asn: Option<PathBuf>,
}

impl SourceArgs {
    fn open(&self) -> Result<(Geo, Option<Categories>)> {
        let cats = self
            .categories
            .as_ref()
            .map(|p| Categories::load(p))
            .transpose()?;
        let geo = Geo::from_env_and_defaults(self.geoip_country.clone(), self.geoip_asn.clone())?;
        Ok((geo, cats))
    }
}

#[derive(Subcommand, Debug)]
pub enum BaselineCmd {
    /// Save a session's baseline to FILE (JSON, stable: no timestamps, pids or loopback ports).
    Save {
        /// Session directory.
        session: PathBuf,
        /// Baseline file to write.
        file: PathBuf,
        #[command(flatten)]
        src: SourceArgs,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The baseline: a baseline file or a session directory.
    pub baseline: PathBuf,
    /// The session to compare: a session directory or a baseline file.
    pub session: PathBuf,
    #[arg(long, short, value_enum, default_value = "text")]
    pub format: DiffFormat,
    /// Volume changes (connects, opens, bytes, device operations) beyond this percentage are
    /// reported; growth beyond it is a regression.
    #[arg(long, value_name = "PCT", default_value_t = DEFAULT_THRESHOLD_PCT, value_parser = parse_pct)]
    pub threshold: f64,
    #[command(flatten)]
    pub src: SourceArgs,
}

pub fn parse_pct(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (e.g. 50)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?}: the threshold must be 0 or more"));
    }
    Ok(v)
}

pub fn run_baseline(cmd: BaselineCmd) -> Result<ExitCode> {
    match cmd {
        BaselineCmd::Save { session, file, src } => {
            if !session.is_dir() {
                bail!("{} is not a session directory", session.display());
            }
            let (geo, cats) = src.open()?;
            let b = Baseline::load(&session, &geo, cats.as_ref())?;
            crate::safefs::write_replace(&file, b.to_json().as_bytes())?;
            let phases: usize = b.apps.values().map(|p| p.len()).sum();
            eprintln!(
                "emuwatch: baseline of {} ({} app{}, {phases} app phase{}) written to {}",
                session.display(),
                b.apps.len(),
                if b.apps.len() == 1 { "" } else { "s" },
                if phases == 1 { "" } else { "s" },
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn run_diff(a: DiffArgs) -> Result<ExitCode> {
    let (geo, cats) = a.src.open()?;
    let base = Baseline::load(&a.baseline, &geo, cats.as_ref())?;
    let cur = Baseline::load(&a.session, &geo, cats.as_ref())?;
    let d = diff(
        &base,
        &cur,
        &a.baseline.display().to_string(),
        &a.session.display().to_string(),
        a.threshold,
    );
    match a.format {
        DiffFormat::Text => print!("{}", d.render_text()),
        DiffFormat::Json => println!("{}", serde_json::to_string_pretty(&d)?),
    }
    Ok(if d.regressions == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
