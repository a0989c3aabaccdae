//! Country and ASN from MMDB files (MaxMind GeoLite2/GeoIP2 or ip-location-db layouts), read with
//! the `maxminddb` crate. Several files may be given (a country and an ASN database); the first
//! that answers a field wins.
use std::{net::IpAddr, path::Path};

use maxminddb::{PathElement, Reader};

use super::EnrichError;

/// Country and ASN of one address.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GeoInfo {
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

/// Open MMDB readers.
#[derive(Debug)]
pub struct Geo {
    readers: Vec<(String, Reader<Vec<u8>>)>,
}

const COUNTRY_PATHS: [&[PathElement<'static>]; 3] = [
    &[PathElement::Key("country"), PathElement::Key("iso_code")],
    &[
        PathElement::Key("registered_country"),
        PathElement::Key("iso_code"),
    ],
    &[PathElement::Key("country_code")],
];

impl Geo {
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<Geo, EnrichError> {
        let mut readers = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let r = Reader::open_readfile(p).map_err(|e| EnrichError::Invalid {
                path: p.to_path_buf(),
                reason: format!("not a readable MMDB file: {e}"),
            })?;
            readers.push((r.metadata().database_type.clone(), r));
        }
        Ok(Geo { readers })
    }

    /// Database types of the open files.
    pub fn types(&self) -> Vec<String> {
        self.readers.iter().map(|(t, _)| t.clone()).collect()
    }

    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let mut g = GeoInfo::default();
        for (_, r) in &self.readers {
            let Ok(res) = r.lookup(ip) else { continue };
            if !res.has_data() {
                continue;
            }
            if g.country.is_none() {
                for path in COUNTRY_PATHS {
                    if let Ok(Some(c)) = res.decode_path::<String>(path) {
                        g.country = Some(c);
                        break;
                    }
                }
            }
            if g.asn.is_none() {
                // Writers differ in the integer type they store (uint32, uint16, int32, uint64).
                let path = [PathElement::Key("autonomous_system_number")];
                g.asn = res
                    .decode_path::<u32>(&path)
                    .ok()
                    .flatten()
                    .or_else(|| {
                        let v = res.decode_path::<i64>(&path).ok().flatten()?;
                        u32::try_from(v).ok()
                    })
                    .or_else(|| {
                        let v = res.decode_path::<u64>(&path).ok().flatten()?;
                        u32::try_from(v).ok()
                    });
            }
            if g.as_org.is_none()
                && let Ok(Some(o)) =
                    res.decode_path::<String>(&[PathElement::Key("autonomous_system_organization")])
            {
                g.as_org = Some(o);
            }
        }
        g
    }
}
