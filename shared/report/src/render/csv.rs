//! The report as one CSV file (RFC 4180: commas, `"` quoting, CRLF line ends).
//!
//! Layout: one block per section present, in this order, each a header row then its
//! data rows, blocks separated by an empty line:
//!
//! ```text
//! section,tenant,report_id,name,scope,timezone,period,period_start,period_end,previous_period,previous_start,previous_end,generated_at
//! report,acme,...
//!
//! section,metric,label,value,previous,delta,delta_ratio
//! summary,sent,Sent,2145876,1873412,272464,0.1454...
//!
//! section,point,start,sent,delivered,...            (one column per series metric)
//! series,2026-12-01,2026-11-30T23:00:00Z,...
//!
//! section,rank,campaign,url,clicks_human,clicks_bot
//! section,channel,provider,sent,delivered,bounced,complained,opens_human,clicks_human,cost
//! section,sent,delivered,bounced_hard,bounced_soft,complained,bounce_rate,complaint_rate,bounce_review_level,complaint_review_level,at_risk
//! ```
//!
//! Why this shape: opened in a spreadsheet every block reads as a table under its own
//! header, and because the first column of every row names its section, filtering
//! column A on `top_links` (or `grep ^top_links,` in a script) isolates one table. A
//! single long table (`section,key,value`) would have needed a pivot before any use.
//!
//! Values are raw: counts as integers, money as plain decimals, rates as fractions
//! (0.25 is 25%), instants in RFC 3339 UTC, no thousands separators; a missing value is
//! an empty field. The file starts with a UTF-8 byte order mark so that Excel reads
//! non-ASCII campaign names and URLs as UTF-8 (CSV readers such as the `csv` crate,
//! pandas and Python's `utf-8-sig` skip it).

use super::RenderError;
use crate::model::{ReportData, SummaryRow};
use chrono::{DateTime, SecondsFormat, Utc};

const BOM: &[u8] = "\u{feff}".as_bytes();

pub(super) fn render(data: &ReportData) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(4096 + data.top_links.as_ref().map_or(0, |l| l.len() * 160));
    out.extend_from_slice(BOM);

    block(&mut out, |w| {
        w.write_record([
            "section",
            "tenant",
            "report_id",
            "name",
            "scope",
            "timezone",
            "period",
            "period_start",
            "period_end",
            "previous_period",
            "previous_start",
            "previous_end",
            "generated_at",
        ])?;
        w.write_record([
            "report",
            &text(&data.tenant),
            &data.report_id,
            &text(&data.name),
            &text(&data.scope),
            &data.timezone,
            &data.period.key,
            &instant(data.period.start),
            &instant(data.period.end),
            &data.previous.key,
            &instant(data.previous.start),
            &instant(data.previous.end),
            &instant(data.generated_at),
        ])
    })?;

    block(&mut out, |w| {
        w.write_record([
            "section",
            "metric",
            "label",
            "value",
            "previous",
            "delta",
            "delta_ratio",
        ])?;
        for row in &data.summary {
            summary_row(w, row)?;
        }
        Ok(())
    })?;

    if let Some(series) = &data.series {
        block(&mut out, |w| {
            let mut header = vec!["section", "point", "start"];
            header.extend(series.metrics.iter().map(|m| m.key()));
            w.write_record(&header)?;
            for point in &series.points {
                let mut record = vec![
                    "series".to_string(),
                    point.label.clone(),
                    instant(point.start),
                ];
                // One field per metric even when a point carries fewer values.
                record.extend(
                    (0..series.metrics.len())
                        .map(|i| number(point.values.get(i).copied().flatten())),
                );
                w.write_record(&record)?;
            }
            Ok(())
        })?;
    }

    if let Some(links) = &data.top_links {
        block(&mut out, |w| {
            w.write_record([
                "section",
                "rank",
                "campaign",
                "url",
                "clicks_human",
                "clicks_bot",
            ])?;
            for (i, link) in links.iter().enumerate() {
                w.write_record([
                    "top_links",
                    &(i + 1).to_string(),
                    &text(&link.campaign),
                    &text(&link.url),
                    &link.clicks_human.to_string(),
                    &link.clicks_bot.to_string(),
                ])?;
            }
            Ok(())
        })?;
    }

    if let Some(channels) = &data.channels {
        block(&mut out, |w| {
            w.write_record([
                "section",
                "channel",
                "provider",
                "sent",
                "delivered",
                "bounced",
                "complained",
                "opens_human",
                "clicks_human",
                "cost",
            ])?;
            for c in channels {
                let names = ["channels".into(), text(&c.channel), text(&c.provider)];
                let counts = c.counts().map(|v| v.to_string().into());
                w.write_record(
                    names
                        .into_iter()
                        .chain(counts)
                        .chain([number(Some(c.cost)).into()])
                        .map(|f: std::borrow::Cow<'_, str>| f.into_owned()),
                )?;
            }
            Ok(())
        })?;
    }

    if let Some(d) = &data.deliverability {
        block(&mut out, |w| {
            w.write_record([
                "section",
                "sent",
                "delivered",
                "bounced_hard",
                "bounced_soft",
                "complained",
                "bounce_rate",
                "complaint_rate",
                "bounce_review_level",
                "complaint_review_level",
                "at_risk",
            ])?;
            w.write_record([
                "deliverability",
                &d.sent.to_string(),
                &d.delivered.to_string(),
                &d.bounced_hard.to_string(),
                &d.bounced_soft.to_string(),
                &d.complained.to_string(),
                &number(d.bounce_rate),
                &number(d.complaint_rate),
                &number(Some(d.bounce_review_level)),
                &number(Some(d.complaint_review_level)),
                if d.at_risk() { "true" } else { "false" },
            ])
        })?;
    }

    Ok(out)
}

