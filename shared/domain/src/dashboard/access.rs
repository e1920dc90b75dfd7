//! Who may look at a dashboard: signed, expiring, revocable read-only links.
//!
//! `beacon dashboard link --tenant T [--campaign C]` signs a link; opening it turns the
//! token into a session cookie, and every dashboard request is then answered for the
//! scope the token names, whatever the URL asks for. The token is
//!
//! ```text
//! base64url( 'D' version(1: 1) kid_len(1) kid
//!            tenant_len(1) tenant  campaign_len(2, big-endian) campaign (empty: all)
//!            id(16)  expires_at(u32 big-endian unix seconds)  tag(16) )
//! tag = first 16 bytes of HMAC-SHA256(K, everything before the tag)
//! K   = HKDF-SHA256(master[kid], info = "beacon dashboard v1" 0x00 tenant)
//! ```
//!
//! Invariants:
//! - A token verifies only under its own tenant's key: changing the tenant, the
//!   campaign (widening a campaign link to the whole tenant), the id or the expiry breaks
//!   the tag. The scope a request is answered for is always the verified token's.
//! - The keys come from their own keyring (`BEACON_DASHBOARD_KEYS`, the format of the
//!   tracking keys) and their own derivation label, so neither the tracking keys nor a
//!   tenant's tracking key can mint dashboard access, and a dashboard key cannot sign
//!   a tracking link. Keys rotate by id as tracking keys do.
//! - A link is honoured only while the store holds its record unrevoked
//!   ([`LinkStore`]): an unrecorded token (signed by someone holding the keys but not
//!   through the CLI) is refused like a revoked one.

use crate::tracking::token::{Keyring, SignError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::future::Future;
use thiserror::Error;

const MAGIC: u8 = b'D';
const VERSION: u8 = 1;
const DERIVATION_INFO: &[u8] = b"beacon dashboard v1\0";
const TAG_LEN: usize = 16;
const ID_LEN: usize = 16;
/// Longest token accepted (a 64-byte tenant and a 256-byte campaign fit well inside).
pub const MAX_TOKEN_CHARS: usize = 1024;
/// The session cookie's name.
pub const COOKIE: &str = "beacon_dashboard";
/// The longest life of a link.
pub const MAX_LIFETIME_SECONDS: i64 = 90 * 86_400;

/// What a link opens: one tenant, or one campaign of it, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// 32 lowercase hex digits; names the link for listing and revoking.
    pub id: String,
    pub tenant: String,
    pub campaign: Option<String>,
    pub expires_at: i64,
}

impl Link {
    /// A new link with a random id.
    pub fn new(tenant: &str, campaign: Option<&str>, expires_at: i64) -> Link {
        Link {
            id: hex::encode(rand::random::<[u8; ID_LEN]>()),
            tenant: tenant.to_string(),
            campaign: campaign.map(str::to_string),
            expires_at,
        }
    }

    /// Whether this link may see `campaign`.
    pub fn allows_campaign(&self, campaign: &str) -> bool {
        self.campaign.as_deref().is_none_or(|c| c == campaign)
    }

    /// Whether this link may see numbers beyond one campaign (the tenant's series,
    /// deliverability, audience, the suppression list).
    pub fn whole_tenant(&self) -> bool {
        self.campaign.is_none()
    }
}

/// Why a link or a session was refused. The texts are shown to the person holding it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LinkError {
    #[error("this is not a Beacon dashboard link")]
    Malformed,
    #[error("this link was signed with a key that is no longer in use; ask for a new link")]
    UnknownKey,
    #[error("this link has been altered")]
    BadSignature,
    #[error("this link has expired; ask for a new one")]
    Expired,
    #[error("this link has been revoked")]
    Revoked,
}

