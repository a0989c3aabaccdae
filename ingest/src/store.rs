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
//!
//! The flushes the thread starts itself (enough rows or bytes waiting, the periodic timer) write
//! Parquet on a writer thread of their own, one segment at a time, while this thread goes on
//! appending and acknowledging: an ack never waits for a Parquet write. An asked-for flush (an
//! operator's, the one at stop) waits for every write.
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

use bytes::Bytes;
use prost::Message;
use scanscope_proto::v1::{
    AckStatus, Batch, Counter, Lost, LostStage, SensorStatus, StatusResponse, TableRows,
};
use scanscope_telemetry::metrics::{self, Histogram};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use scanscope_lake::{Lake, Written, tables};

use crate::{
    error::{CollectorError, FlushError, IngestError, StorageError},
    sink::Rows,
    wal::{self, Wal},
};

/// What deduplication is keyed by: a sensor id and the agent installation (instance id; 0 for
/// agents that predate instance ids).
pub type SensorKey = (String, u64);

/// Highest stored seq per sensor and instance.
pub type Watermarks = BTreeMap<SensorKey, u64>;

/// A seq this far above the sensor's watermark is refused: it would silence every later real
/// batch (an agent's restarts move its seq forward by at most 4096 each).
pub const MAX_SEQ_JUMP: u64 = 1 << 32;

/// The watermark of one sensor instance, as the checkpoint stores it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mark {
    pub sensor: String,
    pub instance: u64,
    pub seq: u64,
}

/// Durable collector state, rewritten atomically after each segment reaches Parquet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every WAL segment up to and including this one is in Parquet.
    pub flushed_through: u64,
    /// Highest stored seq per sensor (instance 0) as of `flushed_through`.
    pub sensors: BTreeMap<String, u64>,
    /// Highest stored seq per sensor instance (instances other than 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<Mark>,
}

impl Checkpoint {
    /// The checkpoint of `marks` as of segment `seg`.
    pub fn of(seg: u64, marks: &Watermarks) -> Checkpoint {
        let mut cp = Checkpoint {
            flushed_through: seg,
            ..Checkpoint::default()
        };
        for ((sensor, instance), &seq) in marks {
            if *instance == 0 {
                cp.sensors.insert(sensor.clone(), seq);
            } else {
                cp.instances.push(Mark {
                    sensor: sensor.clone(),
                    instance: *instance,
                    seq,
                });
            }
        }
        cp
    }

    /// The watermarks it holds.
    pub fn marks(&self) -> Watermarks {
        let mut m: Watermarks = self
            .sensors
            .iter()
            .map(|(s, &q)| ((s.clone(), 0), q))
            .collect();
        for x in &self.instances {
            m.insert((x.sensor.clone(), x.instance), x.seq);
        }
        m
    }
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

/// Capacity refusals are logged at most 20 per 10 s (`suppressed`: those not logged since).
static CAPACITY_LOGGED: scanscope_telemetry::Throttle =
    scanscope_telemetry::Throttle::new(std::time::Duration::from_secs(10), 20);

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The data directory (`--data`): the write-ahead log (`_wal/`) and state (`_state/`).
    pub root: PathBuf,
    /// The lake the rows are written to.
    pub lake: Lake,
    /// Flush early when this many rows wait for Parquet.
    pub flush_rows: usize,
    /// Flush early when this many bytes (encoded batches) wait for Parquet.
    pub flush_bytes: u64,
    /// Beyond this many bytes not yet in Parquet (a lake that cannot be written), batches are
    /// refused as UNAVAILABLE: the agents spool until the collector catches up.
    pub max_unflushed_bytes: u64,
    /// Most distinct sensor ids (new ids beyond it are refused as UNAVAILABLE: their agents
    /// spool and retry).
    pub max_sensors: usize,
    /// Most agent instances remembered per sensor id.
    pub max_instances: usize,
}

impl StoreConfig {
    /// Defaults for a data directory and its lake.
    pub fn new(root: PathBuf, lake: Lake) -> StoreConfig {
        StoreConfig {
            root,
            lake,
            flush_rows: 2_000_000,
            flush_bytes: 256 << 20,
            max_unflushed_bytes: 2 << 30,
            max_sensors: 10_000,
            max_instances: 64,
        }
    }
}

/// What the store keeps of a submitted batch until its Parquet write: who sent it, its
/// sequence number and its rows. The rows themselves travel as the WAL body; the decoded batch
/// stays (and is freed) on the sender's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub sensor_id: String,
    pub instance_id: u64,
    pub seq: u64,
    pub rows: u64,
}

impl Head {
    pub fn of(b: &Batch) -> Head {
        Head {
            sensor_id: b.sensor_id.clone(),
            instance_id: b.instance_id,
            seq: b.seq,
            rows: b.lake_rows(),
        }
    }
}

