//! Report definitions: what a tenant wants to receive, how often, in which formats and
//! for whom. A [`DefinitionInput`] (strings, as typed at the CLI or sent in an event)
//! becomes a [`ReportDefinition`] only through [`DefinitionInput::validate`], which
//! reports every problem at once with the field it concerns.

use super::model::{Format, Metric};
use super::period::{parse_tz, Cadence};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The sections a report can have besides the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    /// Per hour (daily reports) or per local day (weekly, monthly), with a chart.
    Series,
    /// The most clicked links of the period.
    TopLinks,
    /// Per channel and provider.
    Channels,
    /// Bounces and complaints against SES's review levels.
    Deliverability,
}

impl Breakdown {
    pub const ALL: [Breakdown; 4] = [
        Breakdown::Series,
        Breakdown::TopLinks,
        Breakdown::Channels,
        Breakdown::Deliverability,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Breakdown::Series => "series",
            Breakdown::TopLinks => "top_links",
            Breakdown::Channels => "channels",
            Breakdown::Deliverability => "deliverability",
        }
    }

    pub fn parse(name: &str) -> Option<Breakdown> {
        Breakdown::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// What a report covers: the whole tenant, chosen campaigns, or chosen channels
/// (`email` for every provider of the channel, `email/ses` for one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportScope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

impl ReportScope {
    pub fn is_tenant(&self) -> bool {
        self.campaigns.is_empty() && self.channels.is_empty()
    }

    /// Whether the channel/provider pair is in a channel scope.
    pub fn has_channel(&self, channel: &str, provider: &str) -> bool {
        self.channels.iter().any(|c| match c.split_once('/') {
            Some((ch, p)) => ch == channel && p == provider,
            None => c == channel,
        })
    }

    pub fn describe(&self) -> String {
        if !self.campaigns.is_empty() {
            format!("Campaigns: {}", self.campaigns.join(", "))
        } else if !self.channels.is_empty() {
            format!("Channels: {}", self.channels.join(", "))
        } else {
            "All campaigns".to_string()
        }
    }
}

/// A validated definition, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportDefinition {
    pub tenant: String,
    /// Unique per tenant: lowercase letters, digits and `-`.
    pub id: String,
    pub name: String,
    pub scope: ReportScope,
    pub cadence: Cadence,
    /// IANA zone name; periods are days, weeks and months there.
    pub timezone: String,
    pub metrics: Vec<Metric>,
    pub breakdowns: Vec<Breakdown>,
    pub formats: Vec<Format>,
    pub recipients: Vec<String>,
    /// How many links the top-links section lists (the email body shows the first 20).
    pub top_links: usize,
    pub created_at: DateTime<Utc>,
}

impl ReportDefinition {
    pub fn tz(&self) -> Tz {
        // Validated on the way in; a stored zone that no longer parses falls back to UTC
        // rather than stopping every report of the run.
        parse_tz(&self.timezone).unwrap_or(Tz::UTC)
    }

    pub fn wants(&self, b: Breakdown) -> bool {
        self.breakdowns.contains(&b)
    }
}

/// A definition as typed: every field a string, so every mistake can be named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionInput {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub campaigns: Vec<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    pub cadence: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Empty: [`Metric::DEFAULT`].
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Empty: every breakdown the scope allows.
    #[serde(default)]
    pub breakdowns: Vec<String>,
    /// Empty: html, csv, xlsx and pdf.
    #[serde(default)]
    pub formats: Vec<String>,
    pub recipients: Vec<String>,
    #[serde(default)]
    pub top_links: Option<usize>,
}

fn default_timezone() -> String {
    "UTC".into()
}

pub const MAX_TOP_LINKS: usize = 1000;
pub const DEFAULT_TOP_LINKS: usize = 100;
pub const MAX_RECIPIENTS: usize = 50;

/// One problem with a definition, and the field it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionProblem {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for DefinitionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDefinition(pub Vec<DefinitionProblem>);

impl fmt::Display for InvalidDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid report definition:")?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidDefinition {}

fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    all.iter().map(|t| name(*t)).collect::<Vec<_>>().join(", ")
}

