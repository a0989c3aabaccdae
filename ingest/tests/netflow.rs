//! The NetFlow source on real exports: datagrams softflowd 1.1.0 sent for small pcaps
//! (tests/data/netflow/README.md), decoded through `Receiver` as the listener does.
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use scanscope_ingest::{
    source::netflow::{
        Direction, MAX_EXPORTERS, NetflowOptions, REFUSED_SENSOR, Receiver, counters,
    },
    validate::Limits,
};
use scanscope_proto::v1::{self, LostStage};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/netflow")
        .join(name)
}

/// The datagrams of a capture, in the order softflowd sent them.
fn datagrams(name: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Limits that accept the captures' 2023 timestamps.
fn limits() -> Limits {
    Limits {
        max_age_us: i64::MAX / 4,
        ..Limits::default()
    }
}

fn receiver(opts: NetflowOptions) -> Receiver {
    Receiver::new(opts, limits()).unwrap()
}

const EXPORTER: &str = "127.0.0.1:9995";

fn feed(rx: &mut Receiver, from: &str, grams: &[Vec<u8>]) -> Vec<v1::Batch> {
    let from: SocketAddr = from.parse().unwrap();
    for g in grams {
        rx.datagram(from, g);
    }
    rx.due(true)
}

fn ip(b: &[u8]) -> IpAddr {
    match b.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(b).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(b).unwrap()),
    }
}

/// (src, dst, port, kind, flags) → (packets, bytes, first ms, last ms, rate)
type Flows = BTreeMap<(IpAddr, IpAddr, u32, i32, Option<u32>), (u64, u64, i64, i64, Option<u32>)>;

/// Flow rows in batches.
fn rows(batches: &[v1::Batch]) -> usize {
    batches.iter().map(|b| b.flows.len()).sum()
}

fn flows(batches: &[v1::Batch]) -> Flows {
    let mut out = Flows::new();
    for b in batches {
        for f in &b.flows {
            let prev = out.insert(
                (
                    ip(&f.src_ip),
                    ip(&f.dst_ip),
                    f.dst_port,
                    f.kind,
                    f.tcp_flags,
                ),
                (
                    f.packets,
                    f.bytes,
                    f.first_seen_us / 1000,
                    f.last_seen_us / 1000,
                    f.sampling_rate,
                ),
            );
            assert!(prev.is_none(), "one flow per tuple in these captures");
        }
    }
    out
}

fn counter(batches: &[v1::Batch], name: &str) -> u64 {
    batches
        .iter()
        .flat_map(|b| &b.stats)
        .flat_map(|s| &s.counters)
        .filter(|c| c.name == name)
        .map(|c| c.value)
        .sum()
}

fn lost(batches: &[v1::Batch], stage: LostStage) -> u64 {
    batches
        .iter()
        .flat_map(|b| &b.lost)
        .filter(|l| l.stage == stage as i32)
        .map(|l| l.count)
        .sum()
}

const BASE_MS: i64 = 1_700_000_000_000;

#[test]
fn each_version_gives_the_pcaps_flows() {
    let syn = v1::Kind::TcpSyn as i32;
    let udp = v1::Kind::Udp as i32;
    let a = |s: &str| s.parse::<IpAddr>().unwrap();
    for name in ["v5", "v9", "ipfix", "ipfix_milli"] {
        let mut rx = receiver(NetflowOptions::default());
        let batches = feed(&mut rx, EXPORTER, &datagrams(name));
        assert_eq!(batches.len(), 1, "{name}");
        let b = &batches[0];
        assert_eq!(b.sensor_id, "127.0.0.1", "{name}");
        assert_eq!(b.source, v1::Source::Netflow as i32);
        let got = flows(&batches);
        // softflowd's export, as its own log lists it (tests/data/netflow/README.md).
        let mut want = Flows::new();
        want.insert(
            (a("192.0.2.1"), a("198.51.100.2"), 80, syn, Some(2)),
            (3, 120, BASE_MS, BASE_MS + 2000, Some(1)),
        );
        want.insert(
            (a("192.0.2.3"), a("198.51.100.4"), 443, syn, Some(2)),
            (1, 40, BASE_MS + 250, BASE_MS + 250, Some(1)),
        );
        want.insert(
            (a("192.0.2.5"), a("198.51.100.6"), 53, udp, None),
            (2, 96, BASE_MS + 750, BASE_MS + 1750, Some(1)),
        );
        let v4: Flows = got
            .iter()
            .filter(|(k, _)| k.0.is_ipv4())
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(v4, want, "{name}");
        assert_eq!(counter(&batches, counters::FLOWS), got.len() as u64);
        assert_eq!(lost(&batches, LostStage::NetflowSequence), 0, "{name}");
        assert_eq!(lost(&batches, LostStage::NetflowMalformed), 0, "{name}");
    }
}

