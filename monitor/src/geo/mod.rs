//! Destination enrichment: the scope of every connect address (loopback, private, ...) and,
//! for public addresses, country, autonomous system number and AS organisation from local
//! databases. Nothing here touches the network.
//!
//! Databases:
//! - country: a MaxMind DB (`.mmdb`) whose records carry `country.iso_code` (GeoLite2 / GeoIP2
//!   Country or City) or a top-level `country_code` (DB-IP lite and the other ip-location-db
//!   `.mmdb` files);
//! - ASN: a MaxMind DB with `autonomous_system_number` / `autonomous_system_organization`
//!   (GeoLite2-ASN, DB-IP ASN lite), or an ip-location-db ASN CSV (`start,end,asn,org`, IPv4
//!   and IPv6 rows in one file), which is what `scripts/install-geo-data.sh` installs.
//!
//! Where they come from (see docs/geo.md): command-line flags, then the environment variables
//! `EMUWATCH_GEOIP_COUNTRY` / `EMUWATCH_GEOIP_ASN` (the empty string turns that lookup off),
//! then the first default directory (`default_dirs`) holding `country.mmdb` / `asn.mmdb` /
//! `asn.csv`. A database is checked completely when opened (every tree node and record), so
//! a corrupt file is a one-line error up front, never a panic or a wrong answer later.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::event::Connect;

pub const ENV_COUNTRY: &str = "EMUWATCH_GEOIP_COUNTRY";
pub const ENV_ASN: &str = "EMUWATCH_GEOIP_ASN";

/// File names looked for in each default directory, in order.
pub const COUNTRY_FILES: &[&str] = &["country.mmdb"];
pub const ASN_FILES: &[&str] = &["asn.mmdb", "asn.csv"];

/// Where a database's own credit line is kept: `<database file>.attribution`.
const ATTRIBUTION_SUFFIX: &str = "attribution";

pub use crate::capability::Scope;

mod asn_csv;
mod mmdb;
mod scope;

use asn_csv::AsnCsv;
use mmdb::Mmdb;
pub use scope::{effective_addr, scope};

/// One database in use, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    /// `country` or `asn`.
    pub role: &'static str,
    pub path: PathBuf,
    /// `mmdb` or `csv`.
    pub format: &'static str,
    /// The MaxMind DB `database_type` (e.g. `GeoLite2-ASN`), when the file has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_type: Option<String>,
    /// Build date (UTC, YYYY-MM-DD) from the MaxMind DB metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub built: Option<String>,
    /// Who to credit and under which licence.
    pub attribution: String,
}

enum AsnDb {
    Mmdb(Mmdb),
    Csv(AsnCsv),
}

/// Country and ASN lookups plus address scope. `Geo::default()` has no database: it still
/// classifies scope.
#[derive(Default)]
pub struct Geo {
    country: Option<Mmdb>,
    asn: Option<AsnDb>,
    sources: Vec<SourceInfo>,
}

impl Geo {
    /// Open the given databases. A missing, unreadable or corrupt file is an error that names
    /// it (one line, no panic).
    pub fn open(country_db: Option<&Path>, asn_db: Option<&Path>) -> Result<Geo> {
        let mut geo = Geo::default();
        if let Some(p) = country_db {
            let db =
                Mmdb::open(p).with_context(|| format!("GeoIP country database {}", p.display()))?;
            if db.with_country == 0 && db.with_asn > 0 {
                bail!(
                    "GeoIP country database {}: an ASN database (no record holds a country)",
                    p.display()
                );
            }
            geo.sources.push(db.info("country", p));
            geo.country = Some(db);
        }
        if let Some(p) = asn_db {
            let is_csv = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let db = if is_csv {
                let db =
                    AsnCsv::open(p).with_context(|| format!("ASN database {}", p.display()))?;
                geo.sources.push(AsnCsv::info(p));
                AsnDb::Csv(db)
            } else {
                let db = Mmdb::open(p).with_context(|| format!("ASN database {}", p.display()))?;
                if db.with_asn == 0 && db.with_country > 0 {
                    bail!(
                        "ASN database {}: a country database (no record holds an AS number)",
                        p.display()
                    );
                }
                geo.sources.push(db.info("asn", p));
                AsnDb::Mmdb(db)
            };
            geo.asn = Some(db);
        }
        Ok(geo)
    }

