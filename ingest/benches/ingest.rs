//! `cargo xtask bench ingest`: synthetic tuple counts and events pushed by the agent's uplink
//! (the library `scanscope-sensor` uses) to an in-process collector on loopback, written to
//! Parquet. Prints rows/s end to end, CPU seconds per million rows and bytes per row on disk per
//! table, next to a baseline run side by side: the same rows written straight to Parquet by the
//! lake stage (no gRPC, no WAL, no dedup).
//!
//! Environment: `SCANSCOPE_BENCH_ROWS` (flows rows, default 2 000 000),
//! `SCANSCOPE_BENCH_BATCH` (rows per batch, default 10 000), `SCANSCOPE_BENCH_KEEP` (a directory:
//! the baseline's lake is written there and kept, to look at its files).
use std::{path::Path, time::Instant};

use rand::Rng;
use scanscope_ingest::{
    server::{self, ServeOptions},
    sink::Rows,
};
use scanscope_lake::Lake;
use scanscope_proto::v1::{Batch, Event};
use scanscope_testkit::synthetic::Traffic;
use sensor_user::uplink::{Uplink, UplinkOptions};

fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF covers every thread of this process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A day-like mix (`scanscope_testkit::synthetic`): 50 000 sources, a sensor /24, mostly
/// single-packet tuples (first seen = last seen); one event per 20 flows with a 64-byte payload.
fn batches(total: usize, per: usize) -> Vec<Batch> {
    let mut traffic = Traffic::new(7);
    let t0 = chrono::Utc::now().timestamp_micros() - 3_600_000_000;
    let mut out = Vec::new();
    let mut made = 0;
    let mut n = 0i64;
    while made < total {
        let rows = per.min(total - made);
        let start = t0 + n * 60_000_000;
        n += 1;
        let mut b = Batch::default();
        for _ in 0..rows {
            let rng = &mut traffic.rng;
            let src: u32 = rng.random_range(0..50_000);
            let src_ip = (0x2d00_0000u32 + src * 97).to_be_bytes().to_vec();
            let dst_ip = vec![198, 18, 1, rng.random_range(0..=255)];
            let packets = if rng.random_bool(0.9) {
                1
            } else {
                rng.random_range(2..20)
            };
            let first = start + rng.random_range(0..60_000_000);
            // A tuple seen once was first and last seen at the same moment.
            let last = if packets == 1 {
                first
            } else {
                first + rng.random_range(0..1_000_000)
            };
            let f = traffic.flow(
                src_ip.clone(),
                dst_ip.clone(),
                start,
                first,
                last,
                packets,
                packets * 40,
            );
            let (kind, proto, port) = (f.kind, f.proto, f.dst_port);
            b.flows.push(f);
            let rng = &mut traffic.rng;
            if rng.random_range(0..20) == 0 {
                b.events.push(Event {
                    ts_us: first,
                    iface: "eth0".into(),
                    src_ip,
                    dst_ip,
                    src_port: rng.random_range(1024..65_536),
                    dst_port: port,
                    proto,
                    kind,
                    ttl: rng.random_range(30..255),
                    ip_id: rng.random_range(0..65_536),
                    ip_len: 44,
                    tcp_flags: 2,
                    tcp_seq: rng.random(),
                    tcp_window: 1024,
                    tcp_options: "M1460".into(),
                    tcp_options_raw: vec![2, 4, 5, 0xb4],
                    weight: 1,
                    payload: (0..64).map(|_| rng.random()).collect(),
                    payload_len: 64,
                    tools: vec!["masscan".into()],
                    initial_ttl: 255,
                    os_hint: "network-device".into(),
                    ..Default::default()
                });
            }
        }
        made += rows;
        out.push(b);
    }
    out
}

fn table_bytes(root: &Path, table: &str) -> u64 {
    let mut n = 0;
    if let Ok(days) = std::fs::read_dir(root.join(table)) {
        for d in days.flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                n += f.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    n
}

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("ingest benchmark: run it with `cargo xtask bench ingest`");
        return Ok(());
    }
    let total: usize = std::env::var("SCANSCOPE_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let per: usize = std::env::var("SCANSCOPE_BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let data = batches(total, per);
    let flows: usize = data.iter().map(|b| b.flows.len()).sum();
    let events: usize = data.iter().map(|b| b.events.len()).sum();
    let rows = flows + events;
    println!(
        "ingest bench: {flows} flows + {events} events in {} batches of {per}",
        data.len()
    );

    // Baseline: the lake stage alone.
    let base_tmp = tempfile::tempdir()?;
    let base_dir = std::env::var_os("SCANSCOPE_BENCH_KEEP")
        .map_or_else(|| base_tmp.path().to_path_buf(), std::path::PathBuf::from);
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let mut r = Rows::default();
    for b in &data {
        r.push(b);
    }
    r.write_segment(&Lake::local(&base_dir)?, 1)?;
    let base_secs = t.elapsed().as_secs_f64();
    let base_cpu = cpu_secs() - cpu0;

    // End to end: uplink → gRPC (zstd) → validate → WAL (fsync) → Parquet.
    let dir = tempfile::tempdir()?;
    let lake_dir = dir.path().join("lake");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (e2e_secs, e2e_cpu) = rt.block_on(async {
        let mut opts = ServeOptions::new("127.0.0.1:0".parse()?, lake_dir.clone());
        opts.flush_secs = 5.0;
        let listener = server::bind(opts.listen).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let srv = tokio::spawn(server::serve(opts, listener, async {
            stop_rx.await.ok();
        }));
        let cpu0 = cpu_secs();
        let t = Instant::now();
        let mut uo = UplinkOptions::new(vec![url], "bench".into(), dir.path().join("spool"));
        uo.max_mem_bytes = 1 << 30;
        let up = Uplink::start(uo)?;
        for b in data {
            up.push(b)?;
        }
        let (stats, left) = up.finish(std::time::Duration::from_secs(600)).await;
        anyhow::ensure!(left == 0, "not everything acknowledged: {stats:?}");
        stop_tx.send(()).ok();
        srv.await??; // final flush to Parquet
        anyhow::Ok((t.elapsed().as_secs_f64(), cpu_secs() - cpu0))
    })?;

    println!(
        "\n{:<34} {:>14} {:>14} {:>8}",
        "", "end to end", "lake only", "ratio"
    );
    println!(
        "{:<34} {:>14.0} {:>14.0} {:>8.2}",
        "rows/s",
        rows as f64 / e2e_secs,
        rows as f64 / base_secs,
        base_secs / e2e_secs
    );
    println!(
        "{:<34} {:>14.2} {:>14.2} {:>8.2}",
        "CPU seconds per million rows",
        e2e_cpu / rows as f64 * 1e6,
        base_cpu / rows as f64 * 1e6,
        e2e_cpu / base_cpu
    );
    for (table, n) in [("flows", flows), ("events", events)] {
        let e = table_bytes(&lake_dir, table) as f64 / n as f64;
        let b = table_bytes(&base_dir, table) as f64 / n as f64;
        println!(
            "{:<34} {:>14.2} {:>14.2} {:>8.2}",
            format!("bytes/row on disk: {table}"),
            e,
            b,
            e / b
        );
    }
    println!("\ngoals (issue 3): >= 1 000 000 rows/s end to end; <= 6 bytes per flows row");
    Ok(())
}
