//! `concord account`, `concord pair`, `concord sync`, `concord history`, `concord restore` and
//! `concord quarantine`: calendar and contact sync from the command line. Thin: everything is
//! `concord_core::sync`; this file parses, resolves names and prints (text or `--json`).

use crate::print_json;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use concord_core::Concord;
use concord_core::secrets::Secrets;
use concord_core::sync::accounts::discovery::{self, DiscoveryOptions};
use concord_core::sync::accounts::{mapping, pairs};
use concord_core::sync::item::ItemKind;
use concord_core::sync::run;
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageConfig, StorageKind};
use concord_core::sync::storage::webcal::Webcal;
use concord_core::sync::storage::{CredentialSource, SystemKeyring};
use concord_core::sync::{Report, SyncOptions, sync_durably, sync_pair};

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
    /// Find the account's calendars and address books (RFC 6764: the address given, its
    /// well-known URIs, DNS SRV; CONCORD_NAMESERVER=IP:PORT picks the DNS server)
    Discover { name: String },
    /// Connect and say plainly whether it works
    Test { name: String },
}

#[derive(Debug, Args)]
pub struct AccountAdd {
    /// A short name, used in `concord pair add --a NAME:COLLECTION`
    name: String,
    /// A CalDAV/CardDAV server (either: one account finds both calendars and address books),
    /// a webcal URL, or a vdir folder
    #[arg(long, value_enum, default_value = "caldav")]
    kind: KindArg,
    /// Server address (https://dav.example.com/, dav.example.com, or you@example.com), ICS
    /// URL, or folder path
    #[arg(long)]
    url: String,
    /// Left out for a server that asks no one to sign in: then no password is stored or read
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
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    a: Option<String>,
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    b: Option<String>,
    /// Every calendar and address book of --account, each in its own folder under --folder;
    /// collections made later are picked up by the next sync
    #[arg(long, requires_all = ["account", "folder"])]
    all: bool,
    /// The CalDAV/CardDAV account whose collections --all syncs
    #[arg(long, requires = "all")]
    account: Option<String>,
    /// The directory that holds one folder per collection (with --all)
    #[arg(long, requires = "all")]
    folder: Option<String>,
    #[arg(long, value_enum, default_value = "two-way")]
    direction: DirectionArg,
    /// What to do when both sides change the same property
    #[arg(long, value_enum, default_value = "ask", alias = "policy")]
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
    NewestWins,
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
            // Before anything is stored: the keyring entry of an existing account of that name
            // must not be replaced.
            if state::account(&db(concord)?, &add.name)
                .map_err(|e| e.to_string())?
                .is_some()
            {
                return Err(format!(
                    "there is already an account named {:?} (see `concord account list`)",
                    add.name
                ));
            }
            let kind = StorageKind::from(add.kind);
            let mut username = add.username.clone();
            let url = if kind == StorageKind::Vdir {
                std::path::absolute(&add.url)
                    .map_err(|e| format!("{}: {e}", add.url))?
                    .display()
                    .to_string()
            } else if kind == StorageKind::Webcal {
                if add.url.starts_with("http://") && !add.insecure_http && !is_loopback(&add.url) {
                    return Err(format!(
                        "{} is plain http: the password would travel unencrypted. Use https://, \
                         or pass --insecure-http if you mean it",
                        add.url
                    ));
                }
                add.url.clone()
            } else {
                // A server: a URL, a bare host or you@example.com, found by discovery later.
                let start = discovery::parse_input(&add.url).map_err(|e| e.to_string())?;
                let loopback = start.url.host().is_some_and(discovery::is_loopback_host);
                if start.url.scheme_str() == Some("http") && !add.insecure_http && !loopback {
                    return Err(format!(
                        "{} is plain http: the password would travel unencrypted. Use https://, \
                         or pass --insecure-http if you mean it",
                        start.url
                    ));
                }
                if username.is_none() {
                    username = start.username_hint.clone();
                }
                start.url.to_string()
            };
            if add.password_stdin && username.as_deref().is_none_or(str::is_empty) {
                return Err("--password-stdin needs --username (or an address like \
                            you@example.com): a password is only ever sent with its username"
                    .to_owned());
            }
            if add.password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| format!("reading the password: {e}"))?;
                let password = line.trim_end_matches(['\r', '\n']);
                if password.is_empty() {
                    return Err("the password read from standard input is empty".to_owned());
                }
                let secrets = Secrets::system().map_err(|e| e.to_string())?;
                secrets
                    .set_password(&add.name, password)
                    .map_err(|e| e.to_string())?;
            }
            let conn = db(concord)?;
            let id = state::add_account(&conn, &add.name, kind, &url, username.as_deref())
                .map_err(|e| format!("adding account {:?}: {e}", add.name))?;
            if add.insecure_http {
                mapping::set_allows_http(&conn, id, true).map_err(|e| e.to_string())?;
            }
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
            let mapped: Vec<String> = mapping::mappings(&conn)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|m| m.account == name)
                .map(|m| m.name)
                .collect();
            for m in &mapped {
                let _ = concord.engine().remove_schedule(&mapping::schedule_name(m));
            }
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
            let rt = runtime()?;
            let found = rt
                .block_on(mapping::discover_account(
                    concord,
                    &account,
                    &SystemKeyring,
                    DiscoveryOptions::from_env(false).nameserver,
                ))
                .map_err(|e| format!("{name}: {e}"))?;
            if json {
                return print_json(&found);
            }
            for service in &found.services {
                let via = match service.via {
                    discovery::FoundVia::GivenUrl => "the address given",
                    discovery::FoundVia::WellKnown => "the well-known address",
                    discovery::FoundVia::Srv => "DNS SRV",
                };
                println!(
                    "{}: {} via {via} (principal {})",
                    service.service.as_str(),
                    service.context_url,
                    service.principal.as_deref().unwrap_or("none")
                );
            }
            if found.collections.is_empty() {
                println!("{name}: no calendars or address books found");
            }
            for c in &found.collections {
                let mut about = Vec::new();
                if let Some(shown) = &c.display_name {
                    about.push(format!("{shown:?}"));
                }
                if let Some(color) = &c.color {
                    about.push(color.clone());
                }
                if !c.components.is_empty() {
                    about.push(c.components.join(","));
                }
                println!("{:<12} {}  {}", c.kind.as_str(), c.url, about.join("  "));
            }
            println!(
                "\npair one with: concord pair add NAME --a {name}:URL --b dir:PATH\n\
                 or all of them: concord pair add NAME --account {name} --all --folder DIR"
            );
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
                StorageKind::Webcal => {
                    let credentials = SystemKeyring
                        .credentials(&account)
                        .map_err(|e| e.to_string())?;
                    let rt = runtime()?;
                    rt.block_on(async {
                        let feed = Webcal::new(&account.url, &credentials).map_err(|e| e.to_string())?;
                        let listing = feed.changes(None).await.map_err(|e| format!("{name}: {e}"))?;
                        Ok(format!(
                            "{name}: the calendar answered with {} event(s), task(s) or journal entries",
                            listing.changed.len()
                        ))
                    })
                }
                _ => {
                    let credentials = SystemKeyring
                        .credentials(&account)
                        .map_err(|e| e.to_string())?;
                    let allow_http = mapping::allows_http(&db(concord)?, account.id)
                        .map_err(|e| e.to_string())?;
                    let options = DiscoveryOptions::from_env(allow_http);
                    let rt = runtime()?;
                    let check = rt.block_on(discovery::check_connection(
                        &account.url,
                        &credentials,
                        &options,
                    ));
                    if check.is_ok() {
                        Ok(format!("{name}: {}", check.message()))
                    } else {
                        Err(format!("{name}: {}", check.message()))
                    }
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

/// A side of a new pair, resolved to its storage.
struct Resolved {
    id: i64,
    kind: StorageKind,
    item_kind: ItemKind,
    location: String,
}

impl Resolved {
    fn side<'a>(&'a self, label: &'a str) -> pairs::NewSide<'a> {
        pairs::NewSide {
            kind: self.kind,
            item_kind: self.item_kind,
            location: &self.location,
            label,
        }
    }
}

/// Resolves a side spec to its storage; `other_contacts`: the other side holds contacts (for a
/// folder, which could hold either).
fn resolve_side(concord: &Concord, spec: &str, other_contacts: bool) -> Result<Resolved, String> {
    let conn = db(concord)?;
    let folder_kind = if other_contacts {
        ItemKind::Contact
    } else {
        ItemKind::Calendar
    };
    let (account, kind, location) = if let Some(path) = spec.strip_prefix("dir:") {
        let path = std::path::absolute(path).map_err(|e| format!("{path}: {e}"))?;
        (None, StorageKind::Vdir, path.display().to_string())
    } else {
        let (name, collection) = match spec.split_once(':') {
            // "https://..." is not ACCOUNT:COLLECTION
            Some((name, rest)) if !rest.starts_with("//") => (name, Some(rest)),
            _ => (spec, None),
        };
        let account = find_account(concord, name)?;
        let (kind, location) = match (account.kind, collection) {
            (StorageKind::Caldav | StorageKind::Carddav, Some(collection)) => {
                let url = pairs::collection_url(&account, collection);
                (pairs::collection_kind(&conn, &account, &url), url)
            }
            (StorageKind::Caldav | StorageKind::Carddav, None) => {
                return Err(format!(
                    "say which collection of {name}: {name}:/path/of/collection/ (see `concord account discover {name}`)"
                ));
            }
            (kind, _) => (kind, account.url.clone()),
        };
        (Some(account.id), kind, location)
    };
    let item_kind = match kind {
        StorageKind::Carddav => ItemKind::Contact,
        StorageKind::Vdir => folder_kind,
        StorageKind::Caldav | StorageKind::Webcal => ItemKind::Calendar,
    };
    let id = state::put_storage(&conn, account, kind, item_kind, &location, None)
        .map_err(|e| e.to_string())?;
    Ok(Resolved {
        id,
        kind,
        item_kind,
        location,
    })
}

/// Whether a side spec names contacts (for the folder on the other side).
fn spec_is_contacts(concord: &Concord, spec: &str) -> bool {
    let Some((name, collection)) = spec.split_once(':') else {
        return false;
    };
    let Ok(conn) = db(concord) else {
        return false;
    };
    let Some(account) = state::account(&conn, name).ok().flatten() else {
        return false;
    };
    let url = pairs::collection_url(&account, collection);
    pairs::collection_kind(&conn, &account, &url) == StorageKind::Carddav
}

fn policy_of(arg: PolicyArg) -> ConflictPolicy {
    match arg {
        PolicyArg::Ask => ConflictPolicy::Ask,
        PolicyArg::AWins => ConflictPolicy::AWins,
        PolicyArg::BWins => ConflictPolicy::BWins,
        PolicyArg::NewestWins => ConflictPolicy::NewestWins,
    }
}

fn direction_of(arg: DirectionArg) -> Direction {
    match arg {
        DirectionArg::TwoWay => Direction::TwoWay,
        DirectionArg::AToB => Direction::AToB,
        DirectionArg::BToA => Direction::BToA,
    }
}

/// `concord pair add NAME --account ACCT --all --folder DIR`: the mapping, refreshed once now.
fn add_mapping(concord: &Concord, add: &PairAdd, json: bool) -> Result<(), String> {
    let account_name = add.account.as_deref().unwrap_or_default();
    let account = find_account(concord, account_name)?;
    if !matches!(account.kind, StorageKind::Caldav | StorageKind::Carddav) {
        return Err(format!(
            "{account_name} is a {} account: --all needs a CalDAV/CardDAV server",
            account.kind.as_str()
        ));
    }
    let folder = std::path::absolute(add.folder.as_deref().unwrap_or_default())
        .map_err(|e| format!("{:?}: {e}", add.folder))?;
    {
        let conn = db(concord)?;
        if state::pair(&conn, &add.name)
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Err(format!("there is already a pair named {:?}", add.name));
        }
        mapping::add_mapping(
            &conn,
            &add.name,
            account.id,
            &folder,
            direction_of(add.direction),
            policy_of(add.conflicts),
            add.every_minutes.max(1),
        )
        .map_err(|e| format!("adding {:?}: {e}", add.name))?;
    }
    mapping::schedule(
        concord.engine(),
        &add.name,
        Duration::from_secs(add.every_minutes.max(1) * 60),
    )
    .map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let refreshed = rt.block_on(mapping::refresh(concord, &add.name, &SystemKeyring));
    if json {
        let (refresh, error) = match &refreshed {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        };
        return print_json(&serde_json::json!({
            "name": add.name, "all_collections_of": account.name,
            "folder": folder.display().to_string(), "refresh": refresh, "error": error,
        }));
    }
    println!(
        "paired all collections of {} into {}; they sync every {} min, or now with `concord sync {}`",
        account.name,
        folder.display(),
        add.every_minutes,
        add.name
    );
    match refreshed {
        Ok(r) => {
            for pair in &r.created {
                println!("  new: {pair}");
            }
        }
        Err(e) => {
            println!("  the collections could not be listed yet ({e}); the next sync tries again")
        }
    }
    Ok(())
}

