//! Likely duplicate contacts against real Radicale and Xandikos address books, each paired
//! with a vdir folder: two cards another client (curl) put on the server for the same person
//! are offered as a duplicate, merged with a per-field choice, and afterwards the server and
//! the folder hold one contact with both cards' addresses, while history keeps both old cards.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use concord_core::sync::item::ItemKind;
use concord_core::sync::resolve::duplicates::{self, DuplicateError};
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::{Side, SyncOptions, sync_pair};
use concord_e2e::both_servers;
use concord_e2e::servers::ServerKind;
use concord_e2e::sync_fixture::Fixture;

fn card(uid: &str, name: &str, lines: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//e2e//EN\r\nUID:{uid}\r\nFN:{name}\r\n{lines}REV:20261101T100000Z\r\nEND:VCARD\r\n"
    )
}

fn lines_of(body: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = body
        .lines()
        .map(str::trim_end)
        .filter(|l| l.to_ascii_uppercase().starts_with(prefix))
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

/// Two cards for one person (same address in another case, the number written two ways) and
/// one unrelated card, synced to the folder.
async fn two_cards_for_one_person(f: &Fixture) {
    f.server_put(
        "ada-phone.vcf",
        &card(
            "ada-phone",
            "Ada Lovelace",
            "EMAIL:ada@example.com\r\nTEL;TYPE=CELL:+44 20 7946 0000\r\n",
        ),
    );
    f.server_put(
        "ada-laptop.vcf",
        &card(
            "ada-laptop",
            "Augusta Ada King",
            "EMAIL:Ada@Example.com\r\nEMAIL:countess@lovelace.example\r\nTEL:020 7946 0000\r\nNOTE:Met at the Analytical Society\r\n",
        ),
    );
    f.server_put(
        "grace.vcf",
        &card("grace", "Grace Hopper", "EMAIL:grace@example.com\r\n"),
    );
    let report = f.sync().await;
    assert_eq!(report.counts.create_b, 3, "{report:?}");
}

async fn duplicates_are_offered_and_merged_on_both_sides(kind: ServerKind) {
    let f = Fixture::new(kind, ItemKind::Contact);
    two_cards_for_one_person(&f).await;
    let found = duplicates::list(&f.concord).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(
        d.reasons,
        ["same email ada@example.com", "same phone …079460000"]
    );
    assert_eq!(
        (d.a.uid.as_str(), d.b.uid.as_str()),
        ("ada-laptop", "ada-phone")
    );
    let name = d.fields.iter().find(|f| f.name == "VCARD FN").unwrap();
    assert!(name.conflict, "{name:?}");

    // Without a choice for the name, nothing is merged.
    let credentials = Arc::new(f.credentials.clone());
    let err = duplicates::merge_durably(&f.concord, &d.id, &BTreeMap::new(), credentials)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DuplicateError::Unmergeable { reason, .. } if reason.contains("VCARD FN")),
        "{err}"
    );

    let picks: BTreeMap<String, Side> = [("FN".to_owned(), Side::B)].into();
    let preview = duplicates::preview(&f.concord, &d.id, &picks).unwrap();
    assert_eq!(preview.details.title.as_deref(), Some("Ada Lovelace"));
    let credentials = Arc::new(f.credentials.clone());
    let merged = duplicates::merge_durably(&f.concord, &d.id, &picks, credentials)
        .await
        .unwrap();
    assert_eq!(merged.kept_uid, "ada-laptop");

    // One card left for Ada on each side, with everything both cards knew.
    for (side, items) in [
        ("server", f.server_items()),
        (
            "folder",
            f.vdir_items()
                .into_iter()
                .map(|(p, b)| (p.display().to_string(), b))
                .collect(),
        ),
    ] {
        assert_eq!(items.len(), 2, "{side}: {items:?}");
        let ada: Vec<&String> = items
            .iter()
            .map(|(_, body)| body)
            .filter(|body| body.contains("UID:ada"))
            .collect();
        assert_eq!(ada.len(), 1, "{side}: {ada:?}");
        let body = ada[0];
        assert!(body.contains("UID:ada-laptop"), "{side}: {body}");
        assert_eq!(lines_of(body, "FN:"), ["FN:Ada Lovelace"], "{side}");
        let emails = lines_of(body, "EMAIL").join("\n").to_lowercase();
        assert!(
            emails.contains("countess@lovelace.example"),
            "{side}: {body}"
        );
        assert!(emails.contains("ada@example.com"), "{side}: {body}");
        assert!(
            body.contains("Met at the Analytical Society"),
            "{side}: {body}"
        );
    }
    assert!(duplicates::list(&f.concord).unwrap().is_empty());
    let report = f.sync().await;
    assert!(report.plan.is_empty(), "{report:?}");

    // History keeps both cards as they were, on both sides.
    let conn = f.concord.database().connect().unwrap();
    for uid in ["ada-phone", "ada-laptop"] {
        let kept: Vec<String> = state::history(&conn, uid)
            .unwrap()
            .into_iter()
            .filter(|v| v.uid == uid && v.reason.starts_with("duplicate contacts merged"))
            .map(|v| v.side)
            .collect();
        assert_eq!(kept.len(), 2, "{uid}: {kept:?}");
    }
}
both_servers!(duplicates_are_offered_and_merged_on_both_sides);

