//! Labeled traffic: opens and clicks whose truth (a person or a machine) is known, made
//! from the signals that tell them apart in the wild, so a classifier can be measured.
//!
//! [`generate`] builds a seeded campaign's worth of real [`Event`]s (user agent and full
//! IP in the context) with a [`Truth`] and the [`Signals`] the generator used: Apple
//! Mail Privacy Protection prefetches, Gmail's image proxy, people in many mail
//! clients (some Outlook versions with a bare `Mozilla/5.0`), image-fetching gateways
//! and link scanners that click every link within a second of each other. [`evaluate`]
//! measures any classifier on it: precision and recall per class, and the human unique
//! open and click counts against the truth.
//!
//! Labeling convention: every fetch through Apple's proxy is a machine open, including
//! the one that happens when the person reads the mail later. The request carries no
//! evidence of a person (same agent, same egress), so no classifier can count it; the
//! issue's target ("human unique opens within 2% of the truth" on a mix with 30% Apple
//! proxy opens) only makes sense if those opens are outside the human truth. Such
//! fetches are marked [`Signals::with_read`], so an estimator of MPP reads can be
//! measured on the same traffic later.
//!
//! All networks here are samples inside the benchmarking (198.18.0.0/15) and
//! documentation (2001:db8::/32) ranges: without network access Apple's, Google's and
//! the scanners' published ranges can't be fetched, and they change. User agents are
//! shaped like those seen from these clients; the scanner ones are illustrative.

use crate::event::context::{request_context_in, IpPolicy};
use crate::event::{Event, EventType};
use crate::verdict::networks::Networks;
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What really made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Truth {
    /// A person's mail client fetched the pixel.
    HumanOpen,
    /// Gmail's image proxy fetched it because the person opened the message: human,
    /// with device and place unknown.
    GmailProxyOpen,
    /// Apple's proxy fetched it (prefetch on delivery, or a later read through it).
    AppleProxyOpen,
    /// A security gateway or headless browser rendered the message.
    OtherMachineOpen,
    HumanClick,
    /// A security scanner followed the link.
    ScannerClick,
}

impl Truth {
    pub const ALL: [Truth; 6] = [
        Truth::HumanOpen,
        Truth::GmailProxyOpen,
        Truth::AppleProxyOpen,
        Truth::OtherMachineOpen,
        Truth::HumanClick,
        Truth::ScannerClick,
    ];

    pub fn is_human(self) -> bool {
        matches!(
            self,
            Truth::HumanOpen | Truth::GmailProxyOpen | Truth::HumanClick
        )
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Truth::HumanClick | Truth::ScannerClick)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Truth::HumanOpen => "human open",
            Truth::GmailProxyOpen => "gmail proxy open",
            Truth::AppleProxyOpen => "apple proxy open",
            Truth::OtherMachineOpen => "other machine open",
            Truth::HumanClick => "human click",
            Truth::ScannerClick => "scanner click",
        }
    }
}

impl fmt::Display for Truth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the traffic is made of. Shares of opens and of clicks are met in expectation:
/// [`generate`] works out how many recipients read through each kind of mailbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// Messages sent, one per recipient, spread over the campaigns.
    pub recipients: usize,
    pub campaigns: usize,
    /// Share of recipients who read the message at all.
    pub read_rate: f64,
    /// Share of readers who click at least one link.
    pub click_rate: f64,
    /// Share of open events fetched by Apple's proxy.
    pub apple_proxy_share: f64,
    /// Share of open events fetched by Gmail's image proxy.
    pub gmail_proxy_share: f64,
    /// Share of open events from security gateways and headless browsers.
    pub other_machine_open_share: f64,
    /// Share of click events made by link scanners.
    pub scanner_click_share: f64,
    /// Share of scanning gateways that send an ordinary browser agent.
    pub scanner_disguised_share: f64,
    /// Share of human client opens (not Gmail's proxy) from an Outlook sending a bare
    /// `Mozilla/5.0`: the agent Apple's proxy sends, so the agent alone misfires.
    pub outlook_bare_agent_share: f64,
}

impl Mix {
    /// A realistic mix: 30% Apple proxy opens, 10% Gmail proxy opens, 5% scanner
    /// clicks, with 2% security-gateway opens and 2% bare-agent Outlook opens (both
    /// seen in the field, at shares no source puts a number on).
    pub fn realistic() -> Self {
        Mix {
            recipients: 20_000,
            campaigns: 4,
            read_rate: 0.40,
            click_rate: 0.20,
            apple_proxy_share: 0.30,
            gmail_proxy_share: 0.10,
            other_machine_open_share: 0.02,
            scanner_click_share: 0.05,
            scanner_disguised_share: 0.40,
            outlook_bare_agent_share: 0.02,
        }
    }

    pub fn with_recipients(mut self, recipients: usize) -> Self {
        self.recipients = recipients;
        self
    }

    /// Why this mix can't be generated, if it can't.
    pub fn check(&self) -> Result<(), String> {
        let shares = [
            ("read_rate", self.read_rate),
            ("click_rate", self.click_rate),
            ("apple_proxy_share", self.apple_proxy_share),
            ("gmail_proxy_share", self.gmail_proxy_share),
            ("other_machine_open_share", self.other_machine_open_share),
            ("scanner_click_share", self.scanner_click_share),
            ("scanner_disguised_share", self.scanner_disguised_share),
            ("outlook_bare_agent_share", self.outlook_bare_agent_share),
        ];
        if let Some((name, v)) = shares.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            return Err(format!("{name} = {v} is not a share in 0..=1"));
        }
        if self.campaigns == 0 {
            return Err("campaigns must be at least 1".into());
        }
        if self.read_rate == 0.0 || self.click_rate == 0.0 {
            return Err("read_rate and click_rate must be above 0".into());
        }
        if self.scanner_click_share >= 1.0 {
            return Err("scanner_click_share must leave room for human clicks".into());
        }
        let plan = Plan::of(self);
        if plan.client <= 0.0 {
            return Err("the open shares leave no human client opens".into());
        }
        if plan.gateway_open > 1.0 || plan.gateway_click > 1.0 {
            return Err("too few client mailboxes for the gateway shares".into());
        }
        Ok(())
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix::realistic()
    }
}

