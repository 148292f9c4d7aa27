//! One sync of one pair: observe each side (list what changed, fetch it, quarantine what cannot
//! be read), plan three-way against the stored state, check the safety limits, and apply the
//! plan with conditional writes. As a durable workflow the two observations and the apply are
//! checkpointed steps; every phase is also safe to repeat, because a write that already
//! happened is found equal on the next look and only recorded.
//!
//! The data path, one file per stage, each a method of [`PairSync`] a test can call alone:
//!
//! 1. [`observe`]: [`PairSync::observe`] lists what changed on a side since its stored token
//!    and fetches it into an [`Observation`]; [`PairSync::commit`] stores that view, its token
//!    and its quarantine.
//! 2. [`plan`]: [`PairSync::prepare`] plans from the stored views and state with
//!    [`reconcile`] (the three-way plan) into a [`Prepared`], only the items touched since the
//!    pair settled where that is known to be enough.
//! 3. [`guard`]: within planning, items whose synced copy no longer reads are held, and an
//!    emptied side or too many deletions stop the pair ([`DELETE_COUNT_MAX`],
//!    [`DELETE_SHARE_MAX_PERCENT`]).
//! 4. [`apply`]: [`PairSync::apply`] writes conditionally in batches, keeps what it replaces
//!    in history first, records the new state and counts each action written, deferred or
//!    refused.
//!
//! Here: [`PairSync`] (a pair opened for syncing), the run as [`sync_pair`], the durable
//! workflow and [`sync_durably`], [`run_here`], the pair's schedule and [`restore`];
//! [`metadata`], display name and colour, ride along after apply.

pub mod apply;
pub mod guard;
pub mod metadata;
pub mod observe;
pub mod plan;
pub mod reconcile;

#[cfg(test)]
mod pipeline_tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use concord_durable::{Ctx, Engine, EngineConfig, RunState, StepError, Workflow};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::SyncError;
use super::item::Item;
use super::state::{self, Account, Pair, Side, StorageConfig};
use super::storage::{CredentialSource, Storage, StorageError, open_storage};
use crate::Concord;
pub use apply::APPLY_BATCH_MAX;
pub use guard::{DELETE_COUNT_MAX, DELETE_SHARE_MAX_PERCENT};
use observe::CommittedView;
pub use observe::Observation;
use plan::Basis;
pub use plan::Prepared;
use reconcile::{Action, PlanCounts};

/// The durable workflow kind of a pair's sync.
pub const SYNC_WORKFLOW: &str = "sync-pair";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOptions {
    /// Plan and print, write nothing (not even the state).
    pub dry_run: bool,
    /// The person confirmed: go past the emptied-side and mass-deletion guards once.
    pub allow_deletes: bool,
}

/// What a run did (or, dry, would do). Every planned action is in exactly one of `counts`,
/// `deferred_counts` and `refused_counts` once a run has applied its plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub pair: String,
    pub dry_run: bool,
    /// What was written (and conflicts opened); for a dry run, what would be.
    pub counts: PlanCounts,
    /// What the plan set out to do (a stopped pair did none of it).
    #[serde(default)]
    pub planned: PlanCounts,
    /// One line per change, as `--dry-run` prints it.
    pub plan: Vec<String>,
    /// Writes not made because the item changed meanwhile (HTTP 412): re-read next run.
    pub deferred: Vec<String>,
    /// Those writes, counted per side.
    #[serde(default)]
    pub deferred_counts: PlanCounts,
    /// Writes the side refused (a server's 403, 409 or 415; a name taken by another item),
    /// each with the side's reason: tried again next run.
    #[serde(default)]
    pub refused: Vec<String>,
    /// Those writes, counted per side.
    #[serde(default)]
    pub refused_counts: PlanCounts,
    pub quarantined: usize,
    /// Why the pair stopped and waits for the person, if it did.
    pub stopped: Option<String>,
}

