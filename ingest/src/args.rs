//! The command line of `scanscope-collector serve` (ingest's part), parsed by clap and turned
//! into validated [`ServeOptions`]: the binary only composes it.
use std::{net::SocketAddr, path::PathBuf};

use crate::{
    auth::{self, TlsFiles},
    error::CollectorError,
    server::ServeOptions,
    validate::Limits,
};

/// Flags of `serve` that configure ingest.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, env = "SCANSCOPE_LISTEN", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Lake root: tables under DIR/<table>/date=YYYY-MM-DD/.
    #[arg(long, env = "SCANSCOPE_DATA")]
    pub data: PathBuf,
    /// Seconds between Parquet flushes.
    #[arg(long, env = "SCANSCOPE_FLUSH_SECS", default_value_t = 60.0)]
    pub flush_secs: f64,
    /// Flush early once this many rows wait.
    #[arg(long, env = "SCANSCOPE_FLUSH_ROWS", default_value_t = 2_000_000)]
    pub flush_rows: usize,
    /// Server certificate (PEM); with --tls-key enables TLS.
    #[arg(long, env = "SCANSCOPE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "SCANSCOPE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA for client certificates (PEM): requires mutual TLS.
    #[arg(long, env = "SCANSCOPE_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// File with accepted bearer tokens, one per line (none: no token needed).
    #[arg(long, env = "SCANSCOPE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Largest accepted batch, bytes.
    #[arg(long, default_value_t = Limits::default().max_batch_bytes)]
    pub max_batch_bytes: usize,
    /// Most rows in one batch.
    #[arg(long, default_value_t = Limits::default().max_batch_rows)]
    pub max_batch_rows: usize,
    /// Oldest accepted timestamp, in days before now (older rows are refused and counted).
    #[arg(long, default_value_t = 7)]
    pub max_age_days: u32,
    /// Most distinct sensor ids the collector keeps.
    #[arg(long, default_value_t = 10_000)]
    pub max_sensors: usize,
    /// Most connections at once (and, per client address, a sixty-fourth of it, at least 8).
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Listen on a non-loopback address without TLS and credentials (a closed lab network).
    #[arg(long)]
    pub insecure: bool,
}

impl ServeArgs {
    /// Checks the flags, reads the token file, and gives the options `serve` runs with.
    pub fn into_options(self) -> Result<ServeOptions, CollectorError> {
        if !(0.05..=86_400.0).contains(&self.flush_secs) {
            return Err(CollectorError::OutOfRange {
                flag: "flush-secs",
                min: 0.05,
                max: 86_400.0,
            });
        }
        let mut opts = ServeOptions::new(self.listen, self.data);
        opts.flush_secs = self.flush_secs;
        opts.flush_rows = self.flush_rows;
        if let Some(p) = &self.token_file {
            opts.tokens = auth::read_token_file(p)?;
        }
        opts.limits.max_batch_bytes = self.max_batch_bytes;
        opts.limits.max_batch_rows = self.max_batch_rows;
        opts.limits.max_age_us = i64::from(self.max_age_days) * 86_400_000_000;
        opts.max_sensors = self.max_sensors;
        opts.conn_limits.max_connections = self.max_connections.max(1);
        opts.conn_limits.max_per_ip = (self.max_connections / 64).max(8);
        opts.insecure = self.insecure;
        opts.tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: self.client_ca,
            }),
            _ => None,
        };
        // Refused here already: one clear error before anything binds.
        opts.check_exposure()?;
        Ok(opts)
    }
}