/// What the generator used to make one event: for diagnostics, and to measure
/// classifiers that will read IP ranges, timing and bursts.
#[derive(Debug, Clone, PartialEq)]
pub struct Signals {
    pub delivered_at: DateTime<Utc>,
    /// Label of the sample network the IP was drawn from.
    pub network: &'static str,
    /// Which client or machine made it (`apple-mpp`, `outlook-bare-agent`, ...).
    pub client: &'static str,
    /// A machine sending an ordinary browser agent.
    pub disguised: bool,
    /// One of several clicks on a message's links from one source within a second.
    pub burst: bool,
    /// An Apple proxy fetch made because the person read the message.
    pub with_read: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Labeled {
    pub event: Event,
    pub truth: Truth,
    pub signals: Signals,
}

impl Labeled {
    pub fn since_delivery(&self) -> TimeDelta {
        self.event.event_time - self.signals.delivered_at
    }
}

/// Sample networks, `(label, CIDR)`. Not Apple's real egress list (see the module
/// doc): distinct made-up ranges, v4 and v6, as Apple's proxy uses both.
pub const SAMPLE_APPLE_EGRESS: [(&str, &str); 3] = [
    ("sample-apple-egress", "198.18.0.0/20"),
    ("sample-apple-egress", "198.18.16.0/20"),
    ("sample-apple-egress", "2001:db8:a000::/40"),
];

/// Sample stand-in for Google's image proxy ranges.
pub const SAMPLE_GOOGLE_PROXY: [(&str, &str); 2] = [
    ("sample-google-proxy", "198.18.64.0/21"),
    ("sample-google-proxy", "2001:db8:6000::/40"),
];

/// The range lists the measured classifier is given, as an operator would load them:
/// all of Apple's (sample) egress, and the networks of two of the four scanners (not
/// every vendor publishes its ranges), so the other two are caught by other signals.
pub fn sample_networks() -> &'static Networks {
    static NETWORKS: std::sync::LazyLock<Networks> = std::sync::LazyLock::new(|| {
        let apple: Vec<&str> = SAMPLE_APPLE_EGRESS.iter().map(|(_, cidr)| *cidr).collect();
        let scanners: Vec<&str> = SCANNERS[..2].iter().map(|s| s.network.1).collect();
        Networks::from_lists(&[
            (crate::verdict::networks::APPLE_PROXY, &apple.join("\n")),
            (crate::verdict::networks::SCANNERS, &scanners.join("\n")),
        ])
        .expect("sample ranges parse")
    });
    &NETWORKS
}

/// Where people are: homes (v4 and v6), mobile carriers, offices.
const SAMPLE_RESIDENTIAL: [(&str, &str); 2] = [
    ("sample-residential", "198.19.0.0/17"),
    ("sample-residential", "2001:db8:1000::/36"),
];
const SAMPLE_MOBILE: (&str, &str) = ("sample-mobile", "198.19.128.0/18");
const SAMPLE_CORPORATE: (&str, &str) = ("sample-corporate", "198.19.192.0/18");

/// A security gateway: what it calls itself when it doesn't hide, and where it runs.
struct Scanner {
    client: &'static str,
    agent: &'static str,
    network: (&'static str, &'static str),
}

/// Illustrative agents and sample networks of four kinds of scanning gateway.
const SCANNERS: [Scanner; 4] = [
    Scanner {
        client: "scanner-barracuda",
        agent: "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        network: ("sample-scanner-barracuda", "198.18.96.0/24"),
    },
    Scanner {
        client: "scanner-mimecast",
        agent: "Mozilla/5.0 (compatible; Mimecast URL Protect)",
        network: ("sample-scanner-mimecast", "198.18.97.0/24"),
    },
    Scanner {
        client: "scanner-proofpoint",
        agent: "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
        network: ("sample-scanner-proofpoint", "198.18.98.0/24"),
    },
    Scanner {
        client: "scanner-safelinks",
        agent: "Mozilla/5.0 (compatible; Microsoft SafeLinks)",
        network: ("sample-scanner-safelinks", "198.18.99.0/24"),
    },
];

/// What disguised scanners and gateways send.
const DISGUISE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
/// Gateways that render mail in a headless browser and say so.
const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36";

pub const APPLE_PROXY_AGENT: &str = "Mozilla/5.0";
pub const GMAIL_PROXY_AGENT: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const SAFARI_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
const CHROME_DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0";
const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";

/// A mail client people read in: the agent its image fetches send, the browser its
/// links open in, and where it usually runs.
struct Client {
    label: &'static str,
    open_agent: &'static str,
    click_agent: &'static str,
    mobile: bool,
    corporate: bool,
    weight: u32,
}

const CLIENTS: [Client; 6] = [
    Client {
        label: "apple-mail-ios",
        open_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        click_agent: SAFARI_IOS,
        mobile: true,
        corporate: false,
        weight: 28,
    },
    Client {
        label: "apple-mail-macos",
        open_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        click_agent: SAFARI_MAC,
        mobile: false,
        corporate: false,
        weight: 8,
    },
    Client {
        label: "outlook-desktop",
        open_agent: "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
        click_agent: EDGE,
        mobile: false,
        corporate: true,
        weight: 25,
    },
    Client {
        label: "thunderbird",
        open_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.9.0",
        click_agent: FIREFOX,
        mobile: false,
        corporate: true,
        weight: 5,
    },
    Client {
        label: "webmail-chrome",
        open_agent: CHROME_DESKTOP,
        click_agent: CHROME_DESKTOP,
        mobile: false,
        corporate: false,
        weight: 20,
    },
    Client {
        label: "android-mail-app",
        open_agent: "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36",
        click_agent: CHROME_ANDROID,
        mobile: true,
        corporate: false,
        weight: 14,
    },
];

