//! VNC (RFB): the version handshake, VNC authentication with a random challenge, and a
//! failure. The 16-byte response (DES of the challenge under the password) is recorded as
//! `challenge:response` in hex, to be checked against a word list offline.
use crate::respond::conn::{Conn, Step};

/// Serves the handshake up to the refused authentication.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let ours = format!("{}\n", c.cfg.banners.vnc);
    c.send(ours.as_bytes()).await?;
    c.need(12).await?;
    let version = c.buffered()[..12].to_vec();
    c.consume(12);
    c.detail("rfb", version.strip_suffix(b"\n").unwrap_or(&version));
    let old = version.starts_with(b"RFB 003.003");
    if old {
        // 3.3: the server picks the type (u32 2 = VNC authentication).
        c.send(&[0, 0, 0, 2]).await?;
    } else {
        c.send(&[1, 2]).await?;
        c.need(1).await?;
        let chosen = c.buffered()[0];
        c.consume(1);
        if chosen != 2 {
            c.detail("rfb_security", chosen.to_string().as_bytes());
            c.send(&[0, 0, 0, 1]).await?;
            return Ok(());
        }
    }
    let challenge: [u8; 16] = rand::random();
    c.send(&challenge).await?;
    c.need(16).await?;
    let response = c.buffered()[..16].to_vec();
    c.consume(16);
    let secret = format!("{}:{}", hex::encode(challenge), hex::encode(&response));
    let recorded = c.credential("vnc_challenge", b"", secret.as_bytes());
    let mut fail = vec![0, 0, 0, 1];
    if !old {
        let reason = b"Authentication failed";
        fail.extend_from_slice(&(reason.len() as u32).to_be_bytes());
        fail.extend_from_slice(reason);
    }
    c.send(&fail).await?;
    recorded
}
