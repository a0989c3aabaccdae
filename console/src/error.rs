//! The console's errors, and their HTTP status codes (mapped here, once).
use std::{net::SocketAddr, path::PathBuf};

use axum::http::StatusCode;
use scanscope_lake::LakeError;

use crate::query::QueryError;

/// Errors of the console: of a request (a bad query or parameter, an unknown IP), of the lake
/// under it, and of its start-up (TLS files, the address).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("query: {0}")]
    Query(#[from] QueryError),
    #[error("parameter {param}: {reason}")]
    BadParam { param: &'static str, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("an access token is needed (Authorization: Bearer …, or log in)")]
    Unauthorized,
    #[error("no such table view {view:?} (this page has: {have})")]
    NoTable { view: String, have: String },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{table} {date}: {source}")]
    Arrow {
        table: &'static str,
        date: chrono::NaiveDate,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("a worker failed: {0}")]
    Worker(String),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(
        "the console would listen on {addr}, which is not a loopback address, without an access token: give --console-token-file (and --console-tls-cert/--console-tls-key), or --console-insecure to serve it open"
    )]
    Insecure { addr: SocketAddr },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl ConsoleError {
    /// The HTTP status of a request that failed with this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Query(_)
            | ConsoleError::BadParam { .. }
            | ConsoleError::NoTable { .. } => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Unauthorized => StatusCode::UNAUTHORIZED,
            ConsoleError::Lake(_)
            | ConsoleError::Arrow { .. }
            | ConsoleError::Worker(_)
            | ConsoleError::File { .. }
            | ConsoleError::Tls(_)
            | ConsoleError::Insecure { .. }
            | ConsoleError::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable name of the error, for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            ConsoleError::Query(_) => "bad_query",
            ConsoleError::BadParam { .. } => "bad_parameter",
            ConsoleError::NotFound(_) => "not_found",
            ConsoleError::NoTable { .. } => "no_such_table",
            ConsoleError::Unauthorized => "unauthorized",
            _ => "internal",
        }
    }

    /// The query error's column, for the UI's caret.
    pub fn column(&self) -> Option<usize> {
        match self {
            ConsoleError::Query(q) => Some(q.column),
            _ => None,
        }
    }

    pub(crate) fn param(param: &'static str, reason: impl Into<String>) -> Self {
        ConsoleError::BadParam {
            param,
            reason: reason.into(),
        }
    }
}
