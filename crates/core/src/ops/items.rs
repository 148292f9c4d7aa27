//! Items as both faces offer them: the kept versions of an item, putting one back, and what is
//! held in quarantine with its reason.

use super::OpError;
use crate::Concord;
use crate::sync::run;
use crate::sync::state::{self, ItemVersion, Quarantined};
use crate::sync::storage::SystemKeyring;

impl Concord {
    /// Kept versions of an item, by UID or words of its title, newest first.
    pub fn history(&self, item: &str) -> Result<Vec<ItemVersion>, OpError> {
        Ok(state::history(&self.database().connect()?, item)?)
    }

    /// Puts a kept version back on the side it was taken from (what it replaces is kept
    /// first); the next sync carries it to the other side. Says where it went.
    pub async fn restore(&self, version: i64) -> Result<String, OpError> {
        Ok(run::restore(self, version, &SystemKeyring).await?)
    }

    /// Items set aside as unreadable or as duplicate UIDs, with the reason.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, OpError> {
        Ok(state::quarantined(&self.database().connect()?)?)
    }
}
