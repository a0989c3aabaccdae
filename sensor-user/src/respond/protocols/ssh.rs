//! SSH: russh is the server. It sends the configured identification, runs the key exchange
//! with the responder's host key, and offers `password` and `publickey` authentication; every
//! attempt is recorded (a password as sent, an offered key as its SHA-256 fingerprint) and
//! rejected, so no channel, forwarding or shell can ever be opened.
//!
//! The client's identification line and HASSH (Salesforce, BSD-3-Clause: MD5 of
//! `kex_algorithms;encryption_algorithms_client_to_server;mac_algorithms_client_to_server;
//! compression_algorithms_client_to_server`) come from the bytes the client sent, parsed here:
//! its first binary packet, SSH_MSG_KEXINIT, travels in the clear (RFC 4253 7.1).
use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use md5::{Digest, Md5};
use russh::{
    SshId,
    keys::HashAlg,
    server::{Auth, Handler, PublicKeyOffer},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Instant,
};

use crate::respond::{
    config::MAX_READ_BYTES,
    conn::{Conn, Step},
};

/// SSH_MSG_KEXINIT.
const KEXINIT: u8 = 20;
/// Largest KEXINIT packet parsed (OpenSSH's are about 1.5 KiB).
const MAX_PACKET: usize = 16 << 10;
/// Bytes of the client's stream kept for the banner and KEXINIT.
const KEEP: usize = 32 << 10;

/// What the client sent and how much, shared between the stream wrapper and the session.
#[derive(Debug, Default)]
struct Seen {
    /// The first bytes read through the wrapper.
    kept: Vec<u8>,
    bytes_in: u64,
    bytes_out: u64,
    /// The read cap ended the stream.
    capped: bool,
}

/// The connection as russh drives it: first the bytes the dispatcher already read, then the
/// socket; every read is kept (the first [`KEEP`] bytes) and counted, reading ends at the
/// session's deadline or the read cap.
struct Tee {
    inner: TcpStream,
    pre: Vec<u8>,
    pre_at: usize,
    seen: Arc<Mutex<Seen>>,
    deadline: Instant,
    /// Bytes read before the handover (they count towards the read cap).
    already: u64,
}

impl AsyncRead for Tee {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        if me.pre_at < me.pre.len() {
            let n = (me.pre.len() - me.pre_at).min(buf.remaining());
            buf.put_slice(&me.pre[me.pre_at..me.pre_at + n]);
            me.pre_at += n;
            return Poll::Ready(Ok(()));
        }
        let mut seen = me.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if Instant::now() >= me.deadline {
            return Poll::Ready(Ok(())); // end of stream: the session's time is up
        }
        if me.already + seen.bytes_in >= MAX_READ_BYTES as u64 {
            seen.capped = true;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = &buf.filled()[before..];
            seen.bytes_in += new.len() as u64;
            let room = KEEP.saturating_sub(seen.kept.len()).min(new.len());
            seen.kept.extend_from_slice(&new[..room]);
        }
        r
    }
}

