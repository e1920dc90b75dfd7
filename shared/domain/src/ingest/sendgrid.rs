//! SendGrid's Event Webhook: a JSON array of events per request, signed with ECDSA
//! P-256 over the timestamp header followed by the raw body (headers
//! `X-Twilio-Email-Event-Webhook-Signature`, base64 of a DER signature, and
//! `X-Twilio-Email-Event-Webhook-Timestamp`). The tenant's credential is the
//! verification key SendGrid shows, base64 of a DER `SubjectPublicKeyInfo`.
//!
//! | SendGrid `event`                        | Beacon event            | extra                       |
//! |-----------------------------------------|-------------------------|-----------------------------|
//! | `processed`                             | `message.sent`          |                             |
//! | `delivered`                             | `message.delivered`     |                             |
//! | `deferred`                              | `message.delayed`       | reason = `response`         |
//! | `bounce` (`type` `bounce`)              | `message.bounced` hard  | reason                      |
//! | `bounce` (`type` `blocked`)             | `message.bounced` soft  | reason                      |
//! | `dropped`                               | `message.failed`        | reason                      |
//! | `spamreport`                            | `message.complained`    |                             |
//! | `unsubscribe`, `group_unsubscribe`      | `message.unsubscribed`  |                             |
//! | `open`                                  | `message.opened`        | `ip`, `useragent`; `sg_machine_open` → `provider-flagged` |
//! | `click`                                 | `link.clicked`          | `url`, `ip`, `useragent`    |
//! | `group_resubscribe` and others          | skipped                 |                             |
//!
//! Campaign and recipient come from the custom arguments `beacon-campaign` and
//! `beacon-recipient`, which SendGrid copies into every event; the event id from
//! `sg_event_id`.

use super::credentials::Secrets;
use super::{check_timestamp, unix_time, Draft, Malformed, Mapped, Refused, Source, Who};
use crate::event::{BounceType, EventType};
use crate::verdict::networks::PROVIDER_FLAGGED;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};

/// The verification key from its base64 DER form (what `beacon provider add` checks).
pub fn verifying_key(base64_der: &str) -> Result<VerifyingKey, String> {
    let der = STANDARD
        .decode(base64_der.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    VerifyingKey::from_public_key_der(&der).map_err(|e| format!("not a P-256 public key: {e}"))
}

/// Checks a request: the signature over `timestamp + body` under any of the tenant's
/// keys, and the timestamp within [`super::TOLERANCE_SECONDS`] of `now`.
pub fn verify(
    keys: &Secrets,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or(Refused::Missing("X-Twilio-Email-Event-Webhook-Signature"))?;
    let timestamp = timestamp
        .filter(|t| !t.is_empty())
        .ok_or(Refused::Missing("X-Twilio-Email-Event-Webhook-Timestamp"))?;
    let der = STANDARD
        .decode(signature.trim())
        .map_err(|_| Refused::BadSignature)?;
    let signature = Signature::from_der(&der).map_err(|_| Refused::BadSignature)?;
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    let verified = keys
        .iter()
        .any(|key| verifying_key(key).is_ok_and(|k| k.verify(&signed, &signature).is_ok()));
    if !verified {
        return Err(Refused::BadSignature);
    }
    // Checked after the signature: an unsigned request learns nothing about our clock.
    check_timestamp(timestamp, now)?;
    Ok(())
}

fn text<'a>(e: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    e.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Maps a verified body.
pub fn map(body: &[u8], source: &Source) -> Result<Mapped, Malformed> {
    let events: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("not a JSON array of SendGrid events: {e}")))?;
    let drafts = events.iter().enumerate().map(|(index, raw)| {
        let Some(e) = raw.as_object() else {
            return (
                index,
                "(not an object)".into(),
                Err("not a JSON object".into()),
            );
        };
        let name = text(e, "event").unwrap_or("(none)").to_string();
        let draft = draft(e, &name);
        (index, name, draft)
    });
    Ok(source.finish_all(drafts.collect::<Vec<_>>()))
}

