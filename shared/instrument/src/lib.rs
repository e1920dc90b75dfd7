//! Instrumenting a campaign email on the sender's side: every http(s) link becomes a
//! signed click URL and an open pixel goes in before `</body>`.
//!
//! The rewriting is done by `lol_html`, a streaming HTML rewriter, so everything we do
//! not touch (comments, conditional comments for Outlook, whitespace, odd markup) comes
//! out byte for byte as it went in. Every attribute value we write is escaped for a
//! double-quoted attribute ([`attribute_value`]), whatever the base URL holds: the
//! output has the sender's elements plus the pixel and the honeypot, nothing else.

use beacon_domain::event::validate::trackable_url;
use beacon_domain::tracking::token::{Recipient, SignError, TokenSigner};
use lol_html::html_content::ContentType;
use lol_html::{element, end, rewrite_str, RewriteStrSettings};
use std::cell::{Cell, RefCell};
use thiserror::Error;

/// Attribute that keeps a link out of click tracking (`<a href=... data-beacon-ignore>`).
pub const IGNORE_ATTRIBUTE: &str = "data-beacon-ignore";

/// Makes the tracking URLs for one deployment: `{base}/o/{token}` and `{base}/c/{token}`,
/// signed by the master keyring (operators) or by one tenant's key.
#[derive(Debug)]
pub struct LinkSigner<'a> {
    signer: &'a dyn TokenSigner,
    base_url: String,
}

impl<'a> LinkSigner<'a> {
    /// `base_url` is the public tracking origin, e.g. `https://t.example.com`
    /// (see [`tracking_base_url`]).
    pub fn new(signer: &'a dyn TokenSigner, base_url: &str) -> Result<Self, InstrumentError> {
        Ok(LinkSigner {
            signer,
            base_url: tracking_base_url(base_url)?,
        })
    }

    pub fn open_url(&self, recipient: &Recipient, expires_at: u32) -> Result<String, SignError> {
        let token = self.signer.sign_open(recipient, expires_at)?;
        Ok(format!("{}/o/{token}", self.base_url))
    }

    pub fn click_url(
        &self,
        recipient: &Recipient,
        destination: &str,
        expires_at: u32,
    ) -> Result<String, SignError> {
        let token = self.signer.sign_click(recipient, destination, expires_at)?;
        Ok(format!("{}/c/{token}", self.base_url))
    }

    fn is_ours(&self, url: &str) -> bool {
        url.strip_prefix(&self.base_url)
            .is_some_and(|rest| rest.starts_with("/o/") || rest.starts_with("/c/"))
    }
}

