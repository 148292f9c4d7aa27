//! What sync remembers, in the shared database: accounts, storages (collections), pairs with
//! their tokens, and per pair and item what each side last showed (`item_seen`) and what was
//! last synced on both sides with its base content (`item_state`). Also item history,
//! quarantine and open conflicts. Every function takes a connection or transaction; callers
//! choose the transaction (writes use `BEGIN IMMEDIATE`).
//!
//! One file per concern beside this one: [`conflicts`] (the inbox's reads, and closing a
//! resolved conflict), [`mapping`] (what discovery saw of an account, and "all collections"
//! mappings), [`metadata`] (a pair's display name and colour).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::item::ItemKind;

pub mod conflicts;
pub mod mapping;
pub mod metadata;

/// History versions kept per item and side; older ones are pruned.
pub const HISTORY_VERSIONS_PER_ITEM_MAX: i64 = 50;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    A,
    B,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// What kind of collection a storage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Caldav,
    Carddav,
    Webcal,
    Vdir,
}

impl StorageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Caldav => "caldav",
            StorageKind::Carddav => "carddav",
            StorageKind::Webcal => "webcal",
            StorageKind::Vdir => "vdir",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "caldav" => StorageKind::Caldav,
            "carddav" => StorageKind::Carddav,
            "webcal" => StorageKind::Webcal,
            "vdir" => StorageKind::Vdir,
            _ => return None,
        })
    }
}

/// A configured account (a server, a webcal URL, or a folder). The password is in the keyring
/// under the account's name, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub kind: StorageKind,
    pub url: String,
    pub username: Option<String>,
}

/// One collection, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageConfig {
    pub id: i64,
    pub account_id: Option<i64>,
    pub kind: StorageKind,
    pub item_kind: ItemKind,
    /// Absolute URL of the collection, or the folder's path.
    pub location: String,
    pub display_name: Option<String>,
    pub color: Option<String>,
}

/// Which way changes flow in a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    TwoWay,
    AToB,
    BToA,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::TwoWay => "two-way",
            Direction::AToB => "a-to-b",
            Direction::BToA => "b-to-a",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "two-way" => Direction::TwoWay,
            "a-to-b" => Direction::AToB,
            "b-to-a" => Direction::BToA,
            _ => return None,
        })
    }

    /// Whether changes may be written to `side`.
    pub fn writes(self, side: Side) -> bool {
        !matches!(
            (self, side),
            (Direction::AToB, Side::A) | (Direction::BToA, Side::B)
        )
    }
}

/// What to do when both sides changed the same property, or one edited what the other
/// deleted. Every decision a policy makes is recorded in item history with its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Keep the conflict in the inbox for the person (the default).
    Ask,
    AWins,
    BWins,
    /// The version changed last (LAST-MODIFIED, REV, else DTSTAMP) wins; a tie, a missing
    /// time, or a deletion (which carries no time) is left to the person.
    NewestWins,
}

impl ConflictPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::Ask => "ask",
            ConflictPolicy::AWins => "a-wins",
            ConflictPolicy::BWins => "b-wins",
            ConflictPolicy::NewestWins => "newest-wins",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ask" => ConflictPolicy::Ask,
            "a-wins" => ConflictPolicy::AWins,
            "b-wins" => ConflictPolicy::BWins,
            "newest-wins" => ConflictPolicy::NewestWins,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair {
    pub id: i64,
    pub name: String,
    pub a: StorageConfig,
    pub b: StorageConfig,
    pub direction: Direction,
    pub conflict_policy: ConflictPolicy,
    pub a_token: Option<String>,
    pub b_token: Option<String>,
    /// Why the pair stopped and waits for the person (emptied side, mass deletion).
    pub stopped_reason: Option<String>,
    pub last_sync_at_ms: Option<i64>,
    pub last_error: Option<String>,
}

impl Pair {
    pub fn storage(&self, side: Side) -> &StorageConfig {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// The side `direction` would write to although nothing can be written there (a webcal
    /// calendar is read-only).
    pub fn unwritable_side(&self, direction: Direction) -> Option<Side> {
        [Side::A, Side::B]
            .into_iter()
            .find(|&side| self.storage(side).kind == StorageKind::Webcal && direction.writes(side))
    }

    pub fn token(&self, side: Side) -> Option<&str> {
        match side {
            Side::A => self.a_token.as_deref(),
            Side::B => self.b_token.as_deref(),
        }
    }
}

/// What a side last showed at one href.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub href: String,
    pub etag: String,
    /// None when the item could not be read (it is in quarantine).
    pub uid: Option<String>,
    pub hash: Option<String>,
}

