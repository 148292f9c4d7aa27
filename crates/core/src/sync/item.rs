//! One calendar object or contact as a side gave it: the raw bytes (never rewritten on the way
//! through), its UID, a normalized hash that ignores what servers rewrite, and a one-line
//! summary for people. Parsing never panics: what cannot be read becomes a quarantine reason.

use std::fmt::Write as _;

use calcard::icalendar::{
    ICalendar, ICalendarComponentType, ICalendarEntry, ICalendarParameterName,
    ICalendarParameterValue, ICalendarProperty, ICalendarValue,
};
use calcard::vcard::{VCard, VCardProperty};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest item accepted, in bytes (a contact with a large photo fits; a runaway file not).
pub const ITEM_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Properties servers and clients rewrite on their own; they never make an item "changed"
/// (the same list vdirsyncer ignores).
pub const IGNORED_PROPERTIES: &[&str] = &[
    "PRODID",
    "DTSTAMP",
    "LAST-MODIFIED",
    "CREATED",
    "REV",
    "METHOD",
    "X-RADICALE-NAME",
    "X-WR-CALNAME",
];

/// What kind of data an item is, which picks file extension and content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Calendar,
    Contact,
}

impl ItemKind {
    pub fn extension(self) -> &'static str {
        match self {
            ItemKind::Calendar => "ics",
            ItemKind::Contact => "vcf",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ItemKind::Calendar => "text/calendar; charset=utf-8",
            ItemKind::Contact => "text/vcard; charset=utf-8",
        }
    }
}

/// A parsed item. `raw` is exactly what the side gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub raw: Vec<u8>,
    pub kind: ItemKind,
    pub uid: String,
    /// Hex SHA-256 of the normalized content (see [`normalize`]).
    pub hash: String,
    /// "Team meeting (2026-11-23T10:00)" or "Ada Lovelace": for history, quarantine, conflicts.
    pub summary: String,
}

/// Why an item was set aside, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What could be read of it (a summary, a date), or "" when nothing could.
    pub summary: String,
    pub reason: String,
}

impl Item {
    /// Reads UID, hash and summary from `raw`.
    pub fn parse(raw: Vec<u8>) -> Result<Item, Unreadable> {
        let unreadable = |summary: String, reason: String| Unreadable { summary, reason };
        if raw.len() > ITEM_BYTES_MAX {
            return Err(unreadable(
                String::new(),
                format!(
                    "it is {} bytes, more than the {} bytes accepted",
                    raw.len(),
                    ITEM_BYTES_MAX
                ),
            ));
        }
        if raw.starts_with(&[0xff, 0xfe]) || raw.starts_with(&[0xfe, 0xff]) {
            return Err(unreadable(
                String::new(),
                "it is UTF-16 text; save it as UTF-8, which calendar and contact servers expect"
                    .to_owned(),
            ));
        }
        if raw.contains(&0) {
            return Err(unreadable(
                String::new(),
                "it holds binary data, not the text of a calendar object or a contact".to_owned(),
            ));
        }
        let text = decode(&raw);
        let tree = Component::parse(&text).map_err(|reason| unreadable(String::new(), reason))?;
        let (kind, uid, summary) = match tree.name.as_str() {
            "VCALENDAR" => read_calendar(&text)?,
            "VCARD" => read_contact(&text)?,
            other => {
                return Err(unreadable(
                    String::new(),
                    format!("it is a {other}, neither a calendar object nor a contact"),
                ));
            }
        };
        Ok(Item {
            hash: hash_normalized(&tree),
            raw,
            kind,
            uid,
            summary,
        })
    }

    /// The raw bytes as text (lossy for the rare non-UTF-8 item; used to send it over DAV).
    pub fn text(&self) -> String {
        decode(&self.raw)
    }
}

/// Text of raw bytes: UTF-8 without a BOM, or Latin-1 when the bytes are not UTF-8.
pub fn decode(raw: &[u8]) -> String {
    let raw = raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(raw);
    match std::str::from_utf8(raw) {
        Ok(text) => text.to_owned(),
        Err(_) => raw.iter().map(|&b| char::from(b)).collect(),
    }
}

