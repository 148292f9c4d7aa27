//! Resolving conflicts against real Radicale and Xandikos servers, each paired with a vdir
//! folder. The conflict is made as a person would meet it: the same property edited on the
//! server by another client (curl) and in the folder. Each way of resolving must leave the
//! chosen content on both sides, the losing version in history, and never overwrite a side
//! that changed again. Needs the venv with the servers (`make test` makes it).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use concord_core::sync::conflicts::{self, Keep, Resolution};
use concord_core::sync::state;
use concord_e2e::both_servers;
use concord_e2e::servers::ServerKind;
use concord_e2e::sync_fixture::{Fixture, event, summary_of, write_atomically};

/// Event "c" synced as "Meeting", then retitled on the server (A) and in the folder (B).
/// Returns the conflict's id.
async fn make_conflict(f: &Fixture) -> i64 {
    f.server_put("c.ics", &event("c", "Meeting", "Room 1"));
    f.sync().await;
    f.server_put("c.ics", &event("c", "Server's title", "Room 1"));
    let (path, _) = f.vdir_item("c").unwrap();
    write_atomically(&path, &event("c", "Folder's title", "Room 1"));
    let report = f.sync().await;
    assert_eq!(report.counts.conflicts, 1, "{report:?}");
    let open = conflicts::list(&f.concord).unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    open[0].id
}

/// Resolves as the CLI does: a durable run of the `resolve-conflict` workflow.
async fn resolve(f: &Fixture, id: i64, keep: Keep) -> Resolution {
    let credentials = Arc::new(f.credentials.clone());
    conflicts::resolve_durably(&f.concord, id, keep, credentials)
        .await
        .unwrap()
}

/// The reasons and titles history keeps for `uid`.
fn history(f: &Fixture, uid: &str) -> Vec<(String, String)> {
    let conn = f.concord.database().connect().unwrap();
    state::history(&conn, uid)
        .unwrap()
        .into_iter()
        .filter(|v| v.uid == uid)
        .map(|v| (v.reason, summary_of(&String::from_utf8_lossy(&v.content))))
        .collect()
}

/// Whether `body` has exactly this UID (the fixture's lookup also matches "c" in "c-copy-…").
fn has_uid(body: &str, uid: &str) -> bool {
    body.lines().any(|l| l.trim_end() == format!("UID:{uid}"))
}

fn server_title(f: &Fixture, uid: &str) -> String {
    let items = f.server_items();
    let (_, body) = items.iter().find(|(_, b)| has_uid(b, uid)).unwrap();
    summary_of(body)
}

fn vdir_title(f: &Fixture, uid: &str) -> String {
    let items = f.vdir_items();
    let (_, body) = items.iter().find(|(_, b)| has_uid(b, uid)).unwrap();
    summary_of(body)
}

/// Both sides hold `title` for `uid`, the next sync has nothing to do, and no conflict is
/// open.
async fn assert_settled(f: &Fixture, uid: &str, title: &str) {
    let report = f.sync().await;
    assert!(report.plan.is_empty(), "{report:?}");
    assert_eq!(server_title(f, uid), title);
    assert_eq!(vdir_title(f, uid), title);
    assert!(conflicts::list(&f.concord).unwrap().is_empty());
}

async fn the_inbox_shows_the_conflict_in_readable_terms(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let id = make_conflict(&f).await;
    let open = conflicts::list(&f.concord).unwrap();
    assert_eq!(open[0].uid, "c");
    assert_eq!(open[0].kind, "both-edited");
    assert_eq!(open[0].details.title.as_deref(), Some("Server's title"));
    assert_eq!(
        open[0].details.when.as_deref(),
        Some("2026-12-01 10:00 UTC")
    );
    assert_eq!(open[0].details.location.as_deref(), Some("Room 1"));
    let detail = conflicts::show(&f.concord, id).unwrap();
    let title = |v: &Option<conflicts::Version>| v.as_ref().unwrap().details.title.clone();
    assert_eq!(title(&detail.base).as_deref(), Some("Meeting"));
    assert_eq!(title(&detail.a).as_deref(), Some("Server's title"));
    assert_eq!(title(&detail.b).as_deref(), Some("Folder's title"));
    assert_eq!(detail.differing, ["VEVENT SUMMARY"]);
}
both_servers!(the_inbox_shows_the_conflict_in_readable_terms);

async fn keep_a_puts_the_servers_version_on_both_sides(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let id = make_conflict(&f).await;
    let resolution = resolve(&f, id, Keep::A).await;
    assert!(
        matches!(resolution, Resolution::Resolved { .. }),
        "{resolution:?}"
    );
    assert!(conflicts::list(&f.concord).unwrap().is_empty());
    assert_eq!(vdir_title(&f, "c"), "Server's title");
    assert_settled(&f, "c", "Server's title").await;
    // The folder's version is not lost.
    assert!(
        history(&f, "c")
            .iter()
            .any(|(reason, title)| reason.contains("kept a") && title == "Folder's title"),
        "{:?}",
        history(&f, "c")
    );
    // Resolving again is refused plainly.
    assert!(matches!(
        conflicts::resolve(&f.concord, id, Keep::A, &f.credentials).await,
        Err(conflicts::ConflictError::NoSuchConflict(_))
    ));
}
both_servers!(keep_a_puts_the_servers_version_on_both_sides);

