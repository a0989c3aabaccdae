//! One scanner's connection as the protocol handlers see it: reads bounded in bytes and time,
//! writes bounded in time, and the [`Session`] record they fill in. Every cap that cuts
//! something is counted in [`RespondStats`].
//!
//! A handler returns [`Step`]: `Err(end)` says how the session ended (the client closed, went
//! quiet, reached a cap …), `Ok` that the responder finished its answer.
use std::{sync::atomic::Ordering, time::Duration};

use scanscope_common::SessionEnd;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use super::{
    RespondStats,
    config::{MAX_READ_BYTES, RespondConfig},
};
use crate::record::{Credential, Session};

/// What a handler step gives: the value, or how the session ended.
pub type Step<T> = Result<T, SessionEnd>;

/// Longest text kept of any field the scanner sent (characters).
pub const MAX_FIELD: usize = 1024;
/// Most commands kept per session (the rest are counted as `respond_commands_cut`).
pub const MAX_COMMANDS: usize = 64;
/// Longest line a line-based protocol reads.
pub const MAX_LINE: usize = 2048;

/// Text of bytes the scanner sent: valid UTF-8 as it is, every other byte as `\xNN`, cut to
/// [`MAX_FIELD`] characters. Returns the text and whether it was cut.
pub fn text(b: &[u8]) -> (String, bool) {
    let mut out = String::new();
    let mut rest = b;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for byte in &bad[..n] {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
                rest = &bad[n..];
            }
        }
    }
    match out.char_indices().nth(MAX_FIELD) {
        Some((i, _)) => {
            out.truncate(i);
            (out, true)
        }
        None => (out, false),
    }
}

/// A connection being served.
#[derive(Debug)]
pub struct Conn<'a> {
    /// `None` once a handler took the connection over ([`Conn::take_stream`]).
    stream: Option<TcpStream>,
    pub cfg: &'a RespondConfig,
    stats: &'a RespondStats,
    /// The record the handlers fill in.
    pub rec: Session,
    /// Bytes read and not yet consumed by a handler.
    buf: Vec<u8>,
    deadline: Instant,
}

