//! The NetFlow/IPFIX source: UDP datagrams from routers and probes (`--netflow-listen`),
//! parsed by `netflow_parser` with templates scoped per exporter, made into `scanscope.v1`
//! batches — one sensor per exporter and observation domain, `source = netflow` — and handed
//! to the store like a sensor's, so they share the write-ahead log and the lake.
//!
//! Per datagram: [`decode`] (flows, sampling, boot time, sequence) → direction (the operator's
//! `--local-net`s decide what is inbound; only inbound flows are stored, the others counted)
//! → kind from the OR-ed flags ([`Kind::from_flow_flags`]) → the exporter's waiting batch
//! ([`exporter`]), sent when it holds `BATCH_FLOWS` flows or has waited `BATCH_WAIT`. UDP has
//! no acks: gaps in an exporter's sequence numbers become `lost` rows; a datagram that does
//! not parse is a `lost` row too, and the listener goes on.
pub mod decode;
pub mod exporter;
pub mod fast;

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use netflow_parser::{
    AutoScopedParser, IpfixSourceKey, NetflowError, NetflowParser, PendingFlowsConfig, V9SourceKey,
};
use prost::Message;
use scanscope_common::Kind;
use scanscope_proto::v1::{self, LostStage};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use self::{
    decode::{Decoded, FlowRecord, Version},
    exporter::Exporter,
    fast::Layouts,
};
use crate::{error::CollectorError, store::StoreHandle, validate::Limits};

/// Flows that make an exporter's batch go at once.
pub const BATCH_FLOWS: usize = 10_000;
/// The longest a received flow waits for its batch.
pub const BATCH_WAIT: Duration = Duration::from_millis(500);
/// Largest UDP datagram.
const MAX_DATAGRAM: usize = 65_535;

/// What to do with flows that are not inbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Store inbound flows only (destination in a local network, source outside); count the
    /// others.
    #[default]
    Inbound,
    /// Store every flow.
    All,
}

/// The NetFlow source's configuration.
#[derive(Debug, Clone, Default)]
pub struct NetflowOptions {
    pub listen: Vec<SocketAddr>,
    /// The operator's own networks: a flow to one of them from outside is inbound.
    pub local_nets: Vec<IpNet>,
    pub direction: Direction,
    /// Sensor names of exporters: (address, name); others are named by their address.
    pub names: Vec<(IpAddr, String)>,
    /// The rate of flows whose exporter declared none (counted as
    /// `netflow_default_sampling_flows`).
    pub default_sampling: u32,
    /// Flows that make an exporter's batch go at once (0: [`BATCH_FLOWS`]).
    pub batch_flows: usize,
    /// Most sources (sender address and port, the header's observation domain) kept (0:
    /// [`MAX_EXPORTERS`]); datagrams of others are refused and counted.
    pub max_exporters: usize,
    /// Take datagrams only from exporters in `names`.
    pub named_only: bool,
    /// Sockets (with `SO_REUSEPORT`), each with its own receiver on its own task, per listen
    /// address (0: one per core, at most [`MAX_RECEIVERS`]). The kernel gives each sender
    /// (address and port) to one socket, so an exporter's templates and sequence numbers stay
    /// with one receiver.
    pub receivers: usize,
    /// Decode every datagram with `netflow_parser`, none on the fast path ([`fast`]).
    pub parser_only: bool,
}

/// Most receivers per listen address when the options leave it to the cores.
pub const MAX_RECEIVERS: usize = 8;

impl NetflowOptions {
    /// Receivers per listen address.
    pub fn receivers(&self) -> usize {
        match self.receivers {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, MAX_RECEIVERS),
            n => n,
        }
    }
}

/// Exporters kept when the options say nothing.
pub const MAX_EXPORTERS: usize = 256;
/// An exporter silent this long (with nothing waiting) is forgotten, templates and all.
pub const EXPORTER_IDLE: Duration = Duration::from_secs(3600);
/// The sensor that carries the count of refused datagrams (exporters past the limit or not
/// named): one row per batch, whoever sent them.
pub const REFUSED_SENSOR: &str = "netflow-refused";

