//! Conformance of the kernel program with the user-space reference parser: a corpus of crafted
//! frames (one of every kind, seeded random and mutated frames) and the checks that run them
//! through BPF_PROG_TEST_RUN and compare verdicts, counters, ring-buffer events and tuples with
//! [`reference`]. Used by the XDP tests (`sensor-user/tests/xdp.rs`), and inside the virtual
//! machines of `tests/tests/kernels.rs` to check the program on older kernels.
use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use scanscope_common::{EventRecord, Kind, TupleKey, config_flags, counter, ipv4_mapped, tcp};

use sensor_user::config::RuntimeConfig;

use crate::{
    frame::{Ext, L4, V4, V6},
    reference::{self, Outcome, Packet},
    testrun::Harness,
};

/// XDP_PASS.
pub const XDP_PASS: u32 = 2;

/// What a check ran.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Frames run through the program.
    pub frames: usize,
    /// Of those, frames the reference classified (the rest it rejects as malformed).
    pub classified: usize,
}

/// Returns early with both values and the context when kernel and reference disagree.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($ctx:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!(
                "{}: kernel {:?}, reference {:?}",
                format!($($ctx)+),
                got,
                want
            ));
        }
    }};
}

pub const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// Sample every packet, full payload, no socket lookups: every classified frame yields an
/// event the reference can predict.
pub fn sample_all() -> RuntimeConfig {
    let mut cfg = RuntimeConfig::default();
    cfg.kernel.sample_every = [1; 16];
    cfg.kernel.payload_len = 256;
    cfg.kernel.flags &= !config_flags::EXCLUDE_OWN_SOCKETS;
    cfg.ringbuf_bytes = 1 << 23;
    cfg.tuple_entries = 1 << 18;
    cfg
}

pub fn v6src() -> Ipv6Addr {
    "2001:db8::1".parse().expect("ip")
}
pub fn v6dst() -> Ipv6Addr {
    "2001:db8:ffff::7".parse().expect("ip")
}

pub fn mss_ws_sack_ts() -> Vec<u8> {
    vec![
        2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0,
    ]
}

/// One frame of every kind, IPv4 and IPv6.
pub fn every_kind() -> Vec<(Kind, Vec<u8>)> {
    let v4 = V4::new(SRC, DST);
    let v6 = V6::new(v6src(), v6dst());
    let tcpf = |f: u8| L4::tcp(40000, 443, f, &[2, 4, 5, 0xb4]);
    let mut out = vec![
        (Kind::TcpSyn, v4.frame(&[], &tcpf(tcp::SYN))),
        (Kind::TcpSynAck, v4.frame(&[], &tcpf(tcp::SYN | tcp::ACK))),
        (Kind::TcpRst, v4.frame(&[], &tcpf(tcp::RST | tcp::ACK))),
        (Kind::TcpFin, v4.frame(&[], &tcpf(tcp::FIN))),
        (Kind::TcpNull, v4.frame(&[], &tcpf(0))),
        (
            Kind::TcpXmas,
            v4.frame(&[], &tcpf(tcp::FIN | tcp::PSH | tcp::URG)),
        ),
        (Kind::TcpAck, v4.frame(&[], &tcpf(tcp::ACK))),
        (Kind::TcpOther, v4.frame(&[], &tcpf(tcp::ACK | tcp::PSH))),
        (
            Kind::Udp,
            v4.frame(
                &[],
                &L4::Udp {
                    sport: 5353,
                    dport: 53,
                    payload: b"\x12\x34\x01\x00".to_vec(),
                },
            ),
        ),
        (
            Kind::IcmpEcho,
            v4.frame(
                &[],
                &L4::Icmp {
                    ty: 8,
                    code: 0,
                    rest: vec![0, 1, 0, 1, b'p', b'i', b'n', b'g'],
                },
            ),
        ),
        (
            Kind::IcmpOther,
            v4.frame(
                &[],
                &L4::Icmp {
                    ty: 3,
                    code: 3,
                    rest: vec![0; 32],
                },
            ),
        ),
        (
            Kind::Fragment,
            V4 {
                frag_offset: 185,
                df: false,
                ..v4.clone()
            }
            .frame(&[], &L4::Raw(vec![7; 40])),
        ),
        (
            Kind::OtherProto,
            V4 {
                proto: Some(47),
                ..v4.clone()
            }
            .frame(&[], &L4::Raw(vec![0, 0, 8, 0])),
        ),
    ];
    out.extend([
        (
            Kind::TcpSyn,
            v6.frame(&[], &L4::tcp(40000, 22, tcp::SYN, &mss_ws_sack_ts())),
        ),
        (
            Kind::Udp,
            v6.frame(
                &[],
                &L4::Udp {
                    sport: 1,
                    dport: 161,
                    payload: vec![0x30; 50],
                },
            ),
        ),
        (
            Kind::IcmpEcho,
            v6.frame(
                &[],
                &L4::Icmp {
                    ty: 128,
                    code: 0,
                    rest: vec![0, 7, 0, 1],
                },
            ),
        ),
        (
            Kind::IcmpOther,
            v6.frame(
                &[],
                &L4::Icmp {
                    ty: 135,
                    code: 0,
                    rest: vec![0; 20],
                },
            ),
        ),
        (
            Kind::Fragment,
            V6 {
                ext: vec![Ext::Fragment {
                    offset: 100,
                    more: false,
                }],
                ..v6.clone()
            }
            .frame(&[], &L4::Raw(vec![1; 16])),
        ),
    ]);
    out
}

