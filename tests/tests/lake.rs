//! The lake against the emulator: events accepted by the collect API go through the
//! real ETL handler (behind the local event source mapping, then again as Lambda
//! retries and bisection would deliver them) and the real compaction handler. The
//! curated Parquet must hold every accepted event exactly once, also after a re-run
//! compaction and a redelivery that arrives after compaction.

use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use beacon_domain::Event;
use beacon_lake::store::S3Lake;
use beacon_lake::{read_parquet, LakeStore, CURATED_PREFIX, STAGING_PREFIX};
use beacon_local::poller::{kinesis_event, Mapping};
use beacon_tests::{http, TestStack};
use chrono::{Duration, DurationRound, Utc};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Every record of every shard, in order, per shard.
async fn shard_records(t: &TestStack) -> Vec<(String, Vec<Record>)> {
    let kinesis = aws_sdk_kinesis::Client::new(&t.aws);
    let stream = t.stream_name();
    let shards = kinesis
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        let mut records = Vec::new();
        while let Some(it) = iterator {
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            records.extend(page.records().iter().cloned());
            iterator = page.next_shard_iterator().map(str::to_string);
        }
        if !records.is_empty() {
            out.push((shard.shard_id().to_string(), records));
        }
    }
    out
}

async fn curated_rows(lake: &S3Lake) -> Vec<Event> {
    let mut rows = Vec::new();
    for object in lake.list(CURATED_PREFIX).await.unwrap() {
        let (body, _) = lake.get(&object.key).await.unwrap().unwrap();
        rows.extend(read_parquet(body).unwrap());
    }
    rows
}

fn scheduled(
    at: chrono::DateTime<Utc>,
) -> LambdaEvent<aws_lambda_events::event::eventbridge::EventBridgeEvent<Value>> {
    let payload = serde_json::from_value(json!({
        "version": "0", "id": "test", "detail-type": "Scheduled Event", "source": "aws.events",
        "time": at.to_rfc3339(), "region": "us-east-1", "detail": {}
    }))
    .unwrap();
    LambdaEvent::new(payload, Default::default())
}

