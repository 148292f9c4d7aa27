//! The engine handle: configuration, workflow registration, and the commands and queries the
//! app, the CLI and the UI call (start, cancel, retry, list, schedules, summary, events).
//! The worker loop that executes runs lives in `worker`; steps in `ctx`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::Value;
use tokio::sync::{Notify, broadcast};

use crate::clock::{Clock, SystemClock, duration_ms};
use crate::ctx::Ctx;
use crate::db::{Database, DbError, Synchronous};
use crate::model::{
    AttemptInfo, Event, RunDetail, RunFilter, RunId, RunInfo, RunState, ScheduleInfo, StepInfo,
    Summary, WorkerInfo,
};
use crate::retry::{ErrorClass, RetryPolicy, StepError};
use crate::schedule::{Compiled, Schedule, StoredSpec};
use crate::schema;

/// Connections kept open for reuse; more are opened when needed and closed after.
const POOL_SIZE_MAX: usize = 8;
/// Runs listed when a filter asks for no limit.
const LIST_LIMIT_DEFAULT: usize = 100;
/// Skipped slots shown per schedule.
const SKIPS_SHOWN_MAX: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no workflow kind {0:?} is registered in this process")]
    UnknownKind(String),
    #[error("run {0} does not exist (it may have been pruned from history)")]
    RunNotFound(RunId),
    #[error("schedule {0:?} does not exist")]
    ScheduleNotFound(String),
    #[error("run {id} is {state}: cannot {action} it")]
    WrongState {
        id: RunId,
        state: RunState,
        action: &'static str,
    },
    #[error("run {id} cannot be retried: run {open} with the same key {key:?} is already open")]
    KeyOpen { id: RunId, open: RunId, key: String },
    #[error("schedule {name:?} is invalid: {reason}")]
    InvalidSchedule { name: String, reason: String },
    #[error("the database holds a value this version does not understand: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The future a workflow handler returns.
pub type WorkflowFuture = Pin<Box<dyn Future<Output = Result<Value, StepError>> + Send>>;
type Handler = Arc<dyn Fn(Ctx) -> WorkflowFuture + Send + Sync>;

/// A kind of workflow: its code, its version and its default retry policy.
#[derive(Clone)]
pub struct Workflow {
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) retry: RetryPolicy,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) handler: Handler,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Workflow {
    /// `handler` gets a [`Ctx`] with the run's input and runs steps through it.
    pub fn new<F, Fut>(name: &str, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, StepError>> + Send + 'static,
    {
        Self {
            name: name.to_owned(),
            version: 1,
            retry: RetryPolicy::default(),
            attempt_timeout: None,
            handler: Arc::new(move |ctx| Box::pin(handler(ctx))),
        }
    }

    /// Bump when the step list changes incompatibly: runs started by another version with
    /// completed steps fail clearly and restart instead of replaying wrongly.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version.max(1);
        self
    }

    /// The default retry policy of this kind's steps.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Start-to-close limit of one attempt of the whole run; a timeout is a transient error.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }
}

/// How an engine behaves. `Default` suits the desktop app; tests shorten the times.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// What this process is, shown in the worker list: "daemon", "app", "cli".
    pub worker_label: String,
    /// Runs this process executes at once.
    pub max_concurrent_runs: usize,
    /// Runs of one group (for example one server host) running at once, across processes.
    pub group_limits: HashMap<String, usize>,
    /// The limit of groups not in `group_limits`.
    pub default_group_limit: usize,
    /// A lease not renewed for this long is taken over; leases are renewed every third of it.
    pub heartbeat_timeout: Duration,
    /// The longest the worker loop sleeps before looking at the database again (it also wakes
    /// on starts in this process). Bounds how late another process's start or a wake from
    /// suspend is noticed.
    pub poll_interval: Duration,
    /// `Full` by default; `Normal` trades the last commits on power loss for speed.
    pub synchronous: Synchronous,
    pub clock: Arc<dyn Clock>,
    /// Finished runs older than this are pruned.
    pub history_max_age: Duration,
    /// At most this many finished runs are kept.
    pub history_max_runs: usize,
    /// On shutdown, running runs get this long to reach a step boundary.
    pub shutdown_grace: Duration,
    /// Seed of the jitter random numbers, for replayable tests; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            worker_label: "app".to_owned(),
            max_concurrent_runs: 8,
            group_limits: HashMap::new(),
            default_group_limit: 2,
            heartbeat_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(250),
            synchronous: Synchronous::Full,
            clock: Arc::new(SystemClock),
            history_max_age: Duration::from_secs(30 * 24 * 3600),
            history_max_runs: 10_000,
            shutdown_grace: Duration::from_secs(5),
            seed: None,
        }
    }
}

