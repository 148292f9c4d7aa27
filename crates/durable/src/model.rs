//! The engine's nouns as callers see them: runs, their steps and attempts, schedules, workers,
//! the summary and the live events. Plain data, serializable for `--json` and the UI.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::retry::ErrorClass;
use crate::schedule::Schedule;

/// The id of a workflow run, stable for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a run is in its life. The first three are open; at most one open run per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a worker.
    Pending,
    /// Held by a worker under a lease.
    Running,
    /// Waiting for its next retry at `next_at_ms`.
    Sleeping,
    Completed,
    Failed,
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        Self::Pending,
        Self::Running,
        Self::Sleeping,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Sleeping => "sleeping",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One run as listed. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: RunId,
    pub kind: String,
    pub idempotency_key: String,
    pub state: RunState,
    pub attempts: u32,
    pub group: Option<String>,
    pub schedule: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// When a pending or sleeping run may start (its next retry).
    pub next_at_ms: Option<i64>,
    pub error: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub cancel_requested: bool,
}

/// A checkpointed (or failing) step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub seq: i64,
    pub name: String,
    pub attempts: u32,
    pub completed_at_ms: Option<i64>,
    pub result: Option<Value>,
}

/// One attempt of a run: a worker held it from `started_at_ms` to `ended_at_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptInfo {
    pub attempt: u32,
    pub worker: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// completed, retry, failed, cancelled, interrupted (shutdown) or lost (worker died).
    pub outcome: Option<String>,
    pub step: Option<String>,
    pub error: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub next_retry_at_ms: Option<i64>,
}

/// Everything about one run, for `jobs show` and the Activity page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    pub run: RunInfo,
    pub input: Value,
    pub result: Option<Value>,
    pub steps: Vec<StepInfo>,
    pub attempts: Vec<AttemptInfo>,
}

/// A schedule with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    pub schedule: Schedule,
    pub paused: bool,
    /// Set when a run failed needing the person's attention; the schedule waits until resumed.
    pub attention: Option<String>,
    pub next_slot_at_ms: i64,
    pub next_fire_at_ms: i64,
    pub last_fired_at_ms: Option<i64>,
    pub last_run: Option<RunId>,
    /// Recently skipped slots, newest first: (slot time, reason).
    pub recent_skips: Vec<(i64, String)>,
}

/// A process running an engine's worker loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub pid: u32,
    /// What kind of process: "daemon", "app", "cli".
    pub label: String,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
}

/// The engine at a glance: what the tray's status line and `concord status` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Runs per state, every state listed (zero included).
    pub runs: Vec<(RunState, u64)>,
    pub live_workers: Vec<WorkerInfo>,
    pub schedules: Vec<ScheduleInfo>,
}

impl Summary {
    pub fn count(&self, state: RunState) -> u64 {
        self.runs
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

/// What changed, broadcast as it happens in this process, for a UI to update live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Run {
        id: RunId,
        kind: String,
        state: RunState,
        error: Option<String>,
        next_at_ms: Option<i64>,
    },
    StepCompleted {
        run: RunId,
        name: String,
    },
    Schedule {
        name: String,
        change: String,
    },
}

/// Filter for listing runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub state: Option<RunState>,
    pub kind: Option<String>,
    /// At most this many, newest first; 0 means 100.
    pub limit: usize,
}
