//! The fold of matching rows over the days of a range into sources: the rows each day matched
//! (days hold their rows in address order) merged into one group per source, without building
//! anything per source until a page shows it. Counts over all groups (facets, scanners,
//! packets) and the order of a sorted page read the columns in place, on the machine's cores.
use std::{cmp::Reverse, collections::BinaryHeap, collections::HashMap};

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use scanscope_lake::tables::ip_daily::{IpColumns, IpRow};

use super::{PORT_SLOTS, ProtoPort, Source, min_opt, set_opt, slot_port};
use crate::col::{Flag, Num, Ports, Text, TextList, Time};

const IP: IpColumns = IpRow::COL;

/// The `ip_daily` columns a fold reads.
pub const COLUMNS: &[&str] = &[
    IP.src_ip,
    IP.first_seen,
    IP.last_seen,
    IP.packets,
    IP.tcp_ports,
    IP.udp_ports,
    IP.scan_breadth,
    IP.is_scanner,
    IP.scan_type,
    IP.tools,
    IP.tags,
    IP.org,
    IP.country,
    IP.asn,
    IP.rdns,
    IP.login_attempts,
    IP.mysql_login_attempts,
];

/// Typed views of one day's fold columns.
#[derive(Clone, Copy)]
struct Views<'a> {
    ip: Text<'a>,
    first: Time<'a>,
    last: Time<'a>,
    packets: Num<'a>,
    tcp: Ports<'a>,
    udp: Ports<'a>,
    breadth: Num<'a>,
    scanner: Flag<'a>,
    scan_type: Text<'a>,
    tools: TextList<'a>,
    tags: TextList<'a>,
    org: Text<'a>,
    country: Text<'a>,
    asn: Num<'a>,
    rdns: Text<'a>,
    logins: Num<'a>,
    mysql: Num<'a>,
}

impl<'a> Views<'a> {
    fn of(b: &'a RecordBatch) -> Self {
        Views {
            ip: Text::of(b, IP.src_ip),
            first: Time::of(b, IP.first_seen),
            last: Time::of(b, IP.last_seen),
            packets: Num::of(b, IP.packets),
            tcp: Ports::of(b, IP.tcp_ports),
            udp: Ports::of(b, IP.udp_ports),
            breadth: Num::of(b, IP.scan_breadth),
            scanner: Flag::of(b, IP.is_scanner),
            scan_type: Text::of(b, IP.scan_type),
            tools: TextList::of(b, IP.tools),
            tags: TextList::of(b, IP.tags),
            org: Text::of(b, IP.org),
            country: Text::of(b, IP.country),
            asn: Num::of(b, IP.asn),
            rdns: Text::of(b, IP.rdns),
            logins: Num::of(b, IP.login_attempts),
            mysql: Num::of(b, IP.mysql_login_attempts),
        }
    }
}

/// One day's rows of the fold columns (in address order) and which of them matched.
#[derive(Debug)]
pub struct DayMatch {
    pub date: NaiveDate,
    pub batch: RecordBatch,
    pub rows: Vec<u32>,
    /// The merge key head ([`AddrKey`]) of each matching row's address, and whether every
    /// one of those addresses is at most 16 bytes long (then the heads alone order them).
    heads: Vec<u128>,
    short: bool,
}

impl DayMatch {
    /// Day `date`'s `rows` (ascending) of `batch`; their addresses' merge keys are made here,
    /// on the thread that evaluated the day.
    pub fn new(date: NaiveDate, batch: RecordBatch, rows: Vec<u32>) -> DayMatch {
        let (heads, short) = heads(Text::of(&batch, IP.src_ip), &rows);
        DayMatch {
            date,
            batch,
            rows,
            heads,
            short,
        }
    }
}

/// The matching rows of a range's days, one group per source, in address order.
#[derive(Debug, Default)]
pub struct Matched {
    pub days: Vec<DayMatch>,
    /// (day, row) of every matching row, grouped by source, each group oldest day first.
    refs: Vec<(u32, u32)>,
    /// Group `g` is `refs[starts[g]..starts[g + 1]]`.
    starts: Vec<u32>,
    /// The groups of one row, by day and row (so that counting them reads each day's columns
    /// in order), and the groups of several.
    singles: Vec<(u32, u32)>,
    multis: Vec<u32>,
}

/// How a page of sources is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Packets,
    Days,
    Ports,
    Breadth,
    FirstSeen,
    LastSeen,
    Ip,
    Org,
    Country,
}

impl Sort {
    /// The sort keys the API takes (`sort=`), defined once.
    pub const ALL: [(&'static str, Sort); 9] = [
        ("packets", Sort::Packets),
        ("days", Sort::Days),
        ("ports", Sort::Ports),
        ("breadth", Sort::Breadth),
        ("first_seen", Sort::FirstSeen),
        ("last_seen", Sort::LastSeen),
        ("ip", Sort::Ip),
        ("org", Sort::Org),
        ("country", Sort::Country),
    ];

    pub fn parse(s: &str) -> Result<Sort, crate::error::ConsoleError> {
        Sort::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                crate::error::ConsoleError::param(
                    "sort",
                    format!(
                        "{s:?} is not one of {}",
                        Sort::ALL.map(|(n, _)| n).join(", ")
                    ),
                )
            })
    }
}

/// Distinct sources per port: TCP's 65 536 ports, then UDP's.
#[derive(Debug, Clone, PartialEq)]
pub struct PortCounts(Vec<u32>);

impl Default for PortCounts {
    fn default() -> Self {
        PortCounts(vec![0; PORT_SLOTS])
    }
}

