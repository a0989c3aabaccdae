//! Ingest errors, and the one place where they become gRPC status codes.
use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use scanscope_lake::LakeError;
use tonic::{Code, Status};

use crate::wal::WalError;

/// Why the collector cannot make a batch durable now. Cloneable: one failed group commit is
/// the answer to every batch of the group.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The disk (or quota) is full: the collector stops acknowledging until space is back.
    #[error("disk full")]
    DiskFull,
    /// Another write-ahead-log failure.
    #[error("write-ahead log: {0}")]
    Wal(Arc<WalError>),
    /// An earlier batch of the same stream failed: later ones fail too, or a resend of the
    /// failed one would look like a duplicate of a later one.
    #[error("an earlier batch of this stream was not stored")]
    EarlierBatchFailed,
    /// More is waiting for the lake than the collector holds (the lake cannot be written, or
    /// cannot keep up): the agents spool until it catches up.
    #[error("too much data waits for the lake; retry later")]
    Backlog,
}

impl From<WalError> for StorageError {
    fn from(e: WalError) -> StorageError {
        if e.is_disk_full() {
            StorageError::DiskFull
        } else {
            StorageError::Wal(Arc::new(e))
        }
    }
}

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
    Storage(#[from] StorageError),
    /// A new sensor id or agent instance beyond what the collector keeps state for. Not the
    /// batch's fault: the agent spools and retries (UNAVAILABLE), the operator raises the cap.
    #[error("collector at capacity (sensor {sensor:?}, seq {seq}): {reason}")]
    Capacity {
        sensor: String,
        seq: u64,
        reason: String,
    },
    /// The sender's credentials do not name the batch's sensor id.
    #[error("these credentials may not write sensor {sensor:?}")]
    Denied { sensor: String },
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
            IngestError::Capacity { .. } => "capacity",
            IngestError::Denied { .. } => "permission_denied",
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

    /// True if the cause is a full disk.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, IngestError::Storage(StorageError::DiskFull))
    }
}

impl From<IngestError> for Status {
    fn from(e: IngestError) -> Status {
        let code = match &e {
            IngestError::Invalid { .. } => Code::InvalidArgument,
            IngestError::TooLarge { .. } => Code::ResourceExhausted,
            IngestError::Denied { .. } => Code::PermissionDenied,
            IngestError::Storage(_) | IngestError::Capacity { .. } | IngestError::ShuttingDown => {
                Code::Unavailable
            }
            IngestError::Stream(s) => return s.clone(),
        };
        Status::new(code, e.to_string())
    }
}

/// Why a flush to the lake failed (the data stays in the write-ahead log; the next flush
/// retries).
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("sealing the write-ahead log segment: {0}")]
    Wal(#[from] WalError),
    #[error("writing the lake: {0}")]
    Lake(#[from] LakeError),
    #[error("writing the checkpoint {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the store thread stopped")]
    StoreStopped,
}

impl FlushError {
    /// True if the cause is a full disk.
    pub fn is_disk_full(&self) -> bool {
        match self {
            FlushError::Wal(e) => e.is_disk_full(),
            FlushError::Lake(e) => e.is_disk_full(),
            FlushError::Checkpoint { source, .. } => scanscope_lake::error::is_enospc(source),
            FlushError::StoreStopped => false,
        }
    }
}

/// Errors that stop the collector (or keep it from starting).
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
    #[error("replaying the write-ahead log into the lake: {0}")]
    Flush(#[from] FlushError),
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
    #[error("the token file {0} holds no token")]
    NoToken(PathBuf),
    #[error("token file {path}, line {line}: expected `sensor-id token` (or `* token` for any id)")]
    TokenLine { path: PathBuf, line: usize },
    #[error(
        "refusing to listen on {addr} without TLS and tokens: any host could write any sensor's \
         data (add --tls-cert/--tls-key and --token-file or --client-ca, or pass --insecure)"
    )]
    Insecure { addr: SocketAddr },
    #[error("--{flag} must be between {min} and {max}")]
    OutOfRange {
        flag: &'static str,
        min: f64,
        max: f64,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[source] tonic::transport::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[source] tonic::transport::Error),
    #[error("the store thread stopped unexpectedly")]
    StoreGone,
    #[error("NetFlow parser configuration: {0}")]
    NetflowConfig(String),
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
        let cap = IngestError::Capacity {
            sensor: "s".into(),
            seq: 1,
            reason: "x".into(),
        };
        assert!(!cap.is_permanent());
        assert_eq!(Status::from(cap).code(), Code::Unavailable);
        let st = IngestError::Storage(StorageError::DiskFull);
        assert!(!st.is_permanent() && st.is_disk_full());
        assert_eq!(Status::from(st).code(), Code::Unavailable);
        assert_eq!(
            Status::from(IngestError::ShuttingDown).code(),
            Code::Unavailable
        );
        let wal = WalError::Io {
            op: "appending to",
            path: "x.wal".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(matches!(StorageError::from(wal), StorageError::DiskFull));
        let wal = WalError::Io {
            op: "appending to",
            path: "x.wal".into(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        };
        assert!(matches!(StorageError::from(wal), StorageError::Wal(_)));
    }
}
