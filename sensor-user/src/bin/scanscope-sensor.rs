//! `scanscope-sensor`: the sensor agent. Thin: parse flags, set up logging, run the library.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use sensor_user::agent::{self, AgentOptions};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if !(cli.interval_secs >= 0.1 && cli.interval_secs <= 86_400.0) {
        eprintln!("error: --interval-secs must be between 0.1 and 86400");
        return ExitCode::from(2);
    }
    let opts = AgentOptions {
        ifaces: cli.ifaces,
        jsonl: cli.jsonl,
        sensor_id: cli.sensor_id.unwrap_or_else(agent::default_sensor_id),
        interval: Duration::from_secs_f64(cli.interval_secs),
        config_path: cli.config,
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
