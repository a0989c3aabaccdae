//! The console's API over a lake written here with the rollup's own writers: search semantics
//! (a source matches when one of its days matches the whole query), facets, paging, sorting,
//! CSV, the organisation page's new IPs, the IP page, errors with their status codes, the
//! security headers, and the token check. (The figures over a real lab's lake are checked
//! against DuckDB in `tests/tests/console.rs`.)
use std::net::SocketAddr;

use anyhow::Result;
use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use chrono::NaiveDate;
use scanscope_analytics::rollup::write::{write_ip_daily, write_small_tables};
use scanscope_common::{Kind, Tool};
use scanscope_console::{ConsoleOptions, server::app};
use scanscope_lake::{
    Lake,
    tables::{ip_daily::IpRow, port_daily::PortRow},
};
use serde_json::Value;
use tower::ServiceExt;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn ts(d: u32, h: u32) -> i64 {
    day(d)
        .and_hms_opt(h, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

fn row(ip: &str, d: u32, tcp: &[u16], tools: &[Tool], org: Option<&str>, packets: u64) -> IpRow {
    IpRow {
        src_ip: ip.into(),
        first_seen: ts(d, 1),
        last_seen: ts(d, 2),
        packets,
        ports: tcp.to_vec(),
        tcp_ports: tcp.to_vec(),
        port_count: tcp.len() as u32,
        kinds: vec![Kind::TcpSyn],
        scan_type: "vertical",
        is_scanner: tcp.len() > 1,
        tools: tools.to_vec(),
        org: org.map(str::to_string),
        tags: if tcp.len() > 1 {
            vec!["scanner".into()]
        } else {
            vec![]
        },
        ..IpRow::default()
    }
}

/// Three days: A (censys) probes 23 with mirai on the 1st, 80 on the 2nd, 23+2323 on the 3rd;
/// B probes 23 on the 2nd; C (censys) probes 443 on the 3rd; the 2nd has no censys… except A.
fn lake() -> Result<(tempfile::TempDir, Lake)> {
    let dir = tempfile::tempdir()?;
    let lake = Lake::local(dir.path())?;
    let a = "198.51.100.7";
    let b = "203.0.113.9";
    let c = "192.0.2.44";
    let days: Vec<(u32, Vec<IpRow>)> = vec![
        (
            1,
            vec![row(a, 1, &[23], &[Tool::Mirai], Some("censys"), 10)],
        ),
        (
            2,
            vec![
                row(a, 2, &[80], &[], None, 5),
                row(b, 2, &[23], &[], None, 7),
            ],
        ),
        (
            3,
            vec![
                row(a, 3, &[23, 2323], &[Tool::Mirai], Some("censys"), 20),
                row(c, 3, &[443], &[Tool::Zmap], Some("censys"), 3),
            ],
        ),
    ];
    for (d, rows) in &days {
        write_ip_daily(&lake, day(*d), rows, &[])?;
        let ports: Vec<PortRow> = vec![PortRow {
            proto: "tcp",
            port: 23,
            packets: u64::from(*d) * 100,
            sources: u64::from(*d),
            scanners: 0,
            top_orgs: vec![],
            sessions: 0,
            payload_sources: 0,
        }];
        write_small_tables(&lake, day(*d), &ports, &[], &[])?;
    }
    Ok((dir, lake))
}

/// The lake (written off the async threads: the lake blocks) and a console over it.
async fn fixture(tokens: &'static [&'static str]) -> Result<(tempfile::TempDir, Router)> {
    let (dir, _lake) = tokio::task::spawn_blocking(lake).await??;
    let app = console(dir.path(), tokens)?;
    Ok((dir, app))
}

fn console(dir: &std::path::Path, tokens: &[&str]) -> Result<Router> {
    let mut o = ConsoleOptions::new("127.0.0.1:0".parse::<SocketAddr>()?, dir.to_path_buf());
    o.tokens = tokens.iter().map(|t| t.to_string()).collect();
    Ok(app(&o)?)
}

async fn get(app: &Router, uri: &str) -> Result<(StatusCode, axum::http::HeaderMap, Vec<u8>)> {
    let r = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty())?)
        .await?;
    let status = r.status();
    let headers = r.headers().clone();
    let body = to_bytes(r.into_body(), 64 << 20).await?.to_vec();
    Ok((status, headers, body))
}

