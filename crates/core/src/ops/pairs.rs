//! Pairs as both faces offer them: pair two sides (a collection of an account, an account that
//! is one calendar, a folder), pair each chosen collection with a folder, pair all collections
//! of an account; change how a pair syncs; list them; remove them; sync them here and wait.
//! A pair made here syncs at once, then every [`SYNC_INTERVAL_DEFAULT`] unless told otherwise.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use concord_durable::Cadence;
use rusqlite::Connection;
use serde::Serialize;

use super::{OpError, names};
use crate::Concord;
use crate::sync::accounts::mapping::{self, Mapping, MappingReport, Refresh};
use crate::sync::accounts::pairs::{self, NewSide};
use crate::sync::item::ItemKind;
use crate::sync::state::{self, ConflictPolicy, Direction, Pair, StorageConfig, StorageKind};
use crate::sync::storage::SystemKeyring;
use crate::sync::{Report, SyncOptions, run, sync_durably, sync_pair};

/// How often a new pair syncs in the background unless the person chose.
pub const SYNC_INTERVAL_DEFAULT: Duration = Duration::from_secs(15 * 60);
/// Background syncs are at least this many minutes apart...
pub const EVERY_MINUTES_MIN: u64 = 1;
/// ...and at most a week.
pub const EVERY_MINUTES_MAX: u64 = 7 * 24 * 60;
/// Where pairs made without a chosen folder keep their items, under the data directory.
const VDIR_FOLDER: &str = "vdir";

/// One side of a pair to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideSpec {
    /// A vdir folder (calendars, or contacts when the other side holds contacts).
    Folder(PathBuf),
    /// A collection of a CalDAV/CardDAV account: its path on the server or its URL.
    Collection { account: String, collection: String },
    /// A webcal or vdir account, which is one collection.
    Account(String),
}

/// `dir:PATH`, `ACCOUNT:COLLECTION` (a path or URL on the account's server) or `ACCOUNT`.
impl FromStr for SideSpec {
    type Err = OpError;

    fn from_str(spec: &str) -> Result<Self, OpError> {
        if let Some(path) = spec.strip_prefix("dir:") {
            return Ok(SideSpec::Folder(PathBuf::from(path)));
        }
        Ok(match spec.split_once(':') {
            // "https://..." alone is not ACCOUNT:COLLECTION.
            Some((account, rest)) if !rest.starts_with("//") => SideSpec::Collection {
                account: account.to_owned(),
                collection: rest.to_owned(),
            },
            _ => SideSpec::Account(spec.to_owned()),
        })
    }
}

/// A pair to make.
#[derive(Debug, Clone)]
pub struct NewPair {
    /// None: named after its sides.
    pub name: Option<String>,
    pub a: SideSpec,
    pub b: SideSpec,
    /// None: both ways, except from a webcal calendar (read-only).
    pub direction: Option<Direction>,
    pub conflicts: ConflictPolicy,
    /// None: [`SYNC_INTERVAL_DEFAULT`].
    pub every_minutes: Option<u64>,
}

/// How a pair syncs, as the person changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairSettings {
    pub direction: Direction,
    pub conflicts: ConflictPolicy,
    pub every_minutes: u64,
}

/// One side of a pair as the faces show it.
#[derive(Debug, Clone, Serialize)]
pub struct PairSide {
    pub kind: StorageKind,
    pub location: String,
    pub display_name: Option<String>,
}

/// A pair with its schedule, its counts and its problems, as the faces list it.
#[derive(Debug, Clone, Serialize)]
pub struct PairRow {
    pub id: i64,
    pub name: String,
    pub a: PairSide,
    pub b: PairSide,
    pub direction: Direction,
    pub conflict_policy: ConflictPolicy,
    /// Minutes between background syncs; None without a schedule (or with a cron one).
    pub every_minutes: Option<i64>,
    pub last_sync_at_ms: Option<i64>,
    /// When the schedule syncs it next; None without a schedule.
    pub next_sync_at_ms: Option<i64>,
    /// Its schedule is paused (by Pause, or because it waits for the person).
    pub paused: bool,
    /// Why its schedule waits for the person, if it does.
    pub attention: Option<String>,
    pub last_error: Option<String>,
    /// Why the pair stopped and asks (emptied side, mass deletion).
    pub stopped_reason: Option<String>,
    /// Items synced on both sides.
    pub items: i64,
    pub conflicts: usize,
    pub quarantined: usize,
}

