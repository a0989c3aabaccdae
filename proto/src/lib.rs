//! The `scanscope.v1` contract: what a sensor agent streams to the collector.
//!
//! The protobuf source is `proto/scanscope/v1/ingest.proto`; every field is documented there.
//! Code is generated at build time by protox + tonic-prost-build (no system `protoc`).
//! [`vocab`] converts between the contract's enums and the vocabulary of `scanscope-common`,
//! and [`v1::Batch`] knows how many records and lake rows it holds.
//!
//! ```
//! use scanscope_proto::v1::{Batch, Kind};
//! let b = Batch { sensor_id: "s1".into(), seq: 1, ..Default::default() };
//! assert_eq!(b.seq, 1);
//! assert_eq!(Kind::TcpSyn.as_str_name(), "KIND_TCP_SYN");
//! assert_eq!(Kind::from(scanscope_common::Kind::TcpSyn), Kind::TcpSyn);
//! ```

/// Version 1 of the contract. Changes are additive; removed field numbers are `reserved`.
pub mod v1 {
    #![allow(
        missing_debug_implementations,
        unused_qualifications,
        unreachable_pub,
        clippy::all,
        clippy::allow_attributes_without_reason,
        reason = "generated code"
    )]
    tonic::include_proto!("scanscope.v1");
}

pub mod codec;
pub mod vocab;

impl v1::Batch {
    /// Records in the batch (events, flows, stats, lost and session messages).
    pub fn records(&self) -> usize {
        self.events.len()
            + self.flows.len()
            + self.stats.len()
            + self.lost.len()
            + self.sessions.len()
    }

    /// Rows the batch becomes in the lake: `sensor_stats` holds one row per counter (two per
    /// kind: packets and bytes; one per named counter and per port).
    pub fn lake_rows(&self) -> u64 {
        let stats: usize = self
            .stats
            .iter()
            .map(|s| s.kinds.len() * 2 + s.counters.len() + s.tcp_ports.len() + s.udp_ports.len())
            .sum();
        (self.events.len() + self.flows.len() + stats + self.lost.len() + self.sessions.len())
            as u64
    }
}
