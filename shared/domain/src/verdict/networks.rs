//! Named IP range lists, looked up at the edge: is a tracked request from Apple's
//! privacy proxy, or from a security gateway that checks mail before a person sees it?
//!
//! Stored IPs are anonymized (IPv4 /24, IPv6 /48, see [`crate::event::context`]) and Apple's
//! egress blocks can be smaller than a /24, so the open pixel and the click redirect
//! look the full address up here before it is reduced, and keep only the label
//! ([`crate::event::RequestContext::network`]).
//!
//! Two lists, with fixed meaning:
//!
//! - [`APPLE_PROXY`]: the egress ranges of Apple's iCloud Private Relay, which Mail
//!   Privacy Protection fetches images through
//!   (<https://mask-api.icloud.com/egress-ip-ranges.csv>);
//! - [`SCANNERS`]: the ranges of security gateways (Safe Links, Mimecast, Proofpoint,
//!   Barracuda), from the vendors' published lists.
//!
//! The lists are compiled in from `shared/networks/<list>.txt` ([`Networks::shipped`]),
//! written by `beacon networks import`. Each is one CIDR per line (the first
//! comma-separated column, so Apple's CSV reads as it is), `#` starting a comment.
//!
//! Every range is kept as an interval of `u128`, IPv4 as IPv4-mapped IPv6
//! (`::ffff:a.b.c.d`), so one binary search serves both families and a client
//! address given as IPv4-mapped IPv6 matches the IPv4 ranges.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// Apple's iCloud Private Relay egress, the proxy of Mail Privacy Protection.
pub const APPLE_PROXY: &str = "apple-proxy";
/// Security gateways that open and click mail before a person does.
pub const SCANNERS: &str = "scanners";
/// Checked against Apple's ranges (a non-empty list) and not in them, nor in scanners'.
pub const UNLISTED: &str = "unlisted";
/// Not a range list: the sender's own tracking flagged the client as a machine
/// (SendGrid's `sg_machine_open`, Mailgun's `client-info.bot`). Set by provider
/// ingestion ([`crate::ingest`]); the classifier takes the provider's word.
pub const PROVIDER_FLAGGED: &str = "provider-flagged";

/// The list names, in the order [`Networks`] keeps them.
pub const LISTS: [&str; 2] = [APPLE_PROXY, SCANNERS];

/// What each list is and where it comes from, for the header of its file.
const ABOUT: [(&str, &str); 2] = [
    (
        "the egress ranges of Apple's iCloud Private Relay, through which Apple Mail Privacy Protection fetches images",
        "https://mask-api.icloud.com/egress-ip-ranges.csv (Apple)",
    ),
    (
        "the ranges security gateways fetch and click from (Safe Links, Mimecast, Proofpoint, Barracuda)",
        "the vendors' published IP range lists",
    ),
];

/// Bad lines named in one error before the rest are only counted.
const BAD_LINES_SHOWN: usize = 20;

/// `::ffff:0.0.0.0`: IPv4 addresses live at `MAPPED | u32`.
const MAPPED: u128 = 0xffff << 32;

/// The range lists, each a sorted `Vec` of disjoint, non-adjacent `(first, last)`
/// address intervals (inclusive).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Networks {
    lists: [Vec<(u128, u128)>; 2],
}

/// How much one list covers, per family (ranges as [`Networks::to_text`] writes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListSummary {
    pub name: &'static str,
    pub v4_ranges: usize,
    pub v6_ranges: usize,
    pub v4_addresses: u128,
    /// Saturates at `u128::MAX` (only `::/0` reaches it).
    pub v6_addresses: u128,
}

impl ListSummary {
    pub fn ranges(&self) -> usize {
        self.v4_ranges + self.v6_ranges
    }
}

