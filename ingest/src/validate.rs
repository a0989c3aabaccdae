//! Validate stage: a batch from the network is checked completely before anything is stored.
use scanscope_proto::{v1::Batch, vocab};

use crate::error::IngestError;

/// Size limits for one batch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest encoded batch in bytes.
    pub max_batch_bytes: usize,
    /// Most rows (events + flows + stats + lost) in one batch.
    pub max_batch_rows: usize,
    /// Accept timestamps up to this far in the future (clock skew), microseconds.
    pub max_future_us: i64,
    /// Accept timestamps at most this old, microseconds (older rows would each open a day
    /// partition and a rollup of their own).
    pub max_age_us: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_bytes: 32 << 20,
            max_batch_rows: 1_000_000,
            max_future_us: 86_400 * 1_000_000,
            max_age_us: 7 * 86_400 * 1_000_000,
        }
    }
}

/// Longest name-like text (interface, OS hint, tool, agent version).
pub const MAX_NAME: usize = 64;
/// Longest TCP option signature (40 option bytes give at most ~160 characters).
pub const MAX_SIGNATURE: usize = 256;

/// Earliest accepted timestamp: 2000-01-01T00:00:00Z.
pub const MIN_TS_US: i64 = 946_684_800 * 1_000_000;

pub use scanscope_common::valid_sensor_id;

