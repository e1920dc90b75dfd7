//! Numbers and times as a person reads them. The HTML, text and PDF renderers and the
//! chart axes all write values through here, so a number reads the same in every
//! format; CSV, JSON and XLSX carry raw numbers instead.

use crate::model::{Deliverability, Metric, MetricKind, SummaryRow};
use chrono::{DateTime, Utc};

/// What stands for a missing value (a rate over nothing, no previous period).
pub const NONE: &str = "–";

/// `1234567.4` → `1,234,567`.
pub fn count(v: f64) -> String {
    grouped(v, 0)
}

/// `1234.5` → `1,234.50` (no currency: the rollups do not record one).
pub fn money(v: f64) -> String {
    grouped(v, 2)
}

/// `0.2534` → `25.3%`, `0.0008` → `0.08%`: small rates (complaints, bounces) keep two
/// decimals so they do not read as zero.
pub fn rate(v: f64) -> String {
    if !v.is_finite() {
        return NONE.into();
    }
    let pct = v * 100.0;
    format!("{:.*}%", percent_decimals(pct), pct)
}

/// A metric's value in its own kind; [`NONE`] when missing.
pub fn value(metric: Metric, v: Option<f64>) -> String {
    match v {
        None => NONE.into(),
        Some(v) => match metric.kind() {
            MetricKind::Count => count(v),
            MetricKind::Money => money(v),
            MetricKind::Rate => rate(v),
        },
    }
}

/// The absolute change with its sign: `+1,234`, `-12.50`; a rate's change is in
/// percentage points (`+0.12 pp`), since a relative change of a rate misleads.
pub fn delta(metric: Metric, d: Option<f64>) -> String {
    let Some(d) = d.filter(|d| d.is_finite()) else {
        return NONE.into();
    };
    match metric.kind() {
        MetricKind::Count => signed(&count(d)),
        MetricKind::Money => signed(&money(d)),
        MetricKind::Rate => {
            let pp = d * 100.0;
            format!("{} pp", signed(&grouped(pp, percent_decimals(pp))))
        }
    }
}

/// The relative change with its sign: `+12.3%`, `-0.45%`.
pub fn delta_ratio(r: Option<f64>) -> String {
    match r.filter(|r| r.is_finite()) {
        None => NONE.into(),
        Some(r) => signed(&rate(r)),
    }
}

/// Whether a change is good news, bad news or neither, for coloring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Neutral,
}

/// An increase of bounces, complaints, failures, delays or unsubscribes is bad; of sends,
/// deliveries, human engagement and conversions good; machine opens, bot clicks and
/// cost are neither.
pub fn tone(metric: Metric, delta: Option<f64>) -> Tone {
    let up_is_good = match metric {
        Metric::Sent
        | Metric::Delivered
        | Metric::OpensHuman
        | Metric::ClicksHuman
        | Metric::Conversions
        | Metric::ConversionValue
        | Metric::DeliveryRate => true,
        Metric::Bounced
        | Metric::BouncedHard
        | Metric::BouncedSoft
        | Metric::Complained
        | Metric::Failed
        | Metric::Delayed
        | Metric::Unsubscribed
        | Metric::BounceRate
        | Metric::ComplaintRate
        | Metric::UnsubscribeRate => false,
        Metric::OpensMachine | Metric::ClicksBot | Metric::Cost => return Tone::Neutral,
    };
    let went_up = match delta {
        // A change too small to show (`0.00 pp`) is not colored either.
        Some(d) if !has_nonzero_digit(&self::delta(metric, Some(d))) => return Tone::Neutral,
        Some(d) if d > 0.0 => true,
        Some(d) if d < 0.0 => false,
        _ => return Tone::Neutral,
    };
    if went_up == up_is_good {
        Tone::Good
    } else {
        Tone::Bad
    }
}

/// The four texts of a summary line after its label: value, previous, change, change %.
pub fn summary_cells(row: &SummaryRow) -> [String; 4] {
    [
        value(row.metric, row.value),
        value(row.metric, row.previous),
        delta(row.metric, row.delta()),
        delta_ratio(row.delta_ratio()),
    ]
}

/// The deliverability verdict every format writes the same way.
pub fn deliverability_verdict(d: &Deliverability) -> String {
    if !d.at_risk() {
        return format!(
            "Within the levels at which SES reviews a sending account ({} bounces, {} complaints).",
            rate(d.bounce_review_level),
            rate(d.complaint_review_level)
        );
    }
    let mut over = Vec::new();
    if let Some(r) = d.bounce_rate.filter(|r| *r >= d.bounce_review_level) {
        over.push(format!(
            "the bounce rate is {} (SES reviews at {})",
            rate(r),
            rate(d.bounce_review_level)
        ));
    }
    if let Some(r) = d.complaint_rate.filter(|r| *r >= d.complaint_review_level) {
        over.push(format!(
            "the complaint rate is {} (SES reviews at {})",
            rate(r),
            rate(d.complaint_review_level)
        ));
    }
    format!("At risk: {}.", over.join("; "))
}

