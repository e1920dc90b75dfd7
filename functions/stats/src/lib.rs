//! The stats API: a tenant's campaigns, a campaign's overview, time series, top links
//! and the channel/provider breakdown; the suppression list (check one recipient, a
//! batch by `POST`, or page through it to export) and engagement scores and segments.
//! Authenticated by the tenant's API key.
//!
//! Every answer is read from the rollups table (rollup items, unique sets and the
//! directory, by Query) and never from events. The tenant always comes from the API
//! key: every partition read starts with it, so a key can only ever see its own
//! tenant's numbers. The numbers and rates are defined in `beacon_shared::stats`.

use beacon_shared::apikey::{authenticate, ApiKeyStore, AuthError, CachedApiKeys, DynamoApiKeys};
use beacon_shared::audience_store::{encode_cursor, AudienceError, AudienceReader, NOT_A_CURSOR};
use beacon_shared::config::{ConfigError, Env};
use beacon_shared::engagement::{epoch_day, Score, Segment};
use beacon_shared::http::{json_response, path_param, presented_api_key};
use beacon_shared::metrics;
use beacon_shared::rollup::{
    count_unique, rollup_partition, unique_partition, Grain, Scope, UniqueKind,
};
use beacon_shared::stats::{
    parse_grain, parse_limit, parse_limit_within, select_days, CampaignEntry, Campaigns,
    ChannelStats, Channels, Overview, ParamError, Range, Series, TopLinks, Uniques, ALL_DAYS,
};
use beacon_shared::stats_store::{
    directory_partition, parse_channel, DynamoRollupReader, Fields, ReadError, RollupItem,
    RollupReader, CAMPAIGN_PREFIX, CHANNEL_PREFIX,
};
use beacon_shared::suppression::{validate_check, Entry};
use beacon_shared::validate::{check_channel, DEFAULT_CHANNEL};
use chrono::{DateTime, Utc};
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

pub struct Stats<R, K> {
    pub reader: R,
    pub keys: K,
    /// The clock that default ranges end at (`Utc::now`; fixed in tests).
    pub now: fn() -> DateTime<Utc>,
}

impl Stats<DynamoRollupReader, CachedApiKeys<DynamoApiKeys>> {
    /// Reads `BEACON_ROLLUPS_TABLE`, `BEACON_API_KEYS_TABLE` and
    /// `BEACON_API_KEY_CACHE_SECONDS`.
    pub fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let rollups = env.required("BEACON_ROLLUPS_TABLE")?;
        let keys = env.required("BEACON_API_KEYS_TABLE")?;
        let cache_secs = env.parse_or("BEACON_API_KEY_CACHE_SECONDS", 60u64)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        Ok(Stats {
            reader: DynamoRollupReader::new(dynamodb.clone(), rollups),
            keys: CachedApiKeys::new(
                DynamoApiKeys::new(dynamodb, keys),
                Duration::from_secs(cache_secs),
            ),
            now: Utc::now,
        })
    }
}

/// The API's routes (`GET` but for the batch suppression check), as the template
/// declares them.
pub const ROUTES: [&str; 12] = [
    "/v1/campaigns",
    "/v1/campaigns/{campaign}",
    "/v1/campaigns/{campaign}/timeseries",
    "/v1/campaigns/{campaign}/links",
    "/v1/timeseries",
    "/v1/channels",
    "/v1/suppressions",
    "/v1/suppressions/check",
    "/v1/suppressions/{channel}/{recipient}",
    "/v1/recipients/{recipient}/engagement",
    "/v1/segments",
    "/v1/segments/{segment}",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Campaigns,
    Overview(String),
    CampaignSeries(String),
    Links(String),
    TenantSeries,
    Channels,
    Suppressions,
    SuppressionCheck,
    Suppression(String, String),
    Engagement(String),
    Segments,
    Segment(Segment),
}

impl Route {
    /// The query parameters the route takes; any other is refused.
    fn params(&self) -> &'static [&'static str] {
        match self {
            Route::Campaigns
            | Route::SuppressionCheck
            | Route::Suppression(..)
            | Route::Engagement(_)
            | Route::Segments => &[],
            Route::Overview(_) | Route::Channels => &["from", "to"],
            Route::CampaignSeries(_) | Route::TenantSeries => &["grain", "from", "to"],
            Route::Links(_) => &["from", "to", "limit"],
            Route::Suppressions => &["channel", "cursor", "limit"],
            Route::Segment(_) => &["cursor", "limit"],
        }
    }

    fn method(&self) -> Method {
        match self {
            Route::SuppressionCheck => Method::POST,
            _ => Method::GET,
        }
    }
}

