//! Transport end to end: the agent's uplink (the library `scanscope-sensor` uses) against the
//! real `scanscope-collector` binary on loopback. Faults: kill -9 of the collector mid-stream,
//! the collector down for a minute, an agent crash with a full spool, a full disk; security:
//! TLS, mutual TLS, bearer tokens; bad input: malformed and oversized batches.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use scanscope_proto::v1::{Ack, Batch, StatusRequest, StatusResponse, ingest_client::IngestClient};
use scanscope_tests::transport::{
    Certs, CollectorProc, check_synthetic, read_table, synthetic_batch,
    synthetic_batch_with_events, synthetic_packets, table_files, temp_files,
};
use sensor_user::uplink::{ClientTls, Uplink, UplinkOptions};
use tonic::{
    Code, Request, Status,
    transport::{Certificate, ClientTlsConfig, Endpoint, Identity},
};

fn opts(urls: Vec<String>, sensor: &str, spool: &Path) -> UplinkOptions {
    let mut o = UplinkOptions::new(urls, sensor.into(), spool.to_path_buf());
    o.backoff_min = Duration::from_millis(100);
    o.backoff_max = Duration::from_secs(2);
    o.window = 8;
    o
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".batch"))
        .count()
}

async fn channel(
    url: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<tonic::transport::Channel, Status> {
    let mut ep =
        Endpoint::from_shared(url.to_string()).map_err(|e| Status::internal(e.to_string()))?;
    if let Some(t) = tls {
        ep = ep
            .tls_config(t)
            .map_err(|e| Status::internal(e.to_string()))?;
    }
    ep.connect()
        .await
        .map_err(|e| Status::unavailable(format!("connect: {e:?}")))
}

/// Streams `batches` on one raw stream; the acks, or the status the stream ended with.
async fn raw_stream(
    url: &str,
    tls: Option<ClientTlsConfig>,
    token: Option<&str>,
    batches: Vec<Batch>,
) -> Result<Vec<Ack>, Status> {
    let ch = channel(url, tls).await?;
    let mut c = IngestClient::new(ch).max_encoding_message_size(usize::MAX);
    let mut req = Request::new(tokio_stream::iter(batches));
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let mut s = c.stream(req).await?.into_inner();
    let mut acks = Vec::new();
    while let Some(a) = s.message().await? {
        acks.push(a);
    }
    Ok(acks)
}

async fn status(
    url: &str,
    tls: Option<ClientTlsConfig>,
    token: Option<&str>,
) -> Result<StatusResponse, Status> {
    let ch = channel(url, tls).await?;
    let mut c = IngestClient::new(ch);
    let mut req = Request::new(StatusRequest {});
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    Ok(c.status(req).await?.into_inner())
}

fn with_ids(mut b: Batch, sensor: &str, seq: u64) -> Batch {
    b.sensor_id = sensor.into();
    b.seq = seq;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_stored_once_and_status_reports_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "0.2"])?;
    let up = Uplink::start(opts(vec![c.url()], "s-basic", &dir.path().join("spool")))?;
    for i in 0..20 {
        up.push(synthetic_batch(i, 500))?;
    }
    let (stats, left) = up.finish(Duration::from_secs(30)).await;
    assert_eq!((stats.pushed, stats.acked, left), (20, 20, 0));
    // Resending an acknowledged batch (same agent instance, same seq) is recognised and not
    // written again.
    let instance = std::fs::read_to_string(dir.path().join("spool/instance"))?;
    let resend = Batch {
        instance_id: u64::from_str_radix(instance.trim(), 16)?,
        ..with_ids(synthetic_batch(0, 500), "s-basic", 1)
    };
    let acks = raw_stream(&c.url(), None, None, vec![resend]).await?;
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].status,
        scanscope_proto::v1::AckStatus::Duplicate as i32
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let st = status(&c.url(), None, None).await?;
    let s = st
        .sensors
        .iter()
        .find(|s| s.sensor_id == "s-basic")
        .context("sensor in status")?;
    assert_eq!((s.last_seq, s.batches, s.rows), (20, 20, 20 * 500));
    assert_eq!(st.duplicates, 1);
    let flows = st.tables.iter().find(|t| t.table == "flows").unwrap();
    assert_eq!(flows.rows, 20 * 500);
    c.stop()?;
    let packets = check_synthetic(&data, "s-basic", 20, 500)?;
    assert_eq!(packets, 20 * synthetic_packets(500));
    assert!(temp_files(&data).is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_collector_mid_stream_loses_and_duplicates_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "0.3"])?;
    let up = Uplink::start(opts(vec![c.url()], "s-kill", &dir.path().join("spool")))?;
    const N: u32 = 300;
    const ROWS: u32 = 200;
    let pusher = async {
        for i in 0..N {
            up.push(synthetic_batch(i, ROWS)).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let killer = async {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(800)).await;
            c.kill9().unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.restart().unwrap();
        }
    };
    tokio::join!(pusher, killer);
    let (stats, left) = up.finish(Duration::from_secs(60)).await;
    assert_eq!(left, 0, "all batches acknowledged in the end: {stats:?}");
    assert_eq!(stats.acked, u64::from(N));
    c.stop()?;
    let replays = c.log_text().matches("replayed write-ahead log").count();
    println!("collector restarts replayed the WAL {replays} times; agent stats {stats:?}");
    let packets = check_synthetic(&data, "s-kill", N, ROWS)?;
    assert_eq!(packets, u64::from(N) * synthetic_packets(ROWS));
    assert!(temp_files(&data).is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_for_a_minute_agent_spools_then_replays() -> Result<()> {
    let downtime: u64 = std::env::var("SCANSCOPE_TEST_DOWNTIME_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let spool = dir.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let up = Uplink::start(opts(vec![url], "s-down", &spool))?;
    let n = 30u32;
    let start = Instant::now();
    for i in 0..n {
        up.push(synthetic_batch(i, 100))?;
        let next = Duration::from_secs(downtime) * (i + 1) / n;
        tokio::time::sleep(next.saturating_sub(start.elapsed())).await;
    }
    let st = up.stats();
    assert_eq!((st.spooled, st.acked), (u64::from(n), 0));
    assert_eq!(spool_files(&spool), n as usize);
    let mut c = CollectorProc::start(
        &format!("127.0.0.1:{port}"),
        &data,
        &["--flush-secs", "0.3"],
    )?;
    let (stats, left) = up.finish(Duration::from_secs(60)).await;
    assert_eq!((left, stats.acked), (0, u64::from(n)));
    assert_eq!(spool_files(&spool), 0);
    c.stop()?;
    check_synthetic(&data, "s-down", n, 100)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_agent_replays_its_spool_after_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let spool = dir.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let up = Uplink::start(opts(vec![url.clone()], "s-crash", &spool))?;
    for i in 0..10 {
        up.push(synthetic_batch(i, 50))?;
    }
    up.abort().await; // like kill -9: nothing more is written
    assert_eq!(spool_files(&spool), 10);
    let mut c = CollectorProc::start(
        &format!("127.0.0.1:{port}"),
        &data,
        &["--flush-secs", "0.3"],
    )?;
    let up = Uplink::start(opts(vec![url], "s-crash", &spool))?;
    let seq = up.push(synthetic_batch(10, 50))?;
    assert!(seq > 10, "seq keeps increasing across restarts (got {seq})");
    let (stats, left) = up.finish(Duration::from_secs(30)).await;
    assert_eq!((left, stats.acked), (0, 11));
    c.stop()?;
    check_synthetic(&data, "s-crash", 11, 50)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_second_collector() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "0.2"])?;
    let up = Uplink::start(opts(
        vec![dead, c.url()],
        "s-failover",
        &dir.path().join("spool"),
    ))?;
    for i in 0..5 {
        up.push(synthetic_batch(i, 10))?;
    }
    let (stats, left) = up.finish(Duration::from_secs(30)).await;
    assert_eq!((left, stats.acked), (0, 5));
    c.stop()?;
    check_synthetic(&data, "s-failover", 5, 10)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mutual_tls_and_tokens_refuse_bad_credentials() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = Certs::generate(dir.path())?;
    let data = dir.path().join("lake");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# sensor-id token\ns-tls s3cret\n")?;
    let p = |x: &Path| x.display().to_string();
    let (sc, sk, ca, tf) = (
        p(&certs.server_cert),
        p(&certs.server_key),
        p(&certs.ca),
        p(&tokens),
    );
    let mut c = CollectorProc::start(
        "127.0.0.1:0",
        &data,
        &[
            "--flush-secs",
            "0.2",
            "--tls-cert",
            &sc,
            "--tls-key",
            &sk,
            "--client-ca",
            &ca,
            "--token-file",
            &tf,
        ],
    )?;
    let url = format!("https://localhost:{}", c.addr.port());
    let ca_pem = std::fs::read(&certs.ca)?;
    let tls = |cert: Option<(&Path, &Path)>| {
        let mut t = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem))
            .domain_name("localhost");
        if let Some((c, k)) = cert {
            t = t.identity(Identity::from_pem(
                std::fs::read(c).unwrap(),
                std::fs::read(k).unwrap(),
            ));
        }
        t
    };
    let good_cert = Some((certs.client_cert.as_path(), certs.client_key.as_path()));

    // The agent with every credential right.
    let mut o = opts(vec![url.clone()], "s-tls", &dir.path().join("spool"));
    o.token = Some("s3cret".into());
    o.tls = ClientTls {
        ca: Some(certs.ca.clone()),
        cert: Some(certs.client_cert.clone()),
        key: Some(certs.client_key.clone()),
        domain: None,
    };
    let up = Uplink::start(o)?;
    for i in 0..3 {
        up.push(synthetic_batch(i, 20))?;
    }
    let (stats, left) = up.finish(Duration::from_secs(30)).await;
    assert_eq!((left, stats.acked), (0, 3));

    let intruder = |seq| vec![with_ids(synthetic_batch(99, 20), "intruder", seq)];
    // Client certificate but no token, or a wrong one: UNAUTHENTICATED.
    let e = raw_stream(&url, Some(tls(good_cert)), None, intruder(1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = raw_stream(&url, Some(tls(good_cert)), Some("guess"), intruder(1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // Right token, but no client certificate / one from another CA: the handshake fails.
    assert!(
        raw_stream(&url, Some(tls(None)), Some("s3cret"), intruder(1))
            .await
            .is_err()
    );
    let rogue = Some((certs.rogue_cert.as_path(), certs.rogue_key.as_path()));
    assert!(
        raw_stream(&url, Some(tls(rogue)), Some("s3cret"), intruder(1))
            .await
            .is_err()
    );
    // Every credential right, but a batch for a sensor neither the token nor the certificate
    // names: PERMISSION_DENIED, counted, nothing stored.
    let e = raw_stream(&url, Some(tls(good_cert)), Some("s3cret"), intruder(1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Plain text to the TLS port fails.
    let plain = format!("http://127.0.0.1:{}", c.addr.port());
    assert!(
        raw_stream(&plain, None, Some("s3cret"), intruder(1))
            .await
            .is_err()
    );

    let st = status(&url, Some(tls(good_cert)), Some("s3cret")).await?;
    let refused = st
        .rejected
        .iter()
        .find(|r| r.name == "unauthenticated")
        .map(|r| r.value);
    assert_eq!(refused, Some(2));
    let denied = st
        .rejected
        .iter()
        .find(|r| r.name == "permission_denied")
        .map(|r| r.value);
    assert_eq!(denied, Some(1));
    assert_eq!(
        st.sensors
            .iter()
            .map(|s| s.sensor_id.as_str())
            .collect::<Vec<_>>(),
        ["s-tls"]
    );
    assert_eq!(
        status(&url, Some(tls(good_cert)), None)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    c.stop()?;
    check_synthetic(&data, "s-tls", 3, 20)?;
    let keys = scanscope_tests::transport::flow_keys(&data)?;
    assert!(
        keys.keys().all(|(s, _, _)| s == "s-tls"),
        "only the authenticated sensor's rows"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_batches_are_refused_and_others_go_on() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start(
        "127.0.0.1:0",
        &data,
        &["--flush-secs", "0.2", "--max-batch-bytes", "200000"],
    )?;
    let url = c.url();
    let up = Uplink::start(opts(vec![url.clone()], "s-good", &dir.path().join("spool")))?;
    for i in 0..5 {
        up.push(synthetic_batch(i, 100))?;
    }
    // Malformed: seq 0; a bad sensor id; a 3-byte address; a value out of range.
    let e = raw_stream(
        &url,
        None,
        None,
        vec![with_ids(synthetic_batch(50, 5), "bad-1", 0)],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = raw_stream(
        &url,
        None,
        None,
        vec![with_ids(synthetic_batch(51, 5), "bad sensor!", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let mut b = with_ids(synthetic_batch(52, 5), "bad-2", 1);
    b.flows[3].src_ip = vec![1, 2, 3].into();
    // A good batch first on the same stream: acknowledged, then the refusal.
    let first = with_ids(synthetic_batch(53, 5), "bad-2", 1);
    let mut b2 = b.clone();
    b2.seq = 2;
    let e = raw_stream(&url, None, None, vec![first, b2])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // Oversized: ~450 kB > 200 kB.
    let big = with_ids(synthetic_batch(54, 10_000), "big-1", 1);
    let e = raw_stream(&url, None, None, vec![big]).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // The agent's own stream: a batch the collector refuses is dropped and counted; the next
    // ones go on.
    let mut bad = synthetic_batch(5, 10);
    bad.flows[0].packets = 0;
    let bad_packets: u64 = bad.flows.iter().map(|f| f.packets).sum();
    up.push(bad)?;
    for i in 6..11 {
        up.push(synthetic_batch(i, 100))?;
    }
    let (stats, left) = up.finish(Duration::from_secs(30)).await;
    assert_eq!(left, 0);
    // 10 good batches + 1 carrying the agent's report of the refused one.
    assert_eq!((stats.acked, stats.rejected_batches), (11, 1));
    let st = status(&url, None, None).await?;
    let rejected: u64 = st.rejected.iter().map(|r| r.value).sum();
    assert_eq!(rejected, 5, "{:?}", st.rejected);
    c.stop()?;
    // s-good has batches 0..5 and 6..11 (bad-2's first batch was fine too).
    let keys = scanscope_tests::transport::flow_keys(&data)?;
    let good = keys.keys().filter(|(s, _, _)| s == "s-good").count();
    assert_eq!(good, 10 * 100);
    assert_eq!(keys.keys().filter(|(s, _, _)| s == "bad-2").count(), 5);
    assert!(keys.keys().all(|(s, _, _)| s == "s-good" || s == "bad-2"));
    // Every refusal is in the lake's `lost` table; the agent's own report of its dropped batch
    // rode on a later batch.
    let mut collector_side = 0;
    let mut agent_side_packets = 0;
    for b in read_table(&data, "lost")? {
        use arrow::array::AsArray;
        let stage = b.column_by_name("stage").unwrap().as_string::<i32>();
        let sensor = b.column_by_name("sensor").unwrap().as_string::<i32>();
        let unit = b.column_by_name("unit").unwrap().as_string::<i32>();
        let count = b
            .column_by_name("count")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt64Type>();
        for i in 0..b.num_rows() {
            if stage.value(i) == "collector_rejected" && unit.value(i) == "batches" {
                collector_side += count.value(i);
            }
            if stage.value(i) == "collector_rejected"
                && sensor.value(i) == "s-good"
                && unit.value(i) == "packets"
            {
                agent_side_packets += count.value(i);
            }
        }
    }
    // 5 recorded by the collector + 1 reported by the agent.
    assert_eq!(collector_side, 6);
    assert_eq!(agent_side_packets, bad_packets);
    Ok(())
}

/// Needs root (mounts a tmpfs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_stops_acks_then_recovers_without_corrupt_files() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let why = (!root).then(|| "disk-full test needs root to mount a tmpfs".to_string());
    if scanscope_testkit::gate::skip(why) {
        return Ok(());
    }
    struct Mount(std::path::PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status()
                .ok();
        }
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    std::fs::create_dir(&data)?;
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&data)
        .status()?
        .success();
    anyhow::ensure!(ok, "mounting a tmpfs failed");
    let _m = Mount(data.clone());
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "0.2"])?;
    let up = Uplink::start(opts(vec![c.url()], "s-full", &dir.path().join("spool")))?;
    let n = 120u32;
    let mut saw_full = false;
    for i in 0..n {
        up.push(synthetic_batch_with_events(i, 1000, 100))?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !saw_full && i % 10 == 9 {
            saw_full = status(&c.url(), None, None)
                .await
                .is_ok_and(|s| s.disk_full);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    saw_full |= status(&c.url(), None, None)
        .await
        .is_ok_and(|s| s.disk_full);
    assert!(saw_full, "the 1 MiB tmpfs never filled:\n{}", c.log_text());
    let pending = up.pending();
    assert!(pending > 0, "with the disk full, batches wait at the agent");
    // No partial file stays behind (a flush the collector retries meanwhile has its hidden
    // file only while it writes); every committed file reads.
    let mut left = temp_files(&data);
    let until = Instant::now() + Duration::from_secs(3);
    while !left.is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = temp_files(&data);
    }
    assert!(left.is_empty(), "a partial file stays: {left:?}");
    for t in ["flows", "sensor_stats", "lost"] {
        read_table(&data, t).with_context(|| format!("{t} unreadable while the disk is full"))?;
    }
    let committed = table_files(&data, "flows").len();
    // Space comes back: the collector resumes by itself and the agent's backlog drains.
    let ok = std::process::Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(&data)
        .status()?
        .success();
    anyhow::ensure!(ok, "remount failed");
    let (stats, left) = up.finish(Duration::from_secs(90)).await;
    assert_eq!((left, stats.acked), (0, u64::from(n)), "{stats:?}");
    c.stop()?;
    println!("{committed} flows files before space came back; {pending} batches waited");
    check_synthetic(&data, "s-full", n, 1000)?;
    Ok(())
}

/// `(packets, port_count, is_scanner)` of `src` in the lake's `ip_daily` (one file per day).
fn ip_daily_row(data: &Path, src: &str) -> Result<Option<(u64, u32, bool)>> {
    use arrow::array::{Array, BooleanArray, StringArray, UInt32Array, UInt64Array};
    let batches = read_table(data, "ip_daily")?;
    for b in &batches {
        let col = |n: &str| b.column_by_name(n).context("column").cloned();
        let ips = col("src_ip")?;
        let ips = ips
            .as_any()
            .downcast_ref::<StringArray>()
            .context("src_ip")?;
        let pk = col("packets")?;
        let pk = pk
            .as_any()
            .downcast_ref::<UInt64Array>()
            .context("packets")?;
        let pc = col("port_count")?;
        let pc = pc
            .as_any()
            .downcast_ref::<UInt32Array>()
            .context("port_count")?;
        let sc = col("is_scanner")?;
        let sc = sc
            .as_any()
            .downcast_ref::<BooleanArray>()
            .context("is_scanner")?;
        for i in 0..ips.len() {
            if ips.value(i) == src {
                return Ok(Some((pk.value(i), pc.value(i), sc.value(i))));
            }
        }
    }
    Ok(None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_rolls_up_a_closed_day_by_itself_and_again_after_late_data() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start(
        "127.0.0.1:0",
        &data,
        &[
            "--flush-secs",
            "0.2",
            "--rollup-grace-secs",
            "0",
            "--rollup-check-secs",
            "0.3",
        ],
    )?;
    // Yesterday noon: a closed day.
    let yesterday = chrono::Utc::now().date_naive().pred_opt().unwrap();
    let noon = yesterday
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let batch = |seq: u64, ports: std::ops::RangeInclusive<u32>| {
        let mut b = with_ids(synthetic_batch(7, 0), "s-roll", seq);
        b.flows = ports
            .map(|p| scanscope_proto::v1::Flow {
                interval_start_us: noon,
                interval_secs: 1.0,
                src_ip: vec![10, 9, 0, 1].into(),
                dst_ip: vec![198, 18, 1, 1].into(),
                proto: 6,
                kind: scanscope_proto::v1::Kind::TcpSyn as i32,
                dst_port: p,
                packets: 2,
                bytes: 80,
                first_seen_us: noon,
                last_seen_us: noon,
                ..Default::default()
            })
            .collect();
        b
    };
    raw_stream(&c.url(), None, None, vec![batch(1, 1..=12)]).await?;
    let wait_for = |want: (u64, u32, bool)| {
        let data = data.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let row = ip_daily_row(&data, "10.9.0.1").ok().flatten();
                if row == Some(want) {
                    return Ok::<_, anyhow::Error>(());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "ip_daily has {row:?}, want {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for((24, 12, true)).await?;
    // Late data for the closed day: the collector rolls it up again, without duplicates.
    raw_stream(&c.url(), None, None, vec![batch(2, 13..=20)]).await?;
    wait_for((40, 20, true)).await?;
    let day_dir = data.join(format!("ip_daily/date={yesterday}"));
    let files: Vec<_> = std::fs::read_dir(&day_dir)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("rollup.parquet")]);
    c.stop()?;
    Ok(())
}

/// Review H2: a peer that sends `seq = u64::MAX` for another sensor's id used to make every
/// later real batch of that sensor a "duplicate". Now the jump is refused, and the agent's
/// batches live under its own instance's watermark anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_huge_seq_silences_nobody() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "0.2"])?;
    let spool = dir.path().join("spool");
    let up = Uplink::start(opts(vec![c.url()], "s-victim", &spool))?;
    for i in 0..3 {
        up.push(synthetic_batch(i, 10))?;
    }
    let (stats, _) = up.finish(Duration::from_secs(30)).await;
    assert_eq!(stats.acked, 3);
    let e = raw_stream(
        &c.url(),
        None,
        None,
        vec![with_ids(synthetic_batch(99, 10), "s-victim", u64::MAX)],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let up = Uplink::start(opts(vec![c.url()], "s-victim", &spool))?;
    for i in 3..6 {
        up.push(synthetic_batch(i, 10))?;
    }
    let (stats, left) = up.finish(Duration::from_secs(30)).await;
    assert_eq!((stats.acked, left), (3, 0));
    c.stop()?;
    check_synthetic(&data, "s-victim", 6, 10)?;
    Ok(())
}

/// Review H3: a re-deployed agent (fresh spool: seqs from 1 again) and a second agent with the
/// same sensor id used to lose their batches as "duplicates". Now each agent instance has its
/// own watermark: everything is stored, and Status tells both cases apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeployed_or_second_agent_with_the_same_id_loses_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "0.2"])?;
    let (a, b) = (dir.path().join("spool-a"), dir.path().join("spool-b"));
    let run = |spool: std::path::PathBuf, range: std::ops::Range<u32>| {
        let url = c.url();
        async move {
            let up = Uplink::start(opts(vec![url], "s-reset", &spool))?;
            for i in range.clone() {
                up.push(synthetic_batch(i, 10))?;
            }
            let (stats, left) = up.finish(Duration::from_secs(30)).await;
            anyhow::ensure!(
                (stats.acked, left) == (range.len() as u64, 0),
                "{stats:?} {left}"
            );
            anyhow::Ok(())
        }
    };
    run(a.clone(), 0..5).await?;
    // Re-deployed: a new spool, its seqs start at 1 again.
    run(b.clone(), 5..10).await?;
    let st = status(&c.url(), None, None).await?;
    let s = st
        .sensors
        .iter()
        .find(|s| s.sensor_id == "s-reset")
        .unwrap();
    assert_eq!((s.instances, s.shared_id), (2, false), "{s:?}");
    // Both agents at once: their batches alternate.
    for (spool, i) in [(&a, 10), (&b, 11), (&a, 12), (&b, 13)] {
        run(spool.clone(), i..i + 1).await?;
    }
    let st = status(&c.url(), None, None).await?;
    let s = st
        .sensors
        .iter()
        .find(|s| s.sensor_id == "s-reset")
        .unwrap();
    assert_eq!((s.instances, s.shared_id), (2, true), "{s:?}");
    assert!(
        c.log_text()
            .contains("two agents send with the same sensor id"),
        "logged once"
    );
    c.stop()?;
    check_synthetic(&data, "s-reset", 14, 10)?;
    Ok(())
}

/// A token names the sensors its holder may write: a batch for another id is refused
/// (PERMISSION_DENIED, counted), and Status shows a token holder only its own sensors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_name_the_sensors_they_may_write() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "s-a tok-a\ns-b tok-b\n* tok-admin\n")?;
    let tf = tokens.display().to_string();
    let mut c = CollectorProc::start(
        "127.0.0.1:0",
        &data,
        &["--flush-secs", "0.2", "--token-file", &tf],
    )?;
    let mut o = opts(vec![c.url()], "s-a", &dir.path().join("spool"));
    o.token = Some("tok-a".into());
    assert!(
        Uplink::start(o.clone()).is_err(),
        "a token over plain http needs insecure"
    );
    o.insecure = true;
    let up = Uplink::start(o)?;
    for i in 0..3 {
        up.push(synthetic_batch(i, 10))?;
    }
    let (stats, left) = up.finish(Duration::from_secs(30)).await;
    assert_eq!((stats.acked, left), (3, 0));
    let e = raw_stream(
        &c.url(),
        None,
        Some("tok-a"),
        vec![with_ids(synthetic_batch(9, 10), "s-b", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let acks = raw_stream(
        &c.url(),
        None,
        Some("tok-b"),
        vec![with_ids(synthetic_batch(9, 10), "s-b", 1)],
    )
    .await?;
    assert_eq!(acks.len(), 1);
    let ids = |st: StatusResponse| -> Vec<String> {
        st.sensors.into_iter().map(|s| s.sensor_id).collect()
    };
    assert_eq!(ids(status(&c.url(), None, Some("tok-a")).await?), ["s-a"]);
    let all = status(&c.url(), None, Some("tok-admin")).await?;
    let denied = all
        .rejected
        .iter()
        .find(|r| r.name == "permission_denied")
        .map(|r| r.value);
    assert_eq!(denied, Some(1));
    assert_eq!(ids(all), ["s-a", "s-b"]);
    c.stop()?;
    check_synthetic(&data, "s-a", 3, 10)?;
    check_synthetic(&data, "s-b", 1, 10)?;
    Ok(())
}

/// Streams `batches` on one raw stream; every ack that arrived, and the status the stream
/// ended with, if it ended with one.
async fn raw_stream_all(url: &str, batches: Vec<Batch>) -> Result<(Vec<Ack>, Option<Status>)> {
    let ch = channel(url, None).await?;
    let mut c = IngestClient::new(ch).max_encoding_message_size(usize::MAX);
    let mut s = c
        .stream(Request::new(tokio_stream::iter(batches)))
        .await?
        .into_inner();
    let mut acks = Vec::new();
    loop {
        match s.message().await {
            Ok(Some(a)) => acks.push(a),
            Ok(None) => return Ok((acks, None)),
            Err(e) => return Ok((acks, Some(e))),
        }
    }
}

/// Review M1: an oversized message used to end the stream at once, overtaking the acks of the
/// batches before it (the agent then dropped the wrong batch). Now the refusal comes after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_refusal_comes_after_the_acks_before_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start(
        "127.0.0.1:0",
        &data,
        &["--flush-secs", "0.2", "--max-batch-bytes", "200000"],
    )?;
    for round in 0..5u64 {
        let good = with_ids(synthetic_batch(60, 5), "s-order", round * 2 + 1);
        let big = with_ids(synthetic_batch(61, 10_000), "s-order", round * 2 + 2);
        let (acks, end) = raw_stream_all(&c.url(), vec![good, big]).await?;
        assert_eq!(
            acks.iter().map(|a| a.seq).collect::<Vec<_>>(),
            [round * 2 + 1],
            "round {round}"
        );
        assert_eq!(end.map(|e| e.code()), Some(Code::ResourceExhausted));
    }
    c.stop()?;
    Ok(())
}

/// Review H4: every batch refused (a fault it carries) used to make the agent reconnect at once,
/// forever. Now each refusal in a row waits longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_in_a_row_back_off() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "0.2"])?;
    let up = Uplink::start(opts(vec![c.url()], "s-refused", &dir.path().join("spool")))?;
    for i in 0..30 {
        let mut bad = synthetic_batch(i, 3);
        bad.flows[0].packets = 0; // refused: INVALID_ARGUMENT
        up.push(bad)?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = status(&c.url(), None, None).await?;
    let refused: u64 = st
        .rejected
        .iter()
        .filter(|r| r.name == "invalid_argument")
        .map(|r| r.value)
        .sum();
    // backoff_min 100 ms: refusals at ~0, 0, 0.1, 0.3, 0.7, 1.5 s (+ the lost reports between).
    assert!((3..=8).contains(&refused), "{refused} refusals in 3 s");
    assert!(up.pending() > 0, "the rest waits at the agent");
    up.abort().await;
    c.stop()?;
    Ok(())
}

/// A peer whose stream stays open (an idle sensor, or a stalled or hostile one) used to keep the
/// collector from exiting after SIGTERM: its connection task held the store. Now the store is
/// stopped explicitly: what was acknowledged is in Parquet, and the collector exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_does_not_hold_up_shutdown() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "3600"])?;
    let ch = channel(&c.url(), None).await?;
    let mut client = IngestClient::new(ch);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(with_ids(synthetic_batch(70, 25), "s-open", 1))
        .await?;
    let mut acks = client
        .stream(Request::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
        .await?
        .into_inner();
    let ack = acks.message().await?.context("an ack")?;
    assert_eq!(ack.seq, 1);
    // The stream (tx) and the connection stay open through the stop.
    let stopped = tokio::task::spawn_blocking(move || c.stop().map(|()| c)).await?;
    let _c = stopped?;
    drop(tx);
    check_synthetic(&data, "s-open", 1, 25)?;
    Ok(())
}

/// `GET path` over plain HTTP/1.0; the body.
fn http_get(base: &str, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let addr = base.strip_prefix("http://").context("an http URL")?;
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("an HTTP answer")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    Ok(body.to_string())
}

/// The value of the sample line that starts with `series` (name and labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_metrics_report_ingest_as_it_happens() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start(
        "127.0.0.1:0",
        &data,
        &["--flush-secs", "0.2", "--console", "127.0.0.1:0"],
    )?;
    let console = c.console.clone().context("the console's address")?;
    let up = Uplink::start(opts(vec![c.url()], "s-metrics", &dir.path().join("spool")))?;
    for i in 0..10 {
        up.push(synthetic_batch(i, 100))?;
    }
    let (stats, _) = up.finish(Duration::from_secs(30)).await;
    assert_eq!(stats.acked, 10);
    let instance = std::fs::read_to_string(dir.path().join("spool/instance"))?;
    let resend = Batch {
        instance_id: u64::from_str_radix(instance.trim(), 16)?,
        ..with_ids(synthetic_batch(0, 100), "s-metrics", 1)
    };
    raw_stream(&c.url(), None, None, vec![resend]).await?;
    let bad = raw_stream(
        &c.url(),
        None,
        None,
        vec![with_ids(synthetic_batch(1, 5), "s-bad", 0)],
    )
    .await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let url = console.clone();
    let text = tokio::task::spawn_blocking(move || http_get(&url, "/metrics")).await??;
    let s = |series: &str| sample(&text, series);
    assert_eq!(
        s(r#"scanscope_ingest_sensor_batches_total{sensor="s-metrics"}"#),
        Some(10.0),
        "{text}"
    );
    assert_eq!(
        s(r#"scanscope_ingest_sensor_rows_total{sensor="s-metrics"}"#),
        Some(1000.0)
    );
    assert_eq!(
        s(r#"scanscope_ingest_committed_rows_total{table="flows"}"#),
        Some(1000.0)
    );
    assert_eq!(s("scanscope_ingest_duplicates_total"), Some(1.0));
    assert_eq!(
        s(r#"scanscope_ingest_refused_total{reason="invalid_argument"}"#),
        Some(1.0)
    );
    assert_eq!(
        s("scanscope_ingest_wal_bytes"),
        Some(0.0),
        "everything flushed"
    );
    assert_eq!(s("scanscope_ingest_up"), Some(1.0));
    assert!(
        s("scanscope_ingest_flush_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let lag = s(r#"scanscope_ingest_sensor_lag_seconds{sensor="s-metrics"}"#).context("lag")?;
    assert!((0.0..60.0).contains(&lag), "{lag}");
    assert!(text.ends_with("# EOF\n"));
    c.stop()?;
    Ok(())
}

#[test]
fn the_console_over_tls_needs_its_token_and_refuses_to_be_open_elsewhere() -> Result<()> {
    use scanscope_tests::console::ConsoleProc;
    let dir = tempfile::tempdir()?;
    let certs = Certs::generate(dir.path())?;
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake)?;
    let tokens = dir.path().join("console-tokens");
    std::fs::write(&tokens, "# console readers\nread-0nly-token\n")?;
    let p = |x: &Path| x.display().to_string();
    let (sc, sk, tf) = (p(&certs.server_cert), p(&certs.server_key), p(&tokens));
    let c = ConsoleProc::start_with(
        &lake,
        "127.0.0.1:0",
        &dir.path().join("console.log"),
        &[
            "--console-token-file",
            &tf,
            "--console-tls-cert",
            &sc,
            "--console-tls-key",
            &sk,
        ],
    )?;
    let port = c.url.rsplit(':').next().context("port")?.to_string();
    let curl = |scheme: &str, path: &str, token: Option<&str>| -> Result<String> {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(&certs.ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let out = cmd
            .arg(format!("{scheme}://localhost:{port}{path}"))
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    assert_eq!(curl("https", "/api/v1/meta", None)?, "401");
    assert_eq!(curl("https", "/api/v1/meta", Some("wrong"))?, "401");
    assert_eq!(
        curl("https", "/api/v1/meta", Some("read-0nly-token"))?,
        "200"
    );
    assert_eq!(curl("https", "/metrics", None)?, "401");
    assert_eq!(curl("https", "/metrics", Some("read-0nly-token"))?, "200");
    assert_eq!(curl("https", "/search", None)?, "401", "the login page");
    assert_ne!(
        curl("http", "/api/v1/meta", Some("read-0nly-token"))?,
        "200",
        "TLS only"
    );
    drop(c);
    // A non-loopback address without a token is refused before anything listens.
    let e = ConsoleProc::start(&lake, "0.0.0.0:0", &dir.path().join("open.log")).unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    Ok(())
}
