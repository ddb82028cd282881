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
use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use maxminddb::{Reader, WithinOptions};
use serde::{Deserialize, Serialize};

use crate::event::Connect;

pub const ENV_COUNTRY: &str = "EMUWATCH_GEOIP_COUNTRY";
pub const ENV_ASN: &str = "EMUWATCH_GEOIP_ASN";

/// File names looked for in each default directory, in order.
pub const COUNTRY_FILES: &[&str] = &["country.mmdb"];
pub const ASN_FILES: &[&str] = &["asn.mmdb", "asn.csv"];

/// Where a database's own credit line is kept: `<database file>.attribution`.
const ATTRIBUTION_SUFFIX: &str = "attribution";

pub use crate::capability::Scope;

/// The address a destination really is: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) and NAT64
/// well-known-prefix (`64:ff9b::a.b.c.d`, RFC 6052) addresses stand for their IPv4 address.
pub fn effective_addr(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            ip
        }
    }
}

/// Classify an address (IPv4-mapped and NAT64 addresses by their IPv4 address).
pub fn scope(ip: IpAddr) -> Scope {
    match effective_addr(ip) {
        IpAddr::V4(v4) => scope_v4(v4),
        IpAddr::V6(v6) => scope_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn scope_v4(ip: Ipv4Addr) -> Scope {
    // IANA IPv4 Special-Purpose Address Registry (RFC 6890 and successors).
    let table: &[([u8; 4], u32, Scope)] = &[
        ([0, 0, 0, 0], 8, Scope::Unspecified),
        ([127, 0, 0, 0], 8, Scope::Loopback),
        ([10, 0, 0, 0], 8, Scope::Private),
        ([172, 16, 0, 0], 12, Scope::Private),
        ([192, 168, 0, 0], 16, Scope::Private),
        ([100, 64, 0, 0], 10, Scope::Cgnat),
        ([169, 254, 0, 0], 16, Scope::LinkLocal),
        ([192, 0, 2, 0], 24, Scope::Documentation),
        ([198, 51, 100, 0], 24, Scope::Documentation),
        ([203, 0, 113, 0], 24, Scope::Documentation),
        ([255, 255, 255, 255], 32, Scope::Broadcast),
        ([224, 0, 0, 0], 4, Scope::Multicast),
        ([240, 0, 0, 0], 4, Scope::Reserved),
        ([192, 0, 0, 0], 24, Scope::Reserved),
        ([198, 18, 0, 0], 15, Scope::Reserved),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, s)| *s)
        .unwrap_or(Scope::Public)
}

fn scope_v6(ip: Ipv6Addr) -> Scope {
    // IANA IPv6 Special-Purpose Address Registry; mapped/NAT64 were handled by the caller.
    if ip.is_unspecified() {
        return Scope::Unspecified;
    }
    if ip.is_loopback() {
        return Scope::Loopback;
    }
    let table: &[([u16; 8], u32, Scope)] = &[
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Scope::Multicast),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Scope::LinkLocal),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Scope::Private),
        // Deprecated site-local: private use in practice.
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Scope::Private),
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, Scope::Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Scope::Documentation),
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64, Scope::Reserved),
        ([0x2001, 0x0002, 0, 0, 0, 0, 0, 0], 48, Scope::Reserved),
        // Local-use NAT64 prefix (RFC 8215): translated inside one network.
        ([0x0064, 0xff9b, 0x0001, 0, 0, 0, 0, 0], 48, Scope::Private),
        ([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, Scope::Public),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map(|(_, _, s)| *s)
        .unwrap_or(Scope::Reserved)
}

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

/// The fields emuwatch reads from a MaxMind DB record. Unknown fields are skipped.
#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

impl Record<'_> {
    fn country(&self) -> Option<String> {
        let code = self
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or(self.country_code)
            // GeoIP2 leaves `country` out for some anycast/satellite networks; the country
            // the network is registered in is the best remaining answer.
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code))?;
        let ok = code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic());
        ok.then(|| code.to_ascii_uppercase())
    }
}

struct Mmdb {
    reader: Reader<Vec<u8>>,
    /// Records that hold a country / an AS number: a database of the wrong kind is an error.
    with_country: usize,
    with_asn: usize,
}

