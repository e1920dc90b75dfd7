//! Signed tracking tokens for the open pixel and the click redirect.
//!
//! A token is `base64url(header | fields | expiry | tag)`:
//!
//! ```text
//! version(1: 2) kind(1: 'o' open, 'c' click) kid_len(1) kid
//! (varint len, bytes) x 4: tenant, campaign, message, recipient
//! (varint len, bytes)    : destination URL (click tokens only)
//! expires_at: u32 big-endian unix seconds
//! tag: first 16 bytes of HMAC-SHA256(tenant key, everything before the tag)
//!
//! tenant key = HKDF-SHA256(IKM = master[kid], no salt,
//!                          info = "beacon tracking v1" 0x00 tenant, 32 bytes)
//! ```
//!
//! Invariants:
//! - A token verifies only under the key derived for the tenant it names, from the
//!   master key it names. A [`TenantKey`] (what a tenant is handed) therefore signs for
//!   its own tenant only, and changing the tenant inside a token breaks its tag.
//! - Every claim that verifies names a tenant id that passed
//!   [`crate::tenant::check`]; a token naming anything else is refused, never passed on.
//! - Before the tag is checked, only the header and the tenant field are read: the
//!   tenant picks the key. Everything else is parsed from authenticated bytes.
//! - The click token carries the destination itself, so the redirect can only ever go
//!   where the signer sent it: there is no second parameter to swap.
//! - Keys rotate by id: new links are signed under the active master key, and every
//!   master key still in the keyring verifies.
//! - Format 1 tokens (tagged with the raw master key, so anyone who held the master
//!   keyring can mint them for any tenant) verify only until the keyring's
//!   `legacy_tokens_until` instant, and never without it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use std::fmt;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Tokens tagged with a per-tenant key.
const VERSION: u8 = 2;
/// Tokens tagged with the raw master key, before per-tenant keys.
const LEGACY_VERSION: u8 = 1;
/// HKDF `info` before the tenant id; the NUL keeps `ab` + `c` apart from `a` + `bc`
/// should the prefix ever change, and the label keeps these keys apart from any other
/// use of the master secret.
const DERIVATION_INFO: &[u8] = b"beacon tracking v1\0";
const TAG_LEN: usize = 16;
/// Keys shorter than this are refused: the tag is only as strong as the key.
pub const MIN_KEY_BYTES: usize = 32;
/// Length of a derived tenant key.
pub const TENANT_KEY_BYTES: usize = 32;
/// Longest token accepted, so a hostile request can't make us decode megabytes.
pub const MAX_TOKEN_CHARS: usize = 4096;
/// The keyring entry naming the key that signs.
const ACTIVE: &str = "active";
/// The keyring entry holding the format 1 deadline (too long to be a key id).
const LEGACY_UNTIL: &str = "legacy_tokens_until";

/// Which endpoint a token is for; an open token never works as a click token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Open,
    Click,
}

impl TokenKind {
    fn byte(self) -> u8 {
        match self {
            TokenKind::Open => b'o',
            TokenKind::Click => b'c',
        }
    }
}

/// Who and what a tracking link is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub tenant_id: String,
    /// Empty for mail outside a campaign (transactional mail).
    pub campaign_id: String,
    pub message_id: String,
    pub recipient_id: String,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub kind: TokenKind,
    pub key_id: String,
    pub recipient: Recipient,
    /// The signed destination (click tokens only).
    pub url: Option<String>,
    pub expires_at: u32,
    /// A format 1 token, accepted inside the keyring's legacy window.
    pub legacy: bool,
}

/// Why a token was refused. The variant names are the metric reasons.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is not well-formed")]
    Malformed,
    #[error("token was signed with key `{0}`, which is not in the keyring")]
    UnknownKey(String),
    #[error("token does not name a valid tenant id")]
    BadTenant,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token is for a different endpoint")]
    WrongKind,
    #[error("token expired")]
    Expired,
    #[error("token has the retired format 1, which this keyring no longer accepts")]
    Retired,
}

impl TokenError {
    /// Short, stable label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::BadTenant => "bad_tenant",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongKind => "wrong_kind",
            TokenError::Expired => "expired",
            TokenError::Retired => "retired_format",
        }
    }
}

/// Why a token could not be signed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignError {
    /// The text says what a tenant id may be.
    #[error("{0}")]
    BadTenant(String),
    #[error("this tenant key signs for tenant `{key}` only, not for `{asked}`")]
    WrongTenant { key: String, asked: String },
    #[error("key `{0}` is not in the keyring")]
    UnknownKey(String),
}

