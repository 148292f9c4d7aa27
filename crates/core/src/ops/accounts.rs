//! Accounts as both faces offer them: add one from what a person typed (a server's address,
//! `you@example.com`, a webcal URL, a folder), test it, find its collections, change its
//! password, remove it. The rules live here once; the CLI and the window only ask and tell.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use super::{OpError, names};
use crate::Concord;
use crate::secrets::Secrets;
use crate::sync::accounts::discovery::{
    self, AccountDiscovery, Collection, CollectionKind, ConnectionCheck, DiscoveryOptions,
};
use crate::sync::accounts::{mapping, pairs as pair_rules};
use crate::sync::item::ItemKind;
use crate::sync::state::{self, Account, StorageKind};
use crate::sync::storage::webcal::Webcal;
use crate::sync::storage::{CredentialSource, SystemKeyring};
use crate::sync::{SyncError, run};

/// An account to add, as a person gave it. No `Debug`: it holds the password.
#[derive(serde::Deserialize)]
pub struct NewAccount {
    /// Empty: named after the server's host or the folder.
    #[serde(default)]
    pub name: String,
    pub kind: StorageKind,
    /// A server's address (`https://dav.example.com/`, `dav.example.com`, `you@example.com`),
    /// a webcal URL (`webcal://` is read as `https://`), or a folder.
    pub url: String,
    pub username: Option<String>,
    /// Goes to the keyring, never the database.
    pub password: Option<String>,
    /// Plain http:// to a host other than this machine, said on purpose.
    #[serde(default)]
    pub insecure_http: bool,
}

/// A CalDAV/CardDAV server with nothing filled in yet.
impl Default for NewAccount {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: StorageKind::Caldav,
            url: String::new(),
            username: None,
            password: None,
            insecure_http: false,
        }
    }
}

/// What "Test connection" found: whether it works, and one sentence saying so or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionTest {
    pub ok: bool,
    pub message: String,
}

impl Concord {
    pub fn accounts(&self) -> Result<Vec<Account>, OpError> {
        Ok(state::accounts(&self.database().connect()?)?)
    }

    pub fn account(&self, name: &str) -> Result<Account, OpError> {
        super::find_account(&self.database().connect()?, name)
    }

    /// Adds an account: checks the address, stores the password in the keyring (only after
    /// the name is known to be free, so an existing account's password is never replaced).
    pub fn add_account(&self, new: NewAccount) -> Result<Account, OpError> {
        let typed = new.url.trim();
        if typed.is_empty() {
            return Err(OpError::Invalid(
                "give the server's address, the calendar's URL or the folder".to_owned(),
            ));
        }
        let signs_in = new.password.is_some() || new.username.is_some();
        let (url, hinted_username) = account_url(new.kind, typed, new.insecure_http, signs_in)?;
        let conn = self.database().connect()?;
        let taken: HashSet<String> = state::accounts(&conn)?
            .into_iter()
            .map(|a| a.name)
            .collect();
        let name = match new.name.trim() {
            "" => names::unique(&names::slug(&names::default_name(&url)), &taken),
            name if taken.contains(name) => {
                return Err(OpError::Taken {
                    what: "an account",
                    name: name.to_owned(),
                });
            }
            name => name.to_owned(),
        };
        let username = new
            .username
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .or(hinted_username);
        if let Some(password) = &new.password {
            if password.is_empty() {
                return Err(OpError::Invalid("the password is empty".to_owned()));
            }
            if username.is_none() {
                return Err(OpError::Invalid(
                    "give the username that goes with the password (or an address like \
                     you@example.com): a password is only ever sent with its username"
                        .to_owned(),
                ));
            }
            Secrets::system()?.set_password(&name, password)?;
        }
        let id = state::add_account(&conn, &name, new.kind, &url, username.as_deref())?;
        if new.insecure_http {
            state::mapping::set_allows_http(&conn, id, true)?;
        }
        if matches!(new.kind, StorageKind::Vdir | StorageKind::Webcal) {
            let item_kind = ItemKind::Calendar;
            state::put_storage(&conn, Some(id), new.kind, item_kind, &url, Some(&name))?;
        }
        Ok(Account {
            id,
            name,
            kind: new.kind,
            url,
            username,
        })
    }

