//! HTTP/1.x on any port: the request's method, target, Host, User-Agent and header order
//! (httparse), Basic-auth credentials, and a small, plausible answer (401 to a request that
//! sent credentials, so no login ever succeeds). One request a session.
use base64::Engine;

use crate::{
    record::HttpRequest,
    respond::conn::{Conn, Step},
};

/// Most headers parsed.
const MAX_HEADERS: usize = 64;

/// Serves one request.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    while !head_complete(c.buffered()) {
        c.fill().await?;
    }
    let Some(req) = parse(c.buffered()) else {
        c.tag("http_malformed");
        let answer = status(400, "Bad Request", &c.cfg.banners.http_server, "");
        return c.send(&answer).await;
    };
    let basic = basic_auth(c.buffered());
    c.rec.http = Some(req);
    let answer = match basic {
        Some((user, pass)) => {
            c.tag("http_basic_auth");
            c.credential("http_basic", &user, &pass)?;
            status(
                401,
                "Unauthorized",
                &c.cfg.banners.http_server,
                "WWW-Authenticate: Basic realm=\"Restricted\"\r\n",
            )
        }
        None => answer(&c.cfg.banners.http_server),
    };
    c.send(&answer).await
}

/// The user and password of an `Authorization: Basic` header.
pub fn basic_auth(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(data).ok()?;
    let value = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))?
        .value;
    let token = value
        .strip_prefix(b"Basic ")
        .or_else(|| value.strip_prefix(b"basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

fn status(code: u16, reason: &str, server: &str, extra: &str) -> Vec<u8> {
    let body = format!(
        "<html><head><title>{code} {reason}</title></head><body><h1>{reason}</h1></body></html>\n"
    );
    format!(
        "HTTP/1.1 {code} {reason}\r\nServer: {server}\r\n{extra}Content-Type: text/html\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

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
    let text = |b: &[u8]| crate::respond::conn::text(b).0;
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
        let auth = b"GET /admin HTTP/1.1\r\nAuthorization: Basic cm9vdDphZG1pbjpwdw==\r\n\r\n";
        assert_eq!(
            basic_auth(auth),
            Some((b"root".to_vec(), b"admin:pw".to_vec()))
        );
        assert_eq!(basic_auth(r), None);
    }
}