/// The tracking origin without its trailing `/`: an absolute http(s) URL with a host,
/// no credentials, no query and no fragment, since the token is appended to its path.
pub fn tracking_base_url(text: &str) -> Result<String, InstrumentError> {
    let bad = |why: &str| InstrumentError::BadBaseUrl(text.to_string(), why.to_string());
    let base = text.trim_end_matches('/');
    let base = trackable_url(base).ok_or_else(|| bad("it must be an absolute http(s) URL"))?;
    let url = url::Url::parse(&base).map_err(|_| bad("it does not parse"))?;
    if base.contains(['?', '#']) {
        return Err(bad(
            "it must not have a query or a fragment: the token goes at the end of its path",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not hold a user name or password"));
    }
    Ok(base)
}

#[derive(Debug, Error)]
pub enum InstrumentError {
    #[error("tracking base URL `{0}` is not valid: {1}")]
    BadBaseUrl(String, String),
    #[error(transparent)]
    Sign(#[from] SignError),
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
    /// message's clicks around it as a scanner's ([`beacon_domain::verdict::trail`]). It
    /// leads to the first tracked link's site with the fragment `#beacon-honeypot`, so a scanner
    /// that follows it lands somewhere harmless. Needs at least one tracked link.
    pub honeypot: bool,
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
    // Signed first: a recipient the signer may not sign for fails here, before any
    // rewriting (the link handlers below then sign for the same recipient).
    let pixel = pixel_tag(&signer.open_url(recipient, expires_at)?);
    // The honeypot goes in with the pixel; it leads to the site of the first link.
    let honeypot = match options.honeypot {
        true => match first_site(html, signer)? {
            Some(site) => {
                let destination = format!(
                    "{site}/#{}",
                    beacon_domain::verdict::trail::HONEYPOT_FRAGMENT
                );
                Some(honeypot_tag(&signer.click_url(
                    recipient,
                    &destination,
                    expires_at,
                )?))
            }
            None => None,
        },
        false => None,
    };
    let tail = format!("{}{pixel}", honeypot.as_deref().unwrap_or_default());
    let tracked = Cell::new(0usize);
    let ignored = Cell::new(0usize);
    let pixel_done = Cell::new(false);

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
                    let click = signer.click_url(recipient, &destination, expires_at)?;
                    // lol_html escapes only `"` in values it is given; the rest is ours.
                    el.set_attribute("href", &attribute_value(&click))?;
                    tracked.set(tracked.get() + 1);
                    Ok(())
                }),
                element!("body", |el| {
                    if !pixel_done.get() {
                        el.append(&tail, ContentType::Html);
                        pixel_done.set(true);
                    }
                    Ok(())
                }),
            ],
            document_content_handlers: vec![end!(|end| {
                // No <body> (a fragment): the pixel goes at the very end.
                if !pixel_done.get() {
                    end.append(&tail, ContentType::Html);
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

/// `text` escaped for a double-quoted attribute value: `&`, `<`, `>` and `"`.
fn attribute_value(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_double_quoted_attribute(text)
}

/// A start tag with every attribute value escaped; `void` closes it (`<img ... />`).
fn start_tag(name: &str, attributes: &[(&str, &str)], void: bool) -> String {
    let mut tag = format!("<{name}");
    for (attribute, value) in attributes {
        tag.push_str(&format!(" {attribute}=\"{}\"", attribute_value(value)));
    }
    tag.push_str(if void { " />" } else { ">" });
    tag
}

/// A link no person sees or reaches: hidden from view, from screen readers and from
/// the keyboard, and from Outlook (`mso-hide`).
fn honeypot_tag(href: &str) -> String {
    let open = start_tag(
        "a",
        &[
            ("href", href),
            ("aria-hidden", "true"),
            ("tabindex", "-1"),
            ("style", HONEYPOT_STYLE),
        ],
        false,
    );
    format!("{open}&#8203;</a>")
}

const HONEYPOT_STYLE: &str =
    "display:none;mso-hide:all;font-size:0;line-height:0;max-height:0;overflow:hidden";

/// A 1x1 image that mail clients neither scale nor leave a gap for.
fn pixel_tag(src: &str) -> String {
    start_tag(
        "img",
        &[
            ("src", src),
            ("width", "1"),
            ("height", "1"),
            ("alt", ""),
            ("border", "0"),
            ("style", PIXEL_STYLE),
        ],
        true,
    )
}

const PIXEL_STYLE: &str = "display:block;width:1px;height:1px;border:0;margin:0;padding:0";

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_domain::tracking::token::{Keyring, TokenKind};

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
        assert!(beacon_domain::verdict::trail::is_honeypot(&urls[2]));
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

    /// Every element of `html` as lol_html's (HTML5) tokenizer reads it: the tag name
    /// and the attributes in order, values with their character references decoded.
    fn elements(html: &str) -> Vec<(String, Vec<(String, String)>)> {
        let found = RefCell::new(Vec::new());
        rewrite_str(
            html,
            RewriteStrSettings {
                element_content_handlers: vec![element!("*", |el| {
                    let attributes = el
                        .attributes()
                        .iter()
                        .map(|a| {
                            let value = html_escape::decode_html_entities(&a.value()).into_owned();
                            (a.name(), value)
                        })
                        .collect();
                    found.borrow_mut().push((el.tag_name(), attributes));
                    Ok(())
                })],
                ..RewriteStrSettings::new()
            },
        )
        .unwrap();
        found.into_inner()
    }

    #[test]
    fn a_hostile_base_url_adds_no_element_and_no_attribute() {
        let keys = keyring();
        // Every character that could end an attribute or start a tag or a reference.
        let base = r#"https://t.example.com/x"y'z<b>q&amp;c"#;
        let signer = LinkSigner::new(&keys, &format!("{base}/")).unwrap();
        let html = r#"<html><body><p>Hi <a href="https://shop.example/s?a=1&amp;b=2">Shop</a></p></body></html>"#;
        let options = Options { honeypot: true };
        let out = instrument_html_with(html, &signer, &recipient(), EXP, options).unwrap();
        assert!(out.honeypot_inserted && out.pixel_inserted);

        let found = elements(&out.html);
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["html", "body", "p", "a", "a", "img"],
            "{}",
            out.html
        );
        let attrs = |i: usize| -> Vec<(&str, &str)> {
            found[i]
                .1
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect()
        };
        assert!(attrs(0).is_empty() && attrs(1).is_empty() && attrs(2).is_empty());
        // Each URL is exactly the base as given, the route, and a token that verifies.
        let token = |value: &str, route: &str| -> String {
            value
                .strip_prefix(&format!("{base}{route}"))
                .unwrap_or_else(|| panic!("`{value}` is not under the base"))
                .to_string()
        };
        let click = |value: &str| {
            let claim = keys
                .verify(&token(value, "/c/"), TokenKind::Click, 0)
                .unwrap();
            assert_eq!(claim.recipient, recipient());
            claim.url.unwrap()
        };

        let link = attrs(3);
        assert_eq!(link.len(), 1);
        assert_eq!(link[0].0, "href");
        assert_eq!(click(link[0].1), "https://shop.example/s?a=1&b=2");

        let honeypot = attrs(4);
        assert_eq!(
            honeypot[1..],
            [
                ("aria-hidden", "true"),
                ("tabindex", "-1"),
                ("style", HONEYPOT_STYLE)
            ]
        );
        assert_eq!(honeypot[0].0, "href");
        assert_eq!(
            click(honeypot[0].1),
            "https://shop.example/#beacon-honeypot"
        );

        let pixel = attrs(5);
        assert_eq!(
            pixel[1..],
            [
                ("width", "1"),
                ("height", "1"),
                ("alt", ""),
                ("border", "0"),
                ("style", PIXEL_STYLE)
            ]
        );
        assert_eq!(pixel[0].0, "src");
        let open = keys
            .verify(&token(pixel[0].1, "/o/"), TokenKind::Open, 0)
            .unwrap();
        assert_eq!(open.recipient, recipient());

        // Its own links are still recognised through the escaping.
        let again = instrument_html(&out.html, &signer, &recipient(), EXP).unwrap();
        assert_eq!(again.links_tracked, 0);
    }

    #[test]
    fn the_base_url_is_checked() {
        let keys = keyring();
        for good in ["https://t.example.com", "http://127.0.0.1:8080/track/"] {
            assert!(LinkSigner::new(&keys, good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("t.example.com", "absolute http(s) URL"),
            ("ftp://t.example.com", "absolute http(s) URL"),
            ("https:///x", "absolute http(s) URL"),
            ("https://t.example.com/a b", "absolute http(s) URL"),
            ("https://t.example.com/?x=1", "query or a fragment"),
            ("https://t.example.com/#x", "query or a fragment"),
            ("https://t.example.com?", "query or a fragment"),
            ("https://u:p@t.example.com", "user name or password"),
        ] {
            let err = LinkSigner::new(&keys, bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_tenant_key_instruments_its_own_tenant_only() {
        let keys = keyring();
        let acme = keys.tenant_key("acme", None).unwrap();
        let signer = LinkSigner::new(&acme, "https://t.example.com").unwrap();
        let html = r#"<body><a href="https://x.example/">x</a></body>"#;
        let out = instrument_html(html, &signer, &recipient(), EXP).unwrap();
        assert_eq!(click_destinations(&out.html), ["https://x.example/"]);
        let globex = Recipient {
            tenant_id: "globex".into(),
            ..recipient()
        };
        let err = instrument_html(html, &signer, &globex, EXP).unwrap_err();
        assert!(
            matches!(err, InstrumentError::Sign(SignError::WrongTenant { .. })),
            "{err}"
        );
    }
}
