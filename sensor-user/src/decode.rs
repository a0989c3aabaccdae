//! Decode stage: raw kernel records into the agent's typed [`crate::record`]s, with UTC
//! timestamps ([`crate::clock`]), tool fingerprints and the TCP option signature.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use chrono::{DateTime, Utc};
use scanscope_common::{EventRecord, Kind, TupleKey, TupleValue, ip_flags, proto};

use crate::{
    clock::Clock,
    fingerprint::{Fingerprinter, Probe, os_hint},
    record::{Event, Flow},
    tcp_options::{parse_tcp_options, tcp_signature},
};

/// An address from the kernel's 16-byte form (IPv4 is IPv4-mapped).
pub fn ip_from_bytes(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
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
            backscatter: kind.is_backscatter(r.proto, r.icmp_type),
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
    fn mapped_addresses_decode_as_ipv4() {
        assert_eq!(
            ip_from_bytes(v4_bytes(Ipv4Addr::new(198, 18, 0, 1))),
            IpAddr::from([198, 18, 0, 1])
        );
        let v6: Ipv6Addr = "fd00:5ca0::1".parse().expect("ip");
        assert_eq!(ip_from_bytes(v6.octets()), IpAddr::V6(v6));
    }
}