/// The confounder: an Outlook that sends exactly what Apple's proxy sends.
const OUTLOOK_BARE: Client = Client {
    label: "outlook-bare-agent",
    open_agent: APPLE_PROXY_AGENT,
    click_agent: EDGE,
    mobile: false,
    corporate: true,
    weight: 0,
};

/// Opens per reader (1, 2, 3) and links clicked per clicker (1, 2, 3), as weights.
const OPENS_PER_READER: [u32; 3] = [60, 28, 12];
const CLICKS_PER_CLICKER: [u32; 3] = [55, 30, 15];
/// Share of readers who open within 30 seconds of delivery: the people that timing
/// rules mistake for gateways.
const EARLY_READ: f64 = 0.03;
/// Chance that a read through Apple's proxy makes it fetch again (its cache expired).
const APPLE_REFETCH: f64 = 0.35;
/// Links per message, per campaign in turn.
const LINKS_PER_CAMPAIGN: [usize; 4] = [3, 4, 5, 6];

fn weighted_mean(weights: &[u32]) -> f64 {
    let total: u32 = weights.iter().sum();
    let sum: f64 = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| (i + 1) as f64 * f64::from(w))
        .sum();
    sum / f64::from(total)
}

fn pick_weighted(rng: &mut StdRng, weights: impl Iterator<Item = u32> + Clone) -> usize {
    let total: u32 = weights.clone().sum();
    let mut x = rng.random_range(0..total);
    for (i, w) in weights.enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    unreachable!("x < total")
}

/// Per-recipient probabilities that meet the mix's per-event shares in expectation.
#[derive(Debug)]
struct Plan {
    /// Recipients whose mail Apple's proxy fetches.
    apple: f64,
    /// Recipients reading in Gmail.
    gmail: f64,
    /// Recipients reading in a client that fetches images itself.
    client: f64,
    /// Of client recipients: behind a gateway that renders the message.
    gateway_open: f64,
    /// Of client recipients: behind a scanner that clicks every link.
    gateway_click: f64,
}

impl Plan {
    fn of(mix: &Mix) -> Plan {
        // Expected open events per recipient of each kind: Apple prefetches every
        // message and may fetch again on a read; the others fetch on each open.
        let opens_per_reader = weighted_mean(&OPENS_PER_READER);
        let apple_opens = 1.0 + mix.read_rate * APPLE_REFETCH;
        let reader_opens = mix.read_rate * opens_per_reader;
        let client_share =
            1.0 - mix.apple_proxy_share - mix.gmail_proxy_share - mix.other_machine_open_share;
        // Opens per recipient T such that kind k has share_k * T opens from
        // share_k * T / opens_k recipients, and those recipients add up to one.
        let opens = 1.0
            / (mix.apple_proxy_share / apple_opens
                + (mix.gmail_proxy_share + client_share) / reader_opens);
        let apple = mix.apple_proxy_share * opens / apple_opens;
        let gmail = mix.gmail_proxy_share * opens / reader_opens;
        let client = client_share * opens / reader_opens;
        // Each gateway renders a message once.
        let gateway_open = mix.other_machine_open_share * opens / client;
        // Every reader may click, whatever the mailbox; a scanner clicks every link.
        let human_clicks = mix.read_rate * mix.click_rate * weighted_mean(&CLICKS_PER_CLICKER);
        let mean_links =
            LINKS_PER_CAMPAIGN.iter().sum::<usize>() as f64 / LINKS_PER_CAMPAIGN.len() as f64;
        let scanned =
            mix.scanner_click_share / (1.0 - mix.scanner_click_share) * human_clicks / mean_links;
        Plan {
            apple,
            gmail,
            client,
            gateway_open,
            gateway_click: scanned / client,
        }
    }
}

/// A random address inside a CIDR, never the network address itself.
fn address_in(rng: &mut StdRng, cidr: &str) -> IpAddr {
    let (base, prefix) = cidr.split_once('/').expect("CIDR");
    let prefix: u32 = prefix.parse().expect("prefix");
    match base.parse::<IpAddr>().expect("address") {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shr(prefix).unwrap_or(0);
            let host = (rng.random::<u32>() & mask).max(1);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) | host))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shr(prefix).unwrap_or(0);
            let host = (rng.random::<u128>() & mask).max(1);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) | host))
        }
    }
}

/// Where a person is, for their own fetches and clicks.
fn home(rng: &mut StdRng, corporate: bool, mobile: bool) -> (&'static str, IpAddr) {
    if mobile && rng.random_bool(0.5) {
        from_nets(rng, &[SAMPLE_MOBILE])
    } else if corporate {
        from_nets(rng, &[SAMPLE_CORPORATE])
    } else {
        from_nets(rng, &SAMPLE_RESIDENTIAL)
    }
}

fn from_nets(rng: &mut StdRng, nets: &[(&'static str, &'static str)]) -> (&'static str, IpAddr) {
    let (label, cidr) = nets[rng.random_range(0..nets.len())];
    (label, address_in(rng, cidr))
}

fn secs(s: f64) -> TimeDelta {
    TimeDelta::milliseconds((s * 1000.0) as i64)
}

fn uniform_secs(rng: &mut StdRng, from: f64, to: f64) -> TimeDelta {
    secs(rng.random_range(from..to))
}

/// Log-uniform: as many reads in the first hour as between one and ten hours.
fn log_uniform_secs(rng: &mut StdRng, from: f64, to: f64) -> TimeDelta {
    secs(rng.random_range(from.ln()..to.ln()).exp())
}

/// When a reader opens the message, after delivery: some at once, most later.
fn read_times(rng: &mut StdRng) -> Vec<TimeDelta> {
    let mut t = if rng.random_bool(EARLY_READ) {
        // Watching the inbox: read within seconds of delivery, as a gateway would.
        uniform_secs(rng, 2.0, 30.0)
    } else if rng.random_bool(0.15) {
        uniform_secs(rng, 30.0, 600.0)
    } else {
        log_uniform_secs(rng, 600.0, 72.0 * 3600.0)
    };
    let n = pick_weighted(rng, OPENS_PER_READER.iter().copied()) + 1;
    let mut times = vec![t];
    for _ in 1..n {
        t += log_uniform_secs(rng, 60.0, 24.0 * 3600.0);
        times.push(t);
    }
    times
}