    /// Replaces an account's password in the keyring.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), OpError> {
        let account = self.account(name)?;
        if account.username.as_deref().is_none_or(str::is_empty) {
            return Err(OpError::Invalid(format!(
                "{name} has no username, so it signs in with no password"
            )));
        }
        if password.is_empty() {
            return Err(OpError::Invalid("the password is empty".to_owned()));
        }
        Secrets::system()?.set_password(name, password)?;
        Ok(())
    }

    /// Removes an account with its pairs and "all collections" mappings (their schedules stop)
    /// and its password. The synced folders and the item history stay. Returns the pairs
    /// removed with it.
    pub fn remove_account(&self, name: &str) -> Result<Vec<String>, OpError> {
        let conn = self.database().connect()?;
        let account = super::find_account(&conn, name)?;
        let pairs: Vec<String> = state::pairs(&conn)?
            .into_iter()
            .filter(|p| p.a.account_id == Some(account.id) || p.b.account_id == Some(account.id))
            .map(|p| p.name)
            .collect();
        let mapped: Vec<String> = state::mapping::mappings(&conn)?
            .into_iter()
            .filter(|m| m.account_id == account.id)
            .map(|m| m.name)
            .collect();
        state::remove_account(&conn, name)?;
        let names = mapped.iter().map(|m| mapping::schedule_name(m));
        for name in names.chain(pairs.iter().map(|p| run::schedule_name(p))) {
            pair_rules::unschedule(self, &name)?;
        }
        if account.username.is_some()
            && let Ok(secrets) = Secrets::system()
        {
            let _ = secrets.delete_password(name);
        }
        Ok(pairs)
    }

    /// Connects and says plainly whether it works: a folder is there, a webcal calendar
    /// answers, a server signs in (a refused password, an address that is not a DAV server, a
    /// certificate problem and an unreachable server each get their sentence).
    pub async fn test_account(&self, name: &str) -> Result<ConnectionTest, OpError> {
        let account = self.account(name)?;
        let answer = |ok, message: String| ConnectionTest { ok, message };
        Ok(match account.kind {
            StorageKind::Vdir if Path::new(&account.url).is_dir() => {
                answer(true, format!("the folder {} is there", account.url))
            }
            StorageKind::Vdir => answer(false, format!("{} is not a folder", account.url)),
            StorageKind::Webcal => {
                let credentials = SystemKeyring.credentials(&account)?;
                let feed = Webcal::new(&account.url, &credentials).map_err(SyncError::from)?;
                match feed.changes(None).await {
                    Ok(listing) => answer(
                        true,
                        format!(
                            "connected: the calendar has {} event(s), task(s) or journal entries",
                            listing.changed.len()
                        ),
                    ),
                    Err(error) => answer(false, error.to_string()),
                }
            }
            StorageKind::Caldav | StorageKind::Carddav => {
                let credentials = SystemKeyring.credentials(&account)?;
                let options = self.discovery_options(&account)?;
                let check: ConnectionCheck =
                    discovery::check_connection(&account.url, &credentials, &options).await;
                answer(check.is_ok(), check.message())
            }
        })
    }

    /// Finds the account's calendars and address books (RFC 6764: the address given, its
    /// well-known URIs, DNS SRV) and remembers them. A webcal or vdir account is one
    /// collection, found without asking anything.
    pub async fn discover(&self, name: &str) -> Result<AccountDiscovery, OpError> {
        let account = self.account(name)?;
        if matches!(account.kind, StorageKind::Vdir | StorageKind::Webcal) {
            return Ok(single_collection(&account));
        }
        let options = self.discovery_options(&account)?;
        Ok(mapping::discover_account(self, &account, &SystemKeyring, options.nameserver).await?)
    }

    /// The calendars and address books discovery last found on a server account, without
    /// asking the server (none before its first discovery); vanished ones are left out. A
    /// webcal or vdir account is its one collection.
    pub fn known_collections(&self, name: &str) -> Result<Vec<Collection>, OpError> {
        let account = self.account(name)?;
        if matches!(account.kind, StorageKind::Vdir | StorageKind::Webcal) {
            return Ok(single_collection(&account).collections);
        }
        let conn = self.database().connect()?;
        Ok(state::mapping::stored_collections(&conn, account.id)?
            .into_iter()
            .filter(|(_, gone_since)| gone_since.is_none())
            .map(|(c, _)| c)
            .collect())
    }

    /// How discovery may reach an account: plain http only to this machine or where the
    /// person allowed it; `CONCORD_NAMESERVER` picks the DNS server.
    fn discovery_options(&self, account: &Account) -> Result<DiscoveryOptions, OpError> {
        let conn = self.database().connect()?;
        let allow_http = state::mapping::allows_http(&conn, account.id)?;
        Ok(DiscoveryOptions::from_env(allow_http))
    }
}

/// A webcal or vdir account as discovery would list it: one calendar, its own address.
fn single_collection(account: &Account) -> AccountDiscovery {
    AccountDiscovery {
        username_hint: None,
        services: Vec::new(),
        collections: vec![Collection {
            kind: CollectionKind::Calendar,
            url: account.url.clone(),
            display_name: Some(account.name.clone()),
            color: None,
            components: Vec::new(),
            supports_sync: false,
        }],
    }
}

