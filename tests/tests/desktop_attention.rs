//! A job that stops and needs the person raises one desktop notification and marks the tray,
//! in the real app under the test session (run inside `tests/desktop-session.sh`, as
//! `make test` does). The job here is a pair of vdir folders whose one side was emptied: the
//! safety guard stops the pair and asks, as it would for a server that suddenly lists nothing:
//! "Can't sync notes", and the tray's first line says why, with the attention icon.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::time::Duration;

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::sync::item::ItemKind;
use concord_core::sync::run::{schedule, schedule_name};
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::{SyncOptions, sync_pair};
use concord_e2e::desktop::{CHANGE_TIMEOUT, NotificationWatch, RunningApp};

const PAIR: &str = "notes";
const EVENTS: usize = 12;
/// What the safety guard says of a side that suddenly lists nothing.
const STOP_REASON: &str = "now lists no items";

#[tokio::test]
async fn a_pair_stopped_by_its_safety_guard_notifies_once_and_marks_the_tray() {
    let notifications = NotificationWatch::start().await;
    let mut app = RunningApp::start(&["--hidden"]);
    let tray = app.tray().await;

    // Another process (as `concord pair add` and `concord sync` would) pairs two folders and
    // syncs them once, then the person empties one of them.
    let concord = Concord::open(app.data_dir()).unwrap();
    let (a, b) = (app.data_dir().join("a"), app.data_dir().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    for n in 0..EVENTS {
        let event = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\n\
             UID:guard-{n}\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:20261201T100000Z\r\n\
             SUMMARY:Event {n}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        fs::write(a.join(format!("guard-{n}.ics")), event).unwrap();
    }
    let conn = concord.database().connect().unwrap();
    let calendar = ItemKind::Calendar;
    let side = |dir: &std::path::Path| {
        let path = dir.to_str().unwrap();
        state::put_storage(&conn, None, StorageKind::Vdir, calendar, path, None).unwrap()
    };
    let (side_a, side_b) = (side(&a), side(&b));
    let (two_way, ask) = (Direction::TwoWay, ConflictPolicy::Ask);
    state::add_pair(&conn, PAIR, side_a, side_b, two_way, ask).unwrap();
    schedule(concord.engine(), PAIR, Duration::from_secs(900)).unwrap();
    let nobody = Credentials::new("", "");
    let first = sync_pair(&concord, PAIR, &nobody, &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(first.counts.create_b, EVENTS, "{first:?}");
    for entry in fs::read_dir(&a).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let before = notifications.count();

    // The app's scheduler runs the pair: the guard stops it and asks.
    concord
        .engine()
        .trigger_schedule(&schedule_name(PAIR))
        .unwrap();
    let seen = notifications
        .mentioning(&format!("Can't sync {PAIR}"), CHANGE_TIMEOUT)
        .await;
    assert!(seen.contains(STOP_REASON), "says why: {seen}");
    app.eventually(
        "the tray says why the pair stopped, with the attention icon",
        CHANGE_TIMEOUT,
        async || {
            let line = tray.status_line().await?;
            if !(line.starts_with(&format!("{PAIR}: side a")) && line.contains(STOP_REASON)) {
                return Err(format!("it reads {line:?}"));
            }
            tray.icon_is("attention").await
        },
    )
    .await;
    assert_eq!(
        fs::read_dir(&b).unwrap().count(),
        EVENTS,
        "nothing was deleted from the other side"
    );

    // Only one notification for it, however often the status is read again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        notifications.count(),
        before + 1,
        "{}",
        notifications.text()
    );
}
