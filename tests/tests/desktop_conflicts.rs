//! A sync conflict in the real app, as a person meets it (run inside `tests/desktop-session.sh`,
//! as `make test` does): an event on a real Radicale or Xandikos, synced to a folder, is edited
//! differently by another client (the `caldav` Python client) and in the folder. Sync now in the
//! window finds the conflict: one notification says so, the tray counts it and needs attention,
//! the Conflicts page shows it readably, and a per-field choice made there is written to both
//! the server and the folder; the tray count drops to zero.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::secrets::Secrets;
use concord_core::sync::item::ItemKind;
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::{SyncOptions, sync_pair};
use concord_e2e::desktop::{
    CHANGE_TIMEOUT, NotificationWatch, STARTUP_TIMEOUT, Tray, WebDriver, click, element,
    one_app_at_a_time, text_containing, until,
};
use concord_e2e::servers::{DavServer, FixtureError};

const ACCOUNT: &str = "dav";
const PAIR: &str = "dav-calendar";
const UID: &str = "e2e-conflict-planning";
/// How long Sync now may take (a first sync of the app includes reading the keyring).
const SYNC_TIMEOUT: Duration = Duration::from_secs(90);

fn event(summary: &str, location: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\nBEGIN:VEVENT\r\nUID:{UID}\r\n\
         DTSTAMP:20261101T090000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n\
         SUMMARY:{summary}\r\nLOCATION:{location}\r\n\
         ATTENDEE;CN=Ada Lovelace:mailto:ada@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// curl against the server as its user; returns the HTTP status and the body.
fn curl(server: &DavServer, args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-u",
            &format!("{}:{}", server.username(), server.password()),
        ])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn server_event_url(server: &DavServer) -> String {
    format!("{}{UID}.ics", server.calendar_url())
}

