//! The command line of `scanscope-sensor`, parsed by clap and turned into validated
//! [`AgentOptions`]: the binary only runs them.
use std::{path::PathBuf, time::Duration};

use crate::{
    agent::{self, AgentError, AgentOptions},
    respond::RespondConfig,
    uplink::{ClientTls, UplinkOptions},
};

/// Sees every inbound TCP SYN, UDP and ICMP hit on every port (XDP), counts exactly and samples
/// full-header events.
#[derive(clap::Parser, Debug)]
#[command(name = "scanscope-sensor", version)]
pub struct SensorArgs {
    /// Interface to attach to (repeatable).
    #[arg(
        long = "iface",
        required = true,
        env = "SCANSCOPE_IFACE",
        value_delimiter = ','
    )]
    pub ifaces: Vec<String>,
    /// Write JSON lines here (`-` for standard output).
    #[arg(long, env = "SCANSCOPE_JSONL")]
    pub jsonl: Option<PathBuf>,
    /// Sensor name in every record (default: host name).
    #[arg(long, env = "SCANSCOPE_SENSOR_ID")]
    pub sensor_id: Option<String>,
    /// Seconds per counting interval.
    #[arg(long, default_value_t = 60.0, env = "SCANSCOPE_INTERVAL_SECS")]
    pub interval_secs: f64,
    /// Configuration file (TOML); SIGHUP re-reads it.
    #[arg(long, env = "SCANSCOPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Collector URL, http://HOST:PORT or https://… (repeatable: failover in the order given).
    #[arg(long = "collector", env = "SCANSCOPE_COLLECTOR", value_delimiter = ',')]
    pub collectors: Vec<String>,
    /// Spool directory for batches the collector has not acknowledged.
    #[arg(
        long,
        env = "SCANSCOPE_SPOOL_DIR",
        default_value = "/var/lib/scanscope/spool"
    )]
    pub spool_dir: PathBuf,
    /// Spool size limit in bytes; beyond it the oldest batches are dropped (and reported).
    #[arg(long, env = "SCANSCOPE_SPOOL_MAX_BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,
    /// File holding the bearer token sent to the collector.
    #[arg(long, env = "SCANSCOPE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) the collector's certificate must chain to (https:// URLs).
    #[arg(long, env = "SCANSCOPE_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, env = "SCANSCOPE_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, env = "SCANSCOPE_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Name to verify in the collector's certificate (default: the URL's host).
    #[arg(long, env = "SCANSCOPE_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
    /// Send the bearer token over plain http:// (a closed network only).
    #[arg(long)]
    pub insecure: bool,
    /// Seconds to wait at shutdown for the collector to acknowledge what is queued.
    #[arg(long, env = "SCANSCOPE_SHUTDOWN_GRACE_SECS", default_value_t = 5.0)]
    pub shutdown_grace_secs: f64,
    /// Answer scanners on every TCP port of the sensor's addresses and record their sessions
    /// (Linux ≥ 5.9). Default: dark mode (count only).
    #[arg(long, env = "SCANSCOPE_RESPOND")]
    pub respond: bool,
    /// The responder's settings (TOML: addresses, pass_ports, caps); implies --respond.
    #[arg(long, env = "SCANSCOPE_RESPOND_CONFIG")]
    pub respond_config: Option<PathBuf>,
    /// Serve the agent's metrics (Prometheus text, `GET /metrics`) on this address, e.g.
    /// 127.0.0.1:9108. Open to whoever reaches it: keep it on loopback or a management network.
    #[arg(long, env = "SCANSCOPE_METRICS")]
    pub metrics: Option<std::net::SocketAddr>,
}

impl SensorArgs {
    /// Checks the flags, reads the token file, and gives the options the agent runs with.
    pub fn into_options(self) -> Result<AgentOptions, AgentError> {
        if !(self.interval_secs >= 0.1 && self.interval_secs <= 86_400.0) {
            return Err(AgentError::OutOfRange {
                flag: "interval-secs",
                min: 0.1,
                max: 86_400.0,
            });
        }
        if !(0.0..=3600.0).contains(&self.shutdown_grace_secs) {
            return Err(AgentError::OutOfRange {
                flag: "shutdown-grace-secs",
                min: 0.0,
                max: 3600.0,
            });
        }
        let sensor_id = self.sensor_id.unwrap_or_else(agent::default_sensor_id);
        if !scanscope_common::valid_sensor_id(&sensor_id) {
            return Err(AgentError::Uplink(crate::uplink::UplinkError::BadSensorId(
                sensor_id,
            )));
        }
        let uplink = if self.collectors.is_empty() {
            None
        } else {
            let token = match &self.token_file {
                Some(p) => Some(read_token(p)?),
                None => None,
            };
            if token.is_some()
                && !self.insecure
                && let Some(u) = self.collectors.iter().find(|u| !u.starts_with("https://"))
            {
                return Err(crate::uplink::UplinkError::PlaintextToken(u.clone()).into());
            }
            let mut u = UplinkOptions::new(self.collectors, sensor_id.clone(), self.spool_dir);
            u.spool_max_bytes = self.spool_max_bytes;
            u.token = token;
            u.insecure = self.insecure;
            u.tls = ClientTls {
                ca: self.ca,
                cert: self.client_cert,
                key: self.client_key,
                domain: self.tls_domain,
            };
            Some(u)
        };
        // `--respond-config FILE` first, then a `[respond]` table in `--config FILE`, then the
        // defaults for a bare `--respond`.
        let in_config = match (&self.respond_config, &self.config) {
            (None, Some(p)) => std::fs::read_to_string(p)
                .ok()
                .and_then(|t| crate::respond::config::respond_table(&t))
                .map(|table| (p.clone(), table)),
            _ => None,
        };
        let (respond, respond_path) = match (&self.respond_config, in_config, self.respond) {
            (Some(p), _, _) => (Some(RespondConfig::from_file(p)?), Some(p.clone())),
            (None, Some((p, table)), _) => (Some(RespondConfig::from_table(table)?), Some(p)),
            (None, None, true) => (Some(RespondConfig::default()), None),
            (None, None, false) => (None, None),
        };
        Ok(AgentOptions {
            ifaces: self.ifaces,
            jsonl: self.jsonl,
            sensor_id,
            interval: Duration::from_secs_f64(self.interval_secs),
            config_path: self.config,
            uplink,
            shutdown_grace: Duration::from_secs_f64(self.shutdown_grace_secs),
            respond,
            respond_config_path: respond_path,
            respond_child: None,
            metrics: self.metrics,
        })
    }
}

/// The bearer token in a token file (surrounding white space removed; empty is an error).
fn read_token(p: &std::path::Path) -> Result<String, AgentError> {
    let t = std::fs::read_to_string(p).map_err(|source| AgentError::TokenFile {
        path: p.to_path_buf(),
        source,
    })?;
    let t = t.trim();
    if t.is_empty() {
        return Err(AgentError::EmptyTokenFile(p.to_path_buf()));
    }
    Ok(t.to_string())
}
