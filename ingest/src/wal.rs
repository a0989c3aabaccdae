//! Write-ahead log: where a batch becomes durable before it is acknowledged.
//!
//! `DIR/_wal/<segment>.wal` files, each a sequence of records
//! `[u32 length LE][u32 crc32 LE][protobuf Batch]`. The collector appends to the newest
//! segment; a flush seals it, writes its rows to Parquet and deletes it. At start every
//! remaining segment is replayed; a torn record at the tail (crash mid-write) is cut off.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use prost::Message;
use scanscope_proto::v1::Batch;

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl WalError {
    /// The underlying I/O error.
    pub fn io(&self) -> &io::Error {
        match self {
            WalError::Io { source, .. } => source,
        }
    }

    /// True when the disk (or quota) is full.
    pub fn is_disk_full(&self) -> bool {
        scanscope_lake::error::is_enospc(self.io())
    }
}

const HEADER: usize = 8;

/// The open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment: u64,
    file: File,
    len: u64,
}

/// What replaying one segment found.
#[derive(Debug)]
pub struct Replayed {
    pub segment: u64,
    pub batches: Vec<Batch>,
    /// Bytes cut off a torn tail (a record being written when the power went: never
    /// acknowledged).
    pub truncated: u64,
    /// Damaged stretches between intact records (the disk corrupted acknowledged records):
    /// each was moved to `_wal/quarantine/` and the records after it were kept.
    pub corrupt: Vec<Corrupt>,
}

/// A damaged stretch of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    /// Where it starts in the segment.
    pub offset: u64,
    /// How long it is.
    pub bytes: u64,
    /// Where its bytes were kept.
    pub quarantined: PathBuf,
}

/// Largest record body the log holds (the collector refuses larger batches long before).
const MAX_RECORD: usize = 256 << 20;

/// The intact record at `off`, if one starts there: a plausible length, the checksum, and a
/// body that decodes as a batch.
fn record_at(data: &[u8], off: usize) -> Option<(Batch, usize)> {
    let head = data.get(off..off + HEADER)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let body = data.get(off + HEADER..off + HEADER + len)?;
    // Every stored batch starts with its sensor id (field 1): a zeroed stretch, whose empty
    // "record" would pass the checksum, is not one.
    if body.first() != Some(&0x0a) || crc32fast::hash(body) != crc {
        return None;
    }
    Batch::decode(body).ok().map(|b| (b, HEADER + len))
}

/// The next offset after `from` where an intact record starts. Every stored batch begins with
/// its sensor id (field 1, length-delimited: `0x0a`, 1–128, then id bytes), which rules out
/// almost every offset before the checksum is computed, so the scan stays linear.
fn resync(data: &[u8], from: usize) -> Option<usize> {
    let id_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
    (from..data.len().saturating_sub(HEADER + 2)).find(|&o| {
        let body = &data[o + HEADER..];
        body[0] == 0x0a
            && (1..=128).contains(&body[1])
            && body.get(2).is_some_and(|&b| id_byte(b))
            && record_at(data, o).is_some()
    })
}

/// Reads every intact record of a segment. A torn tail (a record cut short, nothing intact
/// after it) is cut off; a damaged stretch with intact records after it is moved to
/// `<dir>/quarantine/<segment>-<offset>.bin` and replay goes on after it.
pub fn replay(dir: &Path, seg: u64) -> Result<Replayed, WalError> {
    let path = seg_path(dir, seg);
    let err = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| WalError::Io { op, path, source }
    };
    let mut data = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(err("reading", &path))?;
    let mut batches = Vec::new();
    let mut corrupt = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        if let Some((b, n)) = record_at(&data, off) {
            batches.push(b);
            off += n;
            continue;
        }
        let Some(next) = resync(&data, off + 1) else {
            break;
        };
        let qdir = dir.join("quarantine");
        let qpath = qdir.join(format!("{seg:012}-{off:012}.bin"));
        fs::create_dir_all(&qdir)
            .and_then(|()| fs::write(&qpath, &data[off..next]))
            .and_then(|()| File::open(&qdir)?.sync_all())
            .map_err(err("quarantining a damaged stretch of", &path))?;
        corrupt.push(Corrupt {
            offset: off as u64,
            bytes: (next - off) as u64,
            quarantined: qpath,
        });
        off = next;
    }
    let truncated = (data.len() - off) as u64;
    if truncated > 0 {
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| {
                f.set_len(off as u64)?;
                f.sync_all()
            })
            .map_err(err("truncating", &path))?;
    }
    Ok(Replayed {
        segment: seg,
        batches,
        truncated,
        corrupt,
    })
}

