//! Read stage of the rollup: the day's Parquet files of a table, as Arrow batches, string columns
//! as dictionaries so each distinct value is interned once per batch rather than once per row.
use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow::{
    array::{Array, ArrayRef, AsArray, RecordBatch},
    datatypes::{DataType, Field, Int32Type, Schema},
};
use chrono::NaiveDate;
use parquet::arrow::{
    ProjectionMask,
    arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder},
};

use super::RollupError;

/// The visible Parquet files of `table` for `day`, sorted by name.
pub fn day_files(root: &Path, table: &str, day: NaiveDate) -> Result<Vec<PathBuf>, RollupError> {
    let dir = root
        .join(table)
        .join(format!("date={}", day.format("%Y-%m-%d")));
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RollupError::Io { path: dir, source }),
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n.ends_with(".parquet"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// String columns read as plain strings: a day has too many sources for a dictionary page, so
/// writers fall back to plain encoding and asking for a dictionary would make the reader build
/// one per batch (measured: 7 % slower on the rollup benchmark).
const PLAIN_COLUMNS: [&str; 1] = ["src_ip"];

/// Reads `columns` of one file, string columns (but `PLAIN_COLUMNS`) as
/// `Dictionary(Int32, Utf8)`, and calls `f` per batch.
pub fn for_each_batch(
    path: &Path,
    columns: &[&str],
    mut f: impl FnMut(&RecordBatch) -> Result<(), RollupError>,
) -> Result<(), RollupError> {
    let pq = |source| RollupError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| RollupError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // The footer is read once: its schema, with strings as dictionaries, is the read schema.
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(pq)?;
    let fields: Vec<Field> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 if !PLAIN_COLUMNS.contains(&f.name().as_str()) => {
                f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                ))
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let opts = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields)));
    let meta = ArrowReaderMetadata::try_new(meta.metadata().clone(), opts).map_err(pq)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta);
    let mut idx = Vec::new();
    for c in columns {
        match builder.schema().index_of(c) {
            Ok(i) => idx.push(i),
            Err(_) => {
                return Err(RollupError::Schema {
                    path: path.to_path_buf(),
                    reason: format!("no column {c:?}"),
                });
            }
        }
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(pq)?;
    for batch in reader {
        let batch = batch.map_err(|source| RollupError::Arrow {
            path: path.to_path_buf(),
            source,
        })?;
        f(&batch)?;
    }
    Ok(())
}

/// A message of the reading thread.
enum Msg {
    Batch(PathBuf, RecordBatch),
    FileDone(u64),
}

/// Reads `files` (path, size) on a second thread while `f` consumes their batches on this one
/// (decoding Parquet and aggregating overlap). `done` is told each finished file's size.
pub fn read_pipelined(
    files: Vec<(PathBuf, u64)>,
    columns: &'static [&'static str],
    mut f: impl FnMut(&Path, &RecordBatch) -> Result<(), RollupError>,
    mut done: impl FnMut(u64),
) -> Result<(), RollupError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Msg, RollupError>>(4);
    std::thread::scope(|s| {
        s.spawn(move || {
            for (path, size) in files {
                let r = for_each_batch(&path, columns, |b| {
                    tx.send(Ok(Msg::Batch(path.clone(), b.clone())))
                        .map_err(|_| RollupError::Cancelled)
                });
                let msg = r.map(|()| Msg::FileDone(size));
                let failed = msg.is_err();
                if tx.send(msg).is_err() || failed {
                    return;
                }
            }
        });
        for m in rx {
            match m? {
                Msg::Batch(p, b) => f(&p, &b)?,
                Msg::FileDone(n) => done(n),
            }
        }
        Ok(())
    })
}

/// Interns strings to dense ids.
#[derive(Debug, Default)]
pub struct Interner {
    map: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    names: Vec<Box<str>>,
    /// The last dictionary seen and its ids: batches of one column chunk share their
    /// dictionary, interned once. Holding the array keeps its buffers alive, so equal buffer
    /// addresses mean the same dictionary.
    last_dict: Option<(ArrayRef, Vec<u32>)>,
}

impl Interner {
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.map.insert(s.into(), i);
        i
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Ids of every row of a string or dictionary-of-string column (nulls: `u32::MAX`).
    pub fn ids(&mut self, col: &ArrayRef, out: &mut Vec<u32>) {
        out.clear();
        if let Some(d) = col.as_dictionary_opt::<Int32Type>() {
            let values = d.values().as_string::<i32>();
            let same = |old: &ArrayRef| {
                let o = old.as_string::<i32>();
                o.len() == values.len()
                    && o.value_data().as_ptr() == values.value_data().as_ptr()
                    && o.value_offsets().as_ptr() == values.value_offsets().as_ptr()
            };
            let ids = match self.last_dict.take() {
                Some((old, ids)) if same(&old) => ids,
                _ => (0..values.len())
                    .map(|i| self.id(values.value(i)))
                    .collect(),
            };
            out.extend(d.keys().iter().map(|k| match k {
                Some(k) => ids[k as usize],
                None => u32::MAX,
            }));
            self.last_dict = Some((d.values().clone(), ids));
        } else if let Some(s) = col.as_string_opt::<i32>() {
            out.extend(s.iter().map(|v| v.map_or(u32::MAX, |v| self.id(v))));
        }
    }
}

/// A column by name, or a schema error naming the file.
pub fn column<'a>(
    batch: &'a RecordBatch,
    name: &str,
    path: &Path,
) -> Result<&'a ArrayRef, RollupError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| RollupError::Schema {
            path: path.to_path_buf(),
            reason: format!("no column {name:?}"),
        })
}

/// Downcasts or gives a schema error.
pub fn typed<'a, T: Array + 'static>(
    col: &'a ArrayRef,
    name: &str,
    path: &Path,
) -> Result<&'a T, RollupError> {
    col.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| RollupError::Schema {
            path: path.to_path_buf(),
            reason: format!("column {name:?} has type {}", col.data_type()),
        })
}
