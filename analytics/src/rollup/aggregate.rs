//! Aggregate stage of the rollup: one pass over the day's `flows`, `sessions` (in
//! [`super::sessions`]), `events` and `sensor_stats` rows into per-source state, per-port counters, the 30-minute series and backscatter victims.
//! Memory stays proportional to distinct sources and distinct (source, target, port) probes:
//! probes are packed into one `u64` each and de-duplicated in place as they grow.
use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, BinaryArray, ListArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use chrono::NaiveDate;
use scanscope_common::{Kind, Role, Tool, proto};
use scanscope_lake::tables::{
    events::{EventColumns, EventRow},
    flows::{FlowColumns, FlowRow},
    sensor_stats::StatsRow,
};

use super::{
    RollupError,
    classify::{self, DOS_BUCKET_SECS, SpoofReason},
    payload,
    read::{Interner, column, typed},
};

const F: FlowColumns = FlowRow::COL;
const E: EventColumns = EventRow::COL;

/// Protocol classes of a packed probe.
pub const CLASS_ICMP: u64 = 0;
pub const CLASS_TCP: u64 = 1;
pub const CLASS_UDP: u64 = 2;

/// Buckets of the 30-minute series in a day.
pub const SERIES_BUCKETS: usize = 48;

/// Most distinct OS hints kept per source.
pub const MAX_OS_HINTS: usize = 16;

/// Most payload strings kept per source and field.
pub const MAX_PAYLOAD_VALUES: usize = 10;

/// What the sampled events of one source told.
#[derive(Debug, Default)]
pub struct EventState {
    /// [`Tool`]s seen, a bit per discriminant.
    pub tools: u8,
    pub os_hints: Vec<(String, u64)>,
    pub high_ttl: bool,
    pub samples: u64,
    /// Samples that carried a payload.
    pub payloads: u64,
    pub http_url: Vec<String>,
    pub http_user_agent: Vec<String>,
    pub rdp_cookie: Vec<String>,
    pub mysql_login_attempts: u64,
    pub mysql_user: Vec<String>,
    /// MySQL logins came from responder sessions (so the count is meaningful without payloads).
    pub mysql_from_sessions: bool,
    pub payload_tags: Vec<&'static str>,
}

/// What one source's sessions told.
#[derive(Debug, Default)]
pub struct SessionState {
    pub sessions: u64,
    /// [`AppProtocol`]s seen, a bit per index in [`AppProtocol::ALL`].
    pub protocols: u32,
    /// Login attempts per protocol (index in [`AppProtocol::ALL`]).
    pub logins: Vec<(usize, u64)>,
    pub users: Vec<(String, u64)>,
    pub passwords: Vec<(String, u64)>,
    pub ja4: Vec<String>,
    pub hassh: Vec<String>,
    pub banners: Vec<String>,
    pub commands: Vec<String>,
    /// Session start times (the first [`MAX_SESSION_TIMES`]), sorted when read.
    pub times: Vec<i64>,
    /// The tool of the first phase, once the rule held.
    pub two_phase: Option<Tool>,
}

impl SessionState {
    /// Whether a stateless probe at `at` (µs) was followed by one of the sessions.
    pub fn follows(&self, at: i64) -> bool {
        let i = self.times.partition_point(|&t| t < at);
        self.times
            .get(i)
            .is_some_and(|&t| t - at <= classify::TWO_PHASE_SECS * 1_000_000)
    }
}

/// Per-source state for the day.
#[derive(Debug)]
pub struct IpState {
    pub addr: u32,
    pub first: i64,
    pub last: i64,
    pub packets: u64,
    pub bytes: u64,
    /// `flows` rows.
    pub flows: u64,
    pub backscatter_packets: u64,
    pub icmp_ping: u64,
    /// [`Kind`]s seen, a bit per discriminant.
    pub kinds: u16,
    /// [`SpoofReason`]s, a bit each.
    pub spoof: u8,
    /// 30-minute buckets with probes.
    pub buckets: u64,
    /// Sensor ids that saw the source.
    pub sensors: SensorSet,
    /// Packed probes `(target << 18) | (class << 16) | port`.
    pub probes: Vec<u64>,
    compacted: usize,
    /// Largest ICMP / DNS flow (tunnelling hints).
    pub max_icmp_flow_bytes: u64,
    pub max_dns_flow_bytes: u64,
    pub events: Option<Box<EventState>>,
    pub sessions: Option<Box<SessionState>>,
}

