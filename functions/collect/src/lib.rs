//! The collect API: `POST /v1/events` takes one event (a JSON object) or a batch (a
//! JSON array, or NDJSON with one event per line), authenticated by the tenant's API key.
//!
//! Valid events are accepted even when others in the batch are rejected; the answer
//! lists a result per event. Accepted means stored on the stream: events the stream
//! refused are reported with 503 so the client retries them, and nothing reported as
//! accepted is ever lost.

use beacon_domain::apikey::{authenticate, ApiKeyStore, AuthError, CachedApiKeys};

use beacon_aws::dynamo::apikeys::DynamoApiKeys;
use beacon_aws::http::{error_response, header_str, json_response, presented_api_key};
use beacon_aws::kinesis::KinesisSink;
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::event::context::IpPolicy;
use beacon_domain::event::validate::{validate_event, FieldError, Ingest, Limits};
use beacon_domain::metrics;
use beacon_domain::tracking::sink::EventSink;
use beacon_domain::Event;
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

pub struct CollectApp<S, K> {
    pub sink: S,
    pub keys: K,
    pub limits: Limits,
    pub ip_policy: IpPolicy,
}

impl CollectApp<KinesisSink, CachedApiKeys<DynamoApiKeys>> {
    /// Reads `BEACON_STREAM_NAME`, `BEACON_API_KEYS_TABLE`, the limits and the IP policy.
    pub fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let stream = env.required("BEACON_STREAM_NAME")?;
        let table = env.required("BEACON_API_KEYS_TABLE")?;
        let cache_secs = env.parse_or("BEACON_API_KEY_CACHE_SECONDS", 60u64)?;
        Ok(CollectApp {
            sink: KinesisSink::new(aws_sdk_kinesis::Client::new(aws), stream),
            keys: CachedApiKeys::new(
                DynamoApiKeys::new(aws_sdk_dynamodb::Client::new(aws), table),
                Duration::from_secs(cache_secs),
            ),
            limits: env.limits()?,
            ip_policy: env.ip_policy()?,
        })
    }
}

/// The outcome for one event of the request, in request order.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum EventResult {
    Accepted {
        index: usize,
        event_id: String,
    },
    Rejected {
        index: usize,
        errors: Vec<FieldError>,
    },
    /// Valid, but the stream would not take it: retry it.
    Failed {
        index: usize,
        event_id: String,
        error: String,
    },
}

#[derive(Debug, Serialize)]
pub struct CollectResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub failed: usize,
    pub results: Vec<EventResult>,
}

/// Why a whole request was refused: the status and the JSON error body.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
}

pub async fn handle<S: EventSink, K: ApiKeyStore>(
    app: &CollectApp<S, K>,
    req: Request,
) -> Result<Response<Body>, Error> {
    Ok(collect(app, req)
        .await
        .unwrap_or_else(|r| error_response(r.status, r.code, &r.message)))
}

