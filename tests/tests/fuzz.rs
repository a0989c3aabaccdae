//! Fuzzing the network edge, bounded: a live collector on loopback gets mutated and random
//! `Batch` messages (each on its own gRPC stream) and connections of raw, random HTTP/2
//! frames, while a good sensor streams beside them. The collector must not crash, must stay
//! under a stated memory bound, and must store every row of the good sensor.
//!
//! `SCANSCOPE_FUZZ_BATCHES` (default 100 000) and `SCANSCOPE_FUZZ_FRAMES` (default 100 000)
//! set the number of cases; the seed is fixed (`SCANSCOPE_FUZZ_SEED` to vary it).
use std::{
    io::Write,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use prost::Message;
use rand::{Rng, SeedableRng, rngs::StdRng};
use scanscope_proto::{
    codec::BoundedDecoder,
    v1::{Ack, Counter, KindCount, Lost, SensorStats},
};
use scanscope_tests::transport::{CollectorProc, check_synthetic, synthetic_batch_with_events};
use sensor_user::uplink::{Uplink, UplinkOptions};
use tonic::{
    Status,
    codec::{BufferSettings, Codec, EncodeBuf, Encoder},
    transport::{Channel, Endpoint},
};

/// Most resident memory the collector may reach under the fuzz (VmHWM).
const MEMORY_BOUND_MIB: u64 = 1024;

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Sends raw bytes as gRPC messages (so malformed encodings reach the server as they are).
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Ack;
    type Encoder = RawEncoder;
    type Decoder = BoundedDecoder<Ack>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> BoundedDecoder<Ack> {
        BoundedDecoder::default()
    }
}

/// One message on one stream; the outcome does not matter (only that the server survives).
async fn send_raw(ch: Channel, msg: Vec<u8>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static("/scanscope.v1.Ingest/Stream");
    let req = tonic::Request::new(tokio_stream::iter([msg]));
    let mut s = grpc.streaming(req, path, RawCodec).await?.into_inner();
    while s.message().await?.is_some() {}
    Ok(())
}

/// Seed messages: valid batches of every record type.
fn seeds() -> Vec<Vec<u8>> {
    let mut b = synthetic_batch_with_events(7, 5, 3);
    b.sensor_id = "fuzz-seed".into();
    b.seq = 1;
    let mut with_stats = b.clone();
    with_stats.stats = vec![SensorStats {
        interval_start_us: chrono::Utc::now().timestamp_micros(),
        interval_secs: 1.0,
        kinds: vec![KindCount {
            kind: 1,
            packets: 3,
            bytes: 120,
        }],
        counters: vec![Counter {
            name: "dropped".into(),
            value: 1,
        }],
        ..Default::default()
    }];
    with_stats.lost = vec![Lost {
        ts_us: chrono::Utc::now().timestamp_micros(),
        stage: 1,
        unit: "events".into(),
        count: 2,
        detail: "x".into(),
    }];
    vec![b.encode_to_vec(), with_stats.encode_to_vec()]
}

/// A mutated or random message.
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut m = seeds[rng.random_range(0..seeds.len())].clone();
    match rng.random_range(0..7) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..m.len());
                m[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => m.truncate(rng.random_range(0..m.len())),
        2 => {
            let at = rng.random_range(0..m.len());
            let junk: Vec<u8> = (0..rng.random_range(1..32)).map(|_| rng.random()).collect();
            m.splice(at..at, junk);
        }
        3 => {
            // A repeated stretch (repeated fields, duplicated records).
            let a = rng.random_range(0..m.len());
            let b = rng.random_range(a..m.len().min(a + 200));
            let piece = m[a..b].to_vec();
            for _ in 0..rng.random_range(1..50) {
                m.extend_from_slice(&piece);
            }
        }
        4 => {
            // Empty elements: the decode-amplification shape, small.
            m = std::iter::repeat_n([0x2a, 0x00], rng.random_range(1..5000))
                .flatten()
                .collect();
        }
        5 => {
            // A huge length prefix.
            m = vec![0x2a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        }
        _ => {
            m = (0..rng.random_range(0..512))
                .map(|_| rng.random())
                .collect()
        }
    }
    m
}