fn draft(e: &Map<String, Value>, name: &str) -> Result<Draft, String> {
    let kind = match name {
        "processed" => EventType::Sent,
        "delivered" => EventType::Delivered,
        "deferred" => EventType::Delayed,
        "bounce" => EventType::Bounced,
        "dropped" => EventType::Failed,
        "spamreport" => EventType::Complained,
        "unsubscribe" | "group_unsubscribe" => EventType::Unsubscribed,
        "open" => EventType::Opened,
        "click" => EventType::Clicked,
        other => return Err(format!("SendGrid event `{other}` is not recorded")),
    };
    let time = e
        .get("timestamp")
        .and_then(Value::as_f64)
        .and_then(unix_time)
        .ok_or("no Unix `timestamp`")?;
    let mut d = Draft::new(kind, time, name);
    // `sg_message_id` is the message id with a filter suffix (`<id>.filter...`); the
    // part before the first dot names the message across its events.
    d.message_id = text(e, "sg_message_id")
        .map(|m| m.split('.').next().unwrap_or(m).to_string())
        .or_else(|| text(e, "smtp-id").map(str::to_string));
    d.campaign_id = text(e, "beacon-campaign").map(str::to_string);
    d.recipient = match (text(e, "beacon-recipient"), text(e, "email")) {
        (Some(id), _) => Some(Who::Id(id.to_string())),
        (None, Some(address)) => Some(Who::Address(address.to_string())),
        (None, None) => None,
    };
    d.identity = match text(e, "sg_event_id") {
        Some(id) => vec![id.to_string()],
        None => [
            d.message_id.clone().unwrap_or_default(),
            name.to_string(),
            text(e, "email").unwrap_or_default().to_string(),
            e.get("timestamp").map(Value::to_string).unwrap_or_default(),
            text(e, "url").unwrap_or_default().to_string(),
        ]
        .to_vec(),
    };
    match d.kind {
        EventType::Bounced => {
            d.bounce_type = Some(match text(e, "type") {
                Some("blocked") => BounceType::Soft,
                _ => BounceType::Hard,
            });
            d.reason = text(e, "reason").or(text(e, "status")).map(str::to_string);
        }
        EventType::Failed => d.reason = text(e, "reason").map(str::to_string),
        EventType::Delayed => {
            d.reason = text(e, "response")
                .or(text(e, "reason"))
                .map(str::to_string)
        }
        EventType::Opened | EventType::Clicked => {
            d.ip = text(e, "ip").map(str::to_string);
            d.user_agent = text(e, "useragent").map(str::to_string);
            d.link_url = text(e, "url").map(str::to_string);
            if e.get("sg_machine_open").and_then(Value::as_bool) == Some(true) {
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
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::EncodePublicKey;

    const SAMPLE: &str = include_str!("../../../../events/ingest-webhooks/sendgrid.json");

    fn key() -> (SigningKey, String) {
        let signing = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let public = signing.verifying_key().to_public_key_der().unwrap();
        (signing, STANDARD.encode(public.as_bytes()))
    }

    fn sign(k: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        let mut m = timestamp.as_bytes().to_vec();
        m.extend_from_slice(body);
        let s: Signature = k.sign(&m);
        STANDARD.encode(s.to_der().as_bytes())
    }

    #[test]
    fn signatures_verify_and_every_byte_counts() {
        let (k, public) = key();
        let keys = Secrets::new(vec![public]);
        let body = SAMPLE.as_bytes();
        let ts = "1764590400";
        let now = 1_764_590_400;
        let sig = sign(&k, ts, body);
        assert_eq!(verify(&keys, Some(&sig), Some(ts), body, now), Ok(()));
        for i in 0..body.len() {
            let mut b = body.to_vec();
            b[i] ^= 1;
            assert_eq!(
                verify(&keys, Some(&sig), Some(ts), &b, now),
                Err(Refused::BadSignature),
                "byte {i}"
            );
        }
        for i in 0..sig.len() {
            let mut s = sig.clone().into_bytes();
            s[i] = if s[i] == b'B' { b'C' } else { b'B' };
            let s = String::from_utf8(s).unwrap();
            assert!(
                verify(&keys, Some(&s), Some(ts), body, now).is_err(),
                "signature char {i}"
            );
        }
        for i in 0..ts.len() {
            let mut t = ts.to_string().into_bytes();
            t[i] = if t[i] == b'1' { b'2' } else { b'1' };
            let t = String::from_utf8(t).unwrap();
            assert!(
                verify(&keys, Some(&sig), Some(&t), body, now).is_err(),
                "timestamp char {i}"
            );
        }
        let stale = sign(&k, "1764589000", body);
        assert_eq!(
            verify(&keys, Some(&stale), Some("1764589000"), body, now),
            Err(Refused::Stale(-1400))
        );
        assert_eq!(
            verify(&keys, None, Some(ts), body, now),
            Err(Refused::Missing("X-Twilio-Email-Event-Webhook-Signature"))
        );
        // During a rotation, the previous key verifies too.
        let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let rotated = Secrets::new(vec![
            STANDARD.encode(
                other
                    .verifying_key()
                    .to_public_key_der()
                    .unwrap()
                    .as_bytes(),
            ),
            key().1,
        ]);
        assert_eq!(verify(&rotated, Some(&sig), Some(ts), body, now), Ok(()));
        assert!(verifying_key("bm90IGEga2V5").is_err());
    }

    #[test]
    fn the_documented_events_map_field_by_field() {
        let p = Pseudonyms::new(b"0123456789abcdef0123456789abcdef").for_tenant("acme");
        let limits = Limits::default();
        let source = Source {
            provider: Provider::SendGrid,
            tenant_id: "acme",
            pseudonyms: &p,
            now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
            limits: &limits,
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        };
        let m = map(SAMPLE.as_bytes(), &source).unwrap();
        let kinds: Vec<&str> = m.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "message.sent",
                "message.delivered",
                "message.delayed",
                "message.bounced",
                "message.bounced",
                "message.failed",
                "message.opened",
                "message.opened",
                "link.clicked",
                "message.complained",
                "message.unsubscribed",
                "message.unsubscribed"
            ]
        );
        assert_eq!(m.skipped.len(), 1);
        assert!(m.skipped[0].reason.contains("group_resubscribe"));
        let e = &m.events[0];
        assert_eq!(e.message_id.as_deref(), Some("14c5d75ce93"));
        assert_eq!(e.campaign_id.as_deref(), Some("spring-sale"));
        assert_eq!(
            e.recipient_id.as_deref(),
            Some(p.recipient_id("example@test.com").as_str())
        );
        assert_eq!(
            e.event_time,
            Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
        );
        assert_eq!(e.provider.as_deref(), Some("sendgrid"));
        let hard = &m.events[3];
        assert_eq!(hard.bounce_type, Some(BounceType::Hard));
        assert_eq!(hard.reason.as_deref(), Some("500 unknown recipient"));
        assert_eq!(m.events[4].bounce_type, Some(BounceType::Soft));
        assert_eq!(m.events[5].reason.as_deref(), Some("Bounced Address"));
        let machine = &m.events[6];
        assert_eq!(machine.context.network.as_deref(), Some(PROVIDER_FLAGGED));
        let human = &m.events[7];
        assert_eq!(human.context.network, None);
        assert_eq!(human.context.ip.as_deref(), Some("255.255.255.0"));
        assert_eq!(
            m.events[8].link_url.as_deref(),
            Some("https://shop.example.com/spring")
        );
        assert_eq!(
            m.events[9].recipient_id.as_deref(),
            Some("customer-42"),
            "beacon-recipient wins"
        );
        // Ids come from sg_event_id: the same batch twice maps to the same ids.
        let again = map(SAMPLE.as_bytes(), &source).unwrap();
        assert_eq!(
            m.events.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
            again.events.iter().map(|e| &e.event_id).collect::<Vec<_>>()
        );
        let text = serde_json::to_string(&m.events).unwrap();
        assert!(!text.contains("example@test.com"));
        assert!(map(b"{\"event\":\"open\"}", &source).is_err());
    }
}