pub fn run_pair(concord: &Concord, cmd: PairCommand, json: bool) -> Result<(), String> {
    match cmd {
        PairCommand::Add(add) if add.all => add_mapping(concord, &add, json),
        PairCommand::Add(add) => {
            let (Some(spec_a), Some(spec_b)) = (add.a.as_deref(), add.b.as_deref()) else {
                return Err(
                    "say both sides: --a ... --b ... (or --account ACCT --all --folder DIR)"
                        .to_owned(),
                );
            };
            let a = resolve_side(concord, spec_a, spec_is_contacts(concord, spec_b))?;
            let b = resolve_side(concord, spec_b, spec_is_contacts(concord, spec_a))?;
            if let Some(problem) = pairs::pairing_problem(a.side(spec_a), b.side(spec_b)) {
                return Err(problem);
            }
            let direction = match add.direction {
                DirectionArg::TwoWay => pairs::default_direction(a.kind, b.kind)?,
                other => direction_of(other),
            };
            let policy = policy_of(add.conflicts);
            let conn = db(concord)?;
            state::add_pair(&conn, &add.name, a.id, b.id, direction, policy)
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
            let conn = db(concord)?;
            let pairs = state::pairs(&conn).map_err(|e| e.to_string())?;
            let mappings = mapping::mappings(&conn).map_err(|e| e.to_string())?;
            if json {
                return print_json(&serde_json::json!({ "pairs": pairs, "mappings": mappings }));
            }
            if pairs.is_empty() && mappings.is_empty() {
                println!("no pairs yet: add one with `concord pair add NAME --a ... --b ...`");
            }
            for m in &mappings {
                let state = match (&m.last_error, m.last_refresh_at_ms) {
                    (Some(err), _) => format!("error: {err}"),
                    (None, Some(_)) => format!("{} collection(s)", m.pairs.len()),
                    (None, None) => "not discovered yet".to_owned(),
                };
                println!(
                    "{}  [all collections of {} -> {}/]  [{}]  {state}",
                    m.name,
                    m.account,
                    m.folder,
                    m.direction.as_str()
                );
                for p in &m.pairs {
                    let gone = if p.gone_since_ms.is_some() {
                        "  GONE from the server (folder kept, not synced)"
                    } else {
                        ""
                    };
                    println!(
                        "    {}  {} <-> {}{gone}",
                        p.pair, p.collection_url, p.folder
                    );
                }
            }
            let mapped: std::collections::BTreeSet<&str> = mappings
                .iter()
                .flat_map(|m| m.pairs.iter().map(|p| p.pair.as_str()))
                .collect();
            for p in pairs {
                if mapped.contains(p.name.as_str()) {
                    continue;
                }
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
            match pairs::remove(concord, &name).map_err(|e| e.to_string())? {
                pairs::Removed::Mapping { pairs } => println!(
                    "removed {name} and its {} pair(s); the folders and collections stay",
                    pairs.len()
                ),
                pairs::Removed::Pair => println!("removed pair {name}"),
            }
            Ok(())
        }
    }
}

pub fn run_sync(concord: &Concord, args: SyncArgs, json: bool) -> Result<(), String> {
    let rt = runtime()?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let mut refreshes = Vec::new();
    let (mappings, all_pairs) = {
        let conn = db(concord)?;
        (
            mapping::mappings(&conn).map_err(|e| e.to_string())?,
            state::pairs(&conn).map_err(|e| e.to_string())?,
        )
    };
    // An "all collections" pair first finds new and vanished collections (not on a dry run,
    // which writes nothing), then syncs each collection's pair.
    let chosen: Vec<&mapping::Mapping> = mappings
        .iter()
        .filter(|m| args.pairs.is_empty() || args.pairs.contains(&m.name))
        .collect();
    let mut gone: std::collections::BTreeSet<String> = mappings
        .iter()
        .flat_map(|m| m.pairs.iter())
        .filter(|p| p.gone_since_ms.is_some())
        .map(|p| p.pair.clone())
        .collect();
    let mut pairs: Vec<String> = Vec::new();
    for m in &chosen {
        if args.dry_run {
            pairs.extend(m.pairs.iter().map(|p| p.pair.clone()));
            continue;
        }
        match rt.block_on(mapping::refresh(concord, &m.name, &SystemKeyring)) {
            Ok(refresh) => {
                for p in &refresh.active {
                    gone.remove(p);
                }
                gone.extend(
                    m.pairs
                        .iter()
                        .filter(|p| !refresh.active.contains(&p.pair))
                        .map(|p| p.pair.clone()),
                );
                pairs.extend(refresh.active.iter().cloned());
                refreshes.push(refresh);
            }
            Err(err) => failures.push(format!("{}: {err}", m.name)),
        }
    }
    if args.pairs.is_empty() {
        let mapped: std::collections::BTreeSet<&str> = mappings
            .iter()
            .flat_map(|m| m.pairs.iter().map(|p| p.pair.as_str()))
            .collect();
        pairs.extend(
            all_pairs
                .iter()
                .filter(|p| !mapped.contains(p.name.as_str()))
                .map(|p| p.name.clone()),
        );
    } else {
        pairs.extend(
            args.pairs
                .iter()
                .filter(|name| !mappings.iter().any(|m| &&m.name == name))
                .cloned(),
        );
    }
    pairs.retain(|p| !gone.contains(p));
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
    // Everything ran: the runtime's idle threads are not waited for on the way out.
    rt.shutdown_background();
    if json {
        print_json(&serde_json::json!({
            "reports": reports, "errors": failures, "collections": refreshes,
        }))?;
    } else {
        for refresh in &refreshes {
            for pair in &refresh.created {
                println!("{}: new collection, paired as {pair}", refresh.mapping);
            }
            for line in &refresh.gone {
                println!("{}: {line}", refresh.mapping);
            }
        }
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
    use concord_core::sync::run::reconcile::PlanCounts;
    /// "1 updated on a, 2 deleted on b": what was (or would be) done.
    fn done(c: &PlanCounts) -> Vec<String> {
        let mut parts = Vec::new();
        for (n, what) in [
            (c.create_a, "created on a"),
            (c.create_b, "created on b"),
            (c.update_a, "updated on a"),
            (c.update_b, "updated on b"),
            (c.delete_a, "deleted on a"),
            (c.delete_b, "deleted on b"),
            (c.merged, "merged"),
            (c.conflicts, "new conflict"),
        ] {
            match n {
                0 => {}
                1 => parts.push(format!("1 {what}")),
                n if what.ends_with("conflict") => parts.push(format!("{n} {what}s")),
                n => parts.push(format!("{n} {what}")),
            }
        }
        parts
    }
    /// "1 update on a and 2 deletes on b deferred (why)": writes not made, or None.
    fn not_done(c: &PlanCounts, outcome: &str) -> Option<String> {
        let mut parts = Vec::new();
        for (n, what, side) in [
            (c.create_a, "create", " on a"),
            (c.create_b, "create", " on b"),
            (c.update_a, "update", " on a"),
            (c.update_b, "update", " on b"),
            (c.delete_a, "delete", " on a"),
            (c.delete_b, "delete", " on b"),
            (c.merged, "merge", ""),
        ] {
            match n {
                0 => {}
                1 => parts.push(format!("1 {what}{side}")),
                n => parts.push(format!("{n} {what}s{side}")),
            }
        }
        (!parts.is_empty()).then(|| format!("{} {outcome}", parts.join(" and ")))
    }
    let verb = if r.dry_run { "would be" } else { "" };
    let summary = if r.stopped.is_some() {
        let stop = if r.dry_run { "would stop" } else { "stopped" };
        let planned = done(&r.planned);
        if planned.is_empty() {
            format!("{stop} before changing anything")
        } else {
            format!(
                "{stop} before changing anything (planned: {})",
                planned.join(", ")
            )
        }
    } else {
        let written = done(&r.counts);
        let mut sentences = Vec::new();
        if !written.is_empty() {
            sentences.push(format!("{verb} {}", written.join(", ")).trim().to_owned());
        }
        sentences.extend(not_done(
            &r.deferred_counts,
            "deferred (changed meanwhile, retried next sync)",
        ));
        sentences.extend(not_done(
            &r.refused_counts,
            "refused (see below; tried again next sync)",
        ));
        if sentences.is_empty() {
            "nothing to do".to_owned()
        } else {
            sentences.join("; ")
        }
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
    for line in &r.refused {
        println!("  refused: {line}");
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
