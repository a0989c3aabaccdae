//! Distinct sources over the days of a range, in all and per port: figures the days' own
//! counts do not add up to (a source seen on two days is one source). The days' `ip_daily`
//! rows are streamed in address order (the rollup writes them so), a few thousand rows of each
//! day at a time, and merged; memory holds a few batches of each day rather than the days'
//! columns, and the address space is split over the cores by the row groups' statistics.
use std::sync::Arc;

use arrow::array::RecordBatch;
use scanscope_lake::tables::ip_daily::{IpColumns, IpRow};

use super::{
    PORT_SLOTS, ProtoPort,
    fold::{Merged, heads, merge_heads, merge_sorted},
    port_slot, slot_port,
};
use crate::{
    catalog::{Day, partition_point},
    col::{Flag, Ports, Text},
    error::ConsoleError,
};

const IP: IpColumns = IpRow::COL;
/// The `ip_daily` columns read.
const COLUMNS: [&str; 4] = [IP.src_ip, IP.tcp_ports, IP.udp_ports, IP.is_scanner];
/// Rows decoded at a time from each day.
const BATCH_ROWS: usize = 8192;
/// Below this many rows in all, one thread.
const ONE_THREAD_ROWS: usize = 100_000;

/// Distinct sources of a range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distinct {
    /// Sources seen on some day of the range, and those of them a scanner on some day.
    pub sources: u64,
    pub scanners: u64,
    /// Each port some source probed (its [`port_slot`]), ascending, with the sources that
    /// probed it and those of them that were scanners on a day they did.
    ports: Vec<(u32, u32, u32)>,
}

impl Distinct {
    /// (sources, scanners) of `proto` (`"tcp"`/`"udp"`) port `port`.
    pub fn port(&self, proto: &str, port: u16) -> (u64, u64) {
        let key = port_slot(proto == "udp", port) as u32;
        self.ports
            .binary_search_by_key(&key, |p| p.0)
            .map_or((0, 0), |i| {
                (u64::from(self.ports[i].1), u64::from(self.ports[i].2))
            })
    }

    /// Each port some source probed, in order (TCP first), with its sources and scanners.
    pub fn ports(&self) -> impl Iterator<Item = (ProtoPort, u64, u64)> + '_ {
        self.ports
            .iter()
            .map(|&(k, n, s)| (slot_port(k as usize), u64::from(n), u64::from(s)))
    }
}

/// The distinct sources of `days` (`ip_daily` rollups), on the machine's cores.
pub fn of_days(days: &[Arc<Day>]) -> Result<Distinct, ConsoleError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows: usize = days.iter().map(|d| d.rows()).sum();
    of_days_on(
        days,
        if rows < ONE_THREAD_ROWS {
            1
        } else {
            threads.clamp(1, 8)
        },
    )
}

