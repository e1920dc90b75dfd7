//! Item growth against the emulator, which refuses items over about 405 KB as DynamoDB
//! refuses them over 400 KB: every dimension that once grew one item without limit is
//! driven past where it failed, and the numbers read back stay exact.
//!
//! - Distinct links and URL length: 260 clicked links with 2,000-character URLs in one
//!   campaign hour (the campaign's hour and day items held them all, about 520 KB),
//!   then another tenant's events on the same shard. Both tenants' numbers are exact.
//! - Clickers per link: 30,000 recipients in one unique-set bucket (about 1 MB).
//! - Campaigns and channels per tenant: each is a directory entry of its own, so their
//!   number grows no item (120 of each, with the longest names, here).
//! - Marks per recipient: 20,000 on one recipient (one item held about 17,000), beside
//!   recipients whose ids begin with its own, read back one by one and page by page.

use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::dynamo::rollups::DynamoRollupStore;
use beacon_domain::audience::engagement::{self, Action, Changes};
use beacon_domain::audience::reader::AudienceReader;
use beacon_domain::event::stream::StreamRecord;
use beacon_domain::event::{Event, EventType};
use beacon_domain::rollup::aggregate::RollupStore;
use beacon_domain::rollup::aggregate::{apply_batch, Settings};
use beacon_domain::rollup::reader::{Fields, RollupReader};
use beacon_domain::rollup::{
    count_unique, fingerprint, link_id, rollup_partition, unique_partition, Grain, Scope,
    UniqueKey, UniqueKind,
};
use beacon_domain::rollup::{directory_partition, CAMPAIGN_PREFIX, CHANNEL_PREFIX};
use beacon_domain::testkit::memory::MemoryDeadLetters;
use beacon_domain::tracking::sink::encode_record;
use beacon_tests::TestStack;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

fn event(tenant: &str, kind: EventType, id: &str, at: DateTime<Utc>) -> Event {
    let mut e = Event::new(id.into(), tenant.into(), kind, at, at);
    e.campaign_id = Some("launch".into());
    e.message_id = Some(format!("m-{id}"));
    e.recipient_id = Some(format!("r-{id}"));
    e.channel = Some("email".into());
    e.provider = Some("ses".into());
    e
}

fn records(shard: &str, first: u64, events: &[Event]) -> Vec<StreamRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| StreamRecord {
            shard: shard.into(),
            sequence: (first + i as u64).to_string(),
            data: encode_record(e),
        })
        .collect()
}

async fn stack() -> (TestStack, DynamoRollupStore, DynamoRollupReader) {
    let t = TestStack::start().await.unwrap();
    let table = t.stack.function("aggregate").unwrap().1.env["BEACON_ROLLUPS_TABLE"].clone();
    let dynamo = aws_sdk_dynamodb::Client::new(&t.aws);
    let store = DynamoRollupStore::new(dynamo.clone(), &table);
    let reader = DynamoRollupReader::new(dynamo, &table);
    (t, store, reader)
}

#[tokio::test]
async fn many_long_links_in_one_campaign_cost_no_tenant_anything() {
    let (_t, store, reader) = stack().await;
    let at: DateTime<Utc> = Utc::now() - chrono::Duration::minutes(5);
    let tail = "x".repeat(2000);
    let clicks: Vec<Event> = (0..260)
        .map(|i| {
            let mut e = event("tenant-a", EventType::Clicked, &format!("a{i}"), at);
            e.link_url = Some(format!("https://shop.example/p/{i}?{tail}"));
            e
        })
        .collect();
    let sends: Vec<Event> = (0..40)
        .map(|i| event("tenant-b", EventType::Sent, &format!("b{i}"), at))
        .collect();
    let dead = MemoryDeadLetters::default();
    let mut batch = records("mixed/0", 1, &clicks);
    batch.extend(records("mixed/0", 1000, &sends));
    let out = apply_batch(&store, &dead, &Settings::default(), &batch)
        .await
        .expect("the batch applies");
    assert_eq!((out.applied, out.dead_letters), (300, 0), "{out:?}");

    let day_pk = |tenant| rollup_partition(tenant, &Scope::Campaign("launch".into()), Grain::Day);
    let b = reader
        .rollups(&day_pk("tenant-b"), "D#", "D#~", Fields::All)
        .await
        .unwrap();
    assert_eq!(b.iter().map(|i| i.counters.sent).sum::<u64>(), 40);
    let a = reader
        .rollups(&day_pk("tenant-a"), "D#", "D#~", Fields::All)
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    let day = &a[0].counters;
    assert_eq!(day.clicks_human + day.clicks_bot, 260);
    assert_eq!(day.links.len(), 260, "every link has its counts");
    for e in &clicks {
        let url = e.link_url.as_deref().unwrap();
        let link = &day.links[&link_id(url)];
        assert_eq!((link.human + link.bot, link.url.as_str()), (1, url));
    }
    // The hour items read the same way.
    let hour_pk = rollup_partition("tenant-a", &Scope::Campaign("launch".into()), Grain::Hour);
    let hours = reader
        .rollups(&hour_pk, "H#", "H#~", Fields::All)
        .await
        .unwrap();
    assert_eq!(
        hours.iter().map(|h| h.counters.links.len()).sum::<usize>(),
        260
    );

    // Delivered again: nothing counts twice.
    let again = apply_batch(&store, &dead, &Settings::default(), &batch)
        .await
        .unwrap();
    assert_eq!(again.already_applied, 300);
}

