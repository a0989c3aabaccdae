//! The console's HTTP server: loopback by default; on another address it needs an access token
//! (`--console-token-file`, checked on every request: `Authorization: Bearer …`, or the cookie
//! the login page sets) unless `--console-insecure`; TLS with `--console-tls-cert/key`.
use std::{
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{
    Form, Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::post,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use scanscope_lake::Lake;
use scanscope_telemetry::{
    ct_eq,
    metrics::{self, Registry},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};
use tracing::{info, warn};

use crate::{
    api::{self, AppState},
    catalog::Catalog,
    error::ConsoleError,
    pages::Ctx,
    web,
};

/// The cookie the login page sets.
pub const COOKIE: &str = "scanscope_console";

/// Registries filled at scrape time (the collector's store status), rendered by `/metrics`
/// after the process's own.
pub type Snapshot =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Vec<Registry>> + Send>> + Send + Sync>;

/// How the console runs.
#[derive(Clone)]
pub struct ConsoleOptions {
    pub listen: SocketAddr,
    /// The data directory (the lake and its `_state/`).
    pub data: PathBuf,
    /// Access tokens (none: open, allowed on loopback or with `insecure`).
    pub tokens: Vec<String>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub insecure: bool,
    /// Bytes of decoded rollup days kept in memory.
    pub cache_bytes: usize,
    /// Page builds at a time.
    pub max_builds: usize,
    /// Connections at a time.
    pub max_connections: usize,
    /// What `/metrics` adds to the process's registry (ingest's status in `serve`).
    pub metrics: Option<Snapshot>,
}

impl std::fmt::Debug for ConsoleOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleOptions")
            .field("listen", &self.listen)
            .field("data", &self.data)
            .field("tokens", &self.tokens.len())
            .field("tls", &self.tls)
            .field("insecure", &self.insecure)
            .field("cache_bytes", &self.cache_bytes)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl ConsoleOptions {
    pub fn new(listen: SocketAddr, data: PathBuf) -> Self {
        ConsoleOptions {
            listen,
            data,
            tokens: Vec::new(),
            tls: None,
            insecure: false,
            cache_bytes: DEFAULT_CACHE_MB << 20,
            max_builds: 4,
            max_connections: 256,
            metrics: None,
        }
    }

    /// Refuses a non-loopback address without a token (unless `insecure`); true when it is
    /// served open on purpose.
    pub fn check_exposure(&self) -> Result<bool, ConsoleError> {
        if self.listen.ip().is_loopback() || !self.tokens.is_empty() {
            return Ok(false);
        }
        if self.insecure {
            return Ok(true);
        }
        Err(ConsoleError::Insecure { addr: self.listen })
    }
}

/// Reads a token file: one token per line; blank lines and `#` comments are skipped.
pub fn read_token_file(path: &FsPath) -> Result<Vec<String>, ConsoleError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConsoleError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(ConsoleError::File {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no token in the file"),
        });
    }
    Ok(tokens)
}

#[derive(Debug, Clone)]
struct Auth {
    tokens: Arc<Vec<String>>,
    secure_cookie: bool,
}

impl Auth {
    fn permits(&self, offered: &str) -> bool {
        // Every token is compared, so the time does not tell which one matched.
        self.tokens
            .iter()
            .fold(false, |ok, t| ct_eq(t.as_bytes(), offered.as_bytes()) | ok)
    }

    fn offered(headers: &HeaderMap) -> Option<String> {
        if let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            && let Some(t) = v.strip_prefix("Bearer ")
        {
            return Some(t.trim().to_string());
        }
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                c.trim()
                    .strip_prefix(COOKIE)?
                    .strip_prefix('=')
                    .map(str::to_string)
            })
    }
}

async fn require_token(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // The login page and its assets are open; everything else needs the token.
    let open = path == "/login" || path.starts_with("/assets/") || path == "/favicon.svg";
    if open || Auth::offered(req.headers()).is_some_and(|t| auth.permits(&t)) {
        return next.run(req).await;
    }
    if path.starts_with("/api/") {
        return ConsoleError::Unauthorized.into_response();
    }
    let mut r = web::login_page(req.headers());
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r
}

#[derive(Debug, serde::Deserialize)]
struct Login {
    token: String,
}

