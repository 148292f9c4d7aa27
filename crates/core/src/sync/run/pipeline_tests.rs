//! The run's stages called one by one on folder↔folder pairs and on pairs of an in-process
//! [`MemoryStorage`] with a folder: no server, each test in milliseconds. The real-server
//! tests (`tests/tests/sync_*.rs`) stay for what only a server shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::guard::deletes_max;
use super::{PairSync, Prepared, Report, SyncOptions};
use crate::Concord;
use crate::dav::Credentials;
use crate::sync::item::ItemKind;
use crate::sync::run::reconcile::PlanCounts;
use crate::sync::state::{self, ConflictPolicy, Direction, Side, StorageKind};
use crate::sync::storage::Storage;
use crate::sync::storage::memory::{Fault, MemoryStorage};
use crate::sync::storage::vdir::Vdir;

fn event(uid: &str, summary: &str) -> String {
    event_at(uid, summary, "Room 1")
}

fn event_at(uid: &str, summary: &str, location: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Concord tests//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:20261201T100000Z\r\n\
         SUMMARY:{summary}\r\nLOCATION:{location}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Writes a file as another program would. Edits in these tests change an item's length: a
/// folder's etag is the file's mtime, size and inode, and two writes can share an mtime.
fn write(folder: &Path, name: &str, content: &str) {
    std::fs::create_dir_all(folder).unwrap();
    std::fs::write(folder.join(name), content).unwrap();
}

fn files(folder: &Path) -> usize {
    std::fs::read_dir(folder).map_or(0, |d| d.count())
}

/// The pair "p" in a fresh data directory: side b a folder, side a a folder or a
/// [`MemoryStorage`] (a server's stand-in: it lists changes since a token).
pub(super) struct Pipeline {
    pub(super) dir: tempfile::TempDir,
    pub(super) concord: Concord,
    pub(super) folders: [PathBuf; 2],
    memory: Option<MemoryStorage>,
}

impl Pipeline {
    fn folders() -> Self {
        Self::new(Direction::TwoWay, None)
    }

    fn memory_and_folder() -> Self {
        Self::new(
            Direction::TwoWay,
            Some(MemoryStorage::new(ItemKind::Calendar)),
        )
    }

    pub(super) fn new(direction: Direction, memory: Option<MemoryStorage>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        let folders = [dir.path().join("a"), dir.path().join("b")];
        let conn = concord.database().connect().unwrap();
        let [a, b] = folders.each_ref().map(|path| {
            let location = path.to_str().unwrap();
            let kind = StorageKind::Vdir;
            state::put_storage(&conn, None, kind, ItemKind::Calendar, location, None).unwrap()
        });
        state::add_pair(&conn, "p", a, b, direction, ConflictPolicy::Ask).unwrap();
        Self {
            dir,
            concord,
            folders,
            memory,
        }
    }

    fn memory(&self) -> &MemoryStorage {
        self.memory.as_ref().unwrap()
    }

    /// The pair opened afresh, as each run opens it.
    fn open(&self) -> PairSync {
        match &self.memory {
            None => PairSync::open(&self.concord, "p", &Credentials::new("", "")).unwrap(),
            Some(memory) => {
                let b = Vdir::open(&self.folders[1], ItemKind::Calendar).unwrap();
                let (a, b) = (Storage::Memory(memory.clone()), Storage::Vdir(b));
                PairSync::with_storages(&self.concord, "p", a, b).unwrap()
            }
        }
    }

    /// Both sides observed and committed, as a run's first step leaves them.
    async fn observed(&self) -> PairSync {
        let sync = self.open();
        let (a, b) = sync.observe_both().await;
        sync.commit(a.unwrap()).unwrap();
        sync.commit(b.unwrap()).unwrap();
        sync
    }

    async fn prepared(&self, options: &SyncOptions) -> (PairSync, Prepared) {
        let sync = self.observed().await;
        let prepared = sync.prepare(&[], options).await.unwrap();
        (sync, prepared)
    }

    /// One whole run: observe, plan and guard, apply.
    async fn sync(&self) -> Report {
        let (sync, prepared) = self.prepared(&SyncOptions::default()).await;
        sync.apply(prepared).await.unwrap()
    }

    fn stopped_reason(&self) -> Option<String> {
        let conn = self.concord.database().connect().unwrap();
        state::pair(&conn, "p").unwrap().unwrap().stopped_reason
    }
}

/// Each difference of an observation by href: whether the item was there, and is now.
fn differences(observation: &super::Observation) -> BTreeMap<&str, (bool, bool)> {
    observation
        .differences
        .iter()
        .map(|(was, now)| {
            let href = was.as_ref().or(now.as_ref()).unwrap().href.as_str();
            (href, (was.is_some(), now.is_some()))
        })
        .collect()
}

fn fetched(observation: &super::Observation) -> Vec<&str> {
    observation.fetched.keys().map(String::as_str).collect()
}

// ---- observe ------------------------------------------------------------------------------

#[tokio::test]
async fn observe_reports_what_changed_in_a_folder_since_its_last_view() {
    let p = Pipeline::folders();
    let a = &p.folders[0];
    write(a, "e1.ics", &event("e1", "Standup"));
    write(a, "e2.ics", &event("e2", "Lunch"));
    let sync = p.open();
    let first = sync.observe(Side::A).await.unwrap();
    assert_eq!(differences(&first).len(), 2);
    assert_eq!(fetched(&first), ["e1.ics", "e2.ics"]);
    sync.commit(first).unwrap();

    write(a, "e1.ics", &event("e1", "Standup in room 2"));
    std::fs::remove_file(a.join("e2.ics")).unwrap();
    write(a, "e3.ics", &event("e3", "Dentist"));
    let second = p.open().observe(Side::A).await.unwrap();
    let expected = [
        ("e1.ics", (true, true)),
        ("e2.ics", (true, false)),
        ("e3.ics", (false, true)),
    ];
    assert_eq!(differences(&second), BTreeMap::from(expected));
    // Only what changed is read.
    assert_eq!(fetched(&second), ["e1.ics", "e3.ics"]);
    assert_eq!(second.seen.len(), 2);
}

#[tokio::test]
async fn observe_asks_a_storage_with_tokens_only_for_changes_since_the_last_one() {
    let p = Pipeline::memory_and_folder();
    let m = p.memory();
    m.put("e1.ics", event("e1", "Standup").as_bytes());
    m.put("e2.ics", event("e2", "Lunch").as_bytes());
    let sync = p.open();
    let first = sync.observe(Side::A).await.unwrap();
    assert_eq!(first.previous_token, None);
    assert_eq!(differences(&first).len(), 2);
    let token = first.token.clone();
    sync.commit(first).unwrap();

    m.put("e1.ics", event("e1", "Standup in room 2").as_bytes());
    m.remove("e2.ics");
    let sync = p.open();
    let second = sync.observe(Side::A).await.unwrap();
    assert_eq!(second.previous_token, token);
    let expected = [("e1.ics", (true, true)), ("e2.ics", (true, false))];
    assert_eq!(differences(&second), BTreeMap::from(expected));
    assert_eq!(fetched(&second), ["e1.ics"]);
    sync.commit(second).unwrap();

    let third = p.open().observe(Side::A).await.unwrap();
    assert!(third.differences.is_empty(), "{third:?}");
    assert!(third.fetched.is_empty(), "{third:?}");
}

// ---- plan ---------------------------------------------------------------------------------

#[tokio::test]
async fn plan_carries_each_sides_creates_updates_and_deletes_to_the_other() {
    let p = Pipeline::folders();
    let [a, b] = &p.folders;
    for (uid, summary) in [("e1", "Standup"), ("e2", "Lunch"), ("e3", "Dentist")] {
        write(a, &format!("{uid}.ics"), &event(uid, summary));
    }
    assert_eq!(p.sync().await.counts.create_b, 3);

    write(a, "e1.ics", &event("e1", "Standup in room 2"));
    std::fs::remove_file(b.join("e2.ics")).unwrap();
    write(b, "e4.ics", &event("e4", "Haircut"));
    let (_, prepared) = p.prepared(&SyncOptions::default()).await;
    let expected = PlanCounts {
        update_b: 1,
        delete_a: 1,
        create_a: 1,
        ..PlanCounts::default()
    };
    assert_eq!(prepared.plan.counts(), expected);
    assert_eq!(prepared.stopped, None);
    // Planning writes nothing.
    assert!(a.join("e2.ics").exists());
    assert!(!a.join("e4.ics").exists());
}

#[tokio::test]
async fn plan_merges_edits_of_different_fields_and_opens_a_conflict_for_one_field() {
    let p = Pipeline::memory_and_folder();
    let (m, b) = (p.memory(), &p.folders[1]);
    m.put("e1.ics", event("e1", "Standup").as_bytes());
    m.put("e2.ics", event("e2", "Lunch").as_bytes());
    assert_eq!(p.sync().await.counts.create_b, 2);

    // e1: a moves it, b renames it. e2: both rename it, differently.
    m.put("e1.ics", event_at("e1", "Standup", "Room 22").as_bytes());
    write(b, "e1.ics", &event("e1", "Standup with the team"));
    m.put("e2.ics", event("e2", "Lunch at noon").as_bytes());
    write(b, "e2.ics", &event("e2", "Lunch at one o'clock"));
    let (sync, prepared) = p.prepared(&SyncOptions::default()).await;
    let counts = prepared.plan.counts();
    assert_eq!((counts.merged, counts.conflicts), (1, 1), "{counts:?}");

    let report = sync.apply(prepared).await.unwrap();
    assert_eq!(report.counts.merged, 1, "{report:?}");
    let on_a = String::from_utf8(m.get("e1.ics").unwrap()).unwrap();
    let on_b = std::fs::read_to_string(b.join("e1.ics")).unwrap();
    for side in [&on_a, &on_b] {
        assert!(side.contains("SUMMARY:Standup with the team"), "{side}");
        assert!(side.contains("LOCATION:Room 22"), "{side}");
    }
    assert_eq!(on_a, on_b);
    let conn = p.concord.database().connect().unwrap();
    let pair = state::pair(&conn, "p").unwrap().unwrap();
    let open = state::conflicts(&conn, pair.id).unwrap();
    assert_eq!(open.keys().collect::<Vec<_>>(), ["e2"]);
}

// ---- guard --------------------------------------------------------------------------------

#[test]
fn the_guard_allows_ten_deletions_or_half_the_synced_items_and_none_after_an_emptied_side() {
    assert_eq!(deletes_max(4, [true, true]), [10, 10]);
    assert_eq!(deletes_max(31, [true, true]), [15, 15]);
    assert_eq!(deletes_max(100, [true, true]), [50, 50]);
    // Side a lists nothing: nothing may be deleted on b because of it.
    assert_eq!(deletes_max(30, [false, true]), [15, 0]);
    // Nothing synced: an empty side empties nothing.
    assert_eq!(deletes_max(0, [false, false]), [10, 10]);
}

#[tokio::test]
async fn the_guard_stops_a_pair_whose_side_was_emptied() {
    let p = Pipeline::folders();
    let [a, b] = &p.folders;
    for uid in ["e1", "e2", "e3"] {
        write(a, &format!("{uid}.ics"), &event(uid, "Standup"));
    }
    p.sync().await;
    // A folder gone (an unmounted disk) lists empty.
    std::fs::remove_dir_all(a).unwrap();

    let (sync, prepared) = p.prepared(&SyncOptions::default()).await;
    assert_eq!(prepared.plan.counts().delete_b, 3);
    assert_eq!(prepared.deletes_max, [10, 0]);
    let reason = prepared.stopped.clone().unwrap();
    assert!(
        reason.contains("side a") && reason.contains("now lists no items"),
        "{reason}"
    );

    let report = sync.apply(prepared).await.unwrap();
    assert_eq!(report.counts, PlanCounts::default(), "{report:?}");
    assert_eq!(files(b), 3);
    assert_eq!(p.stopped_reason(), Some(reason));
}

#[tokio::test]
async fn the_guard_stops_a_mass_deletion_until_the_person_confirms_it() {
    let p = Pipeline::memory_and_folder();
    let (m, b) = (p.memory(), &p.folders[1]);
    for n in 0..30 {
        m.put(
            &format!("e{n}.ics"),
            event(&format!("e{n}"), "Standup").as_bytes(),
        );
    }
    assert_eq!(p.sync().await.counts.create_b, 30);
    for n in 0..20 {
        m.remove(&format!("e{n}.ics"));
    }

    let (sync, prepared) = p.prepared(&SyncOptions::default()).await;
    assert_eq!(prepared.deletes_max, [15, 15]);
    let reason = prepared.stopped.clone().unwrap();
    assert!(
        reason.contains("would delete 20 of 30 items on side b"),
        "{reason}"
    );
    sync.apply(prepared).await.unwrap();
    assert_eq!(files(b), 30);

    let confirmed = SyncOptions {
        allow_deletes: true,
        ..SyncOptions::default()
    };
    let (sync, prepared) = p.prepared(&confirmed).await;
    assert_eq!(prepared.stopped, None);
    let report = sync.apply(prepared).await.unwrap();
    assert_eq!(report.counts.delete_b, 20, "{report:?}");
    assert_eq!(files(b), 10);
    assert_eq!(p.stopped_reason(), None);
}

#[tokio::test]
async fn an_item_whose_synced_copy_no_longer_reads_is_held_on_both_sides() {
    let p = Pipeline::folders();
    let [a, b] = &p.folders;
    write(a, "e1.ics", &event("e1", "Standup"));
    write(a, "e2.ics", &event("e2", "Lunch"));
    p.sync().await;
    // a's copy is damaged; b's is edited meanwhile.
    write(a, "e1.ics", "BEGIN:VCALENDAR\r\ngarbage");
    write(b, "e1.ics", &event("e1", "Standup in room 2"));

    let sync = p.open();
    let observed = sync.observe(Side::A).await.unwrap();
    assert_eq!(observed.unreadable.len(), 1, "{observed:?}");
    sync.commit(observed).unwrap();
    sync.commit(sync.observe(Side::B).await.unwrap()).unwrap();
    let prepared = sync.prepare(&[], &SyncOptions::default()).await.unwrap();
    // Neither deleted on b (gone from a's view) nor overwritten on a (edited on b).
    assert_eq!(prepared.plan.counts(), PlanCounts::default());
    assert_eq!(prepared.quarantined, 1);

    sync.apply(prepared).await.unwrap();
    let damaged = std::fs::read_to_string(a.join("e1.ics")).unwrap();
    assert_eq!(damaged, "BEGIN:VCALENDAR\r\ngarbage");
    let edited = std::fs::read_to_string(b.join("e1.ics")).unwrap();
    assert_eq!(edited, event("e1", "Standup in room 2"));
    let conn = p.concord.database().connect().unwrap();
    let quarantined = state::quarantined(&conn).unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].href, "e1.ics");
}

