//! `flows`: exact per-tuple counts, one row per (sensor, interval, source, destination,
//! protocol, kind, destination port / ICMP type and code).
use scanscope_common::Kind;

use crate::table::{F64, Nullable, Proto, Timestamp, U8, U16, U32, U64, Utf8};

crate::lake_table! {
    /// One row of `flows`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct FlowRow<'a>: "flows", builder FlowBuilder, columns FlowColumns {
        pub interval_start: i64 => Timestamp,
        pub interval_secs: f64 => F64,
        pub sensor: &'a str => Utf8,
        pub src_ip: &'a str => Utf8,
        pub dst_ip: &'a str => Utf8,
        pub proto: Proto => Utf8,
        pub kind: Kind => Utf8,
        pub dst_port: u16 => U16,
        pub icmp_type: Option<u8> => Nullable<U8>,
        pub icmp_code: Option<u8> => Nullable<U8>,
        pub packets: u64 => U64,
        pub bytes: u64 => U64,
        pub first_seen: i64 => Timestamp,
        pub last_seen: i64 => Timestamp,
        pub source: &'a str => Utf8,
        pub sampling_rate: Option<u32> => Nullable<U32>,
        pub tcp_flags: Option<u8> => Nullable<U8>,
    }
}