/// One side of a synced item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedSide {
    pub href: String,
    pub etag: String,
    pub hash: String,
}

/// An item as last synced: both sides held `base` (up to normalization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    pub uid: String,
    pub a: SyncedSide,
    pub b: SyncedSide,
    pub base: Vec<u8>,
    pub summary: String,
}

impl Synced {
    pub fn side(&self, side: Side) -> &SyncedSide {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}

/// One kept version of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemVersion {
    pub id: i64,
    pub pair: Option<String>,
    pub uid: String,
    pub side: String,
    pub href: Option<String>,
    pub summary: String,
    pub reason: String,
    pub recorded_at_ms: i64,
    #[serde(skip)]
    pub content: Vec<u8>,
    pub storage_id: Option<i64>,
}

/// One quarantined item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    pub pair: String,
    pub side: String,
    pub href: String,
    pub summary: String,
    pub reason: String,
    pub seen_at_ms: i64,
}

/// One open conflict, with what the Conflicts page needs to show and resolve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub uid: String,
    /// "both-edited", "edit-delete" or "both-created".
    pub kind: String,
    pub summary: String,
    /// The properties both sides changed (for "both-edited").
    pub properties: Vec<String>,
    pub base: Option<Vec<u8>>,
    pub a: Option<ConflictSide>,
    pub b: Option<ConflictSide>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictSide {
    pub href: String,
    pub etag: String,
    pub hash: String,
    pub content: Vec<u8>,
}

// ---- accounts, storages, pairs -------------------------------------------------------------

pub fn add_account(
    conn: &Connection,
    name: &str,
    kind: StorageKind,
    url: &str,
    username: Option<&str>,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO accounts (name, kind, url, username, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, kind.as_str(), url, username, now_ms()],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn accounts(conn: &Connection) -> rusqlite::Result<Vec<Account>> {
    let mut stmt =
        conn.prepare("SELECT id, name, kind, url, username FROM accounts ORDER BY name")?;
    let rows = stmt.query_map([], account_row)?;
    rows.collect()
}

pub fn account(conn: &Connection, name: &str) -> rusqlite::Result<Option<Account>> {
    conn.query_row(
        "SELECT id, name, kind, url, username FROM accounts WHERE name = ?1",
        [name],
        account_row,
    )
    .optional()
}

pub fn account_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Account>> {
    conn.query_row(
        "SELECT id, name, kind, url, username FROM accounts WHERE id = ?1",
        [id],
        account_row,
    )
    .optional()
}

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let kind: String = r.get(2)?;
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: StorageKind::parse(&kind).unwrap_or(StorageKind::Caldav),
        url: r.get(3)?,
        username: r.get(4)?,
    })
}

/// Removes an account with its storages and pairs (their history stays).
pub fn remove_account(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM accounts WHERE name = ?1", [name])? > 0)
}

