//! Plan, the second stage: the stored views and state (and what an observation fetched) made
//! into the three-way plan of [`super::reconcile`], with the guard's verdict on it. Which items
//! need planning at all is known from this process's own commits ([`Basis`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::observe::{CommittedView, Observation, ViewStats, duplicates, unreadable_hrefs};
use super::reconcile::{Current, Inputs, Plan, plan};
use super::{PairSync, SyncOptions, guard};
use crate::sync::SyncError;
use crate::sync::item::Item;
use crate::sync::state::{self, Seen, Side};

/// A planned run, ready to apply.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Plan,
    pub stopped: Option<String>,
    pub quarantined: usize,
    /// The most deletions the guard allowed on each side (`[a, b]`; no limit once the person
    /// confirmed them). A plan past them is stopped, never applied.
    pub deletes_max: [usize; 2],
    /// The pair's plan-input count the plan was made at (see [`Basis`]).
    pub(super) version: i64,
}

/// What this process knows, from its own commits, of how the pair's plan inputs changed.
/// A sync that leaves nothing to do marks the pair settled at the count of changes to those
/// inputs (schema version 5 counts them with triggers, whoever writes). If that count has not
/// moved except by this process's commits, only the items these commits touched can have
/// anything to do: planning the other thousands would find nothing.
#[derive(Debug, Default)]
pub(super) enum Basis {
    /// No commit by this process yet.
    #[default]
    Unknown,
    /// The pair was settled when this process first committed; since then only its own
    /// commits, to the items of `touched`, moved the count, to `version`.
    Since {
        version: i64,
        touched: BTreeSet<String>,
    },
    /// Anything may have changed: every item is planned.
    Everything,
}

impl Basis {
    /// After a commit that found the count at `before` (with the pair settled at `settled`)
    /// and left it at `after`, touching the items of `touched`.
    pub(super) fn advance(
        &mut self,
        (before, settled): (i64, Option<i64>),
        after: i64,
        touched: impl IntoIterator<Item = String>,
    ) {
        let continues = match self {
            Basis::Unknown => settled == Some(before),
            Basis::Since { version, .. } => *version == before,
            Basis::Everything => false,
        };
        if !continues {
            *self = Basis::Everything;
            return;
        }
        let mut all = match std::mem::take(self) {
            Basis::Since { touched, .. } => touched,
            _ => BTreeSet::new(),
        };
        all.extend(touched);
        *self = Basis::Since {
            version: after,
            touched: all,
        };
    }
}

impl PairSync {
    /// Plans the run from the stored views (and what `observations` already fetched), and
    /// checks the safety limits. Planned from the stored views alone after this process's
    /// own commits to a settled pair, only the items those commits touched are planned (see
    /// [`Basis`]); test builds plan every item as well and check both plans agree.
    pub async fn prepare(
        &self,
        observations: &[&Observation],
        options: &SyncOptions,
    ) -> Result<Prepared, SyncError> {
        let version = state::plan_versions(&self.conn(), self.pair.id)?.0;
        let scope = match &*self.basis() {
            Basis::Since {
                version: since,
                touched,
            } if observations.is_empty() && *since == version => Some(touched.clone()),
            _ => None,
        };
        let prepared = self
            .prepare_within(observations, options, scope.as_ref(), version)
            .await?;
        #[cfg(debug_assertions)]
        if scope.is_some() {
            let everything = self
                .prepare_within(observations, options, None, version)
                .await?;
            assert_eq!(
                prepared.plan, everything.plan,
                "planning only the items touched since the pair settled missed something"
            );
        }
        Ok(prepared)
    }

