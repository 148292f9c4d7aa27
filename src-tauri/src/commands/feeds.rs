//! The Feeds page's commands: subscriptions with unread counts, status and next check; entries
//! and the reader; read, star, mute and interval; Refresh now. Each is one call of core's feed
//! operations (`Concord::add_feed`, ...), the same `concord feeds` makes; errors cross as
//! `{kind, message}`. Every refresh that completes in
//! this app (Refresh now, adding a feed, or a scheduled "feeds.refresh" run this app's scheduler
//! executes) is announced to the window as `feeds-refreshed`, and what it found new as one
//! desktop notification, composed by core's notify policy (mutes, quiet hours), whose action
//! opens the window on the Feeds page (`open-page`).

use std::time::Duration;

use concord_core::OpError;
use concord_core::feeds::notify::Notification;
use concord_core::feeds::{EntryRow, FeedRow, RefreshSummary, workflow};
use concord_core::ops::{Entries, EntryQuery, FeedRef, FeedsToRefresh, Mark, NewFeed, web_link};
use concord_durable::{Event, RunState};
use notify_rust::NotificationResponse;
use tauri::{AppHandle, Emitter, Manager, State, Wry};
use tokio::sync::broadcast;

use crate::shell::Shell;
use crate::window;

/// The event the Feeds page follows; its payload is the [`RefreshSummary`].
pub const FEEDS_REFRESHED: &str = "feeds-refreshed";
/// Asks the window to show a page; its payload is the page's id (`"feeds"`).
pub const OPEN_PAGE: &str = "open-page";
/// The notification's button; "default" is a click on the notification itself.
const OPEN_FEEDS_ACTION: &str = "open-feeds";

/// Every subscription with its unread count, status, last error and suggestion, and when it
/// is checked next and why.
#[tauri::command]
pub async fn feeds(shell: State<'_, Shell>) -> Result<Vec<FeedRow>, OpError> {
    shell.op(|concord| concord.feeds()).await
}

/// Subscribes to `url` and checks it at once, so a wrong address is said now: an address that
/// does not give a feed is not kept; one that cannot be reached right now is kept, failing,
/// and retried. Returns the feed as it is after the check.
#[tauri::command]
pub async fn add_feed(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    url: String,
) -> Result<FeedRow, OpError> {
    let new = NewFeed {
        url,
        check: true,
        ..NewFeed::default()
    };
    match shell.concord().add_feed(new).await {
        Ok(added) => {
            if let Some(summary) = added.refresh {
                refreshed(&app, summary).await;
            }
            Ok(added.feed)
        }
        Err(error) => {
            // A refused address was briefly subscribed: lists read again.
            let _ = shell.publish(&app).await;
            Err(error)
        }
    }
}

/// Unsubscribes; the feed's entries go too.
#[tauri::command]
pub async fn remove_feed(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    id: i64,
) -> Result<(), OpError> {
    shell
        .op(move |concord| concord.remove_feed(&id.into()))
        .await?;
    // The tray's unread count changes with the entries.
    let _ = shell.publish(&app).await;
    Ok(())
}

/// Entries of one feed (or of all), newest first, at most `limit` (within core's limits),
/// without their HTML: [`feed_entry`] gives it for the reader.
#[tauri::command]
pub async fn feed_entries(
    shell: State<'_, Shell>,
    feed_id: Option<i64>,
    limit: u32,
) -> Result<Vec<EntryRow>, OpError> {
    let query = EntryQuery {
        feed: feed_id.map(FeedRef::Id),
        limit: Some(limit),
        ..EntryQuery::default()
    };
    shell.op(move |concord| concord.feed_entries(&query)).await
}

/// One entry with its sanitized HTML (ammonia's allowlist, applied before it was stored).
#[tauri::command]
pub async fn feed_entry(
    shell: State<'_, Shell>,
    id: i64,
    feed_id: i64,
) -> Result<EntryRow, OpError> {
    shell
        .op(move |concord| concord.feed_entry(id, feed_id))
        .await
}

