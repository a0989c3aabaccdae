//! The injection test, in a real browser (tests/py/console_browser.py, Debian's chromium under
//! Playwright): a lake whose every attacker-controlled field — user agents, URLs, rDNS names,
//! payloads, OS hints, tool names, tags, organisation and AS names, logins, commands, a user
//! rule's field, session and sample payloads — holds `<script>`, `"><img onerror=…>`, terminal
//! escapes and right-to-left overrides; the IP, organisation, overview and search pages must
//! show them as text under a strict CSP. Skips without chromium or Playwright (fails under
//! `cargo xtask test`).
use std::{path::Path, process::Command, sync::Arc};

use anyhow::{Context, Result, bail};
use arrow::{
    array::{ArrayRef, ListBuilder, RecordBatch, StringArray, StringBuilder},
    datatypes::DataType,
};
use chrono::NaiveDate;
use scanscope_common::{AppProtocol, Kind, SessionEnd, Tool};
use scanscope_console::{Console, ConsoleOptions};
use scanscope_lake::{
    Lake, paths,
    table::Proto,
    tables::{
        dos_daily::{DosBuilder, DosRow},
        events::{EventBuilder, EventRow},
        ip_daily::{IpDailyBuilder, IpRow, UserType, UserValue},
        sessions::{SessionBuilder, SessionRow},
    },
};
use serde_json::json;

const IP: &str = "198.51.100.66";

/// What scanners may send, in every field.
const HOSTILE: [&str; 7] = [
    "<script>window.__pwned=1</script>",
    "\"><img src=x onerror=\"window.__pwned=1\">",
    "'><svg onload=window.__pwned=1>",
    "\u{1b}[31mred\u{1b}[0m\u{1b}]0;owned\u{7}",
    "invoice\u{202e}fdp.exe",
    "javascript:window.__pwned=1",
    "<a href=\"javascript:window.__pwned=1\">x</a>",
];

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

fn list(strings: &[&str], like: &DataType) -> ArrayRef {
    let DataType::List(f) = like else {
        panic!("not a list: {like}")
    };
    let mut b = ListBuilder::new(StringBuilder::new()).with_field(f.clone());
    for s in strings {
        b.values().append_value(s);
    }
    b.append(true);
    Arc::new(b.finish())
}

