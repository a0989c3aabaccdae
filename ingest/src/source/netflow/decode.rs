//! Decode stage of the NetFlow source: one parsed export packet (v5, v9 or IPFIX, from
//! `netflow_parser`) → its flow records, the sampling and clock facts its options carry, and
//! its sequence number.
use std::net::IpAddr;

use netflow_parser::{
    FieldValue, NetflowPacket,
    variable_versions::{
        ipfix::{
            FlowSetBody as IpfixBody,
            lookup::{IANAIPFixField, IPFixField},
        },
        v9::{FlowSetBody as V9Body, lookup::V9Field},
    },
};

/// The information elements the decoder reads, each once: its IPFIX number (v9's are the
/// same), constant name and the parser's name for it. A record's elements are put in slots
/// by this list in one pass, so reading one is an index, not a search.
macro_rules! elements {
    ($($name:ident = $num:literal, $iana:ident;)*) => {
        /// Information elements the decoder reads (IPFIX numbers; v9's are the same).
        pub mod ie {
            $(pub const $name: u16 = $num;)*
        }

        #[allow(
            non_camel_case_types,
            clippy::upper_case_acronyms,
            reason = "slots are named as the element constants"
        )]
        #[derive(Clone, Copy)]
        enum Slot {
            $($name,)*
        }

        /// Elements the decoder reads.
        pub(super) const SLOTS: usize = [$(Slot::$name),*].len();

        /// The slot of element `n`, if the decoder reads it.
        #[inline]
        pub(super) const fn slot_of(n: u16) -> Option<usize> {
            match n {
                $($num => Some(Slot::$name as usize),)*
                _ => None,
            }
        }

        /// The slot of an IANA element the parser named (it does not number them).
        #[inline]
        fn slot_of_iana(f: &IANAIPFixField) -> Option<usize> {
            match f {
                $(IANAIPFixField::$iana => Some(Slot::$name as usize),)*
                _ => None,
            }
        }

        #[cfg(test)]
        #[test]
        fn each_elements_name_is_the_parsers_for_its_number() {
            $(assert_eq!(
                IANAIPFixField::from($num),
                IANAIPFixField::$iana,
                stringify!($name)
            );)*
        }
    };
}

elements! {
    OCTETS = 1, OctetDeltaCount;
    PACKETS = 2, PacketDeltaCount;
    PROTO = 4, ProtocolIdentifier;
    TCP_FLAGS = 6, TcpControlBits;
    SRC_PORT = 7, SourceTransportPort;
    SRC_V4 = 8, SourceIpv4address;
    DST_PORT = 11, DestinationTransportPort;
    DST_V4 = 12, DestinationIpv4address;
    END_UPTIME = 21, FlowEndSysUpTime;
    START_UPTIME = 22, FlowStartSysUpTime;
    OUT_OCTETS = 23, PostOctetDeltaCount;
    OUT_PACKETS = 24, PostPacketDeltaCount;
    SRC_V6 = 27, SourceIpv6address;
    DST_V6 = 28, DestinationIpv6address;
    ICMP_V4 = 32, IcmpTypeCodeIpv4;
    SAMPLING_INTERVAL = 34, SamplingInterval;
    SAMPLER_RANDOM_INTERVAL = 50, SamplerRandomInterval;
    OCTETS_TOTAL = 85, OctetTotalCount;
    PACKETS_TOTAL = 86, PacketTotalCount;
    ICMP_V6 = 139, IcmpTypeCodeIpv6;
    START_SECS = 150, FlowStartSeconds;
    END_SECS = 151, FlowEndSeconds;
    START_MS = 152, FlowStartMilliseconds;
    END_MS = 153, FlowEndMilliseconds;
    SYSTEM_INIT_MS = 160, SystemInitTimeMilliseconds;
    PACKET_INTERVAL = 305, SamplingPacketInterval;
    PACKET_SPACE = 306, SamplingPacketSpace;
}

/// A data record's elements as the decoder reads them: the parser's values ([`Fields`]) or
/// the record's bytes through its template ([`super::fast`]). [`record`] is written once
/// against this.
pub(super) trait Elements {
    /// Element `id` (one of [`ie`]) as an unsigned number; times in milliseconds.
    fn num(&self, id: u16) -> Option<u64>;
    /// The address in element `v4`, else in `v6`.
    fn addr(&self, v4: u16, v6: u16) -> Option<IpAddr>;
}

