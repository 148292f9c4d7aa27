//! A webcal / ICS URL as a read-only storage. One conditional GET (If-None-Match,
//! If-Modified-Since) answers "changed?"; the body (BOM, CRLF or LF, several VCALENDARs) is
//! split into one item per UID, each carrying the calendar's time zones. REFRESH-INTERVAL
//! (RFC 7986) or X-PUBLISHED-TTL tells how long to wait before asking again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use http::{Method, Request, StatusCode};
use libdav::dav::WebDavClient;
use serde::{Deserialize, Serialize};

use super::item::{Component, Property, decode, sha256_hex};
use super::storage::{Fetched, Listed, Listing, StorageError};
use crate::dav::{Credentials, DavError, HttpClient, webdav_client};

/// The largest calendar body accepted, in bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct Webcal {
    url: String,
    client: WebDavClient<HttpClient>,
    /// The items of the last full download, by href, for `fetch`.
    items: Mutex<BTreeMap<String, Vec<u8>>>,
}

/// HTTP validators kept between checks.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Webcal {
    pub fn new(url: &str, credentials: &Credentials) -> Result<Self, StorageError> {
        Ok(Self {
            url: url.to_owned(),
            client: webdav_client(url, credentials)?,
            items: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn changes(&self, token: Option<&str>) -> Result<Listing, StorageError> {
        let validators: Validators = token
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
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
            return Ok(Listing {
                token: token.map(str::to_owned),
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
        let validators = Validators {
            etag: header("etag"),
            last_modified: header("last-modified"),
        };
        let (items, refresh_after_s) = split(&decode(&body));
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

/// Splits a calendar stream into one VCALENDAR per UID (href = the UID), and reads the
/// refresh interval. Components without a UID are named by their content hash.
pub fn split(text: &str) -> (BTreeMap<String, Vec<u8>>, Option<u64>) {
    let mut groups: BTreeMap<String, (Component, Vec<Component>)> = BTreeMap::new();
    let mut refresh = None;
    let mut rest = text;
    while let Some(start) = find_ci(rest, "BEGIN:VCALENDAR") {
        let chunk = &rest[start..];
        let Some(end) = find_ci(chunk, "END:VCALENDAR") else {
            break;
        };
        let end = end + "END:VCALENDAR".len();
        rest = &chunk[end..];
        let Ok(calendar) = Component::parse(&chunk[..end]) else {
            continue;
        };
        for p in &calendar.properties {
            if p.name == "REFRESH-INTERVAL" || p.name == "X-PUBLISHED-TTL" {
                refresh = refresh.or(duration_s(p.value()));
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
    let items = groups
        .into_iter()
        .map(|(uid, (mut shell, timezones))| {
            let mut children = timezones;
            children.append(&mut shell.children);
            shell.children = children;
            (
                super::storage::name_for_uid(&uid, super::item::ItemKind::Calendar),
                shell.serialize().into_bytes(),
            )
        })
        .collect();
    (items, refresh)
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
        let (items, refresh) = split(text);
        assert_eq!(refresh, Some(7200));
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
    fn durations() {
        assert_eq!(duration_s("P1W"), Some(604_800));
        assert_eq!(duration_s("PT1H30M"), Some(5400));
        assert_eq!(duration_s("P1DT1S"), Some(86_401));
        assert_eq!(duration_s("junk"), None);
    }
}
