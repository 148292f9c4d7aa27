//! Likely duplicate contacts, within one address book and across address books: two synced
//! contacts sharing an email address, a phone number (after normalization) or a name (after
//! normalization). A duplicate is merged with the conflict inbox's per-field chooser: the
//! combined contact replaces the first one on both sides of its pair and the second one is
//! deleted from both sides of its pair, with conditional writes, both old versions kept in
//! item history, as the durable workflow `merge-duplicates`. A side that changed since the
//! last sync is never overwritten: the merge stops and asks for a sync first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::Utc;
use concord_durable::{Ctx, StepError, Workflow};
use rusqlite::{Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::conflicts::{
    Details, Field, KeptVersion, Preview, built_hash, details, field_picks, fields_of, keep_once,
    parsed_hash,
};
use crate::Concord;
use crate::sync::SyncError;
use crate::sync::item::{Component, ItemKind, decode, sha256_hex};
use crate::sync::merge::{Analysis, TEL_DIGITS_COMPARED};
use crate::sync::run::{Outcome, PairSync, run_here};
use crate::sync::state::{self, Side, Synced, SyncedSide};
use crate::sync::storage::{CredentialSource, StorageError};

/// The durable workflow kind of a merge.
pub const MERGE_WORKFLOW: &str = "merge-duplicates";

/// Contacts sharing one email, phone or name with more than this many others are not offered
/// (a switchboard number or a team address is not a sign of duplicates).
pub const SHARED_KEY_CONTACTS_MAX: usize = 12;

/// Fewer digits than this are no phone number worth matching ("112", extensions).
pub const PHONE_DIGITS_MIN: usize = 6;

/// Why duplicates could not be listed or merged.
#[derive(Debug, thiserror::Error)]
pub enum DuplicateError {
    #[error("there is no likely duplicate {0} (see `concord duplicates list`)")]
    NoSuchDuplicate(String),
    #[error("duplicate {id}: {reason}")]
    Unmergeable { id: String, reason: String },
    #[error(
        "duplicate {id}: {contact} changed on side {side} since the last sync; nothing was \
         overwritten. Sync the pair, then look again"
    )]
    Changed {
        id: String,
        contact: String,
        side: &'static str,
    },
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("merging duplicate {id}: {reason}")]
    Run { id: String, reason: String },
}

via_sync_error!(DuplicateError);

impl DuplicateError {
    /// Classified once for the durable engine: a changed side or a wrong choice is the
    /// person's to settle; the network and the database are worth a retry.
    fn step_error(self) -> StepError {
        let message = self.to_string();
        match self {
            DuplicateError::NoSuchDuplicate(_)
            | DuplicateError::Unmergeable { .. }
            | DuplicateError::Changed { .. } => StepError::permanent(message),
            DuplicateError::Run { .. } => StepError::transient(message),
            DuplicateError::Sync(err) => err.into(),
        }
    }
}

/// One synced contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// The pair that syncs its address book.
    pub pair: String,
    pub uid: String,
    pub details: Details,
    #[serde(skip)]
    pair_id: i64,
    #[serde(skip)]
    synced: Synced,
}

/// Two contacts that are likely one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// Stable while both contacts exist: derived from their pairs and UIDs.
    pub id: String,
    /// "same email ada@example.com", "same phone +44 20 7946 0000", "same name Ada Lovelace".
    pub reasons: Vec<String>,
    /// The contact that stays (with the merged content).
    pub a: Contact,
    /// The contact merged into `a` and then deleted.
    pub b: Contact,
    /// Every field side by side (no base: the two are different contacts).
    pub fields: Vec<Field>,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merged {
    pub id: String,
    /// The UID the merged contact keeps (A's).
    pub kept_uid: String,
    /// The UID of the contact deleted after its content went into the kept one.
    pub removed_uid: String,
    pub picked: BTreeMap<String, Side>,
}

