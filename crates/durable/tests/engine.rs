//! Behaviour of the engine as the app sees it: runs, replay, retries, cancel, schedules after
//! a suspend, needs-attention, concurrency, lease takeover between two engines.

#![allow(clippy::unwrap_used)] // Helpers of integration tests, not only #[test] fns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concord_durable::{
    Database, Engine, EngineConfig, ErrorClass, ManualClock, Overlap, RetryPolicy, RunFilter,
    RunState, Schedule, StepError, Workflow, skip_reason,
};
use serde_json::{Value, json};

const HOUR_MS: i64 = 3_600_000;
/// 2026-03-02T00:00:00Z, a Monday.
const T0: i64 = 1_772_409_600_000;

fn setup(clock: &ManualClock) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(&dir, clock);
    (dir, engine)
}

fn engine_at(dir: &tempfile::TempDir, clock: &ManualClock) -> Engine {
    let db = Database::open(dir.path().join("c.db")).unwrap();
    Engine::new(
        db,
        EngineConfig {
            clock: Arc::new(clock.clone()),
            seed: Some(1),
            ..EngineConfig::default()
        },
    )
    .unwrap()
}

fn counted(counter: &Arc<AtomicUsize>) -> Arc<AtomicUsize> {
    Arc::clone(counter)
}

#[tokio::test]
async fn a_run_completes_and_its_key_gives_one_open_run() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    engine.register(Workflow::new("double", |ctx| async move {
        let n: i64 = ctx.input_as()?;
        let d = ctx.step("double", || async move { Ok(n * 2) }).await?;
        Ok(json!(d))
    }));
    let a = engine.start("double", "k1", json!(21)).unwrap();
    let b = engine.start("double", "k1", json!(99)).unwrap();
    assert_eq!(a, b, "a second start with an open key returns the open run");
    engine.run_until_idle().await.unwrap();
    let detail = engine.show(a).unwrap();
    assert_eq!(detail.run.state, RunState::Completed);
    assert_eq!(detail.result, Some(json!(42)));
    assert_eq!(detail.steps.len(), 1);
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(detail.attempts[0].outcome.as_deref(), Some("completed"));
    let c = engine.start("double", "k1", json!(1)).unwrap();
    assert_ne!(a, c, "a closed key may start again");
}

#[tokio::test]
async fn completed_steps_are_not_executed_again_after_a_failure() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    let first = Arc::new(AtomicUsize::new(0));
    let second = Arc::new(AtomicUsize::new(0));
    let (f, s) = (counted(&first), counted(&second));
    engine.register(
        Workflow::new("two", move |ctx| {
            let (f, s) = (counted(&f), counted(&s));
            async move {
                ctx.step(
                    "one",
                    || async move { Ok(f.fetch_add(1, Ordering::SeqCst)) },
                )
                .await?;
                ctx.step("two", || async move {
                    if s.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(StepError::transient("server busy"))
                    } else {
                        Ok(())
                    }
                })
                .await?;
                Ok(Value::Null)
            }
        })
        .retry(RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }),
    );
    let id = engine.start("two", "k", Value::Null).unwrap();
    engine.run_until_idle().await.unwrap();
    let info = engine.run_info(id).unwrap();
    assert_eq!(info.state, RunState::Sleeping);
    assert_eq!(
        info.next_at_ms,
        Some(T0 + 1000),
        "first retry after the initial interval"
    );
    assert_eq!(info.error.as_deref(), Some("step \"two\": server busy"));
    clock.advance(Duration::from_secs(1));
    engine.run_until_idle().await.unwrap();
    assert_eq!(
        engine.run_info(id).unwrap().next_at_ms,
        Some(T0 + 1000 + 2000)
    );
    clock.advance(Duration::from_secs(2));
    engine.run_until_idle().await.unwrap();
    let detail = engine.show(id).unwrap();
    assert_eq!(detail.run.state, RunState::Completed);
    assert_eq!(first.load(Ordering::SeqCst), 1, "step one ran once");
    assert_eq!(second.load(Ordering::SeqCst), 3);
    assert_eq!(detail.attempts.len(), 3);
    assert_eq!(detail.attempts[0].next_retry_at_ms, Some(T0 + 1000));
    assert_eq!(detail.steps[1].attempts, 3);
}