impl IpState {
    fn new(addr: u32, spoof: u8) -> IpState {
        IpState {
            addr,
            first: i64::MAX,
            last: i64::MIN,
            packets: 0,
            bytes: 0,
            flows: 0,
            backscatter_packets: 0,
            icmp_ping: 0,
            kinds: 0,
            spoof,
            buckets: 0,
            sensors: SensorSet::default(),
            probes: Vec::new(),
            compacted: 0,
            max_icmp_flow_bytes: 0,
            max_dns_flow_bytes: 0,
            events: None,
            sessions: None,
        }
    }

    fn add_probe(&mut self, p: u64) {
        self.probes.push(p);
        if self.probes.len() >= self.compacted + self.compacted / 2 + 64 {
            self.compact();
        }
    }

    /// Sorts and de-duplicates the probes.
    pub fn compact(&mut self) {
        self.probes.sort_unstable();
        self.probes.dedup();
        self.probes
            .shrink_to(self.probes.len() + self.probes.len() / 2 + 64);
        self.compacted = self.probes.len();
    }
}

/// A backscatter victim (source of SYN-ACK / RST / ICMP errors).
#[derive(Debug, Default)]
pub struct DosState {
    pub packets: u64,
    pub bytes: u64,
    pub first: i64,
    pub last: i64,
    /// Targets (de-duplicated by `compact`).
    pub targets: Vec<u32>,
    compacted: usize,
    pub sensors: SensorSet,
    pub kinds: u16,
    /// 10-second buckets since the start of the day.
    pub buckets: HashMap<i64, u64, foldhash::fast::RandomState>,
}

impl DosState {
    /// Sorts and de-duplicates the targets.
    pub fn compact(&mut self) {
        self.targets.sort_unstable();
        self.targets.dedup();
        self.compacted = self.targets.len();
    }
}

/// The whole day.
#[derive(Debug)]
pub struct DayAgg {
    pub day: NaiveDate,
    pub day_start_us: i64,
    pub addrs: Interner,
    pub sensors: Interner,
    /// Sensor names as shared strings (filled by `share_sensor_names`).
    pub sensor_names: Vec<std::sync::Arc<str>>,
    /// addr id → index into `ips` (u32::MAX: no state).
    state_of: Vec<u32>,
    pub ips: Vec<IpState>,
    /// Sensors with any row that day (flows or sensor_stats).
    pub active_sensors: Vec<bool>,
    /// Probe packets per (class, port): index `class * 65536 + port` (TCP and UDP).
    pub port_packets: Vec<u64>,
    /// Series: probe packets per bucket, and per port the buckets it was probed in.
    pub series_packets: [u64; SERIES_BUCKETS],
    pub port_buckets: Vec<u64>,
    pub dos: HashMap<u32, DosState, foldhash::fast::RandomState>,
    pub flow_rows: u64,
    pub event_rows: u64,
    pub stats_rows: u64,
    pub session_rows: u64,
    /// Responder sessions per (class, port), indexed as `port_packets`.
    pub port_sessions: Vec<u64>,
    /// (`class << 16 | port`, source id) of every payload seen (events and sessions).
    pub payload_sources: std::collections::HashSet<(u32, u32), foldhash::fast::RandomState>,
}

/// A set of sensor ids: a bit mask for the first 64, a list beyond.
#[derive(Debug, Default, Clone)]
pub struct SensorSet {
    mask: u64,
    extra: Vec<u32>,
}

impl SensorSet {
    pub fn insert(&mut self, id: u32) {
        if id < 64 {
            self.mask |= 1 << id;
        } else if let Err(at) = self.extra.binary_search(&id) {
            // Sorted, so a source seen by thousands of sensors stays cheap to update.
            self.extra.insert(at, id);
        }
    }

