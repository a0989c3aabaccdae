//! Write stage of the rollup: `ip_daily`, `port_daily`, `dos_daily` and `series_daily` as one
//! Parquet file per table and day (`DIR/<table>/date=YYYY-MM-DD/rollup.parquet`), replaced
//! atomically, so a re-run overwrites and never duplicates. Schemas in `docs/lake.md`.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow::{
    array::{
        ArrayRef, BooleanBuilder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
        TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
    },
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit},
};
use chrono::NaiveDate;

use super::{
    RollupError,
    config::{FieldRule, FieldType},
    finish::{DosRow, IpRow, PortRow, SeriesRow},
};
use crate::{lake, rules::UserValue};

/// Tables the rollup writes.
pub const ROLLUP_TABLES: [&str; 4] = ["ip_daily", "port_daily", "dos_daily", "series_daily"];

/// File name of a day's rollup in each table.
pub const ROLLUP_FILE: &str = "rollup.parquet";

/// Built-in `ip_daily` columns, in order (user fields follow).
pub const IP_DAILY_COLUMNS: [&str; 38] = [
    "src_ip",
    "first_seen",
    "last_seen",
    "packets",
    "bytes",
    "sensor_count",
    "sensors",
    "scan_breadth",
    "dst_hosts",
    "ports",
    "tcp_ports",
    "udp_ports",
    "port_count",
    "probe_pairs",
    "icmp_ping",
    "kinds",
    "scan_type",
    "is_scanner",
    "tools",
    "os_hint",
    "org",
    "org_source",
    "rdns",
    "tor_exit",
    "country",
    "asn",
    "as_org",
    "spoofed_suspect",
    "spoof_reasons",
    "backscatter_packets",
    "tags",
    "http_url",
    "http_user_agent",
    "rdp_cookie",
    "mysql_login_attempts",
    "mysql_user",
    "payload_samples",
    "date",
];

