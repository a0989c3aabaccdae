//! The agent: runs the stages (load → attach → drain → decode → sink) until shutdown.
//!
//! One task owns the eBPF object and the sink. It wakes when the ring buffer has events, on
//! every interval tick (rotate tuple tables, read counters), on SIGHUP (re-read the config
//! file and apply it without reloading the program) and on shutdown (detach, drain everything
//! one last time, flush).
use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use aya::Ebpf;
use chrono::{DateTime, Utc};
use scanscope_common::{KIND_COUNT, Kind, LostStage, PORTS_UDP_BASE, counter, gauge};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{debug, info, warn};

use crate::{
    config::{ConfigError, RuntimeConfig},
    decode::Decoder,
    drain::{self, CounterSnapshot, DrainError},
    load::{self, Attachment, LoadError},
    record::{KindCount, Lost, Record, Session, Stats},
    respond::{self, RespondConfig, RespondError, RespondStats},
    sink::{JsonlSink, SinkError},
    uplink::{Uplink, UplinkError, UplinkOptions, convert::BatchBuilder},
};

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Drain(#[from] DrainError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Uplink(#[from] UplinkError),
    #[error(transparent)]
    Privilege(#[from] crate::privilege::PrivilegeError),
    #[error("--metrics {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Respond(#[from] RespondError),
    #[error(
        "--respond needs TCP passed to this host: the [action] of {0} is \"drop\" in the configuration"
    )]
    RespondNeedsPass(&'static str),
    #[error("no interface given (use --iface)")]
    NoInterface,
    #[error("--{flag} must be between {min} and {max}")]
    OutOfRange {
        flag: &'static str,
        min: f64,
        max: f64,
    },
    #[error("reading token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {0} is empty")]
    EmptyTokenFile(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// What the agent is asked to do.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub ifaces: Vec<String>,
    /// JSON-lines output (`-` = stdout); `None` logs a summary per interval only.
    pub jsonl: Option<PathBuf>,
    pub sensor_id: String,
    pub interval: Duration,
    pub config_path: Option<PathBuf>,
    /// Stream to collectors (`--collector`); `None` = local output only.
    pub uplink: Option<UplinkOptions>,
    /// At shutdown, how long to wait for the collector to acknowledge what is queued before
    /// leaving it in the spool.
    pub shutdown_grace: Duration,
    /// Answer scanners on every TCP port (`--respond`); `None` = dark mode.
    pub respond: Option<RespondConfig>,
    /// The responder's configuration file (`--respond-config`), read again by the responder
    /// process.
    pub respond_config_path: Option<PathBuf>,
    /// The executable that serves the sessions in a capability-free child
    /// (`scanscope-sensor` itself, [`respond::child`]); `None` = in this process (the library's
    /// tests).
    pub respond_child: Option<PathBuf>,
    /// Serve `GET /metrics` here (`--metrics`; bound before privileges are dropped).
    pub metrics: Option<std::net::SocketAddr>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            ifaces: Vec::new(),
            jsonl: None,
            sensor_id: default_sensor_id(),
            interval: Duration::from_secs(60),
            config_path: None,
            uplink: None,
            shutdown_grace: Duration::from_secs(5),
            respond: None,
            respond_config_path: None,
            respond_child: None,
            metrics: None,
        }
    }
}

/// The host name, or `sensor` if it cannot be read.
pub fn default_sensor_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if rc == 0 && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "sensor".into()
    }
}

/// Events per batch before a batch is sealed early (between interval ends).
const BATCH_EVENTS: usize = 10_000;

/// Encoded bytes per batch before it is sealed early: well under the collector's default
/// limit (32 MiB), so an interval with millions of tuples becomes several batches.
const BATCH_BYTES: usize = 8 << 20;

/// How long program runs that read the old epoch may still write the old tuple table.
const EPOCH_GRACE: Duration = Duration::from_millis(20);

