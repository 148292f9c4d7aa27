//! Concord's own tables (component "core" in the shared database) and the small settings
//! store. Shipped migrations are never edited: a change is a new entry at the end.

use concord_durable::Migration;
use rusqlite::{Connection, OptionalExtension};

pub const COMPONENT: &str = "core";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT;",
    },
    // Feeds (src/feeds/store.rs): subscriptions, their fetch state and address history,
    // entries with read/starred state, keyword mute rules, hosts that asked us to slow down.
    Migration {
        version: 2,
        sql: "CREATE TABLE feeds (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL DEFAULT '',
            site_url TEXT,
            folder TEXT,
            added_at_ms INTEGER NOT NULL,
            muted INTEGER NOT NULL DEFAULT 0,
            interval_override_s INTEGER,
            retired_at_ms INTEGER,
            retired_reason TEXT
        ) STRICT;
        CREATE TABLE feed_fetch_state (
            feed_id INTEGER PRIMARY KEY REFERENCES feeds (id) ON DELETE CASCADE,
            etag TEXT,
            last_modified TEXT,
            body_hash TEXT,
            max_age_s INTEGER,
            ttl_s INTEGER,
            skip_hours TEXT NOT NULL DEFAULT '',
            skip_days TEXT NOT NULL DEFAULT '',
            last_checked_ms INTEGER,
            last_success_ms INTEGER,
            last_status INTEGER,
            next_check_ms INTEGER NOT NULL DEFAULT 0,
            next_reason TEXT NOT NULL DEFAULT 'new: checked at the next refresh',
            interval_s INTEGER,
            failures INTEGER NOT NULL DEFAULT 0,
            failing_since_ms INTEGER,
            last_error TEXT,
            suggestion TEXT,
            dead INTEGER NOT NULL DEFAULT 0,
            moved_to TEXT,
            moved_seen INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        CREATE INDEX feed_fetch_state_due ON feed_fetch_state (next_check_ms);
        CREATE TABLE feed_url_history (
            feed_id INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
            old_url TEXT NOT NULL,
            new_url TEXT NOT NULL,
            changed_at_ms INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE feed_entries (
            id INTEGER PRIMARY KEY,
            feed_id INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
            entry_key TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            url TEXT,
            author TEXT,
            summary_html TEXT,
            content_html TEXT,
            published_ms INTEGER,
            updated_ms INTEGER,
            content_hash TEXT NOT NULL,
            first_seen_ms INTEGER NOT NULL,
            last_seen_ms INTEGER NOT NULL,
            changed_ms INTEGER,
            read INTEGER NOT NULL DEFAULT 0,
            starred INTEGER NOT NULL DEFAULT 0,
            UNIQUE (feed_id, entry_key)
        ) STRICT;
        CREATE INDEX feed_entries_by_feed_read ON feed_entries (feed_id, read);
        CREATE INDEX feed_entries_by_feed_published ON feed_entries (feed_id, published_ms);
        CREATE INDEX feed_entries_recent ON feed_entries (first_seen_ms);
        CREATE TABLE feed_mute_rules (
            keyword TEXT PRIMARY KEY
        ) STRICT;
        CREATE TABLE feed_hosts (
            host TEXT PRIMARY KEY,
            slow_until_ms INTEGER NOT NULL,
            reason TEXT NOT NULL
        ) STRICT;",
    },
    // Calendar and contact sync (src/sync/state.rs): accounts and their collections
    // (storages), pairs with their change-detection tokens, per item and side what was last
    // seen and what was last synced (with the base content for three-way merges), every
    // overwritten or deleted version, quarantined items, and open conflicts (resolved ones
    // leave this table; their losing versions go to item_history).
    Migration {
        version: 3,
        sql: "CREATE TABLE accounts (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            url TEXT NOT NULL,
            username TEXT,
            created_at_ms INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE storages (
            id INTEGER PRIMARY KEY,
            account_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            item_kind TEXT NOT NULL,
            location TEXT NOT NULL,
            display_name TEXT,
            color TEXT,
            UNIQUE (kind, location)
        ) STRICT;
        CREATE TABLE pairs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            a_storage_id INTEGER NOT NULL REFERENCES storages (id) ON DELETE CASCADE,
            b_storage_id INTEGER NOT NULL REFERENCES storages (id) ON DELETE CASCADE,
            direction TEXT NOT NULL DEFAULT 'two-way',
            conflict_policy TEXT NOT NULL DEFAULT 'ask',
            a_token TEXT,
            b_token TEXT,
            stopped_reason TEXT,
            last_sync_at_ms INTEGER,
            last_error TEXT,
            next_check_after_ms INTEGER,
            created_at_ms INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE item_seen (
            pair_id INTEGER NOT NULL REFERENCES pairs (id) ON DELETE CASCADE,
            side TEXT NOT NULL CHECK (side IN ('a', 'b')),
            href TEXT NOT NULL,
            etag TEXT NOT NULL,
            uid TEXT,
            hash TEXT,
            PRIMARY KEY (pair_id, side, href)
        ) STRICT;
        CREATE TABLE item_state (
            pair_id INTEGER NOT NULL REFERENCES pairs (id) ON DELETE CASCADE,
            uid TEXT NOT NULL,
            a_href TEXT NOT NULL,
            a_etag TEXT NOT NULL,
            a_hash TEXT NOT NULL,
            b_href TEXT NOT NULL,
            b_etag TEXT NOT NULL,
            b_hash TEXT NOT NULL,
            base BLOB NOT NULL,
            summary TEXT NOT NULL DEFAULT '',
            synced_at_ms INTEGER NOT NULL,
            PRIMARY KEY (pair_id, uid)
        ) STRICT;
        CREATE TABLE item_history (
            id INTEGER PRIMARY KEY,
            pair_id INTEGER REFERENCES pairs (id) ON DELETE SET NULL,
            storage_id INTEGER REFERENCES storages (id) ON DELETE SET NULL,
            uid TEXT NOT NULL,
            side TEXT NOT NULL,
            href TEXT,
            summary TEXT NOT NULL,
            reason TEXT NOT NULL,
            content BLOB NOT NULL,
            recorded_at_ms INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX item_history_by_uid ON item_history (uid, recorded_at_ms);
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            pair_id INTEGER NOT NULL REFERENCES pairs (id) ON DELETE CASCADE,
            side TEXT NOT NULL,
            href TEXT NOT NULL,
            etag TEXT NOT NULL,
            summary TEXT NOT NULL,
            reason TEXT NOT NULL,
            seen_at_ms INTEGER NOT NULL,
            UNIQUE (pair_id, side, href)
        ) STRICT;
        CREATE TABLE conflicts (
            id INTEGER PRIMARY KEY,
            pair_id INTEGER NOT NULL REFERENCES pairs (id) ON DELETE CASCADE,
            uid TEXT NOT NULL,
            kind TEXT NOT NULL,
            summary TEXT NOT NULL,
            properties TEXT NOT NULL DEFAULT '[]',
            base BLOB,
            a_href TEXT,
            a_etag TEXT,
            a_hash TEXT,
            a_content BLOB,
            b_href TEXT,
            b_etag TEXT,
            b_hash TEXT,
            b_content BLOB,
            opened_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            UNIQUE (pair_id, uid)
        ) STRICT;",
    },
    // Accounts and their collections (src/sync/discovery.rs, src/sync/mapping.rs): how an
    // account was found (context URLs, principals, home sets, as JSON) and whether plain http
    // was allowed; every collection discovery has seen, with when it vanished; "all
    // collections" mappings of an account to a folder, whose pairs point back at them; and per
    // pair the display name and colour both sides agreed on at the last metadata sync.
    Migration {
        version: 4,
        sql: "ALTER TABLE accounts ADD COLUMN discovery TEXT;
        ALTER TABLE accounts ADD COLUMN allow_http INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE account_collections (
            account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('calendar', 'address-book')),
            display_name TEXT,
            color TEXT,
            components TEXT NOT NULL DEFAULT '',
            first_seen_ms INTEGER NOT NULL,
            last_seen_ms INTEGER NOT NULL,
            gone_since_ms INTEGER,
            PRIMARY KEY (account_id, url)
        ) STRICT;
        CREATE TABLE collection_mappings (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            folder TEXT NOT NULL,
            direction TEXT NOT NULL DEFAULT 'two-way',
            conflict_policy TEXT NOT NULL DEFAULT 'ask',
            every_minutes INTEGER NOT NULL,
            last_refresh_at_ms INTEGER,
            last_error TEXT,
            created_at_ms INTEGER NOT NULL
        ) STRICT;
        ALTER TABLE pairs ADD COLUMN mapping_id INTEGER
            REFERENCES collection_mappings (id) ON DELETE CASCADE;
        ALTER TABLE pairs ADD COLUMN collection_gone_since_ms INTEGER;
        ALTER TABLE pairs ADD COLUMN meta_checked_at_ms INTEGER;
        ALTER TABLE pairs ADD COLUMN meta_display_name TEXT;
        ALTER TABLE pairs ADD COLUMN meta_color TEXT;",
    },
    // What a pair's sync plans from (each side's stored view, the synced state, the open
    // conflicts, the direction and the policy) is counted in `plan_version`: every change to
    // it, by any code path, moves the counter. `settled_version` is the count at which a
    // sync last left nothing to do; a sync that finds the count there plans only the items
    // it saw change (src/sync/run.rs).
    Migration {
        version: 5,
        sql: "ALTER TABLE pairs ADD COLUMN plan_version INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE pairs ADD COLUMN settled_version INTEGER;
        CREATE TRIGGER item_seen_insert_plan AFTER INSERT ON item_seen BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.pair_id;
        END;
        CREATE TRIGGER item_seen_update_plan AFTER UPDATE ON item_seen BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.pair_id;
        END;
        CREATE TRIGGER item_seen_delete_plan AFTER DELETE ON item_seen BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = OLD.pair_id;
        END;
        CREATE TRIGGER item_state_insert_plan AFTER INSERT ON item_state BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.pair_id;
        END;
        CREATE TRIGGER item_state_update_plan AFTER UPDATE ON item_state BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.pair_id;
        END;
        CREATE TRIGGER item_state_delete_plan AFTER DELETE ON item_state BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = OLD.pair_id;
        END;
        CREATE TRIGGER conflicts_insert_plan AFTER INSERT ON conflicts BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.pair_id;
        END;
        CREATE TRIGGER conflicts_update_plan AFTER UPDATE ON conflicts BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.pair_id;
        END;
        CREATE TRIGGER conflicts_delete_plan AFTER DELETE ON conflicts BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = OLD.pair_id;
        END;
        CREATE TRIGGER pairs_plan_settings AFTER UPDATE OF
            direction, conflict_policy, a_storage_id, b_storage_id ON pairs BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.id;
        END;",
    },
    // A conflict's id is what `concord conflicts resolve ID` names, typed again from shell
    // history: ids are never given twice (AUTOINCREMENT; a rowid was reused once the highest
    // was resolved). Open conflicts keep their ids; the table's triggers of version 5 are
    // made again, since dropping a table drops them.
    Migration {
        version: 6,
        sql: "CREATE TABLE conflicts_monotonic (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pair_id INTEGER NOT NULL REFERENCES pairs (id) ON DELETE CASCADE,
            uid TEXT NOT NULL,
            kind TEXT NOT NULL,
            summary TEXT NOT NULL,
            properties TEXT NOT NULL DEFAULT '[]',
            base BLOB,
            a_href TEXT,
            a_etag TEXT,
            a_hash TEXT,
            a_content BLOB,
            b_href TEXT,
            b_etag TEXT,
            b_hash TEXT,
            b_content BLOB,
            opened_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            UNIQUE (pair_id, uid)
        ) STRICT;
        INSERT INTO conflicts_monotonic (id, pair_id, uid, kind, summary, properties, base,
            a_href, a_etag, a_hash, a_content, b_href, b_etag, b_hash, b_content,
            opened_at_ms, updated_at_ms)
        SELECT id, pair_id, uid, kind, summary, properties, base,
            a_href, a_etag, a_hash, a_content, b_href, b_etag, b_hash, b_content,
            opened_at_ms, updated_at_ms FROM conflicts;
        DROP TABLE conflicts;
        ALTER TABLE conflicts_monotonic RENAME TO conflicts;
        CREATE TRIGGER conflicts_insert_plan AFTER INSERT ON conflicts BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.pair_id;
        END;
        CREATE TRIGGER conflicts_update_plan AFTER UPDATE ON conflicts BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = NEW.pair_id;
        END;
        CREATE TRIGGER conflicts_delete_plan AFTER DELETE ON conflicts BEGIN
            UPDATE pairs SET plan_version = plan_version + 1 WHERE id = OLD.pair_id;
        END;",
    },
];

