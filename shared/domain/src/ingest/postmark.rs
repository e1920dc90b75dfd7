//! Postmark's webhooks: one JSON object per request, named by `RecordType`. Postmark
//! does not sign them; the tenant's credential is a token Beacon checks instead, sent
//! as the password of HTTP basic auth (put it in the webhook URL,
//! `https://beacon:<token>@host/...`, any user name) or in the header
//! `X-Beacon-Webhook-Token`.
//!
//! | `RecordType`                          | Beacon event           | extra                              |
//! |---------------------------------------|------------------------|------------------------------------|
//! | `Delivery`                            | `message.delivered`    |                                    |
//! | `Bounce` (`Type` `HardBounce`, `BadEmailAddress`, `ManuallyDeactivated`, `SpamNotification` ...) | `message.bounced` hard | reason = `Description`, `Details` |
//! | `Bounce` (`Type` `SoftBounce`, `Transient`, `DnsError`, `AutoResponder`, ...) | `message.bounced` soft | likewise |
//! | `SpamComplaint`                       | `message.complained`   |                                    |
//! | `Open`                                | `message.opened`       | `UserAgent`, `Geo.IP`              |
//! | `Click`                               | `link.clicked`         | `OriginalLink`, likewise           |
//! | `SubscriptionChange`, `SuppressSending: true` | `message.unsubscribed` | `SuppressionReason`      |
//! | `SubscriptionChange`, `SuppressSending: false` | skipped (a reactivation) |                         |
//!
//! Campaign and recipient come from `Metadata` `beacon-campaign` and `beacon-recipient`
//! (without a campaign there, the message's `Tag`). Postmark has no event id: the id is
//! made of the message id, record type, recipient, the event's time and the link.

use super::credentials::Secrets;
use super::{parse_time, Draft, Malformed, Mapped, Refused, Source, Who};
use crate::event::{BounceType, EventType};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// The header that may carry the token instead of basic auth.
pub const TOKEN_HEADER: &str = "x-beacon-webhook-token";

/// Bounce types that mean the address will never take mail.
const HARD: [&str; 6] = [
    "HardBounce",
    "BadEmailAddress",
    "ManuallyDeactivated",
    "SpamNotification",
    "Blocked",
    "Unsubscribe",
];

/// The token from basic auth's password or the header, checked against the tenant's.
pub fn verify(
    keys: &Secrets,
    authorization: Option<&str>,
    token_header: Option<&str>,
) -> Result<(), Refused> {
    let from_basic = authorization
        .and_then(|a| {
            a.strip_prefix("Basic ")
                .or_else(|| a.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(_, password)| password.to_string())
        });
    let presented = from_basic
        .or_else(|| token_header.map(str::to_string))
        .filter(|t| !t.is_empty())
        .ok_or(Refused::Missing("basic auth or X-Beacon-Webhook-Token"))?;
    let matches = keys
        .iter()
        .any(|k| bool::from(k.as_bytes().ct_eq(presented.as_bytes())));
    if matches {
        Ok(())
    } else {
        Err(Refused::BadSignature)
    }
}

fn text<'a>(e: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    e.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Maps a verified body (one record).
pub fn map(body: &[u8], source: &Source) -> Result<Mapped, Malformed> {
    let record: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("not a Postmark webhook record: {e}")))?;
    let name = text(&record, "RecordType")
        .ok_or_else(|| Malformed("the record has no `RecordType`".into()))?
        .to_string();
    let draft = draft(&record, &name);
    Ok(source.finish_all([(0, name, draft)]))
}

