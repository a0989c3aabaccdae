//! Classification rules of the rollup: the scan type, the scanner rule, scan breadth, spoofing
//! hints and DoS windows (which traffic is a probe and which is backscatter is
//! `scanscope_common::Kind::role`). Pure functions, each rule documented in `docs/rollup.md` and
//! unit-tested here.
use scanscope_common::{Kind, Tool};

use super::config::{DosRule, ScannerRule};

/// How soon after a stateless probe a real handshake makes the source two-phase (seconds).
pub const TWO_PHASE_SECS: i64 = 600;

/// A hint that a source address was forged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoofReason {
    /// Source equals destination.
    SrcEqDst,
    /// A non-first fragment (no transport header).
    Fragment,
    /// TCP or UDP to port 0.
    Port0,
    /// UDP to port 80.
    Udp80,
    /// An IPv4 source ending in .0 or .255.
    SrcNetworkOrBroadcast,
    /// TTL ≥ 200 from a tool that does not send 255.
    HighTtl,
}

impl SpoofReason {
    /// Every reason, in bit order of the rollup's per-source mask.
    pub const ALL: [SpoofReason; 6] = [
        SpoofReason::SrcEqDst,
        SpoofReason::Fragment,
        SpoofReason::Port0,
        SpoofReason::Udp80,
        SpoofReason::SrcNetworkOrBroadcast,
        SpoofReason::HighTtl,
    ];

    /// The name in `ip_daily.spoof_reasons` (and in the `spoofed:<reason>` tag).
    pub const fn name(self) -> &'static str {
        match self {
            SpoofReason::SrcEqDst => "src_eq_dst",
            SpoofReason::Fragment => "fragment",
            SpoofReason::Port0 => "port0",
            SpoofReason::Udp80 => "udp80",
            SpoofReason::SrcNetworkOrBroadcast => "src_x.0_or_x.255",
            SpoofReason::HighTtl => "ttl>=200",
        }
    }

    /// Its bit in a mask of reasons.
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// What shape a source's probing has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanType {
    /// Many ports on few targets.
    Vertical,
    /// One or few ports on many targets.
    Horizontal,
    /// Many ports on many targets (strobe / block).
    Block,
    /// A single (target, port) probe, or no probe.
    None,
}

impl ScanType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanType::Vertical => "vertical",
            ScanType::Horizontal => "horizontal",
            ScanType::Block => "block",
            ScanType::None => "none",
        }
    }
}

/// The scan type from distinct targets and distinct ports probed (ICMP echo counts as a target
/// without a port). One target ⇒ vertical; one port ⇒ horizontal; otherwise ≤ `few` ports ⇒
/// horizontal, ≤ `few` targets ⇒ vertical, else block. One target and at most one port ⇒ none.
pub fn scan_type(targets: u64, ports: u64, few: u64) -> ScanType {
    match (targets, ports) {
        (0, _) => ScanType::None,
        (1, 0 | 1) => ScanType::None,
        (1, _) => ScanType::Vertical,
        (_, 0 | 1) => ScanType::Horizontal,
        _ if ports <= few => ScanType::Horizontal,
        _ if targets <= few => ScanType::Vertical,
        _ => ScanType::Block,
    }
}

/// The scanner rule: not a spoofing suspect, and at least `min_probe_pairs` distinct
/// (target, protocol, port) probes or at least `min_dst_hosts` distinct targets in the day.
pub fn is_scanner(rule: &ScannerRule, probe_pairs: u64, targets: u64, spoofed: bool) -> bool {
    !spoofed
        && ((rule.min_probe_pairs > 0 && probe_pairs >= rule.min_probe_pairs)
            || (rule.min_dst_hosts > 0 && targets >= rule.min_dst_hosts))
}

