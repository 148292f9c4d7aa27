//! The Activity page's commands: the job engine's runs and schedules, Retry now and Cancel, and
//! the engine's live events forwarded to the window as `job-event`. The engine's own types go to
//! the window as they serialize; the page words them for a person (ui/src/lib/activity.ts).

use concord_core::OpError;
use concord_durable::{Event, RunDetail, RunFilter, RunId, RunInfo, ScheduleInfo};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State, Wry};
use tokio::sync::broadcast;

use crate::shell::Shell;

/// The event the Activity page listens to: an engine [`Event`] as it serializes, or a
/// [`Missed`] when the window fell behind and must read the list again.
pub const JOB_EVENT: &str = "job-event";

/// Recent runs, newest first, at most `limit` (within core's limits).
#[tauri::command]
pub async fn jobs(shell: State<'_, Shell>, limit: usize) -> Result<Vec<RunInfo>, OpError> {
    let filter = RunFilter {
        limit,
        ..RunFilter::default()
    };
    shell.op(move |concord| concord.runs(filter)).await
}

/// One run with its steps and attempts.
#[tauri::command]
pub async fn job(shell: State<'_, Shell>, id: RunId) -> Result<RunDetail, String> {
    shell
        .core(move |concord| Ok(concord.engine().show(id)?))
        .await
}

/// "Retry now": returns the run as it is afterwards (the engine also announces it).
#[tauri::command]
pub async fn retry_job(shell: State<'_, Shell>, id: RunId) -> Result<RunInfo, String> {
    shell
        .core(move |concord| Ok(concord.engine().retry(id)?))
        .await
}

/// Cancels a waiting run at once, a running one at its next step.
#[tauri::command]
pub async fn cancel_job(shell: State<'_, Shell>, id: RunId) -> Result<RunInfo, String> {
    shell
        .core(move |concord| Ok(concord.engine().cancel(id)?))
        .await
}

#[tauri::command]
pub async fn schedules(shell: State<'_, Shell>) -> Result<Vec<ScheduleInfo>, String> {
    shell
        .core(|concord| Ok(concord.engine().schedules()?))
        .await
}

/// Said instead of the events the window missed because it fell behind the engine's buffer.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename = "missed")]
pub struct Missed {
    pub count: u64,
}

/// Forwards this process's engine events to the window until the engine is gone. Changes made
/// by another process (`concord daemon`) are not events here; the window reads them again when
/// the status changes.
pub async fn forward_events(app: AppHandle<Wry>, mut events: broadcast::Receiver<Event>) {
    loop {
        let sent = match events.recv().await {
            Ok(event) => app.emit(JOB_EVENT, &event),
            Err(broadcast::error::RecvError::Lagged(count)) => {
                tracing::warn!(count, "the window missed job events");
                app.emit(JOB_EVENT, Missed { count })
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Err(error) = sent {
            tracing::warn!(%error, "cannot tell the window about a job");
        }
    }
}