/// A refusal: status and `{"error": {"code", "message", "parameter"?}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    parameter: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            parameter: None,
        }
    }

    fn response(self) -> Response<Body> {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(p) = self.parameter {
            error["parameter"] = json!(p);
        }
        let mut response = json_response(self.status, &json!({ "error": error }));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message: e.message,
            parameter: Some(e.param),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        tracing::error!(error = %e, "reading the rollups failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the statistics store is unavailable; try again shortly",
        )
    }
}

pub async fn handle<R: RollupReader + AudienceReader, K: ApiKeyStore>(
    app: &Stats<R, K>,
    req: Request,
) -> Result<Response<Body>, Error> {
    Ok(answer(app, &req).await.unwrap_or_else(ApiError::response))
}

async fn answer<R: RollupReader + AudienceReader, K: ApiKeyStore>(
    app: &Stats<R, K>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let route = route(req)?;
    if req.method() != route.method() {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("use {}", route.method()),
        ));
    }
    let key = authenticate(&app.keys, presented_api_key(req))
        .await
        .map_err(|err| match err {
            AuthError::Store(e) => {
                tracing::error!(error = %e, "API key lookup failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "try again shortly",
                )
            }
            other => {
                metrics::count("AuthFailures", 1, &[]);
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", other.to_string())
            }
        })?;
    // The tenant comes from the key, and from nowhere else.
    let tenant = key.tenant_id.as_str();
    let query = Query::new(req, route.params())?;
    let now = (app.now)();
    let reader = &app.reader;
    match route {
        Route::Campaigns => ok(&campaigns(reader, tenant).await?),
        Route::Overview(campaign) => {
            let range = query.optional_range(now)?;
            let pk = rollup_partition(tenant, &Scope::Campaign(campaign.clone()), Grain::Day);
            let opens_pk = unique_partition(tenant, &campaign, UniqueKind::Opens);
            let clicks_pk = unique_partition(tenant, &campaign, UniqueKind::Clicks);
            // All reads at once: a request costs the slowest read, not their sum.
            let (known, days, opens, clicks) = tokio::join!(
                require_campaign(reader, tenant, &campaign),
                reader.rollups(&pk, ALL_DAYS.0, ALL_DAYS.1, Fields::All),
                reader.unique_members(&opens_pk),
                reader.unique_members(&clicks_pk),
            );
            known?;
            let (days, opens, clicks) = (days?, opens?, clicks?);
            let sel = select_days(items(&days), range.as_ref());
            let uniques = Uniques::new(
                &count_unique(opens.iter().map(String::as_str)),
                &count_unique(clicks.iter().map(String::as_str)),
            );
            ok(&Overview::new(&campaign, &sel, uniques))
        }
        Route::Links(campaign) => {
            let range = query.optional_range(now)?;
            let limit = parse_limit(query.get("limit"))?;
            let pk = rollup_partition(tenant, &Scope::Campaign(campaign.clone()), Grain::Day);
            let clicks_pk = unique_partition(tenant, &campaign, UniqueKind::Clicks);
            let (known, days, clicks) = tokio::join!(
                require_campaign(reader, tenant, &campaign),
                reader.rollups(&pk, ALL_DAYS.0, ALL_DAYS.1, Fields::All),
                reader.unique_members(&clicks_pk),
            );
            known?;
            let (days, clicks) = (days?, clicks?);
            let sel = select_days(items(&days), range.as_ref());
            let clicks = count_unique(clicks.iter().map(String::as_str));
            ok(&TopLinks::new(&campaign, &sel, &clicks, limit))
        }
        Route::CampaignSeries(campaign) => {
            let range = query.range(query.grain()?, now)?;
            let scope = Scope::Campaign(campaign.clone());
            let (known, series) = tokio::join!(
                require_campaign(reader, tenant, &campaign),
                series(reader, tenant, &scope, &range),
            );
            known?;
            ok(&series?)
        }
        Route::TenantSeries => {
            let range = query.range(query.grain()?, now)?;
            ok(&series(reader, tenant, &Scope::Tenant, &range).await?)
        }
        Route::Channels => {
            let range = query.range(Grain::Day, now)?;
            ok(&channels(reader, tenant, &range).await?)
        }
        Route::Suppression(channel, recipient) => {
            let found = reader
                .suppressed(tenant, &channel, std::slice::from_ref(&recipient))
                .await?;
            ok(&SuppressionStatus::new(channel, recipient, &found))
        }
        Route::SuppressionCheck => {
            let check: Check = serde_json::from_slice(req.body().as_ref()).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("the body must be {{\"channel\": \"email\", \"recipients\": [\"r-1\", ...]}}: {e}"),
                )
            })?;
            let channel = check.channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_string());
            validate_channel(&channel)?;
            validate_check(&check.recipients)
                .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", m))?;
            let found = reader
                .suppressed(tenant, &channel, &check.recipients)
                .await?;
            let (mut suppressed, mut not_suppressed) = (Vec::new(), Vec::new());
            for r in &check.recipients {
                match found.get(r) {
                    Some(entry) => suppressed.push(entry.clone()),
                    None => not_suppressed.push(r.clone()),
                }
            }
            suppressed.dedup_by(|a, b| a.recipient == b.recipient);
            not_suppressed.dedup();
            ok(
                &json!({"channel": channel, "suppressed": suppressed, "not_suppressed": not_suppressed}),
            )
        }
        Route::Suppressions => {
            let channel = query.get("channel").unwrap_or(DEFAULT_CHANNEL).to_string();
            validate_channel(&channel)?;
            let limit = page_limit(query.get("limit"))?;
            let page = reader
                .suppression_page(tenant, &channel, query.get("cursor"), limit)
                .await
                .map_err(|e| cursor_error(e, query.get("cursor")))?;
            ok(&json!({"channel": channel, "suppressions": page.items, "next_cursor": page.next}))
        }
        Route::Engagement(recipient) => {
            let marks = reader.marks(tenant, &recipient).await?;
            let today = epoch_day(now.timestamp_millis());
            let score = Score::of_marks(&recipient, &marks, today);
            ok(&json!({"as_of": now.format("%Y-%m-%d").to_string(), "engagement": score}))
        }
        Route::Segments => {
            let today = epoch_day(now.timestamp_millis());
            let mut counts: std::collections::BTreeMap<Segment, u64> =
                Segment::ALL.iter().map(|s| (*s, 0)).collect();
            let mut cursor: Option<String> = None;
            loop {
                let page = reader.marks_page(tenant, cursor.as_deref(), 1000).await?;
                for (recipient, marks) in &page.items {
                    let s = Score::of_marks(recipient, marks, today);
                    *counts.entry(s.segment).or_default() += 1;
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let segments: serde_json::Map<String, Value> = counts
                .iter()
                .map(|(s, n)| {
                    (
                        s.as_str().to_string(),
                        json!({"recipients": n, "min_score": s.floor()}),
                    )
                })
                .collect();
            ok(&json!({
                "as_of": now.format("%Y-%m-%d").to_string(),
                "recipients": counts.values().sum::<u64>(),
                "segments": segments,
            }))
        }
        Route::Segment(segment) => {
            let limit = page_limit(query.get("limit"))?;
            let today = epoch_day(now.timestamp_millis());
            let (recipients, next) =
                segment_members(reader, tenant, segment, query.get("cursor"), limit, today)
                    .await
                    .map_err(|e| cursor_error(e, query.get("cursor")))?;
            ok(&json!({
                "segment": segment, "as_of": now.format("%Y-%m-%d").to_string(),
                "recipients": recipients, "next_cursor": next,
            }))
        }
    }
}

