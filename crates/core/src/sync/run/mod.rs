//! One sync of one pair: observe each side (list what changed, fetch it, quarantine what cannot
//! be read), plan three-way against the stored state, check the safety limits, and apply the
//! plan with conditional writes. As a durable workflow the two observations and the apply are
//! checkpointed steps; every phase is also safe to repeat, because a write that already
//! happened is found equal on the next look and only recorded.
//!
//! Here: the run itself; [`reconcile`], the three-way plan; [`metadata`], display name and
//! colour, which ride along.

pub mod metadata;
pub mod reconcile;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use concord_durable::{Ctx, Engine, EngineConfig, RunState, StepError, Workflow};
use rusqlite::{Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::SyncError;
use super::item::Item;
use super::state::{self, Account, Pair, Seen, Side, StorageConfig, Synced, SyncedSide};
use super::storage::vdir::StagedBatch;
use super::storage::{CredentialSource, ItemWrite, Listed, Storage, StorageError, open_storage};
use crate::Concord;
use reconcile::{Action, Current, Inputs, Plan, PlanCounts, plan};

/// A run stops and asks when it would delete more than this share of a side's items...
pub const DELETE_SHARE_MAX_PERCENT: usize = 50;
/// ...and more than this many.
pub const DELETE_COUNT_MAX: usize = 10;
/// Actions whose state is committed in one transaction.
pub const APPLY_BATCH_MAX: usize = 512;

/// How many times a storage's listing is polled (connect, send) before this task blocks on
/// reading the stored view.
const REQUEST_POLLS_FIRST: usize = 3;

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

/// What one side showed in this run, before it is committed.
#[derive(Debug, Default)]
pub struct Observation {
    side: Option<Side>,
    token: Option<String>,
    /// The stored token this listing started from.
    previous_token: Option<String>,
    refresh_after_s: Option<u64>,
    /// The side's full view after this listing, by href.
    seen: BTreeMap<String, Seen>,
    /// Where it differs from the stored view it replaces: each item as it was and as it is,
    /// None where absent.
    differences: Vec<(Option<Seen>, Option<Seen>)>,
    /// Raw bytes fetched in this run, by href.
    fetched: BTreeMap<String, Vec<u8>>,
    /// Unreadable items found in this run: href, etag, summary, reason.
    unreadable: Vec<(String, String, String, String)>,
}

/// A planned run, ready to apply.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Plan,
    pub stopped: Option<String>,
    pub quarantined: usize,
    /// The pair's plan-input count the plan was made at (see [`Basis`]).
    version: i64,
}

/// What this process knows, from its own commits, of how the pair's plan inputs changed.
/// A sync that leaves nothing to do marks the pair settled at the count of changes to those
/// inputs (schema version 5 counts them with triggers, whoever writes). If that count has not
/// moved except by this process's commits, only the items these commits touched can have
/// anything to do: planning the other thousands would find nothing.
#[derive(Debug, Default)]
enum Basis {
    /// No commit by this process yet.
    #[default]
    Unknown,
    /// The pair was settled when this process first committed; since then only its own
    /// commits, to the items of `touched`, moved the count, to `version`.
    Since {
        version: i64,
        touched: BTreeSet<String>,
    },
    /// Anything may have changed: every item is planned.
    Everything,
}

impl Basis {
    /// After a commit that found the count at `before` (with the pair settled at `settled`)
    /// and left it at `after`, touching the items of `touched`.
    fn advance(
        &mut self,
        (before, settled): (i64, Option<i64>),
        after: i64,
        touched: impl IntoIterator<Item = String>,
    ) {
        let continues = match self {
            Basis::Unknown => settled == Some(before),
            Basis::Since { version, .. } => *version == before,
            Basis::Everything => false,
        };
        if !continues {
            *self = Basis::Everything;
            return;
        }
        let mut all = match std::mem::take(self) {
            Basis::Since { touched, .. } => touched,
            _ => BTreeSet::new(),
        };
        all.extend(touched);
        *self = Basis::Since {
            version: after,
            touched: all,
        };
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
        Ok(Self {
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
        })
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

    /// Observes both sides at once: a folder is listed while a server answers. Meanwhile the
    /// database's write-ahead log is copied back into the database file (a passive
    /// checkpoint), so no commit after the answer pays for it: SQLite otherwise checkpoints
    /// inside whichever commit takes the log past 1,000 pages, about one sync in five with 50
    /// changed items. A failed checkpoint loses nothing: the next commit that needs one does
    /// it as before.
    pub async fn observe_both(
        &self,
    ) -> (
        Result<Observation, SyncError>,
        Result<Observation, SyncError>,
    ) {
        let fold = async {
            // After the requests are out, in its turn with the other local work.
            for _ in 0..=REQUEST_POLLS_FIRST {
                tokio::task::yield_now().await;
            }
            let _turn = self.local_work.lock().await;
            let database = self.database.clone();
            let folded = tokio::task::spawn_blocking(move || database.checkpoint_passive())
                .await
                .map_err(|err| err.to_string())
                .and_then(|done| done.map_err(|err| err.to_string()));
            if let Err(err) = folded {
                tracing::debug!(%err, "the write-ahead log was not checkpointed");
            }
        };
        let (a, b, ()) = tokio::join!(self.observe(Side::A), self.observe(Side::B), fold);
        (a, b)
    }

    /// A turn at the local work (see `local_work`) when `local`; none for waiting on a server.
    async fn local_turn(&self, local: bool) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if local {
            Some(self.local_work.lock().await)
        } else {
            None
        }
    }

