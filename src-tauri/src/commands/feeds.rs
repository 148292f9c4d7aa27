//! The Feeds page's commands: subscriptions with unread counts, status and next check; entries
//! and the reader; read, star, mute and interval; Refresh now. Every refresh that completes in
//! this app (Refresh now, adding a feed, or a scheduled "feeds.refresh" run this app's scheduler
//! executes) is announced to the window as `feeds-refreshed`, and what it found new as one
//! desktop notification, composed by core's notify policy (mutes, quiet hours), whose action
//! opens the window on the Feeds page (`open-page`).

use chrono::Utc;
use concord_core::Concord;
use concord_core::feeds::fetch::ErrorClass;
use concord_core::feeds::notify::Notification;
use concord_core::feeds::schedule::{OVERRIDE_MAX, OVERRIDE_MIN};
use concord_core::feeds::store::{self, EntryFilter, EntryRow, FeedRow};
use concord_core::feeds::{FeedError, RefreshOptions, RefreshSummary, refresh, workflow};
use concord_durable::{Event, RunState};
use notify_rust::NotificationResponse;
use rusqlite::Connection;
use tauri::{AppHandle, Emitter, Manager, State, Wry};
use tokio::sync::{Mutex, broadcast};

use crate::shell::Shell;
use crate::window;

/// The event the Feeds page follows; its payload is the [`RefreshSummary`].
pub const FEEDS_REFRESHED: &str = "feeds-refreshed";
/// Asks the window to show a page; its payload is the page's id (`"feeds"`).
pub const OPEN_PAGE: &str = "open-page";
/// The most entries one list returns (a feed keeps at most 500, starred ones aside).
pub const ENTRIES_LIMIT_MAX: u32 = 500;
/// The notification's button; "default" is a click on the notification itself.
const OPEN_FEEDS_ACTION: &str = "open-feeds";

/// One refresh at a time from this app: a second Refresh now waits for the first, whose
/// conditional GETs leave it little to do.
#[derive(Default)]
pub struct Refreshing(Mutex<()>);

/// Runs `call` on a connection of its own, off the async workers.
async fn with_conn<T, F>(shell: &Shell, call: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, FeedError> + Send + 'static,
{
    shell
        .blocking(move |concord: &Concord| call(&concord.database().connect()?))
        .await
}

/// Every subscription with its unread count, status, last error and suggestion, and when it
/// is checked next and why.
#[tauri::command]
pub async fn feeds(shell: State<'_, Shell>) -> Result<Vec<FeedRow>, String> {
    with_conn(&shell, store::list_feeds).await
}

/// Subscribes to `url` and checks it at once, so a wrong address is said now: an address that
/// does not give a feed is not kept; one that cannot be reached right now is kept, failing,
/// and retried. Returns the feed as it is after the check.
#[tauri::command]
pub async fn add_feed(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    url: String,
) -> Result<FeedRow, String> {
    let (id, added) = shell
        .blocking(move |concord| {
            let conn = concord.database().connect().map_err(|e| e.to_string())?;
            let added =
                store::add_feed(&conn, &url, None, None, Utc::now()).map_err(|e| e.to_string())?;
            // Background refreshes start with the first subscription.
            workflow::schedule(concord.engine()).map_err(|e| e.to_string())?;
            Ok::<_, String>(added)
        })
        .await?;
    if added {
        let opts = RefreshOptions {
            only: vec![id],
            ..RefreshOptions::default()
        };
        let summary = run_refresh(&app, opts).await?;
        if let Some(failure) = summary.failures.iter().find(|f| f.feed_id == id)
            && failure.class != ErrorClass::Transient
        {
            with_conn(&shell, move |conn| store::remove_feed(conn, id)).await?;
            publish_feeds(&app, &summary).await;
            return Err(format!(
                "Not subscribed: {} — {}",
                failure.error, failure.suggestion
            ));
        }
    }
    with_conn(&shell, move |conn| store::feed(conn, id)).await
}

/// Unsubscribes; the feed's entries go too.
#[tauri::command]
pub async fn remove_feed(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    id: i64,
) -> Result<(), String> {
    with_conn(&shell, move |conn| store::remove_feed(conn, id)).await?;
    // The tray's unread count changes with the entries.
    let _ = shell.publish(&app).await;
    Ok(())
}

/// Entries of one feed (or of all), newest first, at most `limit` (1 to
/// [`ENTRIES_LIMIT_MAX`]), without their HTML: [`feed_entry`] gives it for the reader.
#[tauri::command]
pub async fn feed_entries(
    shell: State<'_, Shell>,
    feed_id: Option<i64>,
    limit: u32,
) -> Result<Vec<EntryRow>, String> {
    let filter = EntryFilter {
        feed_id,
        limit: Some(limit.clamp(1, ENTRIES_LIMIT_MAX)),
        ..EntryFilter::default()
    };
    let mut entries = with_conn(&shell, move |conn| store::entries(conn, &filter)).await?;
    for entry in &mut entries {
        entry.html = None;
    }
    Ok(entries)
}

/// One entry with its sanitized HTML (ammonia's allowlist, applied before it was stored).
#[tauri::command]
pub async fn feed_entry(
    shell: State<'_, Shell>,
    id: i64,
    feed_id: i64,
) -> Result<EntryRow, String> {
    // The store lists by feed; a feed keeps a bounded number of entries.
    let filter = EntryFilter {
        feed_id: Some(feed_id),
        ..EntryFilter::default()
    };
    let entries = with_conn(&shell, move |conn| store::entries(conn, &filter)).await?;
    entries
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| format!("entry {id} is gone: the feed no longer keeps it"))
}

