//! A failed run's error in a person's words ("Can't reach dav.example.com"), with what to do
//! when only the person can fix it, and times as the status line says them ("2 min ago",
//! "at 14:05"). The errors read here are Concord's own (`DavError`, `StorageError`, the sync
//! guards), so the phrases matched are this crate's, tested against their `Display`.

use chrono::{DateTime, Local, TimeZone};

/// What went wrong, short enough for the tray's first line, and what the person can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// "Can't reach dav.example.com", "dav.example.com refused the password".
    pub said: String,
    /// What to do about it, when only the person can fix it.
    pub what_to_do: Option<String>,
}

/// The longest error text a cause quotes when it has no better words for it.
const QUOTED_CHARS_MAX: usize = 120;

/// `error` (a run's last error) in a person's words. `fallback_host` names the server when the
/// error does not (a folder error names its path instead).
pub fn cause_of(error: &str, fallback_host: Option<&str>) -> Cause {
    let host = host_in(error)
        .map(str::to_owned)
        .or_else(|| fallback_host.map(str::to_owned))
        .unwrap_or_else(|| "the server".to_owned());
    let lower = error.to_ascii_lowercase();
    let (said, what_to_do) = if lower.contains("rejected the username or password") {
        (
            format!("{host} refused the username or password"),
            Some("Change the account's password, then sync again".to_owned()),
        )
    } else if lower.contains("there is no collection at") {
        (
            format!("The calendar or address book is gone from {host}"),
            Some("Look for it with Discover on the account, then pair it again".to_owned()),
        )
    } else if lower.contains("reading the password from the keyring failed")
        || lower.contains("secret service")
    {
        (
            "The password could not be read from the keyring".to_owned(),
            Some("Unlock the keyring (or sign in to the desktop), then sync again".to_owned()),
        )
    } else if lower.contains("certificate") || lower.contains("tls handshake") {
        (
            format!("{host}'s certificate could not be checked"),
            Some("Check the server's address and its certificate".to_owned()),
        )
    } else if lower.contains("did not answer") || lower.contains("timed out") {
        (format!("{host} did not answer in time"), None)
    } else if lower.contains("connection refused")
        || lower.contains("tcp connect error")
        || lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("network is unreachable")
        || lower.contains("no route to host")
        || lower.contains("connection reset")
        || lower.contains("client error (connect)")
    {
        (format!("Can't reach {host}"), None)
    } else if let Some(status) = http_status_in(error).filter(|s| (500..600).contains(s)) {
        (format!("{host} has a problem (HTTP {status})"), None)
    } else if let Some(status) = http_status_in(error) {
        (format!("{host} answered HTTP {status}"), None)
    } else {
        (quoted(error), None)
    };
    Cause { said, what_to_do }
}

/// The host (with its port) of the first web address in `text`: an error that names a URL,
/// or a storage's location (none for a folder).
pub fn host_in(text: &str) -> Option<&str> {
    let start = text.find("https://").or_else(|| text.find("http://"))?;
    let rest = &text[start..];
    let rest = &rest[rest.find("://")? + 3..];
    let end = rest
        .find(['/', '?', '#', ' ', '"', '\'', ')', ','])
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then_some(host)
}