impl Elements for Fields<'_> {
    fn num(&self, id: u16) -> Option<u64> {
        Fields::num(self, id)
    }

    fn addr(&self, v4: u16, v6: u16) -> Option<IpAddr> {
        self.get(v4)
            .or_else(|| self.get(v6))
            .and_then(|v| IpAddr::try_from(v).ok())
    }
}

/// One record's elements by slot (the first of a repeated element wins, as a search did).
struct Fields<'a>([Option<&'a FieldValue>; SLOTS]);

impl<'a> Fields<'a> {
    fn new() -> Fields<'a> {
        Fields([None; SLOTS])
    }

    #[inline]
    fn put(&mut self, slot: Option<usize>, v: &'a FieldValue) {
        if let Some(cell) = slot.and_then(|s| self.0.get_mut(s))
            && cell.is_none()
        {
            *cell = Some(v);
        }
    }

    /// Element `id` (one of [`ie`]).
    #[inline]
    fn get(&self, id: u16) -> Option<&'a FieldValue> {
        slot_of(id).and_then(|s| self.0[s])
    }

    fn num(&self, id: u16) -> Option<u64> {
        self.get(id).and_then(number)
    }

    /// A v9 record's elements.
    fn of_v9(rec: &'a [(V9Field, FieldValue)]) -> Fields<'a> {
        let mut f = Fields::new();
        for (k, v) in rec {
            f.put(slot_of(u16::from(*k)), v);
        }
        f
    }

    /// An IPFIX record's IANA elements.
    fn of_ipfix(rec: &'a [(IPFixField, FieldValue)]) -> Fields<'a> {
        let mut f = Fields::new();
        for (k, v) in rec {
            if let IPFixField::IANA(k) = k {
                f.put(slot_of_iana(k), v);
            }
        }
        f
    }
}

/// The export protocol of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V5,
    V9,
    Ipfix,
}

impl Version {
    /// The name in lost rows' details and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Version::V5 => "v5",
            Version::V9 => "v9",
            Version::Ipfix => "ipfix",
        }
    }
}

/// One flow record, as exported (counters not scaled by the sampling rate).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRecord {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub dst_port: u16,
    /// TCP flags OR-ed over the flow (TCP only).
    pub tcp_flags: Option<u8>,
    /// ICMP type and code (ICMP only).
    pub icmp: Option<(u8, u8)>,
    pub packets: u64,
    pub bytes: u64,
    /// First and last packet, milliseconds since the Unix epoch (`None`: the record had no
    /// time the decoder could place).
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

/// What one export packet held.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub version: Version,
    /// v9 source id / IPFIX observation domain (0 for v5).
    pub domain: u32,
    /// The header's sequence number (v5: flows before this datagram; v9: export packets;
    /// IPFIX: data records).
    pub sequence: u32,
    /// Data records the packet held (for v5 and IPFIX sequence checks).
    pub records: u32,
    pub flows: Vec<FlowRecord>,
    /// Data records without the fields a flow needs (addresses, protocol, packets).
    pub unusable: u32,
    /// Data records whose template never arrived (the parser could not decode them).
    pub no_template: u32,
    /// The sampling rate the packet declares (v5 header; v9/IPFIX options data).
    pub sampling: Option<u32>,
    /// The exporter's boot time, ms since the epoch (IPFIX options, IE 160).
    pub system_init_ms: Option<i64>,
}

/// A value as an unsigned number: typed numbers and times (ms), and big-endian bytes of up to
/// eight (elements the parser does not name).
fn number(v: &FieldValue) -> Option<u64> {
    match v {
        FieldValue::Vec(b) if !b.is_empty() && b.len() <= 8 => {
            Some(b.iter().fold(0u64, |n, x| (n << 8) | u64::from(*x)))
        }
        FieldValue::TcpControlBits(bits, _) => Some(u64::from(u16::from(*bits))),
        v => v.as_u64().or_else(|| v.as_u8().map(u64::from)),
    }
}

