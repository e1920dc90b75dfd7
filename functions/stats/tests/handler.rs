//! The stats API in-process: each endpoint's numbers from rollup items (folded from
//! events by `rollup::Aggregate`, and written directly), the rates and their zero
//! cases, bad parameters, every error status, and tenant isolation.

use beacon_domain::apikey::{hash_api_key, ApiKeyStore};

use beacon_aws::testkit::stats_request;
use beacon_domain::event::BounceType;
use beacon_domain::rollup::{
    fingerprint, link_id, rollup_partition, unique_partition, Aggregate, Counters, Grain, Scope,
    UniqueKind,
};
use beacon_domain::stats::{Counts, Rates};
use beacon_domain::testkit::memory::MemoryApiKeys;
use beacon_domain::testkit::memory::{MemoryAlerts, MemoryLinks, MemoryLive};
use beacon_domain::testkit::rollups::MemoryRollupReader;
use beacon_domain::verdict::classify::machine_verdict;
use beacon_domain::verdict::trail::{Hit, Trail};
use beacon_domain::{Event, EventType};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stats_function::StatsApp;
use std::sync::atomic::Ordering;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";
const APPLE_MPP: &str = "Mozilla/5.0";
const SCANNER: &str = "curl/8.5.0";
const LINK_A: &str = "https://shop.example.com/sale";
const LINK_B: &str = "https://shop.example.com/new";

fn now() -> DateTime<Utc> {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

type App = StatsApp<MemoryRollupReader, MemoryApiKeys, MemoryLinks, MemoryLive, MemoryAlerts>;

struct Fixture {
    app: App,
    acme: String,
    globex: String,
}

fn fixture() -> Fixture {
    let keys = MemoryApiKeys::default();
    let acme = keys.issue("acme");
    let globex = keys.issue("globex");
    Fixture {
        app: StatsApp {
            reader: MemoryRollupReader::default(),
            keys,
            dashboard: Default::default(),
            now,
        },
        acme,
        globex,
    }
}

fn ev(tenant: &str, kind: EventType, campaign: Option<&str>, recipient: &str, t: &str) -> Event {
    let t: DateTime<Utc> = t.parse().unwrap();
    let mut e = Event::new(
        beacon_domain::event::new_event_id(),
        tenant.into(),
        kind,
        t,
        t,
    );
    e.campaign_id = campaign.map(str::to_string);
    e.message_id = Some(format!("m-{recipient}"));
    e.recipient_id = Some(recipient.into());
    e.channel = Some("email".into());
    e.provider = Some("ses".into());
    e
}

/// Campaign `spring` of acme, as events folded by the aggregator:
/// 10 sent (09:xx on 23 Nov), 8 delivered, 1 hard and 1 soft bounce; opens by r0 (3x),
/// r1, r3 (next day) and a machine (r2); human clicks r0 → A (2x), r1 → B, a scanner
/// on A; one complaint, one unsubscribe, one conversion of 59.90.
fn spring_events() -> Vec<Event> {
    let spring = Some("spring");
    let mut events = Vec::new();
    for i in 0..10 {
        let r = format!("r{i}");
        let mut sent = ev("acme", EventType::Sent, spring, &r, "2026-11-23T09:10:00Z");
        sent.cost = Some(0.0001);
        events.push(sent);
        if i < 8 {
            let mut d = ev(
                "acme",
                EventType::Delivered,
                spring,
                &r,
                "2026-11-23T09:30:00Z",
            );
            d.duration_ms = Some(1000 + 100 * i);
            events.push(d);
        } else {
            let mut b = ev(
                "acme",
                EventType::Bounced,
                spring,
                &r,
                "2026-11-23T09:30:00Z",
            );
            b.bounce_type = Some(if i == 8 {
                BounceType::Hard
            } else {
                BounceType::Soft
            });
            events.push(b);
        }
    }
    let open = |r: &str, t: &str, ua: &str| {
        let mut e = ev("acme", EventType::Opened, spring, r, t);
        e.context.user_agent = Some(ua.into());
        e
    };
    events.push(open("r0", "2026-11-23T10:00:00Z", IPHONE));
    events.push(open("r0", "2026-11-23T10:05:00Z", IPHONE));
    events.push(open("r0", "2026-11-23T10:10:00Z", IPHONE));
    events.push(open("r1", "2026-11-23T10:20:00Z", IPHONE));
    events.push(open("r2", "2026-11-23T10:30:00Z", APPLE_MPP));
    events.push(open("r3", "2026-11-24T10:00:00Z", IPHONE));
    let click = |r: &str, url: &str, ua: &str| {
        let mut e = ev(
            "acme",
            EventType::Clicked,
            spring,
            r,
            "2026-11-23T11:00:00Z",
        );
        e.link_url = Some(url.into());
        e.context.user_agent = Some(ua.into());
        e
    };
    events.push(click("r0", LINK_A, IPHONE));
    events.push(click("r0", LINK_A, IPHONE));
    events.push(click("r1", LINK_B, IPHONE));
    events.push(click("r4", LINK_A, SCANNER));
    events.push(ev(
        "acme",
        EventType::Complained,
        spring,
        "r5",
        "2026-11-23T12:00:00Z",
    ));
    events.push(ev(
        "acme",
        EventType::Unsubscribed,
        spring,
        "r6",
        "2026-11-23T12:00:00Z",
    ));
    let mut conversion = ev(
        "acme",
        EventType::Conversion,
        spring,
        "r0",
        "2026-11-24T15:00:00Z",
    );
    conversion.value = Some(59.90);
    events.push(conversion);
    events
}

/// Folds events in batches of `batch`, storing each batch as the writer would.
fn store_events(store: &MemoryRollupReader, events: &[Event], batch: usize) {
    for chunk in events.chunks(batch) {
        let mut agg = Aggregate::default();
        for e in chunk {
            agg.add(e);
        }
        let last_seen = chunk.iter().map(|e| e.event_time).max().unwrap();
        store.add_aggregate(&agg, &last_seen.to_rfc3339());
    }
}

/// A campaign's day item written directly, with its directory entry.
fn direct_day(store: &MemoryRollupReader, tenant: &str, campaign: &str, day: &str, c: &Counters) {
    let pk = rollup_partition(tenant, &Scope::Campaign(campaign.into()), Grain::Day);
    store.add_rollup(&pk, &format!("D#{day}"), c);
    store.set_directory(
        &format!("C#{tenant}"),
        &format!("c:{campaign}"),
        &format!("{day}T23:00:00Z"),
    );
}

fn direct_uniques(
    store: &MemoryRollupReader,
    tenant: &str,
    campaign: &str,
    kind: UniqueKind,
    recipients: &[&str],
) {
    let members: Vec<String> = recipients.iter().map(|r| fingerprint(tenant, r)).collect();
    store.add_unique(
        &unique_partition(tenant, campaign, kind),
        "B#03",
        members.iter().map(String::as_str),
    );
}

fn route_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "v1", "campaigns", _] => "/v1/campaigns/{campaign}".into(),
        ["", "v1", "campaigns", _, rest] => format!("/v1/campaigns/{{campaign}}/{rest}"),
        _ => path.into(),
    }
}

