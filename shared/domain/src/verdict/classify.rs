//! Human or machine, from the request alone: which opens and clicks a person made.
//!
//! This reads what one request says: the user agent, the device class and the network
//! the edge found the full IP in ([`crate::verdict::networks`]). Verdicts that need the rest of
//! the message's trail (timing, bursts, the honeypot) come on top, in
//! [`crate::verdict::trail`]. Each verdict carries its reason.

use crate::event::{DeviceClass, EventType, EventView};
use crate::verdict::networks::{APPLE_PROXY, PROVIDER_FLAGGED, SCANNERS, UNLISTED};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenClass {
    Human,
    /// Fetched by a machine whether or not anyone read the mail (Apple Mail Privacy
    /// Protection, link scanners, headless browsers).
    Machine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickClass {
    Human,
    SuspectedBot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<C> {
    pub class: C,
    pub reason: &'static str,
}

/// User-agent fragments of security scanners, headless browsers and link-preview
/// fetchers (lowercase).
const MACHINE_AGENTS: [&str; 14] = [
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "barracuda",
    "mimecast",
    "proofpoint",
    "safelinks",
    "slackbot",
    "twitterbot",
    "facebookexternalhit",
    "linkpreview",
];

/// One pass over the agent for all fragments, ASCII case-insensitive: this runs for
/// every open and click the aggregate folds.
static MACHINE_AGENT_MATCHER: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(MACHINE_AGENTS)
            .expect("fixed patterns build")
    });

fn machine_agent(ua: &str) -> Option<&'static str> {
    MACHINE_AGENT_MATCHER
        .find(ua)
        .map(|m| MACHINE_AGENTS[m.pattern().as_usize()])
}

/// Classifies many events, remembering each agent's scan: a batch sees the same few
/// agents (Apple's and Gmail's proxies, common mail clients) again and again, and a
/// lookup costs less than a scan. The memory is bounded, so hostile agents can't grow it.
#[derive(Debug, Default)]
pub struct Classifier {
    agents: hashbrown::HashMap<String, Option<&'static str>>,
}

impl Classifier {
    const MAX_REMEMBERED: usize = 4096;

    pub fn open(&mut self, e: &EventView) -> Verdict<OpenClass> {
        open_verdict(e, |ua| self.machine_agent(ua))
    }

    pub fn click(&mut self, e: &EventView) -> Verdict<ClickClass> {
        click_verdict(e, |ua| self.machine_agent(ua))
    }

    /// [`machine_verdict`], with the agent scans remembered.
    pub fn machine(&mut self, e: &EventView) -> Option<(bool, &'static str)> {
        match e.kind {
            EventType::Opened => {
                let v = self.open(e);
                Some((v.class == OpenClass::Machine, v.reason))
            }
            EventType::Clicked => {
                let v = self.click(e);
                Some((v.class == ClickClass::SuspectedBot, v.reason))
            }
            _ => None,
        }
    }

    fn machine_agent(&mut self, ua: &str) -> Option<&'static str> {
        if let Some(found) = self.agents.get(ua) {
            return *found;
        }
        let found = machine_agent(ua);
        if self.agents.len() < Self::MAX_REMEMBERED {
            self.agents.insert(ua.to_string(), found);
        }
        found
    }
}

/// An open's or click's verdict as the rollups and the lake record it: `(machine,
/// reason)`; `None` for other events.
pub fn machine_verdict(e: &EventView) -> Option<(bool, &'static str)> {
    match e.kind {
        EventType::Opened => {
            let v = classify_open(e);
            Some((v.class == OpenClass::Machine, v.reason))
        }
        EventType::Clicked => {
            let v = classify_click(e);
            Some((v.class == ClickClass::SuspectedBot, v.reason))
        }
        _ => None,
    }
}

pub fn classify_open(e: &EventView) -> Verdict<OpenClass> {
    open_verdict(e, machine_agent)
}

pub fn classify_click(e: &EventView) -> Verdict<ClickClass> {
    click_verdict(e, machine_agent)
}

fn open_verdict(
    e: &EventView,
    machine_agent: impl FnOnce(&str) -> Option<&'static str>,
) -> Verdict<OpenClass> {
    let ua = e.context.user_agent.as_deref().unwrap_or("");
    let network = e.context.network.as_deref();
    // Gmail fetches images when the message is opened: a human open whose device
    // and place are unknown, not a machine one.
    if ua.contains("GoogleImageProxy") {
        return Verdict {
            class: OpenClass::Human,
            reason: crate::verdict::trail::GMAIL_PROXY_REASON,
        };
    }
    if network == Some(SCANNERS) {
        return Verdict {
            class: OpenClass::Machine,
            reason: "scanner_network",
        };
    }
    if network == Some(PROVIDER_FLAGGED) {
        return Verdict {
            class: OpenClass::Machine,
            reason: "provider_flagged",
        };
    }
    // Apple Mail Privacy Protection sends exactly this, with nothing else; so do some
    // Outlook versions. Apple's egress ranges tell them apart when they are loaded.
    if ua == "Mozilla/5.0" {
        return match network {
            Some(APPLE_PROXY) => Verdict {
                class: OpenClass::Machine,
                reason: "apple_proxy",
            },
            Some(UNLISTED) => Verdict {
                class: OpenClass::Human,
                reason: "bare_agent_outside_apple",
            },
            _ => Verdict {
                class: OpenClass::Machine,
                reason: "apple_mpp_agent",
            },
        };
    }
    if machine_agent(ua).is_some() {
        return Verdict {
            class: OpenClass::Machine,
            reason: "machine_agent",
        };
    }
    if e.context.device_class == Some(DeviceClass::Bot) {
        return Verdict {
            class: OpenClass::Machine,
            reason: "bot_device",
        };
    }
    Verdict {
        class: OpenClass::Human,
        reason: "default",
    }
}

