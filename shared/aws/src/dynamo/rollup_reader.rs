//! Reading the rollups table in DynamoDB ([`beacon_domain::rollup::reader::RollupReader`]):
//! Query with pagination (never Scan), eventually consistent reads, projections, and the
//! month packs of day items.

use crate::dynamo::audience::DynamoAudience;
use crate::dynamo::trails::{counted_trail, staged_by, Item};
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::audience::reader::AudienceError;
use beacon_domain::rollup::month_pack::{self, Pack};
use beacon_domain::rollup::reader::*;
use beacon_domain::rollup::Counters;
use beacon_domain::verdict::trail::Trail;
use chrono::NaiveDate;
use std::collections::{BTreeSet, HashMap};

/// A DynamoDB Number as an integer (the writer only adds integers).
fn number(n: &str) -> Option<i64> {
    n.parse::<i64>()
        .ok()
        .or_else(|| n.parse::<f64>().ok().map(|f| f.round() as i64))
}

fn item_counters(item: &HashMap<String, AttributeValue>) -> Counters {
    counters_from_attributes(
        item.iter().filter_map(|(k, v)| match v {
            AttributeValue::N(n) => number(n).map(|n| (k.as_str(), n)),
            _ => None,
        }),
        item.iter().filter_map(|(k, v)| match v {
            AttributeValue::S(s) => Some((k.as_str(), s.as_str())),
            _ => None,
        }),
    )
}

/// The DynamoDB adapter: Query with pagination, eventually consistent reads.
#[derive(Debug, Clone)]
pub struct DynamoRollupReader {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The suppression list and engagement marks, in the same table.
    audience: DynamoAudience,
}

impl DynamoRollupReader {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        let table = table.into();
        DynamoRollupReader {
            audience: DynamoAudience::new(client.clone(), table.clone()),
            client,
            table,
        }
    }

    /// Every item of a Query, following `LastEvaluatedKey`.
    async fn query_all(
        &self,
        what: &str,
        condition: &str,
        values: &[(&str, &str)],
        projection: &[&str],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ReadError> {
        self.query_all_read(what, condition, values, projection, false)
            .await
    }

    /// [`Self::query_all`], strongly consistent if asked.
    async fn query_all_read(
        &self,
        what: &str,
        condition: &str,
        values: &[(&str, &str)],
        projection: &[&str],
        consistent: bool,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ReadError> {
        let read = QueryShape {
            consistent,
            ..QueryShape::default()
        };
        let (items, _) = self
            .query(what, condition, values, projection, read)
            .await?;
        Ok(items)
    }

    /// The items of a Query in the order `read` asks for, following `LastEvaluatedKey`
    /// until `read.limit` items (or for one page only, with `read.one_page`); and
    /// whether the partition may hold more.
    async fn query(
        &self,
        what: &str,
        condition: &str,
        values: &[(&str, &str)],
        projection: &[&str],
        read: QueryShape,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, bool), ReadError> {
        let mut items = Vec::new();
        let mut start = read.start;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .consistent_read(read.consistent)
                .scan_index_forward(!read.newest_first)
                .set_limit(
                    read.limit
                        .map(|l| i32::try_from(l - items.len()).unwrap_or(i32::MAX)),
                )
                .expression_attribute_names("#pk", "pk")
                .set_exclusive_start_key(start.take());
            if condition.contains("#sk") {
                query = query.expression_attribute_names("#sk", "sk");
            }
            for (name, value) in values {
                query =
                    query.expression_attribute_values(*name, AttributeValue::S(value.to_string()));
            }
            if !projection.is_empty() {
                let (expression, names) = projected(projection);
                for (placeholder, name) in names {
                    query = query.expression_attribute_names(placeholder, name);
                }
                query = query.projection_expression(expression);
            }
            let page = query.send().await.map_err(read_error(what))?;
            items.extend(page.items.unwrap_or_default());
            let full = read.limit.is_some_and(|l| items.len() >= l);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() && !full && !read.one_page => start = Some(key),
                Some(key) if !key.is_empty() => return Ok((items, true)),
                _ => return Ok((items, false)),
            }
        }
    }
}

