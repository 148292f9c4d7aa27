//! The status the real app shows while a server is away and after it is back, as a person sees
//! it (run inside `tests/desktop-session.sh`, as `make test` does): a CalDAV calendar on a real
//! Radicale, paired with a folder by the `concord` command and synced once. When the server
//! stops, the tray's first line and the window's header name the failure and the next attempt,
//! the tray shows the error icon and one notification says so; Sync now brings the server's
//! new event at once when it is back, and also while syncing is paused (which it stays).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use concord_core::sync::run::schedule_name;
use concord_core::{Concord, Health, HealthState};
use concord_e2e::desktop::{
    CHANGE_TIMEOUT, NotificationWatch, RunningApp, STARTUP_TIMEOUT, Tray, WebDriver, concord_ok,
    one_app_at_a_time, pair_calendar_with_folder, until,
};
use concord_e2e::servers::DavServer;
use concord_e2e::sync_fixture::{event, folder_item};
use fantoccini::Locator;

const ACCOUNT: &str = "work";
const PAIR: &str = "work";
/// The event on the server before the first sync.
const FIRST_UID: &str = "status-first";
/// The event put on the server later, that Sync now brings.
const LATER_UID: &str = "status-later";
/// How long the app may take to show a stopped server: its attempts (1 s, then 2 s apart) and
/// the 2 s status poll take seconds; this is far above that.
const OUTAGE_SHOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// The shortest wait for the next retry under which the test clicks Sync now, so the event's
/// arrival before that retry is Sync now's doing: restarting Radicale and one sync take a few
/// seconds.
const RETRY_FAR_ENOUGH: Duration = Duration::from_secs(10);
/// The notification that a pair newly stopped working.
const BROKEN_NOTICE: &str = "Can't sync work";

/// A fresh Radicale with its calendar, started off the test's thread.
async fn radicale() -> DavServer {
    tokio::task::spawn_blocking(DavServer::radicale)
        .await
        .expect("the fixture's thread")
        .expect("start Radicale")
}

/// Pairs the server's calendar (holding one event) with a folder under `data_dir` with the
/// `concord` command, and syncs it once; returns the folder.
fn synced_once(data_dir: &Path, server: &DavServer) -> PathBuf {
    server
        .put_into_calendar(FIRST_UID, &event(FIRST_UID, "Planning", "Room 1"))
        .unwrap();
    let folder = data_dir.join("calendar");
    pair_calendar_with_folder(data_dir, server, ACCOUNT, PAIR, &folder);
    let synced = concord_ok(data_dir, &["sync", PAIR], "", &[]);
    assert!(synced.contains("1 created on b"), "{synced}");
    assert!(folder_item(&folder, "ics", FIRST_UID).is_some());
    folder
}

/// `Ok` once the tray's first line satisfies `expected` and the tray shows the icon of
/// `icon_state`; returns the line.
async fn tray_shows(
    tray: &Tray,
    expected: impl Fn(&str) -> bool,
    icon_state: &str,
) -> Result<String, String> {
    let line = tray.status_line().await?;
    if !expected(&line) {
        return Err(format!("its first line reads {line:?}"));
    }
    tray.icon_is(icon_state)
        .await
        .map_err(|e| format!("its first line reads {line:?}, but {e}"))?;
    Ok(line)
}

/// Waits until [`tray_shows`] (`what` says what, for a failure's message).
async fn until_tray_shows(
    tray: &Tray,
    what: &str,
    timeout: Duration,
    expected: impl Fn(&str) -> bool,
    icon_state: &str,
) {
    let what = format!("the tray shows {what} with the {icon_state} icon");
    until(&what, timeout, async || {
        tray_shows(tray, &expected, icon_state).await
    })
    .await;
}

/// The pair's health as the app's database says it now.
fn pair_health(concord: &Concord) -> Result<Health, String> {
    let status = concord.status().map_err(|e| e.to_string())?;
    status
        .health
        .into_iter()
        .find(|h| h.name == PAIR)
        .ok_or_else(|| "the status has no health of the pair".to_owned())
}

/// The window header's status line (`textContent`, shown or not).
async fn window_status_line(client: &fantoccini::Client) -> Result<String, String> {
    let line = client
        .find(Locator::Css("[data-testid=status-line]"))
        .await
        .map_err(|e| e.to_string())?;
    let text = line.prop("textContent").await.map_err(|e| e.to_string())?;
    Ok(text.unwrap_or_default())
}

