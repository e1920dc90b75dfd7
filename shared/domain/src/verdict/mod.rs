//! Human or machine: every open and click gets a verdict. At the edge, from the request
//! alone ([`classify`]: the user agent and the IP's network, from the range lists of
//! [`networks`]); in the aggregate, again from what else happened to the message
//! ([`trail`]: an open on delivery, a click before any open, the honeypot link), which
//! may overturn a verdict already counted.

pub mod classify;
pub mod networks;
pub mod trail;
