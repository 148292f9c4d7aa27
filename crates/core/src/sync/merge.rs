//! A first property-level three-way merge of iCalendar and vCard against the stored base.
//! Components are matched by name, UID and RECURRENCE-ID (so an edited occurrence is its own
//! unit); inside one, properties are compared by name as a whole (all lines of that name) and
//! sub-components (VALARM) as a set. Disjoint edits merge; an edit of the same property on
//! both sides is a conflict naming the properties. The Conflicts issue deepens this.

use std::collections::BTreeMap;

use super::item::{Component, IGNORED_PROPERTIES};

/// The result of merging base, A and B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Both sides' edits, combined, as iCalendar/vCard text (CRLF, folded).
    Merged(String),
    /// The properties both sides changed differently (e.g. "VEVENT SUMMARY").
    Conflict(Vec<String>),
}

/// Merges the edits A and B made to `base`. Text that cannot be read is a conflict.
pub fn merge(base: &str, a: &str, b: &str) -> Merge {
    let (Ok(base), Ok(a), Ok(b)) = (
        Component::parse(base),
        Component::parse(a),
        Component::parse(b),
    ) else {
        return Merge::Conflict(vec!["(unreadable content)".to_owned()]);
    };
    if a.name != b.name || a.name != base.name {
        return Merge::Conflict(vec![format!("{} / {}", a.name, b.name)]);
    }
    let mut conflicts = Vec::new();
    let merged = if a.name == "VCALENDAR" {
        merge_calendar(&base, &a, &b, &mut conflicts)
    } else {
        merge_unit(Some(&base), &a, &b, &a.name, &mut conflicts)
    };
    if conflicts.is_empty() {
        Merge::Merged(merged.serialize())
    } else {
        Merge::Conflict(conflicts)
    }
}

/// The key a calendar's sub-component is matched by across versions.
fn unit_key(c: &Component) -> String {
    let id = |name| c.value_of(name).unwrap_or("").trim();
    match c.name.as_str() {
        "VTIMEZONE" => format!("VTIMEZONE {}", id("TZID")),
        name => format!("{name} {} {}", id("UID"), id("RECURRENCE-ID")),
    }
}

fn merge_calendar(
    base: &Component,
    a: &Component,
    b: &Component,
    conflicts: &mut Vec<String>,
) -> Component {
    // The calendar's own properties (VERSION, CALSCALE, ...), children merged separately.
    let shell = |c: &Component| Component {
        name: c.name.clone(),
        properties: c.properties.clone(),
        children: Vec::new(),
    };
    let mut merged = merge_unit(
        Some(&shell(base)),
        &shell(a),
        &shell(b),
        "VCALENDAR",
        conflicts,
    );
    let index = |c: &Component| -> BTreeMap<String, Component> {
        c.children
            .iter()
            .map(|ch| (unit_key(ch), ch.clone()))
            .collect()
    };
    let (base_units, a_units, b_units) = (index(base), index(a), index(b));
    let mut keys: Vec<String> = a.children.iter().map(unit_key).collect();
    keys.extend(
        b.children
            .iter()
            .map(unit_key)
            .filter(|k| !a_units.contains_key(k)),
    );
    keys.dedup();
    for key in keys {
        let base_unit = base_units.get(&key);
        let unchanged =
            |unit: &Component| base_unit.is_some_and(|u| u.normalized() == unit.normalized());
        match (a_units.get(&key), b_units.get(&key)) {
            (Some(a), Some(b)) => {
                merged
                    .children
                    .push(merge_unit(base_unit, a, b, key.trim(), conflicts))
            }
            // Present on one side only: added there, or deleted on the other.
            (Some(only), None) | (None, Some(only)) => match base_unit {
                None => merged.children.push(only.clone()),
                Some(_) if unchanged(only) => {}
                Some(_) => conflicts.push(format!(
                    "{} (deleted on one side, edited on the other)",
                    key.trim()
                )),
            },
            (None, None) => {}
        }
    }
    merged
}

/// One side's view of a unit: each property name's lines (normalized, sorted), and the
/// sub-components as one pseudo-property per name.
fn facets(c: &Component) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &c.properties {
        if !IGNORED_PROPERTIES.contains(&p.name.as_str()) {
            out.entry(p.name.clone()).or_default().push(p.normalized());
        }
    }
    for child in &c.children {
        out.entry(format!("BEGIN:{}", child.name))
            .or_default()
            .push(child.normalized());
    }
    for lines in out.values_mut() {
        lines.sort_unstable();
    }
    out
}

