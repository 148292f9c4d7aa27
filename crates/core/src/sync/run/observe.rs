//! Observe, the first stage: list what changed on a side since its stored token, fetch it,
//! and compare it with the stored view; then commit that view, its token and its quarantine
//! (unreadable items, and items sharing a UID with one kept instead).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rusqlite::TransactionBehavior;

use super::{PairSync, side_index};
use crate::sync::SyncError;
use crate::sync::item::Item;
use crate::sync::state::{self, Seen, Side, Synced};
use crate::sync::storage::Storage;

/// How many times a storage's listing is polled (connect, send) before this task blocks on
/// reading the stored view.
const REQUEST_POLLS_FIRST: usize = 3;

/// What one side showed in this run, before it is committed.
#[derive(Debug, Default)]
pub struct Observation {
    pub(super) side: Option<Side>,
    pub(super) token: Option<String>,
    /// The stored token this listing started from.
    pub(super) previous_token: Option<String>,
    refresh_after_s: Option<u64>,
    /// The side's full view after this listing, by href.
    pub(super) seen: BTreeMap<String, Seen>,
    /// Where it differs from the stored view it replaces: each item as it was and as it is,
    /// None where absent.
    pub(super) differences: Vec<(Option<Seen>, Option<Seen>)>,
    /// Raw bytes fetched in this run, by href.
    pub(super) fetched: BTreeMap<String, Vec<u8>>,
    /// Unreadable items found in this run: href, etag, summary, reason.
    pub(super) unreadable: Vec<(String, String, String, String)>,
}

impl PairSync {
    /// Observes both sides at once: a folder is listed while a server answers. Meanwhile the
    /// database's write-ahead log is copied back into the database file (a passive
    /// checkpoint), so no commit after the answer pays for it: SQLite otherwise checkpoints
    /// inside whichever commit takes the log past 1,000 pages, about one sync in five with 50
    /// changed items. A failed checkpoint loses nothing: the next commit that needs one does
    /// it as before.
    pub async fn observe_both(
        &self,
    ) -> (
        Result<Observation, SyncError>,
        Result<Observation, SyncError>,
    ) {
        let fold = async {
            // After the requests are out, in its turn with the other local work.
            for _ in 0..=REQUEST_POLLS_FIRST {
                tokio::task::yield_now().await;
            }
            let _turn = self.local_work.lock().await;
            let database = self.database.clone();
            let folded = tokio::task::spawn_blocking(move || database.checkpoint_passive())
                .await
                .map_err(|err| err.to_string())
                .and_then(|done| done.map_err(|err| err.to_string()));
            if let Err(err) = folded {
                tracing::debug!(%err, "the write-ahead log was not checkpointed");
            }
        };
        let (a, b, ()) = tokio::join!(self.observe(Side::A), self.observe(Side::B), fold);
        (a, b)
    }

