//! Feed refresh as a durable workflow: the "feeds.refresh" kind runs one step, a
//! [`refresh`](super::refresh::refresh) of the feeds due now, and a schedule starts it every
//! few minutes. Each feed's own interval decides whether it is due, so the schedule's period
//! is only how soon a due feed is noticed. The run's result is the [`RefreshSummary`], whose
//! `notification` the desktop shell shows.

use std::time::Duration;

use concord_durable::{Engine, Schedule, StepError, Workflow};

use super::FeedError;
use super::refresh::{RefreshOptions, RefreshSummary, refresh};

pub const WORKFLOW_KIND: &str = "feeds.refresh";
pub const SCHEDULE_NAME: &str = "feeds.refresh";
pub const SCHEDULE_EVERY: Duration = Duration::from_secs(5 * 60);
/// A refresh of a thousand feeds takes seconds; this bounds one stuck on a slow network.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The step's error, classified: a database problem is worth a retry, the rest is not.
fn step_error(e: FeedError) -> StepError {
    match e {
        FeedError::Database(_) | FeedError::Sql(_) => StepError::transient(e.to_string()),
        _ => StepError::permanent(e.to_string()),
    }
}

/// Registers the "feeds.refresh" workflow kind on `engine`, so this process can run it.
/// Cheap and in memory: call it wherever an engine is made.
pub fn register(engine: &Engine) {
    let db = engine.database().clone();
    engine.register(
        Workflow::new(WORKFLOW_KIND, move |ctx| {
            let db = db.clone();
            async move {
                let opts = RefreshOptions::default();
                // Safe to run again after a crash: conditional GETs and upserts by stable key.
                let summary: RefreshSummary = ctx
                    .step("refresh", || async {
                        refresh(&db, &opts).await.map_err(step_error)
                    })
                    .await?;
                serde_json::to_value(&summary).map_err(|e| StepError::permanent(e.to_string()))
            }
        })
        .attempt_timeout(ATTEMPT_TIMEOUT),
    );
}

/// Creates the schedule that starts a refresh every [`SCHEDULE_EVERY`] (an existing one
/// keeps its pause state). Called when feeds are added, so an empty Concord schedules nothing.
pub fn schedule(engine: &Engine) -> Result<(), concord_durable::Error> {
    engine.put_schedule(&Schedule::every(
        SCHEDULE_NAME,
        WORKFLOW_KIND,
        SCHEDULE_EVERY,
        serde_json::Value::Null,
    ))
}
