//! The suppression list and engagement through the stats API: events applied by the
//! aggregation (as the stream does) and read back per recipient, in batches, by page,
//! and by segment; every tenant sees only its own recipients.

use beacon_domain::rollup::aggregate::{apply_batch, Settings};

use beacon_aws::testkit::stats_post;
use beacon_aws::testkit::stats_request;
use beacon_domain::event::stream::StreamRecord;
use beacon_domain::event::BounceType;
use beacon_domain::testkit::memory::MemoryApiKeys;
use beacon_domain::testkit::memory::MemoryDeadLetters;
use beacon_domain::testkit::memory::{MemoryAlerts, MemoryLinks, MemoryLive};
use beacon_domain::testkit::rollups::MemoryRollupReader;
use beacon_domain::testkit::rollups::MemoryStore;
use beacon_domain::{Event, EventType};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use stats_function::StatsApp;

fn now() -> DateTime<Utc> {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

type App = StatsApp<MemoryRollupReader, MemoryApiKeys, MemoryLinks, MemoryLive, MemoryAlerts>;

fn ev(tenant: &str, id: &str, kind: EventType, recipient: &str, days_ago: i64) -> Event {
    let t = now() - Duration::days(days_ago) - Duration::hours(1);
    let mut e = Event::new(id.into(), tenant.into(), kind, t, t);
    e.campaign_id = Some("spring".into());
    e.message_id = Some(format!("m-{recipient}-{days_ago}"));
    e.recipient_id = Some(recipient.into());
    e.channel = Some("email".into());
    e
}

/// Applies events as the stream would and hands the result to a stats app.
async fn app_with(events: Vec<Event>) -> (App, String, String) {
    let store = MemoryStore::default();
    let records: Vec<StreamRecord> = events
        .iter()
        .enumerate()
        .map(|(i, e)| StreamRecord {
            shard: "s/0".into(),
            sequence: (i + 1).to_string(),
            data: beacon_domain::tracking::sink::encode_record(e),
        })
        .collect();
    apply_batch(
        &store,
        &MemoryDeadLetters::default(),
        &Settings::default(),
        &records,
    )
    .await
    .unwrap();
    let keys = MemoryApiKeys::default();
    let (acme, globex) = (keys.issue("acme"), keys.issue("globex"));
    let reader = MemoryRollupReader::default();
    *reader.audience.lock().unwrap() = store.state.lock().unwrap().audience.clone();
    (
        StatsApp {
            reader,
            keys,
            dashboard: Default::default(),
            now,
        },
        acme,
        globex,
    )
}

fn fixture_events() -> Vec<Event> {
    let mut out = Vec::new();
    let mut hard = ev("acme", "b1", EventType::Bounced, "r1", 1);
    hard.bounce_type = Some(BounceType::Hard);
    let mut soft = ev("acme", "b2", EventType::Bounced, "r2", 1);
    soft.bounce_type = Some(BounceType::Soft);
    let complaint = ev("acme", "c3", EventType::Complained, "r3", 2);
    let mut sms_unsub = ev("acme", "u4", EventType::Unsubscribed, "r4", 3);
    sms_unsub.channel = Some("sms".into());
    let mut other = ev("globex", "b5", EventType::Bounced, "r5", 1);
    other.bounce_type = Some(BounceType::Hard);
    out.extend([hard, soft, complaint, sms_unsub, other]);
    // Engagement: r10 delivered, opened and clicked today (1 + 5 + 10) and converted
    // 45 days ago (50 × 0.55); r11 opened 30 days ago (1 + 5 × 0.7 = 4.5 with its
    // delivery); r12 only delivered 200 days ago (0.1).
    let mut click = ev("acme", "k10", EventType::Clicked, "r10", 0);
    click.link_url = Some("https://shop.example/sale".into());
    let mut conversion = ev("acme", "v10", EventType::Conversion, "r10", 45);
    conversion.message_id = None;
    conversion.value = Some(20.0);
    out.extend([
        ev("acme", "d10", EventType::Delivered, "r10", 0),
        ev("acme", "o10", EventType::Opened, "r10", 0),
        click,
        conversion,
        ev("acme", "d11", EventType::Delivered, "r11", 30),
        ev("acme", "o11", EventType::Opened, "r11", 30),
        ev("acme", "d12", EventType::Delivered, "r12", 200),
    ]);
    // A person opens half an hour after delivery and clicks ten minutes later (within
    // seconds of delivery it would be a machine's doing).
    for e in out.iter_mut() {
        let after = match e.kind {
            EventType::Opened => Duration::minutes(30),
            EventType::Clicked => Duration::minutes(40),
            _ => Duration::zero(),
        };
        e.event_time += after;
        e.received_at += after;
    }
    out
}

async fn call(app: &App, key: &str, route: &str, path: &str, query: &str) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let req = stats_request(route, path, query, &[("authorization", &auth)]);
    let resp = stats_function::handle(app, req).await.unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body()).unwrap(),
    )
}