/// Unfolded `NAME:value` of the event's text (the first such line).
fn property(body: &str, name: &str) -> String {
    let unfolded = body.replace("\r\n ", "").replace("\n ", "");
    unfolded
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            let key = key.split(';').next()?;
            (key.eq_ignore_ascii_case(name)).then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

/// The folder's file holding the event.
fn vdir_event(vdir: &Path) -> (PathBuf, String) {
    for entry in fs::read_dir(vdir).unwrap().flatten() {
        let path = entry.path();
        let text = fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_some_and(|e| e == "ics") && text.contains(UID) {
            return (path, text);
        }
    }
    panic!("no file in {} holds {UID}", vdir.display());
}

/// The other client: edits the event on the server with the `caldav` Python client.
fn edit_on_server_with_caldav(server: &DavServer, summary: &str, location: &str) {
    let venv = concord_e2e::servers::venv_dir();
    let script = format!(
        "import caldav\n\
         client = caldav.DAVClient(url={url:?}, username={user:?}, password={password:?})\n\
         calendar = client.calendar(url={calendar:?})\n\
         event = calendar.event_by_uid({UID:?})\n\
         with event.edit_icalendar_component() as component:\n\
         \x20   component['SUMMARY'] = {summary:?}\n\
         \x20   component['LOCATION'] = {location:?}\n\
         event.save()\n",
        url = server.base_url(),
        user = server.username(),
        password = server.password(),
        calendar = server.calendar_url(),
    );
    let out = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run the caldav client");
    assert!(
        out.status.success(),
        "the caldav client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `dunstctl` (the session's notification server's own client); returns what it printed.
fn dunstctl(args: &[&str]) -> String {
    let out = Command::new("dunstctl")
        .args(args)
        .output()
        .expect("run dunstctl");
    assert!(out.status.success(), "dunstctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the tray's first line reads `expected` and can be clicked (the label and the
/// enabled flag reach the bus as two updates).
async fn status_line_opens_conflicts(tray: &Tray, expected: &str) {
    until(
        &format!("the tray's status line reads {expected:?} and can be clicked"),
        CHANGE_TIMEOUT,
        async || {
            let menu = tray.menu().await?;
            match menu.iter().find(|e| e.visible && !e.separator) {
                Some(first) if first.label == expected && first.enabled => Ok(()),
                other => Err(format!("it is {other:?}")),
            }
        },
    )
    .await
}

/// A DAV server, the app launched by WebDriver on a fresh data directory, and a pair of the
/// server's calendar with a folder, whose one event is in conflict: the server (the `caldav`
/// client) says "Planning (server)" in Room 2, the folder "Planning (laptop)" in Room 3.
struct Scene {
    server: DavServer,
    notifications: NotificationWatch,
    concord: Concord,
    vdir: PathBuf,
    client: fantoccini::Client,
    tray: Tray,
    // Last: the app goes with it.
    _driver: WebDriver,
}

impl Scene {
    async fn start(server: fn() -> Result<DavServer, FixtureError>) -> Self {
        let server = tokio::task::spawn_blocking(server)
            .await
            .expect("the fixture's thread")
            .expect("start the DAV server");
        let notifications = NotificationWatch::start().await;
        let driver = WebDriver::start().await;
        let data_dir = driver.data_dir.path().to_owned();

        // Set up as `concord account add` and `concord pair add` would: the password in the
        // session's keyring, the server's calendar paired with a folder.
        let concord = Concord::open(&data_dir).unwrap();
        let conn = concord.database().connect().unwrap();
        let account = state::add_account(
            &conn,
            ACCOUNT,
            StorageKind::Caldav,
            &server.base_url(),
            Some(server.username()),
        )
        .unwrap();
        // The keyring's client blocks on its own runtime: off this one.
        let password = server.password().to_owned();
        tokio::task::spawn_blocking(move || Secrets::system()?.set_password(ACCOUNT, &password))
            .await
            .unwrap()
            .unwrap();
        let vdir = data_dir.join("calendar");
        fs::create_dir_all(&vdir).unwrap();
        let calendar = ItemKind::Calendar;
        let a = state::put_storage(
            &conn,
            Some(account),
            StorageKind::Caldav,
            calendar,
            &server.calendar_url(),
            Some("Calendar"),
        )
        .unwrap();
        let b = state::put_storage(
            &conn,
            None,
            StorageKind::Vdir,
            calendar,
            vdir.to_str().unwrap(),
            None,
        )
        .unwrap();
        state::add_pair(&conn, PAIR, a, b, Direction::TwoWay, ConflictPolicy::Ask).unwrap();

        // The event on the server, synced once to the folder: both sides and the base agree.
        put_on_server(&server, "Planning", "Room 1");
        let first = sync_pair(
            &concord,
            PAIR,
            &credentials(&server),
            &SyncOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(first.counts.create_b, 1, "{first:?}");

        // Two clients edit it differently: the caldav client on the server, an editor in the
        // folder.
        edit_on_server_with_caldav(&server, "Planning (server)", "Room 2");
        let (path, text) = vdir_event(&vdir);
        let edited = text
            .replace("SUMMARY:Planning", "SUMMARY:Planning (laptop)")
            .replace("LOCATION:Room 1", "LOCATION:Room 3");
        assert_ne!(edited, text, "the folder's copy reads {text}");
        let temp = path.with_extension("tmp");
        fs::write(&temp, &edited).unwrap();
        fs::rename(&temp, &path).unwrap();

        // The app, on that data directory; its tray is found by the app's process.
        let client = driver.session().await;
        let tray = driver.tray().await;
        Scene {
            server,
            notifications,
            concord,
            vdir,
            client,
            tray,
            _driver: driver,
        }
    }

    /// The event's SUMMARY and LOCATION on the server and in the folder.
    fn both_sides(&self) -> [(String, String); 2] {
        let (status, on_server) = curl(&self.server, &[], &server_event_url(&self.server));
        assert_eq!(status, 200, "{on_server}");
        let (_, in_folder) = vdir_event(&self.vdir);
        [on_server, in_folder].map(|body| (property(&body, "SUMMARY"), property(&body, "LOCATION")))
    }
}

fn credentials(server: &DavServer) -> Credentials {
    Credentials::new(server.username(), server.password())
}

/// PUTs the event on the server with curl, as another client would.
fn put_on_server(server: &DavServer, summary: &str, location: &str) {
    let put = curl(
        server,
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: text/calendar; charset=utf-8",
            "--data-binary",
            &event(summary, location),
        ],
        &server_event_url(server),
    );
    assert!((200..300).contains(&put.0), "PUT the event: {put:?}");
}

#[tokio::test]
async fn a_conflict_on_radicale_is_announced_once_counted_in_the_tray_and_resolved_per_field() {
    announced_once_counted_in_the_tray_and_resolved_per_field(DavServer::radicale).await;
}

#[tokio::test]
async fn a_conflict_on_xandikos_is_announced_once_counted_in_the_tray_and_resolved_per_field() {
    announced_once_counted_in_the_tray_and_resolved_per_field(DavServer::xandikos).await;
}

async fn announced_once_counted_in_the_tray_and_resolved_per_field(
    server: fn() -> Result<DavServer, FixtureError>,
) {
    let _turn = one_app_at_a_time().await;
    let scene = Scene::start(server).await;
    let Scene {
        notifications,
        concord,
        client,
        tray,
        ..
    } = &scene;
    let quiet_icon = tray.icon().await.unwrap();
    let before = notifications.count();
    // Earlier tests' notifications leave the screen, so dunst shows this test's alone.
    dunstctl(&["close-all"]);

    // Sync now, from the Pairs page: the sync reports the conflict.
    click(client, "[data-page=pairs]", STARTUP_TIMEOUT).await;
    click(
        client,
        "[data-testid=pair-1] [data-action=sync]",
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(
        client,
        "[data-testid=pair-1] [data-testid=sync-result]",
        "1 new conflict",
        SYNC_TIMEOUT,
    )
    .await;

    // One notification, naming the event; none again while the conflict stays open.
    let seen = notifications
        .mentioning("new conflict needs your choice", CHANGE_TIMEOUT)
        .await;
    assert!(
        seen.contains("Planning (server)"),
        "names the event: {seen}"
    );
    assert!(
        seen.contains("Open Conflicts"),
        "offers to open the page: {seen}"
    );

    // The tray counts it, its line opens the Conflicts page, and the icon needs attention.
    status_line_opens_conflicts(tray, "1 conflict").await;
    let attention_icon = tray.icon().await.unwrap();
    assert_ne!(
        attention_icon, quiet_icon,
        "the icon changed for the conflict"
    );
    click(client, "[data-page=accounts]", CHANGE_TIMEOUT).await;
    tray.click("1 conflict").await.unwrap();
    element(client, "[data-testid=page-conflicts]", CHANGE_TIMEOUT).await;

    // The notification's action opens the Conflicts page too (dunst invokes its default).
    click(client, "[data-page=accounts]", CHANGE_TIMEOUT).await;
    element(client, "[data-testid=page-accounts]", CHANGE_TIMEOUT).await;
    assert_eq!(
        dunstctl(&["count", "displayed"]).trim(),
        "1",
        "only ours is shown"
    );
    dunstctl(&["action", "0"]);
    element(client, "[data-testid=page-conflicts]", CHANGE_TIMEOUT).await;

    // The page says what happened in a person's words: title, time, place, both versions.
    let conflict = "[data-testid=conflict-1]";
    let shown = text_containing(
        client,
        conflict,
        "Changed differently on both sides",
        CHANGE_TIMEOUT,
    )
    .await;
    for words in ["Planning (server)", "Room 2", "When:", "2026", "Attendees:"] {
        assert!(
            shown.contains(words),
            "the conflict shows {words:?}: {shown}"
        );
    }
    let fields = text_containing(
        client,
        &format!("{conflict} [data-testid=conflict-fields]"),
        "Planning (laptop)",
        CHANGE_TIMEOUT,
    )
    .await;
    for words in ["Room 1", "Room 2", "Room 3", "Planning (server)"] {
        assert!(
            fields.contains(words),
            "the fields show {words:?}: {fields}"
        );
    }

    // The title from the server, the place from the laptop; the preview follows each choice.
    click(
        client,
        &format!("{conflict} tr[data-field$=SUMMARY] input[data-side=a]"),
        CHANGE_TIMEOUT,
    )
    .await;
    click(
        client,
        &format!("{conflict} tr[data-field$=LOCATION] input[data-side=b]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let preview = text_containing(
        client,
        &format!("{conflict} [data-testid=preview]"),
        "Room 3",
        CHANGE_TIMEOUT,
    )
    .await;
    assert!(preview.contains("Planning (server)"), "{preview}");
    click(
        client,
        &format!("{conflict} [data-action=resolve]"),
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(client, "[data-testid=resolved]", "Resolved", SYNC_TIMEOUT).await;
    text_containing(
        client,
        "[data-testid=page-conflicts]",
        "No conflicts.",
        CHANGE_TIMEOUT,
    )
    .await;

    // Both sides hold the chosen content.
    let chosen = ("Planning (server)".to_owned(), "Room 3".to_owned());
    assert_eq!(scene.both_sides(), [chosen.clone(), chosen]);

    // Nothing is lost: each side's version it gave up is in the item history.
    let kept: Vec<String> = {
        let conn = concord.database().connect().unwrap();
        let mut stmt = conn
            .prepare("SELECT content FROM item_history WHERE uid = ?1")
            .unwrap();
        stmt.query_map([UID], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|r| String::from_utf8_lossy(&r.unwrap()).into_owned())
            .collect()
    };
    for lost in ["Planning (laptop)", "Room 2"] {
        assert!(
            kept.iter().any(|v| v.contains(lost)),
            "{lost:?} is kept in history: {kept:?}"
        );
    }

    // The tray count is gone, its line is information again, and the icon no longer asks.
    until(
        "the tray no longer counts conflicts",
        CHANGE_TIMEOUT,
        async || {
            let menu = tray.menu().await?;
            match menu.iter().find(|e| e.visible && !e.separator) {
                Some(first) if !first.label.contains("conflict") && !first.enabled => Ok(()),
                other => Err(format!("it reads {other:?}")),
            }
        },
    )
    .await;
    assert_ne!(
        tray.icon().await.unwrap(),
        attention_icon,
        "the icon no longer needs attention"
    );

    // One notification in all for that sync, even after the status was read again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        notifications.count(),
        before + 1,
        "{}",
        notifications.text()
    );

    scene.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_side_changed_again_before_resolving_is_shown_again_and_never_overwritten() {
    let _turn = one_app_at_a_time().await;
    let scene = Scene::start(DavServer::radicale).await;
    let client = &scene.client;
    let before = scene.notifications.count();

    // This time another process syncs (as `concord sync` or the daemon would): the app hears
    // of the conflict through the status, announces it once and shows it.
    let report = sync_pair(
        &scene.concord,
        PAIR,
        &credentials(&scene.server),
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.counts.conflicts, 1, "{report:?}");
    scene
        .notifications
        .mentioning("new conflict needs your choice", CHANGE_TIMEOUT)
        .await;
    status_line_opens_conflicts(&scene.tray, "1 conflict").await;
    click(client, "[data-page=conflicts]", STARTUP_TIMEOUT).await;
    let conflict = "[data-testid=conflict-1]";
    text_containing(client, conflict, "Planning (laptop)", CHANGE_TIMEOUT).await;

    // Meanwhile the server's event is edited again; then the person keeps the folder's version.
    put_on_server(&scene.server, "Planning (moved again)", "Room 9");
    click(
        client,
        &format!("{conflict} [data-action=keep-b]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let said = text_containing(
        client,
        &format!("{conflict} [data-testid=conflict-refreshed]"),
        "nothing was overwritten",
        SYNC_TIMEOUT,
    )
    .await;
    assert!(said.contains("choose again"), "{said}");
    text_containing(
        client,
        &format!("{conflict} [data-testid=conflict-fields]"),
        "Planning (moved again)",
        CHANGE_TIMEOUT,
    )
    .await;
    let untouched = [
        ("Planning (moved again)".to_owned(), "Room 9".to_owned()),
        ("Planning (laptop)".to_owned(), "Room 3".to_owned()),
    ];
    assert_eq!(scene.both_sides(), untouched, "nothing was overwritten");

    // Shown again with what the sides hold now, the choice goes through.
    click(
        client,
        &format!("{conflict} [data-action=keep-a]"),
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(client, "[data-testid=resolved]", "hold A", SYNC_TIMEOUT).await;
    let kept = ("Planning (moved again)".to_owned(), "Room 9".to_owned());
    assert_eq!(scene.both_sides(), [kept.clone(), kept]);
    until(
        "the tray no longer counts conflicts",
        CHANGE_TIMEOUT,
        async || {
            let labels = scene.tray.labels().await?;
            match labels.first() {
                Some(line) if !line.contains("conflict") => Ok(()),
                _ => Err(format!("it reads {labels:?}")),
            }
        },
    )
    .await;

    // A refreshed conflict is not a new one: still one notification.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        scene.notifications.count(),
        before + 1,
        "{}",
        scene.notifications.text()
    );
    client.clone().close().await.unwrap();
}
