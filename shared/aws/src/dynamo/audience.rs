//! The suppression list and engagement marks in the rollups table
//! ([`beacon_domain::audience::reader::AudienceReader`]).

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::audience::engagement::{self, Changes};
use beacon_domain::audience::reader::{
    encode_cursor, parse_cursor, AudienceError, AudienceReader, Marks, Page, MAX_QUERIES_PER_PAGE,
};
use beacon_domain::audience::suppression::{Entry, Reason, Suppression};
use beacon_domain::stats::rfc3339;
use std::collections::{BTreeSet, HashMap};

/// The DynamoDB adapter.
#[derive(Debug, Clone)]
pub struct DynamoAudience {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn unavailable<E: std::error::Error + 'static>(what: &'static str) -> impl Fn(E) -> AudienceError {
    move |e| AudienceError(format!("{what}: {}", DisplayErrorContext(&e)))
}

/// One UpdateItem: key, expression, attribute names and values.
type Update = (
    HashMap<String, AttributeValue>,
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
);

/// Marks one update sets or removes at most (its expression stays well under 4 KB).
const MARKS_PER_UPDATE: usize = 100;

/// Requests in flight at once when writing a run's recipients.
const WRITE_CONCURRENCY: usize = 16;

impl DynamoAudience {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoAudience {
            client,
            table: table.into(),
        }
    }

    /// Writes suppressions and mark changes, one UpdateItem per recipient, several at a
    /// time. Every update is idempotent: `if_not_exists` for first times, SET/REMOVE
    /// of marks.
    pub async fn write(
        &self,
        suppressions: &[Suppression],
        changes: &Changes,
    ) -> Result<(), AudienceError> {
        let mut updates: Vec<Update> = Vec::new();
        for sup in suppressions {
            let at =
                rfc3339(chrono::DateTime::from_timestamp_millis(sup.at_ms).unwrap_or_default());
            let mut values = HashMap::from([(":at".to_string(), s(&at))]);
            let mut expression =
                "SET #since = if_not_exists(#since, :at), #reason = if_not_exists(#reason, :at)"
                    .to_string();
            if let Some(c) = &sup.campaign {
                values.insert(":c".into(), s(c));
                expression.push_str(", #campaign = if_not_exists(#campaign, :c)");
            }
            let names = HashMap::from([
                ("#since".to_string(), "since".to_string()),
                ("#reason".to_string(), sup.reason.as_str().to_string()),
                ("#campaign".to_string(), "campaign".to_string()),
            ]);
            let names = names
                .into_iter()
                .filter(|(k, _)| expression.contains(k.as_str()))
                .collect();
            updates.push((
                key(
                    beacon_domain::rollup::keys::suppression_partition(&sup.tenant, &sup.channel),
                    &sup.recipient,
                ),
                expression,
                names,
                values,
            ));
        }
        for ((tenant, recipient), whole) in &changes.0 {
            let pieces = whole.by_page().into_iter().flat_map(|(page, change)| {
                let sort_key = beacon_domain::rollup::keys::marks_sort_key(recipient, page);
                change
                    .pieces(MARKS_PER_UPDATE)
                    .into_iter()
                    .map(move |piece| (sort_key.clone(), piece))
            });
            for (sort_key, change) in pieces {
                let mut names = HashMap::new();
                let mut values = HashMap::new();
                let mut sets = Vec::new();
                let mut removes = Vec::new();
                for (i, (mark, day)) in change.set.iter().enumerate() {
                    names.insert(format!("#s{i}"), mark.clone());
                    values.insert(format!(":s{i}"), AttributeValue::N(day.to_string()));
                    sets.push(format!("#s{i} = :s{i}"));
                }
                for (i, mark) in change.remove.iter().enumerate() {
                    names.insert(format!("#r{i}"), mark.clone());
                    removes.push(format!("#r{i}"));
                }
                let mut expression = String::new();
                if !sets.is_empty() {
                    expression.push_str(&format!("SET {}", sets.join(", ")));
                }
                if !removes.is_empty() {
                    expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
                }
                updates.push((
                    key(
                        beacon_domain::rollup::keys::marks_partition(tenant),
                        &sort_key,
                    ),
                    expression.trim().to_string(),
                    names,
                    values,
                ));
            }
        }
        // One item's updates go one after another, different items' side by side: an
        // item's pieces never race each other (the emulator loses one of two concurrent
        // updates of an item; DynamoDB would only make them contend).
        let mut by_item: Vec<Vec<Update>> = Vec::new();
        for update in updates {
            match by_item.last_mut() {
                Some(item) if item[0].0 == update.0 => item.push(update),
                _ => by_item.push(vec![update]),
            }
        }
        let mut pending = by_item.into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < WRITE_CONCURRENCY {
                let Some(item) = pending.next() else {
                    break;
                };
                let (client, table) = (self.client.clone(), self.table.clone());
                running.spawn(async move {
                    for (key, expression, names, values) in item {
                        let sent = client
                            .update_item()
                            .table_name(&table)
                            .set_key(Some(key))
                            .update_expression(expression)
                            .set_expression_attribute_names(Some(names))
                            .set_expression_attribute_values((!values.is_empty()).then_some(values))
                            .send()
                            .await;
                        match sent {
                            Ok(_) => {}
                            // One page of a recipient's marks holds about 17,000 marks
                            // before DynamoDB refuses it as too large (see
                            // beacon_domain::audience::engagement). Past that, its new marks are dropped
                            // (and counted) rather than failing the run: the events
                            // themselves still count everywhere else, for this tenant
                            // and every other.
                            Err(e) if crate::dynamo::is_permanent(&e) => {
                                tracing::warn!(
                                    error = %DisplayErrorContext(&e),
                                    "an engagement or suppression update was refused as sent: dropped"
                                );
                                beacon_domain::metrics::count("AudienceWritesRefused", 1, &[]);
                            }
                            Err(e) => {
                                return Err(unavailable("writing a suppression or engagement mark")(e))
                            }
                        }
                    }
                    Ok(())
                });
            }
            let Some(done) = running.join_next().await else {
                return Ok(());
            };
            done.map_err(|e| AudienceError(format!("writing the audience: {e}")))??;
        }
    }

    /// Takes a recipient off a channel's list; whether they were on it.
    pub async fn unsuppress(
        &self,
        tenant: &str,
        channel: &str,
        recipient: &str,
    ) -> Result<bool, AudienceError> {
        crate::dynamo::delete_existing(
            &self.client,
            &self.table,
            beacon_domain::rollup::keys::suppression_partition(tenant, channel),
            recipient,
        )
        .await
        .map_err(unavailable("removing a suppression"))
    }

    /// Adds a recipient's marks on `pages` to `marks`, in one BatchGetItem (16 items of
    /// at most 400 KB are under the 16 MB it returns).
    async fn add_pages(
        &self,
        tenant: &str,
        recipient: &str,
        pages: std::ops::Range<u32>,
        marks: &mut Marks,
    ) -> Result<(), AudienceError> {
        if pages.is_empty() {
            return Ok(());
        }
        let pk = beacon_domain::rollup::keys::marks_partition(tenant);
        let keys = pages
            .map(|page| {
                key(
                    pk.clone(),
                    &beacon_domain::rollup::keys::marks_sort_key(recipient, page),
                )
            })
            .collect();
        let items = crate::dynamo::batch_get(&self.client, &self.table, keys, false)
            .await
            .map_err(unavailable("reading engagement"))?;
        for item in &items {
            if let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) {
                let page = beacon_domain::rollup::keys::split_marks_sort_key(sk).1;
                engagement::merge_page(marks, page, marks_of(item));
            }
        }
        Ok(())
    }

    async fn query_page(
        &self,
        pk: String,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, Option<String>), AudienceError> {
        let start = cursor
            .map(|c| parse_cursor(c).map(|last| key(pk.clone(), &last)))
            .transpose()?;
        let mut items = Vec::new();
        let mut start = start;
        // DynamoDB's Limit counts items read, and a page stops at 1 MB: ask again until
        // the page is full or the partition ends, but at most MAX_QUERIES_PER_PAGE
        // times (a page of big items comes back short, with its cursor).
        for _ in 0..MAX_QUERIES_PER_PAGE {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&pk))
                .set_exclusive_start_key(start.take())
                .limit((limit - items.len()) as i32)
                .send()
                .await
                .map_err(unavailable("reading the audience"))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && items.len() < limit => start = Some(k),
                Some(k) if !k.is_empty() => return Ok((items, cursor_of(&k))),
                _ => return Ok((items, None)),
            }
        }
        Ok((items, start.as_ref().and_then(cursor_of)))
    }
}

