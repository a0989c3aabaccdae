//! The records the agent emits — sampled packets, exact tuple counts, interval counters and
//! lost-data counts. The JSON-lines format (`--jsonl`) is these records serialised with a `type`
//! field, documented in `docs/jsonl.md`; the uplink converts them to `scanscope.v1`.
use std::{collections::BTreeMap, net::IpAddr};

use chrono::{DateTime, Utc};
use scanscope_common::{AppProtocol, Kind, LostStage, SessionEnd, Tool};
use serde::{Serialize, Serializer};

fn ser_kind<S: Serializer>(k: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.name())
}

fn ser_tools<S: Serializer>(t: &[Tool], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(t.iter().map(|t| t.name()))
}

fn ser_stage<S: Serializer>(st: &LostStage, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(st.name())
}

fn ser_name<S: Serializer>(p: &AppProtocol, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

fn ser_end<S: Serializer>(e: &SessionEnd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(e.name())
}

fn ser_hex<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(b))
}

/// A sampled packet.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub ts: DateTime<Utc>,
    pub sensor: String,
    pub iface: String,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    #[serde(serialize_with = "ser_kind")]
    pub kind: Kind,
    pub ttl: u8,
    pub ip_id: u16,
    pub ip_len: u16,
    pub df: bool,
    pub tos: u8,
    pub flow_label: u32,
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub tcp_window: u16,
    /// Option signature, see [`crate::tcp_options::tcp_signature`].
    pub tcp_options: String,
    #[serde(serialize_with = "ser_hex")]
    pub tcp_options_raw: Vec<u8>,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub vlan: u16,
    /// Packets this sample stands for.
    pub weight: u32,
    /// Transport payload length in the packet; `payload_hex` holds its first bytes.
    pub payload_len: u16,
    #[serde(rename = "payload_hex", serialize_with = "ser_hex")]
    pub payload: Vec<u8>,
    #[serde(serialize_with = "ser_tools")]
    pub tools: Vec<Tool>,
    pub initial_ttl: u8,
    pub os_hint: &'static str,
    pub backscatter: bool,
}

/// An exact tuple count for one interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Flow {
    pub interval_start: DateTime<Utc>,
    pub interval_secs: f64,
    pub sensor: String,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub proto: u8,
    #[serde(serialize_with = "ser_kind")]
    pub kind: Kind,
    /// TCP/UDP destination port; 0 for ICMP (see `icmp_type`/`icmp_code`) and other kinds.
    pub dst_port: u16,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub packets: u64,
    pub bytes: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// Packets and bytes of one kind.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct KindCount {
    pub packets: u64,
    pub bytes: u64,
}

/// Per-interval sensor counters (deltas since the previous interval).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub interval_start: DateTime<Utc>,
    pub interval_secs: f64,
    pub sensor: String,
    /// Per kind name.
    pub kinds: BTreeMap<&'static str, KindCount>,
    /// Every other kernel counter by name (malformed reasons, exclusions, drops, sampling).
    pub counters: BTreeMap<&'static str, u64>,
    /// Ring-buffer-full events per CPU.
    pub ringbuf_full_per_cpu: Vec<u64>,
    /// Packets per TCP destination port (non-zero only).
    pub tcp_ports: BTreeMap<u16, u64>,
    /// Packets per UDP destination port (non-zero only).
    pub udp_ports: BTreeMap<u16, u64>,
    /// Flow records emitted for the interval and events read from the ring buffer.
    pub flows: u64,
    pub events: u64,
}

/// A count of lost records.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lost {
    pub ts: DateTime<Utc>,
    pub sensor: String,
    #[serde(serialize_with = "ser_stage")]
    pub stage: LostStage,
    /// What the count is of: `events` or `packets`.
    pub unit: &'static str,
    pub count: u64,
}

/// What an HTTP request said (responder sessions).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent.
    pub url: String,
    /// 10 for HTTP/1.0, 11 for HTTP/1.1.
    pub version: u8,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    /// Header names in the order sent.
    pub headers: Vec<String>,
}

/// What a TLS ClientHello said (responder sessions).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct TlsHello {
    /// JA4 fingerprint.
    pub ja4: String,
    pub sni: Option<String>,
    /// ALPN protocols in order.
    pub alpn: Vec<String>,
    /// Highest version offered: `1.3`, `1.2`, `1.1`, `1.0`, `ssl3`.
    pub version: String,
}

/// One login attempt (responder sessions).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Credential {
    /// `password`, `publickey`, `auth_plain`, `auth_login`, `mysql_native`, `vnc_challenge`, …
    pub method: &'static str,
    pub user: String,
    /// The password as sent, a key fingerprint, or a challenge response in hex.
    pub secret: String,
}

/// A connection the responder answered (`--respond`), and what the scanner sent in it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Session {
    /// When it was accepted.
    pub ts: DateTime<Utc>,
    pub sensor: String,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    /// By content ([`AppProtocol`] names).
    #[serde(serialize_with = "ser_name")]
    pub protocol: AppProtocol,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: u64,
    /// [`SessionEnd`] names.
    #[serde(serialize_with = "ser_end")]
    pub end: SessionEnd,
    /// The first bytes the scanner sent (up to `payload_bytes`).
    #[serde(rename = "payload_hex", serialize_with = "ser_hex")]
    pub payload: Vec<u8>,
    /// The scanner sent more than was kept.
    pub payload_cut: bool,
    pub http: Option<HttpRequest>,
    pub tls: Option<TlsHello>,
    /// The SSH client's identification line.
    pub ssh_client_banner: Option<String>,
    /// HASSH of the SSH client's KEXINIT.
    pub hassh: Option<String>,
    /// Login attempts, in order.
    pub credentials: Vec<Credential>,
    /// Commands the client sent, in order.
    pub commands: Vec<String>,
    /// Protocol details as `name=value`.
    pub details: Vec<String>,
    pub tags: Vec<String>,
}

/// Every record the agent emits.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Event(Event),
    Flow(Flow),
    Stats(Stats),
    Lost(Lost),
    Session(Box<Session>),
}
