//! `concord feeds …`: subscriptions, refresh, entries and notification rules, for people
//! (aligned text) and scripts (`--json`). Each parses, calls one of core's feed operations
//! (`Concord::add_feed`, ...) and prints.

use crate::{print_json, runtime};
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use concord_core::Concord;
use concord_core::feeds::{FeedRow, RefreshSummary};
use concord_core::ops::{
    ENTRIES_LIMIT_DEFAULT, Entries, EntryQuery, FeedRef, FeedsToRefresh, Mark, MuteChanges, NewFeed,
};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Subscribe to a feed (RSS, Atom or JSON Feed) and check it now
    Add {
        url: String,
        #[arg(long)]
        title: Option<String>,
        /// Folder, nested with "/": "Tech/Rust"
        #[arg(long)]
        folder: Option<String>,
        /// Only subscribe; the next refresh checks it
        #[arg(long)]
        no_check: bool,
    },
    /// Unsubscribe from a feed (by id, address or title); its entries go too
    Remove { feed: String },
    /// Subscriptions with unread counts, status and when each is checked next, and why
    List,
    /// Subscribe to every feed in an OPML file ("-" reads standard input)
    Import { file: PathBuf },
    /// Write every subscription as OPML, to a file or standard output
    Export { file: Option<PathBuf> },
    /// Check the feeds that are due now (or the ones named, or --all) and store what is new
    Refresh {
        feeds: Vec<String>,
        /// Check every feed, due or not
        #[arg(long)]
        all: bool,
    },
    /// Entries, newest first
    Items {
        /// Only this feed (id, address or title)
        #[arg(long)]
        feed: Option<String>,
        #[arg(long)]
        unread: bool,
        #[arg(long)]
        starred: bool,
        /// At most this many (up to 500)
        #[arg(long, default_value_t = ENTRIES_LIMIT_DEFAULT)]
        limit: u32,
        /// Show each entry's sanitized HTML too
        #[arg(long)]
        full: bool,
    },
    /// Mark entries read (or --unread, --star, --unstar); --all with or without --feed
    Read {
        ids: Vec<i64>,
        #[arg(long)]
        unread: bool,
        #[arg(long)]
        star: bool,
        #[arg(long)]
        unstar: bool,
        /// Every entry (of --feed, or of all feeds)
        #[arg(long)]
        all: bool,
        #[arg(long)]
        feed: Option<String>,
    },
    /// Silence notifications: a feed, a keyword in titles, or quiet hours; no argument lists the rules
    Mute {
        /// The feed to mute (id, address or title)
        feed: Option<String>,
        /// Mute entries whose title contains this word
        #[arg(long)]
        keyword: Option<String>,
        /// No notifications between these local times, e.g. 22:00-07:00 ("off" clears)
        #[arg(long, value_name = "HH:MM-HH:MM")]
        quiet_hours: Option<String>,
        /// Undo: unmute the feed or remove the keyword
        #[arg(long)]
        off: bool,
    },
    /// Set how often one feed is checked ("30m", "2h", "1d"), or "auto" to let it adapt
    Interval { feed: String, every: String },
}

