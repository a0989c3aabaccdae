//! The console's view of the lake: which days each table has, and each day's rollup file read
//! column by column as pages ask for them. A column once read stays in memory (narrowed to the
//! smallest integer type its values fit, `ip_daily` rows in address order) until the rollup
//! replaces the file or the byte budget pushes the least recently used day out; so does the
//! file's footer (schema, row groups, page locations), read once and counted in the budget too.
//! Summaries a
//! page computes from a whole day (the overview's counts), or from the days of a range
//! together (distinct sources), are kept apart as memos, for as long as the files are
//! unchanged; they cost bytes, not columns.
use std::{
    any::Any,
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use arrow::{
    array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, RecordBatchOptions, UInt32Array},
    compute::{cast, concat_batches, take},
    datatypes::{
        DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType, UInt64Type,
    },
};
use chrono::NaiveDate;
use scanscope_lake::{FileMeta, Footer, Lake, ReadOptions, paths, tables::ip_daily::IpRow};

use crate::error::ConsoleError;

/// Columns read as plain strings: their values are mostly distinct (a dictionary would not
/// save anything).
const PLAIN: &[&str] = &["src_ip", "victim"];

/// How the console reads the lake: strings as dictionaries (but [`PLAIN`]), large batches;
/// with the file's footer when it is kept.
fn read_options<'a>(columns: Option<&'a [&'a str]>, footer: Option<&'a Footer>) -> ReadOptions<'a> {
    ReadOptions {
        columns,
        dictionary_strings: true,
        plain: PLAIN,
        batch_size: 1 << 20,
        row_groups: None,
        rows: None,
        optional: &[],
        footer,
    }
}

/// The column a table's rows are kept in order of, if any.
fn key_of(table: &str) -> Option<&'static str> {
    (table == IpRow::TABLE).then_some(IpRow::COL.src_ip)
}

type Version = (u64, Option<String>);

/// A day's rollup file: its columns, read when first asked for.
pub struct Day {
    pub date: NaiveDate,
    table: &'static str,
    file: FileMeta,
    /// The file's footer, read once.
    footer: Footer,
    version: Version,
    rows: usize,
    lake: Lake,
    held: Mutex<Held>,
    bytes: AtomicUsize,
    budget: Arc<Budget>,
}

impl std::fmt::Debug for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Day")
            .field("table", &self.table)
            .field("date", &self.date)
            .field("rows", &self.rows)
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .finish()
    }
}

/// A day's columns read so far.
#[derive(Debug, Default)]
struct Held {
    /// File row of each kept row, once known; `Some(None)` when the file is in key order.
    order: Option<Option<UInt32Array>>,
    arrays: HashMap<String, ArrayRef>,
}

/// Bytes of columns held by the catalog's days.
#[derive(Debug, Default)]
struct Budget {
    used: AtomicUsize,
}

impl Day {
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The file's schema (every column, user rule fields too).
    pub fn schema(&self) -> &SchemaRef {
        self.footer.schema()
    }

