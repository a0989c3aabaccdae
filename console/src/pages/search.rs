//! Search: the sources one of whose days matches the query, sortable and paged, with counts of
//! distinct matching sources per facet (port, organisation, tool, country, tag, class, scan
//! type).
use std::sync::Arc;

use arrow::datatypes::DataType;
use scanscope_lake::tables::ip_daily::{self, IpRow};
use serde_json::json;

pub use super::Sort;
use super::{Ctx, Matched, SOURCE_COLUMNS, fold::Counts, source_row, top};
use crate::{
    catalog::Day,
    error::ConsoleError,
    eval, pages,
    query::{self, Expr, UserFieldType},
    view::{ColumnKind as K, Range, Table, View},
};

/// The most rows of one page.
pub const MAX_LIMIT: usize = 1000;
/// Values listed per facet.
pub const FACET_SIZE: usize = 10;

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
        let f = d.schema().field_with_name(name).ok()?;
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
pub fn matching(days: &[Arc<Day>], expr: &Expr) -> Result<Matched, ConsoleError> {
    let cols = eval::columns(expr);
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    pages::matched(days, &cols, |b| eval::matches(expr, b))
}

/// The facets over matching sources: each a table of (value, sources).
pub fn facets(c: &Counts, v: &mut View) {
    let mut t = Table::new(&[
        ("proto", K::Text),
        ("port", K::Port),
        ("sources", K::Number),
    ]);
    for ((proto, p), n) in top(c.ports.iter(), FACET_SIZE) {
        t.push(vec![json!(proto), json!(p), json!(n)]);
    }
    v.tables.insert("facet_port", t);
    for (name, kind, d) in [
        ("facet_org", K::Org, &c.org),
        ("facet_tool", K::Text, &c.tool),
        ("facet_country", K::Text, &c.country),
        ("facet_tag", K::Text, &c.tag),
        ("facet_class", K::Class, &c.class),
        ("facet_scan", K::Text, &c.scan),
    ] {
        let mut t = Table::new(&[("value", kind), ("sources", K::Number)]);
        for (val, n) in top(d.iter().map(|(k, n)| (k.clone(), *n)), FACET_SIZE) {
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
    let t0 = std::time::Instant::now();
    let found = matching(&days, &expr)?;
    let t1 = std::time::Instant::now();
    let mut v = ctx.view(range);
    v.plan = Some(expr.to_string());
    v.summary.insert("sources".into(), json!(found.len()));
    v.summary.insert("source_days".into(), json!(found.rows()));
    v.summary.insert("days_read".into(), json!(days.len()));
    facets(&found.counts(), &mut v);
    let t2 = std::time::Instant::now();
    let mut t = Table::new(SOURCE_COLUMNS);
    for g in found.page(s.sort, s.descending, s.offset, s.limit) {
        t.push(source_row(&found.source(g)));
    }
    t.total = Some(found.len() as u64);
    v.tables.insert("sources", t);
    tracing::debug!(
        sources = found.len(),
        rows = found.rows(),
        match_ms = (t1 - t0).as_millis(),
        facets_ms = (t2 - t1).as_millis(),
        page_ms = t2.elapsed().as_millis(),
        "search"
    );
    Ok(v)
}
