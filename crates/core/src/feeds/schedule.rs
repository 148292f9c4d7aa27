//! When each feed is checked next, and why, in words the person reads in the Feeds page:
//! "next at 14:05: posts about daily; server asked for 1 h".
//!
//! The interval follows how often the feed posts (a quarter of the typical gap between its
//! recent entries), is never shorter than what the server asked for (RSS `ttl`, Cache-Control
//! max-age, Retry-After), is clamped to [`INTERVAL_MIN`]..[`INTERVAL_MAX`], and a per-feed
//! override replaces it. `skipHours`/`skipDays` push the check out of the skipped slot. Errors
//! back off exponentially with jitter; a feed failing for [`DEAD_AFTER`] is dead: checked once
//! a day, flagged with its last error and a suggestion.

use std::time::Duration;

use chrono::{DateTime, Datelike, Local, TimeZone, Timelike, Utc, Weekday};

pub const INTERVAL_MIN: Duration = Duration::from_secs(15 * 60);
pub const INTERVAL_MAX: Duration = Duration::from_secs(24 * 3600);
/// A per-feed override may go beyond the automatic range, within these bounds.
pub const OVERRIDE_MIN: Duration = Duration::from_secs(5 * 60);
pub const OVERRIDE_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
/// Without posting dates to learn from.
pub const INTERVAL_DEFAULT: Duration = Duration::from_secs(3600);
/// Failing for this long (and at least [`DEAD_FAILURES_MIN`] times) makes a feed dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);
pub const DEAD_FAILURES_MIN: u32 = 5;
/// Entries whose dates are used to learn the posting frequency.
pub const POSTS_SAMPLE_MAX: usize = 20;
/// ±20 % jitter on backoff, so feeds that failed together do not retry together.
pub const JITTER_FRACTION: f64 = 0.2;

/// What is known about a feed when its next check is planned.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Publication dates of recent entries, any order.
    pub posts: Vec<DateTime<Utc>>,
    pub ttl: Option<Duration>,
    pub max_age: Option<Duration>,
    pub retry_after: Option<Duration>,
    pub skip_hours: Vec<u32>,
    pub skip_days: Vec<Weekday>,
    pub interval_override: Option<Duration>,
    /// Failures in a row, counting the check just made.
    pub failures: u32,
    pub failing_since: Option<DateTime<Utc>>,
    /// In [-1, 1]: where in the jitter band this check lands (random in production).
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NextCheck {
    pub at: DateTime<Utc>,
    pub interval: Duration,
    pub dead: bool,
    /// "next at 14:05: posts about daily; server asked for 1 h"
    pub reason: String,
}

pub fn plan(now: DateTime<Utc>, inputs: &Inputs) -> NextCheck {
    let mut why: Vec<String> = Vec::new();
    let dead = inputs.failures >= DEAD_FAILURES_MIN
        && inputs
            .failing_since
            .is_some_and(|since| (now - since).to_std().unwrap_or_default() >= DEAD_AFTER);

    let mut interval = if let Some(o) = inputs.interval_override {
        let o = o.clamp(OVERRIDE_MIN, OVERRIDE_MAX);
        why.push(format!("interval set to {}", human_duration(o)));
        o
    } else {
        let (learned, words) = learned_interval(&inputs.posts);
        why.push(words);
        let asked = [inputs.ttl, inputs.max_age].into_iter().flatten().max();
        let mut interval = learned;
        if let Some(asked) = asked.filter(|a| *a > learned) {
            why.push(format!("server asked for {}", human_duration(asked)));
            interval = asked;
        }
        interval.clamp(INTERVAL_MIN, INTERVAL_MAX)
    };

    if dead {
        interval = INTERVAL_MAX;
        why.clear();
        why.push(format!(
            "failing for {}; checked once a day",
            human_duration(
                (now - inputs.failing_since.unwrap_or(now))
                    .to_std()
                    .unwrap_or_default()
            )
        ));
    } else if inputs.failures > 0 {
        // Retries start soon (a blip should not cost hours) and double up to once a day.
        let factor = 2u32.saturating_pow(inputs.failures.min(16));
        let backoff = INTERVAL_MIN.saturating_mul(factor).min(INTERVAL_MAX);
        interval = backoff;
        let jitter = 1.0 + JITTER_FRACTION * inputs.jitter.clamp(-1.0, 1.0);
        interval = interval.mul_f64(jitter);
        why.push(format!(
            "{} failed {} in a row, backing off",
            if inputs.failures == 1 {
                "check"
            } else {
                "checks"
            },
            inputs.failures
        ));
    }

    if let Some(ra) = inputs.retry_after.filter(|ra| *ra > interval) {
        interval = ra;
        why.push(format!("server asked to wait {}", human_duration(ra)));
    }

    let mut at = now + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::zero());
    if let Some(moved) = out_of_skips(at, &inputs.skip_hours, &inputs.skip_days)
        && moved != at
    {
        why.push("the feed asks not to be checked then".to_owned());
        at = moved;
    }
    let local = Local.from_utc_datetime(&at.naive_utc());
    let reason = format!("next at {}: {}", local.format("%H:%M"), why.join("; "));
    NextCheck {
        at,
        interval,
        dead,
        reason,
    }
}

