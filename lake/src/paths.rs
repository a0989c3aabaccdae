//! Where things are in the lake: `<table>/date=YYYY-MM-DD/<file>.parquet` (hive partitioning by
//! UTC day). Ingest files are named after the write-ahead-log segment they hold
//! (`part-<segment>.parquet`), so rewriting a segment after a crash replaces the same files; a
//! day's rollup is one `rollup.parquet` per table. Objects whose name starts with `.` are
//! unfinished writes: readers skip them.
use chrono::NaiveDate;
use object_store::path::Path;

/// The partition column readers add from the path (`date=…`).
pub const PARTITION_COLUMN: &str = "date";

/// File name of a day's rollup in each rollup table.
pub const ROLLUP_FILE: &str = "rollup.parquet";

/// `date=YYYY-MM-DD`.
pub fn day_dir_name(day: NaiveDate) -> String {
    format!("{PARTITION_COLUMN}={}", day.format("%Y-%m-%d"))
}

/// The day of a `date=YYYY-MM-DD` directory name.
pub fn parse_day_dir(name: &str) -> Option<NaiveDate> {
    let d = name.strip_prefix(PARTITION_COLUMN)?.strip_prefix('=')?;
    NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
}

/// `<table>/date=YYYY-MM-DD`.
pub fn day_dir(table: &str, day: NaiveDate) -> Path {
    Path::from(table).join(day_dir_name(day))
}

/// The file a WAL segment's rows of `table` on `day` go to.
pub fn part_file(table: &str, day: NaiveDate, segment: u64) -> Path {
    day_dir(table, day).join(format!("part-{segment:012}.parquet"))
}

/// The day's rollup file of `table`.
pub fn rollup_file(table: &str, day: NaiveDate) -> Path {
    day_dir(table, day).join(ROLLUP_FILE)
}

/// The hidden name an object is written under before it is published.
pub(crate) fn hidden(path: &Path) -> Path {
    let name = path.filename().unwrap_or("object");
    let parent: Path = path
        .parts()
        .take(path.parts().count().saturating_sub(1))
        .collect();
    parent.join(format!(".{name}"))
}

/// Whether an object name is a finished Parquet file (not hidden, `.parquet`).
pub fn is_visible_parquet(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(
            part_file("flows", d, 42).as_ref(),
            "flows/date=2026-11-22/part-000000000042.parquet"
        );
        assert_eq!(
            rollup_file("ip_daily", d).as_ref(),
            "ip_daily/date=2026-11-22/rollup.parquet"
        );
        assert_eq!(
            hidden(&rollup_file("ip_daily", d)).as_ref(),
            "ip_daily/date=2026-11-22/.rollup.parquet"
        );
        assert_eq!(parse_day_dir("date=2026-11-22"), Some(d));
        assert_eq!(parse_day_dir("date=2026-13-01"), None);
        assert_eq!(parse_day_dir("2026-11-22"), None);
        assert!(is_visible_parquet("part-1.parquet") && !is_visible_parquet(".part-1.parquet"));
    }
}
