//! `Keyring::verify` never panics on a hostile token, of either kind.
//!
//! The first input byte picks what the rest is:
//! - even: a token as it arrives in the URL path. Almost none carries a valid tag, so
//!   this covers the decoding, the key lookup and the tag check;
//! - odd: the signed part of a token (header, fields, expiry), which the target tags as
//!   a signer would: format 2 with the key HKDF derives for the tenant the bytes name,
//!   format 1 with the master key itself (the keyring here accepts format 1 for its
//!   legacy window), each under the master key the bytes name, else the active one. So
//!   the field parser behind the tag check sees arbitrary bytes too. The derivation
//!   here is written from the format's description in shared/domain/src/tracking/token.rs, not shared
//!   with it, so a seed token that verifies also checks the two agree.
//!
//! A token that verifies must also survive a round trip: signed again from its claim,
//! it verifies to the same claim.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use beacon_domain::tracking::token::{Keyring, TokenKind};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use std::sync::OnceLock;

/// The events/ sample key (so the seeds from events/ verify) and a second one.
const KEYS: [(&str, &str); 2] = [
    (
        "sample",
        "beacon-sample-key-for-events-only-not-for-production",
    ),
    ("k2", "a-second-key-of-at-least-thirty-two-bytes"),
];
/// The seeds' tokens expire in 2027; some fuzzed ones will have expired.
const NOW: i64 = 1_790_000_000;

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        let secrets = KEYS
            .iter()
            .map(|(id, secret)| (id.to_string(), secret.as_bytes().to_vec()))
            .collect();
        Keyring::new(KEYS[0].0, secrets)
            .expect("valid keyring")
            .with_legacy_tokens_until(Some(NOW + 86_400))
    })
}

/// One varint-length-prefixed field at the front of `rest`, as the token format lays
/// them out; `None` if the bytes don't hold one.
fn first_field(rest: &[u8]) -> Option<&[u8]> {
    let (mut len, mut shift, mut at) = (0usize, 0, 0);
    loop {
        let b = *rest.get(at)?;
        at += 1;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return None;
        }
    }
    rest.get(at..at.checked_add(len)?)
}

/// `signed | first 16 bytes of HMAC-SHA256(key, signed)`, base64url: the key is the
/// master key for format 1 and the tenant's HKDF-derived key otherwise.
fn with_tag(signed: &[u8]) -> String {
    let named = signed
        .get(2)
        .and_then(|&len| signed.get(3..3 + len as usize));
    let secret = KEYS
        .iter()
        .find(|(id, _)| Some(id.as_bytes()) == named)
        .unwrap_or(&KEYS[0])
        .1;
    let key: Vec<u8> = if signed.first() == Some(&1) {
        secret.as_bytes().to_vec()
    } else {
        let tenant = named
            .and_then(|kid| first_field(&signed[3 + kid.len()..]))
            .unwrap_or_default();
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, secret.as_bytes())
            .expand_multi_info(&[b"beacon tracking v1\0", tenant], &mut key)
            .expect("32 bytes");
        key.to_vec()
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(signed);
    let mut token = signed.to_vec();
    token.extend_from_slice(&mac.finalize().into_bytes()[..16]);
    URL_SAFE_NO_PAD.encode(token)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        with_tag(rest)
    };
    let keys = keyring();
    for kind in [TokenKind::Open, TokenKind::Click] {
        let Ok(claim) = keys.verify(&token, kind, NOW) else {
            continue;
        };
        assert_eq!(claim.kind, kind);
        if claim.legacy || claim.key_id != keys.active_key_id() {
            continue;
        }
        let again = match &claim.url {
            Some(url) => keys.sign_click(&claim.recipient, url, claim.expires_at),
            None => keys.sign_open(&claim.recipient, claim.expires_at),
        }
        .expect("a claim that verified names a valid tenant");
        assert_eq!(keys.verify(&again, kind, NOW), Ok(claim), "re-signed token");
    }
});
