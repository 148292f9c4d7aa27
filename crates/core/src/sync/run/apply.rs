//! Apply, the last stage: the plan's writes, conditional and in batches, the versions they
//! replace kept in history first, the new state recorded after them; each action counted as
//! written, deferred (it changed meanwhile) or refused.

use rusqlite::TransactionBehavior;

use super::metadata;
use super::plan::Prepared;
use super::reconcile::{Action, PlanCounts};
use super::{PairSync, Report, guard};
use crate::sync::SyncError;
use crate::sync::item::Item;
use crate::sync::state::{self, Side, Synced, SyncedSide};
use crate::sync::storage::vdir::StagedBatch;
use crate::sync::storage::{ItemWrite, Listed, Storage, StorageError};

/// Actions whose state is committed in one transaction.
pub const APPLY_BATCH_MAX: usize = 512;

impl PairSync {
    /// The report of `prepared` before anything is applied: a dry run counts the plan as
    /// what it would do; a real run counts each action as it is applied.
    pub(super) fn report(&self, prepared: &Prepared, dry_run: bool) -> Report {
        let planned = prepared.plan.counts();
        Report {
            pair: self.pair.name.clone(),
            dry_run,
            counts: if dry_run {
                planned.clone()
            } else {
                PlanCounts::default()
            },
            planned,
            plan: prepared.plan.changes().map(Action::describe).collect(),
            quarantined: prepared.quarantined,
            stopped: prepared.stopped.clone(),
            ..Report::default()
        }
    }

    /// Applies a plan: remote writes in batches, the losing versions kept in history before
    /// each batch's writes, the new state committed after them.
    pub async fn apply(&self, prepared: Prepared) -> Result<Report, SyncError> {
        let mut report = self.report(&prepared, false);
        if let Some(reason) = &prepared.stopped {
            state::set_stopped(&self.conn(), self.pair.id, Some(reason))?;
            return Ok(report);
        }
        debug_assert!(
            !guard::deletes_past(&prepared.plan, prepared.deletes_max),
            "a plan that deletes more than the guard allowed is never applied: {:?} past {:?}",
            prepared.plan.counts(),
            prepared.deletes_max
        );
        let mut wrote = [false; 2];
        // The plan-input count as this run's own writes leave it; None once another writer
        // moved it too (then the pair is not marked settled: what it did is unknown here).
        let mut expected = Some(prepared.version);
        let batches = prepared.plan.actions.chunks(APPLY_BATCH_MAX).count();
        // Whether the last batch's record also stored the pair's "ran fine" state.
        let mut finished = false;
        for (n, batch) in prepared.plan.actions.chunks(APPLY_BATCH_MAX).enumerate() {
            let mut staged = self.keep_versions_staging(batch)?;
            let mut done: Vec<Done> = Vec::with_capacity(batch.len());
            let mut results = Vec::with_capacity(batch.len());
            let mut start = 0;
            while start < batch.len() {
                let (group_side, end) = group_at(batch, start);
                let group = &batch[start..end];
                let written = match group_side {
                    Some(side) if group.len() > 1 => {
                        self.write_group(side, group, staged.take()).await
                    }
                    _ => Ok(vec![self.write(&batch[start]).await]),
                };
                let hard_error = match written {
                    Ok(written) => {
                        let stop = written
                            .iter()
                            .any(|r| r.as_ref().is_err_and(|e| !e.is_item_only()));
                        results.extend(group.iter().zip(written));
                        stop
                    }
                    Err(err) => {
                        results.push((&batch[start], Err(err)));
                        true
                    }
                };
                if hard_error {
                    break;
                }
                start = end;
            }
            for (action, result) in results {
                match result {
                    Ok(d) => {
                        for (i, side) in Side::BOTH.into_iter().enumerate() {
                            wrote[i] |= action.writes_to(side);
                        }
                        report.count(action, Ok(()));
                        done.push(d);
                    }
                    Err(err) if err.is_item_only() => report.count(action, Err(&err)),
                    Err(err) => {
                        for side in Side::BOTH {
                            self.storage(side).flush()?;
                        }
                        self.record(&done, &mut expected, None)?;
                        let message = err.to_string();
                        let _ = state::set_outcome(&self.conn(), self.pair.id, Some(&message));
                        return Err(err.into());
                    }
                }
            }
            for (i, side) in Side::BOTH.into_iter().enumerate() {
                if wrote[i] {
                    self.storage(side).flush()?;
                }
            }
            // With nothing to list again afterwards, the last batch's record finishes the run.
            let relist = Side::BOTH
                .into_iter()
                .zip(wrote)
                .any(|(s, w)| w && self.relists(s));
            finished = n + 1 == batches && !relist;
            let all_written = report.all_written();
            self.record(&done, &mut expected, finished.then_some(all_written))?;
        }
        // The stored token predates our own writes: a change that nets out against it (an item
        // deleted and restored, created and deleted) would never be reported. Listing the
        // written sides again stores a token that includes them; another client's change in
        // between is fetched like any other.
        // A folder has no token: its next listing is complete anyway, and what was written is
        // recorded with the etags the writes returned.
        for (i, side) in Side::BOTH.into_iter().enumerate() {
            if wrote[i] && self.relists(side) {
                let observation = self.observe(side).await?;
                self.commit(observation)?;
            }
        }
        if !finished {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            ran_fine(&tx, self.pair.id, report.all_written(), expected)?;
            tx.commit()?;
        }
        assert_eq!(
            report
                .counts
                .plus(&report.deferred_counts)
                .plus(&report.refused_counts),
            report.planned,
            "every planned action is written, deferred or refused"
        );
        // Display name and colour ride along (at most hourly); they never fail the sync.
        if let Err(err) = metadata::sync_metadata(self, false).await {
            tracing::warn!(pair = %self.pair.name, %err, "display name and colour not synced");
        }
        Ok(report)
    }

