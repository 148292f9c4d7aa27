//! Jobs that stopped and need the person (a password refused, a server gone, a pair stopped by
//! a safety guard) raise one desktop notification when they appear, whose action opens the
//! Activity page. Transient errors never notify: the engine retries them on its own.

use concord_core::Concord;
use notify_rust::NotificationResponse;
use tauri::{AppHandle, Emitter, Wry};

use crate::commands::feeds::{OPEN_PAGE, escape_markup};
use crate::window;

/// At most this many reasons in one notification; the Activity page lists them all.
const REASONS_MAX: usize = 3;

/// Sends one notification naming what needs attention now.
pub fn announce(app: &AppHandle<Wry>, concord: &Concord) {
    let reasons: Vec<String> = match concord.engine().schedules() {
        Ok(schedules) => schedules
            .into_iter()
            .filter_map(|s| Some(format!("{}: {}", s.schedule.name, s.attention?)))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read what needs attention");
            return;
        }
    };
    if reasons.is_empty() {
        return;
    }
    let mut body: Vec<String> = reasons
        .iter()
        .take(REASONS_MAX)
        .map(|r| escape_markup(r))
        .collect();
    if reasons.len() > REASONS_MAX {
        body.push(format!("and {} more", reasons.len() - REASONS_MAX));
    }
    let summary = match reasons.len() {
        1 => "A sync needs your attention".to_owned(),
        n => format!("{n} syncs need your attention"),
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shown = notify_rust::Notification::new()
            .appname("Concord")
            .summary(&summary)
            .body(&body.join("\n"))
            .action("default", "Open Activity")
            .show_async()
            .await;
        let handle = match shown {
            Ok(handle) => handle,
            Err(error) => {
                tracing::warn!(%error, "cannot show the needs-attention notification");
                return;
            }
        };
        handle
            .wait_for_action_async(|response| {
                if let NotificationResponse::Default | NotificationResponse::Action(_) = response {
                    window::show_main(&app);
                    if let Err(error) = app.emit(OPEN_PAGE, "activity") {
                        tracing::warn!(%error, "cannot open the Activity page");
                    }
                }
            })
            .await;
    });
}
