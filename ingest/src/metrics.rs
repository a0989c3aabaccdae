//! The collector's ingest metrics for `/metrics` (beside the store's flush times,
//! `store::FLUSH_SECONDS`, recorded as they happen): at each scrape a snapshot of the store's
//! status — per sensor its last batch and how long ago that was, batches and rows; rows committed per table; refusals per reason
//! (batches, tokens, connection caps); duplicates; WAL bytes and rows not yet in Parquet; the
//! store's queue; whether the disk is full.
use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use scanscope_telemetry::metrics::{Counter, Family, Gauge, Registry};

use crate::{listener::ConnStats, store::StoreHandle};

/// What a scrape reads from a running collector; filled in by `serve` once the store is open.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    store: Arc<OnceLock<StoreHandle>>,
    conns: Arc<OnceLock<Arc<ConnStats>>>,
    auth_refused: Arc<OnceLock<Arc<AtomicU64>>>,
}

type Labels = Vec<(String, String)>;

fn family_gauge_f64() -> Family<Labels, Gauge<f64, AtomicU64>> {
    Family::default()
}

impl Probe {
    pub(crate) fn set(&self, store: StoreHandle, conns: Arc<ConnStats>, auth: Arc<AtomicU64>) {
        self.store.set(store).ok();
        self.conns.set(conns).ok();
        self.auth_refused.set(auth).ok();
    }

    /// The snapshot, as a registry to render after the process's own.
    pub async fn snapshot(&self) -> Registry {
        let mut r = Registry::default();
        let Some(store) = self.store.get() else {
            return r;
        };
        let up = Gauge::<i64>::default();
        let queue = Gauge::<i64>::default();
        queue.set(i64::try_from(store.queued()).unwrap_or(i64::MAX));
        r.register(
            "scanscope_ingest_store_queue",
            "Batches and commands waiting for the store thread",
            queue,
        );
        let Some(s) = store.status().await else {
            r.register("scanscope_ingest_up", "Whether the store answers", up);
            return r;
        };
        up.set(1);
        r.register("scanscope_ingest_up", "Whether the store answers", up);
        let now = chrono::Utc::now().timestamp_micros();
        let last = family_gauge_f64();
        let lag = family_gauge_f64();
        let batches = Family::<Labels, Counter>::default();
        let rows = Family::<Labels, Counter>::default();
        for x in &s.sensors {
            let l = vec![("sensor".to_string(), x.sensor_id.clone())];
            batches.get_or_create(&l).inc_by(x.batches);
            rows.get_or_create(&l).inc_by(x.rows);
            if x.last_batch_us > 0 {
                last.get_or_create(&l).set(x.last_batch_us as f64 / 1e6);
                lag.get_or_create(&l)
                    .set((now - x.last_batch_us).max(0) as f64 / 1e6);
            }
        }
        r.register(
            "scanscope_ingest_sensor_last_batch_timestamp_seconds",
            "When the sensor's last batch arrived (since this collector started)",
            last,
        );
        r.register(
            "scanscope_ingest_sensor_lag_seconds",
            "Seconds since the sensor's last batch arrived",
            lag,
        );
        r.register(
            "scanscope_ingest_sensor_batches",
            "Batches stored per sensor since start",
            batches,
        );
        r.register(
            "scanscope_ingest_sensor_rows",
            "Rows stored per sensor since start",
            rows,
        );
        let tables = Family::<Labels, Counter>::default();
        for t in &s.tables {
            tables
                .get_or_create(&vec![("table".to_string(), t.table.clone())])
                .inc_by(t.rows);
        }
        r.register(
            "scanscope_ingest_committed_rows",
            "Rows committed to Parquet per table since start",
            tables,
        );
        let refused = Family::<Labels, Counter>::default();
        let refuse = |reason: &str, n: u64| {
            refused
                .get_or_create(&vec![("reason".to_string(), reason.to_string())])
                .inc_by(n);
        };
        for c in &s.rejected {
            refuse(&c.name, c.value);
        }
        if let Some(a) = self.auth_refused.get() {
            refuse("unauthenticated", a.load(Ordering::Relaxed));
        }
        if let Some(c) = self.conns.get() {
            refuse("connection_limit", c.refused_total.load(Ordering::Relaxed));
            refuse(
                "connection_limit_per_ip",
                c.refused_per_ip.load(Ordering::Relaxed),
            );
        }
        r.register(
            "scanscope_ingest_refused",
            "Refused batches, requests and connections since start, per reason",
            refused,
        );
        let dup = Counter::<u64>::default();
        dup.inc_by(s.duplicates);
        r.register(
            "scanscope_ingest_duplicates",
            "Resent batches recognised as duplicates since start",
            dup,
        );
        for (name, help, value) in [
            (
                "scanscope_ingest_wal_bytes",
                "Bytes in the write-ahead log not yet committed to Parquet",
                s.wal_bytes,
            ),
            (
                "scanscope_ingest_pending_rows",
                "Rows accepted but not yet committed to Parquet",
                s.pending_rows,
            ),
            (
                "scanscope_ingest_disk_full",
                "1 while the collector cannot write (it stops acknowledging)",
                u64::from(s.disk_full),
            ),
        ] {
            let g = Gauge::<i64>::default();
            g.set(i64::try_from(value).unwrap_or(i64::MAX));
            r.register(name, help, g);
        }
        r
    }
}
