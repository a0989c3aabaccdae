//! The page queries: each builds the [`View`] one page of the UI (and one API call) shows.
//! They read only the rollup tables (and, for one IP, that IP's sessions and payload samples).
pub mod ip;
pub mod meta;
pub mod org;
pub mod overview;
pub mod port;
pub mod search;
pub mod sensors;

use std::{
    collections::{BTreeSet, HashMap},
    hash::Hash,
    path::PathBuf,
};

use arrow::array::RecordBatch;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use scanscope_lake::tables::ip_daily::{IpColumns, IpRow};
use serde_json::{Value, json};

use crate::{
    catalog::Catalog,
    col::{Num, Ports, Text, TextList, Time},
    error::ConsoleError,
    eval::Classes,
    view::{Range, View},
};

const IP: IpColumns = IpRow::COL;

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

/// Counts distinct sources per key.
#[derive(Debug)]
pub struct Distinct<K>(HashMap<K, u64>);

impl<K: Hash + Eq> Default for Distinct<K> {
    fn default() -> Self {
        Distinct(HashMap::new())
    }
}

impl<K: Hash + Eq + Ord + Clone> Distinct<K> {
    pub fn add(&mut self, k: K) {
        *self.0.entry(k).or_insert(0) += 1;
    }

    pub fn top(&self, n: usize) -> Vec<(K, u64)> {
        top(self.0.iter().map(|(k, v)| (k.clone(), *v)), n)
    }

    pub fn get(&self, k: &K) -> u64 {
        self.0.get(k).copied().unwrap_or(0)
    }
}

/// A protocol and port, as `port_daily` names them.
pub type ProtoPort = (&'static str, u16);

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
    /// Whether any day's class was malicious.
    pub malicious: bool,
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

/// Folds the matching rows of days into one [`Source`] per address.
#[derive(Debug, Default)]
pub struct Sources {
    pub by_ip: HashMap<String, Source>,
}

impl Sources {
    /// Adds the rows of `b` that `mask` selects.
    pub fn add(&mut self, b: &RecordBatch, mask: &[bool]) {
        let ip = Text::of(b, IP.src_ip);
        let first = Time::of(b, IP.first_seen);
        let last = Time::of(b, IP.last_seen);
        let packets = Num::of(b, IP.packets);
        let tcp = Ports::of(b, IP.tcp_ports);
        let udp = Ports::of(b, IP.udp_ports);
        let breadth = Num::of(b, IP.scan_breadth);
        let scanner = crate::col::Flag::of(b, IP.is_scanner);
        let scan_type = Text::of(b, IP.scan_type);
        let tools = TextList::of(b, IP.tools);
        let tags = TextList::of(b, IP.tags);
        let org = Text::of(b, IP.org);
        let country = Text::of(b, IP.country);
        let asn = Num::of(b, IP.asn);
        let rdns = Text::of(b, IP.rdns);
        let logins = Num::of(b, IP.login_attempts);
        let mysql = Num::of(b, IP.mysql_login_attempts);
        let classes = Classes::of(b);
        for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            let Some(addr) = ip.get(i) else { continue };
            let s = self
                .by_ip
                .entry(addr.to_string())
                .or_insert_with(|| Source {
                    ip: addr.to_string(),
                    ..Source::default()
                });
            s.first_seen = min_opt(s.first_seen, first.get(i));
            s.last_seen = s.last_seen.max(last.get(i));
            s.days += 1;
            s.packets += packets.or0(i);
            s.ports.extend(tcp.get(i).iter().map(|p| ("tcp", *p)));
            s.ports.extend(udp.get(i).iter().map(|p| ("udp", *p)));
            s.breadth = s.breadth.max(breadth.or0(i));
            s.scanner |= scanner.get(i) == Some(true);
            // Days come oldest first: the newest day's values win.
            if let Some(t) = scan_type.get(i) {
                s.scan_type = Some(t.to_string());
            }
            s.tools.extend(tools.get(i).map(str::to_string));
            s.tags.extend(tags.get(i).map(str::to_string));
            set_opt(&mut s.org, org.get(i));
            set_opt(&mut s.country, country.get(i));
            if let Some(a) = asn.get(i) {
                s.asn = Some(a);
            }
            set_opt(&mut s.rdns, rdns.get(i));
            s.logins += logins.or0(i) + mysql.or0(i);
            s.malicious |= classes.get(i) == "malicious";
        }
    }
}

impl Sources {
    /// The sources of the rows `mask` selects in each day (days folded on the cores).
    pub fn of_days(
        days: &[std::sync::Arc<crate::catalog::Day>],
        mask: impl Fn(&RecordBatch) -> Vec<bool> + Sync,
    ) -> Sources {
        Sources::merge(per_day(days, |d| {
            let mut s = Sources::default();
            s.add(&d.batch, &mask(&d.batch));
            s
        }))
    }

    /// Merges per-day folds given in day order (later days' values win, as in [`Sources::add`]).
    pub fn merge(parts: Vec<Sources>) -> Sources {
        let mut it = parts.into_iter();
        let mut acc = it.next().unwrap_or_default();
        for p in it {
            for (ip, s) in p.by_ip {
                match acc.by_ip.entry(ip) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(s);
                    }
                    std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().absorb(s),
                }
            }
        }
        acc
    }
}

impl Source {
    /// Adds the fold of later days of the same source.
    fn absorb(&mut self, later: Source) {
        self.first_seen = min_opt(self.first_seen, later.first_seen);
        self.last_seen = self.last_seen.max(later.last_seen);
        self.days += later.days;
        self.packets += later.packets;
        self.ports.extend(later.ports);
        self.breadth = self.breadth.max(later.breadth);
        self.scanner |= later.scanner;
        self.scan_type = later.scan_type.or(self.scan_type.take());
        self.tools.extend(later.tools);
        self.tags.extend(later.tags);
        self.org = later.org.or(self.org.take());
        self.country = later.country.or(self.country.take());
        self.asn = later.asn.or(self.asn);
        self.rdns = later.rdns.or(self.rdns.take());
        self.logins += later.logins;
        self.malicious |= later.malicious;
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn set_opt(slot: &mut Option<String>, v: Option<&str>) {
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
pub fn top_sources(all: &[&Source], n: usize) -> crate::view::Table {
    let mut by_packets = all.to_vec();
    by_packets.sort_by(|a, b| b.packets.cmp(&a.packets).then_with(|| a.ip.cmp(&b.ip)));
    let mut t = crate::view::Table::new(SOURCE_COLUMNS);
    t.total = Some(by_packets.len() as u64);
    for s in by_packets.iter().take(n) {
        t.push(source_row(s));
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
pub fn per_day<T: Send>(
    days: &[std::sync::Arc<crate::catalog::Day>],
    f: impl Fn(&crate::catalog::Day) -> T + Sync,
) -> Vec<T> {
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
