//! MaxMind DB files (`.mmdb`): checked completely when opened, then read record by record.
use std::{collections::HashSet, net::IpAddr, path::Path};

use anyhow::Result;
use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;

use super::{SourceInfo, known_attribution, sidecar_attribution};

/// The fields emuwatch reads from a MaxMind DB record. Unknown fields are skipped.
#[derive(Deserialize, Default)]
pub(super) struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    pub(super) autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    pub(super) autonomous_system_organization: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

impl Record<'_> {
    pub(super) fn country(&self) -> Option<String> {
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

pub(super) struct Mmdb {
    pub(super) reader: Reader<Vec<u8>>,
    /// Records that hold a country / an AS number: a database of the wrong kind is an error.
    pub(super) with_country: usize,
    pub(super) with_asn: usize,
}

impl Mmdb {
    pub(super) fn open(path: &Path) -> Result<Mmdb> {
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
    pub(super) fn check(&self) -> std::result::Result<(usize, usize), maxminddb::MaxMindDbError> {
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

    pub(super) fn with_record<T>(&self, ip: IpAddr, f: impl FnOnce(&Record) -> T) -> Option<T> {
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return None;
        }
        // Every record was decoded once in `check`, so an error here cannot happen; if it
        // did, "no data" is the honest answer.
        let found = self.reader.lookup(ip).ok()?;
        let rec: Record = found.decode().ok()??;
        Some(f(&rec))
    }

    pub(super) fn info(&self, role: &'static str, path: &Path) -> SourceInfo {
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