type Writer<'a> = ::csv::Writer<&'a mut Vec<u8>>;

/// One section: its own csv writer, so that the writer checks every row of the block
/// has the header's width, and an empty line before it (the csv writer cannot write an
/// empty record: it writes `""`). CSV readers skip empty lines.
fn block(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Writer<'_>) -> Result<(), ::csv::Error>,
) -> Result<(), RenderError> {
    if out.len() > BOM.len() {
        out.extend_from_slice(b"\r\n");
    }
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(out);
    write(&mut w)?;
    w.flush()?;
    Ok(())
}

fn summary_row(w: &mut Writer<'_>, row: &SummaryRow) -> Result<(), ::csv::Error> {
    w.write_record([
        "summary",
        row.metric.key(),
        row.metric.label(),
        &number(row.value),
        &number(row.previous),
        &number(row.delta()),
        &number(row.delta_ratio()),
    ])
}

/// Shortest text that reads back to the same `f64` (`12345`, `0.0421`, `1234.5`);
/// empty when missing or not finite.
/// A name as a spreadsheet will read it: a leading `=`, `+`, `-`, `@`, tab or CR would
/// start a formula in Excel or LibreOffice (CSV injection), so such a value is quoted
/// with a leading `'`, which spreadsheets show as text and do not display.
fn text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

fn number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => v.to_string(),
        _ => String::new(),
    }
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::report_data;

    fn sections(bytes: &[u8]) -> Vec<::csv::StringRecord> {
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes)
            .records()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn rows<'a>(records: &'a [::csv::StringRecord], section: &str) -> Vec<&'a ::csv::StringRecord> {
        records.iter().filter(|r| &r[0] == section).collect()
    }

    fn f(s: &str) -> Option<f64> {
        (!s.is_empty()).then(|| s.parse().unwrap())
    }

    #[test]
    fn csv_reads_back_to_the_report_numbers() {
        let mut data = report_data(31, 120);
        // Quoting: commas, quotes and line breaks survive.
        data.top_links.as_mut().unwrap()[0].campaign = "spring, \"best\"\nof".into();
        let bytes = render(&data).unwrap();
        assert!(bytes.starts_with(BOM));
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains("\r\n\r\nsection,metric,label,value,previous,delta,delta_ratio\r\n"));
        assert!(!text.contains(",1,2"), "no thousands separators");
        let records = sections(&bytes);

        let headers: Vec<&str> = records
            .iter()
            .filter(|r| &r[0] == "section")
            .map(|r| &r[1])
            .collect();
        assert_eq!(
            headers,
            ["tenant", "metric", "point", "rank", "channel", "sent"]
        );

        let report = rows(&records, "report");
        assert_eq!(&report[0][1], "acme");
        assert_eq!(&report[0][6], "2026-12");
        assert_eq!(&report[0][7], "2026-11-30T23:00:00Z");

        let summary = rows(&records, "summary");
        assert_eq!(summary.len(), data.summary.len());
        for (r, row) in summary.iter().zip(&data.summary) {
            assert_eq!(&r[1], row.metric.key());
            assert_eq!(&r[2], row.metric.label());
            assert_eq!(f(&r[3]), row.value);
            assert_eq!(f(&r[4]), row.previous);
            assert_eq!(f(&r[5]), row.delta());
            assert_eq!(f(&r[6]), row.delta_ratio());
        }

        let series = data.series.as_ref().unwrap();
        let points = rows(&records, "series");
        assert_eq!(points.len(), 31);
        assert_eq!(&points[0][1], "2026-12-01");
        for (r, p) in points.iter().zip(&series.points) {
            let values: Vec<Option<f64>> = r.iter().skip(3).map(f).collect();
            assert_eq!(values, p.values);
        }

        let links = rows(&records, "top_links");
        let expected = data.top_links.as_ref().unwrap();
        assert_eq!(links.len(), expected.len());
        assert_eq!(&links[0][2], "spring, \"best\"\nof");
        assert_eq!(&links[41][1], "42");
        assert_eq!(&links[41][3], expected[41].url);
        assert_eq!(
            links[41][4].parse::<u64>().unwrap(),
            expected[41].clicks_human
        );

        let channels = rows(&records, "channels");
        let expected = data.channels.as_ref().unwrap();
        assert_eq!(channels.len(), 3);
        assert_eq!(&channels[1][2], "sendgrid");
        assert_eq!(f(&channels[1][9]), Some(expected[1].cost));

        let d = data.deliverability.as_ref().unwrap();
        let del = rows(&records, "deliverability");
        assert_eq!(del[0][1].parse::<u64>().unwrap(), d.sent);
        assert_eq!(f(&del[0][6]), d.bounce_rate);
        assert_eq!(&del[0][10], "false");
    }

    #[test]
    fn names_that_would_start_a_formula_are_quoted() {
        assert_eq!(
            text("=HYPERLINK(\"http://evil\")"),
            "'=HYPERLINK(\"http://evil\")"
        );
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("-spring"), "'-spring");
        assert_eq!(text("spring-sale"), "spring-sale");
        assert_eq!(text("https://x.example/?a=1"), "https://x.example/?a=1");
    }

    #[test]
    fn absent_sections_and_values_are_left_out() {
        let mut data = report_data(3, 0);
        data.series = None;
        data.top_links = None;
        data.channels = None;
        data.deliverability = None;
        data.summary[0].previous = None;
        let records = sections(&render(&data).unwrap());
        assert!(records
            .iter()
            .all(|r| ["section", "report", "summary"].contains(&&r[0])));
        let first = rows(&records, "summary")[0];
        assert_eq!((&first[4], &first[5], &first[6]), ("", "", ""));
    }
}
