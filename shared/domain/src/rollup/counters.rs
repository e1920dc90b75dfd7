//! What a rollup item counts, declared once.
//!
//! The list in [`crate::counter_list!`] is the only place a counter is named. It gives the
//! [`Counters`] struct its fields, the table its attribute names ([`Counters::SCALAR_FIELDS`],
//! what the writer adds and the reader sets), and every view its key, label and kind:
//! the stats API's counts (`crate::stats::Counts`) and the report's metrics (the
//! `beacon-report` crate builds its `Metric` from the same list). Adding a counter is one
//! line here, plus what makes it count in the fold ([`Counters`]'s `add`, beside the
//! aggregate's fold in the parent module).
//!
//! A counter is either **shown** (a view lists it: a count, or money kept in micro-units
//! and shown as a decimal under its own key; custom events in the stats API only) or
//! **internal** (stored and summed like the
//! others, read only through what it feeds: the latency count and sum behind the average).

use super::LATENCY_BOUNDS_MS;
use std::collections::BTreeMap;

/// Calls `$then!` with the counter list: `shown` (in the stats API and offered to
/// reports), `api_only` (in the stats API only: custom events say nothing about mail)
/// and `internal`, each entry `Variant field: type => "Label", kind key;` (internal ones
/// `Variant field: type;`). `kind` is `Count` or `Money`; `key` is what views call it
/// (money drops `_micros`).
#[macro_export]
macro_rules! counter_list {
    ($then:path) => {
        $then! {
            shown: [
                Sent sent: u64 => "Sent", Count sent;
                Delivered delivered: u64 => "Delivered", Count delivered;
                BouncedHard bounced_hard: u64 => "Hard bounces", Count bounced_hard;
                BouncedSoft bounced_soft: u64 => "Soft bounces", Count bounced_soft;
                Complained complained: u64 => "Complaints", Count complained;
                Failed failed: u64 => "Failed", Count failed;
                Delayed delayed: u64 => "Delivery delays", Count delayed;
                Unsubscribed unsubscribed: u64 => "Unsubscribed", Count unsubscribed;
                OpensHuman opens_human: u64 => "Human opens", Count opens_human;
                OpensMachine opens_machine: u64 => "Machine opens", Count opens_machine;
                ClicksHuman clicks_human: u64 => "Human clicks", Count clicks_human;
                ClicksBot clicks_bot: u64 => "Bot clicks", Count clicks_bot;
                Conversions conversions: u64 => "Conversions", Count conversions;
                ConversionValue conversion_value_micros: i64 => "Conversion value", Money conversion_value;
                Cost cost_micros: i64 => "Cost", Money cost;
            ]
            api_only: [
                Custom custom: u64 => "Custom events", Count custom;
            ]
            internal: [
                LatencyCount latency_count: u64;
                LatencySumMs latency_sum_ms: u64;
            ]
        }
    };
}

/// How a view shows a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number of events.
    Count,
    /// Micro-units of money, shown as a decimal.
    Money,
    /// Not shown on its own (it feeds a derived number).
    Internal,
}

/// A counter's value as the table stores it (a DynamoDB Number: counts never go below
/// zero, money may).
trait Stored: Copy {
    fn to_stored(self) -> i64;
    fn from_stored(v: i64) -> Self;
}

impl Stored for u64 {
    fn to_stored(self) -> i64 {
        self as i64
    }
    fn from_stored(v: i64) -> Self {
        v.max(0) as u64
    }
}

impl Stored for i64 {
    fn to_stored(self) -> i64 {
        self
    }
    fn from_stored(v: i64) -> Self {
        v
    }
}

