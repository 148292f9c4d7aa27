//! The conflict inbox as stored: an open conflict by its id, with its pair's name, every open
//! one, and closing one by id once it is resolved. A run records and closes its conflicts by
//! pair and UID with `state::open_conflict` and `state::close_conflict`.

use rusqlite::{Connection, OptionalExtension};

use super::{Conflict, ConflictSide};

/// An open conflict as the inbox keeps it: its id, its pair, and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenConflict {
    pub id: i64,
    pub pair_id: i64,
    pub pair: String,
    pub conflict: Conflict,
    pub updated_at_ms: i64,
}

const COLUMNS: &str = "c.id, c.pair_id, p.name, c.uid, c.kind, c.summary, c.properties,
    c.base, c.a_href, c.a_etag, c.a_hash, c.a_content, c.b_href, c.b_etag, c.b_hash,
    c.b_content, c.updated_at_ms";

fn open_conflict_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OpenConflict> {
    let side = |at: usize| -> rusqlite::Result<Option<ConflictSide>> {
        let href: Option<String> = r.get(at)?;
        Ok(match href {
            Some(href) => Some(ConflictSide {
                href,
                etag: r.get::<_, Option<String>>(at + 1)?.unwrap_or_default(),
                hash: r.get::<_, Option<String>>(at + 2)?.unwrap_or_default(),
                content: r.get::<_, Option<Vec<u8>>>(at + 3)?.unwrap_or_default(),
            }),
            None => None,
        })
    };
    let properties: String = r.get(6)?;
    Ok(OpenConflict {
        id: r.get(0)?,
        pair_id: r.get(1)?,
        pair: r.get(2)?,
        conflict: Conflict {
            uid: r.get(3)?,
            kind: r.get(4)?,
            summary: r.get(5)?,
            properties: serde_json::from_str(&properties).unwrap_or_default(),
            base: r.get(7)?,
            a: side(8)?,
            b: side(12)?,
        },
        updated_at_ms: r.get(16)?,
    })
}

/// The open conflict `id`, if there is one.
pub fn by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<OpenConflict>> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM conflicts c JOIN pairs p ON p.id = c.pair_id WHERE c.id = ?1"
        ),
        [id],
        open_conflict_row,
    )
    .optional()
}

/// Every open conflict, oldest first.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<OpenConflict>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM conflicts c JOIN pairs p ON p.id = c.pair_id ORDER BY c.id"
    ))?;
    let rows = stmt.query_map([], open_conflict_row)?;
    rows.collect()
}

/// Closes the conflict `id` (resolved); nothing happens if it is already closed.
pub fn remove(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM conflicts WHERE id = ?1", [id])?;
    Ok(())
}