    /// The day's rows with `columns` (those the file has; a view of a missing one reads as
    /// absent), in key order; read and kept on first use.
    pub fn batch(&self, columns: &[&str]) -> Result<RecordBatch, ConsoleError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let missing: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !held.arrays.contains_key(*c) && self.schema().field_with_name(c).is_ok())
            .collect();
        if !missing.is_empty() {
            if held.order.is_none() {
                held.order = Some(self.order()?);
            }
            let Held { order, arrays } = &mut *held;
            let order = order.as_ref().and_then(Option::as_ref);
            // One column at a time: what is in memory at once is one column at full width.
            for c in missing {
                let read = self.read(&[c])?;
                let Some(a) = read.columns().first() else {
                    continue;
                };
                let a = narrow(a);
                drop(read);
                let a = match order {
                    Some(o) => take(&a, o, None).map_err(|e| self.arrow(e))?,
                    None => a,
                };
                let size = a.get_array_memory_size();
                tracing::debug!(table = self.table, date = %self.date, column = c, bytes = size, data_type = %a.data_type(), "column read");
                arrays.insert(c.to_string(), a);
                self.bytes.fetch_add(size, Ordering::Relaxed);
                self.budget.used.fetch_add(size, Ordering::Relaxed);
            }
        }
        let mut fields = Vec::new();
        let mut arrays = Vec::new();
        for c in columns {
            if let Some(a) = held.arrays.get(*c)
                && !fields.iter().any(|f: &Field| f.name() == c)
            {
                fields.push(Field::new(*c, a.data_type().clone(), true));
                arrays.push(a.clone());
            }
        }
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(self.rows)),
        )
        .map_err(|e| self.arrow(e))
    }

    /// Every column of the day (small tables).
    pub fn all(&self) -> Result<RecordBatch, ConsoleError> {
        let names: Vec<String> = self
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.batch(&names)
    }

    /// `columns` of the day's rows in file order, not kept (for whole-day summaries).
    pub fn read(&self, columns: &[&str]) -> Result<RecordBatch, ConsoleError> {
        let columns: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| self.schema().field_with_name(c).is_ok())
            .collect();
        self.read_rows(Some(&columns), None, None)
    }

    /// `columns` of the day's rows in file order, a batch of at most 65 536 rows at a time to
    /// `f` (whole-day summaries, in little memory); nothing kept.
    pub fn each_batch(
        &self,
        columns: &[&str],
        mut f: impl FnMut(&RecordBatch) -> Result<(), ConsoleError>,
    ) -> Result<(), ConsoleError> {
        for b in self.stream(columns, None, scanscope_lake::ROLLUP_ROW_GROUP_ROWS)? {
            f(&b?)?;
        }
        Ok(())
    }

    /// The file's footer (row groups and their statistics).
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// `columns` of the row groups `groups` (all when `None`) in file order, `batch_rows`
    /// rows at a time, as the reader decodes them; nothing kept (a pass over many days at
    /// once, in the memory of a few batches of each).
    pub fn stream(
        &self,
        columns: &[&str],
        groups: Option<&[usize]>,
        batch_rows: usize,
    ) -> Result<impl Iterator<Item = Result<RecordBatch, ConsoleError>> + use<>, ConsoleError> {
        let columns: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| self.schema().field_with_name(c).is_ok())
            .collect();
        let opts = ReadOptions {
            batch_size: batch_rows,
            row_groups: groups,
            ..read_options(Some(&columns), Some(&self.footer))
        };
        Ok(self
            .lake
            .read(&self.file, &opts)?
            .map(|b| b.map_err(ConsoleError::from)))
    }

    /// Every column of the rows whose `key` is `value`: found in the key column if a page
    /// has had it read (the file in key order), else in the key column of the row groups
    /// whose statistics allow it (one group of a rollup in key order); only those rows are
    /// decoded in the other columns.
    pub fn rows_with(&self, value: &str) -> Result<RecordBatch, ConsoleError> {
        let key = key_of(self.table).unwrap_or(IpRow::COL.src_ip);
        if let Some(found) = self.held_rows_with(key, value) {
            return match found {
                Some(rows) => self.read_rows(None, None, Some(&[rows])),
                None => Ok(RecordBatch::new_empty(self.schema().clone())),
            };
        }
        let groups = self.footer.row_groups_holding(key, value);
        let keys = self.read_rows(Some(&[key]), Some(&groups), None)?;
        let t = crate::col::Text::of(&keys, key);
        let rows: Vec<(usize, usize)> = (0..keys.num_rows())
            .filter(|i| t.get(*i) == Some(value))
            .map(|i| (i, 1))
            .collect();
        if rows.is_empty() {
            return Ok(keys.slice(0, 0));
        }
        self.read_rows(None, Some(&groups), Some(&rows))
    }

    /// The file rows (first, count) whose `key` is `value`, by binary search in the key
    /// column if it is held and the file is in its order (`Some(None)`: no such row); `None`
    /// when the column is not held so.
    fn held_rows_with(&self, key: &str, value: &str) -> Option<Option<(usize, usize)>> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(held.order, Some(None)) {
            return None;
        }
        let a = held.arrays.get(key)?.as_string_opt::<i32>()?;
        let at = |i: usize| a.is_valid(i).then(|| a.value(i));
        let first = partition_point(a.len(), |i| at(i) < Some(value));
        let end = partition_point(a.len(), |i| at(i) <= Some(value));
        Some((first < end).then_some((first, end - first)))
    }

    /// `columns` (all when `None`) of the row groups `groups` (all when `None`), only `rows`
    /// of them if given, as one batch.
    fn read_rows(
        &self,
        columns: Option<&[&str]>,
        groups: Option<&[usize]>,
        rows: Option<&[(usize, usize)]>,
    ) -> Result<RecordBatch, ConsoleError> {
        let opts = ReadOptions {
            row_groups: groups,
            rows,
            ..read_options(columns, Some(&self.footer))
        };
        let batches = self.lake.read(&self.file, &opts)?;
        let schema = batches.schema();
        let all: Vec<RecordBatch> = batches.collect::<Result<_, _>>()?;
        concat_batches(&schema, &all).map_err(|e| self.arrow(e))
    }

    /// The permutation into key order (`None` when the file is in order: rollups since
    /// ip_daily is written sorted).
    fn order(&self) -> Result<Option<UInt32Array>, ConsoleError> {
        let Some(key) = key_of(self.table) else {
            return Ok(None);
        };
        if self.schema().field_with_name(key).is_err() {
            return Ok(None);
        }
        let b = self.read(&[key])?;
        let t = crate::col::Text::of(&b, key);
        if (1..b.num_rows()).all(|i| t.get(i - 1) <= t.get(i)) {
            return Ok(None);
        }
        let mut idx: Vec<u32> = (0..b.num_rows() as u32).collect();
        idx.sort_by(|x, y| t.get(*x as usize).cmp(&t.get(*y as usize)));
        Ok(Some(UInt32Array::from(idx)))
    }

    fn arrow(&self, source: arrow::error::ArrowError) -> ConsoleError {
        ConsoleError::Arrow {
            table: self.table,
            date: self.date,
            source,
        }
    }
}

