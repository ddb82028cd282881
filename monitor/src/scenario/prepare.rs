//! Before a run records: what is loaded and checked first, and the target resolved after the
//! setup steps.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{Scenario, Target, Vars, expect, steps::AppWatch};
use crate::{
    analysis::categories::Categories, baseline::Baseline, enrich::android::PackagesList, geo::Geo,
    session::TargetSpec,
};

/// What a run checks and loads before anything is recorded.
pub(super) struct Checked {
    pub(super) cats_file: Option<PathBuf>,
    pub(super) cats: Categories,
    pub(super) geo: Geo,
    pub(super) geoip_country: Option<PathBuf>,
    pub(super) geoip_asn: Option<PathBuf>,
    pub(super) baseline: Option<(Baseline, PathBuf)>,
    pub(super) packages_list: PathBuf,
    pub(super) devices: Vec<String>,
}

/// Categories, GeoIP databases, the baseline, packages.list and device patterns: loaded and
/// checked before the setup steps run, so a mistake costs no recording.
pub(super) fn check_before_recording(
    baseline: Option<&Path>,
    sc: &Scenario,
    file: &str,
    vars: &Vars,
    scenario_dir: &Path,
) -> Result<Checked> {
    let expand_path = |t: &Option<super::Template>| -> Result<Option<PathBuf>> {
        t.as_ref()
            .map(|t| Ok(resolve(&t.expand(vars)?, scenario_dir)))
            .transpose()
    };

    let cats_file = expand_path(&sc.record.categories)?;
    let cats = match &cats_file {
        Some(p) => Categories::load(p)?,
        None => Categories::builtin(),
    };
    expect::check_categories(&sc.expect, &cats, file)?;
    let geoip_country = expand_path(&sc.record.geoip_country)?;
    let geoip_asn = expand_path(&sc.record.geoip_asn)?;
    let geo = Geo::from_env_and_defaults(geoip_country.clone(), geoip_asn.clone())?;
    let baseline = match baseline {
        Some(p) => {
            let path = baseline_path(p, &sc.name)?;
            Some((Baseline::load(&path, &geo, Some(&cats))?, path))
        }
        None => None,
    };
    let packages_list = expand_path(&sc.record.packages_list)?
        .unwrap_or_else(|| PathBuf::from("/data/system/packages.list"));
    let devices: Vec<String> = sc
        .record
        .devices
        .iter()
        .map(|d| d.expand(vars))
        .collect::<Result<_>>()?;
    Ok(Checked {
        cats_file,
        cats,
        geo,
        geoip_country,
        geoip_asn,
        baseline,
        packages_list,
        devices,
    })
}

/// What `record` targets, and what the steps' waits watch, from `[target]`: resolved after
/// the setup steps (which may write the pid file).
pub(super) fn resolve_target(
    sc: &Scenario,
    vars: &Vars,
    scenario_dir: &Path,
    out: &Path,
    packages_list: &Path,
) -> Result<(TargetSpec, AppWatch)> {
    let mut target = TargetSpec {
        resolvers: crate::session::resolvers_from_args(&[])?,
        ..TargetSpec::default()
    };
    let mut watch = AppWatch::new(out, sc.app.clone());
    match &sc.target {
        Target::Package(p) => {
            target.packages.push(p.clone());
            if let Ok(pl) = PackagesList::load(packages_list) {
                watch.uids.extend(pl.uid_of(p));
            }
        }
        Target::Uid(u) => {
            target.uids.push(*u);
            watch.uids.push(*u);
        }
        Target::Comm(c) => {
            target.comms.push(c.clone());
            watch.comm = Some(c.clone());
        }
        Target::PidFile(t) => {
            let f = resolve(&t.expand(vars)?, scenario_dir);
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("read the pid file {}", f.display()))?;
            let pid: u32 = text
                .trim()
                .parse()
                .with_context(|| format!("{}: {:?} is not a pid", f.display(), text.trim()))?;
            target.pids.push(pid);
        }
        Target::Command(c) => target.command = c.argv(vars)?,
    }
    Ok((target, watch))
}

pub(super) fn resolve(p: &str, base: &Path) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// `--baseline` may name a baseline file, a session directory, or a directory of baselines.
pub(super) fn baseline_path(p: &Path, scenario: &str) -> Result<PathBuf> {
    if p.is_dir() && !p.join("session.json").exists() {
        let file: String = scenario
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let f = p.join(format!("{file}.json"));
        if !f.exists() {
            bail!(
                "no baseline for scenario {scenario:?} in {} (expected {})",
                p.display(),
                f.display()
            );
        }
        return Ok(f);
    }
    if !p.exists() {
        bail!("baseline {} does not exist", p.display());
    }
    Ok(p.to_path_buf())
}
