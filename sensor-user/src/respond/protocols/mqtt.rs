//! MQTT: the CONNECT packet (client id, user, password; 3.1, 3.1.1 and 5), answered with
//! CONNACK "not authorized".
use crate::respond::conn::{Conn, Step};

/// The remaining length of a fixed header (`(value, header bytes)`), `None` if incomplete or
/// longer than four bytes.
fn remaining(b: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for i in 0..4 {
        let x = *b.get(1 + i)?;
        v |= usize::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, 2 + i));
        }
    }
    None
}

/// Whether `data` starts like a CONNECT packet.
pub fn looks_like(data: &[u8]) -> bool {
    if data.first() != Some(&0x10) {
        return false;
    }
    let Some((_, h)) = remaining(data) else {
        return false;
    };
    let name = data.get(h..);
    name.is_some_and(|n| n.starts_with(b"\x00\x04MQTT") || n.starts_with(b"\x00\x06MQIsdp"))
}

/// What a CONNECT says.
#[derive(Debug, PartialEq, Default)]
pub struct Connect {
    pub level: u8,
    pub client_id: Vec<u8>,
    pub user: Option<Vec<u8>>,
    pub password: Option<Vec<u8>>,
}

fn string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
    Some((b.get(2..2 + n)?, &b[2 + n..]))
}

fn varint(b: &[u8]) -> Option<(usize, &[u8])> {
    let mut v = 0usize;
    for i in 0..4 {
        let x = *b.get(i)?;
        v |= usize::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// Parses the variable header and payload of a CONNECT.
pub fn connect(body: &[u8]) -> Option<Connect> {
    let (_, rest) = string(body)?;
    let level = *rest.first()?;
    let flags = *rest.get(1)?;
    let mut rest = rest.get(4..)?;
    if level == 5 {
        let (n, r) = varint(rest)?;
        rest = r.get(n..)?;
    }
    let (client_id, mut rest) = string(rest)?;
    if flags & 0x04 != 0 {
        if level == 5 {
            let (n, r) = varint(rest)?;
            rest = r.get(n..)?;
        }
        let (_topic, r) = string(rest)?;
        let (_msg, r) = string(r)?;
        rest = r;
    }
    let mut user = None;
    if flags & 0x80 != 0 {
        let (u, r) = string(rest)?;
        user = Some(u.to_vec());
        rest = r;
    }
    let password = if flags & 0x40 != 0 {
        Some(string(rest)?.0.to_vec())
    } else {
        None
    };
    Some(Connect {
        level,
        client_id: client_id.to_vec(),
        user,
        password,
    })
}

/// Reads the CONNECT and refuses it.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let (len, h) = loop {
        if let Some(x) = remaining(c.buffered()) {
            break x;
        }
        if c.buffered().len() >= 5 {
            c.tag("mqtt_malformed");
            return Ok(());
        }
        c.fill().await?;
    };
    c.need(h + len).await?;
    let Some(p) = connect(&c.buffered()[h..h + len]) else {
        c.tag("mqtt_malformed");
        return Ok(());
    };
    c.consume(h + len);
    c.detail("client_id", &p.client_id);
    c.detail("mqtt_level", p.level.to_string().as_bytes());
    let recorded = if p.user.is_some() || p.password.is_some() {
        c.credential(
            "password",
            p.user.as_deref().unwrap_or_default(),
            p.password.as_deref().unwrap_or_default(),
        )
    } else {
        Ok(())
    };
    // CONNACK: 3.x return code 5, 5.0 reason 0x87 (not authorized).
    let ack: &[u8] = if p.level == 5 {
        &[0x20, 0x03, 0x00, 0x87, 0x00]
    } else {
        &[0x20, 0x02, 0x00, 0x05]
    };
    c.send(ack).await?;
    recorded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_packets() {
        // 3.1.1, user + password, client id "pub1".
        let mut body = b"\x00\x04MQTT\x04\xc2\x00\x3c".to_vec();
        for s in [&b"pub1"[..], b"admin", b"secret"] {
            body.extend_from_slice(&(s.len() as u16).to_be_bytes());
            body.extend_from_slice(s);
        }
        let mut pkt = vec![0x10, body.len() as u8];
        pkt.extend_from_slice(&body);
        assert!(looks_like(&pkt));
        assert_eq!(
            connect(&body),
            Some(Connect {
                level: 4,
                client_id: b"pub1".to_vec(),
                user: Some(b"admin".to_vec()),
                password: Some(b"secret".to_vec()),
            })
        );
        assert!(connect(&body[..body.len() - 2]).is_none());
        assert_eq!(remaining(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), None);
    }
}
