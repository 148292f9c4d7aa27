//! "All collections" of an account, each kept in its own folder under one directory (the
//! vdirsyncer `collections = from a` layout): every refresh discovers the account's calendars
//! and address books, pairs each new one with `DIR/<safe name>`, and reports (never deletes
//! data for) one that vanished. Also what discovery last saw of an account's collections.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use concord_durable::{Ctx, Engine, StepError, Workflow};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::discovery::{
    self, AccountDiscovery, Collection, CollectionKind, DiscoveryError, DiscoveryOptions,
    ServiceFound,
};
use crate::Concord;
use crate::sync::SyncError;
use crate::sync::item::ItemKind;
use crate::sync::run::{self, SYNC_WORKFLOW};
use crate::sync::state::{self, Account, ConflictPolicy, Direction, StorageKind, now_ms};
use crate::sync::storage::{CredentialSource, StorageError};

/// The durable workflow kind of a mapping's refresh (discover, pair new, start their syncs).
pub const MAPPING_WORKFLOW: &str = "sync-collections";
/// The longest folder name made from a collection's name.
pub const FOLDER_NAME_CHARS_MAX: usize = 64;

/// An account's collections mapped into one directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    pub id: i64,
    pub name: String,
    pub account: String,
    pub account_id: i64,
    pub folder: String,
    pub direction: Direction,
    pub conflict_policy: ConflictPolicy,
    pub every_minutes: i64,
    pub last_refresh_at_ms: Option<i64>,
    pub last_error: Option<String>,
    /// One pair per collection discovery has seen.
    pub pairs: Vec<MappedPair>,
}

/// One collection of a mapping and its pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedPair {
    pub pair: String,
    pub collection_url: String,
    pub folder: String,
    /// When the collection vanished from the server; its pair no longer syncs, its folder stays.
    pub gone_since_ms: Option<i64>,
}

/// What one refresh changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    pub mapping: String,
    /// Pairs made for collections seen for the first time.
    pub created: Vec<String>,
    /// Pairs whose collection vanished, with a sentence each.
    pub gone: Vec<String>,
    /// Pairs that sync (their collection is there).
    pub active: Vec<String>,
}

// ---- stored collections --------------------------------------------------------------------

