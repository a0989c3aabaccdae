//! Every table of the lake, each declared once (see [`crate::table`]); `docs/lake.md` and
//! `docs/rollup.md` describe them and `tests/docs.rs` checks that they list exactly these
//! columns and types.
//!
//! The collector writes the five ingest tables from sensor batches; the rollup writes the four
//! daily tables from them.
pub mod dos_daily;
pub mod events;
pub mod flows;
pub mod ip_daily;
pub mod lost;
pub mod port_daily;
pub mod sensor_stats;
pub mod series_daily;
pub mod sessions;

use crate::table::Column;

/// The tables the collector writes from sensor batches.
pub const INGEST: [&str; 5] = [
    flows::FlowRow::TABLE,
    events::EventRow::TABLE,
    sensor_stats::StatsRow::TABLE,
    lost::LostRow::TABLE,
    sessions::SessionRow::TABLE,
];

/// The tables the rollup writes, one file per day.
pub const ROLLUP: [&str; 4] = [
    ip_daily::IpRow::TABLE,
    port_daily::PortRow::TABLE,
    dos_daily::DosRow::TABLE,
    series_daily::SeriesRow::TABLE,
];

/// Every table with its built-in columns.
pub const ALL: [(&str, &[Column]); 9] = [
    (flows::FlowRow::TABLE, flows::FlowRow::COLUMNS),
    (events::EventRow::TABLE, events::EventRow::COLUMNS),
    (
        sensor_stats::StatsRow::TABLE,
        sensor_stats::StatsRow::COLUMNS,
    ),
    (lost::LostRow::TABLE, lost::LostRow::COLUMNS),
    (sessions::SessionRow::TABLE, sessions::SessionRow::COLUMNS),
    (ip_daily::IpRow::TABLE, ip_daily::IpRow::COLUMNS),
    (port_daily::PortRow::TABLE, port_daily::PortRow::COLUMNS),
    (dos_daily::DosRow::TABLE, dos_daily::DosRow::COLUMNS),
    (
        series_daily::SeriesRow::TABLE,
        series_daily::SeriesRow::COLUMNS,
    ),
];
