//! End to end in throwaway network namespaces: real scanners against the real sensor.
//!
//! Exact figures by construction (see `standard_expectations`): every probe each tool sends is
//! counted once, on the right port and kind, from the right source; every tool is recognised;
//! the excluded source and the host's own connection are not counted.
use scanscope_tests::*;

fn lab_or_skip() -> Option<Lab> {
    if let Some(r) = unavailable_reason() {
        if std::env::var("SCANSCOPE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("end-to-end test cannot run: {r}");
        }
        eprintln!("SKIPPED: {r}");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("scanscope-e2e-{}", std::process::id()));
    Some(Lab::new(&dir).expect("build the lab"))
}

#[test]
fn real_scanners_are_counted_exactly_and_recognised() {
    let Some(mut lab) = lab_or_skip() else { return };
    lab.start_sensor(&standard_config(), 1.0)
        .expect("start sensor");
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
        &[
            "hping3", "-S", "-p", "80", "-c", "4", "-i", "u10000", "-a", SRC_NMAP, "-I", &ai,
            SENSOR_V4,
        ],
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
}
