//! Every route does bounded work: a tenant with far more data than one page (1,000
//! channel/provider pairs, 2,000 campaigns, a campaign with 1,000 days of data, 5,000
//! engagement recipients, 3,000 suppressions) costs each request no more DynamoDB
//! requests than the OpenAPI file's `x-beacon-max-dynamodb-calls` for its route (as the
//! in-memory store charges them, `stats_store::cost`), and paging through a listing
//! gives every item exactly once.

use beacon_aws::testkit::stats_post;
use beacon_aws::testkit::stats_request;
use beacon_domain::audience::engagement::{epoch_day, Action};
use beacon_domain::audience::suppression::{Reason, Suppression};
use beacon_domain::rollup::TENANTS_PARTITION;
use beacon_domain::rollup::{
    campaign_channel_partition, campaign_channel_sort_key, fingerprint, rollup_partition,
    unique_partition, Counters, Grain, Scope, UniqueKind,
};
use beacon_domain::testkit::memory::MemoryApiKeys;
use beacon_domain::testkit::memory::{MemoryAlerts, MemoryLinks, MemoryLive};
use beacon_domain::testkit::rollups::MemoryRollupReader;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use stats_function::StatsApp;
use std::collections::{BTreeMap, BTreeSet};

fn now() -> DateTime<Utc> {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

type App = StatsApp<MemoryRollupReader, MemoryApiKeys, MemoryLinks, MemoryLive, MemoryAlerts>;

const PAIRS: usize = 1000;
const CAMPAIGNS: usize = 2000;
const RECIPIENTS: usize = 5000;
const SUPPRESSED: usize = 3000;
const LONG_DAYS: i64 = 1000;
const LONG_PROVIDERS: usize = 5;

/// Each route's `x-beacon-max-dynamodb-calls`, from the OpenAPI file.
fn documented_maxima() -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut path = None;
    for line in include_str!("../openapi.yaml").lines() {
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        } else if let Some(n) = line
            .trim()
            .strip_prefix("x-beacon-max-dynamodb-calls:")
            .map(str::trim)
        {
            let route = path.clone().expect("a max inside a path");
            assert!(
                out.insert(route.clone(), n.parse().unwrap()).is_none(),
                "{route} twice"
            );
        }
    }
    out
}

fn day(d: i64) -> String {
    format!("D#{}", (now() - Duration::days(d)).format("%Y-%m-%d"))
}

fn sent(n: u64) -> Counters {
    Counters {
        sent: n,
        delivered: n,
        ..Default::default()
    }
}

