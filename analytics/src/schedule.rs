//! The automatic daily rollup, as the collector runs it beside ingest: every `check`, each day
//! that closed (UTC) at least `grace_secs` ago and whose input files differ from those its last
//! rollup read (late data makes a closed day due again) is rolled up. Every `provisional_every`, the open day is rolled up too (figures marked
//! provisional until the day's final rollup), so the console can show today before it closes.
use std::{
    path::PathBuf,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use scanscope_telemetry::metrics::{self, Counter, Family};
use tracing::{error, info};

use crate::rollup::{self, RollupOptions, config::RollupConfig};

type Labels = Vec<(&'static str, &'static str)>;

/// Seconds per rollup run by the collector, final and provisional.
static ROLLUP_SECONDS: LazyLock<metrics::SecondsFamily<Labels>> = LazyLock::new(|| {
    metrics::register(
        "scanscope_rollup_seconds",
        "Seconds per rollup of a day, by kind (final, provisional)",
        metrics::seconds_family(),
    )
});

/// Rollup runs by kind and result.
static ROLLUP_RUNS: LazyLock<Family<Labels, Counter>> = LazyLock::new(|| {
    metrics::register(
        "scanscope_rollup_runs",
        "Rollups run by the collector, by kind (final, provisional) and result (ok, failed)",
        Family::default(),
    )
});

/// When and how the collector rolls up days by itself.
#[derive(Debug, Clone)]
pub struct AutoRollup {
    pub data: PathBuf,
    pub config: RollupConfig,
    pub grace_secs: u64,
    /// Time between checks for due days.
    pub check: Duration,
    /// Time between provisional rollups of the open day (None: none).
    pub provisional_every: Option<Duration>,
    /// When the open day was last rolled up.
    pub last_provisional: Arc<Mutex<Option<Instant>>>,
}

/// Registers the rollup's metrics (listed from the first scrape on).
pub fn register_metrics() {
    LazyLock::force(&ROLLUP_SECONDS);
    LazyLock::force(&ROLLUP_RUNS);
}

impl AutoRollup {
    /// Rolls up every due day; failures are logged and retried at the next check.
    pub fn run_due(&self) {
        let due = match rollup::due_dates(&self.data, self.grace_secs) {
            Ok(d) => d,
            Err(e) => {
                error!(error = %e, "looking for days to roll up");
                return;
            }
        };
        for date in due {
            self.run_one(date, "final");
        }
        if let Some(every) = self.provisional_every {
            let mut last = self
                .last_provisional
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= every) {
                *last = Some(Instant::now());
                drop(last);
                let today = chrono::Utc::now().date_naive();
                match rollup::has_inputs(&self.data, today) {
                    Ok(true) => self.run_one(today, "provisional"),
                    Ok(false) => {}
                    Err(e) => error!(error = %e, "looking for today's inputs"),
                }
            }
        }
    }

    /// `kind`: `final` (a closed day) or `provisional` (the open day).
    fn run_one(&self, date: chrono::NaiveDate, kind: &'static str) {
        let opts = RollupOptions {
            data: self.data.clone(),
            date,
            config: self.config.clone(),
            progress: false,
        };
        let started = Instant::now();
        let result = rollup::run(&opts);
        ROLLUP_SECONDS
            .get_or_create(&vec![("kind", kind)])
            .observe(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        ROLLUP_RUNS
            .get_or_create(&vec![("kind", kind), ("result", outcome)])
            .inc();
        match result {
            Ok(s) => {
                info!(%date, kind, sources = s.sources, scanners = s.scanners, warnings = s.warnings.len(), "automatic rollup done")
            }
            Err(e) => {
                error!(%date, kind, error = %e, "automatic rollup failed; retried at the next check")
            }
        }
    }
}
