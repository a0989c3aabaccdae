//! Records → `scanscope.v1` messages.
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use scanscope_common::Kind;
use scanscope_proto::v1 as pb;

use crate::record::{Event, Flow, Lost, Record, Session, Stats};

/// Unix microseconds.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// 4 bytes for IPv4, 16 for IPv6.
pub fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// The protobuf kind number of a kind.
pub fn kind(k: Kind) -> i32 {
    pb::Kind::from(k) as i32
}

pub fn event(e: &Event) -> pb::Event {
    pb::Event {
        ts_us: micros(e.ts),
        iface: e.iface.clone(),
        src_ip: ip_bytes(e.src_ip),
        dst_ip: ip_bytes(e.dst_ip),
        src_port: e.src_port.into(),
        dst_port: e.dst_port.into(),
        proto: e.proto.into(),
        kind: kind(e.kind),
        ttl: e.ttl.into(),
        ip_id: e.ip_id.into(),
        ip_len: e.ip_len.into(),
        df: e.df,
        tos: e.tos.into(),
        flow_label: e.flow_label,
        tcp_flags: e.tcp_flags.into(),
        tcp_seq: e.tcp_seq,
        tcp_ack: e.tcp_ack,
        tcp_window: e.tcp_window.into(),
        tcp_options: e.tcp_options.clone(),
        tcp_options_raw: e.tcp_options_raw.clone(),
        icmp_type: e.icmp_type.into(),
        icmp_code: e.icmp_code.into(),
        vlan: e.vlan.into(),
        weight: e.weight,
        payload_len: e.payload_len.into(),
        payload: e.payload.clone(),
        tools: e.tools.iter().map(|t| t.name().to_string()).collect(),
        initial_ttl: e.initial_ttl.into(),
        os_hint: e.os_hint.to_string(),
        backscatter: e.backscatter,
    }
}

pub fn flow(f: &Flow) -> pb::Flow {
    pb::Flow {
        interval_start_us: micros(f.interval_start),
        interval_secs: f.interval_secs,
        src_ip: ip_bytes(f.src_ip).into(),
        dst_ip: ip_bytes(f.dst_ip).into(),
        proto: f.proto.into(),
        kind: kind(f.kind),
        dst_port: f.dst_port.into(),
        icmp_type: f.icmp_type.map(u32::from),
        icmp_code: f.icmp_code.map(u32::from),
        packets: f.packets,
        bytes: f.bytes,
        first_seen_us: micros(f.first_seen),
        last_seen_us: micros(f.last_seen),
        sampling_rate: None,
        tcp_flags: None,
    }
}

pub fn stats(s: &Stats) -> pb::SensorStats {
    pb::SensorStats {
        interval_start_us: micros(s.interval_start),
        interval_secs: s.interval_secs,
        kinds: Kind::ALL
            .iter()
            .filter_map(|k| {
                s.kinds.get(k.name()).map(|c| pb::KindCount {
                    kind: kind(*k),
                    packets: c.packets,
                    bytes: c.bytes,
                })
            })
            .collect(),
        counters: s
            .counters
            .iter()
            .map(|(n, v)| pb::Counter {
                name: (*n).to_string(),
                value: *v,
            })
            .collect(),
        tcp_ports: s
            .tcp_ports
            .iter()
            .map(|(p, n)| pb::PortCount {
                port: (*p).into(),
                packets: *n,
            })
            .collect(),
        udp_ports: s
            .udp_ports
            .iter()
            .map(|(p, n)| pb::PortCount {
                port: (*p).into(),
                packets: *n,
            })
            .collect(),
        ringbuf_full_per_cpu: s.ringbuf_full_per_cpu.clone(),
    }
}

pub fn lost(l: &Lost) -> pb::Lost {
    pb::Lost {
        ts_us: micros(l.ts),
        stage: pb::LostStage::from(l.stage) as i32,
        unit: l.unit.to_string(),
        count: l.count,
        detail: String::new(),
    }
}

pub fn session(x: &Session) -> pb::Session {
    pb::Session {
        ts_us: micros(x.ts),
        src_ip: ip_bytes(x.src_ip),
        dst_ip: ip_bytes(x.dst_ip),
        src_port: x.src_port.into(),
        dst_port: x.dst_port.into(),
        protocol: x.protocol.name().to_string(),
        bytes_in: x.bytes_in,
        bytes_out: x.bytes_out,
        duration_ms: x.duration_ms,
        end: x.end.name().to_string(),
        payload: x.payload.clone(),
        payload_cut: x.payload_cut,
        http: x.http.as_ref().map(|h| pb::HttpRequest {
            method: h.method.clone(),
            url: h.url.clone(),
            version: h.version.into(),
            host: h.host.clone(),
            user_agent: h.user_agent.clone(),
            headers: h.headers.clone(),
        }),
        tls: x.tls.as_ref().map(|t| pb::TlsHello {
            ja4: t.ja4.clone(),
            sni: t.sni.clone(),
            alpn: t.alpn.clone(),
            version: t.version.clone(),
        }),
        ssh_client_banner: x.ssh_client_banner.clone().unwrap_or_default(),
        hassh: x.hassh.clone().unwrap_or_default(),
        credentials: x
            .credentials
            .iter()
            .map(|c| pb::Credential {
                method: c.method.to_string(),
                user: c.user.clone(),
                secret: c.secret.clone(),
            })
            .collect(),
        commands: x.commands.clone(),
        details: x.details.clone(),
        tags: x.tags.clone(),
    }
}

