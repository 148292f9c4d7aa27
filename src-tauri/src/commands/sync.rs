//! The Accounts and Pairs pages' commands: add a CalDAV/CardDAV server (from a host, a URL or
//! `user@domain`), a webcal URL or a vdir folder (its password goes to the keyring, never the
//! database), test it, discover its calendars and address books, and pair the chosen ones with
//! vdir folders, with a collection of another account, or all of them ("all collections", new
//! ones picked up); list the pairs and those mappings, remove them, and Sync now. Everything is
//! `concord_core::sync`, called as `concord account|pair|sync` call it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use concord_core::Concord;
use concord_core::dav::{Credentials, DavError};
use concord_core::secrets::Secrets;
use concord_core::sync::accounts::discovery::{self, ConnectionCheck, DiscoveryOptions};
use concord_core::sync::accounts::mapping::{self, Mapping, MappingReport};
use concord_core::sync::accounts::pairs;
use concord_core::sync::item::ItemKind;
use concord_core::sync::run;
use concord_core::sync::state::{self, Account, ConflictPolicy, Direction, Pair, StorageKind};
use concord_core::sync::storage::webcal::Webcal;
use concord_core::sync::storage::{CredentialSource, SystemKeyring};
use concord_core::sync::{Report, sync_durably};
use concord_durable::Cadence;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, State, Wry};

use crate::shell::Shell;

/// How often a pair made here syncs in the background (as `concord pair add` by default).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Where pairs made without a chosen folder keep their items, under the data directory.
pub const VDIR_FOLDER: &str = "vdir";

fn db(concord: &Concord) -> Result<Connection, String> {
    concord.database().connect().map_err(|e| e.to_string())
}

fn find_account(conn: &Connection, name: &str) -> Result<Account, String> {
    state::account(conn, name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("There is no account named {name:?}"))
}

// ---- accounts ------------------------------------------------------------------------------

#[tauri::command]
pub async fn accounts(shell: State<'_, Shell>) -> Result<Vec<Account>, String> {
    shell
        .blocking(|concord| state::accounts(&db(concord)?).map_err(|e| e.to_string()))
        .await
}

/// What the Add form sends. No `Debug`: it holds the password.
#[derive(Deserialize)]
pub struct NewAccount {
    /// Empty: named after the server's host or the folder.
    pub name: String,
    pub kind: StorageKind,
    /// Server address, ICS URL, or folder path.
    pub url: String,
    pub username: Option<String>,
    /// Goes to the keyring under the account's name.
    pub password: Option<String>,
    /// Plain http:// to a host other than this machine, said on purpose.
    #[serde(default)]
    pub insecure_http: bool,
}

/// Adds an account; its password goes to the keyring, never the database.
#[tauri::command]
pub async fn add_account(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    account: NewAccount,
) -> Result<Account, String> {
    let added = shell.blocking(move |concord| add(concord, account)).await?;
    let _ = shell.publish(&app).await;
    Ok(added)
}

fn add(concord: &Concord, new: NewAccount) -> Result<Account, String> {
    let url = new.url.trim().to_owned();
    if url.is_empty() {
        return Err("Give the server's address, the calendar's URL or the folder".to_owned());
    }
    let mut hinted_username = None;
    let url = match new.kind {
        StorageKind::Vdir => {
            let path = std::path::absolute(&url).map_err(|e| format!("{url}: {e}"))?;
            if !path.is_dir() {
                return Err(format!("{} is not a folder", path.display()));
            }
            path.display().to_string()
        }
        StorageKind::Webcal => {
            let lower = url.to_ascii_lowercase();
            let url = match lower.strip_prefix("webcal://") {
                Some(rest) => format!("https://{rest}"),
                None => url,
            };
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(format!("{url} is not a web address (https://…)"));
            }
            if lower.starts_with("http://") && !new.insecure_http && !is_this_machine(&url) {
                return Err(format!(
                    "{url} is plain http: the password would travel unencrypted. Use https://"
                ));
            }
            url
        }
        // A server: a URL, a bare host or you@example.com, found by discovery later.
        StorageKind::Caldav | StorageKind::Carddav => {
            let start = discovery::parse_input(&url).map_err(|e| e.to_string())?;
            let loopback = start.url.host().is_some_and(discovery::is_loopback_host);
            if start.url.scheme_str() == Some("http") && !new.insecure_http && !loopback {
                return Err(format!(
                    "{} is plain http: the password would travel unencrypted. Use https://, or \
                     allow plain http on purpose",
                    start.url
                ));
            }
            hinted_username = start.username_hint;
            start.url.to_string()
        }
    };
    let conn = db(concord)?;
    let taken: HashSet<String> = state::accounts(&conn)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|a| a.name)
        .collect();
    let name = match new.name.trim() {
        "" => unique(&slug(&default_name(&url)), &taken),
        name if taken.contains(name) => {
            return Err(format!("There is already an account named {name:?}"));
        }
        name => name.to_owned(),
    };
    let username = new
        .username
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .or(hinted_username);
    let password = new.password.filter(|p| !p.is_empty());
    if password.is_some() && username.is_none() {
        return Err("Give the username that goes with the password.".to_owned());
    }
    if let Some(password) = password {
        let secrets = Secrets::system().map_err(|e| e.to_string())?;
        secrets
            .set_password(&name, &password)
            .map_err(|e| e.to_string())?;
    }
    let id = state::add_account(&conn, &name, new.kind, &url, username.as_deref())
        .map_err(|e| format!("Could not keep the account {name:?}: {e}"))?;
    if new.insecure_http && matches!(new.kind, StorageKind::Caldav | StorageKind::Carddav) {
        mapping::set_allows_http(&conn, id, true).map_err(|e| e.to_string())?;
    }
    Ok(Account {
        id,
        name,
        kind: new.kind,
        url,
        username,
    })
}

