//! `cargo xtask demo`: a throwaway multi-sensor lab (three sensor namespaces behind a router),
//! real scanners from distinct sources (one inside Censys' shipped range), the collector's
//! lake, its daily rollup with organisation lists, reverse DNS, a Tor list and an MMDB, and the
//! report. Cleans up after itself, also on failure.
use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};
use clap::Parser;
use scanscope_tests::{multilab::*, transport, unavailable_reason};

#[derive(Parser)]
struct Cli {
    /// Keep the lab's output (lake, logs) in this directory.
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
    let mut lab = MultiLab::new(&dir, 3)?;
    println!(
        "   router namespace {} (collector, dnsmasq), scanner namespace {}, sensors {}",
        lab.core,
        lab.scanner,
        lab.sensors.join(", ")
    );
    let lake = dir.join("lake");
    lab.start_collector(&lake)?;
    lab.start_agents(1.0)?;
    lab.start_dns(&[(M_ZMAP, ZMAP_PTR)])?;
    println!("   three sensors attached and streaming to the collector");
    println!(
        "   scanning: nmap from {M_NMAP}, masscan from {M_MASSCAN} (Censys range), zmap from {M_ZMAP},\n   Mirai-style hping3 from {M_MIRAI}, a spoofed SYN flood, SYN-ACK backscatter for {M_VICTIM}…"
    );
    lab.run_scenario()?;
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
    for extra in [vec![], vec!["--ip", M_MASSCAN], vec!["--ip", M_ZMAP]] {
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
    let ex = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/run_duckdb.py");
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
    Ok(())
}
