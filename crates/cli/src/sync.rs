//! `concord account`, `concord pair`, `concord sync`, `concord history`, `concord restore` and
//! `concord quarantine`: calendar and contact sync from the command line. Thin: everything is
//! `concord_core::sync`; this file parses, resolves names and prints (text or `--json`).

use crate::print_json;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use concord_core::Concord;
use concord_core::dav::{CalDav, DavError};
use concord_core::secrets::Secrets;
use concord_core::sync::item::ItemKind;
use concord_core::sync::run::{self, CredentialSource, SystemKeyring};
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageConfig, StorageKind};
use concord_core::sync::{Report, SyncOptions, sync_durably, sync_pair};
use serde::Serialize;

/// How often a new pair syncs in the background unless told otherwise.
const SYNC_INTERVAL_DEFAULT_MIN: u64 = 15;

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add a CalDAV or CardDAV server, a webcal (ICS) URL, or a vdir folder
    Add(AccountAdd),
    /// List the accounts
    List,
    /// Remove an account with its pairs and its password (item history is kept)
    Remove {
        name: String,
        /// Confirm the removal
        #[arg(long)]
        yes: bool,
    },
    /// Find the account's calendars and address books
    Discover { name: String },
    /// Connect and say plainly whether it works
    Test { name: String },
}

