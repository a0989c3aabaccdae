//! FTP: banner, USER/PASS recorded and refused (530); every other command recorded and answered
//! "please login", so no data connection (PORT, PASV) is ever made.
use super::verb;
use crate::respond::conn::{Conn, Step};

/// Serves until QUIT, the client stops or the attempt cap.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let banner = format!("{}\r\n", c.cfg.banners.ftp);
    c.send(banner.as_bytes()).await?;
    let mut user = Vec::new();
    loop {
        let line = c.line().await?;
        let (cmd, arg) = verb(&line);
        match cmd.as_slice() {
            b"USER" => {
                user = arg.to_vec();
                c.send(b"331 Please specify the password.\r\n").await?;
            }
            b"PASS" => {
                c.credential("password", &user, arg)?;
                c.send(b"530 Login incorrect.\r\n").await?;
            }
            b"QUIT" => {
                c.send(b"221 Goodbye.\r\n").await?;
                return Ok(());
            }
            _ => {
                c.command(&line);
                c.send(b"530 Please login with USER and PASS.\r\n").await?;
            }
        }
    }
}
