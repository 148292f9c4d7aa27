//! Resolving conflicts against real Radicale and Xandikos servers, each paired with a vdir
//! folder. The conflict is made as a person would meet it: the same property edited on the
//! server by another client (curl) and in the folder. Each way of resolving must leave the
//! chosen content on both sides, the losing version in history, and never overwrite a side
//! that changed again. Needs the venv with the servers (`make test` makes it).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use concord_core::sync::Side;
use concord_core::sync::item::ItemKind;
use concord_core::sync::resolve::conflicts::{self, Choice, Keep, Resolution};
use concord_core::sync::state::{self, ConflictPolicy, Direction};
use concord_e2e::both_servers;
use concord_e2e::servers::ServerKind;
use concord_e2e::sync_fixture::{Fixture, PAIR, event, summary_of, write_atomically};

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
    conflicts::resolve_durably(&f.concord, id, Choice::Keep(keep), credentials)
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
        conflicts::resolve(&f.concord, id, Choice::Keep(Keep::A), &f.credentials).await,
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

/// A contact as Apple Contacts writes it (vCard 3, grouped labels, a folded photo).
fn card(name: &str, emails: &[&str], tel: &str) -> String {
    let mut out = format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\nUID:ada\r\n\
         N:Lovelace;Ada;;;\r\nFN:{name}\r\n"
    );
    for email in emails {
        out.push_str(&format!("EMAIL;type=INTERNET;type=HOME:{email}\r\n"));
    }
    out.push_str(&format!("TEL;type=CELL:{tel}\r\n"));
    out.push_str("PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////\r\n ////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAA\r\n");
    out.push_str("REV:2026-11-01T10:00:00Z\r\nEND:VCARD\r\n");
    out
}

