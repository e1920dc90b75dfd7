//! Counters as CloudWatch Embedded Metric Format log lines: CloudWatch turns each line
//! into a metric with no API call and no extra latency on the request path.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::sync::Mutex;

pub const NAMESPACE: &str = "Beacon";

/// Where metric lines go instead of stdout (a local host that shares its terminal).
static REDIRECT: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Sends every later metric line to `path` (appending) instead of stdout.
pub fn write_to_file(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    *REDIRECT.lock().expect("metrics lock") = Some(file);
    Ok(())
}

/// Counts `value` of `name`, with dimensions: one JSON line on stdout, where the
/// Lambda service hands it to CloudWatch.
pub fn count(name: &str, value: u64, dimensions: &[(&str, &str)]) {
    let line = emf_line(
        name,
        value,
        dimensions,
        chrono::Utc::now().timestamp_millis(),
    );
    match REDIRECT.lock().expect("metrics lock").as_mut() {
        Some(file) => {
            let _ = writeln!(file, "{line}");
        }
        None => println!("{line}"),
    }
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