/// An "all collections" mapping with its schedule.
#[derive(Debug, Clone, Serialize)]
pub struct MappingRow {
    #[serde(flatten)]
    pub mapping: Mapping,
    /// When its schedule refreshes and syncs it next; None without a schedule.
    pub next_sync_at_ms: Option<i64>,
    /// Why its schedule waits for the person, if it does.
    pub attention: Option<String>,
}

/// What [`Concord::sync_here`] did: each pair's report, what failed, and what the "all
/// collections" mappings found.
#[derive(Debug, Default, Serialize)]
pub struct SyncAll {
    pub reports: Vec<Report>,
    pub errors: Vec<String>,
    pub collections: Vec<Refresh>,
    /// Syncing is paused: these ran because the person asked; it stays paused.
    pub while_paused: bool,
}

impl SyncAll {
    /// Pairs stopped by a safety guard, waiting for the person.
    pub fn stopped(&self) -> usize {
        self.reports.iter().filter(|r| r.stopped.is_some()).count()
    }
}

/// A side resolved to its storage row.
struct Resolved {
    id: i64,
    kind: StorageKind,
    item_kind: ItemKind,
    location: String,
    label: String,
}

impl Resolved {
    fn side(&self) -> NewSide<'_> {
        NewSide {
            kind: self.kind,
            item_kind: self.item_kind,
            location: &self.location,
            label: &self.label,
        }
    }
}

impl Concord {
    /// Pairs two sides; the pair syncs at once (with the tray app or `concord daemon`
    /// running), then on its schedule.
    pub fn add_pair(&self, new: NewPair) -> Result<Pair, OpError> {
        let every = every(new.every_minutes)?;
        let conn = self.database().connect()?;
        let a_contacts = holds_contacts(&conn, &new.a)?;
        let b_contacts = holds_contacts(&conn, &new.b)?;
        let a = resolve(&conn, &new.a, b_contacts)?;
        let b = resolve(&conn, &new.b, a_contacts)?;
        if let Some(problem) = pairs::pairing_problem(a.side(), b.side()) {
            return Err(OpError::Invalid(problem));
        }
        let direction = match new.direction {
            Some(direction) => direction,
            None => pairs::default_direction(a.kind, b.kind).map_err(OpError::Invalid)?,
        };
        let name = new_name(
            &conn,
            new.name.as_deref(),
            &format!("{} {}", a.label, b.label),
        )?;
        state::add_pair(&conn, &name, a.id, b.id, direction, new.conflicts)?;
        self.start_syncing(&name, every)?;
        self.pair(&name)
    }

    /// Pairs each chosen collection of a server account with a folder: `folder` itself when
    /// one is chosen, a folder per collection under it when several, and by default a folder
    /// under the data directory (`vdir/ACCOUNT/COLLECTION`). Each syncs at once.
    pub fn add_folder_pairs(
        &self,
        account: &str,
        collections: &[String],
        folder: Option<&Path>,
    ) -> Result<Vec<Pair>, OpError> {
        if collections.is_empty() {
            return Err(OpError::Invalid(
                "choose at least one collection to sync".to_owned(),
            ));
        }
        let conn = self.database().connect()?;
        let account_row = super::find_account(&conn, account)?;
        let mut added = Vec::new();
        for collection in collections {
            let side = match account_row.kind {
                StorageKind::Caldav | StorageKind::Carddav => SideSpec::Collection {
                    account: account.to_owned(),
                    collection: collection.clone(),
                },
                _ => SideSpec::Account(account.to_owned()),
            };
            let label = side_label(&conn, &side)?;
            let dir = match folder {
                Some(folder) if collections.len() == 1 => folder_at(folder)?,
                Some(folder) => folder_at(folder)?.join(names::slug(&label)),
                None => self
                    .data_dir()
                    .join(VDIR_FOLDER)
                    .join(names::slug(&account_row.name))
                    .join(names::slug(&label)),
            };
            let name = new_name(&conn, None, &format!("{} {label}", account_row.name))?;
            added.push(self.add_pair(NewPair {
                name: Some(name),
                a: side,
                b: SideSpec::Folder(dir),
                direction: None,
                conflicts: ConflictPolicy::Ask,
                every_minutes: None,
            })?);
        }
        Ok(added)
    }

