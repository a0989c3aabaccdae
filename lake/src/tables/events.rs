//! `events`: sampled packets (the first packet of every new tuple, then 1 in N).
use scanscope_common::Kind;

use crate::table::{Binary, Bool, List, Proto, Timestamp, U8, U16, U32, Utf8};

crate::lake_table! {
    /// One row of `events`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct EventRow<'a>: "events", builder EventBuilder, columns EventColumns {
        pub ts: i64 => Timestamp,
        pub sensor: &'a str => Utf8,
        pub iface: &'a str => Utf8,
        pub src_ip: String => Utf8,
        pub dst_ip: String => Utf8,
        pub src_port: u16 => U16,
        pub dst_port: u16 => U16,
        pub proto: Proto => Utf8,
        pub kind: Kind => Utf8,
        pub ttl: u8 => U8,
        pub ip_id: u16 => U16,
        pub ip_len: u16 => U16,
        pub df: bool => Bool,
        pub tos: u8 => U8,
        pub flow_label: u32 => U32,
        pub tcp_flags: u8 => U8,
        pub tcp_seq: u32 => U32,
        pub tcp_ack: u32 => U32,
        pub tcp_window: u16 => U16,
        pub tcp_options: &'a str => Utf8,
        pub tcp_options_raw: &'a [u8] => Binary,
        pub icmp_type: u8 => U8,
        pub icmp_code: u8 => U8,
        pub vlan: u16 => U16,
        pub weight: u32 => U32,
        pub payload_len: u16 => U16,
        pub payload: &'a [u8] => Binary,
        pub tools: &'a [String] => List<Utf8>,
        pub initial_ttl: u8 => U8,
        pub os_hint: &'a str => Utf8,
        pub backscatter: bool => Bool,
    }
}
