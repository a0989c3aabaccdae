//! Search: the sources one of whose days matches the query, sortable and paged, with counts of
//! distinct matching sources per facet (port, organisation, tool, country, tag, class, scan
//! type).
use std::sync::Arc;

use arrow::datatypes::DataType;
use scanscope_lake::tables::ip_daily::{self, IpRow};
use serde_json::json;

use super::{Ctx, Distinct, SOURCE_COLUMNS, Source, Sources, source_row};
use crate::{
    catalog::Day,
    error::ConsoleError,
    eval,
    query::{self, Expr, UserFieldType},
    view::{ColumnKind as K, Range, Table, View},
};

/// The most rows of one page.
pub const MAX_LIMIT: usize = 1000;
/// Values listed per facet.
pub const FACET_SIZE: usize = 10;

/// How results are ordered.
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

    pub fn parse(s: &str) -> Result<Sort, ConsoleError> {
        Sort::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                ConsoleError::param(
                    "sort",
                    format!(
                        "{s:?} is not one of {}",
                        Sort::ALL.map(|(n, _)| n).join(", ")
                    ),
                )
            })
    }

    fn cmp(self, a: &Source, b: &Source) -> std::cmp::Ordering {
        match self {
            Sort::Packets => a.packets.cmp(&b.packets),
            Sort::Days => a.days.cmp(&b.days),
            Sort::Ports => a.ports.len().cmp(&b.ports.len()),
            Sort::Breadth => a.breadth.cmp(&b.breadth),
            Sort::FirstSeen => a.first_seen.cmp(&b.first_seen),
            Sort::LastSeen => a.last_seen.cmp(&b.last_seen),
            Sort::Ip => ip_key(&a.ip).cmp(&ip_key(&b.ip)),
            Sort::Org => a.org.cmp(&b.org),
            Sort::Country => a.country.cmp(&b.country),
        }
    }
}

fn ip_key(s: &str) -> (u8, u128) {
    match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => (4, u128::from(u32::from(a))),
        Ok(std::net::IpAddr::V6(a)) => (6, u128::from(a)),
        Err(_) => (9, 0),
    }
}

/// A search request.
#[derive(Debug, Clone)]
pub struct Search {
    pub q: String,
    pub sort: Sort,
    pub descending: bool,
    pub limit: usize,
    pub offset: usize,
}

/// The type of a user rule's field in the days of a range (the first day that has it).
pub fn user_field(days: &[Arc<Day>], name: &str) -> Option<UserFieldType> {
    if ip_daily::is_builtin(name) {
        return None;
    }
    days.iter().find_map(|d| {
        let schema = d.batch.schema();
        let f = schema.field_with_name(name).ok()?;
        Some(match f.data_type() {
            DataType::Boolean => UserFieldType::Bool,
            DataType::Int64 => UserFieldType::Int,
            _ => UserFieldType::String,
        })
    })
}

/// Parses `q` against the fields and the user fields of `days`.
pub fn parse(days: &[Arc<Day>], q: &str) -> Result<Expr, ConsoleError> {
    Ok(query::parse(q, &|n| user_field(days, n))?)
}

/// The sources matching `expr` in `days`.
pub fn matching(days: &[Arc<Day>], expr: &Expr) -> Sources {
    Sources::of_days(days, |b| eval::matches(expr, b))
}

/// The facets over matching sources: each a table of (value, sources).
pub fn facets(sources: &[&Source], v: &mut View) {
    let mut port = Distinct::default();
    let mut org = Distinct::default();
    let mut tool = Distinct::default();
    let mut country = Distinct::default();
    let mut tag = Distinct::default();
    let mut class = Distinct::default();
    let mut scan = Distinct::default();
    for s in sources {
        for p in &s.ports {
            port.add(*p);
        }
        if let Some(o) = &s.org {
            org.add(o.clone());
        }
        for t in &s.tools {
            tool.add(t.clone());
        }
        if let Some(c) = &s.country {
            country.add(c.clone());
        }
        for t in &s.tags {
            tag.add(t.clone());
        }
        class.add(s.class().to_string());
        if let Some(t) = &s.scan_type {
            scan.add(t.clone());
        }
    }
    let mut t = Table::new(&[
        ("proto", K::Text),
        ("port", K::Port),
        ("sources", K::Number),
    ]);
    for ((proto, p), n) in port.top(FACET_SIZE) {
        t.push(vec![json!(proto), json!(p), json!(n)]);
    }
    v.tables.insert("facet_port", t);
    for (name, kind, d) in [
        ("facet_org", K::Org, &org),
        ("facet_tool", K::Text, &tool),
        ("facet_country", K::Text, &country),
        ("facet_tag", K::Text, &tag),
        ("facet_class", K::Class, &class),
        ("facet_scan", K::Text, &scan),
    ] {
        let mut t = Table::new(&[("value", kind), ("sources", K::Number)]);
        for (val, n) in d.top(FACET_SIZE) {
            t.push(vec![json!(val), json!(n)]);
        }
        v.tables.insert(name, t);
    }
}

/// The search page's view.
pub fn build(ctx: &Ctx, range: Range, s: &Search) -> Result<View, ConsoleError> {
    if s.limit > MAX_LIMIT {
        return Err(ConsoleError::param("limit", format!("at most {MAX_LIMIT}")));
    }
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    let expr = parse(&days, &s.q)?;
    let found = matching(&days, &expr);
    let mut v = ctx.view(range);
    v.plan = Some(expr.to_string());
    let mut all: Vec<&Source> = found.by_ip.values().collect();
    all.sort_by(|a, b| {
        let o = s.sort.cmp(a, b);
        let o = if s.descending { o.reverse() } else { o };
        o.then_with(|| ip_key(&a.ip).cmp(&ip_key(&b.ip)))
    });
    v.summary.insert("sources".into(), json!(all.len()));
    v.summary.insert(
        "source_days".into(),
        json!(all.iter().map(|s| u64::from(s.days)).sum::<u64>()),
    );
    v.summary.insert("days_read".into(), json!(days.len()));
    facets(&all, &mut v);
    let mut t = Table::new(SOURCE_COLUMNS);
    for src in all.iter().skip(s.offset).take(s.limit) {
        t.push(source_row(src));
    }
    t.total = Some(all.len() as u64);
    v.tables.insert("sources", t);
    Ok(v)
}
