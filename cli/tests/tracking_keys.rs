//! `beacon tracking-key derive`, and `instrument` / `sign-url` signing with a tenant
//! key or the master keyring, run as the binary an operator or a tenant runs.

use beacon_domain::tracking::token::{Keyring, TokenKind};
use std::path::PathBuf;
use std::process::{Command, Output};

const KEYS: &str = r#"{"active":"k2","k2":"cli-test-master-key-2-0123456789abcdef","k1":"cli-test-master-key-1-0123456789abcdef"}"#;
const BASE: &str = "https://t.example.com";

fn keyring() -> Keyring {
    Keyring::from_json(KEYS).unwrap()
}

/// `beacon` with only the variables given (no AWS, no keys from the caller's shell).
fn beacon(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_beacon"));
    command
        .args(args)
        .env_clear()
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "beacon failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "beacon succeeded");
    assert!(out.stdout.is_empty(), "nothing is printed when refused");
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A file in a directory of its own, removed with it.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("beacon-cli-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
        Scratch(dir.join(name))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

/// A tenant key file of `tenant` derived by the binary.
fn derive(tenant: &str, extra: &[&str]) -> (Scratch, serde_json::Value) {
    let mut args = vec!["tracking-key", "derive", "--tenant", tenant];
    args.extend_from_slice(extra);
    let json = stdout(&beacon(&args, &[("BEACON_TRACKING_KEYS", KEYS)], None));
    let value = serde_json::from_str(&json).unwrap();
    (Scratch::new(&format!("{tenant}.json"), &json), value)
}

fn token_after<'a>(text: &'a str, route: &str) -> &'a str {
    let at = text
        .find(&format!("{BASE}{route}"))
        .expect("a tracking URL")
        + BASE.len()
        + 3;
    let rest = &text[at..];
    &rest[..rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(rest.len())]
}

const LINK: [&str; 8] = [
    "--campaign",
    "spring",
    "--message",
    "m-1",
    "--recipient",
    "r-1",
    "--base-url",
    BASE,
];

#[test]
fn a_derived_tenant_key_instruments_that_tenant_with_no_master_key() {
    let (file, json) = derive("acme", &[]);
    assert_eq!(json["tenant"], "acme");
    assert_eq!(json["key_id"], "k2", "the active master key");
    let path = file.path();
    let email = r#"<html><body><a href="https://shop.example/sale">Sale</a></body></html>"#;
    let mut args = vec!["instrument", "--tenant-key", path];
    args.extend_from_slice(&LINK);
    // No BEACON_TRACKING_KEYS: the tenant key is all the tenant has.
    let html = stdout(&beacon(&args, &[], Some(email)));
    let keys = keyring();
    let click = keys
        .verify(token_after(&html, "/c/"), TokenKind::Click, 0)
        .unwrap();
    assert_eq!(
        click.recipient.tenant_id, "acme",
        "the key's tenant by default"
    );
    assert_eq!(click.url.as_deref(), Some("https://shop.example/sale"));
    assert_eq!(click.key_id, "k2");
    let open = keys
        .verify(token_after(&html, "/o/"), TokenKind::Open, 0)
        .unwrap();
    assert_eq!(open.recipient.tenant_id, "acme");

    // Naming its own tenant is fine; another tenant is refused.
    args.extend_from_slice(&["--tenant", "acme"]);
    stdout(&beacon(&args, &[], Some(email)));
    let len = args.len();
    args[len - 1] = "globex";
    let err = refused(&beacon(&args, &[], Some(email)));
    assert!(
        err.contains("is for tenant `acme`") && err.contains("`globex`"),
        "{err}"
    );
}

#[test]
fn sign_url_with_a_tenant_key_signs_for_its_tenant_only() {
    let (file, _) = derive("acme", &["--key-id", "k1"]);
    let path = file.path();
    let mut args = vec!["sign-url", "--tenant-key", path];
    args.extend_from_slice(&LINK);
    args.push("https://shop.example/a?b=1");
    let url = stdout(&beacon(&args, &[], None));
    let claim = keyring()
        .verify(token_after(&url, "/c/"), TokenKind::Click, 0)
        .unwrap();
    assert_eq!(claim.key_id, "k1", "derived from the key asked for");
    assert_eq!(claim.recipient.tenant_id, "acme");

    args.extend_from_slice(&["--tenant", "globex"]);
    let err = refused(&beacon(&args, &[], None));
    assert!(err.contains("cannot sign links for `globex`"), "{err}");
}

#[test]
fn the_master_keyring_signs_for_any_valid_tenant_and_nothing_else() {
    let env = [("BEACON_TRACKING_KEYS", KEYS)];
    for tenant in ["acme", "globex"] {
        let mut args = vec!["sign-url", "--open", "--tenant", tenant];
        args.extend_from_slice(&LINK);
        let url = stdout(&beacon(&args, &env, None));
        let claim = keyring()
            .verify(token_after(&url, "/o/"), TokenKind::Open, 0)
            .unwrap();
        assert_eq!(claim.recipient.tenant_id, tenant);
    }
    for bad in ["", "acme#D", "a/b"] {
        let mut args = vec!["sign-url", "--open", "--tenant", bad];
        args.extend_from_slice(&LINK);
        let err = refused(&beacon(&args, &env, None));
        assert!(err.contains("is not a tenant id"), "{bad:?}: {err}");
        let err = refused(&beacon(
            &["tracking-key", "derive", "--tenant", bad],
            &env,
            None,
        ));
        assert!(err.contains("is not a tenant id"), "{bad:?}: {err}");
    }
    let err = refused(&beacon(
        &[
            "tracking-key",
            "derive",
            "--tenant",
            "acme",
            "--key-id",
            "k9",
        ],
        &env,
        None,
    ));
    assert!(err.contains("`k9` is not in the keyring"), "{err}");
}

#[test]
fn a_bad_tenant_key_or_base_url_is_refused_with_the_reason() {
    let bad_key = Scratch::new(
        "bad.json",
        r#"{"tenant":"acme","key_id":"k1","secret":"c2hvcnQ"}"#,
    );
    let mut args = vec!["sign-url", "--open", "--tenant-key", bad_key.path()];
    args.extend_from_slice(&LINK);
    let err = refused(&beacon(&args, &[], None));
    assert!(err.contains("the secret is not 32 bytes"), "{err}");

    let (file, _) = derive("acme", &[]);
    for (base, why) in [
        ("https://t.example.com/?x=1", "query or a fragment"),
        ("https://t.example.com/#top", "query or a fragment"),
        ("t.example.com", "absolute http(s) URL"),
        ("javascript:alert(1)", "absolute http(s) URL"),
    ] {
        let err = refused(&beacon(
            &[
                "sign-url",
                "--open",
                "--tenant-key",
                file.path(),
                "--message",
                "m-1",
                "--recipient",
                "r-1",
                "--base-url",
                base,
            ],
            &[],
            None,
        ));
        assert!(err.contains(base) && err.contains(why), "{base}: {err}");
    }
}

#[test]
fn keys_generate_still_answers_under_its_old_name() {
    for name in ["tracking-key", "keys"] {
        let json = stdout(&beacon(&[name, "generate", "--id", "k7"], &[], None));
        let ring = Keyring::from_json(&json).unwrap();
        assert_eq!(ring.active_key_id(), "k7");
    }
}
