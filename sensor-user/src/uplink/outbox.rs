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
    fs::{self, File},
    io::{self, Write},
    os::fd::AsRawFd,
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
    let r = File::create(&tmp)
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

impl Outbox {
    /// Opens the spool directory: locks it, reads the sequence reservation and lists the
    /// batches a previous run left (they are sent first).
    pub fn open(cfg: OutboxConfig) -> Result<Outbox, UplinkError> {
        let dir = cfg.spool_dir.clone();
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(io_err("creating", &lock_path))?;
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
        let reserved: u64 = match fs::read_to_string(&seq_path) {
            Ok(s) => s.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err("reading", &seq_path)(e)),
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
                Held::Disk(p) => {
                    let s = fs::read(p)
                        .ok()
                        .and_then(|d| decode_file(&d))
                        .map(|b| Summary::of(&b));
                    remove_spool_file(p);
                    s
                }
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
                Held::Disk(p) => match fs::read(p).ok().and_then(|d| decode_file(&d)) {
                    Some(b) => {
                        self.cursor += 1;
                        return Some(b);
                    }
                    None => {
                        let p = p.clone();
                        warn!(path = %p.display(), "unreadable spool file; dropping it");
                        let e = self.entries.remove(self.cursor).expect("index in range");
                        self.disk_bytes -= e.bytes;
                        remove_spool_file(&p);
                        self.note_lost(LostStage::AgentSpool, None, "unreadable spool file");
                    }
                },
            }
        }
        None
    }

    /// The collector acknowledged every batch up to `seq`.
    pub fn ack(&mut self, seq: u64) {
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
                    let s = fs::read(&p)
                        .ok()
                        .and_then(|d| decode_file(&d))
                        .map(|b| Summary::of(&b));
                    remove_spool_file(&p);
                    s
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
        o.ack(1);
        assert_eq!(o.len(), 2);
        // Stream breaks before 2 and 3 are acked: they are resent, in order.
        o.disconnected();
        o.connected();
        assert_eq!(drain_seqs(&mut o), [2, 3]);
        o.ack(3);
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
        o.ack(3);
        o.push(batch(1)).unwrap();
        let b = o.next_to_send().unwrap();
        assert_eq!(b.lost.len(), lost.len());
        assert!(o.pending_lost().is_empty());
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
