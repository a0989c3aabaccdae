//! Per-exporter state of the NetFlow source: the sensor name, the sequence check that turns
//! gaps into `lost` rows, the sampling rate and boot time its options declared, and the rows
//! waiting to go to the store as one batch.
use std::{collections::BTreeMap, net::IpAddr, time::Instant};

use scanscope_proto::v1;

use super::decode::Version;

/// How an IPFIX exporter counts its sequence number. RFC 7011 §3.1: data records sent before
/// this message; softflowd 1.1.0: including this message's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counting {
    Before,
    Including,
}

/// The sequence check of one exporter, observation domain and protocol version.
#[derive(Debug, Default, Clone)]
pub struct Sequence {
    /// The last datagram's sequence number and data records.
    last: Option<(u32, u32)>,
    /// IPFIX only: learned from the first gap-free pair.
    counting: Option<Counting>,
}

/// Differences of at least this much (forward, modulo 2³²) are a restart of the exporter, not
/// a gap.
const RESTART: u32 = 1 << 31;

impl Sequence {
    /// Records one datagram's sequence number and data records; returns how many units (flows
    /// for v5 and IPFIX, datagrams for v9) were missed before it.
    pub fn observe(&mut self, version: Version, seq: u32, records: u32) -> u64 {
        let Some((last, last_records)) = self.last.replace((seq, records)) else {
            // A stream's first message: RFC 7011 numbers it 0; softflowd numbers it with its
            // own records. Either tells the counting before any gap needs it.
            if version == Version::Ipfix && records > 0 {
                self.counting = match seq {
                    0 => Some(Counting::Before),
                    s if s == records => Some(Counting::Including),
                    _ => None,
                };
            }
            return 0;
        };
        let gap = |expected: u32| {
            let d = seq.wrapping_sub(expected);
            if d >= RESTART { 0 } else { u64::from(d) }
        };
        match version {
            Version::V9 => gap(last.wrapping_add(1)),
            Version::V5 => gap(last.wrapping_add(last_records)),
            Version::Ipfix => {
                let before = last.wrapping_add(last_records);
                let including = last.wrapping_add(records);
                match self.counting {
                    Some(Counting::Before) => gap(before),
                    Some(Counting::Including) => gap(including),
                    None if seq == before => {
                        self.counting = Some(Counting::Before);
                        0
                    }
                    None if seq == including => {
                        self.counting = Some(Counting::Including);
                        0
                    }
                    None => gap(before),
                }
            }
        }
    }
}

/// One exporter (address and observation domain): a sensor of the lake.
#[derive(Debug)]
pub struct Exporter {
    pub name: String,
    /// Sequence checks per protocol version (an exporter may send more than one).
    pub sequences: BTreeMap<&'static str, Sequence>,
    /// The sampling rate its options declared last.
    pub sampling: Option<u32>,
    /// Its boot time (IPFIX IE 160), ms since the epoch.
    pub init_ms: Option<i64>,
    /// Rows waiting for the next batch.
    pub flows: Vec<v1::Flow>,
    pub lost: Vec<v1::Lost>,
    pub counters: BTreeMap<&'static str, u64>,
    /// When the waiting rows started to wait, and when the last batch went.
    pub pending_since: Option<Instant>,
    pub last_batch_us: i64,
    /// The next batch's sequence number.
    pub seq: u64,
    /// When its last export packet came.
    pub last_seen: Instant,
}

impl Exporter {
    pub fn new(name: String, now_us: i64) -> Exporter {
        Exporter {
            name,
            sequences: BTreeMap::new(),
            sampling: None,
            init_ms: None,
            flows: Vec::new(),
            lost: Vec::new(),
            counters: BTreeMap::new(),
            pending_since: None,
            last_batch_us: now_us,
            seq: 1,
            last_seen: Instant::now(),
        }
    }

    /// Adds `n` to counter `name`.
    pub fn count(&mut self, name: &'static str, n: u64) {
        if n > 0 {
            *self.counters.entry(name).or_insert(0) += n;
        }
        self.pending_since.get_or_insert_with(Instant::now);
    }

    /// Records a loss of `count` (nothing when 0; the detail is only made then).
    pub fn lose(
        &mut self,
        stage: v1::LostStage,
        unit: &str,
        count: u64,
        detail: impl FnOnce() -> String,
    ) {
        if count == 0 {
            return;
        }
        self.lost.push(v1::Lost {
            ts_us: super::now_us(),
            stage: stage as i32,
            unit: unit.into(),
            count,
            detail: detail(),
        });
        self.pending_since.get_or_insert_with(Instant::now);
    }

