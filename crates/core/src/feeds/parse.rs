//! The tolerant wrapper around feed-rs: any bytes in, a [`Document`] or a readable
//! [`ParseError`] out, never a panic.
//!
//! Before feed-rs sees a byte the wrapper decodes the body to UTF-8 (BOM, HTTP charset, XML
//! declaration, UTF-16 without BOM, legacy encodings), refuses entity declarations (billion
//! laughs, external entities), and repairs what real feeds get wrong (`<rss>` without a
//! version, Atom 0.3, bare ampersands). Entry ids are stable across polls: the feed's own id
//! (guid, Atom id, JSON id), else the link, else a hash of title and content.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use chrono::{DateTime, Utc, Weekday};
use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

use super::sanitize;

/// Entries kept from one document; the rest (oldest last in most feeds) are ignored.
pub const ENTRIES_PER_DOCUMENT_MAX: usize = 1_000;

/// A feed as Concord keeps it: plain-text titles, sanitized HTML, stable entry keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub format: &'static str,
    pub title: String,
    pub site_url: Option<String>,
    pub entries: Vec<Entry>,
    /// RSS `ttl`: how long the publisher says the feed may be cached.
    pub ttl: Option<Duration>,
    /// RSS `skipHours` (0..=23, GMT) and `skipDays`.
    pub skip_hours: Vec<u32>,
    pub skip_days: Vec<Weekday>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Stable id within its feed: `id:…` (guid / Atom id / JSON id), `link:…` or `hash:…`.
    pub key: String,
    /// A hash of what the feed sent for this entry; equal hashes mean an unchanged entry.
    pub hash: String,
    /// Already stored with this hash (see [`parse_known`]): the HTML fields are left empty,
    /// as the stored ones are current.
    pub unchanged: bool,
    pub title: String,
    pub url: Option<String>,
    pub author: Option<String>,
    /// Sanitized HTML (see [`sanitize::html`]).
    pub summary_html: Option<String>,
    pub content_html: Option<String>,
    pub published: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the server sent an empty document")]
    Empty,
    #[error(
        "the document declares XML entities (a DTD); refused, as it could expand without bound or read local files"
    )]
    EntitiesRefused,
    #[error("this is not a feed (RSS, Atom or JSON Feed): {0}")]
    NotAFeed(String),
    #[error("the feed parser failed on this document; it was contained and the feed skipped")]
    ParserPanicked,
}

/// Parses a feed body. `http_charset` is the `charset` of the response's Content-Type;
/// `base_url` resolves relative links in entry HTML.
pub fn parse(
    bytes: &[u8],
    http_charset: Option<&str>,
    base_url: Option<&str>,
) -> Result<Document, ParseError> {
    parse_known(bytes, http_charset, base_url, &Known::new())
}

/// Entry keys already stored, with their [`Entry::hash`].
pub type Known = std::collections::HashMap<String, String>;

/// [`parse`], skipping the sanitizing of entries `known` already holds unchanged.
pub fn parse_known(
    bytes: &[u8],
    http_charset: Option<&str>,
    base_url: Option<&str>,
    known: &Known,
) -> Result<Document, ParseError> {
    let text = decode(bytes, http_charset);
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    let prepared = if trimmed.starts_with('{') {
        trimmed.to_owned()
    } else {
        prepare_xml(trimmed)?
    };
    let feed = match parse_with_feed_rs(&prepared) {
        Ok(feed) => feed,
        Err(first) if !prepared.starts_with('{') => {
            let repaired = repair_markup(&prepared);
            if repaired == prepared {
                return Err(first);
            }
            parse_with_feed_rs(&repaired).map_err(|_| first)?
        }
        Err(e) => return Err(e),
    };
    let (skip_hours, skip_days) = skips(&prepared);
    Ok(document(feed, base_url, skip_hours, skip_days, known))
}

