//! Lake stage: batches → Arrow record batches → Parquet files in `DIR/<table>/date=YYYY-MM-DD/`.
//!
//! Each write-ahead-log segment becomes at most one file per table and day, named after the
//! segment (`part-<segment>.parquet`). Rebuilding a segment after a crash therefore rewrites the
//! same files with the same rows: a replay never duplicates a row. Files are written under a
//! hidden temporary name, fsynced, then renamed, and the directory is fsynced, so a reader never
//! sees a partial file. The schema of every table is documented in `docs/lake.md`.
use std::{
    collections::BTreeMap,
    fs::{self, File},
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    sync::{Arc, LazyLock},
};

use arrow::{
    array::{
        ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, ListBuilder, RecordBatch,
        StringBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder,
        UInt64Builder,
    },
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit},
};
use chrono::{DateTime, NaiveDate};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::properties::{EnabledStatistics, WriterProperties},
};
use scanscope_proto::v1::{Batch, Kind, LostStage};

/// Errors writing the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("encoding {table} for {path}: {source}")]
    Parquet {
        table: &'static str,
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("building {table} rows: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
}

impl LakeError {
    /// True when the error is the disk (or quota) being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            LakeError::Io { source, .. } => is_enospc(source),
            LakeError::Parquet {
                source: parquet::errors::ParquetError::External(e),
                ..
            } => e.downcast_ref::<io::Error>().is_some_and(is_enospc),
            LakeError::Parquet { source, .. } => {
                let s = source.to_string();
                s.contains("No space left") || s.contains("Disk quota")
            }
            LakeError::Arrow { .. } => false,
        }
    }
}

/// ENOSPC or EDQUOT.
pub fn is_enospc(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}

/// The tables the collector writes.
pub const TABLES: [&str; 4] = ["flows", "events", "sensor_stats", "lost"];

/// Rows per row group: large enough for good compression and few footers, small enough that a
/// reader can skip by statistics.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

static WRITER_PROPS: LazyLock<WriterProperties> = LazyLock::new(|| {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("zstd level 3 is valid"),
        ))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("scanscope-collector {}", env!("CARGO_PKG_VERSION")))
        .build()
});

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn field(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// `flows`: exact tuple counts.
pub static FLOWS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("interval_start", ts_type(), false),
        field("interval_secs", DataType::Float64, false),
        field("sensor", DataType::Utf8, false),
        field("src_ip", DataType::Utf8, false),
        field("dst_ip", DataType::Utf8, false),
        field("proto", DataType::Utf8, false),
        field("kind", DataType::Utf8, false),
        field("dst_port", DataType::UInt16, false),
        field("icmp_type", DataType::UInt8, true),
        field("icmp_code", DataType::UInt8, true),
        field("packets", DataType::UInt64, false),
        field("bytes", DataType::UInt64, false),
        field("first_seen", ts_type(), false),
        field("last_seen", ts_type(), false),
    ]))
});

/// `events`: sampled packets.
pub static EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("ts", ts_type(), false),
        field("sensor", DataType::Utf8, false),
        field("iface", DataType::Utf8, false),
        field("src_ip", DataType::Utf8, false),
        field("dst_ip", DataType::Utf8, false),
        field("src_port", DataType::UInt16, false),
        field("dst_port", DataType::UInt16, false),
        field("proto", DataType::Utf8, false),
        field("kind", DataType::Utf8, false),
        field("ttl", DataType::UInt8, false),
        field("ip_id", DataType::UInt16, false),
        field("ip_len", DataType::UInt16, false),
        field("df", DataType::Boolean, false),
        field("tos", DataType::UInt8, false),
        field("flow_label", DataType::UInt32, false),
        field("tcp_flags", DataType::UInt8, false),
        field("tcp_seq", DataType::UInt32, false),
        field("tcp_ack", DataType::UInt32, false),
        field("tcp_window", DataType::UInt16, false),
        field("tcp_options", DataType::Utf8, false),
        field("tcp_options_raw", DataType::Binary, false),
        field("icmp_type", DataType::UInt8, false),
        field("icmp_code", DataType::UInt8, false),
        field("vlan", DataType::UInt16, false),
        field("weight", DataType::UInt32, false),
        field("payload_len", DataType::UInt16, false),
        field("payload", DataType::Binary, false),
        field(
            "tools",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        field("initial_ttl", DataType::UInt8, false),
        field("os_hint", DataType::Utf8, false),
        field("backscatter", DataType::Boolean, false),
    ]))
});

