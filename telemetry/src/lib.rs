//! Process plumbing shared by scanscope's binaries (`scanscope-sensor`, `scanscope-collector`):
//! logging set-up, the shutdown signal, a throttle for log lines peers can trigger, and
//! [`metrics`] (one registry per process, the `/metrics` scrape).
//!
//! ```no_run
//! scanscope_telemetry::init_logging();
//! # async fn run() {
//! scanscope_telemetry::shutdown_signal().await; // SIGINT or SIGTERM
//! # }
//! ```
pub mod metrics;

use std::{
    io::IsTerminal,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

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

/// Completes on SIGINT or SIGTERM (never, if the handlers cannot be installed). Call it inside
/// a runtime: the handlers are installed when it is called, not when the future is polled:
/// a signal that arrives while the caller is still starting up (a collector replaying its
/// write-ahead log) is not the default action (death) but a shutdown once it is awaited.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

/// Lets at most `burst` events a `window` through and counts the rest: for log lines a peer
/// can trigger at will (a flood of refused messages must not flood the log).
///
/// ```
/// use std::time::Duration;
/// static REFUSED: scanscope_telemetry::Throttle =
///     scanscope_telemetry::Throttle::new(Duration::from_secs(10), 20);
/// if let Some(suppressed) = REFUSED.admit() {
///     tracing::warn!(suppressed, "refused a message");
/// }
/// ```
#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    burst: u32,
    state: Mutex<ThrottleState>,
}

#[derive(Debug)]
struct ThrottleState {
    started: Option<Instant>,
    admitted: u32,
    suppressed: u64,
}

impl Throttle {
    /// A throttle admitting `burst` events per `window`.
    pub const fn new(window: Duration, burst: u32) -> Throttle {
        Throttle {
            window,
            burst,
            state: Mutex::new(ThrottleState {
                started: None,
                admitted: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when this event may be logged, `n` being how many were suppressed since the
    /// last one admitted; `None` when it is to be suppressed (and counted).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.started
            .is_none_or(|t| now.duration_since(t) >= self.window)
        {
            s.started = Some(now);
            s.admitted = 0;
        }
        if s.admitted < self.burst {
            s.admitted += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

/// Compares two secrets without an early exit: every byte of the longer input is looked at, so
/// the time does not tell how much of a guessed token was right (ingest's and the console's
/// token checks).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_admits_its_burst_per_window_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        let first: Vec<_> = (0..10).map(|_| t.admit_at(t0)).collect();
        assert_eq!(
            first,
            [
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(t.admit_at(later), Some(7), "the 7 suppressed are reported");
        assert_eq!(t.admit_at(later), Some(0));
    }
}
