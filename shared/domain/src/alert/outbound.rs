//! Requests to URLs a tenant chooses (the alert webhooks) reach public internet
//! addresses only: never this machine, its private network, or the cloud metadata and
//! credentials services (`169.254.169.254`, `169.254.170.2`, `fd00:ec2::254`), which
//! would otherwise answer a forged request with the function's own credentials.
//!
//! Invariants:
//! - A URL is accepted ([`check_url`]) only with scheme `https`, no user info, no
//!   control characters, and a host that is a public address or a name. Addresses are
//!   judged after the `url` crate's parsing, which turns every IPv4 spelling a resolver
//!   would accept (`2852039166`, `0xA9FEA9FE`, `0251.0376.0251.0376`, `127.1`) into the
//!   address itself; an IPv6 address that carries an IPv4 one (`::ffff:a.b.c.d`,
//!   NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged by the IPv4 address it reaches.
//! - A name is judged by what it resolves to: every address must be public. This is
//!   done when the URL is set ([`validate`]) and again on every connection: a client
//!   built by `beacon_aws::webhook::client_builder` has a guarded resolver as its only
//!   resolver and connects to the very addresses that resolver checked, so a name that changes to a
//!   private address after it was set (DNS rebinding) is refused. An address literal
//!   never reaches a resolver (the connector uses it as it is), so [`check_url`] must
//!   be run on the URL of every request. Proxies are off and redirects not followed:
//!   nothing else picks where a request goes.
//! - [`LOCAL_SWITCH`] (`BEACON_ALLOW_LOCAL_WEBHOOKS=1`, local development only) lets
//!   loopback addresses through as well, and `http` to them; never anything else.

use crate::config::{ConfigError, Env};
use ipnet::{Ipv4Net, Ipv6Net};

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

use std::time::Duration;
use url::{Host, Url};

/// The environment variable that allows loopback destinations, for local development
/// (a receiver on `http://127.0.0.1:...`).
pub const LOCAL_SWITCH: &str = "BEACON_ALLOW_LOCAL_WEBHOOKS";

/// How long a lookup made while a URL is set may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which destinations are allowed besides public https ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Loopback addresses (and `http` to them): local development only.
    pub allow_loopback: bool,
}

impl Policy {
    /// Public addresses over https only: what runs in AWS.
    pub const PUBLIC_ONLY: Policy = Policy {
        allow_loopback: false,
    };
    /// Also this machine's loopback addresses, over http or https.
    pub const LOCAL_DEVELOPMENT: Policy = Policy {
        allow_loopback: true,
    };

    /// From [`LOCAL_SWITCH`]: `1` (or `true`) allows loopback; unset, `0` or `false`
    /// does not; anything else is an error rather than a guess.
    pub fn from_env(env: &Env) -> Result<Policy, ConfigError> {
        let Some(value) = env.get(LOCAL_SWITCH) else {
            return Ok(Policy::PUBLIC_ONLY);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(Policy::LOCAL_DEVELOPMENT),
            "0" | "false" => Ok(Policy::PUBLIC_ONLY),
            _ => Err(ConfigError::Invalid {
                name: LOCAL_SWITCH,
                value,
                why: "use 1 to allow loopback destinations (local development), 0 or unset to refuse them".into(),
            }),
        }
    }
}

/// Why a destination is not allowed, in words a tenant can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