/// Whether a plain-http address points at this machine (a local server, a test).
fn is_this_machine(url: &str) -> bool {
    let host = host_of(url);
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// `https://dav.example.com:8443/x` -> `dav.example.com:8443`.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

fn default_name(url: &str) -> String {
    if url.contains("://") {
        host_of(url)
            .split(':')
            .next()
            .unwrap_or("account")
            .to_owned()
    } else {
        Path::new(url)
            .file_name()
            .map_or_else(|| "folder".to_owned(), |n| n.to_string_lossy().into_owned())
    }
}

/// Lower-case letters, digits and dashes: safe as an account, pair or folder name.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "sync".to_owned()
    } else {
        out.chars().take(48).collect()
    }
}

fn unique(base: &str, taken: &HashSet<String>) -> String {
    let mut name = base.to_owned();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// What Test connection answers when it could connect.
#[derive(Debug, Serialize)]
pub struct TestAnswer {
    pub message: String,
}

/// Connects and says plainly whether it works: a rejected password, an address that is not a
/// DAV server, a certificate problem and an unreachable server each get their sentence.
#[tauri::command]
pub async fn test_account(shell: State<'_, Shell>, name: String) -> Result<TestAnswer, String> {
    let (account, options) = account_with_options(&shell, name).await?;
    let message = match account.kind {
        StorageKind::Vdir => {
            let path = PathBuf::from(&account.url);
            if path.is_dir() {
                format!("The folder {} is there", account.url)
            } else {
                return Err(format!("{} is not a folder (any more)", account.url));
            }
        }
        StorageKind::Webcal => {
            let credentials = credentials_for(&shell, &account).await?;
            let calendar = Webcal::new(&account.url, &credentials).map_err(|e| e.to_string())?;
            let listing = calendar.changes(None).await.map_err(|e| explain(&e))?;
            format!(
                "Connected: the calendar has {} item(s)",
                listing.changed.len()
            )
        }
        StorageKind::Caldav | StorageKind::Carddav => {
            let credentials = credentials_for(&shell, &account).await?;
            let check = discovery::check_connection(&account.url, &credentials, &options).await;
            match check {
                ConnectionCheck::Connected { principal, .. } => {
                    format!("Connected: signed in as {principal}")
                }
                ConnectionCheck::WrongPassword { .. } => {
                    return Err("Wrong username or password: the server refused them".to_owned());
                }
                ConnectionCheck::CertificateProblem { detail } => {
                    return Err(format!(
                        "Certificate problem: the server's identity could not be checked ({detail})"
                    ));
                }
                ConnectionCheck::Unreachable { detail } => {
                    return Err(format!("Cannot reach the server: {detail}"));
                }
                ConnectionCheck::NotDav { detail } => {
                    return Err(format!(
                        "Not a CalDAV/CardDAV server, or not here: {detail}"
                    ));
                }
                ConnectionCheck::BadAddress { detail } => return Err(detail),
            }
        }
    };
    Ok(TestAnswer { message })
}

fn explain(error: &concord_core::sync::storage::StorageError) -> String {
    match error {
        concord_core::sync::storage::StorageError::Dav(dav) => explain_dav(dav),
        other => other.to_string(),
    }
}

fn explain_dav(error: &DavError) -> String {
    match error {
        DavError::Unauthorized { .. } => {
            "Wrong username or password: the server refused them".to_owned()
        }
        DavError::Request { .. } => {
            let text = error.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("certificate") || lower.contains("tls") {
                format!("Certificate problem: the server's identity could not be checked ({text})")
            } else {
                format!("Cannot reach the server: {text}")
            }
        }
        DavError::Status { .. } => format!("Not a CalDAV/CardDAV server, or not here: {error}"),
        DavError::Timeout { .. } => format!("The server did not answer: {error}"),
        _ => error.to_string(),
    }
}

async fn credentials_for(shell: &Shell, account: &Account) -> Result<Credentials, String> {
    let account = account.clone();
    shell
        .blocking(move |_| SystemKeyring.credentials(&account))
        .await
}

/// One collection an account offers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Collection {
    /// "calendar" or "address-book".
    pub kind: String,
    /// The collection's path on the server (or the URL or folder of a webcal/vdir account).
    pub href: String,
    pub display_name: Option<String>,
    pub color: Option<String>,
    /// What a calendar accepts ("VEVENT", "VTODO", "VJOURNAL"); empty for address books.
    #[serde(default)]
    pub components: Vec<String>,
}