/// A request to the store thread.
#[derive(Debug)]
pub enum Command {
    /// Store a validated batch; `encoded` is its protobuf encoding (WAL record body).
    Submit {
        batch: Head,
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
        /// `collector_rejected`, or `collector_denied` for a sensor id the credentials do not
        /// name.
        stage: LostStage,
    },
    /// Commit everything accepted so far to Parquet.
    Flush {
        reply: Option<oneshot::Sender<Result<(), FlushError>>>,
    },
    /// Report status.
    Status {
        reply: oneshot::Sender<StatusResponse>,
    },
    /// Flush and stop, though handles remain (a stalled peer's connection task may hold one);
    /// commands after this one are answered `ShuttingDown`.
    Stop,
    /// A Parquet write on the writer thread finished (its result is taken from its thread).
    Written,
}

#[derive(Debug, Default)]
struct SensorInfo {
    last_batch_us: i64,
    batches: u64,
    rows: u64,
    /// Instance → when its last batch arrived (this process).
    instances: BTreeMap<u64, i64>,
    /// The instance of the last batch.
    last_instance: u64,
    /// Two instances sent within `SHARED_WINDOW_US` of each other.
    shared_id: bool,
}

/// Batches of two instances of one sensor id this close in time: two agents share the id.
const SHARED_WINDOW_US: i64 = 600 * 1_000_000;

/// Refused batches counted between flushes, by (sender, reason, stage).
#[derive(Debug, Default)]
struct Refusals {
    groups: BTreeMap<(String, &'static str, LostStage), RefusalGroup>,
}

#[derive(Debug)]
struct RefusalGroup {
    count: u64,
    /// The first refusal's message.
    detail: String,
}

/// Distinct senders counted apart between two flushes; the rest are counted under
/// [`OTHER_SENDERS`].
const MAX_REFUSAL_GROUPS: usize = 1024;
/// The sender label of refusals beyond [`MAX_REFUSAL_GROUPS`].
const OTHER_SENDERS: &str = "peers:other";

impl Refusals {
    fn add(&mut self, sender: String, reason: &'static str, stage: LostStage, detail: String) {
        let key = if self.groups.len() >= MAX_REFUSAL_GROUPS
            && !self.groups.contains_key(&(sender.clone(), reason, stage))
        {
            (OTHER_SENDERS.to_string(), reason, stage)
        } else {
            (sender, reason, stage)
        };
        self.groups
            .entry(key)
            .and_modify(|g| g.count += 1)
            .or_insert(RefusalGroup { count: 1, detail });
    }
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
    /// Highest stored seq per sensor instance, including batches not yet in Parquet.
    watermarks: Watermarks,
    /// Batches of the open WAL segment, as their records' bodies.
    current: Vec<Bytes>,
    current_rows: usize,
    current_bytes: u64,
    /// Sealed segments whose Parquet write has not succeeded yet (oldest first).
    sealed: VecDeque<Sealed>,
    sensors: BTreeMap<String, SensorInfo>,
    tables: BTreeMap<&'static str, TableInfo>,
    rejected: BTreeMap<&'static str, u64>,
    /// Refusals since the last flush, recorded as `lost` rows when it starts.
    refusals: Refusals,
    duplicates: u64,
    disk_full: bool,
    sealed_wal_bytes: u64,
    /// The Parquet write of the oldest sealed segment, running on its own thread.
    writing: Option<Writing>,
    /// Wakes the store thread when a write finishes (none for a store used in place).
    wake: Option<mpsc::WeakSender<Command>>,
}

/// A Parquet write running on the writer thread: its result is the written files and rows.
#[derive(Debug)]
struct Writing {
    started: Instant,
    thread: std::thread::JoinHandle<Result<(Vec<Written>, usize), FlushError>>,
}

/// Writes a sealed segment's batches to Parquet, then the checkpoint after it (the watermarks
/// as of its end): the files and rows written.
fn write_sealed(
    lake: &Lake,
    root: &Path,
    seg: u64,
    bodies: &[Bytes],
    marks: &Watermarks,
) -> Result<(Vec<Written>, usize), FlushError> {
    let mut rows = Rows::default();
    for body in bodies {
        // From `Bytes`: the rows' addresses are slices of the body, not copies.
        match Batch::decode(body.clone()) {
            Ok(b) => rows.push(&b),
            Err(e) => {
                // Bodies are the store's own encodings: this is a bug, and counted.
                error!(segment = seg, error = %e, "a held batch does not decode");
                rows.push(&collector_lost(
                    LostStage::CollectorWal,
                    "batches",
                    1,
                    format!("segment {seg}: a held batch does not decode: {e}"),
                ));
            }
        }
    }
    let n = rows.len();
    let written = rows.write_segment(lake, seg)?;
    Checkpoint::of(seg, marks).store(root)?;
    Ok((written, n))
}

/// A sealed WAL segment waiting for its Parquet write: its batches as the encoded bodies of
/// its records (decoded again for the write: a decoded batch takes several times the memory,
/// and holding the listeners' allocations until a flush costs them fresh pages), its lake
/// rows, and the watermarks as of its end.
#[derive(Debug)]
struct Sealed {
    segment: u64,
    bodies: Vec<Bytes>,
    rows: u64,
    marks: Watermarks,
}

/// Seconds per flushed WAL segment (WAL → Parquet → checkpoint).
pub(crate) static FLUSH_SECONDS: std::sync::LazyLock<Histogram> = std::sync::LazyLock::new(|| {
    metrics::register(
        "scanscope_ingest_flush_seconds",
        "Seconds to write one sealed WAL segment to Parquet and checkpoint it",
        metrics::seconds_histogram(),
    )
});

/// A handle the gRPC side uses to talk to the store thread.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Command>,
}

