//! The JSON API (docs/api.md) and the routes of the UI's pages. Every API call answers a
//! [`View`] as JSON, or one of its tables as CSV (`format=csv&table=NAME`); errors are JSON
//! `{"error": {"code", "message", "column"}}` with the status [`ConsoleError::status`] gives.
use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
    time::Instant,
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::NaiveDate;
use scanscope_telemetry::metrics::{self, Counter, Family};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::{
    error::ConsoleError,
    pages::{self, Ctx, search},
    view::{Range, View},
    web,
};

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub ctx: Ctx,
    /// Page builds at a time (each may hold decoded days in memory).
    pub builds: Semaphore,
}

type Params = Query<HashMap<String, String>>;

type PageLabel = Vec<(&'static str, &'static str)>;

/// API answers by page and status class.
static REQUESTS: LazyLock<Family<PageLabel, Counter>> = LazyLock::new(|| {
    metrics::register(
        "scanscope_console_requests",
        "Console API answers by page and outcome (ok, client_error, server_error)",
        Family::default(),
    )
});

/// Seconds to build a page's answer.
static BUILD_SECONDS: LazyLock<metrics::SecondsFamily<PageLabel>> = LazyLock::new(|| {
    metrics::register(
        "scanscope_console_build_seconds",
        "Seconds to build an API answer, by page",
        metrics::seconds_family(),
    )
});

/// Bytes of lake columns the console holds in memory.
static CACHE_BYTES: LazyLock<metrics::Gauge> = LazyLock::new(|| {
    metrics::register(
        "scanscope_console_cache_bytes",
        "Bytes of rollup columns the console holds in memory (within --console-cache-mb)",
        metrics::Gauge::default(),
    )
});

/// The API's routes under `/api/v1`, and the UI's pages and assets.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/meta", get(meta))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/search", get(search_page))
        .route("/api/v1/ip/{ip}", get(ip))
        .route("/api/v1/port/{proto}/{port}", get(port))
        .route("/api/v1/org/{name}", get(org))
        .route("/api/v1/orgs", get(orgs))
        .route("/api/v1/sensors", get(sensors))
        .route("/api/v1/tor", get(tor))
        .route("/api/{*rest}", get(no_such_call))
        .merge(web::routes())
        .with_state(state)
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "console request failed");
        }
        let body = json!({"error": {
            "code": self.code(),
            "message": self.to_string(),
            "column": self.column(),
        }});
        (status, Json(body)).into_response()
    }
}

async fn no_such_call() -> Response {
    ConsoleError::NotFound("no such API call (docs/api.md lists them)".into()).into_response()
}

fn day_param(
    p: &HashMap<String, String>,
    name: &'static str,
) -> Result<Option<NaiveDate>, ConsoleError> {
    match p.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ConsoleError::param(name, format!("{s:?} is not a date (YYYY-MM-DD)"))),
    }
}

fn num_param(
    p: &HashMap<String, String>,
    name: &'static str,
    default: usize,
) -> Result<usize, ConsoleError> {
    match p.get(name).map(String::as_str) {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| ConsoleError::param(name, format!("{s:?} is not a number"))),
    }
}

