//! Feeds end to end against a real HTTP server on loopback: what a person subscribed to a
//! feed would notice (entries, their safety, addresses that move, servers that say stop).

#![allow(clippy::unwrap_used)]

mod feeds_support;

use std::time::Duration;

use chrono::Utc;
use concord_core::Concord;
use concord_core::feeds::fetch::FetchLimits;
use concord_core::feeds::store::{self, EntryFilter};
use concord_core::feeds::{RefreshOptions, RefreshSummary, opml, refresh};
use feeds_support::{Route, TestServer, fixture};

const RSS: &str = "application/rss+xml";

struct World {
    _dir: tempfile::TempDir,
    concord: Concord,
    server: TestServer,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let server = TestServer::start().await;
        Self {
            _dir: dir,
            concord,
            server,
        }
    }

    fn conn(&self) -> rusqlite::Connection {
        self.concord.database().connect().unwrap()
    }

    fn add(&self, path: &str) -> i64 {
        store::add_feed(&self.conn(), &self.server.url(path), None, None, Utc::now())
            .unwrap()
            .0
    }

    async fn refresh_with(&self, limits: FetchLimits) -> RefreshSummary {
        let opts = RefreshOptions {
            force: true,
            limits,
            ..RefreshOptions::default()
        };
        refresh(self.concord.database(), &opts).await.unwrap()
    }

    async fn refresh(&self) -> RefreshSummary {
        self.refresh_with(FetchLimits {
            request_timeout: Duration::from_secs(5),
            ..FetchLimits::default()
        })
        .await
    }

    fn entries(&self, feed_id: i64) -> Vec<store::EntryRow> {
        let filter = EntryFilter {
            feed_id: Some(feed_id),
            ..EntryFilter::default()
        };
        store::entries(&self.conn(), &filter).unwrap()
    }

    fn feed(&self, id: i64) -> store::FeedRow {
        store::feed(&self.conn(), id).unwrap()
    }
}

