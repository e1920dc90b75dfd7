//! What tests and benchmarks build on, never part of a function's build (the `testkit`
//! feature): fixtures (a test keyring, recipient, tracker and range lists), in-memory
//! stand-ins for every port, with the semantics of the AWS stores they replace, and the
//! labelled traffic generator.

pub mod audience;
pub mod labeled;
pub mod memory;
pub mod rollups;

use crate::event::context::IpPolicy;
use crate::testkit::memory::MemorySink;
use crate::tracking::token::{Keyring, Recipient, TokenKind};
use crate::tracking::Tracker;
use crate::verdict::networks::Networks;

const TEST_MASTER_KEY: &[u8] = b"test-key-material-0123456789abcdef";

/// A keyring with one fixed test key `t1`.
pub fn test_keyring() -> Keyring {
    Keyring::new("t1", vec![("t1".into(), TEST_MASTER_KEY.to_vec())]).expect("valid test key")
}

/// A token in the retired format 1 under [`test_keyring`]'s key (a click token when
/// `url` is given), as links sent before per-tenant keys carry.
pub fn test_legacy_token(recipient: &Recipient, url: Option<&str>, expires_at: u32) -> String {
    let kind = match url {
        Some(_) => TokenKind::Click,
        None => TokenKind::Open,
    };
    crate::tracking::token::sign_legacy(TEST_MASTER_KEY, "t1", kind, recipient, url, expires_at)
}

pub fn test_recipient() -> Recipient {
    Recipient {
        tenant_id: "acme".into(),
        campaign_id: "spring".into(),
        message_id: "m-0001".into(),
        recipient_id: "r-0001".into(),
    }
}

/// A tracker over an in-memory sink, with the shipped range lists.
pub fn test_tracker(sink: MemorySink) -> Tracker<MemorySink> {
    Tracker {
        keyring: test_keyring(),
        sink,
        ip_policy: IpPolicy::Anonymize,
        networks: Networks::shipped(),
    }
}

/// Range lists for tests, from documentation and benchmark ranges only: Apple's proxy
/// `198.18.226.0/27` and `2001:db8:a::/48`, scanners `198.18.9.0/24` and
/// `2001:db8:5c::/48`. Leaked once, as the functions' lists live for the process.
pub fn test_networks() -> &'static Networks {
    static NETWORKS: std::sync::LazyLock<Networks> = std::sync::LazyLock::new(|| {
        Networks::from_lists(&[
            (
                crate::verdict::networks::APPLE_PROXY,
                "198.18.226.0/27,GB,GB-EN,London,\n2001:db8:a::/48,US,US-CA,Los Angeles,\n",
            ),
            (
                crate::verdict::networks::SCANNERS,
                "198.18.9.0/24\n2001:db8:5c::/48\n",
            ),
        ])
        .expect("valid test ranges")
    });
    &NETWORKS
}
