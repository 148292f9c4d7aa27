//! Calendar and contact sync against real Radicale and Xandikos servers, each paired with a
//! vdir folder. The server side is edited by another client (curl), never by Concord's own
//! code, so a 412 or a rewrite comes from the server as a person would meet it.
//! Needs the venv with the servers (`make test` makes it).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::fs;

use concord_core::sync::item::ItemKind;
use concord_core::sync::state::{self, ConflictPolicy, Direction, Side};
use concord_core::sync::{PairSync, SyncOptions, sync_pair};
use concord_e2e::both_servers;
use concord_e2e::servers::ServerKind;
use concord_e2e::sync_fixture::{Fixture, PAIR, event, summary_of, todo, write_atomically};

async fn initial_sync_both_directions(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("s1.ics", &event("s1", "From the server", "Here"));
    f.server_put("s2.ics", &event("s2", "Also from the server", "There"));
    f.vdir_write("v1.ics", &event("v1", "From the folder", "Home"));
    let report = f.sync().await;
    assert_eq!(
        (report.counts.create_a, report.counts.create_b),
        (1, 2),
        "{report:?}"
    );
    assert_eq!(f.server_items().len(), 3);
    assert_eq!(f.vdir_items().len(), 3);
    // The bytes travel as given: the folder holds what the server served.
    let (_, on_server) = f.server_item("s1").unwrap();
    let (_, in_folder) = f.vdir_item("s1").unwrap();
    assert_eq!(on_server, in_folder);
    // Nothing changed: nothing to do, not even a spurious update from server rewrites.
    let again = f.sync().await;
    assert!(again.plan.is_empty(), "{kind}: {again:?}");
}
both_servers!(initial_sync_both_directions);

async fn create_update_delete_on_each_side(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("keep.ics", &event("keep", "Keep", "A"));
    f.server_put(
        "gone-on-server.ics",
        &event("gone-on-server", "Delete me there", "A"),
    );
    f.vdir_write(
        "gone-in-folder.ics",
        &event("gone-in-folder", "Delete me here", "A"),
    );
    f.vdir_write(
        "edit-in-folder.ics",
        &event("edit-in-folder", "Old title", "A"),
    );
    f.sync().await;

    let (href, _) = f.server_item("gone-on-server").unwrap();
    f.server_delete(&href);
    let (path, _) = f.vdir_item("gone-in-folder").unwrap();
    fs::remove_file(path).unwrap();
    let (path, _) = f.vdir_item("edit-in-folder").unwrap();
    write_atomically(&path, &event("edit-in-folder", "New title", "A"));
    f.server_put("new-on-server.ics", &event("new-on-server", "Fresh", "B"));
    f.vdir_write(
        "new-in-folder.ics",
        &event("new-in-folder", "Fresh too", "B"),
    );
    let (href, _) = f.server_item("keep").unwrap();
    f.server_put(
        href.rsplit('/').next().unwrap(),
        &event("keep", "Keep (edited on the server)", "A"),
    );

    let report = f.sync().await;
    assert!(report.deferred.is_empty(), "{report:?}");
    for uid in ["gone-on-server", "gone-in-folder"] {
        assert!(
            f.server_item(uid).is_none(),
            "{kind}: {uid} still on the server"
        );
        assert!(
            f.vdir_item(uid).is_none(),
            "{kind}: {uid} still in the folder"
        );
    }
    assert_eq!(
        summary_of(&f.server_item("edit-in-folder").unwrap().1),
        "New title"
    );
    assert_eq!(
        summary_of(&f.vdir_item("keep").unwrap().1),
        "Keep (edited on the server)"
    );
    assert!(f.vdir_item("new-on-server").is_some());
    assert!(f.server_item("new-in-folder").is_some());
    assert_eq!(f.server_items().len(), f.vdir_items().len());

    // The deleted and overwritten versions are kept and can be found.
    let conn = f.concord.database().connect().unwrap();
    let versions = state::history(&conn, "gone-in-folder").unwrap();
    assert!(
        versions.iter().any(|v| v.reason == "deleted"),
        "{versions:?}"
    );
    let versions = state::history(&conn, "keep").unwrap();
    assert!(
        versions.iter().any(|v| v.reason == "overwritten"),
        "{versions:?}"
    );
    // Each kept version is described as it reads: the overwritten one by its old title.
    assert!(
        versions
            .iter()
            .all(|v| v.summary.starts_with("Keep") && !v.summary.contains("edited")),
        "{kind}: {versions:?}"
    );
    assert!(f.sync().await.plan.is_empty());
}
both_servers!(create_update_delete_on_each_side);

