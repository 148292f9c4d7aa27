//! The state of things in the person's words: one line for the tray menu and the window, the
//! state that picks the tray icon, and the counts behind them (also `concord status --json`).

mod health;
pub mod words;

use std::collections::HashSet;

use concord_durable::{Engine, RunFilter, RunInfo, RunState};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::sync::accounts::mapping;
use crate::sync::{run as pair_run, state as sync_state};
use crate::{CoreError, schema};

pub use health::{
    FAILED_ATTEMPTS_ERROR_MIN, FAILING_ERROR_AFTER_MS, Health, HealthState, SubjectKind,
};
use health::{SyncFacts, judge_feed, judge_sync};

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

/// The page of the window that explains the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusPage {
    Conflicts,
    Activity,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub pending: u64,
    pub running: u64,
    /// Jobs other than syncs whose latest run failed (a resolution, a merge, a feed refresh).
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub state: StatusState,
    /// The first line of the tray menu, e.g. "Can't reach dav.example.com: retrying at 14:05".
    pub line: String,
    /// The page that explains the line, if one does.
    pub page: Option<StatusPage>,
    pub paused: bool,
    pub accounts: u64,
    pub pairs: u64,
    pub feeds: u64,
    pub conflicts: u64,
    /// Feed entries not read yet; the line mentions them while nothing needs the person.
    pub unread: u64,
    /// Pairs and mappings stopped until the person acts (a password was refused, a server is
    /// gone, a safety stop).
    pub attention: u64,
    pub jobs: JobCounts,
    /// Processes running the scheduler on this database now (tray app, `concord daemon`).
    pub workers: u64,
    /// RFC 3339 time of the last completed sync of a pair, if any (feeds do not count).
    pub last_sync_at: Option<String>,
    /// Each pair, "all collections" mapping and feed, and how it is doing.
    pub health: Vec<Health>,
    /// When this was read, in milliseconds since the epoch (the line's "2 min ago" is from it).
    pub read_at_ms: i64,
}

impl Status {
    fn configured(&self) -> bool {
        self.accounts + self.pairs + self.feeds > 0
    }