/// The storage for a collection, created if new.
pub fn put_storage(
    conn: &Connection,
    account_id: Option<i64>,
    kind: StorageKind,
    item_kind: ItemKind,
    location: &str,
    display_name: Option<&str>,
) -> Result<i64, super::SyncError> {
    let item_kind = match item_kind {
        ItemKind::Calendar => "calendar",
        ItemKind::Contact => "contact",
    };
    // A collection is reached through one account: a second account on the same address would
    // silently move the first one's pairs to its own password (and take them when removed).
    let owner: Option<(i64, Option<String>)> = conn
        .query_row(
            "SELECT s.account_id, a.name FROM storages s LEFT JOIN accounts a ON a.id = s.account_id
             WHERE s.kind = ?1 AND s.location = ?2 AND s.account_id IS NOT NULL",
            params![kind.as_str(), location],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let (Some((owner, name)), Some(wanted)) = (owner, account_id)
        && owner != wanted
    {
        return Err(super::SyncError::CollectionTaken {
            location: location.to_owned(),
            account: name.unwrap_or_else(|| owner.to_string()),
        });
    }
    conn.execute(
        "INSERT INTO storages (account_id, kind, item_kind, location, display_name)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (kind, location) DO UPDATE SET
           display_name = coalesce(excluded.display_name, display_name),
           account_id = coalesce(account_id, excluded.account_id)",
        params![account_id, kind.as_str(), item_kind, location, display_name],
    )?;
    Ok(conn.query_row(
        "SELECT id FROM storages WHERE kind = ?1 AND location = ?2",
        params![kind.as_str(), location],
        |r| r.get(0),
    )?)
}

fn storage(conn: &Connection, id: i64) -> rusqlite::Result<StorageConfig> {
    conn.query_row(
        "SELECT id, account_id, kind, item_kind, location, display_name, color FROM storages WHERE id = ?1",
        [id],
        |r| {
            let kind: String = r.get(2)?;
            let item_kind: String = r.get(3)?;
            Ok(StorageConfig {
                id: r.get(0)?,
                account_id: r.get(1)?,
                kind: StorageKind::parse(&kind).unwrap_or(StorageKind::Vdir),
                item_kind: if item_kind == "contact" {
                    ItemKind::Contact
                } else {
                    ItemKind::Calendar
                },
                location: r.get(4)?,
                display_name: r.get(5)?,
                color: r.get(6)?,
            })
        },
    )
}

pub fn add_pair(
    conn: &Connection,
    name: &str,
    a_storage_id: i64,
    b_storage_id: i64,
    direction: Direction,
    conflict_policy: ConflictPolicy,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO pairs (name, a_storage_id, b_storage_id, direction, conflict_policy, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            name,
            a_storage_id,
            b_storage_id,
            direction.as_str(),
            conflict_policy.as_str(),
            now_ms()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

const PAIR_COLUMNS: &str =
    "id, name, a_storage_id, b_storage_id, direction, conflict_policy, a_token, b_token,
     stopped_reason, last_sync_at_ms, last_error";

pub fn pairs(conn: &Connection) -> rusqlite::Result<Vec<Pair>> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM pairs ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter().map(|id| pair_by_id(conn, id)).collect()
}

pub fn pair(conn: &Connection, name: &str) -> rusqlite::Result<Option<Pair>> {
    let id: Option<i64> = conn
        .query_row("SELECT id FROM pairs WHERE name = ?1", [name], |r| r.get(0))
        .optional()?;
    id.map(|id| pair_by_id(conn, id)).transpose()
}

pub fn pair_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Pair> {
    let row = conn.query_row(
        &format!("SELECT {PAIR_COLUMNS} FROM pairs WHERE id = ?1"),
        [id],
        |r| {
            let direction: String = r.get(4)?;
            let policy: String = r.get(5)?;
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                Direction::parse(&direction).unwrap_or(Direction::TwoWay),
                ConflictPolicy::parse(&policy).unwrap_or(ConflictPolicy::Ask),
                (
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                ),
            ))
        },
    )?;
    let (id, name, a_id, b_id, direction, conflict_policy, rest) = row;
    let (a_token, b_token, stopped_reason, last_sync_at_ms, last_error) = rest;
    Ok(Pair {
        id,
        name,
        a: storage(conn, a_id)?,
        b: storage(conn, b_id)?,
        direction,
        conflict_policy,
        a_token,
        b_token,
        stopped_reason,
        last_sync_at_ms,
        last_error,
    })
}

pub fn remove_pair(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM pairs WHERE name = ?1", [name])? > 0)
}

/// Changes how a pair syncs: which way changes flow and what happens when both sides change
/// the same property. False when there is no pair of that name.
pub fn set_pair_options(
    conn: &Connection,
    name: &str,
    direction: Direction,
    conflict_policy: ConflictPolicy,
) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE pairs SET direction = ?2, conflict_policy = ?3 WHERE name = ?1",
        params![name, direction.as_str(), conflict_policy.as_str()],
    )?;
    Ok(changed > 0)
}

/// How many items are synced on both sides of a pair, counted without reading them.
pub fn synced_count(conn: &Connection, pair_id: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM item_state WHERE pair_id = ?1",
        [pair_id],
        |r| r.get(0),
    )
}

