//! Guard, the check between plan and apply: an emptied side while the plan would delete on
//! the other, or too many deletions, stop the pair until the person confirms; an item whose
//! synced copy no longer reads is held, neither side acted on.

use super::PairSync;
use super::reconcile::Plan;
use crate::sync::state::Side;

/// A run stops and asks when it would delete more than this share of a side's items...
pub const DELETE_SHARE_MAX_PERCENT: usize = 50;
/// ...and more than this many.
pub const DELETE_COUNT_MAX: usize = 10;

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
