//! The small HTTP layer the HTTP functions share (API Gateway HTTP API, payload
//! v2, through `lambda_http`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use beacon_domain::event::context::{request_context_in, IpPolicy};
use beacon_domain::event::RequestContext;
use beacon_domain::verdict::networks::Networks;
use lambda_http::http::{header, StatusCode};
use lambda_http::request::LambdaRequest;
use lambda_http::request::RequestContext as GatewayContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Who made the request: source IP from the gateway (not a spoofable header) and the
/// user agent, reduced per the IP policy, with the label `networks` give the full IP.
pub fn client_context(req: &Request, policy: IpPolicy, networks: &Networks) -> RequestContext {
    let source_ip = match req.request_context_ref() {
        Some(GatewayContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        _ => None,
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    request_context_in(source_ip.as_deref(), user_agent, policy, networks)
}

/// A path parameter from the route (`/o/{token}`).
pub fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

/// A header's value as text.
pub fn header_str<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The API key a request presents: `x-api-key: <key>`, or else
/// `Authorization: Bearer <key>` (the scheme in any case).
pub fn presented_api_key(req: &Request) -> Option<&str> {
    header_str(req, "x-api-key").or_else(|| {
        let auth = header_str(req, "authorization")?;
        let (scheme, key) = auth.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
    })
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Text(
            serde_json::to_string(body).expect("serializable body"),
        ))
        .expect("valid response parts")
}

/// `{"error": {"code": ..., "message": ...}}`
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// An HTTP request as API Gateway sees it, before it becomes a payload v2 event.
#[derive(Debug, Clone)]
pub struct GatewayRequest<'a> {
    pub method: &'a str,
    /// The route's path template (`/o/{token}`).
    pub route: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub path_params: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
    pub source_ip: &'a str,
}

/// The JSON event API Gateway (HTTP API, payload v2) sends to a function. Used by the
/// local gateway, and by tests and benchmarks that call handlers in-process.
pub fn api_gateway_v2_event(r: &GatewayRequest) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in r.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        // Repeated headers arrive joined by commas.
        headers
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(value)
            })
            .or_insert_with(|| value.clone());
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(r.query.as_bytes()) {
        query
            .entry(k.into_owned())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v)
            })
            .or_insert_with(|| v.into_owned());
    }
    let (body, encoded) = match std::str::from_utf8(r.body) {
        _ if r.body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_string()), false),
        Err(_) => (Value::String(BASE64.encode(r.body)), true),
    };
    let now = chrono::Utc::now();
    let route_key = format!("{} {}", r.method, r.route);
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let host = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(route_key));
    event.insert("rawPath".into(), json!(r.path));
    event.insert("rawQueryString".into(), json!(r.query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), json!(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    if !r.path_params.is_empty() {
        event.insert("pathParameters".into(), json!(r.path_params));
    }
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or("localhost"),
            "http": {
                "method": r.method,
                "path": r.path,
                "protocol": "HTTP/1.1",
                "sourceIp": r.source_ip,
                "userAgent": user_agent,
            },
            "requestId": beacon_domain::event::new_event_id(),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        }),
    );
    if !body.is_null() {
        event.insert("body".into(), body);
    }
    event.insert("isBase64Encoded".into(), json!(encoded));
    Value::Object(event)
}

/// The `lambda_http` request a function receives for `r`, converted by `lambda_http`
/// itself from the payload v2 event.
pub fn lambda_request(r: &GatewayRequest) -> Request {
    let payload: LambdaRequest =
        serde_json::from_value(api_gateway_v2_event(r)).expect("a payload v2 event deserializes");
    payload.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        lambda_request(&GatewayRequest {
            method: "GET",
            route: "/v1/campaigns",
            path: "/v1/campaigns",
            query: "",
            headers: &headers,
            path_params: &BTreeMap::new(),
            body: b"",
            source_ip: "192.0.2.1",
        })
    }

    #[test]
    fn api_key_from_either_header() {
        assert_eq!(
            presented_api_key(&request(&[("x-api-key", "bk_a")])),
            Some("bk_a")
        );
        assert_eq!(
            presented_api_key(&request(&[("Authorization", "Bearer bk_b")])),
            Some("bk_b")
        );
        assert_eq!(
            presented_api_key(&request(&[("authorization", "bearer  bk_c")])),
            Some("bk_c")
        );
        assert_eq!(
            presented_api_key(&request(&[
                ("x-api-key", "bk_a"),
                ("authorization", "Bearer bk_b")
            ])),
            Some("bk_a")
        );
        assert_eq!(
            presented_api_key(&request(&[("authorization", "Basic eDp5")])),
            None
        );
        assert_eq!(presented_api_key(&request(&[])), None);
    }
}