// ---- apply --------------------------------------------------------------------------------

#[tokio::test]
async fn apply_writes_the_plan_and_a_second_run_finds_nothing_to_do() {
    for p in [Pipeline::folders(), Pipeline::memory_and_folder()] {
        let b = &p.folders[1];
        match &p.memory {
            Some(m) => {
                m.put("e1.ics", event("e1", "Standup").as_bytes());
                m.put("e2.ics", event("e2", "Lunch").as_bytes());
            }
            None => {
                write(&p.folders[0], "e1.ics", &event("e1", "Standup"));
                write(&p.folders[0], "e2.ics", &event("e2", "Lunch"));
            }
        }
        write(b, "e3.ics", &event("e3", "Dentist"));

        let report = p.sync().await;
        let expected = PlanCounts {
            create_a: 1,
            create_b: 2,
            ..PlanCounts::default()
        };
        assert_eq!(report.counts, expected, "{report:?}");
        assert_eq!(report.planned, expected, "{report:?}");
        assert!(report.all_written(), "{report:?}");
        assert_eq!(files(b), 3);
        match &p.memory {
            Some(m) => assert_eq!(m.len(), 3),
            None => assert_eq!(files(&p.folders[0]), 3),
        }

        let (sync, prepared) = p.prepared(&SyncOptions::default()).await;
        assert_eq!(prepared.plan.changes().count(), 0, "{:?}", prepared.plan);
        let again = sync.apply(prepared).await.unwrap();
        assert_eq!(again.counts, PlanCounts::default(), "{again:?}");
    }
}

