//! The report function in-process: the schedule sends each report once per period
//! (a second trigger, a retry and a concurrent run send nothing), a failure is
//! recorded and retried on the next trigger, one tenant's failure leaves the others
//! alone, and on-demand requests render at once. The message is read back with a
//! MIME parser.

use beacon_domain::rollup::Aggregate;
use beacon_domain::testkit::memory::MemoryMailer;
use beacon_domain::testkit::rollups::MemoryRollupReader;
use beacon_domain::{Event, EventType};
use beacon_report::definition::DefinitionInput;
use beacon_report::run::Settings;
use beacon_report::store::{
    Definitions, MemoryReportFiles, MemoryReports, ReportFiles, ReportStoreError, RunStatus, Runs,
};
use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use mail_parser::{MessageParser, MimeHeaders};
use report_function::{handle, ReportApp};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// Files that fail for one tenant's prefix (its bucket policy is broken, say).
#[derive(Default)]
struct Files {
    inner: MemoryReportFiles,
    broken_tenant: Option<String>,
}

impl ReportFiles for Files {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), ReportStoreError> {
        if let Some(t) = &self.broken_tenant {
            if key.starts_with(&format!("tenants/{t}/")) {
                return Err(ReportStoreError::Unavailable(format!(
                    "access denied to {key}"
                )));
            }
        }
        self.inner.put(key, body, content_type).await
    }

    async fn link(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String, ReportStoreError> {
        self.inner.link(key, expires_in).await
    }
}

type App = ReportApp<MemoryRollupReader, MemoryReports, Files, MemoryMailer>;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn event(tenant: &str, kind: EventType, t: &str, n: usize) -> Event {
    let mut e = Event::new(
        beacon_domain::event::new_event_id(),
        tenant.into(),
        kind,
        at(t),
        at(t),
    );
    e.campaign_id = Some("spring".into());
    e.recipient_id = Some(format!("r{n}"));
    e.message_id = Some(format!("m{n}"));
    e.channel = Some("email".into());
    e.provider = Some("ses".into());
    e
}

fn app(broken_tenant: Option<&str>) -> App {
    let reader = MemoryRollupReader::default();
    let mut agg = Aggregate::default();
    for tenant in ["acme", "globex"] {
        // Berlin's 22 November: 21 Nov 23:00 UTC to 22 Nov 23:00 UTC.
        for n in 0..10 {
            agg.add(&event(tenant, EventType::Sent, "2026-11-22T08:00:00Z", n));
        }
        for n in 0..8 {
            agg.add(&event(
                tenant,
                EventType::Delivered,
                "2026-11-22T08:01:00Z",
                n,
            ));
        }
        let mut click = event(tenant, EventType::Clicked, "2026-11-22T09:00:00Z", 1);
        click.link_url = Some("https://shop.example/spring?a=1&b=<2>".into());
        agg.add(&click);
        // The day before, for the deltas.
        for n in 0..5 {
            agg.add(&event(tenant, EventType::Sent, "2026-11-21T08:00:00Z", n));
        }
    }
    reader.add_aggregate(&agg, "2026-11-22T09:00:00Z");
    App {
        reader,
        reports: MemoryReports::default(),
        files: Files {
            inner: MemoryReportFiles::default(),
            broken_tenant: broken_tenant.map(str::to_string),
        },
        mailer: MemoryMailer::default(),
        settings: Settings {
            from: "reports@beacon.example".into(),
            ..Settings::default()
        },
    }
}

async fn define(app: &App, tenant: &str) {
    let def = DefinitionInput {
        id: "daily".into(),
        name: "Daily numbers".into(),
        cadence: "daily".into(),
        timezone: "Europe/Berlin".into(),
        formats: vec!["html".into(), "csv".into(), "xlsx".into(), "pdf".into()],
        recipients: vec![format!("ops@{tenant}.example")],
        ..Default::default()
    }
    .validate(tenant, at("2026-11-01T00:00:00Z"))
    .unwrap();
    app.reports.create(&def).await.unwrap();
}

fn scheduled(time: &str) -> LambdaEvent<Value> {
    LambdaEvent::new(
        json!({
            "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": time, "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/beacon-report"], "detail": {}
        }),
        Context::default(),
    )
}

