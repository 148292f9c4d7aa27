//! A storage is one collection a pair syncs: a CalDAV calendar, a CardDAV address book, a
//! webcal URL (read-only) or a vdir folder. All speak the same small protocol: list what
//! changed, fetch items, and write conditionally (create only if absent, update or delete
//! only if unchanged since read).
//!
//! Here: the shared types ([`Storage`], [`StorageError`], [`Listed`], [`ItemWrite`], ...),
//! where passwords come from ([`CredentialSource`]) and [`open_storage`]; each storage in its
//! own file: [`caldav`] (with `delta`, the sync-collection REPORT), [`vdir`], [`webcal`]; and
//! [`memory`], the in-process storage of tests and benchmarks.

pub mod caldav;
mod delta;
pub mod memory;
pub mod vdir;
pub mod webcal;

use serde::{Deserialize, Serialize};

use super::SyncError;
use super::item::{ItemKind, sha256_hex};
use super::state::{Account, StorageConfig, StorageKind, SyncedSide};
use crate::dav::{Credentials, DavError};
use crate::secrets::Secrets;
use caldav::DavCollection;
use memory::MemoryStorage;
use vdir::Vdir;
use webcal::Webcal;

/// The longest file or resource name derived from a UID as is; longer UIDs are hashed.
pub const NAME_FROM_UID_CHARS_MAX: usize = 128;
/// The longest display name or colour accepted from a file or a server (`run::metadata`, and
/// a webcal feed's NAME).
pub const VALUE_CHARS_MAX: usize = 256;

/// One item as listed: where it is and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub href: String,
    pub etag: String,
}

/// What changed in a storage since the last listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The listing names every item (anything not in it is gone), rather than only changes.
    pub complete: bool,
    pub changed: Vec<Listed>,
    pub deleted: Vec<String>,
    /// The change-detection state to store for next time (sync token, CTag, HTTP validators).
    pub token: Option<String>,
    /// How long the source asks to be left alone (webcal REFRESH-INTERVAL), in seconds.
    pub refresh_after_s: Option<u64>,
}

/// One fetched item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub href: String,
    pub etag: String,
    pub raw: Vec<u8>,
}

/// One conditional write of a batch given to [`Storage::write_many`].
#[derive(Debug, Clone, Copy)]
pub enum ItemWrite<'a> {
    /// A new item for `uid`, only if absent ("If-None-Match: *").
    Create { uid: &'a str, raw: &'a [u8] },
    /// Replaces the item at `href` if it is still at `etag` ("If-Match").
    Update {
        href: &'a str,
        etag: &'a str,
        raw: &'a [u8],
    },
}

