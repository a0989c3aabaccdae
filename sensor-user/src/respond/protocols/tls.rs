//! TLS on any port: the ClientHello (tls-parser) gives JA4, SNI, ALPN and the highest version
//! offered; the responder then ends the handshake with a `handshake_failure` alert.
//!
//! JA4 (FoxIO, BSD-3-Clause; `technical_details/JA4.md`):
//! `t` + version + `d`/`i` (SNI or not) + 2-digit cipher count + 2-digit extension count +
//! first and last character of the first ALPN value, `_`, the first 12 hex digits of SHA-256 of
//! the sorted cipher list, `_`, those of the sorted extension list (without SNI and ALPN) and,
//! after a `_`, the signature algorithms in the order sent. GREASE values are ignored
//! throughout.
use sha2::{Digest, Sha256};
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extension, parse_tls_plaintext,
};

use crate::{
    record::TlsHello,
    respond::conn::{Conn, Step},
};

/// Whether `data` starts like a TLS handshake record (content type 22, version 3.x).
pub fn looks_like(data: &[u8]) -> bool {
    data.len() >= 3 && data[0] == 0x16 && data[1] == 0x03 && data[2] <= 0x04
}

/// A fatal `handshake_failure` alert.
const ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];

/// Reads the ClientHello, records it and refuses the handshake.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    c.need(5).await?;
    let len = u16::from_be_bytes([c.buffered()[3], c.buffered()[4]]) as usize;
    c.need(5 + len).await?;
    match client_hello(&c.buffered()[..5 + len]) {
        Some(h) => {
            let h = TlsHello {
                sni: h.sni.map(|s| c.text(&s)),
                alpn: h.alpn.iter().map(|a| c.text(a)).collect(),
                ..h.hello
            };
            c.rec.tls = Some(h);
        }
        None => c.tag("tls_malformed"),
    }
    c.consume(5 + len);
    c.send(&ALERT).await
}

/// A parsed ClientHello: the record fields and the raw SNI and ALPN values.
#[derive(Debug)]
pub struct Hello {
    pub hello: TlsHello,
    pub sni: Option<Vec<u8>>,
    pub alpn: Vec<Vec<u8>>,
}

fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0200 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

fn version_name(v: u16) -> &'static str {
    match v {
        0x0304 => "1.3",
        0x0303 => "1.2",
        0x0302 => "1.1",
        0x0301 => "1.0",
        0x0300 => "ssl3",
        _ => "unknown",
    }
}

fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let d = Sha256::digest(s.as_bytes());
    hex::encode(d)[..12].to_string()
}

