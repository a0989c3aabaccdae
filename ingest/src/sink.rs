//! Sink stage: validated batches → the lake's ingest tables (`flows`, `events`, `sensor_stats`,
//! `lost`, `sessions`), split by the UTC day of each row's own timestamp.
//!
//! Each write-ahead-log segment becomes at most one file per table and day, named after the
//! segment (`part-<segment>.parquet`). Rebuilding a segment after a crash therefore rewrites the
//! same files with the same rows: a replay never duplicates a row.
use std::{collections::BTreeMap, net::Ipv6Addr};

use arrow::{array::RecordBatch, error::ArrowError};
use chrono::{DateTime, NaiveDate};
use scanscope_common::{AppProtocol, Kind, LostStage, SessionEnd};
use scanscope_lake::{
    Lake, LakeError, Written, paths,
    table::{Proto, TableBuilder},
    tables::{
        events::{EventBuilder, EventRow},
        flows::{FlowBuilder, FlowRow},
        lost::{LostBuilder, LostRow},
        sensor_stats::{self, StatsBuilder, StatsRow},
        sessions::{SessionBuilder, SessionRow},
    },
};
use scanscope_proto::{v1::Batch, vocab};

/// Text form of a 4- or 16-byte address (the validate stage checked the length).
pub fn ip_text(b: &[u8]) -> String {
    let mut s = String::with_capacity(15);
    write_ip_text(&mut s, b);
    s
}

/// Writes the text form of a 4- or 16-byte address into `out`, replacing what it held. IPv4,
/// the address of nearly every row, is written digit by digit: through `Display` it was a tenth
/// of the lake stage's time.
pub fn write_ip_text(out: &mut String, b: &[u8]) {
    use std::fmt::Write;
    out.clear();
    match *b {
        [a, b, c, d] => {
            for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        _ if b.len() == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            let _infallible = write!(out, "{}", Ipv6Addr::from(a));
        }
        _ => {
            let _infallible = write!(out, "invalid:{}", b.len());
        }
    }
}

/// UTC day of a microsecond timestamp.
pub fn day_of(us: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .date_naive()
}

/// A contract number narrowed to its column's width (the validate stage checked the range).
fn narrow<T: TryFrom<u32> + Default>(v: u32) -> T {
    T::try_from(v).unwrap_or_default()
}

/// `None` for an empty contract string (proto3 has no absent string).
fn non_empty(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

/// A validated kind (the validate stage refuses numbers without a kind).
fn validated_kind(n: i32) -> Kind {
    vocab::kind(n).unwrap_or(Kind::OtherProto)
}

/// Rows per record batch: a segment's rows of one table and day are built in chunks of this
/// many, so no Arrow builder holds more than 64 Ki rows. With every text and byte field bounded
/// by the validate stage (payload ≤ 4 KiB), a column chunk stays under 300 MB, far from the
/// 2 GiB an Arrow string or binary array can hold, whatever the segment's size.
pub const CHUNK_ROWS: usize = 1 << 16;

/// One table's rows of one day: finished chunks and the chunk being built.
#[derive(Debug, Default)]
struct Chunked<B> {
    done: Vec<Result<RecordBatch, ArrowError>>,
    done_rows: usize,
    building: B,
}

impl<B: TableBuilder> Chunked<B> {
    fn len(&self) -> usize {
        self.done_rows + self.building.rows()
    }

    /// The builder to push the next row into.
    fn builder(&mut self) -> &mut B {
        if self.building.rows() >= CHUNK_ROWS {
            self.done_rows += self.building.rows();
            self.done.push(self.building.finish_batch());
        }
        &mut self.building
    }

    fn batches(mut self) -> Vec<Result<RecordBatch, ArrowError>> {
        if self.building.rows() > 0 || self.done.is_empty() {
            self.done.push(self.building.finish_batch());
        }
        self.done
    }
}

/// Rows of a set of batches, split by table and UTC day.
#[derive(Default)]
pub struct Rows {
    flows: BTreeMap<NaiveDate, Chunked<FlowBuilder>>,
    events: BTreeMap<NaiveDate, Chunked<EventBuilder>>,
    stats: BTreeMap<NaiveDate, Chunked<StatsBuilder>>,
    lost: BTreeMap<NaiveDate, Chunked<LostBuilder>>,
    sessions: BTreeMap<NaiveDate, Chunked<SessionBuilder>>,
    /// A flow's addresses as text, rewritten per row (no allocation per row).
    src_text: String,
    dst_text: String,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").field("rows", &self.len()).finish()
    }
}

