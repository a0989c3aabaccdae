//! Scanner intelligence end to end: three sensor namespaces behind a router, real scanners
//! from distinct sources, the collector's rollup with organisation lists, reverse DNS (dnsmasq),
//! a Tor exit list and an MMDB, then the report and the DuckDB / pandas / chdb examples, and
//! the console over the same lake: every API figure against DuckDB, and a real browser walking
//! its pages (screenshots in the test's directory, `console-screens/`).
use std::collections::BTreeMap;

use scanscope_tests::{console, e2e_dir, multilab::*, privileged_or_skip, transport};
use serde_json::{Value, json};

fn lab_or_skip(name: &str, sensors: usize) -> Option<MultiLab> {
    privileged_or_skip()?;
    Some(MultiLab::new(&e2e_dir(name), sensors).expect("build the multi-sensor lab"))
}

fn run_json(out: std::process::Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"))
}

#[test]
fn multi_sensor_rollup_names_tools_breadth_orgs_and_keeps_floods_out() {
    let Some(mut lab) = lab_or_skip("intel", 3) else {
        return;
    };
    let lake = lab.dir.join("lake");
    lab.start_collector(&lake).expect("collector");
    lab.start_agents(1.0).expect("agents");
    // The zmap source's PTR name is confirmed by its A record; the nmap source claims a
    // Shodan name in its reverse zone only, which must not make it Shodan's.
    lab.start_dns(
        &[(M_ZMAP, ZMAP_PTR)],
        &[(M_NMAP, "scan-11.census.shodan.io")],
    )
    .expect("dnsmasq");
    lab.run_scenario().expect("scans");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    lab.stop_agents().expect("agents stop cleanly");
    lab.collector
        .take()
        .unwrap()
        .stop()
        .expect("collector stops");

    let date = MultiLab::lake_date(&lake).expect("one day of flows");

    let tor = lab.dir.join("exit-addresses");
    std::fs::write(
        &tor,
        format!("ExitNode 0011BD\nExitAddress {M_NMAP} {date} 10:00:00\n"),
    )
    .unwrap();
    let mmdb = lab.dir.join("lab.mmdb");
    MultiLab::write_mmdb(&mmdb).expect("MMDB");

    let bin = transport::collector_binary().expect("collector binary");
    let lake_s = lake.display().to_string();
    let dns = format!("127.0.0.1:{DNS_PORT}");
    let summary = run_json(
        lab.in_core(
            &bin,
            &[
                "rollup",
                "--data",
                &lake_s,
                "--date",
                &date,
                "--json",
                "--tor-exit-list",
                tor.to_str().unwrap(),
                "--mmdb",
                mmdb.to_str().unwrap(),
                "--rdns-server",
                &dns,
            ],
        )
        .unwrap(),
        "rollup",
    );
    assert_eq!(summary["active_sensors"], 3, "{summary}");
    assert_eq!(
        summary["scanners"], 4,
        "only the four real scanners: {summary}"
    );
    assert_eq!(summary["dos_victims"], 1, "{summary}");
    assert_eq!(summary["warnings"], json!([]), "{summary}");

    let ip = |addr: &str| {
        run_json(
            lab.in_core(
                &bin,
                &[
                    "report", "--data", &lake_s, "--date", &date, "--ip", addr, "--json",
                ],
            )
            .unwrap(),
            "report --ip",
        )
    };
    let ports = |v: &Value| -> Vec<u64> {
        v["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect()
    };
    let sel = |v: &Value| {
        json!({
            "tools": v["tools"], "scan_type": v["scan_type"], "sensor_count": v["sensor_count"],
            "scan_breadth": v["scan_breadth"], "dst_hosts": v["dst_hosts"], "is_scanner": v["is_scanner"],
            "org": v["org"], "tor_exit": v["tor_exit"], "country": v["country"], "asn": v["asn"],
        })
    };
    let nmap = ip(M_NMAP);
    assert_eq!(ports(&nmap), (20..=30).collect::<Vec<u64>>());
    assert_eq!(
        sel(&nmap),
        json!({"tools": ["nmap"], "scan_type": "vertical", "sensor_count": 1, "scan_breadth": 3,
               "dst_hosts": 1, "is_scanner": true, "org": null, "tor_exit": true,
               "country": "NL", "asn": 64500})
    );
    assert_eq!(nmap["as_org"], "Lab Scanning AS");
    assert_eq!(
        nmap["rdns"],
        Value::Null,
        "a PTR name without a matching A record is not used"
    );
    let masscan = ip(M_MASSCAN);
    assert_eq!(ports(&masscan), vec![80, 443]);
    assert_eq!(
        sel(&masscan),
        json!({"tools": ["masscan"], "scan_type": "horizontal", "sensor_count": 2, "scan_breadth": 7,
               "dst_hosts": 32, "is_scanner": true, "org": "censys", "tor_exit": false,
               "country": "US", "asn": 398324})
    );
    assert_eq!(masscan["org_source"], "cidr");
    assert_eq!(masscan["packets"], 64);
    let zmap = ip(M_ZMAP);
    assert_eq!(ports(&zmap), vec![8080]);
    assert_eq!(
        sel(&zmap),
        json!({"tools": ["zmap"], "scan_type": "horizontal", "sensor_count": 3, "scan_breadth": 10,
               "dst_hosts": 48, "is_scanner": true, "org": "shadowserver", "tor_exit": false,
               "country": "NL", "asn": 64500})
    );
    assert_eq!(
        (zmap["rdns"].as_str(), zmap["org_source"].as_str()),
        (Some(ZMAP_PTR), Some("rdns"))
    );
    let mirai = ip(M_MIRAI);
    assert_eq!(ports(&mirai), vec![23]);
    assert_eq!(
        sel(&mirai),
        json!({"tools": ["mirai"], "scan_type": "horizontal", "sensor_count": 1, "scan_breadth": 3,
               "dst_hosts": 3, "is_scanner": true, "org": null, "tor_exit": false,
               "country": "NL", "asn": 64500})
    );
    let victim = ip(M_VICTIM);
    assert_eq!(victim["backscatter_packets"], BACKSCATTER_PACKETS);
    assert_eq!(
        (victim["is_scanner"].as_bool(), victim["scan_type"].as_str()),
        (Some(false), Some("none"))
    );

    // The day: the flood's random sources are sources, never scanners.
    let day = run_json(
        lab.in_core(
            &bin,
            &["report", "--data", &lake_s, "--date", &date, "--json"],
        )
        .unwrap(),
        "report",
    );
    // Port 80's sources are masscan and the flood's random sources that made it through the
    // router (it drops martians such as multicast sources): every other source is known.
    let sources = day["sources"].as_u64().unwrap();
    let flood_seen = day["top_ports_by_sources"][0]["sources"].as_u64().unwrap() - 1;
    assert!(
        flood_seen >= u64::from(FLOOD_PACKETS) * 8 / 10,
        "only {flood_seen} flood sources"
    );
    assert_eq!(
        sources,
        5 + flood_seen,
        "4 scanners + victim + the flood's sources"
    );
    assert_eq!(day["scanners"], 4);
    assert_eq!(day["wide_scanners"], 2, "masscan (7) and zmap (10)");
    assert_eq!(day["top_ports_by_sources"][0]["port"], 80);
    let org_scanners: BTreeMap<String, u64> = day["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["org"].as_str().unwrap().to_string(),
                o["scanners"].as_u64().unwrap(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(
        org_scanners,
        BTreeMap::from([("censys".into(), 1), ("shadowserver".into(), 1)])
    );
    let port = run_json(
        lab.in_core(
            &bin,
            &[
                "report", "--data", &lake_s, "--date", &date, "--port", "443", "--json",
            ],
        )
        .unwrap(),
        "report --port",
    );
    assert_eq!(port["tcp"]["sources"], 1);
    assert_eq!(
        port["tcp"]["also_tried"],
        json!([{"port": 80, "sources": 1, "scanners": 1}])
    );
    let text = lab
        .in_core(&bin, &["report", "--data", &lake_s, "--date", &date])
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("scanners 4"));

    // The examples answer the same questions straight from the lake, and agree.
    let ex = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut answers = Vec::new();
    for script in ["run_duckdb.py", "pandas_scanners.py", "chdb_scanners.py"] {
        let out = std::process::Command::new("python3")
            .arg(ex.join(script))
            .arg(&lake)
            .arg(&date)
            .output()
            .unwrap();
        answers.push(run_json(out, script));
    }
    assert_eq!(answers[0], answers[1], "DuckDB vs pandas");
    assert_eq!(answers[0], answers[2], "DuckDB vs chdb");
    assert_eq!(answers[0]["scanners"], 4);
    assert_eq!(answers[0]["sources"], sources);
    assert_eq!(answers[0]["orgs"], json!({"censys": 1, "shadowserver": 1}));
    assert_eq!(
        answers[0]["top_ports"][0],
        json!(["tcp", 80, day["top_ports_by_sources"][0]["sources"]])
    );

    // The console over the same lake (served on the host's loopback).
    let c = console::ConsoleProc::start(&lake, "127.0.0.1:0", &lab.dir.join("console.log"))
        .expect("console");
    let oracle = console::oracle(&c.url, &lake, &date, &date).expect("API figures = DuckDB's");
    assert!(oracle["comparisons"].as_u64().unwrap() >= 60, "{oracle}");
    let walk = console::browse(&c.url, &lab.dir.join("console-screens")).expect("browser");
    assert_eq!(walk["searches"]["scanner:true"], 4, "{walk}");
    assert_eq!(
        walk["searches"]["tag:wide_scanner OR tool:mirai"], 3,
        "{walk}"
    );
    assert!(walk["csv_rows"].as_u64().unwrap() == 4, "{walk}");
}
