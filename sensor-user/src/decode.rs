//! Decode stage: raw kernel records into typed values, and the record types the agent emits.
//!
//! The JSON-lines format (`--jsonl`) is these records serialised with a `type` field; it is
//! documented in `docs/jsonl.md`.
use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use chrono::{DateTime, Utc};
use sensor_common::{EventRecord, Kind, TupleKey, TupleValue, ip_flags, proto};
use serde::{Serialize, Serializer};

use crate::{
    clock::Clock,
    fingerprint::{Fingerprinter, Probe, Tool, os_hint},
};

/// One parsed TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption {
    Eol,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackOk,
    Sack,
    Timestamp {
        value: u32,
        echo: u32,
    },
    /// Another option kind (with its length), or a malformed one (length 0).
    Other {
        kind: u8,
        len: u8,
    },
}

/// Parses raw TCP option bytes in order. Stops at a malformed length.
pub fn parse_tcp_options(raw: &[u8]) -> Vec<TcpOption> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let kind = raw[i];
        match kind {
            0 => {
                out.push(TcpOption::Eol);
                break;
            }
            1 => {
                out.push(TcpOption::Nop);
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(&len) = raw.get(i + 1) else {
            out.push(TcpOption::Other { kind, len: 0 });
            break;
        };
        let len_us = usize::from(len);
        if len < 2 || i + len_us > raw.len() {
            out.push(TcpOption::Other { kind, len: 0 });
            break;
        }
        let body = &raw[i + 2..i + len_us];
        out.push(match (kind, body.len()) {
            (2, 2) => TcpOption::Mss(u16::from_be_bytes([body[0], body[1]])),
            (3, 1) => TcpOption::WindowScale(body[0]),
            (4, 0) => TcpOption::SackOk,
            (5, _) => TcpOption::Sack,
            (8, 8) => TcpOption::Timestamp {
                value: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                echo: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            },
            _ => TcpOption::Other { kind, len },
        });
        i += len_us;
    }
    out
}

/// The option layout as a compact, order-preserving signature: `M1460,N,W7,N,N,S,T,K,E`
/// (MSS with value, NOP, window scale with value, SACK permitted, timestamp, SACK, end of
/// list; `?k` for another kind). Empty when there are no options.
pub fn tcp_signature(opts: &[TcpOption]) -> String {
    let parts: Vec<String> = opts
        .iter()
        .map(|o| match o {
            TcpOption::Eol => "E".into(),
            TcpOption::Nop => "N".into(),
            TcpOption::Mss(v) => format!("M{v}"),
            TcpOption::WindowScale(v) => format!("W{v}"),
            TcpOption::SackOk => "S".into(),
            TcpOption::Sack => "K".into(),
            TcpOption::Timestamp { .. } => "T".into(),
            TcpOption::Other { kind, .. } => format!("?{kind}"),
        })
        .collect();
    parts.join(",")
}

fn ser_kind<S: Serializer>(k: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.name())
}

fn ser_hex<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(b))
}

/// An address from the kernel's 16-byte form (IPv4 is IPv4-mapped).
pub fn ip_from_bytes(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
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
    /// Option signature, see [`tcp_signature`].
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

/// Where data was lost.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LostStage {
    /// The kernel ring buffer was full: sampled events lost.
    KernelRingbuf,
    /// The kernel tuple table was full: packets counted per kind and port but not per tuple.
    KernelTupleTable,
    /// The agent could not write its output.
    AgentOutput,
    /// Ring-buffer records the agent could not decode.
    AgentDecode,
}

/// A count of lost records.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lost {
    pub ts: DateTime<Utc>,
    pub sensor: String,
    pub stage: LostStage,
    /// What the count is of: `events` or `packets`.
    pub unit: &'static str,
    pub count: u64,
}

/// Every record the agent emits.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Event(Event),
    Flow(Flow),
    Stats(Stats),
    Lost(Lost),
}

/// Turns raw kernel records into typed ones.
#[derive(Debug)]
pub struct Decoder {
    pub sensor: String,
    pub ifaces: HashMap<u32, String>,
    pub clock: Clock,
    fingerprinter: Fingerprinter,
}

impl Decoder {
    pub fn new(sensor: String, ifaces: HashMap<u32, String>) -> Self {
        Decoder {
            sensor,
            ifaces,
            clock: Clock::new(),
            fingerprinter: Fingerprinter::new(),
        }
    }