struct State<'u> {
    ebpf: Ebpf,
    decoder: Decoder,
    sink: Option<JsonlSink>,
    prev_counters: CounterSnapshot,
    prev_ports: Vec<u64>,
    interval_start: DateTime<Utc>,
    interval_began: Instant,
    events_in_interval: u64,
    bad_records: u64,
    bad_reported: u64,
    /// JSON lines that could not be written, and how many of those were reported.
    output_reported: u64,
    output_warned: Option<Instant>,
    /// The collector stream; owned by `run`, which finishes it on every way out.
    uplink: &'u mut Option<Uplink>,
    batch: BatchBuilder,
    /// The responder's counters and their values at the last interval's end.
    respond: Option<(Arc<RespondStats>, Vec<u64>)>,
}

impl State<'_> {
    /// Hands one record to the outputs. A local output that fails is counted (reported as
    /// lost, stage `agent_output`) and warned about at most once a minute; the agent goes on.
    fn emit(&mut self, r: &Record) {
        if let Some(s) = &mut self.sink
            && let Err(e) = s.write(r)
        {
            self.output_failed(&e);
        }
        if let Some(u) = &*self.uplink
            && let Some(full) = self.batch.add_within(r, BATCH_BYTES)
        {
            let rows = full.records();
            if let Err(e) = u.push(full) {
                warn!(error = %e, rows, "could not queue a batch for the collector; it is lost");
            }
        }
    }

    /// Flushes the local output (a failure is counted, as for a write).
    fn flush_output(&mut self) {
        if let Some(s) = &mut self.sink
            && let Err(e) = s.flush()
        {
            self.output_failed(&e);
        }
    }

    fn output_failed(&mut self, e: &SinkError) {
        if self
            .output_warned
            .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            warn!(error = %e, "local output failing; its records are counted as lost (agent_output)");
            self.output_warned = Some(Instant::now());
        }
    }

    /// Hands the records collected so far to the uplink as one batch.
    fn seal(&mut self) {
        let Some(u) = &self.uplink else { return };
        if let Some(b) = self.batch.take() {
            let rows = b.records();
            if let Err(e) = u.push(b) {
                warn!(error = %e, rows, "could not queue a batch for the collector; it is lost");
            }
        }
    }

    fn drain_events(
        &mut self,
        rb: &mut aya::maps::RingBuf<aya::maps::MapData>,
    ) -> Result<u64, AgentError> {
        let mut n = 0;
        while let Some(rec) = drain::read_event(rb) {
            match rec {
                Ok(raw) => match self.decoder.event(&raw) {
                    Some(ev) => {
                        self.emit(&Record::Event(ev));
                        n += 1;
                    }
                    None => self.bad_records += 1,
                },
                Err(len) => {
                    self.bad_records += 1;
                    debug!(len, "ring-buffer record of unexpected size");
                }
            }
        }
        self.events_in_interval += n;
        if n > 0 {
            self.flush_output();
        }
        if self.batch.rows() >= BATCH_EVENTS {
            self.seal();
        }
        Ok(n)
    }

    /// Ends an interval: tuple counts of `tables`, counter and port deltas, lost records.
    fn close_interval(
        &mut self,
        tables: Vec<(scanscope_common::TupleKey, scanscope_common::TupleValue)>,
    ) -> Result<(), AgentError> {
        let secs = self.interval_began.elapsed().as_secs_f64();
        let start = self.interval_start;
        let mut flows = 0u64;
        for (k, v) in &tables {
            if let Some(f) = self.decoder.flow(start, secs, k, v) {
                self.emit(&Record::Flow(f));
                flows += 1;
            }
        }
        let now_counters = drain::read_counters(&self.ebpf)?;
        let delta = now_counters.since(&self.prev_counters);
        self.prev_counters = now_counters;
        let now_ports = drain::read_ports(&self.ebpf)?;
        let mut tcp_ports = BTreeMap::new();
        let mut udp_ports = BTreeMap::new();
        for (i, (now, prev)) in now_ports.iter().zip(&self.prev_ports).enumerate() {
            let d = now.saturating_sub(*prev);
            if d > 0 {
                let i = i as u32;
                if i < PORTS_UDP_BASE {
                    tcp_ports.insert(i as u16, d);
                } else {
                    udp_ports.insert((i - PORTS_UDP_BASE) as u16, d);
                }
            }
        }
        self.prev_ports = now_ports;

        let kinds = Kind::ALL[..KIND_COUNT]
            .iter()
            .map(|k| {
                let i = *k as u32;
                (
                    k.name(),
                    KindCount {
                        packets: delta.get(counter::KIND_PACKETS + i),
                        bytes: delta.get(counter::KIND_BYTES + i),
                    },
                )
            })
            .collect();
        let mut counters: BTreeMap<&'static str, u64> = (counter::NON_IP..counter::SLOTS)
            .filter_map(|i| counter::name(i).map(|n| (n, delta.get(i))))
            .collect();
        if let Some((r, prev)) = &mut self.respond {
            for (i, (name, v)) in r.counters().into_iter().enumerate() {
                counters.insert(name, v - prev[i]);
                prev[i] = v;
            }
        }
        if let Some(u) = &*self.uplink {
            counters.insert(gauge::SPOOL_BYTES, u.spool_bytes());
            counters.insert(gauge::PENDING_BATCHES, u.pending() as u64);
        }
        let stats = Stats {
            interval_start: start,
            interval_secs: secs,
            sensor: self.decoder.sensor.clone(),
            kinds,
            counters,
            ringbuf_full_per_cpu: delta.ringbuf_full_per_cpu.clone(),
            tcp_ports,
            udp_ports,
            flows,
            events: self.events_in_interval,
        };
        let total: u64 = stats.kinds.values().map(|k| k.packets).sum();
        info!(
            packets = total,
            flows,
            events = self.events_in_interval,
            malformed = counter::MALFORMED
                .iter()
                .map(|&c| delta.get(c))
                .sum::<u64>(),
            excluded = delta.get(counter::EXCLUDED_CIDR) + delta.get(counter::OWN_SOCKET),
            "interval"
        );
        crate::metrics::interval(&stats);
        self.emit(&Record::Stats(stats));
        // Flushed before the lost records, so this interval's output failures are in them.
        self.flush_output();
        let output_failed = self.sink.as_ref().map_or(0, |s| s.failed);
        let now = Utc::now();
        for (stage, unit, count) in [
            (
                LostStage::KernelRingbuf,
                "events",
                delta.get(counter::RINGBUF_FULL),
            ),
            (
                LostStage::KernelTupleTable,
                "packets",
                delta.get(counter::TUPLE_TABLE_FULL),
            ),
            (
                LostStage::AgentDecode,
                "events",
                self.bad_records - self.bad_reported,
            ),
            (
                LostStage::AgentOutput,
                "records",
                output_failed - self.output_reported,
            ),
        ] {
            if count > 0 {
                warn!(?stage, count, "data lost");
                crate::metrics::lost(stage, unit, count);
                let lost = Lost {
                    ts: now,
                    sensor: self.decoder.sensor.clone(),
                    stage,
                    unit,
                    count,
                };
                self.emit(&Record::Lost(lost));
            }
        }
        self.bad_reported = self.bad_records;
        self.output_reported = output_failed;
        self.flush_output();
        self.seal();
        if let Some(u) = &*self.uplink {
            crate::metrics::uplink(u.stats(), u.pending(), u.spool_bytes());
        }
        self.interval_start = now;
        self.interval_began = Instant::now();
        self.events_in_interval = 0;
        Ok(())
    }
}

