//! Metrics in the Prometheus/OpenMetrics text format: one registry per process, where each
//! subsystem registers its metrics once (`register`), and the scrape handler (`/metrics`)
//! that renders it, with snapshots a caller adds at scrape time (the collector's store status).
use std::sync::{LazyLock, Mutex, PoisonError};

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
pub use prometheus_client::{
    self,
    encoding::text::encode_registry,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Metric, Registry},
};
use tokio::net::TcpListener;

/// The content type of a scrape.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// Registers `metric` (a handle: clones share the value) under `name` in the process's registry
/// and returns it.
pub fn register<M: Metric + Clone>(name: &str, help: &str, metric: M) -> M {
    REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .register(name, help, metric.clone());
    metric
}

/// A histogram of seconds from 1 ms to about 10 min.
pub fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// Histograms of seconds per label set.
pub type SecondsFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// An empty [`SecondsFamily`].
pub fn seconds_family<L: Clone + std::hash::Hash + Eq>() -> SecondsFamily<L> {
    Family::new_with_constructor(seconds_histogram as fn() -> Histogram)
}

/// The process's registry, then `extra` (registries filled at scrape time), as one scrape.
pub fn render(extra: &[Registry]) -> String {
    let mut out = String::new();
    {
        let r = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        // Writing to a String cannot fail.
        encode_registry(&mut out, &r).ok();
    }
    for r in extra {
        encode_registry(&mut out, r).ok();
    }
    out.push_str("# EOF\n");
    out
}

/// A scrape as an HTTP response.
pub fn response(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

/// Serves `GET /metrics` (the process's registry) on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
    let app = Router::new().route("/metrics", get(|| async { response(render(&[])) }));
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "the metrics server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_holds_registered_and_extra_metrics_once() {
        let c = register("test_things", "Things counted", Counter::<u64>::default());
        c.inc_by(3);
        let mut extra = Registry::default();
        let g = Gauge::<i64>::default();
        g.set(7);
        extra.register("test_level", "A level", g);
        let text = render(&[extra]);
        assert!(text.contains("# TYPE test_things counter\n"), "{text}");
        assert!(text.contains("test_things_total 3\n"), "{text}");
        assert!(text.contains("test_level 7\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
