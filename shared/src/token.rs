//! Signed tracking tokens for the open pixel and the click redirect.
//!
//! A token is `base64url(header | fields | expiry | tag)`:
//!
//! ```text
//! version(1) kind(1: 'o' open, 'c' click) kid_len(1) kid
//! (varint len, bytes) x 4: tenant, campaign, message, recipient
//! (varint len, bytes)    : destination URL (click tokens only)
//! expires_at: u32 big-endian unix seconds
//! tag: first 16 bytes of HMAC-SHA256(key[kid], everything before the tag)
//! ```
//!
//! The click token carries the destination itself, so the redirect can only ever go
//! where the signer sent it: there is no second parameter to swap. The key id lets keys
//! rotate: new links are signed with the active key, and every key still in the keyring
//! verifies. The tag is checked (in constant time) before any field is parsed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::fmt;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// Keys shorter than this are refused: the tag is only as strong as the key.
pub const MIN_KEY_BYTES: usize = 32;
/// Longest token accepted, so a hostile request can't make us decode megabytes.
pub const MAX_TOKEN_CHARS: usize = 4096;

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
}

/// Why a token was refused. The variant names are the metric reasons.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is not well-formed")]
    Malformed,
    #[error("token was signed with key `{0}`, which is not in the keyring")]
    UnknownKey(String),
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token is for a different endpoint")]
    WrongKind,
    #[error("token expired")]
    Expired,
}

impl TokenError {
    /// Short, stable label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongKind => "wrong_kind",
            TokenError::Expired => "expired",
        }
    }
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
}

struct Key {
    id: String,
    /// Keyed once; cloning a keyed HMAC skips the key schedule on every request.
    mac: HmacSha256,
}

