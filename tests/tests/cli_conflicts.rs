//! A conflict resolved with the `concord` command, as a person types it (run inside
//! `tests/desktop-session.sh`, as `make test` does, for its keyring): an account whose password
//! goes to the Secret Service, a server calendar paired with a folder, one event edited
//! differently on the server (by curl) and in the folder, then `conflicts show`, a `--preview`
//! that writes nothing, and `--pick` per field. Both sides hold the chosen fields after, and
//! the history keeps what each side held before.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use concord_e2e::desktop::{concord_ok, require_session, run_concord};
use concord_e2e::servers::{DavServer, FixtureError};
use concord_e2e::sync_fixture::{event, summary_of, write_atomically};

const UID: &str = "cli-conflict-1";

/// Runs `concord` on `data_dir` with `stdin`; returns its output, and fails on a non-zero exit.
fn concord(data_dir: &Path, args: &[&str], stdin: &str) -> String {
    concord_ok(data_dir, args, stdin, &[])
}

fn curl(server: &DavServer, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-u"])
        .arg(format!("{}:{}", server.username(), server.password()))
        .args(args)
        .arg(format!("{}{UID}.ics", server.calendar_url()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn put(server: &DavServer, summary: &str, location: &str) {
    let body = event(UID, summary, location);
    let (status, answer) = curl(
        server,
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: text/calendar; charset=utf-8",
            "--data-binary",
            &body,
        ],
    );
    assert!((200..300).contains(&status), "PUT: {status} {answer}");
}

fn location_of(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("LOCATION:"))
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn the_folders_event(vdir: &Path) -> (PathBuf, String) {
    let file = std::fs::read_dir(vdir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "ics"))
        .expect("the event in the folder");
    let text = std::fs::read_to_string(&file).unwrap();
    (file, text)
}

fn resolved_per_field_from_the_command_line(server: fn() -> Result<DavServer, FixtureError>) {
    require_session();
    let server = server().expect("start the DAV server");
    let data = tempfile::tempdir().unwrap();
    let vdir = data.path().join("calendar");
    let data_dir = data.path().join("concord");

    put(&server, "Planning", "Room 1");
    let base_url = server.base_url();
    let add_account = [
        "account",
        "add",
        "dav",
        "--url",
        &base_url,
        "--username",
        server.username(),
        "--password-stdin",
    ];
    concord(&data_dir, &add_account, &format!("{}\n", server.password()));
    let a = format!("dav:{}", server.calendar_url());
    let b = format!("dir:{}", vdir.display());
    concord(&data_dir, &["pair", "add", "cal", "--a", &a, "--b", &b], "");
    let first = concord(&data_dir, &["sync", "cal"], "");
    assert!(first.contains("1 created on b"), "{first}");
    // Adding the same name again is refused before the keyring is touched: the account's
    // password stays the right one (every sync below needs it).
    let again = run_concord(&data_dir, &add_account, "not-the-password\n", &[]);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already an account named"), "{said}");

    // Two clients edit the event differently.
    put(&server, "Planning (server)", "Room 2");
    let (file, text) = the_folders_event(&vdir);
    let edited = text
        .replace("SUMMARY:Planning", "SUMMARY:Planning (laptop)")
        .replace("LOCATION:Room 1", "LOCATION:Room 3");
    write_atomically(&file, &edited);
    let second = concord(&data_dir, &["sync", "cal"], "");
    assert!(second.contains("1 new conflict"), "{second}");

    let listed: serde_json::Value =
        serde_json::from_str(&concord(&data_dir, &["--json", "conflicts", "list"], "")).unwrap();
    let conflicts = listed.as_array().expect("a list of conflicts");
    assert_eq!(conflicts.len(), 1, "{listed}");
    let id = conflicts[0]["id"].to_string();
    let shown = concord(&data_dir, &["conflicts", "show", &id], "");
    for text in ["Planning (server)", "Planning (laptop)", "Room 2", "Room 3"] {
        assert!(shown.contains(text), "show names {text}: {shown}");
    }

    // The preview writes nothing.
    let picks = [
        "conflicts",
        "resolve",
        &id,
        "--pick",
        "SUMMARY=b",
        "--pick",
        "LOCATION=a",
    ];
    let preview = concord(&data_dir, &[&picks[..], &["--preview"]].concat(), "");
    assert_eq!(summary_of(&preview), "Planning (laptop)", "{preview}");
    assert_eq!(location_of(&preview), "Room 2", "{preview}");
    let (_, on_server) = curl(&server, &[]);
    assert_eq!(summary_of(&on_server), "Planning (server)");

    // The pick lands on both sides; history keeps both earlier versions.
    concord(&data_dir, &picks, "");
    let (_, on_server) = curl(&server, &[]);
    let (_, in_folder) = the_folders_event(&vdir);
    for body in [&on_server, &in_folder] {
        assert_eq!(summary_of(body), "Planning (laptop)", "{body}");
        assert_eq!(location_of(body), "Room 2", "{body}");
    }
    let history: serde_json::Value =
        serde_json::from_str(&concord(&data_dir, &["--json", "history", UID], "")).unwrap();
    let kept: Vec<String> = history
        .as_array()
        .expect("a list of versions")
        .iter()
        .map(|v| v["summary"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        kept.iter().any(|c| c.contains("Planning (server)"))
            && kept.iter().any(|c| c.contains("Planning (laptop)")),
        "both losing versions are kept: {history}"
    );
    let none = concord(&data_dir, &["conflicts", "list"], "");
    assert!(none.contains("No conflicts"), "{none}");
}

#[test]
fn a_conflict_on_radicale_is_resolved_per_field_with_the_concord_command() {
    resolved_per_field_from_the_command_line(DavServer::radicale);
}

#[test]
fn a_conflict_on_xandikos_is_resolved_per_field_with_the_concord_command() {
    resolved_per_field_from_the_command_line(DavServer::xandikos);
}