    /// [`PairSync::prepare`] for the items of `scope` (None: every item).
    async fn prepare_within(
        &self,
        observations: &[&Observation],
        options: &SyncOptions,
        scope: Option<&BTreeSet<String>>,
        version: i64,
    ) -> Result<Prepared, SyncError> {
        let mut stats = [ViewStats::default(); 2];
        // Per side, what no longer reads (quarantined there), seen in the whole view.
        let mut unreadable: [HashSet<String>; 2] = Default::default();
        let (mut synced, synced_count, conflicts, stored) = {
            let mut conn = self.conn();
            // One snapshot of the stored state.
            let tx = conn.transaction()?;
            // A side not observed here is planned from its stored view: the one this process
            // just committed if there is one, else read back; only its items in scope.
            let mut kept = self.committed_views();
            let mut stored: [Option<BTreeMap<String, Seen>>; 2] = [None, None];
            for (i, side) in Side::BOTH.into_iter().enumerate() {
                if observations.iter().any(|o| o.side == Some(side)) {
                    continue;
                }
                let view = match kept[i].take() {
                    Some(view) => view,
                    None => {
                        let seen = state::seen(&tx, self.pair.id, side)?;
                        let stats = ViewStats::of(&seen);
                        CommittedView { seen, stats }
                    }
                };
                stats[i] = view.stats;
                unreadable[i] = unreadable_hrefs(&view.seen);
                stored[i] = Some(match scope {
                    Some(uids) => {
                        let in_scope = view
                            .seen
                            .iter()
                            .filter(|(_, s)| s.uid.as_ref().is_some_and(|uid| uids.contains(uid)))
                            .map(|(href, s)| (href.clone(), s.clone()))
                            .collect();
                        kept[i] = Some(view);
                        in_scope
                    }
                    None => view.seen,
                });
            }
            let (synced, count) = match scope {
                Some(uids) => (
                    state::synced_of(&tx, self.pair.id, uids.iter().map(String::as_str))?,
                    usize::try_from(state::synced_count(&tx, self.pair.id)?).unwrap_or(0),
                ),
                None => {
                    let synced = state::synced(&tx, self.pair.id)?;
                    let count = synced.len();
                    (synced, count)
                }
            };
            let conflicts = state::conflicts(&tx, self.pair.id)?;
            drop(tx);
            (synced, count, conflicts, stored)
        };
        let not_stored = BTreeMap::new();
        let mut views: [BTreeMap<String, Current>; 2] = [BTreeMap::new(), BTreeMap::new()];
        let mut quarantined = 0;
        let mut readable = [false; 2];
        for (i, side) in Side::BOTH.into_iter().enumerate() {
            let observed = observations.iter().find(|o| o.side == Some(side));
            let seen = match observed {
                Some(o) => &o.seen,
                None => stored[i].as_ref().unwrap_or(&not_stored),
            };
            if let Some(o) = observed {
                stats[i] = ViewStats::of(&o.seen);
                unreadable[i] = unreadable_hrefs(&o.seen);
            }
            quarantined += stats[i].unreadable + stats[i].duplicate;
            let (unique, _) = duplicates(seen, &synced, side);
            let mut missing = Vec::new();
            for (uid, s) in &unique {
                let hash = s.hash.clone().unwrap_or_default();
                let unchanged = synced.get(uid).is_some_and(|st| st.side(side).hash == hash);
                let raw = observed
                    .and_then(|o| o.fetched.get(&s.href).cloned())
                    .or_else(|| {
                        let cache = self
                            .fetched
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        cache[i].get(&s.href).cloned()
                    });
                if raw.is_none() && !unchanged {
                    missing.push(s.href.clone());
                }
                views[i].insert(
                    uid.clone(),
                    Current {
                        href: s.href.clone(),
                        etag: s.etag.clone(),
                        hash,
                        summary: synced
                            .get(uid)
                            .map(|st| st.summary.clone())
                            .unwrap_or_default(),
                        raw,
                    },
                );
            }
            // Each item read here is summarized from its content (parsed once: when observed,
            // or when fetched just now).
            let mut summarized = HashSet::new();
            for fetched in self.storage(side).fetch(&missing).await? {
                if let Ok(item) = Item::parse(fetched.raw.clone())
                    && let Some(current) = views[i].get_mut(&item.uid)
                {
                    current.etag = fetched.etag;
                    current.hash = item.hash;
                    current.raw = Some(fetched.raw);
                    current.summary = item.summary;
                    summarized.insert(item.uid);
                }
            }
            let known = self
                .summaries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (uid, current) in &mut views[i] {
                let Some(raw) = &current.raw else { continue };
                if summarized.contains(uid) {
                    continue;
                }
                match known[i].get(&current.href) {
                    Some(summary) => current.summary.clone_from(summary),
                    None => {
                        if let Ok(item) = Item::parse(raw.clone()) {
                            current.summary = item.summary;
                        }
                    }
                }
            }
            drop(known);
            // Gone since listed: leave it out rather than act on what we cannot read.
            let gone: Vec<String> = views[i]
                .iter()
                .filter(|(uid, c)| {
                    c.raw.is_none()
                        && synced
                            .get(*uid)
                            .is_none_or(|st| st.side(side).hash != c.hash)
                })
                .map(|(uid, _)| uid.clone())
                .collect();
            for uid in gone {
                views[i].remove(&uid);
            }
            readable[i] = match scope {
                Some(_) => stats[i].readable,
                None => !views[i].is_empty(),
            };
        }
        // An item whose synced copy on a side no longer reads is held as it was: neither its
        // absence there nor the other side's changes are acted on until the person mends or
        // removes what is quarantined (a corrupted file must not delete the good copy).
        guard::hold_unreadable(&mut synced, &mut views, &unreadable);
        let [a, b] = &views;
        let plan = plan(Inputs {
            synced: &synced,
            a,
            b,
            open_conflicts: &conflicts,
            direction: self.pair.direction,
            policy: self.pair.conflict_policy,
        });
        let (stopped, deletes_max) = if options.allow_deletes {
            (None, [usize::MAX; 2])
        } else {
            let max = guard::deletes_max(synced_count, readable);
            let stopped = self.guard(&plan, synced_count, readable);
            debug_assert_eq!(
                stopped.is_some(),
                guard::deletes_past(&plan, max),
                "the guard stops exactly the plans that delete past its limits"
            );
            (stopped, max)
        };
        Ok(Prepared {
            plan,
            stopped,
            quarantined,
            deletes_max,
            version,
        })
    }
}
