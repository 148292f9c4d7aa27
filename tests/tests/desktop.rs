//! The built tray app, for real: started under Xvfb in a desktop session (run these inside
//! `tests/desktop-session.sh`; `make test` does), seen through its tray on the session bus, its
//! X window and WebDriver. Each test starts its own app on a fresh data directory.

use std::time::Duration;

use concord_core::Concord;
use concord_core::feeds::store;
use concord_core::feeds::{RefreshOptions, refresh};
use concord_core::sync::run;
use concord_core::sync::state::{self, Direction};
use concord_durable::{Cadence, RunState, StepError, Workflow};
use concord_e2e::desktop::{
    AppWindow, CHANGE_TIMEOUT, EMPTY_STATUS_LINE, NotificationWatch, RunningApp, STARTUP_TIMEOUT,
    Tray, WebDriver, attribute_becomes, click, element, one_app_at_a_time, text_containing,
    type_into,
};
use fantoccini::Locator;

/// The menu of a fresh app, in order: the status line, then the actions.
const FRESH_MENU: [&str; 5] = [
    EMPTY_STATUS_LINE,
    "Sync now",
    "Pause",
    "Open Concord",
    "Quit",
];

async fn menu_is(app: &mut RunningApp, tray: &Tray, expected: &[&str]) {
    app.eventually(
        &format!("the tray menu reads {expected:?}"),
        CHANGE_TIMEOUT,
        async || {
            let labels = tray.labels().await?;
            if labels == expected {
                Ok(())
            } else {
                Err(format!("it reads {labels:?}"))
            }
        },
    )
    .await;
}

/// Waits until the window is on screen (`shown`) or off it (`!shown`).
async fn window_is(app: &mut RunningApp, window: &AppWindow, shown: bool, what: &str) {
    // Generous: the first showing includes WebKit's start.
    app.eventually(what, STARTUP_TIMEOUT, async || window.shown_is(shown))
        .await;
}

#[tokio::test]
async fn the_tray_shows_the_status_line_first_and_quit_exits_with_code_0() {
    let _turn = one_app_at_a_time().await;
    let mut app = RunningApp::start(&[]);
    let tray = app.tray().await;

    menu_is(&mut app, &tray, &FRESH_MENU).await;
    let menu = tray.menu().await.unwrap_or_else(|e| app.fail(e));
    let status_line = menu.iter().find(|e| e.label == EMPTY_STATUS_LINE);
    assert!(
        status_line.is_some_and(|e| !e.enabled),
        "the status line must be there and disabled (it is information): {menu:?}"
    );
    for action in &FRESH_MENU[1..] {
        let entry = menu.iter().find(|e| e.label == *action);
        assert!(
            entry.is_some_and(|e| e.enabled),
            "{action} must be enabled: {menu:?}"
        );
    }
    let status = tray
        .item_property("Status")
        .await
        .unwrap_or_else(|e| app.fail(e));
    assert_eq!(status, "Active", "the tray item must be shown");

    tray.click("Quit").await.unwrap_or_else(|e| app.fail(e));
    match app.process.wait_exit(CHANGE_TIMEOUT).await {
        Some(status) if status.code() == Some(0) => {}
        Some(status) => app.fail(format!("Quit must exit with code 0, not {status}")),
        None => app.fail(format!("the app still runs {CHANGE_TIMEOUT:?} after Quit")),
    }
}

#[tokio::test]
async fn pause_in_the_tray_is_stored_and_a_change_from_another_process_reaches_the_tray() {
    let _turn = one_app_at_a_time().await;
    let mut app = RunningApp::start(&["--hidden"]);
    let tray = app.tray().await;
    menu_is(&mut app, &tray, &FRESH_MENU).await;
    let idle_icon = tray.icon().await.unwrap_or_else(|e| app.fail(e));

    tray.click("Pause").await.unwrap_or_else(|e| app.fail(e));
    app.eventually(
        "the tray shows Paused and offers Resume",
        CHANGE_TIMEOUT,
        async || {
            let labels = tray.labels().await?;
            match labels.as_slice() {
                [line, _, resume, ..] if line.starts_with("Paused") && resume == "Resume" => Ok(()),
                _ => Err(format!("it reads {labels:?}")),
            }
        },
    )
    .await;
    let paused_icon = tray.icon().await.unwrap_or_else(|e| app.fail(e));
    assert!(
        paused_icon != idle_icon,
        "the tray icon must change when paused"
    );
    // The app writes the same database `concord` reads.
    let concord = Concord::open(app.data_dir()).unwrap_or_else(|e| app.fail(e));
    assert!(concord.status().unwrap_or_else(|e| app.fail(e)).paused);

    // Resumed by another process (as `concord` would): the app notices within its poll.
    concord.set_paused(false).unwrap_or_else(|e| app.fail(e));
    menu_is(&mut app, &tray, &FRESH_MENU).await;
    let icon = tray.icon().await.unwrap_or_else(|e| app.fail(e));
    assert!(
        icon == idle_icon,
        "the tray icon must be the idle one again on resume"
    );
}

