//! An account's collections against real Radicale and Xandikos: the "all collections" pair
//! (each calendar and address book in its own folder, new ones picked up by the next sync,
//! vanished ones reported with their folders kept), and display name and colour carried
//! between a collection and its folder both ways, with no request when nothing changed
//! (counted by a recording proxy in front of the server). The other client is curl.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::sync::accounts::mapping;
use concord_core::sync::item::ItemKind;
use concord_core::sync::run::metadata;
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::{PairSync, SyncOptions, sync_pair};
use concord_e2e::both_servers;
use concord_e2e::front::{FrontServer, forward};
use concord_e2e::servers::{DavServer, ServerKind};
use concord_e2e::sync_fixture::event;

/// curl as another client: returns the status and body.
fn curl(
    server: &DavServer,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-w", "\n%{http_code}", "-X", method])
        .args([
            "-u",
            &format!("{}:{}", server.username(), server.password()),
        ]);
    for header in headers {
        command.args(["-H", header]);
    }
    if !body.is_empty() {
        command.args(["--data-binary", body]);
    }
    let out = command
        .arg(server.url(path))
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn put(server: &DavServer, path: &str, content_type: &str, body: &str) {
    let (status, answer) = curl(
        server,
        "PUT",
        path,
        &[&format!("Content-Type: {content_type}; charset=utf-8")],
        body,
    );
    assert!(
        (200..300).contains(&status),
        "PUT {path}: {status} {answer}"
    );
}

fn make_calendar(server: &DavServer, path: &str, name: &str) {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop><D:displayname>{name}</D:displayname></D:prop></D:set>
</C:mkcalendar>"#
    );
    let (status, answer) = curl(
        server,
        "MKCALENDAR",
        path,
        &["Content-Type: application/xml; charset=utf-8"],
        &body,
    );
    assert_eq!(
        status,
        201,
        "MKCALENDAR {path}: {answer}\n{}",
        server.stderr()
    );
}

fn proppatch(server: &DavServer, path: &str, display_name: &str, color: &str) {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/">
  <D:set><D:prop><D:displayname>{display_name}</D:displayname>
  <A:calendar-color>{color}</A:calendar-color></D:prop></D:set>
</D:propertyupdate>"#
    );
    let (status, answer) = curl(
        server,
        "PROPPATCH",
        path,
        &["Content-Type: application/xml; charset=utf-8"],
        &body,
    );
    assert_eq!(status, 207, "PROPPATCH {path}: {answer}");
    assert!(
        !answer.contains(" 403 ") && !answer.contains(" 409 "),
        "{answer}"
    );
}

/// The collection's display name and colour as the server reports them to curl.
fn server_metadata(server: &DavServer, path: &str) -> String {
    let (status, answer) = curl(
        server,
        "PROPFIND",
        path,
        &["Depth: 0", "Content-Type: application/xml; charset=utf-8"],
        r#"<propfind xmlns="DAV:" xmlns:A="http://apple.com/ns/ical/"><prop><displayname/><A:calendar-color/></prop></propfind>"#,
    );
    assert_eq!(status, 207, "{answer}");
    answer
}

fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(ext))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

const CONTACT: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada\r\nFN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\nEMAIL:ada@example.com\r\nEND:VCARD\r\n";