/// Every likely duplicate among the synced contacts of all pairs, strongest first (most
/// shared keys), then by name.
pub fn list(concord: &Concord) -> Result<Vec<Duplicate>, DuplicateError> {
    let conn = concord.database().connect()?;
    let contacts = contacts(&conn)?;
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in contacts.iter().enumerate() {
        for key in keys(&c.synced.base) {
            by_key.entry(key).or_default().push(i);
        }
    }
    let mut found: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    for (key, members) in &by_key {
        if members.len() < 2 || members.len() > SHARED_KEY_CONTACTS_MAX + 1 {
            continue;
        }
        for (n, &i) in members.iter().enumerate() {
            for &j in &members[n + 1..] {
                // The same contact seen through two pairs is no duplicate.
                if contacts[i].uid == contacts[j].uid {
                    continue;
                }
                let reasons = found.entry((i.min(j), i.max(j))).or_default();
                if !reasons.contains(key) {
                    reasons.push(key.clone());
                }
            }
        }
    }
    let mut out: Vec<Duplicate> = found
        .into_iter()
        .map(|((i, j), reasons)| duplicate(&contacts[i], &contacts[j], reasons))
        .collect();
    out.sort_by(|x, y| {
        y.reasons
            .len()
            .cmp(&x.reasons.len())
            .then_with(|| x.a.details.title.cmp(&y.a.details.title))
            .then_with(|| x.id.cmp(&y.id))
    });
    Ok(out)
}

/// One likely duplicate by its id.
pub fn show(concord: &Concord, id: &str) -> Result<Duplicate, DuplicateError> {
    list(concord)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| DuplicateError::NoSuchDuplicate(id.to_owned()))
}

/// The contact `picks` would make of duplicate `id`; nothing is written.
pub fn preview(
    concord: &Concord,
    id: &str,
    picks: &BTreeMap<String, Side>,
) -> Result<Preview, DuplicateError> {
    let duplicate = show(concord, id)?;
    let (analysis, picks) = line_up(&duplicate, picks)?;
    let built = analysis.build(&picks, Utc::now());
    Ok(Preview {
        details: details(built.content.as_bytes()),
        content: built.content,
        unchosen: built.unchosen,
    })
}

/// [`merge`] as a durable workflow: one checkpointed step, safe to repeat because [`merge`]
/// finds its own earlier writes. Input: `{"id": ID, "picks": {"VCARD FN": "b"}}`.
pub fn workflow(concord: Concord, credentials: Arc<dyn CredentialSource>) -> Workflow {
    Workflow::new(MERGE_WORKFLOW, move |ctx: Ctx| {
        let concord = concord.clone();
        let credentials = credentials.clone();
        async move {
            #[derive(Deserialize)]
            struct Input {
                id: String,
                #[serde(default)]
                picks: BTreeMap<String, Side>,
            }
            let input: Input = ctx.input_as()?;
            let merged = ctx
                .step("merge", || async {
                    merge(&concord, &input.id, &input.picks, credentials.as_ref())
                        .await
                        .map_err(DuplicateError::step_error)
                })
                .await?;
            serde_json::to_value(merged).map_err(|err| StepError::permanent(err.to_string()))
        }
    })
}

/// Merges duplicate `id` as a durable run executed by this process, and waits for it.
pub async fn merge_durably(
    concord: &Concord,
    id: &str,
    picks: &BTreeMap<String, Side>,
    credentials: Arc<dyn CredentialSource>,
) -> Result<Merged, DuplicateError> {
    // A wrong id or an incomplete choice is said plainly, not as a failed run.
    let duplicate = show(concord, id)?;
    let (analysis, checked) = line_up(&duplicate, picks)?;
    let unchosen = analysis.build(&checked, Utc::now()).unchosen;
    if !unchosen.is_empty() {
        return Err(unchosen_error(id, &unchosen));
    }
    let input = serde_json::json!({ "id": id, "picks": checked });
    let key = format!("{MERGE_WORKFLOW}:{id}");
    let failed = |reason| DuplicateError::Run {
        id: id.to_owned(),
        reason,
    };
    let run = workflow(concord.clone(), credentials);
    match run_here(concord, MERGE_WORKFLOW, run, &key, input).await? {
        Outcome::Completed(result) => {
            serde_json::from_value(result).map_err(|err| failed(err.to_string()))
        }
        Outcome::Failed(reason) | Outcome::Unfinished(reason) => Err(failed(reason)),
    }
}

