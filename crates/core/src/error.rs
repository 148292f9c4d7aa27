//! The error type of `concord-core`, one variant per thing that can go wrong, each saying what
//! and where so a person can act on it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(
        "no data directory: pass --data-dir, set CONCORD_DATA_DIR, or set HOME or XDG_DATA_HOME"
    )]
    NoDataDir,
    #[error("the data directory {path} is not an absolute path")]
    RelativeDataDir { path: PathBuf },
    #[error(transparent)]
    Database(#[from] concord_durable::DbError),
    #[error(transparent)]
    Jobs(#[from] concord_durable::Error),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Feeds(#[from] crate::feeds::FeedError),
}