/// The number in the first "HTTP 503" of `text`.
fn http_status_in(text: &str) -> Option<u16> {
    let at = text.find("HTTP ")?;
    let digits: String = text[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The error itself, without the step's name in front, cut to a line.
fn quoted(error: &str) -> String {
    let text = error
        .strip_prefix("step \"")
        .and_then(|rest| rest.split_once("\": ").map(|(_, e)| e))
        .unwrap_or(error);
    let text = text.lines().next().unwrap_or_default().trim();
    if text.is_empty() {
        return "The last sync failed".to_owned();
    }
    let mut out: String = text.chars().take(QUOTED_CHARS_MAX).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    let mut chars = out.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => out,
    }
}

/// "just now", "5 min ago", "at 14:05" (earlier today), "yesterday at 14:05", "on 21 Nov at
/// 14:05", in local time, seen from `now_ms`.
pub fn ago(at_ms: i64, now_ms: i64) -> String {
    let minutes = now_ms.saturating_sub(at_ms) / 60_000;
    match minutes {
        i64::MIN..=0 => "just now".to_owned(),
        1..=59 => format!("{minutes} min ago"),
        _ => at_clock(at_ms, now_ms),
    }
}

/// A time as a phrase after a verb, in local time seen from `now_ms`: "at 14:05" (today),
/// "tomorrow at 14:05", "yesterday at 14:05", "on 21 Nov at 14:05".
pub fn at_clock(at_ms: i64, now_ms: i64) -> String {
    let (Some(at), Some(now)) = (local(at_ms), local(now_ms)) else {
        return "at an unknown time".to_owned();
    };
    let time = at.format("%H:%M");
    match (at.date_naive() - now.date_naive()).num_days() {
        0 => format!("at {time}"),
        1 => format!("tomorrow at {time}"),
        -1 => format!("yesterday at {time}"),
        _ => format!("on {} at {time}", at.format("%-d %b")),
    }
}

fn local(ms: i64) -> Option<DateTime<Local>> {
    Local.timestamp_millis_opt(ms).single()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::DavError;
    use std::time::Duration;

    #[test]
    fn concords_own_errors_read_as_plain_causes() {
        let refused = DavError::Unauthorized {
            url: "https://dav.example.com/cal/".to_owned(),
            status: 401,
        };
        let cause = cause_of(&format!("step \"observe\": {refused}"), None);
        assert_eq!(
            cause.said,
            "dav.example.com refused the username or password"
        );
        assert!(cause.what_to_do.is_some());

        let slow = DavError::Timeout {
            url: "http://127.0.0.1:5232/u/c/".to_owned(),
            what: "the listing",
            after: Duration::from_secs(30),
        };
        assert_eq!(
            cause_of(&slow.to_string(), None).said,
            "127.0.0.1:5232 did not answer in time"
        );

        let gone = DavError::CollectionMissing {
            url: "https://dav.example.com/cal/".to_owned(),
        };
        let cause = cause_of(&gone.to_string(), None);
        assert_eq!(
            cause.said,
            "The calendar or address book is gone from dav.example.com"
        );

        let busy = DavError::Status {
            url: "https://dav.example.com/cal/".to_owned(),
            what: "listing the collection",
            status: 503,
        };
        let cause = cause_of(&busy.to_string(), None);
        assert_eq!(cause.said, "dav.example.com has a problem (HTTP 503)");
        assert_eq!(cause.what_to_do, None);
    }

    #[test]
    fn a_refused_connection_names_the_server() {
        let error = "step \"observe\": listing the collection at http://127.0.0.1:9/user/calendar/ \
                     failed: client error executing request: client error (Connect): tcp connect \
                     error: Connection refused (os error 111)";
        assert_eq!(cause_of(error, None).said, "Can't reach 127.0.0.1:9");
        assert_eq!(
            cause_of("client error (Connect): dns error", Some("dav.example.com")).said,
            "Can't reach dav.example.com"
        );
    }

    #[test]
    fn an_error_without_known_words_is_quoted_short_without_the_step() {
        let cause = cause_of("step \"apply\": writing /home/a/cal: disk full", None);
        assert_eq!(cause.said, "Writing /home/a/cal: disk full");
        let long = "x".repeat(500);
        assert_eq!(cause_of(&long, None).said.chars().count(), 121);
        assert_eq!(cause_of("", None).said, "The last sync failed");
    }

    #[test]
    fn times_read_as_a_person_says_them() {
        let now = Local::now().timestamp_millis();
        assert_eq!(ago(now - 20_000, now), "just now");
        assert_eq!(ago(now - 5 * 60_000, now), "5 min ago");
        assert!(at_clock(now, now).starts_with("at "));
        let next_week = now + 8 * 24 * 3_600_000;
        assert!(
            at_clock(next_week, now).starts_with("on "),
            "{}",
            at_clock(next_week, now)
        );
        assert_eq!(
            host_in("https://u@dav.example.com:8443/x/"),
            Some("dav.example.com:8443")
        );
        assert_eq!(host_in("/home/ada/calendars/work"), None);
    }
}
