//! `cargo xtask demo`: a throwaway namespace lab, the real sensor, real scanners, and a
//! summary of what the sensor saw. Cleans up after itself, also on failure.
use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Result, bail};
use clap::Parser;
use scanscope_tests::{transport, *};

#[derive(Parser)]
struct Cli {
    /// Keep the sensor's output (JSON lines, log) in this directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(r) = unavailable_reason() {
        bail!("the demo cannot run: {r}");
    }
    let dir = cli.out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("scanscope-demo-{}", std::process::id()))
    });
    println!("== scanscope demo: lab output in {}", dir.display());
    let mut lab = Lab::new(&dir)?;
    println!(
        "   sensor namespace {} ({}), scanner namespace {}",
        lab.sensor_ns, lab.sensor_if, lab.scanner_ns
    );
    let lake = dir.join("lake");
    let ns = lab.sensor_ns.clone();
    let mut collector = transport::CollectorProc::start_with_prefix(
        &["ip", "netns", "exec", &ns],
        "127.0.0.1:0",
        &lake,
        &["--flush-secs", "2"],
    )?;
    println!(
        "   collector listening on {} (lake: {})",
        collector.addr,
        lake.display()
    );
    lab.sensor_args = vec![
        "--collector".into(),
        collector.url(),
        "--spool-dir".into(),
        dir.join("spool").display().to_string(),
    ];
    lab.start_sensor(&standard_config(), 2.0)?;
    println!(
        "   sensor attached; firing nmap (SYN, UDP, IPv6), masscan, zmap, hping3 (Mirai-style, ICMP)…"
    );
    run_standard_scans(&lab)?;
    own_connection(&lab)?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let records = lab.stop_sensor()?;

    let flows = flows_by_source(&records);
    let tools = tools_by_source(&records);
    type PortCounts = BTreeMap<u16, u64>;
    let mut by_src: BTreeMap<String, Vec<(String, PortCounts)>> = BTreeMap::new();
    for ((src, kind), ports) in flows {
        by_src.entry(src).or_default().push((kind, ports));
    }
    println!(
        "\n{:<16} {:<11} {:>8} {:>6}  {:<24} tools",
        "source", "kind", "packets", "ports", "port list"
    );
    for (src, kinds) in &by_src {
        for (kind, ports) in kinds {
            let packets: u64 = ports.values().sum();
            let mut list: Vec<String> = ports.keys().take(8).map(|p| p.to_string()).collect();
            if ports.len() > 8 {
                list.push("…".into());
            }
            let t = tools
                .get(src)
                .map(|t| t.iter().cloned().collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            println!(
                "{src:<16} {kind:<11} {packets:>8} {:>6}  {:<24} {t}",
                ports.len(),
                list.join(",")
            );
        }
    }
    println!(
        "\nkernel counters: tcp_syn={} udp={} icmp_echo={} dropped={} excluded_cidr={} own_socket={} events={}",
        kind_total(&records, "tcp_syn"),
        kind_total(&records, "udp"),
        kind_total(&records, "icmp_echo"),
        counter_total(&records, "dropped"),
        counter_total(&records, "excluded_cidr"),
        counter_total(&records, "own_socket"),
        records.iter().filter(|r| r["type"] == "event").count(),
    );
    println!(
        "records: {} lines in {}",
        records.len(),
        dir.join("sensor.jsonl").display()
    );
    collector.stop()?;
    println!("\n== the lake, queried with DuckDB (tests/py/demo_report.py)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/demo_report.py");
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg(&lake)
        .status()?;
    if !status.success() {
        bail!("querying the lake failed");
    }
    drop(lab);
    println!("lab removed.");
    Ok(())
}