async fn keep_b_puts_the_folders_version_on_both_sides(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let id = make_conflict(&f).await;
    let resolution = resolve(&f, id, Keep::B).await;
    assert!(
        matches!(resolution, Resolution::Resolved { .. }),
        "{resolution:?}"
    );
    assert_eq!(server_title(&f, "c"), "Folder's title");
    assert_settled(&f, "c", "Folder's title").await;
    assert!(
        history(&f, "c")
            .iter()
            .any(|(reason, title)| reason.contains("kept b") && title == "Server's title"),
        "{:?}",
        history(&f, "c")
    );
}
both_servers!(keep_b_puts_the_folders_version_on_both_sides);

async fn keep_both_leaves_two_events_with_different_uids_on_both_sides(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let id = make_conflict(&f).await;
    let Resolution::Resolved {
        copy_uid: Some(copy),
        ..
    } = resolve(&f, id, Keep::Both).await
    else {
        panic!("keep both must make a copy");
    };
    assert_ne!(copy, "c");
    assert_settled(&f, "c", "Server's title").await;
    assert_eq!(server_title(&f, &copy), "Folder's title");
    assert_eq!(vdir_title(&f, &copy), "Folder's title");
    assert_eq!(f.server_items().len(), 2);
    assert_eq!(f.vdir_items().len(), 2);
}
both_servers!(keep_both_leaves_two_events_with_different_uids_on_both_sides);

async fn a_side_changed_again_is_refreshed_never_overwritten(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let id = make_conflict(&f).await;
    // Another client edits the server again after the conflict was shown.
    f.server_put("c.ics", &event("c", "Third title", "Room 1"));
    let resolution = resolve(&f, id, Keep::B).await;
    assert!(
        matches!(resolution, Resolution::Refreshed { closed: false, .. }),
        "{resolution:?}"
    );
    assert_eq!(server_title(&f, "c"), "Third title");
    assert_eq!(vdir_title(&f, "c"), "Folder's title");
    // The conflict now shows what the server holds, and the next sync leaves it be.
    let open = conflicts::list(&f.concord).unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].details.title.as_deref(), Some("Third title"));
    assert_eq!(f.sync().await.counts.conflicts, 0);
    assert_eq!(server_title(&f, "c"), "Third title");
    // Resolved against the refreshed versions, it goes through.
    let resolution = resolve(&f, open[0].id, Keep::B).await;
    assert!(
        matches!(resolution, Resolution::Resolved { .. }),
        "{resolution:?}"
    );
    assert_settled(&f, "c", "Folder's title").await;
    assert!(
        history(&f, "c")
            .iter()
            .any(|(_, title)| title == "Third title"),
        "{:?}",
        history(&f, "c")
    );
}
both_servers!(a_side_changed_again_is_refreshed_never_overwritten);

async fn sides_that_came_to_agree_close_the_conflict_without_a_write(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let id = make_conflict(&f).await;
    // The person copied the server's version into the folder by hand (or a resolution
    // crashed after its write): a repeat finds the sides equal and only records it.
    let (path, _) = f.vdir_item("c").unwrap();
    write_atomically(&path, &event("c", "Server's title", "Room 1"));
    let resolution = resolve(&f, id, Keep::B).await;
    assert!(
        matches!(resolution, Resolution::Refreshed { closed: true, .. }),
        "{resolution:?}"
    );
    assert_settled(&f, "c", "Server's title").await;
}
both_servers!(sides_that_came_to_agree_close_the_conflict_without_a_write);

async fn an_edit_kept_over_a_deletion_returns_to_the_server(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("d.ics", &event("d", "Meeting", "Room 1"));
    f.server_put("other.ics", &event("other", "Lunch", "Cafe"));
    f.sync().await;
    let (href, _) = f.server_item("d").unwrap();
    f.server_delete(&href);
    let (path, _) = f.vdir_item("d").unwrap();
    write_atomically(&path, &event("d", "Edited meanwhile", "Room 1"));
    f.sync().await;
    let open = conflicts::list(&f.concord).unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind, "edit-delete");
    assert_eq!(open[0].details.title.as_deref(), Some("Edited meanwhile"));
    let resolution = resolve(&f, open[0].id, Keep::B).await;
    assert!(
        matches!(resolution, Resolution::Resolved { .. }),
        "{resolution:?}"
    );
    assert_settled(&f, "d", "Edited meanwhile").await;
}
both_servers!(an_edit_kept_over_a_deletion_returns_to_the_server);