impl PortCounts {
    /// The ports with a count, in order (TCP first).
    pub fn iter(&self) -> impl Iterator<Item = (ProtoPort, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(p, n)| (slot_port(p), u64::from(*n)))
    }
}

/// What the counts over all groups found.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    /// Distinct sources per (protocol, port).
    pub ports: PortCounts,
    pub org: HashMap<String, u64>,
    pub tool: HashMap<String, u64>,
    pub country: HashMap<String, u64>,
    pub tag: HashMap<String, u64>,
    pub class: HashMap<String, u64>,
    pub scan: HashMap<String, u64>,
    pub scanners: u64,
    pub packets: u64,
}

impl Counts {
    fn absorb(&mut self, o: Counts) {
        for (a, b) in [
            (&mut self.org, o.org),
            (&mut self.tool, o.tool),
            (&mut self.country, o.country),
            (&mut self.tag, o.tag),
            (&mut self.class, o.class),
            (&mut self.scan, o.scan),
        ] {
            for (k, v) in b {
                *a.entry(k).or_insert(0) += v;
            }
        }
        for (a, b) in self.ports.0.iter_mut().zip(o.ports.0) {
            *a += b;
        }
        self.scanners += o.scanners;
        self.packets += o.packets;
    }
}

impl Matched {
    /// Groups the matching rows of `days` (each day's `rows` ascending) by source.
    pub fn of(days: Vec<DayMatch>) -> Matched {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let total: usize = days.iter().map(|d| d.rows.len()).sum();
        Matched::in_parts(
            days,
            if total < 100_000 {
                1
            } else {
                threads.clamp(1, 8)
            },
        )
    }

