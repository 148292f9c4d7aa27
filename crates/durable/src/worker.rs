//! The worker: claims due runs under a lease, executes them, renews leases, fires schedules,
//! takes over runs of dead workers and prunes history. Every decision is re-read from the
//! database, so several processes can share one file.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::clock::duration_ms;
use crate::ctx::{Ctx, Interrupt, StoredStep};
use crate::engine::{
    Engine, Error, Inner, NewRun, Result, RunFlags, ScheduledRun, blocking, insert_run,
    open_run_of_schedule,
};
use crate::model::{Event, RunId, RunState};
use crate::retry::{Decision, ErrorClass, StepError};
use crate::schedule::{Compiled, Overlap, StoredSpec, catch_up, skip_reason};

/// Runs claimed in one transaction at most.
const CLAIM_BATCH_MAX: usize = 64;
/// Finished runs deleted per pruning transaction, so pruning never holds the lock for long.
const PRUNE_BATCH_MAX: i64 = 5000;
/// How often workers whose process is gone are looked for.
const REAP_EVERY_MS: i64 = 1000;
/// How often history is pruned.
const PRUNE_EVERY_MS: i64 = 60_000;

/// A run this worker now holds.
struct Claimed {
    id: RunId,
    kind: String,
    key: String,
    input: Value,
    attempt: u32,
    version: u32,
    group: Option<String>,
    schedule: Option<String>,
    steps: HashMap<i64, StoredStep>,
}

/// What a maintenance pass did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub runs_started: Vec<RunId>,
    pub slots_skipped: u64,
    pub leases_released: u64,
    pub runs_pruned: u64,
}

