//! The series as a line chart, drawn with plotters into an RGB buffer. Text uses the
//! bundled DejaVu Sans (registered once as plotters' `sans-serif`): Lambda has no
//! system fonts. The buffer becomes a PNG for the email and a Flate image in the PDF.

use super::{fmt, RenderError};
use crate::model::{MetricKind, ReportData, ReportSeries};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::sync::OnceLock;

pub const WIDTH: u32 = 800;
pub const HEIGHT: u32 = 360;

/// Room on the right for the legend.
const LEGEND_WIDTH: u32 = 150;

/// More lines than this stop being readable in 800 px.
const MAX_LINES: usize = 4;

const FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Distinct for the common kinds of color blindness (Okabe–Ito).
const PALETTE: [RGBColor; MAX_LINES] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

/// The chart's pixels, 8-bit RGB, row by row.
pub(super) struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Which of the series' metrics are drawn (indexes into `series.metrics`): up to four
/// counts, since counts share one axis; a series without counts draws its first kind
/// instead. The XLSX chart draws the same ones.
pub(super) fn plotted(series: &ReportSeries) -> Vec<usize> {
    let kind = if series.metrics.iter().any(|m| m.kind() == MetricKind::Count) {
        MetricKind::Count
    } else if let Some(first) = series.metrics.first() {
        first.kind()
    } else {
        return Vec::new();
    };
    (0..series.metrics.len())
        .filter(|&i| series.metrics[i].kind() == kind)
        .take(MAX_LINES)
        .collect()
}

/// The series to draw, when there is something to draw.
pub(super) fn drawable(data: &ReportData) -> Option<&ReportSeries> {
    data.series
        .as_ref()
        .filter(|s| !s.points.is_empty() && !plotted(s).is_empty())
}

pub(super) fn png(data: &ReportData) -> Result<Option<Vec<u8>>, RenderError> {
    match rgb(data)? {
        Some(image) => Ok(Some(encode_png(&image)?)),
        None => Ok(None),
    }
}

pub(super) fn encode_png(image: &Rgb) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // It goes into every email: default deflate with per-row filters is about a third
    // of the fast setting's size (30 KB against 100 KB) for 2 ms more.
    encoder.set_compression(png::Compression::Default);
    encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.pixels)?;
    writer.finish()?;
    Ok(out)
}

pub(super) fn rgb(data: &ReportData) -> Result<Option<Rgb>, RenderError> {
    let Some(series) = drawable(data) else {
        return Ok(None);
    };
    register_font()?;
    let mut pixels = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    draw(data, series, &mut pixels).map_err(|e| RenderError::Chart(e.to_string()))?;
    Ok(Some(Rgb {
        width: WIDTH,
        height: HEIGHT,
        pixels,
    }))
}

fn register_font() -> Result<(), RenderError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    ok.then_some(()).ok_or(RenderError::Font)
}