    /// What is broken now (failing for longer than a blip, or waiting for the person) and was
    /// not in `before`: each such change raises one notification; a recovery clears it.
    pub fn newly_broken<'a>(&'a self, before: &Status) -> Vec<&'a Health> {
        let was: HashSet<(SubjectKind, &str)> = before
            .health
            .iter()
            .filter(|h| h.is_broken())
            .map(|h| (h.kind, h.name.as_str()))
            .collect();
        self.syncs()
            .filter(|h| h.is_broken() && !was.contains(&(h.kind, h.name.as_str())))
            .collect()
    }

    /// The pairs and mappings (not the feeds).
    fn syncs(&self) -> impl Iterator<Item = &Health> {
        self.health.iter().filter(|h| h.kind != SubjectKind::Feed)
    }

    fn worst(&self, state: HealthState) -> Vec<&Health> {
        self.syncs().filter(|h| h.state == state).collect()
    }

    /// Picks the state and writes the line from the health of each thing and the counts. The
    /// first line is always true: the worst thing wins, and nothing is "synced" that is not.
    fn describe(mut self) -> Self {
        let plural = |n: u64, one: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        let now = self.read_at_ms;
        let first_of = |list: &[&Health]| {
            let more = match list.len() {
                0 | 1 => String::new(),
                n => format!(" (+{} more)", n - 1),
            };
            list.first()
                .map(|h| format!("{}: {}{more}", h.name, h.sentence(now)))
                .unwrap_or_default()
        };
        let needs_you = self.worst(HealthState::NeedsYou);
        let failing = self.worst(HealthState::Failing);
        let retrying = self.worst(HealthState::Retrying);
        let syncing = self.worst(HealthState::Syncing);
        let never = self.worst(HealthState::NeverSynced);
        // Every broken thing is counted in "(+n more)", one waiting for the person first.
        let broken: Vec<&Health> = needs_you.iter().chain(&failing).copied().collect();
        let (state, line, page) = if !needs_you.is_empty() {
            (
                StatusState::Attention,
                first_of(&broken),
                Some(StatusPage::Activity),
            )
        } else if !failing.is_empty() {
            (
                StatusState::Error,
                first_of(&broken),
                Some(StatusPage::Activity),
            )
        } else if self.jobs.failed > 0 {
            let failed = plural(self.jobs.failed, "job");
            (
                StatusState::Error,
                format!("{failed} failed: see Activity"),
                Some(StatusPage::Activity),
            )
        } else if self.conflicts > 0 {
            (
                StatusState::Attention,
                plural(self.conflicts, "conflict"),
                Some(StatusPage::Conflicts),
            )
        } else if self.paused && !syncing.is_empty() {
            let what = match syncing.as_slice() {
                [one] => one.name.clone(),
                many => format!("{} pairs", many.len()),
            };
            (
                StatusState::Syncing,
                format!("Syncing {what} because you asked; background syncs stay paused"),
                None,
            )
        } else if self.paused {
            (
                StatusState::Paused,
                "Paused: syncing is off until you resume".to_owned(),
                None,
            )
        } else if !retrying.is_empty() {
            (
                StatusState::Syncing,
                first_of(&retrying),
                Some(StatusPage::Activity),
            )
        } else if !syncing.is_empty() {
            let what = match syncing.as_slice() {
                [one] => format!("Syncing {}…", one.name),
                many => format!("Syncing {} pairs…", many.len()),
            };
            (StatusState::Syncing, what, None)
        } else if !self.configured() {
            (
                StatusState::Idle,
                "Idle: nothing configured yet".to_owned(),
                None,
            )
        } else if !never.is_empty() {
            let what = match never.as_slice() {
                [one] => format!("{} is not synced yet", one.name),
                many => format!("{} pairs not synced yet", many.len()),
            };
            (StatusState::Idle, what, None)
        } else if let Some(oldest) = self.syncs().filter_map(|h| h.synced_at_ms).min() {
            (
                StatusState::Idle,
                format!("Synced {}", words::ago(oldest, now)),
                None,
            )
        } else if let Some(oldest) = self
            .health
            .iter()
            .filter(|h| h.kind == SubjectKind::Feed)
            .filter_map(|h| h.synced_at_ms)
            .min()
        {
            (
                StatusState::Idle,
                format!("Feeds checked {}", words::ago(oldest, now)),
                None,
            )
        } else {
            (StatusState::Idle, "Idle: not synced yet".to_owned(), None)
        };
        (self.state, self.line, self.page) = (state, line, page);
        if matches!(self.state, StatusState::Idle | StatusState::Syncing) {
            let feeds_failing = self
                .health
                .iter()
                .filter(|h| h.kind == SubjectKind::Feed && h.state >= HealthState::Retrying)
                .count() as u64;
            if feeds_failing > 0 {
                self.line = format!("{} · {} failing", self.line, plural(feeds_failing, "feed"));
            }
            if self.unread > 0 {
                self.line = format!("{} · {} unread", self.line, self.unread);
            }
        }
        self
    }
}

/// How many recent runs of each kind the status looks at.
const RECENT_RUNS: usize = 500;

