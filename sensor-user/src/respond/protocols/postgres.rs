//! PostgreSQL: the StartupMessage (user, database, application) after refusing TLS and GSS
//! encryption ('N'), then AuthenticationCleartextPassword: the client's PasswordMessage is the
//! password itself; the answer is `28P01 password authentication failed`.
use crate::respond::conn::{Conn, Step};

const PROTOCOL_3: u32 = 0x0003_0000;
const SSL_REQUEST: u32 = 80_877_103;
const GSS_REQUEST: u32 = 80_877_104;
const CANCEL: u32 = 80_877_102;
/// Largest startup message read.
const MAX_STARTUP: usize = 10_000;

/// Whether `data` starts like a startup, SSL or GSS request.
pub fn looks_like(data: &[u8]) -> bool {
    let Some(head) = data.get(..8) else {
        return false;
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    (8..=MAX_STARTUP).contains(&len)
        && matches!(code, PROTOCOL_3 | SSL_REQUEST | GSS_REQUEST | CANCEL)
}

/// The `name\0value\0` pairs of a startup message body.
pub fn params(body: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut parts = body.split(|&b| b == 0);
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.is_empty() {
            break;
        }
        out.push((k, v));
    }
    out
}

fn error(code: &str, msg: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (t, v) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', msg)] {
        fields.push(t);
        fields.extend_from_slice(v.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut e = vec![b'E'];
    e.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    e.extend_from_slice(&fields);
    e
}

/// Reads the startup, asks for the password in the clear and refuses it.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let (user, body) = loop {
        c.need(8).await?;
        let b = c.buffered();
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let code = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        if !(8..=MAX_STARTUP).contains(&len) {
            c.tag("postgres_malformed");
            return Ok(());
        }
        c.need(len).await?;
        match code {
            SSL_REQUEST | GSS_REQUEST => {
                c.consume(len);
                c.send(b"N").await?;
            }
            PROTOCOL_3 => {
                let body = c.buffered()[8..len].to_vec();
                c.consume(len);
                let user = params(&body)
                    .iter()
                    .find(|(k, _)| *k == b"user")
                    .map(|(_, v)| v.to_vec())
                    .unwrap_or_default();
                break (user, body);
            }
            _ => {
                c.tag("postgres_cancel");
                return Ok(());
            }
        }
    };
    for (k, v) in params(&body) {
        if k != b"user" {
            let name = String::from_utf8_lossy(k).into_owned();
            c.detail(&name, v);
        }
    }
    c.send(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
    c.need(5).await?;
    let b = c.buffered();
    let (kind, len) = (b[0], u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize);
    if kind != b'p' || !(4..=MAX_STARTUP).contains(&len) {
        c.credential("password", &user, b"")?;
        return Ok(());
    }
    c.need(1 + len).await?;
    let pw = c.buffered()[5..1 + len].to_vec();
    c.consume(1 + len);
    let pw = pw.strip_suffix(&[0]).unwrap_or(&pw);
    let recorded = c.credential("password", &user, pw);
    let name = String::from_utf8_lossy(&user).into_owned();
    c.send(&error(
        "28P01",
        &format!("password authentication failed for user \"{name}\""),
    ))
    .await?;
    recorded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_parameters() {
        assert!(looks_like(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
        assert!(!looks_like(&[0, 0, 0, 8, 0, 0, 0, 0]));
        let body = b"user\0root\0database\0postgres\0\0";
        assert_eq!(
            params(body),
            [
                (&b"user"[..], &b"root"[..]),
                (&b"database"[..], &b"postgres"[..])
            ]
        );
        let e = error("28P01", "x");
        assert_eq!(
            u32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize,
            e.len() - 1
        );
    }
}
