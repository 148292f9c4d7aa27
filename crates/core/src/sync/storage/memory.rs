//! The in-process storage of tests and benchmarks: a collection held in memory that speaks
//! what every storage speaks (changes since a token, fetch, writes conditional on etags) and
//! lets a test act as another client, or make the next write to an item lose its condition
//! (a server's 412) or be refused (a 403). Never opened from a pair's configuration.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Fetched, Listed, Listing, StorageError, name_for_uid};
use crate::sync::item::ItemKind;

/// Deleted items remembered for listings since a token; a token older than what was
/// forgotten gets a complete listing, as a server answers a token it no longer knows.
pub const DELETED_KEPT_MAX: usize = 10_000;

/// What the next write to an item meets, arranged by a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The write loses its condition, as after another client's write (HTTP 412).
    Changed,
    /// The side refuses the write (a server's 403, 409 or 415), for this reason.
    Refused(String),
}

/// A collection in memory. Clones share it, so a test keeps one to act as another client
/// while a pair syncs the other.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    kind: ItemKind,
    collection: Arc<Mutex<Collection>>,
}

#[derive(Debug, Default)]
struct Collection {
    /// The items by href: etag and bytes.
    items: BTreeMap<String, (String, Vec<u8>)>,
    /// The change count at which each href was last written or deleted.
    changed_at: BTreeMap<String, u64>,
    /// Every write and deletion counts one; a token names a count.
    changes: u64,
    /// Tokens before this count get a complete listing (deletions before it are forgotten).
    oldest_token: u64,
    /// Faults for the next write to each href.
    faults: BTreeMap<String, Fault>,
}

impl Collection {
    /// Records a change at `href`; returns the etag it gives.
    fn touch(&mut self, href: &str) -> String {
        self.changes += 1;
        self.changed_at.insert(href.to_owned(), self.changes);
        format!("\"{}\"", self.changes)
    }

    /// Removes the item at `href`, recording the deletion; past [`DELETED_KEPT_MAX`]
    /// deletions, the oldest is forgotten and tokens before it get a complete listing.
    fn delete(&mut self, href: &str) {
        self.items.remove(href);
        self.touch(href);
        let items = &self.items;
        let mut deleted: Vec<(u64, &String)> = self
            .changed_at
            .iter()
            .filter(|(href, _)| !items.contains_key(*href))
            .map(|(href, at)| (*at, href))
            .collect();
        if deleted.len() > DELETED_KEPT_MAX {
            deleted.sort_unstable();
            let (at, href) = deleted[0];
            let href = href.clone();
            self.changed_at.remove(&href);
            self.oldest_token = at;
        }
    }

    /// The fault arranged for the next write to `href`, taken.
    fn fault(&mut self, href: &str) -> Result<(), StorageError> {
        match self.faults.remove(href) {
            None => Ok(()),
            Some(Fault::Changed) => Err(StorageError::Changed {
                href: href.to_owned(),
            }),
            Some(Fault::Refused(reason)) => Err(StorageError::Refused {
                href: href.to_owned(),
                reason,
            }),
        }
    }

    /// A conditional write's check: the item is at `etag`.
    fn check(&self, href: &str, etag: &str) -> Result<(), StorageError> {
        match self.items.get(href) {
            Some((now, _)) if now == etag => Ok(()),
            _ => Err(StorageError::Changed {
                href: href.to_owned(),
            }),
        }
    }
}

impl MemoryStorage {
    /// An empty collection of items of `kind`.
    pub fn new(kind: ItemKind) -> Self {
        Self {
            kind,
            collection: Arc::default(),
        }
    }

    pub fn kind(&self) -> ItemKind {
        self.kind
    }

    fn collection(&self) -> MutexGuard<'_, Collection> {
        self.collection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where [`MemoryStorage::create`] puts the item with this UID.
    pub fn href_for(&self, uid: &str) -> String {
        name_for_uid(uid, self.kind)
    }