/// An instant in the report's time zone: `2027-01-01 01:35 CET`; UTC when the zone is
/// not an IANA name.
pub fn local_time(at: DateTime<Utc>, timezone: &str) -> String {
    match timezone.parse::<chrono_tz::Tz>() {
        Ok(tz) => at
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// At most `max` characters, the last one an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if s[cut..].chars().nth(1).is_some() => format!("{}…", &s[..cut]).into(),
        _ => s.into(),
    }
}

fn percent_decimals(pct: f64) -> usize {
    if pct.abs() < 10.0 {
        2
    } else {
        1
    }
}

fn has_nonzero_digit(text: &str) -> bool {
    text.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// `+` before a positive text; a zero (`0`, `0.00`) stays unsigned.
fn signed(text: &str) -> String {
    if text.starts_with('-') || !has_nonzero_digit(text) {
        text.to_string()
    } else {
        format!("+{text}")
    }
}

/// Thousands separators on the whole part, `decimals` digits after the point, and a
/// minus only when something non-zero is left after rounding (no `-0`).
/// An exact whole number with thousands separators: `285012` → `285,012` (also for
/// numbers an `f64` can't hold exactly, such as IPv6 address counts).
pub fn whole(n: u128) -> String {
    let mut out = String::new();
    push_grouped(&mut out, &n.to_string());
    out
}

fn push_grouped(out: &mut String, digits: &str) {
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
}

fn grouped(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return NONE.into();
    }
    let digits = format!("{:.*}", decimals, v.abs());
    let (whole, fraction) = digits.split_once('.').unwrap_or((&digits, ""));
    let mut out = String::with_capacity(digits.len() + whole.len() / 3 + 1);
    if v < 0.0 && has_nonzero_digit(&digits) {
        out.push('-');
    }
    push_grouped(&mut out, whole);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_the_same_everywhere() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1_234_567.4), "1,234,567");
        assert_eq!(count(-1_000.0), "-1,000");
        assert_eq!(whole(0), "0");
        assert_eq!(whole(999), "999");
        assert_eq!(whole(4_294_967_296), "4,294,967,296");
        assert_eq!(whole(1 << 96), "79,228,162,514,264,337,593,543,950,336");
        assert_eq!(money(1234.5), "1,234.50");
        assert_eq!(money(-0.001), "0.00");
        assert_eq!(rate(0.2534), "25.3%");
        assert_eq!(rate(0.0008), "0.08%");
        assert_eq!(rate(1.0), "100.0%");
        assert_eq!(value(Metric::Sent, None), NONE);
        assert_eq!(value(Metric::Cost, Some(12.0)), "12.00");
        assert_eq!(delta(Metric::Sent, Some(1234.0)), "+1,234");
        assert_eq!(delta(Metric::Sent, Some(-12.0)), "-12");
        assert_eq!(delta(Metric::Sent, Some(0.0)), "0");
        assert_eq!(delta(Metric::BounceRate, Some(0.0012)), "+0.12 pp");
        assert_eq!(delta(Metric::BounceRate, Some(-0.000_001)), "0.00 pp");
        assert_eq!(delta(Metric::Cost, None), NONE);
        assert_eq!(delta_ratio(Some(0.123)), "+12.3%");
        assert_eq!(delta_ratio(Some(-0.0045)), "-0.45%");
        assert_eq!(delta_ratio(None), NONE);
    }

    #[test]
    fn increases_of_bad_things_are_bad() {
        assert_eq!(tone(Metric::Sent, Some(1.0)), Tone::Good);
        assert_eq!(tone(Metric::Sent, Some(-1.0)), Tone::Bad);
        assert_eq!(tone(Metric::Complained, Some(1.0)), Tone::Bad);
        assert_eq!(tone(Metric::UnsubscribeRate, Some(-0.1)), Tone::Good);
        assert_eq!(tone(Metric::Cost, Some(5.0)), Tone::Neutral);
        assert_eq!(tone(Metric::Bounced, Some(0.0)), Tone::Neutral);
        assert_eq!(tone(Metric::Bounced, None), Tone::Neutral);
        // Too small to show, so not colored.
        assert_eq!(tone(Metric::ComplaintRate, Some(0.000_001)), Tone::Neutral);
    }

    #[test]
    fn truncation_and_local_time() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("äöüß", 3), "äö…");
        let at: DateTime<Utc> = "2027-01-01T01:35:00Z".parse().unwrap();
        assert_eq!(local_time(at, "Europe/Berlin"), "2027-01-01 02:35 CET");
        assert_eq!(local_time(at, "Mars/Olympus"), "2027-01-01 01:35 UTC");
    }
}