/// A connection that sends the HTTP/2 preface and `frames` random frames.
fn raw_frames(addr: std::net::SocketAddr, rng: &mut StdRng, frames: usize) {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    s.set_write_timeout(Some(Duration::from_secs(2))).ok();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    for _ in 0..frames {
        let len: usize = if rng.random_bool(0.9) {
            rng.random_range(0..64)
        } else {
            rng.random_range(0..20_000)
        };
        let declared = if rng.random_bool(0.9) {
            len as u32
        } else {
            rng.random::<u32>() & 0x00ff_ffff
        };
        out.extend_from_slice(&declared.to_be_bytes()[1..]);
        out.push(rng.random_range(0..12)); // type (0–9 known, 10–11 unknown)
        out.push(rng.random());
        out.extend_from_slice(&(rng.random::<u32>() & 0x7fff_ffff).to_be_bytes());
        out.extend((0..len).map(|_| rng.random::<u8>()));
    }
    s.write_all(&out).ok();
}

fn vm_hwm_mib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_survives_a_fuzzed_network_edge() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "1"])?;
    let pid = c.pid().context("collector pid")?;
    let seed = env("SCANSCOPE_FUZZ_SEED", 0x5ca9);
    let (n_batches, n_frames) = (
        env("SCANSCOPE_FUZZ_BATCHES", 100_000),
        env("SCANSCOPE_FUZZ_FRAMES", 100_000),
    );

    // The good sensor, streaming through all of it.
    let mut o = UplinkOptions::new(vec![c.url()], "good-1".into(), dir.path().join("spool"));
    o.backoff_min = Duration::from_millis(100);
    o.backoff_max = Duration::from_secs(1);
    let up = Uplink::start(o)?;
    let good = tokio::spawn(async move {
        for i in 0..40 {
            up.push(synthetic_batch_with_events(i, 50, 5))?;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::Ok(up.finish(Duration::from_secs(60)).await)
    });

    // Review H1: 32 MB of 2-byte empty events would decode into ~4.8 GB of structs. Counted on
    // the wire and refused before decoding.
    let ch = Endpoint::from_shared(c.url())?.connect().await?;
    let bomb: Vec<u8> = std::iter::repeat_n([0x2a, 0x00], 16_000_000)
        .flatten()
        .collect();
    let e = send_raw(ch.clone(), bomb).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    let after_bomb = vm_hwm_mib(pid).context("collector memory")?;

    // Mutated and random batches, eight streams at a time on one connection.
    let started = Instant::now();
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = tokio::task::JoinSet::new();
    let (mut refused, mut accepted) = (0u64, 0u64);
    for _ in 0..n_batches {
        if set.len() >= 8
            && let Some(r) = set.join_next().await
        {
            match r? {
                Ok(()) => accepted += 1,
                Err(_) => refused += 1,
            }
        }
        set.spawn(send_raw(ch.clone(), mutate(&mut rng, &seeds)));
    }
    while let Some(r) = set.join_next().await {
        match r? {
            Ok(()) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    let batch_secs = started.elapsed().as_secs_f64();

    // Raw HTTP/2 frames: 20 per connection.
    let addr = c.addr;
    let mut frame_rng = StdRng::seed_from_u64(seed ^ 0xf4a3);
    let t = Instant::now();
    let conns = n_frames.div_ceil(20);
    tokio::task::spawn_blocking(move || {
        for _ in 0..conns {
            raw_frames(addr, &mut frame_rng, 20);
        }
    })
    .await?;
    let frame_secs = t.elapsed().as_secs_f64();

    let (stats, left) = good.await??;
    assert_eq!(
        (stats.acked, left),
        (40, 0),
        "the good sensor's batches: {stats:?}"
    );
    let hwm = vm_hwm_mib(pid).context("collector memory")?;
    eprintln!(
        "fuzz: {n_batches} batches ({accepted} answered, {refused} refused) in {batch_secs:.1} s; \
         {n_frames} raw HTTP/2 frames on {conns} connections in {frame_secs:.1} s; \
         collector peak memory {hwm} MiB ({after_bomb} MiB after the 32 MB bomb; bound {MEMORY_BOUND_MIB})"
    );
    assert!(
        refused > 0 && accepted > 0,
        "both kinds of outcome were exercised"
    );
    assert!(hwm <= MEMORY_BOUND_MIB, "collector used {hwm} MiB");
    c.stop()?;
    check_synthetic(&data, "good-1", 40, 50)?;
    Ok(())
}
