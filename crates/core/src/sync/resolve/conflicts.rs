//! The conflict inbox: open conflicts in a person's words (title, time, place; name, emails),
//! one conflict side by side with its base, and resolution by keeping A, B or both.
//!
//! A resolution never overwrites blindly: each side must still be at the version recorded with
//! the conflict (checked by a fetch, then enforced by the conditional write); if one moved, the
//! conflict is refreshed with what the sides hold now and shown again. Losing versions go to
//! `item_history` before the write. Resolving is idempotent: repeated after a crash, it finds
//! its own writes and completes or refreshes, never duplicates.

use rusqlite::{Connection, TransactionBehavior};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};

use concord_durable::{Ctx, StepError, Workflow};
use serde::{Deserialize, Serialize};

use crate::Concord;
use crate::sync::SyncError;
use crate::sync::item::{
    Component, IGNORED_PROPERTIES, Item, Property, decode, sha256_hex, unescape_text,
};
use crate::sync::merge::{Analysis, FieldLines, Merge, head_of, merge, params};
use crate::sync::run::{Outcome, PairSync, run_here};
use crate::sync::state::conflicts::OpenConflict;
use crate::sync::state::{self, Conflict, ConflictSide, Side, Synced, SyncedSide};
use crate::sync::storage::{CredentialSource, Fetched, Storage, StorageError};

/// Hex digits of the kept side's content hash appended to the UID of a "keep both" copy; the
/// copy's UID is derived, not random, so a repeated resolution finds the copy it made.
pub const COPY_UID_HASH_CHARS: usize = 12;

/// Why a conflict could not be listed, shown or resolved. Storage and database failures are
/// [`SyncError`]s, classified where sync classifies them.
#[derive(Debug, thiserror::Error)]
pub enum ConflictError {
    #[error("there is no open conflict {0} (see `concord conflicts list`)")]
    NoSuchConflict(i64),
    #[error("conflict {id}: {reason}")]
    Unresolvable { id: i64, reason: String },
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("resolving conflict {id}: {reason}")]
    Run { id: i64, reason: String },
}

via_sync_error!(ConflictError);

impl ConflictError {
    /// Classified once for the durable engine, as sync errors are.
    fn step_error(self) -> StepError {
        let message = self.to_string();
        match self {
            ConflictError::NoSuchConflict(_) | ConflictError::Unresolvable { .. } => {
                StepError::permanent(message)
            }
            ConflictError::Run { .. } => StepError::transient(message),
            ConflictError::Sync(err) => err.into(),
        }
    }
}

/// The durable workflow kind of a resolution.
pub const RESOLVE_WORKFLOW: &str = "resolve-conflict";

/// [`resolve`] as a durable workflow: one checkpointed step, safe to repeat because
/// [`resolve`] is idempotent. Input: `{"id": ID, "choice": {"keep": "a"}}` or
/// `{"id": ID, "choice": {"pick": {"VEVENT SUMMARY": "b"}}}` (runs started before per-field
/// choices carry `"keep": "a"|"b"|"both"` instead of `choice`).
pub fn workflow(concord: Concord, credentials: Arc<dyn CredentialSource>) -> Workflow {
    Workflow::new(RESOLVE_WORKFLOW, move |ctx: Ctx| {
        let concord = concord.clone();
        let credentials = credentials.clone();
        async move {
            #[derive(Deserialize)]
            struct Input {
                id: i64,
                #[serde(default)]
                choice: Option<Choice>,
                #[serde(default)]
                keep: Option<Keep>,
            }
            let input: Input = ctx.input_as()?;
            let choice = match (input.choice, input.keep) {
                (Some(choice), _) => choice,
                (None, Some(keep)) => Choice::Keep(keep),
                (None, None) => {
                    return Err(StepError::permanent(format!(
                        "conflict {}: the resolution names no choice",
                        input.id
                    )));
                }
            };
            let resolution = ctx
                .step("resolve", || async {
                    resolve(&concord, input.id, choice.clone(), credentials.as_ref())
                        .await
                        .map_err(ConflictError::step_error)
                })
                .await?;
            serde_json::to_value(resolution).map_err(|err| StepError::permanent(err.to_string()))
        }
    })
}

/// Resolves conflict `id` as a durable run executed by this process, and waits for it. A run
/// a killed process left unfinished is resumed by the next resolution of the same conflict.
pub async fn resolve_durably(
    concord: &Concord,
    id: i64,
    choice: Choice,
    credentials: Arc<dyn CredentialSource>,
) -> Result<Resolution, ConflictError> {
    // A missing conflict or an impossible choice is said plainly, not as a failed run.
    let row = load(&concord.database().connect()?, id)?;
    if let Choice::Pick(picks) = &choice {
        let analysis = row.analysis_for_pick()?;
        let picks = checked_picks(&analysis, id, picks)?;
        let unchosen = analysis.build(&picks, Utc::now()).unchosen;
        if !unchosen.is_empty() {
            return Err(unchosen_error(id, &unchosen));
        }
    }
    let input = serde_json::json!({ "id": id, "choice": choice });
    let key = format!("{RESOLVE_WORKFLOW}:{id}");
    let failed = |reason| ConflictError::Run { id, reason };
    let resolve = workflow(concord.clone(), credentials);
    match run_here(concord, RESOLVE_WORKFLOW, resolve, &key, input).await? {
        Outcome::Completed(result) => {
            serde_json::from_value(result).map_err(|err| failed(err.to_string()))
        }
        Outcome::Failed(reason) | Outcome::Unfinished(reason) => Err(failed(reason)),
    }
}

/// Which version the person keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    A,
    B,
    /// A stays under the UID; B becomes a copy with a new UID, on both sides.
    Both,
}

/// How the person resolves a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// `{"keep":"a"}`, `{"keep":"b"}`, `{"keep":"both"}`.
    Keep(Keep),
    /// `{"pick":{"VEVENT SUMMARY":"a","VEVENT LOCATION":"b"}}`: the named fields from the
    /// named side; every other field as the merge has it. Each conflicting field must be named.
    Pick(BTreeMap<String, Side>),
}

/// What an item says, in a person's words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Details {
    /// Event or task title, or the contact's name.
    pub title: Option<String>,
    /// Start (or due) date and time, as "2026-12-01 10:00 UTC".
    pub when: Option<String>,
    /// The start for a display in the local zone: RFC 3339 in UTC ("2026-12-01T10:00:00Z"),
    /// "YYYY-MM-DD" for an all-day item, or without offset for a floating time.
    pub starts_at: Option<String>,
    pub location: Option<String>,
    /// "Ada Lovelace <ada@example.com>", or the address alone.
    pub attendees: Vec<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
}

/// One field of a conflicting item, side by side with its base, for a per-field choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// The key a [`Choice::Pick`] names: "VEVENT SUMMARY", "VCARD EMAIL",
    /// "VEVENT@20261130T100000Z SUMMARY" (one occurrence of a recurring event).
    pub name: String,
    /// In a person's words: "Title", "Emails", "Title (occurrence 2026-11-30 10:00 UTC)".
    pub label: String,
    /// Readable value(s), one per line; None: absent in that version.
    pub base: Option<String>,
    pub a: Option<String>,
    pub b: Option<String>,
    /// A and B differ here.
    pub differs: bool,
    /// Both sides changed it differently: a per-field resolution must name it.
    pub conflict: bool,
}