/// Counter names of the NetFlow source (in the lake's `sensor_stats`, docs/netflow.md).
pub mod counters {
    pub const DATAGRAMS: &str = "netflow_datagrams";
    pub const FLOWS: &str = "netflow_flows";
    pub const INBOUND: &str = "netflow_inbound_flows";
    pub const OUTBOUND: &str = "netflow_outbound_flows";
    pub const TRANSIT: &str = "netflow_transit_flows";
    pub const INTERNAL: &str = "netflow_internal_flows";
    pub const DEFAULT_SAMPLING: &str = "netflow_default_sampling_flows";
    pub const TIME_FROM_RECEIPT: &str = "netflow_time_from_receipt_flows";
    pub const REFUSED: &str = "netflow_refused_datagrams";
    pub const ALL: [&str; 9] = [
        DATAGRAMS,
        FLOWS,
        INBOUND,
        OUTBOUND,
        TRANSIT,
        INTERNAL,
        DEFAULT_SAMPLING,
        TIME_FROM_RECEIPT,
        REFUSED,
    ];
}

/// The NetFlow source's counters on `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    /// Flows in batches the store made durable (in the fsynced WAL).
    pub durable_flows: scanscope_telemetry::metrics::Counter,
    /// Datagrams received.
    pub datagrams: scanscope_telemetry::metrics::Counter,
    /// Datagrams decoded on the fast path ([`fast`]), not by the parser.
    pub fast_datagrams: scanscope_telemetry::metrics::Counter,
}

pub static METRICS: std::sync::LazyLock<Metrics> = std::sync::LazyLock::new(|| {
    let counter = |name: &str, help: &str| {
        scanscope_telemetry::metrics::register(name, help, Default::default())
    };
    Metrics {
        durable_flows: counter(
            "scanscope_netflow_durable_flows",
            "NetFlow/IPFIX flows in batches the store made durable",
        ),
        datagrams: counter(
            "scanscope_netflow_datagrams",
            "NetFlow/IPFIX datagrams received",
        ),
        fast_datagrams: counter(
            "scanscope_netflow_fast_datagrams",
            "NetFlow/IPFIX datagrams decoded from their templates' layouts, not by the parser",
        ),
    }
});

pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The reason a datagram did not parse, as its `lost` row's detail.
fn reason(e: &NetflowError) -> &'static str {
    match e {
        NetflowError::Incomplete { .. } => "incomplete",
        NetflowError::UnsupportedVersion { .. } => "unsupported_version",
        NetflowError::FilteredVersion { .. } => "filtered_version",
        NetflowError::ParseError { .. } => "parse_error",
        NetflowError::Partial { .. } => "partial",
        NetflowError::DecodedOutputLimitExceeded { .. } => "output_limit",
        _ => "other",
    }
}

/// Where a flow goes, by the local networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Way {
    Inbound,
    Outbound,
    Transit,
    Internal,
}

fn way(nets: &[IpNet], f: &FlowRecord) -> Way {
    if nets.is_empty() {
        return Way::Inbound;
    }
    let local = |a: IpAddr| nets.iter().any(|n| n.contains(&a));
    match (local(f.src), local(f.dst)) {
        (false, true) => Way::Inbound,
        (true, false) => Way::Outbound,
        (true, true) => Way::Internal,
        (false, false) => Way::Transit,
    }
}

/// `a`'s octets as a slice of `buf`: a datagram's addresses share one allocation instead of
/// two per flow.
fn addr_bytes(buf: &mut BytesMut, a: IpAddr) -> Bytes {
    match a {
        IpAddr::V4(a) => buf.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => buf.extend_from_slice(&a.octets()),
    }
    buf.split().freeze()
}

/// The kind of a flow: TCP by its OR-ed flags, UDP, ICMP echo requests, other ICMP, other
/// protocols.
pub fn kind_of(f: &FlowRecord) -> Kind {
    use scanscope_common::proto as p;
    match f.proto {
        p::TCP => Kind::from_flow_flags(f.tcp_flags.unwrap_or(0)),
        p::UDP => Kind::Udp,
        p::ICMP | p::ICMPV6 => match f.icmp {
            Some((8, _)) if f.proto == p::ICMP => Kind::IcmpEcho,
            Some((128, _)) if f.proto == p::ICMPV6 => Kind::IcmpEcho,
            _ => Kind::IcmpOther,
        },
        _ => Kind::OtherProto,
    }
}

