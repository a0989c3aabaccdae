//! The overview of a range: sources, scanners and wide scanners per day, sources per
//! organisation per day, the scan-breadth and ports-per-source distributions (per source and
//! day), the top ports (by packets and by distinct sources over the range), the 30-minute series
//! of the range's last day, and the DoS victims.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use scanscope_lake::tables::{
    dos_daily::{DosColumns, DosRow},
    ip_daily::{IpColumns, IpRow},
    port_daily::{PortColumns, PortRow},
    series_daily::{SeriesColumns, SeriesRow},
};
use serde_json::json;

use super::{
    Ctx, PORT_SLOTS, ProtoPort, WIDE_TAG, date, distinct, per_day, port_slot, slot_port, time, top,
};
use crate::{
    catalog::Day,
    col::{Flag, Num, Text, TextList, Time},
    error::ConsoleError,
    eval::Classes,
    view::{ColumnKind as K, Range, Table, View},
};

const IP: IpColumns = IpRow::COL;
const PORT: PortColumns = PortRow::COL;
const SERIES: SeriesColumns = SeriesRow::COL;
const DOS: DosColumns = DosRow::COL;

/// Organisations charted per day.
pub const TOP_ORGS: usize = 10;
/// Ports listed.
pub const TOP_PORTS: usize = 20;
/// DoS victims listed.
pub const TOP_VICTIMS: usize = 20;

/// Breadth buckets: `[lo, hi]` percent.
pub const BREADTH_BUCKETS: [(u64, u64); 10] = [
    (0, 9),
    (10, 19),
    (20, 29),
    (30, 39),
    (40, 49),
    (50, 59),
    (60, 69),
    (70, 79),
    (80, 89),
    (90, 100),
];

/// Ports-per-source buckets: `[lo, hi]` distinct ports.
pub const PORT_COUNT_BUCKETS: [(u64, u64); 6] = [
    (1, 1),
    (2, 9),
    (10, 99),
    (100, 999),
    (1000, 9999),
    (10_000, 65_536 * 2),
];

