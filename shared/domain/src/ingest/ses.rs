//! Amazon SES: the events a configuration set publishes, through EventBridge (the
//! default bus, source `aws.ses`) or an SNS topic, read as SES documents them and
//! mapped one Beacon event per affected recipient.
//!
//! | SES `eventType`     | Beacon event            | per                      | reason, extra            |
//! |---------------------|-------------------------|--------------------------|--------------------------|
//! | `Send`              | `message.sent`          | each `mail.destination`  |                          |
//! | `Delivery`          | `message.delivered`     | each `delivery.recipients` | `duration_ms` = processing time |
//! | `Bounce`            | `message.bounced`       | each bounced recipient   | Permanent → hard, Transient/Undetermined → soft; the diagnostic |
//! | `Complaint`         | `message.complained`    | each complained recipient | the feedback type       |
//! | `Reject`            | `message.failed`        | each destination         | `rejected: <reason>`     |
//! | `Rendering Failure` | `message.failed`        | each destination         | `rendering failure: <error>` |
//! | `DeliveryDelay`     | `message.delayed`       | each delayed recipient   | delay type and diagnostic |
//! | `Subscription`      | `message.unsubscribed`  | each destination, when the new preferences opt out | the contact list |
//! | `Open`              | `message.opened`        | the recipient            | classified from `ipAddress`, `userAgent` |
//! | `Click`             | `link.clicked`          | the recipient            | the link; classified likewise |
//!
//! Without a configuration set, SES's own notifications name the type
//! `notificationType` (Bounce, Complaint, Delivery) and carry no tags; they are read the
//! same way.
//!
//! **Who.** The tenant is the message's `beacon-tenant` tag, or the tenant its
//! configuration set is mapped to (`beacon provider ses add`), or the deployment's
//! default tenant; a tag and a mapping that disagree are refused, not guessed. The
//! campaign is the `beacon-campaign` tag (none: transactional mail). The recipient is
//! the `beacon-recipient` tag when the message has one destination, otherwise the
//! keyed hash of each address. An open or click of a message to several recipients
//! without that tag cannot be told apart and is skipped.
//!
//! **Ids.** The message id, the event type, the recipient and SES's own identifiers of
//! the event (its timestamp, a bounce's or complaint's feedback id, a click's link):
//! EventBridge's and SNS's redeliveries and SES's own repeats carry the same id.

use super::{parse_time, Draft, Malformed, Source, Who};
use crate::event::{BounceType, EventType};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// The message tags Beacon reads (set them on each send, or as the configuration
/// set's default tags).
pub const TENANT_TAG: &str = "beacon-tenant";
pub const CAMPAIGN_TAG: &str = "beacon-campaign";
pub const RECIPIENT_TAG: &str = "beacon-recipient";
/// The tag SES adds with the configuration set's name.
pub const CONFIGURATION_SET_TAG: &str = "ses:configuration-set";

/// EventBridge's detail-types for SES events (the rule in the template lists them).
pub const DETAIL_TYPES: [&str; 10] = [
    "Email Sent",
    "Email Delivered",
    "Email Bounced",
    "Email Complaint Received",
    "Email Rejected",
    "Email Opened",
    "Email Clicked",
    "Email Rendering Failed",
    "Email Delivery Delayed",
    "Email Subscribed",
];

/// One SES event record: what EventBridge carries as `detail` and SNS as `Message`.
#[derive(Debug, Clone, Deserialize)]
pub struct SesEvent {
    #[serde(rename = "eventType", alias = "notificationType")]
    pub event_type: String,
    pub mail: Mail,
    #[serde(default)]
    pub bounce: Option<Bounce>,
    #[serde(default)]
    pub complaint: Option<Complaint>,
    #[serde(default)]
    pub delivery: Option<Delivery>,
    #[serde(default)]
    pub reject: Option<Reject>,
    #[serde(default)]
    pub open: Option<Hit>,
    #[serde(default)]
    pub click: Option<Hit>,
    #[serde(default)]
    pub failure: Option<RenderingFailure>,
    #[serde(default, rename = "deliveryDelay")]
    pub delivery_delay: Option<DeliveryDelay>,
    #[serde(default)]
    pub subscription: Option<Subscription>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub timestamp: String,
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(default)]
    pub destination: Vec<String>,
    #[serde(default)]
    pub tags: Tags,
}

