//! The plain-text alternative of the email: the same sections and numbers as the HTML
//! body, in columns aligned for a monospaced reader.

use super::fmt;
use super::html::EMAIL_LINKS;
use crate::model::ReportData;
use std::fmt::Write;

pub(super) fn render(data: &ReportData) -> String {
    let mut t = String::with_capacity(4096);
    let _ = writeln!(t, "{}", data.name);
    let _ = writeln!(t, "{} · {}", data.scope, data.tenant);
    let _ = writeln!(
        t,
        "{}, compared with {}",
        data.period.label, data.previous.label
    );

    heading(&mut t, "Summary");
    let rows: Vec<Vec<String>> = data
        .summary
        .iter()
        .map(|row| {
            let [value, previous, delta, ratio] = fmt::summary_cells(row);
            vec![
                row.metric.label().to_string(),
                value,
                previous,
                delta,
                ratio,
            ]
        })
        .collect();
    table(
        &mut t,
        &["Metric", "This period", "Previous", "Change", "Change %"],
        &[false, true, true, true, true],
        &rows,
    );

    if let Some(series) = data.series.as_ref().filter(|s| !s.points.is_empty()) {
        heading(
            &mut t,
            if series.grain == "hour" {
                "By hour"
            } else {
                "By day"
            },
        );
        let mut header = vec![if series.grain == "hour" {
            "Hour"
        } else {
            "Day"
        }];
        header.extend(series.metrics.iter().map(|m| m.label()));
        let mut right = vec![true; header.len()];
        right[0] = false;
        let rows: Vec<Vec<String>> = series
            .points
            .iter()
            .map(|p| {
                let mut row = vec![p.label.clone()];
                row.extend(
                    series
                        .metrics
                        .iter()
                        .zip(&p.values)
                        .map(|(m, v)| fmt::value(*m, *v)),
                );
                row
            })
            .collect();
        table(&mut t, &header, &right, &rows);
    }

    if let Some(links) = &data.top_links {
        heading(&mut t, "Top links");
        if links.is_empty() {
            t.push_str("No clicks on links in this period.\n");
        } else {
            let rows: Vec<Vec<String>> = links
                .iter()
                .take(EMAIL_LINKS)
                .enumerate()
                .map(|(i, l)| {
                    vec![
                        (i + 1).to_string(),
                        fmt::count(l.clicks_human as f64),
                        fmt::count(l.clicks_bot as f64),
                        l.campaign.clone(),
                        // Whole: the last column, and a plain-text reader cannot hover.
                        l.url.clone(),
                    ]
                })
                .collect();
            table(
                &mut t,
                &["#", "Human clicks", "Bot clicks", "Campaign", "URL"],
                &[true, true, true, false, false],
                &rows,
            );
            if links.len() > EMAIL_LINKS {
                let more = links.len() - EMAIL_LINKS;
                let _ = writeln!(
                    t,
                    "{} more {} in the attached files.",
                    fmt::count(more as f64),
                    if more == 1 { "link is" } else { "links are" }
                );
            }
        }
    }

    if let Some(channels) = &data.channels {
        heading(&mut t, "Channels");
        let count = |v: u64| fmt::count(v as f64);
        let rows: Vec<Vec<String>> = channels
            .iter()
            .map(|c| {
                std::iter::once(format!("{}/{}", c.channel, c.provider))
                    .chain(c.counts().map(count))
                    .chain([fmt::money(c.cost)])
                    .collect()
            })
            .collect();
        table(
            &mut t,
            &[
                "Channel",
                "Sent",
                "Delivered",
                "Bounced",
                "Complaints",
                "Opens",
                "Clicks",
                "Cost",
            ],
            &[false, true, true, true, true, true, true, true],
            &rows,
        );
    }

    if let Some(d) = &data.deliverability {
        heading(&mut t, "Deliverability");
        let _ = writeln!(t, "{}", fmt::deliverability_verdict(d));
        let rate = |v: Option<f64>| v.map_or(fmt::NONE.to_string(), fmt::rate);
        let count = |v: u64| fmt::count(v as f64);
        let rows = vec![
            vec!["Sent".into(), count(d.sent), String::new()],
            vec!["Delivered".into(), count(d.delivered), String::new()],
            vec!["Hard bounces".into(), count(d.bounced_hard), String::new()],
            vec!["Soft bounces".into(), count(d.bounced_soft), String::new()],
            vec!["Complaints".into(), count(d.complained), String::new()],
            vec![
                "Bounce rate".into(),
                rate(d.bounce_rate),
                fmt::rate(d.bounce_review_level),
            ],
            vec![
                "Complaint rate".into(),
                rate(d.complaint_rate),
                fmt::rate(d.complaint_review_level),
            ],
        ];
        table(
            &mut t,
            &["Measure", "Value", "SES review level"],
            &[false, true, true],
            &rows,
        );
    }

    let _ = writeln!(
        t,
        "\n--\nGenerated {} (time zone {}) by Beacon.",
        fmt::local_time(data.generated_at, &data.timezone),
        data.timezone
    );
    t
}

fn heading(t: &mut String, title: &str) {
    let _ = write!(t, "\n{title}\n{}\n", "=".repeat(title.chars().count()));
}

/// Columns padded to their widest cell (in characters), two spaces apart; `right`
/// aligns numbers on their last digit. Trailing spaces are trimmed.
fn table(t: &mut String, header: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        t.push_str(out.trim_end());
        t.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::report_data;

    #[test]
    fn text_has_the_summary_values_in_aligned_columns() {
        let data = report_data(31, 1000);
        let t = render(&data);
        assert!(t.starts_with("Monthly newsletter performance\n"));
        let lines: Vec<&str> = t.lines().collect();
        let header = lines.iter().position(|l| l.starts_with("Metric ")).unwrap();
        // Right-aligned: every summary line ends its "This period" column at the same
        // character as the header's.
        let end = lines[header].find("This period").unwrap() + "This period".len();
        for (line, row) in lines[header + 1..].iter().zip(&data.summary) {
            let value = fmt::value(row.metric, row.value);
            assert!(line.starts_with(row.metric.label()), "{line}");
            let chars: Vec<char> = line.chars().collect();
            let cell: String = chars[end - value.chars().count()..end].iter().collect();
            assert_eq!(cell, value, "{line}");
            assert!(line.contains(&fmt::delta(row.metric, row.delta())));
        }
        assert!(t.contains("980 more links are in the attached files."));
        assert!(t.contains("2026-12-31"));
        assert!(t.contains("email/sendgrid"));
        assert!(t.contains("Within the levels"));
        assert!(t.contains("Europe/Berlin"));
        assert!(!t.contains('<'));
    }
}
