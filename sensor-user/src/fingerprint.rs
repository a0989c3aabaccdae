//! Per-event tool fingerprints, initial-TTL OS hint and TCP option signature.
//!
//! Rules (from the project's domain notes, checked against the Debian versions the tests
//! install: nmap 7.93, masscan 1.3.2, zmap 2.1.1, hping3 3.0.0):
//!
//! | tool | rule |
//! |---|---|
//! | ZMap (≤ 4.0) | IPv4 ID 54321 (unless the probe fits Masscan's formula) |
//! | Masscan | IPv4 TCP, `ip_id == (dst_ip ^ dst_port ^ seq) & 0xffff`, TTL ≥ 200 |
//! | Mirai | IPv4 TCP SYN whose sequence number equals the destination address |
//! | Nmap SYN scan | TCP SYN, window 1024/2048/3072/4096, options exactly MSS 1460 |
//! | Unicornscan | window 4128 and `seq ^ dst_ip ^ ((dport << 16) + sport)` repeating for a source |
//!
//! A rule that depends on several packets (Unicornscan) keeps a bounded per-source memory in
//! [`Fingerprinter`].
use std::{collections::HashMap, net::IpAddr};

use scanscope_common::{Kind, Tool, proto};

use crate::tcp_options::TcpOption;

/// The header fields fingerprints look at.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub kind: Kind,
    pub ttl: u8,
    pub ip_id: u16,
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_seq: u32,
    pub tcp_window: u16,
    pub tcp_options: &'a [TcpOption],
}

fn v4(ip: IpAddr) -> Option<u32> {
    match ip {
        IpAddr::V4(a) => Some(u32::from(a)),
        IpAddr::V6(_) => None,
    }
}

/// ZMap ≤ 4.0 sends IPv4 ID 54321 on every probe.
pub fn is_zmap(p: &Probe<'_>) -> bool {
    p.ip_id == 54321 && v4(p.src).is_some()
}

/// Masscan derives the IPv4 ID from destination, port and sequence number.
pub fn is_masscan(p: &Probe<'_>) -> bool {
    let Some(dst) = v4(p.dst) else { return false };
    p.proto == proto::TCP
        && p.ttl >= 200
        && u32::from(p.ip_id) == (dst ^ u32::from(p.dst_port) ^ p.tcp_seq) & 0xffff
}

/// Mirai and its descendants put the destination address in the sequence number.
pub fn is_mirai(p: &Probe<'_>) -> bool {
    p.kind == Kind::TcpSyn && v4(p.dst) == Some(p.tcp_seq)
}

/// Nmap's raw SYN probes: small fixed windows and only an MSS 1460 option.
pub fn is_nmap_syn(p: &Probe<'_>) -> bool {
    p.kind == Kind::TcpSyn
        && matches!(p.tcp_window, 1024 | 2048 | 3072 | 4096)
        && p.tcp_options == [TcpOption::Mss(1460)]
}

/// Unicornscan's per-scan constant (IPv4 only).
pub fn unicorn_key(p: &Probe<'_>) -> Option<u32> {
    let dst = v4(p.dst)?;
    (p.proto == proto::TCP && p.tcp_window == 4128).then(|| {
        p.tcp_seq ^ dst ^ ((u32::from(p.dst_port) << 16).wrapping_add(u32::from(p.src_port)))
    })
}

/// The initial TTL a sender most likely used (the next of 32, 64, 128, 255) and the systems
/// that use it.
pub fn os_hint(ttl: u8) -> (u8, &'static str) {
    match ttl {
        0..=32 => (32, "old-windows/embedded"),
        33..=64 => (64, "linux/unix"),
        65..=128 => (128, "windows"),
        _ => (255, "network-device/raw-tool"),
    }
}

/// Stateful fingerprinting: stateless rules plus the per-source memory multi-packet rules need.
#[derive(Debug, Default)]
pub struct Fingerprinter {
    unicorn: HashMap<IpAddr, u32>,
}

/// Most sources remembered for multi-packet rules (the map is cleared when full).
const MAX_SOURCES: usize = 65_536;