async fn json(app: &Router, uri: &str) -> Result<Value> {
    let (s, _, b) = get(app, uri).await?;
    assert_eq!(s, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&b));
    Ok(serde_json::from_slice(&b)?)
}

fn ips(v: &Value) -> Vec<String> {
    v["tables"]["sources"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ip"].as_str().unwrap().to_string())
        .collect()
}

const RANGE: &str = "from=2026-11-01&to=2026-11-03";

#[tokio::test]
async fn a_source_matches_when_one_of_its_days_matches_the_whole_query() -> Result<()> {
    let (_dir, app) = fixture(&[]).await?;
    let v = json(
        &app,
        &format!("/api/v1/search?q=port:23%20tool:mirai&{RANGE}"),
    )
    .await?;
    assert_eq!(ips(&v), ["198.51.100.7"]);
    let r = &v["tables"]["sources"]["rows"][0];
    assert_eq!(
        (r["days"].as_u64(), r["packets"].as_u64()),
        (Some(2), Some(30)),
        "days 1 and 3 matched"
    );
    assert_eq!(
        r["ports"], 2,
        "23 and 2323 (80 was on a day that did not match)"
    );
    assert_eq!(r["class"], "benign");
    assert_eq!(v["plan"], "(port:23 AND tool:\"mirai\")");

    // B's only day has port 23 but no mirai; A's 2nd day has mirai nowhere.
    let v = json(&app, &format!("/api/v1/search?q=port:23&{RANGE}")).await?;
    assert_eq!(
        ips(&v),
        ["198.51.100.7", "203.0.113.9"],
        "by packets: 30 then 7"
    );
    assert_eq!(v["summary"]["sources"], 2);
    assert_eq!(v["summary"]["source_days"], 3);

    // Negation is per day too: A's 2nd day (port 80) lacks 23.
    let v = json(&app, &format!("/api/v1/search?q=-port:23&{RANGE}")).await?;
    assert_eq!(ips(&v), ["198.51.100.7", "192.0.2.44"]);
    let v = json(
        &app,
        &format!("/api/v1/search?q=org:CENSYS%20OR%20port:80&{RANGE}&sort=ip&order=asc"),
    )
    .await?;
    assert_eq!(ips(&v), ["192.0.2.44", "198.51.100.7"]);
    // Number terms of one field OR-ed (one pass over the ports): A's days 2 (80) and 3 (2323).
    let v = json(
        &app,
        &format!("/api/v1/search?q=port:80%20OR%20port:2323&{RANGE}&sort=ip&order=asc"),
    )
    .await?;
    assert_eq!(ips(&v), ["198.51.100.7"], "C probes 443 only");
    assert_eq!(v["tables"]["sources"]["rows"][0]["days"], 2);
    let v = json(
        &app,
        &format!("/api/v1/search?q=port:443%20OR%20port:80&{RANGE}&sort=ip&order=asc"),
    )
    .await?;
    assert_eq!(ips(&v), ["192.0.2.44", "198.51.100.7"]);
    let v = json(
        &app,
        &format!("/api/v1/search?q=port:2323%20OR%20port:%3C23&{RANGE}"),
    )
    .await?;
    assert_eq!(ips(&v), ["198.51.100.7"], "2323 on day 3; no port below 23");
    let v = json(
        &app,
        &format!("/api/v1/search?q=ip:198.51.100.0/24&{RANGE}"),
    )
    .await?;
    assert_eq!(ips(&v), ["198.51.100.7"]);
    let v = json(&app, &format!("/api/v1/search?q=scanner:true&{RANGE}")).await?;
    assert_eq!(ips(&v), ["198.51.100.7"]);
    let v = json(
        &app,
        &format!("/api/v1/search?q=port_count:%3E=2%20-org:censys&{RANGE}"),
    )
    .await?;
    assert!(ips(&v).is_empty());
    // The range selects the days.
    let v = json(
        &app,
        "/api/v1/search?q=port:23&from=2026-11-02&to=2026-11-02",
    )
    .await?;
    assert_eq!(ips(&v), ["203.0.113.9"]);
    Ok(())
}

#[tokio::test]
async fn facets_count_distinct_matching_sources() -> Result<()> {
    let (_dir, app) = fixture(&[]).await?;
    let v = json(&app, &format!("/api/v1/search?{RANGE}")).await?;
    let facet = |name: &str| -> Vec<(String, u64)> {
        v["tables"][name]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let k = if name == "facet_port" {
                    r["port"].to_string()
                } else {
                    r["value"].as_str().unwrap().to_string()
                };
                (k, r["sources"].as_u64().unwrap())
            })
            .collect()
    };
    assert_eq!(
        facet("facet_port"),
        [("23", 2), ("80", 1), ("443", 1), ("2323", 1)].map(|(k, n)| (k.to_string(), n))
    );
    assert_eq!(facet("facet_org"), [("censys".to_string(), 2)]);
    assert_eq!(
        facet("facet_tool"),
        [("mirai", 1), ("zmap", 1)].map(|(k, n)| (k.to_string(), n))
    );
    assert_eq!(
        facet("facet_class"),
        [("benign", 2), ("unknown", 1)].map(|(k, n)| (k.to_string(), n))
    );
    Ok(())
}