/// Runs a page build off the async threads (it reads files and uses every core), one of a
/// bounded number at a time, and answers it in the format asked for.
async fn answer(
    state: Arc<AppState>,
    p: HashMap<String, String>,
    page: &'static str,
    build: impl FnOnce(&Ctx, Range) -> Result<View, ConsoleError> + Send + 'static,
) -> Response {
    let started = Instant::now();
    let result = async {
        let range_from = day_param(&p, "from")?;
        let range_to = day_param(&p, "to")?;
        let format = p.get("format").cloned().unwrap_or_else(|| "json".into());
        if format != "json" && format != "csv" {
            return Err(ConsoleError::param(
                "format",
                format!("{format:?} is not json or csv"),
            ));
        }
        let _permit = state
            .builds
            .acquire()
            .await
            .map_err(|e| ConsoleError::Worker(e.to_string()))?;
        let st = state.clone();
        let view = tokio::task::spawn_blocking(move || {
            let range = st.ctx.range(range_from, range_to)?;
            build(&st.ctx, range)
        })
        .await
        .map_err(|e| ConsoleError::Worker(e.to_string()))??;
        if format == "csv" {
            let name = p.get("table").cloned().unwrap_or_default();
            let table = view.table(&name)?;
            let file = format!(
                "scanscope-{page}-{name}-{}-{}.csv",
                view.range.from, view.range.to
            );
            let mut r = table.csv().into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            return Ok(r);
        }
        Ok(Json(view).into_response())
    }
    .await;
    BUILD_SECONDS
        .get_or_create(&vec![("page", page)])
        .observe(started.elapsed().as_secs_f64());
    CACHE_BYTES.set(i64::try_from(state.ctx.catalog.bytes_held()).unwrap_or(i64::MAX));
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) if e.status().is_client_error() => "client_error",
        Err(_) => "server_error",
    };
    REQUESTS
        .get_or_create(&vec![("page", page), ("outcome", outcome)])
        .inc();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn meta(State(state): State<Arc<AppState>>) -> Response {
    let st = state.clone();
    match tokio::task::spawn_blocking(move || pages::meta::build(&st.ctx)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ConsoleError::Worker(e.to_string()).into_response(),
    }
}

async fn overview(State(state): State<Arc<AppState>>, Query(p): Params) -> Response {
    answer(state, p, "overview", pages::overview::build).await
}

async fn search_page(State(state): State<Arc<AppState>>, Query(p): Params) -> Response {
    let req = (|| {
        let sort = match p.get("sort").map(String::as_str) {
            None | Some("") => search::Sort::Packets,
            Some(s) => search::Sort::parse(s)?,
        };
        let descending = match p.get("order").map(String::as_str) {
            None | Some("" | "desc") => true,
            Some("asc") => false,
            Some(o) => {
                return Err(ConsoleError::param(
                    "order",
                    format!("{o:?} is not asc or desc"),
                ));
            }
        };
        Ok(search::Search {
            q: p.get("q").cloned().unwrap_or_default(),
            sort,
            descending,
            limit: num_param(&p, "limit", 50)?,
            offset: num_param(&p, "offset", 0)?,
        })
    })();
    match req {
        Ok(req) => answer(state, p, "search", move |c, r| search::build(c, r, &req)).await,
        Err(e) => e.into_response(),
    }
}

async fn ip(
    State(state): State<Arc<AppState>>,
    Path(ip): Path<String>,
    Query(p): Params,
) -> Response {
    answer(state, p, "ip", move |c, r| pages::ip::build(c, r, &ip)).await
}

async fn port(
    State(state): State<Arc<AppState>>,
    Path((proto, port)): Path<(String, String)>,
    Query(p): Params,
) -> Response {
    let parsed = pages::port::proto(&proto).and_then(|pr| {
        port.parse::<u16>()
            .map(|n| (pr, n))
            .map_err(|_| ConsoleError::param("port", format!("{port:?} is not a port number")))
    });
    match parsed {
        Ok((pr, n)) => {
            answer(state, p, "port", move |c, r| {
                pages::port::build(c, r, pr, n)
            })
            .await
        }
        Err(e) => e.into_response(),
    }
}

async fn org(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(p): Params,
) -> Response {
    answer(state, p, "org", move |c, r| pages::org::build(c, r, &name)).await
}

async fn orgs(State(state): State<Arc<AppState>>, Query(p): Params) -> Response {
    answer(state, p, "orgs", pages::org::list).await
}

async fn sensors(State(state): State<Arc<AppState>>, Query(p): Params) -> Response {
    answer(state, p, "sensors", pages::sensors::build).await
}

async fn tor(State(state): State<Arc<AppState>>, Query(p): Params) -> Response {
    answer(state, p, "tor", pages::tor::build).await
}

/// `404` for the UI: a JSON error (the UI's pages are all routed).
pub fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}
