//! End to end in throwaway network namespaces: real scanners against the real sensor.
//!
//! Exact figures by construction (see `standard_expectations`): every probe each tool sends is
//! counted once, on the right port and kind, from the right source; every tool is recognised;
//! the excluded source and the host's own connection are not counted.
use scanscope_tests::transport;
use scanscope_tests::*;

fn lab_or_skip(name: &str) -> Option<Lab> {
    privileged_or_skip()?;
    Some(Lab::new(&e2e_dir(name)).expect("build the lab"))
}

#[test]
fn real_scanners_are_counted_exactly_and_recognised() {
    let Some(mut lab) = lab_or_skip("scanners") else {
        return;
    };
    // The collector runs in the sensor namespace on its loopback; the agent streams to it
    // (and writes JSON lines too, so the two outputs can be compared).
    let lake = lab.dir.join("lake");
    let ns = lab.sensor_ns.clone();
    let mut collector = transport::CollectorProc::start_with_prefix(
        &["ip", "netns", "exec", &ns],
        "127.0.0.1:0",
        &lake,
        &["--flush-secs", "1"],
    )
    .expect("start collector");
    lab.sensor_args = vec![
        "--collector".into(),
        collector.url(),
        "--spool-dir".into(),
        lab.dir.join("spool").display().to_string(),
    ];
    lab.start_sensor(&standard_config(), 1.0)
        .expect("start sensor");
    // Least privilege: attached, the agent keeps CAP_BPF and CAP_NET_ADMIN only, for good,
    // and runs confined by its seccomp filter.
    let status = std::fs::read_to_string(format!(
        "/proc/{}/status",
        lab.sensor_pid().expect("sensor pid")
    ))
    .expect("agent status");
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let retained = format!("{:016x}", (1u64 << 39) | (1u64 << 12));
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(field(set), retained, "{set} of the running agent");
    }
    assert_eq!(field("CapInh:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    // Confined: every thread (the runtime's workers too) runs under the seccomp filter.
    let pid = lab.sensor_pid().expect("sensor pid");
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("agent threads")
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("status")).unwrap_or_default())
        .collect();
    assert!(threads.len() > 1, "the agent runs its runtime's threads");
    for t in &threads {
        assert!(
            t.lines().any(|l| l == "Seccomp:\t2"),
            "a thread without the filter: {t}"
        );
    }
    run_standard_scans(&lab).expect("scans");
    own_connection(&lab).expect("own connection");
    // Reconfigure at run time (SIGHUP): exclude the nmap source too, then let it send 4 SYNs
    // to port 80 — they must be counted as excluded, not as flows.
    let reloaded = standard_config().replace(
        &format!("exclude = [\"{SRC_EXCLUDED}/32\"]"),
        &format!("exclude = [\"{SRC_EXCLUDED}/32\", \"{SRC_NMAP}/32\"]"),
    );
    assert_ne!(reloaded, standard_config());
    lab.reload_sensor(&reloaded).expect("reload");
    let ai = lab.scanner_if.clone();
    lab.scan(
        &Scan::hping(&ai, 4, SENSOR_V4)
            .syn(80)
            .source(SRC_NMAP)
            .build()
            .args(),
        20,
    )
    .expect("hping3 after reload");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let records = lab.stop_sensor().expect("stop sensor");

    let flows = flows_by_source(&records);
    for (src, kind, ports) in standard_expectations() {
        assert_eq!(
            flows.get(&(src.to_string(), kind.to_string())),
            Some(&ports),
            "{src} {kind}"
        );
    }
    // Nothing else from the scanners' sources but what they sent (and IPv6 neighbour discovery).
    let scan_kinds: Vec<_> = flows
        .keys()
        .filter(|(_, k)| k != "icmp_other")
        .map(|(s, k)| (s.clone(), k.clone()))
        .collect();
    assert_eq!(
        scan_kinds.len(),
        standard_expectations().len(),
        "unexpected flows: {scan_kinds:?}"
    );
    // The excluded source and the host's own connection are not in the data.
    assert!(
        !flows
            .keys()
            .any(|(s, _)| s == SRC_EXCLUDED || s == SRC_SERVER),
        "{flows:?}"
    );
    assert_eq!(counter_total(&records, "excluded_cidr"), 10 + 4);
    assert!(
        counter_total(&records, "own_socket") >= 4,
        "own_socket {}",
        counter_total(&records, "own_socket")
    );
    // Kernel counters agree with the tuple counts: 11 + 32 + 16 + 5 + 2 SYNs.
    assert_eq!(kind_total(&records, "tcp_syn"), 66);
    assert_eq!(kind_total(&records, "udp"), 6);
    assert_eq!(kind_total(&records, "icmp_echo"), 3);
    assert_eq!(counter_total(&records, "dropped"), 66 + 6 + 3);
    // Every packet was sampled (sample_every = 1): events carry weight 1 and match the flows.
    let events = records
        .iter()
        .filter(|r| r["type"] == "event" && r["kind"] == "tcp_syn")
        .count();
    assert_eq!(events, 66);
    let tools = tools_by_source(&records);
    for (src, tool) in standard_tools() {
        assert!(
            tools.get(src).is_some_and(|t| t.contains(tool)),
            "{src} should be {tool}: {:?}",
            tools.get(src)
        );
    }
    // No false attributions between the tools.
    assert!(!tools[SRC_NMAP].contains("masscan") && !tools[SRC_MASSCAN].contains("zmap"));
    // Mirai's events show the sequence number equal to the destination address.
    let mirai = records
        .iter()
        .find(|r| r["type"] == "event" && r["src_ip"] == SRC_MIRAI && r["kind"] == "tcp_syn")
        .expect("mirai event");
    assert_eq!(mirai["tcp_seq"], 3_323_068_677u64);
    assert_eq!(mirai["dst_port"], 23);
    // No loss anywhere.
    assert!(!records.iter().any(|r| r["type"] == "lost"));

    // The lake: what DuckDB, pandas and pyarrow read equals what the kernel counted and the
    // agent wrote locally, per source and kind.
    collector.stop().expect("collector stops cleanly");
    let lake_summary = transport::check_lake_py(&lake).expect("read the lake");
    let mut jsonl: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for r in records.iter().filter(|r| r["type"] == "flow") {
        *jsonl
            .entry((
                r["src_ip"].as_str().unwrap().into(),
                r["kind"].as_str().unwrap().into(),
            ))
            .or_default() += r["packets"].as_u64().unwrap();
    }
    let mut lake_flows: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for row in lake_summary["flows_by_src_kind"].as_array().unwrap() {
        lake_flows.insert(
            (
                row[0].as_str().unwrap().into(),
                row[1].as_str().unwrap().into(),
            ),
            row[2].as_u64().unwrap(),
        );
    }
    assert_eq!(lake_flows, jsonl, "lake flows == agent flows");
    let lake_syn: u64 = lake_flows
        .iter()
        .filter(|((_, k), _)| k == "tcp_syn")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(lake_syn, 66, "sum(packets) of tcp_syn flows == SYNs sent");
    assert_eq!(lake_summary["stats_packets_by_kind"]["tcp_syn"], 66);
    assert_eq!(lake_summary["stats_packets_by_kind"]["udp"], 6);
    // Exact port sets per source from the lake, as sent.
    let ports: std::collections::BTreeMap<(String, String), Vec<u64>> = lake_summary["flow_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()),
                r[2].as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect();
    for (src, kind, expected) in standard_expectations() {
        if kind != "tcp_syn" && kind != "udp" {
            continue;
        }
        let want: Vec<u64> = expected.keys().map(|p| u64::from(*p)).collect();
        assert_eq!(
            ports.get(&(src.to_string(), kind.to_string())),
            Some(&want),
            "{src} {kind}"
        );
    }
    // Tools recognised, as stored in the events table.
    let tools = &lake_summary["tools_by_src"];
    for (src, tool) in standard_tools() {
        let row = tools
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == src)
            .unwrap_or_else(|| panic!("{src} has events"));
        assert!(
            row[1].as_array().unwrap().iter().any(|t| t == tool),
            "{src}: {row}"
        );
    }
    // Documented types (docs/lake.md), as DuckDB and pandas see them.
    let d = &lake_summary["duckdb"];
    for (table, col, ty) in [
        ("flows", "interval_start", "TIMESTAMP WITH TIME ZONE"),
        ("flows", "src_ip", "VARCHAR"),
        ("flows", "dst_port", "USMALLINT"),
        ("flows", "icmp_type", "UTINYINT"),
        ("flows", "packets", "UBIGINT"),
        ("flows", "date", "DATE"),
        ("events", "ts", "TIMESTAMP WITH TIME ZONE"),
        ("events", "payload", "BLOB"),
        ("events", "tools", "VARCHAR[]"),
        ("events", "weight", "UINTEGER"),
        ("sensor_stats", "value", "UBIGINT"),
        ("sensor_stats", "port", "USMALLINT"),
    ] {
        assert_eq!(d[table]["columns"][col], ty, "duckdb {table}.{col}");
    }
    let p = &lake_summary["pandas"];
    for (table, col, ty) in [
        ("flows", "interval_start", "datetime64[us, UTC]"),
        ("flows", "packets", "uint64"),
        ("flows", "dst_port", "uint16"),
        ("events", "ttl", "uint8"),
        ("sensor_stats", "value", "uint64"),
    ] {
        assert_eq!(p[table]["columns"][col], ty, "pandas {table}.{col}");
    }
    assert_eq!(
        d["events"]["rows"].as_u64(),
        Some(records.iter().filter(|r| r["type"] == "event").count() as u64)
    );
}

