//! The stats API: a tenant's campaigns, a campaign's overview, time series, top links
//! and the channel/provider breakdown; the suppression list (check one recipient, a
//! batch by `POST`, or page through it to export) and engagement scores and segments.
//! Authenticated by the tenant's API key, or by the session cookie a dashboard link
//! opened ([`dashboard`]), which also serves the dashboard's page and assets.
//!
//! Every answer is read from the rollups table (rollup items, unique sets and the
//! directory, by Query) and never from events. The tenant always comes from the API
//! key: every partition read starts with it, so a key can only ever see its own
//! tenant's numbers. The numbers and rates are defined in `beacon_domain::stats`.
//!
//! Every request does bounded work: a fixed most of DynamoDB requests, whatever the
//! tenant holds (the OpenAPI file's `x-beacon-max-dynamodb-calls`, per route; each
//! read's share is `beacon_domain::rollup::reader::cost`; a dashboard session adds one
//! read of its link). Listings page with cursors,
//! ranges are capped, a campaign's whole life is read as its latest 401 days at most,
//! and segment counts of large tenants come from a snapshot kept by a scheduled job.
//! A request writes nothing for what does not exist: the campaign is looked up before
//! any read that may store a month pack, and an empty month is packed only when the
//! range read holds data elsewhere.

pub mod dashboard;

use beacon_domain::alert::store::{AlertStore, AlertStoreExt};
use beacon_domain::apikey::{authenticate, ApiKeyStore, AuthError, CachedApiKeys};
use beacon_domain::dashboard::access::{Link, LinkStore};
use beacon_domain::dashboard::live::{minute_of, Live, LiveStore, LIVE_MINUTES};
use dashboard::Dashboard;

use beacon_aws::dynamo::alerts::DynamoAlerts;
use beacon_aws::dynamo::apikeys::DynamoApiKeys;
use beacon_aws::dynamo::dashboard_links::DynamoDashboardLinks;
use beacon_aws::dynamo::live::DynamoLive;
use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::http::{json_response, path_param, presented_api_key};
use beacon_domain::audience::engagement::{epoch_day, Score, Segment};
use beacon_domain::audience::reader::{
    decode_cursor, encode_cursor, AudienceError, AudienceReader, NOT_A_CURSOR,
};
use beacon_domain::audience::segments::{Count, SegmentSnapshots, LIVE_RECIPIENTS};
use beacon_domain::audience::suppression::{validate_check, Entry};
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::event::validate::{check_campaign, check_channel, DEFAULT_CHANNEL};
use beacon_domain::metrics;
use beacon_domain::rollup::reader::{DirectoryPage, Fields, ReadError, RollupItem, RollupReader};
use beacon_domain::rollup::{
    campaign_channel_day_end, campaign_channel_partition, directory_partition, parse_channel,
    CAMPAIGN_PREFIX, CHANNEL_PREFIX,
};
use beacon_domain::rollup::{
    count_unique, rollup_partition, unique_partition, Grain, Scope, UniqueKind,
};
use beacon_domain::stats::{
    parse_grain, parse_limit, parse_limit_within, select_days, CampaignChannels, CampaignEntry,
    Campaigns, ChannelStats, Channels, Overview, ParamError, Range, RecipientMessages, Selection,
    Series, TopLinks, Uniques, ALL_DAYS, DEFAULT_CAMPAIGN_PAGE, DEFAULT_CHANNEL_PAGE,
    DEFAULT_RECENT_MESSAGES, MAX_CAMPAIGN_CHANNEL_ITEMS, MAX_CAMPAIGN_PAGE, MAX_CHANNEL_PAGE,
    MAX_DAY_RANGE_DAYS, MAX_RECENT_MESSAGES,
};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use futures_util::{StreamExt, TryStreamExt};
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

pub struct StatsApp<R, K, L, V, A> {
    pub reader: R,
    pub keys: K,
    pub dashboard: Dashboard<L, V, A>,
    /// The clock that default ranges end at (`Utc::now`; fixed in tests).
    pub now: fn() -> DateTime<Utc>,
}