impl Engine {
    /// The worker loop: executes runs of the registered kinds, fires schedules and renews
    /// leases until `shutdown` completes. Then running runs get `shutdown_grace` to reach a
    /// step boundary; the rest are handed back at once for another worker.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let inner = &self.inner;
        blocking(inner, register_worker).await?;
        let mut tasks: JoinSet<()> = JoinSet::new();
        let heartbeat_every = (inner.config.heartbeat_timeout / 3).max(Duration::from_millis(10));
        let mut next_heartbeat = tokio::time::Instant::now() + heartbeat_every;
        let (mut last_reap, mut last_prune) = (i64::MIN, i64::MIN);
        // A run that ends may free a slot of a schedule buffering one.
        let mut run_ended = true;
        tokio::pin!(shutdown);
        loop {
            let now = inner.now();
            // Wall-clock checks: after a suspend the monotonic timers lag, the clock does not.
            if now.saturating_sub(last_reap) >= REAP_EVERY_MS || now < last_reap {
                last_reap = now;
                logged(
                    blocking(inner, reap_dead_workers).await,
                    "take over runs of dead workers",
                );
            }
            if now.saturating_sub(last_prune) >= PRUNE_EVERY_MS || now < last_prune {
                last_prune = now;
                logged(blocking(inner, prune).await, "prune history");
            }
            let due = logged(blocking(inner, next_due).await, "look for due work");
            if due.schedules <= now || run_ended {
                run_ended = false;
                let started = blocking(inner, fire_schedules).await;
                self.emit_started(&logged(started, "fire schedules").runs_started);
            }
            let free = inner.config.max_concurrent_runs.saturating_sub(tasks.len());
            let mut claimed = 0;
            if due.runs <= now && free > 0 {
                let batch = logged(blocking(inner, move |i| claim(i, free)).await, "claim runs");
                for c in batch {
                    claimed += 1;
                    spawn_run(inner, &mut tasks, c);
                }
            }
            if tokio::time::Instant::now() >= next_heartbeat {
                next_heartbeat = tokio::time::Instant::now() + heartbeat_every;
                logged(blocking(inner, renew_leases).await, "renew leases");
            }
            if claimed > 0 && tasks.len() < inner.config.max_concurrent_runs {
                continue;
            }
            // Due but not claimable (all slots or the group are busy): wait for a run to end
            // or the next poll rather than spinning.
            let soonest = if due.runs <= now {
                due.schedules
            } else {
                due.runs.min(due.schedules)
            };
            let wait = Duration::from_millis(
                u64::try_from(soonest.saturating_sub(now).max(1)).unwrap_or(u64::MAX),
            )
            .min(inner.config.poll_interval)
            .min(next_heartbeat.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                () = &mut shutdown => break,
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => run_ended = true,
            }
        }
        self.stop(tasks).await;
        blocking(inner, |i| {
            i.write(|tx| {
                tx.execute("DELETE FROM durable_workers WHERE id = ?1", [&i.worker_id])?;
                Ok(())
            })
        })
        .await
    }

    async fn stop(&self, mut tasks: JoinSet<()>) {
        let inner = &self.inner;
        let running = inner.running_now();
        for (_, flags) in &running {
            flags.shutdown.store(true, Ordering::SeqCst);
        }
        let grace = tokio::time::sleep(inner.config.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                () = &mut grace => break,
                next = tasks.join_next() => if next.is_none() { return },
            }
        }
        // Past the grace period: stop the stragglers mid-step and hand their runs back now,
        // rather than making the next worker wait for the lease to expire.
        let stragglers: Vec<RunId> = {
            let map = inner
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            running
                .iter()
                .filter(|(id, _)| map.contains_key(id))
                .map(|(id, _)| *id)
                .collect()
        };
        for (_, flags) in &running {
            flags.lost.store(true, Ordering::SeqCst);
            abort(flags);
        }
        while tasks.join_next().await.is_some() {}
        let released = blocking(inner, move |i| {
            i.write(|tx| {
                for id in stragglers {
                    release(tx, i, id, "the worker shut down")?;
                }
                Ok(())
            })
        })
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "runs not handed back at shutdown; their leases will expire");
        }
    }

    fn emit_started(&self, ids: &[RunId]) {
        if self.inner.events.receiver_count() == 0 {
            return;
        }
        for id in ids {
            if let Ok(info) = self.run_info(*id) {
                self.inner
                    .emit_run(*id, &info.kind, info.state, None, info.next_at_ms);
            }
        }
    }

    /// One maintenance pass: fires due schedules, takes over runs of dead workers, prunes
    /// history. The worker loop calls it; tests call it after moving a manual clock.
    pub fn tick(&self) -> Result<TickReport> {
        let inner = &self.inner;
        let mut report = fire_schedules(inner)?;
        report.leases_released = reap_dead_workers(inner)?;
        report.runs_pruned = prune(inner)?;
        Ok(report)
    }

    /// Executes everything due now (by the engine's clock) until nothing is left, without
    /// registering as a worker: for simulations, benchmarks and one-off commands.
    pub async fn run_until_idle(&self) -> Result<()> {
        let inner = &self.inner;
        let mut tasks: JoinSet<()> = JoinSet::new();
        loop {
            let report = blocking(inner, fire_schedules).await?;
            self.emit_started(&report.runs_started);
            let free = inner.config.max_concurrent_runs.saturating_sub(tasks.len());
            let claimed = if free > 0 {
                blocking(inner, move |i| claim(i, free)).await?
            } else {
                Vec::new()
            };
            let none = claimed.is_empty();
            for c in claimed {
                spawn_run(inner, &mut tasks, c);
            }
            if none {
                if tasks.join_next().await.is_none() {
                    return Ok(());
                }
            } else if tasks.len() >= inner.config.max_concurrent_runs {
                tasks.join_next().await;
            }
        }
    }
}

fn abort(flags: &RunFlags) {
    if let Some(handle) = flags
        .abort
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
    {
        handle.abort();
    }
}

fn spawn_run(inner: &Arc<Inner>, tasks: &mut JoinSet<()>, c: Claimed) {
    let flags = Arc::new(RunFlags::default());
    inner
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(c.id, Arc::clone(&flags));
    let inner = Arc::clone(inner);
    tasks.spawn(async move {
        let id = c.id;
        if let Err(e) = execute(&inner, c, &flags).await {
            tracing::warn!(run = %id, error = %e, "could not record the end of a run");
        }
        inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    });
}

