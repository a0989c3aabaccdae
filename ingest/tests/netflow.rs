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

/// What a receiver's batches hold, without the times they were made at: per sensor, its
/// flows in order (times taken from receipt, after `since_us`, as 0), lost rows (stage,
/// unit, count, detail) and counters.
type Contents = BTreeMap<
    String,
    (
        Vec<v1::Flow>,
        Vec<(i32, String, u64, String)>,
        BTreeMap<String, u64>,
    ),
>;

fn contents(batches: &[v1::Batch], since_us: i64) -> Contents {
    let mut out = Contents::new();
    for b in batches {
        let (flows, lost, counters) = out.entry(b.sensor_id.clone()).or_default();
        flows.extend(b.flows.iter().map(|f| {
            let mut f = f.clone();
            if f.first_seen_us >= since_us {
                (f.interval_start_us, f.first_seen_us, f.last_seen_us) = (0, 0, 0);
            }
            f
        }));
        lost.extend(
            b.lost
                .iter()
                .map(|l| (l.stage, l.unit.clone(), l.count, l.detail.clone())),
        );
        for c in b.stats.iter().flat_map(|s| &s.counters) {
            *counters.entry(c.name.clone()).or_default() += c.value;
        }
    }
    out
}

/// Random v9 and IPFIX exports: templates of random elements (those the decoder reads at
/// usual and unusual lengths, others, enterprise ones), data records of random bytes, and
/// now and then data before its template, a template replaced, withdrawn or taken over by
/// an options template.
mod export {
    use rand::{Rng, rngs::StdRng, seq::SliceRandom};

    /// Elements the decoder reads, and some it skips (95: applicationId).
    const READ: [u16; 27] = [
        1, 2, 4, 6, 7, 8, 11, 12, 21, 22, 23, 24, 27, 28, 32, 34, 50, 85, 86, 139, 150, 151, 152,
        153, 160, 305, 306,
    ];
    const OTHER: [u16; 10] = [3, 5, 10, 14, 61, 95, 136, 148, 200, 5000];

    pub(super) struct Field {
        pub(super) number: u16,
        pub(super) len: u16,
        pub(super) enterprise: Option<u32>,
    }

    pub(super) fn template(rng: &mut StdRng, ipfix: bool) -> Vec<Field> {
        let mut out = Vec::new();
        // Most templates have what a flow needs, at the usual lengths.
        let v6 = rng.random_bool(0.3);
        let addr = if v6 { 16 } else { 4 };
        let uptime = [(22, 4), (21, 4)];
        let core = [
            (if v6 { 27 } else { 8 }, addr),
            (if v6 { 28 } else { 12 }, addr),
            (4, 1),
            (2, [4, 8][rng.random_range(0..2)]),
            (11, 2),
            (6, 1),
            uptime[0],
            uptime[1],
        ];
        for (number, len) in core {
            if rng.random_bool(0.92) {
                out.push(Field {
                    number,
                    len,
                    enterprise: None,
                });
            }
        }
        for _ in 0..rng.random_range(0..5) {
            let number = if rng.random_bool(0.5) {
                READ[rng.random_range(0..READ.len())]
            } else {
                OTHER[rng.random_range(0..OTHER.len())]
            };
            let len = match rng.random_range(0..60) {
                0 => 0,
                1 => 3,
                2 => 5,
                3 => 16,
                4 => 65535,
                5..=19 => 1,
                20..=34 => 2,
                35..=49 => 4,
                _ => 8,
            };
            let enterprise = (ipfix && rng.random_bool(0.1))
                .then(|| [9, 29305, 6871, 12345][rng.random_range(0..4)]);
            out.push(Field {
                number,
                len,
                enterprise,
            });
        }
        out.shuffle(rng);
        out
    }

    pub(super) fn record_len(t: &[Field]) -> usize {
        t.iter()
            .map(|f| {
                if f.len == 65535 {
                    1
                } else {
                    usize::from(f.len)
                }
            })
            .sum()
    }

