//! The page queries: each builds the [`View`] one page of the UI (and one API call) shows.
//! They read only the rollup tables (and, for one IP, that IP's sessions and payload samples).
pub mod distinct;
pub mod fold;
pub mod ip;
pub mod meta;
pub mod org;
pub mod overview;
pub mod port;
pub mod search;
pub mod sensors;
pub mod tor;

use std::{collections::BTreeSet, path::PathBuf, sync::Arc};

use arrow::array::RecordBatch;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use scanscope_lake::tables::ip_daily::IpRow;
use serde_json::{Value, json};

use self::fold::DayMatch;
pub use self::fold::{Matched, Sort};
use crate::{
    catalog::{Catalog, Day},
    error::ConsoleError,
    view::{Range, View},
};

/// The longest range a view covers, in days.
pub const MAX_RANGE_DAYS: i64 = 366;
/// Days in the default range.
pub const DEFAULT_RANGE_DAYS: i64 = 7;
/// The tag of a wide scanner (the rollup's).
pub const WIDE_TAG: &str = "wide_scanner";

/// What every page reads from.
#[derive(Debug)]
pub struct Ctx {
    pub catalog: Catalog,
    /// The data directory (its `_state/` tells which days are provisional), if local.
    pub data: Option<PathBuf>,
}

