//! Request context: what a tracked request says about who made it, reduced to what
//! analytics needs. IPs are anonymized by default (IPv4 to /24, IPv6 to /48), the way
//! privacy regulators expect, and the user agent is reduced to a device class. Before
//! the IP is reduced, the full address is looked up in the range lists
//! ([`crate::verdict::networks`]) and only the label is kept.

use crate::event::{BadValue, DeviceClass, RequestContext};
use crate::verdict::networks::Networks;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest user agent kept; real ones are far shorter, and this bounds event size.
pub const MAX_USER_AGENT: usize = 512;

/// What to keep of a client's IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpPolicy {
    /// Keep the network only: IPv4 /24, IPv6 /48 (the default).
    #[default]
    Anonymize,
    /// Keep the full address (only where the tenant has a legal basis).
    Full,
    /// Keep nothing.
    Drop,
}

impl FromStr for IpPolicy {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        match s {
            "anonymize" => Ok(IpPolicy::Anonymize),
            "full" => Ok(IpPolicy::Full),
            "drop" => Ok(IpPolicy::Drop),
            other => Err(BadValue(format!(
                "IP policy `{other}` is not one of anonymize, full, drop"
            ))),
        }
    }
}

/// Zeroes the host part: IPv4 keeps /24, IPv6 keeps /48.
pub fn anonymize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return anonymize_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

/// Device class from a user agent, using woothee's maintained agent database.
pub fn device_class(user_agent: &str) -> DeviceClass {
    if user_agent.trim().is_empty() {
        return DeviceClass::Unknown;
    }
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(result) => match result.category {
            "pc" => DeviceClass::Desktop,
            "smartphone" | "mobilephone" => DeviceClass::Mobile,
            "crawler" => DeviceClass::Bot,
            "appliance" | "misc" => DeviceClass::Other,
            _ => DeviceClass::Unknown,
        },
        None => DeviceClass::Unknown,
    }
}

/// Builds the stored context from what the request carried, without a network label
/// (see [`request_context_in`]).
pub fn request_context(
    ip: Option<&str>,
    user_agent: Option<&str>,
    policy: IpPolicy,
) -> RequestContext {
    request_context_in(ip, user_agent, policy, &Networks::default())
}

/// Builds the stored context from what the request carried, with the label `networks`
/// give the full address ([`Networks::label`]), whatever the policy keeps of the IP:
/// the label is computed before the address is anonymized or dropped.
pub fn request_context_in(
    ip: Option<&str>,
    user_agent: Option<&str>,
    policy: IpPolicy,
    networks: &Networks,
) -> RequestContext {
    let full = ip.and_then(|s| s.trim().parse::<IpAddr>().ok());
    let network = full.and_then(|ip| networks.label(ip)).map(str::to_string);
    let ip = match policy {
        IpPolicy::Drop => None,
        IpPolicy::Full => full,
        IpPolicy::Anonymize => full.map(anonymize_ip),
    };
    let user_agent = user_agent
        .map(str::trim)
        .filter(|ua| !ua.is_empty())
        .map(|ua| truncate_chars(ua, MAX_USER_AGENT));
    RequestContext {
        ip: ip.map(|ip| ip.to_string()),
        device_class: Some(
            user_agent
                .as_deref()
                .map(device_class)
                .unwrap_or(DeviceClass::Unknown),
        ),
        user_agent,
        network,
    }
}

fn truncate_chars(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_keeps_slash_24() {
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(anonymize_ip(ip).to_string(), "203.0.113.0");
    }

    #[test]
    fn ipv6_keeps_slash_48() {
        let ip: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().unwrap();
        assert_eq!(anonymize_ip(ip).to_string(), "2001:db8:abcd::");
    }

    #[test]
    fn ipv4_mapped_ipv6_is_treated_as_ipv4() {
        let ip: IpAddr = "::ffff:198.51.100.9".parse().unwrap();
        assert_eq!(anonymize_ip(ip).to_string(), "198.51.100.0");
    }

    #[test]
    fn policy_controls_what_is_kept() {
        let full = request_context(Some("198.51.100.9"), None, IpPolicy::Full);
        assert_eq!(full.ip.as_deref(), Some("198.51.100.9"));
        let dropped = request_context(Some("198.51.100.9"), None, IpPolicy::Drop);
        assert_eq!(dropped.ip, None);
        let anon = request_context(Some("198.51.100.9"), None, IpPolicy::Anonymize);
        assert_eq!(anon.ip.as_deref(), Some("198.51.100.0"));
        let garbage = request_context(Some("not-an-ip"), None, IpPolicy::Full);
        assert_eq!(garbage.ip, None);
    }

    #[test]
    fn the_network_label_comes_from_the_full_ip_whatever_the_policy() {
        // Apple's blocks can be smaller than the /24 that is stored: a /27 here.
        let networks = Networks::from_lists(&[
            (crate::verdict::networks::APPLE_PROXY, "198.18.226.0/27\n"),
            (crate::verdict::networks::SCANNERS, "2001:db8:77::/48\n"),
        ])
        .unwrap();
        for policy in [IpPolicy::Anonymize, IpPolicy::Full, IpPolicy::Drop] {
            let inside = request_context_in(Some(" 198.18.226.31 "), None, policy, &networks);
            assert_eq!(inside.network.as_deref(), Some("apple-proxy"), "{policy:?}");
            // Same /24, outside Apple's /27: the stored IP could not have told them apart.
            let outside = request_context_in(Some("198.18.226.32"), None, policy, &networks);
            assert_eq!(outside.network.as_deref(), Some("unlisted"), "{policy:?}");
            if policy != IpPolicy::Full {
                assert_eq!(inside.ip, outside.ip, "{policy:?}");
            }
            let scanner = request_context_in(Some("2001:db8:77::5"), None, policy, &networks);
            assert_eq!(scanner.network.as_deref(), Some("scanners"), "{policy:?}");
            let mapped = request_context_in(Some("::ffff:198.18.226.1"), None, policy, &networks);
            assert_eq!(mapped.network.as_deref(), Some("apple-proxy"), "{policy:?}");
        }
        let anon = request_context_in(Some("198.18.226.31"), None, IpPolicy::Anonymize, &networks);
        assert_eq!(anon.ip.as_deref(), Some("198.18.226.0"));
        let dropped = request_context_in(Some("198.18.226.31"), None, IpPolicy::Drop, &networks);
        assert_eq!(dropped.ip, None);
        assert!(!dropped.is_empty());
        // No address, or not an address: no label.
        for ip in [None, Some("not-an-ip")] {
            let ctx = request_context_in(ip, None, IpPolicy::Full, &networks);
            assert_eq!(ctx.network, None);
        }
        // Without lists, nothing is said.
        let plain = request_context(Some("198.18.226.31"), None, IpPolicy::Full);
        assert_eq!(plain.network, None);
    }

    #[test]
    fn device_classes() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let desktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert_eq!(device_class(iphone), DeviceClass::Mobile);
        assert_eq!(device_class(desktop), DeviceClass::Desktop);
        assert_eq!(device_class(bot), DeviceClass::Bot);
        assert_eq!(device_class(""), DeviceClass::Unknown);
    }

    #[test]
    fn long_user_agents_are_cut_on_a_char_boundary() {
        let ua = "é".repeat(400);
        let ctx = request_context(None, Some(&ua), IpPolicy::Anonymize);
        let kept = ctx.user_agent.unwrap();
        assert!(kept.len() <= MAX_USER_AGENT);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
