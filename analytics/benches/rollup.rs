//! `cargo xtask bench rollup`: a generated day of `flows` (default 100 000 000 rows, 30 sensors,
//! 1 000 000 sources) written by the lake stage, then:
//! * the rollup (`scanscope-collector rollup`, a child process): wall time and peak memory;
//! * the baseline side by side: DuckDB computing the same per-source aggregate (packets, distinct
//!   targets, ports and sensors per source) over the same files;
//! * DuckDB's time for the users' question "top ports by distinct sources" over the raw day,
//!   and over `port_daily`.
//!
//! Environment: `SCANSCOPE_BENCH_ROWS` (default 100 000 000), `SCANSCOPE_BENCH_SOURCES`
//! (default 1 000 000), `SCANSCOPE_BENCH_DIR` (default `target/bench-rollup`; the generated day
//! is kept there and reused while rows and sources match), `SCANSCOPE_COLLECTOR_BIN`.
use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, bail};
use rand::Rng;
use scanscope_ingest::sink::Rows;
use scanscope_lake::Lake;
use scanscope_proto::v1::{Batch, Counter, SensorStats};
use scanscope_testkit::synthetic::Traffic;

const DAY: &str = "2026-01-15";
const SENSORS: u32 = 30;
const CHUNK: usize = 2_000_000;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