impl AsyncWrite for Tee {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = &mut *self;
        let r = Pin::new(&mut me.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            me.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .bytes_out += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One login attempt as russh reports it.
type Attempt = (&'static str, String, String);

/// Records every authentication attempt and rejects it.
struct Recorder {
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Recorder {
    fn record(&self, method: &'static str, user: &str, secret: String) {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((method, user.to_string(), secret));
    }
}

impl Handler for Recorder {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.record("password", user, password.to_string());
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        self.record("publickey", user, fp);
        Ok(Auth::reject())
    }
}

/// Serves the SSH session until the client gives up, reaches `max_auth` or the time is up.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let Some((stream, pre, deadline)) = c.take_stream() else {
        return Err(scanscope_common::SessionEnd::Closed);
    };
    let config = Arc::new(russh::server::Config {
        server_id: SshId::Standard(c.cfg.banners.ssh.clone().into()),
        methods: russh::MethodSet::from(
            &[russh::MethodKind::Password, russh::MethodKind::PublicKey][..],
        ),
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        keys: vec![c.cfg.ssh_host_key.clone()],
        max_auth_attempts: c.cfg.max_auth as usize,
        inactivity_timeout: Some(c.cfg.idle),
        ..Default::default()
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let already = c.rec.bytes_in;
    let tee = Tee {
        inner: stream,
        pre: pre.clone(),
        pre_at: 0,
        seen: seen.clone(),
        deadline,
        already,
    };
    let handler = Recorder {
        attempts: attempts.clone(),
    };
    let ran = tokio::time::timeout_at(deadline, async {
        match russh::server::run_stream(config, tee, handler).await {
            Ok(session) => session.await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    c.account_read(&seen.kept, seen.bytes_in);
    c.account_written(seen.bytes_out);
    let mut stream_bytes = pre;
    stream_bytes.extend_from_slice(&seen.kept);
    match client_hello(&stream_bytes) {
        Some((banner, kex)) => {
            c.rec.ssh_client_banner = Some(c.text(&banner));
            match kex {
                Some(lists) => c.rec.hassh = Some(hassh(&lists)),
                None => c.tag("ssh_no_kexinit"),
            }
        }
        None => c.tag("ssh_no_banner"),
    }
    let attempts = std::mem::take(&mut *attempts.lock().unwrap_or_else(PoisonError::into_inner));
    let mut capped = Ok(());
    for (method, user, secret) in attempts {
        if capped.is_ok() {
            capped = c.credential(method, user.as_bytes(), secret.as_bytes());
        }
    }
    capped?;
    if seen.capped {
        return Err(scanscope_common::SessionEnd::ReadCap);
    }
    match ran {
        Err(_) => Err(scanscope_common::SessionEnd::Timeout),
        Ok(_) => Err(scanscope_common::SessionEnd::Closed),
    }
}

/// The client's identification line and, if it followed, its KEXINIT name-lists, from the
/// start of what the client sent.
pub fn client_hello(data: &[u8]) -> Option<(Vec<u8>, Option<NameLists>)> {
    // Lines before the identification are allowed (RFC 4253 4.2).
    let mut rest = data;
    for _ in 0..8 {
        let i = rest.iter().position(|&b| b == b'\n')?;
        let line = rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]);
        rest = &rest[i + 1..];
        if line.starts_with(b"SSH-") {
            let kex = rest
                .get(..4)
                .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
                .filter(|n| (2..=MAX_PACKET).contains(n))
                .and_then(|n| rest.get(4..4 + n))
                .and_then(kexinit);
            return Some((line.to_vec(), kex));
        }
    }
    None
}

/// A KEXINIT's ten name-lists.
pub type NameLists = Vec<Vec<u8>>;

/// The name-lists of a client's KEXINIT packet (after its length), in packet order (kex, host
/// key, enc c→s, enc s→c, mac c→s, mac s→c, comp c→s, comp s→c, languages c→s, s→c).
pub fn kexinit(packet: &[u8]) -> Option<NameLists> {
    // packet = padding_length, payload, padding (no MAC before NEWKEYS).
    let pad = *packet.first()? as usize;
    let payload = packet.get(1..packet.len().checked_sub(pad)?)?;
    if payload.first() != Some(&KEXINIT) {
        return None;
    }
    let mut rest = payload.get(17..)?;
    let mut lists = Vec::with_capacity(10);
    for _ in 0..10 {
        let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        lists.push(rest.get(4..4 + n)?.to_vec());
        rest = &rest[4 + n..];
    }
    Some(lists)
}

/// HASSH of a client's KEXINIT name-lists.
pub fn hassh(lists: &[Vec<u8>]) -> String {
    let mut text = Vec::new();
    for (i, idx) in [0, 2, 4, 6].into_iter().enumerate() {
        if i > 0 {
            text.push(b';');
        }
        text.extend_from_slice(&lists[idx]);
    }
    hex::encode(Md5::digest(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KEXINIT packet with the given name-lists.
    fn packet(lists: &[&str]) -> Vec<u8> {
        let mut payload = vec![KEXINIT];
        payload.extend_from_slice(&[0x42; 16]);
        for l in lists {
            payload.extend_from_slice(&(l.len() as u32).to_be_bytes());
            payload.extend_from_slice(l.as_bytes());
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let pad = 8 - (payload.len() + 5) % 8 + 4;
        let mut p = vec![pad as u8];
        p.extend_from_slice(&payload);
        p.extend(std::iter::repeat_n(0, pad));
        p
    }

    #[test]
    fn banner_and_hassh_from_the_client_stream() {
        let lists = [
            "curve25519-sha256,diffie-hellman-group14-sha256",
            "ssh-ed25519",
            "aes128-ctr,aes256-gcm@openssh.com",
            "aes128-ctr",
            "hmac-sha2-256",
            "hmac-sha2-256",
            "none,zlib@openssh.com",
            "none",
            "",
            "",
        ];
        let p = packet(&lists);
        let mut stream = b"hello\r\nSSH-2.0-Go\r\n".to_vec();
        stream.extend_from_slice(&(p.len() as u32).to_be_bytes());
        stream.extend_from_slice(&p);
        let (banner, kex) = client_hello(&stream).expect("banner");
        assert_eq!(banner, b"SSH-2.0-Go");
        let k = kex.expect("kexinit");
        assert_eq!(k[2], b"aes128-ctr,aes256-gcm@openssh.com");
        let text = "curve25519-sha256,diffie-hellman-group14-sha256;aes128-ctr,aes256-gcm@openssh.com;hmac-sha2-256;none,zlib@openssh.com";
        assert_eq!(hassh(&k), hex::encode(Md5::digest(text.as_bytes())));
        assert_eq!(
            client_hello(b"SSH-2.0-x\r\n"),
            Some((b"SSH-2.0-x".to_vec(), None))
        );
        assert!(client_hello(b"no banner").is_none());
        assert!(kexinit(&p[..20]).is_none());
        assert!(kexinit(&[200, 20]).is_none());
    }
}