/// The state of one listener: the parser (templates per exporter) and the exporters.
pub struct Receiver {
    opts: NetflowOptions,
    limits: Limits,
    parser: AutoScopedParser,
    /// The data templates the parser installed, as layouts for the fast path.
    layouts: Layouts,
    /// Datagrams decoded on the fast path.
    fast: u64,
    exporters: HashMap<(IpAddr, u32), Exporter>,
    instance_id: u64,
    agent_version: String,
    /// Flows that make a batch full, and whether one is (reading stops until it has gone).
    batch_flows: usize,
    full: bool,
    max_exporters: usize,
    /// The sources admitted (sender address and port, header's observation domain: the
    /// parser's scopes) and when each last sent; at most `max_exporters` of them over all
    /// the receivers (`admitted`, shared), so no spoofed sender can push a real exporter's
    /// templates out of the parser.
    sources: HashMap<(SocketAddr, u32), Instant>,
    admitted: Arc<AtomicUsize>,
    /// Datagrams refused since the last batch (by reason), the last sender, and the sensor
    /// that reports them.
    refused: BTreeMap<&'static str, u64>,
    refused_last: Option<IpAddr>,
    refused_sensor: Exporter,
    last_prune: Instant,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("exporters", &self.exporters.len())
            .finish()
    }
}

/// The state of exporter `addr` and `domain`, made on its first datagram (named by `names`,
/// else by its address).
fn exporter_of<'a>(
    exporters: &'a mut HashMap<(IpAddr, u32), Exporter>,
    names: &[(IpAddr, String)],
    addr: IpAddr,
    domain: u32,
) -> &'a mut Exporter {
    let addr = plain(addr);
    exporters.entry((addr, domain)).or_insert_with(|| {
        let name = names
            .iter()
            .find(|(a, _)| plain(*a) == addr)
            .map(|(_, n)| {
                if domain == 0 {
                    n.clone()
                } else {
                    format!("{n}-{domain}")
                }
            })
            .unwrap_or_else(|| exporter::default_name(addr, domain));
        Exporter::new(name, now_us())
    })
}

