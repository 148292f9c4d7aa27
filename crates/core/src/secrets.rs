//! The keyring layer: account passwords live in the desktop's Secret Service (gnome-keyring,
//! KWallet), never in the database or a log. Everything else in Concord refers to a password
//! only by the account id it belongs to.
//!
//! Each password is one Secret Service item in the default collection, with the attributes
//! `service` = [`SERVICE`] and `username` = the account id (the attributes
//! `zbus-secret-service-keyring-store` writes), so a person or a test can read one back with
//! `secret-tool lookup service concord username ACCOUNT_ID`.
//!
//! Every call is a blocking D-Bus round trip: from async code, call it through
//! `spawn_blocking`.

use std::fmt;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error as KeyringError};

/// The `service` attribute of every item Concord stores.
pub const SERVICE: &str = "concord";

/// Where Concord keeps passwords. Cheap to clone; every clone uses the same store.
#[derive(Clone)]
pub struct Secrets {
    store: Arc<CredentialStore>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("store", &self.store.vendor())
            .finish()
    }
}

/// Why a password could not be stored, read or removed. Messages never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No Secret Service on the session bus, or it is locked and could not be unlocked. The
    /// person has to act (start or unlock the keyring); retrying alone will not help.
    #[error("the Secret Service is not available: is a keyring running and unlocked? ({reason})")]
    Unavailable { reason: String },
    /// The account id cannot name a keyring item (for example, it is empty).
    #[error("{account_id:?} cannot be used as an account id in the keyring: {reason}")]
    InvalidAccount { account_id: String, reason: String },
    /// Several items match one account, so Concord cannot tell which one is meant.
    #[error(
        "the keyring holds {count} passwords for account {account_id:?}; remove all but one \
         (service {SERVICE:?}, username {account_id:?}) in your keyring manager"
    )]
    Ambiguous { account_id: String, count: usize },
    /// The stored password is not text. The bytes are deliberately not kept in the error.
    #[error("the password stored for account {account_id:?} is not valid UTF-8 text")]
    NotText { account_id: String },
    /// Anything else the keyring reported.
    #[error("the keyring failed for account {account_id:?}: {reason}")]
    Keyring { account_id: String, reason: String },
}

impl Secrets {
    /// The desktop's Secret Service on the session bus, chosen explicitly (the store is held
    /// here, not installed as keyring-core's process-wide default, so nothing can swap it).
    pub fn system() -> Result<Self, SecretError> {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(|err| {
            SecretError::Unavailable {
                reason: err.to_string(),
            }
        })?;
        Ok(Self::with_store(store))
    }

    /// Any keyring-core store; unit tests pass `keyring_core::mock::Store::new()`.
    pub fn with_store(store: Arc<CredentialStore>) -> Self {
        Self { store }
    }

    /// Stores (or replaces) the password of an account.
    pub fn set_password(&self, account_id: &str, password: &str) -> Result<(), SecretError> {
        self.entry(account_id)?
            .set_password(password)
            .map_err(|err| classify(account_id, err))?;
        tracing::debug!(account_id, "password stored in the keyring");
        Ok(())
    }

    /// The password of an account, or `None` when none is stored.
    pub fn password(&self, account_id: &str) -> Result<Option<String>, SecretError> {
        match self.entry(account_id)?.get_password() {
            Ok(password) => Ok(Some(password)),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(err) => Err(classify(account_id, err)),
        }
    }

    /// Removes the password of an account. Returns whether there was one to remove.
    pub fn delete_password(&self, account_id: &str) -> Result<bool, SecretError> {
        match self.entry(account_id)?.delete_credential() {
            Ok(()) => {
                tracing::debug!(account_id, "password removed from the keyring");
                Ok(true)
            }
            Err(KeyringError::NoEntry) => Ok(false),
            Err(err) => Err(classify(account_id, err)),
        }
    }

    fn entry(&self, account_id: &str) -> Result<Entry, SecretError> {
        if account_id.is_empty() {
            return Err(SecretError::InvalidAccount {
                account_id: String::new(),
                reason: "it is empty".to_owned(),
            });
        }
        self.store
            .build(SERVICE, account_id, None)
            .map_err(|err| classify(account_id, err))
    }
}