pub fn random_frame(rng: &mut StdRng) -> Vec<u8> {
    let vlans: Vec<u16> = (0..rng.random_range(0..=3u8))
        .map(|_| rng.random_range(0..4096))
        .collect();
    let vlans = if rng.random_bool(0.7) {
        Vec::new()
    } else {
        vlans
    };
    let payload: Vec<u8> = (0..rng.random_range(0..300))
        .map(|_| rng.random())
        .collect();
    let l4 = match rng.random_range(0..6) {
        0 | 1 => {
            let opts: Vec<u8> = match rng.random_range(0..4) {
                0 => Vec::new(),
                1 => vec![2, 4, 5, 0xb4],
                2 => mss_ws_sack_ts(),
                _ => (0..rng.random_range(0..=40))
                    .map(|_| rng.random())
                    .collect(),
            };
            L4::Tcp {
                sport: rng.random(),
                dport: rng.random(),
                seq: rng.random(),
                ack: rng.random(),
                flags: rng.random(),
                window: rng.random(),
                options: opts,
                payload: if rng.random_bool(0.3) {
                    payload
                } else {
                    Vec::new()
                },
            }
        }
        2 => L4::Udp {
            sport: rng.random(),
            dport: rng.random(),
            payload,
        },
        3 => L4::Icmp {
            ty: rng.random_range(0..140),
            code: rng.random_range(0..4),
            rest: payload,
        },
        _ => L4::Raw(payload),
    };
    if rng.random_bool(0.6) {
        let mut v4 = V4::new(
            Ipv4Addr::from(rng.random::<u32>()),
            Ipv4Addr::from(rng.random::<u32>()),
        );
        v4.ttl = rng.random();
        v4.id = rng.random();
        v4.tos = rng.random();
        v4.df = rng.random();
        v4.mf = rng.random_bool(0.1);
        v4.frag_offset = if rng.random_bool(0.1) {
            rng.random_range(0..8192)
        } else {
            0
        };
        v4.options = (0..rng.random_range(0..=10usize) * 4 * usize::from(rng.random_bool(0.2)))
            .map(|_| 1)
            .collect();
        if rng.random_bool(0.05) {
            v4.proto = Some(rng.random());
        }
        v4.frame(&vlans, &l4)
    } else {
        let exts = [
            Ext::HopByHop(0),
            Ext::Routing(1),
            Ext::DestOpts(0),
            Ext::Auth(1),
        ];
        let mut v6 = V6::new(
            Ipv6Addr::from(rng.random::<u128>()),
            Ipv6Addr::from(rng.random::<u128>()),
        );
        v6.hop_limit = rng.random();
        v6.traffic_class = rng.random();
        v6.flow_label = rng.random();
        for _ in 0..rng.random_range(0..=10usize) * usize::from(rng.random_bool(0.3)) {
            v6.ext.push(if rng.random_bool(0.15) {
                Ext::Fragment {
                    offset: if rng.random_bool(0.5) {
                        0
                    } else {
                        rng.random_range(1..8192)
                    },
                    more: rng.random(),
                }
            } else {
                exts[rng.random_range(0..exts.len())].clone()
            });
        }
        v6.frame(&vlans, &l4)
    }
}