/// Checks every field a reader relies on. `encoded_len` is the batch's size on the wire.
pub fn validate(
    b: &Batch,
    encoded_len: usize,
    limits: &Limits,
    now_us: i64,
) -> Result<(), IngestError> {
    let invalid = |reason: String| IngestError::Invalid {
        sensor: b.sensor_id.chars().take(128).collect(),
        seq: b.seq,
        reason,
    };
    if encoded_len > limits.max_batch_bytes {
        return Err(IngestError::TooLarge {
            sensor: b.sensor_id.chars().take(128).collect(),
            seq: b.seq,
            reason: format!("{encoded_len} bytes > limit {}", limits.max_batch_bytes),
        });
    }
    let rows = b.records();
    if rows > limits.max_batch_rows {
        return Err(IngestError::TooLarge {
            sensor: b.sensor_id.chars().take(128).collect(),
            seq: b.seq,
            reason: format!("{rows} rows > limit {}", limits.max_batch_rows),
        });
    }
    if !valid_sensor_id(&b.sensor_id) {
        return Err(invalid(
            "sensor_id must be 1-128 bytes of [A-Za-z0-9._:-]".into(),
        ));
    }
    if b.seq == 0 {
        return Err(invalid("seq must be at least 1".into()));
    }
    if scanscope_proto::v1::Source::try_from(b.source).is_err() {
        return Err(invalid(format!("unknown source {}", b.source)));
    }
    if b.agent_version.len() > MAX_NAME {
        return Err(invalid("agent_version too long".into()));
    }
    let max_ts = now_us.saturating_add(limits.max_future_us);
    let min_ts = now_us.saturating_sub(limits.max_age_us).max(MIN_TS_US);
    let ts_ok = |t: i64| (min_ts..=max_ts).contains(&t);
    let ip_ok = |a: &[u8], b: &[u8]| (a.len() == 4 || a.len() == 16) && a.len() == b.len();
    let kind_ok = |k: i32| vocab::kind(k).is_some();
    // Review L10: a `tcp_syn` of protocol 17 would be counted as a TCP port hit.
    let proto_fits = |k: i32, p: u32| {
        vocab::kind(k)
            .zip(u8::try_from(p).ok())
            .is_some_and(|(k, p)| k.admits_proto(p))
    };
    let secs_ok = |s: f64| s.is_finite() && s > 0.0 && s <= 86_400.0 * 7.0;
    for (i, f) in b.flows.iter().enumerate() {
        let bad = |what: &str| invalid(format!("flows[{i}]: {what}"));
        if !ts_ok(f.interval_start_us) || !ts_ok(f.first_seen_us) || !ts_ok(f.last_seen_us) {
            return Err(bad("timestamp out of range"));
        }
        if f.first_seen_us > f.last_seen_us {
            return Err(bad("first_seen after last_seen"));
        }
        if !secs_ok(f.interval_secs) {
            return Err(bad("interval_secs out of range"));
        }
        if !ip_ok(&f.src_ip, &f.dst_ip) {
            return Err(bad("addresses must be 4 or 16 bytes, same family"));
        }
        if f.proto > 255 || f.dst_port > 65_535 || !kind_ok(f.kind) {
            return Err(bad("proto, dst_port or kind out of range"));
        }
        if !proto_fits(f.kind, f.proto) {
            return Err(bad("kind does not fit the IP protocol"));
        }
        if f.icmp_type.is_some_and(|v| v > 255) || f.icmp_code.is_some_and(|v| v > 255) {
            return Err(bad("icmp type/code out of range"));
        }
        if f.packets == 0 {
            return Err(bad("packets must be at least 1"));
        }
        if f.sampling_rate == Some(0) || f.tcp_flags.is_some_and(|v| v > 255) {
            return Err(bad(
                "sampling_rate must be at least 1, tcp_flags at most 255",
            ));
        }
    }
    for (i, e) in b.events.iter().enumerate() {
        let bad = |what: &str| invalid(format!("events[{i}]: {what}"));
        if !ts_ok(e.ts_us) {
            return Err(bad("timestamp out of range"));
        }
        if !ip_ok(&e.src_ip, &e.dst_ip) {
            return Err(bad("addresses must be 4 or 16 bytes, same family"));
        }
        let u8s = [
            e.proto,
            e.ttl,
            e.tos,
            e.tcp_flags,
            e.icmp_type,
            e.icmp_code,
            e.initial_ttl,
        ];
        let u16s = [
            e.src_port,
            e.dst_port,
            e.ip_id,
            e.ip_len,
            e.tcp_window,
            e.vlan,
            e.payload_len,
        ];
        if u8s.iter().any(|&v| v > 255) || u16s.iter().any(|&v| v > 65_535) || !kind_ok(e.kind) {
            return Err(bad("a header field is out of range"));
        }
        if !proto_fits(e.kind, e.proto) {
            return Err(bad("kind does not fit the IP protocol"));
        }
        if e.payload.len() > 4096 || e.tcp_options_raw.len() > 40 || e.tools.len() > 16 {
            return Err(bad("payload, options or tools too long"));
        }
        // Every text is bounded too, so no column of a segment can outgrow what Arrow holds.
        if e.iface.len() > MAX_NAME
            || e.os_hint.len() > MAX_NAME
            || e.tcp_options.len() > MAX_SIGNATURE
            || e.tools.iter().any(|t| t.len() > MAX_NAME)
        {
            return Err(bad("iface, os_hint, tcp_options or a tool name too long"));
        }
        if e.weight == 0 {
            return Err(bad("weight must be at least 1"));
        }
    }
    for (i, s) in b.stats.iter().enumerate() {
        let bad = |what: &str| invalid(format!("stats[{i}]: {what}"));
        if !ts_ok(s.interval_start_us) || !secs_ok(s.interval_secs) {
            return Err(bad("interval out of range"));
        }
        if s.kinds.iter().any(|k| !kind_ok(k.kind)) {
            return Err(bad("unknown kind"));
        }
        if s.counters
            .iter()
            .any(|c| c.name.is_empty() || c.name.len() > 64)
        {
            return Err(bad("counter name must be 1-64 bytes"));
        }
        if s.tcp_ports
            .iter()
            .chain(&s.udp_ports)
            .any(|p| p.port > 65_535)
        {
            return Err(bad("port out of range"));
        }
    }
    for (i, l) in b.lost.iter().enumerate() {
        let bad = |what: &str| invalid(format!("lost[{i}]: {what}"));
        if !ts_ok(l.ts_us) {
            return Err(bad("timestamp out of range"));
        }
        if vocab::lost_stage(l.stage).is_none() {
            return Err(bad("unknown stage"));
        }
        if l.unit.is_empty() || l.unit.len() > 32 || l.detail.len() > 1024 {
            return Err(bad("unit or detail length"));
        }
    }
    for (i, x) in b.sessions.iter().enumerate() {
        let bad = |what: &str| invalid(format!("sessions[{i}]: {what}"));
        validate_session(x, &ts_ok).map_err(bad)?;
    }
    Ok(())
}

