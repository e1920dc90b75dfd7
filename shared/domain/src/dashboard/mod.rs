//! The dashboard's domain: who may look ([`access`]) and what arrived in the last
//! minutes ([`live`]). The page itself and its assets are served by the stats function;
//! every number it shows comes from the stats API.

pub mod access;
pub mod live;