pub fn run(concord: &Concord, cmd: FeedsCommand, json: bool) -> Result<(), String> {
    match cmd {
        FeedsCommand::Add {
            url,
            title,
            folder,
            no_check,
        } => {
            let new = NewFeed {
                url,
                title,
                folder,
                check: !no_check,
            };
            let added = runtime()?.block_on(concord.add_feed(new)).map_err(err)?;
            if json {
                return print_json(&added);
            }
            let feed = &added.feed;
            if !added.added {
                println!(
                    "Already subscribed: {} (id {})",
                    feed.display_name(),
                    feed.id
                );
            } else {
                println!("Subscribed to {} (id {})", feed.display_name(), feed.id);
                print_feed_state(feed);
            }
            Ok(())
        }
        FeedsCommand::Remove { feed } => {
            let feed = concord.remove_feed(&feed.into()).map_err(err)?;
            if json {
                return print_json(&json!({ "removed": feed }));
            }
            println!(
                "Unsubscribed from {} ({} entries removed)",
                feed.display_name(),
                feed.entries
            );
            Ok(())
        }
        FeedsCommand::List => {
            let feeds = concord.feeds().map_err(err)?;
            if json {
                return print_json(&feeds);
            }
            if feeds.is_empty() {
                println!(
                    "No feeds yet: `concord feeds add URL` or `concord feeds import FILE.opml`"
                );
            }
            for f in &feeds {
                let folder = f
                    .folder
                    .as_deref()
                    .map(|f| format!("[{f}] "))
                    .unwrap_or_default();
                let muted = if f.muted { ", muted" } else { "" };
                println!(
                    "{:>4}  {folder}{}  ({} unread, {}{muted})",
                    f.id,
                    f.display_name(),
                    f.unread,
                    f.status
                );
                println!("      {}", f.url);
                print_feed_state(f);
            }
            Ok(())
        }
        FeedsCommand::Import { file } => {
            let bytes = if file.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf).map_err(err)?;
                buf
            } else {
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?
            };
            let report = concord.import_opml(&bytes).map_err(err)?;
            if json {
                return print_json(&report);
            }
            println!(
                "Imported {} new feeds ({} already subscribed); `concord feeds refresh` checks them",
                report.added, report.already_subscribed
            );
            for s in &report.skipped {
                println!("  skipped {s}");
            }
            Ok(())
        }
        FeedsCommand::Export { file } => {
            let text = concord.export_opml().map_err(err)?;
            match file {
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    if json {
                        return print_json(&json!({ "written": path }));
                    }
                    println!("Wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        FeedsCommand::Refresh { feeds, all } => {
            let which = if !feeds.is_empty() {
                FeedsToRefresh::Only(feeds.into_iter().map(FeedRef::from).collect())
            } else if all {
                FeedsToRefresh::All
            } else {
                FeedsToRefresh::Due
            };
            let summary = runtime()?
                .block_on(concord.refresh_feeds(which))
                .map_err(err)?;
            if json {
                return print_json(&summary);
            }
            print_summary(&summary);
            Ok(())
        }
        FeedsCommand::Items {
            feed,
            unread,
            starred,
            limit,
            full,
        } => {
            let query = EntryQuery {
                feed: feed.map(FeedRef::from),
                unread_only: unread,
                starred_only: starred,
                limit: Some(limit),
                // Scripts get each entry's HTML; people with --full.
                with_html: true,
            };
            let entries = concord.feed_entries(&query).map_err(err)?;
            if json {
                return print_json(&entries);
            }
            if entries.is_empty() {
                println!("No entries");
            }
            for e in &entries {
                let mark = match (e.read, e.starred) {
                    (_, true) => '*',
                    (false, _) => '•',
                    (true, _) => ' ',
                };
                let date = e
                    .published_at
                    .as_deref()
                    .map(|d| &d[..d.len().min(10)])
                    .unwrap_or("");
                let title = if e.title.is_empty() {
                    "(untitled)"
                } else {
                    &e.title
                };
                println!("{mark} {:>6}  {date:10}  {title}  — {}", e.id, e.feed_title);
                if let Some(url) = &e.url {
                    println!("          {url}");
                }
                if full && let Some(html) = &e.html {
                    println!("          {html}");
                }
            }
            Ok(())
        }
        FeedsCommand::Read {
            ids,
            unread,
            star,
            unstar,
            all,
            feed,
        } => {
            let mark = match (star, unstar, unread) {
                (true, _, _) => Mark::Starred,
                (_, true, _) => Mark::Unstarred,
                (_, _, true) => Mark::Unread,
                _ => Mark::Read,
            };
            let which = if all && !(star || unstar) {
                Entries::All(feed.map(FeedRef::from))
            } else if ids.is_empty() {
                return Err(
                    "name the entries (ids from `concord feeds items`), or use --all".into(),
                );
            } else {
                Entries::Ids(ids)
            };
            let marked = concord.mark_entries(which, mark).map_err(err)?;
            if json {
                return print_json(&marked);
            }
            println!(
                "{} entries changed; {} unread",
                marked.changed, marked.unread
            );
            Ok(())
        }
        FeedsCommand::Mute {
            feed,
            keyword,
            quiet_hours,
            off,
        } => {
            let changes = MuteChanges {
                feed: feed.map(|f| (FeedRef::from(f), !off)),
                keyword: keyword.map(|k| (k, !off)),
                quiet_hours: quiet_hours.map(|q| (q != "off").then_some(q)),
            };
            let rules = concord.set_mutes(changes).map_err(err)?;
            if json {
                return print_json(&rules);
            }
            let muted: Vec<&str> = rules.muted_feeds.iter().map(|f| f.display_name()).collect();
            println!(
                "Muted feeds:    {}",
                if muted.is_empty() {
                    "none".into()
                } else {
                    muted.join(", ")
                }
            );
            println!(
                "Muted keywords: {}",
                if rules.keywords.is_empty() {
                    "none".into()
                } else {
                    rules.keywords.join(", ")
                }
            );
            println!(
                "Quiet hours:    {}",
                rules.quiet_hours.as_deref().unwrap_or("none")
            );
            Ok(())
        }
        FeedsCommand::Interval { feed, every } => {
            let interval = if every == "auto" {
                None
            } else {
                Some(parse_duration(&every)?)
            };
            let f = concord
                .set_feed_interval(&feed.into(), interval)
                .map_err(err)?;
            if json {
                return print_json(&f);
            }
            match interval {
                Some(_) => println!(
                    "{} is checked every {every} from its next check",
                    f.display_name()
                ),
                None => println!(
                    "{} adapts its interval to how often it posts",
                    f.display_name()
                ),
            }
            Ok(())
        }
    }
}

