//! The report as an A4 PDF, written with `pdf-writer`: title block, summary with
//! changes, the chart, top links, channels and deliverability. Tables flow over as many
//! pages as they need, repeating their header; every page ends with "Page N of M".
//!
//! Text is set in the standard Helvetica fonts, which every PDF reader provides, so
//! nothing is embedded and no system library or font file is needed; [`super::afm`]
//! measures it. Those fonts cover WinAnsi (Western European) only: other characters
//! print as `?`, while the HTML, CSV, JSON and XLSX files keep them.

use super::afm;
use super::fmt::{self, Tone};
use super::{chart, RenderError};
use crate::model::ReportData;
use chrono::{Datelike, Timelike};
use miniz_oxide::deflate::compress_to_vec_zlib;
use pdf_writer::types::{ActionType, AnnotationType};
use pdf_writer::{Content, Date, Filter, Finish, Name, Pdf, Rect, Ref, Settings, Str, TextStr};

const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN: f32 = 42.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;
const TOP: f32 = PAGE_HEIGHT - 48.0;
/// Lowest a table row may reach; the footer sits below.
const BOTTOM: f32 = 58.0;
const FOOTER_Y: f32 = 32.0;

const REGULAR: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");
const CHART: Name = Name(b"Im1");

type Color = (f32, f32, f32);
const INK: Color = (0.07, 0.09, 0.15);
const MUTED: Color = (0.42, 0.45, 0.50);
const WHITE: Color = (1.0, 1.0, 1.0);
const HEADER_FILL: Color = (0.12, 0.23, 0.37);
const STRIPE: Color = (0.95, 0.96, 0.97);
const GOOD: Color = (0.09, 0.50, 0.22);
const BAD: Color = (0.75, 0.11, 0.16);

/// Deflate level for streams: 6 is zlib's default balance of size and time.
const DEFLATE_LEVEL: u8 = 6;

pub(super) fn render(data: &ReportData) -> Result<Vec<u8>, RenderError> {
    document(data, true)
}

/// The text every page ends with.
pub(super) fn page_footer(page: usize, pages: usize) -> String {
    format!("Page {page} of {pages}")
}

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

struct Column {
    title: &'static str,
    width: f32,
    align: Align,
}

const fn col(title: &'static str, width: f32, align: Align) -> Column {
    Column {
        title,
        width,
        align,
    }
}

struct Cell {
    text: String,
    color: Color,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, color: INK }
    }
}

struct Row {
    cells: Vec<Cell>,
    /// A URL the given column's cell links to (long URLs are cut to fit the column).
    link: Option<(usize, String)>,
}

struct Page {
    content: Content,
    links: Vec<(Rect, String)>,
    has_chart: bool,
}

/// Lays the report out top to bottom, starting a page whenever the next block does
/// not fit.
struct Layout {
    pages: Vec<Page>,
    y: f32,
}

impl Layout {
    fn new() -> Layout {
        let mut layout = Layout {
            pages: Vec::new(),
            y: TOP,
        };
        layout.new_page();
        layout
    }

    fn new_page(&mut self) {
        self.pages.push(Page {
            content: Content::new(),
            links: Vec::new(),
            has_chart: false,
        });
        self.y = TOP;
    }

    /// Starts a new page unless `height` fits below the cursor; true when it did.
    fn room(&mut self, height: f32) -> bool {
        if self.y - height < BOTTOM && self.y < TOP {
            self.new_page();
            true
        } else {
            false
        }
    }

    /// Moves a block that would fit on one page but not on this one to the next page,
    /// so short tables are not split.
    fn keep_together(&mut self, height: f32) {
        if height <= TOP - BOTTOM && self.y - height < BOTTOM {
            self.new_page();
        }
    }

    fn page(&mut self) -> &mut Page {
        self.pages.last_mut().expect("a page is always open")
    }

    fn text(&mut self, x: f32, baseline: f32, text: &[u8], bold: bool, size: f32, color: Color) {
        let content = &mut self.page().content;
        content
            .begin_text()
            .set_font(if bold { BOLD } else { REGULAR }, size)
            .set_fill_rgb(color.0, color.1, color.2)
            .next_line(x, baseline)
            .show(Str(text))
            .end_text();
    }

    fn fill(&mut self, rect: Rect, color: Color) {
        self.page()
            .content
            .set_fill_rgb(color.0, color.1, color.2)
            .rect(rect.x1, rect.y1, rect.x2 - rect.x1, rect.y2 - rect.y1)
            .fill_nonzero();
    }