fn rss(title: &str, items: &[(&str, &str)]) -> String {
    let items: String = items
        .iter()
        .map(|(guid, t)| {
            format!(
                "<item><title>{t}</title><guid>{guid}</guid><link>https://e.example/{guid}</link><description>About {t}</description><pubDate>Mon, 05 Jan 2026 10:00:00 GMT</pubDate></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{title}</title><link>https://e.example/</link>{items}</channel></rss>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_feed_costs_a_304_and_changes_nothing() {
    let w = World::new().await;
    let body = rss("Blog", &[("1", "One"), ("2", "Two")]);
    w.server.route(
        "/blog.xml",
        Route::feed(body, RSS)
            .with_etag("v1")
            .with_last_modified("Mon, 05 Jan 2026 10:00:00 GMT"),
    );
    let id = w.add("/blog.xml");
    let s = w.refresh().await;
    assert_eq!((s.checked, s.changed, s.failed), (1, 1, 0), "{s:?}");
    assert_eq!(w.entries(id).len(), 2);
    assert_eq!(w.feed(id).title, "Blog");

    let s = w.refresh().await;
    assert_eq!((s.changed, s.unchanged, s.new_entries), (0, 1, 0), "{s:?}");
    let seen = w.server.seen("/blog.xml");
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].headers.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(
        seen[1].headers.get("if-modified-since").map(String::as_str),
        Some("Mon, 05 Jan 2026 10:00:00 GMT")
    );
    let ua = seen[0].headers.get("user-agent").unwrap();
    assert!(
        ua.starts_with("Concord/") && ua.contains("feed reader"),
        "{ua}"
    );
    assert_eq!(w.entries(id).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_read() {
    let w = World::new().await;
    w.server.route(
        "/z.xml",
        Route::feed(rss("Zipped", &[("1", "Packed")]), RSS).gzipped(),
    );
    let id = w.add("/z.xml");
    let s = w.refresh().await;
    assert_eq!(s.changed, 1, "{s:?}");
    let seen = w.server.seen("/z.xml");
    assert!(
        seen[0]
            .headers
            .get("accept-encoding")
            .unwrap()
            .contains("gzip")
    );
    assert_eq!(w.entries(id)[0].title, "Packed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_post_updates_in_place_and_is_announced_once() {
    let w = World::new().await;
    w.server.route(
        "/b.xml",
        Route::feed(rss("Blog", &[("1", "One")]), RSS).with_etag("a"),
    );
    let id = w.add("/b.xml");
    let s = w.refresh().await;
    assert_eq!(s.new_entries, 1);
    assert_eq!(
        s.notification, None,
        "a new subscription's backlog is not news"
    );

    // The publisher fixes a typo in post 1 and adds post 2.
    w.server.route(
        "/b.xml",
        Route::feed(rss("Blog", &[("2", "Two"), ("1", "One (fixed)")]), RSS).with_etag("b"),
    );
    let s = w.refresh().await;
    assert_eq!((s.new_entries, s.updated_entries), (1, 1), "{s:?}");
    let entries = w.entries(id);
    assert_eq!(entries.len(), 2, "updated, not duplicated");
    assert!(entries.iter().any(|e| e.title == "One (fixed)"));
    let n = s.notification.unwrap();
    assert_eq!((n.summary.as_str(), n.body.as_str()), ("Blog", "Two"));

    // Muted: still stored, not announced.
    store::set_muted(&w.conn(), id, true).unwrap();
    w.server.route(
        "/b.xml",
        Route::feed(rss("Blog", &[("3", "Three")]), RSS).with_etag("c"),
    );
    let s = w.refresh().await;
    assert_eq!((s.new_entries, s.notification), (1, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_redirects_move_the_feed_after_a_consistent_answer() {
    for status in [301u16, 308] {
        let w = World::new().await;
        w.server.route(
            "/old.xml",
            Route::Redirect {
                status,
                location: "/new.xml".into(),
            },
        );
        w.server
            .route("/new.xml", Route::feed(rss("Moved", &[("1", "One")]), RSS));
        let id = w.add("/old.xml");
        w.refresh().await;
        assert_eq!(
            w.feed(id).url,
            w.server.url("/old.xml"),
            "{status}: one answer is not enough"
        );
        assert_eq!(w.entries(id).len(), 1);
        let s = w.refresh().await;
        assert_eq!(s.moved, 1, "{status}");
        assert_eq!(w.feed(id).url, w.server.url("/new.xml"), "{status}");
        let history: (String, String) = w
            .conn()
            .query_row(
                "SELECT old_url, new_url FROM feed_url_history WHERE feed_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            history,
            (w.server.url("/old.xml"), w.server.url("/new.xml"))
        );
        w.refresh().await;
        assert_eq!(
            w.server.seen("/old.xml").len(),
            2,
            "{status}: the old address is not asked again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_redirects_keep_the_address() {
    for status in [302u16, 307] {
        let w = World::new().await;
        w.server.route(
            "/feed",
            Route::Redirect {
                status,
                location: "/today.xml".into(),
            },
        );
        w.server
            .route("/today.xml", Route::feed(rss("Temp", &[("1", "One")]), RSS));
        let id = w.add("/feed");
        for _ in 0..3 {
            w.refresh().await;
        }
        assert_eq!(w.feed(id).url, w.server.url("/feed"), "{status}");
        assert_eq!(w.entries(id).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_retires_the_feed_and_it_is_not_asked_again() {
    let w = World::new().await;
    w.server.route(
        "/gone.xml",
        Route::Status {
            status: 410,
            headers: vec![],
            body: "gone".into(),
        },
    );
    let id = w.add("/gone.xml");
    let s = w.refresh().await;
    assert_eq!((s.retired, s.failed), (1, 0));
    let f = w.feed(id);
    assert_eq!(f.status, "retired");
    assert!(
        f.next_reason.contains("gone for good (410)"),
        "{}",
        f.next_reason
    );
    assert_eq!(f.next_check_at, None);
    let s = w.refresh().await;
    assert_eq!(s.checked, 0);
    assert_eq!(w.server.seen("/gone.xml").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_slows_the_host_and_is_not_a_failure() {
    let w = World::new().await;
    let headers = vec![("Retry-After".to_owned(), "7200".to_owned())];
    w.server.route(
        "/busy.xml",
        Route::Status {
            status: 429,
            headers,
            body: String::new(),
        },
    );
    w.server.route(
        "/other.xml",
        Route::feed(rss("Same host", &[("1", "One")]), RSS),
    );
    let busy = w.add("/busy.xml");
    let s = w.refresh().await;
    assert!(s.slowed_down >= 1, "{s:?}");
    let f = w.feed(busy);
    assert_eq!(f.status, "waiting", "not counted as a failure: {f:?}");
    assert_eq!(f.last_error, None);
    let next = chrono::DateTime::parse_from_rfc3339(f.next_check_at.as_deref().unwrap()).unwrap();
    assert!(next.timestamp() >= Utc::now().timestamp() + 7000, "{f:?}");
    assert!(
        f.next_reason.contains("server asked to wait 2 h"),
        "{}",
        f.next_reason
    );

    // Another feed on the same host waits too.
    let other = w.add("/other.xml");
    let s = w.refresh().await;
    assert_eq!(s.checked, 0, "{s:?}");
    assert!(w.server.seen("/other.xml").is_empty());
    assert_eq!(w.feed(other).status, "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_truncated_and_oversized_responses_fail_cleanly_and_keep_entries() {
    let w = World::new().await;
    let body = rss("Flaky", &[("1", "One")]);
    w.server.route("/flaky.xml", Route::feed(body.clone(), RSS));
    let id = w.add("/flaky.xml");
    w.refresh().await;
    assert_eq!(w.entries(id).len(), 1);

    let limits = FetchLimits {
        request_timeout: Duration::from_millis(300),
        ..FetchLimits::default()
    };
    let slow = Route::Slow {
        delay: Duration::from_secs(2),
        then: Box::new(Route::feed(body.clone(), RSS)),
    };
    w.server.route("/flaky.xml", slow);
    let s = w.refresh_with(limits).await;
    assert_eq!(s.failed, 1);
    let f = w.feed(id);
    assert_eq!(f.status, "failing");
    assert!(
        f.last_error.as_deref().unwrap().contains("timed out"),
        "{f:?}"
    );
    assert!(
        f.next_reason.contains("failed 1 in a row"),
        "{}",
        f.next_reason
    );

    w.server.route(
        "/flaky.xml",
        Route::Truncated {
            body: body.as_bytes()[..40].to_vec(),
            claimed: body.len(),
        },
    );
    let s = w.refresh().await;
    assert_eq!(s.failed, 1, "{s:?}");
    assert_eq!(w.feed(id).status, "failing");

    w.server
        .route("/flaky.xml", Route::feed(vec![b' '; 4096], RSS));
    let limits = FetchLimits {
        body_bytes_max: 1024,
        ..FetchLimits::default()
    };
    let s = w.refresh_with(limits).await;
    assert!(s.failures[0].error.contains("larger than"), "{s:?}");

    assert_eq!(w.entries(id).len(), 1, "nothing lost while the feed fails");
    w.server.route("/flaky.xml", Route::feed(body, RSS));
    w.refresh().await;
    assert_eq!(w.feed(id).status, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_failing_for_days_is_dead_with_a_suggestion() {
    let w = World::new().await;
    let id = w.add("/missing.xml");
    let four_days_ago = Utc::now().timestamp_millis() - 4 * 24 * 3600 * 1000;
    w.conn()
        .execute(
            "UPDATE feed_fetch_state SET failures = 6, failing_since_ms = ?2 WHERE feed_id = ?1",
            [id, four_days_ago],
        )
        .unwrap();
    let s = w.refresh().await;
    assert_eq!(s.failed, 1);
    let f = w.feed(id);
    assert_eq!(f.status, "dead");
    assert!(f.last_error.as_deref().unwrap().contains("404"), "{f:?}");
    assert!(
        f.suggestion.as_deref().unwrap().contains("new address"),
        "{f:?}"
    );
    assert!(
        f.next_reason.contains("checked once a day"),
        "{}",
        f.next_reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encodings_are_decoded_whatever_the_feed_declares() {
    let w = World::new().await;
    let cases = [
        ("utf16le-bom.xml", RSS, "Grüße aus Köln — 日本語"),
        ("utf16be-bom.xml", RSS, "Grüße aus Köln — 日本語"),
        ("iso-8859-1.xml", RSS, "Crème brûlée à la française"),
        // No declaration at all: only the HTTP charset tells.
        (
            "http-charset-windows-1251.xml",
            "text/xml; charset=windows-1251",
            "Привет, мир",
        ),
        // The server claims UTF-8 but the bytes and the declaration say Latin-1.
        (
            "iso-8859-1.xml",
            "text/xml; charset=utf-8",
            "Crème brûlée à la française",
        ),
    ];
    let mut ids = Vec::new();
    for (i, (file, ct, _)) in cases.iter().enumerate() {
        let path = format!("/enc{i}.xml");
        w.server.route(&path, Route::feed(fixture(file), ct));
        ids.push(w.add(&path));
    }
    let s = w.refresh().await;
    assert_eq!(s.failed, 0, "{:?}", s.failures);
    for (id, (file, _, title)) in ids.iter().zip(cases) {
        let entries = w.entries(*id);
        assert_eq!(entries.len(), 1, "{file}");
        assert_eq!(entries[0].title, title, "{file}");
    }
    assert_eq!(w.feed(ids[0]).title, "Ünïcödé Wide");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_and_repairs() {
    let w = World::new().await;
    let cases = [
        (
            "rss-no-version.xml",
            RSS,
            "Versionless",
            vec!["First", "Second"],
        ),
        (
            "atom03.xml",
            "application/atom+xml",
            "Old Atom",
            vec!["Atom zero three entry", "Second entry"],
        ),
        (
            "jsonfeed-1.1.json",
            "application/feed+json",
            "JSON Journal",
            vec!["Second JSON post", "First JSON post"],
        ),
        (
            "broken.xml",
            RSS,
            "Broken & Proud",
            vec!["Q&A session", "Second"],
        ),
    ];
    let mut ids = Vec::new();
    for (i, (file, ct, ..)) in cases.iter().enumerate() {
        let path = format!("/fmt{i}");
        w.server.route(&path, Route::feed(fixture(file), ct));
        ids.push(w.add(&path));
    }
    let s = w.refresh().await;
    assert_eq!(s.failed, 0, "{:?}", s.failures);
    for (id, (file, _, title, entries)) in ids.iter().zip(cases) {
        assert_eq!(w.feed(*id).title, title, "{file}");
        let mut got: Vec<String> = w.entries(*id).into_iter().map(|e| e.title).collect();
        let mut want: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{file}");
    }
    let atom = w.entries(ids[1]);
    let html = atom
        .iter()
        .find(|e| e.title == "Atom zero three entry")
        .unwrap()
        .html
        .clone()
        .unwrap();
    assert!(html.contains("<b>Atom 0.3</b>"), "{html}");
    assert!(
        atom.iter().all(|e| e.published_at.is_some()),
        "Atom 0.3 dates: {atom:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_without_id_or_link_are_stable_across_polls() {
    let w = World::new().await;
    let doc = String::from_utf8(fixture("no-ids.xml")).unwrap();
    w.server.route("/anon.xml", Route::feed(doc.clone(), RSS));
    let id = w.add("/anon.xml");
    w.refresh().await;
    assert_eq!(w.entries(id).len(), 3);
    // The server changes the document (a new build date), so it is parsed again.
    for day in ["06", "07"] {
        let changed = doc.replace("Mon, 05 Jan", &format!("Tue, {day} Jan"));
        w.server.route("/anon.xml", Route::feed(changed, RSS));
        let s = w.refresh().await;
        assert_eq!(
            (s.changed, s.new_entries, s.updated_entries),
            (1, 0, 0),
            "{s:?}"
        );
    }
    assert_eq!(w.entries(id).len(), 3, "no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xss_vectors_come_out_harmless_in_the_stored_html() {
    let w = World::new().await;
    w.server
        .route("/xss.xml", Route::feed(fixture("xss.xml"), RSS));
    let id = w.add("/xss.xml");
    let s = w.refresh().await;
    assert_eq!(s.failed, 0, "{:?}", s.failures);
    assert_eq!(
        w.feed(id).title,
        "Evil <script>alert(1)</script> Feed",
        "titles are plain text"
    );
    let html: String = w
        .conn()
        .query_row(
            "SELECT summary_html FROM feed_entries WHERE feed_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let lower = html.to_lowercase();
    for bad in [
        "<script",
        "javascript:",
        "onerror",
        "onload",
        "onmouseover",
        "<form",
        "<input",
        "<button",
        "evil.example",
        "<svg",
        "<object",
        "<embed",
        "<style",
        "style=",
        "data:text",
        "<base",
        "<meta",
        "<link",
        "tracker.example",
    ] {
        assert!(!lower.contains(bad), "{bad:?} survived in: {html}");
    }
    assert!(html.contains("ok text"), "{html}");
    assert!(html.contains(r#"href="https://xss.example/ok""#), "{html}");
    assert!(html.contains(r#"rel="noopener noreferrer""#), "{html}");
    assert!(
        html.contains("https://www.youtube.com/embed/abc123"),
        "{html}"
    );
    assert!(html.contains("https://xss.example/photo.jpg"), "{html}");
    assert!(
        html.contains(r#"src="http://127.0.0.1"#) || html.contains("x.png"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_check_and_its_reason_are_visible() {
    let w = World::new().await;
    w.server.route(
        "/cc.xml",
        Route::feed(rss("Cached", &[("1", "One")]), RSS).header("Cache-Control", "max-age=7200"),
    );
    let id = w.add("/cc.xml");
    assert_eq!(w.feed(id).status, "new");
    w.refresh().await;
    let f = w.feed(id);
    assert_eq!(f.status, "ok");
    assert!(f.next_reason.starts_with("next at "), "{}", f.next_reason);
    assert!(
        f.next_reason.contains("server asked for 2 h"),
        "{}",
        f.next_reason
    );
    // Not due again: a normal (not forced) refresh leaves it alone.
    let s = refresh(w.concord.database(), &RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(s.checked, 0);
}

#[test]
fn opml_imports_tolerantly_and_round_trips() {
    let subs = opml::import(&fixture("subscriptions.opml")).unwrap();
    let urls: Vec<&str> = subs.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://this-week-in-rust.org/rss.xml",
            "https://blog.rust-lang.org/feed.xml",
            "https://lwn.net/headlines/rss",
            "https://top.example/feed"
        ]
    );
    assert_eq!(subs[0].folder.as_deref(), Some("Tech/Rust"));
    assert_eq!(subs[1].title, None);
    assert_eq!(subs[2].title.as_deref(), Some("LWN & friends"));
    assert_eq!(subs[2].folder.as_deref(), Some("Tech"));
    assert_eq!(subs[3].folder, None);

    let exported = opml::export("Concord", &subs);
    let again = opml::import(exported.as_bytes()).unwrap();
    let strip = |v: &[opml::Subscription]| {
        v.iter()
            .map(|s| (s.url.clone(), s.folder.clone(), s.site_url.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&again), strip(&subs));
    // Titles survive; a missing one is written as the address.
    assert_eq!(again[2].title.as_deref(), Some("LWN & friends"));
    assert_eq!(
        again[1].title.as_deref(),
        Some("https://blog.rust-lang.org/feed.xml")
    );
    assert_eq!(opml::export("Concord", &again), exported);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_unavailable_slows_down_only_when_it_says_how_long() {
    let w = World::new().await;
    let headers = vec![("Retry-After".to_owned(), "60".to_owned())];
    w.server.route(
        "/a",
        Route::Status {
            status: 503,
            headers,
            body: String::new(),
        },
    );
    let a = w.add("/a");
    w.refresh().await;
    assert_eq!(w.feed(a).status, "waiting");

    let w = World::new().await;
    w.server.route(
        "/b",
        Route::Status {
            status: 503,
            headers: vec![],
            body: String::new(),
        },
    );
    let b = w.add("/b");
    let s = w.refresh().await;
    assert_eq!(s.failed, 1);
    let f = w.feed(b);
    assert_eq!(f.status, "failing");
    assert!(
        f.suggestion.as_deref().unwrap().contains("retries later"),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_gets_a_few_requests_at_a_time() {
    let w = World::new().await;
    for i in 0..8 {
        let path = format!("/slow{i}.xml");
        let feed = Route::feed(rss(&format!("S{i}"), &[("1", "One")]), RSS);
        w.server.route(
            &path,
            Route::Slow {
                delay: Duration::from_millis(150),
                then: Box::new(feed),
            },
        );
        w.add(&path);
    }
    let limits = FetchLimits {
        per_host: 2,
        ..FetchLimits::default()
    };
    let s = w.refresh_with(limits).await;
    assert_eq!(s.changed, 8, "{s:?}");
    assert_eq!(w.server.max_in_flight(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_the_person_chose_is_kept() {
    let w = World::new().await;
    w.server.route(
        "/t.xml",
        Route::feed(rss("Publisher's title", &[("1", "One")]), RSS),
    );
    let url = w.server.url("/t.xml");
    let id = store::add_feed(&w.conn(), &url, Some("My name for it"), None, Utc::now())
        .unwrap()
        .0;
    w.refresh().await;
    assert_eq!(w.feed(id).title, "My name for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_runs_as_a_durable_workflow_on_its_schedule() {
    use concord_core::feeds::workflow;
    use concord_durable::{Engine, EngineConfig, RunState};
    let w = World::new().await;
    w.server.route(
        "/wf.xml",
        Route::feed(rss("Durable", &[("1", "One"), ("2", "Two")]), RSS),
    );
    let id = w.add("/wf.xml");
    let engine = Engine::new(w.concord.database().clone(), EngineConfig::default()).unwrap();
    workflow::register(&engine);
    workflow::schedule(&engine).unwrap();
    assert!(
        engine
            .schedules()
            .unwrap()
            .iter()
            .any(|s| s.schedule.name == workflow::SCHEDULE_NAME)
    );
    let run = engine
        .start(
            workflow::WORKFLOW_KIND,
            "feeds:test",
            serde_json::Value::Null,
        )
        .unwrap();
    let worker = engine.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run(async {
                stopped.await.ok();
            })
            .await
    });
    let info = engine.wait(run, Duration::from_secs(20)).await.unwrap();
    assert_eq!(info.state, RunState::Completed, "{info:?}");
    let detail = engine.show(run).unwrap();
    let result = detail.steps[0].result.clone().unwrap();
    assert_eq!(result["new_entries"], 2, "{result}");
    assert_eq!(w.entries(id).len(), 2);
    let _ = stop.send(());
    let _ = handle.await;
}