    pub fn len(&self) -> usize {
        self.mask.count_ones() as usize + self.extra.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..64u32)
            .filter(|i| self.mask & (1 << i) != 0)
            .chain(self.extra.iter().copied())
    }
}

/// What a kind (interned per file) means, computed once per kind.
#[derive(Debug, Clone, Copy)]
struct KindInfo {
    kind: Kind,
    /// The role, unless it depends on the ICMP type (`icmp_other`).
    role: Option<Role>,
    class: u64,
}

fn kind_info(name: &str) -> KindInfo {
    // The lake holds only the vocabulary's names; anything else counts as another protocol.
    let kind = Kind::from_name(name).unwrap_or(Kind::OtherProto);
    KindInfo {
        kind,
        role: (kind != Kind::IcmpOther).then(|| kind.role(0, None)),
        class: match kind {
            Kind::Udp => CLASS_UDP,
            Kind::IcmpEcho => CLASS_ICMP,
            _ => CLASS_TCP,
        },
    }
}

/// The `flows` columns the rollup reads.
pub const FLOW_COLUMNS: [&str; 12] = [
    F.sensor,
    F.src_ip,
    F.dst_ip,
    F.proto,
    F.kind,
    F.dst_port,
    F.icmp_type,
    F.packets,
    F.bytes,
    F.first_seen,
    F.last_seen,
    // NetFlow rows: packets and bytes are scaled by it (absent from older files).
    F.sampling_rate,
];

/// The `events` columns the rollup reads.
pub const EVENT_COLUMNS: [&str; 10] = [
    E.ts, E.src_ip, E.dst_port, E.kind, E.ttl, E.weight, E.payload, E.tools, E.os_hint, E.proto,
];

/// The `sensor_stats` columns the rollup reads.
pub const STATS_COLUMNS: [&str; 1] = [StatsRow::COL.sensor];

impl DayAgg {
    pub fn new(day: NaiveDate) -> DayAgg {
        DayAgg {
            day,
            day_start_us: day
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp_micros(),
            addrs: Interner::default(),
            sensors: Interner::default(),
            sensor_names: Vec::new(),
            state_of: Vec::new(),
            ips: Vec::new(),
            active_sensors: Vec::new(),
            port_packets: vec![0; 2 * 65536],
            series_packets: [0; SERIES_BUCKETS],
            port_buckets: vec![0; 2 * 65536],
            dos: HashMap::default(),
            flow_rows: 0,
            event_rows: 0,
            stats_rows: 0,
            session_rows: 0,
            port_sessions: vec![0; 2 * 65536],
            payload_sources: Default::default(),
        }
    }

    fn mark_sensor(&mut self, id: u32) {
        let i = id as usize;
        if self.active_sensors.len() <= i {
            self.active_sensors.resize(i + 1, false);
        }
        self.active_sensors[i] = true;
    }

    /// The state of an address, created on first use.
    pub(super) fn state(&mut self, addr: u32) -> usize {
        let i = addr as usize;
        if self.state_of.len() <= i {
            self.state_of.resize(i + 1, u32::MAX);
        }
        if self.state_of[i] == u32::MAX {
            let spoof =
                classify::spoof_reason_addr(self.addrs.name(addr)).map_or(0, SpoofReason::bit);
            self.state_of[i] = self.ips.len() as u32;
            self.ips.push(IpState::new(addr, spoof));
        }
        self.state_of[i] as usize
    }

    /// The state of an address if it has one.
    pub fn state_index(&self, addr: u32) -> Option<usize> {
        self.state_of
            .get(addr as usize)
            .filter(|&&s| s != u32::MAX)
            .map(|&s| s as usize)
    }

    fn bucket(&self, ts: i64) -> usize {
        ((ts - self.day_start_us) / 1_800_000_000).clamp(0, SERIES_BUCKETS as i64 - 1) as usize
    }

