//! OPML: a tolerant import (nested folders, missing attributes or version, an empty body,
//! any encoding, stray `&`) and an export that imports back to the same subscriptions.

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde::Serialize;

use super::parse::decode;
use super::{FeedError, store};

/// Folders nest at most this deep; deeper outlines land in the deepest folder.
pub const FOLDER_DEPTH_MAX: usize = 16;
/// Subscriptions read from one file.
pub const OUTLINES_MAX: usize = 100_000;
/// Folder names are joined with this in [`Subscription::folder`].
pub const FOLDER_SEPARATOR: &str = "/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub url: String,
    pub title: Option<String>,
    pub site_url: Option<String>,
    /// "Tech/Rust" for a feed in folder Rust inside folder Tech.
    pub folder: Option<String>,
}

fn attr(e: &BytesStart<'_>, names: &[&str]) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        let key = a.key.as_ref().to_ascii_lowercase();
        if !names.contains(&key.as_str()) {
            return None;
        }
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map(|v| v.into_owned())
            .unwrap_or_else(|_| a.value.clone().into_owned());
        let value = value.trim().to_owned();
        (!value.is_empty()).then_some(value)
    })
}

/// Reads the subscriptions of an OPML document. Outlines with an `xmlUrl` are feeds; other
/// outlines with children are folders. Fails only if the bytes hold no outline at all and are
/// not a well-formed, empty OPML document.
pub fn import(bytes: &[u8]) -> Result<Vec<Subscription>, FeedError> {
    let text = decode(bytes, None);
    let mut reader = Reader::from_str(&text);
    reader.config_mut().check_end_names = false;
    let mut out = Vec::new();
    // One frame per open outline: Some(name) for a folder, None for anything else.
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut saw_opml = false;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) if out.is_empty() && !saw_opml => {
                return Err(FeedError::Opml(format!("not a readable OPML file: {e}")));
            }
            // Keep what was read before the document broke.
            Err(_) => break,
        };
        match event {
            Event::Start(e) | Event::Empty(e)
                if e.local_name().as_ref().eq_ignore_ascii_case("opml") =>
            {
                saw_opml = true;
            }
            Event::Start(ref e) if e.local_name().as_ref().eq_ignore_ascii_case("outline") => {
                let sub = subscription(e, &stack);
                let folder = if sub.is_none() {
                    attr(e, &["title", "text"])
                } else {
                    None
                };
                if let Some(sub) = sub {
                    out.push(sub);
                }
                stack.push(folder);
            }
            Event::Empty(ref e) if e.local_name().as_ref().eq_ignore_ascii_case("outline") => {
                if let Some(sub) = subscription(e, &stack) {
                    out.push(sub);
                }
            }
            Event::End(e) if e.local_name().as_ref().eq_ignore_ascii_case("outline") => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        if out.len() >= OUTLINES_MAX {
            break;
        }
    }
    if out.is_empty() && !saw_opml {
        return Err(FeedError::Opml(
            "no <opml> element and no feeds in this file".into(),
        ));
    }
    Ok(out)
}

fn subscription(e: &BytesStart<'_>, stack: &[Option<String>]) -> Option<Subscription> {
    let url = attr(e, &["xmlurl", "xml_url", "url"])?;
    if e.attributes().flatten().any(|a| {
        a.key.as_ref().eq_ignore_ascii_case("type")
            && matches!(a.value.as_ref(), "link" | "include")
    }) {
        return None;
    }
    let folders: Vec<&str> = stack
        .iter()
        .flatten()
        .map(String::as_str)
        .take(FOLDER_DEPTH_MAX)
        .collect();
    Some(Subscription {
        url,
        title: attr(e, &["title", "text"]),
        site_url: attr(e, &["htmlurl"]),
        folder: (!folders.is_empty()).then(|| folders.join(FOLDER_SEPARATOR)),
    })
}