    /// [`Matched::of`], the address space cut where the largest day's rows are split evenly
    /// into `parts`; each part merged on its own thread, the parts in order.
    fn in_parts(days: Vec<DayMatch>, parts: usize) -> Matched {
        let views: Vec<Text<'_>> = days.iter().map(|d| Text::of(&d.batch, IP.src_ip)).collect();
        let addr = |d: usize, i: u32| views[d].get(i as usize).unwrap_or("");
        let total: usize = days.iter().map(|d| d.rows.len()).sum();
        let largest = (0..days.len())
            .max_by_key(|d| days[*d].rows.len())
            .unwrap_or(0);
        let cuts: Vec<&str> = (1..parts)
            .map(|k| {
                addr(
                    largest,
                    days[largest].rows[days[largest].rows.len() * k / parts],
                )
            })
            .collect();
        let bounds: Vec<Vec<usize>> = days
            .iter()
            .enumerate()
            .map(|(d, day)| {
                let mut b = vec![0];
                b.extend(
                    cuts.iter()
                        .map(|c| day.rows.partition_point(|i| addr(d, *i) < *c)),
                );
                b.push(day.rows.len());
                b
            })
            .collect();
        let short = days.iter().all(|d| d.short);
        let merge = |k: usize| -> Merged {
            if short {
                let slices: Vec<(&[u32], &[u128])> = days
                    .iter()
                    .zip(&bounds)
                    .map(|(day, b)| (&day.rows[b[k]..b[k + 1]], &day.heads[b[k]..b[k + 1]]))
                    .collect();
                return merge_heads(&slices);
            }
            let slices: Vec<&[u32]> = days
                .iter()
                .zip(&bounds)
                .map(|(day, b)| &day.rows[b[k]..b[k + 1]])
                .collect();
            merge_sorted(&slices, &addr)
        };
        let merged: Vec<Merged> = if parts == 1 {
            vec![merge(0)]
        } else {
            std::thread::scope(|s| {
                let merge = &merge;
                let handles: Vec<_> = (0..parts).map(|k| s.spawn(move || merge(k))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut refs = Vec::with_capacity(total);
        let mut starts = Vec::new();
        for (r, st) in merged {
            let base = refs.len() as u32;
            starts.extend(st.iter().map(|x| x + base));
            refs.extend(r);
        }
        starts.push(refs.len() as u32);
        drop(views);
        let mut by_day: Vec<Vec<u32>> = vec![Vec::new(); days.len()];
        let mut multis = Vec::new();
        for (g, w) in starts.windows(2).enumerate() {
            if w[1] - w[0] == 1 {
                let (d, i) = refs[w[0] as usize];
                by_day[d as usize].push(i);
            } else {
                multis.push(g as u32);
            }
        }
        let singles = by_day
            .into_iter()
            .enumerate()
            .flat_map(|(d, rows)| rows.into_iter().map(move |i| (d as u32, i)))
            .collect();
        Matched {
            days,
            refs,
            starts,
            singles,
            multis,
        }
    }

    /// Sources.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Matching rows (source-days).
    pub fn rows(&self) -> usize {
        self.refs.len()
    }

    fn group(&self, g: usize) -> &[(u32, u32)] {
        &self.refs[self.starts[g] as usize..self.starts[g + 1] as usize]
    }

    fn views(&self) -> Vec<Views<'_>> {
        self.days.iter().map(|d| Views::of(&d.batch)).collect()
    }

    /// Group `g` as a [`Source`] (its matching days folded; the newest day's values win).
    pub fn source(&self, g: usize) -> Source {
        let v = self.views();
        let mut s = Source::default();
        for &(d, i) in self.group(g) {
            let (v, i) = (&v[d as usize], i as usize);
            if s.ip.is_empty() {
                s.ip = v.ip.get(i).unwrap_or_default().to_string();
            }
            s.first_seen = min_opt(s.first_seen, v.first.get(i));
            s.last_seen = s.last_seen.max(v.last.get(i));
            s.days += 1;
            s.packets += v.packets.or0(i);
            s.ports.extend(v.tcp.get(i).iter().map(|p| ("tcp", *p)));
            s.ports.extend(v.udp.get(i).iter().map(|p| ("udp", *p)));
            s.breadth = s.breadth.max(v.breadth.or0(i));
            s.scanner |= v.scanner.get(i) == Some(true);
            if let Some(t) = v.scan_type.get(i) {
                s.scan_type = Some(t.to_string());
            }
            s.tools.extend(v.tools.get(i).map(str::to_string));
            s.tags.extend(v.tags.get(i).map(str::to_string));
            set_opt(&mut s.org, v.org.get(i));
            set_opt(&mut s.country, v.country.get(i));
            if let Some(a) = v.asn.get(i) {
                s.asn = Some(a);
            }
            set_opt(&mut s.rdns, v.rdns.get(i));
            s.logins += v.logins.or0(i) + v.mysql.or0(i);
        }
        s
    }

    /// The groups of one page: sorted by `sort` (ties by address, ascending), `offset` on,
    /// at most `limit`.
    pub fn page(&self, sort: Sort, descending: bool, offset: usize, limit: usize) -> Vec<usize> {
        let v = self.views();
        let newest = |g: usize, pick: Pick| newest(self.group(g), &v, pick);
        let num = |g: usize| -> u64 {
            let rows = self
                .group(g)
                .iter()
                .map(|&(d, i)| (&v[d as usize], i as usize));
            match sort {
                Sort::Packets => rows.map(|(v, i)| v.packets.or0(i)).sum(),
                Sort::Days => self.group(g).len() as u64,
                Sort::Ports => ports_of(rows).len() as u64,
                Sort::Breadth => rows.map(|(v, i)| v.breadth.or0(i)).max().unwrap_or(0),
                // Times as µs + 2^63, so that the order of u64 is the order of i64.
                Sort::FirstSeen => rows
                    .filter_map(|(v, i)| v.first.get(i))
                    .min()
                    .map_or(0, |t| (t as u64) ^ (1 << 63)),
                Sort::LastSeen => rows
                    .filter_map(|(v, i)| v.last.get(i))
                    .max()
                    .map_or(0, |t| (t as u64) ^ (1 << 63)),
                _ => 0,
            }
        };
        let n = self.len();
        let text = |pick: Pick| ranked(n, |g| newest(g, pick), descending, offset, limit);
        match sort {
            Sort::Ip => ranked(
                n,
                |g| ip_key(newest(g, |v| v.ip).unwrap_or("")),
                descending,
                offset,
                limit,
            ),
            Sort::Org => text(|v| v.org),
            Sort::Country => text(|v| v.country),
            _ => ranked(n, num, descending, offset, limit),
        }
    }

    /// Distinct sources per port, organisation, tool, country, tag, class and scan type over
    /// every group, and the scanners and packets among them (on the machine's cores).
    pub fn counts(&self) -> Counts {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        if self.len() < 50_000 {
            return self.counts_on(1);
        }
        self.counts_on(threads)
    }

    /// [`Matched::counts`] on `threads` threads, each with an even share of the one-row
    /// groups and of the others.
    fn counts_on(&self, threads: usize) -> Counts {
        let work = |t: usize, threads: usize| {
            let v = self.views();
            let mut tally = Tally::new(&v);
            // An even share of the one-row groups (ordered by day): a run of rows per day.
            let mut rest = share(&self.singles, t, self.singles.len().div_ceil(threads));
            while let Some(&(d, _)) = rest.first() {
                let n = rest.iter().take_while(|(x, _)| *x == d).count();
                let (day, r) = rest.split_at(n);
                tally.singles(&v[d as usize], d as usize, day);
                rest = r;
            }
            let mc = self.multis.len().div_ceil(threads);
            let groups: Vec<&[(u32, u32)]> = share(&self.multis, t, mc)
                .iter()
                .map(|g| self.group(*g as usize))
                .collect();
            tally.groups(&v, &groups);
            tally.finish()
        };
        if threads <= 1 {
            return work(0, 1);
        }
        let parts: Vec<Counts> = std::thread::scope(|scope| {
            let work = &work;
            let handles: Vec<_> = (0..threads)
                .map(|t| scope.spawn(move || work(t, threads)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut acc = Counts::default();
        for p in parts {
            acc.absorb(p);
        }
        acc
    }
}

/// The five coded text facets, in the order of [`Tally::codes`].
const ORG: usize = 0;
const COUNTRY: usize = 1;
const SCAN: usize = 2;
const TOOL: usize = 3;
const TAG: usize = 4;

/// A port's count in progress.
#[derive(Debug, Clone, Copy)]
struct PortSlot {
    n: u32,
    mark: u32,
}

/// Counts in progress: per port (TCP then UDP) and per coded value of each text facet.
struct Tally {
    /// Per port: sources counted and the mark of the last group that counted it, side by side
    /// (one cache line touched per port of a row).
    ports: Vec<PortSlot>,
    coders: [Coder; 5],
    /// Per day and facet, the slot of each dictionary value.
    codes: Vec<[Vec<u32>; 5]>,
    n: [Vec<u64>; 5],
    marks: [Vec<u32>; 5],
    class: [u64; 3],
    scanners: u64,
    packets: u64,
    tags: Vec<u32>,
}

impl Tally {
    fn new(v: &[Views<'_>]) -> Tally {
        let mut coders: [Coder; 5] = Default::default();
        let codes = v
            .iter()
            .map(|v| {
                [
                    coders[ORG].codes(v.org),
                    coders[COUNTRY].codes(v.country),
                    coders[SCAN].codes(v.scan_type),
                    coders[TOOL].codes(v.tools.elements()),
                    coders[TAG].codes(v.tags.elements()),
                ]
            })
            .collect();
        Tally {
            ports: vec![
                PortSlot {
                    n: 0,
                    mark: u32::MAX
                };
                2 << 16
            ],
            coders,
            codes,
            n: Default::default(),
            marks: Default::default(),
            class: [0; 3],
            scanners: 0,
            packets: 0,
            tags: Vec::new(),
        }
    }

    fn code(&mut self, f: usize, t: Text<'_>, d: usize, i: usize) -> Option<u32> {
        let c = self.coders[f].code(t, &self.codes[d][f], i)?;
        let s = c as usize;
        if self.n[f].len() <= s {
            self.n[f].resize(s + 1, 0);
            self.marks[f].resize(s + 1, u32::MAX);
        }
        Some(c)
    }

    fn class_of(&mut self, org: Option<u32>, logins: u64) {
        let class = crate::fields::class_of(
            org.map(|s| self.coders[ORG].name(s)),
            self.tags.iter().map(|s| self.coders[TAG].name(*s)),
            logins,
        );
        let k = crate::fields::CLASSES
            .iter()
            .position(|c| *c == class)
            .unwrap_or(0);
        self.class[k] += 1;
    }

    /// One-row groups of day `d`, a column at a time (each a single pass over the day).
    fn singles(&mut self, v: &Views<'_>, d: usize, rows: &[(u32, u32)]) {
        let rows = || rows.iter().map(|(_, i)| *i as usize);
        for i in rows() {
            for p in v.tcp.get(i) {
                self.ports[usize::from(*p)].n += 1;
            }
        }
        for i in rows() {
            for p in v.udp.get(i) {
                self.ports[(1 << 16) | usize::from(*p)].n += 1;
            }
        }
        for (f, t) in [(COUNTRY, v.country), (SCAN, v.scan_type)] {
            for i in rows() {
                if let Some(c) = self.code(f, t, d, i) {
                    self.n[f][c as usize] += 1;
                }
            }
        }
        let tools = v.tools.elements();
        for i in rows() {
            for j in v.tools.range(i) {
                if let Some(c) = self.code(TOOL, tools, d, j) {
                    self.n[TOOL][c as usize] += 1;
                }
            }
        }
        let tags = v.tags.elements();
        for i in rows() {
            self.tags.clear();
            for j in v.tags.range(i) {
                if let Some(c) = self.code(TAG, tags, d, j) {
                    self.n[TAG][c as usize] += 1;
                    self.tags.push(c);
                }
            }
            let org = self.code(ORG, v.org, d, i);
            if let Some(c) = org {
                self.n[ORG][c as usize] += 1;
            }
            self.class_of(org, v.logins.or0(i) + v.mysql.or0(i));
        }
        for i in rows() {
            self.scanners += u64::from(v.scanner.get(i) == Some(true));
            self.packets += v.packets.or0(i);
        }
    }

    /// Groups of several rows: each value counted once per group; org, country and scan type
    /// are the newest day's. One column at a time over all the groups: a group's rows lie in
    /// several days, and reading every column of each in turn would read more streams of
    /// memory at once than the prefetcher follows.
    fn groups(&mut self, v: &[Views<'_>], groups: &[&[(u32, u32)]]) {
        for (base, pick) in [
            (0, (|v: &Views<'_>| v.tcp) as PortsPick),
            (1 << 16, |v| v.udp),
        ] {
            for (mark, group) in groups.iter().enumerate() {
                let mark = mark as u32;
                for &(d, i) in *group {
                    // Without a branch: whether a port repeats within a group is not
                    // predictable.
                    for p in pick(&v[d as usize]).get(i as usize) {
                        let slot = &mut self.ports[base | usize::from(*p)];
                        slot.n += u32::from(slot.mark != mark);
                        slot.mark = mark;
                    }
                }
            }
        }
        let mut orgs = Vec::with_capacity(groups.len());
        for (f, pick) in [
            (ORG, (|v: &Views<'_>| v.org) as Pick),
            (COUNTRY, |v| v.country),
            (SCAN, |v| v.scan_type),
        ] {
            for group in groups {
                let mut newest = None;
                for &(d, i) in *group {
                    newest = self
                        .code(f, pick(&v[d as usize]), d as usize, i as usize)
                        .or(newest);
                }
                if let Some(c) = newest {
                    self.n[f][c as usize] += 1;
                }
                if f == ORG {
                    orgs.push(newest);
                }
            }
        }
        let logins: Vec<u64> = groups
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|&(d, i)| {
                        let (v, i) = (&v[d as usize], i as usize);
                        v.logins.or0(i) + v.mysql.or0(i)
                    })
                    .sum()
            })
            .collect();
        for (f, pick) in [
            (TOOL, (|v: &Views<'_>| v.tools) as ListPick),
            (TAG, |v| v.tags),
        ] {
            for (mark, group) in groups.iter().enumerate() {
                let mark = mark as u32;
                self.tags.clear();
                for &(d, i) in *group {
                    let list = pick(&v[d as usize]);
                    let e = list.elements();
                    for j in list.range(i as usize) {
                        if let Some(c) = self.code(f, e, d as usize, j) {
                            if f == TAG && self.marks[f][c as usize] != mark {
                                self.tags.push(c);
                            }
                            count_once(&mut self.n[f], &mut self.marks[f], c as usize, mark);
                        }
                    }
                }
                if f == TAG {
                    self.class_of(orgs[mark as usize], logins[mark as usize]);
                }
            }
        }
        for group in groups {
            let mut scanner = false;
            for &(d, i) in *group {
                let (v, i) = (&v[d as usize], i as usize);
                scanner |= v.scanner.get(i) == Some(true);
                self.packets += v.packets.or0(i);
            }
            self.scanners += u64::from(scanner);
        }
    }

    fn finish(self) -> Counts {
        let mut out = Counts {
            ports: PortCounts(self.ports.iter().map(|s| s.n).collect()),
            scanners: self.scanners,
            packets: self.packets,
            org: HashMap::new(),
            tool: HashMap::new(),
            country: HashMap::new(),
            tag: HashMap::new(),
            class: HashMap::new(),
            scan: HashMap::new(),
        };
        for (f, into) in [
            (ORG, &mut out.org),
            (COUNTRY, &mut out.country),
            (SCAN, &mut out.scan),
            (TOOL, &mut out.tool),
            (TAG, &mut out.tag),
        ] {
            for (s, k) in self.n[f].iter().enumerate().filter(|(_, k)| **k > 0) {
                into.insert(self.coders[f].name(s as u32).to_string(), *k);
            }
        }
        for (c, n) in crate::fields::CLASSES.iter().zip(self.class) {
            if n > 0 {
                out.class.insert((*c).to_string(), n);
            }
        }
        out
    }
}

/// (day, row) refs grouped by address, and each group's start.
pub(super) type Merged = (Vec<(u32, u32)>, Vec<u32>);

/// An address text for merging: its first 16 bytes as a big-endian number (zero-padded, so
/// the order is the text's) decide every comparison of IPv4 texts and most of IPv6 ones; the
/// text itself only breaks ties of longer texts.
#[derive(Debug, Clone, Copy)]
struct AddrKey<'a> {
    head: u128,
    text: &'a str,
}

impl<'a> AddrKey<'a> {
    fn of(text: &'a str) -> AddrKey<'a> {
        let mut b = [0u8; 16];
        let n = text.len().min(16);
        b[..n].copy_from_slice(&text.as_bytes()[..n]);
        AddrKey {
            head: u128::from_be_bytes(b),
            text,
        }
    }
}

impl Ord for AddrKey<'_> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.head.cmp(&o.head).then_with(|| {
            if self.text.len() <= 16 && o.text.len() <= 16 {
                // Equal heads of short texts: equal texts (a text has no NUL byte).
                std::cmp::Ordering::Equal
            } else {
                self.text.cmp(o.text)
            }
        })
    }
}

impl PartialOrd for AddrKey<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for AddrKey<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}

impl Eq for AddrKey<'_> {}

/// Merges rows of days (each slice ascending by address) into (day, row) refs grouped by
/// address, and each group's start.
pub(super) fn merge_sorted<'a>(days: &[&[u32]], addr: &dyn Fn(usize, u32) -> &'a str) -> Merged {
    let mut refs = Vec::with_capacity(days.iter().map(|d| d.len()).sum());
    let mut starts = Vec::new();
    let mut heap = BinaryHeap::new();
    let mut pos = vec![0usize; days.len()];
    let key = |d: usize, p: usize| AddrKey::of(addr(d, days[d][p]));
    for (d, rows) in days.iter().enumerate() {
        if !rows.is_empty() {
            heap.push(Reverse((key(d, 0), d)));
        }
    }
    let mut current = None;
    while let Some(Reverse((k, d))) = heap.pop() {
        if current != Some(k) {
            starts.push(refs.len() as u32);
            current = Some(k);
        }
        refs.push((d as u32, days[d][pos[d]]));
        pos[d] += 1;
        if pos[d] < days[d].len() {
            heap.push(Reverse((key(d, pos[d]), d)));
        }
    }
    (refs, starts)
}

/// The merge key heads ([`AddrKey`]) of the addresses of `rows` in `ip`, and whether every
/// one of those addresses is at most 16 bytes long (then the heads alone order them).
pub(super) fn heads(ip: Text<'_>, rows: &[u32]) -> (Vec<u128>, bool) {
    let mut short = true;
    let heads = rows
        .iter()
        .map(|i| {
            let t = ip.get(*i as usize).unwrap_or("");
            short &= t.len() <= 16;
            AddrKey::of(t).head
        })
        .collect();
    (heads, short)
}

/// [`merge_sorted`] when every address is at most 16 bytes long, so that equal heads are
/// equal addresses: days given as their rows and those rows' heads.
///
/// Up to [`SCAN_DAYS`] days, one group at a time: the smallest of the days' current heads
/// (a scan, no heap), then every day whose head it is gives its row, oldest day first.
/// More days go through a heap.
pub(super) fn merge_heads(days: &[(&[u32], &[u128])]) -> Merged {
    if days.len() > SCAN_DAYS {
        return merge_heads_heap(days);
    }
    let mut refs = Vec::with_capacity(days.iter().map(|d| d.0.len()).sum());
    let mut starts = Vec::new();
    let mut pos = [0usize; SCAN_DAYS];
    // A day with no rows left has the head no address text has (its bytes are ASCII).
    const DONE: u128 = u128::MAX;
    let mut cur = [DONE; SCAN_DAYS];
    for (d, (_, heads)) in days.iter().enumerate() {
        cur[d] = heads.first().copied().unwrap_or(DONE);
    }
    loop {
        let min = cur.iter().copied().fold(DONE, u128::min);
        if min == DONE {
            break;
        }
        starts.push(refs.len() as u32);
        for (d, (rows, heads)) in days.iter().enumerate() {
            if cur[d] == min {
                refs.push((d as u32, rows[pos[d]]));
                pos[d] += 1;
                cur[d] = heads.get(pos[d]).copied().unwrap_or(DONE);
            }
        }
    }
    (refs, starts)
}

/// Days [`merge_heads`] scans rather than keeping in a heap (a week and one).
const SCAN_DAYS: usize = 8;

/// [`merge_heads`] through a heap of the days' current heads.
fn merge_heads_heap(days: &[(&[u32], &[u128])]) -> Merged {
    let mut refs = Vec::with_capacity(days.iter().map(|d| d.0.len()).sum());
    let mut starts = Vec::new();
    let mut heap = BinaryHeap::with_capacity(days.len());
    let mut pos = vec![0usize; days.len()];
    for (d, (_, heads)) in days.iter().enumerate() {
        if let Some(h) = heads.first() {
            heap.push(Reverse((*h, d as u32)));
        }
    }
    let mut current = None;
    while let Some(Reverse((h, d))) = heap.pop() {
        let d = d as usize;
        if current != Some(h) {
            starts.push(refs.len() as u32);
            current = Some(h);
        }
        let (rows, heads) = days[d];
        refs.push((d as u32, rows[pos[d]]));
        pos[d] += 1;
        if let Some(h) = heads.get(pos[d]) {
            heap.push(Reverse((*h, d as u32)));
        }
    }
    (refs, starts)
}

/// Which text column of the views.
type Pick = for<'a> fn(&Views<'a>) -> Text<'a>;
/// Which list-of-text column of the views.
type ListPick = for<'a> fn(&Views<'a>) -> TextList<'a>;
/// Which list-of-ports column of the views.
type PortsPick = for<'a> fn(&Views<'a>) -> Ports<'a>;

/// The newest value of a group's rows in the picked column.
fn newest<'a>(group: &[(u32, u32)], v: &[Views<'a>], pick: Pick) -> Option<&'a str> {
    group
        .iter()
        .rev()
        .find_map(|&(d, i)| pick(&v[d as usize]).get(i as usize))
}