/// One message to one recipient, and the events it gets.
struct Message<'a> {
    campaign: &'a str,
    links: &'a [String],
    recipient: usize,
    delivered_at: DateTime<Utc>,
    out: &'a mut Vec<Labeled>,
}

impl Message<'_> {
    #[allow(clippy::too_many_arguments)] // one call site per kind of source, each named
    fn push(
        &mut self,
        truth: Truth,
        after: TimeDelta,
        agent: &str,
        (network, ip): (&'static str, IpAddr),
        client: &'static str,
        link: Option<&str>,
        disguised: bool,
        with_read: bool,
    ) {
        let kind = if truth.is_open() {
            EventType::Opened
        } else {
            EventType::Clicked
        };
        let t = self.delivered_at + after;
        // Ids are given once the traffic is in time order.
        let mut e = Event::new(String::new(), "acme".into(), kind, t, t);
        e.campaign_id = Some(self.campaign.to_string());
        e.message_id = Some(format!("m-{:06}", self.recipient));
        e.recipient_id = Some(format!("r-{:06}", self.recipient));
        e.channel = Some("email".into());
        e.provider = Some("ses".into());
        e.link_url = link.map(str::to_string);
        // As the edge builds it: labelled from the full IP against the sample lists
        // (default policy: the stored IP is cut to /24).
        e.context = request_context_in(
            Some(&ip.to_string()),
            Some(agent),
            IpPolicy::Anonymize,
            sample_networks(),
        );
        self.out.push(Labeled {
            event: e,
            truth,
            signals: Signals {
                delivered_at: self.delivered_at,
                network,
                client,
                disguised,
                burst: truth == Truth::ScannerClick && self.links.len() > 1,
                with_read,
            },
        });
    }
}

/// Labeled opens and clicks of `mix.recipients` messages, in time order; the same
/// seed gives the same traffic.
///
/// # Panics
/// If the mix can't be generated ([`Mix::check`] says why).
pub fn generate(mix: &Mix, seed: u64) -> Vec<Labeled> {
    if let Err(why) = mix.check() {
        panic!("{why}");
    }
    let plan = Plan::of(mix);
    let mut rng = StdRng::seed_from_u64(seed);
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z")
        .expect("fixed time")
        .with_timezone(&Utc);
    let campaigns: Vec<(String, Vec<String>, DateTime<Utc>)> = (0..mix.campaigns)
        .map(|c| {
            let name = format!("campaign-{c}");
            let links = (0..LINKS_PER_CAMPAIGN[c % LINKS_PER_CAMPAIGN.len()])
                .map(|l| format!("https://shop.example/{name}/link-{l}"))
                .collect();
            (name, links, start + TimeDelta::hours(3 * c as i64))
        })
        .collect();
    let mut out = Vec::new();
    for recipient in 0..mix.recipients {
        let (campaign, links, sent_at) = &campaigns[recipient % campaigns.len()];
        let mut m = Message {
            campaign,
            links,
            recipient,
            delivered_at: *sent_at + uniform_secs(&mut rng, 0.0, 600.0),
            out: &mut out,
        };
        let reads = if rng.random_bool(mix.read_rate) {
            read_times(&mut rng)
        } else {
            Vec::new()
        };
        let mailbox = rng.random::<f64>() * (plan.apple + plan.gmail + plan.client);
        // The browser a reader's links open in: agent, label, mobile, corporate.
        let browser: (&str, &'static str, bool, bool);
        if mailbox < plan.apple {
            // Prefetched on delivery whether read or not; a read may fetch again.
            let after = uniform_secs(&mut rng, 0.0, 600.0);
            let net = from_nets(&mut rng, &SAMPLE_APPLE_EGRESS);
            m.push(
                Truth::AppleProxyOpen,
                after,
                APPLE_PROXY_AGENT,
                net,
                "apple-mpp",
                None,
                false,
                false,
            );
            if let Some(&first) = reads.first() {
                if rng.random_bool(APPLE_REFETCH) {
                    let net = from_nets(&mut rng, &SAMPLE_APPLE_EGRESS);
                    m.push(
                        Truth::AppleProxyOpen,
                        first,
                        APPLE_PROXY_AGENT,
                        net,
                        "apple-mpp",
                        None,
                        false,
                        true,
                    );
                }
            }
            browser = if rng.random_bool(0.7) {
                (SAFARI_IOS, "apple-mpp-reader", true, false)
            } else {
                (SAFARI_MAC, "apple-mpp-reader", false, false)
            };
        } else if mailbox < plan.apple + plan.gmail {
            for &t in &reads {
                let net = from_nets(&mut rng, &SAMPLE_GOOGLE_PROXY);
                m.push(
                    Truth::GmailProxyOpen,
                    t,
                    GMAIL_PROXY_AGENT,
                    net,
                    "gmail-proxy",
                    None,
                    false,
                    false,
                );
            }
            browser = if rng.random_bool(0.6) {
                (CHROME_DESKTOP, "gmail-reader", false, false)
            } else {
                (CHROME_ANDROID, "gmail-reader", true, false)
            };
        } else {
            let client = if rng.random_bool(mix.outlook_bare_agent_share) {
                &OUTLOOK_BARE
            } else {
                &CLIENTS[pick_weighted(&mut rng, CLIENTS.iter().map(|c| c.weight))]
            };
            for &t in &reads {
                let net = home(&mut rng, client.corporate, client.mobile);
                m.push(
                    Truth::HumanOpen,
                    t,
                    client.open_agent,
                    net,
                    client.label,
                    None,
                    false,
                    false,
                );
            }
            // A gateway scans mail to this mailbox before the person sees it.
            let scanner = &SCANNERS[rng.random_range(0..SCANNERS.len())];
            let disguised = rng.random_bool(mix.scanner_disguised_share);
            if rng.random_bool(plan.gateway_open) {
                let agent = match (disguised, rng.random_bool(0.5)) {
                    (true, _) => DISGUISE,
                    (false, true) => scanner.agent,
                    (false, false) => HEADLESS,
                };
                let after = uniform_secs(&mut rng, 0.0, 30.0);
                let net = from_nets(&mut rng, &[scanner.network]);
                m.push(
                    Truth::OtherMachineOpen,
                    after,
                    agent,
                    net,
                    scanner.client,
                    None,
                    disguised,
                    false,
                );
            }
            if rng.random_bool(plan.gateway_click) {
                // Every link, all within a second, soon after delivery, from one host.
                let first = uniform_secs(&mut rng, 0.0, 29.0);
                let net = from_nets(&mut rng, &[scanner.network]);
                let agent = if disguised { DISGUISE } else { scanner.agent };
                for link in m.links {
                    let after = first + uniform_secs(&mut rng, 0.0, 1.0);
                    m.push(
                        Truth::ScannerClick,
                        after,
                        agent,
                        net,
                        scanner.client,
                        Some(link),
                        disguised,
                        false,
                    );
                }
            }
            browser = (
                client.click_agent,
                client.label,
                client.mobile,
                client.corporate,
            );
        }
        // Readers click a few links, after reading, at a person's pace.
        if !reads.is_empty() && rng.random_bool(mix.click_rate) {
            let n = (pick_weighted(&mut rng, CLICKS_PER_CLICKER.iter().copied()) + 1)
                .min(m.links.len());
            let mut chosen: Vec<&String> = m.links.iter().collect();
            chosen.shuffle(&mut rng);
            let mut t = reads[rng.random_range(0..reads.len())];
            let (agent, label, mobile, corporate) = browser;
            for link in chosen.into_iter().take(n) {
                t += uniform_secs(&mut rng, 3.0, 300.0);
                let net = home(&mut rng, corporate, mobile);
                m.push(
                    Truth::HumanClick,
                    t,
                    agent,
                    net,
                    label,
                    Some(link),
                    false,
                    false,
                );
            }
        }
    }
    out.sort_by_key(|l| l.event.event_time);
    for (i, l) in out.iter_mut().enumerate() {
        l.event.event_id = format!("lab-{i:08}");
    }
    out
}

/// One `message.delivered` event per message with an open or click, for classifiers that
/// time opens and clicks from delivery as the aggregate would see it.
pub fn deliveries(labeled: &[Labeled]) -> Vec<Event> {
    let mut seen = HashSet::new();
    let mut out: Vec<Event> = labeled
        .iter()
        .filter(|l| seen.insert(l.event.message_id.clone()))
        .map(|l| {
            let t = l.signals.delivered_at;
            let mut e = Event::new(
                String::new(),
                l.event.tenant_id.clone(),
                EventType::Delivered,
                t,
                t,
            );
            e.campaign_id = l.event.campaign_id.clone();
            e.message_id = l.event.message_id.clone();
            e.recipient_id = l.event.recipient_id.clone();
            e.channel = l.event.channel.clone();
            e.provider = l.event.provider.clone();
            e
        })
        .collect();
    out.sort_by(|a, b| (a.event_time, &a.message_id).cmp(&(b.event_time, &b.message_id)));
    for (i, e) in out.iter_mut().enumerate() {
        e.event_id = format!("del-{i:08}");
    }
    out
}

/// One class's confusion counts, that class being the positive one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scores {
    pub true_pos: u64,
    pub false_pos: u64,
    pub false_neg: u64,
    pub true_neg: u64,
}

