//! Rollup configuration: classification thresholds, enrichment files and user rules, from an
//! optional TOML file. Every field has a documented default; unknown keys are refused.
//!
//! ```toml
//! [scanner]                  # is_scanner: not spoofed, and probes at least one threshold
//! min_probe_pairs = 10       # distinct (destination, protocol, port) probes in the day
//! min_dst_hosts = 3          # distinct destinations probed in the day
//! wide_breadth = 5           # scan_breadth ≥ this: a "wide" scanner in reports
//! few = 5                    # scan_type: ≤ few ports ⇒ horizontal, ≤ few targets ⇒ vertical
//!
//! [dos]                      # backscatter victims (dos_daily.is_attack)
//! min_packets = 25
//! min_duration_secs = 60
//! min_packets_per_minute = 30
//!
//! [enrich]
//! orgs_dir = "/etc/scanscope/internet-scanners"   # replaces the shipped lists
//! tor_exit_list = "/var/lib/scanscope/exit-addresses"
//! mmdb = ["/var/lib/GeoLite2-Country.mmdb", "/var/lib/GeoLite2-ASN.mmdb"]
//!
//! [rdns]                     # off by default: it sends DNS queries
//! enabled = true
//! servers = ["127.0.0.1:53"]
//! rate_per_sec = 50
//! timeout_ms = 2000
//! max_lookups = 10000
//! scope = "scanners"         # or "all"
//!
//! [[tag]]                    # user tags: CEL expressions over the ip_daily row
//! name = "database-hunter"
//! when = "[3306, 5432, 6379, 27017].exists(p, p in tcp_ports)"
//!
//! [[field]]                  # user columns appended to ip_daily
//! name = "rdp_probe"
//! type = "bool"              # bool | int | string
//! expr = "3389 in tcp_ports"
//! ```
use std::path::PathBuf;

use scanscope_lake::tables::ip_daily;
use serde::Deserialize;

pub use crate::{
    enrich::config::{EnrichFiles, RdnsConfig, RdnsScope},
    rules::{FieldRule, TagRule},
};

/// A configuration problem, with the file and key it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading rollup config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rollup config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("rollup config: {key} {problem}")]
    Invalid {
        /// The key (or rule) concerned, e.g. `scanner.wide_breadth` or `field "tools"`.
        key: String,
        problem: &'static str,
    },
}

/// Thresholds of the scanner rule (see `docs/rollup.md`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScannerRule {
    pub min_probe_pairs: u64,
    pub min_dst_hosts: u64,
    pub wide_breadth: u8,
    pub few: u64,
}

impl Default for ScannerRule {
    fn default() -> Self {
        Self {
            min_probe_pairs: 10,
            min_dst_hosts: 3,
            wide_breadth: 5,
            few: 5,
        }
    }
}

/// Thresholds that make a backscatter victim an attack.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DosRule {
    pub min_packets: u64,
    pub min_duration_secs: f64,
    pub min_packets_per_minute: u64,
}

impl Default for DosRule {
    fn default() -> Self {
        Self {
            min_packets: 25,
            min_duration_secs: 60.0,
            min_packets_per_minute: 30,
        }
    }
}

/// The whole rollup configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RollupConfig {
    pub scanner: ScannerRule,
    pub dos: DosRule,
    pub enrich: EnrichFiles,
    pub rdns: RdnsConfig,
    pub tag: Vec<TagRule>,
    pub field: Vec<FieldRule>,
}

impl RollupConfig {
    /// Reads and validates a TOML file.
    pub fn load(path: &std::path::Path) -> Result<RollupConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: RollupConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, problem| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                problem,
            })
        };
        if !(1..=10).contains(&self.scanner.wide_breadth) {
            return bad("scanner.wide_breadth", "must be 1..=10");
        }
        if self.scanner.min_probe_pairs == 0 && self.scanner.min_dst_hosts == 0 {
            return bad(
                "scanner.min_probe_pairs and scanner.min_dst_hosts",
                "cannot both be 0",
            );
        }
        if !self.dos.min_duration_secs.is_finite() || self.dos.min_duration_secs < 0.0 {
            return bad("dos.min_duration_secs", "must be ≥ 0");
        }
        if self.rdns.enabled && (self.rdns.rate_per_sec == 0 || self.rdns.concurrency == 0) {
            return bad("rdns.rate_per_sec and rdns.concurrency", "must be > 0");
        }
        if self.rdns.timeout_ms == 0 || self.rdns.timeout_ms > 60_000 {
            return bad("rdns.timeout_ms", "must be 1..=60000");
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.field {
            let key = format!("field {:?}", f.name);
            let ok = !f.name.is_empty()
                && f.name.len() <= 64
                && f.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !f.name.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return bad(&key, "must be lowercase letters, digits and _ (≤ 64)");
            }
            if ip_daily::is_builtin(&f.name) {
                return bad(&key, "is a built-in ip_daily column");
            }
            if !names.insert(f.name.clone()) {
                return bad(&key, "is defined twice");
            }
        }
        for t in &self.tag {
            if t.name.is_empty() || t.name.len() > 64 {
                return bad(&format!("tag {:?}", t.name), "must be 1..=64 characters");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c: RollupConfig = toml::from_str("").unwrap();
        assert_eq!(c, RollupConfig::default());
        assert!(!c.rdns.enabled);
        let c: RollupConfig = toml::from_str(
            "[scanner]\nmin_dst_hosts = 7\n[[tag]]\nname='x'\nwhen='true'\n[[field]]\nname='f'\ntype='int'\nexpr='1'\n",
        )
        .unwrap();
        assert_eq!(c.scanner.min_dst_hosts, 7);
        assert_eq!(c.scanner.min_probe_pairs, 10);
        assert_eq!(c.field[0].ty, ip_daily::UserType::Int);
        c.validate().unwrap();
    }

    #[test]
    fn refuses_bad_input() {
        assert!(toml::from_str::<RollupConfig>("[scanner]\nmin_dst_host = 7\n").is_err());
        let mut c = RollupConfig::default();
        c.field.push(FieldRule {
            name: "tools".into(),
            ty: ip_daily::UserType::Bool,
            expr: "true".into(),
        });
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                problem: "is a built-in ip_daily column",
                ..
            })
        ));
        c.field[0].name = "date".into();
        assert!(c.validate().is_err(), "the partition column is reserved");
        c.field[0].name = "Bad Name".into();
        assert!(c.validate().is_err());
        let mut c = RollupConfig::default();
        c.scanner.wide_breadth = 11;
        assert!(c.validate().is_err());
    }
}
