//! Feeds as both faces offer them: subscribe (checked at once: an address that gives no feed is
//! not kept), list, unsubscribe, the entries and the reader, read and starred marks, mutes and
//! quiet hours, a feed's own interval, Refresh now (one at a time), OPML in and out. The limits
//! and the defaults live here once; the faces name a feed and show what comes back.

use std::time::Duration;

use concord_durable::RunId;
use serde::Serialize;

use super::OpError;
use crate::Concord;
use crate::feeds::fetch::ErrorClass;
use crate::feeds::opml::{self, ImportReport};
use crate::feeds::schedule::{OVERRIDE_MAX, OVERRIDE_MIN};
use crate::feeds::store::{self, EntryFilter, EntryRow, FeedRow, MuteRules};
use crate::feeds::{FeedError, RefreshOptions, RefreshSummary, refresh, workflow};

/// The most entries one list returns (a feed keeps at most 500, starred ones aside).
pub const ENTRIES_LIMIT_MAX: u32 = 500;
/// How many entries a list returns when the person gives no number.
pub const ENTRIES_LIMIT_DEFAULT: u32 = 20;

/// A feed as a face names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedRef {
    Id(i64),
    /// What a person typed: the id, the exact address, or a title that names one feed.
    Named(String),
}

impl From<i64> for FeedRef {
    fn from(id: i64) -> Self {
        FeedRef::Id(id)
    }
}

impl From<String> for FeedRef {
    fn from(named: String) -> Self {
        FeedRef::Named(named)
    }
}

/// A subscription to make.
#[derive(Debug, Clone, Default)]
pub struct NewFeed {
    /// `https://…`, `http://…`, or a host and path (read as https).
    pub url: String,
    /// None: the feed's own title, once checked.
    pub title: Option<String>,
    /// Nested with "/": "Tech/Rust".
    pub folder: Option<String>,
    /// Check it at once, so a wrong address is said now and not kept. Without it the next
    /// refresh checks it.
    pub check: bool,
}

/// What subscribing did.
#[derive(Debug, Clone, Serialize)]
pub struct AddedFeed {
    /// False: already subscribed; the subscription was left as it was.
    pub added: bool,
    /// The feed as it is now (after its first check, if it had one).
    pub feed: FeedRow,
    /// The first check, if there was one.
    pub refresh: Option<RefreshSummary>,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct EntryQuery {
    /// None: every feed's.
    pub feed: Option<FeedRef>,
    pub unread_only: bool,
    pub starred_only: bool,
    /// None: [`ENTRIES_LIMIT_DEFAULT`]; always within 1 and [`ENTRIES_LIMIT_MAX`].
    pub limit: Option<u32>,
    /// With each entry's sanitized HTML; a list for choosing leaves it to
    /// [`Concord::feed_entry`].
    pub with_html: bool,
}

/// Entries to mark.
#[derive(Debug, Clone)]
pub enum Entries {
    Ids(Vec<i64>),
    /// Every entry of one feed, or of all feeds (None).
    All(Option<FeedRef>),
}

/// A mark to set on entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Read,
    Unread,
    Starred,
    Unstarred,
}

/// What marking did: how many entries changed, and how many are unread now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Marked {
    pub changed: usize,
    pub unread: u64,
}

/// Changes to the notification rules; what is None stays as it is.
#[derive(Debug, Clone, Default)]
pub struct MuteChanges {
    /// Mute (true) or unmute a feed.
    pub feed: Option<(FeedRef, bool)>,
    /// Mute (true) entries whose title has this word, or stop muting them.
    pub keyword: Option<(String, bool)>,
    /// "22:00-07:00" local time, or None to clear them.
    pub quiet_hours: Option<Option<String>>,
}

/// Which feeds a refresh checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedsToRefresh {
    /// Those due now (each feed's interval, hosts that asked to wait left alone).
    Due,
    /// Every live feed, due or not (conditional GETs still leave an unchanged one be).
    All,
    /// These, due or not.
    Only(Vec<FeedRef>),
}