    /// A turn at the local work (see `local_work`) when `local`; none for waiting on a server.
    async fn local_turn(&self, local: bool) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if local {
            Some(self.local_work.lock().await)
        } else {
            None
        }
    }

    /// Lists what changed on `side` since the stored token and fetches it.
    pub async fn observe(&self, side: Side) -> Result<Observation, SyncError> {
        let storage = self.storage(side);
        let token = {
            let conn = self.conn();
            let pair = state::pair_by_id(&conn, self.pair.id)?;
            pair.token(side).map(str::to_owned)
        };
        // The stored view is read while the storage is asked (a server's answer takes longest).
        // Reading it blocks this task, so the request is first given a few polls to go out.
        // Work on this machine (reading views, listing a folder, comparing) takes turns.
        let local = matches!(storage, Storage::Vdir(_));
        let (listing, previous) = tokio::join!(
            async {
                let _turn = self.local_turn(local).await;
                storage.changes(token.as_deref()).await
            },
            async {
                for _ in 0..REQUEST_POLLS_FIRST {
                    tokio::task::yield_now().await;
                }
                let _turn = self.local_work.lock().await;
                state::seen(&self.conn(), self.pair.id, side)
            }
        );
        let (listing, previous) = (listing?, previous?);
        // A folder's comparison and reads take their turn too; a server's answer arrives after
        // the other side's local work, as a rule, and is processed at once.
        let _turn = self.local_turn(local).await;
        // A complete listing is a new view, compared with the stored one once it is built; a
        // delta since the token is applied to the stored view, noting each difference.
        let (mut seen, mut previous, mut differences) = if listing.complete {
            (BTreeMap::new(), Some(previous), Vec::new())
        } else {
            (previous, None, Vec::new())
        };
        if previous.is_none() {
            for href in &listing.deleted {
                if let Some(gone) = seen.remove(href) {
                    differences.push((Some(gone), None));
                }
            }
        }
        let mut to_fetch = Vec::new();
        for listed in &listing.changed {
            let known = previous.as_ref().unwrap_or(&seen).get(&listed.href);
            match known.filter(|known| known.etag == listed.etag).cloned() {
                // Unchanged: a new view takes it over; a delta holds it already.
                Some(known) if previous.is_some() => {
                    seen.insert(listed.href.clone(), known);
                }
                Some(_) => {}
                None => to_fetch.push(listed.href.clone()),
            }
        }
        let mut observation = Observation {
            side: Some(side),
            token: listing.token,
            previous_token: token,
            refresh_after_s: listing.refresh_after_s,
            ..Observation::default()
        };
        let mut summaries = BTreeMap::new();
        for fetched in storage.fetch(&to_fetch).await? {
            let (uid, hash) = match Item::parse(fetched.raw.clone()) {
                Ok(item) => {
                    summaries.insert(fetched.href.clone(), item.summary);
                    (Some(item.uid), Some(item.hash))
                }
                Err(unreadable) => {
                    observation.unreadable.push((
                        fetched.href.clone(),
                        fetched.etag.clone(),
                        unreadable.summary,
                        unreadable.reason,
                    ));
                    (None, None)
                }
            };
            let now = Seen {
                href: fetched.href.clone(),
                etag: fetched.etag,
                uid,
                hash,
            };
            let was = seen.insert(fetched.href.clone(), now.clone());
            if previous.is_none() && was.as_ref() != Some(&now) {
                differences.push((was, Some(now)));
            }
            observation.fetched.insert(fetched.href, fetched.raw);
        }
        if let Some(previous) = previous.take() {
            differences = view_differences(&previous, &seen)
                .into_iter()
                .map(|(was, now)| (was.cloned(), now.cloned()))
                .collect();
        }
        observation.seen = seen;
        observation.differences = differences;
        let mut cache = self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache[side_index(side)].clone_from(&observation.fetched);
        drop(cache);
        self.summaries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)[side_index(side)] = summaries;
        Ok(observation)
    }

    /// Stores an observation: the side's view, its token, and its quarantine.
    pub fn commit(&self, observation: Observation) -> Result<(), SyncError> {
        let Some(side) = observation.side else {
            return Ok(());
        };
        let stats = ViewStats::of(&observation.seen);
        let has_duplicates = stats.duplicate > 0;
        let differences = &observation.differences;
        let unchanged = differences.is_empty()
            && observation.token == observation.previous_token
            && observation.refresh_after_s.is_none()
            && observation.unreadable.is_empty()
            && !has_duplicates;
        if unchanged {
            // The stored view, token and quarantine already say all this: no write, no fsync.
            let versions = state::plan_versions(&self.conn(), self.pair.id)?;
            self.basis().advance(versions, versions.0, []);
            self.keep_view(side, observation.seen, stats);
            return Ok(());
        }
        let mut conn = self.conn();
        // Only needed to choose which of several items with one UID is kept.
        let synced = if has_duplicates {
            state::synced(&conn, self.pair.id)?
        } else {
            BTreeMap::new()
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = state::plan_versions(&tx, self.pair.id)?;
        // Only what differs from the stored view is written (a no-change sync writes nothing).
        let mut touched = BTreeSet::new();
        for (before, after) in differences {
            match after {
                Some(seen) => state::put_seen(&tx, self.pair.id, side, seen)?,
                None => {
                    if let Some(gone) = before {
                        state::remove_seen(&tx, self.pair.id, side, &gone.href)?;
                    }
                }
            }
            for seen in [before, after].into_iter().flatten() {
                touched.extend(seen.uid.clone());
            }
        }
        state::set_token(&tx, self.pair.id, side, observation.token.as_deref())?;
        if let Some(after_s) = observation.refresh_after_s {
            let next = state::now_ms()
                .saturating_add(i64::try_from(after_s.saturating_mul(1000)).unwrap_or(i64::MAX));
            state::set_next_check(&tx, self.pair.id, next)?;
        }
        // Quarantine: release what is gone or readable now, then add what is not.
        for href in state::quarantined_hrefs(&tx, self.pair.id, side)? {
            let keep = observation.seen.get(&href).is_some_and(|s| s.uid.is_none());
            if !keep {
                state::release(&tx, self.pair.id, side, &href)?;
            }
        }
        for (href, etag, summary, reason) in &observation.unreadable {
            state::quarantine(&tx, self.pair.id, side, href, etag, summary, reason)?;
        }
        if has_duplicates {
            for (dup, kept) in duplicates(&observation.seen, &synced, side).1 {
                let reason = format!(
                    "another item ({kept}) has the same UID {}; only that one is synced",
                    dup.uid.as_deref().unwrap_or_default()
                );
                state::quarantine(&tx, self.pair.id, side, &dup.href, &dup.etag, "", &reason)?;
            }
        }
        let after = state::plan_versions(&tx, self.pair.id)?.0;
        tx.commit()?;
        drop(conn);
        self.basis().advance(before, after, touched);
        self.keep_view(side, observation.seen, stats);
        Ok(())
    }

    /// Keeps a side's committed view for the next plan, with its numbers.
    fn keep_view(&self, side: Side, seen: BTreeMap<String, Seen>, stats: ViewStats) {
        self.committed_views()[side_index(side)] = Some(CommittedView { seen, stats });
    }
}

