//! The real XDP object run through BPF_PROG_TEST_RUN on crafted frames.
//!
//! Every test compares the kernel with the user-space reference parser (`reference`) and with
//! figures known by construction. Needs root and the built object (`cargo xtask build-ebpf`);
//! without them each test prints why it is skipped (and fails under `cargo xtask test`).
use std::net::Ipv4Addr;

use scanscope_common::{
    EventRecord, KIND_COUNT, Kind, action, config_flags, counter, ipv4_mapped, tcp,
};
use scanscope_testkit::{
    conformance::{
        DST, SRC, XDP_PASS, check_against_reference, check_event, differential_fuzz, every_kind,
        mss_ws_sack_ts, sample_all, v6dst, v6src,
    },
    frame::{Ext, L4, V4, V6, ethernet},
    reference::{self, Outcome, Packet},
    testrun::{self, Harness},
};
use sensor_user::{config::RuntimeConfig, drain, load::Variant};

const XDP_DROP: u32 = 1;

fn assert_matches_reference(h: &mut Harness, frames: &[Vec<u8>], payload_len: usize) {
    if let Err(e) = check_against_reference(h, frames, payload_len) {
        panic!("{e}");
    }
}

fn assert_event(frame: &[u8], p: &Packet, ev: &EventRecord, payload_len: usize, weight: u32) {
    if let Err(e) = check_event(frame, p, ev, payload_len, weight) {
        panic!("{e}");
    }
}

fn harness(cfg: &RuntimeConfig) -> Option<Harness> {
    if testrun::skip() {
        return None;
    }
    let h = Harness::new(cfg).expect("load the XDP object");
    // This kernel (≥ 5.18) takes the main build; the compat build is tested by forcing it.
    assert_eq!(h.variant(), Some(Variant::Main));
    Some(h)
}

/// Both builds of the program: the one for kernels ≥ 5.18 and the 5.15–5.17 one.
fn harnesses(cfg: &RuntimeConfig) -> Vec<(Variant, Harness)> {
    if testrun::skip() {
        return Vec::new();
    }
    [Variant::Main, Variant::Compat]
        .into_iter()
        .map(|v| {
            let h = Harness::with_variant(cfg, Some(v)).expect("load the XDP object");
            assert_eq!(h.variant(), Some(v));
            (v, h)
        })
        .collect()
}

#[test]
fn every_kind_is_classified_counted_and_sampled() {
    for (variant, mut h) in harnesses(&sample_all()) {
        eprintln!("program build {variant:?}");
        every_kind_on(&mut h);
    }
}

fn every_kind_on(h: &mut Harness) {
    let frames = every_kind();
    for (kind, f) in &frames {
        let Outcome::Counted(p) = reference::parse(f) else {
            panic!("reference rejects {kind:?}")
        };
        assert_eq!(p.kind, *kind);
    }
    let before = h.counters().expect("counters");
    let just_frames: Vec<Vec<u8>> = frames.iter().map(|(_, f)| f.clone()).collect();
    assert_matches_reference(h, &just_frames, 256);
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

#[test]
fn differential_fuzz_kernel_equals_reference() {
    for (variant, mut h) in harnesses(&sample_all()) {
        // The compat build differs only in how it copies bytes: a fifth of the frames suffices.
        let total = if variant == Variant::Main {
            100_000
        } else {
            20_000
        };
        eprintln!("program build {variant:?}");
        let seed: u64 = std::env::var("SCANSCOPE_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5ca9_5c09e);
        let total: usize = std::env::var("SCANSCOPE_FUZZ_FRAMES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(total);
        eprintln!("differential fuzz: {total} frames, seed {seed}");
        let c = differential_fuzz(&mut h, seed, total).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "differential fuzz: {} frames agreed ({} classified, {} rejected)",
            c.frames,
            c.classified,
            c.frames - c.classified
        );
        assert_eq!(c.frames, total);
        // The generator must exercise both sides meaningfully.
        assert!(
            c.classified > total / 3 && c.classified < total,
            "classified {} of {total}",
            c.classified
        );
    }
}
