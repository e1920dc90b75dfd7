//! Validation of events sent to the collect API.
//!
//! Input arrives as untyped JSON and is checked field by field, so every rejection names
//! the field and the rule it broke (serde's own messages can't do that). A valid input
//! becomes an [`Event`] with server-side fields filled in.

use crate::event::context::{request_context, IpPolicy};
use crate::event::{new_event_id, BadValue, BounceType, Event, EventType};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Size and time limits; every one is configurable (see `Limits::from_lookup`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_batch_events: usize,
    /// Largest single event, as JSON.
    pub max_event_bytes: usize,
    /// Most keys in `properties`.
    pub max_properties: usize,
    /// How far in the future an event time may be (client clock skew).
    pub max_future: Duration,
    /// How old an event may be.
    pub max_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_batch_events: 500,
            max_event_bytes: 32 * 1024,
            max_properties: 100,
            max_future: Duration::minutes(10),
            max_age: Duration::days(30),
        }
    }
}

/// One broken rule: which field, which rule, and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub rule: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            rule,
            message: message.into(),
        }
    }
}

/// Who is sending and when: what validation needs besides the event itself.
#[derive(Debug, Clone)]
pub struct Ingest<'a> {
    /// The tenant of the API key that sent the request.
    pub tenant_id: &'a str,
    pub now: DateTime<Utc>,
    pub limits: &'a Limits,
    pub ip_policy: IpPolicy,
}

const KNOWN_FIELDS: [&str; 20] = [
    "event_id",
    "tenant_id",
    "type",
    "event_time",
    "campaign_id",
    "message_id",
    "recipient_id",
    "channel",
    "provider",
    "link_url",
    "bounce_type",
    "reason",
    "cost",
    "value",
    "currency",
    "duration_ms",
    "properties",
    "context",
    // Accepted so a client can echo what it read from the stream back; always replaced.
    "received_at",
    "schema",
];

/// Channel assumed when a message event names none.
pub const DEFAULT_CHANNEL: &str = "email";

