//! Running reports: the schedule walks every definition, works out the period that
//! has just closed in its zone, and sends each report for each period at most once.
//!
//! Once per period: a run is *claimed* with one conditional write (never tried,
//! failed, or abandoned while rendering). The claim holder renders, writes the files,
//! marks the run `sending`, calls SES, and marks it `sent`. A second trigger, a retry
//! of the function or a concurrent instance finds the run taken and sends nothing. A
//! failure before SES accepted the message marks the run `failed` and the next trigger
//! retries it; a crash *during* the SES call leaves `sending`, which is never resent
//! automatically (whether the mail left is unknown; `beacon report run` resends on
//! purpose). One report's failure is recorded and the others go on.

use super::data;
use super::definition::ReportDefinition;
use super::mail::{self, ReportFile, CHART_CID};
use super::model::{Format, ReportData};
use super::period::Period;
use super::render;
use super::store::{Claim, Definitions, ReportFiles, RunDetail, RunStatus, Runs};
use beacon_domain::mail::Mailer;
use beacon_domain::rollup::reader::RollupReader;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Settings of report delivery.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The verified SES identity reports come from.
    pub from: String,
    /// Files larger than this are linked rather than attached.
    pub attachment_limit: usize,
    /// How long a download link works.
    pub link_expiry: std::time::Duration,
    /// How long a claim protects a run that is rendering.
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            from: "reports@beacon.example".into(),
            // SES accepts messages up to 40 MB, but many inboxes refuse above 10 MB once
            // base64 has added its third.
            attachment_limit: 5 * 1024 * 1024,
            link_expiry: std::time::Duration::from_secs(7 * 24 * 3600),
            lease: Duration::minutes(15),
        }
    }
}

/// What a report needs to be read, stored and sent.
pub struct Reporter<'a, R, F, M> {
    pub reader: &'a R,
    pub files: &'a F,
    pub mailer: &'a M,
    pub settings: &'a Settings,
}

