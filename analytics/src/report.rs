//! Reports over a day's rollup: the day's overview, one source (`--ip`), one port (`--port`)
//! or the Tor exit nodes' traffic (`--tor`), as text or JSON. Reads the rollup tables
//! (`ip_daily`, `port_daily`, `dos_daily`, `series_daily`; `--tor` also the day's `flows` of its
//! exit nodes), so it answers in about the time it takes to read them.
use std::{collections::BTreeMap, path::Path};

use arrow::{
    array::{
        Array, AsArray, BooleanArray, ListArray, RecordBatch, StringArray,
        TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
    },
    compute::filter_record_batch,
    datatypes::UInt16Type,
};
use chrono::{DateTime, NaiveDate};
use scanscope_lake::{
    Lake, LakeError, paths,
    tables::{
        dos_daily::{DosColumns, DosRow},
        ip_daily::{IpColumns, IpRow},
        port_daily::{PortColumns, PortRow},
        series_daily::{SeriesColumns, SeriesRow},
    },
};
use serde_json::{Value, json};

const IP: IpColumns = IpRow::COL;
const PORT: PortColumns = PortRow::COL;
const DOS: DosColumns = DosRow::COL;
const SERIES: SeriesColumns = SeriesRow::COL;

/// Errors building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no rollup for {date} in {table} (run `scanscope-collector rollup --date {date}`)")]
    NoRollup {
        date: NaiveDate,
        table: &'static str,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{table}: column {column:?} is missing or of another type")]
    Column {
        table: &'static str,
        column: &'static str,
    },
    #[error("{table}: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{table}: {source}")]
    Json {
        table: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} not seen on that day")]
    NotSeen(String),
}

/// What to report.
#[derive(Debug, Clone)]
pub enum Query {
    Day,
    Ip(String),
    Port(u16),
    /// Traffic from the day's Tor exit nodes (`tor_exit` sources of `ip_daily`), from the
    /// day's flows of sensors and NetFlow exporters alike.
    Tor,
}

/// Options of a report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub top: usize,
    pub wide_breadth: u8,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            top: 10,
            wide_breadth: 5,
        }
    }
}

fn read_table(
    lake: &Lake,
    table: &'static str,
    date: NaiveDate,
) -> Result<RecordBatch, ReportError> {
    lake.read_all(&paths::rollup_file(table, date))?
        .ok_or(ReportError::NoRollup { date, table })
}

/// A column of a rollup table by name, as its Arrow array type.
fn col<'a, T: Array + 'static>(
    b: &'a RecordBatch,
    table: &'static str,
    column: &'static str,
) -> Result<&'a T, ReportError> {
    b.column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or(ReportError::Column { table, column })
}