/// An account and how discovery may reach it: plain http only to this machine or when the
/// person allowed it when adding the account; `CONCORD_NAMESERVER` picks the DNS server.
async fn account_with_options(
    shell: &Shell,
    name: String,
) -> Result<(Account, DiscoveryOptions), String> {
    shell
        .blocking(move |concord| {
            let conn = db(concord)?;
            let account = find_account(&conn, &name)?;
            // An http:// address was accepted only with the person's word (or for this machine),
            // also when an earlier version added it.
            let allow_http = mapping::allows_http(&conn, account.id).map_err(|e| e.to_string())?
                || account.url.starts_with("http://");
            Ok::<_, String>((account, DiscoveryOptions::from_env(allow_http)))
        })
        .await
}

/// The account's calendars and address books, each with its name, colour and what it holds
/// (a webcal or vdir account is one collection). What discovery finds is remembered.
#[tauri::command]
pub async fn discover_collections(
    shell: State<'_, Shell>,
    name: String,
) -> Result<Vec<Collection>, String> {
    let (account, options) = account_with_options(&shell, name).await?;
    if matches!(account.kind, StorageKind::Vdir | StorageKind::Webcal) {
        return Ok(vec![Collection {
            kind: "calendar".to_owned(),
            href: account.url.clone(),
            display_name: Some(account.name.clone()),
            color: None,
            components: Vec::new(),
        }]);
    }
    let credentials = credentials_for(&shell, &account).await?;
    let found =
        mapping::discover_account(shell.concord(), &account, &credentials, options.nameserver)
            .await
            .map_err(|e| explain_sync(&e))?;
    let origin = origin_of(&account.url);
    Ok(found
        .collections
        .into_iter()
        .map(|c| shown(c, &origin))
        .collect())
}

/// The calendars and address books discovery last found on a server account, without asking
/// the server (none before its first discovery); vanished ones are left out.
#[tauri::command]
pub async fn known_collections(
    shell: State<'_, Shell>,
    name: String,
) -> Result<Vec<Collection>, String> {
    shell
        .blocking(move |concord| {
            let conn = db(concord)?;
            let account = find_account(&conn, &name)?;
            if !matches!(account.kind, StorageKind::Caldav | StorageKind::Carddav) {
                return Ok::<_, String>(Vec::new());
            }
            let origin = origin_of(&account.url);
            Ok(mapping::stored_collections(&conn, account.id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|(_, gone_since)| gone_since.is_none())
                .map(|(c, _)| shown(c, &origin))
                .collect())
        })
        .await
}

/// A collection as the window shows it: its path on the account's server, or the whole URL
/// when discovery led elsewhere (a well-known redirect or a DNS SRV record naming another
/// host).
fn shown(c: discovery::Collection, origin: &str) -> Collection {
    Collection {
        kind: c.kind.as_str().to_owned(),
        href: match c.url.strip_prefix(origin) {
            Some(path) if path.starts_with('/') => path.to_owned(),
            _ => c.url.clone(),
        },
        display_name: c.display_name,
        color: c.color,
        components: c.components,
    }
}

/// `https://dav.example.com:8443/x/` -> `https://dav.example.com:8443`.
fn origin_of(url: &str) -> String {
    url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/")
}

fn explain_sync(error: &concord_core::sync::SyncError) -> String {
    match error {
        concord_core::sync::SyncError::Storage(storage) => explain(storage),
        other => other.to_string(),
    }
}

