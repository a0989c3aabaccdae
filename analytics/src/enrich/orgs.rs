//! Organisation attribution from per-organisation CIDR lists and reverse-DNS suffixes, in the
//! layout of the public-domain `internet-scanners` repository: `<org>_v4.txt` / `<org>_v6.txt`
//! (one CIDR or address per line, `#` comments) and `ORGS.txt` (blocks headed
//! `# Name (domains)` with a `# PTR: …` line). The lists shipped with scanscope are compiled into
//! the binary (`analytics/data/internet-scanners/`, origin and date in its README); a directory
//! given at run time replaces them.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use super::EnrichError;

include!(concat!(env!("OUT_DIR"), "/shipped_orgs.rs"));

/// Where the attribution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgSource {
    Cidr,
    Rdns,
}

impl OrgSource {
    /// The name in `ip_daily.org_source`.
    pub fn name(self) -> &'static str {
        match self {
            OrgSource::Cidr => "cidr",
            OrgSource::Rdns => "rdns",
        }
    }
}

/// Longest-prefix tables of organisation ranges plus rDNS suffix rules.
#[derive(Debug)]
pub struct OrgDb {
    v4: PrefixMap<Ipv4Net, u16>,
    v6: PrefixMap<Ipv6Net, u16>,
    names: Vec<String>,
    /// (suffix, org index), longest suffix first.
    rdns: Vec<(String, u16)>,
    /// Lines that were not a prefix, with the first example.
    pub bad_lines: usize,
    pub first_bad: Option<String>,
    /// Description of where the lists came from.
    pub origin: String,
}

impl OrgDb {
    /// The lists compiled into the binary.
    pub fn shipped() -> OrgDb {
        let files: Vec<(String, String)> = SHIPPED_ORGS
            .iter()
            .map(|(n, t)| ((*n).to_string(), (*t).to_string()))
            .collect();
        Self::from_files(
            &files,
            "shipped internet-scanners lists (commit 4780a18, 2026-06-22)",
        )
    }

