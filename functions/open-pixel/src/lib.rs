//! The open pixel: `GET /o/{token}` always answers with a transparent GIF, so a mail
//! client never shows a broken image; the open is recorded only when the token verifies.

use beacon_aws::http::{client_context, path_param};
use beacon_domain::tracking::sink::EventSink;
use beacon_domain::tracking::token::TokenKind;
use beacon_domain::tracking::{Tracker, PIXEL_GIF};
use lambda_http::http::header;
use lambda_http::{Body, Error, Request, Response};

/// What the open pixel holds: nothing but the [`Tracker`] (keys, sink, IP policy, range
/// lists), built once per process by `beacon_aws::kinesis::tracker`.
pub type OpenPixelApp<S> = Tracker<S>;

pub async fn handle<S: EventSink>(
    tracker: &OpenPixelApp<S>,
    req: Request,
) -> Result<Response<Body>, Error> {
    let token = path_param(&req, "token").unwrap_or_default();
    // Some senders append `.gif` so strict clients see an image URL.
    let token = token.strip_suffix(".gif").unwrap_or(token);
    // The label is looked up on the full IP here, before the context anonymizes it.
    let context = client_context(&req, tracker.ip_policy, tracker.networks);
    let _ = tracker
        .record(token, TokenKind::Open, context, chrono::Utc::now())
        .await;
    Ok(pixel())
}

fn pixel() -> Response<Body> {
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "image/gif")
        // Every open must reach us: no browser, proxy or CDN may cache the pixel.
        .header(
            header::CACHE_CONTROL,
            "no-store, no-cache, must-revalidate, private, max-age=0",
        )
        .header(header::PRAGMA, "no-cache")
        .header(header::EXPIRES, "0")
        .body(Body::Binary(PIXEL_GIF.to_vec()))
        .expect("valid response parts")
}
