//! smshook: a self-hosted receiver for SMS providers' webhooks. It verifies
//! each provider's signature on the raw body, normalizes every payload into
//! one event model (keeping the original), stores it durably exactly once,
//! and lets the application query what arrived.

pub mod cli;
pub mod config;
pub mod dispatch;
pub mod event;
pub mod file_stamp;
pub mod http;
pub mod ingest;
pub mod join;
pub mod log_throttle;
pub mod message;
pub mod optout;
pub mod providers;
pub mod retention;
pub mod signature;
pub mod snapshot;
pub mod store;
pub mod tls_client;
