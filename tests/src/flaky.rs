//! A Kinesis that misbehaves: a proxy in front of the emulator that refuses some or all
//! PutRecords entries, answering as Kinesis does when a shard is over its limits
//! (`FailedRecordCount` > 0, `ProvisionedThroughputExceededException` per entry).
//! Refused entries are not forwarded, so the stream holds only what was really taken.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Refuse every `n`th entry the first time it is seen; retries go through.
    FirstTryEvery(usize),
    /// Refuse every entry, every time.
    RefuseAll,
}

struct Proxy {
    upstream: String,
    fault: Fault,
    http: reqwest::Client,
    seen: AtomicUsize,
    refused_once: Mutex<HashSet<String>>,
    refused: AtomicUsize,
    calls: AtomicUsize,
}

/// A running proxy; point `AWS_ENDPOINT_URL_KINESIS`-style configuration at `url`.
pub struct FlakyKinesis {
    pub url: String,
    proxy: Arc<Proxy>,
}

impl FlakyKinesis {
    /// Entries refused so far.
    pub fn refused(&self) -> usize {
        self.proxy.refused.load(Ordering::Relaxed)
    }

    /// PutRecords calls seen so far.
    pub fn calls(&self) -> usize {
        self.proxy.calls.load(Ordering::Relaxed)
    }
}

pub async fn start(upstream: &str, fault: Fault) -> FlakyKinesis {
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_string(),
        fault,
        http: reqwest::Client::new(),
        seen: AtomicUsize::new(0),
        refused_once: Mutex::new(HashSet::new()),
        refused: AtomicUsize::new(0),
        calls: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FlakyKinesis { url, proxy }
}

async fn handle(
    State(proxy): State<Arc<Proxy>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if target.ends_with(".PutRecords") {
        return put_records(&proxy, &headers, &uri, &body).await;
    }
    forward(&proxy, &headers, &uri, body.to_vec()).await.0
}

async fn forward(
    proxy: &Proxy,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    body: Vec<u8>,
) -> (Response, Option<Value>) {
    let mut request = proxy.http.post(format!(
        "{}{}",
        proxy.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    ));
    for (name, value) in headers {
        if name != "content-length" && name != "host" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.body(body).send().await.expect("emulator reachable");
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|v| v.as_bytes().to_vec());
    let bytes = answer.bytes().await.unwrap_or_default();
    let parsed = serde_json::from_slice(&bytes).ok();
    let mut response = (status, bytes).into_response();
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert("content-type", ct.try_into().unwrap());
    }
    (response, parsed)
}

async fn put_records(
    proxy: &Proxy,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    body: &[u8],
) -> Response {
    proxy.calls.fetch_add(1, Ordering::Relaxed);
    let mut request: Value = serde_json::from_slice(body).expect("PutRecords body is JSON");
    let records = request["Records"].as_array().cloned().unwrap_or_default();
    let mut refuse = Vec::with_capacity(records.len());
    for record in &records {
        let data = record["Data"].as_str().unwrap_or("").to_string();
        let n = proxy.seen.fetch_add(1, Ordering::Relaxed) + 1;
        let no = match proxy.fault {
            Fault::RefuseAll => true,
            Fault::FirstTryEvery(every) => {
                n.is_multiple_of(every) && proxy.refused_once.lock().unwrap().insert(data)
            }
        };
        refuse.push(no);
    }
    let passed: Vec<Value> = records
        .iter()
        .zip(&refuse)
        .filter(|(_, no)| !**no)
        .map(|(r, _)| r.clone())
        .collect();
    let mut upstream_results = Vec::new();
    if !passed.is_empty() {
        request["Records"] = Value::Array(passed);
        let (response, parsed) =
            forward(proxy, headers, uri, serde_json::to_vec(&request).unwrap()).await;
        let Some(parsed) = parsed.filter(|_| response.status().is_success()) else {
            return response;
        };
        upstream_results = parsed["Records"].as_array().cloned().unwrap_or_default();
    }
    let mut upstream_results = upstream_results.into_iter();
    let mut failed = 0;
    let results: Vec<Value> = refuse
        .iter()
        .map(|no| {
            if *no {
                failed += 1;
                json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard (injected by the test)"})
            } else {
                upstream_results.next().unwrap_or_else(|| json!({"ErrorCode": "InternalFailure", "ErrorMessage": "missing"}))
            }
        })
        .collect();
    proxy.refused.fetch_add(failed, Ordering::Relaxed);
    let answer = json!({"FailedRecordCount": failed, "Records": results});
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        answer.to_string(),
    )
        .into_response()
}