/// The signing and verifying keys. Secrets never appear in `Debug` output.
pub struct Keyring {
    keys: Vec<Key>,
    active: usize,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.keys[self.active].id)
            .field("keys", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

fn valid_key_id(id: &str) -> bool {
    (1..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Keyring {
    /// Parses `{"active": "k2", "k2": "<secret>", "k1": "<old secret>"}`, the format
    /// of the Secrets Manager secret and of the `BEACON_TRACKING_KEYS` variable.
    pub fn from_json(text: &str) -> Result<Self, KeyringError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| KeyringError::NotJson(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| KeyringError::NotJson("not an object".into()))?;
        let active = object
            .get("active")
            .and_then(Value::as_str)
            .ok_or(KeyringError::NoActive)?;
        let mut secrets = Vec::new();
        for (id, secret) in object.iter().filter(|(id, _)| id.as_str() != "active") {
            let secret = secret
                .as_str()
                .ok_or_else(|| KeyringError::NotAString(id.clone()))?;
            secrets.push((id.clone(), secret.as_bytes().to_vec()));
        }
        Self::new(active, secrets)
    }

    /// Builds a keyring from `(key id, secret)` pairs; `active` signs new tokens.
    pub fn new(active: &str, secrets: Vec<(String, Vec<u8>)>) -> Result<Self, KeyringError> {
        let mut keys = Vec::with_capacity(secrets.len());
        for (id, secret) in secrets {
            if !valid_key_id(&id) {
                return Err(KeyringError::BadKeyId(id));
            }
            if secret.len() < MIN_KEY_BYTES {
                return Err(KeyringError::ShortKey(id));
            }
            let mac = HmacSha256::new_from_slice(&secret).expect("HMAC takes keys of any length");
            keys.push(Key { id, mac });
        }
        let active = keys
            .iter()
            .position(|k| k.id == active)
            .ok_or_else(|| KeyringError::ActiveMissing(active.to_string()))?;
        Ok(Keyring { keys, active })
    }

    pub fn active_key_id(&self) -> &str {
        &self.keys[self.active].id
    }

    /// Signs an open token for `recipient`.
    pub fn sign_open(&self, recipient: &Recipient, expires_at: u32) -> String {
        self.sign(TokenKind::Open, recipient, None, expires_at)
    }

    /// Signs a click token bound to the exact destination `url`.
    pub fn sign_click(&self, recipient: &Recipient, url: &str, expires_at: u32) -> String {
        self.sign(TokenKind::Click, recipient, Some(url), expires_at)
    }

    fn sign(&self, kind: TokenKind, r: &Recipient, url: Option<&str>, expires_at: u32) -> String {
        let key = &self.keys[self.active];
        let mut buf = Vec::with_capacity(
            32 + r.tenant_id.len()
                + r.campaign_id.len()
                + r.message_id.len()
                + r.recipient_id.len()
                + url.map_or(0, str::len),
        );
        buf.extend_from_slice(&[VERSION, kind.byte(), key.id.len() as u8]);
        buf.extend_from_slice(key.id.as_bytes());
        for field in [&r.tenant_id, &r.campaign_id, &r.message_id, &r.recipient_id] {
            put_field(&mut buf, field.as_bytes());
        }
        if let Some(url) = url {
            put_field(&mut buf, url.as_bytes());
        }
        buf.extend_from_slice(&expires_at.to_be_bytes());
        let mut mac = key.mac.clone();
        mac.update(&buf);
        let tag = mac.finalize().into_bytes();
        buf.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Verifies a token for the endpoint `kind` at unix time `now`.
    pub fn verify(&self, token: &str, kind: TokenKind, now: i64) -> Result<Claim, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() < 3 + TAG_LEN || bytes[0] != VERSION {
            return Err(TokenError::Malformed);
        }
        let kid_len = bytes[2] as usize;
        let kid = bytes.get(3..3 + kid_len).ok_or(TokenError::Malformed)?;
        let kid = std::str::from_utf8(kid).map_err(|_| TokenError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.to_string()))?;
        let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut mac = key.mac.clone();
        mac.update(signed);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(tag)
            .map_err(|_| TokenError::BadSignature)?;

        // From here on the bytes are ours: a parse failure means a signer bug.
        let kind_byte = signed[1];
        if kind_byte != kind.byte() {
            return Err(TokenError::WrongKind);
        }
        let mut rest = &signed[3 + kid_len..];
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
        })
    }
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

    const NOW: i64 = 1_790_000_000;

    fn ring(active: &str, ids: &[&str]) -> Keyring {
        Keyring::new(
            active,
            ids.iter()
                .map(|id| {
                    (
                        id.to_string(),
                        format!("{id}-secret-material-0123456789abcdef").into_bytes(),
                    )
                })
                .collect(),
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

    #[test]
    fn open_token_round_trips() {
        let keys = ring("k1", &["k1"]);
        let token = keys.sign_open(&who(), (NOW + 60) as u32);
        let claim = keys.verify(&token, TokenKind::Open, NOW).unwrap();
        assert_eq!(claim.recipient, who());
        assert_eq!(claim.url, None);
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
        let token = keys.sign_click(&who(), url, (NOW + 60) as u32);
        let claim = keys.verify(&token, TokenKind::Click, NOW).unwrap();
        assert_eq!(claim.url.as_deref(), Some(url));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let keys = ring("k1", &["k1"]);
        let token = keys.sign_click(&who(), "https://shop.example/", (NOW + 60) as u32);
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
        let token = keys.sign_open(&who(), (NOW + 60) as u32);
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
        let token = keys.sign_click(&who(), "https://shop.example/", (NOW + 60) as u32);
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
    fn rotation_old_keys_verify_until_removed() {
        let old = ring("k1", &["k1"]);
        let token = old.sign_open(&who(), (NOW + 60) as u32);
        let rotated = ring("k2", &["k2", "k1"]);
        assert!(rotated.verify(&token, TokenKind::Open, NOW).is_ok());
        assert!(rotated.sign_open(&who(), (NOW + 60) as u32) != token);
        let removed = ring("k2", &["k2"]);
        assert_eq!(
            removed.verify(&token, TokenKind::Open, NOW),
            Err(TokenError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn same_key_id_with_another_secret_is_refused() {
        let ours = ring("k1", &["k1"]);
        let theirs = Keyring::new("k1", vec![("k1".into(), vec![7u8; 32])]).unwrap();
        let forged = theirs.sign_open(&who(), (NOW + 60) as u32);
        assert_eq!(
            ours.verify(&forged, TokenKind::Open, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired_and_wrong_kind_are_refused() {
        let keys = ring("k1", &["k1"]);
        let token = keys.sign_open(&who(), (NOW - 1) as u32);
        assert_eq!(
            keys.verify(&token, TokenKind::Open, NOW),
            Err(TokenError::Expired)
        );
        let open = keys.sign_open(&who(), (NOW + 60) as u32);
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
    }
}
