//! The scanscope collector: receives batches from many sensors over gRPC and writes a daily,
//! hive-partitioned Parquet lake.
//!
//! Pipeline (one module per stage):
//! `auth` (TLS, bearer token) → `ingest` (gRPC stream, acks) → `validate` (every field) →
//! `store` (dedup by per-sensor seq, group commit to the `wal`, ack when durable) → `lake`
//! (Parquet per table and UTC day, temp file + fsync + rename) → checkpoint, WAL segment deleted.
//! Errors become gRPC status codes in one place: `error`.
//!
//! ```no_run
//! # async fn f() -> Result<(), scanscope_collector::error::CollectorError> {
//! use scanscope_collector::server::{self, ServeOptions};
//! let opts = ServeOptions::new("127.0.0.1:7878".parse().unwrap(), "/var/lib/scanscope".into());
//! let listener = server::bind(opts.listen).await?;
//! server::serve(opts, listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
pub mod auth;
pub mod enrich;
pub mod error;
pub mod ingest;
pub mod lake;
pub mod report;
pub mod rollup;
pub mod rules;
pub mod server;
pub mod store;
pub mod validate;
pub mod wal;