const METADATA: &str = "the cloud instance metadata service";
const CREDENTIALS: &str = "the container credentials service";
const PRIVATE: &str = "a private address (RFC 1918)";
const DOCUMENTATION: &str = "a documentation address";

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv4 blocks that are not publicly reachable, after the IANA IPv4 Special-Purpose
/// Address Registry plus multicast and the class E space; the first match names it.
const IPV4_REFUSED: &[(Ipv4Net, &str)] = &[
    (v4(169, 254, 169, 254, 32), METADATA),
    (v4(169, 254, 170, 2, 32), CREDENTIALS),
    (
        v4(0, 0, 0, 0, 8),
        "the unspecified (\"this network\") block",
    ),
    (v4(10, 0, 0, 0, 8), PRIVATE),
    (
        v4(100, 64, 0, 0, 10),
        "a shared address (carrier-grade NAT, RFC 6598)",
    ),
    (v4(127, 0, 0, 0, 8), "a loopback address (this machine)"),
    (v4(169, 254, 0, 0, 16), "a link-local address"),
    (v4(172, 16, 0, 0, 12), PRIVATE),
    // Oracle Cloud's metadata service is 192.0.0.192.
    (v4(192, 0, 0, 0, 24), "an IETF protocol assignment"),
    (v4(192, 0, 2, 0, 24), DOCUMENTATION),
    (
        v4(192, 88, 99, 0, 24),
        "the deprecated 6to4 relay anycast block",
    ),
    (v4(192, 168, 0, 0, 16), PRIVATE),
    (v4(198, 18, 0, 0, 15), "a benchmarking address (RFC 2544)"),
    (v4(198, 51, 100, 0, 24), DOCUMENTATION),
    (v4(203, 0, 113, 0, 24), DOCUMENTATION),
    (v4(224, 0, 0, 0, 4), "a multicast address"),
    (v4(255, 255, 255, 255, 32), "the broadcast address"),
    (v4(240, 0, 0, 0, 4), "a reserved address"),
];

/// IPv6 blocks that are not publicly reachable, after the IANA IPv6 Special-Purpose
/// Address Registry. Blocks that carry an IPv4 address are judged by it, in
/// [`non_public`], before this table.
const IPV6_REFUSED: &[(Ipv6Net, &str)] = &[
    (v6(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254, 128), METADATA),
    (v6(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23, 128), CREDENTIALS),
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 128), "the unspecified address"),
    (
        v6(0, 0, 0, 0, 0, 0, 0, 1, 128),
        "a loopback address (this machine)",
    ),
    (
        v6(0, 0, 0, 0, 0, 0, 0, 0, 96),
        "an IPv4-compatible address (deprecated)",
    ),
    (
        v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48),
        "a local-use NAT64 address (RFC 8215)",
    ),
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 8), "a reserved address"),
    (v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64), "a discard-only address"),
    (v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), DOCUMENTATION),
    (
        v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23),
        "an IETF protocol assignment (Teredo, benchmarking, ORCHID)",
    ),
    (v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), DOCUMENTATION),
    (
        v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7),
        "a unique local (private) address",
    ),
    (v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), "a link-local address"),
    (
        v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10),
        "a site-local address (deprecated)",
    ),
    (v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), "a multicast address"),
];

/// The only IPv6 block with global unicast addresses.
const IPV6_GLOBAL_UNICAST: Ipv6Net = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);
const IPV6_NAT64: Ipv6Net = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);
const IPV6_6TO4: Ipv6Net = v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16);

/// The IPv4 address an IPv6 one leads to: IPv4-mapped (`::ffff:a.b.c.d`, reached by a
/// dual-stack socket), NAT64 (`64:ff9b::a.b.c.d`, reached through the translator) and
/// 6to4 (`2002:aabb:ccdd::`, whose relay sends it to `a.b.c.d`).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    if IPV6_NAT64.contains(&ip) {
        return Some(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if IPV6_6TO4.contains(&ip) {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Why `ip` is not a public internet address, or `None` when it is one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => IPV4_REFUSED
            .iter()
            .find(|(net, _)| net.contains(&v4))
            .map(|(_, why)| *why),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return non_public(IpAddr::V4(v4));
            }
            IPV6_REFUSED
                .iter()
                .find(|(net, _)| net.contains(&v6))
                .map(|(_, why)| *why)
                .or_else(|| {
                    (!IPV6_GLOBAL_UNICAST.contains(&v6))
                        .then_some("a reserved address (not global unicast)")
                })
        }
    }
}

/// Whether `ip` is this machine's loopback, also as an IPv4-mapped IPv6 address.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether `policy` lets a request go to `ip`; why not otherwise.
pub fn check_address(ip: IpAddr, policy: Policy) -> Result<(), &'static str> {
    if policy.allow_loopback && is_loopback(ip) {
        return Ok(());
    }
    non_public(ip).map_or(Ok(()), Err)
}

