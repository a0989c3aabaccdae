//! HTTP/1.x on any port: the request's method, target, Host and User-Agent (httparse), and
//! a small, plausible answer. Nothing of the request is interpreted beyond that.
use crate::record::HttpRequest;

/// Most headers parsed.
const MAX_HEADERS: usize = 64;
/// Longest text kept of any field.
const MAX_FIELD: usize = 1024;

/// Whether `data` starts like an HTTP/1.x request line (an upper-case token and a space).
pub fn looks_like(data: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS.iter().any(|m| data.starts_with(m))
}

/// The parse of a request whose head is complete (`None`: incomplete or not HTTP).
pub fn parse(data: &[u8]) -> Option<HttpRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(data) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let text = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        s.chars().take(MAX_FIELD).collect::<String>()
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| text(h.value))
    };
    Some(HttpRequest {
        method: req.method.map(|m| text(m.as_bytes())).unwrap_or_default(),
        url: req.path.map(|p| text(p.as_bytes())).unwrap_or_default(),
        version: req.version.map_or(0, |v| 10 + v),
        host: header("host"),
        user_agent: header("user-agent"),
        headers: req
            .headers
            .iter()
            .map(|h| text(h.name.as_bytes()))
            .collect(),
    })
}

/// Whether a request head is complete (ends with an empty line).
pub fn head_complete(data: &[u8]) -> bool {
    data.windows(4).any(|w| w == b"\r\n\r\n") || data.windows(2).any(|w| w == b"\n\n")
}

/// The answer: a small default page, closed after it (no keep-alive: one request a session).
pub fn answer(server: &str) -> Vec<u8> {
    const BODY: &str = "<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\
<body><h1>It works!</h1></body></html>\n";
    format!(
        "HTTP/1.1 200 OK\r\nServer: {server}\r\nContent-Type: text/html\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_non_requests() {
        let r = b"GET /shell?cd+/tmp HTTP/1.1\r\nHost: 198.18.0.1:8080\r\nUser-Agent: Hello, World\r\nAccept: */*\r\n\r\n";
        assert!(looks_like(r) && head_complete(r));
        let p = parse(r).unwrap();
        assert_eq!(
            (p.method.as_str(), p.url.as_str(), p.version),
            ("GET", "/shell?cd+/tmp", 11)
        );
        assert_eq!(p.host.as_deref(), Some("198.18.0.1:8080"));
        assert_eq!(p.user_agent.as_deref(), Some("Hello, World"));
        assert_eq!(p.headers, ["Host", "User-Agent", "Accept"]);
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n").is_none(),
            "incomplete"
        );
        assert!(!looks_like(b"\x16\x03\x01\x00"));
        assert!(parse(b"\x16\x03\x01\x02\x00\r\n\r\n").is_none());
        let a = String::from_utf8(answer("nginx")).unwrap();
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n") && a.contains("Connection: close"));
    }
}
