//! Integration tests: each starts the real `chronosdb` binary on ephemeral loopback ports
//! and talks to it over HTTP and pgwire, as users and their clients do.

mod auth;
mod backup;
mod clients;
mod common;
mod compaction;
mod compat;
mod crash;
mod databases;
mod deep_statements;
mod delete;
mod ingest;
mod postgres_side_by_side;
mod query;
mod retention;
mod sessions;
mod slt;
mod sql_write;
mod tls;