#[tokio::test]
async fn apply_defers_a_lost_condition_refuses_a_refusal_and_writes_the_rest() {
    let p = Pipeline::memory_and_folder();
    let (m, b) = (p.memory(), &p.folders[1]);
    for uid in ["e1", "e2", "e3"] {
        m.put(&format!("{uid}.ics"), event(uid, "Standup").as_bytes());
    }
    p.sync().await;
    for uid in ["e1", "e2", "e3"] {
        write(b, &format!("{uid}.ics"), &event(uid, "Standup in room 2"));
    }
    m.fail_next_write("e1.ics", Fault::Changed);
    m.fail_next_write("e2.ics", Fault::Refused("over quota".to_owned()));

    let report = p.sync().await;
    assert_eq!(report.planned.update_a, 3, "{report:?}");
    assert_eq!(report.counts.update_a, 1, "{report:?}");
    assert_eq!(report.deferred_counts.update_a, 1, "{report:?}");
    assert_eq!(report.refused_counts.update_a, 1, "{report:?}");
    assert!(report.refused[0].contains("over quota"), "{report:?}");
    let summary = |href: &str| String::from_utf8(m.get(href).unwrap()).unwrap();
    assert!(summary("e1.ics").contains("SUMMARY:Standup\r\n"));
    assert!(summary("e2.ics").contains("SUMMARY:Standup\r\n"));
    assert!(summary("e3.ics").contains("SUMMARY:Standup in room 2\r\n"));

    // The next run writes what was deferred and refused; the one after finds nothing.
    let next = p.sync().await;
    assert_eq!(next.counts.update_a, 2, "{next:?}");
    assert!(next.all_written(), "{next:?}");
    assert_eq!(p.sync().await.planned, PlanCounts::default());
}

#[cfg(debug_assertions)]
#[tokio::test]
#[should_panic(expected = "a plan that deletes more than the guard allowed is never applied")]
async fn a_plan_past_the_guard_is_never_applied() {
    let p = Pipeline::folders();
    let a = &p.folders[0];
    for n in 0..20 {
        write(a, &format!("e{n}.ics"), &event(&format!("e{n}"), "Standup"));
    }
    p.sync().await;
    for n in 0..15 {
        std::fs::remove_file(a.join(format!("e{n}.ics"))).unwrap();
    }
    let (sync, mut prepared) = p.prepared(&SyncOptions::default()).await;
    assert!(prepared.stopped.is_some());
    // A caller that drops the stop must not get the deletions through.
    prepared.stopped = None;
    let _ = sync.apply(prepared).await;
}
