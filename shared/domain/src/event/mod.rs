//! The event model: one record per thing that happened to a message or a recipient.
//!
//! Every producer (open pixel, click redirect, collect API) turns its input into an
//! [`Event`]; the stream, the rollups and the lake all read this one shape.

pub mod context;
pub mod stream;
pub mod validate;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// Prefix under which clients send their own event types (`custom.signup`, ...).
pub const CUSTOM_PREFIX: &str = "custom.";

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventType {
    Sent,
    Delivered,
    Bounced,
    Complained,
    Failed,
    /// Delivery is being retried (SES DeliveryDelay, SendGrid deferred, Mailgun's
    /// temporary failures): not a bounce yet.
    Delayed,
    Opened,
    Clicked,
    Unsubscribed,
    Conversion,
    /// A client-defined type; the string includes the `custom.` prefix.
    Custom(String),
}

impl EventType {
    /// The built-in types, in the order docs/events.md documents them.
    pub const BUILT_IN: [EventType; 10] = [
        EventType::Sent,
        EventType::Delivered,
        EventType::Bounced,
        EventType::Complained,
        EventType::Failed,
        EventType::Delayed,
        EventType::Opened,
        EventType::Clicked,
        EventType::Unsubscribed,
        EventType::Conversion,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            EventType::Sent => "message.sent",
            EventType::Delivered => "message.delivered",
            EventType::Bounced => "message.bounced",
            EventType::Complained => "message.complained",
            EventType::Failed => "message.failed",
            EventType::Delayed => "message.delayed",
            EventType::Opened => "message.opened",
            EventType::Clicked => "link.clicked",
            EventType::Unsubscribed => "message.unsubscribed",
            EventType::Conversion => "conversion",
            EventType::Custom(name) => name,
        }
    }

    /// Parses a type name; the error says what is accepted.
    pub fn parse(name: &str) -> Result<Self, BadValue> {
        if let Some(known) = Self::BUILT_IN.iter().find(|t| t.as_str() == name) {
            return Ok(known.clone());
        }
        if let Some(suffix) = name.strip_prefix(CUSTOM_PREFIX) {
            let valid = !suffix.is_empty()
                && suffix.len() <= 64
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            return if valid {
                Ok(EventType::Custom(name.to_string()))
            } else {
                Err(BadValue(format!(
                    "custom type `{name}` must be `custom.` followed by 1-64 of a-z 0-9 . _ -"
                )))
            };
        }
        Err(BadValue(format!(
            "unknown type `{name}`; expected one of {} or `custom.<name>`",
            Self::BUILT_IN
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Types that are about one message to one recipient, and so need both ids.
    pub fn is_message_event(&self) -> bool {
        !matches!(self, EventType::Conversion | EventType::Custom(_))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_str(d, "an event type", EventType::parse)
    }
}

/// A hard bounce means the address will never accept mail; a soft one may recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceType {
    Hard,
    Soft,
}

/// Coarse device class derived from the user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceClass {
    Desktop,
    Mobile,
    Bot,
    Other,
    Unknown,
}

impl DeviceClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceClass::Desktop => "desktop",
            DeviceClass::Mobile => "mobile",
            DeviceClass::Bot => "bot",
            DeviceClass::Other => "other",
            DeviceClass::Unknown => "unknown",
        }
    }
}

/// Where a tracked request came from. The IP is anonymized before it is stored
/// unless the operator chose otherwise (see [`crate::event::context::IpPolicy`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_class: Option<DeviceClass>,
    /// The range list the full client address fell in, looked up at the edge before
    /// the IP was anonymized ([`crate::verdict::networks::Networks::label`]): `apple-proxy`,
    /// `scanners` or `unlisted`; none when the lists had nothing to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl RequestContext {
    pub fn is_empty(&self) -> bool {
        self.ip.is_none()
            && self.user_agent.is_none()
            && self.device_class.is_none()
            && self.network.is_none()
    }
}

