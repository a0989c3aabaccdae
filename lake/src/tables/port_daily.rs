//! `port_daily`: per protocol and port, the day's probe packets, distinct sources and scanners,
//! responder sessions and the sources that sent a payload.
use crate::table::{List, U16, U64, Utf8};

crate::lake_table! {
    /// One row of `port_daily`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct PortRow: "port_daily", builder PortBuilder, columns PortColumns {
        pub proto: &'static str => Utf8,
        pub port: u16 => U16,
        pub packets: u64 => U64,
        pub sources: u64 => U64,
        pub scanners: u64 => U64,
        pub top_orgs: Vec<String> => List<Utf8>,
        pub sessions: u64 => U64,
        pub payload_sources: u64 => U64,
    }
}