impl LinkError {
    /// Short, stable label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            LinkError::Malformed => "malformed",
            LinkError::UnknownKey => "unknown_key",
            LinkError::BadSignature => "bad_signature",
            LinkError::Expired => "expired",
            LinkError::Revoked => "revoked",
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Signs `link` under the active key of `keys`.
pub fn sign(keys: &Keyring, link: &Link) -> Result<String, SignError> {
    let (kid, key) = keys.derive(DERIVATION_INFO, &link.tenant, None)?;
    let campaign = link.campaign.as_deref().unwrap_or("");
    if campaign.len() > u16::MAX as usize {
        return Err(SignError::BadTenant("campaign id too long".into()));
    }
    let id = hex::decode(&link.id)
        .ok()
        .filter(|b| b.len() == ID_LEN)
        .ok_or_else(|| SignError::BadTenant("a link id is 32 hex digits".into()))?;
    let expires = u32::try_from(link.expires_at)
        .map_err(|_| SignError::BadTenant("expiry out of range".into()))?;
    let mut bytes = vec![MAGIC, VERSION, kid.len() as u8];
    bytes.extend_from_slice(kid.as_bytes());
    bytes.push(link.tenant.len() as u8);
    bytes.extend_from_slice(link.tenant.as_bytes());
    bytes.extend_from_slice(&(campaign.len() as u16).to_be_bytes());
    bytes.extend_from_slice(campaign.as_bytes());
    bytes.extend_from_slice(&id);
    bytes.extend_from_slice(&expires.to_be_bytes());
    let mut m = mac(&key);
    m.update(&bytes);
    bytes.extend_from_slice(&m.finalize().into_bytes()[..TAG_LEN]);
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Reads `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], LinkError> {
    if rest.len() < n {
        return Err(LinkError::Malformed);
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn text(bytes: &[u8]) -> Result<String, LinkError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| LinkError::Malformed)
}

/// Verifies a token at unix time `now`. The store's record (revocation) is checked by
/// the caller ([`LinkStore::find`]).
pub fn verify(keys: &Keyring, token: &str, now: i64) -> Result<Link, LinkError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(LinkError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| LinkError::Malformed)?;
    if bytes.len() < 3 + TAG_LEN || bytes[0] != MAGIC || bytes[1] != VERSION {
        return Err(LinkError::Malformed);
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let mut rest = &signed[2..];
    let kid_len = take(&mut rest, 1)?[0] as usize;
    let kid = text(take(&mut rest, kid_len)?)?;
    let tenant_len = take(&mut rest, 1)?[0] as usize;
    // The tenant picks the key, so it is read before the tag is checked; `derive`
    // checks it like every tenant id.
    let tenant = text(take(&mut rest, tenant_len)?)?;
    let (_, key) = keys
        .derive(DERIVATION_INFO, &tenant, Some(&kid))
        .map_err(|e| match e {
            SignError::UnknownKey(_) => LinkError::UnknownKey,
            _ => LinkError::Malformed,
        })?;
    let mut m = mac(&key);
    m.update(signed);
    m.verify_truncated_left(tag)
        .map_err(|_| LinkError::BadSignature)?;
    // Authentic from here on.
    let campaign_len = u16::from_be_bytes(
        take(&mut rest, 2)?
            .try_into()
            .map_err(|_| LinkError::Malformed)?,
    ) as usize;
    let campaign = text(take(&mut rest, campaign_len)?)?;
    let id = hex::encode(take(&mut rest, ID_LEN)?);
    let expires: [u8; 4] = rest.try_into().map_err(|_| LinkError::Malformed)?;
    let expires_at = i64::from(u32::from_be_bytes(expires));
    if expires_at < now {
        return Err(LinkError::Expired);
    }
    Ok(Link {
        id,
        tenant,
        campaign: (!campaign.is_empty()).then_some(campaign),
        expires_at,
    })
}

/// Parses a link's lifetime: `30m`, `12h`, `7d` (at most 90 days).
pub fn parse_lifetime(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a lifetime like 30m, 12h or 7d"))?;
    let seconds = match unit {
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("`{text}` is not a lifetime like 30m, 12h or 7d")),
    };
    if seconds > MAX_LIFETIME_SECONDS {
        return Err(format!(
            "`{text}` is longer than the longest link life, 90 days"
        ));
    }
    Ok(seconds)
}

/// The `Set-Cookie` value that opens a session for a verified token: HttpOnly (the
/// page's scripts never see it), Secure, SameSite=Strict (no other site can make the
/// browser send it), gone when the link expires.
pub fn session_cookie(token: &str, link: &Link, now: DateTime<Utc>) -> String {
    let max_age = (link.expires_at - now.timestamp()).max(0);
    format!("{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that ends a session.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The session token among a request's `Cookie` headers, if any.
pub fn session_token<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// A link as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    pub link: Link,
    /// RFC 3339.
    pub created_at: String,
    /// Who or what it is for, as given when it was made.
    pub note: Option<String>,
    /// RFC 3339, once revoked.
    pub revoked_at: Option<String>,
}

crate::message_error!(
    /// The link store did not answer.
    LinkStoreError
);

/// Where links are recorded, so they can be listed and revoked.
pub trait LinkStore {
    fn record(&self, link: &LinkRecord) -> impl Future<Output = Result<(), LinkStoreError>> + Send;
    fn find(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<LinkRecord>, LinkStoreError>> + Send;
    /// The tenant's links, newest first.
    fn list(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Vec<LinkRecord>, LinkStoreError>> + Send;
    /// Marks the link revoked at `at`; `false` if the tenant has no such link.
    fn revoke(
        &self,
        tenant: &str,
        id: &str,
        at: &str,
    ) -> impl Future<Output = Result<bool, LinkStoreError>> + Send;
}

/// The check a request's session goes through: the signature and expiry, then the
/// store's record.
pub async fn admit<S: LinkStore>(
    keys: &Keyring,
    store: &S,
    token: &str,
    now: i64,
) -> Result<Result<Link, LinkError>, LinkStoreError> {
    let link = match verify(keys, token, now) {
        Ok(link) => link,
        Err(e) => return Ok(Err(e)),
    };
    Ok(match store.find(&link.tenant, &link.id).await? {
        Some(record) if record.revoked_at.is_none() && record.link == link => Ok(link),
        _ => Err(LinkError::Revoked),
    })
}

/// Why a link could not be issued.
#[derive(Debug, Error)]
pub enum IssueError {
    #[error("signing the link: {0}")]
    Sign(#[from] SignError),
    #[error("recording the link: {0}")]
    Store(#[from] LinkStoreError),
}

/// Makes a link for `tenant` (or one `campaign` of it) that works for `lifetime`
/// seconds from `now`, and records it so it can be listed and revoked: what `beacon
/// dashboard link` does, and the local stack for its own links. Returns the record and
/// the token; the URL is `{base}/dashboard/open?t={token}` ([`open_url`]).
pub async fn issue<S: LinkStore>(
    keys: &Keyring,
    store: &S,
    tenant: &str,
    campaign: Option<&str>,
    lifetime: i64,
    note: Option<String>,
    now: DateTime<Utc>,
) -> Result<(LinkRecord, String), IssueError> {
    let link = Link::new(tenant, campaign, now.timestamp() + lifetime);
    let token = sign(keys, &link)?;
    let record = LinkRecord {
        link,
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        note,
        revoked_at: None,
    };
    store.record(&record).await?;
    Ok((record, token))
}

/// The address a link's token is opened at, under the API's public URL.
pub fn open_url(base_url: &str, token: &str) -> String {
    format!(
        "{}/dashboard/open?t={token}",
        base_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keyring {
        Keyring::from_json(
            r#"{"active":"d2","d1":"0123456789abcdef0123456789abcdef","d2":"fedcba9876543210fedcba9876543210"}"#,
        )
        .unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_link_verifies_to_exactly_what_was_signed() {
        for campaign in [None, Some("spring-sale")] {
            let link = Link::new("acme", campaign, NOW + 3600);
            let token = sign(&keys(), &link).unwrap();
            assert_eq!(verify(&keys(), &token, NOW).unwrap(), link);
            assert_eq!(link.whole_tenant(), campaign.is_none());
        }
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let link = Link::new("acme", Some("c1"), NOW + 3600);
        let token = sign(&keys(), &link).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            let forged = URL_SAFE_NO_PAD.encode(&changed);
            assert!(verify(&keys(), &forged, NOW).is_err(), "byte {i}");
        }
    }

    #[test]
    fn a_campaign_link_cannot_become_a_tenant_link_or_another_tenants() {
        let link = Link::new("acme", Some("c1"), NOW + 3600);
        let token = sign(&keys(), &link).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        // Drop the campaign (length 2 -> 0, bytes removed): the tag no longer holds.
        let kid_len = bytes[2] as usize;
        let t = 3 + kid_len;
        let tenant_len = bytes[t] as usize;
        let c = t + 1 + tenant_len;
        let mut widened = bytes[..c].to_vec();
        widened.extend_from_slice(&[0, 0]);
        widened.extend_from_slice(&bytes[c + 2 + 2..]);
        assert_eq!(
            verify(&keys(), &URL_SAFE_NO_PAD.encode(&widened), NOW),
            Err(LinkError::BadSignature)
        );
        // Another tenant of the same length.
        let mut other = bytes.clone();
        other[t + 1..t + 1 + 4].copy_from_slice(b"evil");
        assert_eq!(
            verify(&keys(), &URL_SAFE_NO_PAD.encode(&other), NOW),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn expiry_rotation_and_other_keyrings() {
        let link = Link::new("acme", None, NOW);
        let token = sign(&keys(), &link).unwrap();
        assert!(verify(&keys(), &token, NOW).is_ok());
        assert_eq!(verify(&keys(), &token, NOW + 1), Err(LinkError::Expired));

        // Signed under d2; a keyring that dropped d2 refuses, one that kept it verifies.
        let rotated = Keyring::from_json(
            r#"{"active":"d3","d2":"fedcba9876543210fedcba9876543210","d3":"00000000000000000000000000000000"}"#,
        )
        .unwrap();
        assert!(verify(&rotated, &token, NOW).is_ok());
        let dropped =
            Keyring::from_json(r#"{"active":"d1","d1":"0123456789abcdef0123456789abcdef"}"#)
                .unwrap();
        assert_eq!(verify(&dropped, &token, NOW), Err(LinkError::UnknownKey));
        // The same master key, but the tracking links' label: a different key.
        let (_, dashboard) = keys().derive(DERIVATION_INFO, "acme", None).unwrap();
        let (_, tracking) = keys()
            .derive(b"beacon tracking v1\0", "acme", None)
            .unwrap();
        assert_ne!(dashboard, tracking);
    }

    #[test]
    fn lifetimes_and_cookies() {
        assert_eq!(parse_lifetime("7d"), Ok(7 * 86_400));
        assert_eq!(parse_lifetime("12h"), Ok(12 * 3600));
        assert_eq!(parse_lifetime("30m"), Ok(1800));
        for bad in ["", "d", "0d", "-1d", "7w", "91d", "1.5h"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
        let link = Link::new("acme", None, NOW + 60);
        let now = DateTime::from_timestamp(NOW, 0).unwrap();
        let cookie = session_cookie("tok", &link, now);
        for part in [
            "beacon_dashboard=tok",
            "Max-Age=60",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
        ] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert_eq!(
            session_token(["a=1; beacon_dashboard=xyz; b=2"]),
            Some("xyz")
        );
        assert_eq!(session_token(["x_beacon_dashboard=xyz"]), None);
        assert_eq!(session_token(["beacon_dashboard="]), None);
    }

    #[tokio::test]
    async fn an_issued_link_is_recorded_and_admitted_until_it_expires() {
        let store = crate::testkit::memory::MemoryLinks::default();
        let now = DateTime::from_timestamp(NOW, 0).unwrap();
        let (record, token) = issue(&keys(), &store, "acme", Some("spring"), 600, None, now)
            .await
            .unwrap();
        assert_eq!(record.link.expires_at, NOW + 600);
        assert_eq!(store.list("acme").await.unwrap(), vec![record.clone()]);
        assert_eq!(
            admit(&keys(), &store, &token, NOW + 599).await.unwrap(),
            Ok(record.link)
        );
        assert_eq!(
            admit(&keys(), &store, &token, NOW + 601).await.unwrap(),
            Err(LinkError::Expired)
        );
        assert_eq!(
            open_url("http://127.0.0.1:3000/", &token),
            format!("http://127.0.0.1:3000/dashboard/open?t={token}")
        );
    }

    #[tokio::test]
    async fn only_recorded_unrevoked_links_are_admitted() {
        let store = crate::testkit::memory::MemoryLinks::default();
        let link = Link::new("acme", None, NOW + 60);
        let token = sign(&keys(), &link).unwrap();
        assert_eq!(
            admit(&keys(), &store, &token, NOW).await.unwrap(),
            Err(LinkError::Revoked),
            "a token nobody recorded"
        );
        store
            .record(&LinkRecord {
                link: link.clone(),
                created_at: "2027-01-15T08:00:00Z".into(),
                note: None,
                revoked_at: None,
            })
            .await
            .unwrap();
        assert_eq!(
            admit(&keys(), &store, &token, NOW).await.unwrap(),
            Ok(link.clone())
        );
        assert!(store
            .revoke("acme", &link.id, "2027-01-15T09:00:00Z")
            .await
            .unwrap());
        assert!(!store
            .revoke("globex", &link.id, "2027-01-15T09:00:00Z")
            .await
            .unwrap());
        assert_eq!(
            admit(&keys(), &store, &token, NOW).await.unwrap(),
            Err(LinkError::Revoked)
        );
    }
}