/// What `part` makes of each of a few ranges that split `0..n` evenly, concatenated in
/// order: one range per core once `n` is large.
fn on_cores<T: Send>(n: usize, part: impl Fn(std::ops::Range<usize>) -> Vec<T> + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 8);
    if threads == 1 || n < 50_000 {
        return part(0..n);
    }
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let part = &part;
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || part((t * chunk).min(n)..((t + 1) * chunk).min(n))))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The sort key of each of `n` groups with the group, computed on the machine's cores.
fn keys<K: Send>(n: usize, key: impl Fn(usize) -> K + Sync) -> Vec<(K, u32)> {
    on_cores(n, |r| r.map(|g| (key(g), g as u32)).collect())
}

/// Pages ending within this many groups keep only their best groups while ranking.
const BOUNDED: usize = 4096;

/// The groups of `0..n` from `offset`, at most `limit`, ordered by `key` (ties by group, that
/// is by address, ascending), the keys computed on the machine's cores. A page near the top
/// keeps each core's best `offset + limit` groups in a bounded heap; a deeper one ranks all.
fn ranked<K: Ord + Send>(
    n: usize,
    key: impl Fn(usize) -> K + Sync,
    descending: bool,
    offset: usize,
    limit: usize,
) -> Vec<usize> {
    let end = offset.saturating_add(limit).min(n);
    if end == 0 {
        return Vec::new();
    }
    if end > BOUNDED {
        return top_n(keys(n, key), descending, offset, limit);
    }
    let kept = on_cores(n, |r| {
        // A max-heap of the best so far: its top is the worst of them.
        let mut best = BinaryHeap::with_capacity(end + 1);
        for g in r {
            let e = Ranked {
                key: key(g),
                group: g as u32,
                descending,
            };
            if best.len() < end {
                best.push(e);
            } else if let Some(mut worst) = best.peek_mut()
                && e < *worst
            {
                *worst = e;
            }
        }
        best.into_iter().map(|e| (e.key, e.group)).collect()
    });
    top_n(kept, descending, offset, limit)
}

