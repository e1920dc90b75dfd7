//! Provider webhooks in: `POST /v1/webhooks/{provider}/{tenant}` for SendGrid, Mailgun,
//! Postmark and Twilio. Each request is verified the way its provider signs, with the
//! tenant's credential ([`beacon_domain::ingest::credentials`]), before anything in it
//! is read as events; then it is mapped ([`beacon_domain::ingest`]) onto the stream the
//! collect API writes to.
//!
//! Answers, as providers read them (they retry on anything but 2xx):
//! - 401 with a JSON error: a missing or bad signature, or a stale timestamp; 403: no
//!   credential for this tenant and provider, or a replayed Mailgun token. Nothing is
//!   recorded.
//! - 400: a body that is not the provider's format at all.
//! - 503 (with `Retry-After`): the stream refused some events; the retry maps to the
//!   same ids, so what was stored the first time counts once.
//! - 200 `{"recorded": n, "skipped": m, "skipped_events": [...]}`: everything storable
//!   is stored; the skipped ones (unknown types, out of the time window) are listed
//!   with their reasons and logged, never retried.

use beacon_aws::dynamo::providers::DynamoProviders;
use beacon_aws::http::{error_response, header_str, json_response, path_param};
use beacon_aws::kinesis::KinesisSink;
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::ingest::credentials::{ProviderStore, StoredCredential};
use beacon_domain::ingest::{
    mailgun, postmark, record, sendgrid, twilio, Expiring, Intake, Malformed, Mapped, Provider,
    Recorded, Refused, Skipped, TOLERANCE_SECONDS,
};
use beacon_domain::metrics;
use beacon_domain::tracking::sink::EventSink;
use beacon_domain::verdict::networks::Networks;
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde::Serialize;
use std::time::Duration;

pub struct WebhooksApp<S, P> {
    pub sink: S,
    pub store: P,
    pub intake: Intake,
    /// The URL providers are given (`BEACON_PUBLIC_BASE_URL`), for Twilio's signature
    /// over the full URL; without it, the URL the request arrived at.
    pub public_base_url: Option<String>,
    credentials: Expiring<(String, Provider), Option<StoredCredential>>,
}

impl WebhooksApp<KinesisSink, DynamoProviders> {
    /// Reads `BEACON_STREAM_NAME`, `BEACON_PROVIDERS_TABLE`, the ingest keys, the limits,
    /// the IP policy and `BEACON_PUBLIC_BASE_URL`.
    pub async fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let stream = env.required("BEACON_STREAM_NAME")?;
        let table = env.required("BEACON_PROVIDERS_TABLE")?;
        let intake = Intake {
            keys: beacon_aws::config::ingest_keys(env, aws).await?,
            limits: env.limits()?,
            ip_policy: env.ip_policy()?,
            networks: Networks::shipped(),
        };
        Ok(Self::new(
            KinesisSink::new(aws_sdk_kinesis::Client::new(aws), stream),
            DynamoProviders::new(aws_sdk_dynamodb::Client::new(aws), table),
            intake,
            env.get("BEACON_PUBLIC_BASE_URL"),
        ))
    }
}

impl<S: EventSink, P: ProviderStore> WebhooksApp<S, P> {
    pub fn new(sink: S, store: P, intake: Intake, public_base_url: Option<String>) -> Self {
        WebhooksApp {
            sink,
            store,
            intake,
            public_base_url: public_base_url.map(|u| u.trim_end_matches('/').to_string()),
            // A new or rotated credential takes effect within a minute.
            credentials: Expiring::new(Duration::from_secs(60)),
        }
    }

    async fn credential(
        &self,
        tenant: &str,
        provider: Provider,
    ) -> Result<Option<StoredCredential>, Answer> {
        let key = (tenant.to_string(), provider);
        if let Some(found) = self.credentials.get(&key) {
            return Ok(found);
        }
        let found = self.store.credential(tenant, provider).await.map_err(|e| {
            tracing::error!(error = %e, "provider credential lookup failed");
            Answer::unavailable()
        })?;
        self.credentials.put(key, found.clone());
        Ok(found)
    }
}

/// A finished answer that is not a success.
pub struct Answer {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Answer {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Answer {
            status,
            code,
            message: message.into(),
        }
    }