/// Recipients read per segment listing request at most; a page may come back short
/// (even empty) with a `next_cursor` to go on from.
pub const SEGMENT_SCAN: usize = 5000;

/// Up to `limit` recipients of a segment after `cursor`, reading at most
/// [`SEGMENT_SCAN`] recipients; the cursor to go on from.
async fn segment_members<R: AudienceReader>(
    reader: &R,
    tenant: &str,
    segment: Segment,
    cursor: Option<&str>,
    limit: usize,
    today: i64,
) -> Result<(Vec<Score>, Option<String>), AudienceError> {
    let mut out = Vec::new();
    let mut cursor = cursor.map(str::to_string);
    let mut scanned = 0;
    loop {
        let want = (SEGMENT_SCAN - scanned).min(1000);
        let page = reader.marks_page(tenant, cursor.as_deref(), want).await?;
        scanned += page.items.len();
        for (recipient, marks) in &page.items {
            let score = Score::of_marks(recipient, marks, today);
            if score.segment == segment {
                out.push(score);
                if out.len() == limit {
                    let last_of_page = page.items.last().map(|(r, _)| r) == Some(recipient);
                    let next = if last_of_page {
                        page.next
                    } else {
                        Some(encode_cursor(recipient))
                    };
                    return Ok((out, next));
                }
            }
        }
        match page.next {
            Some(next) if scanned < SEGMENT_SCAN => cursor = Some(next),
            next => return Ok((out, next)),
        }
    }
}

