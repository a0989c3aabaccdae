//! RDP: the X.224 Connection Request (TPKT) — its `Cookie: mstshash=` user name and the
//! protocols the client asks for — answered with an RDP negotiation failure.
use crate::respond::conn::{Conn, Step};

/// Whether `data` starts like a TPKT carrying an X.224 Connection Request.
pub fn looks_like(data: &[u8]) -> bool {
    data.len() >= 6 && data[0] == 3 && data[1] == 0 && data[5] & 0xf0 == 0xe0
}

/// The cookie user name and the requested protocols of a Connection Request TPDU.
pub fn request(tpkt: &[u8]) -> (Option<Vec<u8>>, Option<u32>) {
    let body = tpkt.get(11..).unwrap_or_default();
    let mut user = None;
    let mut rest = body;
    if let Some(c) = body.strip_prefix(b"Cookie: mstshash=")
        && let Some(i) = c.windows(2).position(|w| w == b"\r\n")
    {
        user = Some(c[..i].to_vec());
        rest = &c[i + 2..];
    } else if let Some(i) = body.windows(2).position(|w| w == b"\r\n") {
        rest = &body[i + 2..];
    }
    let protocols = (rest.len() >= 8 && rest[0] == 1)
        .then(|| u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]));
    (user, protocols)
}

/// Reads the request and refuses the negotiation.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    c.need(4).await?;
    let len = u16::from_be_bytes([c.buffered()[2], c.buffered()[3]]) as usize;
    if len < 11 {
        c.tag("rdp_malformed");
        return Ok(());
    }
    c.need(len).await?;
    let (user, protocols) = request(&c.buffered()[..len]);
    c.consume(len);
    if let Some(u) = user {
        c.detail("mstshash", &u);
    }
    if let Some(p) = protocols {
        c.detail("rdp_protocols", p.to_string().as_bytes());
    }
    // X.224 Connection Confirm with RDP_NEG_FAILURE (HYBRID_REQUIRED_BY_SERVER).
    let cc = [
        3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 3, 0, 8, 0, 5, 0, 0, 0,
    ];
    c.send(&cc).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_and_protocols() {
        let mut r = vec![3, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0];
        r.extend_from_slice(b"Cookie: mstshash=administr\r\n");
        r.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
        let n = r.len() as u16;
        r[2..4].copy_from_slice(&n.to_be_bytes());
        assert!(looks_like(&r));
        assert_eq!(request(&r), (Some(b"administr".to_vec()), Some(3)));
        assert_eq!(request(&r[..11]), (None, None));
    }
}
