//! Turning a verified tracking token into an event: the domain half of the open pixel
//! and the click redirect.

pub mod sink;
pub mod token;

use crate::event::context::IpPolicy;
use crate::event::validate::{truncate_millis, DEFAULT_CHANNEL};
use crate::event::{new_event_id, Event, EventType, RequestContext};
use crate::metrics;
use crate::tracking::sink::EventSink;
use crate::tracking::token::{Claim, Keyring, TokenError, TokenKind};
use crate::verdict::networks::Networks;
use chrono::{DateTime, Utc};

/// What the open pixel and the click redirect share: the keys that verify their
/// tokens (every tenant's, derived from the master keys; see [`token`]), the sink their
/// events go to, what to keep of the client's IP, and the range lists its full address
/// is labelled from ([`Networks::shipped`] in the functions).
pub struct Tracker<S> {
    pub keyring: Keyring,
    pub sink: S,
    pub ip_policy: IpPolicy,
    pub networks: &'static Networks,
}

impl<S: EventSink> Tracker<S> {
    /// Verifies `token` for the endpoint `kind` and, if it holds, records the open or
    /// click. A refused token records nothing; a sink failure is logged and counted
    /// but not returned: the recipient still gets the pixel or the redirect.
    pub async fn record(
        &self,
        token: &str,
        kind: TokenKind,
        context: RequestContext,
        now: DateTime<Utc>,
    ) -> Result<Claim, TokenError> {
        let endpoint = match kind {
            TokenKind::Open => "open",
            TokenKind::Click => "click",
        };
        let claim = match self.keyring.verify(token, kind, now.timestamp()) {
            Ok(claim) => claim,
            Err(err) => {
                tracing::warn!(endpoint, reason = err.reason(), "tracking token refused");
                metrics::count(
                    "TokensRejected",
                    1,
                    &[("Endpoint", endpoint), ("Reason", err.reason())],
                );
                return Err(err);
            }
        };
        if claim.legacy {
            // Tells the operator whether old links are still in use before the
            // legacy window closes.
            metrics::count("LegacyTokensAccepted", 1, &[("Endpoint", endpoint)]);
        }
        let event_type = match kind {
            TokenKind::Open => EventType::Opened,
            TokenKind::Click => EventType::Clicked,
        };
        let event = tracked_event(event_type, &claim, context, now);
        let unstored = self.sink.put(std::slice::from_ref(&event)).await;
        if let Some(lost) = unstored.first() {
            tracing::error!(endpoint, event_id = %event.event_id, error = %lost.error, "tracking event lost");
            metrics::count("TrackingEventsLost", 1, &[("Endpoint", endpoint)]);
        }
        Ok(claim)
    }
}

/// The classic 43-byte transparent 1x1 GIF.
pub const PIXEL_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The `message.opened` or `link.clicked` event a verified token stands for.
pub fn tracked_event(
    kind: EventType,
    claim: &Claim,
    context: RequestContext,
    now: DateTime<Utc>,
) -> Event {
    let now = truncate_millis(now);
    let r = &claim.recipient;
    let mut event = Event::new(new_event_id(), r.tenant_id.clone(), kind, now, now);
    event.campaign_id = (!r.campaign_id.is_empty()).then(|| r.campaign_id.clone());
    event.message_id = Some(r.message_id.clone());
    event.recipient_id = Some(r.recipient_id.clone());
    event.channel = Some(DEFAULT_CHANNEL.to_string());
    event.link_url = claim.url.clone();
    event.context = context;
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracking::token::{Recipient, TokenKind};

    #[test]
    fn pixel_is_a_43_byte_gif() {
        assert_eq!(PIXEL_GIF.len(), 43);
        assert_eq!(&PIXEL_GIF[..6], b"GIF89a");
        assert_eq!(PIXEL_GIF[42], 0x3b);
    }

    #[test]
    fn click_event_carries_the_signed_destination() {
        let claim = Claim {
            kind: TokenKind::Click,
            key_id: "k1".into(),
            recipient: Recipient {
                tenant_id: "acme".into(),
                campaign_id: String::new(),
                message_id: "m1".into(),
                recipient_id: "r1".into(),
            },
            url: Some("https://x.example/".into()),
            expires_at: 0,
            legacy: false,
        };
        let e = tracked_event(
            EventType::Clicked,
            &claim,
            RequestContext::default(),
            Utc::now(),
        );
        assert_eq!(e.kind, EventType::Clicked);
        assert_eq!(
            e.campaign_id, None,
            "empty campaign means transactional mail"
        );
        assert_eq!(e.link_url.as_deref(), Some("https://x.example/"));
        assert_eq!(e.channel.as_deref(), Some("email"));
    }

    #[tokio::test]
    async fn only_authentic_tokens_of_valid_tenants_are_recorded() {
        use crate::testkit::memory::MemorySink;
        use crate::testkit::{test_keyring, test_legacy_token, test_recipient, test_tracker};
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;

        let mut tracker = test_tracker(MemorySink::default());
        let now = Utc::now();
        let exp = (now.timestamp() + 60) as u32;
        let record = |token: String| {
            let tracker = &tracker;
            async move {
                tracker
                    .record(&token, TokenKind::Open, RequestContext::default(), now)
                    .await
            }
        };
        // Tenant `acmf`'s token relabelled as `acme`'s.
        let acmf = Recipient {
            tenant_id: "acmf".into(),
            ..test_recipient()
        };
        let token = test_keyring().sign_open(&acmf, exp).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
        let at = raw.windows(4).position(|w| w == b"acmf").unwrap();
        raw[at + 3] = b'e';
        let moved = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(record(moved).await, Err(TokenError::BadSignature));
        // Old links: refused without a legacy window.
        let legacy = test_legacy_token(&test_recipient(), None, exp);
        assert_eq!(record(legacy.clone()).await, Err(TokenError::Retired));
        assert!(tracker.sink.events().is_empty());

        tracker.keyring = test_keyring().with_legacy_tokens_until(Some(now.timestamp() + 60));
        let record = |token: String| {
            let tracker = &tracker;
            async move {
                tracker
                    .record(&token, TokenKind::Open, RequestContext::default(), now)
                    .await
            }
        };
        let no_tenant = Recipient {
            tenant_id: String::new(),
            ..test_recipient()
        };
        let empty = test_legacy_token(&no_tenant, None, exp);
        assert_eq!(record(empty).await, Err(TokenError::BadTenant));
        assert!(
            tracker.sink.events().is_empty(),
            "nothing passed downstream"
        );
        assert!(record(legacy).await.unwrap().legacy);
        let fresh = test_keyring().sign_open(&test_recipient(), exp).unwrap();
        assert!(!record(fresh).await.unwrap().legacy);
        let tenants: Vec<String> = tracker
            .sink
            .events()
            .into_iter()
            .map(|e| e.tenant_id)
            .collect();
        assert_eq!(tenants, ["acme", "acme"]);
    }
}
