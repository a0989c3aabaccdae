//! The automatic daily rollup, as the collector runs it beside ingest: every `check`, each day
//! that closed (UTC) at least `grace_secs` ago and whose input files differ from those its last
//! rollup read (late data makes a closed day due again) is rolled up. Every `provisional_every`, the open day is rolled up too (figures marked
//! provisional until the day's final rollup), so the console can show today before it closes.
use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tracing::{error, info};

use crate::rollup::{self, RollupOptions, config::RollupConfig};

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
            self.run_one(date, "automatic rollup");
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
                    Ok(true) => self.run_one(today, "provisional rollup"),
                    Ok(false) => {}
                    Err(e) => error!(error = %e, "looking for today's inputs"),
                }
            }
        }
    }

    fn run_one(&self, date: chrono::NaiveDate, what: &'static str) {
        let opts = RollupOptions {
            data: self.data.clone(),
            date,
            config: self.config.clone(),
            progress: false,
        };
        match rollup::run(&opts) {
            Ok(s) => {
                info!(%date, sources = s.sources, scanners = s.scanners, warnings = s.warnings.len(), "{what} done")
            }
            Err(e) => {
                error!(%date, error = %e, "{what} failed; retried at the next check")
            }
        }
    }
}
