//! The console's view of the lake: which days each table has, and each day's rollup file as
//! one batch, kept in memory (least recently used first out, within a byte budget) until the
//! rollup replaces the file (its version changes).
use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use scanscope_lake::{FileMeta, Lake, ReadOptions, paths};

use crate::error::ConsoleError;

/// Columns read as plain strings: their values are mostly distinct (a dictionary would not
/// save anything).
const PLAIN: &[&str] = &["src_ip", "victim"];

/// A day's table, read.
#[derive(Debug)]
pub struct Day {
    pub date: NaiveDate,
    pub batch: RecordBatch,
}

#[derive(Debug)]
struct Entry {
    version: (u64, Option<String>),
    day: Arc<Day>,
    bytes: usize,
    used: u64,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<(&'static str, NaiveDate), Entry>,
    bytes: usize,
    tick: u64,
}

/// The lake as the console reads it.
#[derive(Debug)]
pub struct Catalog {
    lake: Lake,
    budget: usize,
    cache: Mutex<Cache>,
}

impl Catalog {
    /// `budget`: bytes of decoded rollup batches kept in memory.
    pub fn new(lake: Lake, budget: usize) -> Self {
        Catalog {
            lake,
            budget,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The days `table` has a partition for, within `from..=to`.
    pub fn days(
        &self,
        table: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, ConsoleError> {
        Ok(self.lake.days(table)?.range(from..=to).copied().collect())
    }

    /// Every day `table` has.
    pub fn all_days(&self, table: &str) -> Result<BTreeSet<NaiveDate>, ConsoleError> {
        Ok(self.lake.days(table)?)
    }

    /// The rollup of `table` for `date`, `None` if that day has none.
    pub fn rollup(
        &self,
        table: &'static str,
        date: NaiveDate,
    ) -> Result<Option<Arc<Day>>, ConsoleError> {
        let Some(file) = self.lake.head(&paths::rollup_file(table, date))? else {
            return Ok(None);
        };
        let version = (file.size, file.version.clone());
        {
            let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            c.tick += 1;
            let tick = c.tick;
            if let Some(e) = c.entries.get_mut(&(table, date))
                && e.version == version
            {
                e.used = tick;
                return Ok(Some(e.day.clone()));
            }
        }
        let batch = self.read(table, date, &file, None)?;
        let bytes = batch.get_array_memory_size();
        let day = Arc::new(Day { date, batch });
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.tick += 1;
        let tick = c.tick;
        if let Some(old) = c.entries.insert(
            (table, date),
            Entry {
                version,
                day: day.clone(),
                bytes,
                used: tick,
            },
        ) {
            c.bytes -= old.bytes;
        }
        c.bytes += bytes;
        while c.bytes > self.budget && c.entries.len() > 1 {
            let Some(oldest) = c
                .entries
                .iter()
                .filter(|(k, _)| **k != (table, date))
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(e) = c.entries.remove(&oldest) {
                c.bytes -= e.bytes;
            }
        }
        Ok(Some(day))
    }

    /// The rollups of `table` for the days of `from..=to` that have one, oldest first.
    pub fn rollups(
        &self,
        table: &'static str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Arc<Day>>, ConsoleError> {
        let mut out = Vec::new();
        for d in self.days(table, from, to)? {
            if let Some(day) = self.rollup(table, d)? {
                out.push(day);
            }
        }
        Ok(out)
    }

    /// Every file of an ingest table for `date` (not cached), only `columns`, and only the rows
    /// `keep` selects from each batch.
    pub fn scan(
        &self,
        table: &'static str,
        date: NaiveDate,
        columns: &[&str],
        keep: &dyn Fn(&RecordBatch) -> Vec<bool>,
    ) -> Result<Vec<RecordBatch>, ConsoleError> {
        let mut out = Vec::new();
        for file in self.lake.day_files(table, date)? {
            let b = self.read(table, date, &file, Some(columns))?;
            let mask = arrow::array::BooleanArray::from(keep(&b));
            let b = arrow::compute::filter_record_batch(&b, &mask).map_err(|source| {
                ConsoleError::Arrow {
                    table,
                    date,
                    source,
                }
            })?;
            if b.num_rows() > 0 {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn read(
        &self,
        table: &'static str,
        date: NaiveDate,
        file: &FileMeta,
        columns: Option<&[&str]>,
    ) -> Result<RecordBatch, ConsoleError> {
        let opts = ReadOptions {
            columns,
            dictionary_strings: true,
            plain: PLAIN,
            batch_size: 1 << 20,
        };
        let batches = self.lake.read(file, &opts)?;
        let schema = batches.schema();
        let all: Vec<RecordBatch> = batches.collect::<Result<_, _>>()?;
        arrow::compute::concat_batches(&schema, &all).map_err(|source| ConsoleError::Arrow {
            table,
            date,
            source,
        })
    }
}