impl DynamoRollupReader {
    /// The link items of a campaign partition's periods `from_sk..=to_sk` (at most
    /// [`MAX_LINK_ITEMS`]); nothing for other partitions or narrower fields.
    async fn link_items(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ReadError> {
        let (Fields::All, Some(link_pk)) = (fields, beacon_domain::rollup::link_partition_of(pk))
        else {
            return Ok(Vec::new());
        };
        let (from, to) = link_sort_key_range(from_sk, to_sk);
        let read = QueryShape {
            limit: Some(MAX_LINK_ITEMS),
            ..QueryShape::default()
        };
        let values = [(":pk", link_pk.as_str()), (":from", &from), (":to", &to)];
        let (items, _) = self
            .query(
                "reading link items",
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &values,
                &[],
                read,
            )
            .await?;
        Ok(items)
    }
}

/// A stored link item as [`merge_link_items`] takes it.
fn link_item(item: &HashMap<String, AttributeValue>) -> Option<LinkItem<'_>> {
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| number(n))
            .unwrap_or(0)
    };
    Some(LinkItem {
        sk: item.get("sk")?.as_s().ok()?,
        human: number("human"),
        bot: number("bot"),
        url: item
            .get("url")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
    })
}

/// How [`DynamoRollupReader::query`] reads: by default every item, oldest (smallest
/// sort key) first, eventually consistent.
#[derive(Debug, Clone, Default)]
struct QueryShape {
    consistent: bool,
    newest_first: bool,
    limit: Option<usize>,
    one_page: bool,
    /// The key to start after.
    start: Option<HashMap<String, AttributeValue>>,
}

/// A projection expression of `names` through placeholders (`sk` and the counter names
/// are fine, but reserved words would not be), and the placeholders' names.
fn projected(names: &[&str]) -> (String, HashMap<String, String>) {
    let placeholders: Vec<String> = (0..names.len()).map(|i| format!("#p{i}")).collect();
    let expression = placeholders.join(", ");
    let names = placeholders
        .into_iter()
        .zip(names.iter().map(|n| n.to_string()))
        .collect();
    (expression, names)
}

/// The sort key and the scalar counters: what a series reads of a rollup item.
fn scalar_projection() -> Vec<&'static str> {
    std::iter::once("sk")
        .chain(Counters::SCALAR_FIELDS)
        .collect()
}

/// The attributes a read of `fields` asks for (none: every attribute).
fn projection_of(fields: Fields) -> Vec<String> {
    match fields {
        Fields::All => Vec::new(),
        Fields::Scalars => scalar_projection().into_iter().map(String::from).collect(),
        Fields::Counts => scalar_projection()
            .into_iter()
            .map(String::from)
            .chain(
                (0..beacon_domain::rollup::LATENCY_BOUNDS_MS.len())
                    .map(|b| format!("{LATENCY_PREFIX}{b}")),
            )
            .chain(beacon_domain::rollup::counters::reason_fields_all())
            .collect(),
    }
}

fn rollup_items(items: &[HashMap<String, AttributeValue>]) -> Vec<RollupItem> {
    items
        .iter()
        .filter_map(|item| {
            Some(RollupItem {
                sk: crate::dynamo::string_attribute(item, "sk")?,
                counters: item_counters(item),
            })
        })
        .collect()
}

fn read_error<E: std::error::Error + 'static>(what: &str) -> impl FnOnce(E) -> ReadError + '_ {
    move |e| {
        ReadError(format!(
            "{what}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
        ))
    }
}

/// A month pack from its item (a missing item is a pack never written at generation 0).
fn pack_from_item(item: Option<&HashMap<String, AttributeValue>>) -> Result<Pack, ReadError> {
    let Some(item) = item else {
        return Ok(Pack::default());
    };
    let int = |name| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| number(n))
    };
    Ok(Pack {
        gen: int("gen").unwrap_or(0),
        packed_gen: int("packed_gen"),
        through: crate::dynamo::string_attribute(item, "through").and_then(|t| t.parse().ok()),
        days: match item.get("days").and_then(|v| v.as_s().ok()) {
            Some(text) => Pack::decode_days(text).map_err(|e| ReadError(e.0))?,
            None => Vec::new(),
        },
    })
}

