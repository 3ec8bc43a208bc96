//! Integration tests of the control plane over HTTP, each run against a
//! fresh SQLite file and a fresh PostgreSQL database.

mod common;
mod throwaway_db;

mod accounts;
mod api_tokens;
mod config;
mod consumers;
mod gateway;
mod hostile_input;
mod integrity;
mod isolation;
mod plugins;
mod protocol;
mod routes;
mod services;
mod telemetry;
