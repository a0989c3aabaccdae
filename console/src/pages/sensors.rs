//! Fleet health: per sensor, the last interval it reported, whether that is recent (up/down),
//! its agent's version and spool backlog (the newest interval's), its packets per kind, its
//! other counters (malformed frames by reason, own traffic, …) and its losses by stage
//! (`sensor_stats` and `lost` of the range).
use std::collections::BTreeMap;

use chrono::Utc;
use scanscope_common::gauge;
use scanscope_lake::tables::{
    lost::{LostColumns, LostRow},
    sensor_stats::{self, StatsColumns, StatsRow},
};
use serde_json::json;

use super::{Ctx, time};
use crate::{
    col::{Num, Text, Time},
    error::ConsoleError,
    view::{ColumnKind as K, Range, Table, View},
};

const STATS: StatsColumns = StatsRow::COL;
const LOST: LostColumns = LostRow::COL;

/// A sensor is down when its last report ended longer ago than this.
pub const DOWN_AFTER_SECS: i64 = 300;

#[derive(Debug, Default)]
struct Sensor {
    first: Option<i64>,
    last_end: Option<i64>,
    intervals: u64,
    packets: u64,
    kinds: BTreeMap<String, u64>,
    counters: BTreeMap<String, u64>,
    /// Gauges' newest values: (interval start, value).
    gauges: BTreeMap<String, (i64, u64)>,
    /// The newest interval's agent version.
    version: Option<(i64, String)>,
    lost: BTreeMap<(String, String), u64>,
}

/// The sensors page's view.
pub fn build(ctx: &Ctx, range: Range) -> Result<View, ConsoleError> {
    let mut v = ctx.view(range);
    let mut sensors: BTreeMap<String, Sensor> = BTreeMap::new();
    let cols = [
        STATS.interval_start,
        STATS.interval_secs,
        STATS.sensor,
        STATS.counter,
        STATS.kind,
        STATS.port,
        STATS.value,
        STATS.agent_version,
    ];
    for d in ctx.catalog.days(StatsRow::TABLE, range.from, range.to)? {
        // Per-port rows are the bulk of the table and not needed here.
        let keep = |b: &arrow::array::RecordBatch| {
            let port = Num::of(b, STATS.port);
            (0..b.num_rows()).map(|i| port.get(i).is_none()).collect()
        };
        for b in ctx.catalog.scan(StatsRow::TABLE, d, &cols, &keep)? {
            let start = Time::of(&b, STATS.interval_start);
            let secs = b.column_by_name(STATS.interval_secs).and_then(|a| {
                a.as_any()
                    .downcast_ref::<arrow::array::Float64Array>()
                    .cloned()
            });
            let sensor = Text::of(&b, STATS.sensor);
            let counter = Text::of(&b, STATS.counter);
            let kind = Text::of(&b, STATS.kind);
            let value = Num::of(&b, STATS.value);
            let version = Text::of(&b, STATS.agent_version);
            for i in 0..b.num_rows() {
                let Some(name) = sensor.get(i) else { continue };
                let s = sensors.entry(name.to_string()).or_default();
                let st = start.get(i).unwrap_or(0);
                let len = secs.as_ref().map_or(0.0, |a| a.value(i));
                let end = st + (len * 1e6) as i64;
                s.first = Some(s.first.map_or(st, |f| f.min(st)));
                if s.last_end.is_none_or(|e| end > e) {
                    s.last_end = Some(end);
                }
                let val = value.or0(i);
                if let Some(v) = version.get(i)
                    && s.version.as_ref().is_none_or(|(t, _)| st >= *t)
                {
                    s.version = Some((st, v.to_string()));
                }
                match (counter.get(i), kind.get(i)) {
                    (Some(g), _) if gauge::ALL.contains(&g) => {
                        let e = s.gauges.entry(g.to_string()).or_insert((st, val));
                        if st >= e.0 {
                            *e = (st, val);
                        }
                    }
                    (Some(sensor_stats::PACKETS), Some(k)) => {
                        s.packets += val;
                        *s.kinds.entry(k.to_string()).or_insert(0) += val;
                        if k == "tcp_syn" {
                            s.intervals += 1;
                        }
                    }
                    (Some(sensor_stats::BYTES), _) => {}
                    (Some(c), _) => *s.counters.entry(c.to_string()).or_insert(0) += val,
                    _ => {}
                }
            }
        }
    }
    for d in ctx.catalog.days(LostRow::TABLE, range.from, range.to)? {
        let cols = [LOST.sensor, LOST.stage, LOST.unit, LOST.count];
        for b in ctx
            .catalog
            .scan(LostRow::TABLE, d, &cols, &|b| vec![true; b.num_rows()])?
        {
            let sensor = Text::of(&b, LOST.sensor);
            let stage = Text::of(&b, LOST.stage);
            let unit = Text::of(&b, LOST.unit);
            let count = Num::of(&b, LOST.count);
            for i in 0..b.num_rows() {
                let Some(name) = sensor.get(i) else { continue };
                let s = sensors.entry(name.to_string()).or_default();
                *s.lost
                    .entry((
                        stage.get(i).unwrap_or("").to_string(),
                        unit.get(i).unwrap_or("").to_string(),
                    ))
                    .or_insert(0) += count.or0(i);
            }
        }
    }
    let now = Utc::now().timestamp_micros();
    let mut t = Table::new(&[
        ("sensor", K::Text),
        ("state", K::Text),
        ("first_seen", K::Time),
        ("last_report", K::Time),
        ("packets", K::Number),
        ("lost", K::Number),
        ("agent_version", K::Text),
        ("spool_bytes", K::Number),
        ("pending_batches", K::Number),
    ]);
    let mut kinds = Table::new(&[
        ("sensor", K::Text),
        ("kind", K::Text),
        ("packets", K::Number),
    ]);
    let mut counters = Table::new(&[
        ("sensor", K::Text),
        ("counter", K::Text),
        ("value", K::Number),
    ]);
    let mut losses = Table::new(&[
        ("sensor", K::Text),
        ("stage", K::Text),
        ("unit", K::Text),
        ("count", K::Number),
    ]);
    let mut up = 0;
    for (name, s) in &sensors {
        let is_up = s
            .last_end
            .is_some_and(|e| now - e <= DOWN_AFTER_SECS * 1_000_000);
        up += usize::from(is_up);
        t.push(vec![
            json!(name),
            json!(if is_up { "up" } else { "down" }),
            time(s.first),
            time(s.last_end),
            json!(s.packets),
            json!(s.lost.values().sum::<u64>()),
            json!(s.version.as_ref().map(|(_, v)| v)),
            json!(s.gauges.get(gauge::SPOOL_BYTES).map(|g| g.1)),
            json!(s.gauges.get(gauge::PENDING_BATCHES).map(|g| g.1)),
        ]);
        for (k, n) in &s.kinds {
            kinds.push(vec![json!(name), json!(k), json!(n)]);
        }
        for (c, n) in &s.counters {
            counters.push(vec![json!(name), json!(c), json!(n)]);
        }
        for ((stage, unit), n) in &s.lost {
            losses.push(vec![json!(name), json!(stage), json!(unit), json!(n)]);
        }
    }
    v.summary.insert("sensors".into(), json!(sensors.len()));
    v.summary.insert("up".into(), json!(up));
    v.summary
        .insert("down_after_secs".into(), json!(DOWN_AFTER_SECS));
    v.tables.insert("sensors", t);
    v.tables.insert("kinds", kinds);
    v.tables.insert("counters", counters);
    v.tables.insert("losses", losses);
    Ok(v)
}
