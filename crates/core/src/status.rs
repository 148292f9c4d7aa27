//! The state of things in the person's words: one line for the tray menu and the window, the
//! state that picks the tray icon, and the counts behind them (also `concord status --json`).

use std::collections::HashSet;

use concord_durable::{Engine, RunFilter, RunInfo, RunState};
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
    /// Feed entries not read yet; the line mentions them while nothing needs the person.
    pub unread: u64,
    /// Jobs stopped until the person acts (a password was refused, a server is gone).
    pub attention: u64,
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
        } else if self.attention > 0 {
            let jobs = plural(self.attention, "job");
            let verb = if self.attention == 1 { "needs" } else { "need" };
            (
                StatusState::Attention,
                format!("{jobs} {verb} your attention: see Activity"),
            )
        } else if self.paused {
            (
                StatusState::Paused,
                "Paused: syncing is off until you resume".to_owned(),
            )
        } else if self.jobs.running > 0 {
            (StatusState::Syncing, "Syncing…".to_owned())
        } else if self.jobs.failed > 0 {
            let failed = plural(self.jobs.failed, "job");
            (StatusState::Error, format!("{failed} failed: see Activity"))
        } else if !self.configured() {
            (StatusState::Idle, "Idle: nothing configured yet".to_owned())
        } else if let Some(at) = &self.last_sync_at {
            (StatusState::Idle, synced_at(at))
        } else {
            (StatusState::Idle, "Idle: not synced yet".to_owned())
        };
        if self.unread > 0 && matches!(self.state, StatusState::Idle | StatusState::Syncing) {
            self.line = format!("{} · {} unread", self.line, self.unread);
        }
        self
    }
}

/// "Synced at 14:05" today, "Synced on 21 Nov at 14:05" before, in local time.
fn synced_at(rfc3339: &str) -> String {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return format!("Synced at {rfc3339}");
    };
    let at = at.with_timezone(&chrono::Local);
    if at.date_naive() == chrono::Local::now().date_naive() {
        format!("Synced at {}", at.format("%H:%M"))
    } else {
        format!("Synced on {}", at.format("%-d %b at %H:%M"))
    }
}

/// How many recent runs the status looks at to find which jobs are failing now.
const RECENT_RUNS: usize = 500;

/// Reads the status from the database and the job engine. Tables of features that arrive with
/// later migrations count as empty until they exist.
pub fn read(conn: &Connection, engine: &Engine) -> Result<Status, CoreError> {
    let paused = schema::setting(conn, schema::PAUSED)?.as_deref() == Some("1");
    let summary = engine.summary()?;
    let recent = engine.runs(&RunFilter {
        limit: RECENT_RUNS,
        ..RunFilter::default()
    })?;
    let attention = summary
        .schedules
        .iter()
        .filter(|s| s.attention.is_some())
        .count();
    let status = Status {
        state: StatusState::Idle,
        line: String::new(),
        paused,
        accounts: count_rows(conn, "accounts")?,
        pairs: count_rows(conn, "pairs")?,
        feeds: count_rows(conn, "feeds")?,
        conflicts: count_rows(conn, "conflicts")?,
        unread: count_unread(conn)?,
        attention: u64::try_from(attention).unwrap_or(u64::MAX),
        jobs: JobCounts {
            pending: summary.count(RunState::Pending) + summary.count(RunState::Sleeping),
            running: summary.count(RunState::Running),
            failed: failing_now(&recent),
        },
        workers: u64::try_from(summary.live_workers.len()).unwrap_or(u64::MAX),
        last_sync_at: last_sync(&recent),
    };
    Ok(status.describe())
}

/// Failed runs that are still the latest attempt at their job: a failure that a later run of
/// the same job fixed no longer counts. `recent` is newest first.
fn failing_now(recent: &[RunInfo]) -> u64 {
    let mut seen = HashSet::new();
    let failing = recent
        .iter()
        .filter(|run| seen.insert((run.kind.as_str(), run.idempotency_key.as_str())))
        .filter(|run| run.state == RunState::Failed)
        .count();
    u64::try_from(failing).unwrap_or(u64::MAX)
}

/// When the last sync or feed refresh completed, as RFC 3339 in local time.
fn last_sync(recent: &[RunInfo]) -> Option<String> {
    let finished_ms = recent
        .iter()
        .filter(|run| run.state == RunState::Completed)
        .filter(|run| {
            run.kind == crate::sync::run::SYNC_WORKFLOW
                || run.kind == crate::feeds::workflow::WORKFLOW_KIND
        })
        .filter_map(|run| run.finished_at_ms)
        .max()?;
    let at = chrono::DateTime::from_timestamp_millis(finished_ms)?;
    Some(
        at.with_timezone(&chrono::Local)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    )
}

fn count_rows(conn: &Connection, table: &str) -> Result<u64, CoreError> {
    count_where(conn, table, "1")
}

