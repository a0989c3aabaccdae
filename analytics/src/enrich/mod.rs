//! Enrichment stage of the rollup: organisation (CIDR lists, rDNS suffixes), reverse DNS, Tor
//! exit flag, country/ASN. All offline from files the operator can refresh, except reverse DNS
//! (a configured resolver, off by default). A missing or unreadable file leaves its fields null
//! and gives one warning; it never fails the rollup.
pub mod config;
pub mod geo;
pub mod orgs;
pub mod rdns;
pub mod tor;

use std::{collections::HashMap, net::IpAddr, path::PathBuf};

use scanscope_lake::tables::ip_daily::IpRow;

use config::EnrichFiles;

/// Problems with an enrichment source.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("reverse DNS: {what}: {source}")]
    Resolver {
        what: &'static str,
        #[source]
        source: hickory_resolver::net::NetError,
    },
    #[error("reverse DNS: starting its runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("reverse DNS: the resolver thread panicked")]
    ResolverPanicked,
    #[error("reverse DNS: the concurrency limit closed: {0}")]
    Concurrency(#[source] tokio::sync::AcquireError),
}

/// The loaded enrichment sources, and the warnings loading gave.
#[derive(Debug)]
pub struct Enricher {
    pub orgs: orgs::OrgDb,
    pub tor: Option<tor::TorExits>,
    pub geo: Option<geo::Geo>,
    pub warnings: Vec<String>,
}

impl Enricher {
    /// Loads what `files` names; each failure becomes a warning and a null field.
    pub fn load(files: &EnrichFiles) -> Enricher {
        let mut warnings = Vec::new();
        let orgs = match &files.orgs_dir {
            Some(d) => match orgs::OrgDb::load_dir(d) {
                Ok(db) => db,
                Err(e) => {
                    warnings.push(format!("{e}; using the shipped organisation lists"));
                    orgs::OrgDb::shipped()
                }
            },
            None => orgs::OrgDb::shipped(),
        };
        if orgs.bad_lines > 0 {
            warnings.push(format!(
                "organisation lists: {} lines are not prefixes (first: {})",
                orgs.bad_lines,
                orgs.first_bad.as_deref().unwrap_or("?")
            ));
        }
        let tor = match &files.tor_exit_list {
            None => {
                warnings.push(
                    "no Tor exit list configured (enrich.tor_exit_list): tor_exit is null".into(),
                );
                None
            }
            Some(p) => match tor::TorExits::load(p) {
                Ok(t) => Some(t),
                Err(e) => {
                    warnings.push(format!("Tor exit list: {e}; tor_exit is null"));
                    None
                }
            },
        };
        let geo = if files.mmdb.is_empty() {
            warnings.push(
                "no MMDB file configured (enrich.mmdb): country, asn and as_org are null".into(),
            );
            None
        } else {
            match geo::Geo::open(&files.mmdb) {
                Ok(g) => Some(g),
                Err(e) => {
                    warnings.push(format!("MMDB: {e}; country, asn and as_org are null"));
                    None
                }
            }
        };
        for w in &warnings {
            tracing::warn!(warning = %w, "rollup enrichment");
        }
        Enricher {
            orgs,
            tor,
            geo,
            warnings,
        }
    }
}

/// Fills a row's org, rDNS, Tor, country and ASN (and the `known_org` / `tor_exit` tags).
pub fn apply(row: &mut IpRow, en: &Enricher, rdns: &HashMap<IpAddr, String>) {
    let Ok(ip) = row.src_ip.parse::<IpAddr>() else {
        return;
    };
    row.rdns = rdns.get(&ip).cloned();
    if let Some((org, src)) = en.orgs.attribute(ip, row.rdns.as_deref()) {
        row.org = Some(org.to_string());
        row.org_source = Some(src.name());
        row.tags.push("known_org".to_string());
    }
    if let Some(t) = &en.tor {
        let exit = t.is_exit(ip);
        row.tor_exit = Some(exit);
        if exit {
            row.tags.push("tor_exit".to_string());
        }
    }
    if let Some(g) = &en.geo {
        let info = g.lookup(ip);
        row.country = info.country;
        row.asn = info.asn;
        row.as_org = info.as_org;
    }
}
