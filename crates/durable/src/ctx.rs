//! The context a workflow handler gets: its input, and checkpointed steps. A completed step's
//! result is stored; on replay it is returned without running again. Steps are matched by
//! position and name, so a changed step list is caught instead of replayed wrongly.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::engine::{Error, Inner, RunFlags, Workflow};
use crate::model::{Event, RunId};
use crate::retry::{ErrorClass, RetryPolicy, StepError};

/// Options of one step; unset fields take the workflow kind's defaults.
#[derive(Debug, Clone, Default)]
pub struct StepOptions {
    pub retry: Option<RetryPolicy>,
    /// Start-to-close limit of one attempt of the step.
    pub timeout: Option<Duration>,
    /// The step must call [`Ctx::heartbeat`] at least this often or it is abandoned.
    pub heartbeat_timeout: Option<Duration>,
}

/// Why a run stopped other than by its own result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Interrupt {
    Cancelled,
    /// Another worker holds the lease now; this one must write nothing more.
    Lost,
    Shutdown,
    Incompatible(String),
}

pub(crate) struct StoredStep {
    pub name: String,
    pub result: Option<String>,
}

pub(crate) struct FailedStep {
    pub seq: i64,
    pub name: String,
    pub policy: RetryPolicy,
}

pub(crate) struct CtxState {
    next_seq: i64,
    stored: HashMap<i64, StoredStep>,
    names: HashSet<String>,
    pub failed: Option<FailedStep>,
    pub interrupt: Option<Interrupt>,
    beat: Instant,
}

pub(crate) struct RunShared {
    pub id: RunId,
    pub kind: Arc<Workflow>,
    pub input: Value,
    pub attempt: u32,
    pub flags: Arc<RunFlags>,
    pub state: Mutex<CtxState>,
}

/// A run's view of the engine, given to its workflow handler. Cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<Inner>,
    pub(crate) run: Arc<RunShared>,
}

enum Begin<T> {
    Replayed(T),
    Fresh(i64),
}