fn read_calendar(text: &str) -> Result<(ItemKind, String, String), Unreadable> {
    let calendar = ICalendar::parse(text).map_err(|entry| Unreadable {
        summary: String::new(),
        reason: format!("it is not valid iCalendar ({})", describe_entry(&entry)),
    })?;
    let main = calendar.components.iter().find(|c| {
        matches!(
            c.component_type,
            ICalendarComponentType::VEvent
                | ICalendarComponentType::VTodo
                | ICalendarComponentType::VJournal
        )
    });
    let summary = main.map_or_else(String::new, |c| {
        let text = |prop| {
            c.property(&prop)
                .and_then(|e| e.values.first())
                .and_then(|v| v.clone().into_text())
                .map(|t| t.into_owned())
        };
        let title = text(ICalendarProperty::Summary).unwrap_or_else(|| "(no title)".to_owned());
        let start = c
            .property(&ICalendarProperty::Dtstart)
            .or_else(|| c.property(&ICalendarProperty::Due));
        match start.and_then(time_in_words) {
            Some(when) => format!("{title} ({when})"),
            None => title,
        }
    });
    if main.is_none() {
        return Err(Unreadable {
            summary,
            reason: "it holds no event, task or journal entry".to_owned(),
        });
    }
    let mut uids: Vec<&str> = calendar
        .components
        .iter()
        .filter(|c| c.component_type != ICalendarComponentType::VTimezone)
        .filter_map(|c| c.uid())
        .collect();
    uids.sort_unstable();
    uids.dedup();
    match uids.as_slice() {
        [uid] if !uid.trim().is_empty() => Ok((ItemKind::Calendar, (*uid).to_owned(), summary)),
        [] | [_] => Err(Unreadable {
            summary,
            reason: "it has no UID".to_owned(),
        }),
        many => Err(Unreadable {
            summary,
            reason: format!(
                "it holds {} different UIDs in one object ({})",
                many.len(),
                many.join(", ")
            ),
        }),
    }
}

/// A DTSTART or DUE as the item states it, in a person's words: "2026-12-01 10:00
/// Europe/Berlin", "2026-12-01 09:00 UTC", "2026-12-01 10:00" (floating), "2026-12-01".
fn time_in_words(entry: &ICalendarEntry) -> Option<String> {
    let Some(ICalendarValue::PartialDateTime(t)) = entry.values.first() else {
        return None;
    };
    let date = format!("{:04}-{:02}-{:02}", t.year?, t.month?, t.day?);
    let Some(hour) = t.hour else {
        return Some(date);
    };
    let zone = match (entry.parameter(&ICalendarParameterName::Tzid), t.tz_hour) {
        (Some(ICalendarParameterValue::Text(zone)), _) => format!(" {zone}"),
        (_, Some(0)) if t.tz_minute.unwrap_or(0) == 0 => " UTC".to_owned(),
        (_, Some(h)) => {
            let sign = if t.tz_minus { '-' } else { '+' };
            format!(" UTC{sign}{h:02}:{:02}", t.tz_minute.unwrap_or(0))
        }
        (_, None) => String::new(),
    };
    Some(format!(
        "{date} {hour:02}:{:02}{zone}",
        t.minute.unwrap_or(0)
    ))
}

fn read_contact(text: &str) -> Result<(ItemKind, String, String), Unreadable> {
    let card = VCard::parse(text).map_err(|entry| Unreadable {
        summary: String::new(),
        reason: format!("it is not a valid vCard ({})", describe_entry(&entry)),
    })?;
    let text_of = |prop: VCardProperty| {
        card.property(&prop)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_text())
            .map(str::to_owned)
    };
    let summary = text_of(VCardProperty::Fn).unwrap_or_else(|| "(no name)".to_owned());
    match card.uid() {
        Some(uid) if !uid.trim().is_empty() => Ok((ItemKind::Contact, uid.to_owned(), summary)),
        _ => Err(Unreadable {
            summary,
            reason: "it has no UID".to_owned(),
        }),
    }
}

