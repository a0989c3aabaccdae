//! The UI: a few files embedded in the binary (nothing is loaded from elsewhere), the same
//! `index.html` for every page path (the script reads the path and query and calls the API),
//! and the headers every response carries — a Content-Security-Policy that allows only this
//! server's own scripts and styles (no inline script, no `eval`), so text from the internet that
//! ends up in a page can never run.
use std::{collections::HashMap, sync::LazyLock};

use axum::{
    Router,
    extract::{Path, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

/// The policy of every response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug)]
struct Asset {
    body: &'static [u8],
    mime: &'static str,
    etag: String,
}

macro_rules! assets {
    ($($name:literal => $mime:literal),* $(,)?) => {
        /// The embedded files by name.
        static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
            let mut m = HashMap::new();
            $(
                let body: &'static [u8] = include_bytes!(concat!("../web/", $name));
                let etag = format!("\"{}\"", &hex::encode(Sha256::digest(body))[..16]);
                m.insert($name, Asset { body, mime: $mime, etag });
            )*
            m
        });
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "login.html" => "text/html; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "chart.js" => "text/javascript; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(a) = ASSETS.get(name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == a.etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut r = a.body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    if let Ok(v) = HeaderValue::from_str(&a.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if name.ends_with(".html") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    serve(&name, &headers)
}

async fn favicon(headers: HeaderMap) -> Response {
    serve("favicon.svg", &headers)
}

/// The login page (when the console asks for a token).
pub fn login_page(headers: &HeaderMap) -> Response {
    serve("login.html", headers)
}

/// The UI's page paths (each a shareable URL) and its assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/search", get(page))
        .route("/ip/{ip}", get(page))
        .route("/port/{proto}/{port}", get(page))
        .route("/org/{name}", get(page))
        .route("/orgs", get(page))
        .route("/sensors", get(page))
        .route("/tor", get(page))
        .route("/assets/{name}", get(asset))
        .route("/favicon.svg", get(favicon))
}

/// Adds the security headers to every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_never_write_markup() {
        // The UI builds the DOM with createElement/textContent only: nothing from the API can
        // become markup. (The browser test checks the result; this keeps the code honest.)
        for name in ["app.js", "chart.js"] {
            let body = std::str::from_utf8(ASSETS[name].body).unwrap();
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "setAttribute(\"on",
                "srcdoc",
            ] {
                assert!(!body.contains(bad), "{name} uses {bad}");
            }
        }
        for name in ["index.html", "login.html"] {
            let body = std::str::from_utf8(ASSETS[name].body).unwrap();
            assert!(!body.contains("<script>"), "{name}: inline script");
            let handler = body.match_indices(" on").any(|(i, _)| {
                let rest = &body[i + 3..];
                let word = rest.chars().take_while(char::is_ascii_alphabetic).count();
                word > 0 && rest[word..].starts_with('=')
            });
            assert!(!handler, "{name}: an inline event handler");
            assert!(
                !body.contains("style=\""),
                "{name}: inline style (the CSP refuses it)"
            );
        }
    }
}
