//! Instrumenting a campaign email on the sender's side: every http(s) link becomes a
//! signed click URL and an open pixel goes in before `</body>`.
//!
//! The rewriting is done by `lol_html`, a streaming HTML rewriter, so everything we do
//! not touch (comments, conditional comments for Outlook, whitespace, odd markup) comes
//! out byte for byte as it went in.

use crate::token::{Keyring, Recipient};
use lol_html::html_content::ContentType;
use lol_html::{element, end, rewrite_str, RewriteStrSettings};
use std::cell::{Cell, RefCell};
use thiserror::Error;

/// Attribute that keeps a link out of click tracking (`<a href=... data-beacon-ignore>`).
pub const IGNORE_ATTRIBUTE: &str = "data-beacon-ignore";

/// Makes the tracking URLs for one deployment: `{base}/o/{token}` and `{base}/c/{token}`.
#[derive(Debug)]
pub struct LinkSigner<'a> {
    pub keyring: &'a Keyring,
    base_url: String,
}

impl<'a> LinkSigner<'a> {
    /// `base_url` is the public tracking origin, e.g. `https://t.example.com`.
    pub fn new(keyring: &'a Keyring, base_url: &str) -> Result<Self, InstrumentError> {
        let base = base_url.trim_end_matches('/');
        if trackable_url(base).is_none() {
            return Err(InstrumentError::BadBaseUrl(base_url.to_string()));
        }
        Ok(LinkSigner {
            keyring,
            base_url: base.to_string(),
        })
    }

    pub fn open_url(&self, recipient: &Recipient, expires_at: u32) -> String {
        format!(
            "{}/o/{}",
            self.base_url,
            self.keyring.sign_open(recipient, expires_at)
        )
    }

    pub fn click_url(&self, recipient: &Recipient, destination: &str, expires_at: u32) -> String {
        format!(
            "{}/c/{}",
            self.base_url,
            self.keyring.sign_click(recipient, destination, expires_at)
        )
    }

    fn is_ours(&self, url: &str) -> bool {
        url.strip_prefix(&self.base_url)
            .is_some_and(|rest| rest.starts_with("/o/") || rest.starts_with("/c/"))
    }
}

#[derive(Debug, Error)]
pub enum InstrumentError {
    #[error("tracking base URL `{0}` must be an absolute http(s) URL")]
    BadBaseUrl(String),
    #[error("could not rewrite the HTML: {0}")]
    Rewrite(String),
}

/// The instrumented email and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrumented {
    pub html: String,
    /// Links rewritten to signed click URLs.
    pub links_tracked: usize,
    /// http(s) links left alone because of the opt-out attribute.
    pub links_ignored: usize,
    pub pixel_inserted: bool,
    /// The invisible honeypot link went in ([`Options::honeypot`]).
    pub honeypot_inserted: bool,
}

/// What else to put in besides tracked links and the pixel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// An invisible link no person clicks, next to the pixel: a click on it marks the
    /// message's clicks around it as a scanner's ([`crate::trail`]). It leads to the
    /// first tracked link's site with the fragment `#beacon-honeypot`, so a scanner
    /// that follows it lands somewhere harmless. Needs at least one tracked link.
    pub honeypot: bool,
}

/// Returns the URL if it is an absolute http(s) URL with a host, and nothing else:
/// the only kind of destination a click token may carry.
pub fn trackable_url(text: &str) -> Option<String> {
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    // Written out in full: no `https:/x`, `https:///x` or `https:\\x` that a lenient
    // parser would repair into something else than what the sender wrote.
    let lower = text.get(..8)?.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &text[8..]
    } else if lower.starts_with("http://") {
        &text[7..]
    } else {
        return None;
    };
    if rest.starts_with(['/', '\\']) {
        return None;
    }
    let url = url::Url::parse(text).ok()?;
    let http = matches!(url.scheme(), "http" | "https");
    (http && url.host_str().is_some_and(|h| !h.is_empty())).then(|| text.to_string())
}

/// Rewrites `html` for `recipient`: links to signed click URLs, plus the open pixel.
pub fn instrument_html(
    html: &str,
    signer: &LinkSigner,
    recipient: &Recipient,
    expires_at: u32,
) -> Result<Instrumented, InstrumentError> {
    instrument_html_with(html, signer, recipient, expires_at, Options::default())
}

