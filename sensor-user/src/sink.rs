//! Sink stage: the agent's local output, JSON lines (the collector stream is `uplink`). A line
//! that cannot be written is counted (`failed`, reported as lost, stage `agent_output`); the
//! agent goes on.
use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
};

use crate::record::Record;

/// Errors writing records.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open output {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing output {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes one JSON object per line (`-` = standard output).
pub struct JsonlSink {
    path: String,
    out: BufWriter<Box<dyn Write + Send>>,
    /// Records written so far.
    pub written: u64,
    /// Records that could not be written.
    pub failed: u64,
    /// Records buffered since the last successful flush.
    pending: u64,
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSink")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish()
    }
}

impl JsonlSink {
    /// Opens (truncates) the file, or standard output for `-`.
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let name = path.display().to_string();
        let w: Box<dyn Write + Send> = if name == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(File::create(path).map_err(|source| SinkError::Open {
                path: name.clone(),
                source,
            })?)
        };
        Ok(JsonlSink {
            path: name,
            out: BufWriter::with_capacity(1 << 16, w),
            written: 0,
            failed: 0,
            pending: 0,
        })
    }

    /// Writes one record (buffered; a failure is counted in `failed` and returned).
    pub fn write(&mut self, r: &Record) -> Result<(), SinkError> {
        let line = serde_json::to_vec(r).map_err(|e| self.fail(std::io::Error::other(e), 1))?;
        self.out
            .write_all(&line)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| self.fail(e, 1))?;
        self.pending += 1;
        Ok(())
    }

    /// Flushes buffered lines (after every batch). On failure the buffered lines are counted
    /// in `failed` and dropped, so later lines can still go out.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        match self.out.flush() {
            Ok(()) => {
                self.written += self.pending;
                self.pending = 0;
                Ok(())
            }
            Err(e) => {
                let n = self.pending;
                self.pending = 0;
                let placeholder: Box<dyn Write + Send> = Box::new(std::io::sink());
                let old = std::mem::replace(&mut self.out, BufWriter::new(placeholder));
                let (inner, _dropped) = old.into_parts();
                self.out = BufWriter::with_capacity(1 << 16, inner);
                Err(self.fail(e, n))
            }
        }
    }

    fn fail(&mut self, source: std::io::Error, records: u64) -> SinkError {
        self.failed += records;
        SinkError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Lost;

    #[test]
    fn a_full_device_is_counted_not_fatal() {
        let mut s = JsonlSink::create(Path::new("/dev/full")).unwrap();
        let r = Record::Lost(Lost {
            ts: chrono::Utc::now(),
            sensor: "s".into(),
            stage: scanscope_common::LostStage::KernelRingbuf,
            unit: "events",
            count: 1,
        });
        for _ in 0..3 {
            s.write(&r).unwrap();
        }
        assert!(s.flush().is_err());
        assert_eq!((s.written, s.failed), (0, 3));
        s.write(&r).unwrap();
        assert!(s.flush().is_err());
        assert_eq!(s.failed, 4);
    }
}