/// A quarter of the median gap between recent posts, and how that reads.
fn learned_interval(posts: &[DateTime<Utc>]) -> (Duration, String) {
    let mut posts: Vec<_> = posts.to_vec();
    posts.sort_unstable_by(|a, b| b.cmp(a));
    posts.dedup();
    posts.truncate(POSTS_SAMPLE_MAX);
    let mut gaps: Vec<Duration> = posts
        .windows(2)
        .filter_map(|w| (w[0] - w[1]).to_std().ok())
        .collect();
    if gaps.is_empty() {
        return (
            INTERVAL_DEFAULT,
            "no posting dates to learn from".to_owned(),
        );
    }
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    (
        median / 4,
        format!("posts about {}", frequency_words(median)),
    )
}

fn frequency_words(gap: Duration) -> String {
    let hours = gap.as_secs_f64() / 3600.0;
    match hours {
        h if h < 1.5 => "hourly".to_owned(),
        h if h < 20.0 => format!("{} times a day", (24.0 / h).round()),
        h if h < 36.0 => "daily".to_owned(),
        h if h < 24.0 * 5.0 => format!("every {} days", (h / 24.0).round()),
        h if h < 24.0 * 10.0 => "weekly".to_owned(),
        h if h < 24.0 * 45.0 => "every few weeks".to_owned(),
        _ => "rarely".to_owned(),
    }
}

/// "15 min", "1 h", "2 h 30 min", "3 d".
pub fn human_duration(d: Duration) -> String {
    let mins = d.as_secs().div_ceil(60);
    match mins {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 && m % 60 == 0 => format!("{} h", m / 60),
        m if m < 48 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} d", m / (24 * 60)),
    }
}

/// The first moment at or after `at` outside the skipped hours (GMT, as RSS says) and days.
fn out_of_skips(at: DateTime<Utc>, hours: &[u32], days: &[Weekday]) -> Option<DateTime<Utc>> {
    if hours.len() >= 24 || days.len() >= 7 {
        return None; // a feed that skips everything is checked as if it skipped nothing
    }
    let mut t = at;
    for _ in 0..(24 * 8) {
        if !hours.contains(&t.hour()) && !days.contains(&t.weekday()) {
            return Some(t);
        }
        let next_hour =
            t.with_minute(0)?.with_second(0)?.with_nanosecond(0)? + chrono::Duration::hours(1);
        t = next_hour;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_daily_feed_is_checked_every_six_hours_unless_the_server_asks_more() {
        let now = t("2026-01-10T12:00:00Z");
        let posts = (1..=5).map(|d| now - chrono::Duration::days(d)).collect();
        let mut inputs = Inputs {
            posts,
            ..Inputs::default()
        };
        let next = plan(now, &inputs);
        assert_eq!(next.interval, Duration::from_secs(6 * 3600));
        assert!(next.reason.contains("posts about daily"), "{}", next.reason);

        inputs.ttl = Some(Duration::from_secs(12 * 3600));
        let next = plan(now, &inputs);
        assert_eq!(next.interval, Duration::from_secs(12 * 3600));
        assert!(
            next.reason.contains("server asked for 12 h"),
            "{}",
            next.reason
        );
        assert!(next.reason.starts_with("next at "), "{}", next.reason);
    }

    #[test]
    fn intervals_are_clamped_and_overridable() {
        let now = t("2026-01-10T12:00:00Z");
        let posts = (1..=5)
            .map(|m| now - chrono::Duration::minutes(m))
            .collect();
        let inputs = Inputs {
            posts,
            ..Inputs::default()
        };
        assert_eq!(plan(now, &inputs).interval, INTERVAL_MIN);
        let inputs = Inputs {
            ttl: Some(Duration::from_secs(9 * 24 * 3600)),
            ..Inputs::default()
        };
        assert_eq!(plan(now, &inputs).interval, INTERVAL_MAX);
        let inputs = Inputs {
            interval_override: Some(Duration::from_secs(2 * 3600)),
            ttl: Some(Duration::from_secs(9 * 3600)),
            ..Inputs::default()
        };
        let next = plan(now, &inputs);
        assert_eq!(next.interval, Duration::from_secs(2 * 3600));
        assert!(
            next.reason.contains("interval set to 2 h"),
            "{}",
            next.reason
        );
    }

    #[test]
    fn skip_hours_push_the_check_out() {
        let now = t("2026-01-10T00:10:00Z");
        let inputs = Inputs {
            skip_hours: vec![0, 1, 2, 3, 4, 5],
            ..Inputs::default()
        };
        let next = plan(now, &inputs);
        assert_eq!(next.at, t("2026-01-10T06:00:00Z"));
    }

    #[test]
    fn failures_back_off_with_jitter_then_the_feed_dies() {
        let now = t("2026-01-10T12:00:00Z");
        let mut inputs = Inputs {
            failures: 1,
            failing_since: Some(now),
            jitter: 0.0,
            ..Inputs::default()
        };
        assert_eq!(plan(now, &inputs).interval, Duration::from_secs(30 * 60));
        inputs.jitter = 1.0;
        assert_eq!(plan(now, &inputs).interval, Duration::from_secs(36 * 60));
        inputs.failures = 3;
        inputs.jitter = 0.0;
        assert_eq!(plan(now, &inputs).interval, Duration::from_secs(2 * 3600));
        inputs.failures = 9;
        inputs.failing_since = Some(now - chrono::Duration::days(4));
        let next = plan(now, &inputs);
        assert!(next.dead);
        assert_eq!(next.interval, INTERVAL_MAX);
        assert!(next.reason.contains("failing for 4 d"), "{}", next.reason);
    }
}
