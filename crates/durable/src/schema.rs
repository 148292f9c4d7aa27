//! The engine's own tables (component "durable"), one migration per shipped schema version.
//! Shipped migrations are never edited; `tests/fixtures/` keeps a database of each version.

use crate::db::Migration;

/// The component name of the engine's rows in `schema_version`.
pub const COMPONENT: &str = "durable";

/// Times are milliseconds since the Unix epoch (wall clock, UTC): deadlines must survive
/// suspend and restarts, which monotonic clocks do not.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "
CREATE TABLE durable_runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    input TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('pending', 'running', 'sleeping', 'completed', 'failed', 'cancelled')),
    kind_version INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    group_key TEXT,
    schedule TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    next_at INTEGER,
    lease_owner TEXT,
    lease_until INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    error_class TEXT
) STRICT;
CREATE UNIQUE INDEX durable_runs_open_key ON durable_runs (idempotency_key)
    WHERE state IN ('pending', 'running', 'sleeping');
CREATE INDEX durable_runs_due ON durable_runs (state, next_at);
CREATE INDEX durable_runs_finished ON durable_runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE durable_steps (
    run_id INTEGER NOT NULL REFERENCES durable_runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    completed_at INTEGER,
    PRIMARY KEY (run_id, seq)
) STRICT;
CREATE TABLE durable_attempts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES durable_runs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    outcome TEXT,
    step TEXT,
    error TEXT,
    error_class TEXT,
    next_retry_at INTEGER
) STRICT;
CREATE INDEX durable_attempts_run ON durable_attempts (run_id);
CREATE TABLE durable_schedules (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    input TEXT NOT NULL,
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    next_slot_at INTEGER NOT NULL,
    fire_at INTEGER NOT NULL,
    last_run_id INTEGER,
    last_fired_at INTEGER,
    buffered INTEGER NOT NULL DEFAULT 0
) STRICT;
",
    },
    Migration {
        version: 2,
        sql: "
ALTER TABLE durable_schedules ADD COLUMN attention TEXT;
CREATE TABLE durable_schedule_skips (
    id INTEGER PRIMARY KEY,
    schedule TEXT NOT NULL,
    slot_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
) STRICT;
CREATE INDEX durable_schedule_skips_schedule ON durable_schedule_skips (schedule, slot_at);
CREATE TABLE durable_workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    label TEXT NOT NULL,
    pid_namespace TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;
CREATE INDEX durable_runs_lease ON durable_runs (lease_until) WHERE state = 'running';
",
    },
];
