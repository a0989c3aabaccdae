//! Auth stage: who may write what. A bearer token (checked on every request's metadata) and a
//! client certificate (mutual TLS) each name the sensor ids their holder may write; the gRPC
//! source refuses a batch for another id (PERMISSION_DENIED). Also the TLS / mutual TLS
//! settings of the listener.
//!
//! Token file: one `sensor-id token` per line (a token may name several ids on several lines);
//! `* token` accepts any id (logged as a warning). Blank lines and `#` comments are skipped.
//! Client certificates: the DNS names of the certificate's subject alternative names are the
//! sensor ids it may write.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tonic::{
    Request, Status,
    service::Interceptor,
    transport::{Certificate, CertificateDer, Identity, ServerTlsConfig},
};

use crate::error::CollectorError;

/// The sensor ids a peer may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Any id (no credentials configured, or a `*` token).
    Any,
    /// Only these.
    Ids(Arc<BTreeSet<String>>),
}

impl Allowed {
    /// Whether `sensor` may be written.
    pub fn permits(&self, sensor: &str) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::Ids(ids) => ids.contains(sensor),
        }
    }

    /// What both allow (a token and a client certificate together).
    pub fn and(&self, other: &Allowed) -> Allowed {
        match (self, other) {
            (Allowed::Any, x) | (x, Allowed::Any) => x.clone(),
            (Allowed::Ids(a), Allowed::Ids(b)) => {
                Allowed::Ids(Arc::new(a.intersection(b).cloned().collect()))
            }
        }
    }

    /// The ids a client certificate names: the DNS names of its subject alternative names.
    /// A certificate naming none, or that does not parse, allows nothing.
    pub fn of_certificate(der: &CertificateDer<'_>) -> Allowed {
        let ids = webpki::EndEntityCert::try_from(der)
            .map(|c| c.valid_dns_names().map(String::from).collect())
            .unwrap_or_default();
        Allowed::Ids(Arc::new(ids))
    }
}

use scanscope_telemetry::ct_eq;

/// Checks `authorization: Bearer <token>` against the configured tokens (none = open) and
/// tells the request which sensor ids its token names (an [`Allowed`] in its extensions).
#[derive(Clone, Default)]
pub struct TokenAuth {
    tokens: Arc<Vec<(Vec<u8>, Allowed)>>,
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

impl TokenAuth {
    /// Accepts any of `tokens` (each with the ids it may write); an empty list accepts every
    /// request for any id.
    pub fn new(tokens: Vec<(String, Allowed)>) -> Self {
        TokenAuth {
            tokens: Arc::new(
                tokens
                    .into_iter()
                    .map(|(t, a)| (t.into_bytes(), a))
                    .collect(),
            ),
            refused: Arc::default(),
        }
    }

    /// Whether any token is configured.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks one `authorization` header value; the ids its token may write.
    pub fn check(&self, header: Option<&[u8]>) -> Result<Allowed, Status> {
        if self.tokens.is_empty() {
            return Ok(Allowed::Any);
        }
        let Some(h) = header else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Status::unauthenticated("missing bearer token"));
        };
        let presented = h.strip_prefix(b"Bearer ").unwrap_or(&[]);
        // Every token is compared (no early exit on the first match).
        let mut found = None;
        for (k, allowed) in self.tokens.iter() {
            if ct_eq(k, presented) && !presented.is_empty() {
                found = Some(allowed.clone());
            }
        }
        match found {
            Some(a) => Ok(a),
            None => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Status::unauthenticated("invalid bearer token"))
            }
        }
    }
}

impl Interceptor for TokenAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let allowed = self.check(req.metadata().get("authorization").map(|v| v.as_bytes()))?;
        req.extensions_mut().insert(allowed);
        Ok(req)
    }
}

/// Reads a token file (see the module documentation): each token with the ids it may write.
/// A file without any token, or a line that is not `sensor-id token`, is an error (a token
/// bound to no sensor would silently open the collector to any id).
pub fn read_token_file(path: &Path) -> Result<Vec<(String, Allowed)>, CollectorError> {
    let text = std::fs::read_to_string(path).map_err(|source| CollectorError::ReadFile {
        what: "token file",
        path: path.to_path_buf(),
        source,
    })?;
    let mut by_token: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, token] = fields[..] else {
            return Err(CollectorError::TokenLine {
                path: path.to_path_buf(),
                line: i + 1,
            });
        };
        if id != "*" && !crate::validate::valid_sensor_id(id) {
            return Err(CollectorError::TokenLine {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        let e = by_token
            .entry(token.to_string())
            .or_insert(Some(BTreeSet::new()));
        match (id, e) {
            ("*", e) => *e = None,
            (_, Some(ids)) => {
                ids.insert(id.to_string());
            }
            (_, None) => {}
        }
    }
    if by_token.is_empty() {
        return Err(CollectorError::NoToken(path.to_path_buf()));
    }
    Ok(by_token
        .into_iter()
        .map(|(t, ids)| match ids {
            None => {
                tracing::warn!(file = %path.display(), "a token accepts any sensor id (`*`)");
                (t, Allowed::Any)
            }
            Some(ids) => (t, Allowed::Ids(Arc::new(ids))),
        })
        .collect())
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

    fn ids(v: &[&str]) -> Allowed {
        Allowed::Ids(Arc::new(v.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn tokens() {
        let open = TokenAuth::new(vec![]);
        assert_eq!(open.check(None).unwrap(), Allowed::Any);
        let a = TokenAuth::new(vec![
            ("s3cret".into(), ids(&["s1"])),
            ("other".into(), Allowed::Any),
        ]);
        assert_eq!(a.check(Some(b"Bearer s3cret")).unwrap(), ids(&["s1"]));
        assert_eq!(a.check(Some(b"Bearer other")).unwrap(), Allowed::Any);
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"s3cret",
            b"Basic s3cret",
            b"Bearer ",
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
        assert_eq!(a.refused.load(Ordering::Relaxed), 6);
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abcd") && !ct_eq(b"", b"x"));
    }

    #[test]
    fn allowed_ids() {
        let a = ids(&["s1", "s2"]);
        assert!(a.permits("s1") && !a.permits("s3"));
        assert!(Allowed::Any.permits("anything"));
        assert_eq!(a.and(&Allowed::Any), a);
        assert_eq!(a.and(&ids(&["s2", "s3"])), ids(&["s2"]));
    }

    #[test]
    fn token_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tokens");
        std::fs::write(&p, "# sensors\n\n  edge-1  abc \nedge-2 abc\n* def\n").unwrap();
        let t = read_token_file(&p).unwrap();
        assert_eq!(
            t,
            [
                ("abc".to_string(), ids(&["edge-1", "edge-2"])),
                ("def".to_string(), Allowed::Any)
            ]
        );
        std::fs::write(&p, "# nothing\n\n").unwrap();
        assert!(matches!(
            read_token_file(&p),
            Err(CollectorError::NoToken(_))
        ));
        // The old format (a bare token) names no sensor: refused, with its line.
        std::fs::write(&p, "edge-1 abc\nbare-token\n").unwrap();
        assert!(matches!(
            read_token_file(&p),
            Err(CollectorError::TokenLine { line: 2, .. })
        ));
        std::fs::write(&p, "bad/id abc\n").unwrap();
        assert!(matches!(
            read_token_file(&p),
            Err(CollectorError::TokenLine { line: 1, .. })
        ));
        assert!(matches!(
            read_token_file(&d.path().join("missing")),
            Err(CollectorError::ReadFile { .. })
        ));
    }
}
