//! Feeds: polite, adaptive and safe fetching of RSS, Atom and JSON Feed.
//!
//! One flat module per concern, as Miniflux does it: [`fetch`] speaks HTTP (every nuance of
//! feed fetching in one place), [`parse`] turns any bytes into a [`parse::Document`] without
//! ever panicking, [`sanitize`] makes entry HTML safe before it is stored, [`store`] owns the
//! tables, [`schedule`] decides when each feed is checked next and says why, [`opml`] imports
//! and exports subscriptions, [`notify`] turns one refresh's new entries into one notification,
//! and [`refresh`] ties them together: it checks every due feed concurrently and returns a
//! [`refresh::RefreshSummary`]. A refresh is idempotent (conditional GET, entries upserted by
//! stable id), so it can run as a step of a durable workflow and be re-run after a crash.

pub mod fetch;
pub mod notify;
pub mod opml;
pub mod parse;
pub mod refresh;
pub mod sanitize;
pub mod schedule;
pub mod store;
pub mod workflow;

pub use refresh::{RefreshOptions, RefreshSummary, refresh, refresh_blocking};
pub use store::{EntryRow, FeedRow};

/// What can go wrong managing feeds (as opposed to fetching one: a feed that fails to fetch is
/// recorded on the feed, see [`fetch::FetchError`], and never fails a refresh).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Database(#[from] concord_durable::DbError),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no feed matches {0:?}: see `concord feeds list`")]
    NotFound(String),
    #[error("entry {0} is gone: the feed no longer keeps it")]
    EntryGone(i64),
    #[error("{0:?} is not a feed address: use an http:// or https:// URL")]
    BadUrl(String),
    #[error("OPML: {0}")]
    Opml(String),
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
    #[error("{0}")]
    Invalid(String),
}