impl Ctx {
    pub(crate) fn new(
        inner: Arc<Inner>,
        id: RunId,
        kind: Arc<Workflow>,
        input: Value,
        attempt: u32,
        flags: Arc<RunFlags>,
        stored: HashMap<i64, StoredStep>,
    ) -> Self {
        Self {
            inner,
            run: Arc::new(RunShared {
                id,
                kind,
                input,
                attempt,
                flags,
                state: Mutex::new(CtxState {
                    next_seq: 0,
                    stored,
                    names: HashSet::new(),
                    failed: None,
                    interrupt: None,
                    beat: Instant::now(),
                }),
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, CtxState> {
        self.run
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn run_id(&self) -> RunId {
        self.run.id
    }

    /// 1 for the first attempt of the run, counting every worker that held it.
    pub fn attempt(&self) -> u32 {
        self.run.attempt
    }

    pub fn input(&self) -> &Value {
        &self.run.input
    }

    /// The input as a type; a mismatch is a permanent error (retrying cannot fix it).
    pub fn input_as<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        serde_json::from_value(self.run.input.clone())
            .map_err(|e| StepError::permanent(format!("the run's input is not valid: {e}")))
    }

    /// Proof of progress for steps with a heartbeat timeout.
    pub fn heartbeat(&self) {
        self.state().beat = Instant::now();
    }

    /// Whether a cancel was requested; the run stops at its next step boundary anyway.
    pub fn is_cancelled(&self) -> bool {
        self.run.flags.cancel.load(Ordering::SeqCst)
    }

    /// Runs `f` once: its result is checkpointed, and returned from the store on replay.
    pub async fn step<T, F, Fut>(&self, name: &str, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        self.step_with(name, &StepOptions::default(), f).await
    }

    pub async fn step_with<T, F, Fut>(
        &self,
        name: &str,
        options: &StepOptions,
        f: F,
    ) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let seq = match self.begin(name)? {
            Begin::Replayed(v) => return Ok(v),
            Begin::Fresh(seq) => seq,
        };
        let result = self.limited(name, options, f()).await;
        let value = match result {
            Ok(v) => v,
            Err(e) => return Err(self.failed(seq, name, options, e)),
        };
        let json = serde_json::to_string(&value)
            .map_err(|e| self.failed(seq, name, options, unserializable(name, &e)))?;
        let name_owned = name.to_owned();
        self.commit(seq, name, move |tx, inner, id| {
            checkpoint(tx, inner, id, seq, &name_owned, &json)
        })
        .await?;
        Ok(value)
    }

    /// A step whose effect is a write to this database: `f` runs inside the transaction that
    /// also stores the checkpoint, so effect and checkpoint commit together or not at all.
    pub async fn tx_step<T, F>(&self, name: &str, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(&Transaction) -> Result<T, StepError> + Send + 'static,
    {
        self.tx_step_with(name, &StepOptions::default(), f).await
    }

    pub async fn tx_step_with<T, F>(
        &self,
        name: &str,
        options: &StepOptions,
        f: F,
    ) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(&Transaction) -> Result<T, StepError> + Send + 'static,
    {
        let seq = match self.begin(name)? {
            Begin::Replayed(v) => return Ok(v),
            Begin::Fresh(seq) => seq,
        };
        let name_owned = name.to_owned();
        let outcome = self
            .commit(seq, name, move |tx, inner, id| {
                let value = match f(tx) {
                    Ok(v) => v,
                    // The step's own error rolls its effect back; it is retried by policy.
                    Err(e) => return Ok(Err(e)),
                };
                let json = match serde_json::to_string(&value) {
                    Ok(j) => j,
                    Err(e) => return Ok(Err(unserializable(&name_owned, &e))),
                };
                checkpoint(tx, inner, id, seq, &name_owned, &json)?;
                Ok(Ok(value))
            })
            .await?;
        outcome.map_err(|e| self.failed(seq, name, options, e))
    }

    /// The step boundary: stop if asked to, replay if done, else hand out a position.
    fn begin<T: DeserializeOwned>(&self, name: &str) -> Result<Begin<T>, StepError> {
        let flags = &self.run.flags;
        if flags.lost.load(Ordering::SeqCst) {
            return Err(self.interrupt(Interrupt::Lost));
        }
        if flags.cancel.load(Ordering::SeqCst) {
            return Err(self.interrupt(Interrupt::Cancelled));
        }
        if flags.shutdown.load(Ordering::SeqCst) {
            return Err(self.interrupt(Interrupt::Shutdown));
        }
        let mut st = self.state();
        if !st.names.insert(name.to_owned()) {
            return Err(StepError::permanent(format!(
                "the workflow {} calls step {name:?} twice; step names must be unique in a run",
                self.run.kind.name
            )));
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.beat = Instant::now();
        let Some(stored) = st.stored.get(&seq) else {
            return Ok(Begin::Fresh(seq));
        };
        if stored.name != name {
            let msg = format!(
                "incompatible step list: step {} of this run was {:?} when it was started, \
                 the {} workflow now calls {name:?}; the run is restarted from the beginning",
                seq + 1,
                stored.name,
                self.run.kind.name
            );
            drop(st);
            return Err(self.interrupt(Interrupt::Incompatible(msg)));
        }
        let Some(result) = stored.result.as_deref() else {
            return Ok(Begin::Fresh(seq));
        };
        match serde_json::from_str(result) {
            Ok(v) => Ok(Begin::Replayed(v)),
            Err(e) => {
                let msg = format!(
                    "incompatible step list: the stored result of step {name:?} no longer \
                     reads as what the code expects ({e}); the run is restarted"
                );
                drop(st);
                Err(self.interrupt(Interrupt::Incompatible(msg)))
            }
        }
    }

    fn interrupt(&self, why: Interrupt) -> StepError {
        let msg = match &why {
            Interrupt::Cancelled => "cancelled".to_owned(),
            Interrupt::Lost => "another worker took this run over".to_owned(),
            Interrupt::Shutdown => "the worker is shutting down".to_owned(),
            Interrupt::Incompatible(m) => m.clone(),
        };
        self.state().interrupt = Some(why);
        StepError::new(ErrorClass::Permanent, msg).with_kind("interrupted")
    }

    fn failed(&self, seq: i64, name: &str, options: &StepOptions, e: StepError) -> StepError {
        let policy = options
            .retry
            .clone()
            .unwrap_or_else(|| self.run.kind.retry.clone());
        self.state().failed = Some(FailedStep {
            seq,
            name: name.to_owned(),
            policy,
        });
        e
    }

    /// Applies the step's timeout and heartbeat timeout to its future.
    async fn limited<T>(
        &self,
        name: &str,
        options: &StepOptions,
        fut: impl Future<Output = Result<T, StepError>>,
    ) -> Result<T, StepError> {
        let watched = async {
            let Some(hb) = options.heartbeat_timeout else {
                return fut.await;
            };
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => return r,
                    () = tokio::time::sleep(hb / 4) => {
                        if self.state().beat.elapsed() > hb {
                            return Err(StepError::transient(format!(
                                "step {name:?} sent no heartbeat for {hb:?}"
                            ))
                            .with_kind("heartbeat_timeout"));
                        }
                    }
                }
            }
        };
        match options.timeout {
            None => watched.await,
            Some(t) => tokio::time::timeout(t, watched).await.unwrap_or_else(|_| {
                Err(
                    StepError::transient(format!("step {name:?} timed out after {t:?}"))
                        .with_kind("timeout"),
                )
            }),
        }
    }

    /// One write transaction under this worker's lease: `f` runs only while the lease holds,
    /// else the run is marked lost and nothing is written.
    async fn commit<R: Send + 'static>(
        &self,
        seq: i64,
        name: &str,
        f: impl FnOnce(&Transaction, &Inner, RunId) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, StepError> {
        let id = self.run.id;
        let inner = &self.inner;
        let result = crate::engine::in_place(|| {
            inner.with_conn(|c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let Some(cancel) = fence(&tx, inner, id)? else {
                    return Ok(None);
                };
                let out = f(&tx, inner, id)?;
                tx.commit()?;
                Ok(Some((cancel, out)))
            })
        });
        match result {
            Ok(Some((cancel, out))) => {
                if cancel {
                    self.run.flags.cancel.store(true, Ordering::SeqCst);
                }
                self.inner.emit(Event::StepCompleted {
                    run: id,
                    name: name.to_owned(),
                });
                Ok(out)
            }
            Ok(None) => {
                self.run.flags.lost.store(true, Ordering::SeqCst);
                Err(self.interrupt(Interrupt::Lost))
            }
            Err(e) => {
                let err = StepError::transient(format!("could not save step {name:?}: {e}"))
                    .with_kind("database");
                let options = StepOptions::default();
                Err(self.failed(seq, name, &options, err))
            }
        }
    }
}

fn unserializable(name: &str, e: &serde_json::Error) -> StepError {
    StepError::permanent(format!("the result of step {name:?} cannot be stored: {e}"))
}

/// Checks that this worker still holds the run's lease; returns whether a cancel is pending.
/// Called inside a `BEGIN IMMEDIATE` transaction: holding the write lock, a read is enough,
/// and writing nothing to the run's row keeps a checkpoint to one page.
pub(crate) fn fence(tx: &Transaction, inner: &Inner, id: RunId) -> Result<Option<bool>, Error> {
    Ok(tx
        .prepare_cached(
            "SELECT cancel_requested FROM durable_runs
             WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
        )?
        .query_row(params![id.0, inner.worker_id], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|c| c != 0))
}

fn checkpoint(
    tx: &Transaction,
    inner: &Inner,
    id: RunId,
    seq: i64,
    name: &str,
    json: &str,
) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO durable_steps (run_id, seq, name, attempts, result, completed_at)
         VALUES (?1, ?2, ?3, 1, ?4, ?5)
         ON CONFLICT (run_id, seq) DO UPDATE SET attempts = attempts + 1,
         result = excluded.result, completed_at = excluded.completed_at",
    )?
    .execute(params![id.0, seq, name, json, inner.now()])?;
    Ok(())
}
