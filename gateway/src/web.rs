//! The web client (`web/dist`, built from `web/`) served at `/` on the
//! public HTTP port. The files are compiled into the binary, so a gateway
//! serves the page with nothing beside it on disk; `web/dist` is committed,
//! so building the gateway needs no Node.js.
//!
//! Only GET and HEAD of the page's own files: `/` is `index.html` (never
//! cached, so a new gateway's page is picked up at once), `/assets/*` are
//! content-hashed names (cached for a year). Everything else is 404. The
//! page speaks the client protocol over `/ws` like any other client: it
//! gets no path around the gateway's limits.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "../web/dist"]
struct Dist;

/// What the page may load and connect to: its own files, and WebSockets
/// (the `?ws=` parameter may name another gateway).
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
                   style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The route handler: `uri`'s path, `/` meaning `index.html`.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(file) = Dist::get(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type(path))),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        file.data,
    )
        .into_response()
}

/// Whether the binary holds a page (false only if `web/dist` was empty
/// when it was built).
pub fn present() -> bool {
    Dist::get("index.html").is_some()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    #[tokio::test]
    async fn index_and_assets_are_served_with_their_types() {
        assert!(present(), "web/dist/index.html is compiled in");
        let index = serve(Uri::from_static("/")).await;
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(index.headers()[header::CACHE_CONTROL], "no-cache");
        let html = to_bytes(index.into_body(), 1 << 20).await.unwrap();
        let html = std::str::from_utf8(&html).unwrap();
        // Every asset the page names is served.
        let mut named = 0;
        for part in html.split('"').filter(|p| p.contains("assets/")) {
            let path = format!("/{}", part.trim_start_matches("./").trim_start_matches('/'));
            let asset = serve(path.parse().unwrap()).await;
            assert_eq!(asset.status(), StatusCode::OK, "{path}");
            assert!(
                asset.headers()[header::CACHE_CONTROL]
                    .to_str()
                    .unwrap()
                    .contains("immutable")
            );
            named += 1;
        }
        assert!(named >= 2, "index.html names its script and style: {html}");
    }

    #[tokio::test]
    async fn anything_else_is_not_found() {
        for path in [
            "/nope",
            "/assets/missing.js",
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
        ] {
            let r = serve(path.parse().unwrap()).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}
