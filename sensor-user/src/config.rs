//! Sensor configuration: the operator's TOML file, validated into a [`RuntimeConfig`].
//!
//! ```toml
//! payload_len = 64              # payload bytes per sampled event (0–256)
//! exclude_own_sockets = true    # leave this host's own connections out (socket lookup)
//! exclude = ["192.0.2.0/24", "2001:db8::/32"]   # source prefixes never counted
//! tuple_entries = 262144        # size of each tuple table (needs a restart)
//! ringbuf_bytes = 8388608       # ring-buffer size, a power of two (needs a restart)
//!
//! [sample_every]                # after a tuple's first packet, sample 1 in N (0 = first only)
//! default = 64
//! udp = 8
//!
//! [action]                      # pass (default) or drop, per kind
//! default = "pass"
//! tcp_syn = "drop"
//! ```
//!
//! Kind names are those of [`scanscope_common::Kind::name`]. Everything but `tuple_entries` and
//! `ringbuf_bytes` is applied at run time (SIGHUP re-reads the file).
use std::{collections::BTreeMap, path::Path};

use ipnet::IpNet;
use scanscope_common::{
    EXCLUDE_ENTRIES, KIND_COUNT, Kind, MAX_PAYLOAD, SensorConfig, action, config_flags,
};
use serde::Deserialize;

/// Errors reading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// One line: where in the file, and what is wrong there.
    #[error("config file {path}, line {line} column {column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config: unknown kind {name:?} in [{table}] (known: {known})")]
    UnknownKind {
        table: &'static str,
        name: String,
        known: String,
    },
    #[error("config: action for {kind} must be \"pass\" or \"drop\", not {value:?}")]
    BadAction { kind: String, value: String },
    #[error("config: payload_len {0} is larger than the maximum {MAX_PAYLOAD}")]
    PayloadTooLong(u32),
    #[error("config: ringbuf_bytes {0} must be a power of two of at least 4096")]
    BadRingBuf(u32),
    #[error("config: tuple_entries must be between 1024 and 16777216, not {0}")]
    BadTupleEntries(u32),
    #[error("config: {0} exclude entries; at most 4096 fit the kernel's prefix table")]
    TooManyExcludes(usize),
    #[error("config: exclude entry {0:?} is not a CIDR prefix")]
    BadCidr(String),
}

/// The file as written by the operator (every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    payload_len: Option<u32>,
    exclude_own_sockets: Option<bool>,
    #[serde(default)]
    exclude: Vec<String>,
    tuple_entries: Option<u32>,
    ringbuf_bytes: Option<u32>,
    #[serde(default)]
    sample_every: BTreeMap<String, u32>,
    #[serde(default)]
    action: BTreeMap<String, String>,
    /// The responder's settings (`[respond]`, the keys of a `--respond-config` file); read by
    /// `respond::RespondConfig::from_file`, its presence turns the responder on.
    #[serde(default, rename = "respond")]
    _respond: Option<toml::Table>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// What the kernel reads from the `CONFIG` map.
    pub kernel: SensorConfig,
    /// Source prefixes never counted.
    pub exclude: Vec<IpNet>,
    /// Entries of each tuple table (load time only).
    pub tuple_entries: u32,
    /// Ring-buffer bytes (load time only).
    pub ringbuf_bytes: u32,
}

/// Default tuple-table size.
pub const DEFAULT_TUPLE_ENTRIES: u32 = 262_144;
/// Default ring-buffer size.
pub const DEFAULT_RINGBUF_BYTES: u32 = 8 << 20;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            kernel: SensorConfig::new(),
            exclude: Vec::new(),
            tuple_entries: DEFAULT_TUPLE_ENTRIES,
            ringbuf_bytes: DEFAULT_RINGBUF_BYTES,
        }
    }
}

