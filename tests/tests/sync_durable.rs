//! A pair's sync is a durable workflow: a process killed in the middle of a sync leaves a run
//! that the next process resumes (completed steps are not repeated), ending with both sides
//! equal and no duplicates. The killed process is this test binary, re-run as a child.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::sync::item::ItemKind;
use concord_core::sync::run::SYNC_WORKFLOW;
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::sync_durably;
use concord_durable::{RunFilter, RunState};
use concord_e2e::servers::DavServer;

const CHILD_DATA_DIR: &str = "CONCORD_SYNC_CHILD_DATA_DIR";
const CHILD_USER: &str = "CONCORD_SYNC_CHILD_USER";
const CHILD_PASSWORD: &str = "CONCORD_SYNC_CHILD_PASSWORD";
const ITEMS: usize = 300;
const KILL_AFTER_ITEMS: usize = 40;
const PAIR: &str = "cal";

fn event(i: usize) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\nUID:ev-{i}\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:20261201T100000Z\r\nSUMMARY:Event {i}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// The .ics files Radicale holds for the calendar (its storage is plain files).
fn items_on_server(server: &DavServer) -> Vec<String> {
    let dir = server
        .dir()
        .join("collections/collection-root")
        .join(server.calendar_path().trim_matches('/'));
    let mut bodies = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "ics") {
                bodies.push(fs::read_to_string(path).unwrap_or_default());
            }
        }
    }
    bodies
}

fn uids(bodies: &[String]) -> BTreeSet<String> {
    bodies
        .iter()
        .filter_map(|b| {
            b.lines()
                .find_map(|l| l.trim().strip_prefix("UID:"))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_midway_resumes_and_ends_equal_without_duplicates() {
    if let Ok(dir) = std::env::var(CHILD_DATA_DIR) {
        // The child: sync until killed.
        let concord = Concord::open(Path::new(&dir)).unwrap();
        let credentials = Credentials::new(
            std::env::var(CHILD_USER).unwrap_or_default(),
            std::env::var(CHILD_PASSWORD).unwrap_or_default(),
        );
        let _ = sync_durably(&concord, PAIR, Arc::new(credentials), false).await;
        return;
    }

    let server = DavServer::radicale().expect("starting radicale");
    let data = tempfile::tempdir().unwrap();
    let vdir = data.path().join("vdir");
    fs::create_dir_all(&vdir).unwrap();
    for i in 0..ITEMS {
        fs::write(vdir.join(format!("ev-{i}.ics")), event(i)).unwrap();
    }
    let concord = Concord::open(data.path()).unwrap();
    {
        let conn = concord.database().connect().unwrap();
        let account = state::add_account(
            &conn,
            "server",
            StorageKind::Caldav,
            &server.base_url(),
            Some(server.username()),
        )
        .unwrap();
        let a = state::put_storage(
            &conn,
            Some(account),
            StorageKind::Caldav,
            ItemKind::Calendar,
            &server.calendar_url(),
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
        state::add_pair(&conn, PAIR, a, b, Direction::TwoWay, ConflictPolicy::Ask).unwrap();
    }

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_sync_killed_midway_resumes_and_ends_equal_without_duplicates",
            "--test-threads=1",
        ])
        .env(CHILD_DATA_DIR, data.path())
        .env(CHILD_USER, server.username())
        .env(CHILD_PASSWORD, server.password())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while items_on_server(&server).len() < KILL_AFTER_ITEMS {
        assert!(Instant::now() < deadline, "the child never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child finished before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let written = items_on_server(&server).len();
    assert!(
        written < ITEMS,
        "killed midway: {written} of {ITEMS} written"
    );

    // The next process resumes the same run once the dead one's lease expires.
    let credentials = Credentials::new(server.username(), server.password());
    let report = sync_durably(&concord, PAIR, Arc::new(credentials.clone()), false)
        .await
        .unwrap_or_else(|err| panic!("resuming: {err}\n{}", server.stderr()));
    assert!(report.stopped.is_none(), "{report:?}");

    let on_server = items_on_server(&server);
    assert_eq!(on_server.len(), ITEMS, "no duplicates, none missing");
    assert_eq!(uids(&on_server).len(), ITEMS);
    // Item files (the collection's `displayname` file from metadata sync sits beside them).
    let files = fs::read_dir(&vdir).unwrap().filter_map(Result::ok);
    let items = files.filter(|e| e.path().extension().is_some_and(|x| x == "ics"));
    assert_eq!(items.count(), ITEMS);

    let runs = concord
        .engine()
        .runs(&RunFilter {
            kind: Some(SYNC_WORKFLOW.to_owned()),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(
        runs.len(),
        1,
        "one run, resumed, not a second one: {runs:?}"
    );
    let detail = concord.engine().show(runs[0].id).unwrap();
    assert_eq!(detail.run.state, RunState::Completed);
    assert!(detail.run.attempts >= 2, "{:?}", detail.run);
    let observe = detail.steps.iter().find(|s| s.name == "observe").unwrap();
    assert_eq!(
        observe.attempts, 1,
        "observing ran once and was not repeated: {observe:?}"
    );

    // And a further sync finds nothing to do.
    let again = sync_durably(&concord, PAIR, Arc::new(credentials), false)
        .await
        .unwrap();
    assert!(again.plan.is_empty(), "{again:?}");
}
