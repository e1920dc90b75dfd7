//! Beacon on one machine: the local stack (provisioned from the SAM template into the
//! AWS emulator), a local API Gateway hosting the HTTP functions, and the demo.

pub mod demo;
pub mod functions;
pub mod gateway;
pub mod stack;
pub mod stream;