    /// Open the databases chosen by flags (`country`, `asn`), else by `EMUWATCH_GEOIP_COUNTRY`
    /// / `EMUWATCH_GEOIP_ASN` (set to the empty string: no database of that kind), else the
    /// first file found in `default_dirs()`. No database found is not an error (scope is
    /// still classified); a named file that is missing or corrupt is.
    pub fn from_env_and_defaults(country: Option<PathBuf>, asn: Option<PathBuf>) -> Result<Geo> {
        let dirs = default_dirs();
        let country = choose(country, ENV_COUNTRY, &dirs, COUNTRY_FILES);
        let asn = choose(asn, ENV_ASN, &dirs, ASN_FILES);
        Geo::open(country.as_deref(), asn.as_deref())
    }

    /// Set `scope` for every address; for public addresses also `country` (when a country
    /// database is loaded) and `asn` / `as_org` (when an ASN database is loaded), which are
    /// cleared when the database has no data for the address. Non-public addresses never
    /// carry a country or ASN.
    pub fn annotate(&self, c: &mut Connect) {
        let ip = effective_addr(c.daddr);
        let s = scope(ip);
        c.scope = Some(s);
        if s != Scope::Public {
            c.country = None;
            c.asn = None;
            c.as_org = None;
            return;
        }
        if let Some(db) = &self.country {
            c.country = db.with_record(ip, |r| r.country()).flatten();
        }
        match &self.asn {
            None => {}
            Some(AsnDb::Mmdb(db)) => {
                let (asn, org) = db
                    .with_record(ip, |r| {
                        (
                            r.autonomous_system_number,
                            r.autonomous_system_organization.map(str::to_string),
                        )
                    })
                    .unwrap_or((None, None));
                c.asn = asn;
                c.as_org = org.filter(|o| !o.is_empty());
            }
            Some(AsnDb::Csv(db)) => {
                c.asn = db.lookup(ip);
                c.as_org = c.asn.and_then(|n| db.orgs.get(&n).cloned());
            }
        }
    }

    /// True when at least one database is loaded.
    pub fn has_data(&self) -> bool {
        !self.sources.is_empty()
    }

    /// The databases in use.
    pub fn sources(&self) -> &[SourceInfo] {
        &self.sources
    }

    /// Who to credit for the data, one line (empty when no database is loaded). Reports
    /// print it; DB-IP's CC BY 4.0 licence requires it.
    pub fn attribution(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for s in &self.sources {
            if !parts.contains(&s.attribution.as_str()) {
                parts.push(&s.attribution);
            }
        }
        parts.join("; ")
    }
}

/// Default database directories, most specific first: `$XDG_DATA_HOME/emuwatch/geo` (or
/// `~/.local/share/emuwatch/geo`), `/usr/local/share/emuwatch/geo`, `/usr/share/emuwatch/geo`.
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let xdg = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share"));
    if let Some(base) = xdg.or(home) {
        dirs.push(base.join("emuwatch/geo"));
    }
    dirs.push(PathBuf::from("/usr/local/share/emuwatch/geo"));
    dirs.push(PathBuf::from("/usr/share/emuwatch/geo"));
    dirs
}