impl Mmdb {
    fn open(path: &Path) -> Result<Mmdb> {
        let buf = crate::safefs::read_regular(path, crate::safefs::DB_LIMIT)?;
        let reader = Reader::from_source(buf)
            .map_err(|e| anyhow::anyhow!("not a valid MaxMind DB (.mmdb) file: {e}"))?;
        let mut db = Mmdb {
            reader,
            with_country: 0,
            with_asn: 0,
        };
        (db.with_country, db.with_asn) = db
            .check()
            .map_err(|e| anyhow::anyhow!("corrupt MaxMind DB (.mmdb) file: {e}"))?;
        Ok(db)
    }

    /// Walk the whole search tree and decode every distinct record once, so that a broken
    /// tree, pointer or record is found now. (`Reader::verify` is stricter about metadata
    /// than real databases are: DB-IP files have an empty description.)
    /// Returns how many distinct records hold a country and an AS number.
    fn check(&self) -> std::result::Result<(usize, usize), maxminddb::MaxMindDbError> {
        let mut seen = HashSet::new();
        let (mut country, mut asn) = (0, 0);
        for item in self.reader.networks(WithinOptions::default())? {
            let found = item?;
            if let Some(offset) = found.offset()
                && seen.insert(offset)
                && let Some(r) = found.decode::<Record>()?
            {
                country += r.country().is_some() as usize;
                asn += r.autonomous_system_number.is_some() as usize;
            }
        }
        Ok((country, asn))
    }

    fn with_record<T>(&self, ip: IpAddr, f: impl FnOnce(&Record) -> T) -> Option<T> {
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return None;
        }
        // Every record was decoded once in `check`, so an error here cannot happen; if it
        // did, "no data" is the honest answer.
        let found = self.reader.lookup(ip).ok()?;
        let rec: Record = found.decode().ok()??;
        Some(f(&rec))
    }

    fn info(&self, role: &'static str, path: &Path) -> SourceInfo {
        let m = self.reader.metadata();
        let built = chrono::DateTime::from_timestamp(m.build_epoch as i64, 0)
            .map(|t| t.format("%Y-%m-%d").to_string());
        let description = m.description.get("en").cloned().unwrap_or_default();
        let attribution = sidecar_attribution(path)
            .unwrap_or_else(|| known_attribution(&m.database_type, &description, path));
        SourceInfo {
            role,
            path: path.to_path_buf(),
            format: "mmdb",
            database_type: Some(m.database_type.clone()),
            built,
            attribution,
        }
    }
}

/// An ip-location-db ASN CSV: `range_start,range_end,as_number,as_organisation`.
struct AsnCsv {
    v4: Vec<(u32, u32, u32)>,
    v6: Vec<(u128, u128, u32)>,
    orgs: HashMap<u32, String>,
}

impl AsnCsv {
    fn open(path: &Path) -> Result<AsnCsv> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(std::io::Cursor::new(crate::safefs::read_regular(
                path,
                crate::safefs::DB_LIMIT,
            )?));
        let mut db = AsnCsv {
            v4: Vec::new(),
            v6: Vec::new(),
            orgs: HashMap::new(),
        };
        let mut rec = csv::StringRecord::new();
        let mut line = 0u64;
        loop {
            match rdr.read_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => bail!("not an ASN CSV file: {e}"),
            }
            line += 1;
            let field = |i: usize| rec.get(i).unwrap_or("").trim();
            let (start, end) = match (field(0).parse::<IpAddr>(), field(1).parse::<IpAddr>()) {
                (Ok(s), Ok(e)) => (s, e),
                // A header line is allowed.
                _ if line == 1 => continue,
                _ => bail!(
                    "line {line}: expected `start_ip,end_ip,as_number,as_organisation` (ip-location-db ASN CSV), found {:?}",
                    rec.iter().collect::<Vec<_>>().join(",")
                ),
            };
            let asn: u32 = match field(2).parse() {
                Ok(n) => n,
                Err(_) if line == 1 => continue,
                Err(_) => bail!("line {line}: bad AS number {:?}", field(2)),
            };
            let org = field(3);
            if !org.is_empty() {
                db.orgs.entry(asn).or_insert_with(|| org.to_string());
            }
            match (start, end) {
                (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => db.v4.push((s.into(), e.into(), asn)),
                (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => db.v6.push((s.into(), e.into(), asn)),
                _ => bail!("line {line}: range {start} - {end} is empty or mixes IPv4 and IPv6"),
            }
        }
        if db.v4.is_empty() && db.v6.is_empty() {
            bail!("no ASN ranges in the file");
        }
        db.v4.sort_unstable();
        db.v6.sort_unstable();
        Ok(db)
    }

