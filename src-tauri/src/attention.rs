//! What needs the person raises one desktop notification when it appears: syncs that stopped
//! working (failing for longer than a blip, a password refused, a server gone, a pair stopped by
//! a safety guard; the action opens Activity; a recovery clears it, and a new failure notifies again)
//! and new sync conflicts (one per sync run however many it found, each conflict announced
//! once; the action opens Conflicts). Transient errors never notify: the engine retries them.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use concord_core::sync::resolve::conflicts::ConflictSummary;
use concord_core::{Concord, Health};
use notify_rust::NotificationResponse;
use tauri::{AppHandle, Emitter, Wry};

use crate::commands::feeds::{OPEN_PAGE, escape_markup};
use crate::window;

/// At most this many reasons (or conflicting items) in one notification; the page lists all.
const REASONS_MAX: usize = 3;

/// Sends one notification naming what stopped working (failing for longer than a blip, or
/// waiting for the person), each with its cause and next attempt; nothing for an empty list.
pub fn announce_broken(app: &AppHandle<Wry>, broken: &[&Health], now_ms: i64) {
    if let Some((summary, body)) = broken_notice(broken, now_ms) {
        notify(app, summary, body, Page::Activity);
    }
}

/// "Can't sync work" and "work: Can't reach dav.example.com: retrying at 14:05".
fn broken_notice(broken: &[&Health], now_ms: i64) -> Option<(String, String)> {
    let summary = match broken {
        [] => return None,
        [one] => format!("Can't sync {}", one.name),
        many => format!("{} syncs are not working", many.len()),
    };
    let mut body: Vec<String> = broken
        .iter()
        .take(REASONS_MAX)
        .map(|h| escape_markup(&format!("{}: {}", h.name, h.sentence(now_ms))))
        .collect();
    if broken.len() > REASONS_MAX {
        body.push(format!("and {} more", broken.len() - REASONS_MAX));
    }
    Some((summary, body.join("\n")))
}

/// The page a notification's action opens.
#[derive(Debug, Clone, Copy)]
enum Page {
    Activity,
    Conflicts,
}

impl Page {
    fn id(self) -> &'static str {
        match self {
            Page::Activity => "activity",
            Page::Conflicts => "conflicts",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Page::Activity => "Open Activity",
            Page::Conflicts => "Open Conflicts",
        }
    }
}

/// Shows one notification (`body` already escaped) whose click or button opens `page`.
fn notify(app: &AppHandle<Wry>, summary: String, body: String, page: Page) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shown = notify_rust::Notification::new()
            .appname("Concord")
            .summary(&summary)
            .body(&body)
            .action("default", page.action())
            .action(page.id(), page.action())
            .show_async()
            .await;
        let handle = match shown {
            Ok(handle) => handle,
            Err(error) => {
                tracing::warn!(%error, page = page.id(), "cannot show a notification");
                return;
            }
        };
        handle
            .wait_for_action_async(|response| {
                if let NotificationResponse::Default | NotificationResponse::Action(_) = response {
                    window::show_main(&app);
                    if let Err(error) = app.emit(OPEN_PAGE, page.id()) {
                        tracing::warn!(%error, page = page.id(), "cannot open the page");
                    }
                }
            })
            .await;
    });
}

/// Which conflict a notification announced: its id with its item, so a conflict closed and
/// opened again later (which may reuse the id) counts as new.
type ConflictKey = (i64, String);

fn key(conflict: &ConflictSummary) -> ConflictKey {
    (conflict.id, format!("{}/{}", conflict.pair, conflict.uid))
}

/// The open conflicts already announced (or open when the app started: the tray shows those).
/// The shell asks it to announce once no sync is running, so one run's conflicts, recorded in
/// batches, make one notification.
pub struct ConflictNotices {
    announced: Mutex<Option<HashSet<ConflictKey>>>,
}

impl ConflictNotices {
    /// Knows nothing yet: the first [`ConflictNotices::announce_new`] only learns what is open.
    pub fn new() -> Self {
        Self {
            announced: Mutex::new(None),
        }
    }

    /// Reads the open conflicts; those not announced yet get one notification together, and
    /// those closed since are forgotten. Blocks on SQLite: call it off the async workers.
    pub fn announce_new(&self, app: &AppHandle<Wry>, concord: &Concord) {
        let open = match concord.conflicts() {
            Ok(open) => open,
            Err(error) => {
                tracing::warn!(%error, "cannot read the open conflicts");
                return;
            }
        };
        // A panic elsewhere while it was held leaves a set that is still right to use.
        let mut announced = self
            .announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = not_announced(&mut announced, &open);
        drop(announced);
        if let Some((summary, body)) = conflict_notice(&fresh) {
            notify(app, summary, body, Page::Conflicts);
        }
    }
}

