//! A webcal / ICS URL as a read-only storage. One conditional GET (If-None-Match,
//! If-Modified-Since) answers "changed?"; the body (BOM, CRLF or LF, several VCALENDARs) is
//! split into one item per UID, each carrying the calendar's time zones; a calendar whose
//! structure is broken is split per component, so one broken event is quarantined while the
//! rest syncs. REFRESH-INTERVAL (RFC 7986) or X-PUBLISHED-TTL tells how long to wait before
//! asking again: until then a check makes no request. The calendar's own name (NAME, else
//! X-WR-CALNAME) and colour (X-APPLE-CALENDAR-COLOR, the `#RRGGBB` khal reads, else COLOR) are
//! kept with the validators, so a pair carries them to its other side even while the feed
//! answers 304.

use std::collections::BTreeMap;
use std::sync::Mutex;

use http::{Method, Request, StatusCode};
use libdav::dav::WebDavClient;
use serde::{Deserialize, Serialize};

use super::{Fetched, Listed, Listing, StorageError};
use crate::dav::{Credentials, DavError, HttpClient, webdav_client};
use crate::sync::item::{Component, Property, decode, sha256_hex, unescape_text};
use crate::sync::state::now_ms;

/// The largest calendar body accepted, in bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The longest REFRESH-INTERVAL honoured: a feed asking for more is still checked weekly.
pub const REFRESH_INTERVAL_MAX_S: u64 = 7 * 24 * 60 * 60;

#[derive(Debug)]
pub struct Webcal {
    url: String,
    client: WebDavClient<HttpClient>,
    /// The items of the last full download, by href, for `fetch`.
    items: Mutex<BTreeMap<String, Vec<u8>>>,
    /// The calendar's name and colour as the last check learnt them (`None`: no check yet).
    about: Mutex<Option<About>>,
}

/// What a calendar stream says of itself, beside its items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct About {
    /// REFRESH-INTERVAL or X-PUBLISHED-TTL, in seconds, as given.
    pub refresh_s: Option<u64>,
    /// NAME (RFC 7986), else X-WR-CALNAME.
    pub name: Option<String>,
    /// X-APPLE-CALENDAR-COLOR, else COLOR (RFC 7986).
    pub color: Option<String>,
}

/// HTTP validators kept between checks, with the feed's refresh interval.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
    /// The feed's REFRESH-INTERVAL, clamped to [`REFRESH_INTERVAL_MAX_S`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_s: Option<u64>,
    /// No request before this time (milliseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before_ms: Option<i64>,
    /// The calendar's name and colour as its last full download gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    color: Option<String>,
}

impl Validators {
    /// Stamps the next allowed check from now.
    fn next_check(mut self) -> Self {
        self.not_before_ms = self.refresh_s.map(|s| {
            let after_ms = i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
            now_ms().saturating_add(after_ms)
        });
        self
    }
}

impl Webcal {
    pub fn new(url: &str, credentials: &Credentials) -> Result<Self, StorageError> {
        Ok(Self {
            url: url.to_owned(),
            client: webdav_client(url, credentials)?,
            items: Mutex::new(BTreeMap::new()),
            about: Mutex::new(None),
        })
    }