/// The cursor of a `LastEvaluatedKey`.
fn cursor_of(key: &HashMap<String, AttributeValue>) -> Option<String> {
    let last = key.get("sk").and_then(|v| v.as_s().ok())?;
    Some(encode_cursor(last))
}

fn entry_of(item: &HashMap<String, AttributeValue>, channel: &str) -> Option<Entry> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some(Entry {
        recipient: text("sk")?,
        channel: channel.to_string(),
        since: text("since").unwrap_or_default(),
        reasons: Reason::ALL
            .into_iter()
            .filter_map(|r| Some((r, text(r.as_str())?)))
            .collect(),
        campaign: text("campaign"),
    })
}

fn marks_of(item: &HashMap<String, AttributeValue>) -> Marks {
    item.iter()
        .filter(|(name, _)| engagement::Action::of_mark(name).is_some())
        .filter_map(|(name, v)| Some((name.clone(), v.as_n().ok()?.parse().ok()?)))
        .collect()
}

impl AudienceReader for DynamoAudience {
    async fn suppressed(
        &self,
        tenant: &str,
        channel: &str,
        recipients: &[String],
    ) -> Result<HashMap<String, Entry>, AudienceError> {
        let pk = beacon_domain::rollup::keys::suppression_partition(tenant, channel);
        // BatchGetItem refuses a key twice, and takes 100 keys a call.
        let unique: BTreeSet<&String> = recipients.iter().collect();
        let unique: Vec<&String> = unique.into_iter().collect();
        let mut found = HashMap::new();
        for chunk in unique.chunks(100) {
            let keys = chunk.iter().map(|r| key(pk.clone(), r)).collect();
            for item in crate::dynamo::batch_get(&self.client, &self.table, keys, false)
                .await
                .map_err(unavailable("checking the suppression list"))?
            {
                if let Some(e) = entry_of(&item, channel) {
                    found.insert(e.recipient.clone(), e);
                }
            }
        }
        Ok(found)
    }