/// Checks one event; on success returns it with ids, times and context settled.
pub fn validate_event(raw: &Value, ingest: &Ingest) -> Result<Event, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(object) = raw.as_object() else {
        return Err(vec![FieldError::new(
            "(event)",
            "type",
            format!("an event must be a JSON object, not {}", json_kind(raw)),
        )]);
    };
    let size = serde_json::to_vec(raw)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > ingest.limits.max_event_bytes {
        return Err(vec![FieldError::new(
            "(event)",
            "max_size",
            format!(
                "event is {size} bytes; at most {} bytes are accepted",
                ingest.limits.max_event_bytes
            ),
        )]);
    }
    for key in object.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.clone(),
                "unknown_field",
                format!("unknown field `{key}`; put custom data under `properties`"),
            ));
        }
    }

    let mut f = Fields {
        object,
        errors: &mut errors,
    };
    let kind = match f.string("type", 1, 80, Charset::Any) {
        Some(name) => match EventType::parse(name) {
            Ok(kind) => Some(kind),
            Err(msg) => {
                f.errors.push(FieldError::new("type", "enum", msg.0));
                None
            }
        },
        None => {
            if !object.contains_key("type") {
                f.errors
                    .push(FieldError::new("type", "required", "`type` is required"));
            }
            None
        }
    };
    let event_id = f
        .string("event_id", 1, 128, Charset::Id)
        .map(str::to_string);
    let tenant_id = f
        .string("tenant_id", 1, 64, Charset::Id)
        .map(str::to_string);
    if let Some(t) = &tenant_id {
        if t != ingest.tenant_id {
            f.errors.push(FieldError::new(
                "tenant_id",
                "tenant_mismatch",
                format!("tenant `{t}` is not the API key's tenant"),
            ));
        }
    }
    let event_time = f.time("event_time", ingest);
    let campaign_id = f
        .string("campaign_id", 1, 256, Charset::Printable)
        .map(str::to_string);
    let message_id = f
        .string("message_id", 1, 256, Charset::Printable)
        .map(str::to_string);
    let recipient_id = f
        .string("recipient_id", 1, 256, Charset::Printable)
        .map(str::to_string);
    let channel = f
        .string("channel", 1, CHANNEL_MAX, Charset::Token)
        .map(str::to_string);
    let provider = f
        .string("provider", 1, 64, Charset::Printable)
        .map(str::to_string);
    let link_url = f.url("link_url");
    let bounce_type = match f.string("bounce_type", 1, 8, Charset::Any) {
        Some("hard") => Some(BounceType::Hard),
        Some("soft") => Some(BounceType::Soft),
        Some(other) => {
            f.errors.push(FieldError::new(
                "bounce_type",
                "enum",
                format!("bounce_type `{other}` must be `hard` or `soft`"),
            ));
            None
        }
        None => None,
    };
    let reason = f
        .string("reason", 1, 1024, Charset::Any)
        .map(str::to_string);
    let cost = f.number("cost", Some(0.0), Some(1e9));
    let value = f.number("value", Some(-1e12), Some(1e12));
    let currency = f
        .string("currency", 3, 3, Charset::Currency)
        .map(str::to_string);
    let duration_ms = f.integer("duration_ms", 0, 365 * 24 * 3600 * 1000);
    let properties = f.properties(ingest.limits.max_properties);
    let context = f.context(ingest.ip_policy);

    // Requirements that depend on the type.
    if let Some(kind) = &kind {
        if kind.is_message_event() {
            for (name, present) in [("message_id", &message_id), ("recipient_id", &recipient_id)] {
                if present.is_none() && !object.contains_key(name) {
                    f.errors.push(FieldError::new(
                        name,
                        "required",
                        format!("`{name}` is required for `{kind}` events"),
                    ));
                }
            }
        }
        if *kind == EventType::Clicked && link_url.is_none() && !object.contains_key("link_url") {
            f.errors.push(FieldError::new(
                "link_url",
                "required",
                "`link_url` is required for `link.clicked` events",
            ));
        }
        if *kind == EventType::Bounced
            && bounce_type.is_none()
            && !object.contains_key("bounce_type")
        {
            f.errors.push(FieldError::new(
                "bounce_type",
                "required",
                "`bounce_type` (`hard` or `soft`) is required for `message.bounced` events",
            ));
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let kind = kind.expect("type checked above");
    let received_at = truncate_millis(ingest.now);
    let channel = channel.or_else(|| kind.is_message_event().then(|| DEFAULT_CHANNEL.to_string()));
    let mut event = Event::new(
        event_id.unwrap_or_else(new_event_id),
        ingest.tenant_id.to_string(),
        kind,
        event_time.unwrap_or(received_at),
        received_at,
    );
    event.campaign_id = campaign_id;
    event.message_id = message_id;
    event.recipient_id = recipient_id;
    event.channel = channel;
    event.provider = provider;
    event.link_url = link_url;
    event.bounce_type = bounce_type;
    event.reason = reason;
    event.cost = cost;
    event.value = value;
    event.currency = currency;
    event.duration_ms = duration_ms;
    event.properties = properties;
    event.context = context;
    Ok(event)
}

/// Millisecond precision everywhere: what the stream, the rollups and Athena keep.
pub fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::milliseconds(1)).unwrap_or(t)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The longest channel name.
pub const CHANNEL_MAX: usize = 32;

/// Checks a channel name as events' `channel` field is checked (1-32 of a-z 0-9 _ -),
/// for the places that take one on its own (the suppression API).
pub fn check_channel(channel: &str) -> Result<(), BadValue> {
    let len = channel.chars().count();
    if !(1..=CHANNEL_MAX).contains(&len) {
        return Err(BadValue(format!(
            "`channel` must be 1 to {CHANNEL_MAX} characters long, got {len}"
        )));
    }
    Charset::Token
        .check(channel)
        .map_err(|msg| BadValue(format!("`channel` {msg}")))
}

/// Checks a campaign id given on its own (a URL path, a dashboard link): 1-256
/// characters, none a control character, without surrounding whitespace.
pub fn check_campaign(id: &str) -> Result<(), BadValue> {
    if id.is_empty()
        || id.chars().count() > 256
        || id.chars().any(char::is_control)
        || id.trim() != id
    {
        return Err(BadValue(
            "`campaign` must be a campaign id: 1-256 printable characters".into(),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Charset {
    /// Anything but control characters.
    Any,
    /// Printable, no control characters or leading/trailing space.
    Printable,
    /// A-Z a-z 0-9 . _ : -
    Id,
    /// a-z 0-9 _ -
    Token,
    /// A-Z
    Currency,
}

impl Charset {
    fn check(self, s: &str) -> Result<(), &'static str> {
        let ok = match self {
            Charset::Any => !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
            Charset::Printable => !s.chars().any(char::is_control) && s.trim() == s,
            Charset::Id => s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)),
            Charset::Token => s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b)),
            Charset::Currency => s.bytes().all(|b| b.is_ascii_uppercase()),
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                Charset::Any => "must not contain control characters",
                Charset::Printable => {
                    "must not contain control characters or leading/trailing spaces"
                }
                Charset::Id => "may contain only A-Z a-z 0-9 . _ : -",
                Charset::Token => "may contain only a-z 0-9 _ -",
                Charset::Currency => "must be an ISO 4217 code such as USD",
            })
        }
    }
}