async fn collect<S: EventSink, K: ApiKeyStore>(
    app: &CollectApp<S, K>,
    req: Request,
) -> Result<Response<Body>, Refusal> {
    if req.method() != Method::POST {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST",
        ));
    }
    let key = authenticate(&app.keys, presented_api_key(&req))
        .await
        .map_err(|err| match err {
            AuthError::Store(e) => {
                tracing::error!(error = %e, "API key lookup failed");
                Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "try again shortly",
                )
            }
            other => {
                metrics::count("AuthFailures", 1, &[]);
                Refusal::new(StatusCode::UNAUTHORIZED, "unauthorized", other.to_string())
            }
        })?;

    let ndjson = request_format(&req)?;
    let body: &[u8] = req.body().as_ref();
    if body.len() > app.limits.max_body_bytes {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "body is {} bytes; at most {} are accepted",
                body.len(),
                app.limits.max_body_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
            format!(
                "body is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let inputs = parse_events(text, ndjson)?;
    if inputs.len() > app.limits.max_batch_events {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "batch has {} events; at most {} are accepted per request",
                inputs.len(),
                app.limits.max_batch_events
            ),
        ));
    }
    // Writing to another tenant is a misconfigured or hostile client, not bad data.
    if let Some(other) = inputs
        .iter()
        .filter_map(|v| v.get("tenant_id").and_then(Value::as_str))
        .find(|t| *t != key.tenant_id)
    {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden_tenant",
            format!(
                "this API key belongs to tenant `{}`, not `{other}`",
                key.tenant_id
            ),
        ));
    }

    let ingest = Ingest {
        tenant_id: &key.tenant_id,
        now: chrono::Utc::now(),
        limits: &app.limits,
        ip_policy: app.ip_policy,
    };
    let mut results = Vec::with_capacity(inputs.len());
    let mut valid: Vec<(usize, Event)> = Vec::new();
    for (index, raw) in inputs.iter().enumerate() {
        match validate_event(raw, &ingest) {
            Ok(event) => valid.push((index, event)),
            Err(errors) => results.push(EventResult::Rejected { index, errors }),
        }
    }
    let events: Vec<Event> = valid.iter().map(|(_, e)| e.clone()).collect();
    let unstored = if events.is_empty() {
        Vec::new()
    } else {
        app.sink.put(&events).await
    };
    let mut unstored_errors = vec![None; events.len()];
    for u in unstored {
        unstored_errors[u.index] = Some(u.error);
    }
    for ((index, event), error) in valid.into_iter().zip(unstored_errors) {
        results.push(match error {
            None => EventResult::Accepted {
                index,
                event_id: event.event_id,
            },
            Some(error) => EventResult::Failed {
                index,
                event_id: event.event_id,
                error,
            },
        });
    }
    results.sort_by_key(|r| match r {
        EventResult::Accepted { index, .. }
        | EventResult::Rejected { index, .. }
        | EventResult::Failed { index, .. } => *index,
    });

    let count = |f: fn(&EventResult) -> bool| results.iter().filter(|r| f(r)).count();
    let response = CollectResponse {
        accepted: count(|r| matches!(r, EventResult::Accepted { .. })),
        rejected: count(|r| matches!(r, EventResult::Rejected { .. })),
        failed: count(|r| matches!(r, EventResult::Failed { .. })),
        results,
    };
    metrics::count("EventsAccepted", response.accepted as u64, &[]);
    metrics::count("EventsRejected", response.rejected as u64, &[]);
    let status = if response.failed > 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else if response.accepted == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::ACCEPTED
    };
    let mut answer = json_response(status, &response);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    Ok(answer)
}

/// JSON (`false`) or NDJSON (`true`) from the Content-Type; anything else is 415.
fn request_format(req: &Request) -> Result<bool, Refusal> {
    if let Some(encoding) = header_str(req, "content-encoding") {
        if !encoding.eq_ignore_ascii_case("identity") {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!(
                    "Content-Encoding `{encoding}` is not supported; send the body uncompressed"
                ),
            ));
        }
    }
    let content_type = header_str(req, "content-type").unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Ok(false),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok(true),
        _ => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type `{content_type}` is not accepted; use application/json (one event or an array) or application/x-ndjson"
            ),
        )),
    }
}

fn parse_events(text: &str, ndjson: bool) -> Result<Vec<Value>, Refusal> {
    let malformed = |what: String| Refusal::new(StatusCode::BAD_REQUEST, "malformed_json", what);
    let events = if ndjson {
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .map_err(|e| malformed(format!("line {}: {e}", n + 1)))?;
            events.push(value);
        }
        events
    } else {
        match serde_json::from_str::<Value>(text).map_err(|e| malformed(format!("body: {e}")))? {
            Value::Array(events) => events,
            single @ Value::Object(_) => vec![single],
            _ => {
                return Err(malformed(
                    "body must be an event object or an array of events".into(),
                ))
            }
        }
    };
    if events.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "empty_batch",
            "the request holds no events",
        ));
    }
    Ok(events)
}
