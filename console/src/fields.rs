//! The query language's fields, declared once: the parser checks terms against them, the
//! engine reads the `ip_daily` columns they name, docs/api.md lists them (a test compares).
//! Plus the one derived field, `class`, and its rule.
use scanscope_lake::tables::ip_daily::{IpColumns, IpRow};

const IP: IpColumns = IpRow::COL;

/// What a field's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Case-insensitive text with `*` wildcards (on a text column or any element of a list).
    Text,
    /// A number up to `max`, compared (on a number column or any element of a list).
    Number {
        max: u64,
    },
    Bool,
    /// An address or CIDR, on `src_ip`.
    Net,
    /// The derived classification (`benign`, `malicious`, `unknown`; see [`class_of`]).
    Class,
}

impl FieldKind {
    /// The type's name in the API (`meta`) and the docs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number { .. } => "number",
            Self::Bool => "bool",
            Self::Net => "cidr",
            Self::Class => "class",
        }
    }
}

/// One field of the query language.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: FieldKind,
    /// The `ip_daily` columns it matches (a row matches when any of them does).
    pub columns: &'static [&'static str],
    pub help: &'static str,
    pub example: &'static str,
}

/// The field of a bare word: a substring of any payload summary.
pub const FREE_TEXT: &str = "text";

const PORT_MAX: u64 = u16::MAX as u64;
const U8_MAX: u64 = u8::MAX as u64;
const U32_MAX: u64 = u32::MAX as u64;
const U64_MAX: u64 = i64::MAX as u64;

macro_rules! f {
    ($name:literal $(| $alias:literal)*, $kind:expr, [$($col:expr),*], $help:literal, $ex:literal) => {
        Field {
            name: $name,
            aliases: &[$($alias),*],
            kind: $kind,
            columns: &[$($col),*],
            help: $help,
            example: $ex,
        }
    };
}

use FieldKind::{Bool, Class, Net, Number, Text};

/// Every field, in the order docs/api.md lists them.
pub const FIELDS: &[Field] = &[
    f!(
        "ip" | "src_ip",
        Net,
        [IP.src_ip],
        "the source address, or a CIDR it falls in",
        "ip:198.51.100.0/24"
    ),
    f!(
        "port",
        Number { max: PORT_MAX },
        [IP.tcp_ports, IP.udp_ports],
        "a destination port it probed (TCP or UDP)",
        "port:27017"
    ),
    f!(
        "tcp_port",
        Number { max: PORT_MAX },
        [IP.tcp_ports],
        "a TCP port it probed",
        "tcp_port:1..1024"
    ),
    f!(
        "udp_port",
        Number { max: PORT_MAX },
        [IP.udp_ports],
        "a UDP port it probed",
        "udp_port:161"
    ),
    f!(
        "kind",
        Text,
        [IP.kinds],
        "a packet kind it sent (docs/lake.md)",
        "kind:udp"
    ),
    f!(
        "tool" | "tools",
        Text,
        [IP.tools],
        "a tool fingerprinted from its packets",
        "tool:mirai"
    ),
    f!(
        "two_phase",
        Text,
        [IP.two_phase_tool],
        "the stateless tool of a scan-then-connect pair",
        "two_phase:masscan"
    ),
    f!(
        "scan" | "scan_type",
        Text,
        [IP.scan_type],
        "scan type: vertical, horizontal, block, few",
        "scan:horizontal"
    ),
    f!(
        "scanner" | "is_scanner",
        Bool,
        [IP.is_scanner],
        "whether the scanner rule held",
        "scanner:true"
    ),
    f!(
        "breadth" | "scan_breadth",
        Number { max: U8_MAX },
        [IP.scan_breadth],
        "percent of the active sensors it reached",
        "breadth:>=7"
    ),
    f!(
        "port_count",
        Number { max: U32_MAX },
        [IP.port_count],
        "distinct ports it probed",
        "port_count:>100"
    ),
    f!(
        "hosts" | "dst_hosts",
        Number { max: U64_MAX },
        [IP.dst_hosts],
        "distinct destination addresses",
        "hosts:>=256"
    ),
    f!(
        "packets",
        Number { max: U64_MAX },
        [IP.packets],
        "packets it sent that day",
        "packets:>1000"
    ),
    f!(
        "bytes",
        Number { max: U64_MAX },
        [IP.bytes],
        "bytes it sent that day",
        "bytes:>1000000"
    ),
    f!(
        "sensor" | "sensors",
        Text,
        [IP.sensors],
        "a sensor that saw it",
        "sensor:ams-1"
    ),
    f!(
        "sensor_count",
        Number { max: U32_MAX },
        [IP.sensor_count],
        "how many sensors saw it",
        "sensor_count:>=2"
    ),
    f!(
        "org" | "organization",
        Text,
        [IP.org],
        "the scanning organisation it belongs to",
        "org:censys"
    ),
    f!(
        "org_source",
        Text,
        [IP.org_source],
        "what named the organisation: cidr or rdns",
        "org_source:rdns"
    ),
    f!(
        "rdns",
        Text,
        [IP.rdns],
        "its reverse DNS name",
        "rdns:*.shodan.io"
    ),
    f!(
        "country",
        Text,
        [IP.country],
        "its country code (MMDB)",
        "country:CN"
    ),
    f!(
        "asn",
        Number { max: U32_MAX },
        [IP.asn],
        "its autonomous system number",
        "asn:4134"
    ),
    f!(
        "as_org",
        Text,
        [IP.as_org],
        "its autonomous system's name",
        "as_org:*telecom*"
    ),
    f!(
        "tor",
        Bool,
        [IP.tor_exit],
        "whether it is a Tor exit node",
        "tor:true"
    ),
    f!(
        "spoofed" | "spoofed_suspect",
        Bool,
        [IP.spoofed_suspect],
        "whether its packets look spoofed",
        "spoofed:true"
    ),
    f!(
        "os" | "os_hint",
        Text,
        [IP.os_hint],
        "the OS guessed from its packets",
        "os:linux*"
    ),
    f!(
        "tag" | "tags",
        Text,
        [IP.tags],
        "a tag of the rollup or of a user rule",
        "tag:wide_scanner"
    ),
    f!(
        "class" | "classification",
        Class,
        [],
        "benign (a known organisation), malicious (exploits, payloads, logins) or unknown",
        "class:malicious"
    ),
    f!(
        "ua" | "useragent" | "user_agent",
        Text,
        [IP.http_user_agent],
        "an HTTP User-Agent it sent",
        "ua:\"*zgrab*\""
    ),
    f!(
        "url" | "path",
        Text,
        [IP.http_url],
        "an HTTP URL it asked for",
        "url:\"*/shell*\""
    ),
    f!(
        "cookie" | "rdp_cookie",
        Text,
        [IP.rdp_cookie],
        "an RDP cookie (mstshash) it sent",
        "cookie:administr*"
    ),
    f!(
        "user" | "username",
        Text,
        [IP.users, IP.mysql_user],
        "a user name it tried to log in with",
        "user:root"
    ),
    f!(
        "password",
        Text,
        [IP.passwords],
        "a password it tried",
        "password:admin"
    ),
    f!(
        "protocol",
        Text,
        [IP.session_protocols],
        "a protocol it spoke to the responder",
        "protocol:ssh"
    ),
    f!(
        "sessions",
        Number { max: U64_MAX },
        [IP.sessions],
        "sessions with the responder",
        "sessions:>=1"
    ),
    f!(
        "logins" | "login_attempts",
        Number { max: U64_MAX },
        [IP.login_attempts],
        "login attempts at the responder",
        "logins:>10"
    ),
    f!(
        "ja4",
        Text,
        [IP.ja4],
        "the JA4 of a TLS ClientHello it sent",
        "ja4:t13d*"
    ),
    f!(
        "hassh",
        Text,
        [IP.hassh],
        "the HASSH of its SSH client",
        "hassh:ec7378c1*"
    ),
    f!(
        "ssh_banner",
        Text,
        [IP.ssh_client_banners],
        "its SSH client banner",
        "ssh_banner:*libssh*"
    ),
    f!(
        "command",
        Text,
        [IP.session_commands],
        "a command it sent in a session",
        "command:\"*busybox*\""
    ),
    f!(
        "text",
        Text,
        [
            IP.http_url,
            IP.http_user_agent,
            IP.rdp_cookie,
            IP.mysql_user,
            IP.users,
            IP.session_commands,
            IP.ssh_client_banners
        ],
        "a bare word: a substring of any URL, User-Agent, cookie, user, command or SSH banner",
        "wget"
    ),
];