    /// Decodes a ring-buffer record; `None` if it has an unknown kind (a newer kernel object).
    pub fn event(&mut self, r: &EventRecord) -> Option<Event> {
        let kind = Kind::from_u8(r.kind)?;
        let src = ip_from_bytes(r.src);
        let dst = ip_from_bytes(r.dst);
        let opts_raw = &r.tcp_options[..usize::from(r.tcp_options_len).min(r.tcp_options.len())];
        let opts = parse_tcp_options(opts_raw);
        let tools = self.fingerprinter.tools(&Probe {
            src,
            dst,
            proto: r.proto,
            kind,
            ttl: r.ttl,
            ip_id: r.ip_id,
            src_port: r.src_port,
            dst_port: r.dst_port,
            tcp_seq: r.tcp_seq,
            tcp_window: r.tcp_window,
            tcp_options: &opts,
        });
        let (initial_ttl, hint) = os_hint(r.ttl);
        let iface = self
            .ifaces
            .get(&r.ifindex)
            .cloned()
            .unwrap_or_else(|| format!("if{}", r.ifindex));
        Some(Event {
            ts: self.clock.to_utc(r.ts_ns),
            sensor: self.sensor.clone(),
            iface,
            src_ip: src,
            dst_ip: dst,
            src_port: r.src_port,
            dst_port: r.dst_port,
            proto: r.proto,
            kind,
            ttl: r.ttl,
            ip_id: r.ip_id,
            ip_len: r.ip_len,
            df: r.ip_flags & ip_flags::DF != 0,
            tos: r.tos,
            flow_label: r.flow_label,
            tcp_flags: r.tcp_flags,
            tcp_seq: r.tcp_seq,
            tcp_ack: r.tcp_ack,
            tcp_window: r.tcp_window,
            tcp_options: tcp_signature(&opts),
            tcp_options_raw: opts_raw.to_vec(),
            icmp_type: r.icmp_type,
            icmp_code: r.icmp_code,
            vlan: r.vlan_id,
            weight: r.weight,
            payload_len: r.payload_total,
            payload: r.payload[..usize::from(r.payload_len).min(r.payload.len())].to_vec(),
            tools,
            initial_ttl,
            os_hint: hint,
            backscatter: crate::reference::is_backscatter(kind, r.proto, r.icmp_type),
        })
    }

    /// Decodes a drained tuple; `None` for an unknown kind.
    pub fn flow(
        &self,
        interval_start: DateTime<Utc>,
        interval_secs: f64,
        k: &TupleKey,
        v: &TupleValue,
    ) -> Option<Flow> {
        let kind = Kind::from_u8(k.kind)?;
        let icmp = matches!(k.proto, proto::ICMP | proto::ICMPV6)
            && matches!(kind, Kind::IcmpEcho | Kind::IcmpOther);
        Some(Flow {
            interval_start,
            interval_secs,
            sensor: self.sensor.clone(),
            src_ip: ip_from_bytes(k.src),
            dst_ip: ip_from_bytes(k.dst),
            proto: k.proto,
            kind,
            dst_port: if icmp { 0 } else { k.dst_port },
            icmp_type: icmp.then_some((k.dst_port >> 8) as u8),
            icmp_code: icmp.then_some((k.dst_port & 0xff) as u8),
            packets: v.packets,
            bytes: v.bytes,
            first_seen: self.clock.to_utc(v.first_ns),
            last_seen: self.clock.to_utc(v.last_ns),
        })
    }
}

/// Convenience for tests: an IPv4 address as the kernel stores it.
pub fn v4_bytes(a: Ipv4Addr) -> [u8; 16] {
    a.to_ipv6_mapped().octets()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_linux_and_nmap() {
        let linux = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let o = parse_tcp_options(&linux);
        assert_eq!(
            o,
            [
                TcpOption::Mss(1460),
                TcpOption::SackOk,
                TcpOption::Timestamp { value: 1, echo: 0 },
                TcpOption::Nop,
                TcpOption::WindowScale(7)
            ]
        );
        assert_eq!(tcp_signature(&o), "M1460,S,T,N,W7");
        assert_eq!(tcp_signature(&parse_tcp_options(&[2, 4, 5, 0xb4])), "M1460");
        assert_eq!(tcp_signature(&parse_tcp_options(&[])), "");
    }

    #[test]
    fn malformed_options_stop_the_walk() {
        assert_eq!(
            parse_tcp_options(&[2, 1, 5]),
            [TcpOption::Other { kind: 2, len: 0 }]
        );
        assert_eq!(
            parse_tcp_options(&[1, 2]),
            [TcpOption::Nop, TcpOption::Other { kind: 2, len: 0 }]
        );
        assert_eq!(
            parse_tcp_options(&[2, 9, 0, 0]),
            [TcpOption::Other { kind: 2, len: 0 }]
        );
        assert_eq!(parse_tcp_options(&[0, 2, 4]), [TcpOption::Eol]);
        assert_eq!(
            parse_tcp_options(&[30, 4, 1, 2]),
            [TcpOption::Other { kind: 30, len: 4 }]
        );
    }

    #[test]
    fn mapped_addresses_decode_as_ipv4() {
        assert_eq!(
            ip_from_bytes(v4_bytes(Ipv4Addr::new(198, 18, 0, 1))),
            IpAddr::from([198, 18, 0, 1])
        );
        let v6: Ipv6Addr = "fd00:5ca0::1".parse().expect("ip");
        assert_eq!(ip_from_bytes(v6.octets()), IpAddr::V6(v6));
    }
}