/// Reads the status from the database and the job engine. Tables of features that arrive with
/// later migrations count as empty until they exist.
pub fn read(conn: &Connection, engine: &Engine) -> Result<Status, CoreError> {
    let now = sync_state::now_ms();
    let paused = schema::setting(conn, schema::PAUSED)?.as_deref() == Some("1");
    let summary = engine.summary()?;
    let recent = engine.runs(&RunFilter {
        limit: RECENT_RUNS,
        ..RunFilter::default()
    })?;
    let scheduler_running = !summary.live_workers.is_empty();
    let mut health = Vec::new();
    let pairs = sync_state::pairs(conn)?;
    let mappings = sync_state::mapping::mappings(conn)?;
    let accounts = sync_state::accounts(conn)?;
    for m in &mappings {
        let schedule_name = mapping::schedule_name(&m.name);
        let schedule = summary
            .schedules
            .iter()
            .find(|s| s.schedule.name == schedule_name);
        let runs = runs_of(&recent, mapping::MAPPING_WORKFLOW, &schedule_name);
        let account_url = accounts
            .iter()
            .find(|a| a.id == m.account_id)
            .map(|a| &a.url);
        // Synced once every collection it found has synced, as of the least recent of them.
        let synced: Vec<Option<i64>> = m
            .pairs
            .iter()
            .filter(|p| p.gone_since_ms.is_none())
            .map(|p| {
                let pair = pairs.iter().find(|x| x.name == p.pair);
                pair.and_then(|x| x.last_sync_at_ms)
            })
            .collect();
        let all_synced = !synced.is_empty() && synced.iter().all(Option::is_some);
        health.push(judge_sync(&SyncFacts {
            kind: SubjectKind::Collections,
            name: &m.name,
            part_of: None,
            runs,
            schedule,
            paused,
            stopped: None,
            recorded_error: m.last_error.as_deref(),
            last_success_ms: all_synced
                .then(|| synced.iter().flatten().min().copied())
                .flatten(),
            host: account_url.and_then(|url| words::host_in(url)),
            scheduler_running,
            now_ms: now,
        }));
    }
    for pair in &pairs {
        let mapped = mappings
            .iter()
            .find(|m| m.pairs.iter().any(|p| p.pair == pair.name));
        if mapped.is_some_and(|m| {
            m.pairs
                .iter()
                .any(|p| p.pair == pair.name && p.gone_since_ms.is_some())
        }) {
            continue;
        }
        let schedule_name = pair_run::schedule_name(&pair.name);
        // A pair of a mapping has no schedule of its own: its mapping's pauses it.
        let schedule = match mapped {
            Some(m) => summary
                .schedules
                .iter()
                .find(|s| s.schedule.name == mapping::schedule_name(&m.name)),
            None => summary
                .schedules
                .iter()
                .find(|s| s.schedule.name == schedule_name),
        };
        let host = [&pair.a, &pair.b]
            .into_iter()
            .find_map(|side| words::host_in(&side.location));
        let runs = runs_of(&recent, pair_run::SYNC_WORKFLOW, &schedule_name);
        let last_run_success = runs
            .iter()
            .find(|r| r.state == RunState::Completed)
            .and_then(|r| r.finished_at_ms);
        health.push(judge_sync(&SyncFacts {
            kind: SubjectKind::Pair,
            name: &pair.name,
            part_of: mapped.map(|m| m.name.as_str()),
            runs,
            schedule,
            paused,
            stopped: pair.stopped_reason.as_deref(),
            recorded_error: None,
            last_success_ms: pair.last_sync_at_ms.or(last_run_success),
            host,
            scheduler_running,
            now_ms: now,
        }));
    }
    if table_exists(conn, "feeds")? {
        for feed in crate::feeds::store::list_feeds(conn)? {
            let checked = feed
                .last_checked_at
                .as_deref()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .map(|at| at.timestamp_millis());
            if let Some(h) = judge_feed(
                feed.display_name(),
                &feed.status,
                feed.last_error.as_deref(),
                checked,
                now,
            ) {
                health.push(h);
            }
        }
    }
    let attention = health
        .iter()
        .filter(|h| h.state == HealthState::NeedsYou)
        .count();
    let status = Status {
        state: StatusState::Idle,
        line: String::new(),
        page: None,
        paused,
        accounts: count_rows(conn, "accounts")?,
        pairs: u64::try_from(pairs.len()).unwrap_or(u64::MAX),
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
        health,
        read_at_ms: now,
    };
    Ok(status.describe())
}

/// The runs of a pair or mapping, newest first: those its schedule started and those started
/// for it by name (`concord sync`, a mapping, Sync now in the window).
fn runs_of<'a>(recent: &'a [RunInfo], kind: &str, schedule_name: &str) -> Vec<&'a RunInfo> {
    recent
        .iter()
        .filter(|run| run.kind == kind)
        .filter(|run| {
            run.schedule.as_deref() == Some(schedule_name) || run.idempotency_key == schedule_name
        })
        .collect()
}

/// Jobs other than pair and mapping syncs (their health says those) whose latest run failed:
/// a failure a later run of the same job (or schedule) fixed no longer counts. `recent` is
/// newest first.
fn failing_now(recent: &[RunInfo]) -> u64 {
    let mut seen = HashSet::new();
    let failing = recent
        .iter()
        .filter(|run| run.kind != pair_run::SYNC_WORKFLOW && run.kind != mapping::MAPPING_WORKFLOW)
        .filter(|run| {
            let job = run
                .schedule
                .as_deref()
                .unwrap_or(run.idempotency_key.as_str());
            seen.insert((run.kind.as_str(), job))
        })
        .filter(|run| run.state == RunState::Failed)
        .count();
    u64::try_from(failing).unwrap_or(u64::MAX)
}