impl Report {
    /// Whether every planned write was made.
    pub fn all_written(&self) -> bool {
        self.deferred.is_empty() && self.refused.is_empty()
    }

    /// Counts an applied action's outcome: written, deferred or refused.
    fn count(&mut self, action: &Action, outcome: Result<(), &StorageError>) {
        match outcome {
            Ok(()) => self.counts.add(action),
            Err(err) if err.is_changed() => {
                self.deferred_counts.add(action);
                self.deferred.push(format!(
                    "{} (changed meanwhile; re-read next sync)",
                    action.describe()
                ));
            }
            Err(err) => {
                self.refused_counts.add(action);
                self.refused.push(format!(
                    "{} ({err}; tried again next sync)",
                    action.describe()
                ));
            }
        }
    }
}

/// A pair opened for syncing: its configuration, both storages and a database connection.
pub struct PairSync {
    pair: Pair,
    a: Storage,
    b: Storage,
    conn: Mutex<Connection>,
    database: concord_durable::Database,
    /// Taken in turn by what observing does on this machine (reading stored views, listing a
    /// folder, comparing, the log checkpoint) while a server answers: on two threads at once
    /// they slowed a server on the same two-core machine by up to a third while they ran.
    local_work: tokio::sync::Mutex<()>,
    /// Items fetched by this process's observations, so planning need not fetch them again.
    fetched: Mutex<[BTreeMap<String, Vec<u8>>; 2]>,
    /// The summaries of those items, read when they were parsed, by href.
    summaries: Mutex<[BTreeMap<String, String>; 2]>,
    /// See [`PairSync::committed_views`].
    views: Mutex<[Option<CommittedView>; 2]>,
    /// See [`Basis`].
    basis: Mutex<Basis>,
}

impl std::fmt::Debug for PairSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairSync")
            .field("pair", &self.pair.name)
            .finish_non_exhaustive()
    }
}

/// Syncs one pair now, in this process (the CLI without a daemon, tests).
pub async fn sync_pair(
    concord: &Concord,
    pair: &str,
    credentials: &dyn CredentialSource,
    options: &SyncOptions,
) -> Result<Report, SyncError> {
    let sync = PairSync::open(concord, pair, credentials)?;
    let (a, b) = sync.observe_both().await;
    let (a, b) = (a?, b?);
    if options.dry_run {
        let prepared = sync.prepare(&[&a, &b], options).await?;
        return Ok(sync.report(&prepared, true));
    }
    sync.commit(a)?;
    sync.commit(b)?;
    // Planned from the views just committed, as the durable workflow plans.
    let prepared = sync.prepare(&[], options).await?;
    sync.apply(prepared).await
}

/// The durable workflow running [`sync_pair`] as checkpointed steps: observe (both sides),
/// apply. Input: `{"pair": NAME, "allow_deletes": bool}`.
pub fn workflow(concord: Concord, credentials: Arc<dyn CredentialSource>) -> Workflow {
    Workflow::new(SYNC_WORKFLOW, move |ctx: Ctx| {
        let concord = concord.clone();
        let credentials = credentials.clone();
        async move {
            #[derive(Deserialize)]
            struct Input {
                pair: String,
                #[serde(default)]
                allow_deletes: bool,
            }
            let input: Input = ctx.input_as()?;
            let options = SyncOptions {
                dry_run: false,
                allow_deletes: input.allow_deletes,
            };
            let sync = PairSync::open(&concord, &input.pair, credentials.as_ref())
                .map_err(StepError::from)?;
            ctx.step("observe", || async {
                let (a, b) = sync.observe_both().await;
                let (a, b) = (a.map_err(StepError::from)?, b.map_err(StepError::from)?);
                let counts = (a.seen.len(), b.seen.len());
                sync.commit(a).map_err(StepError::from)?;
                sync.commit(b).map_err(StepError::from)?;
                Ok::<_, StepError>(counts)
            })
            .await?;
            let report = ctx
                .step("apply", || async {
                    let prepared = sync.prepare(&[], &options).await.map_err(StepError::from)?;
                    sync.apply(prepared).await.map_err(StepError::from)
                })
                .await?;
            // Closing its database connection frees that connection's page cache, a
            // millisecond or two: done beside the end of the run, not in its way.
            std::thread::spawn(move || drop(sync));
            if let Some(reason) = &report.stopped {
                return Err(StepError::needs_attention(reason.clone()));
            }
            serde_json::to_value(report).map_err(|err| StepError::permanent(err.to_string()))
        }
    })
    // 2: both sides observed in one step (was one step per side).
    .version(2)
}