/// One event, as it travels on the stream and lands in the lake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per tenant; the dedupe key downstream. Client-supplied or a UUIDv7.
    pub event_id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened (client's clock, bounded by validation).
    #[serde(with = "millis")]
    pub event_time: DateTime<Utc>,
    /// When Beacon accepted it.
    #[serde(with = "millis")]
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Opaque recipient id chosen by the sender; never needs to be an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Destination of a click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_type: Option<BounceType>,
    /// Free-text reason (bounce diagnostic, failure cause, complaint feedback type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What sending this cost, in the tenant's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Monetary value of a conversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "RequestContext::is_empty")]
    pub context: RequestContext,
}

impl Event {
    /// A fresh event with every optional field empty.
    pub fn new(
        event_id: String,
        tenant_id: String,
        kind: EventType,
        event_time: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> Self {
        Event {
            event_id,
            tenant_id,
            kind,
            event_time,
            received_at,
            campaign_id: None,
            message_id: None,
            recipient_id: None,
            channel: None,
            provider: None,
            link_url: None,
            bounce_type: None,
            reason: None,
            cost: None,
            value: None,
            currency: None,
            duration_ms: None,
            properties: Map::new(),
            context: RequestContext::default(),
        }
    }
}

/// An event's fields as the aggregate reads them, borrowed: from a stream record
/// without copying its strings ([`EventView::parse`]), or from an [`Event`]. The fold
/// and the classifier read this one shape, so both sources count the same way.
///
/// Invariant: a record parses as an `EventView` exactly when it parses as an [`Event`],
/// with the same fields, so a record is poison to the aggregate exactly when it is
/// poison to the lake. Hence every field of `Event` is here, checked as `Event` checks
/// it, in `Event`'s order (serde also reads a struct from a JSON array, by position).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventView<'a> {
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    #[serde(borrow)]
    pub tenant_id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(with = "millis")]
    pub event_time: DateTime<Utc>,
    #[serde(with = "millis")]
    pub received_at: DateTime<Utc>,
    #[serde(default, borrow)]
    pub campaign_id: Option<Cow<'a, str>>,
    // Private fields are not used by the fold, only checked.
    #[serde(default, borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub recipient_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub channel: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub provider: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub link_url: Option<Cow<'a, str>>,
    #[serde(default)]
    pub bounce_type: Option<BounceType>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub cost: Option<f64>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default, borrow)]
    currency: Option<Cow<'a, str>>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    properties: AnyObject,
    #[serde(default, borrow)]
    pub context: ContextView<'a>,
}

/// A JSON object of any content, walked and dropped without allocating, but checked as
/// [`Event`]'s `Map<String, Value>` is: numbers within f64's range, strings valid
/// Unicode, nesting within serde_json's depth limit. (`IgnoredAny` skips a value without
/// those checks, so the fold would take records the lake refuses.)
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Walk;
        impl<'de> serde::de::Visitor<'de> for Walk {
            type Value = AnyObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<AnyObject, A::Error> {
                AnyValue.visit_map(m).map(|_| AnyObject)
            }
        }
        d.deserialize_map(Walk)
    }
}

/// Any JSON value, read the way `serde_json::Value` reads one (through
/// `deserialize_any`, which parses numbers and strings in full and counts depth), and
/// dropped.
struct AnyValue;

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyValue)
    }
}

