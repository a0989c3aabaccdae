//! One organisation's page: its IPs, wide-scanning IPs and new IPs (not seen on an earlier day
//! of the range) per day — so "pauses for a week, then returns with many new IPs" shows — and
//! the ports and tools of its IPs. Also the list of organisations seen in a range.
use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use arrow::{
    array::RecordBatch,
    compute::{concat_batches, filter_record_batch, sort_to_indices, take_record_batch},
};
use scanscope_lake::tables::ip_daily::{IpColumns, IpRow};
use serde_json::json;

use super::{
    Ctx, Matched, WIDE_TAG, date,
    fold::{self, DayMatch},
    per_day, top, top_sources,
};
use crate::{
    catalog::Day,
    col::{Num, Text, TextList},
    error::ConsoleError,
    view::{ColumnKind as K, Range, Table, View},
};

const IP: IpColumns = IpRow::COL;

/// Rows of each top list.
pub const TOP: usize = 20;

/// The day's rows that name an organisation, with the fold's columns, in address order: a
/// small share of a day, kept as a memo for as long as the day's file is unchanged.
fn org_rows(ctx: &Ctx, d: &Day) -> Result<Arc<RecordBatch>, ConsoleError> {
    ctx.catalog.memo(d, "org_rows", |d| {
        let arrow = |source| ConsoleError::Arrow {
            table: IpRow::TABLE,
            date: d.date,
            source,
        };
        let mut parts = Vec::new();
        let mut schema = None;
        d.each_batch(fold::COLUMNS, |b| {
            let keep = Text::of(b, IP.org).test(b.num_rows(), |_| true);
            schema.get_or_insert_with(|| b.schema());
            parts.push(filter_record_batch(b, &keep.into()).map_err(arrow)?);
            Ok(())
        })?;
        let Some(schema) = schema else {
            return Ok(RecordBatch::new_empty(Arc::new(
                arrow::datatypes::Schema::empty(),
            )));
        };
        let b = concat_batches(&schema, &parts).map_err(arrow)?;
        let Some(src) = b.column_by_name(IP.src_ip) else {
            return Ok(b);
        };
        let order = sort_to_indices(src, None, None).map_err(arrow)?;
        take_record_batch(&b, &order).map_err(arrow)
    })
}

/// The page of organisation `name` (matched case-insensitively) over `range`.
pub fn build(ctx: &Ctx, range: Range, name: &str) -> Result<View, ConsoleError> {
    let mut v = ctx.view(range);
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    let wanted = name.to_lowercase();
    let per = per_day(&days, |d| -> Result<DayMatch, ConsoleError> {
        let b = org_rows(ctx, d)?;
        let m = Text::of(&b, IP.org).test(b.num_rows(), |o| o.to_lowercase() == wanted);
        Ok(DayMatch::new(
            d.date,
            (*b).clone(),
            (0..b.num_rows() as u32)
                .filter(|i| m[*i as usize])
                .collect(),
        ))
    });
    let per: Vec<DayMatch> = per.into_iter().collect::<Result<_, _>>()?;
    let mut daily = Table::new(&[
        ("date", K::Date),
        ("ips", K::Number),
        ("wide_ips", K::Number),
        ("new_ips", K::Number),
        ("packets", K::Number),
    ]);
    let mut seen: HashSet<String> = HashSet::new();
    let mut newest = None;
    for d in &per {
        let b = &d.batch;
        let src = Text::of(b, IP.src_ip);
        let tags = TextList::of(b, IP.tags);
        let packets = Num::of(b, IP.packets);
        let org = Text::of(b, IP.org);
        let (mut wide, mut new, mut pk) = (0u64, 0u64, 0u64);
        for i in d.rows.iter().map(|i| *i as usize) {
            if let Some(s) = src.get(i)
                && seen.insert(s.to_string())
            {
                new += 1;
            }
            wide += u64::from(tags.get(i).any(|t| t == WIDE_TAG));
            pk += packets.or0(i);
            newest = org.get(i).map(str::to_string).or(newest);
        }
        daily.push(vec![
            date(d.date),
            json!(d.rows.len()),
            json!(wide),
            json!(new),
            json!(pk),
        ]);
    }
    let found = Matched::of(per);
    if found.is_empty() {
        return Err(ConsoleError::NotFound(format!(
            "organisation {name:?} in {} … {}",
            range.from, range.to
        )));
    }
    v.summary.insert("org".into(), json!(newest));
    v.summary.insert("ips".into(), json!(found.len()));
    v.tables.insert("daily", daily);
    let counts = found.counts();
    let mut t = Table::new(&[("proto", K::Text), ("port", K::Port), ("ips", K::Number)]);
    for ((pr, p), n) in top(counts.ports.iter(), TOP) {
        t.push(vec![json!(pr), json!(p), json!(n)]);
    }
    v.tables.insert("ports", t);
    let mut t = Table::new(&[("tool", K::Text), ("ips", K::Number)]);
    for (o, n) in top(counts.tool, TOP) {
        t.push(vec![json!(o), json!(n)]);
    }
    v.tables.insert("tools", t);
    v.tables.insert("sources", top_sources(&found, TOP));
    Ok(v)
}

/// Every organisation seen in `range`: distinct IPs, days, packets.
pub fn list(ctx: &Ctx, range: Range) -> Result<View, ConsoleError> {
    let mut v = ctx.view(range);
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    let per = per_day(&days, |d| -> Result<_, ConsoleError> {
        let b = &*org_rows(ctx, d)?;
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
        Ok(m)
    });
    let mut all: BTreeMap<String, (HashSet<String>, u64, u64)> = BTreeMap::new();
    for m in per {
        for (o, (ips, pk)) in m? {
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
