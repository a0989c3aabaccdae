//! The responder's settings (`--respond-config FILE`, see the module docs of
//! [`crate::respond`]) and their defaults.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::Path,
    time::Duration,
};

use ipnet::IpNet;
use scanscope_common::AppProtocol;
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
    banner_wait_secs: Option<f64>,
    max_auth: Option<u32>,
    max_new_per_minute: Option<u32>,
    max_new_per_source: Option<u32>,
    /// An OpenSSH private key file for the SSH host key (default: a new key per run).
    ssh_host_key: Option<std::path::PathBuf>,
    #[serde(default)]
    banners: FileBanners,
    /// Protocol name → ports where the server speaks first (replaces that protocol's list).
    #[serde(default)]
    ports: BTreeMap<String, Vec<u16>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBanners {
    ssh: Option<String>,
    ftp: Option<String>,
    smtp_host: Option<String>,
    pop3: Option<String>,
    imap: Option<String>,
    http_server: Option<String>,
    mysql_version: Option<String>,
    redis_version: Option<String>,
    telnet_login: Option<String>,
    vnc: Option<String>,
}

/// What the responder says about itself. Each sensor of a fleet can set its own, so the fleet
/// does not share one fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct Banners {
    /// SSH identification line (without CR LF).
    pub ssh: String,
    /// FTP greeting line.
    pub ftp: String,
    /// Host name in the SMTP greeting and EHLO answer.
    pub smtp_host: String,
    pub pop3: String,
    pub imap: String,
    /// HTTP `Server` header.
    pub http_server: String,
    /// MySQL server version in the greeting.
    pub mysql_version: String,
    /// `redis_version` in the INFO answer.
    pub redis_version: String,
    /// Telnet login prompt.
    pub telnet_login: String,
    /// RFB version line (without LF).
    pub vnc: String,
}

impl Default for Banners {
    fn default() -> Self {
        Banners {
            ssh: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3".into(),
            ftp: "220 (vsFTPd 3.0.3)".into(),
            smtp_host: "mail.example.net".into(),
            pop3: "+OK Dovecot (Debian) ready.".into(),
            imap: "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot (Debian) ready.".into(),
            http_server: "Apache/2.4.62 (Debian)".into(),
            mysql_version: "5.7.42-log".into(),
            redis_version: "6.0.16".into(),
            telnet_login: "login: ".into(),
            vnc: "RFB 003.008".into(),
        }
    }
}

/// Where the server speaks first, by default: the ports a protocol's banner is sent on when the
/// client stays silent for `banner_wait_secs`. (SSH's identification goes out at once.)
pub const SERVER_FIRST: [(AppProtocol, &[u16]); 8] = [
    (AppProtocol::Ssh, &[22, 2222, 22222]),
    (AppProtocol::Telnet, &[23, 2323]),
    (AppProtocol::Ftp, &[21, 2121]),
    (AppProtocol::Smtp, &[25, 587, 2525]),
    (AppProtocol::Pop3, &[110]),
    (AppProtocol::Imap, &[143]),
    (AppProtocol::Mysql, &[3306]),
    (
        AppProtocol::Vnc,
        &[
            5900, 5901, 5902, 5903, 5904, 5905, 5906, 5907, 5908, 5909, 5910,
        ],
    ),
];

/// Validated responder settings.
#[derive(Debug, Clone)]
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
    /// How long a client may stay silent on a server-first port before the banner goes out.
    pub banner_wait: Duration,
    /// Login attempts per session; the session ends at the cap.
    pub max_auth: u32,
    /// New sessions per minute, all sources together; more are refused and counted.
    pub max_new_per_minute: u32,
    /// New sessions per minute from one source address.
    pub max_new_per_source: u32,
    pub banners: Banners,
    /// The SSH server's host key.
    pub ssh_host_key: russh::keys::PrivateKey,
    /// Port → the server-first protocol spoken there.
    pub server_first: HashMap<u16, AppProtocol>,
}

/// A fresh Ed25519 host key (one per agent run unless the config names a key file).
pub fn generate_host_key() -> russh::keys::PrivateKey {
    let seed: [u8; 32] = rand::random();
    russh::keys::PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &seed,
    ))
}

