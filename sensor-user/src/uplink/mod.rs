//! Uplink stage: batches → the collector over gRPC, with an on-disk spool.
//!
//! [`convert`] turns records into `scanscope.v1` messages ([`convert::BatchBuilder`]);
//! [`outbox`] holds every sealed batch until it is acknowledged (memory while the collector
//! keeps up, the spool directory otherwise); the task started by [`Uplink::start`] keeps one
//! stream open to the first collector that answers (in the order given: failover), sends
//! batches in order with up to `window` in flight, zstd-compressed, and reconnects with
//! exponential backoff and full jitter.
pub mod convert;
pub mod outbox;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::Rng;
use scanscope_proto::v1::{Ack, AckStatus, Batch, ingest_client::IngestClient};
use tokio::{
    sync::{Notify, mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Code, Request, Status,
    codec::CompressionEncoding,
    metadata::MetadataValue,
    service::Interceptor,
    transport::{Certificate, ClientTlsConfig, Endpoint, Identity},
};
use tracing::{error, info, warn};

use outbox::{Outbox, OutboxConfig, OutboxStats};

/// Errors of the uplink stage.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("spool: {op} {path}: {source}")]
    Spool {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another agent uses the spool directory {0}")]
    SpoolLocked(PathBuf),
    #[error("spool directory {path} is writable by group or others (mode {mode:o}); make it 0700")]
    SpoolExposed { path: PathBuf, mode: u32 },
    #[error("collector URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("reading {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bearer token is not a valid header value")]
    BadToken,
    #[error(
        "sensor id {0:?}: use 1–128 characters of letters, digits and . _ : - (the collector refuses others)"
    )]
    BadSensorId(String),
    #[error(
        "refusing to send the bearer token over plain {0}: anyone on the path could read it (use https://, or pass --insecure)"
    )]
    PlaintextToken(String),
}

/// Client-side TLS files.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA that the collector's certificate must chain to (default: web PKI roots).
    pub ca: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name to verify in the collector's certificate (default: the URL's host).
    pub domain: Option<String>,
}