struct Fields<'a, 'e> {
    object: &'a Map<String, Value>,
    errors: &'e mut Vec<FieldError>,
}

impl<'a> Fields<'a, '_> {
    fn string(&mut self, name: &str, min: usize, max: usize, charset: Charset) -> Option<&'a str> {
        match self.object.get(name)? {
            Value::Null => None,
            Value::String(s) => {
                let len = s.chars().count();
                if len < min || len > max {
                    let rule = if len < min {
                        "min_length"
                    } else {
                        "max_length"
                    };
                    self.errors.push(FieldError::new(
                        name,
                        rule,
                        format!("`{name}` must be {min} to {max} characters long, got {len}"),
                    ));
                    return None;
                }
                if let Err(msg) = charset.check(s) {
                    self.errors
                        .push(FieldError::new(name, "charset", format!("`{name}` {msg}")));
                    return None;
                }
                Some(s.as_str())
            }
            other => {
                self.wrong_type(name, "a string", other);
                None
            }
        }
    }

    fn wrong_type(&mut self, name: &str, expected: &str, got: &Value) {
        self.errors.push(FieldError::new(
            name,
            "type",
            format!("`{name}` must be {expected}, not {}", json_kind(got)),
        ));
    }

    fn time(&mut self, name: &str, ingest: &Ingest) -> Option<DateTime<Utc>> {
        let text = self.string(name, 1, 64, Charset::Any)?;
        let Ok(t) = DateTime::parse_from_rfc3339(text) else {
            self.errors.push(FieldError::new(
                name,
                "format",
                format!("`{name}` must be an RFC 3339 timestamp like 2026-11-23T10:15:00Z, got `{text}`"),
            ));
            return None;
        };
        let t = truncate_millis(t.with_timezone(&Utc));
        let limits = ingest.limits;
        if t > ingest.now + limits.max_future {
            self.errors.push(FieldError::new(
                name,
                "not_in_future",
                format!(
                    "`{name}` is {} s in the future; at most {} s ahead is accepted",
                    (t - ingest.now).num_seconds(),
                    limits.max_future.num_seconds()
                ),
            ));
            return None;
        }
        if t < ingest.now - limits.max_age {
            self.errors.push(FieldError::new(
                name,
                "max_age",
                format!(
                    "`{name}` is {} h old; events older than {} h are not accepted",
                    (ingest.now - t).num_hours(),
                    limits.max_age.num_hours()
                ),
            ));
            return None;
        }
        Some(t)
    }

    fn url(&mut self, name: &str) -> Option<String> {
        let text = self.string(name, 1, 2048, Charset::Printable)?;
        match trackable_url(text) {
            Some(url) => Some(url),
            None => {
                self.errors.push(FieldError::new(
                    name,
                    "url",
                    format!("`{name}` must be an absolute http or https URL"),
                ));
                None
            }
        }
    }

    fn number(&mut self, name: &str, min: Option<f64>, max: Option<f64>) -> Option<f64> {
        match self.object.get(name)? {
            Value::Null => None,
            Value::Number(n) => {
                let v = n.as_f64().filter(|v| v.is_finite());
                match v {
                    Some(v) if min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m) => Some(v),
                    _ => {
                        self.errors.push(FieldError::new(
                            name,
                            "range",
                            format!(
                                "`{name}` must be between {} and {}, got {n}",
                                min.unwrap_or(f64::MIN),
                                max.unwrap_or(f64::MAX)
                            ),
                        ));
                        None
                    }
                }
            }
            other => {
                self.wrong_type(name, "a number", other);
                None
            }
        }
    }

    fn integer(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        match self.object.get(name)? {
            Value::Null => None,
            Value::Number(n) => match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => Some(v),
                _ => {
                    self.errors.push(FieldError::new(
                        name,
                        "range",
                        format!("`{name}` must be a whole number from {min} to {max}, got {n}"),
                    ));
                    None
                }
            },
            other => {
                self.wrong_type(name, "a whole number", other);
                None
            }
        }
    }

    fn properties(&mut self, max: usize) -> Map<String, Value> {
        match self.object.get("properties") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => {
                if map.len() > max {
                    self.errors.push(FieldError::new(
                        "properties",
                        "max_properties",
                        format!(
                            "`properties` has {} keys; at most {max} are accepted",
                            map.len()
                        ),
                    ));
                    return Map::new();
                }
                if let Some(bad) = map.keys().find(|k| k.is_empty() || k.len() > 128) {
                    self.errors.push(FieldError::new(
                        format!("properties.{bad}"),
                        "max_length",
                        "property names must be 1 to 128 bytes long",
                    ));
                    return Map::new();
                }
                map.clone()
            }
            Some(other) => {
                self.wrong_type("properties", "an object", other);
                Map::new()
            }
        }
    }

    fn context(&mut self, policy: IpPolicy) -> crate::event::RequestContext {
        let empty = crate::event::RequestContext::default();
        let object = match self.object.get("context") {
            None | Some(Value::Null) => return empty,
            Some(Value::Object(o)) => o,
            Some(other) => {
                self.wrong_type("context", "an object", other);
                return empty;
            }
        };
        let mut nested = Fields {
            object,
            errors: &mut Vec::new(),
        };
        let ip = nested.string("ip", 2, 64, Charset::Printable);
        let user_agent = nested.string("user_agent", 0, 4096, Charset::Any);
        let mut nested_errors = std::mem::take(nested.errors);
        if let Some(ip) = ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                nested_errors.push(FieldError::new(
                    "ip",
                    "format",
                    format!("`{ip}` is not an IP address"),
                ));
            }
        }
        for key in object.keys() {
            if !["ip", "user_agent", "device_class"].contains(&key.as_str()) {
                nested_errors.push(FieldError::new(
                    key.clone(),
                    "unknown_field",
                    format!("unknown field `{key}`; context takes ip and user_agent"),
                ));
            }
        }
        for mut e in nested_errors {
            e.field = format!("context.{}", e.field);
            self.errors.push(e);
        }
        request_context(ip, user_agent, policy)
    }
}