/// Parses each of `values` with `parse`, naming the unknown ones; drops repeats.
fn parse_list<T: Copy + PartialEq>(
    field: &'static str,
    what: &str,
    values: &[String],
    parse: impl Fn(&str) -> Option<T>,
    known: String,
    errors: &mut Vec<DefinitionProblem>,
) -> Vec<T> {
    let mut out = Vec::new();
    for v in values {
        match parse(v.trim()) {
            Some(t) if !out.contains(&t) => out.push(t),
            Some(_) => {}
            None => errors.push(DefinitionProblem {
                field,
                message: format!("unknown {what} `{v}`; known: {known}"),
            }),
        }
    }
    out
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

impl DefinitionInput {
    /// The stored definition for `tenant`, or every problem with this input.
    pub fn validate(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<ReportDefinition, InvalidDefinition> {
        let mut errors = Vec::new();
        let mut err = |field, message: String| errors.push(DefinitionProblem { field, message });
        if let Err(e) = beacon_domain::tenant::check(tenant) {
            err("tenant", e.to_string());
        }
        if !valid_id(&self.id) {
            err(
                "id",
                format!(
                    "`{}` is not a report id: use 1 to 64 lowercase letters, digits and `-`",
                    self.id
                ),
            );
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            err(
                "name",
                "give the report a name of 1 to 120 characters".into(),
            );
        }
        let cadence = Cadence::parse(self.cadence.trim());
        if cadence.is_none() {
            err(
                "cadence",
                format!(
                    "unknown cadence `{}`; known: daily, weekly, monthly",
                    self.cadence
                ),
            );
        }
        // Unset (as in a JSON definition without the field) means UTC.
        let timezone = match self.timezone.trim() {
            "" => "UTC",
            tz => tz,
        };
        if parse_tz(timezone).is_none() {
            err(
                "timezone",
                format!(
                    "unknown time zone `{}`; use an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`",
                    self.timezone
                ),
            );
        }
        if !self.campaigns.is_empty() && !self.channels.is_empty() {
            err(
                "scope",
                "choose campaigns or channels, not both: rollups are kept per campaign and per channel, not per campaign and channel".into(),
            );
        }
        for c in &self.campaigns {
            if c.trim().is_empty() || c.len() > 128 {
                err("campaigns", format!("`{c}` is not a campaign id"));
            }
        }
        for c in &self.channels {
            let ok = match c.split_once('/') {
                Some((ch, p)) => !ch.is_empty() && !p.is_empty(),
                None => !c.is_empty(),
            };
            if !ok {
                err(
                    "channels",
                    format!("`{c}` is not a channel: use `email` or `email/ses`"),
                );
            }
        }
        let mut errors_after = Vec::new();
        let metrics = parse_list(
            "metrics",
            "metric",
            &self.metrics,
            Metric::parse,
            names(&Metric::ALL, Metric::key),
            &mut errors_after,
        );
        let breakdowns = parse_list(
            "breakdowns",
            "breakdown",
            &self.breakdowns,
            Breakdown::parse,
            names(&Breakdown::ALL, Breakdown::name),
            &mut errors_after,
        );
        let formats = parse_list(
            "formats",
            "format",
            &self.formats,
            Format::parse,
            names(&Format::ALL, Format::extension),
            &mut errors_after,
        );
        errors.append(&mut errors_after);
        let mut err = |field, message: String| errors.push(DefinitionProblem { field, message });
        // Top links come from campaign rollups and the channel breakdown from channel
        // rollups: neither can be cut by the other kind of scope.
        if !self.channels.is_empty() && breakdowns.contains(&Breakdown::TopLinks) {
            err(
                "breakdowns",
                "`top_links` needs a whole-tenant or campaign scope, not a channel scope".into(),
            );
        }
        if !self.campaigns.is_empty() && breakdowns.contains(&Breakdown::Channels) {
            err(
                "breakdowns",
                "`channels` needs a whole-tenant or channel scope, not a campaign scope".into(),
            );
        }
        let mut recipients: Vec<String> = Vec::new();
        if self.recipients.is_empty() {
            err(
                "recipients",
                "add at least one recipient email address".into(),
            );
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            err(
                "recipients",
                format!("at most {MAX_RECIPIENTS} recipients; use a mailing list for more"),
            );
        }
        for r in &self.recipients {
            let r = r.trim();
            match email_address::EmailAddress::from_str(r) {
                Ok(a) if a.domain().contains('.') => {
                    if !recipients.iter().any(|x| x.eq_ignore_ascii_case(r)) {
                        recipients.push(r.to_string());
                    }
                }
                _ => err("recipients", format!("`{r}` is not an email address")),
            }
        }
        let top_links = self.top_links.unwrap_or(DEFAULT_TOP_LINKS);
        if top_links == 0 || top_links > MAX_TOP_LINKS {
            err(
                "top_links",
                format!("list between 1 and {MAX_TOP_LINKS} links (got {top_links})"),
            );
        }
        if !errors.is_empty() {
            return Err(InvalidDefinition(errors));
        }
        let scope = ReportScope {
            campaigns: self
                .campaigns
                .iter()
                .map(|c| c.trim().to_string())
                .collect(),
            channels: self.channels.iter().map(|c| c.trim().to_string()).collect(),
        };
        let breakdowns = if breakdowns.is_empty() {
            Breakdown::ALL
                .into_iter()
                .filter(|b| match b {
                    Breakdown::TopLinks => scope.channels.is_empty(),
                    Breakdown::Channels => scope.campaigns.is_empty(),
                    _ => true,
                })
                .collect()
        } else {
            breakdowns
        };
        Ok(ReportDefinition {
            tenant: tenant.to_string(),
            id: self.id.clone(),
            name: name.to_string(),
            scope,
            cadence: cadence.expect("checked above"),
            timezone: timezone.to_string(),
            metrics: if metrics.is_empty() {
                Metric::DEFAULT.to_vec()
            } else {
                metrics
            },
            breakdowns,
            formats: if formats.is_empty() {
                vec![Format::Html, Format::Csv, Format::Xlsx, Format::Pdf]
            } else {
                formats
            },
            recipients,
            top_links,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> DefinitionInput {
        DefinitionInput {
            id: "weekly-summary".into(),
            name: "Weekly summary".into(),
            cadence: "weekly".into(),
            timezone: "Europe/Berlin".into(),
            recipients: vec!["ops@example.com".into()],
            ..Default::default()
        }
    }

    fn problems(i: &DefinitionInput) -> Vec<String> {
        i.validate("acme", Utc::now())
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_minimal_definition_gets_sane_defaults() {
        let d = input().validate("acme", Utc::now()).unwrap();
        assert_eq!(d.metrics, Metric::DEFAULT.to_vec());
        assert_eq!(d.breakdowns, Breakdown::ALL.to_vec());
        assert_eq!(
            d.formats,
            vec![Format::Html, Format::Csv, Format::Xlsx, Format::Pdf]
        );
        assert_eq!(d.top_links, DEFAULT_TOP_LINKS);
        assert_eq!(d.tz(), chrono_tz::Europe::Berlin);
        assert_eq!(d.scope.describe(), "All campaigns");
    }

    #[test]
    fn every_mistake_is_named_with_its_field() {
        let bad = DefinitionInput {
            id: "Weekly Summary".into(),
            cadence: "fortnightly".into(),
            timezone: "Mars/Olympus".into(),
            metrics: vec!["sent".into(), "opens".into()],
            formats: vec!["docx".into()],
            recipients: vec!["not-an-address".into(), "a@b.example".into()],
            ..input()
        };
        let p = problems(&bad);
        assert!(
            p.iter().any(|m| m.starts_with("id: `Weekly Summary`")),
            "{p:?}"
        );
        assert!(p
            .iter()
            .any(|m| m.contains("unknown cadence `fortnightly`")));
        assert!(p
            .iter()
            .any(|m| m.contains("unknown time zone `Mars/Olympus`")));
        assert!(p
            .iter()
            .any(|m| m.starts_with("metrics: unknown metric `opens`; known: sent, delivered")));
        assert!(p.iter().any(|m| m.contains("unknown format `docx`")));
        assert!(p
            .iter()
            .any(|m| m == "recipients: `not-an-address` is not an email address"));
        assert_eq!(p.len(), 6, "{p:?}");
    }

    #[test]
    fn the_tenant_id_must_be_safe_in_keys() {
        let e = input().validate("acme/other", Utc::now()).unwrap_err();
        assert!(e.0[0]
            .to_string()
            .starts_with("tenant: `acme/other` is not a tenant id"));
    }

    #[test]
    fn no_recipients_and_bad_addresses_are_rejected() {
        let none = DefinitionInput {
            recipients: vec![],
            ..input()
        };
        assert_eq!(
            problems(&none),
            vec!["recipients: add at least one recipient email address"]
        );
        for bad in ["a@b", "two words@example.com", "@example.com", "x@"] {
            let i = DefinitionInput {
                recipients: vec![bad.into()],
                ..input()
            };
            assert_eq!(problems(&i).len(), 1, "{bad}");
        }
    }

    #[test]
    fn scopes_and_breakdowns_must_fit_together() {
        let both = DefinitionInput {
            campaigns: vec!["spring".into()],
            channels: vec!["email".into()],
            ..input()
        };
        assert!(problems(&both)[0].starts_with("scope: choose campaigns or channels"));
        let links_by_channel = DefinitionInput {
            channels: vec!["email/ses".into()],
            breakdowns: vec!["top_links".into()],
            ..input()
        };
        assert!(problems(&links_by_channel)[0].contains("`top_links` needs"));
        // Without explicit breakdowns, a scope gets the ones it allows.
        let d = DefinitionInput {
            campaigns: vec!["spring".into()],
            ..input()
        }
        .validate("acme", Utc::now())
        .unwrap();
        assert!(!d.wants(Breakdown::Channels) && d.wants(Breakdown::TopLinks));
        assert_eq!(d.scope.describe(), "Campaigns: spring");
        let s = ReportScope {
            channels: vec!["email".into(), "sms/twilio".into()],
            ..Default::default()
        };
        assert!(s.has_channel("email", "ses") && s.has_channel("sms", "twilio"));
        assert!(!s.has_channel("sms", "vonage"));
    }

    #[test]
    fn unknown_fields_in_json_are_errors_not_silently_dropped() {
        let e = serde_json::from_str::<DefinitionInput>(
            r#"{"id":"x","name":"x","cadence":"daily","recipients":["a@b.co"],"recipient":"c@d.co"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `recipient`"), "{e}");
    }
}
