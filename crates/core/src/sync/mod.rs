//! Calendar and contact sync: pairs of storages (CalDAV, CardDAV, webcal, vdir) kept equal
//! by a three-way reconcile against the last synced state.
//!
//! Map, one folder (or file) per concern:
//!
//! - [`item`]: items read without rewriting them (raw bytes, UID, normalized hash, summary).
//! - [`state`]: what is remembered, in SQL (accounts, storages, pairs, per-item state with
//!   base content, history, quarantine, conflicts), one file per concern beside `mod.rs`:
//!   `mapping` (what discovery saw, "all collections" mappings), `metadata`, `conflicts`.
//!   The one part that speaks SQL; the others call its functions.
//! - [`merge`]: the field-by-field three-way merge of two versions of one item.
//! - [`storage`]: what every storage speaks ([`storage::Storage`], its errors, where
//!   passwords come from, opening one) and each storage: `caldav` (CalDAV and CardDAV, with
//!   `delta`), `vdir`, `webcal`; `memory`, the in-process one of tests and benchmarks.
//! - [`run`]: one sync of one pair as a durable workflow, a file per stage: `observe`,
//!   `plan` (around `run::reconcile`, using [`merge`] for disjoint edits), `guard`, `apply`;
//!   `run::metadata` (display name and colour) rides along.
//! - [`accounts`]: `discovery` of an account's collections, "all collections" `mapping`s,
//!   and the rules of making and removing `pairs`.
//! - [`resolve`]: what the person decides: the `conflicts` inbox and `duplicates` contacts.
//!
//! Imports run one way, each part using only those before it:
//! `item` <- `state` <- `merge`, `storage` <- `run` <- `accounts`, `resolve`
//! (`merge` and `storage` do not use each other; `accounts` and `resolve` neither).
//! Every part may use [`SyncError`] from here, which wraps [`storage::StorageError`].
//!
//! Invariants: an item's bytes travel as the source gave them (only merges write new text);
//! every write is conditional; every overwritten or deleted version is in `item_history`
//! before the write; a conflict or an unreadable item never stops the rest of the pair.

/// `impl From<Source> for Error` for every source [`SyncError`] wraps, so `?` carries them
/// into an error type that has a `Sync(SyncError)` variant.
macro_rules! via_sync_error {
    ($target:ident) => {
        via_sync_error!(@each $target: StorageError, concord_durable::DbError, rusqlite::Error,
            concord_durable::Error);
    };
    (@each $target:ident: $($source:ty),*) => {$(
        impl From<$source> for $target {
            fn from(err: $source) -> Self {
                $target::Sync(SyncError::from(err))
            }
        }
    )*};
}

pub mod accounts;
pub mod item;
pub mod merge;
pub mod resolve;
pub mod run;
pub mod state;
pub mod storage;

pub use run::{PairSync, Report, SyncOptions, sync_durably, sync_pair};
pub use state::Side;
pub use storage::CredentialSource;

use crate::dav::DavError;
use storage::StorageError;

/// Why a sync could not run, classified once for the durable engine.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Database(#[from] concord_durable::DbError),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("there is no pair named {0:?} (see `concord pair list`)")]
    NoSuchPair(String),
    #[error("reading the password from the keyring failed: {0}")]
    Secret(String),
    #[error(transparent)]
    Engine(#[from] concord_durable::Error),
    #[error("the sync run failed: {0}")]
    Run(String),
    #[error("cannot restore: {0}")]
    Restore(String),
    #[error(
        "{pair} is one collection of {mapping}, which syncs every collection of {account}: it \
         would come back at its next sync; remove {mapping} instead (its folders stay)"
    )]
    PartOfMapping {
        pair: String,
        mapping: String,
        account: String,
    },
    #[error(
        "{location} is already synced through the account {account}: pair it through that \
         account, or remove that account first"
    )]
    CollectionTaken { location: String, account: String },
}

impl SyncError {
    /// The person must act before a retry can help (password, address, certificate).
    pub fn needs_attention(&self) -> bool {
        match self {
            SyncError::Storage(err) => err.needs_attention(),
            SyncError::Secret(_) | SyncError::NoSuchPair(_) => true,
            _ => false,
        }
    }

    /// Worth retrying on its own: the network, a busy server or database.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Storage(StorageError::Dav(
                DavError::Timeout { .. } | DavError::Request { .. } | DavError::Status { .. },
            )) => !self.needs_attention(),
            SyncError::Storage(StorageError::Io { .. }) => true,
            SyncError::Database(_) | SyncError::Sql(_) | SyncError::Engine(_) => true,
            _ => false,
        }
    }
}

/// The durable engine's class of a sync error: the person's to fix, worth a retry, or final.
impl From<SyncError> for concord_durable::StepError {
    fn from(err: SyncError) -> Self {
        let message = err.to_string();
        if err.needs_attention() {
            Self::needs_attention(message)
        } else if err.is_transient() {
            Self::transient(message)
        } else {
            Self::permanent(message)
        }
    }
}