async fn execute(inner: &Arc<Inner>, c: Claimed, flags: &Arc<RunFlags>) -> Result<()> {
    let Some(kind) = inner.kind(&c.kind) else {
        // Claim only picks registered kinds; a kind dropped meanwhile goes back to the queue.
        return blocking(inner, move |i| {
            i.write(|tx| release(tx, i, c.id, "no handler for this kind"))
        })
        .await;
    };
    inner.emit_run(c.id, &c.kind, RunState::Running, None, None);
    let steps_done = c.steps.values().any(|s| s.result.is_some());
    let version_changed = c.version != 0 && c.version != kind.version;
    let ctx = Ctx::new(
        Arc::clone(inner),
        c.id,
        Arc::clone(&kind),
        c.input.clone(),
        c.attempt,
        Arc::clone(flags),
        c.steps,
    );
    let outcome = if version_changed && steps_done {
        let msg = format!(
            "incompatible step list: the run was started by version {} of the {} workflow, \
             this is version {}; the run is restarted from the beginning",
            c.version, kind.name, kind.version
        );
        ctx.state().interrupt = Some(Interrupt::Incompatible(msg.clone()));
        Err(StepError::permanent(msg))
    } else {
        let fut = (kind.handler)(ctx.clone());
        let timeout = kind.attempt_timeout;
        let handle = tokio::spawn(async move {
            match timeout {
                None => fut.await,
                Some(t) => tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
                    Err(
                        StepError::transient(format!("the attempt timed out after {t:?}"))
                            .with_kind("timeout"),
                    )
                }),
            }
        });
        *flags
            .abort
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle.abort_handle());
        match handle.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(StepError::permanent(format!(
                "the {} workflow panicked (a bug): {}",
                kind.name,
                panic_message(e.into_panic())
            ))),
            Err(_) => {
                // Aborted: its lease was lost or the worker is stopping.
                ctx.state().interrupt.get_or_insert(Interrupt::Lost);
                Err(StepError::permanent("aborted"))
            }
        }
    };
    let (interrupt, failed) = {
        let mut st = ctx.state();
        (st.interrupt.take(), st.failed.take())
    };
    let end = End {
        id: c.id,
        kind: c.kind,
        key: c.key,
        input: c.input,
        group: c.group,
        schedule: c.schedule,
        attempt: c.attempt,
        failed_step: failed.map(|f| (f.seq, f.name, f.policy)),
        default_policy: kind.retry.clone(),
        version: kind.version,
    };
    let events = blocking(inner, move |i| finish(i, &end, interrupt, outcome)).await?;
    for e in events {
        inner.emit(e);
    }
    Ok(())
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}

struct End {
    id: RunId,
    kind: String,
    key: String,
    input: Value,
    group: Option<String>,
    schedule: Option<String>,
    attempt: u32,
    failed_step: Option<(i64, String, crate::retry::RetryPolicy)>,
    default_policy: crate::retry::RetryPolicy,
    version: u32,
}