/// What the uplink is asked to do.
#[derive(Debug, Clone)]
pub struct UplinkOptions {
    /// Collector URLs (`http://host:port` or `https://…`), tried in order.
    pub collectors: Vec<String>,
    pub sensor_id: String,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// Memory for batches the collector has not acknowledged yet; beyond it they are spooled.
    pub max_mem_bytes: u64,
    /// Batches in flight on a stream.
    pub window: usize,
    pub token: Option<String>,
    pub tls: ClientTls,
    /// Send the token over plain http (a closed network; the operator said so).
    pub insecure: bool,
    /// Backoff between reconnection rounds: first and largest delay.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl UplinkOptions {
    /// Defaults for the given collectors and spool directory.
    pub fn new(collectors: Vec<String>, sensor_id: String, spool_dir: PathBuf) -> Self {
        UplinkOptions {
            collectors,
            sensor_id,
            spool_dir,
            spool_max_bytes: 1 << 30,
            max_mem_bytes: 256 << 20,
            window: 32,
            token: None,
            tls: ClientTls::default(),
            insecure: false,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Shared {
    outbox: Mutex<Outbox>,
    notify: Notify,
}

impl Shared {
    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // A panic while holding the lock leaves a consistent queue (every step is atomic per
        // entry), so a poisoned lock is still usable.
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running uplink.
#[derive(Debug)]
pub struct Uplink {
    shared: Arc<Shared>,
    stop: watch::Sender<Option<Instant>>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Token(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Token {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

fn read(what: &'static str, p: &PathBuf) -> Result<Vec<u8>, UplinkError> {
    std::fs::read(p).map_err(|source| UplinkError::ReadFile {
        what,
        path: p.clone(),
        source,
    })
}

fn endpoint(url: &str, tls: &ClientTls) -> Result<Endpoint, UplinkError> {
    let bad = |reason: String| UplinkError::BadUrl {
        url: url.into(),
        reason,
    };
    let mut ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if url.starts_with("https://") {
        let mut cfg = ClientTlsConfig::new();
        cfg = match &tls.ca {
            Some(ca) => cfg.ca_certificate(Certificate::from_pem(read("CA certificate", ca)?)),
            None => cfg.with_webpki_roots(),
        };
        if let (Some(c), Some(k)) = (&tls.cert, &tls.key) {
            cfg = cfg.identity(Identity::from_pem(
                read("client certificate", c)?,
                read("client key", k)?,
            ));
        }
        if let Some(d) = &tls.domain {
            cfg = cfg.domain_name(d.clone());
        }
        ep = ep.tls_config(cfg).map_err(|e| bad(e.to_string()))?;
    } else if !url.starts_with("http://") {
        return Err(bad("must start with http:// or https://".into()));
    }
    Ok(ep)
}

impl Uplink {
    /// Opens the spool (batches a previous run left are sent first) and starts the sender.
    pub fn start(opts: UplinkOptions) -> Result<Uplink, UplinkError> {
        if !scanscope_common::valid_sensor_id(&opts.sensor_id) {
            return Err(UplinkError::BadSensorId(opts.sensor_id.clone()));
        }
        if opts.token.is_some()
            && !opts.insecure
            && let Some(u) = opts.collectors.iter().find(|u| !u.starts_with("https://"))
        {
            return Err(UplinkError::PlaintextToken(u.clone()));
        }
        if opts.token.is_some() && opts.insecure {
            warn!("--insecure: the bearer token may travel over plain http");
        }
        let endpoints = opts
            .collectors
            .iter()
            .map(|u| endpoint(u, &opts.tls).map(|e| (u.clone(), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let token = match &opts.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| UplinkError::BadToken)?,
            ),
            None => None,
        };
        let outbox = Outbox::open(OutboxConfig {
            sensor_id: opts.sensor_id.clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            spool_dir: opts.spool_dir.clone(),
            spool_max_bytes: opts.spool_max_bytes,
            max_mem_bytes: opts.max_mem_bytes,
        })?;
        if !outbox.is_empty() {
            info!(
                batches = outbox.len(),
                bytes = outbox.spool_bytes(),
                "spool holds batches from an earlier run; they go first"
            );
        }
        let shared = Arc::new(Shared {
            outbox: Mutex::new(outbox),
            notify: Notify::new(),
        });
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(sender(
            shared.clone(),
            endpoints,
            Token(token),
            opts.window.max(1),
            (opts.backoff_min, opts.backoff_max),
            stop_rx,
        ));
        Ok(Uplink { shared, stop, task })
    }

    /// Seals and queues a batch; returns its seq.
    pub fn push(&self, batch: Batch) -> Result<u64, UplinkError> {
        let seq = self.shared.outbox().push(batch)?;
        self.shared.notify.notify_one();
        Ok(seq)
    }

    /// Counters so far.
    pub fn stats(&self) -> OutboxStats {
        self.shared.outbox().stats
    }

    /// Batches not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.shared.outbox().len()
    }

    /// Bytes in the spool directory.
    pub fn spool_bytes(&self) -> u64 {
        self.shared.outbox().spool_bytes()
    }

    /// Stops at once, without spilling memory to the spool: what a crash leaves behind.
    pub async fn abort(self) {
        self.task.abort();
        if let Err(e) = self.task.await
            && e.is_panic()
        {
            error!(error = %e, "the uplink task panicked");
        }
    }

    /// Delivers what is queued within `grace`, then spools the rest and stops.
    pub async fn finish(self, grace: Duration) -> (OutboxStats, usize) {
        if let Err(e) = self.shared.outbox().flush_lost() {
            warn!(error = %e, "could not queue the lost-data report");
        }
        let _task_gone = self.stop.send(Some(Instant::now() + grace)).is_err();
        self.shared.notify.notify_one();
        if let Err(e) = self.task.await {
            error!(error = %e, "the uplink task failed; spooling what is queued");
        }
        let mut o = self.shared.outbox();
        o.spill();
        (o.stats, o.len())
    }
}

enum SessionEnd {
    /// Stopping: the outbox is empty or the grace period is over.
    Stopped,
    /// The collector refused the oldest unacknowledged batch for good.
    Rejected(String),
    /// Connection or stream failure; `progress` if any ack arrived.
    Failed {
        reason: String,
        code: Option<Code>,
        progress: bool,
    },
}

fn classify(s: &Status, progress: bool) -> SessionEnd {
    match s.code() {
        Code::InvalidArgument | Code::ResourceExhausted => {
            SessionEnd::Rejected(format!("{:?}: {}", s.code(), s.message()))
        }
        c => SessionEnd::Failed {
            reason: s.message().to_string(),
            code: Some(c),
            progress,
        },
    }
}

fn stopping_now(stop: &watch::Receiver<Option<Instant>>, shared: &Shared) -> bool {
    match *stop.borrow() {
        Some(deadline) => Instant::now() >= deadline || shared.outbox().is_empty(),
        None => false,
    }
}

/// How long connecting and opening the stream may take: a peer that accepts the TCP connection
/// but never answers (a black hole; a collector's host still booting behind a port forward)
/// must not hold the uplink until keepalives give up.
const OPEN_WITHIN: Duration = Duration::from_secs(10);

/// Connects and opens the batch stream: the acks, and the sender of batches.
async fn open(
    ep: &Endpoint,
    token: &Token,
    window: usize,
) -> Result<(tonic::Streaming<Ack>, mpsc::Sender<Batch>), SessionEnd> {
    let channel = match ep.connect().await {
        Ok(c) => c,
        Err(e) => {
            let mut reason = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                reason = format!("{reason}: {s}");
                src = s.source();
            }
            return Err(SessionEnd::Failed {
                reason,
                code: None,
                progress: false,
            });
        }
    };
    let mut client = IngestClient::with_interceptor(channel, token.clone())
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(4 << 20);
    let (tx, rx) = mpsc::channel::<Batch>(window);
    match client.stream(ReceiverStream::new(rx)).await {
        Ok(r) => Ok((r.into_inner(), tx)),
        Err(s) => Err(classify(&s, false)),
    }
}

async fn session(
    shared: &Shared,
    ep: &Endpoint,
    token: &Token,
    window: usize,
    stop: &mut watch::Receiver<Option<Instant>>,
) -> SessionEnd {
    let opened = tokio::time::timeout(OPEN_WITHIN, open(ep, token, window)).await;
    let (mut acks, tx) = match opened {
        Ok(Ok(o)) => o,
        Ok(Err(end)) => return end,
        Err(_) => {
            return SessionEnd::Failed {
                reason: format!(
                    "no answer within {} s of connecting (TCP, TLS, HTTP/2 and the stream)",
                    OPEN_WITHIN.as_secs()
                ),
                code: None,
                progress: false,
            };
        }
    };
    shared.outbox().connected();
    let mut progress = false;
    loop {
        {
            let mut o = shared.outbox();
            while o.in_flight() < window {
                match o.next_to_send() {
                    Some(b) => {
                        if tx.try_send(b).is_err() {
                            // Cannot happen (capacity = window); resend on the next stream.
                            return SessionEnd::Failed {
                                reason: "request stream closed".into(),
                                code: None,
                                progress,
                            };
                        }
                    }
                    None => break,
                }
            }
        }
        if stopping_now(stop, shared) {
            return SessionEnd::Stopped;
        }
        let deadline =
            (*stop.borrow()).unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            m = acks.message() => match m {
                Ok(Some(ack)) => {
                    let status = AckStatus::try_from(ack.status);
                    let known = matches!(status, Ok(AckStatus::Stored | AckStatus::Duplicate));
                    if !known || !shared.outbox().ack(ack.seq) {
                        // Review L9: a confused collector (or something between) cannot make
                        // the agent drop batches; the stream is ended and they are resent.
                        return SessionEnd::Failed {
                            reason: format!(
                                "collector acknowledged seq {} with status {}, not a batch in flight; resending",
                                ack.seq, ack.status
                            ),
                            code: None,
                            progress,
                        };
                    }
                    progress = true;
                }
                Ok(None) => return SessionEnd::Failed { reason: "collector closed the stream".into(), code: None, progress },
                Err(s) => return classify(&s, progress),
            },
            () = shared.notify.notified() => {}
            _ = stop.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

async fn sender(
    shared: Arc<Shared>,
    endpoints: Vec<(String, Endpoint)>,
    token: Token,
    window: usize,
    (backoff_min, backoff_max): (Duration, Duration),
    mut stop: watch::Receiver<Option<Instant>>,
) {
    let mut attempt: u32 = 0;
    // Refusals in a row: each waits longer before the next batch is offered, so a fault that
    // every batch carries (a bad clock, a refused id) cannot make a reconnect loop.
    let mut refusals: u32 = 0;
    let mut last_warn: Option<(String, std::time::Instant)> = None;
    'outer: loop {
        for (url, ep) in &endpoints {
            loop {
                if stopping_now(&stop, &shared) {
                    shared.outbox().disconnected();
                    return;
                }
                match session(&shared, ep, &token, window, &mut stop).await {
                    SessionEnd::Stopped => {
                        shared.outbox().disconnected();
                        return;
                    }
                    SessionEnd::Rejected(detail) => {
                        error!(collector = %url, %detail, "collector refused a batch; dropping it (counted as lost)");
                        {
                            let mut o = shared.outbox();
                            o.reject_front(&detail);
                            if let Err(e) = o.flush_lost() {
                                warn!(error = %e, "could not queue the lost-data report");
                            }
                        }
                        // The next batch is offered after a growing pause (the first at once).
                        refusals = refusals.saturating_add(1);
                        if refusals > 1 {
                            let wait = backoff_min
                                .saturating_mul(1u32 << (refusals - 2).min(16))
                                .min(backoff_max);
                            let deadline = (*stop.borrow()).unwrap_or(Instant::now() + wait);
                            tokio::select! {
                                () = tokio::time::sleep_until((Instant::now() + wait).min(deadline)) => {}
                                _ = stop.changed() => {}
                            }
                        }
                    }
                    SessionEnd::Failed {
                        reason,
                        code,
                        progress,
                    } => {
                        shared.outbox().disconnected();
                        if progress {
                            attempt = 0;
                            refusals = 0;
                        }
                        let msg = format!("{url}: {reason}");
                        let repeat = last_warn.as_ref().is_some_and(|(m, t)| {
                            *m == msg && t.elapsed() < Duration::from_secs(60)
                        });
                        if !repeat {
                            if matches!(code, Some(Code::Unauthenticated | Code::PermissionDenied))
                            {
                                error!(collector = %url, %reason, "collector refused our credentials; spooling");
                            } else {
                                warn!(collector = %url, %reason, ?code, "collector unavailable; spooling and retrying");
                            }
                            last_warn = Some((msg, std::time::Instant::now()));
                        }
                        if progress {
                            // It worked a moment ago: retry the same collector first.
                            continue 'outer;
                        }
                        break; // next collector
                    }
                }
            }
        }
        // Every collector failed this round: back off with full jitter.
        attempt = attempt.saturating_add(1);
        let cap = backoff_min
            .saturating_mul(1u32 << attempt.min(16))
            .min(backoff_max);
        let delay = Duration::from_secs_f64(rand::rng().random_range(0.0..=cap.as_secs_f64()))
            .max(backoff_min / 2);
        let wake = Instant::now() + delay;
        let deadline = (*stop.borrow()).unwrap_or(wake);
        tokio::select! {
            () = tokio::time::sleep_until(wake.min(deadline)) => {}
            _ = stop.changed() => {}
        }
    }
}
