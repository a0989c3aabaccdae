//! Sink stage: where records go. JSON lines today; the collector stream joins it later.
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
        })
    }

    /// Writes one record.
    pub fn write(&mut self, r: &Record) -> Result<(), SinkError> {
        let err = |source| SinkError::Write {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, r).map_err(|e| err(std::io::Error::other(e)))?;
        self.out.write_all(b"\n").map_err(err)?;
        self.written += 1;
        Ok(())
    }

    /// Flushes buffered lines (after every batch).
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Write {
            path: self.path.clone(),
            source,
        })
    }
}
