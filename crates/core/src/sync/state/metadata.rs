//! A pair's collection metadata as remembered: the display name and colour both sides agreed
//! on last time and when they were compared (on the pair), and each side's own values (on
//! its storage). `run::metadata` decides what changes; this is where it is kept.

use rusqlite::{Connection, OptionalExtension, params};

/// One side's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub display_name: Option<String>,
    pub color: Option<String>,
}

/// What both sides agreed on last time, and when metadata was last compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agreed {
    pub checked_at_ms: Option<i64>,
    pub values: Metadata,
}

/// What a pair's sides agreed on; the default when the pair was never compared (or is gone).
pub fn agreed(conn: &Connection, pair_id: i64) -> rusqlite::Result<Agreed> {
    Ok(conn
        .query_row(
            "SELECT meta_checked_at_ms, meta_display_name, meta_color FROM pairs WHERE id = ?1",
            [pair_id],
            |r| {
                Ok(Agreed {
                    checked_at_ms: r.get(0)?,
                    values: Metadata {
                        display_name: r.get(1)?,
                        color: r.get(2)?,
                    },
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Remembers what a pair's sides agree on now, compared at `checked_at_ms`.
pub fn set_agreed(
    conn: &Connection,
    pair_id: i64,
    checked_at_ms: i64,
    values: &Metadata,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE pairs SET meta_checked_at_ms = ?2, meta_display_name = ?3, meta_color = ?4
         WHERE id = ?1",
        params![pair_id, checked_at_ms, values.display_name, values.color],
    )?;
    Ok(())
}

/// Remembers one storage's own display name and colour.
pub fn set_storage_metadata(
    conn: &Connection,
    storage_id: i64,
    values: &Metadata,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE storages SET display_name = ?2, color = ?3 WHERE id = ?1",
        params![storage_id, values.display_name, values.color],
    )?;
    Ok(())
}