/// Returns the URL if it is an absolute http(s) URL with a host, and nothing else:
/// the only kind of destination a click token may carry.
pub fn trackable_url(text: &str) -> Option<String> {
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    // Written out in full: no `https:/x`, `https:///x` or `https:\\x` that a lenient
    // parser would repair into something else than what the sender wrote.
    let lower = text.get(..8)?.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &text[8..]
    } else if lower.starts_with("http://") {
        &text[7..]
    } else {
        return None;
    };
    if rest.starts_with(['/', '\\']) {
        return None;
    }
    let url = url::Url::parse(text).ok()?;
    let http = matches!(url.scheme(), "http" | "https");
    (http && url.host_str().is_some_and(|h| !h.is_empty())).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_ids_on_their_own() {
        for good in ["spring-sale", "Ünïcode campaign", &"c".repeat(256)] {
            assert!(check_campaign(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            " padded",
            "padded ",
            "tab\there",
            "line\nbreak",
            &"c".repeat(257),
        ] {
            let err = check_campaign(bad).unwrap_err();
            assert!(err.0.contains("1-256 printable"), "{bad}: {err}");
        }
    }

    #[test]
    fn trackable_urls() {
        assert!(trackable_url("https://a.example/x?y#z").is_some());
        assert!(trackable_url("javascript:alert(1)").is_none());
        assert!(trackable_url("https:///nohost").is_none());
        assert!(trackable_url("https://a.example/\r\nSet-Cookie:x").is_none());
        assert!(trackable_url("//a.example").is_none());
    }
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn check(raw: Value) -> Result<Event, Vec<FieldError>> {
        let limits = Limits::default();
        let ingest = Ingest {
            tenant_id: "acme",
            now: now(),
            limits: &limits,
            ip_policy: IpPolicy::Anonymize,
        };
        validate_event(&raw, &ingest)
    }

    fn rules(raw: Value) -> Vec<(String, &'static str)> {
        check(raw)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.rule))
            .collect()
    }

    #[test]
    fn a_delivered_event_gets_defaults() {
        let e = check(json!({"type":"message.delivered","message_id":"m1","recipient_id":"r1","campaign_id":"c1"})).unwrap();
        assert_eq!(e.tenant_id, "acme");
        assert_eq!(e.channel.as_deref(), Some("email"));
        assert_eq!(e.event_time, now());
        assert_eq!(e.received_at, now());
        assert_eq!(e.event_id.len(), 36, "generated UUID");
    }

    #[test]
    fn client_event_id_is_kept_and_times_truncated_to_millis() {
        let e = check(json!({"event_id":"ev-1","type":"custom.signup","event_time":"2026-11-23T11:59:00.123456Z"})).unwrap();
        assert_eq!(e.event_id, "ev-1");
        assert_eq!(e.event_time.timestamp_subsec_micros(), 123_000);
        assert_eq!(e.channel, None);
    }

    #[test]
    fn missing_and_unknown_type() {
        assert_eq!(
            rules(json!({"message_id":"m"})),
            vec![("type".into(), "required")]
        );
        assert_eq!(
            rules(json!({"type":"message.read"})),
            vec![("type".into(), "enum")]
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let errs =
            check(json!({"type":"conversion","value":"12","duration_ms":1.5,"properties":[]}))
                .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| (e.field.as_str(), e.rule)).collect();
        assert!(fields.contains(&("value", "type")), "{errs:?}");
        assert!(fields.contains(&("duration_ms", "range")), "{errs:?}");
        assert!(fields.contains(&("properties", "type")), "{errs:?}");
        assert!(errs[0].message.contains('`'));
    }

    #[test]
    fn type_specific_requirements() {
        assert_eq!(
            rules(json!({"type":"message.opened","message_id":"m"})),
            vec![("recipient_id".into(), "required")]
        );
        assert_eq!(
            rules(json!({"type":"link.clicked","message_id":"m","recipient_id":"r"})),
            vec![("link_url".into(), "required")]
        );
        assert_eq!(
            rules(json!({"type":"message.bounced","message_id":"m","recipient_id":"r"})),
            vec![("bounce_type".into(), "required")]
        );
        assert_eq!(
            rules(
                json!({"type":"message.bounced","message_id":"m","recipient_id":"r","bounce_type":"medium"})
            ),
            vec![("bounce_type".into(), "enum")]
        );
    }

    #[test]
    fn times_too_far_ahead_or_too_old() {
        assert_eq!(
            rules(json!({"type":"custom.x","event_time":"2026-11-23T13:00:00Z"})),
            vec![("event_time".into(), "not_in_future")]
        );
        assert_eq!(
            rules(json!({"type":"custom.x","event_time":"2025-01-01T00:00:00Z"})),
            vec![("event_time".into(), "max_age")]
        );
        assert_eq!(
            rules(json!({"type":"custom.x","event_time":"yesterday"})),
            vec![("event_time".into(), "format")]
        );
        assert!(check(json!({"type":"custom.x","event_time":"2026-11-23T12:05:00+00:00"})).is_ok());
    }

    #[test]
    fn oversized_event_and_too_many_properties() {
        let big = "x".repeat(40 * 1024);
        assert_eq!(
            rules(json!({"type":"custom.x","properties":{"blob":big}})),
            vec![("(event)".into(), "max_size")]
        );
        let many: Map<String, Value> = (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            rules(json!({"type":"custom.x","properties":many})),
            vec![("properties".into(), "max_properties")]
        );
    }

    #[test]
    fn unknown_fields_and_other_tenants() {
        assert_eq!(
            rules(json!({"type":"custom.x","colour":"red"})),
            vec![("colour".into(), "unknown_field")]
        );
        assert_eq!(
            rules(json!({"type":"custom.x","tenant_id":"globex"})),
            vec![("tenant_id".into(), "tenant_mismatch")]
        );
    }

    #[test]
    fn links_must_be_http() {
        for bad in ["javascript:alert(1)", "/relative", "ftp://x.example/"] {
            assert_eq!(
                rules(
                    json!({"type":"link.clicked","message_id":"m","recipient_id":"r","link_url":bad})
                ),
                vec![("link_url".into(), "url")],
                "{bad}"
            );
        }
    }

    #[test]
    fn context_ip_is_anonymized_and_checked() {
        let e = check(json!({"type":"custom.x","context":{"ip":"203.0.113.9","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"}})).unwrap();
        assert_eq!(e.context.ip.as_deref(), Some("203.0.113.0"));
        assert_eq!(
            e.context.device_class,
            Some(crate::event::DeviceClass::Desktop)
        );
        assert_eq!(
            rules(json!({"type":"custom.x","context":{"ip":"999.1.1.1"}})),
            vec![("context.ip".into(), "format")]
        );
    }

    #[test]
    fn not_an_object() {
        assert_eq!(rules(json!([1, 2])), vec![("(event)".into(), "type")]);
    }
}