    pub(super) fn template_set(ipfix: bool, templates: &[(u16, &[Field])]) -> (u16, Vec<u8>) {
        let mut b = Vec::new();
        for (id, fields) in templates {
            b.extend(id.to_be_bytes());
            b.extend((fields.len() as u16).to_be_bytes());
            for f in *fields {
                let n = f.number | if f.enterprise.is_some() { 0x8000 } else { 0 };
                b.extend(n.to_be_bytes());
                b.extend(f.len.to_be_bytes());
                if let Some(e) = f.enterprise {
                    b.extend(e.to_be_bytes());
                }
            }
        }
        (if ipfix { 2 } else { 0 }, b)
    }

    /// An options template of one scope field and one option field for `id`.
    pub(super) fn options_set(ipfix: bool, id: u16) -> (u16, Vec<u8>) {
        let mut b = id.to_be_bytes().to_vec();
        if ipfix {
            // Two fields, one of them scope: observationDomainId (149), samplingInterval.
            b.extend([0, 2, 0, 1, 0, 149, 0, 4, 0, 34, 0, 4]);
            (3, b)
        } else {
            // Scope: system (1), 4 bytes; option: samplingInterval (34), 4 bytes.
            b.extend([0, 4, 0, 4, 0, 1, 0, 4, 0, 34, 0, 4]);
            (1, b)
        }
    }

    /// A withdrawal of template `id` (IPFIX).
    pub(super) fn withdrawal(id: u16) -> (u16, Vec<u8>) {
        let mut b = id.to_be_bytes().to_vec();
        b.extend([0, 0]);
        (2, b)
    }

    pub(super) fn data_set(
        rng: &mut StdRng,
        id: u16,
        len: usize,
        records: usize,
    ) -> (u16, Vec<u8>) {
        let mut b: Vec<u8> = (0..len * records).map(|_| rng.random()).collect();
        // Padding now and then.
        b.extend(std::iter::repeat_n(
            0,
            rng.random_range(0..4) * usize::from(rng.random_bool(0.2)),
        ));
        (id, b)
    }

    pub(super) fn message(ipfix: bool, seq: u32, domain: u32, sets: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = Vec::new();
        let body: usize = sets.iter().map(|(_, b)| 4 + b.len()).sum();
        let export_s: u32 = 1_700_000_000;
        if ipfix {
            m.extend([0, 10]);
            m.extend(((16 + body) as u16).to_be_bytes());
            m.extend(export_s.to_be_bytes());
            m.extend(seq.to_be_bytes());
            m.extend(domain.to_be_bytes());
        } else {
            m.extend([0, 9]);
            m.extend((sets.len() as u16).to_be_bytes());
            m.extend(3_000_000_000u32.to_be_bytes());
            m.extend(export_s.to_be_bytes());
            m.extend(seq.to_be_bytes());
            m.extend(domain.to_be_bytes());
        }
        for (id, b) in sets {
            m.extend(id.to_be_bytes());
            m.extend(((4 + b.len()) as u16).to_be_bytes());
            m.extend(b);
        }
        m
    }
}

