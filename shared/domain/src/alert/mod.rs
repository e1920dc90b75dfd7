//! Alerts: rules over a tenant's hourly rollups, evaluated on a schedule, and the
//! notices they send: one when a rule starts to breach, one when it stops.
//!
//! A rule is either a **threshold** (a metric over a window compared with a value) or
//! an **anomaly** (the delivery rate over the window more than N standard deviations
//! below its hourly baseline of the 7 days before). Every tenant also has the built-in
//! rules [`defaults`] at SES's account review levels, which it may change or disable.
//! Spend is also watched against a monthly [`Budget`], at 75%, 90% and 100%.
//!
//! Metrics, over the window's hourly rollups of the tenant (all campaigns and
//! channels):
//!
//! | metric          | value                                   | volume (denominator) |
//! |-----------------|-----------------------------------------|----------------------|
//! | bounce_rate     | (hard + soft bounces) / sent            | sent                 |
//! | complaint_rate  | complaints / delivered                  | delivered            |
//! | delivery_rate   | delivered / sent                        | sent                 |
//! | open_rate       | human opens / delivered (not unique)    | delivered            |
//! | error_rate      | failed / sent                           | sent                 |
//! | spend           | cost, in the tenant's currency          | sent                 |
//!
//! The first four use the definitions of [`crate::stats::Rates`]; an open rate over a
//! window counts every human open, because unique sets are kept per campaign, not per
//! hour. A rate rule judges nothing until the window holds `min_volume` (default 100)
//! of its denominator: two bounces out of ten mails are no spike.

pub mod budget;
pub mod evaluate;
pub mod outbound;
pub mod overview;
pub mod reading;
pub mod rule;
pub mod state;
pub mod store;
pub mod webhook;

