//! A small builder of Ethernet frames for tests, fuzzing and benchmarks: Ethernet with VLAN
//! tags, IPv4 with options and fragments, IPv6 with extension headers, TCP with options, UDP,
//! ICMP/ICMPv6, with every length and checksum field under the caller's control.
use std::net::{Ipv4Addr, Ipv6Addr};

/// The transport part of a frame.
#[derive(Debug, Clone)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        options: Vec<u8>,
        payload: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
    },
    Icmp {
        ty: u8,
        code: u8,
        rest: Vec<u8>,
    },
    Raw(Vec<u8>),
}

impl L4 {
    /// A TCP segment with the given flags and options and no payload.
    pub fn tcp(sport: u16, dport: u16, flags: u8, options: &[u8]) -> L4 {
        L4::Tcp {
            sport,
            dport,
            seq: 1,
            ack: 0,
            flags,
            window: 1024,
            options: options.to_vec(),
            payload: Vec::new(),
        }
    }

    /// Encodes the transport header and payload.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                options,
                payload,
            } => {
                let mut o = options.clone();
                while !o.len().is_multiple_of(4) {
                    o.push(0);
                }
                let mut b = Vec::with_capacity(20 + o.len() + payload.len());
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&seq.to_be_bytes());
                b.extend_from_slice(&ack.to_be_bytes());
                b.push((((20 + o.len()) / 4) as u8) << 4);
                b.push(*flags);
                b.extend_from_slice(&window.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0, 0]);
                b.extend_from_slice(&o);
                b.extend_from_slice(payload);
                b
            }
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                let mut b = Vec::with_capacity(8 + payload.len());
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(payload);
                b
            }
            L4::Icmp { ty, code, rest } => {
                let mut b = vec![*ty, *code, 0, 0];
                b.extend_from_slice(rest);
                b
            }
            L4::Raw(b) => b.clone(),
        }
    }

    /// The IP protocol number (`Raw` is reported as 253, experimental).
    pub fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Raw(_) => 253,
        }
    }
}

/// Source and destination MACs used by every frame.
const MACS: [u8; 12] = [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];

/// Ethernet header with optional VLAN tags (802.1ad outer, 802.1Q inner) around `ethertype`.
pub fn ethernet(vlans: &[u16], ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = MACS.to_vec();
    for (i, v) in vlans.iter().enumerate() {
        let tpid: u16 = if i == 0 && vlans.len() > 1 {
            0x88a8
        } else {
            0x8100
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// IPv4 header fields.
#[derive(Debug, Clone)]
pub struct V4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub id: u16,
    pub df: bool,
    pub mf: bool,
    pub frag_offset: u16,
    pub tos: u8,
    /// Raw option bytes (padded to 4 with EOL).
    pub options: Vec<u8>,
    /// Override the protocol number.
    pub proto: Option<u8>,
}

impl V4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> V4 {
        V4 {
            src,
            dst,
            ttl: 64,
            id: 0x1234,
            df: true,
            mf: false,
            frag_offset: 0,
            tos: 0,
            options: Vec::new(),
            proto: None,
        }
    }

    /// An IPv4 packet carrying `l4`.
    pub fn packet(&self, l4: &L4) -> Vec<u8> {
        let mut o = self.options.clone();
        while !o.len().is_multiple_of(4) {
            o.push(0);
        }
        let body = l4.bytes();
        let ihl = 20 + o.len();
        let mut h = Vec::with_capacity(ihl + body.len());
        h.push(0x40 | (ihl / 4) as u8);
        h.push(self.tos);
        h.extend_from_slice(&((ihl + body.len()) as u16).to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        let flags =
            (u16::from(self.df) << 14) | (u16::from(self.mf) << 13) | (self.frag_offset & 0x1fff);
        h.extend_from_slice(&flags.to_be_bytes());
        h.push(self.ttl);
        h.push(self.proto.unwrap_or_else(|| l4.proto(false)));
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&o);
        h.extend_from_slice(&body);
        h
    }

    /// An Ethernet frame (with `vlans`) carrying this IPv4 packet.
    pub fn frame(&self, vlans: &[u16], l4: &L4) -> Vec<u8> {
        ethernet(vlans, 0x0800, &self.packet(l4))
    }
}

/// An IPv6 extension header.
#[derive(Debug, Clone)]
pub enum Ext {
    HopByHop(usize),
    Routing(usize),
    DestOpts(usize),
    /// Fragment header: offset in 8-byte units, more-fragments flag.
    Fragment {
        offset: u16,
        more: bool,
    },
    /// Authentication header with `n` 4-byte words of ICV beyond the minimum.
    Auth(usize),
}

impl Ext {
    fn code(&self) -> u8 {
        match self {
            Ext::HopByHop(_) => 0,
            Ext::Routing(_) => 43,
            Ext::DestOpts(_) => 60,
            Ext::Fragment { .. } => 44,
            Ext::Auth(_) => 51,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            // `n` extra 8-byte units beyond the first.
            Ext::HopByHop(n) | Ext::Routing(n) | Ext::DestOpts(n) => {
                let mut b = vec![next, *n as u8];
                b.resize(8 * (n + 1), 0);
                if let Ext::DestOpts(_) | Ext::HopByHop(_) = self {
                    // PadN covering the rest.
                    b[2] = 1;
                    b[3] = (b.len() - 4) as u8;
                }
                b
            }
            Ext::Fragment { offset, more } => {
                let fo = (offset << 3) | u16::from(*more);
                let mut b = vec![next, 0];
                b.extend_from_slice(&fo.to_be_bytes());
                b.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes());
                b
            }
            Ext::Auth(n) => {
                let mut b = vec![next, (*n + 1) as u8];
                b.resize(4 * (n + 3), 0);
                b
            }
        }
    }
}

/// IPv6 header fields.
#[derive(Debug, Clone)]
pub struct V6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub ext: Vec<Ext>,
}

impl V6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> V6 {
        V6 {
            src,
            dst,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            ext: Vec::new(),
        }
    }

    /// An IPv6 packet carrying `l4` after the extension headers.
    pub fn packet(&self, l4: &L4) -> Vec<u8> {
        let mut chain = Vec::new();
        let codes: Vec<u8> = self.ext.iter().map(Ext::code).collect();
        for (i, e) in self.ext.iter().enumerate() {
            let next = codes.get(i + 1).copied().unwrap_or_else(|| l4.proto(true));
            chain.extend_from_slice(&e.bytes(next));
        }
        chain.extend_from_slice(&l4.bytes());
        let first = codes.first().copied().unwrap_or_else(|| l4.proto(true));
        let vtf =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xfffff);
        let mut h = Vec::with_capacity(40 + chain.len());
        h.extend_from_slice(&vtf.to_be_bytes());
        h.extend_from_slice(&(chain.len() as u16).to_be_bytes());
        h.push(first);
        h.push(self.hop_limit);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&chain);
        h
    }

    /// An Ethernet frame (with `vlans`) carrying this IPv6 packet.
    pub fn frame(&self, vlans: &[u16], l4: &L4) -> Vec<u8> {
        ethernet(vlans, 0x86dd, &self.packet(l4))
    }
}
