use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use beacon_aws::testkit::tracking_request;
use beacon_domain::event::context::IpPolicy;
use beacon_domain::testkit::memory::MemorySink;
use beacon_domain::testkit::{
    test_keyring, test_legacy_token, test_networks, test_recipient, test_tracker,
};
use beacon_domain::tracking::token::Recipient;
use beacon_domain::EventType;

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
const DEST: &str = "https://shop.example/sale?utm=mail&x=1";

fn in_an_hour() -> u32 {
    (chrono::Utc::now().timestamp() + 3600) as u32
}

#[tokio::test]
async fn valid_click_redirects_to_the_signed_destination_and_records_it() {
    let tracker = test_tracker(MemorySink::default());
    let token = test_keyring()
        .sign_click(&test_recipient(), DEST, in_an_hour())
        .unwrap();
    let resp = click_redirect_function::handle(
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
async fn the_network_label_comes_from_the_full_ip_whatever_is_stored() {
    let mut tracker = test_tracker(MemorySink::default());
    tracker.networks = test_networks(); // scanners: 2001:db8:5c::/48, Apple: 2001:db8:a::/48
    let token = test_keyring()
        .sign_click(&test_recipient(), DEST, in_an_hour())
        .unwrap();
    let click = |source: &'static str| tracking_request("c", &token, UA, source);
    for source in ["2001:db8:5c:1::9", "2001:db8:a:ffff::1", "2001:db8:b::1"] {
        let resp = click_redirect_function::handle(&tracker, click(source))
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{source}");
    }
    tracker.ip_policy = IpPolicy::Drop;
    click_redirect_function::handle(&tracker, click("2001:db8:5c::7"))
        .await
        .unwrap();
    let seen: Vec<(Option<String>, Option<String>)> = tracker
        .sink
        .events()
        .into_iter()
        .map(|e| (e.context.ip, e.context.network))
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        seen,
        [
            (some("2001:db8:5c::"), some("scanners")),
            (some("2001:db8:a::"), some("apple-proxy")),
            (some("2001:db8:b::"), some("unlisted")),
            (None, some("scanners")),
        ]
    );
}

#[tokio::test]
async fn non_ascii_destinations_are_sent_percent_encoded() {
    let tracker = test_tracker(MemorySink::default());
    let token = test_keyring()
        .sign_click(&test_recipient(), "https://shop.example/café", in_an_hour())
        .unwrap();
    let resp =
        click_redirect_function::handle(&tracker, tracking_request("c", &token, UA, "192.0.2.1"))
            .await
            .unwrap();
    assert_eq!(resp.headers()["location"], "https://shop.example/caf%C3%A9");
}

#[tokio::test]
async fn every_tampered_byte_gets_the_400_page_never_a_redirect() {
    let tracker = test_tracker(MemorySink::default());
    let token = test_keyring()
        .sign_click(&test_recipient(), DEST, in_an_hour())
        .unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x20;
        let resp = click_redirect_function::handle(
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
    let expired = test_keyring()
        .sign_click(&test_recipient(), DEST, 1)
        .unwrap();
    let resp =
        click_redirect_function::handle(&tracker, tracking_request("c", &expired, UA, "192.0.2.1"))
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(std::str::from_utf8(resp.body())
        .unwrap()
        .contains("expired"));
    let open = test_keyring()
        .sign_open(&test_recipient(), in_an_hour())
        .unwrap();
    let resp =
        click_redirect_function::handle(&tracker, tracking_request("c", &open, UA, "192.0.2.1"))
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn a_refusing_stream_still_redirects() {
    let tracker = test_tracker(MemorySink::refusing());
    let token = test_keyring()
        .sign_click(&test_recipient(), DEST, in_an_hour())
        .unwrap();
    let resp =
        click_redirect_function::handle(&tracker, tracking_request("c", &token, UA, "192.0.2.1"))
            .await
            .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], DEST);
}

#[tokio::test]
async fn links_from_before_tenant_keys_redirect_only_inside_the_legacy_window() {
    let mut tracker = test_tracker(MemorySink::default());
    let old = test_legacy_token(&test_recipient(), Some(DEST), in_an_hour());
    let click = || tracking_request("c", &old, UA, "192.0.2.1");
    let resp = click_redirect_function::handle(&tracker, click())
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(std::str::from_utf8(resp.body())
        .unwrap()
        .contains("expired"));
    assert!(tracker.sink.events().is_empty());

    let until = chrono::Utc::now().timestamp() + 60;
    tracker.keyring = test_keyring().with_legacy_tokens_until(Some(until));
    let resp = click_redirect_function::handle(&tracker, click())
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], DEST);
    assert_eq!(tracker.sink.events().len(), 1);
}

#[tokio::test]
async fn a_token_relabelled_to_another_tenant_does_not_redirect() {
    let tracker = test_tracker(MemorySink::default());
    let acmf = Recipient {
        tenant_id: "acmf".into(),
        ..test_recipient()
    };
    let token = test_keyring()
        .sign_click(&acmf, DEST, in_an_hour())
        .unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    let at = raw.windows(4).position(|w| w == b"acmf").unwrap();
    raw[at + 3] = b'e'; // now names tenant `acme`
    let moved = URL_SAFE_NO_PAD.encode(raw);
    let resp =
        click_redirect_function::handle(&tracker, tracking_request("c", &moved, UA, "192.0.2.1"))
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    assert!(tracker.sink.events().is_empty());
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
        lambda_http::request::from_str(include_str!("../../../events/click-redirect.json"))
            .unwrap();
    let resp = click_redirect_function::handle(&tracker, request)
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        "https://shop.example.com/sale?utm_source=email"
    );
    let events = tracker.sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant_id, "acme");
    assert_eq!(events[0].message_id.as_deref(), Some("msg-0001"));
}