/// Marks entries read (or unread); returns how many changed.
#[tauri::command]
pub async fn mark_read(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    ids: Vec<i64>,
    read: bool,
) -> Result<usize, String> {
    let changed = with_conn(&shell, move |conn| store::mark_read(conn, &ids, read)).await?;
    let _ = shell.publish(&app).await;
    Ok(changed)
}

/// Marks every entry of one feed (or of all) read; returns how many changed.
#[tauri::command]
pub async fn mark_all_read(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    feed_id: Option<i64>,
) -> Result<usize, String> {
    let changed = with_conn(&shell, move |conn| store::mark_all_read(conn, feed_id)).await?;
    let _ = shell.publish(&app).await;
    Ok(changed)
}

#[tauri::command]
pub async fn set_starred(
    shell: State<'_, Shell>,
    ids: Vec<i64>,
    starred: bool,
) -> Result<usize, String> {
    with_conn(&shell, move |conn| store::set_starred(conn, &ids, starred)).await
}

/// Mutes (or unmutes) a feed's notifications; returns the feed as it is afterwards.
#[tauri::command]
pub async fn set_feed_muted(
    shell: State<'_, Shell>,
    id: i64,
    muted: bool,
) -> Result<FeedRow, String> {
    with_conn(&shell, move |conn| {
        store::set_muted(conn, id, muted)?;
        store::feed(conn, id)
    })
    .await
}

/// Checks the feed every `minutes` (within the override bounds), or with `None` lets its
/// interval adapt again; returns the feed with its new next check.
#[tauri::command]
pub async fn set_feed_interval(
    shell: State<'_, Shell>,
    id: i64,
    minutes: Option<u64>,
) -> Result<FeedRow, String> {
    let interval = minutes.map(|m| std::time::Duration::from_secs(m.saturating_mul(60)));
    if let Some(every) = interval
        && !(OVERRIDE_MIN..=OVERRIDE_MAX).contains(&every)
    {
        return Err(format!(
            "Give an interval between {} and {} minutes",
            OVERRIDE_MIN.as_secs() / 60,
            OVERRIDE_MAX.as_secs() / 60
        ));
    }
    with_conn(&shell, move |conn| {
        store::set_interval_override(conn, id, interval)?;
        store::feed(conn, id)
    })
    .await
}

/// Refresh now: checks every live feed (conditional GETs, hosts that asked to wait are left
/// alone) and returns what it did; the window also hears `feeds-refreshed`.
#[tauri::command]
pub async fn refresh_feeds(app: AppHandle<Wry>) -> Result<RefreshSummary, String> {
    let opts = RefreshOptions {
        force: true,
        ..RefreshOptions::default()
    };
    run_refresh(&app, opts).await
}