pub use budget::*;
pub use reading::*;
pub use rule::*;
pub use state::*;
pub use webhook::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::Counters;
    use chrono::{DateTime, Duration, Utc};
    use hmac::{Hmac, Mac};
    use serde_json::{json, Value};
    use sha2::Sha256;

    fn at(t: &str) -> DateTime<Utc> {
        t.parse().unwrap()
    }

    fn input(v: Value) -> RuleInput {
        serde_json::from_value(v).unwrap()
    }

    fn hours(spec: &[(&str, u64, u64, u64)]) -> Hours {
        // (hour, sent, delivered, bounced)
        let mut h = Hours::default();
        for (t, sent, delivered, bounced) in spec {
            let c = Counters {
                sent: *sent,
                delivered: *delivered,
                bounced_hard: *bounced,
                ..Default::default()
            };
            h.0.insert(at(t), c);
        }
        h
    }

    #[test]
    fn a_breach_fires_once_and_resolves_once() {
        let rule = input(json!({"id": "bounces", "metric": "bounce_rate", "operator": ">", "threshold": "5%", "window": "1h"}))
            .validate()
            .unwrap();
        let mut state = State::default();
        let mut notices = Vec::new();
        // 10:xx: 8% bounces; stays so at 10:30 and 11:10 (window 10:00-11:59); then clean.
        let traffic = hours(&[
            ("2026-11-23T10:00:00Z", 500, 460, 40),
            ("2026-11-23T12:00:00Z", 500, 495, 5),
            ("2026-11-23T13:00:00Z", 500, 495, 5),
        ]);
        for now in [
            "2026-11-23T10:10:00Z",
            "2026-11-23T10:30:00Z",
            "2026-11-23T11:10:00Z",
            "2026-11-23T12:10:00Z",
            "2026-11-23T13:10:00Z",
            "2026-11-23T13:20:00Z",
        ] {
            let reading = read(&rule, &traffic, at(now));
            let (next, notice) = step("acme", &rule, &state, &reading, at(now));
            state = next;
            notices.extend(notice);
        }
        let kinds: Vec<NoticeKind> = notices.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![NoticeKind::Firing, NoticeKind::Resolved]);
        assert_eq!(notices[0].value, Some(0.08));
        assert_eq!(notices[0].breach_id, "acme/bounces/1");
        assert_eq!(notices[1].breach_id, "acme/bounces/1", "one breach, one id");
        assert_eq!(notices[1].since, "2026-11-23T10:10:00Z");
        assert!(
            notices[0].summary.contains("bounce rate is 8%"),
            "{}",
            notices[0].summary
        );
        assert_eq!(state.status, Status::Ok);
        // The history holds the two changes with their readings, not the evaluations
        // that changed nothing.
        let history: Vec<(Status, &str)> = state
            .history
            .iter()
            .map(|c| (c.status, c.at.as_str()))
            .collect();
        assert_eq!(
            history,
            [
                (Status::Firing, "2026-11-23T10:10:00Z"),
                (Status::Ok, "2026-11-23T12:10:00Z")
            ]
        );
        assert_eq!(state.history[0].value, Some(0.08));
        // A second breach is a new one.
        let spike = hours(&[("2026-11-23T15:00:00Z", 200, 150, 50)]);
        let reading = read(&rule, &spike, at("2026-11-23T15:05:00Z"));
        let (_, notice) = step("acme", &rule, &state, &reading, at("2026-11-23T15:05:00Z"));
        assert_eq!(notice.unwrap().breach_id, "acme/bounces/2");
    }

    #[test]
    fn too_little_traffic_judges_nothing_and_ends_a_breach() {
        let rule = input(json!({"id": "b", "metric": "bounce_rate", "operator": ">=", "threshold": "5%", "window": "1h"}))
            .validate()
            .unwrap();
        assert_eq!(rule.min_volume, 100);
        let few = hours(&[("2026-11-23T10:00:00Z", 20, 10, 10)]);
        let reading = read(&rule, &few, at("2026-11-23T10:30:00Z"));
        assert_eq!((reading.breached, reading.value), (None, Some(0.5)));
        let (state, notice) = step(
            "acme",
            &rule,
            &State::default(),
            &reading,
            at("2026-11-23T10:30:00Z"),
        );
        assert_eq!((state.status, notice), (Status::Ok, None));
        let firing = State {
            status: Status::Firing,
            ..Default::default()
        };
        let (state, notice) = step("acme", &rule, &firing, &reading, at("2026-11-23T10:30:00Z"));
        assert_eq!(state.status, Status::Ok);
        let notice = notice.unwrap();
        assert_eq!(notice.kind, NoticeKind::Resolved);
        assert!(notice.summary.contains("too little traffic"));
    }

    #[test]
    fn an_anomaly_is_a_delivery_rate_far_below_its_baseline() {
        let rule = input(json!({"id": "dip", "metric": "delivery_rate", "sigmas": 3}))
            .validate()
            .unwrap();
        assert_eq!(rule.window_hours, 1);
        // A week of hours alternating 98% and 99% (mean 98.5%, σ 0.5 pp): bound 97%.
        let mut spec = Vec::new();
        let start = at("2026-11-16T10:00:00Z");
        let times: Vec<String> = (0..168)
            .map(|i| crate::stats::rfc3339(start + Duration::hours(i)))
            .collect();
        for (i, t) in times.iter().enumerate() {
            spec.push((t.as_str(), 1000, if i % 2 == 0 { 980 } else { 990 }, 0));
        }
        let mut traffic = hours(&spec);
        let now = at("2026-11-23T11:20:00Z");
        let window = |delivered: u64| Counters {
            sent: 1000,
            delivered,
            ..Default::default()
        };
        traffic.0.insert(at("2026-11-23T10:00:00Z"), window(970));
        traffic.0.insert(at("2026-11-23T11:00:00Z"), window(970));
        let r = read(&rule, &traffic, now);
        assert!((r.threshold.unwrap() - 0.97).abs() < 1e-9, "{r:?}");
        assert_eq!(r.breached, Some(false), "97% is at the bound, not below");
        traffic.0.insert(at("2026-11-23T11:00:00Z"), window(900));
        let r = read(&rule, &traffic, now);
        assert_eq!(r.breached, Some(true));
        assert_eq!(r.detail, "baseline 98.5% ± 0.5% over 168 h");
        // Without a day of history there is nothing to compare with.
        let young = hours(&[("2026-11-23T11:00:00Z", 1000, 500, 0)]);
        assert_eq!(read(&rule, &young, now).breached, None);
    }

    #[test]
    fn budget_notices_come_at_75_90_and_100_percent_once_a_month() {
        let budget = Budget::new(500.0, Some("USD".into())).unwrap();
        let mut state = BudgetState::default();
        let mut levels = Vec::new();
        for (now, spent) in [
            ("2026-11-05T10:00:00Z", 300.0), // 60%
            ("2026-11-10T10:00:00Z", 375.0), // 75%
            ("2026-11-11T10:00:00Z", 400.0), // 80%: already told
            ("2026-11-20T10:00:00Z", 520.0), // 104%: jumps past 90
            ("2026-11-21T10:00:00Z", 530.0), // nothing new
            ("2026-12-01T10:00:00Z", 460.0), // new month, 92%
        ] {
            let (next, notice) = budget_step("acme", &budget, &state, spent, at(now));
            state = next;
            if let Some(n) = notice {
                levels.push((n.breach_id.clone(), n.summary.clone()));
            }
        }
        let ids: Vec<&str> = levels.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "acme/budget/2026-11/75",
                "acme/budget/2026-11/100",
                "acme/budget/2026-12/90"
            ]
        );
        assert_eq!(
            levels[1].1,
            "100% of the 2026-11 budget used: spent 520.00 USD of 500.00 USD"
        );
        assert!(Budget::new(0.0, None).is_err());
        assert!(Budget::new(10.0, Some("usd".into()))
            .unwrap_err()
            .contains("ISO 4217"));
    }

    #[test]
    fn webhook_signatures_verify_and_tampering_fails() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        let body = br#"{"type":"alert.firing"}"#;
        let header = sign(&secret, 1_795_000_000, body);
        assert!(header.starts_with("t=1795000000,v1="));
        assert_eq!(verify(&secret, &header, body, 1_795_000_100, 300), Ok(()));
        assert!(verify(&secret, &header, b"{}", 1_795_000_100, 300)
            .unwrap_err()
            .contains("does not match"));
        assert!(verify("whsec_other", &header, body, 1_795_000_100, 300).is_err());
        assert!(verify(&secret, &header, body, 1_795_001_000, 300)
            .unwrap_err()
            .contains("old"));
        // Hand-checked: HMAC-SHA256("k", "1.x").
        assert_eq!(
            sign("k", 1, b"x"),
            format!(
                "t=1,v1={}",
                hex::encode(&{
                    let mut m = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
                    m.update(b"1.x");
                    m.finalize().into_bytes().to_vec()
                })
            )
        );
    }

    #[test]
    fn hostile_signature_headers_are_refused_without_panicking() {
        let body = b"{}";
        let now = 1_795_000_000;
        for header in [
            "t=-9223372036854775808,v1=00",
            "t=9223372036854775807,v1=00",
            "t=-1,v1=00",
            "t=99999999999999999999999,v1=00",
            "t=,v1=",
            "t=abc",
            "v1=deadbeef",
            "",
            ",,,===,t",
            "t=1795000000,v1=\u{fffd}\u{0}",
        ] {
            assert!(verify("k", header, body, now, 300).is_err(), "{header:?}");
            // The receiver's clock at either end of the range, too.
            assert!(
                verify("k", header, body, i64::MIN, 300).is_err(),
                "{header:?}"
            );
            assert!(
                verify("k", header, body, i64::MAX, i64::MAX).is_err(),
                "{header:?}"
            );
        }
        let e = verify("k", "t=-9223372036854775808,v1=00", body, now, 300).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        // A genuine signature at the extremes still verifies.
        for t in [i64::MIN, i64::MAX] {
            assert_eq!(verify("k", &sign("k", t, body), body, t, 0), Ok(()));
        }
        assert!(verify("k", &sign("k", i64::MAX, body), body, -1, i64::MAX).is_err());
    }

    #[test]
    fn bad_rule_definitions_are_refused_with_every_problem_named() {
        let err = |v: Value| input(v).validate().unwrap_err().to_string();
        let e = err(json!({"id": "Bad Id", "metric": "bounces", "window": "2w"}));
        assert!(e.contains("id `Bad Id` must be 1-64 characters"), "{e}");
        assert!(
            e.contains("unknown metric `bounces`; one of bounce_rate"),
            "{e}"
        );
        assert!(e.contains("window `2w` must be whole hours or days"), "{e}");
        let e = err(json!({"id": "b", "metric": "bounce_rate", "operator": "~", "threshold": 5}));
        assert!(e.contains("unknown operator `~`"), "{e}");
        assert!(
            e.contains("must be a percentage from 0% to 100%, like \"5%\" (got 5)"),
            "{e}"
        );
        let e = err(json!({"id": "b", "metric": "complaint_rate", "operator": ">"}));
        assert!(e.contains("threshold is missing"), "{e}");
        let e =
            err(json!({"id": "b", "metric": "bounce_rate", "threshold": "150%", "operator": ">"}));
        assert!(e.contains("(got \"150%\")"), "{e}");
        let e = err(json!({"id": "b", "metric": "open_rate", "sigmas": 0, "operator": "<"}));
        assert!(e.contains("watch delivery_rate only"), "{e}");
        assert!(e.contains("takes sigmas, not an operator"), "{e}");
        assert!(e.contains("sigmas must be above 0"), "{e}");
        let e = err(json!({"id": "s", "metric": "spend", "operator": ">", "threshold": -1}));
        assert!(e.contains("amount of 0 or more"), "{e}");
        assert!(err(
            json!({"id": "w", "metric": "spend", "operator": ">", "threshold": 1, "window": "8d"})
        )
        .contains("from 1h to 7d"));
        // Unknown fields are refused by the reader.
        assert!(serde_json::from_value::<RuleInput>(
            json!({"id": "x", "metric": "spend", "treshold": 1})
        )
        .is_err());
        // And good ones are read as meant.
        let spend = input(json!({"id": "spend", "metric": "spend", "operator": ">", "threshold": "250.50", "window": "1d"}))
            .validate()
            .unwrap();
        assert_eq!((spend.window_hours, spend.min_volume), (24, 0));
        assert_eq!(spend.describe(), "spend > 250.50 over 24 h");
        assert_eq!(parse_window("7d"), Ok(168));
    }

    /// Resolves the test's names: a public receiver, names that lead inside, and
    /// nothing else (no real DNS in tests).
    fn names() -> crate::testkit::memory::StaticLookup {
        let lookup = crate::testkit::memory::StaticLookup::default();
        let ip = |t: &str| -> std::net::IpAddr { t.parse().unwrap() };
        lookup.set(
            "hooks.acme.example",
            &[
                ip("93.184.215.14"),
                ip("2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
            ],
        );
        lookup.set("metadata.google.internal", &[ip("169.254.169.254")]);
        lookup.set("intranet.acme.example", &[ip("10.20.30.40")]);
        lookup.set(
            "half.acme.example",
            &[ip("93.184.215.14"), ip("192.168.1.1")],
        );
        lookup.set("v6.acme.example", &[ip("fd00:ec2::254")]);
        lookup.set("localhost", &[ip("127.0.0.1"), ip("::1")]);
        lookup
    }

    #[tokio::test]
    async fn webhook_urls_reach_public_addresses_only_in_every_spelling() {
        use crate::alert::outbound::Policy;
        let lookup = names();
        let check = |url: &'static str, policy: Policy| {
            let lookup = &lookup;
            async move { validate_webhook_url(url, policy, lookup).await }
        };
        // (URL, what the refusal says)
        let refused = [
            // The metadata service, as the url crate reads every IPv4 spelling.
            ("https://169.254.169.254/latest/meta-data/", "goes to 169.254.169.254, the cloud instance metadata service"),
            ("https://2852039166/", "goes to 169.254.169.254, the cloud instance metadata service"),
            ("https://0xA9FEA9FE/", "goes to 169.254.169.254, the cloud instance metadata service"),
            ("https://0xa9.0xfe.0xa9.0xfe/", "goes to 169.254.169.254"),
            ("https://0251.0376.0251.0376/", "goes to 169.254.169.254"),
            ("https://169.254.43518/", "goes to 169.254.169.254"),
            ("https://%31%36%39.254.169.254/", "goes to 169.254.169.254"),
            ("https://\u{ff11}\u{ff16}\u{ff19}.254.169.254/", "goes to 169.254.169.254"),
            ("https://169.254.170.2/v2/credentials", "goes to 169.254.170.2, the container credentials service"),
            ("https://[fd00:ec2::254]/", "goes to fd00:ec2::254, the cloud instance metadata service"),
            ("https://[::ffff:169.254.169.254]/", "goes to ::ffff:169.254.169.254, the cloud instance metadata service"),
            ("https://[::ffff:a9fe:a9fe]/", "the cloud instance metadata service"),
            ("https://[64:ff9b::a9fe:a9fe]/", "goes to 64:ff9b::a9fe:a9fe, the cloud instance metadata service"),
            ("https://[::a9fe:a9fe]/", "an IPv4-compatible address"),
            // This machine: the Lambda Runtime API on 127.0.0.1:9001, short forms, IPv6.
            ("https://127.0.0.1:9001/2018-06-01/runtime/invocation/next", "goes to 127.0.0.1, a loopback address"),
            ("https://127.1/", "goes to 127.0.0.1, a loopback address"),
            ("https://0x7f.1/", "goes to 127.0.0.1"),
            ("https://017700000001/", "goes to 127.0.0.1"),
            ("https://127.0.0.1./", "goes to 127.0.0.1"),
            ("https://0x7f000001./", "goes to 127.0.0.1"),
            ("https://[0:0:0:0:0:ffff:7f00:1]/", "a loopback address"),
            ("https://0/", "goes to 0.0.0.0"),
            ("https://[::1]/", "goes to ::1, a loopback address"),
            ("https://[::]/", "the unspecified address"),
            ("https://localhost/hook", "goes to this machine (localhost)"),
            ("https://api.localhost./hook", "goes to this machine (localhost)"),
            // Networks inside.
            ("https://10.0.0.8/", "a private address (RFC 1918)"),
            ("https://172.16.5.4/", "a private address (RFC 1918)"),
            ("https://192.168.1.1/", "a private address (RFC 1918)"),
            ("https://100.100.100.200/", "carrier-grade NAT"),
            ("https://[fe80::1]/", "a link-local address"),
            ("https://[fc00::5]/", "a unique local (private) address"),
            ("https://224.0.0.1/", "a multicast address"),
            ("https://255.255.255.255/", "the broadcast address"),
            ("https://192.0.2.10/", "a documentation address"),
            ("https://198.18.0.1/", "a benchmarking address"),
            // Names are judged by what they resolve to, every address of them.
            ("https://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal resolves to 169.254.169.254, the cloud instance metadata service"),
            ("https://intranet.acme.example/hook", "intranet.acme.example resolves to 10.20.30.40, a private address"),
            ("https://half.acme.example/hook", "half.acme.example resolves to 192.168.1.1"),
            ("https://v6.acme.example/hook", "v6.acme.example resolves to fd00:ec2::254"),
            // Plain http, other schemes, credentials, control characters.
            ("http://hooks.acme.example/x", "must use https"),
            ("http://127.0.0.1:9000/hook", "http to this machine only with BEACON_ALLOW_LOCAL_WEBHOOKS=1"),
            ("ftp://hooks.acme.example/x", "must use https"),
            ("file:///etc/passwd", "must use https"),
            ("gopher://127.0.0.1:6379/_INFO", "must use https"),
            ("https://user:secret@hooks.acme.example/x", "carries credentials"),
            ("https://token@hooks.acme.example/x", "carries credentials"),
            ("https://hooks.acme.example/x\r\nX-Injected: 1", "contains the control character '\\r'"),
            ("https://hooks.acme.example/x\ny", "contains the control character '\\n'"),
            ("https://hooks.acme.example/\tx", "contains the control character '\\t'"),
            ("https://hooks.acme.example/\u{0}", "control character"),
            ("https://hooks.acme.example/\u{85}", "control character"),
            ("not a url", "is not a URL"),
        ];
        for (url, says) in refused {
            let e = check(url, Policy::PUBLIC_ONLY).await.unwrap_err();
            assert!(e.starts_with("webhook URL `"), "{url}: {e}");
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("secret@") && !e.contains("token@"), "{e}");
        }
        // The error never echoes a raw control character.
        let e = check("https://a.example/\r\n", Policy::PUBLIC_ONLY)
            .await
            .unwrap_err();
        assert!(!e.contains('\r') && !e.contains('\n'), "{e:?}");

        // Allowed, and stored as the url crate writes them.
        for (url, stored) in [
            ("https://93.184.215.14/hook", "https://93.184.215.14/hook"),
            (
                "https://[2606:4700::1111]/hook",
                "https://[2606:4700::1111]/hook",
            ),
            (
                "https://hooks.acme.example/beacon",
                "https://hooks.acme.example/beacon",
            ),
            (
                "HTTPS://Hooks.ACME.example:443/b?x=1",
                "https://hooks.acme.example/b?x=1",
            ),
            (
                "https://hooks.acme.example/a b",
                "https://hooks.acme.example/a%20b",
            ),
        ] {
            let ok = check(url, Policy::PUBLIC_ONLY).await.unwrap();
            assert_eq!((ok.url.as_str(), ok.unresolved), (stored, None), "{url}");
        }
        // A name that does not resolve now is taken, and said so: deliveries check it.
        let later = check("https://not-yet.acme.example/hook", Policy::PUBLIC_ONLY)
            .await
            .unwrap();
        assert!(later
            .unresolved
            .unwrap()
            .contains("not-yet.acme.example does not resolve"));

        // The local switch: http and https to this machine, and nothing more.
        let local = Policy::LOCAL_DEVELOPMENT;
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost:9000/hook",
            "http://[::1]:9000/",
            "https://127.0.0.1/",
        ] {
            assert!(check(url, local).await.is_ok(), "{url}");
        }
        for (url, says) in [
            ("http://hooks.acme.example/x", "must use https"),
            ("http://10.0.0.8/", "must use https"),
            (
                "https://169.254.169.254/",
                "the cloud instance metadata service",
            ),
            ("https://intranet.acme.example/", "a private address"),
        ] {
            let e = check(url, local).await.unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn stored_rules_replace_the_defaults_of_their_id() {
        assert_eq!(
            defaults()[0].describe(),
            "bounce_rate >= 5% over 24 h, at least 100 sent"
        );
        assert_eq!(
            defaults()[1].describe(),
            "complaint_rate >= 0.1% over 24 h, at least 100 delivered"
        );
        let mut off = defaults()[0].clone();
        off.enabled = false;
        let extra = input(
            json!({"id": "errors", "metric": "error_rate", "operator": ">", "threshold": "2%"}),
        )
        .validate()
        .unwrap();
        let rules = effective(&[off, extra]);
        let ids: Vec<(&str, bool)> = rules.iter().map(|r| (r.id.as_str(), r.enabled)).collect();
        assert_eq!(
            ids,
            vec![
                ("ses-bounce-rate", false),
                ("ses-complaint-rate", true),
                ("errors", true)
            ]
        );
    }
}
