//! Per-tenant provider credentials (SendGrid's verification key, Mailgun's signing key,
//! Postmark's webhook token, Twilio's auth token), the SES configuration sets that name
//! a tenant, and the Mailgun tokens already used: the port they sit behind, and how a
//! credential is sealed.
//!
//! A credential is stored only sealed: AES-256-GCM under a key derived from the ingest
//! secret (HKDF-SHA256 of the key the secret marks active, expanded with the tenant),
//! with the tenant and provider as associated data, so a sealed value copied onto
//! another tenant's or provider's item does not open. The sealed text names the key it
//! was sealed under, so the secret can gain a new active key and old credentials still
//! open. Credentials never appear in `Debug` output or logs; `list` shows a fingerprint.
//!
//! Rotation keeps the previous credential valid for a grace period, so the provider's
//! retries of requests signed before the change still verify.

use super::Provider;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hkdf::Hkdf;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::future::Future;
use thiserror::Error;

const SEAL_INFO: &[u8] = b"beacon provider credential v1";
/// The key of the ingest secret that makes recipient ids; it must stay in the secret.
pub const RECIPIENT_ID_KEY: &str = "k1";
const MIN_KEY_BYTES: usize = 32;

/// The ingest secret: `{"active": "k1", "k1": "<secret>", ...}` (the same shape as
/// the tracking keys). `k1` also keys recipient ids ([`super::Pseudonyms`]) and must
/// never be removed; a newly active key seals new credentials.
pub struct IngestKeys {
    keys: Vec<(String, Hkdf<Sha256>)>,
    active: usize,
    pseudonyms: super::Pseudonyms,
}

impl fmt::Debug for IngestKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestKeys")
            .field("active", &self.keys[self.active].0)
            .field("keys", &self.keys.iter().map(|k| &k.0).collect::<Vec<_>>())
            .finish()
    }
}

crate::message_error!(
    /// Why the ingest secret cannot be used.
    BadIngestKeys
);

/// Why a sealed credential did not open.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    #[error("sealed credential is not in the `<key id>.<nonce>.<ciphertext>` form")]
    Malformed,
    #[error("sealed under key `{0}`, which the ingest secret no longer holds")]
    UnknownKey(String),
    #[error("sealed credential does not open (another tenant's or provider's, or altered)")]
    Tampered,
}

impl IngestKeys {
    pub fn from_json(text: &str) -> Result<Self, BadIngestKeys> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| BadIngestKeys(format!("ingest secret is not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| BadIngestKeys("ingest secret is not a JSON object".into()))?;
        let active = object
            .get("active")
            .and_then(Value::as_str)
            .ok_or_else(|| BadIngestKeys("ingest secret has no `active` key id".into()))?;
        let mut keys = Vec::new();
        let mut pseudonyms = None;
        for (id, secret) in object.iter().filter(|(id, _)| id.as_str() != "active") {
            let secret = secret
                .as_str()
                .ok_or_else(|| BadIngestKeys(format!("ingest key `{id}` is not a string")))?;
            if secret.len() < MIN_KEY_BYTES {
                return Err(BadIngestKeys(format!(
                    "ingest key `{id}` is shorter than {MIN_KEY_BYTES} bytes"
                )));
            }
            if id == RECIPIENT_ID_KEY {
                pseudonyms = Some(super::Pseudonyms::new(secret.as_bytes()));
            }
            keys.push((id.clone(), Hkdf::<Sha256>::new(None, secret.as_bytes())));
        }
        let active = keys
            .iter()
            .position(|(id, _)| id == active)
            .ok_or_else(|| BadIngestKeys(format!("active ingest key `{active}` is missing")))?;
        let pseudonyms = pseudonyms.ok_or_else(|| {
            BadIngestKeys(format!(
                "ingest secret has no `{RECIPIENT_ID_KEY}`: it keys recipient ids and must stay"
            ))
        })?;
        Ok(IngestKeys {
            keys,
            active,
            pseudonyms,
        })
    }

    /// The recipient-id keys.
    pub fn pseudonyms(&self) -> &super::Pseudonyms {
        &self.pseudonyms
    }

    fn cipher(hkdf: &Hkdf<Sha256>, tenant: &str) -> Aes256Gcm {
        let mut key = [0u8; 32];
        hkdf.expand_multi_info(&[SEAL_INFO, tenant.as_bytes()], &mut key)
            .expect("32 bytes is well under HKDF-SHA256's limit");
        Aes256Gcm::new(&key.into())
    }

    fn aad(tenant: &str, provider: Provider) -> Vec<u8> {
        format!("{tenant}\0{provider}").into_bytes()
    }

    /// `secret` sealed for `tenant` and `provider` under the active key, with a fresh
    /// random nonce: `<key id>.<nonce>.<ciphertext>` (base64).
    pub fn seal(&self, tenant: &str, provider: Provider, secret: &str) -> String {
        let (id, hkdf) = &self.keys[self.active];
        let nonce: [u8; 12] = rand::random();
        let sealed = Self::cipher(hkdf, tenant)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: &Self::aad(tenant, provider),
                },
            )
            .expect("AES-GCM encrypts any message under 64 GB");
        format!(
            "{id}.{}.{}",
            STANDARD.encode(nonce),
            STANDARD.encode(sealed)
        )
    }

    pub fn open(
        &self,
        tenant: &str,
        provider: Provider,
        sealed: &str,
    ) -> Result<String, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(id), Some(nonce), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Malformed);
        };
        let nonce = STANDARD.decode(nonce).map_err(|_| SealError::Malformed)?;
        let body = STANDARD.decode(body).map_err(|_| SealError::Malformed)?;
        if nonce.len() != 12 {
            return Err(SealError::Malformed);
        }
        let (_, hkdf) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let plain = Self::cipher(hkdf, tenant)
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &body,
                    aad: &Self::aad(tenant, provider),
                },
            )
            .map_err(|_| SealError::Tampered)?;
        String::from_utf8(plain).map_err(|_| SealError::Tampered)
    }
}