impl<'de> serde::de::Visitor<'de> for AnyValue {
    type Value = AnyValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_i64<E>(self, _: i64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_u64<E>(self, _: u64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_f64<E>(self, _: f64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_str<E>(self, _: &str) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_unit<E>(self) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<AnyValue, A::Error> {
        while s.next_element::<AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<AnyValue, A::Error> {
        while m.next_entry::<AnyValue, AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }
}

/// [`RequestContext`], borrowed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ContextView<'a> {
    #[serde(default, borrow)]
    pub ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(default)]
    pub device_class: Option<DeviceClass>,
    #[serde(default, borrow)]
    pub network: Option<Cow<'a, str>>,
}

impl<'a> EventView<'a> {
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// Reads a stream record (an [`Event`] as JSON); fields the aggregate does not use
    /// (properties, message id, reason) are skipped, not copied.
    pub fn parse(data: &'a [u8]) -> Result<Self, serde_json::Error> {
        // One UTF-8 check of the whole record is cheaper than serde_json's check of
        // each string it borrows from a byte slice.
        match std::str::from_utf8(data) {
            Ok(text) => serde_json::from_str(text),
            // Not UTF-8: read as `decode` reads it, so both refuse the same records.
            Err(_) => serde_json::from_slice(data),
        }
    }
}

impl<'a> From<&'a Event> for EventView<'a> {
    fn from(e: &'a Event) -> Self {
        let borrow = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
        EventView {
            event_id: Cow::Borrowed(&e.event_id),
            tenant_id: Cow::Borrowed(&e.tenant_id),
            kind: e.kind.clone(),
            event_time: e.event_time,
            received_at: e.received_at,
            campaign_id: borrow(&e.campaign_id),
            recipient_id: borrow(&e.recipient_id),
            channel: borrow(&e.channel),
            provider: borrow(&e.provider),
            link_url: borrow(&e.link_url),
            bounce_type: e.bounce_type,
            cost: e.cost,
            value: e.value,
            duration_ms: e.duration_ms,
            context: ContextView {
                ip: borrow(&e.context.ip),
                user_agent: borrow(&e.context.user_agent),
                device_class: e.context.device_class,
                network: borrow(&e.context.network),
            },
            message_id: borrow(&e.message_id),
            reason: borrow(&e.reason),
            currency: borrow(&e.currency),
            properties: AnyObject,
        }
    }
}

/// Reads a string field through `parse` without copying it (`Cow<str>` on its own
/// always copies), as every record on the stream has three such fields.
fn read_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, BadValue>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Read<P>(&'static str, P);
    impl<'de, T, P: FnOnce(&str) -> Result<T, BadValue>> serde::de::Visitor<'de> for Read<P> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            (self.1)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(Read(expecting, parse))
}

crate::message_error!(
    /// Why a value of an event (its type, channel or a setting about it) was refused:
    /// what the sender reads.
    BadValue
);

/// A new time-ordered event id (UUIDv7), so ids sort roughly by arrival.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Timestamps travel as RFC 3339 with millisecond precision: what Athena keeps.
pub(crate) mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        read_str(d, "an RFC 3339 time", |text| {
            match parse_canonical(text.as_bytes()) {
                Some(t) => Ok(t),
                None => DateTime::parse_from_rfc3339(text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| BadValue(e.to_string())),
            }
        })
    }

    /// The form [`serialize`] writes (`2026-11-23T10:00:00.123Z`), read without a
    /// general parser: every record on the stream carries two, and the aggregate reads
    /// a million records a second. Anything else goes to the RFC 3339 parser.
    pub(crate) fn parse_canonical(b: &[u8]) -> Option<DateTime<Utc>> {
        if b.len() != 24
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[23] != b'Z'
        {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<i64> {
            b[from..to].iter().try_fold(0i64, |n, c| {
                c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
            })
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second, milli) =
            (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
        if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if day < 1 || day > month_days[month as usize - 1] {
            return None;
        }
        // Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's
        // days_from_civil), without building a date first.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let millis = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli;
        DateTime::from_timestamp_millis(millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for t in EventType::BUILT_IN {
            assert_eq!(EventType::parse(t.as_str()).unwrap(), t);
        }
        assert_eq!(
            EventType::parse("custom.signup").unwrap(),
            EventType::Custom("custom.signup".into())
        );
    }

    #[test]
    fn unknown_and_bad_custom_types_are_explained() {
        let err = EventType::parse("message.read").unwrap_err();
        assert!(err.contains("unknown type `message.read`"), "{err}");
        assert!(err.contains("link.clicked"), "{err}");
        assert!(EventType::parse("custom.").is_err());
        assert!(EventType::parse("custom.Sign Up").is_err());
    }

    #[test]
    fn canonical_timestamps_read_like_the_general_parser() {
        for text in [
            "2026-11-23T10:00:00.123Z",
            "1970-01-01T00:00:00.000Z",
            "2024-02-29T23:59:59.999Z",
            "1969-12-31T23:59:59.500Z",
            "2000-02-29T12:00:00.000Z",
            "2100-03-01T00:00:00.001Z",
            "0001-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            let general = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(
                millis::parse_canonical(text.as_bytes()),
                Some(general),
                "{text}"
            );
        }
        // Every day from 1900 to 2100, against chrono's own formatting.
        let start = DateTime::parse_from_rfc3339("1900-01-01T13:14:15.678Z").unwrap();
        for d in 0..73_415 {
            let t = start.with_timezone(&Utc) + chrono::Duration::days(d);
            let text = t.to_rfc3339_opts(SecondsFormat::Millis, true);
            assert_eq!(millis::parse_canonical(text.as_bytes()), Some(t), "{text}");
        }
        for other in [
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.123+01:00",
            "2026-02-30T10:00:00.000Z",
            "2100-02-29T10:00:00.000Z",
            "2026-04-31T10:00:00.000Z",
            "2026-00-10T10:00:00.000Z",
            "2026-11-23T24:00:00.000Z",
            "2026-1a-23T10:00:00.000Z",
        ] {
            assert_eq!(millis::parse_canonical(other.as_bytes()), None, "{other}");
        }
        let offset: Event = serde_json::from_value(serde_json::json!({
            "event_id": "e", "tenant_id": "t", "type": "message.sent",
            "event_time": "2026-11-23T11:00:00.5+01:00", "received_at": "2026-11-23T10:00:00.000Z"
        }))
        .unwrap();
        assert_eq!(
            offset.event_time,
            offset.received_at + chrono::Duration::milliseconds(500)
        );
    }

    #[test]
    fn a_view_parsed_from_a_record_equals_the_view_of_the_event() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut e = Event::new("e1".into(), "acme".into(), EventType::Clicked, t, t);
        e.campaign_id = Some("spring \"sale\"".into()); // an escape: copied, still equal
        e.recipient_id = Some("r1".into());
        e.link_url = Some("https://x.example/a".into());
        e.cost = Some(0.25);
        e.properties
            .insert("plan".into(), serde_json::json!({"tier": [1, 2]}));
        e.context = RequestContext {
            ip: Some("203.0.113.0".into()),
            user_agent: Some("Mozilla/5.0".into()),
            device_class: Some(DeviceClass::Other),
            network: Some("apple-proxy".into()),
        };
        let data = serde_json::to_vec(&e).unwrap();
        let parsed = EventView::parse(&data).unwrap();
        assert_eq!(parsed, EventView::from(&e));
        assert_eq!(parsed.context.network.as_deref(), Some("apple-proxy"));
        assert_eq!(serde_json::from_slice::<Event>(&data).unwrap(), e);
        assert!(
            matches!(parsed.tenant_id, Cow::Borrowed(_)),
            "plain strings are not copied"
        );
    }

    #[test]
    fn event_serializes_with_millisecond_utc_times_and_no_empty_fields() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = Event::new("e1".into(), "acme".into(), EventType::Opened, t, t);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event_time"], "2026-11-23T10:00:00.123Z");
        assert_eq!(json["type"], "message.opened");
        assert!(json.get("properties").is_none());
        assert!(json.get("context").is_none());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back.kind, EventType::Opened);
    }

    #[test]
    fn the_network_label_travels_only_when_set() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut e = Event::new("e1".into(), "acme".into(), EventType::Opened, t, t);
        e.context.network = Some("scanners".into());
        assert!(!e.context.is_empty(), "a label alone is a context");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["context"], serde_json::json!({"network": "scanners"}));
        e.context = RequestContext {
            ip: Some("192.0.2.0".into()),
            ..Default::default()
        };
        let json = serde_json::to_value(&e).unwrap();
        assert!(json["context"].get("network").is_none());
        // Records written before the label existed read with none.
        let old = br#"{"event_id":"e","tenant_id":"t","type":"message.opened","event_time":"2026-11-23T10:00:00.000Z","received_at":"2026-11-23T10:00:00.000Z","context":{"ip":"192.0.2.0"}}"#;
        assert_eq!(EventView::parse(old).unwrap().context.network, None);
        let back: Event = serde_json::from_slice(old).unwrap();
        assert_eq!(back.context.network, None);
    }
}
