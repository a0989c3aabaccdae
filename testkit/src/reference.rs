//! A user-space parser with exactly the kernel's classification rules.
//!
//! It is written for clarity (plain slice indexing, no verifier constraints) and serves as the
//! specification the XDP program is tested against: the differential fuzz test feeds the same
//! frames to both and requires the same outcome, the same counters and the same sampled fields
//! on every one. It also lets tests compute expectations for crafted frames.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use scanscope_common::{Kind, MAX_IPV6_EXT, counter, ip_flags, proto};

/// What the kernel does with a frame before filters and actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Classified and counted under `packet.kind`.
    Counted(Packet),
    /// Not classified; counted under this [`counter`] index (malformed, truncated or not IP).
    Rejected(u32),
}

/// The fields the kernel extracts from a classified packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub family: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub kind: Kind,
    pub ttl: u8,
    pub tos: u8,
    pub ip_id: u16,
    pub ip_len: u16,
    pub ip_flags: u8,
    pub flow_label: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// The tuple's port: `dst_port` for TCP/UDP, `type << 8 | code` for ICMP, else 0.
    pub key_port: u16,
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub tcp_window: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub tcp_options: Vec<u8>,
    /// Offset of the transport payload in the frame and its length.
    pub payload_off: usize,
    pub payload_total: u16,
    pub vlan_depth: u8,
    pub vlan_id: u16,
}

impl Packet {
    /// The first `max` payload bytes, as the kernel copies them into an event.
    pub fn payload<'a>(&self, frame: &'a [u8], max: usize) -> &'a [u8] {
        let n = usize::from(self.payload_total).min(max);
        &frame[self.payload_off..self.payload_off + n]
    }

    /// Whether the packet is backscatter (a reply to a spoofed packet), not a scan probe:
    /// SYN-ACK, RST and ICMP error/reply messages.
    pub fn is_backscatter(&self) -> bool {
        self.kind.is_backscatter(self.proto, self.icmp_type)
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn is_ipv6_ext(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 51 | 60)
}

/// Parses an Ethernet frame with the kernel's rules.
pub fn parse(frame: &[u8]) -> Outcome {
    match parse_inner(frame) {
        Ok(p) => Outcome::Counted(p),
        Err(c) => Outcome::Rejected(c),
    }
}