/// `sensor_stats`: per-interval kernel counters, one row per counter.
pub static STATS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("interval_start", ts_type(), false),
        field("interval_secs", DataType::Float64, false),
        field("sensor", DataType::Utf8, false),
        field("counter", DataType::Utf8, false),
        field("kind", DataType::Utf8, true),
        field("port", DataType::UInt16, true),
        field("value", DataType::UInt64, false),
    ]))
});

/// `lost`: every lost-data record.
pub static LOST_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("ts", ts_type(), false),
        field("sensor", DataType::Utf8, false),
        field("stage", DataType::Utf8, false),
        field("unit", DataType::Utf8, false),
        field("count", DataType::UInt64, false),
        field("detail", DataType::Utf8, false),
    ]))
});

/// The stable snake_case name of a kind (`tcp_syn`, …), as in the agent's JSON lines.
pub fn kind_name(k: i32) -> String {
    Kind::try_from(k)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("KIND_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("kind_{k}"))
}

/// The snake_case name of a lost-data stage.
pub fn stage_name(s: i32) -> String {
    LostStage::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("LOST_STAGE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("stage_{s}"))
}

/// Protocol name for the `proto` column.
pub fn proto_name(p: u32) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

/// Text form of a 4- or 16-byte address (callers validate the length first).
pub fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(a)).to_string()
        }
        _ => format!("invalid:{}", b.len()),
    }
}

/// UTC day of a microsecond timestamp.
pub fn day_of(us: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .date_naive()
}

fn narrow<T: TryFrom<u32> + Default>(v: u32) -> T {
    T::try_from(v).unwrap_or_default()
}

#[derive(Default)]
struct FlowRows {
    interval_start: TimestampMicrosecondBuilder,
    interval_secs: Float64Builder,
    sensor: StringBuilder,
    src_ip: StringBuilder,
    dst_ip: StringBuilder,
    proto: StringBuilder,
    kind: StringBuilder,
    dst_port: UInt16Builder,
    icmp_type: UInt8Builder,
    icmp_code: UInt8Builder,
    packets: UInt64Builder,
    bytes: UInt64Builder,
    first_seen: TimestampMicrosecondBuilder,
    last_seen: TimestampMicrosecondBuilder,
    rows: usize,
}

impl FlowRows {
    fn finish(mut self) -> Result<RecordBatch, LakeError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.interval_start.finish().with_timezone("UTC")),
            Arc::new(self.interval_secs.finish()),
            Arc::new(self.sensor.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.dst_ip.finish()),
            Arc::new(self.proto.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.dst_port.finish()),
            Arc::new(self.icmp_type.finish()),
            Arc::new(self.icmp_code.finish()),
            Arc::new(self.packets.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.first_seen.finish().with_timezone("UTC")),
            Arc::new(self.last_seen.finish().with_timezone("UTC")),
        ];
        RecordBatch::try_new(FLOWS_SCHEMA.clone(), cols).map_err(|source| LakeError::Arrow {
            table: "flows",
            source,
        })
    }
}

