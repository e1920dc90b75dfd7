//! Provider events in: what Amazon SES, SendGrid, Mailgun, Postmark and Twilio report
//! about the messages they send, turned into Beacon events for the same stream the
//! collect API writes to, so the rollups, the suppression list, engagement, alerts,
//! the lake and reports take them unchanged.
//!
//! Each provider module reads its payload as the provider documents it, checks its
//! signature where it has one, and maps each provider event onto a [`Draft`].
//! [`Source::finish`] turns every draft into an [`Event`] the same way:
//!
//! - **No address is ever kept.** A recipient that arrives only as an email address or
//!   a phone number becomes an opaque id, `HMAC-SHA256(tenant key, normalized address)`
//!   ([`TenantPseudonyms::recipient_id`]). The tenant key is derived from the ingest
//!   secret's `k1`, so the same address always gives the same id within a tenant and
//!   different ids across tenants; the address itself is read, hashed and dropped. An
//!   opaque id the sender tagged the message with (`beacon-recipient`) is used as is.
//! - **Ids are deterministic.** Every event id is a hash of the provider's own
//!   identifiers ([`event_id`]): the provider's event id where it has one, otherwise
//!   its message id, the event type, the recipient, the event's time and the link.
//!   A redelivery (EventBridge, SNS, a webhook retried after a 5xx) or a provider's
//!   own repeat carries the same id, and the aggregate's dedupe window counts it once.
//! - **Nothing is guessed.** A provider event Beacon cannot map (an unknown type, no
//!   tenant, an event outside the accepted time window) is skipped with its reason;
//!   the caller counts and logs it and still records the rest.
//! - **Opens and clicks are classified like Beacon's own**: the provider's client IP
//!   and user agent become the event's context through the same function the open
//!   pixel uses ([`request_context_in`]), labelled from the same range lists before the
//!   IP is anonymized. A provider's own machine flag (SendGrid's `sg_machine_open`,
//!   Mailgun's `client-info.bot`) becomes the `provider-flagged` network label, which the
//!   classifier reads as a machine.

pub mod credentials;
pub mod mailgun;
pub mod postmark;
pub mod sendgrid;
pub mod ses;
pub mod twilio;

use crate::event::context::{request_context_in, IpPolicy};
use crate::event::validate::{trackable_url, truncate_millis, Limits};
use crate::event::{BounceType, Event, EventType};
use crate::verdict::networks::Networks;
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The senders Beacon takes events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Ses,
    SendGrid,
    Mailgun,
    Postmark,
    Twilio,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Ses,
        Provider::SendGrid,
        Provider::Mailgun,
        Provider::Postmark,
        Provider::Twilio,
    ];

    /// The name in URLs, in events' `provider` field and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Ses => "ses",
            Provider::SendGrid => "sendgrid",
            Provider::Mailgun => "mailgun",
            Provider::Postmark => "postmark",
            Provider::Twilio => "twilio",
        }
    }

    pub fn parse(name: &str) -> Option<Provider> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The channel its messages go out on.
    pub fn channel(self) -> &'static str {
        match self {
            Provider::Twilio => "sms",
            _ => "email",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the event is about, as the provider named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// An opaque id the sender chose (a `beacon-recipient` tag or custom argument).
    Id(String),
    /// An email address or phone number: hashed, never stored.
    Address(String),
}

/// One provider event, mapped but not yet an [`Event`]: what the provider modules
/// produce and [`Source::finish`] completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub kind: EventType,
    pub time: DateTime<Utc>,
    pub campaign_id: Option<String>,
    pub message_id: Option<String>,
    pub recipient: Option<Who>,
    pub link_url: Option<String>,
    pub bounce_type: Option<BounceType>,
    pub reason: Option<String>,
    pub duration_ms: Option<i64>,
    /// The client's IP and user agent (opens and clicks).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The provider's own verdict that the client is a machine
    /// ([`crate::verdict::networks::PROVIDER_FLAGGED`]); it replaces the range lists' label.
    pub network_hint: Option<&'static str>,
    /// What makes the event unique at the provider: hashed into the event id.
    pub identity: Vec<String>,
    /// The provider's own name for the event type (kept in `properties.provider_event`).
    pub provider_event: String,
}

impl Draft {
    pub fn new(kind: EventType, time: DateTime<Utc>, provider_event: impl Into<String>) -> Self {
        Draft {
            kind,
            time,
            campaign_id: None,
            message_id: None,
            recipient: None,
            link_url: None,
            bounce_type: None,
            reason: None,
            duration_ms: None,
            ip: None,
            user_agent: None,
            network_hint: None,
            identity: Vec::new(),
            provider_event: provider_event.into(),
        }
    }
}