async fn disjoint_edits_are_merged(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("m.ics", &event("m", "Meeting", "Room 1"));
    f.sync().await;
    f.server_put("m.ics", &event("m", "Planning", "Room 1"));
    let (path, _) = f.vdir_item("m").unwrap();
    write_atomically(&path, &event("m", "Meeting", "Room 2"));
    let report = f.sync().await;
    assert_eq!(report.counts.merged, 1, "{kind}: {report:?}");
    for body in [f.server_item("m").unwrap().1, f.vdir_item("m").unwrap().1] {
        assert!(
            body.contains("SUMMARY:Planning") && body.contains("LOCATION:Room 2"),
            "{kind}: {body}"
        );
    }
    assert!(f.conflicts().is_empty());
    assert!(f.sync().await.plan.is_empty());
}
both_servers!(disjoint_edits_are_merged);

async fn same_property_on_both_sides_is_a_conflict_and_the_rest_syncs(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("c.ics", &event("c", "Meeting", "Room 1"));
    f.sync().await;
    f.server_put("c.ics", &event("c", "Server's title", "Room 1"));
    let (path, _) = f.vdir_item("c").unwrap();
    write_atomically(&path, &event("c", "Folder's title", "Room 1"));
    f.vdir_write("other.ics", &event("other", "Unrelated", "X"));
    let report = f.sync().await;
    assert_eq!(report.counts.conflicts, 1, "{report:?}");
    assert_eq!(f.conflicts(), [("c".to_owned(), "both-edited".to_owned())]);
    // Neither side was overwritten; the other item synced.
    assert_eq!(summary_of(&f.server_item("c").unwrap().1), "Server's title");
    assert_eq!(summary_of(&f.vdir_item("c").unwrap().1), "Folder's title");
    assert!(f.server_item("other").is_some(), "{kind}");
    // The conflict is recorded once, not again on every sync.
    assert!(f.sync().await.plan.is_empty());
    // Stored with base and both sides for the Conflicts page.
    let conn = f.concord.database().connect().unwrap();
    let (base, a, b): (Vec<u8>, Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT base, a_content, b_content FROM conflicts WHERE uid = 'c'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(String::from_utf8(base).unwrap().contains("SUMMARY:Meeting"));
    assert!(String::from_utf8(a).unwrap().contains("Server's title"));
    assert!(String::from_utf8(b).unwrap().contains("Folder's title"));
}
both_servers!(same_property_on_both_sides_is_a_conflict_and_the_rest_syncs);

async fn delete_on_one_side_edit_on_the_other_keeps_the_edit(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("d.ics", &event("d", "Meeting", "Room 1"));
    f.sync().await;
    let (href, _) = f.server_item("d").unwrap();
    f.server_delete(&href);
    let (path, _) = f.vdir_item("d").unwrap();
    write_atomically(&path, &event("d", "Edited meanwhile", "Room 1"));
    f.sync().await;
    assert_eq!(f.conflicts(), [("d".to_owned(), "edit-delete".to_owned())]);
    assert_eq!(summary_of(&f.vdir_item("d").unwrap().1), "Edited meanwhile");
}
both_servers!(delete_on_one_side_edit_on_the_other_keeps_the_edit);

async fn an_invalid_sync_token_falls_back_to_a_full_listing(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("t1.ics", &event("t1", "One", "A"));
    f.server_put("t2.ics", &event("t2", "Two", "A"));
    f.sync().await;
    f.spoil_token();
    f.server_put("t3.ics", &event("t3", "Three", "A"));
    let report = f.sync().await;
    assert_eq!(report.counts.create_b, 1, "{kind}: {report:?}");
    assert_eq!((report.counts.delete_a, report.counts.delete_b), (0, 0));
    assert_eq!(f.vdir_items().len(), 3);
    let token: String = f
        .concord
        .database()
        .connect()
        .unwrap()
        .query_row("SELECT a_token FROM pairs", [], |r| r.get(0))
        .unwrap();
    assert!(
        !token.contains("invalid.example"),
        "a fresh token is stored: {token}"
    );
    assert!(f.sync().await.plan.is_empty());
}
both_servers!(an_invalid_sync_token_falls_back_to_a_full_listing);

async fn a_412_from_another_client_is_re_read_never_overwritten(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("p.ics", &event("p", "Meeting", "Room 1"));
    f.sync().await;
    let (path, _) = f.vdir_item("p").unwrap();
    write_atomically(&path, &event("p", "Meeting", "Room 2"));
    // Plan the update of the server, then let another client change the item first.
    let sync = PairSync::open(&f.concord, PAIR, &f.credentials).unwrap();
    let a = sync.observe(Side::A).await.unwrap();
    let b = sync.observe(Side::B).await.unwrap();
    sync.commit(a).unwrap();
    sync.commit(b).unwrap();
    let prepared = sync.prepare(&[], &SyncOptions::default()).await.unwrap();
    assert_eq!(prepared.plan.counts().update_a, 1);
    f.server_put("p.ics", &event("p", "Renamed by someone else", "Room 1"));
    let report = sync.apply(prepared).await.unwrap();
    assert_eq!(report.deferred.len(), 1, "{kind}: {report:?}");
    // Counted as what happened: not written, deferred.
    assert_eq!(report.counts.update_a, 0, "{kind}: {report:?}");
    assert_eq!(report.deferred_counts.update_a, 1, "{kind}: {report:?}");
    assert_eq!(
        summary_of(&f.server_item("p").unwrap().1),
        "Renamed by someone else"
    );
    // The next sync re-reads and reconciles: both edits were to different properties.
    let report = f.sync().await;
    assert_eq!(report.counts.merged, 1, "{kind}: {report:?}");
    let body = f.server_item("p").unwrap().1;
    assert!(
        body.contains("Renamed by someone else") && body.contains("Room 2"),
        "{body}"
    );
}
both_servers!(a_412_from_another_client_is_re_read_never_overwritten);

async fn unreadable_items_and_duplicate_uids_are_quarantined(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.vdir_write(
        "broken.ics",
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Half an event\r\n",
    );
    f.vdir_write(
        "no-uid.ics",
        &event("x", "No UID here", "A").replace("UID:x\r\n", ""),
    );
    f.vdir_write("dup-1.ics", &event("dup", "First copy", "A"));
    f.vdir_write("dup-2.ics", &event("dup", "Second copy", "A"));
    f.vdir_write("fine.ics", &event("fine", "Fine", "A"));
    let report = f.sync().await;
    assert_eq!(report.quarantined, 3, "{report:?}");
    assert!(f.server_item("fine").is_some());
    let on_server = f.server_item("dup").unwrap().1;
    assert_eq!(summary_of(&on_server), "First copy");
    let conn = f.concord.database().connect().unwrap();
    let quarantined = state::quarantined(&conn).unwrap();
    let reason = |href: &str| {
        quarantined
            .iter()
            .find(|q| q.href == href)
            .map(|q| format!("{} {}", q.summary, q.reason))
            .unwrap_or_default()
    };
    assert!(
        reason("broken.ics").contains("never ended"),
        "{quarantined:?}"
    );
    assert!(
        reason("no-uid.ics").contains("No UID here") && reason("no-uid.ics").contains("no UID"),
        "{quarantined:?}"
    );
    assert!(
        reason("dup-2.ics").contains("same UID dup"),
        "{quarantined:?}"
    );
    // Fixing the file releases it.
    f.vdir_write("broken.ics", &event("repaired", "Repaired", "A"));
    f.sync().await;
    assert!(f.server_item("repaired").is_some());
    let left = state::quarantined(&conn).unwrap();
    assert!(left.iter().all(|q| q.href != "broken.ics"), "{left:?}");
}
both_servers!(unreadable_items_and_duplicate_uids_are_quarantined);

async fn an_emptied_side_stops_the_pair_and_asks(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.synced_server_events(3).await;
    for (path, _) in f.vdir_items() {
        fs::remove_file(path).unwrap();
    }
    let report = f.sync().await;
    let reason = report.stopped.clone().unwrap_or_default();
    assert!(
        reason.contains("lists no items") && reason.contains("--allow-deletes"),
        "{report:?}"
    );
    assert_eq!(f.server_items().len(), 3, "{kind}: nothing deleted");
    let conn = f.concord.database().connect().unwrap();
    let stopped: Option<String> = conn
        .query_row("SELECT stopped_reason FROM pairs", [], |r| r.get(0))
        .unwrap();
    assert!(stopped.is_some());
    // The person confirms.
    let report = f.sync_allowing_deletes().await;
    assert_eq!(report.counts.delete_a, 3, "{report:?}");
    assert!(f.server_items().is_empty());
}
both_servers!(an_emptied_side_stops_the_pair_and_asks);

/// The server's side emptied by another client: seen through the sync token (a delta, not a
/// full listing), it stops the pair all the same, and keeps it stopped on the next sync.
async fn a_server_emptied_by_another_client_stops_the_pair_too(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.synced_server_events(3).await;
    assert_eq!(f.vdir_items().len(), 3);
    for (href, _) in f.server_items() {
        f.server_delete(&href);
    }
    for round in ["first", "second"] {
        let report = f.sync().await;
        let reason = report.stopped.clone().unwrap_or_default();
        assert!(
            reason.contains("side a") && reason.contains("lists no items"),
            "{kind}, {round} sync: {report:?}"
        );
        assert_eq!(
            f.vdir_items().len(),
            3,
            "{kind}, {round} sync: nothing deleted"
        );
    }
    let report = f.sync_allowing_deletes().await;
    assert_eq!(report.counts.delete_b, 3, "{report:?}");
    assert!(f.vdir_items().is_empty());
}
both_servers!(a_server_emptied_by_another_client_stops_the_pair_too);

/// A pair whose server collection is not there (deleted, mistyped): an error saying so, not an
/// empty calendar; nothing is written on either side.
async fn a_missing_collection_is_an_error_not_an_empty_calendar(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.vdir_write("v.ics", &event("v", "Folder", "A"));
    let missing = f.server.url("/user/no-such-calendar/");
    let conn = f.concord.database().connect().unwrap();
    conn.execute(
        "UPDATE storages SET location = ?1 WHERE kind = 'caldav'",
        [&missing],
    )
    .unwrap();
    let err = sync_pair(&f.concord, PAIR, &f.credentials, &SyncOptions::default())
        .await
        .unwrap_err();
    let said = err.to_string();
    assert!(
        said.contains("no collection at") && said.contains("no-such-calendar"),
        "{kind}: {said}"
    );
    assert!(err.needs_attention(), "{kind}: {err:?}");
    assert_eq!(f.vdir_items().len(), 1);
}
both_servers!(a_missing_collection_is_an_error_not_an_empty_calendar);

/// A folder is made by the first write, never by looking: a dry run leaves no folder behind,
/// and a folder that vanished after syncing (an unmounted disk) stops the pair, not recreated.
async fn a_folder_is_made_by_writing_and_its_vanishing_stops_the_pair(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    fs::remove_dir(&f.vdir).unwrap();
    f.server_put("s.ics", &event("s", "Server", "A"));
    let dry = f
        .sync_with(SyncOptions {
            dry_run: true,
            ..SyncOptions::default()
        })
        .await;
    assert_eq!(dry.counts.create_b, 1, "{dry:?}");
    assert!(!f.vdir.exists(), "{kind}: a dry run made the folder");
    f.sync().await;
    assert_eq!(f.vdir_items().len(), 1);
    fs::remove_dir_all(&f.vdir).unwrap();
    let report = f.sync().await;
    assert!(
        report
            .stopped
            .as_deref()
            .is_some_and(|r| r.contains("lists no items")),
        "{kind}: {report:?}"
    );
    assert!(
        !f.vdir.exists(),
        "{kind}: the vanished folder was made again"
    );
    assert!(f.server_item("s").is_some());
}
both_servers!(a_folder_is_made_by_writing_and_its_vanishing_stops_the_pair);

/// A synced file that no longer reads is quarantined and held: the server's copy is not
/// deleted, nor is the file overwritten by the server's edit, until the file is mended.
async fn a_synced_item_that_stops_reading_is_held_not_deleted(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("held.ics", &event("held", "Held", "Room 1"));
    f.server_put("other.ics", &event("other", "Other", "Room 1"));
    f.sync().await;
    let (path, _) = f.vdir_item("held").unwrap();
    fs::write(&path, "garbage").unwrap();
    let report = f.sync().await;
    assert_eq!(report.counts.delete_a, 0, "{report:?}");
    assert!(report.plan.is_empty(), "{report:?}");
    assert!(
        f.server_item("held").is_some(),
        "{kind}: the server keeps it"
    );
    let conn = f.concord.database().connect().unwrap();
    let quarantined = state::quarantined(&conn).unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");

    // The server's edit waits too; the other item still syncs.
    f.server_put("held.ics", &event("held", "Held (moved)", "Room 2"));
    f.server_put("other.ics", &event("other", "Other (moved)", "Room 2"));
    let report = f.sync().await;
    assert_eq!(report.counts.update_b, 1, "{report:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "garbage");
    assert_eq!(
        summary_of(&f.vdir_item("other").unwrap().1),
        "Other (moved)"
    );

    // Mended in the folder (as it was): the server's edit arrives.
    write_atomically(&path, &event("held", "Held", "Room 1"));
    let report = f.sync().await;
    assert_eq!(report.counts.update_b, 1, "{report:?}");
    assert_eq!(summary_of(&f.vdir_item("held").unwrap().1), "Held (moved)");
    assert!(state::quarantined(&conn).unwrap().is_empty());
}
both_servers!(a_synced_item_that_stops_reading_is_held_not_deleted);

async fn dry_run_prints_the_plan_and_writes_nothing(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("s.ics", &event("s", "Server", "A"));
    f.vdir_write("v.ics", &event("v", "Folder", "A"));
    let report = f
        .sync_with(SyncOptions {
            dry_run: true,
            ..SyncOptions::default()
        })
        .await;
    assert!(report.dry_run);
    assert_eq!(report.plan.len(), 2, "{report:?}");
    assert!(
        report
            .plan
            .iter()
            .any(|l| l.starts_with("create on b: Server")),
        "{report:?}"
    );
    assert_eq!(f.vdir_items().len(), 1);
    assert_eq!(f.server_items().len(), 1);
    let conn = f.concord.database().connect().unwrap();
    let seen: i64 = conn
        .query_row("SELECT COUNT(*) FROM item_seen", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 0, "a dry run stores nothing");
}
both_servers!(dry_run_prints_the_plan_and_writes_nothing);

async fn task_lists_sync(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("t.ics", &todo("t", "Buy milk", "NEEDS-ACTION"));
    f.sync().await;
    let (path, body) = f.vdir_item("t").unwrap();
    assert!(body.contains("BEGIN:VTODO"));
    write_atomically(&path, &todo("t", "Buy milk", "COMPLETED"));
    f.vdir_write("t2.ics", &todo("t2", "Call Ada", "NEEDS-ACTION"));
    f.sync().await;
    assert!(f.server_item("t").unwrap().1.contains("STATUS:COMPLETED"));
    assert!(f.server_item("t2").unwrap().1.contains("BEGIN:VTODO"));
}
both_servers!(task_lists_sync);

fn contact(uid: &str, name: &str, email: &str, photo: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEMAIL:{email}\r\nPHOTO;ENCODING=b;TYPE=PNG:{photo}\r\nEND:VCARD\r\n"
    )
}

async fn contacts_with_photos_sync(kind: ServerKind) {
    let f = Fixture::new(kind, ItemKind::Contact);
    // Valid base64 (no padding inside), long enough to be folded.
    let photo = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ".repeat(8);
    f.server_put(
        "ada.vcf",
        &contact("ada", "Ada Lovelace", "ada@example.com", &photo),
    );
    f.vdir_write(
        "alan.vcf",
        &contact("alan", "Alan Turing", "alan@example.com", &photo),
    );
    f.sync().await;
    let (_, ada) = f.vdir_item("ada").unwrap();
    let (_, alan) = f.server_item("alan").unwrap();
    for body in [&ada, &alan] {
        let unfolded = body.replace("\r\n ", "").replace("\n ", "");
        assert!(
            unfolded.contains(&photo),
            "the photo arrives whole: {body:?}"
        );
    }
    // An email edited in the folder reaches the server; the photo is untouched.
    let (path, _) = f.vdir_item("ada").unwrap();
    write_atomically(
        &path,
        &contact("ada", "Ada Lovelace", "ada@lovelace.example", &photo),
    );
    f.sync().await;
    let (_, ada) = f.server_item("ada").unwrap();
    assert!(ada.contains("ada@lovelace.example"), "{ada}");
    assert!(f.sync().await.plan.is_empty());
}
both_servers!(contacts_with_photos_sync);

async fn a_deleted_item_is_restored_from_history(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    f.server_put("r.ics", &event("r", "Dentist", "Main street"));
    // Another item, so deleting the first does not empty the folder (that would stop the pair).
    f.server_put("other.ics", &event("other", "Lunch", "Cafe"));
    f.sync().await;
    let (path, _) = f.vdir_item("r").unwrap();
    fs::remove_file(path).unwrap();
    f.sync().await;
    assert!(f.server_item("r").is_none());
    let conn = f.concord.database().connect().unwrap();
    let versions = state::history(&conn, "dentist").unwrap();
    let deleted = versions
        .iter()
        .find(|v| v.reason == "deleted")
        .expect("the deleted version is kept");
    let message = concord_core::sync::run::restore(&f.concord, deleted.id, &f.credentials)
        .await
        .unwrap();
    assert!(message.contains("Dentist"), "{message}");
    f.sync().await;
    assert_eq!(summary_of(&f.server_item("r").unwrap().1), "Dentist");
    assert_eq!(summary_of(&f.vdir_item("r").unwrap().1), "Dentist");
}
both_servers!(a_deleted_item_is_restored_from_history);

/// Radicale only: its storage is plain files, so a large calendar is made in a moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_calendar_arrives_whole_and_then_costs_one_request() {
    let f = Fixture::calendar(ServerKind::Radicale);
    let dir = f
        .server
        .dir()
        .join("collections/collection-root")
        .join(f.server.calendar_path().trim_matches('/'));
    let count = 250;
    for i in 0..count {
        fs::write(
            dir.join(format!("big-{i}.ics")),
            event(&format!("big-{i}"), "Big", "A"),
        )
        .unwrap();
    }
    let report = f.sync().await;
    assert_eq!(report.counts.create_b, count, "{report:?}");
    assert_eq!(f.vdir_items().len(), count);
    let again = f.sync().await;
    assert!(again.plan.is_empty(), "{again:?}");
}

