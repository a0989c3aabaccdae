//! `ip_daily`: one row per source per day — what it probed, how (scan type, tools), how widely
//! (breadth), who it is (organisation, rDNS, Tor, country, ASN) and what its payloads said; then
//! the operator's own columns (user fields, from the rollup's `[[field]]` rules).
use std::sync::Arc;

use arrow::{
    array::{ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder},
    datatypes::{DataType, Field, Schema, SchemaRef},
    error::ArrowError,
};
use scanscope_common::{Kind, Tool};
use serde::Deserialize;

use crate::{
    paths::PARTITION_COLUMN,
    table::{Bool, List, Nullable, Timestamp, U8, U16, U32, U64, Utf8},
};

crate::lake_table! {
    /// One row of `ip_daily` (rules in `docs/rollup.md`).
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct IpRow: "ip_daily", builder IpRowBuilder, columns IpColumns {
        pub src_ip: String => Utf8,
        pub first_seen: i64 => Timestamp,
        pub last_seen: i64 => Timestamp,
        pub packets: u64 => U64,
        pub bytes: u64 => U64,
        pub flows: Option<u64> => Nullable<U64>,
        pub sensor_count: u32 => U32,
        /// Sensor ids (shared strings: one allocation per sensor, not per row).
        pub sensors: Vec<Arc<str>> => List<Utf8>,
        pub scan_breadth: u8 => U8,
        pub dst_hosts: u64 => U64,
        pub ports: Vec<u16> => List<U16>,
        pub tcp_ports: Vec<u16> => List<U16>,
        pub udp_ports: Vec<u16> => List<U16>,
        pub port_count: u32 => U32,
        pub probe_pairs: u64 => U64,
        pub icmp_ping: u64 => U64,
        pub kinds: Vec<Kind> => List<Utf8>,
        pub scan_type: &'static str => Utf8,
        pub is_scanner: bool => Bool,
        pub tools: Vec<Tool> => List<Utf8>,
        pub os_hint: Option<String> => Nullable<Utf8>,
        pub org: Option<String> => Nullable<Utf8>,
        pub org_source: Option<&'static str> => Nullable<Utf8>,
        pub rdns: Option<String> => Nullable<Utf8>,
        pub tor_exit: Option<bool> => Nullable<Bool>,
        pub country: Option<String> => Nullable<Utf8>,
        pub asn: Option<u32> => Nullable<U32>,
        pub as_org: Option<String> => Nullable<Utf8>,
        pub spoofed_suspect: bool => Bool,
        pub spoof_reasons: Vec<&'static str> => List<Utf8>,
        pub backscatter_packets: u64 => U64,
        pub tags: Vec<String> => List<Utf8>,
        pub http_url: Option<Vec<String>> => Nullable<List<Utf8>>,
        pub http_user_agent: Option<Vec<String>> => Nullable<List<Utf8>>,
        pub rdp_cookie: Option<Vec<String>> => Nullable<List<Utf8>>,
        pub mysql_login_attempts: Option<u64> => Nullable<U64>,
        pub mysql_user: Option<Vec<String>> => Nullable<List<Utf8>>,
        pub payload_samples: u64 => U64,
        pub sessions: u64 => U64,
        pub session_protocols: Vec<&'static str> => List<Utf8>,
        pub login_attempts: u64 => U64,
        pub login_protocols: Vec<&'static str> => List<Utf8>,
        pub login_counts: Vec<u64> => List<U64>,
        pub users: Vec<String> => List<Utf8>,
        pub passwords: Vec<String> => List<Utf8>,
        pub ja4: Vec<String> => List<Utf8>,
        pub hassh: Vec<String> => List<Utf8>,
        pub ssh_client_banners: Vec<String> => List<Utf8>,
        pub session_commands: Vec<String> => List<Utf8>,
        pub two_phase_tool: Option<Tool> => Nullable<Utf8>,
    }
    extra {
        /// User fields, in the order of the configuration.
        pub user: Vec<UserValue>,
    }
}

/// Type of a user field (a column the operator adds with a rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserType {
    Bool,
    Int,
    String,
}

