//! Embeds tauri.conf.json and the capabilities, and generates one permission per IPC command
//! (`allow-<command>`), so the settings window can call exactly what capabilities/ grants.

/// Every command in `src/commands.rs`; a command missing here cannot be granted, so it fails.
const COMMANDS: &[&str] = &[
    "status",
    "set_paused",
    "sync_now",
    "autostart_enabled",
    "set_autostart",
    "app_info",
];

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    if let Err(error) = tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)) {
        // A build script reports by failing; the message names the bad file or setting.
        panic!("tauri build step failed: {error:#}");
    }
}
