//! ip-location-db ASN CSV files: sorted ranges, looked up by binary search.
use std::{collections::HashMap, net::IpAddr, path::Path};

use anyhow::{Result, bail};

use super::{SourceInfo, file_name, sidecar_attribution};

/// An ip-location-db ASN CSV: `range_start,range_end,as_number,as_organisation`.
pub(super) struct AsnCsv {
    v4: Vec<(u32, u32, u32)>,
    v6: Vec<(u128, u128, u32)>,
    pub(super) orgs: HashMap<u32, String>,
}

impl AsnCsv {
    pub(super) fn open(path: &Path) -> Result<AsnCsv> {
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

    pub(super) fn lookup(&self, ip: IpAddr) -> Option<u32> {
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

    pub(super) fn info(path: &Path) -> SourceInfo {
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
