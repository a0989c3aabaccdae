//! The responder's settings (`--respond-config FILE`, see the module docs of
//! [`crate::respond`]) and their defaults.
use std::{collections::BTreeSet, path::Path, time::Duration};

use ipnet::IpNet;
use serde::Deserialize;

use super::RespondError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRespond {
    #[serde(default)]
    addresses: Vec<String>,
    pass_ports: Option<Vec<u16>>,
    max_sessions: Option<u32>,
    max_per_source: Option<u32>,
    payload_bytes: Option<usize>,
    first_byte_secs: Option<f64>,
    idle_secs: Option<f64>,
    total_secs: Option<f64>,
}

/// Validated responder settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RespondConfig {
    /// Destination prefixes answered; empty = the attached interfaces' addresses.
    pub addresses: Vec<IpNet>,
    /// Ports never taken; `None` = 22 and every port with a listener when the agent starts.
    pub pass_ports: Option<BTreeSet<u16>>,
    pub max_sessions: u32,
    pub max_per_source: u32,
    /// First payload bytes kept per session (the rest is read and counted, not kept).
    pub payload_bytes: usize,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

/// Most bytes a session reads in all (kept or not): a cap on what one scanner costs.
pub const MAX_READ_BYTES: usize = 64 << 10;
/// Largest `payload_bytes`.
pub const MAX_PAYLOAD_BYTES: usize = 16 << 10;

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            addresses: Vec::new(),
            pass_ports: None,
            max_sessions: 512,
            max_per_source: 16,
            payload_bytes: 4096,
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(10),
            total: Duration::from_secs(30),
        }
    }
}

fn secs(name: &str, v: Option<f64>, default: Duration) -> Result<Duration, RespondError> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(RespondError::Invalid(format!(
            "{name} must be between 0 and 3600 seconds, not {s}"
        ))),
    }
}

impl RespondConfig {
    /// Reads and validates a responder config file.
    pub fn from_file(path: &Path) -> Result<RespondConfig, RespondError> {
        let text = std::fs::read_to_string(path).map_err(|source| RespondError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            RespondError::Parse { message, .. } => RespondError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates responder config text.
    pub fn from_toml(text: &str) -> Result<RespondConfig, RespondError> {
        let f: FileRespond = toml::from_str(text).map_err(|e| RespondError::Parse {
            path: "<text>".into(),
            message: e.message().trim().replace('\n', " "),
        })?;
        let d = RespondConfig::default();
        let addresses = f
            .addresses
            .iter()
            .map(|a| {
                a.parse::<IpNet>()
                    .or_else(|_| a.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| RespondError::Invalid(format!("address {a:?} is not a prefix")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if addresses.len() > scanscope_common::respond::ADDR_ENTRIES as usize {
            return Err(RespondError::Invalid(format!(
                "{} addresses; at most {} fit the kernel's table",
                addresses.len(),
                scanscope_common::respond::ADDR_ENTRIES
            )));
        }
        let positive = |name: &str, v: Option<u32>, d: u32, max: u32| match v {
            None => Ok(d),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(RespondError::Invalid(format!(
                "{name} must be between 1 and {max}, not {n}"
            ))),
        };
        let payload_bytes = f.payload_bytes.unwrap_or(d.payload_bytes);
        if payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(RespondError::Invalid(format!(
                "payload_bytes {payload_bytes} is larger than {MAX_PAYLOAD_BYTES}"
            )));
        }
        Ok(RespondConfig {
            addresses,
            pass_ports: f.pass_ports.map(|p| p.into_iter().collect()),
            max_sessions: positive("max_sessions", f.max_sessions, d.max_sessions, 65_536)?,
            max_per_source: positive("max_per_source", f.max_per_source, d.max_per_source, 4096)?,
            payload_bytes,
            first_byte: secs("first_byte_secs", f.first_byte_secs, d.first_byte)?,
            idle: secs("idle_secs", f.idle_secs, d.idle)?,
            total: secs("total_secs", f.total_secs, d.total)?,
        })
    }
}

/// TCP ports with a listening socket in this network namespace (`/proc/net/tcp`, `tcp6`).
pub fn listening_ports() -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1);
            let state = cols.nth(1);
            if state == Some("0A")
                && let Some(port) = local
                    .and_then(|l| l.rsplit(':').next())
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// The IPv4 and IPv6 addresses (as /32 and /128) of the named interfaces (getifaddrs).
pub fn interface_addresses(ifaces: &[String]) -> std::io::Result<Vec<IpNet>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a NUL-terminated name owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        if !ifaces.iter().any(|i| *i == name) {
            continue;
        }
        // SAFETY: the address's family says which sockaddr it is.
        let addr = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    Some(std::net::IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    Some(std::net::IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        if let Some(a) = addr.filter(|a| !a.is_loopback()) {
            out.push(IpNet::from(a));
        }
    }
    // SAFETY: the list getifaddrs allocated, freed once.
    unsafe { libc::freeifaddrs(head) };
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let c = RespondConfig::from_toml("").unwrap();
        assert_eq!(c, RespondConfig::default());
        let c = RespondConfig::from_toml(
            "addresses = [\"198.18.0.1\", \"2001:db8::/64\"]\npass_ports = [22]\nidle_secs = 2.5",
        )
        .unwrap();
        assert_eq!(
            c.addresses,
            [
                "198.18.0.1/32".parse().unwrap(),
                "2001:db8::/64".parse::<IpNet>().unwrap()
            ]
        );
        assert_eq!(c.pass_ports, Some([22].into()));
        assert_eq!(c.idle, Duration::from_millis(2500));
        for bad in [
            "addresses = [\"nope\"]",
            "max_sessions = 0",
            "payload_bytes = 100000",
            "total_secs = -1",
            "unknown = 1",
        ] {
            assert!(RespondConfig::from_toml(bad).is_err(), "{bad}");
        }
    }
}
