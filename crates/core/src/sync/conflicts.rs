//! The conflict inbox: open conflicts in a person's words (title, time, place; name, emails),
//! one conflict side by side with its base, and resolution by keeping A, B or both.
//!
//! A resolution never overwrites blindly: each side must still be at the version recorded with
//! the conflict (checked by a fetch, then enforced by the conditional write); if one moved, the
//! conflict is refreshed with what the sides hold now and shown again. Losing versions go to
//! `item_history` before the write. Resolving is idempotent: repeated after a crash, it finds
//! its own writes and completes or refreshes, never duplicates.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::sync::Arc;

use concord_durable::{Ctx, StepError, Workflow};
use serde::{Deserialize, Serialize};

use super::SyncError;
use super::item::{Component, IGNORED_PROPERTIES, Item, decode, sha256_hex};
use super::merge::{Merge, merge};
use super::run::{CredentialSource, Outcome, PairSync, run_here};
use super::state::{self, Conflict, ConflictSide, Seen, Side, Synced, SyncedSide};
use super::storage::{Fetched, Storage, StorageError};
use crate::Concord;

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

/// Lets `?` carry what [`SyncError`] already wraps.
macro_rules! via_sync_error {
    ($($source:ty),*) => {$(
        impl From<$source> for ConflictError {
            fn from(err: $source) -> Self {
                ConflictError::Sync(SyncError::from(err))
            }
        }
    )*};
}
via_sync_error!(
    StorageError,
    concord_durable::DbError,
    rusqlite::Error,
    concord_durable::Error
);

impl ConflictError {
    /// Classified once for the durable engine, as sync errors are.
    fn step_error(self) -> StepError {
        let message = self.to_string();
        match self {
            ConflictError::NoSuchConflict(_) | ConflictError::Unresolvable { .. } => {
                StepError::permanent(message)
            }
            ConflictError::Run { .. } => StepError::transient(message),
            ConflictError::Sync(err) if err.needs_attention() => {
                StepError::needs_attention(message)
            }
            ConflictError::Sync(err) if err.is_transient() => StepError::transient(message),
            ConflictError::Sync(_) => StepError::permanent(message),
        }
    }
}

/// The durable workflow kind of a resolution.
pub const RESOLVE_WORKFLOW: &str = "resolve-conflict";

/// [`resolve`] as a durable workflow: one checkpointed step, safe to repeat because
/// [`resolve`] is idempotent. Input: `{"id": ID, "keep": "a"|"b"|"both"}`.
pub fn workflow(concord: Concord, credentials: Arc<dyn CredentialSource>) -> Workflow {
    Workflow::new(RESOLVE_WORKFLOW, move |ctx: Ctx| {
        let concord = concord.clone();
        let credentials = credentials.clone();
        async move {
            #[derive(Deserialize)]
            struct Input {
                id: i64,
                keep: Keep,
            }
            let input: Input = ctx.input_as()?;
            let resolution = ctx
                .step("resolve", || async {
                    resolve(&concord, input.id, input.keep, credentials.as_ref())
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
    keep: Keep,
    credentials: Arc<dyn CredentialSource>,
) -> Result<Resolution, ConflictError> {
    // A missing conflict is said plainly, not as a failed run.
    load(&concord.database().connect()?, id)?;
    let input = serde_json::json!({ "id": id, "keep": keep });
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

/// What an item says, in a person's words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Details {
    /// Event or task title, or the contact's name.
    pub title: Option<String>,
    /// Start (or due) date and time, as "2026-12-01 10:00 UTC".
    pub when: Option<String>,
    pub location: Option<String>,
    pub emails: Vec<String>,
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
    /// A side changed since the conflict was recorded: nothing was overwritten, and the
    /// conflict now shows what the sides hold (closed, when they came to agree).
    Refreshed { uid: String, closed: bool },
}

/// A stored conflict row with its pair.
struct Row {
    id: i64,
    pair_id: i64,
    pair: String,
    conflict: Conflict,
    updated_at_ms: i64,
}

impl Row {
    fn side(&self, side: Side) -> Option<&ConflictSide> {
        match side {
            Side::A => self.conflict.a.as_ref(),
            Side::B => self.conflict.b.as_ref(),
        }
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

const ROW_COLUMNS: &str = "c.id, c.pair_id, p.name, c.uid, c.kind, c.summary, c.properties,
    c.base, c.a_href, c.a_etag, c.a_hash, c.a_content, c.b_href, c.b_etag, c.b_hash,
    c.b_content, c.updated_at_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let side = |at: usize| -> rusqlite::Result<Option<ConflictSide>> {
        let href: Option<String> = r.get(at)?;
        Ok(match href {
            Some(href) => Some(ConflictSide {
                href,
                etag: r.get::<_, Option<String>>(at + 1)?.unwrap_or_default(),
                hash: r.get::<_, Option<String>>(at + 2)?.unwrap_or_default(),
                content: r.get::<_, Option<Vec<u8>>>(at + 3)?.unwrap_or_default(),
            }),
            None => None,
        })
    };
    let properties: String = r.get(6)?;
    Ok(Row {
        id: r.get(0)?,
        pair_id: r.get(1)?,
        pair: r.get(2)?,
        conflict: Conflict {
            uid: r.get(3)?,
            kind: r.get(4)?,
            summary: r.get(5)?,
            properties: serde_json::from_str(&properties).unwrap_or_default(),
            base: r.get(7)?,
            a: side(8)?,
            b: side(12)?,
        },
        updated_at_ms: r.get(16)?,
    })
}

fn load(conn: &Connection, id: i64) -> Result<Row, ConflictError> {
    conn.query_row(
        &format!(
            "SELECT {ROW_COLUMNS} FROM conflicts c JOIN pairs p ON p.id = c.pair_id WHERE c.id = ?1"
        ),
        [id],
        row,
    )
    .optional()?
    .ok_or(ConflictError::NoSuchConflict(id))
}

/// Every open conflict, oldest first.
pub fn list(concord: &Concord) -> Result<Vec<ConflictSummary>, ConflictError> {
    let conn = concord.database().connect()?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS} FROM conflicts c JOIN pairs p ON p.id = c.pair_id ORDER BY c.id"
    ))?;
    let rows = stmt.query_map([], row)?;
    rows.map(|r| r.map(|r| r.summary()).map_err(ConflictError::from))
        .collect()
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
    })
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
            .map(unescape)
            .filter(|v| !v.trim().is_empty())
    };
    Details {
        title: value("SUMMARY").or_else(|| value("FN")),
        when: main
            .value_of("DTSTART")
            .or_else(|| main.value_of("DUE"))
            .map(readable_time),
        location: value("LOCATION"),
        emails: main
            .properties
            .iter()
            .filter(|p| p.name == "EMAIL")
            .map(|p| p.value().trim().to_owned())
            .collect(),
    }
}

