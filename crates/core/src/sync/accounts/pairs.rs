//! The rules of making and removing pairs that the command line and the window share: where a
//! collection of an account is, which two sides can be paired, and what removing a pair (or an
//! "all collections" sync) takes with it.

use rusqlite::Connection;

use super::mapping;
use crate::Concord;
use crate::sync::SyncError;
use crate::sync::item::ItemKind;
use crate::sync::run;
use crate::sync::state::{self, Account, Direction, StorageKind};

/// A collection's absolute URL: `collection` itself when it is a URL, else an href on the
/// account's server.
pub fn collection_url(account: &Account, collection: &str) -> String {
    if collection.starts_with("http://") || collection.starts_with("https://") {
        return collection.to_owned();
    }
    let origin: String = account
        .url
        .splitn(4, '/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    format!("{origin}/{}", collection.trim_start_matches('/'))
}

/// Whether a server account's collection at `url` is a calendar (CalDAV) or an address book
/// (CardDAV): as discovery last saw it, else by the account's kind.
pub fn collection_kind(conn: &Connection, account: &Account, url: &str) -> StorageKind {
    let seen = state::mapping::stored_collections(conn, account.id)
        .ok()
        .and_then(|all| all.into_iter().find(|(c, _)| c.url == url));
    match seen {
        Some((c, _)) if c.kind == super::discovery::CollectionKind::AddressBook => {
            StorageKind::Carddav
        }
        Some(_) => StorageKind::Caldav,
        None => account.kind,
    }
}

/// One side of a pair about to be made.
#[derive(Debug, Clone, Copy)]
pub struct NewSide<'a> {
    pub kind: StorageKind,
    pub item_kind: ItemKind,
    pub location: &'a str,
    /// How the person knows it ("Calendar", a folder's path).
    pub label: &'a str,
}

/// Why two sides cannot be paired, in a sentence; None when they can.
pub fn pairing_problem(a: NewSide<'_>, b: NewSide<'_>) -> Option<String> {
    if a.item_kind != b.item_kind {
        return Some(format!(
            "{} and {} hold different things: a calendar pairs with a calendar, an address \
             book with an address book",
            a.label, b.label
        ));
    }
    if a.kind == b.kind && a.location == b.location {
        return Some(format!(
            "both sides are the same collection ({}): choose two different ones",
            a.location
        ));
    }
    None
}

/// The way changes flow in a new pair of `a` and `b` when the person did not choose: both
/// ways, except from a webcal calendar, which is read-only.
pub fn default_direction(a: StorageKind, b: StorageKind) -> Result<Direction, String> {
    match (a, b) {
        (StorageKind::Webcal, StorageKind::Webcal) => {
            Err("two webcal calendars cannot be paired: neither can be written".to_owned())
        }
        (StorageKind::Webcal, _) => Ok(Direction::AToB),
        (_, StorageKind::Webcal) => Ok(Direction::BToA),
        _ => Ok(Direction::TwoWay),
    }
}

/// What [`remove`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Pair,
    /// An "all collections" sync, with the pairs of its collections.
    Mapping {
        pairs: Vec<String>,
    },
}

/// Removes a pair, or an "all collections" sync with its pairs, and their schedules. The
/// collections, folders and item history stay. One collection of an "all collections" sync is
/// refused: it would come back at the next sync.
pub fn remove(concord: &Concord, name: &str) -> Result<Removed, SyncError> {
    let conn = concord.database().connect()?;
    if state::mapping::mapping(&conn, name)?.is_some() {
        let pairs = state::mapping::remove_mapping(&conn, name)?;
        unschedule(concord, &mapping::schedule_name(name))?;
        for pair in &pairs {
            unschedule(concord, &run::schedule_name(pair))?;
        }
        return Ok(Removed::Mapping { pairs });
    }
    let owner = state::mapping::mappings(&conn)?
        .into_iter()
        .find(|m| m.pairs.iter().any(|p| p.pair == name));
    if let Some(m) = owner {
        return Err(SyncError::PartOfMapping {
            pair: name.to_owned(),
            mapping: m.name,
            account: m.account,
        });
    }
    if !state::remove_pair(&conn, name)? {
        return Err(SyncError::NoSuchPair(name.to_owned()));
    }
    unschedule(concord, &run::schedule_name(name))?;
    Ok(Removed::Pair)
}

/// Removes a schedule and cancels its job's open run (a retry, a queued sync), which could
/// only fail now that what it syncs is gone; a schedule that is not there (a pair synced only
/// by hand) is fine.
pub fn unschedule(concord: &Concord, name: &str) -> Result<(), SyncError> {
    match concord.engine().remove_schedule(name) {
        Ok(()) | Err(concord_durable::Error::ScheduleNotFound(_)) => {}
        Err(err) => return Err(err.into()),
    }
    if let Some(open) = concord.engine().open_run_of(name)? {
        concord.engine().cancel(open)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(url: &str) -> Account {
        Account {
            id: 1,
            name: "dav".to_owned(),
            kind: StorageKind::Caldav,
            url: url.to_owned(),
            username: None,
        }
    }

    #[test]
    fn an_href_lands_on_the_account_server() {
        let dav = account("https://dav.example.com:8443/dav/user/");
        assert_eq!(
            collection_url(&dav, "/dav/user/work/"),
            "https://dav.example.com:8443/dav/user/work/"
        );
        assert_eq!(
            collection_url(&dav, "https://other.example/cal/"),
            "https://other.example/cal/"
        );
    }

    #[test]
    fn only_like_with_like_and_never_with_itself() {
        let side = |item_kind, location| NewSide {
            kind: StorageKind::Caldav,
            item_kind,
            location,
            label: location,
        };
        let cal = side(ItemKind::Calendar, "/a/");
        assert!(pairing_problem(cal, side(ItemKind::Contact, "/b/")).is_some());
        assert!(pairing_problem(cal, side(ItemKind::Calendar, "/a/")).is_some());
        assert_eq!(pairing_problem(cal, side(ItemKind::Calendar, "/b/")), None);
    }

    #[test]
    fn changes_never_flow_into_a_webcal_calendar() {
        use StorageKind::{Caldav, Vdir, Webcal};
        assert_eq!(default_direction(Webcal, Vdir), Ok(Direction::AToB));
        assert_eq!(default_direction(Caldav, Webcal), Ok(Direction::BToA));
        assert_eq!(default_direction(Caldav, Vdir), Ok(Direction::TwoWay));
        assert!(default_direction(Webcal, Webcal).is_err());
    }
}
