//! Process plumbing shared by scanscope's binaries (`scanscope-sensor`, `scanscope-collector`):
//! logging set-up and the shutdown signal. Later: metrics.
//!
//! ```no_run
//! scanscope_telemetry::init_logging();
//! # async fn run() {
//! scanscope_telemetry::shutdown_signal().await; // SIGINT or SIGTERM
//! # }
//! ```
use std::io::IsTerminal;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); colours only when stderr is a
/// terminal, so journald and log files get plain text.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Completes on SIGINT or SIGTERM (never, if the handlers cannot be installed).
pub async fn shutdown_signal() {
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
