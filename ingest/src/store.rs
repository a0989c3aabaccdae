//! Store stage: the one thread that owns the write-ahead log, the dedup watermarks and the
//! rows waiting for Parquet.
//!
//! Ingest tasks send validated batches here. The thread takes every batch waiting, checks each
//! against the sensor's watermark (highest stored seq: lower or equal is a resend), appends the
//! new ones to the WAL, fsyncs once for the group (group commit) and only then answers — the
//! answer is what the gRPC ack waits for. A flush seals the WAL segment, writes its rows to
//! Parquet (`lake`), records a checkpoint (`_state/checkpoint.json`: last segment in Parquet
//! and the watermarks) and deletes the segment. At start, segments after the checkpoint are
//! replayed and written, so acknowledged data survives a crash and is written once.
use std::{
    collections::{BTreeMap, VecDeque},
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use prost::Message;
use scanscope_proto::v1::{
    AckStatus, Batch, Counter, Lost, LostStage, SensorStatus, StatusResponse, TableRows,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use scanscope_lake::{Lake, tables};

use crate::{
    error::{CollectorError, FlushError, IngestError, StorageError},
    sink::Rows,
    wal::{self, Wal},
};

/// Durable collector state, rewritten atomically after each segment reaches Parquet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every WAL segment up to and including this one is in Parquet.
    pub flushed_through: u64,
    /// Highest stored seq per sensor as of `flushed_through`.
    pub sensors: BTreeMap<String, u64>,
}

impl Checkpoint {
    fn path(root: &Path) -> PathBuf {
        root.join("_state").join("checkpoint.json")
    }

    /// Reads the checkpoint (default if none yet).
    pub fn load(root: &Path) -> Result<Checkpoint, CollectorError> {
        let p = Checkpoint::path(root);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| CollectorError::Checkpoint {
                path: p,
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Checkpoint::default()),
            Err(source) => Err(CollectorError::Checkpoint { path: p, source }),
        }
    }

    /// Writes the checkpoint atomically (temp file, fsync, rename, fsync directory).
    pub fn store(&self, root: &Path) -> Result<(), FlushError> {
        let p = Checkpoint::path(root);
        let dir = p.parent().expect("checkpoint has a parent");
        let tmp = dir.join(".checkpoint.json.tmp");
        let body = serde_json::to_vec_pretty(self).expect("checkpoint serialises");
        let r = fs::create_dir_all(dir)
            .and_then(|()| File::create(&tmp))
            .and_then(|mut f| {
                f.write_all(&body)?;
                f.sync_all()
            })
            .and_then(|()| fs::rename(&tmp, &p))
            .and_then(|()| File::open(dir)?.sync_all());
        r.map_err(|source| {
            let _best_effort = fs::remove_file(&tmp).is_ok();
            FlushError::Checkpoint { path: p, source }
        })
    }
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The data directory (`--data`): the write-ahead log (`_wal/`) and state (`_state/`).
    pub root: PathBuf,
    /// The lake the rows are written to.
    pub lake: Lake,
    /// Flush early when this many rows wait for Parquet.
    pub flush_rows: usize,
}

/// A request to the store thread.
#[derive(Debug)]
pub enum Command {
    /// Store a validated batch; `encoded` is its protobuf encoding (WAL record body).
    Submit {
        batch: Batch,
        encoded: Vec<u8>,
        /// Set once a batch of the same stream failed: later ones must fail too, or a resend
        /// of the failed one would look like a duplicate of a later one.
        failed: Arc<AtomicBool>,
        reply: oneshot::Sender<Result<AckStatus, IngestError>>,
    },
    /// Record a refused batch as a `lost` row (stage `collector_rejected`).
    Rejected {
        sensor: String,
        reason: &'static str,
        detail: String,
    },
    /// Commit everything accepted so far to Parquet.
    Flush {
        reply: Option<oneshot::Sender<Result<(), FlushError>>>,
    },
    /// Report status.
    Status {
        reply: oneshot::Sender<StatusResponse>,
    },
}