/// Removes an account with its pairs (their schedules stop) and its password. The synced
/// folders and the item history stay.
#[tauri::command]
pub async fn remove_account(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
) -> Result<(), String> {
    shell
        .blocking(move |concord| {
            let conn = db(concord)?;
            let account = find_account(&conn, &name)?;
            let pairs = pairs_of(&conn, account.id)?;
            let mapped: Vec<String> = mapping::mappings(&conn)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|m| m.account_id == account.id)
                .map(|m| m.name)
                .collect();
            for name in &mapped {
                let _ = concord
                    .engine()
                    .remove_schedule(&mapping::schedule_name(name));
            }
            if !state::remove_account(&conn, &name).map_err(|e| e.to_string())? {
                return Err(format!("There is no account named {name:?}"));
            }
            for pair in &pairs {
                let _ = concord.engine().remove_schedule(&run::schedule_name(pair));
            }
            if let Ok(secrets) = Secrets::system() {
                let _ = secrets.delete_password(&name);
            }
            Ok(())
        })
        .await?;
    let _ = shell.publish(&app).await;
    Ok(())
}

fn pairs_of(conn: &Connection, account_id: i64) -> Result<Vec<String>, String> {
    Ok(state::pairs(conn)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| p.a.account_id == Some(account_id) || p.b.account_id == Some(account_id))
        .map(|p| p.name)
        .collect())
}

// ---- pairs ---------------------------------------------------------------------------------

/// One side of a pair, as the Pairs page shows it.
#[derive(Debug, Serialize)]
pub struct PairSide {
    pub kind: StorageKind,
    pub location: String,
    pub display_name: Option<String>,
}

/// A pair with its last and next sync, counts and errors.
#[derive(Debug, Serialize)]
pub struct PairRow {
    pub id: i64,
    pub name: String,
    pub a: PairSide,
    pub b: PairSide,
    pub direction: Direction,
    pub conflict_policy: ConflictPolicy,
    /// Minutes between background syncs; None without a schedule (or with a cron one).
    pub every_minutes: Option<i64>,
    pub last_sync_at_ms: Option<i64>,
    /// When the schedule syncs it next; None without a schedule.
    pub next_sync_at_ms: Option<i64>,
    /// Its schedule is paused (by Pause, or because it waits for the person).
    pub paused: bool,
    /// Why its schedule waits for the person, if it does.
    pub attention: Option<String>,
    pub last_error: Option<String>,
    /// Why the pair stopped and asks (emptied side, mass deletion).
    pub stopped_reason: Option<String>,
    /// Items synced on both sides.
    pub items: i64,
    pub conflicts: usize,
    pub quarantined: usize,
}

fn side(s: &state::StorageConfig) -> PairSide {
    PairSide {
        kind: s.kind,
        location: s.location.clone(),
        display_name: s.display_name.clone(),
    }
}

fn pair_rows(concord: &Concord) -> Result<Vec<PairRow>, String> {
    let conn = db(concord)?;
    let pairs = state::pairs(&conn).map_err(|e| e.to_string())?;
    let schedules = concord.engine().schedules().map_err(|e| e.to_string())?;
    let quarantined = state::quarantined(&conn).map_err(|e| e.to_string())?;
    pairs
        .into_iter()
        .map(|pair: Pair| {
            let schedule = schedules
                .iter()
                .find(|s| s.schedule.name == run::schedule_name(&pair.name));
            Ok(PairRow {
                id: pair.id,
                a: side(&pair.a),
                b: side(&pair.b),
                direction: pair.direction,
                conflict_policy: pair.conflict_policy,
                every_minutes: schedule.and_then(|s| match s.schedule.cadence {
                    Cadence::Every { every_ms } => Some(every_ms / 60_000),
                    Cadence::Cron { .. } => None,
                }),
                last_sync_at_ms: pair.last_sync_at_ms,
                next_sync_at_ms: schedule.map(|s| s.next_fire_at_ms),
                paused: schedule.is_some_and(|s| s.paused),
                attention: schedule.and_then(|s| s.attention.clone()),
                last_error: pair.last_error,
                stopped_reason: pair.stopped_reason,
                items: state::synced_count(&conn, pair.id).map_err(|e| e.to_string())?,
                conflicts: state::conflicts(&conn, pair.id)
                    .map_err(|e| e.to_string())?
                    .len(),
                quarantined: quarantined.iter().filter(|q| q.pair == pair.name).count(),
                name: pair.name,
            })
        })
        .collect()
}