    /// Syncs every calendar and address book of a server account, each in its own folder
    /// under `folder` (default: `vdir/ACCOUNT-all` under the data directory); collections made
    /// later are paired at its next sync. Lists the collections once now (a failure is kept
    /// on the mapping and tried again at each sync) and syncs them at once.
    pub async fn add_all_collections(
        &self,
        name: Option<&str>,
        account: &str,
        folder: Option<&Path>,
        settings: Option<PairSettings>,
    ) -> Result<(Mapping, Result<Refresh, OpError>), OpError> {
        let account_row = self.account(account)?;
        if !matches!(account_row.kind, StorageKind::Caldav | StorageKind::Carddav) {
            return Err(OpError::Invalid(format!(
                "{account} is one calendar or folder, not a server: pair it instead of all its \
                 collections"
            )));
        }
        let conn = self.database().connect()?;
        let name = new_name(&conn, name, &format!("{} all", account_row.name))?;
        let dir = match folder {
            Some(folder) => folder_at(folder)?,
            None => self.data_dir().join(VDIR_FOLDER).join(&name),
        };
        let settings = settings.unwrap_or(PairSettings {
            direction: Direction::TwoWay,
            conflicts: ConflictPolicy::Ask,
            every_minutes: SYNC_INTERVAL_DEFAULT.as_secs() / 60,
        });
        let every = every(Some(settings.every_minutes))?;
        state::mapping::add_mapping(
            &conn,
            &name,
            account_row.id,
            &dir,
            settings.direction,
            settings.conflicts,
            every.as_secs() / 60,
        )?;
        mapping::schedule(self.engine(), &name, every)?;
        let refreshed = mapping::refresh(self, &name, &SystemKeyring)
            .await
            .map_err(OpError::from);
        // Its pairs sync at once where a scheduler runs: the mapping's run starts each of them.
        if self.scheduler_running()? {
            self.engine()
                .trigger_schedule(&mapping::schedule_name(&name))?;
        }
        let conn = self.database().connect()?;
        let made = state::mapping::mapping(&conn, &name)?.ok_or_else(|| OpError::NotFound {
            what: "all-collections pair",
            name: name.clone(),
        })?;
        Ok((made, refreshed))
    }

    /// Changes how a pair (or an "all collections" mapping's schedule) syncs.
    pub fn set_pair(&self, name: &str, settings: PairSettings) -> Result<(), OpError> {
        let every = every(Some(settings.every_minutes))?;
        let pair = self.pair(name)?;
        if let Some(side) = pair.unwritable_side(settings.direction) {
            return Err(OpError::Invalid(format!(
                "side {} of {name} is a webcal calendar, which is read-only: changes can only \
                 flow from it",
                side.as_str()
            )));
        }
        let conn = self.database().connect()?;
        state::set_pair_options(&conn, name, settings.direction, settings.conflicts)?;
        run::schedule(self.engine(), name, every)?;
        Ok(())
    }

    /// Removes a pair, or an "all collections" mapping with its pairs; the collections,
    /// folders and item history stay.
    pub fn remove_pair(&self, name: &str) -> Result<pairs::Removed, OpError> {
        Ok(pairs::remove(self, name)?)
    }