/// Writes subscriptions as OPML 2.0, folders as nested outlines, in the order given (grouped
/// by folder at first appearance).
pub fn export(title: &str, subscriptions: &[Subscription]) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n");
    out.push_str(&format!(
        "  <head>\n    <title>{}</title>\n  </head>\n  <body>\n",
        escape(title)
    ));
    // Group by folder path while keeping the first-seen order of folders and feeds.
    let mut groups: Vec<(Vec<&str>, Vec<&Subscription>)> = Vec::new();
    for s in subscriptions {
        let path: Vec<&str> = s
            .folder
            .as_deref()
            .map(|f| {
                f.split(FOLDER_SEPARATOR)
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        match groups.iter_mut().find(|(p, _)| *p == path) {
            Some((_, subs)) => subs.push(s),
            None => groups.push((path, vec![s])),
        }
    }
    let mut open: Vec<&str> = Vec::new();
    for (path, subs) in &groups {
        let common = open
            .iter()
            .zip(path.iter())
            .take_while(|(a, b)| a == b)
            .count();
        while open.len() > common {
            open.pop();
            out.push_str(&format!("{}</outline>\n", indent(open.len())));
        }
        for name in &path[common..] {
            out.push_str(&format!(
                "{}<outline text=\"{n}\" title=\"{n}\">\n",
                indent(open.len()),
                n = escape_attr(name)
            ));
            open.push(name);
        }
        for s in subs {
            let title = s.title.as_deref().unwrap_or(&s.url);
            out.push_str(&format!(
                "{}<outline type=\"rss\" text=\"{t}\" title=\"{t}\" xmlUrl=\"{u}\"",
                indent(open.len()),
                t = escape_attr(title),
                u = escape_attr(&s.url)
            ));
            if let Some(site) = &s.site_url {
                out.push_str(&format!(" htmlUrl=\"{}\"", escape_attr(site)));
            }
            out.push_str("/>\n");
        }
    }
    while !open.is_empty() {
        open.pop();
        out.push_str(&format!("{}</outline>\n", indent(open.len())));
    }
    out.push_str("  </body>\n</opml>\n");
    out
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub added: u64,
    pub already_subscribed: u64,
    /// Outlines whose address is not a feed address, with the reason.
    pub skipped: Vec<String>,
}

/// Subscribes to every feed of an OPML document, keeping existing subscriptions as they are.
pub fn import_into(
    conn: &rusqlite::Connection,
    bytes: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ImportReport, FeedError> {
    let mut report = ImportReport::default();
    for sub in import(bytes)? {
        match store::add_feed(
            conn,
            &sub.url,
            sub.title.as_deref(),
            sub.folder.as_deref(),
            now,
        ) {
            Ok((id, true)) => {
                report.added += 1;
                if let Some(site) = &sub.site_url {
                    conn.execute(
                        "UPDATE feeds SET site_url = ?2 WHERE id = ?1",
                        rusqlite::params![id, site],
                    )?;
                }
            }
            Ok((_, false)) => report.already_subscribed += 1,
            Err(FeedError::BadUrl(url)) => report
                .skipped
                .push(format!("{url}: not an http(s) address")),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// Every subscription as OPML.
pub fn export_from(conn: &rusqlite::Connection) -> Result<String, FeedError> {
    let subs: Vec<Subscription> = store::list_feeds(conn)?
        .into_iter()
        .map(|f| Subscription {
            title: (!f.title.is_empty()).then_some(f.title),
            url: f.url,
            site_url: f.site_url,
            folder: f.folder,
        })
        .collect();
    Ok(export("Concord subscriptions", &subs))
}

/// Escapes an attribute value so that import reads back exactly it (XML would turn raw
/// newlines and tabs in attributes into spaces).
fn escape_attr(value: &str) -> String {
    escape(value)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_folders_and_missing_attributes_import() {
        let doc = br#"<opml><body>
            <outline text="Tech"><outline text="Rust">
              <outline xmlUrl="https://a.example/feed" />
            </outline>
              <outline title="B" xmlurl="https://b.example/rss" htmlUrl="https://b.example/"/>
            </outline>
            <outline text="C" xmlUrl="https://c.example/atom"/>
            <outline text="empty folder"/>
        </body></opml>"#;
        let subs = import(doc).unwrap();
        assert_eq!(subs.len(), 3);
        assert_eq!(subs[0].folder.as_deref(), Some("Tech/Rust"));
        assert_eq!(subs[0].title, None);
        assert_eq!(subs[1].folder.as_deref(), Some("Tech"));
        assert_eq!(subs[1].site_url.as_deref(), Some("https://b.example/"));
        assert_eq!(subs[2].folder, None);
    }

    #[test]
    fn an_empty_body_is_no_subscriptions_not_an_error() {
        assert_eq!(
            import(b"<opml version=\"1.0\"><head/><body></body></opml>").unwrap(),
            vec![]
        );
        assert_eq!(import(b"<opml/>").unwrap(), vec![]);
        assert!(import(b"hello").is_err());
    }
}
