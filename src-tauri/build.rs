//! Embeds tauri.conf.json and the capabilities, and generates one permission per IPC command
//! (`allow-<command>`), so the settings window can call exactly what capabilities/ grants.

/// Every command in `src/commands.rs` and `src/commands/`; a command missing here cannot be
/// granted, so it fails.
const COMMANDS: &[&str] = &[
    "status",
    "set_paused",
    "sync_now",
    "autostart_enabled",
    "set_autostart",
    "app_info",
    // the Activity page (src/commands/activity.rs)
    "jobs",
    "job",
    "retry_job",
    "cancel_job",
    "schedules",
    // the Feeds page (src/commands/feeds.rs)
    "feeds",
    "add_feed",
    "remove_feed",
    "feed_entries",
    "feed_entry",
    "mark_read",
    "mark_all_read",
    "set_starred",
    "set_feed_muted",
    "set_feed_interval",
    "refresh_feeds",
    "open_link",
    // the Accounts and Pairs pages (src/commands/sync.rs)
    "accounts",
    "add_account",
    "test_account",
    "discover_collections",
    "remove_account",
    "pairs",
    "add_pairs",
    "remove_pair",
    "sync_pair",
    "set_pair",
    "add_account_pair",
    "known_collections",
    "mappings",
    "add_all_collections",
    "sync_mapping",
    "remove_mapping",
    // the Conflicts page (src/commands/conflicts.rs)
    "conflicts_list",
    "conflict_show",
    "conflict_preview",
    "conflict_resolve",
];

fn main() {
    // `generate_context!` embeds ui/dist and `include_image!` the tray icons when main.rs is
    // compiled, but nothing tells cargo to compile it again when only they change: without
    // these lines a rebuilt UI would never reach the app.
    println!("cargo:rerun-if-changed=../ui/dist");
    println!("cargo:rerun-if-changed=../icons");
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    if let Err(error) =
        tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
    {
        // A build script reports by failing; the message names the bad file or setting.
        panic!("tauri build step failed: {error:#}");
    }
}