/// Marks entries read (or unread); returns how many changed.
#[tauri::command]
pub async fn mark_read(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    ids: Vec<i64>,
    read: bool,
) -> Result<usize, OpError> {
    let mark = if read { Mark::Read } else { Mark::Unread };
    mark_entries(&app, &shell, Entries::Ids(ids), mark).await
}

/// Marks every entry of one feed (or of all) read; returns how many changed.
#[tauri::command]
pub async fn mark_all_read(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    feed_id: Option<i64>,
) -> Result<usize, OpError> {
    let all = Entries::All(feed_id.map(FeedRef::Id));
    mark_entries(&app, &shell, all, Mark::Read).await
}

#[tauri::command]
pub async fn set_starred(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    ids: Vec<i64>,
    starred: bool,
) -> Result<usize, OpError> {
    let mark = if starred {
        Mark::Starred
    } else {
        Mark::Unstarred
    };
    mark_entries(&app, &shell, Entries::Ids(ids), mark).await
}

/// Marks entries; the tray's unread count follows. Returns how many changed.
async fn mark_entries(
    app: &AppHandle<Wry>,
    shell: &Shell,
    which: Entries,
    mark: Mark,
) -> Result<usize, OpError> {
    let marked = shell
        .op(move |concord| concord.mark_entries(which, mark))
        .await?;
    let _ = shell.publish(app).await;
    Ok(marked.changed)
}

/// Mutes (or unmutes) a feed's notifications; returns the feed as it is afterwards.
#[tauri::command]
pub async fn set_feed_muted(
    shell: State<'_, Shell>,
    id: i64,
    muted: bool,
) -> Result<FeedRow, OpError> {
    shell
        .op(move |concord| concord.set_feed_muted(&id.into(), muted))
        .await
}

/// Checks the feed every `minutes` (within core's bounds), or with `None` lets its interval
/// adapt again; returns the feed with its new next check.
#[tauri::command]
pub async fn set_feed_interval(
    shell: State<'_, Shell>,
    id: i64,
    minutes: Option<u64>,
) -> Result<FeedRow, OpError> {
    let every = minutes.map(|m| Duration::from_secs(m.saturating_mul(60)));
    shell
        .op(move |concord| concord.set_feed_interval(&id.into(), every))
        .await
}

/// Refresh now: checks every live feed (conditional GETs, hosts that asked to wait are left
/// alone) and returns what it did; the window also hears `feeds-refreshed`.
#[tauri::command]
pub async fn refresh_feeds(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
) -> Result<RefreshSummary, OpError> {
    let summary = shell.concord().refresh_feeds(FeedsToRefresh::All).await?;
    refreshed(&app, summary.clone()).await;
    Ok(summary)
}

/// Opens an entry's link in the person's browser; the webview itself never navigates away.
#[tauri::command]
pub fn open_link(url: String) -> Result<(), OpError> {
    let link = web_link(&url)?;
    let mut opener = std::process::Command::new("xdg-open");
    opener
        .arg(link)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match opener.spawn() {
        Ok(mut child) => {
            // Reaped off the caller: xdg-open returns once the browser has it.
            std::thread::spawn(move || child.wait());
            Ok(())
        }
        Err(error) => Err(OpError::Invalid(format!(
            "cannot open {link}: xdg-open failed: {error}"
        ))),
    }
}

/// Tells the window and the tray what a refresh this app ran found, and announces its new
/// entries.
async fn refreshed(app: &AppHandle<Wry>, summary: RefreshSummary) {
    publish_feeds(app, &summary).await;
    announce(app, summary.notification);
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
        let summary = app
            .state::<Shell>()
            .op(move |concord| concord.feeds_refreshed_by(id))
            .await;
        match summary {
            Ok(summary) => refreshed(&app, summary).await,
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
