//! IMAP: banner, `LOGIN` and `AUTHENTICATE PLAIN` recorded and refused; other commands
//! recorded and answered `BAD`.
use base64::Engine;

use super::{smtp::plain, verb};
use crate::respond::conn::{Conn, Step};

/// Serves until LOGOUT, the client stops or the attempt cap.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let banner = format!("{}\r\n", c.cfg.banners.imap);
    c.send(banner.as_bytes()).await?;
    loop {
        let line = c.line().await?;
        let (tag, rest) = verb(&line);
        let tag = String::from_utf8_lossy(&line[..tag.len()]).into_owned();
        let (cmd, arg) = verb(rest);
        let no = format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
        match cmd.as_slice() {
            b"LOGIN" => {
                let (user, pass) = login_args(arg);
                c.credential("password", &user, &pass)?;
                c.send(no.as_bytes()).await?;
            }
            b"AUTHENTICATE" if verb(arg).0 == b"PLAIN" => {
                let inline = verb(arg).1;
                let token = if inline.is_empty() {
                    c.send(b"+ \r\n").await?;
                    c.line().await?
                } else {
                    inline.to_vec()
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(token.trim_ascii())
                    .unwrap_or_default();
                let (user, pass) = plain(&decoded);
                c.credential("auth_plain", &user, &pass)?;
                c.send(no.as_bytes()).await?;
            }
            b"CAPABILITY" => {
                let reply = format!(
                    "* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN\r\n{tag} OK Capability completed.\r\n"
                );
                c.send(reply.as_bytes()).await?;
            }
            b"LOGOUT" => {
                let reply = format!("* BYE Logging out\r\n{tag} OK Logout completed.\r\n");
                c.send(reply.as_bytes()).await?;
                return Ok(());
            }
            _ => {
                c.command(&line);
                let reply = format!("{tag} BAD Error in IMAP command received by server.\r\n");
                c.send(reply.as_bytes()).await?;
            }
        }
    }
}

/// The two arguments of `LOGIN`: atoms or quoted strings (`\` escapes inside quotes).
pub fn login_args(arg: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    let mut rest = arg;
    for _ in 0..2 {
        rest = rest.trim_ascii_start();
        let mut v = Vec::new();
        if rest.first() == Some(&b'"') {
            let mut i = 1;
            while i < rest.len() && rest[i] != b'"' {
                if rest[i] == b'\\' && i + 1 < rest.len() {
                    i += 1;
                }
                v.push(rest[i]);
                i += 1;
            }
            rest = rest.get(i + 1..).unwrap_or_default();
        } else {
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            v.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        }
        out.push(v);
    }
    let pass = out.pop().unwrap_or_default();
    (out.pop().unwrap_or_default(), pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_arguments() {
        assert_eq!(
            login_args(b"root toor"),
            (b"root".to_vec(), b"toor".to_vec())
        );
        assert_eq!(
            login_args(br#""ad min" "p\"w d""#),
            (b"ad min".to_vec(), b"p\"w d".to_vec())
        );
        assert_eq!(login_args(b"alone"), (b"alone".to_vec(), Vec::new()));
    }
}
