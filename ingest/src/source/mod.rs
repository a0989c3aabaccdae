//! Where batches come from: sensors over gRPC ([`grpc`]), routers and probes exporting
//! NetFlow/IPFIX over UDP ([`netflow`]). Every source hands validated `scanscope.v1.Batch`es to
//! the store, so all of them share the write-ahead log and the lake.
pub mod grpc;
pub mod netflow;
