//! The integration tests: the real server over HTTP, and the real binary.

mod api;
mod cli;
mod durability;
mod postgres;
mod status;
mod storage;
mod support;
mod webhooks;
