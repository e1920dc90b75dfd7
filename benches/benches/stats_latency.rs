//! Stats API latency against the emulator: a campaign with 90 days of rollups, then
//! 200 requests for its 90-day daily series through the local gateway (the real
//! handler, DynamoDB Query against moto). Target: p99 under 50 ms.
//!
//! Needs the project virtualenv (`make venv`); starts its own emulator.

use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::dynamo::rollups::DynamoRollupStore;
use beacon_domain::event::stream::StreamRecord;
use beacon_domain::event::{Event, EventType};
use beacon_domain::rollup::aggregate::{apply_batch, Settings};
use beacon_domain::rollup::reader::{Fields, RollupReader};
use beacon_domain::rollup::{rollup_partition, Grain, Scope};
use beacon_domain::testkit::memory::MemoryDeadLetters;
use beacon_domain::tracking::sink::encode_record;
use beacon_tests::{http, TestStack};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let t = TestStack::start().await.expect("stack");
    let table = t.stack.function("aggregate").unwrap().1.env["BEACON_ROLLUPS_TABLE"].clone();
    let store = DynamoRollupStore::new(aws_sdk_dynamodb::Client::new(&t.aws), &table);
    let end: chrono::DateTime<chrono::Utc> = chrono::Utc::now();
    let mut records = Vec::new();
    for day in 0..90i64 {
        // Four events a day: what a series reads does not grow with the volume.
        for i in 0..4i64 {
            let at = end - chrono::Duration::days(day) - chrono::Duration::hours(i * 6);
            let kind = [
                EventType::Sent,
                EventType::Delivered,
                EventType::Opened,
                EventType::Clicked,
            ][(i % 4) as usize]
                .clone();
            let mut e = Event::new(format!("d{day}-{i}"), "acme".into(), kind.clone(), at, at);
            e.campaign_id = Some("launch".into());
            e.recipient_id = Some(format!("r{i}"));
            e.message_id = Some(format!("m{i}"));
            e.channel = Some("email".into());
            if kind == EventType::Clicked {
                e.link_url = Some(format!("https://x.example/{}", i % 5));
            }
            records.push(StreamRecord {
                shard: "bench/0".into(),
                sequence: records.len().to_string(),
                data: encode_record(&e),
            });
        }
    }
    let seeded = Instant::now();
    for chunk in records.chunks(500) {
        apply_batch(
            &store,
            &MemoryDeadLetters::default(),
            &Settings::default(),
            chunk,
        )
        .await
        .expect("seeding");
    }
    eprintln!(
        "seeded {} events over 90 days in {:?}",
        records.len(),
        seeded.elapsed()
    );

    let client = http();
    let from = (end - chrono::Duration::days(89)).format("%Y-%m-%d");
    let to = end.format("%Y-%m-%d");
    let url = t.url(&format!(
        "/v1/campaigns/launch/timeseries?grain=day&from={from}&to={to}"
    ));
    let mut times = Vec::new();
    let mut first_request = None;
    for i in 0..220 {
        let started = Instant::now();
        let response = client
            .get(&url)
            .bearer_auth(&t.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        if i >= 20 {
            times.push(started.elapsed());
        } else if i == 0 {
            first_request = Some(started.elapsed());
            assert_eq!(
                body["points"].as_array().map(Vec::len),
                Some(90),
                "a 90-day daily series"
            );
        }
    }
    let series = summarize(&mut times);
    // The same read the handler makes (month packs and open days), straight to the
    // emulator: how much of a request is the emulator answering, and how much is ours
    // (gateway, auth, handler, JSON).
    let reader = DynamoRollupReader::new(aws_sdk_dynamodb::Client::new(&t.aws), &table);
    let pk = rollup_partition("acme", &Scope::Campaign("launch".into()), Grain::Day);
    let (first, last) = (format!("D#{from}"), format!("D#{to}"));
    let mut query_times = Vec::new();
    for i in 0..220 {
        let started = Instant::now();
        let items = reader
            .rollups(&pk, &first, &last, Fields::Scalars)
            .await
            .unwrap();
        if i >= 20 {
            query_times.push(started.elapsed());
        } else if i == 0 {
            assert_eq!(items.len(), 90, "every day of the range");
        }
    }
    let query = summarize(&mut query_times);
    println!(
        "stats 90-day daily series, {} requests: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms (target p99 < 50 ms)",
        times.len(),
        series[0],
        series[1],
        series[2]
    );
    println!(
        "  first request (stores the month packs): {:.1} ms",
        first_request.unwrap().as_secs_f64() * 1e3
    );
    println!(
        "  of which the reader alone (SDK straight to moto): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        query[0], query[1], query[2]
    );
    t.gateway.stop().await;
}

/// p50, p95 and p99 in milliseconds.
fn summarize(times: &mut [std::time::Duration]) -> [f64; 3] {
    times.sort();
    let pct = |p: f64| times[((p / 100.0) * (times.len() - 1) as f64).round() as usize];
    [50.0, 95.0, 99.0].map(|p| pct(p).as_secs_f64() * 1e3)
}