impl Scores {
    /// Of the events called this class, the share that are; `None` if none were.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.true_pos, self.true_pos + self.false_pos)
    }

    /// Of the events of this class, the share called so; `None` if there are none.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.true_pos, self.true_pos + self.false_neg)
    }

    pub fn events(&self) -> u64 {
        self.true_pos + self.false_neg
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Opens or clicks, split by truth (rows) and verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    pub human_as_human: u64,
    pub human_as_machine: u64,
    pub machine_as_human: u64,
    pub machine_as_machine: u64,
}

impl Confusion {
    pub fn human(&self) -> Scores {
        Scores {
            true_pos: self.human_as_human,
            false_pos: self.machine_as_human,
            false_neg: self.human_as_machine,
            true_neg: self.machine_as_machine,
        }
    }

    /// The machine class (bots, for clicks).
    pub fn machine(&self) -> Scores {
        Scores {
            true_pos: self.machine_as_machine,
            false_pos: self.human_as_machine,
            false_neg: self.machine_as_human,
            true_neg: self.human_as_human,
        }
    }

    fn add(&mut self, truth_human: bool, called_human: bool) {
        *match (truth_human, called_human) {
            (true, true) => &mut self.human_as_human,
            (true, false) => &mut self.human_as_machine,
            (false, true) => &mut self.machine_as_human,
            (false, false) => &mut self.machine_as_machine,
        } += 1;
    }
}

/// Distinct recipients per campaign with a human open (or click), as the rollup's
/// unique sets count them: by the truth and by the classifier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UniqueCount {
    pub truth: u64,
    pub measured: u64,
    /// In the truth, not measured.
    pub missed: u64,
    /// Measured, not in the truth.
    pub extra: u64,
}

impl UniqueCount {
    /// (measured - truth) / truth; missed and extra recipients can cancel out here.
    pub fn relative_error(&self) -> Option<f64> {
        (self.truth > 0).then(|| (self.measured as f64 - self.truth as f64) / self.truth as f64)
    }

    pub fn within(&self, tolerance: f64) -> bool {
        self.relative_error().is_some_and(|e| e.abs() <= tolerance)
    }
}

/// How a classifier did on labeled traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    pub opens: Confusion,
    pub clicks: Confusion,
    /// Per truth: events, and how many were called human.
    pub by_truth: BTreeMap<Truth, (u64, u64)>,
    /// Misclassified events per truth and client or machine.
    pub wrong: BTreeMap<(Truth, &'static str), u64>,
    pub unique_opens: UniqueCount,
    pub unique_clicks: UniqueCount,
}