    fn unavailable() -> Self {
        Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "try again shortly",
        )
    }

    fn refused(provider: Provider, tenant: &str, refused: Refused) -> Self {
        tracing::warn!(
            provider = provider.as_str(),
            tenant,
            reason = refused.code(),
            "webhook refused"
        );
        metrics::count(
            "WebhooksRefused",
            1,
            &[("Provider", provider.as_str()), ("Reason", refused.code())],
        );
        let status = match refused {
            Refused::Replay => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        Answer::new(status, refused.code(), refused.to_string())
    }

    fn malformed(m: Malformed) -> Self {
        Answer::new(StatusCode::BAD_REQUEST, "malformed", m.0)
    }
}

#[derive(Debug, Serialize)]
pub struct WebhookResponse {
    #[serde(flatten)]
    pub recorded: Recorded,
    pub skipped_events: Vec<SkippedEvent>,
}

#[derive(Debug, Serialize)]
pub struct SkippedEvent {
    pub index: usize,
    pub provider_event: String,
    pub reason: String,
}

impl From<&Skipped> for SkippedEvent {
    fn from(s: &Skipped) -> Self {
        SkippedEvent {
            index: s.index,
            provider_event: s.provider_event.clone(),
            reason: s.reason.clone(),
        }
    }
}

pub async fn handle<S: EventSink, P: ProviderStore>(
    app: &WebhooksApp<S, P>,
    req: Request,
) -> Result<Response<Body>, Error> {
    Ok(receive(app, &req, chrono::Utc::now())
        .await
        .unwrap_or_else(|a| {
            let mut response = error_response(a.status, a.code, &a.message);
            if a.status == StatusCode::SERVICE_UNAVAILABLE {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            }
            response
        }))
}

/// Verifies, maps and records one webhook request.
pub async fn receive<S: EventSink, P: ProviderStore>(
    app: &WebhooksApp<S, P>,
    req: &Request,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Response<Body>, Answer> {
    if req.method() != Method::POST {
        return Err(Answer::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST",
        ));
    }
    let name = path_param(req, "provider").unwrap_or_default();
    let provider = Provider::parse(name)
        .filter(|p| *p != Provider::Ses)
        .ok_or_else(|| {
            Answer::new(
                StatusCode::NOT_FOUND,
                "unknown_provider",
                format!("`{name}` is not a webhook provider; use sendgrid, mailgun, postmark or twilio (SES events arrive through EventBridge or SNS)"),
            )
        })?;
    let tenant = path_param(req, "tenant").unwrap_or_default().to_string();
    let unknown = || {
        metrics::count(
            "WebhooksRefused",
            1,
            &[
                ("Provider", provider.as_str()),
                ("Reason", "unknown_tenant"),
            ],
        );
        Answer::new(
            StatusCode::FORBIDDEN,
            "unknown_tenant",
            format!("no {provider} webhook is set up for this tenant (beacon provider add)"),
        )
    };
    if beacon_domain::tenant::check(&tenant).is_err() {
        return Err(unknown());
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > app.intake.limits.max_body_bytes {
        return Err(Answer::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "body is {} bytes; at most {} are accepted",
                body.len(),
                app.intake.limits.max_body_bytes
            ),
        ));
    }
    let credential = app
        .credential(&tenant, provider)
        .await?
        .ok_or_else(unknown)?;
    let secrets = credential
        .secrets(&app.intake.keys, now.timestamp())
        .map_err(|e| {
            tracing::error!(provider = provider.as_str(), tenant = %tenant, error = %e, "provider credential does not open");
            Answer::new(StatusCode::FORBIDDEN, "unknown_tenant", "this tenant's credential cannot be used; set it again (beacon provider rotate)")
        })?;
    let refused = |r: Refused| Answer::refused(provider, &tenant, r);
    let now_s = now.timestamp();

    // Verify first: nothing of an unverified body is read as events.
    let (mapped, mailgun_token) = match provider {
        Provider::SendGrid => {
            sendgrid::verify(
                &secrets,
                header_str(req, "x-twilio-email-event-webhook-signature"),
                header_str(req, "x-twilio-email-event-webhook-timestamp"),
                body,
                now_s,
            )
            .map_err(refused)?;
            let mapped = app
                .intake
                .with_source(provider, &tenant, now, |s| sendgrid::map(body, s))
                .map_err(Answer::malformed)?;
            (mapped, None)
        }
        Provider::Mailgun => {
            let payload = mailgun::parse(body).map_err(Answer::malformed)?;
            mailgun::verify(&secrets, &payload, now_s).map_err(refused)?;
            let token = mailgun::token(&payload).to_string();
            // Kept past the window in which the timestamp check would pass anyway.
            let first = app
                .store
                .first_use(
                    &tenant,
                    provider,
                    &token,
                    now_s + 2 * TOLERANCE_SECONDS + 60,
                )
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "token store failed");
                    Answer::unavailable()
                })?;
            if !first {
                return Err(refused(Refused::Replay));
            }
            let mapped = app
                .intake
                .with_source(provider, &tenant, now, |s| mailgun::map(&payload, s));
            (mapped, Some(token))
        }
        Provider::Postmark => {
            postmark::verify(
                &secrets,
                header_str(req, "authorization"),
                header_str(req, postmark::TOKEN_HEADER),
            )
            .map_err(refused)?;
            let mapped = app
                .intake
                .with_source(provider, &tenant, now, |s| postmark::map(body, s))
                .map_err(Answer::malformed)?;
            (mapped, None)
        }
        Provider::Twilio => {
            let params = twilio::parse_form(body);
            let url = signed_url(app, req);
            twilio::verify(
                &secrets,
                &url,
                &params,
                header_str(req, "x-twilio-signature"),
            )
            .map_err(refused)?;
            let query: Vec<(String, String)> = req
                .uri()
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            let mapped = app
                .intake
                .with_source(provider, &tenant, now, |s| twilio::map(&params, &query, s));
            (mapped, None)
        }
        Provider::Ses => unreachable!("SES has no webhook route"),
    };
    finish(app, provider, &tenant, &mapped, mailgun_token).await
}

