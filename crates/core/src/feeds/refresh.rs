//! One refresh cycle: every due feed checked concurrently (a global limit and a per-host
//! limit), bodies parsed as they arrive, results written by one writer in batched
//! transactions, then one notification composed for what is new.
//!
//! Safe to re-run after a crash, which is what a durable workflow step needs: fetches are
//! conditional, entries are upserted by stable key, and each feed's state is committed with
//! its entries. Run it as the step of a "feeds.refresh" workflow via [`refresh_blocking`].

use std::time::{Duration, Instant};

use chrono::{DateTime, Local, Utc};
use concord_durable::{Database, Synchronous};
use rusqlite::{Connection, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::FeedError;
use super::fetch::{
    Caching, ErrorClass, FetchError, FetchLimits, FetchOutcome, Fetcher, Validators,
};
use super::notify::{self, Notification, Policy, QuietHours};
use super::parse::{self, Document, StableHash};
use super::schedule::{self, Inputs};
use super::store::{self, DueFeed, NewEntry, ms};
use crate::schema;

/// Feeds fetched at the same time, over all hosts.
pub const CONCURRENCY_DEFAULT: usize = 16;
/// Results committed per transaction.
pub const WRITE_BATCH_MAX: usize = 64;
/// A permanent redirect is followed (the stored address changed) once seen this many times
/// in a row, so one misconfigured answer does not lose a feed.
pub const MOVE_CONFIRMATIONS: u32 = 2;
/// When a host says 429/503 without Retry-After.
pub const SLOW_DOWN_DEFAULT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone)]
pub struct RefreshOptions {
    pub concurrency: usize,
    pub limits: FetchLimits,
    /// Check every live feed, due or not.
    pub force: bool,
    /// Check only these feeds (due or not).
    pub only: Vec<i64>,
}

impl Default for RefreshOptions {
    fn default() -> Self {
        Self {
            concurrency: CONCURRENCY_DEFAULT,
            limits: FetchLimits::default(),
            force: false,
            only: Vec::new(),
        }
    }
}

/// What a refresh did, for the Activity page, `concord feeds refresh` and the workflow's
/// stored step result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefreshSummary {
    pub checked: u64,
    /// Answered with a changed document.
    pub changed: u64,
    /// Answered 304, or the same bytes as last time.
    pub unchanged: u64,
    pub failed: u64,
    pub new_entries: u64,
    pub updated_entries: u64,
    pub retired: u64,
    pub slowed_down: u64,
    pub moved: u64,
    pub duration_ms: u64,
    pub failures: Vec<FeedFailure>,
    pub notification: Option<Notification>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedFailure {
    pub feed_id: i64,
    pub url: String,
    pub error: String,
    pub suggestion: String,
    pub class: ErrorClass,
}

/// How one feed's check ended, as the writer receives it.
#[derive(Debug)]
enum Checked {
    Parsed {
        doc: Document,
        caching: Caching,
        body_hash: String,
    },
    Unchanged(Caching),
    Gone,
    SlowDown {
        status: u16,
        retry_after: Option<Duration>,
    },
    Failed(FetchError),
}

/// Refreshes on a runtime of its own; for callers outside async code (the CLI, a workflow
/// step run by a worker thread).
pub fn refresh_blocking(db: &Database, opts: &RefreshOptions) -> Result<RefreshSummary, FeedError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| FeedError::Client(e.to_string()))?;
    runtime.block_on(refresh(db, opts))
}

