//! The report as an Excel workbook (rust_xlsxwriter): one sheet per section present
//! (Summary, Series, Top links, Channels, Deliverability), every number written as a
//! number with a display format of its kind, so that sums, filters and pivots work.
//! Each sheet has a styled, frozen header row with an autofilter; the Series sheet
//! carries a native line chart of the same metrics as the PNG chart.

use super::{chart, RenderError};
use crate::model::{MetricKind, ReportData, ReportSeries};
use rust_xlsxwriter::{
    Chart, ChartFormat, ChartLegendPosition, ChartLine, ChartType, Color, DocProperties, Format,
    FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError,
};

/// Excel refuses longer cell texts.
const MAX_CELL_CHARS: usize = 32_767;

struct Styles {
    header: Format,
    header_number: Format,
    count: Format,
    money: Format,
    rate: Format,
    /// Signed changes: `+1,234` / `-1,234`, `+0.12%` (a rate's change, in points).
    count_delta: Format,
    money_delta: Format,
    rate_delta: Format,
    ratio: Format,
    bold: Format,
    warning: Format,
}

impl Styles {
    fn new() -> Styles {
        let header = Format::new()
            .set_bold()
            .set_font_color(Color::White)
            .set_background_color(Color::RGB(0x1F_3A_5F))
            .set_border_bottom(FormatBorder::Thin);
        Styles {
            header_number: header.clone().set_align(FormatAlign::Right),
            header,
            count: Format::new().set_num_format("#,##0"),
            money: Format::new().set_num_format("#,##0.00"),
            rate: Format::new().set_num_format("0.00%"),
            count_delta: Format::new().set_num_format("+#,##0;-#,##0;0"),
            money_delta: Format::new().set_num_format("+#,##0.00;-#,##0.00;0.00"),
            rate_delta: Format::new().set_num_format("+0.00%;-0.00%;0.00%"),
            ratio: Format::new().set_num_format("+0.0%;-0.0%;0.0%"),
            bold: Format::new().set_bold(),
            warning: Format::new()
                .set_bold()
                .set_font_color(Color::RGB(0xB4_23_18)),
        }
    }

    fn value(&self, kind: MetricKind) -> &Format {
        match kind {
            MetricKind::Count => &self.count,
            MetricKind::Money => &self.money,
            MetricKind::Rate => &self.rate,
        }
    }

    fn delta(&self, kind: MetricKind) -> &Format {
        match kind {
            MetricKind::Count => &self.count_delta,
            MetricKind::Money => &self.money_delta,
            MetricKind::Rate => &self.rate_delta,
        }
    }
}

