//! The feed tables (migration 2 in `schema.rs`): subscriptions (`feeds`), their fetch state,
//! address history, entries with read/starred state, keyword mute rules and slowed hosts.
//! Entries are upserted by their stable key, so an edited entry is updated, never duplicated.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::FeedError;
use super::parse::Document;

/// Entries kept per feed beyond those still in the feed (starred ones are always kept).
pub const ENTRIES_PER_FEED_MAX: i64 = 500;

/// Settings keys (in the core `settings` table).
pub const QUIET_HOURS: &str = "feeds.quiet_hours";

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// One subscription as the Feeds page and `concord feeds list` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedRow {
    pub id: i64,
    pub url: String,
    pub title: String,
    pub site_url: Option<String>,
    pub folder: Option<String>,
    pub muted: bool,
    pub interval_override_s: Option<i64>,
    pub unread: u64,
    pub entries: u64,
    /// "new", "ok", "waiting" (the server asked for a pause), "failing", "dead" or "retired".
    pub status: String,
    pub next_check_at: Option<String>,
    pub next_reason: String,
    pub last_checked_at: Option<String>,
    pub last_error: Option<String>,
    pub suggestion: Option<String>,
}

impl FeedRow {
    /// The title, or the address while the feed has none yet.
    pub fn display_name(&self) -> &str {
        if self.title.is_empty() {
            &self.url
        } else {
            &self.title
        }
    }
}

fn rfc3339(ms: Option<i64>) -> Option<String> {
    ms.map(|m| from_ms(m).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

const FEED_SELECT: &str = "SELECT f.id, f.url, f.title, f.site_url, f.folder, f.muted,
        f.interval_override_s, f.retired_at_ms, f.retired_reason,
        s.next_check_ms, s.next_reason, s.last_checked_ms, s.last_error, s.suggestion,
        s.failures, s.dead, s.last_status,
        (SELECT COUNT(*) FROM feed_entries e WHERE e.feed_id = f.id AND e.read = 0),
        (SELECT COUNT(*) FROM feed_entries e WHERE e.feed_id = f.id)
    FROM feeds f JOIN feed_fetch_state s ON s.feed_id = f.id";

fn feed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedRow> {
    let retired_at: Option<i64> = r.get(7)?;
    let retired_reason: Option<String> = r.get(8)?;
    let last_checked: Option<i64> = r.get(11)?;
    let failures: i64 = r.get(14)?;
    let dead: bool = r.get(15)?;
    let last_status: Option<i64> = r.get(16)?;
    let status = if retired_at.is_some() {
        "retired"
    } else if dead {
        "dead"
    } else if failures > 0 {
        "failing"
    } else if matches!(last_status, Some(429 | 503)) {
        "waiting"
    } else if last_checked.is_none() {
        "new"
    } else {
        "ok"
    };
    let next_ms: i64 = r.get(9)?;
    Ok(FeedRow {
        id: r.get(0)?,
        url: r.get(1)?,
        title: r.get(2)?,
        site_url: r.get(3)?,
        folder: r.get(4)?,
        muted: r.get(5)?,
        interval_override_s: r.get(6)?,
        status: status.to_owned(),
        next_check_at: if retired_at.is_some() {
            None
        } else {
            rfc3339(Some(next_ms))
        },
        next_reason: match retired_reason {
            Some(reason) => reason,
            None => r.get(10)?,
        },
        last_checked_at: rfc3339(last_checked),
        last_error: r.get(12)?,
        suggestion: r.get(13)?,
        unread: r.get::<_, i64>(17)?.try_into().unwrap_or(0),
        entries: r.get::<_, i64>(18)?.try_into().unwrap_or(0),
    })
}

pub fn list_feeds(conn: &Connection) -> Result<Vec<FeedRow>, FeedError> {
    let mut stmt = conn.prepare(&format!(
        "{FEED_SELECT} ORDER BY COALESCE(f.folder, ''), lower(f.title), f.url"
    ))?;
    let rows = stmt
        .query_map([], feed_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn feed(conn: &Connection, id: i64) -> Result<FeedRow, FeedError> {
    conn.query_row(&format!("{FEED_SELECT} WHERE f.id = ?1"), [id], feed_row)
        .optional()?
        .ok_or_else(|| FeedError::NotFound(id.to_string()))
}

/// A feed by id, exact URL, or a title (case-insensitive) that names exactly one feed.
pub fn find_feed(conn: &Connection, key: &str) -> Result<FeedRow, FeedError> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT id FROM feeds WHERE CAST(id AS TEXT) = ?1 OR url = ?1
             UNION ALL SELECT id FROM feeds WHERE lower(title) = lower(?1)
             LIMIT 1",
            [key],
            |r| r.get(0),
        )
        .optional()?;
    match id {
        Some(id) => feed(conn, id),
        None => Err(FeedError::NotFound(key.to_owned())),
    }
}

/// Checks that `url` is an http(s) address and returns it normalized.
pub fn normalize_url(url: &str) -> Result<String, FeedError> {
    let trimmed = url.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    match url::Url::parse(&with_scheme) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(u.to_string())
        }
        _ => Err(FeedError::BadUrl(url.to_owned())),
    }
}

