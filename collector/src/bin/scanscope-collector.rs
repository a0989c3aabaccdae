//! `scanscope-collector`: thin over the library — parse, set up logging, run.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use scanscope_collector::{
    auth::TlsFiles,
    server::{self, ServeOptions},
    validate::Limits,
};

/// Receives batches from scanscope sensors and writes a daily Parquet lake.
#[derive(Parser, Debug)]
#[command(name = "scanscope-collector", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the ingest gRPC API and write the lake.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, env = "SCANSCOPE_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Lake root: tables under DIR/<table>/date=YYYY-MM-DD/.
    #[arg(long, env = "SCANSCOPE_DATA")]
    data: PathBuf,
    /// Seconds between Parquet flushes.
    #[arg(long, env = "SCANSCOPE_FLUSH_SECS", default_value_t = 60.0)]
    flush_secs: f64,
    /// Flush early once this many rows wait.
    #[arg(long, env = "SCANSCOPE_FLUSH_ROWS", default_value_t = 2_000_000)]
    flush_rows: usize,
    /// Server certificate (PEM); with --tls-key enables TLS.
    #[arg(long, env = "SCANSCOPE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "SCANSCOPE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA for client certificates (PEM): requires mutual TLS.
    #[arg(long, env = "SCANSCOPE_CLIENT_CA", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// File with accepted bearer tokens, one per line (none: no token needed).
    #[arg(long, env = "SCANSCOPE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Largest accepted batch, bytes.
    #[arg(long, default_value_t = Limits::default().max_batch_bytes)]
    max_batch_bytes: usize,
    /// Most rows in one batch.
    #[arg(long, default_value_t = Limits::default().max_batch_rows)]
    max_batch_rows: usize,
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
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match cli.cmd {
        Cmd::Serve(a) => {
            anyhow::ensure!(
                a.flush_secs >= 0.05 && a.flush_secs <= 86_400.0,
                "--flush-secs must be between 0.05 and 86400"
            );
            let tokens = match &a.token_file {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading token file {}", p.display()))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect(),
                None => Vec::new(),
            };
            if a.token_file.is_some() && tokens.is_empty() {
                anyhow::bail!("the token file holds no token");
            }
            let mut opts = ServeOptions::new(a.listen, a.data);
            opts.flush_secs = a.flush_secs;
            opts.flush_rows = a.flush_rows;
            opts.tokens = tokens;
            opts.limits.max_batch_bytes = a.max_batch_bytes;
            opts.limits.max_batch_rows = a.max_batch_rows;
            opts.tls = a.tls_cert.map(|cert| TlsFiles {
                cert,
                key: a.tls_key.expect("clap requires --tls-key"),
                client_ca: a.client_ca,
            });
            rt.block_on(async {
                let listener = server::bind(opts.listen).await?;
                // Tests and scripts read the bound address (port 0) from this line.
                println!("listening on {}", listener.local_addr()?);
                server::serve(opts, listener, shutdown_signal()).await?;
                anyhow::Ok(())
            })
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
