//! `serve`: open the lake (replaying the WAL), start the store thread, the flush timer, the
//! periodic jobs the binary wires in (the daily rollup) and the gRPC server; on shutdown stop
//! accepting, flush, and return.
use std::{
    fs::File,
    net::SocketAddr,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use scanscope_lake::Lake;
use scanscope_proto::v1::ingest_server::IngestServer;
use tokio::net::TcpListener;
use tonic::{
    codec::CompressionEncoding, service::interceptor::InterceptedService, transport::Server,
};
use tracing::{error, info};

use crate::{
    auth::{Allowed, TlsFiles, TokenAuth},
    error::CollectorError,
    listener::{self, ConnLimits, ConnStats},
    source::grpc::IngestService,
    store::{Store, StoreConfig},
    validate::Limits,
};

/// What `scanscope-collector serve` is asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// Seconds between Parquet flushes.
    pub flush_secs: f64,
    /// Flush early once this many rows wait.
    pub flush_rows: usize,
    /// Flush early once this many bytes wait.
    pub flush_bytes: u64,
    /// Beyond this many bytes waiting for the lake, batches are refused (UNAVAILABLE).
    pub max_unflushed_bytes: u64,
    /// Most distinct sensor ids kept.
    pub max_sensors: usize,
    pub tls: Option<TlsFiles>,
    /// Accepted bearer tokens, each with the sensor ids it may write (empty: no token needed).
    pub tokens: Vec<(String, Allowed)>,
    pub limits: Limits,
    pub conn_limits: ConnLimits,
    /// Serve a non-loopback address without TLS and credentials (the operator said so).
    pub insecure: bool,
    /// Jobs run beside ingest, each on a blocking thread every `every` (the collector binary
    /// wires in the daily rollup here).
    pub jobs: Vec<PeriodicJob>,
    /// Filled in once the store is open, for `/metrics` scrapes.
    pub probe: crate::metrics::Probe,
    /// NetFlow/IPFIX listeners (none: off).
    pub netflow: crate::source::netflow::NetflowOptions,
}

/// A job the collector runs every `every` while it serves (one run at a time; a run that
/// fails logs and is retried at the next tick).
#[derive(Clone)]
pub struct PeriodicJob {
    pub name: &'static str,
    pub every: Duration,
    pub run: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for PeriodicJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodicJob")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish()
    }
}

impl ServeOptions {
    /// Refuses a non-loopback address without TLS and credentials (a token file or a client
    /// CA), unless `insecure`. True if the collector is exposed that way (`serve` warns).
    pub fn check_exposure(&self) -> Result<bool, CollectorError> {
        let protected = self
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca.is_some() || !self.tokens.is_empty());
        if self.listen.ip().is_loopback() || protected {
            return Ok(false);
        }
        if self.insecure {
            return Ok(true);
        }
        Err(CollectorError::Insecure { addr: self.listen })
    }

    /// Defaults for a data directory and address.
    pub fn new(listen: SocketAddr, data: PathBuf) -> Self {
        ServeOptions {
            listen,
            data,
            flush_secs: 60.0,
            flush_rows: 2_000_000,
            flush_bytes: 256 << 20,
            max_unflushed_bytes: 2 << 30,
            max_sensors: 10_000,
            tls: None,
            tokens: Vec::new(),
            limits: Limits::default(),
            conn_limits: ConnLimits::default(),
            insecure: false,
            jobs: Vec::new(),
            probe: crate::metrics::Probe::default(),
            netflow: Default::default(),
        }
    }
}

/// An exclusive lock on the data directory, held while the collector runs.
#[derive(Debug)]
struct DirLock(#[allow(dead_code, reason = "held for its lock")] File);

fn lock_dir(root: &Path) -> Result<DirLock, CollectorError> {
    let dd = |source| CollectorError::DataDir {
        path: root.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(root.join("_state")).map_err(dd)?;
    let f = File::create(root.join("_state").join("lock")).map_err(dd)?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(CollectorError::Locked(root.to_path_buf()));
    }
    Ok(DirLock(f))
}

/// Binds the listener (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, CollectorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CollectorError::Bind { addr, source })
}

