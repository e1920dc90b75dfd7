//! An alert whose webhook leads inside (here: to this machine) is a failed delivery,
//! and nothing reaches the address: the evaluation of `beacon-domain` with the HTTP
//! sender of this crate, over in-memory stores.

use beacon_aws::webhook::HttpWebhooks;
use beacon_domain::alert::evaluate::{Alerter, Settings};
use beacon_domain::alert::outbound::Policy;
use beacon_domain::alert::store::{AlertStoreExt, NOTIFY_KEY};
use beacon_domain::alert::{Destinations, Webhook};
use beacon_domain::rollup::{Counters, TENANTS_PARTITION};
use beacon_domain::testkit::memory::{MemoryAlerts, MemoryMailer, StaticLookup};
use beacon_domain::testkit::rollups::MemoryRollupReader;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

struct World {
    reader: MemoryRollupReader,
    store: MemoryAlerts,
    mailer: MemoryMailer,
    settings: Settings,
}

fn world() -> World {
    let w = World {
        reader: MemoryRollupReader::default(),
        store: MemoryAlerts::default(),
        mailer: MemoryMailer::default(),
        settings: Settings {
            from: "alerts@example.com".into(),
        },
    };
    w.reader
        .set_directory(TENANTS_PARTITION, "acme", "2026-11-23T10:00:00Z");
    w
}

#[tokio::test]
async fn a_webhook_to_an_address_inside_is_a_failed_delivery_and_nothing_is_sent() {
    // The receiver's name now leads to this machine, where a listener counts
    // connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let lookup = Arc::new(StaticLookup::default());
    lookup.set("hooks.acme.example", &["127.0.0.1".parse().unwrap()]);
    let webhooks = HttpWebhooks::with_lookup(
        std::time::Duration::from_secs(2),
        Policy::PUBLIC_ONLY,
        lookup,
    );
    let w = world();
    let to = Destinations {
        emails: vec!["ops@acme.example".into()],
        webhook: Some(Webhook {
            url: format!("https://hooks.acme.example:{port}/beacon"),
            secret: "whsec_test".into(),
        }),
    };
    w.store
        .put_json("acme", NOTIFY_KEY, &to, None)
        .await
        .unwrap();
    // An hour with 12% hard bounces: the built-in bounce rule breaches.
    let bouncy = Counters {
        sent: 1000,
        delivered: 880,
        bounced_hard: 120,
        ..Default::default()
    };
    w.reader
        .add_tenant_hour("acme", at("2026-11-23T10:00:00Z"), &bouncy);
    let alerter = Alerter {
        reader: &w.reader,
        store: &w.store,
        mailer: &w.mailer,
        webhooks: &webhooks,
        settings: &w.settings,
    };
    let out = alerter.evaluate("acme", at("2026-11-23T10:20:00Z")).await;
    assert_eq!(out.error, None);
    assert_eq!(out.fired, vec!["ses-bounce-rate"]);
    assert_eq!(out.delivered, 1, "the email went");
    assert_eq!(out.failures.len(), 1);
    assert!(
        out.failures[0]
            .contains("refused: hooks.acme.example resolves to 127.0.0.1, a loopback address"),
        "{}",
        out.failures[0]
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing was sent");
    // The notice waits for the webhook, as any failed delivery does.
    let cfg = w.store.tenant("acme").await.unwrap();
    let unsent = &cfg.states["ses-bounce-rate"].unsent;
    assert_eq!(unsent.len(), 1);
    assert!(unsent[0].webhook && !unsent[0].email);
}
