//! SMTP: banner, EHLO offering AUTH PLAIN and LOGIN; every AUTH recorded and refused (535);
//! MAIL FROM / RCPT TO recorded, every recipient refused ("relay access denied"), so nothing is
//! ever delivered or relayed.
use base64::Engine;

use super::verb;
use crate::respond::conn::{Conn, Step};

fn b64(data: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim_ascii())
        .unwrap_or_default()
}

/// The user and password of a SASL PLAIN message (`authzid \0 authcid \0 password`).
pub fn plain(msg: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut parts = msg.splitn(3, |&b| b == 0);
    let _authz = parts.next();
    let user = parts.next().unwrap_or_default().to_vec();
    let pass = parts.next().unwrap_or_default().to_vec();
    (user, pass)
}

const REFUSED: &[u8] = b"535 5.7.8 Error: authentication failed: authentication failure\r\n";

/// Serves until QUIT, the client stops or the attempt cap.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let host = c.cfg.banners.smtp_host.clone();
    c.send(format!("220 {host} ESMTP Postfix (Debian/GNU)\r\n").as_bytes())
        .await?;
    loop {
        let line = c.line().await?;
        let (cmd, arg) = verb(&line);
        match cmd.as_slice() {
            b"EHLO" => {
                c.detail("helo", arg);
                let reply = format!(
                    "250-{host}\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                );
                c.send(reply.as_bytes()).await?;
            }
            b"HELO" => {
                c.detail("helo", arg);
                c.send(format!("250 {host}\r\n").as_bytes()).await?;
            }
            b"AUTH" => {
                let (mech, initial) = verb(arg);
                match mech.as_slice() {
                    b"PLAIN" => {
                        let token = if initial.is_empty() {
                            c.send(b"334 \r\n").await?;
                            c.line().await?
                        } else {
                            initial.to_vec()
                        };
                        let (user, pass) = plain(&b64(&token));
                        c.credential("auth_plain", &user, &pass)?;
                    }
                    b"LOGIN" => {
                        let user = if initial.is_empty() {
                            c.send(b"334 VXNlcm5hbWU6\r\n").await?;
                            b64(&c.line().await?)
                        } else {
                            b64(initial)
                        };
                        c.send(b"334 UGFzc3dvcmQ6\r\n").await?;
                        let pass = b64(&c.line().await?);
                        c.credential("auth_login", &user, &pass)?;
                    }
                    _ => {
                        c.command(&line);
                        c.send(b"504 5.5.4 Unrecognized authentication type\r\n")
                            .await?;
                        continue;
                    }
                }
                c.send(REFUSED).await?;
            }
            b"MAIL" => {
                c.command(&line);
                c.send(b"250 2.1.0 Ok\r\n").await?;
            }
            b"RCPT" => {
                c.command(&line);
                c.tag("smtp_relay_attempt");
                c.send(b"554 5.7.1 Relay access denied\r\n").await?;
            }
            b"DATA" => {
                c.command(&line);
                c.send(b"554 5.5.1 Error: no valid recipients\r\n").await?;
            }
            b"QUIT" => {
                c.send(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            b"RSET" | b"NOOP" => c.send(b"250 2.0.0 Ok\r\n").await?,
            _ => {
                c.command(&line);
                c.send(b"502 5.5.2 Error: command not recognized\r\n")
                    .await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_plain() {
        assert_eq!(plain(b"\0root\0toor"), (b"root".to_vec(), b"toor".to_vec()));
        assert_eq!(plain(b"a\0b\0c\0d"), (b"b".to_vec(), b"c\0d".to_vec()));
        assert_eq!(plain(b""), (Vec::new(), Vec::new()));
        assert_eq!(b64(b"AHJvb3QAdG9vcg=="), b"\0root\0toor");
    }
}