impl Evaluation {
    /// Whether both human unique counts are within `tolerance` of the truth.
    pub fn meets(&self, tolerance: f64) -> bool {
        self.unique_opens.within(tolerance) && self.unique_clicks.within(tolerance)
    }
}

/// Measures a classifier (`is_human` for each open and click) on labeled traffic.
pub fn evaluate(labeled: &[Labeled], mut is_human: impl FnMut(&Event) -> bool) -> Evaluation {
    type Key<'a> = (&'a str, Option<&'a str>, Option<&'a str>);
    let mut ev = Evaluation::default();
    // [opens, clicks] × [truth, measured]
    let mut sets: [[HashSet<Key>; 2]; 2] = Default::default();
    for l in labeled {
        let called = is_human(&l.event);
        let human = l.truth.is_human();
        let kind = usize::from(!l.truth.is_open());
        if kind == 0 {
            ev.opens.add(human, called);
        } else {
            ev.clicks.add(human, called);
        }
        let row = ev.by_truth.entry(l.truth).or_default();
        row.0 += 1;
        row.1 += u64::from(called);
        if called != human {
            *ev.wrong.entry((l.truth, l.signals.client)).or_default() += 1;
        }
        let key = (
            l.event.tenant_id.as_str(),
            l.event.campaign_id.as_deref(),
            l.event.recipient_id.as_deref(),
        );
        if human {
            sets[kind][0].insert(key);
        }
        if called {
            sets[kind][1].insert(key);
        }
    }
    let count = |[truth, measured]: &[HashSet<Key>; 2]| UniqueCount {
        truth: truth.len() as u64,
        measured: measured.len() as u64,
        missed: truth.difference(measured).count() as u64,
        extra: measured.difference(truth).count() as u64,
    };
    ev.unique_opens = count(&sets[0]);
    ev.unique_clicks = count(&sets[1]);
    ev
}

/// Every open's and click's final verdict (event id → human), as the aggregate ends up
/// counting it: the request's own verdict, then each message's trail ([`Trail`])
/// judged with its delivery time, all its opens and clicks, bursts and honeypot, in the
/// order they arrive. `deliveries` are the messages' delivery events.
pub fn final_verdicts(labeled: &[Labeled], deliveries: &[Event]) -> HashMap<String, bool> {
    use crate::verdict::trail::{Hit, Trail};
    let mut classifier = crate::verdict::classify::Classifier::default();
    let mut trails: HashMap<&str, Trail> = HashMap::new();
    let mut ids: HashMap<&str, Vec<&str>> = HashMap::new();
    for d in deliveries {
        if let Some(m) = d.message_id.as_deref() {
            trails
                .entry(m)
                .or_default()
                .deliver(d.event_time.timestamp_millis());
        }
    }
    for l in labeled {
        let e = &l.event;
        let view = e.into();
        let link = e.link_url.as_deref().map(crate::rollup::link_id);
        let Some(hit) = classifier
            .machine(&view)
            .and_then(|verdict| Hit::of(&view, link, verdict))
        else {
            continue;
        };
        let message = e.message_id.as_deref().unwrap_or("");
        trails.entry(message).or_default().add(hit);
        ids.entry(message).or_default().push(&e.event_id);
    }
    let mut out = HashMap::new();
    for (message, trail) in &trails {
        // Trails keep their newest hits; a message here has far fewer.
        for (id, hit) in ids.get(message).into_iter().flatten().zip(&trail.hits) {
            out.insert(id.to_string(), !hit.machine);
        }
    }
    out
}