/// The real agent, SIGKILLed while the collector is down, restarted once it is up: what it had
/// spooled reaches the lake, once.
#[test]
fn killed_agent_replays_its_spool_after_restart() {
    let Some(mut lab) = lab_or_skip("kill") else {
        return;
    };
    let lake = lab.dir.join("lake-kill");
    let spool = lab.dir.join("spool-kill");
    // A port nothing listens on yet, inside the sensor namespace.
    let port = 17_000 + (std::process::id() % 20_000);
    let url = format!("http://127.0.0.1:{port}");
    lab.sensor_args = vec![
        "--collector".into(),
        url,
        "--spool-dir".into(),
        spool.display().to_string(),
    ];
    lab.start_sensor(&standard_config(), 0.5)
        .expect("start sensor");
    let ai = lab.scanner_if.clone();
    lab.scan(
        &Scan::hping(&ai, 7, SENSOR_V4)
            .syn(443)
            .source(SRC_MIRAI)
            .build()
            .args(),
        20,
    )
    .expect("hping3");
    // Let two intervals close: their batches go to the spool (no collector).
    std::thread::sleep(std::time::Duration::from_secs(2));
    lab.kill_sensor().expect("kill -9 the agent");
    let spooled = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".batch"))
        .count();
    assert!(spooled >= 2, "batches spooled before the kill: {spooled}");
    let ns = lab.sensor_ns.clone();
    let mut collector = transport::CollectorProc::start_with_prefix(
        &["ip", "netns", "exec", &ns],
        &format!("127.0.0.1:{port}"),
        &lake,
        &["--flush-secs", "1"],
    )
    .expect("start collector");
    lab.start_sensor(&standard_config(), 0.5)
        .expect("restart sensor");
    std::thread::sleep(std::time::Duration::from_secs(1));
    lab.stop_sensor().expect("stop sensor");
    collector.stop().expect("stop collector");
    let left = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".batch"))
        .count();
    assert_eq!(left, 0, "spool replayed and emptied");
    let keys = transport::flow_keys(&lake).expect("read the lake");
    let syn443: u64 = keys
        .iter()
        .filter(|((s, src, port), _)| s == "lab-sensor" && src == SRC_MIRAI && *port == 443)
        .map(|(_, (_, p))| p)
        .sum();
    assert_eq!(
        syn443, 7,
        "the 7 SYNs counted before the kill reach the lake once: {keys:?}"
    );
}
