//! The demo: a simulated campaign driven through the real HTTP endpoints.
//!
//! 1. provision the stack in the emulator from the SAM template;
//! 2. start the local gateway with the three HTTP functions;
//! 3. issue an API key and instrument the campaign email for every recipient;
//! 4. deliver the sends, outcomes and complaints as Amazon SES events through the
//!    EventBridge rule's function (`senders`), send a second small campaign's outcomes
//!    as signed SendGrid and Twilio webhooks, fetch pixels and follow clicks as the
//!    recipients and the machines in front of them would ([`Mailbox`]: Apple's and
//!    Gmail's proxies, a scanning gateway that follows the honeypot), and post
//!    conversions and unsubscribes to collect;
//! 5. read the stream back and compare it with the simulator's ground truth;
//! 6. aggregate it into the rollups and ask the stats API;
//! 7. build the lake (ETL consumer, then the compaction function) and query it with
//!    DuckDB, as an analyst would;
//! 8. define a daily report of the campaign and trigger the report function as the
//!    hourly schedule would once the day has closed: the files go to S3 (copied to
//!    `out/reports/`) and the email through SES; a second trigger sends nothing;
//! 9. send a second campaign with a bounce spike and run the alerts function as its
//!    schedule would: the SES bounce-rate rule fires once (SES email and a signed
//!    webhook to a local receiver, whose signature is verified), a second run sends
//!    nothing, the monthly budget notice goes out, and the stats API shows the bounced
//!    recipients suppressed and the recipients' engagement segments;
//! 10. sign a dashboard link for the tenant and screenshot every page through it into
//!     `out/dashboard/`; then, if asked ([`DemoOptions::serve`]), keep serving until
//!     Ctrl-C.

use crate::gateway::{self, GatewayOptions};
use crate::stack::{self, Stack};
use crate::stream;
use anyhow::{bail, ensure, Context as _, Result};
use beacon_aws::dynamo::apikeys::DynamoApiKeys;
use beacon_domain::apikey::{hash_api_key, new_api_key, ApiKeyRecord, ApiKeyStore};
use beacon_domain::config::Env;
use beacon_domain::tracking::token::Recipient;
use beacon_instrument::{instrument_html_with, LinkSigner, Options};
use futures::stream::{self as futures_stream, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

pub const TENANT: &str = "demo";
const CONCURRENCY: usize = 16;

/// The campaign email every recipient gets (personalized by instrumentation).
pub const CAMPAIGN_HTML: &str = include_str!("../assets/campaign.html");

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub recipients: usize,
    pub seed: u64,
    pub out_dir: PathBuf,
    pub stack_name: String,
    /// Keep serving the dashboard after the demo, until Ctrl-C.
    pub serve: bool,
}

/// What happens to one recipient, decided up front: the ground truth.
#[derive(Debug, Clone)]
pub struct RecipientPlan {
    pub recipient: Recipient,
    pub outcome: Outcome,
    pub mailbox: Mailbox,
    /// The person's own opens (through Gmail's proxy for a Gmail mailbox).
    pub opens: u32,
    /// Indexes into the email's tracked links: the person's clicks.
    pub clicks: Vec<usize>,
    pub complains: bool,
    pub unsubscribes: bool,
    pub conversion: Option<f64>,
    pub user_agent: &'static str,
    pub ip: String,
}

/// What fetches the recipient's mail besides the person, as the field has it: the
/// machine traffic the demo's numbers must keep apart from the people's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mailbox {
    /// The person's own mail client fetches the pixel.
    Plain,
    /// Apple Mail Privacy Protection: Apple's proxy fetches the pixel once for every
    /// delivered message, with its bare `Mozilla/5.0` agent, whether or not the person
    /// reads it; the person's own reading fetches nothing more (a machine open), but
    /// their clicks are theirs.
    AppleProxy,
    /// Gmail: the pixel is fetched through Google's image proxy when the person opens
    /// (a human open whose device and place are unknown).
    GmailProxy,
    /// A corporate mail gateway scans every delivered message: it renders the mail and
    /// follows every link, the invisible honeypot link included, within a second, with
    /// a desktop browser's agent from a data-centre address. Its person does not engage
    /// (so the truth stays exact: the scan's own hits are all the message gets).
    Scanned,
}

/// The share of recipients with each kind of mailbox (the rest are [`Mailbox::Plain`]).
const APPLE_PROXY_SHARE: f64 = 0.20;
const GMAIL_PROXY_SHARE: f64 = 0.15;
const SCANNED_SHARE: f64 = 0.04;

/// The agents of the machines in [`Mailbox`].
const APPLE_PROXY_AGENT: &str = "Mozilla/5.0";
const GMAIL_PROXY_AGENT: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
const SCANNER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

impl RecipientPlan {
    fn delivered(&self) -> bool {
        self.outcome == Outcome::Delivered
    }

    /// Pixel fetches by machines: Apple's proxy's, or the scanning gateway's render.
    pub fn machine_opens(&self) -> u64 {
        match self.mailbox {
            Mailbox::AppleProxy | Mailbox::Scanned => self.delivered() as u64,
            Mailbox::Plain | Mailbox::GmailProxy => 0,
        }
    }

