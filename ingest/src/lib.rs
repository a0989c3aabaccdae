//! Ingestion, the collector's first half: receives batches from many sensors over gRPC and
//! writes the lake's ingest tables. It shares nothing with the analytics half but the lake.
//!
//! Pipeline (one module per stage):
//! [`listener`] (connection caps, idle timeout) → [`auth`] (TLS, tokens and certificates bound to
//! sensor ids) → [`source::grpc`] (gRPC stream, acks) → [`validate`] (every
//! field) → [`store`] (dedup by per-sensor seq, group commit to the [`wal`], ack when durable) →
//! [`sink`] (rows per table and UTC day, written through `scanscope-lake`) → checkpoint, WAL
//! segment deleted. [`server`] runs them (and the periodic jobs the binary adds); [`args`] is
//! the command line. Errors become gRPC status codes in one place: [`error`].
//!
//! ```no_run
//! # async fn f() -> Result<(), scanscope_ingest::error::CollectorError> {
//! use scanscope_ingest::server::{self, ServeOptions};
//! let opts = ServeOptions::new("127.0.0.1:7878".parse().unwrap(), "/var/lib/scanscope".into());
//! let listener = server::bind(opts.listen).await?;
//! server::serve(opts, listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
pub mod args;
pub mod auth;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod server;
pub mod sink;
pub mod source;
pub mod store;
pub mod validate;
pub mod wal;