/// Records how an attempt ended, under the lease; returns the events to emit.
fn finish(
    inner: &Inner,
    end: &End,
    interrupt: Option<Interrupt>,
    outcome: std::result::Result<Value, StepError>,
) -> Result<Vec<Event>> {
    if interrupt == Some(Interrupt::Lost) {
        return Ok(Vec::new());
    }
    let now = inner.now();
    let id = end.id;
    let run_event = |state, error: Option<String>, next_at_ms| Event::Run {
        id,
        kind: end.kind.clone(),
        state,
        error,
        next_at_ms,
    };
    inner.write(|tx| {
        if crate::ctx::fence(tx, inner, id)?.is_none() {
            return Ok(Vec::new());
        }
        let close_attempt = |outcome: &str,
                             step: Option<&str>,
                             error: Option<&str>,
                             class: Option<ErrorClass>,
                             next: Option<i64>|
         -> Result<()> {
            tx.execute(
                "UPDATE durable_attempts SET ended_at = ?1, outcome = ?2, step = ?3, error = ?4,
                 error_class = ?5, next_retry_at = ?6
                 WHERE run_id = ?7 AND attempt = ?8 AND ended_at IS NULL",
                params![
                    now,
                    outcome,
                    step,
                    error,
                    class.map(ErrorClass::as_str),
                    next,
                    id.0,
                    end.attempt
                ],
            )?;
            Ok(())
        };
        let terminal = |state: RunState, error: Option<&str>, class: Option<ErrorClass>| {
            tx.execute(
                "UPDATE durable_runs SET state = ?1, finished_at = ?2, updated_at = ?2,
                 error = ?3, error_class = ?4, lease_owner = NULL, lease_until = NULL,
                 next_at = NULL WHERE id = ?5",
                params![
                    state.as_str(),
                    now,
                    error,
                    class.map(ErrorClass::as_str),
                    id.0
                ],
            )
        };
        match (interrupt, outcome) {
            (Some(Interrupt::Cancelled), _) => {
                close_attempt("cancelled", None, None, None, None)?;
                terminal(RunState::Cancelled, None, None)?;
                Ok(vec![run_event(RunState::Cancelled, None, None)])
            }
            (Some(Interrupt::Shutdown), _) => {
                release(tx, inner, id, "the worker shut down")?;
                Ok(vec![run_event(RunState::Pending, None, Some(now))])
            }
            (Some(Interrupt::Incompatible(msg)), _) => {
                close_attempt(
                    "failed",
                    None,
                    Some(&msg),
                    Some(ErrorClass::Permanent),
                    None,
                )?;
                terminal(RunState::Failed, Some(&msg), Some(ErrorClass::Permanent))?;
                let (new_id, _) = insert_run(
                    tx,
                    &NewRun {
                        kind: &end.kind,
                        key: &end.key,
                        input: &end.input,
                        version: end.version,
                        group: end.group.as_deref(),
                        schedule: end.schedule.as_deref(),
                        next_at: now,
                    },
                    now,
                )?;
                Ok(vec![
                    run_event(RunState::Failed, Some(msg), None),
                    Event::Run {
                        id: new_id,
                        kind: end.kind.clone(),
                        state: RunState::Pending,
                        error: None,
                        next_at_ms: Some(now),
                    },
                ])
            }
            (Some(Interrupt::Lost), _) => Ok(Vec::new()),
            (None, Ok(value)) => {
                close_attempt("completed", None, None, None, None)?;
                terminal(RunState::Completed, None, None)?;
                tx.execute(
                    "UPDATE durable_runs SET result = ?1 WHERE id = ?2",
                    params![serde_json::to_string(&value)?, id.0],
                )?;
                if let Some(s) = &end.schedule {
                    // A run that succeeds shows the problem is fixed.
                    tx.execute(
                        "UPDATE durable_schedules SET attention = NULL WHERE name = ?1",
                        [s],
                    )?;
                }
                Ok(vec![run_event(RunState::Completed, None, None)])
            }
            (None, Err(e)) => {
                let (step, policy, failures) = match &end.failed_step {
                    Some((seq, name, policy)) => {
                        tx.execute(
                            "INSERT INTO durable_steps (run_id, seq, name, attempts)
                             VALUES (?1, ?2, ?3, 1)
                             ON CONFLICT (run_id, seq) DO UPDATE SET attempts = attempts + 1",
                            params![id.0, seq, name],
                        )?;
                        let n: i64 = tx.query_row(
                            "SELECT attempts FROM durable_steps WHERE run_id = ?1 AND seq = ?2",
                            params![id.0, seq],
                            |r| r.get(0),
                        )?;
                        (
                            Some(name.as_str()),
                            policy,
                            u32::try_from(n).unwrap_or(u32::MAX),
                        )
                    }
                    // An error outside any step counts against the run's attempts.
                    None => (None, &end.default_policy, end.attempt),
                };
                let decision = inner.with_rng(|r| policy.decide(&e, failures, r));
                let msg = match step {
                    Some(s) => format!("step {s:?}: {}", e.message),
                    None => e.message.clone(),
                };
                match decision {
                    Decision::RetryAfter(delay) => {
                        let next = now + duration_ms(delay);
                        close_attempt("retry", step, Some(&msg), Some(e.class), Some(next))?;
                        tx.execute(
                            "UPDATE durable_runs SET state = 'sleeping', next_at = ?1,
                             updated_at = ?2, error = ?3, error_class = ?4, lease_owner = NULL,
                             lease_until = NULL WHERE id = ?5",
                            params![next, now, msg, e.class.as_str(), id.0],
                        )?;
                        Ok(vec![run_event(RunState::Sleeping, Some(msg), Some(next))])
                    }
                    Decision::Fail => {
                        let msg = if e.class == ErrorClass::Transient {
                            format!("{msg} (gave up after {failures} attempts)")
                        } else {
                            msg
                        };
                        close_attempt("failed", step, Some(&msg), Some(e.class), None)?;
                        terminal(RunState::Failed, Some(&msg), Some(e.class))?;
                        let mut events = vec![run_event(RunState::Failed, Some(msg.clone()), None)];
                        if let (ErrorClass::NeedsAttention, Some(s)) = (e.class, &end.schedule) {
                            tx.execute(
                                "UPDATE durable_schedules SET attention = ?2 WHERE name = ?1",
                                params![s, msg],
                            )?;
                            events.push(Event::Schedule {
                                name: s.clone(),
                                change: "needs_attention".into(),
                            });
                        }
                        Ok(events)
                    }
                }
            }
        }
    })
}