/// [`instrument_html`], with [`Options`].
pub fn instrument_html_with(
    html: &str,
    signer: &LinkSigner,
    recipient: &Recipient,
    expires_at: u32,
    options: Options,
) -> Result<Instrumented, InstrumentError> {
    // The honeypot goes in with the pixel; it leads to the site of the first link.
    let honeypot = match options.honeypot {
        true => first_site(html, signer)?.map(|site| {
            let destination = format!("{site}/#{}", crate::trail::HONEYPOT_FRAGMENT);
            honeypot_tag(&signer.click_url(recipient, &destination, expires_at))
        }),
        false => None,
    };
    let honeypot_html = || honeypot.clone().unwrap_or_default();
    let tracked = Cell::new(0usize);
    let ignored = Cell::new(0usize);
    let pixel_done = Cell::new(false);
    let pixel = RefCell::new(None::<String>);
    let pixel_html = || {
        pixel
            .borrow_mut()
            .get_or_insert_with(|| pixel_tag(&signer.open_url(recipient, expires_at)))
            .clone()
    };

    let output = rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![
                element!("a[href], area[href]", |el| {
                    let Some(raw) = el.get_attribute("href") else {
                        return Ok(());
                    };
                    // Attribute values may hold entities (`&amp;` in query strings).
                    let href = html_escape::decode_html_entities(raw.trim()).into_owned();
                    let Some(destination) = trackable_url(&href) else {
                        return Ok(()); // mailto:, tel:, #anchor, relative, merge tags
                    };
                    if el.has_attribute(IGNORE_ATTRIBUTE) {
                        el.remove_attribute(IGNORE_ATTRIBUTE);
                        ignored.set(ignored.get() + 1);
                        return Ok(());
                    }
                    if signer.is_ours(&destination) {
                        return Ok(()); // already instrumented
                    }
                    let click = signer.click_url(recipient, &destination, expires_at);
                    el.set_attribute("href", &click)?;
                    tracked.set(tracked.get() + 1);
                    Ok(())
                }),
                element!("body", |el| {
                    if !pixel_done.get() {
                        let tail = format!("{}{}", honeypot_html(), pixel_html());
                        el.append(&tail, ContentType::Html);
                        pixel_done.set(true);
                    }
                    Ok(())
                }),
            ],
            document_content_handlers: vec![end!(|end| {
                // No <body> (a fragment): the pixel goes at the very end.
                if !pixel_done.get() {
                    end.append(
                        &format!("{}{}", honeypot_html(), pixel_html()),
                        ContentType::Html,
                    );
                    pixel_done.set(true);
                }
                Ok(())
            })],
            ..RewriteStrSettings::new()
        },
    )
    .map_err(|e| InstrumentError::Rewrite(e.to_string()))?;

    Ok(Instrumented {
        html: output,
        links_tracked: tracked.get(),
        links_ignored: ignored.get(),
        pixel_inserted: pixel_done.get(),
        honeypot_inserted: honeypot.is_some() && pixel_done.get(),
    })
}

/// The origin of the first link that would be tracked, if any.
fn first_site(html: &str, signer: &LinkSigner) -> Result<Option<String>, InstrumentError> {
    let site = RefCell::new(None::<String>);
    rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![element!("a[href], area[href]", |el| {
                if site.borrow().is_some() || el.has_attribute(IGNORE_ATTRIBUTE) {
                    return Ok(());
                }
                let raw = el.get_attribute("href").unwrap_or_default();
                let href = html_escape::decode_html_entities(raw.trim()).into_owned();
                if let Some(url) = trackable_url(&href).filter(|u| !signer.is_ours(u)) {
                    if let Ok(url) = url::Url::parse(&url) {
                        *site.borrow_mut() = Some(url.origin().ascii_serialization());
                    }
                }
                Ok(())
            })],
            ..RewriteStrSettings::new()
        },
    )
    .map_err(|e| InstrumentError::Rewrite(e.to_string()))?;
    Ok(site.into_inner())
}

/// A link no person sees or reaches: hidden from view, from screen readers and from
/// the keyboard, and from Outlook (`mso-hide`).
fn honeypot_tag(href: &str) -> String {
    format!(
        r#"<a href="{href}" aria-hidden="true" tabindex="-1" style="display:none;mso-hide:all;font-size:0;line-height:0;max-height:0;overflow:hidden">&#8203;</a>"#
    )
}

