//! The three-way plan: for every UID, compare what each side holds now with what both held at
//! the last sync, and decide creates, updates and deletes per side, merges of disjoint edits,
//! or a conflict. Pure: no I/O, so every rule is table-tested. Equal changes on both sides are
//! no conflict; a conflict affects only its own item. A pair's policy (a-wins, b-wins,
//! newest-wins) settles what would be a conflict, and says why on the action, for history.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::sync::item::{Component, decode};
use crate::sync::merge::{Merge, merge};
use crate::sync::state::{
    Conflict, ConflictPolicy, ConflictSide, Direction, Side, Synced, SyncedSide,
};

/// An item as a side holds it now. `raw` is present whenever the item differs from the last
/// synced state (the caller fetches those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub href: String,
    pub etag: String,
    pub hash: String,
    pub summary: String,
    pub raw: Option<Vec<u8>>,
}

impl Current {
    fn synced_side(&self) -> SyncedSide {
        SyncedSide {
            href: self.href.clone(),
            etag: self.etag.clone(),
            hash: self.hash.clone(),
        }
    }

    fn content(&self) -> Vec<u8> {
        self.raw.clone().unwrap_or_default()
    }
}

/// One step of the plan. Contents are not shown in `--json` plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Write the other side's item to `side`, where it does not exist.
    Create {
        side: Side,
        uid: String,
        summary: String,
        #[serde(skip)]
        content: Vec<u8>,
        #[serde(skip)]
        source: SyncedSide,
        /// Why a pair's policy decided this, for item history (None: plain sync).
        #[serde(skip_serializing_if = "Option::is_none")]
        decided: Option<String>,
        /// The version `side` deleted, kept in history when a policy undoes the deletion.
        #[serde(skip)]
        previous: Vec<u8>,
    },
    /// Replace the item on `side` (at `href`, if still at `etag`) with the other side's.
    Update {
        side: Side,
        uid: String,
        summary: String,
        href: String,
        #[serde(skip)]
        etag: String,
        #[serde(skip)]
        content: Vec<u8>,
        #[serde(skip)]
        source: SyncedSide,
        #[serde(skip)]
        previous: Vec<u8>,
        /// Why a pair's policy decided this, for item history (None: plain sync).
        #[serde(skip_serializing_if = "Option::is_none")]
        decided: Option<String>,
    },
    /// Delete the item on `side`: it was deleted on the other.
    Delete {
        side: Side,
        uid: String,
        summary: String,
        href: String,
        #[serde(skip)]
        etag: String,
        #[serde(skip)]
        previous: Vec<u8>,
        /// Why a pair's policy decided this, for item history (None: plain sync).
        #[serde(skip_serializing_if = "Option::is_none")]
        decided: Option<String>,
    },
    /// Both sides edited different properties: write the merged item to both.
    Merge {
        uid: String,
        summary: String,
        #[serde(skip)]
        content: Vec<u8>,
        #[serde(skip)]
        a: SyncedSide,
        #[serde(skip)]
        b: SyncedSide,
        #[serde(skip)]
        previous_a: Vec<u8>,
        #[serde(skip)]
        previous_b: Vec<u8>,
    },
    /// Both sides hold the same content: remember it (new etags, or equal edits).
    Record {
        uid: String,
        summary: String,
        #[serde(skip)]
        synced: Synced,
    },
    /// Gone on both sides: forget it.
    Forget { uid: String, summary: String },
    /// Changes that need the person.
    Conflict {
        uid: String,
        summary: String,
        kind: String,
        properties: Vec<String>,
        #[serde(skip)]
        conflict: Conflict,
    },
}

impl Action {
    pub fn uid(&self) -> &str {
        match self {
            Action::Create { uid, .. }
            | Action::Update { uid, .. }
            | Action::Delete { uid, .. }
            | Action::Merge { uid, .. }
            | Action::Record { uid, .. }
            | Action::Forget { uid, .. }
            | Action::Conflict { uid, .. } => uid,
        }
    }