    /// The lists in `dir` (replacing the shipped ones).
    pub fn load_dir(dir: &Path) -> Result<OrgDb, EnrichError> {
        let io = |source, path: PathBuf| EnrichError::Io { path, source };
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| io(e, dir.to_path_buf()))? {
            let e = e.map_err(|e| io(e, dir.to_path_buf()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("_v4.txt") || name.ends_with("_v6.txt") || name == "ORGS.txt" {
                let text = std::fs::read_to_string(e.path()).map_err(|x| io(x, e.path()))?;
                files.push((name, text));
            }
        }
        if !files.iter().any(|(n, _)| n != "ORGS.txt") {
            return Err(EnrichError::Invalid {
                path: dir.to_path_buf(),
                reason: "no <org>_v4.txt or <org>_v6.txt list in the directory".into(),
            });
        }
        Ok(Self::from_files(&files, &dir.display().to_string()))
    }

    /// Builds the tables from `(file name, contents)` pairs.
    pub fn from_files(files: &[(String, String)], origin: &str) -> OrgDb {
        let mut db = OrgDb {
            v4: PrefixMap::new(),
            v6: PrefixMap::new(),
            names: Vec::new(),
            rdns: Vec::new(),
            bad_lines: 0,
            first_bad: None,
            origin: origin.to_string(),
        };
        let mut sorted: Vec<&(String, String)> = files.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, text) in &sorted {
            let Some(org) = name
                .strip_suffix("_v4.txt")
                .or_else(|| name.strip_suffix("_v6.txt"))
            else {
                continue;
            };
            let idx = db.index(org);
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let net = line
                    .parse::<IpNet>()
                    .or_else(|_| line.parse::<IpAddr>().map(IpNet::from));
                match net {
                    Ok(IpNet::V4(n)) => {
                        db.v4.insert(n.trunc(), idx);
                    }
                    Ok(IpNet::V6(n)) => {
                        db.v6.insert(n.trunc(), idx);
                    }
                    Err(_) => {
                        db.bad_lines += 1;
                        db.first_bad
                            .get_or_insert_with(|| format!("{name}:{}: {line:?}", n + 1));
                    }
                }
            }
        }
        if let Some((_, text)) = sorted.iter().find(|(n, _)| n == "ORGS.txt") {
            for (org, suffix) in parse_orgs_txt(text, &db.names.clone()) {
                let idx = db.index(&org);
                db.rdns.push((suffix, idx));
            }
        }
        db.rdns
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        db.rdns.dedup_by(|a, b| a.0 == b.0);
        db
    }

    fn index(&mut self, org: &str) -> u16 {
        match self.names.iter().position(|n| n == org) {
            Some(i) => i as u16,
            None => {
                self.names.push(org.to_string());
                (self.names.len() - 1) as u16
            }
        }
    }

    /// Number of organisations, IPv4 and IPv6 prefixes, rDNS rules.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.names.len(),
            self.v4.iter().count(),
            self.v6.iter().count(),
            self.rdns.len(),
        )
    }

    /// The organisation whose range holds `ip` (longest prefix).
    pub fn by_ip(&self, ip: IpAddr) -> Option<&str> {
        let idx = match ip {
            IpAddr::V4(a) => self.v4.get_lpm(&Ipv4Net::from(a)).map(|(_, i)| *i),
            IpAddr::V6(a) => self.v6.get_lpm(&Ipv6Net::from(a)).map(|(_, i)| *i),
        }?;
        Some(&self.names[idx as usize])
    }

    /// The organisation whose rDNS suffix `name` ends with.
    pub fn by_rdns(&self, name: &str) -> Option<&str> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.rdns
            .iter()
            .find(|(s, _)| {
                name == *s
                    || (name.len() > s.len()
                        && name.ends_with(s.as_str())
                        && name.as_bytes()[name.len() - s.len() - 1] == b'.')
            })
            .map(|(_, i)| self.names[*i as usize].as_str())
    }

    /// Attribution: ranges first, then the rDNS name.
    pub fn attribute(&self, ip: IpAddr, rdns: Option<&str>) -> Option<(&str, OrgSource)> {
        self.by_ip(ip).map(|o| (o, OrgSource::Cidr)).or_else(|| {
            rdns.and_then(|r| self.by_rdns(r))
                .map(|o| (o, OrgSource::Rdns))
        })
    }
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `(org key, rDNS suffix)` rules from ORGS.txt. The org key is the list-file name of the same
/// organisation when one matches the block's name or domains, else the block's name normalised.
pub fn parse_orgs_txt(text: &str, keys: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut org: Option<String> = None;
    let mut expect_header = true;
    for line in text.lines() {
        if line.trim().is_empty() {
            expect_header = true;
            continue;
        }
        let Some(body) = line.strip_prefix('#').map(str::trim) else {
            continue;
        };
        if let Some(ptr) = body.strip_prefix("PTR:") {
            let Some(org) = &org else { continue };
            for token in ptr.split(|c: char| c.is_whitespace() || c == '/' || c == ',') {
                if let Some(s) = ptr_suffix(token) {
                    out.push((org.clone(), s));
                }
            }
            continue;
        }
        // A block's header is its first line that is not a `Key: value` note.
        let (name, domains) = match body.find(" (") {
            Some(open) if body.ends_with(')') => (&body[..open], &body[open + 2..body.len() - 1]),
            _ => (body, ""),
        };
        if !expect_header || name.contains(':') {
            continue;
        }
        expect_header = false;
        let domains: Vec<String> = domains
            .split(['/', ','])
            .filter_map(|d| d.split_whitespace().next())
            .map(|d| norm(d.split('.').next().unwrap_or("")))
            .collect();
        let n = norm(name);
        let key = keys
            .iter()
            .find(|k| domains.iter().any(|d| d == *k))
            .or_else(|| keys.iter().find(|k| n.starts_with(k.as_str())))
            // A list file whose name drops one letter of the organisation (`strechoid`).
            .or_else(|| keys.iter().find(|k| one_deletion(&n, k)))
            .cloned()
            .unwrap_or(n);
        org = Some(key);
    }
    out
}

/// True when deleting one character of `long` gives `short`.
fn one_deletion(long: &str, short: &str) -> bool {
    long.len() == short.len() + 1
        && short.len() >= 5
        && (0..long.len()).any(|i| {
            long.is_char_boundary(i) && {
                let mut s = long[..i].to_string();
                s.push_str(long[i..].get(1..).unwrap_or(""));
                s == short
            }
        })
}