fn describe_entry(entry: &calcard::Entry) -> String {
    match entry {
        calcard::Entry::InvalidLine(line) => {
            let line: String = line.chars().take(80).collect();
            format!("unreadable line {line:?}")
        }
        calcard::Entry::UnexpectedComponentEnd { expected, found } => {
            format!(
                "END:{} where END:{} was expected",
                found.as_str(),
                expected.as_str()
            )
        }
        calcard::Entry::UnterminatedComponent(name) => format!("BEGIN:{name} is never ended"),
        calcard::Entry::TooManyComponents => "too many components".to_owned(),
        calcard::Entry::Eof => "it is empty".to_owned(),
        calcard::Entry::VCard(_) => "a vCard where iCalendar was expected".to_owned(),
        calcard::Entry::ICalendar(_) => "iCalendar where a vCard was expected".to_owned(),
        _ => "unknown problem".to_owned(),
    }
}

/// The deepest nesting accepted (VCALENDAR > VEVENT > VALARM is 3).
const NESTING_MAX: usize = 16;

/// An item as content lines: the light structure normalization and merging need, read
/// tolerantly (unfolded, CRLF or LF). Lines keep their original spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Upper-case component name, e.g. "VEVENT".
    pub name: String,
    /// Content lines (unfolded), in order.
    pub properties: Vec<Property>,
    pub children: Vec<Component>,
}

/// One unfolded content line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Upper-case property name without group or parameters, e.g. "SUMMARY".
    pub name: String,
    /// The whole line as given, unfolded.
    pub line: String,
}

impl Property {
    /// The line with name and parameter names upper-cased and parameters sorted, so two
    /// spellings of the same property compare equal.
    pub fn normalized(&self) -> String {
        let (head, value) = split_value(&self.line);
        let mut parts = split_params(head);
        let name = parts.remove(0).to_ascii_uppercase();
        let mut params: Vec<String> = parts
            .into_iter()
            .map(|p| match p.split_once('=') {
                Some((k, v)) => format!("{}={v}", k.to_ascii_uppercase()),
                None => p.to_ascii_uppercase(),
            })
            .collect();
        params.sort_unstable();
        let mut out = name;
        for p in params {
            out.push(';');
            out.push_str(&p);
        }
        out.push(':');
        out.push_str(value);
        out
    }

    /// The value after the first unquoted colon.
    pub fn value(&self) -> &str {
        split_value(&self.line).1
    }
}

/// A TEXT value (RFC 5545 3.3.11) as a person reads it on one line: escapes undone, line
/// breaks as spaces.
pub fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push(' '),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Splits "NAME;P=1:VALUE" at the first colon outside double quotes.
fn split_value(line: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return (&line[..i], &line[i + 1..]),
            _ => {}
        }
    }
    (line, "")
}

fn split_params(head: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for c in head.chars() {
        match c {
            ';' if !quoted => parts.push(String::new()),
            _ => {
                if c == '"' {
                    quoted = !quoted;
                }
                if let Some(part) = parts.last_mut() {
                    part.push(c);
                }
            }
        }
    }
    parts
}

/// The property name of a line: before `;` or `:`, without a `group.` prefix, upper-case.
fn property_name(line: &str) -> String {
    let end = line.find([';', ':']).unwrap_or(line.len());
    let name = &line[..end];
    let name = name.rsplit_once('.').map_or(name, |(_group, name)| name);
    name.trim().to_ascii_uppercase()
}

/// Unfolds content lines: CRLF or LF, a leading space or tab continues the previous line.
pub fn unfold(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t'])
            && let Some(last) = lines.last_mut()
        {
            last.push_str(rest);
            continue;
        }
        if !raw.trim().is_empty() {
            lines.push(raw.to_owned());
        }
    }
    lines
}

