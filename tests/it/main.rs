//! The integration tests: the real server over HTTP, and the real binary.

mod api;
mod cli;
mod console;
mod deploy;
mod dispatch;
mod durability;
mod memory;
mod nats;
mod openapi;
mod postgres;
mod powercut;
mod receiver;
mod redis;
mod reload;
mod retention;
mod status;
mod storage;
mod stream;
mod support;
mod tls;
mod webhooks;