/// The function as deployed.
pub type DeployedStats = StatsApp<
    DynamoRollupReader,
    CachedApiKeys<DynamoApiKeys>,
    DynamoDashboardLinks,
    DynamoLive,
    DynamoAlerts,
>;

impl DeployedStats {
    /// Reads `BEACON_ROLLUPS_TABLE`, `BEACON_API_KEYS_TABLE`, `BEACON_ALERTS_TABLE`,
    /// `BEACON_API_KEY_CACHE_SECONDS` and the dashboard link keys
    /// (`BEACON_DASHBOARD_KEYS` or the secret `BEACON_DASHBOARD_KEYS_SECRET` names; with
    /// neither, dashboard links are off and the API answers API keys only).
    pub async fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let rollups = env.required("BEACON_ROLLUPS_TABLE")?;
        let alerts = env.required("BEACON_ALERTS_TABLE")?;
        let keys = env.required("BEACON_API_KEYS_TABLE")?;
        let cache_secs = env.parse_or("BEACON_API_KEY_CACHE_SECONDS", 60u64)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let dashboard_keys = beacon_aws::config::dashboard_keys(env, aws).await?;
        if dashboard_keys.is_none() {
            tracing::warn!("no dashboard keys configured: dashboard links are off");
        }
        Ok(StatsApp {
            reader: DynamoRollupReader::new(dynamodb.clone(), rollups.clone()),
            keys: CachedApiKeys::new(
                DynamoApiKeys::new(dynamodb.clone(), keys),
                Duration::from_secs(cache_secs),
            ),
            dashboard: Dashboard {
                keys: dashboard_keys,
                links: DynamoDashboardLinks::new(dynamodb.clone(), rollups.clone()),
                live: DynamoLive::new(dynamodb.clone(), rollups),
                alerts: DynamoAlerts::new(dynamodb, alerts),
            },
            now: Utc::now,
        })
    }
}

/// The API's routes (`GET` but for the batch suppression check), as the template
/// declares them (with the dashboard's `/dashboard` and `/dashboard/{path+}`).
pub const ROUTES: [&str; 17] = [
    "/v1/session",
    "/v1/live",
    "/v1/alerts",
    "/v1/campaigns",
    "/v1/campaigns/{campaign}",
    "/v1/campaigns/{campaign}/timeseries",
    "/v1/campaigns/{campaign}/links",
    "/v1/campaigns/{campaign}/channels",
    "/v1/timeseries",
    "/v1/channels",
    "/v1/suppressions",
    "/v1/suppressions/check",
    "/v1/suppressions/{channel}/{recipient}",
    "/v1/recipients/{recipient}/engagement",
    "/v1/recipients/{recipient}/messages",
    "/v1/segments",
    "/v1/segments/{segment}",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Session,
    Live,
    Alerts,
    Campaigns,
    Overview(String),
    CampaignSeries(String),
    Links(String),
    CampaignChannels(String),
    TenantSeries,
    Channels,
    Suppressions,
    SuppressionCheck,
    Suppression(String, String),
    Engagement(String),
    RecipientMessages(String),
    Segments,
    Segment(Segment),
}

impl Route {
    /// The query parameters the route takes; any other is refused.
    fn params(&self) -> &'static [&'static str] {
        match self {
            Route::Session
            | Route::Live
            | Route::Alerts
            | Route::SuppressionCheck
            | Route::Suppression(..)
            | Route::Engagement(_)
            | Route::Segments => &[],
            Route::Campaigns => &["cursor", "limit"],
            Route::Overview(_) | Route::CampaignChannels(_) => &["from", "to"],
            Route::Channels => &["from", "to", "cursor", "limit"],
            Route::CampaignSeries(_) | Route::TenantSeries => &["grain", "from", "to"],
            Route::Links(_) => &["from", "to", "limit"],
            Route::Suppressions => &["channel", "cursor", "limit"],
            Route::Segment(_) => &["cursor", "limit"],
            Route::RecipientMessages(_) => &["limit"],
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
    /// Seconds a 503 asks the client to wait.
    retry_after: &'static str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            parameter: None,
            retry_after: "1",
        }
    }

    fn response(self) -> Response<Body> {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(p) = self.parameter {
            error["parameter"] = json!(p);
        }
        let mut response = json_response(self.status, &json!({ "error": error }));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(self.retry_after),
            );
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
            retry_after: "1",
        }
    }
}

