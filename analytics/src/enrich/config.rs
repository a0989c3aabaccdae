//! What enrichment reads: offline files (organisation lists, Tor exits, MMDB) and the reverse
//! DNS settings. Embedded in the rollup configuration as `[enrich]` and `[rdns]`.
use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// Offline enrichment files.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichFiles {
    /// Directory in the internet-scanners layout (`<org>_v4.txt`, `<org>_v6.txt`, `ORGS.txt`);
    /// none: the lists shipped inside the binary.
    pub orgs_dir: Option<PathBuf>,
    /// Tor exit list (check.torproject.org/exit-addresses format, or one address per line).
    pub tor_exit_list: Option<PathBuf>,
    /// MMDB files (country and/or ASN databases, GeoLite2 or ip-location-db layouts).
    pub mmdb: Vec<PathBuf>,
}

/// Which sources reverse DNS is asked for.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RdnsScope {
    #[default]
    Scanners,
    All,
}

/// Reverse DNS through a configured resolver.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RdnsConfig {
    pub enabled: bool,
    /// Name servers (UDP, then TCP); empty: the system's resolv.conf.
    pub servers: Vec<SocketAddr>,
    pub rate_per_sec: u32,
    pub timeout_ms: u64,
    pub max_lookups: usize,
    pub concurrency: usize,
    pub scope: RdnsScope,
}

impl Default for RdnsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            servers: Vec::new(),
            rate_per_sec: 50,
            timeout_ms: 2000,
            max_lookups: 10_000,
            concurrency: 16,
            scope: RdnsScope::Scanners,
        }
    }
}