/// Parses one TLS record holding a ClientHello.
pub fn client_hello(record: &[u8]) -> Option<Hello> {
    let (_, plain) = parse_tls_plaintext(record).ok()?;
    let ch = plain.msg.iter().find_map(|m| match m {
        TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) => Some(ch),
        _ => None,
    })?;
    let ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .map(|c| c.0)
        .filter(|c| !grease(*c))
        .collect();
    // The extensions in wire order, each parsed on its own so that one tls-parser does not
    // know cannot hide the others.
    let mut types = Vec::new();
    let (mut sni, mut alpn, mut versions, mut sigs) = (None, Vec::new(), Vec::new(), Vec::new());
    let mut rest = ch.ext.unwrap_or_default();
    while rest.len() >= 4 {
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let n = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        if rest.len() < 4 + n {
            return None;
        }
        let (one, tail) = rest.split_at(4 + n);
        rest = tail;
        if grease(t) {
            continue;
        }
        types.push(t);
        match parse_tls_extension(one) {
            Ok((_, TlsExtension::SNI(names))) => {
                sni = names.first().map(|(_, n)| n.to_vec());
            }
            Ok((_, TlsExtension::ALPN(list))) => alpn = list.iter().map(|a| a.to_vec()).collect(),
            Ok((_, TlsExtension::SupportedVersions(v))) => {
                versions = v.iter().map(|v| v.0).filter(|v| !grease(*v)).collect();
            }
            Ok((_, TlsExtension::SignatureAlgorithms(s))) => sigs = s,
            _ => {}
        }
    }
    let version = versions.iter().copied().max().unwrap_or(ch.version.0);
    let alpn_code = match alpn.first() {
        None => "00".to_string(),
        Some(a) if a.is_empty() => "00".to_string(),
        Some(a) => {
            let (first, last) = (a[0], a[a.len() - 1]);
            if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
                format!("{}{}", first as char, last as char)
            } else {
                let h = hex::encode(a);
                format!("{}{}", &h[..1], &h[h.len() - 1..])
            }
        }
    };
    let hex4 = |v: &[u16]| {
        v.iter()
            .map(|x| format!("{x:04x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut sorted_ciphers = ciphers.clone();
    sorted_ciphers.sort_unstable();
    let mut sorted_ext: Vec<u16> = types
        .iter()
        .copied()
        .filter(|t| *t != 0 && *t != 16)
        .collect();
    sorted_ext.sort_unstable();
    let mut ext_text = hex4(&sorted_ext);
    if !sigs.is_empty() {
        ext_text = format!("{ext_text}_{}", hex4(&sigs));
    }
    let ext_hash = if sorted_ext.is_empty() {
        "000000000000".to_string()
    } else {
        hash12(&ext_text)
    };
    let ja4 = format!(
        "t{}{}{:02}{:02}{}_{}_{}",
        version_code(version),
        if types.contains(&0) { 'd' } else { 'i' },
        ciphers.len().min(99),
        types.len().min(99),
        alpn_code,
        hash12(&hex4(&sorted_ciphers)),
        ext_hash,
    );
    Some(Hello {
        hello: TlsHello {
            ja4,
            sni: None,
            alpn: Vec::new(),
            version: version_name(version).to_string(),
        },
        sni,
        alpn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ClientHello of FoxIO's JA4 reference example (`technical_details/JA4.md`): its
    /// ciphers, extensions and signature algorithms give
    /// `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    fn foxio_example() -> Vec<u8> {
        let ciphers: [u16; 15] = [
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let sigs: [u16; 8] = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let mut ext = Vec::new();
        let mut put = |t: u16, body: &[u8]| {
            ext.extend_from_slice(&t.to_be_bytes());
            ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
            ext.extend_from_slice(body);
        };
        put(0x0a0a, &[]); // GREASE
        let host = b"example.com";
        let mut sni = vec![];
        sni.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(host.len() as u16).to_be_bytes());
        sni.extend_from_slice(host);
        put(0x0000, &sni);
        put(0x0017, &[]);
        put(0xff01, &[0]);
        put(0x000a, &[0, 4, 0, 0x1d, 0, 0x17]);
        put(0x000b, &[1, 0]);
        put(0x0023, &[]);
        put(0x0010, b"\x00\x0c\x02h2\x08http/1.1");
        put(0x0005, &[1, 0, 0, 0, 0]);
        let mut sig = ((sigs.len() * 2) as u16).to_be_bytes().to_vec();
        sigs.iter()
            .for_each(|s| sig.extend_from_slice(&s.to_be_bytes()));
        put(0x000d, &sig);
        put(0x0012, &[]);
        put(0x0033, &[0, 0]);
        put(0x002d, &[1, 1]);
        put(0x002b, &[4, 0x03, 0x04, 0x03, 0x03]);
        put(0x001b, &[2, 0, 2]);
        put(0x0015, &[0, 0, 0]);
        put(0x4469, &[0, 3, 2, b'h', b'2']);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&((ciphers.len() * 2) as u16).to_be_bytes());
        ciphers
            .iter()
            .for_each(|c| body.extend_from_slice(&c.to_be_bytes()));
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn ja4_of_the_reference_example() {
        let rec = foxio_example();
        assert!(looks_like(&rec));
        let h = client_hello(&rec).expect("parses");
        assert_eq!(h.hello.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert_eq!(h.hello.version, "1.3");
        assert_eq!(h.sni.as_deref(), Some(&b"example.com"[..]));
        assert_eq!(h.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(client_hello(&rec[..rec.len() - 3]).is_none());
        assert!(client_hello(b"\x16\x03\x01\x00\x01\x00").is_none());
    }
}
