//! Concord's domain, shared by the `concord` command and the desktop app: where the data
//! lives, the database both open, and what the person is told about the state of things.
//!
//! The two faces (`crates/cli`, `src-tauri`) are thin: everything they show or do goes
//! through [`Concord`].

pub mod dav;
pub mod feeds;
pub mod ops;
pub mod paths;
pub mod secrets;
pub mod status;
pub mod sync;

mod error;
mod schema;

use std::path::{Path, PathBuf};

use concord_durable::{Database, Engine, EngineConfig};

pub use error::CoreError;
pub use ops::OpError;
pub use status::{Health, HealthState, JobCounts, Status, StatusPage, StatusState, SubjectKind};

/// At most this many runs waiting for a retry are woken by one "Sync now" per kind.
const SYNC_NOW_WAKE_MAX: usize = 1000;

/// What "Sync now" started, for the faces to say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncNow {
    /// The pairs, "all collections" mappings and "feeds" now syncing.
    pub started: Vec<String>,
    /// Syncing is paused: these run once because the person asked; it stays paused.
    pub while_paused: bool,
    /// No process runs the scheduler: the runs start with the tray app or `concord daemon`.
    pub waiting_for_scheduler: bool,
}

/// Makes a run waiting for its retry (or a later start) due now.
pub(crate) fn wake(
    engine: &Engine,
    id: concord_durable::RunId,
    now_ms: i64,
) -> Result<(), concord_durable::Error> {
    let run = engine.run_info(id)?;
    let waiting = matches!(
        run.state,
        concord_durable::RunState::Sleeping | concord_durable::RunState::Pending
    ) && run.next_at_ms.is_some_and(|at| at > now_ms);
    if waiting {
        engine.retry(id)?;
    }
    Ok(())
}

/// A schedule's name as the person knows what it syncs: the pair's or mapping's name.
fn subject_of(schedule: &str) -> String {
    if schedule == feeds::workflow::SCHEDULE_NAME {
        return "feeds".to_owned();
    }
    synced_by(schedule).unwrap_or(schedule).to_owned()
}

/// The workflows that sync pairs: one pair's, and an "all collections" mapping's.
const SYNC_KINDS: [&str; 2] = [
    sync::run::SYNC_WORKFLOW,
    sync::accounts::mapping::MAPPING_WORKFLOW,
];

/// What a pair's or mapping's schedule syncs (its name after the kind); None for others.
fn synced_by(schedule: &str) -> Option<&str> {
    SYNC_KINDS
        .iter()
        .find_map(|kind| schedule.strip_prefix(kind)?.strip_prefix(':'))
}

fn is_sync_schedule(schedule: &str) -> bool {
    synced_by(schedule).is_some()
}

/// The file name of the database inside the data directory.
pub const DATABASE_FILE: &str = "concord.db";

/// One opened Concord data directory, with the job engine on its database. Cheap to clone and
/// share between threads: calls open their own connections, so the tray app, `concord daemon`
/// and a one-off command can all hold one at once.
#[derive(Clone)]
pub struct Concord {
    data_dir: PathBuf,
    engine: Engine,
    /// Held by a feed refresh this process runs (`Concord::refresh_feeds`): one at a time.
    feeds_refreshing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Concord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Concord")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Concord {
    /// Opens (creating if needed) the database in `data_dir` and brings its schema up to date,
    /// for a one-off command.
    pub fn open(data_dir: &Path) -> Result<Self, CoreError> {
        Self::open_as(data_dir, "cli")
    }

