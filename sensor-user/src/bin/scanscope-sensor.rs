//! `scanscope-sensor`: the sensor agent. Thin: parse flags, set up logging, run the library.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use sensor_user::{
    agent::{self, AgentOptions},
    uplink::{ClientTls, UplinkOptions},
};

/// Sees every inbound TCP SYN, UDP and ICMP hit on every port (XDP), counts exactly and samples
/// full-header events.
#[derive(Parser, Debug)]
#[command(name = "scanscope-sensor", version)]
struct Cli {
    /// Interface to attach to (repeatable).
    #[arg(
        long = "iface",
        required = true,
        env = "SCANSCOPE_IFACE",
        value_delimiter = ','
    )]
    ifaces: Vec<String>,
    /// Write JSON lines here (`-` for standard output).
    #[arg(long, env = "SCANSCOPE_JSONL")]
    jsonl: Option<PathBuf>,
    /// Sensor name in every record (default: host name).
    #[arg(long, env = "SCANSCOPE_SENSOR_ID")]
    sensor_id: Option<String>,
    /// Seconds per counting interval.
    #[arg(long, default_value_t = 60.0, env = "SCANSCOPE_INTERVAL_SECS")]
    interval_secs: f64,
    /// Configuration file (TOML); SIGHUP re-reads it.
    #[arg(long, env = "SCANSCOPE_CONFIG")]
    config: Option<PathBuf>,
    /// Collector URL, http://HOST:PORT or https://… (repeatable: failover in the order given).
    #[arg(long = "collector", env = "SCANSCOPE_COLLECTOR", value_delimiter = ',')]
    collectors: Vec<String>,
    /// Spool directory for batches the collector has not acknowledged.
    #[arg(
        long,
        env = "SCANSCOPE_SPOOL_DIR",
        default_value = "/var/lib/scanscope/spool"
    )]
    spool_dir: PathBuf,
    /// Spool size limit in bytes; beyond it the oldest batches are dropped (and reported).
    #[arg(long, env = "SCANSCOPE_SPOOL_MAX_BYTES", default_value_t = 1 << 30)]
    spool_max_bytes: u64,
    /// File holding the bearer token sent to the collector.
    #[arg(long, env = "SCANSCOPE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) the collector's certificate must chain to (https:// URLs).
    #[arg(long, env = "SCANSCOPE_CA")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, env = "SCANSCOPE_CLIENT_CERT", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, env = "SCANSCOPE_CLIENT_KEY", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Name to verify in the collector's certificate (default: the URL's host).
    #[arg(long, env = "SCANSCOPE_TLS_DOMAIN")]
    tls_domain: Option<String>,
    /// Seconds to wait at shutdown for the collector to acknowledge what is queued.
    #[arg(long, env = "SCANSCOPE_SHUTDOWN_GRACE_SECS", default_value_t = 5.0)]
    shutdown_grace_secs: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if !(cli.interval_secs >= 0.1 && cli.interval_secs <= 86_400.0) {
        eprintln!("error: --interval-secs must be between 0.1 and 86400");
        return ExitCode::from(2);
    }
    if !(0.0..=3600.0).contains(&cli.shutdown_grace_secs) {
        eprintln!("error: --shutdown-grace-secs must be between 0 and 3600");
        return ExitCode::from(2);
    }
    let sensor_id = cli.sensor_id.unwrap_or_else(agent::default_sensor_id);
    let uplink = if cli.collectors.is_empty() {
        None
    } else {
        let token = match &cli.token_file {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                Ok(_) => {
                    eprintln!("error: token file {} is empty", p.display());
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("error: reading token file {}: {e}", p.display());
                    return ExitCode::from(2);
                }
            },
            None => None,
        };
        let mut u = UplinkOptions::new(cli.collectors, sensor_id.clone(), cli.spool_dir);
        u.spool_max_bytes = cli.spool_max_bytes;
        u.token = token;
        u.tls = ClientTls {
            ca: cli.ca,
            cert: cli.client_cert,
            key: cli.client_key,
            domain: cli.tls_domain,
        };
        Some(u)
    };
    let opts = AgentOptions {
        ifaces: cli.ifaces,
        jsonl: cli.jsonl,
        sensor_id,
        interval: Duration::from_secs_f64(cli.interval_secs),
        config_path: cli.config,
        uplink,
        shutdown_grace: Duration::from_secs_f64(cli.shutdown_grace_secs),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(agent::run(opts, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