pub fn set_token(
    conn: &Connection,
    pair_id: i64,
    side: Side,
    token: Option<&str>,
) -> rusqlite::Result<()> {
    let sql = match side {
        Side::A => "UPDATE pairs SET a_token = ?2 WHERE id = ?1",
        Side::B => "UPDATE pairs SET b_token = ?2 WHERE id = ?1",
    };
    conn.execute(sql, params![pair_id, token])?;
    Ok(())
}

/// When the pair's source asked to be left alone until (a webcal feed's REFRESH-INTERVAL).
pub fn set_next_check(conn: &Connection, pair_id: i64, at_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE pairs SET next_check_after_ms = ?2 WHERE id = ?1",
        params![pair_id, at_ms],
    )?;
    Ok(())
}

pub fn set_stopped(conn: &Connection, pair_id: i64, reason: Option<&str>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE pairs SET stopped_reason = ?2 WHERE id = ?1",
        params![pair_id, reason],
    )?;
    Ok(())
}

pub fn set_outcome(conn: &Connection, pair_id: i64, error: Option<&str>) -> rusqlite::Result<()> {
    if error.is_some() {
        conn.execute(
            "UPDATE pairs SET last_error = ?2 WHERE id = ?1",
            params![pair_id, error],
        )?;
    } else {
        conn.execute(
            "UPDATE pairs SET last_error = NULL, last_sync_at_ms = ?2 WHERE id = ?1",
            params![pair_id, now_ms()],
        )?;
    }
    Ok(())
}

// ---- seen and synced -----------------------------------------------------------------------

pub fn seen(
    conn: &Connection,
    pair_id: i64,
    side: Side,
) -> rusqlite::Result<BTreeMap<String, Seen>> {
    let mut stmt = conn
        .prepare("SELECT href, etag, uid, hash FROM item_seen WHERE pair_id = ?1 AND side = ?2")?;
    let rows = stmt.query_map(params![pair_id, side.as_str()], |r| {
        Ok(Seen {
            href: r.get(0)?,
            etag: r.get(1)?,
            uid: r.get(2)?,
            hash: r.get(3)?,
        })
    })?;
    rows.map(|row| row.map(|s| (s.href.clone(), s))).collect()
}

/// Stores an item as a side shows it; a row that already says the same is not rewritten.
pub fn put_seen(conn: &Connection, pair_id: i64, side: Side, seen: &Seen) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO item_seen (pair_id, side, href, etag, uid, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (pair_id, side, href) DO UPDATE SET etag = excluded.etag, uid = excluded.uid,
           hash = excluded.hash
         WHERE (etag, uid, hash) IS NOT (excluded.etag, excluded.uid, excluded.hash)",
    )?
    .execute(params![pair_id, side.as_str(), seen.href, seen.etag, seen.uid, seen.hash])?;
    Ok(())
}

pub fn remove_seen(
    conn: &Connection,
    pair_id: i64,
    side: Side,
    href: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM item_seen WHERE pair_id = ?1 AND side = ?2 AND href = ?3")?
        .execute(params![pair_id, side.as_str(), href])?;
    Ok(())
}

/// Records an item as synced and as seen so on both sides, as one write of a run leaves it.
pub fn record_synced(conn: &Connection, pair_id: i64, synced: &Synced) -> rusqlite::Result<()> {
    put_synced(conn, pair_id, synced)?;
    for side in Side::BOTH {
        let s = synced.side(side);
        put_seen(
            conn,
            pair_id,
            side,
            &Seen {
                href: s.href.clone(),
                etag: s.etag.clone(),
                uid: Some(synced.uid.clone()),
                hash: Some(s.hash.clone()),
            },
        )?;
    }
    Ok(())
}

const SYNCED_COLUMNS: &str = "uid, a_href, a_etag, a_hash, b_href, b_etag, b_hash, base, summary";

fn synced_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Synced> {
    Ok(Synced {
        uid: r.get(0)?,
        a: SyncedSide {
            href: r.get(1)?,
            etag: r.get(2)?,
            hash: r.get(3)?,
        },
        b: SyncedSide {
            href: r.get(4)?,
            etag: r.get(5)?,
            hash: r.get(6)?,
        },
        base: r.get(7)?,
        summary: r.get(8)?,
    })
}

