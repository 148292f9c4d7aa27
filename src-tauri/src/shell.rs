//! The app's one piece of state: the opened [`Concord`] and the status last shown. Every change,
//! whether it comes from a command, the tray menu or the 2 s poll, goes through [`Shell::publish`],
//! which updates the tray and tells the window (`status-changed`) only when the status changed,
//! announces what newly stopped working (core's `Status::newly_broken`), and announces new
//! conflicts once no sync is running (so one run makes one notification).

use std::sync::Arc;
use std::time::Duration;

use concord_core::{Concord, CoreError, OpError, Status};
use tauri::{AppHandle, Emitter, Manager, Wry};
use tokio::sync::Mutex;

use crate::attention::{self, ConflictNotices};
use crate::tray::TrayMenu;

/// The event the settings window listens to; its payload is the new [`Status`].
pub const STATUS_CHANGED: &str = "status-changed";

/// How often the background task reads the status: changes made by `concord daemon` or a
/// `concord sync` in another process reach the tray within this time.
pub const STATUS_POLL_INTERVAL: Duration = Duration::from_secs(2);

pub struct Shell {
    concord: Concord,
    tray: TrayMenu,
    /// What the tray and the window show now; `None` after a failed read, so the next good read
    /// is published whatever it says. Held across a publish so updates never reorder.
    shown: Mutex<Option<Status>>,
    /// The conflicts already announced; the first read (in [`Shell::new`]) only learns them.
    notices: Arc<ConflictNotices>,
}

impl Shell {
    /// Blocks on SQLite once, to learn the conflicts already open (they are not announced
    /// again: the tray shows them).
    pub fn new(app: &AppHandle<Wry>, concord: Concord, tray: TrayMenu, shown: Status) -> Self {
        let notices = Arc::new(ConflictNotices::new());
        notices.announce_new(app, &concord);
        Self {
            concord,
            tray,
            shown: Mutex::new(Some(shown)),
            notices,
        }
    }

    pub fn concord(&self) -> &Concord {
        &self.concord
    }

    /// Runs a `concord-core` call off the async workers (it blocks on SQLite) and turns its
    /// error into the sentence the window shows.
    pub async fn core<T, F>(&self, call: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&Concord) -> Result<T, CoreError> + Send + 'static,
    {
        self.blocking(call).await
    }

    /// Runs one of core's operations off the async workers (it blocks on SQLite); its typed
    /// error crosses to the window as `{kind, message}`.
    pub async fn op<T, F>(&self, call: F) -> Result<T, OpError>
    where
        T: Send + 'static,
        F: FnOnce(&Concord) -> Result<T, OpError> + Send + 'static,
    {
        self.off_workers(call)
            .await
            .unwrap_or_else(|unfinished| Err(OpError::Invalid(unfinished)))
    }

    /// [`Shell::core`] for calls with an error type of their own (e.g. `FeedError`).
    pub async fn blocking<T, E, F>(&self, call: F) -> Result<T, String>
    where
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce(&Concord) -> Result<T, E> + Send + 'static,
    {
        self.off_workers(call)
            .await?
            .map_err(|error| error.to_string())
    }

    /// Runs `call` on a blocking thread; `Err` says why it could not finish (it panicked).
    async fn off_workers<R, F>(&self, call: F) -> Result<R, String>
    where
        R: Send + 'static,
        F: FnOnce(&Concord) -> R + Send + 'static,
    {
        let concord = self.concord.clone();
        tauri::async_runtime::spawn_blocking(move || call(&concord))
            .await
            .map_err(|error| format!("Concord could not finish the request: {error}"))
    }

    /// Reads the status; if it differs from what is shown, updates the tray and emits
    /// `status-changed`. Returns the status read.
    pub async fn publish(&self, app: &AppHandle<Wry>) -> Result<Status, String> {
        let mut shown = self.shown.lock().await;
        let status = match self.core(|concord| concord.status()).await {
            Ok(status) => status,
            Err(error) => {
                tracing::warn!(%error, "cannot read the status");
                if shown.take().is_some() {
                    self.tray.show_unreadable(app, &error);
                }
                return Err(error);
            }
        };
        if shown.as_ref() != Some(&status) {
            tracing::debug!(line = %status.line, "status changed");
            if let Some(before) = shown.as_ref() {
                attention::announce_broken(app, &status.newly_broken(before), status.read_at_ms);
            }
            if status.jobs.running == 0 {
                self.announce_new_conflicts(app).await;
            }
            self.tray.show(app, &status);
            if let Err(error) = app.emit(STATUS_CHANGED, &status) {
                tracing::warn!(%error, "cannot tell the window the status changed");
            }
            *shown = Some(status.clone());
        }
        Ok(status)
    }

    /// One notification for the conflicts opened since the last announcement, if any.
    async fn announce_new_conflicts(&self, app: &AppHandle<Wry>) {
        let notices = self.notices.clone();
        let app = app.clone();
        let announced = self
            .blocking(move |concord| {
                notices.announce_new(&app, concord);
                Ok::<(), std::convert::Infallible>(())
            })
            .await;
        if let Err(error) = announced {
            tracing::warn!(%error, "cannot announce new conflicts");
        }
    }

    pub async fn set_paused(&self, app: &AppHandle<Wry>, paused: bool) -> Result<Status, String> {
        self.core(move |concord| concord.set_paused(paused)).await?;
        self.publish(app).await
    }

    /// Pause becomes Resume and back, from the tray menu.
    pub async fn toggle_paused(&self, app: &AppHandle<Wry>) -> Result<Status, String> {
        let paused = self.core(|concord| concord.paused()).await?;
        self.set_paused(app, !paused).await
    }

    pub async fn sync_now(&self, app: &AppHandle<Wry>) -> Result<Status, String> {
        self.core(|concord| concord.sync_now()).await?;
        self.publish(app).await
    }
}

/// Keeps the tray and the window in step with changes made outside this process.
pub async fn poll_status(app: AppHandle<Wry>) {
    loop {
        tokio::time::sleep(STATUS_POLL_INTERVAL).await;
        // A failed read is logged and shown by `publish`; the next tick tries again.
        let _ = app.state::<Shell>().publish(&app).await;
    }
}