fn parse_with_feed_rs(text: &str) -> Result<feed_rs::model::Feed, ParseError> {
    let parser = feed_rs::parser::Builder::new()
        // Never random: an empty id here is filled in by `entry_key` from link or content.
        .id_generator(|_links, _title, _uri| String::new())
        .sanitize_content(false)
        .build();
    match catch_unwind(AssertUnwindSafe(|| parser.parse(text.as_bytes()))) {
        Ok(Ok(feed)) => Ok(feed),
        Ok(Err(e)) => Err(ParseError::NotAFeed(e.to_string())),
        Err(_) => Err(ParseError::ParserPanicked),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes a body to UTF-8. Order: a byte-order mark, UTF-16 recognisable by its zero bytes,
/// the HTTP charset, the XML declaration, then UTF-8 if valid, else Windows-1252 (what
/// "ISO-8859-1" means on the web). An HTTP charset that contradicts the bytes (a UTF-8 label
/// on invalid UTF-8, as misconfigured servers send) yields to the declaration.
pub fn decode(bytes: &[u8], http_charset: Option<&str>) -> String {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let body = bytes.get(bom_len..).unwrap_or_default();
        return encoding.decode_without_bom_handling(body).0.into_owned();
    }
    match bytes {
        [0, b, ..] if *b != 0 => return UTF_16BE.decode_without_bom_handling(bytes).0.into_owned(),
        [a, 0, ..] if *a != 0 => return UTF_16LE.decode_without_bom_handling(bytes).0.into_owned(),
        _ => {}
    }
    let declared = declared_encoding(bytes);
    let http = http_charset.and_then(|c| Encoding::for_label(c.trim().as_bytes()));
    let utf8_valid = std::str::from_utf8(bytes).is_ok();
    let chosen = match (http, declared) {
        (Some(h), Some(d)) if h == UTF_8 && !utf8_valid => d,
        (Some(h), _) => h,
        (None, Some(d)) => d,
        (None, None) if utf8_valid => UTF_8,
        (None, None) => WINDOWS_1252,
    };
    // A document that says it is UTF-16 but has no zero bytes was re-encoded on the way.
    let chosen = if chosen == UTF_16LE || chosen == UTF_16BE {
        if utf8_valid { UTF_8 } else { WINDOWS_1252 }
    } else {
        chosen
    };
    chosen.decode_without_bom_handling(bytes).0.into_owned()
}

/// The `encoding` of an XML declaration at the start of `bytes`, if it names one we know.
fn declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes.get(..bytes.len().min(256))?;
    let head = String::from_utf8_lossy(head);
    let head = head.trim_start();
    if !head.starts_with("<?xml") {
        return None;
    }
    let decl = &head[..head.find("?>")?];
    let value = attribute(decl, "encoding")?;
    Encoding::for_label(value.trim().as_bytes())
}

/// The value of `name="…"` or `name='…'` inside a start tag or declaration.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_whitespace());
        let after = rest[at + name.len()..].trim_start();
        if before_ok && let Some(after_eq) = after.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            let quote = after_eq.chars().next()?;
            if quote == '"' || quote == '\'' {
                let value = &after_eq[1..];
                return value.find(quote).map(|end| &value[..end]);
            }
        }
        rest = &rest[at + name.len()..];
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Repairs

