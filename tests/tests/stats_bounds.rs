//! The stats API against the emulator, counting every DynamoDB request the handler
//! makes (an SDK interceptor, so retries count too): the first page of 500 channel
//! pairs stays within the documented maximum, and a read of something that does not
//! exist writes nothing (a series of an unknown campaign, a series of the year 0001),
//! while a range with data packs each of its closed months, the empty ones empty.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, Select, WriteRequest};
use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::testkit::stats_request;
use beacon_domain::rollup::month_pack;
use beacon_domain::rollup::{rollup_partition, Grain, Scope};
use beacon_domain::testkit::memory::MemoryApiKeys;
use beacon_domain::testkit::memory::{MemoryAlerts, MemoryLinks, MemoryLive};
use beacon_tests::TestStack;
use chrono::{Datelike, Duration, Utc};
use serde_json::Value;
use stats_function::StatsApp;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Records the operation (`X-Amz-Target`) of every request sent.
#[derive(Debug, Clone, Default)]
struct Requests(Arc<Mutex<Vec<String>>>);

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "count requests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?")
            .trim_start_matches("DynamoDB_20120810.")
            .to_string();
        self.0.lock().unwrap().push(target);
        Ok(())
    }
}

impl Requests {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// Each route's `x-beacon-max-dynamodb-calls`.
fn documented_max(route: &str) -> usize {
    let openapi = include_str!("../../functions/stats/openapi.yaml");
    let at = openapi
        .find(&format!("\n  {route}:\n"))
        .unwrap_or_else(|| panic!("{route} in the OpenAPI file"));
    let rest = &openapi[at..];
    let line = rest
        .lines()
        .find_map(|l| l.trim().strip_prefix("x-beacon-max-dynamodb-calls:"))
        .unwrap();
    line.trim().parse().unwrap()
}

struct Fixture {
    _stack: TestStack,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    app: StatsApp<DynamoRollupReader, MemoryApiKeys, MemoryLinks, MemoryLive, MemoryAlerts>,
    key: String,
    requests: Requests,
}

async fn fixture() -> Fixture {
    let stack = TestStack::start().await.unwrap();
    let table = stack.stack.function("stats").unwrap().1.env["BEACON_ROLLUPS_TABLE"].clone();
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.aws);
    let requests = Requests::default();
    let counted = aws_sdk_dynamodb::config::Builder::from(&stack.aws)
        .interceptor(requests.clone())
        .build();
    let keys = MemoryApiKeys::default();
    let key = keys.issue("acme");
    let app = StatsApp {
        reader: DynamoRollupReader::new(aws_sdk_dynamodb::Client::from_conf(counted), &table),
        keys,
        dashboard: Default::default(),
        now: Utc::now,
    };
    Fixture {
        _stack: stack,
        dynamo,
        table,
        app,
        key,
        requests,
    }
}

impl Fixture {
    async fn get(&self, route: &str, path: &str, query: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", self.key);
        let req = stats_request(route, path, query, &[("authorization", &auth)]);
        let resp = stats_function::handle(&self.app, req).await.unwrap();
        let status = resp.status().as_u16();
        (status, serde_json::from_slice(resp.body()).unwrap())
    }

    async fn put_all(&self, items: Vec<HashMap<String, AttributeValue>>) {
        for chunk in items.chunks(25) {
            let writes = chunk
                .iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect();
            let out = self
                .dynamo
                .batch_write_item()
                .request_items(&self.table, writes)
                .send()
                .await
                .unwrap();
            assert!(out.unprocessed_items.unwrap_or_default().is_empty());
        }
    }

    async fn item_count(&self) -> i32 {
        let mut total = 0;
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            total += out.count;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return total,
            }
        }
    }
}

fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[tokio::test]
async fn the_first_page_of_500_channel_pairs_makes_a_bounded_number_of_requests() {
    let f = fixture().await;
    let yesterday = (Utc::now() - Duration::days(1))
        .format("D#%Y-%m-%d")
        .to_string();
    let mut items = Vec::new();
    for i in 0..500u64 {
        let provider = format!("p{i:03}");
        items.push(item(&[
            ("pk", s("C#acme")),
            ("sk", s(format!("ch:email:{provider}"))),
            ("last_seen", s("2026-11-29T10:00:00Z")),
        ]));
        let pk = rollup_partition(
            "acme",
            &Scope::Channel("email".into(), provider),
            Grain::Day,
        );
        items.push(item(&[
            ("pk", s(pk)),
            ("sk", s(&yesterday)),
            ("sent", n(i + 1)),
            ("lat_10", n(1)),
            ("latency_count", n(1)),
        ]));
    }
    f.put_all(items).await;
    let max = documented_max("/v1/channels");

    for (query, page) in [("", 20), ("limit=50", 50)] {
        f.requests.take();
        let started = Instant::now();
        let (status, body) = f.get("/v1/channels", "/v1/channels", query).await;
        let took = started.elapsed();
        let requests = f.requests.take();
        assert_eq!(status, 200, "{body}");
        let channels = body["channels"].as_array().unwrap();
        assert_eq!(channels.len(), page);
        assert!(body["next_cursor"].is_string());
        assert_eq!(channels[0]["counts"]["sent"], 1);
        assert_eq!(channels[0]["latency"]["count"], 1, "the histogram is read");
        assert!(
            requests.len() <= max && requests.len() <= 1 + 2 * page,
            "{} requests (documented at most {max}): {requests:?}",
            requests.len()
        );
        assert_eq!(requests.iter().filter(|r| *r == "Query").count(), 1 + page);
        eprintln!(
            "/v1/channels?{query}: {} pairs, {} requests, {took:?}",
            page,
            requests.len()
        );
    }

    // The next page goes on where the first stopped.
    let (_, first) = f.get("/v1/channels", "/v1/channels", "limit=50").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = f
        .get(
            "/v1/channels",
            "/v1/channels",
            &format!("limit=50&cursor={cursor}"),
        )
        .await;
    let providers = |page: &Value| -> BTreeSet<String> {
        page["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["provider"].as_str().unwrap().to_string())
            .collect()
    };
    let (a, b) = (providers(&first), providers(&second));
    assert_eq!((a.len(), b.len()), (50, 50));
    assert!(a.is_disjoint(&b));
    assert_eq!(b.first().map(String::as_str), Some("p050"));
}

#[tokio::test]
async fn reading_what_does_not_exist_writes_nothing_and_a_month_with_data_is_packed() {
    let f = fixture().await;
    // acme has data in one closed month (three months back) and a campaign there.
    let month_day = (Utc::now() - Duration::days(90)).date_naive();
    let in_month = month_day.with_day(10).unwrap();
    let tenant_days = rollup_partition("acme", &Scope::Tenant, Grain::Day);
    f.put_all(vec![
        item(&[
            ("pk", s(&tenant_days)),
            ("sk", s(beacon_domain::rollup::keys::day_sort_key(in_month))),
            ("sent", n(7)),
        ]),
        item(&[
            ("pk", s("C#acme")),
            ("sk", s("c:spring")),
            ("last_seen", s("2026-11-29T10:00:00Z")),
        ]),
    ])
    .await;
    let before = f.item_count().await;

    // A campaign that does not exist, over 14 months: 404 after one GetItem.
    let from = (Utc::now() - Duration::days(399))
        .format("%Y-%m-%d")
        .to_string();
    f.requests.take();
    let (status, body) = f
        .get(
            "/v1/campaigns/{campaign}/timeseries",
            "/v1/campaigns/ghost/timeseries",
            &format!("from={from}"),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("campaign_not_found"))
    );
    assert_eq!(f.requests.take(), ["GetItem"]);
    assert_eq!(f.item_count().await, before, "no item written");

    // The year 0001, long before the tenant's first data: twelve empty months read,
    // none packed.
    let (status, body) = f
        .get(
            "/v1/timeseries",
            "/v1/timeseries",
            "from=0001-01-01&to=0001-12-31",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totals"]["sent"], 0);
    let requests = f.requests.take();
    assert!(!requests.iter().any(|r| r == "UpdateItem"), "{requests:?}");
    assert!(
        requests.len() <= documented_max("/v1/timeseries"),
        "{requests:?}"
    );
    assert_eq!(f.item_count().await, before, "no item written");

    // A range over the month with data and empty ones: every closed month of it is
    // packed, the empty ones empty, so they are not read again.
    let from = (in_month - Duration::days(70)).format("%Y-%m-%d");
    let to = (in_month + Duration::days(40)).format("%Y-%m-%d");
    let (status, body) = f
        .get(
            "/v1/timeseries",
            "/v1/timeseries",
            &format!("from={from}&to={to}"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totals"]["sent"], 7);
    let requests = f.requests.take();
    let months = requests.iter().filter(|r| *r == "UpdateItem").count() as i32;
    assert!(months >= 4, "every month of the 110 days: {requests:?}");
    assert_eq!(f.item_count().await, before + months, "a pack per month");
    let pack = f
        .dynamo
        .get_item()
        .table_name(&f.table)
        .key("pk", s(&tenant_days))
        .key(
            "sk",
            s(beacon_domain::rollup::keys::pack_sort_key(
                &month_pack::month(in_month),
            )),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the month with data is packed");
    assert!(pack.contains_key("packed_gen"));
    // Read again: the packs serve every month: one BatchGetItem, no Query, no write.
    let (_, again) = f
        .get(
            "/v1/timeseries",
            "/v1/timeseries",
            &format!("from={from}&to={to}"),
        )
        .await;
    assert_eq!(again["totals"]["sent"], 7);
    assert_eq!(f.requests.take(), ["BatchGetItem"]);
    assert_eq!(f.item_count().await, before + months);
}
