//! Classification quality, not speed: today's classifier on labeled traffic with the
//! issue's mix (30% Apple proxy opens, 10% Gmail proxy opens, 5% scanner clicks),
//! 20,000 recipients, three seeds. Prints precision and recall per class, the human
//! unique open and click counts against the truth, and whether they are within the
//! issue's 2%.

use beacon_shared::classify::Classifier;
use beacon_shared::labeled::{classifier_says_human, evaluate, generate, Mix};

const TARGET: f64 = 0.02;

fn main() {
    let mix = Mix::issue_target().with_recipients(20_000);
    println!("mix: {mix:?}\n");
    let mut all_met = true;
    let mut summary = Vec::new();
    for seed in [1, 2, 3] {
        let traffic = generate(&mix, seed);
        let mut classifier = Classifier::default();
        let ev = evaluate(&traffic, |e| classifier_says_human(&mut classifier, e));
        println!("== seed {seed}: {} opens and clicks", traffic.len());
        println!("{ev}");
        let met = ev.meets(TARGET);
        all_met &= met;
        summary.push((seed, ev.unique_opens, ev.unique_clicks, met));
    }
    let pct = |e: Option<f64>| e.map_or("n/a".into(), |e| format!("{:+.2}%", e * 100.0));
    println!("seed  unique opens truth/measured (error)  unique clicks truth/measured (error)  within 2%");
    for (seed, o, c, met) in summary {
        println!(
            "{seed:>4}  {:>6} / {:<6} ({:>7})            {:>5} / {:<5} ({:>7})               {}",
            o.truth,
            o.measured,
            pct(o.relative_error()),
            c.truth,
            c.measured,
            pct(c.relative_error()),
            if met { "yes" } else { "NO" }
        );
    }
    println!(
        "\nissue target (human unique opens and clicks within 2% of the truth): {}",
        if all_met {
            "met on every seed"
        } else {
            "NOT met"
        }
    );
}