#[tokio::test]
async fn the_overview_counts_a_source_of_several_days_once() -> Result<()> {
    let (_dir, app) = fixture(&[]).await?;
    let v = json(&app, &format!("/api/v1/overview?{RANGE}")).await?;
    assert_eq!(v["summary"]["sources"], 3, "A, B and C");
    assert_eq!(v["summary"]["scanners"], 1, "A, a scanner on the 3rd");
    assert_eq!(v["summary"]["source_days"], 5);
    let rows = |name: &str| -> Vec<(u64, u64, u64, u64, u64)> {
        v["tables"][name]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let n = |k: &str| r[k].as_u64().unwrap();
                (
                    n("port"),
                    n("packets"),
                    n("sources"),
                    n("scanners"),
                    n("source_days"),
                )
            })
            .collect()
    };
    // tcp/23: A (on the 1st and the 3rd, a scanner on the 3rd) and B; packets and
    // source-days as the fixture's port_daily says (100 + 200 + 300, 1 + 2 + 3).
    let want = [
        (23, 600, 2, 1, 6),
        (80, 0, 1, 0, 0),
        (443, 0, 1, 0, 0),
        (2323, 0, 1, 1, 0),
    ];
    assert_eq!(rows("top_ports_by_sources"), want);
    assert_eq!(rows("top_ports_by_packets"), want);
    Ok(())
}

#[tokio::test]
async fn paging_sorting_and_csv() -> Result<()> {
    let (_dir, app) = fixture(&[]).await?;
    let v = json(
        &app,
        &format!("/api/v1/search?{RANGE}&sort=packets&order=asc&limit=1&offset=1"),
    )
    .await?;
    assert_eq!(ips(&v), ["203.0.113.9"], "3, 7, 35 packets: the second");
    assert_eq!(v["tables"]["sources"]["total"], 3);
    let (s, h, body) = get(
        &app,
        &format!("/api/v1/search?{RANGE}&format=csv&table=sources"),
    )
    .await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(
        h[header::CONTENT_DISPOSITION]
            .to_str()?
            .contains("scanscope-search-sources-2026-11-01-2026-11-03.csv")
    );
    let csv = String::from_utf8(body)?;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "ip,class,first_seen,last_seen,days,packets,ports,breadth,scan_type,tools,org,country,asn,rdns,tags"
    );
    assert_eq!(lines.len(), 4);
    assert!(
        lines[1]
            .starts_with("198.51.100.7,benign,2026-11-01T01:00:00Z,2026-11-03T02:00:00Z,3,35,3,"),
        "{}",
        lines[1]
    );
    let (s, _, body) = get(
        &app,
        &format!("/api/v1/search?{RANGE}&format=csv&table=nope"),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8(body)?.contains("no_such_table"));
    Ok(())
}

