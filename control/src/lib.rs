//! Gatehouse's control plane: the REST API of `shared/api-reference.txt`,
//! tenant auth, and storage on SQLite or PostgreSQL.
//!
//! The crate splits by domain: each of `accounts`, `services`, `routes`,
//! `consumers`, `logs`, `error_events`, `health`, `metrics` and
//! `gateway_status` owns its endpoints, validation and queries;
//! `declarative` serves the whole config as one document; `store`
//! holds what the two database dialects share; `http` puts the routers
//! together.

pub mod accounts;
pub mod api_tokens;
pub mod auth;
pub mod book;
pub mod config;
pub mod config_rows;
pub mod console;
pub mod consumers;
pub mod declarative;
pub mod embedded;
pub mod error;
pub mod error_events;
pub mod extract;
pub mod gateway;
pub mod gateway_key;
pub mod gateway_status;
pub mod health;
pub mod http;
pub mod instruments;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub use gatehouse_protocol::plugin_check;
pub mod plugins;
pub mod route_plugins;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod services;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tiers;
pub mod validate;

pub use config::ControlArgs;
pub use server::{Control, run};