/// How long [`sync_durably`] and `conflicts::resolve_durably` wait for their run: one another
/// (perhaps dead) process holds, and retries that are due soon.
pub const DURABLE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(60);
/// The furthest retry [`run_here`] waits for: quick retries ride out a blip, a server that
/// stays away is reported within seconds instead of after [`DURABLE_WAIT_MAX`].
pub const RETRY_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a pair's sync as a durable workflow run, executed by this process, and waits for it.
/// A run a killed process left half done is resumed (its completed steps are not repeated)
/// once that process's lease has expired.
pub async fn sync_durably(
    concord: &Concord,
    pair: &str,
    credentials: Arc<dyn CredentialSource>,
    allow_deletes: bool,
) -> Result<Report, SyncError> {
    let input = serde_json::json!({ "pair": pair, "allow_deletes": allow_deletes });
    let key = format!("{SYNC_WORKFLOW}:{pair}");
    let sync = workflow(concord.clone(), credentials);
    match run_here(concord, SYNC_WORKFLOW, sync, &key, input).await? {
        Outcome::Completed(result) => {
            let report: Report =
                serde_json::from_value(result).map_err(|err| SyncError::Run(err.to_string()))?;
            if report.stopped.is_none() {
                settle_attention(concord.engine(), pair)?;
            }
            Ok(report)
        }
        Outcome::Failed(error) => {
            // A pair stopped by its safety guard is an answer, not a failure.
            let stopped =
                state::pair(&concord.database().connect()?, pair)?.and_then(|p| p.stopped_reason);
            match stopped {
                Some(reason) if reason == error => Ok(Report {
                    pair: pair.to_owned(),
                    stopped: Some(reason),
                    ..Report::default()
                }),
                _ => Err(SyncError::Run(error)),
            }
        }
        Outcome::Unfinished(why) => Err(SyncError::Run(why)),
    }
}

/// A sync the person started went through: the pair's schedule, if it waited for them (a
/// refused password, a stop by a safety guard), runs again. One paused by Pause stays paused.
fn settle_attention(engine: &Engine, pair: &str) -> Result<(), SyncError> {
    let name = schedule_name(pair);
    let waiting = engine
        .schedules()?
        .into_iter()
        .any(|s| s.schedule.name == name && s.attention.is_some() && !s.paused);
    if waiting {
        engine.resume_schedule(&name)?;
    }
    Ok(())
}

/// How a run executed by [`run_here`] ended.
pub(crate) enum Outcome {
    Completed(serde_json::Value),
    /// Failed or cancelled, with the run's last error.
    Failed(String),
    /// Not finished within [`DURABLE_WAIT_MAX`]; it continues in the background.
    Unfinished(String),
}

