//! The dashboard: its page and assets, embedded in the binary at build time (one
//! deployable unit, the stats API's origin), and the sessions its links open.
//!
//! `GET /dashboard/open?t=<link token>` checks the link ([`admit`]) and answers with the
//! session cookie and a redirect to the page, so the token leaves the address bar and
//! the history at once. The page's scripts never see the cookie (HttpOnly); their
//! requests to `/v1/...` carry it, and the stats API answers them for the link's scope.
//! Nothing is loaded from another origin: the Content-Security-Policy says so.

use beacon_aws::http::header_str;
use beacon_domain::dashboard::access::{
    admit, cleared_cookie, session_cookie, session_token, Link, LinkError, LinkStore,
    LinkStoreError,
};
use beacon_domain::metrics;
use beacon_domain::tracking::token::Keyring;
use chrono::{DateTime, Utc};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use std::io::Write;
use std::sync::LazyLock;

/// What the dashboard needs: the link keys (`None`: dashboard links are off in this
/// deployment), where links are recorded, the live view, and the alerts table (for
/// the deliverability page's alert states).
pub struct Dashboard<L, V, A> {
    pub keys: Option<Keyring>,
    pub links: L,
    pub live: V,
    pub alerts: A,
}

/// Dashboard links off (no keys): only API keys are answered.
impl<L: Default, V: Default, A: Default> Default for Dashboard<L, V, A> {
    fn default() -> Self {
        Dashboard {
            keys: None,
            links: L::default(),
            live: V::default(),
            alerts: A::default(),
        }
    }
}

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../dashboard/", $name)),
        }
    };
}

const PAGE: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Everything under `/dashboard/assets/`.
const ASSETS: [Asset; 4] = [
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
];

/// Each asset gzipped, once per container (the page is a few tens of KB).
static GZIPPED: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    std::iter::once(&PAGE)
        .chain(ASSETS.iter())
        .map(|a| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(a.bytes).expect("writing to memory");
            gz.finish().expect("writing to memory")
        })
        .collect()
});

/// The content-security policy of every dashboard response: scripts, styles, images
/// and requests from this origin only (uPlot sets element styles from script, which
/// the policy allows; inline `<style>`/`style=` markup is not used).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether `path` belongs to the dashboard rather than the API.
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

fn with_headers(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // The open URL holds the token: no page of the dashboard passes its address on.
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn asset_response(req: &Request, index: usize, asset: &Asset) -> Response<Body> {
    let gzip = header_str(req, "accept-encoding").is_some_and(|v| v.contains("gzip"));
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, asset.content_type)
        // Assets change with each deployment and have no hashed names: revalidate.
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::VARY, "accept-encoding");
    let response = if gzip {
        builder
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::Binary(GZIPPED[index].clone()))
    } else {
        builder.body(Body::Binary(asset.bytes.to_vec()))
    };
    with_headers(response.expect("static headers"))
}

/// A small page for a refused link (the dashboard itself cannot load without one).
fn refusal_page(status: StatusCode, message: &str) -> Response<Body> {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Beacon dashboard</title><link rel=\"stylesheet\" href=\"/dashboard/assets/app.css\"></head>\
         <body><main class=\"refused\"><h1>Beacon</h1><p role=\"alert\">{escaped}</p>\
         <p>Dashboard links are made with <code>beacon dashboard link</code>; ask whoever sent you this one for a new link.</p>\
         </main></body></html>"
    );
    with_headers(
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::Text(html))
            .expect("static headers"),
    )
}

fn redirect(to: &str, cookie: Option<String>) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(c) = cookie {
        b = b.header(header::SET_COOKIE, c);
    }
    with_headers(b.body(Body::Empty).expect("static headers"))
}

/// The verdict on a request's session cookie: `None` without one.
pub async fn session<L: LinkStore, V, A>(
    d: &Dashboard<L, V, A>,
    req: &Request,
    now: i64,
) -> Option<Result<Result<Link, LinkError>, LinkStoreError>> {
    let token = session_token(
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )?;
    let Some(keys) = &d.keys else {
        return Some(Ok(Err(LinkError::Malformed)));
    };
    Some(admit(keys, &d.links, token, now).await)
}

/// Answers a request under `/dashboard`.
pub async fn serve<L: LinkStore, V, A>(
    d: &Dashboard<L, V, A>,
    req: &Request,
    path: &str,
    now: DateTime<Utc>,
) -> Response<Body> {
    match (req.method(), path.trim_end_matches('/')) {
        (&Method::GET | &Method::HEAD, "/dashboard") if !path.ends_with('/') => {
            redirect("/dashboard/", None)
        }
        (&Method::GET | &Method::HEAD, "/dashboard") => asset_response(req, 0, &PAGE),
        (&Method::GET, "/dashboard/open") => open(d, req, now).await,
        (&Method::POST, "/dashboard/signout") => redirect("/dashboard/", Some(cleared_cookie())),
        (&Method::GET | &Method::HEAD, p) => {
            let name = p.strip_prefix("/dashboard/assets/").unwrap_or_default();
            match ASSETS.iter().position(|a| a.name == name) {
                Some(i) => asset_response(req, i + 1, &ASSETS[i]),
                None => refusal_page(StatusCode::NOT_FOUND, "There is no such page."),
            }
        }
        _ => refusal_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "That is not something a dashboard does.",
        ),
    }
}

async fn open<L: LinkStore, V, A>(
    d: &Dashboard<L, V, A>,
    req: &Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    let token = req
        .query_string_parameters_ref()
        .and_then(|q| q.first("t"))
        .unwrap_or_default()
        .to_string();
    let Some(keys) = &d.keys else {
        return refusal_page(
            StatusCode::NOT_FOUND,
            "Dashboard links are not set up in this deployment.",
        );
    };
    match admit(keys, &d.links, &token, now.timestamp()).await {
        Ok(Ok(link)) => {
            metrics::count("DashboardLinksOpened", 1, &[]);
            let to = match &link.campaign {
                Some(c) => format!("/dashboard/#/campaign/{}", encode_fragment(c)),
                None => "/dashboard/".to_string(),
            };
            redirect(&to, Some(session_cookie(&token, &link, now)))
        }
        Ok(Err(e)) => {
            metrics::count("DashboardLinksRefused", 1, &[("Reason", e.reason())]);
            tracing::warn!(reason = e.reason(), "dashboard link refused");
            refusal_page(StatusCode::FORBIDDEN, &e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard link lookup failed");
            refusal_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The dashboard is unavailable; try the link again shortly.",
            )
        }
    }
}

/// Percent-encodes a campaign id for a URL fragment.
fn encode_fragment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
