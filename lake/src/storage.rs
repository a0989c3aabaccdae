//! The storage seam: every lake write and read goes through one [`ObjectStore`] (crate
//! `object_store`). The default, and today the only configured backend, is the local file
//! system with fsync on; an object store URL (S3, GCS, Azure) is a matter of building
//! [`Lake::open`] with that backend's feature, not a change to the writer or the readers.
//!
//! Atomic visibility: a file is written under a hidden name (`.<name>`; the local backend
//! stages it as `.<name>#N`, fsyncs it, renames it and fsyncs the directory), then renamed to
//! its final name (again with a directory fsync). A reader therefore never sees a partial file,
//! and globs on `*.parquet` and pyarrow's dataset discovery (which skips `.` names) ignore
//! unfinished ones.
//!
//! The API is blocking: the collector's store thread, the rollup and reports call it from
//! ordinary threads (async callers use `spawn_blocking`). It runs the object store's futures on
//! a small runtime of the lake's own.
use std::{
    collections::BTreeSet,
    future::Future,
    path::{Path as FsPath, PathBuf},
    sync::{Arc, LazyLock},
};

use std::ops::Range;

use arrow::{
    array::RecordBatch,
    datatypes::{DataType, Field, Schema, SchemaRef},
    error::ArrowError,
};
use bytes::Bytes;
use chrono::NaiveDate;
use futures::{FutureExt, StreamExt, future::BoxFuture};
use object_store::{
    ObjectStore, ObjectStoreExt, RenameOptions, buffered::BufWriter, local::LocalFileSystem,
    path::Path,
};
use parquet::{
    arrow::{
        AsyncArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask,
        arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector},
        async_reader::{AsyncFileReader, ParquetRecordBatchStream},
    },
    basic::{Compression, ZstdLevel},
    errors::ParquetError,
    file::{
        metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader},
        properties::{EnabledStatistics, WriterProperties},
    },
    schema::types::ColumnPath,
};

use crate::{error::LakeError, paths};

/// Rows per row group: large enough for good compression and few footers, small enough that a
/// reader can skip by statistics.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Bytes buffered before a write becomes a multipart upload (one part each).
const PART_BYTES: usize = 16 << 20;

/// Rows per row group of the rollup tables: a reader looking for one source (the console's IP
/// page, DuckDB's `WHERE src_ip = …`) decodes one such group per day, `ip_daily` being in
/// address order.
pub const ROLLUP_ROW_GROUP_ROWS: usize = 1 << 16;

/// Rows per data page of the rollup tables: with the page locations every file has, a
/// reader of a few rows (one source's) decompresses only their pages.
pub const ROLLUP_PAGE_ROWS: usize = 8192;

fn writer_props(row_group_rows: usize) -> WriterProperties {
    let page_rows = if row_group_rows == ROLLUP_ROW_GROUP_ROWS {
        ROLLUP_PAGE_ROWS
    } else {
        usize::MAX
    };
    WriterProperties::builder()
        .set_data_page_row_count_limit(page_rows)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("zstd level 3 is valid"),
        ))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_created_by(format!("scanscope-collector {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The ingest tables' properties. Their rows are in arrival order, so a row group's smallest and
/// largest address span nearly every address: statistics on the address columns would prune
/// nothing (a reader looking for one source goes to `ip_daily`, in address order) and
/// computing them was an eighth of the lake stage's time. Every other column keeps them.
static WRITER_PROPS: LazyLock<WriterProperties> = LazyLock::new(|| {
    let f = crate::tables::flows::FlowRow::COL;
    let mut b = writer_props(ROW_GROUP_ROWS).into_builder();
    for c in [f.src_ip, f.dst_ip] {
        b = b.set_column_statistics_enabled(c.into(), EnabledStatistics::None);
    }
    b.build()
});
/// The rollup tables' properties. Columns whose values are nearly all distinct within a row
/// group (a source's address, its first and last seen in µs, its port lists) get no
/// dictionary: it would hold most of the group's values (up to the writer's 1 MiB, then the
/// writer falls back to plain pages anyway), and a reader of one source's row would decompress
/// all of it for every such column of every day (the console's IP page, DuckDB's
/// `WHERE src_ip = …`).
static ROLLUP_WRITER_PROPS: LazyLock<WriterProperties> = LazyLock::new(|| {
    let ip = crate::tables::ip_daily::IpRow::COL;
    let mut b = writer_props(ROLLUP_ROW_GROUP_ROWS).into_builder();
    for c in [ip.src_ip, ip.first_seen, ip.last_seen] {
        b = b.set_column_dictionary_enabled(c.into(), false);
    }
    for c in [ip.ports, ip.tcp_ports, ip.udp_ports] {
        b = b.set_column_dictionary_enabled(
            ColumnPath::new(vec![c.to_string(), "list".into(), "item".into()]),
            false,
        );
    }
    b.build()
});

/// The lake's runtime for object-store futures (I/O only; encoding and decoding run on the
/// calling thread).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("lake-io")
        .enable_all()
        .build()
        .expect("starting the lake's I/O runtime")
});

