//! The daily rollup: one UTC day of `flows`, `events`, `sessions` and `sensor_stats` → `ip_daily`,
//! `port_daily`, `dos_daily` and `series_daily` in the same hive layout.
//!
//! Stages (one module each): `read` (the day's Parquet files, dictionary strings) → `aggregate`
//! (per-source state, per-port counters, backscatter victims) → `rows` (`classify` rules,
//! payload facts) → enrichment (`crate::enrich`) and user rules (`crate::rules`) → `write`
//! (one `rollup.parquet` per table and day, replaced atomically). The rules are documented in
//! `docs/rollup.md`.
//!
//! A rollup is idempotent: it reads everything the day holds and replaces the day's files, so a
//! re-run after late data gives the new figures and never duplicates. A marker
//! (`_state/rollup/<date>.json`) records which input files it read; the collector re-runs a
//! closed day by itself when they change (`due_dates`).
pub mod aggregate;
pub mod classify;
pub mod config;
pub mod payload;
pub mod read;
pub mod rows;
pub mod sessions;
pub mod write;

use std::{
    collections::HashMap,
    fs::File,
    net::IpAddr,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::Instant,
};

use chrono::{NaiveDate, Utc};
use scanscope_lake::{
    FileMeta, Lake, LakeError, paths,
    tables::{
        self, events::EventRow, flows::FlowRow, ip_daily::IpRow, sensor_stats::StatsRow,
        sessions::SessionRow,
    },
};
use serde::{Deserialize, Serialize};

use crate::{
    enrich::{self, EnrichError, Enricher, rdns},
    rules::{RuleError, Rules},
};
use config::{RdnsScope, RollupConfig};