impl<'a> ItemWrite<'a> {
    /// Replaces an item as a listing showed it, if it is still at that etag.
    pub fn update_of(listed: &'a Listed, raw: &'a [u8]) -> Self {
        ItemWrite::Update {
            href: &listed.href,
            etag: &listed.etag,
            raw,
        }
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Dav(#[from] DavError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The item changed (or appeared) since it was read: re-read and reconcile.
    #[error("{href} changed since it was read")]
    Changed { href: String },
    /// The side refused this one write (a server's 403, 409 or 415; a name already taken by
    /// another item): the other writes go on, and the next sync tries it again.
    #[error("{href} was not written: {reason}")]
    Refused { href: String, reason: String },
    #[error("{0} is read-only")]
    ReadOnly(String),
    #[error("{0}")]
    Invalid(String),
}

impl StorageError {
    /// A conditional write lost against another writer.
    pub fn is_changed(&self) -> bool {
        matches!(
            self,
            StorageError::Changed { .. } | StorageError::Dav(DavError::PreconditionFailed { .. })
        )
    }

    /// The side refused this write (see [`StorageError::Refused`]).
    pub fn is_refused(&self) -> bool {
        matches!(self, StorageError::Refused { .. })
    }

    /// Only this write failed (a lost condition or a refusal): the rest of its batch goes on.
    pub fn is_item_only(&self) -> bool {
        self.is_changed() || self.is_refused()
    }

    /// The person must act (password, certificate, address): retrying cannot fix it.
    pub fn needs_attention(&self) -> bool {
        matches!(
            self,
            StorageError::Dav(
                DavError::Unauthorized { .. }
                    | DavError::InvalidUrl { .. }
                    | DavError::TrustStore(_)
                    | DavError::CollectionMissing { .. }
            ) | StorageError::Dav(DavError::Status {
                status: 404 | 410,
                ..
            })
        )
    }
}

/// A storage, opened.
#[derive(Debug)]
pub enum Storage {
    Vdir(Vdir),
    Dav(DavCollection),
    Webcal(Webcal),
    /// A collection in memory, for tests and benchmarks: [`open_storage`] never opens one.
    Memory(MemoryStorage),
}

impl Storage {
    pub fn kind(&self) -> ItemKind {
        match self {
            Storage::Vdir(s) => s.kind(),
            Storage::Dav(s) => s.kind(),
            Storage::Webcal(_) => ItemKind::Calendar,
            Storage::Memory(s) => s.kind(),
        }
    }

    pub fn read_only(&self) -> bool {
        matches!(self, Storage::Webcal(_))
    }

    /// What changed since `token` (None: everything).
    pub async fn changes(&self, token: Option<&str>) -> Result<Listing, StorageError> {
        match self {
            // Listing a large folder blocks: it runs off the runtime's workers, so a server
            // asked at the same time is answered meanwhile.
            Storage::Vdir(s) => {
                let vdir = s.clone();
                tokio::task::spawn_blocking(move || vdir.list())
                    .await
                    .map_err(|err| StorageError::Invalid(format!("listing the folder: {err}")))?
            }
            Storage::Dav(s) => s.changes(token).await,
            Storage::Webcal(s) => s.changes(token).await,
            Storage::Memory(s) => Ok(s.changes(token)),
        }
    }

    /// The items at `hrefs`; an href that is gone is left out.
    pub async fn fetch(&self, hrefs: &[String]) -> Result<Vec<Fetched>, StorageError> {
        match self {
            Storage::Vdir(s) => s.fetch(hrefs),
            Storage::Dav(s) => s.fetch(hrefs).await,
            Storage::Webcal(s) => Ok(s.fetch(hrefs)),
            Storage::Memory(s) => Ok(s.fetch(hrefs)),
        }
    }

    /// Makes the writes so far durable (a vdir syncs its folder once per batch, not per file).
    pub fn flush(&self) -> Result<(), StorageError> {
        match self {
            Storage::Vdir(s) => s.sync_dir(),
            Storage::Dav(_) | Storage::Webcal(_) | Storage::Memory(_) => Ok(()),
        }
    }

    /// Where [`Storage::create`] puts the item with this UID.
    pub fn href_for(&self, uid: &str) -> String {
        match self {
            Storage::Vdir(s) => name_for_uid(uid, s.kind()),
            Storage::Dav(s) => format!("{}{}", s.href(), name_for_uid(uid, s.kind())),
            Storage::Webcal(_) => name_for_uid(uid, ItemKind::Calendar),
            Storage::Memory(s) => s.href_for(uid),
        }
    }

    /// Creates an item that must not exist yet; returns its href and etag.
    pub async fn create(&self, uid: &str, raw: &[u8]) -> Result<Listed, StorageError> {
        match self {
            Storage::Vdir(s) => s.create(uid, raw),
            Storage::Dav(s) => s.create(uid, raw).await,
            Storage::Webcal(s) => Err(StorageError::ReadOnly(s.url().to_owned())),
            Storage::Memory(s) => s.create(uid, raw),
        }
    }

    /// Replaces the item at `href` if it is still at `etag`; returns the new etag.
    pub async fn update(&self, href: &str, etag: &str, raw: &[u8]) -> Result<String, StorageError> {
        match self {
            Storage::Vdir(s) => s.update(href, etag, raw),
            Storage::Dav(s) => s.update(href, etag, raw).await,
            Storage::Webcal(s) => Err(StorageError::ReadOnly(s.url().to_owned())),
            Storage::Memory(s) => s.update(href, etag, raw),
        }
    }

    /// Replaces the item at `href` (if its etag is still `etag`) with `raw`, whose normalized
    /// hash is `hash`, and makes it durable: where the item is now.
    pub async fn overwrite(
        &self,
        href: &str,
        etag: &str,
        raw: &[u8],
        hash: &str,
    ) -> Result<SyncedSide, StorageError> {
        let etag = self.update(href, etag, raw).await?;
        self.flush()?;
        Ok(SyncedSide {
            href: href.to_owned(),
            etag,
            hash: hash.to_owned(),
        })
    }

    /// Makes several creates and updates, in order; each has its own result (`href` and new
    /// etag). A vdir makes the whole batch durable at once. A failure other than a lost
    /// condition or a refusal ends the batch: the results stop after it. The outer error means
    /// nothing of the batch was written.
    pub async fn write_many(
        &self,
        writes: &[ItemWrite<'_>],
    ) -> Result<Vec<Result<Listed, StorageError>>, StorageError> {
        if let Storage::Vdir(s) = self {
            return s.write_many(writes);
        }
        let mut done = Vec::with_capacity(writes.len());
        for write in writes {
            let result = match *write {
                ItemWrite::Create { uid, raw } => self.create(uid, raw).await,
                ItemWrite::Update { href, etag, raw } => {
                    self.update(href, etag, raw).await.map(|etag| Listed {
                        href: href.to_owned(),
                        etag,
                    })
                }
            };
            let stop = result.as_ref().is_err_and(|err| !err.is_item_only());
            done.push(result);
            if stop {
                break;
            }
        }
        Ok(done)
    }

    /// Deletes the item at `href` if it is still at `etag`; an item already gone is fine.
    pub async fn delete(&self, href: &str, etag: &str) -> Result<(), StorageError> {
        match self {
            Storage::Vdir(s) => s.delete(href, etag),
            Storage::Dav(s) => s.delete(href, etag).await,
            Storage::Webcal(s) => Err(StorageError::ReadOnly(s.url().to_owned())),
            Storage::Memory(s) => s.delete(href, etag),
        }
    }
}

/// A file or resource name for a UID that cannot escape its folder: the UID itself when it is
/// short and made only of safe characters (as vdirsyncer does), else its SHA-256 in hex.
pub fn name_for_uid(uid: &str, kind: ItemKind) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.@+=".contains(c);
    let stem = if !uid.is_empty()
        && uid.len() <= NAME_FROM_UID_CHARS_MAX
        && !uid.starts_with('.')
        && uid.chars().all(safe)
    {
        uid.to_owned()
    } else {
        sha256_hex(uid.as_bytes())
    };
    format!("{stem}.{}", kind.extension())
}

/// Where passwords come from: the keyring for people, fixed credentials in tests.
pub trait CredentialSource: Send + Sync {
    fn credentials(&self, account: &Account) -> Result<Credentials, SyncError>;
}

impl CredentialSource for Credentials {
    fn credentials(&self, _account: &Account) -> Result<Credentials, SyncError> {
        Ok(self.clone())
    }
}

impl CredentialSource for Secrets {
    fn credentials(&self, account: &Account) -> Result<Credentials, SyncError> {
        let password = self
            .password(&account.name)
            .map_err(|err| SyncError::Secret(err.to_string()))?
            .unwrap_or_default();
        Ok(Credentials::new(
            account.username.clone().unwrap_or_default(),
            password,
        ))
    }
}

/// The system keyring (Secret Service), opened when a password is first needed, so a pair of
/// folders syncs without a session bus. An account without a username (a server that asks
/// no one to sign in) needs no password, so it too syncs where no Secret Service runs, as
/// under a headless `concord daemon`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemKeyring;

impl CredentialSource for SystemKeyring {
    fn credentials(&self, account: &Account) -> Result<Credentials, SyncError> {
        if account.username.as_deref().is_none_or(str::is_empty) {
            return Ok(Credentials::new("", ""));
        }
        let read = || {
            let secrets = Secrets::system().map_err(|err| SyncError::Secret(err.to_string()))?;
            secrets.credentials(account)
        };
        // The Secret Service is a blocking D-Bus call: on a multi-threaded runtime's worker it
        // is made through `block_in_place`, so other runs on that worker keep going.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(read)
            }
            _ => read(),
        }
    }
}