#[derive(Debug, Default)]
struct SensorInfo {
    last_batch_us: i64,
    batches: u64,
    rows: u64,
}

#[derive(Debug, Default)]
struct TableInfo {
    rows: u64,
    files: u64,
}

/// The store (owned by its thread).
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    wal: Wal,
    /// Highest stored seq per sensor, including batches not yet in Parquet.
    watermarks: BTreeMap<String, u64>,
    /// Batches of the open WAL segment.
    current: Vec<Batch>,
    current_rows: usize,
    /// Sealed segments whose Parquet write has not succeeded yet (oldest first), with the
    /// watermarks as of their end.
    sealed: VecDeque<(u64, Vec<Batch>, BTreeMap<String, u64>)>,
    sensors: BTreeMap<String, SensorInfo>,
    tables: BTreeMap<&'static str, TableInfo>,
    rejected: BTreeMap<&'static str, u64>,
    duplicates: u64,
    disk_full: bool,
    sealed_wal_bytes: u64,
}

/// A handle the gRPC side uses to talk to the store thread.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Command>,
}

impl StoreHandle {
    /// Queues a batch; the receiver answers once it is durable (or refused). Batches queued
    /// one after another are answered in that order.
    pub async fn enqueue(
        &self,
        batch: Batch,
        encoded: Vec<u8>,
        failed: Arc<AtomicBool>,
    ) -> Result<oneshot::Receiver<Result<AckStatus, IngestError>>, IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Submit {
                batch,
                encoded,
                failed,
                reply,
            })
            .await
            .map_err(|_| IngestError::ShuttingDown)?;
        Ok(rx)
    }

    /// Submits a batch and waits until it is durable (or refused).
    pub async fn submit(&self, batch: Batch, encoded: Vec<u8>) -> Result<AckStatus, IngestError> {
        let rx = self.enqueue(batch, encoded, Arc::default()).await?;
        rx.await.map_err(|_| IngestError::ShuttingDown)?
    }

    /// Records a refused batch (if the store still runs: at shutdown the refusal is only
    /// logged).
    pub async fn rejected(&self, sensor: String, reason: &'static str, detail: String) {
        let cmd = Command::Rejected {
            sensor,
            reason,
            detail,
        };
        if self.tx.send(cmd).await.is_err() {
            warn!(
                reason,
                "store stopped: a refused batch is not recorded in the lake"
            );
        }
    }

    /// Flushes to Parquet and waits for the result.
    pub async fn flush(&self) -> Result<(), FlushError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush { reply: Some(reply) })
            .await
            .map_err(|_| FlushError::StoreStopped)?;
        rx.await.map_err(|_| FlushError::StoreStopped)?
    }

    /// Asks for a flush without waiting (none is queued if one is already waiting).
    pub fn try_flush(&self) {
        let _queue_full_or_stopped = self.tx.try_send(Command::Flush { reply: None }).is_err();
    }

    /// Current status.
    pub async fn status(&self) -> Option<StatusResponse> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Status { reply }).await.ok()?;
        rx.await.ok()
    }
}