#[test]
fn sampling_rates_come_from_the_header_or_the_options() {
    for name in ["v5_s100", "v9_s100", "ipfix_s100"] {
        let mut rx = receiver(NetflowOptions::default());
        let batches = feed(&mut rx, EXPORTER, &datagrams(name));
        let got = flows(&batches);
        assert!(!got.is_empty(), "{name}");
        // 1000 SYNs to 10 ports, 1 in 100 kept: 10 packets in all, each flow rate 100.
        assert!(got.values().all(|v| v.4 == Some(100)), "{name}: {got:?}");
        assert_eq!(got.values().map(|v| v.0).sum::<u64>(), 10, "{name}");
        assert_eq!(counter(&batches, counters::DEFAULT_SAMPLING), 0, "{name}");
    }
    // Without a rate declared (v5 with sampling_interval 0), the configured default, counted.
    let opts = NetflowOptions {
        default_sampling: 7,
        ..NetflowOptions::default()
    };
    let mut rx = receiver(opts);
    let batches = feed(&mut rx, EXPORTER, &datagrams("v5"));
    let got = flows(&batches);
    assert!(got.values().all(|v| v.4 == Some(7)));
    assert_eq!(
        counter(&batches, counters::DEFAULT_SAMPLING),
        got.len() as u64
    );
}

#[test]
fn data_before_its_template_is_kept_and_gaps_are_counted() {
    for name in ["v9_100", "ipfix_100", "v5_100"] {
        let grams = datagrams(name);
        assert_eq!(grams.len(), 4, "{name}");
        // In order: 100 flows, no loss.
        let mut rx = receiver(NetflowOptions::default());
        let b = feed(&mut rx, EXPORTER, &grams);
        assert_eq!(rows(&b), 100, "{name}");
        assert_eq!(lost(&b, LostStage::NetflowSequence), 0, "{name}");
        // Reversed: the data waits for the template (v9, IPFIX); v5 has none to wait for.
        // Sequence numbers then go backwards, which is a restart, not a gap.
        let mut rx = receiver(NetflowOptions::default());
        let rev: Vec<Vec<u8>> = grams.iter().rev().cloned().collect();
        let b = feed(&mut rx, EXPORTER, &rev);
        assert_eq!(rows(&b), 100, "{name} reversed");
        // The third datagram dropped: exactly its flows (v5, IPFIX) or one datagram (v9)
        // are lost.
        let mut rx = receiver(NetflowOptions::default());
        let first = feed(&mut rx, EXPORTER, &grams[..2]);
        let kept = rows(&first);
        let rest = feed(&mut rx, EXPORTER, &grams[3..]);
        let missed = 100 - kept - rows(&rest);
        let want = if name == "v9_100" { 1 } else { missed as u64 };
        assert_eq!(lost(&rest, LostStage::NetflowSequence), want, "{name}");
        assert!(missed > 0);
    }
}

#[test]
fn direction_keeps_inbound_flows_and_counts_the_others() {
    let opts = NetflowOptions {
        local_nets: vec!["198.51.100.0/30".parse().unwrap()],
        direction: Direction::Inbound,
        names: vec![("127.0.0.1".parse().unwrap(), "edge-router".into())],
        ..NetflowOptions::default()
    };
    let mut rx = receiver(opts);
    let batches = feed(&mut rx, EXPORTER, &datagrams("v5"));
    assert_eq!(batches[0].sensor_id, "edge-router");
    let got = flows(&batches);
    // 198.51.100.2 is local; .4 and .6 are not: one inbound flow, two transit.
    assert_eq!(got.len(), 1);
    assert_eq!(counter(&batches, counters::INBOUND), 1);
    assert_eq!(counter(&batches, counters::TRANSIT), 2);
}

