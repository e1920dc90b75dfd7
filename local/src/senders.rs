//! The demo's senders: what Amazon SES, SendGrid and Twilio would send Beacon about the
//! campaign's messages.
//!
//! - SES: one EventBridge event per SES event (Send, Delivery, Bounce, Rendering
//!   Failure, Complaint), shaped as the default bus delivers them from a configuration
//!   set with Beacon's tags, given to the ingest function exactly as the template's
//!   rule would invoke it.
//! - SendGrid and Twilio: a second, small campaign whose outcomes arrive as webhooks
//!   over HTTP through the local gateway, signed as those providers sign them
//!   (SendGrid's ECDSA P-256 over timestamp and body; Twilio's HMAC-SHA1 over the URL
//!   and the sorted form), with credentials stored by the operator as
//!   `beacon provider add` would.

use crate::demo::{Outcome, RecipientPlan, TENANT};
use crate::stack::Stack;
use anyhow::{bail, Context as _, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use beacon_aws::dynamo::providers::DynamoProviders;
use beacon_domain::config::Env;
use beacon_domain::ingest::credentials::{ProviderStore, StoredCredential};
use beacon_domain::ingest::Provider;
use hmac::{Hmac, Mac};
use lambda_runtime::{Context, LambdaEvent};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::EncodePublicKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The address a recipient's mail goes to. It reaches Beacon inside the providers'
/// events and must never come out of it (the demo searches the stream for it).
pub fn address(recipient_id: &str) -> String {
    format!("{recipient_id}@customers.example.net")
}

pub const ADDRESS_DOMAIN: &str = "@customers.example.net";

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// SES's `mail` object of one message, with Beacon's tags.
fn mail(r: &RecipientPlan, sent_at: chrono::DateTime<chrono::Utc>) -> Value {
    let to = address(&r.recipient.recipient_id);
    json!({
        "timestamp": rfc3339(sent_at),
        "source": "Spring Shop <news@shop.example.com>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/shop.example.com",
        "sendingAccountId": "123456789012",
        "messageId": r.recipient.message_id,
        "destination": [to],
        "headersTruncated": false,
        "headers": [
            {"name": "From", "value": "Spring Shop <news@shop.example.com>"},
            {"name": "To", "value": to},
            {"name": "Subject", "value": "Spring sale"}
        ],
        "commonHeaders": {"from": ["Spring Shop <news@shop.example.com>"], "to": [to], "subject": "Spring sale"},
        "tags": {
            "ses:configuration-set": ["beacon-demo"],
            "ses:from-domain": ["shop.example.com"],
            "beacon-tenant": [TENANT],
            "beacon-campaign": [r.recipient.campaign_id],
            "beacon-recipient": [r.recipient.recipient_id]
        }
    })
}

fn eventbridge(detail_type: &str, detail: Value, n: usize) -> Value {
    json!({
        "version": "0",
        "id": format!("5c6f0f5e-0000-4000-8000-{n:012}"),
        "detail-type": detail_type,
        "source": "aws.ses",
        "account": "123456789012",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": ["arn:aws:ses:us-east-1:123456789012:configuration-set/beacon-demo"],
        "detail": detail,
    })
}

/// Every SES event of the campaign: a send per recipient, then its outcome, then the
/// complaints. Deliveries are stamped `delivered_at`.
pub fn ses_events(
    plan: &[RecipientPlan],
    sent_at: chrono::DateTime<chrono::Utc>,
    delivered_at: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    let mut out = Vec::new();
    for r in plan {
        let m = mail(r, sent_at);
        let to = address(&r.recipient.recipient_id);
        out.push(eventbridge(
            "Email Sent",
            json!({"eventType": "Send", "mail": m, "send": {}}),
            out.len(),
        ));
        let latency = 800 + (r.recipient.recipient_id.len() * 37) % 4000;
        let outcome = match r.outcome {
            Outcome::Delivered => eventbridge(
                "Email Delivered",
                json!({"eventType": "Delivery", "mail": m, "delivery": {
                    "timestamp": rfc3339(delivered_at), "processingTimeMillis": latency,
                    "recipients": [to], "smtpResponse": "250 2.0.0 OK", "reportingMTA": "a8-1.smtp-out.amazonses.com"}}),
                out.len(),
            ),
            Outcome::HardBounce | Outcome::SoftBounce => {
                let hard = r.outcome == Outcome::HardBounce;
                eventbridge(
                    "Email Bounced",
                    json!({"eventType": "Bounce", "mail": m, "bounce": {
                        "bounceType": if hard { "Permanent" } else { "Transient" },
                        "bounceSubType": if hard { "General" } else { "MailboxFull" },
                        "bouncedRecipients": [{"emailAddress": to, "action": "failed",
                            "status": if hard { "5.1.1" } else { "4.2.2" },
                            "diagnosticCode": if hard { "smtp; 550 5.1.1 user unknown" } else { "smtp; 452 4.2.2 mailbox full" }}],
                        "timestamp": rfc3339(delivered_at),
                        "feedbackId": format!("0100-{}-bounce", r.recipient.message_id),
                        "reportingMTA": "dsn; a8-1.smtp-out.amazonses.com"}}),
                    out.len(),
                )
            }
            Outcome::Failed => eventbridge(
                "Email Rendering Failed",
                json!({"eventType": "Rendering Failure", "mail": m, "failure": {
                    "templateName": "spring-sale", "errorMessage": "Attribute 'first_name' is not present in the rendering data."}}),
                out.len(),
            ),
        };
        out.push(outcome);
    }
    for r in plan.iter().filter(|r| r.complains) {
        let m = mail(r, sent_at);
        out.push(eventbridge(
            "Email Complaint Received",
            json!({"eventType": "Complaint", "mail": m, "complaint": {
                "complainedRecipients": [{"emailAddress": address(&r.recipient.recipient_id)}],
                "timestamp": rfc3339(chrono::Utc::now()),
                "feedbackId": format!("0100-{}-complaint", r.recipient.message_id),
                "complaintFeedbackType": "abuse"}}),
            out.len(),
        ));
    }
    out
}

/// Invokes the ingest function with every event, as the EventBridge rule would (one
/// invocation per event). Returns the invocations made.
pub async fn deliver_ses_events(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    events: Vec<Value>,
) -> Result<u64> {
    let (_, function) = stack
        .function("ingest-ses")
        .context("ingest-ses function in the template")?;
    let app =
        ingest_ses_function::IngestSesApp::from_env(&Env::from_map(function.env.clone()), aws)
            .await
            .context("initializing ingest-ses")?;
    let mut invocations = 0;
    for event in events {
        let done = ingest_ses_function::handle(&app, LambdaEvent::new(event, Context::default()))
            .await
            .map_err(|e| anyhow::anyhow!("ingest-ses failed: {e}"))?;
        if done.skipped > 0 {
            bail!("ingest-ses skipped an event of the demo: {done:?}");
        }
        invocations += 1;
    }
    Ok(invocations)
}

/// The second campaign: its outcomes per type, as the stats API must report them.
pub struct WebhookCampaign {
    pub campaign: String,
    pub truth: BTreeMap<String, u64>,
    pub requests: BTreeMap<String, u64>,
}

/// Sends the second campaign's outcomes as SendGrid (email) and Twilio (SMS) webhooks
/// through the gateway, signed with credentials stored for the demo tenant.
pub async fn webhook_campaign(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    http: &reqwest::Client,
    gateway_url: &str,
    seed: u64,
) -> Result<WebhookCampaign> {
    let (_, function) = stack
        .function("ingest-webhooks")
        .context("ingest-webhooks function in the template")?;
    let env = Env::from_map(function.env.clone());
    let keys = beacon_aws::config::ingest_keys(&env, aws).await?;
    let table = env.required("BEACON_PROVIDERS_TABLE")?;
    let store = DynamoProviders::new(aws_sdk_dynamodb::Client::new(aws), table);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5e4d);

    // The operator stores the tenant's credentials (`beacon provider add`).
    let signing = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let public = signing
        .verifying_key()
        .to_public_key_der()
        .context("encoding the SendGrid verification key")?;
    let public_b64 = STANDARD.encode(public.as_bytes());
    let twilio_token = hex::encode(rng.random::<[u8; 16]>());
    let now = chrono::Utc::now().to_rfc3339();
    for (provider, secret) in [
        (Provider::SendGrid, &public_b64),
        (Provider::Twilio, &twilio_token),
    ] {
        store
            .put_credential(&StoredCredential::new(
                &keys, TENANT, provider, secret, &now,
            ))
            .await?;
    }

    let campaign = format!("webhooks-{seed}");
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    let mut requests: BTreeMap<String, u64> = BTreeMap::new();
    let at = chrono::Utc::now().timestamp() - 300;

    // SendGrid: 40 emails, processed then delivered or bounced, in two batches.
    let mut batch = Vec::new();
    for i in 0..40 {
        let to = address(&format!("w{i:03}"));
        let message = format!("sg-{campaign}-{i:03}");
        let common = json!({"email": to, "timestamp": at, "sg_message_id": format!("{message}.filter0001"),
            "smtp-id": format!("<{message}@sendgrid.example>"), "beacon-campaign": campaign});
        let with = |event: &str, extra: Value, n: usize| {
            let mut e = common.as_object().cloned().unwrap_or_default();
            e.insert("event".into(), json!(event));
            e.insert("sg_event_id".into(), json!(format!("{message}-{n}")));
            if let Value::Object(x) = extra {
                e.extend(x);
            }
            Value::Object(e)
        };
        batch.push(with("processed", json!({}), 0));
        *truth.entry("sent".into()).or_default() += 1;
        if rng.random_bool(0.1) {
            batch.push(with("bounce", json!({"type": "bounce", "reason": "550 5.1.1 The email account does not exist", "status": "5.1.1"}), 1));
            *truth.entry("bounced_hard".into()).or_default() += 1;
        } else {
            batch.push(with("delivered", json!({"response": "250 OK"}), 1));
            *truth.entry("delivered".into()).or_default() += 1;
        }
    }
    for chunk in batch.chunks(batch.len() / 2 + 1) {
        let body = serde_json::to_vec(chunk)?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(&body);
        let signature: p256::ecdsa::Signature = signing.sign(&signed);
        let answer = http
            .post(format!("{gateway_url}/v1/webhooks/sendgrid/{TENANT}"))
            .header("content-type", "application/json")
            .header(
                "x-twilio-email-event-webhook-signature",
                STANDARD.encode(signature.to_der().as_bytes()),
            )
            .header("x-twilio-email-event-webhook-timestamp", &timestamp)
            .body(body)
            .send()
            .await?;
        check(answer, "SendGrid webhook").await?;
        *requests.entry("sendgrid".into()).or_default() += 1;
    }

    // Twilio: 20 text messages, each with a `sent` and then a `delivered` or
    // `undelivered` status callback.
    for i in 0..20 {
        let sid = format!("SM{:032x}", (seed as u128) << 64 | i as u128);
        let phone = format!("+1555010{i:04}");
        let query = format!("beacon-campaign={campaign}");
        let url = format!("{gateway_url}/v1/webhooks/twilio/{TENANT}?{query}");
        let last = if rng.random_bool(0.15) {
            "undelivered"
        } else {
            "delivered"
        };
        for status in ["sent", last] {
            let mut params = vec![
                (
                    "AccountSid".to_string(),
                    "AC00000000000000000000000000000000".to_string(),
                ),
                ("From".into(), "+15550009999".into()),
                ("MessageSid".into(), sid.clone()),
                ("MessageStatus".into(), status.into()),
                ("SmsSid".into(), sid.clone()),
                ("SmsStatus".into(), status.into()),
                ("To".into(), phone.clone()),
                ("ApiVersion".into(), "2010-04-01".into()),
            ];
            if status == "undelivered" {
                params.push(("ErrorCode".into(), "30003".into()));
            }
            params.sort();
            let mut data = url.clone();
            for (k, v) in &params {
                data.push_str(k);
                data.push_str(v);
            }
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(twilio_token.as_bytes())?;
            mac.update(data.as_bytes());
            let signature = STANDARD.encode(mac.finalize().into_bytes());
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish();
            let answer = http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(body)
                .send()
                .await?;
            check(answer, "Twilio status callback").await?;
            *requests.entry("twilio".into()).or_default() += 1;
        }
        *truth.entry("sent".into()).or_default() += 1;
        *truth
            .entry(
                if last == "delivered" {
                    "delivered"
                } else {
                    "failed"
                }
                .into(),
            )
            .or_default() += 1;
    }
    Ok(WebhookCampaign {
        campaign,
        truth,
        requests,
    })
}

async fn check(answer: reqwest::Response, what: &str) -> Result<()> {
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{what} answered {status}: {text}");
    }
    let body: Value = serde_json::from_str(&text).with_context(|| format!("{what}: {text}"))?;
    if body["skipped"] != 0 {
        bail!("{what} skipped events: {text}");
    }
    Ok(())
}