/// The observation domain a v9 (source id) or IPFIX header names, before parsing; 0 for
/// others and for datagrams too short to say.
fn header_domain(data: &[u8]) -> u32 {
    let at = |i: usize| {
        data.get(i..i + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match data.get(..2) {
        Some([0, 9]) => at(16),
        Some([0, 10]) => at(12),
        _ => 0,
    }
}

/// The exporter's address as the lake names it (IPv4-mapped IPv6 as IPv4).
fn plain(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        a => a,
    }
}

impl Receiver {
    pub fn new(opts: NetflowOptions, limits: Limits) -> Result<Receiver, CollectorError> {
        let builder = NetflowParser::builder().with_pending_flows(PendingFlowsConfig::default());
        let parser = AutoScopedParser::try_with_builder(builder)
            .map_err(|e| CollectorError::NetflowConfig(e.to_string()))?;
        let batch_flows = match opts.batch_flows {
            0 => BATCH_FLOWS,
            n => n,
        };
        let max_exporters = match opts.max_exporters {
            0 => MAX_EXPORTERS,
            n => n,
        };
        // The parser keeps templates per sender address, port and domain, as `sources`
        // does; its own limit (least recently used go first) is never reached.
        let parser = parser
            .with_max_sources(max_exporters.saturating_mul(2))
            .map_err(|e| CollectorError::NetflowConfig(e.to_string()))?;
        Ok(Receiver {
            batch_flows,
            full: false,
            max_exporters,
            sources: HashMap::new(),
            admitted: Arc::default(),
            refused: BTreeMap::new(),
            refused_last: None,
            refused_sensor: Exporter::new(REFUSED_SENSOR.into(), now_us()),
            last_prune: Instant::now(),
            opts,
            limits,
            parser,
            layouts: Layouts::default(),
            fast: 0,
            exporters: HashMap::new(),
            instance_id: rand::random::<u64>() | 1,
            agent_version: format!("scanscope-collector {} netflow", env!("CARGO_PKG_VERSION")),
        })
    }

    /// `n` receivers of one listener's sockets, sharing one limit of sources (none for 0).
    pub fn group(
        opts: &NetflowOptions,
        limits: Limits,
        n: usize,
    ) -> Result<Vec<Receiver>, CollectorError> {
        let mut out: Vec<Receiver> = Vec::with_capacity(n);
        for _ in 0..n {
            let r = match out.first() {
                Some(first) => first.sibling()?,
                None => Receiver::new(opts.clone(), limits)?,
            };
            out.push(r);
        }
        Ok(out)
    }

    /// Another receiver of the same listener (its own socket, parser and exporters), sharing
    /// this one's limit of sources.
    pub fn sibling(&self) -> Result<Receiver, CollectorError> {
        let mut r = Receiver::new(self.opts.clone(), self.limits)?;
        r.admitted = self.admitted.clone();
        Ok(r)
    }

    fn exporter(&mut self, addr: IpAddr, domain: u32) -> &mut Exporter {
        exporter_of(&mut self.exporters, &self.opts.names, addr, domain)
    }

    /// Admits a datagram from `from` for observation `domain`, or says why not: the
    /// exporter is not named (`named_only`), or it is a new source past the limit.
    fn admit(&mut self, from: SocketAddr, domain: u32) -> Result<(), &'static str> {
        let addr = plain(from.ip());
        if self.opts.named_only && !self.opts.names.iter().any(|(a, _)| plain(*a) == addr) {
            return Err("exporter not named (--netflow-named-only)");
        }
        match self.sources.get_mut(&(from, domain)) {
            Some(seen) => *seen = Instant::now(),
            None => {
                let max = self.max_exporters;
                self.admitted
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .map_err(|_| "exporter past --netflow-max-exporters")?;
                self.sources.insert((from, domain), Instant::now());
            }
        }
        Ok(())
    }

    fn refuse(&mut self, from: IpAddr, reason: &'static str) {
        *self.refused.entry(reason).or_default() += 1;
        self.refused_last = Some(plain(from));
        self.refused_sensor.count(counters::REFUSED, 1);
    }

    /// Forgets exporters silent for [`EXPORTER_IDLE`] with nothing waiting (and the parser's
    /// templates of sources as silent), at most once a minute.
    fn prune(&mut self) {
        if self.last_prune.elapsed() < Duration::from_secs(60) {
            return;
        }
        self.last_prune = Instant::now();
        self.exporters
            .retain(|_, e| e.has_pending() || e.last_seen.elapsed() < EXPORTER_IDLE);
        // The parser forgets the same sources (its own idle times do not see the datagrams
        // of the fast path).
        let idle: Vec<(SocketAddr, u32)> = self
            .sources
            .iter()
            .filter(|(_, seen)| seen.elapsed() >= EXPORTER_IDLE)
            .map(|(k, _)| *k)
            .collect();
        for (addr, domain) in &idle {
            let (addr, domain) = (*addr, *domain);
            self.sources.remove(&(addr, domain));
            self.layouts.forget(addr, domain);
            self.parser.remove_ipfix_source(&IpfixSourceKey {
                addr,
                observation_domain_id: domain,
            });
            self.parser.remove_v9_source(&V9SourceKey {
                addr,
                source_id: domain,
            });
            if domain == 0 {
                self.parser.remove_legacy_source(&addr);
            }
        }
        self.admitted.fetch_sub(idle.len(), Ordering::AcqRel);
    }

    /// Datagrams this receiver decoded on the fast path.
    pub fn fast_datagrams(&self) -> u64 {
        self.fast
    }

    /// Takes in one datagram from `from`.
    pub fn datagram(&mut self, from: SocketAddr, data: &[u8]) {
        METRICS.datagrams.inc();
        // Refused before the parser keeps anything of it.
        if let Err(reason) = self.admit(from, header_domain(data)) {
            self.refuse(from.ip(), reason);
            return;
        }
        self.prune();
        let received_us = now_us();
        if !self.opts.parser_only {
            let exporters = &self.exporters;
            let init = |domain| {
                exporters
                    .get(&(plain(from.ip()), domain))
                    .and_then(|e| e.init_ms)
            };
            if let Some(d) = self.layouts.decode(from, data, init) {
                self.fast += 1;
                METRICS.fast_datagrams.inc();
                self.exporter(from.ip(), d.domain)
                    .count(counters::DATAGRAMS, 1);
                self.packet(from.ip(), d, received_us);
                return;
            }
        }
        let result = self.parser.parse_from_source(from, data);
        if !self.opts.parser_only {
            let parsed = result.error.is_none() && !result.packets.is_empty();
            self.layouts.learn(from, data, parsed);
        }
        let mut decoded: Vec<Decoded> = Vec::new();
        for p in &result.packets {
            let init = self
                .exporters
                .get(&(plain(from.ip()), decode::domain_of(p)))
                .and_then(|e| e.init_ms);
            match decode::decode(p, init) {
                Some(d) => decoded.push(d),
                None => {
                    let e = self.exporter(from.ip(), 0);
                    e.lose(LostStage::NetflowMalformed, "datagrams", 1, || {
                        "unsupported_version".into()
                    });
                }
            }
        }
        if let Some(err) = &result.error {
            // Bytes after a good v5 packet parse as another packet; those are trailing bytes
            // of the same datagram, not a second one lost.
            let detail = if result.packets.is_empty() {
                reason(err)
            } else {
                "trailing_bytes"
            };
            let e = self.exporter(from.ip(), decoded.first().map_or(0, |d| d.domain));
            e.lose(LostStage::NetflowMalformed, "datagrams", 1, || {
                detail.into()
            });
        }
        if let Some(d) = decoded.first() {
            self.exporter(from.ip(), d.domain)
                .count(counters::DATAGRAMS, 1);
        }
        for d in decoded {
            self.packet(from.ip(), d, received_us);
        }
    }

    fn packet(&mut self, from: IpAddr, d: Decoded, received_us: i64) {
        let opts = &self.opts;
        let (nets, direction) = (&opts.local_nets[..], opts.direction);
        let default_rate = opts.default_sampling.max(1);
        let min_us = received_us - self.limits.max_age_us;
        let max_us = received_us + self.limits.max_future_us;
        let e = exporter_of(&mut self.exporters, &opts.names, from, d.domain);
        e.last_seen = Instant::now();
        e.count(counters::FLOWS, d.flows.len() as u64);
        if d.system_init_ms.is_some() {
            e.init_ms = d.system_init_ms;
        }
        if d.version != Version::V5 && d.sampling.is_some() {
            e.sampling = d.sampling;
        }
        let missed = e
            .sequences
            .entry(d.version.name())
            .or_default()
            .observe(d.version, d.sequence, d.records);
        let unit = if d.version == Version::V9 {
            "datagrams"
        } else {
            "flows"
        };
        e.lose(LostStage::NetflowSequence, unit, missed, || {
            format!("{} sequence gap before {}", d.version.name(), d.sequence)
        });
        e.lose(
            LostStage::NetflowMalformed,
            "flows",
            u64::from(d.unusable),
            || "record without addresses, protocol or packets".into(),
        );
        e.lose(
            LostStage::NetflowMalformed,
            "flowsets",
            u64::from(d.no_template),
            || "data whose template never arrived".into(),
        );
        let known = match d.version {
            Version::V5 => d.sampling,
            _ => e.sampling,
        };
        let rate = known.unwrap_or(default_rate);
        let (mut out_of_range, mut empty, mut from_receipt) = (0, 0, 0);
        // Flows by way: Inbound, Outbound, Transit, Internal.
        let mut ways = [0u64; 4];
        let stored_before = e.flows.len();
        e.flows.reserve(d.flows.len());
        // Room for two IPv6 addresses per flow.
        let mut addrs = BytesMut::with_capacity(d.flows.len() * 32);
        for f in &d.flows {
            let w = way(nets, f);
            ways[w as usize] += 1;
            if w != Way::Inbound && direction == Direction::Inbound {
                continue;
            }
            if f.packets == 0 {
                empty += 1;
                continue;
            }
            let us = |ms: i64| ms.checked_mul(1000);
            let (start, end) = match (f.start_ms, f.end_ms) {
                (Some(s), Some(t)) => (us(s), us(t.max(s))),
                (Some(s), None) | (None, Some(s)) => (us(s), us(s)),
                (None, None) => {
                    from_receipt += 1;
                    (Some(received_us), Some(received_us))
                }
            };
            let (Some(start), Some(end)) = (start, end) else {
                out_of_range += 1;
                continue;
            };
            if !(min_us..=max_us).contains(&start) || end > max_us {
                out_of_range += 1;
                continue;
            }
            let kind = kind_of(f);
            e.flows.push(v1::Flow {
                interval_start_us: start,
                interval_secs: ((end - start) as f64 / 1e6).max(0.001),
                src_ip: addr_bytes(&mut addrs, f.src),
                dst_ip: addr_bytes(&mut addrs, f.dst),
                proto: u32::from(f.proto),
                kind: v1::Kind::from(kind) as i32,
                dst_port: u32::from(f.dst_port),
                icmp_type: f.icmp.map(|(t, _)| u32::from(t)),
                icmp_code: f.icmp.map(|(_, c)| u32::from(c)),
                packets: f.packets,
                bytes: f.bytes,
                first_seen_us: start,
                last_seen_us: end,
                sampling_rate: Some(rate),
                tcp_flags: f.tcp_flags.map(u32::from),
            });
        }
        for (w, n) in [
            (counters::INBOUND, ways[Way::Inbound as usize]),
            (counters::OUTBOUND, ways[Way::Outbound as usize]),
            (counters::TRANSIT, ways[Way::Transit as usize]),
            (counters::INTERNAL, ways[Way::Internal as usize]),
            (counters::TIME_FROM_RECEIPT, from_receipt),
        ] {
            e.count(w, n);
        }
        if known.is_none() {
            let stored = (e.flows.len() - stored_before) as u64;
            e.count(counters::DEFAULT_SAMPLING, stored);
        }
        self.full |= e.flows.len() >= self.batch_flows;
        e.lose(LostStage::NetflowMalformed, "flows", out_of_range, || {
            "flow time outside the accepted range (--max-age-days, clock skew)".into()
        });
        e.lose(LostStage::NetflowMalformed, "flows", empty, || {
            "flow of 0 packets".into()
        });
    }

    /// Whether an exporter's batch is full: read no more datagrams before [`Receiver::due`].
    pub fn full(&self) -> bool {
        self.full
    }

    /// Batches of exporters whose rows are due (`all`: every exporter with rows).
    pub fn due(&mut self, all: bool) -> Vec<v1::Batch> {
        let (instance, version) = (self.instance_id, self.agent_version.clone());
        let batch_flows = self.batch_flows;
        self.full = false;
        let last = self.refused_last.take();
        for (reason, n) in std::mem::take(&mut self.refused) {
            self.refused_sensor
                .lose(LostStage::CollectorRejected, "datagrams", n, || {
                    let last = last.map(|a| a.to_string()).unwrap_or_default();
                    format!("{reason} (last from {last})")
                });
        }
        self.exporters
            .values_mut()
            .chain(std::iter::once(&mut self.refused_sensor))
            .filter(|e| {
                e.has_pending()
                    && (all
                        || e.flows.len() >= batch_flows
                        || e.pending_since.is_some_and(|t| t.elapsed() >= BATCH_WAIT))
            })
            .filter_map(|e| e.take_batch(instance, &version))
            .collect()
    }

    /// Reads the datagrams waiting on `socket` until none is left or a batch is full (a
    /// burst never makes a batch past the store's size limit).
    pub fn drain(&mut self, socket: &UdpSocket, buf: &mut [u8]) {
        while !self.full {
            match socket.try_recv_from(buf) {
                Ok((n, from)) => self.datagram(from, &buf[..n]),
                Err(_) => break,
            }
        }
    }
}