#[tokio::test]
async fn a_unique_set_bucket_grows_by_pages_and_counts_exactly() {
    let (_t, store, reader) = stack().await;
    let link = link_id("https://shop.example/sale");
    // Members that all land in one bucket: 30,000 of them once made one 1 MB item.
    let key = UniqueKey {
        tenant: "acme".into(),
        campaign: "launch".into(),
        kind: UniqueKind::Clicks,
        bucket: 3,
    };
    let members: BTreeSet<String> = (0..30_000)
        .map(|i| format!("{link}:{}", fingerprint("acme", &format!("r-{i}"))))
        .collect();
    store
        .add_uniques(&[(key.clone(), members.clone())])
        .await
        .expect("no page passes the item limit");
    // Again (a retried run): still counted once.
    let some: BTreeSet<String> = members.iter().take(5_000).cloned().collect();
    store.add_uniques(&[(key.clone(), some)]).await.unwrap();
    let pk = unique_partition("acme", "launch", UniqueKind::Clicks);
    let read = reader.unique_members(&pk).await.unwrap();
    assert_eq!(
        count_unique(read.iter().map(String::as_str)).per_link[&link],
        30_000
    );

    // A late verdict takes 1,000 clickers out, from whichever page holds them.
    let gone: BTreeSet<String> = members.iter().skip(20_000).take(1_000).cloned().collect();
    store.remove_uniques(&[(key, gone)]).await.unwrap();
    let read = reader.unique_members(&pk).await.unwrap();
    assert_eq!(
        count_unique(read.iter().map(String::as_str)).per_link[&link],
        29_000
    );
}

#[tokio::test]
async fn hundreds_of_campaigns_and_channels_each_have_their_own_entry() {
    let (_t, store, reader) = stack().await;
    let at: DateTime<Utc> = Utc::now() - chrono::Duration::minutes(5);
    let events: Vec<Event> = (0..120)
        .map(|i| {
            let mut e = event("acme", EventType::Sent, &format!("s{i}"), at);
            e.campaign_id = Some(format!("campaign-{i:04}-{}", "c".repeat(240)));
            e.provider = Some(format!("provider-{i:04}-{}", "p".repeat(50)));
            e
        })
        .collect();
    let dead = MemoryDeadLetters::default();
    let out = apply_batch(
        &store,
        &dead,
        &Settings::default(),
        &records("dirs/0", 1, &events),
    )
    .await
    .unwrap();
    assert_eq!((out.applied, out.dead_letters), (120, 0));
    let dir = directory_partition("acme");
    assert_eq!(
        reader.directory(&dir, CAMPAIGN_PREFIX).await.unwrap().len(),
        120
    );
    assert_eq!(
        reader.directory(&dir, CHANNEL_PREFIX).await.unwrap().len(),
        120
    );
    let tenant = reader
        .rollups(
            &rollup_partition("acme", &Scope::Tenant, Grain::Day),
            "D#",
            "D#~",
            Fields::All,
        )
        .await
        .unwrap();
    assert_eq!(tenant.iter().map(|i| i.counters.sent).sum::<u64>(), 120);
}

#[tokio::test]
async fn one_recipients_marks_grow_past_an_item_and_read_back_exactly() {
    let (t, store, reader) = stack().await;
    let mark = |action: Action, message: &str| action.mark("acme", message);
    let mut changes = Changes::default();
    let mut heavy = std::collections::BTreeMap::new();
    for i in 0..20_000 {
        let (name, day) = (mark(Action::Delivered, &format!("m{i}")), 20_000 + i % 30);
        heavy.insert(name.clone(), day);
        changes.set("acme", "r1", name, day);
    }
    // Ids that sort right beside "r1" and its pages.
    let others = ["r0", "r1 x", "r10", "r2"];
    for r in others {
        changes.set("acme", r, mark(Action::Opened, r), 20_400);
    }
    store.audience(&[], &changes).await.unwrap();

    // A mark kept before pages, on the recipient's own item, off its own page.
    let legacy = (0..)
        .map(|i| mark(Action::Clicked, &format!("old{i}")))
        .find(|m| engagement::page_of(m) != 0)
        .unwrap();
    let table = t.stack.function("aggregate").unwrap().1.env["BEACON_ROLLUPS_TABLE"].clone();
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    aws_sdk_dynamodb::Client::new(&t.aws)
        .put_item()
        .table_name(&table)
        .item(
            "pk",
            s(&beacon_domain::rollup::keys::marks_partition("acme")),
        )
        .item("sk", s("r3"))
        .item(
            &legacy,
            aws_sdk_dynamodb::types::AttributeValue::N("20100".into()),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(reader.marks("acme", "r1").await.unwrap(), heavy);
    assert_eq!(
        reader.marks("acme", "r3").await.unwrap().get(&legacy),
        Some(&20100)
    );
    for limit in [1, 2, 1000] {
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let page = reader
                .marks_page("acme", cursor.as_deref(), limit)
                .await
                .unwrap();
            assert!(page.items.len() <= limit);
            for (recipient, marks) in page.items {
                let want = match recipient.as_str() {
                    "r1" => heavy.len(),
                    _ => 1,
                };
                assert_eq!(marks.len(), want, "{recipient}'s marks, pages of {limit}");
                seen.push(recipient);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            ["r0", "r1", "r1 x", "r10", "r2", "r3"],
            "pages of {limit}"
        );
    }

    // Removing the old mark removes it where it was kept.
    let mut removal = Changes::default();
    removal.remove("acme", "r3", legacy.clone());
    store.audience(&[], &removal).await.unwrap();
    assert!(reader.marks("acme", "r3").await.unwrap().is_empty());
}