    fn lookup(&self, ip: IpAddr) -> Option<u32> {
        fn find<T: Ord + Copy>(rows: &[(T, T, u32)], ip: T) -> Option<u32> {
            let i = rows.partition_point(|r| r.0 <= ip);
            let r = rows.get(i.checked_sub(1)?)?;
            (ip <= r.1).then_some(r.2)
        }
        match ip {
            IpAddr::V4(v4) => find(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => find(&self.v6, u128::from(v6)),
        }
    }

    fn info(path: &Path) -> SourceInfo {
        SourceInfo {
            role: "asn",
            path: path.to_path_buf(),
            format: "csv",
            database_type: None,
            built: None,
            attribution: sidecar_attribution(path).unwrap_or_else(|| {
                format!(
                    "ASN data from {}; see its licence for attribution terms",
                    file_name(path)
                )
            }),
        }
    }
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

    fn s(a: &str) -> &'static str {
        scope(a.parse().unwrap()).as_str()
    }

    #[test]
    fn scope_ipv4() {
        assert_eq!(s("127.0.0.1"), "loopback");
        assert_eq!(s("127.45.6.7"), "loopback");
        assert_eq!(s("10.1.2.3"), "private");
        assert_eq!(s("172.16.0.1"), "private");
        assert_eq!(s("172.31.255.255"), "private");
        assert_eq!(s("172.32.0.1"), "public");
        assert_eq!(s("192.168.1.1"), "private");
        assert_eq!(s("169.254.10.1"), "link_local");
        assert_eq!(s("224.0.0.251"), "multicast");
        assert_eq!(s("239.255.255.250"), "multicast");
        assert_eq!(s("0.0.0.0"), "unspecified");
        assert_eq!(s("100.64.0.1"), "cgnat");
        assert_eq!(s("100.127.255.255"), "cgnat");
        assert_eq!(s("100.128.0.1"), "public");
        assert_eq!(s("192.0.2.7"), "documentation");
        assert_eq!(s("198.51.100.7"), "documentation");
        assert_eq!(s("203.0.113.7"), "documentation");
        assert_eq!(s("255.255.255.255"), "broadcast");
        assert_eq!(s("240.1.2.3"), "reserved");
        assert_eq!(s("198.18.0.1"), "reserved");
        assert_eq!(s("81.2.69.160"), "public");
        assert_eq!(s("8.8.8.8"), "public");
    }

    #[test]
    fn scope_ipv6() {
        assert_eq!(s("::1"), "loopback");
        assert_eq!(s("::"), "unspecified");
        assert_eq!(s("fe80::1"), "link_local");
        assert_eq!(s("fd00::1"), "private");
        assert_eq!(s("fc12::1"), "private");
        assert_eq!(s("ff02::fb"), "multicast");
        assert_eq!(s("2001:db8::1"), "documentation");
        assert_eq!(s("3fff::1"), "documentation");
        assert_eq!(s("100::1"), "reserved");
        assert_eq!(s("2a02:cf40::1"), "public");
        assert_eq!(s("2001:4860:4860::8888"), "public");
        // IPv4-mapped and NAT64 addresses are classified by their IPv4 address.
        assert_eq!(s("::ffff:127.0.0.1"), "loopback");
        assert_eq!(s("::ffff:192.168.0.1"), "private");
        assert_eq!(s("::ffff:81.2.69.160"), "public");
        assert_eq!(s("64:ff9b::81.2.69.160"), "public");
        assert_eq!(s("64:ff9b::10.0.0.1"), "private");
    }

    #[test]
    fn effective_addresses() {
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(effective_addr(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(effective_addr(ip("64:ff9b::1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(effective_addr(ip("2001:db8::1")), ip("2001:db8::1"));
    }

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