/// A provider event that was not recorded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its position in the payload.
    pub index: usize,
    /// The provider's name for it.
    pub provider_event: String,
    pub reason: String,
}

/// What one payload became.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    pub events: Vec<Event>,
    pub skipped: Vec<Skipped>,
}

impl Mapped {
    pub fn skip(&mut self, index: usize, provider_event: &str, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            index,
            provider_event: provider_event.to_string(),
            reason: reason.into(),
        });
    }
}

crate::message_error!(
    /// A payload that is not what the provider sends at all: refused as a whole (400).
    Malformed
);

/// Why a webhook request was refused before anything in it was read as events. The
/// function answers 401 (403 for a replay) with the message, and records nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("the signature does not verify")]
    BadSignature,
    #[error(
        "the timestamp is {0} s from now; at most {TOLERANCE_SECONDS} s either way is accepted"
    )]
    Stale(i64),
    #[error("this request was already received once (its token was used before)")]
    Replay,
}

impl Refused {
    /// A short code for the JSON error and the metric.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::Missing(_) => "missing_signature",
            Refused::BadSignature => "bad_signature",
            Refused::Stale(_) => "stale_timestamp",
            Refused::Replay => "replayed",
        }
    }
}

/// How far a signed timestamp may be from the receiver's clock, either way (seconds).
pub const TOLERANCE_SECONDS: i64 = 300;

/// Checks a signed Unix timestamp against `now` and [`TOLERANCE_SECONDS`].
pub fn check_timestamp(timestamp: &str, now: i64) -> Result<i64, Refused> {
    let t: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refused::Missing("a numeric timestamp"))?;
    let skew = t.saturating_sub(now);
    if skew.abs() > TOLERANCE_SECONDS {
        return Err(Refused::Stale(skew));
    }
    Ok(t)
}

/// The recipient-id key: one per deployment (the ingest secret's `k1`), expanded per
/// tenant. Its value never appears in `Debug` output.
pub struct Pseudonyms {
    hkdf: Hkdf<Sha256>,
    /// Tenants' keys already expanded: HKDF and the HMAC key schedule cost more than
    /// hashing an address, and a warm function sees the same few tenants.
    expanded: std::sync::Mutex<std::collections::HashMap<String, TenantPseudonyms>>,
}

/// Most tenants' keys kept expanded; past this the cache starts over.
const EXPANDED_TENANTS: usize = 1024;

impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonyms(..)")
    }
}

const RECIPIENT_ID_INFO: &[u8] = b"beacon recipient id v1";

impl Pseudonyms {
    pub fn new(secret: &[u8]) -> Self {
        Pseudonyms {
            hkdf: Hkdf::<Sha256>::new(None, secret),
            expanded: Default::default(),
        }
    }

    /// The keyed hash of one tenant.
    pub fn for_tenant(&self, tenant: &str) -> TenantPseudonyms {
        let mut expanded = self.expanded.lock().expect("pseudonym cache lock");
        if let Some(known) = expanded.get(tenant) {
            return known.clone();
        }
        if expanded.len() >= EXPANDED_TENANTS {
            expanded.clear();
        }
        let fresh = self.expand(tenant);
        expanded.insert(tenant.to_string(), fresh.clone());
        fresh
    }

    fn expand(&self, tenant: &str) -> TenantPseudonyms {
        let mut key = [0u8; 32];
        self.hkdf
            .expand_multi_info(&[RECIPIENT_ID_INFO, tenant.as_bytes()], &mut key)
            .expect("32 bytes is well under HKDF-SHA256's limit");
        TenantPseudonyms {
            mac: HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length"),
        }
    }
}

/// One tenant's keyed hash of addresses. Keyed once; each id clones the keyed state.
#[derive(Clone)]
pub struct TenantPseudonyms {
    mac: HmacSha256,
}

impl fmt::Debug for TenantPseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantPseudonyms(..)")
    }
}

/// Prefix of every hashed recipient id, so a reader can tell them from sender ids.
pub const HASHED_RECIPIENT_PREFIX: &str = "rh_";

