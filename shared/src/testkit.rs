//! Fixtures for in-process tests and benchmarks of the HTTP functions.

use crate::context::IpPolicy;
use crate::http::{lambda_request, GatewayRequest};
use crate::networks::Networks;
use crate::sink::MemorySink;
use crate::token::{Keyring, Recipient, TokenKind};
use crate::tracking::Tracker;
use lambda_http::Request;
use std::collections::BTreeMap;

const TEST_MASTER_KEY: &[u8] = b"test-key-material-0123456789abcdef";

/// A keyring with one fixed test key `t1`.
pub fn test_keyring() -> Keyring {
    Keyring::new("t1", vec![("t1".into(), TEST_MASTER_KEY.to_vec())]).expect("valid test key")
}

/// A token in the retired format 1 under [`test_keyring`]'s key (a click token when
/// `url` is given), as links sent before per-tenant keys carry.
pub fn test_legacy_token(recipient: &Recipient, url: Option<&str>, expires_at: u32) -> String {
    let kind = match url {
        Some(_) => TokenKind::Click,
        None => TokenKind::Open,
    };
    crate::token::sign_legacy(TEST_MASTER_KEY, "t1", kind, recipient, url, expires_at)
}

pub fn test_recipient() -> Recipient {
    Recipient {
        tenant_id: "acme".into(),
        campaign_id: "spring".into(),
        message_id: "m-0001".into(),
        recipient_id: "r-0001".into(),
    }
}

/// A tracker over an in-memory sink, with the shipped range lists.
pub fn test_tracker(sink: MemorySink) -> Tracker<MemorySink> {
    Tracker {
        keyring: test_keyring(),
        sink,
        ip_policy: IpPolicy::Anonymize,
        networks: Networks::shipped(),
    }
}

/// Range lists for tests, from documentation and benchmark ranges only: Apple's proxy
/// `198.18.226.0/27` and `2001:db8:a::/48`, scanners `198.18.9.0/24` and
/// `2001:db8:5c::/48`. Leaked once, as the functions' lists live for the process.
pub fn test_networks() -> &'static Networks {
    static NETWORKS: std::sync::LazyLock<Networks> = std::sync::LazyLock::new(|| {
        Networks::from_lists(&[
            (
                crate::networks::APPLE_PROXY,
                "198.18.226.0/27,GB,GB-EN,London,\n2001:db8:a::/48,US,US-CA,Los Angeles,\n",
            ),
            (
                crate::networks::SCANNERS,
                "198.18.9.0/24\n2001:db8:5c::/48\n",
            ),
        ])
        .expect("valid test ranges")
    });
    &NETWORKS
}

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
