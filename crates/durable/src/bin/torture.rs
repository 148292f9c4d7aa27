//! The kill -9 torture test. A supervisor starts child processes running the engine on one
//! database, SIGKILLs them at random moments, restarts them, and checks after every kill that
//! the database is intact and no effect was applied twice; at the end every run is finished.
//!
//! `concord-durable-torture [--kills N] [--seeds S] [--seed X] [--runs R]` (or the variables
//! `TORTURE_KILLS`, `TORTURE_SEEDS`, `TORTURE_SEED`); `child DB SEED` is the child's mode.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_durable::{Database, Engine, EngineConfig, RetryPolicy, RunState, StepError, Workflow};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::Connection;
use serde_json::{Value, json};

/// How long the last child gets to finish every run before the test fails.
const FINAL_DRAIN_MAX: Duration = Duration::from_secs(120);

type Fail = Box<dyn std::error::Error>;

struct Args {
    kills: u64,
    seeds: u64,
    seed: Option<u64>,
    runs: u64,
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = if argv.first().map(String::as_str) == Some("child") {
        child(&argv[1..])
    } else {
        parse(&argv).and_then(|args| supervise(&args))
    };
    if let Err(e) = result {
        eprintln!("torture: FAILED: {e}");
        std::process::exit(1);
    }
}

fn parse(argv: &[String]) -> Result<Args, Fail> {
    let env = |name: &str| std::env::var(name).ok();
    let mut kills = env("TORTURE_KILLS");
    let mut seeds = env("TORTURE_SEEDS");
    let mut seed = env("TORTURE_SEED");
    let mut runs = None;
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--kills" => &mut kills,
            "--seeds" => &mut seeds,
            "--seed" => &mut seed,
            "--runs" => &mut runs,
            other => return Err(format!("unknown argument {other:?}").into()),
        };
        *slot = Some(it.next().ok_or(format!("{flag} needs a value"))?.clone());
    }
    let num = |v: Option<String>, default: u64| -> Result<u64, Fail> {
        Ok(v.map(|s| s.parse()).transpose()?.unwrap_or(default))
    };
    Ok(Args {
        kills: num(kills, 200)?,
        seeds: num(seeds, 1)?,
        seed: seed.map(|s| s.parse()).transpose()?,
        runs: num(runs, 40)?,
    })
}