/// The item a per-field choice would produce, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub content: String,
    pub details: Details,
    /// Conflicting fields the choice does not name yet (A's version is shown for them);
    /// resolving needs them named.
    pub unchosen: Vec<String>,
}

/// One version of a conflicting item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub href: Option<String>,
    pub etag: Option<String>,
    pub details: Details,
    pub content: String,
}

/// An open conflict, as the inbox lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictSummary {
    pub id: i64,
    pub pair: String,
    pub uid: String,
    /// "both-edited", "edit-delete" or "both-created".
    pub kind: String,
    pub summary: String,
    /// The properties both sides changed, as recorded.
    pub properties: Vec<String>,
    /// A's version, else B's (the side that still has the item).
    pub details: Details,
    pub updated_at_ms: i64,
}

/// One conflict with base and both sides, and the properties where A and B differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictDetail {
    #[serde(flatten)]
    pub summary: ConflictSummary,
    pub base: Option<Version>,
    /// None: deleted on that side.
    pub a: Option<Version>,
    pub b: Option<Version>,
    /// "VEVENT SUMMARY"-style names of what A and B hold differently.
    pub differing: Vec<String>,
    /// Every field side by side (base, A, B), in the item's order.
    pub fields: Vec<Field>,
}

/// What a resolution did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Resolution {
    /// Both sides now hold the kept version; the conflict is closed.
    Resolved {
        uid: String,
        kept: Keep,
        /// The UID of B's copy, for [`Keep::Both`].
        copy_uid: Option<String>,
    },
    /// Both sides now hold the item made of the picked fields; the conflict is closed.
    Picked {
        uid: String,
        picked: BTreeMap<String, Side>,
    },
    /// A side changed since the conflict was recorded: nothing was overwritten, and the
    /// conflict now shows what the sides hold (closed, when they came to agree).
    Refreshed { uid: String, closed: bool },
}

// What the inbox reads of a stored conflict, beside `state::conflicts` where it is kept.
impl OpenConflict {
    fn side(&self, side: Side) -> Option<&ConflictSide> {
        match side {
            Side::A => self.conflict.a.as_ref(),
            Side::B => self.conflict.b.as_ref(),
        }
    }

    /// Base, A and B lined up for a per-field choice; both sides must hold the item.
    fn analysis_for_pick(&self) -> Result<Analysis, ConflictError> {
        let (Some(a), Some(b)) = (self.side(Side::A), self.side(Side::B)) else {
            return Err(ConflictError::Unresolvable {
                id: self.id,
                reason: "it is deleted on one side, so there are no fields to choose between; \
                         keep a or b instead"
                    .to_owned(),
            });
        };
        let base = self.conflict.base.as_deref().map(decode);
        Analysis::new(
            base.as_deref(),
            Some(&decode(&a.content)),
            Some(&decode(&b.content)),
        )
        .map_err(|reason| ConflictError::Unresolvable {
            id: self.id,
            reason: format!("its versions cannot be compared field by field {reason}"),
        })
    }

    fn summary(&self) -> ConflictSummary {
        let content = self
            .side(Side::A)
            .or(self.side(Side::B))
            .map(|s| s.content.as_slice())
            .or(self.conflict.base.as_deref());
        ConflictSummary {
            id: self.id,
            pair: self.pair.clone(),
            uid: self.conflict.uid.clone(),
            kind: self.conflict.kind.clone(),
            summary: self.conflict.summary.clone(),
            properties: self.conflict.properties.clone(),
            details: content.map(details).unwrap_or_default(),
            updated_at_ms: self.updated_at_ms,
        }
    }
}

fn load(conn: &Connection, id: i64) -> Result<OpenConflict, ConflictError> {
    state::conflicts::by_id(conn, id)?.ok_or(ConflictError::NoSuchConflict(id))
}

/// Every open conflict, oldest first.
pub fn list(concord: &Concord) -> Result<Vec<ConflictSummary>, ConflictError> {
    let conn = concord.database().connect()?;
    Ok(state::conflicts::all(&conn)?
        .iter()
        .map(OpenConflict::summary)
        .collect())
}

/// One conflict with its base, both sides and where they differ.
pub fn show(concord: &Concord, id: i64) -> Result<ConflictDetail, ConflictError> {
    let conn = concord.database().connect()?;
    let row = load(&conn, id)?;
    let version = |s: Option<&ConflictSide>| {
        s.map(|s| Version {
            href: Some(s.href.clone()),
            etag: Some(s.etag.clone()),
            details: details(&s.content),
            content: decode(&s.content),
        })
    };
    let text = |s: Option<&ConflictSide>| s.map(|s| decode(&s.content)).unwrap_or_default();
    Ok(ConflictDetail {
        summary: row.summary(),
        base: row.conflict.base.as_deref().map(|base| Version {
            href: None,
            etag: None,
            details: details(base),
            content: decode(base),
        }),
        a: version(row.side(Side::A)),
        b: version(row.side(Side::B)),
        differing: differing(&text(row.side(Side::A)), &text(row.side(Side::B))),
        fields: fields(&row),
    })
}

/// The item `picks` would produce from conflict `id` (fields not named: as merged), with
/// what it says; nothing is written.
pub fn preview(
    concord: &Concord,
    id: i64,
    picks: &BTreeMap<String, Side>,
) -> Result<Preview, ConflictError> {
    let row = load(&concord.database().connect()?, id)?;
    let analysis = row.analysis_for_pick()?;
    let picks = checked_picks(&analysis, id, picks)?;
    let built = analysis.build(&picks, Utc::now());
    Ok(Preview {
        details: details(built.content.as_bytes()),
        content: built.content,
        unchosen: built.unchosen,
    })
}

/// `picks` with each name as the field key it means: the key itself, any spelling of its
/// case, or a bare property ("SUMMARY") when one field alone has it.
fn checked_picks(
    analysis: &Analysis,
    id: i64,
    picks: &BTreeMap<String, Side>,
) -> Result<BTreeMap<String, Side>, ConflictError> {
    field_picks(analysis, picks).map_err(|reason| ConflictError::Unresolvable { id, reason })
}

/// [`checked_picks`] for any line-up; the error says what is wrong with the choice.
pub(crate) fn field_picks(
    analysis: &Analysis,
    picks: &BTreeMap<String, Side>,
) -> Result<BTreeMap<String, Side>, String> {
    let keys = analysis.keys();
    let mut out = BTreeMap::new();
    for (name, side) in picks {
        let wanted = name.trim().to_ascii_uppercase();
        let exact: Vec<&String> = keys
            .iter()
            .filter(|k| k.to_ascii_uppercase() == wanted)
            .collect();
        let by_property: Vec<&String> = keys
            .iter()
            .filter(|k| k.rsplit(' ').next() == Some(wanted.as_str()))
            .collect();
        let key = match (exact.as_slice(), by_property.as_slice()) {
            ([key], _) | ([], [key]) => (*key).clone(),
            ([], []) => {
                return Err(format!(
                    "it has no field {name:?}; its fields are {}",
                    keys.join(", ")
                ));
            }
            _ => {
                let names: Vec<&str> = by_property.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "{name:?} could mean {}; name one",
                    names.join(" or ")
                ));
            }
        };
        out.insert(key, *side);
    }
    Ok(out)
}

