//! `lost`: every count of lost data, from the kernel, the agent and the collector.
use scanscope_common::LostStage;

use crate::table::{Timestamp, U64, Utf8};

crate::lake_table! {
    /// One row of `lost`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct LostRow<'a>: "lost", builder LostBuilder, columns LostColumns {
        pub ts: i64 => Timestamp,
        pub sensor: &'a str => Utf8,
        pub stage: LostStage => Utf8,
        pub unit: &'a str => Utf8,
        pub count: u64 => U64,
        pub detail: &'a str => Utf8,
    }
}