impl TenantPseudonyms {
    /// `rh_` and 32 hex digits (128 bits of the HMAC): the same for the same address
    /// however it was written (`Ann <Ann@Example.com>` and `ann@example.com` agree).
    pub fn recipient_id(&self, address: &str) -> String {
        let normalized = normalize_address(address);
        let mut mac = self.mac.clone();
        mac.update(normalized.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut id = String::with_capacity(HASHED_RECIPIENT_PREFIX.len() + 32);
        id.push_str(HASHED_RECIPIENT_PREFIX);
        id.push_str(&hex::encode(&digest[..16]));
        id
    }
}

/// The address inside `Name <addr>`, trimmed and lowercased; a phone number without
/// spaces, dashes, dots or brackets (`+1 (555) 010-0000` is `+15550100000`).
pub fn normalize_address(address: &str) -> String {
    let inner = match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        _ => address,
    };
    let inner = inner.trim();
    if inner.contains('@') {
        inner.to_lowercase()
    } else {
        inner
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect::<String>()
            .to_lowercase()
    }
}

/// A deterministic event id: the provider's name and a hash of `parts` (128 bits, hex).
/// Within the `Id` charset and 128 characters, whatever the parts hold.
pub fn event_id(provider: Provider, parts: &[String]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    format!("{}-{}", provider.as_str(), hex::encode(&digest[..16]))
}

/// What finishing needs besides the drafts: the tenant, the clock, the limits and IP
/// policy collect applies, and the range lists the open pixel labels with.
pub struct Source<'a> {
    pub provider: Provider,
    pub tenant_id: &'a str,
    pub pseudonyms: &'a TenantPseudonyms,
    pub now: DateTime<Utc>,
    pub limits: &'a Limits,
    pub ip_policy: IpPolicy,
    pub networks: &'a Networks,
}

/// Longest campaign, message and recipient ids, as collect accepts them.
const MAX_ID_CHARS: usize = 256;
/// Longest reason kept; longer diagnostics are cut at a character boundary.
const MAX_REASON_CHARS: usize = 1024;

impl Source<'_> {
    /// The event `draft` stands for, or why it cannot be recorded. Checks what collect
    /// checks of the same fields (time window, id lengths, click destinations).
    pub fn finish(&self, draft: Draft) -> Result<Event, String> {
        let time = truncate_millis(draft.time);
        if time > self.now + self.limits.max_future {
            return Err(format!(
                "event time {} is more than {} s in the future",
                time.to_rfc3339(),
                self.limits.max_future.num_seconds()
            ));
        }
        if time < self.now - self.limits.max_age {
            return Err(format!(
                "event time {} is older than {} hours",
                time.to_rfc3339(),
                self.limits.max_age.num_hours()
            ));
        }
        let recipient_id = match &draft.recipient {
            Some(Who::Id(id)) => Some(checked_id("recipient", id)?),
            Some(Who::Address(address)) if !address.trim().is_empty() => {
                Some(self.pseudonyms.recipient_id(address))
            }
            _ => None,
        };
        let message_id = draft
            .message_id
            .as_deref()
            .map(|m| checked_id("message", m))
            .transpose()?;
        let campaign_id = draft
            .campaign_id
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| checked_id("campaign", c))
            .transpose()?;
        if draft.kind.is_message_event() && (message_id.is_none() || recipient_id.is_none()) {
            return Err(format!(
                "no {} to attribute the event to",
                if message_id.is_none() {
                    "message id"
                } else {
                    "recipient"
                }
            ));
        }
        let link_url = match (&draft.kind, &draft.link_url) {
            (EventType::Clicked, Some(url)) => Some(
                trackable_url(url)
                    .ok_or_else(|| "the clicked link is not an absolute http(s) URL".to_string())?,
            ),
            (EventType::Clicked, None) => return Err("the click names no link".into()),
            _ => None,
        };
        if draft.kind == EventType::Bounced && draft.bounce_type.is_none() {
            return Err("the bounce has no type".into());
        }

        let mut identity = draft.identity;
        if identity.is_empty() {
            identity.push(draft.provider_event.clone());
        }
        identity.insert(0, self.tenant_id.to_string());
        let received_at = truncate_millis(self.now);
        let mut event = Event::new(
            event_id(self.provider, &identity),
            self.tenant_id.to_string(),
            draft.kind,
            time,
            received_at,
        );
        event.campaign_id = campaign_id;
        event.message_id = message_id;
        event.recipient_id = recipient_id;
        event.channel = Some(self.provider.channel().to_string());
        event.provider = Some(self.provider.as_str().to_string());
        event.link_url = link_url;
        event.bounce_type = draft.bounce_type;
        event.reason = draft
            .reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .map(|r| cut(&r, MAX_REASON_CHARS));
        event.duration_ms = draft.duration_ms.filter(|d| *d >= 0);
        event.properties.insert(
            "provider_event".into(),
            serde_json::Value::String(cut(&draft.provider_event, 64)),
        );
        if draft.ip.is_some() || draft.user_agent.is_some() || draft.network_hint.is_some() {
            let mut context = request_context_in(
                draft.ip.as_deref(),
                draft.user_agent.as_deref(),
                self.ip_policy,
                self.networks,
            );
            // The provider saw more of the client than an address: its flag wins.
            if let Some(hint) = draft.network_hint {
                context.network = Some(hint.to_string());
            }
            event.context = context;
        }
        Ok(event)
    }

    /// Finishes every draft of a payload: the events, and the ones skipped with why.
    /// `drafts` holds each provider event's position, and its draft or why none.
    pub fn finish_all(
        &self,
        drafts: impl IntoIterator<Item = (usize, String, Result<Draft, String>)>,
    ) -> Mapped {
        let mut mapped = Mapped::default();
        for (index, name, draft) in drafts {
            match draft.and_then(|d| self.finish(d)) {
                Ok(event) => mapped.events.push(event),
                Err(reason) => mapped.skip(index, &name, reason),
            }
        }
        mapped
    }
}

