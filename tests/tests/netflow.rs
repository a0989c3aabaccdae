//! NetFlow/IPFIX from a real exporter: the lab's real scanners (nmap, masscan, zmap, hping3) and
//! two connections (one from the sensor host out, one into a listener it runs) are captured
//! with tcpdump in the sensor namespace; softflowd reads the capture and exports v5, v9, IPFIX,
//! v9 sampled 1 in 100 and a lossy IPFIX stream to a relay on loopback, which forwards every
//! datagram to the collector (`--netflow-listen`) and to nfdump's `nfcapd`, the reference —
//! but skips some on the way to the collector for the lossy stream. The lake must hold what
//! nfdump holds, per (source, destination, port, flags): flows, packets and bytes.
//!
//! Network safety: the scanners run in the lab's namespaces against its addresses; softflowd,
//! the relay, nfcapd and the collector talk over the host's loopback only.
use std::{
    collections::BTreeMap,
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use scanscope_tests::{
    transport::{self, CollectorProc},
    *,
};

/// One export: its name (the exporter's sensor name), the relay's source address (the
/// exporter the collector sees), softflowd's arguments, and which datagrams the relay keeps
/// from the collector.
type Stream = (
    &'static str,
    &'static str,
    &'static [&'static str],
    fn(u64) -> bool,
);

/// A child killed (by its own pid) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