/// Only web links leave the app (to the person's browser); anything else in an entry's link
/// (`file:`, `javascript:`, a custom scheme) is refused.
pub fn web_link(url: &str) -> Result<&str, OpError> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(url.trim())
    } else {
        Err(OpError::Invalid(format!(
            "Concord opens only web links, not {url:?}"
        )))
    }
}

/// A feed's own interval, within what a person may choose.
fn checked_interval(every: Duration) -> Result<Duration, OpError> {
    if (OVERRIDE_MIN..=OVERRIDE_MAX).contains(&every) {
        Ok(every)
    } else {
        Err(OpError::Invalid(format!(
            "give an interval between {} and {} minutes",
            OVERRIDE_MIN.as_secs() / 60,
            OVERRIDE_MAX.as_secs() / 60
        )))
    }
}

fn find(conn: &rusqlite::Connection, feed: &FeedRef) -> Result<FeedRow, FeedError> {
    match feed {
        FeedRef::Id(id) => store::feed(conn, *id),
        FeedRef::Named(named) => store::find_feed(conn, named),
    }
}

impl Concord {
    /// Every subscription with its unread count, status, last error and suggestion, and when
    /// it is checked next and why.
    pub fn feeds(&self) -> Result<Vec<FeedRow>, OpError> {
        Ok(store::list_feeds(&self.database().connect()?)?)
    }

    pub fn feed(&self, feed: &FeedRef) -> Result<FeedRow, OpError> {
        Ok(find(&self.database().connect()?, feed)?)
    }

    /// Subscribes (background refreshes start with the first subscription) and, if asked,
    /// checks the feed at once: an address that does not give a feed is not kept and the error
    /// says why; one that cannot be reached right now is kept, failing, and retried.
    pub async fn add_feed(&self, new: NewFeed) -> Result<AddedFeed, OpError> {
        let (id, added) = {
            let conn = self.database().connect()?;
            store::add_feed(
                &conn,
                &new.url,
                new.title.as_deref(),
                new.folder.as_deref(),
                chrono::Utc::now(),
            )?
        };
        workflow::schedule(self.engine())?;
        let refresh = if added && new.check {
            let summary = self
                .refresh_feeds(FeedsToRefresh::Only(vec![FeedRef::Id(id)]))
                .await?;
            if let Some(failure) = summary.failures.iter().find(|f| f.feed_id == id)
                && failure.class != ErrorClass::Transient
            {
                store::remove_feed(&self.database().connect()?, id)?;
                return Err(OpError::Invalid(format!(
                    "not subscribed: {} — {}",
                    failure.error, failure.suggestion
                )));
            }
            Some(summary)
        } else {
            None
        };
        let feed = self.feed(&FeedRef::Id(id))?;
        Ok(AddedFeed {
            added,
            feed,
            refresh,
        })
    }

    /// Unsubscribes; the feed's entries go too. Returns the feed as it was.
    pub fn remove_feed(&self, feed: &FeedRef) -> Result<FeedRow, OpError> {
        let conn = self.database().connect()?;
        let row = find(&conn, feed)?;
        store::remove_feed(&conn, row.id)?;
        Ok(row)
    }

    /// Entries, newest first, as many as the query asks within the limits.
    pub fn feed_entries(&self, query: &EntryQuery) -> Result<Vec<EntryRow>, OpError> {
        let conn = self.database().connect()?;
        let feed_id = match &query.feed {
            Some(feed) => Some(find(&conn, feed)?.id),
            None => None,
        };
        let filter = EntryFilter {
            feed_id,
            unread_only: query.unread_only,
            starred_only: query.starred_only,
            limit: Some(
                query
                    .limit
                    .unwrap_or(ENTRIES_LIMIT_DEFAULT)
                    .clamp(1, ENTRIES_LIMIT_MAX),
            ),
        };
        let mut entries = store::entries(&conn, &filter)?;
        if !query.with_html {
            for entry in &mut entries {
                entry.html = None;
            }
        }
        Ok(entries)
    }

