//! What the console has: the days of each rollup table, the default range, the query
//! language's fields (with help and examples) and the sort keys — the UI builds its help and
//! range picker from it.
use scanscope_lake::tables::{
    dos_daily::DosRow, ip_daily::IpRow, port_daily::PortRow, series_daily::SeriesRow,
};
use serde_json::{Value, json};

use super::{Ctx, DEFAULT_RANGE_DAYS, MAX_RANGE_DAYS, date, search::Sort};
use crate::{error::ConsoleError, fields, view::Range};

/// The meta document.
pub fn build(ctx: &Ctx) -> Result<Value, ConsoleError> {
    let mut tables = serde_json::Map::new();
    for t in [
        IpRow::TABLE,
        PortRow::TABLE,
        DosRow::TABLE,
        SeriesRow::TABLE,
    ] {
        let days = ctx.catalog.all_days(t)?;
        tables.insert(
            t.to_string(),
            json!({
                "days": days.len(),
                "first": days.first().copied().map(date),
                "last": days.last().copied().map(date),
            }),
        );
    }
    let range: Range = ctx.range(None, None)?;
    let fields: Vec<Value> = fields::FIELDS
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "aliases": f.aliases,
                "type": f.kind.name(),
                "help": f.help,
                "example": f.example,
            })
        })
        .collect();
    let view = ctx.view(range);
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "tables": tables,
        "default_range": range,
        "default_range_days": DEFAULT_RANGE_DAYS,
        "max_range_days": MAX_RANGE_DAYS,
        "provisional": view.provisional,
        "fields": fields,
        "classes": fields::CLASSES,
        "sort": Sort::ALL.map(|(n, _)| n),
    }))
}