pub fn synced(conn: &Connection, pair_id: i64) -> rusqlite::Result<BTreeMap<String, Synced>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {SYNCED_COLUMNS} FROM item_state WHERE pair_id = ?1"
    ))?;
    let rows = stmt.query_map([pair_id], synced_row)?;
    rows.map(|row| row.map(|s| (s.uid.clone(), s))).collect()
}

/// The synced state of the items `uids` only (those not synced are left out).
pub fn synced_of<'a>(
    conn: &Connection,
    pair_id: i64,
    uids: impl IntoIterator<Item = &'a str>,
) -> rusqlite::Result<BTreeMap<String, Synced>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SYNCED_COLUMNS} FROM item_state WHERE pair_id = ?1 AND uid = ?2"
    ))?;
    let mut out = BTreeMap::new();
    for uid in uids {
        if let Some(synced) = stmt
            .query_row(params![pair_id, uid], synced_row)
            .optional()?
        {
            out.insert(synced.uid.clone(), synced);
        }
    }
    Ok(out)
}

/// The pair's count of changes to what its sync plans from, and the count at which a sync
/// last left nothing to do (schema version 5 keeps both).
pub fn plan_versions(conn: &Connection, pair_id: i64) -> rusqlite::Result<(i64, Option<i64>)> {
    conn.query_row(
        "SELECT plan_version, settled_version FROM pairs WHERE id = ?1",
        [pair_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Marks the pair settled at `version`: nothing to do as things stood at that count.
pub fn settle(conn: &Connection, pair_id: i64, version: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE pairs SET settled_version = ?2 WHERE id = ?1",
        params![pair_id, version],
    )?;
    Ok(())
}

pub fn put_synced(conn: &Connection, pair_id: i64, item: &Synced) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO item_state (pair_id, uid, a_href, a_etag, a_hash, b_href, b_etag, b_hash, base,
           summary, synced_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (pair_id, uid) DO UPDATE SET a_href = excluded.a_href, a_etag = excluded.a_etag,
           a_hash = excluded.a_hash, b_href = excluded.b_href, b_etag = excluded.b_etag,
           b_hash = excluded.b_hash, base = excluded.base, summary = excluded.summary,
           synced_at_ms = excluded.synced_at_ms",
    )?
    .execute(params![
            pair_id,
            item.uid,
            item.a.href,
            item.a.etag,
            item.a.hash,
            item.b.href,
            item.b.etag,
            item.b.hash,
            item.base,
            item.summary,
            now_ms()
        ])?;
    Ok(())
}

pub fn remove_synced(conn: &Connection, pair_id: i64, uid: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM item_state WHERE pair_id = ?1 AND uid = ?2")?
        .execute(params![pair_id, uid])?;
    Ok(())
}

// ---- history -------------------------------------------------------------------------------

/// Keeps a version that is about to be overwritten or deleted. It is labelled with its own
/// summary, read from `content` (never the one of the version replacing it); `unreadable`
/// labels content that does not read as an item.
#[allow(clippy::too_many_arguments)]
pub fn record_version(
    conn: &Connection,
    pair_id: i64,
    storage_id: i64,
    side: Side,
    uid: &str,
    href: Option<&str>,
    unreadable: &str,
    reason: &str,
    content: &[u8],
) -> rusqlite::Result<()> {
    let own = super::item::Item::parse(content.to_vec()).map(|item| item.summary);
    let summary = own.as_deref().unwrap_or(unreadable);
    conn.prepare_cached(
        "INSERT INTO item_history (pair_id, storage_id, uid, side, href, summary, reason, content,
           recorded_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        pair_id,
        storage_id,
        uid,
        side.as_str(),
        href,
        summary,
        reason,
        content,
        now_ms()
    ])?;
    // The limit is part of the statement's text: as a bound parameter of this subquery it
    // made SQLite prepare the statement again at every execution.
    conn.prepare_cached(&format!(
        "DELETE FROM item_history WHERE uid = ?1 AND side = ?2 AND pair_id = ?3 AND id NOT IN (
           SELECT id FROM item_history WHERE uid = ?1 AND side = ?2 AND pair_id = ?3
           ORDER BY id DESC LIMIT {HISTORY_VERSIONS_PER_ITEM_MAX})"
    ))?
    .execute(params![uid, side.as_str(), pair_id])?;
    Ok(())
}