/// A 1x1 image that mail clients neither scale nor leave a gap for.
fn pixel_tag(src: &str) -> String {
    format!(
        r#"<img src="{src}" width="1" height="1" alt="" border="0" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" />"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenKind;

    fn keyring() -> Keyring {
        Keyring::new("k1", vec![("k1".into(), vec![42u8; 32])]).unwrap()
    }

    fn recipient() -> Recipient {
        Recipient {
            tenant_id: "acme".into(),
            campaign_id: "c1".into(),
            message_id: "m1".into(),
            recipient_id: "r1".into(),
        }
    }

    const EXP: u32 = 2_000_000_000;

    fn run(html: &str) -> Instrumented {
        let keys = keyring();
        let signer = LinkSigner::new(&keys, "https://t.example.com/").unwrap();
        instrument_html(html, &signer, &recipient(), EXP).unwrap()
    }

    /// The destinations the click links of `html` carry, verified.
    fn click_destinations(html: &str) -> Vec<String> {
        let keys = keyring();
        click_tokens(html)
            .iter()
            .map(|t| keys.verify(t, TokenKind::Click, 0).unwrap().url.unwrap())
            .collect()
    }

    fn click_tokens(html: &str) -> Vec<String> {
        html.split("https://t.example.com/c/")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_honeypot_is_an_invisible_signed_link_to_the_first_site() {
        let keys = keyring();
        let signer = LinkSigner::new(&keys, "https://t.example.com/").unwrap();
        let html = r#"<html><body><a href="mailto:x@y.example">m</a><a href="https://shop.example/a?x=1">A</a><a href="https://other.example/">B</a></body></html>"#;
        let options = Options { honeypot: true };
        let out = instrument_html_with(html, &signer, &recipient(), EXP, options).unwrap();
        assert!(out.honeypot_inserted && out.pixel_inserted);
        assert_eq!(
            out.links_tracked, 2,
            "the honeypot is not counted as a link"
        );
        let urls = click_destinations(&out.html);
        assert_eq!(
            urls,
            [
                "https://shop.example/a?x=1",
                "https://other.example/",
                "https://shop.example/#beacon-honeypot"
            ]
        );
        assert!(crate::trail::is_honeypot(&urls[2]));
        let tag = out.html.split("<a ").last().unwrap();
        assert!(tag.contains(r#"aria-hidden="true""#) && tag.contains("display:none"));
        // Without links there is nothing to protect; without the option, no honeypot.
        let bare = instrument_html_with("<p>hi</p>", &signer, &recipient(), EXP, options).unwrap();
        assert!(!bare.honeypot_inserted && !bare.html.contains("/c/"));
        assert!(!run(html).html.contains("beacon-honeypot"));
    }

    #[test]
    fn links_become_signed_click_urls_bound_to_their_destination() {
        let out = run(
            r#"<html><body><a href="https://shop.example/a?x=1&amp;y=2">A</a> <a href='http://b.example'>B</a></body></html>"#,
        );
        assert_eq!(out.links_tracked, 2);
        assert_eq!(
            click_destinations(&out.html),
            vec!["https://shop.example/a?x=1&y=2", "http://b.example"]
        );
    }

    #[test]
    fn other_links_and_markup_are_left_intact() {
        let html = "<!DOCTYPE html><html><head><!--[if mso]><style>x{}</style><![endif]--></head><body>\n<a href=\"mailto:a@b.example\">m</a><a href=\"tel:+1\">t</a><a href=\"#top\">#</a><a href=\"{{unsubscribe_url}}\">u</a><p class=x>Hi &amp; bye</p></body></html>";
        let out = run(html);
        assert_eq!(out.links_tracked, 0);
        let expected_without_pixel = html.to_string();
        let pixel_start = out.html.find("<img").unwrap();
        let pixel_end = out.html[pixel_start..].find("/>").unwrap() + pixel_start + 2;
        let without = format!("{}{}", &out.html[..pixel_start], &out.html[pixel_end..]);
        assert_eq!(without, expected_without_pixel);
    }

    #[test]
    fn opted_out_links_are_untouched_and_lose_the_marker() {
        let out = run(r#"<body><a href="https://keep.example/" data-beacon-ignore>k</a></body>"#);
        assert_eq!(out.links_tracked, 0);
        assert_eq!(out.links_ignored, 1);
        assert!(
            out.html
                .contains(r#"<a href="https://keep.example/">k</a>"#),
            "{}",
            out.html
        );
    }

    #[test]
    fn pixel_goes_before_body_end_once() {
        let out = run("<html><body><p>x</p></body></html>");
        assert!(out.pixel_inserted);
        assert_eq!(out.html.matches("<img").count(), 1);
        let img = out.html.find("https://t.example.com/o/").unwrap();
        assert!(img < out.html.find("</body>").unwrap());
        let token = out.html[img + "https://t.example.com/o/".len()..]
            .split('"')
            .next()
            .unwrap();
        let claim = keyring().verify(token, TokenKind::Open, 0).unwrap();
        assert_eq!(claim.recipient, recipient());
    }

    #[test]
    fn fragment_without_body_gets_pixel_at_end() {
        let out = run("<p>Hello <a href=\"https://x.example\">x</a></p>");
        assert!(out
            .html
            .starts_with("<p>Hello <a href=\"https://t.example.com/c/"));
        assert!(out.html.ends_with("/>"));
        assert_eq!(out.links_tracked, 1);
    }

    #[test]
    fn already_tracked_links_are_not_wrapped_twice() {
        let first = run(r#"<body><a href="https://x.example">x</a></body>"#);
        let keys = keyring();
        let signer = LinkSigner::new(&keys, "https://t.example.com").unwrap();
        let second = instrument_html(&first.html, &signer, &recipient(), EXP).unwrap();
        assert_eq!(second.links_tracked, 0);
    }

    #[test]
    fn trackable_urls() {
        assert!(trackable_url("https://a.example/x?y#z").is_some());
        assert!(trackable_url("javascript:alert(1)").is_none());
        assert!(trackable_url("https:///nohost").is_none());
        assert!(trackable_url("https://a.example/\r\nSet-Cookie:x").is_none());
        assert!(trackable_url("//a.example").is_none());
    }
}