    /// Clicks by the scanning gateway: every tracked link and the honeypot.
    pub fn bot_clicks(&self, links: usize) -> u64 {
        match self.mailbox {
            Mailbox::Scanned if self.delivered() => links as u64 + 1,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    HardBounce,
    SoftBounce,
    Failed,
}

const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 Edg/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
];

/// Draws the campaign: who gets the mail, who opens, clicks, converts.
pub fn plan_campaign(
    campaign: &str,
    recipients: usize,
    links: usize,
    seed: u64,
) -> Vec<RecipientPlan> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..recipients)
        .map(|i| {
            let roll: f64 = rng.random();
            let outcome = match roll {
                r if r < 0.02 => Outcome::HardBounce,
                r if r < 0.04 => Outcome::SoftBounce,
                r if r < 0.05 => Outcome::Failed,
                _ => Outcome::Delivered,
            };
            let delivered = outcome == Outcome::Delivered;
            let opens = if delivered && rng.random_bool(0.45) {
                rng.random_range(1..=3)
            } else {
                0
            };
            let clicks = if opens > 0 && rng.random_bool(0.3) {
                (0..rng.random_range(1..=2))
                    .map(|_| rng.random_range(0..links))
                    .collect()
            } else {
                Vec::new()
            };
            let conversion = (!clicks.is_empty() && rng.random_bool(0.2))
                .then(|| (rng.random_range(1000..20000) as f64) / 100.0);
            let complains = delivered && rng.random_bool(0.002);
            let unsubscribes = opens > 0 && rng.random_bool(0.01);
            let user_agent = AGENTS[rng.random_range(0..AGENTS.len())];
            let ip = format!(
                "198.51.{}.{}",
                rng.random_range(0..=255),
                rng.random_range(1..=254)
            );
            let mailbox = match rng.random::<f64>() {
                r if r < APPLE_PROXY_SHARE => Mailbox::AppleProxy,
                r if r < APPLE_PROXY_SHARE + GMAIL_PROXY_SHARE => Mailbox::GmailProxy,
                r if r < APPLE_PROXY_SHARE + GMAIL_PROXY_SHARE + SCANNED_SHARE => Mailbox::Scanned,
                _ => Mailbox::Plain,
            };
            let person_engages = mailbox != Mailbox::Scanned;
            RecipientPlan {
                recipient: Recipient {
                    tenant_id: TENANT.into(),
                    campaign_id: campaign.into(),
                    message_id: format!("{campaign}-m{i:05}"),
                    recipient_id: format!("r{i:05}"),
                },
                outcome,
                mailbox,
                // Apple's proxy has fetched the pixel already: reading fetches nothing.
                opens: match mailbox {
                    Mailbox::AppleProxy | Mailbox::Scanned => 0,
                    Mailbox::Plain | Mailbox::GmailProxy => opens,
                },
                clicks: if person_engages { clicks } else { Vec::new() },
                complains,
                unsubscribes: person_engages && unsubscribes,
                conversion: conversion.filter(|_| person_engages),
                user_agent,
                ip,
            }
        })
        .collect()
}

/// Events per type the plan must produce, for an email with `links` tracked links.
pub fn expected_counts(plan: &[RecipientPlan], links: usize) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let mut add = |kind: &str, n: u64| {
        if n > 0 {
            *counts.entry(kind.to_string()).or_insert(0) += n;
        }
    };
    for r in plan {
        add("message.sent", 1);
        match r.outcome {
            Outcome::Delivered => add("message.delivered", 1),
            Outcome::HardBounce | Outcome::SoftBounce => add("message.bounced", 1),
            Outcome::Failed => add("message.failed", 1),
        }
        add("message.opened", r.opens as u64 + r.machine_opens());
        add("link.clicked", r.clicks.len() as u64 + r.bot_clicks(links));
        add("message.complained", r.complains as u64);
        add("message.unsubscribed", r.unsubscribes as u64);
        add("conversion", r.conversion.is_some() as u64);
    }
    counts
}

/// Progress on stderr: a line at every quarter, so long steps show they move.
struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    next_mark: usize,
}