fn read_config(path: &Option<PathBuf>) -> Result<RuntimeConfig, ConfigError> {
    match path {
        Some(p) => RuntimeConfig::from_file(p),
        None => Ok(RuntimeConfig::default()),
    }
}

/// The privileged part of a run, done before anything talks to the network: the
/// configuration read, the outputs opened, the program loaded and attached, the counters'
/// baseline read. After it the agent needs only what [`crate::privilege::RETAINED`] keeps.
pub struct Prepared {
    cfg: RuntimeConfig,
    sink: Option<JsonlSink>,
    ebpf: Ebpf,
    prev_counters: CounterSnapshot,
    prev_ports: Vec<u64>,
    attachments: Vec<Attachment>,
    ringbuf: aya::maps::RingBuf<aya::maps::MapData>,
    /// The responder (`--respond`): its process, or its listening sockets to serve here.
    responder: Option<Responder>,
    /// The metrics listener (`--metrics`).
    metrics: Option<std::net::TcpListener>,
}

/// Where the responder's sessions are served.
#[derive(Debug)]
enum Responder {
    /// A capability-free child process holding the listeners.
    Child(respond::child::Parent),
    /// This process (the library's tests: no binary to start).
    Here(respond::Listeners, Box<RespondConfig>),
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

/// Loads and attaches (see [`Prepared`]). Synchronous, so the binary can do it before any
/// other thread exists and then drop its capabilities for the whole process.
pub fn prepare(opts: &AgentOptions) -> Result<Prepared, AgentError> {
    if opts.ifaces.is_empty() {
        return Err(AgentError::NoInterface);
    }
    let cfg = read_config(&opts.config_path)?;
    // The responder answers what XDP passes: no TCP kind may be dropped.
    if opts.respond.is_some()
        && let Some(k) = Kind::ALL.into_iter().find(|k| {
            k.is_tcp() && cfg.kernel.action[*k as usize] == scanscope_common::action::DROP
        })
    {
        return Err(AgentError::RespondNeedsPass(k.name()));
    }
    // Check interfaces before loading anything, for a clear error.
    for i in &opts.ifaces {
        if load::ifindex(i).is_none() {
            return Err(LoadError::NoSuchInterface(i.clone()).into());
        }
    }
    let sink = match &opts.jsonl {
        Some(p) => Some(JsonlSink::create(p)?),
        None => None,
    };
    let mut ebpf = load::load(&cfg)?;
    // The counters' baseline is read before attaching: a packet that arrives between the attach
    // and a later baseline read would be missing from every interval's stats.
    let prev_counters = drain::read_counters(&ebpf)?;
    let prev_ports = drain::read_ports(&ebpf)?;
    let mut attachments: Vec<Attachment> = Vec::new();
    for i in &opts.ifaces {
        attachments.push(load::attach(&mut ebpf, i)?);
    }
    let ringbuf = drain::take_ringbuf(&mut ebpf)?;
    let metrics = match opts.metrics {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| AgentError::Metrics { addr, source })?;
            crate::metrics::init();
            Some(l)
        }
        None => None,
    };
    let responder = match &opts.respond {
        Some(r) => {
            let (listeners, rc) = prepare_responder(&mut ebpf, opts, r)?;
            Some(match &opts.respond_child {
                Some(exe) => Responder::Child(respond::child::Parent::spawn(
                    exe,
                    listeners,
                    opts.respond_config_path.as_deref(),
                    &opts.sensor_id,
                )?),
                None => Responder::Here(listeners, Box::new(rc)),
            })
        }
        None => None,
    };
    Ok(Prepared {
        cfg,
        sink,
        ebpf,
        prev_counters,
        prev_ports,
        attachments,
        ringbuf,
        responder,
        metrics,
    })
}