    /// Adds one batch of `flows` rows (`path` names the file in errors).
    pub fn add_flows_batch(
        &mut self,
        b: &RecordBatch,
        path: &str,
        x: &mut FlowScratch,
    ) -> Result<(), RollupError> {
        self.sensors
            .ids(column(b, F.sensor, path)?, &mut x.sensor_ids);
        self.addrs.ids(column(b, F.src_ip, path)?, &mut x.src_ids);
        self.addrs.ids(column(b, F.dst_ip, path)?, &mut x.dst_ids);
        x.kinds.ids(column(b, F.kind, path)?, &mut x.kind_ids);
        x.protos.ids(column(b, F.proto, path)?, &mut x.proto_ids);
        let port = typed::<UInt16Array>(b, F.dst_port, path)?;
        let icmp = typed::<UInt8Array>(b, F.icmp_type, path)?;
        let packets = typed::<UInt64Array>(b, F.packets, path)?;
        let bytes = typed::<UInt64Array>(b, F.bytes, path)?;
        let first = typed::<TimestampMicrosecondArray>(b, F.first_seen, path)?;
        let last = typed::<TimestampMicrosecondArray>(b, F.last_seen, path)?;
        let rate = b
            .column_by_name(F.sampling_rate)
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>());
        // Flows an exporter sampled 1 in N stand for N times their packets and bytes.
        let scale = |r: usize| {
            rate.filter(|a| a.is_valid(r))
                .map_or(1, |a| u64::from(a.value(r).max(1)))
        };
        while x.kind_info.len() < x.kinds.len() {
            let k = x.kinds.name(x.kind_info.len() as u32).to_string();
            x.kind_info.push(kind_info(&k));
        }
        while x.proto_numbers.len() < x.protos.len() {
            let p = x.protos.name(x.proto_numbers.len() as u32);
            x.proto_numbers.push(proto::from_name(p).unwrap_or(0));
        }
        for r in 0..b.num_rows() {
            if x.src_ids[r] == u32::MAX
                || x.dst_ids[r] == u32::MAX
                || x.sensor_ids[r] == u32::MAX
                || x.kind_ids[r] == u32::MAX
            {
                continue;
            }
            let kid = x.kind_ids[r];
            self.flow_row(FlowFacts {
                sensor: x.sensor_ids[r],
                src: x.src_ids[r],
                dst: x.dst_ids[r],
                info: x.kind_info[kid as usize],
                proto: x
                    .proto_numbers
                    .get(x.proto_ids[r] as usize)
                    .copied()
                    .unwrap_or(0),
                port: port.value(r),
                icmp_type: icmp.is_valid(r).then(|| icmp.value(r)),
                packets: packets.value(r).saturating_mul(scale(r)),
                bytes: bytes.value(r).saturating_mul(scale(r)),
                first: first.value(r),
                last: last.value(r),
            });
        }
        Ok(())
    }

    fn flow_row(&mut self, f: FlowFacts) {
        self.flow_rows += 1;
        self.mark_sensor(f.sensor);
        let kind = f.info.kind;
        let role = match f.info.role {
            Some(r) => r,
            None => kind.role(f.proto, f.icmp_type),
        };
        let kind_bit = kind as u32;
        if role == Role::Backscatter {
            let d = self.dos.entry(f.src).or_insert_with(|| DosState {
                first: i64::MAX,
                last: i64::MIN,
                ..DosState::default()
            });
            d.packets = d.packets.saturating_add(f.packets);
            d.bytes = d.bytes.saturating_add(f.bytes);
            d.first = d.first.min(f.first);
            d.last = d.last.max(f.last);
            d.kinds |= 1 << kind_bit;
            d.sensors.insert(f.sensor);
            d.targets.push(f.dst);
            if d.targets.len() >= 2 * d.compacted + 64 {
                d.compact();
            }
            *d.buckets
                .entry((f.first - self.day_start_us).div_euclid(DOS_BUCKET_SECS * 1_000_000))
                .or_default() += f.packets;
        }
        let bucket = self.bucket(f.first);
        let spoof_reason = if f.src == f.dst {
            Some(SpoofReason::SrcEqDst)
        } else if f.port == 0 || f.port == 80 || kind == Kind::Fragment {
            classify::spoof_reason_probe(kind, f.port)
        } else {
            None
        };
        let si = self.state(f.src);
        let s = &mut self.ips[si];
        s.first = s.first.min(f.first);
        s.last = s.last.max(f.last);
        s.packets = s.packets.saturating_add(f.packets);
        s.bytes = s.bytes.saturating_add(f.bytes);
        s.flows += 1;
        s.kinds |= 1 << kind_bit;
        if let Some(r) = spoof_reason {
            s.spoof |= r.bit();
        }
        s.sensors.insert(f.sensor);
        match role {
            Role::Backscatter => {
                s.backscatter_packets = s.backscatter_packets.saturating_add(f.packets)
            }
            Role::Probe => {
                let class = f.info.class;
                let port = if class == CLASS_ICMP { 0 } else { f.port };
                s.add_probe((u64::from(f.dst) << 18) | (class << 16) | u64::from(port));
                s.buckets |= 1 << bucket;
                if class == CLASS_ICMP {
                    s.icmp_ping = s.icmp_ping.saturating_add(f.packets);
                    s.max_icmp_flow_bytes = s.max_icmp_flow_bytes.max(f.bytes);
                } else {
                    if class == CLASS_UDP && f.port == 53 {
                        s.max_dns_flow_bytes = s.max_dns_flow_bytes.max(f.bytes);
                    }
                    let i = ((class - 1) as usize) * 65536 + usize::from(f.port);
                    self.port_packets[i] = self.port_packets[i].saturating_add(f.packets);
                    self.port_buckets[i] |= 1 << bucket;
                }
                self.series_packets[bucket] = self.series_packets[bucket].saturating_add(f.packets);
            }
            Role::Other => {
                if kind == Kind::IcmpOther {
                    s.max_icmp_flow_bytes = s.max_icmp_flow_bytes.max(f.bytes);
                }
            }
        }
    }

    /// Adds one batch of `events` rows.
    pub fn add_events_batch(
        &mut self,
        b: &RecordBatch,
        path: &str,
        x: &mut EventScratch,
    ) -> Result<(), RollupError> {
        let EventScratch {
            src_ids,
            hints,
            hint_ids,
            kinds,
            kind_ids,
        } = x;
        self.addrs.ids(column(b, E.src_ip, path)?, src_ids);
        hints.ids(column(b, E.os_hint, path)?, hint_ids);
        kinds.ids(column(b, E.kind, path)?, kind_ids);
        let port = typed::<UInt16Array>(b, E.dst_port, path)?;
        let ttl = typed::<UInt8Array>(b, E.ttl, path)?;
        let weight = typed::<UInt32Array>(b, E.weight, path)?;
        let payload = typed::<BinaryArray>(b, E.payload, path)?;
        let tools = typed::<ListArray>(b, E.tools, path)?;
        let ts = typed::<TimestampMicrosecondArray>(b, E.ts, path)?;
        for r in 0..b.num_rows() {
            if src_ids[r] == u32::MAX {
                continue;
            }
            self.event_rows += 1;
            let probe = Kind::from_name(kinds.name(kind_ids[r]))
                .is_some_and(|k| k.role(0, None) == Role::Probe);
            let si = self.state(src_ids[r]);
            let st = &mut self.ips[si];
            let e = st.events.get_or_insert_with(Box::default);
            let sessions = &mut st.sessions;
            e.samples += 1;
            if tools.is_valid(r) {
                let t = tools.value(r);
                let names = t
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .map(|a| a.iter().flatten().collect::<Vec<_>>())
                    .or_else(|| {
                        t.as_dictionary_opt::<arrow::datatypes::Int32Type>()
                            .map(|d| {
                                let v = d.values().as_string::<i32>();
                                d.keys()
                                    .iter()
                                    .flatten()
                                    .map(|k| v.value(k as usize))
                                    .collect()
                            })
                    })
                    .unwrap_or_default();
                for t in names.into_iter().filter_map(Tool::from_name) {
                    e.tools |= 1 << t as u8;
                    if t.is_stateless()
                        && let Some(s) = sessions.as_mut()
                        && s.two_phase.is_none()
                        && s.follows(ts.value(r))
                    {
                        s.two_phase = Some(t);
                    }
                }
            }
            if hint_ids[r] != u32::MAX {
                let h = hints.name(hint_ids[r]);
                match e.os_hints.iter().position(|(n, _)| n == h) {
                    Some(i) => e.os_hints[i].1 += 1,
                    // Bounded: the agent knows four hints; more are a peer's noise.
                    None if e.os_hints.len() < MAX_OS_HINTS => e.os_hints.push((h.to_string(), 1)),
                    None => {}
                }
            }
            if probe && ttl.value(r) >= 200 {
                e.high_ttl = true;
            }
            if payload.is_valid(r) && !payload.value(r).is_empty() {
                let class = if kinds.name(kind_ids[r]) == Kind::Udp.name() {
                    CLASS_UDP
                } else {
                    CLASS_TCP
                };
                self.payload_sources
                    .insert(((class as u32) << 16 | u32::from(port.value(r)), src_ids[r]));
                e.payloads += 1;
                let facts = payload::parse(payload.value(r), port.value(r));
                let keep = |v: &mut Vec<String>, x: Option<String>| {
                    if let Some(x) = x
                        && v.len() < MAX_PAYLOAD_VALUES
                        && !v.contains(&x)
                    {
                        v.push(x);
                    }
                };
                keep(&mut e.http_url, facts.http_url);
                keep(&mut e.http_user_agent, facts.http_user_agent);
                keep(&mut e.rdp_cookie, facts.rdp_cookie);
                keep(&mut e.mysql_user, facts.mysql_user);
                if facts.mysql_login {
                    e.mysql_login_attempts += u64::from(weight.value(r).max(1));
                }
                for t in facts.tags {
                    if !e.payload_tags.contains(&t) {
                        e.payload_tags.push(t);
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds one batch of `sensor_stats` rows.
    pub fn add_stats_batch(
        &mut self,
        b: &RecordBatch,
        path: &str,
        ids: &mut Vec<u32>,
    ) -> Result<(), RollupError> {
        self.sensors
            .ids(column(b, StatsRow::COL.sensor, path)?, ids);
        self.stats_rows += b.num_rows() as u64;
        for &i in ids.iter() {
            if i != u32::MAX {
                self.mark_sensor(i);
            }
        }
        Ok(())
    }

    /// Shares the sensor names for the rows stage (call once after reading).
    pub fn share_sensor_names(&mut self) {
        self.sensor_names = (0..self.sensors.len() as u32)
            .map(|i| std::sync::Arc::from(self.sensors.name(i)))
            .collect();
    }

    /// Number of sensors active that day.
    pub fn active_sensor_count(&self) -> u64 {
        self.active_sensors.iter().filter(|a| **a).count() as u64
    }
}

/// Per-run scratch buffers of the flows reader.
#[derive(Debug, Default)]
pub struct FlowScratch {
    sensor_ids: Vec<u32>,
    src_ids: Vec<u32>,
    dst_ids: Vec<u32>,
    kinds: Interner,
    kind_ids: Vec<u32>,
    kind_info: Vec<KindInfo>,
    protos: Interner,
    proto_ids: Vec<u32>,
    /// Protocol number per interned protocol name.
    proto_numbers: Vec<u8>,
}

/// Per-run scratch buffers of the events reader.
#[derive(Debug, Default)]
pub struct EventScratch {
    src_ids: Vec<u32>,
    hints: Interner,
    hint_ids: Vec<u32>,
    kinds: Interner,
    kind_ids: Vec<u32>,
}

/// One `flows` row as the aggregation sees it.
struct FlowFacts {
    sensor: u32,
    src: u32,
    dst: u32,
    info: KindInfo,
    proto: u8,
    port: u16,
    icmp_type: Option<u8>,
    packets: u64,
    bytes: u64,
    first: i64,
    last: i64,
}