impl Progress {
    fn new(label: &'static str, total: usize) -> Self {
        eprintln!("  {label}: 0/{total}");
        Progress {
            label,
            total,
            done: 0,
            next_mark: total.div_ceil(4),
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        if self.done >= self.next_mark || self.done == self.total {
            eprintln!("  {}: {}/{}", self.label, self.done, self.total);
            self.next_mark = self.done + self.total.div_ceil(4);
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DemoSummary {
    pub campaign: String,
    pub tenant: String,
    pub recipients: usize,
    pub seed: u64,
    pub gateway: String,
    pub stream: String,
    pub requests: BTreeMap<String, u64>,
    pub truth: BTreeMap<String, u64>,
    pub stream_counts: BTreeMap<String, u64>,
    /// The campaign's numbers as the stats API reports them, after aggregation.
    pub stats_truth: BTreeMap<String, u64>,
    pub stats: BTreeMap<String, u64>,
    /// The stats API's overview, as returned.
    pub overview: Value,
    /// The lake: what compaction did, and DuckDB's counts of the campaign next to the
    /// rollups' (`lake_counts` against `stats`).
    pub lake: Value,
    pub lake_counts: BTreeMap<String, u64>,
    /// The report: the schedule's outcome, its files (S3 keys and local copies), the
    /// SES message, and what a second trigger did.
    pub report: Value,
    /// The bounce-spike campaign and what the alerts function did about it; the
    /// suppression list and engagement segments as the stats API gives them.
    pub alerts: Value,
    /// The rollups' numbers the lake must equal ([`LAKE_AGREES`]), next to `lake_counts`.
    pub rollup_totals: BTreeMap<String, u64>,
    /// The dashboard's signed link and the screenshots taken through it.
    pub dashboard: Value,
    /// The providers' side: SES events through the EventBridge path, and the webhook
    /// campaign's numbers (SendGrid, Twilio) against its truth; addresses found in the
    /// stream (must be none).
    pub senders: Value,
    pub matches: bool,
    pub elapsed_ms: u128,
}

fn step(n: usize, text: &str) {
    eprintln!("[{n}/10] {text}");
}

/// What the stats API must report for the campaign, from the plan alone: the people's
/// opens and clicks apart from the machines' (see [`Mailbox`]).
pub fn expected_stats(plan: &[RecipientPlan], links: usize) -> BTreeMap<String, u64> {
    let counts = expected_counts(plan, links);
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let sum = |f: &dyn Fn(&RecipientPlan) -> u64| plan.iter().map(f).sum::<u64>();
    BTreeMap::from([
        ("sent".to_string(), get("message.sent")),
        ("delivered".into(), get("message.delivered")),
        (
            "bounced_hard".into(),
            sum(&|r| (r.outcome == Outcome::HardBounce) as u64),
        ),
        (
            "bounced_soft".into(),
            sum(&|r| (r.outcome == Outcome::SoftBounce) as u64),
        ),
        ("failed".into(), get("message.failed")),
        ("complained".into(), get("message.complained")),
        ("unsubscribed".into(), get("message.unsubscribed")),
        ("opens_human".into(), sum(&|r| r.opens as u64)),
        ("opens_machine".into(), sum(&|r| r.machine_opens())),
        ("clicks_human".into(), sum(&|r| r.clicks.len() as u64)),
        ("clicks_bot".into(), sum(&|r| r.bot_clicks(links))),
        ("conversions".into(), get("conversion")),
        ("unique_opens".into(), sum(&|r| (r.opens > 0) as u64)),
        (
            "unique_clicks".into(),
            sum(&|r| !r.clicks.is_empty() as u64),
        ),
    ])
}

/// The counts the lake must agree with the rollups on. Its `machine` column is each
/// request's own verdict, while the rollups also hold the trail's late verdicts (a
/// scanner's clicks found by the honeypot, bursts, on delivery): so the human and
/// machine columns may differ, and their sums may not.
pub const LAKE_AGREES: [&str; 10] = [
    "sent",
    "delivered",
    "bounced_hard",
    "bounced_soft",
    "failed",
    "complained",
    "unsubscribed",
    "conversions",
    "opens",
    "clicks",
];

/// Runs the demo against the emulator at `endpoint`.
pub async fn run(endpoint: &str, options: &DemoOptions) -> Result<DemoSummary> {
    let started = Instant::now();
    step(
        1,
        &format!(
            "provisioning stack `{}` from infra/template.yaml",
            options.stack_name
        ),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    let base_url = format!("http://{addr}");
    let stack: Stack = stack::provision(endpoint, &options.stack_name, &base_url)?;
    let aws = beacon_aws::config::aws_config().await;

    step(2, "starting the local API gateway");
    let gw = gateway::start(
        &stack,
        &aws,
        addr,
        GatewayOptions {
            trust_forwarded_for: true,
        },
    )
    .await?;
    for route in &gw.routes {
        eprintln!("  route {route} -> {}", gw.url);
    }

    let mut consumers = crate::consumers::build(&stack, &aws)?;
    let mut summary = match drive(&stack, &aws, &gw.url, options, started, &mut consumers).await {
        Ok(summary) => summary,
        Err(e) => {
            gw.stop().await;
            return Err(e);
        }
    };
    match show_dashboard(&stack, &aws, &gw.url, &summary, &options.out_dir).await {
        Ok(dashboard) => summary.dashboard = dashboard,
        Err(e) => {
            gw.stop().await;
            return Err(e);
        }
    }
    summary.elapsed_ms = started.elapsed().as_millis();
    std::fs::create_dir_all(&options.out_dir)?;
    let path = options.out_dir.join("demo-summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
    eprintln!("summary written to {}", path.display());
    println!();
    println!("dashboard of tenant `{TENANT}` (a read-only link, for 2 days):");
    println!("  {}", summary.dashboard["link"].as_str().unwrap_or("-"));
    if options.serve && summary.matches {
        // The stream keeps being drained, so events sent now show in the live view.
        let polling = crate::consumers::poll_forever(consumers);
        eprintln!(
            "serving the dashboard and the API on {} (Ctrl-C to stop)",
            gw.url
        );
        let stopped = tokio::signal::ctrl_c().await;
        polling.abort();
        gw.stop().await;
        stopped?;
    } else {
        gw.stop().await;
    }
    Ok(summary)
}

async fn drive(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    gateway_url: &str,
    options: &DemoOptions,
    started: Instant,
    consumers: &mut [crate::consumers::StreamConsumer],
) -> Result<DemoSummary> {
    step(
        3,
        &format!(
            "instrumenting the campaign email for {} recipients",
            options.recipients
        ),
    );
    let (_, collect_fn) = stack
        .function("collect")
        .context("collect function in the template")?;
    let (_, open_fn) = stack
        .function("open-pixel")
        .context("open-pixel function in the template")?;
    let api_keys_table = collect_fn
        .env
        .get("BEACON_API_KEYS_TABLE")
        .context("BEACON_API_KEYS_TABLE")?;
    let api_key = new_api_key();
    DynamoApiKeys::new(aws_sdk_dynamodb::Client::new(aws), api_keys_table)
        .save(&ApiKeyRecord {
            key_hash: hash_api_key(&api_key),
            tenant_id: TENANT.into(),
            name: "demo".into(),
            created_at: chrono::Utc::now().to_rfc3339(),
            revoked: false,
        })
        .await?;
    // The operator derives the tenant's key from the keyring the functions verify with
    // (the secret) and hands it over; the sender signs with that key alone.
    let keyring = beacon_aws::config::keyring(&Env::from_map(open_fn.env.clone()), aws).await?;
    let tenant_key = keyring.tenant_key(TENANT, None)?;
    let public_base = open_fn
        .env
        .get("BEACON_PUBLIC_BASE_URL")
        .cloned()
        .unwrap_or_else(|| gateway_url.to_string());
    let signer = LinkSigner::new(&tenant_key, &public_base)?;
    let campaign = format!("spring-sale-{}", options.seed);
    let expires = (chrono::Utc::now().timestamp() + 90 * 86400) as u32;
    // With the invisible honeypot link, which only a scanner follows.
    let with_honeypot = Options { honeypot: true };
    let probe = instrument_html_with(
        CAMPAIGN_HTML,
        &signer,
        &Recipient {
            tenant_id: TENANT.into(),
            campaign_id: campaign.clone(),
            message_id: "probe".into(),
            recipient_id: "probe".into(),
        },
        expires,
        with_honeypot,
    )?;
    let plan = plan_campaign(
        &campaign,
        options.recipients,
        probe.links_tracked,
        options.seed,
    );
    let mut emails = Vec::with_capacity(plan.len());
    for r in &plan {
        let out =
            instrument_html_with(CAMPAIGN_HTML, &signer, &r.recipient, expires, with_honeypot)?;
        ensure!(
            out.pixel_inserted && out.honeypot_inserted && out.links_tracked == probe.links_tracked,
            "instrumentation changed between recipients"
        );
        emails.push(out.html);
    }
    eprintln!(
        "  {} tracked links, the honeypot and one pixel per email",
        probe.links_tracked
    );
    let links = probe.links_tracked;
    let count = |m: Mailbox| plan.iter().filter(|r| r.mailbox == m).count();
    eprintln!(
        "  mailboxes: {} behind Apple's proxy, {} Gmail, {} scanned by a gateway, {} plain",
        count(Mailbox::AppleProxy),
        count(Mailbox::GmailProxy),
        count(Mailbox::Scanned),
        count(Mailbox::Plain)
    );

    step(4, "driving the campaign through the gateway over HTTP");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let collect_url = format!("{gateway_url}/v1/events");
    let mut requests: BTreeMap<String, u64> = BTreeMap::new();

    // Sends, deliveries, bounces and rendering failures come from SES, through the
    // EventBridge rule's function; delivered a while before anyone reads the mail (an
    // open or click within seconds of delivery is a gateway's).
    let delivered_at = chrono::Utc::now() - chrono::Duration::minutes(10);
    let sent_at = delivered_at - chrono::Duration::seconds(5);
    let ses_events = crate::senders::ses_events(&plan, sent_at, delivered_at);
    let invocations = crate::senders::deliver_ses_events(stack, aws, ses_events).await?;
    requests.insert("ses_eventbridge".into(), invocations);
    eprintln!(
        "  {invocations} SES events (sends, outcomes, complaints) through the EventBridge rule's function"
    );
    // A second, small campaign whose senders call back over HTTP.
    let hooks =
        crate::senders::webhook_campaign(stack, aws, &http, gateway_url, options.seed).await?;
    for (k, v) in &hooks.requests {
        requests.insert(format!("webhook_{k}"), *v);
    }
    eprintln!(
        "  campaign `{}`: SendGrid and Twilio outcomes through signed webhooks",
        hooks.campaign
    );

    // Opens and clicks, many recipients at once, as mail clients and the machines in
    // front of them would.
    let engaged: Vec<(usize, &RecipientPlan)> = plan
        .iter()
        .enumerate()
        .filter(|(_, r)| r.opens > 0 || !r.clicks.is_empty() || r.machine_opens() > 0)
        .collect();
    let mut progress = Progress::new(
        "recipients (and their machines) opening and clicking",
        engaged.len(),
    );
    let mut tasks = futures_stream::iter(engaged.into_iter().map(|(i, r)| {
        let http = http.clone();
        let html = emails[i].clone();
        async move { act_as_recipient(&http, &html, r, links).await }
    }))
    .buffer_unordered(CONCURRENCY);
    while let Some(done) = tasks.next().await {
        let (opens, clicks) = done?;
        *requests.entry("pixel".into()).or_default() += opens;
        *requests.entry("click".into()).or_default() += clicks;
        progress.tick();
    }
    drop(tasks);

    let after: Vec<Value> = plan
        .iter()
        .flat_map(|r| {
            let ids = json!({"campaign_id": campaign, "message_id": r.recipient.message_id, "recipient_id": r.recipient.recipient_id});
            let with = |kind: &str, extra: Value| {
                let mut e = ids.as_object().cloned().unwrap_or_default();
                e.insert("type".into(), json!(kind));
                e.insert("event_id".into(), json!(format!("{}-{kind}", r.recipient.message_id)));
                if let Value::Object(x) = extra {
                    e.extend(x);
                }
                Value::Object(e)
            };
            let mut out = Vec::new();
            if r.unsubscribes {
                out.push(with("message.unsubscribed", json!({})));
            }
            if let Some(value) = r.conversion {
                out.push(with("conversion", json!({"value": value, "currency": "USD"})));
            }
            out
        })
        .collect();
    post_json_batches(&http, &collect_url, &api_key, &after, &mut requests).await?;

    step(
        5,
        "reading the stream back and comparing with the ground truth",
    );
    let stream_name = collect_fn
        .env
        .get("BEACON_STREAM_NAME")
        .context("BEACON_STREAM_NAME")?;
    let events = stream::read_all(&aws_sdk_kinesis::Client::new(aws), stream_name).await?;
    let mut stream_counts: BTreeMap<String, u64> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.campaign_id.as_deref() == Some(campaign.as_str()))
    {
        *stream_counts.entry(e.kind.to_string()).or_default() += 1;
    }
    let truth = expected_counts(&plan, links);
    // The providers' events named recipients by address; none may reach the stream.
    let addresses_in_stream = events
        .iter()
        .filter(|e| {
            serde_json::to_string(e)
                .unwrap_or_default()
                .contains(crate::senders::ADDRESS_DOMAIN)
        })
        .count();

    step(
        6,
        "aggregating the stream into the rollups and asking the stats API",
    );
    for consumer in consumers.iter_mut() {
        let stats = consumer.drain().await?;
        eprintln!(
            "  {}: {} records in {} invocations",
            consumer.name, stats.records, stats.invocations
        );
    }
    let overview: Value = http
        .get(format!("{gateway_url}/v1/campaigns/{campaign}"))
        .bearer_auth(&api_key)
        .send()
        .await?
        .error_for_status()
        .context("stats API")?
        .json()
        .await?;
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    let stats_truth = expected_stats(&plan, links);
    for name in stats_truth.keys() {
        let value = match name.as_str() {
            "unique_opens" => &overview["unique"]["opens_human"],
            "unique_clicks" => &overview["unique"]["clicks_human"],
            other => &overview["counts"][other],
        };
        stats.insert(name.clone(), value.as_u64().unwrap_or(0));
    }
    let hooks_overview: Value = http
        .get(format!("{gateway_url}/v1/campaigns/{}", hooks.campaign))
        .bearer_auth(&api_key)
        .send()
        .await?
        .error_for_status()
        .context("stats API")?
        .json()
        .await?;
    let hooks_stats: BTreeMap<String, u64> = hooks
        .truth
        .keys()
        .map(|k| (k.clone(), hooks_overview["counts"][k].as_u64().unwrap_or(0)))
        .collect();
    let senders = json!({
        "ses_events": requests.get("ses_eventbridge"),
        "webhook_campaign": hooks.campaign,
        "truth": hooks.truth,
        "stats": hooks_stats,
        "addresses_in_stream": addresses_in_stream,
        // Every record on the demo's stream: both campaigns.
        "stream_events": events.len(),
    });
    let senders_ok = hooks_stats == hooks.truth && addresses_in_stream == 0;
    step(
        7,
        "building the lake (ETL, compaction) and querying it with DuckDB",
    );
    let (lake, lake_counts) = build_and_query_lake(stack, aws, &campaign, &options.out_dir).await?;
    let rollup_totals: BTreeMap<String, u64> = LAKE_AGREES
        .iter()
        .map(|name| {
            let get = |k: &str| stats.get(k).copied().unwrap_or(0);
            let value = match *name {
                "opens" => get("opens_human") + get("opens_machine"),
                "clicks" => get("clicks_human") + get("clicks_bot"),
                other => get(other),
            };
            (name.to_string(), value)
        })
        .collect();
    let lake_matches = rollup_totals
        .iter()
        .all(|(name, v)| lake_counts.get(name) == Some(v));
    step(
        8,
        "rendering the campaign's daily report to S3 and sending it through SES",
    );
    let report = send_report(stack, aws, &campaign, &options.out_dir).await?;
    let report_once = report["second_trigger_sent"] == 0 && report["sent"] == 1;
    step(
        9,
        "a campaign with a bounce spike: alerts, suppression list, engagement segments",
    );
    let alerts = bounce_spike(
        stack,
        aws,
        &http,
        gateway_url,
        &api_key,
        &campaign,
        &plan,
        consumers,
    )
    .await?;
    let alerts_ok = alerts["ok"] == true;
    let summary = DemoSummary {
        campaign,
        tenant: TENANT.into(),
        recipients: plan.len(),
        seed: options.seed,
        gateway: gateway_url.to_string(),
        stream: stream_name.clone(),
        requests,
        matches: truth == stream_counts
            && stats_truth == stats
            && lake_matches
            && report_once
            && alerts_ok
            && senders_ok,
        truth,
        stream_counts,
        stats_truth,
        stats,
        overview,
        lake,
        lake_counts,
        rollup_totals,
        dashboard: Value::Null,
        report,
        alerts,
        senders,
        elapsed_ms: started.elapsed().as_millis(),
    };
    print_table(&summary);
    Ok(summary)
}

/// Step 10: a signed dashboard link for the demo's tenant, and a screenshot of every
/// page through it in `out/dashboard/`.
async fn show_dashboard(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    gateway_url: &str,
    summary: &DemoSummary,
    out_dir: &std::path::Path,
) -> Result<Value> {
    step(
        10,
        "the dashboard: a signed link, and a screenshot of every page",
    );
    let link = crate::dashboard::link(stack, aws, TENANT, gateway_url, "make demo").await?;
    let folder = out_dir.join("dashboard");
    let shots = crate::dashboard::screenshots(&link, &summary.campaign, &folder)?;
    eprintln!("  {} screenshots in {}", shots.len(), folder.display());
    Ok(json!({"link": link, "screenshots": shots}))
}

/// The lake after the campaign: the ETL consumer has drained the stream with the
/// others; compaction runs as the hourly schedule would once the campaign's hour has
/// closed; the curated objects are copied to `out/lake/` and read by DuckDB
/// (`scripts/lake_query.py`). Returns the lake's summary and the campaign's counts.
async fn build_and_query_lake(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    campaign: &str,
    out_dir: &std::path::Path,
) -> Result<(Value, BTreeMap<String, u64>)> {
    use beacon_lake::{LakeStore, Partition, CURATED_PREFIX, STAGING_PREFIX};
    let (_, compact_fn) = stack
        .function("compact")
        .context("compact function in the template")?;
    let compactor =
        compact_function::CompactApp::from_env(&Env::from_map(compact_fn.env.clone()), aws)?;
    let staged = compactor.lake.list(STAGING_PREFIX).await?;
    eprintln!(
        "  staging: {} Parquet pieces from the etl consumer",
        staged.len()
    );
    let as_of = Partition::of(chrono::Utc::now()).end() + compactor.grace;
    let scheduled: aws_lambda_events::event::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_value(json!({
            "version": "0", "id": "demo", "detail-type": "Scheduled Event", "source": "aws.events",
            "time": as_of.to_rfc3339(), "region": stack.region, "detail": {}
        }))?;
    let compaction = compact_function::handle(
        &compactor,
        lambda_runtime::LambdaEvent::new(scheduled, Default::default()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("compaction: {e}"))?;
    let curated = compactor.lake.list(CURATED_PREFIX).await?;
    let left = compactor.lake.list(STAGING_PREFIX).await?;
    eprintln!(
        "  compaction as of {}: {} pieces into {} curated objects ({} bytes), {} duplicates dropped, {} pieces left",
        as_of.to_rfc3339(),
        compaction["pieces"],
        curated.len(),
        curated.iter().map(|o| o.size).sum::<i64>(),
        compaction["duplicates"],
        left.len()
    );
    // The analyst's copy: the bucket's curated objects under out/lake/.
    let local = out_dir.join("lake");
    if local.exists() {
        std::fs::remove_dir_all(&local)?;
    }
    for object in &curated {
        let (body, _) = compactor
            .lake
            .get(&object.key)
            .await?
            .with_context(|| format!("{} vanished", object.key))?;
        let path = local.join(&object.key);
        std::fs::create_dir_all(path.parent().expect("keys have folders"))?;
        std::fs::write(&path, body)?;
    }
    let output = std::process::Command::new(stack::venv_python()?)
        .arg(stack::repo_root().join("scripts/lake_query.py"))
        .arg(&local)
        .output()
        .context("running scripts/lake_query.py")?;
    ensure!(
        output.status.success(),
        "scripts/lake_query.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout)?;
    let row = answer["campaigns"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["campaign_id"] == campaign))
        .cloned()
        .unwrap_or(Value::Null);
    let counts: BTreeMap<String, u64> = row
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
                .collect()
        })
        .unwrap_or_default();
    eprintln!(
        "  {}: {} rows in {} files under {}",
        answer["engine"].as_str().unwrap_or("duckdb"),
        answer["rows"],
        answer["files"],
        local.display()
    );
    let lake = json!({
        "bucket": compact_fn.env.get("BEACON_LAKE_BUCKET"),
        "staged_pieces": staged.len(),
        "curated_objects": curated.iter().map(|o| json!({"key": o.key, "bytes": o.size})).collect::<Vec<_>>(),
        "staging_left": left.len(),
        "compaction": compaction,
        "duckdb": answer,
        "local_copy": local.display().to_string(),
    });
    Ok((lake, counts))
}

/// The campaign's daily report (UTC), sent by the report function as the hourly
/// schedule would five minutes after the day closes; then the same trigger again,
/// which must send nothing. The files are copied from S3 to `out/reports/`.
async fn send_report(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    campaign: &str,
    out_dir: &std::path::Path,
) -> Result<Value> {
    use beacon_report::definition::DefinitionInput;
    use beacon_report::store::Definitions;
    let (_, report_fn) = stack
        .function("report")
        .context("report function in the template")?;
    let app = report_function::ReportApp::from_env(&Env::from_map(report_fn.env.clone()), aws)?;
    let def = DefinitionInput {
        id: "campaign-daily".into(),
        name: format!("Campaign {campaign}, daily"),
        campaigns: vec![campaign.to_string()],
        cadence: "daily".into(),
        timezone: "UTC".into(),
        formats: ["html", "csv", "json", "xlsx", "pdf"]
            .map(String::from)
            .to_vec(),
        recipients: vec!["marketing@demo.example".into()],
        ..Default::default()
    }
    .validate(TENANT, chrono::Utc::now())?;
    // A rerun of the demo against the same stack replaces its definition.
    app.reports.delete(TENANT, &def.id).await?;
    app.reports.create(&def).await?;
    let day_end =
        beacon_report::period::Period::containing(def.cadence, def.tz(), chrono::Utc::now()).end();
    let as_of = day_end + chrono::Duration::minutes(5);
    let trigger = || {
        lambda_runtime::LambdaEvent::new(
            json!({"version": "0", "id": "demo", "detail-type": "Scheduled Event",
                   "source": "aws.events", "time": as_of.to_rfc3339(), "region": stack.region,
                   "detail": {}}),
            Default::default(),
        )
    };
    let first = report_function::handle(&app, trigger())
        .await
        .map_err(|e| anyhow::anyhow!("report function: {e}"))?;
    let ours = first["reports"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|o| o["tenant"] == TENANT && o["report"] == def.id.as_str())
        })
        .cloned()
        .unwrap_or(Value::Null);
    ensure!(ours["status"] == "sent", "the report was not sent: {ours}");
    let second = report_function::handle(&app, trigger())
        .await
        .map_err(|e| anyhow::anyhow!("report function: {e}"))?;
    eprintln!(
        "  schedule as of {}: report {} for {} sent (SES message {}); the same trigger again sent {}",
        as_of.to_rfc3339(),
        def.id,
        ours["period"],
        ours["message_id"],
        second["sent"]
    );
    let local = out_dir.join("reports");
    std::fs::create_dir_all(&local)?;
    let s3 = beacon_aws::s3::client(aws);
    let bucket = app.files.bucket().to_string();
    let mut copies = Vec::new();
    for key in ours["files"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap_or_default();
        let object = s3.get_object().bucket(&bucket).key(key).send().await?;
        let encryption = object
            .server_side_encryption()
            .map(|e| e.as_str().to_string());
        let body = object.body.collect().await?.into_bytes();
        let path = local.join(key.rsplit('/').next().unwrap_or(key));
        std::fs::write(&path, &body)?;
        eprintln!(
            "  s3://{bucket}/{key} -> {} ({} bytes)",
            path.display(),
            body.len()
        );
        copies.push(json!({"key": key, "path": path.display().to_string(),
                           "bytes": body.len(), "encryption": encryption}));
    }
    Ok(json!({
        "definition": def,
        "as_of": as_of.to_rfc3339(),
        "period": ours["period"],
        "sent": first["sent"],
        "message_id": ours["message_id"],
        "bucket": bucket,
        "files": copies,
        "second_trigger_sent": second["sent"],
        "second_trigger": second["reports"],
    }))
}

fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
}

/// Posts `events` as JSON arrays of at most 500 (the collect API's batch limit).
/// Recipients of the bounce-spike campaign, and how many of them hard-bounce.
const SPIKE_SENDS: usize = 300;
const SPIKE_BOUNCES: usize = 60;

/// Step 9: a second campaign to new addresses, 20% of them unknown. The tenant's bounce
/// rate over 24 h goes past SES's 5% review level; the alerts function (invoked as its
/// schedule would) sends one notice by SES and webhook, and nothing on its next run.
#[allow(clippy::too_many_arguments)]
async fn bounce_spike(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    http: &reqwest::Client,
    gateway_url: &str,
    api_key: &str,
    campaign: &str,
    plan: &[RecipientPlan],
    consumers: &mut [crate::consumers::StreamConsumer],
) -> Result<Value> {
    use beacon_domain::alert::store::{AlertStoreExt, BUDGET_KEY, NOTIFY_KEY};
    use beacon_domain::alert::{
        new_secret, verify, Budget, Destinations, Webhook, SIGNATURE_HEADER,
    };
    let spike = format!("{campaign}-spike");
    let collect_url = format!("{gateway_url}/v1/events");
    let mut requests = BTreeMap::new();
    let events: Vec<Value> = (0..SPIKE_SENDS)
        .flat_map(|i| {
            let ids = json!({"campaign_id": spike, "message_id": format!("{spike}-m{i:05}"), "recipient_id": format!("s{i:05}"), "provider": "ses"});
            let with = |kind: &str, extra: Value| {
                let mut e = ids.as_object().cloned().unwrap_or_default();
                e.insert("type".into(), json!(kind));
                e.insert("event_id".into(), json!(format!("{spike}-m{i:05}-{kind}")));
                if let Value::Object(x) = extra {
                    e.extend(x);
                }
                Value::Object(e)
            };
            let outcome = if i < SPIKE_BOUNCES {
                with("message.bounced", json!({"bounce_type": "hard", "reason": "550 5.1.1 user unknown"}))
            } else {
                with("message.delivered", json!({}))
            };
            [with("message.sent", json!({"cost": 0.0001})), outcome]
        })
        .collect();
    post_json_batches(http, &collect_url, api_key, &events, &mut requests).await?;
    for consumer in consumers.iter_mut() {
        consumer.drain().await?;
    }
    eprintln!("  posted {SPIKE_SENDS} sends to `{spike}`, {SPIKE_BOUNCES} of them hard-bounced");

    // A local webhook receiver that keeps what it is sent.
    // (signature header, body) of each request received.
    type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Received = Default::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let signature = headers
                        .get(SIGNATURE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    kept.lock().unwrap().push((signature, body.to_vec()));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (_, alerts_fn) = stack
        .function("alerts")
        .context("alerts function in the template")?;
    // The receiver is on this machine: the local-development switch lets the alerts
    // function post to loopback (never set in the template, so never in AWS).
    let mut env = alerts_fn.env.clone();
    env.insert(
        beacon_domain::alert::outbound::LOCAL_SWITCH.to_string(),
        "1".to_string(),
    );
    let app = alerts_function::AlertsApp::from_env(&Env::from_map(env), aws)?;
    let secret = new_secret();
    let to = Destinations {
        emails: vec!["ops@example.com".into()],
        webhook: Some(Webhook {
            url: hook_url.clone(),
            secret: secret.clone(),
        }),
    };
    app.store.put_json(TENANT, NOTIFY_KEY, &to, None).await?;
    // A budget the two campaigns' sends (0.0001 each) use up.
    let spend = (plan.len() + SPIKE_SENDS) as f64 * 0.0001;
    app.store
        .put_json(
            TENANT,
            BUDGET_KEY,
            &Budget::new((spend * 1000.0).floor() / 1000.0, Some("USD".into()))
                .map_err(anyhow::Error::msg)?,
            None,
        )
        .await?;
    let trigger = || {
        let event = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": chrono::Utc::now().to_rfc3339()});
        lambda_runtime::LambdaEvent::new(event, Default::default())
    };
    let first = alerts_function::handle(&app, trigger())
        .await
        .map_err(|e| anyhow::anyhow!("alerts function: {e}"))?;
    let second = alerts_function::handle(&app, trigger())
        .await
        .map_err(|e| anyhow::anyhow!("alerts function: {e}"))?;
    server.abort();
    let ours = first["outcomes"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["tenant"] == TENANT))
        .cloned()
        .unwrap_or(Value::Null);
    let hooks = received.lock().unwrap().clone();
    let now = chrono::Utc::now().timestamp();
    let mut notices = Vec::new();
    let mut verified = true;
    for (signature, body) in &hooks {
        let check = verify(&secret, signature, body, now, 300);
        verified &= check.is_ok();
        let notice: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        eprintln!(
            "  webhook {}: {} (signature {})",
            notice["type"].as_str().unwrap_or("?"),
            notice["summary"].as_str().unwrap_or("?"),
            if check.is_ok() { "verified" } else { "INVALID" }
        );
        notices.push(notice);
    }
    let fired = ours["fired"].clone();
    eprintln!(
        "  alerts run 1: fired {fired}, budget level {}, {} deliveries; run 2: fired {}, {} deliveries",
        ours["budget_level"], ours["delivered"], second["fired"], second["outcomes"][0]["delivered"]
    );

    // The spike's bounced recipients are suppressed now; the delivered ones are not.
    let check: Value = http
        .post(format!("{gateway_url}/v1/suppressions/check"))
        .bearer_auth(api_key)
        .json(&json!({"channel": "email", "recipients": ["s00000", format!("s{:05}", SPIKE_BOUNCES)]}))
        .send()
        .await?
        .error_for_status()
        .context("suppression check")?
        .json()
        .await?;
    let segments: Value = http
        .get(format!("{gateway_url}/v1/segments"))
        .bearer_auth(api_key)
        .send()
        .await?
        .error_for_status()
        .context("segments")?
        .json()
        .await?;
    let suppressed_ok = check["suppressed"][0]["recipient"] == "s00000"
        && check["not_suppressed"] == json!([format!("s{:05}", SPIKE_BOUNCES)]);
    eprintln!(
        "  suppression check: {} suppressed ({}), {} not",
        check["suppressed"][0]["recipient"],
        check["suppressed"][0]["reasons"],
        check["not_suppressed"]
    );
    eprintln!("  engagement segments: {}", segments["segments"]);
    let ok = fired == json!(["ses-bounce-rate"])
        && second["fired"] == 0
        && ours["budget_level"] == 100
        && hooks.len() == 2
        && verified
        && suppressed_ok;
    Ok(json!({
        "campaign": spike, "sends": SPIKE_SENDS, "hard_bounces": SPIKE_BOUNCES,
        "first_run": ours, "second_run": second["outcomes"], "webhook_notices": notices,
        "signatures_verified": verified, "suppression_check": check, "segments": segments,
        // The raw requests and the demo's secret, so a receiver's own check can be run
        // on them (tests/py/test_alerts.py does it in Python).
        "webhook_secret": secret,
        "webhook_requests": hooks.iter().map(|(sig, body)| json!({"signature": sig, "body": String::from_utf8_lossy(body)})).collect::<Vec<_>>(),
        "ok": ok,
    }))
}

async fn post_json_batches(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    events: &[Value],
    requests: &mut BTreeMap<String, u64>,
) -> Result<()> {
    for chunk in events.chunks(500) {
        post_events(
            http,
            url,
            key,
            "application/json",
            serde_json::to_string(chunk)?,
        )
        .await?;
        *requests.entry("collect".into()).or_default() += 1;
    }
    Ok(())
}

async fn post_events(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    content_type: &str,
    body: String,
) -> Result<()> {
    let response = http
        .post(url)
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status != reqwest::StatusCode::ACCEPTED || answer["rejected"] != 0 {
        bail!("collect answered {status}: {answer}");
    }
    Ok(())
}

/// Tracking URLs in an instrumented email, in document order: the pixel and the links.
pub fn tracking_urls(html: &str, marker: &str) -> Vec<String> {
    html.match_indices(marker)
        .filter_map(|(at, _)| {
            let start = html[..at].rfind('"')? + 1;
            let end = at + html[at..].find('"')?;
            Some(html[start..end].to_string())
        })
        .collect()
}

/// What happens to one recipient's email, as planned: the machine in front of the
/// mailbox fetches the pixel (and, a scanning gateway, follows every link), the person
/// opens and clicks. `links` is the number of tracked links; the honeypot comes after
/// them. Returns the pixel fetches and clicks made.
async fn act_as_recipient(
    http: &reqwest::Client,
    html: &str,
    r: &RecipientPlan,
    links: usize,
) -> Result<(u64, u64)> {
    let pixel = tracking_urls(html, "/o/")
        .into_iter()
        .next()
        .context("pixel URL in the email")?;
    let urls = tracking_urls(html, "/c/");
    ensure!(
        urls.len() == links + 1,
        "expected {links} tracked links and the honeypot, found {} click URLs",
        urls.len()
    );
    let (mut opens, mut clicks) = (0, 0);
    match r.mailbox {
        Mailbox::AppleProxy if r.machine_opens() > 0 => {
            fetch(http, &pixel, APPLE_PROXY_AGENT, "17.58.1.20", 200).await?;
            opens += 1;
        }
        Mailbox::Scanned if r.machine_opens() > 0 => {
            // The gateway renders the mail, then follows every link at once.
            let ip = "203.0.113.80";
            fetch(http, &pixel, SCANNER_AGENT, ip, 200).await?;
            opens += 1;
            for url in &urls {
                fetch(http, url, SCANNER_AGENT, ip, 302).await?;
                clicks += 1;
            }
        }
        _ => {}
    }
    let open_agent = match r.mailbox {
        Mailbox::GmailProxy => GMAIL_PROXY_AGENT,
        _ => r.user_agent,
    };
    for _ in 0..r.opens {
        fetch(http, &pixel, open_agent, &r.ip, 200).await?;
        opens += 1;
    }
    for (i, &link) in r.clicks.iter().enumerate() {
        if i > 0 {
            // A person reads between clicks: clicks on different links closer than
            // this are a scanner's burst.
            let pause =
                beacon_domain::verdict::trail::CLICK_BURST + chrono::TimeDelta::milliseconds(200);
            tokio::time::sleep(pause.to_std().expect("positive")).await;
        }
        fetch(http, &urls[link], r.user_agent, &r.ip, 302).await?;
        clicks += 1;
    }
    Ok((opens, clicks))
}

/// One tracked request as a mail client or a machine makes it; `want` is the status
/// (200 and the 43-byte GIF for the pixel, 302 for a click).
async fn fetch(http: &reqwest::Client, url: &str, agent: &str, ip: &str, want: u16) -> Result<()> {
    let response = http
        .get(url)
        .header("user-agent", agent)
        .header("x-forwarded-for", ip)
        .send()
        .await?;
    ensure!(
        response.status() == want,
        "{url} answered {}, not {want}",
        response.status()
    );
    if want == 200 {
        ensure!(
            response.bytes().await?.len() == 43,
            "pixel is not the 43-byte GIF"
        );
    }
    Ok(())
}

fn print_table(s: &DemoSummary) {
    println!();
    println!(
        "Campaign {} ({} recipients) through {}",
        s.campaign, s.recipients, s.gateway
    );
    println!("{:<24} {:>10} {:>10}", "event type", "truth", "stream");
    let kinds: std::collections::BTreeSet<&String> =
        s.truth.keys().chain(s.stream_counts.keys()).collect();
    for kind in kinds {
        let t = s.truth.get(kind).copied().unwrap_or(0);
        let r = s.stream_counts.get(kind).copied().unwrap_or(0);
        println!(
            "{kind:<24} {t:>10} {r:>10}{}",
            if t == r { "" } else { "  <- MISMATCH" }
        );
    }
    println!();
    println!("{:<24} {:>10} {:>10}", "stats API", "truth", "rollups");
    for (name, t) in &s.stats_truth {
        let r = s.stats.get(name).copied().unwrap_or(0);
        println!(
            "{name:<24} {t:>10} {r:>10}{}",
            if *t == r { "" } else { "  <- MISMATCH" }
        );
    }
    println!();
    println!("{:<24} {:>10} {:>10}", "lake (DuckDB)", "rollups", "lake");
    for (name, r) in &s.rollup_totals {
        let l = s.lake_counts.get(name).copied();
        println!(
            "{name:<24} {r:>10} {:>10}{}",
            l.map_or("-".into(), |l| l.to_string()),
            if l == Some(*r) { "" } else { "  <- MISMATCH" }
        );
    }
    println!(
        "the lake's machine column is each request's own verdict: it counts {} human clicks where the rollups, with the trail's late verdicts (honeypot, bursts), count {}",
        s.lake_counts.get("clicks_human").copied().unwrap_or(0),
        s.stats.get("clicks_human").copied().unwrap_or(0)
    );
    println!(
        "report {} for {}: sent (SES message {}), {} files in {}; second trigger sent {}",
        s.report["definition"]["id"].as_str().unwrap_or("-"),
        s.report["period"].as_str().unwrap_or("-"),
        s.report["message_id"].as_str().unwrap_or("-"),
        s.report["files"].as_array().map_or(0, Vec::len),
        s.report["files"][0]["path"]
            .as_str()
            .and_then(|p| std::path::Path::new(p).parent())
            .map_or("-".into(), |p| p.display().to_string()),
        s.report["second_trigger_sent"]
    );
    println!(
        "lake rows: {} events, {} distinct event ids, {} curated objects",
        s.lake_counts.get("events").copied().unwrap_or(0),
        s.lake_counts
            .get("distinct_event_ids")
            .copied()
            .unwrap_or(0),
        s.lake["curated_objects"].as_array().map_or(0, Vec::len)
    );
    println!(
        "alerts: {} fired on `{}` (webhook signatures {}), budget notice at {}%; a second run fired {}; segments {}",
        s.alerts["first_run"]["fired"],
        s.alerts["campaign"].as_str().unwrap_or("-"),
        if s.alerts["signatures_verified"] == true { "verified" } else { "NOT verified" },
        s.alerts["first_run"]["budget_level"],
        s.alerts["second_run"][0]["fired"],
        s.alerts["segments"]["segments"]
    );
    println!(
        "senders: {} SES events through EventBridge; webhook campaign `{}` (SendGrid, Twilio) truth {} rollups {}; addresses in the stream: {}",
        s.senders["ses_events"],
        s.senders["webhook_campaign"].as_str().unwrap_or("-"),
        s.senders["truth"],
        s.senders["stats"],
        s.senders["addresses_in_stream"]
    );
    let rates = &s.overview["rates"];
    println!(
        "rates: delivery {} open {} click {} click-to-open {} bounce {}",
        percent(&rates["delivery_rate"]),
        percent(&rates["open_rate"]),
        percent(&rates["click_rate"]),
        percent(&rates["click_to_open_rate"]),
        percent(&rates["bounce_rate"])
    );
    println!(
        "requests: {}",
        s.requests
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{}",
        if s.matches {
            "every event reached the stream exactly once; the rollups equal the truth, and the lake the rollups"
        } else {
            "MISMATCH between the truth, the stream, the rollups or the lake"
        }
    );
}