/// Today's classifier ([`crate::verdict::classify::Classifier`]) as `evaluate` takes it.
pub fn classifier_says_human(c: &mut crate::verdict::classify::Classifier, e: &Event) -> bool {
    !c.machine(&e.into()).is_some_and(|(machine, _)| machine)
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.2}%", v * 100.0))
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<15} {:>7} {:>7} {:>6} {:>6} {:>10} {:>8}",
            "class", "events", "TP", "FP", "FN", "precision", "recall"
        )?;
        for (name, s) in [
            ("open human", self.opens.human()),
            ("open machine", self.opens.machine()),
            ("click human", self.clicks.human()),
            ("click bot", self.clicks.machine()),
        ] {
            writeln!(
                f,
                "{:<15} {:>7} {:>7} {:>6} {:>6} {:>10} {:>8}",
                name,
                s.events(),
                s.true_pos,
                s.false_pos,
                s.false_neg,
                opt_pct(s.precision()),
                opt_pct(s.recall()),
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<19} {:>7} {:>12} {:>14}",
            "truth", "events", "called human", "called machine"
        )?;
        for (truth, (events, human)) in &self.by_truth {
            writeln!(
                f,
                "{:<19} {:>7} {:>12} {:>14}",
                truth.as_str(),
                events,
                human,
                events - human
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<19} {:>7} {:>8} {:>8} {:>7} {:>6}",
            "human unique", "truth", "measured", "error", "missed", "extra"
        )?;
        for (name, u) in [("opens", self.unique_opens), ("clicks", self.unique_clicks)] {
            writeln!(
                f,
                "{:<19} {:>7} {:>8} {:>8} {:>7} {:>6}",
                name,
                u.truth,
                u.measured,
                u.relative_error()
                    .map_or("n/a".into(), |e| format!("{:+.2}%", e * 100.0)),
                u.missed,
                u.extra
            )?;
        }
        if !self.wrong.is_empty() {
            writeln!(f)?;
            writeln!(f, "misclassified, by truth and source:")?;
            for ((truth, client), n) in &self.wrong {
                let to = match (truth.is_human(), truth.is_open()) {
                    (true, true) => "machine",
                    (true, false) => "bot",
                    (false, _) => "human",
                };
                writeln!(
                    f,
                    "  {:<19} {:<26} {:>6} called {to}",
                    truth.as_str(),
                    client,
                    n
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::classify::Classifier;

    fn share(traffic: &[Labeled], of: impl Fn(&Labeled) -> bool, part: Truth) -> f64 {
        let all = traffic.iter().filter(|l| of(l)).count();
        let n = traffic.iter().filter(|l| of(l) && l.truth == part).count();
        n as f64 / all as f64
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic() {
        let mix = Mix::realistic().with_recipients(2_000);
        let a = generate(&mix, 7);
        assert_eq!(a, generate(&mix, 7));
        assert_ne!(a, generate(&mix, 8));
        assert!(a
            .windows(2)
            .all(|w| w[0].event.event_time <= w[1].event.event_time));
    }

    #[test]
    fn the_mix_comes_out_as_asked() {
        let mix = Mix::realistic();
        for seed in [1, 2, 3] {
            let t = generate(&mix, seed);
            let open = |l: &Labeled| l.truth.is_open();
            let click = |l: &Labeled| !l.truth.is_open();
            let apple = share(&t, open, Truth::AppleProxyOpen);
            let gmail = share(&t, open, Truth::GmailProxyOpen);
            let other = share(&t, open, Truth::OtherMachineOpen);
            let scanner = share(&t, click, Truth::ScannerClick);
            assert!((apple - 0.30).abs() < 0.015, "seed {seed}: apple {apple}");
            assert!((gmail - 0.10).abs() < 0.01, "seed {seed}: gmail {gmail}");
            assert!((other - 0.02).abs() < 0.005, "seed {seed}: other {other}");
            assert!(
                (scanner - 0.05).abs() < 0.02,
                "seed {seed}: scanner {scanner}"
            );
            let human_client = t.iter().filter(|l| l.truth == Truth::HumanOpen);
            let (n, bare) = human_client.fold((0, 0), |(n, b), l| {
                (
                    n + 1,
                    b + usize::from(l.signals.client == "outlook-bare-agent"),
                )
            });
            let bare = bare as f64 / n as f64;
            assert!((bare - 0.02).abs() < 0.01, "seed {seed}: bare {bare}");
        }
    }

    #[test]
    fn each_source_carries_its_signals() {
        let t = generate(&Mix::realistic().with_recipients(5_000), 11);
        let ua = |l: &Labeled| l.event.context.user_agent.clone().unwrap();
        let ip = |l: &Labeled| l.event.context.ip.clone().unwrap();
        for l in &t {
            let since = l.since_delivery();
            assert!(since >= TimeDelta::zero(), "{l:?}");
            assert!(ip(l).parse::<IpAddr>().is_ok(), "full IP kept: {l:?}");
            match l.truth {
                Truth::AppleProxyOpen => {
                    assert_eq!(ua(l), "Mozilla/5.0");
                    assert_eq!(l.signals.network, "sample-apple-egress");
                    if !l.signals.with_read {
                        assert!(since <= TimeDelta::minutes(10), "{l:?}");
                    }
                }
                Truth::GmailProxyOpen => {
                    assert!(ua(l).contains("GoogleImageProxy"));
                    assert_eq!(l.signals.network, "sample-google-proxy");
                }
                Truth::ScannerClick => {
                    assert!(since <= TimeDelta::seconds(30), "{l:?}");
                    assert!(l.signals.burst && l.signals.network.starts_with("sample-scanner"));
                }
                Truth::HumanClick | Truth::HumanOpen => {
                    assert!(!l.signals.burst);
                    assert!(!l.signals.network.starts_with("sample-scanner"));
                }
                Truth::OtherMachineOpen => assert!(since <= TimeDelta::seconds(30)),
            }
            assert_eq!(
                l.event.link_url.is_some(),
                !l.truth.is_open(),
                "clicks, and only clicks, have a link"
            );
        }
        // A scanner hits every link of the message within a second.
        let mut bursts: BTreeMap<&str, Vec<&Labeled>> = BTreeMap::new();
        for l in t.iter().filter(|l| l.truth == Truth::ScannerClick) {
            bursts
                .entry(l.event.message_id.as_deref().unwrap())
                .or_default()
                .push(l);
        }
        assert!(!bursts.is_empty());
        for clicks in bursts.values() {
            let links: HashSet<_> = clicks.iter().map(|l| &l.event.link_url).collect();
            let campaign = clicks[0].event.campaign_id.as_deref().unwrap();
            let n: usize = campaign["campaign-".len()..].parse().unwrap();
            assert_eq!(links.len(), LINKS_PER_CAMPAIGN[n % 4]);
            assert_eq!(clicks.len(), links.len());
            let span = clicks.last().unwrap().event.event_time - clicks[0].event.event_time;
            assert!(span <= TimeDelta::seconds(1), "{span}");
        }
        // Both kinds of scanner, and the confounder, are in the traffic.
        assert!(t
            .iter()
            .any(|l| l.truth == Truth::ScannerClick && l.signals.disguised));
        assert!(t
            .iter()
            .any(|l| l.truth == Truth::ScannerClick && !l.signals.disguised));
        assert!(t
            .iter()
            .any(|l| l.signals.client == "outlook-bare-agent" && ua(l) == "Mozilla/5.0"));
        assert!(t.iter().any(|l| l.signals.with_read));
        let delivered = deliveries(&t);
        let messages: HashSet<_> = t.iter().map(|l| &l.event.message_id).collect();
        assert_eq!(delivered.len(), messages.len());
    }

    fn hand_made(truth: Truth, recipient: &str, id: &str) -> Labeled {
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let kind = if truth.is_open() {
            EventType::Opened
        } else {
            EventType::Clicked
        };
        let mut e = Event::new(id.into(), "acme".into(), kind, t, t);
        e.campaign_id = Some("c".into());
        e.recipient_id = Some(recipient.into());
        Labeled {
            event: e,
            truth,
            signals: Signals {
                delivered_at: t,
                network: "n",
                client: "x",
                disguised: false,
                burst: false,
                with_read: false,
            },
        }
    }

    #[test]
    fn evaluate_counts_by_hand() {
        use Truth::*;
        // id ends in h: the classifier calls it human.
        let traffic = [
            hand_made(HumanOpen, "r1", "1h"),        // TP
            hand_made(HumanOpen, "r1", "2h"),        // TP, same recipient
            hand_made(HumanOpen, "r2", "3m"),        // FN: r2 missed
            hand_made(GmailProxyOpen, "r3", "4h"),   // TP
            hand_made(AppleProxyOpen, "r4", "5m"),   // TN
            hand_made(AppleProxyOpen, "r5", "6h"),   // FP: r5 extra
            hand_made(OtherMachineOpen, "r1", "7h"), // FP, r1 already human
            hand_made(HumanClick, "r1", "8h"),       // TP
            hand_made(ScannerClick, "r2", "9m"),     // TN
            hand_made(ScannerClick, "r2", "10h"),    // FP: r2 extra
        ];
        let ev = evaluate(&traffic, |e| e.event_id.ends_with('h'));
        let h = ev.opens.human();
        assert_eq!(
            (h.true_pos, h.false_pos, h.false_neg, h.true_neg),
            (3, 2, 1, 1)
        );
        assert_eq!(h.precision(), Some(3.0 / 5.0));
        assert_eq!(h.recall(), Some(3.0 / 4.0));
        let m = ev.opens.machine();
        assert_eq!(m.precision(), Some(1.0 / 2.0));
        assert_eq!(m.recall(), Some(1.0 / 3.0));
        assert_eq!(ev.clicks.human().precision(), Some(1.0 / 2.0));
        assert_eq!(ev.clicks.human().recall(), Some(1.0));
        assert_eq!(ev.clicks.machine().precision(), Some(1.0));
        assert_eq!(ev.clicks.machine().recall(), Some(1.0 / 2.0));
        assert_eq!(
            ev.unique_opens,
            UniqueCount {
                truth: 3,    // r1 r2 r3
                measured: 3, // r1 r3 r5
                missed: 1,
                extra: 1
            }
        );
        assert_eq!(ev.unique_opens.relative_error(), Some(0.0), "errors cancel");
        assert_eq!(
            ev.unique_clicks,
            UniqueCount {
                truth: 1,
                measured: 2,
                missed: 0,
                extra: 1
            }
        );
        assert_eq!(ev.unique_clicks.relative_error(), Some(1.0));
        assert!(!ev.meets(0.02));
        assert_eq!(ev.by_truth[&ScannerClick], (2, 1));
        assert_eq!(ev.wrong[&(AppleProxyOpen, "x")], 1);
        assert_eq!(ev.wrong.values().sum::<u64>(), 4);
        assert_eq!(Scores::default().precision(), None);
        let table = ev.to_string();
        assert!(table.contains("open human"), "{table}");
        assert!(table.contains("+100.00%"), "{table}");
    }

    #[test]
    fn what_todays_classifier_gets_right() {
        let t = generate(&Mix::realistic(), 1);
        let mut c = Classifier::default();
        let verdicts: Vec<bool> = t
            .iter()
            .map(|l| classifier_says_human(&mut c, &l.event))
            .collect();
        for (l, &human) in t.iter().zip(&verdicts) {
            match l.truth {
                // The bare agent is Apple's proxy's signature...
                Truth::AppleProxyOpen => assert!(!human, "{l:?}"),
                // ...Gmail's proxy means a person opened it...
                Truth::GmailProxyOpen => assert!(human, "{l:?}"),
                // ...and named scanners and headless browsers give themselves away.
                Truth::ScannerClick | Truth::OtherMachineOpen if !l.signals.disguised => {
                    assert!(!human, "{l:?}")
                }
                // People's browsers are never taken for bots.
                Truth::HumanClick => assert!(human, "{l:?}"),
                // Mail clients other than the bare-agent Outlook are human (that one is
                // the known misfire, measured by the benchmark, not pinned here).
                Truth::HumanOpen if l.signals.client != "outlook-bare-agent" => {
                    assert!(human, "{l:?}")
                }
                _ => {}
            }
        }
        // Its known limits, measured here and reported by the benchmark, not asserted:
        // disguised scanners pass as people, bare-agent Outlook opens as Apple's proxy.
        let ev = evaluate(&t, |e| classifier_says_human(&mut c, e));
        assert_eq!(ev.by_truth[&Truth::AppleProxyOpen].1, 0);
        assert!(ev.opens.machine().recall().unwrap() > 0.9);
    }

    #[test]
    fn as_counted_a_realistic_mix_is_within_two_percent_without_errors_cancelling() {
        let t = generate(&Mix::realistic(), 2);
        let verdicts = final_verdicts(&t, &deliveries(&t));
        let ev = evaluate(&t, |e| verdicts[&e.event_id]);
        assert!(ev.meets(0.02), "{ev}");
        // Missed and extra recipients each stay under 1%: the target is not met by
        // two larger errors cancelling.
        for u in [ev.unique_opens, ev.unique_clicks] {
            assert!(u.missed * 100 < u.truth && u.extra * 100 < u.truth, "{ev}");
        }
        // Bare-agent Outlook opens from outside Apple's ranges are people's now...
        let outlook = t
            .iter()
            .filter(|l| l.signals.client == "outlook-bare-agent" && l.truth.is_open());
        assert!(outlook.clone().count() > 0);
        assert!(outlook.clone().all(|l| verdicts[&l.event.event_id]), "{ev}");
        // ...and every scanner click of the generator is a bot's (they come in bursts).
        assert_eq!(ev.by_truth[&Truth::ScannerClick].1, 0, "{ev}");
        // The trail only ever turns request-human verdicts into machine ones here.
        let mut c = Classifier::default();
        for l in &t {
            if !classifier_says_human(&mut c, &l.event) {
                assert!(!verdicts[&l.event.event_id], "{l:?}");
            }
        }
    }

    #[test]
    fn impossible_mixes_are_explained() {
        let mut mix = Mix::realistic();
        mix.apple_proxy_share = 0.7;
        mix.gmail_proxy_share = 0.3;
        assert!(mix.check().unwrap_err().contains("no human client opens"));
        mix.apple_proxy_share = 1.5;
        assert!(mix.check().unwrap_err().contains("apple_proxy_share"));
    }
}
