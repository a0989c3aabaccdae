//! Read stage of the rollup: the day's Parquet files of a table, through the lake, as Arrow
//! batches — string columns as dictionaries so each distinct value is interned once per batch
//! rather than once per row.
use std::collections::HashMap;

use arrow::{
    array::{Array, ArrayRef, AsArray, RecordBatch},
    datatypes::Int32Type,
};
use scanscope_lake::{FileMeta, Lake, ReadOptions};

use super::RollupError;

/// String columns read as plain strings: a day has too many sources for a dictionary page, so
/// writers fall back to plain encoding and asking for a dictionary would make the reader build
/// one per batch (measured: 7 % slower on the rollup benchmark).
const PLAIN_COLUMNS: [&str; 1] = ["src_ip"];

/// Columns added to a table after its first files were written: absent from older files,
/// where they read as missing (null).
pub const ADDED_COLUMNS: [&str; 3] = [
    scanscope_lake::tables::flows::FlowRow::COL.source,
    scanscope_lake::tables::flows::FlowRow::COL.sampling_rate,
    scanscope_lake::tables::flows::FlowRow::COL.tcp_flags,
];

/// Reads `columns` of one file, string columns (but `PLAIN_COLUMNS`) as
/// `Dictionary(Int32, Utf8)`, and calls `f` per batch.
pub fn for_each_batch(
    lake: &Lake,
    file: &FileMeta,
    columns: &[&str],
    mut f: impl FnMut(&RecordBatch) -> Result<(), RollupError>,
) -> Result<(), RollupError> {
    let opts = ReadOptions {
        columns: Some(columns),
        dictionary_strings: true,
        plain: &PLAIN_COLUMNS,
        batch_size: 64 * 1024,
        row_groups: None,
        rows: None,
        optional: &ADDED_COLUMNS,
        footer: None,
    };
    for batch in lake.read(file, &opts)? {
        f(&batch?)?;
    }
    Ok(())
}

/// A message of the reading thread.
enum Msg {
    Batch(String, RecordBatch),
    FileDone(u64),
}

/// Reads `files` on a second thread while `f` consumes their batches on this one (decoding
/// Parquet and aggregating overlap). `f` is given the file's path; `done` is told each finished
/// file's size.
pub fn read_pipelined(
    lake: &Lake,
    files: Vec<FileMeta>,
    columns: &'static [&'static str],
    mut f: impl FnMut(&str, &RecordBatch) -> Result<(), RollupError>,
    mut done: impl FnMut(u64),
) -> Result<(), RollupError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Msg, RollupError>>(4);
    std::thread::scope(|s| {
        s.spawn(move || {
            for file in files {
                let path = file.path.to_string();
                let r = for_each_batch(lake, &file, columns, |b| {
                    tx.send(Ok(Msg::Batch(path.clone(), b.clone())))
                        .map_err(|_| RollupError::Cancelled)
                });
                let msg = r.map(|()| Msg::FileDone(file.size));
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
    path: &str,
) -> Result<&'a ArrayRef, RollupError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| scanscope_lake::LakeError::MissingColumn {
            path: path.to_string(),
            column: name.to_string(),
        })
        .map_err(RollupError::from)
}

/// A column by name as its Arrow array type, or a schema error naming the file.
pub fn typed<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    path: &str,
) -> Result<&'a T, RollupError> {
    let col = column(batch, name, path)?;
    col.as_any().downcast_ref::<T>().ok_or_else(|| {
        RollupError::from(scanscope_lake::LakeError::ColumnType {
            path: path.to_string(),
            column: name.to_string(),
            found: col.data_type().clone(),
        })
    })
}