fn draw(
    data: &ReportData,
    series: &ReportSeries,
    pixels: &mut [u8],
) -> Result<(), Box<dyn std::error::Error>> {
    let lines = plotted(series);
    let kind = series.metrics[lines[0]].kind();
    let n = series.points.len();
    let top = series
        .points
        .iter()
        .flat_map(|p| {
            lines
                .iter()
                .filter_map(|&i| p.values.get(i).copied().flatten())
        })
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    // Headroom above the highest point; a flat zero series still gets an axis.
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let grain = if series.grain == "hour" {
        "Hourly"
    } else {
        "Daily"
    };

    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(
        &format!("{grain} activity · {}", data.period.label),
        ("sans-serif", 18).into_font().color(&RGBColor(17, 24, 39)),
    )?;
    // The legend gets its own column so it never hides a line.
    let (plot, legend) = body.split_horizontally(WIDTH - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot)
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(78)
        .build_cartesian_2d(0..(n as i32 - 1).max(1), 0.0..top)?;

    let x_label = |x: &i32| {
        usize::try_from(*x)
            .ok()
            .and_then(|i| series.points.get(i))
            .map(|p| short_label(&p.label, series.grain))
            .unwrap_or_default()
    };
    let y_label = |y: &f64| match kind {
        MetricKind::Count => fmt::count(*y),
        MetricKind::Money => fmt::money(*y),
        MetricKind::Rate => fmt::rate(*y),
    };
    let label_font = ("sans-serif", 12).into_font().color(&RGBColor(75, 85, 99));
    chart
        .configure_mesh()
        .x_labels(n.min(12))
        .y_labels(6)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_desc(if series.grain == "hour" {
            "Hour"
        } else {
            "Day"
        })
        .y_desc(match kind {
            MetricKind::Count => "Events",
            MetricKind::Money => "Amount",
            MetricKind::Rate => "Rate",
        })
        .label_style(label_font.clone())
        .axis_desc_style(label_font)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(229, 231, 235))
        .axis_style(RGBColor(156, 163, 175))
        .draw()?;

    for (line, &i) in lines.iter().enumerate() {
        let color = PALETTE[line % PALETTE.len()];
        let style = color.stroke_width(2);
        // A missing value breaks the line instead of drawing it at zero.
        let mut segments: Vec<Vec<(i32, f64)>> = vec![Vec::new()];
        for (x, p) in series.points.iter().enumerate() {
            match p.values.get(i).copied().flatten().filter(|v| v.is_finite()) {
                Some(v) => segments
                    .last_mut()
                    .expect("never empty")
                    .push((x as i32, v)),
                None if segments.last().is_some_and(|s| !s.is_empty()) => segments.push(Vec::new()),
                None => {}
            }
        }
        for segment in segments.into_iter().filter(|s| !s.is_empty()) {
            chart.draw_series(LineSeries::new(segment, style).point_size(
                // Points only when there are few enough to see them.
                if n <= 40 { 2 } else { 0 },
            ))?;
        }
        let y = 28 + 24 * line as i32;
        legend.draw(&PathElement::new([(4, y), (24, y)], color.stroke_width(3)))?;
        legend.draw(&Text::new(
            series.metrics[i].label(),
            (32, y - 8),
            ("sans-serif", 13).into_font().color(&RGBColor(55, 65, 81)),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// `2026-12-01` → `1 Dec`, `2026-11-22 09:00` → `09:00`: the period is in the title.
fn short_label(label: &str, grain: &str) -> String {
    if grain == "hour" {
        if let Some((_, time)) = label.split_once(' ') {
            return time.to_string();
        }
    }
    chrono::NaiveDate::parse_from_str(label, "%Y-%m-%d")
        .map(|d| d.format("%-d %b").to_string())
        .unwrap_or_else(|_| label.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Metric;
    use crate::testkit::report_data;

    fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut reader = png::Decoder::new(bytes).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn chart_is_a_png_of_the_expected_size_with_lines_drawn() {
        let data = report_data(31, 10);
        let bytes = png(&data).unwrap().expect("a chart");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let (info, pixels) = decode(&bytes);
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        // The first line's color is on the canvas: the series was drawn, not just axes.
        let blue = PALETTE[0];
        let drawn = pixels
            .chunks_exact(3)
            .filter(|p| (p[0], p[1], p[2]) == (blue.0, blue.1, blue.2))
            .count();
        assert!(drawn > 500, "{drawn} pixels of the first line");
        // Text was rendered with the bundled font: dark caption pixels at the top.
        let caption_dark = pixels[..(WIDTH * 40 * 3) as usize]
            .chunks_exact(3)
            .filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100)
            .count();
        assert!(
            caption_dark > 100,
            "{caption_dark} dark pixels in the caption band"
        );
    }

    #[test]
    fn no_chart_without_points() {
        let mut data = report_data(5, 1);
        data.series.as_mut().unwrap().points.clear();
        assert!(png(&data).unwrap().is_none());
        data.series = None;
        assert!(png(&data).unwrap().is_none());
    }

    #[test]
    fn up_to_four_counts_are_plotted_and_gaps_are_fine() {
        let mut data = report_data(3, 1);
        let series = data.series.as_mut().unwrap();
        // Sent, Delivered, OpensHuman, ClicksHuman, Bounced, DeliveryRate.
        assert_eq!(plotted(series), [0, 1, 2, 3]);
        series.points[1].values[0] = None;
        assert!(png(&data).unwrap().is_some());
        let rates = crate::model::ReportSeries {
            grain: "hour",
            metrics: vec![Metric::BounceRate, Metric::Cost, Metric::ComplaintRate],
            points: Vec::new(),
        };
        assert_eq!(plotted(&rates), [0, 2]);
        assert_eq!(short_label("2026-11-22 09:00", "hour"), "09:00");
        assert_eq!(short_label("2026-12-01", "day"), "1 Dec");
    }
}
