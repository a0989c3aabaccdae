//! `cargo xtask bench responder`: sessions per second the responder accepts, answers and
//! records (connect, an HTTP request, the answer, close, the record serialised as a JSON line),
//! CPU per 1 000 sessions and memory per idle session — beside the floor: a plain tokio accept
//! loop that only reads and closes, driven by the same load generator in the same process.
//!
//! Everything runs on loopback (127.0.0.1–127.0.0.8 as client sources). CPU is the process's
//! (server and load generator together), so the ratio to the floor is the figure to read.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sensor_user::respond::{self, Listeners, RespondConfig, RespondStats};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};

/// Sessions per measured run.
const SESSIONS: u64 = 40_000;
/// Clients connecting at once.
const CONCURRENCY: usize = 64;
/// Idle connections held for the memory figure.
const IDLE: usize = 2_000;
const REQUEST: &[u8] = b"GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: scanscope-bench\r\n\r\n";

fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

async fn connect(to: SocketAddr, i: u64) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 8) as u8)),
        0,
    ))?;
    s.connect(to).await
}

/// Runs `SESSIONS` request/answer sessions against `to`; (sessions/s, CPU s per 1 000, failures).
async fn load(to: SocketAddr) -> (f64, f64, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (cpu0, t0) = (cpu_secs(), Instant::now());
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, failed) = (next.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= SESSIONS {
                    break;
                }
                let ok = async {
                    let mut s = connect(to, i).await?;
                    s.write_all(REQUEST).await?;
                    while s.read(&mut buf).await? > 0 {}
                    std::io::Result::Ok(())
                }
                .await;
                if ok.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    (
        SESSIONS as f64 / secs,
        cpu / SESSIONS as f64 * 1000.0,
        failed.load(Ordering::Relaxed),
    )
}

/// Opens `IDLE` silent connections to `to`; the RSS growth per connection, in bytes.
async fn idle_memory(to: SocketAddr) -> f64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes();
    let mut held = Vec::with_capacity(IDLE);
    for i in 0..IDLE as u64 {
        if let Ok(s) = connect(to, i).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_bytes().saturating_sub(before);
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    grown as f64 / IDLE as f64
}

/// The floor: accept, read once, close.
async fn floor_server(l: TcpListener) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let _read = s.read(&mut buf).await;
        });
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // The floor.
        let floor = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let floor_addr = floor.local_addr().expect("addr");
        let floor_task = tokio::spawn(floor_server(floor));
        let _warm = load(floor_addr).await;
        let (floor_rate, floor_cpu, floor_failed) = load(floor_addr).await;
        let floor_idle = idle_memory(floor_addr).await;
        floor_task.abort();

        // The responder, with caps far above the load, recording every session.
        let listeners = Listeners::bind().expect("listeners");
        let addr = listeners.v4.local_addr().expect("addr");
        let cfg = RespondConfig::from_toml(
            "max_sessions = 65536\nmax_per_source = 4096\nmax_new_per_minute = 10000000\n\
             max_new_per_source = 1000000\nfirst_byte_secs = 30\nidle_secs = 30",
        )
        .expect("config");
        let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
        let stats = Arc::new(RespondStats::default());
        let server = tokio::spawn(respond::serve(
            listeners,
            cfg,
            "bench".into(),
            tx,
            stats.clone(),
        ));
        let recorded = Arc::new(AtomicU64::new(0));
        let rec = recorded.clone();
        let sink = tokio::spawn(async move {
            let mut out = Vec::with_capacity(1 << 16);
            while let Some(s) = rx.recv().await {
                out.clear();
                let r = sensor_user::record::Record::Session(Box::new(s));
                serde_json::to_writer(&mut out, &r).expect("JSON");
                rec.fetch_add(1, Ordering::Relaxed);
            }
        });
        let _warm = load(addr).await;
        let before = recorded.load(Ordering::Relaxed);
        let (rate, cpu, failed) = load(addr).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = recorded.load(Ordering::Relaxed) - before;
        let idle = idle_memory(addr).await;
        server.abort();
        sink.abort();

        println!("responder benchmark: {SESSIONS} sessions, {CONCURRENCY} clients, loopback, 2 workers");
        println!("{:<34} {:>14} {:>14} {:>8}", "", "responder", "floor", "ratio");
        println!(
            "{:<34} {:>14.0} {:>14.0} {:>8.2}",
            "sessions/s",
            rate,
            floor_rate,
            floor_rate / rate
        );
        println!(
            "{:<34} {:>14.3} {:>14.3} {:>8.2}",
            "CPU s per 1 000 sessions",
            cpu,
            floor_cpu,
            cpu / floor_cpu
        );
        println!(
            "{:<34} {:>14.0} {:>14.0} {:>8.2}",
            "RSS bytes per idle session",
            idle,
            floor_idle,
            idle / floor_idle.max(1.0)
        );
        println!(
            "recorded {got} of {SESSIONS}; client failures: responder {failed}, floor {floor_failed}; \
             refused busy/source/rate: {}/{}/{}",
            stats.refused_busy.load(Ordering::Relaxed),
            stats.refused_source.load(Ordering::Relaxed),
            stats.refused_rate.load(Ordering::Relaxed),
        );
        println!("goal: ≥ 20 000 sessions/s and within 1.5× the floor");
    });
}
