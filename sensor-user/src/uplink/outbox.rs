//! Outbox: every batch from the moment it is sealed until the collector acknowledges it.
//!
//! One ordered queue of entries, oldest first, each held in memory or in the spool directory
//! (`<seq>.batch` files). While the collector takes batches, new ones stay in memory (bounded by
//! `max_mem_bytes`); when it is down, slow or refusing, new batches are written to the spool, and
//! on a disconnect everything still in memory is spilled there too, so a killed agent loses
//! nothing it had sealed. Batches are sent in order (`cursor` marks how many are in flight on
//! the current stream); an ack removes every entry up to its seq. A spool over its byte limit
//! drops its oldest batches not in flight; what was dropped is counted and reported as `lost`
//! records in the next batch. Sequence numbers are reserved in blocks in `<spool>/seq`, so they
//! keep increasing across restarts.
use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
};

use prost::Message;
use scanscope_proto::v1::{Batch, Lost, LostStage};
use tracing::warn;

use super::UplinkError;

/// Removes a spool file; a failure other than "already gone" is logged (a file left behind is
/// read again at the next start and counted for what it is).
fn remove_spool_file(p: &Path) {
    if let Err(e) = fs::remove_file(p)
        && e.kind() != io::ErrorKind::NotFound
    {
        warn!(path = %p.display(), error = %e, "could not remove a spool file");
    }
}

/// Spool files hold scanners' payload bytes: readable by the agent's user only.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Opens a spool file for writing without following a symlink planted in its place (review
/// L4): `create_new` for a file that must not exist, else created or opened as it is.
fn open_for_write(p: &Path, create_new: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    o.open(p)
}

/// What reading a spool file gave.
enum SpoolRead {
    Batch(Batch),
    /// The bytes are not a batch (torn, damaged): counted as lost, the file removed.
    Damaged,
    /// The file could not be read (EIO, EMFILE, …): counted as lost, the file kept beside the
    /// spool as `<seq>.batch.unreadable` for the operator.
    Unreadable(io::Error),
}

fn read_spool_file(p: &Path) -> SpoolRead {
    let read = || -> io::Result<Vec<u8>> {
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(p)?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(data)
    };
    // One retry: EMFILE and EINTR-like faults pass.
    match read().or_else(|_| read()) {
        Ok(d) => decode_file(&d).map_or(SpoolRead::Damaged, SpoolRead::Batch),
        Err(e) => SpoolRead::Unreadable(e),
    }
}

/// Moves an unreadable spool file aside (kept, out of the spool's listing).
fn set_aside(p: &Path) {
    let mut to = p.as_os_str().to_owned();
    to.push(".unreadable");
    if let Err(e) = fs::rename(p, &to) {
        warn!(path = %p.display(), error = %e, "could not set an unreadable spool file aside");
    }
}

const MAGIC: &[u8; 4] = b"SSB1";
const SEQ_BLOCK: u64 = 4096;

/// How much a batch held, for loss accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub flows: u64,
    pub packets: u64,
    pub stats: u64,
}

impl Summary {
    fn of(b: &Batch) -> Summary {
        Summary {
            events: b.events.len() as u64,
            flows: b.flows.len() as u64,
            packets: b.flows.iter().map(|f| f.packets).sum(),
            stats: b.stats.len() as u64,
        }
    }
}

#[derive(Debug)]
enum Held {
    Mem(Batch),
    Disk(PathBuf),
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    bytes: u64,
    held: Held,
}

/// Outbox settings.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub sensor_id: String,
    pub agent_version: String,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub max_mem_bytes: u64,
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pushed: u64,
    pub acked: u64,
    pub spooled: u64,
    pub dropped_batches: u64,
    pub rejected_batches: u64,
}

