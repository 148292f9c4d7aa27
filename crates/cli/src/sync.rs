//! `concord account`, `concord pair`, `concord sync`, `concord history`, `concord restore` and
//! `concord quarantine`: calendar and contact sync from the command line. Thin: everything is
//! `concord_core::sync`; this file parses, resolves names and prints (text or `--json`).

use crate::{print_json, runtime};
use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use concord_core::Concord;
use concord_core::ops::{NewAccount, NewPair, PairSettings, SYNC_INTERVAL_DEFAULT, SideSpec};
use concord_core::sync::accounts::discovery;
use concord_core::sync::accounts::pairs::Removed;
use concord_core::sync::state::{ConflictPolicy, Direction, StorageKind};
use concord_core::sync::{Report, SyncOptions};

/// How often a new pair syncs in the background unless told otherwise.
const SYNC_INTERVAL_DEFAULT_MIN: u64 = SYNC_INTERVAL_DEFAULT.as_secs() / 60;

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
    /// Change the account's password: read from the first line of standard input
    Password { name: String },
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

/// The first line of standard input, without its line ending.
fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub fn run_account(concord: &Concord, cmd: AccountCommand, json: bool) -> Result<(), String> {
    match cmd {
        AccountCommand::Add(add) => {
            let password = if add.password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            let added = concord
                .add_account(NewAccount {
                    name: add.name,
                    kind: add.kind.into(),
                    url: add.url,
                    username: add.username,
                    password,
                    insecure_http: add.insecure_http,
                })
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::json!({ "id": added.id, "name": added.name }))
            } else {
                println!("added account {} ({})", added.name, added.kind.as_str());
                Ok(())
            }
        }
        AccountCommand::List => {
            let accounts = concord.accounts().map_err(|e| e.to_string())?;
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
                    "removing {name:?} also removes any pair made with it; run again with --yes to confirm"
                ));
            }
            let pairs = concord.remove_account(&name).map_err(|e| e.to_string())?;
            println!("removed account {name} and {} pair(s)", pairs.len());
            Ok(())
        }
        AccountCommand::Password { name } => {
            concord
                .set_password(&name, &read_password()?)
                .map_err(|e| e.to_string())?;
            println!("changed the password of {name}");
            Ok(())
        }
        AccountCommand::Discover { name } => {
            let found = runtime()?
                .block_on(concord.discover(&name))
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
            let test = runtime()?
                .block_on(concord.test_account(&name))
                .map_err(|e| e.to_string())?;
            let message = format!("{name}: {}", test.message);
            if json {
                print_json(&serde_json::json!({ "ok": test.ok, "message": message }))?;
            } else if test.ok {
                println!("{message}");
            }
            if test.ok { Ok(()) } else { Err(message) }
        }
    }
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

/// When a new pair's first sync runs, in words.
fn first_sync(concord: &Concord, name: &str) -> String {
    if concord.scheduler_running().unwrap_or(false) {
        "its first sync runs now in the background".to_owned()
    } else {
        format!("sync it now with `concord sync {name}` (or start `concord daemon`)")
    }
}