#[test]
fn malformed_datagrams_are_counted_and_good_ones_still_stored() {
    let mut rx = receiver(NetflowOptions::default());
    let good = datagrams("ipfix");
    let from: SocketAddr = EXPORTER.parse().unwrap();
    let bad: [&[u8]; 4] = [b"", &[0, 5], &[0, 9, 0, 1, 0, 0], &[0xde, 0xad, 0xbe, 0xef]];
    for b in bad {
        rx.datagram(from, b);
    }
    let mut truncated = good[0].clone();
    truncated.truncate(truncated.len() / 2);
    rx.datagram(from, &truncated);
    for g in &good {
        rx.datagram(from, g);
    }
    let batches = rx.due(true);
    assert_eq!(lost(&batches, LostStage::NetflowMalformed), 5);
    assert!(flows(&batches).len() >= 3);
}

#[test]
fn templates_are_scoped_per_exporter_and_replaced_mid_stream() {
    let mut rx = receiver(NetflowOptions::default());
    // Two exporters using the same template id (1024) with different layouts (uptime-relative
    // times, absolute milliseconds), datagrams interleaved.
    let (a, b) = (datagrams("ipfix"), datagrams("ipfix_milli"));
    let (ea, eb): (SocketAddr, SocketAddr) = (
        "127.0.0.2:4739".parse().unwrap(),
        "127.0.0.3:4739".parse().unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        rx.datagram(ea, x);
        rx.datagram(eb, y);
    }
    let batches = rx.due(true);
    let by = |s: &str| -> Vec<v1::Batch> {
        batches
            .iter()
            .filter(|b| b.sensor_id == s)
            .cloned()
            .collect()
    };
    let (fa, fb) = (flows(&by("127.0.0.2")), flows(&by("127.0.0.3")));
    assert_eq!(
        fa, fb,
        "both exporters' flows decode with their own template"
    );
    assert!(fa.len() >= 3);
    // One exporter whose template 1024 changes layout mid-stream: the later data decodes
    // with the new one.
    let mut rx = receiver(NetflowOptions::default());
    let both: Vec<Vec<u8>> = a.iter().chain(&b).cloned().collect();
    let batches = feed(&mut rx, EXPORTER, &both);
    assert_eq!(rows(&batches), 2 * fa.len());
    for f in batches.iter().flat_map(|b| &b.flows) {
        assert!(f.packets > 0 && f.first_seen_us >= BASE_MS * 1000);
        assert!(f.last_seen_us >= f.first_seen_us);
    }
    assert_eq!(lost(&batches, LostStage::NetflowMalformed), 0);
}

#[test]
fn a_fuzz_of_100_000_datagrams_is_counted_and_loses_no_good_flow() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ca0);
    let seeds: Vec<Vec<u8>> = ["v5", "v9", "ipfix", "v9_100", "ipfix_100", "handmade"]
        .iter()
        .flat_map(|n| datagrams(n))
        .collect();
    let good = datagrams("ipfix_100");
    let good_from: SocketAddr = "127.0.0.9:4739".parse().unwrap();
    let mut rx = receiver(NetflowOptions::default());
    const N: usize = 100_000;
    let mut fed = 0;
    for i in 0..N {
        let mut d = if i % 2 == 0 {
            let n = rng.random_range(0..1500);
            let mut d: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            // Most of them claim a version the parser knows.
            if d.len() >= 2 && rng.random_bool(0.75) {
                d[0] = 0;
                d[1] = [5, 7, 9, 10][rng.random_range(0..4)];
            }
            d
        } else {
            seeds[rng.random_range(0..seeds.len())].clone()
        };
        if i % 2 == 1 {
            match rng.random_range(0..3) {
                0 => {
                    for _ in 0..rng.random_range(1..8) {
                        let j = rng.random_range(0..d.len());
                        d[j] ^= 1 << rng.random_range(0..8);
                    }
                }
                1 => d.truncate(rng.random_range(0..d.len())),
                _ => d.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
            }
        }
        // From 64 fuzzing exporters, never the good one's address.
        let from = SocketAddr::from(([127, 0, 1, (i % 64) as u8], 2055));
        rx.datagram(from, &d);
        // The good exporter's datagrams in between.
        if i % 20_000 == 0 && fed < good.len() {
            rx.datagram(good_from, &good[fed]);
            fed += 1;
        }
    }
    let batches = rx.due(true);
    let good_rows: usize = batches
        .iter()
        .filter(|b| b.sensor_id == "127.0.0.9")
        .map(|b| b.flows.len())
        .sum();
    assert_eq!(fed, good.len());
    assert_eq!(good_rows, 100, "every flow of the good exporter");
    // Every fuzzed datagram is accounted for: decoded, or a malformed-datagram row.
    let fuzz: Vec<&v1::Batch> = batches
        .iter()
        .filter(|b| b.sensor_id != "127.0.0.9")
        .collect();
    let decoded: u64 = fuzz
        .iter()
        .flat_map(|b| &b.stats)
        .flat_map(|s| &s.counters)
        .filter(|c| c.name == counters::DATAGRAMS)
        .map(|c| c.value)
        .sum();
    let malformed: u64 = fuzz
        .iter()
        .flat_map(|b| &b.lost)
        .filter(|l| {
            l.stage == LostStage::NetflowMalformed as i32
                && l.unit == "datagrams"
                && l.detail != "trailing_bytes"
        })
        .map(|l| l.count)
        .sum();
    // Random observation domains make new exporters: past the limit they are refused, one
    // count for all of them, and the state kept stays bounded.
    let refused: u64 = batches
        .iter()
        .filter(|b| b.sensor_id == REFUSED_SENSOR)
        .flat_map(|b| &b.lost)
        .filter(|l| l.stage == LostStage::CollectorRejected as i32)
        .map(|l| l.count)
        .sum();
    assert_eq!(decoded + malformed + refused, N as u64);
    assert!(malformed > N as u64 / 4, "many are malformed: {malformed}");
    assert!(refused > 0, "random domains reach the exporter limit");
    let sensors: std::collections::BTreeSet<&str> =
        batches.iter().map(|b| b.sensor_id.as_str()).collect();
    assert!(
        sensors.len() <= MAX_EXPORTERS + 1,
        "{} sensors for at most {MAX_EXPORTERS} exporters and the refused count",
        sensors.len()
    );
}