#[derive(Default)]
struct EventRows {
    ts: TimestampMicrosecondBuilder,
    sensor: StringBuilder,
    iface: StringBuilder,
    src_ip: StringBuilder,
    dst_ip: StringBuilder,
    src_port: UInt16Builder,
    dst_port: UInt16Builder,
    proto: StringBuilder,
    kind: StringBuilder,
    ttl: UInt8Builder,
    ip_id: UInt16Builder,
    ip_len: UInt16Builder,
    df: BooleanBuilder,
    tos: UInt8Builder,
    flow_label: UInt32Builder,
    tcp_flags: UInt8Builder,
    tcp_seq: UInt32Builder,
    tcp_ack: UInt32Builder,
    tcp_window: UInt16Builder,
    tcp_options: StringBuilder,
    tcp_options_raw: BinaryBuilder,
    icmp_type: UInt8Builder,
    icmp_code: UInt8Builder,
    vlan: UInt16Builder,
    weight: UInt32Builder,
    payload_len: UInt16Builder,
    payload: BinaryBuilder,
    tools: ListBuilder<StringBuilder>,
    initial_ttl: UInt8Builder,
    os_hint: StringBuilder,
    backscatter: BooleanBuilder,
    rows: usize,
}

impl EventRows {
    fn finish(mut self) -> Result<RecordBatch, LakeError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.sensor.finish()),
            Arc::new(self.iface.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.dst_ip.finish()),
            Arc::new(self.src_port.finish()),
            Arc::new(self.dst_port.finish()),
            Arc::new(self.proto.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.ttl.finish()),
            Arc::new(self.ip_id.finish()),
            Arc::new(self.ip_len.finish()),
            Arc::new(self.df.finish()),
            Arc::new(self.tos.finish()),
            Arc::new(self.flow_label.finish()),
            Arc::new(self.tcp_flags.finish()),
            Arc::new(self.tcp_seq.finish()),
            Arc::new(self.tcp_ack.finish()),
            Arc::new(self.tcp_window.finish()),
            Arc::new(self.tcp_options.finish()),
            Arc::new(self.tcp_options_raw.finish()),
            Arc::new(self.icmp_type.finish()),
            Arc::new(self.icmp_code.finish()),
            Arc::new(self.vlan.finish()),
            Arc::new(self.weight.finish()),
            Arc::new(self.payload_len.finish()),
            Arc::new(self.payload.finish()),
            Arc::new(self.tools.finish()),
            Arc::new(self.initial_ttl.finish()),
            Arc::new(self.os_hint.finish()),
            Arc::new(self.backscatter.finish()),
        ];
        RecordBatch::try_new(EVENTS_SCHEMA.clone(), cols).map_err(|source| LakeError::Arrow {
            table: "events",
            source,
        })
    }
}

#[derive(Default)]
struct StatsRows {
    interval_start: TimestampMicrosecondBuilder,
    interval_secs: Float64Builder,
    sensor: StringBuilder,
    counter: StringBuilder,
    kind: StringBuilder,
    port: UInt16Builder,
    value: UInt64Builder,
    rows: usize,
}

impl StatsRows {
    #[expect(clippy::too_many_arguments, reason = "one argument per column")]
    fn push(
        &mut self,
        start: i64,
        secs: f64,
        sensor: &str,
        counter: &str,
        kind: Option<&str>,
        port: Option<u16>,
        value: u64,
    ) {
        self.interval_start.append_value(start);
        self.interval_secs.append_value(secs);
        self.sensor.append_value(sensor);
        self.counter.append_value(counter);
        self.kind.append_option(kind);
        self.port.append_option(port);
        self.value.append_value(value);
        self.rows += 1;
    }

    fn finish(mut self) -> Result<RecordBatch, LakeError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.interval_start.finish().with_timezone("UTC")),
            Arc::new(self.interval_secs.finish()),
            Arc::new(self.sensor.finish()),
            Arc::new(self.counter.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.port.finish()),
            Arc::new(self.value.finish()),
        ];
        RecordBatch::try_new(STATS_SCHEMA.clone(), cols).map_err(|source| LakeError::Arrow {
            table: "sensor_stats",
            source,
        })
    }
}

#[derive(Default)]
struct LostRows {
    ts: TimestampMicrosecondBuilder,
    sensor: StringBuilder,
    stage: StringBuilder,
    unit: StringBuilder,
    count: UInt64Builder,
    detail: StringBuilder,
    rows: usize,
}

impl LostRows {
    fn finish(mut self) -> Result<RecordBatch, LakeError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.sensor.finish()),
            Arc::new(self.stage.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.detail.finish()),
        ];
        RecordBatch::try_new(LOST_SCHEMA.clone(), cols).map_err(|source| LakeError::Arrow {
            table: "lost",
            source,
        })
    }
}