/// acme with far more than a page of everything; globex small.
fn big_tenant() -> (App, String, String) {
    let reader = MemoryRollupReader::default();
    let dir = "C#acme";
    for i in 0..PAIRS {
        let (ch, p) = ("email", format!("p{i:04}"));
        reader.set_directory(dir, &format!("ch:{ch}:{p}"), "2026-11-29T10:00:00Z");
        let pk = rollup_partition("acme", &Scope::Channel(ch.into(), p), Grain::Day);
        reader.add_rollup(&pk, &day(1), &sent(i as u64 + 1));
    }
    for i in 0..CAMPAIGNS {
        reader.set_directory(dir, &format!("c:camp{i:05}"), "2026-11-29T10:00:00Z");
    }
    // A campaign sent every day for 1,000 days, one more each day back.
    reader.set_directory(dir, "c:long", "2026-11-30T10:00:00Z");
    let long = rollup_partition("acme", &Scope::Campaign("long".into()), Grain::Day);
    let long_hours = rollup_partition("acme", &Scope::Campaign("long".into()), Grain::Hour);
    for d in 0..LONG_DAYS {
        reader.add_rollup(&long, &day(d), &sent(d as u64 + 1));
        let hour = format!("H#{}", (now() - Duration::days(d)).format("%Y-%m-%dT10"));
        reader.add_rollup(&long_hours, &hour, &sent(1));
    }
    // ... through five providers: more channel items than one read takes.
    let long_channels = campaign_channel_partition("acme", "long");
    for d in 0..LONG_DAYS {
        for p in 0..LONG_PROVIDERS {
            let sk = campaign_channel_sort_key(&day(d), "email", &format!("p{p}"));
            reader.add_rollup(&long_channels, &sk, &sent(1));
        }
    }
    for kind in [UniqueKind::Opens, UniqueKind::Clicks] {
        for b in 0..16 {
            let members: Vec<String> = (0..100)
                .map(|r| fingerprint("acme", &format!("r{b}-{r}")))
                .collect();
            reader.add_unique(
                &unique_partition("acme", "long", kind),
                &format!("B#{b:02}"),
                members.iter().map(String::as_str),
            );
        }
    }
    let tenant_days = rollup_partition("acme", &Scope::Tenant, Grain::Day);
    for d in 0..LONG_DAYS {
        reader.add_rollup(&tenant_days, &day(d), &sent(1));
    }
    reader.set_directory(TENANTS_PARTITION, "acme", "2026-11-30T10:00:00Z");
    reader.set_directory(TENANTS_PARTITION, "globex", "2026-11-30T10:00:00Z");
    {
        let today = epoch_day(now().timestamp_millis());
        let mut audience = reader.audience.lock().unwrap();
        for (tenant, n) in [("acme", RECIPIENTS), ("globex", 10)] {
            for i in 0..n {
                let mut marks = BTreeMap::new();
                marks.insert(Action::Delivered.mark(tenant, &format!("m{i}")), today);
                if i % 5 == 0 {
                    marks.insert(Action::Clicked.mark(tenant, &format!("m{i}")), today);
                    marks.insert(Action::Opened.mark(tenant, &format!("m{i}")), today);
                }
                audience
                    .engagement
                    .insert((tenant.into(), format!("r{i:05}")), marks);
            }
        }
        let suppressions: Vec<Suppression> = (0..SUPPRESSED)
            .map(|i| Suppression {
                tenant: "acme".into(),
                channel: "email".into(),
                recipient: format!("r{i:05}"),
                reason: Reason::HardBounce,
                at_ms: now().timestamp_millis(),
                campaign: None,
            })
            .collect();
        audience.apply(&suppressions, &Default::default());
    }
    let keys = MemoryApiKeys::default();
    let (acme, globex) = (keys.issue("acme"), keys.issue("globex"));
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

fn route_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "v1", "campaigns", _] => "/v1/campaigns/{campaign}".into(),
        ["", "v1", "campaigns", _, rest] => format!("/v1/campaigns/{{campaign}}/{rest}"),
        ["", "v1", "suppressions", "check"] => path.into(),
        ["", "v1", "suppressions", _, _] => "/v1/suppressions/{channel}/{recipient}".into(),
        ["", "v1", "recipients", _, rest] => format!("/v1/recipients/{{recipient}}/{rest}"),
        ["", "v1", "segments", _] => "/v1/segments/{segment}".into(),
        _ => path.into(),
    }
}

/// A request's status, body and the most DynamoDB requests its reads took; asserts
/// they are within the route's documented maximum.
async fn call(app: &App, key: &str, path: &str, query: &str) -> (u16, Value, u32) {
    let route = route_of(path);
    let auth = format!("Bearer {key}");
    let req = if route == "/v1/suppressions/check" {
        stats_post(path, &[("authorization", &auth)], query.as_bytes())
    } else {
        stats_request(&route, path, query, &[("authorization", &auth)])
    };
    app.reader.reset_calls();
    let resp = stats_function::handle(app, req).await.unwrap();
    let calls = app.reader.dynamodb_calls();
    let max = documented_maxima()[&route];
    assert!(
        calls <= max,
        "{path}?{query}: {calls} DynamoDB calls, documented at most {max}: {:?}",
        app.reader.calls()
    );
    let status = resp.status().as_u16();
    (status, serde_json::from_slice(resp.body()).unwrap(), calls)
}

async fn ok(app: &App, key: &str, path: &str, query: &str) -> Value {
    let (status, body, _) = call(app, key, path, query).await;
    assert_eq!(status, 200, "{path}?{query}: {body}");
    body
}

#[test]
fn every_route_documents_its_maximum() {
    let maxima = documented_maxima();
    for route in stats_function::ROUTES {
        assert!(maxima.contains_key(route), "{route} has no maximum");
    }
    let readme = include_str!("../../../docs/stats-api.md");
    for (route, max) in &maxima {
        assert!(
            readme
                .lines()
                .any(|l| l.contains(&format!("`{route}`")) && l.contains(&format!("| {max} |"))),
            "docs/stats-api.md's table lacks {route} at most {max}"
        );
    }
}