#[derive(Debug, Args)]
pub struct AccountAdd {
    /// A short name, used in `concord pair add --a NAME:COLLECTION`
    name: String,
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Server address (https://dav.example.com/), ICS URL, or folder path
    #[arg(long)]
    url: String,
    #[arg(long)]
    username: Option<String>,
    /// Read the password from the first line of standard input (it goes to the keyring)
    #[arg(long)]
    password_stdin: bool,
    /// Allow plain http:// to a host other than this machine
    #[arg(long)]
    insecure_http: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Caldav,
    Carddav,
    Webcal,
    Vdir,
}

impl From<KindArg> for StorageKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Caldav => StorageKind::Caldav,
            KindArg::Carddav => StorageKind::Carddav,
            KindArg::Webcal => StorageKind::Webcal,
            KindArg::Vdir => StorageKind::Vdir,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PairCommand {
    /// Pair two collections. A side is ACCOUNT:COLLECTION (a path or URL on a CalDAV/CardDAV
    /// account), ACCOUNT (a webcal or vdir account), or dir:PATH (a vdir folder)
    Add(PairAdd),
    /// List the pairs with their last sync and state
    List,
    /// Remove a pair (the collections and item history stay)
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct PairAdd {
    name: String,
    #[arg(long)]
    a: String,
    #[arg(long)]
    b: String,
    #[arg(long, value_enum, default_value = "two-way")]
    direction: DirectionArg,
    /// What to do when both sides change the same property
    #[arg(long, value_enum, default_value = "ask")]
    conflicts: PolicyArg,
    /// Minutes between background syncs
    #[arg(long, default_value_t = SYNC_INTERVAL_DEFAULT_MIN)]
    every_minutes: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DirectionArg {
    TwoWay,
    AToB,
    BToA,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    Ask,
    AWins,
    BWins,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Pairs to sync (default: all)
    pairs: Vec<String>,
    /// Print the plan (creates, updates, deletes, conflicts per side) and write nothing
    #[arg(long)]
    dry_run: bool,
    /// Go past the emptied-side and mass-deletion guards this once
    #[arg(long)]
    allow_deletes: bool,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Items set aside because they cannot be read or share a UID, with the reason
    List,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
}

fn db(concord: &Concord) -> Result<rusqlite::Connection, String> {
    concord.database().connect().map_err(|e| e.to_string())
}

fn is_loopback(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or("");
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

pub fn run_account(concord: &Concord, cmd: AccountCommand, json: bool) -> Result<(), String> {
    match cmd {
        AccountCommand::Add(add) => {
            let kind = StorageKind::from(add.kind);
            let url = if kind == StorageKind::Vdir {
                std::path::absolute(&add.url)
                    .map_err(|e| format!("{}: {e}", add.url))?
                    .display()
                    .to_string()
            } else {
                if add.url.starts_with("http://") && !add.insecure_http && !is_loopback(&add.url) {
                    return Err(format!(
                        "{} is plain http: the password would travel unencrypted. Use https://, \
                         or pass --insecure-http if you mean it",
                        add.url
                    ));
                }
                add.url.clone()
            };
            if add.password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| format!("reading the password: {e}"))?;
                let password = line.trim_end_matches(['\r', '\n']);
                let secrets = Secrets::system().map_err(|e| e.to_string())?;
                secrets
                    .set_password(&add.name, password)
                    .map_err(|e| e.to_string())?;
            }
            let conn = db(concord)?;
            let id = state::add_account(&conn, &add.name, kind, &url, add.username.as_deref())
                .map_err(|e| format!("adding account {:?}: {e}", add.name))?;
            if kind == StorageKind::Vdir || kind == StorageKind::Webcal {
                let item_kind = ItemKind::Calendar;
                state::put_storage(&conn, Some(id), kind, item_kind, &url, Some(&add.name))
                    .map_err(|e| e.to_string())?;
            }
            if json {
                print_json(&serde_json::json!({ "id": id, "name": add.name }))
            } else {
                println!("added account {} ({})", add.name, kind.as_str());
                Ok(())
            }
        }
        AccountCommand::List => {
            let accounts = state::accounts(&db(concord)?).map_err(|e| e.to_string())?;
            if json {
                return print_json(&accounts);
            }
            if accounts.is_empty() {
                println!(
                    "no accounts yet: add one with `concord account add NAME --kind caldav --url URL`"
                );
            }
            for a in accounts {
                let user = a.username.map(|u| format!(" as {u}")).unwrap_or_default();
                println!("{}  {}  {}{user}", a.name, a.kind.as_str(), a.url);
            }
            Ok(())
        }
        AccountCommand::Remove { name, yes } => {
            if !yes {
                return Err(format!(
                    "removing {name:?} also removes its pairs; run again with --yes to confirm"
                ));
            }
            let conn = db(concord)?;
            let pairs: Vec<String> = state::pairs(&conn)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|p| {
                    let account = state::account(&conn, &name).ok().flatten().map(|a| a.id);
                    account.is_some() && (p.a.account_id == account || p.b.account_id == account)
                })
                .map(|p| p.name)
                .collect();
            if !state::remove_account(&conn, &name).map_err(|e| e.to_string())? {
                return Err(format!("there is no account named {name:?}"));
            }
            for pair in &pairs {
                let _ = concord.engine().remove_schedule(&run::schedule_name(pair));
            }
            if let Ok(secrets) = Secrets::system() {
                let _ = secrets.delete_password(&name);
            }
            println!("removed account {name} and {} pair(s)", pairs.len());
            Ok(())
        }
        AccountCommand::Discover { name } => {
            let account = find_account(concord, &name)?;
            let credentials = SystemKeyring
                .credentials(&account)
                .map_err(|e| e.to_string())?;
            let rt = runtime()?;
            let found = rt.block_on(async {
                let client = CalDav::new(&account.url, &credentials)?;
                let discovery = client.discover().await?;
                let books = client
                    .discover_address_books(discovery.principal.as_deref())
                    .await?;
                Ok::<_, DavError>((discovery, books))
            });
            let (discovery, (_, books)) = found.map_err(|e| e.to_string())?;
            #[derive(Serialize)]
            struct Collection {
                kind: &'static str,
                href: String,
                display_name: Option<String>,
                color: Option<String>,
            }
            let mut all: Vec<Collection> = discovery
                .calendars
                .into_iter()
                .map(|c| Collection {
                    kind: "calendar",
                    href: c.href,
                    display_name: c.display_name,
                    color: c.color,
                })
                .collect();
            all.extend(books.into_iter().map(|c| Collection {
                kind: "address-book",
                href: c.href,
                display_name: c.display_name,
                color: c.color,
            }));
            if json {
                return print_json(&all);
            }
            if all.is_empty() {
                println!("{name}: no calendars or address books found");
            }
            for c in all {
                let shown = c.display_name.unwrap_or_default();
                println!("{:<12} {}  {shown}", c.kind, c.href);
            }
            println!("\npair one with: concord pair add NAME --a {name}:HREF --b dir:PATH");
            Ok(())
        }
        AccountCommand::Test { name } => {
            let account = find_account(concord, &name)?;
            let answer = match account.kind {
                StorageKind::Vdir => {
                    let path = std::path::Path::new(&account.url);
                    if path.is_dir() {
                        Ok(format!("{name}: the folder {} is there", account.url))
                    } else {
                        Err(format!("{name}: {} is not a folder", account.url))
                    }
                }
                _ => {
                    let credentials = SystemKeyring
                        .credentials(&account)
                        .map_err(|e| e.to_string())?;
                    let rt = runtime()?;
                    rt.block_on(async {
                        let client = CalDav::new(&account.url, &credentials).map_err(|e| e.to_string())?;
                        match client.current_user_principal().await {
                            Ok(Some(p)) => Ok(format!("{name}: connected; signed in as principal {p}")),
                            Ok(None) => Ok(format!("{name}: connected (the server names no principal)")),
                            Err(DavError::Unauthorized { .. }) => {
                                Err(format!("{name}: the server rejected the username or password"))
                            }
                            Err(err @ DavError::Request { .. }) => Err(format!(
                                "{name}: could not reach the server or it is not a DAV server: {err}"
                            )),
                            Err(err) => Err(format!("{name}: {err}")),
                        }
                    })
                }
            };
            if json {
                let (ok, message) = match &answer {
                    Ok(m) => (true, m.clone()),
                    Err(m) => (false, m.clone()),
                };
                print_json(&serde_json::json!({ "ok": ok, "message": message }))?;
                return if ok { Ok(()) } else { Err(message) };
            }
            answer.map(|m| println!("{m}"))
        }
    }
}

fn find_account(concord: &Concord, name: &str) -> Result<state::Account, String> {
    state::account(&db(concord)?, name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no account named {name:?} (see `concord account list`)"))
}

/// Resolves a side spec to a storage id; `other` is the other side's kind, for folders.
fn resolve_side(
    concord: &Concord,
    spec: &str,
    other_contacts: bool,
) -> Result<(i64, StorageKind), String> {
    let conn = db(concord)?;
    if let Some(path) = spec.strip_prefix("dir:") {
        let path = std::path::absolute(path).map_err(|e| format!("{path}: {e}"))?;
        let kind = if other_contacts {
            ItemKind::Contact
        } else {
            ItemKind::Calendar
        };
        let id = state::put_storage(
            &conn,
            None,
            StorageKind::Vdir,
            kind,
            &path.display().to_string(),
            None,
        )
        .map_err(|e| e.to_string())?;
        return Ok((id, StorageKind::Vdir));
    }
    let (name, collection) = match spec.split_once(':') {
        // "https://..." is not ACCOUNT:COLLECTION
        Some((name, rest)) if !rest.starts_with("//") => (name, Some(rest)),
        _ => (spec, None),
    };
    let account = find_account(concord, name)?;
    let (kind, location) = match (account.kind, collection) {
        (StorageKind::Caldav | StorageKind::Carddav, Some(collection)) => {
            let url = if collection.starts_with("http://") || collection.starts_with("https://") {
                collection.to_owned()
            } else {
                let origin: String = account
                    .url
                    .splitn(4, '/')
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("/");
                format!("{origin}/{}", collection.trim_start_matches('/'))
            };
            (account.kind, url)
        }
        (StorageKind::Caldav | StorageKind::Carddav, None) => {
            return Err(format!(
                "say which collection of {name}: {name}:/path/of/collection/ (see `concord account discover {name}`)"
            ));
        }
        (kind, _) => (kind, account.url.clone()),
    };
    let item_kind = if kind == StorageKind::Carddav || (kind == StorageKind::Vdir && other_contacts)
    {
        ItemKind::Contact
    } else {
        ItemKind::Calendar
    };
    let id = state::put_storage(&conn, Some(account.id), kind, item_kind, &location, None)
        .map_err(|e| e.to_string())?;
    Ok((id, kind))
}

pub fn run_pair(concord: &Concord, cmd: PairCommand, json: bool) -> Result<(), String> {
    match cmd {
        PairCommand::Add(add) => {
            let contacts = |spec: &str| {
                spec.split_once(':')
                    .and_then(|(name, _)| state::account(&db(concord).ok()?, name).ok().flatten())
                    .is_some_and(|a| a.kind == StorageKind::Carddav)
            };
            let (a, a_kind) = resolve_side(concord, &add.a, contacts(&add.b))?;
            let (b, _) = resolve_side(concord, &add.b, contacts(&add.a))?;
            let direction = match add.direction {
                DirectionArg::TwoWay if a_kind == StorageKind::Webcal => Direction::AToB,
                DirectionArg::TwoWay => Direction::TwoWay,
                DirectionArg::AToB => Direction::AToB,
                DirectionArg::BToA => Direction::BToA,
            };
            let policy = match add.conflicts {
                PolicyArg::Ask => ConflictPolicy::Ask,
                PolicyArg::AWins => ConflictPolicy::AWins,
                PolicyArg::BWins => ConflictPolicy::BWins,
            };
            let conn = db(concord)?;
            state::add_pair(&conn, &add.name, a, b, direction, policy)
                .map_err(|e| format!("adding pair {:?}: {e}", add.name))?;
            run::schedule(
                concord.engine(),
                &add.name,
                Duration::from_secs(add.every_minutes.max(1) * 60),
            )
            .map_err(|e| e.to_string())?;
            if json {
                print_json(
                    &serde_json::json!({ "name": add.name, "direction": direction.as_str() }),
                )
            } else {
                println!(
                    "paired {} ({}); it syncs every {} min, or now with `concord sync {}`",
                    add.name,
                    direction.as_str(),
                    add.every_minutes,
                    add.name
                );
                Ok(())
            }
        }
        PairCommand::List => {
            let pairs = state::pairs(&db(concord)?).map_err(|e| e.to_string())?;
            if json {
                return print_json(&pairs);
            }
            if pairs.is_empty() {
                println!("no pairs yet: add one with `concord pair add NAME --a ... --b ...`");
            }
            for p in pairs {
                let side = |s: &StorageConfig| format!("{} {}", s.kind.as_str(), s.location);
                let state = match (&p.stopped_reason, &p.last_error, p.last_sync_at_ms) {
                    (Some(reason), _, _) => format!("stopped: {reason}"),
                    (None, Some(err), _) => format!("error: {err}"),
                    (None, None, Some(_)) => "synced".to_owned(),
                    (None, None, None) => "not synced yet".to_owned(),
                };
                println!("{}  [{}]  {state}", p.name, p.direction.as_str());
                println!("    a: {}", side(&p.a));
                println!("    b: {}", side(&p.b));
            }
            Ok(())
        }
        PairCommand::Remove { name } => {
            if !state::remove_pair(&db(concord)?, &name).map_err(|e| e.to_string())? {
                return Err(format!("there is no pair named {name:?}"));
            }
            let _ = concord.engine().remove_schedule(&run::schedule_name(&name));
            println!("removed pair {name}");
            Ok(())
        }
    }
}

pub fn run_sync(concord: &Concord, args: SyncArgs, json: bool) -> Result<(), String> {
    let pairs = if args.pairs.is_empty() {
        state::pairs(&db(concord)?)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|p| p.name)
            .collect()
    } else {
        args.pairs.clone()
    };
    let rt = runtime()?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for pair in pairs {
        let result = rt.block_on(async {
            if args.dry_run {
                let options = SyncOptions {
                    dry_run: true,
                    allow_deletes: args.allow_deletes,
                };
                sync_pair(concord, &pair, &SystemKeyring, &options).await
            } else {
                sync_durably(concord, &pair, Arc::new(SystemKeyring), args.allow_deletes).await
            }
        });
        match result {
            Ok(report) => reports.push(report),
            Err(err) => failures.push(format!("{pair}: {err}")),
        }
    }
    if json {
        print_json(&serde_json::json!({ "reports": reports, "errors": failures }))?;
    } else {
        for report in &reports {
            print_report(report);
        }
        for failure in &failures {
            eprintln!("{failure}");
        }
    }
    let stopped = reports.iter().filter(|r| r.stopped.is_some()).count();
    if failures.is_empty() && stopped == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} pair(s) failed, {stopped} stopped and waiting for you",
            failures.len()
        ))
    }
}