impl ApiError {
    /// 503 for a store that did not answer (`store` names it to the client); the
    /// store's own error goes to the log only.
    fn unavailable(store: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, store, "a store did not answer");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the {store} is unavailable; try again shortly"),
        )
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        ApiError::unavailable("statistics store", &e)
    }
}

pub async fn handle<
    R: RollupReader + AudienceReader + SegmentSnapshots,
    K: ApiKeyStore,
    L: LinkStore,
    V: LiveStore,
    A: AlertStore,
>(
    app: &StatsApp<R, K, L, V, A>,
    req: Request,
) -> Result<Response<Body>, Error> {
    let path = request_path(&req);
    if dashboard::is_dashboard_path(path) {
        return Ok(dashboard::serve(&app.dashboard, &req, path, (app.now)()).await);
    }
    Ok(answer(app, &req).await.unwrap_or_else(ApiError::response))
}

fn request_path(req: &Request) -> &str {
    match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    }
}

/// Who is asking: a tenant's API key (the whole tenant), or a dashboard link's session
/// (its tenant, or one campaign of it).
enum Caller {
    Key(String),
    Link(Link),
}

impl Caller {
    fn tenant(&self) -> &str {
        match self {
            Caller::Key(t) => t,
            Caller::Link(l) => &l.tenant,
        }
    }

    /// Refuses what a campaign link may not see: another campaign, and anything
    /// beyond its campaign.
    fn check(&self, route: &Route) -> Result<(), ApiError> {
        let Caller::Link(link) = self else {
            return Ok(());
        };
        let allowed = match route {
            Route::Session | Route::Campaigns => true,
            Route::Overview(c)
            | Route::CampaignSeries(c)
            | Route::Links(c)
            | Route::CampaignChannels(c) => link.allows_campaign(c),
            _ => link.whole_tenant(),
        };
        if allowed {
            Ok(())
        } else {
            metrics::count("DashboardScopeRefusals", 1, &[]);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "outside_link_scope",
                "this dashboard link shows one campaign only",
            ))
        }
    }
}

async fn caller<K: ApiKeyStore, L: LinkStore, V, A>(
    keys: &K,
    dashboard: &Dashboard<L, V, A>,
    req: &Request,
    now: i64,
) -> Result<Caller, ApiError> {
    // A key, when one is presented, decides alone: a cookie never widens a key.
    if presented_api_key(req).is_none() {
        if let Some(session) = dashboard::session(dashboard, req, now).await {
            return match session {
                Ok(Ok(link)) => Ok(Caller::Link(link)),
                Ok(Err(e)) => {
                    metrics::count("AuthFailures", 1, &[]);
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        e.to_string(),
                    ))
                }
                Err(e) => Err(ApiError::unavailable("dashboard link store", &e)),
            };
        }
    }
    let key = authenticate(keys, presented_api_key(req))
        .await
        .map_err(|err| match err {
            AuthError::Store(e) => ApiError::unavailable("API key store", &e),
            other => {
                metrics::count("AuthFailures", 1, &[]);
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", other.to_string())
            }
        })?;
    Ok(Caller::Key(key.tenant_id))
}

async fn answer<
    R: RollupReader + AudienceReader + SegmentSnapshots,
    K: ApiKeyStore,
    L: LinkStore,
    V: LiveStore,
    A: AlertStore,
