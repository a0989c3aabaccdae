//! MySQL / MariaDB: a HandshakeV10 greeting (mysql_native_password, no TLS offered), the
//! client's HandshakeResponse41 (user, database, auth response), then ERR 1045.
//!
//! mysql_native_password never sends the password: the recorded secret is the 20-byte
//! response in hex, `SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw)))`, and the salt is recorded as a
//! `salt=` detail so the attempt can be checked against a word list offline.
use crate::respond::conn::{Conn, Step};

/// Capabilities offered: LONG_PASSWORD, FOUND_ROWS, LONG_FLAG, CONNECT_WITH_DB, ODBC,
/// PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION, PLUGIN_AUTH (no SSL).
const CAPS: u32 = 0x0000_0001
    | 0x0000_0002
    | 0x0000_0004
    | 0x0000_0008
    | 0x0000_0040
    | 0x0000_0200
    | 0x0000_2000
    | 0x0000_8000
    | 0x0008_0000;
const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x0020_0000;

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut p = n.to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

/// The greeting with this salt (20 bytes).
pub fn greeting(version: &str, thread: u32, salt: &[u8; 20]) -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(version.as_bytes());
    g.push(0);
    g.extend_from_slice(&thread.to_le_bytes());
    g.extend_from_slice(&salt[..8]);
    g.push(0);
    g.extend_from_slice(&(CAPS as u16).to_le_bytes());
    g.push(0x21); // utf8_general_ci
    g.extend_from_slice(&2u16.to_le_bytes()); // SERVER_STATUS_AUTOCOMMIT
    g.extend_from_slice(&((CAPS >> 16) as u16).to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(&salt[8..]);
    g.push(0);
    g.extend_from_slice(b"mysql_native_password\0");
    packet(0, &g)
}

/// What a HandshakeResponse says.
#[derive(Debug, PartialEq)]
pub struct Response {
    pub user: Vec<u8>,
    pub auth: Vec<u8>,
    pub database: Option<Vec<u8>>,
    /// The client asked for TLS (an SSLRequest): nothing more comes in the clear.
    pub ssl: bool,
}

fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&x| x == 0)?;
    Some((&b[..i], &b[i + 1..]))
}

/// Parses a HandshakeResponse41 (or 320) payload.
pub fn response(p: &[u8]) -> Option<Response> {
    let caps = u32::from(u16::from_le_bytes([*p.first()?, *p.get(1)?]));
    if caps & CLIENT_PROTOCOL_41 == 0 {
        // HandshakeResponse320: caps(2) max_packet(3) user\0 auth
        let (user, auth) = cstr(p.get(5..)?)?;
        return Some(Response {
            user: user.to_vec(),
            auth: auth.strip_suffix(&[0]).unwrap_or(auth).to_vec(),
            database: None,
            ssl: false,
        });
    }
    let caps = u32::from_le_bytes(p.get(..4)?.try_into().ok()?);
    if caps & CLIENT_SSL != 0 && p.len() <= 32 {
        return Some(Response {
            user: Vec::new(),
            auth: Vec::new(),
            database: None,
            ssl: true,
        });
    }
    let (user, rest) = cstr(p.get(32..)?)?;
    let (auth, rest) = if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
        let n = *rest.first()? as usize;
        if n >= 0xfb {
            return None;
        }
        (rest.get(1..1 + n)?, &rest[1 + n..])
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        let n = *rest.first()? as usize;
        (rest.get(1..1 + n)?, &rest[1 + n..])
    } else {
        cstr(rest)?
    };
    let database = if caps & CLIENT_CONNECT_WITH_DB != 0 {
        cstr(rest).map(|(d, _)| d.to_vec())
    } else {
        None
    };
    Some(Response {
        user: user.to_vec(),
        auth: auth.to_vec(),
        database,
        ssl: false,
    })
}

/// Greets, reads the login and refuses it.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    let salt: [u8; 20] = std::array::from_fn(|_| rand::random_range(b'!'..=b'~'));
    let thread = rand::random_range(1000..60_000);
    c.send(&greeting(&c.cfg.banners.mysql_version, thread, &salt))
        .await?;
    c.need(4).await?;
    let b = c.buffered();
    let len = u32::from_le_bytes([b[0], b[1], b[2], 0]) as usize;
    let seq = b[3];
    c.need(4 + len).await?;
    let Some(r) = response(&c.buffered()[4..4 + len]) else {
        c.tag("mysql_malformed");
        return Ok(());
    };
    c.consume(4 + len);
    if r.ssl {
        c.tag("mysql_ssl_request");
        return Ok(());
    }
    c.detail("salt", hex::encode(salt).as_bytes());
    if let Some(db) = &r.database {
        c.detail("database", db);
    }
    let host = c.rec.src_ip.to_string();
    let user = c.text(&r.user);
    let recorded = c.credential("mysql_native", &r.user, hex::encode(&r.auth).as_bytes());
    let mut err = vec![0xff];
    err.extend_from_slice(&1045u16.to_le_bytes());
    err.extend_from_slice(b"#28000");
    let using = if r.auth.is_empty() { "NO" } else { "YES" };
    err.extend_from_slice(
        format!("Access denied for user '{user}'@'{host}' (using password: {using})").as_bytes(),
    );
    c.send(&packet(seq.wrapping_add(1), &err)).await?;
    recorded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_and_response() {
        let g = greeting("5.7.44", 7, &[b'a'; 20]);
        assert_eq!(
            u32::from_le_bytes([g[0], g[1], g[2], 0]) as usize,
            g.len() - 4
        );
        assert_eq!(g[4], 10);
        // caps PROTOCOL_41|SECURE_CONNECTION|CONNECT_WITH_DB, max packet, charset, filler.
        let mut p = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_CONNECT_WITH_DB)
            .to_le_bytes()
            .to_vec();
        p.extend_from_slice(&[0, 0, 0, 1, 0x21]);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"root\0");
        p.push(3);
        p.extend_from_slice(&[1, 2, 3]);
        p.extend_from_slice(b"mysql\0");
        let r = response(&p).unwrap();
        assert_eq!(
            r,
            Response {
                user: b"root".to_vec(),
                auth: vec![1, 2, 3],
                database: Some(b"mysql".to_vec()),
                ssl: false
            }
        );
        assert!(response(&p[..33]).is_none());
        let ssl = (CLIENT_PROTOCOL_41 | CLIENT_SSL).to_le_bytes();
        let mut s = ssl.to_vec();
        s.extend_from_slice(&[0; 28]);
        assert!(response(&s).unwrap().ssl);
    }
}