/// Lost rows of the refused-datagrams sensor: (count, detail).
fn refused(batches: &[v1::Batch]) -> Vec<(u64, String)> {
    batches
        .iter()
        .filter(|b| b.sensor_id == REFUSED_SENSOR)
        .flat_map(|b| &b.lost)
        .map(|l| {
            assert_eq!(l.stage, LostStage::CollectorRejected as i32);
            assert_eq!(l.unit, "datagrams");
            (l.count, l.detail.clone())
        })
        .collect()
}

fn sensors_with_flows(batches: &[v1::Batch]) -> Vec<String> {
    let mut out: Vec<String> = batches
        .iter()
        .filter(|b| !b.flows.is_empty())
        .map(|b| b.sensor_id.clone())
        .collect();
    out.sort();
    out
}

#[test]
fn exporters_past_the_limit_are_refused_and_counted_once() {
    let v5 = datagrams("v5");
    let mut rx = receiver(NetflowOptions {
        max_exporters: 2,
        ..NetflowOptions::default()
    });
    for host in 1..=5u8 {
        rx.datagram(SocketAddr::from(([127, 0, 0, host], 2055)), &v5[0]);
    }
    // A known exporter still gets in at the limit.
    rx.datagram(SocketAddr::from(([127, 0, 0, 1], 2055)), &v5[0]);
    let batches = rx.due(true);
    assert_eq!(sensors_with_flows(&batches), ["127.0.0.1", "127.0.0.2"]);
    assert_eq!(
        refused(&batches),
        [(
            3,
            "exporter past --netflow-max-exporters (last from 127.0.0.5)".to_string()
        )]
    );
    assert_eq!(counter(&batches, counters::REFUSED), 3);

    // Observation domains count as exporters: one address cannot make unbounded state.
    let ipfix = datagrams("ipfix");
    let mut rx = receiver(NetflowOptions {
        max_exporters: 2,
        ..NetflowOptions::default()
    });
    let from: SocketAddr = EXPORTER.parse().unwrap();
    for domain in 1..=5u32 {
        let mut d = ipfix[0].clone();
        d[12..16].copy_from_slice(&domain.to_be_bytes());
        rx.datagram(from, &d);
    }
    let batches = rx.due(true);
    assert_eq!(sensors_with_flows(&batches), ["127.0.0.1-1", "127.0.0.1-2"]);
    assert_eq!(refused(&batches)[0].0, 3);
}

