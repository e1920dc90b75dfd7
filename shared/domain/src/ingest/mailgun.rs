//! Mailgun's webhooks: one JSON object per request, `{"signature": {...}, "event-data":
//! {...}}`. The signature is inside the body: the hex HMAC-SHA256 of `timestamp` and
//! `token` under the tenant's HTTP webhook signing key. The token is random per request,
//! so a token seen before is a replay (the caller keeps them: see
//! [`super::credentials::ProviderStore::first_use`]).
//!
//! | Mailgun `event`                  | Beacon event           | extra                                |
//! |----------------------------------|------------------------|--------------------------------------|
//! | `accepted`                       | `message.sent`         |                                      |
//! | `delivered`                      | `message.delivered`    |                                      |
//! | `failed`, severity `permanent`   | `message.bounced` hard | reason = delivery-status description or message |
//! | `failed`, severity `temporary`   | `message.delayed`      | reason likewise (Mailgun retries)    |
//! | `opened`                         | `message.opened`       | `ip`, `client-info`; `client-info.bot` → `provider-flagged` |
//! | `clicked`                        | `link.clicked`         | `url`, likewise                      |
//! | `unsubscribed`                   | `message.unsubscribed` |                                      |
//! | `complained`                     | `message.complained`   |                                      |
//! | others (`stored`, `rejected`...) | skipped                |                                      |
//!
//! Campaign and recipient come from `user-variables` `beacon-campaign` and
//! `beacon-recipient` (sent as `v:beacon-campaign`); the event id from `event-data.id`.

use super::credentials::Secrets;
use super::{check_timestamp, unix_time, Draft, Malformed, Mapped, Refused, Source, Who};
use crate::event::{BounceType, EventType};
use crate::verdict::networks::PROVIDER_FLAGGED;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    pub timestamp: String,
    pub token: String,
    pub signature: String,
}

/// One webhook request's body.
#[derive(Debug, Clone, Deserialize)]
pub struct Payload {
    pub signature: Signature,
    #[serde(rename = "event-data")]
    pub event_data: Map<String, Value>,
}

pub fn parse(body: &[u8]) -> Result<Payload, Malformed> {
    serde_json::from_slice(body).map_err(|e| {
        Malformed(format!(
            "not a Mailgun webhook (`signature` and `event-data`): {e}"
        ))
    })
}

/// The request's token, to refuse replays with.
pub fn token(payload: &Payload) -> &str {
    &payload.signature.token
}

/// Checks the signature under any of the tenant's signing keys, then the timestamp.
pub fn verify(keys: &Secrets, payload: &Payload, now: i64) -> Result<(), Refused> {
    let s = &payload.signature;
    if s.signature.is_empty() || s.token.is_empty() {
        return Err(Refused::Missing("signature.signature and signature.token"));
    }
    // Compared as the lowercase hex Mailgun sends, in constant time: `AB` for `ab` is a
    // changed signature too.
    let presented = s.signature.trim().as_bytes();
    let verified = keys.iter().any(|key| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(s.timestamp.as_bytes());
        mac.update(s.token.as_bytes());
        let expected = hex::encode(mac.finalize().into_bytes());
        bool::from(expected.as_bytes().ct_eq(presented))
    });
    if !verified {
        return Err(Refused::BadSignature);
    }
    check_timestamp(&s.timestamp, now)?;
    Ok(())
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = v;
    for part in path {
        at = at.get(part)?;
    }
    at.as_str().filter(|s| !s.is_empty())
}

/// Maps a verified payload's one event.
pub fn map(payload: &Payload, source: &Source) -> Mapped {
    let e = Value::Object(payload.event_data.clone());
    let name = text(&e, &["event"]).unwrap_or("(none)").to_string();
    let draft = draft(&e, &name);
    source.finish_all([(0, name, draft)])
}

