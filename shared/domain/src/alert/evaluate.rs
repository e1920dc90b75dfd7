//! One evaluation of every tenant's alerts: read the tenant's hourly rollups once,
//! judge each rule ([`crate::alert::read`]), move its state on ([`crate::alert::step`])
//! and deliver the notices a change makes, by SES email and signed webhook.
//!
//! A state change is stored first, conditional on the version read, and only the
//! evaluation that stored it sends the notice: two overlapping evaluations never both
//! notify. A notice that cannot be delivered stays on the state and is tried again on
//! the next evaluation, to the destinations it has not reached yet.

use crate::alert::store::{
    state_key, AlertStore, AlertStoreError, AlertStoreExt, WebhookError, WebhookSender,
    BUDGET_STATE_KEY,
};
use crate::alert::{
    budget_step, effective, history_start, month_days, queue, read, sign, step, Destinations,
    Hours, Notice, NoticeKind, Pending, SIGNATURE_HEADER,
};
use crate::mail::{MailError, Mailer};
use crate::rollup::reader::{Fields, ReadError, RollupReader};
use crate::rollup::TENANTS_PARTITION;
use crate::rollup::{rollup_partition, Grain, Scope};
use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;

/// A stored state with notices still to send.
trait Unsent {
    fn unsent(&mut self) -> &mut Vec<Pending>;
}

impl Unsent for crate::alert::State {
    fn unsent(&mut self) -> &mut Vec<Pending> {
        &mut self.unsent
    }
}

impl Unsent for crate::alert::BudgetState {
    fn unsent(&mut self) -> &mut Vec<Pending> {
        &mut self.unsent
    }
}

/// Settings of the alerts function.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SES identity notices are sent from.
    pub from: String,
}

/// Why an evaluation, or one delivery of it, did not go through.
#[derive(Debug, Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] AlertStoreError),
    #[error("building the alert email: {0}")]
    Build(String),
    #[error("email to {to}: {error}")]
    Email { to: String, error: MailError },
    #[error(transparent)]
    Webhook(WebhookError),
}

/// What became of one tenant's evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TenantOutcome {
    pub tenant: String,
    /// Rules judged (enabled ones).
    pub rules: usize,
    /// Rule ids that started to breach, and that stopped.
    pub fired: Vec<String>,
    pub resolved: Vec<String>,
    /// The budget level newly reached (75, 90, 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_level: Option<u32>,
    /// Notices delivered (per destination) and deliveries that failed.
    pub delivered: usize,
    pub failures: Vec<String>,
    /// Set when the tenant could not be evaluated at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The stores and senders an evaluation works with.
pub struct Alerter<'a, R, S, M, W> {
    pub reader: &'a R,
    pub store: &'a S,
    pub mailer: &'a M,
    pub webhooks: &'a W,
    pub settings: &'a Settings,
}

