//! A server that asks no one to sign in (Xandikos, as the harness starts it), used with the
//! `concord` command where no Secret Service runs, as under a headless `concord daemon`: an
//! account added without a username is discovered and synced without asking the keyring,
//! and a password given without its username is refused before anything is stored. A server
//! that went away is reported within seconds, with the cause and when it is tried again.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use concord_e2e::desktop::{concord_ok, run_concord};
use concord_e2e::servers::DavServer;
use concord_e2e::sync_fixture::event;

/// A session bus address where nothing listens: any attempt to reach the Secret Service fails.
const NO_BUS: (&str, &str) = (
    "DBUS_SESSION_BUS_ADDRESS",
    "unix:path=/nonexistent/concord-bus",
);

/// `concord` with no session bus, which must succeed; what it printed.
fn concord(data_dir: &Path, args: &[&str]) -> String {
    concord_ok(data_dir, args, "", &[NO_BUS])
}

/// Pairs `collection` of `account` with the folder `vdir`, as the pair "cal".
fn pair_with_folder(data_dir: &Path, account: &str, collection: &str, vdir: &Path) {
    let a = format!("{account}:{collection}");
    let b = format!("dir:{}", vdir.display());
    concord(data_dir, &["pair", "add", "cal", "--a", &a, "--b", &b]);
}

#[test]
fn an_account_without_a_username_syncs_where_no_keyring_runs() {
    let server = DavServer::xandikos().expect("start Xandikos");
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("concord");
    let vdir = data.path().join("calendar");

    let put = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", "Content-Type: text/calendar; charset=utf-8"])
        .args(["--data-binary", &event("open-1", "Open house", "Hall")])
        .arg(format!("{}open-1.ics", server.calendar_url()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&put.stdout).starts_with('2'),
        "{put:?}"
    );

    // A password without the username it belongs to is refused, and no account is kept.
    let refused = run_concord(
        &data_dir,
        &[
            "account",
            "add",
            "open",
            "--url",
            &server.base_url(),
            "--password-stdin",
        ],
        "secret\n",
        &[NO_BUS],
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("username"), "{said}");
    let listed = concord(&data_dir, &["account", "list"]);
    assert!(!listed.contains("open"), "{listed}");

    concord(
        &data_dir,
        &["account", "add", "open", "--url", &server.base_url()],
    );
    let found = concord(&data_dir, &["account", "discover", "open"]);
    assert!(found.contains(server.calendar_path()), "{found}");
    let tested = concord(&data_dir, &["account", "test", "open"]);
    assert!(!tested.is_empty());

    pair_with_folder(&data_dir, "open", &server.calendar_url(), &vdir);
    let synced = concord(&data_dir, &["sync", "cal"]);
    assert!(synced.contains("1 created on b"), "{synced}");
    let files: Vec<_> = std::fs::read_dir(&vdir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ics"))
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(text.contains("SUMMARY:Open house"), "{text}");
}

#[test]
fn a_server_that_went_away_is_reported_at_once_with_its_cause() {
    // A port nothing listens on: every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("concord");
    let vdir = data.path().join("calendar");
    let base = format!("http://127.0.0.1:{port}/");
    concord(&data_dir, &["account", "add", "gone", "--url", &base]);
    pair_with_folder(&data_dir, "gone", &format!("{base}user/calendar/"), &vdir);
    let out = run_concord(&data_dir, &["sync", "cal"], "", &[NO_BUS]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    // The cause under the HTTP client's words, and when it is tried again (not "continues in
    // the background", which a run another process holds gets after a minute's wait).
    assert!(said.to_lowercase().contains("refused"), "{said}");
    assert!(said.contains("attempt(s); the next at"), "{said}");
    assert!(!said.contains("background"), "{said}");
}
