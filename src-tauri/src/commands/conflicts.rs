//! The Conflicts page's commands: the open conflicts, one conflict with its base and both
//! sides field by field, the item a per-field choice would give, and resolution (keep A, B or
//! both, or pick per field) run as the durable `resolve-conflict` job, as `concord conflicts`
//! runs it. A side that changed since is re-read and the conflict shown again, never overwritten.
//! Each is one call of core's operations (`Concord::conflicts`, ...); errors cross as
//! `{kind, message}`.

use std::collections::BTreeMap;

use concord_core::OpError;
use concord_core::sync::resolve::conflicts::{
    Choice, ConflictDetail, ConflictSummary, Preview, Resolution,
};
use concord_core::sync::state::Side;
use tauri::{AppHandle, State, Wry};

use crate::shell::Shell;

/// Every open conflict, oldest first.
#[tauri::command]
pub async fn conflicts_list(shell: State<'_, Shell>) -> Result<Vec<ConflictSummary>, OpError> {
    shell.op(|concord| concord.conflicts()).await
}

/// One conflict: base, A and B, in a person's words and field by field.
#[tauri::command]
pub async fn conflict_show(shell: State<'_, Shell>, id: i64) -> Result<ConflictDetail, OpError> {
    shell.op(move |concord| concord.conflict(id)).await
}

/// The item `picks` ("VEVENT SUMMARY" -> a|b) would give; fields not named follow the merge.
#[tauri::command]
pub async fn conflict_preview(
    shell: State<'_, Shell>,
    id: i64,
    picks: BTreeMap<String, Side>,
) -> Result<Preview, OpError> {
    shell
        .op(move |concord| concord.conflict_preview(id, &picks))
        .await
}

/// Resolves as the person chose (`{"keep": "a"|"b"|"both"}` or `{"pick": {FIELD: "a"|"b"}}`)
/// and waits for the durable run; the tray and the window hear the new count at once.
#[tauri::command]
pub async fn conflict_resolve(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    id: i64,
    choice: Choice,
) -> Result<Resolution, OpError> {
    let resolved = shell.concord().resolve_conflict(id, choice).await;
    let _ = shell.publish(&app).await;
    resolved
}