/// The field named `name` (lower-case) or one of its aliases.
pub fn find(name: &str) -> Option<&'static Field> {
    FIELDS
        .iter()
        .find(|f| f.name == name || f.aliases.contains(&name))
}

/// The classification of a day's row: `benign` when a known organisation scans, else
/// `malicious` when it sent an exploit or a payload or tried to log in, else `unknown`.
pub fn class_of<'a>(
    org: Option<&str>,
    tags: impl IntoIterator<Item = &'a str>,
    logins: u64,
) -> &'static str {
    if org.is_some_and(|o| !o.is_empty()) {
        return "benign";
    }
    if logins > 0
        || tags
            .into_iter()
            .any(|t| t.starts_with("exploit:") || t.starts_with("payload:"))
    {
        return "malicious";
    }
    "unknown"
}

/// The classes, in the order the UI shows them.
pub const CLASSES: [&str; 3] = ["malicious", "unknown", "benign"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique_and_columns_exist() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FIELDS {
            for n in std::iter::once(&f.name).chain(f.aliases) {
                assert!(seen.insert(*n), "{n} twice");
                assert_eq!(*n, n.to_ascii_lowercase());
            }
            for c in f.columns {
                assert!(
                    IpRow::COLUMNS.iter().any(|x| x.name == *c),
                    "{}: no column {c}",
                    f.name
                );
            }
            assert_eq!(f.columns.is_empty(), f.kind == Class, "{}", f.name);
        }
        assert_eq!(find(FREE_TEXT).map(|f| f.name), Some(FREE_TEXT));
    }

    #[test]
    fn classes() {
        assert_eq!(class_of(Some("censys"), ["exploit:gpon"], 3), "benign");
        assert_eq!(class_of(None, ["scanner", "exploit:gpon"], 0), "malicious");
        assert_eq!(class_of(None, ["payload:wget"], 0), "malicious");
        assert_eq!(class_of(None, [], 1), "malicious");
        assert_eq!(class_of(Some(""), ["scanner"], 0), "unknown");
    }
}
