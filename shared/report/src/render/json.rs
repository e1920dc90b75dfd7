//! The report as JSON: [`ReportData`] exactly as serde writes it (the same field
//! names the API uses), with what a consumer would otherwise recompute added in place:
//! each summary row's `delta` and `delta_ratio`, and the deliverability's `at_risk`.

use super::RenderError;
use crate::model::ReportData;
use serde_json::Value;

pub(super) fn render(data: &ReportData) -> Result<Vec<u8>, RenderError> {
    let mut doc = serde_json::to_value(data)?;
    if let Some(rows) = doc.get_mut("summary").and_then(Value::as_array_mut) {
        for (row, value) in data.summary.iter().zip(rows) {
            if let Some(obj) = value.as_object_mut() {
                obj.insert("delta".into(), number(row.delta()));
                obj.insert("delta_ratio".into(), number(row.delta_ratio()));
            }
        }
    }
    if let (Some(d), Some(obj)) = (
        &data.deliverability,
        doc.get_mut("deliverability").and_then(Value::as_object_mut),
    ) {
        obj.insert("at_risk".into(), Value::Bool(d.at_risk()));
    }
    let mut out = Vec::with_capacity(8192);
    serde_json::to_writer_pretty(&mut out, &doc)?;
    out.push(b'\n');
    Ok(out)
}

/// `null` when missing (or not finite, which JSON cannot carry).
fn number(v: Option<f64>) -> Value {
    v.and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::report_data;

    /// serde_json's default float parser may be one ulp off the shortest text it wrote.
    fn close(json: &Value, expected: Option<f64>) {
        match (json.as_f64(), expected) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= b.abs() * 1e-15, "{a} != {b}"),
            (a, b) => assert_eq!(a, b),
        }
    }

    #[test]
    fn json_reads_back_with_deltas() {
        let data = report_data(31, 50);
        let bytes = render(&data).unwrap();
        assert!(bytes.starts_with(b"{\n  \""), "pretty-printed");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["tenant"], "acme");
        assert_eq!(v["timezone"], "Europe/Berlin");
        assert_eq!(v["period"]["key"], "2026-12");
        assert_eq!(v["period"]["start"], "2026-11-30T23:00:00Z");

        let summary = v["summary"].as_array().unwrap();
        assert_eq!(summary.len(), data.summary.len());
        for (json, row) in summary.iter().zip(&data.summary) {
            assert_eq!(json["metric"], row.metric.key());
            close(&json["value"], row.value);
            close(&json["previous"], row.previous);
            close(&json["delta"], row.delta());
            close(&json["delta_ratio"], row.delta_ratio());
        }

        let series = &v["series"];
        assert_eq!(series["grain"], "day");
        assert_eq!(series["points"].as_array().unwrap().len(), 31);
        assert_eq!(
            series["points"][3]["values"][0].as_f64(),
            data.series.as_ref().unwrap().points[3].values[0]
        );
        let links = v["top_links"].as_array().unwrap();
        assert_eq!(links.len(), 50);
        assert_eq!(links[7]["url"], data.top_links.as_ref().unwrap()[7].url);
        assert_eq!(v["channels"].as_array().unwrap().len(), 3);
        assert_eq!(v["deliverability"]["at_risk"], false);
    }

    #[test]
    fn missing_numbers_are_null() {
        let mut data = report_data(2, 1);
        data.summary[0].previous = None;
        data.deliverability = None;
        let v: Value = serde_json::from_slice(&render(&data).unwrap()).unwrap();
        assert!(v["summary"][0]["previous"].is_null());
        assert!(v["summary"][0]["delta"].is_null());
        assert!(v["summary"][0]["delta_ratio"].is_null());
        assert!(v["deliverability"].is_null());
    }
}