/// A sync with nothing to do marks the pair settled, and later syncs plan only what they see
/// change; a change to the pair's settings still reaches every item: one that waited under
/// one-way sync is sent once the pair becomes two-way.
async fn a_new_direction_reaches_items_that_waited(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let set_direction = |direction| {
        let conn = f.concord.database().connect().unwrap();
        state::set_pair_options(&conn, PAIR, direction, ConflictPolicy::Ask).unwrap();
    };
    set_direction(Direction::AToB);
    f.server_put("s.ics", &event("s", "From the server", "Here"));
    f.sync().await;
    f.vdir_write("v.ics", &event("v", "Only in the folder", "Home"));
    let one_way = f.sync().await;
    assert_eq!(one_way.counts.create_a, 0, "{kind}: {one_way:?}");
    assert!(f.server_item("v").is_none());
    let settled = f.sync().await;
    assert!(settled.plan.is_empty(), "{kind}: {settled:?}");

    set_direction(Direction::TwoWay);
    let two_way = f.sync().await;
    assert_eq!(two_way.counts.create_a, 1, "{kind}: {two_way:?}");
    assert_eq!(
        summary_of(&f.server_item("v").unwrap().1),
        "Only in the folder"
    );
}
both_servers!(a_new_direction_reaches_items_that_waited);
