//! Three-way merge of iCalendar and vCard against the stored base, field by field.
//! Components are matched by name, UID and RECURRENCE-ID (an edited occurrence of a recurring
//! event is its own unit); inside one, properties by name and key parameters (LANGUAGE,
//! ALTID); multi-valued data (EMAIL, TEL, ADR, CATEGORIES, ATTENDEE, EXDATE, alarms, ...)
//! merges as sets, element by element. The same line-up ([`Analysis`]) gives the conflict
//! inbox its fields and builds the item a person's per-field choice produces.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::item::{Component, IGNORED_PROPERTIES, Item, Property};
use super::state::Side;

/// The result of merging base, A and B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Both sides' edits, combined, as iCalendar/vCard text (CRLF, folded).
    Merged(String),
    /// The fields both sides changed differently, as field keys ("VEVENT SUMMARY").
    Conflict(Vec<String>),
}

/// Merges the edits A and B made to `base`. Text that cannot be read is a conflict.
pub fn merge(base: &str, a: &str, b: &str) -> Merge {
    merge_at(base, a, b, Utc::now())
}

/// [`merge`] with the time written to LAST-MODIFIED/REV of a result that differs from both.
pub fn merge_at(base: &str, a: &str, b: &str, now: DateTime<Utc>) -> Merge {
    match Analysis::new(Some(base), Some(a), Some(b)) {
        Err(reason) => Merge::Conflict(vec![reason]),
        Ok(analysis) => {
            let conflicts = analysis.conflicts();
            if !conflicts.is_empty() {
                return Merge::Conflict(conflicts);
            }
            let content = analysis.build(&BTreeMap::new(), now).content;
            // Never a merge that could not be read back (sides that each gave their one event
            // a different UID would make an object of two), nor one that is another item than
            // the sides (a side with a second UID line): the person chooses instead.
            let uid_of = |text: &str| Item::parse(text.as_bytes().to_vec()).ok().map(|i| i.uid);
            match Item::parse(content.clone().into_bytes()) {
                Ok(merged) if [uid_of(a), uid_of(b)].contains(&Some(merged.uid.clone())) => {
                    Merge::Merged(content)
                }
                Ok(merged) => Merge::Conflict(vec![format!(
                    "the merged item would have the UID {:?}, which neither side has",
                    merged.uid
                )]),
                Err(unreadable) => Merge::Conflict(vec![format!(
                    "the merged item would not be readable: {}",
                    unreadable.reason
                )]),
            }
        }
    }
}

/// Multi-valued properties of iCalendar components, merged as sets.
const CALENDAR_SETS: &[&str] = &[
    "ATTENDEE",
    "CATEGORIES",
    "EXDATE",
    "RDATE",
    "COMMENT",
    "CONTACT",
    "RESOURCES",
    "ATTACH",
    "RELATED-TO",
];
/// Multi-valued properties of vCards, merged as sets.
const CONTACT_SETS: &[&str] = &[
    "EMAIL",
    "TEL",
    "ADR",
    "CATEGORIES",
    "NICKNAME",
    "IMPP",
    "URL",
    "MEMBER",
    "RELATED",
    "LANG",
    "X-SOCIALPROFILE",
];
/// Digits of a phone number that make it the same number (the national part).
pub const TEL_DIGITS_COMPARED: usize = 9;

/// Properties whose value is a comma-separated list; each value is one set element.
const LISTS: &[&str] = &["CATEGORIES", "NICKNAME", "EXDATE", "RDATE", "RESOURCES"];
/// Parameters that make two lines of one name different properties (vCard 4 ALTID,
/// translations by LANGUAGE).
const KEY_PARAMETERS: &[&str] = &["LANGUAGE", "ALTID"];

/// Lines the merge does not compare but sets on the result (SEQUENCE, DTSTAMP, REV, ...).
fn bookkeeping(name: &str) -> bool {
    name == "SEQUENCE" || IGNORED_PROPERTIES.contains(&name)
}

/// One element of a field: an address, a category, an alarm, or a single-valued line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    /// What the element is across versions (the address of an EMAIL, "" for a single value).
    id: String,
    /// What it holds, normalized: an edit changes this and keeps `id`.
    content: String,
    out: Out,
}

/// How an element is written back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Line(Property),
    /// One value of a comma-separated list, rejoined with its siblings of the same head.
    Value {
        name: String,
        head: String,
        value: String,
    },
    Child(Component),
}

/// A field's elements in the three versions, and their merge (None: a conflict).
#[derive(Debug, Clone)]
struct Slot {
    key: String,
    property: String,
    versions: [Vec<Element>; 3],
    merged: Option<Vec<Element>>,
}

/// A component matched across base, A and B.
#[derive(Debug, Clone)]
struct Unit {
    /// The field-key prefix: "VCALENDAR", "VCARD", "VEVENT", "VEVENT@20261130T100000Z".
    label: String,
    /// Time zones are taken whole: either definition is right, and a person cannot judge.
    atomic: bool,
    shell: bool,
    versions: [Option<Component>; 3],
    slots: Vec<Slot>,
}

const BASE: usize = 0;

fn at(side: Side) -> usize {
    match side {
        Side::A => 1,
        Side::B => 2,
    }
}

/// One field lined up across base, A and B, as lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLines {
    /// The key a per-field choice names: "VEVENT SUMMARY", "VCARD EMAIL",
    /// "VEVENT@20261130T100000Z SUMMARY", or a whole occurrence "VEVENT@20261130T100000Z".
    pub key: String,
    /// "VEVENT", "VCARD", "VTIMEZONE", ...
    pub component: String,
    /// The RECURRENCE-ID value of an occurrence, for fields of one occurrence.
    pub occurrence: Option<String>,
    /// "SUMMARY", "EMAIL", "VALARM"; empty for a whole component.
    pub property: String,
    /// Unfolded lines (a sub-component serialized); None: absent in that version.
    pub base: Option<Vec<String>>,
    pub a: Option<Vec<String>>,
    pub b: Option<Vec<String>>,
    /// A and B hold different content here.
    pub differs: bool,
    /// Both changed it differently: it needs a choice.
    pub conflict: bool,
}

/// The item a merge (with per-field choices) produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub content: String,
    /// Conflicting fields no choice named; A's version stands in for them.
    pub unchosen: Vec<String>,
}

/// Base, A and B lined up unit by unit and field by field.
#[derive(Debug, Clone)]
pub struct Analysis {
    root: String,
    units: Vec<Unit>,
}

impl Analysis {
    /// Lines up the versions; a missing version (deleted, or no base) is absent throughout.
    pub fn new(base: Option<&str>, a: Option<&str>, b: Option<&str>) -> Result<Analysis, String> {
        let parse = |text: Option<&str>| {
            text.map(Component::parse)
                .transpose()
                .map_err(|err| format!("(unreadable content: {err})"))
        };
        let roots = [parse(base)?, parse(a)?, parse(b)?];
        let names: BTreeSet<&str> = roots.iter().flatten().map(|r| r.name.as_str()).collect();
        let root = match names.into_iter().collect::<Vec<_>>().as_slice() {
            [one] => (*one).to_owned(),
            [] => return Err("(no content)".to_owned()),
            many => return Err(many.join(" / ")),
        };
        let mut order: Vec<String> = Vec::new();
        let mut found: BTreeMap<String, Unit> = BTreeMap::new();
        for version in [1, 2, BASE] {
            let Some(r) = &roots[version] else { continue };
            for (key, label, atomic, shell, component) in units_of(r) {
                let unit = found.entry(key.clone()).or_insert_with(|| {
                    order.push(key.clone());
                    Unit {
                        label,
                        atomic,
                        shell,
                        versions: [None, None, None],
                        slots: Vec::new(),
                    }
                });
                // A malformed version with two units of one key: the first counts.
                if unit.versions[version].is_none() {
                    unit.versions[version] = Some(component);
                }
            }
        }
        let units = order
            .into_iter()
            .filter_map(|key| found.remove(&key))
            .map(|mut unit| {
                if let (Some(_), Some(_), false) =
                    (&unit.versions[1], &unit.versions[2], unit.atomic)
                {
                    unit.slots = slots_of(&unit.label, &unit.versions);
                }
                unit
            })
            .collect();
        Ok(Analysis { root, units })
    }