    /// One entry of a feed with its sanitized HTML (ammonia's allowlist, applied before it was
    /// stored), for the reader.
    pub fn feed_entry(&self, id: i64, feed_id: i64) -> Result<EntryRow, OpError> {
        // The store lists by feed; a feed keeps a bounded number of entries.
        let filter = EntryFilter {
            feed_id: Some(feed_id),
            ..EntryFilter::default()
        };
        store::entries(&self.database().connect()?, &filter)?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or(OpError::Feed(FeedError::EntryGone(id)))
    }

    /// Marks entries read, unread, starred or not. Every entry at once can only be marked
    /// read: unread or starred, entries are named.
    pub fn mark_entries(&self, which: Entries, mark: Mark) -> Result<Marked, OpError> {
        let conn = self.database().connect()?;
        let changed = match (which, mark) {
            (Entries::Ids(ids), Mark::Read | Mark::Unread) => {
                store::mark_read(&conn, &ids, mark == Mark::Read)?
            }
            (Entries::Ids(ids), Mark::Starred | Mark::Unstarred) => {
                store::set_starred(&conn, &ids, mark == Mark::Starred)?
            }
            (Entries::All(feed), Mark::Read) => {
                let feed_id = match &feed {
                    Some(feed) => Some(find(&conn, feed)?.id),
                    None => None,
                };
                store::mark_all_read(&conn, feed_id)?
            }
            (Entries::All(_), _) => {
                return Err(OpError::Invalid(
                    "every entry at once can only be marked read; name the entries to mark \
                     them unread or to star them"
                        .to_owned(),
                ));
            }
        };
        let unread = store::unread_count(&conn)?;
        Ok(Marked { changed, unread })
    }

    /// Mutes (or unmutes) a feed's notifications; returns the feed as it is afterwards.
    pub fn set_feed_muted(&self, feed: &FeedRef, muted: bool) -> Result<FeedRow, OpError> {
        let conn = self.database().connect()?;
        let id = find(&conn, feed)?.id;
        store::set_muted(&conn, id, muted)?;
        Ok(store::feed(&conn, id)?)
    }

    /// Changes the notification rules (a feed, a keyword, quiet hours) and returns every rule
    /// in force afterwards.
    pub fn set_mutes(&self, changes: MuteChanges) -> Result<MuteRules, OpError> {
        let conn = self.database().connect()?;
        if let Some((feed, muted)) = &changes.feed {
            store::set_muted(&conn, find(&conn, feed)?.id, *muted)?;
        }
        match &changes.keyword {
            Some((keyword, true)) => store::add_mute_keyword(&conn, keyword)?,
            Some((keyword, false)) => {
                store::remove_mute_keyword(&conn, keyword)?;
            }
            None => {}
        }
        if let Some(quiet_hours) = &changes.quiet_hours {
            store::set_quiet_hours(&conn, quiet_hours.as_deref().unwrap_or(""))?;
        }
        Ok(store::mute_rules(&conn)?)
    }

    /// Checks the feed every `every` (within [`OVERRIDE_MIN`] and [`OVERRIDE_MAX`]) from its
    /// next check, or with None lets its interval adapt to how often it posts again. Returns
    /// the feed with its new next check.
    pub fn set_feed_interval(
        &self,
        feed: &FeedRef,
        every: Option<Duration>,
    ) -> Result<FeedRow, OpError> {
        let every = every.map(checked_interval).transpose()?;
        let conn = self.database().connect()?;
        let id = find(&conn, feed)?.id;
        store::set_interval_override(&conn, id, every)?;
        Ok(store::feed(&conn, id)?)
    }

    /// Checks feeds now and stores what is new; returns what it did, with the one
    /// notification it composed (mutes and quiet hours applied). One refresh at a time per
    /// opened Concord: a second waits for the first, whose conditional GETs leave it little
    /// to do.
    pub async fn refresh_feeds(&self, which: FeedsToRefresh) -> Result<RefreshSummary, OpError> {
        let only = match &which {
            FeedsToRefresh::Only(feeds) => {
                let conn = self.database().connect()?;
                feeds
                    .iter()
                    .map(|feed| find(&conn, feed).map(|f| f.id))
                    .collect::<Result<Vec<_>, _>>()?
            }
            FeedsToRefresh::Due | FeedsToRefresh::All => Vec::new(),
        };
        let opts = RefreshOptions {
            force: which == FeedsToRefresh::All,
            only,
            ..RefreshOptions::default()
        };
        let _one = self.feeds_refreshing.lock().await;
        Ok(refresh(self.database(), &opts).await?)
    }