    /// Whether applying this action writes to `side`'s storage.
    pub fn writes_to(&self, side: Side) -> bool {
        match self {
            Action::Create { side: s, .. }
            | Action::Update { side: s, .. }
            | Action::Delete { side: s, .. } => *s == side,
            Action::Merge { .. } => true,
            Action::Record { .. } | Action::Forget { .. } | Action::Conflict { .. } => false,
        }
    }

    /// Why a pair's policy decided this action, when one did.
    pub fn decided(&self) -> Option<&str> {
        match self {
            Action::Create { decided, .. }
            | Action::Update { decided, .. }
            | Action::Delete { decided, .. } => decided.as_deref(),
            _ => None,
        }
    }

    /// A short line for people: "create on b: Team meeting (…)", with the policy's reason
    /// when a policy decided it.
    pub fn describe(&self) -> String {
        let line = self.describe_plainly();
        match self.decided() {
            Some(decided) => format!("{line} [{decided}]"),
            None => line,
        }
    }

    fn describe_plainly(&self) -> String {
        match self {
            Action::Create { side, summary, .. } => {
                format!("create on {}: {summary}", side.as_str())
            }
            Action::Update { side, summary, .. } => {
                format!("update on {}: {summary}", side.as_str())
            }
            Action::Delete { side, summary, .. } => {
                format!("delete on {}: {summary}", side.as_str())
            }
            Action::Merge { summary, .. } => format!("merge both sides' edits: {summary}"),
            Action::Record { summary, .. } => format!("already equal: {summary}"),
            Action::Forget { summary, .. } => format!("deleted on both sides: {summary}"),
            Action::Conflict {
                summary,
                kind,
                properties,
                ..
            } => {
                if properties.is_empty() {
                    format!("conflict ({kind}): {summary}")
                } else {
                    format!("conflict ({kind}: {}): {summary}", properties.join(", "))
                }
            }
        }
    }
}

/// Actions counted by what they do on each side: what a plan would do (as `--dry-run` prints
/// it), or, of a run, what it wrote and what it could not (and as a sync's durable checkpoint
/// stores them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCounts {
    pub create_a: usize,
    pub create_b: usize,
    pub update_a: usize,
    pub update_b: usize,
    pub delete_a: usize,
    pub delete_b: usize,
    pub merged: usize,
    pub conflicts: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl PlanCounts {
    /// Counts `action` (bookkeeping, recording or forgetting, counts as nothing).
    pub fn add(&mut self, action: &Action) {
        let count = match action {
            Action::Create { side: Side::A, .. } => &mut self.create_a,
            Action::Create { side: Side::B, .. } => &mut self.create_b,
            Action::Update { side: Side::A, .. } => &mut self.update_a,
            Action::Update { side: Side::B, .. } => &mut self.update_b,
            Action::Delete { side: Side::A, .. } => &mut self.delete_a,
            Action::Delete { side: Side::B, .. } => &mut self.delete_b,
            Action::Merge { .. } => &mut self.merged,
            Action::Conflict { .. } => &mut self.conflicts,
            Action::Record { .. } | Action::Forget { .. } => return,
        };
        *count += 1;
    }

    /// The sum of each count with `other`'s.
    pub fn plus(&self, other: &Self) -> Self {
        Self {
            create_a: self.create_a + other.create_a,
            create_b: self.create_b + other.create_b,
            update_a: self.update_a + other.update_a,
            update_b: self.update_b + other.update_b,
            delete_a: self.delete_a + other.delete_a,
            delete_b: self.delete_b + other.delete_b,
            merged: self.merged + other.merged,
            conflicts: self.conflicts + other.conflicts,
        }
    }
}

impl Plan {
    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts::default();
        for action in &self.actions {
            c.add(action);
        }
        c
    }

    /// Actions that change something (not mere bookkeeping).
    pub fn changes(&self) -> impl Iterator<Item = &Action> {
        self.actions
            .iter()
            .filter(|a| !matches!(a, Action::Record { .. } | Action::Forget { .. }))
    }
}

