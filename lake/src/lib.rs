//! The scanscope lake: the tables (each declared once, [`tables`]), where their files are
//! ([`paths`]), and the one storage seam every writer and reader goes through ([`storage`]:
//! an `object_store` backend, the local file system by default, with atomic publication).
//!
//! The collector's ingest writes `flows`, `events`, `sensor_stats` and `lost`; the analytics
//! rollup reads them and writes `ip_daily`, `port_daily`, `dos_daily` and `series_daily`; the
//! reports read those. They meet only here. Schemas and meanings: `docs/lake.md`,
//! `docs/rollup.md`.
//!
//! ```
//! # fn main() -> Result<(), scanscope_lake::LakeError> {
//! use scanscope_lake::{Lake, paths, tables::series_daily::{SeriesBuilder, SeriesRow}};
//! let dir = tempfile::tempdir().unwrap();
//! let lake = Lake::local(dir.path())?;
//! let mut b = SeriesBuilder::default();
//! b.push(&SeriesRow { bucket_start: 0, packets: 3, sources: 1, ports: 2, scanners: 0 });
//! let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
//! let path = paths::rollup_file(SeriesRow::TABLE, day);
//! lake.write_batch(&path, SeriesRow::TABLE, &b.finish().unwrap())?;
//! assert_eq!(lake.read_all(&path)?.unwrap().num_rows(), 1);
//! # Ok(()) }
//! ```
pub mod error;
pub mod paths;
pub mod storage;
pub mod table;
pub mod tables;

pub use error::LakeError;
pub use storage::{FileMeta, Footer, Lake, ROLLUP_ROW_GROUP_ROWS, ReadOptions, Written};
