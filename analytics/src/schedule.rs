//! The automatic daily rollup, as the collector runs it beside ingest: every `check`, each day
//! that closed (UTC) at least `grace_secs` ago and whose input files differ from those its last
//! rollup read (late data makes a closed day due again) is rolled up.
use std::{path::PathBuf, time::Duration};

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
            let opts = RollupOptions {
                data: self.data.clone(),
                date,
                config: self.config.clone(),
                progress: false,
            };
            match rollup::run(&opts) {
                Ok(s) => {
                    info!(%date, sources = s.sources, scanners = s.scanners, warnings = s.warnings.len(), "automatic rollup done")
                }
                Err(e) => {
                    error!(%date, error = %e, "automatic rollup failed; retried at the next check")
                }
            }
        }
    }
}
