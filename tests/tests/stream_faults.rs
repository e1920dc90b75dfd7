//! A Kinesis that refuses writes, in part or entirely: nothing reported as accepted is
//! lost, refused entries alone are retried, and the pixel and redirect keep working.

use beacon_domain::tracking::token::Recipient;
use beacon_tests::flaky::{self, Fault};
use beacon_tests::{emulator, http, TestStack};
use serde_json::{json, Value};
use std::collections::HashSet;

#[tokio::test]
async fn partly_refused_batches_are_retried_entry_by_entry_and_stored_once() {
    let proxy = flaky::start(emulator(), Fault::FirstTryEvery(7)).await;
    let t = TestStack::start_through(Some(&proxy.url)).await.unwrap();

    let batch: Vec<Value> = (0..300)
        .map(|i| json!({"event_id": format!("e{i}"), "type": "message.delivered", "message_id": format!("m{i}"), "recipient_id": format!("r{i}")}))
        .collect();
    let answer = http()
        .post(format!("{}/v1/events", t.gateway.url))
        .bearer_auth(&t.api_key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["accepted"], 300, "{body}");
    assert!(
        proxy.refused() >= 40,
        "the proxy refused {} entries",
        proxy.refused()
    );
    assert!(proxy.calls() >= 2, "refused entries were retried");

    let events = t.stream_events().await.unwrap();
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(events.len(), 300, "every event exactly once");
    assert_eq!(ids.len(), 300);
    t.gateway.stop().await;
}

#[tokio::test]
async fn a_stream_that_refuses_everything() {
    let proxy = flaky::start(emulator(), Fault::RefuseAll).await;
    let t = TestStack::start_through(Some(&proxy.url)).await.unwrap();
    let client = http();
    let r = Recipient {
        tenant_id: "acme".into(),
        campaign_id: "c".into(),
        message_id: "m".into(),
        recipient_id: "r".into(),
    };
    let exp = (chrono::Utc::now().timestamp() + 3600) as u32;

    let pixel = client
        .get(format!(
            "{}/o/{}",
            t.gateway.url,
            t.keyring.sign_open(&r, exp).unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), 200);
    assert_eq!(pixel.bytes().await.unwrap().len(), 43);
    let click = client
        .get(format!(
            "{}/c/{}",
            t.gateway.url,
            t.keyring.sign_click(&r, "https://x.example/", exp).unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(click.status(), 302);
    assert_eq!(click.headers()["location"], "https://x.example/");

    let batch = json!([{"event_id": "keep-1", "type": "custom.signup"}, {"event_id": "keep-2", "type": "custom.signup"}, {"type": "bogus"}]);
    let answer = client
        .post(format!("{}/v1/events", t.gateway.url))
        .bearer_auth(&t.api_key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "1");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        (
            body["accepted"].as_u64(),
            body["failed"].as_u64(),
            body["rejected"].as_u64()
        ),
        (Some(0), Some(2), Some(1)),
        "{body}"
    );
    assert_eq!(body["results"][0]["event_id"], "keep-1");
    assert!(
        t.stream_events().await.unwrap().is_empty(),
        "nothing was stored, and nothing was claimed to be"
    );
    t.gateway.stop().await;
}
