//! Seeded fault injection against the emulator: random event streams (client
//! duplicates, producer retries, out-of-order times, several tenants and campaigns),
//! a store that crashes after random DynamoDB writes, and the local event source
//! mapping retrying as Lambda does (partial batch responses, and bisection when the
//! function errors). After every seed the rollups must equal a ground truth computed
//! independently from the raw event list: counts by type, and opens and clicks judged
//! by the pure trail model ([`Trail`]) on each message's events all at once, so late
//! verdicts (bursts, clicks on delivery) must have moved each count exactly once, and
//! each machine open and bot click must sit under the reason of its final verdict, as
//! a recipient lookup (the trails' index by recipient) must show it.
//! A third tenant's events are interleaved on the same shard and every run holding
//! one is refused for good (as an over-limit item is): they must be dead-lettered and
//! cost the other tenants nothing.

use aggregate_function::AggregateApp;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::dynamo::rollups::DynamoRollupStore;
use beacon_aws::kinesis::KinesisSink;
use beacon_aws::sqs::SqsDeadLetters;
use beacon_domain::event::{BounceType, Event, EventType, RequestContext};
use beacon_domain::rollup::aggregate::Settings;
use beacon_domain::rollup::counters::{reason_field, ReasonOf};
use beacon_domain::rollup::reader::RollupReader;
use beacon_domain::rollup::{link_id, rollup_partition, Grain, Scope};
use beacon_domain::tracking::sink::EventSink;
use beacon_domain::verdict::classify::machine_verdict;
use beacon_domain::verdict::machine_reason;
use beacon_domain::verdict::trail::{Hit, HitKind, Trail};
use beacon_local::poller::{Mapping, Poller};
use beacon_tests::faulty_store::FaultyStore;
use beacon_tests::TestStack;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Seeds to run: `BEACON_TEST_SEEDS` of them (100 unless set; at least 100 in `make
/// test`), from `BEACON_TEST_SEED_FIRST` (0 unless set), so a failing seed can be run alone.
fn seeds() -> std::ops::Range<u64> {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let first = var("BEACON_TEST_SEED_FIRST", 0);
    first..first + var("BEACON_TEST_SEEDS", 100)
}
const HUMAN_UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
const APPLE_PROXY_UA: &str = "Mozilla/5.0";
const SCANNER_UA: &str = "Mozilla/5.0 (compatible; Barracuda Sentinel)";

/// What the rollups must say for one tenant, from the raw events alone.
#[derive(Debug, Default, PartialEq, Eq)]
struct Truth {
    counts: BTreeMap<&'static str, i64>,
    /// Machine opens and bot clicks by reason, under their stored names (`mo_apple_proxy`).
    reasons: BTreeMap<String, i64>,
    unique_opens: BTreeMap<String, u64>,
    unique_clicks: BTreeMap<String, u64>,
    /// Each message's trail as the model judges it: what a recipient lookup must show.
    trails: BTreeMap<String, Trail>,
}

fn truth_of(events: &[Event], tenant: &str) -> Truth {
    let mut t = Truth::default();
    let mut seen = HashSet::new();
    // Opens, clicks and the earliest delivery of each message: judged below by the
    // pure trail model, on all of the message's events at once.
    let mut hits: BTreeMap<String, Vec<Hit>> = BTreeMap::new();
    let mut delivered: BTreeMap<String, i64> = BTreeMap::new();
    for e in events.iter().filter(|e| e.tenant_id == tenant) {
        if !seen.insert(e.event_id.clone()) {
            continue; // a client duplicate: counted once
        }
        let message = e.message_id.clone().unwrap_or_default();
        let name = match (&e.kind, e.bounce_type) {
            (EventType::Sent, _) => "sent",
            (EventType::Delivered, _) => {
                let at = delivered
                    .entry(message)
                    .or_insert(e.event_time.timestamp_millis());
                *at = (*at).min(e.event_time.timestamp_millis());
                "delivered"
            }
            (EventType::Bounced, Some(BounceType::Soft)) => "bounced_soft",
            (EventType::Bounced, _) => "bounced_hard",
            (EventType::Opened | EventType::Clicked, _) => {
                hits.entry(message).or_default().push(hit_of(e));
                continue;
            }
            (EventType::Conversion, _) => "conversions",
            _ => "custom",
        };
        *t.counts.entry(name).or_default() += 1;
        if let Some(cost) = e.cost {
            *t.counts.entry("cost_micros").or_default() += (cost * 1e6).round() as i64;
        }
    }
    let mut openers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut clickers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (message, hits) in hits {
        let mut trail = Trail::default();
        if let Some(at) = delivered.get(&message) {
            trail.deliver(*at);
        }
        for hit in hits {
            trail.add(hit);
        }
        t.trails.insert(message.clone(), trail.clone());
        for h in &trail.hits {
            let name = match (h.kind, h.machine) {
                (HitKind::Open, false) => "opens_human",
                (HitKind::Open, true) => "opens_machine",
                (HitKind::Click, false) => "clicks_human",
                (HitKind::Click, true) => "clicks_bot",
            };
            *t.counts.entry(name).or_default() += 1;
            if h.machine {
                let kind = match h.kind {
                    HitKind::Open => ReasonOf::Open,
                    HitKind::Click => ReasonOf::Click,
                };
                *t.reasons
                    .entry(reason_field(kind, machine_reason(&h.reason)))
                    .or_default() += 1;
            }
            let (campaign, recipient) = (h.campaign.clone().unwrap(), h.recipient.clone().unwrap());
            match name {
                "opens_human" => drop(openers.entry(campaign).or_default().insert(recipient)),
                "clicks_human" => drop(clickers.entry(campaign).or_default().insert(recipient)),
                _ => {}
            }
        }
    }
    t.unique_opens = openers
        .into_iter()
        .map(|(c, r)| (c, r.len() as u64))
        .collect();
    t.unique_clicks = clickers
        .into_iter()
        .map(|(c, r)| (c, r.len() as u64))
        .collect();
    t
}

