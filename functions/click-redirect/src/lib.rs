//! The click redirect: `GET /c/{token}` sends the recipient to the destination signed
//! into the token and records the click. A token that does not verify gets a small
//! 400 page, never a redirect: this endpoint can't be used as an open redirect.

use beacon_aws::http::{client_context, path_param};
use beacon_domain::event::validate::trackable_url;
use beacon_domain::tracking::sink::EventSink;
use beacon_domain::tracking::token::{TokenError, TokenKind};
use beacon_domain::tracking::Tracker;
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Error, Request, Response};

/// What the click redirect holds: nothing but the [`Tracker`] (keys, sink, IP policy, range
/// lists), built once per process by `beacon_aws::kinesis::tracker`.
pub type ClickRedirectApp<S> = Tracker<S>;

pub async fn handle<S: EventSink>(
    tracker: &ClickRedirectApp<S>,
    req: Request,
) -> Result<Response<Body>, Error> {
    let token = path_param(&req, "token").unwrap_or_default();
    // The label is looked up on the full IP here, before the context anonymizes it.
    let context = client_context(&req, tracker.ip_policy, tracker.networks);
    let claim = match tracker
        .record(token, TokenKind::Click, context, chrono::Utc::now())
        .await
    {
        Ok(claim) => claim,
        Err(err) => return Ok(refused(&err)),
    };
    // The URL was checked when signed; check again so nothing but http(s) can leave here.
    let location = claim
        .url
        .as_deref()
        .and_then(trackable_url)
        .and_then(|u| url_header(&u));
    match location {
        Some(location) => Ok(Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::Empty)
            .expect("valid response parts")),
        None => Ok(refused(&TokenError::Malformed)),
    }
}

/// The ASCII form of the URL (non-ASCII percent-encoded), safe as a header value.
fn url_header(url: &str) -> Option<HeaderValue> {
    let parsed = url::Url::parse(url).ok()?;
    HeaderValue::from_str(parsed.as_str()).ok()
}

fn refused(err: &TokenError) -> Response<Body> {
    let detail = match err {
        // A link older than per-tenant keys, after the operator's legacy window.
        TokenError::Expired | TokenError::Retired => "This link has expired.",
        _ => "This link is not valid. It may have been changed or copied incompletely.",
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Link not valid</title>\
<meta name=\"viewport\" content=\"width=device-width\"></head>\
<body style=\"font-family:sans-serif;max-width:32em;margin:4em auto;padding:0 1em\">\
<h1 style=\"font-size:1.4em\">Link not valid</h1><p>{detail}</p></body></html>"
    );
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Text(page))
        .expect("valid response parts")
}