#[tokio::test]
async fn every_route_stays_within_its_maximum_for_a_big_tenant() {
    let (app, acme, _) = big_tenant();
    let from_old = (now() - Duration::days(399)).format("%Y-%m-%d").to_string();
    let cases = [
        ("/v1/campaigns", String::new()),
        ("/v1/campaigns", "limit=1000".into()),
        ("/v1/campaigns/long", String::new()),
        ("/v1/campaigns/long", "from=2026-11-01&to=2026-11-30".into()),
        ("/v1/campaigns/long", format!("from={from_old}")),
        ("/v1/campaigns/long/timeseries", String::new()),
        ("/v1/campaigns/long/timeseries", format!("from={from_old}")),
        (
            "/v1/campaigns/long/timeseries",
            "grain=hour&from=2026-10-31".into(),
        ),
        ("/v1/campaigns/long/links", String::new()),
        ("/v1/campaigns/long/channels", String::new()),
        ("/v1/campaigns/long/channels", format!("from={from_old}")),
        ("/v1/timeseries", format!("from={from_old}")),
        ("/v1/channels", String::new()),
        ("/v1/channels", "limit=50".into()),
        ("/v1/suppressions", "limit=1000".into()),
        ("/v1/suppressions/email/r00001", String::new()),
        ("/v1/recipients/r00001/engagement", String::new()),
        ("/v1/recipients/r00001/messages", "limit=25".into()),
        ("/v1/segments/high", "limit=1000".into()),
    ];
    for (path, query) in &cases {
        ok(&app, &acme, path, query).await;
    }
    let many: Vec<String> = (0..1000).map(|i| format!("r{i:05}")).collect();
    let body = json!({"recipients": many}).to_string();
    let (status, check, calls) = call(&app, &acme, "/v1/suppressions/check", &body).await;
    assert_eq!(status, 200);
    assert_eq!(check["suppressed"].as_array().unwrap().len(), 1000);
    assert_eq!(calls, 10, "a BatchGetItem per 100 recipients");
}