fn bucket_label((lo, hi): (u64, u64)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

fn bucket_of(buckets: &[(u64, u64)], x: u64) -> Option<usize> {
    buckets.iter().position(|(lo, hi)| (*lo..=*hi).contains(&x))
}

#[derive(Debug, Default)]
struct DayFacts {
    sources: u64,
    scanners: u64,
    wide: u64,
    malicious: u64,
    packets: u64,
    orgs: HashMap<String, u64>,
    breadth: [[u64; 2]; BREADTH_BUCKETS.len()],
    port_counts: [[u64; 2]; PORT_COUNT_BUCKETS.len()],
}

/// The overview's figures of one day (all its rows; kept while the day's file is unchanged).
fn day_facts(d: &Day) -> Result<DayFacts, ConsoleError> {
    let mut cols = vec![
        IP.is_scanner,
        IP.tags,
        IP.org,
        IP.packets,
        IP.scan_breadth,
        IP.port_count,
    ];
    cols.extend(Classes::COLUMNS);
    let mut f = DayFacts::default();
    d.each_batch(&cols, |b| {
        let scanner = Flag::of(b, IP.is_scanner);
        let tags = TextList::of(b, IP.tags);
        let org = Text::of(b, IP.org);
        let packets = Num::of(b, IP.packets);
        let breadth = Num::of(b, IP.scan_breadth);
        let port_count = Num::of(b, IP.port_count);
        let classes = Classes::of(b);
        for i in 0..b.num_rows() {
            let is_scanner = scanner.get(i) == Some(true);
            f.sources += 1;
            f.scanners += u64::from(is_scanner);
            f.wide += u64::from(tags.get(i).any(|t| t == WIDE_TAG));
            f.malicious += u64::from(classes.get(i) == "malicious");
            f.packets += packets.or0(i);
            if let Some(o) = org.get(i) {
                *f.orgs.entry(o.to_string()).or_insert(0) += 1;
            }
            if let Some(k) = bucket_of(&BREADTH_BUCKETS, breadth.or0(i)) {
                f.breadth[k][0] += 1;
                if is_scanner {
                    f.breadth[k][1] += 1;
                }
            }
            if let Some(k) = bucket_of(&PORT_COUNT_BUCKETS, port_count.or0(i)) {
                f.port_counts[k][0] += 1;
                if is_scanner {
                    f.port_counts[k][1] += 1;
                }
            }
        }
        Ok(())
    })?;
    Ok(f)
}

/// The overview's view.
pub fn build(ctx: &Ctx, range: Range) -> Result<View, ConsoleError> {
    let mut v = ctx.view(range);
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    let facts = per_day(&days, |d| {
        ctx.catalog
            .memo(d, "overview", day_facts)
            .map(|f| (d.date, f))
    });
    let facts: Vec<(chrono::NaiveDate, Arc<DayFacts>)> =
        facts.into_iter().collect::<Result<_, _>>()?;

    let mut daily = Table::new(&[
        ("date", K::Date),
        ("sources", K::Number),
        ("scanners", K::Number),
        ("wide_scanners", K::Number),
        ("malicious", K::Number),
        ("packets", K::Number),
    ]);
    let mut org_total: HashMap<String, u64> = HashMap::new();
    let mut breadth = [[0u64; 2]; BREADTH_BUCKETS.len()];
    let mut port_counts = [[0u64; 2]; PORT_COUNT_BUCKETS.len()];
    for (d, f) in &facts {
        daily.push(vec![
            date(*d),
            json!(f.sources),
            json!(f.scanners),
            json!(f.wide),
            json!(f.malicious),
            json!(f.packets),
        ]);
        for (o, n) in &f.orgs {
            *org_total.entry(o.clone()).or_insert(0) += n;
        }
        for (k, x) in f.breadth.iter().enumerate() {
            breadth[k][0] += x[0];
            breadth[k][1] += x[1];
        }
        for (k, x) in f.port_counts.iter().enumerate() {
            port_counts[k][0] += x[0];
            port_counts[k][1] += x[1];
        }
    }
    v.summary
        .insert("days_with_data".into(), json!(facts.len()));
    v.summary.insert(
        "source_days".into(),
        json!(facts.iter().map(|(_, f)| f.sources).sum::<u64>()),
    );
    v.summary.insert(
        "packets".into(),
        json!(facts.iter().map(|(_, f)| f.packets).sum::<u64>()),
    );
    v.tables.insert("daily", daily);

    let orgs = top(org_total, TOP_ORGS);
    let mut t = Table::new(&[("date", K::Date), ("org", K::Org), ("sources", K::Number)]);
    for (d, f) in &facts {
        for (o, _) in &orgs {
            t.push(vec![
                date(*d),
                json!(o),
                json!(f.orgs.get(o).copied().unwrap_or(0)),
            ]);
        }
    }
    v.tables.insert("orgs_daily", t);

    for (name, buckets, counts) in [
        ("breadth", &BREADTH_BUCKETS[..], &breadth[..]),
        (
            "ports_per_source",
            &PORT_COUNT_BUCKETS[..],
            &port_counts[..],
        ),
    ] {
        let mut t = Table::new(&[
            ("bucket", K::Text),
            ("source_days", K::Number),
            ("scanner_days", K::Number),
        ]);
        for (b, c) in buckets.iter().zip(counts) {
            t.push(vec![json!(bucket_label(*b)), json!(c[0]), json!(c[1])]);
        }
        v.tables.insert(name, t);
    }

    // Ports: packets and source-days (a source counted on each day it probed the port) from
    // port_daily, summed; distinct sources and scanners over the range from ip_daily.
    let mut sums = vec![[0u64; 2]; PORT_SLOTS];
    for d in ctx.catalog.rollups(PortRow::TABLE, range.from, range.to)? {
        let b = &d.all()?;
        let proto = Text::of(b, PORT.proto);
        let port = Num::of(b, PORT.port);
        let packets = Num::of(b, PORT.packets);
        let sources = Num::of(b, PORT.sources);
        for i in 0..b.num_rows() {
            let (Some(pr @ ("tcp" | "udp")), Some(Ok(p))) =
                (proto.get(i), port.get(i).map(u16::try_from))
            else {
                continue;
            };
            let e = &mut sums[port_slot(pr == "udp", p)];
            e[0] += packets.or0(i);
            e[1] += sources.or0(i);
        }
    }
    let distinct = ctx
        .catalog
        .memo_range(&days, "distinct sources", distinct::of_days)?;
    v.summary.insert("sources".into(), json!(distinct.sources));
    v.summary
        .insert("scanners".into(), json!(distinct.scanners));
    // (proto, port) -> packets, sources, scanners, source-days.
    let mut ports: BTreeMap<ProtoPort, [u64; 4]> = sums
        .iter()
        .enumerate()
        .filter(|(_, c)| c.iter().any(|x| *x > 0))
        .map(|(k, c)| (slot_port(k), [c[0], 0, 0, c[1]]))
        .collect();
    for (key, n, s) in distinct.ports() {
        let e = ports.entry(key).or_default();
        e[1] = n;
        e[2] = s;
    }
    for (name, k) in [
        ("top_ports_by_packets", 0usize),
        ("top_ports_by_sources", 1),
    ] {
        let mut t = Table::new(&[
            ("proto", K::Text),
            ("port", K::Port),
            ("packets", K::Number),
            ("sources", K::Number),
            ("scanners", K::Number),
            ("source_days", K::Number),
        ]);
        for (key, _) in top(ports.iter().map(|(key, c)| (*key, c[k])), TOP_PORTS) {
            let c = ports[&key];
            t.push(vec![
                json!(key.0),
                json!(key.1),
                json!(c[0]),
                json!(c[1]),
                json!(c[2]),
                json!(c[3]),
            ]);
        }
        v.tables.insert(name, t);
    }

    // The 30-minute series of the range's newest day that has one.
    let mut t = Table::new(&[
        ("bucket_start", K::Time),
        ("packets", K::Number),
        ("sources", K::Number),
        ("ports", K::Number),
        ("scanners", K::Number),
    ]);
    let series_days = ctx.catalog.days(SeriesRow::TABLE, range.from, range.to)?;
    if let Some(last) = series_days.last()
        && let Some(d) = ctx.catalog.rollup(SeriesRow::TABLE, *last)?
    {
        v.summary.insert("series_date".into(), date(*last));
        let b = &d.all()?;
        let start = Time::of(b, SERIES.bucket_start);
        let cols = [
            SERIES.packets,
            SERIES.sources,
            SERIES.ports,
            SERIES.scanners,
        ]
        .map(|c| Num::of(b, c));
        let mut rows: Vec<(i64, [u64; 4])> = (0..b.num_rows())
            .filter_map(|i| Some((start.get(i)?, cols.map(|c| c.or0(i)))))
            .collect();
        rows.sort_unstable();
        for (s, c) in rows {
            t.push(vec![
                time(Some(s)),
                json!(c[0]),
                json!(c[1]),
                json!(c[2]),
                json!(c[3]),
            ]);
        }
    }
    v.tables.insert("series", t);

    // DoS victims (backscatter), by packets over the range.
    let mut victims: Vec<(u64, serde_json::Value, Vec<serde_json::Value>)> = Vec::new();
    for d in ctx.catalog.rollups(DosRow::TABLE, range.from, range.to)? {
        let b = &d.all()?;
        let victim = Text::of(b, DOS.victim);
        let packets = Num::of(b, DOS.packets);
        let peak = Num::of(b, DOS.peak_ppm);
        let attacks = Num::of(b, DOS.attacks);
        let is_attack = Flag::of(b, DOS.is_attack);
        let kinds = TextList::of(b, DOS.kinds);
        let first = Time::of(b, DOS.first_seen);
        let last = Time::of(b, DOS.last_seen);
        for i in 0..b.num_rows() {
            let p = packets.or0(i);
            victims.push((
                p,
                json!(victim.get(i)),
                vec![
                    date(d.date),
                    json!(victim.get(i)),
                    json!(p),
                    json!(peak.or0(i)),
                    json!(attacks.or0(i)),
                    json!(is_attack.get(i)),
                    json!(kinds.get(i).collect::<Vec<_>>()),
                    time(first.get(i)),
                    time(last.get(i)),
                ],
            ));
        }
    }
    victims.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
    });
    let mut t = Table::new(&[
        ("date", K::Date),
        ("victim", K::Ip),
        ("packets", K::Number),
        ("peak_ppm", K::Number),
        ("attacks", K::Number),
        ("is_attack", K::Bool),
        ("kinds", K::List),
        ("first_seen", K::Time),
        ("last_seen", K::Time),
    ]);
    t.total = Some(victims.len() as u64);
    for (_, _, row) in victims.into_iter().take(TOP_VICTIMS) {
        t.push(row);
    }
    v.tables.insert("dos", t);
    Ok(v)
}