static SHIPPED: LazyLock<Networks> = LazyLock::new(|| {
    Networks::from_lists(&[
        (
            APPLE_PROXY,
            include_str!("../../../networks/apple-proxy.txt"),
        ),
        (SCANNERS, include_str!("../../../networks/scanners.txt")),
    ])
    .expect("the shipped network lists parse (a unit test checks them)")
});

fn index(name: &str) -> Option<usize> {
    LISTS.iter().position(|n| *n == name)
}

fn unknown_list(name: &str) -> BadList {
    BadList(format!(
        "unknown network list `{name}`; the lists are {}",
        LISTS.join(", ")
    ))
}

crate::message_error!(
    /// Why range lists were refused: the list, the line number and the text of each
    /// bad line.
    BadList
);

/// The search key of an address: IPv4 (and IPv4-mapped IPv6) as `::ffff:a.b.c.d`.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => MAPPED | u128::from(u32::from(v4)),
        // `::ffff:a.b.c.d` is already `MAPPED | a.b.c.d`.
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn interval(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            MAPPED | u128::from(u32::from(n.network())),
            MAPPED | u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

fn contains(list: &[(u128, u128)], x: u128) -> bool {
    let after = list.partition_point(|&(first, _)| first <= x);
    after > 0 && list[after - 1].1 >= x
}

/// Sorts and merges overlapping and adjacent intervals.
fn merge(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
    for (first, last) in v {
        if let Some(prev) = out.last_mut() {
            if prev.1 == u128::MAX || first <= prev.1 + 1 {
                prev.1 = prev.1.max(last);
                continue;
            }
        }
        out.push((first, last));
    }
    out.shrink_to_fit();
    out
}

/// The fewest CIDR blocks covering `[first, last]` exactly, as `(start, prefix length
/// in the 128-bit space)`, in order.
fn blocks(first: u128, last: u128, mut each: impl FnMut(u128, u8)) {
    let mut start = first;
    loop {
        let aligned = if start == 0 {
            128
        } else {
            start.trailing_zeros()
        };
        let span = last - start; // addresses left, minus one
        let fits = if span == u128::MAX {
            128
        } else {
            127 - (span + 1).leading_zeros()
        };
        let bits = aligned.min(fits);
        each(start, (128 - bits) as u8);
        let end = if bits == 128 {
            u128::MAX
        } else {
            start + ((1u128 << bits) - 1)
        };
        if end >= last {
            return;
        }
        start = end + 1;
    }
}

/// A block in the 128-bit space as the CIDR people write: IPv4 inside `::ffff:0:0/96`.
fn block_net(start: u128, prefix: u8) -> IpNet {
    if prefix >= 96 && start >> 32 == 0xffff {
        let v4 = Ipv4Addr::from((start & 0xffff_ffff) as u32);
        IpNet::V4(Ipv4Net::new(v4, prefix - 96).expect("prefix within 0..=32"))
    } else {
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(start), prefix).expect("prefix within 0..=128"))
    }
}

/// The range a line gives: its first comma-separated column, a CIDR or a single address.
/// Host bits are cleared (`192.0.2.7/24` is `192.0.2.0/24`).
fn parse_line(field: &str) -> Option<IpNet> {
    let field = field.trim().trim_matches('"').trim();
    if field.contains('/') {
        field.parse::<IpNet>().ok().map(|n| n.trunc())
    } else {
        let ip = field.parse::<IpAddr>().ok()?;
        let full = match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        IpNet::new(ip, full).ok()
    }
}