/// The file's text once it exists (within [`CHANGE_TIMEOUT`]).
async fn eventually_read(path: &std::path::Path) -> String {
    let deadline = std::time::Instant::now() + CHANGE_TIMEOUT;
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) => return text,
            Err(error) if std::time::Instant::now() >= deadline => {
                panic!("{} did not appear: {error}", path.display())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn every_page_of_the_settings_window_opens_over_webdriver() {
    let _turn = one_app_at_a_time().await;
    let driver = WebDriver::start().await;
    let client = driver.session().await;
    let wait = |css: &'static str| element(&client, css, STARTUP_TIMEOUT);

    // The status comes from Rust through IPC: the CSP and capabilities let it through.
    // (textContent: WebKitWebDriver's "displayed" heuristic counts this ellipsized line as
    // hidden, so its WebDriver text is empty.)
    let line = wait("[data-testid=status-line]").await;
    let mut text = None;
    for _ in 0..100 {
        text = line.prop("textContent").await.unwrap_or_default();
        if text.as_deref() == Some(EMPTY_STATUS_LINE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        text.as_deref(),
        Some(EMPTY_STATUS_LINE),
        "the window's status line"
    );

    let pages = [
        ("accounts", "Accounts"),
        ("pairs", "Pairs"),
        ("conflicts", "Conflicts"),
        ("feeds", "Feeds"),
        ("activity", "Activity"),
        ("preferences", "Preferences"),
    ];
    for (page, title) in pages {
        let link = client
            .find(Locator::Css(&format!("[data-page={page}]")))
            .await
            .unwrap_or_else(|e| panic!("no sidebar entry for {page}: {e}"));
        link.click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {page}: {e}"));
        let heading = client
            .wait()
            .at_most(CHANGE_TIMEOUT)
            .for_element(Locator::Css(&format!("[data-testid=page-{page}] h1")))
            .await
            .unwrap_or_else(|e| panic!("page {page} did not open: {e}"));
        assert_eq!(
            heading.text().await.unwrap(),
            title,
            "heading of page {page}"
        );
    }

    // Preferences shows where the data lives: the directory the app was started with.
    let data_dir = wait("[data-testid=data-dir]").await.text().await.unwrap();
    assert_eq!(data_dir, driver.data_dir.path().display().to_string());

    // Autostart, switched on and off from Preferences: the XDG entry in the session's HOME
    // starts the app in the tray.
    let home = std::env::var_os("HOME").expect("the desktop session sets HOME");
    let entry = std::path::Path::new(&home).join(".config/autostart/Concord.desktop");
    assert!(!entry.exists(), "a fresh HOME has no autostart entry");
    let toggle = wait("#autostart:enabled").await;
    toggle.click().await.unwrap();
    let text = eventually_read(&entry).await;
    let exec = format!(
        "Exec={} --hidden",
        concord_e2e::desktop::app_binary().display()
    );
    assert!(text.lines().any(|line| line == exec), "{exec:?} in {text}");
    wait("#autostart:checked:enabled")
        .await
        .click()
        .await
        .unwrap();
    for _ in 0..100 {
        if !entry.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !entry.exists(),
        "switching autostart off removes {}",
        entry.display()
    );

    client.close().await.unwrap();
}

#[tokio::test]
async fn a_second_launch_shows_the_running_window_and_exits() {
    let _turn = one_app_at_a_time().await;
    let mut app = RunningApp::start(&["--hidden"]);
    let tray = app.tray().await;
    menu_is(&mut app, &tray, &FRESH_MENU).await;
    // Started hidden (as autostart does): no window on screen.
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Ok(window) = AppWindow::find(app.pid()) {
        let hidden = window.shown_is(false);
        hidden.unwrap_or_else(|e| app.fail(format!("--hidden must not show the window: {e}")));
    }

    let mut second = app.launch_again(&[]);
    match second.wait_exit(STARTUP_TIMEOUT).await {
        Some(status) if status.code() == Some(0) => {}
        Some(status) => app.fail(format!("the second launch must exit with 0, not {status}")),
        None => app.fail("the second launch kept running beside the first"),
    }

    let window = app.window().await;
    window_is(
        &mut app,
        &window,
        true,
        "the first instance's window is shown",
    )
    .await;
    app.eventually(
        "the shown window has the focus",
        CHANGE_TIMEOUT,
        async || {
            let focused = window.has_focus()?;
            focused
                .then_some(())
                .ok_or("the focus is elsewhere".to_owned())
        },
    )
    .await;
    app.assert_running("after the second launch");
    menu_is(&mut app, &tray, &FRESH_MENU).await;
}

#[tokio::test]
async fn closing_the_window_hides_it_to_the_tray_and_open_concord_brings_it_back() {
    let _turn = one_app_at_a_time().await;
    let mut app = RunningApp::start(&[]);
    let tray = app.tray().await;
    let window = app.window().await;
    window_is(&mut app, &window, true, "the window is shown at start").await;

    window.request_close().unwrap_or_else(|e| app.fail(e));
    window_is(&mut app, &window, false, "the closed window is hidden").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.assert_running("when its window was closed");
    menu_is(&mut app, &tray, &FRESH_MENU).await;

    tray.click("Open Concord")
        .await
        .unwrap_or_else(|e| app.fail(e));
    window_is(
        &mut app,
        &window,
        true,
        "Open Concord shows the window again",
    )
    .await;
}

#[tokio::test]
async fn the_activity_page_shows_runs_live_and_retries_and_cancels_them_in_the_engine() {
    let _turn = one_app_at_a_time().await;
    let driver = WebDriver::start().await;
    // Before the app starts, its data directory holds two runs: one that failed needing the
    // person (run here, by a workflow only this test knows) and one of a kind no process
    // executes, which waits.
    let concord = Concord::open(driver.data_dir.path()).expect("open the data directory");
    let engine = concord.engine();
    engine.register(Workflow::new("demo.login", |ctx| async move {
        ctx.step("sign in", || async {
            Err::<(), _>(StepError::needs_attention(
                "the server refused the password (401)",
            ))
        })
        .await?;
        Ok(serde_json::Value::Null)
    }));
    let failed = engine
        .start("demo.login", "demo:login", serde_json::json!({}))
        .expect("start a run");
    engine.run_until_idle().await.expect("run it");
    assert_eq!(engine.run_info(failed).unwrap().state, RunState::Failed);
    let waiting = engine
        .start("demo.kind", "demo:key", serde_json::json!({"n": 1}))
        .expect("start a run");

    let client = driver.session().await;
    click(&client, "[data-page=activity]", STARTUP_TIMEOUT).await;
    let failed_row = format!("[data-testid=run-{failed}]");
    let waiting_row = format!("[data-testid=run-{waiting}]");
    let text = text_containing(&client, &failed_row, "needs you", STARTUP_TIMEOUT).await;
    assert!(
        text.contains("demo.login") && text.contains("the server refused the password (401)"),
        "the failed run's row: {text:?}"
    );
    text_containing(&client, &waiting_row, "demo.kind", CHANGE_TIMEOUT).await;
    attribute_becomes(
        &client,
        &waiting_row,
        "data-state",
        "pending",
        CHANGE_TIMEOUT,
    )
    .await;

    // Cancel, from the page: the engine has it, and the row follows the app's job event.
    let cancel = format!("{waiting_row} [data-action=cancel]");
    click(&client, &cancel, CHANGE_TIMEOUT).await;
    attribute_becomes(
        &client,
        &waiting_row,
        "data-state",
        "cancelled",
        CHANGE_TIMEOUT,
    )
    .await;
    assert_eq!(engine.run_info(waiting).unwrap().state, RunState::Cancelled);

    // Retry now reopens the failed run (the app does not know its kind, so it waits).
    let retry = format!("{failed_row} [data-action=retry]");
    click(&client, &retry, CHANGE_TIMEOUT).await;
    attribute_becomes(
        &client,
        &failed_row,
        "data-state",
        "pending",
        CHANGE_TIMEOUT,
    )
    .await;
    let reopened = engine.run_info(failed).unwrap();
    assert_eq!(reopened.state, RunState::Pending);
    assert_eq!(reopened.error, None);

    // A run started by another process (as `concord` would) appears without a reload.
    let later = engine
        .start("demo.kind", "demo:later", serde_json::json!({}))
        .expect("start a run");
    text_containing(
        &client,
        &format!("[data-testid=run-{later}]"),
        "demo.kind",
        CHANGE_TIMEOUT,
    )
    .await;

    client.close().await.unwrap();
}

/// A feed whose entry carries XSS vectors: each would set `window.__pwned` (or the title) if
/// it ran in the window.
const XSS_FEED: &str = include_str!("../fixtures/feeds/xss.xml");

/// A web page where a feed was expected.
const NOT_A_FEED: &str =
    "<!doctype html><html><head><title>Home</title></head><body>Hi</body></html>";

/// A loopback HTTP server answering `/page.html` with [`NOT_A_FEED`] and every other request
/// with [`XSS_FEED`], once `fresh` is set with the same feed and one entry more ("Fresh news").
struct FeedServer {
    url: String,
    page_url: String,
    fresh: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _task: tokio::task::JoinHandle<()>,
}

impl FeedServer {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("the port").port();
        let fresh = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let serving = fresh.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let feed = if serving.load(std::sync::atomic::Ordering::SeqCst) {
                    XSS_FEED.replace(
                        "</channel>",
                        "<item><title>Fresh news</title><guid>fresh-1</guid>\
                         <link>https://xss.example/fresh</link><description>New today\
                         </description></item></channel>",
                    )
                } else {
                    XSS_FEED.to_owned()
                };
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    // `/page.html` is a web page, not a feed; any other path is the feed.
                    let (body, kind) = if head.starts_with(b"GET /page.html ") {
                        (NOT_A_FEED.to_owned(), "text/html")
                    } else {
                        (feed, "application/rss+xml")
                    };
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {kind}; charset=utf-8\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/xss.xml"),
            page_url: format!("http://127.0.0.1:{port}/page.html"),
            fresh,
            _task: task,
        }
    }
}

