//! Collector errors, and the one place where they become gRPC status codes.
use std::{net::SocketAddr, path::PathBuf};

use tonic::{Code, Status};

use crate::{lake::LakeError, wal::WalError};

/// Why a batch was not stored. Converted to a gRPC status by `From<IngestError> for Status`.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch is malformed or a value is out of range.
    #[error("invalid batch (sensor {sensor:?}, seq {seq}): {reason}")]
    Invalid {
        sensor: String,
        seq: u64,
        reason: String,
    },
    /// The batch exceeds a size limit.
    #[error("batch too large (sensor {sensor:?}, seq {seq}): {reason}")]
    TooLarge {
        sensor: String,
        seq: u64,
        reason: String,
    },
    /// The collector cannot make the batch durable now (disk full, I/O error): retry later.
    #[error("collector cannot store now: {0}")]
    Storage(String),
    /// The collector is shutting down.
    #[error("collector is shutting down")]
    ShuttingDown,
    /// The inbound stream broke (transport error from the peer).
    #[error("stream error: {0}")]
    Stream(Status),
}

impl IngestError {
    /// Short reason name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Invalid { .. } => "invalid_argument",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::Storage(_) => "storage",
            IngestError::ShuttingDown => "shutting_down",
            IngestError::Stream(_) => "stream",
        }
    }

    /// True if the sensor must drop the batch (retrying cannot succeed).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            IngestError::Invalid { .. } | IngestError::TooLarge { .. }
        )
    }
}

impl From<IngestError> for Status {
    fn from(e: IngestError) -> Status {
        let code = match &e {
            IngestError::Invalid { .. } => Code::InvalidArgument,
            IngestError::TooLarge { .. } => Code::ResourceExhausted,
            IngestError::Storage(_) | IngestError::ShuttingDown => Code::Unavailable,
            IngestError::Stream(s) => return s.clone(),
        };
        Status::new(code, e.to_string())
    }
}

/// Errors that stop the collector.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another collector holds the data directory {0} (lock file _state/lock)")]
    Locked(PathBuf),
    #[error("write-ahead log: {0}")]
    Wal(#[from] WalError),
    #[error("lake: {0}")]
    Lake(#[from] LakeError),
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("the store thread stopped unexpectedly")]
    StoreGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        let inv = IngestError::Invalid {
            sensor: "s".into(),
            seq: 1,
            reason: "x".into(),
        };
        assert!(inv.is_permanent());
        assert_eq!(Status::from(inv).code(), Code::InvalidArgument);
        let big = IngestError::TooLarge {
            sensor: "s".into(),
            seq: 1,
            reason: "x".into(),
        };
        assert_eq!(Status::from(big).code(), Code::ResourceExhausted);
        let st = IngestError::Storage("disk full".into());
        assert!(!st.is_permanent());
        assert_eq!(Status::from(st).code(), Code::Unavailable);
        assert_eq!(
            Status::from(IngestError::ShuttingDown).code(),
            Code::Unavailable
        );
    }
}
