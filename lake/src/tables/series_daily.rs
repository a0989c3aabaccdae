//! `series_daily`: 48 rows per day, one per 30 minutes.
use crate::table::{Timestamp, U64};

crate::lake_table! {
    /// One row of `series_daily`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct SeriesRow: "series_daily", builder SeriesBuilder, columns SeriesColumns {
        pub bucket_start: i64 => Timestamp,
        pub packets: u64 => U64,
        pub sources: u64 => U64,
        pub ports: u64 => U64,
        pub scanners: u64 => U64,
    }
}