/// The fixed suffix of a PTR pattern token (`scanner[1-6].labs.rapid7.com` → `labs.rapid7.com`),
/// or none when the token is not a domain.
fn ptr_suffix(token: &str) -> Option<String> {
    let token = token.trim_matches(|c: char| matches!(c, '.' | ',' | '(' | ')' | '!'));
    let token = token.rsplit([']', '#']).next().unwrap_or(token);
    let labels: Vec<&str> = token.split('.').collect();
    // Drop leading labels with placeholders (capitals such as X, anything but [a-z0-9-]).
    let fixed = labels
        .iter()
        .rposition(|l| {
            l.is_empty()
                || !l
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .map_or(0, |i| i + 1);
    let rest = &labels[fixed..];
    let tld_ok = rest
        .last()
        .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_lowercase()));
    (rest.len() >= 2 && tld_ok).then(|| rest.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_from_ptr_patterns() {
        assert_eq!(
            ptr_suffix("autoscan-[numeric UUID].research.a10protects.com").as_deref(),
            Some("research.a10protects.com")
        );
        assert_eq!(
            ptr_suffix("UUID].research.a10protects.com").as_deref(),
            Some("research.a10protects.com")
        );
        assert_eq!(
            ptr_suffix("scanner[1-6].labs.rapid7.com").as_deref(),
            Some("labs.rapid7.com")
        );
        assert_eq!(
            ptr_suffix("scan-X.skipa.cyberok.ru").as_deref(),
            Some("skipa.cyberok.ru")
        );
        assert_eq!(
            ptr_suffix("survey##.hackertarget.io").as_deref(),
            Some("hackertarget.io")
        );
        assert_eq!(ptr_suffix("shodan.io").as_deref(), Some("shodan.io"));
        assert_eq!(ptr_suffix("TLDs"), None);
        assert_eq!(ptr_suffix("with"), None);
    }

    #[test]
    fn shipped_lists_attribute_known_ranges() {
        let db = OrgDb::shipped();
        let (orgs, v4, v6, rdns) = db.sizes();
        assert!(orgs >= 60, "{orgs}");
        assert!(v4 > 1000 && v6 > 100 && rdns > 30, "{v4} {v6} {rdns}");
        assert_eq!(db.bad_lines, 0, "{:?}", db.first_bad);
        assert_eq!(db.by_ip("162.142.125.77".parse().unwrap()), Some("censys"));
        assert_eq!(
            db.by_ip("2602:80d:1000::5".parse().unwrap()),
            Some("censys")
        );
        assert_eq!(db.by_ip("192.0.2.1".parse().unwrap()), None);
        assert_eq!(db.by_rdns("scanner-7.census.shodan.io."), Some("shodan"));
        assert_eq!(
            db.by_rdns("xyz.scan.shadowserver.org"),
            Some("shadowserver")
        );
        assert_eq!(db.by_rdns("scanner3.labs.rapid7.com"), Some("rapid7"));
        assert_eq!(db.by_rdns("a.probe.onyphe.net"), Some("onyphe"));
        assert_eq!(db.by_rdns("notshodan.io"), None);
        assert_eq!(db.by_rdns("example.com"), None);
        assert_eq!(
            db.attribute("192.0.2.1".parse().unwrap(), Some("x.censys-scanner.com")),
            Some(("censys", OrgSource::Rdns))
        );
    }

    #[test]
    fn every_shipped_rule_names_a_listed_org_or_its_own() {
        let db = OrgDb::shipped();
        let rule = |suffix: &str| {
            db.rdns
                .iter()
                .find(|(s, _)| s == suffix)
                .map(|(_, i)| db.names[*i as usize].as_str())
        };
        assert_eq!(rule("censys-scanner.com"), Some("censys"));
        assert_eq!(rule("internet-census.org"), Some("bitsight"));
        assert_eq!(rule("internet-measurement.com"), Some("driftnet"));
        assert_eq!(rule("deepfield.net"), Some("deepfield"));
        assert_eq!(rule("form.securityresearch.net"), Some("securityresearch"));
        assert_eq!(rule("crawl.securitytrails.com"), Some("recordedfuture"));
        assert_eq!(rule("stretchoid.com"), Some("strechoid"));
        assert_eq!(rule("ipip.net"), Some("ipip"));
    }

    #[test]
    fn replacement_lists_and_bad_lines() {
        let files = vec![
            (
                "acme_v4.txt".to_string(),
                "# c\n198.51.100.0/24\n203.0.113.7\nnot-a-net\n".to_string(),
            ),
            (
                "ORGS.txt".to_string(),
                "# ACME Corp (acme.example)\n# PTR: ends with scan.acme.example\n".to_string(),
            ),
        ];
        let db = OrgDb::from_files(&files, "test");
        assert_eq!(db.by_ip("198.51.100.9".parse().unwrap()), Some("acme"));
        assert_eq!(db.by_ip("203.0.113.7".parse().unwrap()), Some("acme"));
        assert_eq!(db.by_ip("203.0.113.8".parse().unwrap()), None);
        assert_eq!(db.bad_lines, 1);
        assert_eq!(db.by_rdns("h1.scan.acme.example"), Some("acme"));
    }
}