async fn a_card_changed_since_the_last_sync_is_not_merged(kind: ServerKind) {
    let f = Fixture::new(kind, ItemKind::Contact);
    two_cards_for_one_person(&f).await;
    let id = duplicates::list(&f.concord).unwrap()[0].id.clone();
    // Another client edits one card after the sync.
    let (href, _) = f.server_item("ada-phone").unwrap();
    let name = href.rsplit('/').next().unwrap().to_owned();
    f.server_put(
        &name,
        &card("ada-phone", "Ada L.", "EMAIL:ada@example.com\r\n"),
    );
    let picks: BTreeMap<String, Side> = [("FN".to_owned(), Side::A)].into();
    let credentials = Arc::new(f.credentials.clone());
    let err = duplicates::merge_durably(&f.concord, &id, &picks, credentials)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("changed on side a since the last sync"),
        "{err}"
    );
    assert_eq!(f.server_items().len(), 3);
    assert!(f.server_item("ada-phone").unwrap().1.contains("FN:Ada L."));
}
both_servers!(a_card_changed_since_the_last_sync_is_not_merged);

/// A second address book: two folders paired with each other, in the same data directory.
async fn second_address_book(f: &Fixture, dir: &std::path::Path, cards: &[(&str, String)]) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for (name, body) in cards {
        std::fs::write(a.join(name), body).unwrap();
    }
    let conn = f.concord.database().connect().unwrap();
    let folder = |path: &std::path::Path| {
        let path = path.to_str().unwrap();
        state::put_storage(
            &conn,
            None,
            StorageKind::Vdir,
            ItemKind::Contact,
            path,
            None,
        )
        .unwrap()
    };
    let (sa, sb) = (folder(&a), folder(&b));
    state::add_pair(
        &conn,
        "work",
        sa,
        sb,
        Direction::TwoWay,
        ConflictPolicy::Ask,
    )
    .unwrap();
    let report = sync_pair(&f.concord, "work", &f.credentials, &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.counts.create_b, cards.len(), "{report:?}");
}

async fn duplicates_across_address_books_merge_into_the_first(kind: ServerKind) {
    let f = Fixture::new(kind, ItemKind::Contact);
    f.server_put(
        "grace.vcf",
        &card("grace-home", "Grace Hopper", "TEL:+1 555 0100 123\r\n"),
    );
    f.sync().await;
    let other = tempfile::tempdir().unwrap();
    second_address_book(
        &f,
        other.path(),
        &[(
            "grace.vcf",
            card(
                "grace-work",
                "Hopper\\, Grace",
                "EMAIL:grace@navy.example\r\nTEL:(555) 0100-123\r\n",
            ),
        )],
    )
    .await;
    let found = duplicates::list(&f.concord).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(
        d.reasons,
        ["same name grace hopper", "same phone …550100123"]
    );
    assert_eq!((d.a.pair.as_str(), d.b.pair.as_str()), ("cal", "work"));
    let picks: BTreeMap<String, Side> =
        [("FN".to_owned(), Side::A), ("TEL".to_owned(), Side::A)].into();
    let credentials = Arc::new(f.credentials.clone());
    duplicates::merge_durably(&f.concord, &d.id, &picks, credentials)
        .await
        .unwrap();
    // The server's card gained the work address; the work folders lost their copy.
    let server = f.server_item("grace-home").unwrap().1;
    assert!(server.contains("grace@navy.example"), "{server}");
    assert_eq!(lines_of(&server, "FN:"), ["FN:Grace Hopper"]);
    assert!(
        f.vdir_item("grace-home")
            .unwrap()
            .1
            .contains("grace@navy.example")
    );
    for folder in ["a", "b"] {
        let left = std::fs::read_dir(other.path().join(folder))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "vcf")
            })
            .count();
        assert_eq!(left, 0, "folder {folder}");
    }
    let report = sync_pair(&f.concord, "work", &f.credentials, &SyncOptions::default())
        .await
        .unwrap();
    assert!(report.plan.is_empty(), "{report:?}");
    assert!(f.sync().await.plan.is_empty());
}
both_servers!(duplicates_across_address_books_merge_into_the_first);