    async fn suppression_page(
        &self,
        tenant: &str,
        channel: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Entry>, AudienceError> {
        let (items, next) = self
            .query_page(
                beacon_domain::rollup::keys::suppression_partition(tenant, channel),
                cursor,
                limit,
            )
            .await?;
        Ok(Page {
            items: items.iter().filter_map(|i| entry_of(i, channel)).collect(),
            next,
        })
    }

    async fn marks(&self, tenant: &str, recipient: &str) -> Result<Marks, AudienceError> {
        let mut marks = Marks::new();
        self.add_pages(tenant, recipient, 0..engagement::MARK_PAGES, &mut marks)
            .await?;
        Ok(marks)
    }

    async fn marks_page(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, Marks)>, AudienceError> {
        let pk = beacon_domain::rollup::keys::marks_partition(tenant);
        let mut after = cursor
            .map(parse_cursor)
            .transpose()?
            .map(|last| beacon_domain::rollup::keys::past_recipient(&last));
        let mut recipients: Vec<(String, Marks)> = Vec::new();
        // The last page read of the last recipient (pages come in order: page 0, then
        // `\u{1}1` to `\u{1}f`).
        let mut last_page = 0;
        let mut more = false;
        // As `query_page`: at most MAX_QUERIES_PER_PAGE Queries, each asking for as many
        // items as recipients are still wanted (a recipient has one item or more).
        for _ in 0..MAX_QUERIES_PER_PAGE {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(&pk))
                .limit((limit + 1 - recipients.len()).max(1) as i32);
            query = match &after {
                Some(after) => query
                    .key_condition_expression("pk = :pk AND sk > :after")
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let out = query
                .send()
                .await
                .map_err(unavailable("reading the audience"))?;
            for item in out.items() {
                let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                let (recipient, page) = beacon_domain::rollup::keys::split_marks_sort_key(sk);
                if recipients.last().is_none_or(|(r, _)| r != recipient) {
                    recipients.push((recipient.to_string(), Marks::new()));
                }
                let (_, marks) = recipients.last_mut().expect("just pushed");
                engagement::merge_page(marks, page, marks_of(item));
                last_page = page;
                after = Some(sk.clone());
            }
            more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
            if !more || recipients.len() > limit {
                break;
            }
        }
        if recipients.len() > limit {
            // One recipient more than asked, read to learn the page was full: the next
            // page starts with it.
            recipients.truncate(limit);
            more = true;
        } else if more {
            // The last recipient's pages may go on past what was read: read the rest of
            // them at once, so no recipient is ever split between two pages.
            if let Some((recipient, marks)) = recipients.last_mut() {
                self.add_pages(
                    tenant,
                    recipient,
                    last_page + 1..engagement::MARK_PAGES,
                    marks,
                )
                .await?;
            }
        }
        let next = recipients
            .last()
            .filter(|_| more)
            .map(|(r, _)| encode_cursor(r));
        Ok(Page {
            items: recipients,
            next,
        })
    }
}