#[tauri::command]
pub async fn pairs(shell: State<'_, Shell>) -> Result<Vec<PairRow>, String> {
    shell.blocking(pair_rows).await
}

/// Pairs each chosen collection of `account` with a vdir folder: `folder` when one collection
/// is chosen, a sub-folder of it per collection when several, and by default a folder under
/// the data directory (`vdir/ACCOUNT/COLLECTION`). Each pair syncs every 15 minutes.
#[tauri::command]
pub async fn add_pairs(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    account: String,
    collections: Vec<Collection>,
    folder: Option<String>,
) -> Result<Vec<PairRow>, String> {
    if collections.is_empty() {
        return Err("Choose at least one collection to sync".to_owned());
    }
    let added = shell
        .blocking(move |concord| {
            let folder = folder.filter(|f| !f.trim().is_empty());
            make_pairs(concord, &account, &collections, folder.as_deref())
        })
        .await?;
    let _ = shell.publish(&app).await;
    let rows = shell.blocking(pair_rows).await?;
    Ok(rows.into_iter().filter(|r| added.contains(&r.id)).collect())
}

fn make_pairs(
    concord: &Concord,
    account_name: &str,
    collections: &[Collection],
    folder: Option<&str>,
) -> Result<Vec<i64>, String> {
    let conn = db(concord)?;
    let account = find_account(&conn, account_name)?;
    let mut taken: HashSet<String> = state::pairs(&conn)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let mut added = Vec::new();
    for collection in collections {
        let Chosen {
            kind,
            item_kind,
            location,
            label,
        } = chosen(&account, collection);
        let collection_slug = slug(&label);
        let dir = match folder {
            Some(folder) if collections.len() == 1 => {
                std::path::absolute(folder).map_err(|e| format!("{folder}: {e}"))?
            }
            Some(folder) => std::path::absolute(folder)
                .map_err(|e| format!("{folder}: {e}"))?
                .join(&collection_slug),
            None => concord
                .data_dir()
                .join(VDIR_FOLDER)
                .join(slug(&account.name))
                .join(&collection_slug),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("Cannot create the folder {}: {e}", dir.display()))?;
        let a = state::put_storage(
            &conn,
            Some(account.id),
            kind,
            item_kind,
            &location,
            Some(&label),
        )
        .map_err(|e| e.to_string())?;
        let b = state::put_storage(
            &conn,
            None,
            StorageKind::Vdir,
            item_kind,
            &dir.display().to_string(),
            None,
        )
        .map_err(|e| e.to_string())?;
        let name = unique(
            &format!("{}-{collection_slug}", slug(&account.name)),
            &taken,
        );
        // A webcal calendar is read-only: it only flows to the folder.
        let direction =
            pairs::default_direction(kind, StorageKind::Vdir).map_err(|e| capitalized(&e))?;
        let id = state::add_pair(&conn, &name, a, b, direction, state::ConflictPolicy::Ask)
            .map_err(|e| format!("Could not pair {label}: {e}"))?;
        run::schedule(concord.engine(), &name, SYNC_INTERVAL).map_err(|e| e.to_string())?;
        taken.insert(name);
        added.push(id);
    }
    Ok(added)
}

/// A chosen collection of an account as a storage: its kind, where it is, what it holds, and
/// the name to show.
struct Chosen {
    kind: StorageKind,
    item_kind: ItemKind,
    location: String,
    label: String,
}

impl Chosen {
    fn new_side(&self) -> pairs::NewSide<'_> {
        pairs::NewSide {
            kind: self.kind,
            item_kind: self.item_kind,
            location: &self.location,
            label: &self.label,
        }
    }
}

fn chosen(account: &Account, collection: &Collection) -> Chosen {
    let contacts = collection.kind == "address-book" || account.kind == StorageKind::Carddav;
    let item_kind = if contacts {
        ItemKind::Contact
    } else {
        ItemKind::Calendar
    };
    let (kind, location) = match account.kind {
        StorageKind::Caldav | StorageKind::Carddav => {
            let kind = if contacts {
                StorageKind::Carddav
            } else {
                StorageKind::Caldav
            };
            (kind, pairs::collection_url(account, &collection.href))
        }
        other => (other, account.url.clone()),
    };
    let label = collection
        .display_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| last_segment(&collection.href));
    Chosen {
        kind,
        item_kind,
        location,
        label,
    }
}

