//! A durable job engine on one machine, with all state in SQLite.
//!
//! Temporal's ideas, small: workflow runs with checkpointed steps, retries, schedules and
//! leases. This crate knows nothing of calendars or feeds; `concord-core` builds on it.
//!
//! # Using it
//!
//! ```no_run
//! use concord_durable::{Database, Engine, EngineConfig, Schedule, StepError, Workflow};
//! use std::time::Duration;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(Database::open("/tmp/concord.db")?, EngineConfig::default())?;
//! engine.register(Workflow::new("greet", |ctx| async move {
//!     let name: String = ctx.input_as()?;
//!     // Runs once; after a crash its stored result is returned instead.
//!     let text = ctx.step("compose", || async { Ok::<_, StepError>(format!("hello {name}")) }).await?;
//!     // Effect and checkpoint commit in one transaction.
//!     ctx.tx_step("record", move |tx| {
//!         tx.execute("INSERT INTO greetings (text) VALUES (?1)", [&text])
//!             .map_err(|e| StepError::transient(e.to_string()))?;
//!         Ok(())
//!     }).await?;
//!     Ok(serde_json::Value::Null)
//! }));
//! engine.put_schedule(&Schedule::every("greet-often", "greet", Duration::from_secs(900), "you".into()))?;
//! let id = engine.start("greet", "greet:world", "world".into())?; // same key: same open run
//! let worker = engine.clone();
//! tokio::spawn(async move { worker.run(std::future::pending()).await });
//! let done = engine.wait(id, Duration::from_secs(10)).await?;
//! # let _ = done; Ok(()) }
//! ```
//!
//! The calls the app makes:
//! - [`Engine::new`], [`Engine::register`] a [`Workflow`] (handler, version, retry defaults),
//!   [`Engine::run`] the worker loop until a shutdown future completes.
//! - Runs: [`Engine::start`] / [`Engine::start_with`] (idempotency key: one open run per key),
//!   [`Engine::runs`], [`Engine::show`], [`Engine::cancel`], [`Engine::retry`], [`Engine::wait`].
//! - Schedules: [`Engine::put_schedule`], [`Engine::schedules`], [`Engine::pause_schedule`],
//!   [`Engine::resume_schedule`], [`Engine::trigger_schedule`], [`Engine::remove_schedule`].
//! - [`Engine::summary`] (counts per state, live workers, schedules), [`Engine::live_workers`],
//!   [`Engine::due_runs`], [`Engine::subscribe`] for live [`Event`]s of this process.
//! - A process running [`Engine::run`] registers as a worker (pid, label such as "daemon" or
//!   "app", start, heartbeat) and deregisters when it stops; an engine used only for commands
//!   (`concord jobs list`) is not a worker, so "is a daemon running?" is
//!   `live_workers()` being non-empty.
//! - Simulation: with a [`ManualClock`] in [`EngineConfig::clock`], [`Engine::tick`] fires due
//!   schedules and [`Engine::run_until_idle`] executes everything due, without timers.
//!
//! # Guarantees
//!
//! - A step's result is stored when it completes; a resumed run does not execute it again.
//!   [`Ctx::tx_step`] commits a local effect with its checkpoint, so it happens exactly once.
//!   Remote effects happen at least once and must be made idempotent by the step.
//! - Work is claimed under a lease renewed every third of `heartbeat_timeout`. Every write a
//!   worker makes for a run checks it still holds the lease, so a worker that was presumed
//!   dead cannot commit anything after another took the run over.
//! - Concurrency: `max_concurrent_runs` bounds one process; group limits (for example per
//!   server host) are counted in the database when claiming, so they hold across processes.
//! - Time is wall-clock milliseconds stored in the database, from an injectable [`Clock`]; the
//!   worker looks again at least every `poll_interval`, so a wake from suspend is noticed.

mod clock;
mod ctx;
pub mod db;
mod engine;
mod model;
mod retry;
mod schedule;
mod schema;
mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use ctx::{Ctx, StepOptions};
pub use db::{Database, DbError, Migration, Synchronous};
pub use engine::{Engine, EngineConfig, Error, StartOptions, Workflow, WorkflowFuture};
pub use model::{
    AttemptInfo, Event, RunDetail, RunFilter, RunId, RunInfo, RunState, ScheduleInfo, StepInfo,
    Summary, WorkerInfo,
};
pub use retry::{Decision, ErrorClass, RETRY_AFTER_MAX, RetryPolicy, StepError};
pub use schedule::{Cadence, Overlap, SKIPS_RECORDED_MAX, Schedule, skip_reason};
pub use schema::{COMPONENT as SCHEMA_COMPONENT, MIGRATIONS};
pub use worker::TickReport;