#[tokio::test]
async fn the_schedule_sends_each_period_once() {
    let app = app(None);
    define(&app, "acme").await;
    // 06:05 in Berlin on the 23rd: the 22nd has closed there.
    let out = handle(&app, scheduled("2026-11-23T05:05:00Z"))
        .await
        .unwrap();
    assert_eq!(out["sent"], 1, "{out}");
    assert_eq!(out["reports"][0]["period"], "2026-11-22");
    // The next hour, a duplicate delivery of the same schedule and a retry: nothing.
    for time in [
        "2026-11-23T06:05:00Z",
        "2026-11-23T05:05:00Z",
        "2026-11-23T22:05:00Z",
    ] {
        let again = handle(&app, scheduled(time)).await.unwrap();
        assert_eq!(again["sent"], 0, "{again}");
        assert_eq!(again["reports"][0]["reason"], "already sent");
    }
    assert_eq!(app.mailer.sent.lock().unwrap().len(), 1);
    // The next day's period is its own run.
    let next = handle(&app, scheduled("2026-11-24T05:05:00Z"))
        .await
        .unwrap();
    assert_eq!(next["sent"], 1);
    assert_eq!(next["reports"][0]["period"], "2026-11-23");
    let runs = app.reports.history("acme", "daily").await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs
        .iter()
        .all(|r| r.status == RunStatus::Sent && r.attempts == 1));
    assert_eq!(runs[0].files.len(), 4, "{:?}", runs[0].files);
    assert!(runs[0].files[0].starts_with("tenants/acme/reports/daily/2026-11-22/"));
}

#[tokio::test]
async fn a_new_report_waits_for_its_first_full_period() {
    let app = app(None);
    let def = DefinitionInput {
        id: "monthly".into(),
        name: "Monthly".into(),
        cadence: "monthly".into(),
        recipients: vec!["ops@acme.example".into()],
        ..Default::default()
    }
    .validate("acme", at("2026-11-20T00:00:00Z"))
    .unwrap();
    app.reports.create(&def).await.unwrap();
    let out = handle(&app, scheduled("2026-11-23T05:05:00Z"))
        .await
        .unwrap();
    assert_eq!(out["sent"], 0);
    assert_eq!(out["skipped"], 1);
    let december = handle(&app, scheduled("2026-12-01T00:05:00Z"))
        .await
        .unwrap();
    assert_eq!(december["sent"], 1);
    assert_eq!(december["reports"][0]["period"], "2026-11");
}

#[tokio::test]
async fn a_failure_is_recorded_and_retried_on_the_next_trigger() {
    let app = app(None);
    define(&app, "acme").await;
    app.mailer.failing.store(true, Ordering::Relaxed);
    let out = handle(&app, scheduled("2026-11-23T05:05:00Z"))
        .await
        .unwrap();
    assert_eq!(out["failed"], 1);
    assert!(out["reports"][0]["error"]
        .as_str()
        .unwrap()
        .contains("failing on purpose"));
    let runs = app.reports.history("acme", "daily").await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed);
    app.mailer.failing.store(false, Ordering::Relaxed);
    let retry = handle(&app, scheduled("2026-11-23T06:05:00Z"))
        .await
        .unwrap();
    assert_eq!(retry["sent"], 1, "{retry}");
    assert_eq!(retry["reports"][0]["attempt"], 2);
    assert_eq!(app.mailer.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_run_left_sending_is_never_resent_but_one_left_rendering_is_taken_over() {
    let app = app(None);
    define(&app, "acme").await;
    let now = at("2026-11-23T05:05:00Z");
    // A crash during the SES call: the run says `sending`.
    app.reports
        .claim(
            "acme",
            "daily",
            "2026-11-22",
            now,
            chrono::Duration::minutes(15),
        )
        .await
        .unwrap();
    app.reports
        .update(
            "acme",
            "daily",
            "2026-11-22",
            RunStatus::Sending,
            Default::default(),
            now,
        )
        .await
        .unwrap();
    let later = handle(&app, scheduled("2026-11-23T09:05:00Z"))
        .await
        .unwrap();
    assert_eq!(later["sent"], 0);
    assert_eq!(later["reports"][0]["reason"], "already sending");
    // A crash while rendering: taken over once the lease has run out, not before.
    let app = crate::app(None);
    define(&app, "acme").await;
    app.reports
        .claim(
            "acme",
            "daily",
            "2026-11-22",
            now,
            chrono::Duration::minutes(15),
        )
        .await
        .unwrap();
    let during = handle(&app, scheduled("2026-11-23T05:10:00Z"))
        .await
        .unwrap();
    assert_eq!(during["sent"], 0);
    let after = handle(&app, scheduled("2026-11-23T06:05:00Z"))
        .await
        .unwrap();
    assert_eq!(after["sent"], 1);
}

#[tokio::test]
async fn one_tenants_failure_does_not_block_the_others() {
    let app = app(Some("acme"));
    define(&app, "acme").await;
    define(&app, "globex").await;
    let out = handle(&app, scheduled("2026-11-23T05:05:00Z"))
        .await
        .unwrap();
    assert_eq!(
        (out["sent"].as_u64(), out["failed"].as_u64()),
        (Some(1), Some(1)),
        "{out}"
    );
    let sent = app.mailer.sent.lock().unwrap();
    assert_eq!(sent[0].1, vec!["ops@globex.example".to_string()]);
    // Nothing of acme's was mailed, and nothing of one tenant is under another's prefix.
    let files = app.files.inner.files.lock().unwrap();
    assert!(files.keys().all(|k| k.starts_with("tenants/globex/")));
}

#[tokio::test]
async fn the_message_has_the_summary_the_chart_and_the_files() {
    let app = app(None);
    define(&app, "acme").await;
    handle(&app, scheduled("2026-11-23T05:05:00Z"))
        .await
        .unwrap();
    let sent = app.mailer.sent.lock().unwrap();
    let (from, to, raw) = &sent[0];
    assert_eq!(from, "reports@beacon.example");
    assert_eq!(to, &vec!["ops@acme.example".to_string()]);
    let msg = MessageParser::default().parse(raw).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Daily numbers: Sunday 22 November 2026")
    );
    let html = msg.body_html(0).unwrap();
    assert!(html.contains("cid:chart@beacon"), "the chart is inline");
    assert!(!html.contains("<script"), "no scripts in mail");
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("Sent"), "{text}");
    let names: Vec<&str> = msg
        .attachments()
        .filter_map(|a| a.attachment_name())
        .collect();
    assert_eq!(
        names,
        vec![
            "chart.png",
            "daily-2026-11-22.csv",
            "daily-2026-11-22.xlsx",
            "daily-2026-11-22.pdf"
        ]
    );
    let chart = msg.attachments().next().unwrap();
    assert_eq!(chart.content_id(), Some("chart@beacon"));
    assert!(chart.contents().starts_with(b"\x89PNG"));
    let csv = msg
        .attachments()
        .find(|a| a.attachment_name() == Some("daily-2026-11-22.csv"))
        .unwrap();
    let csv = String::from_utf8(csv.contents().to_vec()).unwrap();
    assert!(csv.contains("sent"), "{csv}");
}