/// Everything the plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub synced: &'a BTreeMap<String, Synced>,
    pub a: &'a BTreeMap<String, Current>,
    pub b: &'a BTreeMap<String, Current>,
    /// Open conflicts by UID, with the side hashes they were recorded at.
    pub open_conflicts: &'a BTreeMap<String, crate::sync::state::RecordedHashes>,
    pub direction: Direction,
    pub policy: ConflictPolicy,
}

/// Plans the sync of every UID either side or the state knows.
pub fn plan(inputs: Inputs<'_>) -> Plan {
    let uids: BTreeSet<&String> = inputs
        .synced
        .keys()
        .chain(inputs.a.keys())
        .chain(inputs.b.keys())
        .collect();
    let mut actions = Vec::new();
    for uid in uids {
        if let Some(action) = plan_item(&inputs, uid) {
            if let Action::Conflict { conflict, .. } = &action {
                let hashes = (
                    conflict.a.as_ref().map(|s| s.hash.clone()),
                    conflict.b.as_ref().map(|s| s.hash.clone()),
                );
                // Already recorded as it stands: nothing new to say.
                if inputs.open_conflicts.get(uid) == Some(&hashes) {
                    continue;
                }
            }
            actions.push(action);
        }
    }
    Plan { actions }
}

fn plan_item(inputs: &Inputs<'_>, uid: &str) -> Option<Action> {
    let (s, a, b) = (inputs.synced.get(uid), inputs.a.get(uid), inputs.b.get(uid));
    let writes = |side| inputs.direction.writes(side);
    let current = |side| match side {
        Side::A => a,
        Side::B => b,
    };
    let summary = a
        .or(b)
        .map(|c| c.summary.clone())
        .or_else(|| s.map(|s| s.summary.clone()))
        .unwrap_or_default();
    let create_decided = |to: Side, decided: Option<String>, previous: Vec<u8>| {
        let from = current(to.other())?;
        writes(to).then(|| Action::Create {
            side: to,
            uid: uid.to_owned(),
            summary: summary.clone(),
            content: from.content(),
            source: from.synced_side(),
            decided,
            previous,
        })
    };
    let create = |to: Side| create_decided(to, None, Vec::new());
    let update_decided = |to: Side, previous: Vec<u8>, decided: Option<String>| {
        let (from, target) = (current(to.other())?, current(to)?);
        writes(to).then(|| Action::Update {
            side: to,
            uid: uid.to_owned(),
            summary: summary.clone(),
            href: target.href.clone(),
            etag: target.etag.clone(),
            content: from.content(),
            source: from.synced_side(),
            previous,
            decided,
        })
    };
    let update = |to: Side, previous: Vec<u8>| update_decided(to, previous, None);
    // The winner overwrites the loser, whose version goes to history with the reason.
    let overrule = |w: Side, rule: Option<String>| {
        let loser = current(w.other()).map(Current::content).unwrap_or_default();
        let decided = rule.map(|rule| {
            format!(
                "{rule}: kept {}, {}'s version saved",
                upper(w),
                upper(w.other())
            )
        });
        update_decided(w.other(), loser, decided)
    };
    let record = |base: Vec<u8>| {
        let (a, b) = (a?, b?);
        Some(Action::Record {
            uid: uid.to_owned(),
            summary: summary.clone(),
            synced: Synced {
                uid: uid.to_owned(),
                a: a.synced_side(),
                b: b.synced_side(),
                base,
                summary: summary.clone(),
            },
        })
    };
    let conflict = |kind: &str, properties: Vec<String>, base: Option<Vec<u8>>| {
        let side = |c: Option<&Current>| {
            c.map(|c| ConflictSide {
                href: c.href.clone(),
                etag: c.etag.clone(),
                hash: c.hash.clone(),
                content: c.content(),
            })
        };
        Some(Action::Conflict {
            uid: uid.to_owned(),
            summary: summary.clone(),
            kind: kind.to_owned(),
            properties: properties.clone(),
            conflict: Conflict {
                uid: uid.to_owned(),
                kind: kind.to_owned(),
                summary: summary.clone(),
                properties,
                base,
                a: side(a),
                b: side(b),
            },
        })
    };
    // The side whose version wins without asking, when one does, and the rule that said so
    // (None for a one-way pair, where the source is simply the truth). A deletion carries no
    // time, so "newest wins" leaves edit-vs-delete to the person.
    let winner = |deletion: bool| -> Option<(Side, Option<String>)> {
        match inputs.direction {
            Direction::AToB => Some((Side::A, None)),
            Direction::BToA => Some((Side::B, None)),
            Direction::TwoWay => {
                let rule = |side| Some((side, Some(format!("{} policy", inputs.policy.as_str()))));
                match inputs.policy {
                    ConflictPolicy::AWins => rule(Side::A),
                    ConflictPolicy::BWins => rule(Side::B),
                    ConflictPolicy::NewestWins if !deletion => newest(a?, b?),
                    ConflictPolicy::NewestWins | ConflictPolicy::Ask => None,
                }
            }
        }
    };

    match (s, a, b) {
        (None, None, None) => None,
        (None, Some(_), None) => create(Side::B),
        (None, None, Some(_)) => create(Side::A),
        (None, Some(x), Some(y)) => {
            let raw = x.content();
            if x.hash == y.hash {
                record(raw)
            } else if let Some((w, rule)) = winner(false) {
                overrule(w, rule)
            } else {
                conflict("both-created", Vec::new(), None)
            }
        }
        (Some(s), None, None) => Some(Action::Forget {
            uid: uid.to_owned(),
            summary: s.summary.clone(),
        }),
        (Some(s), Some(_), None) | (Some(s), None, Some(_)) => {
            let kept = if a.is_some() { Side::A } else { Side::B };
            let deleted = kept.other();
            let (kept_now, kept_then) = (current(kept)?, s.side(kept));
            let edited = kept_now.hash != kept_then.hash;
            let delete = |decided: Option<String>| {
                writes(kept).then(|| Action::Delete {
                    side: kept,
                    uid: uid.to_owned(),
                    summary: summary.clone(),
                    href: kept_now.href.clone(),
                    etag: kept_now.etag.clone(),
                    previous: kept_now.raw.clone().unwrap_or_else(|| s.base.clone()),
                    decided,
                })
            };
            let (edit, deletion) = (upper(kept), upper(deleted));
            match (edited, if edited { winner(true) } else { None }) {
                // A delete reaches the other side unless that side may not be written.
                (false, _) if writes(kept) => delete(None),
                (false, _) => create(deleted),
                (true, Some((w, rule))) if w == deleted => delete(rule.map(|rule| {
                    format!("{rule}: {deletion}'s deletion kept over {edit}'s edit, {edit}'s version saved")
                })),
                (true, Some((_, rule))) => {
                    let decided = rule.map(|rule| {
                        format!("{rule}: {edit}'s edit kept over {deletion}'s deletion, the deleted version saved")
                    });
                    let previous = if decided.is_some() { s.base.clone() } else { Vec::new() };
                    create_decided(deleted, decided, previous)
                }
                // Edited here, deleted there: keep the edit until the person decides.
                (true, None) => conflict("edit-delete", Vec::new(), Some(s.base.clone())),
            }
        }
        (Some(s), Some(x), Some(y)) => {
            let (a_changed, b_changed) = (x.hash != s.a.hash, y.hash != s.b.hash);
            match (a_changed, b_changed) {
                (false, false) => {
                    let moved = x.etag != s.a.etag
                        || y.etag != s.b.etag
                        || x.href != s.a.href
                        || y.href != s.b.href;
                    if moved { record(s.base.clone()) } else { None }
                }
                (true, false) if writes(Side::B) => update(Side::B, s.base.clone()),
                (false, true) if writes(Side::A) => update(Side::A, s.base.clone()),
                (true, false) | (false, true) => None,
                (true, true) if x.hash == y.hash => record(x.content()),
                (true, true) => {
                    // One-way pairs never merge: the source's version is the truth.
                    if inputs.direction != Direction::TwoWay {
                        let (w, rule) = winner(false)?;
                        return overrule(w, rule);
                    }
                    let text = |c: &Current| crate::sync::item::decode(&c.content());
                    match merge(&crate::sync::item::decode(&s.base), &text(x), &text(y)) {
                        Merge::Merged(merged) => Some(Action::Merge {
                            uid: uid.to_owned(),
                            summary: summary.clone(),
                            content: merged.into_bytes(),
                            a: x.synced_side(),
                            b: y.synced_side(),
                            previous_a: x.content(),
                            previous_b: y.content(),
                        }),
                        Merge::Conflict(properties) => match winner(false) {
                            Some((w, rule)) => overrule(w, rule),
                            None => conflict("both-edited", properties, Some(s.base.clone())),
                        },
                    }
                }
            }
        }
    }
}

