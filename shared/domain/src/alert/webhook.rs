//! Where notices go: email addresses and a signed webhook; signing and verifying.

use super::*;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Where a tenant's notices go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destinations {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// A webhook: every notice is POSTed to `url` with its body signed by `secret`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
}

impl Destinations {
    pub fn is_empty(&self) -> bool {
        self.emails.is_empty() && self.webhook.is_none()
    }

    /// `ops@acme.example, webhook https://...` (or `no email`), for people.
    pub fn describe(&self) -> String {
        let emails = if self.emails.is_empty() {
            "no email".to_string()
        } else {
            self.emails.join(", ")
        };
        let webhook = self
            .webhook
            .as_ref()
            .map(|w| format!(", webhook {}", w.url))
            .unwrap_or_default();
        format!("{emails}{webhook}")
    }
}

/// Checks a webhook URL as a tenant sets it: https to a public address, checked after
/// resolving its name ([`crate::alert::outbound::validate`]; `http` to this machine only with
/// the local-development switch). Returns the URL as it is to be stored, and why its
/// name could not be checked yet, if it could not.
pub async fn validate_webhook_url(
    text: &str,
    policy: crate::alert::outbound::Policy,
    lookup: &dyn crate::alert::outbound::Lookup,
) -> Result<crate::alert::outbound::Checked, Invalid> {
    crate::alert::outbound::validate(text, policy, lookup)
        .await
        .map_err(|e| Invalid(format!("webhook URL {e}")))
}

/// Checks an email address for notices.
pub fn validate_email(address: &str) -> Result<(), Invalid> {
    if email_address::EmailAddress::is_valid(address) {
        Ok(())
    } else {
        Err(Invalid(format!("`{address}` is not an email address")))
    }
}

/// A fresh webhook signing secret: `whsec_` and 32 random bytes, base64url.
pub fn new_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The header a webhook request carries its signature in.
pub const SIGNATURE_HEADER: &str = "Beacon-Signature";

/// `t={unix seconds},v1={hex HMAC-SHA256 of "{t}.{body}" keyed by the secret}`. The
/// time is signed too, so a captured request cannot be replayed later.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Verifies a signature header as a receiver would: the MAC matches (in constant
/// time) and the time is within `tolerance_secs` of `now`.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), Invalid> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(s.to_string()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| Invalid("the signature has no t= timestamp".into()))?;
    // Checked: the header is the sender's (or an attacker's) to choose.
    let age = now.checked_sub(timestamp).ok_or_else(|| {
        Invalid(format!(
            "the signature's time t={timestamp} is out of range"
        ))
    })?;
    if age.checked_abs().is_none_or(|a| a > tolerance_secs) {
        return Err(Invalid(format!(
            "the signature is {age} s old; at most {tolerance_secs} s allowed"
        )));
    }
    let expected = hex::encode(mac(secret, timestamp, body));
    let matched = signatures.iter().any(|s| {
        use subtle::ConstantTimeEq;
        s.len() == expected.len() && bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
    });
    if matched {
        Ok(())
    } else {
        Err(Invalid("the signature does not match the body".into()))
    }
}