impl DynamoRollupReader {
    /// A daily series of scalar counters: closed days from month packs (packed here when
    /// missing or stale), open days by key. One BatchGetItem when the packs are fresh.
    async fn daily_scalars(
        &self,
        pk: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RollupItem>, ReadError> {
        let plan = month_pack::plan(from, to, chrono::Utc::now());
        let key = |sk: String| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.to_string())),
                ("sk".to_string(), AttributeValue::S(sk)),
            ])
        };
        let keys: Vec<_> = plan
            .months
            .iter()
            .map(|(m, _, _)| key(beacon_domain::rollup::keys::pack_sort_key(m)))
            .chain(
                plan.open
                    .iter()
                    .map(|d| key(beacon_domain::rollup::keys::day_sort_key(*d))),
            )
            .collect();
        // Packs' attributes and days' counters: one request reads both kinds of item.
        let mut wanted = scalar_projection();
        wanted.extend(["gen", "packed_gen", "through", "days"]);
        let (projection, names) = projected(&wanted);
        let mut found: HashMap<String, HashMap<String, AttributeValue>> = HashMap::new();
        for chunk in keys.chunks(100) {
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .projection_expression(&projection)
                .set_expression_attribute_names(Some(names.clone()))
                .build()
                .expect("keys are set");
            let items = crate::dynamo::batch_get_request(&self.client, &self.table, request)
                .await
                .map_err(read_error("reading a daily series"))?;
            for item in items {
                if let Some(sk) = crate::dynamo::string_attribute(&item, "sk") {
                    found.insert(sk, item);
                }
            }
        }
        let (from_sk, to_sk) = (
            beacon_domain::rollup::keys::day_sort_key(from),
            beacon_domain::rollup::keys::day_sort_key(to),
        );
        let mut out = Vec::new();
        // Months whose pack is missing or stale: their days, read at once.
        let mut stale = Vec::new();
        for (month, first, needed) in &plan.months {
            let pack =
                pack_from_item(found.get(&beacon_domain::rollup::keys::pack_sort_key(month)))?;
            if pack.covers(*needed) {
                out.extend(
                    pack.days
                        .into_iter()
                        .map(|(sk, counters)| RollupItem { sk, counters }),
                );
            } else {
                stale.push((month, *first, *needed, pack.gen));
            }
        }
        let read = futures_util::future::try_join_all(
            stale
                .iter()
                .map(|(_, first, needed, _)| self.closed_days(pk, *first, *needed)),
        )
        .await?;
        // Packs are stored once the range is known to hold data: an empty month is
        // packed (empty) only then, so reading what does not exist writes nothing.
        let has_data = !out.is_empty()
            || read.iter().any(|days| !days.is_empty())
            || plan
                .open
                .iter()
                .any(|d| found.contains_key(&beacon_domain::rollup::keys::day_sort_key(*d)));
        let stores = stale
            .iter()
            .zip(&read)
            .filter(|_| has_data)
            .map(|((month, _, needed, gen), days)| self.store_pack(pk, month, *needed, *gen, days));
        futures_util::future::join_all(stores).await;
        for days in read {
            out.extend(
                days.into_iter()
                    .map(|(sk, counters)| RollupItem { sk, counters }),
            );
        }
        out.retain(|i| from_sk <= i.sk && i.sk <= to_sk);
        for day in &plan.open {
            if let Some(item) = found.get(&beacon_domain::rollup::keys::day_sort_key(*day)) {
                out.push(RollupItem {
                    sk: beacon_domain::rollup::keys::day_sort_key(*day),
                    counters: item_counters(item),
                });
            }
        }
        out.sort_by(|a, b| a.sk.cmp(&b.sk));
        Ok(out)
    }

    /// A month's closed days `first..=through`, strongly consistent (after its pack's
    /// `gen` was read).
    async fn closed_days(
        &self,
        pk: &str,
        first: NaiveDate,
        through: NaiveDate,
    ) -> Result<Vec<(String, Counters)>, ReadError> {
        let scalars = scalar_projection();
        let (from_sk, to_sk) = (
            beacon_domain::rollup::keys::day_sort_key(first),
            beacon_domain::rollup::keys::day_sort_key(through),
        );
        let items = self
            .query_all_read(
                "reading days to pack",
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &[(":pk", pk), (":from", &from_sk), (":to", &to_sk)],
                &scalars,
                true,
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                Some((
                    crate::dynamo::string_attribute(item, "sk")?,
                    item_counters(item),
                ))
            })
            .collect())
    }

    /// Stores a month's days (maybe none) as its pack, unless a closed day changed since
    /// `gen` was read (`gen` moved on). The days read are right either way; a pack not
    /// stored is packed next time.
    async fn store_pack(
        &self,
        pk: &str,
        month: &str,
        through: NaiveDate,
        gen: i64,
        days: &[(String, Counters)],
    ) {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .key(
                "sk",
                AttributeValue::S(beacon_domain::rollup::keys::pack_sort_key(month)),
            )
            .update_expression("SET #days = :days, #through = :through, packed_gen = :gen")
            .expression_attribute_names("#days", "days")
            .expression_attribute_names("#through", "through")
            .expression_attribute_values(":days", AttributeValue::S(Pack::encode_days(days)))
            .expression_attribute_values(
                ":through",
                AttributeValue::S(through.format("%Y-%m-%d").to_string()),
            )
            .expression_attribute_values(":gen", AttributeValue::N(gen.to_string()));
        let update = crate::dynamo::only_at_version(update, "gen", gen);
        if let Err(e) = update.send().await {
            let moved_on = e
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception());
            if !moved_on {
                tracing::warn!(
                    pk,
                    month,
                    error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                    "storing a month pack failed"
                );
            }
        }
    }
}