/// Replaces columns of a one-row batch (for the typed ones: tools, kinds, scan type).
fn with_columns(b: RecordBatch, cols: &[(&str, ArrayRef)]) -> Result<RecordBatch> {
    let schema = b.schema();
    let mut columns = b.columns().to_vec();
    for (name, a) in cols {
        columns[schema.index_of(name)?] = a.clone();
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn write_lake(dir: &Path) -> Result<()> {
    let lake = Lake::local(dir)?;
    let h = |i: usize| HOSTILE[i].to_string();
    let all: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    let ts = day()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let row = IpRow {
        src_ip: IP.into(),
        first_seen: ts,
        last_seen: ts,
        packets: 12,
        ports: vec![23, 80],
        tcp_ports: vec![23, 80],
        port_count: 2,
        kinds: vec![Kind::TcpSyn],
        scan_type: "vertical",
        is_scanner: true,
        tools: vec![Tool::Mirai],
        os_hint: Some(h(3)),
        org: Some(h(1)),
        org_source: Some("rdns"),
        rdns: Some(h(0)),
        country: Some(h(4)),
        as_org: Some(h(4)),
        tags: vec![h(0), h(4), "scanner".into()],
        http_url: Some(vec![h(5), h(0)]),
        http_user_agent: Some(vec![h(1), h(3)]),
        rdp_cookie: Some(vec![h(4)]),
        mysql_user: Some(vec![h(2)]),
        mysql_login_attempts: Some(1),
        users: vec![h(3)],
        passwords: vec![h(1)],
        session_commands: vec![h(6)],
        ssh_client_banners: vec![h(4)],
        ja4: vec![h(0)],
        hassh: vec![h(5)],
        sessions: 1,
        login_attempts: 1,
        user: vec![UserValue::String(all.join(" | "))],
        ..IpRow::default()
    };
    let mut b = IpDailyBuilder::new(&[("note", UserType::String)]);
    b.push(&row);
    let batch = b.finish()?;
    let tools_type = batch.schema().field_with_name("tools")?.data_type().clone();
    let batch = with_columns(
        batch,
        &[
            ("tools", list(&[HOSTILE[2], HOSTILE[6]], &tools_type)),
            ("kinds", list(&[HOSTILE[0]], &tools_type)),
            ("scan_type", Arc::new(StringArray::from(vec![HOSTILE[6]]))),
        ],
    )?;
    lake.write_batch(
        &paths::rollup_file(IpRow::TABLE, day()),
        IpRow::TABLE,
        &batch,
    )?;

    let mut d = DosBuilder::default();
    d.push(&DosRow {
        victim: h(0),
        first_seen: ts,
        last_seen: ts,
        packets: 5,
        bytes: 200,
        peak_ppm: 5,
        dst_hosts: 1,
        sensor_count: 1,
        kinds: vec![Kind::TcpSynAck],
        attacks: 0,
        is_attack: false,
    });
    lake.write_batch(
        &paths::rollup_file(DosRow::TABLE, day()),
        DosRow::TABLE,
        &d.finish()?,
    )?;

    let payload = format!("{}{}\u{1b}[2J", HOSTILE[0], HOSTILE[4]);
    let commands = vec![h(6), h(3)];
    let mut s = SessionBuilder::default();
    s.push(&SessionRow {
        ts,
        sensor: "s1",
        src_ip: IP.into(),
        dst_ip: "198.18.1.200".into(),
        src_port: 40000,
        dst_port: 80,
        protocol: AppProtocol::Http,
        bytes_in: payload.len() as u64,
        bytes_out: 0,
        duration_ms: 5,
        end: SessionEnd::Closed,
        payload: payload.as_bytes(),
        payload_cut: false,
        http_method: Some(HOSTILE[0]),
        http_url: Some(HOSTILE[5]),
        http_version: Some(1),
        http_host: Some(HOSTILE[1]),
        http_user_agent: Some(HOSTILE[3]),
        http_headers: &[],
        ja4: Some(HOSTILE[4]),
        tls_sni: Some(HOSTILE[2]),
        tls_alpn: &[],
        tls_version: None,
        ssh_client_banner: Some(HOSTILE[3]),
        hassh: Some(HOSTILE[0]),
        auth_methods: vec!["password"],
        auth_users: vec![HOSTILE[4]],
        auth_secrets: vec![HOSTILE[1]],
        commands: &commands,
        details: &[],
        tags: &[],
    });
    lake.write_batch(
        &paths::part_file(SessionRow::TABLE, day(), 1),
        SessionRow::TABLE,
        &s.finish()?,
    )?;

    let tools = vec![h(2)];
    let mut e = EventBuilder::default();
    e.push(&EventRow {
        ts,
        sensor: "s1",
        iface: "eth0",
        src_ip: IP.into(),
        dst_ip: "198.18.1.7".into(),
        src_port: 40001,
        dst_port: 23,
        proto: Proto(6),
        kind: Kind::TcpSyn,
        ttl: 64,
        ip_id: 1,
        ip_len: 60,
        df: true,
        tos: 0,
        flow_label: 0,
        tcp_flags: 2,
        tcp_seq: 1,
        tcp_ack: 0,
        tcp_window: 1024,
        tcp_options: HOSTILE[1],
        tcp_options_raw: &[],
        icmp_type: 0,
        icmp_code: 0,
        vlan: 0,
        weight: 1,
        payload_len: payload.len() as u16,
        payload: payload.as_bytes(),
        tools: &tools,
        initial_ttl: 64,
        os_hint: HOSTILE[3],
        backscatter: false,
    });
    lake.write_batch(
        &paths::part_file(EventRow::TABLE, day(), 1),
        EventRow::TABLE,
        &e.finish()?,
    )?;
    Ok(())
}

fn unavailable() -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("no /usr/bin/chromium (scripts/setup.sh installs it)".into());
    }
    let ok = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| "no Python playwright (scripts/setup.sh installs it)".into())
}

#[test]
fn hostile_text_is_shown_as_text_in_a_real_browser() -> Result<()> {
    if scanscope_testkit::gate::skip(unavailable()) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    write_lake(dir.path())?;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-hostile");
    std::fs::create_dir_all(&out)?;
    let spec = out.join("spec.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&json!({
            "ip": IP,
            "org": HOSTILE[1],
            "from": day().to_string(),
            "to": day().to_string(),
            "strings": HOSTILE,
            "searches": ["ua:\"*<img*\"", "tag:\"<script>*\"", "javascript"],
        }))?,
    )?;
    let rt = tokio::runtime::Runtime::new()?;
    let (base, stop) = rt.block_on(async {
        let opts = ConsoleOptions::new("127.0.0.1:0".parse()?, dir.path().to_path_buf());
        let listener = scanscope_console::bind(opts.listen).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let console = Console::new(opts)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(console.serve(listener, async {
            rx.await.ok();
        }));
        anyhow::Ok((base, tx))
    })?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/py/console_browser.py");
    let r = Command::new("python3")
        .arg(&script)
        .args(["hostile", &base])
        .arg(&out)
        .arg(&spec)
        .output()
        .context("running the browser")?;
    stop.send(()).ok();
    let stdout = String::from_utf8_lossy(&r.stdout);
    if !r.status.success() {
        bail!(
            "the browser check failed (screenshots in {}):\n{}\n{}",
            out.display(),
            stdout,
            String::from_utf8_lossy(&r.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_str(stdout.trim())?;
    assert_eq!(v["strings"], HOSTILE.len());
    assert_eq!(v["pages"].as_array().map(Vec::len), Some(7));
    Ok(())
}