/// The first of `0..n` for which `pred` is false (`pred` true then false along the range).
pub(crate) fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

impl Drop for Day {
    fn drop(&mut self) {
        self.budget
            .used
            .fetch_sub(self.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// A column in the least memory that keeps its values for the console's views: unsigned
/// integers in the narrowest type their values fit, timestamps as whole seconds (`UInt32`:
/// the API shows seconds), dictionary keys (also of a list's elements) as narrow as the
/// dictionary allows. Anything else as it is.
fn narrow(a: &ArrayRef) -> ArrayRef {
    let to = match a.data_type() {
        DataType::UInt64 | DataType::UInt32 => {
            let c = cast(a, &DataType::UInt64).unwrap_or_else(|_| a.clone());
            let max = arrow::compute::max(c.as_primitive::<UInt64Type>()).unwrap_or(0);
            if max <= u64::from(u8::MAX) {
                DataType::UInt8
            } else if max <= u64::from(u16::MAX) {
                DataType::UInt16
            } else if max <= u64::from(u32::MAX) {
                DataType::UInt32
            } else {
                return a.clone();
            }
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let t = a.as_primitive::<TimestampMicrosecondType>();
            let fits = |v: Option<i64>| {
                v.is_none_or(|v| (0..=i64::from(u32::MAX) * 1_000_000).contains(&v))
            };
            if !(fits(arrow::compute::min(t)) && fits(arrow::compute::max(t))) {
                return a.clone();
            }
            let secs: UInt32Array = t.unary_opt(|v| u32::try_from(v.div_euclid(1_000_000)).ok());
            return Arc::new(secs);
        }
        // Each row group brings its own dictionary: the values are made distinct again, with
        // keys as narrow as their number allows.
        DataType::Dictionary(_, v) if **v == DataType::Utf8 => return dictionary(a),
        // A list's strings (tools, tags, …) are few distinct values too.
        DataType::List(f) if matches!(f.data_type(), DataType::Dictionary(..) | DataType::Utf8) => {
            let l = a.as_list::<i32>();
            let values = dictionary(l.values());
            let field = Arc::new(
                f.as_ref()
                    .clone()
                    .with_data_type(values.data_type().clone()),
            );
            return ListArray::try_new(field, l.offsets().clone(), values, l.nulls().cloned())
                .map_or_else(|_| a.clone(), |l| Arc::new(l) as ArrayRef);
        }
        _ => return a.clone(),
    };
    cast(a, &to).unwrap_or_else(|_| a.clone())
}

/// A text column as a dictionary of its distinct values with the narrowest keys that hold
/// them (as it is when there are more than `i16::MAX`).
fn dictionary(a: &ArrayRef) -> ArrayRef {
    let Ok(plain) = cast(a, &DataType::Utf8) else {
        return a.clone();
    };
    for key in [DataType::Int8, DataType::Int16] {
        if let Ok(d) = cast(
            &plain,
            &DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8)),
        ) {
            return d;
        }
    }
    a.clone()
}

#[derive(Debug)]
struct Entry {
    day: Arc<Day>,
    used: u64,
}

type MemoKey = (&'static str, NaiveDate, &'static str);
/// What a range memo was computed from: its name, and each day's table, date and file version.
type RangeKey = (&'static str, Vec<(&'static str, NaiveDate, Version)>);