/// The one place keyring errors become Concord's. Variants that carry secret bytes
/// (`BadEncoding`, `BadDataFormat`) are matched so those bytes are dropped here.
fn classify(account_id: &str, err: KeyringError) -> SecretError {
    let account_id = account_id.to_owned();
    match err {
        KeyringError::NoStorageAccess(source) => SecretError::Unavailable {
            reason: source.to_string(),
        },
        KeyringError::NoDefaultStore => SecretError::Unavailable {
            reason: "no credential store was chosen".to_owned(),
        },
        KeyringError::Invalid(what, reason) => SecretError::InvalidAccount {
            account_id,
            reason: format!("{what}: {reason}"),
        },
        KeyringError::TooLong(what, limit) => SecretError::InvalidAccount {
            account_id,
            reason: format!("{what} is longer than the keyring's limit of {limit}"),
        },
        KeyringError::Ambiguous(entries) => SecretError::Ambiguous {
            account_id,
            count: entries.len(),
        },
        KeyringError::BadEncoding(_) => SecretError::NotText { account_id },
        KeyringError::BadDataFormat(_, source) => SecretError::Keyring {
            account_id,
            reason: format!("the stored secret is malformed: {source}"),
        },
        // PlatformFailure, BadStoreFormat, NotSupportedByStore: keep what the keyring said.
        other => SecretError::Keyring {
            account_id,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use keyring_core::api::CredentialStoreApi;
    use keyring_core::mock;

    use super::*;

    fn secrets() -> (Secrets, Arc<mock::Store>) {
        let store = mock::Store::new().unwrap();
        (Secrets::with_store(store.clone()), store)
    }

    /// Makes the next call on `account_id`'s mock credential fail with `err`.
    fn fail_next(store: &mock::Store, account_id: &str, err: KeyringError) {
        let entry = store.build(SERVICE, account_id, None).unwrap();
        let cred: &mock::Cred = entry.as_any().downcast_ref().unwrap();
        cred.set_error(err);
    }

    #[test]
    fn a_stored_password_reads_back_and_can_be_replaced() {
        let (secrets, _) = secrets();
        secrets.set_password("acct-1", "first").unwrap();
        assert_eq!(
            secrets.password("acct-1").unwrap().as_deref(),
            Some("first")
        );
        secrets.set_password("acct-1", "second").unwrap();
        assert_eq!(
            secrets.password("acct-1").unwrap().as_deref(),
            Some("second")
        );
    }

    #[test]
    fn accounts_do_not_share_passwords() {
        let (secrets, _) = secrets();
        secrets.set_password("acct-1", "one").unwrap();
        assert_eq!(secrets.password("acct-2").unwrap(), None);
    }

    #[test]
    fn deleting_removes_the_password_and_reports_whether_there_was_one() {
        let (secrets, _) = secrets();
        secrets.set_password("acct-1", "pw").unwrap();
        assert!(secrets.delete_password("acct-1").unwrap());
        assert_eq!(secrets.password("acct-1").unwrap(), None);
        assert!(!secrets.delete_password("acct-1").unwrap());
    }

    #[test]
    fn an_empty_account_id_is_refused() {
        let (secrets, _) = secrets();
        let err = secrets.set_password("", "pw").unwrap_err();
        assert!(matches!(err, SecretError::InvalidAccount { .. }), "{err:?}");
    }

    #[test]
    fn a_locked_keyring_says_what_to_do() {
        let (secrets, store) = secrets();
        fail_next(
            &store,
            "acct-1",
            KeyringError::NoStorageAccess("collection is locked".into()),
        );
        let err = secrets.password("acct-1").unwrap_err();
        assert!(matches!(err, SecretError::Unavailable { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("is a keyring running and unlocked?"),
            "{message}"
        );
        assert!(message.contains("collection is locked"), "{message}");
    }

    #[test]
    fn errors_never_carry_the_secret_bytes() {
        let (secrets, store) = secrets();
        fail_next(
            &store,
            "acct-1",
            KeyringError::BadEncoding(b"hunter2\xff".to_vec()),
        );
        let err = secrets.password("acct-1").unwrap_err();
        assert!(matches!(err, SecretError::NotText { .. }), "{err:?}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("104, 117"), "{shown}"); // "hu" as a byte list
        }
    }
}