impl RollupReader for DynamoRollupReader {
    async fn rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
    ) -> Result<Vec<RollupItem>, ReadError> {
        // A daily series of a stats-sized range reads packs; anything wider (every day
        // there can be) is one Query.
        if let Some((from, to)) = packed_days(from_sk, to_sk, fields) {
            return self.daily_scalars(pk, from, to).await;
        }
        let projection = projection_of(fields);
        let projection: Vec<&str> = projection.iter().map(String::as_str).collect();
        let values = [(":pk", pk), (":from", from_sk), (":to", to_sk)];
        let (items, links) = tokio::join!(
            self.query_all(
                "reading rollups",
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &values,
                &projection,
            ),
            self.link_items(pk, from_sk, to_sk, fields),
        );
        let mut out = rollup_items(&items?);
        merge_link_items(&mut out, links?.iter().filter_map(link_item));
        Ok(out)
    }

    async fn latest_rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
        limit: usize,
    ) -> Result<Vec<RollupItem>, ReadError> {
        // DynamoDB refuses a BETWEEN whose bounds are the wrong way round.
        if from_sk > to_sk || limit == 0 {
            return Ok(Vec::new());
        }
        let projection = projection_of(fields);
        let projection: Vec<&str> = projection.iter().map(String::as_str).collect();
        let read = QueryShape {
            newest_first: true,
            limit: Some(limit),
            ..QueryShape::default()
        };
        let (items, _) = self
            .query(
                "reading the latest rollups",
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &[(":pk", pk), (":from", from_sk), (":to", to_sk)],
                &projection,
                read,
            )
            .await?;
        let mut out = rollup_items(&items);
        // The links of the periods read (newest first: the last is the oldest).
        if let Some(oldest) = out.last().map(|i| i.sk.clone()) {
            let links = self.link_items(pk, &oldest, to_sk, fields).await?;
            let periods: BTreeSet<String> = out.iter().map(|i| i.sk.clone()).collect();
            merge_link_items(
                &mut out,
                links.iter().filter_map(link_item).filter(|l| {
                    beacon_domain::rollup::split_link_sort_key(l.sk)
                        .is_some_and(|(period, _)| periods.contains(period))
                }),
            );
            out.reverse();
        }
        Ok(out)
    }

    /// By key, not by Query: page 0 of every bucket, then the next page of each bucket
    /// whose page was there (a bucket's pages are contiguous from 0: an add goes to the
    /// next page only when the one before is full, and a removal never deletes a page).
    async fn unique_members(&self, pk: &str) -> Result<Vec<String>, ReadError> {
        let mut members = Vec::new();
        let mut buckets: Vec<u32> = (0..beacon_domain::rollup::Aggregate::UNIQUE_BUCKETS).collect();
        let mut page = 0;
        while !buckets.is_empty() {
            let keys: Vec<HashMap<String, AttributeValue>> = buckets
                .iter()
                .map(|b| {
                    HashMap::from([
                        ("pk".to_string(), AttributeValue::S(pk.to_string())),
                        (
                            "sk".to_string(),
                            AttributeValue::S(beacon_domain::rollup::bucket_page_sort_key(
                                *b, page,
                            )),
                        ),
                    ])
                })
                .collect();
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("sk, m")
                .build()
                .expect("keys are set");
            let items = crate::dynamo::batch_get_request(&self.client, &self.table, request)
                .await
                .map_err(read_error("reading a unique set"))?;
            buckets.clear();
            for mut item in items {
                let bucket = crate::dynamo::string_attribute(&item, "sk")
                    .and_then(|sk| sk.get(2..4)?.parse::<u32>().ok());
                buckets.extend(bucket);
                if let Some(AttributeValue::Ss(m)) = item.remove("m") {
                    members.extend(m);
                }
            }
            page += 1;
        }
        Ok(members)
    }

    async fn directory(&self, pk: &str, sk_prefix: &str) -> Result<Vec<DirectoryItem>, ReadError> {
        let items = if sk_prefix.is_empty() {
            self.query_all("reading the directory", "#pk = :pk", &[(":pk", pk)], &[])
                .await?
        } else {
            self.query_all(
                "reading the directory",
                "#pk = :pk AND begins_with(#sk, :prefix)",
                &[(":pk", pk), (":prefix", sk_prefix)],
                &[],
            )
            .await?
        };
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(DirectoryItem {
                    sk: crate::dynamo::string_attribute(item, "sk")?,
                    last_seen: crate::dynamo::string_attribute(item, "last_seen"),
                })
            })
            .collect())
    }

    async fn directory_page(
        &self,
        pk: &str,
        sk_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DirectoryPage, ReadError> {
        let limit = limit.clamp(1, MAX_DIRECTORY_PAGE);
        // One more than asked for tells whether more follow (a page the 1 MB limit cut
        // short says so by its LastEvaluatedKey).
        let read = QueryShape {
            limit: Some(limit + 1),
            one_page: true,
            ..QueryShape::default()
        };
        // DynamoDB starts after any key given, whether or not an item has it.
        let start = after.map(|sk| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.to_string())),
                ("sk".to_string(), AttributeValue::S(sk.to_string())),
            ])
        });
        let (items, more) = self
            .query(
                "reading the directory",
                "#pk = :pk AND begins_with(#sk, :prefix)",
                &[(":pk", pk), (":prefix", sk_prefix)],
                &[],
                QueryShape { start, ..read },
            )
            .await?;
        let mut items: Vec<DirectoryItem> = items
            .iter()
            .filter_map(|item| {
                Some(DirectoryItem {
                    sk: crate::dynamo::string_attribute(item, "sk")?,
                    last_seen: crate::dynamo::string_attribute(item, "last_seen"),
                })
            })
            .collect();
        let more = more || items.len() > limit;
        items.truncate(limit);
        Ok(DirectoryPage { items, more })
    }

    async fn recent_trails(
        &self,
        tenant: &str,
        recipient: &str,
        limit: usize,
    ) -> Result<Vec<(String, Trail)>, ReadError> {
        use beacon_domain::rollup::{
            checkpoint_key, recipient_index_key, trail_message, RECIPIENT_INDEX,
            RECIPIENT_INDEX_KEY, TRAIL_SORT_KEY,
        };
        let s = |v: String| AttributeValue::S(v);
        let text = |item: &Item, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        // The index (keys only), newest first hit first.
        let found = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(RECIPIENT_INDEX)
            .key_condition_expression("#rcp = :rcp")
            .expression_attribute_names("#rcp", RECIPIENT_INDEX_KEY)
            .expression_attribute_values(":rcp", s(recipient_index_key(tenant, recipient)))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 100) as i32)
            .send()
            .await
            .map_err(read_error("reading the recipient index"))?;
        let pks: Vec<String> = found
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| text(i, "pk"))
            .filter(|pk| trail_message(pk, tenant).is_some())
            .collect();
        if pks.is_empty() {
            return Ok(Vec::new());
        }
        let keys = pks
            .iter()
            .map(|pk| {
                HashMap::from([
                    ("pk".to_string(), s(pk.clone())),
                    ("sk".into(), s(TRAIL_SORT_KEY.into())),
                ])
            })
            .collect();
        let mut trails: HashMap<String, Item> =
            crate::dynamo::batch_get(&self.client, &self.table, keys, false)
                .await
                .map_err(read_error("reading trails"))?
                .into_iter()
                .filter_map(|item| Some((text(&item, "pk")?, item)))
                .collect();
        // The checkpoints of the shards whose runs staged any of them.
        let shards: BTreeSet<String> = trails
            .values()
            .filter_map(|i| staged_by(i).map(|(shard, _)| shard.to_string()))
            .collect();
        let mut checkpoints: HashMap<String, Option<String>> =
            shards.iter().map(|shard| (shard.clone(), None)).collect();
        if !shards.is_empty() {
            let shard_of: HashMap<(String, String), &String> = shards
                .iter()
                .map(|shard| (checkpoint_key(shard), shard))
                .collect();
            let keys = shard_of
                .keys()
                .map(|(pk, sk)| {
                    HashMap::from([
                        ("pk".to_string(), s(pk.clone())),
                        ("sk".into(), s(sk.clone())),
                    ])
                })
                .collect();
            for item in crate::dynamo::batch_get(&self.client, &self.table, keys, true)
                .await
                .map_err(read_error("reading checkpoints"))?
            {
                let key = (text(&item, "pk"), text(&item, "sk"));
                if let (Some(pk), Some(sk)) = key {
                    if let Some(shard) = shard_of.get(&(pk, sk)) {
                        checkpoints.insert((*shard).clone(), text(&item, "seq"));
                    }
                }
            }
        }
        pks.into_iter()
            .filter_map(|pk| {
                let item = trails.remove(&pk)?;
                let message = trail_message(&pk, tenant)?.to_string();
                Some(
                    counted_trail(&item, &checkpoints)
                        .map(|t| (message, t))
                        .map_err(ReadError),
                )
            })
            .collect()
    }

    async fn directory_entry(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<DirectoryItem>, ReadError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .key("sk", AttributeValue::S(sk.to_string()))
            .send()
            .await
            .map_err(read_error("reading the directory"))?;
        Ok(out.item.map(|item| DirectoryItem {
            sk: sk.to_string(),
            last_seen: crate::dynamo::string_attribute(&item, "last_seen"),
        }))
    }
}