/// Hands a run this worker holds back to the queue, due now.
fn release(tx: &Transaction, inner: &Inner, id: RunId, why: &str) -> Result<()> {
    let now = inner.now();
    let n = tx.execute(
        "UPDATE durable_runs SET state = 'pending', next_at = ?1, updated_at = ?1,
         lease_owner = NULL, lease_until = NULL
         WHERE id = ?2 AND lease_owner = ?3 AND state = 'running'",
        params![now, id.0, inner.worker_id],
    )?;
    if n > 0 {
        tx.execute(
            "UPDATE durable_attempts SET ended_at = ?1, outcome = 'interrupted', error = ?2
             WHERE run_id = ?3 AND ended_at IS NULL",
            params![now, why, id.0],
        )?;
    }
    Ok(())
}

/// When the next run and the next schedule are due (`i64::MAX` when never).
struct Due {
    runs: i64,
    schedules: i64,
}

impl Default for Due {
    fn default() -> Self {
        Self {
            runs: i64::MAX,
            schedules: i64::MAX,
        }
    }
}

/// The worker loop outlives a failed pass (a lock held too long by another process, a full
/// disk): it logs, does nothing this round, and tries again at the next poll.
fn logged<T: Default>(result: Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not {what}; trying again shortly");
        T::default()
    })
}

fn next_due(inner: &Inner) -> Result<Due> {
    let kinds = serde_json::to_string(&inner.kind_names())?;
    inner.read(|c| {
        let runs: Option<i64> = c.query_row(
            "SELECT MIN(t) FROM (
                SELECT MIN(next_at) AS t FROM durable_runs
                WHERE state IN ('pending', 'sleeping')
                AND kind IN (SELECT value FROM json_each(?1))
                UNION ALL
                SELECT MIN(lease_until) FROM durable_runs WHERE state = 'running'
                AND kind IN (SELECT value FROM json_each(?1)))",
            [&kinds],
            |r| r.get(0),
        )?;
        // Buffered slots are looked at whenever a run ends, not here.
        let schedules: Option<i64> = c.query_row(
            "SELECT MIN(fire_at) FROM durable_schedules WHERE paused = 0 AND attention IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(Due {
            // An expired lease is due once it has passed, not at its last instant.
            runs: runs.map_or(i64::MAX, |t| t.saturating_add(1)),
            schedules: schedules.unwrap_or(i64::MAX),
        })
    })
}

