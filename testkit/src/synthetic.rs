//! Synthetic traffic for the benchmarks: flows with the mix of a darknet day (85 % SYN, 10 %
//! UDP, 3 % ICMP echo, 2 % SYN-ACK backscatter; 60 % of ports from the usual targets), from a
//! seeded generator so runs compare.
use rand::{Rng, SeedableRng, rngs::StdRng};
use scanscope_proto::v1::{Flow, Kind};

/// The ports scanners try most.
pub const HOT_PORTS: [u32; 12] = [
    22, 23, 80, 443, 445, 3389, 8080, 5060, 1433, 3306, 6379, 9200,
];

/// A seeded generator of probes.
#[derive(Debug)]
pub struct Traffic {
    pub rng: StdRng,
}

impl Traffic {
    pub fn new(seed: u64) -> Self {
        Traffic {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The kind, protocol number and destination port of the next probe.
    pub fn probe(&mut self) -> (Kind, u32, u32) {
        let (kind, proto) = match self.rng.random_range(0..100) {
            0..85 => (Kind::TcpSyn, 6),
            85..95 => (Kind::Udp, 17),
            95..98 => (Kind::IcmpEcho, 1),
            _ => (Kind::TcpSynack, 6),
        };
        let port = if kind == Kind::IcmpEcho {
            0
        } else if self.rng.random_bool(0.6) {
            HOT_PORTS[self.rng.random_range(0..HOT_PORTS.len())]
        } else {
            self.rng.random_range(1..65_536)
        };
        (kind, proto, port)
    }

    /// The next flow between `src_ip` and `dst_ip` (the probe from [`Traffic::probe`]).
    #[expect(clippy::too_many_arguments, reason = "one argument per varying field")]
    pub fn flow(
        &mut self,
        src_ip: Vec<u8>,
        dst_ip: Vec<u8>,
        interval_start_us: i64,
        first_seen_us: i64,
        last_seen_us: i64,
        packets: u64,
        bytes: u64,
    ) -> Flow {
        let (kind, proto, port) = self.probe();
        Flow {
            interval_start_us,
            interval_secs: 60.0,
            src_ip: src_ip.into(),
            dst_ip: dst_ip.into(),
            proto,
            kind: kind as i32,
            dst_port: port,
            icmp_type: (kind == Kind::IcmpEcho).then_some(8),
            icmp_code: (kind == Kind::IcmpEcho).then_some(0),
            packets,
            bytes,
            first_seen_us,
            last_seen_us,
            ..Flow::default()
        }
    }
}