/// Makes a decoded XML document safe and palatable for feed-rs: a UTF-8 declaration, no DTD
/// (refused if it declares entities), a versioned `<rss>`, Atom 0.3 read as Atom 1.0.
fn prepare_xml(text: &str) -> Result<String, ParseError> {
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let mut rest = text;
    if rest.starts_with("<?xml") {
        match rest.find("?>") {
            Some(end) => rest = &rest[end + 2..],
            None => return Err(ParseError::NotAFeed("unterminated XML declaration".into())),
        }
    }
    // Prolog: comments, processing instructions, a DOCTYPE; then the root element.
    loop {
        let trimmed = rest.trim_start();
        out.push_str(&rest[..rest.len() - trimmed.len()]);
        rest = trimmed;
        if rest.starts_with("<!--") {
            let end = rest.find("-->").map_or(rest.len(), |e| e + 3);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else if rest.starts_with("<?") {
            let end = rest.find("?>").map_or(rest.len(), |e| e + 2);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else if rest
            .get(..9)
            .is_some_and(|h| h.eq_ignore_ascii_case("<!DOCTYPE"))
        {
            let end = doctype_end(rest);
            if rest[..end].contains("<!ENTITY") || rest[..end].contains("<!entity") {
                return Err(ParseError::EntitiesRefused);
            }
            rest = &rest[end..];
        } else {
            break;
        }
    }
    if rest.contains("<!ENTITY") {
        return Err(ParseError::EntitiesRefused);
    }
    let tag_end = start_tag_end(rest);
    let root = &rest[..tag_end];
    let name: String = root
        .trim_start_matches('<')
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect();
    if name.eq_ignore_ascii_case("rss") {
        out.push_str(&repair_rss_root(root));
        out.push_str(&rest[tag_end..]);
    } else if name == "feed" && root.contains("purl.org/atom/ns#") {
        out.push_str(&atom03_to_10(rest));
    } else {
        out.push_str(rest);
    }
    Ok(html_entities_as_numbers(&out))
}

/// The entities XML itself defines; every other name is HTML's.
const XML_ENTITIES: [&str; 5] = ["amp", "lt", "gt", "quot", "apos"];
/// The longest HTML entity name ("CounterClockwiseContourIntegral").
const ENTITY_NAME_LEN_MAX: usize = 32;

/// Many feeds use HTML's named entities (`&nbsp;`, `&eacute;`) in XML text, which XML does not
/// define: each becomes the numeric reference of its character(s). CDATA sections and names
/// HTML does not define either are left as they are.
fn html_entities_as_numbers(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    while let Some(at) = rest.find(['&', '<']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with("<![CDATA[") {
            let end = rest.find("]]>").map_or(rest.len(), |e| e + 3);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        if rest.starts_with('<') {
            out.push('<');
            rest = &rest[1..];
            continue;
        }
        let name_len = rest[1..]
            .bytes()
            .take(ENTITY_NAME_LEN_MAX + 1)
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        let name = &rest[1..1 + name_len];
        let terminated = rest.as_bytes().get(1 + name_len) == Some(&b';');
        let known = (terminated && !name.is_empty() && !XML_ENTITIES.contains(&name))
            .then(|| web_atoms::NAMED_ENTITIES.get(&format!("{name};")))
            .flatten();
        match known {
            Some(&(first, second)) => {
                out.push_str(&format!("&#{first};"));
                if second != 0 {
                    out.push_str(&format!("&#{second};"));
                }
                rest = &rest[name_len + 2..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The byte index just past a `<!DOCTYPE …>`, skipping an internal subset in brackets.
fn doctype_end(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '>' if depth == 0 => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// The byte index just past the start tag at the beginning of `s`, honouring quotes.
fn start_tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// `<rss>` without a version (or with one feed-rs does not know, like 0.93) is read as 2.0,
/// which every RSS 0.9x document is a subset of.
fn repair_rss_root(tag: &str) -> String {
    let known = matches!(
        attribute(tag, "version").map(str::trim),
        Some("2.0" | "0.91" | "0.92")
    );
    if known && tag.starts_with("<rss") {
        return tag.to_owned();
    }
    let mut body = tag.get(4..).unwrap_or_default().to_owned();
    if let Some(v) = attribute(tag, "version") {
        for q in ['"', '\''] {
            body = body.replacen(&format!("version={q}{v}{q}"), "", 1);
        }
    }
    format!("<rss version=\"2.0\"{body}")
}

/// Atom 0.3 is Atom 1.0 with another namespace and a few older names.
fn atom03_to_10(doc: &str) -> String {
    let mut s = doc.replace("http://purl.org/atom/ns#", "http://www.w3.org/2005/Atom");
    for (old, new) in [
        ("issued>", "published>"),
        ("modified>", "updated>"),
        ("tagline>", "subtitle>"),
        ("copyright>", "rights>"),
        ("tagline ", "subtitle "),
        ("copyright ", "rights "),
    ] {
        s = s.replace(&format!("<{old}"), &format!("<{new}"));
        s = s.replace(&format!("</{old}"), &format!("</{new}"));
    }
    s.replace("type=\"text/html\" mode=\"escaped\"", "type=\"html\"")
        .replace("mode=\"escaped\" type=\"text/html\"", "type=\"html\"")
        .replace(
            "type=\"application/xhtml+xml\" mode=\"xml\"",
            "type=\"xhtml\"",
        )
        .replace(
            "mode=\"xml\" type=\"application/xhtml+xml\"",
            "type=\"xhtml\"",
        )
        .replace(" mode=\"escaped\"", "")
}

/// Second-chance repairs for malformed XML: bare `&` escaped, characters XML forbids removed.
fn repair_markup(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len() + 16);
    let mut in_cdata = false;
    let mut i = 0;
    let bytes = doc.as_bytes();
    while i < doc.len() {
        let rest = &doc[i..];
        if !in_cdata && rest.starts_with("<![CDATA[") {
            in_cdata = true;
            out.push_str("<![CDATA[");
            i += 9;
            continue;
        }
        if in_cdata && rest.starts_with("]]>") {
            in_cdata = false;
            out.push_str("]]>");
            i += 3;
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        if c == '&' && !in_cdata && !is_reference(&bytes[i..]) {
            out.push_str("&amp;");
        } else if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            // dropped: forbidden in XML 1.0
        } else {
            out.push(c);
        }
        i += c.len_utf8();
    }
    out
}

/// Whether `s` (starting at `&`) is a character or entity reference.
fn is_reference(s: &[u8]) -> bool {
    let body = &s[1..];
    let end = body.iter().take(32).position(|&b| b == b';');
    match end {
        Some(0) | None => false,
        Some(n) => {
            let name = &body[..n];
            match name {
                [b'#', b'x' | b'X', hex @ ..] => {
                    !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit)
                }
                [b'#', dec @ ..] => !dec.is_empty() && dec.iter().all(u8::is_ascii_digit),
                _ => name
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')),
            }
        }
    }
}

/// RSS `skipHours`/`skipDays`, which feed-rs does not expose.
fn skips(doc: &str) -> (Vec<u32>, Vec<Weekday>) {
    let section = |tag: &str| -> Vec<String> {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let Some(start) = doc.find(&open) else {
            return Vec::new();
        };
        let inner = &doc[start + open.len()..];
        let inner = inner
            .get(..inner.find(&close).unwrap_or(inner.len()))
            .unwrap_or_default();
        inner
            .split('<')
            .filter_map(|part| part.split_once('>').map(|(_, v)| v.trim().to_owned()))
            .filter(|v| !v.is_empty())
            .collect()
    };
    let mut hours: Vec<u32> = section("skipHours")
        .iter()
        .filter_map(|h| h.parse::<u32>().ok())
        .map(|h| h % 24)
        .collect();
    hours.sort_unstable();
    hours.dedup();
    let days = section("skipDays")
        .iter()
        .filter_map(|d| d.parse::<Weekday>().ok())
        .collect();
    (hours, days)
}

// ---------------------------------------------------------------------------------------------
// From feed-rs's model to ours

fn document(
    feed: feed_rs::model::Feed,
    base_url: Option<&str>,
    skip_hours: Vec<u32>,
    skip_days: Vec<Weekday>,
    known: &Known,
) -> Document {
    use feed_rs::model::FeedType;
    let format = match feed.feed_type {
        FeedType::Atom => "atom",
        FeedType::JSON => "json",
        FeedType::RSS0 => "rss0.9",
        FeedType::RSS1 => "rss1.0",
        FeedType::RSS2 => "rss2.0",
    };
    let site_url = feed
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .map(|l| l.href.clone());
    let entries = feed
        .entries
        .into_iter()
        .take(ENTRIES_PER_DOCUMENT_MAX)
        .map(|e| entry(e, base_url, known))
        .collect();
    Document {
        format,
        title: feed.title.map(|t| text_of(&t)).unwrap_or_default(),
        site_url,
        entries,
        ttl: feed
            .ttl
            .filter(|m| *m > 0)
            .map(|m| Duration::from_secs(u64::from(m) * 60)),
        skip_hours,
        skip_days,
    }
}

fn entry(e: feed_rs::model::Entry, base_url: Option<&str>, known: &Known) -> Entry {
    let url = e
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or_else(|| e.links.first())
        .map(|l| l.href.trim().to_owned())
        .filter(|u| !u.is_empty());
    let title = e.title.as_ref().map(text_of).unwrap_or_default();
    let author = e
        .authors
        .first()
        .and_then(|p| p.name.as_deref())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let raw_summary = e.summary.as_ref().map(|t| t.content.as_str());
    let raw_content = e.content.as_ref().and_then(|c| c.body.as_deref());
    let key = entry_key(&e.id, url.as_deref(), &title, raw_content.or(raw_summary));
    let published = e.published.or(e.updated);
    let mut h = StableHash::new();
    for part in [
        Some(title.as_str()),
        url.as_deref(),
        author.as_deref(),
        raw_summary,
        raw_content,
    ] {
        h.write(part.unwrap_or_default().as_bytes());
        h.write(&[0]);
    }
    h.write(&published.map_or(0, |p| p.timestamp()).to_le_bytes());
    let hash = h.hex();
    // An entry stored with the same source needs no sanitizing again (most of a changed feed).
    let unchanged = known.get(&key).is_some_and(|k| *k == hash);
    let (summary_html, content_html) = if unchanged {
        (None, None)
    } else {
        // Relative links in an entry are relative to the entry (xml:base, else its own
        // page), falling back to the feed's address.
        let entry_base = e
            .base
            .as_deref()
            .into_iter()
            .chain(url.as_deref())
            .find(|u| u.starts_with("http://") || u.starts_with("https://"));
        let base_url = entry_base.or(base_url);
        (
            e.summary.as_ref().map(|t| html_of(t, base_url)),
            raw_content.map(|body| sanitize::html(body, base_url)),
        )
    };
    Entry {
        key,
        hash,
        unchanged,
        title,
        url,
        author,
        summary_html: summary_html.filter(|s| !s.trim().is_empty()),
        content_html: content_html.filter(|s| !s.trim().is_empty()),
        published,
        updated: e.updated,
    }
}

/// The stable key of an entry: its own id, else its link, else a hash of title and content.
pub fn entry_key(id: &str, url: Option<&str>, title: &str, content: Option<&str>) -> String {
    let id = id.trim();
    if !id.is_empty() {
        return format!("id:{id}");
    }
    if let Some(url) = url {
        return format!("link:{url}");
    }
    let mut h = StableHash::new();
    h.write(title.as_bytes());
    h.write(&[0]);
    h.write(content.unwrap_or_default().as_bytes());
    format!("hash:{}", h.hex())
}

/// FNV-1a, twice with different bases: 128 bits that never change between builds or Rust
/// versions (std's hasher may), so stored keys stay valid.
#[derive(Debug, Clone)]
pub struct StableHash(u64, u64);

impl StableHash {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325, 0x6c62_272e_07bb_0142)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(PRIME);
            self.1 = (self.1 ^ u64::from(b.rotate_left(3))).wrapping_mul(PRIME);
        }
    }

    pub fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.0, self.1)
    }
}

impl Default for StableHash {
    fn default() -> Self {
        Self::new()
    }
}

fn is_html(t: &feed_rs::model::Text) -> bool {
    t.content_type.to_string().contains("html")
}

/// A title as plain text, whether the feed sent text or HTML.
fn text_of(t: &feed_rs::model::Text) -> String {
    let s = if is_html(t) {
        sanitize::to_text(&t.content)
    } else {
        t.content.clone()
    };
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A summary as sanitized HTML, whether the feed sent text or HTML. RSS descriptions are
/// HTML in practice even when typed as text, so text that looks like markup is treated so.
fn html_of(t: &feed_rs::model::Text, base_url: Option<&str>) -> String {
    if is_html(t) || t.content.contains('<') || t.content.contains("&") {
        sanitize::html(&t.content, base_url)
    } else {
        sanitize::escape(&t.content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_without_version_is_read_as_rss2() {
        let doc = parse(
            b"<rss><channel><title>T</title><item><title>A</title><guid>1</guid></item></channel></rss>",
            None,
            None,
        )
        .unwrap();
        assert_eq!(doc.entries.len(), 1);
        assert_eq!(doc.entries[0].key, "id:1");
    }

    #[test]
    fn entity_declarations_are_refused() {
        let doc = br#"<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><rss version="2.0"><channel><title>&b;</title></channel></rss>"#;
        assert_eq!(parse(doc, None, None), Err(ParseError::EntitiesRefused));
    }

    #[test]
    fn html_entities_in_xml_text_become_their_characters() {
        let doc = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>Caf&eacute;&nbsp;&amp;&nbsp;Bar</title><item><title>&ldquo;Hi&rdquo; &unknown; &lt;b&gt;</title><link>http://e.org/1</link><description><![CDATA[<p>&nbsp;kept</p>]]></description></item></channel></rss>"#;
        let doc = parse(doc, None, None).unwrap();
        // Titles are whitespace-normalized: the no-break spaces read as spaces.
        assert_eq!(doc.title, "Caf\u{e9} & Bar");
        assert_eq!(doc.entries[0].title, "\u{201c}Hi\u{201d} &unknown; <b>");
        let html = doc.entries[0]
            .summary_html
            .clone()
            .or(doc.entries[0].content_html.clone())
            .unwrap_or_default();
        assert!(
            html.contains("&nbsp;kept") || html.contains("\u{a0}kept"),
            "{html}"
        );
    }

    #[test]
    fn a_plain_doctype_is_ignored() {
        let doc = br#"<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>Old</title><item><title>x</title><link>http://e.org/1</link></item></channel></rss>"#;
        let doc = parse(doc, None, None).unwrap();
        assert_eq!(doc.title, "Old");
        assert_eq!(doc.entries[0].key, "link:http://e.org/1");
    }

    #[test]
    fn bare_ampersands_are_repaired() {
        let doc = parse(
            b"<rss version=\"2.0\"><channel><title>AT&T news</title><item><title>Q&A</title><guid>1</guid></item></channel></rss>",
            None,
            None,
        )
        .unwrap();
        assert_eq!(doc.title, "AT&T news");
        assert_eq!(doc.entries[0].title, "Q&A");
    }

    #[test]
    fn http_charset_wins_unless_the_bytes_contradict_it() {
        let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>caf\xe9</a>";
        assert!(decode(latin1, Some("utf-8")).contains("café"));
        assert!(decode(latin1, None).contains("café"));
        let utf8 = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>café</a>".as_bytes();
        assert!(decode(utf8, Some("utf-8")).contains("café"));
    }

    #[test]
    fn keys_fall_back_to_link_then_hash() {
        assert_eq!(entry_key(" g ", Some("u"), "t", None), "id:g");
        assert_eq!(entry_key("", Some("u"), "t", None), "link:u");
        let a = entry_key("", None, "t", Some("c"));
        assert_eq!(a, entry_key("", None, "t", Some("c")));
        assert_ne!(a, entry_key("", None, "t", Some("d")));
    }
}
