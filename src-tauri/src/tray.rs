//! The tray icon and its menu: the status line first, then Sync now, Pause/Resume, Open
//! Concord, Quit. The status line is information, disabled, except when a page explains it
//! ("3 conflicts" opens Conflicts, a failing sync opens Activity). On Linux (libayatana) every click opens the
//! menu; there are no click events and no tooltip.

use concord_core::{Status, StatusPage, StatusState};
use tauri::image::Image;
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, Wry, include_image};

use crate::commands::feeds::OPEN_PAGE;
use crate::shell::Shell;
use crate::window;

/// The tray's id: `app.tray_by_id(TRAY_ID)`.
pub const TRAY_ID: &str = "concord";

const STATUS: &str = "status";
const SYNC_NOW: &str = "sync-now";
const PAUSE: &str = "pause";
const OPEN: &str = "open";
const QUIT: &str = "quit";

/// The menu items whose text changes with the status.
pub struct TrayMenu {
    status: MenuItem<Wry>,
    pause: MenuItem<Wry>,
}

/// Builds the tray showing `status`. Call once, from `setup`.
pub fn build(app: &AppHandle<Wry>, status: &Status) -> tauri::Result<TrayMenu> {
    let tray = TrayMenu {
        status: MenuItem::with_id(app, STATUS, &status.line, opens_page(status), None::<&str>)?,
        pause: MenuItem::with_id(app, PAUSE, pause_label(status), true, None::<&str>)?,
    };
    let menu = Menu::with_items(
        app,
        &[
            &tray.status,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, SYNC_NOW, "Sync now", true, None::<&str>)?,
            &tray.pause,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, OPEN, "Open Concord", true, None::<&str>)?,
            &MenuItem::with_id(app, QUIT, "Quit", true, None::<&str>)?,
        ],
    )?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(status.state))
        .tooltip(&status.line)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(on_menu_event)
        .build(app)?;
    Ok(tray)
}

impl TrayMenu {
    /// Shows `status`: the first line, the Pause/Resume label and the icon.
    pub fn show(&self, app: &AppHandle<Wry>, status: &Status) {
        self.show_line(app, &status.line, icon(status.state));
        let updated = self
            .pause
            .set_text(pause_label(status))
            .and_then(|()| self.status.set_enabled(opens_page(status)));
        if let Err(error) = updated {
            tracing::warn!(%error, "cannot update the tray menu");
        }
    }

    /// Shows that the status could not be read, with the reason.
    pub fn show_unreadable(&self, app: &AppHandle<Wry>, error: &str) {
        let line = format!("Cannot read the status: {error}");
        self.show_line(app, &line, icon(StatusState::Error));
        if let Err(error) = self.status.set_enabled(false) {
            tracing::warn!(%error, "cannot update the tray menu");
        }
    }

    fn show_line(&self, app: &AppHandle<Wry>, line: &str, icon: Image<'static>) {
        let updated = self.status.set_text(line).and_then(|()| {
            let Some(tray) = app.tray_by_id(TRAY_ID) else {
                return Ok(());
            };
            tray.set_icon(Some(icon))?;
            tray.set_tooltip(Some(line))
        });
        if let Err(error) = updated {
            tracing::warn!(%error, "cannot update the tray");
        }
    }
}

/// The status line is a button when a page explains it ("3 conflicts" opens Conflicts, a
/// failure opens Activity).
fn opens_page(status: &Status) -> bool {
    status.page.is_some()
}

fn pause_label(status: &Status) -> &'static str {
    if status.paused { "Resume" } else { "Pause" }
}

fn icon(state: StatusState) -> Image<'static> {
    match state {
        StatusState::Idle => include_image!("../icons/tray-idle.png"),
        StatusState::Syncing => include_image!("../icons/tray-syncing.png"),
        StatusState::Attention => include_image!("../icons/tray-attention.png"),
        StatusState::Error => include_image!("../icons/tray-error.png"),
        StatusState::Paused => include_image!("../icons/tray-paused.png"),
    }
}

/// Runs on the main thread: anything that touches the database is sent to a task.
fn on_menu_event(app: &AppHandle<Wry>, event: MenuEvent) {
    match event.id().as_ref() {
        SYNC_NOW => spawn_action(app, "sync now", |app| async move {
            app.state::<Shell>().sync_now(&app).await
        }),
        PAUSE => spawn_action(app, "pause or resume", |app| async move {
            app.state::<Shell>().toggle_paused(&app).await
        }),
        OPEN => window::show_main(app),
        STATUS => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let page = match app.state::<Shell>().publish(&app).await {
                    Ok(status) => status.page,
                    Err(_) => None,
                };
                window::show_main(&app);
                let Some(page) = page else { return };
                let id = match page {
                    StatusPage::Conflicts => "conflicts",
                    StatusPage::Activity => "activity",
                };
                if let Err(error) = app.emit(OPEN_PAGE, id) {
                    tracing::warn!(%error, page = id, "cannot open the page");
                }
            });
        }
        QUIT => app.exit(0),
        _ => {}
    }
}

fn spawn_action<F, Fut>(app: &AppHandle<Wry>, what: &'static str, action: F)
where
    F: FnOnce(AppHandle<Wry>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Status, String>> + Send + 'static,
{
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(error) = action(app).await {
            // The status line already shows a failed read; this is for the log.
            tracing::warn!(%error, "tray menu: {what} failed");
        }
    });
}