async fn check(app: &App, key: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let req = stats_post(
        "/v1/suppressions/check",
        &[("authorization", &auth)],
        body.to_string().as_bytes(),
    );
    let resp = stats_function::handle(app, req).await.unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body()).unwrap(),
    )
}

const ONE: &str = "/v1/suppressions/{channel}/{recipient}";

#[tokio::test]
async fn hard_bounces_and_complaints_suppress_soft_bounces_do_not() {
    let (app, acme, _) = app_with(fixture_events()).await;
    let (status, r1) = call(&app, &acme, ONE, "/v1/suppressions/email/r1", "").await;
    assert_eq!(status, 200);
    assert_eq!(r1["suppressed"], true);
    assert_eq!(r1["reasons"]["hard_bounce"], "2026-11-29T11:00:00Z");
    let (_, r2) = call(&app, &acme, ONE, "/v1/suppressions/email/r2", "").await;
    assert_eq!(
        r2,
        json!({"channel": "email", "recipient": "r2", "suppressed": false})
    );
    let (_, r3) = call(&app, &acme, ONE, "/v1/suppressions/email/r3", "").await;
    assert_eq!(r3["reasons"], json!({"complaint": "2026-11-28T11:00:00Z"}));
    // An SMS unsubscribe does not stop email.
    let (_, email) = call(&app, &acme, ONE, "/v1/suppressions/email/r4", "").await;
    let (_, sms) = call(&app, &acme, ONE, "/v1/suppressions/sms/r4", "").await;
    assert_eq!(
        (email["suppressed"].clone(), sms["suppressed"].clone()),
        (json!(false), json!(true))
    );
}

