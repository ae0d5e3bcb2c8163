//! The web console, served by the API itself beside `/v1` (on Lambda and by `arca server`
//! alike): the files of `console/dist`, embedded at build time (`build.rs`), under `/`.
//!
//! Every path outside `/v1` that is not a file is a client route and gets `index.html`
//! (deep links work); a missing file that looks like one (`/assets/…`, a name with an
//! extension) is a 404 instead, so a stale page never runs HTML as a script. Hashed
//! assets are cached for a year, `index.html` never (a deploy is seen at once). Every
//! answer carries a strict Content-Security-Policy: scripts, styles and API calls from
//! this origin only, no inline code, no framing.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

mod assets {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

pub use assets::BUILT;

/// The console's Content-Security-Policy (docs/console.md, "Security").
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Names the answer given when the API was built without `console/dist`.
pub const NOT_BUILT_HEADER: &str = "x-arca-console";

const NOT_BUILT_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Arca console not built</title></head><body><h1>The Arca console is not built</h1>\
<p>This API was compiled without <code>console/dist</code>. Build the console, then the API again:</p>\
<pre>cd console &amp;&amp; npm ci &amp;&amp; npm run build\ncargo build -p arca-cli</pre>\
<p>(or <code>scripts/console.sh build</code>; see docs/console.md). The API itself works: <code>/v1</code>.</p>\
</body></html>";

/// The router's fallback: the console for GET/HEAD outside `/v1`, else the API's 404.
pub async fn serve(request: Request) -> Response {
    let path = request.uri().path();
    let is_api = path == "/v1" || path.starts_with("/v1/");
    if is_api || !matches!(*request.method(), Method::GET | Method::HEAD) {
        return crate::not_found(request).await.into_response();
    }
    if !BUILT {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT_PAGE).into_response();
        secure(&mut response, "text/html; charset=utf-8", "no-store");
        response
            .headers_mut()
            .insert(NOT_BUILT_HEADER, HeaderValue::from_static("not-built"));
        return response;
    }
    let wanted = if path == "/" { "/index.html" } else { path };
    if let Some((name, bytes)) = asset(wanted) {
        let cache = if name.starts_with("/assets/") {
            // Vite names these by content hash: a new build is a new name.
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return file(name, bytes, cache);
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if path.starts_with("/assets/") || last.contains('.') {
        let mut response = (StatusCode::NOT_FOUND, "not found\n").into_response();
        secure(&mut response, "text/plain; charset=utf-8", "no-store");
        return response;
    }
    match asset("/index.html") {
        Some((name, bytes)) => file(name, bytes, "no-cache"),
        None => crate::not_found(request).await.into_response(),
    }
}

fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    assets::ASSETS.iter().find(|(name, _)| *name == path).copied()
}

fn file(name: &str, bytes: &'static [u8], cache: &'static str) -> Response {
    let mut response = Response::new(Body::from(bytes));
    secure(&mut response, content_type(name), cache);
    response
}

fn secure(response: &mut Response, content_type: &'static str, cache: &'static str) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    fn app() -> axum::Router {
        crate::tests::router()
    }

    async fn get(path: &str) -> Response {
        app()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        String::from_utf8(
            axum::body::to_bytes(response.into_body(), 1 << 22)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/assets/index-abc.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("/assets/index-abc.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("/x.bin"), "application/octet-stream");
    }

    #[tokio::test]
    async fn api_paths_stay_problem_json_and_other_methods_are_not_the_console() {
        let response = get("/v1/nope").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let post = app()
            .oneshot(Request::post("/clusters").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::NOT_FOUND);
        assert_eq!(post.headers()["content-type"], "application/problem+json");
    }

    #[tokio::test]
    async fn client_routes_get_the_index_and_assets_their_type_and_cache() {
        let root = get("/").await;
        if !BUILT {
            // A build without console/dist: the page says how to build it.
            assert_eq!(root.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(root.headers()[NOT_BUILT_HEADER], "not-built");
            assert!(text(root).await.contains("npm run build"));
            return;
        }
        assert_eq!(root.status(), StatusCode::OK);
        assert_eq!(root.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(root.headers()["cache-control"], "no-cache");
        assert_eq!(root.headers()["content-security-policy"], CSP);
        let index = text(root).await;
        // A deep link to a client route is the same page.
        let deep = get("/clusters/cl_x").await;
        assert_eq!(deep.status(), StatusCode::OK);
        assert_eq!(text(deep).await, index);
        // Every script the page loads is served with its type and a long cache.
        let script = index
            .split("src=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("index.html loads a script");
        let js = get(script).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
        assert_eq!(js.headers()["cache-control"], "public, max-age=31536000, immutable");
        // A missing asset is a 404, not the index served as a script.
        let missing = get("/assets/gone-123.js").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/favicon.ico").await.status(), StatusCode::NOT_FOUND);
        // Health stays the API's.
        assert_eq!(get("/healthz").await.headers()["content-type"], "application/json");
    }
}