/// Writes the merged contact over A on both sides of A's pair and deletes B from both sides
/// of B's pair; both old versions go to history first. See the module docs.
pub async fn merge(
    concord: &Concord,
    id: &str,
    picks: &BTreeMap<String, Side>,
    credentials: &dyn CredentialSource,
) -> Result<Merged, DuplicateError> {
    let duplicate = show(concord, id)?;
    let (analysis, picks) = line_up(&duplicate, picks)?;
    let built = analysis.build(&picks, Utc::now());
    if !built.unchosen.is_empty() {
        return Err(unchosen_error(id, &built.unchosen));
    }
    let content = built.content.into_bytes();
    let (a, b) = (&duplicate.a, &duplicate.b);
    let hash = built_hash(&content, &a.uid).map_err(|reason| DuplicateError::Unmergeable {
        id: id.to_owned(),
        reason,
    })?;
    let sync_a = PairSync::open(concord, &a.pair, credentials)?;
    let sync_b = PairSync::open(concord, &b.pair, credentials)?;
    for (sync, contact) in [(&sync_a, a), (&sync_b, b)] {
        if Side::BOTH
            .into_iter()
            .any(|side| !sync.pair().direction.writes(side))
        {
            return Err(DuplicateError::Unmergeable {
                id: id.to_owned(),
                reason: format!(
                    "pair {} is one-way, so {} cannot be changed on both sides",
                    contact.pair,
                    name(contact)
                ),
            });
        }
    }

    // What each side holds now: A's sides get the merged contact (unless they already hold
    // it: a repeat), B's are deleted (unless already gone). Anything else changed since.
    let changed = |contact: &Contact, side: Side| DuplicateError::Changed {
        id: id.to_owned(),
        contact: name(contact),
        side: side.as_str(),
    };
    let mut writes = Vec::new();
    let mut holding: BTreeMap<&str, SyncedSide> = BTreeMap::new();
    for side in Side::BOTH {
        let recorded = a.synced.side(side);
        let now = fetch(&sync_a, side, &recorded.href).await?;
        match now {
            Some(f) if parsed_hash(&f.raw) == hash => {
                holding.insert(
                    side.as_str(),
                    SyncedSide {
                        href: f.href,
                        etag: f.etag,
                        hash: hash.clone(),
                    },
                );
            }
            Some(f) if f.etag == recorded.etag => writes.push((side, f.raw)),
            _ => return Err(changed(a, side)),
        }
    }
    let mut deletes = Vec::new();
    for side in Side::BOTH {
        let recorded = b.synced.side(side);
        match fetch(&sync_b, side, &recorded.href).await? {
            None => {}
            Some(f) if f.etag == recorded.etag => deletes.push((side, f.raw)),
            Some(_) => return Err(changed(b, side)),
        }
    }

    let conn = concord.database().connect()?;
    let (a_name, b_name) = (name(a), name(b));
    for (side, raw) in &writes {
        let version = KeptVersion {
            pair_id: a.pair_id,
            storage_id: sync_a.pair().storage(*side).id,
            side: *side,
            uid: &a.uid,
            href: &a.synced.side(*side).href,
            content: raw,
        };
        let reason = format!("duplicate contacts merged: {b_name} merged into this contact");
        keep_once(&conn, &version, &a.synced.summary, &reason)?;
    }
    for (side, raw) in &deletes {
        let version = KeptVersion {
            pair_id: b.pair_id,
            storage_id: sync_b.pair().storage(*side).id,
            side: *side,
            uid: &b.uid,
            href: &b.synced.side(*side).href,
            content: raw,
        };
        let reason = format!(
            "duplicate contacts merged: merged into {a_name} ({}), then deleted",
            a.uid
        );
        keep_once(&conn, &version, &b.synced.summary, &reason)?;
    }

    for (side, _) in &writes {
        let recorded = a.synced.side(*side);
        let storage = sync_a.storage(*side);
        match storage
            .overwrite(&recorded.href, &recorded.etag, &content, &hash)
            .await
        {
            Ok(now) => {
                holding.insert(side.as_str(), now);
            }
            Err(err) if err.is_changed() => return Err(changed(a, *side)),
            Err(err) => return Err(err.into()),
        }
    }
    for (side, _) in &deletes {
        let recorded = b.synced.side(*side);
        let storage = sync_b.storage(*side);
        match storage.delete(&recorded.href, &recorded.etag).await {
            Ok(()) => storage.flush()?,
            Err(err) if err.is_changed() => return Err(changed(b, *side)),
            Err(err) => return Err(err.into()),
        }
    }

    let (Some(kept_a), Some(kept_b)) = (holding.remove("a"), holding.remove("b")) else {
        return Err(DuplicateError::Run {
            id: id.to_owned(),
            reason: "a side was neither written nor found holding the merged contact".to_owned(),
        });
    };
    let summary = crate::sync::item::Item::parse(content.clone())
        .map_or_else(|_| a.synced.summary.clone(), |item| item.summary);
    let mut conn = conn;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    state::record_synced(
        &tx,
        a.pair_id,
        &Synced {
            uid: a.uid.clone(),
            a: kept_a,
            b: kept_b,
            base: content,
            summary,
        },
    )?;
    state::remove_synced(&tx, b.pair_id, &b.uid)?;
    for side in Side::BOTH {
        state::remove_seen(&tx, b.pair_id, side, &b.synced.side(side).href)?;
    }
    tx.commit()?;
    Ok(Merged {
        id: id.to_owned(),
        kept_uid: a.uid.clone(),
        removed_uid: b.uid.clone(),
        picked: picks,
    })
}

