//! The Conflicts page's commands: the open conflicts, one conflict with its base and both
//! sides field by field, the item a per-field choice would give, and resolution (keep A, B or
//! both, or pick per field) run as the durable `resolve-conflict` job, as `concord conflicts`
//! runs it. A side that changed since is re-read and the conflict shown again, never overwritten.

use std::collections::BTreeMap;
use std::sync::Arc;

use concord_core::sync::resolve::conflicts::{
    self, Choice, ConflictDetail, ConflictSummary, Preview, Resolution,
};
use concord_core::sync::state::Side;
use concord_core::sync::storage::SystemKeyring;
use tauri::{AppHandle, State, Wry};

use crate::shell::Shell;

/// Every open conflict, oldest first.
#[tauri::command]
pub async fn conflicts_list(shell: State<'_, Shell>) -> Result<Vec<ConflictSummary>, String> {
    shell.blocking(conflicts::list).await
}

/// One conflict: base, A and B, in a person's words and field by field.
#[tauri::command]
pub async fn conflict_show(shell: State<'_, Shell>, id: i64) -> Result<ConflictDetail, String> {
    shell
        .blocking(move |concord| conflicts::show(concord, id))
        .await
}

/// The item `picks` ("VEVENT SUMMARY" -> a|b) would give; fields not named follow the merge.
#[tauri::command]
pub async fn conflict_preview(
    shell: State<'_, Shell>,
    id: i64,
    picks: BTreeMap<String, Side>,
) -> Result<Preview, String> {
    shell
        .blocking(move |concord| conflicts::preview(concord, id, &picks))
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
) -> Result<Resolution, String> {
    let concord = shell.concord().clone();
    let resolved = conflicts::resolve_durably(&concord, id, choice, Arc::new(SystemKeyring))
        .await
        .map_err(|e| e.to_string());
    let _ = shell.publish(&app).await;
    resolved
}
