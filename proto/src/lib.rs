//! The `scanscope.v1` contract: what a sensor agent streams to the collector.
//!
//! The protobuf source is `proto/scanscope/v1/ingest.proto`; every field is documented there.
//! Code is generated at build time by protox + tonic-prost-build (no system `protoc`).
//!
//! ```
//! use scanscope_proto::v1::{Batch, Kind};
//! let b = Batch { sensor_id: "s1".into(), seq: 1, ..Default::default() };
//! assert_eq!(b.seq, 1);
//! assert_eq!(Kind::TcpSyn.as_str_name(), "KIND_TCP_SYN");
//! ```

/// Version 1 of the contract. Changes are additive; removed field numbers are `reserved`.
pub mod v1 {
    #![allow(
        missing_debug_implementations,
        unused_qualifications,
        clippy::all,
        reason = "generated code"
    )]
    tonic::include_proto!("scanscope.v1");
}