/// Claims up to `max` due runs of registered kinds, within the group limits.
fn claim(inner: &Inner, max: usize) -> Result<Vec<Claimed>> {
    let kinds = serde_json::to_string(&inner.kind_names())?;
    let now = inner.now();
    let lease_until = now + duration_ms(inner.config.heartbeat_timeout);
    let max = max.min(CLAIM_BATCH_MAX);
    let (claimed, cancelled) = inner.write(|tx| {
        // Runs whose worker died come first: they have waited longest.
        let mut candidates: Vec<(i64, Option<String>, bool)> = Vec::new();
        for sql in [
            "SELECT id, group_key, cancel_requested FROM durable_runs
             WHERE state = 'running' AND lease_until < ?1
             AND kind IN (SELECT value FROM json_each(?2)) ORDER BY lease_until LIMIT ?3",
            "SELECT id, group_key, cancel_requested FROM durable_runs
             WHERE state IN ('pending', 'sleeping') AND next_at <= ?1
             AND kind IN (SELECT value FROM json_each(?2)) ORDER BY next_at, id LIMIT ?3",
        ] {
            let mut stmt = tx.prepare_cached(sql)?;
            let limit = i64::try_from(max * 4).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![now, kinds, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0))
            })?;
            for row in rows {
                candidates.push(row?);
            }
        }
        let mut claimed = Vec::new();
        let mut cancelled = Vec::new();
        for (id, group, cancel) in candidates {
            if claimed.len() >= max {
                break;
            }
            // A worker that died left its attempt open.
            tx.execute(
                "UPDATE durable_attempts SET ended_at = ?1, outcome = 'lost',
                 error = 'the worker holding the run stopped renewing its lease'
                 WHERE run_id = ?2 AND ended_at IS NULL",
                params![now, id],
            )?;
            if cancel {
                tx.execute(
                    "UPDATE durable_runs SET state = 'cancelled', finished_at = ?1,
                     updated_at = ?1, lease_owner = NULL, lease_until = NULL, next_at = NULL
                     WHERE id = ?2",
                    params![now, id],
                )?;
                cancelled.push(RunId(id));
                continue;
            }
            if let Some(g) = &group {
                let limit = inner
                    .config
                    .group_limits
                    .get(g)
                    .copied()
                    .unwrap_or(inner.config.default_group_limit);
                let busy: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM durable_runs WHERE state = 'running'
                     AND group_key = ?1 AND lease_until >= ?2",
                    params![g, now],
                    |r| r.get(0),
                )?;
                if usize::try_from(busy).unwrap_or(usize::MAX) >= limit {
                    continue;
                }
            }
            tx.execute(
                "UPDATE durable_runs SET state = 'running', lease_owner = ?1, lease_until = ?2,
                 attempts = attempts + 1, started_at = COALESCE(started_at, ?3),
                 updated_at = ?3, next_at = NULL WHERE id = ?4",
                params![inner.worker_id, lease_until, now, id],
            )?;
            let (kind, key, input, attempts, version, schedule): (
                String,
                String,
                String,
                i64,
                i64,
                Option<String>,
            ) = tx.query_row(
                "SELECT kind, idempotency_key, input, attempts, kind_version, schedule
                 FROM durable_runs WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )?;
            tx.execute(
                "INSERT INTO durable_attempts (run_id, attempt, worker, started_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, attempts, inner.worker_id, now],
            )?;
            let mut stmt =
                tx.prepare_cached("SELECT seq, name, result FROM durable_steps WHERE run_id = ?1")?;
            let steps = stmt
                .query_map([id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        StoredStep {
                            name: r.get(1)?,
                            result: r.get(2)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<HashMap<_, _>>>()?;
            let input = serde_json::from_str(&input)
                .map_err(|e| Error::Corrupt(format!("input of run {id}: {e}")))?;
            claimed.push(Claimed {
                id: RunId(id),
                kind,
                key,
                input,
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                version: u32::try_from(version).unwrap_or(0),
                group,
                schedule,
                steps,
            });
        }
        Ok((claimed, cancelled))
    })?;
    for id in cancelled {
        inner.emit(Event::Run {
            id,
            kind: String::new(),
            state: RunState::Cancelled,
            error: None,
            next_at_ms: None,
        });
    }
    Ok(claimed)
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn register_worker(inner: &Inner) -> Result<()> {
    let now = inner.now();
    inner.write(|tx| {
        tx.execute(
            "INSERT INTO durable_workers (id, pid, label, pid_namespace, started_at, heartbeat_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            params![
                inner.worker_id,
                std::process::id(),
                inner.config.worker_label,
                pid_namespace(),
                now
            ],
        )?;
        Ok(())
    })
}

