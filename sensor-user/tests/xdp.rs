//! The real XDP object run through BPF_PROG_TEST_RUN on crafted frames.
//!
//! Every test compares the kernel with the user-space reference parser (`reference`) and with
//! figures known by construction. Needs root and the built object (`cargo xtask build-ebpf`);
//! without them each test prints why it is skipped (and fails under `cargo xtask test`).
use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use sensor_common::{
    EventRecord, KIND_COUNT, Kind, TupleKey, action, config_flags, counter, ipv4_mapped, tcp,
};
use sensor_user::{
    config::RuntimeConfig,
    drain,
    frame::{Ext, L4, V4, V6, ethernet},
    reference::{self, Outcome, Packet},
    testrun::{Harness, skip_reason},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn harness(cfg: &RuntimeConfig) -> Option<Harness> {
    if let Some(r) = skip_reason() {
        eprintln!("SKIPPED: {r}");
        return None;
    }
    Some(Harness::new(cfg).expect("load the XDP object"))
}

/// Sample every packet, full payload, no socket lookups: every classified frame yields an
/// event the reference can predict.
fn sample_all() -> RuntimeConfig {
    let mut cfg = RuntimeConfig::default();
    cfg.kernel.sample_every = [1; 16];
    cfg.kernel.payload_len = 256;
    cfg.kernel.flags &= !config_flags::EXCLUDE_OWN_SOCKETS;
    cfg.ringbuf_bytes = 1 << 23;
    cfg.tuple_entries = 1 << 18;
    cfg
}

fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => ipv4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

fn key_of(p: &Packet) -> TupleKey {
    TupleKey {
        src: ip16(p.src),
        dst: ip16(p.dst),
        dst_port: p.key_port,
        proto: p.proto,
        kind: p.kind as u8,
    }
}

/// Asserts that a kernel event carries exactly what the reference parsed from `frame`.
fn assert_event(frame: &[u8], p: &Packet, ev: &EventRecord, payload_len: usize, weight: u32) {
    let ctx = || format!("frame {}", hex(frame));
    assert_eq!(ev.src, ip16(p.src), "src {}", ctx());
    assert_eq!(ev.dst, ip16(p.dst), "dst {}", ctx());
    assert_eq!(ev.family, p.family, "family {}", ctx());
    assert_eq!(ev.proto, p.proto, "proto {}", ctx());
    assert_eq!(ev.kind, p.kind as u8, "kind {}", ctx());
    assert_eq!(
        (ev.ttl, ev.tos, ev.ip_id, ev.ip_len),
        (p.ttl, p.tos, p.ip_id, p.ip_len),
        "ip fields {}",
        ctx()
    );
    assert_eq!(
        (ev.ip_flags, ev.flow_label),
        (p.ip_flags, p.flow_label),
        "ip flags {}",
        ctx()
    );
    assert_eq!(
        (ev.src_port, ev.dst_port),
        (p.src_port, p.dst_port),
        "ports {}",
        ctx()
    );
    assert_eq!(
        (ev.tcp_flags, ev.tcp_seq, ev.tcp_ack, ev.tcp_window),
        (p.tcp_flags, p.tcp_seq, p.tcp_ack, p.tcp_window),
        "tcp {}",
        ctx()
    );
    assert_eq!(
        (ev.icmp_type, ev.icmp_code),
        (p.icmp_type, p.icmp_code),
        "icmp {}",
        ctx()
    );
    assert_eq!(
        &ev.tcp_options[..usize::from(ev.tcp_options_len)],
        &p.tcp_options[..],
        "options {}",
        ctx()
    );
    assert_eq!(ev.payload_total, p.payload_total, "payload_total {}", ctx());
    assert_eq!(
        &ev.payload[..usize::from(ev.payload_len)],
        p.payload(frame, payload_len),
        "payload {}",
        ctx()
    );
    assert_eq!(
        (ev.vlan_depth, ev.vlan_id),
        (u16::from(p.vlan_depth), p.vlan_id),
        "vlan {}",
        ctx()
    );
    assert_eq!(ev.weight, weight, "weight {}", ctx());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `frames` (configuration: pass everything, sample everything) and checks verdicts,
/// every counter, every event and every tuple against the reference parser.
fn assert_matches_reference(h: &mut Harness, frames: &[Vec<u8>], payload_len: usize) {
    let before = h.counters().expect("counters");
    let mut want = vec![0u64; counter::SLOTS as usize];
    let mut want_events = Vec::new();
    let mut want_tuples: BTreeMap<TupleKey, (u64, u64)> = BTreeMap::new();
    for f in frames {
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header (EINVAL), and no
        // driver hands XDP one: those lengths are covered by the reference's unit tests.
        if f.len() < 14 {
            continue;
        }
        assert_eq!(
            h.run(f).expect("test_run"),
            XDP_PASS,
            "verdict for {}",
            hex(f)
        );
        match reference::parse(f) {
            Outcome::Counted(p) => {
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
    let got = h.counters().expect("counters").since(&before);
    for i in 0..counter::SLOTS {
        assert_eq!(
            got.get(i),
            want[i as usize],
            "counter {i} ({:?})",
            counter::name(i)
        );
    }
    let events = h.events();
    assert_eq!(events.len(), want_events.len(), "event count");
    for (ev, (f, p)) in events.iter().zip(&want_events) {
        assert_event(f, p, ev, payload_len, 1);
    }
    let tuples: BTreeMap<TupleKey, (u64, u64)> = h
        .tuples()
        .expect("tuples")
        .into_iter()
        .map(|(k, v)| (k, (v.packets, v.bytes)))
        .collect();
    assert_eq!(tuples, want_tuples, "tuple table");
}

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn v6src() -> Ipv6Addr {
    "2001:db8::1".parse().expect("ip")
}
fn v6dst() -> Ipv6Addr {
    "2001:db8:ffff::7".parse().expect("ip")
}

fn mss_ws_sack_ts() -> Vec<u8> {
    vec![
        2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0,
    ]
}

/// One frame of every kind, IPv4 and IPv6.
fn every_kind() -> Vec<(Kind, Vec<u8>)> {
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

#[test]
fn every_kind_is_classified_counted_and_sampled() {
    let Some(mut h) = harness(&sample_all()) else {
        return;
    };
    let frames = every_kind();
    for (kind, f) in &frames {
        let Outcome::Counted(p) = reference::parse(f) else {
            panic!("reference rejects {kind:?}")
        };
        assert_eq!(p.kind, *kind);
    }
    let before = h.counters().expect("counters");
    let just_frames: Vec<Vec<u8>> = frames.iter().map(|(_, f)| f.clone()).collect();
    assert_matches_reference(&mut h, &just_frames, 256);
    let d = h.counters().expect("counters").since(&before);
    // Exact figures by construction: 13 IPv4 frames (one per kind) and 5 IPv6 ones.
    assert_eq!(d.get(counter::KIND_PACKETS + Kind::TcpSyn as u32), 2);
    assert_eq!(d.get(counter::KIND_PACKETS + Kind::Udp as u32), 2);
    assert_eq!(d.get(counter::KIND_PACKETS + Kind::IcmpEcho as u32), 2);
    assert_eq!(d.get(counter::KIND_PACKETS + Kind::IcmpOther as u32), 2);
    assert_eq!(d.get(counter::KIND_PACKETS + Kind::Fragment as u32), 2);
    assert_eq!(d.get(counter::KIND_PACKETS + Kind::TcpXmas as u32), 1);
    assert_eq!(d.get(counter::KIND_BYTES + Kind::TcpSyn as u32), 44 + 80);
    assert_eq!(
        (0..KIND_COUNT as u32)
            .map(|k| d.get(counter::KIND_PACKETS + k))
            .sum::<u64>(),
        18
    );
    assert_eq!(d.get(counter::SAMPLED), 18);
}

#[test]
fn per_port_counts_read_in_one_batch_equal_per_key_reads() {
    let Some(mut h) = harness(&sample_all()) else {
        return;
    };
    let v4 = V4::new(SRC, DST);
    let before = drain::read_ports_batch(&h.ebpf).expect("batch lookup works on this kernel");
    for (port, n) in [(22u16, 3), (443, 1), (65535, 2)] {
        for _ in 0..n {
            h.run(&v4.frame(&[], &L4::tcp(40000, port, tcp::SYN, &[])))
                .expect("run");
        }
    }
    for _ in 0..2 {
        let udp = L4::Udp {
            sport: 5353,
            dport: 53,
            payload: b"\x12\x34".to_vec(),
        };
        h.run(&v4.frame(&[], &udp)).expect("run");
    }
    let batch = drain::read_ports_batch(&h.ebpf).expect("batch");
    let per_key = drain::read_ports_per_key(&h.ebpf).expect("per key");
    assert_eq!(batch.len(), 2 * 65536);
    assert_eq!(batch, per_key);
    let delta: Vec<(usize, u64)> = batch
        .iter()
        .zip(&before)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i, a - b))
        .collect();
    assert_eq!(delta, vec![(22, 3), (443, 1), (65535, 2), (65536 + 53, 2)]);
}

#[test]
fn vlan_qinq_and_too_many_tags() {
    let Some(mut h) = harness(&sample_all()) else {
        return;
    };
    let syn = L4::tcp(1, 80, tcp::SYN, &[]);
    let v4 = V4::new(SRC, DST);
    let frames = vec![
        v4.frame(&[100], &syn),
        v4.frame(&[200, 300], &syn),
        V6::new(v6src(), v6dst()).frame(&[4094], &syn),
        v4.frame(&[1, 2, 3], &syn),
    ];
    assert_matches_reference(&mut h, &frames, 256);
    // And the exact figures: three SYNs, one frame with three tags.
    let Outcome::Counted(p) = reference::parse(&frames[1]) else {
        panic!("qinq")
    };
    assert_eq!((p.vlan_depth, p.vlan_id), (2, 200));
    assert_eq!(
        reference::parse(&frames[3]),
        Outcome::Rejected(counter::VLAN_TOO_DEEP)
    );
}

#[test]
fn ipv4_options_of_every_length() {
    let Some(mut h) = harness(&sample_all()) else {
        return;
    };
    let mut frames = Vec::new();
    for words in 0..=10usize {
        let mut v4 = V4::new(SRC, DST);
        v4.options = vec![1; words * 4]; // NOPs: IHL 5..15
        frames.push(v4.frame(&[], &L4::tcp(1000, 8080, tcp::SYN, &[2, 4, 5, 0xb4])));
    }
    assert_matches_reference(&mut h, &frames, 256);
    for f in &frames {
        let Outcome::Counted(p) = reference::parse(f) else {
            panic!("options")
        };
        assert_eq!((p.kind, p.dst_port), (Kind::TcpSyn, 8080));
    }
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    let Some(mut h) = harness(&sample_all()) else {
        return;
    };
    let v6 = |ext: Vec<Ext>| V6 {
        ext,
        ..V6::new(v6src(), v6dst())
    };
    let udp = L4::Udp {
        sport: 7,
        dport: 5060,
        payload: b"OPTIONS sip:x SIP/2.0".to_vec(),
    };
    let frames = vec![
        v6(vec![Ext::HopByHop(0)]).frame(&[], &udp),
        v6(vec![
            Ext::HopByHop(1),
            Ext::DestOpts(0),
            Ext::Routing(2),
            Ext::Auth(1),
        ])
        .frame(&[], &udp),
        // First fragment (offset 0, more follows): the transport header is read.
        v6(vec![Ext::Fragment {
            offset: 0,
            more: true,
        }])
        .frame(&[], &udp),
        // Non-first fragment.
        v6(vec![
            Ext::DestOpts(0),
            Ext::Fragment {
                offset: 3,
                more: false,
            },
        ])
        .frame(&[], &udp),
        // Eight extension headers (the walk's bound) then UDP; then nine: over the limit.
        v6(vec![Ext::DestOpts(0); 8]).frame(&[], &udp),
        v6(vec![Ext::DestOpts(0); 9]).frame(&[], &udp),
    ];
    assert_matches_reference(&mut h, &frames, 256);
    let kinds: Vec<_> = frames.iter().map(|f| reference::parse(f)).collect();
    assert!(matches!(&kinds[2], Outcome::Counted(p) if p.kind == Kind::Udp && p.dst_port == 5060));
    assert!(matches!(&kinds[3], Outcome::Counted(p) if p.kind == Kind::Fragment && p.proto == 17));
    assert!(matches!(&kinds[4], Outcome::Counted(p) if p.kind == Kind::Udp));
    assert_eq!(kinds[5], Outcome::Rejected(counter::IPV6_EXT_LIMIT));
}

#[test]
fn frames_truncated_at_every_length_and_bogus_headers() {
    let Some(mut h) = harness(&sample_all()) else {
        return;
    };
    let mut syn = L4::tcp(40000, 443, tcp::SYN, &mss_ws_sack_ts());
    if let L4::Tcp { payload, .. } = &mut syn {
        *payload = b"GET / HTTP/1.1\r\n".to_vec();
    }
    let mut v4o = V4::new(SRC, DST);
    v4o.options = vec![1, 1, 1, 0];
    let bases = vec![
        v4o.frame(&[10], &syn),
        V6 {
            ext: vec![
                Ext::HopByHop(0),
                Ext::Fragment {
                    offset: 0,
                    more: true,
                },
            ],
            ..V6::new(v6src(), v6dst())
        }
        .frame(
            &[20, 30],
            &L4::Udp {
                sport: 1,
                dport: 2,
                payload: vec![9; 30],
            },
        ),
        V4::new(SRC, DST).frame(
            &[],
            &L4::Icmp {
                ty: 8,
                code: 0,
                rest: vec![1; 12],
            },
        ),
    ];
    let mut frames = Vec::new();
    for b in &bases {
        for len in 0..=b.len() {
            frames.push(b[..len].to_vec());
        }
    }
    // Bogus IHL (every value below 5), data offsets below 5 and beyond the segment, IPv4
    // total length below the header and beyond the frame, wrong IP versions.
    let good = V4::new(SRC, DST).frame(&[], &L4::tcp(1, 2, tcp::SYN, &[]));
    for ihl in 0..5u8 {
        let mut f = good.clone();
        f[14] = 0x40 | ihl;
        frames.push(f);
    }
    for doff in [0u8, 1, 4, 6, 15] {
        let mut f = good.clone();
        f[14 + 20 + 12] = doff << 4;
        frames.push(f);
    }
    for tot in [0u16, 19, 41, 1500] {
        let mut f = good.clone();
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        frames.push(f);
    }
    let mut f = good.clone();
    f[14] = 0x65;
    frames.push(f);
    let mut f6 = V6::new(v6src(), v6dst()).frame(&[], &L4::tcp(1, 2, tcp::SYN, &[]));
    f6[14] = 0x40;
    frames.push(f6.clone());
    f6[14] = 0x60;
    f6[18..20].copy_from_slice(&0u16.to_be_bytes());
    frames.push(f6);
    frames.push(ethernet(&[], 0x0806, &[0; 28]));
    assert_matches_reference(&mut h, &frames, 256);
    // Exact: of the 71-byte VLAN IPv4 base, only the full frame parses; every shorter one is
    // counted as truncated somewhere.
    let counted = frames
        .iter()
        .filter(|f| matches!(reference::parse(f), Outcome::Counted(_)))
        .count();
    assert_eq!(counted, 3);
}

#[test]
fn sampling_first_packet_then_one_in_n() {
    let mut cfg = sample_all();
    cfg.kernel.sample_every = [4; 16];
    cfg.kernel.payload_len = 16;
    let Some(mut h) = harness(&cfg) else { return };
    let mut udp = L4::Udp {
        sport: 9,
        dport: 1900,
        payload: b"M-SEARCH * HTTP/1.1\r\nHOST: x".to_vec(),
    };
    let f = V4::new(SRC, DST).frame(&[], &udp);
    for _ in 0..10 {
        assert_eq!(h.run(&f).expect("run"), XDP_PASS);
    }
    // A second tuple (other port): its first packet is sampled too.
    if let L4::Udp { dport, .. } = &mut udp {
        *dport = 1901;
    }
    let g = V4::new(SRC, DST).frame(&[], &udp);
    assert_eq!(h.run(&g).expect("run"), XDP_PASS);
    let evs = h.events();
    assert_eq!(
        evs.iter()
            .map(|e| (e.dst_port, e.weight))
            .collect::<Vec<_>>(),
        [(1900, 1), (1900, 4), (1900, 4), (1901, 1)]
    );
    let Outcome::Counted(p) = reference::parse(&f) else {
        panic!("udp")
    };
    for e in &evs[..3] {
        assert_event(&f, &p, e, 16, e.weight);
        assert_eq!(&e.payload[..16], b"M-SEARCH * HTTP/");
    }
    let t = h.tuples().expect("tuples");
    assert_eq!(
        t.iter()
            .map(|(k, v)| (k.dst_port, v.packets, v.bytes))
            .collect::<Vec<_>>(),
        [(1900, 10, 560), (1901, 1, 56)]
    );
}

#[test]
fn drop_action_exclusions_and_runtime_reconfiguration() {
    let mut cfg = sample_all();
    cfg.kernel.action[Kind::TcpSyn as usize] = action::DROP;
    let Some(mut h) = harness(&cfg) else { return };
    let syn = V4::new(SRC, DST).frame(&[], &L4::tcp(1, 22, tcp::SYN, &[]));
    let ack = V4::new(SRC, DST).frame(&[], &L4::tcp(1, 22, tcp::ACK, &[]));
    assert_eq!(h.run(&syn).expect("run"), XDP_DROP);
    assert_eq!(h.run(&ack).expect("run"), XDP_PASS);
    let c = h.counters().expect("counters");
    assert_eq!(c.get(counter::DROPPED), 1);
    assert_eq!(c.get(counter::KIND_PACKETS + Kind::TcpSyn as u32), 1);

    // Exclude 192.0.2.0/24 and 2001:db8::/32 at run time, without reloading.
    let text = "exclude = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n[sample_every]\ndefault = 1\n";
    let mut cfg2 = RuntimeConfig::from_toml(text).expect("config");
    cfg2.kernel.flags &= !config_flags::EXCLUDE_OWN_SOCKETS;
    h.configure(&cfg2).expect("configure");
    h.events();
    h.tuples().expect("tuples");
    let other =
        V4::new(Ipv4Addr::new(203, 0, 113, 9), DST).frame(&[], &L4::tcp(1, 22, tcp::SYN, &[]));
    let v6f = V6::new(v6src(), v6dst()).frame(&[], &L4::tcp(1, 22, tcp::SYN, &[]));
    for f in [&syn, &syn, &v6f, &other] {
        assert_eq!(h.run(f).expect("run"), XDP_PASS, "action back to pass");
    }
    let d = h.counters().expect("counters").since(&c);
    assert_eq!(d.get(counter::EXCLUDED_CIDR), 3);
    assert_eq!(d.get(counter::KIND_PACKETS + Kind::TcpSyn as u32), 1);
    assert_eq!(d.get(counter::DROPPED), 0);
    let t = h.tuples().expect("tuples");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0.src, ipv4_mapped([203, 0, 113, 9]));
    assert_eq!(h.events().len(), 1);
}

#[test]
fn tuple_table_full_is_counted() {
    let mut cfg = sample_all();
    cfg.tuple_entries = 1024;
    let Some(mut h) = harness(&cfg) else { return };
    for port in 0..1100u16 {
        let f = V4::new(SRC, DST).frame(&[], &L4::tcp(1, port, tcp::SYN, &[]));
        h.run(&f).expect("run");
    }
    let c = h.counters().expect("counters");
    assert_eq!(c.get(counter::KIND_PACKETS + Kind::TcpSyn as u32), 1100);
    assert_eq!(c.get(counter::TUPLE_TABLE_FULL), 76);
    assert_eq!(h.tuples().expect("tuples").len(), 1024);
    assert_eq!(h.events().len(), 1024);
}

#[test]
fn ringbuf_full_is_counted_per_cpu() {
    let mut cfg = sample_all();
    cfg.ringbuf_bytes = 4096; // room for 10 events of 384 + 8 bytes
    let Some(mut h) = harness(&cfg) else { return };
    let f = V4::new(SRC, DST).frame(&[], &L4::tcp(1, 80, tcp::SYN, &[]));
    for _ in 0..50 {
        h.run(&f).expect("run");
    }
    let c = h.counters().expect("counters");
    let kept = h.events().len() as u64;
    assert_eq!(kept, 10);
    assert_eq!(c.get(counter::SAMPLED), kept);
    assert_eq!(c.get(counter::RINGBUF_FULL), 50 - kept);
    assert_eq!(c.ringbuf_full_per_cpu.iter().sum::<u64>(), 50 - kept);
}

// ------------------------------------------------------------------------------ differential fuzz

fn random_frame(rng: &mut StdRng) -> Vec<u8> {
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

fn mutate(rng: &mut StdRng, mut f: Vec<u8>) -> Vec<u8> {
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

#[test]
fn differential_fuzz_kernel_equals_reference() {
    let Some(mut h) = harness(&sample_all()) else {
        return;
    };
    let seed: u64 = std::env::var("SCANSCOPE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5ca9_5c09e);
    let total: usize = std::env::var("SCANSCOPE_FUZZ_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    eprintln!("differential fuzz: {total} frames, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counted = 0usize;
    let mut done = 0usize;
    while done < total {
        let batch: Vec<Vec<u8>> = (0..1000.min(total - done))
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
            .collect();
        counted += batch
            .iter()
            .filter(|f| matches!(reference::parse(f), Outcome::Counted(_)))
            .count();
        assert_matches_reference(&mut h, &batch, 256);
        done += batch.len();
    }
    eprintln!(
        "differential fuzz: {done} frames agreed ({counted} classified, {} rejected)",
        done - counted
    );
    assert_eq!(done, total);
    // The generator must exercise both sides meaningfully.
    assert!(
        counted > total / 3 && counted < total,
        "classified {counted} of {total}"
    );
}