/// Checks every due feed and stores what changed. A feed that fails is recorded on the feed
/// (and in the summary); only a database error fails the refresh.
pub async fn refresh(db: &Database, opts: &RefreshOptions) -> Result<RefreshSummary, FeedError> {
    let started = Instant::now();
    let now = Utc::now();
    let due = {
        let conn = db.connect()?;
        store::due_feeds(&conn, now, opts.force, &opts.only)?
    };
    let fetcher = Fetcher::new(opts.limits.clone())?;
    let (tx, rx) = tokio::sync::mpsc::channel::<(DueFeed, Checked)>(WRITE_BATCH_MAX * 2);
    // Feed data can be fetched again: the writer commits without waiting for the disk (WAL +
    // NORMAL survives a crash of the process; a power cut may lose the last batches, which
    // the next refresh fetches again). Read and starred flags are written elsewhere, durably.
    let writer_db = db.clone().with_synchronous(Synchronous::Normal);
    let writer = tokio::task::spawn_blocking(move || write_results(&writer_db, rx));

    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let readers = Readers::new(db.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for feed in due {
        let fetcher = fetcher.clone();
        let tx = tx.clone();
        let slots = slots.clone();
        let readers = readers.clone();
        tasks.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let checked = check(&fetcher, &readers, &feed).await;
            // The writer only stops early on a database error, which it reports itself.
            let _ = tx.send((feed, checked)).await;
        });
    }
    drop(tx);
    while tasks.join_next().await.is_some() {}
    let mut summary = writer
        .await
        .map_err(|e| FeedError::Invalid(format!("the feed writer stopped: {e}")))??;
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(summary)
}

/// Read connections for the fetch tasks (what a feed already holds), reused across tasks.
#[derive(Clone)]
struct Readers {
    db: Database,
    idle: std::sync::Arc<std::sync::Mutex<Vec<Connection>>>,
}

impl Readers {
    fn new(db: Database) -> Self {
        Self {
            db,
            idle: std::sync::Arc::default(),
        }
    }

    /// The stored entry hashes of a feed; empty if they cannot be read (then every entry is
    /// sanitized again, which is slower but as correct).
    fn known(&self, feed_id: i64) -> parse::Known {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some(conn) = taken.or_else(|| self.db.connect().ok()) else {
            return parse::Known::new();
        };
        let known = store::known_entries(&conn, feed_id).unwrap_or_default();
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        known
    }
}

async fn check(fetcher: &Fetcher, readers: &Readers, feed: &DueFeed) -> Checked {
    let validators = Validators {
        etag: feed.etag.clone(),
        last_modified: feed.last_modified.clone(),
    };
    match fetcher.fetch(&feed.url, &validators).await {
        FetchOutcome::NotModified(caching) => Checked::Unchanged(caching),
        FetchOutcome::Gone => Checked::Gone,
        FetchOutcome::SlowDown {
            status,
            retry_after,
        } => Checked::SlowDown {
            status,
            retry_after,
        },
        FetchOutcome::Failed(e) => Checked::Failed(e),
        FetchOutcome::Modified(fetched) => {
            let mut h = StableHash::new();
            h.write(&fetched.body);
            let body_hash = h.hex();
            if feed.body_hash.as_deref() == Some(body_hash.as_str()) {
                return Checked::Unchanged(fetched.caching);
            }
            let known = readers.known(feed.id);
            match parse::parse_known(
                &fetched.body,
                fetched.charset.as_deref(),
                Some(&fetched.final_url),
                &known,
            ) {
                Ok(doc) => Checked::Parsed {
                    doc,
                    caching: fetched.caching,
                    body_hash,
                },
                Err(e) => Checked::Failed(FetchError::unparsable(e.to_string())),
            }
        }
    }
}

/// The single writer: results in batched `BEGIN IMMEDIATE` transactions, then the
/// notification for everything new.
fn write_results(
    db: &Database,
    mut rx: tokio::sync::mpsc::Receiver<(DueFeed, Checked)>,
) -> Result<RefreshSummary, FeedError> {
    let mut conn = db.connect()?;
    let mut summary = RefreshSummary::default();
    let mut new_entries: Vec<NewEntry> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = Utc::now();
        apply(&tx, first, now, &mut summary, &mut new_entries)?;
        for _ in 1..WRITE_BATCH_MAX {
            match rx.try_recv() {
                Ok(next) => apply(&tx, next, now, &mut summary, &mut new_entries)?,
                Err(_) => break,
            }
        }
        tx.commit()?;
    }
    summary.notification = notify::compose(&new_entries, &policy(&conn)?, Local::now().time());
    Ok(summary)
}

/// The notification policy as stored: keyword rules and quiet hours.
pub fn policy(conn: &Connection) -> Result<Policy, FeedError> {
    Ok(Policy {
        mute_keywords: store::mute_keywords(conn)?,
        quiet_hours: schema::setting(conn, store::QUIET_HOURS)?
            .as_deref()
            .and_then(QuietHours::parse),
    })
}