    /// Wrapped lines of text at the cursor.
    fn paragraph(&mut self, text: &str, bold: bool, size: f32, color: Color, width: f32) {
        let leading = size * 1.3;
        for line in wrap(text, bold, size, width) {
            self.room(leading);
            self.text(MARGIN, self.y - size, &line, bold, size, color);
            self.y -= leading;
        }
    }

    fn heading(&mut self, title: &str) {
        // Keep a heading with the first rows of what it heads.
        self.room(24.0 + 3.0 * ROW_HEIGHT);
        self.y -= 10.0;
        self.text(MARGIN, self.y - 13.0, &afm::encode(title), true, 13.0, INK);
        self.y -= 22.0;
    }

    fn table(&mut self, title: &str, columns: &[Column], rows: &[Row], size: f32) {
        self.keep_together(table_height(rows.len()));
        self.heading(title);
        self.table_header(columns, size);
        for (i, row) in rows.iter().enumerate() {
            if self.room(ROW_HEIGHT) {
                self.text(
                    MARGIN,
                    self.y - 10.0,
                    &afm::encode(&format!("{title} (continued)")),
                    true,
                    10.0,
                    MUTED,
                );
                self.y -= 18.0;
                self.table_header(columns, size);
            }
            let top = self.y;
            if i % 2 == 1 {
                self.fill(
                    Rect::new(MARGIN, top - ROW_HEIGHT, MARGIN + CONTENT_WIDTH, top),
                    STRIPE,
                );
            }
            let mut x = MARGIN;
            for (c, (column, cell)) in columns.iter().zip(&row.cells).enumerate() {
                let text = fit(&cell.text, false, size, column.width - 2.0 * CELL_PADDING);
                let left = match column.align {
                    Align::Left => x + CELL_PADDING,
                    Align::Right => {
                        x + column.width - CELL_PADDING - afm::width(&text, false, size)
                    }
                };
                self.text(left, top - ROW_HEIGHT + 4.5, &text, false, size, cell.color);
                if let Some((_, url)) = row.link.as_ref().filter(|(lc, _)| *lc == c) {
                    let area = Rect::new(x, top - ROW_HEIGHT, x + column.width, top);
                    self.page().links.push((area, url.clone()));
                }
                x += column.width;
            }
            self.y -= ROW_HEIGHT;
        }
        self.y -= 6.0;
    }

    fn table_header(&mut self, columns: &[Column], size: f32) {
        let top = self.y;
        self.fill(
            Rect::new(MARGIN, top - ROW_HEIGHT, MARGIN + CONTENT_WIDTH, top),
            HEADER_FILL,
        );
        let mut x = MARGIN;
        for column in columns {
            let text = fit(column.title, true, size, column.width - 2.0 * CELL_PADDING);
            let left = match column.align {
                Align::Left => x + CELL_PADDING,
                Align::Right => x + column.width - CELL_PADDING - afm::width(&text, true, size),
            };
            self.text(left, top - ROW_HEIGHT + 4.5, &text, true, size, WHITE);
            x += column.width;
        }
        self.y -= ROW_HEIGHT;
    }
}

const ROW_HEIGHT: f32 = 15.0;

/// Height of a table with its heading, header row and `rows`.
fn table_height(rows: usize) -> f32 {
    32.0 + ROW_HEIGHT * (rows + 1) as f32
}
const CELL_PADDING: f32 = 4.0;

fn tone_color(tone: Tone) -> Color {
    match tone {
        Tone::Good => GOOD,
        Tone::Bad => BAD,
        Tone::Neutral => INK,
    }
}

