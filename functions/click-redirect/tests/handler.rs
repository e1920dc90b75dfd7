use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use beacon_shared::sink::MemorySink;
use beacon_shared::testkit::{test_keyring, test_recipient, test_tracker, tracking_request};
use beacon_shared::EventType;

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
const DEST: &str = "https://shop.example/sale?utm=mail&x=1";

fn in_an_hour() -> u32 {
    (chrono::Utc::now().timestamp() + 3600) as u32
}

#[tokio::test]
async fn valid_click_redirects_to_the_signed_destination_and_records_it() {
    let tracker = test_tracker(MemorySink::default());
    let token = test_keyring().sign_click(&test_recipient(), DEST, in_an_hour());
    let resp = click_redirect::handle(
        &tracker,
        tracking_request("c", &token, UA, "2001:db8:1:2::9"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], DEST);
    let events = tracker.sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventType::Clicked);
    assert_eq!(events[0].link_url.as_deref(), Some(DEST));
    assert_eq!(
        events[0].context.ip.as_deref(),
        Some("2001:db8:1::"),
        "IPv6 anonymized to /48"
    );
}

#[tokio::test]
async fn non_ascii_destinations_are_sent_percent_encoded() {
    let tracker = test_tracker(MemorySink::default());
    let token =
        test_keyring().sign_click(&test_recipient(), "https://shop.example/café", in_an_hour());
    let resp = click_redirect::handle(&tracker, tracking_request("c", &token, UA, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "https://shop.example/caf%C3%A9");
}

#[tokio::test]
async fn every_tampered_byte_gets_the_400_page_never_a_redirect() {
    let tracker = test_tracker(MemorySink::default());
    let token = test_keyring().sign_click(&test_recipient(), DEST, in_an_hour());
    let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x20;
        let resp = click_redirect::handle(
            &tracker,
            tracking_request("c", &URL_SAFE_NO_PAD.encode(&bad), UA, "192.0.2.1"),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 400, "byte {i}");
        assert!(resp.headers().get("location").is_none());
        assert!(std::str::from_utf8(resp.body())
            .unwrap()
            .contains("Link not valid"));
    }
    assert!(tracker.sink.events().is_empty());
}

#[tokio::test]
async fn expired_and_open_tokens_are_refused() {
    let tracker = test_tracker(MemorySink::default());
    let expired = test_keyring().sign_click(&test_recipient(), DEST, 1);
    let resp = click_redirect::handle(&tracker, tracking_request("c", &expired, UA, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(std::str::from_utf8(resp.body())
        .unwrap()
        .contains("expired"));
    let open = test_keyring().sign_open(&test_recipient(), in_an_hour());
    let resp = click_redirect::handle(&tracker, tracking_request("c", &open, UA, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn a_refusing_stream_still_redirects() {
    let tracker = test_tracker(MemorySink::refusing());
    let token = test_keyring().sign_click(&test_recipient(), DEST, in_an_hour());
    let resp = click_redirect::handle(&tracker, tracking_request("c", &token, UA, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], DEST);
}