async fn fetch(
    sync: &PairSync,
    side: Side,
    href: &str,
) -> Result<Option<crate::sync::storage::Fetched>, DuplicateError> {
    Ok(sync
        .storage(side)
        .fetch(&[href.to_owned()])
        .await?
        .into_iter()
        .next())
}

fn unchosen_error(id: &str, unchosen: &[String]) -> DuplicateError {
    DuplicateError::Unmergeable {
        id: id.to_owned(),
        reason: format!(
            "the two differ in {}: choose a or b with --pick",
            unchosen.join(", ")
        ),
    }
}

/// Fields only software reads; the merged contact keeps A's.
const KEPT_FROM_A: &[&str] = &["UID", "VERSION"];

/// The two contacts lined up (no base) and the choices checked; A's UID and vCard version
/// are kept whatever is chosen.
fn line_up(
    duplicate: &Duplicate,
    picks: &BTreeMap<String, Side>,
) -> Result<(Analysis, BTreeMap<String, Side>), DuplicateError> {
    let unmergeable = |reason: String| DuplicateError::Unmergeable {
        id: duplicate.id.clone(),
        reason,
    };
    let (a, b) = (
        decode(&duplicate.a.synced.base),
        decode(&duplicate.b.synced.base),
    );
    let analysis = Analysis::new(None, Some(&a), Some(&b)).map_err(&unmergeable)?;
    let mut picks = field_picks(&analysis, picks).map_err(unmergeable)?;
    for key in analysis.keys() {
        if KEPT_FROM_A
            .iter()
            .any(|p| key.rsplit(' ').next() == Some(*p))
        {
            picks.insert(key, Side::A);
        }
    }
    Ok((analysis, picks))
}

fn duplicate(a: &Contact, b: &Contact, reasons: Vec<String>) -> Duplicate {
    let id = sha256_hex(format!("{}\0{}\0{}\0{}", a.pair, a.uid, b.pair, b.uid).as_bytes());
    let fields = fields_of(
        None,
        Some(&decode(&a.synced.base)),
        Some(&decode(&b.synced.base)),
    )
    .into_iter()
    .filter(|f| {
        !KEPT_FROM_A
            .iter()
            .any(|p| f.name.rsplit(' ').next() == Some(*p))
    })
    .collect();
    Duplicate {
        id: id[..DUPLICATE_ID_CHARS].to_owned(),
        reasons,
        a: a.clone(),
        b: b.clone(),
        fields,
    }
}