/// "A" or "B", as history reasons name the sides.
fn upper(side: Side) -> String {
    side.as_str().to_ascii_uppercase()
}

/// Under "newest wins": the side changed last and why, or None on a tie or a missing time.
fn newest(a: &Current, b: &Current) -> Option<(Side, Option<String>)> {
    let (ta, tb) = (modified_at(&a.content())?, modified_at(&b.content())?);
    let shown = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let side = match ta.cmp(&tb) {
        std::cmp::Ordering::Greater => Side::A,
        std::cmp::Ordering::Less => Side::B,
        std::cmp::Ordering::Equal => return None,
    };
    Some((
        side,
        Some(format!(
            "newest-wins policy (A changed {}, B {})",
            shown(ta),
            shown(tb)
        )),
    ))
}

/// When an item was last changed, as it says: the latest LAST-MODIFIED (iCalendar) or REV
/// (vCard) of its components, else the latest DTSTAMP. None when it says nothing readable.
pub fn modified_at(raw: &[u8]) -> Option<DateTime<Utc>> {
    let tree = Component::parse(&decode(raw)).ok()?;
    let mut units = vec![&tree];
    units.extend(tree.children.iter().filter(|c| c.name != "VTIMEZONE"));
    let latest = |name: &str| {
        units
            .iter()
            .flat_map(|c| c.properties.iter().filter(|p| p.name == name))
            .filter_map(|p| parse_stamp(p.value()))
            .max()
    };
    latest("LAST-MODIFIED")
        .max(latest("REV"))
        .or_else(|| latest("DTSTAMP"))
}