    /// The calendar's name and colour, as learnt by this storage's last check (`None` before
    /// any check in this process).
    pub fn about(&self) -> Option<About> {
        self.about
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn learnt(&self, validators: &Validators) {
        *self
            .about
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(About {
            refresh_s: validators.refresh_s,
            name: validators.name.clone(),
            color: validators.color.clone(),
        });
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn changes(&self, token: Option<&str>) -> Result<Listing, StorageError> {
        let validators: Validators = token
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        // The feed asked to be left alone until then: nothing changed, as far as we may know.
        if validators.not_before_ms.is_some_and(|at| now_ms() < at) {
            self.learnt(&validators);
            return Ok(Listing {
                token: token.map(str::to_owned),
                ..Listing::default()
            });
        }
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(self.client.base_url().clone());
        // Without the cached items a 304 would leave nothing to fetch: ask unconditionally.
        let have_items = !self.lock().is_empty();
        if have_items || token.is_some() {
            if let Some(etag) = &validators.etag {
                request = request.header("If-None-Match", etag);
            }
            if let Some(date) = &validators.last_modified {
                request = request.header("If-Modified-Since", date);
            }
        }
        let request = request
            .body(String::new())
            .map_err(|err| StorageError::Invalid(format!("{}: {err}", self.url)))?;
        let fetched = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            self.client.request_raw(request),
        )
        .await
        .map_err(|_| {
            StorageError::Dav(DavError::Timeout {
                url: self.url.clone(),
                what: "downloading the calendar",
                after: std::time::Duration::from_secs(60),
            })
        })?
        .map_err(|err| {
            StorageError::Dav(DavError::Request {
                url: self.url.clone(),
                what: "downloading the calendar",
                source: Box::new(err),
            })
        })?;
        let (head, body) = fetched;
        if head.status == StatusCode::NOT_MODIFIED {
            self.learnt(&validators);
            let refresh_after_s = validators.refresh_s;
            return Ok(Listing {
                token: serde_json::to_string(&validators.next_check()).ok(),
                refresh_after_s,
                ..Listing::default()
            });
        }
        if !head.status.is_success() {
            let status = head.status.as_u16();
            return Err(StorageError::Dav(if status == 401 || status == 403 {
                DavError::Unauthorized {
                    url: self.url.clone(),
                    status,
                }
            } else {
                DavError::Status {
                    url: self.url.clone(),
                    what: "downloading the calendar",
                    status,
                }
            }));
        }
        if body.len() > BODY_BYTES_MAX {
            return Err(StorageError::Invalid(format!(
                "{} is {} bytes, more than the {BODY_BYTES_MAX} accepted",
                self.url,
                body.len()
            )));
        }
        let header = |name: &str| {
            head.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (items, about) = split(&decode(&body));
        let refresh_after_s = about.refresh_s.map(|s| s.min(REFRESH_INTERVAL_MAX_S));
        let validators = Validators {
            etag: header("etag"),
            last_modified: header("last-modified"),
            refresh_s: refresh_after_s,
            not_before_ms: None,
            name: about.name,
            color: about.color,
        }
        .next_check();
        self.learnt(&validators);
        let changed = items
            .iter()
            .map(|(href, raw)| Listed {
                href: href.clone(),
                etag: sha256_hex(raw),
            })
            .collect();
        *self.lock() = items;
        Ok(Listing {
            complete: true,
            changed,
            deleted: Vec::new(),
            token: serde_json::to_string(&validators).ok(),
            refresh_after_s,
        })
    }

    pub fn fetch(&self, hrefs: &[String]) -> Vec<Fetched> {
        let items = self.lock();
        hrefs
            .iter()
            .filter_map(|href| {
                items.get(href).map(|raw| Fetched {
                    href: href.clone(),
                    etag: sha256_hex(raw),
                    raw: raw.clone(),
                })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Splits a calendar stream into one VCALENDAR per UID (href = the UID), and reads what the
/// calendar says of itself (the first calendar that says it wins). Components without a UID
/// are named by their content hash.
pub fn split(text: &str) -> (BTreeMap<String, Vec<u8>>, About) {
    let mut groups: BTreeMap<String, (Component, Vec<Component>)> = BTreeMap::new();
    let mut broken: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut refresh = None;
    // NAME, X-WR-CALNAME, X-APPLE-CALENDAR-COLOR, COLOR.
    let mut said: [Option<String>; 4] = Default::default();
    let mut rest = text;
    while let Some(start) = find_ci(rest, "BEGIN:VCALENDAR") {
        let chunk = &rest[start..];
        let Some(end) = find_ci(chunk, "END:VCALENDAR") else {
            break;
        };
        let end = end + "END:VCALENDAR".len();
        rest = &chunk[end..];
        let calendar = match Component::parse(&chunk[..end]) {
            Ok(calendar) => calendar,
            Err(_) => {
                let (calendar, unreadable) = salvage(&chunk[..end]);
                broken.extend(unreadable);
                calendar
            }
        };
        for p in &calendar.properties {
            let slot = match p.name.as_str() {
                "REFRESH-INTERVAL" | "X-PUBLISHED-TTL" => {
                    refresh = refresh.or(duration_s(p.value()));
                    continue;
                }
                "NAME" => 0,
                "X-WR-CALNAME" => 1,
                "X-APPLE-CALENDAR-COLOR" => 2,
                "COLOR" => 3,
                _ => continue,
            };
            // Bounded as any metadata value is, so a hostile feed cannot bloat the validators.
            let value: String = unescape_text(p.value())
                .trim()
                .chars()
                .take(super::VALUE_CHARS_MAX)
                .collect();
            if said[slot].is_none() && !value.is_empty() {
                said[slot] = Some(value);
            }
        }
        let timezones: Vec<Component> = calendar
            .children
            .iter()
            .filter(|c| c.name == "VTIMEZONE")
            .cloned()
            .collect();
        for child in calendar.children.iter().filter(|c| c.name != "VTIMEZONE") {
            let uid = child
                .value_of("UID")
                .map(str::to_owned)
                .unwrap_or_else(|| sha256_hex(child.normalized().as_bytes()));
            let entry = groups.entry(uid).or_insert_with(|| {
                let shell = Component {
                    name: "VCALENDAR".to_owned(),
                    properties: calendar
                        .properties
                        .iter()
                        .filter(|p| matches!(p.name.as_str(), "VERSION" | "PRODID" | "CALSCALE"))
                        .cloned()
                        .collect::<Vec<Property>>(),
                    children: Vec::new(),
                };
                (shell, timezones.clone())
            });
            entry.0.children.push(child.clone());
        }
    }
    let mut items: BTreeMap<String, Vec<u8>> = groups
        .into_iter()
        .map(|(uid, (mut shell, timezones))| {
            let mut children = timezones;
            children.append(&mut shell.children);
            shell.children = children;
            (
                super::name_for_uid(&uid, crate::sync::item::ItemKind::Calendar),
                shell.serialize().into_bytes(),
            )
        })
        .collect();
    items.append(&mut broken);
    let [name, wr_name, apple_color, color] = said;
    let about = About {
        refresh_s: refresh,
        name: name.or(wr_name),
        color: apple_color.or(color),
    };
    (items, about)
}

/// Top-level component kinds of a calendar: a BEGIN of one inside another means the first
/// was never ended.
const TOP_LEVEL: [&str; 5] = ["VEVENT", "VTODO", "VJOURNAL", "VTIMEZONE", "VFREEBUSY"];

/// A calendar whose structure is broken, read component by component: the readable ones in
/// a calendar shell, and each unreadable one as an item of its own (by href) that the sync
/// quarantines with the reason.
fn salvage(text: &str) -> (Component, BTreeMap<String, Vec<u8>>) {
    let mut calendar = Component {
        name: "VCALENDAR".to_owned(),
        properties: Vec::new(),
        children: Vec::new(),
    };
    let mut broken = BTreeMap::new();
    let mut block: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut flush = |block: &mut Vec<String>, calendar: &mut Component| {
        if block.is_empty() {
            return;
        }
        let text = block.join("\r\n") + "\r\n";
        match Component::parse(&text) {
            Ok(component) if block.len() > 1 => calendar.children.push(component),
            _ => {
                let uid = block
                    .iter()
                    .find_map(|l| l.strip_prefix("UID:"))
                    .map_or_else(|| sha256_hex(text.as_bytes()), |u| u.trim().to_owned());
                let raw = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{text}END:VCALENDAR\r\n");
                let href = super::name_for_uid(
                    &format!("unreadable-{uid}"),
                    crate::sync::item::ItemKind::Calendar,
                );
                broken.insert(href, raw.into_bytes());
            }
        }
        block.clear();
    };
    for line in crate::sync::item::unfold(text) {
        let upper = line.to_ascii_uppercase();
        let begins = upper.strip_prefix("BEGIN:").map(str::trim);
        let ends = upper.strip_prefix("END:").map(str::trim);
        if begins == Some("VCALENDAR") || ends == Some("VCALENDAR") {
            flush(&mut block, &mut calendar);
            depth = 0;
            continue;
        }
        if let Some(kind) = begins
            && TOP_LEVEL.contains(&kind)
            && depth > 0
        {
            // The block before never ended.
            flush(&mut block, &mut calendar);
            depth = 0;
        }
        if depth == 0 && begins.is_none() {
            if ends.is_none() {
                let name = line
                    .split([':', ';'])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_uppercase();
                calendar.properties.push(Property { name, line });
            }
            continue;
        }
        block.push(line);
        if begins.is_some() {
            depth += 1;
        } else if ends.is_some() {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                flush(&mut block, &mut calendar);
            }
        }
    }
    flush(&mut block, &mut calendar);
    (calendar, broken)
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_uppercase().find(needle)
}

/// Seconds of a simple RFC 5545 duration such as "PT1H", "P1D", "P1W", "PT30M".
fn duration_s(value: &str) -> Option<u64> {
    let value = value.trim().trim_start_matches('+').strip_prefix('P')?;
    let mut total = 0u64;
    let mut number = 0u64;
    for c in value.chars() {
        match c {
            '0'..='9' => {
                number = number
                    .checked_mul(10)?
                    .checked_add(u64::from(c as u8 - b'0'))?
            }
            'T' => {}
            'W' => (total, number) = (total + number * 604_800, 0),
            'D' => (total, number) = (total + number * 86_400, 0),
            'H' => (total, number) = (total + number * 3_600, 0),
            'M' => (total, number) = (total + number * 60, 0),
            'S' => (total, number) = (total + number, 0),
            _ => return None,
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::item::Item;

    #[test]
    fn several_calendars_with_a_bom_and_lf_split_per_uid() {
        let text = "\u{feff}BEGIN:VCALENDAR\nVERSION:2.0\nREFRESH-INTERVAL;VALUE=DURATION:PT2H\nBEGIN:VTIMEZONE\nTZID:Europe/Berlin\nEND:VTIMEZONE\nBEGIN:VEVENT\nUID:a\nSUMMARY:A\nEND:VEVENT\nBEGIN:VEVENT\nUID:b\nSUMMARY:B\nEND:VEVENT\nBEGIN:VEVENT\nUID:a\nRECURRENCE-ID:20260101T000000Z\nSUMMARY:A moved\nEND:VEVENT\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:c\r\nSUMMARY:C\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (items, about) = split(text);
        assert_eq!(about.refresh_s, Some(7200));
        assert_eq!((about.name, about.color), (None, None));
        assert_eq!(
            items.keys().collect::<Vec<_>>(),
            ["a.ics", "b.ics", "c.ics"]
        );
        let a = Item::parse(items["a.ics"].clone()).unwrap();
        assert_eq!(a.uid, "a");
        let text = String::from_utf8(items["a.ics"].clone()).unwrap();
        assert!(
            text.contains("A moved") && text.contains("TZID:Europe/Berlin"),
            "{text}"
        );
    }

    #[test]
    fn the_calendars_name_and_colour_prefer_rfc_7986_name_and_apple_hex() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:Old name\r\nNAME:Bank holidays\\, UK\r\nCOLOR:turquoise\r\nX-APPLE-CALENDAR-COLOR:#40E0D0\r\nBEGIN:VEVENT\r\nUID:a\r\nSUMMARY:A\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (_, about) = split(text);
        assert_eq!(about.name.as_deref(), Some("Bank holidays, UK"));
        assert_eq!(about.color.as_deref(), Some("#40E0D0"));
        // Without the preferred ones, the others; an empty value is no value; the first
        // calendar that gives one wins.
        let text = "BEGIN:VCALENDAR\nVERSION:2.0\nNAME: \nX-WR-CALNAME:Team\nCOLOR:turquoise\nEND:VCALENDAR\nBEGIN:VCALENDAR\nX-WR-CALNAME:Second\nEND:VCALENDAR\n";
        let (_, about) = split(text);
        assert_eq!(about.name.as_deref(), Some("Team"));
        assert_eq!(about.color.as_deref(), Some("turquoise"));
    }

    #[test]
    fn a_huge_name_is_cut_to_the_metadata_limit() {
        let name = "x".repeat(100_000);
        let text = format!("BEGIN:VCALENDAR\r\nNAME:{name}\r\nEND:VCALENDAR\r\n");
        let (_, about) = split(&text);
        assert_eq!(
            about.name.map(|n| n.chars().count()),
            Some(crate::sync::storage::VALUE_CHARS_MAX)
        );
    }

    #[test]
    fn a_broken_event_is_set_aside_and_the_others_kept() {
        // The second event never ends: the calendar's structure is broken.
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:good\r\nSUMMARY:Good\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:bad\r\nSUMMARY:Bad\r\nBEGIN:VEVENT\r\nUID:after\r\nSUMMARY:After\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (items, _) = split(text);
        assert_eq!(
            items.keys().collect::<Vec<_>>(),
            ["after.ics", "good.ics", "unreadable-bad.ics"]
        );
        let good = Item::parse(items["good.ics"].clone()).unwrap();
        assert_eq!(good.summary, "Good");
        assert!(String::from_utf8_lossy(&items["good.ics"]).contains("BEGIN:VALARM"));
        let bad = Item::parse(items["unreadable-bad.ics"].clone()).unwrap_err();
        assert!(bad.reason.contains("VEVENT"), "{bad:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_s("P1W"), Some(604_800));
        assert_eq!(duration_s("PT1H30M"), Some(5400));
        assert_eq!(duration_s("P1DT1S"), Some(86_401));
        assert_eq!(duration_s("junk"), None);
    }

    proptest::proptest! {
        /// Whatever a feed sends, splitting never panics and every item's name stays a plain
        /// file name inside the folder.
        #[test]
        fn any_feed_splits_into_names_that_stay_in_the_folder(
            text in "(BEGIN:VCALENDAR|END:VCALENDAR|BEGIN:VEVENT|END:VEVENT|BEGIN:VTIMEZONE|\
                      END:VTIMEZONE|UID:[a-z./\\\\ ]{0,8}|NAME:[ -~]{0,8}|X-WR-CALNAME:\\,|\
                      COLOR:|REFRESH-INTERVAL:P[0-9WDTHMS]{0,6}|\r\n|\n| |:|;){0,60}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            for text in [text, decode(&bytes)] {
                let (items, _) = split(&text);
                for href in items.keys() {
                    proptest::prop_assert!(
                        !href.contains(['/', '\\']) && !href.starts_with('.') && href.ends_with(".ics"),
                        "{}", href
                    );
                }
            }
        }
    }
}
