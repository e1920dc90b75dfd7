//! Twilio's SMS status callbacks: a form-encoded POST per status change, signed in
//! `X-Twilio-Signature` as base64 HMAC-SHA1 under the account's auth token over the full
//! URL Twilio called (query included) followed by every POST parameter's name and value,
//! sorted by name.
//!
//! | `MessageStatus`                                     | Beacon event (channel `sms`) | extra                    |
//! |-----------------------------------------------------|------------------------------|--------------------------|
//! | `sent`                                              | `message.sent`               |                          |
//! | `delivered`                                         | `message.delivered`          |                          |
//! | `undelivered`, `failed`                             | `message.failed`             | reason `<status>: error <ErrorCode>` |
//! | `queued`, `accepted`, `scheduled`, `sending`, `canceled`, `read`, ... | skipped  |                          |
//!
//! Campaign and recipient come from the callback URL's query, `beacon-campaign` and
//! `beacon-recipient` (set them in the `StatusCallback` URL when sending); without a
//! recipient, the `To` number is hashed. Twilio sends each status of a message once, so
//! the id is the message SID and the status; the time is when Beacon received it
//! (status callbacks carry none).

use super::credentials::Secrets;
use super::{Draft, Mapped, Refused, Source, Who};
use crate::event::EventType;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The form's parameters, in order.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Checks the signature of a callback to `url` with `params`, under any of the tenant's
/// auth tokens.
pub fn verify(
    keys: &Secrets,
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> Result<(), Refused> {
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or(Refused::Missing("X-Twilio-Signature"))?;
    let presented = STANDARD
        .decode(signature.trim())
        .map_err(|_| Refused::BadSignature)?;
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Stable: repeated names keep their order.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let verified = keys.iter().any(|token| {
        let mut mac =
            Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(url.as_bytes());
        for (name, value) in &sorted {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
        mac.verify_slice(&presented).is_ok()
    });
    if verified {
        Ok(())
    } else {
        Err(Refused::BadSignature)
    }
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Maps a verified callback (`query`: the callback URL's own parameters).
pub fn map(params: &[(String, String)], query: &[(String, String)], source: &Source) -> Mapped {
    let status = get(params, "MessageStatus")
        .or(get(params, "SmsStatus"))
        .unwrap_or("(none)")
        .to_string();
    let draft = draft(params, query, &status, source);
    source.finish_all([(0, status, draft)])
}

fn draft(
    params: &[(String, String)],
    query: &[(String, String)],
    status: &str,
    source: &Source,
) -> Result<Draft, String> {
    let kind = match status {
        "sent" => EventType::Sent,
        "delivered" => EventType::Delivered,
        "undelivered" | "failed" => EventType::Failed,
        other => {
            return Err(format!(
            "Twilio status `{other}` is not recorded (only sent, delivered, undelivered, failed)"
        ))
        }
    };
    let sid = get(params, "MessageSid")
        .or(get(params, "SmsSid"))
        .ok_or("no MessageSid")?;
    let mut d = Draft::new(kind, source.now, status);
    d.message_id = Some(sid.to_string());
    d.campaign_id = get(query, "beacon-campaign").map(str::to_string);
    d.recipient = match (get(query, "beacon-recipient"), get(params, "To")) {
        (Some(id), _) => Some(Who::Id(id.to_string())),
        (None, Some(number)) => Some(Who::Address(number.to_string())),
        (None, None) => None,
    };
    d.identity = vec![sid.to_string(), status.to_string()];
    if d.kind == EventType::Failed {
        d.reason = Some(match get(params, "ErrorCode") {
            Some(code) => format!("{status}: error {code}"),
            None => status.to_string(),
        });
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

    const DELIVERED: &str = include_str!("../../../../events/ingest-webhooks/twilio-delivered.txt");
    const URL: &str = "https://t.example.com/v1/webhooks/twilio/acme?beacon-campaign=spring-sms";

    fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
        let mut sorted = params.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).unwrap();
        mac.update(url.as_bytes());
        for (k, v) in &sorted {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
        STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn every_byte_of_the_body_the_url_and_the_signature_counts() {
        let keys = Secrets::new(vec!["old-token".into(), "auth-token".into()]);
        let body = DELIVERED.trim().as_bytes();
        let params = parse_form(body);
        let sig = sign("auth-token", URL, &params);
        assert_eq!(verify(&keys, URL, &params, Some(&sig)), Ok(()));
        for i in 0..body.len() {
            let mut b = body.to_vec();
            b[i] ^= 1;
            assert!(
                verify(&keys, URL, &parse_form(&b), Some(&sig)).is_err(),
                "byte {i}"
            );
        }
        for i in 0..URL.len() {
            let mut u = URL.as_bytes().to_vec();
            u[i] ^= 1;
            let u = String::from_utf8(u).unwrap();
            assert!(
                verify(&keys, &u, &params, Some(&sig)).is_err(),
                "url byte {i}"
            );
        }
        for i in 0..sig.len() {
            let mut s = sig.clone().into_bytes();
            s[i] = if s[i] == b'B' { b'C' } else { b'B' };
            let s = String::from_utf8(s).unwrap();
            assert!(
                verify(&keys, URL, &params, Some(&s)).is_err(),
                "signature char {i}"
            );
        }
        assert_eq!(
            verify(&keys, URL, &params, None),
            Err(Refused::Missing("X-Twilio-Signature"))
        );
    }

    #[test]
    fn statuses_map_on_channel_sms() {
        let p = Pseudonyms::new(b"0123456789abcdef0123456789abcdef").for_tenant("acme");
        let limits = Limits::default();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let source = Source {
            provider: Provider::Twilio,
            tenant_id: "acme",
            pseudonyms: &p,
            now,
            limits: &limits,
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        };
        let params = parse_form(DELIVERED.trim().as_bytes());
        let query = vec![("beacon-campaign".to_string(), "spring-sms".to_string())];
        let m = map(&params, &query, &source);
        let e = &m.events[0];
        assert_eq!(e.kind, EventType::Delivered);
        assert_eq!(e.channel.as_deref(), Some("sms"));
        assert_eq!(e.provider.as_deref(), Some("twilio"));
        assert_eq!(e.campaign_id.as_deref(), Some("spring-sms"));
        assert_eq!(
            e.message_id.as_deref(),
            Some("SM1342fe1b2c904d1ab04f0fc7a58abca9")
        );
        assert_eq!(
            e.recipient_id.as_deref(),
            Some(p.recipient_id("+15558675310").as_str())
        );
        assert_eq!(e.event_time, now);
        assert!(!serde_json::to_string(e).unwrap().contains("5558675310"));

        let with = |status: &str, extra: &[(&str, &str)]| {
            let mut ps: Vec<(String, String)> = params
                .iter()
                .filter(|(k, _)| k != "MessageStatus" && k != "SmsStatus")
                .cloned()
                .collect();
            ps.push(("MessageStatus".into(), status.into()));
            ps.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            map(&ps, &[], &source)
        };
        let failed = with("undelivered", &[("ErrorCode", "30003")]);
        assert_eq!(failed.events[0].kind, EventType::Failed);
        assert_eq!(
            failed.events[0].reason.as_deref(),
            Some("undelivered: error 30003")
        );
        assert_eq!(failed.events[0].campaign_id, None);
        assert_eq!(with("sent", &[]).events[0].kind, EventType::Sent);
        for intermediate in ["queued", "accepted", "sending", "scheduled"] {
            assert_eq!(with(intermediate, &[]).skipped.len(), 1, "{intermediate}");
        }
        // The same status twice is the same event.
        assert_eq!(
            m.events[0].event_id,
            map(&params, &query, &source).events[0].event_id
        );
        let tagged = map(
            &params,
            &[("beacon-recipient".to_string(), "customer-3".to_string())],
            &source,
        );
        assert_eq!(tagged.events[0].recipient_id.as_deref(), Some("customer-3"));
    }
}