impl Component {
    /// Reads the first top-level component of `text`; text after it is ignored.
    pub fn parse(text: &str) -> Result<Component, String> {
        let lines = unfold(text);
        let mut stack: Vec<Component> = Vec::new();
        for line in lines {
            let name = property_name(&line);
            let value = split_value(&line).1.trim().to_ascii_uppercase();
            match name.as_str() {
                "BEGIN" => {
                    if stack.len() >= NESTING_MAX {
                        return Err(format!(
                            "components are nested more than {NESTING_MAX} deep"
                        ));
                    }
                    stack.push(Component {
                        name: value,
                        properties: Vec::new(),
                        children: Vec::new(),
                    });
                }
                "END" => {
                    let Some(done) = stack.pop() else {
                        return Err(format!("END:{value} without a BEGIN"));
                    };
                    if done.name != value {
                        return Err(format!("END:{value} where END:{} was expected", done.name));
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                _ => match stack.last_mut() {
                    Some(current) => current.properties.push(Property { name, line }),
                    None => {
                        let shown: String = line.chars().take(60).collect();
                        return Err(format!("{shown:?} stands outside any BEGIN/END"));
                    }
                },
            }
        }
        match stack.first() {
            Some(open) => Err(format!("BEGIN:{} is never ended", open.name)),
            None => Err("it is empty".to_owned()),
        }
    }

    /// The first property value with this name.
    pub fn value_of(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(Property::value)
    }

    /// The component in the canonical form the hash is taken of: ignored properties dropped,
    /// properties and children sorted, one line each, LF endings.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        self.write_normalized(&mut out);
        out
    }

    fn write_normalized(&self, out: &mut String) {
        let _ = writeln!(out, "BEGIN:{}", self.name);
        let mut lines: Vec<String> = self
            .properties
            .iter()
            .filter(|p| !IGNORED_PROPERTIES.contains(&p.name.as_str()))
            .map(Property::normalized)
            .collect();
        lines.sort_unstable();
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
        let mut children: Vec<String> = self.children.iter().map(Component::normalized).collect();
        children.sort_unstable();
        for child in children {
            out.push_str(&child);
        }
        let _ = writeln!(out, "END:{}", self.name);
    }

    /// Writes the component as iCalendar/vCard text: CRLF endings, lines folded at 75 octets.
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        fold_into(out, &format!("BEGIN:{}", self.name));
        for p in &self.properties {
            fold_into(out, &p.line);
        }
        for child in &self.children {
            child.write(out);
        }
        fold_into(out, &format!("END:{}", self.name));
    }
}

