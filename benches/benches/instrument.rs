//! `instrument` on a 100 KB campaign email with 200 links. Target: at least 50 MB/s.

use beacon_domain::testkit::{test_keyring, test_recipient};
use beacon_instrument::{instrument_html, LinkSigner};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// A realistic newsletter: tables, inline styles, 200 tracked links, about 100 KB.
fn email() -> String {
    let mut html = String::from("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Weekly picks</title></head><body style=\"margin:0;background:#f4f4f7\"><table role=\"presentation\" width=\"100%\">");
    let mut i = 0;
    while html.len() < 100 * 1024 || i < 200 {
        if i < 200 {
            html.push_str(&format!(
                "<tr><td style=\"padding:12px 24px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:22px;color:#333\"><h3 style=\"margin:0 0 8px\">Pick number {i}</h3><p style=\"margin:0 0 8px\">A short paragraph that describes the product, its price and why readers might like it this week.</p><a href=\"https://shop.example.com/p/{i}?utm_source=email&amp;utm_campaign=weekly&amp;utm_content=pick{i}\" style=\"color:#0b5fff\">See item {i}</a></td></tr>\n"
            ));
        } else {
            html.push_str("<tr><td style=\"padding:12px 24px;color:#666\">Filler text that pads the newsletter the way long footers and legal notices do.</td></tr>\n");
        }
        i += 1;
    }
    html.push_str("</table></body></html>");
    html
}

fn bench(c: &mut Criterion) {
    let html = email();
    let keyring = test_keyring();
    let signer = LinkSigner::new(&keyring, "https://t.example.com").unwrap();
    let recipient = test_recipient();
    let probe = instrument_html(&html, &signer, &recipient, 2_000_000_000).unwrap();
    assert_eq!(probe.links_tracked, 200);
    eprintln!("email: {} bytes, {} links", html.len(), probe.links_tracked);

    let mut group = c.benchmark_group("instrument");
    group.throughput(Throughput::Bytes(html.len() as u64));
    group.bench_function("100KB_200_links", |b| {
        b.iter(|| instrument_html(black_box(&html), &signer, &recipient, 2_000_000_000).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