/// Scan breadth 1–10: the share of the day's active sensors that saw the source, × 10,
/// rounded half up, at least 1.
pub fn scan_breadth(sensors_seen: u64, sensors_active: u64) -> u8 {
    if sensors_active == 0 {
        return 1;
    }
    let tenths = (sensors_seen * 20 + sensors_active) / (sensors_active * 2);
    tenths.clamp(1, 10) as u8
}

/// Forgery hints of one probe: fragments, port 0, UDP to port 80.
pub fn spoof_reason_probe(kind: Kind, dst_port: u16) -> Option<SpoofReason> {
    if kind == Kind::Fragment {
        Some(SpoofReason::Fragment)
    } else if (kind.is_tcp() || kind == Kind::Udp) && dst_port == 0 {
        Some(SpoofReason::Port0)
    } else if kind == Kind::Udp && dst_port == 80 {
        Some(SpoofReason::Udp80)
    } else {
        None
    }
}

/// Forgery hint of a source address: an IPv4 address ending in .0 or .255.
pub fn spoof_reason_addr(src: &str) -> Option<SpoofReason> {
    if let Ok(std::net::IpAddr::V4(a)) = src.parse::<std::net::IpAddr>() {
        let last = a.octets()[3];
        if last == 0 || last == 255 {
            return Some(SpoofReason::SrcNetworkOrBroadcast);
        }
    }
    None
}

/// TTL ≥ 200 is a forgery hint unless a raw-packet scanner that sends 255 (masscan, zmap,
/// unicornscan) made it.
pub fn spoof_reason_ttl(ttl: u8, tools: &[Tool]) -> Option<SpoofReason> {
    (ttl >= 200 && !tools.iter().any(|t| t.sends_ttl_255())).then_some(SpoofReason::HighTtl)
}

/// Width of the DoS rate buckets, seconds.
pub const DOS_BUCKET_SECS: i64 = 10;

/// Highest packets per minute over 60 s windows sliding by 10 s, from 10-second buckets
/// (`(bucket index, packets)`, sorted by index).
pub fn peak_per_minute(buckets: &[(i64, u64)]) -> u64 {
    let mut best = 0;
    let mut start = 0;
    let mut sum = 0u64;
    for end in 0..buckets.len() {
        sum += buckets[end].1;
        while buckets[end].0 - buckets[start].0 >= 60 / DOS_BUCKET_SECS {
            sum -= buckets[start].1;
            start += 1;
        }
        best = best.max(sum);
    }
    best
}