fn jitter() -> f64 {
    rand::random::<f64>() * 2.0 - 1.0
}

fn secs(d: Option<Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn apply(
    tx: &rusqlite::Transaction<'_>,
    (feed, checked): (DueFeed, Checked),
    now: DateTime<Utc>,
    summary: &mut RefreshSummary,
    new_entries: &mut Vec<NewEntry>,
) -> Result<(), FeedError> {
    summary.checked += 1;
    let mut inputs = Inputs {
        interval_override: feed.interval_override,
        ttl: feed.ttl,
        max_age: feed.max_age,
        skip_hours: feed.skip_hours.clone(),
        skip_days: feed.skip_days.clone(),
        jitter: jitter(),
        ..Inputs::default()
    };
    match checked {
        Checked::Parsed {
            doc,
            caching,
            body_hash,
        } => {
            summary.changed += 1;
            let (new, updated) = store::upsert_entries(tx, &feed, &doc, now)?;
            let first_fetch: bool = tx
                .prepare_cached(
                    "SELECT last_success_ms IS NULL FROM feed_fetch_state WHERE feed_id = ?1",
                )?
                .query_row([feed.id], |r| r.get(0))?;
            summary.new_entries += new.len() as u64;
            // A new subscription's backlog is not news.
            if !first_fetch {
                new_entries.extend(new);
            }
            summary.updated_entries += updated;
            store::prune(tx, feed.id, now)?;
            // A title the person chose (or the OPML gave) is kept.
            tx.prepare_cached(
                "UPDATE feeds SET title = CASE WHEN title = '' THEN ?2 ELSE title END,
                    site_url = COALESCE(?3, site_url) WHERE id = ?1",
            )?
            .execute(params![feed.id, doc.title, doc.site_url])?;
            let (hours, days) = store::join_skips(&doc);
            tx.prepare_cached(
                "UPDATE feed_fetch_state SET body_hash = ?2, ttl_s = ?3, skip_hours = ?4,
                    skip_days = ?5 WHERE feed_id = ?1",
            )?
            .execute(params![feed.id, body_hash, secs(doc.ttl), hours, days])?;
            // The document's own dates are the recent posts: no need to read them back.
            inputs.posts = doc.entries.iter().filter_map(|e| e.published).collect();
            inputs.ttl = doc.ttl;
            inputs.skip_hours = doc.skip_hours.clone();
            inputs.skip_days = doc.skip_days.clone();
            success(tx, &feed, &caching, 200, now, &mut inputs, summary)?;
        }
        Checked::Unchanged(caching) => {
            summary.unchanged += 1;
            success(tx, &feed, &caching, 304, now, &mut inputs, summary)?;
        }
        Checked::Gone => {
            summary.retired += 1;
            let reason = format!(
                "retired: the server said on {} that the feed is gone for good (410)",
                now.format("%Y-%m-%d")
            );
            tx.execute(
                "UPDATE feeds SET retired_at_ms = ?2, retired_reason = ?3 WHERE id = ?1",
                params![feed.id, ms(now), reason],
            )?;
            tx.execute(
                "UPDATE feed_fetch_state SET last_checked_ms = ?2, last_status = 410 WHERE feed_id = ?1",
                params![feed.id, ms(now)],
            )?;
        }
        Checked::SlowDown {
            status,
            retry_after,
        } => {
            summary.slowed_down += 1;
            let wait = retry_after.unwrap_or(SLOW_DOWN_DEFAULT);
            let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
            tx.execute(
                "INSERT INTO feed_hosts (host, slow_until_ms, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (host) DO UPDATE SET slow_until_ms = max(slow_until_ms, excluded.slow_until_ms),
                    reason = excluded.reason",
                params![
                    super::fetch::host_of(&feed.url),
                    ms(until),
                    format!("answered {status}, asked to wait {}", schedule::human_duration(wait))
                ],
            )?;
            inputs.posts = store::recent_posts(tx, feed.id)?;
            inputs.failures = feed.failures;
            inputs.failing_since = feed.failing_since;
            inputs.retry_after = Some(wait);
            let next = schedule::plan(now, &inputs);
            tx.execute(
                "UPDATE feed_fetch_state SET last_checked_ms = ?2, last_status = ?3,
                    next_check_ms = ?4, next_reason = ?5, interval_s = ?6 WHERE feed_id = ?1",
                params![
                    feed.id,
                    ms(now),
                    status,
                    ms(next.at),
                    next.reason,
                    secs(Some(next.interval))
                ],
            )?;
        }
        Checked::Failed(error) => {
            summary.failed += 1;
            inputs.posts = store::recent_posts(tx, feed.id)?;
            inputs.failures = feed.failures.saturating_add(1);
            let since = feed.failing_since.unwrap_or(now);
            inputs.failing_since = Some(since);
            let next = schedule::plan(now, &inputs);
            tx.execute(
                "UPDATE feed_fetch_state SET last_checked_ms = ?2, last_status = ?3,
                    failures = ?4, failing_since_ms = ?5, last_error = ?6, suggestion = ?7,
                    dead = ?8, next_check_ms = ?9, next_reason = ?10, interval_s = ?11
                 WHERE feed_id = ?1",
                params![
                    feed.id,
                    ms(now),
                    error.status,
                    inputs.failures,
                    ms(since),
                    error.message,
                    error.suggestion,
                    next.dead,
                    ms(next.at),
                    next.reason,
                    secs(Some(next.interval))
                ],
            )?;
            summary.failures.push(FeedFailure {
                feed_id: feed.id,
                url: feed.url.clone(),
                error: error.message,
                suggestion: error.suggestion.to_owned(),
                class: error.class,
            });
        }
    }
    Ok(())
}

/// A check that reached the feed: validators and cache hints kept, failures cleared, a
/// confirmed permanent move applied, the next check planned.
fn success(
    tx: &rusqlite::Transaction<'_>,
    feed: &DueFeed,
    caching: &Caching,
    status: u16,
    now: DateTime<Utc>,
    inputs: &mut Inputs,
    summary: &mut RefreshSummary,
) -> Result<(), FeedError> {
    // A 304 may omit the validators; keep the ones that got it.
    let etag = caching
        .validators
        .etag
        .clone()
        .or_else(|| feed.etag.clone());
    let last_modified = caching
        .validators
        .last_modified
        .clone()
        .or_else(|| feed.last_modified.clone());
    let (moved_to, moved_seen) = match &caching.moved_to {
        Some(to) if feed.moved_to.as_deref() == Some(to.as_str()) => {
            (Some(to.clone()), feed.moved_seen + 1)
        }
        Some(to) => (Some(to.clone()), 1),
        None => (None, 0),
    };
    let (moved_to, moved_seen) = match moved_to {
        Some(to) if moved_seen >= MOVE_CONFIRMATIONS => {
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM feeds WHERE url = ?1)",
                [&to],
                |r| r.get(0),
            )?;
            if !taken {
                tx.execute(
                    "UPDATE feeds SET url = ?2 WHERE id = ?1",
                    params![feed.id, to],
                )?;
                tx.execute(
                    "INSERT INTO feed_url_history (feed_id, old_url, new_url, changed_at_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![feed.id, feed.url, to, ms(now)],
                )?;
                summary.moved += 1;
            }
            (None, 0)
        }
        other => (other, moved_seen),
    };
    inputs.max_age = caching.max_age;
    if inputs.posts.is_empty() {
        inputs.posts = store::recent_posts(tx, feed.id)?;
    }
    let next = schedule::plan(now, inputs);
    tx.prepare_cached(
        "UPDATE feed_fetch_state SET etag = ?2, last_modified = ?3, max_age_s = ?4,
            last_checked_ms = ?5, last_success_ms = ?5, last_status = ?6, failures = 0,
            failing_since_ms = NULL, last_error = NULL, suggestion = NULL, dead = 0,
            moved_to = ?7, moved_seen = ?8, next_check_ms = ?9, next_reason = ?10, interval_s = ?11
         WHERE feed_id = ?1",
    )?
    .execute(params![
        feed.id,
        etag,
        last_modified,
        secs(caching.max_age),
        ms(now),
        status,
        moved_to,
        moved_seen,
        ms(next.at),
        next.reason,
        secs(Some(next.interval))
    ])?;
    Ok(())
}
