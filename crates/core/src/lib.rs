//! Concord's domain, shared by the `concord` command and the desktop app: where the data
//! lives, the database both open, and what the person is told about the state of things.
//!
//! The two faces (`crates/cli`, `src-tauri`) are thin: everything they show or do goes
//! through [`Concord`].

pub mod dav;
pub mod feeds;
pub mod paths;
pub mod secrets;
pub mod status;

mod error;
mod schema;

use std::path::{Path, PathBuf};

use concord_durable::Database;

pub use error::CoreError;
pub use status::{JobCounts, Status, StatusState};

/// The file name of the database inside the data directory.
pub const DATABASE_FILE: &str = "concord.db";

/// One opened Concord data directory. Cheap to share between threads: every call opens its own
/// connection, so the tray app, `concord daemon` and a one-off command can all hold one.
#[derive(Debug, Clone)]
pub struct Concord {
    data_dir: PathBuf,
    db: Database,
}

impl Concord {
    /// Opens (creating if needed) the database in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, CoreError> {
        let db = Database::open(data_dir.join(DATABASE_FILE))?;
        let mut conn = db.connect()?;
        db.migrate(&mut conn, schema::COMPONENT, schema::MIGRATIONS)?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            db,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn database_path(&self) -> &Path {
        self.db.path()
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Whether background syncing is paused by the person.
    pub fn paused(&self) -> Result<bool, CoreError> {
        let conn = self.db.connect()?;
        Ok(schema::setting(&conn, schema::PAUSED)?.as_deref() == Some("1"))
    }

    pub fn set_paused(&self, paused: bool) -> Result<(), CoreError> {
        let conn = self.db.connect()?;
        schema::set_setting(&conn, schema::PAUSED, if paused { "1" } else { "0" })?;
        tracing::info!(paused, "syncing paused state changed");
        Ok(())
    }

    /// Asks for every configured sync to run now. Returns how many were asked; with nothing
    /// configured that is zero, and the status line says so.
    pub fn request_sync_now(&self) -> Result<u64, CoreError> {
        tracing::info!("sync requested; nothing is configured to sync yet");
        Ok(0)
    }

    /// What runs and what is configured, in the person's words (see [`status`]).
    pub fn status(&self) -> Result<Status, CoreError> {
        let conn = self.db.connect()?;
        status::read(&conn)
    }
}