pub fn mutate(rng: &mut StdRng, mut f: Vec<u8>) -> Vec<u8> {
    match rng.random_range(0..4) {
        0 => {
            let n = rng.random_range(0..=f.len());
            f.truncate(n);
        }
        1 => {
            for _ in 0..rng.random_range(1..6) {
                if !f.is_empty() {
                    let i = rng.random_range(0..f.len());
                    f[i] = rng.random();
                }
            }
        }
        2 => {
            // Hit the header fields that matter: the first 80 bytes.
            let i = rng.random_range(0..f.len().clamp(1, 80));
            if i < f.len() {
                f[i] ^= 1 << rng.random_range(0..8);
            }
        }
        _ => {
            let extra: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            f.extend(extra);
        }
    }
    f
}

pub fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => ipv4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

pub fn key_of(p: &Packet) -> TupleKey {
    TupleKey {
        src: ip16(p.src),
        dst: ip16(p.dst),
        dst_port: p.key_port,
        proto: p.proto,
        kind: p.kind as u8,
    }
}

/// Checks that a kernel event carries exactly what the reference parsed from `frame`.
pub fn check_event(
    frame: &[u8],
    p: &Packet,
    ev: &EventRecord,
    payload_len: usize,
    weight: u32,
) -> Result<(), String> {
    let ctx = || format!("frame {}", hex(frame));
    ensure_eq!(ev.src, ip16(p.src), "src {}", ctx());
    ensure_eq!(ev.dst, ip16(p.dst), "dst {}", ctx());
    ensure_eq!(ev.family, p.family, "family {}", ctx());
    ensure_eq!(ev.proto, p.proto, "proto {}", ctx());
    ensure_eq!(ev.kind, p.kind as u8, "kind {}", ctx());
    ensure_eq!(
        (ev.ttl, ev.tos, ev.ip_id, ev.ip_len),
        (p.ttl, p.tos, p.ip_id, p.ip_len),
        "ip fields {}",
        ctx()
    );
    ensure_eq!(
        (ev.ip_flags, ev.flow_label),
        (p.ip_flags, p.flow_label),
        "ip flags {}",
        ctx()
    );
    ensure_eq!(
        (ev.src_port, ev.dst_port),
        (p.src_port, p.dst_port),
        "ports {}",
        ctx()
    );
    ensure_eq!(
        (ev.tcp_flags, ev.tcp_seq, ev.tcp_ack, ev.tcp_window),
        (p.tcp_flags, p.tcp_seq, p.tcp_ack, p.tcp_window),
        "tcp {}",
        ctx()
    );
    ensure_eq!(
        (ev.icmp_type, ev.icmp_code),
        (p.icmp_type, p.icmp_code),
        "icmp {}",
        ctx()
    );
    ensure_eq!(
        &ev.tcp_options[..usize::from(ev.tcp_options_len)],
        &p.tcp_options[..],
        "options {}",
        ctx()
    );
    ensure_eq!(ev.payload_total, p.payload_total, "payload_total {}", ctx());
    ensure_eq!(
        &ev.payload[..usize::from(ev.payload_len)],
        p.payload(frame, payload_len),
        "payload {}",
        ctx()
    );
    ensure_eq!(
        (ev.vlan_depth, ev.vlan_id),
        (u16::from(p.vlan_depth), p.vlan_id),
        "vlan {}",
        ctx()
    );
    ensure_eq!(ev.weight, weight, "weight {}", ctx());
    Ok(())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `frames` (configuration: pass everything, sample everything, see [`sample_all`]) and
/// checks verdicts, every counter, every event and every tuple against the reference parser.
/// Returns how many frames ran and how many the reference classified.
pub fn check_against_reference(
    h: &mut Harness,
    frames: &[Vec<u8>],
    payload_len: usize,
) -> Result<Checked, String> {
    let before = h.counters().map_err(|e| e.to_string())?;
    let mut checked = Checked::default();
    let mut want = vec![0u64; counter::SLOTS as usize];
    let mut want_events = Vec::new();
    let mut want_tuples: BTreeMap<TupleKey, (u64, u64)> = BTreeMap::new();
    for f in frames {
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header (EINVAL), and no
        // driver hands XDP one: those lengths are covered by the reference's unit tests.
        if f.len() < 14 {
            continue;
        }
        checked.frames += 1;
        let verdict = h.run(f).map_err(|e| e.to_string())?;
        ensure_eq!(verdict, XDP_PASS, "verdict for {}", hex(f));
        match reference::parse(f) {
            Outcome::Counted(p) => {
                checked.classified += 1;
                want[(counter::KIND_PACKETS + p.kind as u32) as usize] += 1;
                want[(counter::KIND_BYTES + p.kind as u32) as usize] += u64::from(p.ip_len);
                want[counter::SAMPLED as usize] += 1;
                let t = want_tuples.entry(key_of(&p)).or_default();
                t.0 += 1;
                t.1 += u64::from(p.ip_len);
                want_events.push((f, p));
            }
            Outcome::Rejected(c) => want[c as usize] += 1,
        }
    }
    let got = h.counters().map_err(|e| e.to_string())?.since(&before);
    for i in 0..counter::SLOTS {
        ensure_eq!(
            got.get(i),
            want[i as usize],
            "counter {i} ({:?})",
            counter::name(i)
        );
    }
    let events = h.events();
    ensure_eq!(events.len(), want_events.len(), "event count");
    for (ev, (f, p)) in events.iter().zip(&want_events) {
        check_event(f, p, ev, payload_len, 1)?;
    }
    let tuples: BTreeMap<TupleKey, (u64, u64)> = h
        .tuples()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(k, v)| (k, (v.packets, v.bytes)))
        .collect();
    ensure_eq!(tuples, want_tuples, "tuple table");
    Ok(checked)
}