/// Rows of a set of batches, split by table and UTC day.
#[derive(Default)]
pub struct Rows {
    flows: BTreeMap<NaiveDate, FlowRows>,
    events: BTreeMap<NaiveDate, EventRows>,
    stats: BTreeMap<NaiveDate, StatsRows>,
    lost: BTreeMap<NaiveDate, LostRows>,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").field("rows", &self.len()).finish()
    }
}

/// Rows of one batch as the lake will store them (sensor_stats counts one row per counter).
pub fn row_count(b: &Batch) -> u64 {
    let stats: usize = b
        .stats
        .iter()
        .map(|s| s.kinds.len() * 2 + s.counters.len() + s.tcp_ports.len() + s.udp_ports.len())
        .sum();
    (b.events.len() + b.flows.len() + stats + b.lost.len()) as u64
}

impl Rows {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.flows.values().map(|r| r.rows).sum::<usize>()
            + self.events.values().map(|r| r.rows).sum::<usize>()
            + self.stats.values().map(|r| r.rows).sum::<usize>()
            + self.lost.values().map(|r| r.rows).sum::<usize>()
    }

    /// True if no rows are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends every row of a (validated) batch.
    pub fn push(&mut self, b: &Batch) {
        let sensor = b.sensor_id.as_str();
        for f in &b.flows {
            let r = self.flows.entry(day_of(f.interval_start_us)).or_default();
            r.interval_start.append_value(f.interval_start_us);
            r.interval_secs.append_value(f.interval_secs);
            r.sensor.append_value(sensor);
            r.src_ip.append_value(ip_text(&f.src_ip));
            r.dst_ip.append_value(ip_text(&f.dst_ip));
            r.proto.append_value(proto_name(f.proto));
            r.kind.append_value(kind_name(f.kind));
            r.dst_port.append_value(narrow(f.dst_port));
            r.icmp_type.append_option(f.icmp_type.map(narrow::<u8>));
            r.icmp_code.append_option(f.icmp_code.map(narrow::<u8>));
            r.packets.append_value(f.packets);
            r.bytes.append_value(f.bytes);
            r.first_seen.append_value(f.first_seen_us);
            r.last_seen.append_value(f.last_seen_us);
            r.rows += 1;
        }
        for e in &b.events {
            let r = self.events.entry(day_of(e.ts_us)).or_default();
            r.ts.append_value(e.ts_us);
            r.sensor.append_value(sensor);
            r.iface.append_value(&e.iface);
            r.src_ip.append_value(ip_text(&e.src_ip));
            r.dst_ip.append_value(ip_text(&e.dst_ip));
            r.src_port.append_value(narrow(e.src_port));
            r.dst_port.append_value(narrow(e.dst_port));
            r.proto.append_value(proto_name(e.proto));
            r.kind.append_value(kind_name(e.kind));
            r.ttl.append_value(narrow(e.ttl));
            r.ip_id.append_value(narrow(e.ip_id));
            r.ip_len.append_value(narrow(e.ip_len));
            r.df.append_value(e.df);
            r.tos.append_value(narrow(e.tos));
            r.flow_label.append_value(e.flow_label);
            r.tcp_flags.append_value(narrow(e.tcp_flags));
            r.tcp_seq.append_value(e.tcp_seq);
            r.tcp_ack.append_value(e.tcp_ack);
            r.tcp_window.append_value(narrow(e.tcp_window));
            r.tcp_options.append_value(&e.tcp_options);
            r.tcp_options_raw.append_value(&e.tcp_options_raw);
            r.icmp_type.append_value(narrow(e.icmp_type));
            r.icmp_code.append_value(narrow(e.icmp_code));
            r.vlan.append_value(narrow(e.vlan));
            r.weight.append_value(e.weight);
            r.payload_len.append_value(narrow(e.payload_len));
            r.payload.append_value(&e.payload);
            for t in &e.tools {
                r.tools.values().append_value(t);
            }
            r.tools.append(true);
            r.initial_ttl.append_value(narrow(e.initial_ttl));
            r.os_hint.append_value(&e.os_hint);
            r.backscatter.append_value(e.backscatter);
            r.rows += 1;
        }
        for s in &b.stats {
            let r = self.stats.entry(day_of(s.interval_start_us)).or_default();
            let (start, secs) = (s.interval_start_us, s.interval_secs);
            for k in &s.kinds {
                let kind = kind_name(k.kind);
                r.push(start, secs, sensor, "packets", Some(&kind), None, k.packets);
                r.push(start, secs, sensor, "bytes", Some(&kind), None, k.bytes);
            }
            for c in &s.counters {
                r.push(start, secs, sensor, &c.name, None, None, c.value);
            }
            for (name, ports) in [("tcp_port", &s.tcp_ports), ("udp_port", &s.udp_ports)] {
                for p in ports {
                    r.push(
                        start,
                        secs,
                        sensor,
                        name,
                        None,
                        Some(narrow(p.port)),
                        p.packets,
                    );
                }
            }
        }
        for l in &b.lost {
            let r = self.lost.entry(day_of(l.ts_us)).or_default();
            r.ts.append_value(l.ts_us);
            r.sensor.append_value(sensor);
            r.stage.append_value(stage_name(l.stage));
            r.unit.append_value(&l.unit);
            r.count.append_value(l.count);
            r.detail.append_value(&l.detail);
            r.rows += 1;
        }
    }
}