beacon_domain::audience_through!(DynamoRollupReader, audience, |_, _, _| Ok::<
    (),
    AudienceError,
>(()));

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_domain::rollup::link_id;
    use beacon_domain::rollup::Aggregate;
    use beacon_domain::rollup::Scope;
    use beacon_domain::{Event, EventType};

    fn event(kind: EventType, recipient: &str) -> Event {
        let t = "2026-11-23T10:15:00Z".parse().unwrap();
        let mut e = Event::new(
            beacon_domain::event::new_event_id(),
            "acme".into(),
            kind,
            t,
            t,
        );
        e.campaign_id = Some("spring".into());
        e.message_id = Some(format!("m-{recipient}"));
        e.recipient_id = Some(recipient.into());
        e.channel = Some("email".into());
        e.provider = Some("ses".into());
        e
    }

    /// What the DynamoDB writer stores for `c`, as attribute values.
    fn as_item(c: &Counters) -> HashMap<String, AttributeValue> {
        let mut item: HashMap<String, AttributeValue> = c
            .numeric_fields()
            .into_iter()
            .map(|(k, v)| (k, AttributeValue::N(v.to_string())))
            .collect();
        item.insert("pk".into(), AttributeValue::S("R#acme#D#c:spring".into()));
        item.insert("sk".into(), AttributeValue::S("D#2026-11-23".into()));
        item.insert("future_counter".into(), AttributeValue::N("7".into()));
        item.insert("note".into(), AttributeValue::S("ignored".into()));
        item
    }

    #[test]
    fn a_dynamodb_item_reads_back_as_the_counters_written() {
        let mut agg = Aggregate::default();
        let mut d = event(EventType::Delivered, "r1");
        d.duration_ms = Some(1200);
        d.cost = Some(0.25);
        let mut c = event(EventType::Clicked, "r1");
        c.link_url = Some("https://x.example/a".into());
        let mut v = event(EventType::Conversion, "r1");
        v.value = Some(12.5);
        for e in [&d, &c, &v] {
            agg.add(e);
        }
        let rollups = agg.rollups();
        let written = rollups
            .iter()
            .find(|(k, _)| matches!(k.scope, Scope::Campaign(_)))
            .unwrap()
            .1;
        let mut scalars = written.clone();
        scalars.links.clear();
        assert_eq!(
            item_counters(&as_item(written)),
            scalars,
            "links live apart"
        );
        assert_eq!(
            written.links[&link_id("https://x.example/a")].url,
            "https://x.example/a"
        );
        // A campaign item written before links had items of their own still reads back.
        let mut legacy = as_item(written);
        let id = link_id("https://x.example/a");
        legacy.insert(format!("lc_{id}_h"), AttributeValue::N("1".into()));
        legacy.insert(
            format!("lu_{id}"),
            AttributeValue::S("https://x.example/a".into()),
        );
        assert_eq!(&item_counters(&legacy), written);
        assert_eq!(number("12"), Some(12));
        assert_eq!(number("12.0"), Some(12));
        assert_eq!(number("x"), None);
    }
}