    /// The keys of the fields both sides changed differently.
    pub fn conflicts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for unit in &self.units {
            match unit.outcome() {
                UnitOutcome::Conflict => out.push(unit.label.clone()),
                UnitOutcome::Merge => out.extend(
                    unit.slots
                        .iter()
                        .filter(|s| s.merged.is_none())
                        .map(|s| s.key.clone()),
                ),
                _ => {}
            }
        }
        out
    }

    /// Every key a choice may name.
    pub fn keys(&self) -> Vec<String> {
        self.fields().into_iter().map(|f| f.key).collect()
    }

    /// Every field present in any version, in the order of A (then B, then base).
    pub fn fields(&self) -> Vec<FieldLines> {
        let mut out = Vec::new();
        for unit in &self.units {
            let (component, occurrence) = match unit.label.split_once('@') {
                Some((name, occurrence)) => (name.to_owned(), Some(occurrence.to_owned())),
                None => (
                    unit.label
                        .split(' ')
                        .next()
                        .unwrap_or(&unit.label)
                        .to_owned(),
                    None,
                ),
            };
            if unit.slots.is_empty() {
                let text = |i: usize| {
                    unit.versions[i]
                        .as_ref()
                        .map(|c| vec![c.serialize().trim_end().to_owned()])
                };
                let normalized = |i: usize| unit.versions[i].as_ref().map(Component::normalized);
                out.push(FieldLines {
                    key: unit.label.clone(),
                    component,
                    occurrence,
                    property: String::new(),
                    base: text(BASE),
                    a: text(1),
                    b: text(2),
                    differs: normalized(1) != normalized(2),
                    conflict: unit.outcome() == UnitOutcome::Conflict,
                });
                continue;
            }
            for slot in &unit.slots {
                let lines = |i: usize| {
                    let elements = &slot.versions[i];
                    (!elements.is_empty()).then(|| render_lines(elements))
                };
                out.push(FieldLines {
                    key: slot.key.clone(),
                    component: component.clone(),
                    occurrence: occurrence.clone(),
                    property: slot.property.clone(),
                    base: lines(BASE),
                    a: lines(1),
                    b: lines(2),
                    differs: contents(&slot.versions[1]) != contents(&slot.versions[2]),
                    conflict: slot.merged.is_none(),
                });
            }
        }
        out
    }

    /// The merged item, with `picks` deciding the fields they name (a side's version of the
    /// field, or its absence there). SEQUENCE, DTSTAMP and LAST-MODIFIED/REV are set on
    /// components that differ from both sides.
    pub fn build(&self, picks: &BTreeMap<String, Side>, now: DateTime<Utc>) -> Built {
        let mut unchosen = Vec::new();
        let mut root = Component {
            name: self.root.clone(),
            properties: Vec::new(),
            children: Vec::new(),
        };
        for unit in &self.units {
            let version = |side: Side| unit.versions[at(side)].clone();
            let chosen = match picks.get(&unit.label) {
                Some(side) => version(*side),
                None => match unit.outcome() {
                    UnitOutcome::Absent => None,
                    UnitOutcome::Take(side) => version(side),
                    UnitOutcome::Conflict => {
                        unchosen.push(unit.label.clone());
                        version(Side::A)
                    }
                    UnitOutcome::Merge => unit.build(picks, now, &mut unchosen),
                },
            };
            let Some(chosen) = chosen else { continue };
            if unit.shell || self.root != "VCALENDAR" {
                root.properties = chosen.properties;
                if self.root != "VCALENDAR" {
                    root.children = chosen.children;
                }
            } else {
                root.children.push(chosen);
            }
        }
        Built {
            content: root.serialize(),
            unchosen,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitOutcome {
    Absent,
    Take(Side),
    Merge,
    Conflict,
}

impl Unit {
    fn outcome(&self) -> UnitOutcome {
        let [base, a, b] = &self.versions;
        let normalized = |c: &Option<Component>| c.as_ref().map(Component::normalized);
        let (nb, na, nbb) = (normalized(base), normalized(a), normalized(b));
        let present = |side: Side| {
            if self.versions[at(side)].is_some() {
                UnitOutcome::Take(side)
            } else {
                UnitOutcome::Absent
            }
        };
        if self.atomic {
            return if na == nbb || nbb == nb {
                present(Side::A)
            } else if na == nb || nbb > na {
                present(Side::B)
            } else {
                present(Side::A)
            };
        }
        match (a, b) {
            (Some(_), Some(_)) => UnitOutcome::Merge,
            (None, None) => UnitOutcome::Absent,
            (Some(_), None) | (None, Some(_)) => {
                let (there, now) = if a.is_some() {
                    (Side::A, &na)
                } else {
                    (Side::B, &nbb)
                };
                match &nb {
                    // Added on one side.
                    None => present(there),
                    // Deleted on the other, untouched here.
                    Some(base) if Some(base) == now.as_ref() => UnitOutcome::Absent,
                    Some(_) => UnitOutcome::Conflict,
                }
            }
        }
    }

    /// The unit with every field merged or picked; bookkeeping lines set last. None for a
    /// unit one side lacks.
    fn build(
        &self,
        picks: &BTreeMap<String, Side>,
        now: DateTime<Utc>,
        unchosen: &mut Vec<String>,
    ) -> Option<Component> {
        // Only a unit both sides hold is merged.
        let (Some(a), Some(b)) = (&self.versions[1], &self.versions[2]) else {
            return None;
        };
        let mut chosen: BTreeMap<&str, Vec<Element>> = BTreeMap::new();
        for slot in &self.slots {
            let elements = match picks.get(&slot.key) {
                Some(side) => slot.versions[at(*side)].clone(),
                None => match &slot.merged {
                    Some(merged) => merged.clone(),
                    None => {
                        unchosen.push(slot.key.clone());
                        slot.versions[1].clone()
                    }
                },
            };
            chosen.insert(slot.key.as_str(), elements);
        }
        let mut out = Component {
            name: a.name.clone(),
            properties: Vec::new(),
            children: Vec::new(),
        };
        let mut written: BTreeSet<String> = BTreeSet::new();
        let multi = repeated_keys(&self.versions);
        for (i, side) in [a, b].into_iter().enumerate() {
            for p in &side.properties {
                if bookkeeping(&p.name) {
                    // A's bookkeeping lines stand; B adds those A lacks.
                    if i == 0 || !a.properties.iter().any(|q| q.name == p.name) {
                        out.properties.push(p.clone());
                    }
                    continue;
                }
                let key = field_key(&self.label, &slot_of(&a.name, p, &multi).0);
                if written.insert(key.clone())
                    && let Some(elements) = chosen.get(key.as_str())
                {
                    render(elements, &mut out);
                }
            }
            for child in &side.children {
                let key = field_key(&self.label, &child.name);
                if written.insert(key.clone())
                    && let Some(elements) = chosen.get(key.as_str())
                {
                    render(elements, &mut out);
                }
            }
        }
        set_bookkeeping(&mut out, a, b, now);
        Some(out)
    }
}

/// SEQUENCE at least both sides' (one more when the result differs from both), the later
/// DTSTAMP, and LAST-MODIFIED/REV set to `now` when the result differs from both.
fn set_bookkeeping(out: &mut Component, a: &Component, b: &Component, now: DateTime<Utc>) {
    let sequence = |c: &Component| -> Option<u64> {
        c.value_of("SEQUENCE").and_then(|v| v.trim().parse().ok())
    };
    let without_sequence = |c: &Component| {
        let mut c = c.clone();
        c.properties.retain(|p| p.name != "SEQUENCE");
        c.normalized()
    };
    let result = without_sequence(out);
    let new = result != without_sequence(a) && result != without_sequence(b);
    let highest = sequence(a).max(sequence(b));
    if let Some(highest) = highest {
        let value = if new { highest + 1 } else { highest };
        set_line(out, "SEQUENCE", &format!("SEQUENCE:{value}"));
    }
    let stamp = |c: &Component| c.value_of("DTSTAMP").map(|v| v.trim().to_owned());
    if let Some(later) = stamp(a).max(stamp(b))
        && out.value_of("DTSTAMP").is_some()
    {
        set_line(out, "DTSTAMP", &format!("DTSTAMP:{later}"));
    }
    if new {
        let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
        for name in ["LAST-MODIFIED", "REV"] {
            if a.value_of(name).is_some() || b.value_of(name).is_some() {
                set_line(out, name, &format!("{name}:{stamp}"));
            }
        }
    }
}

/// Replaces the first line named `name` (dropping others of that name) or appends one.
fn set_line(c: &mut Component, name: &str, line: &str) {
    let property = Property {
        name: name.to_owned(),
        line: line.to_owned(),
    };
    match c.properties.iter().position(|p| p.name == name) {
        Some(first) => {
            c.properties[first] = property;
            let mut seen = 0;
            c.properties.retain(|p| {
                if p.name != name {
                    return true;
                }
                seen += 1;
                seen == 1
            });
        }
        None => c.properties.push(property),
    }
}

/// The units of one version: (match key, label, atomic, shell, component).
fn units_of(root: &Component) -> Vec<(String, String, bool, bool, Component)> {
    if root.name != "VCALENDAR" {
        return vec![(
            root.name.clone(),
            root.name.clone(),
            false,
            false,
            root.clone(),
        )];
    }
    let shell = Component {
        name: root.name.clone(),
        properties: root.properties.clone(),
        children: Vec::new(),
    };
    let mut out = vec![(
        "VCALENDAR".to_owned(),
        "VCALENDAR".to_owned(),
        false,
        true,
        shell,
    )];
    for child in &root.children {
        let value = |name: &str| child.value_of(name).unwrap_or("").trim().to_owned();
        if child.name == "VTIMEZONE" {
            let label = format!("VTIMEZONE {}", value("TZID"));
            out.push((label.clone(), label, true, false, child.clone()));
            continue;
        }
        let recurrence = child
            .properties
            .iter()
            .find(|p| p.name == "RECURRENCE-ID")
            .map(occurrence_key);
        let label = match &recurrence {
            Some(_) => format!("{}@{}", child.name, value("RECURRENCE-ID")),
            None => child.name.clone(),
        };
        let key = format!(
            "{} {} {}",
            child.name,
            value("UID"),
            recurrence.unwrap_or_default()
        );
        out.push((key, label, false, false, child.clone()));
    }
    out
}

/// The occurrence an override replaces, in one spelling: the instant in UTC when its zone is
/// known (a server may rewrite "TZID=Europe/Berlin:20261116T100000" as "20261116T090000Z"),
/// else the line with its parameters sorted. RANGE=THISANDFUTURE stays part of it.
fn occurrence_key(p: &Property) -> String {
    let normalized = p.normalized();
    let params = params(head_of(&normalized));
    let value = p.value().trim();
    let range = params
        .iter()
        .find(|(k, _)| k == "RANGE")
        .map(|(_, v)| format!(";RANGE={}", v.to_ascii_uppercase()))
        .unwrap_or_default();
    let local = chrono::NaiveDateTime::parse_from_str(value.trim_end_matches('Z'), "%Y%m%dT%H%M%S");
    let zone = params
        .iter()
        .find(|(k, _)| k == "TZID")
        .map(|(_, v)| v.trim_matches('"').to_owned());
    let utc = match (local, zone, value.ends_with('Z')) {
        (Ok(local), _, true) => Some(local.and_utc()),
        (Ok(local), Some(zone), false) => zone
            .parse::<calcard::common::timezone::Tz>()
            .ok()
            .and_then(|tz| chrono::TimeZone::from_local_datetime(&tz, &local).earliest())
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    };
    match utc {
        Some(t) => format!("{}{range}", t.format("%Y%m%dT%H%M%SZ")),
        None => normalized,
    }
}

fn field_key(label: &str, slot: &str) -> String {
    format!("{label} {slot}")
}

/// Scalar slot keys that occur more than once in some version: those merge as sets too.
fn repeated_keys(versions: &[Option<Component>; 3]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in versions.iter().flatten() {
        let mut seen = BTreeSet::new();
        for p in &c.properties {
            let key = scalar_key(p);
            if !seen.insert(key.clone()) {
                out.insert(key);
            }
        }
    }
    out
}

/// Name plus key parameters: "DESCRIPTION", "FN;LANGUAGE=de".
fn scalar_key(p: &Property) -> String {
    let normalized = p.normalized();
    let head = head_of(&normalized);
    let mut key = p.name.clone();
    for (name, value) in params(head) {
        if KEY_PARAMETERS.contains(&name.as_str()) {
            key.push_str(&format!(";{name}={value}"));
        }
    }
    key
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    Single,
    /// Elements keyed by what they are (an address, a number).
    Set,
    /// A comma-separated list, one element per value.
    List,
    /// Repeated lines of a property without a known identity: the whole line is the element.
    Lines,
}

/// The slot a property belongs to in a component named `component`, and how it merges.
fn slot_of(component: &str, p: &Property, multi: &BTreeSet<String>) -> (String, SlotKind) {
    let sets = if component == "VCARD" {
        CONTACT_SETS
    } else {
        CALENDAR_SETS
    };
    let name = p.name.as_str();
    if sets.contains(&name) {
        let kind = if LISTS.contains(&name) {
            SlotKind::List
        } else {
            SlotKind::Set
        };
        return (p.name.clone(), kind);
    }
    let key = scalar_key(p);
    if multi.contains(&key) {
        (key, SlotKind::Lines)
    } else {
        (key, SlotKind::Single)
    }
}

/// The elements of every slot of one unit in base, A and B, each slot merged.
fn slots_of(label: &str, versions: &[Option<Component>; 3]) -> Vec<Slot> {
    let multi = repeated_keys(versions);
    let mut order: Vec<(String, String, SlotKind)> = Vec::new();
    let mut found: BTreeMap<String, [Vec<Element>; 3]> = BTreeMap::new();
    for version in [1, 2, BASE] {
        let Some(c) = &versions[version] else {
            continue;
        };
        let mut add = |slot: String, kind: SlotKind, elements: Vec<Element>| {
            let key = field_key(label, &slot);
            let entry = found.entry(key.clone()).or_insert_with(|| {
                order.push((key, slot, kind));
                [Vec::new(), Vec::new(), Vec::new()]
            });
            entry[version].extend(elements);
        };
        for p in &c.properties {
            if bookkeeping(&p.name) {
                continue;
            }
            let (slot, kind) = slot_of(&c.name, p, &multi);
            add(slot, kind, elements_of(p, kind));
        }
        for child in &c.children {
            // An alarm is the same alarm by its UID (RFC 9074), else by its content.
            let normalized = child.normalized();
            let id = child
                .value_of("UID")
                .map_or_else(|| normalized.clone(), |uid| uid.trim().to_owned());
            add(
                child.name.clone(),
                SlotKind::Lines,
                vec![Element {
                    id,
                    content: normalized,
                    out: Out::Child(child.clone()),
                }],
            );
        }
    }
    order
        .into_iter()
        .filter_map(|(key, property, kind)| {
            let versions = found.remove(&key)?;
            let merged = merge_elements(&versions, matches!(kind, SlotKind::Set | SlotKind::List));
            Some(Slot {
                key,
                property,
                versions,
                merged,
            })
        })
        .collect()
}

fn elements_of(p: &Property, kind: SlotKind) -> Vec<Element> {
    let normalized = p.normalized();
    let line = |id: String| Element {
        id,
        content: normalized.clone(),
        out: Out::Line(p.clone()),
    };
    match kind {
        SlotKind::Single => vec![line(String::new())],
        SlotKind::Lines => vec![line(normalized.clone())],
        SlotKind::Set => vec![line(identity(&p.name, p.value()))],
        SlotKind::List => {
            let head = &p.line[..p.line.len() - p.value().len()].trim_end_matches(':');
            let normalized_head = head_of(&normalized).to_owned();
            split_list(p.value())
                .into_iter()
                .filter(|v| !v.trim().is_empty())
                .map(|value| Element {
                    id: format!("{normalized_head}:{}", value.trim()),
                    content: format!("{normalized_head}:{}", value.trim()),
                    out: Out::Value {
                        name: p.name.clone(),
                        head: (*head).to_owned(),
                        value,
                    },
                })
                .collect()
        }
    }
}

/// What an element of a set is, whatever its parameters: an address in one case, a number's
/// digits.
fn identity(name: &str, value: &str) -> String {
    let value = value.trim();
    if name == "TEL" {
        // The national part: "+44 20 7946 0000" and "020 7946 0000" are one number.
        let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 3 {
            let start = digits.len().saturating_sub(TEL_DIGITS_COMPARED);
            return digits[start..].iter().collect();
        }
    }
    let lower = value.to_lowercase();
    lower
        .strip_prefix("mailto:")
        .map_or(lower.clone(), str::to_owned)
}

/// The part of a normalized line before its value: "EMAIL;TYPE=work".
pub(crate) fn head_of(normalized: &str) -> &str {
    let mut quoted = false;
    for (i, c) in normalized.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return &normalized[..i],
            _ => {}
        }
    }
    normalized
}

