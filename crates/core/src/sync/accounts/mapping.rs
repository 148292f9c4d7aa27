//! "All collections" of an account, each kept in its own folder under one directory (the
//! vdirsyncer `collections = from a` layout): every refresh discovers the account's calendars
//! and address books, pairs each new one with `DIR/<safe name>`, and reports (never deletes
//! data for) one that vanished. Also remembering what discovery saw of an account; the
//! mappings and what discovery saw are kept by `state::mapping`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use concord_durable::{Ctx, Engine, StepError, Workflow};
use rusqlite::{Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::discovery::{
    self, AccountDiscovery, Collection, CollectionKind, DiscoveryError, DiscoveryOptions,
    ServiceFound,
};
use crate::Concord;
use crate::sync::SyncError;
use crate::sync::item::ItemKind;
use crate::sync::run::{self, SYNC_WORKFLOW};
use crate::sync::state::mapping as stored;
use crate::sync::state::{self, Account, StorageKind, now_ms};
use crate::sync::storage::{CredentialSource, StorageError};

pub use crate::sync::state::mapping::{MappedPair, Mapping};

/// The durable workflow kind of a mapping's refresh (discover, pair new, start their syncs).
pub const MAPPING_WORKFLOW: &str = "sync-collections";
/// The longest folder name made from a collection's name.
pub const FOLDER_NAME_CHARS_MAX: usize = 64;

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
    stored::set_services(&tx, account_id, &services)?;
    let now = now_ms();
    for c in &found.collections {
        stored::put_collection(&tx, account_id, c, now)?;
    }
    let listed: BTreeSet<&str> = found.collections.iter().map(|c| c.url.as_str()).collect();
    let known = stored::present_collection_urls(&tx, account_id)?;
    for url in known.iter().filter(|u| !listed.contains(u.as_str())) {
        stored::mark_collection_gone(&tx, account_id, url, now)?;
    }
    tx.commit()
}

/// The services discovery found last time (home sets), if it ran.
pub fn stored_services(conn: &Connection, account_id: i64) -> rusqlite::Result<Vec<ServiceFound>> {
    Ok(stored::services(conn, account_id)?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
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
        allow_http: stored::allows_http(&conn, account.id)?,
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
            stored::allows_http(&conn, account.id)?,
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
        stored::mapping(&conn, name)?.ok_or_else(|| SyncError::NoSuchPair(name.to_owned()))?
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
            stored::set_refresh_failed(&conn, m.id, &err.to_string())?;
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
                stored::set_pair_collection_gone(&tx, &p.pair, None)?;
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
        stored::set_pair_mapping(&tx, id, m.id)?;
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
            stored::set_pair_collection_gone(&tx, &p.pair, Some(now))?;
        }
        out.gone.push(format!(
            "{}: the collection {} is gone from the server; it no longer syncs, and its folder {} \
             is kept as it was",
            p.pair, p.collection_url, p.folder
        ));
    }
    stored::set_refreshed(&tx, m.id, now)?;
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