/// The message tags Beacon reads; SES's own (`ses:source-ip`, `ses:caller-identity`,
/// ...) and the sender's other tags are skipped while parsing, not kept.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Tags {
    #[serde(default, rename = "beacon-tenant")]
    pub tenant: Vec<String>,
    #[serde(default, rename = "beacon-campaign")]
    pub campaign: Vec<String>,
    #[serde(default, rename = "beacon-recipient")]
    pub recipient: Vec<String>,
    #[serde(default, rename = "ses:configuration-set")]
    pub configuration_set: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recipient {
    #[serde(rename = "emailAddress")]
    pub email_address: String,
    #[serde(default, rename = "diagnosticCode")]
    pub diagnostic_code: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Bounce {
    #[serde(rename = "bounceType")]
    pub bounce_type: String,
    #[serde(default, rename = "bounceSubType")]
    pub bounce_sub_type: Option<String>,
    #[serde(rename = "bouncedRecipients")]
    pub bounced_recipients: Vec<Recipient>,
    pub timestamp: String,
    #[serde(default, rename = "feedbackId")]
    pub feedback_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Complaint {
    #[serde(rename = "complainedRecipients")]
    pub complained_recipients: Vec<Recipient>,
    pub timestamp: String,
    #[serde(default, rename = "feedbackId")]
    pub feedback_id: Option<String>,
    #[serde(default, rename = "complaintFeedbackType")]
    pub feedback_type: Option<String>,
    #[serde(default, rename = "complaintSubType")]
    pub sub_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    pub timestamp: String,
    #[serde(default, rename = "processingTimeMillis")]
    pub processing_time_millis: Option<i64>,
    #[serde(default)]
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reject {
    #[serde(default)]
    pub reason: Option<String>,
}

/// An open or a click seen by SES's own tracking.
#[derive(Debug, Clone, Deserialize)]
pub struct Hit {
    pub timestamp: String,
    #[serde(default, rename = "ipAddress")]
    pub ip_address: Option<String>,
    #[serde(default, rename = "userAgent")]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub link: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RenderingFailure {
    #[serde(default, rename = "errorMessage")]
    pub error_message: Option<String>,
    #[serde(default, rename = "templateName")]
    pub template_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryDelay {
    pub timestamp: String,
    #[serde(default, rename = "delayType")]
    pub delay_type: Option<String>,
    #[serde(default, rename = "delayedRecipients")]
    pub delayed_recipients: Vec<Recipient>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub timestamp: String,
    #[serde(default, rename = "contactList")]
    pub contact_list: Option<String>,
    #[serde(default, rename = "newTopicPreferences")]
    pub new_topic_preferences: Option<TopicPreferences>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TopicPreferences {
    #[serde(default, rename = "unsubscribeAll")]
    pub unsubscribe_all: bool,
    #[serde(default, rename = "topicSubscriptionStatus")]
    pub topics: Vec<TopicStatus>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TopicStatus {
    #[serde(default, rename = "topicName")]
    pub topic_name: Option<String>,
    #[serde(default, rename = "subscriptionStatus")]
    pub subscription_status: Option<String>,
}

/// One SES event as it arrived, with the delivery's own id (EventBridge's `id`, SNS's
/// `MessageId`) for logs.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub delivery_id: String,
    pub event: SesEvent,
}

#[derive(Deserialize)]
struct EventBridge {
    #[serde(default)]
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    detail: SesEvent,
}

#[derive(Deserialize)]
struct SnsInvocation {
    #[serde(rename = "Records")]
    records: Vec<SnsRecord>,
}

#[derive(Deserialize)]
struct SnsRecord {
    #[serde(rename = "Sns")]
    sns: SnsMessage,
}

#[derive(Deserialize)]
struct SnsMessage {
    #[serde(rename = "MessageId", default)]
    message_id: String,
    #[serde(rename = "Message")]
    message: String,
}

/// Reads what the function was invoked with: an EventBridge event from the rule, or
/// an SNS invocation (one or more records, each an SES event as a JSON string).
pub fn read(payload: &[u8]) -> Result<Vec<Arrival>, Malformed> {
    let peek: Value = serde_json::from_slice(payload)
        .map_err(|e| Malformed(format!("the invocation is not JSON: {e}")))?;
    read_value(peek)
}

/// [`read`], from the JSON the Lambda runtime already parsed.
pub fn read_value(peek: Value) -> Result<Vec<Arrival>, Malformed> {
    if peek.get("Records").is_some() {
        let sns: SnsInvocation = serde_json::from_value(peek)
            .map_err(|e| Malformed(format!("not an SNS invocation: {e}")))?;
        return sns
            .records
            .into_iter()
            .map(|r| {
                let event = serde_json::from_str(&r.sns.message).map_err(|e| {
                    Malformed(format!(
                        "SNS message {} is not an SES event: {e}",
                        r.sns.message_id
                    ))
                })?;
                Ok(Arrival {
                    delivery_id: r.sns.message_id,
                    event,
                })
            })
            .collect();
    }
    read_eventbridge_value(peek).map(|a| vec![a])
}

/// Reads one EventBridge event (the fast path the rule takes: one parse).
pub fn read_eventbridge(payload: &[u8]) -> Result<Arrival, Malformed> {
    let eb: EventBridge = serde_json::from_slice(payload)
        .map_err(|e| Malformed(format!("not an EventBridge SES event: {e}")))?;
    checked(eb)
}

fn read_eventbridge_value(value: Value) -> Result<Arrival, Malformed> {
    let eb: EventBridge = serde_json::from_value(value).map_err(|e| {
        Malformed(format!(
            "neither an SNS invocation nor an EventBridge SES event: {e}"
        ))
    })?;
    checked(eb)
}

fn checked(eb: EventBridge) -> Result<Arrival, Malformed> {
    if eb.source != "aws.ses" {
        return Err(Malformed(format!(
            "EventBridge source `{}` is not aws.ses",
            eb.source
        )));
    }
    if !DETAIL_TYPES.contains(&eb.detail_type.as_str()) {
        return Err(Malformed(format!(
            "EventBridge detail-type `{}` is not an SES event type",
            eb.detail_type
        )));
    }
    Ok(Arrival {
        delivery_id: eb.id,
        event: eb.detail,
    })
}

impl SesEvent {
    /// The first value of a message tag Beacon reads (one of the `*_TAG` names).
    pub fn tag(&self, name: &str) -> Option<&str> {
        let t = &self.mail.tags;
        let values = match name {
            TENANT_TAG => &t.tenant,
            CAMPAIGN_TAG => &t.campaign,
            RECIPIENT_TAG => &t.recipient,
            CONFIGURATION_SET_TAG => &t.configuration_set,
            _ => return None,
        };
        values.first().map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn configuration_set(&self) -> Option<&str> {
        self.tag(CONFIGURATION_SET_TAG)
    }
}

/// The tenant of an event: its tag, else its configuration set's mapping (`mapped`,
/// looked up by the caller), else the deployment's default.
pub fn tenant_of(
    event: &SesEvent,
    mapped: Option<&str>,
    default: Option<&str>,
) -> Result<String, String> {
    let tagged = event.tag(TENANT_TAG);
    match (tagged, mapped) {
        (Some(t), Some(m)) if t != m => Err(format!(
            "the message's {TENANT_TAG} tag `{t}` disagrees with configuration set `{}`, which belongs to `{m}`",
            event.configuration_set().unwrap_or_default()
        )),
        (Some(t), _) => Ok(t.to_string()),
        (None, Some(m)) => Ok(m.to_string()),
        (None, None) => default.map(str::to_string).ok_or_else(|| {
            format!(
                "no tenant: tag the message `{TENANT_TAG}`, map its configuration set{} to a tenant, or set a default tenant",
                event
                    .configuration_set()
                    .map(|c| format!(" `{c}`"))
                    .unwrap_or_default()
            )
        }),
    }
}

type Drafted = (usize, String, Result<Draft, String>);

/// The drafts of one SES event (its position `index`), one per affected recipient.
pub fn drafts(event: &SesEvent, index: usize) -> Vec<Drafted> {
    let name = event.event_type.as_str();
    let mail = &event.mail;
    let out = |r: Result<Draft, String>| (index, name.to_string(), r);
    let missing = |field: &str| vec![out(Err(format!("the {name} event has no `{field}`")))];
    let time =
        |text: &str| parse_time(text).ok_or_else(|| format!("`{text}` is not an ISO 8601 time"));
    let tagged_recipient = if mail.destination.len() <= 1 {
        event.tag(RECIPIENT_TAG)
    } else {
        None
    };
    let campaign = event.tag(CAMPAIGN_TAG).map(str::to_string);
    // One draft per recipient; `extra` fills in what the event type adds.
    let each = |kind: EventType,
                when: &str,
                addresses: &mut dyn Iterator<Item = &str>,
                identity: &[&str],
                extra: &dyn Fn(&mut Draft, &str)| {
        let when = match time(when) {
            Ok(t) => t,
            Err(e) => return vec![out(Err(e))],
        };
        let mut drafts = Vec::new();
        for address in addresses {
            let mut d = Draft::new(kind.clone(), when, name);
            d.message_id = Some(mail.message_id.clone());
            d.campaign_id = campaign.clone();
            d.recipient = Some(match tagged_recipient {
                Some(id) => Who::Id(id.to_string()),
                None => Who::Address(address.to_string()),
            });
            d.identity = [mail.message_id.as_str(), name, address]
                .iter()
                .chain(identity)
                .map(|s| s.to_string())
                .collect();
            extra(&mut d, address);
            drafts.push(out(Ok(d)));
        }
        if drafts.is_empty() {
            drafts.push(out(Err(format!("the {name} event names no recipient"))));
        }
        drafts
    };
    let destinations = || mail.destination.iter().map(String::as_str);
    let none = |_: &mut Draft, _: &str| {};

    match name {
        "Send" => each(
            EventType::Sent,
            &mail.timestamp,
            &mut destinations(),
            &[],
            &none,
        ),
        "Delivery" => {
            let Some(delivery) = &event.delivery else {
                return missing("delivery");
            };
            let mut recipients = delivery.recipients.iter().map(String::as_str);
            each(
                EventType::Delivered,
                &delivery.timestamp,
                &mut recipients,
                &[],
                &|d, _| d.duration_ms = delivery.processing_time_millis,
            )
        }
        "Bounce" => {
            let Some(bounce) = &event.bounce else {
                return missing("bounce");
            };
            let bounce_type = match bounce.bounce_type.as_str() {
                "Permanent" => BounceType::Hard,
                _ => BounceType::Soft,
            };
            let by_address: HashMap<&str, &Recipient> = bounce
                .bounced_recipients
                .iter()
                .map(|r| (r.email_address.as_str(), r))
                .collect();
            let mut recipients = bounce
                .bounced_recipients
                .iter()
                .map(|r| r.email_address.as_str());
            let feedback = bounce.feedback_id.as_deref().unwrap_or(&bounce.timestamp);
            each(
                EventType::Bounced,
                &bounce.timestamp,
                &mut recipients,
                &[feedback],
                &|d, address| {
                    d.bounce_type = Some(bounce_type);
                    let r = by_address.get(address);
                    d.reason = Some(
                        r.and_then(|r| r.diagnostic_code.clone())
                            .or_else(|| r.and_then(|r| r.status.clone()))
                            .unwrap_or_else(|| {
                                format!(
                                    "{} {}",
                                    bounce.bounce_type,
                                    bounce.bounce_sub_type.as_deref().unwrap_or("")
                                )
                                .trim()
                                .to_string()
                            }),
                    );
                },
            )
        }
        "Complaint" => {
            let Some(complaint) = &event.complaint else {
                return missing("complaint");
            };
            let mut recipients = complaint
                .complained_recipients
                .iter()
                .map(|r| r.email_address.as_str());
            let feedback = complaint
                .feedback_id
                .as_deref()
                .unwrap_or(&complaint.timestamp);
            each(
                EventType::Complained,
                &complaint.timestamp,
                &mut recipients,
                &[feedback],
                &|d, _| {
                    d.reason = complaint
                        .feedback_type
                        .clone()
                        .or_else(|| complaint.sub_type.clone());
                },
            )
        }
        "Reject" => each(
            EventType::Failed,
            &mail.timestamp,
            &mut destinations(),
            &[],
            &|d, _| {
                let why = event.reject.as_ref().and_then(|r| r.reason.as_deref());
                d.reason = Some(format!("rejected: {}", why.unwrap_or("no reason given")));
            },
        ),
        "Rendering Failure" => each(
            EventType::Failed,
            &mail.timestamp,
            &mut destinations(),
            &[],
            &|d, _| {
                let f = event.failure.as_ref();
                d.reason = Some(format!(
                    "rendering failure{}: {}",
                    f.and_then(|f| f.template_name.as_deref())
                        .map(|t| format!(" of template {t}"))
                        .unwrap_or_default(),
                    f.and_then(|f| f.error_message.as_deref())
                        .unwrap_or("no message given")
                ));
            },
        ),
        "DeliveryDelay" => {
            let Some(delay) = &event.delivery_delay else {
                return missing("deliveryDelay");
            };
            let by_address: HashMap<&str, &Recipient> = delay
                .delayed_recipients
                .iter()
                .map(|r| (r.email_address.as_str(), r))
                .collect();
            let mut recipients = delay
                .delayed_recipients
                .iter()
                .map(|r| r.email_address.as_str());
            each(
                EventType::Delayed,
                &delay.timestamp,
                &mut recipients,
                &[&delay.timestamp],
                &|d, address| {
                    let diagnostic = by_address
                        .get(address)
                        .and_then(|r| r.diagnostic_code.as_deref());
                    d.reason = Some(
                        [delay.delay_type.as_deref(), diagnostic]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(": "),
                    );
                },
            )
        }
        "Subscription" => {
            let Some(sub) = &event.subscription else {
                return missing("subscription");
            };
            let opted_out = sub.new_topic_preferences.as_ref().is_some_and(|p| {
                p.unsubscribe_all
                    || p.topics
                        .iter()
                        .any(|t| t.subscription_status.as_deref() == Some("OptOut"))
            });
            if !opted_out {
                return vec![out(Err(
                    "a subscription change that opts in is not recorded (Beacon counts unsubscribes)"
                        .into(),
                ))];
            }
            each(
                EventType::Unsubscribed,
                &sub.timestamp,
                &mut destinations(),
                &[&sub.timestamp],
                &|d, _| {
                    let topics: Vec<&str> = sub
                        .new_topic_preferences
                        .iter()
                        .flat_map(|p| &p.topics)
                        .filter(|t| t.subscription_status.as_deref() == Some("OptOut"))
                        .filter_map(|t| t.topic_name.as_deref())
                        .collect();
                    d.reason = Some(match (&sub.contact_list, topics.is_empty()) {
                        (Some(list), true) => format!("unsubscribed from contact list {list}"),
                        (Some(list), false) => {
                            format!(
                                "unsubscribed from {} in contact list {list}",
                                topics.join(", ")
                            )
                        }
                        (None, _) => "unsubscribed".to_string(),
                    });
                },
            )
        }
        "Open" | "Click" => {
            let (hit, kind) = if name == "Open" {
                (&event.open, EventType::Opened)
            } else {
                (&event.click, EventType::Clicked)
            };
            let Some(hit) = hit else {
                return missing(if name == "Open" { "open" } else { "click" });
            };
            if tagged_recipient.is_none() && mail.destination.len() > 1 {
                return vec![out(Err(format!(
                    "the message went to {} recipients and has no {RECIPIENT_TAG} tag: SES does not say which one {}",
                    mail.destination.len(),
                    if name == "Open" { "opened it" } else { "clicked" }
                )))];
            }
            let link = hit.link.as_deref().unwrap_or("");
            each(
                kind,
                &hit.timestamp,
                &mut destinations(),
                &[&hit.timestamp, link],
                &|d, _| {
                    d.ip = hit.ip_address.clone();
                    d.user_agent = hit.user_agent.clone();
                    d.link_url = hit.link.clone();
                },
            )
        }
        other => vec![out(Err(format!(
            "SES event type `{other}` is not one Beacon knows"
        )))],
    }
}

/// Everything one SES event becomes for the tenant of `source`.
pub fn map(event: &SesEvent, index: usize, source: &Source) -> super::Mapped {
    source.finish_all(drafts(event, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::context::IpPolicy;
    use crate::event::validate::Limits;
    use crate::event::Event;
    use crate::ingest::{Provider, Pseudonyms, TenantPseudonyms};
    use crate::verdict::networks::Networks;
    use chrono::{TimeZone, Utc};

    macro_rules! sample {
        ($name:literal) => {
            include_str!(concat!("../../../../events/ingest-ses/", $name, ".json"))
        };
    }

    const MESSAGE: &str = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000";

    fn keys() -> TenantPseudonyms {
        Pseudonyms::new(b"0123456789abcdef0123456789abcdef").for_tenant("acme")
    }

    /// Maps an EventBridge sample for tenant `acme`, as of 2026-12-01 13:00.
    fn mapped(json: &str) -> crate::ingest::Mapped {
        let arrival = read_eventbridge(json.as_bytes()).unwrap();
        let tenant = tenant_of(&arrival.event, None, None).unwrap();
        assert_eq!(tenant, "acme");
        let p = keys();
        let limits = Limits::default();
        let source = Source {
            provider: Provider::Ses,
            tenant_id: "acme",
            pseudonyms: &p,
            now: Utc.with_ymd_and_hms(2026, 12, 1, 13, 0, 0).unwrap(),
            limits: &limits,
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        };
        map(&arrival.event, 0, &source)
    }

    fn one(json: &str) -> Event {
        let m = mapped(json);
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        assert_eq!(m.events.len(), 1, "{:?}", m.events);
        let e = m.events.into_iter().next().unwrap();
        // Every event: the tenant, campaign, message, hashed recipient, SES and email.
        assert_eq!(e.tenant_id, "acme");
        assert_eq!(e.campaign_id.as_deref(), Some("spring-sale"));
        assert_eq!(e.message_id.as_deref(), Some(MESSAGE));
        assert_eq!(
            e.recipient_id.as_deref(),
            Some(keys().recipient_id("recipient@example.com").as_str())
        );
        assert_eq!(e.provider.as_deref(), Some("ses"));
        assert_eq!(e.channel.as_deref(), Some("email"));
        assert!(e.event_id.starts_with("ses-"));
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("recipient@example.com"), "{text}");
        e
    }

    fn at(text: &str) -> chrono::DateTime<Utc> {
        parse_time(text).unwrap()
    }

    #[test]
    fn every_ses_event_type_maps_field_by_field() {
        let e = one(sample!("eventbridge-send"));
        assert_eq!(e.kind, EventType::Sent);
        assert_eq!(e.event_time, at("2026-12-01T10:00:00.012Z"));

        let e = one(sample!("eventbridge-delivery"));
        assert_eq!(e.kind, EventType::Delivered);
        assert_eq!(e.event_time, at("2026-12-01T10:00:01.500Z"));
        assert_eq!(e.duration_ms, Some(1488));

        let e = one(sample!("eventbridge-bounce"));
        assert_eq!(e.kind, EventType::Bounced);
        assert_eq!(e.bounce_type, Some(BounceType::Hard));
        assert_eq!(e.reason.as_deref(), Some("smtp; 550 5.1.1 user unknown"));
        assert_eq!(e.event_time, at("2026-12-01T10:00:02.669Z"));

        let e = one(sample!("eventbridge-complaint"));
        assert_eq!(e.kind, EventType::Complained);
        assert_eq!(e.reason.as_deref(), Some("abuse"));

        let e = one(sample!("eventbridge-reject"));
        assert_eq!(e.kind, EventType::Failed);
        assert_eq!(e.reason.as_deref(), Some("rejected: Bad content"));

        let e = one(sample!("eventbridge-rendering-failure"));
        assert_eq!(e.kind, EventType::Failed);
        assert_eq!(
            e.reason.as_deref(),
            Some("rendering failure of template MyTemplate: Attribute 'attributeName' is not present in the rendering data.")
        );

        let e = one(sample!("eventbridge-delivery-delay"));
        assert_eq!(e.kind, EventType::Delayed);
        assert_eq!(
            e.reason.as_deref(),
            Some("TransientCommunicationFailure: smtp; 421 4.4.1 Unable to connect to remote host")
        );

        let e = one(sample!("eventbridge-subscription"));
        assert_eq!(e.kind, EventType::Unsubscribed);
        assert_eq!(
            e.reason.as_deref(),
            Some("unsubscribed from ExampleTopicName in contact list SystemMonitor-Canary")
        );

        let e = one(sample!("eventbridge-open"));
        assert_eq!(e.kind, EventType::Opened);
        assert_eq!(e.event_time, at("2026-12-01T10:20:00.000Z"));
        assert_eq!(e.context.ip.as_deref(), Some("192.0.2.0"), "anonymized");
        assert_eq!(
            e.context.device_class,
            Some(crate::event::DeviceClass::Mobile)
        );

        let e = one(sample!("eventbridge-click"));
        assert_eq!(e.kind, EventType::Clicked);
        assert_eq!(
            e.link_url.as_deref(),
            Some("https://shop.example.com/spring?utm_source=mail")
        );
        assert_eq!(
            e.context.device_class,
            Some(crate::event::DeviceClass::Desktop)
        );
    }

    #[test]
    fn one_event_per_affected_recipient_with_transient_bounces_soft() {
        let m = mapped(sample!("eventbridge-bounce-transient"));
        assert!(m.skipped.is_empty());
        let p = keys();
        let got: Vec<_> = m
            .events
            .iter()
            .map(|e| {
                (
                    e.recipient_id.clone().unwrap(),
                    e.bounce_type,
                    e.reason.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    p.recipient_id("a@example.com"),
                    Some(BounceType::Soft),
                    Some("smtp; 452 4.2.2 mailbox full".into())
                ),
                (
                    p.recipient_id("b@example.org"),
                    Some(BounceType::Soft),
                    Some("4.4.7".into())
                ),
            ]
        );
        assert_ne!(m.events[0].event_id, m.events[1].event_id);
    }

    #[test]
    fn sns_envelopes_and_plain_notifications_read_like_eventbridge() {
        let arrivals = read(sample!("sns-bounce").as_bytes()).unwrap();
        assert_eq!(arrivals.len(), 1);
        assert_eq!(
            arrivals[0].delivery_id,
            "95df01b4-ee98-5cb9-9903-4c221d41eb5e"
        );
        let via_eb = read(sample!("eventbridge-bounce").as_bytes()).unwrap();
        // The same SES event by either path gets the same id: it counts once.
        let p = keys();
        let limits = Limits::default();
        let source = Source {
            provider: Provider::Ses,
            tenant_id: "acme",
            pseudonyms: &p,
            now: Utc.with_ymd_and_hms(2026, 12, 1, 13, 0, 0).unwrap(),
            limits: &limits,
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        };
        let a = map(&arrivals[0].event, 0, &source).events;
        let b = map(&via_eb[0].event, 0, &source).events;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event_id, b[0].event_id);
        assert_eq!(
            a,
            b.iter().map(|e| Event { ..e.clone() }).collect::<Vec<_>>()
        );

        let plain = read(sample!("sns-notification-delivery").as_bytes()).unwrap();
        assert_eq!(plain[0].event.event_type, "Delivery");
        assert_eq!(plain[0].event.tag(TENANT_TAG), None);
        assert_eq!(plain[0].event.configuration_set(), None);
        assert_eq!(
            tenant_of(&plain[0].event, None, Some("acme")).unwrap(),
            "acme"
        );
        assert!(tenant_of(&plain[0].event, None, None)
            .unwrap_err()
            .contains("no tenant"));
        let m = map(&plain[0].event, 0, &source);
        assert_eq!(m.events[0].kind, EventType::Delivered);
        assert_eq!(m.events[0].campaign_id, None);
    }

    #[test]
    fn tenants_come_from_tags_or_configuration_sets_and_never_both_ways() {
        let ev = read_eventbridge(sample!("eventbridge-send").as_bytes())
            .unwrap()
            .event;
        assert_eq!(ev.configuration_set(), Some("beacon-events"));
        assert_eq!(tenant_of(&ev, Some("acme"), None).unwrap(), "acme");
        let err = tenant_of(&ev, Some("globex"), None).unwrap_err();
        assert!(err.contains("disagrees"), "{err}");
        let mut untagged = ev.clone();
        untagged.mail.tags.tenant.clear();
        assert_eq!(
            tenant_of(&untagged, Some("globex"), None).unwrap(),
            "globex"
        );
    }

    #[test]
    fn recipient_tags_open_attribution_and_opt_ins() {
        let mut ev = read_eventbridge(sample!("eventbridge-open").as_bytes())
            .unwrap()
            .event;
        ev.mail.tags.recipient = vec!["customer-42".into()];
        let d = drafts(&ev, 3);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, 3);
        assert_eq!(
            d[0].2.as_ref().unwrap().recipient,
            Some(Who::Id("customer-42".into()))
        );
        // Several destinations: a tagged id can't be everyone's, and an open can't be
        // attributed.
        ev.mail.destination = vec!["a@example.com".into(), "b@example.com".into()];
        let d = drafts(&ev, 0);
        assert!(d[0].2.as_ref().unwrap_err().contains("2 recipients"));

        let mut sub = read_eventbridge(sample!("eventbridge-subscription").as_bytes())
            .unwrap()
            .event;
        let prefs = sub
            .subscription
            .as_mut()
            .unwrap()
            .new_topic_preferences
            .as_mut()
            .unwrap();
        prefs.unsubscribe_all = false;
        prefs.topics[0].subscription_status = Some("OptIn".into());
        assert!(drafts(&sub, 0)[0]
            .2
            .as_ref()
            .unwrap_err()
            .contains("opts in"));
    }

    #[test]
    fn what_is_not_ses_is_refused() {
        let wrong_source = sample!("eventbridge-send").replace("\"aws.ses\"", "\"aws.ec2\"");
        assert!(read(wrong_source.as_bytes())
            .unwrap_err()
            .contains("aws.ec2"));
        assert!(read(b"[1,2]").is_err());
        let unknown = sample!("eventbridge-send").replace("\"Send\"", "\"Teleport\"");
        let ev = read(unknown.as_bytes()).unwrap();
        assert!(drafts(&ev[0].event, 0)[0]
            .2
            .as_ref()
            .unwrap_err()
            .contains("Teleport"));
    }
}
