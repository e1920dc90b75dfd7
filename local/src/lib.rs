//! Beacon on one machine: the local stack (provisioned from the SAM template into the
//! AWS emulator), a local API Gateway hosting the HTTP functions, and the demo.

pub mod consumers;
pub mod dashboard;
pub mod demo;
pub mod functions;
pub mod gateway;
pub mod poller;
pub mod senders;
pub mod stack;
pub mod stream;