/// Bytes of kernel buffer a listener asks for: a burst of export datagrams waits there while
/// a batch is handed to the store.
pub const RECEIVE_BUFFER: usize = 32 << 20;

/// Sets the socket's receive buffer to [`RECEIVE_BUFFER`]: past `net.core.rmem_max` with
/// `SO_RCVBUFFORCE` when the collector has CAP_NET_ADMIN, else as far as `SO_RCVBUF` goes
/// (datagrams the kernel drops show as sequence gaps, so a small buffer loses nothing silently).
fn receive_buffer(s: &socket2::Socket) {
    use std::os::fd::AsRawFd;
    let n = RECEIVE_BUFFER as libc::c_int;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
    let forced = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const n).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        let _capped_by_rmem_max = s.set_recv_buffer_size(RECEIVE_BUFFER);
    }
    tracing::debug!(
        forced,
        bytes = s.recv_buffer_size().unwrap_or(0),
        "netflow receive buffer"
    );
}

/// Binds the listeners (before start-up ends, so a taken port fails `serve`): for each listen
/// address, [`NetflowOptions::receivers`] sockets sharing it (`SO_REUSEPORT`; a port 0 is
/// the port the first one got).
pub async fn bind(opts: &NetflowOptions) -> Result<Vec<UdpSocket>, CollectorError> {
    let mut out = Vec::new();
    for addr in &opts.listen {
        let mut at = *addr;
        for _ in 0..opts.receivers() {
            let s = socket2::Socket::new(
                socket2::Domain::for_address(at),
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .and_then(|s| {
                receive_buffer(&s);
                s.set_reuse_port(true)?;
                s.set_nonblocking(true)?;
                s.bind(&at.into())?;
                Ok(s)
            })
            .map_err(|e| CollectorError::Bind {
                addr: at,
                source: e,
            })?;
            let s = UdpSocket::from_std(s.into()).map_err(|e| CollectorError::Bind {
                addr: at,
                source: e,
            })?;
            at = s.local_addr().unwrap_or(at);
            out.push(s);
        }
        info!(addr = %at, receivers = opts.receivers(), "netflow listener");
    }
    if !opts.listen.is_empty() && opts.local_nets.is_empty() {
        warn!("no --local-net: every NetFlow/IPFIX flow is taken as inbound");
    }
    Ok(out)
}

/// Receives on `socket` until `shutdown`, handing batches to `store`.
pub async fn run(
    socket: UdpSocket,
    mut rx: Receiver,
    store: StoreHandle,
    shutdown: impl Future<Output = ()>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut tick = tokio::time::interval(BATCH_WAIT / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut last_due = Instant::now();
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    rx.datagram(from, &buf[..n]);
                    // What else waits goes in the same batches.
                    rx.drain(&socket, &mut buf);
                }
                Err(e) => warn!(error = %e, "netflow receive"),
            },
            _ = tick.tick() => {}
            () = &mut shutdown => {
                let due = rx.due(true);
                send(&store, &rx.limits, due).await;
                return;
            }
        }
        if rx.full() || last_due.elapsed() >= BATCH_WAIT / 4 {
            last_due = Instant::now();
            let due = rx.due(false);
            send(&store, &rx.limits, due).await;
        }
    }
}