pub(crate) fn seg_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:012}.wal"))
}

/// Segments present in `dir`, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(WalError::Io {
                op: "listing",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut v: Vec<u64> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".wal")?.parse().ok())
        .collect();
    v.sort_unstable();
    Ok(v)
}

impl Wal {
    /// Creates (or reopens, appending) segment `segment` in `dir`.
    pub fn open(dir: &Path, segment: u64) -> Result<Wal, WalError> {
        fs::create_dir_all(dir).map_err(|source| WalError::Io {
            op: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = seg_path(dir, segment);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| WalError::Io {
                op: "opening",
                path: path.clone(),
                source,
            })?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| WalError::Io {
                op: "syncing directory",
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            segment,
            file,
            len,
        })
    }

    /// The segment appended to.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Bytes in the current segment.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if the current segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one encoded batch (not yet durable: call [`Wal::sync`]).
    pub fn append(&mut self, body: &[u8]) -> Result<(), WalError> {
        let mut rec = Vec::with_capacity(HEADER + body.len());
        rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        rec.extend_from_slice(body);
        match self.file.write_all(&rec) {
            Ok(()) => {
                self.len += rec.len() as u64;
                Ok(())
            }
            Err(source) => {
                // Cut off whatever part was written so the log stays well-formed (best effort:
                // a torn tail is also cut off at replay).
                let _cut = self.file.set_len(self.len).is_ok();
                Err(WalError::Io {
                    op: "appending to",
                    path: seg_path(&self.dir, self.segment),
                    source,
                })
            }
        }
    }