#[derive(Debug, Error)]
pub enum KeyringError {
    #[error(
        "tracking keys must be a JSON object like {{\"active\":\"k1\",\"k1\":\"<secret>\"}}: {0}"
    )]
    NotJson(String),
    #[error("tracking keys need an \"active\" entry naming the key that signs new links")]
    NoActive,
    #[error("the active key `{0}` has no secret in the keyring")]
    ActiveMissing(String),
    #[error("key id `{0}` must be 1-16 of A-Z a-z 0-9 _ -")]
    BadKeyId(String),
    #[error("key `{0}` is too short: at least {MIN_KEY_BYTES} bytes are needed")]
    ShortKey(String),
    #[error("key `{0}` must be a string")]
    NotAString(String),
    #[error("\"{LEGACY_UNTIL}\" must be an RFC 3339 time like \"2027-06-30T00:00:00Z\": `{0}`")]
    BadLegacyUntil(String),
    #[error(
        "a tenant key is JSON like {{\"tenant\":\"acme\",\"key_id\":\"k1\",\"secret\":\"<base64url of {TENANT_KEY_BYTES} bytes>\"}} (make one with `beacon tracking-key derive`): {0}"
    )]
    BadTenantKey(String),
}

/// Anything that signs tracking tokens: the operator's [`Keyring`] (any tenant) or a
/// [`TenantKey`] (its own tenant only).
pub trait TokenSigner: fmt::Debug {
    /// Signs an open token for `recipient`.
    fn sign_open(&self, recipient: &Recipient, expires_at: u32) -> Result<String, SignError>;
    /// Signs a click token bound to the exact destination `url`.
    fn sign_click(
        &self,
        recipient: &Recipient,
        url: &str,
        expires_at: u32,
    ) -> Result<String, SignError>;
}

struct MasterKey {
    id: String,
    /// HKDF after its extract step: expanding a tenant key is then a single HMAC.
    hkdf: Hkdf<Sha256>,
    /// The raw master key, for format 1 tokens. Keyed once; cloning a keyed HMAC
    /// skips the key schedule on every request.
    legacy: HmacSha256,
}

/// The master keys, by id: the active one signs, every one verifies. Secrets never
/// appear in `Debug` output.
pub struct Keyring {
    keys: Vec<MasterKey>,
    active: usize,
    /// Unix seconds until which format 1 tokens verify; `None`: never.
    legacy_until: Option<i64>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.keys[self.active].id)
            .field("keys", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>())
            .field("legacy_until", &self.legacy_until)
            .finish()
    }
}