/// Validates batches as a sensor's and hands them to the store without waiting for
/// durability (a refusal is logged and, like a sensor's, written to the `lost` table).
async fn send(store: &StoreHandle, limits: &Limits, batches: Vec<v1::Batch>) {
    for b in batches {
        let encoded = b.encode_to_vec();
        let (sensor, seq) = (b.sensor_id.clone(), b.seq);
        if let Err(e) = crate::validate::validate(&b, encoded.len(), limits, now_us()) {
            warn!(sensor, seq, error = %e, "netflow batch refused");
            store
                .rejected(
                    sensor,
                    e.reason(),
                    e.to_string(),
                    LostStage::CollectorRejected,
                )
                .await;
            continue;
        }
        let flows = b.flows.len() as u64;
        match store.enqueue(&b, encoded, Default::default()).await {
            Ok(answer) => {
                tokio::spawn(async move {
                    match answer.await {
                        Ok(Ok(_)) => {
                            METRICS.durable_flows.inc_by(flows);
                        }
                        Ok(Err(e)) => warn!(sensor, seq, error = %e, "netflow batch not stored"),
                        Err(_) => warn!(sensor, seq, "netflow batch not stored: store stopped"),
                    }
                });
            }
            Err(e) => warn!(sensor, seq, error = %e, "netflow batch not stored"),
        }
    }
}