    /// What changed since `token` (None, or a token it no longer knows: everything).
    pub fn changes(&self, token: Option<&str>) -> Listing {
        let collection = self.collection();
        let since = token
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|&n| n >= collection.oldest_token && n <= collection.changes);
        let listed = |(href, (etag, _)): (&String, &(String, Vec<u8>))| Listed {
            href: href.clone(),
            etag: etag.clone(),
        };
        let mut listing = Listing {
            complete: since.is_none(),
            token: Some(collection.changes.to_string()),
            ..Listing::default()
        };
        match since {
            None => listing.changed = collection.items.iter().map(listed).collect(),
            Some(since) => {
                for (href, _) in collection.changed_at.iter().filter(|(_, at)| **at > since) {
                    match collection.items.get_key_value(href) {
                        Some(item) => listing.changed.push(listed(item)),
                        None => listing.deleted.push(href.clone()),
                    }
                }
            }
        }
        listing
    }

    /// The items at `hrefs`; an href that is gone is left out.
    pub fn fetch(&self, hrefs: &[String]) -> Vec<Fetched> {
        let collection = self.collection();
        hrefs
            .iter()
            .filter_map(|href| {
                let (etag, raw) = collection.items.get(href)?;
                Some(Fetched {
                    href: href.clone(),
                    etag: etag.clone(),
                    raw: raw.clone(),
                })
            })
            .collect()
    }

    /// Creates an item that must not exist yet ("If-None-Match: *").
    pub fn create(&self, uid: &str, raw: &[u8]) -> Result<Listed, StorageError> {
        let href = self.href_for(uid);
        let mut collection = self.collection();
        collection.fault(&href)?;
        if collection.items.contains_key(&href) {
            return Err(StorageError::Changed { href });
        }
        let etag = collection.touch(&href);
        collection
            .items
            .insert(href.clone(), (etag.clone(), raw.to_vec()));
        Ok(Listed { href, etag })
    }

    /// Replaces the item at `href` if it is still at `etag` ("If-Match").
    pub fn update(&self, href: &str, etag: &str, raw: &[u8]) -> Result<String, StorageError> {
        let mut collection = self.collection();
        collection.fault(href)?;
        collection.check(href, etag)?;
        let etag = collection.touch(href);
        collection
            .items
            .insert(href.to_owned(), (etag.clone(), raw.to_vec()));
        Ok(etag)
    }

    /// Deletes the item at `href` if it is still at `etag`; an item already gone is fine.
    pub fn delete(&self, href: &str, etag: &str) -> Result<(), StorageError> {
        let mut collection = self.collection();
        collection.fault(href)?;
        if !collection.items.contains_key(href) {
            return Ok(());
        }
        collection.check(href, etag)?;
        collection.delete(href);
        Ok(())
    }

    /// Writes `raw` at `href` as another client would: no condition. Returns the new etag.
    pub fn put(&self, href: &str, raw: &[u8]) -> String {
        let mut collection = self.collection();
        let etag = collection.touch(href);
        collection
            .items
            .insert(href.to_owned(), (etag.clone(), raw.to_vec()));
        etag
    }

    /// Deletes the item at `href` as another client would; whether it was there.
    pub fn remove(&self, href: &str) -> bool {
        let mut collection = self.collection();
        let was = collection.items.contains_key(href);
        if was {
            collection.delete(href);
        }
        was
    }

    /// The bytes at `href`, if an item is there.
    pub fn get(&self, href: &str) -> Option<Vec<u8>> {
        self.collection()
            .items
            .get(href)
            .map(|(_, raw)| raw.clone())
    }

    /// How many items the collection holds.
    pub fn len(&self) -> usize {
        self.collection().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the next write (create, update or delete) to `href` meet `fault` instead.
    pub fn fail_next_write(&self, href: &str, fault: Fault) {
        self.collection().faults.insert(href.to_owned(), fault);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> MemoryStorage {
        MemoryStorage::new(ItemKind::Calendar)
    }

    #[test]
    fn writes_are_conditional_on_the_etag_they_read() {
        let s = storage();
        let made = s.create("e1", b"one").unwrap();
        assert_eq!(made.href, "e1.ics");
        assert!(s.create("e1", b"again").unwrap_err().is_changed());
        let etag = s.update(&made.href, &made.etag, b"two").unwrap();
        assert!(
            s.update(&made.href, &made.etag, b"stale")
                .unwrap_err()
                .is_changed()
        );
        assert!(s.delete(&made.href, &made.etag).unwrap_err().is_changed());
        assert_eq!(s.get(&made.href).unwrap(), b"two");
        s.delete(&made.href, &etag).unwrap();
        // Already gone: fine.
        s.delete(&made.href, &etag).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn a_token_lists_only_what_changed_since() {
        let s = storage();
        s.put("a.ics", b"a");
        s.put("b.ics", b"b");
        let first = s.changes(None);
        assert!(first.complete);
        assert_eq!(first.changed.len(), 2);
        s.put("a.ics", b"a2");
        s.remove("b.ics");
        s.put("c.ics", b"c");
        let since = s.changes(first.token.as_deref());
        assert!(!since.complete);
        let hrefs: Vec<&str> = since.changed.iter().map(|l| l.href.as_str()).collect();
        assert_eq!(hrefs, ["a.ics", "c.ics"]);
        assert_eq!(since.deleted, ["b.ics"]);
        let none = s.changes(since.token.as_deref());
        assert!(none.changed.is_empty() && none.deleted.is_empty());
        // A token it never gave: everything.
        assert!(s.changes(Some("not a token")).complete);
    }

    #[test]
    fn an_arranged_fault_meets_the_next_write_only() {
        let s = storage();
        let made = s.create("e1", b"one").unwrap();
        s.fail_next_write(&made.href, Fault::Refused("no".to_owned()));
        assert!(
            s.update(&made.href, &made.etag, b"x")
                .unwrap_err()
                .is_refused()
        );
        s.fail_next_write(&made.href, Fault::Changed);
        assert!(
            s.update(&made.href, &made.etag, b"x")
                .unwrap_err()
                .is_changed()
        );
        s.update(&made.href, &made.etag, b"x").unwrap();
    }
}
