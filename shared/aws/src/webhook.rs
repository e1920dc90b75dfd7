//! Webhook notices over HTTP ([`beacon_domain::alert::store::WebhookSender`]), only to
//! destinations [`beacon_domain::alert::outbound`] allows: the URL is checked before each
//! request, and names are resolved, checked and connected to by a guarded resolver.

use beacon_domain::alert::outbound::{self, check_resolved, Lookup, Policy, LOOKUP_TIMEOUT};
use beacon_domain::alert::store::{WebhookError, WebhookSender};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// The HTTP adapter (reqwest, rustls), with a short timeout: a slow receiver must not
/// hold up every other tenant's alerts. Every request goes only where
/// [`beacon_domain::alert::outbound`] allows: the URL is checked before each request,
/// and names are resolved, checked and connected to by the client's guarded resolver.
#[derive(Debug, Clone)]
pub struct HttpWebhooks {
    client: reqwest::Client,
    policy: Policy,
}

impl HttpWebhooks {
    /// With the system's resolver.
    pub fn new(timeout: std::time::Duration, policy: Policy) -> Self {
        Self::with_lookup(timeout, policy, Arc::new(SystemLookup))
    }

    /// With names resolved by `lookup` (tests, fixed mappings).
    pub fn with_lookup(
        timeout: std::time::Duration,
        policy: Policy,
        lookup: Arc<dyn Lookup>,
    ) -> Self {
        HttpWebhooks {
            client: client_builder(policy, lookup)
                .timeout(timeout)
                .user_agent(concat!("Beacon-Alerts/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("an HTTP client builds"),
            policy,
        }
    }
}

impl WebhookSender for HttpWebhooks {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, WebhookError> {
        // Stored URLs are checked again: they may predate the checks, and an address
        // literal is connected to without any lookup.
        let checked = outbound::check_url(url, self.policy)
            .map_err(|e| WebhookError(format!("POST refused: {e}")))?;
        let shown = checked.to_string();
        let mut request = self
            .client
            .post(checked)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| match outbound::refusal(&e) {
                Some(refused) => WebhookError(format!("POST {shown} refused: {refused}")),
                None => WebhookError(format!("POST {shown}: {}", with_causes(&e))),
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(WebhookError(format!(
                "POST {shown}: the receiver answered {status}"
            )))
        }
    }
}

/// An error and its causes, `: `-separated (reqwest's own message names no cause).
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// The system's resolver (`getaddrinfo`, as the rest of the process resolves).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
                Ok(addrs) => Ok(addrs?.map(|a| a.ip()).collect()),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "looking {host} up took more than {} s",
                        LOOKUP_TIMEOUT.as_secs()
                    ),
                )),
            }
        })
    }
}

/// reqwest's resolver for tenant-chosen destinations: looks the name up and hands the
/// connector the addresses only if every one of them passes the policy.
pub struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    policy: Policy,
}

impl GuardedResolver {
    pub fn new(lookup: Arc<dyn Lookup>, policy: Policy) -> Self {
        GuardedResolver { lookup, policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.lookup.clone();
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses = lookup.lookup(&host).await?;
            check_resolved(&host, &addresses, policy)?;
            // Port 0: the connector puts in the URL's port (or the scheme's).
            let addrs: reqwest::dns::Addrs =
                Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// A client for tenant-chosen destinations: every name resolved through
/// [`GuardedResolver`], no proxy (a proxy would resolve the name itself), no redirects,
/// and https only unless the policy allows loopback. Requests made with it must still
/// pass [`outbound::check_url`] (address literals are not resolved).
pub fn client_builder(policy: Policy, lookup: Arc<dyn Lookup>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(lookup, policy)))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!policy.allow_loopback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_domain::testkit::memory::StaticLookup;
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A TCP listener on loopback that counts the connections made to it (and closes
    /// them at once): whether anything was sent at all.
    async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (port, count)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_name_that_turns_private_after_it_was_checked_is_refused_on_connect() {
        let (port, connections) = counting_listener().await;
        let lookup = Arc::new(StaticLookup::default());
        let url = format!("https://hooks.rebind.example:{port}/beacon");
        // Set while the name resolves to a public address: accepted.
        lookup.set("hooks.rebind.example", &[ip("93.184.215.14")]);
        let checked = outbound::validate(&url, Policy::PUBLIC_ONLY, lookup.as_ref())
            .await
            .unwrap();
        assert_eq!(checked.unresolved, None);
        // Then it points at this machine (where the listener is), or the metadata service.
        let webhooks =
            HttpWebhooks::with_lookup(Duration::from_secs(2), Policy::PUBLIC_ONLY, lookup.clone());
        for inside in ["127.0.0.1", "169.254.169.254"] {
            lookup.set("hooks.rebind.example", &[ip(inside)]);
            let e = webhooks
                .post(checked.url.as_str(), &[], b"{}".to_vec())
                .await
                .unwrap_err();
            assert!(
                e.contains(&format!(
                    "refused: hooks.rebind.example resolves to {inside}"
                )),
                "{e}"
            );
        }
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing was sent");
        // The same path with loopback allowed does connect there: the count above would
        // have seen a connection.
        lookup.set("hooks.rebind.example", &[ip("127.0.0.1")]);
        let local = HttpWebhooks::with_lookup(
            Duration::from_secs(2),
            Policy::LOCAL_DEVELOPMENT,
            lookup.clone(),
        );
        let e = local
            .post(checked.url.as_str(), &[], b"{}".to_vec())
            .await
            .unwrap_err();
        assert!(!e.contains("refused"), "{e}");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stored_urls_are_checked_again_before_each_request() {
        let (port, connections) = counting_listener().await;
        let webhooks = HttpWebhooks::with_lookup(
            Duration::from_secs(2),
            Policy::PUBLIC_ONLY,
            Arc::new(StaticLookup::default()),
        );
        for (url, says) in [
            (format!("http://127.0.0.1:{port}/hook"), "must use https"),
            (
                format!("https://127.0.0.1:{port}/hook"),
                "a loopback address",
            ),
            (
                format!("https://2130706433:{port}/hook"),
                "goes to 127.0.0.1",
            ),
            (
                format!("https://[::ffff:127.0.0.1]:{port}/hook"),
                "a loopback address",
            ),
            (
                format!("https://localhost:{port}/hook"),
                "this machine (localhost)",
            ),
            (
                "https://169.254.169.254/latest/meta-data/".into(),
                "the cloud instance metadata service",
            ),
            (
                format!("https://u:p@127.0.0.1:{port}/"),
                "carries credentials",
            ),
        ] {
            let e = webhooks.post(&url, &[], b"{}".to_vec()).await.unwrap_err();
            assert!(e.starts_with("POST refused: `"), "{url}: {e}");
            assert!(e.contains(says), "{url}: {e}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing was sent");
    }
}
