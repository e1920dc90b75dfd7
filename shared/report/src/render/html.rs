//! The email body. Written for mail clients, which differ from browsers: layout with
//! tables, every style inline (Gmail and Outlook drop or mangle `<style>` blocks), no
//! scripts or external resources, a 640 px column that narrows on phones. Every text
//! from the data is escaped.

use super::fmt::{self, Tone};
use crate::model::ReportData;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use std::fmt::Write;

/// Links shown in the body; the attachments have all of them.
pub(super) const EMAIL_LINKS: usize = 20;
/// Longest URL text shown; the link itself is whole.
const URL_CHARS: usize = 70;

const FONT: &str = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif";
const INK: &str = "#111827";
const MUTED: &str = "#6b7280";
const LINE: &str = "#e5e7eb";
const GOOD: &str = "#15803d";
const BAD: &str = "#b91c1c";

fn tone_color(tone: Tone) -> &'static str {
    match tone {
        Tone::Good => GOOD,
        Tone::Bad => BAD,
        Tone::Neutral => MUTED,
    }
}

pub(super) fn render(data: &ReportData, chart_src: Option<&str>) -> String {
    let links = data
        .top_links
        .as_ref()
        .map_or(0, |l| l.len().min(EMAIL_LINKS));
    let mut h = String::with_capacity(12_000 + links * 600);
    let title = format!("{} – {}", data.name, data.period.label);

    // Writing to a String cannot fail; the results are ignored below for that reason.
    let _ = writeln!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light\">\n<title>{}</title>\n</head>\n\
         <body style=\"margin:0;padding:0;background:#f3f4f6;{FONT};color:{INK}\">",
        text(&title)
    );
    // The preview line mail clients show next to the subject, hidden in the body.
    let preview: Vec<String> = data
        .summary
        .iter()
        .take(3)
        .map(|r| format!("{} {}", r.metric.label(), fmt::value(r.metric, r.value)))
        .collect();
    let _ = writeln!(
        h,
        "<div style=\"display:none;max-height:0;overflow:hidden;mso-hide:all\">{}</div>",
        text(&format!("{}: {}", data.period.label, preview.join(" · ")))
    );
    h.push_str(
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"background:#f3f4f6\">\n\
         <tr><td align=\"center\" style=\"padding:24px 12px\">\n",
    );
    let _ = writeln!(
        h,
        "<table role=\"presentation\" width=\"640\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
         style=\"width:100%;max-width:640px;background:#ffffff;border:1px solid {LINE};border-radius:6px;{FONT};color:{INK}\">"
    );

    // Title block.
    let _ = writeln!(
        h,
        "<tr><td style=\"padding:24px 24px 8px\">\
         <div style=\"font-size:12px;color:{MUTED};text-transform:uppercase;letter-spacing:0.04em\">Beacon report</div>\
         <h1 style=\"margin:4px 0 4px;font-size:22px;line-height:28px;font-weight:700;color:{INK}\">{}</h1>\
         <div style=\"font-size:14px;line-height:20px;color:{MUTED}\">{} · {}<br>{}, compared with {}</div>\
         </td></tr>",
        text(&data.name),
        text(&data.scope),
        text(&data.tenant),
        text(&data.period.label),
        text(&data.previous.label),
    );

    summary(&mut h, data);
    if let Some(src) = chart_src {
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:8px 24px 8px\"><img src=\"{}\" alt=\"{}\" width=\"592\" \
             style=\"display:block;width:100%;max-width:592px;height:auto;border:0\"></td></tr>",
            attr(src),
            attr(&format!(
                "Chart of the period's activity, {}",
                data.period.label
            )),
        );
    }
    top_links(&mut h, data);
    channels(&mut h, data);
    deliverability(&mut h, data);

    let _ = writeln!(
        h,
        "<tr><td style=\"padding:16px 24px 24px;font-size:12px;line-height:18px;color:{MUTED};border-top:1px solid {LINE}\">\
         Generated {} (time zone {}) by Beacon for {}. Period {} to {}.</td></tr>",
        text(&fmt::local_time(data.generated_at, &data.timezone)),
        text(&data.timezone),
        text(&data.tenant),
        text(&fmt::local_time(data.period.start, &data.timezone)),
        text(&fmt::local_time(data.period.end, &data.timezone)),
    );
    h.push_str("</table>\n</td></tr>\n</table>\n</body>\n</html>\n");
    h
}

fn section_title(h: &mut String, title: &str) {
    let _ = writeln!(
        h,
        "<tr><td style=\"padding:20px 24px 8px\"><h2 style=\"margin:0;font-size:16px;line-height:22px;font-weight:700;color:{INK}\">{}</h2></td></tr>",
        text(title)
    );
}

