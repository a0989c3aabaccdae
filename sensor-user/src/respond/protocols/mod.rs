//! The protocols the responder speaks, one module each. A handler reads what the client sends
//! through [`super::conn::Conn`], fills in the session record and answers as a plausible server
//! would — and always refuses: no login succeeds, nothing is relayed, fetched or executed.
pub mod ftp;
pub mod http;
pub mod imap;
pub mod mqtt;
pub mod mysql;
pub mod pop3;
pub mod postgres;
pub mod rdp;
pub mod redis;
pub mod smtp;
pub mod ssh;
pub mod telnet;
pub mod tls;
pub mod vnc;

/// `name` followed by a space or the end: the command word of a text line, any case.
pub(crate) fn verb(line: &[u8]) -> (Vec<u8>, &[u8]) {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let rest = line.get(end + 1..).unwrap_or_default();
    (line[..end].to_ascii_uppercase(), rest)
}
