//! Decode + aggregate in-process on a realistic mix (10 campaigns, 100k recipients,
//! 50 links), target at least 1M events/s on one core; and DynamoDB write actions per
//! event against the naive way (one ADD per event per rollup item), in one run,
//! target at least 20x fewer.

use beacon_domain::rollup::aggregate::{apply_batch, Settings};

use beacon_domain::event::stream::{decode_view, StreamRecord};
use beacon_domain::event::{BounceType, Event, EventType};
use beacon_domain::rollup::Aggregate;
use beacon_domain::testkit::memory::MemoryDeadLetters;
use beacon_domain::testkit::rollups::MemoryStore;
use beacon_domain::tracking::sink::encode_record;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

// The allocator the aggregate function runs with, so the figures are the function's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
];

/// A campaign day's traffic: sends, deliveries, bounces, opens, clicks, conversions.
pub fn realistic_mix(n: usize) -> Vec<Event> {
    // Today's traffic, as a live stream carries: no update of a closed day (each would
    // also bump its month pack, `shared::month_pack`).
    let start = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            let kind = match r % 100 {
                0..=29 => EventType::Sent,
                30..=57 => EventType::Delivered,
                58..=59 => EventType::Bounced,
                60..=84 => EventType::Opened,
                85..=95 => EventType::Clicked,
                96..=97 => EventType::Conversion,
                98 => EventType::Unsubscribed,
                _ => EventType::Complained,
            };
            let t = start + chrono::Duration::seconds((i as i64 * 7) % 36_000);
            let recipient = (next() % 100_000) as usize;
            let mut e = Event::new(format!("ev-{i:09}"), "acme".into(), kind.clone(), t, t);
            e.campaign_id = Some(format!("campaign-{}", recipient % 10));
            e.message_id = Some(format!("m-{recipient:06}"));
            e.recipient_id = Some(format!("r-{recipient:06}"));
            e.channel = Some("email".into());
            e.provider = Some("ses".into());
            match kind {
                EventType::Sent => e.cost = Some(0.0001),
                EventType::Delivered => e.duration_ms = Some((next() % 5000) as i64),
                EventType::Bounced => {
                    e.bounce_type = Some(if r % 2 == 0 {
                        BounceType::Hard
                    } else {
                        BounceType::Soft
                    })
                }
                EventType::Clicked => {
                    e.link_url = Some(format!(
                        "https://shop.example.com/p/{}?utm_source=email",
                        next() % 50
                    ))
                }
                EventType::Conversion => e.value = Some(49.9),
                _ => {}
            }
            if matches!(kind, EventType::Opened | EventType::Clicked) {
                e.context = beacon_domain::event::context::request_context(
                    Some("203.0.113.9"),
                    Some(AGENTS[(next() % 3) as usize]),
                    Default::default(),
                );
            }
            e
        })
        .collect()
}

/// Write actions the naive way, Beacon's rollup writes, and Beacon's audience writes
/// (suppression entries and engagement marks: one update per recipient per run).
fn write_actions(events: &[Event], batch: usize) -> (usize, usize, usize, usize, usize) {
    let naive: usize = events
        .iter()
        .map(|e| {
            let mut one = Aggregate::default();
            one.add(e);
            one.item_count() + one.unique_sets().len()
        })
        .sum();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStore::default();
    let dead = MemoryDeadLetters::default();
    let records: Vec<StreamRecord> = events
        .iter()
        .enumerate()
        .map(|(i, e)| StreamRecord {
            shard: "s/0".into(),
            sequence: i.to_string(),
            data: encode_record(e),
        })
        .collect();
    let (mut ours, mut audience, mut trails, mut runs) = (0, 0, 0, 0);
    for chunk in records.chunks(batch) {
        let outcome = runtime
            .block_on(apply_batch(&store, &dead, &Settings::default(), chunk))
            .unwrap();
        ours += outcome.write_actions;
        audience += outcome.audience_writes;
        trails += outcome.trail_writes;
        runs += outcome.runs;
    }
    (naive, ours, audience, trails, runs)
}

fn bench(c: &mut Criterion) {
    let events = realistic_mix(100_000);
    let records: Vec<Vec<u8>> = events.iter().map(encode_record).collect();
    for batch in [100, 1000] {
        let (naive, ours, audience, trails, runs) = write_actions(&events[..50_000], batch);
        let per = |n: usize| n as f64 / 50_000.0;
        eprintln!(
            "write actions, batches of {batch}: naive {naive} ({:.2}/event), Beacon {ours} ({:.3}/event): {:.1}x fewer; of which trails {trails} ({:.3}/event: delivery times and trail stages), rollups and the rest {} ({:.3}/event: {:.1}x fewer), in {runs} runs; plus {audience} suppression/engagement updates ({:.3}/event)",
            per(naive),
            per(ours),
            naive as f64 / ours as f64,
            per(trails),
            ours - trails,
            per(ours - trails),
            naive as f64 / (ours - trails) as f64,
            per(audience)
        );
    }

    let mut group = c.benchmark_group("aggregate");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(10);
    // What the function does per batch of 1,000 records: decode, fold, and produce the
    // rollup items and unique-set members it writes.
    group.bench_function("decode_and_fold_100k", |b| {
        b.iter(|| {
            let mut writes = 0;
            for batch in records.chunks(1000) {
                let mut agg = Aggregate::default();
                for r in batch {
                    agg.add_view(&decode_view(black_box(r)).unwrap());
                }
                writes += agg.rollups().len() + agg.unique_sets().len();
            }
            writes
        })
    });
    group.bench_function("decode_only_100k", |b| {
        b.iter(|| {
            records
                .iter()
                .map(|r| decode_view(black_box(r)).unwrap().event_id.len())
                .sum::<usize>()
        })
    });
    group.bench_function("fold_only_100k", |b| {
        b.iter(|| {
            let mut writes = 0;
            for batch in events.chunks(1000) {
                let mut agg = Aggregate::default();
                for e in batch {
                    agg.add(black_box(e));
                }
                writes += agg.rollups().len() + agg.unique_sets().len();
            }
            writes
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
