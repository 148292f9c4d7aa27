//! Guard, the check between plan and apply: an emptied side while the plan would delete on
//! the other, or too many deletions, stop the pair until the person confirms; an item whose
//! synced copy no longer reads is held, neither side acted on.

use std::collections::{BTreeMap, HashSet};

use super::PairSync;
use super::reconcile::{Current, Plan};
use crate::sync::state::{Side, Synced};

/// A run stops and asks when it would delete more than this share of a side's items...
pub const DELETE_SHARE_MAX_PERCENT: usize = 50;
/// ...and more than this many.
pub const DELETE_COUNT_MAX: usize = 10;

/// The most deletions the guard lets a plan make on each side (`[a, b]`), with `synced` items
/// synced and each side's view readable or not: none after an emptied side, else up to
/// [`DELETE_COUNT_MAX`] or [`DELETE_SHARE_MAX_PERCENT`] of the synced items, whichever is more.
/// [`PairSync::guard`] stops exactly the plans that go past it; apply asserts none does.
pub fn deletes_max(synced: usize, readable: [bool; 2]) -> [usize; 2] {
    let share = synced * DELETE_SHARE_MAX_PERCENT / 100;
    let most = DELETE_COUNT_MAX.max(share);
    // Deletions on side i follow from the other side's view.
    let emptied = |other: usize| !readable[other] && synced > 0;
    [0, 1].map(|i| if emptied(1 - i) { 0 } else { most })
}

/// Whether `plan` deletes more on a side than `max` allows (see [`deletes_max`]).
pub fn deletes_past(plan: &Plan, max: [usize; 2]) -> bool {
    let counts = plan.counts();
    counts.delete_a > max[0] || counts.delete_b > max[1]
}

/// Holds the items whose synced copy on a side no longer reads (its href is in that side's
/// `unreadable`, and the side shows no readable item for it): they leave `synced` and both
/// views, so neither side is acted on. Returns their UIDs.
pub fn hold_unreadable(
    synced: &mut BTreeMap<String, Synced>,
    views: &mut [BTreeMap<String, Current>; 2],
    unreadable: &[HashSet<String>; 2],
) -> Vec<String> {
    let held: Vec<String> = synced
        .iter()
        .filter(|(uid, st)| {
            Side::BOTH.into_iter().enumerate().any(|(i, side)| {
                !views[i].contains_key(*uid) && unreadable[i].contains(&st.side(side).href)
            })
        })
        .map(|(uid, _)| uid.clone())
        .collect();
    for uid in &held {
        synced.remove(uid);
        for view in views.iter_mut() {
            view.remove(uid);
        }
    }
    held
}

impl PairSync {
    /// The safety limits: an emptied side, or too many deletions, stop the pair.
    pub(super) fn guard(&self, plan: &Plan, synced: usize, readable: [bool; 2]) -> Option<String> {
        let name = &self.pair.name;
        let counts = plan.counts();
        // Deletions the plan would make on each side.
        let deletes = [counts.delete_a, counts.delete_b];
        for (i, side) in Side::BOTH.into_iter().enumerate() {
            // Emptied, and about to empty the other side after it (an item edited on the other
            // side meanwhile is a conflict, not a deletion, and needs no stop).
            if !readable[i] && synced > 0 && deletes[1 - i] > 0 {
                return Some(format!(
                    "side {} ({}) now lists no items, but {} synced item(s) were there; nothing was deleted. \
                     If it was emptied on purpose, run `concord sync {name} --allow-deletes`",
                    side.as_str(),
                    self.pair.storage(side).location,
                    synced
                ));
            }
        }
        for (side, deletes) in [(Side::A, counts.delete_a), (Side::B, counts.delete_b)] {
            if deletes > DELETE_COUNT_MAX && deletes * 100 > synced * DELETE_SHARE_MAX_PERCENT {
                return Some(format!(
                    "this sync would delete {deletes} of {} items on side {} ({}); nothing was deleted. \
                     If that is intended, run `concord sync {name} --allow-deletes`",
                    synced,
                    side.as_str(),
                    self.pair.storage(side).location
                ));
            }
        }
        None
    }
}
