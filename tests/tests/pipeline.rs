//! The three HTTP functions behind the local gateway, writing to the emulator's stream.

use beacon_domain::tracking::token::Recipient;
use beacon_domain::EventType;
use beacon_tests::{http, issue_key, TestStack};
use serde_json::{json, Value};

const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";

fn recipient() -> Recipient {
    Recipient {
        tenant_id: "acme".into(),
        campaign_id: "launch".into(),
        message_id: "m-1".into(),
        recipient_id: "r-1".into(),
    }
}

fn in_a_day() -> u32 {
    (chrono::Utc::now().timestamp() + 86_400) as u32
}

#[tokio::test]
async fn open_click_and_collect_reach_the_stream() {
    let t = TestStack::start().await.unwrap();
    let client = http();

    let open = t.keyring.sign_open(&recipient(), in_a_day()).unwrap();
    let pixel = client
        .get(t.url(&format!("/o/{open}")))
        .header("user-agent", UA)
        .header("x-forwarded-for", "203.0.113.45")
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), 200);
    assert_eq!(pixel.headers()["content-type"], "image/gif");
    assert_eq!(pixel.bytes().await.unwrap().len(), 43);

    let dest = "https://shop.example/launch?ref=mail";
    let click = t
        .keyring
        .sign_click(&recipient(), dest, in_a_day())
        .unwrap();
    let redirect = client
        .get(t.url(&format!("/c/{click}")))
        .header("user-agent", UA)
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["location"], dest);

    let batch = json!([
        {"event_id": "s-1", "type": "message.sent", "message_id": "m-1", "recipient_id": "r-1", "campaign_id": "launch", "cost": 0.0002},
        {"event_id": "b-1", "type": "message.bounced", "bounce_type": "soft", "message_id": "m-2", "recipient_id": "r-2", "campaign_id": "launch"},
        {"type": "message.bounced", "message_id": "m-3", "recipient_id": "r-3"}
    ]);
    let answer = client
        .post(t.url("/v1/events"))
        .bearer_auth(&t.api_key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{body}"
    );
    assert_eq!(body["results"][2]["errors"][0]["field"], "bounce_type");

    let events = t.stream_events().await.unwrap();
    assert_eq!(events.len(), 4, "{events:#?}");
    let opened = events
        .iter()
        .find(|e| e.kind == EventType::Opened)
        .expect("open on the stream");
    assert_eq!(
        (
            opened.tenant_id.as_str(),
            opened.campaign_id.as_deref(),
            opened.recipient_id.as_deref()
        ),
        ("acme", Some("launch"), Some("r-1"))
    );
    assert_eq!(opened.context.ip.as_deref(), Some("203.0.113.0"));
    let clicked = events
        .iter()
        .find(|e| e.kind == EventType::Clicked)
        .expect("click on the stream");
    assert_eq!(clicked.link_url.as_deref(), Some(dest));
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert!(ids.contains(&"s-1") && ids.contains(&"b-1"));
    t.gateway.stop().await;
}

#[tokio::test]
async fn bad_tokens_and_bad_keys_store_nothing() {
    let t = TestStack::start().await.unwrap();
    let client = http();
    let click = t
        .keyring
        .sign_click(&recipient(), "https://shop.example/", in_a_day())
        .unwrap();
    let mut tampered = click.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let refused = client
        .get(t.url(&format!("/c/{tampered}")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.headers().get("location").is_none());
    let pixel = client
        .get(t.url(&format!("/o/{tampered}")))
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), 200, "the pixel never breaks");

    let event = json!({"type": "custom.signup"});
    let wrong_key = client
        .post(t.url("/v1/events"))
        .bearer_auth("bk_wrong")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);
    let globex = issue_key(
        &t.aws,
        &t.stack.function("collect").unwrap().1.env["BEACON_API_KEYS_TABLE"],
        "globex",
    )
    .await
    .unwrap();
    let other_tenant = client
        .post(t.url("/v1/events"))
        .bearer_auth(&globex)
        .json(&json!({"type": "custom.signup", "tenant_id": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other_tenant.status(), 403);
    let big = client
        .post(t.url("/v1/events"))
        .bearer_auth(&t.api_key)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let unknown = client.get(t.url("/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    assert!(t.stream_events().await.unwrap().is_empty());
    t.gateway.stop().await;
}