/// An id as collect takes one: 1-256 characters, none of them control characters,
/// no spaces around it.
fn checked_id(what: &str, id: &str) -> Result<String, String> {
    let id = id.trim();
    let len = id.chars().count();
    if len == 0 || len > MAX_ID_CHARS || id.chars().any(char::is_control) {
        return Err(format!(
            "the {what} id must be 1 to {MAX_ID_CHARS} printable characters"
        ));
    }
    Ok(id.to_string())
}

fn cut(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => s[..end].to_string(),
        None => s.to_string(),
    }
}

/// Lookups kept for a while: credentials and configuration-set tenants, read by the
/// thousand during a campaign and changed rarely (a change shows within `ttl`).
pub struct Expiring<K, V> {
    entries: std::sync::Mutex<std::collections::HashMap<K, (V, std::time::Instant)>>,
    ttl: std::time::Duration,
}

impl<K: std::hash::Hash + Eq, V: Clone> Expiring<K, V> {
    pub fn new(ttl: std::time::Duration) -> Self {
        Expiring {
            entries: Default::default(),
            ttl,
        }
    }

    /// The value kept for `key`, if it is younger than the ttl.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().expect("cache lock");
        let (value, at) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    pub fn put(&self, key: K, value: V) {
        self.entries
            .lock()
            .expect("cache lock")
            .insert(key, (value, std::time::Instant::now()));
    }
}

/// What every ingest function holds once: the keys, and what collect applies (limits,
/// IP policy) and the open pixel labels with (range lists).
pub struct Intake {
    pub keys: credentials::IngestKeys,
    pub limits: Limits,
    pub ip_policy: IpPolicy,
    pub networks: &'static Networks,
}

impl Intake {
    /// Runs `f` with the [`Source`] of `provider` for `tenant` at `now`.
    pub fn with_source<T>(
        &self,
        provider: Provider,
        tenant: &str,
        now: DateTime<Utc>,
        f: impl FnOnce(&Source) -> T,
    ) -> T {
        let pseudonyms = self.keys.pseudonyms().for_tenant(tenant);
        f(&Source {
            provider,
            tenant_id: tenant,
            pseudonyms: &pseudonyms,
            now,
            limits: &self.limits,
            ip_policy: self.ip_policy,
            networks: self.networks,
        })
    }
}

/// What became of one payload's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    /// Stored on the stream.
    pub recorded: usize,
    /// Not mappable (each logged with its reason).
    pub skipped: usize,
    /// Mapped but refused by the stream: the provider must send them again.
    pub failed: usize,
}

impl Recorded {
    pub fn add(&mut self, other: &Recorded) {
        self.recorded += other.recorded;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }
}

/// Puts `mapped`'s events on the stream, and logs and counts what was skipped (by its
/// reason, never its content: a payload's addresses stay out of the logs).
pub async fn record<S: crate::tracking::sink::EventSink>(
    sink: &S,
    provider: Provider,
    tenant: &str,
    mapped: &Mapped,
) -> Recorded {
    for s in &mapped.skipped {
        tracing::warn!(
            provider = provider.as_str(),
            tenant,
            index = s.index,
            provider_event = %s.provider_event,
            reason = %s.reason,
            "provider event skipped"
        );
    }
    let unstored = if mapped.events.is_empty() {
        Vec::new()
    } else {
        sink.put(&mapped.events).await
    };
    for u in &unstored {
        tracing::error!(provider = provider.as_str(), tenant, error = %u.error, "provider event not stored");
    }
    let done = Recorded {
        recorded: mapped.events.len() - unstored.len(),
        skipped: mapped.skipped.len(),
        failed: unstored.len(),
    };
    let dims = [("Provider", provider.as_str())];
    crate::metrics::count("ProviderEventsRecorded", done.recorded as u64, &dims);
    crate::metrics::count("ProviderEventsSkipped", done.skipped as u64, &dims);
    crate::metrics::count("ProviderEventsFailed", done.failed as u64, &dims);
    done
}