fn ts_text(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn u16_list(l: &ListArray, i: usize) -> Vec<u16> {
    l.value(i)
        .as_primitive::<UInt16Type>()
        .values()
        .iter()
        .copied()
        .collect()
}

/// Builds the report as JSON (the text form is rendered from it).
pub fn build(
    root: &Path,
    date: NaiveDate,
    q: &Query,
    opts: &ReportOptions,
) -> Result<Value, ReportError> {
    let lake = Lake::local(root)?;
    let ip = read_table(&lake, IpRow::TABLE, date)?;
    match q {
        Query::Day => day(&lake, date, &ip, opts),
        Query::Ip(addr) => one_ip(date, &ip, addr),
        Query::Port(p) => one_port(&lake, date, &ip, *p, opts),
        Query::Tor => tor(&lake, date, &ip, opts),
    }
}

/// Per Tor exit node of the day: flows, packets and bytes (NetFlow rows scaled by their
/// sampling rate), destination addresses and ports, and where it was seen (sensors, sources).
fn tor(
    lake: &Lake,
    date: NaiveDate,
    ip: &RecordBatch,
    opts: &ReportOptions,
) -> Result<Value, ReportError> {
    use scanscope_lake::{ReadOptions, tables::flows::FlowRow};
    let f = FlowRow::COL;
    let src = col::<StringArray>(ip, IpRow::TABLE, IP.src_ip)?;
    let exit = col::<BooleanArray>(ip, IpRow::TABLE, IP.tor_exit)?;
    #[derive(Default)]
    struct Node {
        flows: u64,
        packets: u64,
        bytes: u64,
        dsts: std::collections::BTreeSet<String>,
        ports: std::collections::BTreeSet<(String, u16)>,
        sensors: std::collections::BTreeSet<String>,
        sources: std::collections::BTreeSet<String>,
    }
    let mut nodes: BTreeMap<String, Node> = (0..ip.num_rows())
        .filter(|i| exit.is_valid(*i) && exit.value(*i))
        .map(|i| (src.value(i).to_string(), Node::default()))
        .collect();
    let columns = [
        f.src_ip,
        f.dst_ip,
        f.proto,
        f.dst_port,
        f.packets,
        f.bytes,
        f.sensor,
        f.source,
        f.sampling_rate,
    ];
    let read = ReadOptions {
        columns: Some(&columns),
        optional: &[f.source, f.sampling_rate],
        ..ReadOptions::default()
    };
    if !nodes.is_empty() {
        for file in lake.day_files(FlowRow::TABLE, date)? {
            for b in lake.read(&file, &read)? {
                let b = b?;
                let text = |c: &'static str| col::<StringArray>(&b, FlowRow::TABLE, c);
                let (s, d, pr, sensor) = (
                    text(f.src_ip)?,
                    text(f.dst_ip)?,
                    text(f.proto)?,
                    text(f.sensor)?,
                );
                let port = col::<UInt16Array>(&b, FlowRow::TABLE, f.dst_port)?;
                let pk = col::<UInt64Array>(&b, FlowRow::TABLE, f.packets)?;
                let by = col::<UInt64Array>(&b, FlowRow::TABLE, f.bytes)?;
                let source = b
                    .column_by_name(f.source)
                    .and_then(|c| c.as_string_opt::<i32>());
                let rate = b
                    .column_by_name(f.sampling_rate)
                    .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt32Type>());
                for i in 0..b.num_rows() {
                    let Some(n) = nodes.get_mut(s.value(i)) else {
                        continue;
                    };
                    let scale = rate
                        .filter(|r| r.is_valid(i))
                        .map_or(1, |r| u64::from(r.value(i).max(1)));
                    n.flows += 1;
                    n.packets = n.packets.saturating_add(pk.value(i).saturating_mul(scale));
                    n.bytes = n.bytes.saturating_add(by.value(i).saturating_mul(scale));
                    n.dsts.insert(d.value(i).to_string());
                    if matches!(pr.value(i), "tcp" | "udp") {
                        n.ports.insert((pr.value(i).to_string(), port.value(i)));
                    }
                    n.sensors.insert(sensor.value(i).to_string());
                    n.sources.insert(
                        source
                            .filter(|c| c.is_valid(i))
                            .map_or("xdp", |c| c.value(i))
                            .to_string(),
                    );
                }
            }
        }
    }
    let mut rows: Vec<Value> = nodes
        .into_iter()
        .map(|(addr, n)| {
            json!({
                "exit_node": addr,
                "flows": n.flows,
                "packets": n.packets,
                "bytes": n.bytes,
                "destinations": n.dsts.len(),
                "destination_list": n.dsts.iter().take(opts.top).collect::<Vec<_>>(),
                "ports": n.ports.len(),
                "port_list": n.ports.iter().take(opts.top)
                    .map(|(p, x)| format!("{p}/{x}")).collect::<Vec<_>>(),
                "sensors": n.sensors,
                "sources": n.sources,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b["packets"]
            .as_u64()
            .cmp(&a["packets"].as_u64())
            .then_with(|| a["exit_node"].as_str().cmp(&b["exit_node"].as_str()))
    });
    Ok(json!({"date": date.to_string(), "exit_nodes": rows.len(), "tor": rows}))
}

fn day(
    lake: &Lake,
    date: NaiveDate,
    ip: &RecordBatch,
    opts: &ReportOptions,
) -> Result<Value, ReportError> {
    let scanner = col::<BooleanArray>(ip, IpRow::TABLE, IP.is_scanner)?;
    let breadth = col::<UInt8Array>(ip, IpRow::TABLE, IP.scan_breadth)?;
    let port_count = col::<UInt32Array>(ip, IpRow::TABLE, IP.port_count)?;
    let org = col::<StringArray>(ip, IpRow::TABLE, IP.org)?;
    let packets = col::<UInt64Array>(ip, IpRow::TABLE, IP.packets)?;
    let n = ip.num_rows();
    let mut scanners = 0u64;
    let mut wide = 0u64;
    let mut breadth_dist = [0u64; 10];
    let mut ports_dist: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut orgs: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for i in 0..n {
        let is_s = scanner.value(i);
        let is_w = is_s && breadth.value(i) >= opts.wide_breadth;
        scanners += u64::from(is_s);
        wide += u64::from(is_w);
        breadth_dist[usize::from(breadth.value(i).clamp(1, 10)) - 1] += 1;
        let bucket = match port_count.value(i) {
            0 => "0",
            1 => "1",
            2..=5 => "2-5",
            6..=20 => "6-20",
            21..=80 => "21-80",
            _ => ">80",
        };
        *ports_dist.entry(bucket).or_default() += 1;
        if org.is_valid(i) {
            let e = orgs.entry(org.value(i).to_string()).or_default();
            e.0 += 1;
            e.1 += u64::from(is_s);
            e.2 += u64::from(is_w);
            e.3 += packets.value(i);
        }
    }
    let mut org_rows: Vec<Value> = orgs
        .into_iter()
        .map(|(o, (ips, s, w, p))| json!({"org": o, "ips": ips, "scanners": s, "wide_scanners": w, "packets": p}))
        .collect();
    org_rows.sort_by(|a, b| b["ips"].as_u64().cmp(&a["ips"].as_u64()));

    let ports = read_table(lake, PortRow::TABLE, date)?;
    let proto = col::<StringArray>(&ports, PortRow::TABLE, PORT.proto)?;
    let port = col::<UInt16Array>(&ports, PortRow::TABLE, PORT.port)?;
    let pk = col::<UInt64Array>(&ports, PortRow::TABLE, PORT.packets)?;
    let srcs = col::<UInt64Array>(&ports, PortRow::TABLE, PORT.sources)?;
    let scn = col::<UInt64Array>(&ports, PortRow::TABLE, PORT.scanners)?;
    let port_json = |i: usize| {
        json!({"proto": proto.value(i), "port": port.value(i), "packets": pk.value(i),
               "sources": srcs.value(i), "scanners": scn.value(i)})
    };
    let mut idx: Vec<usize> = (0..ports.num_rows()).collect();
    idx.sort_by(|a, b| pk.value(*b).cmp(&pk.value(*a)).then(a.cmp(b)));
    let by_packets: Vec<Value> = idx.iter().take(opts.top).map(|i| port_json(*i)).collect();
    idx.sort_by(|a, b| srcs.value(*b).cmp(&srcs.value(*a)).then(a.cmp(b)));
    let by_sources: Vec<Value> = idx.iter().take(opts.top).map(|i| port_json(*i)).collect();

    let series = read_table(lake, SeriesRow::TABLE, date)?;
    let st = col::<TimestampMicrosecondArray>(&series, SeriesRow::TABLE, SERIES.bucket_start)?;
    let sp = col::<UInt64Array>(&series, SeriesRow::TABLE, SERIES.packets)?;
    let ss = col::<UInt64Array>(&series, SeriesRow::TABLE, SERIES.sources)?;
    let sports = col::<UInt64Array>(&series, SeriesRow::TABLE, SERIES.ports)?;
    let series_rows: Vec<Value> = (0..series.num_rows())
        .map(|i| json!({"start": ts_text(st.value(i)), "packets": sp.value(i), "sources": ss.value(i), "ports": sports.value(i)}))
        .collect();

    let dos = read_table(lake, DosRow::TABLE, date)?;
    let attack = col::<BooleanArray>(&dos, DosRow::TABLE, DOS.is_attack)?;
    let victim = col::<StringArray>(&dos, DosRow::TABLE, DOS.victim)?;
    let dpk = col::<UInt64Array>(&dos, DosRow::TABLE, DOS.packets)?;
    let victims: Vec<Value> = (0..dos.num_rows())
        .filter(|i| attack.value(*i))
        .take(opts.top)
        .map(|i| json!({"victim": victim.value(i), "packets": dpk.value(i)}))
        .collect();
    let ports_json: Vec<Value> = ["0", "1", "2-5", "6-20", "21-80", ">80"]
        .iter()
        .map(|b| json!({"ports": b, "sources": ports_dist.get(b).copied().unwrap_or(0)}))
        .collect();
    Ok(json!({
        "date": date.to_string(),
        "sources": n,
        "scanners": scanners,
        "wide_scanners": wide,
        "wide_breadth": opts.wide_breadth,
        "backscatter_sources": dos.num_rows(),
        "dos_victims": victims,
        "organisations": org_rows,
        "top_ports_by_packets": by_packets,
        "top_ports_by_sources": by_sources,
        "scan_breadth_distribution": breadth_dist.iter().enumerate()
            .map(|(i, c)| json!({"breadth": i + 1, "sources": c})).collect::<Vec<_>>(),
        "ports_per_ip_distribution": ports_json,
        "series_30m": series_rows,
        "responder": responder(ip, opts.top),
    }))
}

/// The strings of row `i` of a list-of-string column.
fn str_list(l: &ListArray, i: usize) -> Vec<String> {
    if l.is_null(i) {
        return Vec::new();
    }
    let v = l.value(i);
    v.as_any()
        .downcast_ref::<StringArray>()
        .map(|a| a.iter().flatten().map(str::to_string).collect())
        .unwrap_or_default()
}

/// What the responders recorded, over the day's sources: sessions, logins per protocol, and
/// the users, passwords and URLs tried by the most sources; the two-phase sources. Null when
/// no responder answered (or the rollup predates these columns).
fn responder(ip: &RecordBatch, top: usize) -> Value {
    let get = |name: &str| ip.column_by_name(name);
    let (
        Some(sessions),
        Some(protos),
        Some(counts),
        Some(users),
        Some(passwords),
        Some(urls),
        Some(two),
    ) = (
        get(IP.sessions).and_then(|c| c.as_any().downcast_ref::<UInt64Array>()),
        get(IP.login_protocols).and_then(|c| c.as_any().downcast_ref::<ListArray>()),
        get(IP.login_counts).and_then(|c| c.as_any().downcast_ref::<ListArray>()),
        get(IP.users).and_then(|c| c.as_any().downcast_ref::<ListArray>()),
        get(IP.passwords).and_then(|c| c.as_any().downcast_ref::<ListArray>()),
        get(IP.http_url).and_then(|c| c.as_any().downcast_ref::<ListArray>()),
        get(IP.two_phase_tool).and_then(|c| c.as_any().downcast_ref::<StringArray>()),
    )
    else {
        return Value::Null;
    };
    let src = ip
        .column_by_name(IP.src_ip)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let mut total = 0u64;
    let mut sources = 0u64;
    let mut logins: BTreeMap<String, u64> = BTreeMap::new();
    let by_sources = |m: &mut BTreeMap<String, u64>, v: Vec<String>| {
        for x in v {
            *m.entry(x).or_default() += 1;
        }
    };
    let (mut u, mut p, mut h) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut two_phase = Vec::new();
    for i in 0..ip.num_rows() {
        if sessions.value(i) == 0 {
            continue;
        }
        total += sessions.value(i);
        sources += 1;
        let n: Vec<u64> = if counts.is_null(i) {
            Vec::new()
        } else {
            counts
                .value(i)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map(|a| a.values().to_vec())
                .unwrap_or_default()
        };
        for (proto, n) in str_list(protos, i).into_iter().zip(n) {
            *logins.entry(proto).or_default() += n;
        }
        by_sources(&mut u, str_list(users, i));
        by_sources(&mut p, str_list(passwords, i));
        by_sources(&mut h, str_list(urls, i));
        if two.is_valid(i) {
            let s = src.map(|s| s.value(i).to_string()).unwrap_or_default();
            two_phase.push(json!({"src_ip": s, "tool": two.value(i)}));
        }
    }
    if total == 0 {
        return Value::Null;
    }
    let ranked = |m: BTreeMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.into_iter()
            .take(top)
            .map(|(x, n)| json!({"value": x, "sources": n}))
            .collect::<Vec<_>>()
    };
    json!({
        "sessions": total,
        "sources": sources,
        "logins_by_protocol": logins.into_iter().map(|(p, n)| json!({"protocol": p, "attempts": n})).collect::<Vec<_>>(),
        "top_users": ranked(u),
        "top_passwords": ranked(p),
        "top_urls": ranked(h),
        "two_phase": two_phase,
    })
}

fn one_ip(date: NaiveDate, ip: &RecordBatch, addr: &str) -> Result<Value, ReportError> {
    let src = col::<StringArray>(ip, IpRow::TABLE, IP.src_ip)?;
    let mask: BooleanArray = (0..ip.num_rows())
        .map(|i| Some(src.value(i) == addr))
        .collect();
    let arrow_err = |source| ReportError::Arrow {
        table: IpRow::TABLE,
        source,
    };
    let row = filter_record_batch(ip, &mask).map_err(arrow_err)?;
    if row.num_rows() == 0 {
        return Err(ReportError::NotSeen(addr.to_string()));
    }
    // Timestamps as RFC 3339 text (the JSON writer cannot format named time zones).
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in row.schema().fields().iter().zip(row.columns()) {
        match c.as_any().downcast_ref::<TimestampMicrosecondArray>() {
            Some(t) => {
                let text: StringArray = t.iter().map(|v| v.map(ts_text)).collect();
                fields.push(arrow::datatypes::Field::new(
                    f.name(),
                    arrow::datatypes::DataType::Utf8,
                    true,
                ));
                cols.push(std::sync::Arc::new(text) as arrow::array::ArrayRef);
            }
            None => {
                fields.push(f.as_ref().clone());
                cols.push(c.clone());
            }
        }
    }
    let row = RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        cols,
    )
    .map_err(arrow_err)?;
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        w.write(&row).and_then(|_| w.finish()).map_err(arrow_err)?;
    }
    let mut v: Value = serde_json::from_slice(&buf).map_err(|source| ReportError::Json {
        table: IpRow::TABLE,
        source,
    })?;
    let mut obj = v[0].take();
    obj["date"] = json!(date.to_string());
    Ok(obj)
}