impl Ctx {
    /// The range asked for, or the default: the 7 days ending with the newest rolled-up day
    /// (today when there is none).
    pub fn range(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Range, ConsoleError> {
        let newest = || -> Result<NaiveDate, ConsoleError> {
            Ok(self
                .catalog
                .all_days(IpRow::TABLE)?
                .last()
                .copied()
                .unwrap_or_else(|| Utc::now().date_naive()))
        };
        let (from, to) = match (from, to) {
            (Some(f), Some(t)) => (f, t),
            (None, Some(t)) => (t - Duration::days(DEFAULT_RANGE_DAYS - 1), t),
            (Some(f), None) => (
                f,
                (f + Duration::days(DEFAULT_RANGE_DAYS - 1)).min(newest()?.max(f)),
            ),
            (None, None) => {
                let t = newest()?;
                (t - Duration::days(DEFAULT_RANGE_DAYS - 1), t)
            }
        };
        if from > to {
            return Err(ConsoleError::param(
                "from",
                format!("{from} is after to={to}"),
            ));
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS {
            return Err(ConsoleError::param(
                "to",
                format!("the range is longer than {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(Range { from, to })
    }

    /// A view of `range` with its provisional days filled in.
    pub fn view(&self, range: Range) -> View {
        let mut v = View::new(range);
        let today = Utc::now().date_naive();
        v.provisional = range
            .days()
            .filter(|d| match &self.data {
                Some(root) => scanscope_analytics::rollup::is_provisional(root, *d),
                None => *d >= today,
            })
            .collect();
        v
    }
}

/// A date as the API writes it.
pub fn date(d: NaiveDate) -> Value {
    json!(d.format("%Y-%m-%d").to_string())
}

/// A time (µs since the epoch) as the API writes it (RFC 3339, UTC).
pub fn time(us: Option<i64>) -> Value {
    us.and_then(DateTime::from_timestamp_micros)
        .map_or(Value::Null, |t| {
            json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        })
}

/// The `n` largest counts, ties by key.
pub fn top<K: Ord + Clone>(counts: impl IntoIterator<Item = (K, u64)>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// A protocol and port, as `port_daily` names them.
pub type ProtoPort = (&'static str, u16);

/// Slots of the ports of both protocols in one array: TCP's 65 536, then UDP's.
pub const PORT_SLOTS: usize = 2 << 16;

/// The slot of `port` of TCP or (`udp`) UDP among [`PORT_SLOTS`].
pub fn port_slot(udp: bool, port: u16) -> usize {
    (usize::from(udp) << 16) | usize::from(port)
}

/// The protocol and port of slot `k`.
pub fn slot_port(k: usize) -> ProtoPort {
    (
        if k >> 16 == 0 { "tcp" } else { "udp" },
        (k & 0xffff) as u16,
    )
}

/// One source over the days of a range that matched: what search results, port and
/// organisation pages list.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub ip: String,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub days: u32,
    pub packets: u64,
    pub ports: BTreeSet<ProtoPort>,
    pub breadth: u64,
    pub scanner: bool,
    pub scan_type: Option<String>,
    pub tools: BTreeSet<String>,
    pub tags: BTreeSet<String>,
    pub org: Option<String>,
    pub country: Option<String>,
    pub asn: Option<u64>,
    pub rdns: Option<String>,
    pub logins: u64,
}

impl Source {
    /// The class over the days: benign with a known organisation, malicious when a day was,
    /// else unknown ([`crate::fields::class_of`] applied to the days together).
    pub fn class(&self) -> &'static str {
        crate::fields::class_of(
            self.org.as_deref(),
            self.tags.iter().map(String::as_str),
            self.logins,
        )
    }
}

/// The rows of `days` that `mask` selects (given the day's fold columns and `extra` ones),
/// grouped by source; days read on the machine's cores.
pub fn matched(
    days: &[Arc<Day>],
    extra: &[&str],
    mask: impl Fn(&RecordBatch) -> Vec<bool> + Sync,
) -> Result<Matched, ConsoleError> {
    let mut columns: Vec<&str> = fold::COLUMNS.to_vec();
    columns.extend(extra.iter().filter(|c| !fold::COLUMNS.contains(c)));
    let t0 = std::time::Instant::now();
    let parts = per_day(days, |d| -> Result<DayMatch, ConsoleError> {
        let batch = d.batch(&columns)?;
        let rows = mask(&batch)
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .map(|(i, _)| i as u32)
            .collect();
        Ok(DayMatch::new(d.date, batch, rows))
    });
    let parts = parts.into_iter().collect::<Result<_, _>>()?;
    let t1 = std::time::Instant::now();
    let m = Matched::of(parts);
    tracing::debug!(
        eval_ms = (t1 - t0).as_millis(),
        merge_ms = t1.elapsed().as_millis(),
        "matched"
    );
    Ok(m)
}

pub(crate) fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn set_opt(slot: &mut Option<String>, v: Option<&str>) {
    if let Some(v) = v {
        *slot = Some(v.to_string());
    }
}

/// A source as a row of a sources table (the columns of [`SOURCE_COLUMNS`]).
pub fn source_row(s: &Source) -> Vec<Value> {
    vec![
        json!(s.ip),
        json!(s.class()),
        time(s.first_seen),
        time(s.last_seen),
        json!(s.days),
        json!(s.packets),
        json!(s.ports.len()),
        json!(s.breadth),
        json!(s.scan_type),
        json!(s.tools),
        json!(s.org),
        json!(s.country),
        json!(s.asn),
        json!(s.rdns),
        json!(s.tags),
    ]
}

use crate::view::ColumnKind as K;

/// A sources table of the `n` sources with the most packets (`total`: all of them).
pub fn top_sources(m: &Matched, n: usize) -> crate::view::Table {
    let mut t = crate::view::Table::new(SOURCE_COLUMNS);
    t.total = Some(m.len() as u64);
    for g in m.page(Sort::Packets, true, 0, n) {
        t.push(source_row(&m.source(g)));
    }
    t
}

/// The columns of a sources table.
pub const SOURCE_COLUMNS: &[(&str, K)] = &[
    ("ip", K::Ip),
    ("class", K::Class),
    ("first_seen", K::Time),
    ("last_seen", K::Time),
    ("days", K::Number),
    ("packets", K::Number),
    ("ports", K::Number),
    ("breadth", K::Number),
    ("scan_type", K::Text),
    ("tools", K::List),
    ("org", K::Org),
    ("country", K::Text),
    ("asn", K::Text),
    ("rdns", K::Text),
    ("tags", K::Tags),
];

/// Runs `f` over each day on the machine's cores (days are independent), in day order.
pub fn per_day<T: Send>(days: &[Arc<Day>], f: impl Fn(&Day) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(days.len());
    if threads <= 1 {
        return days.iter().map(|d| f(d)).collect();
    }
    let chunk = days.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = days
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|d| f(d)).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}
