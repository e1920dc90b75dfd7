//! A local stand-in for API Gateway (HTTP API, payload v2): it listens on loopback,
//! matches the template's routes, turns each HTTP request into the JSON event API
//! Gateway would send, invokes the function's handler the way the Lambda runtime does,
//! and turns the function's answer back into HTTP.

use crate::functions::HttpFunction;
use crate::stack::Stack;
use anyhow::{Context as _, Result};
use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use beacon_aws::http::{api_gateway_v2_event, GatewayRequest};
use lambda_http::request::LambdaRequest;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// API Gateway HTTP APIs refuse payloads over 10 MB.
const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

struct RouteEntry {
    method: Method,
    path: String,
    segments: Vec<Segment>,
    function: Arc<HttpFunction>,
}

enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: the rest of the path.
    Greedy(String),
}

fn parse_route(path: &str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy.to_string()),
                    None => Segment::Param(name.to_string()),
                },
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

fn match_route(segments: &[Segment], path: &str) -> Option<BTreeMap<String, String>> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut params = BTreeMap::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Literal(lit) => {
                if parts.get(i) != Some(&lit.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let part = parts.get(i).filter(|p| !p.is_empty())?;
                params.insert(name.clone(), decode(part));
            }
            Segment::Greedy(name) => {
                let rest = parts.get(i..)?.join("/");
                params.insert(name.clone(), decode(&rest));
                return Some(params);
            }
        }
    }
    (parts.len() == segments.len()).then_some(params)
}

fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// Options for a local gateway.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Take the client address from `X-Forwarded-For` (simulations of many clients).
    pub trust_forwarded_for: bool,
}

struct Gateway {
    routes: Vec<RouteEntry>,
    options: GatewayOptions,
}

/// A running gateway; dropping it does not stop it, [`RunningGateway::stop`] does.
pub struct RunningGateway {
    pub url: String,
    pub routes: Vec<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

/// Builds every HTTP function of `stack` and serves their routes on `addr`.
pub async fn start(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    addr: SocketAddr,
    options: GatewayOptions,
) -> Result<RunningGateway> {
    let mut routes = Vec::new();
    for (name, function) in &stack.functions {
        if function.routes.is_empty() {
            continue;
        }
        let built = Arc::new(
            HttpFunction::build(function, aws)
                .await
                .with_context(|| format!("function {name}"))?,
        );
        for route in &function.routes {
            routes.push(RouteEntry {
                method: route
                    .method
                    .parse()
                    .with_context(|| format!("method of {name}"))?,
                path: route.path.clone(),
                segments: parse_route(&route.path),
                function: built.clone(),
            });
        }
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let route_keys = routes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let gateway = Arc::new(Gateway { routes, options });
    let app = axum::Router::new().fallback(dispatch).with_state(gateway);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "local gateway stopped");
        }
    });
    Ok(RunningGateway {
        url: format!("http://{local}"),
        routes: route_keys,
        shutdown: Some(tx),
        task,
    })
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"message": message}).to_string(),
    )
        .into_response()
}

async fn dispatch(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let Some((route, params)) = gateway
        .routes
        .iter()
        .filter(|r| r.method == parts.method)
        .find_map(|r| match_route(&r.segments, &path).map(|p| (r, p)))
    else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_PAYLOAD).await else {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let source_ip = gateway
        .options
        .trust_forwarded_for
        .then(|| {
            parts
                .headers
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .split(',')
                .next()
                .map(|s| s.trim().to_string())
        })
        .flatten()
        .unwrap_or_else(|| peer.ip().to_string());
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // API Gateway tells functions the scheme it was called with; here it is plain HTTP
    // (Twilio's signature covers the full URL, scheme included).
    if !parts.headers.contains_key("x-forwarded-proto") {
        headers.push(("x-forwarded-proto".into(), "http".into()));
    }
    let event = api_gateway_v2_event(&GatewayRequest {
        method: parts.method.as_str(),
        route: &route.path,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        path_params: &params,
        body: &body,
        source_ip: &source_ip,
    });
    let payload: LambdaRequest = match serde_json::from_value(event) {
        Ok(p) => p,
        Err(e) => {
            return gateway_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("bad event: {e}"),
            )
        }
    };
    match route.function.invoke(payload).await {
        Ok(response) => http_response(response),
        Err(e) => {
            tracing::error!(error = %e, route = %route.path, "function failed");
            gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// The HTTP response for a payload v2 function response.
fn http_response(v: Value) -> Response {
    let status = v
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    };
    if let Some(map) = v.get("headers").and_then(Value::as_object) {
        for (name, value) in map {
            if let Some(value) = value.as_str() {
                add(name, value);
            }
        }
    }
    if let Some(map) = v.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in map {
            if map.contains_key(name) && v.get("headers").and_then(|h| h.get(name)).is_some() {
                continue; // already sent from `headers`
            }
            for value in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                add(name, value);
            }
        }
    }
    for cookie in v
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        add("set-cookie", cookie);
    }
    let text = v.get("body").and_then(Value::as_str).unwrap_or("");
    let body = if v
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        BASE64.decode(text).unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = Response::new(AxumBody::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_like_api_gateway() {
        let r = parse_route("/o/{token}");
        assert_eq!(match_route(&r, "/o/abc").unwrap()["token"], "abc");
        assert!(match_route(&r, "/o/").is_none());
        assert!(match_route(&r, "/o/a/b").is_none());
        assert!(match_route(&r, "/c/abc").is_none());
        let g = parse_route("/files/{path+}");
        assert_eq!(match_route(&g, "/files/a/b%20c").unwrap()["path"], "a/b c");
        let lit = parse_route("/v1/events");
        assert!(match_route(&lit, "/v1/events").unwrap().is_empty());
        assert!(match_route(&lit, "/v1/event").is_none());
    }
}