    pub fn pair(&self, name: &str) -> Result<Pair, OpError> {
        state::pair(&self.database().connect()?, name)?.ok_or_else(|| OpError::NotFound {
            what: "pair",
            name: name.to_owned(),
        })
    }

    /// Every pair with its schedule, counts and problems.
    pub fn pair_rows(&self) -> Result<Vec<PairRow>, OpError> {
        let conn = self.database().connect()?;
        let schedules = self.engine().schedules()?;
        let quarantined = state::quarantined(&conn)?;
        let side = |s: &StorageConfig| PairSide {
            kind: s.kind,
            location: s.location.clone(),
            display_name: s.display_name.clone(),
        };
        let mut rows = Vec::new();
        for pair in state::pairs(&conn)? {
            let schedule = schedules
                .iter()
                .find(|s| s.schedule.name == run::schedule_name(&pair.name));
            rows.push(PairRow {
                id: pair.id,
                a: side(&pair.a),
                b: side(&pair.b),
                direction: pair.direction,
                conflict_policy: pair.conflict_policy,
                every_minutes: schedule.and_then(|s| match s.schedule.cadence {
                    Cadence::Every { every_ms } => Some(every_ms / 60_000),
                    Cadence::Cron { .. } => None,
                }),
                last_sync_at_ms: pair.last_sync_at_ms,
                next_sync_at_ms: schedule.map(|s| s.next_fire_at_ms),
                paused: schedule.is_some_and(|s| s.paused),
                attention: schedule.and_then(|s| s.attention.clone()),
                last_error: pair.last_error.clone(),
                stopped_reason: pair.stopped_reason.clone(),
                items: state::synced_count(&conn, pair.id)?,
                conflicts: state::conflicts(&conn, pair.id)?.len(),
                quarantined: quarantined.iter().filter(|q| q.pair == pair.name).count(),
                name: pair.name,
            });
        }
        Ok(rows)
    }

    pub fn mappings(&self) -> Result<Vec<Mapping>, OpError> {
        Ok(state::mapping::mappings(&self.database().connect()?)?)
    }

    /// The "all collections" mappings with their schedules.
    pub fn mapping_rows(&self) -> Result<Vec<MappingRow>, OpError> {
        let schedules = self.engine().schedules()?;
        Ok(self
            .mappings()?
            .into_iter()
            .map(|m| {
                let schedule = schedules
                    .iter()
                    .find(|s| s.schedule.name == mapping::schedule_name(&m.name));
                MappingRow {
                    next_sync_at_ms: schedule.map(|s| s.next_fire_at_ms),
                    attention: schedule.and_then(|s| s.attention.clone()),
                    mapping: m,
                }
            })
            .collect())
    }

    /// Sync now, all collections of an account: lists them (pairing new ones, reporting
    /// vanished ones), then syncs each collection's pair here.
    pub async fn sync_mapping(&self, name: &str) -> Result<MappingReport, OpError> {
        Ok(mapping::sync_mapping(self, name, Arc::new(SystemKeyring), false).await?)
    }

    /// Sync now, one pair, here, waiting for it (up to a minute; a longer one goes on in the
    /// background). `allow_deletes` is the person's go-ahead past a safety stop, this once.
    pub async fn sync_one(&self, name: &str, allow_deletes: bool) -> Result<Report, OpError> {
        Ok(sync_durably(self, name, Arc::new(SystemKeyring), allow_deletes).await?)
    }

