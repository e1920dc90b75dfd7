//! The aggregate's two decoders of a stream record reach the same verdict on any input:
//! `aggregate::decode` (serde into the owned `Event`, what the lake reads) and
//! `aggregate::decode_view` (`EventView::parse`, borrowed, what the fold reads). Either
//! both refuse the record (it is poison to both), or both accept it with equal fields.
#![no_main]

use beacon_shared::aggregate::{decode, decode_view};
use beacon_shared::event::EventView;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