/// A group with its sort key, ordered as a page lists them (the first is the least).
struct Ranked<K> {
    key: K,
    group: u32,
    descending: bool,
}

impl<K: Ord> Ord for Ranked<K> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        let c = self.key.cmp(&o.key);
        let c = if self.descending { c.reverse() } else { c };
        c.then(self.group.cmp(&o.group))
    }
}

impl<K: Ord> PartialOrd for Ranked<K> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl<K: Ord> PartialEq for Ranked<K> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}

impl<K: Ord> Eq for Ranked<K> {}

/// Thread `t`'s share of `v`, in chunks of `c`.
fn share<T>(v: &[T], t: usize, c: usize) -> &[T] {
    &v[(t * c).min(v.len())..((t + 1) * c).min(v.len())]
}

/// Counts `k` for group `mark` unless that group counted it already.
fn count_once(n: &mut [u64], marks: &mut [u32], k: usize, mark: u32) {
    if marks[k] != mark {
        marks[k] = mark;
        n[k] += 1;
    }
}

/// The distinct (protocol, port) of rows, as `proto << 16 | port`.
fn ports_of<'a>(rows: impl Iterator<Item = (&'a Views<'a>, usize)>) -> Vec<u32> {
    let mut l: Vec<u32> = Vec::new();
    for (v, i) in rows {
        l.extend(v.tcp.get(i).iter().map(|p| u32::from(*p)));
        l.extend(v.udp.get(i).iter().map(|p| (1 << 16) | u32::from(*p)));
    }
    l.sort_unstable();
    l.dedup();
    l
}

