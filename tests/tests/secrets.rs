//! A password written through Concord's keyring layer lands in the real Secret Service, where
//! `secret-tool` (libsecret, as any other desktop program) reads it back, and never in Concord's
//! database. The items carry `service=concord` and `username=<account id>`.
//!
//! Runs only inside `tests/desktop-session.sh`, which provides a throwaway gnome-keyring: run
//! outside it, these tests would write to the person's own keyring, so they fail instead.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use concord_core::Concord;
use concord_core::secrets::{SERVICE, Secrets};

/// The session's Secret Service; fails the test outside `tests/desktop-session.sh`.
fn throwaway_keyring() -> Secrets {
    if std::env::var_os("CONCORD_E2E_SESSION").is_none() {
        panic!(
            "CONCORD_E2E_SESSION is not set: the keyring tests need the throwaway desktop session, \
             never your own keyring. Run them via tests/desktop-session.sh, e.g. \
             tests/desktop-session.sh cargo test -p concord-e2e --test secrets"
        );
    }
    Secrets::system().expect("the session's Secret Service")
}

/// An account id and a password no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn secret_tool(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = Command::new("secret-tool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running secret-tool (Debian package libsecret-tools)");
    let mut input = child.stdin.take().expect("secret-tool's stdin is piped");
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .expect("writing to secret-tool");
    }
    drop(input);
    child.wait_with_output().expect("waiting for secret-tool")
}

fn lookup(account_id: &str) -> Output {
    secret_tool(
        &["lookup", "service", SERVICE, "username", account_id],
        None,
    )
}

/// Every file in `dir` (the database, its -wal and -shm), searched for `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("listing the data directory") {
        let path = entry.expect("listing the data directory").path();
        let bytes = std::fs::read(&path).expect("reading a data file");
        if bytes.windows(needle.len()).any(|window| window == needle) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn a_password_set_through_concord_is_read_back_by_secret_tool_and_not_in_the_database() {
    let secrets = throwaway_keyring();
    let account_id = unique("e2e-account");
    let password = unique("pässwörd with spaces");

    let data_dir = tempfile::tempdir().unwrap();
    let concord = Concord::open(data_dir.path()).unwrap();
    secrets.set_password(&account_id, &password).unwrap();
    concord.set_paused(true).unwrap(); // a write, so the -wal has content too

    let found = lookup(&account_id);
    assert!(
        found.status.success(),
        "secret-tool lookup failed: {}",
        String::from_utf8_lossy(&found.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&found.stdout), password);
    assert_eq!(
        secrets.password(&account_id).unwrap(),
        Some(password.clone())
    );

    let names: Vec<_> = std::fs::read_dir(data_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|name| name.ends_with(".db")), "{names:?}");
    let leaked = files_containing(data_dir.path(), password.as_bytes());
    assert!(leaked.is_empty(), "the password is in {leaked:?}");
    drop(concord);

    assert!(secrets.delete_password(&account_id).unwrap());
    assert!(
        !lookup(&account_id).status.success(),
        "still in the keyring after delete"
    );
    assert_eq!(secrets.password(&account_id).unwrap(), None);
}

#[test]
fn a_password_stored_with_secret_tool_is_found_by_concord() {
    let secrets = throwaway_keyring();
    let account_id = unique("e2e-by-hand");
    let password = unique("typed-in-seahorse");

    let stored = secret_tool(
        &[
            "store",
            "--label=Concord test",
            "service",
            SERVICE,
            "username",
            &account_id,
        ],
        Some(&password),
    );
    assert!(
        stored.status.success(),
        "{}",
        String::from_utf8_lossy(&stored.stderr)
    );

    assert_eq!(secrets.password(&account_id).unwrap(), Some(password));
    assert!(secrets.delete_password(&account_id).unwrap());
}