/// Core's sentences start in lower case (they follow a name on the command line); the window
/// shows them on their own.
fn capitalized(sentence: &str) -> String {
    let mut chars = sentence.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// One side of a pair between two accounts: an account and one of its collections (as
/// discovery listed it).
#[derive(Deserialize)]
pub struct PairEnd {
    pub account: String,
    pub collection: Collection,
}

/// Pairs a collection of one account with a collection of another (a calendar on one server
/// with a calendar on another, say), as `concord pair add --a ACCOUNT:COLLECTION --b
/// ACCOUNT:COLLECTION` does; it syncs every 15 minutes.
#[tauri::command]
pub async fn add_account_pair(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    a: PairEnd,
    b: PairEnd,
) -> Result<PairRow, String> {
    let id = shell
        .blocking(move |concord| pair_accounts(concord, &a, &b))
        .await?;
    let _ = shell.publish(&app).await;
    shell
        .blocking(pair_rows)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| "The pair was made but cannot be read back".to_owned())
}

fn pair_accounts(concord: &Concord, a: &PairEnd, b: &PairEnd) -> Result<i64, String> {
    let conn = db(concord)?;
    let account_a = find_account(&conn, &a.account)?;
    let account_b = find_account(&conn, &b.account)?;
    let side_a = chosen(&account_a, &a.collection);
    let side_b = chosen(&account_b, &b.collection);
    if let Some(problem) = pairs::pairing_problem(side_a.new_side(), side_b.new_side()) {
        return Err(capitalized(&problem));
    }
    let direction =
        pairs::default_direction(side_a.kind, side_b.kind).map_err(|e| capitalized(&e))?;
    let mut storages = Vec::new();
    for (account, side) in [(&account_a, &side_a), (&account_b, &side_b)] {
        storages.push(
            state::put_storage(
                &conn,
                Some(account.id),
                side.kind,
                side.item_kind,
                &side.location,
                Some(&side.label),
            )
            .map_err(|e| e.to_string())?,
        );
    }
    let taken: HashSet<String> = state::pairs(&conn)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let name = unique(
        &slug(&format!(
            "{} {} {}",
            account_a.name, side_a.label, account_b.name
        )),
        &taken,
    );
    let id = state::add_pair(
        &conn,
        &name,
        storages[0],
        storages[1],
        direction,
        ConflictPolicy::Ask,
    )
    .map_err(|e| format!("Could not pair {} with {}: {e}", side_a.label, side_b.label))?;
    run::schedule(concord.engine(), &name, SYNC_INTERVAL).map_err(|e| e.to_string())?;
    Ok(id)
}

// ---- all collections of an account ---------------------------------------------------------

/// An "all collections" mapping with its schedule, as the Accounts page shows it.
#[derive(Debug, Serialize)]
pub struct MappingRow {
    #[serde(flatten)]
    pub mapping: Mapping,
    /// When its schedule refreshes and syncs it next; None without a schedule.
    pub next_sync_at_ms: Option<i64>,
    /// Why its schedule waits for the person, if it does.
    pub attention: Option<String>,
}

fn mapping_rows(concord: &Concord) -> Result<Vec<MappingRow>, String> {
    let conn = db(concord)?;
    let schedules = concord.engine().schedules().map_err(|e| e.to_string())?;
    Ok(mapping::mappings(&conn)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|m| {
            let schedule = schedules
                .iter()
                .find(|s| s.schedule.name == mapping::schedule_name(&m.name));
            MappingRow {
                next_sync_at_ms: schedule.map(|s| s.next_fire_at_ms),
                attention: schedule.and_then(|s| s.attention.clone()),
                mapping: m,
            }
        })
        .collect())
}

#[tauri::command]
pub async fn mappings(shell: State<'_, Shell>) -> Result<Vec<MappingRow>, String> {
    shell.blocking(mapping_rows).await
}

/// Syncs every calendar and address book of a server account, each in its own folder under
/// `folder` (default: `vdir/ACCOUNT-all` under the data directory); collections made later are
/// paired at the next sync, which runs every 15 minutes. Lists the collections once now.
#[tauri::command]
pub async fn add_all_collections(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    account: String,
    folder: Option<String>,
) -> Result<MappingRow, String> {
    let name = shell
        .blocking(move |concord| {
            let folder = folder.filter(|f| !f.trim().is_empty());
            map_all(concord, &account, folder.as_deref())
        })
        .await?;
    // A failed listing is kept on the mapping (its last error) and tried again at each sync.
    let _ = mapping::refresh(shell.concord(), &name, &SystemKeyring).await;
    let _ = shell.publish(&app).await;
    shell
        .blocking(mapping_rows)
        .await?
        .into_iter()
        .find(|m| m.mapping.name == name)
        .ok_or_else(|| format!("{name} was made but cannot be read back"))
}

