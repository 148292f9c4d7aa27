//! What discovery last saw of an account (its services as discovery wrote them, whether plain
//! http is allowed, every collection with when it vanished) and the "all collections"
//! mappings with their pairs. `accounts::discovery` and `accounts::mapping` decide; this is
//! where it is kept.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{ConflictPolicy, Direction, now_ms};

/// What kind of collection was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CollectionKind {
    Calendar,
    AddressBook,
}

impl CollectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionKind::Calendar => "calendar",
            CollectionKind::AddressBook => "address-book",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "calendar" => Some(CollectionKind::Calendar),
            "address-book" => Some(CollectionKind::AddressBook),
            _ => None,
        }
    }
}

/// One calendar or address book of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    pub kind: CollectionKind,
    /// Absolute URL of the collection (ends in `/`).
    pub url: String,
    pub display_name: Option<String>,
    /// The Apple `calendar-color` (calendars only), for example `#3a429cff`.
    pub color: Option<String>,
    /// What a calendar accepts: `VEVENT`, `VTODO`, `VJOURNAL` (empty for address books).
    pub components: Vec<String>,
    /// Whether the server offers RFC 6578 sync-collection on it.
    pub supports_sync: bool,
}

impl Collection {
    /// The collection's last path segment, as vdirsyncer names collections.
    pub fn name(&self) -> String {
        let path = self.url.trim_end_matches('/');
        let last = path.rsplit('/').next().unwrap_or_default();
        percent_decode(last)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'_'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An account's collections mapped into one directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    pub id: i64,
    pub name: String,
    pub account: String,
    pub account_id: i64,
    pub folder: String,
    pub direction: Direction,
    pub conflict_policy: ConflictPolicy,
    pub every_minutes: i64,
    pub last_refresh_at_ms: Option<i64>,
    pub last_error: Option<String>,
    /// One pair per collection discovery has seen.
    pub pairs: Vec<MappedPair>,
}

/// One collection of a mapping and its pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedPair {
    pub pair: String,
    pub collection_url: String,
    pub folder: String,
    /// When the collection vanished from the server; its pair no longer syncs, its folder stays.
    pub gone_since_ms: Option<i64>,
}

// ---- what discovery saw --------------------------------------------------------------------

/// Remembers the services discovery found on an account, as discovery wrote them (JSON).
pub fn set_services(conn: &Connection, account_id: i64, services: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE accounts SET discovery = ?2 WHERE id = ?1",
        params![account_id, services],
    )?;
    Ok(())
}

/// The services discovery found last time, as it wrote them; `None` if it never ran.
pub fn services(conn: &Connection, account_id: i64) -> rusqlite::Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT discovery FROM accounts WHERE id = ?1",
            [account_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// Remembers one collection discovery listed at `seen_at_ms` (no longer gone, if it was).
/// A listing that did not ask for a calendar's components keeps the ones known.
pub fn put_collection(
    conn: &Connection,
    account_id: i64,
    collection: &Collection,
    seen_at_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO account_collections (account_id, url, kind, display_name, color,
           components, first_seen_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (account_id, url) DO UPDATE SET kind = excluded.kind,
           display_name = excluded.display_name, color = excluded.color,
           components = CASE WHEN excluded.components = '' THEN components
                        ELSE excluded.components END,
           last_seen_ms = excluded.last_seen_ms, gone_since_ms = NULL",
        params![
            account_id,
            collection.url,
            collection.kind.as_str(),
            collection.display_name,
            collection.color,
            collection.components.join(","),
            seen_at_ms
        ],
    )?;
    Ok(())
}

/// The URLs of an account's collections not known to be gone.
pub fn present_collection_urls(
    conn: &Connection,
    account_id: i64,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare(
        "SELECT url FROM account_collections WHERE account_id = ?1 AND gone_since_ms IS NULL",
    )?
    .query_map([account_id], |r| r.get(0))?
    .collect()
}

/// Marks one of an account's collections as gone from the server since `since_ms`.
pub fn mark_collection_gone(
    conn: &Connection,
    account_id: i64,
    url: &str,
    since_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE account_collections SET gone_since_ms = ?3 WHERE account_id = ?1 AND url = ?2",
        params![account_id, url, since_ms],
    )?;
    Ok(())
}

/// The collections discovery has seen on an account (gone ones included, with when they
/// vanished), by URL.
pub fn stored_collections(
    conn: &Connection,
    account_id: i64,
) -> rusqlite::Result<Vec<(Collection, Option<i64>)>> {
    let mut stmt = conn.prepare(
        "SELECT url, kind, display_name, color, components, gone_since_ms
         FROM account_collections WHERE account_id = ?1 ORDER BY url",
    )?;
    let rows = stmt.query_map([account_id], |r| {
        let kind: String = r.get(1)?;
        let components: String = r.get(4)?;
        Ok((
            Collection {
                url: r.get(0)?,
                kind: CollectionKind::parse(&kind).unwrap_or(CollectionKind::Calendar),
                display_name: r.get(2)?,
                color: r.get(3)?,
                components: components
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                supports_sync: true,
            },
            r.get(5)?,
        ))
    })?;
    rows.collect()
}