    /// Syncs pairs here and waits for them (`concord sync`): the named ones, or all. An "all
    /// collections" mapping first finds new and vanished collections (not on a dry run, which
    /// writes nothing), then syncs each collection's pair. Runs also while paused: the person
    /// asked.
    pub async fn sync_here(
        &self,
        names: &[String],
        options: &SyncOptions,
    ) -> Result<SyncAll, OpError> {
        let (mappings, all_pairs) = {
            let conn = self.database().connect()?;
            (state::mapping::mappings(&conn)?, state::pairs(&conn)?)
        };
        for name in names {
            let known = mappings.iter().any(|m| &m.name == name)
                || all_pairs.iter().any(|p| &p.name == name);
            if !known {
                return Err(OpError::NotFound {
                    what: "pair",
                    name: name.clone(),
                });
            }
        }
        let mut out = SyncAll {
            while_paused: self.paused()?,
            ..SyncAll::default()
        };
        let mut gone: BTreeSet<String> = mappings
            .iter()
            .flat_map(|m| m.pairs.iter())
            .filter(|p| p.gone_since_ms.is_some())
            .map(|p| p.pair.clone())
            .collect();
        let mut chosen: Vec<String> = Vec::new();
        for m in mappings
            .iter()
            .filter(|m| names.is_empty() || names.contains(&m.name))
        {
            if options.dry_run {
                chosen.extend(m.pairs.iter().map(|p| p.pair.clone()));
                continue;
            }
            match mapping::refresh(self, &m.name, &SystemKeyring).await {
                Ok(refresh) => {
                    for p in &refresh.active {
                        gone.remove(p);
                    }
                    gone.extend(
                        m.pairs
                            .iter()
                            .filter(|p| !refresh.active.contains(&p.pair))
                            .map(|p| p.pair.clone()),
                    );
                    chosen.extend(refresh.active.iter().cloned());
                    out.collections.push(refresh);
                }
                Err(err) => out.errors.push(format!("{}: {err}", m.name)),
            }
        }
        let mapped: BTreeSet<&str> = mappings
            .iter()
            .flat_map(|m| m.pairs.iter().map(|p| p.pair.as_str()))
            .collect();
        chosen.extend(
            all_pairs
                .iter()
                .filter(|p| !mapped.contains(p.name.as_str()))
                .filter(|p| names.is_empty() || names.contains(&p.name))
                .map(|p| p.name.clone()),
        );
        chosen.retain(|p| !gone.contains(p));
        for pair in chosen {
            let result = if options.dry_run {
                sync_pair(self, &pair, &SystemKeyring, options).await
            } else {
                sync_durably(self, &pair, Arc::new(SystemKeyring), options.allow_deletes).await
            };
            match result {
                Ok(report) => out.reports.push(report),
                Err(err) => out.errors.push(format!("{pair}: {err}")),
            }
        }
        Ok(out)
    }

    /// Puts the pair's schedule and, while a scheduler runs (the tray app, `concord daemon`),
    /// starts its first sync now. Without one nothing is queued: nobody would run it but the
    /// next `concord sync` of any pair, which would then sync this one unasked.
    fn start_syncing(&self, pair: &str, every: Duration) -> Result<(), OpError> {
        run::schedule(self.engine(), pair, every)?;
        if self.scheduler_running()? {
            self.engine().trigger_schedule(&run::schedule_name(pair))?;
        }
        Ok(())
    }
}

/// The names pairs and "all collections" mappings already have (they share one namespace).
fn pair_names(conn: &Connection) -> Result<HashSet<String>, OpError> {
    let mut taken: HashSet<String> = state::pairs(conn)?.into_iter().map(|p| p.name).collect();
    taken.extend(state::mapping::mappings(conn)?.into_iter().map(|m| m.name));
    Ok(taken)
}

/// The name a person gave, if free; with none, one made from `words` that is free.
fn new_name(conn: &Connection, given: Option<&str>, words: &str) -> Result<String, OpError> {
    let taken = pair_names(conn)?;
    match given.map(str::trim) {
        Some(name) if taken.contains(name) => Err(OpError::Taken {
            what: "a pair",
            name: name.to_owned(),
        }),
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => Ok(names::unique(&names::slug(words), &taken)),
    }
}

