//! Month packs against the emulator (`shared::month_pack`): a 90-day daily series read
//! through packs equals the day items, the packs are what is read once stored, and an
//! update of a closed day shows at once.

use aws_sdk_dynamodb::types::AttributeValue;
use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::dynamo::rollups::DynamoRollupStore;
use beacon_domain::event::stream::StreamRecord;
use beacon_domain::event::{Event, EventType};
use beacon_domain::rollup::aggregate::{apply_batch, Settings};
use beacon_domain::rollup::month_pack;
use beacon_domain::rollup::reader::{Fields, RollupReader};
use beacon_domain::rollup::{rollup_partition, Grain, Scope};
use beacon_domain::testkit::memory::MemoryDeadLetters;
use beacon_domain::tracking::sink::encode_record;
use beacon_tests::TestStack;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

fn sent(id: String, at: DateTime<Utc>) -> Event {
    let mut e = Event::new(id.clone(), "acme".into(), EventType::Sent, at, Utc::now());
    e.campaign_id = Some("launch".into());
    e.message_id = Some(format!("m-{id}"));
    e.recipient_id = Some(format!("r-{id}"));
    e.channel = Some("email".into());
    e
}

/// Sent per day of the series, as `reader` gives it.
async fn series(
    reader: &DynamoRollupReader,
    pk: &str,
    from: &str,
    to: &str,
    fields: Fields,
) -> BTreeMap<String, u64> {
    reader
        .rollups(pk, from, to, fields)
        .await
        .unwrap()
        .into_iter()
        .map(|item| (item.sk, item.counters.sent))
        .collect()
}

async fn pack_item(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    dynamo
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

#[tokio::test]
async fn a_daily_series_reads_month_packs_that_never_go_stale() {
    let t = TestStack::start().await.unwrap();
    let table = t.stack.function("aggregate").unwrap().1.env["BEACON_ROLLUPS_TABLE"].clone();
    let dynamo = aws_sdk_dynamodb::Client::new(&t.aws);
    let store = DynamoRollupStore::new(dynamo.clone(), &table);
    let reader = DynamoRollupReader::new(dynamo.clone(), &table);
    let now = Utc::now();
    let mut sequence = 0;
    let mut apply = |events: Vec<Event>| {
        let records: Vec<StreamRecord> = events
            .iter()
            .map(|e| {
                sequence += 1;
                StreamRecord {
                    shard: "packs/0".into(),
                    sequence: sequence.to_string(),
                    data: encode_record(e),
                }
            })
            .collect();
        let store = &store;
        async move {
            apply_batch(
                store,
                &MemoryDeadLetters::default(),
                &Settings::default(),
                &records,
            )
            .await
            .unwrap();
        }
    };
    // Day d back gets (d % 5) + 1 sends.
    let events = (0..90i64)
        .flat_map(|d| {
            (0..=(d % 5)).map(move |i| sent(format!("d{d}-{i}"), now - Duration::days(d)))
        })
        .collect();
    apply(events).await;

    let pk = rollup_partition("acme", &Scope::Campaign("launch".into()), Grain::Day);
    let from = beacon_domain::rollup::keys::day_sort_key((now - Duration::days(89)).date_naive());
    let to = beacon_domain::rollup::keys::day_sort_key(now.date_naive());
    let truth = series(&reader, &pk, &from, &to, Fields::All).await;
    assert_eq!(truth.len(), 90);
    assert_eq!(
        truth.values().sum::<u64>(),
        (0..90).map(|d| d % 5 + 1).sum::<u64>()
    );
    assert_eq!(
        series(&reader, &pk, &from, &to, Fields::Scalars).await,
        truth
    );

    // The first read stored a pack for every month with closed days in range.
    let packs = dynamo
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
        .expression_attribute_values(
            ":p",
            AttributeValue::S(beacon_domain::rollup::keys::PACK_PREFIX.into()),
        )
        .send()
        .await
        .unwrap();
    let plan = month_pack::plan(
        beacon_domain::rollup::keys::day_of(&from).unwrap(),
        beacon_domain::rollup::keys::day_of(&to).unwrap(),
        Utc::now(),
    );
    assert_eq!(packs.items().len(), plan.months.len());
    assert!(packs.items().iter().all(|p| p.contains_key("packed_gen")));

    // Once stored, a pack is what is read: a pack made to disagree (at its generation)
    // shows in the series.
    let (month, first, _) = plan.months[0].clone();
    let pack_key = beacon_domain::rollup::keys::pack_sort_key(&month);
    let first_sk = beacon_domain::rollup::keys::day_sort_key(
        first.max(beacon_domain::rollup::keys::day_of(&from).unwrap()),
    );
    let doctored = beacon_domain::rollup::Counters {
        sent: 1000,
        ..Default::default()
    };
    dynamo
        .update_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S(pack_key.clone()))
        .update_expression("SET #d = :d")
        .expression_attribute_names("#d", "days")
        .expression_attribute_values(
            ":d",
            AttributeValue::S(month_pack::Pack::encode_days(&[(
                first_sk.clone(),
                doctored,
            )])),
        )
        .send()
        .await
        .unwrap();
    let read = series(&reader, &pk, &from, &to, Fields::Scalars).await;
    assert_eq!(read[&first_sk], 1000, "the stored pack is read");

    // A late event on a closed day of that month bumps its generation in the same
    // transaction: the pack is stale at once, the series is right, and it is packed again.
    let gen_before = pack_item(&dynamo, &table, &pk, &pack_key).await["gen"].clone();
    let late_day = beacon_domain::rollup::keys::day_of(&first_sk).unwrap();
    let late_at = late_day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    apply(vec![sent("late".into(), late_at)]).await;
    let after = series(&reader, &pk, &from, &to, Fields::Scalars).await;
    let mut expected = truth.clone();
    *expected.get_mut(&first_sk).unwrap() += 1;
    assert_eq!(after, expected);
    assert_eq!(
        series(&reader, &pk, &from, &to, Fields::All).await,
        expected
    );
    let pack = pack_item(&dynamo, &table, &pk, &pack_key).await;
    let gen = |v: &AttributeValue| v.as_n().unwrap().parse::<i64>().unwrap();
    assert_eq!(gen(&pack["gen"]), gen(&gen_before) + 1, "one run, one bump");
    assert_eq!(pack["packed_gen"], pack["gen"], "packed again");
    assert_eq!(
        series(&reader, &pk, &from, &to, Fields::Scalars).await,
        expected
    );
}