    /// What a completed "feeds.refresh" run did.
    pub fn feeds_refreshed_by(&self, run: RunId) -> Result<RefreshSummary, OpError> {
        let result = self.engine().show(run)?.result.unwrap_or_default();
        serde_json::from_value(result)
            .map_err(|e| OpError::Invalid(format!("run {run} left no refresh summary: {e}")))
    }

    /// Subscribes to every feed of an OPML document, keeping existing subscriptions as they
    /// are; the next refresh checks the new ones.
    pub fn import_opml(&self, opml: &[u8]) -> Result<ImportReport, OpError> {
        let report = opml::import_into(&self.database().connect()?, opml, chrono::Utc::now())?;
        workflow::schedule(self.engine())?;
        Ok(report)
    }

    /// Every subscription as an OPML document.
    pub fn export_opml(&self) -> Result<String, OpError> {
        Ok(opml::export_from(&self.database().connect()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concord() -> (tempfile::TempDir, Concord) {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        (dir, concord)
    }

    fn subscribe(concord: &Concord, url: &str, title: &str) -> FeedRow {
        let new = NewFeed {
            url: url.to_owned(),
            title: Some(title.to_owned()),
            ..NewFeed::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(concord.add_feed(new)).unwrap().feed
    }

    /// Entries `e0`, `e1`, ... of a feed, published in that order, each with a paragraph.
    fn add_entries(concord: &Concord, feed_id: i64, count: i64) {
        let conn = concord.database().connect().unwrap();
        for n in 0..count {
            conn.execute(
                "INSERT INTO feed_entries (feed_id, entry_key, title, summary_html,
                     content_hash, published_ms, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?2, '<p>hi</p>', ?2, ?3, ?3, ?3)",
                rusqlite::params![feed_id, format!("e{n}"), n],
            )
            .unwrap();
        }
    }

    /// A loopback web server answering every request with a web page that is not a feed.
    fn web_page_server() -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0; 4096];
                let _ = stream.read(&mut request);
                let page = "<!doctype html><html><body><p>A blog</p></body></html>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        format!("http://{address}/blog")
    }

    #[test]
    fn an_address_that_gives_no_feed_is_not_kept() {
        let (_dir, concord) = concord();
        let new = NewFeed {
            url: web_page_server(),
            check: true,
            ..NewFeed::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = runtime.block_on(concord.add_feed(new.clone())).unwrap_err();
        assert_eq!(error.kind(), "invalid");
        assert!(error.to_string().starts_with("not subscribed: "), "{error}");
        assert!(concord.feeds().unwrap().is_empty());
        // Unchecked, it is kept for the next refresh to judge.
        let unchecked = NewFeed {
            check: false,
            ..new
        };
        let added = runtime.block_on(concord.add_feed(unchecked)).unwrap();
        assert!(added.added && added.refresh.is_none());
        assert_eq!(concord.feeds().unwrap().len(), 1);
    }

    #[test]
    fn only_web_links_are_opened() {
        assert_eq!(
            web_link(" HTTPS://example.org/a ").unwrap(),
            "HTTPS://example.org/a"
        );
        assert!(web_link("http://example.org/").is_ok());
        for refused in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "mailto:a@b",
            "",
        ] {
            let error = web_link(refused).unwrap_err();
            assert_eq!(error.kind(), "invalid", "{refused}");
        }
    }

    #[test]
    fn a_feeds_own_interval_stays_within_its_bounds() {
        let (_dir, concord) = concord();
        let feed = FeedRef::Id(subscribe(&concord, "https://example.org/feed", "Example").id);
        let hour = Duration::from_secs(3600);
        let set = concord.set_feed_interval(&feed, Some(hour)).unwrap();
        assert_eq!(set.interval_override_s, Some(3600));
        for refused in [OVERRIDE_MIN / 2, OVERRIDE_MAX * 2] {
            let error = concord.set_feed_interval(&feed, Some(refused)).unwrap_err();
            assert_eq!(
                error.to_string(),
                "give an interval between 5 and 10080 minutes"
            );
        }
        let adapting = concord.set_feed_interval(&feed, None).unwrap();
        assert_eq!(adapting.interval_override_s, None);
    }

    #[test]
    fn entry_lists_stay_within_their_limits() {
        let (_dir, concord) = concord();
        subscribe(&concord, "https://example.org/feed", "Example");
        add_entries(&concord, 1, 30);
        let list = |limit, with_html| {
            concord
                .feed_entries(&EntryQuery {
                    limit,
                    with_html,
                    ..EntryQuery::default()
                })
                .unwrap()
        };
        assert_eq!(list(None, true).len(), 20, "the default");
        assert_eq!(list(Some(0), true).len(), 1, "at least one");
        assert_eq!(list(Some(10_000), true).len(), 30);
        assert!(list(None, false).iter().all(|e| e.html.is_none()));
        let newest = &list(Some(1), true)[0];
        assert_eq!(newest.title, "e29");
        let read = concord.feed_entry(newest.id, newest.feed_id).unwrap();
        assert_eq!(read.html.as_deref(), Some("<p>hi</p>"));
        assert_eq!(concord.feed_entry(999, 1).unwrap_err().kind(), "not_found");
    }

    #[test]
    fn every_entry_at_once_is_only_marked_read() {
        let (_dir, concord) = concord();
        let feed = subscribe(&concord, "https://example.org/feed", "Example");
        add_entries(&concord, feed.id, 2);
        let named = Some(FeedRef::Named("example".to_owned()));
        for mark in [Mark::Unread, Mark::Starred, Mark::Unstarred] {
            let error = concord
                .mark_entries(Entries::All(named.clone()), mark)
                .unwrap_err();
            assert_eq!(error.kind(), "invalid");
        }
        let marked = concord
            .mark_entries(Entries::All(named), Mark::Read)
            .unwrap();
        assert_eq!(
            marked,
            Marked {
                changed: 2,
                unread: 0
            }
        );
        let marked = concord
            .mark_entries(Entries::Ids(vec![1]), Mark::Unread)
            .unwrap();
        assert_eq!(
            marked,
            Marked {
                changed: 1,
                unread: 1
            }
        );
    }

    #[test]
    fn mute_rules_are_changed_and_read_back_together() {
        let (_dir, concord) = concord();
        subscribe(&concord, "https://example.org/feed", "Example");
        let rules = concord
            .set_mutes(MuteChanges {
                feed: Some((FeedRef::Named("Example".to_owned()), true)),
                keyword: Some((" Ads ".to_owned(), true)),
                quiet_hours: Some(Some("22:00-7:00".to_owned())),
            })
            .unwrap();
        assert_eq!(rules.muted_feeds[0].title, "Example");
        assert_eq!(rules.keywords, ["ads"]);
        assert_eq!(rules.quiet_hours.as_deref(), Some("22:00-07:00"));
        let error = concord
            .set_mutes(MuteChanges {
                quiet_hours: Some(Some("late".to_owned())),
                ..MuteChanges::default()
            })
            .unwrap_err();
        assert_eq!(error.kind(), "invalid");
        let rules = concord
            .set_mutes(MuteChanges {
                feed: Some((FeedRef::Id(1), false)),
                keyword: Some(("ads".to_owned(), false)),
                quiet_hours: Some(None),
            })
            .unwrap();
        assert!(rules.muted_feeds.is_empty() && rules.keywords.is_empty());
        assert_eq!(rules.quiet_hours, None);
    }

    #[test]
    fn a_feed_not_found_says_so() {
        let (_dir, concord) = concord();
        let error = concord
            .remove_feed(&FeedRef::Named("nope".to_owned()))
            .unwrap_err();
        assert_eq!(error.kind(), "not_found");
        assert_eq!(
            error.to_string(),
            "no feed matches \"nope\": see `concord feeds list`"
        );
    }
}