/// Opens the storage a configuration names.
pub fn open_storage(
    config: &StorageConfig,
    account: Option<&Account>,
    credentials: &dyn CredentialSource,
) -> Result<Storage, SyncError> {
    let creds = match account {
        Some(account) => credentials.credentials(account)?,
        None => Credentials::new("", ""),
    };
    Ok(match config.kind {
        StorageKind::Vdir => Storage::Vdir(Vdir::open(
            std::path::Path::new(&config.location),
            config.item_kind,
        )?),
        StorageKind::Caldav => Storage::Dav(DavCollection::new(
            &config.location,
            &creds,
            ItemKind::Calendar,
        )?),
        StorageKind::Carddav => Storage::Dav(DavCollection::new(
            &config.location,
            &creds,
            ItemKind::Contact,
        )?),
        StorageKind::Webcal => Storage::Webcal(Webcal::new(&config.location, &creds)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_uids_never_leave_the_folder() {
        for uid in [
            "../../etc/passwd",
            "/abs",
            "a/b",
            "..",
            ".hidden",
            "",
            "nul\0byte",
            "back\\slash",
            "ünïcode",
            "space here",
            "C:evil",
            &"x".repeat(500),
        ] {
            let name = name_for_uid(uid, ItemKind::Calendar);
            assert!(
                !name.contains('/') && !name.contains('\\') && !name.contains('\0'),
                "{name}"
            );
            assert!(!name.starts_with('.'), "{uid:?} -> {name}");
            assert!(name.len() <= NAME_FROM_UID_CHARS_MAX + 4, "{name}");
            assert!(name.ends_with(".ics"));
        }
    }

    #[test]
    fn plain_uids_keep_their_spelling() {
        assert_eq!(
            name_for_uid("abc-123@example.com", ItemKind::Contact),
            "abc-123@example.com.vcf"
        );
    }
}