/// Waits until the window's header says what the tray's first line says, and that satisfies
/// `expected`.
async fn window_says_what_the_tray_says(
    client: &fantoccini::Client,
    tray: &Tray,
    expected: impl Fn(&str) -> bool,
) {
    until(
        "the window's header says what the tray's first line says",
        CHANGE_TIMEOUT,
        async || {
            let in_tray = tray.status_line().await?;
            let in_window = window_status_line(client).await?;
            if in_window == in_tray && expected(&in_tray) {
                Ok(())
            } else {
                Err(format!("the tray: {in_tray:?}, the window: {in_window:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_stopped_server_shows_as_an_error_with_its_next_attempt_and_sync_now_recovers() {
    let _turn = one_app_at_a_time().await;
    let mut server = radicale().await;
    let notifications = NotificationWatch::start().await;
    let driver = WebDriver::start().await;
    let data_dir = driver.data_dir.path().to_owned();
    let folder = synced_once(&data_dir, &server);

    // The app, on that data directory, shows it synced.
    let client = driver.session().await;
    let tray = driver.tray().await;
    let synced = |line: &str| line.starts_with("Synced");
    until_tray_shows(&tray, "the pair synced", STARTUP_TIMEOUT, synced, "idle").await;
    window_says_what_the_tray_says(&client, &tray, synced).await;

    // The server goes away; then the pair's schedule comes due (as its interval ends).
    server.stop().unwrap();
    concord_ok(
        &data_dir,
        &["schedules", "trigger", &schedule_name(PAIR)],
        "",
        &[],
    );
    let unreachable = format!("Can't reach 127.0.0.1:{}", server.port());
    let failing = |line: &str| line.starts_with(&format!("{PAIR}: {unreachable}: retrying at "));
    let what = "the failure and its next attempt";
    until_tray_shows(&tray, what, OUTAGE_SHOWN_TIMEOUT, failing, "error").await;
    window_says_what_the_tray_says(&client, &tray, failing).await;

    // The app keeps retrying, further apart; one notification said what broke, however many
    // attempts failed.
    let concord = Concord::open(&data_dir).unwrap();
    let health = until(
        "the pair's next attempt is far enough off to tell Sync now's doing from it",
        OUTAGE_SHOWN_TIMEOUT,
        async || {
            let health = pair_health(&concord)?;
            let now = concord_core::sync::state::now_ms();
            let far = i64::try_from(RETRY_FAR_ENOUGH.as_millis()).unwrap();
            match health.next_attempt_at_ms {
                Some(at) if health.state == HealthState::Failing && at - now >= far => Ok(health),
                _ => Err(format!("{health:?}")),
            }
        },
    )
    .await;
    assert!(health.failed_attempts >= 3, "{health:?}");
    let seen = notifications
        .mentioning(BROKEN_NOTICE, CHANGE_TIMEOUT)
        .await;
    assert_eq!(
        notifications.count_mentioning(BROKEN_NOTICE),
        1,
        "one notification after {} failed attempts: {seen}",
        health.failed_attempts
    );
    assert!(seen.contains(&unreachable), "it says why: {seen}");

    // The server is back with a new event; Sync now in the tray brings it before the retry
    // the app waits for would have.
    let retry_at = health.next_attempt_at_ms.unwrap();
    let _server = tokio::task::spawn_blocking(move || {
        server.start_again().unwrap();
        server
            .put_into_calendar(LATER_UID, &event(LATER_UID, "Review", "Room 2"))
            .unwrap();
        server
    })
    .await
    .unwrap();
    tray.click("Sync now").await.unwrap();
    let left = retry_at - concord_core::sync::state::now_ms();
    let before_the_retry = Duration::from_millis(u64::try_from(left).unwrap_or(0));
    until(
        "Sync now brought the server's new event into the folder",
        before_the_retry,
        async || {
            folder_item(&folder, "ics", LATER_UID)
                .ok_or_else(|| format!("the pair: {:?}", pair_health(&concord)))
        },
    )
    .await;
    until_tray_shows(
        &tray,
        "the pair synced again",
        CHANGE_TIMEOUT,
        synced,
        "idle",
    )
    .await;
    window_says_what_the_tray_says(&client, &tray, synced).await;
    assert_eq!(
        notifications.count_mentioning(BROKEN_NOTICE),
        1,
        "{}",
        notifications.text()
    );

    client.close().await.unwrap();
}

#[tokio::test]
async fn sync_now_while_paused_syncs_and_syncing_stays_paused() {
    let _turn = one_app_at_a_time().await;
    let server = radicale().await;
    let mut app = RunningApp::start(&["--hidden"]);
    let tray = app.tray().await;
    // Set up by the `concord` command while the app runs.
    let folder = synced_once(app.data_dir(), &server);
    let synced = |line: &str| line.starts_with("Synced");
    app.eventually(
        "the tray shows the pair synced",
        CHANGE_TIMEOUT,
        async || tray_shows(&tray, synced, "idle").await,
    )
    .await;

    tray.click("Pause").await.unwrap_or_else(|e| app.fail(e));
    let paused = |line: &str| line.starts_with("Paused");
    app.eventually(
        "the tray shows syncing paused",
        CHANGE_TIMEOUT,
        async || tray_shows(&tray, paused, "paused").await,
    )
    .await;

    // A new event on the server; Sync now brings it although syncing is paused.
    server
        .put_into_calendar(LATER_UID, &event(LATER_UID, "Review", "Room 2"))
        .unwrap();
    tray.click("Sync now").await.unwrap_or_else(|e| app.fail(e));
    app.eventually(
        "Sync now brought the server's new event into the folder",
        CHANGE_TIMEOUT,
        async || {
            folder_item(&folder, "ics", LATER_UID).ok_or_else(|| "not in the folder yet".to_owned())
        },
    )
    .await;

    // After the run, syncing is still paused, and says so.
    app.eventually(
        "the tray shows syncing paused again, offering Resume",
        CHANGE_TIMEOUT,
        async || {
            let line = tray_shows(&tray, paused, "paused").await?;
            let labels = tray.labels().await?;
            match labels.get(2) {
                Some(resume) if resume == "Resume" => Ok(line),
                _ => Err(format!("the menu reads {labels:?}")),
            }
        },
    )
    .await;
    let concord = Concord::open(app.data_dir()).unwrap_or_else(|e| app.fail(e));
    let status = concord.status().unwrap_or_else(|e| app.fail(e));
    assert!(status.paused, "{status:?}");
}
