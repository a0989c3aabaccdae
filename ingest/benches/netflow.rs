//! `cargo xtask bench netflow`: IPFIX and v9 datagrams (softflowd's, from
//! `tests/data/netflow/`, replayed with rising sequence numbers) sent over loopback to an
//! in-process collector (`--netflow-listen`), as fast as it makes them durable: flows per
//! second into the WAL and CPU seconds per million flows (the sender's own CPU left out).
//! Beside it, in the same run: the collector again with every datagram decoded by the parser
//! (`--netflow-parser-only`, the path before the fast one), and nfdump's `nfcapd` receiving the
//! same datagrams at the rate the collector reached; its CPU per million flows and the flows it
//! stored are printed (its highest rate on one core is 1 / its CPU per flow).
//!
//! The flows come from `SCANSCOPE_BENCH_EXPORTERS` exporters of each protocol at once (default
//! 8, each from its own loopback address, 127.0.0.10 on), so that the collector's receivers (one socket
//! each, `SO_REUSEPORT`; `SCANSCOPE_BENCH_RECEIVERS`, default one per core) share them as the
//! kernel spreads the senders.
//!
//! Environment: `SCANSCOPE_BENCH_FLOWS` (flows per protocol, default 1 000 000).
use std::{
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use scanscope_ingest::{
    server::{self, ServeOptions},
    source::netflow::{BATCH_FLOWS, METRICS, NetflowOptions},
    validate::Limits,
};

/// Batches per exporter the sender keeps ahead of the flows made durable. Each exporter's
/// batch goes when it holds `BATCH_FLOWS` (or has waited half a second), so a smaller window
/// stalls the sender on batches still filling; three of them for 8 exporters (240 000 flows,
/// about 10 000 datagrams) stay well inside the listeners' receive buffers (32 MiB each), so
/// the benchmark measures the collector's rate, not the kernel's drops.
const WINDOW_BATCHES: u64 = 3;

fn cpu(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The name and CPU seconds (user + system) in a `/proc/.../stat` file; `None` if unreadable.
fn proc_cpu(stat: &Path) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(stat).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Some((stat[open + 1..close].to_string(), (t(11) + t(12)) / 100.0))
}

/// CPU seconds of this process's live threads, by thread name.
fn thread_cpu() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some((name, secs)) = proc_cpu(&t.path().join("stat")) {
            *out.entry(name).or_default() += secs;
        }
    }
    out
}

/// Limits that accept softflowd's captures (from 2023).
fn limits() -> Limits {
    Limits {
        max_age_us: i64::MAX / 4,
        ..Limits::default()
    }
}

fn fixture(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/netflow")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

/// A stream of `flows` flows: the capture's first datagram (templates, options, data), then
/// its data datagrams again and again, each with the sequence number the one before leads
/// to. `records[i]` is datagram i's data records.
struct Stream {
    datagrams: Vec<Vec<u8>>,
    flows: u64,
}

fn stream(name: &str, records: &[u32], ipfix: bool, flows: u64) -> Stream {
    let caps = fixture(name);
    let mut out = vec![caps[0].clone()];
    let mut sent = u64::from(records[0]);
    // IPFIX (RFC 7011): records before the message; v9: export packets.
    let mut seq: u32 = if ipfix { records[0] } else { 2 };
    let (at, step_by_records) = if ipfix { (8, true) } else { (12, false) };
    // The first datagram keeps its own number; IPFIX's first is rewritten to 0 so the stream
    // counts as RFC 7011 says.
    if ipfix {
        out[0][at..at + 4].copy_from_slice(&0u32.to_be_bytes());
    }
    'outer: loop {
        for (d, n) in caps.iter().zip(records).skip(1) {
            if sent >= flows {
                break 'outer;
            }
            let mut d = d.clone();
            d[at..at + 4].copy_from_slice(&seq.to_be_bytes());
            seq = seq.wrapping_add(if step_by_records { *n } else { 1 });
            sent += u64::from(*n);
            out.push(d);
        }
    }
    Stream {
        datagrams: out,
        flows: sent,
    }
}