fn choose(flag: Option<PathBuf>, env: &str, dirs: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
    if flag.is_some() {
        return flag;
    }
    if let Some(v) = std::env::var_os(env) {
        return (!v.is_empty()).then(|| PathBuf::from(v));
    }
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The credit line kept next to a database as `<file>.attribution` (written by
/// scripts/install-geo-data.sh), whitespace folded to one line.
fn sidecar_attribution(path: &Path) -> Option<String> {
    let mut p = path.as_os_str().to_owned();
    p.push(".");
    p.push(ATTRIBUTION_SUFFIX);
    let text = std::fs::read_to_string(PathBuf::from(p)).ok()?;
    let line: String = text
        .chars()
        .take(1000)
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!line.is_empty()).then_some(line)
}

fn known_attribution(database_type: &str, description: &str, path: &Path) -> String {
    let lower = format!("{database_type} {description}").to_ascii_lowercase();
    if database_type.starts_with("GeoLite2") {
        format!(
            "{database_type} data created by MaxMind, available from https://www.maxmind.com (GeoLite2 EULA)"
        )
    } else if database_type.starts_with("GeoIP2") {
        format!("{database_type} data by MaxMind, https://www.maxmind.com (commercial licence)")
    } else if lower.contains("db-ip") || lower.contains("dbip") {
        "IP Geolocation by DB-IP, https://db-ip.com (CC BY 4.0)".to_string()
    } else {
        format!(
            "{} ({}); see the database's licence for attribution terms",
            if database_type.is_empty() {
                "GeoIP data"
            } else {
                database_type
            },
            file_name(path)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn connect(addr: &str) -> Connect {
        Connect {
            family: if addr.contains(':') {
                crate::event::AddrFamily::Inet6
            } else {
                crate::event::AddrFamily::Inet
            },
            proto: crate::event::Proto::Tcp,
            daddr: addr.parse().unwrap(),
            dport: 443,
            result: 0,
            error: None,
            scope: None,
            country: Some("XX".into()),
            asn: Some(1),
            as_org: Some("stale".into()),
            conn_id: None,
            host: None,
            host_source: None,
            host_via: None,
        }
    }

    #[test]
    fn annotate_without_databases_sets_scope_and_keeps_public_fields() {
        let geo = Geo::default();
        let mut c = connect("127.0.0.1");
        geo.annotate(&mut c);
        assert_eq!(c.scope, Some(Scope::Loopback));
        assert_eq!((c.country, c.asn, c.as_org), (None, None, None));
        let mut c = connect("81.2.69.160");
        geo.annotate(&mut c);
        assert_eq!(c.scope, Some(Scope::Public));
        // No database loaded: what the recorder wrote stays.
        assert_eq!(c.country.as_deref(), Some("XX"));
        assert!(geo.attribution().is_empty());
    }

    #[test]
    fn asn_csv_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("asn.csv");
        std::fs::write(
            &p,
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd\n\
             2001:200::,2001:200:1b9:ffff:ffff:ffff:ffff:ffff,2500,WIDE Project\n",
        )
        .unwrap();
        let geo = Geo::open(None, Some(&p)).unwrap();
        let mut c = connect("1.0.0.9");
        geo.annotate(&mut c);
        assert_eq!(
            (c.asn, c.as_org.as_deref()),
            (Some(13335), Some("Cloudflare, Inc."))
        );
        let mut c = connect("::ffff:1.0.5.1");
        geo.annotate(&mut c);
        assert_eq!(c.asn, Some(38803));
        let mut c = connect("1.0.2.1");
        geo.annotate(&mut c);
        assert_eq!((c.asn, c.as_org), (None, None));
        let mut c = connect("2001:200:5::1");
        geo.annotate(&mut c);
        assert_eq!(c.asn, Some(2500));
        // Country untouched: no country database.
        assert_eq!(c.country.as_deref(), Some("XX"));
        assert!(geo.attribution().contains("asn.csv"));

        std::fs::write(&p, "1.0.0.0,1.0.0.255,13335,x\nnot,an,asn,line\n").unwrap();
        let err = format!("{:#}", Geo::open(None, Some(&p)).err().unwrap());
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains('\n'));
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/geoip")
            .join(name)
    }

    #[test]
    fn maxmind_layout_country_and_asn() {
        let geo = Geo::open(
            Some(&fixture("GeoIP2-Country-Test.mmdb")),
            Some(&fixture("GeoLite2-ASN-Test.mmdb")),
        )
        .unwrap();
        let look = |a: &str| {
            let mut c = connect(a);
            geo.annotate(&mut c);
            (c.scope.unwrap(), c.country, c.asn, c.as_org)
        };
        assert_eq!(
            look("89.160.20.112"),
            (
                Scope::Public,
                Some("SE".into()),
                Some(29518),
                Some("Bredband2 AB".into())
            )
        );
        assert_eq!(
            look("81.2.69.160"),
            (Scope::Public, Some("GB".into()), None, None)
        );
        assert_eq!(
            look("1.128.0.1"),
            (
                Scope::Public,
                None,
                Some(1221),
                Some("Telstra Pty Ltd".into())
            )
        );
        // IPv4-mapped IPv6 is looked up as IPv4.
        assert_eq!(look("::ffff:89.160.20.113").1.as_deref(), Some("SE"));
        assert_eq!(look("2001:218::10").1.as_deref(), Some("JP"));
        // Private addresses never get geo data, even stale recorded values are cleared.
        assert_eq!(look("10.0.2.3"), (Scope::Private, None, None, None));
        let attr = geo.attribution();
        assert!(attr.contains("MaxMind DB test data"), "{attr}");
        assert_eq!(geo.sources().len(), 2);
        assert_eq!(
            geo.sources()[0].database_type.as_deref(),
            Some("GeoIP2-Country")
        );
    }

    /// DB-IP lite (ip-location-db) files: top-level `country_code`, IPv4-only variants, an
    /// empty description (which `Reader::verify` would reject).
    #[test]
    fn dbip_layout_country_code() {
        use mmdb_writer::{IpVersion, Value, Writer};
        let dir = tempfile::tempdir().unwrap();
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        for (name, version) in [("v6.mmdb", IpVersion::V6), ("v4.mmdb", IpVersion::V4)] {
            let mut w = Writer::builder("country ipvAll")
                .ip_version(version)
                .build();
            let gb = Value::map([("country_code", "GB")]);
            w.insert_range(ip("81.2.69.0"), ip("81.2.69.255"), &gb)
                .unwrap();
            w.insert_range(
                ip("111.235.160.0"),
                ip("111.235.163.255"),
                &Value::map([("country_code", "CN")]),
            )
            .unwrap();
            if version == IpVersion::V6 {
                w.insert_range(
                    ip("2001:218::"),
                    ip("2001:218:ffff:ffff:ffff:ffff:ffff:ffff"),
                    &Value::map([("country_code", "JP")]),
                )
                .unwrap();
            }
            let p = dir.path().join(name);
            std::fs::write(&p, w.to_bytes().unwrap()).unwrap();
            std::fs::write(
                dir.path().join(format!("{name}.attribution")),
                "IP Geolocation by DB-IP (test)\n",
            )
            .unwrap();
            let geo = Geo::open(Some(&p), None).unwrap();
            let look = |a: &str| {
                let mut c = connect(a);
                geo.annotate(&mut c);
                c.country
            };
            assert_eq!(look("81.2.69.160").as_deref(), Some("GB"), "{name}");
            assert_eq!(
                look("::ffff:111.235.160.9").as_deref(),
                Some("CN"),
                "{name}"
            );
            assert_eq!(look("8.8.8.8"), None, "{name}");
            let jp = if version == IpVersion::V6 {
                Some("JP")
            } else {
                None
            };
            assert_eq!(look("2001:218::1").as_deref(), jp, "{name}");
            assert_eq!(geo.attribution(), "IP Geolocation by DB-IP (test)");
        }
    }

    #[test]
    fn broken_databases_are_one_line_errors() {
        for name in [
            "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
            "GeoIP2-City-Test-Broken-Double-Format.mmdb",
            "MaxMind-DB-test-broken-search-tree-24.mmdb",
            "MaxMind-DB-test-pointer-decoder-dos.mmdb",
            "LICENSE-MIT",
        ] {
            let err = Geo::open(Some(&fixture(name)), None).err().expect(name);
            let msg = format!("{err:#}");
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains("GeoIP country database"), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            let err = Geo::open(None, Some(&fixture(name))).err().expect(name);
            assert!(format!("{err:#}").starts_with("ASN database"));
        }
        let err = Geo::open(Some(Path::new("/nonexistent/country.mmdb")), None)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("No such file"), "{err:#}");
    }

    #[test]
    fn env_empty_disables_and_flag_wins() {
        let dirs = vec![PathBuf::from("/nonexistent-emuwatch-dir")];
        assert_eq!(
            choose(
                Some("/x.mmdb".into()),
                "EMUWATCH_TEST_UNSET_VAR",
                &dirs,
                COUNTRY_FILES
            ),
            Some(PathBuf::from("/x.mmdb"))
        );
        assert_eq!(
            choose(None, "EMUWATCH_TEST_UNSET_VAR", &dirs, COUNTRY_FILES),
            None
        );
    }

    /// A database of the wrong kind, or a device / FIFO given as a database, is a one-line
    /// error (not an ASN column silently empty, not a read that never ends).
    #[test]
    fn wrong_kind_or_not_a_file() {
        let country = fixture("GeoIP2-Country-Test.mmdb");
        let asn = fixture("GeoLite2-ASN-Test.mmdb");
        let e = Geo::open(None, Some(&country)).err().unwrap();
        assert!(format!("{e:#}").contains("a country database"), "{e:#}");
        let e = Geo::open(Some(&asn), None).err().unwrap();
        assert!(format!("{e:#}").contains("an ASN database"), "{e:#}");
        Geo::open(Some(&country), Some(&asn)).unwrap();
        for dev in ["/dev/zero", "/dev/null"] {
            let e = Geo::open(Some(Path::new(dev)), None).err().unwrap();
            assert!(format!("{e:#}").contains("not a regular file"), "{e:#}");
            let e = Geo::open(None, Some(Path::new(&format!("{dev}.csv"))))
                .err()
                .unwrap();
            assert!(!format!("{e:#}").is_empty());
        }
    }
}
