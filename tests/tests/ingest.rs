//! Provider events against the emulator: SES through the ingest function (as the
//! EventBridge rule and the SNS subscription invoke it) and SendGrid through the
//! webhook route, each delivered twice, aggregated by the real consumers. Every
//! redelivery must count once, and no address may be found anywhere Beacon keeps data:
//! the stream, the rollups table, the lake.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use beacon_aws::dynamo::providers::DynamoProviders;
use beacon_domain::config::Env;
use beacon_domain::ingest::credentials::{ProviderStore, StoredCredential};
use beacon_domain::ingest::Provider;
use beacon_lake::store::S3Lake;
use beacon_lake::{read_parquet, LakeStore, STAGING_PREFIX};
use beacon_tests::{http, TestStack};
use lambda_runtime::{Context, LambdaEvent};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};

const ADDRESS: &str = "ann.example@customers.example.net";
const OTHER: &str = "bob.example@customers.example.net";

fn sample(name: &str) -> Value {
    let path = format!(
        "{}/../events/ingest-ses/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every time of the sample (2026-12-01) moved to a minute ago.
fn restamp(v: &mut Value, now: &str) {
    match v {
        Value::String(s) if s.starts_with("2026-12-01T") => *s = now.to_string(),
        Value::Array(items) => items.iter_mut().for_each(|i| restamp(i, now)),
        Value::Object(map) => map.values_mut().for_each(|i| restamp(i, now)),
        _ => {}
    }
}

/// A sample SES event of campaign `c` and message `message`, to `ADDRESS` (no
/// recipient tag: the address must be hashed), a minute ago.
fn ses_detail(kind: &str, c: &str, message: &str) -> Value {
    let eb = sample(kind);
    let text = serde_json::to_string(&eb)
        .unwrap()
        .replace("recipient@example.com", ADDRESS)
        .replace("spring-sale", c)
        .replace(
            "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
            message,
        );
    let mut eb: Value = serde_json::from_str(&text).unwrap();
    let now = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    restamp(&mut eb["detail"], &now);
    eb
}

fn sns(detail: &Value, message_id: &str) -> Value {
    let mut envelope = sample("sns-bounce");
    envelope["Records"][0]["Sns"]["Message"] = json!(detail.to_string());
    envelope["Records"][0]["Sns"]["MessageId"] = json!(message_id);
    envelope
}

#[tokio::test]
async fn redelivered_provider_events_count_once_and_no_address_is_kept() {
    let t = TestStack::start().await.unwrap();
    let campaign = "ingest-twice";
    let env = Env::from_map(t.stack.function("ingest-ses").unwrap().1.env.clone());
    let ses = ingest_ses_function::IngestSesApp::from_env(&env, &t.aws)
        .await
        .unwrap();
    let invoke = |payload: Value| {
        let ses = &ses;
        async move {
            ingest_ses_function::handle(ses, LambdaEvent::new(payload, Context::default()))
                .await
                .unwrap()
        }
    };

    // The tags name tenant `acme` (the stack's API key's tenant).
    let send = ses_detail("eventbridge-send", campaign, "ses-m-1");
    let delivery = ses_detail("eventbridge-delivery", campaign, "ses-m-1");
    let bounce = ses_detail("eventbridge-bounce", campaign, "ses-m-2");
    // EventBridge redelivers the same event (same id); SES may publish an event twice.
    for _ in 0..2 {
        assert_eq!(invoke(send.clone()).await.recorded, 1);
        assert_eq!(invoke(delivery.clone()).await.recorded, 1);
    }
    // The same SNS message twice, and the same SES event through SNS and EventBridge.
    let bounce_sns = sns(&bounce["detail"], "sns-message-1");
    assert_eq!(invoke(bounce_sns.clone()).await.recorded, 1);
    assert_eq!(invoke(bounce_sns).await.recorded, 1);
    assert_eq!(invoke(bounce).await.recorded, 1);

    // SendGrid: a signed batch of two recipients, posted twice.
    let signing = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let public = STANDARD.encode(
        signing
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes(),
    );
    let webhooks_env = &t.stack.function("ingest-webhooks").unwrap().1.env;
    let keys = beacon_aws::config::ingest_keys(&Env::from_map(webhooks_env.clone()), &t.aws)
        .await
        .unwrap();
    DynamoProviders::new(
        aws_sdk_dynamodb::Client::new(&t.aws),
        &webhooks_env["BEACON_PROVIDERS_TABLE"],
    )
    .put_credential(&StoredCredential::new(
        &keys,
        "acme",
        Provider::SendGrid,
        &public,
        "now",
    ))
    .await
    .unwrap();
    let at = chrono::Utc::now().timestamp() - 60;
    let batch = json!([
        {"email": ADDRESS, "timestamp": at, "event": "processed", "sg_event_id": "sg-e-1", "sg_message_id": "sg-m-3.filter", "beacon-campaign": campaign},
        {"email": OTHER, "timestamp": at, "event": "processed", "sg_event_id": "sg-e-2", "sg_message_id": "sg-m-4.filter", "beacon-campaign": campaign},
        {"email": OTHER, "timestamp": at, "event": "delivered", "sg_event_id": "sg-e-3", "sg_message_id": "sg-m-4.filter", "beacon-campaign": campaign}
    ]);
    let body = serde_json::to_vec(&batch).unwrap();
    for _ in 0..2 {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(&body);
        let signature: p256::ecdsa::Signature = signing.sign(&signed);
        let answer = http()
            .post(t.url("/v1/webhooks/sendgrid/acme"))
            .header("content-type", "application/json")
            .header(
                "x-twilio-email-event-webhook-signature",
                STANDARD.encode(signature.to_der().as_bytes()),
            )
            .header("x-twilio-email-event-webhook-timestamp", &timestamp)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(answer["recorded"], 3, "{answer}");
    }

    // The stream holds every delivery (4 + 3 + 6), the rollups count each event once.
    let events = t.stream_events().await.unwrap();
    assert_eq!(events.len(), 13);
    let mut consumers = beacon_local::consumers::build(&t.stack, &t.aws).unwrap();
    for c in consumers.iter_mut() {
        c.drain().await.unwrap();
    }
    let overview: Value = http()
        .get(t.url(&format!("/v1/campaigns/{campaign}")))
        .bearer_auth(&t.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counts = &overview["counts"];
    assert_eq!(
        (
            &counts["sent"],
            &counts["delivered"],
            &counts["bounced_hard"]
        ),
        (&json!(3), &json!(2), &json!(1)),
        "{overview}"
    );

    // No address anywhere: the stream's records, every item of the rollups table, the
    // lake's staged rows.
    for e in &events {
        let text = serde_json::to_string(e).unwrap();
        assert!(!text.contains("customers.example.net"), "{text}");
    }
    let dynamo = aws_sdk_dynamodb::Client::new(&t.aws);
    let rollups = &t.stack.function("aggregate").unwrap().1.env["BEACON_ROLLUPS_TABLE"];
    let mut start = None;
    let mut items = 0;
    loop {
        let page = dynamo
            .scan()
            .table_name(rollups)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            items += 1;
            let text = format!("{item:?}");
            assert!(!text.contains("customers.example.net"), "{text}");
            assert!(!text.contains("ann.example"), "{text}");
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert!(items > 10, "the rollups were written ({items} items)");
    let bucket = &t.stack.function("etl").unwrap().1.env["BEACON_LAKE_BUCKET"];
    let lake = S3Lake::from_config(&t.aws, bucket.clone());
    let mut rows = 0;
    for object in lake.list(STAGING_PREFIX).await.unwrap() {
        let (body, _) = lake.get(&object.key).await.unwrap().unwrap();
        for row in read_parquet(body).unwrap() {
            rows += 1;
            let text = serde_json::to_string(&row).unwrap();
            assert!(!text.contains("customers.example.net"), "{text}");
        }
    }
    assert_eq!(rows, 13, "the lake keeps every delivery until compaction");
    t.gateway.stop().await;
}