    /// Makes everything appended durable.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.file.sync_data().map_err(|source| WalError::Io {
            op: "syncing",
            path: seg_path(&self.dir, self.segment),
            source,
        })
    }

    /// Drops everything appended after `len` bytes (a failed group commit).
    pub fn rollback(&mut self, len: u64) -> Result<(), WalError> {
        self.file.set_len(len).map_err(|source| WalError::Io {
            op: "truncating",
            path: seg_path(&self.dir, self.segment),
            source,
        })?;
        self.len = len;
        Ok(())
    }

    /// Seals the current segment and starts the next; returns the sealed one.
    pub fn rotate(&mut self) -> Result<u64, WalError> {
        let sealed = self.segment;
        let next = Wal::open(&self.dir, sealed + 1)?;
        *self = next;
        Ok(sealed)
    }

    /// Deletes a sealed segment whose rows are committed to Parquet.
    pub fn remove(&self, segment: u64) -> Result<(), WalError> {
        let p = seg_path(&self.dir, segment);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(WalError::Io {
                op: "removing",
                path: p,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64) -> Batch {
        Batch {
            sensor_id: "s".into(),
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn append_replay_and_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Wal::open(d.path(), 3).unwrap();
        for s in 1..=3 {
            w.append(&batch(s).encode_to_vec()).unwrap();
        }
        w.sync().unwrap();
        let good = w.len();
        // A torn record: header promising more than is there.
        w.append(&batch(4).encode_to_vec()).unwrap();
        let torn = good + 5;
        w.rollback(torn).unwrap();
        drop(w);
        assert_eq!(segments(d.path()).unwrap(), [3]);
        let r = replay(d.path(), 3).unwrap();
        assert_eq!(
            r.batches.iter().map(|b| b.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(r.truncated, 5);
        assert_eq!(fs::metadata(seg_path(d.path(), 3)).unwrap().len(), good);
        // A flipped byte in the last record: nothing intact after it, so it is a torn tail.
        let mut bytes = fs::read(seg_path(d.path(), 3)).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(seg_path(d.path(), 3), &bytes).unwrap();
        let r = replay(d.path(), 3).unwrap();
        assert_eq!(r.batches.len(), 2);
        assert!(r.corrupt.is_empty());
    }

    #[test]
    fn a_damaged_record_in_the_middle_loses_only_itself() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Wal::open(d.path(), 1).unwrap();
        let mut starts = Vec::new();
        for s in 1..=3 {
            starts.push(w.len());
            w.append(&batch(s).encode_to_vec()).unwrap();
        }
        w.sync().unwrap();
        let len = w.len();
        drop(w);
        // A bit flip inside record 2's body.
        let p = seg_path(d.path(), 1);
        let mut bytes = fs::read(&p).unwrap();
        let inside = starts[1] as usize + HEADER + 2;
        bytes[inside] ^= 0x10;
        fs::write(&p, &bytes).unwrap();
        let r = replay(d.path(), 1).unwrap();
        assert_eq!(r.batches.iter().map(|b| b.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(r.truncated, 0);
        assert_eq!(fs::metadata(&p).unwrap().len(), len, "nothing cut off");
        assert_eq!(r.corrupt.len(), 1);
        assert_eq!(r.corrupt[0].offset, starts[1]);
        assert_eq!(r.corrupt[0].bytes, starts[2] - starts[1]);
        assert_eq!(
            fs::read(&r.corrupt[0].quarantined).unwrap(),
            bytes[starts[1] as usize..starts[2] as usize]
        );
        // Garbage in place of a header (a zeroed sector) is found the same way.
        bytes[starts[1] as usize..starts[1] as usize + HEADER].fill(0);
        fs::write(&p, &bytes).unwrap();
        let r = replay(d.path(), 1).unwrap();
        assert_eq!(r.batches.iter().map(|b| b.seq).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn rotate_and_remove() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Wal::open(d.path(), 1).unwrap();
        w.append(&batch(1).encode_to_vec()).unwrap();
        assert_eq!(w.rotate().unwrap(), 1);
        assert_eq!(w.segment(), 2);
        assert!(w.is_empty());
        assert_eq!(segments(d.path()).unwrap(), [1, 2]);
        w.remove(1).unwrap();
        assert_eq!(segments(d.path()).unwrap(), [2]);
    }

    /// Corpus fuzz of the replay: segments of known records damaged at random (bit flips,
    /// zeroed or random stretches, inserted garbage, truncation). Replay never panics, and
    /// every record whose bytes are intact is recovered — none is lost after a damaged one.
    #[test]
    fn replay_survives_random_damage_and_loses_only_damaged_records() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(0x05ca_93a1);
        let d = tempfile::tempdir().unwrap();
        let cases = std::env::var("SCANSCOPE_WAL_FUZZ")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        for case in 0..cases {
            let n = rng.random_range(1..20u64);
            let mut data = Vec::new();
            let mut spans = Vec::new();
            for seq in 1..=n {
                let mut b = batch(seq);
                b.sensor_id = format!("sensor-{}", rng.random_range(0..5));
                b.created_us = rng.random();
                let body = b.encode_to_vec();
                let start = data.len();
                data.extend_from_slice(&(body.len() as u32).to_le_bytes());
                data.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
                data.extend_from_slice(&body);
                spans.push((seq, start, data.len()));
            }
            let mut damaged = vec![false; data.len()];
            let mut shift: Vec<(usize, isize)> = Vec::new();
            match rng.random_range(0..5) {
                0 => {
                    for _ in 0..rng.random_range(1..4) {
                        let at = rng.random_range(0..data.len());
                        data[at] ^= 1 << rng.random_range(0..8);
                        damaged[at] = true;
                    }
                }
                1 => {
                    let at = rng.random_range(0..data.len());
                    let len = rng.random_range(1..64).min(data.len() - at);
                    for i in at..at + len {
                        data[i] = if rng.random_bool(0.5) {
                            0
                        } else {
                            rng.random()
                        };
                        damaged[i] = true;
                    }
                }
                2 => {
                    // Garbage inserted: records after it move.
                    let at = rng.random_range(0..data.len());
                    let len = rng.random_range(1..64);
                    let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    data.splice(at..at, junk);
                    shift.push((at, len as isize));
                    damaged.splice(at..at, std::iter::repeat_n(true, len));
                }
                3 => {
                    // Torn tail.
                    let cut = rng.random_range(0..data.len());
                    data.truncate(cut);
                    damaged.truncate(cut);
                }
                _ => {}
            }
            let seg = case as u64 + 1;
            fs::write(seg_path(d.path(), seg), &data).unwrap();
            let r = replay(d.path(), seg).unwrap();
            let got: Vec<u64> = r.batches.iter().map(|b| b.seq).collect();
            for (seq, start, end) in spans {
                let moved = |x: usize| {
                    let s: isize = shift.iter().filter(|(a, _)| *a <= x).map(|(_, l)| l).sum();
                    (x as isize + s) as usize
                };
                // An insertion inside a record damages it; one at its very start only moves it.
                let cut_inside = shift.iter().any(|(a, _)| *a > start && *a < end);
                let (s, e) = (moved(start), moved(start) + (end - start));
                let intact = !cut_inside && e <= damaged.len() && !damaged[s..e].contains(&true);
                if intact {
                    assert!(
                        got.contains(&seq),
                        "case {case}: intact record {seq} lost: {got:?}"
                    );
                }
            }
            fs::remove_file(seg_path(d.path(), seg)).ok();
        }
    }
}
