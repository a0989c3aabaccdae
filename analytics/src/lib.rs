//! Analytics, the collector's second half: reads the lake's ingest tables, rolls each UTC day
//! up into per-source, per-port, DoS-victim and 30-minute tables ([`rollup`]), classifies and
//! enriches every source ([`enrich`], user rules in [`rules`]) and answers reports over the
//! result ([`report`]). It meets ingestion only through the lake's Parquet files.
//!
//! [`schedule`] is the automatic rollup the collector binary wires into `serve`; [`args`] the
//! command lines of `rollup` and `report`. Rules and tables: `docs/rollup.md`.
pub mod args;
pub mod enrich;
pub mod report;
pub mod rollup;
pub mod rules;
pub mod schedule;