/// Builds the document; `compress` is off only in tests, to read the page streams.
fn document(data: &ReportData, compress: bool) -> Result<Vec<u8>, RenderError> {
    let chart = chart::rgb(data)?;
    let mut layout = Layout::new();

    // Title block.
    layout.paragraph(&data.name, true, 18.0, INK, CONTENT_WIDTH);
    layout.y -= 2.0;
    let lines = [
        format!("{} · {}", data.scope, data.tenant),
        format!(
            "{}, compared with {} · {}",
            data.period.label, data.previous.label, data.timezone
        ),
    ];
    for line in lines {
        layout.paragraph(&line, false, 10.0, MUTED, CONTENT_WIDTH);
    }
    layout.y -= 4.0;

    let summary: Vec<Row> = data
        .summary
        .iter()
        .map(|row| {
            let [value, previous, delta, ratio] = fmt::summary_cells(row);
            let color = tone_color(fmt::tone(row.metric, row.delta()));
            Row {
                cells: vec![
                    row.metric.label().to_string().into(),
                    value.into(),
                    previous.into(),
                    Cell { text: delta, color },
                    Cell { text: ratio, color },
                ],
                link: None,
            }
        })
        .collect();
    layout.table(
        "Summary",
        &[
            col("Metric", CONTENT_WIDTH - 4.0 * 85.0, Align::Left),
            col("This period", 85.0, Align::Right),
            col("Previous", 85.0, Align::Right),
            col("Change", 85.0, Align::Right),
            col("Change %", 85.0, Align::Right),
        ],
        &summary,
        8.5,
    );

    if let Some(image) = &chart {
        let height = CONTENT_WIDTH * image.height as f32 / image.width as f32;
        layout.room(height + 12.0);
        layout.y -= 8.0;
        let y = layout.y - height;
        let page = layout.page();
        page.has_chart = true;
        page.content
            .save_state()
            .transform([CONTENT_WIDTH, 0.0, 0.0, height, MARGIN, y])
            .x_object(CHART)
            .restore_state();
        layout.y = y - 4.0;
    }

    if let Some(links) = &data.top_links {
        let rows: Vec<Row> = links
            .iter()
            .enumerate()
            .map(|(i, link)| Row {
                cells: vec![
                    (i + 1).to_string().into(),
                    link.campaign.clone().into(),
                    link.url.clone().into(),
                    fmt::count(link.clicks_human as f64).into(),
                    fmt::count(link.clicks_bot as f64).into(),
                ],
                link: super::is_web_url(&link.url).then(|| (2, link.url.clone())),
            })
            .collect();
        let title = format!("Top links ({})", fmt::count(links.len() as f64));
        layout.table(
            &title,
            &[
                col("#", 28.0, Align::Right),
                col("Campaign", 100.0, Align::Left),
                col("URL", CONTENT_WIDTH - 248.0, Align::Left),
                col("Human clicks", 64.0, Align::Right),
                col("Bot clicks", 56.0, Align::Right),
            ],
            &rows,
            8.5,
        );
    }

    if let Some(channels) = &data.channels {
        let count = |v: u64| Cell::from(fmt::count(v as f64));
        let rows: Vec<Row> = channels
            .iter()
            .map(|c| Row {
                cells: [c.channel.clone().into(), c.provider.clone().into()]
                    .into_iter()
                    .chain(c.counts().map(count))
                    .chain([fmt::money(c.cost).into()])
                    .collect(),
                link: None,
            })
            .collect();
        layout.table(
            "Channels",
            &[
                col("Channel", 56.0, Align::Left),
                col("Provider", 62.0, Align::Left),
                col("Sent", 56.0, Align::Right),
                col("Delivered", 56.0, Align::Right),
                col("Bounced", 50.0, Align::Right),
                col("Complaints", 56.0, Align::Right),
                col("Human opens", 58.0, Align::Right),
                col("Human clicks", 58.0, Align::Right),
                col("Cost", CONTENT_WIDTH - 452.0, Align::Right),
            ],
            &rows,
            7.5,
        );
    }

    if let Some(d) = &data.deliverability {
        let status = |rate: Option<f64>, level: f64| match rate {
            Some(r) if r >= level => Cell {
                text: "At risk".into(),
                color: BAD,
            },
            Some(_) => Cell {
                text: "OK".into(),
                color: GOOD,
            },
            None => Cell::from(fmt::NONE.to_string()),
        };
        let count = |label: &str, v: u64| Row {
            cells: vec![
                label.to_string().into(),
                fmt::count(v as f64).into(),
                String::new().into(),
                String::new().into(),
            ],
            link: None,
        };
        let rate = |label: &str, v: Option<f64>, level: f64| Row {
            cells: vec![
                label.to_string().into(),
                v.map_or(fmt::NONE.to_string(), fmt::rate).into(),
                fmt::rate(level).into(),
                status(v, level),
            ],
            link: None,
        };
        let rows = [
            count("Sent", d.sent),
            count("Delivered", d.delivered),
            count("Hard bounces", d.bounced_hard),
            count("Soft bounces", d.bounced_soft),
            count("Complaints", d.complained),
            rate("Bounce rate", d.bounce_rate, d.bounce_review_level),
            rate("Complaint rate", d.complaint_rate, d.complaint_review_level),
        ];
        // The verdict below stays with the table.
        layout.keep_together(table_height(rows.len()) + 30.0);
        layout.table(
            "Deliverability",
            &[
                col("Measure", CONTENT_WIDTH - 3.0 * 110.0, Align::Left),
                col("Value", 110.0, Align::Right),
                col("SES review level", 110.0, Align::Right),
                col("Status", 110.0, Align::Right),
            ],
            &rows,
            8.5,
        );
        let color = if d.at_risk() { BAD } else { GOOD };
        layout.paragraph(
            &fmt::deliverability_verdict(d),
            d.at_risk(),
            9.5,
            color,
            CONTENT_WIDTH,
        );
    }

    layout.y -= 6.0;
    layout.paragraph(
        &format!(
            "Generated {} by Beacon.",
            fmt::local_time(data.generated_at, &data.timezone)
        ),
        false,
        8.0,
        MUTED,
        CONTENT_WIDTH,
    );

    Ok(write(data, layout, chart.as_ref(), compress))
}