/// [`of_days`] with the address space cut into `parts`, each streamed on its own thread. A
/// day found out of address order (a rollup from before ip_daily was written sorted) is read
/// whole, sorted, and the count made again.
fn of_days_on(days: &[Arc<Day>], parts: usize) -> Result<Distinct, ConsoleError> {
    let mut whole = vec![false; days.len()];
    loop {
        let cuts = cuts(days, parts);
        let counted: Vec<Result<Tally, Stop>> = if cuts.len() == 2 {
            vec![count_part(
                days,
                &whole,
                (cuts[0].as_deref(), cuts[1].as_deref()),
            )]
        } else {
            std::thread::scope(|s| {
                let whole = &whole;
                let handles: Vec<_> = cuts
                    .windows(2)
                    .map(|w| {
                        s.spawn(move || count_part(days, whole, (w[0].as_deref(), w[1].as_deref())))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut sum = Tally::new();
        let mut retry = false;
        for c in counted {
            match c {
                Ok(t) => sum.absorb(&t),
                Err(Stop::Unsorted(d)) => {
                    whole[d] = true;
                    retry = true;
                }
                Err(Stop::Failed(e)) => return Err(e),
            }
        }
        if !retry {
            return Ok(sum.finish());
        }
    }
}

/// Where the parts of the address space begin and end (`None`: open), from the least
/// addresses of the row groups of the day with the most rows.
fn cuts(days: &[Arc<Day>], parts: usize) -> Vec<Option<String>> {
    let mut out = vec![None];
    if let Some(largest) = days.iter().max_by_key(|d| d.rows()) {
        let mins: Vec<String> = largest
            .footer()
            .bounds(IP.src_ip)
            .into_iter()
            .map_while(|b| String::from_utf8(b?.0).ok())
            .collect();
        if parts > 1 && mins.len() == largest.footer().row_groups().len() {
            for k in 1..parts.min(mins.len()) {
                let c = &mins[mins.len() * k / parts];
                if out.last().and_then(Option::as_ref).is_none_or(|l| l < c) {
                    out.push(Some(c.clone()));
                }
            }
        }
    }
    out.push(None);
    out
}

/// Why a part's count stopped.
enum Stop {
    /// Day `.0` is not in address order.
    Unsorted(usize),
    Failed(ConsoleError),
}

impl From<ConsoleError> for Stop {
    fn from(e: ConsoleError) -> Self {
        Stop::Failed(e)
    }
}

/// A batch of one day and where in it the merge stands.
struct Cursor {
    feed: Box<dyn Iterator<Item = Result<RecordBatch, ConsoleError>>>,
    /// The current batch (its rows within the part), and the first row not yet merged.
    batch: Option<RecordBatch>,
    at: usize,
    /// The last address of the previous batch, to check the order.
    last: Option<String>,
    /// No batch is left in the part.
    done: bool,
}

impl Cursor {
    fn left(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.num_rows() - self.at)
    }

    /// Until the current batch has rows left or the part ends: the next batch of the day,
    /// cut to the part's addresses `lo..hi`; day `d`'s addresses must ascend.
    fn fill(&mut self, d: usize, (lo, hi): (Option<&str>, Option<&str>)) -> Result<(), Stop> {
        while self.left() == 0 && !self.done {
            self.batch = None;
            self.at = 0;
            let Some(b) = self.feed.next() else {
                self.done = true;
                break;
            };
            let b = b?;
            let n = b.num_rows();
            if n == 0 {
                continue;
            }
            let t = Text::of(&b, IP.src_ip);
            let first = t.get(0).unwrap_or("");
            if self.last.as_deref().is_some_and(|l| l > first)
                || (1..n).any(|i| t.get(i - 1) > t.get(i))
            {
                return Err(Stop::Unsorted(d));
            }
            self.last = Some(t.get(n - 1).unwrap_or("").to_string());
            let start = lo.map_or(0, |lo| partition_point(n, |i| t.get(i).unwrap_or("") < lo));
            let end = hi.map_or(n, |hi| partition_point(n, |i| t.get(i).unwrap_or("") < hi));
            if end < n {
                self.done = true;
            }
            if start < end {
                self.batch = Some(b.slice(start, end - start));
            }
        }
        Ok(())
    }
}

/// The count of the part `lo..hi` of the address space: each day's row groups that may hold
/// such addresses streamed (the days of `whole` read whole, in key order) and merged.
fn count_part(
    days: &[Arc<Day>],
    whole: &[bool],
    part: (Option<&str>, Option<&str>),
) -> Result<Tally, Stop> {
    let (lo, hi) = part;
    let mut cursors = Vec::with_capacity(days.len());
    for (d, day) in days.iter().enumerate() {
        let feed: Box<dyn Iterator<Item = Result<RecordBatch, ConsoleError>>> = if whole[d] {
            Box::new(std::iter::once(day.batch(&COLUMNS)))
        } else {
            let groups: Vec<usize> = day
                .footer()
                .bounds(IP.src_ip)
                .iter()
                .enumerate()
                .filter(|(_, b)| {
                    b.as_ref().is_none_or(|(min, max)| {
                        lo.is_none_or(|lo| max.as_slice() >= lo.as_bytes())
                            && hi.is_none_or(|hi| min.as_slice() < hi.as_bytes())
                    })
                })
                .map(|(g, _)| g)
                .collect();
            if groups.is_empty() {
                continue;
            }
            Box::new(day.stream(&COLUMNS, Some(&groups), BATCH_ROWS)?)
        };
        cursors.push((
            d,
            Cursor {
                feed,
                batch: None,
                at: 0,
                last: None,
                done: false,
            },
        ));
    }
    let mut tally = Tally::new();
    loop {
        for (d, c) in &mut cursors {
            c.fill(*d, part)?;
        }
        cursors.retain(|(_, c)| c.left() > 0);
        if cursors.is_empty() {
            break;
        }
        // Every row up to the least of the batches' last addresses: no later batch of any day
        // holds one of those addresses.
        let bound = cursors
            .iter()
            .filter_map(|(_, c)| {
                let b = c.batch.as_ref()?;
                Text::of(b, IP.src_ip).get(b.num_rows() - 1)
            })
            .min()
            .unwrap_or("")
            .to_string();
        let batches: Vec<&RecordBatch> = cursors
            .iter()
            .filter_map(|(_, c)| c.batch.as_ref())
            .collect();
        let views: Vec<Views<'_>> = batches.iter().map(|b| Views::of(b)).collect();
        let rows: Vec<Vec<u32>> = cursors
            .iter()
            .zip(&views)
            .map(|((_, c), v)| {
                let n = c.at + c.left();
                let end = c.at
                    + partition_point(n - c.at, |i| {
                        v.ip.get(c.at + i).unwrap_or("") <= bound.as_str()
                    });
                (c.at as u32..end as u32).collect()
            })
            .collect();
        // The day whose last address is the bound gives its whole batch: a run never ends
        // empty (were it to, the merge would stand still).
        if rows.iter().all(Vec::is_empty) {
            return Err(Stop::Failed(ConsoleError::Worker(
                "distinct sources: a merge run took no row".into(),
            )));
        }
        let merged = merge(&views, &rows);
        tally.groups(&views, &merged);
        for ((_, c), r) in cursors.iter_mut().zip(&rows) {
            c.at += r.len();
        }
    }
    Ok(tally)
}

/// The rows `rows` of each day's batch (ascending by address) grouped by address.
fn merge(views: &[Views<'_>], rows: &[Vec<u32>]) -> Merged {
    let (heads, short): (Vec<Vec<u128>>, Vec<bool>) =
        views.iter().zip(rows).map(|(v, r)| heads(v.ip, r)).unzip();
    if short.iter().all(|s| *s) {
        let days: Vec<(&[u32], &[u128])> = rows
            .iter()
            .zip(&heads)
            .map(|(r, h)| (r.as_slice(), h.as_slice()))
            .collect();
        return merge_heads(&days);
    }
    let days: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    merge_sorted(&days, &|d, i| views[d].ip.get(i as usize).unwrap_or(""))
}

/// Typed views of one batch.
struct Views<'a> {
    ip: Text<'a>,
    tcp: Ports<'a>,
    udp: Ports<'a>,
    scanner: Flag<'a>,
}

impl<'a> Views<'a> {
    fn of(b: &'a RecordBatch) -> Self {
        Views {
            ip: Text::of(b, IP.src_ip),
            tcp: Ports::of(b, IP.tcp_ports),
            udp: Ports::of(b, IP.udp_ports),
            scanner: Flag::of(b, IP.is_scanner),
        }
    }
}

/// A port's counts in progress, and the last group that counted it in each.
#[derive(Debug, Clone, Copy)]
struct Slot {
    sources: u32,
    scanners: u32,
    mark: u32,
    scanner_mark: u32,
}

/// Counts in progress.
struct Tally {
    sources: u64,
    scanners: u64,
    /// TCP's 65 536 ports, then UDP's.
    ports: Vec<Slot>,
    /// Groups counted so far (each group's mark).
    group: u32,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            sources: 0,
            scanners: 0,
            ports: vec![
                Slot {
                    sources: 0,
                    scanners: 0,
                    mark: u32::MAX,
                    scanner_mark: u32::MAX,
                };
                PORT_SLOTS
            ],
            group: 0,
        }
    }

    /// Each group of `merged` (one source) counted once in all and per port.
    fn groups(&mut self, v: &[Views<'_>], (refs, starts): &Merged) {
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).map_or(refs.len(), |e| *e as usize);
            let g = self.group;
            self.group = self.group.wrapping_add(1);
            let mut any_scanner = false;
            for &(d, i) in &refs[start as usize..end] {
                let (v, i) = (&v[d as usize], i as usize);
                let scanner = v.scanner.get(i) == Some(true);
                any_scanner |= scanner;
                for (udp, ports) in [(false, v.tcp.get(i)), (true, v.udp.get(i))] {
                    for p in ports {
                        let s = &mut self.ports[port_slot(udp, *p)];
                        s.sources += u32::from(s.mark != g);
                        s.mark = g;
                        if scanner {
                            s.scanners += u32::from(s.scanner_mark != g);
                            s.scanner_mark = g;
                        }
                    }
                }
            }
            self.sources += 1;
            self.scanners += u64::from(any_scanner);
        }
    }

    /// Adds another part's counts (of other addresses).
    fn absorb(&mut self, o: &Tally) {
        self.sources += o.sources;
        self.scanners += o.scanners;
        for (a, b) in self.ports.iter_mut().zip(&o.ports) {
            a.sources += b.sources;
            a.scanners += b.scanners;
        }
    }

    fn finish(self) -> Distinct {
        Distinct {
            sources: self.sources,
            scanners: self.scanners,
            ports: self
                .ports
                .iter()
                .enumerate()
                .filter(|(_, s)| s.sources > 0)
                .map(|(k, s)| (k as u32, s.sources, s.scanners))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::NaiveDate;
    use scanscope_lake::{
        Lake, paths,
        tables::ip_daily::{IpDailyBuilder, IpRow},
    };

    use super::*;
    use crate::catalog::Catalog;

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    /// Day `d`'s rows: `n` of a space of addresses (IPv4, and IPv6 texts longer than 16
    /// bytes), ports and scanner flags from a hash of address and day.
    fn rows(d: u32, n: u32) -> Vec<IpRow> {
        (0..n)
            .map(|k| {
                // Distinct within the day (7 is prime to the space), shifted per day.
                let a = (k * 7 + d * 30_000) % 200_000;
                let h = (a.wrapping_mul(2_654_435_761) ^ d.wrapping_mul(40_503)).wrapping_mul(97);
                let src_ip = if a.is_multiple_of(9) {
                    format!("2001:db8:aaaa:bbbb::{a:x}")
                } else {
                    std::net::Ipv4Addr::from(0x0a00_0000 + a * 3).to_string()
                };
                let mut tcp: Vec<u16> = (0..(h >> 8) % 4)
                    .map(|j| [22, 23, 80, 443][j as usize] + (d as u16 % 2))
                    .collect();
                tcp.sort_unstable();
                tcp.dedup();
                let udp = if (h >> 12).is_multiple_of(5) {
                    vec![53, 161]
                } else {
                    vec![]
                };
                IpRow {
                    src_ip,
                    tcp_ports: tcp,
                    udp_ports: udp,
                    is_scanner: (h >> 16).is_multiple_of(3),
                    ..IpRow::default()
                }
            })
            .collect()
    }

    /// The figures by sets: distinct addresses, per port.
    fn brute(days: &[Vec<IpRow>]) -> Distinct {
        let mut all = BTreeSet::new();
        let mut scanners = BTreeSet::new();
        let mut ports: BTreeMap<u32, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
        for r in days.iter().flatten() {
            all.insert(r.src_ip.as_str());
            if r.is_scanner {
                scanners.insert(r.src_ip.as_str());
            }
            let keys = r
                .tcp_ports
                .iter()
                .map(|p| u32::from(*p))
                .chain(r.udp_ports.iter().map(|p| (1 << 16) | u32::from(*p)));
            for k in keys {
                let e = ports.entry(k).or_default();
                e.0.insert(r.src_ip.as_str());
                if r.is_scanner {
                    e.1.insert(r.src_ip.as_str());
                }
            }
        }
        Distinct {
            sources: all.len() as u64,
            scanners: scanners.len() as u64,
            ports: ports
                .into_iter()
                .map(|(k, (s, c))| (k, s.len() as u32, c.len() as u32))
                .collect(),
        }
    }

    #[test]
    fn distinct_sources_over_days_equal_a_count_by_sets_on_any_number_of_threads() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        // Three days of three row groups (the parts cut between them), two small ones, one
        // written out of address order, and an empty one.
        let days: Vec<Vec<IpRow>> = vec![
            rows(1, 140_000),
            rows(2, 135_000),
            rows(3, 500),
            rows(4, 133_000),
            rows(5, 300),
            Vec::new(),
        ];
        for (k, r) in days.iter().enumerate() {
            let d = date(k as u32 + 1);
            if k == 4 {
                let mut b = IpDailyBuilder::new(&[]);
                for r in r.iter().rev() {
                    b.push(r);
                }
                lake.write_batch(
                    &paths::rollup_file(IpRow::TABLE, d),
                    IpRow::TABLE,
                    &b.finish().unwrap(),
                )
                .unwrap();
            } else {
                scanscope_analytics::rollup::write::write_ip_daily(&lake, d, r, &[]).unwrap();
            }
        }
        let want = brute(&days);
        assert!(
            want.sources > 160_000 && want.sources < 450_000,
            "days share sources: {}",
            want.sources
        );
        let cat = Catalog::new(lake, 1 << 30);
        let read = cat.rollups(IpRow::TABLE, date(1), date(6)).unwrap();
        assert_eq!(read.len(), 6);
        assert_eq!(
            cuts(&read, 3).len(),
            4,
            "three parts from the largest day's row groups"
        );
        for parts in [1, 2, 3, 5] {
            let got = of_days_on(&read, parts).unwrap();
            assert_eq!(got.sources, want.sources, "{parts} parts");
            assert_eq!(got.scanners, want.scanners, "{parts} parts");
            assert_eq!(got.ports, want.ports, "{parts} parts");
        }
        assert_eq!(of_days(&read).unwrap(), want);
        let one = of_days(&read[2..3]).unwrap();
        assert_eq!(one, brute(&days[2..3]));
        assert_eq!(one.port("tcp", 22 + 1), {
            let s: BTreeSet<&str> = days[2]
                .iter()
                .filter(|r| r.tcp_ports.contains(&23))
                .map(|r| r.src_ip.as_str())
                .collect();
            let c = days[2]
                .iter()
                .filter(|r| r.is_scanner && r.tcp_ports.contains(&23))
                .count();
            (s.len() as u64, c as u64)
        });
        assert_eq!(of_days(&[]).unwrap(), Distinct::default());
    }
}
