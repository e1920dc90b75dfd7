//! The collect API in-process: every answer it can give, and nothing accepted lost.

use beacon_aws::testkit::collect_request;
use beacon_domain::event::context::IpPolicy;
use beacon_domain::event::validate::Limits;
use beacon_domain::testkit::memory::MemoryApiKeys;
use beacon_domain::testkit::memory::MemorySink;
use collect_function::CollectApp;
use serde_json::{json, Value};

fn app(sink: MemorySink) -> (CollectApp<MemorySink, MemoryApiKeys>, String) {
    let keys = MemoryApiKeys::default();
    let key = keys.issue("acme");
    keys.issue("globex");
    (
        CollectApp {
            sink,
            keys,
            limits: Limits::default(),
            ip_policy: IpPolicy::Anonymize,
        },
        key,
    )
}

async fn post(
    app: &CollectApp<MemorySink, MemoryApiKeys>,
    key: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let req = collect_request(
        &[("authorization", &auth), ("content-type", content_type)],
        body,
    );
    let resp = collect_function::handle(app, req).await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/json");
    (status, serde_json::from_slice(resp.body()).unwrap())
}

fn delivered(i: usize) -> Value {
    json!({"event_id": format!("ev-{i}"), "type": "message.delivered", "message_id": format!("m{i}"), "recipient_id": format!("r{i}"), "campaign_id": "c1"})
}

#[tokio::test]
async fn single_event_is_accepted_and_stored() {
    let (app, key) = app(MemorySink::default());
    let (status, body) = post(
        &app,
        &key,
        "application/json",
        delivered(1).to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(
        body["results"][0],
        json!({"status": "accepted", "index": 0, "event_id": "ev-1"})
    );
    let stored = app.sink.events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tenant_id, "acme");
}

#[tokio::test]
async fn mixed_batch_accepts_the_valid_and_explains_the_rest() {
    let (app, key) = app(MemorySink::default());
    let batch = json!([delivered(1), {"type": "message.read"}, delivered(2), {"type": "link.clicked", "message_id": "m", "recipient_id": "r", "link_url": "javascript:x"}]);
    let (status, body) = post(
        &app,
        &key,
        "application/json; charset=utf-8",
        batch.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(body["results"][1]["status"], "rejected");
    assert_eq!(body["results"][1]["errors"][0]["field"], "type");
    assert_eq!(body["results"][3]["errors"][0]["field"], "link_url");
    let ids: Vec<String> = app.sink.events().into_iter().map(|e| e.event_id).collect();
    assert_eq!(ids, vec!["ev-1", "ev-2"]);
}

#[tokio::test]
async fn ndjson_batches_are_read_line_by_line() {
    let (app, key) = app(MemorySink::default());
    let body = format!("{}\n\n{}\n", delivered(1), delivered(2));
    let (status, answer) = post(&app, &key, "application/x-ndjson", body.as_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(app.sink.events().len(), 2);
    let (status, answer) = post(
        &app,
        &key,
        "application/x-ndjson",
        b"{\"type\":\"custom.a\"}\n{oops\n",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2"),
        "{answer}"
    );
}

#[tokio::test]
async fn all_invalid_is_400_with_reasons() {
    let (app, key) = app(MemorySink::default());
    let (status, body) = post(
        &app,
        &key,
        "application/json",
        br#"[{"type":"message.opened"}]"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["rejected"], 1);
    assert!(app.sink.events().is_empty());
}

#[tokio::test]
async fn malformed_json_and_invalid_utf8() {
    let (app, key) = app(MemorySink::default());
    let (status, body) = post(&app, &key, "application/json", b"{\"type\": ").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, body) = post(
        &app,
        &key,
        "application/json",
        b"{\"type\":\"custom.\xff\"}",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_utf8"))
    );
    let (status, _) = post(&app, &key, "application/json", b"[]").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn oversized_body_and_batch_are_413() {
    let (app, key) = app(MemorySink::default());
    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, body) = post(&app, &key, "application/json", &big).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let batch: Vec<Value> = (0..501).map(|_| json!({"type": "custom.x"})).collect();
    let (status, body) = post(
        &app,
        &key,
        "application/json",
        serde_json::to_vec(&batch).unwrap().as_slice(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("batch_too_large"))
    );
    let batch: Vec<Value> = (0..500).map(|_| json!({"type": "custom.x"})).collect();
    let (status, _) = post(
        &app,
        &key,
        "application/json",
        serde_json::to_vec(&batch).unwrap().as_slice(),
    )
    .await;
    assert_eq!(status, 202, "exactly 500 is fine");
}

#[tokio::test]
async fn wrong_or_missing_key_is_401() {
    let (app, _) = app(MemorySink::default());
    let (status, body) = post(
        &app,
        "bk_not-a-key",
        "application/json",
        delivered(1).to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let req = collect_request(
        &[("content-type", "application/json")],
        delivered(1).to_string().as_bytes(),
    );
    let resp = collect_function::handle(&app, req).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(app.sink.events().is_empty());
}

#[tokio::test]
async fn x_api_key_header_works_too() {
    let (app, key) = app(MemorySink::default());
    let req = collect_request(
        &[("x-api-key", &key), ("content-type", "application/json")],
        delivered(1).to_string().as_bytes(),
    );
    assert_eq!(
        collect_function::handle(&app, req).await.unwrap().status(),
        202
    );
}

#[tokio::test]
async fn events_for_another_tenant_are_403() {
    let (app, key) = app(MemorySink::default());
    let mut foreign = delivered(2);
    foreign["tenant_id"] = json!("globex");
    let (status, body) = post(
        &app,
        &key,
        "application/json",
        json!([delivered(1), foreign]).to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden_tenant"))
    );
    assert!(
        app.sink.events().is_empty(),
        "nothing of a forbidden request is stored"
    );
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (app, key) = app(MemorySink::default());
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let (status, body) = post(&app, &key, ct, delivered(1).to_string().as_bytes()).await;
        assert_eq!(status, 415, "{ct}: {body}");
    }
}

#[tokio::test]
async fn a_refusing_stream_is_503_with_every_event_to_retry() {
    let (app, key) = app(MemorySink::refusing());
    let batch = json!([delivered(1), delivered(2), {"type": "nope"}]);
    let auth = format!("Bearer {key}");
    let req = collect_request(
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        batch.to_string().as_bytes(),
    );
    let resp = collect_function::handle(&app, req).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(
        (
            body["accepted"].as_u64(),
            body["failed"].as_u64(),
            body["rejected"].as_u64()
        ),
        (Some(0), Some(2), Some(1))
    );
    assert_eq!(body["results"][0]["status"], "failed");
    assert_eq!(body["results"][0]["event_id"], "ev-1");
}
