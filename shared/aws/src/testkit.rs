//! Requests as API Gateway delivers them, for in-process tests and benchmarks of the HTTP
//! functions.

use crate::http::{lambda_request, GatewayRequest};
use lambda_http::Request;
use std::collections::BTreeMap;

/// A GET on a tracking route (`/o/{token}` or `/c/{token}`), as API Gateway delivers it.
pub fn tracking_request(prefix: &str, token: &str, user_agent: &str, source_ip: &str) -> Request {
    let params = BTreeMap::from([("token".to_string(), token.to_string())]);
    let path = format!("/{prefix}/{token}");
    let route = format!("/{prefix}/{{token}}");
    lambda_request(&GatewayRequest {
        method: "GET",
        route: &route,
        path: &path,
        query: "",
        headers: &[("user-agent".into(), user_agent.into())],
        path_params: &params,
        body: b"",
        source_ip,
    })
}

/// A POST to the collect route.
pub fn collect_request(headers: &[(&str, &str)], body: &[u8]) -> Request {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    lambda_request(&GatewayRequest {
        method: "POST",
        route: "/v1/events",
        path: "/v1/events",
        query: "",
        headers: &headers,
        path_params: &BTreeMap::new(),
        body,
        source_ip: "192.0.2.10",
    })
}

/// A GET on a stats route such as `/v1/campaigns/{campaign}/links`, as API Gateway
/// delivers it: the path parameters are read from `path` by the route's `{name}`s.
pub fn stats_request(route: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> Request {
    let params: BTreeMap<String, String> = route
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(r, p)| {
            let name = r.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_string(), p.to_string()))
        })
        .collect();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    lambda_request(&GatewayRequest {
        method: "GET",
        route,
        path,
        query,
        headers: &headers,
        path_params: &params,
        body: b"",
        source_ip: "192.0.2.10",
    })
}

/// A POST with a JSON body on a stats route without path parameters
/// (`/v1/suppressions/check`).
pub fn stats_post(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("content-type".to_string(), "application/json".to_string())])
        .collect();
    lambda_request(&GatewayRequest {
        method: "POST",
        route: path,
        path,
        query: "",
        headers: &headers,
        path_params: &BTreeMap::new(),
        body,
        source_ip: "192.0.2.10",
    })
}