/// Subscribes to `url`; returns the feed's id and whether it was new (an existing
/// subscription to the same address is kept as it is).
pub fn add_feed(
    conn: &Connection,
    url: &str,
    title: Option<&str>,
    folder: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(i64, bool), FeedError> {
    let url = normalize_url(url)?;
    if let Some(id) = conn
        .query_row("SELECT id FROM feeds WHERE url = ?1", [&url], |r| r.get(0))
        .optional()?
    {
        return Ok((id, false));
    }
    conn.execute(
        "INSERT INTO feeds (url, title, folder, added_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![
            url,
            title.unwrap_or("").trim(),
            folder.filter(|f| !f.is_empty()),
            ms(now)
        ],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute("INSERT INTO feed_fetch_state (feed_id) VALUES (?1)", [id])?;
    Ok((id, true))
}

pub fn remove_feed(conn: &Connection, id: i64) -> Result<(), FeedError> {
    if conn.execute("DELETE FROM feeds WHERE id = ?1", [id])? == 0 {
        return Err(FeedError::NotFound(id.to_string()));
    }
    Ok(())
}

pub fn set_muted(conn: &Connection, id: i64, muted: bool) -> Result<(), FeedError> {
    if conn.execute(
        "UPDATE feeds SET muted = ?2 WHERE id = ?1",
        params![id, muted],
    )? == 0
    {
        return Err(FeedError::NotFound(id.to_string()));
    }
    Ok(())
}

/// Sets (or with `None` clears) the feed's own check interval; it takes effect now.
pub fn set_interval_override(
    conn: &Connection,
    id: i64,
    interval: Option<Duration>,
) -> Result<(), FeedError> {
    let secs = interval.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if conn.execute(
        "UPDATE feeds SET interval_override_s = ?2 WHERE id = ?1",
        params![id, secs],
    )? == 0
    {
        return Err(FeedError::NotFound(id.to_string()));
    }
    conn.execute(
        "UPDATE feed_fetch_state SET next_check_ms = 0,
            next_reason = 'interval changed: checked at the next refresh' WHERE feed_id = ?1",
        [id],
    )?;
    Ok(())
}

pub fn mute_keywords(conn: &Connection) -> Result<Vec<String>, FeedError> {
    let mut stmt = conn.prepare("SELECT keyword FROM feed_mute_rules ORDER BY keyword")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn add_mute_keyword(conn: &Connection, keyword: &str) -> Result<(), FeedError> {
    let k = keyword.trim().to_lowercase();
    if k.is_empty() {
        return Err(FeedError::Invalid("a mute keyword cannot be empty".into()));
    }
    conn.execute(
        "INSERT OR IGNORE INTO feed_mute_rules (keyword) VALUES (?1)",
        [k],
    )?;
    Ok(())
}

pub fn remove_mute_keyword(conn: &Connection, keyword: &str) -> Result<bool, FeedError> {
    let k = keyword.trim().to_lowercase();
    Ok(conn.execute("DELETE FROM feed_mute_rules WHERE keyword = ?1", [k])? > 0)
}

/// One entry as listed and read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryRow {
    pub id: i64,
    pub feed_id: i64,
    pub feed_title: String,
    pub title: String,
    pub url: Option<String>,
    pub author: Option<String>,
    pub published_at: Option<String>,
    /// Sanitized HTML: content if the feed gave it, else the summary.
    pub html: Option<String>,
    pub read: bool,
    pub starred: bool,
}

#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub feed_id: Option<i64>,
    pub unread_only: bool,
    pub starred_only: bool,
    pub limit: Option<u32>,
}