/// Appends `line` folded at 75 octets (never inside a UTF-8 character) with CRLF.
fn fold_into(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

fn hash_normalized(tree: &Component) -> String {
    hex(&Sha256::digest(tree.normalized().as_bytes()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Hex SHA-256 of raw bytes (for etags of files and webcal items).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//A//EN\r\nBEGIN:VEVENT\r\nUID:e1@example.com\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:20261123T100000Z\r\nSUMMARY:Team meeting\r\nLOCATION:Room 1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn binary_data_is_named_as_such() {
        let mut raw = EVENT.as_bytes().to_vec();
        raw.extend_from_slice(&[0, 159, 146, 150]);
        let reason = Item::parse(raw).unwrap_err().reason;
        assert!(reason.contains("binary data"), "{reason}");
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(EVENT.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let reason = Item::parse(utf16).unwrap_err().reason;
        assert!(reason.contains("UTF-16"), "{reason}");
    }

    #[test]
    fn text_values_are_unescaped_in_one_pass() {
        assert_eq!(unescape_text(r"a\, b\; c\nd\Ne\\n"), r"a, b; c d e\n");
        assert_eq!(unescape_text("trailing\\"), "trailing\\");
    }

    #[test]
    fn reads_uid_summary_and_date() {
        let item = Item::parse(EVENT.as_bytes().to_vec()).unwrap();
        assert_eq!(item.uid, "e1@example.com");
        assert_eq!(item.kind, ItemKind::Calendar);
        assert_eq!(item.summary, "Team meeting (2026-11-23 10:00 UTC)");
        assert_eq!(item.raw, EVENT.as_bytes());
    }

    #[test]
    fn the_date_in_a_summary_is_the_one_the_item_states() {
        let summary = |start: &str| {
            let text = EVENT.replace("DTSTART:20261123T100000Z", start);
            Item::parse(text.into_bytes()).unwrap().summary
        };
        assert_eq!(
            summary("DTSTART;TZID=Europe/Berlin:20261201T100000"),
            "Team meeting (2026-12-01 10:00 Europe/Berlin)"
        );
        assert_eq!(
            summary("DTSTART;VALUE=DATE:20261201"),
            "Team meeting (2026-12-01)"
        );
        assert_eq!(
            summary("DTSTART:20261201T100000"),
            "Team meeting (2026-12-01 10:00)"
        );
    }

    #[test]
    fn what_servers_rewrite_does_not_change_the_hash() {
        let a = Item::parse(EVENT.as_bytes().to_vec()).unwrap();
        // Another PRODID and DTSTAMP, LF endings, properties reordered, a line folded.
        let rewritten = "BEGIN:VCALENDAR\nPRODID:-//Radicale//NONSGML//EN\nVERSION:2.0\nBEGIN:VEVENT\nSUMMARY:Team \n meeting\nUID:e1@example.com\nLOCATION:Room 1\nDTSTART:20261123T100000Z\nDTSTAMP:20261122T080000Z\nLAST-MODIFIED:20261122T080000Z\nEND:VEVENT\nEND:VCALENDAR\n";
        let b = Item::parse(rewritten.as_bytes().to_vec()).unwrap();
        assert_eq!(a.hash, b.hash);
        let edited = EVENT.replace("Room 1", "Room 2");
        let c = Item::parse(edited.into_bytes()).unwrap();
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn a_bom_and_latin1_are_read() {
        let mut raw = "\u{feff}".as_bytes().to_vec();
        raw.extend_from_slice(EVENT.as_bytes());
        assert_eq!(Item::parse(raw).unwrap().uid, "e1@example.com");
        let latin1 = EVENT.replace("Team meeting", "Caf\u{e9}").into_bytes();
        let latin1: Vec<u8> = String::from_utf8(latin1)
            .unwrap()
            .chars()
            .map(|c| c as u8)
            .collect();
        assert!(std::str::from_utf8(&latin1).is_err());
        assert!(
            Item::parse(latin1)
                .unwrap()
                .summary
                .starts_with("Caf\u{e9}")
        );
    }

    #[test]
    fn unreadable_items_say_why() {
        let no_uid = EVENT.replace("UID:e1@example.com\r\n", "");
        let err = Item::parse(no_uid.into_bytes()).unwrap_err();
        assert_eq!(err.reason, "it has no UID");
        assert!(err.summary.starts_with("Team meeting"), "{err:?}");

        let cut = &EVENT[..EVENT.len() - 30];
        let err = Item::parse(cut.as_bytes().to_vec()).unwrap_err();
        assert!(err.reason.contains("never ended"), "{err:?}");

        let two = EVENT.replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:other\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
        let err = Item::parse(two.into_bytes()).unwrap_err();
        assert!(err.reason.contains("2 different UIDs"), "{err:?}");
    }

    #[test]
    fn contacts_with_photos_parse() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\nPHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////\r\n ////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAA\r\nEND:VCARD\r\n";
        let item = Item::parse(card.as_bytes().to_vec()).unwrap();
        assert_eq!((item.kind, item.uid.as_str()), (ItemKind::Contact, "c1"));
        assert_eq!(item.summary, "Ada Lovelace");
        let tree = Component::parse(card).unwrap();
        let photo = tree.properties.iter().find(|p| p.name == "PHOTO").unwrap();
        assert!(
            photo.value().ends_with("AAAAAAAA"),
            "unfolded: {}",
            photo.line
        );
    }

    #[test]
    fn serialize_folds_long_lines_and_round_trips() {
        let long = format!("SUMMARY:{}", "é".repeat(100));
        let tree = Component::parse(&EVENT.replace("SUMMARY:Team meeting", &long)).unwrap();
        let text = tree.serialize();
        assert!(text.lines().all(|l| l.len() <= 76), "{text}");
        assert_eq!(Component::parse(&text).unwrap(), tree);
    }

    #[test]
    fn parameter_order_and_case_do_not_matter() {
        let a = Property {
            name: "ATTENDEE".into(),
            line: "ATTENDEE;ROLE=CHAIR;cn=Ada:mailto:a@x".into(),
        };
        let b = Property {
            name: "ATTENDEE".into(),
            line: "attendee;CN=Ada;ROLE=CHAIR:mailto:a@x".into(),
        };
        assert_eq!(a.normalized(), b.normalized());
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = Item::parse(bytes);
        }

        #[test]
        fn mangled_items_never_panic(cut in 0usize..200, junk in "[A-Z:;=\r\n \"]{0,40}") {
            let mut text = EVENT.to_owned();
            text.insert_str(cut.min(text.len()), &junk);
            let _ = Item::parse(text.into_bytes());
        }
    }
}
