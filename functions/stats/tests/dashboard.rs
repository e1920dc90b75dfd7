//! The dashboard in-process: its page and assets, opening a link, the session it sets,
//! what a campaign link may see, revocation, and the live view.

use beacon_aws::http::{lambda_request, GatewayRequest};
use beacon_domain::dashboard::access::{sign, Link, LinkRecord, LinkStore};
use beacon_domain::dashboard::live::{minute_of, Batch, LiveStore};
use beacon_domain::rollup::{rollup_partition, Counters, Grain, Scope};
use beacon_domain::testkit::memory::{MemoryAlerts, MemoryApiKeys, MemoryLinks, MemoryLive};
use beacon_domain::testkit::rollups::MemoryRollupReader;
use beacon_domain::tracking::token::Keyring;
use chrono::{DateTime, Utc};
use lambda_http::{Body, Response};
use serde_json::Value;
use stats_function::dashboard::Dashboard;
use stats_function::StatsApp;
use std::collections::BTreeMap;
use std::io::Read;

type App = StatsApp<MemoryRollupReader, MemoryApiKeys, MemoryLinks, MemoryLive, MemoryAlerts>;

fn now() -> DateTime<Utc> {
    "2026-12-03T09:00:00Z".parse().unwrap()
}

fn keys() -> Keyring {
    Keyring::from_json(r#"{"active":"k1","k1":"dashboard-test-key-0123456789abcdef"}"#).unwrap()
}

fn app() -> (App, String) {
    let reader = MemoryRollupReader::default();
    for (tenant, campaign) in [("acme", "spring"), ("acme", "autumn"), ("globex", "secret")] {
        let pk = rollup_partition(tenant, &Scope::Campaign(campaign.into()), Grain::Day);
        let c = Counters {
            sent: 10,
            ..Counters::default()
        };
        reader.add_rollup(&pk, "D#2026-12-02", &c);
        reader.set_directory(
            &format!("C#{tenant}"),
            &format!("c:{campaign}"),
            "2026-12-02T10:00:00Z",
        );
    }
    let api_keys = MemoryApiKeys::default();
    let globex_key = api_keys.issue("globex");
    let app = StatsApp {
        reader,
        keys: api_keys,
        dashboard: Dashboard {
            keys: Some(keys()),
            links: MemoryLinks::default(),
            live: MemoryLive::default(),
            alerts: MemoryAlerts::default(),
        },
        now,
    };
    (app, globex_key)
}

/// A recorded link's token.
async fn link(app: &App, tenant: &str, campaign: Option<&str>) -> (Link, String) {
    let link = Link::new(tenant, campaign, now().timestamp() + 3600);
    app.dashboard
        .links
        .record(&LinkRecord {
            link: link.clone(),
            created_at: now().to_rfc3339(),
            note: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let token = sign(&keys(), &link).unwrap();
    (link, token)
}

async fn request(
    app: &App,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> Response<Body> {
    let route = if path.starts_with("/dashboard/") && path != "/dashboard/signout" {
        "/dashboard/{path+}"
    } else {
        path
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = lambda_request(&GatewayRequest {
        method,
        route,
        path,
        query,
        headers: &headers,
        path_params: &BTreeMap::new(),
        body: b"",
        source_ip: "192.0.2.10",
    });
    stats_function::handle(app, req).await.unwrap()
}

async fn json_with_cookie(app: &App, token: &str, path: &str) -> (u16, Value) {
    let cookie = format!("other=1; beacon_dashboard={token}");
    let resp = request(app, "GET", path, "", &[("cookie", &cookie)]).await;
    let status = resp.status().as_u16();
    (status, serde_json::from_slice(resp.body()).unwrap())
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let (app, _) = app();
    let page = request(&app, "GET", "/dashboard/", "", &[]).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"));
    assert!(std::str::from_utf8(page.body())
        .unwrap()
        .contains("/dashboard/assets/app.js"));

    let redirect = request(&app, "GET", "/dashboard", "", &[]).await;
    assert_eq!(redirect.status(), 303);
    assert_eq!(redirect.headers()["location"], "/dashboard/");

    let plain = request(
        &app,
        "GET",
        "/dashboard/assets/vendor/uPlot.iife.min.js",
        "",
        &[],
    )
    .await;
    assert_eq!(
        plain.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let gz = request(
        &app,
        "GET",
        "/dashboard/assets/vendor/uPlot.iife.min.js",
        "",
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert!(gz.body().len() * 2 < plain.body().len(), "compressed");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(gz.body().as_ref())
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain.body().as_ref());

    assert_eq!(
        request(&app, "GET", "/dashboard/assets/../../etc/passwd", "", &[])
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn opening_a_link_sets_the_session_and_hides_the_token() {
    let (app, _) = app();
    let (_, token) = link(&app, "acme", Some("spring")).await;
    let resp = request(&app, "GET", "/dashboard/open", &format!("t={token}"), &[]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/dashboard/#/campaign/spring");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with(&format!("beacon_dashboard={token};")));
    for part in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=3600"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");

    for bad in ["", "not-a-token", &token[..token.len() - 2]] {
        let resp = request(&app, "GET", "/dashboard/open", &format!("t={bad}"), &[]).await;
        assert_eq!(resp.status(), 403, "{bad}");
        assert!(resp.headers().get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn a_session_answers_for_its_link_and_nothing_more() {
    let (app, globex_key) = app();
    let (_, tenant_token) = link(&app, "acme", None).await;
    let (campaign_link, campaign_token) = link(&app, "acme", Some("spring")).await;

    let (status, session) = json_with_cookie(&app, &tenant_token, "/v1/session").await;
    assert_eq!(status, 200);
    assert_eq!(session["tenant"], "acme");
    assert_eq!(session["campaign"], Value::Null);
    let (_, list) = json_with_cookie(&app, &tenant_token, "/v1/campaigns").await;
    assert_eq!(list["campaigns"].as_array().unwrap().len(), 2, "{list}");
    // The tenant is the link's: globex's campaign does not exist for it.
    assert_eq!(
        json_with_cookie(&app, &tenant_token, "/v1/campaigns/secret")
            .await
            .0,
        404
    );

    let (_, session) = json_with_cookie(&app, &campaign_token, "/v1/session").await;
    assert_eq!(session["campaign"], "spring");
    let (_, list) = json_with_cookie(&app, &campaign_token, "/v1/campaigns").await;
    let ids: Vec<&str> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["spring"]);
    assert_eq!(
        json_with_cookie(&app, &campaign_token, "/v1/campaigns/spring")
            .await
            .0,
        200
    );
    for path in [
        "/v1/campaigns/autumn",
        "/v1/campaigns/autumn/links",
        "/v1/campaigns/autumn/channels",
        "/v1/timeseries",
        "/v1/channels",
        "/v1/suppressions",
        "/v1/segments",
        "/v1/live",
        "/v1/alerts",
        "/v1/recipients/r-1/engagement",
        "/v1/recipients/r-1/messages",
    ] {
        let (status, body) = json_with_cookie(&app, &campaign_token, path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "outside_link_scope");
    }

    // A key presented with the cookie decides alone: globex's key sees globex.
    let cookie = format!("beacon_dashboard={tenant_token}");
    let auth = format!("Bearer {globex_key}");
    let resp = request(
        &app,
        "GET",
        "/v1/session",
        "",
        &[("cookie", &cookie), ("authorization", &auth)],
    )
    .await;
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["tenant"], "globex");

    // Revoked: refused on the next request.
    assert!(app
        .dashboard
        .links
        .revoke("acme", &campaign_link.id, "2026-12-03T09:01:00Z")
        .await
        .unwrap());
    let (status, body) = json_with_cookie(&app, &campaign_token, "/v1/session").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));
}

#[tokio::test]
async fn the_live_view_reads_the_last_minutes_of_its_tenant() {
    let (app, _) = app();
    let (_, token) = link(&app, "acme", None).await;
    let minute = minute_of(now());
    let mut batch = Batch::default();
    for (tenant, count) in [("acme", 3u64), ("globex", 5)] {
        batch
            .tenants
            .entry(tenant.into())
            .or_default()
            .counts
            .insert("message.opened".into(), count);
    }
    app.dashboard.live.record(&batch, minute, 1).await.unwrap();
    app.dashboard
        .live
        .record(&batch, minute - 3, 2)
        .await
        .unwrap();
    // Older than the view: not counted.
    app.dashboard
        .live
        .record(&batch, minute - 30, 3)
        .await
        .unwrap();
    let (status, live) = json_with_cookie(&app, &token, "/v1/live").await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["counts"]["message.opened"], 6);
    assert_eq!(live["minutes"], 10);
}

#[tokio::test]
async fn the_alerts_show_each_rule_with_its_state_and_history() {
    use beacon_domain::alert::store::{state_key, AlertStoreExt};
    use beacon_domain::alert::{Change, State, Status};
    let (app, globex_key) = app();
    let (_, token) = link(&app, "acme", None).await;
    let firing = State {
        status: Status::Firing,
        since: Some("2026-12-03T08:05:00Z".into()),
        breaches: 1,
        history: vec![Change {
            status: Status::Firing,
            at: "2026-12-03T08:05:00Z".into(),
            value: Some(0.08),
        }],
        ..State::default()
    };
    app.dashboard
        .alerts
        .put_json("acme", &state_key("ses-bounce-rate"), &firing, None)
        .await
        .unwrap();
    let (status, body) = json_with_cookie(&app, &token, "/v1/alerts").await;
    assert_eq!(status, 200, "{body}");
    let rules = body["rules"].as_array().unwrap();
    let bounce = rules.iter().find(|r| r["id"] == "ses-bounce-rate").unwrap();
    assert_eq!(bounce["status"], "firing");
    assert_eq!(bounce["history"][0]["value"], 0.08);
    let complaint = rules
        .iter()
        .find(|r| r["id"] == "ses-complaint-rate")
        .unwrap();
    assert_eq!(complaint["status"], "ok");
    // Another tenant's key sees its own (untouched) rules only.
    let auth = format!("Bearer {globex_key}");
    let resp = request(&app, "GET", "/v1/alerts", "", &[("authorization", &auth)]).await;
    let other: Value = serde_json::from_slice(resp.body()).unwrap();
    assert!(other["rules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "ok"));
}
