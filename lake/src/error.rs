//! Errors of the lake: every one names the object (or table) concerned; a full disk is its own
//! variant, recognised from the I/O error's code, never from a message.
use std::io;

/// Errors reading or writing the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The storage is full (ENOSPC / EDQUOT): retrying after space is freed succeeds.
    #[error("{op} {path}: no space left on the lake's storage")]
    DiskFull {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{op} {path}: {source}")]
    Storage {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("encoding {table} for {path}: {source}")]
    Encode {
        table: &'static str,
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("reading {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("building {table} rows: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{path}: unexpected schema: no column {column:?}")]
    MissingColumn { path: String, column: String },
    #[error("{path}: column {column:?} has type {found}, not the expected one")]
    ColumnType {
        path: String,
        column: String,
        found: arrow::datatypes::DataType,
    },
    #[error("lake location {location:?}: {reason}")]
    Location {
        location: String,
        reason: &'static str,
    },
    #[error("creating the lake directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LakeError {
    /// True when the error is the storage being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            LakeError::DiskFull { .. } => true,
            LakeError::Encode { source, .. } => chain_is_enospc(source),
            _ => false,
        }
    }

    /// A storage error, as [`LakeError::DiskFull`] when the cause is a full disk.
    pub(crate) fn storage(
        op: &'static str,
        path: impl ToString,
        source: object_store::Error,
    ) -> Self {
        let path = path.to_string();
        if chain_is_enospc(&source) {
            LakeError::DiskFull { op, path, source }
        } else {
            LakeError::Storage { op, path, source }
        }
    }

    /// True when the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            LakeError::Storage {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

/// ENOSPC or EDQUOT (or `StorageFull`).
pub fn is_enospc(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}

/// Whether any error in the `source()` chain is an I/O error of a full disk (also inside an
/// `io::Error` that wraps another error, as async writers' errors do).
pub fn chain_is_enospc(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<io::Error>() {
        if is_enospc(io) {
            return true;
        }
        if let Some(inner) = io.get_ref()
            && chain_is_enospc(inner)
        {
            return true;
        }
    }
    e.source().is_some_and(chain_is_enospc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_found_through_wrappers() {
        let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
        let store = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(enospc),
        };
        // An async writer's view: the store's error wrapped in an io::Error, in a ParquetError.
        let wrapped = io::Error::other(store);
        let pq = parquet::errors::ParquetError::External(Box::new(wrapped));
        assert!(chain_is_enospc(&pq));
        let other = parquet::errors::ParquetError::External(Box::new(
            io::Error::from_raw_os_error(libc::EIO),
        ));
        assert!(!chain_is_enospc(&other));
        let e = LakeError::Encode {
            table: "flows",
            path: "x".into(),
            source: pq,
        };
        assert!(e.is_disk_full());
    }
}