/// `localhost` and the names under it, which always mean this machine (RFC 6761).
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name == "localhost" || name.ends_with(".localhost")
}

const PUBLIC_ONLY: &str = "notices go to public internet addresses only";

/// The checks that need no lookup: scheme, user info, control characters, and the
/// address when the host is one. Returns the URL as parsed (and as it is stored).
pub fn check_url(text: &str, policy: Policy) -> Result<Url, Refused> {
    let shown = text.escape_debug();
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        // The url crate would silently drop CR, LF and tabs: refuse instead, so what
        // is stored is what the tenant can see.
        return Err(Refused(format!(
            "`{shown}` contains the control character {c:?}"
        )));
    }
    let url = Url::parse(text).map_err(|e| Refused(format!("`{shown}` is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Named without them: this message reaches logs.
        let mut bare = url.clone();
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
        return Err(Refused(format!(
            "`{bare}` carries credentials (user:password@); receivers authenticate notices by their Beacon-Signature header"
        )));
    }
    let must_use_https = || {
        Refused(format!(
            "`{shown}` must use https (http only to this machine, with {LOCAL_SWITCH}=1)"
        ))
    };
    if !matches!(url.scheme(), "https" | "http") {
        return Err(must_use_https());
    }
    let host = url
        .host()
        .ok_or_else(|| Refused(format!("`{shown}` has no host")))?;
    let address = match host {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    };
    let to_this_machine = match host {
        Host::Domain(name) => is_localhost_name(name),
        _ => address.is_some_and(is_loopback),
    };
    match url.scheme() {
        "https" => {}
        "http" if to_this_machine && policy.allow_loopback => {}
        "http" if to_this_machine => {
            return Err(Refused(format!(
                "`{shown}` must use https (http to this machine only with {LOCAL_SWITCH}=1, for local development)"
            )))
        }
        _ => return Err(must_use_https()),
    }
    if let Some(ip) = address {
        check_address(ip, policy)
            .map_err(|why| Refused(format!("`{shown}` goes to {ip}, {why}: {PUBLIC_ONLY}")))?;
    } else if to_this_machine && !policy.allow_loopback {
        return Err(Refused(format!(
            "`{shown}` goes to this machine (localhost): {PUBLIC_ONLY}"
        )));
    }
    Ok(url)
}

/// Checks what a name resolved to: every address must pass, or the name is refused.
pub fn check_resolved(host: &str, addresses: &[IpAddr], policy: Policy) -> Result<(), Refused> {
    if addresses.is_empty() {
        return Err(Refused(format!("{host} resolves to no address")));
    }
    for ip in addresses {
        check_address(*ip, policy)
            .map_err(|why| Refused(format!("{host} resolves to {ip}, {why}: {PUBLIC_ONLY}")))?;
    }
    Ok(())
}

/// Looks names up (the system's resolver, or a fixed table in tests), within
/// [`LOOKUP_TIMEOUT`].
pub trait Lookup: Send + Sync {
    /// Every address `host` resolves to.
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// A URL accepted by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// As parsed: store and use this form.
    pub url: Url,
    /// Set when the host is a name that does not resolve now (so nothing could be
    /// checked yet); every delivery checks it again.
    pub unresolved: Option<String>,
}

/// Checks a URL as a tenant sets it: [`check_url`], then, for a name, every address it
/// resolves to now. A name that does not resolve is accepted with
/// [`Checked::unresolved`] set: it may be set up later, and what it resolves to is
/// checked on every connection anyway.
pub async fn validate(text: &str, policy: Policy, lookup: &dyn Lookup) -> Result<Checked, Refused> {
    let url = check_url(text, policy)?;
    let Some(Host::Domain(name)) = url.host() else {
        return Ok(Checked {
            url,
            unresolved: None,
        });
    };
    // The lookup bounds its own time ([`LOOKUP_TIMEOUT`] for the system's resolver).
    let unresolved = match lookup.lookup(name).await {
        Ok(addresses) if !addresses.is_empty() => {
            check_resolved(name, &addresses, policy)
                .map_err(|r| Refused(format!("`{}`: {r}", text.escape_debug())))?;
            None
        }
        Ok(_) => Some(format!("{name} resolves to no address")),
        Err(e) => Some(format!("{name} does not resolve: {e}")),
    };
    Ok(Checked { url, unresolved })
}

/// The refusal inside an error from a request, if the resolver refused it.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_purpose_blocks_are_named_and_public_addresses_pass() {
        for (address, why) in [
            ("169.254.169.254", METADATA),
            ("169.254.170.2", CREDENTIALS),
            ("fd00:ec2::254", METADATA),
            ("127.0.0.1", "a loopback address (this machine)"),
            ("::1", "a loopback address (this machine)"),
            ("10.1.2.3", PRIVATE),
            ("172.31.255.255", PRIVATE),
            ("192.168.0.1", PRIVATE),
            (
                "100.100.100.200",
                "a shared address (carrier-grade NAT, RFC 6598)",
            ),
            ("0.0.0.0", "the unspecified (\"this network\") block"),
            ("192.0.0.192", "an IETF protocol assignment"),
            ("198.19.0.1", "a benchmarking address (RFC 2544)"),
            ("203.0.113.7", DOCUMENTATION),
            ("239.255.255.250", "a multicast address"),
            ("255.255.255.255", "the broadcast address"),
            ("250.1.2.3", "a reserved address"),
            ("::", "the unspecified address"),
            ("::a9fe:a9fe", "an IPv4-compatible address (deprecated)"),
            ("fe80::1", "a link-local address"),
            ("fc00::1", "a unique local (private) address"),
            ("ff02::1", "a multicast address"),
            ("2001:db8::1", DOCUMENTATION),
            (
                "2001::1",
                "an IETF protocol assignment (Teredo, benchmarking, ORCHID)",
            ),
            ("64:ff9b:1::1", "a local-use NAT64 address (RFC 8215)"),
            ("4000::1", "a reserved address (not global unicast)"),
            // IPv6 forms that reach an IPv4 address are judged by it.
            ("::ffff:169.254.169.254", METADATA),
            ("::ffff:7f00:1", "a loopback address (this machine)"),
            ("64:ff9b::a9fe:a9fe", METADATA),
            ("2002:a9fe:a9fe::1", METADATA),
            ("2002:0a00:0001::", PRIVATE),
        ] {
            assert_eq!(non_public(ip(address)), Some(why), "{address}");
        }
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.3.1",
            "2606:4700::1111",
            "::ffff:93.184.215.14",
            "64:ff9b::5db8:d70e",
        ] {
            assert_eq!(non_public(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn the_local_switch_allows_loopback_and_nothing_else() {
        let local = Policy::LOCAL_DEVELOPMENT;
        for address in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(check_address(ip(address), local), Ok(()), "{address}");
            assert!(check_address(ip(address), Policy::PUBLIC_ONLY).is_err());
        }
        for address in ["169.254.169.254", "10.0.0.1", "fd00:ec2::254", "0.0.0.0"] {
            assert!(check_address(ip(address), local).is_err(), "{address}");
        }
    }

    #[test]
    fn the_switch_is_read_strictly() {
        let env =
            |v: &str| Env::from_map(HashMap::from([(LOCAL_SWITCH.to_string(), v.to_string())]));
        assert_eq!(
            Policy::from_env(&Env::from_map(HashMap::new())).unwrap(),
            Policy::PUBLIC_ONLY
        );
        assert_eq!(
            Policy::from_env(&env("1")).unwrap(),
            Policy::LOCAL_DEVELOPMENT
        );
        assert_eq!(
            Policy::from_env(&env("true")).unwrap(),
            Policy::LOCAL_DEVELOPMENT
        );
        assert_eq!(Policy::from_env(&env("0")).unwrap(), Policy::PUBLIC_ONLY);
        let e = Policy::from_env(&env("yes please"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("BEACON_ALLOW_LOCAL_WEBHOOKS = `yes please` is not valid"),
            "{e}"
        );
    }
}
