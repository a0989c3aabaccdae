//! Write stage of the rollup: `ip_daily`, `port_daily`, `dos_daily` and `series_daily` as one
//! Parquet file per table and day (`<table>/date=YYYY-MM-DD/rollup.parquet`), through the lake,
//! replaced atomically, so a re-run overwrites and never duplicates. The columns are the tables'
//! declarations in `scanscope_lake::tables` (documented in `docs/rollup.md`).
use chrono::NaiveDate;
use scanscope_lake::{
    Lake, paths,
    tables::{
        dos_daily::{DosBuilder, DosRow},
        ip_daily::{IpDailyBuilder, IpRow, UserType},
        port_daily::{PortBuilder, PortRow},
        series_daily::{SeriesBuilder, SeriesRow},
    },
};

use super::RollupError;

/// Rows per record batch when writing `ip_daily` (a large table never exists as Arrow arrays
/// all at once).
pub const IP_DAILY_CHUNK: usize = 65_536;

/// Writes `ip_daily` with the user fields (name, type) appended, building one chunk of rows at
/// a time, in the order of the addresses' text: a reader looking for one source skips every
/// row group whose `src_ip` statistics rule it out, and the console merges days in that order.
pub fn write_ip_daily(
    lake: &Lake,
    day: NaiveDate,
    rows: &[IpRow],
    user: &[(&str, UserType)],
) -> Result<u64, RollupError> {
    let mut order: Vec<&IpRow> = rows.iter().collect();
    order.sort_unstable_by(|a, b| a.src_ip.cmp(&b.src_ip));
    let mut b = IpDailyBuilder::new(user);
    let schema = b.schema();
    let chunks = order.chunks(IP_DAILY_CHUNK).map(|c| {
        for r in c {
            b.push(r);
        }
        b.finish()
    });
    let table = IpRow::TABLE;
    Ok(lake
        .write(&paths::rollup_file(table, day), table, schema, chunks)?
        .bytes)
}

/// Writes the day's `port_daily`, `dos_daily` and `series_daily`.
pub fn write_small_tables(
    lake: &Lake,
    day: NaiveDate,
    ports: &[PortRow],
    dos: &[DosRow],
    series: &[SeriesRow],
) -> Result<(), RollupError> {
    macro_rules! write {
        ($rows:expr, $builder:ty, $row:ty) => {{
            let mut b = <$builder>::with_capacity($rows.len());
            for r in $rows {
                b.push(r);
            }
            let table = <$row>::TABLE;
            let batch = b
                .finish()
                .map_err(|source| RollupError::Build { table, source })?;
            lake.write_batch(&paths::rollup_file(table, day), table, &batch)?;
        }};
    }
    write!(ports, PortBuilder, PortRow);
    write!(dos, DosBuilder, DosRow);
    write!(series, SeriesBuilder, SeriesRow);
    Ok(())
}
