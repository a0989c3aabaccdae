//! The command line of `scanscope-collector serve` (ingest's part), parsed by clap and turned
//! into validated [`ServeOptions`]: the binary only composes it.
use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

use crate::{
    auth::{self, TlsFiles},
    error::CollectorError,
    server::ServeOptions,
    source::netflow::{Direction, NetflowOptions},
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
    /// Receive NetFlow v5/v9 and IPFIX on this UDP address (repeatable; docs/netflow.md).
    #[arg(long, value_name = "ADDR")]
    pub netflow_listen: Vec<SocketAddr>,
    /// One of the operator's own networks (repeatable): a flow from outside to one of them is
    /// inbound. Without any, every flow is taken as inbound.
    #[arg(long, value_name = "CIDR")]
    pub local_net: Vec<ipnet::IpNet>,
    /// Which NetFlow flows to store: `inbound` (the others are counted only) or `all`.
    #[arg(long, value_enum, default_value_t = Direction::Inbound)]
    pub netflow_direction: Direction,
    /// The sensor name of an exporter, `NAME=ADDRESS` (repeatable; default: its address).
    #[arg(long, value_name = "NAME=ADDRESS", value_parser = parse_exporter)]
    pub netflow_exporter: Vec<(IpAddr, String)>,
    /// The sampling rate of flows whose exporter declares none (they are also counted).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub netflow_default_sampling: u32,
}

/// `NAME=ADDRESS` of `--netflow-exporter`.
fn parse_exporter(s: &str) -> Result<(IpAddr, String), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| "expected NAME=ADDRESS".to_string())?;
    if !scanscope_common::valid_sensor_id(name) {
        return Err("NAME must be 1-128 bytes of [A-Za-z0-9._:-]".into());
    }
    let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    Ok((addr, name.to_string()))
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
        opts.netflow = NetflowOptions {
            listen: self.netflow_listen,
            local_nets: self.local_net,
            direction: self.netflow_direction,
            names: self.netflow_exporter,
            default_sampling: self.netflow_default_sampling,
        };
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
