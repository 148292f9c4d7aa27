//! The Accounts and Pairs pages' commands: accounts (add from a host, URL, `user@domain`,
//! webcal URL or folder; test; discover; remove), pairs (with a folder, or between collections
//! of two accounts; list, settings, remove, sync now) and "all collections" mappings (add,
//! list, sync now, remove). Each is one call of core's operations (`Concord::add_account`,
//! `Concord::add_pair`, ...), the same the `concord` command makes; errors cross as
//! `{kind, message}`.

use std::path::PathBuf;

use concord_core::Concord;
use concord_core::OpError;
use concord_core::ops::{MappingRow, NewAccount, NewPair, PairRow, PairSettings, SideSpec};
use concord_core::sync::Report;
use concord_core::sync::accounts::discovery;
use concord_core::sync::accounts::mapping::MappingReport;
use concord_core::sync::state::{Account, ConflictPolicy, Direction};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, State, Wry};

use crate::shell::Shell;

// ---- accounts ------------------------------------------------------------------------------

#[tauri::command]
pub async fn accounts(shell: State<'_, Shell>) -> Result<Vec<Account>, OpError> {
    shell.op(|concord| concord.accounts()).await
}

/// Adds an account; its password goes to the keyring, never the database.
#[tauri::command]
pub async fn add_account(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    account: NewAccount,
) -> Result<Account, OpError> {
    let added = shell
        .op(move |concord| concord.add_account(account))
        .await?;
    let _ = shell.publish(&app).await;
    Ok(added)
}

/// What Test connection answers when it could connect.
#[derive(Debug, Serialize)]
pub struct TestAnswer {
    pub message: String,
}

/// Connects and says plainly whether it works: a rejected password, an address that is not a
/// DAV server, a certificate problem and an unreachable server each get their sentence.
#[tauri::command]
pub async fn test_account(shell: State<'_, Shell>, name: String) -> Result<TestAnswer, OpError> {
    let test = shell.concord().test_account(&name).await?;
    if test.ok {
        Ok(TestAnswer {
            message: test.message,
        })
    } else {
        Err(OpError::Invalid(test.message))
    }
}

/// One collection an account offers, as the window shows it.
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

/// The account's calendars and address books, each with its name, colour and what it holds
/// (a webcal or vdir account is one collection). What discovery finds is remembered.
#[tauri::command]
pub async fn discover_collections(
    shell: State<'_, Shell>,
    name: String,
) -> Result<Vec<Collection>, OpError> {
    let found = shell.concord().discover(&name).await?;
    let account = shell.op(move |concord| concord.account(&name)).await?;
    Ok(shown_all(found.collections, &account))
}

/// The calendars and address books discovery last found on a server account, without asking
/// the server (none before its first discovery); vanished ones are left out.
#[tauri::command]
pub async fn known_collections(
    shell: State<'_, Shell>,
    name: String,
) -> Result<Vec<Collection>, OpError> {
    shell
        .op(move |concord| {
            let account = concord.account(&name)?;
            Ok(shown_all(concord.known_collections(&name)?, &account))
        })
        .await
}

/// Collections as the window shows them: their path on the account's server, or the whole URL
/// when discovery led elsewhere (a well-known redirect or a DNS SRV record naming another
/// host).
fn shown_all(collections: Vec<discovery::Collection>, account: &Account) -> Vec<Collection> {
    let origin = origin_of(&account.url);
    collections
        .into_iter()
        .map(|c| Collection {
            kind: c.kind.as_str().to_owned(),
            href: match c.url.strip_prefix(&origin) {
                Some(path) if path.starts_with('/') && !origin.is_empty() => path.to_owned(),
                _ => c.url.clone(),
            },
            display_name: c.display_name,
            color: c.color,
            components: c.components,
        })
        .collect()
}

/// `https://dav.example.com:8443/x/` -> `https://dav.example.com:8443`; empty for a folder.
fn origin_of(url: &str) -> String {
    if !url.contains("://") {
        return String::new();
    }
    url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/")
}

/// Removes an account with its pairs (their schedules stop) and its password. The synced
/// folders and the item history stay.
#[tauri::command]
pub async fn remove_account(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
) -> Result<(), OpError> {
    shell
        .op(move |concord| concord.remove_account(&name).map(drop))
        .await?;
    let _ = shell.publish(&app).await;
    Ok(())
}

// ---- pairs ---------------------------------------------------------------------------------

#[tauri::command]
pub async fn pairs(shell: State<'_, Shell>) -> Result<Vec<PairRow>, OpError> {
    shell.op(|concord| concord.pair_rows()).await
}

/// The rows of the pairs named, as the window lists them.
fn rows_of(concord: &Concord, names: &[String]) -> Result<Vec<PairRow>, OpError> {
    Ok(concord
        .pair_rows()?
        .into_iter()
        .filter(|r| names.contains(&r.name))
        .collect())
}

/// Pairs each chosen collection of `account` with a vdir folder: `folder` when one collection
/// is chosen, a sub-folder of it per collection when several, and by default a folder under
/// the data directory. Each syncs at once, then every 15 minutes.
#[tauri::command]
pub async fn add_pairs(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    account: String,
    collections: Vec<Collection>,
    folder: Option<String>,
) -> Result<Vec<PairRow>, OpError> {
    let rows = shell
        .op(move |concord| {
            let folder = folder.filter(|f| !f.trim().is_empty()).map(PathBuf::from);
            let hrefs: Vec<String> = collections.into_iter().map(|c| c.href).collect();
            let added = concord.add_folder_pairs(&account, &hrefs, folder.as_deref())?;
            let names: Vec<String> = added.into_iter().map(|p| p.name).collect();
            rows_of(concord, &names)
        })
        .await?;
    let _ = shell.publish(&app).await;
    Ok(rows)
}

