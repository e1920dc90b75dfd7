//! Report rendering on a month-long report with 1,000 top links (`report_data(31, 1000)`):
//! each format alone, then all of them as one scheduled run renders them. Target: all
//! formats under 1 s in total.

use beacon_report::render;
use beacon_report::testkit::report_data;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let data = report_data(31, 1000);
    let chart = render::chart_png(&data)
        .unwrap()
        .expect("the fixture has a series");
    eprintln!(
        "sizes: csv {} B, json {} B, xlsx {} B, pdf {} B, png {} B, html {} B, text {} B",
        render::csv(&data).unwrap().len(),
        render::json(&data).unwrap().len(),
        render::xlsx(&data).unwrap().len(),
        render::pdf(&data).unwrap().len(),
        chart.len(),
        render::html(&data, Some("cid:chart@beacon")).len(),
        render::text(&data).len(),
    );

    let mut group = c.benchmark_group("report_render");
    group.sample_size(20);
    group.bench_function("csv", |b| b.iter(|| render::csv(black_box(&data)).unwrap()));
    group.bench_function("json", |b| {
        b.iter(|| render::json(black_box(&data)).unwrap())
    });
    group.bench_function("xlsx", |b| {
        b.iter(|| render::xlsx(black_box(&data)).unwrap())
    });
    group.bench_function("pdf", |b| b.iter(|| render::pdf(black_box(&data)).unwrap()));
    group.bench_function("chart_png", |b| {
        b.iter(|| render::chart_png(black_box(&data)).unwrap())
    });
    group.bench_function("html", |b| {
        b.iter(|| render::html(black_box(&data), Some("cid:chart@beacon")))
    });
    group.bench_function("text", |b| b.iter(|| render::text(black_box(&data))));
    group.bench_function("all_formats", |b| {
        b.iter(|| {
            let data = black_box(&data);
            (
                render::csv(data).unwrap(),
                render::json(data).unwrap(),
                render::xlsx(data).unwrap(),
                render::pdf(data).unwrap(),
                render::chart_png(data).unwrap(),
                render::html(data, Some("cid:chart@beacon")),
                render::text(data),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
