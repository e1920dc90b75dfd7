use beacon_aws::testkit::tracking_request;
use beacon_domain::testkit::memory::MemorySink;
use beacon_domain::testkit::{test_keyring, test_networks, test_recipient, test_tracker};
use beacon_domain::tracking::token::Keyring;
use beacon_domain::tracking::PIXEL_GIF;
use beacon_domain::EventType;

const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";

fn in_an_hour() -> u32 {
    (chrono::Utc::now().timestamp() + 3600) as u32
}

#[tokio::test]
async fn valid_token_returns_gif_and_records_one_open() {
    let tracker = test_tracker(MemorySink::default());
    let token = test_keyring()
        .sign_open(&test_recipient(), in_an_hour())
        .unwrap();
    let resp =
        open_pixel_function::handle(&tracker, tracking_request("o", &token, UA, "203.0.113.77"))
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/gif");
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    assert_eq!(resp.body().as_ref(), &PIXEL_GIF[..]);
    let events = tracker.sink.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, EventType::Opened);
    assert_eq!(e.tenant_id, "acme");
    assert_eq!(e.campaign_id.as_deref(), Some("spring"));
    assert_eq!(e.recipient_id.as_deref(), Some("r-0001"));
    assert_eq!(
        e.context.ip.as_deref(),
        Some("203.0.113.0"),
        "IP anonymized to /24"
    );
    assert_eq!(e.context.user_agent.as_deref(), Some(UA));
}

#[tokio::test]
async fn the_network_label_comes_from_the_full_ip_and_the_stored_ip_is_anonymized() {
    let mut tracker = test_tracker(MemorySink::default());
    tracker.networks = test_networks(); // Apple's proxy: 198.18.226.0/27
    let token = test_keyring()
        .sign_open(&test_recipient(), in_an_hour())
        .unwrap();
    // Two clients of one /24: only the full address tells Apple's proxy from the other.
    for source in [
        "198.18.226.9",
        "198.18.226.200",
        "::ffff:198.18.226.31",
        "198.18.9.4",
    ] {
        open_pixel_function::handle(
            &tracker,
            tracking_request("o", &token, "Mozilla/5.0", source),
        )
        .await
        .unwrap();
    }
    let events = tracker.sink.events();
    let seen: Vec<(Option<&str>, Option<&str>)> = events
        .iter()
        .map(|e| (e.context.ip.as_deref(), e.context.network.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("198.18.226.0"), Some("apple-proxy")),
            (Some("198.18.226.0"), Some("unlisted")),
            (Some("198.18.226.0"), Some("apple-proxy")),
            (Some("198.18.9.0"), Some("scanners")),
        ]
    );
}

#[tokio::test]
async fn with_the_shipped_empty_lists_no_label_is_stored() {
    let tracker = test_tracker(MemorySink::default());
    assert!(tracker.networks.is_empty(), "the lists ship empty");
    let token = test_keyring()
        .sign_open(&test_recipient(), in_an_hour())
        .unwrap();
    open_pixel_function::handle(&tracker, tracking_request("o", &token, UA, "198.18.226.9"))
        .await
        .unwrap();
    assert_eq!(tracker.sink.events()[0].context.network, None);
}

#[tokio::test]
async fn gif_suffix_is_accepted() {
    let tracker = test_tracker(MemorySink::default());
    let token = test_keyring()
        .sign_open(&test_recipient(), in_an_hour())
        .unwrap();
    open_pixel_function::handle(
        &tracker,
        tracking_request("o", &format!("{token}.gif"), UA, "203.0.113.77"),
    )
    .await
    .unwrap();
    assert_eq!(tracker.sink.events().len(), 1);
}

#[tokio::test]
async fn bad_tokens_still_get_the_gif_but_record_nothing() {
    let tracker = test_tracker(MemorySink::default());
    let other = Keyring::new("t1", vec![("t1".into(), vec![9u8; 32])]).unwrap();
    let expired = test_keyring().sign_open(&test_recipient(), 1).unwrap();
    let forged = other.sign_open(&test_recipient(), in_an_hour()).unwrap();
    let click_token = test_keyring()
        .sign_click(&test_recipient(), "https://x.example", in_an_hour())
        .unwrap();
    for token in ["", "garbage", &expired, &forged, &click_token] {
        let resp =
            open_pixel_function::handle(&tracker, tracking_request("o", token, UA, "203.0.113.77"))
                .await
                .unwrap();
        assert_eq!(resp.status(), 200, "token {token:?}");
        assert_eq!(resp.body().as_ref(), &PIXEL_GIF[..]);
    }
    assert!(tracker.sink.events().is_empty());
}

#[tokio::test]
async fn a_refusing_stream_still_serves_the_pixel() {
    let tracker = test_tracker(MemorySink::refusing());
    let token = test_keyring()
        .sign_open(&test_recipient(), in_an_hour())
        .unwrap();
    let resp =
        open_pixel_function::handle(&tracker, tracking_request("o", &token, UA, "203.0.113.77"))
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), &PIXEL_GIF[..]);
}

/// The sample in `events/` (what `make test` invokes the binary with) verifies with
/// the sample keyring of `events/README.md`: its token was made by a separate
/// implementation of the format, so this also checks the key derivation against it.
#[tokio::test]
async fn the_sample_event_is_recorded_with_the_sample_keyring() {
    let mut tracker = test_tracker(MemorySink::default());
    tracker.keyring = beacon_domain::tracking::token::Keyring::from_json(
        r#"{"active":"sample","sample":"beacon-sample-key-for-events-only-not-for-production"}"#,
    )
    .unwrap();
    let request =
        lambda_http::request::from_str(include_str!("../../../events/open-pixel.json")).unwrap();
    let resp = open_pixel_function::handle(&tracker, request)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = tracker.sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant_id, "acme");
    assert_eq!(events[0].message_id.as_deref(), Some("msg-0001"));
}