    /// Like [`Concord::open`], naming the kind of process ("daemon", "app", "cli") in the list
    /// of workers when it runs the scheduler.
    pub fn open_as(data_dir: &Path, worker_label: &str) -> Result<Self, CoreError> {
        let db = Database::open(data_dir.join(DATABASE_FILE))?;
        let mut conn = db.connect()?;
        db.migrate(&mut conn, schema::COMPONENT, schema::MIGRATIONS)?;
        let config = EngineConfig {
            worker_label: worker_label.to_owned(),
            ..EngineConfig::default()
        };
        let engine = Engine::new(db, config)?;
        feeds::workflow::register(&engine);
        let concord = Self {
            data_dir: data_dir.to_path_buf(),
            engine,
            feeds_refreshing: std::sync::Arc::default(),
        };
        // Every process that runs the scheduler can run any pair's sync; passwords are read
        // from the Secret Service only when a run needs one.
        let credentials = std::sync::Arc::new(sync::storage::SystemKeyring);
        let sync_pair = sync::run::workflow(concord.clone(), credentials.clone());
        concord.engine.register(sync_pair);
        let collections = sync::accounts::mapping::workflow(concord.clone(), credentials.clone());
        concord.engine.register(collections);
        let resolve = sync::resolve::conflicts::workflow(concord.clone(), credentials.clone());
        concord.engine.register(resolve);
        let merge = sync::resolve::duplicates::workflow(concord.clone(), credentials);
        concord.engine.register(merge);
        Ok(concord)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn database_path(&self) -> &Path {
        self.engine.database().path()
    }

    pub fn database(&self) -> &Database {
        self.engine.database()
    }

    /// The job engine: runs, schedules, workers (`concord jobs`, the Activity page).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs the background scheduler until `shutdown` completes: claims due runs and fires
    /// schedules, together with any other process on the same database. Fails only when the
    /// database does (it is gone, full, or refuses the engine's settings).
    pub async fn run_scheduler(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), CoreError> {
        Ok(self.engine.run(shutdown).await?)
    }

    /// Whether background syncing is paused by the person.
    pub fn paused(&self) -> Result<bool, CoreError> {
        let conn = self.database().connect()?;
        Ok(schema::setting(&conn, schema::PAUSED)?.as_deref() == Some("1"))
    }

    /// Pauses or resumes every schedule. Pausing remembers which schedules it paused, so
    /// resuming leaves alone those the person paused one by one or that wait for attention.
    pub fn set_paused(&self, paused: bool) -> Result<(), CoreError> {
        let conn = self.database().connect()?;
        if paused == self.paused()? {
            return Ok(());
        }
        if paused {
            let mut names = Vec::new();
            for info in self.engine.schedules()? {
                if !info.paused {
                    self.engine.pause_schedule(&info.schedule.name)?;
                    names.push(info.schedule.name);
                }
            }
            let names = serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned());
            schema::set_setting(&conn, schema::PAUSED_SCHEDULES, &names)?;
            // Paused means nothing syncs on its own: retries waiting for their time stop too
            // (the failure they retry stays in the status; Resume syncs again at once).
            for run in self.waiting_sync_runs()? {
                self.engine.cancel(run.id)?;
            }
        } else {
            let names = schema::setting(&conn, schema::PAUSED_SCHEDULES)?.unwrap_or_default();
            let names: Vec<String> = serde_json::from_str(&names).unwrap_or_default();
            let existing: Vec<String> = self
                .engine
                .schedules()?
                .into_iter()
                .map(|info| info.schedule.name)
                .collect();
            for name in names.iter().filter(|n| existing.contains(n)) {
                self.engine.resume_schedule(name)?;
                // What was held while paused (a retry, a slot) syncs now, once.
                if is_sync_schedule(name) {
                    self.engine.trigger_schedule(name)?;
                }
            }
            schema::set_setting(&conn, schema::PAUSED_SCHEDULES, "[]")?;
        }
        schema::set_setting(&conn, schema::PAUSED, if paused { "1" } else { "0" })?;
        tracing::info!(paused, "syncing paused state changed");
        Ok(())
    }

    /// "Sync now", the person's explicit request: every pair, "all collections" mapping and
    /// the feeds sync at once, also while syncing is paused (the schedules stay paused) and
    /// also those waiting for a retry or for the person (a run that succeeds clears that).
    pub fn sync_now(&self) -> Result<SyncNow, CoreError> {
        let now = sync::state::now_ms();
        let mut started = Vec::new();
        for info in self.engine.schedules()? {
            let id = self.engine.trigger_schedule(&info.schedule.name)?;
            wake(&self.engine, id, now)?;
            started.push(subject_of(&info.schedule.name));
        }
        // Runs started by name (`concord sync`, a mapping's pairs) that wait for a retry.
        for run in self.waiting_sync_runs()? {
            wake(&self.engine, run.id, now)?;
        }
        let paused = self.paused()?;
        let scheduler_running = self.scheduler_running()?;
        tracing::info!(started = started.len(), paused, "sync requested");
        Ok(SyncNow {
            started,
            while_paused: paused,
            waiting_for_scheduler: !scheduler_running,
        })
    }

    /// The pairs' and mappings' runs that wait for a retry.
    fn waiting_sync_runs(&self) -> Result<Vec<concord_durable::RunInfo>, CoreError> {
        let mut waiting = Vec::new();
        for kind in SYNC_KINDS {
            waiting.extend(self.engine.runs(&concord_durable::RunFilter {
                state: Some(concord_durable::RunState::Sleeping),
                kind: Some(kind.to_owned()),
                limit: SYNC_NOW_WAKE_MAX,
            })?);
        }
        Ok(waiting)
    }

    /// Whether some process runs the scheduler on this database now (the tray app, `concord
    /// daemon`): a run queued now starts within a second.
    pub fn scheduler_running(&self) -> Result<bool, CoreError> {
        Ok(!self.engine.live_workers()?.is_empty())
    }

    /// What runs and what is configured, in the person's words (see [`status`]).
    pub fn status(&self) -> Result<Status, CoreError> {
        let conn = self.database().connect()?;
        status::read(&conn, &self.engine)
    }
}