const VERSION_COLUMNS: &str = "h.id, p.name, h.uid, h.side, h.href, h.summary, h.reason,
    h.recorded_at_ms, h.content, h.storage_id";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ItemVersion> {
    Ok(ItemVersion {
        id: r.get(0)?,
        pair: r.get(1)?,
        uid: r.get(2)?,
        side: r.get(3)?,
        href: r.get(4)?,
        summary: r.get(5)?,
        reason: r.get(6)?,
        recorded_at_ms: r.get(7)?,
        content: r.get(8)?,
        storage_id: r.get(9)?,
    })
}

/// Versions of items whose UID is `item`, or whose summary contains it; newest first.
pub fn history(conn: &Connection, item: &str) -> rusqlite::Result<Vec<ItemVersion>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {VERSION_COLUMNS} FROM item_history h LEFT JOIN pairs p ON p.id = h.pair_id
         WHERE h.uid = ?1 OR instr(lower(h.summary), lower(?1)) > 0 ORDER BY h.id DESC"
    ))?;
    let rows = stmt.query_map([item], version_row)?;
    rows.collect()
}

pub fn version(conn: &Connection, id: i64) -> rusqlite::Result<Option<ItemVersion>> {
    conn.query_row(
        &format!(
            "SELECT {VERSION_COLUMNS} FROM item_history h LEFT JOIN pairs p ON p.id = h.pair_id
             WHERE h.id = ?1"
        ),
        [id],
        version_row,
    )
    .optional()
}

/// The content of the newest version kept of item `uid` on one side of a pair, if any.
pub fn newest_version_content(
    conn: &Connection,
    pair_id: i64,
    uid: &str,
    side: Side,
) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT content FROM item_history WHERE pair_id = ?1 AND uid = ?2 AND side = ?3
         ORDER BY id DESC LIMIT 1",
        params![pair_id, uid, side.as_str()],
        |r| r.get(0),
    )
    .optional()
}

// ---- quarantine and conflicts --------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub fn quarantine(
    conn: &Connection,
    pair_id: i64,
    side: Side,
    href: &str,
    etag: &str,
    summary: &str,
    reason: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO quarantine (pair_id, side, href, etag, summary, reason, seen_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (pair_id, side, href) DO UPDATE SET etag = excluded.etag,
           summary = excluded.summary, reason = excluded.reason, seen_at_ms = excluded.seen_at_ms",
        params![
            pair_id,
            side.as_str(),
            href,
            etag,
            summary,
            reason,
            now_ms()
        ],
    )?;
    Ok(())
}

pub fn release(conn: &Connection, pair_id: i64, side: Side, href: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM quarantine WHERE pair_id = ?1 AND side = ?2 AND href = ?3",
        params![pair_id, side.as_str(), href],
    )?;
    Ok(())
}

/// The hrefs quarantined on one side of a pair.
pub fn quarantined_hrefs(
    conn: &Connection,
    pair_id: i64,
    side: Side,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare("SELECT href FROM quarantine WHERE pair_id = ?1 AND side = ?2")?
        .query_map(params![pair_id, side.as_str()], |r| r.get(0))?
        .collect()
}