#[test]
fn the_fast_path_decodes_as_the_parser_does() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xfa57);
    let mut fast = receiver(NetflowOptions::default());
    let mut parser = receiver(NetflowOptions {
        parser_only: true,
        ..NetflowOptions::default()
    });
    let mut sent = 0u64;
    let since_us = chrono::Utc::now().timestamp_micros();
    let mut both = |from: SocketAddr, d: &[u8]| {
        fast.datagram(from, d);
        parser.datagram(from, d);
        sent += 1;
        // SCANSCOPE_TEST_EACH_DATAGRAM=1: compare after each datagram, to name the first
        // that differs.
        if std::env::var_os("SCANSCOPE_TEST_EACH_DATAGRAM").is_some() {
            let (a, b) = (
                contents(&fast.due(true), since_us),
                contents(&parser.due(true), since_us),
            );
            if a != b {
                panic!("datagram {sent} from {from}: {d:02x?}\nfast {a:?}\nparser {b:?}");
            }
        }
    };
    // Every capture, from an exporter of its own, twice (the second time on known templates).
    let names = [
        "v5",
        "v5_100",
        "v5_s100",
        "v9",
        "v9_100",
        "v9_s100",
        "ipfix",
        "ipfix_100",
        "ipfix_milli",
        "ipfix_s100",
        "handmade",
    ];
    for (i, name) in names.iter().enumerate() {
        let from = SocketAddr::from(([127, 0, 2, i as u8], 2055));
        for _ in 0..2 {
            for d in datagrams(name) {
                both(from, &d);
            }
        }
    }
    // Random exports from 8 exporters, some datagrams with bits flipped, cut or extended.
    for round in 0..1000u32 {
        let ipfix = round % 2 == 0;
        let from = SocketAddr::from(([127, 0, 3, (round % 8) as u8], 4739));
        let domain = rng.random_range(0..3);
        let ids: Vec<u16> = (0..rng.random_range(1..4)).map(|i| 256 + i).collect();
        let templates: Vec<Vec<export::Field>> = ids
            .iter()
            .map(|_| export::template(&mut rng, ipfix))
            .collect();
        let pairs: Vec<(u16, &[export::Field])> = ids
            .iter()
            .zip(&templates)
            .map(|(id, t)| (*id, t.as_slice()))
            .collect();
        let mut grams = vec![export::message(
            ipfix,
            round,
            domain,
            &[export::template_set(ipfix, &pairs)],
        )];
        for j in 0..rng.random_range(1..12u32) {
            let mut sets = Vec::new();
            for (id, t) in &pairs {
                let len = export::record_len(t).max(1);
                if rng.random_bool(0.7) {
                    let n = rng.random_range(0..(1200 / len).clamp(1, 40));
                    sets.push(export::data_set(&mut rng, *id, len, n));
                }
            }
            // Now and then a change: an options template over an id, a withdrawal, a
            // data set of an unknown id.
            match rng.random_range(0..30) {
                0 => sets.push(export::options_set(ipfix, ids[0])),
                1 if ipfix => sets.push(export::withdrawal(ids[0])),
                2 => sets.push(export::data_set(&mut rng, 999, 8, 3)),
                _ => {}
            }
            grams.push(export::message(ipfix, round * 100 + j, domain, &sets));
        }
        // Now and then the data first.
        if rng.random_bool(0.1) {
            grams.rotate_left(1);
        }
        // One datagram in six of templates mutated, one in ten of data.
        for (k, mut d) in grams.into_iter().enumerate() {
            let roll = if k == 0 {
                rng.random_range(0..18)
            } else {
                rng.random_range(0..30)
            };
            match roll {
                0 => {
                    for _ in 0..rng.random_range(1..4) {
                        let j = rng.random_range(0..d.len());
                        d[j] ^= 1 << rng.random_range(0..8);
                    }
                }
                1 => d.truncate(rng.random_range(0..d.len())),
                2 => d.extend((0..rng.random_range(1..9)).map(|_| rng.random::<u8>())),
                _ => {}
            }
            both(from, &d);
        }
    }
    let (f, p) = (
        contents(&fast.due(true), since_us),
        contents(&parser.due(true), since_us),
    );
    assert_eq!(f.keys().collect::<Vec<_>>(), p.keys().collect::<Vec<_>>());
    for (sensor, got) in &f {
        assert_eq!(got, &p[sensor], "sensor {sensor}");
    }
    let rows: usize = f.values().map(|(flows, _, _)| flows.len()).sum();
    assert!(rows > 10_000, "{rows} flows compared");
    // Both paths were taken, many times.
    assert_eq!(parser.fast_datagrams(), 0);
    assert!(
        fast.fast_datagrams() > sent / 5 && fast.fast_datagrams() < sent * 3 / 4,
        "{} of {sent} datagrams on the fast path",
        fast.fast_datagrams()
    );
}
