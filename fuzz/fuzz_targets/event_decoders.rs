//! The aggregate's two decoders of a stream record reach the same verdict on any input:
//! `stream::decode` (serde into the owned `Event`, what the lake reads) and
//! `stream::decode_view` (`EventView::parse`, borrowed, what the fold reads). Either
//! both refuse the record (it is poison to both), or both accept it with equal fields.
//!
//! Each input is tried twice: as a whole record, and as the `properties` value of an
//! otherwise valid record (the one value the view walks past instead of keeping, so
//! the one most likely to be checked differently).
#![no_main]

use beacon_domain::event::stream::{decode, decode_view};
use beacon_domain::event::EventView;
use libfuzzer_sys::fuzz_target;

const HEAD: &[u8] = br#"{"event_id":"e","tenant_id":"t","type":"conversion","event_time":"2026-11-23T10:00:00.000Z","received_at":"2026-11-23T10:00:00.000Z","properties":"#;

fn same_verdict(data: &[u8]) {
    match (decode(data), decode_view(data)) {
        (Ok(event), Ok(view)) => assert_eq!(
            EventView::from(&event),
            view,
            "the decoders read {:?} differently",
            String::from_utf8_lossy(data)
        ),
        (Err(_), Err(_)) => {}
        (owned, view) => panic!(
            "the decoders disagree on {:?}: decode {:?}, decode_view {:?}",
            String::from_utf8_lossy(data),
            owned.map(|_| "ok"),
            view.map(|_| "ok")
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    same_verdict(data);
    same_verdict(&[HEAD, data, b"}"].concat());
});