/// Whether a side holds contacts (so a folder on the other side does too).
fn holds_contacts(conn: &Connection, side: &SideSpec) -> Result<bool, OpError> {
    let SideSpec::Collection {
        account,
        collection,
    } = side
    else {
        return Ok(false);
    };
    let Some(account) = state::account(conn, account)? else {
        return Ok(false);
    };
    let url = pairs::collection_url(&account, collection);
    Ok(pairs::collection_kind(conn, &account, &url) == StorageKind::Carddav)
}

/// How the person knows a side: a collection's display name or last segment, an account's
/// name, a folder's path.
fn side_label(conn: &Connection, side: &SideSpec) -> Result<String, OpError> {
    Ok(match side {
        SideSpec::Folder(path) => path.display().to_string(),
        SideSpec::Account(name) => name.clone(),
        SideSpec::Collection {
            account,
            collection,
        } => {
            let account = super::find_account(conn, account)?;
            let url = pairs::collection_url(&account, collection);
            state::mapping::stored_collections(conn, account.id)?
                .into_iter()
                .find(|(c, _)| c.url == url)
                .and_then(|(c, _)| c.display_name)
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| names::last_segment(collection))
        }
    })
}

/// A side's storage row, made if new; `other_contacts`: the other side holds contacts (for a
/// folder, which could hold either).
fn resolve(conn: &Connection, side: &SideSpec, other_contacts: bool) -> Result<Resolved, OpError> {
    let label = side_label(conn, side)?;
    let (account, kind, location) = match side {
        SideSpec::Folder(path) => (
            None,
            StorageKind::Vdir,
            folder_at(path)?.display().to_string(),
        ),
        SideSpec::Account(name) => {
            let account = super::find_account(conn, name)?;
            if matches!(account.kind, StorageKind::Caldav | StorageKind::Carddav) {
                return Err(OpError::Invalid(format!(
                    "say which collection of {name}: {name}:/path/of/collection/ (`concord \
                     account discover {name}` lists them)"
                )));
            }
            (Some(account.id), account.kind, account.url)
        }
        SideSpec::Collection {
            account,
            collection,
        } => {
            let account = super::find_account(conn, account)?;
            match account.kind {
                StorageKind::Caldav | StorageKind::Carddav => {
                    let url = pairs::collection_url(&account, collection);
                    let kind = pairs::collection_kind(conn, &account, &url);
                    (Some(account.id), kind, url)
                }
                kind => (Some(account.id), kind, account.url),
            }
        }
    };
    let item_kind = match kind {
        StorageKind::Carddav => ItemKind::Contact,
        StorageKind::Vdir if other_contacts => ItemKind::Contact,
        StorageKind::Vdir | StorageKind::Caldav | StorageKind::Webcal => ItemKind::Calendar,
    };
    let shown = matches!(side, SideSpec::Collection { .. }).then_some(label.as_str());
    let id = state::put_storage(conn, account, kind, item_kind, &location, shown)?;
    Ok(Resolved {
        id,
        kind,
        item_kind,
        location,
        label,
    })
}

/// The interval between background syncs, within its limits.
fn every(minutes: Option<u64>) -> Result<Duration, OpError> {
    let Some(minutes) = minutes else {
        return Ok(SYNC_INTERVAL_DEFAULT);
    };
    if !(EVERY_MINUTES_MIN..=EVERY_MINUTES_MAX).contains(&minutes) {
        return Err(OpError::Invalid(format!(
            "sync every {minutes} minutes? Choose between {EVERY_MINUTES_MIN} minute and {} days \
             ({EVERY_MINUTES_MAX} minutes)",
            EVERY_MINUTES_MAX / (24 * 60)
        )));
    }
    Ok(Duration::from_secs(minutes * 60))
}