#[tokio::test]
async fn non_retryable_errors_make_one_attempt_and_max_attempts_ends_retries() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = counted(&calls);
    engine.register(
        Workflow::new("bad", move |ctx| {
            let c = counted(&c);
            async move {
                let kind: String = ctx.input_as()?;
                ctx.step("call", || async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(StepError::transient("nope").with_kind(kind))
                })
                .await?;
                Ok(Value::Null)
            }
        })
        .retry(RetryPolicy {
            max_attempts: 3,
            non_retryable: vec!["http_400".into()],
            ..RetryPolicy::default()
        }),
    );
    let a = engine.start("bad", "a", json!("http_400")).unwrap();
    engine.run_until_idle().await.unwrap();
    assert_eq!(engine.run_info(a).unwrap().state, RunState::Failed);
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1);
    let b = engine.start("bad", "b", json!("http_503")).unwrap();
    for _ in 0..5 {
        engine.run_until_idle().await.unwrap();
        clock.advance(Duration::from_secs(600));
    }
    let info = engine.run_info(b).unwrap();
    assert_eq!(info.state, RunState::Failed);
    assert!(info.error.unwrap().contains("gave up after 3 attempts"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retry_after_overrides_the_policy_delay() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    engine.register(Workflow::new("limited", |ctx| async move {
        ctx.step("get", || async {
            Err::<(), _>(StepError::transient("429").with_retry_after(Duration::from_secs(120)))
        })
        .await?;
        Ok(Value::Null)
    }));
    let id = engine.start("limited", "k", Value::Null).unwrap();
    engine.run_until_idle().await.unwrap();
    assert_eq!(engine.run_info(id).unwrap().next_at_ms, Some(T0 + 120_000));
}

#[tokio::test]
async fn cancel_stops_a_run_at_its_next_step_boundary() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    let after = Arc::new(AtomicUsize::new(0));
    let a = counted(&after);
    let e2 = engine.clone();
    engine.register(Workflow::new("long", move |ctx| {
        let (a, e2) = (counted(&a), e2.clone());
        async move {
            let id = ctx.run_id();
            ctx.step("first", || async move {
                e2.cancel(id)
                    .map_err(|e| StepError::permanent(e.to_string()))?;
                Ok(())
            })
            .await?;
            ctx.step(
                "second",
                || async move { Ok(a.fetch_add(1, Ordering::SeqCst)) },
            )
            .await?;
            Ok(Value::Null)
        }
    }));
    let id = engine.start("long", "k", Value::Null).unwrap();
    engine.run_until_idle().await.unwrap();
    let detail = engine.show(id).unwrap();
    assert_eq!(detail.run.state, RunState::Cancelled);
    assert_eq!(
        detail.steps.len(),
        1,
        "the step in flight completed and was kept"
    );
    assert_eq!(after.load(Ordering::SeqCst), 0);
    // A waiting run is cancelled at once, and can be retried.
    let w = engine
        .start_with(
            "long",
            "w",
            Value::Null,
            concord_durable::StartOptions {
                delay: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(engine.cancel(w).unwrap().state, RunState::Cancelled);
    assert_eq!(engine.retry(w).unwrap().state, RunState::Pending);
}

#[tokio::test]
async fn an_incompatible_step_list_fails_clearly_and_restarts() {
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let old = engine_at(&dir, &clock);
    old.register(Workflow::new("sync", |ctx| async move {
        ctx.step("fetch", || async { Ok(1) }).await?;
        ctx.step("fail", || async {
            Err::<(), _>(StepError::transient("later"))
        })
        .await?;
        Ok(Value::Null)
    }));
    let id = old.start("sync", "k", json!({"pair": 1})).unwrap();
    old.run_until_idle().await.unwrap();
    assert_eq!(old.run_info(id).unwrap().state, RunState::Sleeping);
    drop(old);
    // The new version renamed its first step.
    let new = engine_at(&dir, &clock);
    new.register(Workflow::new("sync", |ctx| async move {
        ctx.step("download", || async { Ok(2) }).await?;
        Ok(json!("done"))
    }));
    clock.advance(Duration::from_secs(10));
    new.run_until_idle().await.unwrap();
    let failed = new.run_info(id).unwrap();
    assert_eq!(failed.state, RunState::Failed);
    let msg = failed.error.unwrap();
    assert!(
        msg.contains("incompatible step list") && msg.contains("\"fetch\""),
        "{msg}"
    );
    let runs = new.runs(&RunFilter::default()).unwrap();
    let restarted = runs.iter().find(|r| r.id != id).unwrap();
    assert_eq!(restarted.idempotency_key, "k");
    assert_eq!(restarted.state, RunState::Completed);
}

#[tokio::test]
async fn a_bumped_version_restarts_runs_with_completed_steps() {
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let old = engine_at(&dir, &clock);
    old.register(Workflow::new("v", |ctx| async move {
        ctx.step("a", || async { Ok(1) }).await?;
        Err(StepError::transient("x"))
    }));
    let id = old.start("v", "k", Value::Null).unwrap();
    old.run_until_idle().await.unwrap();
    drop(old);
    let new = engine_at(&dir, &clock);
    new.register(Workflow::new("v", |_ctx| async move { Ok(Value::Null) }).version(2));
    clock.advance(Duration::from_secs(60));
    new.run_until_idle().await.unwrap();
    let info = new.run_info(id).unwrap();
    assert_eq!(info.state, RunState::Failed);
    assert!(info.error.unwrap().contains("version 1"));
    assert_eq!(new.summary().unwrap().count(RunState::Completed), 1);
}

fn noop(engine: &Engine, kind: &str) {
    engine.register(Workflow::new(kind, |_ctx| async move { Ok(Value::Null) }));
}

#[tokio::test]
async fn after_eight_hours_asleep_each_schedule_fires_once_and_skips_are_recorded() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    noop(&engine, "sync");
    let quarter = Schedule::every("quarter", "sync", Duration::from_secs(900), json!(1));
    let hourly = Schedule {
        catchup_window: Duration::from_secs(2 * 3600),
        ..Schedule::every("hourly", "sync", Duration::from_secs(3600), json!(2))
    };
    let berlin = Schedule::cron("berlin", "sync", "*/30 * * * *", "Europe/Berlin", json!(3));
    let daily = Schedule {
        catchup_window: Duration::from_secs(12 * 3600),
        ..Schedule::cron("daily", "sync", "0 3 * * *", "UTC", json!(4))
    };
    for s in [&quarter, &hourly, &berlin, &daily] {
        engine.put_schedule(s).unwrap();
    }
    // Awake for an hour: every slot fires on time.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(900));
        engine.tick().unwrap();
        engine.run_until_idle().await.unwrap();
    }
    let fired_awake = engine.summary().unwrap().count(RunState::Completed);
    assert_eq!(fired_awake, 4 + 1 + 2, "quarter x4, hourly x1, berlin x2");
    // Suspend: the clock jumps 8 hours, then one maintenance pass on wake.
    clock.advance(Duration::from_millis(8 * HOUR_MS as u64));
    let report = engine.tick().unwrap();
    engine.run_until_idle().await.unwrap();
    let mut fired: Vec<String> = report
        .runs_started
        .iter()
        .map(|id| engine.run_info(*id).unwrap().schedule.unwrap())
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        ["berlin", "daily", "hourly", "quarter"],
        "each fires exactly once"
    );
    let schedules = engine.schedules().unwrap();
    let skips = |name: &str| {
        schedules
            .iter()
            .find(|s| s.schedule.name == name)
            .unwrap()
            .recent_skips
            .clone()
    };
    // 32 quarter slots were missed: the latest ran, the 4 others within the hour are
    // coalesced, 27 were outside the window (20 shown, newest first).
    let q = skips("quarter");
    assert_eq!(q.len(), 20);
    assert!(
        q.iter().take(4).all(|s| s.1 == skip_reason::COALESCED),
        "{q:?}"
    );
    assert!(
        q.iter()
            .skip(4)
            .all(|s| s.1 == skip_reason::OUTSIDE_CATCHUP_WINDOW)
    );
    assert_eq!(skips("hourly").len(), 7);
    assert_eq!(
        skips("daily").len(),
        0,
        "03:00 was the only slot and it ran"
    );
    let all: u64 = report.slots_skipped;
    assert_eq!(all, 31 + 7 + 15);
    // Right after wake, nothing fires again.
    clock.advance(Duration::from_secs(1));
    assert!(engine.tick().unwrap().runs_started.is_empty());
}

