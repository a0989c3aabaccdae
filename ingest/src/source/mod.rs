//! Where batches come from. Today: sensors over gRPC ([`grpc`]). Every source hands validated
//! `scanscope.v1.Batch`es to the store, so all of them share the write-ahead log and the lake.
pub mod grpc;