/// The path of a day's rollup file of `table`.
pub fn rollup_path(root: &Path, table: &str, day: NaiveDate) -> PathBuf {
    root.join(table)
        .join(format!("date={}", day.format("%Y-%m-%d")))
        .join(ROLLUP_FILE)
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// The `ip_daily` schema with the user fields appended.
pub fn ip_daily_schema(user: &[FieldRule]) -> SchemaRef {
    let utf = DataType::Utf8;
    let mut fields = vec![
        f("src_ip", utf.clone(), false),
        f("first_seen", ts(), false),
        f("last_seen", ts(), false),
        f("packets", DataType::UInt64, false),
        f("bytes", DataType::UInt64, false),
        f("sensor_count", DataType::UInt32, false),
        f("sensors", list_of(utf.clone()), false),
        f("scan_breadth", DataType::UInt8, false),
        f("dst_hosts", DataType::UInt64, false),
        f("ports", list_of(DataType::UInt16), false),
        f("tcp_ports", list_of(DataType::UInt16), false),
        f("udp_ports", list_of(DataType::UInt16), false),
        f("port_count", DataType::UInt32, false),
        f("probe_pairs", DataType::UInt64, false),
        f("icmp_ping", DataType::UInt64, false),
        f("kinds", list_of(utf.clone()), false),
        f("scan_type", utf.clone(), false),
        f("is_scanner", DataType::Boolean, false),
        f("tools", list_of(utf.clone()), false),
        f("os_hint", utf.clone(), true),
        f("org", utf.clone(), true),
        f("org_source", utf.clone(), true),
        f("rdns", utf.clone(), true),
        f("tor_exit", DataType::Boolean, true),
        f("country", utf.clone(), true),
        f("asn", DataType::UInt32, true),
        f("as_org", utf.clone(), true),
        f("spoofed_suspect", DataType::Boolean, false),
        f("spoof_reasons", list_of(utf.clone()), false),
        f("backscatter_packets", DataType::UInt64, false),
        f("tags", list_of(utf.clone()), false),
        f("http_url", list_of(utf.clone()), true),
        f("http_user_agent", list_of(utf.clone()), true),
        f("rdp_cookie", list_of(utf.clone()), true),
        f("mysql_login_attempts", DataType::UInt64, true),
        f("mysql_user", list_of(utf.clone()), true),
        f("payload_samples", DataType::UInt64, false),
    ];
    for u in user {
        let t = match u.ty {
            FieldType::Bool => DataType::Boolean,
            FieldType::Int => DataType::Int64,
            FieldType::String => DataType::Utf8,
        };
        fields.push(f(&u.name, t, true));
    }
    Arc::new(Schema::new(fields))
}

fn strings<'a>(rows: &'a [IpRow], get: impl Fn(&'a IpRow) -> Option<&'a str>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for r in rows {
        b.append_option(get(r));
    }
    Arc::new(b.finish())
}

fn u64s<T>(rows: &[T], get: impl Fn(&T) -> Option<u64>) -> ArrayRef {
    let mut b = UInt64Builder::with_capacity(rows.len());
    for r in rows {
        b.append_option(get(r));
    }
    Arc::new(b.finish())
}

fn u32s<T>(rows: &[T], get: impl Fn(&T) -> Option<u32>) -> ArrayRef {
    let mut b = UInt32Builder::with_capacity(rows.len());
    for r in rows {
        b.append_option(get(r));
    }
    Arc::new(b.finish())
}

fn bools<T>(rows: &[T], get: impl Fn(&T) -> Option<bool>) -> ArrayRef {
    let mut b = BooleanBuilder::with_capacity(rows.len());
    for r in rows {
        b.append_option(get(r));
    }
    Arc::new(b.finish())
}

fn times<T>(rows: &[T], get: impl Fn(&T) -> i64) -> ArrayRef {
    let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
    for r in rows {
        b.append_value(get(r));
    }
    Arc::new(b.finish())
}

fn str_lists<'a, T: 'a, S: AsRef<str> + 'a>(
    rows: &'a [T],
    get: impl Fn(&'a T) -> Option<&'a [S]>,
) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in rows {
        match get(r) {
            Some(v) => {
                for x in v {
                    b.values().append_value(x.as_ref());
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

fn port_lists(rows: &[IpRow], get: impl Fn(&IpRow) -> &[u16]) -> ArrayRef {
    let mut b = ListBuilder::new(UInt16Builder::new());
    for r in rows {
        for p in get(r) {
            b.values().append_value(*p);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// Rows per record batch when writing `ip_daily`.
pub const IP_DAILY_CHUNK: usize = 65_536;

/// Writes `ip_daily`, building Arrow arrays one chunk of rows at a time.
pub fn write_ip_daily(
    root: &Path,
    day: NaiveDate,
    rows: &[IpRow],
    user: &[FieldRule],
) -> Result<u64, RollupError> {
    let schema = ip_daily_schema(user);
    let chunks = rows
        .chunks(IP_DAILY_CHUNK)
        .map(|c| ip_daily_arrow(schema.clone(), c, user));
    Ok(lake::write_parquet_atomic_chunks(
        &rollup_path(root, "ip_daily", day),
        "ip_daily",
        schema.clone(),
        chunks,
    )?)
}

/// `ip_daily` rows → one record batch.
fn ip_daily_arrow(
    schema: SchemaRef,
    rows: &[IpRow],
    user: &[FieldRule],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut breadth = UInt8Builder::with_capacity(rows.len());
    for r in rows {
        breadth.append_value(r.scan_breadth);
    }
    let mut cols: Vec<ArrayRef> = vec![
        strings(rows, |r| Some(&r.src_ip)),
        times(rows, |r| r.first_seen),
        times(rows, |r| r.last_seen),
        u64s(rows, |r| Some(r.packets)),
        u64s(rows, |r| Some(r.bytes)),
        u32s(rows, |r| Some(r.sensor_count)),
        str_lists(rows, |r| Some(&r.sensors[..])),
        Arc::new(breadth.finish()),
        u64s(rows, |r| Some(r.dst_hosts)),
        port_lists(rows, |r| &r.ports),
        port_lists(rows, |r| &r.tcp_ports),
        port_lists(rows, |r| &r.udp_ports),
        u32s(rows, |r| Some(r.port_count)),
        u64s(rows, |r| Some(r.probe_pairs)),
        u64s(rows, |r| Some(r.icmp_ping)),
        str_lists(rows, |r| Some(&r.kinds[..])),
        strings(rows, |r| Some(r.scan_type)),
        bools(rows, |r| Some(r.is_scanner)),
        str_lists(rows, |r| Some(&r.tools[..])),
        strings(rows, |r| r.os_hint.as_deref()),
        strings(rows, |r| r.org.as_deref()),
        strings(rows, |r| r.org_source),
        strings(rows, |r| r.rdns.as_deref()),
        bools(rows, |r| r.tor_exit),
        strings(rows, |r| r.country.as_deref()),
        u32s(rows, |r| r.asn),
        strings(rows, |r| r.as_org.as_deref()),
        bools(rows, |r| Some(r.spoofed_suspect)),
        str_lists(rows, |r| Some(&r.spoof_reasons[..])),
        u64s(rows, |r| Some(r.backscatter_packets)),
        str_lists(rows, |r| Some(&r.tags[..])),
        str_lists(rows, |r| r.http_url.as_deref()),
        str_lists(rows, |r| r.http_user_agent.as_deref()),
        str_lists(rows, |r| r.rdp_cookie.as_deref()),
        u64s(rows, |r| r.mysql_login_attempts),
        str_lists(rows, |r| r.mysql_user.as_deref()),
        u64s(rows, |r| Some(r.payload_samples)),
    ];
    for (i, u) in user.iter().enumerate() {
        let value = |r: &IpRow| r.user.get(i).cloned().unwrap_or(UserValue::Null);
        cols.push(match u.ty {
            FieldType::Bool => bools(rows, |r| match value(r) {
                UserValue::Bool(b) => Some(b),
                _ => None,
            }),
            FieldType::Int => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for r in rows {
                    b.append_option(match value(r) {
                        UserValue::Int(i) => Some(i),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            FieldType::String => {
                let mut b = StringBuilder::new();
                for r in rows {
                    b.append_option(match value(r) {
                        UserValue::String(s) => Some(s),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
        });
    }
    RecordBatch::try_new(schema, cols)
}

/// `port_daily` rows → one record batch.
pub fn port_daily_batch(rows: &[PortRow]) -> Result<RecordBatch, RollupError> {
    let schema = Arc::new(Schema::new(vec![
        f("proto", DataType::Utf8, false),
        f("port", DataType::UInt16, false),
        f("packets", DataType::UInt64, false),
        f("sources", DataType::UInt64, false),
        f("scanners", DataType::UInt64, false),
        f("top_orgs", list_of(DataType::Utf8), false),
    ]));
    let mut proto = StringBuilder::new();
    let mut port = UInt16Builder::with_capacity(rows.len());
    for r in rows {
        proto.append_value(r.proto);
        port.append_value(r.port);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(proto.finish()),
        Arc::new(port.finish()),
        u64s(rows, |r| Some(r.packets)),
        u64s(rows, |r| Some(r.sources)),
        u64s(rows, |r| Some(r.scanners)),
        str_lists(rows, |r| Some(&r.top_orgs[..])),
    ];
    RecordBatch::try_new(schema, cols).map_err(|source| RollupError::Build {
        table: "port_daily",
        source,
    })
}

/// `dos_daily` rows → one record batch.
pub fn dos_daily_batch(rows: &[DosRow]) -> Result<RecordBatch, RollupError> {
    let schema = Arc::new(Schema::new(vec![
        f("victim", DataType::Utf8, false),
        f("first_seen", ts(), false),
        f("last_seen", ts(), false),
        f("packets", DataType::UInt64, false),
        f("bytes", DataType::UInt64, false),
        f("peak_ppm", DataType::UInt64, false),
        f("dst_hosts", DataType::UInt64, false),
        f("sensor_count", DataType::UInt32, false),
        f("kinds", list_of(DataType::Utf8), false),
        f("attacks", DataType::UInt32, false),
        f("is_attack", DataType::Boolean, false),
    ]));
    let mut victim = StringBuilder::new();
    for r in rows {
        victim.append_value(&r.victim);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(victim.finish()),
        times(rows, |r| r.first_seen),
        times(rows, |r| r.last_seen),
        u64s(rows, |r| Some(r.packets)),
        u64s(rows, |r| Some(r.bytes)),
        u64s(rows, |r| Some(r.peak_ppm)),
        u64s(rows, |r| Some(r.dst_hosts)),
        u32s(rows, |r| Some(r.sensor_count)),
        str_lists(rows, |r| Some(&r.kinds[..])),
        u32s(rows, |r| Some(r.attacks)),
        bools(rows, |r| Some(r.is_attack)),
    ];
    RecordBatch::try_new(schema, cols).map_err(|source| RollupError::Build {
        table: "dos_daily",
        source,
    })
}

/// `series_daily` rows → one record batch.
pub fn series_daily_batch(rows: &[SeriesRow]) -> Result<RecordBatch, RollupError> {
    let schema = Arc::new(Schema::new(vec![
        f("bucket_start", ts(), false),
        f("packets", DataType::UInt64, false),
        f("sources", DataType::UInt64, false),
        f("ports", DataType::UInt64, false),
        f("scanners", DataType::UInt64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        times(rows, |r| r.bucket_start),
        u64s(rows, |r| Some(r.packets)),
        u64s(rows, |r| Some(r.sources)),
        u64s(rows, |r| Some(r.ports)),
        u64s(rows, |r| Some(r.scanners)),
    ];
    RecordBatch::try_new(schema, cols).map_err(|source| RollupError::Build {
        table: "series_daily",
        source,
    })
}

/// Writes one table's day file atomically.
pub fn write_table(
    root: &Path,
    table: &'static str,
    day: NaiveDate,
    batch: &RecordBatch,
) -> Result<u64, RollupError> {
    Ok(lake::write_parquet_atomic(
        &rollup_path(root, table, day),
        table,
        batch,
    )?)
}