#[tokio::test]
async fn overlap_skip_and_buffer_one() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    // Runs never get executed here, so each stays open.
    let skip = Schedule::every("skip", "k1", Duration::from_secs(60), Value::Null);
    let buffer = Schedule {
        overlap: Overlap::BufferOne,
        ..Schedule::every("buffer", "k2", Duration::from_secs(60), Value::Null)
    };
    engine.put_schedule(&skip).unwrap();
    engine.put_schedule(&buffer).unwrap();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(60));
        engine.tick().unwrap();
    }
    let s = engine.schedules().unwrap();
    let by = |n: &str| s.iter().find(|x| x.schedule.name == n).unwrap().clone();
    assert_eq!(by("skip").recent_skips.len(), 2);
    assert!(
        by("skip")
            .recent_skips
            .iter()
            .all(|x| x.1 == skip_reason::OVERLAP)
    );
    assert_eq!(
        by("buffer").recent_skips.len(),
        1,
        "one buffered, the next skipped"
    );
    assert_eq!(engine.summary().unwrap().count(RunState::Pending), 2);
    // The buffered slot starts when the open run ends.
    noop(&engine, "k2");
    engine.run_until_idle().await.unwrap();
    let runs = engine
        .runs(&RunFilter {
            kind: Some("k2".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.state == RunState::Completed));
}