/// Properties only software reads: shown when they differ, not otherwise.
const TECHNICAL_PROPERTIES: &[&str] = &["UID", "VERSION", "CALSCALE", "RECURRENCE-ID"];

/// Every field of a conflict side by side. For an edit-delete conflict, the remaining side's
/// fields against the base, the deleted side absent throughout.
fn fields(row: &OpenConflict) -> Vec<Field> {
    let text = |side: Side| row.side(side).map(|s| decode(&s.content));
    let base = row.conflict.base.as_deref().map(decode);
    fields_of(
        base.as_deref(),
        text(Side::A).as_deref(),
        text(Side::B).as_deref(),
    )
}

/// The fields of base, A and B side by side, in a person's words.
pub(crate) fn fields_of(base: Option<&str>, a: Option<&str>, b: Option<&str>) -> Vec<Field> {
    let (analysis, deleted) = match (a, b) {
        (Some(_), Some(_)) => (Analysis::new(base, a, b), None),
        (Some(x), None) => (Analysis::new(base, Some(x), Some(x)), Some(Side::B)),
        (None, Some(x)) => (Analysis::new(base, Some(x), Some(x)), Some(Side::A)),
        (None, None) => return Vec::new(),
    };
    let Ok(analysis) = analysis else {
        return Vec::new();
    };
    analysis
        .fields()
        .into_iter()
        .filter(|f| {
            let technical = TECHNICAL_PROPERTIES.contains(&f.property.as_str())
                || f.component == "VCALENDAR"
                || f.component == "VTIMEZONE";
            !technical || f.differs || deleted.is_some() && f.base != f.a
        })
        .map(|mut f| {
            if let Some(side) = deleted {
                match side {
                    Side::A => f.a = None,
                    Side::B => f.b = None,
                }
                f.differs = f.a.is_some() || f.b.is_some();
                f.conflict = false;
            }
            let show = |lines: &Option<Vec<String>>| {
                lines.as_ref().map(|lines| {
                    lines
                        .iter()
                        .map(|l| readable_line(&f.property, l))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            };
            Field {
                label: label(&f),
                base: show(&f.base),
                a: show(&f.a),
                b: show(&f.b),
                differs: f.differs,
                conflict: f.conflict,
                name: f.key,
            }
        })
        .collect()
}

/// A field's name in a person's words.
fn label(f: &FieldLines) -> String {
    let what = match f.property.as_str() {
        "" if f.component == "VTIMEZONE" => "Time zone definition".to_owned(),
        "" => "The whole occurrence".to_owned(),
        property => {
            let name = property.split(';').next().unwrap_or(property);
            let known = match (f.component.as_str(), name) {
                ("VCARD", "FN") => "Name",
                ("VCARD", "N") => "Name parts",
                ("VCARD", "NOTE") => "Note",
                ("VCARD", "URL") => "Websites",
                ("VCARD", "CATEGORIES") => "Groups",
                (_, "SUMMARY") => "Title",
                (_, "LOCATION") => "Location",
                (_, "DTSTART") => "Starts",
                (_, "DTEND") => "Ends",
                (_, "DUE") => "Due",
                (_, "DURATION") => "Duration",
                (_, "DESCRIPTION") => "Description",
                (_, "RRULE") => "Repeats",
                (_, "EXDATE") => "Skipped dates",
                (_, "RDATE") => "Extra dates",
                (_, "ATTENDEE") => "Attendees",
                (_, "ORGANIZER") => "Organizer",
                (_, "CATEGORIES") => "Categories",
                (_, "STATUS") => "Status",
                (_, "TRANSP") => "Show as",
                (_, "CLASS") => "Visibility",
                (_, "PRIORITY") => "Priority",
                (_, "URL") => "Link",
                (_, "VALARM") => "Alarms",
                (_, "PERCENT-COMPLETE") => "Progress",
                (_, "COMPLETED") => "Completed",
                (_, "GEO") => "Position",
                (_, "EMAIL") => "Emails",
                (_, "TEL") => "Phones",
                (_, "ADR") => "Addresses",
                (_, "ORG") => "Organization",
                (_, "TITLE") => "Job title",
                (_, "ROLE") => "Role",
                (_, "BDAY") => "Birthday",
                (_, "ANNIVERSARY") => "Anniversary",
                (_, "PHOTO") => "Photo",
                (_, "NICKNAME") => "Nicknames",
                (_, "IMPP") => "Chat",
                (_, "UID") => "Identifier",
                (_, "VERSION") => "Format version",
                _ => "",
            };
            let mut label = if known.is_empty() {
                let lower = name.to_ascii_lowercase().replace('-', " ");
                let mut chars = lower.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            } else {
                known.to_owned()
            };
            // A translation or alternative (LANGUAGE=de, ALTID=1) is its own field.
            if let Some((_, params)) = property.split_once(';') {
                label.push_str(&format!(" ({})", params.to_ascii_lowercase()));
            }
            label
        }
    };
    match &f.occurrence {
        Some(when) => format!("{what} (occurrence {})", readable_time(when)),
        None => what,
    }
}

/// One line of a field as a person reads it: the value unescaped, times readable, a person
/// as name and address, a photo by its size, an alarm by when it rings.
fn readable_line(property: &str, line: &str) -> String {
    if line.starts_with("BEGIN:") {
        let Ok(c) = Component::parse(line) else {
            return line.to_owned();
        };
        return match c.name.as_str() {
            "VALARM" => match c.value_of("TRIGGER") {
                Some(trigger) => format!("alarm {}", readable_duration(trigger.trim())),
                None => "alarm".to_owned(),
            },
            "VTIMEZONE" => format!(
                "time zone {}",
                c.value_of("TZID").unwrap_or("(unnamed)").trim()
            ),
            _ => {
                let title = c.value_of("SUMMARY").map(unescape_text);
                let when = c.value_of("DTSTART").map(readable_time);
                [title, when]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
    }
    let name = property.split(';').next().unwrap_or(property);
    let p = Property {
        name: name.to_owned(),
        line: line.to_owned(),
    };
    let value = p.value().trim();
    let normalized = p.normalized();
    let params = params(head_of(&normalized));
    let param = |wanted: &str| {
        params
            .iter()
            .find(|(k, _)| k == wanted)
            .map(|(_, v)| v.trim_matches('"').to_owned())
    };
    let kinds = param("TYPE").map(|t| format!(" ({})", t.to_ascii_lowercase()));
    match name {
        "DTSTART" | "DTEND" | "DUE" | "RECURRENCE-ID" | "EXDATE" | "RDATE" | "COMPLETED" => {
            let zone = param("TZID").map(|z| format!(" {z}")).unwrap_or_default();
            value
                .split(',')
                .map(|v| format!("{}{zone}", readable_time(v.trim())))
                .collect::<Vec<_>>()
                .join(", ")
        }
        "ATTENDEE" | "ORGANIZER" => {
            let mut out = person(&p);
            if let Some(status) = param("PARTSTAT") {
                out.push_str(&format!(
                    " ({})",
                    status.to_ascii_lowercase().replace('-', " ")
                ));
            }
            out
        }
        "PHOTO" | "LOGO" | "SOUND" | "KEY" | "ATTACH" if value.len() > 200 => {
            format!("embedded data ({} KB)", value.len().div_ceil(1024))
        }
        "N" | "ADR" | "ORG" => {
            let parts: Vec<String> = value
                .split(';')
                .map(unescape_text)
                .filter(|part| !part.trim().is_empty())
                .collect();
            format!("{}{}", parts.join(", "), kinds.unwrap_or_default())
        }
        "EMAIL" | "TEL" | "IMPP" | "URL" => {
            format!("{}{}", unescape_text(value), kinds.unwrap_or_default())
        }
        _ => unescape_text(value),
    }
}

/// "Ada Lovelace <ada@example.com>" from CN and the address, or the address alone.
fn person(p: &Property) -> String {
    let normalized = p.normalized();
    let address = p.value().trim();
    let address = address
        .strip_prefix("mailto:")
        .or_else(|| address.strip_prefix("MAILTO:"))
        .unwrap_or(address);
    match params(head_of(&normalized))
        .into_iter()
        .find(|(k, _)| k == "CN")
        .map(|(_, v)| v.trim_matches('"').to_owned())
    {
        Some(name) if !name.trim().is_empty() => format!("{name} <{address}>"),
        _ => address.to_owned(),
    }
}

/// "-PT15M" as "15 minutes before", "PT0S" as "at the start"; other values as given.
fn readable_duration(value: &str) -> String {
    let (before, rest) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let Some(rest) = rest.strip_prefix('P') else {
        return readable_time(value);
    };
    let mut parts = Vec::new();
    let mut number = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => number.push(c),
            'T' => {}
            unit => {
                let n: u64 = number.parse().unwrap_or(0);
                number.clear();
                let word = match unit {
                    'W' => "week",
                    'D' => "day",
                    'H' => "hour",
                    'M' => "minute",
                    'S' => "second",
                    _ => return value.to_owned(),
                };
                if n > 0 {
                    parts.push(format!("{n} {word}{}", if n == 1 { "" } else { "s" }));
                }
            }
        }
    }
    if parts.is_empty() {
        return "at the start".to_owned();
    }
    format!(
        "{} {}",
        parts.join(" "),
        if before { "before" } else { "after" }
    )
}

/// What an item says, from its main component (VEVENT, VTODO, VJOURNAL) or its VCARD.
pub fn details(raw: &[u8]) -> Details {
    let Ok(tree) = Component::parse(&decode(raw)) else {
        return Details::default();
    };
    let main = if tree.name == "VCARD" {
        Some(&tree)
    } else {
        tree.children
            .iter()
            .find(|c| matches!(c.name.as_str(), "VEVENT" | "VTODO" | "VJOURNAL"))
    };
    let Some(main) = main else {
        return Details::default();
    };
    let value = |name: &str| {
        main.value_of(name)
            .map(unescape_text)
            .filter(|v| !v.trim().is_empty())
    };
    let all = |name: &'static str| main.properties.iter().filter(move |p| p.name == name);
    let start = all("DTSTART").chain(all("DUE")).next();
    Details {
        title: value("SUMMARY").or_else(|| value("FN")),
        when: start.map(|p| {
            let zone = param_of(p, "TZID")
                .map(|z| format!(" {z}"))
                .unwrap_or_default();
            format!("{}{zone}", readable_time(p.value().trim()))
        }),
        starts_at: start.and_then(starts_at),
        location: value("LOCATION"),
        attendees: all("ATTENDEE").map(person).collect(),
        emails: all("EMAIL").map(|p| p.value().trim().to_owned()).collect(),
        phones: all("TEL").map(|p| p.value().trim().to_owned()).collect(),
    }
}

/// A parameter's value, unquoted.
fn param_of(p: &Property, name: &str) -> Option<String> {
    let normalized = p.normalized();
    params(head_of(&normalized))
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// A DTSTART/DUE as RFC 3339 in UTC (its TZID resolved, Windows zone names included), a
/// date for an all-day item, or a local time without offset for a floating one.
fn starts_at(p: &Property) -> Option<String> {
    let value = p.value().trim();
    if value.len() == 8 {
        return NaiveDate::parse_from_str(value, "%Y%m%d")
            .ok()
            .map(|d| d.format("%Y-%m-%d").to_string());
    }
    let utc = value.ends_with('Z');
    let local = NaiveDateTime::parse_from_str(value.trim_end_matches('Z'), "%Y%m%dT%H%M%S").ok()?;
    let rfc3339 = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    if utc {
        return Some(rfc3339(Utc.from_utc_datetime(&local)));
    }
    match param_of(p, "TZID") {
        None => Some(local.format("%Y-%m-%dT%H:%M:%S").to_string()),
        Some(zone) => {
            let tz = calcard::common::timezone::Tz::from_str(&zone).ok()?;
            let at = tz.from_local_datetime(&local).earliest()?;
            Some(rfc3339(at.with_timezone(&Utc)))
        }
    }
}

/// "20261201T100000Z" as "2026-12-01 10:00 UTC", "20261201" as "2026-12-01"; anything else
/// as given.
fn readable_time(value: &str) -> String {
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let (date, time) = value.split_once('T').unwrap_or((value, ""));
    if date.len() != 8 || !digits(date) {
        return value.to_owned();
    }
    let day = format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..8]);
    let (clock, utc) = time.strip_suffix('Z').map_or((time, false), |t| (t, true));
    if clock.len() < 4 || !clock.is_ascii() || !digits(clock) {
        return day;
    }
    let zone = if utc { " UTC" } else { "" };
    format!("{day} {}:{}{zone}", &clock[..2], &clock[2..4])
}

/// The properties (as "COMPONENT NAME") whose lines differ between two versions, ignoring
/// what servers rewrite (DTSTAMP, PRODID, ...).
pub fn differing(a: &str, b: &str) -> Vec<String> {
    fn collect(c: &Component, out: &mut Vec<(String, String)>) {
        for p in &c.properties {
            if !IGNORED_PROPERTIES.contains(&p.name.as_str()) {
                out.push((format!("{} {}", c.name, p.name), p.normalized()));
            }
        }
        for child in &c.children {
            collect(child, out);
        }
    }
    let lines = |text: &str| {
        let mut out = Vec::new();
        if let Ok(tree) = Component::parse(text) {
            collect(&tree, &mut out);
        }
        out.sort();
        out
    };
    let (a, b) = (lines(a), lines(b));
    let mut names: Vec<String> = a
        .iter()
        .filter(|l| !b.contains(l))
        .chain(b.iter().filter(|l| !a.contains(l)))
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `raw` with every UID line set to `uid` (the copy of "keep both").
pub fn with_uid(raw: &[u8], uid: &str) -> Vec<u8> {
    let text = decode(raw);
    let mut out = String::with_capacity(text.len());
    let mut skipping_fold = false;
    for line in text.split_inclusive('\n') {
        if skipping_fold && (line.starts_with(' ') || line.starts_with('\t')) {
            continue;
        }
        skipping_fold = false;
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("UID:") || upper.starts_with("UID;") {
            let ending = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
            out.push_str("UID:");
            out.push_str(uid);
            out.push_str(ending);
            skipping_fold = true;
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// The UID "keep both" gives B's copy of `uid`.
pub fn copy_uid(uid: &str, content: &[u8]) -> String {
    let hash = sha256_hex(content);
    format!(
        "{uid}-copy-{}",
        &hash[..COPY_UID_HASH_CHARS.min(hash.len())]
    )
}

/// Resolves conflict `id` by keeping A, B or both, or by a choice per field. See the module
/// docs for the guarantees.
pub async fn resolve(
    concord: &Concord,
    id: i64,
    choice: Choice,
    credentials: &dyn CredentialSource,
) -> Result<Resolution, ConflictError> {
    let keep = match choice {
        Choice::Keep(keep) => keep,
        Choice::Pick(picks) => return resolve_picked(concord, id, &picks, credentials).await,
    };
    let conn = concord.database().connect()?;
    let row = load(&conn, id)?;
    let sync = PairSync::open(concord, &row.pair, credentials)?;
    let uid = row.conflict.uid.clone();

    // Each side must still hold what the conflict shows.
    let now = [
        current(&sync, &row, Side::A).await?,
        current(&sync, &row, Side::B).await?,
    ];
    let moved = Side::BOTH.into_iter().any(|side| {
        let recorded = row.side(side).map(|s| s.etag.as_str());
        now[index(side)].as_ref().map(|f| f.etag.as_str()) != recorded
    });
    if moved {
        return refresh(&conn, &row, now);
    }

    // Who wins under the UID, and the copy "keep both" adds.
    let (winner, copy) = match keep {
        Keep::A => (Side::A, None),
        Keep::B => (Side::B, None),
        Keep::Both => match (row.side(Side::A), row.side(Side::B)) {
            (Some(_), Some(b)) => {
                let copy_uid = copy_uid(&uid, &b.content);
                let content = with_uid(&b.content, &copy_uid);
                (Side::A, Some((copy_uid, content)))
            }
            // Only one side still has the item: keeping both is keeping that one.
            (Some(_), None) => (Side::A, None),
            (None, _) => (Side::B, None),
        },
    };
    let loser = winner.other();
    if !sync.pair().direction.writes(loser) {
        return Err(ConflictError::Unresolvable {
            id,
            reason: format!(
                "side {} of {} is not written by this pair",
                loser.as_str(),
                row.pair
            ),
        });
    }
    let kept = row.side(winner).cloned();
    let lost = row.side(loser).cloned();
    let reason = match keep {
        Keep::Both => "conflict resolved: kept both".to_owned(),
        _ => format!("conflict resolved: kept {}", winner.as_str()),
    };
    // The losing version is kept before anything is overwritten.
    if let Some(lost) = &lost {
        state::record_version(
            &conn,
            row.pair_id,
            sync.pair().storage(loser).id,
            loser,
            &uid,
            Some(&lost.href),
            &row.conflict.summary,
            &reason,
            &lost.content,
        )?;
    }

    // The copy first: if the overwrite below happened and a crash followed, a repeat still
    // finds (and records) the copy.
    let mut copies = Vec::new();
    if let Some((copy_uid, content)) = &copy {
        let hash = parsed_hash(content);
        let mut sides = Vec::new();
        for side in Side::BOTH {
            let listed = create_or_find(sync.storage(side), copy_uid, content, &hash).await?;
            sync.storage(side).flush()?;
            sides.push(SyncedSide {
                href: listed.href,
                etag: listed.etag,
                hash: hash.clone(),
            });
        }
        let mut sides = sides.into_iter();
        if let (Some(a), Some(b)) = (sides.next(), sides.next()) {
            copies.push(Synced {
                uid: copy_uid.clone(),
                a,
                b,
                base: content.clone(),
                summary: Item::parse(content.clone())
                    .map_or_else(|_| row.conflict.summary.clone(), |i| i.summary),
            });
        }
    }

    // The kept version to the other side, only if that side is still what we saw.
    let target = sync.storage(loser);
    let written = match (&kept, &lost) {
        (Some(kept), Some(lost)) => target
            .update(&lost.href, &lost.etag, &kept.content)
            .await
            .map(|etag| Some((lost.href.clone(), etag))),
        (Some(kept), None) => target
            .create(&uid, &kept.content)
            .await
            .map(|l| Some((l.href, l.etag))),
        (None, Some(lost)) => target.delete(&lost.href, &lost.etag).await.map(|()| None),
        (None, None) => Ok(None),
    };
    let written = match written {
        Ok(written) => written,
        Err(err) if err.is_changed() => {
            let now = [
                current(&sync, &row, Side::A).await?,
                current(&sync, &row, Side::B).await?,
            ];
            record_copies(&conn, row.pair_id, &copies)?;
            return refresh(&conn, &row, now);
        }
        Err(err) => return Err(err.into()),
    };
    target.flush()?;

    let mut conn = conn;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match (kept, written) {
        (Some(kept), Some((href, etag))) => {
            let hash = parsed_hash(&kept.content);
            let winner_side = SyncedSide {
                href: kept.href.clone(),
                etag: kept.etag.clone(),
                hash: hash.clone(),
            };
            let loser_side = SyncedSide { href, etag, hash };
            let (a, b) = match winner {
                Side::A => (winner_side, loser_side),
                Side::B => (loser_side, winner_side),
            };
            let summary = Item::parse(kept.content.clone())
                .map_or_else(|_| row.conflict.summary.clone(), |i| i.summary);
            state::record_synced(
                &tx,
                row.pair_id,
                &Synced {
                    uid: uid.clone(),
                    a,
                    b,
                    base: kept.content,
                    summary,
                },
            )?;
        }
        _ => {
            // Kept the deletion: the item is gone from both sides.
            state::remove_synced(&tx, row.pair_id, &uid)?;
            for side in Side::BOTH {
                if let Some(s) = row.side(side) {
                    state::remove_seen(&tx, row.pair_id, side, &s.href)?;
                }
            }
        }
    }
    for copy in &copies {
        state::record_synced(&tx, row.pair_id, copy)?;
    }
    state::conflicts::remove(&tx, row.id)?;
    tx.commit()?;
    Ok(Resolution::Resolved {
        uid,
        kept: keep,
        copy_uid: copy.map(|(copy_uid, _)| copy_uid),
    })
}

/// Writes the item made of the picked fields to both sides (only where it differs), each
/// side's previous version kept in history first.
async fn resolve_picked(
    concord: &Concord,
    id: i64,
    picks: &BTreeMap<String, Side>,
    credentials: &dyn CredentialSource,
) -> Result<Resolution, ConflictError> {
    let conn = concord.database().connect()?;
    let row = load(&conn, id)?;
    let analysis = row.analysis_for_pick()?;
    let picks = checked_picks(&analysis, id, picks)?;
    let built = analysis.build(&picks, Utc::now());
    if !built.unchosen.is_empty() {
        return Err(unchosen_error(id, &built.unchosen));
    }
    let content = built.content.into_bytes();
    let hash = built_hash(&content, &row.conflict.uid)
        .map_err(|reason| ConflictError::Unresolvable { id, reason })?;
    let sync = PairSync::open(concord, &row.pair, credentials)?;
    let uid = row.conflict.uid.clone();

    // Per side: already holding the result (a repeat, or the picks equal that side), or
    // still at the recorded version and to be written. Anything else: refresh.
    let now = [
        current(&sync, &row, Side::A).await?,
        current(&sync, &row, Side::B).await?,
    ];
    let mut to_write = Vec::new();
    let mut holding: BTreeMap<&str, SyncedSide> = BTreeMap::new();
    for side in Side::BOTH {
        let (Some(recorded), Some(found)) = (row.side(side), &now[index(side)]) else {
            return refresh(&conn, &row, now);
        };
        if parsed_hash(&found.raw) == hash {
            holding.insert(
                side.as_str(),
                SyncedSide {
                    href: found.href.clone(),
                    etag: found.etag.clone(),
                    hash: hash.clone(),
                },
            );
        } else if found.etag == recorded.etag {
            if !sync.pair().direction.writes(side) {
                return Err(ConflictError::Unresolvable {
                    id,
                    reason: format!(
                        "side {} of {} is not written by this pair",
                        side.as_str(),
                        row.pair
                    ),
                });
            }
            to_write.push((side, recorded.clone()));
        } else {
            return refresh(&conn, &row, now);
        }
    }

    let chosen: Vec<String> = picks
        .iter()
        .map(|(key, side)| format!("{key} from {}", side.as_str()))
        .collect();
    for (side, recorded) in &to_write {
        let reason = format!(
            "conflict resolved field by field ({}): {}'s version replaced",
            chosen.join(", "),
            side.as_str().to_ascii_uppercase()
        );
        keep_version_once(
            &conn,
            &row,
            sync.pair().storage(*side).id,
            *side,
            recorded,
            &row.conflict.summary,
            &reason,
        )?;
    }
    for (side, recorded) in &to_write {
        let storage = sync.storage(*side);
        match storage
            .overwrite(&recorded.href, &recorded.etag, &content, &hash)
            .await
        {
            Ok(now) => {
                holding.insert(side.as_str(), now);
            }
            Err(err) if err.is_changed() => {
                let now = [
                    current(&sync, &row, Side::A).await?,
                    current(&sync, &row, Side::B).await?,
                ];
                return refresh(&conn, &row, now);
            }
            Err(err) => return Err(err.into()),
        }
    }
    let (Some(a), Some(b)) = (holding.remove("a"), holding.remove("b")) else {
        return Err(ConflictError::Run {
            id,
            reason: "a side was neither written nor found holding the result".to_owned(),
        });
    };
    let summary =
        Item::parse(content.clone()).map_or_else(|_| row.conflict.summary.clone(), |i| i.summary);
    let mut conn = conn;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    state::record_synced(
        &tx,
        row.pair_id,
        &Synced {
            uid: uid.clone(),
            a,
            b,
            base: content,
            summary,
        },
    )?;
    state::conflicts::remove(&tx, row.id)?;
    tx.commit()?;
    Ok(Resolution::Picked { uid, picked: picks })
}

fn unchosen_error(id: i64, unchosen: &[String]) -> ConflictError {
    ConflictError::Unresolvable {
        id,
        reason: format!("choose a or b for {} too", unchosen.join(", ")),
    }
}

/// Keeps `version` in history unless the newest kept version of that item and side is the
/// same content (a repeated resolution).
fn keep_version_once(
    conn: &Connection,
    row: &OpenConflict,
    storage_id: i64,
    side: Side,
    version: &ConflictSide,
    unreadable: &str,
    reason: &str,
) -> Result<(), ConflictError> {
    let kept = KeptVersion {
        pair_id: row.pair_id,
        storage_id,
        side,
        uid: &row.conflict.uid,
        href: &version.href,
        content: &version.content,
    };
    keep_once(conn, &kept, unreadable, reason)?;
    Ok(())
}

/// A version about to be overwritten or deleted by a resolution or a merge.
pub(crate) struct KeptVersion<'a> {
    pub pair_id: i64,
    pub storage_id: i64,
    pub side: Side,
    pub uid: &'a str,
    pub href: &'a str,
    pub content: &'a [u8],
}

/// Records `version` in item history unless the newest kept version of that item and side
/// already is this content (the same step repeated after a crash). Labelled with its own
/// summary; `unreadable` if it does not read (see [`state::record_version`]).
pub(crate) fn keep_once(
    conn: &Connection,
    version: &KeptVersion<'_>,
    unreadable: &str,
    reason: &str,
) -> rusqlite::Result<()> {
    let newest = state::newest_version_content(conn, version.pair_id, version.uid, version.side)?;
    if newest.as_deref() == Some(version.content) {
        return Ok(());
    }
    state::record_version(
        conn,
        version.pair_id,
        version.storage_id,
        version.side,
        version.uid,
        Some(version.href),
        unreadable,
        reason,
        version.content,
    )
}

fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// The hash of an item built from chosen fields, when it reads back as an item with the UID
/// `uid`; otherwise why those choices cannot be written (fields picked from sides that gave
/// one event different UIDs would make an object of two).
pub(crate) fn built_hash(content: &[u8], uid: &str) -> Result<String, String> {
    match Item::parse(content.to_vec()) {
        Ok(item) if item.uid == uid => Ok(item.hash),
        Ok(item) => Err(format!(
            "these choices make an item with the UID {:?} instead of {uid:?}; keep one side \
             whole instead",
            item.uid
        )),
        Err(unreadable) => Err(format!(
            "these choices make an item that cannot be read ({}); keep one side whole instead",
            unreadable.reason
        )),
    }
}

pub(crate) fn parsed_hash(content: &[u8]) -> String {
    Item::parse(content.to_vec())
        .map(|i| i.hash)
        .unwrap_or_else(|_| sha256_hex(content))
}

/// What `side` holds now where the conflict saw the item (or where it would be created).
async fn current(
    sync: &PairSync,
    row: &OpenConflict,
    side: Side,
) -> Result<Option<Fetched>, ConflictError> {
    let storage = sync.storage(side);
    let href = row
        .side(side)
        .map_or_else(|| storage.href_for(&row.conflict.uid), |s| s.href.clone());
    Ok(storage
        .fetch(std::slice::from_ref(&href))
        .await?
        .into_iter()
        .next())
}

/// Creates `content` under `uid`, or accepts the same content already there (a repeat).
async fn create_or_find(
    storage: &Storage,
    uid: &str,
    content: &[u8],
    hash: &str,
) -> Result<crate::sync::storage::Listed, ConflictError> {
    match storage.create(uid, content).await {
        Ok(listed) => Ok(listed),
        Err(err) if err.is_changed() => {
            let href = storage.href_for(uid);
            let found = storage.fetch(std::slice::from_ref(&href)).await?;
            match found.into_iter().next() {
                Some(f) if parsed_hash(&f.raw) == hash => Ok(crate::sync::storage::Listed {
                    href: f.href,
                    etag: f.etag,
                }),
                _ => Err(err.into()),
            }
        }
        Err(err) => Err(err.into()),
    }
}

fn record_copies(conn: &Connection, pair_id: i64, copies: &[Synced]) -> rusqlite::Result<()> {
    for copy in copies {
        state::record_synced(conn, pair_id, copy)?;
    }
    Ok(())
}

/// Rewrites the conflict with what the sides hold `now`; closes it when they agree.
fn refresh(
    conn: &Connection,
    row: &OpenConflict,
    now: [Option<Fetched>; 2],
) -> Result<Resolution, ConflictError> {
    let uid = row.conflict.uid.clone();
    let side = |f: &Option<Fetched>| {
        f.as_ref().map(|f| ConflictSide {
            href: f.href.clone(),
            etag: f.etag.clone(),
            hash: parsed_hash(&f.raw),
            content: f.raw.clone(),
        })
    };
    let (a, b) = (side(&now[0]), side(&now[1]));
    let closed = match (&a, &b) {
        (Some(a), Some(b)) if a.hash == b.hash => {
            // Both sides agree now (someone else resolved it, or a repeat of ours).
            state::record_synced(
                conn,
                row.pair_id,
                &Synced {
                    uid: uid.clone(),
                    a: SyncedSide {
                        href: a.href.clone(),
                        etag: a.etag.clone(),
                        hash: a.hash.clone(),
                    },
                    b: SyncedSide {
                        href: b.href.clone(),
                        etag: b.etag.clone(),
                        hash: b.hash.clone(),
                    },
                    base: a.content.clone(),
                    summary: Item::parse(a.content.clone())
                        .map_or_else(|_| row.conflict.summary.clone(), |i| i.summary),
                },
            )?;
            state::close_conflict(conn, row.pair_id, &uid)?;
            true
        }
        // Gone from both sides: nothing left to decide; the next sync forgets it.
        (None, None) => {
            state::close_conflict(conn, row.pair_id, &uid)?;
            true
        }
        _ => {
            let (kind, properties) = match (&a, &b, &row.conflict.base) {
                (Some(a), Some(b), Some(base)) => {
                    let properties =
                        match merge(&decode(base), &decode(&a.content), &decode(&b.content)) {
                            Merge::Conflict(properties) => properties,
                            Merge::Merged(_) => Vec::new(),
                        };
                    ("both-edited", properties)
                }
                (Some(_), Some(_), None) => ("both-created", Vec::new()),
                _ => ("edit-delete", Vec::new()),
            };
            let summary = a
                .as_ref()
                .or(b.as_ref())
                .and_then(|s| Item::parse(s.content.clone()).ok())
                .map_or_else(|| row.conflict.summary.clone(), |i| i.summary);
            state::open_conflict(
                conn,
                row.pair_id,
                &Conflict {
                    uid: uid.clone(),
                    kind: kind.to_owned(),
                    summary,
                    properties,
                    base: row.conflict.base.clone(),
                    a,
                    b,
                },
            )?;
            false
        }
    };
    Ok(Resolution::Refreshed { uid, closed })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:20261201T100000Z\r\nSUMMARY:Team\\, meeting\r\nLOCATION:Room 1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn a_built_item_is_written_only_when_it_reads_back_as_the_same_item() {
        let hash = built_hash(EVENT.as_bytes(), "e1").unwrap();
        assert_eq!(hash, parsed_hash(EVENT.as_bytes()));
        let other = built_hash(EVENT.as_bytes(), "e2").unwrap_err();
        assert!(other.contains("\"e1\" instead of \"e2\""), "{other}");
        let two = EVENT.replace(
            "END:VEVENT\r\n",
            "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:e9\r\nDTSTART:20261201T100000Z\r\nEND:VEVENT\r\n",
        );
        let unreadable = built_hash(two.as_bytes(), "e1").unwrap_err();
        assert!(unreadable.contains("cannot be read"), "{unreadable}");
    }

    #[test]
    fn an_event_reads_as_title_time_and_place() {
        let d = details(EVENT.as_bytes());
        assert_eq!(d.title.as_deref(), Some("Team, meeting"));
        assert_eq!(d.when.as_deref(), Some("2026-12-01 10:00 UTC"));
        assert_eq!(d.location.as_deref(), Some("Room 1"));
    }

    #[test]
    fn a_contact_reads_as_name_and_emails() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Ada Lovelace\r\nEMAIL;TYPE=work:ada@example.com\r\nEMAIL:ada@home.example\r\nEND:VCARD\r\n";
        let d = details(card.as_bytes());
        assert_eq!(d.title.as_deref(), Some("Ada Lovelace"));
        assert_eq!(d.emails, ["ada@example.com", "ada@home.example"]);
    }

    #[test]
    fn differing_names_only_what_differs() {
        let other = EVENT
            .replace("Room 1", "Room 2")
            .replace("DTSTAMP:20261101T100000Z", "DTSTAMP:20261102T100000Z");
        assert_eq!(differing(EVENT, &other), ["VEVENT LOCATION"]);
        assert!(differing(EVENT, EVENT).is_empty());
    }

    #[test]
    fn the_copy_gets_a_new_uid_and_nothing_else_changes() {
        let folded = EVENT.replace("UID:e1\r\n", "UID:e\r\n 1\r\n");
        let uid = copy_uid("e1", folded.as_bytes());
        assert_eq!(uid, copy_uid("e1", folded.as_bytes()));
        let copy = with_uid(folded.as_bytes(), &uid);
        let item = Item::parse(copy.clone()).unwrap();
        assert_eq!(item.uid, uid);
        assert_eq!(differing(EVENT, &decode(&copy)), ["VEVENT UID"]);
    }

    /// A data directory with one pair and one open conflict of `base`, `a` and `b`.
    fn inbox(
        base: Option<&str>,
        a: Option<&str>,
        b: Option<&str>,
    ) -> (tempfile::TempDir, Concord, i64) {
        let (dir, concord, [pair, _, _]) = state::test_pair();
        let conn = concord.database().connect().unwrap();
        let side = |text: Option<&str>, href: &str| {
            text.map(|t| ConflictSide {
                href: href.to_owned(),
                etag: "e".to_owned(),
                hash: parsed_hash(t.as_bytes()),
                content: t.as_bytes().to_vec(),
            })
        };
        state::open_conflict(
            &conn,
            pair,
            &Conflict {
                uid: "e1".to_owned(),
                kind: "both-edited".to_owned(),
                summary: "Team".to_owned(),
                properties: Vec::new(),
                base: base.map(|b| b.as_bytes().to_vec()),
                a: side(a, "a.ics"),
                b: side(b, "b.ics"),
            },
        )
        .unwrap();
        let id = list(&concord).unwrap()[0].id;
        (dir, concord, id)
    }

    #[test]
    fn show_lines_up_fields_in_a_persons_words() {
        let a = EVENT
            .replace("Room 1", "Room 2")
            .replace("Team\\, meeting", "Planning");
        let b = EVENT.replace("Team\\, meeting", "Review");
        let (_dir, concord, id) = inbox(Some(EVENT), Some(&a), Some(&b));
        let detail = show(&concord, id).unwrap();
        let field = |name: &str| {
            detail
                .fields
                .iter()
                .find(|f| f.name == name)
                .unwrap()
                .clone()
        };
        let title = field("VEVENT SUMMARY");
        assert_eq!(title.label, "Title");
        assert_eq!(
            (
                title.base.as_deref(),
                title.a.as_deref(),
                title.b.as_deref()
            ),
            (Some("Team, meeting"), Some("Planning"), Some("Review"))
        );
        assert!(title.differs && title.conflict);
        let place = field("VEVENT LOCATION");
        assert_eq!(place.label, "Location");
        assert!(place.differs && !place.conflict);
        let start = field("VEVENT DTSTART");
        assert_eq!(start.a.as_deref(), Some("2026-12-01 10:00 UTC"));
        assert!(!start.differs);
        // What only software reads is left out when equal.
        assert!(detail.fields.iter().all(|f| f.name != "VEVENT UID"));
    }

    #[test]
    fn a_preview_builds_the_picked_item_without_writing() {
        let a = EVENT
            .replace("Room 1", "Room 2")
            .replace("Team\\, meeting", "Planning");
        let b = EVENT.replace("Team\\, meeting", "Review");
        let (_dir, concord, id) = inbox(Some(EVENT), Some(&a), Some(&b));
        let picks: BTreeMap<String, Side> = [("summary".to_owned(), Side::B)].into();
        let preview = preview(&concord, id, &picks).unwrap();
        assert!(preview.unchosen.is_empty());
        assert_eq!(preview.details.title.as_deref(), Some("Review"));
        assert_eq!(preview.details.location.as_deref(), Some("Room 2"));
        // Nothing chosen: A stands in and the choice still to make is named.
        let preview = super::preview(&concord, id, &BTreeMap::new()).unwrap();
        assert_eq!(preview.unchosen, ["VEVENT SUMMARY"]);
        assert_eq!(preview.details.title.as_deref(), Some("Planning"));
        // A field that is not there is refused with the fields there are.
        let wrong: BTreeMap<String, Side> = [("COLOR".to_owned(), Side::A)].into();
        let err = super::preview(&concord, id, &wrong)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no field \"COLOR\"") && err.contains("VEVENT SUMMARY"),
            "{err}"
        );
        assert_eq!(list(&concord).unwrap().len(), 1);
    }

    #[test]
    fn an_edit_delete_conflict_shows_the_deleted_side_as_absent_and_refuses_picks() {
        let a = EVENT.replace("Room 1", "Room 2");
        let (_dir, concord, id) = inbox(Some(EVENT), Some(&a), None);
        let detail = show(&concord, id).unwrap();
        let place = detail
            .fields
            .iter()
            .find(|f| f.name == "VEVENT LOCATION")
            .unwrap();
        assert_eq!(
            (place.a.as_deref(), place.b.as_deref()),
            (Some("Room 2"), None)
        );
        let picks: BTreeMap<String, Side> = [("LOCATION".to_owned(), Side::A)].into();
        let err = preview(&concord, id, &picks).unwrap_err().to_string();
        assert!(err.contains("keep a or b"), "{err}");
    }

    #[test]
    fn details_carry_attendees_phones_and_a_utc_start() {
        let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e2\r\nDTSTART;TZID=Europe/Berlin:20260701T100000\r\nSUMMARY:Review\r\nATTENDEE;CN=Grace Hopper;PARTSTAT=ACCEPTED:mailto:grace@example.com\r\nATTENDEE:mailto:alan@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let d = details(event.as_bytes());
        assert_eq!(d.starts_at.as_deref(), Some("2026-07-01T08:00:00Z"));
        assert_eq!(
            d.attendees,
            ["Grace Hopper <grace@example.com>", "alan@example.com"]
        );
        let outlook = event.replace("Europe/Berlin", "W. Europe Standard Time");
        assert_eq!(
            details(outlook.as_bytes()).starts_at.as_deref(),
            Some("2026-07-01T08:00:00Z")
        );
        let all_day = event.replace(
            ";TZID=Europe/Berlin:20260701T100000",
            ";VALUE=DATE:20260701",
        );
        assert_eq!(
            details(all_day.as_bytes()).starts_at.as_deref(),
            Some("2026-07-01")
        );
        let floating = event.replace(";TZID=Europe/Berlin", "");
        assert_eq!(
            details(floating.as_bytes()).starts_at.as_deref(),
            Some("2026-07-01T10:00:00")
        );
        let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c\r\nFN:Ada\r\nTEL;TYPE=cell:+44 20 7946 0000\r\nEND:VCARD\r\n";
        assert_eq!(details(card.as_bytes()).phones, ["+44 20 7946 0000"]);
    }

    #[test]
    fn field_values_read_as_a_person_reads_them() {
        assert_eq!(
            readable_line(
                "ATTENDEE",
                "ATTENDEE;CN=Grace;PARTSTAT=NEEDS-ACTION:mailto:g@x"
            ),
            "Grace <g@x> (needs action)"
        );
        assert_eq!(
            readable_line("ADR", "ADR;TYPE=home:;;1 Main St;Springfield;;12345;"),
            "1 Main St, Springfield, 12345 (home)"
        );
        assert_eq!(
            readable_line(
                "VALARM",
                "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM"
            ),
            "alarm 15 minutes before"
        );
        let photo = format!("PHOTO;ENCODING=b:{}", "A".repeat(4000));
        assert_eq!(readable_line("PHOTO", &photo), "embedded data (4 KB)");
        assert_eq!(
            readable_line("DTSTART", "DTSTART;TZID=Europe/Berlin:20261201T100000"),
            "2026-12-01 10:00 Europe/Berlin"
        );
    }

    #[test]
    fn choices_serialize_as_the_contract_says() {
        let keep = serde_json::to_value(Choice::Keep(Keep::Both)).unwrap();
        assert_eq!(keep, serde_json::json!({"keep": "both"}));
        let pick = Choice::Pick([("VEVENT SUMMARY".to_owned(), Side::A)].into());
        let json = serde_json::to_value(&pick).unwrap();
        assert_eq!(json, serde_json::json!({"pick": {"VEVENT SUMMARY": "a"}}));
        assert_eq!(serde_json::from_value::<Choice>(json).unwrap(), pick);
    }

    #[test]
    fn times_read_plainly() {
        assert_eq!(readable_time("20261201"), "2026-12-01");
        assert_eq!(readable_time("20261201T093000"), "2026-12-01 09:30");
        assert_eq!(readable_time("garbage"), "garbage");
    }
}