/// The groups of `keyed` from `offset`, at most `limit`, ordered by key (ties by group, that
/// is by address, ascending).
fn top_n<K: Ord>(
    mut keyed: Vec<(K, u32)>,
    descending: bool,
    offset: usize,
    limit: usize,
) -> Vec<usize> {
    let cmp = |a: &(K, u32), b: &(K, u32)| {
        let o = a.0.cmp(&b.0);
        let o = if descending { o.reverse() } else { o };
        o.then(a.1.cmp(&b.1))
    };
    let end = offset.saturating_add(limit).min(keyed.len());
    if end == 0 {
        return Vec::new();
    }
    if end < keyed.len() {
        keyed.select_nth_unstable_by(end - 1, cmp);
        keyed.truncate(end);
    }
    keyed.sort_unstable_by(cmp);
    keyed
        .into_iter()
        .skip(offset)
        .map(|(_, g)| g as usize)
        .collect()
}

/// An address's order: IPv4 before IPv6, numerically.
pub fn ip_key(s: &str) -> (u8, u128) {
    match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => (4, u128::from(u32::from(a))),
        Ok(std::net::IpAddr::V6(a)) => (6, u128::from(a)),
        Err(_) => (9, 0),
    }
}

/// Numbers for the distinct values of text columns across days (each day's dictionary coded
/// once; a plain column's values one by one).
#[derive(Debug, Default)]
struct Coder {
    slots: HashMap<String, u32, foldhash::fast::RandomState>,
    names: Vec<String>,
}