fn valid_key_id(id: &str) -> bool {
    (1..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The 32-byte key of `tenant` under a master key for the use `info` names (see the
/// module docs; [`DERIVATION_INFO`] for tracking links).
fn expand(hkdf: &Hkdf<Sha256>, info: &[u8], tenant: &str) -> [u8; TENANT_KEY_BYTES] {
    let mut key = [0u8; TENANT_KEY_BYTES];
    hkdf.expand_multi_info(&[info, tenant.as_bytes()], &mut key)
        .expect("32 bytes is well under HKDF-SHA256's limit");
    key
}

fn extract(master: &[u8]) -> Hkdf<Sha256> {
    Hkdf::<Sha256>::new(None, master)
}

fn mac_for(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

impl Keyring {
    /// Parses `{"active": "k2", "k2": "<secret>", "k1": "<old secret>"}`, the format
    /// of the Secrets Manager secret and of the `BEACON_TRACKING_KEYS` variable. An
    /// optional `"legacy_tokens_until": "<RFC 3339 time>"` lets format 1 tokens verify
    /// until then.
    pub fn from_json(text: &str) -> Result<Self, KeyringError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| KeyringError::NotJson(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| KeyringError::NotJson("not an object".into()))?;
        let active = object
            .get(ACTIVE)
            .and_then(Value::as_str)
            .ok_or(KeyringError::NoActive)?;
        let legacy_until = match object.get(LEGACY_UNTIL) {
            None => None,
            Some(v) => {
                let text = v.as_str().unwrap_or_default();
                let at = chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| KeyringError::BadLegacyUntil(v.to_string()))?;
                Some(at.timestamp())
            }
        };
        let mut secrets = Vec::new();
        for (id, secret) in object
            .iter()
            .filter(|(id, _)| !matches!(id.as_str(), ACTIVE | LEGACY_UNTIL))
        {
            let secret = secret
                .as_str()
                .ok_or_else(|| KeyringError::NotAString(id.clone()))?;
            secrets.push((id.clone(), secret.as_bytes().to_vec()));
        }
        Ok(Self::new(active, secrets)?.with_legacy_tokens_until(legacy_until))
    }

    /// Builds a keyring from `(key id, master secret)` pairs; `active` signs new
    /// tokens. Format 1 tokens are refused until [`Self::with_legacy_tokens_until`].
    pub fn new(active: &str, secrets: Vec<(String, Vec<u8>)>) -> Result<Self, KeyringError> {
        let mut keys = Vec::with_capacity(secrets.len());
        for (id, secret) in secrets {
            if !valid_key_id(&id) {
                return Err(KeyringError::BadKeyId(id));
            }
            if secret.len() < MIN_KEY_BYTES {
                return Err(KeyringError::ShortKey(id));
            }
            keys.push(MasterKey {
                id,
                hkdf: extract(&secret),
                legacy: mac_for(&secret),
            });
        }
        let active = keys
            .iter()
            .position(|k| k.id == active)
            .ok_or_else(|| KeyringError::ActiveMissing(active.to_string()))?;
        Ok(Keyring {
            keys,
            active,
            legacy_until: None,
        })
    }

    /// Lets format 1 tokens verify until unix second `until` (inclusive); `None`
    /// refuses them.
    pub fn with_legacy_tokens_until(mut self, until: Option<i64>) -> Self {
        self.legacy_until = until;
        self
    }

    pub fn legacy_tokens_until(&self) -> Option<i64> {
        self.legacy_until
    }

    pub fn active_key_id(&self) -> &str {
        &self.keys[self.active].id
    }

    /// The key `tenant` signs with under master key `key_id` (the active one if
    /// `None`): what the operator hands to that tenant.
    pub fn tenant_key(&self, tenant: &str, key_id: Option<&str>) -> Result<TenantKey, SignError> {
        let (id, key) = self.derive(DERIVATION_INFO, tenant, key_id)?;
        Ok(TenantKey::new(tenant.to_string(), id.to_string(), key))
    }

    /// A key of `tenant` under master key `key_id` (the active one if `None`) for
    /// another use of a keyring of this format (dashboard links): `info`, a label
    /// ending in NUL, keeps each use's keys apart from tracking links' and each other's.
    /// Returns the master key's id with the key.
    pub fn derive(
        &self,
        info: &[u8],
        tenant: &str,
        key_id: Option<&str>,
    ) -> Result<(&str, [u8; TENANT_KEY_BYTES]), SignError> {
        crate::tenant::check(tenant).map_err(|e| SignError::BadTenant(e.to_string()))?;
        let master = match key_id {
            None => &self.keys[self.active],
            Some(id) => self
                .keys
                .iter()
                .find(|k| k.id == id)
                .ok_or_else(|| SignError::UnknownKey(id.to_string()))?,
        };
        Ok((&master.id, expand(&master.hkdf, info, tenant)))
    }

    /// Verifies a token for the endpoint `kind` at unix time `now`.
    pub fn verify(&self, token: &str, kind: TokenKind, now: i64) -> Result<Claim, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() < 3 + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let legacy = match bytes[0] {
            VERSION => false,
            LEGACY_VERSION if self.legacy_until.is_some_and(|until| now <= until) => true,
            LEGACY_VERSION => return Err(TokenError::Retired),
            _ => return Err(TokenError::Malformed),
        };
        let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let kid_len = signed[2] as usize;
        let kid = signed.get(3..3 + kid_len).ok_or(TokenError::Malformed)?;
        let kid = std::str::from_utf8(kid).map_err(|_| TokenError::Malformed)?;
        let master = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.to_string()))?;
        let mut rest = &signed[3 + kid_len..];
        let mut mac = if legacy {
            master.legacy.clone()
        } else {
            // The tenant picks the key, so it is read before the tag is checked; it is
            // length-bounded by the token and checked like every tenant id.
            let mut peek = rest;
            let tenant = take_field(&mut peek)?;
            crate::tenant::check(&tenant).map_err(|_| TokenError::BadTenant)?;
            mac_for(&expand(&master.hkdf, DERIVATION_INFO, &tenant))
        };
        mac.update(signed);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(tag)
            .map_err(|_| TokenError::BadSignature)?;

        // From here on the bytes are authentic: a parse failure means a signer bug.
        if signed[1] != kind.byte() {
            return Err(TokenError::WrongKind);
        }
        let mut next = || take_field(&mut rest);
        let recipient = Recipient {
            tenant_id: next()?,
            campaign_id: next()?,
            message_id: next()?,
            recipient_id: next()?,
        };
        let url = match kind {
            TokenKind::Click => Some(next()?),
            TokenKind::Open => None,
        };
        // Format 1 signers did not check it (an empty tenant was signed and then
        // dead-lettered downstream); for format 2 this was checked above.
        crate::tenant::check(&recipient.tenant_id).map_err(|_| TokenError::BadTenant)?;
        let expires: [u8; 4] = rest.try_into().map_err(|_| TokenError::Malformed)?;
        let expires_at = u32::from_be_bytes(expires);
        if i64::from(expires_at) < now {
            return Err(TokenError::Expired);
        }
        Ok(Claim {
            kind,
            key_id: kid.to_string(),
            recipient,
            url,
            expires_at,
            legacy,
        })
    }

    /// Signs an open token for `recipient` with its tenant's key under the active
    /// master key.
    pub fn sign_open(&self, recipient: &Recipient, expires_at: u32) -> Result<String, SignError> {
        self.tenant_key(&recipient.tenant_id, None)?
            .sign_open(recipient, expires_at)
    }

    /// Signs a click token bound to the exact destination `url`.
    pub fn sign_click(
        &self,
        recipient: &Recipient,
        url: &str,
        expires_at: u32,
    ) -> Result<String, SignError> {
        self.tenant_key(&recipient.tenant_id, None)?
            .sign_click(recipient, url, expires_at)
    }
}

