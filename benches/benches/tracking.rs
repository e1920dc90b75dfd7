//! Per-request CPU cost of the open and click handlers in-process: token check, event
//! build and record serialization. The sink encodes each record as the Kinesis sink
//! does and drops it, so the network is excluded. Target: at most 10 µs per request.

use beacon_aws::testkit::tracking_request;
use beacon_domain::event::Event;
use beacon_domain::testkit::{test_keyring, test_recipient};
use beacon_domain::tracking::sink::{encode_record, partition_key, EventSink, Unstored};
use beacon_domain::tracking::Tracker;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;

struct EncodeOnly;

impl EventSink for EncodeOnly {
    async fn put(&self, events: &[Event]) -> Vec<Unstored> {
        for e in events {
            black_box((encode_record(e), partition_key(e)));
        }
        Vec::new()
    }
}

const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tracker = Tracker {
        keyring: test_keyring(),
        sink: EncodeOnly,
        ip_policy: Default::default(),
        networks: beacon_domain::verdict::networks::Networks::shipped(),
    };
    let exp = (chrono::Utc::now().timestamp() + 86_400) as u32;
    let open = test_keyring().sign_open(&test_recipient(), exp).unwrap();
    let click = test_keyring()
        .sign_click(
            &test_recipient(),
            "https://shop.example.com/p/linen-shirt?utm_source=email&utm_campaign=spring",
            exp,
        )
        .unwrap();

    let mut group = c.benchmark_group("handler");
    group.bench_function("open", |b| {
        b.iter_batched(
            || tracking_request("o", &open, UA, "203.0.113.45"),
            |req| {
                runtime
                    .block_on(open_pixel_function::handle(&tracker, req))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("click", |b| {
        b.iter_batched(
            || tracking_request("c", &click, UA, "203.0.113.45"),
            |req| {
                runtime
                    .block_on(click_redirect_function::handle(&tracker, req))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