fn click_verdict(
    e: &EventView,
    machine_agent: impl FnOnce(&str) -> Option<&'static str>,
) -> Verdict<ClickClass> {
    let ua = e.context.user_agent.as_deref().unwrap_or("");
    if e.link_url
        .as_deref()
        .is_some_and(crate::verdict::trail::is_honeypot)
    {
        return Verdict {
            class: ClickClass::SuspectedBot,
            reason: "honeypot",
        };
    }
    if machine_agent(ua).is_some() {
        return Verdict {
            class: ClickClass::SuspectedBot,
            reason: "scanner_agent",
        };
    }
    if e.context.network.as_deref() == Some(SCANNERS) {
        return Verdict {
            class: ClickClass::SuspectedBot,
            reason: "scanner_network",
        };
    }
    if e.context.network.as_deref() == Some(PROVIDER_FLAGGED) {
        return Verdict {
            class: ClickClass::SuspectedBot,
            reason: "provider_flagged",
        };
    }
    if e.context.device_class == Some(DeviceClass::Bot) {
        return Verdict {
            class: ClickClass::SuspectedBot,
            reason: "bot_device",
        };
    }
    Verdict {
        class: ClickClass::Human,
        reason: "default",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, RequestContext};

    fn with_agent(kind: EventType, ua: &str) -> Event {
        let now = chrono::Utc::now();
        let mut e = Event::new("e".into(), "t".into(), kind, now, now);
        e.context = crate::event::context::request_context(None, Some(ua), Default::default());
        e
    }

    #[test]
    fn opens() {
        assert_eq!(
            classify_open(&(&with_agent(EventType::Opened, "Mozilla/5.0")).into()).class,
            OpenClass::Machine
        );
        let gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
        assert_eq!(
            classify_open(&(&with_agent(EventType::Opened, gmail)).into()).class,
            OpenClass::Human
        );
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";
        assert_eq!(
            classify_open(&(&with_agent(EventType::Opened, iphone)).into()).class,
            OpenClass::Human
        );
        let mut none = with_agent(EventType::Opened, "x");
        none.context = RequestContext::default();
        assert_eq!(classify_open(&(&none).into()).class, OpenClass::Human);
    }

    #[test]
    fn a_remembering_classifier_agrees_with_the_plain_functions() {
        let agents = [
            "Mozilla/5.0",
            "Mozilla/5.0 (compatible; Barracuda Sentinel)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
            "python-requests/2.31",
            "Mozilla/5.0 (via ggpht.com GoogleImageProxy)",
        ];
        let mut c = Classifier::default();
        for round in 0..2 {
            for ua in agents {
                let open = with_agent(EventType::Opened, ua);
                let click = with_agent(EventType::Clicked, ua);
                let (open, click) = ((&open).into(), (&click).into());
                assert_eq!(c.open(&open), classify_open(&open), "{ua} round {round}");
                assert_eq!(
                    c.click(&click),
                    classify_click(&click),
                    "{ua} round {round}"
                );
            }
        }
        assert_eq!(
            c.agents.len(),
            agents.len(),
            "one entry per agent, however often seen"
        );
    }

    #[test]
    fn networks_tell_apple_from_outlook_and_find_scanners() {
        let with_network = |kind, ua: &str, network: Option<&str>| {
            let mut e = with_agent(kind, ua);
            e.context.network = network.map(str::to_string);
            e
        };
        let open =
            |ua: &str, net| classify_open(&(&with_network(EventType::Opened, ua, net)).into());
        let bare = "Mozilla/5.0";
        assert_eq!(open(bare, Some(APPLE_PROXY)).reason, "apple_proxy");
        let outlook = open(bare, Some(UNLISTED));
        assert_eq!(
            (outlook.class, outlook.reason),
            (OpenClass::Human, "bare_agent_outside_apple")
        );
        assert_eq!(
            open(bare, None).class,
            OpenClass::Machine,
            "no lists: the agent decides"
        );
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0";
        assert_eq!(open(chrome, Some(SCANNERS)).reason, "scanner_network");
        let click =
            classify_click(&(&with_network(EventType::Clicked, chrome, Some(SCANNERS))).into());
        assert_eq!(
            (click.class, click.reason),
            (ClickClass::SuspectedBot, "scanner_network")
        );
        let mut trap = with_agent(EventType::Clicked, chrome);
        trap.link_url = Some("https://shop.example/#beacon-honeypot".into());
        assert_eq!(classify_click(&(&trap).into()).reason, "honeypot");
    }

    #[test]
    fn clicks() {
        let scanner = "Mozilla/5.0 (compatible; Barracuda Sentinel)";
        let v = classify_click(&(&with_agent(EventType::Clicked, scanner)).into());
        assert_eq!(
            (v.class, v.reason),
            (ClickClass::SuspectedBot, "scanner_agent")
        );
        let headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36";
        assert_eq!(
            classify_click(&(&with_agent(EventType::Clicked, headless)).into()).class,
            ClickClass::SuspectedBot
        );
        let desktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
        assert_eq!(
            classify_click(&(&with_agent(EventType::Clicked, desktop)).into()).class,
            ClickClass::Human
        );
    }
}