/// Starts a run of `workflow` (of kind `kind`) under `key` and executes it in this process, on an engine that
/// knows only that kind (so nothing else due is run here), then waits for its end. A run a
/// killed process left half done is resumed once that process's lease has expired.
pub(crate) async fn run_here(
    concord: &Concord,
    kind: &str,
    workflow: Workflow,
    key: &str,
    input: serde_json::Value,
) -> Result<Outcome, concord_durable::Error> {
    let engine = Engine::new(
        concord.database().clone(),
        EngineConfig {
            worker_label: "cli".to_owned(),
            ..EngineConfig::default()
        },
    )?;
    engine.register(workflow);
    let id = engine.start(kind, key, input)?;
    // The person asked now: a run waiting for its retry (a server that was away) tries now.
    crate::wake(&engine, id, state::now_ms())?;
    let deadline = tokio::time::Instant::now() + DURABLE_WAIT_MAX;
    loop {
        engine.run_until_idle().await?;
        let detail = engine.show(id)?;
        match detail.run.state {
            RunState::Completed => {
                return Ok(Outcome::Completed(detail.result.unwrap_or_default()));
            }
            RunState::Failed | RunState::Cancelled => {
                let error = detail
                    .run
                    .error
                    .unwrap_or_else(|| "the run failed".to_owned());
                return Ok(Outcome::Failed(error));
            }
            // A retry far off: this process does not wait for it, and says why and when.
            RunState::Sleeping
                if detail.run.next_at_ms.is_some_and(|at| {
                    at.saturating_sub(state::now_ms())
                        > i64::try_from(RETRY_WAIT_MAX.as_millis()).unwrap_or(i64::MAX)
                }) =>
            {
                let error = detail.run.error.unwrap_or_else(|| "it failed".to_owned());
                let at = detail
                    .run
                    .next_at_ms
                    .and_then(|ms| {
                        chrono::TimeZone::timestamp_millis_opt(&chrono::Local, ms).single()
                    })
                    .map_or_else(String::new, |at| format!(" at {}", at.format("%H:%M:%S")));
                return Ok(Outcome::Unfinished(format!(
                    "{error} ({} attempt(s); the next{at}, by the tray app or `concord daemon` \
                     while one runs, else by the next `concord sync`)",
                    detail.run.attempts
                )));
            }
            state if tokio::time::Instant::now() >= deadline => {
                let error = detail
                    .run
                    .error
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Ok(Outcome::Unfinished(format!(
                    "run {id} is still {state}{error}; it continues in the background"
                )));
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
}

impl PairSync {
    pub fn open(
        concord: &Concord,
        pair: &str,
        credentials: &dyn CredentialSource,
    ) -> Result<Self, SyncError> {
        let conn = concord.database().connect()?;
        let pair =
            state::pair(&conn, pair)?.ok_or_else(|| SyncError::NoSuchPair(pair.to_owned()))?;
        let account = |config: &StorageConfig| -> Result<Option<Account>, SyncError> {
            Ok(match config.account_id {
                Some(id) => state::account_by_id(&conn, id)?,
                None => None,
            })
        };
        let a = open_storage(&pair.a, account(&pair.a)?.as_ref(), credentials)?;
        let b = open_storage(&pair.b, account(&pair.b)?.as_ref(), credentials)?;
        Ok(Self::of(concord, conn, pair, a, b))
    }

    /// The pair named `pair` synced between `a` and `b` instead of the storages its
    /// configuration names: tests and benchmarks put an in-process
    /// [`MemoryStorage`](super::storage::memory::MemoryStorage) on a side.
    pub fn with_storages(
        concord: &Concord,
        pair: &str,
        a: Storage,
        b: Storage,
    ) -> Result<Self, SyncError> {
        let conn = concord.database().connect()?;
        let pair =
            state::pair(&conn, pair)?.ok_or_else(|| SyncError::NoSuchPair(pair.to_owned()))?;
        Ok(Self::of(concord, conn, pair, a, b))
    }

    fn of(concord: &Concord, conn: Connection, pair: Pair, a: Storage, b: Storage) -> Self {
        Self {
            pair,
            a,
            b,
            conn: Mutex::new(conn),
            database: concord.database().clone(),
            local_work: tokio::sync::Mutex::new(()),
            fetched: Mutex::new([BTreeMap::new(), BTreeMap::new()]),
            summaries: Mutex::new([BTreeMap::new(), BTreeMap::new()]),
            views: Mutex::new([None, None]),
            basis: Mutex::new(Basis::Unknown),
        }
    }

    pub fn pair(&self) -> &Pair {
        &self.pair
    }

    pub fn storage(&self, side: Side) -> &Storage {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn basis(&self) -> MutexGuard<'_, Basis> {
        self.basis
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Each side's view as this process last committed it (taken by the next plan; cleared
    /// when a run records writes).
    fn committed_views(&self) -> MutexGuard<'_, [Option<CommittedView>; 2]> {
        self.views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// The schedule that syncs a pair every `every` (and on "Sync now"), named after the pair.
pub fn schedule_name(pair: &str) -> String {
    format!("{SYNC_WORKFLOW}:{pair}")
}

/// Puts (or replaces) the pair's sync schedule on the engine.
pub fn schedule(engine: &Engine, pair: &str, every: std::time::Duration) -> Result<(), SyncError> {
    let schedule = concord_durable::Schedule::every(
        &schedule_name(pair),
        SYNC_WORKFLOW,
        every,
        serde_json::json!({ "pair": pair }),
    );
    engine.put_schedule(&schedule)?;
    Ok(())
}

/// Puts a kept version back on the side it was taken from (the next sync carries it to the
/// other side). What it replaces is kept in history first. Returns where it went.
pub async fn restore(
    concord: &Concord,
    version_id: i64,
    credentials: &dyn CredentialSource,
) -> Result<String, SyncError> {
    let conn = concord.database().connect()?;
    let version = state::version(&conn, version_id)?.ok_or_else(|| {
        SyncError::Restore(format!(
            "there is no version {version_id} (see `concord history`)"
        ))
    })?;
    let pair_name = version.pair.clone().ok_or_else(|| {
        SyncError::Restore(format!(
            "version {version_id} belongs to a pair that was removed"
        ))
    })?;
    drop(conn);
    let sync = PairSync::open(concord, &pair_name, credentials)?;
    let side = if version.side == "a" {
        Side::A
    } else {
        Side::B
    };
    let item = Item::parse(version.content.clone()).map_err(|u| {
        SyncError::Restore(format!("version {version_id} does not read: {}", u.reason))
    })?;
    let storage = sync.storage(side);
    let current = {
        let conn = sync.conn();
        state::seen(&conn, sync.pair.id, side)?
            .into_values()
            .find(|s| s.uid.as_deref() == Some(item.uid.as_str()))
    };
    let href = match current {
        Some(seen) => {
            let now = storage.fetch(std::slice::from_ref(&seen.href)).await?;
            if let Some(found) = now.into_iter().next() {
                state::record_version(
                    &sync.conn(),
                    sync.pair.id,
                    sync.pair.storage(side).id,
                    side,
                    &item.uid,
                    Some(&found.href),
                    "(unreadable)",
                    "replaced by a restore",
                    &found.raw,
                )?;
                storage
                    .update(&found.href, &found.etag, &version.content)
                    .await?;
                found.href
            } else {
                storage.create(&item.uid, &version.content).await?.href
            }
        }
        None => storage.create(&item.uid, &version.content).await?.href,
    };
    Ok(format!(
        "restored {:?} to side {} of {pair_name} ({href}); the next sync carries it to the other side",
        item.summary,
        side.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::dav::Credentials;
    use crate::sync::state::Direction;

    fn event(uid: &str, summary: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Concord tests//EN\r\nBEGIN:VEVENT\r\n\
             UID:{uid}\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:20261201T100000Z\r\n\
             SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    /// A data directory with the pair "p" of two folders in it, `a` and `b`.
    fn folders(direction: Direction) -> (tempfile::TempDir, Concord, [PathBuf; 2]) {
        let pipeline = super::pipeline_tests::Pipeline::new(direction, None);
        (pipeline.dir, pipeline.concord, pipeline.folders)
    }

    fn no_password() -> Credentials {
        Credentials::new("", "")
    }

    async fn sync(concord: &Concord) -> Report {
        sync_pair(concord, "p", &no_password(), &SyncOptions::default())
            .await
            .unwrap()
    }

    /// Writes a file as another program would (same name, new content).
    fn write(folder: &Path, name: &str, content: &str) {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join(name), content).unwrap();
    }

    #[tokio::test]
    async fn a_write_another_program_beat_is_counted_as_deferred_not_as_done() {
        let (_dir, concord, [a, b]) = folders(Direction::TwoWay);
        write(&a, "e1.ics", &event("e1", "Standup"));
        assert_eq!(sync(&concord).await.counts.create_b, 1);
        write(&a, "e1.ics", &event("e1", "Standup in room 2"));
        // Planned, then b's copy is edited before the update reaches it.
        let sync = PairSync::open(&concord, "p", &no_password()).unwrap();
        let (seen_a, seen_b) = sync.observe_both().await;
        sync.commit(seen_a.unwrap()).unwrap();
        sync.commit(seen_b.unwrap()).unwrap();
        let prepared = sync.prepare(&[], &SyncOptions::default()).await.unwrap();
        assert_eq!(prepared.plan.counts().update_b, 1);
        write(&b, "e1.ics", &event("e1", "Standup moved by someone on b"));

        let report = sync.apply(prepared).await.unwrap();
        assert_eq!(report.counts, PlanCounts::default(), "{report:?}");
        assert_eq!(report.planned.update_b, 1, "{report:?}");
        assert_eq!(report.deferred_counts.update_b, 1, "{report:?}");
        assert_eq!(report.deferred.len(), 1, "{report:?}");
        assert!(report.refused.is_empty(), "{report:?}");
    }

    #[tokio::test]
    async fn a_restore_onto_a_name_another_item_holds_is_refused_not_counted_as_created() {
        let (_dir, concord, [a, b]) = folders(Direction::AToB);
        write(&a, "e1.ics", &event("e1", "Standup"));
        sync(&concord).await;
        // On b, the standup's file now holds another event: one-way, the standup is put back.
        write(&b, "e1.ics", &event("e2", "Dentist"));

        let report = sync(&concord).await;
        assert_eq!(report.planned.create_b, 1, "{report:?}");
        assert_eq!(report.counts.create_b, 0, "{report:?}");
        assert_eq!(report.refused_counts.create_b, 1, "{report:?}");
        assert!(
            report.refused[0].contains("another item (UID e2) has that name"),
            "{report:?}"
        );
        assert_eq!(
            std::fs::read_to_string(b.join("e1.ics")).unwrap(),
            event("e2", "Dentist")
        );
        // Not settled: the next sync tries again, and says so again.
        assert_eq!(sync(&concord).await.refused_counts.create_b, 1);
    }

    #[tokio::test]
    async fn what_a_restore_replaces_is_kept_under_its_own_summary() {
        let (_dir, concord, [a, _]) = folders(Direction::TwoWay);
        write(&a, "e1.ics", &event("e1", "Standup"));
        sync(&concord).await;
        write(&a, "e1.ics", &event("e1", "Standup in room 2"));
        sync(&concord).await;
        let conn = concord.database().connect().unwrap();
        let overwritten = state::history(&conn, "e1").unwrap();
        let old = overwritten
            .iter()
            .find(|v| v.reason == "overwritten")
            .unwrap();
        assert!(old.summary.starts_with("Standup ("), "{old:?}");

        restore(&concord, old.id, &no_password()).await.unwrap();
        let history = state::history(&conn, "e1").unwrap();
        let replaced = history
            .iter()
            .find(|v| v.reason == "replaced by a restore")
            .unwrap();
        assert!(
            replaced.summary.starts_with("Standup in room 2 ("),
            "{replaced:?}"
        );
    }
}