/// Opens a data table with its header row; `right` marks right-aligned (number) columns.
fn table_head(h: &mut String, columns: &[(&str, bool)]) {
    let _ = write!(
        h,
        "<tr><td style=\"padding:0 24px\">\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"border-collapse:collapse;font-size:13px;line-height:18px\">\n<tr>"
    );
    for (title, right) in columns {
        let _ = write!(
            h,
            "<th align=\"{}\" style=\"padding:6px 6px;border-bottom:2px solid {LINE};font-size:12px;color:{MUTED};font-weight:600;text-align:{}\">{}</th>",
            align(*right),
            align(*right),
            text(title)
        );
    }
    h.push_str("</tr>\n");
}

fn table_end(h: &mut String) {
    h.push_str("</table></td></tr>\n");
}

fn align(right: bool) -> &'static str {
    if right {
        "right"
    } else {
        "left"
    }
}

/// One table cell; `content` is already escaped HTML.
fn cell(h: &mut String, content: &str, right: bool, style: &str) {
    let _ = write!(
        h,
        "<td align=\"{}\" style=\"padding:6px 6px;border-bottom:1px solid {LINE};text-align:{};{style}\">{content}</td>",
        align(right),
        align(right),
    );
}

fn summary(h: &mut String, data: &ReportData) {
    section_title(h, "Summary");
    table_head(
        h,
        &[
            ("Metric", false),
            ("This period", true),
            ("Previous", true),
            ("Change", true),
        ],
    );
    for row in &data.summary {
        let [value, previous, delta, ratio] = fmt::summary_cells(row);
        let color = tone_color(fmt::tone(row.metric, row.delta()));
        h.push_str("<tr>");
        cell(h, &text(row.metric.label()), false, "");
        cell(h, &text(&value), true, "font-weight:600;white-space:nowrap");
        cell(
            h,
            &text(&previous),
            true,
            &format!("color:{MUTED};white-space:nowrap"),
        );
        cell(
            h,
            &format!(
                "{}<br><span style=\"font-size:12px\">{}</span>",
                text(&delta),
                text(&ratio)
            ),
            true,
            &format!("color:{color};white-space:nowrap"),
        );
        h.push_str("</tr>\n");
    }
    table_end(h);
}

fn top_links(h: &mut String, data: &ReportData) {
    let Some(links) = &data.top_links else {
        return;
    };
    section_title(h, "Top links");
    if links.is_empty() {
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:0 24px;font-size:14px;color:{MUTED}\">No clicks on links in this period.</td></tr>"
        );
        return;
    }
    table_head(
        h,
        &[
            ("Link", false),
            ("Human clicks", true),
            ("Bot clicks", true),
        ],
    );
    for link in links.iter().take(EMAIL_LINKS) {
        let shown = text(&fmt::truncate(&link.url, URL_CHARS)).into_owned();
        // Only web links are made clickable; anything else is shown as text.
        let url = if super::is_web_url(&link.url) {
            format!(
                "<a href=\"{}\" style=\"color:#1d4ed8;text-decoration:none;word-break:break-all\">{shown}</a>",
                attr(&link.url)
            )
        } else {
            format!("<span style=\"word-break:break-all\">{shown}</span>")
        };
        h.push_str("<tr>");
        cell(
            h,
            &format!(
                "{url}<br><span style=\"font-size:12px;color:{MUTED}\">{}</span>",
                text(&link.campaign)
            ),
            false,
            "",
        );
        cell(
            h,
            &text(&fmt::count(link.clicks_human as f64)),
            true,
            "white-space:nowrap",
        );
        cell(
            h,
            &text(&fmt::count(link.clicks_bot as f64)),
            true,
            &format!("color:{MUTED};white-space:nowrap"),
        );
        h.push_str("</tr>\n");
    }
    table_end(h);
    if links.len() > EMAIL_LINKS {
        let more = links.len() - EMAIL_LINKS;
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:8px 24px 0;font-size:13px;color:{MUTED}\">{} more {} in the attached files.</td></tr>",
            fmt::count(more as f64),
            if more == 1 { "link is" } else { "links are" }
        );
    }
}

fn channels(h: &mut String, data: &ReportData) {
    let Some(channels) = &data.channels else {
        return;
    };
    section_title(h, "Channels");
    table_head(
        h,
        &[
            ("Channel", false),
            ("Sent", true),
            ("Delivered", true),
            ("Bounced", true),
            ("Complaints", true),
            ("Opens", true),
            ("Clicks", true),
            ("Cost", true),
        ],
    );
    for c in channels {
        h.push_str("<tr>");
        cell(
            h,
            &format!(
                "{}<br><span style=\"font-size:12px;color:{MUTED}\">{}</span>",
                text(&c.channel),
                text(&c.provider)
            ),
            false,
            "",
        );
        for v in c.counts() {
            cell(h, &text(&fmt::count(v as f64)), true, "white-space:nowrap");
        }
        cell(h, &text(&fmt::money(c.cost)), true, "white-space:nowrap");
        h.push_str("</tr>\n");
    }
    table_end(h);
    let _ = writeln!(
        h,
        "<tr><td style=\"padding:6px 24px 0;font-size:12px;color:{MUTED}\">Opens and clicks by people; machine opens and bot clicks are left out.</td></tr>"
    );
}