pub fn entries(conn: &Connection, filter: &EntryFilter) -> Result<Vec<EntryRow>, FeedError> {
    let mut stmt = conn.prepare(
        "SELECT e.id, e.feed_id, CASE f.title WHEN '' THEN f.url ELSE f.title END, e.title,
                e.url, e.author, e.published_ms, COALESCE(e.content_html, e.summary_html),
                e.read, e.starred
         FROM feed_entries e JOIN feeds f ON f.id = e.feed_id
         WHERE (?1 IS NULL OR e.feed_id = ?1) AND (?2 = 0 OR e.read = 0) AND (?3 = 0 OR e.starred = 1)
         ORDER BY COALESCE(e.published_ms, e.first_seen_ms) DESC, e.id DESC
         LIMIT ?4",
    )?;
    let limit = filter.limit.map_or(-1, i64::from);
    let rows = stmt
        .query_map(
            params![
                filter.feed_id,
                filter.unread_only,
                filter.starred_only,
                limit
            ],
            |r| {
                Ok(EntryRow {
                    id: r.get(0)?,
                    feed_id: r.get(1)?,
                    feed_title: r.get(2)?,
                    title: r.get(3)?,
                    url: r.get(4)?,
                    author: r.get(5)?,
                    published_at: rfc3339(r.get(6)?),
                    html: r.get(7)?,
                    read: r.get(8)?,
                    starred: r.get(9)?,
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Marks entries read (or unread); returns how many changed.
pub fn mark_read(conn: &Connection, ids: &[i64], read: bool) -> Result<usize, FeedError> {
    let mut n = 0;
    let mut stmt =
        conn.prepare("UPDATE feed_entries SET read = ?2 WHERE id = ?1 AND read != ?2")?;
    for id in ids {
        n += stmt.execute(params![id, read])?;
    }
    Ok(n)
}

/// Marks every entry of a feed (or of all feeds) read.
pub fn mark_all_read(conn: &Connection, feed_id: Option<i64>) -> Result<usize, FeedError> {
    Ok(conn.execute(
        "UPDATE feed_entries SET read = 1 WHERE read = 0 AND (?1 IS NULL OR feed_id = ?1)",
        [feed_id],
    )?)
}

pub fn set_starred(conn: &Connection, ids: &[i64], starred: bool) -> Result<usize, FeedError> {
    let mut n = 0;
    let mut stmt = conn.prepare("UPDATE feed_entries SET starred = ?2 WHERE id = ?1")?;
    for id in ids {
        n += stmt.execute(params![id, starred])?;
    }
    Ok(n)
}

pub fn unread_count(conn: &Connection) -> Result<u64, FeedError> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM feed_entries WHERE read = 0",
        [],
        |r| r.get(0),
    )?;
    Ok(n.try_into().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// The refresh's side

/// A feed due for a check, with what the fetch and the scheduler need.
#[derive(Debug, Clone)]
pub struct DueFeed {
    pub id: i64,
    pub url: String,
    pub title: String,
    pub muted: bool,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub body_hash: Option<String>,
    pub interval_override: Option<Duration>,
    pub ttl: Option<Duration>,
    pub max_age: Option<Duration>,
    pub skip_hours: Vec<u32>,
    pub skip_days: Vec<chrono::Weekday>,
    pub failures: u32,
    pub failing_since: Option<DateTime<Utc>>,
    pub moved_to: Option<String>,
    pub moved_seen: u32,
}

fn secs(v: Option<i64>) -> Option<Duration> {
    v.and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
}

/// Feeds to check now: due ones (all live ones with `force`, or those in `only`), minus
/// retired ones and those on a host that asked us to slow down.
pub fn due_feeds(
    conn: &Connection,
    now: DateTime<Utc>,
    force: bool,
    only: &[i64],
) -> Result<Vec<DueFeed>, FeedError> {
    let slowed: Vec<String> = conn
        .prepare("SELECT host FROM feed_hosts WHERE slow_until_ms > ?1")?
        .query_map([ms(now)], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT f.id, f.url, f.title, f.muted, s.etag, s.last_modified, s.body_hash,
                f.interval_override_s, s.ttl_s, s.max_age_s, s.skip_hours, s.skip_days,
                s.failures, s.failing_since_ms, s.moved_to, s.moved_seen, s.next_check_ms
         FROM feeds f JOIN feed_fetch_state s ON s.feed_id = f.id
         WHERE f.retired_at_ms IS NULL
         ORDER BY s.next_check_ms, f.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let skip_hours: String = r.get(10)?;
        let skip_days: String = r.get(11)?;
        let next: i64 = r.get(16)?;
        Ok((
            next,
            DueFeed {
                id: r.get(0)?,
                url: r.get(1)?,
                title: r.get(2)?,
                muted: r.get(3)?,
                etag: r.get(4)?,
                last_modified: r.get(5)?,
                body_hash: r.get(6)?,
                interval_override: secs(r.get(7)?),
                ttl: secs(r.get(8)?),
                max_age: secs(r.get(9)?),
                skip_hours: skip_hours
                    .split(',')
                    .filter_map(|h| h.parse().ok())
                    .collect(),
                skip_days: skip_days
                    .split(',')
                    .filter_map(|d| d.parse().ok())
                    .collect(),
                failures: r.get::<_, i64>(12)?.try_into().unwrap_or(0),
                failing_since: r.get::<_, Option<i64>>(13)?.map(from_ms),
                moved_to: r.get(14)?,
                moved_seen: r.get::<_, i64>(15)?.try_into().unwrap_or(0),
            },
        ))
    })?;
    let mut due = Vec::new();
    for row in rows {
        let (next, feed) = row?;
        let wanted = if only.is_empty() {
            force || next <= ms(now)
        } else {
            only.contains(&feed.id)
        };
        if wanted && !slowed.contains(&super::fetch::host_of(&feed.url)) {
            due.push(feed);
        }
    }
    Ok(due)
}

/// A feed's stored entry keys and hashes, so a changed document re-sanitizes only what changed.
pub fn known_entries(conn: &Connection, feed_id: i64) -> Result<super::parse::Known, FeedError> {
    let mut stmt =
        conn.prepare_cached("SELECT entry_key, content_hash FROM feed_entries WHERE feed_id = ?1")?;
    let rows = stmt
        .query_map([feed_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Publication dates of a feed's recent entries, newest first, for the scheduler.
pub fn recent_posts(tx: &Connection, feed_id: i64) -> Result<Vec<DateTime<Utc>>, FeedError> {
    let mut stmt = tx.prepare_cached(
        "SELECT published_ms FROM feed_entries WHERE feed_id = ?1 AND published_ms IS NOT NULL
         ORDER BY published_ms DESC LIMIT 20",
    )?;
    let rows = stmt
        .query_map([feed_id], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(from_ms))
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// An entry that arrived in this refresh, for the notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEntry {
    pub id: i64,
    pub feed_id: i64,
    pub feed_title: String,
    pub feed_muted: bool,
    pub title: String,
    pub url: Option<String>,
}

/// Stores a document's entries: new ones inserted, changed ones updated in place (read state
/// kept), unchanged ones only marked seen. Returns the new entries and how many were updated.
pub fn upsert_entries(
    tx: &Transaction<'_>,
    feed: &DueFeed,
    doc: &Document,
    now: DateTime<Utc>,
) -> Result<(Vec<NewEntry>, u64), FeedError> {
    let now_ms = ms(now);
    let mut insert = tx.prepare_cached(
        "INSERT INTO feed_entries (feed_id, entry_key, title, url, author, summary_html,
            content_html, published_ms, updated_ms, content_hash, first_seen_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
         ON CONFLICT (feed_id, entry_key) DO NOTHING",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE feed_entries SET title = ?3, url = ?4, author = ?5, summary_html = ?6,
            content_html = ?7, published_ms = COALESCE(?8, published_ms), updated_ms = ?9,
            content_hash = ?10, last_seen_ms = ?11, changed_ms = ?11
         WHERE feed_id = ?1 AND entry_key = ?2 AND content_hash != ?10",
    )?;
    let mut seen = tx.prepare_cached(
        "UPDATE feed_entries SET last_seen_ms = ?3 WHERE feed_id = ?1 AND entry_key = ?2",
    )?;
    let mut new = Vec::new();
    let mut updated = 0;
    // A document that repeats a key counts once (the first, usually the newest, wins).
    let mut keys = std::collections::HashSet::new();
    for e in &doc.entries {
        if !keys.insert(e.key.as_str()) {
            continue;
        }
        if e.unchanged {
            seen.execute(params![feed.id, e.key, now_ms])?;
            continue;
        }
        let hash = &e.hash;
        let published = e.published.map(ms);
        let updated_ms = e.updated.map(ms);
        let values = params![
            feed.id,
            e.key,
            e.title,
            e.url,
            e.author,
            e.summary_html,
            e.content_html,
            published,
            updated_ms,
            hash,
            now_ms
        ];
        if insert.execute(values)? == 1 {
            new.push(NewEntry {
                id: tx.last_insert_rowid(),
                feed_id: feed.id,
                feed_title: if doc.title.is_empty() {
                    feed.title.clone()
                } else {
                    doc.title.clone()
                },
                feed_muted: feed.muted,
                title: e.title.clone(),
                url: e.url.clone(),
            });
        } else if update.execute(values)? == 1 {
            updated += 1;
        } else {
            seen.execute(params![feed.id, e.key, now_ms])?;
        }
    }
    Ok((new, updated))
}

/// Keeps at most [`ENTRIES_PER_FEED_MAX`] entries per feed: never starred ones, never ones
/// still in the feed (seen at `now`), else the oldest go first.
pub fn prune(tx: &Transaction<'_>, feed_id: i64, now: DateTime<Utc>) -> Result<usize, FeedError> {
    let count: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM feed_entries WHERE feed_id = ?1")?
        .query_row([feed_id], |r| r.get(0))?;
    if count <= ENTRIES_PER_FEED_MAX {
        return Ok(0);
    }
    Ok(tx
        .prepare_cached(
            "DELETE FROM feed_entries WHERE id IN (
            SELECT id FROM feed_entries WHERE feed_id = ?1
            ORDER BY COALESCE(published_ms, first_seen_ms) DESC, id DESC
            LIMIT -1 OFFSET ?2)
         AND starred = 0 AND last_seen_ms < ?3",
        )?
        .execute(params![feed_id, ENTRIES_PER_FEED_MAX, ms(now)])?)
}

pub fn join_skips(doc: &Document) -> (String, String) {
    let hours = doc
        .skip_hours
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let days = doc
        .skip_days
        .iter()
        .map(|d| format!("{d:?}"))
        .collect::<Vec<_>>()
        .join(",");
    (hours, days)
}

/// Every notification rule in force, for `concord feeds mute` and the Preferences page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MuteRules {
    pub muted_feeds: Vec<FeedRow>,
    pub keywords: Vec<String>,
    /// "22:00-07:00", local time.
    pub quiet_hours: Option<String>,
}

pub fn mute_rules(conn: &Connection) -> Result<MuteRules, FeedError> {
    Ok(MuteRules {
        muted_feeds: list_feeds(conn)?.into_iter().filter(|f| f.muted).collect(),
        keywords: mute_keywords(conn)?,
        quiet_hours: crate::schema::setting(conn, QUIET_HOURS)?.filter(|q| !q.is_empty()),
    })
}

/// Sets quiet hours ("22:00-07:00", kept as `HH:MM-HH:MM`); an empty value clears them.
pub fn set_quiet_hours(conn: &Connection, value: &str) -> Result<(), FeedError> {
    let value = match value.trim() {
        "" => String::new(),
        given => super::notify::QuietHours::parse(given)
            .ok_or_else(|| {
                FeedError::Invalid(format!(
                    "{given:?}: give quiet hours as HH:MM-HH:MM, e.g. 22:00-07:00"
                ))
            })?
            .to_string(),
    };
    crate::schema::set_setting(conn, QUIET_HOURS, &value)?;
    Ok(())
}