/// Renews this worker's heartbeat and the leases of its running runs; flags runs whose lease
/// was lost (aborting them) and runs with a cancel request.
fn renew_leases(inner: &Inner) -> Result<()> {
    let now = inner.now();
    let until = now + duration_ms(inner.config.heartbeat_timeout);
    let running = inner.running_now();
    let states = inner.write(|tx| {
        let n = tx.execute(
            "UPDATE durable_workers SET heartbeat_at = ?1 WHERE id = ?2",
            params![now, inner.worker_id],
        )?;
        let mut states = Vec::with_capacity(running.len());
        for (id, _) in &running {
            let cancel: Option<i64> = tx
                .query_row(
                    "UPDATE durable_runs SET lease_until = ?1
                     WHERE id = ?2 AND lease_owner = ?3 AND state = 'running'
                     RETURNING cancel_requested",
                    params![until, id.0, inner.worker_id],
                    |r| r.get(0),
                )
                .optional()?;
            states.push(cancel);
        }
        Ok((n, states))
    });
    let (n, states) = states?;
    if n == 0 {
        // Pruned as dead while this process was suspended: register again.
        register_worker(inner)?;
    }
    for ((_, flags), state) in running.iter().zip(states) {
        match state {
            None => {
                flags.lost.store(true, Ordering::SeqCst);
                abort(flags);
            }
            Some(c) if c != 0 => flags.cancel.store(true, Ordering::SeqCst),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Releases at once the leases of workers on this machine whose process is gone, so a
/// restarted process does not wait for the lease to expire. Workers in another pid
/// namespace, or whose pid is alive, are left to lease expiry.
fn reap_dead_workers(inner: &Inner) -> Result<u64> {
    let ns = pid_namespace();
    if ns.is_empty() {
        return Ok(0);
    }
    let workers: Vec<(String, i64, String)> = inner.read(|c| {
        let mut stmt =
            c.prepare("SELECT id, pid, pid_namespace FROM durable_workers WHERE id != ?1")?;
        let rows = stmt.query_map([&inner.worker_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })?;
    let dead: Vec<String> = workers
        .into_iter()
        .filter(|(_, pid, worker_ns)| {
            *worker_ns == ns && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .map(|(id, _, _)| id)
        .collect();
    if dead.is_empty() {
        return Ok(0);
    }
    let now = inner.now();
    inner.write(|tx| {
        let mut released = 0u64;
        for id in &dead {
            let n = tx.execute(
                "UPDATE durable_runs SET lease_until = ?1 WHERE lease_owner = ?2
                 AND state = 'running'",
                params![now - 1, id],
            )?;
            released += u64::try_from(n).unwrap_or(0);
            tx.execute("DELETE FROM durable_workers WHERE id = ?1", [id])?;
        }
        Ok(released)
    })
}

fn prune(inner: &Inner) -> Result<u64> {
    let now = inner.now();
    let cutoff = now - duration_ms(inner.config.history_max_age);
    let keep = i64::try_from(inner.config.history_max_runs).unwrap_or(i64::MAX);
    let worker_cutoff = now - 10 * duration_ms(inner.config.heartbeat_timeout).max(60_000);
    inner.write(|tx| {
        let mut n = tx.execute(
            "DELETE FROM durable_runs WHERE id IN (SELECT id FROM durable_runs
             WHERE finished_at IS NOT NULL AND finished_at < ?1 LIMIT ?2)",
            params![cutoff, PRUNE_BATCH_MAX],
        )?;
        n += tx.execute(
            "DELETE FROM durable_runs WHERE id IN (SELECT id FROM durable_runs
             WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?2 OFFSET ?1)",
            params![keep, PRUNE_BATCH_MAX],
        )?;
        tx.execute(
            "DELETE FROM durable_schedule_skips WHERE recorded_at < ?1",
            [cutoff],
        )?;
        tx.execute(
            "DELETE FROM durable_schedule_skips WHERE id IN (SELECT id FROM durable_schedule_skips
             ORDER BY id DESC LIMIT ?2 OFFSET ?1)",
            params![keep, PRUNE_BATCH_MAX],
        )?;
        tx.execute(
            "DELETE FROM durable_workers WHERE heartbeat_at < ?1",
            [worker_cutoff],
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    })
}

/// Fires every due schedule.
fn fire_schedules(inner: &Inner) -> Result<TickReport> {
    let now = inner.now();
    let names: Vec<String> = inner.read(|c| {
        let mut stmt = c.prepare(
            "SELECT name FROM durable_schedules
             WHERE (paused = 0 AND attention IS NULL AND fire_at <= ?1) OR buffered = 1",
        )?;
        let rows = stmt.query_map([now], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })?;
    let mut report = TickReport::default();
    if names.is_empty() {
        return Ok(report);
    }
    // One transaction for all: each schedule is re-read inside it, so two processes never
    // fire the same slot.
    inner.write(|tx| {
        for name in &names {
            fire_schedule(tx, inner, name, now, &mut report)?;
        }
        Ok(())
    })?;
    Ok(report)
}

fn fire_schedule(
    tx: &Transaction,
    inner: &Inner,
    name: &str,
    now: i64,
    report: &mut TickReport,
) -> Result<()> {
    type Row = (String, String, String, bool, bool, i64, i64, bool);
    let row: Option<Row> = tx
        .query_row(
            "SELECT kind, input, spec, paused, attention IS NOT NULL, next_slot_at, fire_at,
             buffered FROM durable_schedules WHERE name = ?1",
            [name],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? != 0,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get::<_, i64>(7)? != 0,
                ))
            },
        )
        .optional()?;
    let Some((kind, input, spec, paused, attention, next_slot, fire_at, buffered)) = row else {
        return Ok(());
    };
    let spec: StoredSpec = serde_json::from_str(&spec)?;
    let input: Value = serde_json::from_str(&input)?;
    let mut open = open_run_of_schedule(tx, name)?;
    let slot = ScheduledRun {
        schedule: name,
        kind: &kind,
        input: &input,
        group: spec.group.as_deref(),
    };
    let start = |key: String, report: &mut TickReport| -> Result<RunId> {
        let (id, _) = slot.start(tx, inner, &key, now)?;
        report.runs_started.push(id);
        Ok(id)
    };
    if buffered && open.is_none() && !paused && !attention {
        open = Some(start(format!("schedule:{name}:buffered:{now}"), report)?);
        tx.execute(
            "UPDATE durable_schedules SET buffered = 0 WHERE name = ?1",
            [name],
        )?;
    }
    if paused || attention || fire_at > now {
        return Ok(());
    }
    let compiled = Compiled::new(&spec.cadence).map_err(Error::Corrupt)?;
    let plan = catch_up(&compiled, next_slot, now, spec.catchup_window_ms);
    let mut skips: Vec<(i64, String)> = plan
        .skipped
        .iter()
        .map(|(s, r)| (*s, (*r).to_owned()))
        .collect();
    if plan.skipped_unlisted > 0 {
        skips.push((
            next_slot,
            format!("{}:{}", skip_reason::MORE_NOT_LISTED, plan.skipped_unlisted),
        ));
    }
    if let Some(slot) = plan.fire {
        match (open, spec.overlap) {
            (None, _) => {
                start(format!("schedule:{name}:{slot}"), report)?;
            }
            (Some(_), Overlap::BufferOne) if !buffered => {
                tx.execute(
                    "UPDATE durable_schedules SET buffered = 1 WHERE name = ?1",
                    [name],
                )?;
            }
            (Some(_), _) => skips.push((slot, skip_reason::OVERLAP.to_owned())),
        }
    }
    report.slots_skipped += u64::try_from(skips.len()).unwrap_or(0);
    for (slot, reason) in &skips {
        tx.execute(
            "INSERT INTO durable_schedule_skips (schedule, slot_at, reason, recorded_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![name, slot, reason, now],
        )?;
    }
    let fire = inner.jittered_fire(plan.next_slot, spec.jitter_ms);
    tx.execute(
        "UPDATE durable_schedules SET next_slot_at = ?2, fire_at = ?3 WHERE name = ?1",
        params![name, plan.next_slot, fire],
    )?;
    Ok(())
}