impl<'a> Conn<'a> {
    pub fn new(
        stream: TcpStream,
        cfg: &'a RespondConfig,
        stats: &'a RespondStats,
        rec: Session,
    ) -> Conn<'a> {
        Conn {
            stream: Some(stream),
            cfg,
            stats,
            rec,
            buf: Vec::new(),
            deadline: Instant::now() + cfg.total,
        }
    }

    /// Text of scanner bytes; a cut is counted.
    pub fn text(&self, b: &[u8]) -> String {
        let (t, cut) = text(b);
        if cut {
            self.stats.text_cut.fetch_add(1, Ordering::Relaxed);
        }
        t
    }

    /// Bytes read and not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` buffered bytes (a handler has used them).
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Reads more bytes, waiting at most `wait` (and never past the session's end). `Ok(false)`:
    /// nothing came within `wait`.
    pub async fn read_within(&mut self, wait: Duration) -> Step<bool> {
        if self.rec.bytes_in >= MAX_READ_BYTES as u64 {
            self.stats.read_cap.fetch_add(1, Ordering::Relaxed);
            return Err(SessionEnd::ReadCap);
        }
        let until = (Instant::now() + wait).min(self.deadline);
        let room = MAX_READ_BYTES - self.rec.bytes_in as usize;
        let mut chunk = vec![0u8; room.min(8192)];
        let Some(stream) = self.stream.as_mut() else {
            return Err(SessionEnd::Closed);
        };
        let n = match tokio::time::timeout_at(until, stream.read(&mut chunk)).await {
            Err(_) if Instant::now() >= self.deadline => return Err(SessionEnd::Timeout),
            Err(_) => return Ok(false),
            Ok(Err(_)) => return Err(SessionEnd::Reset),
            Ok(Ok(0)) => return Err(SessionEnd::Closed),
            Ok(Ok(n)) => n,
        };
        let data = &chunk[..n];
        self.rec.bytes_in += n as u64;
        let keep = self
            .cfg
            .payload_bytes
            .saturating_sub(self.rec.payload.len())
            .min(n);
        self.rec.payload.extend_from_slice(&data[..keep]);
        if keep < n && !self.rec.payload_cut {
            self.rec.payload_cut = true;
            self.stats.payload_cut.fetch_add(1, Ordering::Relaxed);
        }
        self.buf.extend_from_slice(data);
        Ok(true)
    }

    /// Waits up to `wait` for the client to speak first. `Ok(false)`: it stayed silent.
    pub async fn speaks_within(&mut self, wait: Duration) -> Step<bool> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        self.read_within(wait).await
    }

    /// Reads more bytes: waits `first_byte_secs` for the first byte of the session and
    /// `idle_secs` after that.
    pub async fn fill(&mut self) -> Step<()> {
        let wait = if self.rec.bytes_in == 0 {
            self.cfg.first_byte
        } else {
            self.cfg.idle
        };
        if self.read_within(wait).await? {
            Ok(())
        } else if self.rec.bytes_in == 0 {
            Err(SessionEnd::Silent)
        } else {
            Err(SessionEnd::Idle)
        }
    }

    /// Reads until at least `n` bytes are buffered.
    pub async fn need(&mut self, n: usize) -> Step<()> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// The next line (without its terminator and a `\r` before it), at most [`MAX_LINE`]
    /// bytes: a longer line is returned in pieces.
    pub async fn line(&mut self) -> Step<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut l: Vec<u8> = self.buf.drain(..=i).collect();
                l.pop();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                return Ok(l);
            }
            if self.buf.len() >= MAX_LINE {
                return Ok(self.buf.drain(..MAX_LINE).collect());
            }
            self.fill().await?;
        }
    }

    /// Writes all of `data` (within the session's time).
    pub async fn send(&mut self, data: &[u8]) -> Step<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(SessionEnd::Closed);
        };
        match tokio::time::timeout_at(self.deadline, stream.write_all(data)).await {
            Err(_) => Err(SessionEnd::Timeout),
            Ok(Err(_)) => Err(SessionEnd::Reset),
            Ok(Ok(())) => {
                self.rec.bytes_out += data.len() as u64;
                Ok(())
            }
        }
    }

    /// Records a login attempt. `Err(AuthCap)` once the session reached `max_auth` attempts.
    pub fn credential(&mut self, method: &'static str, user: &[u8], secret: &[u8]) -> Step<()> {
        let (user, secret) = (self.text(user), self.text(secret));
        self.rec.credentials.push(Credential {
            method,
            user,
            secret,
        });
        if self.rec.credentials.len() >= self.cfg.max_auth as usize {
            self.stats.auth_cap.fetch_add(1, Ordering::Relaxed);
            return Err(SessionEnd::AuthCap);
        }
        Ok(())
    }

    /// Records a command the client sent (the first [`MAX_COMMANDS`]).
    pub fn command(&mut self, c: &[u8]) {
        if self.rec.commands.len() >= MAX_COMMANDS {
            self.stats.commands_cut.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let t = self.text(c);
        self.rec.commands.push(t);
    }

    /// Records a protocol detail `name=value`.
    pub fn detail(&mut self, name: &str, value: &[u8]) {
        if self.rec.details.len() >= MAX_COMMANDS {
            self.stats.commands_cut.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let t = self.text(value);
        self.rec.details.push(format!("{name}={t}"));
    }

    /// Adds a tag (once).
    pub fn tag(&mut self, t: &str) {
        if !self.rec.tags.iter().any(|x| x == t) {
            self.rec.tags.push(t.to_string());
        }
    }

    /// Closes the connection (a half-close after the last answer).
    pub async fn close(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            let _closed = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
        }
    }

    /// Hands the connection to a handler that drives it itself (SSH): the socket, the bytes
    /// read and not consumed, and when the session must end.
    pub fn take_stream(&mut self) -> Option<(TcpStream, Vec<u8>, Instant)> {
        let s = self.stream.take()?;
        Some((s, std::mem::take(&mut self.buf), self.deadline))
    }

    /// Takes in what a handler that drove the connection itself read: counted as read, and kept
    /// as payload within `payload_bytes` like every other read.
    pub fn account_read(&mut self, data: &[u8], total: u64) {
        self.rec.bytes_in += total;
        let keep = self
            .cfg
            .payload_bytes
            .saturating_sub(self.rec.payload.len())
            .min(data.len());
        self.rec.payload.extend_from_slice(&data[..keep]);
        if (keep as u64) < total
            && !self.rec.payload_cut
            && self.rec.payload.len() >= self.cfg.payload_bytes
        {
            self.rec.payload_cut = true;
            self.stats.payload_cut.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts bytes a handler that drove the connection itself wrote.
    pub fn account_written(&mut self, n: u64) {
        self.rec.bytes_out += n;
    }

    /// The record, once the session ended.
    pub fn into_record(self) -> Session {
        self.rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped_and_bounded() {
        assert_eq!(text(b"root"), ("root".into(), false));
        assert_eq!(text(b"a\xffb\xc3"), ("a\\xffb\\xc3".into(), false));
        assert_eq!(text("é<".as_bytes()), ("é<".into(), false));
        let (t, cut) = text(&[b'x'; 5000]);
        assert!(cut && t.len() == MAX_FIELD);
        let (t, cut) = text(&[0xff; 2000]);
        assert!(cut && t.chars().count() == MAX_FIELD);
    }
}