/// Remembers what discovery found: the services (home sets) on the account, and every
/// collection, marking the ones not listed any more as gone.
pub fn store_discovery(
    conn: &mut Connection,
    account_id: i64,
    found: &AccountDiscovery,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let services = serde_json::to_string(&found.services).unwrap_or_else(|_| "[]".to_owned());
    tx.execute(
        "UPDATE accounts SET discovery = ?2 WHERE id = ?1",
        params![account_id, services],
    )?;
    let now = now_ms();
    for c in &found.collections {
        tx.execute(
            "INSERT INTO account_collections (account_id, url, kind, display_name, color,
               components, first_seen_ms, last_seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (account_id, url) DO UPDATE SET kind = excluded.kind,
               display_name = excluded.display_name, color = excluded.color,
               components = CASE WHEN excluded.components = '' THEN components
                            ELSE excluded.components END,
               last_seen_ms = excluded.last_seen_ms, gone_since_ms = NULL",
            params![
                account_id,
                c.url,
                c.kind.as_str(),
                c.display_name,
                c.color,
                c.components.join(","),
                now
            ],
        )?;
    }
    let listed: BTreeSet<&str> = found.collections.iter().map(|c| c.url.as_str()).collect();
    let known: Vec<String> = tx
        .prepare(
            "SELECT url FROM account_collections WHERE account_id = ?1 AND gone_since_ms IS NULL",
        )?
        .query_map([account_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for url in known.iter().filter(|u| !listed.contains(u.as_str())) {
        tx.execute(
            "UPDATE account_collections SET gone_since_ms = ?3 WHERE account_id = ?1 AND url = ?2",
            params![account_id, url, now],
        )?;
    }
    tx.commit()
}

/// The collections discovery has seen on an account (gone ones included), by URL.
pub fn stored_collections(
    conn: &Connection,
    account_id: i64,
) -> rusqlite::Result<Vec<(Collection, Option<i64>)>> {
    let mut stmt = conn.prepare(
        "SELECT url, kind, display_name, color, components, gone_since_ms
         FROM account_collections WHERE account_id = ?1 ORDER BY url",
    )?;
    let rows = stmt.query_map([account_id], |r| {
        let kind: String = r.get(1)?;
        let components: String = r.get(4)?;
        Ok((
            Collection {
                url: r.get(0)?,
                kind: CollectionKind::parse(&kind).unwrap_or(CollectionKind::Calendar),
                display_name: r.get(2)?,
                color: r.get(3)?,
                components: components
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                supports_sync: true,
            },
            r.get(5)?,
        ))
    })?;
    rows.collect()
}

/// The services discovery found last time (home sets), if it ran.
pub fn stored_services(conn: &Connection, account_id: i64) -> rusqlite::Result<Vec<ServiceFound>> {
    let text: Option<String> = conn
        .query_row(
            "SELECT discovery FROM accounts WHERE id = ?1",
            [account_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// Whether the person allowed plain http for this account.
pub fn allows_http(conn: &Connection, account_id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT allow_http FROM accounts WHERE id = ?1",
        [account_id],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.unwrap_or(0) != 0)
}

pub fn set_allows_http(conn: &Connection, account_id: i64, allow: bool) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE accounts SET allow_http = ?2 WHERE id = ?1",
        params![account_id, i64::from(allow)],
    )?;
    Ok(())
}

/// Discovers an account's collections (from its address) and remembers them.
pub async fn discover_account(
    concord: &Concord,
    account: &Account,
    credentials: &dyn CredentialSource,
    nameserver: Option<std::net::SocketAddr>,
) -> Result<AccountDiscovery, SyncError> {
    let mut conn = concord.database().connect()?;
    let options = DiscoveryOptions {
        allow_http: allows_http(&conn, account.id)?,
        nameserver,
        skip_components: false,
    };
    let creds = credentials.credentials(account)?;
    let found = discovery::discover(&account.url, &creds, &options)
        .await
        .map_err(discovery_error)?;
    store_discovery(&mut conn, account.id, &found)?;
    Ok(found)
}

fn discovery_error(err: DiscoveryError) -> SyncError {
    match err {
        DiscoveryError::Dav(err) => SyncError::Storage(StorageError::Dav(err)),
        other => SyncError::Storage(StorageError::Invalid(other.to_string())),
    }
}

/// The collections now on the account: its stored home sets listed again (one PROPFIND each),
/// or a full discovery when there are none or they fail.
async fn current_collections(
    concord: &Concord,
    account: &Account,
    credentials: &dyn CredentialSource,
) -> Result<AccountDiscovery, SyncError> {
    let (services, allow_http) = {
        let conn = concord.database().connect()?;
        (
            stored_services(&conn, account.id)?,
            allows_http(&conn, account.id)?,
        )
    };
    if !services.is_empty() {
        let creds = credentials.credentials(account)?;
        let options = DiscoveryOptions {
            allow_http,
            nameserver: None,
            skip_components: true,
        };
        let mut collections = Vec::new();
        let mut failed = None;
        'services: for service in &services {
            for home in &service.home_sets {
                match discovery::list_collections(service.service, home, &creds, &options).await {
                    Ok(found) => collections.extend(found),
                    Err(err @ crate::dav::DavError::Unauthorized { .. }) => {
                        return Err(SyncError::Storage(StorageError::Dav(err)));
                    }
                    Err(err) => {
                        failed = Some(err);
                        break 'services;
                    }
                }
            }
        }
        if failed.is_none() {
            let found = AccountDiscovery {
                username_hint: None,
                services,
                collections,
            };
            let mut conn = concord.database().connect()?;
            store_discovery(&mut conn, account.id, &found)?;
            return Ok(found);
        }
    }
    discover_account(
        concord,
        account,
        credentials,
        DiscoveryOptions::from_env(allow_http).nameserver,
    )
    .await
}

// ---- mappings ------------------------------------------------------------------------------

pub fn add_mapping(
    conn: &Connection,
    name: &str,
    account_id: i64,
    folder: &Path,
    direction: Direction,
    conflict_policy: ConflictPolicy,
    every_minutes: u64,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO collection_mappings (name, account_id, folder, direction, conflict_policy,
           every_minutes, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            name,
            account_id,
            folder.display().to_string(),
            direction.as_str(),
            conflict_policy.as_str(),
            i64::try_from(every_minutes).unwrap_or(i64::MAX),
            now_ms()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn mappings(conn: &Connection) -> rusqlite::Result<Vec<Mapping>> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM collection_mappings ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for name in names {
        if let Some(m) = mapping(conn, &name)? {
            out.push(m);
        }
    }
    Ok(out)
}

pub fn mapping(conn: &Connection, name: &str) -> rusqlite::Result<Option<Mapping>> {
    let found = conn
        .query_row(
            "SELECT m.id, m.name, a.name, m.account_id, m.folder, m.direction, m.conflict_policy,
               m.every_minutes, m.last_refresh_at_ms, m.last_error
             FROM collection_mappings m JOIN accounts a ON a.id = m.account_id WHERE m.name = ?1",
            [name],
            |r| {
                let direction: String = r.get(5)?;
                let policy: String = r.get(6)?;
                Ok(Mapping {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    account: r.get(2)?,
                    account_id: r.get(3)?,
                    folder: r.get(4)?,
                    direction: Direction::parse(&direction).unwrap_or(Direction::TwoWay),
                    conflict_policy: ConflictPolicy::parse(&policy).unwrap_or(ConflictPolicy::Ask),
                    every_minutes: r.get(7)?,
                    last_refresh_at_ms: r.get(8)?,
                    last_error: r.get(9)?,
                    pairs: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut m) = found else {
        return Ok(None);
    };
    let mut stmt = conn.prepare(
        "SELECT p.name, sa.location, sb.location, p.collection_gone_since_ms
         FROM pairs p JOIN storages sa ON sa.id = p.a_storage_id
           JOIN storages sb ON sb.id = p.b_storage_id
         WHERE p.mapping_id = ?1 ORDER BY p.name",
    )?;
    m.pairs = stmt
        .query_map([m.id], |r| {
            Ok(MappedPair {
                pair: r.get(0)?,
                collection_url: r.get(1)?,
                folder: r.get(2)?,
                gone_since_ms: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(m))
}

/// Removes a mapping and its pairs (folders, collections and item history stay).
pub fn remove_mapping(conn: &Connection, name: &str) -> rusqlite::Result<Vec<String>> {
    let pairs = mapping(conn, name)?
        .map(|m| m.pairs.into_iter().map(|p| p.pair).collect())
        .unwrap_or_default();
    conn.execute("DELETE FROM collection_mappings WHERE name = ?1", [name])?;
    Ok(pairs)
}

/// A folder name for a collection that cannot escape the directory: its name with anything
/// but letters, digits and `-_.@+=` made `_`, never starting with a dot.
pub fn folder_name(collection: &Collection) -> String {
    let name: String = collection
        .name()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.@+=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(FOLDER_NAME_CHARS_MAX)
        .collect();
    let name = name.trim_start_matches('.').to_owned();
    if name.is_empty() {
        crate::sync::item::sha256_hex(collection.url.as_bytes())
            .chars()
            .take(16)
            .collect()
    } else {
        name
    }
}

/// Discovers the mapping's collections, pairs each new one with its own folder, and marks
/// the pairs of vanished ones (their folders and items stay).
pub async fn refresh(
    concord: &Concord,
    name: &str,
    credentials: &dyn CredentialSource,
) -> Result<Refresh, SyncError> {
    let m = {
        let conn = concord.database().connect()?;
        mapping(&conn, name)?.ok_or_else(|| SyncError::NoSuchPair(name.to_owned()))?
    };
    let account = {
        let conn = concord.database().connect()?;
        state::account_by_id(&conn, m.account_id)?
            .ok_or_else(|| SyncError::NoSuchPair(name.to_owned()))?
    };
    let found = match current_collections(concord, &account, credentials).await {
        Ok(found) => found,
        Err(err) => {
            let conn = concord.database().connect()?;
            conn.execute(
                "UPDATE collection_mappings SET last_error = ?2 WHERE id = ?1",
                params![m.id, err.to_string()],
            )?;
            return Err(err);
        }
    };
    let mut conn = concord.database().connect()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Refresh {
        mapping: name.to_owned(),
        ..Refresh::default()
    };
    let existing: BTreeMap<String, MappedPair> = m
        .pairs
        .iter()
        .map(|p| (p.collection_url.clone(), p.clone()))
        .collect();
    let mut taken: BTreeSet<String> = m
        .pairs
        .iter()
        .filter_map(|p| {
            Path::new(&p.folder)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .collect();
    let listed: BTreeSet<&str> = found.collections.iter().map(|c| c.url.as_str()).collect();
    for c in &found.collections {
        if let Some(p) = existing.get(&c.url) {
            if p.gone_since_ms.is_some() {
                tx.execute(
                    "UPDATE pairs SET collection_gone_since_ms = NULL WHERE name = ?1",
                    [&p.pair],
                )?;
            }
            out.active.push(p.pair.clone());
            continue;
        }
        let base = folder_name(c);
        let mut folder_name = base.clone();
        let mut n = 2;
        while taken.contains(&folder_name) {
            folder_name = format!("{base}-{n}");
            n += 1;
        }
        taken.insert(folder_name.clone());
        let (storage_kind, item_kind) = match c.kind {
            CollectionKind::Calendar => (StorageKind::Caldav, ItemKind::Calendar),
            CollectionKind::AddressBook => (StorageKind::Carddav, ItemKind::Contact),
        };
        let folder = Path::new(&m.folder).join(&folder_name);
        let a = state::put_storage(&tx, Some(account.id), storage_kind, item_kind, &c.url, None)?;
        let b = state::put_storage(
            &tx,
            None,
            StorageKind::Vdir,
            item_kind,
            &folder.display().to_string(),
            None,
        )?;
        let pair_name = format!("{name}/{folder_name}");
        let id = state::add_pair(&tx, &pair_name, a, b, m.direction, m.conflict_policy)?;
        tx.execute(
            "UPDATE pairs SET mapping_id = ?2 WHERE id = ?1",
            params![id, m.id],
        )?;
        out.created.push(pair_name.clone());
        out.active.push(pair_name);
    }
    let now = now_ms();
    for p in m
        .pairs
        .iter()
        .filter(|p| !listed.contains(p.collection_url.as_str()))
    {
        if p.gone_since_ms.is_none() {
            tx.execute(
                "UPDATE pairs SET collection_gone_since_ms = ?2 WHERE name = ?1",
                params![p.pair, now],
            )?;
        }
        out.gone.push(format!(
            "{}: the collection {} is gone from the server; it no longer syncs, and its folder {} \
             is kept as it was",
            p.pair, p.collection_url, p.folder
        ));
    }
    tx.execute(
        "UPDATE collection_mappings SET last_refresh_at_ms = ?2, last_error = NULL WHERE id = ?1",
        params![m.id, now],
    )?;
    tx.commit()?;
    Ok(out)
}

/// What syncing a mapping did: the refresh, then each collection's pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MappingReport {
    pub refresh: Refresh,
    pub reports: Vec<run::Report>,
    pub errors: Vec<String>,
}

/// Refreshes a mapping, then syncs each of its collections' pairs (durably, here).
pub async fn sync_mapping(
    concord: &Concord,
    name: &str,
    credentials: Arc<dyn CredentialSource>,
    allow_deletes: bool,
) -> Result<MappingReport, SyncError> {
    let refresh = refresh(concord, name, credentials.as_ref()).await?;
    let mut out = MappingReport {
        refresh,
        ..MappingReport::default()
    };
    for pair in out.refresh.active.clone() {
        match run::sync_durably(concord, &pair, credentials.clone(), allow_deletes).await {
            Ok(report) => out.reports.push(report),
            Err(err) => out.errors.push(format!("{pair}: {err}")),
        }
    }
    Ok(out)
}

/// The schedule of a mapping: refresh and start its pairs' syncs every `every`.
pub fn schedule(engine: &Engine, name: &str, every: Duration) -> Result<(), SyncError> {
    let schedule = concord_durable::Schedule::every(
        &schedule_name(name),
        MAPPING_WORKFLOW,
        every,
        serde_json::json!({ "mapping": name }),
    );
    engine.put_schedule(&schedule)?;
    Ok(())
}

pub fn schedule_name(name: &str) -> String {
    format!("{MAPPING_WORKFLOW}:{name}")
}

/// The durable workflow behind a mapping's schedule: one checkpointed refresh, then one
/// `sync-pair` run started per collection (each its own durable run).
pub fn workflow(concord: Concord, credentials: Arc<dyn CredentialSource>) -> Workflow {
    Workflow::new(MAPPING_WORKFLOW, move |ctx: Ctx| {
        let concord = concord.clone();
        let credentials = credentials.clone();
        async move {
            #[derive(Deserialize)]
            struct Input {
                mapping: String,
            }
            let input: Input = ctx.input_as()?;
            let refreshed = ctx
                .step("refresh", || async {
                    refresh(&concord, &input.mapping, credentials.as_ref())
                        .await
                        .map_err(StepError::from)
                })
                .await?;
            for pair in &refreshed.active {
                let key = format!("{SYNC_WORKFLOW}:{pair}");
                concord
                    .engine()
                    .start(SYNC_WORKFLOW, &key, serde_json::json!({ "pair": pair }))
                    .map_err(|err| StepError::transient(err.to_string()))?;
            }
            serde_json::to_value(&refreshed).map_err(|err| StepError::permanent(err.to_string()))
        }
    })
}