/// When the last sync of a pair completed, as RFC 3339 in local time.
fn last_sync(recent: &[RunInfo]) -> Option<String> {
    let finished_ms = recent
        .iter()
        .filter(|run| run.state == RunState::Completed)
        .filter(|run| run.kind == pair_run::SYNC_WORKFLOW)
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

fn table_exists(conn: &Connection, table: &str) -> Result<bool, CoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Rows of `table` matching `condition`; zero while the table does not exist yet.
fn count_where(conn: &Connection, table: &str, condition: &str) -> Result<u64, CoreError> {
    if !table_exists(conn, table)? {
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

    fn configured(health: Vec<Health>) -> Status {
        Status {
            state: StatusState::Idle,
            line: String::new(),
            page: None,
            paused: false,
            accounts: 1,
            pairs: 1,
            feeds: 0,
            conflicts: 0,
            unread: 0,
            attention: 0,
            jobs: JobCounts::default(),
            workers: 1,
            last_sync_at: None,
            health,
            read_at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    fn pair(name: &str, state: HealthState, cause: Option<&str>) -> Health {
        let mut health = Health::new(SubjectKind::Pair, name, state);
        health.cause = cause.map(str::to_owned);
        health.synced_at_ms = Some(chrono::Utc::now().timestamp_millis() - 120_000);
        health
    }

    #[test]
    fn the_worst_thing_wins_the_line() {
        let ok = pair("home", HealthState::Ok, None);
        let failing = pair(
            "work",
            HealthState::Failing,
            Some("Can't reach dav.example.com"),
        );
        let s = configured(vec![ok.clone()]).describe();
        assert_eq!(
            (s.state, s.line.as_str()),
            (StatusState::Idle, "Synced 2 min ago")
        );

        let s = Status {
            conflicts: 3,
            ..configured(vec![ok.clone(), failing.clone()])
        }
        .describe();
        assert_eq!(
            s.state,
            StatusState::Error,
            "a failing pair outranks conflicts"
        );
        assert_eq!(
            s.line,
            "work: Can't reach dav.example.com: tried again at the next sync"
        );
        assert_eq!(s.page, Some(StatusPage::Activity));

        let s = Status {
            conflicts: 3,
            paused: true,
            ..configured(vec![ok.clone()])
        }
        .describe();
        assert_eq!(
            (s.state, s.line.as_str()),
            (StatusState::Attention, "3 conflicts")
        );
        assert_eq!(s.page, Some(StatusPage::Conflicts));

        let s = Status {
            paused: true,
            ..configured(vec![pair("home", HealthState::Paused, None)])
        }
        .describe();
        assert_eq!(s.state, StatusState::Paused);

        let mut refused = pair(
            "work",
            HealthState::NeedsYou,
            Some("dav.example.com refused the username or password"),
        );
        refused.what_to_do = Some("Change the account's password, then sync again".to_owned());
        let s = configured(vec![failing, refused, ok]).describe();
        assert_eq!(s.state, StatusState::Attention);
        assert_eq!(
            s.line,
            "work: dav.example.com refused the username or password: change the account's \
             password, then sync again (+1 more)"
        );
    }

    #[test]
    fn nothing_is_synced_that_is_not() {
        let mut never = pair("new", HealthState::NeverSynced, None);
        never.synced_at_ms = None;
        let s = configured(vec![pair("home", HealthState::Ok, None), never]).describe();
        assert_eq!(s.line, "new is not synced yet");
        let s = configured(vec![pair("home", HealthState::Syncing, None)]).describe();
        assert_eq!(
            (s.state, s.line.as_str()),
            (StatusState::Syncing, "Syncing home…")
        );
    }

    #[test]
    fn a_failure_that_becomes_broken_is_announced_once_and_cleared_by_recovery() {
        let retrying = configured(vec![pair("work", HealthState::Retrying, None)]);
        let failing = configured(vec![pair("work", HealthState::Failing, None)]);
        let recovered = configured(vec![pair("work", HealthState::Ok, None)]);
        assert!(retrying.newly_broken(&recovered).is_empty());
        assert_eq!(failing.newly_broken(&retrying).len(), 1);
        assert!(failing.newly_broken(&failing).is_empty(), "once");
        assert!(recovered.newly_broken(&failing).is_empty());
        assert_eq!(
            failing.newly_broken(&recovered).len(),
            1,
            "again after a recovery"
        );
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

    /// An account on a server that is not there: nothing listens on port 9.
    fn add_unreachable_account(concord: &Concord, name: &str) {
        let account = crate::ops::NewAccount {
            name: name.to_owned(),
            url: "http://127.0.0.1:9/".to_owned(),
            ..crate::ops::NewAccount::default()
        };
        concord.add_account(account).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pausing_stops_a_waiting_retry_and_resuming_syncs_at_once() {
        use crate::ops::{NewPair, SideSpec};
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        // The sync fails and waits for its next retry.
        add_unreachable_account(&concord, "gone");
        concord
            .add_pair(NewPair {
                name: Some("work".to_owned()),
                a: "gone:/cal/".parse::<SideSpec>().unwrap(),
                b: SideSpec::Folder(dir.path().join("cal")),
                direction: None,
                conflicts: crate::sync::state::ConflictPolicy::Ask,
                every_minutes: None,
            })
            .unwrap();
        assert!(concord.sync_one("work", false).await.is_err());
        let waiting = |concord: &Concord| concord.waiting_sync_runs().unwrap().len();
        assert_eq!(waiting(&concord), 1, "a retry waits");

        concord.set_paused(true).unwrap();
        assert_eq!(waiting(&concord), 0, "no retry while paused");
        let status = concord.status().unwrap();
        assert_eq!(status.health[0].state, HealthState::Failing);
        assert_eq!(
            status.health[0].said,
            "Can't reach 127.0.0.1:9; syncing is paused"
        );

        concord.set_paused(false).unwrap();
        let open = concord
            .engine()
            .runs(&RunFilter {
                state: Some(RunState::Pending),
                ..RunFilter::default()
            })
            .unwrap();
        assert_eq!(open.len(), 1, "resuming syncs the pair at once");
        assert_eq!(open[0].schedule.as_deref(), Some("sync-pair:work"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn all_collections_of_a_server_that_cannot_be_reached_is_failing_not_synced() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        add_unreachable_account(&concord, "gone");
        let (_, listed) = concord
            .add_all_collections(Some("all"), "gone", None, None)
            .await
            .unwrap();
        assert!(listed.is_err(), "nothing listens on port 9");
        let status = concord.status().unwrap();
        let all = &status.health[0];
        assert_eq!(
            (all.kind, all.state),
            (SubjectKind::Collections, HealthState::Failing)
        );
        assert_eq!(all.cause.as_deref(), Some("Can't reach 127.0.0.1:9"));
        assert_eq!(status.state, StatusState::Error);
        assert!(
            status.line.starts_with("all: Can't reach 127.0.0.1:9"),
            "{}",
            status.line
        );
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
    fn a_failure_fixed_by_a_later_run_of_its_schedule_no_longer_counts() {
        let run = |id, kind: &str, key: &str, state| RunInfo {
            id: concord_durable::RunId(id),
            kind: kind.into(),
            idempotency_key: format!("schedule:{key}:slot:{id}"),
            state,
            attempts: 1,
            group: None,
            schedule: Some(key.into()),
            created_at_ms: id,
            started_at_ms: None,
            finished_at_ms: Some(id),
            next_at_ms: None,
            error: None,
            error_class: None,
            cancel_requested: false,
        };
        let refresh = crate::feeds::workflow::WORKFLOW_KIND;
        let newest_first = [
            run(4, pair_run::SYNC_WORKFLOW, "sync-pair:x", RunState::Failed),
            run(3, refresh, "feeds", RunState::Completed),
            run(2, "resolve-conflict", "b", RunState::Failed),
            run(1, refresh, "feeds", RunState::Failed),
        ];
        assert_eq!(
            failing_now(&newest_first),
            1,
            "only the resolution still fails"
        );
        assert!(
            last_sync(&newest_first).is_none(),
            "feed refreshes are not syncs"
        );
    }
}