/// Serializes the laid-out pages, with their footers, into the file.
fn write(data: &ReportData, layout: Layout, chart: Option<&chart::Rgb>, compress: bool) -> Vec<u8> {
    let mut pdf = Pdf::with_settings(Settings { pretty: false });
    let mut next = 0;
    let mut alloc = || {
        next += 1;
        Ref::new(next)
    };
    let catalog = alloc();
    let tree = alloc();
    let info = alloc();
    let regular = alloc();
    let bold = alloc();
    let image = chart.map(|_| alloc());

    let footer_left = afm::encode(&format!("{} · {}", data.name, data.period.label));
    let total = layout.pages.len();
    let mut page_ids = Vec::with_capacity(total);
    for (i, mut page) in layout.pages.into_iter().enumerate() {
        let page_id = alloc();
        let content_id = alloc();
        page_ids.push(page_id);

        let number = afm::encode(&page_footer(i + 1, total));
        let left = fit_bytes(footer_left.clone(), false, 8.0, CONTENT_WIDTH - 80.0);
        for (x, text) in [
            (MARGIN, left),
            (
                PAGE_WIDTH - MARGIN - afm::width(&number, false, 8.0),
                number,
            ),
        ] {
            page.content
                .begin_text()
                .set_font(REGULAR, 8.0)
                .set_fill_rgb(MUTED.0, MUTED.1, MUTED.2)
                .next_line(x, FOOTER_Y)
                .show(Str(&text))
                .end_text();
        }

        let annotation_ids: Vec<Ref> = page.links.iter().map(|_| alloc()).collect();
        let mut writer = pdf.page(page_id);
        writer
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .parent(tree)
            .contents(content_id);
        if !annotation_ids.is_empty() {
            writer.annotations(annotation_ids.iter().copied());
        }
        let mut resources = writer.resources();
        resources.fonts().pair(REGULAR, regular).pair(BOLD, bold);
        if let (true, Some(image)) = (page.has_chart, image) {
            resources.x_objects().pair(CHART, image);
        }
        resources.finish();
        writer.finish();

        for (id, (rect, url)) in annotation_ids.into_iter().zip(&page.links) {
            let mut annotation = pdf.annotation(id);
            annotation.subtype(AnnotationType::Link).rect(*rect);
            annotation.border(0.0, 0.0, 0.0, None);
            annotation
                .action()
                .action_type(ActionType::Uri)
                .uri(Str(url.as_bytes()));
        }

        let bytes = page.content.finish();
        if compress {
            let packed = compress_to_vec_zlib(&bytes, DEFLATE_LEVEL);
            pdf.stream(content_id, &packed).filter(Filter::FlateDecode);
        } else {
            pdf.stream(content_id, &bytes);
        }
    }

    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(total as i32);
    // WinAnsi, so that accented letters, en dashes and the euro sign print.
    for (id, name) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
        pdf.type1_font(id)
            .base_font(Name(name.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    if let (Some(id), Some(rgb)) = (image, chart) {
        let packed = compress_to_vec_zlib(&rgb.pixels, DEFLATE_LEVEL);
        let mut xobject = pdf.image_xobject(id, &packed);
        xobject.filter(Filter::FlateDecode);
        xobject
            .width(rgb.width as i32)
            .height(rgb.height as i32)
            .bits_per_component(8);
        xobject.color_space().device_rgb();
    }
    let at = data.generated_at;
    pdf.document_info(info)
        .title(TextStr(&format!("{} – {}", data.name, data.period.label)))
        .subject(TextStr(&data.scope))
        .producer(TextStr("Beacon"))
        .creation_date(
            Date::new(at.year().clamp(0, 9999) as u16)
                .month(at.month() as u8)
                .day(at.day() as u8)
                .hour(at.hour() as u8)
                .minute(at.minute() as u8)
                .second(at.second() as u8)
                .utc_offset_hour(0),
        );
    pdf.finish()
}

/// `text` encoded and cut with an ellipsis to `max` points.
fn fit(text: &str, bold: bool, size: f32, max: f32) -> Vec<u8> {
    fit_bytes(afm::encode(text), bold, size, max)
}

fn fit_bytes(mut bytes: Vec<u8>, bold: bool, size: f32, max: f32) -> Vec<u8> {
    if afm::width(&bytes, bold, size) <= max {
        return bytes;
    }
    let ellipsis = afm::width(&[afm::byte('…')], bold, size);
    let mut width = afm::width(&bytes, bold, size);
    while width + ellipsis > max {
        let Some(last) = bytes.pop() else { break };
        width -= afm::width(&[last], bold, size);
    }
    bytes.push(afm::byte('…'));
    bytes
}

/// Greedy word wrap to `max` points; a word longer than a line is cut to fit.
fn wrap(text: &str, bold: bool, size: f32, max: f32) -> Vec<Vec<u8>> {
    let space = afm::width(b" ", bold, size);
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut width = 0.0;
    for word in text.split_whitespace() {
        let word = fit(word, bold, size, max);
        let w = afm::width(&word, bold, size);
        if !line.is_empty() && width + space + w > max {
            lines.push(std::mem::take(&mut line));
            width = 0.0;
        }
        if !line.is_empty() {
            line.push(b' ');
            width += space;
        }
        line.extend_from_slice(&word);
        width += w;
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::report_data;

    /// Page objects, not the page tree (`/Type/Pages`).
    fn pages(pdf: &[u8]) -> usize {
        let needle = b"/Type/Page";
        pdf.windows(needle.len() + 1)
            .filter(|w| w.starts_with(needle) && w[needle.len()] != b's')
            .count()
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[test]
    fn a_thousand_links_flow_over_numbered_pages() {
        let data = report_data(31, 1000);
        let pdf = document(&data, false).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));
        let n = pages(&pdf);
        // About 50 rows a page: 1,000 links need at least 18 pages.
        assert!(n >= 18, "{n} pages");
        assert!(contains(&pdf, &format!("({})", page_footer(1, n))));
        assert!(contains(&pdf, &format!("({})", page_footer(n, n))));
        assert!(contains(&pdf, "(Top links (1,000) (continued)) Tj"));
        // The last link is there, not cut off (the rank column).
        assert!(contains(&pdf, "(1000) Tj"));
        // The chart image and the links are in.
        assert!(contains(&pdf, "/Subtype/Image"));
        assert!(contains(&pdf, "/Width 800"));
        assert!(contains(&pdf, "/URI(https://shop.example.com/"));
        assert!(contains(&pdf, "/BaseFont/Helvetica-Bold"));
        assert!(contains(&pdf, "(Monthly newsletter performance) Tj"));
        // Summary values as the other formats write them.
        let sent = fmt::value(data.summary[0].metric, data.summary[0].value);
        assert!(contains(&pdf, &format!("({sent}) Tj")));
    }

    #[test]
    fn compressed_output_is_a_smaller_complete_pdf() {
        let data = report_data(31, 1000);
        let plain = document(&data, false).unwrap();
        let pdf = render(&data).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));
        assert_eq!(pages(&pdf), pages(&plain));
        assert!(contains(&pdf, "/Filter/FlateDecode"));
        assert!(pdf.len() < plain.len());
    }

    #[test]
    fn a_short_report_is_one_page_and_text_is_measured() {
        let mut data = report_data(7, 5);
        data.series = None;
        data.top_links = None;
        let pdf = document(&data, false).unwrap();
        assert_eq!(pages(&pdf), 1);
        assert!(contains(&pdf, "(Page 1 of 1) Tj"));
        assert!(!contains(&pdf, "/Subtype/Image"));

        let cut = fit("https://example.com/a/very/long/path", false, 10.0, 60.0);
        assert!(afm::width(&cut, false, 10.0) <= 60.0);
        assert_eq!(cut.last(), Some(&afm::byte('…')));
        let lines = wrap("one two three four five six seven", false, 10.0, 50.0);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| afm::width(l, false, 10.0) <= 50.0));
    }
}
