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
    /// A TOML file of NetFlow settings (`local_nets`, `[[exporter]]` name and address,
    /// `default_sampling`, `direction`; docs/netflow.md), added to the flags above.
    #[arg(long, value_name = "FILE")]
    pub netflow_config: Option<PathBuf>,
    /// Most NetFlow exporters (sender address and port, observation domain) the collector
    /// keeps state for; datagrams of others are counted as refused (UDP sources can be
    /// spoofed).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub netflow_max_exporters: u32,
    /// Take NetFlow only from exporters named by `--netflow-exporter` or the config file;
    /// datagrams of others are counted as refused.
    #[arg(long)]
    pub netflow_named_only: bool,
    /// Receivers per NetFlow listen address, each with its own socket (SO_REUSEPORT) and
    /// task; the kernel keeps each exporter on one (0: one per core, at most 8).
    #[arg(long, default_value_t = 0)]
    pub netflow_receivers: usize,
    /// Decode every NetFlow/IPFIX datagram with the parser, none on the fast path from the
    /// templates' layouts (slower; to tell whether a figure depends on the path).
    #[arg(long)]
    pub netflow_parser_only: bool,
}

/// `--netflow-config`: what the flags say, in a file the operator keeps with the network's
/// description.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NetflowFile {
    #[serde(default)]
    local_nets: Vec<ipnet::IpNet>,
    #[serde(default)]
    exporter: Vec<ExporterName>,
    default_sampling: Option<u32>,
    direction: Option<Direction>,
    named_only: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExporterName {
    name: String,
    address: IpAddr,
}

impl NetflowFile {
    fn read(path: &std::path::Path) -> Result<NetflowFile, CollectorError> {
        let text = std::fs::read_to_string(path).map_err(|source| CollectorError::ReadFile {
            what: "NetFlow configuration",
            path: path.to_path_buf(),
            source,
        })?;
        let f: NetflowFile = toml::from_str(&text)
            .map_err(|e| CollectorError::NetflowConfig(format!("{}: {e}", path.display())))?;
        if let Some(bad) = f
            .exporter
            .iter()
            .find(|e| !scanscope_common::valid_sensor_id(&e.name))
        {
            return Err(CollectorError::NetflowConfig(format!(
                "{}: exporter name {:?} must be 1-128 bytes of [A-Za-z0-9._:-]",
                path.display(),
                bad.name
            )));
        }
        if f.default_sampling == Some(0) {
            return Err(CollectorError::NetflowConfig(format!(
                "{}: default_sampling must be at least 1",
                path.display()
            )));
        }
        Ok(f)
    }
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
        let file = match &self.netflow_config {
            Some(p) => NetflowFile::read(p)?,
            None => NetflowFile::default(),
        };
        let mut names = self.netflow_exporter;
        names.extend(file.exporter.into_iter().map(|e| (e.address, e.name)));
        let mut local_nets = self.local_net;
        local_nets.extend(file.local_nets);
        opts.netflow = NetflowOptions {
            listen: self.netflow_listen,
            local_nets,
            // A flag given on the command line wins over the file.
            direction: file
                .direction
                .filter(|_| self.netflow_direction == Direction::default())
                .unwrap_or(self.netflow_direction),
            names,
            default_sampling: file
                .default_sampling
                .filter(|_| self.netflow_default_sampling == 1)
                .unwrap_or(self.netflow_default_sampling),
            max_exporters: self.netflow_max_exporters as usize,
            named_only: self.netflow_named_only || file.named_only.unwrap_or(false),
            receivers: self.netflow_receivers,
            parser_only: self.netflow_parser_only,
            ..NetflowOptions::default()
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

#[cfg(test)]
mod netflow_file_tests {
    use super::*;

    #[test]
    fn the_netflow_file_adds_networks_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("netflow.toml");
        std::fs::write(
            &p,
            "local_nets = [\"198.51.100.0/24\", \"2001:db8::/32\"]\ndirection = \"all\"\n\
             default_sampling = 10\nnamed_only = true\n[[exporter]]\nname = \"edge-1\"\naddress = \"192.0.2.1\"\n",
        )
        .unwrap();
        let f = NetflowFile::read(&p).unwrap();
        assert_eq!(f.local_nets.len(), 2);
        assert_eq!(f.direction, Some(Direction::All));
        assert_eq!(f.default_sampling, Some(10));
        assert_eq!(f.named_only, Some(true));
        assert_eq!(f.exporter[0].name, "edge-1");
        std::fs::write(
            &p,
            "[[exporter]]\nname = \"bad name\"\naddress = \"192.0.2.1\"\n",
        )
        .unwrap();
        assert!(matches!(
            NetflowFile::read(&p),
            Err(CollectorError::NetflowConfig(_))
        ));
        std::fs::write(&p, "local_net = []\n").unwrap();
        assert!(matches!(
            NetflowFile::read(&p),
            Err(CollectorError::NetflowConfig(_))
        ));
    }
}
