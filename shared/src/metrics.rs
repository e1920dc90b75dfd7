//! Counters as CloudWatch Embedded Metric Format log lines: CloudWatch turns each line
//! into a metric with no API call and no extra latency on the request path.

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "Beacon";

/// Counts `value` of `name`, with dimensions. One JSON line on stdout.
pub fn count(name: &str, value: u64, dimensions: &[(&str, &str)]) {
    println!(
        "{}",
        emf_line(
            name,
            value,
            dimensions,
            chrono::Utc::now().timestamp_millis()
        )
    );
}

fn emf_line(name: &str, value: u64, dimensions: &[(&str, &str)], now_ms: i64) -> String {
    let mut doc = Map::new();
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).into(), Value::String((*v).into()));
    }
    doc.insert(name.into(), json!(value));
    Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn emf_line_names_metric_and_dimensions() {
        let line = super::emf_line("TokensRejected", 1, &[("Reason", "expired")], 5);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["TokensRejected"], 1);
        assert_eq!(v["Reason"], "expired");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Reason"
        );
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Beacon");
    }
}