    /// Whether rows wait.
    pub fn has_pending(&self) -> bool {
        self.pending_since.is_some()
    }

    /// The waiting rows as one batch (with the counters as a stats row covering the time
    /// since the last batch), or `None` if nothing waits.
    pub fn take_batch(&mut self, instance_id: u64, agent_version: &str) -> Option<v1::Batch> {
        self.pending_since.take()?;
        let now = super::now_us();
        let secs = ((now - self.last_batch_us) as f64 / 1e6).clamp(0.001, 86_400.0);
        let counters: Vec<v1::Counter> = std::mem::take(&mut self.counters)
            .into_iter()
            .map(|(name, value)| v1::Counter {
                name: name.into(),
                value,
            })
            .collect();
        let stats = if counters.is_empty() {
            Vec::new()
        } else {
            vec![v1::SensorStats {
                interval_start_us: self.last_batch_us,
                interval_secs: secs,
                counters,
                ..Default::default()
            }]
        };
        self.last_batch_us = now;
        let seq = self.seq;
        self.seq += 1;
        Some(v1::Batch {
            sensor_id: self.name.clone(),
            seq,
            created_us: now,
            agent_version: agent_version.into(),
            flows: std::mem::take(&mut self.flows),
            stats,
            lost: std::mem::take(&mut self.lost),
            instance_id,
            source: v1::Source::Netflow as i32,
            ..Default::default()
        })
    }
}

/// The sensor name of an exporter without a configured one: its address, and its observation
/// domain (v9 source id) when that is not 0.
pub fn default_name(addr: IpAddr, domain: u32) -> String {
    let addr = match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        a => a,
    };
    if domain == 0 {
        addr.to_string()
    } else {
        format!("{addr}-{domain}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_gaps_count_what_never_arrived() {
        // v9: one per export packet.
        let mut s = Sequence::default();
        assert_eq!(s.observe(Version::V9, 1, 24), 0);
        assert_eq!(s.observe(Version::V9, 2, 30), 0);
        assert_eq!(s.observe(Version::V9, 5, 30), 2);
        // An exporter restart (back to 1) is not a gap.
        assert_eq!(s.observe(Version::V9, 1, 30), 0);
        // Wrapping past 2³² is not a restart.
        let mut s = Sequence::default();
        assert_eq!(s.observe(Version::V9, u32::MAX, 1), 0);
        assert_eq!(s.observe(Version::V9, 1, 1), 1);
        // v5: flows before this datagram (softflowd: 29 a datagram).
        let mut s = Sequence::default();
        for (seq, n) in [(0, 29), (29, 29), (58, 29)] {
            assert_eq!(s.observe(Version::V5, seq, n), 0);
        }
        assert_eq!(s.observe(Version::V5, 116, 13), 29);
        // IPFIX as RFC 7011 counts (records before this message).
        let mut s = Sequence::default();
        for (seq, n) in [(0, 24), (24, 32), (56, 32)] {
            assert_eq!(s.observe(Version::Ipfix, seq, n), 0);
        }
        assert_eq!(s.observe(Version::Ipfix, 120, 12), 32);
        // IPFIX as softflowd counts (records including this message's: 24, 56, 88, 100).
        let mut s = Sequence::default();
        for (seq, n) in [(24, 24), (56, 32), (88, 32)] {
            assert_eq!(s.observe(Version::Ipfix, seq, n), 0);
        }
        assert_eq!(s.observe(Version::Ipfix, 132, 12), 32);
        // softflowd's second message lost: told by its first (seq = its own records).
        let mut s = Sequence::default();
        assert_eq!(s.observe(Version::Ipfix, 24, 24), 0);
        assert_eq!(s.observe(Version::Ipfix, 88, 32), 32);
        // An RFC exporter's second message lost: told by its first (seq 0).
        let mut s = Sequence::default();
        assert_eq!(s.observe(Version::Ipfix, 0, 24), 0);
        assert_eq!(s.observe(Version::Ipfix, 56, 32), 32);
    }

    #[test]
    fn exporters_are_named_by_address_and_domain() {
        assert_eq!(default_name("192.0.2.1".parse().unwrap(), 0), "192.0.2.1");
        assert_eq!(
            default_name("::ffff:192.0.2.1".parse().unwrap(), 7),
            "192.0.2.1-7"
        );
        assert_eq!(
            default_name("2001:db8::1".parse().unwrap(), 0),
            "2001:db8::1"
        );
    }
}
