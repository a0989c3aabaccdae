//! The agent's metrics for `--metrics ADDR` (`GET /metrics`): packets and bytes per kind, every
//! kernel counter (malformed frames by reason, exclusions, own traffic, ring-buffer and
//! tuple-table losses, the responder's), records lost by stage, flows and events, and the
//! uplink's batches (pushed, acknowledged, spooled, dropped, refused), its pending batches and
//! spool bytes. Updated at the end of each interval.
use std::sync::{LazyLock, Mutex, PoisonError};

use scanscope_common::LostStage;
use scanscope_telemetry::metrics::{self, Counter, Family, Gauge};

use crate::{record::Stats, uplink::outbox::OutboxStats};

type Labels = Vec<(&'static str, &'static str)>;

macro_rules! metric {
    ($name:ident: $ty:ty = $metric:literal, $help:literal) => {
        static $name: LazyLock<$ty> =
            LazyLock::new(|| metrics::register($metric, $help, <$ty>::default()));
    };
}

metric!(PACKETS: Family<Labels, Counter> = "scanscope_sensor_packets", "Packets seen per kind");
metric!(BYTES: Family<Labels, Counter> = "scanscope_sensor_bytes", "IP bytes seen per kind");
metric!(KERNEL: Family<Labels, Counter> = "scanscope_sensor_kernel_counter", "The kernel program's other counters, by name");
metric!(LOST: Family<Labels, Counter> = "scanscope_sensor_lost", "Records or packets lost, by stage and unit");
metric!(FLOWS: Counter = "scanscope_sensor_flows", "Flow records emitted");
metric!(EVENTS: Counter = "scanscope_sensor_events", "Events read from the ring buffer");
metric!(INTERVAL: Gauge<f64, std::sync::atomic::AtomicU64> = "scanscope_sensor_last_interval_timestamp_seconds", "When the last interval ended");
metric!(BATCHES: Family<Labels, Counter> = "scanscope_sensor_batches", "Uplink batches by what happened to them");
metric!(PENDING: Gauge = "scanscope_sensor_pending_batches", "Uplink batches not yet acknowledged");
metric!(SPOOL: Gauge = "scanscope_sensor_spool_bytes", "Bytes in the uplink's spool directory");

/// Registers every metric (so a scrape lists them before the first interval ends).
pub fn init() {
    LazyLock::force(&PACKETS);
    LazyLock::force(&BYTES);
    LazyLock::force(&KERNEL);
    LazyLock::force(&LOST);
    LazyLock::force(&BATCHES);
    LazyLock::force(&FLOWS);
    LazyLock::force(&EVENTS);
    LazyLock::force(&INTERVAL);
    LazyLock::force(&PENDING);
    LazyLock::force(&SPOOL);
}

/// Adds an interval's figures.
pub fn interval(s: &Stats) {
    for (kind, c) in &s.kinds {
        PACKETS
            .get_or_create(&vec![("kind", *kind)])
            .inc_by(c.packets);
        BYTES.get_or_create(&vec![("kind", *kind)]).inc_by(c.bytes);
    }
    for (name, v) in &s.counters {
        KERNEL.get_or_create(&vec![("counter", *name)]).inc_by(*v);
    }
    FLOWS.inc_by(s.flows);
    EVENTS.inc_by(s.events);
    let end = s.interval_start.timestamp_micros() as f64 / 1e6 + s.interval_secs;
    INTERVAL.set(end);
}

/// Adds a loss.
pub fn lost(stage: LostStage, unit: &'static str, count: u64) {
    LOST.get_or_create(&vec![("stage", stage.name()), ("unit", unit)])
        .inc_by(count);
}

/// The uplink's state (its counters are totals since start).
pub fn uplink(now: OutboxStats, pending: usize, spool_bytes: u64) {
    static PREV: Mutex<OutboxStats> = Mutex::new(OutboxStats {
        pushed: 0,
        acked: 0,
        spooled: 0,
        dropped_batches: 0,
        rejected_batches: 0,
    });
    let mut prev = PREV.lock().unwrap_or_else(PoisonError::into_inner);
    for (state, n, p) in [
        ("pushed", now.pushed, prev.pushed),
        ("acked", now.acked, prev.acked),
        ("spooled", now.spooled, prev.spooled),
        ("dropped", now.dropped_batches, prev.dropped_batches),
        ("refused", now.rejected_batches, prev.rejected_batches),
    ] {
        BATCHES
            .get_or_create(&vec![("state", state)])
            .inc_by(n.saturating_sub(p));
    }
    *prev = now;
    PENDING.set(i64::try_from(pending).unwrap_or(i64::MAX));
    SPOOL.set(i64::try_from(spool_bytes).unwrap_or(i64::MAX));
}