/// A folder a pair keeps its items in, as an absolute path: made by the first sync if it is
/// not there yet, refused if something else (a file) is there.
fn folder_at(path: &Path) -> Result<PathBuf, OpError> {
    let path = std::path::absolute(path)
        .map_err(|e| OpError::Invalid(format!("{}: {e}", path.display())))?;
    if path.exists() && !path.is_dir() {
        return Err(OpError::Invalid(format!(
            "{} is a file, not a folder: give a folder (a new one is made by the first sync)",
            path.display()
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_pair(dir: &Path, name: &str) -> NewPair {
        NewPair {
            name: Some(name.to_owned()),
            a: SideSpec::Folder(dir.join(format!("{name}-a"))),
            b: SideSpec::Folder(dir.join(format!("{name}-b"))),
            direction: None,
            conflicts: ConflictPolicy::Ask,
            every_minutes: None,
        }
    }

    #[test]
    fn a_new_pair_without_a_scheduler_queues_nothing_and_keeps_its_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let pair = concord.add_pair(folder_pair(dir.path(), "notes")).unwrap();
        assert_eq!(pair.direction, Direction::TwoWay);
        let runs = concord
            .engine()
            .runs(&concord_durable::RunFilter::default())
            .unwrap();
        assert!(
            runs.is_empty(),
            "no scheduler runs: nothing is queued beside `concord sync`"
        );
        let schedule = &concord.engine().schedules().unwrap()[0];
        assert!(
            matches!(schedule.schedule.cadence, Cadence::Every { every_ms } if every_ms == 900_000)
        );
        let taken = concord
            .add_pair(folder_pair(dir.path(), "notes"))
            .unwrap_err();
        assert!(matches!(taken, OpError::Taken { .. }), "{taken}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_now_of_a_pair_whose_scheduled_sync_waits_runs_that_one_not_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        concord.add_pair(folder_pair(dir.path(), "notes")).unwrap();
        let queued = concord
            .engine()
            .trigger_schedule("sync-pair:notes")
            .unwrap();
        let report = concord.sync_one("notes", false).await.unwrap();
        assert_eq!(report.pair, "notes");
        let runs = concord
            .engine()
            .runs(&concord_durable::RunFilter::default())
            .unwrap();
        let states: Vec<_> = runs.iter().map(|r| (r.id, r.state)).collect();
        assert_eq!(states, [(queued, concord_durable::RunState::Completed)]);
    }

    #[test]
    fn a_folder_side_that_is_a_file_is_refused_and_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let file = dir.path().join("notes-b");
        std::fs::write(&file, "not a folder").unwrap();
        let refused = concord
            .add_pair(folder_pair(dir.path(), "notes"))
            .unwrap_err();
        assert!(
            refused.to_string().contains("is a file, not a folder"),
            "{refused}"
        );
        assert!(concord.pair_rows().unwrap().is_empty());
    }

    #[test]
    fn settings_are_kept_within_their_limits() {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        concord.add_pair(folder_pair(dir.path(), "notes")).unwrap();
        let settings = |every_minutes| PairSettings {
            direction: Direction::AToB,
            conflicts: ConflictPolicy::AWins,
            every_minutes,
        };
        let refused = concord
            .set_pair("notes", settings(0))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("between 1 minute and 7 days"), "{refused}");
        concord.set_pair("notes", settings(60)).unwrap();
        let row = &concord.pair_rows().unwrap()[0];
        assert_eq!(
            (row.direction, row.every_minutes),
            (Direction::AToB, Some(60))
        );
        assert!(matches!(
            concord.set_pair("nope", settings(60)).unwrap_err(),
            OpError::NotFound { .. }
        ));
    }

    #[test]
    fn sides_are_read_as_the_command_line_writes_them() {
        assert_eq!(
            "dir:/tmp/x".parse::<SideSpec>().unwrap(),
            SideSpec::Folder(PathBuf::from("/tmp/x"))
        );
        assert_eq!(
            "work:/cal/home/".parse::<SideSpec>().unwrap(),
            SideSpec::Collection {
                account: "work".to_owned(),
                collection: "/cal/home/".to_owned()
            }
        );
        assert_eq!(
            "https://example.com/x.ics".parse::<SideSpec>().unwrap(),
            SideSpec::Account("https://example.com/x.ics".to_owned())
        );
    }
}