fn supervise(args: &Args) -> Result<(), Fail> {
    let first = args.seed.unwrap_or_else(|| rand::rng().random());
    let mut total_kills = 0;
    for i in 0..args.seeds {
        let seed = first.wrapping_add(i);
        println!(
            "torture: seed={seed} (replay with --seed {seed} --seeds 1 --kills {})",
            args.kills
        );
        let dir =
            std::env::temp_dir().join(format!("concord-torture-{}-{seed}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let outcome = torture_one(seed, args, &dir.join("torture.db"))?;
        // Kept on failure (the error returns above) so the database can be inspected.
        std::fs::remove_dir_all(&dir)?;
        total_kills += outcome.kills;
        println!(
            "torture: seed={seed} kills={} runs={} completed={} duplicates=0 integrity=ok \
             takeovers={} final_drain_ms={}",
            outcome.kills, outcome.runs, outcome.completed, outcome.takeovers, outcome.drain_ms
        );
    }
    if args.seeds > 1 {
        println!(
            "torture: seeds={} first_seed={first} kills={total_kills} duplicates=0 integrity=ok",
            args.seeds
        );
    }
    Ok(())
}

struct Outcome {
    takeovers: u64,
    kills: u64,
    runs: u64,
    completed: u64,
    drain_ms: u128,
}

fn engine_for(db: &Path, label: &str, seed: u64) -> Result<Engine, Fail> {
    let config = EngineConfig {
        worker_label: label.to_owned(),
        max_concurrent_runs: 8,
        heartbeat_timeout: Duration::from_millis(500),
        poll_interval: Duration::from_millis(20),
        seed: Some(seed),
        ..EngineConfig::default()
    };
    Ok(Engine::new(Database::open(db)?, config)?)
}

fn torture_one(seed: u64, args: &Args, db: &Path) -> Result<Outcome, Fail> {
    let mut rng = StdRng::seed_from_u64(seed);
    let engine = engine_for(db, "supervisor", seed)?;
    let conn = engine.database().connect()?;
    create_effects(&conn)?;
    let mut enqueued = 0u64;
    let mut enqueue = |n: u64| -> Result<(), Fail> {
        for _ in 0..n {
            engine.start(
                "torture",
                &format!("t{seed}-{enqueued}"),
                json!({ "n": enqueued }),
            )?;
            enqueued += 1;
        }
        Ok(())
    };
    enqueue(args.runs)?;
    let exe = std::env::current_exe()?;
    for kill in 0..args.kills {
        // Now and then two processes share the database, to race their claims.
        let n = if rng.random_ratio(1, 4) { 2 } else { 1 };
        let mut children = (0..n)
            .map(|c| spawn_child(&exe, db, seed ^ (kill << 8) ^ c))
            .collect::<Result<Vec<_>, _>>()?;
        enqueue(rng.random_range(0..6))?;
        std::thread::sleep(Duration::from_millis(rng.random_range(10..120)));
        for c in &mut children {
            c.kill()?; // SIGKILL on Unix
            c.wait()?;
        }
        check(&conn, seed, kill + 1)?;
    }
    // The last child runs to the end: every run must finish.
    let started = Instant::now();
    let mut last = spawn_child(&exe, db, seed ^ 0xfeed)?;
    loop {
        let open: i64 = conn.query_row(
            "SELECT COUNT(*) FROM durable_runs WHERE state IN ('pending', 'running', 'sleeping')",
            [],
            |r| r.get(0),
        )?;
        if open == 0 {
            break;
        }
        if started.elapsed() > FINAL_DRAIN_MAX {
            let _ = last.kill();
            return Err(
                format!("seed={seed}: {open} runs still open after {FINAL_DRAIN_MAX:?}").into(),
            );
        }
        if let Some(status) = last.try_wait()? {
            return Err(format!("seed={seed}: the last child exited early: {status}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain_ms = started.elapsed().as_millis();
    last.kill()?;
    last.wait()?;
    check(&conn, seed, args.kills)?;
    let summary = engine.summary()?;
    let completed = summary.count(RunState::Completed);
    let not_completed = summary.count(RunState::Failed) + summary.count(RunState::Cancelled);
    if not_completed > 0 {
        return Err(format!("seed={seed}: {not_completed} runs did not complete").into());
    }
    let effects: i64 = conn.query_row("SELECT COUNT(*) FROM torture_effects", [], |r| r.get(0))?;
    if effects != i64::try_from(completed * 3)? {
        return Err(format!("seed={seed}: {effects} effects for {completed} runs (3 each)").into());
    }
    // Attempts ended by a kill and taken over: proof the kills landed mid-run.
    let takeovers: i64 = conn.query_row(
        "SELECT COUNT(*) FROM durable_attempts WHERE outcome = 'lost'",
        [],
        |r| r.get(0),
    )?;
    Ok(Outcome {
        takeovers: u64::try_from(takeovers)?,
        kills: args.kills,
        runs: enqueued,
        completed,
        drain_ms,
    })
}

fn spawn_child(exe: &Path, db: &Path, seed: u64) -> Result<Child, Fail> {
    Ok(Command::new(exe)
        .arg("child")
        .arg(db)
        .arg(seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?)
}

/// After a kill: the file is intact and no effect was applied twice.
fn check(conn: &Connection, seed: u64, kills: u64) -> Result<(), Fail> {
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(format!("seed={seed} kills={kills}: integrity_check: {integrity}").into());
    }
    let duplicates: i64 = conn.query_row(
        "SELECT COUNT(*) FROM (SELECT key FROM torture_effects GROUP BY key HAVING COUNT(*) > 1)",
        [],
        |r| r.get(0),
    )?;
    if duplicates != 0 {
        return Err(format!("seed={seed} kills={kills}: duplicates={duplicates}").into());
    }
    Ok(())
}

fn create_effects(conn: &Connection) -> Result<(), Fail> {
    // No unique key on purpose: a duplicate must show, not be swallowed.
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS torture_effects (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL, at INTEGER NOT NULL) STRICT",
    )?;
    Ok(())
}

fn child(argv: &[String]) -> Result<(), Fail> {
    let db = PathBuf::from(argv.first().ok_or("child needs DB SEED")?);
    let seed: u64 = argv.get(1).ok_or("child needs DB SEED")?.parse()?;
    let engine = engine_for(&db, "torture-child", seed)?;
    create_effects(&engine.database().connect()?)?;
    let policy = RetryPolicy {
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(50),
        max_attempts: 1000,
        ..RetryPolicy::default()
    };
    let rng = Arc::new(std::sync::Mutex::new(StdRng::seed_from_u64(seed)));
    engine.register(
        Workflow::new("torture", move |ctx| {
            let rng = Arc::clone(&rng);
            async move {
                let id = ctx.run_id();
                effect(&ctx, format!("{id}:a")).await?;
                let pause = rng.lock().map_or(1, |mut r| r.random_range(0..4));
                let flaky = rng.lock().is_ok_and(|mut r| r.random_ratio(1, 5));
                ctx.step("compute", || async move {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    if flaky {
                        return Err(StepError::transient("flaky"));
                    }
                    Ok(pause)
                })
                .await?;
                effect(&ctx, format!("{id}:b")).await?;
                effect(&ctx, format!("{id}:c")).await?;
                Ok(Value::Null)
            }
        })
        .retry(policy),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(engine.run(std::future::pending()))?;
    Ok(())
}

async fn effect(ctx: &concord_durable::Ctx, key: String) -> Result<(), StepError> {
    let name = key.rsplit(':').next().unwrap_or("x").to_owned();
    ctx.tx_step(&format!("effect-{name}"), move |tx| {
        tx.execute(
            "INSERT INTO torture_effects (key, at) VALUES (?1, unixepoch('subsec') * 1000)",
            [&key],
        )
        .map_err(|e| StepError::transient(format!("effect {key}: {e}")))?;
        Ok(())
    })
    .await
}