fn kind_by_name(table: &'static str, name: &str) -> Result<Option<Kind>, ConfigError> {
    if name == "default" {
        return Ok(None);
    }
    Kind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == name)
        .map(Some)
        .ok_or_else(|| ConfigError::UnknownKind {
            table,
            name: name.to_string(),
            known: Kind::ALL
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Applies a per-kind table: `default` first, then the named kinds.
fn per_kind<T: Copy, F>(
    table: &'static str,
    entries: &BTreeMap<String, T>,
    mut set: F,
) -> Result<(), ConfigError>
where
    F: FnMut(Option<Kind>, T) -> Result<(), ConfigError>,
{
    if let Some(v) = entries.get("default") {
        set(None, *v)?;
    }
    for (name, v) in entries.iter().filter(|(n, _)| n.as_str() != "default") {
        set(kind_by_name(table, name)?, *v)?;
    }
    Ok(())
}

impl RuntimeConfig {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse {
                line,
                column,
                message,
                ..
            } => ConfigError::Parse {
                path: path.display().to_string(),
                line,
                column,
                message,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start).min(text.len());
            let before = &text[..at];
            ConfigError::Parse {
                path: "<text>".into(),
                line: before.matches('\n').count() + 1,
                column: before.chars().rev().take_while(|c| *c != '\n').count() + 1,
                message: e.message().trim().replace('\n', " "),
            }
        })?;
        let mut cfg = RuntimeConfig::default();
        if let Some(n) = file.payload_len {
            if n as usize > MAX_PAYLOAD {
                return Err(ConfigError::PayloadTooLong(n));
            }
            cfg.kernel.payload_len = n as u16;
        }
        if let Some(own) = file.exclude_own_sockets {
            cfg.kernel.flags &= !config_flags::EXCLUDE_OWN_SOCKETS;
            if own {
                cfg.kernel.flags |= config_flags::EXCLUDE_OWN_SOCKETS;
            }
        }
        if let Some(n) = file.tuple_entries {
            if !(1024..=16_777_216).contains(&n) {
                return Err(ConfigError::BadTupleEntries(n));
            }
            cfg.tuple_entries = n;
        }
        if let Some(n) = file.ringbuf_bytes {
            if n < 4096 || !n.is_power_of_two() {
                return Err(ConfigError::BadRingBuf(n));
            }
            cfg.ringbuf_bytes = n;
        }
        if file.exclude.len() > EXCLUDE_ENTRIES as usize {
            return Err(ConfigError::TooManyExcludes(file.exclude.len()));
        }
        for c in &file.exclude {
            let net: IpNet = c
                .parse()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::BadCidr(c.clone()))?;
            cfg.exclude.push(net.trunc());
        }
        let kernel = &mut cfg.kernel;
        per_kind("sample_every", &file.sample_every, |kind, n| {
            match kind {
                None => kernel.sample_every[..KIND_COUNT].fill(n),
                Some(k) => kernel.sample_every[k as usize] = n,
            }
            Ok(())
        })?;
        let mut actions = BTreeMap::new();
        for (name, v) in &file.action {
            let a = match v.as_str() {
                "pass" => action::PASS,
                "drop" => action::DROP,
                _ => {
                    return Err(ConfigError::BadAction {
                        kind: name.clone(),
                        value: v.clone(),
                    });
                }
            };
            actions.insert(name.clone(), a);
        }
        per_kind("action", &actions, |kind, a| {
            match kind {
                None => kernel.action[..KIND_COUNT].fill(a),
                Some(k) => kernel.action[k as usize] = a,
            }
            Ok(())
        })?;
        if !cfg.exclude.is_empty() {
            cfg.kernel.flags |= config_flags::EXCLUSIONS_ACTIVE;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(
            RuntimeConfig::from_toml("").expect("parses"),
            RuntimeConfig::default()
        );
    }

    #[test]
    fn full_file() {
        let cfg = RuntimeConfig::from_toml(
            r#"
            payload_len = 128
            exclude_own_sockets = false
            exclude = ["192.0.2.7/24", "2001:db8::1", "10.1.2.3/32"]
            tuple_entries = 4096
            ringbuf_bytes = 65536
            [sample_every]
            default = 10
            udp = 1
            [action]
            default = "drop"
            icmp_echo = "pass"
            "#,
        )
        .expect("parses");
        assert_eq!(cfg.kernel.payload_len, 128);
        assert_eq!(cfg.kernel.flags, config_flags::EXCLUSIONS_ACTIVE);
        assert_eq!(
            cfg.exclude
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            ["192.0.2.0/24", "2001:db8::1/128", "10.1.2.3/32"]
        );
        assert_eq!(cfg.kernel.sample_every[Kind::TcpSyn as usize], 10);
        assert_eq!(cfg.kernel.sample_every[Kind::Udp as usize], 1);
        assert_eq!(cfg.kernel.action[Kind::TcpSyn as usize], action::DROP);
        assert_eq!(cfg.kernel.action[Kind::IcmpEcho as usize], action::PASS);
        assert_eq!(cfg.tuple_entries, 4096);
        assert_eq!(cfg.ringbuf_bytes, 65536);
    }

    #[test]
    fn bad_files_say_why() {
        let err = |t: &str| {
            RuntimeConfig::from_toml(t)
                .expect_err("must fail")
                .to_string()
        };
        assert!(err("payload_len = 999").contains("payload_len 999"));
        assert!(err("[action]\ntcp_syn = \"reject\"").contains("\"pass\" or \"drop\""));
        assert!(err("[sample_every]\ntcp_synn = 3").contains("unknown kind \"tcp_synn\""));
        assert!(err("exclude = [\"10.0.0.0/33\"]").contains("not a CIDR"));
        assert!(err("ringbuf_bytes = 5000").contains("power of two"));
        assert!(err("tuple_entries = 10").contains("tuple_entries"));
        assert!(err("colour = 1").contains("unknown field"));
    }
}