fn map_all(concord: &Concord, account_name: &str, folder: Option<&str>) -> Result<String, String> {
    let conn = db(concord)?;
    let account = find_account(&conn, account_name)?;
    if !matches!(account.kind, StorageKind::Caldav | StorageKind::Carddav) {
        return Err(format!(
            "{account_name} is one calendar or folder, not a server: choose it to sync instead"
        ));
    }
    let mut taken: HashSet<String> = state::pairs(&conn)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.name)
        .collect();
    taken.extend(
        mapping::mappings(&conn)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| m.name),
    );
    let name = unique(&format!("{}-all", slug(&account.name)), &taken);
    let dir = match folder {
        Some(folder) => std::path::absolute(folder).map_err(|e| format!("{folder}: {e}"))?,
        None => concord.data_dir().join(VDIR_FOLDER).join(&name),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("Cannot create the folder {}: {e}", dir.display()))?;
    mapping::add_mapping(
        &conn,
        &name,
        account.id,
        &dir,
        Direction::TwoWay,
        ConflictPolicy::Ask,
        SYNC_INTERVAL.as_secs() / 60,
    )
    .map_err(|e| format!("Could not keep {name}: {e}"))?;
    mapping::schedule(concord.engine(), &name, SYNC_INTERVAL).map_err(|e| e.to_string())?;
    Ok(name)
}

/// Sync now, all collections of an account: lists them (pairing new ones, reporting vanished
/// ones), then syncs each collection's pair as a durable run.
#[tauri::command]
pub async fn sync_mapping(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
) -> Result<MappingReport, String> {
    let concord = shell.concord().clone();
    let report = mapping::sync_mapping(&concord, &name, Arc::new(SystemKeyring), false)
        .await
        .map_err(|e| explain_sync(&e));
    let _ = shell.publish(&app).await;
    report
}

/// Stops syncing all collections of an account: the mapping, its pairs and its schedule go;
/// the folders, the collections and the item history stay.
#[tauri::command]
pub async fn remove_mapping(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
) -> Result<(), String> {
    shell
        .blocking(move |concord| {
            let conn = db(concord)?;
            if mapping::mapping(&conn, &name)
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("There is no {name:?} to remove"));
            }
            pairs::remove(concord, &name)
                .map(|_| ())
                .map_err(|e| capitalized(&e.to_string()))
        })
        .await?;
    let _ = shell.publish(&app).await;
    Ok(())
}

fn last_segment(href: &str) -> String {
    href.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(href)
        .to_owned()
}

/// Removes a pair and its schedule; both collections and the item history stay.
#[tauri::command]
pub async fn remove_pair(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
) -> Result<(), String> {
    shell
        .blocking(move |concord| {
            pairs::remove(concord, &name)
                .map(|_| ())
                .map_err(|e| capitalized(&e.to_string()))
        })
        .await?;
    let _ = shell.publish(&app).await;
    Ok(())
}

/// Background syncs are at least this many minutes apart...
pub const EVERY_MINUTES_MIN: u64 = 1;
/// ...and at most a week.
pub const EVERY_MINUTES_MAX: u64 = 7 * 24 * 60;

/// Changes how a pair syncs: which way changes flow, what happens when both sides change the
/// same property, and the minutes between background syncs.
#[tauri::command]
pub async fn set_pair(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
    direction: Direction,
    conflict_policy: ConflictPolicy,
    every_minutes: u64,
) -> Result<(), String> {
    if !(EVERY_MINUTES_MIN..=EVERY_MINUTES_MAX).contains(&every_minutes) {
        return Err(format!(
            "Sync every {every_minutes} minutes? Choose between {EVERY_MINUTES_MIN} minute and \
             {} days ({EVERY_MINUTES_MAX} minutes).",
            EVERY_MINUTES_MAX / (24 * 60)
        ));
    }
    shell
        .blocking(move |concord| {
            let conn = db(concord)?;
            let pair = state::pair(&conn, &name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("There is no pair named {name:?}"))?;
            if let Some(side) = pair.unwritable_side(direction) {
                return Err(format!(
                    "Side {} of {name} is a webcal calendar, which is read-only: changes can \
                     only flow from it.",
                    side.as_str().to_uppercase()
                ));
            }
            state::set_pair_options(&conn, &name, direction, conflict_policy)
                .map_err(|e| e.to_string())?;
            run::schedule(
                concord.engine(),
                &name,
                Duration::from_secs(every_minutes * 60),
            )
            .map_err(|e| e.to_string())
        })
        .await?;
    let _ = shell.publish(&app).await;
    Ok(())
}

