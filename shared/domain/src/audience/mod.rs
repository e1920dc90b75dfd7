//! The recipients behind the events: the suppression list ([`suppression`]), engagement
//! marks and scores ([`engagement`]), segment counts ([`segments`]), and the port they
//! are read through ([`reader`]).

pub mod engagement;
pub mod reader;
pub mod segments;
pub mod suppression;