/// Whether the person allowed plain http for this account.
pub fn allows_http(conn: &Connection, account_id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT allow_http FROM accounts WHERE id = ?1",
        [account_id],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.unwrap_or(0) != 0)
}

pub fn set_allows_http(conn: &Connection, account_id: i64, allow: bool) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE accounts SET allow_http = ?2 WHERE id = ?1",
        params![account_id, i64::from(allow)],
    )?;
    Ok(())
}

// ---- mappings ------------------------------------------------------------------------------

pub fn add_mapping(
    conn: &Connection,
    name: &str,
    account_id: i64,
    folder: &Path,
    direction: Direction,
    conflict_policy: ConflictPolicy,
    every_minutes: u64,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO collection_mappings (name, account_id, folder, direction, conflict_policy,
           every_minutes, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            name,
            account_id,
            folder.display().to_string(),
            direction.as_str(),
            conflict_policy.as_str(),
            i64::try_from(every_minutes).unwrap_or(i64::MAX),
            now_ms()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn mappings(conn: &Connection) -> rusqlite::Result<Vec<Mapping>> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM collection_mappings ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for name in names {
        if let Some(m) = mapping(conn, &name)? {
            out.push(m);
        }
    }
    Ok(out)
}

pub fn mapping(conn: &Connection, name: &str) -> rusqlite::Result<Option<Mapping>> {
    let found = conn
        .query_row(
            "SELECT m.id, m.name, a.name, m.account_id, m.folder, m.direction, m.conflict_policy,
               m.every_minutes, m.last_refresh_at_ms, m.last_error
             FROM collection_mappings m JOIN accounts a ON a.id = m.account_id WHERE m.name = ?1",
            [name],
            |r| {
                let direction: String = r.get(5)?;
                let policy: String = r.get(6)?;
                Ok(Mapping {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    account: r.get(2)?,
                    account_id: r.get(3)?,
                    folder: r.get(4)?,
                    direction: Direction::parse(&direction).unwrap_or(Direction::TwoWay),
                    conflict_policy: ConflictPolicy::parse(&policy).unwrap_or(ConflictPolicy::Ask),
                    every_minutes: r.get(7)?,
                    last_refresh_at_ms: r.get(8)?,
                    last_error: r.get(9)?,
                    pairs: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut m) = found else {
        return Ok(None);
    };
    let mut stmt = conn.prepare(
        "SELECT p.name, sa.location, sb.location, p.collection_gone_since_ms
         FROM pairs p JOIN storages sa ON sa.id = p.a_storage_id
           JOIN storages sb ON sb.id = p.b_storage_id
         WHERE p.mapping_id = ?1 ORDER BY p.name",
    )?;
    m.pairs = stmt
        .query_map([m.id], |r| {
            Ok(MappedPair {
                pair: r.get(0)?,
                collection_url: r.get(1)?,
                folder: r.get(2)?,
                gone_since_ms: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(m))
}

/// Removes a mapping and its pairs (folders, collections and item history stay).
pub fn remove_mapping(conn: &Connection, name: &str) -> rusqlite::Result<Vec<String>> {
    let pairs = mapping(conn, name)?
        .map(|m| m.pairs.into_iter().map(|p| p.pair).collect())
        .unwrap_or_default();
    conn.execute("DELETE FROM collection_mappings WHERE name = ?1", [name])?;
    Ok(pairs)
}

/// Makes a pair one collection of a mapping.
pub fn set_pair_mapping(conn: &Connection, pair_id: i64, mapping_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE pairs SET mapping_id = ?2 WHERE id = ?1",
        params![pair_id, mapping_id],
    )?;
    Ok(())
}

/// Marks the collection of a mapping's pair as gone from the server since `since_ms`, or as
/// there again (`None`).
pub fn set_pair_collection_gone(
    conn: &Connection,
    pair: &str,
    since_ms: Option<i64>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE pairs SET collection_gone_since_ms = ?2 WHERE name = ?1",
        params![pair, since_ms],
    )?;
    Ok(())
}

/// Remembers a mapping's refresh that worked, at `at_ms`.
pub fn set_refreshed(conn: &Connection, mapping_id: i64, at_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE collection_mappings SET last_refresh_at_ms = ?2, last_error = NULL WHERE id = ?1",
        params![mapping_id, at_ms],
    )?;
    Ok(())
}

/// Remembers why a mapping's refresh failed.
pub fn set_refresh_failed(conn: &Connection, mapping_id: i64, error: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE collection_mappings SET last_error = ?2 WHERE id = ?1",
        params![mapping_id, error],
    )?;
    Ok(())
}
