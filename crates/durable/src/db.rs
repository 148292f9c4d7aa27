//! Opening the database: durability settings checked after they are set, and versioned,
//! atomic schema migrations per component (the engine and each crate that shares the file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

/// How long a connection waits on another process's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the database {path} refused setting {setting}: wanted {wanted}, it reports {actual}")]
    Setting {
        path: PathBuf,
        setting: &'static str,
        wanted: String,
        actual: String,
    },
    #[error(
        "the database {path} has schema version {found} for {component}, newer than this program knows ({known}); update Concord"
    )]
    TooNew {
        path: PathBuf,
        component: String,
        found: i64,
        known: i64,
    },
    #[error("migration {version} of {component} failed: {source}")]
    Migration {
        component: String,
        version: i64,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// One schema version of one component. Shipped migrations are never edited; a change is a
/// new migration with the next version.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

/// How hard each commit waits for the disk. `Full` (the default) survives power loss; `Normal`
/// in WAL mode survives a crash of the process but may lose the last commits on power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

impl Synchronous {
    fn pragma_value(self) -> i64 {
        match self {
            Self::Full => 2,
            Self::Normal => 1,
        }
    }
}

/// A handle on the database file; open as many connections as needed, one per thread.
#[derive(Debug, Clone)]
pub struct Database {
    path: PathBuf,
    synchronous: Synchronous,
}

impl Database {
    /// Creates the file and its directory if needed, and checks that the settings the engine
    /// relies on hold.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, DbError> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = Self {
            path,
            synchronous: Synchronous::Full,
        };
        db.connect()?;
        Ok(db)
    }

    /// The same file with another durability level for the connections opened from now on.
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    pub fn synchronous(&self) -> Synchronous {
        self.synchronous
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection with WAL, `synchronous=FULL` (or the level chosen), foreign keys and a busy timeout, each
    /// read back after it is set: a mistyped or refused PRAGMA fails silently in SQLite.
    pub fn connect(&self) -> Result<Connection, DbError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|source| DbError::Open {
                path: self.path.clone(),
                source,
            })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        self.expect("journal_mode", "wal", &mode.to_ascii_lowercase())?;
        let wanted_sync = self.synchronous.pragma_value();
        conn.execute_batch(&format!(
            "PRAGMA synchronous={wanted_sync}; PRAGMA foreign_keys=ON;"
        ))?;
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        self.expect("synchronous", &wanted_sync.to_string(), &sync.to_string())?;
        let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
        self.expect("foreign_keys", "1", &fk.to_string())?;
        let busy: i64 = conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
        self.expect(
            "busy_timeout",
            &BUSY_TIMEOUT.as_millis().to_string(),
            &busy.to_string(),
        )?;
        Ok(conn)
    }

    /// Copies the write-ahead log back into the database file as far as no reader needs it
    /// (a passive checkpoint: it neither waits for nor blocks anyone). SQLite otherwise does
    /// this inside whichever commit takes the log past 1,000 pages; a caller that is about to
    /// wait anyway (for a server's answer) can take that cost off its later commits. The
    /// connection is a bare one: a checkpoint needs neither the schema nor the settings.
    /// Returns the log's frames and how many of them are now in the database file.
    pub fn checkpoint_passive(&self) -> Result<(i64, i64), DbError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|source| DbError::Open {
                path: self.path.clone(),
                source,
            })?;
        let (log, done): (i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?;
        Ok((log, done))
    }

    fn expect(&self, setting: &'static str, wanted: &str, actual: &str) -> Result<(), DbError> {
        if wanted == actual {
            return Ok(());
        }
        Err(DbError::Setting {
            path: self.path.clone(),
            setting,
            wanted: wanted.to_owned(),
            actual: actual.to_owned(),
        })
    }

    /// Brings `component`'s schema up to the last of `migrations` (ascending versions from 1),
    /// each version in its own `BEGIN IMMEDIATE` transaction together with its version row, so
    /// a crash leaves the schema at a known version.
    pub fn migrate(
        &self,
        conn: &mut Connection,
        component: &str,
        migrations: &[Migration],
    ) -> Result<i64, DbError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                component TEXT PRIMARY KEY,
                version INTEGER NOT NULL
            ) STRICT;",
        )?;
        let known = migrations.last().map_or(0, |m| m.version);
        let mut current = self.version(conn, component)?;
        if current > known {
            return Err(DbError::TooNew {
                path: self.path.clone(),
                component: component.to_owned(),
                found: current,
                known,
            });
        }
        let start = current;
        for m in migrations.iter().filter(|m| m.version > start) {
            let fail = |source| DbError::Migration {
                component: component.to_owned(),
                version: m.version,
                source,
            };
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail)?;
            // Another process may have migrated while we waited for the write lock.
            let now: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = ?1",
                    [component],
                    |r| r.get(0),
                )
                .map_err(fail)?;
            if now >= m.version {
                current = now;
                continue;
            }
            tx.execute_batch(m.sql).map_err(fail)?;
            tx.execute(
                "INSERT INTO schema_version (component, version) VALUES (?1, ?2)
                 ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                rusqlite::params![component, m.version],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
            current = m.version;
        }
        Ok(current)
    }

    /// The schema version of `component`, 0 when it has none yet.
    pub fn version(&self, conn: &Connection, component: &str) -> Result<i64, DbError> {
        Ok(conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = ?1",
            [component],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &[Migration] = &[
        Migration {
            version: 1,
            sql: "CREATE TABLE a (x INTEGER) STRICT;",
        },
        Migration {
            version: 2,
            sql: "ALTER TABLE a ADD COLUMN y TEXT;",
        },
    ];

    #[test]
    fn settings_hold_and_migrations_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("sub/c.db")).unwrap();
        let mut conn = db.connect().unwrap();
        assert_eq!(db.migrate(&mut conn, "t", &V[..1]).unwrap(), 1);
        assert_eq!(db.migrate(&mut conn, "t", V).unwrap(), 2);
        assert_eq!(db.migrate(&mut conn, "t", V).unwrap(), 2);
        conn.execute("INSERT INTO a (x, y) VALUES (1, 'z')", [])
            .unwrap();
    }

    /// A fresh database in a temporary directory, migrated to the last of `V`.
    fn migrated() -> (tempfile::TempDir, Database, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("c.db")).unwrap();
        let mut conn = db.connect().unwrap();
        db.migrate(&mut conn, "t", V).unwrap();
        (dir, db, conn)
    }

    #[test]
    fn a_passive_checkpoint_copies_what_no_reader_needs_and_waits_for_none() {
        let (_dir, db, conn) = migrated();
        for i in 0..20 {
            conn.execute("INSERT INTO a (x) VALUES (?1)", [i]).unwrap();
        }
        let (log, done) = db.checkpoint_passive().unwrap();
        assert!(log > 0 && done == log, "{log} frames, {done} copied");

        // A reader's snapshot holds back what was committed after it began; nothing waits.
        let mut reader = db.connect().unwrap();
        let snapshot = reader.transaction().unwrap();
        let before: i64 = snapshot
            .query_row("SELECT COUNT(*) FROM a", [], |r| r.get(0))
            .unwrap();
        for i in 0..5 {
            conn.execute("INSERT INTO a (x) VALUES (?1)", [i]).unwrap();
        }
        let (log, done) = db.checkpoint_passive().unwrap();
        assert!(
            done < log,
            "{log} frames, {done} copied past an open snapshot"
        );
        let still: i64 = snapshot
            .query_row("SELECT COUNT(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!((before, still), (20, 20));
        drop(snapshot);
        let (log, done) = db.checkpoint_passive().unwrap();
        assert_eq!(done, log);
        let all: i64 = conn
            .query_row("SELECT COUNT(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(all, 25);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (_dir, db, mut conn) = migrated();
        let err = db.migrate(&mut conn, "t", &V[..1]).unwrap_err();
        assert!(
            matches!(
                err,
                DbError::TooNew {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_failed_migration_leaves_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("c.db")).unwrap();
        let mut conn = db.connect().unwrap();
        let bad = [
            V[0],
            Migration {
                version: 2,
                sql: "ALTER TABLE nope ADD COLUMN y;",
            },
        ];
        assert!(db.migrate(&mut conn, "t", &bad).is_err());
        assert_eq!(db.version(&conn, "t").unwrap(), 1);
    }
}