/// One side of a pair between two accounts: an account and one of its collections (as
/// discovery listed it).
#[derive(Deserialize)]
pub struct PairEnd {
    pub account: String,
    pub collection: Collection,
}

impl PairEnd {
    fn side(self) -> SideSpec {
        SideSpec::Collection {
            account: self.account,
            collection: self.collection.href,
        }
    }
}

/// Pairs a collection of one account with a collection of another (a calendar on one server
/// with a calendar on another, say), as `concord pair add --a ACCOUNT:COLLECTION --b
/// ACCOUNT:COLLECTION` does; it syncs at once, then every 15 minutes.
#[tauri::command]
pub async fn add_account_pair(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    a: PairEnd,
    b: PairEnd,
) -> Result<PairRow, OpError> {
    let row = shell
        .op(move |concord| {
            let pair = concord.add_pair(NewPair {
                name: None,
                a: a.side(),
                b: b.side(),
                direction: None,
                conflicts: ConflictPolicy::Ask,
                every_minutes: None,
            })?;
            rows_of(concord, &[pair.name])?
                .pop()
                .ok_or_else(|| OpError::Invalid("the pair was made but cannot be read back".into()))
        })
        .await?;
    let _ = shell.publish(&app).await;
    Ok(row)
}

/// Removes a pair and its schedule; both collections and the item history stay.
#[tauri::command]
pub async fn remove_pair(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
) -> Result<(), OpError> {
    shell
        .op(move |concord| concord.remove_pair(&name).map(drop))
        .await?;
    let _ = shell.publish(&app).await;
    Ok(())
}

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
) -> Result<(), OpError> {
    let settings = PairSettings {
        direction,
        conflicts: conflict_policy,
        every_minutes,
    };
    shell
        .op(move |concord| concord.set_pair(&name, settings))
        .await?;
    let _ = shell.publish(&app).await;
    Ok(())
}

/// Sync now, one pair: runs its sync and waits for it (up to a minute; a longer one goes on in
/// the background). A stopped pair's report says why it stopped; `allow_deletes` is the
/// person's go-ahead past that stop, for this run only.
#[tauri::command]
pub async fn sync_pair(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
    allow_deletes: Option<bool>,
) -> Result<Report, OpError> {
    let concord = shell.concord().clone();
    let report = concord
        .sync_one(&name, allow_deletes.unwrap_or(false))
        .await;
    let _ = shell.publish(&app).await;
    report
}

// ---- all collections of an account ---------------------------------------------------------

#[tauri::command]
pub async fn mappings(shell: State<'_, Shell>) -> Result<Vec<MappingRow>, OpError> {
    shell.op(|concord| concord.mapping_rows()).await
}

/// Syncs every calendar and address book of a server account, each in its own folder under
/// `folder` (default: under the data directory); collections made later are paired at the
/// next sync. Lists the collections once now, and they sync at once.
#[tauri::command]
pub async fn add_all_collections(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    account: String,
    folder: Option<String>,
) -> Result<MappingRow, OpError> {
    let folder = folder.filter(|f| !f.trim().is_empty()).map(PathBuf::from);
    // A failed listing is kept on the mapping (its last error) and tried again at each sync.
    let (made, _listed) = shell
        .concord()
        .add_all_collections(None, &account, folder.as_deref(), None)
        .await?;
    let _ = shell.publish(&app).await;
    shell
        .op(move |concord| concord.mapping_rows())
        .await?
        .into_iter()
        .find(|m| m.mapping.name == made.name)
        .ok_or_else(|| OpError::Invalid(format!("{} was made but cannot be read back", made.name)))
}

/// Sync now, all collections of an account: lists them (pairing new ones, reporting vanished
/// ones), then syncs each collection's pair as a durable run.
#[tauri::command]
pub async fn sync_mapping(
    app: AppHandle<Wry>,
    shell: State<'_, Shell>,
    name: String,
) -> Result<MappingReport, OpError> {
    let concord = shell.concord().clone();
    let report = concord.sync_mapping(&name).await;
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
) -> Result<(), OpError> {
    shell
        .op(move |concord| concord.remove_pair(&name).map(drop))
        .await?;
    let _ = shell.publish(&app).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_on_the_accounts_server_is_shown_by_its_path() {
        let account = Account {
            id: 1,
            name: "work".to_owned(),
            kind: concord_core::sync::state::StorageKind::Caldav,
            url: "https://dav.example.com/".to_owned(),
            username: Some("ada".to_owned()),
        };
        let found = |url: &str| discovery::Collection {
            kind: discovery::CollectionKind::AddressBook,
            url: url.to_owned(),
            display_name: None,
            color: None,
            components: Vec::new(),
            supports_sync: true,
        };
        let shown = shown_all(
            vec![
                found("https://dav.example.com/ada/contacts/"),
                found("https://other.example/cal/home/"),
            ],
            &account,
        );
        assert_eq!(shown[0].href, "/ada/contacts/");
        assert_eq!(shown[0].kind, "address-book");
        assert_eq!(shown[1].href, "https://other.example/cal/home/");
    }
}
