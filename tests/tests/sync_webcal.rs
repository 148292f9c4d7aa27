//! A webcal (ICS) feed served by a real HTTP server on a loopback port, synced into a vdir:
//! conditional GET (ETag and Last-Modified, 304), a BOM, several VCALENDARs in one body, LF
//! and CRLF lines, REFRESH-INTERVAL honoured (no request before the next check), the feed
//! never written, a broken event quarantined while the others sync, and the feed's name and
//! colour carried to the folder's `displayname` and `color` files.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::sync::item::ItemKind;
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::{Report, SyncOptions, sync_pair};
use concord_e2e::front::{FrontServer, HttpRequest, HttpResponse};
use tempfile::TempDir;

/// The feed as the server currently publishes it.
#[derive(Debug, Clone)]
struct Published {
    body: String,
    etag: String,
    last_modified: String,
}

/// A feed server that answers GET with the published body and its validators, and 304 when
/// the client's validators match.
fn feed_server(published: Arc<Mutex<Published>>) -> FrontServer {
    FrontServer::start(move |request: &HttpRequest| {
        let now = published.lock().unwrap().clone();
        if request.method != "GET" {
            return HttpResponse::new(405, "read-only");
        }
        let fresh = request.header("if-none-match") == Some(now.etag.as_str())
            || (request.header("if-none-match").is_none()
                && request.header("if-modified-since") == Some(now.last_modified.as_str()));
        let response = if fresh {
            HttpResponse::new(304, Vec::new())
        } else {
            HttpResponse::new(200, now.body.clone())
                .with_header("Content-Type", "text/calendar; charset=utf-8")
        };
        response
            .with_header("ETag", &now.etag)
            .with_header("Last-Modified", &now.last_modified)
    })
    .unwrap()
}

struct Setup {
    _data: TempDir,
    concord: Concord,
    vdir: PathBuf,
    server: FrontServer,
    published: Arc<Mutex<Published>>,
}

fn setup(body: &str) -> Setup {
    let published = Arc::new(Mutex::new(Published {
        body: body.to_owned(),
        etag: "\"v1\"".to_owned(),
        last_modified: "Sun, 22 Nov 2026 08:00:00 GMT".to_owned(),
    }));
    let server = feed_server(published.clone());
    let data = tempfile::tempdir().unwrap();
    let concord = Concord::open(data.path()).unwrap();
    let vdir = data.path().join("feed");
    let url = server.url("/holidays.ics");
    let conn = concord.database().connect().unwrap();
    let account = state::add_account(&conn, "holidays", StorageKind::Webcal, &url, None).unwrap();
    let a = state::put_storage(
        &conn,
        Some(account),
        StorageKind::Webcal,
        ItemKind::Calendar,
        &url,
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
    state::add_pair(&conn, "feed", a, b, Direction::AToB, ConflictPolicy::Ask).unwrap();
    Setup {
        _data: data,
        concord,
        vdir,
        server,
        published,
    }
}

impl Setup {
    async fn sync(&self) -> Report {
        sync_pair(
            &self.concord,
            "feed",
            &Credentials::new("", ""),
            &SyncOptions::default(),
        )
        .await
        .unwrap()
    }

    fn gets(&self) -> Vec<HttpRequest> {
        self.server.requests()
    }
}

fn summaries(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "ics"))
        .map(|e| {
            let text = fs::read_to_string(e.path()).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("SUMMARY:"))
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect();
    out.sort();
    out
}

fn event(uid: &str, summary: &str, eol: &str) -> String {
    [
        "BEGIN:VEVENT",
        &format!("UID:{uid}"),
        "DTSTAMP:20261101T100000Z",
        "DTSTART;VALUE=DATE:20261225",
        &format!("SUMMARY:{summary}"),
        "END:VEVENT",
        "",
    ]
    .join(eol)
}

/// A BOM, an LF calendar with a broken event (never ended) between two good ones, then a
/// CRLF calendar.
fn feed(extra: &str) -> String {
    let lf = "\n";
    let crlf = "\r\n";
    format!(
        "\u{feff}BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Feed//EN\n{}BEGIN:VEVENT\nUID:broken\nSUMMARY:Broken\n{}END:VCALENDAR\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}{extra}END:VCALENDAR\r\n",
        event("xmas", "Christmas", lf),
        event("boxing", "Boxing Day", lf),
        event("newyear", "New Year", crlf),
    )
}

#[tokio::test]
async fn a_feed_syncs_with_conditional_gets_and_a_broken_event_set_aside() {
    let s = setup(&feed(""));
    let first = s.sync().await;
    assert_eq!(first.counts.create_b, 3, "{first:?}");
    assert_eq!(first.quarantined, 1, "{first:?}");
    assert_eq!(summaries(&s.vdir), ["Boxing Day", "Christmas", "New Year"]);
    let conn = s.concord.database().connect().unwrap();
    let quarantined = state::quarantined(&conn).unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(
        quarantined[0].href.contains("broken") && quarantined[0].reason.contains("VEVENT"),
        "{quarantined:?}"
    );
    assert_eq!(s.gets().len(), 1);

    // Unchanged feed: a conditional GET, answered 304, and nothing to do.
    let second = s.sync().await;
    assert!(second.plan.is_empty(), "{second:?}");
    let requests = s.gets();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(
        requests[1].header("if-modified-since"),
        Some("Sun, 22 Nov 2026 08:00:00 GMT")
    );
    assert_eq!(summaries(&s.vdir).len(), 3);

    // The feed changes: the new event arrives.
    {
        let mut published = s.published.lock().unwrap();
        published.body = feed(&event("epiphany", "Epiphany", "\r\n"));
        published.etag = "\"v2\"".to_owned();
        published.last_modified = "Sun, 22 Nov 2026 09:00:00 GMT".to_owned();
    }
    let third = s.sync().await;
    assert_eq!(third.counts.create_b, 1, "{third:?}");
    assert!(summaries(&s.vdir).contains(&"Epiphany".to_owned()));

    // Edited in the folder: the feed is read-only and never written.
    let path = s.vdir.join("xmas.ics");
    let edited = fs::read_to_string(&path)
        .unwrap()
        .replace("Christmas", "Christmas (mine)");
    fs::write(&path, edited).unwrap();
    s.sync().await;
    let methods: Vec<String> = s.gets().into_iter().map(|r| r.method).collect();
    assert!(methods.iter().all(|m| m == "GET"), "{methods:?}");
}

