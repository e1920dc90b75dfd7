//! The small HTTP layer the three HTTP functions share (API Gateway HTTP API, payload
//! v2, through `lambda_http`).

use crate::context::{request_context, IpPolicy};
use crate::event::RequestContext;
use lambda_http::http::{header, StatusCode};
use lambda_http::request::RequestContext as GatewayContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::json;

/// Who made the request: source IP from the gateway (not a spoofable header) and the
/// user agent, reduced per the IP policy.
pub fn client_context(req: &Request, policy: IpPolicy) -> RequestContext {
    let source_ip = match req.request_context_ref() {
        Some(GatewayContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        _ => None,
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    request_context(source_ip.as_deref(), user_agent, policy)
}

/// A path parameter from the route (`/o/{token}`).
pub fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

/// A header's value as text.
pub fn header_str<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Text(serde_json::to_string(body).expect("serializable body")))
        .expect("valid response parts")
}

/// `{"error": {"code": ..., "message": ...}}`
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(status, &json!({"error": {"code": code, "message": message}}))
}