/// A side's whole view in numbers, as planning needs them when it looks at a part only.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ViewStats {
    /// Items that cannot be read.
    pub(super) unreadable: usize,
    /// Items that share their UID with another kept instead.
    pub(super) duplicate: usize,
    /// Whether any item can be read.
    pub(super) readable: bool,
}

impl ViewStats {
    pub(super) fn of(seen: &BTreeMap<String, Seen>) -> Self {
        let mut distinct = HashSet::with_capacity(seen.len());
        let mut readable = 0;
        for uid in seen.values().filter_map(|s| s.uid.as_deref()) {
            readable += 1;
            distinct.insert(uid);
        }
        Self {
            unreadable: seen.len() - readable,
            duplicate: readable - distinct.len(),
            readable: readable > 0,
        }
    }
}

/// A side's view as this process committed it, with its numbers.
#[derive(Debug)]
pub(super) struct CommittedView {
    pub(super) seen: BTreeMap<String, Seen>,
    pub(super) stats: ViewStats,
}

/// The items whose view differs between `before` and `after`, found in one pass through
/// both (each is ordered by href): each as it was and as it is, None where absent.
fn view_differences<'a>(
    before: &'a BTreeMap<String, Seen>,
    after: &'a BTreeMap<String, Seen>,
) -> Vec<(Option<&'a Seen>, Option<&'a Seen>)> {
    use std::cmp::Ordering;
    let mut out = Vec::new();
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            Ordering::Less => out.extend(old.next().map(|(_, s)| (Some(s), None))),
            Ordering::Greater => out.extend(new.next().map(|(_, s)| (None, Some(s)))),
            Ordering::Equal => {
                if let (Some((_, a)), Some((_, b))) = (old.next(), new.next())
                    && a != b
                {
                    out.push((Some(a), Some(b)));
                }
            }
        }
    }
    out
}

/// The hrefs of a view whose items do not read (quarantined).
pub(super) fn unreadable_hrefs(seen: &BTreeMap<String, Seen>) -> HashSet<String> {
    seen.values()
        .filter(|s| s.uid.is_none())
        .map(|s| s.href.clone())
        .collect()
}

/// Whether two readable items of a side share a UID.
fn has_duplicate_uids(seen: &BTreeMap<String, Seen>) -> bool {
    let mut uids = std::collections::HashSet::with_capacity(seen.len());
    seen.values()
        .filter_map(|s| s.uid.as_deref())
        .any(|uid| !uids.insert(uid))
}

type Duplicate<'a> = (&'a Seen, String);

/// A side's readable items by UID; where several hrefs share a UID, the one already synced
/// (else the first by href) is kept and the others are returned with the href kept.
pub(super) fn duplicates<'a>(
    seen: &'a BTreeMap<String, Seen>,
    synced: &BTreeMap<String, Synced>,
    side: Side,
) -> (BTreeMap<String, &'a Seen>, Vec<Duplicate<'a>>) {
    if !has_duplicate_uids(seen) {
        let unique = seen
            .values()
            .filter_map(|s| Some((s.uid.clone()?, s)))
            .collect();
        return (unique, Vec::new());
    }
    let mut by_uid: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in seen.values() {
        if let Some(uid) = &s.uid {
            by_uid.entry(uid).or_default().push(s);
        }
    }
    let mut unique = BTreeMap::new();
    let mut dups = Vec::new();
    for (uid, mut all) in by_uid {
        let synced_href = synced.get(uid).map(|st| st.side(side).href.as_str());
        all.sort_by_key(|s| (Some(s.href.as_str()) != synced_href, s.href.clone()));
        let mut iter = all.into_iter();
        if let Some(kept) = iter.next() {
            for dup in iter {
                dups.push((dup, kept.href.clone()));
            }
            unique.insert(uid.to_owned(), kept);
        }
    }
    (unique, dups)
}
