//! The IPC commands the settings window calls (ui/src/lib/ipc.ts mirrors them). Each is a thin
//! call into [`Shell`] / `concord-core`; errors come back as sentences a person can read.
//! Grouped by page: the shell-wide ones here, [`activity`] for the Activity page, [`feeds`] for
//! the Feeds page, [`sync`] for the Accounts and Pairs pages, [`conflicts`] for the Conflicts page.

pub mod activity;
pub mod conflicts;
pub mod feeds;
pub mod sync;

use concord_core::Status;
use serde::Serialize;
use tauri::{AppHandle, State, Wry};
use tauri_plugin_autostart::ManagerExt;

use crate::shell::Shell;

#[tauri::command]
pub async fn status(app: AppHandle<Wry>, shell: State<'_, Shell>) -> Result<Status, String> {
    shell.publish(&app).await
}

#[tauri::command]
pub async fn set_paused(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    paused: bool,
) -> Result<Status, String> {
    shell.set_paused(&app, paused).await
}

#[tauri::command]
pub async fn sync_now(app: AppHandle<Wry>, shell: State<'_, Shell>) -> Result<Status, String> {
    shell.sync_now(&app).await
}

#[tauri::command]
pub fn autostart_enabled(app: AppHandle<Wry>) -> Result<bool, String> {
    app.autolaunch()
        .is_enabled()
        .map_err(|error| format!("Cannot tell whether Concord starts at login: {error}"))
}

/// Returns the setting as it is afterwards, which is what the window must show.
#[tauri::command]
pub fn set_autostart(app: AppHandle<Wry>, enabled: bool) -> Result<bool, String> {
    let autolaunch = app.autolaunch();
    let changed = if enabled {
        autolaunch.enable()
    } else {
        autolaunch.disable()
    };
    changed.map_err(|error| {
        let what = if enabled { "start" } else { "stop starting" };
        format!("Cannot make Concord {what} at login: {error}")
    })?;
    autostart_enabled(app)
}

#[derive(Debug, Serialize)]
pub struct AppInfo {
    version: String,
    data_dir: String,
    database: String,
}

#[tauri::command]
pub fn app_info(app: AppHandle<Wry>, shell: State<'_, Shell>) -> AppInfo {
    AppInfo {
        version: app.package_info().version.to_string(),
        data_dir: shell.concord().data_dir().display().to_string(),
        database: shell.concord().database_path().display().to_string(),
    }
}