fn one_port(
    lake: &Lake,
    date: NaiveDate,
    ip: &RecordBatch,
    port: u16,
    opts: &ReportOptions,
) -> Result<Value, ReportError> {
    let tcp = col::<ListArray>(ip, IpRow::TABLE, IP.tcp_ports)?;
    let udp = col::<ListArray>(ip, IpRow::TABLE, IP.udp_ports)?;
    let scanner = col::<BooleanArray>(ip, IpRow::TABLE, IP.is_scanner)?;
    let mut out = serde_json::Map::new();
    out.insert("date".into(), json!(date.to_string()));
    out.insert("port".into(), json!(port));
    let ports = read_table(lake, PortRow::TABLE, date)?;
    let proto = col::<StringArray>(&ports, PortRow::TABLE, PORT.proto)?;
    let pport = col::<UInt16Array>(&ports, PortRow::TABLE, PORT.port)?;
    let mut seen = false;
    for (name, list) in [("tcp", tcp), ("udp", udp)] {
        let Some(pi) =
            (0..ports.num_rows()).find(|i| proto.value(*i) == name && pport.value(*i) == port)
        else {
            continue;
        };
        seen = true;
        let top_orgs = col::<ListArray>(&ports, PortRow::TABLE, PORT.top_orgs)?.value(pi);
        let top_orgs: Vec<String> = top_orgs
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(String::from)
            .collect();
        // Ports the sources of this port also tried, by distinct sources.
        let mut also: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
        for i in 0..ip.num_rows() {
            let ps = u16_list(list, i);
            if ps.binary_search(&port).is_ok() {
                for p in ps.into_iter().filter(|p| *p != port) {
                    let e = also.entry(p).or_default();
                    e.0 += 1;
                    e.1 += u64::from(scanner.value(i));
                }
            }
        }
        let mut also: Vec<(u16, (u64, u64))> = also.into_iter().collect();
        also.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
        out.insert(
            name.into(),
            json!({
                "packets": col::<UInt64Array>(&ports, PortRow::TABLE, PORT.packets)?.value(pi),
                "sources": col::<UInt64Array>(&ports, PortRow::TABLE, PORT.sources)?.value(pi),
                "scanners": col::<UInt64Array>(&ports, PortRow::TABLE, PORT.scanners)?.value(pi),
                "top_orgs": top_orgs,
                "also_tried": also.iter().take(opts.top)
                    .map(|(p, (s, sc))| json!({"port": p, "sources": s, "scanners": sc}))
                    .collect::<Vec<_>>(),
            }),
        );
    }
    if !seen {
        return Err(ReportError::NotSeen(format!("port {port}")));
    }
    Ok(Value::Object(out))
}

