//! Account discovery (RFC 6764) against real Radicale and Xandikos: the address given, the
//! servers' own well-known redirects, a redirecting web server in front, and DNS SRV + TXT
//! answered on the wire by a DNS server on a loopback port. Then "Test connection": each
//! failure a person can meet gets its own answer.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::sync::accounts::discovery::{
    self, AccountDiscovery, CollectionKind, ConnectionCheck, DiscoveryOptions, FoundVia, Service,
};
use concord_core::sync::accounts::mapping;
use concord_core::sync::state::{self, StorageKind};
use concord_e2e::both_servers;
use concord_e2e::dns::{DnsRecord, DnsServer};
use concord_e2e::front::{FrontServer, HttpResponse};
use concord_e2e::servers::{DavServer, ServerKind};

fn credentials(server: &DavServer) -> Credentials {
    Credentials::new(server.username(), server.password())
}

/// The home a new calendar goes in, by server layout.
fn tasks_path(server: &DavServer) -> String {
    format!("{}tasks/", server.calendar_home_path())
}

/// Another client (curl) makes a task list with a colour, as a person's other app would.
fn make_task_list(server: &DavServer) {
    let body = r##"<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">
  <D:set><D:prop>
    <D:displayname>Tasks</D:displayname>
    <A:calendar-color>#ff8800ff</A:calendar-color>
    <C:supported-calendar-component-set><C:comp name="VTODO"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"##;
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "MKCALENDAR",
        ])
        .args([
            "-u",
            &format!("{}:{}", server.username(), server.password()),
        ])
        .args(["-H", "Content-Type: application/xml; charset=utf-8"])
        .args(["--data-binary", body])
        .arg(server.url(&tasks_path(server)))
        .output()
        .expect("running curl");
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        status,
        "201",
        "{}: MKCALENDAR: {}",
        server.kind(),
        server.stderr()
    );
}

fn assert_finds_the_fixture(kind: ServerKind, server: &DavServer, found: &AccountDiscovery) {
    let calendar = found
        .collections
        .iter()
        .find(|c| c.url == server.calendar_url())
        .unwrap_or_else(|| panic!("{kind}: no calendar in {found:#?}"));
    assert_eq!(calendar.kind, CollectionKind::Calendar);
    assert!(
        calendar.components.iter().any(|c| c == "VEVENT"),
        "{kind}: {calendar:?}"
    );
    let book = found
        .collections
        .iter()
        .find(|c| c.url == server.address_book_url())
        .unwrap_or_else(|| panic!("{kind}: no address book in {found:#?}"));
    assert_eq!(book.kind, CollectionKind::AddressBook);
    assert!(book.components.is_empty(), "{kind}: {book:?}");
    for service in Service::BOTH {
        assert!(
            found.service(service).is_some(),
            "{kind}: {service:?} missing"
        );
    }
}

async fn one_account_lists_calendars_and_address_books(kind: ServerKind) {
    let server = DavServer::start(kind).expect("starting the server");
    make_task_list(&server);
    let found = discovery::discover(
        &server.base_url(),
        &credentials(&server),
        &DiscoveryOptions::default(),
    )
    .await
    .unwrap_or_else(|err| panic!("{kind}: {err}\n{}", server.stderr()));
    assert_finds_the_fixture(kind, &server, &found);
    for service in &found.services {
        assert_eq!(service.via, FoundVia::GivenUrl, "{kind}: {service:?}");
        assert_eq!(
            service.principal.as_deref(),
            Some(server.url(server.principal_path()).as_str())
        );
    }
    let tasks = found
        .collections
        .iter()
        .find(|c| c.url == server.url(&tasks_path(&server)))
        .unwrap_or_else(|| panic!("{kind}: no task list in {found:#?}"));
    assert_eq!(tasks.components, ["VTODO"], "{kind}: {tasks:?}");
    assert_eq!(tasks.display_name.as_deref(), Some("Tasks"));
    assert_eq!(tasks.color.as_deref(), Some("#ff8800ff"));
    assert_eq!(tasks.name(), "tasks");

    // What `concord account discover` runs: one account, both kinds, remembered.
    let data = tempfile::tempdir().unwrap();
    let concord = Concord::open(data.path()).unwrap();
    let conn = concord.database().connect().unwrap();
    let id = state::add_account(
        &conn,
        "server",
        StorageKind::Caldav,
        &server.base_url(),
        Some(server.username()),
    )
    .unwrap();
    let account = state::account_by_id(&conn, id).unwrap().unwrap();
    let again = mapping::discover_account(&concord, &account, &credentials(&server), None)
        .await
        .unwrap();
    assert_eq!(again.collections.len(), found.collections.len());
    let stored = state::mapping::stored_collections(&conn, id).unwrap();
    assert!(
        stored
            .iter()
            .any(|(c, gone)| c.kind == CollectionKind::AddressBook && gone.is_none()),
        "{kind}: {stored:?}"
    );
    assert_eq!(mapping::stored_services(&conn, id).unwrap().len(), 2);
}
both_servers!(one_account_lists_calendars_and_address_books);

