//! Report renderers: every file a scheduled report produces, all from one
//! [`ReportData`], so every format shows the same numbers.
//!
//! - [`csv`], [`json`], [`xlsx`]: raw numbers for people who compute further.
//! - [`pdf`], [`html`] (the email body), [`text`] (its plain-text alternative): numbers
//!   written for reading, all through [`fmt`].
//! - [`chart_png`]: the series as a line chart, embedded in the email and the PDF.

mod afm;
mod chart;
mod csv;
pub mod fmt;
mod html;
mod json;
mod pdf;
mod text;
mod xlsx;

use crate::model::{Format, ReportData};

pub use chart::{HEIGHT as CHART_HEIGHT, WIDTH as CHART_WIDTH};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("writing the CSV report failed: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("writing the JSON report failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing the XLSX report failed: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("drawing the chart failed: {0}")]
    Chart(String),
    #[error("encoding the chart as PNG failed: {0}")]
    Png(#[from] png::EncodingError),
    #[error("the bundled chart font could not be loaded")]
    Font,
    #[error("writing the report failed: {0}")]
    Io(#[from] std::io::Error),
}

/// CSV: every section with its own header row, first column the section name. See
/// the `csv` module for the layout.
pub fn csv(data: &ReportData) -> Result<Vec<u8>, RenderError> {
    csv::render(data)
}

/// JSON: [`ReportData`] as serialized, each summary row with its `delta` and
/// `delta_ratio`, the deliverability with `at_risk`; pretty-printed.
pub fn json(data: &ReportData) -> Result<Vec<u8>, RenderError> {
    json::render(data)
}

/// XLSX: one sheet per section present, typed numbers, a native chart of the series.
pub fn xlsx(data: &ReportData) -> Result<Vec<u8>, RenderError> {
    xlsx::render(data)
}

/// PDF (A4): the summary, the chart and every table, paginated, "Page N of M" on each page.
pub fn pdf(data: &ReportData) -> Result<Vec<u8>, RenderError> {
    pdf::render(data)
}

/// The series as a [`CHART_WIDTH`] x [`CHART_HEIGHT`] PNG; `None` when the report has
/// no series or the series has no points.
pub fn chart_png(data: &ReportData) -> Result<Option<Vec<u8>>, RenderError> {
    chart::png(data)
}

/// The email body: a complete HTML document with inline styles only. `chart_src` is
/// where the chart image is (`cid:chart@beacon`, a `data:` URI); no image when `None`.
pub fn html(data: &ReportData, chart_src: Option<&str>) -> String {
    html::render(data, chart_src)
}

/// The plain-text alternative of the email: the same numbers in aligned columns.
pub fn text(data: &ReportData) -> String {
    text::render(data)
}

/// One file of a report in `format` (the caller renders each format a definition asks
/// for). The HTML file has no chart: a stored file cannot reference a mail part.
pub fn render(data: &ReportData, format: Format) -> Result<Vec<u8>, RenderError> {
    match format {
        Format::Html => Ok(html(data, None).into_bytes()),
        Format::Csv => csv(data),
        Format::Json => json(data),
        Format::Xlsx => xlsx(data),
        Format::Pdf => pdf(data),
    }
}

/// Only web links are made clickable (HTML, PDF); any other scheme is shown as text.
fn is_web_url(url: &str) -> bool {
    let scheme = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    scheme.starts_with("https://") || scheme.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::report_data;

    #[test]
    fn render_dispatches_every_format() {
        let data = report_data(7, 30);
        for format in Format::ALL {
            let bytes = render(&data, format).unwrap();
            let head = &bytes[..bytes.len().min(16)];
            match format {
                Format::Html => assert!(head.starts_with(b"<!doctype html>")),
                Format::Csv => assert!(head.starts_with("\u{feff}section,".as_bytes())),
                Format::Json => assert!(head.starts_with(b"{")),
                Format::Xlsx => assert!(head.starts_with(b"PK\x03\x04")),
                Format::Pdf => assert!(head.starts_with(b"%PDF-")),
            }
        }
    }
}