fn print_report(r: &Report) {
    let c = &r.counts;
    let mut parts = Vec::new();
    for (n, what) in [
        (c.create_a, "created on a"),
        (c.create_b, "created on b"),
        (c.update_a, "updated on a"),
        (c.update_b, "updated on b"),
        (c.delete_a, "deleted on a"),
        (c.delete_b, "deleted on b"),
        (c.merged, "merged"),
        (c.conflicts, "new conflicts"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let verb = if r.dry_run { "would be" } else { "" };
    let summary = if parts.is_empty() {
        "nothing to do".to_owned()
    } else {
        format!("{verb} {}", parts.join(", ")).trim().to_owned()
    };
    println!("{}: {summary}", r.pair);
    if r.dry_run {
        for line in &r.plan {
            println!("  {line}");
        }
    }
    for line in &r.deferred {
        println!("  deferred: {line}");
    }
    if r.quarantined > 0 {
        println!(
            "  {} item(s) in quarantine: see `concord quarantine list`",
            r.quarantined
        );
    }
    if let Some(reason) = &r.stopped {
        println!("  STOPPED: {reason}");
    }
}

pub fn run_history(concord: &Concord, item: &str, json: bool) -> Result<(), String> {
    let versions = state::history(&db(concord)?, item).map_err(|e| e.to_string())?;
    if json {
        return print_json(&versions);
    }
    if versions.is_empty() {
        println!("no kept versions of {item:?} (search by UID or by words of the title)");
    }
    for v in versions {
        let when = chrono::DateTime::from_timestamp_millis(v.recorded_at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        println!(
            "{:>6}  {when}  {}  side {}  {:<22} {}",
            v.id,
            v.pair.as_deref().unwrap_or("(removed pair)"),
            v.side,
            v.reason,
            v.summary
        );
    }
    Ok(())
}

pub fn run_restore(concord: &Concord, version: i64, json: bool) -> Result<(), String> {
    let rt = runtime()?;
    let message = rt
        .block_on(run::restore(concord, version, &SystemKeyring))
        .map_err(|e| e.to_string())?;
    if json {
        print_json(&serde_json::json!({ "restored": version, "message": message }))
    } else {
        println!("{message}");
        Ok(())
    }
}

pub fn run_quarantine(concord: &Concord, cmd: QuarantineCommand, json: bool) -> Result<(), String> {
    match cmd {
        QuarantineCommand::List => {
            let items = state::quarantined(&db(concord)?).map_err(|e| e.to_string())?;
            if json {
                return print_json(&items);
            }
            if items.is_empty() {
                println!("nothing in quarantine");
            }
            for q in items {
                let what = if q.summary.is_empty() {
                    q.href.clone()
                } else {
                    format!("{} ({})", q.summary, q.href)
                };
                println!("{}  side {}  {what}\n    {}", q.pair, q.side, q.reason);
            }
            Ok(())
        }
    }
}
