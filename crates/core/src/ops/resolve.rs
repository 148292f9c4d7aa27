//! What both sides' edits left for the person, as both faces offer it: the conflict inbox (list,
//! show field by field, preview a per-field choice, resolve as the durable `resolve-conflict`
//! job) and likely duplicate contacts (list, show, preview, merge as `merge-duplicates`).
//! Passwords for the writes come from the system keyring.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::OpError;
use crate::Concord;
use crate::sync::resolve::conflicts::{
    self, Choice, ConflictDetail, ConflictSummary, Preview, Resolution,
};
use crate::sync::resolve::duplicates::{self, Duplicate, Merged};
use crate::sync::state::Side;
use crate::sync::storage::SystemKeyring;

impl Concord {
    /// Every open conflict, oldest first.
    pub fn conflicts(&self) -> Result<Vec<ConflictSummary>, OpError> {
        Ok(conflicts::list(self)?)
    }

    /// One conflict: base, A and B, in a person's words and field by field.
    pub fn conflict(&self, id: i64) -> Result<ConflictDetail, OpError> {
        Ok(conflicts::show(self, id)?)
    }

    /// The item `picks` ("VEVENT SUMMARY" -> a|b) would give; fields not named follow the
    /// merge. Nothing is written.
    pub fn conflict_preview(
        &self,
        id: i64,
        picks: &BTreeMap<String, Side>,
    ) -> Result<Preview, OpError> {
        Ok(conflicts::preview(self, id, picks)?)
    }

    /// Resolves a conflict as the person chose, as a durable run here, and waits for it; the
    /// losing version is kept in history. A side that changed since is re-read, never
    /// overwritten.
    pub async fn resolve_conflict(&self, id: i64, choice: Choice) -> Result<Resolution, OpError> {
        Ok(conflicts::resolve_durably(self, id, choice, Arc::new(SystemKeyring)).await?)
    }

    /// Contacts that are likely one person (same email, phone or name).
    pub fn duplicates(&self) -> Result<Vec<Duplicate>, OpError> {
        Ok(duplicates::list(self)?)
    }

    pub fn duplicate(&self, id: &str) -> Result<Duplicate, OpError> {
        Ok(duplicates::show(self, id)?)
    }

    /// The contact `picks` would make of a duplicate; nothing is written.
    pub fn duplicate_preview(
        &self,
        id: &str,
        picks: &BTreeMap<String, Side>,
    ) -> Result<Preview, OpError> {
        Ok(duplicates::preview(self, id, picks)?)
    }

    /// Merges B into A as a durable run here, and waits for it; both old versions are kept in
    /// history.
    pub async fn merge_duplicate(
        &self,
        id: &str,
        picks: &BTreeMap<String, Side>,
    ) -> Result<Merged, OpError> {
        Ok(duplicates::merge_durably(self, id, picks, Arc::new(SystemKeyring)).await?)
    }
}
