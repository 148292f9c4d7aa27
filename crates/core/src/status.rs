//! The state of things in the person's words: one line for the tray menu and the window, the
//! state that picks the tray icon, and the counts behind them (also `concord status --json`).

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::{CoreError, schema};

/// What the tray icon shows. Ordered by how much it needs the person: the worst wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Idle,
    Syncing,
    Paused,
    Error,
    Attention,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub pending: u64,
    pub running: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub state: StatusState,
    /// The first line of the tray menu, e.g. "Idle: nothing configured yet".
    pub line: String,
    pub paused: bool,
    pub accounts: u64,
    pub pairs: u64,
    pub feeds: u64,
    pub conflicts: u64,
    pub jobs: JobCounts,
    /// Processes running the scheduler on this database now (tray app, `concord daemon`).
    pub workers: u64,
    /// RFC 3339 time of the last completed sync, if any.
    pub last_sync_at: Option<String>,
}

impl Status {
    fn configured(&self) -> bool {
        self.accounts + self.pairs + self.feeds > 0
    }

    /// Picks the state and writes the line from the counts.
    fn describe(mut self) -> Self {
        let plural = |n: u64, one: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        (self.state, self.line) = if self.conflicts > 0 {
            (StatusState::Attention, plural(self.conflicts, "conflict"))
        } else if self.paused {
            (StatusState::Paused, "Paused: syncing is off until you resume".to_owned())
        } else if self.jobs.running > 0 {
            (StatusState::Syncing, "Syncing…".to_owned())
        } else if self.jobs.failed > 0 {
            let failed = plural(self.jobs.failed, "job");
            (StatusState::Error, format!("{failed} failed: see Activity"))
        } else if !self.configured() {
            (StatusState::Idle, "Idle: nothing configured yet".to_owned())
        } else if let Some(at) = &self.last_sync_at {
            (StatusState::Idle, format!("Synced at {at}"))
        } else {
            (StatusState::Idle, "Idle: not synced yet".to_owned())
        };
        self
    }
}

/// Reads the status from the database. Tables of features that arrive with later migrations
/// count as empty until they exist.
pub fn read(conn: &Connection) -> Result<Status, CoreError> {
    let paused = schema::setting(conn, schema::PAUSED)?.as_deref() == Some("1");
    let status = Status {
        state: StatusState::Idle,
        line: String::new(),
        paused,
        accounts: count_rows(conn, "accounts")?,
        pairs: count_rows(conn, "pairs")?,
        feeds: count_rows(conn, "feeds")?,
        conflicts: count_rows(conn, "conflicts")?,
        jobs: JobCounts::default(),
        workers: 0,
        last_sync_at: None,
    };
    Ok(status.describe())
}

fn count_rows(conn: &Connection, table: &str) -> Result<u64, CoreError> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(0);
    }
    // `table` is one of this module's own names, never outside input.
    let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Concord;

    #[test]
    fn an_empty_configuration_is_idle_with_nothing_configured() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let status = concord.status().unwrap();
        assert_eq!(status.state, StatusState::Idle);
        assert_eq!(status.line, "Idle: nothing configured yet");
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["state"], "idle");
        assert_eq!(json["jobs"]["pending"], 0);
    }

    #[test]
    fn pause_is_remembered_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        Concord::open(dir.path()).unwrap().set_paused(true).unwrap();
        let status = Concord::open(dir.path()).unwrap().status().unwrap();
        assert_eq!(status.state, StatusState::Paused);
        assert!(status.paused);
        assert!(status.line.starts_with("Paused"), "{}", status.line);
    }

    #[test]
    fn conflicts_outrank_everything_else() {
        let base = |conflicts, failed| Status {
            state: StatusState::Idle,
            line: String::new(),
            paused: true,
            accounts: 1,
            pairs: 1,
            feeds: 0,
            conflicts,
            jobs: JobCounts { pending: 0, running: 1, failed },
            workers: 1,
            last_sync_at: None,
        };
        let s = base(3, 1).describe();
        assert_eq!((s.state, s.line.as_str()), (StatusState::Attention, "3 conflicts"));
        let s = base(0, 1).describe();
        assert_eq!(s.state, StatusState::Paused);
    }
}
