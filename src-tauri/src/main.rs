//! Concord's desktop shell: the tray icon, the settings window and the IPC commands it calls.
//! A thin face over `concord-core`, like the `concord` command: it holds no business logic.
//!
//! - [`launch`]: the command line (`--hidden`, `--data-dir`).
//! - [`shell`]: the app's state and the one path every status change takes.
//! - [`tray`], [`window`]: the tray menu; the settings window, which never navigates away.
//! - [`commands`]: what the window may call (granted in `capabilities/`), grouped by page, the
//!   job events the Activity page follows, and the feeds' refresh events and notifications.

// Release builds on Windows have no console window; a no-op elsewhere.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod attention;
mod commands;
mod launch;
mod shell;
mod tray;
mod window;

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;

use concord_core::{Concord, paths};
use tauri::{App, Manager, RunEvent};

use crate::launch::{Launch, USAGE};
use crate::shell::Shell;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCORD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let launch = match Launch::parse(std::env::args_os().skip(1)) {
        Ok(launch) => launch,
        Err(error) => {
            eprintln!("concord-app: {error}");
            return ExitCode::from(2);
        }
    };
    if launch.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    // Resolved here (no I/O) so autostart gets the absolute path; opened in `setup`, after the
    // single-instance check, so a second launch never touches the database.
    let data_dir = match paths::data_dir(launch.data_dir.clone()) {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("concord-app: {error}");
            return ExitCode::FAILURE;
        }
    };
    let autostart_args = launch::autostart_args(launch.data_dir.is_some().then_some(&*data_dir));

    let app = tauri::Builder::default()
        // First, so a second launch hands over to the running app before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            window::show_main(app);
        }))
        .plugin(
            tauri_plugin_autostart::Builder::new()
                .args(autostart_args)
                .build(),
        )
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::set_paused,
            commands::sync_now,
            commands::autostart_enabled,
            commands::set_autostart,
            commands::app_info,
            commands::activity::jobs,
            commands::activity::job,
            commands::activity::retry_job,
            commands::activity::cancel_job,
            commands::activity::schedules,
            commands::feeds::feeds,
            commands::feeds::add_feed,
            commands::feeds::remove_feed,
            commands::feeds::feed_entries,
            commands::feeds::feed_entry,
            commands::feeds::mark_read,
            commands::feeds::mark_all_read,
            commands::feeds::set_starred,
            commands::feeds::set_feed_muted,
            commands::feeds::set_feed_interval,
            commands::feeds::refresh_feeds,
            commands::feeds::open_link,
            commands::sync::accounts,
            commands::sync::add_account,
            commands::sync::test_account,
            commands::sync::discover_collections,
            commands::sync::remove_account,
            commands::sync::pairs,
            commands::sync::add_pairs,
            commands::sync::remove_pair,
            commands::sync::sync_pair,
            commands::sync::set_pair,
            commands::sync::add_account_pair,
            commands::sync::known_collections,
            commands::sync::mappings,
            commands::sync::add_all_collections,
            commands::sync::sync_mapping,
            commands::sync::remove_mapping,
            commands::conflicts::conflicts_list,
            commands::conflicts::conflict_show,
            commands::conflicts::conflict_preview,
            commands::conflicts::conflict_resolve,
        ])
        .plugin(window::navigation_guard())
        .on_window_event(window::hide_on_close)
        .setup(move |app| setup(app, &data_dir, launch.hidden))
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(error) => {
            eprintln!("concord-app: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|_app, event| {
        // The window only hides, so this comes from the last window going away some other way:
        // stay in the tray. Quit exits with a code and is let through.
        if let RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            api.prevent_exit();
        }
    });
    ExitCode::SUCCESS
}

/// Opens the database the daemon uses, builds the tray, shows the window unless `--hidden`, and
/// starts the scheduler, the status poll, the forwarding of job events to the window and the
/// announcing of scheduled feed refreshes. An error here ends the app with the reason on stderr.
fn setup(app: &mut App, data_dir: &Path, hidden: bool) -> Result<(), Box<dyn std::error::Error>> {
    let concord = Concord::open_as(data_dir, "app")?;
    // Core registers the feed refresh and pair sync workflows: this app's scheduler runs them
    // (and announces what the feed refreshes find).
    let scheduler = concord.clone();
    // Subscribed before the scheduler starts, so the window hears about its first run too.
    let job_events = concord.engine().subscribe();
    let refresh_events = concord.engine().subscribe();
    let status = concord.status()?;
    tracing::info!(data_dir = %data_dir.display(), line = %status.line, "Concord started");

    let tray = tray::build(app.handle(), &status)?;
    app.manage(Shell::new(app.handle(), concord, tray, status));
    if !hidden {
        window::show_main(app.handle());
    }
    // The scheduler runs for the app's lifetime. On Quit the process ends with it; a run it
    // held is taken over by another process (or this app's next start) once its lease expires.
    tauri::async_runtime::spawn(async move {
        if let Err(error) = scheduler.run_scheduler(std::future::pending()).await {
            tracing::error!(%error, "the scheduler stopped");
        }
    });
    tauri::async_runtime::spawn(shell::poll_status(app.handle().clone()));
    tauri::async_runtime::spawn(commands::activity::forward_events(
        app.handle().clone(),
        job_events,
    ));
    tauri::async_runtime::spawn(commands::feeds::follow_scheduled_refreshes(
        app.handle().clone(),
        refresh_events,
    ));
    Ok(())
}