async fn get(app: &App, key: Option<&str>, path: &str, query: &str) -> (u16, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let req = stats_request(&route_of(path), path, query, &headers);
    let resp = stats_function::handle(app, req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let status = resp.status().as_u16();
    (status, serde_json::from_slice(resp.body()).unwrap())
}

async fn ok(app: &App, key: &str, path: &str, query: &str) -> Value {
    let (status, body) = get(app, Some(key), path, query).await;
    assert_eq!(status, 200, "{path}?{query}: {body}");
    body
}

fn approx(v: &Value, expected: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((got - expected).abs() < 1e-9, "{got} != {expected}");
}

#[tokio::test]
async fn overview_counts_and_rates_from_aggregated_events() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 7);
    let o = ok(&f.app, &f.acme, "/v1/campaigns/spring", "").await;
    assert_eq!(o["campaign_id"], "spring");
    assert_eq!(
        (&o["from"], &o["to"]),
        (
            &json!("2026-11-23T00:00:00Z"),
            &json!("2026-11-25T00:00:00Z")
        ),
        "the campaign's whole life"
    );
    assert_eq!(o["range_covers_campaign"], true);
    let c = &o["counts"];
    for (field, n) in [
        ("sent", 10),
        ("delivered", 8),
        ("bounced", 2),
        ("bounced_hard", 1),
        ("bounced_soft", 1),
        ("complained", 1),
        ("failed", 0),
        ("unsubscribed", 1),
        ("opens_human", 5),
        ("opens_machine", 1),
        ("clicks_human", 3),
        ("clicks_bot", 1),
        ("conversions", 1),
    ] {
        assert_eq!(c[field], n, "{field}");
    }
    approx(&c["conversion_value"], 59.9);
    approx(&c["cost"], 0.001);
    assert_eq!(o["machine_opens_by_reason"], json!({"apple_mpp_agent": 1}));
    assert_eq!(o["bot_clicks_by_reason"], json!({"scanner_agent": 1}));
    assert_eq!(o["unique"], json!({"opens_human": 3, "clicks_human": 2}));
    let r = &o["rates"];
    approx(&r["delivery_rate"], 8.0 / 10.0);
    approx(&r["open_rate"], 3.0 / 8.0);
    approx(&r["click_rate"], 2.0 / 8.0);
    approx(&r["click_to_open_rate"], 2.0 / 3.0);
    approx(&r["bounce_rate"], 2.0 / 10.0);
    approx(&r["complaint_rate"], 1.0 / 8.0);
    approx(&r["unsubscribe_rate"], 1.0 / 8.0);
    let l = &o["latency"];
    assert_eq!(l["count"], 8);
    approx(&l["avg_ms"], 1350.0);
    let (p50, p99) = (l["p50_ms"].as_u64().unwrap(), l["p99_ms"].as_u64().unwrap());
    assert!((1300..=1600).contains(&p50), "{l}");
    assert!((1700..=2100).contains(&p99), "{l}");
}