/// Per running run, shared between the worker loop and the run's [`Ctx`].
#[derive(Debug, Default)]
pub(crate) struct RunFlags {
    pub cancel: AtomicBool,
    pub lost: AtomicBool,
    pub shutdown: AtomicBool,
    /// Stops the run's task mid-step when its lease is lost.
    pub abort: Mutex<Option<tokio::task::AbortHandle>>,
}

pub(crate) struct Inner {
    pub db: Database,
    pub config: EngineConfig,
    pub worker_id: String,
    pool: Mutex<Vec<Connection>>,
    pub kinds: RwLock<HashMap<String, Arc<Workflow>>>,
    pub events: broadcast::Sender<Event>,
    pub wake: Notify,
    pub running: Mutex<HashMap<RunId, Arc<RunFlags>>>,
    pub rng: Mutex<StdRng>,
}

/// The durable engine. Cheap to clone; all clones share one worker identity.
///
/// Commands and queries are synchronous and short (one SQLite transaction each); the worker
/// loop [`Engine::run`] is async.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("db", &self.inner.db.path())
            .field("worker", &self.inner.worker_id)
            .finish_non_exhaustive()
    }
}

/// Options of [`Engine::start_with`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Concurrency group, for example the server's host.
    pub group: Option<String>,
    /// Do not start before this delay has passed.
    pub delay: Duration,
}

