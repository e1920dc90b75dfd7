//! Classification quality, not speed: labeled traffic with a realistic mix (30% Apple
//! proxy opens, 10% Gmail proxy opens, 5% scanner clicks), 20,000 recipients, three
//! seeds, judged two ways side by side: by each request alone (agent and network), and
//! as the rollups end up counting it, with each message's trail (delivery time, bursts,
//! opens beside a scan). Prints precision and recall per class, the human unique open
//! and click counts against the truth (missed and extra recipients apart, so errors
//! can't hide by cancelling), and whether they are within 2% of the truth, the error a
//! sender can act on without being misled.

use beacon_domain::testkit::labeled::{
    classifier_says_human, deliveries, evaluate, final_verdicts, generate, Evaluation, Mix,
};
use beacon_domain::verdict::classify::Classifier;

const TARGET: f64 = 0.02;

fn main() {
    let mix = Mix::realistic().with_recipients(20_000);
    println!("mix: {mix:?}\n");
    let mut all_met = true;
    let mut summary = Vec::new();
    for seed in [1, 2, 3] {
        let traffic = generate(&mix, seed);
        let mut classifier = Classifier::default();
        let request = evaluate(&traffic, |e| classifier_says_human(&mut classifier, e));
        let verdicts = final_verdicts(&traffic, &deliveries(&traffic));
        let trail = evaluate(&traffic, |e| verdicts[&e.event_id]);
        println!("== seed {seed}: {} opens and clicks", traffic.len());
        println!("-- by the request alone\n{request}");
        println!("-- with the message's trail (what the rollups count)\n{trail}");
        all_met &= trail.meets(TARGET);
        summary.push((seed, "request", request));
        summary.push((seed, "trail", trail));
    }
    let pct = |e: Option<f64>| e.map_or("n/a".into(), |e| format!("{:+.2}%", e * 100.0));
    let recall = |ev: &Evaluation| {
        ev.clicks
            .machine()
            .recall()
            .map_or("n/a".into(), |r| format!("{:.1}%", r * 100.0))
    };
    println!(
        "seed  judged by  unique opens truth/measured (error) missed/extra   unique clicks truth/measured (error) missed/extra   bot-click recall  within 2%"
    );
    for (seed, how, ev) in &summary {
        let (o, c) = (ev.unique_opens, ev.unique_clicks);
        println!(
            "{seed:>4}  {how:<9}  {:>6} / {:<6} ({:>7}) {:>4}/{:<4}         {:>5} / {:<5} ({:>7}) {:>4}/{:<4}          {:>6}           {}",
            o.truth,
            o.measured,
            pct(o.relative_error()),
            o.missed,
            o.extra,
            c.truth,
            c.measured,
            pct(c.relative_error()),
            c.missed,
            c.extra,
            recall(ev),
            if ev.meets(TARGET) { "yes" } else { "NO" }
        );
    }
    println!(
        "\nissue target (human unique opens and clicks within 2% of the truth, as counted): {}",
        if all_met {
            "met on every seed"
        } else {
            "NOT met"
        }
    );
}
