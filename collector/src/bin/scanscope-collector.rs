//! `scanscope-collector`: thin over the library — parse, set up logging, run.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use scanscope_collector::{
    auth::TlsFiles,
    report::{self, Query, ReportOptions},
    rollup::{self, RollupOptions, config::RollupConfig},
    server::{self, AutoRollup, ServeOptions},
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
    /// Build a day's ip_daily, port_daily, dos_daily and series_daily tables.
    Rollup(RollupArgs),
    /// Print a day's report from its rollup (the day, one source, or one port).
    Report(ReportArgs),
}

/// Rollup configuration flags shared by `serve` and `rollup`.
#[derive(clap::Args, Debug)]
struct RollupConfigArgs {
    /// Rollup configuration (TOML: thresholds, enrichment files, rDNS, user rules).
    #[arg(long = "rollup-config", env = "SCANSCOPE_ROLLUP_CONFIG")]
    config: Option<PathBuf>,
    /// Organisation lists directory (internet-scanners layout); replaces the shipped lists.
    #[arg(long, env = "SCANSCOPE_ORGS_DIR")]
    orgs_dir: Option<PathBuf>,
    /// Tor exit list (exit-addresses format or one address per line).
    #[arg(long, env = "SCANSCOPE_TOR_EXIT_LIST")]
    tor_exit_list: Option<PathBuf>,
    /// MMDB file with country and/or ASN data (repeatable).
    #[arg(long)]
    mmdb: Vec<PathBuf>,
    /// Turn reverse DNS on, through this name server (IP:PORT, repeatable).
    #[arg(long)]
    rdns_server: Vec<SocketAddr>,
}

impl RollupConfigArgs {
    fn load(&self) -> anyhow::Result<RollupConfig> {
        let mut c = match &self.config {
            Some(p) => RollupConfig::load(p)?,
            None => RollupConfig::default(),
        };
        if let Some(d) = &self.orgs_dir {
            c.enrich.orgs_dir = Some(d.clone());
        }
        if let Some(t) = &self.tor_exit_list {
            c.enrich.tor_exit_list = Some(t.clone());
        }
        if !self.mmdb.is_empty() {
            c.enrich.mmdb = self.mmdb.clone();
        }
        if !self.rdns_server.is_empty() {
            c.rdns.enabled = true;
            c.rdns.servers = self.rdns_server.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

#[derive(clap::Args, Debug)]
struct RollupArgs {
    /// Lake root.
    #[arg(long, env = "SCANSCOPE_DATA")]
    data: PathBuf,
    /// UTC day to roll up (default: yesterday).
    #[arg(long)]
    date: Option<NaiveDate>,
    #[command(flatten)]
    config: RollupConfigArgs,
    /// Print the run's summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// Lake root.
    #[arg(long, env = "SCANSCOPE_DATA")]
    data: PathBuf,
    /// UTC day (default: yesterday).
    #[arg(long)]
    date: Option<NaiveDate>,
    /// One source's day: ports, kinds, tools, tags, enrichment, payload summaries.
    #[arg(long, conflicts_with = "port")]
    ip: Option<std::net::IpAddr>,
    /// One port: its figures and the ports its sources also tried.
    #[arg(long)]
    port: Option<u16>,
    /// Rows in top lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Scan breadth from which a scanner counts as wide.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=10))]
    wide_breadth: u8,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn yesterday() -> NaiveDate {
    chrono::Utc::now()
        .date_naive()
        .pred_opt()
        .expect("a day before today")
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
    /// Do not roll up closed days automatically.
    #[arg(long)]
    no_auto_rollup: bool,
    /// Seconds after a UTC day closes before it is rolled up (late data re-runs it).
    #[arg(long, env = "SCANSCOPE_ROLLUP_GRACE_SECS", default_value_t = 3600)]
    rollup_grace_secs: u64,
    /// Seconds between checks for days to roll up.
    #[arg(long, default_value_t = 300.0)]
    rollup_check_secs: f64,
    #[command(flatten)]
    rollup: RollupConfigArgs,
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
            if !a.no_auto_rollup {
                opts.rollup = Some(AutoRollup {
                    config: a.rollup.load()?,
                    grace_secs: a.rollup_grace_secs,
                    check_secs: a.rollup_check_secs,
                });
            }
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
        Cmd::Rollup(a) => {
            let opts = RollupOptions {
                data: a.data,
                date: a.date.unwrap_or_else(yesterday),
                config: a.config.load()?,
                progress: true,
            };
            let s = rollup::run(&opts)?;
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "rollup {}: {} sources ({} scanners), {} ports, {} backscatter sources, {} active sensors; {} flow rows, {} event rows in {:.2} s",
                    s.date,
                    s.sources,
                    s.scanners,
                    s.ports,
                    s.dos_victims,
                    s.active_sensors,
                    s.flow_rows,
                    s.event_rows,
                    s.seconds
                );
            }
            Ok(())
        }
        Cmd::Report(a) => {
            let q = match (a.ip, a.port) {
                (Some(ip), _) => Query::Ip(ip.to_string()),
                (None, Some(p)) => Query::Port(p),
                _ => Query::Day,
            };
            let opts = ReportOptions {
                top: a.top,
                wide_breadth: a.wide_breadth,
            };
            let v = report::build(&a.data, a.date.unwrap_or_else(yesterday), &q, &opts)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", report::render_text(&q, &v));
            }
            Ok(())
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