/// A report made and ready to send.
pub struct Prepared {
    pub data: ReportData,
    /// S3 keys of the files written.
    pub keys: Vec<String>,
    pub raw: Vec<u8>,
    pub recipients: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reading the rollups: {0}")]
    Read(#[from] beacon_domain::rollup::reader::ReadError),
    #[error("rendering: {0}")]
    Render(#[from] render::RenderError),
    #[error("{0}")]
    Store(#[from] super::store::ReportStoreError),
    #[error("building the message: {0}")]
    Mail(#[from] std::io::Error),
    #[error("{0}")]
    Send(#[from] beacon_domain::mail::MailError),
}

/// The S3 key of a report file: under the tenant's prefix, one folder per report and
/// period, so a lifecycle rule and a per-tenant policy can both address it.
pub fn file_key(def: &ReportDefinition, period: &str, format: Format) -> String {
    format!(
        "tenants/{}/reports/{}/{period}/{}-{period}.{}",
        def.tenant,
        def.id,
        def.id,
        format.extension()
    )
}

impl<R: RollupReader, F: ReportFiles, M: Mailer> Reporter<'_, R, F, M> {
    /// Reads, renders and stores one report; builds its message.
    pub async fn prepare(
        &self,
        def: &ReportDefinition,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<Prepared, RunError> {
        let data = data::build(self.reader, def, period, now).await?;
        let key = data.period.key.clone();
        let chart = render::chart_png(&data)?;
        let mut files = Vec::new();
        let mut keys = Vec::new();
        for format in &def.formats {
            let body = match (format, &chart) {
                // The stored page carries its chart inline, so it opens anywhere on its own.
                (Format::Html, Some(png)) => {
                    use base64::Engine as _;
                    let uri = format!(
                        "data:image/png;base64,{}",
                        base64::engine::general_purpose::STANDARD.encode(png)
                    );
                    render::html(&data, Some(&uri)).into_bytes()
                }
                _ => render::render(&data, *format)?,
            };
            let k = file_key(def, &key, *format);
            self.files
                .put(&k, body.clone(), format.content_type())
                .await?;
            let link = if body.len() > self.settings.attachment_limit {
                Some(self.files.link(&k, self.settings.link_expiry).await?)
            } else {
                None
            };
            keys.push(k);
            // The HTML is the body; attaching it again would only repeat it.
            if *format != Format::Html {
                files.push(ReportFile {
                    file_name: format!("{}-{key}.{}", def.id, format.extension()),
                    content_type: format.content_type(),
                    body,
                    link,
                });
            }
        }
        let html = render::html(
            &data,
            chart
                .as_ref()
                .map(|_| format!("cid:{CHART_CID}"))
                .as_deref(),
        );
        let html = insert_after_body(&html, &mail::links_html(&files));
        let text = format!("{}{}", mail::links_text(&files), render::text(&data));
        let subject = format!("{}: {}", def.name, data.period.label);
        let raw = mail::build(&mail::Message {
            from: &self.settings.from,
            to: &def.recipients,
            subject: &subject,
            html: &html,
            text: &text,
            chart_png: chart.as_deref(),
            files: &files,
        })?;
        Ok(Prepared {
            data,
            keys,
            raw,
            recipients: def.recipients.clone(),
        })
    }

    /// Renders and sends at once, outside the schedule and its once-per-period record
    /// (on demand).
    pub async fn send_now(
        &self,
        def: &ReportDefinition,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<(Prepared, String), RunError> {
        let prepared = self.prepare(def, period, now).await?;
        let id = self
            .mailer
            .send(
                &self.settings.from,
                &prepared.recipients,
                prepared.raw.clone(),
            )
            .await?;
        Ok((prepared, id))
    }

    /// The run of `def` for `period`, at most once.
    pub async fn run_once<S: Runs>(
        &self,
        runs: &S,
        def: &ReportDefinition,
        period: Period,
        now: DateTime<Utc>,
    ) -> Outcome {
        let key = period.key();
        let key = key.as_str();
        let base = |result| Outcome {
            tenant: def.tenant.clone(),
            report: def.id.clone(),
            period: key.to_string(),
            result,
        };
        let attempt = match runs
            .claim(&def.tenant, &def.id, key, now, self.settings.lease)
            .await
        {
            Ok(Claim::Claimed(n)) => n,
            Ok(Claim::Taken(record)) => {
                return base(RunResult::Skipped {
                    reason: format!("already {}", record.status.name()),
                })
            }
            Err(e) => {
                return base(RunResult::Failed {
                    error: e.to_string(),
                })
            }
        };
        let fail = |error: String| async move {
            // Recording the failure is what makes the next trigger retry; if even that
            // fails, the lease runs out and the run is taken over then.
            let _ = runs
                .update(
                    &def.tenant,
                    &def.id,
                    key,
                    RunStatus::Failed,
                    RunDetail {
                        error: Some(error.clone()),
                        ..Default::default()
                    },
                    now,
                )
                .await;
            error
        };
        let prepared = match self.prepare(def, period, now).await {
            Ok(p) => p,
            Err(e) => {
                let error = fail(e.to_string()).await;
                return base(RunResult::Failed { error });
            }
        };
        if let Err(e) = runs
            .update(
                &def.tenant,
                &def.id,
                key,
                RunStatus::Sending,
                RunDetail::default(),
                now,
            )
            .await
        {
            let error = fail(e.to_string()).await;
            return base(RunResult::Failed { error });
        }
        match self
            .mailer
            .send(&self.settings.from, &prepared.recipients, prepared.raw)
            .await
        {
            Ok(message_id) => {
                let detail = RunDetail {
                    files: prepared.keys.clone(),
                    message_id: Some(message_id.clone()),
                    error: None,
                };
                // SES has the message: if this record fails, the run stays `sending`
                // and is not sent again, which is the safe side.
                let _ = runs
                    .update(&def.tenant, &def.id, key, RunStatus::Sent, detail, now)
                    .await;
                base(RunResult::Sent {
                    attempt,
                    message_id,
                    files: prepared.keys,
                })
            }
            Err(e) => {
                // SES refused it: nothing went out, so trying again later is safe.
                let error = fail(e.to_string()).await;
                base(RunResult::Failed { error })
            }
        }
    }

    /// Every definition's just-closed period, each at most once; failures are
    /// recorded and do not stop the others.
    pub async fn run_due<D: Definitions, S: Runs>(
        &self,
        defs: &D,
        runs: &S,
        now: DateTime<Utc>,
    ) -> Result<Vec<Outcome>, super::store::ReportStoreError> {
        let mut out = Vec::new();
        for def in defs.all().await? {
            let period = Period::just_closed(def.cadence, def.tz(), now);
            // A report starts with the first period that ends after it was defined:
            // creating a monthly report does not mail last month's at once.
            if period.end() <= def.created_at {
                out.push(Outcome {
                    tenant: def.tenant.clone(),
                    report: def.id.clone(),
                    period: period.key(),
                    result: RunResult::Skipped {
                        reason: "first period since the report was created has not closed".into(),
                    },
                });
                continue;
            }
            out.push(self.run_once(runs, &def, period, now).await);
        }
        Ok(out)
    }
}

/// Puts `block` right after the opening `<body ...>` tag (or first, without one).
fn insert_after_body(html: &str, block: &str) -> String {
    if block.is_empty() {
        return html.to_string();
    }
    match html
        .find("<body")
        .and_then(|i| html[i..].find('>').map(|j| i + j + 1))
    {
        Some(at) => format!("{}{block}{}", &html[..at], &html[at..]),
        None => format!("{block}{html}"),
    }
}

/// What happened to one report in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub tenant: String,
    pub report: String,
    pub period: String,
    #[serde(flatten)]
    pub result: RunResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunResult {
    Sent {
        attempt: u32,
        message_id: String,
        files: Vec<String>,
    },
    Skipped {
        reason: String,
    },
    Failed {
        error: String,
    },
}