/// A column: its header, its width in characters, whether it holds numbers (the
/// header is then right-aligned over them).
struct Column(&'static str, f64, bool);

pub(super) fn render(data: &ReportData) -> Result<Vec<u8>, RenderError> {
    let styles = Styles::new();
    let mut workbook = Workbook::new();
    workbook.set_properties(
        &DocProperties::new()
            .set_title(format!("{} – {}", data.name, data.period.label))
            .set_subject(&data.scope)
            .set_author("Beacon")
            .set_comment(format!(
                "Report {} of tenant {}, period {}, time zone {}",
                data.report_id, data.tenant, data.period.key, data.timezone
            )),
    );

    summary(workbook.add_worksheet(), data, &styles)?;
    if let Some(series) = &data.series {
        let ws = workbook.add_worksheet();
        ws.set_name("Series")?;
        let mut columns = vec![Column("Point", 18.0, false)];
        columns.extend(series.metrics.iter().map(|m| Column(m.label(), 15.0, true)));
        header(ws, &columns, &styles)?;
        for (r, point) in series.points.iter().enumerate() {
            let row = r as u32 + 1;
            ws.write_string(row, 0, &point.label)?;
            for (c, (metric, v)) in series.metrics.iter().zip(&point.values).enumerate() {
                number(ws, row, c as u16 + 1, *v, styles.value(metric.kind()))?;
            }
        }
        filter(ws, series.points.len(), columns.len())?;
        if chart::drawable(data).is_some() {
            let chart = line_chart(data, series)?;
            ws.insert_chart(1, columns.len() as u16 + 1, &chart)?;
        }
    }
    if let Some(links) = &data.top_links {
        let ws = workbook.add_worksheet();
        ws.set_name("Top links")?;
        let columns = [
            Column("Rank", 7.0, true),
            Column("Campaign", 24.0, false),
            Column("URL", 90.0, false),
            Column("Human clicks", 14.0, true),
            Column("Bot clicks", 12.0, true),
        ];
        header(ws, &columns, &styles)?;
        for (r, link) in links.iter().enumerate() {
            let row = r as u32 + 1;
            ws.write_number(row, 0, row)?;
            ws.write_string(row, 1, cell_text(&link.campaign))?;
            // Text, not hyperlinks: Excel caps a sheet at 65,530 links and a link at
            // 2,079 characters, and the URL stays selectable either way.
            ws.write_string(row, 2, cell_text(&link.url))?;
            ws.write_number_with_format(row, 3, link.clicks_human as f64, &styles.count)?;
            ws.write_number_with_format(row, 4, link.clicks_bot as f64, &styles.count)?;
        }
        filter(ws, links.len(), columns.len())?;
    }
    if let Some(channels) = &data.channels {
        let ws = workbook.add_worksheet();
        ws.set_name("Channels")?;
        let columns = [
            Column("Channel", 14.0, false),
            Column("Provider", 16.0, false),
            Column("Sent", 13.0, true),
            Column("Delivered", 13.0, true),
            Column("Bounced", 12.0, true),
            Column("Complaints", 12.0, true),
            Column("Human opens", 14.0, true),
            Column("Human clicks", 14.0, true),
            Column("Cost", 13.0, true),
        ];
        header(ws, &columns, &styles)?;
        for (r, c) in channels.iter().enumerate() {
            let row = r as u32 + 1;
            ws.write_string(row, 0, cell_text(&c.channel))?;
            ws.write_string(row, 1, cell_text(&c.provider))?;
            for (i, v) in c.counts().into_iter().enumerate() {
                ws.write_number_with_format(row, i as u16 + 2, v as f64, &styles.count)?;
            }
            ws.write_number_with_format(row, 8, c.cost, &styles.money)?;
        }
        filter(ws, channels.len(), columns.len())?;
    }
    if let Some(d) = &data.deliverability {
        let ws = workbook.add_worksheet();
        ws.set_name("Deliverability")?;
        let columns = [
            Column("Measure", 18.0, false),
            Column("Value", 13.0, true),
            Column("SES review level", 17.0, true),
            Column("Status", 12.0, false),
        ];
        header(ws, &columns, &styles)?;
        let counts = [
            ("Sent", d.sent),
            ("Delivered", d.delivered),
            ("Hard bounces", d.bounced_hard),
            ("Soft bounces", d.bounced_soft),
            ("Complaints", d.complained),
        ];
        let mut row = 1;
        for (label, v) in counts {
            ws.write_string(row, 0, label)?;
            ws.write_number_with_format(row, 1, v as f64, &styles.count)?;
            row += 1;
        }
        for (label, rate, level) in [
            ("Bounce rate", d.bounce_rate, d.bounce_review_level),
            ("Complaint rate", d.complaint_rate, d.complaint_review_level),
        ] {
            ws.write_string(row, 0, label)?;
            number(ws, row, 1, rate, &styles.rate)?;
            ws.write_number_with_format(row, 2, level, &styles.rate)?;
            match rate {
                Some(r) if r >= level => {
                    ws.write_string_with_format(row, 3, "At risk", &styles.warning)?
                }
                Some(_) => ws.write_string(row, 3, "OK")?,
                None => ws.write_string(row, 3, "No sends")?,
            };
            row += 1;
        }
        filter(ws, row as usize - 1, columns.len())?;
        ws.write_string_with_format(
            row + 1,
            0,
            super::fmt::deliverability_verdict(d),
            &styles.bold,
        )?;
    }

    Ok(workbook.save_to_buffer()?)
}

fn summary(ws: &mut Worksheet, data: &ReportData, styles: &Styles) -> Result<(), XlsxError> {
    ws.set_name("Summary")?;
    let columns = [
        Column("Metric", 20.0, false),
        Column("Key", 18.0, false),
        Column("Value", 15.0, true),
        Column("Previous", 15.0, true),
        Column("Change", 14.0, true),
        Column("Change %", 11.0, true),
    ];
    header(ws, &columns, styles)?;
    for (r, row) in data.summary.iter().enumerate() {
        let line = r as u32 + 1;
        let kind = row.metric.kind();
        ws.write_string(line, 0, row.metric.label())?;
        ws.write_string(line, 1, row.metric.key())?;
        number(ws, line, 2, row.value, styles.value(kind))?;
        number(ws, line, 3, row.previous, styles.value(kind))?;
        number(ws, line, 4, row.delta(), styles.delta(kind))?;
        number(ws, line, 5, row.delta_ratio(), &styles.ratio)?;
    }
    filter(ws, data.summary.len(), columns.len())?;

    // What the numbers are of, below the table (outside the filter range).
    let first = data.summary.len() as u32 + 2;
    let about = [
        ("Report", data.name.clone()),
        ("Scope", data.scope.clone()),
        (
            "Period",
            format!("{} ({})", data.period.label, data.period.key),
        ),
        (
            "Previous period",
            format!("{} ({})", data.previous.label, data.previous.key),
        ),
        ("Time zone", data.timezone.clone()),
        (
            "Generated",
            super::fmt::local_time(data.generated_at, &data.timezone),
        ),
    ];
    for (line, (label, value)) in (first..).zip(about) {
        ws.write_string_with_format(line, 0, label, &styles.bold)?;
        ws.write_string(line, 1, cell_text(&value))?;
    }
    Ok(())
}

fn header(ws: &mut Worksheet, columns: &[Column], styles: &Styles) -> Result<(), XlsxError> {
    for (c, Column(title, width, numeric)) in columns.iter().enumerate() {
        let format = if *numeric {
            &styles.header_number
        } else {
            &styles.header
        };
        ws.write_string_with_format(0, c as u16, *title, format)?;
        ws.set_column_width(c as u16, *width)?;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

fn filter(ws: &mut Worksheet, rows: usize, columns: usize) -> Result<(), XlsxError> {
    ws.autofilter(0, 0, rows as u32, columns as u16 - 1)?;
    Ok(())
}

/// A missing value is an empty cell, not a zero.
fn number(
    ws: &mut Worksheet,
    row: u32,
    col: u16,
    v: Option<f64>,
    format: &Format,
) -> Result<(), XlsxError> {
    if let Some(v) = v.filter(|v| v.is_finite()) {
        ws.write_number_with_format(row, col, v, format)?;
    }
    Ok(())
}

fn cell_text(s: &str) -> &str {
    match s.char_indices().nth(MAX_CELL_CHARS) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

fn line_chart(data: &ReportData, series: &ReportSeries) -> Result<Chart, XlsxError> {
    let lines = chart::plotted(series);
    let last_row = series.points.len() as u32;
    let mut ch = Chart::new(ChartType::Line);
    for &i in &lines {
        let col = i as u16 + 1;
        ch.add_series()
            .set_name(("Series", 0, col))
            .set_categories(("Series", 1, 0, last_row, 0))
            .set_values(("Series", 1, col, last_row, col))
            .set_format(ChartFormat::new().set_line(ChartLine::new().set_width(2.0)));
    }
    let grain = if series.grain == "hour" {
        "Hourly"
    } else {
        "Daily"
    };
    ch.title()
        .set_name(&format!("{grain} activity · {}", data.period.label));
    ch.x_axis().set_name(if series.grain == "hour" {
        "Hour"
    } else {
        "Day"
    });
    let kind = lines
        .first()
        .map_or(MetricKind::Count, |&i| series.metrics[i].kind());
    ch.y_axis().set_num_format(match kind {
        MetricKind::Count => "#,##0",
        MetricKind::Money => "#,##0.00",
        MetricKind::Rate => "0.0%",
    });
    ch.legend().set_position(ChartLegendPosition::Bottom);
    ch.set_width(760).set_height(360);
    Ok(ch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::report_data;
    use std::io::Read;

    fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).unwrap();
                let mut text = String::new();
                file.read_to_string(&mut text).unwrap();
                (file.name().unwrap().to_string(), text)
            })
            .collect()
    }

    /// The `<c>` element of a cell in a sheet's XML.
    fn cell<'a>(sheet: &'a str, reference: &str) -> &'a str {
        let start = sheet
            .find(&format!("<c r=\"{reference}\""))
            .unwrap_or_else(|| panic!("no cell {reference}"));
        let end = start + sheet[start..].find("</c>").unwrap();
        &sheet[start..end]
    }

    #[test]
    fn workbook_has_a_sheet_per_section_typed_numbers_and_a_chart() {
        let data = report_data(31, 1000);
        let bytes = render(&data).unwrap();
        assert!(bytes.starts_with(b"PK\x03\x04"));
        let files = unzip(&bytes);
        for name in [
            "xl/workbook.xml",
            "xl/worksheets/sheet1.xml",
            "xl/worksheets/sheet5.xml",
            "xl/charts/chart1.xml",
            "xl/drawings/drawing1.xml",
        ] {
            assert!(files.contains_key(name), "{name} missing");
        }
        let workbook = &files["xl/workbook.xml"];
        let names: Vec<&str> = workbook
            .split("<sheet name=\"")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        assert_eq!(
            names,
            [
                "Summary",
                "Series",
                "Top links",
                "Channels",
                "Deliverability"
            ]
        );

        // Summary: Sent's value is a number cell holding the exact value.
        let summary = &files["xl/worksheets/sheet1.xml"];
        let sent = data.summary[0].value.unwrap();
        let c2 = cell(summary, "C2");
        assert!(!c2.contains("t=\"s\""), "a number, not a string: {c2}");
        assert!(c2.contains(&format!("<v>{sent}</v>")), "{c2}");
        assert!(summary.contains("ySplit=\"1\""), "frozen header row");
        // A header row and one row per summary metric.
        let last = data.summary.len() + 1;
        assert!(summary.contains(&format!("<autoFilter ref=\"A1:F{last}\"")));
        assert!(summary.contains("<col "), "column widths");

        // The chart is on the Series sheet and reads its columns.
        let chart = &files["xl/charts/chart1.xml"];
        assert!(chart.contains("<c:lineChart>"));
        assert!(chart.contains("Series!$B$2:$B$32"));
        assert!(files["xl/worksheets/sheet2.xml"].contains("<drawing "));

        // 1,000 links, clicks as numbers.
        let links = &files["xl/worksheets/sheet3.xml"];
        assert!(links.contains("<autoFilter ref=\"A1:E1001\""));
        let clicks = data.top_links.as_ref().unwrap()[999].clicks_human;
        assert!(cell(links, "D1001").contains(&format!("<v>{clicks}</v>")));

        let styles = &files["xl/styles.xml"];
        for format in ["#,##0", "0.00%", "#,##0.00"] {
            assert!(
                styles.contains(&format!("formatCode=\"{format}\"")),
                "{format}"
            );
        }
        assert!(styles.contains("<b/>"), "bold header");
        assert!(styles.contains("patternType=\"solid\""), "header fill");
    }

    #[test]
    fn only_present_sections_get_sheets() {
        let mut data = report_data(3, 2);
        data.series = None;
        data.channels = None;
        let files = unzip(&render(&data).unwrap());
        assert!(files.contains_key("xl/worksheets/sheet3.xml"));
        assert!(!files.contains_key("xl/worksheets/sheet4.xml"));
        assert!(!files.keys().any(|k| k.starts_with("xl/charts/")));
    }
}