fn block_on<F: Future>(f: F) -> F::Output {
    RUNTIME.handle().block_on(f)
}

/// One visible Parquet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub path: Path,
    pub size: u64,
    /// The backend's version of the object (an ETag; on the local file system it changes
    /// when the file is replaced), so readers that cache a file can tell it changed.
    pub version: Option<String>,
}

impl FileMeta {
    /// The file's name (`part-000000000042.parquet`).
    pub fn name(&self) -> &str {
        self.path.filename().unwrap_or("")
    }
}

/// One committed Parquet file.
#[derive(Debug, Clone)]
pub struct Written {
    pub table: &'static str,
    pub path: Path,
    pub rows: usize,
    pub bytes: u64,
}

/// How to read a file.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions<'a> {
    /// The columns to read (all when `None`).
    pub columns: Option<&'a [&'a str]>,
    /// Read string columns as `Dictionary(Int32, Utf8)` (each distinct value once per batch),
    /// except those in `plain`.
    pub dictionary_strings: bool,
    pub plain: &'a [&'a str],
    /// Rows per batch.
    pub batch_size: usize,
    /// Only these row groups (all when `None`).
    pub row_groups: Option<&'a [usize]>,
    /// Only these rows, as ascending `(first, count)` ranges counted over the row groups
    /// read (all when `None`); the others are skipped without being decoded.
    pub rows: Option<&'a [(usize, usize)]>,
    /// Columns of `columns` a file may lack (added to the table after it was written): left
    /// out of the batches of such a file instead of failing the read.
    pub optional: &'a [&'a str],
    /// The file's footer, if the reader keeps it ([`Lake::footer`]): not read again.
    pub footer: Option<&'a Footer>,
}

/// A file's footer as read once: its schema, row groups (with their statistics) and page
/// locations. A reader that reads one file many times keeps it ([`ReadOptions::footer`]).
#[derive(Debug, Clone)]
pub struct Footer(ArrowReaderMetadata);

impl Footer {
    /// The file's Arrow schema.
    pub fn schema(&self) -> &SchemaRef {
        self.0.schema()
    }

    /// Bytes the footer takes in memory (an estimate: parquet's).
    pub fn memory_size(&self) -> usize {
        self.0.metadata().memory_size()
    }

    /// Rows of each row group.
    pub fn row_groups(&self) -> Vec<usize> {
        self.0
            .metadata()
            .row_groups()
            .iter()
            .map(|g| usize::try_from(g.num_rows()).unwrap_or(0))
            .collect()
    }

    /// The row groups whose statistics for the string column `column` do not rule out
    /// `value` (all of them when the file lacks statistics or the column).
    pub fn row_groups_holding(&self, column: &str, value: &str) -> Vec<usize> {
        let v = value.as_bytes();
        self.bounds(column)
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.as_ref()
                    .is_none_or(|(lo, hi)| lo.as_slice() <= v && v <= hi.as_slice())
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Each row group's least and greatest value of the column `column`, as its statistics
    /// give them in bytes (`None` for a group without them, or when the file lacks the column).
    pub fn bounds(&self, column: &str) -> Vec<Option<(Vec<u8>, Vec<u8>)>> {
        let md = self.0.metadata();
        let idx = md
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == column);
        md.row_groups()
            .iter()
            .map(|g| {
                let stats = g.column(idx?).statistics()?;
                Some((
                    stats.min_bytes_opt()?.to_vec(),
                    stats.max_bytes_opt()?.to_vec(),
                ))
            })
            .collect()
    }
}

impl Default for ReadOptions<'_> {
    fn default() -> Self {
        ReadOptions {
            columns: None,
            dictionary_strings: false,
            plain: &[],
            batch_size: 64 * 1024,
            row_groups: None,
            rows: None,
            optional: &[],
            footer: None,
        }
    }
}