/// Appends one formatted line to a `String` (which cannot fail, unlike `writeln!`'s result
/// suggests).
macro_rules! out {
    ($s:expr, $($arg:tt)*) => {{
        $s.push_str(&format!($($arg)*));
        $s.push('\n');
    }};
}

/// `s` with control characters (ESC, BEL, CR …) written as `\u{..}` escapes.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Renders a report as text.
pub fn render_text(q: &Query, v: &Value) -> String {
    let mut s = String::new();
    let num = |x: &Value| x.as_u64().unwrap_or(0);
    match q {
        Query::Day => {
            out!(s, "scanscope report {}", v["date"].as_str().unwrap_or(""));
            out!(
                s,
                "  distinct sources {}   scanners {}   wide scanners (breadth >= {}) {}   backscatter sources {}",
                num(&v["sources"]),
                num(&v["scanners"]),
                num(&v["wide_breadth"]),
                num(&v["wide_scanners"]),
                num(&v["backscatter_sources"])
            );
            out!(s, "\nper organisation (ips / scanners / wide / packets)");
            for o in v["organisations"].as_array().into_iter().flatten() {
                out!(
                    s,
                    "  {:<28} {:>8} {:>8} {:>8} {:>12}",
                    o["org"].as_str().unwrap_or(""),
                    num(&o["ips"]),
                    num(&o["scanners"]),
                    num(&o["wide_scanners"]),
                    num(&o["packets"])
                );
            }
            for (title, key) in [
                ("top ports by packets", "top_ports_by_packets"),
                ("top ports by distinct sources", "top_ports_by_sources"),
            ] {
                out!(s, "\n{title} (packets / sources / scanners)");
                for p in v[key].as_array().into_iter().flatten() {
                    out!(
                        s,
                        "  {:>5}/{:<4} {:>12} {:>8} {:>8}",
                        num(&p["port"]),
                        p["proto"].as_str().unwrap_or(""),
                        num(&p["packets"]),
                        num(&p["sources"]),
                        num(&p["scanners"])
                    );
                }
            }
            out!(s, "\nscan breadth (sources)");
            for b in v["scan_breadth_distribution"]
                .as_array()
                .into_iter()
                .flatten()
            {
                out!(s, "  {:>2} {:>10}", num(&b["breadth"]), num(&b["sources"]));
            }
            out!(s, "\nports per source (sources)");
            for b in v["ports_per_ip_distribution"]
                .as_array()
                .into_iter()
                .flatten()
            {
                out!(
                    s,
                    "  {:>6} {:>10}",
                    b["ports"].as_str().unwrap_or(""),
                    num(&b["sources"])
                );
            }
            out!(
                s,
                "\n30-minute series (packets / sources / ports), non-empty buckets"
            );
            for b in v["series_30m"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| num(&b["packets"]) > 0)
            {
                out!(
                    s,
                    "  {} {:>12} {:>8} {:>8}",
                    b["start"].as_str().unwrap_or(""),
                    num(&b["packets"]),
                    num(&b["sources"]),
                    num(&b["ports"])
                );
            }
            let r = &v["responder"];
            if !r.is_null() {
                out!(
                    s,
                    "\nwhat the scanners wanted (responder): {} sessions from {} sources",
                    num(&r["sessions"]),
                    num(&r["sources"])
                );
                for l in r["logins_by_protocol"].as_array().into_iter().flatten() {
                    out!(
                        s,
                        "  logins {:<10} {:>8}",
                        l["protocol"].as_str().unwrap_or(""),
                        num(&l["attempts"])
                    );
                }
                for (title, key) in [
                    ("users", "top_users"),
                    ("passwords", "top_passwords"),
                    ("URLs", "top_urls"),
                ] {
                    let list: Vec<String> = r[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|x| {
                            format!(
                                "{} ({})",
                                printable(x["value"].as_str().unwrap_or("")),
                                num(&x["sources"])
                            )
                        })
                        .collect();
                    if !list.is_empty() {
                        out!(s, "  top {title}: {}", list.join(", "));
                    }
                }
                for t in r["two_phase"].as_array().into_iter().flatten() {
                    out!(
                        s,
                        "  two-phase: {} (first phase {})",
                        t["src_ip"].as_str().unwrap_or(""),
                        t["tool"].as_str().unwrap_or("")
                    );
                }
            }
            let victims = v["dos_victims"].as_array().map_or(0, Vec::len);
            if victims > 0 {
                out!(
                    s,
                    "\nDoS victims (backscatter, kept out of the figures above)"
                );
                for d in v["dos_victims"].as_array().into_iter().flatten() {
                    out!(
                        s,
                        "  {:<40} {:>10} packets",
                        d["victim"].as_str().unwrap_or(""),
                        num(&d["packets"])
                    );
                }
            }
        }
        Query::Tor => {
            out!(
                s,
                "traffic from Tor exit nodes {} ({} nodes)",
                v["date"].as_str().unwrap_or(""),
                num(&v["exit_nodes"])
            );
            out!(
                s,
                "  {:<40} {:>8} {:>10} {:>12} {:>6} {:>6}  ports / sources",
                "exit node",
                "flows",
                "packets",
                "bytes",
                "dsts",
                "ports"
            );
            for n in v["tor"].as_array().into_iter().flatten() {
                let list = |k: &str| {
                    n[k].as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(printable)
                        .collect::<Vec<_>>()
                        .join(",")
                };
                out!(
                    s,
                    "  {:<40} {:>8} {:>10} {:>12} {:>6} {:>6}  {} / {}",
                    printable(n["exit_node"].as_str().unwrap_or("")),
                    num(&n["flows"]),
                    num(&n["packets"]),
                    num(&n["bytes"]),
                    num(&n["destinations"]),
                    num(&n["ports"]),
                    list("port_list"),
                    list("sources")
                );
            }
        }
        Query::Ip(_) | Query::Port(_) => {
            if let Some(o) = v.as_object() {
                for (k, x) in o {
                    // Fields like os_hint come from the network: no control character reaches
                    // the terminal (JSON output escapes them itself).
                    let text = match x {
                        Value::String(t) => printable(t),
                        Value::Null => "-".into(),
                        other => printable(&other.to_string()),
                    };
                    out!(s, "{k:<22} {text}");
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reports_carry_no_terminal_escapes() {
        let v = json!({"os_hint": "\u{1b}]0;pwned\u{7}linux", "ports": [22]});
        let text = render_text(&Query::Ip("192.0.2.1".into()), &v);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(text.contains("\\u{1b}]0;pwned\\u{7}linux"), "{text}");
    }
}