/// Settings keys.
pub const PAUSED: &str = "paused";
/// The schedules that pausing paused (a JSON list of names), so resuming resumes only those.
pub const PAUSED_SCHEDULES: &str = "paused_schedules";

pub fn setting(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

pub fn set_setting(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (version, fixture SQL): a database as each shipped version before the current one left
    /// it (`tests/fixtures/`).
    const FIXTURES: &[(i64, &str)] = &[
        (1, include_str!("../tests/fixtures/core-v1.sql")),
        (2, include_str!("../tests/fixtures/core-v2.sql")),
        (3, include_str!("../tests/fixtures/core-v3.sql")),
        (4, include_str!("../tests/fixtures/core-v4.sql")),
        (5, include_str!("../tests/fixtures/core-v5.sql")),
    ];

    /// Core's tables, indexes and triggers as SQLite keeps them (the engine's, and the
    /// version table they share, are the engine's to test).
    fn schema_of(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL
                 AND name NOT LIKE 'durable_%' AND name <> 'schema_version' ORDER BY name",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn fixture_db(dir: &std::path::Path, sql: &str) -> concord_durable::Database {
        let db = concord_durable::Database::open(dir.join(crate::DATABASE_FILE)).unwrap();
        // A dump lists tables by name, children before parents.
        let conn = db.connect().unwrap();
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute_batch(sql).unwrap();
        db
    }

    #[test]
    fn every_fixture_has_the_schema_its_version_shipped() {
        for (version, sql) in FIXTURES {
            let fixture = tempfile::tempdir().unwrap();
            let fixture = fixture_db(fixture.path(), sql);
            let dir = tempfile::tempdir().unwrap();
            let fresh = concord_durable::Database::open(dir.path().join("fresh.db")).unwrap();
            let mut conn = fresh.connect().unwrap();
            let upto = usize::try_from(*version).unwrap();
            fresh
                .migrate(&mut conn, COMPONENT, &MIGRATIONS[..upto])
                .unwrap();
            assert_eq!(
                schema_of(&fixture.connect().unwrap()),
                schema_of(&conn),
                "v{version}"
            );
        }
        assert_eq!(
            FIXTURES.len() + 1,
            MIGRATIONS.len(),
            "ship a fixture of the previous version with each new migration"
        );
    }

    #[test]
    fn every_earlier_version_migrates_to_the_schema_of_a_new_database() {
        let fresh = tempfile::tempdir().unwrap();
        crate::Concord::open(fresh.path()).unwrap();
        let fresh = concord_durable::Database::open(fresh.path().join(crate::DATABASE_FILE))
            .unwrap()
            .connect()
            .unwrap();
        for (version, sql) in FIXTURES {
            let dir = tempfile::tempdir().unwrap();
            let db = fixture_db(dir.path(), sql);
            crate::Concord::open(dir.path()).unwrap();
            let conn = db.connect().unwrap();
            assert_eq!(schema_of(&conn), schema_of(&fresh), "v{version}");
            assert_eq!(setting(&conn, PAUSED).unwrap().as_deref(), Some("false"));
        }
    }

    /// A conflict as the sync opens one (`state::open_conflict`): its id.
    fn open_conflict(conn: &Connection, uid: &str) -> i64 {
        conn.execute(
            "INSERT INTO conflicts (pair_id, uid, kind, summary, opened_at_ms, updated_at_ms)
             VALUES (1, ?1, 'both-edited', ?1, 0, 0)",
            [uid],
        )
        .unwrap();
        conn.last_insert_rowid()
    }

    #[test]
    fn conflict_ids_are_kept_and_never_given_again() {
        for (version, sql) in FIXTURES.iter().filter(|(v, _)| *v >= 3) {
            let dir = tempfile::tempdir().unwrap();
            let db = fixture_db(dir.path(), sql);
            crate::Concord::open(dir.path()).unwrap();
            let conn = db.connect().unwrap();
            let ids: Vec<(i64, String)> = conn
                .prepare("SELECT id, uid FROM conflicts ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(
                ids,
                [(1, "standup".to_owned()), (3, "lunch".to_owned())],
                "v{version}: open conflicts keep the ids people saw"
            );
            let plan_version = || -> i64 {
                conn.query_row("SELECT plan_version FROM pairs WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .unwrap()
            };
            // The newest is resolved; the next conflict does not take its id.
            let before = plan_version();
            conn.execute("DELETE FROM conflicts WHERE id = 3", [])
                .unwrap();
            assert_eq!(open_conflict(&conn, "dentist"), 4, "v{version}");
            conn.execute("DELETE FROM conflicts WHERE id = 4", [])
                .unwrap();
            assert_eq!(open_conflict(&conn, "dentist"), 5, "v{version}");
            // The triggers still count the changes a sync plans from.
            assert_eq!(plan_version(), before + 4, "v{version}");
            // Removing the pair still takes its conflicts with it.
            conn.execute("DELETE FROM pairs WHERE id = 1", []).unwrap();
            let left: i64 = conn
                .query_row("SELECT count(*) FROM conflicts", [], |r| r.get(0))
                .unwrap();
            assert_eq!(left, 0, "v{version}");
        }
    }
}