fn unescape(value: &str) -> String {
    value
        .replace("\\n", " ")
        .replace("\\N", " ")
        .replace("\\,", ",")
        .replace("\\;", ";")
        .replace("\\\\", "\\")
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

/// Resolves conflict `id` by keeping A, B or both. See the module docs for the guarantees.
pub async fn resolve(
    concord: &Concord,
    id: i64,
    keep: Keep,
    credentials: &dyn CredentialSource,
) -> Result<Resolution, ConflictError> {
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
        let summary = Item::parse(lost.content.clone())
            .map_or_else(|_| row.conflict.summary.clone(), |item| item.summary);
        state::record_version(
            &conn,
            row.pair_id,
            sync.pair().storage(loser).id,
            loser,
            &uid,
            Some(&lost.href),
            &summary,
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
            put_synced_and_seen(
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
        put_synced_and_seen(&tx, row.pair_id, copy)?;
    }
    tx.execute("DELETE FROM conflicts WHERE id = ?1", [row.id])?;
    tx.commit()?;
    Ok(Resolution::Resolved {
        uid,
        kept: keep,
        copy_uid: copy.map(|(copy_uid, _)| copy_uid),
    })
}

fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

fn parsed_hash(content: &[u8]) -> String {
    Item::parse(content.to_vec())
        .map(|i| i.hash)
        .unwrap_or_else(|_| sha256_hex(content))
}

/// What `side` holds now where the conflict saw the item (or where it would be created).
async fn current(sync: &PairSync, row: &Row, side: Side) -> Result<Option<Fetched>, ConflictError> {
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
) -> Result<super::storage::Listed, ConflictError> {
    match storage.create(uid, content).await {
        Ok(listed) => Ok(listed),
        Err(err) if err.is_changed() => {
            let href = storage.href_for(uid);
            let found = storage.fetch(std::slice::from_ref(&href)).await?;
            match found.into_iter().next() {
                Some(f) if parsed_hash(&f.raw) == hash => Ok(super::storage::Listed {
                    href: f.href,
                    etag: f.etag,
                }),
                _ => Err(err.into()),
            }
        }
        Err(err) => Err(err.into()),
    }
}

fn put_synced_and_seen(conn: &Connection, pair_id: i64, synced: &Synced) -> rusqlite::Result<()> {
    state::put_synced(conn, pair_id, synced)?;
    for side in Side::BOTH {
        let s = synced.side(side);
        state::put_seen(
            conn,
            pair_id,
            side,
            &Seen {
                href: s.href.clone(),
                etag: s.etag.clone(),
                uid: Some(synced.uid.clone()),
                hash: Some(s.hash.clone()),
            },
        )?;
    }
    Ok(())
}

fn record_copies(conn: &Connection, pair_id: i64, copies: &[Synced]) -> rusqlite::Result<()> {
    for copy in copies {
        put_synced_and_seen(conn, pair_id, copy)?;
    }
    Ok(())
}

/// Rewrites the conflict with what the sides hold `now`; closes it when they agree.
fn refresh(
    conn: &Connection,
    row: &Row,
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
            put_synced_and_seen(
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

    #[test]
    fn times_read_plainly() {
        assert_eq!(readable_time("20261201"), "2026-12-01");
        assert_eq!(readable_time("20261201T093000"), "2026-12-01 09:30");
        assert_eq!(readable_time("garbage"), "garbage");
    }
}