impl Fingerprinter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tools this probe matches, in a stable order.
    pub fn tools(&mut self, p: &Probe<'_>) -> Vec<Tool> {
        let mut out = Vec::new();
        // Masscan's ID formula gives 54321 once in 65 536 probes: such a probe is Masscan's,
        // not ZMap's (the formula and the TTL are the stronger evidence).
        let masscan = is_masscan(p);
        if is_zmap(p) && !masscan {
            out.push(Tool::Zmap);
        }
        if masscan {
            out.push(Tool::Masscan);
        }
        if is_mirai(p) {
            out.push(Tool::Mirai);
        }
        if is_nmap_syn(p) {
            out.push(Tool::Nmap);
        }
        if let Some(k) = unicorn_key(p) {
            if self.unicorn.len() >= MAX_SOURCES {
                self.unicorn.clear();
            }
            if self.unicorn.insert(p.src, k) == Some(k) {
                out.push(Tool::Unicornscan);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(opts: &[TcpOption]) -> Probe<'_> {
        Probe {
            src: "198.18.0.11".parse().expect("ip"),
            dst: "198.18.1.5".parse().expect("ip"),
            proto: proto::TCP,
            kind: Kind::TcpSyn,
            ttl: 64,
            ip_id: 1,
            src_port: 40000,
            dst_port: 80,
            tcp_seq: 7,
            tcp_window: 64240,
            tcp_options: opts,
        }
    }

    #[test]
    fn zmap_by_ip_id() {
        let mut p = probe(&[]);
        p.ip_id = 54321;
        p.ttl = 255;
        p.tcp_window = 65535;
        assert_eq!(Fingerprinter::new().tools(&p), [Tool::Zmap]);
    }

    #[test]
    fn masscan_formula() {
        let mut p = probe(&[]);
        p.ttl = 255;
        p.tcp_window = 1024;
        p.tcp_seq = 0xdead_beef;
        let dst = u32::from(std::net::Ipv4Addr::new(198, 18, 1, 5));
        p.ip_id = ((dst ^ 80 ^ 0xdead_beef) & 0xffff) as u16;
        assert_eq!(Fingerprinter::new().tools(&p), [Tool::Masscan]);
        p.ip_id ^= 1;
        assert!(Fingerprinter::new().tools(&p).is_empty());
        // A Masscan probe whose ID happens to be ZMap's constant is Masscan's only.
        p.tcp_seq = (dst ^ 80 ^ 54321) & 0xffff | 0xbeef_0000;
        p.ip_id = 54321;
        assert_eq!(Fingerprinter::new().tools(&p), [Tool::Masscan]);
    }

    #[test]
    fn mirai_seq_is_destination() {
        let mut p = probe(&[]);
        p.dst_port = 23;
        p.tcp_seq = u32::from(std::net::Ipv4Addr::new(198, 18, 1, 5));
        assert_eq!(Fingerprinter::new().tools(&p), [Tool::Mirai]);
    }

    #[test]
    fn nmap_syn_window_and_mss() {
        let opts = [TcpOption::Mss(1460)];
        let mut p = probe(&opts);
        p.tcp_window = 1024;
        assert_eq!(Fingerprinter::new().tools(&p), [Tool::Nmap]);
        let linux = [TcpOption::Mss(1460), TcpOption::SackOk];
        let mut q = probe(&linux);
        q.tcp_window = 1024;
        assert!(Fingerprinter::new().tools(&q).is_empty());
    }

    #[test]
    fn unicornscan_needs_two_packets_with_the_same_constant() {
        let mut f = Fingerprinter::new();
        let mut p = probe(&[]);
        p.tcp_window = 4128;
        let dst = u32::from(std::net::Ipv4Addr::new(198, 18, 1, 5));
        let constant = 0x1234_5678;
        p.tcp_seq = constant ^ dst ^ ((80 << 16) + 40000);
        assert!(f.tools(&p).is_empty());
        p.dst_port = 443;
        p.src_port = 40001;
        p.tcp_seq = constant ^ dst ^ ((443 << 16) + 40001);
        assert_eq!(f.tools(&p), [Tool::Unicornscan]);
    }

    #[test]
    fn initial_ttl() {
        assert_eq!(os_hint(57).0, 64);
        assert_eq!(os_hint(64).0, 64);
        assert_eq!(os_hint(113).0, 128);
        assert_eq!(os_hint(250).0, 255);
        assert_eq!(os_hint(30).0, 32);
    }
}