/// `concord pair add NAME --account ACCT --all --folder DIR`: the mapping, listed once now.
fn add_mapping(concord: &Concord, add: &PairAdd, json: bool) -> Result<(), String> {
    let account = add.account.as_deref().unwrap_or_default();
    let folder = add.folder.as_deref().map(PathBuf::from);
    let settings = PairSettings {
        direction: direction_of(add.direction),
        conflicts: policy_of(add.conflicts),
        every_minutes: add.every_minutes,
    };
    let (made, refreshed) = runtime()?
        .block_on(concord.add_all_collections(
            Some(&add.name),
            account,
            folder.as_deref(),
            Some(settings),
        ))
        .map_err(|e| e.to_string())?;
    if json {
        let (refresh, error) = match &refreshed {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        };
        return print_json(&serde_json::json!({
            "name": made.name, "all_collections_of": made.account,
            "folder": made.folder, "refresh": refresh, "error": error,
        }));
    }
    println!(
        "paired all collections of {} into {}; they sync every {} min; {}",
        made.account,
        made.folder,
        made.every_minutes,
        first_sync(concord, &made.name)
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
            let side = |spec: &str| spec.parse::<SideSpec>().map_err(|e| e.to_string());
            let direction = match add.direction {
                DirectionArg::TwoWay => None,
                other => Some(direction_of(other)),
            };
            let pair = concord
                .add_pair(NewPair {
                    name: Some(add.name.clone()),
                    a: side(spec_a)?,
                    b: side(spec_b)?,
                    direction,
                    conflicts: policy_of(add.conflicts),
                    every_minutes: Some(add.every_minutes),
                })
                .map_err(|e| format!("adding pair {:?}: {e}", add.name))?;
            if json {
                print_json(
                    &serde_json::json!({ "name": pair.name, "direction": pair.direction.as_str() }),
                )
            } else {
                println!(
                    "paired {} ({}); it syncs every {} min; {}",
                    pair.name,
                    pair.direction.as_str(),
                    add.every_minutes,
                    first_sync(concord, &pair.name)
                );
                Ok(())
            }
        }
        PairCommand::List => {
            let pairs = concord.pair_rows().map_err(|e| e.to_string())?;
            let mappings = concord.mappings().map_err(|e| e.to_string())?;
            let status = concord.status().map_err(|e| e.to_string())?;
            if json {
                return print_json(&serde_json::json!({
                    "pairs": pairs, "mappings": mappings, "health": status.health,
                }));
            }
            let said = |name: &str| {
                status
                    .health
                    .iter()
                    .find(|h| h.name == name && h.kind != concord_core::SubjectKind::Feed)
                    .map_or_else(String::new, |h| h.said.clone())
            };
            if pairs.is_empty() && mappings.is_empty() {
                println!("no pairs yet: add one with `concord pair add NAME --a ... --b ...`");
            }
            for m in &mappings {
                println!(
                    "{}  [all collections of {} -> {}/]  [{}]  {}",
                    m.name,
                    m.account,
                    m.folder,
                    m.direction.as_str(),
                    said(&m.name)
                );
                for p in &m.pairs {
                    let gone = if p.gone_since_ms.is_some() {
                        "  GONE from the server (folder kept, not synced)".to_owned()
                    } else {
                        format!("  {}", said(&p.pair))
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
            for p in pairs.iter().filter(|p| !mapped.contains(p.name.as_str())) {
                println!("{}  [{}]  {}", p.name, p.direction.as_str(), said(&p.name));
                println!("    a: {} {}", p.a.kind.as_str(), p.a.location);
                println!("    b: {} {}", p.b.kind.as_str(), p.b.location);
            }
            Ok(())
        }
        PairCommand::Remove { name } => {
            match concord.remove_pair(&name).map_err(|e| e.to_string())? {
                Removed::Mapping { pairs } => println!(
                    "removed {name} and its {} pair(s); the folders and collections stay",
                    pairs.len()
                ),
                Removed::Pair => println!("removed pair {name}"),
            }
            Ok(())
        }
    }
}

pub fn run_sync(concord: &Concord, args: SyncArgs, json: bool) -> Result<(), String> {
    let rt = runtime()?;
    let options = SyncOptions {
        dry_run: args.dry_run,
        allow_deletes: args.allow_deletes,
    };
    let done = rt
        .block_on(concord.sync_here(&args.pairs, &options))
        .map_err(|e| e.to_string())?;
    // Everything ran: the runtime's idle threads are not waited for on the way out.
    rt.shutdown_background();
    if json {
        print_json(&done)?;
    } else {
        if done.while_paused && !args.dry_run {
            println!("syncing is paused: these ran because you asked; it stays paused");
        }
        for refresh in &done.collections {
            for pair in &refresh.created {
                println!("{}: new collection, paired as {pair}", refresh.mapping);
            }
            for line in &refresh.gone {
                println!("{}: {line}", refresh.mapping);
            }
        }
        for report in &done.reports {
            print_report(report);
        }
        for failure in &done.errors {
            eprintln!("{failure}");
        }
    }
    let stopped = done.stopped();
    if done.errors.is_empty() && stopped == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} pair(s) failed, {stopped} stopped and waiting for you",
            done.errors.len()
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
    let versions = concord.history(item).map_err(|e| e.to_string())?;
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
        .block_on(concord.restore(version))
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
            let items = concord.quarantined().map_err(|e| e.to_string())?;
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