async fn the_servers_own_well_known_redirect_is_followed(kind: ServerKind) {
    let server = DavServer::start(kind).expect("starting the server");
    // Nothing lives at this path: the principal is found through /.well-known/.
    let found = discovery::discover(
        &server.url("/no/such/place/"),
        &credentials(&server),
        &DiscoveryOptions::default(),
    )
    .await
    .unwrap_or_else(|err| panic!("{kind}: {err}\n{}", server.stderr()));
    assert_finds_the_fixture(kind, &server, &found);
    for service in &found.services {
        assert_eq!(service.via, FoundVia::WellKnown, "{kind}: {service:?}");
    }
}
both_servers!(the_servers_own_well_known_redirect_is_followed);

async fn a_redirecting_web_server_in_front_leads_to_the_dav_server(kind: ServerKind) {
    let server = DavServer::start(kind).expect("starting the server");
    let dav = server.base_url();
    // The person's domain serves a web site; only its well-known URIs point at the DAV
    // server (whose own well-known URI redirects once more).
    let front = FrontServer::start(move |request| match request.path.as_str() {
        "/.well-known/caldav" => HttpResponse::redirect(301, &format!("{dav}.well-known/caldav")),
        "/.well-known/carddav" => HttpResponse::redirect(308, &format!("{dav}.well-known/carddav")),
        _ => HttpResponse::new(200, "<html><body>Welcome</body></html>")
            .with_header("Content-Type", "text/html"),
    })
    .unwrap();
    let typed = format!("127.0.0.1:{}", front.port());
    let found = discovery::discover(&typed, &credentials(&server), &DiscoveryOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{kind}: {err}\n{}", server.stderr()));
    assert_finds_the_fixture(kind, &server, &found);
    for service in &found.services {
        assert_eq!(service.via, FoundVia::WellKnown, "{kind}: {service:?}");
    }
    let asked: Vec<String> = front.requests().into_iter().map(|r| r.path).collect();
    assert!(
        asked.iter().any(|p| p == "/.well-known/caldav"),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|p| p == "/.well-known/carddav"),
        "{asked:?}"
    );
}
both_servers!(a_redirecting_web_server_in_front_leads_to_the_dav_server);

async fn dns_srv_and_txt_name_the_server(kind: ServerKind) {
    let server = DavServer::start(kind).expect("starting the server");
    // CalDAV has a TXT path=; CardDAV has none, so the target's well-known URI is asked.
    let dns = DnsServer::start(vec![
        DnsRecord::Srv {
            name: "_caldav._tcp.localhost".to_owned(),
            priority: 10,
            weight: 5,
            port: server.port(),
            target: "localhost".to_owned(),
        },
        DnsRecord::Txt {
            name: "_caldav._tcp.localhost".to_owned(),
            text: format!("path={}", server.principal_path()),
        },
        DnsRecord::Srv {
            name: "_carddav._tcp.localhost".to_owned(),
            priority: 10,
            weight: 5,
            port: server.port(),
            target: "localhost".to_owned(),
        },
    ])
    .unwrap();
    let options = DiscoveryOptions {
        nameserver: Some(dns.addr()),
        ..DiscoveryOptions::default()
    };
    let credentials = credentials(&server);
    let found = discovery::discover("user@localhost", &credentials, &options)
        .await
        .unwrap_or_else(|err| panic!("{kind}: {err}\n{}", server.stderr()));
    assert_eq!(found.username_hint.as_deref(), Some("user@localhost"));
    for service in &found.services {
        assert_eq!(service.via, FoundVia::Srv, "{kind}: {service:?}");
    }
    let caldav = found.service(Service::CalDav).unwrap();
    assert!(
        caldav.context_url.ends_with(server.principal_path()),
        "{caldav:?}"
    );
    let calendar = server.calendar_url().replace("127.0.0.1", "localhost");
    assert!(
        found.collections.iter().any(|c| c.url == calendar),
        "{kind}: {found:#?}"
    );
    let book = server.address_book_url().replace("127.0.0.1", "localhost");
    assert!(
        found.collections.iter().any(|c| c.url == book),
        "{kind}: {found:#?}"
    );
    // _caldavs, _caldav (SRV and TXT), _carddavs, _carddav (SRV and TXT) were asked.
    assert!(dns.questions() >= 6, "{} questions", dns.questions());
}
both_servers!(dns_srv_and_txt_name_the_server);

