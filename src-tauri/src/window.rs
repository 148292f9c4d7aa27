//! The settings window ("main"): shown on launch unless `--hidden`, by "Open Concord" and by a
//! second launch; closing it hides it to the tray, the app keeps running. It shows only the
//! app's own pages: a navigation anywhere else (a link in a feed entry) is refused.

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Manager, Window, WindowEvent, Wry};

pub const MAIN: &str = "main";

/// Shows, un-minimizes and focuses the settings window.
pub fn show_main(app: &AppHandle<Wry>) {
    let Some(window) = app.get_webview_window(MAIN) else {
        tracing::warn!("the settings window is gone");
        return;
    };
    let shown = window
        .unminimize()
        .and_then(|()| window.show())
        .and_then(|()| window.set_focus());
    if let Err(error) = shown {
        tracing::warn!(%error, "cannot show the settings window");
    }
}

/// Closing the settings window hides it: Concord lives in the tray until Quit.
pub fn hide_on_close(window: &Window<Wry>, event: &WindowEvent) {
    if let WindowEvent::CloseRequested { api, .. } = event
        && window.label() == MAIN
    {
        api.prevent_close();
        if let Err(error) = window.hide() {
            tracing::warn!(%error, "cannot hide the settings window");
        }
    }
}

/// Keeps the webview on the app's own pages: a link in a feed entry that slipped past the
/// window's click handling is refused here instead of replacing the settings window.
pub fn navigation_guard() -> TauriPlugin<Wry> {
    tauri::plugin::Builder::new("navigation-guard")
        .on_navigation(|_webview, url| {
            let own = url.scheme() == "tauri"
                || url.scheme() == "about"
                || url.host_str() == Some("tauri.localhost");
            if !own {
                tracing::warn!(%url, "the settings window may not navigate away; refused");
            }
            own
        })
        .build()
}