impl<R: RollupReader, S: AlertStore, M: Mailer, W: WebhookSender> Alerter<'_, R, S, M, W> {
    /// Every tenant that has sent events, one after another; a tenant that fails is
    /// reported and the others go on.
    pub async fn run_all(&self, now: DateTime<Utc>) -> Result<Vec<TenantOutcome>, EvaluateError> {
        let tenants = self.reader.directory(TENANTS_PARTITION, "").await?;
        let mut out = Vec::with_capacity(tenants.len());
        for t in tenants {
            out.push(self.evaluate(&t.sk, now).await);
        }
        Ok(out)
    }

    /// One tenant's rules and budget at `now`.
    pub async fn evaluate(&self, tenant: &str, now: DateTime<Utc>) -> TenantOutcome {
        let mut outcome = TenantOutcome {
            tenant: tenant.to_string(),
            ..Default::default()
        };
        if let Err(e) = self.evaluate_into(tenant, now, &mut outcome).await {
            outcome.error = Some(e.to_string());
        }
        outcome
    }

    async fn evaluate_into(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        outcome: &mut TenantOutcome,
    ) -> Result<(), EvaluateError> {
        let cfg = self.store.tenant(tenant).await?;
        let pk = rollup_partition(tenant, &Scope::Tenant, Grain::Hour);
        let items = self
            .reader
            .rollups(
                &pk,
                &Grain::Hour.sort_key(history_start(now)),
                &Grain::Hour.sort_key(now),
                Fields::Scalars,
            )
            .await?;
        let hours = Hours::from_items(items.iter().map(|i| (i.sk.as_str(), &i.counters)));
        for rule in effective(&cfg.rules).iter().filter(|r| r.enabled) {
            outcome.rules += 1;
            let state = cfg.states.get(&rule.id).cloned().unwrap_or_default();
            let reading = read(rule, &hours, now);
            let (mut next, notice) = step(tenant, rule, &state, &reading, now);
            if let Some(n) = notice {
                match n.kind {
                    NoticeKind::Firing => outcome.fired.push(rule.id.clone()),
                    _ => outcome.resolved.push(rule.id.clone()),
                }
                if let Some(p) = Pending::new(n, &cfg.destinations) {
                    queue(&mut next.unsent, p);
                }
            }
            if next.status == state.status && next.unsent.is_empty() {
                continue; // nothing changed and nothing to send: no write
            }
            self.store_and_send(
                tenant,
                &state_key(&rule.id),
                &mut next,
                state.version,
                &cfg.destinations,
                now,
                outcome,
            )
            .await?;
        }
        if let Some(budget) = &cfg.budget {
            let (first, last) = month_days(now);
            let day_pk = rollup_partition(tenant, &Scope::Tenant, Grain::Day);
            let days = self
                .reader
                .rollups(&day_pk, &first, &last, Fields::Scalars)
                .await?;
            let spent = crate::stats::decimal(days.iter().map(|d| d.counters.cost_micros).sum());
            let state = &cfg.budget_state;
            let (mut next, notice) = budget_step(tenant, budget, state, spent, now);
            if let Some(n) = notice {
                outcome.budget_level = Some(next.level);
                if let Some(p) = Pending::new(n, &cfg.destinations) {
                    queue(&mut next.unsent, p);
                }
            }
            if next != *state {
                self.store_and_send(
                    tenant,
                    BUDGET_STATE_KEY,
                    &mut next,
                    state.version,
                    &cfg.destinations,
                    now,
                    outcome,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Stores a changed state if its version is still `version`, then sends its pending
    /// notices and stores what is left of them. Another evaluation that stored first
    /// sends them instead.
    #[allow(clippy::too_many_arguments)]
    async fn store_and_send<T: Serialize + Sync + Unsent>(
        &self,
        tenant: &str,
        sk: &str,
        next: &mut T,
        version: u64,
        to: &Destinations,
        now: DateTime<Utc>,
        outcome: &mut TenantOutcome,
    ) -> Result<(), EvaluateError> {
        if !self.claim(tenant, sk, next, version).await? {
            return Ok(());
        }
        let before = next.unsent().clone();
        *next.unsent() = self.deliver(to, before.clone(), now, outcome).await;
        if *next.unsent() != before {
            self.claim(tenant, sk, next, version + 1).await?;
        }
        Ok(())
    }

    /// Stores a state if its version is still `version`; whether it was.
    async fn claim<T: Serialize + Sync>(
        &self,
        tenant: &str,
        sk: &str,
        value: &T,
        version: u64,
    ) -> Result<bool, EvaluateError> {
        let stored = self
            .store
            .put_json(tenant, sk, value, Some(version))
            .await?;
        if !stored {
            tracing::info!(%tenant, item = sk, "another evaluation changed this state first; leaving its notices to it");
        }
        Ok(stored)
    }

    /// Sends each pending notice to the destinations it has not reached; returns what
    /// is still pending.
    async fn deliver(
        &self,
        to: &Destinations,
        pending: Vec<Pending>,
        now: DateTime<Utc>,
        outcome: &mut TenantOutcome,
    ) -> Vec<Pending> {
        let mut left = Vec::new();
        for mut p in pending {
            if p.email {
                match self.email(to, &p.notice).await {
                    Ok(()) => {
                        p.email = false;
                        outcome.delivered += 1;
                    }
                    Err(e) => outcome.failures.push(e.to_string()),
                }
            }
            if p.webhook {
                match self.webhook(to, &p.notice, now).await {
                    Ok(()) => {
                        p.webhook = false;
                        outcome.delivered += 1;
                    }
                    Err(e) => outcome.failures.push(e.to_string()),
                }
            }
            if !p.is_done() {
                left.push(p);
            }
        }
        left
    }

    async fn email(&self, to: &Destinations, notice: &Notice) -> Result<(), EvaluateError> {
        if to.emails.is_empty() {
            return Ok(());
        }
        let raw = mail_builder::MessageBuilder::new()
            .from(self.settings.from.as_str())
            .to(to.emails.iter().map(String::as_str).collect::<Vec<_>>())
            .subject(notice.subject())
            .text_body(notice.text())
            .write_to_vec()
            .map_err(|e| EvaluateError::Build(e.to_string()))?;
        self.mailer
            .send(&self.settings.from, &to.emails, raw)
            .await
            .map(|_| ())
            .map_err(|error| EvaluateError::Email {
                to: to.emails.join(", "),
                error,
            })
    }

    async fn webhook(
        &self,
        to: &Destinations,
        notice: &Notice,
        now: DateTime<Utc>,
    ) -> Result<(), EvaluateError> {
        let Some(hook) = &to.webhook else {
            return Ok(());
        };
        let body = notice.body();
        let headers = [
            (SIGNATURE_HEADER, sign(&hook.secret, now.timestamp(), &body)),
            ("Beacon-Event", notice.event_type().to_string()),
            (
                "Beacon-Delivery",
                format!("{}/{}", notice.breach_id, notice.event_type()),
            ),
        ];
        self.webhooks
            .post(&hook.url, &headers, body)
            .await
            .map(|_| ())
            .map_err(EvaluateError::Webhook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::store::{rule_key, BUDGET_KEY, NOTIFY_KEY};
    use crate::alert::{verify, Budget, RuleInput, Webhook};
    use crate::rollup::Counters;
    use crate::testkit::memory::MemoryAlerts;
    use crate::testkit::memory::MemoryMailer;
    use crate::testkit::memory::MemoryWebhooks;
    use crate::testkit::rollups::MemoryRollupReader;
    use std::sync::atomic::Ordering;

    fn at(t: &str) -> DateTime<Utc> {
        t.parse().unwrap()
    }

    struct World {
        reader: MemoryRollupReader,
        store: MemoryAlerts,
        mailer: MemoryMailer,
        webhooks: MemoryWebhooks,
        settings: Settings,
    }

    impl World {
        async fn new() -> World {
            let w = World {
                reader: MemoryRollupReader::default(),
                store: MemoryAlerts::default(),
                mailer: MemoryMailer::default(),
                webhooks: MemoryWebhooks::default(),
                settings: Settings {
                    from: "alerts@example.com".into(),
                },
            };
            w.reader
                .set_directory(TENANTS_PARTITION, "acme", "2026-11-23T10:00:00Z");
            let to = Destinations {
                emails: vec!["ops@acme.example".into()],
                webhook: Some(Webhook {
                    url: "https://hooks.acme.example/beacon".into(),
                    secret: "whsec_test".into(),
                }),
            };
            w.store
                .put_json("acme", NOTIFY_KEY, &to, None)
                .await
                .unwrap();
            w
        }

        fn hour(&self, t: &str, sent: u64, bounced: u64, cost_micros: i64) {
            let c = Counters {
                sent,
                delivered: sent - bounced,
                bounced_hard: bounced,
                cost_micros,
                ..Default::default()
            };
            self.reader.add_tenant_hour("acme", at(t), &c);
        }

        async fn run(&self, now: &str) -> TenantOutcome {
            let alerter = Alerter {
                reader: &self.reader,
                store: &self.store,
                mailer: &self.mailer,
                webhooks: &self.webhooks,
                settings: &self.settings,
            };
            let mut all = alerter.run_all(at(now)).await.unwrap();
            assert_eq!(all.len(), 1);
            all.remove(0)
        }
    }

    #[tokio::test]
    async fn a_bounce_spike_notifies_once_by_email_and_signed_webhook_then_resolves() {
        let w = World::new().await;
        w.hour("2026-11-23T10:00:00Z", 1000, 120, 0);
        let first = w.run("2026-11-23T10:20:00Z").await;
        assert_eq!(first.fired, vec!["ses-bounce-rate"]);
        assert_eq!((first.delivered, first.rules), (2, 2));
        // Five minutes later, still breaching: no new notice.
        let again = w.run("2026-11-23T10:25:00Z").await;
        assert_eq!((again.fired.len(), again.delivered), (0, 0));
        assert_eq!(w.mailer.sent.lock().unwrap().len(), 1);
        {
            let hooks = w.webhooks.sent.lock().unwrap();
            assert_eq!(hooks.len(), 1);
            let (url, headers, body) = &hooks[0];
            assert_eq!(url, "https://hooks.acme.example/beacon");
            let now = at("2026-11-23T10:20:00Z").timestamp();
            verify("whsec_test", &headers[SIGNATURE_HEADER], body, now, 300).unwrap();
            let json: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(json["type"], "alert.firing");
            assert_eq!(json["rule"], "ses-bounce-rate");
            assert_eq!(json["value"], 0.12);
            assert_eq!(headers["Beacon-Event"], "alert.firing");
        }
        let raw = w.mailer.sent.lock().unwrap()[0].2.clone();
        let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            mail.subject(),
            Some("[Beacon] FIRING acme: bounce rate is 12% over the last 24 h (bounce_rate >= 5% over 24 h, at least 100 sent)")
        );
        assert!(mail
            .body_text(0)
            .unwrap()
            .contains("Breach:    acme/ses-bounce-rate/1"));
        // The day passes with clean traffic: the 24 h window drops the spike.
        w.hour("2026-11-24T11:00:00Z", 1000, 5, 0);
        let later = w.run("2026-11-24T11:10:00Z").await;
        assert_eq!(later.resolved, vec!["ses-bounce-rate"]);
        let hooks = w.webhooks.sent.lock().unwrap();
        let resolved: serde_json::Value = serde_json::from_slice(&hooks[1].2).unwrap();
        assert_eq!(resolved["type"], "alert.resolved");
        assert_eq!(resolved["breach_id"], "acme/ses-bounce-rate/1");
    }

    #[tokio::test]
    async fn a_failed_webhook_is_retried_alone_on_the_next_evaluation() {
        let w = World::new().await;
        w.hour("2026-11-23T10:00:00Z", 1000, 120, 0);
        w.webhooks.failing.store(true, Ordering::Relaxed);
        let first = w.run("2026-11-23T10:20:00Z").await;
        assert_eq!((first.delivered, first.failures.len()), (1, 1));
        w.webhooks.failing.store(false, Ordering::Relaxed);
        let second = w.run("2026-11-23T10:25:00Z").await;
        assert_eq!((second.fired.len(), second.delivered), (0, 1));
        assert_eq!(
            w.mailer.sent.lock().unwrap().len(),
            1,
            "the email is not sent twice"
        );
        assert_eq!(w.webhooks.sent.lock().unwrap().len(), 1);
        let third = w.run("2026-11-23T10:30:00Z").await;
        assert_eq!(third.delivered, 0);
    }

    #[tokio::test]
    async fn stored_rules_and_the_budget_are_judged_and_disabled_defaults_are_not() {
        let w = World::new().await;
        let off = RuleInput {
            id: "ses-bounce-rate".into(),
            metric: "bounce_rate".into(),
            operator: Some(">=".into()),
            threshold: Some("5%".into()),
            enabled: Some(false),
            ..Default::default()
        };
        let spend = RuleInput {
            id: "hourly-spend".into(),
            metric: "spend".into(),
            operator: Some(">".into()),
            threshold: Some(serde_json::json!(50)),
            window: Some("1h".into()),
            ..Default::default()
        };
        for rule in [off, spend] {
            let rule = rule.validate().unwrap();
            w.store
                .put_json("acme", &rule_key(&rule.id), &rule, None)
                .await
                .unwrap();
        }
        w.store
            .put_json("acme", BUDGET_KEY, &Budget::new(100.0, None).unwrap(), None)
            .await
            .unwrap();
        w.hour("2026-11-23T09:00:00Z", 1000, 120, 40_000_000);
        w.hour("2026-11-23T10:00:00Z", 1000, 120, 52_000_000);
        let out = w.run("2026-11-23T10:20:00Z").await;
        assert_eq!(out.fired, vec!["hourly-spend"], "the bounce default is off");
        assert_eq!(out.budget_level, Some(90));
        let again = w.run("2026-11-23T10:40:00Z").await;
        assert_eq!((again.budget_level, again.fired.len()), (None, 0));
        let hooks = w.webhooks.sent.lock().unwrap();
        let budget: serde_json::Value = serde_json::from_slice(&hooks[1].2).unwrap();
        assert_eq!(budget["type"], "budget.threshold");
        assert_eq!(
            budget["summary"],
            "90% of the 2026-11 budget used: spent 92.00 of 100.00"
        );
    }
}