/// An open or click as its trail holds it, with the request's own verdict.
fn hit_of(e: &Event) -> Hit {
    let view = e.into();
    let verdict = machine_verdict(&view).expect("an open or click");
    Hit::of(&view, e.link_url.as_deref().map(link_id), verdict).expect("an open or click")
}

fn random_events(rng: &mut StdRng, seed: u64) -> Vec<Event> {
    let base: DateTime<Utc> = "2026-11-20T22:00:00Z".parse().unwrap();
    let tenants = [format!("s{seed}a"), format!("s{seed}b")];
    let mut events = Vec::new();
    for i in 0..rng.random_range(30..90) {
        let tenant = &tenants[rng.random_range(0..2)];
        let kind = match rng.random_range(0..10) {
            0 => EventType::Sent,
            1 | 2 => EventType::Delivered,
            3 => EventType::Bounced,
            4..=6 => EventType::Opened,
            7 | 8 => EventType::Clicked,
            _ => EventType::Conversion,
        };
        let recipient = rng.random_range(0..12);
        // Out of order, across hours and a day boundary; half the deliveries, opens and
        // clicks at the recipient's "scan" (seconds apart), so bursts, honeypot
        // neighbours and clicks on delivery happen, and verdicts come late.
        let scan = matches!(
            kind,
            EventType::Delivered | EventType::Opened | EventType::Clicked
        ) && rng.random_bool(0.5);
        let t = if scan {
            base + Duration::minutes(19 * recipient) + Duration::seconds(rng.random_range(0..6))
        } else {
            base + Duration::minutes(rng.random_range(0..240))
        };
        let mut e = Event::new(format!("{seed}-{i}"), tenant.clone(), kind.clone(), t, t);
        e.campaign_id = Some(format!("c{}", rng.random_range(0..3)));
        e.recipient_id = Some(format!("r{recipient}"));
        e.message_id = Some(format!("m-{}", e.recipient_id.as_ref().unwrap()));
        e.channel = Some("email".into());
        e.provider = Some(["ses", "sendgrid"][rng.random_range(0..2)].into());
        if kind == EventType::Bounced {
            e.bounce_type = Some(if rng.random_bool(0.5) {
                BounceType::Hard
            } else {
                BounceType::Soft
            });
        }
        if kind == EventType::Sent {
            e.cost = Some(rng.random_range(1..500) as f64 / 1e5);
        }
        if kind == EventType::Clicked {
            // One link in five is the honeypot, which moves the clicks around it.
            e.link_url = Some(match rng.random_range(0..5) {
                4 => "https://x.example/#beacon-honeypot".to_string(),
                n => format!("https://x.example/{n}"),
            });
        }
        if matches!(kind, EventType::Opened | EventType::Clicked) {
            let ua = match (kind, rng.random_range(0..4)) {
                (EventType::Opened, 0) => APPLE_PROXY_UA,
                (EventType::Clicked, 0) => SCANNER_UA,
                _ => HUMAN_UA,
            };
            e.context =
                beacon_domain::event::context::request_context(None, Some(ua), Default::default());
        } else {
            e.context = RequestContext::default();
        }
        events.push(e);
    }
    // Client duplicates: the same event id sent again later, with a later receive time.
    for _ in 0..rng.random_range(3..12) {
        let mut dup = events[rng.random_range(0..events.len())].clone();
        dup.received_at += Duration::hours(rng.random_range(0..20));
        events.push(dup);
    }
    events
}