/// One committed Parquet file.
#[derive(Debug, Clone)]
pub struct Written {
    pub table: &'static str,
    pub path: PathBuf,
    pub rows: usize,
    pub bytes: u64,
}

/// The file a segment's rows of `table` on `day` go to.
pub fn part_path(root: &Path, table: &str, day: NaiveDate, segment: u64) -> PathBuf {
    root.join(table)
        .join(format!("date={}", day.format("%Y-%m-%d")))
        .join(format!("part-{segment:012}.parquet"))
}

/// Writes all rows of one segment, one file per table and day. Idempotent: a re-run writes
/// the same files. On error no partial file is left visible (temporary files are removed).
pub fn write_segment(root: &Path, segment: u64, rows: Rows) -> Result<Vec<Written>, LakeError> {
    let mut out = Vec::new();
    for (day, r) in rows.flows {
        out.push(write_file(root, "flows", day, segment, r.finish()?)?);
    }
    for (day, r) in rows.events {
        out.push(write_file(root, "events", day, segment, r.finish()?)?);
    }
    for (day, r) in rows.stats {
        out.push(write_file(root, "sensor_stats", day, segment, r.finish()?)?);
    }
    for (day, r) in rows.lost {
        out.push(write_file(root, "lost", day, segment, r.finish()?)?);
    }
    Ok(out)
}

fn write_file(
    root: &Path,
    table: &'static str,
    day: NaiveDate,
    segment: u64,
    batch: RecordBatch,
) -> Result<Written, LakeError> {
    let path = part_path(root, table, day, segment);
    let bytes = write_parquet_atomic(&path, table, &batch)?;
    Ok(Written {
        table,
        path,
        rows: batch.num_rows(),
        bytes,
    })
}

/// Writes `batch` to `path` with the lake's writer properties: a hidden temporary file in the
/// same directory, fsync, rename, directory fsync. Returns the file size. On error the
/// temporary file is removed and `path` is untouched.
pub fn write_parquet_atomic(
    path: &Path,
    table: &'static str,
    batch: &RecordBatch,
) -> Result<u64, LakeError> {
    write_parquet_atomic_chunks(path, table, batch.schema(), [Ok(batch.clone())])
}