/// The default port → protocol table of [`SERVER_FIRST`].
fn default_server_first() -> HashMap<u16, AppProtocol> {
    SERVER_FIRST
        .iter()
        .flat_map(|(p, ports)| ports.iter().map(move |port| (*port, *p)))
        .collect()
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
            banner_wait: Duration::from_millis(500),
            max_auth: 6,
            max_new_per_minute: 60_000,
            max_new_per_source: 120,
            banners: Banners::default(),
            ssh_host_key: generate_host_key(),
            server_first: default_server_first(),
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
    /// The server-first protocol of a port, if any.
    pub fn server_first(&self, port: u16) -> Option<AppProtocol> {
        self.server_first.get(&port).copied()
    }

    /// Reads and validates a responder config file: a `--respond-config` file, or the
    /// `[respond]` table of the sensor's `--config` file.
    pub fn from_file(path: &Path) -> Result<RespondConfig, RespondError> {
        let text = std::fs::read_to_string(path).map_err(|source| RespondError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let parsed = match respond_table(&text) {
            Some(t) => Self::from_table(t),
            None => Self::from_toml(&text),
        };
        parsed.map_err(|e| match e {
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
        Self::validate(f)
    }

    /// Validates a parsed `[respond]` table.
    pub fn from_table(t: toml::Table) -> Result<RespondConfig, RespondError> {
        let f: FileRespond = toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| RespondError::Parse {
                path: "<[respond]>".into(),
                message: e.message().trim().replace('\n', " "),
            })?;
        Self::validate(f)
    }

    fn validate(f: FileRespond) -> Result<RespondConfig, RespondError> {
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
        let mut server_first = default_server_first();
        for (name, ports) in &f.ports {
            let p = AppProtocol::from_name(name)
                .filter(|p| SERVER_FIRST.iter().any(|(q, _)| q == p))
                .ok_or_else(|| {
                    RespondError::Invalid(format!(
                        "[ports] {name:?} is not a protocol where the server speaks first ({})",
                        SERVER_FIRST.map(|(p, _)| p.name()).join(", ")
                    ))
                })?;
            server_first.retain(|_, q| *q != p);
            server_first.extend(ports.iter().map(|port| (*port, p)));
        }
        let b = Banners::default();
        let fb = f.banners;
        let banner = |name: &str, v: Option<String>, d: String| match v {
            None => Ok(d),
            Some(t) if !t.is_empty() && t.len() <= 200 && !t.contains(['\r', '\n']) => Ok(t),
            Some(_) => Err(RespondError::Invalid(format!(
                "banners.{name} must be 1-200 bytes on one line"
            ))),
        };
        let banners = Banners {
            ssh: banner("ssh", fb.ssh, b.ssh)?,
            ftp: banner("ftp", fb.ftp, b.ftp)?,
            smtp_host: banner("smtp_host", fb.smtp_host, b.smtp_host)?,
            pop3: banner("pop3", fb.pop3, b.pop3)?,
            imap: banner("imap", fb.imap, b.imap)?,
            http_server: banner("http_server", fb.http_server, b.http_server)?,
            mysql_version: banner("mysql_version", fb.mysql_version, b.mysql_version)?,
            redis_version: banner("redis_version", fb.redis_version, b.redis_version)?,
            telnet_login: banner("telnet_login", fb.telnet_login, b.telnet_login)?,
            vnc: banner("vnc", fb.vnc, b.vnc)?,
        };
        if !banners.ssh.starts_with("SSH-2.0-") {
            return Err(RespondError::Invalid(
                "banners.ssh must start with \"SSH-2.0-\"".into(),
            ));
        }
        let ssh_host_key = match &f.ssh_host_key {
            None => d.ssh_host_key,
            Some(p) => russh::keys::PrivateKey::read_openssh_file(p)
                .map_err(|e| RespondError::Invalid(format!("ssh_host_key {}: {e}", p.display())))?,
        };
        Ok(RespondConfig {
            ssh_host_key,
            banner_wait: secs("banner_wait_secs", f.banner_wait_secs, d.banner_wait)?,
            max_auth: positive("max_auth", f.max_auth, d.max_auth, 100)?,
            max_new_per_minute: positive(
                "max_new_per_minute",
                f.max_new_per_minute,
                d.max_new_per_minute,
                10_000_000,
            )?,
            max_new_per_source: positive(
                "max_new_per_source",
                f.max_new_per_source,
                d.max_new_per_source,
                1_000_000,
            )?,
            banners,
            server_first,
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

/// The `[respond]` table of a sensor configuration (`None`: the file has none).
pub fn respond_table(sensor_config: &str) -> Option<toml::Table> {
    let mut t: toml::Table = toml::from_str(sensor_config).ok()?;
    match t.remove("respond")? {
        toml::Value::Table(r) => Some(r),
        _ => None,
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
        let d = RespondConfig::default();
        assert_eq!(
            (
                c.max_sessions,
                c.max_auth,
                c.payload_bytes,
                c.total,
                &c.banners
            ),
            (
                d.max_sessions,
                d.max_auth,
                d.payload_bytes,
                d.total,
                &d.banners
            )
        );
        assert_ne!(c.ssh_host_key, d.ssh_host_key, "a new host key per run");
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
        assert_eq!(c.server_first(2323), Some(AppProtocol::Telnet));
        assert_eq!(c.server_first(8080), None);
        let c = RespondConfig::from_toml(
            "[ports]\ntelnet = [2300]\n[banners]\nssh = \"SSH-2.0-dropbear_2022.83\"",
        )
        .unwrap();
        assert_eq!(c.server_first(2300), Some(AppProtocol::Telnet));
        assert_eq!(c.server_first(23), None);
        assert_eq!(c.banners.ssh, "SSH-2.0-dropbear_2022.83");
        // The same keys in the sensor configuration's [respond] table.
        let sensor = "payload_len = 64\n[action]\nudp = \"drop\"\n[respond]\nmax_auth = 3\n[respond.banners]\nftp = \"220 x\"\n";
        let table = respond_table(sensor).expect("a [respond] table");
        let c = RespondConfig::from_table(table).unwrap();
        assert_eq!((c.max_auth, c.banners.ftp.as_str()), (3, "220 x"));
        assert_eq!(respond_table("payload_len = 64"), None);
        for bad in [
            "addresses = [\"nope\"]",
            "max_sessions = 0",
            "payload_bytes = 100000",
            "total_secs = -1",
            "unknown = 1",
            "max_auth = 0",
            "[banners]\nssh = \"OpenSSH\"",
            "[banners]\nftp = \"220 a\\r\\n\"",
            "[ports]\nhttp = [80]",
            "ssh_host_key = \"/nonexistent/key\"",
        ] {
            assert!(RespondConfig::from_toml(bad).is_err(), "{bad}");
        }
    }
}
