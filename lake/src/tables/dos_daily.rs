//! `dos_daily`: per backscatter source (the victim of a spoofed-source attack), the day's
//! backscatter and whether it was an attack.
use scanscope_common::Kind;

use crate::table::{Bool, List, Timestamp, U32, U64, Utf8};

crate::lake_table! {
    /// One row of `dos_daily`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct DosRow: "dos_daily", builder DosBuilder, columns DosColumns {
        pub victim: String => Utf8,
        pub first_seen: i64 => Timestamp,
        pub last_seen: i64 => Timestamp,
        pub packets: u64 => U64,
        pub bytes: u64 => U64,
        pub peak_ppm: u64 => U64,
        pub dst_hosts: u64 => U64,
        pub sensor_count: u32 => U32,
        pub kinds: Vec<Kind> => List<Utf8>,
        pub attacks: u32 => U32,
        pub is_attack: bool => Bool,
    }
}