/// The body of a batch suppression check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    #[serde(default)]
    channel: Option<String>,
    recipients: Vec<String>,
}

/// One recipient's answer.
#[derive(Debug, Serialize)]
struct SuppressionStatus {
    channel: String,
    recipient: String,
    suppressed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<std::collections::BTreeMap<beacon_shared::suppression::Reason, String>>,
}

impl SuppressionStatus {
    fn new(channel: String, recipient: String, found: &HashMap<String, Entry>) -> Self {
        let entry = found.get(&recipient);
        SuppressionStatus {
            channel,
            recipient,
            suppressed: entry.is_some(),
            since: entry.map(|e| e.since.clone()),
            reasons: entry.map(|e| e.reasons.clone()),
        }
    }
}

/// Page sizes of the suppression and segment listings: 1-1000, 100 by default.
fn page_limit(value: Option<&str>) -> Result<usize, ApiError> {
    Ok(parse_limit_within(value, 100, 1000)?)
}

/// A channel as events carry it.
fn validate_channel(channel: &str) -> Result<(), ApiError> {
    check_channel(channel).map_err(|m| ParamError::new("channel", m).into())
}

/// A bad cursor is the client's mistake; anything else is the store's.
fn cursor_error(e: AudienceError, cursor: Option<&str>) -> ApiError {
    if cursor.is_some() && e.0 == NOT_A_CURSOR {
        return ParamError::new("cursor", "`cursor` must be a next_cursor this API returned")
            .into();
    }
    e.into()
}

impl From<AudienceError> for ApiError {
    fn from(e: AudienceError) -> Self {
        tracing::error!(error = %e, "reading the audience failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the audience store is unavailable; try again shortly",
        )
    }
}

fn ok(body: &impl Serialize) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

fn items(items: &[RollupItem]) -> impl Iterator<Item = (&str, &beacon_shared::rollup::Counters)> {
    items.iter().map(|i| (i.sk.as_str(), &i.counters))
}

/// The route from the request's path (without the stage), and the campaign from the
/// route's path parameter.
fn route(req: &Request) -> Result<Route, ApiError> {
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let campaign = |segment: &str| -> Result<String, ApiError> {
        let id = path_param(req, "campaign").unwrap_or(segment);
        // Campaign ids are what events may carry: 1-256 printable characters.
        if id.is_empty()
            || id.chars().count() > 256
            || id.chars().any(char::is_control)
            || id.trim() != id
        {
            return Err(ParamError::new(
                "campaign",
                "`campaign` must be a campaign id: 1-256 printable characters",
            )
            .into());
        }
        Ok(id.to_string())
    };
    // Recipient ids are opaque: taken from the gateway's (decoded) path parameters.
    let recipient = |segment: &str| -> Result<String, ApiError> {
        let id = path_param(req, "recipient").unwrap_or(segment);
        if id.is_empty() || id.chars().count() > 256 {
            return Err(ParamError::new(
                "recipient",
                "`recipient` must be a recipient id: 1-256 characters",
            )
            .into());
        }
        Ok(id.to_string())
    };
    Ok(match parts.as_slice() {
        ["", "v1", "suppressions"] => Route::Suppressions,
        ["", "v1", "suppressions", "check"] => Route::SuppressionCheck,
        ["", "v1", "suppressions", ch, r] => {
            let channel = path_param(req, "channel").unwrap_or(ch).to_string();
            validate_channel(&channel)?;
            Route::Suppression(channel, recipient(r)?)
        }
        ["", "v1", "recipients", r, "engagement"] => Route::Engagement(recipient(r)?),
        ["", "v1", "segments"] => Route::Segments,
        ["", "v1", "segments", name] => {
            let name = path_param(req, "segment").unwrap_or(name);
            Route::Segment(Segment::parse(name).ok_or_else(|| {
                ApiError::from(ParamError::new(
                    "segment",
                    format!("no segment `{name}`; one of high, medium, low, inactive"),
                ))
            })?)
        }
        ["", "v1", "campaigns"] => Route::Campaigns,
        ["", "v1", "campaigns", c] => Route::Overview(campaign(c)?),
        ["", "v1", "campaigns", c, "timeseries"] => Route::CampaignSeries(campaign(c)?),
        ["", "v1", "campaigns", c, "links"] => Route::Links(campaign(c)?),
        ["", "v1", "timeseries"] => Route::TenantSeries,
        ["", "v1", "channels"] => Route::Channels,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such endpoint: {path}"),
            ))
        }
    })
}