#[tokio::test]
async fn batching_does_not_change_the_numbers() {
    let one = fixture();
    store_events(&one.app.reader, &spring_events(), 1);
    let all = fixture();
    store_events(&all.app.reader, &spring_events(), 1000);
    for path in [
        "/v1/campaigns/spring",
        "/v1/campaigns/spring/links",
        "/v1/campaigns/spring/channels",
        "/v1/campaigns/spring/timeseries",
        "/v1/channels",
    ] {
        assert_eq!(
            ok(&one.app, &one.acme, path, "").await,
            ok(&all.app, &all.acme, path, "").await,
            "{path}"
        );
    }
}

#[tokio::test]
async fn overview_over_part_of_a_campaign_leaves_out_lifetime_uniques() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 50);
    let o = ok(
        &f.app,
        &f.acme,
        "/v1/campaigns/spring",
        "from=2026-11-23&to=2026-11-23",
    )
    .await;
    assert_eq!(
        (&o["from"], &o["to"]),
        (
            &json!("2026-11-23T00:00:00Z"),
            &json!("2026-11-24T00:00:00Z")
        )
    );
    assert_eq!(o["range_covers_campaign"], false);
    assert_eq!(o["counts"]["opens_human"], 4, "r3's open was the next day");
    assert_eq!(o["counts"]["conversions"], 0);
    assert_eq!(o["unique"]["opens_human"], 3, "still the whole campaign's");
    assert!(o["rates"]["open_rate"].is_null());
    assert!(o["rates"]["click_rate"].is_null());
    assert!(o["rates"]["click_to_open_rate"].is_null());
    approx(&o["rates"]["delivery_rate"], 0.8);

    let wide = ok(
        &f.app,
        &f.acme,
        "/v1/campaigns/spring",
        "from=2026-11-01&to=2026-11-30",
    )
    .await;
    assert_eq!(wide["range_covers_campaign"], true);
    approx(&wide["rates"]["open_rate"], 3.0 / 8.0);
    let whole = ok(&f.app, &f.acme, "/v1/campaigns/spring", "").await;
    assert_eq!(wide["counts"], whole["counts"]);
    assert_eq!(wide["rates"], whole["rates"]);
}

#[tokio::test]
async fn zero_denominators_give_null_rates() {
    let f = fixture();
    let store = &f.app.reader;
    // Opens and clicks arrived, sends and deliveries did not (yet).
    let c = Counters {
        opens_human: 3,
        clicks_human: 1,
        ..Default::default()
    };
    direct_day(store, "acme", "early", "2026-11-20", &c);
    direct_uniques(store, "acme", "early", UniqueKind::Opens, &["a", "b"]);
    direct_uniques(store, "acme", "early", UniqueKind::Clicks, &["a"]);
    let o = ok(&f.app, &f.acme, "/v1/campaigns/early", "").await;
    let r = &o["rates"];
    for rate in [
        "delivery_rate",
        "open_rate",
        "click_rate",
        "bounce_rate",
        "complaint_rate",
        "unsubscribe_rate",
    ] {
        assert!(r[rate].is_null(), "{rate}: {r}");
    }
    approx(&r["click_to_open_rate"], 0.5);
    assert_eq!(o["latency"]["count"], 0);
    assert!(o["latency"]["avg_ms"].is_null() && o["latency"]["p95_ms"].is_null());

    // Sent and delivered, nobody opened: zero rates, and no click-to-open.
    let c = Counters {
        sent: 4,
        delivered: 4,
        ..Default::default()
    };
    direct_day(store, "acme", "quiet", "2026-11-20", &c);
    let o = ok(&f.app, &f.acme, "/v1/campaigns/quiet", "").await;
    let r = &o["rates"];
    assert_eq!(r["open_rate"], 0.0);
    assert_eq!(r["click_rate"], 0.0);
    assert_eq!(r["bounce_rate"], 0.0);
    assert!(r["click_to_open_rate"].is_null());

    // An empty range: every count zero, every rate null.
    let o = ok(
        &f.app,
        &f.acme,
        "/v1/campaigns/quiet",
        "from=2026-11-25&to=2026-11-26",
    )
    .await;
    assert_eq!(
        o["counts"],
        serde_json::to_value(Counts::default()).unwrap()
    );
    assert_eq!(o["rates"], serde_json::to_value(Rates::default()).unwrap());
}