/// The parameters of a head, as (upper-case name, value).
pub(crate) fn params(head: &str) -> Vec<(String, String)> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for c in head.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        match c {
            ';' if !quoted => parts.push(String::new()),
            _ => {
                if let Some(part) = parts.last_mut() {
                    part.push(c);
                }
            }
        }
    }
    parts
        .into_iter()
        .skip(1)
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), v.to_owned()),
            None => (p.to_ascii_uppercase(), String::new()),
        })
        .collect()
}

/// Splits a list value at commas that are not escaped.
fn split_list(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in value.chars() {
        match c {
            ',' if !escaped => out.push(String::new()),
            _ => {
                escaped = c == '\\' && !escaped;
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// The sorted contents of elements: what "equal" means for a field.
fn contents(elements: &[Element]) -> Vec<String> {
    let mut out: Vec<String> = elements.iter().map(|e| e.content.clone()).collect();
    out.sort_unstable();
    out
}

/// Three-way merge of one slot, element by element; None when one element was changed
/// differently on both sides (or changed on one and removed on the other). In a set, one
/// address or number added on both sides with different parameters (TYPE=home, TYPE=work)
/// is kept once, the same spelling whichever side is A: the address is what matters, and
/// both versions are in history.
fn merge_elements(versions: &[Vec<Element>; 3], set: bool) -> Option<Vec<Element>> {
    let (base, a, b) = (
        by_id(&versions[BASE]),
        by_id(&versions[1]),
        by_id(&versions[2]),
    );
    // Both sides replaced the same element, each with its own (an email changed to two
    // different addresses): that is one field edited two ways, not two additions.
    if set {
        let removed_by_both = base
            .keys()
            .any(|id| !a.contains_key(id) && !b.contains_key(id));
        let added_only = |mine: &ById<'_>, theirs: &ById<'_>| {
            mine.keys()
                .any(|id| !base.contains_key(id) && !theirs.contains_key(id))
        };
        if removed_by_both && added_only(&a, &b) && added_only(&b, &a) {
            return None;
        }
    }
    let mut ids: Vec<&str> = Vec::new();
    for e in versions[1].iter().chain(&versions[2]) {
        if !ids.contains(&e.id.as_str()) {
            ids.push(&e.id);
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let (cb, ca, cbb) = (
            content_of(&base, id),
            content_of(&a, id),
            content_of(&b, id),
        );
        let from = if ca == cbb || cbb == cb {
            &a
        } else if ca == cb {
            &b
        } else if set && cb.is_none() && ca.is_some() && cbb.is_some() {
            if ca > cbb { &a } else { &b }
        } else {
            return None;
        };
        if let Some(es) = from.get(id) {
            out.extend(es.iter().map(|e| (*e).clone()));
        }
    }
    // A result new to both sides takes an order independent of which side is A: the base's
    // elements in the base's order, then the additions sorted. List values are ordered text.
    let merged = contents(&out);
    if merged != contents(&versions[1]) && merged != contents(&versions[2]) {
        let position = |e: &Element| {
            versions[BASE]
                .iter()
                .position(|b| b.id == e.id)
                .unwrap_or(usize::MAX)
        };
        out.sort_by(|x, y| (position(x), &x.id, &x.content).cmp(&(position(y), &y.id, &y.content)));
    }
    Some(out)
}

type ById<'e> = BTreeMap<&'e str, Vec<&'e Element>>;

fn by_id(elements: &[Element]) -> ById<'_> {
    let mut out: ById<'_> = BTreeMap::new();
    for e in elements {
        out.entry(e.id.as_str()).or_default().push(e);
    }
    out
}

/// The sorted contents of the elements with this id; None when there are none.
fn content_of<'e>(group: &ById<'e>, id: &str) -> Option<Vec<&'e str>> {
    group.get(id).map(|es| {
        let mut c: Vec<&str> = es.iter().map(|e| e.content.as_str()).collect();
        c.sort_unstable();
        c
    })
}

/// Writes elements into a component: lines, list values rejoined per head, children.
fn render(elements: &[Element], out: &mut Component) {
    let mut lists: Vec<(String, String, Vec<String>)> = Vec::new();
    for e in elements {
        match &e.out {
            Out::Line(p) => out.properties.push(p.clone()),
            Out::Child(c) => out.children.push(c.clone()),
            Out::Value { name, head, value } => {
                match lists.iter_mut().find(|(_, h, _)| h == head) {
                    Some((_, _, values)) => values.push(value.clone()),
                    None => lists.push((name.clone(), head.clone(), vec![value.clone()])),
                }
            }
        }
    }
    for (name, head, values) in lists {
        out.properties.push(Property {
            name,
            line: format!("{head}:{}", values.join(",")),
        });
    }
}

/// Elements as the lines a person reads: property lines, list values rejoined, children
/// serialized.
fn render_lines(elements: &[Element]) -> Vec<String> {
    let mut c = Component {
        name: String::new(),
        properties: Vec::new(),
        children: Vec::new(),
    };
    render(elements, &mut c);
    let mut out: Vec<String> = c.properties.into_iter().map(|p| p.line).collect();
    out.extend(
        c.children
            .iter()
            .map(|child| child.serialize().trim_end().to_owned()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(summary: &str, location: &str, extra: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//T//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261123T100000Z\r\nSUMMARY:{summary}\r\nLOCATION:{location}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    fn hash(text: &str) -> String {
        Item::parse(text.as_bytes().to_vec()).unwrap().hash
    }

    fn merged(base: &str, a: &str, b: &str) -> String {
        match merge(base, a, b) {
            Merge::Merged(text) => text,
            other => panic!("{other:?}"),
        }
    }

    /// Merged in both orders: the same item either way.
    fn merged_both_ways(base: &str, a: &str, b: &str) -> String {
        let one = merged(base, a, b);
        let other = merged(base, b, a);
        assert_eq!(hash(&one), hash(&other), "{one}\n---\n{other}");
        one
    }

    fn lines(text: &str, name: &str) -> Vec<String> {
        crate::sync::item::unfold(text)
            .into_iter()
            .filter(|l| l.starts_with(name))
            .collect()
    }

    #[test]
    fn sides_that_renamed_the_uid_differently_conflict_rather_than_merge_into_two() {
        let base = event("Meeting", "Room 1", "");
        let a = base.replace("UID:u1", "UID:u1-a");
        let b = base.replace("UID:u1", "UID:u1-b");
        match merge(&base, &a, &b) {
            Merge::Conflict(reasons) => {
                assert!(
                    reasons.iter().any(|r| r.contains("not be readable")),
                    "{reasons:?}"
                );
            }
            Merge::Merged(text) => panic!("merged into\n{text}"),
        }
    }

    #[test]
    fn disjoint_edits_merge_in_either_order() {
        let base = event("Meeting", "Room 1", "");
        let a = event("Planning", "Room 1", "");
        let b = event("Meeting", "Room 2", "");
        let text = merged_both_ways(&base, &a, &b);
        assert_eq!(hash(&text), hash(&event("Planning", "Room 2", "")));
    }

    #[test]
    fn the_same_property_edited_differently_is_a_conflict_naming_it() {
        let base = event("Meeting", "Room 1", "");
        let a = event("Planning", "Room 1", "");
        let b = event("Review", "Room 1", "");
        assert_eq!(
            merge(&base, &a, &b),
            Merge::Conflict(vec!["VEVENT SUMMARY".to_owned()])
        );
    }

    #[test]
    fn equal_edits_are_no_conflict() {
        let base = event("Meeting", "Room 1", "");
        let a = event("Planning", "Room 2", "");
        let text = merged(&base, &a, &a);
        assert_eq!(hash(&text), hash(&a));
    }

    #[test]
    fn an_alarm_added_on_one_side_and_a_title_on_the_other_merge() {
        let alarm = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n";
        let base = event("Meeting", "Room 1", "");
        let a = event("Meeting", "Room 1", alarm);
        let b = event("Planning", "Room 1", "");
        let text = merged_both_ways(&base, &a, &b);
        assert_eq!(hash(&text), hash(&event("Planning", "Room 1", alarm)));
    }

    /// A weekly meeting in Berlin time with one moved occurrence, as Thunderbird writes it.
    fn recurring(master: &str, exdates: &str, overrides: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:weekly@example.com\r\nDTSTAMP:20261101T000000Z\r\nSEQUENCE:0\r\nDTSTART;TZID=Europe/Berlin:20261102T100000\r\nDTEND;TZID=Europe/Berlin:20261102T110000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\n{exdates}SUMMARY:{master}\r\nEND:VEVENT\r\n{overrides}END:VCALENDAR\r\n"
        )
    }

    fn moved(summary: &str, start: &str) -> String {
        format!(
            "BEGIN:VEVENT\r\nUID:weekly@example.com\r\nDTSTAMP:20261101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261116T100000\r\nDTSTART;TZID=Europe/Berlin:{start}\r\nDTEND;TZID=Europe/Berlin:20261116T120000\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n"
        )
    }

    #[test]
    fn an_overridden_occurrence_and_the_series_are_separate_units() {
        let base = recurring("Standup", "", &moved("Standup (moved)", "20261116T110000"));
        // A retitles the series; B moves the overridden occurrence once more.
        let a = recurring(
            "Daily sync",
            "",
            &moved("Standup (moved)", "20261116T110000"),
        );
        let b = recurring("Standup", "", &moved("Standup (moved)", "20261116T113000"));
        let text = merged_both_ways(&base, &a, &b);
        let want = recurring(
            "Daily sync",
            "",
            &moved("Standup (moved)", "20261116T113000"),
        );
        assert_eq!(hash(&text), hash(&want), "{text}");
        // One time zone, two units with the same UID.
        assert_eq!(lines(&text, "BEGIN:VTIMEZONE").len(), 1);
        assert_eq!(lines(&text, "UID:weekly@example.com").len(), 2);
    }

    #[test]
    fn the_same_occurrence_edited_on_both_sides_conflicts_on_that_occurrence_only() {
        let base = recurring("Standup", "", &moved("Standup (moved)", "20261116T110000"));
        let a = recurring("Standup", "", &moved("Moved by A", "20261116T110000"));
        let b = recurring("Retitled", "", &moved("Moved by B", "20261116T110000"));
        assert_eq!(
            merge(&base, &a, &b),
            Merge::Conflict(vec!["VEVENT@20261116T100000 SUMMARY".to_owned()])
        );
    }

    #[test]
    fn an_occurrence_override_added_on_one_side_and_a_cancelled_date_on_the_other() {
        let base = recurring("Standup", "", "");
        let a = recurring("Standup", "", &moved("Standup (moved)", "20261116T110000"));
        let b = recurring(
            "Standup",
            "EXDATE;TZID=Europe/Berlin:20261123T100000\r\n",
            "",
        );
        let text = merged_both_ways(&base, &a, &b);
        assert!(text.contains("RECURRENCE-ID;TZID=Europe/Berlin:20261116T100000"));
        assert_eq!(
            lines(&text, "EXDATE"),
            ["EXDATE;TZID=Europe/Berlin:20261123T100000"]
        );
    }

    #[test]
    fn cancelled_dates_added_on_both_sides_all_stay_cancelled() {
        let base = recurring(
            "Standup",
            "EXDATE;TZID=Europe/Berlin:20261109T100000\r\n",
            "",
        );
        let a = recurring(
            "Standup",
            "EXDATE;TZID=Europe/Berlin:20261109T100000,20261123T100000\r\n",
            "",
        );
        let b = recurring(
            "Standup",
            "EXDATE;TZID=Europe/Berlin:20261109T100000\r\nEXDATE;TZID=Europe/Berlin:20261130T100000\r\n",
            "",
        );
        let text = merged_both_ways(&base, &a, &b);
        let exdates = lines(&text, "EXDATE").join(",");
        for day in ["20261109", "20261123", "20261130"] {
            assert!(exdates.contains(day), "{day} missing: {exdates}");
        }
    }

    #[test]
    fn time_zone_definitions_never_ask_the_person() {
        let base = recurring("Standup", "", "");
        let a = base.replace("TZNAME:CEST", "TZNAME:MESZ");
        let b = base
            .replace("TZNAME:CEST", "TZNAME:Central European Summer Time")
            .replace("SUMMARY:Standup", "SUMMARY:Daily");
        let text = merged_both_ways(&base, &a, &b);
        assert_eq!(lines(&text, "BEGIN:VTIMEZONE").len(), 1);
        assert!(text.contains("SUMMARY:Daily"));
    }

    #[test]
    fn an_occurrence_is_the_same_whichever_zone_names_it() {
        let base = recurring("Standup", "", &moved("Standup (moved)", "20261116T110000"));
        // The server rewrote the override's RECURRENCE-ID in UTC; the folder retitled it.
        let a = base.replace(
            "RECURRENCE-ID;TZID=Europe/Berlin:20261116T100000",
            "RECURRENCE-ID:20261116T090000Z",
        );
        let b = recurring(
            "Standup",
            "",
            &moved("Moved and renamed", "20261116T110000"),
        );
        let text = merged_both_ways(&base, &a, &b);
        assert_eq!(lines(&text, "RECURRENCE-ID").len(), 1, "{text}");
        assert!(text.contains("SUMMARY:Moved and renamed"), "{text}");
    }

    #[test]
    fn an_occurrence_deleted_on_one_side_and_untouched_on_the_other_is_gone() {
        let base = recurring("Standup", "", &moved("Standup (moved)", "20261116T110000"));
        let a = recurring("Standup", "", "");
        let b = recurring("Retitled", "", &moved("Standup (moved)", "20261116T110000"));
        let text = merged_both_ways(&base, &a, &b);
        assert!(!text.contains("RECURRENCE-ID"), "{text}");
        assert!(text.contains("SUMMARY:Retitled"));
        // Deleted there, edited here: the person decides.
        let c = recurring("Standup", "", &moved("Edited", "20261116T110000"));
        assert_eq!(
            merge(&base, &a, &c),
            Merge::Conflict(vec!["VEVENT@20261116T100000".to_owned()])
        );
    }

    fn meeting(attendees: &str, sequence: u32, extra: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//EN\r\nBEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20261101T000000Z\r\nLAST-MODIFIED:20261101T000000Z\r\nSEQUENCE:{sequence}\r\nDTSTART:20261201T090000Z\r\nSUMMARY:Review\r\nORGANIZER;CN=Ada:mailto:ada@example.com\r\n{attendees}{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    const GRACE: &str =
        "ATTENDEE;CN=Grace Hopper;PARTSTAT=NEEDS-ACTION:mailto:grace@example.com\r\n";
    const GRACE_YES: &str =
        "ATTENDEE;PARTSTAT=ACCEPTED;CN=Grace Hopper:MAILTO:grace@example.com\r\n";
    const GRACE_NO: &str =
        "ATTENDEE;CN=Grace Hopper;PARTSTAT=DECLINED:mailto:grace@example.com\r\n";
    const ALAN: &str = "ATTENDEE;CN=Alan Turing:mailto:alan@example.com\r\n";
    const EDSGER: &str = "ATTENDEE;CN=Edsger Dijkstra:mailto:edsger@example.com\r\n";

    #[test]
    fn attendees_merge_as_a_set_with_their_replies() {
        let base = meeting(GRACE, 0, "");
        let a = meeting(&format!("{GRACE}{ALAN}"), 1, "");
        let b = meeting(&format!("{GRACE_YES}{EDSGER}"), 1, "");
        let text = merged_both_ways(&base, &a, &b);
        let attendees = lines(&text, "ATTENDEE");
        assert_eq!(attendees.len(), 3, "{attendees:?}");
        assert!(attendees.iter().any(|l| l.contains("PARTSTAT=ACCEPTED")));
        // Replies that disagree need the person.
        let c = meeting(GRACE_NO, 0, "");
        assert_eq!(
            merge(&base, &b, &c),
            Merge::Conflict(vec!["VEVENT ATTENDEE".to_owned()])
        );
    }

    #[test]
    fn sequence_and_last_modified_are_set_on_a_new_result() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T09:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let base = meeting(GRACE, 3, "");
        let a = meeting(&format!("{GRACE}{ALAN}"), 4, "");
        let b = meeting(GRACE, 5, "LOCATION:Room 7\r\n");
        let Merge::Merged(text) = merge_at(&base, &a, &b, now) else {
            panic!()
        };
        assert_eq!(lines(&text, "SEQUENCE"), ["SEQUENCE:6"]);
        assert_eq!(
            lines(&text, "LAST-MODIFIED"),
            ["LAST-MODIFIED:20261122T093000Z"]
        );
        assert_eq!(lines(&text, "DTSTAMP").len(), 1);
        // A result equal to one side keeps the higher sequence and that side's stamp.
        let c = meeting(&format!("{GRACE}{ALAN}"), 5, "");
        let Merge::Merged(text) = merge_at(&base, &a, &c, now) else {
            panic!()
        };
        assert_eq!(lines(&text, "SEQUENCE"), ["SEQUENCE:5"]);
        assert_eq!(
            lines(&text, "LAST-MODIFIED"),
            ["LAST-MODIFIED:20261101T000000Z"]
        );
    }

    #[test]
    fn categories_added_on_both_sides_are_one_list() {
        let base = event("Meeting", "Room 1", "CATEGORIES:Family\r\n");
        let a = event("Meeting", "Room 1", "CATEGORIES:Family,Work\r\n");
        let b = event("Meeting", "Room 1", "CATEGORIES:Family,Sport\r\n");
        let text = merged_both_ways(&base, &a, &b);
        assert_eq!(lines(&text, "CATEGORIES"), ["CATEGORIES:Family,Sport,Work"]);
    }

    fn card3(emails: &str, tel: &str, extra: &str) -> String {
        format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iOS 17.0//EN\r\nUID:c1\r\nN:Lovelace;Ada;;;\r\nFN:Ada Lovelace\r\n{emails}TEL;TYPE=CELL:{tel}\r\n{extra}REV:2026-11-01T00:00:00Z\r\nEND:VCARD\r\n"
        )
    }

    #[test]
    fn emails_added_on_both_sides_survive_and_a_removed_one_stays_removed() {
        let home = "EMAIL;TYPE=INTERNET;TYPE=HOME:ada@home.example\r\n";
        let work = "EMAIL;TYPE=INTERNET;TYPE=WORK:ada@work.example\r\n";
        let old = "EMAIL;TYPE=INTERNET:ada@old.example\r\n";
        let new = "EMAIL;TYPE=INTERNET:ada@new.example\r\n";
        let base = card3(&format!("{home}{old}"), "+44 20 7946 0000", "");
        // A removes the old address and adds a work one; B adds another and a note.
        let a = card3(&format!("{home}{work}"), "+44 20 7946 0000", "");
        let b = card3(
            &format!("{home}{old}{new}"),
            "+44 20 7946 0000",
            "NOTE:Met at the conference\r\n",
        );
        let text = merged_both_ways(&base, &a, &b);
        let emails = lines(&text, "EMAIL").join("\n");
        for want in ["ada@home", "ada@work", "ada@new"] {
            assert!(emails.contains(want), "{want} missing: {emails}");
        }
        assert!(!emails.contains("ada@old"), "{emails}");
        assert!(text.contains("NOTE:Met at the conference"));
    }

    #[test]
    fn one_address_changed_to_two_different_ones_is_a_conflict() {
        let old = "item1.EMAIL;TYPE=INTERNET:ada@old.example\r\nitem1.X-ABLabel:Work mail\r\n";
        let base = card3(old, "+44 20 7946 0000", "");
        let a = card3(
            &old.replace("ada@old", "ada@server"),
            "+44 20 7946 0000",
            "",
        );
        let b = card3(
            &old.replace("ada@old", "ada@laptop"),
            "+44 20 7946 0000",
            "",
        );
        for (x, y) in [(&a, &b), (&b, &a)] {
            match merge(&base, x, y) {
                Merge::Conflict(fields) => {
                    assert!(fields.iter().any(|f| f.contains("EMAIL")), "{fields:?}");
                }
                Merge::Merged(text) => panic!("merged into\n{text}"),
            }
        }
        // The same change on both sides, or a change on one, still merges.
        assert_eq!(hash(&merged_both_ways(&base, &a, &a)), hash(&a));
        assert_eq!(hash(&merged_both_ways(&base, &a, &base)), hash(&a));
    }

    #[test]
    fn one_address_added_on_both_sides_with_different_labels_is_kept_once() {
        let base = card3("", "+1 555 0100", "");
        let a = card3("EMAIL;TYPE=HOME:ada@example.com\r\n", "+1 555 0100", "");
        let b = card3("EMAIL;TYPE=WORK:Ada@Example.com\r\n", "+1 555 0100", "");
        let text = merged_both_ways(&base, &a, &b);
        assert_eq!(lines(&text, "EMAIL").len(), 1, "{text}");
    }

    #[test]
    fn a_phone_number_respelled_on_one_side_is_the_same_number() {
        let base = card3("", "+44 20 7946 0000", "");
        let a = card3("", "+442079460000", "");
        let b = card3("", "+44 20 7946 0000", "ORG:Analytical Engines Ltd\r\n");
        let text = merged_both_ways(&base, &a, &b);
        assert_eq!(lines(&text, "TEL"), ["TEL;TYPE=CELL:+442079460000"]);
    }

    #[test]
    fn vcard4_translations_are_separate_fields() {
        let card = |en: &str, de: &str| {
            format!(
                "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:c4\r\nFN;LANGUAGE=en;ALTID=1:{en}\r\nFN;LANGUAGE=de;ALTID=1:{de}\r\nKIND:individual\r\nREV:20261101T000000Z\r\nEND:VCARD\r\n"
            )
        };
        let base = card("Office", "Buero");
        let a = card("Head office", "Buero");
        let b = card("Office", "Hauptbuero");
        let text = merged_both_ways(&base, &a, &b);
        assert_eq!(hash(&text), hash(&card("Head office", "Hauptbuero")));
        let a2 = card("Main office", "Buero");
        assert_eq!(
            merge(&base, &a, &a2),
            Merge::Conflict(vec!["VCARD FN;ALTID=1;LANGUAGE=en".to_owned()])
        );
    }

    #[test]
    fn a_folded_photo_changed_on_one_side_merges_with_an_email_on_the_other() {
        let photo = |fill: char| {
            let data: String = std::iter::repeat_n(fill, 300).collect();
            // Folded at 75 octets as clients write it.
            let line = format!("PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRg{data}");
            let mut folded = String::new();
            let mut rest = line.as_str();
            while rest.len() > 75 {
                folded.push_str(&rest[..75]);
                folded.push_str("\r\n ");
                rest = &rest[75..];
            }
            folded.push_str(rest);
            folded.push_str("\r\n");
            folded
        };
        let base = card3("", "+1 555 0100", &photo('A'));
        let a = card3("", "+1 555 0100", &photo('B'));
        let b = card3("EMAIL:ada@example.com\r\n", "+1 555 0100", &photo('A'));
        let text = merged_both_ways(&base, &a, &b);
        assert!(text.lines().all(|l| l.len() <= 75), "{text}");
        let merged = Component::parse(&text).unwrap();
        let value = merged.value_of("PHOTO").unwrap();
        assert!(value.ends_with(&"B".repeat(300)), "{value}");
        assert_eq!(merged.value_of("EMAIL"), Some("ada@example.com"));
    }

    #[test]
    fn fields_line_up_base_a_and_b_and_picks_build_the_item() {
        let base = event("Meeting", "Room 1", "");
        let a = event("Planning", "Room 1", "");
        let b = event("Review", "Room 2", "");
        let analysis = Analysis::new(Some(&base), Some(&a), Some(&b)).unwrap();
        let fields = analysis.fields();
        let summary = fields.iter().find(|f| f.key == "VEVENT SUMMARY").unwrap();
        assert_eq!(
            summary.base.as_deref(),
            Some(&["SUMMARY:Meeting".to_owned()][..])
        );
        assert_eq!(
            summary.a.as_deref(),
            Some(&["SUMMARY:Planning".to_owned()][..])
        );
        assert!(summary.differs && summary.conflict);
        let location = fields.iter().find(|f| f.key == "VEVENT LOCATION").unwrap();
        assert!(location.differs && !location.conflict);
        let now = Utc::now();
        let none = analysis.build(&BTreeMap::new(), now);
        assert_eq!(none.unchosen, ["VEVENT SUMMARY"]);
        let picks: BTreeMap<String, Side> = [("VEVENT SUMMARY".to_owned(), Side::B)].into();
        let built = analysis.build(&picks, now);
        assert!(built.unchosen.is_empty());
        assert_eq!(hash(&built.content), hash(&event("Review", "Room 2", "")));
        // A pick may also undo the merge's choice for a field.
        let picks: BTreeMap<String, Side> = [
            ("VEVENT SUMMARY".to_owned(), Side::A),
            ("VEVENT LOCATION".to_owned(), Side::A),
        ]
        .into();
        assert_eq!(hash(&analysis.build(&picks, now).content), hash(&a));
    }

    /// A base event with three single fields, attendees and categories; the edits of each
    /// side touch fields the other leaves alone.
    fn generated(fields: &[String; 3], attendees: &[usize], categories: &[usize]) -> String {
        let mut extra = String::new();
        for i in attendees {
            extra.push_str(&format!("ATTENDEE;CN=P{i}:mailto:p{i}@example.com\r\n"));
        }
        if !categories.is_empty() {
            let names: Vec<String> = categories.iter().map(|i| format!("C{i}")).collect();
            extra.push_str(&format!("CATEGORIES:{}\r\n", names.join(",")));
        }
        extra.push_str(&format!("DESCRIPTION:{}\r\n", fields[2]));
        event(&fields[0], &fields[1], &extra)
    }

    /// A vCard 4 with a name, a note and sets of addresses and numbers.
    fn contact(name: &str, note: &str, emails: &[usize], phones: &[usize]) -> String {
        let mut out =
            format!("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:p\r\nFN:{name}\r\nNOTE:{note}\r\n");
        for i in emails {
            out.push_str(&format!("EMAIL;TYPE=work:p{i}@example.com\r\n"));
        }
        for i in phones {
            out.push_str(&format!("TEL;VALUE=uri:tel:+1-555-01{i:02}-{i:03}\r\n"));
        }
        out.push_str("REV:20261101T000000Z\r\nEND:VCARD\r\n");
        out
    }

    proptest::proptest! {
        #[test]
        fn disjoint_contact_edits_merge_the_same_in_either_order(
            name_owner in 0u8..3,
            note_owner in 0u8..3,
            email_owners in proptest::collection::vec(0u8..3, 6),
            phone_owners in proptest::collection::vec(0u8..3, 6),
        ) {
            // Elements 0..3 are in the base, each removed by nobody, A or B; elements 3..6
            // are added by A or B (or nobody).
            let side = |who: u8| {
                let pick = |owners: &[u8]| -> Vec<usize> {
                    let mut out: Vec<usize> = (0..3).filter(|i| owners[*i] != who).collect();
                    out.extend((3..6).filter(|i| owners[*i] == who));
                    out
                };
                contact(
                    if name_owner == who { "Ada King" } else { "Ada" },
                    if note_owner == who { "edited" } else { "note" },
                    &pick(&email_owners),
                    &pick(&phone_owners),
                )
            };
            let base = contact("Ada", "note", &[0, 1, 2], &[0, 1, 2]);
            let (a, b) = (side(1), side(2));
            let (Merge::Merged(ab), Merge::Merged(ba)) = (merge(&base, &a, &b), merge(&base, &b, &a)) else {
                panic!("disjoint edits must merge:\n{a}\n{b}");
            };
            proptest::prop_assert_eq!(hash(&ab), hash(&ba));
            let want_of = |owners: &[u8]| -> Vec<usize> {
                let mut out: Vec<usize> = (0..3).filter(|i| owners[*i] == 0).collect();
                out.extend((3..6).filter(|i| owners[*i] != 0));
                out
            };
            let want = contact(
                if name_owner == 0 { "Ada" } else { "Ada King" },
                if note_owner == 0 { "note" } else { "edited" },
                &want_of(&email_owners),
                &want_of(&phone_owners),
            );
            proptest::prop_assert_eq!(hash(&ab), hash(&want), "{}", ab);
        }

        #[test]
        fn disjoint_edits_merge_the_same_in_either_order(
            owners in proptest::collection::vec(0u8..3, 3),
            values in proptest::collection::vec("[a-z ]{1,12}", 3),
            a_adds in proptest::collection::btree_set(10usize..15, 0..3),
            b_adds in proptest::collection::btree_set(20usize..25, 0..3),
            removals in proptest::collection::vec(0u8..3, 4),
            cats in proptest::collection::vec(0u8..3, 4),
        ) {
            let base_fields = ["Meeting".to_owned(), "Room 1".to_owned(), "Notes".to_owned()];
            let edit = |side: u8| -> [String; 3] {
                let mut f = base_fields.clone();
                for i in 0..3 {
                    if owners[i] == side {
                        f[i] = values[i].clone();
                    }
                }
                f
            };
            // Base attendees 0..4; each is removed by nobody, A or B.
            let keep = |side: u8, adds: &std::collections::BTreeSet<usize>| -> Vec<usize> {
                let mut out: Vec<usize> = (0..4).filter(|i| removals[*i] != side).collect();
                out.extend(adds.iter().copied());
                out
            };
            let categories = |side: u8| -> Vec<usize> {
                let mut out: Vec<usize> = (0..2).filter(|i| cats[*i] != side).collect();
                out.extend((2..4).filter(|i| cats[*i] == side).map(|i| i + side as usize * 10));
                out
            };
            let base = generated(&base_fields, &(0..4).collect::<Vec<_>>(), &[0, 1]);
            let a = generated(&edit(1), &keep(1, &a_adds), &categories(1));
            let b = generated(&edit(2), &keep(2, &b_adds), &categories(2));
            let (Merge::Merged(ab), Merge::Merged(ba)) = (merge(&base, &a, &b), merge(&base, &b, &a)) else {
                panic!("disjoint edits must merge:\n{a}\n{b}");
            };
            proptest::prop_assert_eq!(hash(&ab), hash(&ba));
            // Every edit of either side is in the result.
            let want_fields = [0, 1, 2].map(|i| match owners[i] {
                1 | 2 => values[i].clone(),
                _ => base_fields[i].clone(),
            });
            let mut want_attendees: Vec<usize> = (0..4).filter(|i| removals[*i] == 0).collect();
            want_attendees.extend(a_adds.iter().copied());
            want_attendees.extend(b_adds.iter().copied());
            let mut want_categories: Vec<usize> = (0..2).filter(|i| cats[*i] == 0).collect();
            want_categories.extend((2..4).filter(|i| cats[*i] != 0).map(|i| i + cats[i] as usize * 10));
            let want = generated(&want_fields, &want_attendees, &want_categories);
            let got = Component::parse(&ab).unwrap();
            let want = Component::parse(&want).unwrap();
            let set = |c: &Component, name: &str| -> BTreeSet<String> {
                c.children[0].properties.iter().filter(|p| p.name == name)
                    .flat_map(|p| split_list(p.value())).collect()
            };
            for name in ["SUMMARY", "LOCATION", "DESCRIPTION", "ATTENDEE", "CATEGORIES"] {
                proptest::prop_assert_eq!(set(&got, name), set(&want, name), "{}", name);
            }
        }

        /// Whatever the three texts, merging and analysing never panic; when all three are
        /// readable items, a merge is a readable item with the UID of one side.
        #[test]
        fn mangled_edits_never_panic_and_a_merge_of_items_is_an_item(
            cuts in proptest::collection::vec(0usize..400, 3),
            junks in proptest::collection::vec(
                "(BEGIN:VEVENT|END:VEVENT|BEGIN:VALARM|END:VALARM|UID:u[0-9]|RECURRENCE-ID:2026112[0-9]T100000Z|\
                 ATTENDEE;CN=\"A:B\":mailto:x@y|CATEGORIES:a\\,b,c|SUMMARY:[ -~]{0,6}|\
                 EXDATE:20261123T100000Z|SEQUENCE:[0-9x]|BEGIN:VCARD|END:VCARD|EMAIL:[a-z@]{0,4}|\
                 TEL;TYPE=cell:[0-9]{0,3}|N:[a-z;]{0,5}|FN:|PHOTO;ENCODING=b:[A-Za-z0-9+/=]{0,8}|\
                 ITEM1.EMAIL:q@r|\r\n|\n| |;|:|,){0,6}",
                3,
            ),
        ) {
            let base = if cuts[0] % 2 == 0 {
                event("Meeting", "Room 1", "ATTENDEE:mailto:a@x\r\nCATEGORIES:one,two\r\n")
            } else {
                contact("Ada", "note", &[0, 1], &[0])
            };
            let texts: Vec<String> = (0..3)
                .map(|i| {
                    let mut text = base.clone();
                    let mut at = cuts[i].min(text.len());
                    while !text.is_char_boundary(at) {
                        at -= 1;
                    }
                    text.insert_str(at, &junks[i]);
                    text
                })
                .collect();
            let now = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default();
            let result = merge_at(&texts[0], &texts[1], &texts[2], now);
            let _ = Analysis::new(Some(&texts[0]), None, Some(&texts[2])).map(|a| a.fields());
            let items: Vec<_> = texts.iter().map(|t| Item::parse(t.as_bytes().to_vec())).collect();
            if let (Merge::Merged(text), [Ok(_), Ok(a), Ok(b)]) = (&result, items.as_slice()) {
                let merged = Item::parse(text.as_bytes().to_vec());
                proptest::prop_assert!(merged.is_ok(), "{:?}\n{}", merged.err(), text);
                let merged = merged.map(|m| m.uid).unwrap_or_default();
                proptest::prop_assert!(merged == a.uid || merged == b.uid, "{} {} {}", merged, a.uid, b.uid);
            }
        }
    }
}