impl StoreHandle {
    /// Commands waiting for the store thread.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues a batch; the receiver answers once it is durable (or refused). Batches queued
    /// one after another are answered in that order.
    pub async fn enqueue(
        &self,
        batch: &Batch,
        encoded: Vec<u8>,
        failed: Arc<AtomicBool>,
    ) -> Result<oneshot::Receiver<Result<AckStatus, IngestError>>, IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Submit {
                batch: Head::of(batch),
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
        let rx = self.enqueue(&batch, encoded, Arc::default()).await?;
        rx.await.map_err(|_| IngestError::ShuttingDown)?
    }

    /// Records a refused batch (if the store still runs: at shutdown the refusal is only
    /// logged).
    pub async fn rejected(
        &self,
        sensor: String,
        reason: &'static str,
        detail: String,
        stage: LostStage,
    ) {
        let cmd = Command::Rejected {
            sensor,
            reason,
            detail,
            stage,
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

    /// Asks the store thread to flush and stop (join its thread to wait for it).
    pub async fn stop(&self) {
        let _already_stopped = self.tx.send(Command::Stop).await.is_err();
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

/// The dedup key of a batch: its sensor id and agent instance.
fn key(sensor_id: &str, instance_id: u64) -> SensorKey {
    (sensor_id.to_owned(), instance_id)
}

/// A batch of the collector's own: one `lost` row (sensor `collector`, seq 0: never
/// deduplicated).
fn collector_lost(stage: LostStage, unit: &str, count: u64, detail: String) -> Batch {
    Batch {
        sensor_id: "collector".into(),
        seq: 0,
        created_us: now_us(),
        lost: vec![Lost {
            ts_us: now_us(),
            stage: stage as i32,
            unit: unit.into(),
            count,
            detail,
        }],
        ..Default::default()
    }
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
        let mut marks = cp.marks();
        for &seg in &segs {
            let path = wdir.join(format!("{seg:012}.wal"));
            if seg <= cp.flushed_through {
                // Already in Parquet; the crash came before the segment was deleted.
                if let Err(e) = fs::remove_file(&path) {
                    warn!(segment = seg, error = %e, "could not delete a committed WAL segment");
                }
                continue;
            }
            let mut r = wal::replay(&wdir, seg)?;
            if r.truncated > 0 {
                warn!(
                    segment = seg,
                    bytes = r.truncated,
                    "cut a torn record off the write-ahead log (never acknowledged)"
                );
            }
            for c in &r.corrupt {
                error!(
                    segment = seg,
                    offset = c.offset,
                    bytes = c.bytes,
                    kept = %c.quarantined.display(),
                    "a damaged stretch of the write-ahead log (acknowledged data lost; the records after it are kept)"
                );
                r.batches.push(collector_lost(
                    LostStage::CollectorWal,
                    "bytes",
                    c.bytes,
                    format!(
                        "segment {seg}, offset {}: kept in {}",
                        c.offset,
                        c.quarantined.display()
                    ),
                ));
            }
            for b in r.batches.iter().filter(|b| b.seq > 0) {
                let w = marks.entry(key(&b.sensor_id, b.instance_id)).or_insert(0);
                *w = (*w).max(b.seq);
            }
            info!(
                segment = seg,
                batches = r.batches.len(),
                "replayed write-ahead log into the lake"
            );
            sealed_wal_bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            sealed.push_back(Sealed {
                segment: seg,
                rows: r.batches.iter().map(Batch::lake_rows).sum(),
                bodies: r.batches.iter().map(|b| b.encode_to_vec().into()).collect(),
                marks: marks.clone(),
            });
        }
        let next = segs.last().copied().unwrap_or(0).max(cp.flushed_through) + 1;
        let wal = Wal::open(&wdir, next)?;
        let mut store = Store {
            watermarks: marks,
            cfg,
            wal,
            current: Vec::new(),
            current_rows: 0,
            current_bytes: 0,
            sealed,
            sensors: BTreeMap::new(),
            tables: BTreeMap::new(),
            rejected: BTreeMap::new(),
            refusals: Refusals::default(),
            duplicates: 0,
            disk_full: false,
            sealed_wal_bytes,
            writing: None,
            wake: None,
        };
        store.flush()?;
        Ok(store)
    }

    /// Starts the store thread; it runs until [`StoreHandle::stop`] or until every handle is
    /// dropped, then flushes.
    pub fn spawn(self, queue: usize) -> (StoreHandle, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue);
        let mut store = self;
        store.wake = Some(tx.downgrade());
        let h = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || store.run(rx))
            .expect("spawning the store thread");
        (StoreHandle { tx }, h)
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut stop = false;
        while !stop && let Some(cmd) = rx.blocking_recv() {
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
                if matches!(c, Command::Stop) {
                    stop = true;
                } else {
                    self.handle(c);
                }
            }
            match self.finish_writing(false) {
                // Segments sealed meanwhile go next (after a failure, the next flush retries).
                Ok(true) if !self.sealed.is_empty() => self.start_writing(),
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "flush failed; the write-ahead log keeps the data and the next flush retries");
                }
            }
            if self.current_rows >= self.cfg.flush_rows
                || self.current_bytes >= self.cfg.flush_bytes
            {
                self.flush_behind();
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
                stage,
            } => {
                *self.rejected.entry(reason).or_default() += 1;
                self.refusals.add(sensor, reason, stage, detail);
            }
            Command::Flush { reply: Some(reply) } => {
                if let Err(Err(e)) = reply.send(self.flush()) {
                    warn!(error = %e, "flush failed (nobody waits for the answer)");
                }
            }
            Command::Flush { reply: None } => self.flush_behind(),
            // The loop takes the result after every command.
            Command::Written => {}
            Command::Status { reply } => {
                let _asker_gone = reply.send(self.status()).is_err();
            }
            Command::Stop => unreachable!("stop ends the loop"),
        }
    }

    fn submit_group(&mut self, cmds: Vec<Command>) {
        let before = self.wal.len();
        let mut tentative: Watermarks = BTreeMap::new();
        let unflushed = self.unflushed_bytes();
        type Reply = oneshot::Sender<Result<AckStatus, IngestError>>;
        let mut accepted: Vec<(Head, Vec<u8>, Reply, Arc<AtomicBool>)> = Vec::new();
        let mut failure: Option<StorageError> = None;
        let mut failed: Vec<(Reply, Arc<AtomicBool>)> = Vec::new();
        // Resends of a batch appended earlier in this same group: answered DUPLICATE only once
        // that batch is durable (if the group fails, they fail with it).
        let mut pending_dups: Vec<(Reply, Arc<AtomicBool>)> = Vec::new();
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
            let k = key(&batch.sensor_id, batch.instance_id);
            let mark = tentative
                .get(&k)
                .or_else(|| self.watermarks.get(&k))
                .copied()
                .unwrap_or(0);
            if batch.seq <= mark {
                self.duplicates += 1;
                let stored = self.watermarks.get(&k).is_some_and(|&w| batch.seq <= w);
                if stored {
                    let _stream_gone = reply.send(Ok(AckStatus::Duplicate)).is_err();
                } else {
                    pending_dups.push((reply, stream_failed));
                }
                continue;
            }
            if let Some(refusal) = self.refusal(&batch, mark, unflushed, &tentative) {
                if refusal.is_permanent() || matches!(refusal, IngestError::Capacity { .. }) {
                    *self.rejected.entry(refusal.reason()).or_default() += 1;
                }
                if matches!(refusal, IngestError::Capacity { .. })
                    && let Some(suppressed) = CAPACITY_LOGGED.admit()
                {
                    warn!(error = %refusal, suppressed, "refused a new sensor id or instance; its agent spools and retries");
                }
                stream_failed.store(true, Ordering::Relaxed);
                let _stream_gone = reply.send(Err(refusal)).is_err();
                continue;
            }
            if failure.is_some() {
                failed.push((reply, stream_failed));
                continue;
            }
            match self.wal.append(&encoded) {
                Ok(()) => {
                    tentative.insert(k, batch.seq);
                    accepted.push((batch, encoded, reply, stream_failed));
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
            for (reply, stream_failed) in accepted
                .into_iter()
                .map(|(_, _, r, f)| (r, f))
                .chain(failed)
                .chain(pending_dups)
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
        for (batch, encoded, reply, _) in accepted {
            let rows = batch.rows;
            self.watermarks
                .insert(key(&batch.sensor_id, batch.instance_id), batch.seq);
            self.note_instance(&batch, now);
            let s = self.sensors.entry(batch.sensor_id.clone()).or_default();
            s.batches += 1;
            s.rows += rows;
            s.last_batch_us = now;
            self.current_rows += rows as usize;
            self.current_bytes += encoded.len() as u64;
            self.current.push(Bytes::from(encoded));
            let _stream_gone = reply.send(Ok(AckStatus::Stored)).is_err();
        }
        for (reply, _) in pending_dups {
            let _stream_gone = reply.send(Ok(AckStatus::Duplicate)).is_err();
        }
    }

    /// Appends the refusals counted since the last flush to the WAL as `lost` rows (one per
    /// sender, reason and stage: a flood of garbage costs one row, not one per message). If the
    /// WAL cannot take them they stay counted for the next flush.
    fn record_refusals(&mut self) {
        if self.refusals.groups.is_empty() {
            return;
        }
        let before = self.wal.len();
        let bodies: Vec<Vec<u8>> = self
            .refusals
            .groups
            .iter()
            .map(|((sensor, _, stage), g)| {
                let mut b = collector_lost(*stage, "batches", g.count, g.detail.clone());
                b.sensor_id.clone_from(sensor);
                b.encode_to_vec()
            })
            .collect();
        let appended = bodies
            .iter()
            .try_for_each(|b| self.wal.append(b))
            .and_then(|()| self.wal.sync());
        match appended {
            Ok(()) => {
                self.refusals = Refusals::default();
                self.current_rows += bodies.len();
                self.current.extend(bodies.into_iter().map(Bytes::from));
            }
            Err(e) => {
                warn!(error = %e, "could not record refused batches; they stay counted for the next flush");
                self.rollback(before);
            }
        }
    }

    /// Seals the open segment (if it holds anything) and writes every sealed segment to
    /// Parquet, oldest first, waiting for a write already running. On failure the segments
    /// stay sealed (and in the WAL) and the next flush retries.
    pub fn flush(&mut self) -> Result<(), FlushError> {
        self.finish_writing(true)?;
        self.record_refusals();
        self.seal()?;
        while let Some(s) = self.sealed.front() {
            let started = Instant::now();
            let r = write_sealed(
                &self.cfg.lake,
                &self.cfg.root,
                s.segment,
                &s.bodies,
                &s.marks,
            );
            self.landed(started, r)?;
        }
        Ok(())
    }

    /// Seals the open segment and starts writing the oldest sealed segment on the writer
    /// thread, unless a write is running (the call after it lands starts the next). Nothing
    /// waits, unless two sealed segments already wait behind a running write: then this waits
    /// for it, so that acks slow down rather than segments piling up in memory.
    fn flush_behind(&mut self) {
        if self.writing.is_some()
            && self.sealed.len() > 2
            && let Err(e) = self.finish_writing(true)
        {
            warn!(error = %e, "flush failed; the write-ahead log keeps the data and the next flush retries");
        }
        self.record_refusals();
        if let Err(e) = self.seal() {
            warn!(error = %e, "could not seal the write-ahead log segment; the next flush retries");
        }
        if self.writing.is_none() {
            self.start_writing();
        }
    }

    /// Starts writing the oldest sealed segment on the writer thread.
    fn start_writing(&mut self) {
        let Some(s) = self.sealed.front() else {
            return;
        };
        let (lake, root, seg) = (self.cfg.lake.clone(), self.cfg.root.clone(), s.segment);
        // Bodies are shared, not copied.
        let (bodies, marks) = (s.bodies.clone(), s.marks.clone());
        let wake = self.wake.clone();
        let started = Instant::now();
        let spawned = std::thread::Builder::new()
            .name("lake-writer".into())
            .spawn(move || {
                let r = write_sealed(&lake, &root, seg, &bodies, &marks);
                if let Some(tx) = wake.and_then(|w| w.upgrade()) {
                    // A full queue means the store thread is busy and looks anyway.
                    let _busy_or_gone = tx.try_send(Command::Written).is_err();
                }
                r
            });
        match spawned {
            Ok(thread) => self.writing = Some(Writing { started, thread }),
            Err(e) => {
                warn!(error = %e, "could not start the Parquet writer thread; writing in place");
                if let Err(e) = self.flush() {
                    warn!(error = %e, "flush failed; the write-ahead log keeps the data and the next flush retries");
                }
            }
        }
    }

    /// Takes the result of the write on the writer thread if it finished (or, with `wait`,
    /// once it does): true if a write landed.
    fn finish_writing(&mut self, wait: bool) -> Result<bool, FlushError> {
        if !self
            .writing
            .as_ref()
            .is_some_and(|w| wait || w.thread.is_finished())
        {
            return Ok(false);
        }
        let Some(w) = self.writing.take() else {
            return Ok(false);
        };
        let r = w
            .thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        self.landed(w.started, r).map(|()| true)
    }

    /// Moves the open segment (if it holds anything) to the sealed ones.
    fn seal(&mut self) -> Result<(), FlushError> {
        if self.current.is_empty() {
            return Ok(());
        }
        let len = self.wal.len();
        match self.wal.rotate() {
            Ok(seg) => {
                self.sealed_wal_bytes += len;
                self.sealed.push_back(Sealed {
                    segment: seg,
                    bodies: std::mem::take(&mut self.current),
                    rows: self.current_rows as u64,
                    marks: self.watermarks.clone(),
                });
                self.current_rows = 0;
                self.current_bytes = 0;
                Ok(())
            }
            Err(e) => {
                self.note_flush_error(e.is_disk_full());
                Err(e.into())
            }
        }
    }

    /// Books the write of the oldest sealed segment: on success its rows are in Parquet and
    /// checkpointed, so its WAL segment goes.
    fn landed(
        &mut self,
        started: Instant,
        r: Result<(Vec<Written>, usize), FlushError>,
    ) -> Result<(), FlushError> {
        let (written, n) = r.inspect_err(|e| self.note_flush_error(e.is_disk_full()))?;
        let Some(Sealed { segment: seg, .. }) = self.sealed.pop_front() else {
            return Ok(());
        };
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
        FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
        info!(
            segment = seg,
            rows = n,
            files = written.len(),
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "flushed"
        );
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

    /// Why a new (not duplicate) batch is refused, if it is.
    fn refusal(
        &self,
        b: &Head,
        mark: u64,
        unflushed: u64,
        tentative: &Watermarks,
    ) -> Option<IngestError> {
        let invalid = |reason: String| IngestError::Invalid {
            sensor: b.sensor_id.clone(),
            seq: b.seq,
            reason,
        };
        if b.seq > mark.saturating_add(MAX_SEQ_JUMP) {
            return Some(invalid(format!(
                "seq {} jumps more than {MAX_SEQ_JUMP} past the sensor's last stored seq {mark}",
                b.seq
            )));
        }
        let k = key(&b.sensor_id, b.instance_id);
        let known = |k: &SensorKey| self.watermarks.contains_key(k) || tentative.contains_key(k);
        if !known(&k) {
            let same_id = |(s, _): &&SensorKey| *s == b.sensor_id;
            let ids = self
                .watermarks
                .keys()
                .chain(tentative.keys())
                .map(|(s, _)| s)
                .collect::<std::collections::BTreeSet<_>>();
            let instances = self
                .watermarks
                .keys()
                .chain(tentative.keys())
                .filter(same_id)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            if !ids.contains(&b.sensor_id) && ids.len() >= self.cfg.max_sensors {
                return Some(IngestError::Capacity {
                    sensor: b.sensor_id.clone(),
                    seq: b.seq,
                    reason: format!(
                        "the collector already keeps {} sensor ids (--max-sensors)",
                        self.cfg.max_sensors
                    ),
                });
            }
            if instances >= self.cfg.max_instances {
                return Some(IngestError::Capacity {
                    sensor: b.sensor_id.clone(),
                    seq: b.seq,
                    reason: format!(
                        "sensor id already has {instances} agent instances (give each agent its own id)"
                    ),
                });
            }
        }
        if unflushed > self.cfg.max_unflushed_bytes {
            return Some(StorageError::Backlog.into());
        }
        None
    }

    /// Bytes accepted but not yet in Parquet.
    fn unflushed_bytes(&self) -> u64 {
        self.current_bytes + self.sealed_wal_bytes
    }

    /// Tracks which agent instances send for a sensor id: a new one (a re-deployed agent, a
    /// fresh spool) is logged once; an earlier one sending again while another is active
    /// means two agents share the id.
    fn note_instance(&mut self, b: &Head, now: i64) {
        let s = self.sensors.entry(b.sensor_id.clone()).or_default();
        let inst = b.instance_id;
        match s.instances.get(&inst) {
            None if !s.instances.is_empty() => info!(
                sensor = %b.sensor_id,
                instance = format!("{inst:016x}"),
                "a new agent instance for this sensor id (re-deployed, or a fresh spool); its batches are stored under their own sequence"
            ),
            Some(_) if s.last_instance != inst && !s.shared_id => {
                let other_active = s
                    .instances
                    .get(&s.last_instance)
                    .is_some_and(|&t| now - t < SHARED_WINDOW_US);
                if other_active {
                    s.shared_id = true;
                    warn!(
                        sensor = %b.sensor_id,
                        "two agents send with the same sensor id; both are stored — give each its own --sensor-id"
                    );
                }
            }
            _ => {}
        }
        s.instances.insert(inst, now);
        s.last_instance = inst;
    }

    fn status(&self) -> StatusResponse {
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for ((id, inst), &seq) in &self.watermarks {
            let current = self
                .sensors
                .get(id)
                .map_or(*inst == 0, |i| i.last_instance == *inst);
            let e = last.entry(id.as_str()).or_default();
            if current || *e == 0 {
                *e = seq;
            }
        }
        let sensors = last
            .into_iter()
            .map(|(id, last_seq)| {
                let i = self.sensors.get(id);
                SensorStatus {
                    sensor_id: id.to_string(),
                    last_seq,
                    last_batch_us: i.map_or(0, |i| i.last_batch_us),
                    batches: i.map_or(0, |i| i.batches),
                    rows: i.map_or(0, |i| i.rows),
                    instances: i.map_or(0, |i| i.instances.len() as u64),
                    shared_id: i.is_some_and(|i| i.shared_id),
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
        let pending_rows =
            self.current_rows as u64 + self.sealed.iter().map(|s| s.rows).sum::<u64>();
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
                    src_ip: vec![10, 0, (seq % 256) as u8, i as u8].into(),
                    dst_ip: vec![10, 1, 0, 1].into(),
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
        let mut c = StoreConfig::new(root.to_path_buf(), Lake::local(root).unwrap());
        c.flush_rows = 1_000_000;
        c
    }

    fn submit(s: &mut Store, b: Batch) -> Result<AckStatus, IngestError> {
        let (tx, mut rx) = oneshot::channel();
        let encoded = b.encode_to_vec();
        s.submit_group(vec![Command::Submit {
            batch: Head::of(&b),
            encoded,
            failed: Arc::default(),
            reply: tx,
        }]);
        rx.try_recv().unwrap()
    }

    /// Rows in the visible `flows` files (a file being written has a hidden name).
    fn flows_rows(root: &Path) -> usize {
        let mut n = 0;
        let days = fs::read_dir(root.join("flows")).into_iter().flatten();
        for day in days.flatten() {
            for f in fs::read_dir(day.path()).unwrap().flatten() {
                if f.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let r =
                    parquet::file::reader::SerializedFileReader::new(File::open(f.path()).unwrap())
                        .unwrap();
                use parquet::file::reader::FileReader;
                n += r.metadata().file_metadata().num_rows() as usize;
            }
        }
        n
    }

    /// (sensor, stage, count, detail) of every `lost` row.
    fn lost_rows(root: &Path) -> Vec<(String, String, u64, String)> {
        use arrow::array::AsArray;
        let mut out = Vec::new();
        for day in fs::read_dir(root.join("lost")).unwrap().flatten() {
            for f in fs::read_dir(day.path()).unwrap().flatten() {
                let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    File::open(f.path()).unwrap(),
                )
                .unwrap()
                .build()
                .unwrap();
                for b in r {
                    let b = b.unwrap();
                    let text = |c: &str| b.column_by_name(c).unwrap().as_string::<i32>().clone();
                    let (sensor, stage, detail) = (text("sensor"), text("stage"), text("detail"));
                    let count = b
                        .column_by_name("count")
                        .unwrap()
                        .as_primitive::<arrow::datatypes::UInt64Type>()
                        .clone();
                    for i in 0..b.num_rows() {
                        out.push((
                            sensor.value(i).to_string(),
                            stage.value(i).to_string(),
                            count.value(i),
                            detail.value(i).to_string(),
                        ));
                    }
                }
            }
        }
        out.sort();
        out
    }

    fn refuse(s: &mut Store, sensor: &str, stage: LostStage, detail: &str) {
        s.handle(Command::Rejected {
            sensor: sensor.into(),
            reason: "invalid",
            detail: detail.into(),
            stage,
        });
    }

    #[test]
    fn a_flood_of_refusals_is_one_counted_row_per_sender_and_flush() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(cfg(d.path())).unwrap();
        for i in 0..10_000 {
            refuse(
                &mut s,
                "peer:10.0.0.1",
                LostStage::CollectorRejected,
                &format!("bad {i}"),
            );
        }
        refuse(&mut s, "s-1", LostStage::CollectorDenied, "not yours");
        s.flush().unwrap();
        // More senders than are counted apart: the rest are `peers:other`.
        for i in 0..MAX_REFUSAL_GROUPS + 5 {
            refuse(
                &mut s,
                &format!("peer:10.1.{}.{}", i / 256, i % 256),
                LostStage::CollectorRejected,
                "x",
            );
        }
        s.flush().unwrap();
        let rows = lost_rows(d.path());
        assert_eq!(rows.len(), 2 + MAX_REFUSAL_GROUPS + 1, "{:?}", &rows[..3]);
        let of = |sensor: &str| rows.iter().filter(|r| r.0 == sensor).collect::<Vec<_>>();
        assert_eq!(
            of("peer:10.0.0.1"),
            [&(
                "peer:10.0.0.1".into(),
                "collector_rejected".into(),
                10_000,
                "bad 0".into()
            )]
        );
        assert_eq!(of("s-1")[0].1, "collector_denied");
        assert_eq!(of(OTHER_SENDERS)[0].2, 5);
        let total: u64 = rows.iter().map(|r| r.2).sum();
        assert_eq!(total, 10_000 + 1 + MAX_REFUSAL_GROUPS as u64 + 5);
        assert_eq!(
            s.status().rejected.iter().map(|r| r.value).sum::<u64>(),
            total
        );
    }

    /// Review M7: per-sensor state is bounded. A new sensor id beyond `max_sensors`, or a new
    /// agent instance beyond `max_instances`, is refused as retryable (UNAVAILABLE: the agent
    /// spools), counted, and stored once room is made; known ids go on as before.
    #[test]
    fn new_sensor_ids_and_instances_beyond_the_caps_are_retryable_refusals() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        (c.max_sensors, c.max_instances) = (2, 2);
        let mut s = Store::open(c).unwrap();
        let inst = |sensor: &str, instance: u64, seq: u64| Batch {
            instance_id: instance,
            ..batch(sensor, seq, 1)
        };
        assert_eq!(submit(&mut s, inst("a", 1, 1)).unwrap(), AckStatus::Stored);
        assert_eq!(submit(&mut s, inst("b", 1, 1)).unwrap(), AckStatus::Stored);
        let e = submit(&mut s, inst("c", 1, 1)).unwrap_err();
        assert!(matches!(e, IngestError::Capacity { .. }), "{e:?}");
        assert!(!e.is_permanent());
        assert_eq!(tonic::Status::from(e).code(), tonic::Code::Unavailable);
        assert_eq!(submit(&mut s, inst("a", 2, 1)).unwrap(), AckStatus::Stored);
        let e = submit(&mut s, inst("a", 3, 1)).unwrap_err();
        assert!(matches!(e, IngestError::Capacity { .. }), "{e:?}");
        // Known ids and instances go on.
        assert_eq!(submit(&mut s, inst("b", 1, 2)).unwrap(), AckStatus::Stored);
        assert_eq!(submit(&mut s, inst("a", 2, 2)).unwrap(), AckStatus::Stored);
        let st = s.status();
        assert_eq!(
            st.rejected
                .iter()
                .map(|r| (r.name.as_str(), r.value))
                .collect::<Vec<_>>(),
            [("capacity", 2)]
        );
        s.flush().unwrap();
        assert_eq!(flows_rows(d.path()), 5);
    }

    /// Review M4: bytes accepted but not yet in Parquet are bounded. Beyond the budget a batch
    /// is refused as UNAVAILABLE (retryable, nothing lost); after a flush it is accepted.
    #[test]
    fn beyond_the_unflushed_byte_budget_batches_wait() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        let one = batch("a", 1, 20).encoded_len() as u64;
        (c.max_unflushed_bytes, c.flush_bytes) = (3 * one, u64::MAX);
        let mut s = Store::open(c).unwrap();
        for seq in 1..=4 {
            assert_eq!(
                submit(&mut s, batch("a", seq, 20)).unwrap(),
                AckStatus::Stored
            );
        }
        let e = submit(&mut s, batch("a", 5, 20)).unwrap_err();
        assert!(
            matches!(e, IngestError::Storage(StorageError::Backlog)),
            "{e:?}"
        );
        assert_eq!(tonic::Status::from(e).code(), tonic::Code::Unavailable);
        s.flush().unwrap();
        assert_eq!(
            submit(&mut s, batch("a", 5, 20)).unwrap(),
            AckStatus::Stored
        );
        s.flush().unwrap();
        assert_eq!(flows_rows(d.path()), 100);
    }

    /// Submits one group; the answers in order.
    fn submit_all(s: &mut Store, batches: Vec<Batch>) -> Vec<Result<AckStatus, IngestError>> {
        let mut rxs = Vec::new();
        let cmds = batches
            .into_iter()
            .map(|b| {
                let (tx, rx) = oneshot::channel();
                rxs.push(rx);
                Command::Submit {
                    encoded: b.encode_to_vec(),
                    batch: Head::of(&b),
                    failed: Arc::default(),
                    reply: tx,
                }
            })
            .collect();
        s.submit_group(cmds);
        rxs.into_iter().map(|mut r| r.try_recv().unwrap()).collect()
    }

    /// Review M2: a resend of a batch appended earlier in the same group is DUPLICATE only if
    /// that batch became durable; when the group's WAL write fails, the resend fails with it
    /// (the agent retries it) instead of being told it is stored.
    #[test]
    fn a_resend_in_the_same_group_shares_the_fate_of_the_original() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(cfg(d.path())).unwrap();
        let ok = submit_all(&mut s, vec![batch("a", 1, 1), batch("a", 1, 1)]);
        assert!(
            matches!(ok[..], [Ok(AckStatus::Stored), Ok(AckStatus::Duplicate)]),
            "{ok:?}"
        );
        // The next group's WAL write fails (the segment is /dev/full: ENOSPC).
        let full = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/full", wal::seg_path(full.path(), 1)).unwrap();
        let healthy = std::mem::replace(&mut s.wal, Wal::open(full.path(), 1).unwrap());
        let failed = submit_all(&mut s, vec![batch("a", 2, 1), batch("a", 2, 1)]);
        assert!(
            matches!(
                failed[..],
                [
                    Err(IngestError::Storage(StorageError::DiskFull)),
                    Err(IngestError::Storage(StorageError::DiskFull))
                ]
            ),
            "{failed:?}"
        );
        // Space is back: the resend is stored, not taken for a duplicate.
        s.wal = healthy;
        let again = submit_all(&mut s, vec![batch("a", 2, 1)]);
        assert!(matches!(again[..], [Ok(AckStatus::Stored)]), "{again:?}");
        s.flush().unwrap();
        assert_eq!(flows_rows(d.path()), 2);
    }

    #[test]
    fn flushes_the_store_thread_starts_land_behind_it_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.flush_rows = 100; // every batch makes a flush due
        let (h, thread) = Store::open(c).unwrap().spawn(64);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for seq in 1..=20 {
                let b = batch("s1", seq, 100);
                let encoded = b.encode_to_vec();
                assert_eq!(h.submit(b, encoded).await.unwrap(), AckStatus::Stored);
            }
            // Nobody asks for a flush: the writer thread lands every segment, and the store
            // thread deletes each one's WAL segment, leaving only the open one.
            let deadline = Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let segs = wal::segments(&wal_dir(dir.path())).unwrap();
                if flows_rows(dir.path()) == 2000 && segs.len() == 1 {
                    break;
                }
                assert!(Instant::now() < deadline, "not landed: {segs:?}");
                // A status request is a command: the store thread takes finished writes.
                h.status().await.unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let st = h.status().await.unwrap();
            let flows = st.tables.iter().find(|t| t.table == "flows").unwrap();
            assert_eq!(flows.rows, 2000);
            h.stop().await;
        });
        thread.join().unwrap();
        assert_eq!(flows_rows(dir.path()), 2000, "no segment written twice");
        let cp = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(cp.marks().get(&key("s1", 0)), Some(&20));
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
        rows.push(&Batch::decode(&s.current[0][..]).unwrap());
        rows.write_segment(&s.cfg.lake, seg).unwrap();
        drop(s);
        let s = Store::open(cfg(d.path())).unwrap();
        assert_eq!(flows_rows(d.path()), 5);
        assert_eq!(Checkpoint::load(d.path()).unwrap().flushed_through, seg);
        assert_eq!(s.watermarks.get(&("a".to_string(), 0)), Some(&1));
    }
}