fn count_unread(conn: &Connection) -> Result<u64, CoreError> {
    count_where(conn, "feed_entries", "read = 0")
}

/// Rows of `table` matching `condition`; zero while the table does not exist yet.
fn count_where(conn: &Connection, table: &str, condition: &str) -> Result<u64, CoreError> {
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
    // `table` and `condition` are this module's own text, never outside input.
    let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE {condition}");
    let n: i64 = conn.query_row(&sql, [], |r| r.get(0))?;
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
            unread: 0,
            attention: 0,
            jobs: JobCounts {
                pending: 0,
                running: 1,
                failed,
            },
            workers: 1,
            last_sync_at: None,
        };
        let s = base(3, 1).describe();
        assert_eq!(
            (s.state, s.line.as_str()),
            (StatusState::Attention, "3 conflicts")
        );
        let s = base(0, 1).describe();
        assert_eq!(s.state, StatusState::Paused);
        let s = Status {
            paused: false,
            ..base(0, 1)
        }
        .describe();
        assert_eq!(s.state, StatusState::Syncing);
        let s = Status {
            attention: 2,
            ..base(0, 0)
        }
        .describe();
        assert_eq!(s.state, StatusState::Attention);
        assert_eq!(s.line, "2 jobs need your attention: see Activity");
        let s = Status {
            attention: 1,
            ..base(0, 0)
        }
        .describe();
        assert_eq!(s.line, "1 job needs your attention: see Activity");
    }

    #[test]
    fn unread_feed_entries_are_mentioned_when_nothing_needs_the_person() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let conn = concord.database().connect().unwrap();
        let now = chrono::Utc::now();
        let (id, _) =
            crate::feeds::store::add_feed(&conn, "https://e.example/f.xml", None, None, now)
                .unwrap();
        for key in ["a", "b"] {
            conn.execute(
                "INSERT INTO feed_entries (feed_id, entry_key, title, content_hash, first_seen_ms,
                    last_seen_ms) VALUES (?1, ?2, 't', 'h', 0, 0)",
                rusqlite::params![id, key],
            )
            .unwrap();
        }
        let status = concord.status().unwrap();
        assert_eq!(status.unread, 2);
        assert_eq!(status.line, "Idle: not synced yet · 2 unread");
        crate::feeds::store::mark_all_read(&conn, None).unwrap();
        let status = concord.status().unwrap();
        assert_eq!(
            (status.unread, status.line.as_str()),
            (0, "Idle: not synced yet")
        );
        concord.set_paused(true).unwrap();
        conn.execute("UPDATE feed_entries SET read = 0", [])
            .unwrap();
        let status = concord.status().unwrap();
        assert!(!status.line.contains("unread"), "{}", status.line);
    }

    #[test]
    fn pausing_pauses_schedules_and_resuming_leaves_the_persons_own_pauses() {
        use concord_durable::Schedule;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let engine = concord.engine();
        for name in ["a", "b"] {
            let every = Schedule::every(name, "sync.x", Duration::from_secs(900), "{}".into());
            engine.put_schedule(&every).unwrap();
        }
        engine.pause_schedule("b").unwrap();
        concord.set_paused(true).unwrap();
        assert!(engine.schedules().unwrap().iter().all(|s| s.paused));
        concord.set_paused(false).unwrap();
        let paused: Vec<_> = engine
            .schedules()
            .unwrap()
            .into_iter()
            .map(|s| (s.schedule.name, s.paused))
            .collect();
        assert_eq!(paused, [("a".to_owned(), false), ("b".to_owned(), true)]);
    }

    #[test]
    fn a_failure_fixed_by_a_later_run_no_longer_counts() {
        let run = |id, key: &str, state| RunInfo {
            id: concord_durable::RunId(id),
            kind: crate::sync::run::SYNC_WORKFLOW.into(),
            idempotency_key: key.into(),
            state,
            attempts: 1,
            group: None,
            schedule: None,
            created_at_ms: id,
            started_at_ms: None,
            finished_at_ms: Some(id),
            next_at_ms: None,
            error: None,
            error_class: None,
            cancel_requested: false,
        };
        let newest_first = [
            run(3, "a", RunState::Completed),
            run(2, "b", RunState::Failed),
            run(1, "a", RunState::Failed),
        ];
        assert_eq!(failing_now(&newest_first), 1);
        assert!(last_sync(&newest_first).is_some());
    }

    #[test]
    fn the_last_sync_reads_as_a_time_of_day_or_a_date() {
        let now = chrono::Local::now();
        let today = synced_at(&now.to_rfc3339());
        assert_eq!(today, format!("Synced at {}", now.format("%H:%M")));
        assert_eq!(
            synced_at("2020-03-01T12:00:00+00:00").split(" at ").count(),
            2,
            "an older sync names its day"
        );
        assert!(synced_at("2020-03-01T12:00:00+00:00").starts_with("Synced on "));
    }
}