/// The query string of a request, checked against the parameters its route takes.
struct Query<'a> {
    req: &'a Request,
}

impl<'a> Query<'a> {
    fn new(req: &'a Request, allowed: &[&str]) -> Result<Self, ApiError> {
        if let Some(params) = req.query_string_parameters_ref() {
            let mut names: Vec<&str> = params.iter().map(|(k, _)| k).collect();
            names.sort_unstable();
            for name in names {
                if !allowed.contains(&name) {
                    let accepted = if allowed.is_empty() {
                        "this endpoint takes no query parameters".to_string()
                    } else {
                        format!("this endpoint takes {}", allowed.join(", "))
                    };
                    return Err(ParamError::new(
                        name,
                        format!("unknown query parameter `{name}`; {accepted}"),
                    )
                    .into());
                }
            }
        }
        Ok(Query { req })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.req
            .query_string_parameters_ref()
            .and_then(|q| q.first(name))
    }

    fn grain(&self) -> Result<Grain, ParamError> {
        parse_grain(self.get("grain"))
    }

    fn range(&self, grain: Grain, now: DateTime<Utc>) -> Result<Range, ParamError> {
        Range::parse(self.get("from"), self.get("to"), grain, now)
    }

    /// A range of days, or `None` (the campaign's whole life) without `from` and `to`.
    fn optional_range(&self, now: DateTime<Utc>) -> Result<Option<Range>, ParamError> {
        if self.get("from").is_none() && self.get("to").is_none() {
            return Ok(None);
        }
        self.range(Grain::Day, now).map(Some)
    }
}

/// 404 unless the tenant's directory holds the campaign.
async fn require_campaign<R: RollupReader>(
    reader: &R,
    tenant: &str,
    campaign: &str,
) -> Result<(), ApiError> {
    let sk = format!("{CAMPAIGN_PREFIX}{campaign}");
    let found = reader
        .directory_entry(&directory_partition(tenant), &sk)
        .await?;
    if found.is_some() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "campaign_not_found",
            format!("no campaign `{campaign}`"),
        ))
    }
}

async fn campaigns<R: RollupReader>(reader: &R, tenant: &str) -> Result<Campaigns, ReadError> {
    let entries = reader
        .directory(&directory_partition(tenant), CAMPAIGN_PREFIX)
        .await?
        .into_iter()
        .filter_map(|d| {
            Some(CampaignEntry {
                campaign_id: d.sk.strip_prefix(CAMPAIGN_PREFIX)?.to_string(),
                last_seen: d.last_seen,
            })
        })
        .collect();
    Ok(Campaigns::new(entries))
}

/// A scope's series over `range`: one Query of the grain's partition, scalar counters only.
async fn series<R: RollupReader>(
    reader: &R,
    tenant: &str,
    scope: &Scope,
    range: &Range,
) -> Result<Series, ReadError> {
    let pk = rollup_partition(tenant, scope, range.grain);
    let (first, last) = range.sort_keys();
    let rollups = reader.rollups(&pk, &first, &last, Fields::Scalars).await?;
    let campaign = match scope {
        Scope::Campaign(c) => Some(c.as_str()),
        _ => None,
    };
    Ok(Series::new(campaign, range, items(&rollups)))
}

async fn channels<R: RollupReader>(
    reader: &R,
    tenant: &str,
    range: &Range,
) -> Result<Channels, ReadError> {
    let (first, last) = range.sort_keys();
    let mut out = Vec::new();
    for entry in reader
        .directory(&directory_partition(tenant), CHANNEL_PREFIX)
        .await?
    {
        let Some((channel, provider)) = parse_channel(&entry.sk) else {
            continue;
        };
        let pk = rollup_partition(
            tenant,
            &Scope::Channel(channel.to_string(), provider.to_string()),
            range.grain,
        );
        let mut total = beacon_shared::rollup::Counters::default();
        for item in reader.rollups(&pk, &first, &last, Fields::All).await? {
            total.merge(&item.counters);
        }
        out.push(ChannelStats::new(
            channel,
            provider,
            entry.last_seen.clone(),
            &total,
        ));
    }
    Ok(Channels::new(range, out))
}
