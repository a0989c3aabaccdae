//! The command lines of `scanscope-collector rollup` and `report`, and the automatic-rollup
//! flags of `serve`, parsed by clap and turned into validated options: the binary only
//! composes them.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chrono::NaiveDate;

use crate::{
    report::{Query, ReportOptions},
    rollup::{
        RollupOptions,
        config::{ConfigError, RollupConfig},
    },
    schedule::AutoRollup,
};

/// Rollup configuration flags shared by `serve` and `rollup`.
#[derive(clap::Args, Debug, Clone)]
pub struct RollupConfigArgs {
    /// Rollup configuration (TOML: thresholds, enrichment files, rDNS, user rules).
    #[arg(long = "rollup-config", env = "SCANSCOPE_ROLLUP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Organisation lists directory (internet-scanners layout); replaces the shipped lists.
    #[arg(long, env = "SCANSCOPE_ORGS_DIR")]
    pub orgs_dir: Option<PathBuf>,
    /// Tor exit list (exit-addresses format or one address per line).
    #[arg(long, env = "SCANSCOPE_TOR_EXIT_LIST")]
    pub tor_exit_list: Option<PathBuf>,
    /// MMDB file with country and/or ASN data (repeatable).
    #[arg(long)]
    pub mmdb: Vec<PathBuf>,
    /// Turn reverse DNS on, through this name server (IP:PORT, repeatable).
    #[arg(long)]
    pub rdns_server: Vec<SocketAddr>,
}

impl RollupConfigArgs {
    /// The configuration file (or the defaults) with the flags applied, validated.
    pub fn load(&self) -> Result<RollupConfig, ConfigError> {
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

/// Flags of `serve` for the automatic daily rollup.
#[derive(clap::Args, Debug, Clone)]
pub struct AutoRollupArgs {
    /// Do not roll up closed days automatically.
    #[arg(long)]
    pub no_auto_rollup: bool,
    /// Seconds after a UTC day closes before it is rolled up (late data re-runs it).
    #[arg(long, env = "SCANSCOPE_ROLLUP_GRACE_SECS", default_value_t = 3600)]
    pub rollup_grace_secs: u64,
    /// Seconds between checks for days to roll up.
    #[arg(long, default_value_t = 300.0)]
    pub rollup_check_secs: f64,
    /// Seconds between provisional rollups of the open (UTC) day, so the console shows today
    /// before it closes (checked at each rollup check); 0 turns them off.
    #[arg(long, env = "SCANSCOPE_PROVISIONAL_SECS", default_value_t = 300.0)]
    pub provisional_rollup_secs: f64,
    #[command(flatten)]
    pub rollup: RollupConfigArgs,
}

impl AutoRollupArgs {
    /// The automatic rollup of `data`, unless it is turned off.
    pub fn into_auto(self, data: PathBuf) -> Result<Option<AutoRollup>, ConfigError> {
        if self.no_auto_rollup {
            return Ok(None);
        }
        crate::schedule::register_metrics();
        Ok(Some(AutoRollup {
            data,
            config: self.rollup.load()?,
            grace_secs: self.rollup_grace_secs,
            check: Duration::from_secs_f64(self.rollup_check_secs.clamp(0.05, 86_400.0)),
            provisional_every: (self.provisional_rollup_secs > 0.0)
                .then(|| Duration::from_secs_f64(self.provisional_rollup_secs.min(86_400.0))),
            last_provisional: Default::default(),
        }))
    }
}

fn yesterday() -> NaiveDate {
    chrono::Utc::now()
        .date_naive()
        .pred_opt()
        .expect("a day before today")
}

/// `scanscope-collector rollup`.
#[derive(clap::Args, Debug, Clone)]
pub struct RollupArgs {
    /// Lake root.
    #[arg(long, env = "SCANSCOPE_DATA")]
    pub data: PathBuf,
    /// UTC day to roll up (default: yesterday).
    #[arg(long)]
    pub date: Option<NaiveDate>,
    #[command(flatten)]
    pub config: RollupConfigArgs,
    /// Print the run's summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl RollupArgs {
    /// The options of the run (a progress bar when stderr is a terminal).
    pub fn options(&self) -> Result<RollupOptions, ConfigError> {
        Ok(RollupOptions {
            data: self.data.clone(),
            date: self.date.unwrap_or_else(yesterday),
            config: self.config.load()?,
            progress: true,
        })
    }
}

/// `scanscope-collector report`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Lake root.
    #[arg(long, env = "SCANSCOPE_DATA")]
    pub data: PathBuf,
    /// UTC day (default: yesterday).
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// One source's day: ports, kinds, tools, tags, enrichment, payload summaries.
    #[arg(long, conflicts_with = "port")]
    pub ip: Option<std::net::IpAddr>,
    /// One port: its figures and the ports its sources also tried.
    #[arg(long, conflicts_with = "tor")]
    pub port: Option<u16>,
    /// Traffic from the day's Tor exit nodes (rolled up with `--tor-exit-list`): per node,
    /// flows, packets, bytes, destinations and ports, from sensors and NetFlow alike.
    #[arg(long, conflicts_with = "ip")]
    pub tor: bool,
    /// Rows in top lists.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Scan breadth from which a scanner counts as wide.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=10))]
    pub wide_breadth: u8,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

impl ReportArgs {
    /// The day, the query and its options.
    pub fn query(&self) -> (NaiveDate, Query, ReportOptions) {
        let q = match (self.ip, self.port, self.tor) {
            (Some(ip), _, _) => Query::Ip(ip.to_string()),
            (None, Some(p), _) => Query::Port(p),
            (None, None, true) => Query::Tor,
            _ => Query::Day,
        };
        let opts = ReportOptions {
            top: self.top,
            wide_breadth: self.wide_breadth,
        };
        (self.date.unwrap_or_else(yesterday), q, opts)
    }
}
