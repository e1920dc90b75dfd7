//! Where the suppression list and the engagement marks live: the rollups table, beside
//! the rollups the same stream writes. `S#{tenant}#{channel}` / recipient holds a
//! suppression entry (a time per reason); `E#{tenant}` / recipient holds a recipient's
//! engagement marks ([`crate::audience::engagement`]).

use crate::audience::suppression::Entry;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("audience store unavailable: {0}")]
pub struct AudienceError(pub String);

/// A page of a listing and where the next one starts (`None`: the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// One recipient's engagement marks (attribute name → day).
pub type Marks = BTreeMap<String, i64>;

/// Reading the suppression list and engagement marks.
pub trait AudienceReader: Send + Sync {
    /// The entries of those of `recipients` on the tenant's list for `channel`.
    fn suppressed(
        &self,
        tenant: &str,
        channel: &str,
        recipients: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Entry>, AudienceError>> + Send;

    /// Up to `limit` entries of the channel's list after `cursor`, by recipient id.
    fn suppression_page(
        &self,
        tenant: &str,
        channel: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Entry>, AudienceError>> + Send;

    /// A recipient's marks (empty when unknown).
    fn marks(
        &self,
        tenant: &str,
        recipient: &str,
    ) -> impl Future<Output = Result<Marks, AudienceError>> + Send;

    /// Up to `limit` recipients with their marks after `cursor`, by recipient id.
    fn marks_page(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<(String, Marks)>, AudienceError>> + Send;
}

/// A cursor is the last recipient id of a page, base64url: opaque to clients.
pub fn encode_cursor(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last)
}

pub fn decode_cursor(cursor: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()
}

/// The last recipient id of a cursor, or the error a client gets for a made-up one.
pub fn parse_cursor(cursor: &str) -> Result<String, AudienceError> {
    decode_cursor(cursor).ok_or_else(|| AudienceError(NOT_A_CURSOR.into()))
}

/// What a cursor that this API did not give out is refused with.
pub const NOT_A_CURSOR: &str = "not a cursor this API gave out";

/// Queries one page of the suppression list or of engagement marks makes at most.
pub const MAX_QUERIES_PER_PAGE: usize = 4;