impl UserType {
    /// The Arrow type of the column.
    pub fn data_type(self) -> DataType {
        match self {
            UserType::Bool => DataType::Boolean,
            UserType::Int => DataType::Int64,
            UserType::String => DataType::Utf8,
        }
    }
}

/// A user field's value in one row.
#[derive(Debug, Clone, PartialEq)]
pub enum UserValue {
    Bool(bool),
    Int(i64),
    String(String),
    Null,
}

/// Whether `name` is taken by a built-in column (or the partition column readers add).
pub fn is_builtin(name: &str) -> bool {
    name == PARTITION_COLUMN || IpRow::COLUMNS.iter().any(|c| c.name == name)
}

/// The `ip_daily` schema with user fields (name, type) appended; every user column is nullable.
pub fn schema_with(user: &[(&str, UserType)]) -> SchemaRef {
    let mut fields: Vec<Field> = IpRow::COLUMNS.iter().map(|c| c.field()).collect();
    fields.extend(
        user.iter()
            .map(|(n, t)| Field::new(*n, t.data_type(), true)),
    );
    Arc::new(Schema::new(fields))
}

enum UserBuilder {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    String(StringBuilder),
}

/// Appends `ip_daily` rows with their user fields and finishes record batches of
/// [`schema_with`].
pub struct IpDailyBuilder {
    schema: SchemaRef,
    rows: IpRowBuilder,
    user: Vec<UserBuilder>,
}

impl std::fmt::Debug for IpDailyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpDailyBuilder")
            .field("rows", &self.rows.len())
            .field("user_fields", &self.user.len())
            .finish()
    }
}

impl IpDailyBuilder {
    /// A builder for rows whose `user` values follow `user` (name, type).
    pub fn new(user: &[(&str, UserType)]) -> Self {
        IpDailyBuilder {
            schema: schema_with(user),
            rows: IpRowBuilder::default(),
            user: user
                .iter()
                .map(|(_, t)| match t {
                    UserType::Bool => UserBuilder::Bool(BooleanBuilder::new()),
                    UserType::Int => UserBuilder::Int(Int64Builder::new()),
                    UserType::String => UserBuilder::String(StringBuilder::new()),
                })
                .collect(),
        }
    }

    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Appends one row; a user value of another type than its field's is written as null.
    pub fn push(&mut self, r: &IpRow) {
        self.rows.push(r);
        for (i, b) in self.user.iter_mut().enumerate() {
            let v = r.user.get(i).unwrap_or(&UserValue::Null);
            match (b, v) {
                (UserBuilder::Bool(b), UserValue::Bool(x)) => b.append_value(*x),
                (UserBuilder::Bool(b), _) => b.append_null(),
                (UserBuilder::Int(b), UserValue::Int(x)) => b.append_value(*x),
                (UserBuilder::Int(b), _) => b.append_null(),
                (UserBuilder::String(b), UserValue::String(x)) => b.append_value(x),
                (UserBuilder::String(b), _) => b.append_null(),
            }
        }
    }

    /// The rows appended so far as one record batch (the builder is empty afterwards).
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut cols = self.rows.finish_columns();
        for b in &mut self.user {
            cols.push(match b {
                UserBuilder::Bool(b) => Arc::new(b.finish()) as ArrayRef,
                UserBuilder::Int(b) => Arc::new(b.finish()),
                UserBuilder::String(b) => Arc::new(b.finish()),
            });
        }
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_fields_follow_the_built_in_columns() {
        let mut b = IpDailyBuilder::new(&[("db_ports", UserType::Int), ("who", UserType::String)]);
        b.push(&IpRow {
            src_ip: "198.51.100.7".into(),
            kinds: vec![Kind::TcpSyn],
            tools: vec![Tool::Masscan],
            user: vec![UserValue::Int(2), UserValue::Bool(true)],
            ..IpRow::default()
        });
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_columns(), IpRow::COLUMNS.len() + 2);
        assert_eq!(
            batch.schema().field(IpRow::COLUMNS.len()).name(),
            "db_ports"
        );
        let who = batch.column(IpRow::COLUMNS.len() + 1);
        assert!(
            who.is_null(0),
            "a value of the wrong type is written as null"
        );
        assert!(is_builtin("tools") && is_builtin("date") && !is_builtin("db_ports"));
    }
}