macro_rules! declare_counters {
    (
        shown: [$($variant:ident $field:ident: $ty:ty => $label:literal, $kind:ident $key:ident;)*]
        api_only: [$($avariant:ident $afield:ident: $aty:ty => $alabel:literal, $akind:ident $akey:ident;)*]
        internal: [$($ivariant:ident $ifield:ident: $ity:ty;)*]
    ) => {
        /// Everything one rollup item counts. Money is kept in micro-units so sums are
        /// exact.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Counters {
            $(pub $field: $ty,)*
            $(pub $afield: $aty,)*
            $(pub $ifield: $ity,)*
            /// Histogram bucket index → count (only non-zero buckets).
            pub latency_hist: BTreeMap<usize, u64>,
            /// Link id → clicks (campaign scope only).
            pub links: BTreeMap<String, LinkCounters>,
            /// Machine opens by the reason of their verdict
            /// ([`crate::verdict::MACHINE_REASONS`]; only non-zero ones): they add up to
            /// `opens_machine` for opens counted since reasons were.
            pub open_reasons: BTreeMap<&'static str, u64>,
            /// Bot clicks by reason, as [`Counters::open_reasons`].
            pub click_reasons: BTreeMap<&'static str, u64>,
        }

        /// One scalar counter of [`Counters`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Counter {
            $($variant,)*
            $($avariant,)*
            $($ivariant,)*
        }

        impl Counter {
            /// Every scalar counter, in the list's order.
            pub const ALL: [Counter; SCALARS] = [$(Counter::$variant,)* $(Counter::$avariant,)* $(Counter::$ivariant,)*];

            /// The table's attribute name.
            pub fn stored(self) -> &'static str {
                // The enum and the field list come from one list, in one order.
                Counters::SCALAR_FIELDS[self as usize]
            }

            /// What views call it (`cost` for `cost_micros`).
            pub fn key(self) -> &'static str {
                match self {
                    $(Counter::$variant => stringify!($key),)*
                    $(Counter::$avariant => stringify!($akey),)*
                    $(Counter::$ivariant => stringify!($ifield),)*
                }
            }

            /// What a person reads.
            pub fn label(self) -> &'static str {
                match self {
                    $(Counter::$variant => $label,)*
                    $(Counter::$avariant => $alabel,)*
                    $(Counter::$ivariant => stringify!($ifield),)*
                }
            }

            pub fn kind(self) -> Kind {
                match self {
                    $(Counter::$variant => Kind::$kind,)*
                    $(Counter::$avariant => Kind::$akind,)*
                    $(Counter::$ivariant => Kind::Internal,)*
                }
            }

            /// Its value in `c`, as stored.
            pub fn get(self, c: &Counters) -> i64 {
                match self {
                    $(Counter::$variant => c.$field.to_stored(),)*
                    $(Counter::$avariant => c.$afield.to_stored(),)*
                    $(Counter::$ivariant => c.$ifield.to_stored(),)*
                }
            }

            fn set(self, c: &mut Counters, v: i64) {
                match self {
                    $(Counter::$variant => c.$field = Stored::from_stored(v),)*
                    $(Counter::$avariant => c.$afield = Stored::from_stored(v),)*
                    $(Counter::$ivariant => c.$ifield = Stored::from_stored(v),)*
                }
            }
        }

        /// How many scalar counters there are.
        pub const SCALARS: usize = [$(stringify!($field),)* $(stringify!($afield),)* $(stringify!($ifield),)*].len();

        impl Counters {
            /// The stored names of the scalar counters (everything but the latency
            /// histogram and the per-link counts), in the order of [`Counters::scalars`]:
            /// what a reader that needs only counts asks the table for.
            pub const SCALAR_FIELDS: [&'static str; SCALARS] =
                [$(stringify!($field),)* $(stringify!($afield),)* $(stringify!($ifield),)*];
        }
    };
}

counter_list!(declare_counters);

/// Clicks on one link of a campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub url: String,
    pub human: u64,
    pub bot: u64,
}

impl Counters {
    /// Adds another item's counts (reading several items back as one).
    pub fn merge(&mut self, o: &Counters) {
        self.merge_counts(o, true);
    }

    /// Adds another item's counts, and its links only if `with_links`.
    pub fn merge_counts(&mut self, o: &Counters, with_links: bool) {
        for k in Counter::ALL {
            k.set(self, k.get(self) + k.get(o));
        }
        for (b, n) in &o.latency_hist {
            *self.latency_hist.entry(*b).or_default() += n;
        }
        for (mine, theirs) in [
            (&mut self.open_reasons, &o.open_reasons),
            (&mut self.click_reasons, &o.click_reasons),
        ] {
            for (r, n) in theirs {
                *mine.entry(r).or_default() += n;
            }
        }
        if !with_links {
            return;
        }
        for (id, l) in &o.links {
            let mine = self
                .links
                .entry(id.clone())
                .or_insert_with(|| LinkCounters {
                    url: l.url.clone(),
                    ..Default::default()
                });
            mine.human += l.human;
            mine.bot += l.bot;
        }
    }

