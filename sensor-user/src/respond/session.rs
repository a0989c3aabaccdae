//! One responder session: read what the scanner sends (bounded in bytes and time), tell the
//! protocol by the first bytes, answer, and return the [`Session`] record.
use std::{net::SocketAddr, sync::atomic::Ordering};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use super::{
    RespondStats,
    config::{MAX_READ_BYTES, RespondConfig},
    http,
};
use crate::record::Session;

/// How a session ended.
pub mod end {
    /// The client closed the connection.
    pub const CLOSED: &str = "closed";
    /// The client reset the connection (or reading failed).
    pub const RESET: &str = "reset";
    /// The client sent nothing within `first_byte_secs`.
    pub const SILENT: &str = "silent";
    /// The client went quiet for `idle_secs`.
    pub const IDLE: &str = "idle";
    /// `total_secs` ran out.
    pub const TIMEOUT: &str = "timeout";
    /// The client sent more than the responder reads in a session.
    pub const READ_CAP: &str = "read_cap";
    /// The responder answered the request and closed.
    pub const ANSWERED: &str = "answered";
}

/// The protocols a session can be told apart as.
pub mod protocol {
    /// Nothing was sent.
    pub const NONE: &str = "none";
    pub const HTTP: &str = "http";
    /// Bytes of no protocol the responder knows yet.
    pub const UNKNOWN: &str = "unknown";
}

/// Serves one accepted connection.
pub async fn run(
    mut stream: TcpStream,
    peer: SocketAddr,
    cfg: &RespondConfig,
    sensor: &str,
    stats: &RespondStats,
) -> Session {
    let started = Instant::now();
    let local = stream.local_addr().ok();
    let mut s = Session {
        ts: chrono::Utc::now(),
        sensor: sensor.to_string(),
        src_ip: peer.ip().to_canonical(),
        src_port: peer.port(),
        dst_ip: local.map_or(peer.ip(), |l| l.ip().to_canonical()),
        dst_port: local.map_or(0, |l| l.port()),
        protocol: protocol::NONE,
        bytes_in: 0,
        bytes_out: 0,
        duration_ms: 0,
        end: end::CLOSED,
        payload: Vec::new(),
        payload_cut: false,
        http: None,
    };
    let deadline = started + cfg.total;
    let mut buf = vec![0u8; 4096];
    loop {
        let wait = if s.bytes_in == 0 {
            cfg.first_byte
        } else {
            cfg.idle
        };
        let until = (Instant::now() + wait).min(deadline);
        let n = match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => {
                s.end = if Instant::now() >= deadline {
                    end::TIMEOUT
                } else if s.bytes_in == 0 {
                    end::SILENT
                } else {
                    end::IDLE
                };
                break;
            }
            Ok(Err(_)) => {
                s.end = end::RESET;
                break;
            }
            Ok(Ok(0)) => {
                s.end = end::CLOSED;
                break;
            }
            Ok(Ok(n)) => n,
        };
        s.bytes_in += n as u64;
        let keep = cfg.payload_bytes.saturating_sub(s.payload.len()).min(n);
        s.payload.extend_from_slice(&buf[..keep]);
        if keep < n && !s.payload_cut {
            s.payload_cut = true;
            stats.payload_cut.fetch_add(1, Ordering::Relaxed);
        }
        if s.protocol == protocol::NONE {
            s.protocol = if http::looks_like(&s.payload) {
                protocol::HTTP
            } else {
                protocol::UNKNOWN
            };
        }
        if s.protocol == protocol::HTTP && http::head_complete(&s.payload) {
            s.http = http::parse(&s.payload);
            let answer = http::answer("Apache");
            let write = stream.write_all(&answer);
            if let Ok(Ok(())) = tokio::time::timeout_at(deadline, write).await {
                s.bytes_out += answer.len() as u64;
            }
            let _closed = stream.shutdown().await.is_ok();
            s.end = end::ANSWERED;
            break;
        }
        if s.bytes_in >= MAX_READ_BYTES as u64 {
            s.end = end::READ_CAP;
            break;
        }
    }
    s.duration_ms = started.elapsed().as_millis() as u64;
    s
}
