//! The DAV fixture is real: concord-core's discovery finds the fixture's calendar on a fresh
//! Radicale and a fresh Xandikos (principal, calendar home set, depth-1 PROPFIND on the home).
//! Needs the venv with the servers (`make test` makes it), not the desktop session.

use concord_core::dav::{Credentials, DavError};
use concord_core::sync::accounts::discovery::{
    CollectionKind, DiscoveryError, DiscoveryOptions, Service, discover, list_collections,
};
use concord_e2e::servers::{DavServer, ServerKind};

/// Plain http is fine: the fixture listens on loopback.
fn options() -> DiscoveryOptions {
    DiscoveryOptions {
        allow_http: true,
        ..DiscoveryOptions::default()
    }
}

async fn discovery_finds_the_fixture_calendar(kind: ServerKind) {
    let server = DavServer::start(kind).expect("starting the server");
    let credentials = Credentials::new(server.username(), server.password());

    let found = discover(&server.base_url(), &credentials, &options())
        .await
        .unwrap_or_else(|err| panic!("{kind}: discovery failed: {err}\n{}", server.stderr()));

    let caldav = found
        .service(Service::CalDav)
        .unwrap_or_else(|| panic!("{kind}: no CalDAV service in {found:?}"));
    assert_eq!(
        caldav.principal.as_deref(),
        Some(server.url(server.principal_path()).as_str()),
        "{kind}: {found:?}"
    );
    assert_eq!(
        caldav.home_sets,
        [server.calendar_home_url()],
        "{kind}: {found:?}"
    );
    let calendars: Vec<&str> = found
        .collections
        .iter()
        .filter(|c| c.kind == CollectionKind::Calendar)
        .map(|c| c.url.as_str())
        .collect();
    assert!(
        calendars.contains(&server.calendar_url().as_str()),
        "{kind}: {calendars:?}"
    );
    // The address book sits beside the calendar on Radicale: it must not be taken for one.
    assert!(
        !calendars.contains(&server.address_book_url().as_str()),
        "{kind}: {calendars:?}"
    );

    // The PROPFIND on the home alone, as a later sync would start from a stored home set.
    let in_home = list_collections(
        Service::CalDav,
        &server.calendar_home_url(),
        &credentials,
        &options(),
    )
    .await
    .unwrap_or_else(|err| panic!("{kind}: PROPFIND on the home failed: {err}"));
    assert!(
        in_home.iter().any(|c| c.url == server.calendar_url()),
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
    let calendars = list_collections(
        Service::CalDav,
        &server.calendar_home_url(),
        &credentials,
        &options(),
    )
    .await
    .unwrap();
    let calendar = calendars
        .iter()
        .find(|c| c.url == server.calendar_url())
        .unwrap();
    assert_eq!(calendar.display_name.as_deref(), Some("Calendar"));
}

#[tokio::test]
async fn a_wrong_password_is_reported_as_such_not_as_an_empty_account() {
    let server = DavServer::radicale().expect("starting radicale");
    assert!(server.checks_credentials());
    let credentials = Credentials::new(server.username(), "not-the-password");
    let err = discover(&server.base_url(), &credentials, &options())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DiscoveryError::Dav(DavError::Unauthorized { status: 401, .. })
        ),
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