/// A UTC time stamp in the spellings clients write: "20261122T093000Z",
/// "2026-11-22T09:30:00Z", with fractions or an offset, or a date alone.
fn parse_stamp(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y%m%dT%H%M%SZ",
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y%m%dT%H%M%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    for format in ["%Y%m%d", "%Y-%m-%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(value, format) {
            return Some(Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ics(summary: &str, location: &str) -> Vec<u8> {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u\r\nSUMMARY:{summary}\r\nLOCATION:{location}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").into_bytes()
    }

    fn cur(raw: &[u8], etag: &str) -> Current {
        let item = crate::sync::item::Item::parse(raw.to_vec()).unwrap();
        Current {
            href: "u.ics".into(),
            etag: etag.into(),
            hash: item.hash,
            summary: item.summary,
            raw: Some(raw.to_vec()),
        }
    }

    fn synced(raw: &[u8]) -> Synced {
        let c = cur(raw, "e0");
        Synced {
            uid: "u".into(),
            a: c.synced_side(),
            b: c.synced_side(),
            base: raw.to_vec(),
            summary: c.summary,
        }
    }

    /// Plans one item: state (as synced base), A now, B now.
    fn one(
        base: Option<&[u8]>,
        a: Option<&[u8]>,
        b: Option<&[u8]>,
        direction: Direction,
        policy: ConflictPolicy,
    ) -> Vec<String> {
        let map = |x: Option<&[u8]>, etag: &str| -> BTreeMap<String, Current> {
            x.map(|raw| {
                (
                    "u".to_owned(),
                    cur(raw, if Some(raw) == base { "e0" } else { etag }),
                )
            })
            .into_iter()
            .collect()
        };
        let s: BTreeMap<_, _> = base
            .map(|raw| ("u".to_owned(), synced(raw)))
            .into_iter()
            .collect();
        let (a, b) = (map(a, "ea"), map(b, "eb"));
        let open = BTreeMap::new();
        let plan = plan(Inputs {
            synced: &s,
            a: &a,
            b: &b,
            open_conflicts: &open,
            direction,
            policy,
        });
        plan.actions
            .iter()
            .map(|a| a.describe().split(':').next().unwrap_or("").to_owned())
            .collect()
    }

    /// Name, base, A now, B now, direction, policy, the plan's lines.
    type Case<'a> = (
        &'a str,
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Direction,
        ConflictPolicy,
        Vec<&'a str>,
    );

    #[test]
    fn the_three_way_table() {
        let base = ics("Meeting", "Room 1");
        let title = ics("Planning", "Room 1");
        let room = ics("Meeting", "Room 2");
        let other_title = ics("Review", "Room 1");
        let (two, ask) = (Direction::TwoWay, ConflictPolicy::Ask);
        let b = base.as_slice();
        let cases: Vec<Case<'_>> = vec![
            (
                "new on a",
                None,
                Some(b),
                None,
                two,
                ask,
                vec!["create on b"],
            ),
            (
                "new on b",
                None,
                None,
                Some(b),
                two,
                ask,
                vec!["create on a"],
            ),
            (
                "new on both, equal",
                None,
                Some(b),
                Some(b),
                two,
                ask,
                vec!["already equal"],
            ),
            (
                "new on both, different",
                None,
                Some(&title),
                Some(&room),
                two,
                ask,
                vec!["conflict (both-created)"],
            ),
            ("unchanged", Some(b), Some(b), Some(b), two, ask, vec![]),
            (
                "edited on a",
                Some(b),
                Some(&title),
                Some(b),
                two,
                ask,
                vec!["update on b"],
            ),
            (
                "edited on b",
                Some(b),
                Some(b),
                Some(&room),
                two,
                ask,
                vec!["update on a"],
            ),
            (
                "same edit on both",
                Some(b),
                Some(&title),
                Some(&title),
                two,
                ask,
                vec!["already equal"],
            ),
            (
                "disjoint edits",
                Some(b),
                Some(&title),
                Some(&room),
                two,
                ask,
                vec!["merge both sides' edits"],
            ),
            (
                "same property",
                Some(b),
                Some(&title),
                Some(&other_title),
                two,
                ask,
                vec!["conflict (both-edited"],
            ),
            (
                "same property, a wins",
                Some(b),
                Some(&title),
                Some(&other_title),
                two,
                ConflictPolicy::AWins,
                vec!["update on b"],
            ),
            (
                "deleted on a",
                Some(b),
                None,
                Some(b),
                two,
                ask,
                vec!["delete on b"],
            ),
            (
                "deleted on b",
                Some(b),
                Some(b),
                None,
                two,
                ask,
                vec!["delete on a"],
            ),
            (
                "deleted on both",
                Some(b),
                None,
                None,
                two,
                ask,
                vec!["deleted on both sides"],
            ),
            (
                "deleted on a, edited on b",
                Some(b),
                None,
                Some(&room),
                two,
                ask,
                vec!["conflict (edit-delete)"],
            ),
            (
                "deleted on a, edited on b, b wins",
                Some(b),
                None,
                Some(&room),
                two,
                ConflictPolicy::BWins,
                vec!["create on a"],
            ),
            (
                "one-way: b's edit is not sent to a",
                Some(b),
                Some(b),
                Some(&room),
                Direction::AToB,
                ask,
                vec![],
            ),
            (
                "one-way: deleted on b comes back",
                Some(b),
                Some(b),
                None,
                Direction::AToB,
                ask,
                vec!["create on b"],
            ),
            (
                "one-way: a overrides both edits",
                Some(b),
                Some(&title),
                Some(&other_title),
                Direction::AToB,
                ask,
                vec!["update on b"],
            ),
            (
                "one-way: new on b stays",
                None,
                None,
                Some(b),
                Direction::AToB,
                ask,
                vec![],
            ),
        ];
        for (name, s, a, bb, direction, policy, want) in cases {
            assert_eq!(one(s, a, bb, direction, policy), want, "{name}");
        }
    }

    fn stamped(summary: &str, modified: &str) -> Vec<u8> {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20261101T000000Z\r\nLAST-MODIFIED:{modified}\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").into_bytes()
    }

    /// The plan's actions for one item under `policy`, two-way.
    fn decide(
        base: Option<&[u8]>,
        a: Option<&[u8]>,
        b: Option<&[u8]>,
        policy: ConflictPolicy,
    ) -> Vec<Action> {
        let map = |x: Option<&[u8]>, etag: &str| -> BTreeMap<String, Current> {
            x.map(|raw| ("u".to_owned(), cur(raw, etag)))
                .into_iter()
                .collect()
        };
        let s: BTreeMap<_, _> = base
            .map(|raw| ("u".to_owned(), synced(raw)))
            .into_iter()
            .collect();
        let (a, b) = (map(a, "ea"), map(b, "eb"));
        let open = BTreeMap::new();
        plan(Inputs {
            synced: &s,
            a: &a,
            b: &b,
            open_conflicts: &open,
            direction: Direction::TwoWay,
            policy,
        })
        .actions
    }

    #[test]
    fn newest_wins_keeps_the_later_edit_and_says_why() {
        let base = stamped("Meeting", "20261101T000000Z");
        let older = stamped("Planning", "20261120T080000Z");
        let newer = stamped("Review", "2026-11-21T09:30:00Z");
        let actions = decide(
            Some(&base),
            Some(&older),
            Some(&newer),
            ConflictPolicy::NewestWins,
        );
        let [
            Action::Update {
                side,
                content,
                previous,
                decided: Some(decided),
                ..
            },
        ] = actions.as_slice()
        else {
            panic!("{actions:?}");
        };
        assert_eq!(*side, Side::A);
        assert_eq!(content, &newer);
        assert_eq!(previous, &older);
        assert_eq!(
            decided,
            "newest-wins policy (A changed 2026-11-20 08:00:00 UTC, B 2026-11-21 09:30:00 UTC): kept B, A's version saved"
        );
        // Both created with different content: the same rule.
        let actions = decide(None, Some(&newer), Some(&older), ConflictPolicy::NewestWins);
        assert!(
            matches!(actions.as_slice(), [Action::Update { side: Side::B, .. }]),
            "{actions:?}"
        );
    }

    #[test]
    fn newest_wins_asks_on_a_tie_a_missing_time_or_a_deletion() {
        let base = stamped("Meeting", "20261101T000000Z");
        let a = stamped("Planning", "20261120T080000Z");
        let tie = stamped("Review", "20261120T080000Z");
        let kind = |actions: Vec<Action>| match actions.as_slice() {
            [Action::Conflict { kind, .. }] => kind.clone(),
            other => panic!("{other:?}"),
        };
        let newest = ConflictPolicy::NewestWins;
        assert_eq!(
            kind(decide(Some(&base), Some(&a), Some(&tie), newest)),
            "both-edited"
        );
        let untimed = ics("Review", "Room 1");
        let base2 = ics("Meeting", "Room 1");
        let timed = ics("Planning", "Room 1");
        assert_eq!(
            kind(decide(Some(&base2), Some(&timed), Some(&untimed), newest)),
            "both-edited"
        );
        assert_eq!(
            kind(decide(Some(&base), Some(&a), None, newest)),
            "edit-delete"
        );
    }

    #[test]
    fn a_policy_over_a_deletion_is_recorded_with_its_reason() {
        let base = stamped("Meeting", "20261101T000000Z");
        let edit = stamped("Planning", "20261120T080000Z");
        // B deleted, A edited; b-wins: the deletion reaches A, A's edit to history.
        let actions = decide(Some(&base), Some(&edit), None, ConflictPolicy::BWins);
        let [
            Action::Delete {
                side: Side::A,
                previous,
                decided: Some(decided),
                ..
            },
        ] = actions.as_slice()
        else {
            panic!("{actions:?}");
        };
        assert_eq!(previous, &edit);
        assert_eq!(
            decided,
            "b-wins policy: B's deletion kept over A's edit, A's version saved"
        );
        // a-wins: A's edit returns to B, and what B deleted is kept.
        let actions = decide(Some(&base), Some(&edit), None, ConflictPolicy::AWins);
        let [
            Action::Create {
                side: Side::B,
                previous,
                decided: Some(decided),
                ..
            },
        ] = actions.as_slice()
        else {
            panic!("{actions:?}");
        };
        assert_eq!(previous, &base);
        assert_eq!(
            decided,
            "a-wins policy: A's edit kept over B's deletion, the deleted version saved"
        );
        assert!(actions[0].describe().ends_with(
            "[a-wins policy: A's edit kept over B's deletion, the deleted version saved]"
        ));
    }

    #[test]
    fn modification_times_are_read_in_the_spellings_clients_write() {
        let card = |rev: &str| {
            format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Ada\r\nREV:{rev}\r\nEND:VCARD\r\n")
        };
        let at = |text: String| modified_at(text.as_bytes()).map(|t| t.to_rfc3339());
        assert_eq!(
            at(card("2026-11-22T09:30:00Z")).as_deref(),
            Some("2026-11-22T09:30:00+00:00")
        );
        assert_eq!(
            at(card("20261122T093000Z")).as_deref(),
            Some("2026-11-22T09:30:00+00:00")
        );
        assert_eq!(
            at(card("2026-11-22T09:30:00.123Z")).as_deref(),
            Some("2026-11-22T09:30:00.123+00:00")
        );
        assert_eq!(
            at(card("2026-11-22")).as_deref(),
            Some("2026-11-22T00:00:00+00:00")
        );
        assert_eq!(at(card("yesterday")), None);
        // Without LAST-MODIFIED, DTSTAMP tells.
        let event = String::from_utf8(ics("x", "y"))
            .unwrap()
            .replace("UID:u", "UID:u\r\nDTSTAMP:20261105T120000Z");
        assert_eq!(at(event).as_deref(), Some("2026-11-05T12:00:00+00:00"));
    }

    #[test]
    fn a_conflict_already_recorded_is_not_planned_again() {
        let base = ics("Meeting", "Room 1");
        let (x, y) = (
            cur(&ics("A", "Room 1"), "ea"),
            cur(&ics("B", "Room 1"), "eb"),
        );
        let s: BTreeMap<_, _> = [("u".to_owned(), synced(&base))].into();
        let a: BTreeMap<_, _> = [("u".to_owned(), x.clone())].into();
        let b: BTreeMap<_, _> = [("u".to_owned(), y.clone())].into();
        let open: BTreeMap<_, _> = [("u".to_owned(), (Some(x.hash), Some(y.hash)))].into();
        let inputs = Inputs {
            synced: &s,
            a: &a,
            b: &b,
            open_conflicts: &open,
            direction: Direction::TwoWay,
            policy: ConflictPolicy::Ask,
        };
        assert!(plan(inputs).actions.is_empty());
    }
}