/// Runs the collector on `listener` until `shutdown` completes.
pub async fn serve(
    opts: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CollectorError> {
    let _lock = lock_dir(&opts.data)?;
    if opts.check_exposure()? {
        tracing::warn!(
            addr = %opts.listen,
            "--insecure: listening without TLS and credentials; any host that reaches this address can write any sensor's data"
        );
    }
    // Batches are counted on the wire before they are decoded (decode amplification).
    scanscope_proto::codec::set_batch_limits(
        opts.limits.max_batch_rows,
        opts.limits.max_batch_rows.saturating_mul(4),
    );
    let mut cfg = StoreConfig::new(opts.data.clone(), Lake::local(&opts.data)?);
    cfg.flush_rows = opts.flush_rows;
    cfg.flush_bytes = opts.flush_bytes;
    cfg.max_unflushed_bytes = opts.max_unflushed_bytes;
    cfg.max_sensors = opts.max_sensors;
    let store = tokio::task::spawn_blocking(move || Store::open(cfg))
        .await
        .map_err(|_| CollectorError::StoreGone)??;
    let (handle, thread) = store.spawn(4096);
    let (stop_netflow, netflow_stopped) = tokio::sync::watch::channel(false);
    let mut netflow = Vec::new();
    let sockets = crate::source::netflow::bind(&opts.netflow).await?;
    let receivers =
        crate::source::netflow::Receiver::group(&opts.netflow, opts.limits, sockets.len())?;
    for (socket, rx) in sockets.into_iter().zip(receivers) {
        let mut stopped = netflow_stopped.clone();
        netflow.push(tokio::spawn(crate::source::netflow::run(
            socket,
            rx,
            handle.clone(),
            async move {
                let _sender_gone = stopped.wait_for(|s| *s).await;
            },
        )));
    }

    let flusher = {
        let h = handle.clone();
        let every = Duration::from_secs_f64(opts.flush_secs.max(0.05));
        tokio::spawn(async move {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                t.tick().await;
                h.try_flush();
            }
        })
    };

    let jobs: Vec<_> = opts
        .jobs
        .iter()
        .cloned()
        .map(|job| {
            tokio::spawn(async move {
                let mut t = tokio::time::interval(job.every.max(Duration::from_millis(50)));
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    t.tick().await;
                    let run = job.run.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || run()).await {
                        error!(job = job.name, error = %e, "periodic job panicked; it runs again at the next tick");
                    }
                }
            })
        })
        .collect();

    let auth = TokenAuth::new(opts.tokens.clone());
    let conn_stats = Arc::new(ConnStats::default());
    // Listed from the first scrape on, before the first flush.
    std::sync::LazyLock::force(&crate::store::FLUSH_SECONDS);
    if !opts.netflow.listen.is_empty() {
        std::sync::LazyLock::force(&crate::source::netflow::METRICS);
    }
    opts.probe
        .set(handle.clone(), conn_stats.clone(), auth.refused.clone());
    let mtls = opts.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    let svc = IngestServer::new(IngestService::new(
        handle.clone(),
        opts.limits,
        auth.clone(),
        mtls,
    ))
    .accept_compressed(CompressionEncoding::Zstd)
    .accept_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Zstd)
    .max_decoding_message_size(opts.limits.max_batch_bytes);
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // A sensor needs one stream (and a Status call now and then).
        .max_concurrent_streams(Some(8))
        .concurrency_limit_per_connection(8);
    if let Some(tls) = &opts.tls {
        builder = builder
            .tls_config(tls.server_config()?.timeout(Duration::from_secs(10)))
            .map_err(CollectorError::Tls)?;
    }
    let addr = listener.local_addr().ok();
    info!(
        addr = ?addr,
        data = %opts.data.display(),
        tls = opts.tls.is_some(),
        mtls,
        tokens = opts.tokens.len(),
        "collector listening"
    );
    let router = builder.add_service(InterceptedService::new(svc, auth));
    let conns = listener::incoming(listener, opts.conn_limits, conn_stats);
    let mut server = Box::pin(router.serve_with_incoming(conns));
    tokio::pin!(shutdown);
    let result = tokio::select! {
        r = &mut server => r.map_err(CollectorError::Serve),
        () = &mut shutdown => Ok(()),
    };
    // Sensors hold their streams open: stop serving (dropping the connections) rather than
    // wait for them; what was acknowledged is in the WAL, what was not the sensors resend.
    drop(server);
    // The NetFlow listeners hand their waiting flows to the store before it stops.
    let _no_listener = stop_netflow.send(true);
    for t in netflow {
        let _joined = t.await;
    }
    flusher.abort();
    for j in jobs {
        j.abort();
    }
    // Connection tasks of peers that have not hung up still hold store handles: stop the
    // store explicitly (it flushes) instead of waiting for every handle to drop.
    info!("shutting down: flushing to Parquet");
    handle.stop().await;
    drop(handle);
    match tokio::task::spawn_blocking(move || thread.join()).await {
        Ok(Ok(())) => {}
        _ => error!("the store thread panicked; the WAL keeps the data for the next start"),
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Review L8: a periodic job that panics (every other run here) is logged and runs again
    /// at the next tick, and the collector serves on and stops cleanly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_periodic_job_runs_again() {
        let d = tempfile::tempdir().unwrap();
        let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap(), d.path().to_path_buf());
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        opts.jobs.push(PeriodicJob {
            name: "boom",
            every: Duration::from_millis(50),
            run: Arc::new(move || {
                if counted.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                    panic!("a job's bug");
                }
            }),
        });
        let listener = bind(opts.listen).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let srv = tokio::spawn(serve(opts, listener, async {
            let _sender_gone = stopped.await.is_err();
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while runs.load(Ordering::SeqCst) < 5 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the job stopped running"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).unwrap();
        srv.await.unwrap().unwrap();
    }
}