#[tokio::test]
async fn a_campaign_with_more_channel_items_than_one_read_is_answered_for_its_last_whole_days() {
    let (app, acme, _) = big_tenant();
    let (status, body, calls) = call(&app, &acme, "/v1/campaigns/long/channels", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(calls, 3);
    assert_eq!(body["truncated"], true);
    // 4,000 items are 800 days of five providers; the earliest day read may lack some,
    // so 799 whole days are added up, each provider once a day.
    let channels = body["channels"].as_array().unwrap();
    assert_eq!(channels.len(), LONG_PROVIDERS);
    for c in channels {
        assert_eq!(c["counts"]["sent"], 799, "{c}");
    }
    assert_eq!(
        body["from"],
        format!(
            "{}T00:00:00Z",
            (now() - Duration::days(798)).format("%Y-%m-%d")
        )
    );
    // A range the read covers is answered whole.
    let from = (now() - Duration::days(9)).format("%Y-%m-%d");
    let (_, body, _) = call(
        &app,
        &acme,
        "/v1/campaigns/long/channels",
        &format!("from={from}"),
    )
    .await;
    assert_eq!(body["truncated"], false);
    assert_eq!(body["channels"][0]["counts"]["sent"], 10);
}

#[tokio::test]
async fn channels_page_through_every_pair_once_a_few_reads_at_a_time() {
    let (app, acme, _) = big_tenant();
    let mut seen = BTreeSet::new();
    let mut sent = 0;
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=50&cursor={c}"),
            None => "limit=50".into(),
        };
        let (status, page, calls) = call(&app, &acme, "/v1/channels", &query).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let channels = page["channels"].as_array().unwrap();
        assert!(channels.len() <= 50);
        assert_eq!(calls, 1 + 2 * channels.len() as u32, "one read per pair");
        for ch in channels {
            let provider = ch["provider"].as_str().unwrap().to_string();
            assert!(seen.insert(provider.clone()), "{provider} twice");
            sent += ch["counts"]["sent"].as_u64().unwrap();
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, PAIRS / 50);
    assert_eq!(seen.len(), PAIRS, "every pair");
    let all = PAIRS as u64;
    assert_eq!(sent, all * (all + 1) / 2, "every pair's numbers");
    // The default page, and pairs in key order.
    let first = ok(&app, &acme, "/v1/channels", "").await;
    let providers: Vec<&str> = first["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers.len(), 20);
    assert_eq!(providers[..2], ["p0000", "p0001"]);
}

#[tokio::test]
async fn campaigns_page_through_every_campaign_once() {
    let (app, acme, _) = big_tenant();
    for (limit, pages) in [(100, 21), (1000, 3)] {
        let mut seen = BTreeSet::new();
        let mut cursor: Option<String> = None;
        let mut n = 0;
        loop {
            let query = match &cursor {
                Some(c) => format!("limit={limit}&cursor={c}"),
                None => format!("limit={limit}"),
            };
            let (_, page, calls) = call(&app, &acme, "/v1/campaigns", &query).await;
            assert_eq!(calls, 1);
            n += 1;
            for c in page["campaigns"].as_array().unwrap() {
                let id = c["campaign_id"].as_str().unwrap().to_string();
                assert!(seen.insert(id.clone()), "{id} twice");
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), CAMPAIGNS + 1, "every campaign (and `long`)");
        assert_eq!(n, pages);
    }
    // A cursor is only good for its own listing.
    let channels = ok(&app, &acme, "/v1/channels", "").await;
    let other = channels["next_cursor"].as_str().unwrap();
    for (path, cursor) in [("/v1/campaigns", other), ("/v1/channels", "bm9wZQ")] {
        let (status, body, _) = call(&app, &acme, path, &format!("cursor={cursor}")).await;
        assert_eq!(
            (status, body["error"]["parameter"].as_str()),
            (400, Some("cursor"))
        );
    }
    for bad in ["limit=0", "limit=1001"] {
        let (status, _, _) = call(&app, &acme, "/v1/campaigns", bad).await;
        assert_eq!(status, 400);
    }
    let (status, _, _) = call(&app, &acme, "/v1/channels", "limit=51").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_campaign_with_more_days_than_a_range_answers_for_its_last_400() {
    let (app, acme, _) = big_tenant();
    let whole = ok(&app, &acme, "/v1/campaigns/long", "").await;
    // Day d back sent d + 1: the last 400 days sent 1 + ... + 400.
    assert_eq!(whole["counts"]["sent"], 400 * 401 / 2);
    assert_eq!(whole["range_covers_campaign"], false);
    assert!(whole["rates"]["open_rate"].is_null());
    assert_eq!(whole["from"], "2025-10-27T00:00:00Z");
    assert_eq!(whole["to"], "2026-12-01T00:00:00Z");
    assert_eq!(whole["unique"]["opens_human"], 1600);

    // A range inside the campaign's life: data outside it is seen without reading it.
    let part = ok(&app, &acme, "/v1/campaigns/long", "from=2026-11-29").await;
    assert_eq!(part["counts"]["sent"], 1 + 2);
    assert_eq!(part["range_covers_campaign"], false);
}

#[tokio::test]
async fn segments_of_a_big_tenant_come_from_the_snapshot_a_small_one_is_counted_live() {
    let (app, acme, globex) = big_tenant();
    // Before the scheduled job has counted acme: not ready, and said so.
    let auth = format!("Bearer {acme}");
    let req = stats_request(
        "/v1/segments",
        "/v1/segments",
        "",
        &[("authorization", &auth)],
    );
    let resp = stats_function::handle(&app, req).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "300");
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["error"]["code"], "not_ready");

    // globex's 10 recipients are counted per request.
    let small = ok(&app, &globex, "/v1/segments", "").await;
    assert_eq!(small["recipients"], 10);
    assert_eq!(small["segments"]["medium"]["recipients"], 2);
    assert_eq!(small["as_of"], "2026-11-30");

    let done = beacon_domain::audience::segments::refresh_all(&app.reader, now())
        .await
        .unwrap();
    assert!(done.iter().all(|d| d.published), "{done:?}");
    let (_, counts, calls) = call(&app, &acme, "/v1/segments", "").await;
    assert_eq!(calls, 1, "the snapshot only");
    assert_eq!(counts["recipients"], RECIPIENTS as u64, "{counts}");
    assert_eq!(
        counts["segments"]["medium"]["recipients"],
        RECIPIENTS as u64 / 5
    );
    assert_eq!(counts["segments"]["low"]["recipients"], 0);
    assert_eq!(
        counts["segments"]["inactive"]["recipients"],
        RECIPIENTS as u64 * 4 / 5
    );
    assert_eq!(counts["as_of"], "2026-11-30");
    assert_eq!(counts["computed_at"], "2026-11-30T12:00:00Z");
}

#[tokio::test]
async fn a_segment_pages_through_its_members_once() {
    let (app, acme, _) = big_tenant();
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=300&cursor={c}"),
            None => "limit=300".into(),
        };
        let page = ok(&app, &acme, "/v1/segments/inactive", &query).await;
        for r in page["recipients"].as_array().unwrap() {
            let id = r["recipient"].as_str().unwrap().to_string();
            assert!(seen.insert(id.clone()), "{id} twice");
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), RECIPIENTS * 4 / 5);
}