/// Sync now, one pair: runs its sync as a durable run and waits for it (up to a minute; a
/// longer one goes on in the background). A stopped pair's report says why it stopped;
/// `allow_deletes` is the person's go-ahead past that stop, for this run only.
#[tauri::command]
pub async fn sync_pair(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
    allow_deletes: Option<bool>,
) -> Result<Report, String> {
    let concord = shell.concord().clone();
    let allow_deletes = allow_deletes.unwrap_or(false);
    let report = sync_durably(&concord, &name, Arc::new(SystemKeyring), allow_deletes)
        .await
        .map_err(|e| e.to_string());
    let _ = shell.publish(&app).await;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_unique() {
        assert_eq!(slug("Work Calendar (2)"), "work-calendar-2");
        assert_eq!(slug("../.."), "sync");
        let taken = HashSet::from(["dav-work".to_owned()]);
        assert_eq!(unique("dav-work", &taken), "dav-work-2");
        assert_eq!(
            default_name("https://user@dav.example.com:8443/x"),
            "dav.example.com"
        );
    }

    #[test]
    fn plain_http_is_allowed_only_to_this_machine() {
        assert!(is_this_machine("http://127.0.0.1:5232/"));
        assert!(is_this_machine("http://localhost/dav"));
        assert!(!is_this_machine("http://dav.example.com/"));
        assert!(!is_this_machine("http://localhost.evil.example/"));
    }

    #[test]
    fn a_collection_is_named_by_its_last_segment() {
        assert_eq!(last_segment("/user/calendar/"), "calendar");
    }

    #[test]
    fn a_discovered_collection_becomes_the_storage_of_its_kind() {
        let account = Account {
            id: 1,
            name: "work".to_owned(),
            kind: StorageKind::Caldav,
            url: "https://dav.example.com/".to_owned(),
            username: Some("ada".to_owned()),
        };
        let book = Collection {
            kind: "address-book".to_owned(),
            href: "/ada/contacts/".to_owned(),
            display_name: None,
            color: None,
            components: Vec::new(),
        };
        let side = chosen(&account, &book);
        assert_eq!(side.kind, StorageKind::Carddav);
        assert_eq!(side.item_kind, ItemKind::Contact);
        assert_eq!(side.location, "https://dav.example.com/ada/contacts/");
        assert_eq!(side.label, "contacts");
        let elsewhere = Collection {
            kind: "calendar".to_owned(),
            href: "https://other.example/cal/home/".to_owned(),
            display_name: Some("Home".to_owned()),
            ..book
        };
        let side = chosen(&account, &elsewhere);
        assert_eq!(side.kind, StorageKind::Caldav);
        assert_eq!(side.location, "https://other.example/cal/home/");
        assert_eq!(side.label, "Home");
    }

    /// A fresh data directory, removed on drop.
    struct DataDir(PathBuf);

    impl Drop for DataDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fresh(test: &str) -> (DataDir, Concord) {
        let dir = std::env::temp_dir().join(format!("concord-app-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let concord = Concord::open(&dir).expect("open a fresh data directory");
        (DataDir(dir), concord)
    }

    fn server(url: &str, insecure_http: bool) -> NewAccount {
        NewAccount {
            name: String::new(),
            kind: StorageKind::Caldav,
            url: url.to_owned(),
            username: None,
            password: None,
            insecure_http,
        }
    }

    #[test]
    fn a_server_is_added_from_a_host_or_user_at_domain() {
        let (_dir, concord) = fresh("add");
        let added = add(&concord, server("ada@example.com", false)).expect("add by user@domain");
        assert_eq!(added.url, "https://example.com/");
        assert_eq!(added.username.as_deref(), Some("ada@example.com"));
        assert_eq!(added.name, "example-com");
        let added = add(&concord, server("dav.example.org", false)).expect("add by host");
        assert_eq!(added.url, "https://dav.example.org/");
        assert_eq!(added.username, None);
        let local = add(&concord, server("127.0.0.1:5232", false)).expect("this machine");
        assert_eq!(local.url, "http://127.0.0.1:5232/");
    }

    #[test]
    fn plain_http_to_another_machine_needs_the_persons_word() {
        let (_dir, concord) = fresh("http");
        let refused = add(&concord, server("http://dav.example.com/", false))
            .expect_err("plain http refused");
        assert!(refused.contains("plain http"), "{refused}");
        let added = add(&concord, server("http://dav.example.com/", true)).expect("allowed");
        let conn = db(&concord).expect("connect");
        assert!(mapping::allows_http(&conn, added.id).expect("read the account"));
    }
}