    /// Latency percentile (0-100) from the histogram: the upper bound of its bucket.
    pub fn latency_percentile(&self, p: f64) -> Option<u64> {
        let total: u64 = self.latency_hist.values().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.latency_hist {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_MS[*b]);
            }
        }
        None
    }

    /// The scalar counters, named by [`Counters::SCALAR_FIELDS`].
    pub fn scalars(&self) -> [i64; SCALARS] {
        Counter::ALL.map(|k| k.get(self))
    }

    /// The numeric fields a rollup item stores, by attribute name (non-zero only), in
    /// one place so the writer and the reader of the rollup table agree: the scalar
    /// counters and latency buckets. Links are stored in items of their own
    /// ([`super::link_partition`]).
    pub fn numeric_fields(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = Self::SCALAR_FIELDS
            .iter()
            .zip(self.scalars())
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        out.extend(
            self.latency_hist
                .iter()
                .map(|(b, n)| (format!("lat_{b}"), *n as i64)),
        );
        out.extend(reason_fields(
            &self.open_reasons,
            &self.click_reasons,
            |n| *n as i64,
        ));
        out
    }

    /// Sets a numeric field from its stored name; unknown names are ignored so old
    /// readers survive new counters. `lc_{link}_h`/`_b` are link clicks as campaign
    /// items held them before links had items of their own: still read, never written.
    pub fn set_field(&mut self, name: &str, v: i64) {
        if let Some(k) = Counter::ALL.into_iter().find(|k| k.stored() == name) {
            k.set(self, v);
            return;
        }
        let u = v.max(0) as u64;
        if let Some((kind, reason)) = reason_of_field(name) {
            let reasons = match kind {
                ReasonOf::Open => &mut self.open_reasons,
                ReasonOf::Click => &mut self.click_reasons,
            };
            // A counter moved back to 0 is no reason: keep only non-zero ones.
            if u > 0 {
                *reasons.entry(reason).or_default() += u;
            }
        } else if let Some(b) = name
            .strip_prefix("lat_")
            .and_then(|b| b.parse::<usize>().ok())
        {
            if b < LATENCY_BOUNDS_MS.len() {
                self.latency_hist.insert(b, u);
            }
        } else if let Some((id, kind)) = name.strip_prefix("lc_").and_then(|r| r.rsplit_once('_')) {
            let link = self.links.entry(id.to_string()).or_default();
            match kind {
                "h" => link.human = u,
                "b" => link.bot = u,
                _ => {}
            }
        }
    }

    /// Adds a link item's clicks (and its URL, if this is the first the counters see).
    pub fn add_link(&mut self, id: &str, human: u64, bot: u64, url: Option<&str>) {
        let link = self.links.entry(id.to_string()).or_default();
        link.human += human;
        link.bot += bot;
        if let (true, Some(url)) = (link.url.is_empty(), url) {
            link.url = url.to_string();
        }
    }
}

/// Attribute-name prefixes of the reason counters: `mo_{reason}` (machine opens) and
/// `bc_{reason}` (bot clicks).
pub const OPEN_REASON_PREFIX: &str = "mo_";
pub const CLICK_REASON_PREFIX: &str = "bc_";

/// Which column a reason counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonOf {
    Open,
    Click,
}

/// The stored name of a reason counter.
pub fn reason_field(kind: ReasonOf, reason: &str) -> String {
    match kind {
        ReasonOf::Open => format!("{OPEN_REASON_PREFIX}{reason}"),
        ReasonOf::Click => format!("{CLICK_REASON_PREFIX}{reason}"),
    }
}

/// Every reason counter's stored name: what a reader asks the table for.
pub fn reason_fields_all() -> impl Iterator<Item = String> {
    crate::verdict::MACHINE_REASONS.iter().flat_map(|r| {
        [
            reason_field(ReasonOf::Open, r),
            reason_field(ReasonOf::Click, r),
        ]
    })
}

/// The column and listed reason of a stored reason counter's name.
fn reason_of_field(name: &str) -> Option<(ReasonOf, &'static str)> {
    let (kind, reason) = if let Some(r) = name.strip_prefix(OPEN_REASON_PREFIX) {
        (ReasonOf::Open, r)
    } else {
        (ReasonOf::Click, name.strip_prefix(CLICK_REASON_PREFIX)?)
    };
    Some((kind, crate::verdict::machine_reason(reason)))
}

/// Reason counters (or their moves) as stored fields.
pub(crate) fn reason_fields<N>(
    opens: &BTreeMap<&'static str, N>,
    clicks: &BTreeMap<&'static str, N>,
    value: impl Fn(&N) -> i64,
) -> Vec<(String, i64)> {
    let of = |kind, m: &BTreeMap<&'static str, N>| {
        m.iter()
            .map(|(r, n)| (reason_field(kind, r), value(n)))
            .filter(|(_, n)| *n != 0)
            .collect::<Vec<_>>()
    };
    let mut out = of(ReasonOf::Open, opens);
    out.extend(of(ReasonOf::Click, clicks));
    out
}