#[tokio::test]
async fn campaign_time_series_by_hour_and_by_day() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 9);
    let s = ok(
        &f.app,
        &f.acme,
        "/v1/campaigns/spring/timeseries",
        "grain=hour&from=2026-11-23T09:00:00Z&to=2026-11-23T13:00:00Z",
    )
    .await;
    assert_eq!(
        (&s["campaign_id"], &s["grain"]),
        (&json!("spring"), &json!("hour"))
    );
    let points = s["points"].as_array().unwrap();
    let starts: Vec<&str> = points
        .iter()
        .map(|p| p["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-11-23T09:00:00Z",
            "2026-11-23T10:00:00Z",
            "2026-11-23T11:00:00Z",
            "2026-11-23T12:00:00Z"
        ]
    );
    let field = |name: &str| -> Vec<u64> {
        points
            .iter()
            .map(|p| p["counts"][name].as_u64().unwrap())
            .collect()
    };
    assert_eq!(field("sent"), [10, 0, 0, 0]);
    assert_eq!(field("opens_human"), [0, 4, 0, 0]);
    assert_eq!(field("opens_machine"), [0, 1, 0, 0]);
    assert_eq!(field("clicks_human"), [0, 0, 3, 0]);
    assert_eq!(field("complained"), [0, 0, 0, 1]);
    approx(&points[0]["rates"]["delivery_rate"], 0.8);
    assert!(points[1]["rates"]["delivery_rate"].is_null());
    assert!(
        points[0]["rates"]["open_rate"].is_null(),
        "no uniques per period"
    );
    assert_eq!(s["totals"]["sent"], 10);

    let s = ok(
        &f.app,
        &f.acme,
        "/v1/campaigns/spring/timeseries",
        "grain=day&from=2026-11-22&to=2026-11-25",
    )
    .await;
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    let opens: Vec<u64> = points
        .iter()
        .map(|p| p["counts"]["opens_human"].as_u64().unwrap())
        .collect();
    assert_eq!(opens, [0, 4, 1, 0], "missing days are zeros");
    assert_eq!(
        (&s["from"], &s["to"]),
        (
            &json!("2026-11-22T00:00:00Z"),
            &json!("2026-11-26T00:00:00Z")
        )
    );

    // Defaults: daily, the last 30 days through today (now is 30 Nov).
    let s = ok(&f.app, &f.acme, "/v1/campaigns/spring/timeseries", "").await;
    assert_eq!(s["grain"], "day");
    assert_eq!(s["points"].as_array().unwrap().len(), 30);
    assert_eq!(
        (&s["from"], &s["to"]),
        (
            &json!("2026-11-01T00:00:00Z"),
            &json!("2026-12-01T00:00:00Z")
        )
    );
    assert_eq!(s["totals"]["sent"], 10);
}