/// Akvorado's rate from sampling options: IE 305/306 as (interval + space) / interval, else
/// IE 34 or 50 as they are. `None` when nothing usable (0 or absent).
fn sampling_of(fields: &Fields<'_>) -> Option<u32> {
    let get = |id| fields.num(id);
    let rate = match (get(ie::PACKET_INTERVAL), get(ie::PACKET_SPACE)) {
        (Some(i), Some(s)) if i > 0 => Some((i + s) / i),
        _ => get(ie::SAMPLING_INTERVAL)
            .filter(|n| *n > 0)
            .or_else(|| get(ie::SAMPLER_RANDOM_INTERVAL)),
    };
    rate.filter(|r| *r > 0)
        .map(|r| u32::try_from(r).unwrap_or(u32::MAX))
}

/// The clock of a v9/IPFIX packet: what uptime-relative times are relative to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    /// The export time, ms since the epoch.
    pub(super) export_ms: i64,
    /// The exporter's uptime at export (v9 header), ms.
    pub(super) uptime_ms: Option<u32>,
    /// The exporter's boot time, ms since the epoch (IPFIX IE 160).
    pub(super) init_ms: Option<i64>,
}

impl Clock {
    /// An uptime-relative time (ms since the exporter booted) as ms since the epoch.
    fn of_uptime(&self, t: u64) -> Option<i64> {
        let t = t as u32;
        if let Some(up) = self.uptime_ms {
            Some(
                self.export_ms
                    .saturating_sub(i64::from(up.wrapping_sub(t) as i32)),
            )
        } else {
            self.init_ms.map(|i| i.saturating_add(i64::from(t)))
        }
    }
}

/// One v9/IPFIX data record (its elements by number) as a flow.
pub(super) fn record(fields: &impl Elements, clock: &Clock) -> Option<FlowRecord> {
    let num = |id| fields.num(id);
    let src = fields.addr(ie::SRC_V4, ie::SRC_V6)?;
    let dst = fields.addr(ie::DST_V4, ie::DST_V6)?;
    let proto = u8::try_from(num(ie::PROTO)?).ok()?;
    let packets = num(ie::PACKETS)
        .or_else(|| num(ie::PACKETS_TOTAL))
        .or_else(|| num(ie::OUT_PACKETS))?;
    let bytes = num(ie::OCTETS)
        .or_else(|| num(ie::OCTETS_TOTAL))
        .or_else(|| num(ie::OUT_OCTETS))
        .unwrap_or(0);
    let time = |abs_ms, secs, uptime| {
        num(abs_ms)
            .or_else(|| num(secs))
            .map(|ms| ms as i64)
            .or_else(|| num(uptime).and_then(|t| clock.of_uptime(t)))
    };
    let icmp = num(ie::ICMP_V4)
        .or_else(|| num(ie::ICMP_V6))
        .map(|tc| ((tc >> 8) as u8, tc as u8));
    Some(
        FlowRecord {
            src,
            dst,
            proto,
            dst_port: num(ie::DST_PORT).unwrap_or(0) as u16,
            tcp_flags: num(ie::TCP_FLAGS).map(|f| f as u8),
            icmp,
            packets,
            bytes,
            start_ms: time(ie::START_MS, ie::START_SECS, ie::START_UPTIME),
            end_ms: time(ie::END_MS, ie::END_SECS, ie::END_UPTIME),
        }
        .normalized(),
    )
}

impl FlowRecord {
    /// The record with the fields of its protocol only: ports and flags for TCP/UDP (flags
    /// 0 when a TCP record has none), type and code for ICMP (v5 and exporters without IE
    /// 32/139 put them in the destination port).
    fn normalized(mut self) -> FlowRecord {
        use scanscope_common::proto as p;
        let is_icmp = self.proto == p::ICMP || self.proto == p::ICMPV6;
        if is_icmp {
            let port = self.dst_port;
            self.icmp = Some(self.icmp.unwrap_or(((port >> 8) as u8, port as u8)));
        } else {
            self.icmp = None;
        }
        if self.proto != p::TCP && self.proto != p::UDP {
            self.dst_port = 0;
        }
        self.tcp_flags = (self.proto == p::TCP).then(|| self.tcp_flags.unwrap_or(0));
        self
    }
}

/// The observation domain (v9 source id) of an export packet; 0 for v5.
pub fn domain_of(p: &NetflowPacket) -> u32 {
    match p {
        NetflowPacket::V9(v9) => v9.header.source_id,
        NetflowPacket::IPFix(x) => x.header.observation_domain_id,
        _ => 0,
    }
}