impl Rows {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.flows.values().map(Chunked::len).sum::<usize>()
            + self.events.values().map(Chunked::len).sum::<usize>()
            + self.stats.values().map(Chunked::len).sum::<usize>()
            + self.lost.values().map(Chunked::len).sum::<usize>()
            + self.sessions.values().map(Chunked::len).sum::<usize>()
    }

    /// True if no rows are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends every row of a (validated) batch.
    pub fn push(&mut self, b: &Batch) {
        let sensor = b.sensor_id.as_str();
        let source = vocab::source(b.source).name();
        for f in &b.flows {
            write_ip_text(&mut self.src_text, &f.src_ip);
            write_ip_text(&mut self.dst_text, &f.dst_ip);
            self.flows
                .entry(day_of(f.interval_start_us))
                .or_default()
                .builder()
                .push(&FlowRow {
                    interval_start: f.interval_start_us,
                    interval_secs: f.interval_secs,
                    sensor,
                    src_ip: &self.src_text,
                    dst_ip: &self.dst_text,
                    proto: Proto(narrow(f.proto)),
                    kind: validated_kind(f.kind),
                    dst_port: narrow(f.dst_port),
                    icmp_type: f.icmp_type.map(narrow),
                    icmp_code: f.icmp_code.map(narrow),
                    packets: f.packets,
                    bytes: f.bytes,
                    first_seen: f.first_seen_us,
                    last_seen: f.last_seen_us,
                    source,
                    sampling_rate: f.sampling_rate,
                    tcp_flags: f.tcp_flags.map(narrow),
                });
        }
        for e in &b.events {
            self.events
                .entry(day_of(e.ts_us))
                .or_default()
                .builder()
                .push(&EventRow {
                    ts: e.ts_us,
                    sensor,
                    iface: &e.iface,
                    src_ip: ip_text(&e.src_ip),
                    dst_ip: ip_text(&e.dst_ip),
                    src_port: narrow(e.src_port),
                    dst_port: narrow(e.dst_port),
                    proto: Proto(narrow(e.proto)),
                    kind: validated_kind(e.kind),
                    ttl: narrow(e.ttl),
                    ip_id: narrow(e.ip_id),
                    ip_len: narrow(e.ip_len),
                    df: e.df,
                    tos: narrow(e.tos),
                    flow_label: e.flow_label,
                    tcp_flags: narrow(e.tcp_flags),
                    tcp_seq: e.tcp_seq,
                    tcp_ack: e.tcp_ack,
                    tcp_window: narrow(e.tcp_window),
                    tcp_options: &e.tcp_options,
                    tcp_options_raw: &e.tcp_options_raw,
                    icmp_type: narrow(e.icmp_type),
                    icmp_code: narrow(e.icmp_code),
                    vlan: narrow(e.vlan),
                    weight: e.weight,
                    payload_len: narrow(e.payload_len),
                    payload: &e.payload,
                    tools: &e.tools,
                    initial_ttl: narrow(e.initial_ttl),
                    os_hint: &e.os_hint,
                    backscatter: e.backscatter,
                });
        }
        for s in &b.stats {
            let r = self.stats.entry(day_of(s.interval_start_us)).or_default();
            let row = |counter, kind, port, value| StatsRow {
                interval_start: s.interval_start_us,
                interval_secs: s.interval_secs,
                sensor,
                counter,
                kind,
                port,
                value,
                agent_version: Some(b.agent_version.as_str()).filter(|v| !v.is_empty()),
            };
            for k in &s.kinds {
                let kind = Some(validated_kind(k.kind));
                r.builder()
                    .push(&row(sensor_stats::PACKETS, kind, None, k.packets));
                r.builder()
                    .push(&row(sensor_stats::BYTES, kind, None, k.bytes));
            }
            for c in &s.counters {
                r.builder().push(&row(&c.name, None, None, c.value));
            }
            for (name, ports) in [
                (sensor_stats::TCP_PORT, &s.tcp_ports),
                (sensor_stats::UDP_PORT, &s.udp_ports),
            ] {
                for p in ports {
                    r.builder()
                        .push(&row(name, None, Some(narrow(p.port)), p.packets));
                }
            }
        }
        for l in &b.lost {
            self.lost
                .entry(day_of(l.ts_us))
                .or_default()
                .builder()
                .push(&LostRow {
                    ts: l.ts_us,
                    sensor,
                    // The validate stage refuses unknown stages.
                    stage: vocab::lost_stage(l.stage).unwrap_or(LostStage::CollectorRejected),
                    unit: &l.unit,
                    count: l.count,
                    detail: &l.detail,
                });
        }
        for x in &b.sessions {
            let http = x.http.as_ref();
            let tls = x.tls.as_ref();
            self.sessions
                .entry(day_of(x.ts_us))
                .or_default()
                .builder()
                .push(&SessionRow {
                    ts: x.ts_us,
                    sensor,
                    src_ip: ip_text(&x.src_ip),
                    dst_ip: ip_text(&x.dst_ip),
                    src_port: narrow(x.src_port),
                    dst_port: narrow(x.dst_port),
                    // The validate stage refuses unknown names.
                    protocol: AppProtocol::from_name(&x.protocol).unwrap_or(AppProtocol::Unknown),
                    bytes_in: x.bytes_in,
                    bytes_out: x.bytes_out,
                    duration_ms: x.duration_ms,
                    end: SessionEnd::from_name(&x.end).unwrap_or(SessionEnd::Closed),
                    payload: &x.payload,
                    payload_cut: x.payload_cut,
                    http_method: http.map(|h| h.method.as_str()),
                    http_url: http.map(|h| h.url.as_str()),
                    http_version: http.map(|h| narrow(h.version)),
                    http_host: http.and_then(|h| h.host.as_deref()),
                    http_user_agent: http.and_then(|h| h.user_agent.as_deref()),
                    http_headers: http.map_or(&[], |h| &h.headers),
                    ja4: tls.map(|t| t.ja4.as_str()),
                    tls_sni: tls.and_then(|t| t.sni.as_deref()),
                    tls_alpn: tls.map_or(&[], |t| &t.alpn),
                    tls_version: tls.map(|t| t.version.as_str()),
                    ssh_client_banner: non_empty(&x.ssh_client_banner),
                    hassh: non_empty(&x.hassh),
                    auth_methods: x.credentials.iter().map(|c| c.method.as_str()).collect(),
                    auth_users: x.credentials.iter().map(|c| c.user.as_str()).collect(),
                    auth_secrets: x.credentials.iter().map(|c| c.secret.as_str()).collect(),
                    commands: &x.commands,
                    details: &x.details,
                    tags: &x.tags,
                });
        }
    }

    /// Writes all rows of one segment, one file per table and day. Idempotent: a re-run writes
    /// the same files. On error no partial file is visible.
    pub fn write_segment(self, lake: &Lake, segment: u64) -> Result<Vec<Written>, LakeError> {
        let mut out = Vec::new();
        macro_rules! each {
            ($field:ident, $row:ty) => {
                for (day, b) in self.$field {
                    let table = <$row>::TABLE;
                    let path = paths::part_file(table, day, segment);
                    out.push(lake.write(&path, table, <$row>::schema(), b.batches())?);
                }
            };
        }
        each!(flows, FlowRow<'_>);
        each!(events, EventRow<'_>);
        each!(stats, StatsRow<'_>);
        each!(lost, LostRow<'_>);
        each!(sessions, SessionRow<'_>);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanscope_lake::ReadOptions;
    use scanscope_proto::v1::{Event, Flow, KindCount, Lost, SensorStats};

    #[test]
    fn large_segments_are_built_in_chunks() {
        // 140 000 events of one day with 4 KiB payloads (570 MB): built in chunks of 64 Ki rows,
        // so no Arrow array comes near the 2 GiB of offsets it can address, however large the
        // segment (the review's C1 panic was one builder for the whole segment).
        let ev = Event {
            ts_us: 1_763_769_600_000_000,
            kind: scanscope_proto::v1::Kind::Udp as i32,
            proto: 17,
            src_ip: vec![10, 0, 0, 1],
            dst_ip: vec![10, 0, 0, 2],
            payload: vec![0xab; 4096],
            weight: 1,
            ..Default::default()
        };
        let b = Batch {
            sensor_id: "s1".into(),
            seq: 1,
            events: vec![ev; 140_000],
            ..Default::default()
        };
        let mut rows = Rows::default();
        rows.push(&b);
        assert_eq!(rows.len(), 140_000);
        let sizes: Vec<usize> = rows.events.values().map(|c| c.done.len()).collect();
        assert_eq!(
            sizes,
            [2],
            "two full chunks finished, the third being built"
        );
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let written = rows.write_segment(&lake, 1).unwrap();
        assert_eq!(written[0].rows, 140_000);
    }

    #[test]
    fn addresses_as_text() {
        assert_eq!(ip_text(&[198, 18, 0, 1]), "198.18.0.1");
        let mut v6 = [0u8; 16];
        v6[0] = 0xfd;
        v6[15] = 1;
        assert_eq!(ip_text(&v6), "fd00::1");
        // Every octet value in every position, against std's formatting.
        for v in 0..=255u8 {
            for a in [
                [v, 0, 9, 255],
                [10, v, 100, 99],
                [255, 1, v, 0],
                [0, 0, 0, v],
            ] {
                assert_eq!(ip_text(&a), std::net::IpAddr::from(a).to_string(), "{a:?}");
            }
        }
        assert_eq!(ip_text(&[1, 2, 3]), "invalid:3");
    }

    #[test]
    fn segment_files_split_by_day_and_rewrite_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let day1 = 1_763_769_600_000_000; // 2025-11-22T00:00:00Z
        let day0 = day1 - 1; // 2025-11-21T23:59:59.999999Z
        let flow = |t: i64, port: u32| Flow {
            interval_start_us: t,
            interval_secs: 60.0,
            src_ip: vec![10, 0, 0, 1].into(),
            dst_ip: vec![10, 0, 0, 2].into(),
            proto: 6,
            kind: scanscope_proto::v1::Kind::TcpSyn as i32,
            dst_port: port,
            packets: 3,
            bytes: 120,
            first_seen_us: t,
            last_seen_us: t + 5,
            ..Default::default()
        };
        let b = Batch {
            sensor_id: "s1".into(),
            seq: 1,
            flows: vec![flow(day0, 22), flow(day1, 23), flow(day1, 24)],
            events: vec![Event {
                ts_us: day1,
                kind: scanscope_proto::v1::Kind::Udp as i32,
                proto: 17,
                src_ip: vec![10, 0, 0, 1],
                dst_ip: vec![10, 0, 0, 2],
                tools: vec!["zmap".into(), "nmap".into()],
                payload: vec![1, 2, 3],
                ..Default::default()
            }],
            stats: vec![SensorStats {
                interval_start_us: day1,
                interval_secs: 60.0,
                kinds: vec![KindCount {
                    kind: scanscope_proto::v1::Kind::TcpSyn as i32,
                    packets: 9,
                    bytes: 360,
                }],
                ..Default::default()
            }],
            lost: vec![Lost {
                ts_us: day1,
                stage: scanscope_proto::v1::LostStage::KernelRingbuf as i32,
                unit: "events".into(),
                count: 4,
                detail: String::new(),
            }],
            ..Default::default()
        };
        assert_eq!(b.lake_rows(), 3 + 1 + 2 + 1);
        let mut rows = Rows::default();
        rows.push(&b);
        assert_eq!(rows.len(), 7);
        let written = rows.write_segment(&lake, 7).unwrap();
        let names: Vec<String> = written.iter().map(|w| w.path.to_string()).collect();
        assert_eq!(
            names,
            [
                "flows/date=2025-11-21/part-000000000007.parquet",
                "flows/date=2025-11-22/part-000000000007.parquet",
                "events/date=2025-11-22/part-000000000007.parquet",
                "sensor_stats/date=2025-11-22/part-000000000007.parquet",
                "lost/date=2025-11-22/part-000000000007.parquet",
            ]
        );
        assert_eq!(
            written.iter().map(|w| w.rows).collect::<Vec<_>>(),
            [1, 2, 1, 2, 1]
        );
        // Rewriting the segment replaces the files: still one file per table/day, no leftovers.
        let mut rows = Rows::default();
        rows.push(&b);
        rows.write_segment(&lake, 7).unwrap();
        let n = std::fs::read_dir(dir.path().join("flows/date=2025-11-22"))
            .unwrap()
            .count();
        assert_eq!(n, 1);
        // Read back through the lake.
        let day = NaiveDate::from_ymd_opt(2025, 11, 22).unwrap();
        let files = lake.day_files("flows", day).unwrap();
        assert_eq!(files.len(), 1);
        let batches: Vec<_> = lake
            .read(&files[0], &ReadOptions::default())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(batches[0].schema(), FlowRow::schema());
        assert_eq!(batches[0].num_rows(), 2);
        let stage = lake
            .read_all(&paths::part_file("lost", day, 7))
            .unwrap()
            .unwrap();
        let stage = arrow::array::AsArray::as_string::<i32>(stage.column(2))
            .value(0)
            .to_string();
        assert_eq!(stage, "kernel_ringbuf");
    }
}