/// The lake: an object store and where it is.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    location: String,
    local_root: Option<PathBuf>,
}

impl Lake {
    /// Opens the lake at `location`: a directory (created if missing) or a `file://` URL.
    pub fn open(location: &str) -> Result<Lake, LakeError> {
        match location.split_once("://") {
            None => Lake::local(FsPath::new(location)),
            Some(("file", rest)) => Lake::local(FsPath::new(rest)),
            Some(_) => Err(LakeError::Location {
                location: location.to_string(),
                reason: "this build stores the lake on the local file system only \
                         (a directory or a file:// URL)",
            }),
        }
    }

    /// The lake in a local directory (created if missing), written with fsync.
    pub fn local(root: &FsPath) -> Result<Lake, LakeError> {
        std::fs::create_dir_all(root).map_err(|source| LakeError::CreateDir {
            path: root.to_path_buf(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| LakeError::storage("opening", root.display(), e))?
            .with_fsync(true);
        Ok(Lake {
            store: Arc::new(store),
            location: root.display().to_string(),
            local_root: Some(root.to_path_buf()),
        })
    }

    /// Where the lake is (as given).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The object store behind the lake.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Writes `batches` to `path` as one Parquet file with the lake's writer properties, and
    /// publishes it atomically (hidden name, then rename). On error nothing new is visible.
    pub fn write(
        &self,
        path: &Path,
        table: &'static str,
        schema: SchemaRef,
        batches: impl IntoIterator<Item = Result<RecordBatch, ArrowError>>,
    ) -> Result<Written, LakeError> {
        let tmp = paths::hidden(path);
        let enc = |source| LakeError::Encode {
            table,
            path: path.to_string(),
            source,
        };
        let result = block_on(async {
            let out = BufWriter::with_capacity(self.store.clone(), tmp.clone(), PART_BYTES);
            let props = if crate::tables::ROLLUP.contains(&table) {
                &ROLLUP_WRITER_PROPS
            } else {
                &WRITER_PROPS
            };
            let mut w =
                AsyncArrowWriter::try_new(out, schema, Some((*props).clone())).map_err(enc)?;
            let mut rows = 0;
            for b in batches {
                let b = b.map_err(|source| LakeError::Arrow { table, source })?;
                rows += b.num_rows();
                w.write(&b).await.map_err(enc)?;
            }
            w.close().await.map_err(enc)?;
            let meta = self
                .store
                .head(&tmp)
                .await
                .map_err(|e| LakeError::storage("reading the size of", &tmp, e))?;
            self.store
                .rename_opts(&tmp, path, RenameOptions::default())
                .await
                .map_err(|e| LakeError::storage("publishing", path, e))?;
            Ok(Written {
                table,
                path: path.clone(),
                rows,
                bytes: meta.size,
            })
        });
        if result.is_err() {
            // Best effort: a hidden leftover is ignored by readers and swept at start.
            let _removed = block_on(self.store.delete(&tmp)).is_ok();
        }
        result
    }

    /// Writes one record batch (see [`Lake::write`]).
    pub fn write_batch(
        &self,
        path: &Path,
        table: &'static str,
        batch: &RecordBatch,
    ) -> Result<Written, LakeError> {
        self.write(path, table, batch.schema(), [Ok(batch.clone())])
    }

    /// The visible Parquet files under `prefix`, sorted by path.
    pub fn files(&self, prefix: &Path) -> Result<Vec<FileMeta>, LakeError> {
        let mut out = block_on(async {
            let mut s = self.store.list(Some(prefix));
            let mut v = Vec::new();
            while let Some(m) = s.next().await {
                match m {
                    Ok(m) => {
                        if m.location.filename().is_some_and(paths::is_visible_parquet) {
                            v.push(FileMeta {
                                path: m.location,
                                size: m.size,
                                version: m.e_tag,
                            });
                        }
                    }
                    Err(object_store::Error::NotFound { .. }) => break,
                    Err(e) => return Err(LakeError::storage("listing", prefix, e)),
                }
            }
            Ok(v)
        })?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The visible files of `table` for `day`.
    pub fn day_files(&self, table: &str, day: NaiveDate) -> Result<Vec<FileMeta>, LakeError> {
        self.files(&paths::day_dir(table, day))
    }

    /// The days `table` has a partition for.
    pub fn days(&self, table: &str) -> Result<BTreeSet<NaiveDate>, LakeError> {
        let prefix = Path::from(table);
        match block_on(self.store.list_with_delimiter(Some(&prefix))) {
            Ok(l) => Ok(l
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().and_then(paths::parse_day_dir))
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(BTreeSet::new()),
            Err(e) => Err(LakeError::storage("listing", prefix, e)),
        }
    }

    /// The file at `path`, if it exists.
    pub fn head(&self, path: &Path) -> Result<Option<FileMeta>, LakeError> {
        match block_on(self.store.head(path)) {
            Ok(m) => Ok(Some(FileMeta {
                path: m.location,
                size: m.size,
                version: m.e_tag,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(LakeError::storage("reading", path, e)),
        }
    }

    /// Reads a file as record batches (only the columns asked for: column chunks of others
    /// are never fetched).
    pub fn read(&self, file: &FileMeta, opts: &ReadOptions<'_>) -> Result<Batches, LakeError> {
        let name = file.path.to_string();
        let dec = |source| LakeError::Decode {
            path: name.clone(),
            source,
        };
        let meta = match opts.footer {
            Some(f) => f.0.clone(),
            None => self.metadata_with(file, opts.rows.is_some())?,
        };
        let stream = block_on(async {
            let reader = ObjectReader {
                store: self.store.clone(),
                path: file.path.clone(),
                size: file.size,
            };
            let meta = if opts.dictionary_strings {
                let fields: Vec<Field> = meta
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| match f.data_type() {
                        DataType::Utf8 if !opts.plain.contains(&f.name().as_str()) => {
                            f.as_ref().clone().with_data_type(DataType::Dictionary(
                                Box::new(DataType::Int32),
                                Box::new(DataType::Utf8),
                            ))
                        }
                        _ => f.as_ref().clone(),
                    })
                    .collect();
                let o = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields)));
                ArrowReaderMetadata::try_new(meta.metadata().clone(), o).map_err(dec)?
            } else {
                meta
            };
            let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta);
            let builder = match opts.columns {
                Some(cols) => {
                    let mut idx = Vec::with_capacity(cols.len());
                    for c in cols {
                        match builder.schema().index_of(c) {
                            Ok(i) => idx.push(i),
                            Err(_) if opts.optional.contains(c) => {}
                            Err(_) => {
                                return Err(LakeError::MissingColumn {
                                    path: name.clone(),
                                    column: (*c).to_string(),
                                });
                            }
                        }
                    }
                    let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
                    builder.with_projection(mask)
                }
                None => builder,
            };
            let builder = match opts.row_groups {
                Some(g) => builder.with_row_groups(g.to_vec()),
                None => builder,
            };
            let builder = match opts.rows {
                Some(ranges) => {
                    let mut sel = Vec::new();
                    let mut at = 0;
                    for (first, count) in ranges {
                        sel.push(RowSelector::skip(first.saturating_sub(at)));
                        sel.push(RowSelector::select(*count));
                        at = first.max(&at) + count;
                    }
                    builder.with_row_selection(RowSelection::from(sel))
                }
                None => builder,
            };
            builder
                .with_batch_size(opts.batch_size.max(1))
                .build()
                .map_err(dec)
        })?;
        Ok(Batches { stream, path: name })
    }

    /// The file's Arrow schema and its row groups' row counts.
    pub fn layout(&self, file: &FileMeta) -> Result<(SchemaRef, Vec<usize>), LakeError> {
        let f = Footer(self.metadata(file)?);
        Ok((f.schema().clone(), f.row_groups()))
    }

    /// The file's footer with its page locations, to keep for reading the file again.
    pub fn footer(&self, file: &FileMeta) -> Result<Footer, LakeError> {
        Ok(Footer(self.metadata_with(file, true)?))
    }

    fn metadata(&self, file: &FileMeta) -> Result<ArrowReaderMetadata, LakeError> {
        self.metadata_with(file, false)
    }

    /// The file's metadata, with its page index when `pages` (to skip pages by row).
    fn metadata_with(
        &self,
        file: &FileMeta,
        pages: bool,
    ) -> Result<ArrowReaderMetadata, LakeError> {
        block_on(async {
            let mut reader = ObjectReader {
                store: self.store.clone(),
                path: file.path.clone(),
                size: file.size,
            };
            let o = if pages {
                ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional)
            } else {
                ArrowReaderOptions::new()
            };
            ArrowReaderMetadata::load_async(&mut reader, o)
                .await
                .map_err(|source| LakeError::Decode {
                    path: file.path.to_string(),
                    source,
                })
        })
    }