/// Sends each stream of `from` from its socket to `to`, a datagram of each in turn (as
/// several exporters do at once), keeping at most `window` flows ahead of `done()`; or,
/// with `pace`, at that many flows per second in all.
fn send_from(
    from: &[(&Stream, UdpSocket)],
    records: &[u32],
    to: SocketAddr,
    window: u64,
    done: &dyn Fn() -> u64,
    pace: Option<f64>,
) -> Result<()> {
    let t0 = Instant::now();
    let mut sent = 0u64;
    let longest = from
        .iter()
        .map(|(s, _)| s.datagrams.len())
        .max()
        .unwrap_or(0);
    for i in 0..longest {
        let n = u64::from(if i == 0 {
            records[0]
        } else {
            records[1 + (i - 1) % (records.len() - 1)]
        });
        for (s, sock) in from {
            let Some(d) = s.datagrams.get(i) else {
                continue;
            };
            match pace {
                Some(rate) => {
                    let due = Duration::from_secs_f64(sent as f64 / rate);
                    while t0.elapsed() < due {
                        std::hint::spin_loop();
                    }
                }
                None => {
                    while sent.saturating_sub(done()) > window {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
            sock.send_to(d, to)?;
            sent += n;
        }
    }
    Ok(())
}

fn records_of(name: &str) -> Vec<u32> {
    let mut p = netflow_parser::AutoScopedParser::new();
    let from: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    fixture(name)
        .iter()
        .map(|d| {
            let r = p.parse_from_source(from, d);
            r.packets
                .iter()
                .filter_map(|p| scanscope_ingest::source::netflow::decode::decode(p, None))
                .map(|d| d.records)
                .sum()
        })
        .collect()
}

/// CPU seconds per million flows of the listener's stages without the socket and the store,
/// on one thread: the parser alone, then parse + decode + batch (`Receiver`), then that and
/// the batches' protobuf encoding.
fn stages(streams: &[&Stream]) -> Result<[f64; 3]> {
    use prost::Message;
    let from: SocketAddr = "127.0.0.1:9".parse()?;
    let flows: u64 = streams.iter().map(|s| s.flows).sum();
    let per_m = |secs: f64| secs / flows as f64 * 1e6;
    let c = cpu(libc::RUSAGE_THREAD);
    for s in streams {
        let mut p = netflow_parser::AutoScopedParser::new();
        for d in &s.datagrams {
            let parsed = std::hint::black_box(p.parse_from_source(from, d));
            drop(parsed);
        }
    }
    let parse = per_m(cpu(libc::RUSAGE_THREAD) - c);
    let mut out = [parse, 0.0, 0.0];
    for (i, encode) in [(1, false), (2, true)] {
        let opts = NetflowOptions {
            default_sampling: 1,
            ..NetflowOptions::default()
        };
        let c = cpu(libc::RUSAGE_THREAD);
        for s in streams {
            let mut rx = scanscope_ingest::source::netflow::Receiver::new(opts.clone(), limits())?;
            for d in &s.datagrams {
                rx.datagram(from, d);
                if rx.full() {
                    for b in rx.due(false) {
                        if encode {
                            std::hint::black_box(b.encode_to_vec());
                        }
                    }
                }
            }
            std::hint::black_box(rx.due(true));
        }
        out[i] = per_m(cpu(libc::RUSAGE_THREAD) - c);
    }
    Ok(out)
}

fn nfcapd(streams: &[(&Stream, &[u32])], rate: f64, dir: &Path) -> Result<(f64, u64)> {
    std::fs::create_dir_all(dir)?;
    let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = scanscope_testkit::netflow::nfcapd(port, dir, Some(32 << 20))
        .context("nfcapd (apt-get install nfdump)")?;
    std::thread::sleep(Duration::from_millis(500));
    let ticks =
        |pid: u32| proc_cpu(Path::new(&format!("/proc/{pid}/stat"))).map_or(0.0, |(_, secs)| secs);
    let c0 = ticks(child.id());
    let to: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for (s, r) in streams {
        send_from(
            &[(s, UdpSocket::bind("127.0.0.1:0")?)],
            r,
            to,
            0,
            &|| 0,
            Some(rate),
        )?;
    }
    std::thread::sleep(Duration::from_millis(1000));
    let used = ticks(child.id()) - c0;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait()?;
    let out = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(["-q", "-N", "-o", "fmt:%pr"])
        .output()?;
    Ok((
        used,
        String::from_utf8_lossy(&out.stdout).lines().count() as u64,
    ))
}

/// What one run of the collector measured.
struct Run {
    total: u64,
    rate: f64,
    /// CPU seconds of the collector (the sender's left out).
    cpu: f64,
    by_thread: Vec<String>,
    receivers: usize,
}

/// Runs an in-process collector (`parser_only`: every datagram to the parser) and sends it
/// each stream from `exporters` exporters, keeping [`WINDOW_BATCHES`] batches per exporter
/// ahead of the flows made durable.
fn collector(
    root: &Path,
    parser_only: bool,
    exporters: usize,
    streams: &[(&Stream, &[u32]); 2],
) -> Result<Run> {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let lake = root.join(if parser_only { "lake-parser" } else { "lake" });
    let rt = tokio::runtime::Runtime::new()?;
    let nf_port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut opts = ServeOptions::new("127.0.0.1:0".parse()?, lake);
    opts.netflow = NetflowOptions {
        listen: vec![format!("127.0.0.1:{nf_port}").parse()?],
        default_sampling: 1,
        receivers: env("SCANSCOPE_BENCH_RECEIVERS", 0),
        parser_only,
        ..NetflowOptions::default()
    };
    let receivers = opts.netflow.receivers();
    // Into the WAL: the Parquet write comes after the run (`bench ingest` measures it).
    opts.flush_rows = usize::MAX;
    opts.flush_bytes = u64::MAX;
    opts.limits = limits();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        let listener = server::bind(opts.listen).await?;
        server::serve(opts, listener, async {
            let _sender_gone = stopped.await.is_err();
        })
        .await
    });
    std::thread::sleep(Duration::from_millis(500));
    let to: SocketAddr = format!("127.0.0.1:{nf_port}").parse()?;
    let total: u64 = streams.iter().map(|(s, _)| s.flows).sum::<u64>() * exporters as u64;
    let window = WINDOW_BATCHES * exporters as u64 * BATCH_FLOWS as u64;
    let d0 = METRICS.durable_flows.get();
    let threads0 = thread_cpu();
    let (c0, t0) = (cpu(libc::RUSAGE_SELF), Instant::now());
    let sender = std::thread::scope(|s| {
        s.spawn(|| -> Result<f64> {
            let c = cpu(libc::RUSAGE_THREAD);
            // Each stream's window counts from the flows made durable before it.
            let mut before = d0;
            // IPFIX exporters from 127.0.0.10 on, v9 ones from 127.0.0.(10 + exporters) on.
            for (first, (st, r)) in [10, 10 + exporters].into_iter().zip(streams) {
                let from = (0..exporters)
                    .map(|k| {
                        let a = std::net::Ipv4Addr::new(127, 0, 0, (first + k) as u8);
                        Ok((*st, UdpSocket::bind((a, 0))?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let durable = || METRICS.durable_flows.get().saturating_sub(before);
                send_from(&from, r, to, window, &durable, None)?;
                before += st.flows * exporters as u64;
            }
            Ok(cpu(libc::RUSAGE_THREAD) - c)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))?
    })?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while METRICS.durable_flows.get() - d0 < total {
        if Instant::now() > deadline {
            bail!(
                "only {} of {total} flows made durable in time",
                METRICS.durable_flows.get() - d0
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = t0.elapsed().as_secs_f64();
    let ours_cpu = cpu(libc::RUSAGE_SELF) - c0 - sender;
    let by_thread: Vec<String> = thread_cpu()
        .into_iter()
        .map(|(name, c)| {
            (
                name.clone(),
                c - threads0.get(&name).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, c)| *c > 0.0)
        .map(|(name, c)| format!("{name} {:.2}", c / total as f64 * 1e6))
        .collect();
    let _server_gone = stop.send(()).is_err();
    rt.block_on(server)??;
    Ok(Run {
        total,
        rate: total as f64 / secs,
        cpu: ours_cpu,
        by_thread,
        receivers,
    })
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("netflow benchmark: run it with `cargo xtask bench netflow`");
        return Ok(());
    }
    let flows: u64 = std::env::var("SCANSCOPE_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    scanscope_telemetry::init_logging();
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let exporters = env("SCANSCOPE_BENCH_EXPORTERS", 8).clamp(1, 120);
    let (ri, rv) = (records_of("ipfix_100"), records_of("v9_100"));
    let ipfix = stream("ipfix_100", &ri, true, flows);
    let v9 = stream("v9_100", &rv, false, flows);
    // Each exporter's share, numbered as its own stream.
    let share = flows.div_ceil(exporters as u64);
    let (ipfix_each, v9_each) = (
        stream("ipfix_100", &ri, true, share),
        stream("v9_100", &rv, false, share),
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-netflow");
    let _fresh = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;

    let fast = collector(
        &root,
        false,
        exporters,
        &[(&ipfix_each, &ri), (&v9_each, &rv)],
    )?;
    let parser = collector(
        &root,
        true,
        exporters,
        &[(&ipfix_each, &ri), (&v9_each, &rv)],
    )?;
    let (total, rate, receivers) = (fast.total, fast.rate, fast.receivers);
    let (their_cpu, stored) = nfcapd(&[(&ipfix, &ri), (&v9, &rv)], rate, &root.join("nfcapd"))?;
    let [parse, batch, encode] = stages(&[&ipfix, &v9])?;
    println!(
        "\nnetflow benchmark: {} IPFIX + {} v9 flows ({} datagrams) over loopback from {exporters} exporters to {receivers} receivers",
        ipfix_each.flows * exporters as u64,
        v9_each.flows * exporters as u64,
        (ipfix_each.datagrams.len() + v9_each.datagrams.len()) * exporters
    );
    println!(
        "| receiver | flows/s | CPU s per million flows | flows stored | flows/s on one core (1 / CPU per flow) |"
    );
    println!("|---|---|---|---|---|");
    let per_m = |c: f64| c / total as f64 * 1e6;
    println!(
        "| scanscope (decoded, batched, in the fsynced WAL) | {rate:.0} | {:.2} | {total} | {:.0} |",
        per_m(fast.cpu),
        total as f64 / fast.cpu
    );
    println!(
        "| scanscope --netflow-parser-only (same run) | {:.0} | {:.2} | {} | {:.0} |",
        parser.rate,
        per_m(parser.cpu),
        parser.total,
        parser.total as f64 / parser.cpu
    );
    println!(
        "| nfcapd (same datagrams at the first rate) | {rate:.0} | {:.2} | {stored} | {:.0} |",
        per_m(their_cpu),
        total as f64 / their_cpu.max(1e-9)
    );
    println!(
        "\nCPU s per million flows by collector thread: {} (parser only: {})",
        fast.by_thread.join(", "),
        parser.by_thread.join(", ")
    );
    println!(
        "stages on one thread, no socket, no store (CPU s per million flows): netflow_parser alone {parse:.2}; parsed, decoded and batched {batch:.2}; and encoded {encode:.2}"
    );
    println!(
        "goal: ≥ 1 000 000 flows/s into the WAL and at least nfcapd's rate; fast path / parser only: rate {:.2}, CPU per flow {:.2}; CPU per flow scanscope / nfcapd: {:.2}",
        rate / parser.rate,
        fast.cpu / parser.cpu,
        fast.cpu / their_cpu.max(1e-9)
    );
    Ok(())
}