#[tokio::test]
async fn errors_have_codes_statuses_and_columns() -> Result<()> {
    let (_dir, app) = fixture(&[]).await?;
    for (uri, status, code) in [
        (
            "/api/v1/search?q=port:23%20prot:1",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        (
            "/api/v1/search?sort=weight",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/search?limit=5000",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/overview?from=yesterday",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/overview?from=2026-11-03&to=2026-11-01",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/overview?from=2024-01-01&to=2026-11-01",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/overview?format=xml",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/ip/not-an-ip",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/ip/198.51.100.8?from=2026-11-01&to=2026-11-03",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/port/sctp/80",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/port/tcp/70000",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/api/v1/org/nobody?from=2026-11-01&to=2026-11-03",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        ("/api/v1/nothing", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (s, _, body) = get(&app, uri).await?;
        let v: Value = serde_json::from_slice(&body)?;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{uri}: {v}"
        );
    }
    let (_, _, body) = get(&app, "/api/v1/search?q=port:23%20prot:1").await?;
    let v: Value = serde_json::from_slice(&body)?;
    assert_eq!(v["error"]["column"], 9);
    Ok(())
}

#[tokio::test]
async fn the_org_page_shows_pauses_and_new_ips() -> Result<()> {
    let (_dir, app) = fixture(&[]).await?;
    let v = json(&app, &format!("/api/v1/org/Censys?{RANGE}")).await?;
    let daily: Vec<(u64, u64)> = v["tables"]["daily"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["ips"].as_u64().unwrap(), r["new_ips"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        daily,
        [(1, 1), (0, 0), (2, 1)],
        "A on the 1st; a pause; A again and C new"
    );
    assert_eq!(v["summary"]["ips"], 2);
    assert_eq!(v["summary"]["org"], "censys");
    Ok(())
}

#[tokio::test]
async fn the_ip_and_port_pages() -> Result<()> {
    let (_dir, app) = fixture(&[]).await?;
    let v = json(&app, &format!("/api/v1/ip/198.51.100.7?{RANGE}")).await?;
    assert_eq!(v["summary"]["days"], 3);
    assert_eq!(v["summary"]["packets"], 35);
    assert_eq!(v["summary"]["class"], "benign");
    let ports: Vec<(u64, u64)> = v["tables"]["ports"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["port"].as_u64().unwrap(), r["days"].as_u64().unwrap()))
        .collect();
    assert_eq!(ports, [(23, 2), (80, 1), (2323, 1)]);
    // IPv4-mapped IPv6 is the IPv4 address.
    let v = json(&app, &format!("/api/v1/ip/::ffff:198.51.100.7?{RANGE}")).await?;
    assert_eq!(v["summary"]["ip"], "198.51.100.7");

    let v = json(&app, &format!("/api/v1/port/tcp/23?{RANGE}")).await?;
    assert_eq!(v["summary"]["sources"], 2);
    let packets: Vec<u64> = v["tables"]["daily"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["packets"].as_u64().unwrap())
        .collect();
    assert_eq!(packets, [100, 200, 300]);
    let related: Vec<(u64, u64)> = v["tables"]["related_ports"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["port"].as_u64().unwrap(), r["sources"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        related,
        [(2323, 1)],
        "A's other port on a day it probed 23 (80 was on another day)"
    );
    Ok(())
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_pages_are_one_shell() -> Result<()> {
    let (_dir, app) = fixture(&[]).await?;
    for uri in [
        "/",
        "/search?q=x",
        "/ip/198.51.100.7",
        "/port/tcp/23",
        "/org/censys",
        "/sensors",
        "/assets/app.js",
        "/api/v1/meta",
        "/api/v1/nothing",
    ] {
        let (_, h, _) = get(&app, uri).await?;
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str()?;
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{uri}: {csp}"
        );
        assert!(!csp.contains("unsafe"), "{uri}: {csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    }
    let (s, h, body) = get(&app, "/ip/198.51.100.7").await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(String::from_utf8(body)?.contains(r#"<script type="module" src="/assets/app.js">"#));
    let (_, h, _) = get(&app, "/assets/app.js").await?;
    let etag = h[header::ETAG].to_str()?.to_string();
    let r = app
        .clone()
        .oneshot(
            Request::get("/assets/app.js")
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())?,
        )
        .await?;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let (s, _, _) = get(&app, "/assets/index.html").await?;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "pages are served by path, not as assets"
    );
    Ok(())
}

#[tokio::test]
async fn with_tokens_every_request_needs_one() -> Result<()> {
    let (_dir, app) = fixture(&["s3cret-token"]).await?;
    let (s, _, body) = get(&app, "/api/v1/meta").await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8(body)?.contains("unauthorized"));
    let (s, _, body) = get(&app, "/search?q=port:23").await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        String::from_utf8(body)?.contains(r#"action="/login""#),
        "the login page"
    );
    let (s, _, _) = get(&app, "/assets/style.css").await?;
    assert_eq!(s, StatusCode::OK, "the login page's assets are open");
    let with = |t: &str| {
        Request::get("/api/v1/meta")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.clone().oneshot(with("wrong")).await?.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.clone().oneshot(with("s3cret-token")).await?.status(),
        StatusCode::OK
    );
    // The login form sets the cookie that then opens the API.
    let bad = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("token=nope"))?;
    assert_eq!(
        app.clone().oneshot(bad).await?.status(),
        StatusCode::UNAUTHORIZED
    );
    let good = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("token=s3cret-token"))?;
    let r = app.clone().oneshot(good).await?;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE].to_str()?.to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = app
        .clone()
        .oneshot(
            Request::get("/api/v1/meta")
                .header(header::COOKIE, pair)
                .body(Body::empty())?,
        )
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    Ok(())
}

#[test]
fn a_non_loopback_console_needs_a_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut o = ConsoleOptions::new("0.0.0.0:8080".parse()?, dir.path().to_path_buf());
    let e = o.check_exposure().unwrap_err();
    assert!(
        matches!(e, scanscope_console::ConsoleError::Insecure { .. }),
        "{e}"
    );
    o.tokens = vec!["t".into()];
    assert!(!o.check_exposure()?);
    o.tokens.clear();
    o.insecure = true;
    assert!(o.check_exposure()?, "served open on purpose");
    Ok(())
}