#[tokio::test]
async fn the_lake_holds_every_accepted_event_once_through_retries_and_recompaction() {
    let t = TestStack::start().await.unwrap();
    let client = http();
    // Half past the previous hour: the events below (up to 150 s before it, and two
    // and four hours earlier) never straddle an hour boundary, whatever the clock says,
    // so each group lands in one partition.
    let now = Utc::now()
        .duration_trunc(Duration::hours(1))
        .expect("an hour divides a day")
        - Duration::minutes(30);

    // 150 events over three hours (late ones land in their own hour), then 20 of them
    // sent again by the client: accepted twice, one event each.
    let events: Vec<Value> = (0..150)
        .map(|i| {
            let time = now - Duration::hours(2 * (i % 3)) - Duration::seconds(i);
            let mut e = json!({
                "event_id": format!("ev-{i:03}"),
                "campaign_id": "launch",
                "message_id": format!("m-{}", i % 40),
                "recipient_id": format!("r-{}", i % 40),
                "event_time": time.to_rfc3339(),
            });
            let kind = [
                "message.sent",
                "message.delivered",
                "message.opened",
                "conversion",
            ][i as usize % 4];
            e["type"] = json!(kind);
            if kind == "conversion" {
                e["value"] = json!(12.5);
                e["currency"] = json!("EUR");
                e["properties"] = json!({"plan": "pro", "seats": i});
            }
            e
        })
        .collect();
    let mut accepted = BTreeSet::new();
    for chunk in [&events[..], &events[..20]] {
        let answer: Value = client
            .post(t.url("/v1/events"))
            .bearer_auth(&t.api_key)
            .json(chunk)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["rejected"], 0, "{answer}");
        for r in answer["results"].as_array().unwrap() {
            assert_eq!(r["status"], "accepted");
            accepted.insert(r["event_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(accepted.len(), 150);
    // A poison record on the stream: dead-lettered with its reason, never retried.
    aws_sdk_kinesis::Client::new(&t.aws)
        .put_record()
        .stream_name(t.stream_name())
        .partition_key("acme/poison")
        .data(aws_sdk_kinesis::primitives::Blob::new(
            b"{not an event".to_vec(),
        ))
        .send()
        .await
        .unwrap();

    // The ETL function behind the local event source mapping (the template's settings).
    let mut consumers = beacon_local::consumers::build(&t.stack, &t.aws).unwrap();
    let etl_consumer = consumers.iter_mut().find(|c| c.binary == "etl").unwrap();
    let polled = etl_consumer.drain().await.unwrap();
    assert_eq!(polled.records, 171);
    let mapping: Mapping = etl_consumer.poller.mapping.clone();
    let etl_env = &t.stack.function("etl").unwrap().1.env;
    let etl_app = etl_function::EtlApp::from_env(
        &beacon_domain::config::Env::from_map(etl_env.clone()),
        &t.aws,
    )
    .unwrap();
    let lake = S3Lake::from_config(&t.aws, &etl_env["BEACON_LAKE_BUCKET"]);

    // Lambda retries: the same batches again, then bisected (other boundaries).
    let shards = shard_records(&t).await;
    let deliver = |shard: &str, records: &[Record]| {
        let event = kinesis_event(&mapping, shard, records).unwrap();
        let app = &etl_app;
        async move {
            let answer = etl_function::handle(app, LambdaEvent::new(event, Default::default()))
                .await
                .unwrap();
            assert!(answer.batch_item_failures.is_empty());
        }
    };
    for (shard, records) in &shards {
        deliver(shard, records).await;
        let half = records.len() / 2;
        deliver(shard, &records[..half]).await;
        deliver(shard, &records[half..]).await;
    }
    let pieces = lake.list(STAGING_PREFIX).await.unwrap();
    assert!(pieces.len() >= 3, "{pieces:?}");

    // Compaction, as the schedule runs it once every hour has closed.
    let (_, compact_fn) = t.stack.function("compact").unwrap();
    let compactor = compact_function::CompactApp::from_env(
        &beacon_domain::config::Env::from_map(compact_fn.env.clone()),
        &t.aws,
    )
    .unwrap();
    let later = now + Duration::hours(2);
    let first = compact_function::handle(&compactor, scheduled(later))
        .await
        .unwrap();
    assert!(first["hours"].as_array().unwrap().len() >= 3, "{first}");
    assert!(first["duplicates"].as_u64().unwrap() >= 170, "{first}");
    assert!(lake.list(STAGING_PREFIX).await.unwrap().is_empty());

    let check = |rows: Vec<Event>| {
        let ids: Vec<&str> = rows.iter().map(|e| e.event_id.as_str()).collect();
        let distinct: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        assert_eq!(ids.len(), distinct.len(), "a row is doubled");
        assert_eq!(
            distinct, accepted,
            "lake rows differ from the accepted events"
        );
        let conversion = rows.iter().find(|e| e.event_id == "ev-003").unwrap();
        assert_eq!(conversion.properties["plan"], "pro");
    };
    check(curated_rows(&lake).await);
    let objects = lake.list(CURATED_PREFIX).await.unwrap();

    // A re-run changes nothing.
    let again = compact_function::handle(&compactor, scheduled(later))
        .await
        .unwrap();
    assert_eq!(again["hours"], json!([]));
    assert_eq!(lake.list(CURATED_PREFIX).await.unwrap(), objects);
    check(curated_rows(&lake).await);

    // A redelivery after compaction: staged again, merged again, dropped as duplicates.
    let (shard, records) = &shards[0];
    deliver(shard, records).await;
    let third = compact_function::handle(&compactor, scheduled(later))
        .await
        .unwrap();
    let redelivered = records.len()
        - usize::from(
            shards[0]
                .1
                .iter()
                .any(|r| r.data().as_ref() == b"{not an event"),
        );
    assert_eq!(
        third["duplicates"].as_u64().unwrap() as usize,
        redelivered,
        "{third}"
    );
    check(curated_rows(&lake).await);

    // The poison record is in the dead-letter queue with the reason.
    let sqs = aws_sdk_sqs::Client::new(&t.aws);
    let queue = &etl_env["BEACON_DEAD_LETTER_QUEUE_URL"];
    let mut reasons = Vec::new();
    for _ in 0..5 {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            let letter: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            reasons.push(letter["reason"].as_str().unwrap_or_default().to_string());
        }
        if got.messages().is_empty() {
            break;
        }
    }
    assert!(
        reasons.iter().any(|r| r.starts_with("lake: not an event")),
        "{reasons:?}"
    );
}
