//! A durable job engine on one machine, with all state in SQLite.
//!
//! Temporal's ideas, small: workflow runs with checkpointed steps, retries, schedules and
//! leases. This crate knows nothing of calendars or feeds; `concord-core` builds on it.

pub mod db;

pub use db::{Database, DbError, Migration};