/// The sensors page: a gauge (spool backlog) and the agent version are the newest interval's,
/// counters are summed; an older file without the version column still reads.
#[tokio::test]
async fn the_sensors_page_shows_the_newest_version_and_backlog() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || write_stats(&root)).await??;
    let app = console(dir.path(), &[])?;
    let v = json(&app, &format!("/api/v1/sensors?{RANGE}")).await?;
    let row = &v["tables"]["sensors"]["rows"][0];
    assert_eq!(row["sensor"], "ams-1");
    assert_eq!(row["agent_version"], "0.2.0");
    assert_eq!(
        (row["spool_bytes"].as_u64(), row["pending_batches"].as_u64()),
        (Some(40), Some(3))
    );
    let counters: Vec<(String, u64)> = v["tables"]["counters"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["counter"].as_str().unwrap().to_string(),
                r["value"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counters,
        [("dropped".to_string(), 30)],
        "gauges are not summed as counters"
    );
    Ok(())
}

/// Intervals of one sensor at 01:00 (0.1.0, spool 500), 03:00 (0.2.0, spool 40) and 02:00 (no
/// version, spool 9), with `dropped` 5 each; then the same in a file without the version column.
fn write_stats(root: &std::path::Path) -> Result<()> {
    use scanscope_common::gauge;
    use scanscope_lake::{
        paths,
        tables::sensor_stats::{StatsBuilder, StatsRow},
    };
    let lake = Lake::local(root)?;
    let mut b = StatsBuilder::default();
    for (h, version, spool) in [
        (1, Some("0.1.0"), 500),
        (3, Some("0.2.0"), 40),
        (2, None, 9),
    ] {
        for (counter, value) in [
            (gauge::SPOOL_BYTES, spool),
            (gauge::PENDING_BATCHES, h),
            ("dropped", 5),
        ] {
            b.push(&StatsRow {
                interval_start: ts(1, h as u32),
                interval_secs: 60.0,
                sensor: "ams-1",
                counter,
                kind: None,
                port: None,
                value,
                agent_version: version,
            });
        }
    }
    let batch = b.finish()?;
    lake.write_batch(
        &paths::part_file(StatsRow::TABLE, day(1), 1),
        StatsRow::TABLE,
        &batch,
    )?;
    // A file from before the column: the same counters, no version.
    let old = batch.project(&(0..batch.num_columns() - 1).collect::<Vec<_>>())?;
    lake.write_batch(
        &paths::part_file(StatsRow::TABLE, day(1), 2),
        StatsRow::TABLE,
        &old,
    )?;
    Ok(())
}
