//! Names Concord makes up when a person gives none: safe as an account, pair or folder name,
//! and unique among those taken.

use std::collections::HashSet;
use std::path::Path;

/// Lower-case letters, digits and dashes, at most [`SLUG_CHARS_MAX`].
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "sync".to_owned()
    } else {
        out.chars().take(SLUG_CHARS_MAX).collect()
    }
}

/// The longest name [`slug`] makes.
const SLUG_CHARS_MAX: usize = 48;

/// `base`, or `base-2`, `base-3`… whichever is free.
pub fn unique(base: &str, taken: &HashSet<String>) -> String {
    let mut name = base.to_owned();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// An account's name from its address (the host) or its folder (the last segment).
pub fn default_name(url: &str) -> String {
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        host.split(':').next().unwrap_or("account").to_owned()
    } else {
        Path::new(url)
            .file_name()
            .map_or_else(|| "folder".to_owned(), |n| n.to_string_lossy().into_owned())
    }
}

/// A collection's last path segment: `/user/calendar/` is "calendar".
pub fn last_segment(href: &str) -> String {
    href.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(href)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_unique() {
        assert_eq!(slug("Work Calendar (2)"), "work-calendar-2");
        assert_eq!(slug("../.."), "sync");
        let taken = HashSet::from(["dav-work".to_owned()]);
        assert_eq!(unique("dav-work", &taken), "dav-work-2");
        assert_eq!(
            default_name("https://user@dav.example.com:8443/x"),
            "dav.example.com"
        );
        assert_eq!(default_name("/home/ada/Calendars"), "Calendars");
        assert_eq!(last_segment("/user/calendar/"), "calendar");
    }
}
