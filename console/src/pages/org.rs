//! One organisation's page: its IPs, wide-scanning IPs and new IPs (not seen on an earlier day
//! of the range) per day — so "pauses for a week, then returns with many new IPs" shows — and
//! the ports and tools of its IPs. Also the list of organisations seen in a range.
use std::collections::{BTreeMap, HashSet};

use scanscope_lake::tables::ip_daily::{IpColumns, IpRow};
use serde_json::json;

use super::{Ctx, Distinct, Source, Sources, WIDE_TAG, date, per_day, top_sources};
use crate::{
    col::{Num, Text, TextList},
    error::ConsoleError,
    view::{ColumnKind as K, Range, Table, View},
};

const IP: IpColumns = IpRow::COL;

/// Rows of each top list.
pub const TOP: usize = 20;

/// The page of organisation `name` (matched case-insensitively) over `range`.
pub fn build(ctx: &Ctx, range: Range, name: &str) -> Result<View, ConsoleError> {
    let mut v = ctx.view(range);
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    let wanted = name.to_lowercase();
    let per = per_day(&days, |d| {
        let b = &d.batch;
        let org = Text::of(b, IP.org);
        let m = org.test(b.num_rows(), |o| o.to_lowercase() == wanted);
        let src = Text::of(b, IP.src_ip);
        let tags = TextList::of(b, IP.tags);
        let packets = Num::of(b, IP.packets);
        let mut ips = Vec::new();
        let mut wide = 0u64;
        let mut pk = 0u64;
        for i in (0..b.num_rows()).filter(|i| m[*i]) {
            if let Some(s) = src.get(i) {
                ips.push(s.to_string());
            }
            wide += u64::from(tags.get(i).any(|t| t == WIDE_TAG));
            pk += packets.or0(i);
        }
        let mut s = Sources::default();
        s.add(b, &m);
        (d.date, ips, wide, pk, s)
    });
    let mut daily = Table::new(&[
        ("date", K::Date),
        ("ips", K::Number),
        ("wide_ips", K::Number),
        ("new_ips", K::Number),
        ("packets", K::Number),
    ]);
    let mut seen: HashSet<String> = HashSet::new();
    let mut parts = Vec::new();
    for (d, ips, wide, pk, s) in per {
        let new = ips.iter().filter(|ip| !seen.contains(*ip)).count();
        daily.push(vec![
            date(d),
            json!(ips.len()),
            json!(wide),
            json!(new),
            json!(pk),
        ]);
        seen.extend(ips);
        parts.push(s);
    }
    let found = Sources::merge(parts);
    if found.by_ip.is_empty() {
        return Err(ConsoleError::NotFound(format!(
            "organisation {name:?} in {} … {}",
            range.from, range.to
        )));
    }
    let all: Vec<&Source> = found.by_ip.values().collect();
    v.summary
        .insert("org".into(), json!(all.iter().find_map(|s| s.org.clone())));
    v.summary.insert("ips".into(), json!(all.len()));
    v.tables.insert("daily", daily);
    let mut ports = Distinct::default();
    let mut tools = Distinct::default();
    for s in &all {
        for p in &s.ports {
            ports.add(*p);
        }
        for t in &s.tools {
            tools.add(t.clone());
        }
    }
    let mut t = Table::new(&[("proto", K::Text), ("port", K::Port), ("ips", K::Number)]);
    for ((pr, p), n) in ports.top(TOP) {
        t.push(vec![json!(pr), json!(p), json!(n)]);
    }
    v.tables.insert("ports", t);
    let mut t = Table::new(&[("tool", K::Text), ("ips", K::Number)]);
    for (o, n) in tools.top(TOP) {
        t.push(vec![json!(o), json!(n)]);
    }
    v.tables.insert("tools", t);
    v.tables.insert("sources", top_sources(&all, TOP));
    Ok(v)
}

/// Every organisation seen in `range`: distinct IPs, days, packets.
pub fn list(ctx: &Ctx, range: Range) -> Result<View, ConsoleError> {
    let mut v = ctx.view(range);
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    let per = per_day(&days, |d| {
        let b = &d.batch;
        let org = Text::of(b, IP.org);
        let src = Text::of(b, IP.src_ip);
        let packets = Num::of(b, IP.packets);
        let mut m: BTreeMap<String, (HashSet<String>, u64)> = BTreeMap::new();
        for i in 0..b.num_rows() {
            if let (Some(o), Some(s)) = (org.get(i), src.get(i)) {
                let e = m.entry(o.to_string()).or_default();
                e.0.insert(s.to_string());
                e.1 += packets.or0(i);
            }
        }
        m
    });
    let mut all: BTreeMap<String, (HashSet<String>, u64, u64)> = BTreeMap::new();
    for m in per {
        for (o, (ips, pk)) in m {
            let e = all.entry(o).or_default();
            e.0.extend(ips);
            e.1 += pk;
            e.2 += 1;
        }
    }
    let mut rows: Vec<_> = all.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.len().cmp(&a.1.0.len()).then_with(|| a.0.cmp(&b.0)));
    let mut t = Table::new(&[
        ("org", K::Org),
        ("ips", K::Number),
        ("days", K::Number),
        ("packets", K::Number),
    ]);
    for (o, (ips, pk, ds)) in rows {
        t.push(vec![json!(o), json!(ips.len()), json!(ds), json!(pk)]);
    }
    v.tables.insert("orgs", t);
    Ok(v)
}