fn parse_inner(f: &[u8]) -> Result<Packet, u32> {
    let mut p = Packet {
        family: 0,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        proto: 0,
        kind: Kind::OtherProto,
        ttl: 0,
        tos: 0,
        ip_id: 0,
        ip_len: 0,
        ip_flags: 0,
        flow_label: 0,
        src_port: 0,
        dst_port: 0,
        key_port: 0,
        tcp_flags: 0,
        tcp_seq: 0,
        tcp_ack: 0,
        tcp_window: 0,
        icmp_type: 0,
        icmp_code: 0,
        tcp_options: Vec::new(),
        payload_off: 0,
        payload_total: 0,
        vlan_depth: 0,
        vlan_id: 0,
    };
    if f.len() < 14 {
        return Err(counter::TRUNC_L2);
    }
    let is_vlan = |t: u16| t == 0x8100 || t == 0x88a8;
    let mut ethertype = be16(f, 12);
    let mut l3 = 14;
    while is_vlan(ethertype) {
        if p.vlan_depth == 2 {
            return Err(counter::VLAN_TOO_DEEP);
        }
        if f.len() < l3 + 4 {
            return Err(counter::TRUNC_L2);
        }
        if p.vlan_depth == 0 {
            p.vlan_id = be16(f, l3) & 0x0fff;
        }
        ethertype = be16(f, l3 + 2);
        p.vlan_depth += 1;
        l3 += 4;
    }

    let avail = f.len() - l3;
    let (l4, l4_end, fragment);
    match ethertype {
        0x0800 => {
            if avail < 20 {
                return Err(counter::TRUNC_IPV4);
            }
            let h = &f[l3..];
            let ihl = usize::from(h[0] & 0x0f) * 4;
            if h[0] >> 4 != 4 || ihl < 20 {
                return Err(counter::BAD_IPV4_HDR);
            }
            let tot_len = usize::from(be16(h, 2));
            if tot_len < ihl {
                return Err(counter::BAD_IPV4_LEN);
            }
            if tot_len > avail {
                return Err(counter::TRUNC_IPV4);
            }
            p.family = 4;
            p.tos = h[1];
            p.ip_len = tot_len as u16;
            p.ip_id = be16(h, 4);
            let frag = be16(h, 6);
            if frag & 0x4000 != 0 {
                p.ip_flags |= ip_flags::DF;
            }
            if frag & 0x2000 != 0 {
                p.ip_flags |= ip_flags::MF;
            }
            fragment = frag & 0x1fff != 0;
            if fragment {
                p.ip_flags |= ip_flags::FRAGMENT;
            }
            p.ttl = h[8];
            p.proto = h[9];
            p.src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
            p.dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
            l4 = l3 + ihl;
            l4_end = l3 + tot_len;
        }
        0x86dd => {
            if avail < 40 {
                return Err(counter::TRUNC_IPV6);
            }
            let h = &f[l3..];
            if h[0] >> 4 != 6 {
                return Err(counter::BAD_IPV6_HDR);
            }
            let plen = usize::from(be16(h, 4));
            if plen == 0 {
                return Err(counter::BAD_IPV6_LEN);
            }
            if 40 + plen > avail {
                return Err(counter::TRUNC_IPV6);
            }
            p.family = 6;
            p.tos = (h[0] << 4) | (h[1] >> 4);
            p.flow_label =
                (u32::from(h[1] & 0x0f) << 16) | (u32::from(h[2]) << 8) | u32::from(h[3]);
            p.ip_len = (40 + plen) as u16;
            p.ttl = h[7];
            let a = |at: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&h[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            p.src = a(8);
            p.dst = a(24);
            let end = l3 + 40 + plen;
            let mut nh = h[6];
            let mut off = l3 + 40;
            let mut frag = false;
            for _ in 0..MAX_IPV6_EXT {
                if !is_ipv6_ext(nh) {
                    break;
                }
                if nh == 44 {
                    if off + 8 > end {
                        return Err(counter::TRUNC_IPV6_EXT);
                    }
                    let fo = be16(f, off + 2);
                    p.ip_flags |= ip_flags::FRAGMENT;
                    if fo & 1 != 0 {
                        p.ip_flags |= ip_flags::MF;
                    }
                    nh = f[off];
                    off += 8;
                    if fo >> 3 != 0 {
                        frag = true;
                        break;
                    }
                } else {
                    if off + 2 > end {
                        return Err(counter::TRUNC_IPV6_EXT);
                    }
                    let len = if nh == 51 {
                        (usize::from(f[off + 1]) + 2) * 4
                    } else {
                        (usize::from(f[off + 1]) + 1) * 8
                    };
                    nh = f[off];
                    off += len;
                    if off > end {
                        return Err(counter::TRUNC_IPV6_EXT);
                    }
                }
            }
            if !frag && is_ipv6_ext(nh) {
                return Err(counter::IPV6_EXT_LIMIT);
            }
            p.proto = nh;
            l4 = off;
            l4_end = end;
            fragment = frag;
        }
        _ => return Err(counter::NON_IP),
    }

    let seg_len = l4_end - l4;
    if fragment {
        p.kind = Kind::Fragment;
        p.payload_off = l4;
        p.payload_total = seg_len as u16;
        return Ok(p);
    }
    let t = &f[l4..l4_end];
    match p.proto {
        proto::TCP => {
            if seg_len < 20 {
                return Err(counter::TRUNC_TCP);
            }
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 || doff > seg_len {
                return Err(counter::BAD_TCP_DOFF);
            }
            p.src_port = be16(t, 0);
            p.dst_port = be16(t, 2);
            p.key_port = p.dst_port;
            p.tcp_seq = be32(t, 4);
            p.tcp_ack = be32(t, 8);
            p.tcp_flags = t[13];
            p.tcp_window = be16(t, 14);
            p.kind = Kind::from_tcp_flags(t[13]);
            p.tcp_options = t[20..doff].to_vec();
            p.payload_off = l4 + doff;
            p.payload_total = (seg_len - doff) as u16;
        }
        proto::UDP => {
            if seg_len < 8 {
                return Err(counter::TRUNC_UDP);
            }
            p.src_port = be16(t, 0);
            p.dst_port = be16(t, 2);
            p.key_port = p.dst_port;
            p.kind = Kind::Udp;
            p.payload_off = l4 + 8;
            p.payload_total = (seg_len - 8) as u16;
        }
        proto::ICMP | proto::ICMPV6 => {
            if seg_len < 4 {
                return Err(counter::TRUNC_ICMP);
            }
            p.icmp_type = t[0];
            p.icmp_code = t[1];
            p.key_port = (u16::from(t[0]) << 8) | u16::from(t[1]);
            let echo = if p.proto == proto::ICMP { 8 } else { 128 };
            p.kind = if t[0] == echo {
                Kind::IcmpEcho
            } else {
                Kind::IcmpOther
            };
            let hdr = seg_len.min(8);
            p.payload_off = l4 + hdr;
            p.payload_total = (seg_len - hdr) as u16;
        }
        _ => {
            p.kind = Kind::OtherProto;
            p.payload_off = l4;
            p.payload_total = seg_len as u16;
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(rest);
        f
    }

    fn ipv4(proto_: u8, l4: &[u8]) -> Vec<u8> {
        let tot = (20 + l4.len()) as u16;
        let mut h = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto_, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7,
        ];
        h[2..4].copy_from_slice(&tot.to_be_bytes());
        h.extend_from_slice(l4);
        h
    }

    fn tcp(flags: u8, opts: &[u8]) -> Vec<u8> {
        let doff = ((20 + opts.len()) / 4) as u8;
        let mut t = vec![
            0x30,
            0x39,
            0,
            80,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            doff << 4,
            flags,
            4,
            0,
            0,
            0,
            0,
            0,
        ];
        t.extend_from_slice(opts);
        t
    }

    #[test]
    fn syn_with_mss() {
        let f = eth(0x0800, &ipv4(6, &tcp(0x02, &[2, 4, 5, 0xb4])));
        let Outcome::Counted(p) = parse(&f) else {
            panic!("not counted")
        };
        assert_eq!(p.kind, Kind::TcpSyn);
        assert_eq!((p.src_port, p.dst_port, p.key_port), (12345, 80, 80));
        assert_eq!(p.tcp_options, [2, 4, 5, 0xb4]);
        assert_eq!(p.ip_len, 44);
        assert_eq!(p.ip_flags, ip_flags::DF);
        assert_eq!(p.ip_id, 0x1234);
        assert_eq!(p.tcp_window, 1024);
        assert_eq!(p.payload_total, 0);
        assert_eq!(p.src, "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn truncations_and_bad_headers() {
        let good = eth(0x0800, &ipv4(6, &tcp(0x02, &[])));
        assert_eq!(parse(&good[..13]), Outcome::Rejected(counter::TRUNC_L2));
        assert_eq!(
            parse(&good[..14 + 19]),
            Outcome::Rejected(counter::TRUNC_IPV4)
        );
        // Frame cut inside the TCP header: the IPv4 total length no longer fits.
        assert_eq!(
            parse(&good[..good.len() - 1]),
            Outcome::Rejected(counter::TRUNC_IPV4)
        );
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x44;
        assert_eq!(parse(&bad_ihl), Outcome::Rejected(counter::BAD_IPV4_HDR));
        let mut bad_doff = good.clone();
        bad_doff[14 + 20 + 12] = 0x40;
        assert_eq!(parse(&bad_doff), Outcome::Rejected(counter::BAD_TCP_DOFF));
        let mut long_doff = good.clone();
        long_doff[14 + 20 + 12] = 0x60;
        assert_eq!(parse(&long_doff), Outcome::Rejected(counter::BAD_TCP_DOFF));
        assert_eq!(
            parse(&eth(0x0806, &[0; 28])),
            Outcome::Rejected(counter::NON_IP)
        );
        let short_udp = eth(0x0800, &ipv4(17, &[0; 7]));
        assert_eq!(parse(&short_udp), Outcome::Rejected(counter::TRUNC_UDP));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut f = eth(0x0800, &ipv4(17, &[0, 53, 0, 53, 0, 8, 0, 0]));
        f.resize(60, 0xee);
        let Outcome::Counted(p) = parse(&f) else {
            panic!("not counted")
        };
        assert_eq!((p.kind, p.payload_total, p.ip_len), (Kind::Udp, 0, 28));
    }
}