#[tokio::test]
async fn a_local_day_is_the_sum_of_its_24_hours() {
    let f = fixture();
    let mut events = Vec::new();
    // 23 Nov in Berlin (UTC+01:00) runs from 22 Nov 23:00 to 23 Nov 23:00 UTC.
    for (t, n) in [
        ("2026-11-22T22:59:00Z", 1), // 22 Nov local
        ("2026-11-22T23:00:00Z", 2), // 23 Nov local, first hour
        ("2026-11-23T12:00:00Z", 4),
        ("2026-11-23T22:59:00Z", 8),  // 23 Nov local, last hour
        ("2026-11-23T23:00:00Z", 16), // 24 Nov local
    ] {
        for i in 0..n {
            events.push(ev(
                "acme",
                EventType::Sent,
                Some("spring"),
                &format!("r{i}"),
                t,
            ));
        }
    }
    store_events(&f.app.reader, &events, 100);
    let s = ok(
        &f.app,
        &f.acme,
        "/v1/timeseries",
        "grain=hour&from=2026-11-23T00:00:00%2B01:00&to=2026-11-24T00:00:00%2B01:00",
    )
    .await;
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 24);
    assert_eq!(points[0]["start"], "2026-11-22T23:00:00Z");
    let sum: u64 = points
        .iter()
        .map(|p| p["counts"]["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 2 + 4 + 8);
    assert_eq!(s["totals"]["sent"], 14);
    // The UTC day holds different hours.
    let day = ok(
        &f.app,
        &f.acme,
        "/v1/timeseries",
        "from=2026-11-23&to=2026-11-23",
    )
    .await;
    assert_eq!(day["totals"]["sent"], 4 + 8 + 16);
}

#[tokio::test]
async fn tenant_series_adds_up_every_campaign_and_none() {
    let f = fixture();
    let mut events = spring_events();
    events.push(ev(
        "acme",
        EventType::Sent,
        Some("autumn"),
        "x",
        "2026-11-23T09:00:00Z",
    ));
    events.push(ev(
        "acme",
        EventType::Sent,
        None,
        "y",
        "2026-11-23T09:00:00Z",
    ));
    store_events(&f.app.reader, &events, 10);
    let s = ok(
        &f.app,
        &f.acme,
        "/v1/timeseries",
        "from=2026-11-23&to=2026-11-24",
    )
    .await;
    assert!(s.get("campaign_id").is_none());
    let sent: Vec<u64> = s["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["counts"]["sent"].as_u64().unwrap())
        .collect();
    assert_eq!(sent, [12, 0]);
    approx(&s["rates"]["delivery_rate"], 8.0 / 12.0);
}

#[tokio::test]
async fn top_links_with_unique_clickers() {
    let f = fixture();
    let mut events = spring_events();
    // r5 also clicks B, twice: B gets 3 human clicks from 2 people, A 2 from 1.
    for _ in 0..2 {
        let mut e = ev(
            "acme",
            EventType::Clicked,
            Some("spring"),
            "r5",
            "2026-11-24T08:00:00Z",
        );
        e.link_url = Some(LINK_B.into());
        events.push(e);
    }
    store_events(&f.app.reader, &events, 5);
    let l = ok(&f.app, &f.acme, "/v1/campaigns/spring/links", "").await;
    assert_eq!(l["links_total"], 2);
    assert_eq!(
        l["links"],
        json!([
            {"link_id": link_id(LINK_B), "url": LINK_B, "clicks_human": 3, "clicks_bot": 0, "unique_clickers_human": 2},
            {"link_id": link_id(LINK_A), "url": LINK_A, "clicks_human": 2, "clicks_bot": 1, "unique_clickers_human": 1},
        ])
    );
    let l = ok(&f.app, &f.acme, "/v1/campaigns/spring/links", "limit=1").await;
    assert_eq!(l["links_total"], 2);
    assert_eq!(l["links"].as_array().unwrap().len(), 1);
    assert_eq!(l["links"][0]["url"], LINK_B);
    // Only the 23rd: B has r1's single click then.
    let l = ok(
        &f.app,
        &f.acme,
        "/v1/campaigns/spring/links",
        "from=2026-11-23&to=2026-11-23",
    )
    .await;
    assert_eq!(l["range_covers_campaign"], false);
    assert_eq!(l["links"][0]["url"], LINK_A);
    assert_eq!(l["links"][1]["clicks_human"], 1);
}

#[tokio::test]
async fn channels_break_down_by_channel_and_provider() {
    let f = fixture();
    let mut events = spring_events();
    for i in 0..3 {
        let mut e = ev(
            "acme",
            EventType::Sent,
            None,
            &format!("s{i}"),
            "2026-11-24T09:00:00Z",
        );
        e.channel = Some("sms".into());
        e.provider = None;
        events.push(e);
    }
    let mut e = ev(
        "acme",
        EventType::Delivered,
        None,
        "s0",
        "2026-11-24T09:01:00Z",
    );
    e.channel = Some("sms".into());
    e.provider = None;
    events.push(e);
    let mut old = ev("acme", EventType::Sent, None, "z", "2026-06-01T09:00:00Z");
    old.provider = Some("sendgrid".into());
    store_events(&f.app.reader, &events, 8);
    store_events(&f.app.reader, &[old], 1);

    let c = ok(&f.app, &f.acme, "/v1/channels", "").await;
    assert_eq!(
        (&c["from"], &c["to"]),
        (
            &json!("2026-11-01T00:00:00Z"),
            &json!("2026-12-01T00:00:00Z")
        )
    );
    let channels = c["channels"].as_array().unwrap();
    let names: Vec<(&str, Value)> = channels
        .iter()
        .map(|ch| (ch["channel"].as_str().unwrap(), ch["provider"].clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("email", json!("sendgrid")),
            ("email", json!("ses")),
            ("sms", Value::Null),
        ],
        "by channel, then provider; outside the range counts zero"
    );
    assert!(c["next_cursor"].is_null(), "one page");
    let ses = &channels[1];
    assert_eq!(ses["counts"]["sent"], 10);
    assert_eq!(ses["counts"]["opens_human"], 5);
    assert_eq!(ses["latency"]["count"], 8);
    approx(&ses["rates"]["bounce_rate"], 0.2);
    assert!(
        ses["rates"]["open_rate"].is_null(),
        "uniques are per campaign"
    );
    approx(&channels[2]["rates"]["delivery_rate"], 1.0 / 3.0);
    assert_eq!(channels[0]["counts"]["sent"], 0);
    assert!(channels[0]["last_seen"]
        .as_str()
        .unwrap()
        .starts_with("2026-06-01"));

    let june = ok(
        &f.app,
        &f.acme,
        "/v1/channels",
        "from=2026-06-01&to=2026-06-30",
    )
    .await;
    assert_eq!(june["channels"][0]["provider"], "sendgrid");
    assert_eq!(june["channels"][0]["counts"]["sent"], 1);
}

#[tokio::test]
async fn a_campaign_breaks_down_by_channel_and_provider() {
    let f = fixture();
    let mut events = spring_events();
    // Two of spring's recipients also get a text through Twilio, the next day.
    for (i, kind) in [EventType::Sent, EventType::Sent, EventType::Delivered]
        .into_iter()
        .enumerate()
    {
        let mut e = ev(
            "acme",
            kind,
            Some("spring"),
            &format!("r{}", i % 2),
            "2026-11-24T09:00:00Z",
        );
        e.message_id = Some(format!("sms-{i}"));
        e.channel = Some("sms".into());
        e.provider = Some("twilio".into());
        events.push(e);
    }
    // Another campaign's email does not count.
    events.push(ev(
        "acme",
        EventType::Sent,
        Some("autumn"),
        "x",
        "2026-11-23T09:00:00Z",
    ));
    store_events(&f.app.reader, &events, 7);

    let o = ok(&f.app, &f.acme, "/v1/campaigns/spring", "").await;
    let c = ok(&f.app, &f.acme, "/v1/campaigns/spring/channels", "").await;
    assert_eq!(c["campaign_id"], "spring");
    assert_eq!(c["truncated"], false);
    assert_eq!(
        (&c["from"], &c["to"]),
        (
            &json!("2026-11-23T00:00:00Z"),
            &json!("2026-11-25T00:00:00Z")
        )
    );
    let channels = c["channels"].as_array().unwrap();
    let names: Vec<(&str, &str)> = channels
        .iter()
        .map(|ch| {
            (
                ch["channel"].as_str().unwrap(),
                ch["provider"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("email", "ses"), ("sms", "twilio")]);
    // Every counter of the channels adds up to the campaign's.
    for (name, total) in o["counts"].as_object().unwrap() {
        let Some(total) = total.as_u64() else {
            continue;
        };
        let sum: u64 = channels
            .iter()
            .map(|ch| ch["counts"][name].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(sum, total, "{name}");
    }
    assert_eq!(channels[1]["counts"]["sent"], 2);
    approx(&channels[1]["rates"]["delivery_rate"], 0.5);
    assert_eq!(
        channels[0]["counts"]["opens_machine"],
        o["counts"]["opens_machine"]
    );
    assert!(
        channels[0]["rates"]["open_rate"].is_null(),
        "uniques are per campaign"
    );
    // A range: the first day only.
    let day = ok(
        &f.app,
        &f.acme,
        "/v1/campaigns/spring/channels",
        "from=2026-11-23&to=2026-11-23",
    )
    .await;
    assert_eq!(day["channels"].as_array().unwrap().len(), 1, "{day}");
    assert_eq!(day["channels"][0]["counts"]["sent"], 10);
    // An unknown campaign is 404, like its overview.
    let (status, _) = get(&f.app, Some(&f.acme), "/v1/campaigns/nope/channels", "").await;
    assert_eq!(status, 404);
}

/// A message's trail as the aggregate leaves it: its delivery and hits, each judged.
fn trail_of(delivered: &str, events: &[Event]) -> Trail {
    let mut trail = Trail::default();
    trail.deliver(
        delivered
            .parse::<DateTime<Utc>>()
            .unwrap()
            .timestamp_millis(),
    );
    for e in events {
        let view = beacon_domain::event::EventView::from(e);
        let verdict = machine_verdict(&view).unwrap();
        let link = e.link_url.as_deref().map(link_id);
        trail.add(Hit::of(&view, link, verdict).unwrap());
    }
    trail
}

#[tokio::test]
async fn a_recipients_recent_messages_show_each_hit_with_its_verdict() {
    let f = fixture();
    let with_agent = |mut e: Event, ua: &str| {
        e.context =
            beacon_domain::event::context::request_context(None, Some(ua), Default::default());
        e
    };
    let human = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
    // An older message opened by its reader; a newer one fetched by Apple's proxy, then
    // clicked by the person and by a scanner on the honeypot.
    let old = trail_of(
        "2026-11-20T09:00:00Z",
        &[with_agent(
            ev(
                "acme",
                EventType::Opened,
                Some("spring"),
                "r0",
                "2026-11-20T10:00:00Z",
            ),
            human,
        )],
    );
    let mut click = ev(
        "acme",
        EventType::Clicked,
        Some("autumn"),
        "r0",
        "2026-11-24T12:00:00Z",
    );
    click.link_url = Some("https://shop.example/a".into());
    let mut trap = ev(
        "acme",
        EventType::Clicked,
        Some("autumn"),
        "r0",
        "2026-11-24T08:00:05Z",
    );
    trap.link_url = Some("https://shop.example/#beacon-honeypot".into());
    let new = trail_of(
        "2026-11-24T08:00:00Z",
        &[
            with_agent(
                ev(
                    "acme",
                    EventType::Opened,
                    Some("autumn"),
                    "r0",
                    "2026-11-24T08:00:03Z",
                ),
                "Mozilla/5.0",
            ),
            with_agent(click, human),
            with_agent(trap, human),
        ],
    );
    f.app.reader.put_trail("acme", "m-old", old);
    f.app.reader.put_trail("acme", "m-new", new);
    // Another tenant's trail of a recipient of the same name.
    let theirs = trail_of(
        "2026-11-24T08:00:00Z",
        &[with_agent(
            ev(
                "globex",
                EventType::Opened,
                Some("x"),
                "r0",
                "2026-11-25T08:00:00Z",
            ),
            human,
        )],
    );
    f.app.reader.put_trail("globex", "m-theirs", theirs);

    let r = ok(&f.app, &f.acme, "/v1/recipients/r0/messages", "").await;
    assert_eq!(r["recipient_id"], "r0");
    let messages = r["messages"].as_array().unwrap();
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m-new", "m-old"], "newest first; nothing of globex");
    let m = &messages[0];
    assert_eq!(m["campaign_id"], "autumn");
    assert_eq!(m["delivered_at"], "2026-11-24T08:00:00Z");
    let hits: Vec<(&str, &str, bool, &str, bool)> = m["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["at"].as_str().unwrap(),
                h["kind"].as_str().unwrap(),
                h["machine"].as_bool().unwrap(),
                h["reason"].as_str().unwrap(),
                h["honeypot"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            (
                "2026-11-24T08:00:03Z",
                "open",
                true,
                "apple_mpp_agent",
                false
            ),
            ("2026-11-24T08:00:05Z", "click", true, "honeypot", true),
            ("2026-11-24T12:00:00Z", "click", false, "default", false),
        ]
    );
    assert_eq!(m["hits"][2]["link"], link_id("https://shop.example/a"));
    assert_eq!(messages[1]["hits"][0]["machine"], false);

    let one = ok(&f.app, &f.acme, "/v1/recipients/r0/messages", "limit=1").await;
    assert_eq!(one["messages"].as_array().unwrap().len(), 1);
    let none = ok(&f.app, &f.acme, "/v1/recipients/r9/messages", "").await;
    assert_eq!(none["messages"], json!([]));
    let (status, body) = get(
        &f.app,
        Some(&f.acme),
        "/v1/recipients/r0/messages",
        "limit=26",
    )
    .await;
    assert_eq!(
        (status, body["error"]["parameter"].as_str()),
        (400, Some("limit"))
    );
}

#[tokio::test]
async fn campaigns_lists_the_tenants_own() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 100);
    let c = Counters {
        sent: 1,
        ..Default::default()
    };
    direct_day(&f.app.reader, "acme", "summer", "2026-11-29", &c);
    direct_day(&f.app.reader, "globex", "winter", "2026-11-29", &c);
    let list = ok(&f.app, &f.acme, "/v1/campaigns", "").await;
    assert_eq!(
        list,
        json!({"campaigns": [
            {"campaign_id": "spring", "last_seen": "2026-11-24T15:00:00+00:00"},
            {"campaign_id": "summer", "last_seen": "2026-11-29T23:00:00Z"},
        ], "next_cursor": null})
    );
    let list = ok(&f.app, &f.globex, "/v1/campaigns", "").await;
    assert_eq!(list["campaigns"].as_array().unwrap().len(), 1);
    assert_eq!(list["campaigns"][0]["campaign_id"], "winter");
}

#[tokio::test]
async fn a_key_only_ever_sees_its_own_tenant() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 100);
    // globex has a campaign with the same id, and one acme does not have.
    let big = Counters {
        sent: 1000,
        delivered: 1000,
        ..Default::default()
    };
    direct_day(&f.app.reader, "globex", "spring", "2026-11-23", &big);
    direct_day(&f.app.reader, "globex", "winter", "2026-11-23", &big);
    direct_uniques(
        &f.app.reader,
        "globex",
        "spring",
        UniqueKind::Opens,
        &["g1", "g2"],
    );
    // Its own rows under names that look like acme's ids must not leak either.
    f.app.reader.add_rollup(
        &rollup_partition("globex", &Scope::Tenant, Grain::Day),
        "D#2026-11-23",
        &big,
    );

    let mine = ok(&f.app, &f.acme, "/v1/campaigns/spring", "").await;
    assert_eq!(mine["counts"]["sent"], 10);
    assert_eq!(mine["unique"]["opens_human"], 3);
    let theirs = ok(&f.app, &f.globex, "/v1/campaigns/spring", "").await;
    assert_eq!(theirs["counts"]["sent"], 1000);
    assert_eq!(theirs["unique"]["opens_human"], 2);

    // acme asking for globex's campaign: as if it did not exist.
    for path in [
        "/v1/campaigns/winter",
        "/v1/campaigns/winter/timeseries",
        "/v1/campaigns/winter/links",
    ] {
        let (status, body) = get(&f.app, Some(&f.acme), path, "").await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "campaign_not_found");
    }
    let series = ok(
        &f.app,
        &f.acme,
        "/v1/timeseries",
        "from=2026-11-23&to=2026-11-23",
    )
    .await;
    assert_eq!(series["totals"]["sent"], 10);
    let channels = ok(&f.app, &f.acme, "/v1/channels", "").await;
    assert_eq!(channels["channels"].as_array().unwrap().len(), 1);

    // A request cannot name another tenant: there is no parameter for it.
    let (status, body) = get(&f.app, Some(&f.acme), "/v1/campaigns", "tenant_id=globex").await;
    assert_eq!(
        (status, body["error"]["parameter"].as_str()),
        (400, Some("tenant_id"))
    );

    // Every partition acme's requests read is acme's.
    let reads = f.app.reader.partitions_read();
    assert!(!reads.is_empty());
    let acme_reads = reads.iter().filter(|pk| !pk.contains("globex")).count();
    let globex_reads = reads.iter().filter(|pk| pk.contains("globex")).count();
    assert_eq!(globex_reads, 4, "only globex's own overview: {reads:?}");
    assert!(
        reads
            .iter()
            .filter(|pk| !pk.contains("globex"))
            .all(|pk| pk.starts_with("R#acme#") || pk.starts_with("U#acme#") || pk == "C#acme"),
        "{reads:?}"
    );
    assert!(acme_reads > 0);
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 100);
    for (path, query, param) in [
        ("/v1/timeseries", "grain=week", "grain"),
        ("/v1/timeseries", "from=yesterday", "from"),
        ("/v1/timeseries", "to=2026-02-30", "to"),
        ("/v1/timeseries", "from=2026-11-20&to=2026-11-10", "to"),
        (
            "/v1/timeseries",
            "grain=hour&from=2026-10-01&to=2026-11-20",
            "from",
        ),
        ("/v1/timeseries", "from=2024-01-01", "from"),
        ("/v1/channels", "grain=hour", "grain"),
        ("/v1/channels", "form=2026-11-01", "form"),
        ("/v1/campaigns/spring", "from=11/23/2026", "from"),
        ("/v1/campaigns/spring", "limit=5", "limit"),
        ("/v1/campaigns/spring/links", "limit=0", "limit"),
        ("/v1/campaigns/spring/links", "limit=501", "limit"),
        ("/v1/campaigns/spring/links", "limit=many", "limit"),
        ("/v1/campaigns/spring/timeseries", "grain=minute", "grain"),
    ] {
        let (status, body) = get(&f.app, Some(&f.acme), path, query).await;
        assert_eq!(status, 400, "{path}?{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{body}");
        assert_eq!(body["error"]["parameter"], param, "{path}?{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{param}`")) || message.contains("days"),
            "{message}"
        );
    }
    let long = format!("/v1/campaigns/{}", "x".repeat(300));
    let (status, body) = get(&f.app, Some(&f.acme), &long, "").await;
    assert_eq!(
        (status, body["error"]["parameter"].as_str()),
        (400, Some("campaign"))
    );
    // The limits themselves are fine.
    ok(
        &f.app,
        &f.acme,
        "/v1/timeseries",
        "grain=hour&from=2026-10-24&to=2026-11-23",
    )
    .await;
    ok(&f.app, &f.acme, "/v1/campaigns/spring/links", "limit=500").await;
}