/// A credential as stored: sealed, with what `beacon provider list` may show.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub tenant_id: String,
    pub provider: Provider,
    pub sealed: String,
    /// The credential before the last rotation, valid until `previous_until` (Unix s).
    pub previous_sealed: Option<String>,
    pub previous_until: Option<i64>,
    /// First 12 hex digits of the SHA-256 of the plain credential: tells two apart
    /// without showing either.
    pub fingerprint: String,
    pub created_at: String,
    pub rotated_at: Option<String>,
}

impl fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredential")
            .field("tenant_id", &self.tenant_id)
            .field("provider", &self.provider)
            .field("fingerprint", &self.fingerprint)
            .field("previous_until", &self.previous_until)
            .finish_non_exhaustive()
    }
}

/// The fingerprint `list` shows for a plain credential.
pub fn fingerprint(secret: &str) -> String {
    hex::encode(&Sha256::digest(secret.as_bytes())[..6])
}

/// The plain credentials a request may be verified with: the current one, and the
/// previous one while its grace period lasts. Never printed.
pub struct Secrets(Vec<String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    pub fn new(secrets: Vec<String>) -> Self {
        Secrets(secrets)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl StoredCredential {
    /// A new credential for `tenant` and `provider`.
    pub fn new(
        keys: &IngestKeys,
        tenant: &str,
        provider: Provider,
        secret: &str,
        now: &str,
    ) -> Self {
        StoredCredential {
            tenant_id: tenant.to_string(),
            provider,
            sealed: keys.seal(tenant, provider, secret),
            previous_sealed: None,
            previous_until: None,
            fingerprint: fingerprint(secret),
            created_at: now.to_string(),
            rotated_at: None,
        }
    }

    /// The same credential with `secret` in place; the old one keeps verifying until
    /// `grace_until` (Unix seconds).
    pub fn rotated(&self, keys: &IngestKeys, secret: &str, now: &str, grace_until: i64) -> Self {
        StoredCredential {
            sealed: keys.seal(&self.tenant_id, self.provider, secret),
            previous_sealed: Some(self.sealed.clone()),
            previous_until: Some(grace_until),
            fingerprint: fingerprint(secret),
            rotated_at: Some(now.to_string()),
            ..self.clone()
        }
    }

    /// What a request may be verified with at `now` (Unix seconds).
    pub fn secrets(&self, keys: &IngestKeys, now: i64) -> Result<Secrets, SealError> {
        let mut out = vec![keys.open(&self.tenant_id, self.provider, &self.sealed)?];
        if let (Some(previous), Some(until)) = (&self.previous_sealed, self.previous_until) {
            if now <= until {
                out.push(keys.open(&self.tenant_id, self.provider, previous)?);
            }
        }
        Ok(Secrets(out))
    }
}

#[derive(Debug, Error)]
pub enum ProviderStoreError {
    #[error("provider store unavailable: {0}")]
    Unavailable(String),
    #[error("provider record `{0}` is incomplete")]
    Corrupt(String),
}

/// Where credentials, configuration-set tenants and used tokens live (DynamoDB in
/// AWS: `beacon_aws::dynamo::providers`).
pub trait ProviderStore: Send + Sync {
    fn credential(
        &self,
        tenant: &str,
        provider: Provider,
    ) -> impl Future<Output = Result<Option<StoredCredential>, ProviderStoreError>> + Send;
    fn put_credential(
        &self,
        credential: &StoredCredential,
    ) -> impl Future<Output = Result<(), ProviderStoreError>> + Send;
    /// Whether there was one to remove.
    fn remove_credential(
        &self,
        tenant: &str,
        provider: Provider,
    ) -> impl Future<Output = Result<bool, ProviderStoreError>> + Send;
    /// Every credential (of `tenant`, if given).
    fn credentials(
        &self,
        tenant: Option<&str>,
    ) -> impl Future<Output = Result<Vec<StoredCredential>, ProviderStoreError>> + Send;
    /// The tenant an SES configuration set's events belong to.
    fn configuration_set_tenant(
        &self,
        configuration_set: &str,
    ) -> impl Future<Output = Result<Option<String>, ProviderStoreError>> + Send;
    fn put_configuration_set(
        &self,
        configuration_set: &str,
        tenant: &str,
    ) -> impl Future<Output = Result<(), ProviderStoreError>> + Send;
    fn remove_configuration_set(
        &self,
        configuration_set: &str,
    ) -> impl Future<Output = Result<bool, ProviderStoreError>> + Send;
    /// Every configuration set mapped to a tenant: (set, tenant).
    fn configuration_sets(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, String)>, ProviderStoreError>> + Send;
    /// Records that `token` was used by `tenant`'s `provider`; false if it was already
    /// (a replay). Kept until `expires_at` (Unix seconds), after which the timestamp
    /// check refuses the request anyway.
    fn first_use(
        &self,
        tenant: &str,
        provider: Provider,
        token: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<bool, ProviderStoreError>> + Send;
    /// Undoes [`Self::first_use`] when the request's events could not be stored, so the
    /// provider's retry with the same token is taken.
    fn forget_use(
        &self,
        tenant: &str,
        provider: Provider,
        token: &str,
    ) -> impl Future<Output = Result<(), ProviderStoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(json: &str) -> IngestKeys {
        IngestKeys::from_json(json).unwrap()
    }

    const K1: &str = r#"{"active":"k1","k1":"0123456789abcdef0123456789abcdef"}"#;

    #[test]
    fn sealed_credentials_open_only_for_their_tenant_and_provider() {
        let k = keys(K1);
        let sealed = k.seal("acme", Provider::Mailgun, "key-123");
        assert!(!sealed.contains("key-123"));
        assert_ne!(
            sealed,
            k.seal("acme", Provider::Mailgun, "key-123"),
            "fresh nonce"
        );
        assert_eq!(
            k.open("acme", Provider::Mailgun, &sealed).unwrap(),
            "key-123"
        );
        assert_eq!(
            k.open("other", Provider::Mailgun, &sealed),
            Err(SealError::Tampered)
        );
        assert_eq!(
            k.open("acme", Provider::Postmark, &sealed),
            Err(SealError::Tampered)
        );
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(k
            .open(
                "acme",
                Provider::Mailgun,
                std::str::from_utf8(&altered).unwrap()
            )
            .is_err());
    }

    #[test]
    fn a_new_active_key_still_opens_what_the_old_one_sealed() {
        let old = keys(K1);
        let sealed = old.seal("acme", Provider::Twilio, "tok");
        let new = keys(
            r#"{"active":"k2","k1":"0123456789abcdef0123456789abcdef","k2":"fedcba9876543210fedcba9876543210"}"#,
        );
        assert_eq!(new.open("acme", Provider::Twilio, &sealed).unwrap(), "tok");
        assert!(new.seal("acme", Provider::Twilio, "tok").starts_with("k2."));
        let without_k1 =
            IngestKeys::from_json(r#"{"active":"k2","k2":"fedcba9876543210fedcba9876543210"}"#)
                .unwrap_err();
        assert!(without_k1.contains("recipient ids"), "{without_k1}");
    }

    #[test]
    fn rotation_keeps_the_previous_secret_for_its_grace_period_only() {
        let k = keys(K1);
        let c = StoredCredential::new(&k, "acme", Provider::SendGrid, "old", "t0");
        let r = c.rotated(&k, "new", "t1", 1_000);
        let at = |now| {
            r.secrets(&k, now)
                .unwrap()
                .iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(at(999), ["new", "old"]);
        assert_eq!(at(1_001), ["new"]);
        assert_eq!(r.fingerprint, fingerprint("new"));
        assert!(!format!("{r:?}").contains(&r.sealed));
    }
}