#[tokio::test]
async fn the_batch_check_answers_in_request_order_and_refuses_bad_bodies() {
    let (app, acme, globex) = app_with(fixture_events()).await;
    let (status, body) = check(
        &app,
        &acme,
        json!({"recipients": ["r3", "r2", "r1", "r1", "nobody"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let suppressed: Vec<&str> = body["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(suppressed, vec!["r3", "r1"]);
    assert_eq!(body["not_suppressed"], json!(["r2", "nobody"]));
    assert_eq!(body["channel"], "email");
    // Tenant isolation: globex's hard bounce r5 is not acme's, and acme's r1 not globex's.
    let (_, acme_view) = check(&app, &acme, json!({"recipients": ["r5"]})).await;
    assert_eq!(acme_view["suppressed"], json!([]));
    let (_, globex_view) = check(&app, &globex, json!({"recipients": ["r1", "r5"]})).await;
    assert_eq!(globex_view["not_suppressed"], json!(["r1"]));
    for (bad, says) in [
        (json!({"recipients": []}), "at least one"),
        (json!({"recipient": ["r1"]}), "unknown field `recipient`"),
        (
            json!({"channel": "E Mail", "recipients": ["r1"]}),
            "channel",
        ),
        (json!({"recipients": vec!["r"; 1001]}), "at most 1000"),
    ] {
        let (status, body) = check(&app, &acme, bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    // The wrong method is named.
    let auth = format!("Bearer {acme}");
    let req = stats_request(
        "/v1/suppressions/check",
        "/v1/suppressions/check",
        "",
        &[("authorization", &auth)],
    );
    let resp = stats_function::handle(&app, req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[tokio::test]
async fn the_list_pages_through_every_entry_for_export() {
    let mut events = fixture_events();
    for i in 0..25 {
        let mut e = ev(
            "acme",
            &format!("x{i}"),
            EventType::Complained,
            &format!("z{i:02}"),
            1,
        );
        e.message_id = Some(format!("mz{i}"));
        events.push(e);
    }
    let (app, acme, _) = app_with(events).await;
    let mut seen = Vec::new();
    let mut query = "limit=10".to_string();
    let mut pages = 0;
    loop {
        let (status, page) =
            call(&app, &acme, "/v1/suppressions", "/v1/suppressions", &query).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for e in page["suppressions"].as_array().unwrap() {
            seen.push(e["recipient"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 27, "r1, r3 and z00-z24");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in recipient order, no repeats"
    );
    let (status, body) = call(
        &app,
        &acme,
        "/v1/suppressions",
        "/v1/suppressions",
        "cursor=!!",
    )
    .await;
    assert_eq!(
        (status, body["error"]["parameter"].clone()),
        (400, json!("cursor"))
    );
}

#[tokio::test]
async fn engagement_scores_and_segments_follow_the_formula() {
    let (app, acme, globex) = app_with(fixture_events()).await;
    let route = "/v1/recipients/{recipient}/engagement";
    let (status, r10) = call(&app, &acme, route, "/v1/recipients/r10/engagement", "").await;
    assert_eq!(status, 200, "{r10}");
    // 1 + 5 + 10 today, 50 × (1 - 0.9 × 45/90) = 27.5 for the conversion.
    assert_eq!(r10["engagement"]["score"], 43.5);
    assert_eq!(r10["engagement"]["segment"], "high");
    let (_, r11) = call(&app, &acme, route, "/v1/recipients/r11/engagement", "").await;
    assert_eq!(r11["engagement"]["score"], 4.2, "(1 + 5) × 0.7");
    assert_eq!(r11["engagement"]["segment"], "inactive");
    let (_, r12) = call(&app, &acme, route, "/v1/recipients/r12/engagement", "").await;
    assert_eq!(r12["engagement"]["score"], 0.1);
    // Another tenant knows nothing of acme's recipients.
    let (_, theirs) = call(&app, &globex, route, "/v1/recipients/r10/engagement", "").await;
    assert_eq!(theirs["engagement"]["score"], 0.0);
    let (_, segments) = call(&app, &acme, "/v1/segments", "/v1/segments", "").await;
    assert_eq!(segments["segments"]["high"]["recipients"], 1);
    assert_eq!(segments["segments"]["inactive"]["recipients"], 2);
    assert_eq!(segments["recipients"], 3);
    let (_, high) = call(
        &app,
        &acme,
        "/v1/segments/{segment}",
        "/v1/segments/high",
        "",
    )
    .await;
    assert_eq!(high["recipients"][0]["recipient"], "r10");
    assert_eq!(high["next_cursor"], Value::Null);
    let (_, inactive) = call(
        &app,
        &acme,
        "/v1/segments/{segment}",
        "/v1/segments/inactive",
        "limit=1",
    )
    .await;
    assert_eq!(inactive["recipients"][0]["recipient"], "r11");
    let cursor = inactive["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = call(
        &app,
        &acme,
        "/v1/segments/{segment}",
        "/v1/segments/inactive",
        &format!("limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest["recipients"][0]["recipient"], "r12");
    let (status, bad) = call(
        &app,
        &acme,
        "/v1/segments/{segment}",
        "/v1/segments/gold",
        "",
    )
    .await;
    assert_eq!(status, 400);
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("one of high, medium, low, inactive"));
}