    /// Every row of the file at `path` as one batch; `None` if there is no such file.
    pub fn read_all(&self, path: &Path) -> Result<Option<RecordBatch>, LakeError> {
        let Some(file) = self.head(path)? else {
            return Ok(None);
        };
        let opts = ReadOptions {
            batch_size: 1 << 20,
            ..ReadOptions::default()
        };
        let batches = self.read(&file, &opts)?;
        let schema = batches.schema();
        let all: Vec<RecordBatch> = batches.collect::<Result<_, _>>()?;
        arrow::compute::concat_batches(&schema, &all)
            .map(Some)
            .map_err(|source| LakeError::Arrow {
                table: "concatenating",
                source,
            })
    }

    /// Removes what unfinished writes left behind in `tables` (hidden objects; on the local
    /// file system also the backend's staging files `.<name>#N` and the `.<name>.tmp` files of
    /// earlier versions). Returns how many were removed.
    pub fn remove_unfinished(&self, tables: &[&str]) -> Result<usize, LakeError> {
        if let Some(root) = &self.local_root {
            return Ok(remove_hidden_local(root, tables));
        }
        let mut removed = 0;
        for t in tables {
            let hidden: Vec<Path> = block_on(async {
                let mut s = self.store.list(Some(&Path::from(*t)));
                let mut v = Vec::new();
                while let Some(Ok(m)) = s.next().await {
                    if m.location.filename().is_some_and(|n| n.starts_with('.')) {
                        v.push(m.location);
                    }
                }
                v
            });
            for p in hidden {
                block_on(self.store.delete(&p))
                    .map_err(|e| LakeError::storage("removing", &p, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn remove_hidden_local(root: &FsPath, tables: &[&str]) -> usize {
    let mut removed = 0;
    for table in tables {
        let Ok(days) = std::fs::read_dir(root.join(table)) else {
            continue;
        };
        for day in days.flatten() {
            let Ok(files) = std::fs::read_dir(day.path()) else {
                continue;
            };
            for f in files.flatten() {
                if f.file_name().to_string_lossy().starts_with('.')
                    && std::fs::remove_file(f.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
    }
    removed
}

/// Parquet's view of one object: ranged reads through the object store, the footer read at the
/// known file size.
struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// The record batches of one file, read on demand (blocking).
pub struct Batches {
    stream: ParquetRecordBatchStream<ObjectReader>,
    path: String,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches").field("path", &self.path).finish()
    }
}

impl Batches {
    /// The schema of the batches (after projection).
    pub fn schema(&self) -> SchemaRef {
        self.stream.schema().clone()
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, LakeError>;

    fn next(&mut self) -> Option<Self::Item> {
        block_on(self.stream.next()).map(|r| {
            r.map_err(|source| LakeError::Decode {
                path: self.path.clone(),
                source,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::series_daily::{SeriesBuilder, SeriesRow};

    fn batch(rows: u64) -> RecordBatch {
        let mut b = SeriesBuilder::default();
        for i in 0..rows {
            b.push(&SeriesRow {
                bucket_start: i as i64,
                packets: i,
                sources: 1,
                ports: 1,
                scanners: 0,
            });
        }
        b.finish().unwrap()
    }

    fn names(dir: &FsPath) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn a_failed_write_leaves_nothing_visible_and_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let path = paths::rollup_file(SeriesRow::TABLE, day);
        lake.write_batch(&path, SeriesRow::TABLE, &batch(3))
            .unwrap();
        // A second write fails half-way (its second batch is an error).
        let err = lake
            .write(
                &path,
                SeriesRow::TABLE,
                SeriesRow::schema(),
                [
                    Ok(batch(5)),
                    Err(ArrowError::ComputeError("made to fail".into())),
                ],
            )
            .unwrap_err();
        assert!(matches!(err, LakeError::Arrow { .. }), "{err}");
        let day_dir = dir.path().join("series_daily/date=2026-11-22");
        assert_eq!(
            names(&day_dir),
            ["rollup.parquet"],
            "no leftover, visible or hidden"
        );
        assert_eq!(lake.read_all(&path).unwrap().unwrap().num_rows(), 3);
    }

    #[test]
    fn unfinished_writes_are_invisible_and_swept() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let path = paths::part_file("flows", day, 1);
        lake.write_batch(&path, "flows", &batch(2)).unwrap();
        // What a crash mid-write leaves: the backend's staging file and our hidden name, and
        // a temporary file of the earlier writer.
        let day_dir = dir.path().join("flows/date=2026-11-22");
        for leftover in [
            ".part-000000000002.parquet#1",
            ".part-000000000002.parquet",
            ".part-000000000003.parquet.tmp",
        ] {
            std::fs::write(day_dir.join(leftover), b"PAR1 torn").unwrap();
        }
        let files = lake.day_files("flows", day).unwrap();
        assert_eq!(
            files.iter().map(FileMeta::name).collect::<Vec<_>>(),
            ["part-000000000001.parquet"]
        );
        assert_eq!(
            lake.days("flows").unwrap().into_iter().collect::<Vec<_>>(),
            [day]
        );
        assert_eq!(lake.remove_unfinished(&["flows"]).unwrap(), 3);
        assert_eq!(names(&day_dir), ["part-000000000001.parquet"]);
        assert!(
            lake.head(&paths::part_file("flows", day, 9))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn projection_reads_only_the_asked_columns_and_names_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let path = paths::rollup_file(SeriesRow::TABLE, day);
        lake.write_batch(&path, SeriesRow::TABLE, &batch(4))
            .unwrap();
        let file = lake.head(&path).unwrap().unwrap();
        let cols = [SeriesRow::COL.packets];
        let opts = ReadOptions {
            columns: Some(&cols),
            ..ReadOptions::default()
        };
        let got: Vec<RecordBatch> = lake
            .read(&file, &opts)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got[0].num_columns(), 1);
        assert_eq!(got[0].schema().field(0).name(), "packets");
        let bad = ["nope"];
        let opts = ReadOptions {
            columns: Some(&bad),
            ..ReadOptions::default()
        };
        assert!(matches!(
            lake.read(&file, &opts),
            Err(LakeError::MissingColumn { .. })
        ));
        assert!(matches!(
            Lake::open("s3://bucket/lake"),
            Err(LakeError::Location { .. })
        ));
    }

    #[test]
    fn rollup_columns_of_distinct_values_have_no_dictionary_and_a_kept_footer_reads_the_same() {
        use crate::tables::ip_daily::{IpDailyBuilder, IpRow};
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let mut b = IpDailyBuilder::new(&[]);
        for k in 0..3000u32 {
            b.push(&IpRow {
                src_ip: std::net::Ipv4Addr::from(0x0a00_0000 + k).to_string(),
                first_seen: 1_764_000_000_000_000 + i64::from(k),
                last_seen: 1_764_000_000_500_000 + i64::from(k),
                tcp_ports: vec![23, (k % 60_000) as u16 + 1],
                ports: vec![23, (k % 60_000) as u16 + 1],
                org: Some(["censys", "shodan"][k as usize % 2].into()),
                ..IpRow::default()
            });
        }
        let path = paths::rollup_file(IpRow::TABLE, day);
        lake.write_batch(&path, IpRow::TABLE, &b.finish().unwrap())
            .unwrap();
        let file = lake.head(&path).unwrap().unwrap();
        let footer = lake.footer(&file).unwrap();
        let md = footer.0.metadata();
        let dictionary = |name: &str| {
            md.row_group(0)
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("{name}"))
                .dictionary_page_offset()
                .is_some()
        };
        let ip = IpRow::COL;
        for c in [ip.src_ip, ip.first_seen, ip.last_seen] {
            assert!(!dictionary(c), "{c}");
        }
        for c in [ip.ports, ip.tcp_ports, ip.udp_ports] {
            assert!(!dictionary(&format!("{c}.list.item")), "{c}");
        }
        assert!(
            dictionary(ip.org),
            "a column of few values keeps its dictionary"
        );
        assert!(
            md.page_index().is_some(),
            "the kept footer has the page locations"
        );
        assert_eq!(footer.row_groups(), lake.layout(&file).unwrap().1);
        assert_eq!(footer.row_groups_holding(ip.src_ip, "10.0.11.183"), [0]);
        assert!(
            footer.row_groups_holding(ip.src_ip, "10.1.0.0").is_empty(),
            "past the largest address text"
        );
        let cols = [ip.src_ip, ip.first_seen];
        let read = |footer| -> Vec<RecordBatch> {
            let opts = ReadOptions {
                columns: Some(&cols),
                rows: Some(&[(2999, 1), (0, 0)][..1]),
                footer,
                ..ReadOptions::default()
            };
            lake.read(&file, &opts)
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(read(Some(&footer)), read(None));
        assert_eq!(read(Some(&footer))[0].num_rows(), 1);
    }
}
