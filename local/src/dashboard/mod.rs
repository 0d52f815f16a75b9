//! dashboard: the emulator's web pages at `http://127.0.0.1:<port>/ui`: queues and their
//! messages, dead letters with their reasons and redrive, functions and their invocations with
//! event, answer and logs, schedules with their next fires, the clock.
//!
//! The pages are one HTML shell and one script, embedded in the binary (no build step, no CDN,
//! works offline). Every URL under `/ui/` serves the shell and the script draws the page the
//! path names, so a link to a queue, a function or an invocation can be shared. The script
//! reads and acts through the control endpoint ([`crate::control`]), the same routes the CLI
//! and the harness use: the dashboard adds no second implementation of any behaviour.
//!
//! [`guard`] keeps other web pages out: a page on another origin (or a DNS name rebound to
//! 127.0.0.1) must not be able to purge your queues. It checks the `Host`, the `Origin` and
//! `Sec-Fetch-Site` headers, and a per-run token that only the shell carries.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::emulator::Emulator;

/// The header a browser's state-changing request carries the per-run token in.
pub const TOKEN_HEADER: &str = "x-nightshift-token";

const SHELL: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The pages and their assets.
pub fn router(emulator: Arc<Emulator>) -> Router {
    Router::new()
        .route("/ui", get(shell))
        .route("/ui/", get(shell))
        .route("/ui/assets/app.js", get(script))
        .route("/ui/assets/app.css", get(style))
        .route("/ui/{*page}", get(shell))
        .with_state(emulator)
}

async fn shell(State(e): State<Arc<Emulator>>) -> Response {
    let page = SHELL.replace("{{TOKEN}}", e.token());
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(page),
    )
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Refuses what a page of another site could make a browser send to the control endpoint
/// and the dashboard:
/// - a `Host` that is not a loopback name (a DNS-rebinding page reaches 127.0.0.1 under its
///   own name);
/// - a state-changing request (not GET or HEAD) whose `Origin` is not this endpoint, or that
///   the browser marks `Sec-Fetch-Site: cross-site` or `same-site`;
/// - a state-changing request from a browser (it sends `Origin`) without the per-run token
///   the dashboard's page holds.
///
/// Programs (the CLI, the harness, curl) send no `Origin` and pass with the `Host` check.
pub async fn guard(State(e): State<Arc<Emulator>>, request: Request, next: Next) -> Response {
    if let Err(reason) = check(request.method(), request.headers(), e.token()) {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({ "error": reason })),
        )
            .into_response();
    }
    next.run(request).await
}

fn check(method: &Method, headers: &HeaderMap, token: &str) -> Result<(), String> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).unwrap_or("");
    if !host.is_empty() && !is_loopback_host(host) {
        return Err(format!(
            "host {host} is not a loopback address: the emulator answers 127.0.0.1 and localhost only"
        ));
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && matches!(site, "cross-site" | "same-site")
    {
        return Err(format!("refused a {site} request"));
    }
    let Some(origin) = text(header::ORIGIN) else {
        return Ok(());
    };
    let origin_host = origin
        .strip_prefix("http://")
        .unwrap_or("")
        .trim_end_matches('/');
    if origin_host != host || !is_loopback_host(origin_host) {
        return Err(format!("refused a request from origin {origin}"));
    }
    if headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) != Some(token) {
        return Err(format!(
            "a browser request must carry the dashboard's {TOKEN_HEADER} header"
        ));
    }
    Ok(())
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn programs_and_reads_pass() {
        let cli = headers(&[("host", "127.0.0.1:9324")]);
        assert!(check(&Method::POST, &cli, "t").is_ok());
        let page_read = headers(&[("host", "localhost:9324"), ("origin", "http://evil.test")]);
        assert!(check(&Method::GET, &page_read, "t").is_ok());
    }

    #[test]
    fn the_dashboard_passes_with_its_token() {
        let ours = headers(&[
            ("host", "127.0.0.1:9324"),
            ("origin", "http://127.0.0.1:9324"),
            ("sec-fetch-site", "same-origin"),
            (TOKEN_HEADER, "t"),
        ]);
        assert!(check(&Method::POST, &ours, "t").is_ok());
    }

    #[test]
    fn other_sites_are_refused() {
        let cross = headers(&[("host", "127.0.0.1:9324"), ("origin", "http://evil.test")]);
        assert!(check(&Method::POST, &cross, "t").is_err());
        let no_token = headers(&[
            ("host", "127.0.0.1:9324"),
            ("origin", "http://127.0.0.1:9324"),
        ]);
        assert!(check(&Method::POST, &no_token, "t").is_err());
        let marked = headers(&[("host", "127.0.0.1:9324"), ("sec-fetch-site", "cross-site")]);
        assert!(check(&Method::POST, &marked, "t").is_err());
        let rebound = headers(&[("host", "evil.test:9324")]);
        assert!(check(&Method::GET, &rebound, "t").is_err());
    }
}
