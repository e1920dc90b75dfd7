//! The report email: `multipart/mixed` holding a `multipart/related` (the
//! `multipart/alternative` of plain text and HTML, plus the chart as an inline PNG the
//! HTML refers to by `cid:`) and the attachments. Files over the attachment limit are
//! linked (presigned S3 URL) instead of attached, above the summary.

use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

/// The Content-ID of the chart image.
pub const CHART_CID: &str = "chart@beacon";

/// One file of a report.
#[derive(Debug, Clone)]
pub struct ReportFile {
    pub file_name: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Set when the file is too big to attach: where to download it.
    pub link: Option<String>,
}

/// What goes into one message.
pub struct Message<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    pub chart_png: Option<&'a [u8]>,
    pub files: &'a [ReportFile],
}

/// The raw message for SES.
pub fn build(m: &Message<'_>) -> std::io::Result<Vec<u8>> {
    let mut related = vec![MimePart::new(
        "multipart/alternative",
        vec![
            MimePart::new("text/plain", m.text),
            MimePart::new("text/html", m.html),
        ],
    )];
    if let Some(png) = m.chart_png {
        related.push(
            MimePart::new("image/png", png)
                .inline()
                .cid(CHART_CID)
                .attachment("chart.png"),
        );
    }
    let mut mixed = vec![MimePart::new("multipart/related", related)];
    for f in m.files.iter().filter(|f| f.link.is_none()) {
        mixed.push(
            MimePart::new(f.content_type, f.body.as_slice()).attachment(f.file_name.as_str()),
        );
    }
    MessageBuilder::new()
        .from(m.from)
        .to(m.to.iter().map(|t| t.as_str()).collect::<Vec<&str>>())
        .subject(m.subject)
        .body(MimePart::new("multipart/mixed", mixed))
        .write_to_vec()
}

/// The block of links above the summary, for files too big to attach (HTML).
pub fn links_html(files: &[ReportFile]) -> String {
    let linked: Vec<&ReportFile> = files.iter().filter(|f| f.link.is_some()).collect();
    if linked.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="margin:0 0 16px 0;border:1px solid #d0d7de;border-radius:4px;background:#f6f8fa"><tr><td style="padding:12px 16px;font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#24292f">Too large to attach; download (links expire in 7 days):<br>"#,
    );
    for f in linked {
        out.push_str(&format!(
            r#"<a href="{}" style="color:#0969da">{}</a> ({} KB)<br>"#,
            html_escape::encode_double_quoted_attribute(f.link.as_deref().unwrap_or_default()),
            html_escape::encode_text(&f.file_name),
            f.body.len().div_ceil(1024)
        ));
    }
    out.push_str("</td></tr></table>");
    out
}

/// The same links for the plain-text part.
pub fn links_text(files: &[ReportFile]) -> String {
    let mut out = String::new();
    for f in files.iter().filter(|f| f.link.is_some()) {
        if out.is_empty() {
            out.push_str("Too large to attach; download (links expire in 7 days):\n");
        }
        out.push_str(&format!(
            "  {}: {}\n",
            f.file_name,
            f.link.as_deref().unwrap_or_default()
        ));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};

    #[test]
    fn the_message_has_text_html_inline_chart_and_attachments() {
        let files = vec![
            ReportFile {
                file_name: "r.csv".into(),
                content_type: "text/csv; charset=utf-8",
                body: b"a,b\r\n1,2\r\n".to_vec(),
                link: None,
            },
            ReportFile {
                file_name: "r.pdf".into(),
                content_type: "application/pdf",
                body: vec![b'x'; 5000],
                link: Some("https://bucket.example/r.pdf?sig=1&x=2".into()),
            },
        ];
        let to = vec!["a@example.com".to_string(), "b@example.com".to_string()];
        let html = format!("<p>{}</p><img src=\"cid:{CHART_CID}\">", links_html(&files));
        let raw = build(&Message {
            from: "reports@beacon.example",
            to: &to,
            subject: "Weekly — 2026-W47",
            html: &html,
            text: "numbers",
            chart_png: Some(b"\x89PNG fake"),
            files: &files,
        })
        .unwrap();
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("Weekly — 2026-W47"));
        assert_eq!(msg.to().unwrap().iter().count(), 2);
        assert_eq!(msg.body_text(0).unwrap().trim(), "numbers");
        let body = msg.body_html(0).unwrap();
        assert!(body.contains("cid:chart@beacon"));
        assert!(
            body.contains("sig=1&amp;x=2"),
            "the link is escaped: {body}"
        );
        let attachments: Vec<_> = msg.attachments().collect();
        let names: Vec<_> = attachments
            .iter()
            .filter_map(|a| a.attachment_name())
            .collect();
        assert_eq!(
            names,
            vec!["chart.png", "r.csv"],
            "the linked PDF is not attached"
        );
        let chart = attachments[0];
        assert_eq!(chart.content_id(), Some(CHART_CID));
        assert_eq!(chart.contents(), b"\x89PNG fake");
        assert_eq!(attachments[1].contents(), b"a,b\r\n1,2\r\n");
        assert!(links_text(&files).contains("r.pdf: https://bucket.example/r.pdf?sig=1&x=2"));
        assert_eq!(links_text(&files[..1]), "");
    }
}