    /// Lists what changed on `side` since the stored token and fetches it.
    pub async fn observe(&self, side: Side) -> Result<Observation, SyncError> {
        let storage = self.storage(side);
        let token = {
            let conn = self.conn();
            let pair = state::pair_by_id(&conn, self.pair.id)?;
            pair.token(side).map(str::to_owned)
        };
        // The stored view is read while the storage is asked (a server's answer takes longest).
        // Reading it blocks this task, so the request is first given a few polls to go out.
        // Work on this machine (reading views, listing a folder, comparing) takes turns.
        let local = matches!(storage, Storage::Vdir(_));
        let (listing, previous) = tokio::join!(
            async {
                let _turn = self.local_turn(local).await;
                storage.changes(token.as_deref()).await
            },
            async {
                for _ in 0..REQUEST_POLLS_FIRST {
                    tokio::task::yield_now().await;
                }
                let _turn = self.local_work.lock().await;
                state::seen(&self.conn(), self.pair.id, side)
            }
        );
        let (listing, previous) = (listing?, previous?);
        // A folder's comparison and reads take their turn too; a server's answer arrives after
        // the other side's local work, as a rule, and is processed at once.
        let _turn = self.local_turn(local).await;
        // A complete listing is a new view, compared with the stored one once it is built; a
        // delta since the token is applied to the stored view, noting each difference.
        let (mut seen, mut previous, mut differences) = if listing.complete {
            (BTreeMap::new(), Some(previous), Vec::new())
        } else {
            (previous, None, Vec::new())
        };
        if previous.is_none() {
            for href in &listing.deleted {
                if let Some(gone) = seen.remove(href) {
                    differences.push((Some(gone), None));
                }
            }
        }
        let mut to_fetch = Vec::new();
        for listed in &listing.changed {
            let known = previous.as_ref().unwrap_or(&seen).get(&listed.href);
            match known.filter(|known| known.etag == listed.etag).cloned() {
                // Unchanged: a new view takes it over; a delta holds it already.
                Some(known) if previous.is_some() => {
                    seen.insert(listed.href.clone(), known);
                }
                Some(_) => {}
                None => to_fetch.push(listed.href.clone()),
            }
        }
        let mut observation = Observation {
            side: Some(side),
            token: listing.token,
            previous_token: token,
            refresh_after_s: listing.refresh_after_s,
            ..Observation::default()
        };
        let mut summaries = BTreeMap::new();
        for fetched in storage.fetch(&to_fetch).await? {
            let (uid, hash) = match Item::parse(fetched.raw.clone()) {
                Ok(item) => {
                    summaries.insert(fetched.href.clone(), item.summary);
                    (Some(item.uid), Some(item.hash))
                }
                Err(unreadable) => {
                    observation.unreadable.push((
                        fetched.href.clone(),
                        fetched.etag.clone(),
                        unreadable.summary,
                        unreadable.reason,
                    ));
                    (None, None)
                }
            };
            let now = Seen {
                href: fetched.href.clone(),
                etag: fetched.etag,
                uid,
                hash,
            };
            let was = seen.insert(fetched.href.clone(), now.clone());
            if previous.is_none() && was.as_ref() != Some(&now) {
                differences.push((was, Some(now)));
            }
            observation.fetched.insert(fetched.href, fetched.raw);
        }
        if let Some(previous) = previous.take() {
            differences = view_differences(&previous, &seen)
                .into_iter()
                .map(|(was, now)| (was.cloned(), now.cloned()))
                .collect();
        }
        observation.seen = seen;
        observation.differences = differences;
        let mut cache = self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache[side_index(side)].clone_from(&observation.fetched);
        drop(cache);
        self.summaries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)[side_index(side)] = summaries;
        Ok(observation)
    }

    /// Stores an observation: the side's view, its token, and its quarantine.
    pub fn commit(&self, observation: Observation) -> Result<(), SyncError> {
        let Some(side) = observation.side else {
            return Ok(());
        };
        let stats = ViewStats::of(&observation.seen);
        let has_duplicates = stats.duplicate > 0;
        let differences = &observation.differences;
        let unchanged = differences.is_empty()
            && observation.token == observation.previous_token
            && observation.refresh_after_s.is_none()
            && observation.unreadable.is_empty()
            && !has_duplicates;
        if unchanged {
            // The stored view, token and quarantine already say all this: no write, no fsync.
            let versions = state::plan_versions(&self.conn(), self.pair.id)?;
            self.basis().advance(versions, versions.0, []);
            self.keep_view(side, observation.seen, stats);
            return Ok(());
        }
        let mut conn = self.conn();
        // Only needed to choose which of several items with one UID is kept.
        let synced = if has_duplicates {
            state::synced(&conn, self.pair.id)?
        } else {
            BTreeMap::new()
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = state::plan_versions(&tx, self.pair.id)?;
        // Only what differs from the stored view is written (a no-change sync writes nothing).
        let mut touched = BTreeSet::new();
        for (before, after) in differences {
            match after {
                Some(seen) => state::put_seen(&tx, self.pair.id, side, seen)?,
                None => {
                    if let Some(gone) = before {
                        state::remove_seen(&tx, self.pair.id, side, &gone.href)?;
                    }
                }
            }
            for seen in [before, after].into_iter().flatten() {
                touched.extend(seen.uid.clone());
            }
        }
        state::set_token(&tx, self.pair.id, side, observation.token.as_deref())?;
        if let Some(after_s) = observation.refresh_after_s {
            let next = state::now_ms()
                .saturating_add(i64::try_from(after_s.saturating_mul(1000)).unwrap_or(i64::MAX));
            tx.execute(
                "UPDATE pairs SET next_check_after_ms = ?2 WHERE id = ?1",
                rusqlite::params![self.pair.id, next],
            )?;
        }
        // Quarantine: release what is gone or readable now, then add what is not.
        let existing: Vec<String> = tx
            .prepare("SELECT href FROM quarantine WHERE pair_id = ?1 AND side = ?2")?
            .query_map(rusqlite::params![self.pair.id, side.as_str()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for href in existing {
            let keep = observation.seen.get(&href).is_some_and(|s| s.uid.is_none());
            if !keep {
                state::release(&tx, self.pair.id, side, &href)?;
            }
        }
        for (href, etag, summary, reason) in &observation.unreadable {
            state::quarantine(&tx, self.pair.id, side, href, etag, summary, reason)?;
        }
        if has_duplicates {
            for (dup, kept) in duplicates(&observation.seen, &synced, side).1 {
                let reason = format!(
                    "another item ({kept}) has the same UID {}; only that one is synced",
                    dup.uid.as_deref().unwrap_or_default()
                );
                state::quarantine(&tx, self.pair.id, side, &dup.href, &dup.etag, "", &reason)?;
            }
        }
        let after = state::plan_versions(&tx, self.pair.id)?.0;
        tx.commit()?;
        drop(conn);
        self.basis().advance(before, after, touched);
        self.keep_view(side, observation.seen, stats);
        Ok(())
    }

    /// Keeps a side's committed view for the next plan, with its numbers.
    fn keep_view(&self, side: Side, seen: BTreeMap<String, Seen>, stats: ViewStats) {
        self.committed_views()[side_index(side)] = Some(CommittedView { seen, stats });
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

    /// Plans the run from the stored views (and what `observations` already fetched), and
    /// checks the safety limits. Planned from the stored views alone after this process's
    /// own commits to a settled pair, only the items those commits touched are planned (see
    /// [`Basis`]); test builds plan every item as well and check both plans agree.
    pub async fn prepare(
        &self,
        observations: &[&Observation],
        options: &SyncOptions,
    ) -> Result<Prepared, SyncError> {
        let version = state::plan_versions(&self.conn(), self.pair.id)?.0;
        let scope = match &*self.basis() {
            Basis::Since {
                version: since,
                touched,
            } if observations.is_empty() && *since == version => Some(touched.clone()),
            _ => None,
        };
        let prepared = self
            .prepare_within(observations, options, scope.as_ref(), version)
            .await?;
        #[cfg(debug_assertions)]
        if scope.is_some() {
            let everything = self
                .prepare_within(observations, options, None, version)
                .await?;
            assert_eq!(
                prepared.plan, everything.plan,
                "planning only the items touched since the pair settled missed something"
            );
        }
        Ok(prepared)
    }

    /// [`PairSync::prepare`] for the items of `scope` (None: every item).
    async fn prepare_within(
        &self,
        observations: &[&Observation],
        options: &SyncOptions,
        scope: Option<&BTreeSet<String>>,
        version: i64,
    ) -> Result<Prepared, SyncError> {
        let mut stats = [ViewStats::default(); 2];
        // Per side, what no longer reads (quarantined there), seen in the whole view.
        let mut unreadable: [HashSet<String>; 2] = Default::default();
        let (mut synced, synced_count, conflicts, stored) = {
            let mut conn = self.conn();
            // One snapshot of the stored state.
            let tx = conn.transaction()?;
            // A side not observed here is planned from its stored view: the one this process
            // just committed if there is one, else read back; only its items in scope.
            let mut kept = self.committed_views();
            let mut stored: [Option<BTreeMap<String, Seen>>; 2] = [None, None];
            for (i, side) in Side::BOTH.into_iter().enumerate() {
                if observations.iter().any(|o| o.side == Some(side)) {
                    continue;
                }
                let view = match kept[i].take() {
                    Some(view) => view,
                    None => {
                        let seen = state::seen(&tx, self.pair.id, side)?;
                        let stats = ViewStats::of(&seen);
                        CommittedView { seen, stats }
                    }
                };
                stats[i] = view.stats;
                unreadable[i] = unreadable_hrefs(&view.seen);
                stored[i] = Some(match scope {
                    Some(uids) => {
                        let in_scope = view
                            .seen
                            .iter()
                            .filter(|(_, s)| s.uid.as_ref().is_some_and(|uid| uids.contains(uid)))
                            .map(|(href, s)| (href.clone(), s.clone()))
                            .collect();
                        kept[i] = Some(view);
                        in_scope
                    }
                    None => view.seen,
                });
            }
            let (synced, count) = match scope {
                Some(uids) => (
                    state::synced_of(&tx, self.pair.id, uids.iter().map(String::as_str))?,
                    usize::try_from(state::synced_count(&tx, self.pair.id)?).unwrap_or(0),
                ),
                None => {
                    let synced = state::synced(&tx, self.pair.id)?;
                    let count = synced.len();
                    (synced, count)
                }
            };
            let conflicts = state::conflicts(&tx, self.pair.id)?;
            drop(tx);
            (synced, count, conflicts, stored)
        };
        let not_stored = BTreeMap::new();
        let mut views: [BTreeMap<String, Current>; 2] = [BTreeMap::new(), BTreeMap::new()];
        let mut quarantined = 0;
        let mut readable = [false; 2];
        for (i, side) in Side::BOTH.into_iter().enumerate() {
            let observed = observations.iter().find(|o| o.side == Some(side));
            let seen = match observed {
                Some(o) => &o.seen,
                None => stored[i].as_ref().unwrap_or(&not_stored),
            };
            if let Some(o) = observed {
                stats[i] = ViewStats::of(&o.seen);
                unreadable[i] = unreadable_hrefs(&o.seen);
            }
            quarantined += stats[i].unreadable + stats[i].duplicate;
            let (unique, _) = duplicates(seen, &synced, side);
            let mut missing = Vec::new();
            for (uid, s) in &unique {
                let hash = s.hash.clone().unwrap_or_default();
                let unchanged = synced.get(uid).is_some_and(|st| st.side(side).hash == hash);
                let raw = observed
                    .and_then(|o| o.fetched.get(&s.href).cloned())
                    .or_else(|| {
                        let cache = self
                            .fetched
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        cache[i].get(&s.href).cloned()
                    });
                if raw.is_none() && !unchanged {
                    missing.push(s.href.clone());
                }
                views[i].insert(
                    uid.clone(),
                    Current {
                        href: s.href.clone(),
                        etag: s.etag.clone(),
                        hash,
                        summary: synced
                            .get(uid)
                            .map(|st| st.summary.clone())
                            .unwrap_or_default(),
                        raw,
                    },
                );
            }
            // Each item read here is summarized from its content (parsed once: when observed,
            // or when fetched just now).
            let mut summarized = HashSet::new();
            for fetched in self.storage(side).fetch(&missing).await? {
                if let Ok(item) = Item::parse(fetched.raw.clone())
                    && let Some(current) = views[i].get_mut(&item.uid)
                {
                    current.etag = fetched.etag;
                    current.hash = item.hash;
                    current.raw = Some(fetched.raw);
                    current.summary = item.summary;
                    summarized.insert(item.uid);
                }
            }
            let known = self
                .summaries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (uid, current) in &mut views[i] {
                let Some(raw) = &current.raw else { continue };
                if summarized.contains(uid) {
                    continue;
                }
                match known[i].get(&current.href) {
                    Some(summary) => current.summary.clone_from(summary),
                    None => {
                        if let Ok(item) = Item::parse(raw.clone()) {
                            current.summary = item.summary;
                        }
                    }
                }
            }
            drop(known);
            // Gone since listed: leave it out rather than act on what we cannot read.
            let gone: Vec<String> = views[i]
                .iter()
                .filter(|(uid, c)| {
                    c.raw.is_none()
                        && synced
                            .get(*uid)
                            .is_none_or(|st| st.side(side).hash != c.hash)
                })
                .map(|(uid, _)| uid.clone())
                .collect();
            for uid in gone {
                views[i].remove(&uid);
            }
            readable[i] = match scope {
                Some(_) => stats[i].readable,
                None => !views[i].is_empty(),
            };
        }
        // An item whose synced copy on a side no longer reads is held as it was: neither its
        // absence there nor the other side's changes are acted on until the person mends or
        // removes what is quarantined (a corrupted file must not delete the good copy).
        let held: Vec<String> = synced
            .iter()
            .filter(|(uid, st)| {
                Side::BOTH.into_iter().enumerate().any(|(i, side)| {
                    !views[i].contains_key(*uid) && unreadable[i].contains(&st.side(side).href)
                })
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &held {
            synced.remove(uid);
            for view in &mut views {
                view.remove(uid);
            }
        }
        let [a, b] = &views;
        let plan = plan(Inputs {
            synced: &synced,
            a,
            b,
            open_conflicts: &conflicts,
            direction: self.pair.direction,
            policy: self.pair.conflict_policy,
        });
        let stopped = if options.allow_deletes {
            None
        } else {
            self.guard(&plan, synced_count, readable)
        };
        Ok(Prepared {
            plan,
            stopped,
            quarantined,
            version,
        })
    }

    /// The safety limits: an emptied side, or too many deletions, stop the pair.
    fn guard(&self, plan: &Plan, synced: usize, readable: [bool; 2]) -> Option<String> {
        let name = &self.pair.name;
        let counts = plan.counts();
        // Deletions the plan would make on each side.
        let deletes = [counts.delete_a, counts.delete_b];
        for (i, side) in Side::BOTH.into_iter().enumerate() {
            // Emptied, and about to empty the other side after it (an item edited on the other
            // side meanwhile is a conflict, not a deletion, and needs no stop).
            if !readable[i] && synced > 0 && deletes[1 - i] > 0 {
                return Some(format!(
                    "side {} ({}) now lists no items, but {} synced item(s) were there; nothing was deleted. \
                     If it was emptied on purpose, run `concord sync {name} --allow-deletes`",
                    side.as_str(),
                    self.pair.storage(side).location,
                    synced
                ));
            }
        }
        for (side, deletes) in [(Side::A, counts.delete_a), (Side::B, counts.delete_b)] {
            if deletes > DELETE_COUNT_MAX && deletes * 100 > synced * DELETE_SHARE_MAX_PERCENT {
                return Some(format!(
                    "this sync would delete {deletes} of {} items on side {} ({}); nothing was deleted. \
                     If that is intended, run `concord sync {name} --allow-deletes`",
                    synced,
                    side.as_str(),
                    self.pair.storage(side).location
                ));
            }
        }
        None
    }

    /// The report of `prepared` before anything is applied: a dry run counts the plan as
    /// what it would do; a real run counts each action as it is applied.
    fn report(&self, prepared: &Prepared, dry_run: bool) -> Report {
        let planned = prepared.plan.counts();
        Report {
            pair: self.pair.name.clone(),
            dry_run,
            counts: if dry_run {
                planned.clone()
            } else {
                PlanCounts::default()
            },
            planned,
            plan: prepared.plan.changes().map(Action::describe).collect(),
            quarantined: prepared.quarantined,
            stopped: prepared.stopped.clone(),
            ..Report::default()
        }
    }

    /// Applies a plan: remote writes in batches, the losing versions kept in history before
    /// each batch's writes, the new state committed after them.
    pub async fn apply(&self, prepared: Prepared) -> Result<Report, SyncError> {
        let mut report = self.report(&prepared, false);
        if let Some(reason) = &prepared.stopped {
            state::set_stopped(&self.conn(), self.pair.id, Some(reason))?;
            return Ok(report);
        }
        let mut wrote = [false; 2];
        // The plan-input count as this run's own writes leave it; None once another writer
        // moved it too (then the pair is not marked settled: what it did is unknown here).
        let mut expected = Some(prepared.version);
        let batches = prepared.plan.actions.chunks(APPLY_BATCH_MAX).count();
        // Whether the last batch's record also stored the pair's "ran fine" state.
        let mut finished = false;
        for (n, batch) in prepared.plan.actions.chunks(APPLY_BATCH_MAX).enumerate() {
            let mut staged = self.keep_versions_staging(batch)?;
            let mut done: Vec<Done> = Vec::with_capacity(batch.len());
            let mut results = Vec::with_capacity(batch.len());
            let mut start = 0;
            while start < batch.len() {
                let (group_side, end) = group_at(batch, start);
                let group = &batch[start..end];
                let written = match group_side {
                    Some(side) if group.len() > 1 => {
                        self.write_group(side, group, staged.take()).await
                    }
                    _ => Ok(vec![self.write(&batch[start]).await]),
                };
                let hard_error = match written {
                    Ok(written) => {
                        let stop = written
                            .iter()
                            .any(|r| r.as_ref().is_err_and(|e| !e.is_item_only()));
                        results.extend(group.iter().zip(written));
                        stop
                    }
                    Err(err) => {
                        results.push((&batch[start], Err(err)));
                        true
                    }
                };
                if hard_error {
                    break;
                }
                start = end;
            }
            for (action, result) in results {
                match result {
                    Ok(d) => {
                        for (i, side) in Side::BOTH.into_iter().enumerate() {
                            wrote[i] |= action.writes_to(side);
                        }
                        report.count(action, Ok(()));
                        done.push(d);
                    }
                    Err(err) if err.is_item_only() => report.count(action, Err(&err)),
                    Err(err) => {
                        for side in Side::BOTH {
                            self.storage(side).flush()?;
                        }
                        self.record(&done, &mut expected, None)?;
                        let message = err.to_string();
                        let _ = state::set_outcome(&self.conn(), self.pair.id, Some(&message));
                        return Err(err.into());
                    }
                }
            }
            for (i, side) in Side::BOTH.into_iter().enumerate() {
                if wrote[i] {
                    self.storage(side).flush()?;
                }
            }
            // With nothing to list again afterwards, the last batch's record finishes the run.
            let relist = Side::BOTH
                .into_iter()
                .zip(wrote)
                .any(|(s, w)| w && self.relists(s));
            finished = n + 1 == batches && !relist;
            let all_written = report.all_written();
            self.record(&done, &mut expected, finished.then_some(all_written))?;
        }
        // The stored token predates our own writes: a change that nets out against it (an item
        // deleted and restored, created and deleted) would never be reported. Listing the
        // written sides again stores a token that includes them; another client's change in
        // between is fetched like any other.
        // A folder has no token: its next listing is complete anyway, and what was written is
        // recorded with the etags the writes returned.
        for (i, side) in Side::BOTH.into_iter().enumerate() {
            if wrote[i] && self.relists(side) {
                let observation = self.observe(side).await?;
                self.commit(observation)?;
            }
        }
        if !finished {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            ran_fine(&tx, self.pair.id, report.all_written(), expected)?;
            tx.commit()?;
        }
        assert_eq!(
            report
                .counts
                .plus(&report.deferred_counts)
                .plus(&report.refused_counts),
            report.planned,
            "every planned action is written, deferred or refused"
        );
        // Display name and colour ride along (at most hourly); they never fail the sync.
        if let Err(err) = metadata::sync_metadata(self, false).await {
            tracing::warn!(pair = %self.pair.name, %err, "display name and colour not synced");
        }
        Ok(report)
    }

    /// Keeps, durably, the versions `batch` overwrites or deletes, before any of its writes.
    /// When the batch starts with several writes to a folder, they are kept while that folder
    /// makes those files durable under temporary names (returned, to be moved into place by
    /// [`PairSync::write_group`]); nothing is in place until both are done.
    fn keep_versions_staging(
        &self,
        batch: &[Action],
    ) -> Result<Option<Result<StagedBatch, StorageError>>, SyncError> {
        let (side, end) = group_at(batch, 0);
        let vdir = match side.map(|side| self.storage(side)) {
            Some(Storage::Vdir(vdir)) if end > 1 => vdir,
            _ => return self.keep_versions(batch).map(|()| None),
        };
        let writes = item_writes(&batch[..end]);
        let (kept, staged) = std::thread::scope(|scope| {
            let kept = scope.spawn(|| self.keep_versions(batch));
            let staged = vdir.stage(&writes);
            (kept.join(), staged)
        });
        kept.map_err(|_| {
            SyncError::Run("keeping the versions a sync replaces failed".to_owned())
        })??;
        Ok(Some(staged))
    }

    fn keep_versions(&self, batch: &[Action]) -> Result<(), SyncError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let pair = &self.pair;
        for action in batch {
            let keep =
                |side: Side, href: &str, reason: &str, content: &[u8], summary: &str, uid: &str| {
                    state::record_version(
                        &tx,
                        pair.id,
                        pair.storage(side).id,
                        side,
                        uid,
                        Some(href),
                        summary,
                        reason,
                        content,
                    )
                };
            match action {
                Action::Update {
                    side,
                    uid,
                    summary,
                    href,
                    previous,
                    ..
                } => {
                    let reason = action.decided().unwrap_or("overwritten");
                    keep(*side, href, reason, previous, summary, uid)?
                }
                Action::Delete {
                    side,
                    uid,
                    summary,
                    href,
                    previous,
                    ..
                } => keep(
                    *side,
                    href,
                    action.decided().unwrap_or("deleted"),
                    previous,
                    summary,
                    uid,
                )?,
                // A policy undid a deletion: the deleted version is kept with the reason.
                Action::Create {
                    side,
                    uid,
                    summary,
                    previous,
                    decided: Some(reason),
                    ..
                } => {
                    let href = self.storage(*side).href_for(uid);
                    keep(*side, &href, reason, previous, summary, uid)?
                }
                Action::Merge {
                    uid,
                    summary,
                    a,
                    b,
                    previous_a,
                    previous_b,
                    ..
                } => {
                    keep(Side::A, &a.href, "merged", previous_a, summary, uid)?;
                    keep(Side::B, &b.href, "merged", previous_b, summary, uid)?;
                }
                _ => {}
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Writes one action. A conditional write that loses is re-read first: if the item
    /// already holds what was to be written (our own write before a crash), it is recorded.
    async fn write(&self, action: &Action) -> Result<Done, StorageError> {
        let result = self.write_once(action).await;
        self.settle(action, result).await
    }

    /// Writes a run of creates and updates on `side` as one batch of the storage; each
    /// result is settled as [`PairSync::write`] settles it.
    async fn write_group(
        &self,
        side: Side,
        group: &[Action],
        staged: Option<Result<StagedBatch, StorageError>>,
    ) -> Result<Vec<Result<Done, StorageError>>, StorageError> {
        let writes = item_writes(group);
        let written = match (staged, self.storage(side)) {
            (Some(staged), Storage::Vdir(vdir)) => vdir.place(&writes, staged?),
            _ => self.storage(side).write_many(&writes).await?,
        };
        let mut out = Vec::with_capacity(written.len());
        for (action, result) in group.iter().zip(written) {
            let done = result.and_then(|listed| written_done(action, side, listed));
            out.push(self.settle(action, done).await);
        }
        Ok(out)
    }

    /// A write that lost its condition is re-read: if the item already holds what was to be
    /// written (our own write before a crash), it is recorded; a create whose name another
    /// item holds is refused (the next sync would only meet it again); else it stays
    /// "changed".
    async fn settle(
        &self,
        action: &Action,
        result: Result<Done, StorageError>,
    ) -> Result<Done, StorageError> {
        match result {
            Err(err) if err.is_changed() => {
                let (side, href, hash, creates) = match action {
                    Action::Create {
                        side, uid, source, ..
                    } => (
                        *side,
                        self.storage(*side).href_for(uid),
                        source.hash.clone(),
                        Some(uid),
                    ),
                    Action::Update {
                        side, href, source, ..
                    } => (*side, href.clone(), source.hash.clone(), None),
                    _ => return Err(err),
                };
                let now = self
                    .storage(side)
                    .fetch(std::slice::from_ref(&href))
                    .await?;
                let Some(found) = now.into_iter().next() else {
                    return Err(err);
                };
                // Already holding what was to be written: recorded as written.
                let taken_by = match Item::parse(found.raw) {
                    Ok(item) if item.hash == hash => {
                        let made = Listed {
                            href: found.href,
                            etag: found.etag,
                        };
                        return written_done(action, side, made);
                    }
                    Ok(item) if creates.is_some_and(|uid| *uid != item.uid) => {
                        format!("another item (UID {}) has that name", item.uid)
                    }
                    Err(_) if creates.is_some() => {
                        "an unreadable file (see `concord quarantine list`) has that name"
                            .to_owned()
                    }
                    _ => return Err(err),
                };
                Err(StorageError::Refused {
                    href: found.href,
                    reason: taken_by,
                })
            }
            other => other,
        }
    }

    async fn write_once(&self, action: &Action) -> Result<Done, StorageError> {
        Ok(match action {
            Action::Create {
                side, uid, content, ..
            } => {
                let made = self.storage(*side).create(uid, content).await?;
                written_done(action, *side, made)?
            }
            Action::Update {
                side,
                href,
                etag,
                content,
                ..
            } => {
                let etag = self.storage(*side).update(href, etag, content).await?;
                let made = Listed {
                    href: href.clone(),
                    etag,
                };
                written_done(action, *side, made)?
            }
            Action::Delete {
                side,
                uid,
                href,
                etag,
                ..
            } => {
                self.storage(*side).delete(href, etag).await?;
                Done::Deleted(*side, uid.clone(), href.clone())
            }
            Action::Merge {
                uid,
                summary,
                content,
                a,
                b,
                ..
            } => {
                let hash = Item::parse(content.clone())
                    .map(|i| i.hash)
                    .unwrap_or_default();
                let a_etag = self.a.update(&a.href, &a.etag, content).await?;
                let b_etag = self.b.update(&b.href, &b.etag, content).await?;
                Done::Synced(Synced {
                    uid: uid.clone(),
                    a: SyncedSide {
                        href: a.href.clone(),
                        etag: a_etag,
                        hash: hash.clone(),
                    },
                    b: SyncedSide {
                        href: b.href.clone(),
                        etag: b_etag,
                        hash,
                    },
                    base: content.clone(),
                    summary: summary.clone(),
                })
            }
            Action::Record { synced, .. } => Done::Synced(synced.clone()),
            Action::Forget { uid, .. } => Done::Forgotten(uid.clone()),
            Action::Conflict { conflict, .. } => Done::Conflict(conflict.clone()),
        })
    }

    /// Whether a run that wrote to `side` lists it again afterwards (see [`PairSync::apply`]):
    /// a server, not a folder.
    fn relists(&self, side: Side) -> bool {
        !matches!(self.storage(side), Storage::Vdir(_))
    }

    /// Records what was done; `expected` follows the plan-input count (see [`PairSync::apply`]).
    /// The run's last record, given whether every write was made, also stores that the pair
    /// ran fine (one commit to disk for both).
    fn record(
        &self,
        done: &[Done],
        expected: &mut Option<i64>,
        finish: Option<bool>,
    ) -> Result<(), SyncError> {
        // The writes outdate the committed views. Freeing thousands of entries takes a
        // millisecond or more, so it is done beside the sync, not in its way.
        let outdated = std::mem::take(&mut *self.committed_views());
        if outdated.iter().any(Option::is_some) {
            std::thread::spawn(move || drop(outdated));
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = self.pair.id;
        if *expected != Some(state::plan_versions(&tx, id)?.0) {
            *expected = None;
        }
        for d in done {
            match d {
                Done::Synced(synced) => {
                    state::put_synced(&tx, id, synced)?;
                    for side in Side::BOTH {
                        let s = synced.side(side);
                        state::put_seen(
                            &tx,
                            id,
                            side,
                            &Seen {
                                href: s.href.clone(),
                                etag: s.etag.clone(),
                                uid: Some(synced.uid.clone()),
                                hash: Some(s.hash.clone()),
                            },
                        )?;
                    }
                    state::close_conflict(&tx, id, &synced.uid)?;
                }
                Done::Deleted(side, uid, href) => {
                    state::remove_synced(&tx, id, uid)?;
                    state::remove_seen(&tx, id, *side, href)?;
                    state::close_conflict(&tx, id, uid)?;
                }
                Done::Forgotten(uid) => {
                    state::remove_synced(&tx, id, uid)?;
                    state::close_conflict(&tx, id, uid)?;
                }
                Done::Conflict(conflict) => state::open_conflict(&tx, id, conflict)?,
            }
        }
        if expected.is_some() {
            *expected = Some(state::plan_versions(&tx, id)?.0);
        }
        if let Some(all_written) = finish {
            ran_fine(&tx, id, all_written, *expected)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Stores that the pair's run went through. If every action did (`all_written`) and nothing
/// else moved the plan-input count since planning (`expected` is where the run's own writes
/// left it), nothing is left to do: the pair is settled.
fn ran_fine(
    tx: &rusqlite::Transaction<'_>,
    pair_id: i64,
    all_written: bool,
    expected: Option<i64>,
) -> Result<(), SyncError> {
    state::set_stopped(tx, pair_id, None)?;
    state::set_outcome(tx, pair_id, None)?;
    let now = state::plan_versions(tx, pair_id)?.0;
    if all_written && expected == Some(now) {
        state::settle(tx, pair_id, now)?;
    }
    Ok(())
}

/// The group of actions written together from `start` of `batch`: a run of creates and updates
/// on one side (one batch of its storage; a vdir makes it durable at once), else the action
/// alone. Its side if it writes, and where it ends.
fn group_at(batch: &[Action], start: usize) -> (Option<Side>, usize) {
    let side = batch.get(start).and_then(single_write_side);
    let end = match side {
        Some(side) => batch[start..]
            .iter()
            .position(|a| single_write_side(a) != Some(side))
            .map_or(batch.len(), |n| start + n),
        None => start + 1,
    };
    (side, end)
}

/// The writes of a group of creates and updates.
fn item_writes(group: &[Action]) -> Vec<ItemWrite<'_>> {
    group
        .iter()
        .filter_map(|action| match action {
            Action::Create { uid, content, .. } => Some(ItemWrite::Create { uid, raw: content }),
            Action::Update {
                href,
                etag,
                content,
                ..
            } => Some(ItemWrite::Update {
                href,
                etag,
                raw: content,
            }),
            _ => None,
        })
        .collect()
}

/// The side a create or update writes to; None for any other action.
fn single_write_side(action: &Action) -> Option<Side> {
    match action {
        Action::Create { side, .. } | Action::Update { side, .. } => Some(*side),
        _ => None,
    }
}

/// What a create or update that wrote `made` on `side` leaves to record.
fn written_done(action: &Action, side: Side, made: Listed) -> Result<Done, StorageError> {
    let (uid, content, source, summary) = match action {
        Action::Create {
            uid,
            content,
            source,
            summary,
            ..
        }
        | Action::Update {
            uid,
            content,
            source,
            summary,
            ..
        } => (uid, content, source, summary),
        other => {
            return Err(StorageError::Invalid(format!(
                "{} is not a create or an update",
                other.describe()
            )));
        }
    };
    let written = SyncedSide {
        href: made.href,
        etag: made.etag,
        hash: source.hash.clone(),
    };
    Ok(Done::Synced(synced_pair(
        side,
        written,
        source.clone(),
        uid,
        content,
        summary,
    )))
}

/// What one applied action leaves to record.
enum Done {
    Synced(Synced),
    Deleted(Side, String, String),
    Forgotten(String),
    Conflict(state::Conflict),
}

fn synced_pair(
    written_side: Side,
    written: SyncedSide,
    source: SyncedSide,
    uid: &str,
    content: &[u8],
    summary: &str,
) -> Synced {
    let (a, b) = match written_side {
        Side::A => (written, source),
        Side::B => (source, written),
    };
    Synced {
        uid: uid.to_owned(),
        a,
        b,
        base: content.to_vec(),
        summary: summary.to_owned(),
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// A side's whole view in numbers, as planning needs them when it looks at a part only.
#[derive(Debug, Clone, Copy, Default)]
struct ViewStats {
    /// Items that cannot be read.
    unreadable: usize,
    /// Items that share their UID with another kept instead.
    duplicate: usize,
    /// Whether any item can be read.
    readable: bool,
}

impl ViewStats {
    fn of(seen: &BTreeMap<String, Seen>) -> Self {
        let mut distinct = HashSet::with_capacity(seen.len());
        let mut readable = 0;
        for uid in seen.values().filter_map(|s| s.uid.as_deref()) {
            readable += 1;
            distinct.insert(uid);
        }
        Self {
            unreadable: seen.len() - readable,
            duplicate: readable - distinct.len(),
            readable: readable > 0,
        }
    }
}

/// A side's view as this process committed it, with its numbers.
#[derive(Debug)]
struct CommittedView {
    seen: BTreeMap<String, Seen>,
    stats: ViewStats,
}

/// The items whose view differs between `before` and `after`, found in one pass through
/// both (each is ordered by href): each as it was and as it is, None where absent.
fn view_differences<'a>(
    before: &'a BTreeMap<String, Seen>,
    after: &'a BTreeMap<String, Seen>,
) -> Vec<(Option<&'a Seen>, Option<&'a Seen>)> {
    use std::cmp::Ordering;
    let mut out = Vec::new();
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            Ordering::Less => out.extend(old.next().map(|(_, s)| (Some(s), None))),
            Ordering::Greater => out.extend(new.next().map(|(_, s)| (None, Some(s)))),
            Ordering::Equal => {
                if let (Some((_, a)), Some((_, b))) = (old.next(), new.next())
                    && a != b
                {
                    out.push((Some(a), Some(b)));
                }
            }
        }
    }
    out
}

/// The hrefs of a view whose items do not read (quarantined).
fn unreadable_hrefs(seen: &BTreeMap<String, Seen>) -> HashSet<String> {
    seen.values()
        .filter(|s| s.uid.is_none())
        .map(|s| s.href.clone())
        .collect()
}

/// Whether two readable items of a side share a UID.
fn has_duplicate_uids(seen: &BTreeMap<String, Seen>) -> bool {
    let mut uids = std::collections::HashSet::with_capacity(seen.len());
    seen.values()
        .filter_map(|s| s.uid.as_deref())
        .any(|uid| !uids.insert(uid))
}

type Duplicate<'a> = (&'a Seen, String);

/// A side's readable items by UID; where several hrefs share a UID, the one already synced
/// (else the first by href) is kept and the others are returned with the href kept.
fn duplicates<'a>(
    seen: &'a BTreeMap<String, Seen>,
    synced: &BTreeMap<String, Synced>,
    side: Side,
) -> (BTreeMap<String, &'a Seen>, Vec<Duplicate<'a>>) {
    if !has_duplicate_uids(seen) {
        let unique = seen
            .values()
            .filter_map(|s| Some((s.uid.clone()?, s)))
            .collect();
        return (unique, Vec::new());
    }
    let mut by_uid: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in seen.values() {
        if let Some(uid) = &s.uid {
            by_uid.entry(uid).or_default().push(s);
        }
    }
    let mut unique = BTreeMap::new();
    let mut dups = Vec::new();
    for (uid, mut all) in by_uid {
        let synced_href = synced.get(uid).map(|st| st.side(side).href.as_str());
        all.sort_by_key(|s| (Some(s.href.as_str()) != synced_href, s.href.clone()));
        let mut iter = all.into_iter();
        if let Some(kept) = iter.next() {
            for dup in iter {
                dups.push((dup, kept.href.clone()));
            }
            unique.insert(uid.to_owned(), kept);
        }
    }
    (unique, dups)
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
    use crate::sync::item::ItemKind;
    use crate::sync::state::{ConflictPolicy, Direction, StorageKind};

    fn event(uid: &str, summary: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Concord tests//EN\r\nBEGIN:VEVENT\r\n\
             UID:{uid}\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:20261201T100000Z\r\n\
             SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    /// A data directory with the pair "p" of two folders in it, `a` and `b`.
    fn folders(direction: Direction) -> (tempfile::TempDir, Concord, [PathBuf; 2]) {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let folders = [dir.path().join("a"), dir.path().join("b")];
        let conn = concord.database().connect().unwrap();
        let [a, b] = folders.each_ref().map(|path| {
            let location = path.to_str().unwrap();
            state::put_storage(
                &conn,
                None,
                StorageKind::Vdir,
                ItemKind::Calendar,
                location,
                None,
            )
            .unwrap()
        });
        state::add_pair(&conn, "p", a, b, direction, ConflictPolicy::Ask).unwrap();
        (dir, concord, folders)
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