#[tokio::test]
async fn needs_attention_pauses_the_schedule_until_resumed() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    let ok = Arc::new(AtomicUsize::new(0));
    let o = counted(&ok);
    engine.register(Workflow::new("auth", move |ctx| {
        let o = counted(&o);
        async move {
            ctx.step("login", || async move {
                if o.load(Ordering::SeqCst) == 0 {
                    Err(StepError::needs_attention(
                        "the server refused the password (401)",
                    ))
                } else {
                    Ok(())
                }
            })
            .await?;
            Ok(Value::Null)
        }
    }));
    engine
        .put_schedule(&Schedule::every(
            "mail",
            "auth",
            Duration::from_secs(60),
            Value::Null,
        ))
        .unwrap();
    clock.advance(Duration::from_secs(60));
    engine.tick().unwrap();
    engine.run_until_idle().await.unwrap();
    let failed = engine.runs(&RunFilter::default()).unwrap()[0].clone();
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(failed.error_class, Some(ErrorClass::NeedsAttention));
    assert_eq!(failed.attempts, 1, "needs-attention is not retried");
    let s = &engine.schedules().unwrap()[0];
    assert!(s.attention.as_deref().unwrap().contains("401"));
    clock.advance(Duration::from_secs(600));
    assert!(
        engine.tick().unwrap().runs_started.is_empty(),
        "paused while waiting"
    );
    // The person fixes the password; "Sync now" succeeds and clears the attention.
    ok.store(1, Ordering::SeqCst);
    engine.trigger_schedule("mail").unwrap();
    engine.run_until_idle().await.unwrap();
    assert_eq!(engine.schedules().unwrap()[0].attention, None);
    engine.resume_schedule("mail").unwrap();
    clock.advance(Duration::from_secs(60));
    assert_eq!(engine.tick().unwrap().runs_started.len(), 1);
}

#[tokio::test]
async fn pause_resume_and_trigger() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    engine
        .put_schedule(&Schedule::every(
            "feeds",
            "poll",
            Duration::from_secs(60),
            Value::Null,
        ))
        .unwrap();
    engine.pause_schedule("feeds").unwrap();
    clock.advance(Duration::from_secs(300));
    assert!(engine.tick().unwrap().runs_started.is_empty());
    let manual = engine.trigger_schedule("feeds").unwrap();
    assert_eq!(
        engine.trigger_schedule("feeds").unwrap(),
        manual,
        "one open run at a time"
    );
    engine.resume_schedule("feeds").unwrap();
    let s = &engine.schedules().unwrap()[0];
    assert!(!s.paused);
    assert_eq!(
        s.next_slot_at_ms,
        clock_now(&clock) + 60_000,
        "no catch-up of paused slots"
    );
    assert!(engine.pause_schedule("nope").is_err());
}

