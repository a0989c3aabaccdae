//! Tor exit flags from an exit list: the check.torproject.org/exit-addresses format (lines
//! `ExitAddress <ip> <date> <time>`) or one address per line (torbulkexitlist).
use std::{collections::HashSet, net::IpAddr, path::Path};

use super::EnrichError;

/// The exit addresses of one list.
#[derive(Debug, Default)]
pub struct TorExits {
    exits: HashSet<IpAddr>,
}

impl TorExits {
    pub fn load(path: &Path) -> Result<TorExits, EnrichError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnrichError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let t = Self::parse(&text);
        if t.exits.is_empty() && !text.trim().is_empty() {
            return Err(EnrichError::Invalid {
                path: path.to_path_buf(),
                reason: "no exit address found (expected `ExitAddress <ip> …` lines or one address per line)".into(),
            });
        }
        Ok(t)
    }

    pub fn parse(text: &str) -> TorExits {
        let mut exits = HashSet::new();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let ip = match w.next() {
                Some("ExitAddress") => w.next(),
                Some(first) if !first.starts_with('#') && w.next().is_none() => Some(first),
                _ => None,
            };
            if let Some(ip) = ip.and_then(|s| s.parse::<IpAddr>().ok()) {
                exits.insert(ip);
            }
        }
        TorExits { exits }
    }

    pub fn len(&self) -> usize {
        self.exits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exits.is_empty()
    }

    pub fn is_exit(&self, ip: IpAddr) -> bool {
        self.exits.contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats() {
        let t = TorExits::parse(
            "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-11-20 10:00:00\nLastStatus 2026-11-20 11:00:00\nExitAddress 203.0.113.11 2026-11-20 11:01:02\n",
        );
        assert!(t.is_exit("203.0.113.11".parse().unwrap()));
        assert_eq!(t.len(), 1);
        let t = TorExits::parse("# bulk list\n198.51.100.4\n2001:db8::1\nnot an ip\n");
        assert_eq!(t.len(), 2);
        assert!(t.is_exit("2001:db8::1".parse().unwrap()));
        assert!(!t.is_exit("198.51.100.5".parse().unwrap()));
    }
}
