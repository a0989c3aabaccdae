//! SSH: the responder sends its identification line, reads the client's (its banner) and the
//! client's first binary packet, SSH_MSG_KEXINIT, which is sent in the clear before any key
//! exchange (RFC 4253 7.1). HASSH (Salesforce, BSD-3-Clause) is the MD5 of
//! `kex_algorithms;encryption_algorithms_client_to_server;mac_algorithms_client_to_server;
//! compression_algorithms_client_to_server` from that packet. The responder then closes: it
//! never completes a key exchange, so no channel, forwarding or login can ever succeed.
use md5::{Digest, Md5};

use crate::respond::conn::{Conn, Step};

/// SSH_MSG_KEXINIT.
const KEXINIT: u8 = 20;
/// Largest KEXINIT packet read (OpenSSH's are about 1.5 KiB).
const MAX_PACKET: usize = 16 << 10;

/// Exchanges identifications and reads the client's KEXINIT.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let ours = format!("{}\r\n", c.cfg.banners.ssh);
    c.send(ours.as_bytes()).await?;
    // The client may send other lines before its identification (RFC 4253 4.2).
    let mut banner = None;
    for _ in 0..8 {
        let line = c.line().await?;
        if line.starts_with(b"SSH-") {
            banner = Some(line);
            break;
        }
    }
    let Some(banner) = banner else {
        c.tag("ssh_no_banner");
        return Ok(());
    };
    c.rec.ssh_client_banner = Some(c.text(&banner));
    c.need(5).await?;
    let b = c.buffered();
    let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if !(2..=MAX_PACKET).contains(&len) {
        c.tag("ssh_bad_packet");
        return Ok(());
    }
    c.need(4 + len).await?;
    match kexinit(&c.buffered()[4..4 + len]) {
        Some(k) => c.rec.hassh = Some(hassh(&k)),
        None => c.tag("ssh_bad_packet"),
    }
    Ok(())
}

/// The name-lists of a client's KEXINIT, in packet order (kex, host key, enc c→s, enc s→c,
/// mac c→s, mac s→c, comp c→s, comp s→c, languages c→s, s→c).
pub fn kexinit(packet: &[u8]) -> Option<Vec<Vec<u8>>> {
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
    pub(crate) fn packet(lists: &[&str]) -> Vec<u8> {
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
    fn hassh_of_a_kexinit() {
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
        let k = kexinit(&p).expect("parses");
        assert_eq!(k.len(), 10);
        assert_eq!(k[2], b"aes128-ctr,aes256-gcm@openssh.com");
        let text = "curve25519-sha256,diffie-hellman-group14-sha256;aes128-ctr,aes256-gcm@openssh.com;hmac-sha2-256;none,zlib@openssh.com";
        assert_eq!(hassh(&k), hex::encode(Md5::digest(text.as_bytes())));
        assert!(kexinit(&p[..20]).is_none());
        assert!(kexinit(&[200, 20]).is_none());
    }
}