fn line_of(body: &str, prefix: &str) -> Vec<String> {
    body.lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The contact synced, then renamed on the server by another client (curl) which also adds an
/// address, and renamed in the folder where the phone number changes.
async fn make_contact_conflict(f: &Fixture) -> i64 {
    f.server_put(
        "ada.vcf",
        &card("Ada Lovelace", &["ada@home.example"], "+44 20 7946 0000"),
    );
    f.sync().await;
    let (href, _) = f.server_item("ada").unwrap();
    let name = href.rsplit('/').next().unwrap().to_owned();
    f.server_put(
        &name,
        &card(
            "Ada King",
            &["ada@home.example", "ada@work.example"],
            "+44 20 7946 0000",
        ),
    );
    let (path, _) = f.vdir_item("ada").unwrap();
    write_atomically(
        &path,
        &card(
            "Augusta Ada King",
            &["ada@home.example"],
            "+44 20 7946 1111",
        ),
    );
    let report = f.sync().await;
    assert_eq!(report.counts.conflicts, 1, "{report:?}");
    conflicts::list(&f.concord).unwrap()[0].id
}

async fn a_contact_conflict_is_resolved_field_by_field(kind: ServerKind) {
    let f = Fixture::new(kind, ItemKind::Contact);
    let id = make_contact_conflict(&f).await;
    let detail = conflicts::show(&f.concord, id).unwrap();
    let name = detail.fields.iter().find(|f| f.name == "VCARD FN").unwrap();
    assert_eq!(name.label, "Name");
    assert_eq!(
        (name.base.as_deref(), name.a.as_deref(), name.b.as_deref()),
        (
            Some("Ada Lovelace"),
            Some("Ada King"),
            Some("Augusta Ada King")
        )
    );
    assert!(name.conflict);
    // Only the name needs a choice: the address and the number merge.
    let needed: Vec<&str> = detail
        .fields
        .iter()
        .filter(|f| f.conflict)
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(needed, ["VCARD FN"]);

    let picks: BTreeMap<String, Side> = [("FN".to_owned(), Side::B)].into();
    let preview = conflicts::preview(&f.concord, id, &picks).unwrap();
    assert!(preview.unchosen.is_empty());
    assert_eq!(preview.details.title.as_deref(), Some("Augusta Ada King"));
    assert_eq!(
        preview.details.emails,
        ["ada@home.example", "ada@work.example"]
    );
    assert_eq!(preview.details.phones, ["+44 20 7946 1111"]);
    // The preview wrote nothing.
    assert_eq!(
        line_of(&f.server_item("ada").unwrap().1, "FN:"),
        ["FN:Ada King"]
    );

    let credentials = Arc::new(f.credentials.clone());
    let resolution = conflicts::resolve_durably(&f.concord, id, Choice::Pick(picks), credentials)
        .await
        .unwrap();
    assert!(
        matches!(resolution, Resolution::Picked { .. }),
        "{resolution:?}"
    );
    for (side, body) in [
        ("server", f.server_item("ada").unwrap().1),
        ("folder", f.vdir_item("ada").unwrap().1),
    ] {
        assert_eq!(
            line_of(&body, "FN:"),
            ["FN:Augusta Ada King"],
            "{side}: {body}"
        );
        assert_eq!(line_of(&body, "EMAIL").len(), 2, "{side}: {body}");
        // Radicale writes parameter names in upper case.
        let tel = line_of(&body, "TEL").join("").to_ascii_uppercase();
        assert_eq!(tel, "TEL;TYPE=CELL:+44 20 7946 1111", "{side}");
        assert!(
            body.contains("PHOTO;ENCODING=b;TYPE=JPEG:/9j/"),
            "{side}: {body}"
        );
    }
    assert!(conflicts::list(&f.concord).unwrap().is_empty());
    assert!(f.sync().await.plan.is_empty());
    // Both sides' versions before the resolution are in history, with the choice.
    let conn = f.concord.database().connect().unwrap();
    let kept: Vec<(String, String)> = state::history(&conn, "ada")
        .unwrap()
        .into_iter()
        .filter(|v| v.reason.contains("field by field (VCARD FN from b)"))
        .map(|v| (v.side, String::from_utf8_lossy(&v.content).into_owned()))
        .collect();
    assert!(
        kept.iter()
            .any(|(side, body)| side == "a" && body.contains("FN:Ada King")),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .any(|(side, body)| side == "b" && body.contains("FN:Augusta Ada King")),
        "{kept:?}"
    );
}
both_servers!(a_contact_conflict_is_resolved_field_by_field);

async fn a_pick_on_a_side_changed_again_is_refreshed_never_written(kind: ServerKind) {
    let f = Fixture::new(kind, ItemKind::Contact);
    let id = make_contact_conflict(&f).await;
    let (href, _) = f.server_item("ada").unwrap();
    let name = href.rsplit('/').next().unwrap().to_owned();
    f.server_put(
        &name,
        &card("Countess of Lovelace", &["ada@home.example"], "+1 555 0100"),
    );
    let picks: BTreeMap<String, Side> = [("VCARD FN".to_owned(), Side::B)].into();
    let credentials = Arc::new(f.credentials.clone());
    let resolution =
        conflicts::resolve_durably(&f.concord, id, Choice::Pick(picks.clone()), credentials)
            .await
            .unwrap();
    assert!(
        matches!(resolution, Resolution::Refreshed { closed: false, .. }),
        "{resolution:?}"
    );
    let server = f.server_item("ada").unwrap().1;
    assert_eq!(line_of(&server, "FN:"), ["FN:Countess of Lovelace"]);
    let folder = f.vdir_item("ada").unwrap().1;
    assert_eq!(line_of(&folder, "FN:"), ["FN:Augusta Ada King"]);
    let open = conflicts::list(&f.concord).unwrap();
    assert_eq!(
        open[0].details.title.as_deref(),
        Some("Countess of Lovelace")
    );
    // A choice that leaves a conflicting field open is refused before anything runs.
    let credentials = Arc::new(f.credentials.clone());
    let err = conflicts::resolve_durably(
        &f.concord,
        open[0].id,
        Choice::Pick(BTreeMap::new()),
        credentials,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("choose a or b for VCARD FN"), "{err}");
}
both_servers!(a_pick_on_a_side_changed_again_is_refreshed_never_written);

fn stamped(uid: &str, summary: &str, modified: &str) -> String {
    event(uid, summary, "Room 1").replace(
        "DTSTAMP:20261101T100000Z\r\n",
        &format!("DTSTAMP:20261101T100000Z\r\nLAST-MODIFIED:{modified}\r\n"),
    )
}

fn set_policy(f: &Fixture, policy: ConflictPolicy) {
    let conn = f.concord.database().connect().unwrap();
    assert!(state::set_pair_options(&conn, PAIR, Direction::TwoWay, policy).unwrap());
}

async fn newest_wins_keeps_the_later_edit_and_history_says_why(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    set_policy(&f, ConflictPolicy::NewestWins);
    f.server_put("n.ics", &stamped("n", "Meeting", "20261101T100000Z"));
    f.sync().await;
    let (href, _) = f.server_item("n").unwrap();
    let name = href.rsplit('/').next().unwrap().to_owned();
    // The folder's edit is the later one, though the server's is written last.
    let (path, _) = f.vdir_item("n").unwrap();
    write_atomically(
        &path,
        &stamped("n", "Folder's later title", "20261121T120000Z"),
    );
    f.server_put(
        &name,
        &stamped("n", "Server's earlier title", "20261120T080000Z"),
    );
    let report = f.sync().await;
    assert_eq!(report.counts.conflicts, 0, "{report:?}");
    assert!(conflicts::list(&f.concord).unwrap().is_empty());
    assert_eq!(server_title(&f, "n"), "Folder's later title");
    assert_eq!(vdir_title(&f, "n"), "Folder's later title");
    let kept = history(&f, "n");
    assert!(
        kept.iter().any(|(reason, title)| title == "Server's earlier title"
            && reason.starts_with("newest-wins policy (A changed 2026-11-20 08:00:00 UTC, B 2026-11-21 12:00:00 UTC): kept B, A's version saved")),
        "{kept:?}"
    );
    // A tie is left to the person.
    let (path, _) = f.vdir_item("n").unwrap();
    write_atomically(
        &path,
        &stamped("n", "Tie in the folder", "20261122T090000Z"),
    );
    f.server_put(
        &name,
        &stamped("n", "Tie on the server", "20261122T090000Z"),
    );
    assert_eq!(f.sync().await.counts.conflicts, 1);
}
both_servers!(newest_wins_keeps_the_later_edit_and_history_says_why);

async fn a_wins_over_a_deletion_is_recorded_in_history(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    set_policy(&f, ConflictPolicy::AWins);
    f.server_put("w.ics", &event("w", "Meeting", "Room 1"));
    // A second item, so the folder is not emptied (which stops a pair to ask).
    f.server_put("other.ics", &event("other", "Lunch", "Cafe"));
    f.sync().await;
    let (href, _) = f.server_item("w").unwrap();
    let name = href.rsplit('/').next().unwrap().to_owned();
    f.server_put(&name, &event("w", "Edited on the server", "Room 1"));
    let (path, _) = f.vdir_item("w").unwrap();
    std::fs::remove_file(path).unwrap();
    let report = f.sync().await;
    assert_eq!(report.counts.conflicts, 0, "{report:?}");
    assert_eq!(vdir_title(&f, "w"), "Edited on the server");
    assert!(
        history(&f, "w")
            .iter()
            .any(|(reason, title)| title == "Meeting"
                && reason
                    == "a-wins policy: A's edit kept over B's deletion, the deleted version saved"),
        "{:?}",
        history(&f, "w")
    );
}
both_servers!(a_wins_over_a_deletion_is_recorded_in_history);

async fn a_pick_repeated_after_a_crash_finishes_what_it_started(kind: ServerKind) {
    let f = Fixture::new(kind, ItemKind::Contact);
    let id = make_contact_conflict(&f).await;
    let picks: BTreeMap<String, Side> = [("FN".to_owned(), Side::A)].into();
    // As if a first attempt wrote the folder and died before the server.
    let preview = conflicts::preview(&f.concord, id, &picks).unwrap();
    let (path, _) = f.vdir_item("ada").unwrap();
    write_atomically(&path, &preview.content);
    let credentials = Arc::new(f.credentials.clone());
    let resolution = conflicts::resolve_durably(&f.concord, id, Choice::Pick(picks), credentials)
        .await
        .unwrap();
    assert!(
        matches!(resolution, Resolution::Picked { .. }),
        "{resolution:?}"
    );
    for body in [
        f.server_item("ada").unwrap().1,
        f.vdir_item("ada").unwrap().1,
    ] {
        assert_eq!(line_of(&body, "FN:"), ["FN:Ada King"], "{body}");
        assert_eq!(line_of(&body, "EMAIL").len(), 2, "{body}");
    }
    assert!(f.sync().await.plan.is_empty());
}
both_servers!(a_pick_repeated_after_a_crash_finishes_what_it_started);