/// Range memos kept (the most recently used).
const RANGE_MEMOS: usize = 8;

#[derive(Default)]
struct State {
    days: HashMap<(&'static str, NaiveDate), Entry>,
    memos: HashMap<MemoKey, (Version, Arc<dyn Any + Send + Sync>)>,
    /// Least recently used first.
    range_memos: Vec<(RangeKey, Arc<dyn Any + Send + Sync>)>,
    tick: u64,
}

/// The lake as the console reads it.
pub struct Catalog {
    lake: Lake,
    budget: usize,
    used: Arc<Budget>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("budget", &self.budget)
            .field("used", &self.used.used.load(Ordering::Relaxed))
            .finish()
    }
}

impl Catalog {
    /// `budget`: bytes of columns kept in memory.
    pub fn new(lake: Lake, budget: usize) -> Self {
        Catalog {
            lake,
            budget,
            used: Arc::default(),
            state: Mutex::new(State::default()),
        }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Bytes of columns held now.
    pub fn bytes_held(&self) -> usize {
        self.used.used.load(Ordering::Relaxed)
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

    /// The rollup of `table` for `date`, `None` if that day has none. Pushes the least
    /// recently used other days out while the columns held exceed the budget.
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
            let mut s = self.lock();
            s.tick += 1;
            let tick = s.tick;
            if let Some(e) = s.days.get_mut(&(table, date))
                && e.day.version == version
            {
                e.used = tick;
                let day = e.day.clone();
                self.evict(&mut s, (table, date));
                return Ok(Some(day));
            }
        }
        let footer = self.lake.footer(&file)?;
        // The footer counts against the budget as the day's first bytes: a range of many days
        // holds many footers.
        let footer_bytes = footer.memory_size();
        self.used.used.fetch_add(footer_bytes, Ordering::Relaxed);
        tracing::debug!(table, %date, bytes = footer_bytes, "footer read");
        let day = Arc::new(Day {
            date,
            table,
            file,
            rows: footer.row_groups().iter().sum(),
            footer,
            version,
            lake: self.lake.clone(),
            held: Mutex::default(),
            bytes: AtomicUsize::new(footer_bytes),
            budget: self.used.clone(),
        });
        let mut s = self.lock();
        s.tick += 1;
        let used = s.tick;
        s.days.insert(
            (table, date),
            Entry {
                day: day.clone(),
                used,
            },
        );
        self.evict(&mut s, (table, date));
        Ok(Some(day))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn evict(&self, s: &mut State, keep: (&'static str, NaiveDate)) {
        while self.bytes_held() > self.budget {
            let Some(oldest) = s
                .days
                .iter()
                .filter(|(k, e)| **k != keep && e.day.bytes.load(Ordering::Relaxed) > 0)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            // The day's columns (and footer) go when the last page using it is done.
            s.days.remove(&oldest);
        }
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

    /// What `f` computes from `day`, kept (under `what`) while the day's file is unchanged.
    pub fn memo<T: Send + Sync + 'static>(
        &self,
        day: &Day,
        what: &'static str,
        f: impl FnOnce(&Day) -> Result<T, ConsoleError>,
    ) -> Result<Arc<T>, ConsoleError> {
        let key = (day.table, day.date, what);
        if let Some((v, m)) = self.lock().memos.get(&key)
            && *v == day.version
            && let Ok(m) = m.clone().downcast::<T>()
        {
            return Ok(m);
        }
        let m = Arc::new(f(day)?);
        self.lock()
            .memos
            .insert(key, (day.version.clone(), m.clone()));
        Ok(m)
    }

    /// What `f` computes from `days` together (a figure over a range that no day's figures
    /// add up to, such as distinct sources), kept under `what` while none of the days' files
    /// changes; the [`RANGE_MEMOS`] most recently used are kept.
    pub fn memo_range<T: Send + Sync + 'static>(
        &self,
        days: &[Arc<Day>],
        what: &'static str,
        f: impl FnOnce(&[Arc<Day>]) -> Result<T, ConsoleError>,
    ) -> Result<Arc<T>, ConsoleError> {
        let key: RangeKey = (
            what,
            days.iter()
                .map(|d| (d.table, d.date, d.version.clone()))
                .collect(),
        );
        {
            let mut st = self.lock();
            if let Some(at) = st.range_memos.iter().position(|(k, _)| *k == key) {
                let e = st.range_memos.remove(at);
                let m = e.1.clone();
                st.range_memos.push(e);
                if let Ok(m) = m.downcast::<T>() {
                    return Ok(m);
                }
            }
        }
        let m = Arc::new(f(days)?);
        let mut st = self.lock();
        st.range_memos.retain(|(k, _)| *k != key);
        if st.range_memos.len() >= RANGE_MEMOS {
            st.range_memos.remove(0);
        }
        st.range_memos.push((key, m.clone()));
        Ok(m)
    }

    /// Every file of an ingest table for `date` (not cached), only `columns` (those the file
    /// has: files from before a column was added lack it), and only the rows `keep` selects
    /// from each batch.
    pub fn scan(
        &self,
        table: &'static str,
        date: NaiveDate,
        columns: &[&str],
        keep: &dyn Fn(&RecordBatch) -> Vec<bool>,
    ) -> Result<Vec<RecordBatch>, ConsoleError> {
        let mut out = Vec::new();
        for file in self.lake.day_files(table, date)? {
            let (schema, _) = self.lake.layout(&file)?;
            let columns: Vec<&str> = columns
                .iter()
                .copied()
                .filter(|c| schema.field_with_name(c).is_ok())
                .collect();
            let opts = read_options(Some(&columns), None);
            for b in self.lake.read(&file, &opts)? {
                let b = b?;
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
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use scanscope_lake::tables::ip_daily::IpDailyBuilder;

    use super::*;
    use crate::col::{Num, Text};

    const IP: scanscope_lake::tables::ip_daily::IpColumns = IpRow::COL;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    /// Writes `ip_daily` of `date` with rows in the order given (as a rollup before rows were
    /// sorted did); packets 1, 2, 3 … in that order; one day's packets above u32.
    fn write_unsorted(lake: &Lake, date: NaiveDate, ips: &[&str]) {
        let mut b = IpDailyBuilder::new(&[]);
        for (k, ip) in ips.iter().enumerate() {
            b.push(&IpRow {
                src_ip: (*ip).to_string(),
                packets: k as u64 + 1,
                bytes: if k == 0 { 1 << 40 } else { 7 },
                first_seen: 1_764_000_000_123_456 + k as i64,
                org: (k == 1).then(|| "censys".to_string()),
                tags: vec!["scanner".into()],
                ..IpRow::default()
            });
        }
        let batch = b.finish().unwrap();
        lake.write_batch(
            &paths::rollup_file(IpRow::TABLE, date),
            IpRow::TABLE,
            &batch,
        )
        .unwrap();
    }

    #[test]
    fn days_are_read_in_address_order_narrowed_and_found_by_address() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        write_unsorted(
            &lake,
            day(1),
            &["10.0.0.9", "10.0.0.10", "192.0.2.1", "10.0.0.1"],
        );
        let cat = Catalog::new(lake, 1 << 30);
        let d = cat.rollup(IpRow::TABLE, day(1)).unwrap().unwrap();
        assert_eq!(d.rows(), 4);
        let footer = d.bytes.load(Ordering::Relaxed);
        assert!(footer > 0, "the kept footer counts in the budget");
        assert_eq!(cat.bytes_held(), footer);
        let b = d
            .batch(&[IP.src_ip, IP.packets, IP.bytes, "no_such_column"])
            .unwrap();
        assert_eq!(b.num_columns(), 3, "a column the file lacks is left out");
        let ip = Text::of(&b, IP.src_ip);
        let got: Vec<(&str, u64)> = (0..4)
            .map(|i| (ip.get(i).unwrap(), Num::of(&b, IP.packets).or0(i)))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.1", 4),
                ("10.0.0.10", 2),
                ("10.0.0.9", 1),
                ("192.0.2.1", 3)
            ],
            "rows in the text order of their addresses, each with its own values"
        );
        assert_eq!(
            b.column_by_name(IP.packets).unwrap().data_type(),
            &DataType::UInt8
        );
        assert_eq!(
            Num::of(&b, IP.bytes).get(2),
            Some(1 << 40),
            "too wide to narrow"
        );
        let r = d.rows_with("10.0.0.10").unwrap();
        assert_eq!(r.num_rows(), 1);
        assert_eq!(Num::of(&r, IP.packets).get(0), Some(2));
        assert_eq!(d.rows_with("10.0.0.2").unwrap().num_rows(), 0);
    }

    #[test]
    fn a_rollup_is_written_in_address_order_and_one_source_is_one_row_group() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let n = scanscope_lake::ROLLUP_ROW_GROUP_ROWS + 10;
        let rows: Vec<IpRow> = (0..n as u32)
            .rev()
            .map(|k| IpRow {
                src_ip: std::net::Ipv4Addr::from(0x0a00_0000 + k).to_string(),
                packets: u64::from(k),
                ..IpRow::default()
            })
            .collect();
        scanscope_analytics::rollup::write::write_ip_daily(&lake, day(2), &rows, &[]).unwrap();
        let cat = Catalog::new(lake.clone(), 1 << 30);
        let d = cat.rollup(IpRow::TABLE, day(2)).unwrap().unwrap();
        let file = lake
            .head(&paths::rollup_file(IpRow::TABLE, day(2)))
            .unwrap()
            .unwrap();
        let (_, groups) = lake.layout(&file).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            d.order().unwrap(),
            None,
            "written in order: nothing to sort"
        );
        let want = std::net::Ipv4Addr::from(0x0a00_0000 + 777).to_string();
        assert_eq!(
            lake.footer(&file)
                .unwrap()
                .row_groups_holding(IP.src_ip, &want)
                .len(),
            1
        );
        let r = d.rows_with(&want).unwrap();
        assert_eq!(Num::of(&r, IP.packets).get(0), Some(777));
        // Once a page has read the key column, a source is found in it by binary search.
        d.batch(&[IP.src_ip]).unwrap();
        assert!(d.held_rows_with(IP.src_ip, &want).is_some());
        for k in [0, 777, n as u32 - 1] {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + k).to_string();
            let r = d.rows_with(&ip).unwrap();
            assert_eq!(r.num_rows(), 1, "{ip}");
            assert_eq!(Text::of(&r, IP.src_ip).get(0), Some(ip.as_str()));
            assert_eq!(Num::of(&r, IP.packets).get(0), Some(u64::from(k)));
        }
        for absent in ["0.0.0.0", "10.0.0.1x", "9.255.255.255", "255.0.0.0"] {
            assert_eq!(d.held_rows_with(IP.src_ip, absent), Some(None), "{absent}");
            assert_eq!(d.rows_with(absent).unwrap().num_rows(), 0);
        }
    }

    #[test]
    fn the_budget_pushes_old_days_out_and_a_new_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        for d in 1..=3 {
            write_unsorted(&lake, day(d), &["10.0.0.1", "10.0.0.2"]);
        }
        let cat = Catalog::new(lake.clone(), 1);
        let calls = AtomicUsize::new(0);
        for d in 1..=3 {
            let day = cat.rollup(IpRow::TABLE, day(d)).unwrap().unwrap();
            day.batch(&[IP.packets]).unwrap();
            let m = cat
                .memo(&day, "test", |day| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Ok(day.rows())
                })
                .unwrap();
            assert_eq!(*m, 2);
        }
        // Asking again evicts all but the day asked for.
        let d3 = cat.rollup(IpRow::TABLE, day(3)).unwrap().unwrap();
        assert_eq!(cat.lock().days.len(), 1);
        assert_eq!(cat.bytes_held(), d3.bytes.load(Ordering::Relaxed));
        drop(d3);
        // The memo survives eviction while the file is the same, and is redone when it changes.
        let d1 = cat.rollup(IpRow::TABLE, day(1)).unwrap().unwrap();
        cat.memo(&d1, "test", |_| Ok(0usize)).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        write_unsorted(&lake, day(1), &["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let d1 = cat.rollup(IpRow::TABLE, day(1)).unwrap().unwrap();
        assert_eq!(*cat.memo(&d1, "test", |d| Ok(d.rows())).unwrap(), 3);
    }
}
