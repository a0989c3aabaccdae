//! The console's command-line flags: `scanscope-collector console` (read-only over a lake) and
//! `serve --console ADDR` (beside ingest).
use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

use crate::{
    error::ConsoleError,
    server::{ConsoleOptions, DEFAULT_CACHE_MB, read_token_file},
};

/// How the console is protected and sized (both commands).
#[derive(Args, Debug, Clone)]
pub struct ConsoleFlags {
    /// Access tokens, one per line: required on a non-loopback address.
    #[arg(long, env = "SCANSCOPE_CONSOLE_TOKEN_FILE")]
    pub console_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) of the console.
    #[arg(long, requires = "console_tls_key")]
    pub console_tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of the console.
    #[arg(long, requires = "console_tls_cert")]
    pub console_tls_key: Option<PathBuf>,
    /// Serve the console open on a non-loopback address.
    #[arg(long)]
    pub console_insecure: bool,
    /// MiB of rollup columns the console keeps in memory (about 70 MiB per day of a million
    /// sources searched).
    #[arg(long, default_value_t = DEFAULT_CACHE_MB)]
    pub console_cache_mb: usize,
}

impl ConsoleFlags {
    /// The options of a console on `listen` over `data`.
    pub fn options(
        &self,
        listen: SocketAddr,
        data: PathBuf,
    ) -> Result<ConsoleOptions, ConsoleError> {
        let mut o = ConsoleOptions::new(listen, data);
        if let Some(p) = &self.console_token_file {
            o.tokens = read_token_file(p)?;
        }
        o.tls = self
            .console_tls_cert
            .clone()
            .zip(self.console_tls_key.clone());
        o.insecure = self.console_insecure;
        o.cache_bytes = self.console_cache_mb.max(16) << 20;
        o.check_exposure()?;
        Ok(o)
    }
}

/// `serve --console ADDR`.
#[derive(Args, Debug, Clone)]
pub struct ServeConsoleArgs {
    /// Serve the console (web UI and JSON API) on this address too.
    #[arg(long, env = "SCANSCOPE_CONSOLE")]
    pub console: Option<SocketAddr>,
    #[command(flatten)]
    pub flags: ConsoleFlags,
}

/// `scanscope-collector console`.
#[derive(Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// The data directory (the lake) to read.
    #[arg(long, env = "SCANSCOPE_DATA")]
    pub data: PathBuf,
    /// The address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub flags: ConsoleFlags,
}