#[tokio::test]
async fn a_domain_that_offers_no_service_is_reported_after_asking_dns() {
    // The domain's SRV record says "." (RFC 2782: not offered) and nothing answers HTTP.
    let dns = DnsServer::start(vec![DnsRecord::Srv {
        name: "_caldav._tcp.localhost".to_owned(),
        priority: 0,
        weight: 0,
        port: 0,
        target: ".".to_owned(),
    }])
    .unwrap();
    let options = DiscoveryOptions {
        nameserver: Some(dns.addr()),
        ..DiscoveryOptions::default()
    };
    let check =
        discovery::check_connection("someone@localhost", &Credentials::new("a", "b"), &options)
            .await;
    assert!(
        matches!(check, ConnectionCheck::Unreachable { .. }),
        "{check:?}"
    );
    assert!(dns.questions() >= 2);
}

#[tokio::test]
async fn test_connection_says_what_is_wrong() {
    let server = DavServer::radicale().expect("starting radicale");
    let options = DiscoveryOptions::default();

    let ok = discovery::check_connection(&server.base_url(), &credentials(&server), &options).await;
    assert!(ok.is_ok(), "{ok:?}");
    assert!(
        ok.message().contains(server.principal_path()),
        "{}",
        ok.message()
    );

    let wrong = Credentials::new(server.username(), "not-the-password");
    let check = discovery::check_connection(&server.base_url(), &wrong, &options).await;
    assert!(
        matches!(check, ConnectionCheck::WrongPassword { .. }),
        "{check:?}"
    );
    assert!(check.message().contains("Wrong username or password"));

    let web = FrontServer::start(|_| {
        HttpResponse::new(200, "<html>a blog</html>").with_header("Content-Type", "text/html")
    })
    .unwrap();
    let check = discovery::check_connection(&web.url("/"), &credentials(&server), &options).await;
    assert!(matches!(check, ConnectionCheck::NotDav { .. }), "{check:?}");
    assert!(check.message().contains("Not a CalDAV/CardDAV server"));

    let check =
        discovery::check_connection("http://127.0.0.1:1/", &credentials(&server), &options).await;
    assert!(
        matches!(check, ConnectionCheck::Unreachable { .. }),
        "{check:?}"
    );

    let check =
        discovery::check_connection("http://dav.example.com/", &credentials(&server), &options)
            .await;
    assert!(
        matches!(check, ConnectionCheck::BadAddress { .. }),
        "{check:?}"
    );
    assert!(
        check.message().contains("plain http"),
        "{}",
        check.message()
    );

    let tls = SelfSignedTls::start();
    let check = discovery::check_connection(
        &format!("https://127.0.0.1:{}/", tls.port),
        &credentials(&server),
        &options,
    )
    .await;
    assert!(
        matches!(check, ConnectionCheck::CertificateProblem { .. }),
        "{check:?}"
    );
    assert!(
        check.message().contains("certificate"),
        "{}",
        check.message()
    );
}

/// `openssl s_server` with a fresh self-signed certificate: a real TLS server whose
/// certificate no system trusts. Killed on drop.
struct SelfSignedTls {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl SelfSignedTls {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("running openssl");
        assert!(made.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-www", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting openssl s_server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for SelfSignedTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