fn draft(r: &Map<String, Value>, name: &str) -> Result<Draft, String> {
    let (kind, when_field) = match name {
        "Delivery" => (EventType::Delivered, "DeliveredAt"),
        "Bounce" => (EventType::Bounced, "BouncedAt"),
        "SpamComplaint" => (EventType::Complained, "BouncedAt"),
        "Open" | "Click" => (
            if name == "Open" {
                EventType::Opened
            } else {
                EventType::Clicked
            },
            "ReceivedAt",
        ),
        "SubscriptionChange" => {
            if r.get("SuppressSending").and_then(Value::as_bool) != Some(true) {
                return Err(
                    "a subscription change that reactivates the address is not recorded".into(),
                );
            }
            (EventType::Unsubscribed, "ChangedAt")
        }
        other => return Err(format!("Postmark record type `{other}` is not recorded")),
    };
    let when_text = text(r, when_field).ok_or_else(|| format!("no `{when_field}`"))?;
    let time =
        parse_time(when_text).ok_or_else(|| format!("`{when_text}` is not an ISO 8601 time"))?;
    let mut d = Draft::new(kind, time, name);
    d.message_id = text(r, "MessageID").map(str::to_string);
    let metadata = r.get("Metadata").and_then(Value::as_object);
    let meta = |key: &str| metadata.and_then(|m| text(m, key));
    d.campaign_id = meta("beacon-campaign")
        .or(text(r, "Tag"))
        .map(str::to_string);
    let address = text(r, "Recipient").or(text(r, "Email"));
    d.recipient = match (meta("beacon-recipient"), address) {
        (Some(id), _) => Some(Who::Id(id.to_string())),
        (None, Some(a)) => Some(Who::Address(a.to_string())),
        (None, None) => None,
    };
    let link = text(r, "OriginalLink").unwrap_or_default();
    d.identity = vec![
        d.message_id.clone().unwrap_or_default(),
        name.to_string(),
        address.unwrap_or_default().to_string(),
        when_text.to_string(),
        link.to_string(),
        r.get("ID").map(Value::to_string).unwrap_or_default(),
    ];
    match d.kind {
        EventType::Bounced => {
            let t = text(r, "Type").unwrap_or("");
            d.bounce_type = Some(if HARD.contains(&t) {
                BounceType::Hard
            } else {
                BounceType::Soft
            });
            d.reason = [text(r, "Description"), text(r, "Details")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ")
                .into();
        }
        EventType::Complained => d.reason = text(r, "Type").map(str::to_string),
        EventType::Unsubscribed => d.reason = text(r, "SuppressionReason").map(str::to_string),
        EventType::Opened | EventType::Clicked => {
            d.user_agent = text(r, "UserAgent").map(str::to_string);
            d.ip = r
                .get("Geo")
                .and_then(Value::as_object)
                .and_then(|g| text(g, "IP"))
                .map(str::to_string);
            d.link_url = (!link.is_empty()).then(|| link.to_string());
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

    const BOUNCE: &str = include_str!("../../../../events/ingest-webhooks/postmark-bounce.json");
    const OPEN: &str = include_str!("../../../../events/ingest-webhooks/postmark-open.json");
    const CLICK: &str = include_str!("../../../../events/ingest-webhooks/postmark-click.json");
    const DELIVERY: &str =
        include_str!("../../../../events/ingest-webhooks/postmark-delivery.json");

    #[test]
    fn tokens_by_basic_auth_or_header() {
        let keys = Secrets::new(vec!["s3cret-token".into()]);
        let basic = format!("Basic {}", STANDARD.encode("beacon:s3cret-token"));
        assert_eq!(verify(&keys, Some(&basic), None), Ok(()));
        assert_eq!(verify(&keys, None, Some("s3cret-token")), Ok(()));
        let wrong = format!("Basic {}", STANDARD.encode("beacon:s3cret-tokem"));
        assert_eq!(
            verify(&keys, Some(&wrong), None),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(&keys, None, Some("s3cret-toke")),
            Err(Refused::BadSignature)
        );
        assert!(matches!(
            verify(&keys, None, None),
            Err(Refused::Missing(_))
        ));
    }

    #[test]
    fn the_documented_records_map_field_by_field() {
        let p = Pseudonyms::new(b"0123456789abcdef0123456789abcdef").for_tenant("acme");
        let limits = Limits::default();
        let source = Source {
            provider: Provider::Postmark,
            tenant_id: "acme",
            pseudonyms: &p,
            now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
            limits: &limits,
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        };
        let one = |body: &str| {
            let m = map(body.as_bytes(), &source).unwrap();
            assert!(m.skipped.is_empty(), "{:?}", m.skipped);
            m.events.into_iter().next().unwrap()
        };
        let d = one(DELIVERY);
        assert_eq!(d.kind, EventType::Delivered);
        assert_eq!(
            d.message_id.as_deref(),
            Some("00000000-0000-0000-0000-000000000001")
        );
        assert_eq!(d.campaign_id.as_deref(), Some("spring-sale"));
        assert_eq!(
            d.recipient_id.as_deref(),
            Some(p.recipient_id("john@example.com").as_str())
        );
        assert_eq!(
            d.event_time,
            Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 1).unwrap()
        );

        let b = one(BOUNCE);
        assert_eq!(
            (b.kind.clone(), b.bounce_type),
            (EventType::Bounced, Some(BounceType::Hard))
        );
        assert_eq!(
            b.reason.as_deref(),
            Some("The server was unable to deliver your message (ex: unknown user, mailbox not found).: smtp;550 5.1.1 The email account that you tried to reach does not exist.")
        );
        assert_eq!(
            b.campaign_id.as_deref(),
            Some("spring-tag"),
            "the Tag without metadata"
        );

        let o = one(OPEN);
        assert_eq!(o.kind, EventType::Opened);
        assert_eq!(o.context.ip.as_deref(), Some("188.2.95.0"));
        assert_eq!(o.recipient_id.as_deref(), Some("customer-9"));

        let c = one(CLICK);
        assert_eq!(
            c.link_url.as_deref(),
            Some("https://shop.example.com/spring")
        );
        assert_eq!(c.event_id, one(CLICK).event_id);
        assert_ne!(c.event_id, o.event_id);

        let text = serde_json::to_string(&[&d, &b]).unwrap();
        assert!(!text.contains("john@example.com"));
        let reactivated = DELIVERY
            .replace("\"Delivery\"", "\"SubscriptionChange\"")
            .replace("DeliveredAt", "ChangedAt");
        let m = map(reactivated.as_bytes(), &source).unwrap();
        assert!(m.skipped[0].reason.contains("reactivates"));
        assert!(map(b"[]", &source).is_err());
    }
}