impl Networks {
    /// Parses `(list name, file text)` pairs. The text is one range per line, its first
    /// comma-separated column (a CIDR, or a single address); blank lines and everything
    /// after a `#` are ignored. A name given twice adds to the same list. Errors name
    /// the list, the line number and the text.
    pub fn from_lists(lists: &[(&str, &str)]) -> Result<Networks, BadList> {
        let mut nets: [Vec<IpNet>; 2] = Default::default();
        let mut bad = Vec::new();
        let mut bad_count = 0usize;
        for (name, text) in lists {
            let i = index(name).ok_or_else(|| unknown_list(name))?;
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            for (n, line) in text.lines().enumerate() {
                let content = line.split('#').next().unwrap_or("");
                let field = content.split(',').next().unwrap_or("");
                if field.trim().is_empty() {
                    if content.trim().is_empty() {
                        continue;
                    }
                } else if let Some(net) = parse_line(field) {
                    nets[i].push(net);
                    continue;
                }
                bad_count += 1;
                if bad.len() < BAD_LINES_SHOWN {
                    bad.push(format!(
                        "{name} line {}: `{}` is not an IP range (expected a CIDR such as 192.0.2.0/24 or 2001:db8::/32 in the first column)",
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
        if bad_count > 0 {
            if bad_count > bad.len() {
                bad.push(format!("and {} more bad lines", bad_count - bad.len()));
            }
            return Err(BadList(bad.join("\n")));
        }
        let lists = nets.map(|nets| {
            let collapsed = IpNet::aggregate(&nets);
            merge(collapsed.iter().map(interval).collect())
        });
        Ok(Networks { lists })
    }

    /// The lists compiled in from `shared/networks/*.txt`, parsed once.
    pub fn shipped() -> &'static Networks {
        &SHIPPED
    }

    /// The label of a client address: [`SCANNERS`] if a scanner's range holds it, else
    /// [`APPLE_PROXY`] if Apple's does, else [`UNLISTED`] if Apple's list is not empty
    /// (the address was checked and is not Apple's), else `None` (nothing to say).
    pub fn label(&self, ip: IpAddr) -> Option<&'static str> {
        let x = key(ip);
        if contains(&self.lists[1], x) {
            return Some(SCANNERS);
        }
        let apple = &self.lists[0];
        if apple.is_empty() {
            return None;
        }
        Some(if contains(apple, x) {
            APPLE_PROXY
        } else {
            UNLISTED
        })
    }

    /// Whether the list `name` holds `ip` (false for an unknown name).
    pub fn contains(&self, name: &str, ip: IpAddr) -> bool {
        index(name).is_some_and(|i| contains(&self.lists[i], key(ip)))
    }

    /// True when every list is empty: no address gets a label.
    pub fn is_empty(&self) -> bool {
        self.lists.iter().all(Vec::is_empty)
    }

    /// The ranges of `name` as [`Networks::to_text`] writes them (0 for an unknown name).
    pub fn len(&self, name: &str) -> usize {
        self.summary(name).map_or(0, |s| s.ranges())
    }

    /// Ranges and addresses of one list per family; `None` for an unknown name.
    pub fn summary(&self, name: &str) -> Option<ListSummary> {
        let i = index(name)?;
        let mut s = ListSummary {
            name: LISTS[i],
            v4_ranges: 0,
            v6_ranges: 0,
            v4_addresses: 0,
            v6_addresses: 0,
        };
        for &(first, last) in &self.lists[i] {
            blocks(first, last, |start, prefix| {
                let size = if prefix == 0 {
                    u128::MAX
                } else {
                    1u128 << (128 - u32::from(prefix))
                };
                match block_net(start, prefix) {
                    IpNet::V4(_) => {
                        s.v4_ranges += 1;
                        s.v4_addresses += size;
                    }
                    IpNet::V6(_) => {
                        s.v6_ranges += 1;
                        s.v6_addresses = s.v6_addresses.saturating_add(size);
                    }
                }
            });
        }
        Some(s)
    }

    /// [`Networks::summary`] of every list, in [`LISTS`] order.
    pub fn summaries(&self) -> Vec<ListSummary> {
        LISTS.iter().filter_map(|n| self.summary(n)).collect()
    }

    /// The list `name` as its file: a header comment (what the list is, its source,
    /// today's date), then the collapsed ranges, sorted, one CIDR per line (IPv4 first).
    /// An unknown name gives only a header saying so.
    pub fn to_text(&self, name: &str) -> String {
        let today = chrono::Utc::now().format("%Y-%m-%d");
        let Some(i) = index(name) else {
            return format!("# {}\n", unknown_list(name));
        };
        let (about, source) = ABOUT[i];
        let s = self.summary(name).expect("a known list");
        let mut out = format!(
            "# {name}: {about}.\n\
             # Source: {source}.\n\
             # Refresh: download the source, `beacon networks import {name} <file>`, then rebuild and deploy.\n\
             # Written by `beacon networks import` on {today}: {} IPv4 and {} IPv6 ranges, collapsed and sorted.\n",
            s.v4_ranges, s.v6_ranges
        );
        for &(first, last) in &self.lists[i] {
            blocks(first, last, |start, prefix| {
                out.push_str(&block_net(start, prefix).to_string());
                out.push('\n');
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(apple: &str, scanners: &str) -> Networks {
        Networks::from_lists(&[(APPLE_PROXY, apple), (SCANNERS, scanners)]).unwrap()
    }

    fn ranges(n: &Networks, name: &str) -> Vec<String> {
        n.to_text(name)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn ipv4_ranges_match_from_first_to_last_address() {
        let n = nets("198.18.0.0/15\n192.0.2.64/27\n", "");
        for inside in [
            "198.18.0.0",
            "198.18.200.7",
            "198.19.255.255",
            "192.0.2.64",
            "192.0.2.95",
        ] {
            assert_eq!(n.label(ip(inside)), Some(APPLE_PROXY), "{inside}");
        }
        for outside in ["198.17.255.255", "198.20.0.0", "192.0.2.63", "192.0.2.96"] {
            assert_eq!(n.label(ip(outside)), Some(UNLISTED), "{outside}");
        }
    }

    #[test]
    fn ipv6_ranges_match_from_first_to_last_address() {
        let n = nets("2001:db8:10::/48\n", "");
        assert_eq!(n.label(ip("2001:db8:10::")), Some(APPLE_PROXY));
        assert_eq!(
            n.label(ip("2001:db8:10:ffff:ffff:ffff:ffff:ffff")),
            Some(APPLE_PROXY)
        );
        assert_eq!(
            n.label(ip("2001:db8:f:ffff:ffff:ffff:ffff:ffff")),
            Some(UNLISTED)
        );
        assert_eq!(n.label(ip("2001:db8:11::")), Some(UNLISTED));
        // An IPv6 list does not match IPv4 clients, nor the other way round.
        assert_eq!(n.label(ip("198.18.0.1")), Some(UNLISTED));
        let v4 = nets("0.0.0.0/0\n", "");
        assert_eq!(v4.label(ip("2001:db8::1")), Some(UNLISTED));
    }

    #[test]
    fn ipv4_mapped_ipv6_clients_match_ipv4_ranges() {
        let n = nets("192.0.2.0/25\n", "");
        assert_eq!(n.label(ip("::ffff:192.0.2.1")), Some(APPLE_PROXY));
        assert_eq!(n.label(ip("::ffff:192.0.2.128")), Some(UNLISTED));
        // And a range written as IPv4-mapped IPv6 matches IPv4 clients.
        let mapped = nets("::ffff:192.0.2.0/120\n", "");
        assert_eq!(mapped.label(ip("192.0.2.200")), Some(APPLE_PROXY));
        assert_eq!(ranges(&mapped, APPLE_PROXY), ["192.0.2.0/24"]);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_collapse() {
        let n = nets(
            "198.18.0.0/24\n198.18.1.0/24\n198.18.0.128/25\n198.18.0.0/24\n\
             198.18.2.0/25\n2001:db8::/33\n2001:db8:8000::/33\n2001:db8:1::/48\n",
            "",
        );
        assert_eq!(
            ranges(&n, APPLE_PROXY),
            ["198.18.0.0/23", "198.18.2.0/25", "2001:db8::/32"]
        );
        let s = n.summary(APPLE_PROXY).unwrap();
        assert_eq!((s.v4_ranges, s.v6_ranges), (2, 1));
        assert_eq!(s.v4_addresses, 512 + 128);
        assert_eq!(s.v6_addresses, 1u128 << 96);
        assert_eq!(n.len(APPLE_PROXY), 3);
        // Adjacent blocks that make no single CIDR stay two lines but one interval.
        assert_eq!(n.lists[0].len(), 2);
        assert_eq!(n.label(ip("198.18.2.127")), Some(APPLE_PROXY));
        assert_eq!(n.label(ip("198.18.2.128")), Some(UNLISTED));
    }

    #[test]
    fn the_written_text_reads_back_the_same() {
        let n = nets(
            "198.18.0.0/24\n198.18.1.0/25\n192.0.2.9\n2001:db8:5::/48\n",
            "198.19.0.0/16\n",
        );
        let text = n.to_text(APPLE_PROXY);
        assert!(text.starts_with("# apple-proxy: "), "{text}");
        assert!(text.contains("mask-api.icloud.com/egress-ip-ranges.csv"));
        assert!(
            text.contains(": 3 IPv4 and 1 IPv6 ranges, collapsed"),
            "{text}"
        );
        assert_eq!(
            ranges(&n, APPLE_PROXY),
            [
                "192.0.2.9/32",
                "198.18.0.0/24",
                "198.18.1.0/25",
                "2001:db8:5::/48"
            ]
        );
        let back = Networks::from_lists(&[
            (APPLE_PROXY, text.as_str()),
            (SCANNERS, &n.to_text(SCANNERS)),
        ])
        .unwrap();
        assert_eq!(back, n);
        assert!(n.to_text(SCANNERS).contains("vendors' published"));
    }

    #[test]
    fn apples_csv_reads_as_it_is() {
        let csv = "\u{feff}198.18.226.0/27,GB,GB-EN,London,\r\n\
                   198.18.226.32/27,GB,GB-EN,London,\r\n\
                   2001:db8:4a:100::/64,US,US-CA,Los Angeles,\r\n\
                   \"192.0.2.0/28\",FR,FR-75,Paris,\r\n";
        let n = nets(csv, "");
        assert_eq!(
            ranges(&n, APPLE_PROXY),
            ["192.0.2.0/28", "198.18.226.0/26", "2001:db8:4a:100::/64"]
        );
        assert_eq!(n.label(ip("198.18.226.63")), Some(APPLE_PROXY));
        assert_eq!(n.label(ip("198.18.226.64")), Some(UNLISTED));
        assert_eq!(n.label(ip("2001:db8:4a:100:1::1")), Some(APPLE_PROXY));
    }

    #[test]
    fn comments_blank_lines_and_host_bits() {
        let n = nets(
            "# Apple's ranges\n\n   \n198.18.0.0/24   # a comment after a range\n\
             \t192.0.2.77/24\n",
            "",
        );
        assert_eq!(ranges(&n, APPLE_PROXY), ["192.0.2.0/24", "198.18.0.0/24"]);
    }

    #[test]
    fn bad_lines_are_named_with_their_list_and_number() {
        let err = Networks::from_lists(&[
            (APPLE_PROXY, "198.18.0.0/24\n# fine\n198.18.0.0/33,GB\n"),
            (SCANNERS, "\n192.0.2.0/24\nnot-an-ip\n,empty first column\n"),
        ])
        .unwrap_err();
        assert!(
            err.contains("apple-proxy line 3: `198.18.0.0/33,GB`"),
            "{err}"
        );
        assert!(err.contains("scanners line 3: `not-an-ip`"), "{err}");
        assert!(
            err.contains("scanners line 4: `,empty first column`"),
            "{err}"
        );
        assert!(!err.contains("line 1"), "{err}");
        let many = "x\n".repeat(30);
        let err = Networks::from_lists(&[(SCANNERS, &many)]).unwrap_err();
        assert!(err.contains("scanners line 20: `x`"), "{err}");
        assert!(!err.contains("line 21"), "{err}");
        assert!(err.ends_with("and 10 more bad lines"), "{err}");
    }

    #[test]
    fn unknown_list_names_are_refused_with_the_known_ones() {
        let err = Networks::from_lists(&[("apple", "192.0.2.0/24\n")]).unwrap_err();
        assert_eq!(
            err,
            "unknown network list `apple`; the lists are apple-proxy, scanners"
        );
        let n = nets("", "");
        assert_eq!(n.summary("apple"), None);
        assert_eq!(n.len("apple"), 0);
        assert!(!n.contains("apple", ip("192.0.2.1")));
    }

    #[test]
    fn scanners_come_before_apple_and_unlisted_needs_apples_list() {
        let n = nets("198.18.0.0/15\n", "198.18.7.0/24\n2001:db8:99::/48\n");
        assert_eq!(n.label(ip("198.18.7.1")), Some(SCANNERS));
        assert_eq!(n.label(ip("198.18.8.1")), Some(APPLE_PROXY));
        assert_eq!(n.label(ip("192.0.2.1")), Some(UNLISTED));
        assert_eq!(n.label(ip("2001:db8:99::1")), Some(SCANNERS));
        assert!(n.contains(APPLE_PROXY, ip("198.18.7.1")));
        // Without Apple's list an address is a scanner's or nothing is said.
        let scanners_only = nets("", "198.18.7.0/24\n");
        assert_eq!(scanners_only.label(ip("198.18.7.1")), Some(SCANNERS));
        assert_eq!(scanners_only.label(ip("192.0.2.1")), None);
    }

    #[test]
    fn empty_lists_say_nothing() {
        let n = nets("# nothing yet\n", "\n");
        assert!(n.is_empty());
        assert_eq!(Networks::default(), n);
        for a in ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"] {
            assert_eq!(n.label(ip(a)), None);
        }
        assert_eq!(n.len(APPLE_PROXY), 0);
        assert_eq!(ranges(&n, SCANNERS), Vec::<String>::new());
    }

    #[test]
    fn the_whole_space_and_its_edges() {
        let n = nets("::/0\n", "0.0.0.0/32\n255.255.255.255/32\n");
        let s = n.summary(APPLE_PROXY).unwrap();
        assert_eq!(
            (s.v4_ranges, s.v6_ranges, s.v6_addresses),
            (0, 1, u128::MAX)
        );
        assert_eq!(ranges(&n, APPLE_PROXY), ["::/0"]);
        assert_eq!(n.label(ip("::")), Some(APPLE_PROXY));
        assert_eq!(
            n.label(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(APPLE_PROXY)
        );
        assert_eq!(n.label(ip("0.0.0.0")), Some(SCANNERS));
        assert_eq!(n.label(ip("255.255.255.255")), Some(SCANNERS));
        assert_eq!(n.label(ip("0.0.0.1")), Some(APPLE_PROXY));
        let all_v4 = nets("0.0.0.0/0\n", "");
        let s = all_v4.summary(APPLE_PROXY).unwrap();
        assert_eq!((s.v4_ranges, s.v4_addresses), (1, 1u128 << 32));
        assert_eq!(ranges(&all_v4, APPLE_PROXY), ["0.0.0.0/0"]);
    }

    #[test]
    fn the_shipped_lists_parse() {
        let shipped = Networks::shipped();
        // Both files ship empty until someone imports the vendors' lists; whatever they
        // hold, their text round-trips.
        for name in LISTS {
            let again = Networks::from_lists(&[(name, &shipped.to_text(name))]).unwrap();
            assert_eq!(again.summary(name), shipped.summary(name));
        }
    }
}