fn deliverability(h: &mut String, data: &ReportData) {
    let Some(d) = &data.deliverability else {
        return;
    };
    section_title(h, "Deliverability");
    let (border, background, color) = if d.at_risk() {
        (BAD, "#fef2f2", BAD)
    } else {
        (GOOD, "#f0fdf4", INK)
    };
    let rate = |v: Option<f64>| v.map_or(fmt::NONE.to_string(), fmt::rate);
    let _ = writeln!(
        h,
        "<tr><td style=\"padding:0 24px\">\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
         style=\"background:{background};border:1px solid {border};border-left:4px solid {border};border-radius:4px\">\
         <tr><td style=\"padding:12px 14px;font-size:14px;line-height:20px;color:{color}\">\
         <strong>{}</strong><br>\
         <span style=\"color:{INK}\">Bounce rate {} (review at {}) · complaint rate {} (review at {})<br>\
         {} sent · {} delivered · {} hard and {} soft bounces · {} complaints</span>\
         </td></tr></table></td></tr>",
        text(&fmt::deliverability_verdict(d)),
        text(&rate(d.bounce_rate)),
        text(&fmt::rate(d.bounce_review_level)),
        text(&rate(d.complaint_rate)),
        text(&fmt::rate(d.complaint_review_level)),
        text(&fmt::count(d.sent as f64)),
        text(&fmt::count(d.delivered as f64)),
        text(&fmt::count(d.bounced_hard as f64)),
        text(&fmt::count(d.bounced_soft as f64)),
        text(&fmt::count(d.complained as f64)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Deliverability, Metric};
    use crate::testkit::report_data;

    #[test]
    fn email_is_self_contained_escaped_and_shows_the_chart() {
        let mut data = report_data(31, 1000);
        data.top_links.as_mut().unwrap()[0].url =
            "https://example.com/?q=<script>alert(1)</script>&x=\"y\"".into();
        data.name = "Q4 <b>news</b> & more".into();
        let html = render(&data, Some("cid:chart@beacon"));

        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.trim_end().ends_with("</html>"));
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains("<style"));
        assert!(!lower.contains("<script"));
        assert!(!lower.contains("<link"));
        assert!(!lower.contains("class="));
        assert!(html.contains("max-width:640px"));

        // The hostile URL is escaped both as text and in the attribute.
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;x="));
        assert!(html.contains("href=\"https://example.com/?q=&lt;script&gt;alert(1)&lt;/script&gt;&amp;x=&quot;y&quot;\""));
        assert!(html.contains("Q4 &lt;b&gt;news&lt;/b&gt; &amp; more"));

        assert!(html.contains("<img src=\"cid:chart@beacon\""));
        // 20 links in the body, the rest announced.
        assert_eq!(html.matches("<a href=").count(), EMAIL_LINKS);
        assert!(html.contains("980 more links are in the attached files."));

        // Summary numbers as fmt writes them.
        for row in &data.summary {
            assert!(html.contains(&fmt::value(row.metric, row.value)));
        }
        assert!(html.contains("Europe/Berlin"));
        assert!(html.contains("Within the levels"));
    }

    #[test]
    fn changes_are_colored_by_whether_they_are_good() {
        let mut data = report_data(3, 0);
        for row in &mut data.summary {
            row.previous = row.value.map(|v| v / 2.0);
        }
        let html = render(&data, None);
        assert!(!html.contains("<img"));
        let row_of = |metric: Metric| {
            let start = html.find(&format!(">{}</td>", metric.label())).unwrap();
            &html[start..start + html[start..].find("</tr>").unwrap()]
        };
        // Both went up: more sends is good, more complaints is bad.
        assert!(row_of(Metric::Sent).contains(&format!("color:{GOOD}")));
        assert!(row_of(Metric::Complained).contains(&format!("color:{BAD}")));
        assert!(row_of(Metric::Cost).contains(&format!("color:{MUTED}")));
        assert!(html.contains("No clicks on links in this period."));
    }

    #[test]
    fn deliverability_warns_when_at_risk() {
        let mut data = report_data(3, 1);
        data.deliverability = Some(Deliverability {
            bounce_rate: Some(0.071),
            ..data.deliverability.clone().unwrap()
        });
        let html = render(&data, Some("data:image/png;base64,AAAA"));
        assert!(html.contains("At risk: the bounce rate is 7.10% (SES reviews at 5.00%)."));
        assert!(html.contains(&format!("border:1px solid {BAD}")));
        assert!(html.contains("src=\"data:image/png;base64,AAAA\""));
    }
}