/// The seeded fuzz corpus: `total` frames, half random well-formed ones, 40 % of those
/// mutated (truncated, bytes overwritten, bits flipped in the headers, bytes appended), a tenth
/// pure noise. The same seed gives the same frames on every machine.
pub fn fuzz_frames(seed: u64, total: usize) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..total)
        .map(|_| {
            let f = random_frame(&mut rng);
            match rng.random_range(0..10) {
                0..=4 => f,
                5..=8 => mutate(&mut rng, f),
                _ => (0..rng.random_range(0..120))
                    .map(|_| rng.random())
                    .collect(),
            }
        })
        .collect()
}

/// Runs the seeded corpus of [`fuzz_frames`] through [`check_against_reference`], in batches of
/// 1000 (the tuple tables and the ring buffer are drained between batches).
pub fn differential_fuzz(h: &mut Harness, seed: u64, total: usize) -> Result<Checked, String> {
    let mut sum = Checked::default();
    for batch in fuzz_frames(seed, total).chunks(1000) {
        let c = check_against_reference(h, batch, 256)?;
        sum.frames += batch.len();
        sum.classified += c.classified;
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{Outcome, parse};

    /// The vocabulary's kind/protocol rule (which the collector enforces on every record)
    /// holds for everything the parser classifies: every kind's frame and 20 000 fuzzed ones.
    #[test]
    fn every_classified_kind_fits_its_protocol() {
        let frames = every_kind()
            .into_iter()
            .map(|(_, f)| f)
            .chain(fuzz_frames(0x4b1d, 20_000));
        let mut counted = 0;
        for f in frames {
            if let Outcome::Counted(p) = parse(&f) {
                assert!(
                    p.kind.admits_proto(p.proto),
                    "{:?} over {}",
                    p.kind,
                    p.proto
                );
                counted += 1;
            }
        }
        assert!(counted > 1000, "only {counted} frames classified");
        assert!(!Kind::TcpSyn.admits_proto(17) && !Kind::Udp.admits_proto(6));
        assert!(!Kind::IcmpEcho.admits_proto(6) && Kind::IcmpOther.admits_proto(58));
    }
}
