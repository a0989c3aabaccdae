//! Auth stage: bearer tokens (checked on every request's metadata) and TLS / mutual TLS
//! settings for the listener.
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tonic::{
    Request, Status,
    service::Interceptor,
    transport::{Certificate, Identity, ServerTlsConfig},
};

use crate::error::CollectorError;

/// Checks `authorization: Bearer <token>` against the configured tokens (none = open).
#[derive(Clone, Default)]
pub struct TokenAuth {
    tokens: Arc<Vec<Vec<u8>>>,
    /// Requests refused since start.
    pub refused: Arc<AtomicU64>,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("tokens", &self.tokens.len())
            .field("refused", &self.refused.load(Ordering::Relaxed))
            .finish()
    }
}

/// Compares without an early exit on the first differing byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenAuth {
    /// Accepts any of `tokens`; an empty list accepts every request.
    pub fn new(tokens: Vec<String>) -> Self {
        TokenAuth {
            tokens: Arc::new(tokens.into_iter().map(String::into_bytes).collect()),
            refused: Arc::default(),
        }
    }

    /// Checks one `authorization` header value.
    pub fn check(&self, header: Option<&[u8]>) -> Result<(), Status> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let Some(h) = header else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Status::unauthenticated("missing bearer token"));
        };
        let ok = h
            .strip_prefix(b"Bearer ")
            .is_some_and(|t| self.tokens.iter().any(|k| ct_eq(k, t)));
        if ok {
            Ok(())
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

impl Interceptor for TokenAuth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(req.metadata().get("authorization").map(|v| v.as_bytes()))?;
        Ok(req)
    }
}

/// TLS files for the listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA that client certificates must chain to (PEM); set = mutual TLS required.
    pub client_ca: Option<PathBuf>,
}

/// Reads a token file: one accepted token per line; blank lines and `#` comments are skipped.
/// A file without any token is an error (it would silently open the collector).
pub fn read_token_file(path: &Path) -> Result<Vec<String>, CollectorError> {
    let text = std::fs::read_to_string(path).map_err(|source| CollectorError::ReadFile {
        what: "token file",
        path: path.to_path_buf(),
        source,
    })?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if tokens.is_empty() {
        return Err(CollectorError::NoToken(path.to_path_buf()));
    }
    Ok(tokens)
}

fn read(what: &'static str, path: &PathBuf) -> Result<Vec<u8>, CollectorError> {
    std::fs::read(path).map_err(|source| CollectorError::ReadFile {
        what,
        path: path.clone(),
        source,
    })
}

impl TlsFiles {
    /// Builds the server TLS configuration.
    pub fn server_config(&self) -> Result<ServerTlsConfig, CollectorError> {
        let cert = read("TLS certificate", &self.cert)?;
        let key = read("TLS key", &self.key)?;
        let mut cfg = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            cfg = cfg.client_ca_root(Certificate::from_pem(read("client CA", ca)?));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let open = TokenAuth::new(vec![]);
        open.check(None).unwrap();
        let a = TokenAuth::new(vec!["s3cret".into(), "other".into()]);
        a.check(Some(b"Bearer s3cret")).unwrap();
        a.check(Some(b"Bearer other")).unwrap();
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"s3cret",
            b"Basic s3cret",
        ] {
            assert_eq!(
                a.check(Some(bad)).unwrap_err().code(),
                tonic::Code::Unauthenticated
            );
        }
        assert_eq!(
            a.check(None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(a.refused.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn token_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tokens");
        std::fs::write(&p, "# sensors\n\n  abc  \ndef\n").unwrap();
        assert_eq!(read_token_file(&p).unwrap(), ["abc", "def"]);
        std::fs::write(&p, "# nothing\n\n").unwrap();
        assert!(matches!(
            read_token_file(&p),
            Err(CollectorError::NoToken(_))
        ));
        assert!(matches!(
            read_token_file(&d.path().join("missing")),
            Err(CollectorError::ReadFile { .. })
        ));
    }
}