impl TokenSigner for Keyring {
    fn sign_open(&self, recipient: &Recipient, expires_at: u32) -> Result<String, SignError> {
        Keyring::sign_open(self, recipient, expires_at)
    }

    fn sign_click(
        &self,
        recipient: &Recipient,
        url: &str,
        expires_at: u32,
    ) -> Result<String, SignError> {
        Keyring::sign_click(self, recipient, url, expires_at)
    }
}

/// One tenant's signing key under one master key: signs that tenant's links and
/// nothing else. This is what the operator hands to a tenant that instruments its
/// own mail, so it never needs the master keyring.
#[derive(Clone)]
pub struct TenantKey {
    tenant: String,
    key_id: String,
    secret: [u8; TENANT_KEY_BYTES],
    mac: HmacSha256,
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKey")
            .field("tenant", &self.tenant)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantKeyJson {
    tenant: String,
    key_id: String,
    secret: String,
}

impl TenantKey {
    fn new(tenant: String, key_id: String, secret: [u8; TENANT_KEY_BYTES]) -> Self {
        TenantKey {
            mac: mac_for(&secret),
            tenant,
            key_id,
            secret,
        }
    }

    /// Parses `{"tenant":"acme","key_id":"k1","secret":"<base64url>"}`, what
    /// [`Self::to_json`] (and `beacon tracking-key derive`) prints.
    pub fn from_json(text: &str) -> Result<Self, KeyringError> {
        let bad = |why: String| KeyringError::BadTenantKey(why);
        let json: TenantKeyJson = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        crate::tenant::check(&json.tenant).map_err(|e| bad(e.to_string()))?;
        if !valid_key_id(&json.key_id) {
            return Err(KeyringError::BadKeyId(json.key_id));
        }
        let secret = URL_SAFE_NO_PAD
            .decode(json.secret.trim())
            .ok()
            .and_then(|s| <[u8; TENANT_KEY_BYTES]>::try_from(s).ok())
            .ok_or_else(|| bad(format!("the secret is not {TENANT_KEY_BYTES} bytes")))?;
        Ok(Self::new(json.tenant, json.key_id, secret))
    }

    pub fn to_json(&self) -> String {
        serde_json::json!({
            "tenant": self.tenant,
            "key_id": self.key_id,
            "secret": URL_SAFE_NO_PAD.encode(self.secret),
        })
        .to_string()
    }

    /// The only tenant this key signs for.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The master key it was derived from.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs an open token; refuses a recipient of another tenant.
    pub fn sign_open(&self, recipient: &Recipient, expires_at: u32) -> Result<String, SignError> {
        self.sign(TokenKind::Open, recipient, None, expires_at)
    }

    /// Signs a click token bound to `url`; refuses a recipient of another tenant.
    pub fn sign_click(
        &self,
        recipient: &Recipient,
        url: &str,
        expires_at: u32,
    ) -> Result<String, SignError> {
        self.sign(TokenKind::Click, recipient, Some(url), expires_at)
    }

    fn sign(
        &self,
        kind: TokenKind,
        r: &Recipient,
        url: Option<&str>,
        expires_at: u32,
    ) -> Result<String, SignError> {
        crate::tenant::check(&r.tenant_id).map_err(|e| SignError::BadTenant(e.to_string()))?;
        if r.tenant_id != self.tenant {
            return Err(SignError::WrongTenant {
                key: self.tenant.clone(),
                asked: r.tenant_id.clone(),
            });
        }
        Ok(encode(
            VERSION,
            &self.mac,
            &self.key_id,
            kind,
            r,
            url,
            expires_at,
        ))
    }
}

impl TokenSigner for TenantKey {
    fn sign_open(&self, recipient: &Recipient, expires_at: u32) -> Result<String, SignError> {
        TenantKey::sign_open(self, recipient, expires_at)
    }