/// Decodes one export packet. `init_ms` is the exporter's boot time learned from earlier
/// options data (IPFIX uptime-relative times need it).
pub fn decode(p: &NetflowPacket, init_ms: Option<i64>) -> Option<Decoded> {
    match p {
        NetflowPacket::V5(v5) => {
            let h = &v5.header;
            let export_ms = i64::from(h.unix_secs) * 1000 + i64::from(h.unix_nsecs / 1_000_000);
            let at = |t: u32| export_ms - i64::from(h.sys_up_time.wrapping_sub(t) as i32);
            let flows = v5
                .flowsets
                .iter()
                .map(|r| {
                    FlowRecord {
                        src: IpAddr::V4(r.src_addr),
                        dst: IpAddr::V4(r.dst_addr),
                        proto: r.protocol_number,
                        dst_port: r.dst_port,
                        tcp_flags: Some(r.tcp_flags),
                        icmp: None,
                        packets: u64::from(r.d_pkts),
                        bytes: u64::from(r.d_octets),
                        start_ms: Some(at(r.first)),
                        end_ms: Some(at(r.last)),
                    }
                    .normalized()
                })
                .collect::<Vec<_>>();
            let interval = u32::from(h.sampling_interval & 0x3FFF);
            Some(Decoded {
                version: Version::V5,
                domain: 0,
                sequence: h.flow_sequence,
                records: flows.len() as u32,
                flows,
                unusable: 0,
                no_template: 0,
                sampling: (interval > 0).then_some(interval),
                system_init_ms: None,
            })
        }
        NetflowPacket::V9(v9) => {
            let h = &v9.header;
            let clock = Clock {
                export_ms: i64::from(h.unix_secs) * 1000,
                uptime_ms: Some(h.sys_up_time),
                init_ms: None,
            };
            let mut d = Decoded::empty(Version::V9, h.source_id, h.sequence_number);
            for fs in &v9.flowsets {
                match &fs.body {
                    V9Body::Data(data) => {
                        for rec in &data.fields {
                            d.push(record(&Fields::of_v9(rec), &clock));
                        }
                    }
                    V9Body::OptionsData(o) => {
                        for rec in &o.fields {
                            let fields = Fields::of_v9(&rec.options_fields);
                            d.sampling = sampling_of(&fields).or(d.sampling);
                        }
                    }
                    V9Body::NoTemplate(_) => d.no_template += 1,
                    _ => {}
                }
            }
            Some(d)
        }
        NetflowPacket::IPFix(x) => {
            let h = &x.header;
            let mut d = Decoded::empty(Version::Ipfix, h.observation_domain_id, h.sequence_number);
            // Options first: a boot time or rate in this packet applies to its own records.
            let mut init = init_ms;
            for fs in &x.flowsets {
                if let IpfixBody::OptionsData(o) = &fs.body {
                    for rec in &o.fields {
                        let fields = Fields::of_ipfix(rec);
                        d.sampling = sampling_of(&fields).or(d.sampling);
                        if let Some(ms) = fields.num(ie::SYSTEM_INIT_MS) {
                            d.system_init_ms = Some(ms as i64);
                            init = Some(ms as i64);
                        }
                    }
                }
            }
            let clock = Clock {
                export_ms: i64::from(h.export_time) * 1000,
                uptime_ms: None,
                init_ms: init,
            };
            for fs in &x.flowsets {
                match &fs.body {
                    IpfixBody::Data(data) => {
                        for rec in &data.fields {
                            d.push(record(&Fields::of_ipfix(rec), &clock));
                        }
                    }
                    IpfixBody::NoTemplate(_) => d.no_template += 1,
                    _ => {}
                }
            }
            Some(d)
        }
        _ => None,
    }
}

impl Decoded {
    pub(super) fn empty(version: Version, domain: u32, sequence: u32) -> Decoded {
        Decoded {
            version,
            domain,
            sequence,
            records: 0,
            flows: Vec::new(),
            unusable: 0,
            no_template: 0,
            sampling: None,
            system_init_ms: None,
        }
    }

    pub(super) fn push(&mut self, r: Option<FlowRecord>) {
        self.records += 1;
        match r {
            Some(f) => self.flows.push(f),
            None => self.unusable += 1,
        }
    }
}
