//! `cargo xtask demo`, in two parts, each in throwaway network namespaces removed afterwards
//! (also on failure):
//!
//! 1. One sensor and what it sees: nmap SYN, UDP and IPv6 scans, masscan, zmap, Mirai-style
//!    hping3, ICMP echo, and the sensor host's own connection, printed per source and kind with
//!    ports and the tools recognised.
//! 2. The observatory: three sensor namespaces behind a router, real scanners from distinct
//!    sources (one inside Censys' shipped range), the collector's lake, its daily rollup with
//!    organisation lists, reverse DNS, a Tor list and an MMDB, and the report. Sensor 1 also
//!    runs the responder on a few addresses: curl, an SSH key offer and hydra's SSH and FTP
//!    passwords show up in the report and in `report --ip` for their sources.
//! 3. The console over the lab's lake, until Ctrl-C (`--no-console` skips it).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use scanscope_tests::{
    Lab, console::ConsoleProc, counter_total, flows_by_source, kind_total, multilab::*,
    own_connection, run_standard_scans, standard_config, tools_by_source, transport,
    unavailable_reason,
};

#[derive(Parser)]
struct Cli {
    /// Keep the lab's output (lake, logs) in this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// End after the report instead of serving the console over the lab's lake.
    #[arg(long)]
    no_console: bool,
    /// Where the console listens (loopback; if the port is taken, any free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    console_listen: String,
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
    one_sensor(&dir.join("one-sensor"))?;

    println!("\n== 2. the observatory: three sensors, a collector, the daily rollup and report");
    let dir = dir.join("observatory");
    let mut lab = MultiLab::new(&dir, 3)?;
    lab.respond_on = Some(1);
    println!(
        "   router namespace {} (collector, dnsmasq), scanner namespace {}, sensors {}",
        lab.core,
        lab.scanner,
        lab.sensors.join(", ")
    );
    let lake = dir.join("lake");
    lab.start_collector(&lake)?;
    lab.start_agents(1.0)?;
    lab.start_dns(&[(M_ZMAP, ZMAP_PTR)], &[])?;
    println!("   three sensors attached and streaming to the collector");
    println!(
        "   scanning: nmap from {M_NMAP}, masscan from {M_MASSCAN} (Censys range), zmap from {M_ZMAP},\n   Mirai-style hping3 from {M_MIRAI}, a spoofed SYN flood, SYN-ACK backscatter for {M_VICTIM}…"
    );
    lab.run_scenario()?;
    println!(
        "   sensor s1 also answers on {RESPOND_PREFIX} (the responder): curl with an exploit URL and an\n   SSH key offer from {M_WEB}, hydra against SSH and FTP from {M_BRUTE}…"
    );
    lab.visit_responder()?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    lab.stop_agents()?;
    lab.collector.take().context("collector")?.stop()?;

    let date = MultiLab::lake_date(&lake)?;
    let tor = dir.join("exit-addresses");
    std::fs::write(&tor, format!("ExitAddress {M_NMAP} {date} 10:00:00\n"))?;
    let mmdb = dir.join("lab.mmdb");
    let have_mmdb = match MultiLab::write_mmdb(&mmdb) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("   (no MMDB: {e})");
            false
        }
    };
    let bin = transport::collector_binary().context("collector binary")?;
    let lake_s = lake.display().to_string();
    let mut args = vec![
        "rollup".to_string(),
        "--data".into(),
        lake_s.clone(),
        "--date".into(),
        date.clone(),
        "--tor-exit-list".into(),
        tor.display().to_string(),
        "--rdns-server".into(),
        format!("127.0.0.1:{DNS_PORT}"),
    ];
    if have_mmdb {
        args.extend(["--mmdb".into(), mmdb.display().to_string()]);
    }
    println!("\n== scanscope-collector {}", args.join(" "));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.in_core(&bin, &a)?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("rollup failed");
    }
    for extra in [
        vec![],
        vec!["--ip", M_MASSCAN],
        vec!["--ip", M_ZMAP],
        vec!["--ip", M_BRUTE],
        vec!["--ip", M_WEB],
    ] {
        let mut a = vec!["report", "--data", &lake_s, "--date", &date];
        a.extend(extra.iter());
        println!("\n== scanscope-collector {}", a.join(" "));
        let out = lab.in_core(&bin, &a)?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            bail!("report failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    println!("\n== the same questions straight from the lake with DuckDB (examples/run_duckdb.py)");
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/run_duckdb.py");
    let status = Command::new("python3")
        .arg(ex)
        .arg(&lake)
        .arg(&date)
        .status()?;
    if !status.success() {
        bail!("querying the lake failed");
    }
    drop(lab);
    println!("lab removed; lake kept in {}", lake.display());
    if cli.no_console {
        return Ok(());
    }
    let log = dir.join("console.log");
    let console = ConsoleProc::start(&lake, &cli.console_listen, &log)
        .or_else(|_| ConsoleProc::start(&lake, "127.0.0.1:0", &log))?;
    println!(
        "\n== 3. the console over the lab's lake: open {}",
        console.url
    );
    println!(
        "   try {}/search?q=scanner:true, {}/ip/{M_MASSCAN}, {}/port/tcp/23 — Ctrl-C stops it",
        console.url, console.url, console.url
    );
    // Ctrl-C reaches the console (same terminal) and ends it; the demo then ends normally.
    // SAFETY: setting a signal's disposition to "ignore" touches no memory of this process.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    console.wait()
}

/// Part 1: one sensor namespace, one scanner namespace, every scanner, and what the sensor saw.
fn one_sensor(dir: &Path) -> Result<()> {
    println!("\n== 1. one sensor and what it sees");
    let mut lab = Lab::new(dir)?;
    println!(
        "   sensor namespace {} ({}), scanner namespace {}",
        lab.sensor_ns, lab.sensor_if, lab.scanner_ns
    );
    lab.start_sensor(&standard_config(), 2.0)?;
    println!(
        "   sensor attached; firing nmap (SYN, UDP, IPv6), masscan, zmap, hping3 (Mirai-style, ICMP echo)…"
    );
    run_standard_scans(&lab)?;
    own_connection(&lab)?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let records = lab.stop_sensor()?;

    let tools = tools_by_source(&records);
    type PortCounts = BTreeMap<u16, u64>;
    let mut by_src: BTreeMap<String, Vec<(String, PortCounts)>> = BTreeMap::new();
    for ((src, kind), ports) in flows_by_source(&records) {
        by_src.entry(src).or_default().push((kind, ports));
    }
    println!(
        "\n{:<22} {:<11} {:>8} {:>6}  {:<26} tools",
        "source", "kind", "packets", "ports", "port list"
    );
    for (src, kinds) in &by_src {
        let t = tools
            .get(src)
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        for (kind, ports) in kinds {
            let packets: u64 = ports.values().sum();
            let mut list: Vec<String> = ports.keys().take(8).map(u16::to_string).collect();
            if ports.len() > 8 {
                list.push("…".into());
            }
            println!(
                "{src:<26} {kind:<11} {packets:>8} {:>6}  {:<26} {t}",
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
    drop(lab);
    println!(
        "lab removed; the sensor's JSON lines kept in {}",
        dir.display()
    );
    Ok(())
}
