//! `Keyring::verify` never panics on a hostile token, of either kind.
//!
//! The first input byte picks what the rest is:
//! - even: a token as it arrives in the URL path. Almost none carries a valid tag, so
//!   this covers the decoding, the key lookup and the tag check;
//! - odd: the signed part of a token (header, fields, expiry), which the target signs
//!   with the key it names (else the active key), so the field parser behind the tag
//!   check sees arbitrary bytes too.
//!
//! A token that verifies must also survive a round trip: signed again from its claim,
//! it verifies to the same claim.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use beacon_shared::token::{Keyring, TokenKind};
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
        Keyring::new(KEYS[0].0, secrets).expect("valid keyring")
    })
}

/// `signed | first 16 bytes of HMAC-SHA256(key, signed)`, as shared/src/token.rs signs.
fn with_tag(signed: &[u8]) -> String {
    let named = signed
        .get(2)
        .and_then(|&len| signed.get(3..3 + len as usize));
    let secret = KEYS
        .iter()
        .find(|(id, _)| Some(id.as_bytes()) == named)
        .unwrap_or(&KEYS[0])
        .1;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
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
        if claim.key_id != keys.active_key_id() {
            continue;
        }
        let again = match &claim.url {
            Some(url) => keys.sign_click(&claim.recipient, url, claim.expires_at),
            None => keys.sign_open(&claim.recipient, claim.expires_at),
        };
        assert_eq!(keys.verify(&again, kind, NOW), Ok(claim), "re-signed token");
    }
});