/// Writes the day in segments of 2 M rows. Sources are skewed (a few sources send most rows,
/// as scanners do); ports 60 % from the usual targets; 85 % SYN, 10 % UDP, 3 % ICMP echo, 2 %
/// SYN-ACK backscatter.
fn generate(root: &Path, total: usize, sources: usize) -> anyhow::Result<()> {
    let lake = Lake::local(root)?;
    let mut traffic = Traffic::new(11);
    let t0 = chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d")?
        .and_hms_opt(0, 0, 0)
        .context("midnight")?
        .and_utc()
        .timestamp_micros();
    let mut made = 0;
    let mut seg = 1;
    while made < total {
        let n = CHUNK.min(total - made);
        let mut per_sensor: Vec<Batch> = (0..SENSORS)
            .map(|s| Batch {
                sensor_id: format!("sensor-{s:02}"),
                stats: vec![SensorStats {
                    interval_start_us: t0,
                    interval_secs: 60.0,
                    counters: vec![Counter {
                        name: "dropped".into(),
                        value: 0,
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        for i in 0..n {
            let rng = &mut traffic.rng;
            let x: f64 = rng.random();
            let src = ((x * x * x) * sources as f64) as u32;
            let sensor = rng.random_range(0..SENSORS);
            let dst_ip = vec![100, 64 + sensor as u8, rng.random_range(0..4), rng.random()];
            let packets = 1 + u64::from(rng.random_range(0..8u8) == 0) * 3;
            let ts = t0 + ((made + i) as i64 * 86_400_000_000 / total as i64);
            let src_ip = (0x2d00_0000u32.wrapping_add(src.wrapping_mul(2_654_435_761) >> 2))
                .to_be_bytes()
                .to_vec();
            per_sensor[sensor as usize].flows.push(traffic.flow(
                src_ip,
                dst_ip,
                ts - ts % 60_000_000,
                ts,
                ts,
                packets,
                44,
            ));
        }
        let mut rows = Rows::default();
        for b in &per_sensor {
            rows.push(b);
        }
        rows.write_segment(&lake, seg)?;
        made += n;
        seg += 1;
        eprint!("\r  generated {made} / {total} rows");
    }
    eprintln!();
    Ok(())
}

fn collector_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SCANSCOPE_COLLECTOR_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("scanscope-collector"))
        .find(|c| c.is_file())
        .context("scanscope-collector not built (cargo build --release -p scanscope-collector)")
}

/// Runs a command; wall seconds and peak RSS (MiB) of the child.
fn measure(cmd: &mut Command) -> anyhow::Result<(f64, f64, String)> {
    let t = Instant::now();
    let child = cmd.stdout(std::process::Stdio::piped()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data written by wait4.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut out = child.stdout.context("stdout")?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut out, &mut text)?;
    // SAFETY: waiting for our own child with valid out-pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if rc < 0 {
        bail!("wait4 failed");
    }
    let st = std::process::ExitStatus::from_raw(status);
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok((
        t.elapsed().as_secs_f64(),
        ru.ru_maxrss as f64 / 1024.0,
        text,
    ))
}

fn duckdb(sql: &str) -> anyhow::Result<(f64, f64, String)> {
    let script = format!(
        "import duckdb, time, json\ncon = duckdb.connect()\ncon.execute('SET enable_progress_bar = false')\nt = time.time()\ncon.execute('CREATE TABLE r AS ' + {sql:?})\nsecs = time.time() - t\nn = con.execute('SELECT count(*) FROM r').fetchone()[0]\nprint(json.dumps({{'secs': secs, 'rows': n}}))\n"
    );
    measure(Command::new("python3").arg("-c").arg(script))
}

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("rollup benchmark: run it with `cargo xtask bench rollup`");
        return Ok(());
    }
    let total = env_usize("SCANSCOPE_BENCH_ROWS", 100_000_000);
    let sources = env_usize("SCANSCOPE_BENCH_SOURCES", 1_000_000);
    let root = std::env::var_os("SCANSCOPE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-rollup"));
    let manifest = root.join("bench.json");
    let want = format!("{{\"rows\":{total},\"sources\":{sources},\"day\":\"{DAY}\"}}");
    if std::fs::read_to_string(&manifest).ok().as_deref() != Some(want.as_str()) {
        std::fs::remove_dir_all(&root).ok();
        std::fs::create_dir_all(&root)?;
        eprintln!(
            "generating {total} flows rows, {SENSORS} sensors, ≤ {sources} sources in {}",
            root.display()
        );
        let t = Instant::now();
        generate(&root, total, sources)?;
        eprintln!("  generated in {:.1} s", t.elapsed().as_secs_f64());
        std::fs::write(&manifest, &want)?;
    } else {
        eprintln!("reusing the generated day in {}", root.display());
    }
    let files = format!("{}/flows/date={DAY}/*.parquet", root.display());
    let bytes: u64 = std::fs::read_dir(root.join(format!("flows/date={DAY}")))?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();

    let bin = collector_bin()?;
    let (secs, rss, out) = measure(
        Command::new(&bin)
            .args(["rollup", "--data"])
            .arg(&root)
            .args(["--date", DAY, "--json"])
            .env("RUST_LOG", "warn"),
    )?;
    let summary: serde_json::Value = serde_json::from_str(&out)?;
    let (b_secs, b_rss, _) = duckdb(&format!(
        "SELECT src_ip, sum(packets), count(DISTINCT dst_ip), count(DISTINCT (proto, dst_port)), count(DISTINCT sensor), min(first_seen), max(last_seen) FROM read_parquet('{files}') GROUP BY src_ip"
    ))?;
    let (q_secs, _, q_out) = duckdb(&format!(
        "SELECT proto, dst_port, count(DISTINCT src_ip) AS s FROM read_parquet('{files}') WHERE kind IN ('tcp_syn','udp') GROUP BY ALL ORDER BY s DESC LIMIT 10"
    ))?;
    let q: serde_json::Value = serde_json::from_str(&q_out)?;
    let (p_secs, _, p_out) = duckdb(&format!(
        "SELECT proto, port, sources FROM read_parquet('{}/port_daily/date={DAY}/*.parquet') ORDER BY sources DESC LIMIT 10",
        root.display()
    ))?;
    let p: serde_json::Value = serde_json::from_str(&p_out)?;

    println!(
        "\nrollup benchmark: {total} flows rows ({:.2} GiB Parquet), {SENSORS} sensors, {} sources, {} scanners",
        bytes as f64 / (1u64 << 30) as f64,
        summary["sources"],
        summary["scanners"]
    );
    println!("| | scanscope rollup | DuckDB per-source aggregate (baseline) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| wall time, s | {secs:.1} | {b_secs:.1} | {:.2} |",
        secs / b_secs
    );
    println!(
        "| peak memory, MiB | {rss:.0} | {b_rss:.0} | {:.2} |",
        rss / b_rss
    );
    println!(
        "| rows/s | {:.0} | {:.0} | |",
        total as f64 / secs,
        total as f64 / b_secs
    );
    println!("goals: rollup ≤ 60 s within 4096 MiB");
    println!(
        "DuckDB top ports by distinct sources: raw day {:.2} s (query only {:.2} s), port_daily {:.3} s (query only {:.3} s); goal ≤ 1 s",
        q_secs,
        q["secs"].as_f64().unwrap_or(0.0),
        p_secs,
        p["secs"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}