/// The conflicts of `open` not in `announced`, which then holds exactly `open` (so a closed
/// conflict is forgotten). A first read (`None`) only learns what is open.
fn not_announced<'a>(
    announced: &mut Option<HashSet<ConflictKey>>,
    open: &'a [ConflictSummary],
) -> Vec<&'a ConflictSummary> {
    let fresh = match announced.as_ref() {
        Some(before) => open.iter().filter(|c| !before.contains(&key(c))).collect(),
        None => Vec::new(),
    };
    *announced = Some(open.iter().map(key).collect());
    fresh
}

/// "2 new conflicts" and the items' titles (at most [`REASONS_MAX`]); `None` for none.
fn conflict_notice(fresh: &[&ConflictSummary]) -> Option<(String, String)> {
    if fresh.is_empty() {
        return None;
    }
    let summary = match fresh.len() {
        1 => "A new conflict needs your choice".to_owned(),
        n => format!("{n} new conflicts need your choice"),
    };
    let mut body: Vec<String> = fresh
        .iter()
        .take(REASONS_MAX)
        .map(|c| {
            let title = c.details.title.as_deref().unwrap_or(&c.summary);
            escape_markup(&format!("{title} ({})", c.pair))
        })
        .collect();
    if fresh.len() > REASONS_MAX {
        body.push(format!("and {} more", fresh.len() - REASONS_MAX));
    }
    Some((summary, body.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::sync::resolve::conflicts::Details;

    fn conflict(id: i64, title: &str) -> ConflictSummary {
        ConflictSummary {
            id,
            pair: "work".to_owned(),
            uid: format!("uid-{id}"),
            kind: "both-edited".to_owned(),
            summary: format!("{title} (event)"),
            properties: vec!["VEVENT SUMMARY".to_owned()],
            details: Details {
                title: Some(title.to_owned()),
                ..Details::default()
            },
            updated_at_ms: 0,
        }
    }

    #[test]
    fn many_new_conflicts_make_one_notice_naming_a_few() {
        let all: Vec<ConflictSummary> =
            (1..=5).map(|n| conflict(n, &format!("Talk {n}"))).collect();
        let fresh: Vec<&ConflictSummary> = all.iter().collect();
        let (summary, body) = conflict_notice(&fresh).unwrap();
        assert_eq!(summary, "5 new conflicts need your choice");
        assert_eq!(
            body,
            "Talk 1 (work)\nTalk 2 (work)\nTalk 3 (work)\nand 2 more"
        );
        assert!(conflict_notice(&[]).is_none());
    }

    #[test]
    fn each_conflict_is_announced_once_and_again_only_after_it_closed() {
        let mut announced = None;
        let open_at_start = [conflict(1, "Old")];
        assert!(not_announced(&mut announced, &open_at_start).is_empty());

        let after_a_sync = [conflict(1, "Old"), conflict(2, "New"), conflict(3, "Newer")];
        let fresh: Vec<i64> = not_announced(&mut announced, &after_a_sync)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(fresh, [2, 3]);
        assert!(not_announced(&mut announced, &after_a_sync).is_empty());

        // Conflict 2 is resolved; the same item conflicts again later under the same id.
        assert!(not_announced(&mut announced, &[conflict(1, "Old")]).is_empty());
        let again = [conflict(1, "Old"), conflict(2, "New")];
        assert_eq!(not_announced(&mut announced, &again).len(), 1);
    }

    #[test]
    fn what_broke_is_named_with_its_cause_and_next_attempt() {
        use concord_core::{HealthState, SubjectKind};
        let work = Health {
            kind: SubjectKind::Pair,
            name: "work".to_owned(),
            part_of: None,
            state: HealthState::Failing,
            cause: Some("Can't reach <dav>".to_owned()),
            what_to_do: None,
            error: None,
            failed_attempts: 3,
            failing_since_ms: None,
            next_attempt_at_ms: None,
            waits_for_scheduler: false,
            paused: false,
            synced_at_ms: None,
            said: String::new(),
        };
        let (summary, body) = broken_notice(&[&work], 0).unwrap();
        assert_eq!(summary, "Can't sync work");
        assert_eq!(
            body,
            "work: Can't reach &lt;dav&gt;: tried again at the next sync"
        );
        assert!(broken_notice(&[], 0).is_none());
    }

    #[test]
    fn titles_cannot_become_markup() {
        let one = conflict(1, "<b>Q&A</b>");
        let (summary, body) = conflict_notice(&[&one]).unwrap();
        assert_eq!(summary, "A new conflict needs your choice");
        assert_eq!(body, "&lt;b&gt;Q&amp;A&lt;/b&gt; (work)");
    }
}