/// The responder's listeners, its addresses (default: the attached interfaces') and its
/// pass-through ports (default: 22 and every port listening now), steered to in the kernel.
fn prepare_responder(
    ebpf: &mut Ebpf,
    opts: &AgentOptions,
    r: &RespondConfig,
) -> Result<(respond::Listeners, RespondConfig), AgentError> {
    let mut r = r.clone();
    if r.addresses.is_empty() {
        r.addresses =
            respond::config::interface_addresses(&opts.ifaces).map_err(RespondError::Addresses)?;
    }
    let pass = r.pass_ports.clone().unwrap_or_else(|| {
        let mut p = respond::config::listening_ports();
        p.insert(22);
        p
    });
    let listeners = respond::Listeners::bind()?;
    load::attach_responder(
        ebpf,
        &listeners.v4,
        listeners.v6.as_ref(),
        &r.addresses,
        &pass,
    )?;
    info!(addresses = ?r.addresses, pass_ports = ?pass, "responder ready");
    r.pass_ports = Some(pass);
    Ok((listeners, r))
}

/// Runs the agent until `shutdown` completes, then drains everything one last time.
pub async fn run(opts: AgentOptions, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let prepared = prepare(&opts)?;
    run_prepared(opts, prepared, shutdown).await
}

/// Runs a prepared agent (see [`prepare`]) until `shutdown`.
pub async fn run_prepared(
    opts: AgentOptions,
    prepared: Prepared,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let mut uplink = match &opts.uplink {
        Some(u) => Some(Uplink::start(u.clone())?),
        None => None,
    };
    // Whatever ends the run (shutdown or an error), what the uplink holds is delivered or
    // spooled: never lost with the process.
    let mut prepared = prepared;
    let _metrics = match (prepared.metrics.take(), opts.metrics) {
        (Some(l), Some(addr)) => {
            let l = tokio::net::TcpListener::from_std(l)
                .map_err(|source| AgentError::Metrics { addr, source })?;
            info!(addr = ?l.local_addr().ok(), "metrics on /metrics");
            Some(AbortOnDrop(tokio::spawn(
                scanscope_telemetry::metrics::serve(l, std::future::pending()),
            )))
        }
        _ => None,
    };
    let result = sense(&opts, prepared, &mut uplink, shutdown).await;
    if let Some(u) = uplink.take() {
        let (stats, left) = u.finish(opts.shutdown_grace).await;
        info!(
            batches = stats.pushed,
            acked = stats.acked,
            spooled = stats.spooled,
            dropped = stats.dropped_batches,
            rejected = stats.rejected_batches,
            left_in_spool = left,
            "uplink stopped"
        );
    }
    result
}

