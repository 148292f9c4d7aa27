//! Databases written by every earlier schema version open, migrate and resume their work.
//! Each fixture in `tests/fixtures/` is the SQL of a database as that version left it.

#![allow(clippy::unwrap_used)] // Helpers of integration tests, not only #[test] fns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concord_durable::{
    Database, Engine, EngineConfig, MIGRATIONS, ManualClock, RunId, RunState, SCHEMA_COMPONENT,
    StepError, Workflow,
};
use serde_json::{Value, json};

/// (version, fixture SQL): one per shipped schema version before the current one.
const FIXTURES: &[(i64, &str)] = &[(1, include_str!("fixtures/durable-v1.sql"))];

fn schema_of(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name LIKE 'durable_%'
             ORDER BY name",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn every_fixture_has_the_schema_its_version_shipped() {
    for (version, sql) in FIXTURES {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Database::open(dir.path().join("fixture.db")).unwrap();
        fixture.connect().unwrap().execute_batch(sql).unwrap();
        let fresh = Database::open(dir.path().join("fresh.db")).unwrap();
        let mut conn = fresh.connect().unwrap();
        let upto = usize::try_from(*version).unwrap();
        fresh
            .migrate(&mut conn, SCHEMA_COMPONENT, &MIGRATIONS[..upto])
            .unwrap();
        assert_eq!(
            schema_of(&fixture.connect().unwrap()),
            schema_of(&conn),
            "v{version}"
        );
    }
    assert_eq!(
        FIXTURES.len() + 1,
        MIGRATIONS.len(),
        "ship a fixture of the previous version with each new migration"
    );
}

#[tokio::test]
async fn every_earlier_version_migrates_and_resumes_its_runs() {
    for (version, sql) in FIXTURES {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("c.db")).unwrap();
        db.connect().unwrap().execute_batch(sql).unwrap();
        let clock = ManualClock::new(10_000);
        let config = EngineConfig {
            clock: Arc::new(clock.clone()),
            ..EngineConfig::default()
        };
        let engine = Engine::new(db.clone(), config).unwrap();
        let latest = MIGRATIONS.last().unwrap().version;
        assert_eq!(
            db.version(&db.connect().unwrap(), SCHEMA_COMPONENT)
                .unwrap(),
            latest
        );
        let firsts = Arc::new(AtomicUsize::new(0));
        let f = Arc::clone(&firsts);
        engine.register(Workflow::new("fixture", move |ctx| {
            let f = Arc::clone(&f);
            async move {
                let n = ctx.input()["n"].as_i64().unwrap_or(0);
                let first: i64 = ctx
                    .step("first", || async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, StepError>(10)
                    })
                    .await?;
                let sum: i64 = ctx.step("second", || async move { Ok(first + n) }).await?;
                Ok(json!(sum))
            }
        }));
        engine.run_until_idle().await.unwrap();
        for (id, want) in [(1, 11), (2, 12), (3, 13)] {
            let d = engine.show(RunId(id)).unwrap();
            assert_eq!(d.run.state, RunState::Completed, "v{version} run {id}");
            assert_eq!(d.result, Some(json!(want)), "v{version} run {id}");
        }
        assert_eq!(
            firsts.load(Ordering::SeqCst),
            1,
            "run 2 resumed after its stored step"
        );
        let crashed = engine.show(RunId(2)).unwrap();
        assert_eq!(crashed.attempts[0].outcome.as_deref(), Some("lost"));
        // The schedule survives and fires.
        clock.advance(Duration::from_secs(900));
        let report = engine.tick().unwrap();
        assert_eq!(report.runs_started.len(), 1);
        let s = &engine.schedules().unwrap()[0];
        assert_eq!(
            (s.schedule.name.as_str(), s.attention.as_ref()),
            ("every-15", None)
        );
        let _: Value = s.schedule.input.clone();
    }
}
