//! `sensor_stats`: kernel counters per sensor and interval, one row per counter (long format,
//! so new counters need no schema change).
use scanscope_common::Kind;

use crate::table::{F64, Nullable, Timestamp, U16, U64, Utf8};

/// `counter` of the per-kind packet rows.
pub const PACKETS: &str = "packets";
/// `counter` of the per-kind byte rows.
pub const BYTES: &str = "bytes";
/// `counter` of the per-TCP-port rows.
pub const TCP_PORT: &str = "tcp_port";
/// `counter` of the per-UDP-port rows.
pub const UDP_PORT: &str = "udp_port";

crate::lake_table! {
    /// One row of `sensor_stats`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct StatsRow<'a>: "sensor_stats", builder StatsBuilder, columns StatsColumns {
        pub interval_start: i64 => Timestamp,
        pub interval_secs: f64 => F64,
        pub sensor: &'a str => Utf8,
        pub counter: &'a str => Utf8,
        pub kind: Option<Kind> => Nullable<Utf8>,
        pub port: Option<u16> => Nullable<U16>,
        pub value: u64 => U64,
        pub agent_version: Option<&'a str> => Nullable<Utf8>,
    }
}