fn print_feed_state(f: &FeedRow) {
    println!("      {}", f.next_reason);
    if let Some(e) = &f.last_error {
        println!("      last error: {e}");
    }
    if let Some(s) = &f.suggestion {
        println!("      suggestion: {s}");
    }
}

fn print_summary(s: &RefreshSummary) {
    println!(
        "Checked {} feeds in {} ms: {} changed, {} unchanged, {} failed; {} new entries, {} updated",
        s.checked,
        s.duration_ms,
        s.changed,
        s.unchanged,
        s.failed,
        s.new_entries,
        s.updated_entries
    );
    if s.slowed_down + s.retired + s.moved > 0 {
        println!(
            "  {} asked us to wait, {} gone for good (retired), {} moved to a new address",
            s.slowed_down, s.retired, s.moved
        );
    }
    for f in &s.failures {
        println!("  {}: {}\n    {}", f.url, f.error, f.suggestion);
    }
    if let Some(n) = &s.notification {
        println!(
            "Notification: {}\n  {}",
            n.summary,
            n.body.replace('\n', "\n  ")
        );
    }
}

/// "90s", "30m", "2h", "1d", or a bare number of minutes.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: give an interval like 30m, 2h or 1d"))?;
    let secs = match unit.trim() {
        "s" => n,
        "" | "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: give an interval like 30m, 2h or 1d")),
    };
    Ok(Duration::from_secs(secs))
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_like_people_write_them() {
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(2700));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_feed_file_can_be_added_listed_muted_and_exported() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let add = FeedsCommand::Add {
            url: "https://example.org/feed.xml".into(),
            title: Some("Example".into()),
            folder: Some("News".into()),
            no_check: true,
        };
        run(&concord, add, true).unwrap();
        run(
            &concord,
            FeedsCommand::Mute {
                feed: Some("Example".into()),
                keyword: Some("Ads".into()),
                quiet_hours: Some("22:00-07:00".into()),
                off: false,
            },
            false,
        )
        .unwrap();
        let rules = concord.set_mutes(Default::default()).unwrap();
        assert_eq!(rules.keywords, ["ads"]);
        assert_eq!(rules.quiet_hours.as_deref(), Some("22:00-07:00"));
        assert_eq!(rules.muted_feeds[0].title, "Example");
        assert_eq!(concord.status().unwrap().feeds, 1);
        let schedules = concord.engine().schedules().unwrap();
        assert!(
            schedules
                .iter()
                .any(|s| s.schedule.name == concord_core::feeds::workflow::SCHEDULE_NAME)
        );
        let out = dir.path().join("out.opml");
        run(
            &concord,
            FeedsCommand::Export {
                file: Some(out.clone()),
            },
            false,
        )
        .unwrap();
        let subs = concord_core::feeds::opml::import(&std::fs::read(out).unwrap()).unwrap();
        assert_eq!(subs[0].folder.as_deref(), Some("News"));
        assert!(
            run(
                &concord,
                FeedsCommand::Remove {
                    feed: "nope".into()
                },
                false
            )
            .is_err()
        );
    }
}