fn merge_unit(
    base: Option<&Component>,
    a: &Component,
    b: &Component,
    label: &str,
    conflicts: &mut Vec<String>,
) -> Component {
    let empty = BTreeMap::new();
    let base_facets = base.map(facets);
    let base_facets = base_facets.as_ref().unwrap_or(&empty);
    let (a_facets, b_facets) = (facets(a), facets(b));
    let none: Vec<String> = Vec::new();
    // For each facet: which side's lines win.
    let mut take_b: Vec<&str> = Vec::new();
    let names = a_facets
        .keys()
        .chain(b_facets.keys().filter(|k| !a_facets.contains_key(*k)));
    for name in names {
        let get = |f: &'_ BTreeMap<String, Vec<String>>| f.get(name).unwrap_or(&none).clone();
        let (base_v, a_v, b_v) = (get(base_facets), get(&a_facets), get(&b_facets));
        if a_v == b_v || b_v == base_v {
            // A's lines stand.
        } else if a_v == base_v {
            take_b.push(name);
        } else {
            let shown = name.strip_prefix("BEGIN:").unwrap_or(name);
            conflicts.push(format!("{label}: {shown}").trim().to_owned());
        }
    }
    let from_b = |name: &str| take_b.contains(&name);
    let mut properties: Vec<_> = a
        .properties
        .iter()
        .filter(|p| !from_b(&p.name))
        .cloned()
        .collect();
    properties.extend(b.properties.iter().filter(|p| from_b(&p.name)).cloned());
    let mut children: Vec<_> = a
        .children
        .iter()
        .filter(|c| !from_b(&format!("BEGIN:{}", c.name)))
        .cloned()
        .collect();
    children.extend(
        b.children
            .iter()
            .filter(|c| from_b(&format!("BEGIN:{}", c.name)))
            .cloned(),
    );
    Component {
        name: a.name.clone(),
        properties,
        children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::item::Item;

    fn event(summary: &str, location: &str, extra: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//T//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261123T100000Z\r\nSUMMARY:{summary}\r\nLOCATION:{location}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    fn hash(text: &str) -> String {
        Item::parse(text.as_bytes().to_vec()).unwrap().hash
    }

    #[test]
    fn disjoint_edits_merge_in_either_order() {
        let base = event("Meeting", "Room 1", "");
        let a = event("Planning", "Room 1", "");
        let b = event("Meeting", "Room 2", "");
        let want = hash(&event("Planning", "Room 2", ""));
        for (x, y) in [(&a, &b), (&b, &a)] {
            match merge(&base, x, y) {
                Merge::Merged(text) => assert_eq!(hash(&text), want, "{text}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_same_property_edited_differently_is_a_conflict_naming_it() {
        let base = event("Meeting", "Room 1", "");
        let a = event("Planning", "Room 1", "");
        let b = event("Review", "Room 1", "");
        assert_eq!(
            merge(&base, &a, &b),
            Merge::Conflict(vec!["VEVENT u1: SUMMARY".to_owned()])
        );
    }

    #[test]
    fn an_alarm_added_on_one_side_and_a_title_on_the_other_merge() {
        let alarm = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n";
        let base = event("Meeting", "Room 1", "");
        let a = event("Meeting", "Room 1", alarm);
        let b = event("Planning", "Room 1", "");
        let Merge::Merged(text) = merge(&base, &a, &b) else {
            panic!()
        };
        assert_eq!(hash(&text), hash(&event("Planning", "Room 1", alarm)));
    }

    #[test]
    fn a_new_occurrence_override_on_one_side_is_kept() {
        let base = event("Meeting", "Room 1", "RRULE:FREQ=WEEKLY\r\n");
        let a = base.replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:u1\r\nRECURRENCE-ID:20261130T100000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
        let b = event("Weekly", "Room 1", "RRULE:FREQ=WEEKLY\r\n");
        let Merge::Merged(text) = merge(&base, &a, &b) else {
            panic!()
        };
        assert!(
            text.contains("SUMMARY:Moved") && text.contains("SUMMARY:Weekly"),
            "{text}"
        );
    }

    #[test]
    fn vcards_merge_by_property() {
        let card = |email: &str, tel: &str| {
            format!(
                "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Ada\r\nEMAIL:{email}\r\nTEL:{tel}\r\nEND:VCARD\r\n"
            )
        };
        let Merge::Merged(text) = merge(&card("a@x", "1"), &card("b@x", "1"), &card("a@x", "2"))
        else {
            panic!()
        };
        assert_eq!(hash(&text), hash(&card("b@x", "2")));
    }
}