fn wal_dir(root: &Path) -> PathBuf {
    root.join("_wal")
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Store {
    /// Opens the lake: removes temporary files a crash left, replays every WAL segment after
    /// the checkpoint into Parquet, and opens a fresh segment.
    pub fn open(cfg: StoreConfig) -> Result<Store, CollectorError> {
        let root = &cfg.root;
        fs::create_dir_all(root.join("_state")).map_err(|source| CollectorError::DataDir {
            path: root.clone(),
            source,
        })?;
        let removed = cfg.lake.remove_unfinished(&tables::INGEST)?;
        if removed > 0 {
            info!(files = removed, "removed temporary files left by a crash");
        }
        let cp = Checkpoint::load(root)?;
        let wdir = wal_dir(root);
        let segs = wal::segments(&wdir)?;
        // Segments after the checkpoint are queued as sealed and written by the ordinary
        // flush below, with the watermarks as of their end.
        let mut sealed = VecDeque::new();
        let mut sealed_wal_bytes = 0;
        let mut marks = cp.sensors.clone();
        for &seg in &segs {
            let path = wdir.join(format!("{seg:012}.wal"));
            if seg <= cp.flushed_through {
                // Already in Parquet; the crash came before the segment was deleted.
                if let Err(e) = fs::remove_file(&path) {
                    warn!(segment = seg, error = %e, "could not delete a committed WAL segment");
                }
                continue;
            }
            let r = wal::replay(&wdir, seg)?;
            if r.truncated > 0 {
                warn!(
                    segment = seg,
                    bytes = r.truncated,
                    "cut a torn record off the write-ahead log (never acknowledged)"
                );
            }
            for b in r.batches.iter().filter(|b| b.seq > 0) {
                let w = marks.entry(b.sensor_id.clone()).or_insert(0);
                *w = (*w).max(b.seq);
            }
            info!(
                segment = seg,
                batches = r.batches.len(),
                "replayed write-ahead log into the lake"
            );
            sealed_wal_bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            sealed.push_back((seg, r.batches, marks.clone()));
        }
        let next = segs.last().copied().unwrap_or(0).max(cp.flushed_through) + 1;
        let wal = Wal::open(&wdir, next)?;
        let mut store = Store {
            watermarks: marks,
            cfg,
            wal,
            current: Vec::new(),
            current_rows: 0,
            sealed,
            sensors: BTreeMap::new(),
            tables: BTreeMap::new(),
            rejected: BTreeMap::new(),
            duplicates: 0,
            disk_full: false,
            sealed_wal_bytes,
        };
        store.flush()?;
        Ok(store)
    }

    /// Starts the store thread; it runs until every handle is dropped, then flushes.
    pub fn spawn(self, queue: usize) -> (StoreHandle, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue);
        let h = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || self.run(rx))
            .expect("spawning the store thread");
        (StoreHandle { tx }, h)
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.blocking_recv() {
            let mut submits = Vec::new();
            let mut others = Vec::new();
            match cmd {
                Command::Submit { .. } => submits.push(cmd),
                c => others.push(c),
            }
            // Group commit: take everything already waiting.
            while submits.len() < 4096 {
                match rx.try_recv() {
                    Ok(c @ Command::Submit { .. }) => submits.push(c),
                    Ok(c) => others.push(c),
                    Err(_) => break,
                }
            }
            if !submits.is_empty() {
                self.submit_group(submits);
            }
            for c in others {
                self.handle(c);
            }
            if self.current_rows >= self.cfg.flush_rows
                && let Err(e) = self.flush()
            {
                warn!(error = %e, "flush failed; the write-ahead log keeps the data and the next flush retries");
            }
        }
        if let Err(e) = self.flush() {
            error!(error = %e, "final flush failed; the write-ahead log keeps the data for the next start");
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Submit { .. } => unreachable!("submits are grouped"),
            Command::Rejected {
                sensor,
                reason,
                detail,
            } => {
                *self.rejected.entry(reason).or_default() += 1;
                let b = Batch {
                    sensor_id: sensor,
                    seq: 0,
                    created_us: now_us(),
                    lost: vec![Lost {
                        ts_us: now_us(),
                        stage: LostStage::CollectorRejected as i32,
                        unit: "batches".into(),
                        count: 1,
                        detail,
                    }],
                    ..Default::default()
                };
                let enc = b.encode_to_vec();
                let before = self.wal.len();
                match self.wal.append(&enc).and_then(|()| self.wal.sync()) {
                    Ok(()) => {
                        self.current_rows += 1;
                        self.current.push(b);
                    }
                    Err(e) => {
                        warn!(error = %e, "could not record a refused batch");
                        self.rollback(before);
                    }
                }
            }
            Command::Flush { reply } => {
                let r = self.flush();
                match reply {
                    Some(reply) => {
                        if let Err(Err(e)) = reply.send(r) {
                            warn!(error = %e, "flush failed (nobody waits for the answer)");
                        }
                    }
                    None => {
                        if let Err(e) = r {
                            warn!(error = %e, "flush failed; the write-ahead log keeps the data and the next flush retries");
                        }
                    }
                }
            }
            Command::Status { reply } => {
                let _asker_gone = reply.send(self.status()).is_err();
            }
        }
    }

    fn submit_group(&mut self, cmds: Vec<Command>) {
        let before = self.wal.len();
        let mut tentative: BTreeMap<String, u64> = BTreeMap::new();
        type Reply = oneshot::Sender<Result<AckStatus, IngestError>>;
        let mut accepted: Vec<(Batch, Reply, Arc<AtomicBool>)> = Vec::new();
        let mut failure: Option<StorageError> = None;
        let mut failed: Vec<(Reply, Arc<AtomicBool>)> = Vec::new();
        for c in cmds {
            let Command::Submit {
                batch,
                encoded,
                failed: stream_failed,
                reply,
            } = c
            else {
                continue;
            };
            if stream_failed.load(Ordering::Relaxed) {
                let _stream_gone = reply
                    .send(Err(StorageError::EarlierBatchFailed.into()))
                    .is_err();
                continue;
            }
            let mark = tentative
                .get(&batch.sensor_id)
                .or_else(|| self.watermarks.get(&batch.sensor_id))
                .copied()
                .unwrap_or(0);
            if batch.seq <= mark {
                self.duplicates += 1;
                let _stream_gone = reply.send(Ok(AckStatus::Duplicate)).is_err();
                continue;
            }
            if failure.is_some() {
                failed.push((reply, stream_failed));
                continue;
            }
            match self.wal.append(&encoded) {
                Ok(()) => {
                    tentative.insert(batch.sensor_id.clone(), batch.seq);
                    accepted.push((batch, reply, stream_failed));
                }
                Err(e) => {
                    failure = Some(e.into());
                    failed.push((reply, stream_failed));
                }
            }
        }
        if failure.is_none()
            && !accepted.is_empty()
            && let Err(e) = self.wal.sync()
        {
            failure = Some(e.into());
        }
        if let Some(f) = failure {
            // Nothing of this group is durable: undo it all.
            self.rollback(before);
            let disk_full = matches!(f, StorageError::DiskFull);
            if !self.disk_full && disk_full {
                error!(
                    "disk full: no longer acknowledging batches; sensors spool until space is back"
                );
            }
            self.disk_full = disk_full;
            for (reply, stream_failed) in accepted.into_iter().map(|(_, r, f)| (r, f)).chain(failed)
            {
                stream_failed.store(true, Ordering::Relaxed);
                let _stream_gone = reply.send(Err(f.clone().into())).is_err();
            }
            return;
        }
        if self.disk_full && !accepted.is_empty() {
            info!("disk space is back: acknowledging again");
            self.disk_full = false;
        }
        let now = now_us();
        for (batch, reply, _) in accepted {
            let rows = batch.lake_rows();
            self.watermarks.insert(batch.sensor_id.clone(), batch.seq);
            let s = self.sensors.entry(batch.sensor_id.clone()).or_default();
            s.batches += 1;
            s.rows += rows;
            s.last_batch_us = now;
            self.current_rows += rows as usize;
            self.current.push(batch);
            let _stream_gone = reply.send(Ok(AckStatus::Stored)).is_err();
        }
    }

    /// Seals the open segment (if it holds anything) and writes every sealed segment to
    /// Parquet, oldest first. On failure the segments stay sealed (and in the WAL) and the
    /// next flush retries.
    pub fn flush(&mut self) -> Result<(), FlushError> {
        if !self.current.is_empty() {
            let len = self.wal.len();
            match self.wal.rotate() {
                Ok(seg) => {
                    self.sealed_wal_bytes += len;
                    let batches = std::mem::take(&mut self.current);
                    self.current_rows = 0;
                    self.sealed
                        .push_back((seg, batches, self.watermarks.clone()));
                }
                Err(e) => {
                    self.note_flush_error(e.is_disk_full());
                    return Err(e.into());
                }
            }
        }
        while let Some((seg, batches, marks)) = self.sealed.front() {
            let started = Instant::now();
            let mut rows = Rows::default();
            for b in batches {
                rows.push(b);
            }
            let n = rows.len();
            let written = match rows.write_segment(&self.cfg.lake, *seg) {
                Ok(w) => w,
                Err(e) => {
                    self.note_flush_error(e.is_disk_full());
                    return Err(e.into());
                }
            };
            let cp = Checkpoint {
                flushed_through: *seg,
                sensors: marks.clone(),
            };
            if let Err(e) = cp.store(&self.cfg.root) {
                self.note_flush_error(e.is_disk_full());
                return Err(e);
            }
            let seg = *seg;
            let bytes: u64 = written.iter().map(|w| w.bytes).sum();
            for w in &written {
                let t = self.tables.entry(w.table).or_default();
                t.rows += w.rows as u64;
                t.files += 1;
            }
            if let Ok(m) = fs::metadata(wal_dir(&self.cfg.root).join(format!("{seg:012}.wal"))) {
                self.sealed_wal_bytes = self.sealed_wal_bytes.saturating_sub(m.len());
            }
            if let Err(e) = self.wal.remove(seg) {
                warn!(error = %e, "could not delete a committed WAL segment");
            }
            self.sealed.pop_front();
            info!(
                segment = seg,
                rows = n,
                files = written.len(),
                bytes,
                ms = started.elapsed().as_millis() as u64,
                "flushed"
            );
        }
        Ok(())
    }

    /// Cuts the open segment back to `len` bytes (undoing appends that were not made durable).
    fn rollback(&mut self, len: u64) {
        if let Err(e) = self.wal.rollback(len) {
            // The appended bytes stay. They were never acknowledged: a replay stores them, and
            // the agent's resends of those seqs are then recognised as duplicates.
            warn!(error = %e, "could not cut the write-ahead log back after a failed commit");
        }
    }

    fn note_flush_error(&mut self, disk_full: bool) {
        if disk_full && !self.disk_full {
            error!("disk full while writing Parquet; keeping the data in the WAL and retrying");
        }
        if disk_full {
            self.disk_full = true;
        }
    }

    fn status(&self) -> StatusResponse {
        let sensors = self
            .watermarks
            .iter()
            .map(|(id, &last_seq)| {
                let i = self.sensors.get(id);
                SensorStatus {
                    sensor_id: id.clone(),
                    last_seq,
                    last_batch_us: i.map_or(0, |i| i.last_batch_us),
                    batches: i.map_or(0, |i| i.batches),
                    rows: i.map_or(0, |i| i.rows),
                }
            })
            .collect();
        let tables = tables::INGEST
            .iter()
            .map(|&t| {
                let i = self.tables.get(t);
                TableRows {
                    table: t.into(),
                    rows: i.map_or(0, |i| i.rows),
                    files: i.map_or(0, |i| i.files),
                }
            })
            .collect();
        let pending_rows = self.current_rows as u64
            + self
                .sealed
                .iter()
                .flat_map(|(_, b, _)| b.iter())
                .map(Batch::lake_rows)
                .sum::<u64>();
        StatusResponse {
            sensors,
            tables,
            rejected: self
                .rejected
                .iter()
                .map(|(r, &n)| Counter {
                    name: (*r).into(),
                    value: n,
                })
                .collect(),
            disk_full: self.disk_full,
            wal_bytes: self.wal.len() + self.sealed_wal_bytes,
            pending_rows,
            duplicates: self.duplicates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanscope_proto::v1::{Flow, Kind};

    fn batch(sensor: &str, seq: u64, n: usize) -> Batch {
        let t = 1_790_000_000_000_000;
        Batch {
            sensor_id: sensor.into(),
            seq,
            flows: (0..n)
                .map(|i| Flow {
                    interval_start_us: t,
                    interval_secs: 1.0,
                    src_ip: vec![10, 0, (seq % 256) as u8, i as u8],
                    dst_ip: vec![10, 1, 0, 1],
                    proto: 6,
                    kind: Kind::TcpSyn as i32,
                    dst_port: 80,
                    packets: 1,
                    bytes: 40,
                    first_seen_us: t,
                    last_seen_us: t,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn cfg(root: &Path) -> StoreConfig {
        StoreConfig {
            root: root.to_path_buf(),
            lake: Lake::local(root).unwrap(),
            flush_rows: 1_000_000,
        }
    }

    fn submit(s: &mut Store, b: Batch) -> Result<AckStatus, IngestError> {
        let (tx, mut rx) = oneshot::channel();
        let encoded = b.encode_to_vec();
        s.submit_group(vec![Command::Submit {
            batch: b,
            encoded,
            failed: Arc::default(),
            reply: tx,
        }]);
        rx.try_recv().unwrap()
    }

    fn flows_rows(root: &Path) -> usize {
        let mut n = 0;
        for day in fs::read_dir(root.join("flows")).unwrap().flatten() {
            for f in fs::read_dir(day.path()).unwrap().flatten() {
                let r =
                    parquet::file::reader::SerializedFileReader::new(File::open(f.path()).unwrap())
                        .unwrap();
                use parquet::file::reader::FileReader;
                n += r.metadata().file_metadata().num_rows() as usize;
            }
        }
        n
    }

    #[test]
    fn dedup_flush_and_restart() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(cfg(d.path())).unwrap();
        assert_eq!(submit(&mut s, batch("a", 1, 3)).unwrap(), AckStatus::Stored);
        assert_eq!(submit(&mut s, batch("a", 2, 2)).unwrap(), AckStatus::Stored);
        assert_eq!(
            submit(&mut s, batch("a", 2, 2)).unwrap(),
            AckStatus::Duplicate
        );
        assert_eq!(
            submit(&mut s, batch("a", 1, 2)).unwrap(),
            AckStatus::Duplicate
        );
        assert_eq!(submit(&mut s, batch("b", 1, 1)).unwrap(), AckStatus::Stored);
        s.flush().unwrap();
        assert_eq!(flows_rows(d.path()), 6);
        assert_eq!(submit(&mut s, batch("a", 3, 4)).unwrap(), AckStatus::Stored);
        // "Crash": drop without flushing. The WAL holds seq 3.
        drop(s);
        let mut s = Store::open(cfg(d.path())).unwrap();
        assert_eq!(flows_rows(d.path()), 10);
        assert_eq!(
            submit(&mut s, batch("a", 3, 4)).unwrap(),
            AckStatus::Duplicate
        );
        assert_eq!(
            submit(&mut s, batch("b", 1, 1)).unwrap(),
            AckStatus::Duplicate
        );
        assert_eq!(submit(&mut s, batch("b", 5, 1)).unwrap(), AckStatus::Stored);
        let st = s.status();
        assert_eq!(st.duplicates, 2);
        assert_eq!(
            st.sensors
                .iter()
                .map(|x| (x.sensor_id.as_str(), x.last_seq))
                .collect::<Vec<_>>(),
            [("a", 3), ("b", 5)]
        );
        s.flush().unwrap();
        assert_eq!(flows_rows(d.path()), 11);
        assert!(wal::segments(&wal_dir(d.path())).unwrap().len() == 1);
    }

    #[test]
    fn crash_after_parquet_before_checkpoint_writes_once() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(cfg(d.path())).unwrap();
        submit(&mut s, batch("a", 1, 5)).unwrap();
        let seg = s.wal.segment();
        // Write the segment's Parquet but "crash" before the checkpoint.
        let mut rows = Rows::default();
        rows.push(&s.current[0]);
        rows.write_segment(&s.cfg.lake, seg).unwrap();
        drop(s);
        let s = Store::open(cfg(d.path())).unwrap();
        assert_eq!(flows_rows(d.path()), 5);
        assert_eq!(Checkpoint::load(d.path()).unwrap().flushed_through, seg);
        assert_eq!(s.watermarks.get("a"), Some(&1));
    }
}
