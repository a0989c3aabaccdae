//! `sessions`: connections the sensors' responders answered, and what the scanners sent in them.
//!
//! Login attempts are three parallel lists (`auth_methods[i]`, `auth_users[i]`,
//! `auth_secrets[i]` are attempt `i`): DuckDB's `UNNEST` of the three in one SELECT walks them
//! together.
use scanscope_common::{AppProtocol, SessionEnd};

use crate::table::{Binary, Bool, List, Nullable, Timestamp, U8, U16, U64, Utf8};

crate::lake_table! {
    /// One row of `sessions`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct SessionRow<'a>: "sessions", builder SessionBuilder, columns SessionColumns {
        pub ts: i64 => Timestamp,
        pub sensor: &'a str => Utf8,
        pub src_ip: String => Utf8,
        pub dst_ip: String => Utf8,
        pub src_port: u16 => U16,
        pub dst_port: u16 => U16,
        pub protocol: AppProtocol => Utf8,
        pub bytes_in: u64 => U64,
        pub bytes_out: u64 => U64,
        pub duration_ms: u64 => U64,
        pub end: SessionEnd => Utf8,
        pub payload: &'a [u8] => Binary,
        pub payload_cut: bool => Bool,
        pub http_method: Option<&'a str> => Nullable<Utf8>,
        pub http_url: Option<&'a str> => Nullable<Utf8>,
        pub http_version: Option<u8> => Nullable<U8>,
        pub http_host: Option<&'a str> => Nullable<Utf8>,
        pub http_user_agent: Option<&'a str> => Nullable<Utf8>,
        pub http_headers: &'a [String] => List<Utf8>,
        pub ja4: Option<&'a str> => Nullable<Utf8>,
        pub tls_sni: Option<&'a str> => Nullable<Utf8>,
        pub tls_alpn: &'a [String] => List<Utf8>,
        pub tls_version: Option<&'a str> => Nullable<Utf8>,
        pub ssh_client_banner: Option<&'a str> => Nullable<Utf8>,
        pub hassh: Option<&'a str> => Nullable<Utf8>,
        pub auth_methods: Vec<&'a str> => List<Utf8>,
        pub auth_users: Vec<&'a str> => List<Utf8>,
        pub auth_secrets: Vec<&'a str> => List<Utf8>,
        pub commands: &'a [String] => List<Utf8>,
        pub details: &'a [String] => List<Utf8>,
        pub tags: &'a [String] => List<Utf8>,
    }
}
