//! wsguard: an authenticating WebSocket reverse proxy.
//!
//! See `docs/architecture.md` for what each module owns.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod budget;
pub mod config;
pub mod connect;
pub mod control;
pub mod demo;
pub mod drain;
pub mod headers;
pub mod http_auth;
pub mod ids;
pub mod inject;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod origin;
pub mod passthrough;
pub mod process;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod relay;
pub mod reload;
pub mod replay;
pub mod rescue;
pub mod resolve;
pub mod revocation;
pub mod revoke;
pub mod session;
pub mod signals;
pub mod tls;
pub mod token;
pub mod upstream;
pub mod wire;
pub mod workers;
