//! POP3: banner, USER/PASS (and APOP) recorded and refused; other commands recorded.
use super::verb;
use crate::respond::conn::{Conn, Step};

/// Serves until QUIT, the client stops or the attempt cap.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let banner = format!("{}\r\n", c.cfg.banners.pop3);
    c.send(banner.as_bytes()).await?;
    let mut user = Vec::new();
    loop {
        let line = c.line().await?;
        let (cmd, arg) = verb(&line);
        match cmd.as_slice() {
            b"USER" => {
                user = arg.to_vec();
                c.send(b"+OK\r\n").await?;
            }
            b"PASS" => {
                c.credential("password", &user, arg)?;
                c.send(b"-ERR [AUTH] Authentication failed.\r\n").await?;
            }
            b"APOP" => {
                let (name, digest) = verb(arg);
                c.credential("apop", &name, digest)?;
                c.send(b"-ERR [AUTH] Authentication failed.\r\n").await?;
            }
            b"CAPA" => c.send(b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n").await?,
            b"QUIT" => {
                c.send(b"+OK Logging out.\r\n").await?;
                return Ok(());
            }
            _ => {
                c.command(&line);
                c.send(b"-ERR Unknown command.\r\n").await?;
            }
        }
    }
}