/// Reads a provider's time: RFC 3339 (SES, Postmark), or Unix seconds (SendGrid,
/// Mailgun; Mailgun's with a fraction).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn unix_time(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let millis = (seconds * 1000.0).round() as i64;
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::networks::PROVIDER_FLAGGED;
    use chrono::{Duration, TimeZone};

    fn source<'a>(p: &'a TenantPseudonyms, limits: &'a Limits) -> Source<'a> {
        Source {
            provider: Provider::Ses,
            tenant_id: "acme",
            pseudonyms: p,
            now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
            limits,
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        }
    }

    #[test]
    fn the_same_address_gives_the_same_id_per_tenant_and_others_across_tenants() {
        let keys = Pseudonyms::new(b"0123456789abcdef0123456789abcdef");
        let acme = keys.for_tenant("acme");
        let a = acme.recipient_id("Ann <Ann@Example.com>");
        assert_eq!(a, acme.recipient_id("ann@example.com "));
        assert!(
            a.starts_with(HASHED_RECIPIENT_PREFIX) && a.len() == 35,
            "{a}"
        );
        assert!(!a.contains("ann"));
        assert_ne!(a, keys.for_tenant("other").recipient_id("ann@example.com"));
        assert_ne!(a, acme.recipient_id("bob@example.com"));
        let other_key = Pseudonyms::new(b"another secret of thirty-two by!");
        assert_ne!(
            a,
            other_key.for_tenant("acme").recipient_id("ann@example.com")
        );
        assert_eq!(
            acme.recipient_id("+1 (555) 010-0000"),
            acme.recipient_id("+15550100000")
        );
    }

    #[test]
    fn event_ids_are_deterministic_and_separate_their_parts() {
        let a = event_id(Provider::Ses, &["m1".into(), "Open".into()]);
        assert_eq!(a, event_id(Provider::Ses, &["m1".into(), "Open".into()]));
        assert_ne!(a, event_id(Provider::Ses, &["m1O".into(), "pen".into()]));
        assert_ne!(
            a,
            event_id(Provider::Mailgun, &["m1".into(), "Open".into()])
        );
        assert!(a.starts_with("ses-") && a.len() == 36);
    }

    #[test]
    fn finishing_checks_what_collect_checks() {
        let keys = Pseudonyms::new(b"0123456789abcdef0123456789abcdef").for_tenant("acme");
        let limits = Limits::default();
        let s = source(&keys, &limits);
        let mut d = Draft::new(EventType::Clicked, s.now - Duration::minutes(1), "Click");
        d.message_id = Some("m1".into());
        d.recipient = Some(Who::Address("ann@example.com".into()));
        d.link_url = Some("https://shop.example/a".into());
        d.ip = Some("203.0.113.9".into());
        d.user_agent = Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64)".into());
        d.identity = vec!["m1".into(), "Click".into()];
        let e = s.finish(d.clone()).unwrap();
        assert_eq!(e.provider.as_deref(), Some("ses"));
        assert_eq!(e.channel.as_deref(), Some("email"));
        assert_eq!(e.context.ip.as_deref(), Some("203.0.113.0"));
        assert_eq!(
            e.recipient_id.as_deref(),
            Some(keys.recipient_id("ann@example.com").as_str())
        );
        assert_eq!(e.event_id, s.finish(d.clone()).unwrap().event_id);

        let mut bad = d.clone();
        bad.link_url = Some("javascript:alert(1)".into());
        assert!(s.finish(bad).unwrap_err().contains("http(s)"));
        let mut old = d.clone();
        old.time = s.now - Duration::days(31);
        assert!(s.finish(old).unwrap_err().contains("older"));
        let mut nobody = d.clone();
        nobody.recipient = None;
        assert!(s.finish(nobody).unwrap_err().contains("recipient"));
        let mut hinted = d;
        hinted.ip = None;
        hinted.network_hint = Some(PROVIDER_FLAGGED);
        assert_eq!(
            s.finish(hinted).unwrap().context.network.as_deref(),
            Some(PROVIDER_FLAGGED)
        );
    }
}
