//! `concord`: everything the tray app does, without a desktop. `concord daemon` runs the
//! background scheduler in the foreground; the other commands inspect and operate it. Each
//! prints for people by default and JSON with `--json`.

mod conflicts;
mod daemon;
mod duplicates;
mod feeds;
mod jobs;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use concord_core::{Concord, Status, SubjectKind, paths};

#[derive(Debug, Parser)]
#[command(
    name = "concord",
    version,
    about = "Keeps calendars, contacts and feeds in sync"
)]
struct Cli {
    /// Where the database lives [default: $XDG_DATA_HOME/concord]
    #[arg(long, global = true, env = paths::DATA_DIR_ENV, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print JSON instead of text, for scripts
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the background scheduler in the foreground, logging to stderr, until Ctrl-C
    Daemon,
    /// Show what runs and what is configured
    Status,
    /// Feeds: add, list, refresh, read, mute, import and export OPML
    #[command(subcommand)]
    Feeds(feeds::FeedsCommand),
    /// Calendar and contact accounts: add, list, remove, discover, test
    #[command(subcommand)]
    Account(sync::AccountCommand),
    /// Pairs of collections kept in sync
    #[command(subcommand)]
    Pair(sync::PairCommand),
    /// Sync pairs now (all without names); --dry-run prints the plan
    Sync(sync::SyncArgs),
    /// Kept versions of an item (by UID or words of its title)
    History { item: String },
    /// Put a kept version back; the next sync carries it to the other side
    Restore { version: i64 },
    /// Items set aside as unreadable or duplicate UIDs
    #[command(subcommand)]
    Quarantine(sync::QuarantineCommand),
    /// Conflicts both sides' edits left for you to decide: list, show, resolve
    #[command(subcommand)]
    Conflicts(conflicts::ConflictsCommand),
    /// Contacts that are likely one person: list, show, merge
    #[command(subcommand)]
    Duplicates(duplicates::DuplicatesCommand),
    /// Background jobs: list, show, cancel, retry
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Schedules: list, pause, resume, trigger
    #[command(subcommand)]
    Schedules(jobs::SchedulesCommand),
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("concord: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let data_dir = paths::data_dir(cli.data_dir).map_err(|e| e.to_string())?;
    let label = match cli.command {
        Command::Daemon => "daemon",
        _ => "cli",
    };
    let concord = Concord::open_as(&data_dir, label).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Daemon => daemon::run(concord),
        Command::Account(cmd) => sync::run_account(&concord, cmd, cli.json),
        Command::Pair(cmd) => sync::run_pair(&concord, cmd, cli.json),
        Command::Sync(args) => sync::run_sync(&concord, args, cli.json),
        Command::History { item } => sync::run_history(&concord, &item, cli.json),
        Command::Restore { version } => sync::run_restore(&concord, version, cli.json),
        Command::Quarantine(cmd) => sync::run_quarantine(&concord, cmd, cli.json),
        Command::Conflicts(cmd) => conflicts::run(&concord, cmd, cli.json),
        Command::Duplicates(cmd) => duplicates::run(&concord, cmd, cli.json),
        Command::Feeds(cmd) => feeds::run(&concord, cmd, cli.json),
        Command::Jobs(cmd) => jobs::run_jobs(&concord, cmd, cli.json),
        Command::Schedules(cmd) => jobs::run_schedules(concord.engine(), cmd, cli.json),
        Command::Status => {
            let status = concord.status().map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&StatusReport::new(&concord, status))
            } else {
                print_status(&concord, &status);
                Ok(())
            }
        }
    }
}

/// `concord … | head` closes the pipe early: end quietly, as a program killed by SIGPIPE
/// would (exit code 141), instead of a panic message.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// `concord status --json`: the status plus where it was read from.
#[derive(serde::Serialize)]
struct StatusReport<'a> {
    data_dir: &'a std::path::Path,
    database: &'a std::path::Path,
    #[serde(flatten)]
    status: Status,
}

impl<'a> StatusReport<'a> {
    fn new(concord: &'a Concord, status: Status) -> Self {
        Self {
            data_dir: concord.data_dir(),
            database: concord.database_path(),
            status,
        }
    }
}

/// The runtime a command's async operation runs on (a network call, a sync, a refresh).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
}

/// Pretty JSON on stdout: every command's `--json` output.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

fn print_status(concord: &Concord, s: &Status) {
    println!("{}", s.line);
    for (kind, heading) in [
        (SubjectKind::Collections, "all collections"),
        (SubjectKind::Pair, "pairs"),
        (SubjectKind::Feed, "feeds"),
    ] {
        let of_kind: Vec<_> = s.health.iter().filter(|h| h.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        println!();
        println!("  {heading}");
        let width = of_kind
            .iter()
            .map(|h| h.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        for h in of_kind {
            println!("    {:<width$}  {}", h.name, h.said);
        }
    }
    println!();
    println!("  accounts   {}", s.accounts);
    println!("  conflicts  {}", s.conflicts);
    println!(
        "  jobs       {} pending, {} running, {} other failed",
        s.jobs.pending, s.jobs.running, s.jobs.failed
    );
    let workers = match concord.engine().live_workers() {
        Ok(list) if list.is_empty() => "none (start `concord daemon` or the tray app)".to_owned(),
        Ok(list) => list
            .iter()
            .map(|w| format!("{} (pid {})", w.label, w.pid))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("unknown: {e}"),
    };
    println!("  schedulers {workers}");
    println!("  database   {}", concord.database_path().display());
}