async fn finish<S: EventSink, P: ProviderStore>(
    app: &WebhooksApp<S, P>,
    provider: Provider,
    tenant: &str,
    mapped: &Mapped,
    token: Option<String>,
) -> Result<Response<Body>, Answer> {
    let done = record(&app.sink, provider, tenant, mapped).await;
    if done.failed > 0 {
        if let Some(token) = token {
            // The retry will carry the same token: let it through.
            if let Err(e) = app.store.forget_use(tenant, provider, &token).await {
                tracing::error!(error = %e, "could not release the token of a failed request");
            }
        }
        return Err(Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_stored",
            format!(
                "{} of {} events were not stored; send the request again",
                done.failed,
                mapped.events.len()
            ),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &WebhookResponse {
            recorded: done,
            skipped_events: mapped.skipped.iter().map(SkippedEvent::from).collect(),
        },
    ))
}

/// The URL Twilio signed: the public base URL with the request's path and query when
/// one is configured (a custom domain), otherwise the URL the request arrived at.
fn signed_url<S, P>(app: &WebhooksApp<S, P>, req: &Request) -> String {
    let uri = req.uri();
    match &app.public_base_url {
        Some(base) => {
            let mut url = format!("{base}{}", uri.path());
            if let Some(q) = uri.query() {
                url.push('?');
                url.push_str(q);
            }
            url
        }
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_aws::http::{lambda_request, GatewayRequest};
    use beacon_domain::event::context::IpPolicy;
    use beacon_domain::event::validate::Limits;
    use beacon_domain::ingest::credentials::IngestKeys;
    use beacon_domain::testkit::memory::{MemoryProviders, MemorySink};
    use hmac::{Hmac, Mac};
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    const KEYS: &str = r#"{"active":"k1","k1":"0123456789abcdef0123456789abcdef"}"#;

    fn app(sink: MemorySink) -> WebhooksApp<MemorySink, MemoryProviders> {
        let intake = Intake {
            keys: IngestKeys::from_json(KEYS).unwrap(),
            limits: Limits::default(),
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        };
        let store = MemoryProviders::default();
        for (provider, secret) in [(Provider::Mailgun, "key-1"), (Provider::Postmark, "tok")] {
            let c = StoredCredential::new(&intake.keys, "acme", provider, secret, "t0");
            store
                .credentials
                .lock()
                .unwrap()
                .insert(("acme".into(), provider), c);
        }
        WebhooksApp::new(sink, store, intake, None)
    }

    fn post(provider: &str, tenant: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let path = format!("/v1/webhooks/{provider}/{tenant}");
        let params = BTreeMap::from([
            ("provider".to_string(), provider.to_string()),
            ("tenant".to_string(), tenant.to_string()),
        ]);
        lambda_request(&GatewayRequest {
            method: "POST",
            route: "/v1/webhooks/{provider}/{tenant}",
            path: &path,
            query: "",
            headers: &headers,
            path_params: &params,
            body,
            source_ip: "192.0.2.1",
        })
    }

    fn mailgun(token: &str, now: i64) -> Vec<u8> {
        let timestamp = now.to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"key-1").unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        serde_json::to_vec(&json!({
            "signature": {"timestamp": timestamp, "token": token, "signature": hex::encode(mac.finalize().into_bytes())},
            "event-data": {"event": "delivered", "id": token, "timestamp": now - 10, "recipient": "ann@example.com",
                           "message": {"headers": {"message-id": "m-1@mg"}}}
        }))
        .unwrap()
    }

    async fn answer(app: &WebhooksApp<MemorySink, MemoryProviders>, req: Request) -> (u16, Value) {
        let r = handle(app, req).await.unwrap();
        let status = r.status().as_u16();
        let body = serde_json::from_slice(r.body().as_ref()).unwrap_or(Value::Null);
        (status, body)
    }

    #[tokio::test]
    async fn refusals_record_nothing_and_say_why() {
        let app = app(MemorySink::default());
        let now = chrono::Utc::now().timestamp();
        let (status, body) = answer(&app, post("sendgrid", "acme", &[], b"[]")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("unknown_tenant"))
        );
        let (status, body) = answer(&app, post("mailchimp", "acme", &[], b"[]")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("unknown_provider"))
        );
        let (status, _) = answer(&app, post("ses", "acme", &[], b"[]")).await;
        assert_eq!(status, 404, "SES has no webhook");
        let (status, _) = answer(&app, post("mailgun", "acme#x", &[], b"{}")).await;
        assert_eq!(status, 403);
        let (status, _) = answer(
            &app,
            post("mailgun", "acme", &[], &mailgun("tok-1", now)[..]),
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) =
            answer(&app, post("mailgun", "acme", &[], &mailgun("tok-1", now))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("replayed"))
        );
        let (status, _) = answer(
            &app,
            post(
                "postmark",
                "acme",
                &[("x-beacon-webhook-token", "nope")],
                b"{}",
            ),
        )
        .await;
        assert_eq!(status, 401);
        let (status, body) = answer(&app, post("mailgun", "acme", &[], b"not json")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("malformed"))
        );
        assert_eq!(
            app.sink.events().len(),
            1,
            "only the verified request was recorded"
        );
    }

    #[tokio::test]
    async fn a_refused_write_is_503_and_the_retry_with_the_same_token_goes_through() {
        let now = chrono::Utc::now().timestamp();
        let app = app(MemorySink::refusing());
        let body = mailgun("tok-2", now);
        let (status, body_json) = answer(&app, post("mailgun", "acme", &[], &body)).await;
        assert_eq!(
            (status, body_json["error"]["code"].as_str()),
            (503, Some("not_stored"))
        );
        app.sink
            .refuse
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let (status, answer_body) = answer(&app, post("mailgun", "acme", &[], &body)).await;
        assert_eq!(status, 200, "{answer_body}");
        assert_eq!(answer_body["recorded"], 1);
    }

    #[tokio::test]
    async fn skipped_events_are_listed_with_their_reasons() {
        let app = app(MemorySink::default());
        let body = json!({"RecordType": "SubscriptionChange", "MessageID": "pm-1", "Recipient": "ann@example.com",
                          "ChangedAt": chrono::Utc::now().to_rfc3339(), "SuppressSending": false});
        let (status, answer_body) = answer(
            &app,
            post(
                "postmark",
                "acme",
                &[("x-beacon-webhook-token", "tok")],
                &serde_json::to_vec(&body).unwrap(),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            (
                answer_body["recorded"].as_u64(),
                answer_body["skipped"].as_u64()
            ),
            (Some(0), Some(1))
        );
        assert!(answer_body["skipped_events"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("reactivates"));
    }
}