/// Number of attacks: runs of buckets separated by ≥ 300 s of silence, each meeting the rule.
pub fn attacks(rule: &DosRule, buckets: &[(i64, u64)]) -> u32 {
    let mut n = 0;
    let mut i = 0;
    while i < buckets.len() {
        let mut j = i + 1;
        while j < buckets.len() && (buckets[j].0 - buckets[j - 1].0) * DOS_BUCKET_SECS < 300 {
            j += 1;
        }
        let run = &buckets[i..j];
        let packets: u64 = run.iter().map(|b| b.1).sum();
        let duration = ((run[run.len() - 1].0 - run[0].0 + 1) * DOS_BUCKET_SECS) as f64;
        if packets >= rule.min_packets
            && duration >= rule.min_duration_secs
            && peak_per_minute(run) >= rule.min_packets_per_minute
        {
            n += 1;
        }
        i = j;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hint of one flow row, in the order the rollup applies them.
    fn spoof_reasons_flow(src: &str, dst: &str, kind: Kind, dst_port: u16) -> Option<&'static str> {
        if src == dst {
            return Some(SpoofReason::SrcEqDst.name());
        }
        spoof_reason_probe(kind, dst_port)
            .or_else(|| spoof_reason_addr(src))
            .map(SpoofReason::name)
    }

    #[test]
    fn scan_types() {
        assert_eq!(scan_type(1, 11, 5), ScanType::Vertical);
        assert_eq!(scan_type(16, 1, 5), ScanType::Horizontal);
        assert_eq!(scan_type(32, 2, 5), ScanType::Horizontal);
        assert_eq!(scan_type(3, 20, 5), ScanType::Vertical);
        assert_eq!(scan_type(30, 20, 5), ScanType::Block);
        assert_eq!(scan_type(1, 1, 5), ScanType::None);
        assert_eq!(scan_type(0, 0, 5), ScanType::None);
        assert_eq!(scan_type(3, 0, 5), ScanType::Horizontal);
    }

    #[test]
    fn breadth() {
        assert_eq!(scan_breadth(2, 3), 7);
        assert_eq!(scan_breadth(1, 3), 3);
        assert_eq!(scan_breadth(3, 3), 10);
        assert_eq!(scan_breadth(1, 30), 1);
        assert_eq!(scan_breadth(3, 30), 1);
        assert_eq!(scan_breadth(15, 30), 5);
        assert_eq!(scan_breadth(1, 4), 3); // 2.5 rounds half up
        assert_eq!(scan_breadth(0, 0), 1);
    }

    #[test]
    fn scanner_rule() {
        let r = ScannerRule::default();
        assert!(is_scanner(&r, 11, 1, false));
        assert!(!is_scanner(&r, 9, 2, false));
        assert!(is_scanner(&r, 3, 3, false));
        assert!(!is_scanner(&r, 100, 100, true));
    }

    #[test]
    fn spoof_hints() {
        assert_eq!(
            spoof_reasons_flow("1.2.3.4", "1.2.3.4", Kind::TcpSyn, 80),
            Some("src_eq_dst")
        );
        assert_eq!(
            spoof_reasons_flow("1.2.3.0", "5.6.7.8", Kind::TcpSyn, 80),
            Some("src_x.0_or_x.255")
        );
        assert_eq!(
            spoof_reasons_flow("1.2.3.4", "5.6.7.8", Kind::Udp, 80),
            Some("udp80")
        );
        assert_eq!(
            spoof_reasons_flow("1.2.3.4", "5.6.7.8", Kind::TcpSyn, 0),
            Some("port0")
        );
        assert_eq!(
            spoof_reasons_flow("1.2.3.4", "5.6.7.8", Kind::TcpSyn, 22),
            None
        );
        assert_eq!(spoof_reasons_flow("::", "::1", Kind::TcpSyn, 22), None);
        assert_eq!(spoof_reason_ttl(250, &[]), Some(SpoofReason::HighTtl));
        assert_eq!(spoof_reason_ttl(254, &[Tool::Masscan]), None);
        assert_eq!(spoof_reason_ttl(64, &[]), None);
        assert_eq!(
            spoof_reason_probe(Kind::Fragment, 0),
            Some(SpoofReason::Fragment)
        );
        assert_eq!(spoof_reason_probe(Kind::IcmpEcho, 0), None);
        assert_eq!(
            spoof_reason_probe(Kind::TcpRst, 0),
            Some(SpoofReason::Port0)
        );
        for (i, r) in SpoofReason::ALL.iter().enumerate() {
            assert_eq!(r.bit(), 1 << i);
        }
    }

    #[test]
    fn dos_windows() {
        // 10 buckets of 5 packets each 10 s apart: 60 s window holds 6 buckets = 30.
        let b: Vec<(i64, u64)> = (0..10).map(|i| (i, 5)).collect();
        assert_eq!(peak_per_minute(&b), 30);
        let rule = DosRule::default();
        assert_eq!(attacks(&rule, &b), 1); // 50 packets, 100 s, 30/min
        let mut rule2 = rule.clone();
        rule2.min_packets_per_minute = 31;
        assert_eq!(attacks(&rule2, &b), 0);
        // Two runs separated by 400 s of silence.
        let mut b2 = b.clone();
        b2.extend((50..60).map(|i| (i, 5)));
        assert_eq!(attacks(&rule, &b2), 2);
        // Short burst: 100 packets in 10 s fails the duration.
        assert_eq!(attacks(&rule, &[(0, 100)]), 0);
    }
}
