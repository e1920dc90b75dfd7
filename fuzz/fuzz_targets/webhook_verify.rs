//! `alert::verify` (a webhook receiver's check of the `Beacon-Signature` header) never
//! panics on a hostile header and body; and the header `alert::sign` makes for any
//! body verifies.
//!
//! Input: the header up to the first newline, the body after it. The receiver's clock
//! and tolerance are fixed: only the request is the attacker's.
#![no_main]

use beacon_domain::alert::{sign, verify};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_fuzzing-secret";
const NOW: i64 = 1_795_000_100;
const TOLERANCE_SECS: i64 = 300;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    // Header values reach the receiver as text.
    let header = String::from_utf8_lossy(header);
    let _ = verify(SECRET, &header, body, NOW, TOLERANCE_SECS);
    let signed = sign(SECRET, NOW - 10, body);
    assert_eq!(verify(SECRET, &signed, body, NOW, TOLERANCE_SECS), Ok(()));
});