#[tokio::test]
async fn files_over_the_limit_are_linked_not_attached() {
    let mut app = app(None);
    app.settings.attachment_limit = 1000;
    define(&app, "acme").await;
    handle(&app, scheduled("2026-11-23T05:05:00Z"))
        .await
        .unwrap();
    let sent = app.mailer.sent.lock().unwrap();
    let msg = MessageParser::default().parse(&sent[0].2).unwrap();
    let names: Vec<&str> = msg
        .attachments()
        .filter_map(|a| a.attachment_name())
        .collect();
    assert!(!names.contains(&"daily-2026-11-22.pdf"), "{names:?}");
    let html = msg.body_html(0).unwrap();
    assert!(html.contains("memory://tenants/acme/reports/daily/2026-11-22/daily-2026-11-22.pdf"));
}

#[tokio::test]
async fn on_demand_renders_a_stored_or_given_definition_at_once() {
    let app = app(None);
    define(&app, "acme").await;
    let stored = LambdaEvent::new(
        json!({"tenant": "acme", "report": "daily", "period": "2026-11-22"}),
        Context::default(),
    );
    let out = handle(&app, stored).await.unwrap();
    assert_eq!(out["status"], "sent");
    assert_eq!(out["period"], "2026-11-22");
    let given = LambdaEvent::new(
        json!({"tenant": "globex", "period": "2026-W47", "definition": {
            "id": "adhoc", "name": "Ad hoc", "cadence": "weekly",
            "recipients": ["cfo@globex.example"], "formats": ["json"]}}),
        Context::default(),
    );
    let out = handle(&app, given).await.unwrap();
    assert_eq!(
        out["files"][0],
        "tenants/globex/reports/adhoc/2026-W47/adhoc-2026-W47.json"
    );
    assert_eq!(app.mailer.sent.lock().unwrap().len(), 2);
    // Bad requests say what is wrong.
    let bad = LambdaEvent::new(
        json!({"tenant": "acme", "definition": {"id": "x", "name": "x", "cadence": "hourly",
            "recipients": ["nobody"]}}),
        Context::default(),
    );
    let e = handle(&app, bad).await.unwrap_err().to_string();
    assert!(
        e.contains("unknown cadence `hourly`") && e.contains("`nobody` is not an email address"),
        "{e}"
    );
    let missing = LambdaEvent::new(
        json!({"tenant": "acme", "report": "nope"}),
        Context::default(),
    );
    let e = handle(&app, missing).await.unwrap_err().to_string();
    assert_eq!(e, "tenant `acme` has no report `nope`");
    let period = LambdaEvent::new(
        json!({"tenant": "acme", "report": "daily", "period": "2026-W47"}),
        Context::default(),
    );
    let e = handle(&app, period).await.unwrap_err().to_string();
    assert!(e.contains("is not a daily period key"), "{e}");
}
