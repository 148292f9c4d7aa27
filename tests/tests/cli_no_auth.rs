//! A server that asks no one to sign in (Xandikos, as the harness starts it), used with the
//! `concord` command where no Secret Service runs, as under a headless `concord daemon`: an
//! account added without a username is discovered and synced without asking the keyring,
//! and a password given without its username is refused before anything is stored.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use concord_e2e::desktop::{concord_ok, run_concord};
use concord_e2e::servers::DavServer;
use concord_e2e::sync_fixture::event;

/// A session bus address where nothing listens: any attempt to reach the Secret Service fails.
const NO_BUS: (&str, &str) = (
    "DBUS_SESSION_BUS_ADDRESS",
    "unix:path=/nonexistent/concord-bus",
);

#[test]
fn an_account_without_a_username_syncs_where_no_keyring_runs() {
    let server = DavServer::xandikos().expect("start Xandikos");
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("concord");
    let vdir = data.path().join("calendar");
    let env = [NO_BUS];

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
        &env,
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--username"), "{said}");
    let listed = concord_ok(&data_dir, &["account", "list"], "", &env);
    assert!(!listed.contains("open"), "{listed}");

    concord_ok(
        &data_dir,
        &["account", "add", "open", "--url", &server.base_url()],
        "",
        &env,
    );
    let found = concord_ok(&data_dir, &["account", "discover", "open"], "", &env);
    assert!(found.contains(server.calendar_path()), "{found}");
    let tested = concord_ok(&data_dir, &["account", "test", "open"], "", &env);
    assert!(!tested.is_empty());

    let a = format!("open:{}", server.calendar_url());
    let b = format!("dir:{}", vdir.display());
    concord_ok(
        &data_dir,
        &["pair", "add", "cal", "--a", &a, "--b", &b],
        "",
        &env,
    );
    let synced = concord_ok(&data_dir, &["sync", "cal"], "", &env);
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