/// Longest text of a session field (URL, user agent, banner, command, credential …).
pub const MAX_SESSION_TEXT: usize = 4096;
/// Most entries of a session's lists (headers, ALPN, credentials, commands, details, tags).
pub const MAX_SESSION_LIST: usize = 256;
/// Largest session payload (the responder keeps at most 16 KiB).
pub const MAX_SESSION_PAYLOAD: usize = 16 << 10;

fn validate_session(
    x: &scanscope_proto::v1::Session,
    ts_ok: &dyn Fn(i64) -> bool,
) -> Result<(), &'static str> {
    use scanscope_common::{AppProtocol, SessionEnd};
    if !ts_ok(x.ts_us) {
        return Err("timestamp out of range");
    }
    let (a, b) = (&x.src_ip, &x.dst_ip);
    if !((a.len() == 4 || a.len() == 16) && a.len() == b.len()) {
        return Err("addresses must be 4 or 16 bytes, same family");
    }
    if x.src_port > 65_535 || x.dst_port > 65_535 {
        return Err("port out of range");
    }
    if AppProtocol::from_name(&x.protocol).is_none() || SessionEnd::from_name(&x.end).is_none() {
        return Err("unknown protocol or end");
    }
    if x.payload.len() > MAX_SESSION_PAYLOAD {
        return Err("payload too long");
    }
    let text_ok = |t: &str| t.len() <= MAX_SESSION_TEXT;
    let list_ok = |l: &[String]| l.len() <= MAX_SESSION_LIST && l.iter().all(|t| text_ok(t));
    let http_ok = x.http.as_ref().is_none_or(|h| {
        h.method.len() <= MAX_NAME
            && text_ok(&h.url)
            && h.version <= 255
            && h.host.as_deref().is_none_or(text_ok)
            && h.user_agent.as_deref().is_none_or(text_ok)
            && list_ok(&h.headers)
    });
    let tls_ok = x.tls.as_ref().is_none_or(|t| {
        t.ja4.len() <= MAX_NAME * 2
            && t.version.len() <= MAX_NAME
            && t.sni.as_deref().is_none_or(text_ok)
            && list_ok(&t.alpn)
    });
    if !http_ok || !tls_ok {
        return Err("an HTTP or TLS field is too long");
    }
    let creds_ok = x.credentials.len() <= MAX_SESSION_LIST
        && x.credentials
            .iter()
            .all(|c| c.method.len() <= MAX_NAME && text_ok(&c.user) && text_ok(&c.secret));
    if !creds_ok
        || !text_ok(&x.ssh_client_banner)
        || x.hassh.len() > MAX_NAME
        || !list_ok(&x.commands)
        || !list_ok(&x.details)
        || !list_ok(&x.tags)
    {
        return Err("a text or list is too long");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanscope_proto::v1::{Credential, Event, Flow, HttpRequest, Kind, Session};

    const NOW: i64 = 1_790_000_000_000_000;

    fn flow() -> Flow {
        Flow {
            interval_start_us: NOW,
            interval_secs: 60.0,
            src_ip: vec![1, 2, 3, 4].into(),
            dst_ip: vec![5, 6, 7, 8].into(),
            proto: 6,
            kind: Kind::TcpSyn as i32,
            dst_port: 22,
            packets: 1,
            bytes: 40,
            first_seen_us: NOW,
            last_seen_us: NOW,
            ..Default::default()
        }
    }

    fn batch() -> Batch {
        Batch {
            sensor_id: "sensor-1".into(),
            seq: 1,
            flows: vec![flow()],
            events: vec![Event {
                ts_us: NOW,
                src_ip: vec![0; 16],
                dst_ip: vec![0; 16],
                kind: Kind::Udp as i32,
                proto: 17,
                weight: 1,
                ..Default::default()
            }],
            sessions: vec![Session {
                ts_us: NOW,
                src_ip: vec![1, 2, 3, 4],
                dst_ip: vec![5, 6, 7, 8],
                src_port: 40_000,
                dst_port: 8080,
                protocol: "http".into(),
                end: "answered".into(),
                http: Some(HttpRequest {
                    method: "GET".into(),
                    url: "/".into(),
                    version: 11,
                    ..Default::default()
                }),
                credentials: vec![Credential::default()],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn check(b: &Batch) -> Result<(), IngestError> {
        validate(b, 100, &Limits::default(), NOW)
    }

    #[test]
    fn good_batch_passes() {
        check(&batch()).unwrap();
    }

    #[test]
    fn each_bad_field_is_refused() {
        type Mutate = Box<dyn Fn(&mut Batch)>;
        let cases: Vec<(&str, Mutate)> = vec![
            ("empty sensor", Box::new(|b| b.sensor_id.clear())),
            ("bad sensor", Box::new(|b| b.sensor_id = "a b".into())),
            ("seq 0", Box::new(|b| b.seq = 0)),
            (
                "ip len",
                Box::new(|b| b.flows[0].src_ip = vec![1, 2, 3].into()),
            ),
            (
                "family",
                Box::new(|b| b.flows[0].dst_ip = vec![0; 16].into()),
            ),
            ("port", Box::new(|b| b.flows[0].dst_port = 70_000)),
            ("kind", Box::new(|b| b.flows[0].kind = 0)),
            ("kind unknown", Box::new(|b| b.flows[0].kind = 99)),
            ("syn over udp", Box::new(|b| b.flows[0].proto = 17)),
            ("udp event over tcp", Box::new(|b| b.events[0].proto = 6)),
            ("past", Box::new(|b| b.flows[0].interval_start_us = 5)),
            (
                "future",
                Box::new(|b| b.flows[0].last_seen_us = NOW + 2 * 86_400_000_000),
            ),
            ("secs", Box::new(|b| b.flows[0].interval_secs = f64::NAN)),
            ("packets", Box::new(|b| b.flows[0].packets = 0)),
            ("ttl", Box::new(|b| b.events[0].ttl = 256)),
            ("weight", Box::new(|b| b.events[0].weight = 0)),
            ("payload", Box::new(|b| b.events[0].payload = vec![0; 5000])),
            ("iface", Box::new(|b| b.events[0].iface = "x".repeat(65))),
            (
                "os_hint",
                Box::new(|b| b.events[0].os_hint = "x".repeat(65)),
            ),
            (
                "tool",
                Box::new(|b| b.events[0].tools = vec!["x".repeat(65)]),
            ),
            (
                "options",
                Box::new(|b| b.events[0].tcp_options = "M".repeat(257)),
            ),
            ("version", Box::new(|b| b.agent_version = "v".repeat(65))),
            (
                "session ip",
                Box::new(|b| b.sessions[0].dst_ip = vec![0; 16]),
            ),
            (
                "session port",
                Box::new(|b| b.sessions[0].dst_port = 65_536),
            ),
            ("session ts", Box::new(|b| b.sessions[0].ts_us = 0)),
            (
                "session protocol",
                Box::new(|b| b.sessions[0].protocol = "gopher".into()),
            ),
            (
                "session end",
                Box::new(|b| b.sessions[0].end = String::new()),
            ),
            (
                "session payload",
                Box::new(|b| b.sessions[0].payload = vec![0; MAX_SESSION_PAYLOAD + 1]),
            ),
            (
                "session url",
                Box::new(|b| {
                    b.sessions[0].http.as_mut().unwrap().url = "/".repeat(MAX_SESSION_TEXT + 1)
                }),
            ),
            (
                "session commands",
                Box::new(|b| b.sessions[0].commands = vec![String::new(); MAX_SESSION_LIST + 1]),
            ),
            (
                "session password",
                Box::new(|b| {
                    b.sessions[0].credentials[0].secret = "x".repeat(MAX_SESSION_TEXT + 1)
                }),
            ),
            (
                "older than the window",
                Box::new(|b| b.flows[0].interval_start_us = NOW - 8 * 86_400_000_000),
            ),
        ];
        for (name, f) in cases {
            let mut b = batch();
            f(&mut b);
            let e = check(&b).expect_err(name);
            assert!(matches!(e, IngestError::Invalid { .. }), "{name}: {e}");
        }
    }

    #[test]
    fn size_limits() {
        let limits = Limits {
            max_batch_rows: 2,
            ..Limits::default()
        };
        let mut b = batch();
        assert!(matches!(
            validate(&b, limits.max_batch_bytes + 1, &limits, NOW),
            Err(IngestError::TooLarge { .. })
        ));
        b.flows.push(flow());
        assert!(matches!(
            validate(&b, 10, &limits, NOW),
            Err(IngestError::TooLarge { .. })
        ));
    }
}
