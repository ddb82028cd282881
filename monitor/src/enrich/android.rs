//! Android identity and app state: `packages.list` (package -> uid) and ActivityManager's
//! oom_score_adj bands.
use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result, bail};

/// Android puts user `u`'s copy of app `appId` at uid `u * 100000 + appId`.
pub use monitor_common::PER_USER_RANGE;
pub const FIRST_APPLICATION_UID: u32 = 10_000;
pub const FIRST_ISOLATED_UID: u32 = 90_000;
pub const LAST_ISOLATED_UID: u32 = 99_999;

/// Parsed `/data/system/packages.list`: `name uid debuggable datadir seinfo gids …`.
#[derive(Debug, Default, Clone)]
pub struct PackagesList {
    /// appId -> package names (shared uids map several packages to one appId).
    by_app_id: BTreeMap<u32, Vec<String>>,
    by_name: BTreeMap<String, u32>,
}

impl PackagesList {
    pub fn load(path: &Path) -> Result<PackagesList> {
        let text = crate::safefs::read_regular_text(path, crate::safefs::TEXT_LIMIT)?;
        Self::parse(&text).with_context(|| format!("parse {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<PackagesList> {
        let mut pl = PackagesList::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 {
                bail!(
                    "line {}: expected at least 6 fields (name uid debuggable datadir seinfo gids), found {}",
                    i + 1,
                    fields.len()
                );
            }
            let uid: u32 = fields[1]
                .parse()
                .with_context(|| format!("line {}: uid {:?} is not a number", i + 1, fields[1]))?;
            let app_id = uid % PER_USER_RANGE;
            pl.by_app_id
                .entry(app_id)
                .or_default()
                .push(fields[0].to_string());
            pl.by_name.insert(fields[0].to_string(), uid);
        }
        Ok(pl)
    }

    /// The uid packages.list gives for `name` (user 0).
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The package owning `uid`, for any Android user.
    pub fn package_of_uid(&self, uid: u32) -> Option<&str> {
        let app_id = uid % PER_USER_RANGE;
        if app_id < FIRST_APPLICATION_UID {
            return None;
        }
        self.by_app_id
            .get(&app_id)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

pub fn is_isolated_uid(uid: u32) -> bool {
    (FIRST_ISOLATED_UID..=LAST_ISOLATED_UID).contains(&(uid % PER_USER_RANGE))
}

/// An Android app process names itself after its package (`com.example.app` or
/// `com.example.app:service`) in argv[0]. Returns the package part when argv0 looks like that.
pub fn package_from_argv0(argv0: &str) -> Option<&str> {
    let pkg = argv0.split(':').next()?;
    let looks_like_package = pkg.contains('.')
        && !pkg.contains('/')
        && pkg
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    looks_like_package.then_some(pkg)
}

/// ActivityManager (ProcessList.java) level a score falls in.
pub fn band(oom_score_adj: i32) -> &'static str {
    match oom_score_adj {
        i32::MIN..=-1 => "system",
        0..=99 => "foreground",
        100..=199 => "visible",
        200..=299 => "perceptible",
        300..=399 => "backup",
        400..=499 => "heavy_weight",
        500..=599 => "service",
        600..=699 => "home",
        700..=799 => "previous",
        800..=899 => "service_b",
        _ => "cached",
    }
}

/// Bands in which the app is on screen (or visible to the user).
pub fn band_is_foreground(band: &str) -> bool {
    matches!(band, "foreground" | "visible")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "com.zhiliaoapp.musically 10123 0 /data/user/0/com.zhiliaoapp.musically default:targetSdkVersion=33 3003,3002\n\
com.android.chrome 10099 0 /data/user/0/com.android.chrome default 3003\n";

    #[test]
    fn parses_packages_and_maps_users() {
        let pl = PackagesList::parse(FIXTURE).unwrap();
        assert_eq!(pl.uid_of("com.zhiliaoapp.musically"), Some(10123));
        assert_eq!(pl.package_of_uid(10123), Some("com.zhiliaoapp.musically"));
        // user 10's copy of the same app
        assert_eq!(
            pl.package_of_uid(1_010_123),
            Some("com.zhiliaoapp.musically")
        );
        assert_eq!(pl.package_of_uid(1000), None);
        assert_eq!(pl.package_of_uid(10124), None);
    }

    #[test]
    fn rejects_short_lines_and_bad_uids() {
        let e = PackagesList::parse("com.a 10001 0 /data\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 1"), "{e:#}");
        assert!(PackagesList::parse("com.a x 0 /d s g\n").is_err());
    }

    #[test]
    fn bands_follow_activity_manager() {
        let cases = [
            (-800, "system"),
            (0, "foreground"),
            (100, "visible"),
            (200, "perceptible"),
            (250, "perceptible"),
            (300, "backup"),
            (400, "heavy_weight"),
            (500, "service"),
            (600, "home"),
            (700, "previous"),
            (800, "service_b"),
            (900, "cached"),
            (999, "cached"),
        ];
        for (adj, want) in cases {
            assert_eq!(band(adj), want, "adj {adj}");
        }
        assert!(band_is_foreground(band(100)) && !band_is_foreground(band(200)));
    }

    #[test]
    fn argv0_package_names() {
        assert_eq!(
            package_from_argv0("com.example.app"),
            Some("com.example.app")
        );
        assert_eq!(
            package_from_argv0("com.example.app:push"),
            Some("com.example.app")
        );
        assert_eq!(package_from_argv0("/usr/bin/python3.11"), None);
        assert_eq!(package_from_argv0("bash"), None);
        assert!(is_isolated_uid(90_001) && is_isolated_uid(1_099_000) && !is_isolated_uid(10_001));
    }
}