impl Coder {
    fn slot(&mut self, s: &str) -> u32 {
        if let Some(k) = self.slots.get(s) {
            return *k;
        }
        let k = self.names.len() as u32;
        self.names.push(s.to_string());
        self.slots.insert(s.to_string(), k);
        k
    }

    /// The slot of each value of a dictionary column's dictionary (empty for other columns).
    fn codes(&mut self, t: Text<'_>) -> Vec<u32> {
        t.dictionary().map_or_else(Vec::new, |d| {
            (0..arrow::array::Array::len(d))
                .map(|j| {
                    if arrow::array::Array::is_null(d, j) {
                        u32::MAX
                    } else {
                        self.slot(d.value(j))
                    }
                })
                .collect()
        })
    }

    /// Row `i`'s slot.
    fn code(&mut self, t: Text<'_>, codes: &[u32], i: usize) -> Option<u32> {
        match t.key(i) {
            Some(k) => codes.get(k).copied().filter(|c| *c != u32::MAX),
            None => t.get(i).map(|s| self.slot(s)),
        }
    }

    fn name(&self, slot: u32) -> &str {
        &self.names[slot as usize]
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, sync::Arc};

    use arrow::array::{ListBuilder, RecordBatch, StringArray, UInt16Builder, UInt64Array};

    use super::*;

    /// A day of `ips` (sorted), packets = the day's number, all rows matching but every third.
    /// Each row also has TCP ports (from its address and the day: some repeat across days)
    /// and a country (its address's last character).
    fn day(d: u32, ips: &[String]) -> DayMatch {
        let mut ports = ListBuilder::new(UInt16Builder::new());
        for (k, ip) in ips.iter().enumerate() {
            let h = ip
                .bytes()
                .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
            let mut p: Vec<u16> = (0..(h % 5) as u16)
                .map(|j| [23, 80, 443][usize::from(j) % 3] + j * (d as u16 % 2))
                .chain(std::iter::once(1000 + (k as u16 % 7)))
                .collect();
            p.sort_unstable();
            p.dedup();
            ports.values().append_slice(&p);
            ports.append(true);
        }
        let country: StringArray = ips
            .iter()
            .map(|ip| Some(format!("C{}", &ip[ip.len() - 1..])))
            .collect();
        let batch = RecordBatch::try_from_iter([
            (
                IP.src_ip,
                Arc::new(StringArray::from_iter_values(ips)) as arrow::array::ArrayRef,
            ),
            (
                IP.packets,
                Arc::new(UInt64Array::from(vec![u64::from(d) + 1; ips.len()])),
            ),
            (IP.tcp_ports, Arc::new(ports.finish())),
            (IP.country, Arc::new(country)),
        ])
        .unwrap();
        DayMatch::new(
            NaiveDate::from_ymd_opt(2026, 11, d + 1).unwrap(),
            batch,
            (0..ips.len() as u32).filter(|i| i % 3 != 0).collect(),
        )
    }

    #[test]
    fn a_page_ranked_in_bounded_heaps_is_the_page_of_the_whole_ranking() {
        // Keys with many ties, over enough groups to be split over the cores.
        let n = 120_000;
        let key = |g: usize| (g * 7919 % 1013) as u64 / 3;
        for descending in [true, false] {
            for (offset, limit) in [
                (0, 50),
                (100, 50),
                (4000, 96),
                (0, 1),
                (119_990, 50),
                (5000, 10),
            ] {
                let mut all: Vec<(u64, usize)> = (0..n).map(|g| (key(g), g)).collect();
                all.sort_by(|a, b| {
                    let c = a.0.cmp(&b.0);
                    let c = if descending { c.reverse() } else { c };
                    c.then(a.1.cmp(&b.1))
                });
                let want: Vec<usize> = all.iter().skip(offset).take(limit).map(|x| x.1).collect();
                assert_eq!(top_n(keys(n, key), descending, offset, limit), want);
                assert_eq!(
                    ranked(n, key, descending, offset, limit),
                    want,
                    "descending {descending}, offset {offset}, limit {limit}"
                );
                assert_eq!(want.len(), limit.min(n.saturating_sub(offset)));
            }
        }
        assert!(ranked(0, key, true, 0, 50).is_empty());
        assert!(ranked(n, key, true, 0, 0).is_empty());
    }