fn draft(e: &Value, name: &str) -> Result<Draft, String> {
    let severity = text(e, &["severity"]);
    let kind = match (name, severity) {
        ("accepted", _) => EventType::Sent,
        ("delivered", _) => EventType::Delivered,
        ("failed", Some("temporary")) => EventType::Delayed,
        ("failed", _) => EventType::Bounced,
        ("opened", _) => EventType::Opened,
        ("clicked", _) => EventType::Clicked,
        ("unsubscribed", _) => EventType::Unsubscribed,
        ("complained", _) => EventType::Complained,
        (other, _) => return Err(format!("Mailgun event `{other}` is not recorded")),
    };
    let time = e
        .get("timestamp")
        .and_then(Value::as_f64)
        .and_then(unix_time)
        .ok_or("no Unix `timestamp`")?;
    let mut d = Draft::new(kind, time, name);
    d.message_id = text(e, &["message", "headers", "message-id"]).map(str::to_string);
    d.campaign_id = text(e, &["user-variables", "beacon-campaign"]).map(str::to_string);
    d.recipient = match (
        text(e, &["user-variables", "beacon-recipient"]),
        text(e, &["recipient"]),
    ) {
        (Some(id), _) => Some(Who::Id(id.to_string())),
        (None, Some(address)) => Some(Who::Address(address.to_string())),
        (None, None) => None,
    };
    d.identity = match text(e, &["id"]) {
        Some(id) => vec![id.to_string()],
        None => vec![
            d.message_id.clone().unwrap_or_default(),
            name.to_string(),
            text(e, &["recipient"]).unwrap_or_default().to_string(),
            e.get("timestamp").map(Value::to_string).unwrap_or_default(),
        ],
    };
    match d.kind {
        EventType::Bounced | EventType::Delayed => {
            if d.kind == EventType::Bounced {
                d.bounce_type = Some(BounceType::Hard);
            }
            d.reason = text(e, &["delivery-status", "description"])
                .or(text(e, &["delivery-status", "message"]))
                .or(text(e, &["reason"]))
                .map(str::to_string);
        }
        EventType::Opened | EventType::Clicked => {
            d.ip = text(e, &["ip"]).map(str::to_string);
            d.user_agent = text(e, &["client-info", "user-agent"]).map(str::to_string);
            d.link_url = text(e, &["url"]).map(str::to_string);
            if text(e, &["client-info", "bot"]).is_some() {
                d.network_hint = Some(PROVIDER_FLAGGED);
            }
        }
        _ => {}
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::context::IpPolicy;
    use crate::event::validate::Limits;
    use crate::ingest::{Provider, Pseudonyms};
    use crate::verdict::networks::Networks;
    use chrono::{TimeZone, Utc};

    const DELIVERED: &str =
        include_str!("../../../../events/ingest-webhooks/mailgun-delivered.json");
    const OPENED: &str = include_str!("../../../../events/ingest-webhooks/mailgun-opened.json");
    const FAILED: &str = include_str!("../../../../events/ingest-webhooks/mailgun-failed.json");

    fn signed(body: &str, key: &str, timestamp: &str, token: &str) -> Payload {
        let mut p = parse(body.as_bytes()).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        p.signature = Signature {
            timestamp: timestamp.into(),
            token: token.into(),
            signature: hex::encode(mac.finalize().into_bytes()),
        };
        p
    }

    #[test]
    fn signatures_verify_and_every_character_counts() {
        let keys = Secrets::new(vec![
            "key-old".into(),
            "key-3ax6xnjp29jd6fds4gc373sgvjxteol0".into(),
        ]);
        let now = 1_796_119_200;
        let p = signed(
            DELIVERED,
            "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
            "1796119200",
            "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
        );
        assert_eq!(verify(&keys, &p, now), Ok(()));
        for field in 0..3 {
            let original = match field {
                0 => &p.signature.timestamp,
                1 => &p.signature.token,
                _ => &p.signature.signature,
            };
            for i in 0..original.len() {
                let mut q = p.clone();
                let target = match field {
                    0 => &mut q.signature.timestamp,
                    1 => &mut q.signature.token,
                    _ => &mut q.signature.signature,
                };
                let mut bytes = target.clone().into_bytes();
                bytes[i] = if bytes[i] == b'1' {
                    b'2'
                } else if field == 2 && bytes[i].is_ascii_lowercase() {
                    // The same hex digit in upper case is a changed signature too.
                    bytes[i].to_ascii_uppercase()
                } else {
                    b'1'
                };
                *target = String::from_utf8(bytes).unwrap();
                assert!(verify(&keys, &q, now).is_err(), "field {field} char {i}");
            }
        }
        assert_eq!(verify(&keys, &p, now + 301), Err(Refused::Stale(-301)));
        assert_eq!(
            verify(&Secrets::new(vec!["other".into()]), &p, now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            token(&p),
            "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
        );
    }

    #[test]
    fn the_documented_events_map_field_by_field() {
        let pseudonyms = Pseudonyms::new(b"0123456789abcdef0123456789abcdef").for_tenant("acme");
        let limits = Limits::default();
        let source = Source {
            provider: Provider::Mailgun,
            tenant_id: "acme",
            pseudonyms: &pseudonyms,
            now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
            limits: &limits,
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        };
        let d = map(&parse(DELIVERED.as_bytes()).unwrap(), &source);
        let e = &d.events[0];
        assert_eq!(e.kind, EventType::Delivered);
        assert_eq!(
            e.message_id.as_deref(),
            Some("20261201100000.1.ABCDEF@mg.example.com")
        );
        assert_eq!(e.campaign_id.as_deref(), Some("spring-sale"));
        assert_eq!(
            e.recipient_id.as_deref(),
            Some(pseudonyms.recipient_id("alice@example.com").as_str())
        );
        assert_eq!(
            e.event_time,
            Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
                + chrono::Duration::milliseconds(123)
        );
        assert_eq!(e.provider.as_deref(), Some("mailgun"));
        assert_eq!(
            e.event_id,
            map(&parse(DELIVERED.as_bytes()).unwrap(), &source).events[0].event_id
        );

        let o = map(&parse(OPENED.as_bytes()).unwrap(), &source);
        let e = &o.events[0];
        assert_eq!(e.kind, EventType::Opened);
        assert_eq!(
            e.context.network.as_deref(),
            Some(PROVIDER_FLAGGED),
            "client-info.bot"
        );
        assert_eq!(e.context.ip.as_deref(), Some("50.56.129.0"));
        assert_eq!(e.recipient_id.as_deref(), Some("customer-7"));

        let f = map(&parse(FAILED.as_bytes()).unwrap(), &source);
        let e = &f.events[0];
        assert_eq!(
            (e.kind.clone(), e.bounce_type),
            (EventType::Bounced, Some(BounceType::Hard))
        );
        assert_eq!(e.reason.as_deref(), Some("No such mailbox"));
        let mut temporary = parse(FAILED.as_bytes()).unwrap();
        temporary
            .event_data
            .insert("severity".into(), "temporary".into());
        assert_eq!(map(&temporary, &source).events[0].kind, EventType::Delayed);
        let mut stored = parse(FAILED.as_bytes()).unwrap();
        stored.event_data.insert("event".into(), "stored".into());
        assert!(map(&stored, &source).skipped[0].reason.contains("stored"));
        let text = serde_json::to_string(&[&d.events, &f.events]).unwrap();
        assert!(!text.contains("alice@example.com"));
        assert!(parse(b"{\"event\":\"delivered\"}").is_err());
    }
}
