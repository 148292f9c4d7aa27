//! A pair's settings as the Pairs page changes them: direction and conflict policy stored
//! together, a webcal side never made writable, and item counts read without the items.

use concord_core::Concord;
use concord_core::sync::item::ItemKind;
use concord_core::sync::state::{
    self, ConflictPolicy, Direction, Side, StorageKind, Synced, SyncedSide,
};

fn pair_of(concord: &Concord, a_kind: StorageKind) -> i64 {
    let conn = concord.database().connect().expect("connect");
    let a = state::put_storage(&conn, None, a_kind, ItemKind::Calendar, "/a", None).expect("a");
    let b = state::put_storage(
        &conn,
        None,
        StorageKind::Vdir,
        ItemKind::Calendar,
        "/b",
        None,
    )
    .expect("b");
    state::add_pair(&conn, "p", a, b, Direction::TwoWay, ConflictPolicy::Ask).expect("pair")
}

#[test]
fn options_are_stored_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let concord = Concord::open(dir.path()).expect("open");
    pair_of(&concord, StorageKind::Caldav);
    let conn = concord.database().connect().expect("connect");

    assert!(
        state::set_pair_options(&conn, "p", Direction::BToA, ConflictPolicy::BWins).expect("set")
    );
    let pair = state::pair(&conn, "p").expect("read").expect("there");
    assert_eq!(pair.direction, Direction::BToA);
    assert_eq!(pair.conflict_policy, ConflictPolicy::BWins);
    assert!(
        !state::set_pair_options(&conn, "nope", Direction::TwoWay, ConflictPolicy::Ask)
            .expect("set")
    );
}

#[test]
fn a_webcal_side_is_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let concord = Concord::open(dir.path()).expect("open");
    pair_of(&concord, StorageKind::Webcal);
    let conn = concord.database().connect().expect("connect");
    let pair = state::pair(&conn, "p").expect("read").expect("there");
    assert_eq!(pair.unwritable_side(Direction::TwoWay), Some(Side::A));
    assert_eq!(pair.unwritable_side(Direction::BToA), Some(Side::A));
    assert_eq!(pair.unwritable_side(Direction::AToB), None);
}

#[test]
fn items_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let concord = Concord::open(dir.path()).expect("open");
    let id = pair_of(&concord, StorageKind::Caldav);
    let conn = concord.database().connect().expect("connect");
    assert_eq!(state::synced_count(&conn, id).expect("count"), 0);
    for uid in ["one", "two", "three"] {
        let side = |href: &str| SyncedSide {
            href: href.to_owned(),
            etag: "e".to_owned(),
            hash: "h".to_owned(),
        };
        let item = Synced {
            uid: uid.to_owned(),
            a: side(&format!("/a/{uid}.ics")),
            b: side(&format!("/b/{uid}.ics")),
            base: b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".to_vec(),
            summary: uid.to_owned(),
        };
        state::put_synced(&conn, id, &item).expect("put");
    }
    assert_eq!(state::synced_count(&conn, id).expect("count"), 3);
}

#[test]
fn a_collection_is_reached_through_one_account_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let concord = Concord::open(dir.path()).expect("open");
    let conn = concord.database().connect().expect("connect");
    let url = "https://dav.example.com/bob/cal/";
    let account = |name: &str| {
        state::add_account(&conn, name, StorageKind::Caldav, url, Some("bob")).expect("account")
    };
    let (first, second) = (account("bob-old"), account("bob"));
    let put = |account: Option<i64>| {
        state::put_storage(
            &conn,
            account,
            StorageKind::Caldav,
            ItemKind::Calendar,
            url,
            None,
        )
    };
    let id = put(Some(first)).expect("first account");
    assert_eq!(put(Some(first)).expect("again"), id);
    assert_eq!(put(None).expect("without an account"), id);
    let refused = put(Some(second)).expect_err("a second account").to_string();
    assert!(
        refused.contains(url) && refused.contains("bob-old"),
        "{refused}"
    );
    let owner: Option<i64> = conn
        .query_row("SELECT account_id FROM storages WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .expect("owner");
    assert_eq!(owner, Some(first));
}