/// Aborts a task when dropped (the responder stops with the agent).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the stages until `shutdown`, then drains everything once more.
async fn sense(
    opts: &AgentOptions,
    prepared: Prepared,
    uplink: &mut Option<Uplink>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let Prepared {
        cfg,
        sink,
        ebpf,
        prev_counters,
        prev_ports,
        attachments,
        ringbuf: rb,
        responder,
        metrics: _,
    } = prepared;
    // The responder serves in its own process (or on this runtime); its sessions come back to
    // this task as records.
    let (session_tx, mut sessions) = tokio::sync::mpsc::channel::<Session>(4096);
    let respond_stats = Arc::new(RespondStats::default());
    let (gone_tx, mut child_gone) = tokio::sync::oneshot::channel::<()>();
    let mut child = None;
    let mut _responder = None;
    match responder {
        Some(Responder::Child(mut p)) => {
            p.start_reading(
                opts.sensor_id.clone(),
                session_tx.clone(),
                respond_stats.clone(),
                gone_tx,
            );
            child = Some(p);
        }
        Some(Responder::Here(listeners, rc)) => {
            let task = tokio::spawn(respond::serve(
                listeners,
                *rc,
                opts.sensor_id.clone(),
                session_tx.clone(),
                respond_stats.clone(),
            ));
            _responder = Some(AbortOnDrop(task));
            drop(gone_tx);
        }
        None => drop(gone_tx),
    }
    let responding = child.is_some() || _responder.is_some();
    let mut child_watch = child.is_some();
    drop(session_tx);
    let ifaces: HashMap<u32, String> = attachments
        .iter()
        .map(|a| (a.ifindex, a.iface.clone()))
        .collect();
    // SAFETY: the ring buffer owns its file descriptor and lives inside the AsyncFd until the
    // AsyncFd is dropped, so the descriptor stays open while it is registered.
    let mut rb = unsafe { AsyncFd::register(rb) }.map_err(|e| AgentError::Io {
        what: "polling the ring buffer",
        source: e.into(),
    })?;
    let mut st = State {
        ebpf,
        decoder: Decoder::new(opts.sensor_id.clone(), ifaces),
        sink,
        prev_counters,
        prev_ports,
        interval_start: Utc::now(),
        interval_began: Instant::now(),
        events_in_interval: 0,
        bad_records: 0,
        bad_reported: 0,
        output_reported: 0,
        output_warned: None,
        uplink,
        batch: BatchBuilder::default(),
        respond: responding.then(|| {
            (
                respond_stats.clone(),
                vec![0; respond_stats.counters().len()],
            )
        }),
    };
    info!(sensor = %opts.sensor_id, ifaces = ?opts.ifaces, interval_secs = opts.interval.as_secs_f64(), "sensor running");

    let mut hup = signal(SignalKind::hangup()).map_err(|source| AgentError::Io {
        what: "installing the SIGHUP handler",
        source,
    })?;
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + opts.interval, opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = hup.recv() => match read_config(&opts.config_path) {
                Ok(new) => {
                    if new.tuple_entries != cfg.tuple_entries || new.ringbuf_bytes != cfg.ringbuf_bytes {
                        warn!("tuple_entries and ringbuf_bytes take effect only after a restart");
                    }
                    match load::apply_config(&mut st.ebpf, &new) {
                        Ok(()) => info!("configuration reloaded"),
                        Err(e) => warn!(error = %e, "configuration not (fully) reloaded; the sensor goes on"),
                    }
                }
                Err(e) => warn!(error = %e, "configuration not reloaded; keeping the current one"),
            },
            Some(session) = sessions.recv() => {
                st.emit(&Record::Session(Box::new(session)));
                st.flush_output();
            }
            _ = &mut child_gone, if child_watch => {
                // Fail open: with the socket map empty the kernel answers as if dark (RST).
                child_watch = false;
                warn!("the responder process ended; connections now go to the host (no responder)");
                if let Err(e) = load::clear_responder(&mut st.ebpf) {
                    warn!(error = %e, "could not empty the responder's socket map");
                }
            }
            guard = rb.readable_mut() => {
                let mut guard = guard.map_err(|source| AgentError::Io { what: "polling the ring buffer", source })?;
                st.drain_events(guard.get_inner_mut())?;
                guard.clear_ready();
            }
            _ = tick.tick() => {
                let old = drain::flip_epoch(&mut st.ebpf)?;
                tokio::time::sleep(EPOCH_GRACE).await;
                let tables = drain::drain_table(&mut st.ebpf, old)?;
                st.close_interval(tables)?;
                st.decoder.clock.resync();
            }
        }
    }

    // The responder stops taking connections; the sessions that ended are recorded, those
    // still open are cut (counted as `respond_cut` in the last stats).
    drop(_responder);
    match child {
        // The child counts its own open sessions as cut and reports them.
        Some(c) => tokio::task::block_in_place(|| c.stop()),
        None => respond_stats.cut_open_sessions(),
    }
    while let Ok(session) = sessions.try_recv() {
        st.emit(&Record::Session(Box::new(session)));
    }
    // Final drain: detach first so nothing new arrives, then read everything that is left.
    info!("shutting down: detaching and draining");
    {
        let xdp = load::program(&mut st.ebpf)?;
        for a in attachments {
            if let Err(e) = xdp.detach(a.link) {
                warn!(iface = %a.iface, error = %e, "detach failed (the link goes away with the process)");
            }
        }
    }
    tokio::time::sleep(EPOCH_GRACE).await;
    st.drain_events(rb.get_mut())?;
    let mut tables = drain::drain_table(&mut st.ebpf, 0)?;
    tables.extend(drain::drain_table(&mut st.ebpf, 1)?);
    st.close_interval(tables)?;
    if st.bad_records > 0 {
        warn!(
            records = st.bad_records,
            "ring-buffer records could not be decoded"
        );
    }
    st.flush_output();
    if let Some(s) = &st.sink {
        info!(records = s.written, failed = s.failed, "output written");
    }
    Ok(())
}