impl Engine {
    /// Checks the database settings, migrates the engine's schema and prepares a worker
    /// identity. Nothing runs until [`Engine::run`].
    pub fn new(db: Database, config: EngineConfig) -> Result<Self> {
        let db = db.with_synchronous(config.synchronous);
        let mut conn = db.connect()?;
        db.migrate(&mut conn, schema::COMPONENT, schema::MIGRATIONS)?;
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let worker_id = format!(
            "{}-{}-{:08x}",
            config.worker_label,
            std::process::id(),
            rand::rng().random::<u32>()
        );
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                config,
                worker_id,
                pool: Mutex::new(vec![conn]),
                kinds: RwLock::new(HashMap::new()),
                events,
                wake: Notify::new(),
                running: Mutex::new(HashMap::new()),
                rng: Mutex::new(rng),
            }),
        })
    }

    /// Makes this process able to execute runs of `workflow`'s kind.
    pub fn register(&self, workflow: Workflow) {
        let mut kinds = self
            .inner
            .kinds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kinds.insert(workflow.name.clone(), Arc::new(workflow));
    }

    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Live events of this process (runs changing state, steps completing, schedules).
    /// Other processes' changes are seen by querying.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Starts a run, or returns the open run with the same idempotency key.
    pub fn start(&self, kind: &str, idempotency_key: &str, input: Value) -> Result<RunId> {
        self.start_with(kind, idempotency_key, input, StartOptions::default())
    }

    pub fn start_with(
        &self,
        kind: &str,
        idempotency_key: &str,
        input: Value,
        options: StartOptions,
    ) -> Result<RunId> {
        let now = self.inner.now();
        let version = self.inner.kind(kind).map_or(0, |k| k.version);
        let (id, created) = self.inner.write(|tx| {
            insert_run(
                tx,
                &NewRun {
                    kind,
                    key: idempotency_key,
                    input: &input,
                    version,
                    group: options.group.as_deref(),
                    schedule: None,
                    next_at: now + duration_ms(options.delay),
                },
                now,
            )
        })?;
        if created {
            self.inner.emit_run(id, kind, RunState::Pending, None, None);
            self.inner.wake.notify_one();
        }
        Ok(id)
    }

    /// Cancels a run: at once if it is waiting, at its next step boundary if it is running.
    pub fn cancel(&self, id: RunId) -> Result<RunInfo> {
        let now = self.inner.now();
        let info = self.change_run(id, |tx, run| {
            let sql = match run.state {
                RunState::Pending | RunState::Sleeping => {
                    "UPDATE durable_runs SET state = 'cancelled', finished_at = ?1,
                     updated_at = ?1, next_at = NULL, cancel_requested = 1 WHERE id = ?2"
                }
                RunState::Running => {
                    "UPDATE durable_runs SET cancel_requested = 1, updated_at = ?1 WHERE id = ?2"
                }
                state => {
                    return Err(Error::WrongState {
                        id,
                        state,
                        action: "cancel",
                    });
                }
            };
            tx.execute(sql, params![now, id.0])?;
            Ok(())
        })?;
        if let Some(flags) = self.inner.flags(id) {
            flags.cancel.store(true, Ordering::SeqCst);
        }
        Ok(info)
    }

    /// "Retry now": a sleeping run starts at once; a failed or cancelled run is reopened and
    /// resumes after its completed steps.
    pub fn retry(&self, id: RunId) -> Result<RunInfo> {
        let now = self.inner.now();
        self.change_run(id, |tx, run| {
            match run.state {
                RunState::Sleeping | RunState::Pending => {
                    tx.execute(
                        "UPDATE durable_runs SET next_at = ?1, updated_at = ?1 WHERE id = ?2",
                        params![now, id.0],
                    )?;
                }
                RunState::Failed | RunState::Cancelled => {
                    let open: Option<i64> = tx
                        .query_row(
                            "SELECT id FROM durable_runs WHERE idempotency_key = ?1
                             AND state IN ('pending', 'running', 'sleeping')",
                            [&run.idempotency_key],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(open) = open {
                        return Err(Error::KeyOpen {
                            id,
                            open: RunId(open),
                            key: run.idempotency_key.clone(),
                        });
                    }
                    // Step failure counts restart: the person asked for a fresh set of tries.
                    tx.execute(
                        "UPDATE durable_steps SET attempts = 0
                         WHERE run_id = ?1 AND completed_at IS NULL",
                        [id.0],
                    )?;
                    tx.execute(
                        "UPDATE durable_runs SET state = 'pending', next_at = ?1, updated_at = ?1,
                         finished_at = NULL, cancel_requested = 0, error = NULL,
                         error_class = NULL, lease_owner = NULL, lease_until = NULL
                         WHERE id = ?2",
                        params![now, id.0],
                    )?;
                }
                state => {
                    return Err(Error::WrongState {
                        id,
                        state,
                        action: "retry",
                    });
                }
            }
            Ok(())
        })
    }

    /// A change a person asked for: `change` updates the run or refuses; the run as it is
    /// afterwards is returned and announced.
    fn change_run(
        &self,
        id: RunId,
        change: impl FnOnce(&Transaction, &RunInfo) -> Result<()>,
    ) -> Result<RunInfo> {
        let info = self.inner.write(|tx| {
            let before = run_info(tx, id)?.ok_or(Error::RunNotFound(id))?;
            change(tx, &before)?;
            run_info(tx, id)?.ok_or(Error::RunNotFound(id))
        })?;
        self.inner.emit_run(
            id,
            &info.kind,
            info.state,
            info.error.clone(),
            info.next_at_ms,
        );
        self.inner.wake.notify_one();
        Ok(info)
    }

    /// Runs, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunInfo>> {
        let limit = if filter.limit == 0 {
            LIST_LIMIT_DEFAULT
        } else {
            filter.limit
        };
        self.inner.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM durable_runs
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2)
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.state.map(RunState::as_str),
                    filter.kind,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                RawRun::from_row,
            )?;
            rows.map(|r| r?.into_info()).collect()
        })
    }

    pub fn run_info(&self, id: RunId) -> Result<RunInfo> {
        self.inner
            .read(|c| run_info(c, id)?.ok_or(Error::RunNotFound(id)))
    }

    /// A run with its input, result, steps and attempts.
    pub fn show(&self, id: RunId) -> Result<RunDetail> {
        self.inner.read(|c| {
            let run = run_info(c, id)?.ok_or(Error::RunNotFound(id))?;
            let (input, result): (String, Option<String>) = c.query_row(
                "SELECT input, result FROM durable_runs WHERE id = ?1",
                [id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut stmt = c.prepare(
                "SELECT seq, name, attempts, completed_at, result FROM durable_steps
                 WHERE run_id = ?1 ORDER BY seq",
            )?;
            let steps = stmt
                .query_map([id.0], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })?
                .map(|r| {
                    let (seq, name, attempts, completed_at_ms, result) = r?;
                    Ok(StepInfo {
                        seq,
                        name,
                        attempts: u32::try_from(attempts).unwrap_or(0),
                        completed_at_ms,
                        result: result.map(|s| serde_json::from_str(&s)).transpose()?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let mut stmt = c.prepare(
                "SELECT attempt, worker, started_at, ended_at, outcome, step, error,
                 error_class, next_retry_at FROM durable_attempts WHERE run_id = ?1 ORDER BY id",
            )?;
            let attempts = stmt
                .query_map([id.0], |r| {
                    Ok(AttemptInfo {
                        attempt: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        worker: r.get(1)?,
                        started_at_ms: r.get(2)?,
                        ended_at_ms: r.get(3)?,
                        outcome: r.get(4)?,
                        step: r.get(5)?,
                        error: r.get(6)?,
                        error_class: r
                            .get::<_, Option<String>>(7)?
                            .and_then(|s| ErrorClass::parse(&s)),
                        next_retry_at_ms: r.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(RunDetail {
                run,
                input: serde_json::from_str(&input)?,
                result: result.map(|s| serde_json::from_str(&s)).transpose()?,
                steps,
                attempts,
            })
        })
    }

    /// Waits until the run is finished, checking the database (other processes may run it).
    pub async fn wait(&self, id: RunId, timeout: Duration) -> Result<RunInfo> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.subscribe();
        loop {
            let info = self.run_info(id)?;
            if info.state.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(info);
            }
            let poll = tokio::time::sleep(self.inner.config.poll_interval);
            tokio::select! {
                _ = events.recv() => {}
                () = poll => {}
            }
        }
    }

    /// Creates or updates a schedule. Its pause state survives updates; a changed cadence
    /// starts counting from now.
    pub fn put_schedule(&self, schedule: &Schedule) -> Result<()> {
        let compiled =
            Compiled::new(&schedule.cadence).map_err(|reason| Error::InvalidSchedule {
                name: schedule.name.clone(),
                reason,
            })?;
        let spec = StoredSpec::of(schedule);
        let spec_json = serde_json::to_string(&spec)?;
        let input = serde_json::to_string(&schedule.input)?;
        let now = self.inner.now();
        let next = compiled.next_after(now).unwrap_or(i64::MAX);
        let fire = self.inner.jittered_fire(next, spec.jitter_ms);
        self.inner.write(|tx| {
            let old: Option<String> = tx
                .query_row(
                    "SELECT spec FROM durable_schedules WHERE name = ?1",
                    [&schedule.name],
                    |r| r.get(0),
                )
                .optional()?;
            let old_cadence = old
                .and_then(|s| serde_json::from_str::<StoredSpec>(&s).ok())
                .map(|s| s.cadence);
            if old_cadence.as_ref() == Some(&spec.cadence) {
                tx.execute(
                    "UPDATE durable_schedules SET kind = ?2, input = ?3, spec = ?4 WHERE name = ?1",
                    params![schedule.name, schedule.kind, input, spec_json],
                )?;
            } else {
                tx.execute(
                    "INSERT INTO durable_schedules (name, kind, input, spec, next_slot_at, fire_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,
                     input = excluded.input, spec = excluded.spec,
                     next_slot_at = excluded.next_slot_at, fire_at = excluded.fire_at",
                    params![schedule.name, schedule.kind, input, spec_json, next, fire],
                )?;
            }
            Ok(())
        })?;
        self.inner.emit(Event::Schedule {
            name: schedule.name.clone(),
            change: "updated".into(),
        });
        self.inner.wake.notify_one();
        Ok(())
    }

    pub fn remove_schedule(&self, name: &str) -> Result<()> {
        let n = self.inner.write(|tx| {
            tx.execute(
                "DELETE FROM durable_schedule_skips WHERE schedule = ?1",
                [name],
            )?;
            Ok(tx.execute("DELETE FROM durable_schedules WHERE name = ?1", [name])?)
        })?;
        if n == 0 {
            return Err(Error::ScheduleNotFound(name.to_owned()));
        }
        Ok(())
    }

    pub fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        self.inner.read(schedules)
    }

    pub fn pause_schedule(&self, name: &str) -> Result<()> {
        self.set_schedule(name, "paused", |tx, _| {
            Ok(tx.execute(
                "UPDATE durable_schedules SET paused = 1 WHERE name = ?1",
                [name],
            )?)
        })
    }

    /// Resumes a paused schedule, or one waiting for attention. Slots missed while paused are
    /// not caught up: the next slot counts from now.
    pub fn resume_schedule(&self, name: &str) -> Result<()> {
        let now = self.inner.now();
        self.set_schedule(name, "resumed", |tx, inner| {
            let spec: Option<String> = tx
                .query_row(
                    "SELECT spec FROM durable_schedules WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(spec) = spec else { return Ok(0) };
            let spec: StoredSpec = serde_json::from_str(&spec)?;
            let compiled = Compiled::new(&spec.cadence).map_err(Error::Corrupt)?;
            let next = compiled.next_after(now).unwrap_or(i64::MAX);
            let fire = inner.jittered_fire(next, spec.jitter_ms);
            Ok(tx.execute(
                "UPDATE durable_schedules SET paused = 0, attention = NULL,
                 next_slot_at = ?2, fire_at = ?3 WHERE name = ?1",
                params![name, next, fire],
            )?)
        })
    }

    fn set_schedule(
        &self,
        name: &str,
        change: &str,
        f: impl FnOnce(&Transaction, &Inner) -> Result<usize>,
    ) -> Result<()> {
        let inner = &self.inner;
        let n = inner.write(|tx| f(tx, inner))?;
        if n == 0 {
            return Err(Error::ScheduleNotFound(name.to_owned()));
        }
        inner.emit(Event::Schedule {
            name: name.to_owned(),
            change: change.to_owned(),
        });
        inner.wake.notify_one();
        Ok(())
    }

    /// The open run of the job named `name`: a schedule's, or one started by hand under the
    /// schedule's name (see [`Engine::start`]).
    pub fn open_run_of(&self, name: &str) -> Result<Option<RunId>> {
        self.inner.read(|c| open_run_of_schedule(c, name))
    }

    /// "Sync now": starts a run of the schedule at once, paused or not. If one is already
    /// open, returns it.
    pub fn trigger_schedule(&self, name: &str) -> Result<RunId> {
        let now = self.inner.now();
        let (id, kind, created) = self.inner.write(|tx| {
            let row: Option<(String, String, String)> = tx
                .query_row(
                    "SELECT kind, input, spec FROM durable_schedules WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let (kind, input, spec) =
                row.ok_or_else(|| Error::ScheduleNotFound(name.to_owned()))?;
            let spec: StoredSpec = serde_json::from_str(&spec)?;
            if let Some(open) = open_run_of_schedule(tx, name)? {
                return Ok((open, kind, false));
            }
            let input: Value = serde_json::from_str(&input)?;
            let slot = ScheduledRun {
                schedule: name,
                kind: &kind,
                input: &input,
                group: spec.group.as_deref(),
            };
            let key = format!("schedule:{name}:manual:{now}");
            let (id, created) = slot.start(tx, &self.inner, &key, now)?;
            Ok((id, kind, created))
        })?;
        if created {
            self.inner
                .emit_run(id, &kind, RunState::Pending, None, None);
            self.inner.wake.notify_one();
        }
        Ok(id)
    }

    /// Runs a worker could claim now: due pending or sleeping runs, and running runs whose
    /// lease has expired (their worker died).
    pub fn due_runs(&self) -> Result<u64> {
        let now = self.inner.now();
        let n: i64 = self.inner.read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT COUNT(*) FROM durable_runs
                         WHERE state IN ('pending', 'sleeping') AND next_at <= ?1)
                      + (SELECT COUNT(*) FROM durable_runs
                         WHERE state = 'running' AND lease_until < ?1)",
                [now],
                |r| r.get(0),
            )?)
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Workers whose heartbeat is recent, in any process on this database.
    pub fn live_workers(&self) -> Result<Vec<WorkerInfo>> {
        let since = self.inner.now() - duration_ms(self.inner.config.heartbeat_timeout);
        self.inner.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, pid, label, started_at, heartbeat_at FROM durable_workers
                 WHERE heartbeat_at >= ?1 ORDER BY started_at",
            )?;
            let rows = stmt.query_map([since], |r| {
                Ok(WorkerInfo {
                    id: r.get(0)?,
                    pid: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    label: r.get(2)?,
                    started_at_ms: r.get(3)?,
                    heartbeat_at_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Counts per state, live workers and schedules.
    pub fn summary(&self) -> Result<Summary> {
        let counts = self.inner.read(|c| {
            let mut stmt = c.prepare("SELECT state, COUNT(*) FROM durable_runs GROUP BY state")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut counts: HashMap<String, i64> = HashMap::new();
            for row in rows {
                let (s, n) = row?;
                counts.insert(s, n);
            }
            Ok(counts)
        })?;
        let runs = RunState::ALL
            .into_iter()
            .map(|s| {
                let n = counts.get(s.as_str()).copied().unwrap_or(0);
                (s, u64::try_from(n).unwrap_or(0))
            })
            .collect();
        Ok(Summary {
            runs,
            live_workers: self.live_workers()?,
            schedules: self.schedules()?,
        })
    }
}

/// A run to insert.
pub(crate) struct NewRun<'a> {
    pub kind: &'a str,
    pub key: &'a str,
    pub input: &'a Value,
    pub version: u32,
    pub group: Option<&'a str>,
    pub schedule: Option<&'a str>,
    pub next_at: i64,
}

/// Inserts a pending run unless one with the key is open; returns the id and whether it is new.
/// A run started by hand under a schedule's name and that schedule's runs are one job: a key
/// that names a schedule finds its open run too (see [`open_run_of_schedule`]).
pub(crate) fn insert_run(tx: &Transaction, run: &NewRun, now: i64) -> Result<(RunId, bool)> {
    let open: Option<i64> = tx
        .query_row(
            "SELECT id FROM durable_runs WHERE (idempotency_key = ?1 OR schedule = ?1)
             AND state IN ('pending', 'running', 'sleeping') LIMIT 1",
            [run.key],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = open {
        return Ok((RunId(id), false));
    }
    tx.execute(
        "INSERT INTO durable_runs (kind, idempotency_key, input, state, kind_version, group_key,
         schedule, created_at, updated_at, next_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?7, ?8)",
        params![
            run.kind,
            run.key,
            serde_json::to_string(run.input)?,
            run.version,
            run.group,
            run.schedule,
            now,
            run.next_at
        ],
    )?;
    Ok((RunId(tx.last_insert_rowid()), true))
}

/// What a schedule starts: its kind, input and group.
pub(crate) struct ScheduledRun<'a> {
    pub schedule: &'a str,
    pub kind: &'a str,
    pub input: &'a Value,
    pub group: Option<&'a str>,
}

impl ScheduledRun<'_> {
    /// Starts a run (or finds the open one with `key`) and records it as the schedule's last.
    pub fn start(
        &self,
        tx: &Transaction,
        inner: &Inner,
        key: &str,
        now: i64,
    ) -> Result<(RunId, bool)> {
        let run = NewRun {
            kind: self.kind,
            key,
            input: self.input,
            version: inner.kind(self.kind).map_or(0, |k| k.version),
            group: self.group,
            schedule: Some(self.schedule),
            next_at: now,
        };
        let (id, created) = insert_run(tx, &run, now)?;
        tx.execute(
            "UPDATE durable_schedules SET last_run_id = ?2, last_fired_at = ?3 WHERE name = ?1",
            params![self.schedule, id.0, now],
        )?;
        Ok((id, created))
    }
}

/// The open run of a schedule: one it started, or one started by hand with the schedule's name
/// as its key (a person's "sync this now" beside the schedule of the same job). So a schedule
/// never starts a run beside such a run, and such a start never beside the schedule's.
pub(crate) fn open_run_of_schedule(c: &Connection, name: &str) -> Result<Option<RunId>> {
    Ok(c.query_row(
        "SELECT id FROM durable_runs WHERE (schedule = ?1 OR idempotency_key = ?1)
         AND state IN ('pending', 'running', 'sleeping') LIMIT 1",
        [name],
        |r| r.get(0).map(RunId),
    )
    .optional()?)
}

const RUN_COLUMNS: &str = "id, kind, idempotency_key, state, attempts, group_key, schedule,
    created_at, started_at, finished_at, next_at, error, error_class, cancel_requested";

/// A run row before its text columns are checked.
struct RawRun {
    info: RunInfo,
    state: String,
    class: Option<String>,
}

impl RawRun {
    fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Self> {
        Ok(Self {
            state: r.get(3)?,
            class: r.get(12)?,
            info: RunInfo {
                id: RunId(r.get(0)?),
                kind: r.get(1)?,
                idempotency_key: r.get(2)?,
                state: RunState::Pending,
                attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                group: r.get(5)?,
                schedule: r.get(6)?,
                created_at_ms: r.get(7)?,
                started_at_ms: r.get(8)?,
                finished_at_ms: r.get(9)?,
                next_at_ms: r.get(10)?,
                error: r.get(11)?,
                error_class: None,
                cancel_requested: r.get::<_, i64>(13)? != 0,
            },
        })
    }

    fn into_info(mut self) -> Result<RunInfo> {
        self.info.state = RunState::parse(&self.state)
            .ok_or_else(|| Error::Corrupt(format!("run state {:?}", self.state)))?;
        self.info.error_class = self.class.as_deref().and_then(ErrorClass::parse);
        Ok(self.info)
    }
}

pub(crate) fn run_info(c: &Connection, id: RunId) -> Result<Option<RunInfo>> {
    c.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM durable_runs WHERE id = ?1"),
        [id.0],
        RawRun::from_row,
    )
    .optional()?
    .map(RawRun::into_info)
    .transpose()
}

fn schedules(c: &mut Connection) -> Result<Vec<ScheduleInfo>> {
    let mut stmt = c.prepare(
        "SELECT name, kind, input, spec, paused, attention, next_slot_at, fire_at,
         last_fired_at, last_run_id FROM durable_schedules ORDER BY name",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ),
                r.get::<_, i64>(4)? != 0,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, Option<i64>>(9)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut skips = c.prepare(
        "SELECT slot_at, reason FROM durable_schedule_skips WHERE schedule = ?1
         ORDER BY slot_at DESC LIMIT ?2",
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for ((name, kind, input, spec), paused, attention, next_slot, fire, last_fired, last_run) in
        rows
    {
        let spec: StoredSpec = serde_json::from_str(&spec)?;
        let recent_skips = skips
            .query_map(params![name, SKIPS_SHOWN_MAX as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(ScheduleInfo {
            schedule: Schedule {
                name,
                kind,
                input: serde_json::from_str(&input)?,
                cadence: spec.cadence,
                jitter: Duration::from_millis(u64::try_from(spec.jitter_ms).unwrap_or(0)),
                overlap: spec.overlap,
                catchup_window: Duration::from_millis(
                    u64::try_from(spec.catchup_window_ms).unwrap_or(0),
                ),
                group: spec.group,
            },
            paused,
            attention,
            next_slot_at_ms: next_slot,
            next_fire_at_ms: fire,
            last_fired_at_ms: last_fired,
            last_run: last_run.map(RunId),
            recent_skips,
        });
    }
    Ok(out)
}

impl Inner {
    pub fn now(&self) -> i64 {
        self.config.clock.now_ms()
    }

    pub fn kind(&self, name: &str) -> Option<Arc<Workflow>> {
        self.kinds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub fn kind_names(&self) -> Vec<String> {
        self.kinds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    pub fn flags(&self, id: RunId) -> Option<Arc<RunFlags>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// The runs this process executes now, with their flags.
    pub fn running_now(&self) -> Vec<(RunId, Arc<RunFlags>)> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, f)| (*id, Arc::clone(f)))
            .collect()
    }

    pub fn with_rng<R>(&self, f: impl FnOnce(&mut StdRng) -> R) -> R {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut rng)
    }

    /// When the slot at `slot` should fire: up to `jitter_ms` later.
    pub fn jittered_fire(&self, slot: i64, jitter_ms: i64) -> i64 {
        if jitter_ms <= 0 || slot == i64::MAX {
            return slot;
        }
        slot.saturating_add(self.with_rng(|r| r.random_range(0..=jitter_ms)))
    }

    /// Runs `f` on a pooled connection (opening one if all are in use).
    pub fn with_conn<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R>) -> Result<R> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.db.connect()?,
        };
        let out = f(&mut conn);
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < POOL_SIZE_MAX {
            pool.push(conn);
        }
        out
    }

    pub fn read<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R>) -> Result<R> {
        self.with_conn(f)
    }

    /// One `BEGIN IMMEDIATE` transaction: committed if `f` succeeds, rolled back otherwise.
    pub fn write<R>(&self, f: impl FnOnce(&Transaction) -> Result<R>) -> Result<R> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    pub fn emit(&self, event: Event) {
        // No subscriber is fine: events are a convenience for a live UI.
        let _ = self.events.send(event);
    }

    pub fn emit_run(
        &self,
        id: RunId,
        kind: &str,
        state: RunState,
        error: Option<String>,
        next_at_ms: Option<i64>,
    ) {
        self.emit(Event::Run {
            id,
            kind: kind.to_owned(),
            state,
            error,
            next_at_ms,
        });
    }
}

/// Runs database work from async code. On a multi-threaded runtime the thread is marked as
/// blocking so other tasks move away while it waits for a lock; handing each commit to a
/// separate blocking thread instead costs more than the commit itself under
/// `synchronous=NORMAL`. A single-threaded runtime runs it in place.
pub(crate) async fn blocking<R>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<R>,
) -> Result<R> {
    in_place(|| f(inner))
}

pub(crate) fn in_place<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