/// A third tenant's events: copies of some of the seed's, under its own ids.
fn refused_events(seed: u64, events: &[Event], tenant: &str) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xbad);
    (0..rng.random_range(1..4))
        .map(|i| {
            let mut e = events[rng.random_range(0..events.len())].clone();
            e.tenant_id = tenant.to_string();
            e.event_id = format!("{seed}-x{i}");
            e
        })
        .collect()
}

async fn read_counts(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> BTreeMap<String, i64> {
    let out = dynamo
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :d)")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(rollup_partition(tenant, &Scope::Tenant, Grain::Day)),
        )
        .expression_attribute_values(":d", AttributeValue::S("D#".into()))
        .send()
        .await
        .unwrap();
    let mut sums = BTreeMap::new();
    for item in out.items() {
        for (k, v) in item {
            if let AttributeValue::N(n) = v {
                *sums.entry(k.clone()).or_default() += n.parse::<i64>().unwrap();
            }
        }
    }
    sums
}

async fn read_uniques(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    campaign: &str,
    kind: &str,
) -> u64 {
    let out = dynamo
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(format!("U#{tenant}#{campaign}#{kind}")),
        )
        .send()
        .await
        .unwrap();
    let members: Vec<String> = out
        .items()
        .iter()
        .filter_map(|i| i.get("m"))
        .filter_map(|m| m.as_ss().ok())
        .flatten()
        .cloned()
        .collect();
    beacon_domain::rollup::count_unique(members.iter().map(String::as_str)).recipients
}