async fn all_collections_in_one_folder_each(kind: ServerKind) {
    let server = DavServer::start(kind).expect("starting the server");
    put(
        &server,
        &format!("{}e1.ics", server.calendar_path()),
        "text/calendar",
        &event("e1", "Dentist", "Town"),
    );
    put(
        &server,
        &format!("{}ada.vcf", server.address_book_path()),
        "text/vcard",
        CONTACT,
    );
    let data = tempfile::tempdir().unwrap();
    let concord = Concord::open(data.path()).unwrap();
    let root = data.path().join("pim");
    let credentials: Arc<Credentials> =
        Arc::new(Credentials::new(server.username(), server.password()));
    {
        let conn = concord.database().connect().unwrap();
        // One account covers calendars and address books.
        let account = state::add_account(
            &conn,
            "server",
            StorageKind::Caldav,
            &server.base_url(),
            Some(server.username()),
        )
        .unwrap();
        state::mapping::add_mapping(
            &conn,
            "all",
            account,
            &root,
            Direction::TwoWay,
            ConflictPolicy::Ask,
            15,
        )
        .unwrap();
    }

    let first = mapping::sync_mapping(&concord, "all", credentials.clone(), false)
        .await
        .unwrap_or_else(|err| panic!("{kind}: {err}\n{}", server.stderr()));
    assert!(first.errors.is_empty(), "{kind}: {:?}", first.errors);
    let calendar_folder = server
        .calendar_path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap();
    let book_folder = server
        .address_book_path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap();
    let mut expected = vec![
        format!("all/{calendar_folder}"),
        format!("all/{book_folder}"),
    ];
    expected.sort();
    let mut created = first.refresh.created.clone();
    created.sort();
    assert_eq!(created, expected, "{kind}: {first:?}");
    assert_eq!(files(&root.join(calendar_folder), ".ics"), ["e1.ics"]);
    assert_eq!(files(&root.join(book_folder), ".vcf"), ["ada.vcf"]);

    // A calendar made on the server later is picked up by the next sync.
    let work = format!("{}work/", server.calendar_home_path());
    make_calendar(&server, &work, "Work");
    put(
        &server,
        &format!("{work}w1.ics"),
        "text/calendar",
        &event("w1", "Standup", "Office"),
    );
    let second = mapping::sync_mapping(&concord, "all", credentials.clone(), false)
        .await
        .unwrap();
    assert_eq!(second.refresh.created, ["all/work"], "{kind}: {second:?}");
    assert!(second.errors.is_empty(), "{kind}: {:?}", second.errors);
    assert_eq!(files(&root.join("work"), ".ics"), ["w1.ics"]);
    // Nothing new the third time.
    let third = mapping::sync_mapping(&concord, "all", credentials.clone(), false)
        .await
        .unwrap();
    assert!(third.refresh.created.is_empty(), "{third:?}");
    assert_eq!(third.reports.len(), 3);

    // A collection deleted on the server is reported; its folder and items stay.
    let (status, _) = curl(&server, "DELETE", &work, &[], "");
    assert!((200..300).contains(&status), "DELETE {work}: {status}");
    let fourth = mapping::sync_mapping(&concord, "all", credentials.clone(), false)
        .await
        .unwrap();
    assert_eq!(fourth.refresh.gone.len(), 1, "{kind}: {fourth:?}");
    assert!(fourth.refresh.gone[0].contains("all/work"), "{fourth:?}");
    assert!(fourth.errors.is_empty(), "{kind}: {:?}", fourth.errors);
    assert_eq!(fourth.reports.len(), 2);
    assert_eq!(files(&root.join("work"), ".ics"), ["w1.ics"]);
    let conn = concord.database().connect().unwrap();
    let listed = state::mapping::mapping(&conn, "all").unwrap().unwrap();
    let gone: Vec<&str> = listed
        .pairs
        .iter()
        .filter(|p| p.gone_since_ms.is_some())
        .map(|p| p.pair.as_str())
        .collect();
    assert_eq!(gone, ["all/work"]);
    assert_eq!(listed.pairs.len(), 3);
}
both_servers!(all_collections_in_one_folder_each);