#[test]
fn named_only_takes_the_named_exporters_alone() {
    let v5 = datagrams("v5");
    let mut rx = receiver(NetflowOptions {
        named_only: true,
        names: vec![("127.0.0.3".parse().unwrap(), "edge".into())],
        ..NetflowOptions::default()
    });
    for host in 1..=5u8 {
        rx.datagram(SocketAddr::from(([127, 0, 0, host], 2055)), &v5[0]);
    }
    let batches = rx.due(true);
    assert_eq!(sensors_with_flows(&batches), ["edge"]);
    assert_eq!(
        refused(&batches),
        [(
            4,
            "exporter not named (--netflow-named-only) (last from 127.0.0.5)".to_string()
        )]
    );
}

/// A burst waiting on the socket is read one full batch at a time: a fast exporter never
/// makes a batch past the store's size limit (it once grew to 700 000 flows and was refused).
#[tokio::test]
async fn a_burst_is_read_one_full_batch_at_a_time() {
    let grams = datagrams("v5_100");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = socket.local_addr().unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for g in &grams {
        sender.send_to(g, to).unwrap();
    }
    let mut rx = receiver(NetflowOptions {
        batch_flows: 20,
        ..NetflowOptions::default()
    });
    let mut buf = vec![0u8; 65_535];
    let mut batches = Vec::new();
    socket.readable().await.unwrap();
    for i in 0..grams.len() {
        rx.drain(&socket, &mut buf);
        // softflowd's v5 datagrams hold 29 flows, then the last 13: each of the first three
        // fills a batch and stops the reading.
        assert_eq!(rx.full(), i < 3, "datagram {i}");
        let due = rx.due(true);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].flows.len(), if i < 3 { 29 } else { 13 }, "batch {i}");
        batches.extend(due);
    }
    assert_eq!(rows(&batches), 100);
}

/// Receivers of one listener share its limit of exporters: a sibling admits no more than the
/// room the others left.
#[test]
fn sibling_receivers_share_the_limit_of_exporters() {
    let v5 = datagrams("v5");
    let mut a = receiver(NetflowOptions {
        max_exporters: 2,
        ..NetflowOptions::default()
    });
    let mut b = a.sibling().unwrap();
    let from = |host: u8| SocketAddr::from(([127, 0, 0, host], 2055));
    a.datagram(from(1), &v5[0]);
    b.datagram(from(2), &v5[0]);
    b.datagram(from(3), &v5[0]);
    a.datagram(from(4), &v5[0]);
    // Known exporters still get in.
    a.datagram(from(1), &v5[0]);
    b.datagram(from(2), &v5[0]);
    let (da, db) = (a.due(true), b.due(true));
    assert_eq!(sensors_with_flows(&da), ["127.0.0.1"]);
    assert_eq!(sensors_with_flows(&db), ["127.0.0.2"]);
    assert_eq!(counter(&da, counters::REFUSED), 1);
    assert_eq!(counter(&db, counters::REFUSED), 1);
}

/// `--netflow-receivers 3`: three sockets on one port (port 0 becomes the first one's), and
/// every datagram of 24 senders reaches exactly one of them.
#[tokio::test]
async fn receivers_share_one_port_and_each_datagram_reaches_one() {
    let opts = NetflowOptions {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        local_nets: vec!["10.0.0.0/8".parse().unwrap()],
        receivers: 3,
        ..NetflowOptions::default()
    };
    let sockets = scanscope_ingest::source::netflow::bind(&opts)
        .await
        .unwrap();
    assert_eq!(sockets.len(), 3);
    let to = sockets[0].local_addr().unwrap();
    assert_ne!(to.port(), 0);
    assert!(sockets.iter().all(|s| s.local_addr().unwrap() == to));
    let senders: Vec<std::net::UdpSocket> = (0..24)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for (k, s) in senders.iter().enumerate() {
        s.send_to(&[k as u8], to).unwrap();
    }
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut buf = [0u8; 16];
    while got.len() < 24 && std::time::Instant::now() < deadline {
        for s in &sockets {
            while let Ok((n, from)) = s.try_recv_from(&mut buf) {
                assert_eq!(n, 1);
                got.push((buf[0], from));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    got.sort();
    let want: Vec<(u8, SocketAddr)> = senders
        .iter()
        .enumerate()
        .map(|(k, s)| (k as u8, s.local_addr().unwrap()))
        .collect();
    assert_eq!(got, want);
}