/// The queue of unacknowledged batches.
#[derive(Debug)]
pub struct Outbox {
    cfg: OutboxConfig,
    entries: VecDeque<Entry>,
    cursor: usize,
    mem_bytes: u64,
    disk_bytes: u64,
    connected: bool,
    next_seq: u64,
    /// This installation's identity (`<spool>/instance`), sent with every batch.
    instance: u64,
    reserved_until: u64,
    pending_lost: Vec<Lost>,
    pub stats: OutboxStats,
    _lock: File,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UplinkError {
    let path = path.to_path_buf();
    move |source| UplinkError::Spool { op, path, source }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn encode_file(b: &Batch) -> Vec<u8> {
    let body = b.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn decode_file(data: &[u8]) -> Option<Batch> {
    if data.len() < 8 || &data[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(data[4..8].try_into().ok()?);
    let body = &data[8..];
    if crc32fast::hash(body) != crc {
        return None;
    }
    Batch::decode(body).ok()
}

fn write_durable(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf, UplinkError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    remove_spool_file(&tmp);
    let r = open_for_write(&tmp, true)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, &path))
        .and_then(|()| File::open(dir)?.sync_all());
    if let Err(e) = r {
        remove_spool_file(&tmp);
        return Err(io_err("writing", &path)(e));
    }
    Ok(path)
}

/// The summary of a spool file being dropped (None if it cannot be read), and the file gone.
fn summarize_and_remove(p: &Path) -> Option<Summary> {
    match read_spool_file(p) {
        SpoolRead::Batch(b) => {
            remove_spool_file(p);
            Some(Summary::of(&b))
        }
        SpoolRead::Damaged => {
            remove_spool_file(p);
            None
        }
        SpoolRead::Unreadable(_) => {
            set_aside(p);
            None
        }
    }
}

impl Outbox {
    /// Opens the spool directory: locks it, reads the sequence reservation and lists the
    /// batches a previous run left (they are sent first).
    pub fn open(cfg: OutboxConfig) -> Result<Outbox, UplinkError> {
        let dir = cfg.spool_dir.clone();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(io_err("creating", &dir))?;
        let meta = fs::metadata(&dir).map_err(io_err("reading", &dir))?;
        if meta.permissions().mode() & 0o022 != 0 {
            // Review L4: others could plant files or links where the agent writes.
            return Err(UplinkError::SpoolExposed {
                path: dir,
                mode: meta.permissions().mode() & 0o7777,
            });
        }
        let lock_path = dir.join("lock");
        let lock = open_for_write(&lock_path, false).map_err(io_err("creating", &lock_path))?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(UplinkError::SpoolLocked(dir));
        }
        let mut entries = Vec::new();
        let mut disk_bytes = 0;
        for e in fs::read_dir(&dir)
            .map_err(io_err("listing", &dir))?
            .flatten()
        {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                remove_spool_file(&e.path());
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".batch")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            disk_bytes += bytes;
            entries.push(Entry {
                seq,
                bytes,
                held: Held::Disk(e.path()),
            });
        }
        entries.sort_by_key(|e| e.seq);
        let seq_path = dir.join("seq");
        let (reserved, seq_intact): (u64, bool) = match fs::read_to_string(&seq_path) {
            Ok(s) => match s.trim().parse() {
                Ok(n) => (n, true),
                Err(_) => (0, false),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (0, true),
            Err(e) => return Err(io_err("reading", &seq_path)(e)),
        };
        // The instance id keys the collector's watermark: with a new one, seqs from 1 again
        // are stored, not taken for resends. A lost sequence reservation therefore means a new
        // instance too.
        let instance = match fs::read_to_string(dir.join("instance")) {
            Ok(s) if seq_intact => u64::from_str_radix(s.trim(), 16).ok().filter(|&i| i != 0),
            Ok(_) => {
                warn!(
                    "the spool's sequence reservation is unreadable; starting a new agent instance"
                );
                None
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("reading", &dir.join("instance"))(e)),
        };
        let instance = match instance {
            Some(i) => i,
            None => {
                let i = rand::random::<u64>().max(1);
                write_durable(&dir, "instance", format!("{i:016x}\n").as_bytes())?;
                i
            }
        };
        let last_spooled = entries.last().map_or(0, |e| e.seq);
        let next_seq = reserved.max(last_spooled + 1).max(1);
        let mut ob = Outbox {
            cfg,
            entries: entries.into(),
            cursor: 0,
            mem_bytes: 0,
            disk_bytes,
            connected: false,
            next_seq,
            reserved_until: 0,
            instance,
            pending_lost: Vec::new(),
            stats: OutboxStats::default(),
            _lock: lock,
        };
        ob.reserve()?;
        Ok(ob)
    }

    fn reserve(&mut self) -> Result<(), UplinkError> {
        let until = self.next_seq + SEQ_BLOCK;
        write_durable(&self.cfg.spool_dir, "seq", format!("{until}\n").as_bytes())?;
        self.reserved_until = until;
        Ok(())
    }

    /// Batches waiting (in memory or spooled), including those in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Batches held in the spool directory.
    pub fn spooled(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.held, Held::Disk(_)))
            .count()
    }

    /// This installation's instance id.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Bytes held in the spool directory.
    pub fn spool_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Batches sent on the current stream and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.cursor
    }

    /// Seals `batch`: gives it the sensor id, the next seq and any pending lost records, and
    /// queues it. Returns its seq.
    pub fn push(&mut self, mut batch: Batch) -> Result<u64, UplinkError> {
        if self.next_seq >= self.reserved_until {
            self.reserve()?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        batch.sensor_id.clone_from(&self.cfg.sensor_id);
        batch.seq = seq;
        batch.instance_id = self.instance;
        batch.created_us = now_us();
        batch.agent_version.clone_from(&self.cfg.agent_version);
        batch.lost.append(&mut self.pending_lost);
        self.stats.pushed += 1;
        let bytes = batch.encoded_len() as u64;
        let spool = !self.connected
            || self
                .entries
                .iter()
                .skip(self.cursor)
                .any(|e| matches!(e.held, Held::Disk(_)))
            || self.mem_bytes + bytes > self.cfg.max_mem_bytes;
        if spool {
            self.spool(seq, batch)?;
        } else {
            self.mem_bytes += bytes;
            self.entries.push_back(Entry {
                seq,
                bytes,
                held: Held::Mem(batch),
            });
        }
        Ok(seq)
    }

    /// Writes a batch to the spool, making room by dropping the oldest batches not in flight.
    fn spool(&mut self, seq: u64, batch: Batch) -> Result<(), UplinkError> {
        let data = encode_file(&batch);
        let size = data.len() as u64;
        while self.disk_bytes + size > self.cfg.spool_max_bytes {
            let victim = (self.cursor..self.entries.len())
                .find(|&i| matches!(self.entries[i].held, Held::Disk(_)));
            let Some(i) = victim else { break };
            let e = self.entries.remove(i).expect("index in range");
            self.disk_bytes -= e.bytes;
            let summary = match &e.held {
                Held::Disk(p) => summarize_and_remove(p),
                Held::Mem(b) => Some(Summary::of(b)),
            };
            self.note_lost(
                LostStage::AgentSpool,
                summary,
                "spool full: oldest batch dropped",
            );
            self.stats.dropped_batches += 1;
        }
        if self.disk_bytes + size > self.cfg.spool_max_bytes {
            // Nothing left to drop: this batch itself does not fit.
            self.note_lost(
                LostStage::AgentSpool,
                Some(Summary::of(&batch)),
                "spool full: batch larger than the free spool space",
            );
            self.stats.dropped_batches += 1;
            return Ok(());
        }
        let path = match write_durable(&self.cfg.spool_dir, &format!("{seq:020}.batch"), &data) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot spool a batch; it is lost");
                self.note_lost(
                    LostStage::AgentQueue,
                    Some(Summary::of(&batch)),
                    "spool write failed",
                );
                self.stats.dropped_batches += 1;
                return Ok(());
            }
        };
        self.disk_bytes += size;
        self.stats.spooled += 1;
        // Keep the queue ordered by seq (spilled entries are re-inserted in place).
        let pos = self
            .entries
            .iter()
            .position(|e| e.seq > seq)
            .unwrap_or(self.entries.len());
        self.entries.insert(
            pos,
            Entry {
                seq,
                bytes: size,
                held: Held::Disk(path),
            },
        );
        Ok(())
    }

    fn note_lost(&mut self, stage: LostStage, s: Option<Summary>, detail: &str) {
        let ts = now_us();
        let mut add = |unit: &str, count: u64| {
            if count > 0 {
                self.pending_lost.push(Lost {
                    ts_us: ts,
                    stage: stage as i32,
                    unit: unit.into(),
                    count,
                    detail: detail.into(),
                });
            }
        };
        add("batches", 1);
        match s {
            Some(s) => {
                add("packets", s.packets);
                add("flows", s.flows);
                add("events", s.events);
                add("stats", s.stats);
            }
            None => add("unreadable_batches", 1),
        }
        warn!(?stage, ?s, detail, "batch lost");
    }

    /// Queues a batch holding only the pending lost records, if there are any (so a loss is
    /// reported even when no other batch follows).
    pub fn flush_lost(&mut self) -> Result<(), UplinkError> {
        if self.pending_lost.is_empty() {
            return Ok(());
        }
        self.push(Batch::default()).map(|_| ())
    }

    /// Lost records not yet placed in a batch (they ride on the next one).
    pub fn pending_lost(&self) -> &[Lost] {
        &self.pending_lost
    }

    /// The next batch to send on the current stream, in order.
    pub fn next_to_send(&mut self) -> Option<Batch> {
        while self.cursor < self.entries.len() {
            let e = &self.entries[self.cursor];
            match &e.held {
                Held::Mem(b) => {
                    self.cursor += 1;
                    return Some(b.clone());
                }
                Held::Disk(p) => {
                    let p = p.clone();
                    let detail = match read_spool_file(&p) {
                        SpoolRead::Batch(b) => {
                            self.cursor += 1;
                            return Some(b);
                        }
                        SpoolRead::Damaged => {
                            warn!(path = %p.display(), "damaged spool file; dropping it");
                            remove_spool_file(&p);
                            "damaged spool file"
                        }
                        SpoolRead::Unreadable(error) => {
                            warn!(path = %p.display(), %error, "unreadable spool file; set aside as .unreadable");
                            set_aside(&p);
                            "unreadable spool file (set aside)"
                        }
                    };
                    let e = self.entries.remove(self.cursor).expect("index in range");
                    self.disk_bytes -= e.bytes;
                    self.note_lost(LostStage::AgentSpool, None, detail);
                }
            }
        }
        None
    }

    /// The collector acknowledged every batch up to `seq`.
    ///
    /// Returns false, removing nothing, if `seq` is not a batch in flight: a confused or
    /// hostile collector cannot make the agent drop what it never received.
    #[must_use]
    pub fn ack(&mut self, seq: u64) -> bool {
        if !self.entries.iter().take(self.cursor).any(|e| e.seq == seq) {
            return false;
        }
        while let Some(e) = self.entries.front() {
            if e.seq > seq || self.cursor == 0 {
                break;
            }
            let e = self.entries.pop_front().expect("front exists");
            self.cursor -= 1;
            self.stats.acked += 1;
            match e.held {
                Held::Mem(_) => self.mem_bytes -= e.bytes,
                Held::Disk(p) => {
                    self.disk_bytes -= e.bytes;
                    remove_spool_file(&p);
                }
            }
        }
        true
    }

    /// The collector refused the oldest batch for good (malformed or too large): drop it.
    pub fn reject_front(&mut self, detail: &str) {
        if let Some(e) = self.entries.pop_front() {
            let summary = match e.held {
                Held::Mem(b) => {
                    self.mem_bytes -= e.bytes;
                    Some(Summary::of(&b))
                }
                Held::Disk(p) => {
                    self.disk_bytes -= e.bytes;
                    summarize_and_remove(&p)
                }
            };
            self.stats.rejected_batches += 1;
            self.note_lost(LostStage::CollectorRejected, summary, detail);
        }
        self.cursor = 0;
    }

    /// A stream is up: new batches may stay in memory.
    pub fn connected(&mut self) {
        self.connected = true;
        self.cursor = 0;
    }

    /// The stream ended: everything will be resent, and what is in memory goes to the spool.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.cursor = 0;
        self.spill();
    }

    /// Writes every in-memory batch to the spool (at shutdown, or when the collector is gone).
    pub fn spill(&mut self) {
        let mem: Vec<Entry> = {
            let (mem, keep): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.entries)
                .into_iter()
                .partition(|e| matches!(e.held, Held::Mem(_)));
            self.entries = keep.into();
            mem
        };
        self.mem_bytes = 0;
        self.cursor = 0;
        for e in mem {
            if let Held::Mem(b) = e.held
                && let Err(err) = self.spool(e.seq, b)
            {
                warn!(error = %err, "spilling to the spool failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanscope_proto::v1::Flow;

    fn cfg(dir: &Path, max: u64) -> OutboxConfig {
        OutboxConfig {
            sensor_id: "s1".into(),
            agent_version: "t".into(),
            spool_dir: dir.to_path_buf(),
            spool_max_bytes: max,
            max_mem_bytes: 1 << 20,
        }
    }

    fn batch(packets: u64) -> Batch {
        Batch {
            flows: vec![Flow {
                packets,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn drain_seqs(o: &mut Outbox) -> Vec<u64> {
        let mut v = Vec::new();
        while let Some(b) = o.next_to_send() {
            v.push(b.seq);
        }
        v
    }

    #[test]
    fn order_ack_resend_and_restart() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(cfg(d.path(), 1 << 20)).unwrap();
        // Not connected: spooled.
        assert_eq!(o.push(batch(1)).unwrap(), 1);
        assert_eq!(o.push(batch(2)).unwrap(), 2);
        assert_eq!(o.spooled(), 2);
        o.connected();
        // Spool non-empty: new batches keep order behind it.
        assert_eq!(o.push(batch(3)).unwrap(), 3);
        assert_eq!(drain_seqs(&mut o), [1, 2, 3]);
        assert!(o.ack(1));
        assert_eq!(o.len(), 2);
        // Stream breaks before 2 and 3 are acked: they are resent, in order.
        o.disconnected();
        o.connected();
        assert_eq!(drain_seqs(&mut o), [2, 3]);
        assert!(o.ack(3));
        assert!(o.is_empty());
        assert_eq!(o.spooled(), 0);
        // Connected and empty: in memory.
        o.push(batch(4)).unwrap();
        assert_eq!(o.spooled(), 0);
        // Restart: in-memory batch spilled at shutdown, seq continues after the reservation.
        o.spill();
        drop(o);
        let mut o = Outbox::open(cfg(d.path(), 1 << 20)).unwrap();
        o.connected();
        assert_eq!(drain_seqs(&mut o), [4]);
        let s = o.push(batch(5)).unwrap();
        // The first run reserved seqs 1..=SEQ_BLOCK; the new run starts after them.
        assert_eq!(s, 1 + SEQ_BLOCK);
    }

    #[test]
    fn full_spool_drops_oldest_and_reports_it() {
        let d = tempfile::tempdir().unwrap();
        let one = encode_file(&Batch {
            sensor_id: "s1".into(),
            seq: 1,
            created_us: now_us(),
            agent_version: "t".into(),
            instance_id: u64::MAX, // fixed64: the same size for every instance
            ..batch(10)
        })
        .len() as u64;
        let mut o = Outbox::open(cfg(d.path(), one * 2 + one / 2)).unwrap();
        o.push(batch(10)).unwrap();
        o.push(batch(20)).unwrap();
        o.push(batch(30)).unwrap(); // drops seq 1 (10 packets)
        assert_eq!(o.stats.dropped_batches, 1);
        let lost = o.pending_lost().to_vec();
        let packets: u64 = lost
            .iter()
            .filter(|l| l.unit == "packets")
            .map(|l| l.count)
            .sum();
        assert_eq!(packets, 10);
        assert!(lost.iter().all(|l| l.stage == LostStage::AgentSpool as i32));
        o.connected();
        let sent: Vec<Batch> = std::iter::from_fn(|| o.next_to_send()).collect();
        assert_eq!(sent.iter().map(|b| b.seq).collect::<Vec<_>>(), [2, 3]);
        // The next batch carries the lost records.
        assert!(o.ack(3));
        o.push(batch(1)).unwrap();
        let b = o.next_to_send().unwrap();
        assert_eq!(b.lost.len(), lost.len());
        assert!(o.pending_lost().is_empty());
    }

    /// Review L9: an ack for a seq that is not in flight (never sent, or not yet sent) removes
    /// nothing.
    #[test]
    fn acks_for_batches_not_in_flight_remove_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(cfg(d.path(), 1 << 20)).unwrap();
        o.connected();
        for p in 1..=3 {
            o.push(batch(p)).unwrap();
        }
        assert_eq!(drain_seqs(&mut o), [1, 2, 3]);
        o.push(batch(4)).unwrap();
        assert!(!o.ack(u64::MAX));
        assert!(!o.ack(4), "4 is queued, not sent");
        assert!(!o.ack(0));
        assert_eq!((o.len(), o.stats.acked), (4, 0));
        assert!(o.ack(2));
        assert_eq!((o.len(), o.stats.acked), (2, 2));
        assert!(!o.ack(2), "already acknowledged");
        assert_eq!(drain_seqs(&mut o), [4]);
    }

    /// Review L4: the spool is private and writes follow no planted symlink.
    #[test]
    fn the_spool_is_private_and_follows_no_symlinks() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let spool = d.path().join("spool");
        fs::create_dir(&spool).unwrap();
        fs::set_permissions(&spool, fs::Permissions::from_mode(0o700)).unwrap();
        symlink(&victim, spool.join("lock")).unwrap();
        assert!(
            Outbox::open(cfg(&spool, 1 << 20)).is_err(),
            "lock is a symlink"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        fs::remove_file(spool.join("lock")).unwrap();

        // A temporary name planted as a link is replaced, not followed.
        symlink(&victim, spool.join(format!(".{:020}.batch.tmp", 1))).unwrap();
        {
            let mut o = Outbox::open(cfg(&spool, 1 << 20)).unwrap();
            o.push(batch(1)).unwrap();
        }
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        let file = spool.join(format!("{:020}.batch", 1));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&spool.join("lock")), 0o600);

        let fresh = d.path().join("new/spool");
        drop(Outbox::open(cfg(&fresh, 1 << 20)).unwrap());
        assert_eq!(mode(&fresh), 0o700);

        fs::set_permissions(&spool, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            Outbox::open(cfg(&spool, 1 << 20)),
            Err(UplinkError::SpoolExposed { mode: 0o777, .. })
        ));
    }

    #[test]
    fn rejected_front_is_dropped_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(cfg(d.path(), 1 << 20)).unwrap();
        o.connected();
        o.push(batch(7)).unwrap();
        o.push(batch(8)).unwrap();
        assert_eq!(drain_seqs(&mut o), [1, 2]);
        o.reject_front("invalid");
        assert_eq!(drain_seqs(&mut o), [2]);
        assert_eq!(o.stats.rejected_batches, 1);
        assert!(
            o.pending_lost()
                .iter()
                .any(|l| l.stage == LostStage::CollectorRejected as i32
                    && l.unit == "packets"
                    && l.count == 7)
        );
    }

    /// Corpus fuzz of the spool reader: spools of known batches with random files damaged
    /// (bit flip, truncation, appended or replacing garbage, emptied). Reading never panics,
    /// every intact batch comes back in order with its content, and each damaged file is one
    /// counted `unreadable_batches` loss.
    #[test]
    fn spool_survives_random_damage_and_loses_only_damaged_files() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(0x5b00_1f22);
        let cases = std::env::var("SCANSCOPE_SPOOL_FUZZ")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        for case in 0..cases {
            let d = tempfile::tempdir().unwrap();
            let n = rng.random_range(1..12u64);
            {
                let mut o = Outbox::open(cfg(d.path(), 1 << 20)).unwrap();
                for p in 1..=n {
                    assert_eq!(o.push(batch(p)).unwrap(), p);
                }
            }
            let mut damaged = std::collections::BTreeSet::new();
            for seq in 1..=n {
                if !rng.random_bool(0.3) {
                    continue;
                }
                let path = d.path().join(format!("{seq:020}.batch"));
                let mut data = fs::read(&path).unwrap();
                match rng.random_range(0..5) {
                    0 => {
                        let at = rng.random_range(0..data.len());
                        data[at] ^= 1 << rng.random_range(0..8);
                    }
                    1 => data.truncate(rng.random_range(0..data.len())),
                    2 => data.extend((0..rng.random_range(1..32)).map(|_| rng.random::<u8>())),
                    3 => {
                        data = (0..rng.random_range(0..64))
                            .map(|_| rng.random::<u8>())
                            .collect()
                    }
                    _ => data.clear(),
                }
                fs::write(&path, &data).unwrap();
                damaged.insert(seq);
            }
            let mut o = Outbox::open(cfg(d.path(), 1 << 20)).unwrap();
            o.connected();
            let mut got = Vec::new();
            while let Some(b) = o.next_to_send() {
                assert_eq!(b.flows[0].packets, b.seq, "case {case}: content intact");
                got.push(b.seq);
            }
            let want: Vec<u64> = (1..=n).filter(|s| !damaged.contains(s)).collect();
            assert_eq!(got, want, "case {case}");
            let unreadable: u64 = o
                .pending_lost()
                .iter()
                .filter(|l| l.unit == "unreadable_batches")
                .map(|l| l.count)
                .sum();
            assert_eq!(unreadable, damaged.len() as u64, "case {case}");
        }
    }

    #[test]
    fn corrupt_spool_file_is_counted_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut o = Outbox::open(cfg(d.path(), 1 << 20)).unwrap();
            o.push(batch(1)).unwrap();
            o.push(batch(2)).unwrap();
        }
        fs::write(d.path().join(format!("{:020}.batch", 1)), b"garbage").unwrap();
        let mut o = Outbox::open(cfg(d.path(), 1 << 20)).unwrap();
        o.connected();
        assert_eq!(drain_seqs(&mut o), [2]);
        assert!(
            o.pending_lost()
                .iter()
                .any(|l| l.unit == "unreadable_batches")
        );
        // A second agent on the same spool is refused.
        assert!(matches!(
            Outbox::open(cfg(d.path(), 1 << 20)),
            Err(UplinkError::SpoolLocked(_))
        ));
    }
}