#[tokio::test]
async fn refresh_interval_is_honoured_before_asking_again() {
    let body = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n{}END:VCALENDAR\r\n",
        event("xmas", "Christmas", "\r\n")
    );
    let s = setup(&body);
    s.sync().await;
    assert_eq!(s.gets().len(), 1);
    let conn = s.concord.database().connect().unwrap();
    let next: i64 = conn
        .query_row(
            "SELECT next_check_after_ms FROM pairs WHERE name = 'feed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let in_an_hour = state::now_ms() + 3_600_000;
    assert!((in_an_hour - next).abs() < 60_000, "next check at {next}");

    // Within the hour: no request at all.
    let again = s.sync().await;
    assert!(again.plan.is_empty(), "{again:?}");
    assert_eq!(s.gets().len(), 1);

    // An hour later (the stored deadline moved into the past): a conditional GET again.
    let token: String = conn
        .query_row("SELECT a_token FROM pairs WHERE name = 'feed'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut validators: serde_json::Value = serde_json::from_str(&token).unwrap();
    validators["not_before_ms"] = serde_json::json!(state::now_ms() - 1);
    conn.execute(
        "UPDATE pairs SET a_token = ?1 WHERE name = 'feed'",
        [validators.to_string()],
    )
    .unwrap();
    s.sync().await;
    let requests = s.gets();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("if-none-match"), Some("\"v1\""));
}

#[tokio::test]
async fn the_feeds_name_and_colour_reach_the_folder_and_are_known_through_a_304() {
    let named = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:Feiertage\r\nNAME:Bank holidays\\, UK\r\nX-APPLE-CALENDAR-COLOR:#40E0D0\r\n";
    let s = setup(&format!(
        "{named}{}END:VCALENDAR\r\n",
        event("xmas", "Christmas", "\r\n")
    ));
    let read = |name: &str| fs::read_to_string(s.vdir.join(name)).ok();
    let first = s.sync().await;
    assert_eq!(first.counts.create_b, 1, "{first:?}");
    assert_eq!(read("displayname").as_deref(), Some("Bank holidays, UK"));
    assert_eq!(read("color").as_deref(), Some("#40E0D0"));
    let conn = s.concord.database().connect().unwrap();
    let shown: Vec<(Option<String>, Option<String>)> = conn
        .prepare("SELECT display_name, color FROM storages ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected = (
        Some("Bank holidays, UK".to_owned()),
        Some("#40E0D0".to_owned()),
    );
    assert_eq!(shown, [expected.clone(), expected]);

    // Nothing agreed any more and the folder's files gone: the next check is answered 304, and
    // the name and colour the validators kept are carried over again.
    conn.execute(
        "UPDATE pairs SET meta_checked_at_ms = NULL, meta_display_name = NULL, meta_color = NULL",
        [],
    )
    .unwrap();
    fs::remove_file(s.vdir.join("displayname")).unwrap();
    fs::remove_file(s.vdir.join("color")).unwrap();
    let second = s.sync().await;
    assert!(second.plan.is_empty(), "{second:?}");
    assert_eq!(s.gets().len(), 2);
    assert_eq!(read("displayname").as_deref(), Some("Bank holidays, UK"));
    assert_eq!(read("color").as_deref(), Some("#40E0D0"));
}

#[tokio::test]
async fn an_emptied_feed_stops_the_pair_until_confirmed_even_when_it_then_answers_304() {
    let s = setup(&feed(""));
    let first = s.sync().await;
    assert_eq!(first.counts.create_b, 3, "{first:?}");
    {
        let mut published = s.published.lock().unwrap();
        published.body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n".to_owned();
        published.etag = "\"empty\"".to_owned();
        published.last_modified = "Sun, 22 Nov 2026 10:00:00 GMT".to_owned();
    }
    for round in ["emptied", "then 304"] {
        let report = s.sync().await;
        let reason = report.stopped.clone().unwrap_or_default();
        assert!(reason.contains("lists no items"), "{round}: {report:?}");
        assert_eq!(summaries(&s.vdir).len(), 3, "{round}: nothing deleted");
    }
    assert_eq!(
        s.gets()
            .last()
            .map(|r| r.header("if-none-match").map(str::to_owned)),
        Some(Some("\"empty\"".to_owned()))
    );
    let confirmed = sync_pair(
        &s.concord,
        "feed",
        &Credentials::new("", ""),
        &SyncOptions {
            allow_deletes: true,
            ..SyncOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(confirmed.counts.delete_b, 3, "{confirmed:?}");
    assert!(summaries(&s.vdir).is_empty());
}
