//! Concord's desktop shell: the tray icon, the settings window and the IPC commands it calls.
//! A thin face over `concord-core`, like the `concord` command: it holds no business logic.
//!
//! - [`launch`]: the command line (`--hidden`, `--data-dir`).
//! - [`shell`]: the app's state and the one path every status change takes.
//! - [`tray`], [`window`]: the tray menu and the settings window.
//! - [`commands`]: what the window may call (granted in `capabilities/`).

// Release builds on Windows have no console window; a no-op elsewhere.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod launch;
mod shell;
mod tray;
mod window;

use std::process::ExitCode;

use concord_core::{Concord, paths};
use tauri::{App, Manager, RunEvent};
use tauri_plugin_autostart::MacosLauncher;

use crate::launch::{HIDDEN_FLAG, Launch, USAGE};
use crate::shell::Shell;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
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

    let app = tauri::Builder::default()
        // First, so a second launch hands over to the running app before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            window::show_main(app);
        }))
        .plugin(tauri_plugin_autostart::init(
            MacosLauncher::LaunchAgent,
            Some(vec![HIDDEN_FLAG]),
        ))
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::set_paused,
            commands::sync_now,
            commands::autostart_enabled,
            commands::set_autostart,
            commands::app_info,
        ])
        .on_window_event(window::hide_on_close)
        .setup(move |app| setup(app, launch))
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
/// starts the status poll. An error here ends the app with the reason on stderr.
fn setup(app: &mut App, launch: Launch) -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = paths::data_dir(launch.data_dir)?;
    let concord = Concord::open(&data_dir)?;
    let status = concord.status()?;
    tracing::info!(data_dir = %data_dir.display(), line = %status.line, "Concord started");

    let tray = tray::build(app.handle(), &status)?;
    app.manage(Shell::new(concord, tray, status));
    if !launch.hidden {
        window::show_main(app.handle());
    }
    tauri::async_runtime::spawn(shell::poll_status(app.handle().clone()));
    Ok(())
}