async fn display_name_and_colour_travel_both_ways(kind: ServerKind) {
    let server = DavServer::start(kind).expect("starting the server");
    let upstream = server.port();
    let proxy = FrontServer::start(move |request| forward(request, upstream)).unwrap();
    let calendar = server.calendar_path();
    proppatch(&server, calendar, "Work", "#3a429cff");

    let data = tempfile::tempdir().unwrap();
    let concord = Concord::open(data.path()).unwrap();
    let vdir = data.path().join("work");
    {
        let conn = concord.database().connect().unwrap();
        let account = state::add_account(
            &conn,
            "server",
            StorageKind::Caldav,
            &proxy.url("/"),
            Some(server.username()),
        )
        .unwrap();
        let a = state::put_storage(
            &conn,
            Some(account),
            StorageKind::Caldav,
            ItemKind::Calendar,
            &proxy.url(calendar),
            None,
        )
        .unwrap();
        let b = state::put_storage(
            &conn,
            None,
            StorageKind::Vdir,
            ItemKind::Calendar,
            vdir.to_str().unwrap(),
            None,
        )
        .unwrap();
        state::add_pair(&conn, "cal", a, b, Direction::TwoWay, ConflictPolicy::Ask).unwrap();
    }
    let credentials = Credentials::new(server.username(), server.password());
    let proppatches = || {
        proxy
            .requests()
            .iter()
            .filter(|r| r.method == "PROPPATCH")
            .count()
    };

    // The first sync carries the server's name and colour into the folder, as khal reads them.
    sync_pair(&concord, "cal", &credentials, &SyncOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{kind}: {err}\n{}", server.stderr()));
    assert_eq!(
        fs::read_to_string(vdir.join("displayname")).unwrap(),
        "Work"
    );
    assert_eq!(fs::read_to_string(vdir.join("color")).unwrap(), "#3a429cff");
    let conn = concord.database().connect().unwrap();
    let pair = state::pair(&conn, "cal").unwrap().unwrap();
    assert_eq!(pair.a.display_name.as_deref(), Some("Work"));
    assert_eq!(pair.b.color.as_deref(), Some("#3a429cff"));
    assert_eq!(proppatches(), 0);

    // Nothing changed: nothing is written.
    let sync = PairSync::open(&concord, "cal", &credentials).unwrap();
    assert!(
        metadata::sync_metadata(&sync, true)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(proppatches(), 0);

    // Edited in the folder (as a person or khal would): the server follows.
    fs::write(vdir.join("color"), "#00ff00ff\n").unwrap();
    fs::write(vdir.join("displayname"), "Work & Home").unwrap();
    let changes = metadata::sync_metadata(&sync, true).await.unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(proppatches(), 2);
    let shown = server_metadata(&server, calendar);
    assert!(shown.contains("#00ff00ff"), "{kind}: {shown}");
    assert!(shown.contains("Work &amp; Home"), "{kind}: {shown}");

    // Renamed on the server by another client: the folder follows, no request to the server.
    proppatch(&server, calendar, "Renamed", "#00ff00ff");
    let changes = metadata::sync_metadata(&sync, true).await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        fs::read_to_string(vdir.join("displayname")).unwrap(),
        "Renamed"
    );
    assert_eq!(
        fs::read_to_string(vdir.join("color")).unwrap(),
        "#00ff00ff\n"
    );
    assert_eq!(proppatches(), 2);
}
both_servers!(display_name_and_colour_travel_both_ways);

/// The schedule's path: the `sync-collections` workflow refreshes the mapping in a checkpointed
/// step and starts one `sync-pair` run per collection, which the engine then runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_workflow_pairs_and_syncs_every_collection() {
    use concord_durable::{Engine, EngineConfig, RunFilter, RunState};

    let server = DavServer::xandikos().expect("starting xandikos");
    put(
        &server,
        &format!("{}e1.ics", server.calendar_path()),
        "text/calendar",
        &event("e1", "Dentist", "Town"),
    );
    let data = tempfile::tempdir().unwrap();
    let concord = Concord::open(data.path()).unwrap();
    let root = data.path().join("pim");
    {
        let conn = concord.database().connect().unwrap();
        let account = state::add_account(
            &conn,
            "server",
            StorageKind::Carddav,
            &server.base_url(),
            Some(server.username()),
        )
        .unwrap();
        state::mapping::add_mapping(
            &conn,
            "all",
            account,
            &root,
            Direction::TwoWay,
            ConflictPolicy::Ask,
            15,
        )
        .unwrap();
    }
    // An engine of this test's own, with the test's credentials instead of the keyring.
    let credentials: Arc<Credentials> =
        Arc::new(Credentials::new(server.username(), server.password()));
    let engine = Engine::new(concord.database().clone(), EngineConfig::default()).unwrap();
    engine.register(mapping::workflow(concord.clone(), credentials.clone()));
    engine.register(concord_core::sync::run::workflow(
        concord.clone(),
        credentials,
    ));
    engine
        .start(
            mapping::MAPPING_WORKFLOW,
            "sync-collections:all",
            serde_json::json!({ "mapping": "all" }),
        )
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        engine.run_until_idle().await.unwrap();
        let runs = engine.runs(&RunFilter::default()).unwrap();
        let done = runs
            .iter()
            .filter(|r| r.state == RunState::Completed)
            .count();
        if done == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{runs:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let conn = concord.database().connect().unwrap();
    let listed = state::mapping::mapping(&conn, "all").unwrap().unwrap();
    assert_eq!(listed.pairs.len(), 2, "{listed:?}");
    assert_eq!(files(&root.join("calendar"), ".ics"), ["e1.ics"]);
    assert!(root.join("addressbook").is_dir());
}
