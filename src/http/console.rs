//! The web console at `/console`: one page, its script and its style, all
//! in the binary, that reads the query API with the token its user gives.
//! It holds no data and no secret, so it is served without a token (and
//! with the API off, where it says how to turn it on); a
//! Content-Security-Policy lets it run no script but its own and reach no
//! server but this one.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::App;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");
const ICON: &str = include_str!("console/icon.svg");

/// Only this server's own script, style and API; no frames, no forms
/// posted anywhere, no `<base>`.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Each file of the console: its path, its type and its text.
const ASSETS: [(&str, &str, &str); 4] = [
    ("/console", "text/html; charset=utf-8", PAGE),
    ("/console/app.js", "text/javascript; charset=utf-8", SCRIPT),
    ("/console/app.css", "text/css; charset=utf-8", STYLE),
    ("/console/icon.svg", "image/svg+xml", ICON),
];

pub fn routes() -> Router<App> {
    // Relative, as every URL of the console: behind a proxy that serves
    // smshook under a path, `<path>/` leads to `<path>/console`.
    let root = Router::new().route("/", get(|| async { Redirect::to("console") }));
    ASSETS.into_iter().fold(root, |router, (path, kind, body)| {
        router.route(path, get(move || async move { asset(kind, body) }))
    })
}

/// `body` as `content_type`, under the policy, never sniffed, and checked
/// again on each use (a new smshook serves a new console at once).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}