#[tokio::test]
async fn a_run_started_under_a_schedules_name_and_the_schedules_runs_are_one_job() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    let every = Schedule::every("sync:work", "sync", Duration::from_secs(60), Value::Null);
    engine.put_schedule(&every).unwrap();
    // The schedule's run is open: starting the job by hand finds it, not a second run.
    let scheduled = engine.trigger_schedule("sync:work").unwrap();
    assert_eq!(
        engine.start("sync", "sync:work", Value::Null).unwrap(),
        scheduled
    );
    noop(&engine, "sync");
    engine.run_until_idle().await.unwrap();
    // A run started by hand is open: the schedule's slot is skipped as an overlap.
    let by_hand = engine.start("sync", "sync:work", Value::Null).unwrap();
    assert_ne!(by_hand, scheduled);
    clock.advance(Duration::from_secs(120));
    assert!(engine.tick().unwrap().runs_started.is_empty());
    assert_eq!(engine.trigger_schedule("sync:work").unwrap(), by_hand);
    let open = engine.summary().unwrap().count(RunState::Pending);
    assert_eq!(open, 1, "one open run of the job");
}

fn clock_now(clock: &ManualClock) -> i64 {
    use concord_durable::Clock;
    clock.now_ms()
}

#[tokio::test]
async fn group_limits_hold_across_claims() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("c.db")).unwrap();
    let mut config = EngineConfig {
        max_concurrent_runs: 8,
        default_group_limit: 2,
        poll_interval: Duration::from_millis(20),
        ..EngineConfig::default()
    };
    config.group_limits.insert("slow.example".into(), 1);
    let engine = Engine::new(db, config).unwrap();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (counted(&now), counted(&peak));
    engine.register(Workflow::new("fetch", move |ctx| {
        let (n, p) = (counted(&n), counted(&p));
        async move {
            ctx.step("get", || async move {
                let c = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(c, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
            .await?;
            Ok(Value::Null)
        }
    }));
    let mut ids = Vec::new();
    for i in 0..6 {
        let opts = concord_durable::StartOptions {
            group: Some("slow.example".into()),
            ..Default::default()
        };
        ids.push(
            engine
                .start_with("fetch", &format!("k{i}"), Value::Null, opts)
                .unwrap(),
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let worker = engine.clone();
    let handle = tokio::spawn(async move {
        worker
            .run(async {
                let _ = rx.await;
            })
            .await
    });
    for id in &ids {
        let info = engine.wait(*id, Duration::from_secs(10)).await.unwrap();
        assert_eq!(info.state, RunState::Completed);
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "the slow host saw one request at a time"
    );
    tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_takes_over_the_run_of_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        heartbeat_timeout: Duration::from_millis(600),
        poll_interval: Duration::from_millis(50),
        ..EngineConfig::default()
    };
    let first_calls = Arc::new(AtomicUsize::new(0));
    let make = |label: &str, calls: Arc<AtomicUsize>, hang: bool| {
        let db = Database::open(dir.path().join("c.db")).unwrap();
        let engine = Engine::new(
            db,
            EngineConfig {
                worker_label: label.into(),
                ..config.clone()
            },
        )
        .unwrap();
        engine.register(Workflow::new("job", move |ctx| {
            let calls = counted(&calls);
            async move {
                ctx.tx_step("effect", |tx| {
                    tx.execute_batch("CREATE TABLE IF NOT EXISTS effects (k TEXT)")
                        .and_then(|()| tx.execute("INSERT INTO effects VALUES ('a')", []))
                        .map_err(|e| StepError::transient(e.to_string()))?;
                    Ok(())
                })
                .await?;
                ctx.step("slow", || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                })
                .await?;
                Ok(Value::Null)
            }
        }));
        engine
    };
    let a = make("a", counted(&first_calls), true);
    let id = a.start("job", "k", Value::Null).unwrap();
    let runner = a.clone();
    let task = tokio::spawn(async move { runner.run(std::future::pending()).await });
    while first_calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Kill engine A mid-step: its task stops, its lease is not renewed or released.
    task.abort();
    let _ = task.await;
    let killed_at = std::time::Instant::now();
    let second_calls = Arc::new(AtomicUsize::new(0));
    let b = make("b", counted(&second_calls), false);
    let runner = b.clone();
    let task_b = tokio::spawn(async move { runner.run(std::future::pending()).await });
    let info = b.wait(id, Duration::from_secs(10)).await.unwrap();
    let took = killed_at.elapsed();
    assert_eq!(info.state, RunState::Completed);
    assert!(
        took < Duration::from_millis(600 + 1000),
        "taken over in {took:?}"
    );
    assert_eq!(second_calls.load(Ordering::SeqCst), 1);
    let detail = b.show(id).unwrap();
    assert_eq!(detail.attempts.len(), 2);
    assert_eq!(detail.attempts[0].outcome.as_deref(), Some("lost"));
    let effects: i64 = b
        .database()
        .connect()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM effects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(effects, 1, "the checkpointed effect was not applied again");
    let workers = b.live_workers().unwrap();
    assert!(
        workers
            .iter()
            .any(|w| w.label == "b" && w.pid == std::process::id())
    );
    task_b.abort();
}

#[tokio::test]
async fn history_is_pruned_by_age_and_count() {
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("c.db")).unwrap();
    let engine = Engine::new(
        db,
        EngineConfig {
            clock: Arc::new(clock.clone()),
            history_max_runs: 5,
            history_max_age: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
    )
    .unwrap();
    noop(&engine, "n");
    for i in 0..8 {
        engine.start("n", &format!("{i}"), Value::Null).unwrap();
    }
    engine.run_until_idle().await.unwrap();
    assert_eq!(engine.tick().unwrap().runs_pruned, 3);
    assert_eq!(engine.summary().unwrap().count(RunState::Completed), 5);
    clock.advance(Duration::from_secs(3601));
    let open = engine.start("n", "open", Value::Null).unwrap();
    engine.tick().unwrap();
    assert_eq!(engine.summary().unwrap().count(RunState::Completed), 0);
    assert_eq!(
        engine.run_info(open).unwrap().state,
        RunState::Pending,
        "open runs stay"
    );
}

#[tokio::test]
async fn events_are_broadcast_for_a_live_ui() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    noop(&engine, "n");
    let mut events = engine.subscribe();
    let id = engine.start("n", "k", Value::Null).unwrap();
    engine.run_until_idle().await.unwrap();
    let mut states = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let concord_durable::Event::Run { id: rid, state, .. } = e {
            assert_eq!(rid, id);
            states.push(state);
        }
    }
    assert_eq!(
        states,
        [RunState::Pending, RunState::Running, RunState::Completed]
    );
}