>(
    app: &StatsApp<R, K, L, V, A>,
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
    let now = (app.now)();
    let caller = caller(&app.keys, &app.dashboard, req, now.timestamp()).await?;
    caller.check(&route)?;
    // The tenant comes from the key or the link, and from nowhere else.
    let tenant = caller.tenant();
    let query = Query::new(req, route.params())?;
    let reader = &app.reader;
    match route {
        Route::Session => ok(&match &caller {
            Caller::Key(t) => json!({"tenant": t, "campaign": null, "via": "api_key"}),
            Caller::Link(l) => json!({
                "tenant": l.tenant, "campaign": l.campaign, "via": "dashboard_link",
                "expires_at": DateTime::from_timestamp(l.expires_at, 0).map(|t| t.to_rfc3339()),
            }),
        }),
        Route::Alerts => {
            let alerts = app
                .dashboard
                .alerts
                .tenant(tenant)
                .await
                .map_err(|e| ApiError::unavailable("alerts store", &e))?;
            ok(&json!({ "rules": beacon_domain::alert::overview::overview(&alerts) }))
        }
        Route::Live => {
            let first = minute_of(now) - (LIVE_MINUTES - 1);
            // And the next minute: the aggregate's clock may run a little ahead.
            let minutes = app
                .dashboard
                .live
                .minutes(tenant, first, minute_of(now) + 1)
                .await
                .map_err(|e| ApiError::unavailable("live view", &e))?;
            ok(&Live::merge(first, &minutes))
        }
        Route::Campaigns => {
            let limit =
                parse_limit_within(query.get("limit"), DEFAULT_CAMPAIGN_PAGE, MAX_CAMPAIGN_PAGE)?;
            let after = directory_cursor(query.get("cursor"), CAMPAIGN_PREFIX)?;
            match &caller {
                // A campaign link lists its own campaign, if it exists, and nothing else.
                Caller::Link(Link {
                    campaign: Some(c), ..
                }) => ok(&one_campaign(reader, tenant, c).await?),
                _ => ok(&campaigns(reader, tenant, after.as_deref(), limit).await?),
            }
        }
        Route::Overview(campaign) => {
            let range = query.optional_range(now)?;
            require_campaign(reader, tenant, &campaign).await?;
            let pk = rollup_partition(tenant, &Scope::Campaign(campaign.clone()), Grain::Day);
            let opens_pk = unique_partition(tenant, &campaign, UniqueKind::Opens);
            let clicks_pk = unique_partition(tenant, &campaign, UniqueKind::Clicks);
            // The reads at once: a request costs the slowest read, not their sum.
            let (sel, opens, clicks) = tokio::join!(
                campaign_days(reader, &pk, range.as_ref(), Fields::Counts),
                reader.unique_members(&opens_pk),
                reader.unique_members(&clicks_pk),
            );
            let (sel, opens, clicks) = (sel?, opens?, clicks?);
            let uniques = Uniques::new(
                &count_unique(opens.iter().map(String::as_str)),
                &count_unique(clicks.iter().map(String::as_str)),
            );
            ok(&Overview::new(&campaign, &sel, uniques))
        }
        Route::Links(campaign) => {
            let range = query.optional_range(now)?;
            let limit = parse_limit(query.get("limit"))?;
            require_campaign(reader, tenant, &campaign).await?;
            let pk = rollup_partition(tenant, &Scope::Campaign(campaign.clone()), Grain::Day);
            let clicks_pk = unique_partition(tenant, &campaign, UniqueKind::Clicks);
            let (sel, clicks) = tokio::join!(
                campaign_days(reader, &pk, range.as_ref(), Fields::All),
                reader.unique_members(&clicks_pk),
            );
            let (sel, clicks) = (sel?, clicks?);
            let clicks = count_unique(clicks.iter().map(String::as_str));
            ok(&TopLinks::new(&campaign, &sel, &clicks, limit))
        }
        Route::CampaignChannels(campaign) => {
            let range = query.optional_range(now)?;
            require_campaign(reader, tenant, &campaign).await?;
            let (first, last) = match &range {
                Some(r) => r.sort_keys(),
                None => (ALL_DAYS.0.to_string(), ALL_DAYS.1.to_string()),
            };
            // Latest first, so a campaign with more items than one read takes is
            // answered for its last days.
            let items = reader
                .latest_rollups(
                    &campaign_channel_partition(tenant, &campaign),
                    &first,
                    &campaign_channel_day_end(&last),
                    Fields::Scalars,
                    MAX_CAMPAIGN_CHANNEL_ITEMS,
                )
                .await?;
            ok(&CampaignChannels::new(
                &campaign,
                items.iter().map(|i| (i.sk.as_str(), &i.counters)),
                range.as_ref(),
                MAX_CAMPAIGN_CHANNEL_ITEMS,
            ))
        }
        Route::CampaignSeries(campaign) => {
            let range = query.range(query.grain()?, now)?;
            // First: a daily series may store month packs, and nothing may be stored
            // for a campaign that does not exist.
            require_campaign(reader, tenant, &campaign).await?;
            let scope = Scope::Campaign(campaign.clone());
            ok(&series(reader, tenant, &scope, &range).await?)
        }
        Route::TenantSeries => {
            let range = query.range(query.grain()?, now)?;
            ok(&series(reader, tenant, &Scope::Tenant, &range).await?)
        }
        Route::Channels => {
            let range = query.range(Grain::Day, now)?;
            let limit =
                parse_limit_within(query.get("limit"), DEFAULT_CHANNEL_PAGE, MAX_CHANNEL_PAGE)?;
            let after = directory_cursor(query.get("cursor"), CHANNEL_PREFIX)?;
            ok(&channels(reader, tenant, &range, after.as_deref(), limit).await?)
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
                .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", m.0))?;
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
        Route::RecipientMessages(recipient) => {
            let limit = parse_limit_within(
                query.get("limit"),
                DEFAULT_RECENT_MESSAGES,
                MAX_RECENT_MESSAGES,
            )?;
            let trails = reader.recent_trails(tenant, &recipient, limit).await?;
            ok(&RecipientMessages::new(&recipient, &trails))
        }
        Route::Segments => {
            let count = segment_counts(reader, tenant, now).await?;
            let segments: serde_json::Map<String, Value> = Segment::ALL
                .iter()
                .map(|s| {
                    (
                        s.as_str().to_string(),
                        json!({"recipients": count.of(*s), "min_score": s.floor()}),
                    )
                })
                .collect();
            ok(&json!({
                "as_of": count.as_of().format("%Y-%m-%d").to_string(),
                "computed_at": count.finished_at,
                "recipients": count.recipients(),
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

/// Recipients read per segment listing request at most, in pages of 1,000; a page may
/// come back short (even empty) with a `next_cursor` to go on from.
pub const SEGMENT_SCAN: usize = 5000;
const SEGMENT_PAGES: usize = SEGMENT_SCAN / 1000;

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
    // Pages, not recipients, bound the reads: a page of big items comes back short.
    for _ in 0..SEGMENT_PAGES {
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
    Ok((out, cursor))
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
    reasons:
        Option<std::collections::BTreeMap<beacon_domain::audience::suppression::Reason, String>>,
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
    check_channel(channel).map_err(|m| ParamError::new("channel", m.0).into())
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
        ApiError::unavailable("audience store", &e)
    }
}

fn ok(body: &impl Serialize) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

fn items(items: &[RollupItem]) -> impl Iterator<Item = (&str, &beacon_domain::rollup::Counters)> {
    items.iter().map(|i| (i.sk.as_str(), &i.counters))
}

/// The route from the request's path (without the stage), and the campaign from the
/// route's path parameter.
fn route(req: &Request) -> Result<Route, ApiError> {
    let path = request_path(req);
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let campaign = |segment: &str| -> Result<String, ApiError> {
        let id = path_param(req, "campaign").unwrap_or(segment);
        check_campaign(id).map_err(|e| ParamError::new("campaign", e.0))?;
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
        ["", "v1", "recipients", r, "messages"] => Route::RecipientMessages(recipient(r)?),
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
        ["", "v1", "session"] => Route::Session,
        ["", "v1", "live"] => Route::Live,
        ["", "v1", "alerts"] => Route::Alerts,
        ["", "v1", "campaigns"] => Route::Campaigns,
        ["", "v1", "campaigns", c] => Route::Overview(campaign(c)?),
        ["", "v1", "campaigns", c, "timeseries"] => Route::CampaignSeries(campaign(c)?),
        ["", "v1", "campaigns", c, "links"] => Route::Links(campaign(c)?),
        ["", "v1", "campaigns", c, "channels"] => Route::CampaignChannels(campaign(c)?),
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

/// The directory key a `cursor` stands for (a `next_cursor` of the route's listing).
fn directory_cursor(cursor: Option<&str>, prefix: &str) -> Result<Option<String>, ApiError> {
    cursor
        .map(|c| {
            decode_cursor(c)
                .filter(|sk| sk.starts_with(prefix))
                .ok_or_else(|| {
                    ParamError::new("cursor", "`cursor` must be a next_cursor this API returned")
                        .into()
                })
        })
        .transpose()
}

/// The cursor after the last item of a page, if more may follow.
fn next_cursor(page: &DirectoryPage) -> Option<String> {
    page.items
        .last()
        .filter(|_| page.more)
        .map(|last| encode_cursor(&last.sk))
}

/// A page of the tenant's campaigns: one Query.
async fn campaigns<R: RollupReader>(
    reader: &R,
    tenant: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Campaigns, ReadError> {
    let page = reader
        .directory_page(&directory_partition(tenant), CAMPAIGN_PREFIX, after, limit)
        .await?;
    Ok(Campaigns {
        next_cursor: next_cursor(&page),
        campaigns: page
            .items
            .into_iter()
            .filter_map(|d| {
                Some(CampaignEntry {
                    campaign_id: d.sk.strip_prefix(CAMPAIGN_PREFIX)?.to_string(),
                    last_seen: d.last_seen,
                })
            })
            .collect(),
    })
}

/// The campaign listing of a campaign link: its one campaign, if the tenant has it.
async fn one_campaign<R: RollupReader>(
    reader: &R,
    tenant: &str,
    campaign: &str,
) -> Result<Campaigns, ReadError> {
    let sk = format!("{CAMPAIGN_PREFIX}{campaign}");
    let found = reader
        .directory_entry(&directory_partition(tenant), &sk)
        .await?;
    Ok(Campaigns {
        campaigns: found
            .map(|d| CampaignEntry {
                campaign_id: campaign.to_string(),
                last_seen: d.last_seen,
            })
            .into_iter()
            .collect(),
        next_cursor: None,
    })
}

/// A campaign's day items added up over `range`, or without one over its whole life,
/// reading at most [`MAX_DAY_RANGE_DAYS`] + 1 day items (a range is no longer).
///
/// With a range, two one-item reads tell whether the campaign has data before or after
/// it (then the whole-life unique counts do not belong to the range). Without one, a
/// campaign with data on more days than that answers for its last
/// [`MAX_DAY_RANGE_DAYS`] days, as a range that does not cover it.
async fn campaign_days<R: RollupReader>(
    reader: &R,
    pk: &str,
    range: Option<&Range>,
    fields: Fields,
) -> Result<Selection, ReadError> {
    let most = MAX_DAY_RANGE_DAYS as usize;
    let Some(range) = range else {
        let latest = reader
            .latest_rollups(pk, ALL_DAYS.0, ALL_DAYS.1, fields, most + 1)
            .await?;
        let last_day = latest
            .first()
            .and_then(|i| beacon_domain::rollup::keys::day_of(&i.sk));
        let (Some(last_day), true) = (last_day, latest.len() > most) else {
            return Ok(select_days(items(&latest), None));
        };
        let window = Range {
            from: midnight(last_day - Days::days(most as i64 - 1)),
            to: midnight(last_day + Days::days(1)),
            grain: Grain::Day,
        };
        return Ok(select_days(items(&latest), Some(&window)));
    };
    let (first, last) = range.sort_keys();
    let day_before = Grain::Day.sort_key(range.from - Days::days(1));
    let day_after = Grain::Day.sort_key(range.to);
    let (days, before, after) = tokio::join!(
        reader.rollups(pk, &first, &last, fields),
        reader.latest_rollups(pk, ALL_DAYS.0, &day_before, Fields::Scalars, 1),
        reader.latest_rollups(pk, &day_after, ALL_DAYS.1, Fields::Scalars, 1),
    );
    let mut sel = select_days(items(&days?), Some(range));
    sel.covers_campaign &= before?.is_empty() && after?.is_empty();
    Ok(sel)
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// Segment counts: counted now for a tenant of at most [`LIVE_RECIPIENTS`], otherwise
/// the latest count the alerts function published
/// ([`beacon_domain::audience::segments`]).
async fn segment_counts<R: AudienceReader + SegmentSnapshots>(
    reader: &R,
    tenant: &str,
    now: DateTime<Utc>,
) -> Result<Count, ApiError> {
    let (state, _) = reader.segment_snapshot(tenant, false).await?;
    let published = state.published;
    if let Some(count) = published
        .as_ref()
        .filter(|c| c.recipients() > LIVE_RECIPIENTS as u64)
    {
        return Ok(count.clone());
    }
    let page = reader.marks_page(tenant, None, LIVE_RECIPIENTS).await?;
    if page.next.is_none() {
        let mut count = Count::start(now);
        count.add(&page.items);
        return Ok(count.finish(now));
    }
    published.ok_or_else(|| {
        let counted = state.scan.map_or(0, |s| s.count.recipients());
        ApiError {
            retry_after: "300",
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                format!(
                    "this tenant has more than {LIVE_RECIPIENTS} recipients; their first segment \
                     count is under way ({counted} counted so far) and is published within minutes"
                ),
            )
        }
    })
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

/// One channel/provider pair added up over the sort keys `first..=last`.
async fn channel_stats<R: RollupReader>(
    reader: &R,
    tenant: &str,
    grain: Grain,
    (first, last): (&str, &str),
    channel: String,
    provider: String,
    last_seen: Option<String>,
) -> Result<ChannelStats, ReadError> {
    let pk = rollup_partition(
        tenant,
        &Scope::Channel(channel.clone(), provider.clone()),
        grain,
    );
    let mut total = beacon_domain::rollup::Counters::default();
    for item in reader.rollups(&pk, first, last, Fields::Counts).await? {
        total.merge(&item.counters);
    }
    Ok(ChannelStats::new(&channel, &provider, last_seen, &total))
}

/// Channel/provider pairs read at once.
const CHANNEL_READS_AT_ONCE: usize = 16;

/// A page of the tenant's channel/provider pairs, each added up over `range`: one
/// directory Query and one Query per pair, a few at a time.
async fn channels<R: RollupReader>(
    reader: &R,
    tenant: &str,
    range: &Range,
    after: Option<&str>,
    limit: usize,
) -> Result<Channels, ReadError> {
    let (first, last) = range.sort_keys();
    let page = reader
        .directory_page(&directory_partition(tenant), CHANNEL_PREFIX, after, limit)
        .await?;
    // Owned pairs: a stream of futures borrowing from its items is not `Send` enough
    // for the Lambda runtime (rustc's higher-ranked lifetimes).
    let pairs: Vec<(String, String, Option<String>)> = page
        .items
        .iter()
        .filter_map(|entry| {
            let (channel, provider) = parse_channel(&entry.sk)?;
            Some((channel.into(), provider.into(), entry.last_seen.clone()))
        })
        .collect();
    let (first, last) = (first.as_str(), last.as_str());
    let out: Vec<ChannelStats> = futures_util::stream::iter(pairs)
        .map(|(channel, provider, last_seen)| {
            channel_stats(
                reader,
                tenant,
                range.grain,
                (first, last),
                channel,
                provider,
                last_seen,
            )
        })
        .buffered(CHANNEL_READS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(Channels::new(range, out, next_cursor(&page)))
}
