//! Mapping throughput of SES events: an EventBridge envelope's bytes to the Beacon
//! events it stands for (parse, tenant from the tags, recipient id keyed hash,
//! deterministic event id, click classification context), in-process on one core.
//! Target: at least 200,000 events per second. The mix is one campaign's: per message
//! a send and a delivery, and some opens and clicks; the envelopes are the samples of
//! `events/ingest-ses/` with fresh message ids.

use beacon_domain::event::context::IpPolicy;
use beacon_domain::event::validate::Limits;
use beacon_domain::ingest::credentials::IngestKeys;
use beacon_domain::ingest::{ses, Intake, Provider};
use beacon_domain::verdict::networks::Networks;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

// The function's allocator (functions/ingest-ses/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sample(name: &str) -> String {
    let path = format!(
        "{}/../events/ingest-ses/eventbridge-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("sample event")
}

fn bench(c: &mut Criterion) {
    let intake = Intake {
        keys: IngestKeys::from_json(r#"{"active":"k1","k1":"0123456789abcdef0123456789abcdef"}"#)
            .unwrap(),
        limits: Limits::default(),
        ip_policy: IpPolicy::Anonymize,
        networks: Networks::shipped(),
    };
    let kinds = ["send", "delivery", "send", "delivery", "open", "click"];
    let payloads: Vec<Vec<u8>> = (0..600)
        .map(|i| {
            sample(kinds[i % kinds.len()])
                .replace(
                    "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
                    &format!("0100018c{i:08x}-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"),
                )
                .into_bytes()
        })
        .collect();
    // The samples are from 2026-12-01; map them as of that afternoon.
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T13:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut group = c.benchmark_group("ses_mapping");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function("eventbridge_to_events", |b| {
        b.iter(|| {
            let mut events = 0;
            for payload in &payloads {
                let arrival = ses::read_eventbridge(payload).unwrap();
                let tenant = ses::tenant_of(&arrival.event, None, None).unwrap();
                let mapped = intake.with_source(Provider::Ses, &tenant, now, |source| {
                    ses::map(&arrival.event, 0, source)
                });
                events += mapped.events.len();
                black_box(mapped);
            }
            assert_eq!(events, payloads.len());
        })
    });
    // The share of reading the envelope alone.
    group.bench_function("eventbridge_parse_only", |b| {
        b.iter(|| {
            for payload in &payloads {
                black_box(ses::read_eventbridge(payload).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