/// The template's rollups table layout (`pk`, `sk`, and the trails' index by recipient).
async fn create_rollups_table(dynamo: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    use beacon_domain::rollup::{RECIPIENT_INDEX, RECIPIENT_INDEX_KEY, RECIPIENT_INDEX_SORT};
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(RECIPIENT_INDEX)
        .key_schema(key(RECIPIENT_INDEX_KEY, KeyType::Hash))
        .key_schema(key(RECIPIENT_INDEX_SORT, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .unwrap();
    dynamo
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .attribute_definitions(attr(RECIPIENT_INDEX_KEY))
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(RECIPIENT_INDEX_SORT)
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(index)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn rollups_equal_the_truth_under_crashes_retries_and_duplicates() {
    let t = TestStack::start().await.unwrap();
    let (_, f) = t
        .stack
        .function("aggregate")
        .expect("aggregate function in the template");
    let base_table = f.env["BEACON_ROLLUPS_TABLE"].clone();
    let queue = f.env["BEACON_DEAD_LETTER_QUEUE_URL"].clone();
    let mapping = Mapping::from_stack(&f.streams[0], |_| Some(queue.clone())).unwrap();
    let mut mapping = mapping;
    mapping.batch_size = 40; // several batches per seed
    let mut poller = Poller::new(&t.aws, mapping);
    let dynamo = aws_sdk_dynamodb::Client::new(&t.aws);
    let sink = KinesisSink::new(aws_sdk_kinesis::Client::new(&t.aws), t.stream_name());
    let mut injected = 0;
    let mut refusals = 0;

    let started = std::time::Instant::now();
    for seed in seeds() {
        eprintln!("seed {seed} at {:?}", started.elapsed());
        let mut rng = StdRng::seed_from_u64(seed);
        let events = random_events(&mut rng, seed);
        let refused_tenant = format!("s{seed}x");
        let refused = refused_events(seed, &events, &refused_tenant);
        // Producer retries: some records reach the stream twice.
        let mut on_stream = events.clone();
        for _ in 0..rng.random_range(0..5) {
            on_stream.push(events[rng.random_range(0..events.len())].clone());
        }
        // The refused tenant's events, interleaved at their own seed's positions.
        let mut mixer = StdRng::seed_from_u64(seed ^ 0x5eed);
        for e in &refused {
            let at = mixer.random_range(0..=on_stream.len());
            on_stream.insert(at, e.clone());
        }
        assert!(sink.put(&on_stream).await.is_empty());

        // A table per seed: moto copies every table on each transaction (to roll back),
        // so a table that grows across seeds would make each seed slower than the last.
        let table = format!("{base_table}-s{seed}");
        create_rollups_table(&dynamo, &table).await;
        let crash_points: Vec<usize> = (0..rng.random_range(1..4))
            .map(|_| rng.random_range(1..12))
            .collect();
        let app = AggregateApp {
            store: FaultyStore::new(DynamoRollupStore::new(dynamo.clone(), &table), crash_points)
                .refusing(refused_tenant.clone()),
            dead_letters: SqsDeadLetters::new(aws_sdk_sqs::Client::new(&t.aws), &queue),
            live: beacon_domain::testkit::memory::MemoryLive::default(),
            settings: Settings::default(),
        };
        // Odd seeds: the crash is a function error (bisection); even: a partial batch response.
        let as_error = seed % 2 == 1;
        poller
            .drain(|event| {
                let app = &app;
                async move {
                    let response = aggregate_function::handle(
                        app,
                        lambda_runtime::LambdaEvent::new(event, Default::default()),
                    )
                    .await?;
                    if as_error && !response.batch_item_failures.is_empty() {
                        return Err::<_, lambda_runtime::Error>("function crashed".into());
                    }
                    Ok(response)
                }
            })
            .await
            .unwrap();
        injected += app.store.injected.load(std::sync::atomic::Ordering::SeqCst);
        refusals += app.store.refused.load(std::sync::atomic::Ordering::SeqCst);
        let nothing = read_counts(&dynamo, &table, &refused_tenant).await;
        assert!(
            nothing.values().all(|n| *n == 0),
            "seed {seed}: nothing of the refused tenant counts: {nothing:?}"
        );

        for tenant in [format!("s{seed}a"), format!("s{seed}b")] {
            let truth = truth_of(&events, &tenant);
            let stored = read_counts(&dynamo, &table, &tenant).await;
            for (name, want) in &truth.counts {
                assert_eq!(
                    stored.get(*name).copied().unwrap_or(0),
                    *want,
                    "seed {seed} tenant {tenant} {name}"
                );
            }
            let stored_reasons: BTreeMap<String, i64> = stored
                .iter()
                .filter(|(k, v)| (k.starts_with("mo_") || k.starts_with("bc_")) && **v != 0)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            assert_eq!(
                stored_reasons, truth.reasons,
                "seed {seed} tenant {tenant}: machine opens and bot clicks by reason"
            );
            for (campaign, want) in &truth.unique_opens {
                assert_eq!(
                    read_uniques(&dynamo, &table, &tenant, campaign, "opens").await,
                    *want,
                    "seed {seed} unique opens {campaign}"
                );
            }
            // A recipient's recent messages show each open and click under its final
            // verdict (through the trails' index by recipient).
            let reader = DynamoRollupReader::new(dynamo.clone(), &table);
            for (message, want) in truth.trails.iter().take(4) {
                let recipient = want.recipient().expect("hits name their recipient");
                let found = reader.recent_trails(&tenant, recipient, 25).await.unwrap();
                let verdicts = |t: &Trail| {
                    let mut v: Vec<_> = t
                        .hits
                        .iter()
                        .map(|h| {
                            (
                                h.at_ms,
                                h.kind == HitKind::Click,
                                h.machine,
                                h.reason.clone(),
                            )
                        })
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(
                    found.len(),
                    1,
                    "seed {seed} {tenant} {recipient}: one message"
                );
                assert_eq!(&found[0].0, message);
                assert_eq!(
                    verdicts(&found[0].1),
                    verdicts(want),
                    "seed {seed} {tenant} {message}: the lookup's verdicts"
                );
            }
            for (campaign, want) in &truth.unique_clicks {
                assert_eq!(
                    read_uniques(&dynamo, &table, &tenant, campaign, "clicks").await,
                    *want,
                    "seed {seed} unique clicks {campaign}"
                );
            }
        }
    }
    let stats = &poller.stats;
    assert!(
        injected >= seeds().count() / 2,
        "crashes were injected: {injected}"
    );
    assert!(
        stats.partial_failures > 0 && stats.bisections > 0,
        "both retry paths ran: {stats:?}"
    );
    assert_eq!(stats.discarded_batches, 0, "no batch was given up on");
    assert!(
        refusals >= seeds().count(),
        "refusals were injected: {refusals}"
    );
    eprintln!(
        "{} seeds, {injected} injected crashes, {refusals} refused runs, {stats:?}",
        seeds().count()
    );
    t.gateway.stop().await;
}