/// The address an account keeps, from what a person typed, and a username it hints at
/// (`you@example.com`). Plain http goes only to this machine unless the person said so.
fn account_url(
    kind: StorageKind,
    typed: &str,
    insecure_http: bool,
    signs_in: bool,
) -> Result<(String, Option<String>), OpError> {
    let plain_http = |url: &str, signs_in: bool| {
        let what = if signs_in {
            "the password and your calendars"
        } else {
            "your calendars and contacts"
        };
        OpError::Invalid(format!(
            "{url} is plain http: {what} would travel unencrypted. Use https://, or allow \
             plain http on purpose (--insecure-http)"
        ))
    };
    match kind {
        StorageKind::Vdir => {
            let path = std::path::absolute(typed)
                .map_err(|e| OpError::Invalid(format!("{typed}: {e}")))?;
            if !path.is_dir() {
                return Err(OpError::Invalid(format!(
                    "{} is not a folder",
                    path.display()
                )));
            }
            Ok((path.display().to_string(), None))
        }
        StorageKind::Webcal => {
            let lower = typed.to_ascii_lowercase();
            let url = match lower.strip_prefix("webcal://") {
                Some(_) => format!("https://{}", &typed["webcal://".len()..]),
                None => typed.to_owned(),
            };
            let parsed: http::Uri = url
                .parse()
                .ok()
                .filter(|u: &http::Uri| {
                    matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                })
                .ok_or_else(|| {
                    OpError::Invalid(format!("{typed} is not a web address (https://…)"))
                })?;
            let loopback = parsed.host().is_some_and(discovery::is_loopback_host);
            if parsed.scheme_str() == Some("http") && !insecure_http && !loopback {
                return Err(plain_http(&url, signs_in));
            }
            Ok((url, None))
        }
        StorageKind::Caldav | StorageKind::Carddav => {
            let start =
                discovery::parse_input(typed).map_err(|e| OpError::Invalid(e.to_string()))?;
            let loopback = start.url.host().is_some_and(discovery::is_loopback_host);
            if start.url.scheme_str() == Some("http") && !insecure_http && !loopback {
                return Err(plain_http(
                    &start.url.to_string(),
                    signs_in || start.username_hint.is_some(),
                ));
            }
            Ok((start.url.to_string(), start.username_hint))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str, insecure_http: bool) -> NewAccount {
        NewAccount {
            kind: StorageKind::Caldav,
            url: url.to_owned(),
            insecure_http,
            ..NewAccount::default()
        }
    }

    #[test]
    fn a_server_is_added_from_a_host_or_user_at_domain() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let added = concord
            .add_account(server("ada@example.com", false))
            .unwrap();
        assert_eq!(added.url, "https://example.com/");
        assert_eq!(added.username.as_deref(), Some("ada@example.com"));
        assert_eq!(added.name, "example-com");
        let added = concord
            .add_account(server("dav.example.org", false))
            .unwrap();
        assert_eq!(
            (added.url.as_str(), added.username),
            ("https://dav.example.org/", None)
        );
        let local = concord
            .add_account(server("127.0.0.1:5232", false))
            .unwrap();
        assert_eq!(local.url, "http://127.0.0.1:5232/");
        let again = NewAccount {
            name: "example-com".to_owned(),
            ..server("other.example", false)
        };
        let taken = concord.add_account(again).unwrap_err();
        assert!(matches!(taken, OpError::Taken { .. }), "{taken}");
    }

    #[test]
    fn plain_http_to_another_machine_needs_the_persons_word_whatever_the_kind() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        for kind in [StorageKind::Caldav, StorageKind::Webcal] {
            let new = |insecure_http| NewAccount {
                kind,
                url: "http://dav.example.com/cal.ics".to_owned(),
                insecure_http,
                ..NewAccount::default()
            };
            let refused = concord.add_account(new(false)).unwrap_err().to_string();
            assert!(refused.contains("plain http"), "{refused}");
            assert!(
                !refused.contains("password"),
                "no password is sent: {refused}"
            );
            let added = concord.add_account(new(true)).unwrap();
            let conn = concord.database().connect().unwrap();
            assert!(state::mapping::allows_http(&conn, added.id).unwrap());
        }
        let webcal = NewAccount {
            kind: StorageKind::Webcal,
            url: "webcal://example.com/Team.ics".to_owned(),
            ..NewAccount::default()
        };
        let added = concord.add_account(webcal).unwrap();
        assert_eq!(
            added.url, "https://example.com/Team.ics",
            "webcal:// is https"
        );
    }

    #[test]
    fn a_folder_account_must_be_a_folder_and_a_password_needs_a_username() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let missing = NewAccount {
            kind: StorageKind::Vdir,
            url: dir.path().join("nope").display().to_string(),
            ..NewAccount::default()
        };
        let refused = concord.add_account(missing).unwrap_err().to_string();
        assert!(refused.ends_with("is not a folder"), "{refused}");
        let with_password = NewAccount {
            password: Some("secret".to_owned()),
            ..server("127.0.0.1:5232", false)
        };
        let refused = concord.add_account(with_password).unwrap_err().to_string();
        assert!(refused.contains("username"), "{refused}");
        assert!(concord.accounts().unwrap().is_empty(), "nothing kept");
    }
}