/// What the reader holds and whether anything in it ran, read inside the webview.
const READER_CHECK: &str = r#"
const content = document.querySelector('[data-testid=reader-content]');
const all = content ? Array.from(content.querySelectorAll('*')) : [];
const banned = ['SCRIPT', 'IFRAME', 'FORM', 'INPUT', 'BUTTON', 'OBJECT', 'EMBED', 'BASE', 'META',
  'LINK', 'STYLE', 'SVG', 'MATH'];
return {
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  title: document.title,
  location: window.location.href,
  html: content ? content.innerHTML : null,
  handlers: all.flatMap((el) => Array.from(el.attributes)
    .filter((a) => a.name.toLowerCase().startsWith('on') || a.name.toLowerCase() === 'style')
    .map((a) => el.tagName + ' ' + a.name)),
  banned: all.map((el) => el.tagName.toUpperCase()).filter((tag) => banned.includes(tag)),
  scriptUrls: all.flatMap((el) => ['href', 'src', 'action', 'data', 'srcdoc']
    .map((name) => el.getAttribute(name) || '')
    .filter((value) => /^\s*(javascript|data|vbscript):|<script/i.test(value))),
};
"#;

#[tokio::test]
async fn a_feed_added_in_the_window_is_read_safely_and_its_new_entries_are_announced_once() {
    let _turn = one_app_at_a_time().await;
    let server = FeedServer::start().await;
    let notifications = NotificationWatch::start().await;
    let driver = WebDriver::start().await;
    let client = driver.session().await;

    // An address that gives no feed is refused, in words, and not kept.
    click(&client, "[data-page=feeds]", STARTUP_TIMEOUT).await;
    type_into(&client, "#feed-url", &server.page_url, STARTUP_TIMEOUT).await;
    click(&client, "[data-action=add-feed]", CHANGE_TIMEOUT).await;
    let refused = text_containing(
        &client,
        "[data-testid=page-feeds] [role=alert]",
        "Could not add the feed: Not subscribed",
        CHANGE_TIMEOUT,
    )
    .await;
    assert!(refused.contains("RSS or Atom"), "{refused}");
    let conn = Concord::open(driver.data_dir.path())
        .and_then(|c| Ok(c.database().connect()?))
        .expect("open the app's database");
    assert_eq!(store::list_feeds(&conn).expect("list").len(), 0);
    client
        .find(Locator::Css("#feed-url"))
        .await
        .expect("the address field")
        .clear()
        .await
        .expect("clear it");

    // Added through the window: checked at once, listed with its status and next check.
    type_into(&client, "#feed-url", &server.url, STARTUP_TIMEOUT).await;
    click(&client, "[data-action=add-feed]", CHANGE_TIMEOUT).await;
    let feed = text_containing(&client, "[data-testid=feed-1]", "Evil", CHANGE_TIMEOUT).await;
    assert!(
        feed.contains("<script>window.__pwned='feed title'</script> Feed"),
        "a feed title is shown as text: {feed:?}"
    );
    assert!(feed.contains("Next check at"), "the next check: {feed:?}");
    let unread = "[data-testid=feed-1] [data-testid=unread]";
    text_containing(&client, unread, "1", CHANGE_TIMEOUT).await;
    text_containing(
        &client,
        "[data-testid=status-line]",
        "1 unread",
        CHANGE_TIMEOUT,
    )
    .await;
    let row = text_containing(&client, "[data-testid=entry-1]", "Vectors", CHANGE_TIMEOUT).await;
    assert!(
        row.contains(r#"<img src=x onerror="window.__pwned='entry title'">"#),
        "an entry title is shown as text: {row:?}"
    );

    // Read in the reader: the sanitized HTML is there, and nothing in it ran.
    click(&client, "[data-testid=entry-1] button", CHANGE_TIMEOUT).await;
    text_containing(
        &client,
        "[data-testid=reader-content]",
        "ok text",
        CHANGE_TIMEOUT,
    )
    .await;
    // Handlers fire asynchronously (a failed image load, an opened <details>): give them time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = client
        .execute(READER_CHECK, Vec::new())
        .await
        .expect("run the check in the webview");
    assert_eq!(
        seen["pwned"],
        serde_json::Value::Null,
        "a vector ran: {seen:#}"
    );
    assert_eq!(seen["title"], "Feeds · Concord", "{seen:#}");
    assert_eq!(seen["handlers"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["banned"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["scriptUrls"], serde_json::json!([]), "{seen:#}");
    let html = seen["html"].as_str().unwrap_or_default().to_lowercase();
    for gone in [
        "<script",
        "javascript:",
        "onerror",
        "evil.example",
        "srcdoc",
        "<iframe",
    ] {
        assert!(!html.contains(gone), "{gone:?} reached the reader: {html}");
    }
    assert!(
        html.contains(r#"href="https://xss.example/ok""#),
        "the fine link stays: {html}"
    );
    let location = seen["location"].as_str().unwrap_or_default();
    assert!(
        location.starts_with("tauri://") || location.contains("tauri.localhost"),
        "the window stays on the app: {location}"
    );
    attribute_becomes(
        &client,
        "[data-testid=entry-1]",
        "data-read",
        "true",
        CHANGE_TIMEOUT,
    )
    .await;
    // A new subscription's backlog is not news.
    assert_eq!(notifications.count(), 0, "{}", notifications.text());

    // Refresh now finds one new entry: one notification, and the counts follow.
    server
        .fresh
        .store(true, std::sync::atomic::Ordering::SeqCst);
    click(&client, "[data-action=refresh-feeds]", CHANGE_TIMEOUT).await;
    text_containing(
        &client,
        "[data-testid=refresh-result]",
        "1 new",
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(&client, unread, "1", CHANGE_TIMEOUT).await;
    text_containing(
        &client,
        "[data-testid=entry-2]",
        "Fresh news",
        CHANGE_TIMEOUT,
    )
    .await;
    let sent = notifications.mentioning("Fresh news", CHANGE_TIMEOUT).await;
    assert!(sent.contains("Concord"), "sent as Concord: {sent}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(notifications.count(), 1, "one grouped notification: {sent}");

    // Its action opens the window on the Feeds page (dunst invokes the default action).
    click(&client, "[data-page=activity]", CHANGE_TIMEOUT).await;
    element(&client, "[data-testid=page-activity]", CHANGE_TIMEOUT).await;
    let action = std::process::Command::new("dunstctl")
        .args(["action", "0"])
        .status()
        .expect("run dunstctl");
    assert!(action.success(), "dunstctl action: {action}");
    element(&client, "[data-testid=page-feeds]", CHANGE_TIMEOUT).await;

    client.close().await.unwrap();
}

#[tokio::test]
async fn the_tray_status_line_mentions_unread_feed_entries() {
    let _turn = one_app_at_a_time().await;
    let server = FeedServer::start().await;
    let mut app = RunningApp::start(&["--hidden"]);
    let tray = app.tray().await;
    menu_is(&mut app, &tray, &FRESH_MENU).await;

    // Subscribed and refreshed by another process (as `concord feeds add` would).
    let concord = Concord::open(app.data_dir()).unwrap_or_else(|e| app.fail(e));
    let conn = concord.database().connect().unwrap_or_else(|e| app.fail(e));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    store::add_feed(&conn, &server.url, None, None, store::from_ms(now_ms))
        .unwrap_or_else(|e| app.fail(e));
    let opts = RefreshOptions {
        force: true,
        ..RefreshOptions::default()
    };
    let summary = refresh(concord.database(), &opts)
        .await
        .unwrap_or_else(|e| app.fail(e));
    assert_eq!(summary.new_entries, 1, "{summary:?}");

    app.eventually(
        "the tray's status line mentions the unread entry",
        CHANGE_TIMEOUT,
        async || {
            let labels = tray.labels().await?;
            match labels.first() {
                Some(line) if line.ends_with(" · 1 unread") => Ok(()),
                _ => Err(format!("it reads {labels:?}")),
            }
        },
    )
    .await;
}

/// The event the calendar flow finds on the server and expects in the folder.
const SERVER_EVENT_UID: &str = "e2e-window-flow-1";

/// Every `.ics` file under `dir`, with its text.
fn ics_files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(ics_files_under(&path));
        } else if path.extension().is_some_and(|e| e == "ics") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            found.push((path, text));
        }
    }
    found
}

/// PUTs an event "Planning" with `uid` into the server's calendar, as another client would.
fn put_event(server: &concord_e2e::servers::DavServer, uid: &str) {
    let event = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20260101T090000Z\r\nDTSTART:20260105T090000Z\r\n\
         DTEND:20260105T100000Z\r\nSUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let put = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args([
            "-u",
            &format!("{}:{}", server.username(), server.password()),
        ])
        .args(["-H", "Content-Type: text/calendar; charset=utf-8"])
        .args(["--data-binary", &event])
        .arg(format!("{}{uid}.ics", server.calendar_url()))
        .output()
        .expect("run curl");
    let code = String::from_utf8_lossy(&put.stdout).into_owned();
    assert!(code.starts_with('2'), "PUT the event: HTTP {code}");
}

/// The event `uid` as the server's calendar holds it (GET, as another client would), or the
/// HTTP status it answered instead.
fn get_event(server: &concord_e2e::servers::DavServer, uid: &str) -> Result<String, String> {
    let got = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args([
            "-u",
            &format!("{}:{}", server.username(), server.password()),
        ])
        .arg(format!("{}{uid}.ics", server.calendar_url()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&got.stdout).into_owned();
    match text.rsplit_once('\n') {
        Some((body, code)) if code.starts_with('2') => Ok(body.to_owned()),
        Some((_, code)) => Err(format!("HTTP {code}")),
        None => Err(format!("no answer: {text:?}")),
    }
}

/// A fresh Radicale with its calendar and address book, started off the test's thread.
async fn radicale() -> concord_e2e::servers::DavServer {
    tokio::task::spawn_blocking(concord_e2e::servers::DavServer::radicale)
        .await
        .expect("the fixture's thread")
        .expect("start Radicale")
}

/// Fills in the Accounts page's form for a CalDAV account on `server` and adds it.
async fn add_account(
    client: &fantoccini::Client,
    server: &concord_e2e::servers::DavServer,
    name: &str,
    password: &str,
) {
    add_account_at(
        client,
        &server.base_url(),
        server.username(),
        name,
        password,
    )
    .await;
}

/// The same, with the server's address as a person might type it (`address`).
async fn add_account_at(
    client: &fantoccini::Client,
    address: &str,
    username: &str,
    name: &str,
    password: &str,
) {
    let fields = [
        ("#account-url", address.to_owned()),
        ("#account-username", username.to_owned()),
        ("#account-password", password.to_owned()),
        ("#account-name", name.to_owned()),
    ];
    for (css, text) in fields {
        type_into(client, css, &text, STARTUP_TIMEOUT).await;
    }
    click(client, "[data-action=add]", CHANGE_TIMEOUT).await;
}

#[tokio::test]
async fn a_caldav_account_added_in_the_window_syncs_its_calendar_to_a_folder() {
    let _turn = one_app_at_a_time().await;
    let server = radicale().await;
    // An event already on the server, PUT as another client would.
    put_event(&server, SERVER_EVENT_UID);

    let driver = WebDriver::start().await;
    let client = driver.session().await;

    // Added in the window, with its password (it goes to the session's keyring).
    click(&client, "[data-page=accounts]", STARTUP_TIMEOUT).await;
    add_account(&client, &server, "radicale", server.password()).await;
    let account = "[data-testid=account-1]";
    text_containing(&client, account, "radicale", CHANGE_TIMEOUT).await;

    // Test connection answers plainly.
    click(
        &client,
        &format!("{account} [data-action=test]"),
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(
        &client,
        &format!("{account} [data-testid=test-result]"),
        "Connected",
        CHANGE_TIMEOUT,
    )
    .await;

    // Discovery finds the calendar by its name, and the address book; the calendar is chosen.
    click(
        &client,
        &format!("{account} [data-action=discover]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let listed = text_containing(
        &client,
        &format!("{account} [data-testid=collections-1]"),
        "Calendar",
        CHANGE_TIMEOUT,
    )
    .await;
    // Radicale's calendar takes every component; the words say what it holds.
    assert!(
        listed.contains("calendar of events, tasks, journal"),
        "{listed}"
    );
    assert!(listed.contains(server.calendar_path()), "{listed}");
    assert!(
        listed.contains(&format!(
            "Contacts address book · {}",
            server.address_book_path()
        )),
        "{listed}"
    );
    let calendar = format!("{account} input[data-href=\"{}\"]", server.calendar_path());
    click(&client, &calendar, CHANGE_TIMEOUT).await;
    click(
        &client,
        &format!("{account} [data-action=add-pairs]"),
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(
        &client,
        &format!("{account} [data-testid=paired]"),
        "1 pair made",
        CHANGE_TIMEOUT,
    )
    .await;

    // A pair made in the window syncs at once, not at its next interval; Sync now on the Pairs
    // page then has nothing left to do, and the pair counts the event.
    click(&client, "[data-page=pairs]", CHANGE_TIMEOUT).await;
    let pair = "[data-testid=pair-1]";
    text_containing(&client, pair, "Last synced", CHANGE_TIMEOUT).await;
    click(
        &client,
        &format!("{pair} [data-action=sync]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let sync_timeout = Duration::from_secs(90);
    let result = text_containing(
        &client,
        &format!("{pair} [data-testid=sync-result]"),
        "Synced",
        sync_timeout,
    )
    .await;
    assert!(result.contains("nothing to do"), "{result}");
    text_containing(
        &client,
        &format!("{pair} [data-testid=pair-counts]"),
        "1 item",
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(
        &client,
        &format!("{pair} [data-testid=last-sync]"),
        "Last synced",
        CHANGE_TIMEOUT,
    )
    .await;
    let files = ics_files_under(&driver.data_dir.path().join("vdir"));
    assert_eq!(files.len(), 1, "one event in the folder: {files:?}");
    assert!(
        files[0].1.contains(SERVER_EVENT_UID) && files[0].1.contains("SUMMARY:Planning"),
        "the server's event, as it was: {files:?}"
    );

    // Its settings change in the window and reach the pair and its schedule.
    click(
        &client,
        &format!("{pair} [data-action=settings]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let form = format!("{pair} [data-testid=pair-settings-form]");
    click(
        &client,
        &format!("{form} select[name=direction] option[value=a-to-b]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let every = element(
        &client,
        &format!("{form} input[name=every-minutes]"),
        CHANGE_TIMEOUT,
    )
    .await;
    every.clear().await.expect("clear the interval");
    type_into(
        &client,
        &format!("{form} input[name=every-minutes]"),
        "45",
        CHANGE_TIMEOUT,
    )
    .await;
    click(
        &client,
        &format!("{form} [data-action=save-settings]"),
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(
        &client,
        &format!("{pair} [data-testid=pair-settings]"),
        "one-way, to the folder · every 45 minutes",
        CHANGE_TIMEOUT,
    )
    .await;
    let concord = Concord::open(driver.data_dir.path()).expect("open the app's data");
    let conn = concord.database().connect().expect("connect");
    let stored = state::pairs(&conn).expect("read the pairs");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].direction, Direction::AToB);
    let schedule = concord
        .engine()
        .schedules()
        .expect("read the schedules")
        .into_iter()
        .find(|s| s.schedule.name == run::schedule_name(&stored[0].name))
        .expect("the pair's schedule");
    assert_eq!(
        schedule.schedule.cadence,
        Cadence::Every {
            every_ms: 45 * 60_000
        }
    );

    // A wrong password is said plainly by Test connection; Remove asks before it removes.
    click(&client, "[data-page=accounts]", CHANGE_TIMEOUT).await;
    add_account(&client, &server, "wrong", "not-the-password").await;
    let wrong = "[data-testid=account-2]";
    text_containing(&client, wrong, "wrong", CHANGE_TIMEOUT).await;
    click(
        &client,
        &format!("{wrong} [data-action=test]"),
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(
        &client,
        &format!("{wrong} [data-testid=test-result]"),
        "Wrong username or password",
        CHANGE_TIMEOUT,
    )
    .await;
    click(
        &client,
        &format!("{wrong} [data-action=remove]"),
        CHANGE_TIMEOUT,
    )
    .await;
    click(
        &client,
        &format!("{wrong} [data-action=confirm-remove]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let deadline = std::time::Instant::now() + CHANGE_TIMEOUT;
    while client.find(Locator::Css(wrong)).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the removed account is still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    element(&client, account, CHANGE_TIMEOUT).await;

    client.close().await.unwrap();
}

/// A calendar named "Travel", as another client makes one.
const MKCALENDAR_TRAVEL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop><D:displayname>Travel</D:displayname></D:prop></D:set>
</C:mkcalendar>"#;

/// Sends `method` to `url` on the server with curl, as another client would; fails the test
/// unless the server answers 2xx.
fn dav_request(server: &concord_e2e::servers::DavServer, method: &str, url: &str, body: &str) {
    let sent = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
        .args([
            "-u",
            &format!("{}:{}", server.username(), server.password()),
        ])
        .args(["-H", "Content-Type: application/xml; charset=utf-8"])
        .args(["--data-binary", body])
        .arg(url)
        .output()
        .expect("run curl");
    let code = String::from_utf8_lossy(&sent.stdout).into_owned();
    assert!(code.starts_with('2'), "{method} {url}: HTTP {code}");
}

/// Discovers `account`'s collections in the window and waits until they are listed.
async fn discover(client: &fantoccini::Client, account: &str, id: usize) -> String {
    click(
        client,
        &format!("{account} [data-action=discover]"),
        CHANGE_TIMEOUT,
    )
    .await;
    text_containing(
        client,
        &format!("{account} [data-testid=collections-{id}]"),
        "Calendar",
        CHANGE_TIMEOUT,
    )
    .await
}

#[tokio::test]
async fn all_collections_of_an_account_sync_from_the_window_each_into_its_own_folder() {
    let _turn = one_app_at_a_time().await;
    let server = radicale().await;
    put_event(&server, SERVER_EVENT_UID);

    let driver = WebDriver::start().await;
    let client = driver.session().await;
    click(&client, "[data-page=accounts]", STARTUP_TIMEOUT).await;
    // Typed as a person would: host and port, no scheme (this machine: plain http is fine).
    let address = format!("127.0.0.1:{}", server.port());
    add_account_at(
        &client,
        &address,
        server.username(),
        "radicale",
        server.password(),
    )
    .await;
    let account = "[data-testid=account-1]";
    text_containing(&client, account, "radicale", CHANGE_TIMEOUT).await;
    let listed = discover(&client, account, 1).await;
    assert!(listed.contains("Contacts"), "{listed}");

    // All of them, and new ones as they appear, into folders under the data directory.
    click(
        &client,
        &format!("{account} [data-action=add-all]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let made = text_containing(
        &client,
        &format!("{account} [data-testid=paired]"),
        "All collections sync into",
        CHANGE_TIMEOUT,
    )
    .await;
    assert!(made.contains("2 pairs made"), "{made}");
    let mapping = format!("{account} [data-testid=mapping-radicale-all]");
    let root = driver.data_dir.path().join("vdir").join("radicale-all");
    let shown = text_containing(&client, &mapping, "2 collections, listed", CHANGE_TIMEOUT).await;
    assert!(shown.contains(&root.display().to_string()), "{shown}");

    // Sync now: the server's event reaches the calendar's folder; the address book has one.
    click(
        &client,
        &format!("{mapping} [data-action=sync-mapping]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let result = text_containing(
        &client,
        &format!("{mapping} [data-testid=mapping-result]"),
        "2 collections synced",
        Duration::from_secs(90),
    )
    .await;
    assert!(result.contains("nothing to do"), "synced at once: {result}");
    let files = ics_files_under(&root);
    assert_eq!(
        files.len(),
        1,
        "one event under {}: {files:?}",
        root.display()
    );
    assert!(
        files[0].0.starts_with(root.join("calendar")),
        "in the calendar's own folder: {files:?}"
    );
    assert!(
        files[0].1.contains(SERVER_EVENT_UID) && files[0].1.contains("SUMMARY:Planning"),
        "the server's event, as it was: {files:?}"
    );
    assert!(root.join("contacts").is_dir(), "the address book's folder");

    // A calendar made on the server later is paired at the next Sync now, and one deleted
    // there is reported, its folder kept.
    let travel = server.url("/user/travel/");
    dav_request(&server, "MKCALENDAR", &travel, MKCALENDAR_TRAVEL);
    click(
        &client,
        &format!("{mapping} [data-action=sync-mapping]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let result = text_containing(
        &client,
        &format!("{mapping} [data-testid=mapping-result]"),
        "1 new collection paired",
        Duration::from_secs(90),
    )
    .await;
    assert!(result.contains("3 collections synced"), "{result}");
    text_containing(&client, &mapping, "radicale-all/travel", CHANGE_TIMEOUT).await;
    assert!(root.join("travel").is_dir(), "the new calendar's folder");
    dav_request(&server, "DELETE", &travel, "");
    click(
        &client,
        &format!("{mapping} [data-action=sync-mapping]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let result = text_containing(
        &client,
        &format!("{mapping} [data-testid=mapping-result]"),
        "1 collection gone from the server",
        Duration::from_secs(90),
    )
    .await;
    assert!(result.contains("2 collections synced"), "{result}");
    text_containing(
        &client,
        &format!("{mapping} [data-gone=true]"),
        "radicale-all/travel",
        CHANGE_TIMEOUT,
    )
    .await;
    assert!(
        root.join("travel").is_dir(),
        "the vanished calendar's folder stays"
    );

    // The pairs it made are on the Pairs page with what they hold.
    click(&client, "[data-page=pairs]", CHANGE_TIMEOUT).await;
    text_containing(
        &client,
        "[data-name=\"radicale-all/calendar\"] [data-testid=pair-counts]",
        "1 item",
        CHANGE_TIMEOUT,
    )
    .await;
    element(
        &client,
        "[data-name=\"radicale-all/contacts\"]",
        CHANGE_TIMEOUT,
    )
    .await;

    client.close().await.unwrap();
}

#[tokio::test]
async fn a_calendar_on_one_server_is_paired_with_a_calendar_on_another_from_the_window() {
    let _turn = one_app_at_a_time().await;
    let (first, second) = (radicale().await, radicale().await);
    put_event(&first, SERVER_EVENT_UID);

    let driver = WebDriver::start().await;
    let client = driver.session().await;
    click(&client, "[data-page=accounts]", STARTUP_TIMEOUT).await;
    add_account(&client, &first, "first", first.password()).await;
    text_containing(&client, "[data-testid=account-1]", "first", CHANGE_TIMEOUT).await;
    add_account(&client, &second, "second", second.password()).await;
    text_containing(&client, "[data-testid=account-2]", "second", CHANGE_TIMEOUT).await;
    discover(&client, "[data-testid=account-1]", 1).await;
    discover(&client, "[data-testid=account-2]", 2).await;

    // Side a: the first server's calendar; side b: the second's.
    let option = |id: usize, path: &str| format!("option[value=\"{id} {path}\"]");
    click(
        &client,
        &format!("#pair-end-a {}", option(1, first.calendar_path())),
        CHANGE_TIMEOUT,
    )
    .await;
    click(
        &client,
        &format!("#pair-end-b {}", option(2, second.calendar_path())),
        CHANGE_TIMEOUT,
    )
    .await;
    click(&client, "[data-action=add-account-pair]", CHANGE_TIMEOUT).await;
    text_containing(
        &client,
        "[data-testid=account-pair-result]",
        "Pair made",
        CHANGE_TIMEOUT,
    )
    .await;

    click(&client, "[data-page=pairs]", CHANGE_TIMEOUT).await;
    let pair = "[data-testid=pair-1]";
    let sides = text_containing(&client, pair, "Last synced", CHANGE_TIMEOUT).await;
    assert!(sides.contains(&first.calendar_url()), "{sides}");
    assert!(sides.contains(&second.calendar_url()), "{sides}");
    click(
        &client,
        &format!("{pair} [data-action=sync]"),
        CHANGE_TIMEOUT,
    )
    .await;
    let result = text_containing(
        &client,
        &format!("{pair} [data-testid=sync-result]"),
        "Synced",
        Duration::from_secs(90),
    )
    .await;
    assert!(result.contains("nothing to do"), "synced at once: {result}");
    let copied = get_event(&second, SERVER_EVENT_UID)
        .unwrap_or_else(|why| panic!("the event on the second server: {why}"));
    assert!(copied.contains("SUMMARY:Planning"), "{copied}");

    client.close().await.unwrap();
}

#[tokio::test]
async fn test_connection_in_the_window_says_why_an_address_is_no_calendar_server() {
    use concord_e2e::front::{FrontServer, HttpResponse};
    let _turn = one_app_at_a_time().await;
    // A web server that answers every request with a page: not a calendar server.
    let web = FrontServer::start(|_| {
        HttpResponse::new(200, "<html>a blog</html>").with_header("Content-Type", "text/html")
    })
    .expect("start the web server");
    // Nothing listens on a port just let go of.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();

    let driver = WebDriver::start().await;
    let client = driver.session().await;
    click(&client, "[data-page=accounts]", STARTUP_TIMEOUT).await;
    let cases = [
        (web.url("/"), "blog", "Not a CalDAV/CardDAV server"),
        (
            format!("127.0.0.1:{closed}"),
            "gone",
            "Cannot reach the server",
        ),
    ];
    for (id, (address, name, answer)) in cases.iter().enumerate() {
        add_account_at(&client, address, "ada", name, "secret").await;
        // Numbered in the order they were added.
        let row = format!("[data-testid=account-{}]", id + 1);
        text_containing(&client, &row, name, CHANGE_TIMEOUT).await;
        click(
            &client,
            &format!("{row} [data-action=test]"),
            CHANGE_TIMEOUT,
        )
        .await;
        let said = text_containing(
            &client,
            &format!("{row} [data-testid=test-result]"),
            answer,
            Duration::from_secs(30),
        )
        .await;
        attribute_becomes(
            &client,
            &format!("{row} [data-testid=test-result]"),
            "data-ok",
            "false",
            CHANGE_TIMEOUT,
        )
        .await;
        assert!(!said.contains("Connected"), "{said}");
    }

    client.close().await.unwrap();
}