#[tokio::test]
async fn step_timeouts_and_missing_heartbeats_are_transient_failures() {
    let clock = ManualClock::new(T0);
    let (_dir, engine) = setup(&clock);
    engine.register(Workflow::new("stuck", |ctx| async move {
        let which: String = ctx.input_as()?;
        let options = if which == "timeout" {
            concord_durable::StepOptions {
                timeout: Some(Duration::from_millis(50)),
                ..Default::default()
            }
        } else {
            concord_durable::StepOptions {
                heartbeat_timeout: Some(Duration::from_millis(50)),
                ..Default::default()
            }
        };
        ctx.step_with("hang", &options, || {
            std::future::pending::<Result<(), StepError>>()
        })
        .await?;
        Ok(Value::Null)
    }));
    let t = engine.start("stuck", "t", json!("timeout")).unwrap();
    let h = engine.start("stuck", "h", json!("heartbeat")).unwrap();
    engine.run_until_idle().await.unwrap();
    let t = engine.show(t).unwrap();
    assert_eq!(t.run.state, RunState::Sleeping);
    assert!(t.run.error.unwrap().contains("timed out"));
    let h = engine.show(h).unwrap();
    assert_eq!(h.run.state, RunState::Sleeping);
    assert!(h.run.error.unwrap().contains("no heartbeat"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_running_runs_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("c.db")).unwrap();
    let config = EngineConfig {
        shutdown_grace: Duration::from_millis(100),
        poll_interval: Duration::from_millis(20),
        worker_label: "daemon".into(),
        ..EngineConfig::default()
    };
    let engine = Engine::new(db, config).unwrap();
    let entered = Arc::new(tokio::sync::Notify::new());
    let e = Arc::clone(&entered);
    engine.register(Workflow::new("hang", move |ctx| {
        let e = Arc::clone(&e);
        async move {
            ctx.step("hang", || async move {
                e.notify_one();
                std::future::pending::<Result<(), StepError>>().await
            })
            .await?;
            Ok(Value::Null)
        }
    }));
    let id = engine.start("hang", "k", Value::Null).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = engine.clone();
    let task = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    entered.notified().await;
    assert_eq!(engine.summary().unwrap().live_workers.len(), 1);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    let detail = engine.show(id).unwrap();
    assert_eq!(
        detail.run.state,
        RunState::Pending,
        "handed back, not left leased"
    );
    assert_eq!(detail.attempts[0].outcome.as_deref(), Some("interrupted"));
    assert!(
        engine.live_workers().unwrap().is_empty(),
        "the worker deregistered"
    );
}