async fn login(State(auth): State<Auth>, Form(l): Form<Login>) -> Response {
    if !auth.permits(l.token.trim()) {
        warn!("console login refused");
        let mut r = web::login_page(&HeaderMap::new());
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let secure = if auth.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
        l.token.trim()
    );
    let mut r = (StatusCode::SEE_OTHER, "").into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    r
}

/// The whole application (API, UI, headers, and the token check when there are tokens).
pub fn app(opts: &ConsoleOptions) -> Result<Router, ConsoleError> {
    let lake = Lake::local(&opts.data)?;
    let state = Arc::new(AppState {
        ctx: Ctx {
            catalog: Catalog::new(lake, opts.cache_bytes),
            data: Some(opts.data.clone()),
        },
        builds: Semaphore::new(opts.max_builds.max(1)),
    });
    let snapshot = opts.metrics.clone();
    let mut app = api::router(state).route(
        "/metrics",
        axum::routing::get(move || {
            let snapshot = snapshot.clone();
            async move {
                let extra = match snapshot {
                    Some(f) => f().await,
                    None => Vec::new(),
                };
                metrics::response(metrics::render(&extra))
            }
        }),
    );
    if !opts.tokens.is_empty() {
        let auth = Auth {
            tokens: Arc::new(opts.tokens.clone()),
            secure_cookie: opts.tls.is_some(),
        };
        app = app
            .merge(
                Router::new()
                    .route("/login", post(login))
                    .with_state(auth.clone()),
            )
            .layer(middleware::from_fn_with_state(auth, require_token));
    }
    Ok(app.layer(middleware::from_fn(web::security_headers)))
}

fn tls_acceptor(cert: &FsPath, key: &FsPath) -> Result<TlsAcceptor, ConsoleError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| ConsoleError::Tls(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ConsoleError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConsoleError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConsoleError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Binds the console's address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ConsoleError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ConsoleError::Bind { addr, source })
}

/// A console ready to serve: its options checked, its TLS files and lake opened.
pub struct Console {
    opts: ConsoleOptions,
    app: Router,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("listen", &self.opts.listen)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// MiB of columns kept by default: a week of a million sources a day and what pages add.
pub const DEFAULT_CACHE_MB: usize = 768;

/// The console frees a day's columns (megabytes each) when the budget pushes the day out.
/// glibc's allocator raises its mmap threshold as such blocks are freed and then serves the
/// next ones from a heap it never gives back; a fixed 1 MiB threshold keeps every large block
/// mmapped, so the process's memory follows the budget.
fn release_freed_columns() {
    // SAFETY: mallopt only sets an allocator parameter; a rejected value is ignored.
    let _accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
}

impl Console {
    /// Checks the options and opens what the console serves from (errors here, before it
    /// listens).
    pub fn new(opts: ConsoleOptions) -> Result<Console, ConsoleError> {
        if opts.check_exposure()? {
            warn!(addr = %opts.listen, "the console is served open on a non-loopback address (--console-insecure)");
        }
        if !opts.tokens.is_empty() && opts.tls.is_none() && !opts.listen.ip().is_loopback() {
            warn!(addr = %opts.listen, "console tokens travel in clear text without --console-tls-cert");
        }
        let tls = match &opts.tls {
            Some((c, k)) => Some(tls_acceptor(c, k)?),
            None => None,
        };
        release_freed_columns();
        let app = app(&opts)?;
        Ok(Console { opts, app, tls })
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ConsoleError> {
        let Console { opts, app, tls } = self;
        let conns = Arc::new(Semaphore::new(opts.max_connections.max(1)));
        info!(addr = %listener.local_addr().map_or(opts.listen, |a| a), tls = tls.is_some(), tokens = opts.tokens.len(), "console listening");
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                a = listener.accept() => a,
            };
            let (tcp, _peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "console accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = conns.clone().try_acquire_owned() else {
                // Over the limit: closed at once rather than queued.
                drop(tcp);
                continue;
            };
            let app = app.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10));
                let r = match tls {
                    Some(acc) => {
                        match tokio::time::timeout(Duration::from_secs(10), acc.accept(tcp)).await {
                            Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), svc).await,
                            _ => return,
                        }
                    }
                    None => http.serve_connection(TokioIo::new(tcp), svc).await,
                };
                if let Err(e) = r {
                    tracing::debug!(error = %e, "console connection ended");
                }
            });
        }
        Ok(())
    }
}