#[tokio::test]
async fn missing_wrong_and_revoked_keys_are_401() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 100);
    for key in [None, Some("bk_not-a-key"), Some("not even a key")] {
        let (status, body) = get(&f.app, key, "/v1/campaigns/spring", "").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );
        assert!(body.get("counts").is_none());
    }
    let mut record = f
        .app
        .keys
        .find(&hash_api_key(&f.acme))
        .await
        .unwrap()
        .unwrap();
    record.revoked = true;
    f.app.keys.save(&record).await.unwrap();
    let (status, _) = get(&f.app, Some(&f.acme), "/v1/campaigns", "").await;
    assert_eq!(status, 401);
    // x-api-key works as well as Bearer.
    let req = stats_request(
        "/v1/campaigns",
        "/v1/campaigns",
        "",
        &[("x-api-key", &f.globex)],
    );
    assert_eq!(
        stats_function::handle(&f.app, req).await.unwrap().status(),
        200
    );
    assert!(
        f.app
            .reader
            .partitions_read()
            .iter()
            .all(|pk| pk.contains("globex")),
        "nothing is read for a refused key"
    );
}

#[tokio::test]
async fn unknown_campaign_and_route_are_404() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 100);
    let (status, body) = get(&f.app, Some(&f.acme), "/v1/campaigns/nope", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("campaign_not_found"))
    );
    let (status, body) = get(&f.app, Some(&f.acme), "/v1/campaigns/spr", "").await;
    assert_eq!(
        status, 404,
        "a prefix of a campaign is not the campaign: {body}"
    );
    let (status, body) = get(&f.app, Some(&f.acme), "/v1/campaigns/spring/opens", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn a_failing_store_is_503() {
    let f = fixture();
    store_events(&f.app.reader, &spring_events(), 100);
    f.app.reader.failing.store(true, Ordering::Relaxed);
    for path in [
        "/v1/campaigns",
        "/v1/campaigns/spring",
        "/v1/campaigns/spring/timeseries",
        "/v1/campaigns/spring/links",
        "/v1/timeseries",
        "/v1/channels",
    ] {
        let req = stats_request(
            &route_of(path),
            path,
            "",
            &[("authorization", &format!("Bearer {}", f.acme))],
        );
        let resp = stats_function::handle(&f.app, req).await.unwrap();
        assert_eq!(resp.status(), 503, "{path}");
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
    }
}

#[tokio::test]
async fn only_get_is_served() {
    let f = fixture();
    let req = beacon_aws::http::lambda_request(&beacon_aws::http::GatewayRequest {
        method: "POST",
        route: "/v1/campaigns",
        path: "/v1/campaigns",
        query: "",
        headers: &[("x-api-key".into(), f.acme.clone())],
        path_params: &Default::default(),
        body: b"{}",
        source_ip: "192.0.2.1",
    });
    assert_eq!(
        stats_function::handle(&f.app, req).await.unwrap().status(),
        405
    );
}

/// The OpenAPI file and the stats API doc name every route, count and rate.
#[test]
fn openapi_and_stats_doc_describe_every_route_and_field() {
    let openapi = include_str!("../openapi.yaml");
    let readme = include_str!("../../../docs/stats-api.md");
    assert!(openapi.starts_with("openapi: 3.1"));
    for route in stats_function::ROUTES {
        assert!(
            openapi.contains(&format!("\n  {route}:\n")),
            "openapi lacks {route}"
        );
        assert!(readme.contains(route), "docs/stats-api.md lacks {route}");
    }
    let rates = serde_json::to_value(Rates::default()).unwrap();
    for rate in rates.as_object().unwrap().keys() {
        assert!(
            openapi.contains(&format!("{rate}:")),
            "openapi lacks {rate}"
        );
        assert!(
            readme.contains(rate.as_str()),
            "docs/stats-api.md lacks {rate}"
        );
    }
    let counts = serde_json::to_value(Counts::default()).unwrap();
    for field in counts.as_object().unwrap().keys() {
        assert!(
            openapi.contains(&format!("{field}:")),
            "openapi lacks {field}"
        );
    }
    let reasons = beacon_domain::verdict::MACHINE_REASONS.join(", ");
    assert!(
        openapi.contains(&format!("enum: [{reasons}]")),
        "the MachineReason enum lists the verdict reasons: {reasons}"
    );
}
