//! One responder session: tell the protocol (by the client's first bytes; by the port only for
//! protocols where the server speaks first, after a short wait), hand the connection to that
//! protocol's handler, and return the [`Session`] record.
use std::net::SocketAddr;

use scanscope_common::{AppProtocol, SessionEnd};
use tokio::{net::TcpStream, time::Instant};

use super::{
    RespondStats,
    config::RespondConfig,
    conn::{Conn, Step},
    protocols::{
        ftp, http, imap, mqtt, mysql, pop3, postgres, rdp, redis, smtp, ssh, telnet, tls, vnc,
    },
};
use crate::record::Session;

/// The protocol the client's first bytes announce.
pub fn classify(b: &[u8]) -> AppProtocol {
    if b.starts_with(b"SSH-") {
        AppProtocol::Ssh
    } else if b.len() >= 2 && b[0] == 0xff && (251..=254).contains(&b[1]) {
        // A client that opens with telnet option negotiation.
        AppProtocol::Telnet
    } else if tls::looks_like(b) {
        AppProtocol::Tls
    } else if http::looks_like(b) {
        AppProtocol::Http
    } else if rdp::looks_like(b) {
        AppProtocol::Rdp
    } else if mqtt::looks_like(b) {
        AppProtocol::Mqtt
    } else if postgres::looks_like(b) {
        AppProtocol::Postgres
    } else if redis::looks_like(b) {
        AppProtocol::Redis
    } else {
        AppProtocol::Unknown
    }
}

/// Serves one accepted connection.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: &RespondConfig,
    sensor: &str,
    stats: &RespondStats,
) -> Session {
    let started = Instant::now();
    let local = stream.local_addr().ok();
    let rec = Session {
        ts: chrono::Utc::now(),
        sensor: sensor.to_string(),
        src_ip: peer.ip().to_canonical(),
        src_port: peer.port(),
        dst_ip: local.map_or(peer.ip(), |l| l.ip().to_canonical()),
        dst_port: local.map_or(0, |l| l.port()),
        protocol: AppProtocol::None,
        bytes_in: 0,
        bytes_out: 0,
        duration_ms: 0,
        end: SessionEnd::Closed,
        payload: Vec::new(),
        payload_cut: false,
        http: None,
        tls: None,
        ssh_client_banner: None,
        hassh: None,
        credentials: Vec::new(),
        commands: Vec::new(),
        details: Vec::new(),
        tags: Vec::new(),
    };
    let mut c = Conn::new(stream, cfg, stats, rec);
    let end = match serve(&mut c).await {
        Ok(()) => SessionEnd::Answered,
        Err(e) => e,
    };
    c.close().await;
    let mut s = c.into_record();
    if s.protocol == AppProtocol::None && s.bytes_in > 0 {
        s.protocol = AppProtocol::Unknown;
    }
    s.end = end;
    s.duration_ms = started.elapsed().as_millis() as u64;
    s
}

async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let hint = c.cfg.server_first(c.rec.dst_port);
    if hint == Some(AppProtocol::Ssh) {
        // SSH: both sides send their identification at once (RFC 4253 4.2).
        c.rec.protocol = AppProtocol::Ssh;
        return ssh::serve(c).await;
    }
    if let Some(p) = hint
        && !c.speaks_within(c.cfg.banner_wait).await?
    {
        c.rec.protocol = p;
        return match p {
            AppProtocol::Telnet => telnet::serve(c).await,
            AppProtocol::Ftp => ftp::serve(c).await,
            AppProtocol::Smtp => smtp::serve(c).await,
            AppProtocol::Pop3 => pop3::serve(c).await,
            AppProtocol::Imap => imap::serve(c).await,
            AppProtocol::Mysql => mysql::serve(c).await,
            AppProtocol::Vnc => vnc::serve(c).await,
            _ => drain(c).await,
        };
    }
    c.need(1).await?;
    let p = classify(c.buffered());
    c.rec.protocol = p;
    match p {
        AppProtocol::Ssh => ssh::serve(c).await,
        AppProtocol::Telnet => telnet::serve(c).await,
        AppProtocol::Tls => tls::serve(c).await,
        AppProtocol::Http => http::serve(c).await,
        AppProtocol::Rdp => rdp::serve(c).await,
        AppProtocol::Mqtt => mqtt::serve(c).await,
        AppProtocol::Postgres => postgres::serve(c).await,
        AppProtocol::Redis => redis::serve(c).await,
        _ => drain(c).await,
    }
}

/// A protocol the responder does not speak: read (and keep the first bytes) until the client
/// stops.
async fn drain(c: &mut Conn<'_>) -> Step<()> {
    loop {
        let n = c.buffered().len();
        c.consume(n);
        c.fill().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_protocol() {
        let cases: [(&[u8], AppProtocol); 11] = [
            (b"\xff\xfb\x18\xff\xfa\x18", AppProtocol::Telnet),
            (b"SSH-2.0-libssh2_1.4.3\r\n", AppProtocol::Ssh),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                AppProtocol::Tls,
            ),
            (b"GET / HTTP/1.1\r\n", AppProtocol::Http),
            (
                b"\x03\x00\x00\x2b\x26\xe0\x00\x00\x00\x00\x00Cookie: mstshash=a\r\n",
                AppProtocol::Rdp,
            ),
            (
                b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd",
                AppProtocol::Mqtt,
            ),
            (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", AppProtocol::Postgres),
            (b"*1\r\n$4\r\nPING\r\n", AppProtocol::Redis),
            (b"INFO\r\n", AppProtocol::Redis),
            (b"\x00\x00\x00\x00", AppProtocol::Unknown),
            (b"hello", AppProtocol::Unknown),
        ];
        for (bytes, p) in cases {
            assert_eq!(classify(bytes), p, "{bytes:?}");
        }
    }
}