pub fn quarantined(conn: &Connection) -> rusqlite::Result<Vec<Quarantined>> {
    let mut stmt = conn.prepare(
        "SELECT p.name, q.side, q.href, q.summary, q.reason, q.seen_at_ms
         FROM quarantine q JOIN pairs p ON p.id = q.pair_id ORDER BY p.name, q.href",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Quarantined {
            pair: r.get(0)?,
            side: r.get(1)?,
            href: r.get(2)?,
            summary: r.get(3)?,
            reason: r.get(4)?,
            seen_at_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Opens or refreshes the conflict for an item.
pub fn open_conflict(conn: &Connection, pair_id: i64, conflict: &Conflict) -> rusqlite::Result<()> {
    let side = |s: &Option<ConflictSide>| {
        s.as_ref().map(|s| {
            (
                s.href.clone(),
                s.etag.clone(),
                s.hash.clone(),
                s.content.clone(),
            )
        })
    };
    let (a, b) = (side(&conflict.a), side(&conflict.b));
    let properties =
        serde_json::to_string(&conflict.properties).unwrap_or_else(|_| "[]".to_owned());
    let now = now_ms();
    conn.execute(
        "INSERT INTO conflicts (pair_id, uid, kind, summary, properties, base,
           a_href, a_etag, a_hash, a_content, b_href, b_etag, b_hash, b_content,
           opened_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)
         ON CONFLICT (pair_id, uid) DO UPDATE SET kind = excluded.kind, summary = excluded.summary,
           properties = excluded.properties, base = excluded.base,
           a_href = excluded.a_href, a_etag = excluded.a_etag, a_hash = excluded.a_hash,
           a_content = excluded.a_content, b_href = excluded.b_href, b_etag = excluded.b_etag,
           b_hash = excluded.b_hash, b_content = excluded.b_content,
           updated_at_ms = excluded.updated_at_ms",
        params![
            pair_id,
            conflict.uid,
            conflict.kind,
            conflict.summary,
            properties,
            conflict.base,
            a.as_ref().map(|s| s.0.clone()),
            a.as_ref().map(|s| s.1.clone()),
            a.as_ref().map(|s| s.2.clone()),
            a.as_ref().map(|s| s.3.clone()),
            b.as_ref().map(|s| s.0.clone()),
            b.as_ref().map(|s| s.1.clone()),
            b.as_ref().map(|s| s.2.clone()),
            b.as_ref().map(|s| s.3.clone()),
            now
        ],
    )?;
    Ok(())
}

pub fn close_conflict(conn: &Connection, pair_id: i64, uid: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM conflicts WHERE pair_id = ?1 AND uid = ?2")?
        .execute(params![pair_id, uid])?;
    Ok(())
}

/// The A and B hashes a conflict was recorded at.
pub type RecordedHashes = (Option<String>, Option<String>);

/// Open conflicts of a pair, by UID, with the hashes they were recorded at.
pub fn conflicts(
    conn: &Connection,
    pair_id: i64,
) -> rusqlite::Result<BTreeMap<String, RecordedHashes>> {
    let mut stmt = conn.prepare("SELECT uid, a_hash, b_hash FROM conflicts WHERE pair_id = ?1")?;
    let rows = stmt.query_map([pair_id], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    rows.collect()
}

/// A data directory with one two-way pair of two vdir calendars, for unit tests: the
/// directory, the open Concord, and the ids of the pair and its A and B storages.
#[cfg(test)]
pub(crate) fn test_pair() -> (tempfile::TempDir, crate::Concord, [i64; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let concord = crate::Concord::open(dir.path()).unwrap();
    let conn = concord.database().connect().unwrap();
    let storage = |path: &str| {
        put_storage(
            &conn,
            None,
            StorageKind::Vdir,
            super::item::ItemKind::Calendar,
            path,
            None,
        )
        .unwrap()
    };
    let (a, b) = (storage("/tmp/a"), storage("/tmp/b"));
    let pair = add_pair(&conn, "p", a, b, Direction::TwoWay, ConflictPolicy::Ask).unwrap();
    (dir, concord, [pair, a, b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_versions_of_each_item_and_side() {
        let (_dir, concord, [pair, a, b]) = test_pair();
        let conn = concord.database().connect().unwrap();
        let max = usize::try_from(HISTORY_VERSIONS_PER_ITEM_MAX).unwrap();
        for n in 0..max + 5 {
            let content = format!("version {n}");
            for (side, storage) in [(Side::A, a), (Side::B, b)] {
                record_version(
                    &conn,
                    pair,
                    storage,
                    side,
                    "u1",
                    None,
                    "",
                    "",
                    content.as_bytes(),
                )
                .unwrap();
            }
        }
        record_version(&conn, pair, b, Side::B, "u2", None, "", "", b"only").unwrap();

        let versions = history(&conn, "u1").unwrap();
        for side in [Side::A, Side::B] {
            let kept: Vec<&[u8]> = versions
                .iter()
                .filter(|v| v.side == side.as_str())
                .map(|v| v.content.as_slice())
                .collect();
            assert_eq!(kept.len(), max, "side {}", side.as_str());
            assert_eq!(
                kept.first().copied(),
                Some(format!("version {}", max + 4).as_bytes())
            );
            assert_eq!(kept.last().copied(), Some(b"version 5".as_slice()));
        }
        assert_eq!(history(&conn, "u2").unwrap().len(), 1);
    }
}
