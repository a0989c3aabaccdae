//! Kernel timestamps (`bpf_ktime_get_ns`, CLOCK_MONOTONIC) to UTC wall-clock time.
use chrono::{DateTime, Utc};

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a valid timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Converts CLOCK_MONOTONIC nanoseconds to UTC. The offset is measured when created and can be
/// re-measured with [`Clock::resync`] (NTP steps move the wall clock, not the monotonic one).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// realtime − monotonic, in ns.
    offset_ns: i128,
}

impl Clock {
    /// Measures the offset, keeping the tightest of a few reads.
    pub fn new() -> Self {
        let mut best: Option<(i128, i128)> = None;
        for _ in 0..5 {
            let m0 = now_ns(libc::CLOCK_MONOTONIC);
            let r = now_ns(libc::CLOCK_REALTIME);
            let m1 = now_ns(libc::CLOCK_MONOTONIC);
            let width = m1 - m0;
            let off = r - (m0 + width / 2);
            if best.is_none_or(|(w, _)| width < w) {
                best = Some((width, off));
            }
        }
        Clock {
            offset_ns: best.map_or(0, |(_, o)| o),
        }
    }

    /// Re-measures the offset.
    pub fn resync(&mut self) {
        *self = Clock::new();
    }

    /// UTC time of a CLOCK_MONOTONIC timestamp.
    pub fn to_utc(&self, mono_ns: u64) -> DateTime<Utc> {
        let ns = i128::from(mono_ns) + self.offset_ns;
        DateTime::from_timestamp_nanos(ns.clamp(0, i128::from(i64::MAX)) as i64)
    }

    /// The current monotonic time in ns (the kernel's clock for `bpf_ktime_get_ns`).
    pub fn monotonic_now() -> u64 {
        now_ns(libc::CLOCK_MONOTONIC) as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_now_maps_to_wall_clock_now() {
        let c = Clock::new();
        let utc = c.to_utc(Clock::monotonic_now());
        let skew = (Utc::now() - utc).num_milliseconds().abs();
        assert!(skew < 50, "skew {skew} ms");
    }
}