/// Hex digits of a duplicate's id: short enough to type, long enough never to collide among
/// the duplicates of one person's address books.
pub const DUPLICATE_ID_CHARS: usize = 10;

fn name(c: &Contact) -> String {
    c.details
        .title
        .clone()
        .unwrap_or_else(|| format!("contact {}", c.uid))
}

/// Every synced contact of every pair, in pair and UID order.
fn contacts(conn: &Connection) -> Result<Vec<Contact>, DuplicateError> {
    let mut out = Vec::new();
    for pair in state::pairs(conn)? {
        if pair.a.item_kind != ItemKind::Contact {
            continue;
        }
        for (uid, synced) in state::synced(conn, pair.id)? {
            out.push(Contact {
                pair: pair.name.clone(),
                uid,
                details: details(&synced.base),
                pair_id: pair.id,
                synced,
            });
        }
    }
    Ok(out)
}

/// The keys two contacts share when they are likely one person, in the words the list shows.
fn keys(raw: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(card) = Component::parse(&decode(raw)) else {
        return out;
    };
    if card.name != "VCARD" {
        return out;
    }
    for p in &card.properties {
        let value = p.value().trim();
        match p.name.as_str() {
            "EMAIL" => {
                let email = email_key(value);
                if email.contains('@') {
                    out.insert(format!("same email {email}"));
                }
            }
            "TEL" => {
                if let Some(digits) = phone_key(value) {
                    out.insert(format!("same phone …{digits}"));
                }
            }
            "FN" => {
                if let Some(name) = name_key(value) {
                    out.insert(format!("same name {name}"));
                }
            }
            _ => {}
        }
    }
    out
}

/// An address as compared: trimmed, without "mailto:", in lower case.
fn email_key(value: &str) -> String {
    let lower = value.trim().to_lowercase();
    lower
        .strip_prefix("mailto:")
        .map_or(lower.clone(), str::to_owned)
}

/// A number as compared: its last [`TEL_DIGITS_COMPARED`] digits, so a number written with
/// or without its country code or trunk prefix matches. None for too short a number.
fn phone_key(value: &str) -> Option<String> {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < PHONE_DIGITS_MIN {
        return None;
    }
    let start = digits.len().saturating_sub(TEL_DIGITS_COMPARED);
    Some(digits[start..].to_owned())
}

/// A name as compared: its words in lower case, sorted ("Lovelace, Ada" is "ada lovelace").
/// None for a name of one short word, which says too little.
fn name_key(value: &str) -> Option<String> {
    let unescaped = value.replace("\\,", ",").replace("\\;", ";");
    let mut words: Vec<String> = unescaped
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.sort();
    let long_enough = words.len() >= 2 || words.first().is_some_and(|w| w.chars().count() >= 4);
    long_enough.then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(uid: &str, fn_: &str, extra: &str) -> Vec<u8> {
        format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn_}\r\n{extra}END:VCARD\r\n")
            .into_bytes()
    }

    #[test]
    fn emails_phones_and_names_are_compared_after_normalization() {
        let a = keys(&card(
            "1",
            "Lovelace\\, Ada",
            "EMAIL:MAILTO:Ada@Example.com\r\nTEL:+44 20 7946 0000\r\n",
        ));
        let b = keys(&card(
            "2",
            "Ada Lovelace",
            "EMAIL;TYPE=work:ada@example.com\r\nTEL;TYPE=cell:020 7946 0000\r\n",
        ));
        let shared: Vec<&String> = a.intersection(&b).collect();
        assert_eq!(
            shared,
            [
                "same email ada@example.com",
                "same name ada lovelace",
                "same phone …079460000"
            ]
        );
        // Too little to go on: an emergency number, a one-word short name.
        assert!(keys(&card("3", "Mom", "TEL:112\r\n")).is_empty());
    }

    #[test]
    fn a_phone_needs_enough_digits_and_an_email_an_at_sign() {
        assert_eq!(phone_key("+1 (555) 010-0999"), Some("550100999".to_owned()));
        assert_eq!(phone_key("ext. 12"), None);
        assert!(keys(&card("4", "X", "EMAIL:not an address\r\n")).is_empty());
    }
}
