//! The notification policy: the new entries of one refresh become at most one notification
//! (never one per entry), leaving out muted feeds and entries whose title matches a keyword
//! mute rule, and none at all during quiet hours (the entries stay unread). This module
//! writes the notification; the desktop shell sends it.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use super::store::NewEntry;

/// Titles named in the body before "and N more".
pub const TITLES_SHOWN_MAX: usize = 3;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Lower-case keywords: an entry whose title contains one is not announced.
    pub mute_keywords: Vec<String>,
    /// Local time range (may wrap midnight, e.g. 22:00–07:00) with no notifications.
    pub quiet_hours: Option<QuietHours>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Reads "22:00-07:00".
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('-')?;
        let t = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").ok();
        Some(Self {
            start: t(a)?,
            end: t(b)?,
        })
    }

    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// One desktop notification for a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub summary: String,
    pub body: String,
    /// Entries announced (the action opens the first, or the Feeds page for several).
    pub entry_ids: Vec<i64>,
}

/// Groups `new` into one notification, or none when nothing is left to announce.
pub fn compose(new: &[NewEntry], policy: &Policy, local_now: NaiveTime) -> Option<Notification> {
    if policy.quiet_hours.is_some_and(|q| q.contains(local_now)) {
        return None;
    }
    let announced: Vec<&NewEntry> = new
        .iter()
        .filter(|e| !e.feed_muted)
        .filter(|e| {
            let title = e.title.to_lowercase();
            !policy
                .mute_keywords
                .iter()
                .any(|k| title.contains(k.as_str()))
        })
        .collect();
    let first = announced.first()?;
    let mut feeds: Vec<(&str, usize)> = Vec::new();
    for e in &announced {
        match feeds.iter_mut().find(|(t, _)| *t == e.feed_title) {
            Some((_, n)) => *n += 1,
            None => feeds.push((&e.feed_title, 1)),
        }
    }
    let titled = |e: &&NewEntry| {
        if e.title.is_empty() {
            "(untitled)".to_owned()
        } else {
            e.title.clone()
        }
    };
    let (summary, body) = match (announced.len(), feeds.len()) {
        (1, _) => (first.feed_title.clone(), titled(first)),
        (n, 1) => (
            format!("{n} new in {}", first.feed_title),
            list(&announced, titled),
        ),
        (n, f) => {
            feeds.sort_by_key(|f| std::cmp::Reverse(f.1));
            let mut body = feeds
                .iter()
                .take(TITLES_SHOWN_MAX)
                .map(|(t, n)| format!("{t} ({n})"))
                .collect::<Vec<_>>()
                .join(", ");
            if f > TITLES_SHOWN_MAX {
                body.push_str(&format!(" and {} more feeds", f - TITLES_SHOWN_MAX));
            }
            (format!("{n} new items in {f} feeds"), body)
        }
    };
    Some(Notification {
        summary,
        body,
        entry_ids: announced.iter().map(|e| e.id).collect(),
    })
}

fn list(entries: &[&NewEntry], titled: impl Fn(&&NewEntry) -> String) -> String {
    let mut lines: Vec<String> = entries.iter().take(TITLES_SHOWN_MAX).map(&titled).collect();
    if entries.len() > TITLES_SHOWN_MAX {
        lines.push(format!("and {} more", entries.len() - TITLES_SHOWN_MAX));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: i64, feed: &str, title: &str, muted: bool) -> NewEntry {
        NewEntry {
            id,
            feed_id: feed.len() as i64,
            feed_title: feed.into(),
            feed_muted: muted,
            title: title.into(),
            url: None,
        }
    }

    fn noon() -> NaiveTime {
        NaiveTime::from_hms_opt(12, 0, 0).unwrap()
    }

    #[test]
    fn one_refresh_gives_one_grouped_notification() {
        let new: Vec<_> = (0..5)
            .map(|i| e(i, "Blog", &format!("Post {i}"), false))
            .collect();
        let n = compose(&new, &Policy::default(), noon()).unwrap();
        assert_eq!(n.summary, "5 new in Blog");
        assert_eq!(n.body, "Post 0\nPost 1\nPost 2\nand 2 more");
        let mut new = new;
        new.push(e(9, "News", "Elsewhere", false));
        let n = compose(&new, &Policy::default(), noon()).unwrap();
        assert_eq!(n.summary, "6 new items in 2 feeds");
        assert_eq!(n.body, "Blog (5), News (1)");
    }

    #[test]
    fn muted_feeds_keywords_and_quiet_hours_silence() {
        let new = vec![
            e(1, "Blog", "Sponsored: buy", false),
            e(2, "Loud", "x", true),
        ];
        let policy = Policy {
            mute_keywords: vec!["sponsored".into()],
            quiet_hours: None,
        };
        assert_eq!(compose(&new, &policy, noon()), None);
        let new = vec![e(1, "Blog", "Hello", false)];
        let policy = Policy {
            quiet_hours: QuietHours::parse("22:00-07:00"),
            ..Policy::default()
        };
        let late = NaiveTime::from_hms_opt(23, 30, 0).unwrap();
        assert_eq!(compose(&new, &policy, late), None);
        let n = compose(&new, &policy, noon()).unwrap();
        assert_eq!((n.summary.as_str(), n.body.as_str()), ("Blog", "Hello"));
    }
}
