//! The DAV fixture is real: concord-core's CalDAV client finds the fixture's calendar on a fresh
//! Radicale and a fresh Xandikos (principal, calendar home set, depth-1 PROPFIND on the home).
//! Needs the venv with the servers (`make test` makes it), not the desktop session.

use concord_core::dav::{CalDav, Credentials, DavError};
use concord_e2e::servers::{DavServer, ServerKind};

async fn discovery_finds_the_fixture_calendar(kind: ServerKind) {
    let server = DavServer::start(kind).expect("starting the server");
    let credentials = Credentials::new(server.username(), server.password());
    let client = CalDav::new(&server.base_url(), &credentials).expect("a client for the fixture");

    let found = client
        .discover()
        .await
        .unwrap_or_else(|err| panic!("{kind}: discovery failed: {err}\n{}", server.stderr()));

    assert_eq!(
        found.principal.as_deref(),
        Some(server.principal_path()),
        "{kind}: {found:?}"
    );
    assert_eq!(
        found.calendar_home_sets,
        [server.calendar_home_path()],
        "{kind}: {found:?}"
    );
    let hrefs: Vec<&str> = found.calendars.iter().map(|c| c.href.as_str()).collect();
    assert!(hrefs.contains(&server.calendar_path()), "{kind}: {hrefs:?}");
    // The address book sits beside the calendar on Radicale: it must not be taken for one.
    assert!(
        !hrefs.contains(&server.address_book_path()),
        "{kind}: {hrefs:?}"
    );

    // The PROPFIND on the home alone, as a later sync would start from a stored home set.
    let in_home = (client.calendars(server.calendar_home_path()).await)
        .unwrap_or_else(|err| panic!("{kind}: PROPFIND on the home failed: {err}"));
    assert!(
        in_home.iter().any(|c| c.href == server.calendar_path()),
        "{kind}: {in_home:?}"
    );
}

#[tokio::test]
async fn radicale_calendar_is_found_through_principal_and_home_set() {
    discovery_finds_the_fixture_calendar(ServerKind::Radicale).await;
}

#[tokio::test]
async fn xandikos_calendar_is_found_through_principal_and_home_set() {
    discovery_finds_the_fixture_calendar(ServerKind::Xandikos).await;
}

#[tokio::test]
async fn radicale_calendar_keeps_the_display_name_the_fixture_gave_it() {
    let server = DavServer::radicale().expect("starting radicale");
    let credentials = Credentials::new(server.username(), server.password());
    let client = CalDav::new(&server.base_url(), &credentials).unwrap();
    let calendars = client.calendars(server.calendar_home_path()).await.unwrap();
    let calendar = calendars
        .iter()
        .find(|c| c.href == server.calendar_path())
        .unwrap();
    assert_eq!(calendar.display_name.as_deref(), Some("Calendar"));
}

#[tokio::test]
async fn a_wrong_password_is_reported_as_such_not_as_an_empty_account() {
    let server = DavServer::radicale().expect("starting radicale");
    assert!(server.checks_credentials());
    let credentials = Credentials::new(server.username(), "not-the-password");
    let client = CalDav::new(&server.base_url(), &credentials).unwrap();
    let err = client.discover().await.unwrap_err();
    assert!(
        matches!(err, DavError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("rejected the username or password"),
        "{err}"
    );
}

#[test]
fn each_fixture_is_fresh_and_gone_after_drop() {
    let first = DavServer::radicale().expect("starting radicale");
    let second = DavServer::radicale().expect("starting radicale");
    assert_ne!(first.port(), second.port());
    assert_ne!(first.dir(), second.dir());
    assert_ne!(first.password(), second.password());

    let port = first.port();
    let dir = first.dir().to_path_buf();
    drop(first);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on {port}"
    );
}