/// Collects records into the next batch.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    batch: pb::Batch,
    /// Encoded size of what is held (each message plus its field header).
    bytes: usize,
}

impl BatchBuilder {
    /// Adds one record.
    pub fn add(&mut self, r: &Record) {
        fn put<M: prost::Message>(v: &mut Vec<M>, m: M) -> usize {
            let n = m.encoded_len();
            v.push(m);
            n + prost::length_delimiter_len(n) + 1
        }
        self.bytes += match r {
            Record::Event(e) => put(&mut self.batch.events, event(e)),
            Record::Flow(f) => put(&mut self.batch.flows, flow(f)),
            Record::Stats(s) => put(&mut self.batch.stats, stats(s)),
            Record::Lost(l) => put(&mut self.batch.lost, lost(l)),
            Record::Session(x) => put(&mut self.batch.sessions, session(x)),
        };
    }

    /// Encoded bytes held (without the sensor id and seq the outbox adds).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds one record; once `limit` encoded bytes are held, takes them as a batch.
    pub fn add_within(&mut self, r: &Record, limit: usize) -> Option<pb::Batch> {
        self.add(r);
        if self.bytes >= limit {
            self.take()
        } else {
            None
        }
    }

    /// Records held.
    pub fn rows(&self) -> usize {
        self.batch.records()
    }

    /// Takes the batch (sensor id and seq are set by the outbox).
    pub fn take(&mut self) -> Option<pb::Batch> {
        if self.rows() == 0 {
            return None;
        }
        self.bytes = 0;
        Some(std::mem::take(&mut self.batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use scanscope_common::LostStage;

    #[test]
    fn the_byte_count_is_the_encoded_size() {
        let mut b = BatchBuilder::default();
        let f = Flow {
            interval_start: Utc::now(),
            interval_secs: 60.0,
            sensor: "s".into(),
            src_ip: "198.51.100.7".parse().unwrap(),
            dst_ip: "2001:db8::1".parse().unwrap(),
            proto: 6,
            kind: Kind::TcpSyn,
            dst_port: 443,
            icmp_type: None,
            icmp_code: None,
            packets: 3,
            bytes: 120,
            first_seen: Utc::now(),
            last_seen: Utc::now(),
        };
        for _ in 0..1000 {
            b.add(&Record::Flow(f.clone()));
        }
        let n = b.bytes();
        assert_eq!(n, b.take().unwrap().encoded_len());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn an_interval_of_many_flows_becomes_batches_under_the_limit() {
        // Review M5: 600 000 IPv4 flows (~37 MB encoded) in one batch exceeded the collector's
        // 32 MiB limit and were all refused.
        let limit = 8 << 20;
        let f = |i: u32| Flow {
            interval_start: Utc::now(),
            interval_secs: 60.0,
            sensor: "s".into(),
            src_ip: IpAddr::from(i.to_be_bytes()),
            dst_ip: "198.51.100.7".parse().unwrap(),
            proto: 6,
            kind: Kind::TcpSyn,
            dst_port: (i % 65_536) as u16,
            icmp_type: None,
            icmp_code: None,
            packets: 1,
            bytes: 44,
            first_seen: Utc::now(),
            last_seen: Utc::now(),
        };
        let mut b = BatchBuilder::default();
        let mut sealed = Vec::new();
        for i in 0..600_000 {
            sealed.extend(b.add_within(&Record::Flow(f(i)), limit));
        }
        sealed.extend(b.take());
        assert!(sealed.len() >= 4, "{} batches", sealed.len());
        assert_eq!(sealed.iter().map(|x| x.flows.len()).sum::<usize>(), 600_000);
        assert!(sealed.iter().all(|x| x.encoded_len() <= limit + 64));
    }

    #[test]
    fn lost_stages_convert_by_name() {
        // The JSON name of a stage and its contract enum name are the same word.
        for s in LostStage::ALL {
            let l = Lost {
                ts: Utc::now(),
                sensor: "s".into(),
                stage: s,
                unit: "events",
                count: 1,
            };
            let json = serde_json::to_value(Record::Lost(l.clone())).unwrap();
            let name = pb::LostStage::try_from(lost(&l).stage)
                .unwrap()
                .as_str_name()
                .trim_start_matches("LOST_STAGE_")
                .to_ascii_lowercase();
            assert_eq!(json["stage"], name);
        }
    }
}
