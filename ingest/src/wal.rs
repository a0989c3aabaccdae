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
    /// Bytes cut off a torn tail.
    pub truncated: u64,
}

fn seg_path(dir: &Path, seg: u64) -> PathBuf {
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

/// Reads every intact record of a segment and cuts off a torn or corrupt tail.
pub fn replay(dir: &Path, seg: u64) -> Result<Replayed, WalError> {
    let path = seg_path(dir, seg);
    let err = |op| {
        let path = path.clone();
        move |source| WalError::Io { op, path, source }
    };
    let mut data = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(err("reading"))?;
    let mut batches = Vec::new();
    let mut off = 0usize;
    while data.len() - off >= HEADER {
        let len = u32::from_le_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().expect("4 bytes"));
        let Some(body) = data.get(off + HEADER..off + HEADER + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        match Batch::decode(body) {
            Ok(b) => batches.push(b),
            Err(_) => break,
        }
        off += HEADER + len;
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
            .map_err(err("truncating"))?;
    }
    Ok(Replayed {
        segment: seg,
        batches,
        truncated,
    })
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
        // A flipped byte in the last record stops the replay there.
        let mut bytes = fs::read(seg_path(d.path(), 3)).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(seg_path(d.path(), 3), &bytes).unwrap();
        let r = replay(d.path(), 3).unwrap();
        assert_eq!(r.batches.len(), 2);
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
}