/// Errors of a rollup run.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("building {table}: {source}")]
    Build {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Enrich(#[from] EnrichError),
    #[error("no data for {0}: no flows, events or sensor_stats files")]
    NoData(NaiveDate),
    #[error("reading stopped: the aggregation ended early")]
    Cancelled,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollupSummary {
    pub date: String,
    pub input_files: usize,
    pub input_bytes: u64,
    pub flow_rows: u64,
    pub event_rows: u64,
    pub stats_rows: u64,
    pub sources: usize,
    pub scanners: usize,
    pub active_sensors: u64,
    pub ports: usize,
    pub dos_victims: usize,
    pub rdns_answered: usize,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

/// The inputs a rollup read (the marker's content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// `table/file` → size in bytes.
    pub files: Vec<(String, u64)>,
    /// The rollup ran before the day closed: its figures are provisional (the day is due
    /// again once it has closed, whatever its inputs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

impl Inputs {
    /// The files of `table`.
    fn of(&self, table: &str, day: NaiveDate) -> Vec<FileMeta> {
        self.files
            .iter()
            .filter_map(|(name, size)| {
                let (t, file) = name.split_once('/')?;
                (t == table).then(|| FileMeta {
                    path: paths::day_dir(t, day).join(file),
                    size: *size,
                    version: None,
                })
            })
            .collect()
    }
}

/// The input tables of a rollup.
pub const INPUT_TABLES: [&str; 4] = [
    FlowRow::TABLE,
    EventRow::TABLE,
    StatsRow::TABLE,
    SessionRow::TABLE,
];

/// What the day's input files are now.
pub fn current_inputs(lake: &Lake, day: NaiveDate) -> Result<Inputs, RollupError> {
    let mut files = Vec::new();
    for t in INPUT_TABLES {
        for f in lake.day_files(t, day)? {
            files.push((format!("{t}/{}", f.name()), f.size));
        }
    }
    Ok(Inputs {
        files,
        provisional: false,
    })
}

/// Whether `day` has any input files.
pub fn has_inputs(root: &Path, day: NaiveDate) -> Result<bool, RollupError> {
    let lake = Lake::local(root)?;
    Ok(!current_inputs(&lake, day)?.files.is_empty())
}

/// When `day` ends (UTC), in seconds since the epoch.
fn day_end(day: NaiveDate) -> i64 {
    day.succ_opt()
        .and_then(|n| n.and_hms_opt(0, 0, 0))
        .map_or(i64::MAX, |t| t.and_utc().timestamp())
}

/// Whether the figures of `day`'s rollup are provisional: the day has not closed yet, or its
/// last rollup ran before it closed.
pub fn is_provisional(root: &Path, day: NaiveDate) -> bool {
    day_end(day) > Utc::now().timestamp() || last_inputs(root, day).is_some_and(|i| i.provisional)
}

fn marker_path(root: &Path, day: NaiveDate) -> PathBuf {
    root.join("_state")
        .join("rollup")
        .join(format!("{}.json", day.format("%Y-%m-%d")))
}

/// The inputs the last rollup of `day` read, if any.
pub fn last_inputs(root: &Path, day: NaiveDate) -> Option<Inputs> {
    let bytes = std::fs::read(marker_path(root, day)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Days with input data that closed at least `grace_secs` ago and whose inputs changed since
/// their last rollup (or never had one), oldest first.
pub fn due_dates(root: &Path, grace_secs: u64) -> Result<Vec<NaiveDate>, RollupError> {
    let lake = Lake::local(root)?;
    let now = Utc::now().timestamp();
    let mut days = std::collections::BTreeSet::new();
    for t in INPUT_TABLES {
        days.extend(lake.days(t)?);
    }
    let mut out = Vec::new();
    for d in days {
        if day_end(d).saturating_add(grace_secs as i64) > now {
            continue;
        }
        let cur = current_inputs(&lake, d)?;
        if !cur.files.is_empty() && last_inputs(root, d).as_ref() != Some(&cur) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Holds `_state/rollup.lock` (one rollup at a time per lake, CLI and collector alike).
#[derive(Debug)]
struct RollupLock {
    _file: File,
}

fn lock(root: &Path) -> Result<RollupLock, RollupError> {
    let dir = root.join("_state");
    let io = |source, path: &Path| RollupError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(e, &dir))?;
    let path = dir.join("rollup.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io(e, &path))?;
    // SAFETY: flock on a valid, owned descriptor; blocks until the other rollup ends.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(io(std::io::Error::last_os_error(), &path));
    }
    Ok(RollupLock { _file: file })
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RollupOptions {
    /// The data directory: the lake, and its `_state/` (lock, markers, rDNS cache).
    pub data: PathBuf,
    pub date: NaiveDate,
    pub config: RollupConfig,
    /// Show a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

/// Runs the rollup of one day: read → aggregate → rows → reverse DNS → enrichment and user
/// rules → derived tables → write → marker.
pub fn run(opts: &RollupOptions) -> Result<RollupSummary, RollupError> {
    let started = Instant::now();
    let root = &opts.data;
    let cfg = &opts.config;
    let mut rules = Rules::compile(&cfg.tag, &cfg.field)?;
    let lake = Lake::local(root)?;
    let _lock = lock(root)?;
    lake.remove_unfinished(&tables::ROLLUP)?;
    let mut inputs = current_inputs(&lake, opts.date)?;
    inputs.provisional = day_end(opts.date) > Utc::now().timestamp();
    if inputs.files.is_empty() {
        return Err(RollupError::NoData(opts.date));
    }
    let enricher = Enricher::load(&cfg.enrich);
    let mut summary = RollupSummary {
        date: opts.date.to_string(),
        input_files: inputs.files.len(),
        input_bytes: inputs.files.iter().map(|f| f.1).sum(),
        warnings: enricher.warnings.clone(),
        ..RollupSummary::default()
    };

    let mut agg = read_day(&lake, opts, &inputs, summary.input_bytes)?;
    summary.flow_rows = agg.flow_rows;
    summary.event_rows = agg.event_rows;
    summary.stats_rows = agg.stats_rows;

    // Rows: classify every source.
    agg.share_sensor_names();
    let active = agg.active_sensor_count();
    let mut states = std::mem::take(&mut agg.ips);
    let mut rows: Vec<IpRow> = states
        .iter_mut()
        .map(|s| rows::ip_row(&agg, s, cfg, active))
        .collect();

    let names = reverse_dns(root, cfg, &rows, &mut summary);
    for r in &mut rows {
        enrich::apply(r, &enricher, &names);
        rules.apply(r);
    }
    for (name, n, first) in &rules.failures {
        summary.warnings.push(format!(
            "rule {name:?} failed on {n} rows (value null / tag not set); first: {first}"
        ));
    }
    agg.ips = states;
    let series = rows::series_rows(&agg, &rows);
    let ports = rows::port_rows(&agg, &rows);
    let dos = rows::dos_rows(&agg, cfg);
    rows.sort_by_cached_key(|r| (r.src_ip.parse::<IpAddr>().ok(), r.src_ip.clone()));
    summary.sources = rows.len();
    summary.scanners = rows.iter().filter(|r| r.is_scanner).count();
    summary.active_sensors = active;
    summary.ports = ports.len();
    summary.dos_victims = dos.len();

    // Write, then the marker.
    write::write_ip_daily(&lake, opts.date, &rows, &rules.fields())?;
    write::write_small_tables(&lake, opts.date, &ports, &dos, &series)?;
    write_marker(root, opts.date, &inputs)?;
    summary.seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        date = %opts.date,
        sources = summary.sources,
        scanners = summary.scanners,
        flow_rows = summary.flow_rows,
        seconds = summary.seconds,
        "rollup written"
    );
    Ok(summary)
}

/// Read and aggregate stages: every input file of the day into the day's state.
fn read_day(
    lake: &Lake,
    opts: &RollupOptions,
    inputs: &Inputs,
    input_bytes: u64,
) -> Result<aggregate::DayAgg, RollupError> {
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(input_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "rollup {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {elapsed} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(opts.date.to_string());
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let day = opts.date;
    let mut agg = aggregate::DayAgg::new(day);
    let mut flows = aggregate::FlowScratch::default();
    read::read_pipelined(
        lake,
        inputs.of(FlowRow::TABLE, day),
        &aggregate::FLOW_COLUMNS,
        |p, b| agg.add_flows_batch(b, p, &mut flows),
        |n| bar.inc(n),
    )?;
    // Sessions before events: the two-phase rule checks each fingerprinted event against the
    // source's session times.
    read::read_pipelined(
        lake,
        inputs.of(SessionRow::TABLE, day),
        &sessions::SESSION_COLUMNS,
        |p, b| agg.add_sessions_batch(b, p),
        |n| bar.inc(n),
    )?;
    agg.sort_session_times();
    let mut events = aggregate::EventScratch::default();
    read::read_pipelined(
        lake,
        inputs.of(EventRow::TABLE, day),
        &aggregate::EVENT_COLUMNS,
        |p, b| agg.add_events_batch(b, p, &mut events),
        |n| bar.inc(n),
    )?;
    let mut ids = Vec::new();
    read::read_pipelined(
        lake,
        inputs.of(StatsRow::TABLE, day),
        &aggregate::STATS_COLUMNS,
        |p, b| agg.add_stats_batch(b, p, &mut ids),
        |n| bar.inc(n),
    )?;
    bar.finish_and_clear();
    Ok(agg)
}

/// Reverse DNS stage (when configured): PTR names of the scanners (or every source), busiest
/// first. A failure is a warning and null names, never a failed rollup.
fn reverse_dns(
    root: &Path,
    cfg: &RollupConfig,
    rows: &[IpRow],
    summary: &mut RollupSummary,
) -> HashMap<IpAddr, String> {
    if !cfg.rdns.enabled {
        return HashMap::new();
    }
    let mut ips: Vec<(u64, IpAddr)> = rows
        .iter()
        .filter(|r| cfg.rdns.scope == RdnsScope::All || r.is_scanner)
        .filter_map(|r| r.src_ip.parse().ok().map(|ip| (r.packets, ip)))
        .collect();
    ips.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let ips: Vec<IpAddr> = ips.into_iter().map(|x| x.1).collect();
    match rdns::lookup_all(&cfg.rdns, &root.join("_state/rdns_cache.json"), &ips) {
        Ok((names, st)) => {
            summary.rdns_answered = names.len();
            if st.failed > 0 || st.skipped_limit > 0 {
                summary.warnings.push(format!(
                    "reverse DNS: {} queries failed or timed out, {} sources over rdns.max_lookups",
                    st.failed, st.skipped_limit
                ));
            }
            names
        }
        Err(e) => {
            summary
                .warnings
                .push(format!("{e}; rdns is null for this run"));
            HashMap::new()
        }
    }
}

/// Records which inputs this rollup read (atomically: temp file, rename).
fn write_marker(root: &Path, day: NaiveDate, inputs: &Inputs) -> Result<(), RollupError> {
    let marker = marker_path(root, day);
    let io = |source| RollupError::Io {
        path: marker.clone(),
        source,
    };
    std::fs::create_dir_all(marker.parent().expect("marker has a parent")).map_err(io)?;
    let tmp = marker.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(inputs).unwrap_or_default()).map_err(io)?;
    std::fs::rename(&tmp, &marker).map_err(io)
}