impl Proc {
    /// Asks the process to end (SIGTERM) and waits up to 10 s.
    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Forwards each datagram it receives to the collector and to nfcapd, from its own loopback
/// address (the exporter the collector sees), skipping those `skip` names on the way to the
/// collector.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(from: &str, to: [SocketAddr; 2], skip: fn(u64) -> bool) -> Result<Relay> {
        let inbox = UdpSocket::bind("127.0.0.1:0")?;
        inbox.set_read_timeout(Some(Duration::from_millis(100)))?;
        let port = inbox.local_addr()?.port();
        let out = UdpSocket::bind(format!("{from}:0"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            while !s.load(Ordering::Relaxed) {
                let Ok(n) = inbox.recv(&mut buf) else {
                    continue;
                };
                let i = r.fetch_add(1, Ordering::Relaxed);
                if !skip(i) {
                    out.send_to(&buf[..n], to[0]).ok();
                }
                out.send_to(&buf[..n], to[1]).ok();
            }
        });
        Ok(Relay {
            port,
            stop,
            received,
            thread: Some(thread),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

/// softflowd reads `pcap` and exports it to `127.0.0.1:port` (`args`: version, sampling),
/// then is told to expire every flow and exit.
fn softflowd(dir: &Path, name: &str, pcap: &Path, port: u16, args: &[&str]) -> Result<String> {
    let ctl = dir.join(format!("{name}.ctl"));
    let mut p = Proc(
        Command::new("softflowd")
            .args(["-d", "-a", "-r"])
            .arg(pcap)
            .args(["-n", &format!("127.0.0.1:{port}"), "-p"])
            .arg(dir.join(format!("{name}.pid")))
            .arg("-c")
            .arg(&ctl)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("softflowd")?,
    );
    // softflowd 1.1.0 keeps running after the capture's end; a first control command other
    // than `shutdown` (which would end it before it read anything) lets it read the file.
    std::thread::sleep(Duration::from_secs(2));
    let stats = Command::new("softflowctl")
        .arg("-c")
        .arg(&ctl)
        .arg("statistics")
        .output()?;
    Command::new("softflowctl")
        .arg("-c")
        .arg(&ctl)
        .arg("shutdown")
        .output()?;
    for _ in 0..100 {
        if matches!(p.0.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(String::from_utf8_lossy(&stats.stdout).into_owned())
}

/// (src, dst, dst port, flags) → [flows, packets, bytes].
type Table = BTreeMap<(String, String, u16, u8), [u64; 3]>;

/// nfdump's letters for TCP flags, high bit first.
const FLAG_LETTERS: &[u8; 8] = b"CEUAPRSF";

fn flag_bits(s: &str) -> u8 {
    s.bytes()
        .filter(|c| *c != b'.')
        .filter_map(|c| FLAG_LETTERS.iter().position(|l| *l == c))
        .fold(0, |a, i| a | (0x80 >> i))
}

/// nfdump's lines for the flows nfcapd stored in `dir` that `filter` selects.
fn nfdump(dir: &Path, filter: &str) -> Result<String> {
    let out = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args([
            "-q",
            "-N",
            "-o",
            "fmt:%pr %sa %da %dp %flg %pkt %byt",
            filter,
        ])
        .output()
        .context("nfdump")?;
    if !out.status.success() {
        bail!("nfdump: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What nfcapd stored in `dir`, TCP and UDP, by nfdump.
fn nfdump_table(dir: &Path) -> Result<Table> {
    let mut t = Table::new();
    for line in nfdump(dir, "proto tcp or proto udp")?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [pr, sa, da, dp, flg, pkt, byt] = f[..] else {
            continue;
        };
        // `-N` prints the protocol's number.
        let flags = if pr == "6" { flag_bits(flg) } else { 0 };
        let e = t
            .entry((sa.to_string(), da.to_string(), dp.parse()?, flags))
            .or_default();
        e[0] += 1;
        e[1] += pkt.parse::<u64>()?;
        e[2] += byt.parse::<u64>()?;
    }
    Ok(t)
}

/// Runs DuckDB over the lake: `sql` must give rows of text.
fn duckdb(sql: &str) -> Result<Vec<Vec<String>>> {
    let script = format!(
        "import duckdb, json\nrows = duckdb.sql({sql:?}).fetchall()\nprint(json.dumps([[str(x) for x in r] for r in rows]))"
    );
    let out = Command::new("python3").args(["-c", &script]).output()?;
    if !out.status.success() {
        bail!("duckdb: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn lake_table(lake: &Path, sensor: &str) -> Result<Table> {
    let rows = duckdb(&format!(
        "SELECT src_ip, dst_ip, dst_port, coalesce(tcp_flags, 0), count(*), sum(packets), sum(bytes) \
         FROM read_parquet('{}/flows/*/*.parquet', hive_partitioning = true, union_by_name = true) \
         WHERE sensor = '{sensor}' AND source = 'netflow' AND proto IN ('tcp', 'udp') \
         GROUP BY ALL",
        lake.display()
    ))?;
    let mut t = Table::new();
    for r in rows {
        t.insert(
            (r[0].clone(), r[1].clone(), r[2].parse()?, r[3].parse()?),
            [r[4].parse()?, r[5].parse()?, r[6].parse()?],
        );
    }
    Ok(t)
}

fn sum(t: &Table) -> [u64; 3] {
    t.values()
        .fold([0; 3], |a, v| [a[0] + v[0], a[1] + v[1], a[2] + v[2]])
}

/// The capture: every scanner of the standard scenario, a connection out and one in.
fn capture(lab: &Lab, pcap: &Path) -> Result<()> {
    let mut tcpdump = Proc(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.sensor_ns,
                "tcpdump",
                "-i",
                &lab.sensor_if,
            ])
            .args(["-U", "-n", "-c", "20000", "-w"])
            .arg(pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(1500));
    // A listener in the sensor namespace: nmap's SYN reaches an open port (SYN, then the
    // scanner's RST after the SYN-ACK), and a client connects in and fetches a page.
    let mut server = Proc(
        Command::new("ip")
            .args(["netns", "exec", &lab.sensor_ns])
            .args(["python3", "-m", "http.server", "--bind", SENSOR_V4, "25"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(700));
    run_standard_scans(lab)?;
    own_connection(lab)?;
    scan_in(
        &lab.scanner_ns,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--interface",
            SRC_SERVER,
            &format!("http://{SENSOR_V4}:25/"),
        ],
        10,
    )?;
    std::thread::sleep(Duration::from_millis(500));
    server.terminate();
    tcpdump.terminate();
    Ok(())
}

#[test]
fn softflowd_exports_land_in_the_lake_as_nfdump_stores_them() {
    if privileged_or_skip().is_none() {
        return;
    }
    for tool in ["softflowd", "softflowctl", "nfcapd", "nfdump", "tcpdump"] {
        assert!(
            Command::new("which")
                .arg(tool)
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} missing: run scripts/setup.sh"
        );
    }
    let dir = e2e_dir("netflow");
    let lab = Lab::new(&dir).expect("build the lab");
    let pcap = dir.join("scan.pcap");
    capture(&lab, &pcap).expect("capture the scanners");
    drop(lab);

    // The collector and one nfcapd per stream, on loopback.
    let nf_port = free_udp_port();
    let lake = dir.join("lake");
    // (name, relay source address, softflowd args, datagrams the relay keeps from the
    // collector: the lossy stream loses its second)
    let streams: [Stream; 5] = [
        ("v5", "127.0.0.2", &["-v", "5"], |_| false),
        ("v9", "127.0.0.3", &["-v", "9"], |_| false),
        ("ipfix", "127.0.0.4", &["-v", "10"], |_| false),
        ("v9-s100", "127.0.0.5", &["-v", "9", "-s", "100"], |_| false),
        ("ipfix-lossy", "127.0.0.6", &["-v", "10"], |i| i == 1),
    ];
    let mut extra: Vec<String> = vec![
        "--flush-secs".into(),
        "1".into(),
        "--netflow-listen".into(),
        format!("127.0.0.1:{nf_port}"),
        "--netflow-direction".into(),
        "all".into(),
        "--local-net".into(),
        format!("{SENSOR_V4}/32"),
        "--local-net".into(),
        DARK_V4.into(),
    ];
    for (name, from, _, _) in &streams {
        extra.push("--netflow-exporter".into());
        extra.push(format!("{name}={from}"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut collector = CollectorProc::start("127.0.0.1:0", &lake, &extra).expect("collector");
    let nf: SocketAddr = format!("127.0.0.1:{nf_port}").parse().unwrap();
    let mut sent: BTreeMap<&str, u64> = BTreeMap::new();
    let mut reference: BTreeMap<&str, PathBuf> = BTreeMap::new();
    for (name, from, args, skip) in &streams {
        let nfdir = dir.join(format!("nfcapd-{name}"));
        std::fs::create_dir_all(&nfdir).unwrap();
        let port = free_udp_port();
        let mut nfcapd =
            Proc(scanscope_testkit::netflow::nfcapd(port, &nfdir, None).expect("nfcapd"));
        std::thread::sleep(Duration::from_millis(500));
        let relay = Relay::start(
            from,
            [nf, format!("127.0.0.1:{port}").parse().unwrap()],
            *skip,
        )
        .expect("relay");
        let stats = softflowd(&dir, name, &pcap, relay.port, args).expect("softflowd");
        std::thread::sleep(Duration::from_millis(500));
        sent.insert(name, relay.received.load(Ordering::Relaxed));
        drop(relay);
        nfcapd.terminate();
        eprintln!(
            "{name}: {} datagrams; softflowd: {}",
            sent[name],
            stats
                .lines()
                .filter(|l| l.contains("exported"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        reference.insert(name, nfdir);
    }
    std::thread::sleep(Duration::from_secs(3));
    collector.stop().expect("collector stops (flushes)");

    for (name, _, _, _) in &streams[..3] {
        let want = nfdump_table(&reference[name]).unwrap();
        assert!(
            sum(&want)[0] > 50,
            "{name}: nfdump holds the scans' flows: {want:?}"
        );
        let got = lake_table(&lake, name).unwrap();
        assert_eq!(got, want, "{name}: the lake's flows equal nfdump's");
    }
    // Sampled: the stored rate is 100 on every row, the figures are as exported (nfdump keeps
    // them unscaled too); the rollup multiplies them (analytics/tests/rollup.rs).
    let rates = duckdb(&format!(
        "SELECT DISTINCT sampling_rate FROM read_parquet('{}/flows/*/*.parquet', union_by_name = true) WHERE sensor = 'v9-s100'",
        lake.display()
    ))
    .unwrap();
    assert_eq!(rates, vec![vec!["100".to_string()]]);
    let want = nfdump_table(&reference["v9-s100"]).unwrap();
    assert!(!want.is_empty());
    assert_eq!(lake_table(&lake, "v9-s100").unwrap(), want, "sampled");
    // Lossy: the flows in the skipped datagrams are exactly the lost rows.
    assert!(
        sent["ipfix-lossy"] >= 3,
        "the lossy stream needs datagrams to skip"
    );
    // Every flow of the stream, whatever its protocol.
    let all = nfdump(&reference["ipfix-lossy"], "any")
        .unwrap()
        .lines()
        .count() as u64;
    let kept = duckdb(&format!(
        "SELECT count(*) FROM read_parquet('{}/flows/*/*.parquet', union_by_name = true) WHERE sensor = 'ipfix-lossy'",
        lake.display()
    ))
    .unwrap()[0][0]
        .parse::<u64>()
        .unwrap();
    let lost = duckdb(&format!(
        "SELECT coalesce(sum(count), 0) FROM read_parquet('{}/lost/*/*.parquet', union_by_name = true) WHERE sensor = 'ipfix-lossy' AND stage = 'netflow_sequence' AND unit = 'flows'",
        lake.display()
    ))
    .unwrap()[0][0]
        .parse::<u64>()
        .unwrap();
    assert!(kept < all, "datagrams were skipped");
    assert_eq!(
        kept + lost,
        all,
        "kept {kept} + lost {lost} = exported {all}"
    );

    // The rollup of the NetFlow-only day: nmap's scan of one host is vertical, masscan's and
    // zmap's of 16 hosts horizontal, with their exact ports and targets; nmap's source, listed
    // as a Tor exit, shows in `report --tor`.
    let date = duckdb(&format!(
        "SELECT DISTINCT CAST(date AS VARCHAR) FROM read_parquet('{}/flows/*/*.parquet', hive_partitioning = true, union_by_name = true)",
        lake.display()
    ))
    .unwrap();
    assert_eq!(date.len(), 1, "one day of flows: {date:?}");
    let date = &date[0][0];
    let tor = dir.join("exit-addresses");
    std::fs::write(
        &tor,
        format!("ExitNode 0011BD\nExitAddress {SRC_NMAP} {date} 07:00:00\n"),
    )
    .unwrap();
    let lake_s = lake.display().to_string();
    let tor_s = tor.display().to_string();
    transport::collector_run(&[
        "rollup",
        "--data",
        &lake_s,
        "--date",
        date,
        "--tor-exit-list",
        &tor_s,
    ])
    .expect("rollup");
    let ip = duckdb(&format!(
        "SELECT src_ip, scan_type, list_sort(ports), dst_hosts, tor_exit FROM read_parquet('{lake_s}/ip_daily/*/*.parquet') \
         WHERE src_ip IN ('{SRC_NMAP}', '{SRC_MASSCAN}', '{SRC_ZMAP}') ORDER BY src_ip"
    ))
    .unwrap();
    let row = |r: [&str; 5]| r.map(String::from).to_vec();
    assert_eq!(
        ip,
        vec![
            row([
                SRC_NMAP,
                "vertical",
                "[20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]",
                "1",
                "True"
            ]),
            row([SRC_MASSCAN, "horizontal", "[80, 443]", "16", "False"]),
            row([SRC_ZMAP, "horizontal", "[8080]", "16", "False"]),
        ]
    );
    let out = transport::collector_run(&[
        "report", "--data", &lake_s, "--date", date, "--tor", "--json",
    ])
    .expect("report --tor");
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let nodes = report["tor"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{report}");
    let n = &nodes[0];
    assert_eq!(n["exit_node"], SRC_NMAP);
    // Its flows over every stream the collector stored, by DuckDB (the sampled one scaled).
    let want = duckdb(&format!(
        "SELECT count(*), sum(packets * coalesce(sampling_rate, 1)), count(DISTINCT dst_ip) \
         FROM read_parquet('{lake_s}/flows/*/*.parquet', union_by_name = true) WHERE src_ip = '{SRC_NMAP}'"
    ))
    .unwrap();
    assert_eq!(
        [
            n["flows"].to_string(),
            n["packets"].to_string(),
            n["destinations"].to_string()
        ],
        [want[0][0].clone(), want[0][1].clone(), want[0][2].clone()]
    );
    assert_eq!(n["sources"], serde_json::json!(["netflow"]));
    // The console's Tor page: the same node, with the rollup's figures for it.
    let console = console::ConsoleProc::start(&lake, "127.0.0.1:0", &dir.join("console.log"))
        .expect("console");
    let out = Command::new("curl")
        .args([
            "-sf",
            &format!("{}/api/v1/tor?from={date}&to={date}", console.url),
        ])
        .output()
        .expect("curl");
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tor page");
    let rows = page["tables"]["tor"]["rows"]
        .as_array()
        .expect("tor rows")
        .clone();
    assert_eq!(rows.len(), 1, "{page}");
    let rolled = duckdb(&format!(
        "SELECT flows, packets, bytes, dst_hosts FROM read_parquet('{lake_s}/ip_daily/*/*.parquet') WHERE src_ip = '{SRC_NMAP}'"
    ))
    .unwrap();
    let r = &rows[0];
    assert_eq!(r["exit_node"], SRC_NMAP);
    assert_eq!(
        [&r["flows"], &r["packets"], &r["bytes"], &r["destinations"]].map(|x| x.to_string()),
        [0, 1, 2, 3].map(|k| rolled[0][k].clone())
    );
    assert_eq!(
        r["flows"].to_string(),
        want[0][0],
        "ip_daily's flows: the flows rows"
    );
    drop(console);
}