/// Opens an entry's link in the person's browser; the webview itself never navigates away.
#[tauri::command]
pub fn open_link(url: String) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("Concord opens only web links, not {url:?}"));
    }
    let mut opener = std::process::Command::new("xdg-open");
    opener
        .arg(&url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match opener.spawn() {
        Ok(mut child) => {
            // Reaped off the caller: xdg-open returns once the browser has it.
            std::thread::spawn(move || child.wait());
            Ok(())
        }
        Err(error) => Err(format!("Cannot open {url}: xdg-open failed: {error}")),
    }
}

async fn run_refresh(app: &AppHandle<Wry>, opts: RefreshOptions) -> Result<RefreshSummary, String> {
    let db = app.state::<Shell>().concord().database().clone();
    let refreshing = app.state::<Refreshing>();
    let _one = refreshing.0.lock().await;
    let summary = refresh(&db, &opts).await.map_err(|e| e.to_string())?;
    publish_feeds(app, &summary).await;
    announce(app, summary.notification.clone());
    Ok(summary)
}

/// Tells the window (and the tray's unread count) that a refresh changed the feeds.
async fn publish_feeds(app: &AppHandle<Wry>, summary: &RefreshSummary) {
    if let Err(error) = app.emit(FEEDS_REFRESHED, summary) {
        tracing::warn!(%error, "cannot tell the window the feeds were refreshed");
    }
    let _ = app.state::<Shell>().publish(app).await;
}

/// Sends the refresh's one notification, if it has one, and opens the Feeds page when the
/// person acts on it. Transient errors never get here: only new entries are announced.
fn announce(app: &AppHandle<Wry>, notification: Option<Notification>) {
    let Some(notification) = notification else {
        return;
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shown = notify_rust::Notification::new()
            .appname("Concord")
            .summary(&notification.summary)
            .body(&escape_markup(&notification.body))
            .action("default", "Open Feeds")
            .action(OPEN_FEEDS_ACTION, "Open Feeds")
            .show_async()
            .await;
        let handle = match shown {
            Ok(handle) => handle,
            Err(error) => {
                tracing::warn!(%error, "cannot show the new-entries notification");
                return;
            }
        };
        handle
            .wait_for_action_async(|response| match response {
                NotificationResponse::Default | NotificationResponse::Action(_) => {
                    window::show_main(&app);
                    if let Err(error) = app.emit(OPEN_PAGE, "feeds") {
                        tracing::warn!(%error, "cannot open the Feeds page");
                    }
                }
                _ => {}
            })
            .await;
    });
}

/// Servers may read the body as markup (`<b>`, `<a>`): entry titles are plain text.
pub(crate) fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Follows the scheduled "feeds.refresh" runs this app's scheduler completes: each is
/// announced as a refresh from the window is. (A run `concord daemon` completes raises no event
/// here; the window reads counts again when the status changes.)
pub async fn follow_scheduled_refreshes(
    app: AppHandle<Wry>,
    mut events: broadcast::Receiver<Event>,
) {
    loop {
        let id = match events.recv().await {
            Ok(Event::Run {
                id,
                kind,
                state: RunState::Completed,
                ..
            }) if kind == workflow::WORKFLOW_KIND => id,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let shell = app.state::<Shell>();
        let detail = shell
            .core(move |concord| Ok(concord.engine().show(id)?))
            .await;
        let summary = detail.and_then(|detail| {
            serde_json::from_value::<RefreshSummary>(detail.result.unwrap_or_default())
                .map_err(|e| format!("run {id} left no refresh summary: {e}"))
        });
        match summary {
            Ok(summary) => {
                publish_feeds(&app, &summary).await;
                announce(&app, summary.notification);
            }
            Err(error) => tracing::warn!(%error, "cannot read a scheduled feed refresh"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_titles_cannot_become_notification_markup() {
        assert_eq!(
            escape_markup("<b>Q&A</b> <a href=x>"),
            "&lt;b&gt;Q&amp;A&lt;/b&gt; &lt;a href=x&gt;"
        );
    }
}