    #[test]
    fn merging_by_heads_equals_merging_by_text() {
        // Days of short addresses (some shared, some a prefix of another's text), and days
        // with none: both merges give the same groups, rows oldest day first.
        for n in [5u32, SCAN_DAYS as u32, 13] {
            check_merges(n);
        }
        assert_eq!(merge_heads(&[]), (vec![], vec![]));
    }

    /// Both merges of `n` days of short addresses.
    fn check_merges(n: u32) {
        let days: Vec<Vec<String>> = (0..n)
            .map(|d| {
                let mut ips: Vec<String> = (0..300u32)
                    .filter(|k| (k * 7 + d) % (d + 2) != 0 && d != 3)
                    .map(|k| format!("10.{}.{}.{}", k % 3, k % 11, (k * d) % 200))
                    .collect();
                ips.sort();
                ips.dedup();
                ips
            })
            .collect();
        let heads: Vec<Vec<u128>> = days
            .iter()
            .map(|ips| ips.iter().map(|t| AddrKey::of(t).head).collect())
            .collect();
        let rows: Vec<Vec<u32>> = days
            .iter()
            .map(|ips| (0..ips.len() as u32).collect())
            .collect();
        let by_heads: Vec<(&[u32], &[u128])> = rows
            .iter()
            .zip(&heads)
            .map(|(r, h)| (&r[..], &h[..]))
            .collect();
        let slices: Vec<&[u32]> = rows.iter().map(|r| &r[..]).collect();
        let addr = |d: usize, i: u32| days[d][i as usize].as_str();
        let want = merge_sorted(&slices, &addr);
        assert_eq!(merge_heads(&by_heads), want, "{n} days");
        assert_eq!(merge_heads_heap(&by_heads), want, "{n} days, heap");
        assert!(
            want.1.len() > 100 && want.0.len() > want.1.len(),
            "shared addresses"
        );
        for g in 0..want.1.len() {
            let end = want.1.get(g + 1).map_or(want.0.len(), |e| *e as usize);
            let group = &want.0[want.1[g] as usize..end];
            assert!(
                group.windows(2).all(|w| w[0].0 < w[1].0),
                "oldest day first"
            );
            assert!(
                group
                    .iter()
                    .all(|&(d, i)| addr(d as usize, i) == addr(group[0].0 as usize, group[0].1))
            );
        }
    }

    #[test]
    fn merging_in_parts_groups_each_source_once_in_address_order() {
        let mut want: BTreeMap<String, (u32, u64)> = BTreeMap::new();
        let mut want_ports: BTreeMap<u16, std::collections::BTreeSet<String>> = BTreeMap::new();
        let mut days = Vec::new();
        for d in 0..4u32 {
            let mut ips: Vec<String> = (0..500u32)
                .filter(|k| (k + d) % (d + 2) != 0)
                .map(|k| format!("10.{}.{}.{}", k % 7, k % 251, d * k % 13))
                .collect();
            ips.sort();
            ips.dedup();
            let m = day(d, &ips);
            let ports = Ports::of(&m.batch, IP.tcp_ports);
            for i in &m.rows {
                let e = want.entry(ips[*i as usize].clone()).or_default();
                e.0 += 1;
                e.1 += u64::from(d) + 1;
                for p in ports.get(*i as usize) {
                    want_ports
                        .entry(*p)
                        .or_default()
                        .insert(ips[*i as usize].clone());
                }
            }
            days.push(m);
        }
        for parts in [1, 2, 3, 7] {
            let days = days
                .iter()
                .map(|d| DayMatch::new(d.date, d.batch.clone(), d.rows.clone()))
                .collect();
            let m = Matched::in_parts(days, parts);
            let got: BTreeMap<String, (u32, u64)> = (0..m.len())
                .map(|g| {
                    let s = m.source(g);
                    (s.ip, (s.days, s.packets))
                })
                .collect();
            assert_eq!(got, want, "{parts} parts");
            let order: Vec<String> = (0..m.len()).map(|g| m.source(g).ip).collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "{parts} parts: address order"
            );
            assert_eq!(m.rows(), want.values().map(|v| v.0 as usize).sum::<usize>());
            let c = m.counts();
            assert_eq!(c.packets, want.values().map(|v| v.1).sum::<u64>());
            let by_port: BTreeMap<u16, u64> = want_ports
                .iter()
                .map(|(p, ips)| (*p, ips.len() as u64))
                .collect();
            assert_eq!(
                c.ports
                    .iter()
                    .map(|((_, p), n)| (p, n))
                    .collect::<BTreeMap<_, _>>(),
                by_port,
                "distinct sources per port"
            );
            assert!(by_port.len() > 5 && c.country.len() == 10);
            for threads in [2, 3, 8] {
                assert_eq!(
                    m.counts_on(threads),
                    c,
                    "{parts} parts, counted on {threads} threads"
                );
            }
            assert_eq!(c.class.get("unknown").copied(), Some(m.len() as u64));
        }
    }
}