    fn sign_click(
        &self,
        recipient: &Recipient,
        url: &str,
        expires_at: u32,
    ) -> Result<String, SignError> {
        TenantKey::sign_click(self, recipient, url, expires_at)
    }
}

/// The token bytes, tagged with `mac`, base64url-encoded. Checks nothing.
fn encode(
    version: u8,
    mac: &HmacSha256,
    key_id: &str,
    kind: TokenKind,
    r: &Recipient,
    url: Option<&str>,
    expires_at: u32,
) -> String {
    let mut buf = Vec::with_capacity(
        32 + r.tenant_id.len()
            + r.campaign_id.len()
            + r.message_id.len()
            + r.recipient_id.len()
            + url.map_or(0, str::len),
    );
    buf.extend_from_slice(&[version, kind.byte(), key_id.len() as u8]);
    buf.extend_from_slice(key_id.as_bytes());
    for field in [&r.tenant_id, &r.campaign_id, &r.message_id, &r.recipient_id] {
        put_field(&mut buf, field.as_bytes());
    }
    if let Some(url) = url {
        put_field(&mut buf, url.as_bytes());
    }
    buf.extend_from_slice(&expires_at.to_be_bytes());
    let mut mac = mac.clone();
    mac.update(&buf);
    let tag = mac.finalize().into_bytes();
    buf.extend_from_slice(&tag[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A format 1 token tagged with the raw `master` key, as signers made them before
/// per-tenant keys: for tests of the legacy window ([`crate::testkit`]).
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn sign_legacy(
    master: &[u8],
    key_id: &str,
    kind: TokenKind,
    r: &Recipient,
    url: Option<&str>,
    expires_at: u32,
) -> String {
    encode(
        LEGACY_VERSION,
        &mac_for(master),
        key_id,
        kind,
        r,
        url,
        expires_at,
    )
}

fn put_field(buf: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = bytes.len();
    while len >= 0x80 {
        buf.push((len as u8) | 0x80);
        len >>= 7;
    }
    buf.push(len as u8);
    buf.extend_from_slice(bytes);
}

fn take_field(rest: &mut &[u8]) -> Result<String, TokenError> {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let (&b, tail) = rest.split_first().ok_or(TokenError::Malformed)?;
        *rest = tail;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(TokenError::Malformed);
        }
    }
    if rest.len() < len {
        return Err(TokenError::Malformed);
    }
    let (field, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(field.to_vec()).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_790_000_000;

    fn secret(id: &str) -> Vec<u8> {
        format!("{id}-secret-material-0123456789abcdef").into_bytes()
    }

    fn ring(active: &str, ids: &[&str]) -> Keyring {
        Keyring::new(
            active,
            ids.iter().map(|id| (id.to_string(), secret(id))).collect(),
        )
        .unwrap()
    }

    fn who() -> Recipient {
        Recipient {
            tenant_id: "acme".into(),
            campaign_id: "spring-sale".into(),
            message_id: "msg-000123".into(),
            recipient_id: "r-42".into(),
        }
    }

    fn of_tenant(tenant: &str) -> Recipient {
        Recipient {
            tenant_id: tenant.into(),
            ..who()
        }
    }

    /// A token tagged by hand with `key` under key id `kid`, checking nothing: what a
    /// forger holding `key` can make.
    fn forge(version: u8, key: &[u8], kid: &str, r: &Recipient, url: Option<&str>) -> String {
        let kind = match url {
            Some(_) => TokenKind::Click,
            None => TokenKind::Open,
        };
        encode(version, &mac_for(key), kid, kind, r, url, (NOW + 60) as u32)
    }

    fn derived(master: &[u8], tenant: &str) -> [u8; TENANT_KEY_BYTES] {
        expand(&extract(master), DERIVATION_INFO, tenant)
    }

    #[test]
    fn open_token_round_trips() {
        let keys = ring("k1", &["k1"]);
        let token = keys.sign_open(&who(), (NOW + 60) as u32).unwrap();
        let claim = keys.verify(&token, TokenKind::Open, NOW).unwrap();
        assert_eq!(claim.recipient, who());
        assert_eq!(claim.url, None);
        assert!(!claim.legacy);
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap()[0], VERSION);
        assert!(
            token.len() < 120,
            "token should be compact: {}",
            token.len()
        );
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn click_token_binds_the_destination() {
        let keys = ring("k1", &["k1"]);
        let url = "https://shop.example/sale?utm=mail&x=1";
        let token = keys.sign_click(&who(), url, (NOW + 60) as u32).unwrap();
        let claim = keys.verify(&token, TokenKind::Click, NOW).unwrap();
        assert_eq!(claim.url.as_deref(), Some(url));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let keys = ring("k1", &["k1"]);
        let token = keys
            .sign_click(&who(), "https://shop.example/", (NOW + 60) as u32)
            .unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = raw.clone();
                bad[i] ^= bit;
                let tampered = URL_SAFE_NO_PAD.encode(&bad);
                assert!(
                    keys.verify(&tampered, TokenKind::Click, NOW).is_err(),
                    "byte {i} bit {bit:#x} flipped still verified"
                );
            }
        }
    }

    #[test]
    fn every_flipped_character_is_refused() {
        let keys = ring("k1", &["k1"]);
        let token = keys.sign_open(&who(), (NOW + 60) as u32).unwrap();
        for i in 0..token.len() {
            let mut chars: Vec<u8> = token.clone().into_bytes();
            chars[i] = if chars[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(chars).unwrap();
            assert!(
                keys.verify(&tampered, TokenKind::Open, NOW).is_err(),
                "char {i}"
            );
        }
    }

    #[test]
    fn swapped_destination_is_refused() {
        let keys = ring("k1", &["k1"]);
        let token = keys
            .sign_click(&who(), "https://shop.example/", (NOW + 60) as u32)
            .unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let at = raw
            .windows(b"shop.example".len())
            .position(|w| w == b"shop.example")
            .unwrap();
        raw[at..at + 12].copy_from_slice(b"evil.example");
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(
            keys.verify(&forged, TokenKind::Click, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_moved_to_another_tenant_is_refused() {
        let keys = ring("k1", &["k1"]);
        let token = keys.sign_open(&who(), (NOW + 60) as u32).unwrap();
        // Same length, so every other byte stays where it was.
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let at = raw.windows(4).position(|w| w == b"acme").unwrap();
        raw[at..at + 4].copy_from_slice(b"bcme");
        assert_eq!(
            keys.verify(&URL_SAFE_NO_PAD.encode(&raw), TokenKind::Open, NOW),
            Err(TokenError::BadSignature)
        );
        // Another length: the fields re-encoded around the old tag.
        let tag = &URL_SAFE_NO_PAD.decode(&token).unwrap()[raw.len() - TAG_LEN..];
        let mut moved = URL_SAFE_NO_PAD
            .decode(forge(VERSION, &[0; 32], "k1", &of_tenant("globex"), None))
            .unwrap();
        let len = moved.len();
        moved[len - TAG_LEN..].copy_from_slice(tag);
        assert_eq!(
            keys.verify(&URL_SAFE_NO_PAD.encode(&moved), TokenKind::Open, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_tenant_key_signs_for_its_tenant_only() {
        let keys = ring("k1", &["k1"]);
        let acme = keys.tenant_key("acme", None).unwrap();
        assert_eq!((acme.tenant(), acme.key_id()), ("acme", "k1"));
        let token = acme.sign_open(&who(), (NOW + 60) as u32).unwrap();
        let claim = keys.verify(&token, TokenKind::Open, NOW).unwrap();
        assert_eq!(claim.recipient, who());
        // The same token as the keyring makes: the keyring signs with this very key.
        assert_eq!(keys.sign_open(&who(), (NOW + 60) as u32).unwrap(), token);
        for other in ["globex", "Acme", "acme2"] {
            assert_eq!(
                acme.sign_click(&of_tenant(other), "https://x.example/", (NOW + 60) as u32),
                Err(SignError::WrongTenant {
                    key: "acme".into(),
                    asked: other.into()
                })
            );
        }
    }

    #[test]
    fn every_tenant_verifies_under_its_own_key() {
        let keys = ring("k1", &["k1"]);
        let tenants = ["acme", "globex", "initech.eu", "a", &"z".repeat(64)];
        let mut secrets = std::collections::HashSet::new();
        for tenant in tenants {
            let key = keys.tenant_key(tenant, None).unwrap();
            assert!(secrets.insert(key.secret), "{tenant} shares a key");
            for signer in [&keys as &dyn TokenSigner, &key] {
                let token = signer
                    .sign_open(&of_tenant(tenant), (NOW + 60) as u32)
                    .unwrap();
                let claim = keys.verify(&token, TokenKind::Open, NOW).unwrap();
                assert_eq!(claim.recipient.tenant_id, tenant);
            }
        }
    }

    #[test]
    fn rotation_old_keys_verify_until_removed() {
        let old = ring("k1", &["k1"]);
        let token = old.sign_open(&who(), (NOW + 60) as u32).unwrap();
        let handed_out = old.tenant_key("acme", None).unwrap();
        let from_tenant = handed_out.sign_open(&who(), (NOW + 60) as u32).unwrap();
        let rotated = ring("k2", &["k2", "k1"]);
        for t in [&token, &from_tenant] {
            let claim = rotated.verify(t, TokenKind::Open, NOW).unwrap();
            assert_eq!(claim.key_id, "k1");
        }
        let new = rotated.sign_open(&who(), (NOW + 60) as u32).unwrap();
        assert_eq!(
            rotated.verify(&new, TokenKind::Open, NOW).unwrap().key_id,
            "k2"
        );
        // The old id can still be derived on purpose; unknown ids are named.
        assert_eq!(
            rotated.tenant_key("acme", Some("k1")).unwrap().secret,
            handed_out.secret
        );
        assert_eq!(
            rotated.tenant_key("acme", Some("k9")).unwrap_err(),
            SignError::UnknownKey("k9".into())
        );
        let removed = ring("k2", &["k2"]);
        for t in [&token, &from_tenant] {
            assert_eq!(
                removed.verify(t, TokenKind::Open, NOW),
                Err(TokenError::UnknownKey("k1".into()))
            );
        }
        assert!(removed.verify(&new, TokenKind::Open, NOW).is_ok());
    }

    #[test]
    fn same_key_id_with_another_secret_is_refused() {
        let ours = ring("k1", &["k1"]);
        let theirs = Keyring::new("k1", vec![("k1".into(), vec![7u8; 32])]).unwrap();
        let forged = theirs.sign_open(&who(), (NOW + 60) as u32).unwrap();
        assert_eq!(
            ours.verify(&forged, TokenKind::Open, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn bad_tenant_ids_are_refused_when_signing_and_verifying() {
        let keys = ring("k1", &["k1"]);
        let bad = ["", "acme#D", "acme/x", "a b", &"z".repeat(65), "ünï"];
        for tenant in bad {
            assert!(
                matches!(
                    keys.sign_open(&of_tenant(tenant), 1),
                    Err(SignError::BadTenant(_))
                ),
                "signed for {tenant:?}"
            );
            assert!(matches!(
                keys.tenant_key(tenant, None),
                Err(SignError::BadTenant(_))
            ));
            // Properly tagged with the key derived for that very id: still refused.
            let key = derived(&secret("k1"), tenant);
            let token = forge(VERSION, &key, "k1", &of_tenant(tenant), None);
            assert_eq!(
                keys.verify(&token, TokenKind::Open, NOW),
                Err(TokenError::BadTenant),
                "verified for {tenant:?}"
            );
        }
        let acme = keys.tenant_key("acme", None).unwrap();
        assert!(matches!(
            acme.sign_open(&of_tenant(""), 1),
            Err(SignError::BadTenant(_))
        ));
    }

    #[test]
    fn derivation_is_rfc_5869_hkdf_sha256() {
        // RFC 5869 test case 3 (SHA-256, no salt, no info): the extract and expand
        // the tenant keys go through.
        let mut okm = [0u8; 42];
        extract(&[0x0b; 22]).expand(&[], &mut okm).unwrap();
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
        // A tenant key is HKDF's single output block, written out with plain HMAC:
        // PRK = HMAC(zeros, master), key = HMAC(PRK, info | tenant | 0x01).
        let master = secret("k1");
        let mut prk = mac_for(&[0u8; 32]);
        prk.update(&master);
        let mut block = mac_for(&prk.finalize().into_bytes());
        block.update(b"beacon tracking v1\0acme\x01");
        let expected = block.finalize().into_bytes();
        assert_eq!(derived(&master, "acme")[..], expected[..]);
        assert_eq!(
            ring("k1", &["k1"]).tenant_key("acme", None).unwrap().secret[..],
            expected[..]
        );
    }

    #[test]
    fn legacy_tokens_verify_only_inside_their_window() {
        let master = secret("k1");
        let v1 = forge(LEGACY_VERSION, &master, "k1", &who(), None);
        let keys = ring("k1", &["k1"]);
        assert_eq!(
            keys.verify(&v1, TokenKind::Open, NOW),
            Err(TokenError::Retired),
            "refused unless a window is set"
        );
        let open = ring("k1", &["k1"]).with_legacy_tokens_until(Some(NOW + 10));
        let claim = open.verify(&v1, TokenKind::Open, NOW).unwrap();
        assert!(claim.legacy);
        assert_eq!(claim.recipient, who());
        assert!(open.verify(&v1, TokenKind::Open, NOW + 10).is_ok());
        assert_eq!(
            open.verify(&v1, TokenKind::Open, NOW + 11),
            Err(TokenError::Retired)
        );
        // Inside the window, a format 1 token still needs the master key's tag and a
        // valid tenant.
        let wrong = forge(LEGACY_VERSION, &[7; 32], "k1", &who(), None);
        assert_eq!(
            open.verify(&wrong, TokenKind::Open, NOW),
            Err(TokenError::BadSignature)
        );
        let empty = forge(LEGACY_VERSION, &master, "k1", &of_tenant(""), None);
        assert_eq!(
            open.verify(&empty, TokenKind::Open, NOW),
            Err(TokenError::BadTenant)
        );
        // A format 2 header on a format 1 tag fails, and the other way round.
        let mut raw = URL_SAFE_NO_PAD.decode(&v1).unwrap();
        raw[0] = VERSION;
        assert_eq!(
            open.verify(&URL_SAFE_NO_PAD.encode(&raw), TokenKind::Open, NOW),
            Err(TokenError::BadSignature)
        );
        let v2 = open.sign_open(&who(), (NOW + 60) as u32).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&v2).unwrap();
        raw[0] = LEGACY_VERSION;
        assert_eq!(
            open.verify(&URL_SAFE_NO_PAD.encode(&raw), TokenKind::Open, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired_and_wrong_kind_are_refused() {
        let keys = ring("k1", &["k1"]);
        let token = keys.sign_open(&who(), (NOW - 1) as u32).unwrap();
        assert_eq!(
            keys.verify(&token, TokenKind::Open, NOW),
            Err(TokenError::Expired)
        );
        let open = keys.sign_open(&who(), (NOW + 60) as u32).unwrap();
        assert_eq!(
            keys.verify(&open, TokenKind::Click, NOW),
            Err(TokenError::WrongKind)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let keys = ring("k1", &["k1"]);
        for junk in ["", "!!!", "AAAA", &"A".repeat(MAX_TOKEN_CHARS + 1)] {
            assert_eq!(
                keys.verify(junk, TokenKind::Open, NOW),
                Err(TokenError::Malformed)
            );
        }
    }

    #[test]
    fn keyring_json_is_validated() {
        let secret = "x".repeat(40);
        let ok = Keyring::from_json(&format!(
            r#"{{"active":"k2","k1":"{secret}","k2":"{secret}"}}"#
        ))
        .unwrap();
        assert_eq!(ok.active_key_id(), "k2");
        assert_eq!(ok.legacy_tokens_until(), None);
        assert!(matches!(
            Keyring::from_json("[]"),
            Err(KeyringError::NotJson(_))
        ));
        assert!(matches!(
            Keyring::from_json(&format!(r#"{{"k1":"{secret}"}}"#)),
            Err(KeyringError::NoActive)
        ));
        assert!(matches!(
            Keyring::from_json(r#"{"active":"k1","k1":"short"}"#),
            Err(KeyringError::ShortKey(_))
        ));
        assert!(matches!(
            Keyring::from_json(&format!(r#"{{"active":"k3","k1":"{secret}"}}"#)),
            Err(KeyringError::ActiveMissing(_))
        ));
        let debug = format!("{ok:?}");
        assert!(!debug.contains(&secret), "secrets must not leak into Debug");

        let window = Keyring::from_json(&format!(
            r#"{{"active":"k1","k1":"{secret}","legacy_tokens_until":"2027-06-30T00:00:00+02:00"}}"#
        ))
        .unwrap();
        assert_eq!(window.legacy_tokens_until(), Some(1_814_306_400));
        for bad in [r#""2027-06-30""#, "1893456000", r#""soon""#] {
            assert!(matches!(
                Keyring::from_json(&format!(
                    r#"{{"active":"k1","k1":"{secret}","legacy_tokens_until":{bad}}}"#
                )),
                Err(KeyringError::BadLegacyUntil(_))
            ));
        }
    }

    #[test]
    fn tenant_key_json_round_trips_and_is_checked() {
        let keys = ring("k1", &["k1"]);
        let key = keys.tenant_key("acme", None).unwrap();
        let json = key.to_json();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["tenant"], "acme");
        assert_eq!(value["key_id"], "k1");
        let back = TenantKey::from_json(&json).unwrap();
        let token = back.sign_open(&who(), (NOW + 60) as u32).unwrap();
        assert!(keys.verify(&token, TokenKind::Open, NOW).is_ok());
        let secret = value["secret"].as_str().unwrap();
        assert!(!format!("{key:?}").contains(secret), "secret in Debug");

        let short = URL_SAFE_NO_PAD.encode([1u8; 16]);
        for bad in [
            "{}".to_string(),
            format!(r#"{{"tenant":"","key_id":"k1","secret":"{secret}"}}"#),
            format!(r#"{{"tenant":"a/b","key_id":"k1","secret":"{secret}"}}"#),
            format!(r#"{{"tenant":"acme","key_id":"k 1","secret":"{secret}"}}"#),
            format!(r#"{{"tenant":"acme","key_id":"k1","secret":"{short}"}}"#),
            format!(r#"{{"tenant":"acme","key_id":"k1","secret":"{secret}","active":"k1"}}"#),
        ] {
            assert!(TenantKey::from_json(&bad).is_err(), "{bad}");
        }
    }

    fn tenant_id() -> impl Strategy<Value = String> {
        let alphabet: Vec<char> = ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .chain(['-', '_', '.'])
            .collect();
        proptest::collection::vec(proptest::sample::select(alphabet), 1..=64)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        /// Whatever tenant B and whatever fields: a token for B tagged with A's key
        /// fails, and the same token for A passes.
        #[test]
        fn a_tenant_key_cannot_forge_for_another_tenant(
            a in tenant_id(),
            b in tenant_id(),
            campaign in "[a-z0-9-]{0,20}",
            message in "[ -~]{1,40}",
            url in proptest::option::of("https://[a-z]{1,10}\\.example/[a-z0-9?=&]{0,30}"),
        ) {
            prop_assume!(a != b);
            let keys = ring("k1", &["k1"]);
            let a_key = keys.tenant_key(&a, None).unwrap().secret;
            let kind = if url.is_some() { TokenKind::Click } else { TokenKind::Open };
            let mut r = Recipient {
                tenant_id: b,
                campaign_id: campaign,
                message_id: message,
                recipient_id: "r-1".into(),
            };
            let forged = forge(VERSION, &a_key, "k1", &r, url.as_deref());
            prop_assert_eq!(keys.verify(&forged, kind, NOW), Err(TokenError::BadSignature));
            r.tenant_id = a;
            let honest = forge(VERSION, &a_key, "k1", &r, url.as_deref());
            prop_assert_eq!(keys.verify(&honest, kind, NOW).map(|c| c.recipient), Ok(r));
        }
    }
}