/// As [`write_parquet_atomic`], for batches built one at a time (so a large table never has
/// to exist as Arrow arrays all at once).
pub fn write_parquet_atomic_chunks(
    path: &Path,
    table: &'static str,
    schema: SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch, arrow::error::ArrowError>>,
) -> Result<u64, LakeError> {
    let dir = path.parent().expect("part path has a parent").to_path_buf();
    let io_err = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| LakeError::Io { op, path, source }
    };
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("part.parquet")
    ));
    let pq = |source| LakeError::Parquet {
        table,
        path: tmp.clone(),
        source,
    };
    let result = (|| {
        let file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        let mut w = ArrowWriter::try_new(file, schema, Some(WRITER_PROPS.clone())).map_err(pq)?;
        for b in batches {
            let b = b.map_err(|source| LakeError::Arrow { table, source })?;
            w.write(&b).map_err(pq)?;
        }
        let file = w.into_inner().map_err(pq)?;
        file.sync_all().map_err(io_err("syncing", &tmp))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        fs::rename(&tmp, path).map_err(io_err("renaming", &tmp))?;
        sync_dir(&dir)?;
        Ok(bytes)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), LakeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| LakeError::Io {
            op: "syncing directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Removes temporary files a crash left behind (`.part-*.tmp`).
pub fn remove_temp_files(root: &Path) -> usize {
    let mut removed = 0;
    for table in TABLES {
        let Ok(days) = fs::read_dir(root.join(table)) else {
            continue;
        };
        for day in days.flatten() {
            let Ok(files) = fs::read_dir(day.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.')
                    && name.ends_with(".tmp")
                    && fs::remove_file(f.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanscope_proto::v1::{Event, Flow, Lost, SensorStats};

    #[test]
    fn names() {
        assert_eq!(kind_name(Kind::TcpSynack as i32), "tcp_synack");
        assert_eq!(kind_name(Kind::IcmpOther as i32), "icmp_other");
        assert_eq!(kind_name(99), "kind_99");
        assert_eq!(stage_name(LostStage::AgentSpool as i32), "agent_spool");
        assert_eq!(proto_name(58), "icmpv6");
        assert_eq!(proto_name(47), "47");
        assert_eq!(ip_text(&[198, 18, 0, 1]), "198.18.0.1");
        let mut v6 = [0u8; 16];
        v6[0] = 0xfd;
        v6[15] = 1;
        assert_eq!(ip_text(&v6), "fd00::1");
    }

    #[test]
    fn segment_files_split_by_day_and_rewrite_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let day1 = 1_763_769_600_000_000; // 2025-11-22T00:00:00Z
        let day0 = day1 - 1; // 2025-11-21T23:59:59.999999Z
        let flow = |t: i64, port: u32| Flow {
            interval_start_us: t,
            interval_secs: 60.0,
            src_ip: vec![10, 0, 0, 1],
            dst_ip: vec![10, 0, 0, 2],
            proto: 6,
            kind: Kind::TcpSyn as i32,
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
                kind: Kind::Udp as i32,
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
                kinds: vec![scanscope_proto::v1::KindCount {
                    kind: Kind::TcpSyn as i32,
                    packets: 9,
                    bytes: 360,
                }],
                ..Default::default()
            }],
            lost: vec![Lost {
                ts_us: day1,
                stage: LostStage::KernelRingbuf as i32,
                unit: "events".into(),
                count: 4,
                detail: String::new(),
            }],
            ..Default::default()
        };
        assert_eq!(row_count(&b), 3 + 1 + 2 + 1);
        let mut rows = Rows::default();
        rows.push(&b);
        assert_eq!(rows.len(), 7);
        let written = write_segment(dir.path(), 7, rows).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|w| {
                w.path
                    .strip_prefix(dir.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
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
        // Rewriting the segment replaces the files: still one file per table/day.
        let mut rows = Rows::default();
        rows.push(&b);
        write_segment(dir.path(), 7, rows).unwrap();
        let n = fs::read_dir(dir.path().join("flows/date=2025-11-22"))
            .unwrap()
            .count();
        assert_eq!(n, 1);
        // Read back.
        let f = File::open(
            dir.path()
                .join("flows/date=2025-11-22/part-000000000007.parquet"),
        )
        .unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
        assert_eq!(batches[0].schema(), *FLOWS_SCHEMA);
        assert_eq!(batches[0].num_rows(), 2);
    }
}
