//! A server outage seen through the `concord` command alone, with no app and no daemon (run
//! inside `tests/desktop-session.sh`, as `make test` does, for its keyring): a calendar on a
//! real Radicale paired with a folder and synced once; the server stops. `concord sync` fails
//! naming the server and the cause, and `concord status` says the pair is failing, with the
//! error state. Once the server is back, `concord sync` brings its new event at once (it tries
//! the run that waits for its retry now) and the status is idle and ok again.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use concord_e2e::desktop::{concord_ok, pair_calendar_with_folder, require_session, run_concord};
use concord_e2e::servers::DavServer;
use concord_e2e::sync_fixture::{event, folder_item};

const PAIR: &str = "work";

/// `concord --json status`, parsed.
fn status(data_dir: &Path) -> serde_json::Value {
    let out = concord_ok(data_dir, &["--json", "status"], "", &[]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}\n{out}"))
}

/// The one pair's health in `status`.
fn pair_health(status: &serde_json::Value) -> &serde_json::Value {
    let health = status["health"].as_array().expect("a health list");
    assert_eq!(health.len(), 1, "{status:#}");
    assert_eq!(health[0]["name"], PAIR, "{status:#}");
    &health[0]
}

/// A calendar on Radicale paired with a folder and synced once, then the server stopped and
/// `concord sync` run again; what a person reads then is checked here.
struct Outage {
    server: DavServer,
    data_dir: PathBuf,
    folder: PathBuf,
    _data: tempfile::TempDir,
}

impl Outage {
    fn start() -> Self {
        require_session();
        let mut server = DavServer::radicale().expect("start Radicale");
        let data = tempfile::tempdir().unwrap();
        let data_dir = data.path().join("concord");
        let folder = data.path().join("calendar");
        server
            .put_into_calendar("first", &event("first", "Planning", "Room 1"))
            .unwrap();
        pair_calendar_with_folder(&data_dir, &server, "work", PAIR, &folder);
        let synced = concord_ok(&data_dir, &["sync", PAIR], "", &[]);
        assert!(synced.contains("1 created on b"), "{synced}");
        let before = status(&data_dir);
        assert_eq!(before["state"], "idle", "{before:#}");
        assert_eq!(pair_health(&before)["state"], "ok", "{before:#}");

        // The server goes away: `concord sync` makes its quick attempts, then fails with the
        // cause.
        server.stop().unwrap();
        let host = format!("127.0.0.1:{}", server.port());
        let failed = run_concord(&data_dir, &["sync", PAIR], "", &[]);
        let said = String::from_utf8_lossy(&failed.stderr);
        assert!(!failed.status.success(), "{said}");
        assert!(said.contains(&host), "names the server: {said}");
        assert!(
            said.to_lowercase().contains("connection refused"),
            "says why: {said}"
        );

        let during = status(&data_dir);
        let health = pair_health(&during);
        assert_eq!(during["state"], "error", "{during:#}");
        assert_eq!(health["state"], "failing", "{during:#}");
        assert!(
            health["failed_attempts"].as_u64().unwrap() >= 3,
            "{during:#}"
        );
        let line = during["line"].as_str().unwrap();
        assert!(
            line.starts_with(&format!("{PAIR}: Can't reach {host}")),
            "{line}"
        );
        // The text face says the same first line.
        let text = concord_ok(&data_dir, &["status"], "", &[]);
        assert_eq!(text.lines().next(), Some(line), "{text}");
        Self {
            server,
            data_dir,
            folder,
            _data: data,
        }
    }
}

#[test]
fn an_outage_is_told_by_concord_sync_and_status() {
    Outage::start();
}

#[test]
fn concord_sync_after_an_outage_syncs_at_once_and_the_status_is_ok_again() {
    let Outage {
        mut server,
        data_dir,
        folder,
        _data,
    } = Outage::start();

    // The server is back with a new event: the next `concord sync` brings it.
    server.start_again().unwrap();
    server
        .put_into_calendar("later", &event("later", "Review", "Room 2"))
        .unwrap();
    let recovered = concord_ok(&data_dir, &["sync", PAIR], "", &[]);
    assert!(recovered.contains("1 created on b"), "{recovered}");
    assert!(folder_item(&folder, "ics", "later").is_some());
    let after = status(&data_dir);
    assert_eq!(after["state"], "idle", "{after:#}");
    assert_eq!(pair_health(&after)["state"], "ok", "{after:#}");
    let line = after["line"].as_str().unwrap();
    assert!(line.starts_with("Synced"), "{line}");
}