    /// Keeps, durably, the versions `batch` overwrites or deletes, before any of its writes.
    /// When the batch starts with several writes to a folder, they are kept while that folder
    /// makes those files durable under temporary names (returned, to be moved into place by
    /// [`PairSync::write_group`]); nothing is in place until both are done.
    fn keep_versions_staging(
        &self,
        batch: &[Action],
    ) -> Result<Option<Result<StagedBatch, StorageError>>, SyncError> {
        let (side, end) = group_at(batch, 0);
        let vdir = match side.map(|side| self.storage(side)) {
            Some(Storage::Vdir(vdir)) if end > 1 => vdir,
            _ => return self.keep_versions(batch).map(|()| None),
        };
        let writes = item_writes(&batch[..end]);
        let (kept, staged) = std::thread::scope(|scope| {
            let kept = scope.spawn(|| self.keep_versions(batch));
            let staged = vdir.stage(&writes);
            (kept.join(), staged)
        });
        kept.map_err(|_| {
            SyncError::Run("keeping the versions a sync replaces failed".to_owned())
        })??;
        Ok(Some(staged))
    }

    fn keep_versions(&self, batch: &[Action]) -> Result<(), SyncError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let pair = &self.pair;
        for action in batch {
            let keep =
                |side: Side, href: &str, reason: &str, content: &[u8], summary: &str, uid: &str| {
                    state::record_version(
                        &tx,
                        pair.id,
                        pair.storage(side).id,
                        side,
                        uid,
                        Some(href),
                        summary,
                        reason,
                        content,
                    )
                };
            match action {
                Action::Update {
                    side,
                    uid,
                    summary,
                    href,
                    previous,
                    ..
                } => {
                    let reason = action.decided().unwrap_or("overwritten");
                    keep(*side, href, reason, previous, summary, uid)?
                }
                Action::Delete {
                    side,
                    uid,
                    summary,
                    href,
                    previous,
                    ..
                } => keep(
                    *side,
                    href,
                    action.decided().unwrap_or("deleted"),
                    previous,
                    summary,
                    uid,
                )?,
                // A policy undid a deletion: the deleted version is kept with the reason.
                Action::Create {
                    side,
                    uid,
                    summary,
                    previous,
                    decided: Some(reason),
                    ..
                } => {
                    let href = self.storage(*side).href_for(uid);
                    keep(*side, &href, reason, previous, summary, uid)?
                }
                Action::Merge {
                    uid,
                    summary,
                    a,
                    b,
                    previous_a,
                    previous_b,
                    ..
                } => {
                    keep(Side::A, &a.href, "merged", previous_a, summary, uid)?;
                    keep(Side::B, &b.href, "merged", previous_b, summary, uid)?;
                }
                _ => {}
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Writes one action. A conditional write that loses is re-read first: if the item
    /// already holds what was to be written (our own write before a crash), it is recorded.
    async fn write(&self, action: &Action) -> Result<Done, StorageError> {
        let result = self.write_once(action).await;
        self.settle(action, result).await
    }

    /// Writes a run of creates and updates on `side` as one batch of the storage; each
    /// result is settled as [`PairSync::write`] settles it.
    async fn write_group(
        &self,
        side: Side,
        group: &[Action],
        staged: Option<Result<StagedBatch, StorageError>>,
    ) -> Result<Vec<Result<Done, StorageError>>, StorageError> {
        let writes = item_writes(group);
        let written = match (staged, self.storage(side)) {
            (Some(staged), Storage::Vdir(vdir)) => vdir.place(&writes, staged?),
            _ => self.storage(side).write_many(&writes).await?,
        };
        let mut out = Vec::with_capacity(written.len());
        for (action, result) in group.iter().zip(written) {
            let done = result.and_then(|listed| written_done(action, side, listed));
            out.push(self.settle(action, done).await);
        }
        Ok(out)
    }

    /// A write that lost its condition is re-read: if the item already holds what was to be
    /// written (our own write before a crash), it is recorded; a create whose name another
    /// item holds is refused (the next sync would only meet it again); else it stays
    /// "changed".
    async fn settle(
        &self,
        action: &Action,
        result: Result<Done, StorageError>,
    ) -> Result<Done, StorageError> {
        match result {
            Err(err) if err.is_changed() => {
                let (side, href, hash, creates) = match action {
                    Action::Create {
                        side, uid, source, ..
                    } => (
                        *side,
                        self.storage(*side).href_for(uid),
                        source.hash.clone(),
                        Some(uid),
                    ),
                    Action::Update {
                        side, href, source, ..
                    } => (*side, href.clone(), source.hash.clone(), None),
                    _ => return Err(err),
                };
                let now = self
                    .storage(side)
                    .fetch(std::slice::from_ref(&href))
                    .await?;
                let Some(found) = now.into_iter().next() else {
                    return Err(err);
                };
                // Already holding what was to be written: recorded as written.
                let taken_by = match Item::parse(found.raw) {
                    Ok(item) if item.hash == hash => {
                        let made = Listed {
                            href: found.href,
                            etag: found.etag,
                        };
                        return written_done(action, side, made);
                    }
                    Ok(item) if creates.is_some_and(|uid| *uid != item.uid) => {
                        format!("another item (UID {}) has that name", item.uid)
                    }
                    Err(_) if creates.is_some() => {
                        "an unreadable file (see `concord quarantine list`) has that name"
                            .to_owned()
                    }
                    _ => return Err(err),
                };
                Err(StorageError::Refused {
                    href: found.href,
                    reason: taken_by,
                })
            }
            other => other,
        }
    }

    async fn write_once(&self, action: &Action) -> Result<Done, StorageError> {
        Ok(match action {
            Action::Create {
                side, uid, content, ..
            } => {
                let made = self.storage(*side).create(uid, content).await?;
                written_done(action, *side, made)?
            }
            Action::Update {
                side,
                href,
                etag,
                content,
                ..
            } => {
                let etag = self.storage(*side).update(href, etag, content).await?;
                let made = Listed {
                    href: href.clone(),
                    etag,
                };
                written_done(action, *side, made)?
            }
            Action::Delete {
                side,
                uid,
                href,
                etag,
                ..
            } => {
                self.storage(*side).delete(href, etag).await?;
                Done::Deleted(*side, uid.clone(), href.clone())
            }
            Action::Merge {
                uid,
                summary,
                content,
                a,
                b,
                ..
            } => {
                let hash = Item::parse(content.clone())
                    .map(|i| i.hash)
                    .unwrap_or_default();
                let a_etag = self.a.update(&a.href, &a.etag, content).await?;
                let b_etag = self.b.update(&b.href, &b.etag, content).await?;
                Done::Synced(Synced {
                    uid: uid.clone(),
                    a: SyncedSide {
                        href: a.href.clone(),
                        etag: a_etag,
                        hash: hash.clone(),
                    },
                    b: SyncedSide {
                        href: b.href.clone(),
                        etag: b_etag,
                        hash,
                    },
                    base: content.clone(),
                    summary: summary.clone(),
                })
            }
            Action::Record { synced, .. } => Done::Synced(synced.clone()),
            Action::Forget { uid, .. } => Done::Forgotten(uid.clone()),
            Action::Conflict { conflict, .. } => Done::Conflict(conflict.clone()),
        })
    }

    /// Whether a run that wrote to `side` lists it again afterwards (see [`PairSync::apply`]):
    /// a server, not a folder.
    fn relists(&self, side: Side) -> bool {
        !matches!(self.storage(side), Storage::Vdir(_))
    }

    /// Records what was done; `expected` follows the plan-input count (see [`PairSync::apply`]).
    /// The run's last record, given whether every write was made, also stores that the pair
    /// ran fine (one commit to disk for both).
    fn record(
        &self,
        done: &[Done],
        expected: &mut Option<i64>,
        finish: Option<bool>,
    ) -> Result<(), SyncError> {
        // The writes outdate the committed views. Freeing thousands of entries takes a
        // millisecond or more, so it is done beside the sync, not in its way.
        let outdated = std::mem::take(&mut *self.committed_views());
        if outdated.iter().any(Option::is_some) {
            std::thread::spawn(move || drop(outdated));
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = self.pair.id;
        if *expected != Some(state::plan_versions(&tx, id)?.0) {
            *expected = None;
        }
        for d in done {
            match d {
                Done::Synced(synced) => {
                    state::record_synced(&tx, id, synced)?;
                    state::close_conflict(&tx, id, &synced.uid)?;
                }
                Done::Deleted(side, uid, href) => {
                    state::remove_synced(&tx, id, uid)?;
                    state::remove_seen(&tx, id, *side, href)?;
                    state::close_conflict(&tx, id, uid)?;
                }
                Done::Forgotten(uid) => {
                    state::remove_synced(&tx, id, uid)?;
                    state::close_conflict(&tx, id, uid)?;
                }
                Done::Conflict(conflict) => state::open_conflict(&tx, id, conflict)?,
            }
        }
        if expected.is_some() {
            *expected = Some(state::plan_versions(&tx, id)?.0);
        }
        if let Some(all_written) = finish {
            ran_fine(&tx, id, all_written, *expected)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Stores that the pair's run went through. If every action did (`all_written`) and nothing
/// else moved the plan-input count since planning (`expected` is where the run's own writes
/// left it), nothing is left to do: the pair is settled.
fn ran_fine(
    tx: &rusqlite::Transaction<'_>,
    pair_id: i64,
    all_written: bool,
    expected: Option<i64>,
) -> Result<(), SyncError> {
    state::set_stopped(tx, pair_id, None)?;
    state::set_outcome(tx, pair_id, None)?;
    let now = state::plan_versions(tx, pair_id)?.0;
    if all_written && expected == Some(now) {
        state::settle(tx, pair_id, now)?;
    }
    Ok(())
}

/// The group of actions written together from `start` of `batch`: a run of creates and updates
/// on one side (one batch of its storage; a vdir makes it durable at once), else the action
/// alone. Its side if it writes, and where it ends.
fn group_at(batch: &[Action], start: usize) -> (Option<Side>, usize) {
    let side = batch.get(start).and_then(single_write_side);
    let end = match side {
        Some(side) => batch[start..]
            .iter()
            .position(|a| single_write_side(a) != Some(side))
            .map_or(batch.len(), |n| start + n),
        None => start + 1,
    };
    (side, end)
}

/// The writes of a group of creates and updates.
fn item_writes(group: &[Action]) -> Vec<ItemWrite<'_>> {
    group
        .iter()
        .filter_map(|action| match action {
            Action::Create { uid, content, .. } => Some(ItemWrite::Create { uid, raw: content }),
            Action::Update {
                href,
                etag,
                content,
                ..
            } => Some(ItemWrite::Update {
                href,
                etag,
                raw: content,
            }),
            _ => None,
        })
        .collect()
}

/// The side a create or update writes to; None for any other action.
fn single_write_side(action: &Action) -> Option<Side> {
    match action {
        Action::Create { side, .. } | Action::Update { side, .. } => Some(*side),
        _ => None,
    }
}

/// What a create or update that wrote `made` on `side` leaves to record.
fn written_done(action: &Action, side: Side, made: Listed) -> Result<Done, StorageError> {
    let (uid, content, source, summary) = match action {
        Action::Create {
            uid,
            content,
            source,
            summary,
            ..
        }
        | Action::Update {
            uid,
            content,
            source,
            summary,
            ..
        } => (uid, content, source, summary),
        other => {
            return Err(StorageError::Invalid(format!(
                "{} is not a create or an update",
                other.describe()
            )));
        }
    };
    let written = SyncedSide {
        href: made.href,
        etag: made.etag,
        hash: source.hash.clone(),
    };
    Ok(Done::Synced(synced_pair(
        side,
        written,
        source.clone(),
        uid,
        content,
        summary,
    )))
}

/// What one applied action leaves to record.
enum Done {
    Synced(Synced),
    Deleted(Side, String, String),
    Forgotten(String),
    Conflict(state::Conflict),
}

fn synced_pair(
    written_side: Side,
    written: SyncedSide,
    source: SyncedSide,
    uid: &str,
    content: &[u8],
    summary: &str,
) -> Synced {
    let (a, b) = match written_side {
        Side::A => (written, source),
        Side::B => (source, written),
    };
    Synced {
        uid: uid.to_owned(),
        a,
        b,
        base: content.to_vec(),
        summary: summary.to_owned(),
    }
}
