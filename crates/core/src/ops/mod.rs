//! The operations both faces offer, once: accounts, pairs, syncing now, items, feeds,
//! conflicts and duplicates, background jobs. Each is a method of
//! [`Concord`](crate::Concord) taking what a person gave and returning typed answers or an
//! [`OpError`], whose sentence the CLI prints and the window shows as it is. The faces parse and
//! format; the rules, the defaults and the SQL are here and below.

mod accounts;
mod feeds;
mod items;
mod jobs;
mod names;
mod pairs;
mod resolve;

use serde::Serialize;
use serde::ser::SerializeStruct;

pub use accounts::{ConnectionTest, NewAccount};
pub use feeds::{
    AddedFeed, ENTRIES_LIMIT_DEFAULT, ENTRIES_LIMIT_MAX, Entries, EntryQuery, FeedRef,
    FeedsToRefresh, Mark, Marked, MuteChanges, NewFeed, web_link,
};
pub use jobs::{JOBS_LIMIT_DEFAULT, JOBS_LIMIT_MAX};
pub use pairs::{
    EVERY_MINUTES_MAX, EVERY_MINUTES_MIN, MappingRow, NewPair, PairRow, PairSettings, PairSide,
    SYNC_INTERVAL_DEFAULT, SideSpec, SyncAll,
};

use crate::CoreError;
use crate::feeds::FeedError;
use crate::secrets::SecretError;
use crate::sync::SyncError;
use crate::sync::resolve::conflicts::ConflictError;
use crate::sync::resolve::duplicates::DuplicateError;
use crate::sync::state::{self, Account};

/// The account named `name`, or the error that says there is none.
fn find_account(conn: &rusqlite::Connection, name: &str) -> Result<Account, OpError> {
    state::account(conn, name)?.ok_or_else(|| OpError::NotFound {
        what: "account",
        name: name.to_owned(),
    })
}

/// Why an operation was refused or failed, in a sentence a person can act on (lower case
/// first: the CLI prints it after "concord: "; the window capitalizes it).
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("there is no {what} named {name:?}")]
    NotFound { what: &'static str, name: String },
    #[error("there is already {what} named {name:?}")]
    Taken { what: &'static str, name: String },
    /// What the person gave cannot be used; the sentence says why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Conflict(#[from] ConflictError),
    #[error(transparent)]
    Duplicate(#[from] DuplicateError),
}

impl OpError {
    /// A short name of the kind of error, for a face that treats them differently.
    pub fn kind(&self) -> &'static str {
        match self {
            OpError::NotFound { .. } => "not_found",
            OpError::Taken { .. } => "taken",
            OpError::Invalid(_) => "invalid",
            OpError::Sync(err)
            | OpError::Conflict(ConflictError::Sync(err))
            | OpError::Duplicate(DuplicateError::Sync(err))
                if err.needs_attention() =>
            {
                "needs_attention"
            }
            OpError::Secret(_) => "needs_attention",
            OpError::Feed(FeedError::NotFound(_) | FeedError::EntryGone(_)) => "not_found",
            OpError::Feed(FeedError::BadUrl(_) | FeedError::Opml(_) | FeedError::Invalid(_)) => {
                "invalid"
            }
            OpError::Conflict(ConflictError::NoSuchConflict(_))
            | OpError::Duplicate(DuplicateError::NoSuchDuplicate(_)) => "not_found",
            OpError::Conflict(ConflictError::Unresolvable { .. })
            | OpError::Duplicate(DuplicateError::Unmergeable { .. }) => "invalid",
            // A contact changed on a side since: the person syncs and looks again.
            OpError::Duplicate(DuplicateError::Changed { .. }) => "needs_attention",
            OpError::Sync(_)
            | OpError::Core(_)
            | OpError::Feed(_)
            | OpError::Conflict(_)
            | OpError::Duplicate(_) => "failed",
        }
    }
}

impl From<rusqlite::Error> for OpError {
    fn from(err: rusqlite::Error) -> Self {
        OpError::Core(CoreError::Sql(err))
    }
}

impl From<concord_durable::DbError> for OpError {
    fn from(err: concord_durable::DbError) -> Self {
        OpError::Core(CoreError::Database(err))
    }
}

impl From<concord_durable::Error> for OpError {
    fn from(err: concord_durable::Error) -> Self {
        OpError::Core(CoreError::Jobs(err))
    }
}

/// Across the window's IPC boundary: `{ "kind": "not_found", "message": "there is no …" }`.
impl Serialize for OpError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("OpError", 2)?;
        out.serialize_field("kind", self.kind())?;
        out.serialize_field("message", &self.to_string())?;
        out.end()
    }
}
